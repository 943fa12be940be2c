/*
 * fuzz_rule.c — a libFuzzer target for the review-rule language (src/policy/rule.c).
 *
 * Every input is one rule. It is compiled from an exact-length heap copy (so that
 * AddressSanitizer sees any read past its end) and checked through the public
 * tdm_rule_check(); the two must agree. A rule that compiles is evaluated against an item
 * whose fields are made up from the input's own bytes (fuzz_item.h), twice with the same
 * answer, and once with no item at all. A rule that fails must say where (a column inside the
 * text or just past it) and what is wrong. In a build with TDM_DEBUG (as the fuzz build is),
 * a rule that compiles is compiled again with each of its allocations failing in turn, which
 * must fail cleanly with TDM_ENOMEM and leak nothing.
 * See fuzz/README.md for how to build and run it.
 */
#include "fuzz_item.h"
#include "policy/rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef TDM_DEBUG
/* Fails the compiler's first, second, ... allocation until the compile no longer needs it. */
static void fail_allocations(const char *src, size_t len)
{
    for (size_t k = 1; k <= 16; k++) {
        tdm__rule *r = NULL;
        tdm__rule_alloc_fail_countdown = k;
        int rc = tdm__rule_compile(src, len, &r, NULL, NULL, 0);
        int reached = tdm__rule_alloc_fail_countdown == 0;
        tdm__rule_alloc_fail_countdown = 0;
        if (!reached) {
            check(rc == 0 && r != NULL);
            tdm__rule_free(r);
            return;
        }
        check(rc == TDM_ENOMEM && r == NULL);
    }
    check(0); /* more than 16 allocations for one rule */
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *exact = malloc(size ? size : 1);
    check(exact != NULL);
    memcpy(exact, data, size);
    tdm__rule *r = NULL;
    size_t column = 0;
    char msg[300];
    msg[0] = '\0';
    int rc = tdm__rule_compile(exact, size, &r, &column, msg, sizeof msg);
    if (rc == 0) {
        check(r != NULL && tdm__rule_node_count(r) >= 1 &&
              tdm__rule_node_count(r) <= TDM__RULE_MAX_NODES);
        item it = {data, size};
        int fired = -1, again = -1;
        check(tdm__rule_eval(r, lookup, &it, "label", 0.75, &fired) == 0);
        check(tdm__rule_eval(r, lookup, &it, "label", 0.75, &again) == 0 && fired == again);
        check(tdm__rule_eval(r, NULL, NULL, NULL, NAN, &fired) == 0);
        check(fired == 0 || fired == 1);
        tdm__rule_free(r);
#ifdef TDM_DEBUG
        fail_allocations(exact, size);
#endif
    } else {
        check(rc == TDM_EINVAL && r == NULL);
        check(column >= 1 && column <= size + 1);
        check(msg[0] != '\0' && memchr(msg, '\0', sizeof msg) != NULL);
    }
    /* The public check agrees on text without NUL bytes. */
    if (memchr(data, '\0', size) == NULL) {
        char *z = malloc(size + 1);
        check(z != NULL);
        memcpy(z, data, size);
        z[size] = '\0';
        tdm_error err;
        check(tdm_rule_check(z, &err) == rc);
        check(rc != 0 || err.code == 0);
        check(rc == 0 || (err.code == rc && err.message[0] != '\0'));
        free(z);
    }
    free(exact);
    return 0;
}
