/*
 * fuzz_intake.c — a libFuzzer target for the JSON intake: the parsing of a submission body
 * (src/core/intake.c) that tdm_engine_submit() and POST /v1/processes/{name}/items do before
 * any item is routed.
 *
 * The first byte of an input picks the form, the rest is the body: odd, a JSON Lines batch;
 * even, a single JSON object. The body goes to tdm__intake_parse(), which parses it exactly
 * as a submission does and hands back each item. The target checks:
 *   - on success, a single object gives one item and a batch one item per line that is not
 *     blank (blank meaning only spaces, tabs and carriage returns, as the parser trims);
 *     every item has a valid id (1 to 128 letters, digits or - _ . :, one made up starting
 *     "itm_" when the client gave none) and its fields are an object without "id";
 *   - on failure, the code is one a submission may return and the message is a non-empty
 *     C string.
 * AddressSanitizer's leak check covers both paths. See fuzz/README.md to build and run it.
 */
#define _POSIX_C_SOURCE 200809L /* engine_int.h needs pthread_rwlock_t */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static int valid_id(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 128)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

static void each(void *arg, const char *id, int given, json_t *fields)
{
    size_t *n = arg;
    (*n)++;
    check(id != NULL && valid_id(id));
    check(given == 1 || (given == 0 && strncmp(id, "itm_", 4) == 0));
    check(json_is_object(fields) && json_object_get(fields, "id") == NULL);
}

/* The lines of a JSON Lines body that hold more than spaces, tabs and carriage returns. */
static size_t count_lines(const char *body, size_t len)
{
    size_t n = 0;
    int blank = 1;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || body[i] == '\n') {
            n += !blank;
            blank = 1;
        } else if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r') {
            blank = 0;
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int jsonl = data[0] & 1;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    size_t n = 0;
    tdm_error err;
    memset(&err, 0, sizeof err);
    int rc = tdm__intake_parse(body, len, jsonl, each, &n, &err);
    if (rc == 0) {
        check(n == (jsonl ? count_lines(body, len) : 1));
        return 0;
    }
    /* A batch stops at its first bad line, having handed back none of its items. */
    check(n == 0 && err.code == rc);
    check(rc == TDM_EPARSE || rc == TDM_EINVAL || rc == TDM_ETOOBIG || rc == TDM_ENOMEM);
    check(memchr(err.message, '\0', sizeof err.message) != NULL && err.message[0] != '\0');
    check(memchr(err.field, '\0', sizeof err.field) != NULL);
    return 0;
}
