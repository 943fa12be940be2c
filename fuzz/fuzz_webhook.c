/*
 * fuzz_webhook.c — a libFuzzer target for the body of a webhook subscription (POST
 * /v1/processes/{name}/webhooks, tdm_engine_webhook_create() in src/core/webhooks.c): JSON
 * from outside with a receiver's URL (checked by libcurl's URL parser) and a list of events.
 *
 * One engine is opened for the whole run, on a fresh database in a temporary directory, with
 * one small process. Every input is a body, handed over from an exact-length heap copy. The
 * target checks:
 *   - on success, the answer is JSON with an id, the process, a secret "whsec_..." and the
 *     events as a non-empty list; the subscription is then deleted again (so that the limit
 *     of subscriptions per process never turns later inputs away) and the deletion succeeds;
 *   - on failure, the code is one a subscription may return (TDM_EPARSE, TDM_EINVAL,
 *     TDM_ETOOBIG) and the message is a non-empty C string.
 * AddressSanitizer's leak check covers both paths. See fuzz/README.md to build and run it.
 */
#define _POSIX_C_SOURCE 200809L

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tandem/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char process_yaml[] = "process: hooks\n"
                                   "owner: ops@example.com\n"
                                   "kpis: [items_per_hour]\n"
                                   "baseline: {minutes_per_item: 2, error_rate: 0.05}\n"
                                   "steps:\n"
                                   "  - id: sort\n"
                                   "    allocation: human\n"
                                   "    owner: ops@example.com\n"
                                   "    output: {field: team, labels: [a, b]}\n"
                                   "    guardrails: {queue: q}\n";

static tdm_engine *engine;
static char dir[64];

static void check(int ok)
{
    if (!ok)
        abort();
}

static void cleanup(void)
{
    tdm_engine_close(engine);
    char path[128];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/fuzz.db%s", dir, suffixes[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void open_engine(void)
{
    snprintf(dir, sizeof dir, "/tmp/tandem-fuzz-webhook.XXXXXX");
    check(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/fuzz.db", dir);
    tdm_engine_opts o;
    tdm_engine_opts_init(&o);
    o.db_path = path;
    o.seed = 1;
    tdm_error err = {0};
    check(tdm_engine_open(&o, &engine, &err) == 0);
    char *json = NULL;
    check(tdm_engine_put_process(engine, "hooks", process_yaml, sizeof process_yaml - 1, "fuzz",
                                 &json, &err) == 0);
    tdm_free(json);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (engine == NULL)
        open_engine();
    char *body = malloc(size > 0 ? size : 1);
    check(body != NULL);
    if (size > 0)
        memcpy(body, data, size);
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_webhook_create(engine, "hooks", body, size, "fuzz", &json, &err);
    free(body);
    if (rc != 0) {
        check(rc == TDM_EPARSE || rc == TDM_EINVAL || rc == TDM_ETOOBIG);
        check(json == NULL);
        check(err.message[0] != '\0' && memchr(err.message, '\0', sizeof err.message) != NULL);
        return 0;
    }
    json_t *o = json_loads(json, 0, NULL);
    tdm_free(json);
    check(o != NULL);
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *secret = json_string_value(json_object_get(o, "secret"));
    json_t *events = json_object_get(o, "events");
    check(id != NULL && secret != NULL && strncmp(secret, "whsec_", 6) == 0);
    check(strcmp(json_string_value(json_object_get(o, "process")), "hooks") == 0);
    check(json_is_array(events) && json_array_size(events) > 0);
    json = NULL;
    check(tdm_engine_webhook_delete(engine, id, "fuzz", &json, &err) == 0);
    tdm_free(json);
    json_decref(o);
    return 0;
}
