/*
 * fuzz_process.c — a libFuzzer target for process files (src/core/process.c), and through
 * them for the review rules they hold (src/policy/rule.c; fuzz_rule.c fuzzes a single rule).
 *
 * Every input is a process file for tdm_process_parse(). A failure must leave no object and
 * a message that starts with the file name; a success is walked through every accessor, its
 * rules are checked again from their source, and its steps' rules are evaluated against an
 * item whose fields come from the input itself (fuzz_item.h).
 * See fuzz/README.md for how to build and run it.
 */
#include "fuzz_item.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tdm_process *p = NULL;
    tdm_error err;
    int rc = tdm_process_parse((const char *)data, size, "fuzz.yaml", &p, &err);
    if (rc == 0) {
        check(p != NULL && err.code == 0);
        walk(p, data, size);
        tdm_process_free(p);
        return 0;
    }
    check(p == NULL && err.code == rc);
    check(memchr(err.message, '\0', sizeof err.message) != NULL);
    check(memchr(err.field, '\0', sizeof err.field) != NULL);
    check(rc == TDM_ENOMEM || strncmp(err.message, "fuzz.yaml", 9) == 0);
    check(rc == TDM_EINVAL || rc == TDM_EPARSE || rc == TDM_ETOOBIG || rc == TDM_ENOMEM);
    return 0;
}
