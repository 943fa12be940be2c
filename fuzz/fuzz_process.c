/*
 * fuzz_process.c — a libFuzzer target for process files (src/core/process.c) and review
 * rules (src/policy/rule.c).
 *
 * The first byte of an input picks the mode; the rest is the text:
 *   even: the text is a process file for tdm_process_parse(). A failure must leave no object
 *         and a message that starts with the file name; a success is walked through every
 *         accessor, its rules are compiled again from their source, and its steps' rules are
 *         evaluated against an item whose fields come from the input itself.
 *   odd:  the text is one rule, compiled from an exact-length heap copy (so AddressSanitizer
 *         sees any read past its end) and checked through tdm_rule_check(); the two must
 *         agree, and a rule that compiles is evaluated against the same kind of item.
 * See fuzz/README.md for how to build and run it.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/rule.h"
#include "tandem/process.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* An item whose fields are made up from the bytes of the input: every type, and missing. */
typedef struct item {
    const uint8_t *data;
    size_t size;
} item;

static int lookup(void *ctx, const char *name, size_t len, tdm_rule_value *out)
{
    const item *it = ctx;
    check(name != NULL && len > 0 && strlen(name) == len);
    size_t h = len;
    for (size_t i = 0; i < len; i++)
        h = h * 31 + (unsigned char)name[i];
    size_t at = it->size ? h % it->size : 0;
    switch (h % 6) {
    case 0:
        return TDM_ENOTFOUND;
    case 1:
        out->type = TDM_RULE_NULL;
        return 0;
    case 2:
        out->type = TDM_RULE_BOOL;
        out->boolean = (int)(h & 1);
        return 0;
    case 3:
        out->type = TDM_RULE_NUMBER;
        out->number = (double)(h % 20001) - 10000.0;
        if (h % 7 == 0)
            out->number = h % 2 ? NAN : INFINITY;
        return 0;
    default:
        out->type = TDM_RULE_STRING;
        out->string = (const char *)it->data + at;
        out->length = (it->size - at) < 64 ? it->size - at : 64;
        return 0;
    }
}

static void walk(const tdm_process *p, const uint8_t *data, size_t size)
{
    check(tdm_process_name(p) != NULL && tdm_process_name(p)[0] != '\0');
    check(tdm_process_owner(p) != NULL && tdm_process_owner(p)[0] != '\0');
    check(tdm_process_description(p) != NULL);
    size_t kpis = tdm_process_kpi_count(p);
    check(kpis >= 1);
    for (size_t i = 0; i < kpis; i++)
        check(tdm_process_kpi(p, i) != NULL && tdm_process_kpi(p, i)[0] != '\0');
    check(tdm_process_kpi(p, kpis) == NULL);
    double minutes = tdm_process_baseline_minutes(p), error = tdm_process_baseline_error(p);
    check(minutes > 0 && minutes <= 100000 && error >= 0 && error <= 1);
    size_t steps = tdm_process_step_count(p);
    check(steps >= 1 && steps <= 64);
    check(tdm_process_step(p, steps) == NULL);
    item it = {data, size};
    for (size_t s = 0; s < steps; s++) {
        const tdm_step_info *st = tdm_process_step(p, s);
        size_t index = SIZE_MAX;
        check(st != NULL && st->id != NULL && st->owner != NULL && st->output != NULL);
        check(tdm_process_step_index(p, st->id, &index) == 0 && index == s);
        check(strcmp(tdm_allocation_name(st->allocation), "unknown") != 0);
        check((st->model == NULL) == (st->allocation == TDM_ALLOC_HUMAN));
        check(st->allocation == TDM_ALLOC_HUMAN || st->n_inputs > 0);
        for (size_t i = 0; i < st->n_inputs; i++)
            check(st->inputs[i].name != NULL && strcmp(st->inputs[i].name, st->output) != 0);
        for (size_t i = 0; i < st->n_labels; i++)
            check(st->labels[i] != NULL && st->labels[i][0] != '\0');
        check(st->max_error > 0 && st->max_error <= 0.5);
        check(st->confidence >= 0.5 && st->confidence < 1);
        check(st->audit_sample >= 0 && st->audit_sample <= 1);
        check(st->queue != NULL && st->sla_minutes > 0);
        check(st->escalation_queue == NULL || strcmp(st->escalation_queue, st->queue) != 0);
        check(st->priority >= -1000 && st->priority <= 1000);
        for (size_t r = 0; r < st->n_rules; r++)
            check(st->rules[r] != NULL && tdm_rule_check(st->rules[r], NULL) == 0);
        size_t fired = 0;
        check(tdm_process_review(p, s, lookup, &it, "x", 0.5, &fired) == 0);
        check(fired == SIZE_MAX || fired < st->n_rules);
        check(tdm_process_review(p, s, lookup, &it, NULL, NAN, &fired) == 0);
    }
    size_t fired = 0;
    check(tdm_process_review(p, steps, lookup, &it, "x", 0.5, &fired) == TDM_EINVAL);
}

static void fuzz_process(const uint8_t *data, size_t size)
{
    tdm_process *p = NULL;
    tdm_error err;
    int rc = tdm_process_parse((const char *)data, size, "fuzz.yaml", &p, &err);
    if (rc == 0) {
        check(p != NULL && err.code == 0);
        walk(p, data, size);
        tdm_process_free(p);
        return;
    }
    check(p == NULL && err.code == rc);
    check(memchr(err.message, '\0', sizeof err.message) != NULL);
    check(memchr(err.field, '\0', sizeof err.field) != NULL);
    check(rc == TDM_ENOMEM || strncmp(err.message, "fuzz.yaml", 9) == 0);
    check(rc == TDM_EINVAL || rc == TDM_EPARSE || rc == TDM_ETOOBIG || rc == TDM_ENOMEM);
}

static void fuzz_rule(const uint8_t *data, size_t size)
{
    char *exact = malloc(size ? size : 1);
    check(exact != NULL);
    memcpy(exact, data, size);
    tdm__rule *r = NULL;
    size_t column = 0;
    char msg[300];
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
    } else {
        check(rc == TDM_EINVAL && r == NULL);
        check(column >= 1 && column <= size + 1);
        check(msg[0] != '\0');
    }
    /* The public check agrees on text without NUL bytes. */
    if (memchr(data, '\0', size) == NULL) {
        char *z = malloc(size + 1);
        check(z != NULL);
        memcpy(z, data, size);
        z[size] = '\0';
        tdm_error err;
        check(tdm_rule_check(z, &err) == rc);
        free(z);
    }
    free(exact);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_rule(data + 1, size - 1);
    else
        fuzz_process(data + 1, size - 1);
    return 0;
}
