/*
 * test_process.c — unit tests for process files (src/core/process.c): a full file read back
 * through every accessor, defaults, and each kind of mistake with its exact message, line and
 * key path; loading from disk; review rules through tdm_process_review(); the examples.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/process_int.h"
#include "policy/rule.h"
#include "tandem/process.h"

#ifndef TDM_TEST_DATA
#define TDM_TEST_DATA "tests/data"
#endif
#ifndef TDM_SOURCE_DIR
#define TDM_SOURCE_DIR "."
#endif
/* The repository's examples (not through tests/data, which a clean clone lacks). */
#define EXAMPLES TDM_SOURCE_DIR "/examples"

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static tdm_process *parse_ok(const char *yaml)
{
    tdm_process *p = NULL;
    tdm_error err;
    int rc = tdm_process_parse(yaml, strlen(yaml), "t.yaml", &p, &err);
    if (rc != 0)
        print_error("unexpected failure: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.message, "");
    assert_non_null(p);
    return p;
}

/*
 * Parses `yaml` (len bytes), which must fail with `code`, a message that is exactly `message`
 * (or, when `message` ends in "...", starts with it) and the key path `field`.
 */
static void fails_len(const char *yaml, size_t len, int code, const char *field,
                      const char *message)
{
    tdm_process *p = (tdm_process *)&p; /* not NULL, to see that it is cleared */
    tdm_error err;
    int rc = tdm_process_parse(yaml, len, "t.yaml", &p, &err);
    size_t mlen = strlen(message);
    int prefix = mlen >= 3 && strcmp(message + mlen - 3, "...") == 0;
    int match =
        prefix ? strncmp(err.message, message, mlen - 3) == 0 : strcmp(err.message, message) == 0;
    if (rc != code || !match || strcmp(err.field, field) != 0)
        print_error("rc %d (want %d)\nmessage \"%s\"\n   want \"%s\"\nfield \"%s\" (want \"%s\")\n",
                    rc, code, err.message, message, err.field, field);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_null(p);
    assert_true(match);
    assert_string_equal(err.field, field);
}

static void fails(const char *yaml, int code, const char *field, const char *message)
{
    fails_len(yaml, strlen(yaml), code, field, message);
}

/* A small valid process; tests splice one change into it. Lines are numbered on the right. */
#define HEAD                                                                                       \
    "process: p\n"                                       /* 1 */                                   \
    "owner: o@example.com\n"                             /* 2 */                                   \
    "kpis: [k]\n"                                        /* 3 */                                   \
    "baseline: {minutes_per_item: 1, error_rate: 0.1}\n" /* 4 */                                   \
    "steps:\n"                                           /* 5 */
#define STEP_A(alloc, guard) STEP_N("s", alloc, guard)
#define STEP_N(id, alloc, guard)                                                                   \
    "  - id: " id "\n"                      /* 6 */                                                \
    "    allocation: " alloc "\n"           /* 7 */                                                \
    "    owner: o\n"                        /* 8 */                                                \
    "    inputs: [text]\n"                  /* 9 */                                                \
    "    output: {field: category}\n"       /* 10 */                                               \
    "    guardrails: {queue: q" guard "}\n" /* 11 */
#define MINIMAL HEAD STEP_A("ai", "")
/* A step's first four lines, 6 to 9, to go on with other keys. */
#define STEP_HEAD(alloc)                                                                           \
    "  - id: s\n"                 /* 6 */                                                          \
    "    allocation: " alloc "\n" /* 7 */                                                          \
    "    owner: o\n"              /* 8 */                                                          \
    "    inputs: [text]\n"        /* 9 */

/* Replaces the first `from` in `base` by `to`, into a static buffer. */
static const char *edit(const char *base, const char *from, const char *to)
{
    static char buf[8192];
    const char *at = strstr(base, from);
    assert_non_null(at);
    size_t head = (size_t)(at - base);
    assert_true(strlen(base) - strlen(from) + strlen(to) < sizeof buf);
    memcpy(buf, base, head);
    strcpy(buf + head, to);
    strcat(buf, at + strlen(from));
    return buf;
}

static const char *minimal_with(const char *from, const char *to)
{
    return edit(MINIMAL, from, to);
}

/* ------------------------------------------------------------------------------------------ */
/* A full file, every accessor                                                                */
/* ------------------------------------------------------------------------------------------ */

static const char full_yaml[] =
    "# A process with every key.\n"
    "process: loan-screening_2\n"
    "description: Screen applications.\n"
    "owner: jan@example.com\n"
    "kpis:\n"
    "  - lead_time_hours\n"
    "  - name: bad_loans_share\n"
    "    target: \"< 5%\"\n"
    "  - {name: cost_per_item}\n"
    "baseline:\n"
    "  minutes_per_item: 25\n"
    "  error_rate: 0.3\n"
    "steps:\n"
    "  - id: screen\n"
    "    allocation: ai\n"
    "    owner: risk@example.com\n"
    "    inputs:\n"
    "      - text\n"
    "      - {name: amount, kind: numeric}\n"
    "      - name: purpose\n"
    "        kind: categorical\n"
    "      - {name: note}\n"
    "    output:\n"
    "      field: decision\n"
    "      labels: [approve, reject, \"yes\", 1]\n"
    "    model: linear\n"
    "    guardrails:\n"
    "      max_error: 0.05\n"
    "      confidence: 0.9\n"
    "      audit_sample: 0.1\n"
    "      review_when:\n"
    "        - 'label == \"reject\"'\n"
    "        - amount > 10000 and not (purpose == \"A40\")\n"
    "        - \"text contains \\\"lawyer\\\"\"\n"
    "      queue: loans\n"
    "      sla_minutes: 90.5\n"
    "      escalation_queue: loans.senior-2\n"
    "      priority: -20\n"
    "  - id: check\n"
    "    allocation: hybrid\n"
    "    owner: desk@example.com\n"
    "    inputs: [text]\n"
    "    output: {field: reply}\n"
    "    guardrails: {queue: desk, max_error: 0.5, confidence: 0.5, audit_sample: 1,\n"
    "                 sla_minutes: 5256000, priority: 1000}\n"
    "  - id: sign-off\n"
    "    allocation: human\n"
    "    owner: head@example.com\n"
    "    output: {field: signed, labels: [done]}\n"
    "    guardrails:\n"
    "      queue: heads\n"
    "      priority: -1000\n"
    "      review_when: []\n";

static void test_full_file(void **state)
{
    (void)state;
    tdm_process *p = parse_ok(full_yaml);
    assert_string_equal(tdm_process_name(p), "loan-screening_2");
    assert_string_equal(tdm_process_owner(p), "jan@example.com");
    assert_string_equal(tdm_process_description(p), "Screen applications.");
    assert_int_equal(tdm_process_kpi_count(p), 3);
    assert_string_equal(tdm_process_kpi(p, 0), "lead_time_hours");
    assert_string_equal(tdm_process_kpi(p, 1), "bad_loans_share");
    assert_string_equal(tdm_process_kpi(p, 2), "cost_per_item");
    assert_null(tdm_process_kpi(p, 3));
    assert_null(tdm__process_kpi_target(p, 0));
    assert_string_equal(tdm__process_kpi_target(p, 1), "< 5%");
    assert_null(tdm__process_kpi_target(p, 2));
    assert_true(tdm_process_baseline_minutes(p) == 25);
    assert_true(tdm_process_baseline_error(p) == 0.3);
    assert_int_equal(tdm_process_step_count(p), 3);
    assert_null(tdm_process_step(p, 3));

    const tdm_step_info *s = tdm_process_step(p, 0);
    assert_non_null(s);
    assert_string_equal(s->id, "screen");
    assert_int_equal(s->allocation, TDM_ALLOC_AI);
    assert_string_equal(s->owner, "risk@example.com");
    assert_int_equal(s->n_inputs, 4);
    assert_string_equal(s->inputs[0].name, "text");
    assert_int_equal(s->inputs[0].kind, TDM_FIELD_TEXT);
    assert_string_equal(s->inputs[1].name, "amount");
    assert_int_equal(s->inputs[1].kind, TDM_FIELD_NUMERIC);
    assert_string_equal(s->inputs[2].name, "purpose");
    assert_int_equal(s->inputs[2].kind, TDM_FIELD_CATEGORICAL);
    assert_string_equal(s->inputs[3].name, "note");
    assert_int_equal(s->inputs[3].kind, TDM_FIELD_TEXT);
    assert_string_equal(s->output, "decision");
    assert_int_equal(s->n_labels, 4);
    assert_string_equal(s->labels[0], "approve");
    assert_string_equal(s->labels[1], "reject");
    assert_string_equal(s->labels[2], "yes");
    assert_string_equal(s->labels[3], "1");
    assert_string_equal(s->model, "linear");
    assert_true(s->max_error == 0.05);
    assert_true(s->confidence == 0.9);
    assert_true(s->audit_sample == 0.1);
    assert_int_equal(s->n_rules, 3);
    assert_string_equal(s->rules[0], "label == \"reject\"");
    assert_string_equal(s->rules[1], "amount > 10000 and not (purpose == \"A40\")");
    assert_string_equal(s->rules[2], "text contains \"lawyer\"");
    assert_string_equal(s->queue, "loans");
    assert_true(s->sla_minutes == 90.5);
    assert_string_equal(s->escalation_queue, "loans.senior-2");
    assert_int_equal(s->priority, -20);

    s = tdm_process_step(p, 1);
    assert_string_equal(s->id, "check");
    assert_int_equal(s->allocation, TDM_ALLOC_HYBRID);
    assert_string_equal(s->owner, "desk@example.com");
    assert_int_equal(s->n_inputs, 1);
    assert_string_equal(s->output, "reply");
    assert_int_equal(s->n_labels, 0);
    assert_string_equal(s->model, "linear");
    assert_true(s->max_error == 0.5);
    assert_true(s->confidence == 0.5);
    assert_true(s->audit_sample == 1);
    assert_int_equal(s->n_rules, 0);
    assert_string_equal(s->queue, "desk");
    assert_true(s->sla_minutes == 5256000);
    assert_null(s->escalation_queue);
    assert_int_equal(s->priority, 1000);

    s = tdm_process_step(p, 2);
    assert_string_equal(s->id, "sign-off");
    assert_int_equal(s->allocation, TDM_ALLOC_HUMAN);
    assert_int_equal(s->n_inputs, 0);
    assert_null(s->model);
    assert_int_equal(s->n_labels, 1);
    assert_string_equal(s->labels[0], "done");
    assert_int_equal(s->n_rules, 0);
    assert_string_equal(s->queue, "heads");
    assert_int_equal(s->priority, -1000);

    size_t index = 99;
    assert_int_equal(tdm_process_step_index(p, "check", &index), 0);
    assert_int_equal(index, 1);
    assert_int_equal(tdm_process_step_index(p, "sign-off", &index), 0);
    assert_int_equal(index, 2);
    assert_int_equal(tdm_process_step_index(p, "nope", &index), TDM_ENOTFOUND);
    assert_int_equal(index, 2);
    assert_int_equal(tdm_process_step_index(p, "Check", NULL), TDM_ENOTFOUND);
    tdm_process_free(p);
    tdm_process_free(NULL);
}

static void test_defaults(void **state)
{
    (void)state;
    tdm_process *p = parse_ok(HEAD STEP_N("a", "ai", "")
                                  STEP_N("b", "hybrid", "") "  - id: h\n"
                                                            "    allocation: human\n"
                                                            "    owner: o\n"
                                                            "    output: {field: f}\n"
                                                            "    guardrails: {queue: q}\n");
    assert_string_equal(tdm_process_description(p), "");
    assert_int_equal(tdm_process_step_count(p), 3);
    for (size_t i = 0; i < 3; i++) {
        const tdm_step_info *s = tdm_process_step(p, i);
        assert_true(s->max_error == 0.01);
        assert_true(s->confidence == 0.95);
        assert_true(s->audit_sample == (i == 0 ? 0.02 : 0));
        assert_true(s->sla_minutes == 1440);
        assert_int_equal(s->priority, 0);
        assert_null(s->escalation_queue);
        assert_int_equal(s->n_labels, 0);
        assert_int_equal(s->n_rules, 0);
        if (i < 2)
            assert_string_equal(s->model, "linear");
        else
            assert_null(s->model);
    }
    tdm_process_free(p);

    /* Null values of optional keys are the same as leaving the keys out. */
    p = parse_ok("process: p\n"
                 "description:\n"
                 "owner: o\n"
                 "kpis: [k]\n"
                 "baseline: {minutes_per_item: 1, error_rate: 0}\n"
                 "steps:\n"
                 "  - id: s\n"
                 "    allocation: hybrid\n"
                 "    owner: o\n"
                 "    inputs: [text]\n"
                 "    model: ~\n"
                 "    output: {field: category, labels: null}\n"
                 "    guardrails:\n"
                 "      queue: q\n"
                 "      review_when:\n"
                 "      escalation_queue:\n");
    const tdm_step_info *s = tdm_process_step(p, 0);
    assert_string_equal(tdm_process_description(p), "");
    assert_string_equal(s->model, "linear");
    assert_int_equal(s->n_labels, 0);
    assert_int_equal(s->n_rules, 0);
    assert_null(s->escalation_queue);
    assert_true(tdm_process_baseline_error(p) == 0);
    tdm_process_free(p);
}

static void test_allocation_names(void **state)
{
    (void)state;
    assert_string_equal(tdm_allocation_name(TDM_ALLOC_AI), "ai");
    assert_string_equal(tdm_allocation_name(TDM_ALLOC_HYBRID), "hybrid");
    assert_string_equal(tdm_allocation_name(TDM_ALLOC_HUMAN), "human");
    assert_string_equal(tdm_allocation_name((tdm_allocation)0), "unknown");
    assert_string_equal(tdm_allocation_name((tdm_allocation)4), "unknown");
}

/* ------------------------------------------------------------------------------------------ */
/* Mistakes                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void test_missing_keys(void **state)
{
    (void)state;
    fails(minimal_with("    allocation: ai\n", ""), TDM_EINVAL, "steps[0].allocation",
          "t.yaml:6: steps[0].allocation: missing (every step needs an allocation: ai, hybrid or "
          "human)");
    fails(minimal_with("owner: o@example.com\n", ""), TDM_EINVAL, "owner",
          "t.yaml:1: owner: missing (every process needs an accountable owner, like owner: "
          "maria@example.com)");
    fails(minimal_with("process: p\n", "# a comment\n\nowner2: x\n"), TDM_EINVAL, "owner2",
          "t.yaml:3: owner2: unknown key \"owner2\" (did you mean \"owner\"?)");
    fails(minimal_with("process: p\n", "\n"), TDM_EINVAL, "process",
          "t.yaml:2: process: missing (a process file starts with the process name, like "
          "process: support-triage)");
    fails(minimal_with("kpis: [k]\n", ""), TDM_EINVAL, "kpis",
          "t.yaml:1: kpis: missing (a process needs at least one linked KPI, the measure it is "
          "meant to improve, like kpis: [first_response_minutes])");
    fails(minimal_with("baseline: {minutes_per_item: 1, error_rate: 0.1}\n", ""), TDM_EINVAL,
          "baseline",
          "t.yaml:1: baseline: missing (the pre-AI baseline, like baseline: "
          "{minutes_per_item: 4.5, error_rate: 0.06})");
    fails(minimal_with("{minutes_per_item: 1, error_rate: 0.1}", "{error_rate: 0.1}"), TDM_EINVAL,
          "baseline.minutes_per_item",
          "t.yaml:4: baseline.minutes_per_item: missing (the minutes a person spends on one item "
          "without AI, like 4.5)");
    fails(minimal_with("{minutes_per_item: 1, error_rate: 0.1}", "{minutes_per_item: 1}"),
          TDM_EINVAL, "baseline.error_rate", "t.yaml:4: baseline.error_rate: missing...");
    fails(HEAD, TDM_EINVAL, "steps",
          "t.yaml:5: steps: expected a list, got nothing (write it like a list of steps, each "
          "starting with - id: NAME)");
    fails(minimal_with("  - id: s\n", "  - name: s\n"), TDM_EINVAL, "steps[0].name",
          "t.yaml:6: steps[0].name: unknown key \"name\" (the keys here are id, allocation, "
          "owner, inputs, output, model, guardrails and refit)");
    fails(minimal_with("  - id: s\n    allocation: ai\n", "  - allocation: ai\n"), TDM_EINVAL,
          "steps[0].id",
          "t.yaml:6: steps[0].id: missing (every step needs an id, like id: "
          "triage)");
    fails(minimal_with("    owner: o\n", ""), TDM_EINVAL, "steps[0].owner",
          "t.yaml:6: steps[0].owner: missing...");
    fails(minimal_with("    output: {field: category}\n", ""), TDM_EINVAL, "steps[0].output",
          "t.yaml:6: steps[0].output: missing (every step needs an output, like output: {field: "
          "category})");
    fails(minimal_with("    guardrails: {queue: q}\n", ""), TDM_EINVAL, "steps[0].guardrails",
          "t.yaml:6: steps[0].guardrails: missing (every step needs guardrails with at least its "
          "queue, like guardrails: {queue: support})");
    fails(minimal_with("{queue: q}", "{max_error: 0.1}"), TDM_EINVAL, "steps[0].guardrails.queue",
          "t.yaml:11: steps[0].guardrails.queue: missing (every step needs the queue its tasks go "
          "to, like queue: support)");
    fails(minimal_with("{field: category}", "{labels: [a]}"), TDM_EINVAL, "steps[0].output.field",
          "t.yaml:10: steps[0].output.field: missing...");
    fails(minimal_with("    inputs: [text]\n", ""), TDM_EINVAL, "steps[0].inputs",
          "t.yaml:6: steps[0].inputs: missing (an ai step needs the item fields its model reads, "
          "like inputs: [text])");
    /* The line of a nested mapping is where its first key is. */
    fails(minimal_with("    guardrails: {queue: q}\n",
                       "    guardrails:\n\n      # the risk budget\n      max_error: 0.1\n"),
          TDM_EINVAL, "steps[0].guardrails.queue",
          "t.yaml:14: steps[0].guardrails.queue: missing...");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    fails(minimal_with("allocation: ai", "allocaton: ai"), TDM_EINVAL, "steps[0].allocaton",
          "t.yaml:7: steps[0].allocaton: unknown key \"allocaton\" (did you mean \"allocation\"?)");
    fails(minimal_with("allocation: ai", "Allocation: ai"), TDM_EINVAL, "steps[0].Allocation",
          "t.yaml:7: steps[0].Allocation: unknown key \"Allocation\" (did you mean "
          "\"allocation\"?)");
    fails(minimal_with("allocation: ai", "alloaction: ai"), TDM_EINVAL, "steps[0].alloaction",
          "t.yaml:7: steps[0].alloaction: unknown key \"alloaction\" (did you mean "
          "\"allocation\"?)");
    fails(minimal_with("{queue: q}", "{queue: q, max_eror: 0.1}"), TDM_EINVAL,
          "steps[0].guardrails.max_eror",
          "t.yaml:11: steps[0].guardrails.max_eror: unknown key \"max_eror\" (did you mean "
          "\"max_error\"?)");
    fails(minimal_with("    guardrails: {queue: q}\n",
                       "    guardrails: {queue: q}\n    sla_minutes: 10\n"),
          TDM_EINVAL, "steps[0].sla_minutes",
          "t.yaml:12: steps[0].sla_minutes: unknown key \"sla_minutes\" here (sla_minutes "
          "belongs under this step's guardrails:)");
    fails(minimal_with("{queue: q}", "{queue: q, model: linear}"), TDM_EINVAL,
          "steps[0].guardrails.model",
          "t.yaml:11: steps[0].guardrails.model: unknown key \"model\" here (model belongs to the "
          "step itself, not its guardrails)");
    fails(minimal_with("process: p\n", "process: p\nallocation: ai\n"), TDM_EINVAL, "allocation",
          "t.yaml:2: allocation: unknown key \"allocation\" here (allocation belongs to a step, "
          "under steps:)");
    fails(minimal_with("process: p\n", "process: p\ncolour: blue\n"), TDM_EINVAL, "colour",
          "t.yaml:2: colour: unknown key \"colour\" (the keys here are process, description, "
          "owner, kpis, baseline, steps and related_by)");
    fails(minimal_with("{field: category}", "{field: category, lables: [a]}"), TDM_EINVAL,
          "steps[0].output.lables",
          "t.yaml:10: steps[0].output.lables: unknown key \"lables\" (did you mean \"labels\"?)");
    fails(minimal_with("inputs: [text]", "inputs: [{name: a, knd: numeric}]"), TDM_EINVAL,
          "steps[0].inputs[0].knd",
          "t.yaml:9: steps[0].inputs[0].knd: unknown key \"knd\" (did you mean \"kind\"?)");
    fails(minimal_with("kpis: [k]", "kpis: [{nam: k}]"), TDM_EINVAL, "kpis[0].nam",
          "t.yaml:3: kpis[0].nam: unknown key \"nam\" (did you mean \"name\"?)");
    /* Keys must be plain names. */
    fails(minimal_with("process: p\n", "process: p\n? [a]\n: b\n"), TDM_EINVAL, "",
          "t.yaml:2: a key must be a name (write name: value)");
    fails(minimal_with("process: p\n", "process: p\n~: b\n"), TDM_EINVAL, "",
          "t.yaml:2: a key must be a name (write name: value)");
}

static void test_bad_values(void **state)
{
    (void)state;
    fails(minimal_with("allocation: ai", "allocation: auto"), TDM_EINVAL, "steps[0].allocation",
          "t.yaml:7: steps[0].allocation: unknown allocation \"auto\" (expected ai, hybrid or "
          "human)");
    fails(minimal_with("allocation: ai", "allocation: AI"), TDM_EINVAL, "steps[0].allocation",
          "t.yaml:7: steps[0].allocation: unknown allocation \"AI\" (expected ai, hybrid or "
          "human)");
    fails(minimal_with("allocation: ai", "allocation: [ai]"), TDM_EINVAL, "steps[0].allocation",
          "t.yaml:7: steps[0].allocation: expected text, got a list (write it like hybrid)");
    fails(minimal_with("process: p", "process: Support Triage"), TDM_EINVAL, "process",
          "t.yaml:1: process: \"Support Triage\" is not a process name (use 1 to 64 lowercase "
          "letters, digits, '_' and '-', starting with a letter or digit, like support-triage)");
    fails(minimal_with("process: p", "process: -p"), TDM_EINVAL, "process",
          "t.yaml:1: process: \"-p\" is not a process name...");
    fails(minimal_with("process: p",
                       "process: "
                       "a2345678901234567890123456789012345678901234567890123456789012345"),
          TDM_EINVAL, "process",
          "t.yaml:1: process: \"a23456789012345678901234567890123456789"
          "012345678...\" is not a process name...");
    tdm_process_free(parse_ok(
        minimal_with("process: p",
                     "process: a234567890123456789012345678901234567890123456789012345678901234")));
    fails(minimal_with("id: s", "id: Triage"), TDM_EINVAL, "steps[0].id",
          "t.yaml:6: steps[0].id: \"Triage\" is not a step id (use 1 to 64 lowercase letters, "
          "digits, '_' and '-', starting with a letter or digit, like triage)");
    fails(minimal_with("id: s", "id: a.b"), TDM_EINVAL, "steps[0].id",
          "t.yaml:6: steps[0].id: \"a.b\" is not a step id...");
    fails(minimal_with("{queue: q}", "{queue: Support}"), TDM_EINVAL, "steps[0].guardrails.queue",
          "t.yaml:11: steps[0].guardrails.queue: \"Support\" is not a queue name (use 1 to 64 "
          "lowercase letters, digits, '_', '.' and '-', starting with a letter or digit, like "
          "support or loans.tier-2)");
    fails(minimal_with("{queue: q}", "{queue: .q}"), TDM_EINVAL, "steps[0].guardrails.queue",
          "t.yaml:11: steps[0].guardrails.queue: \".q\" is not a queue name...");
    fails(minimal_with("{queue: q}", "{queue: q, escalation_queue: q}"), TDM_EINVAL,
          "steps[0].guardrails.escalation_queue",
          "t.yaml:11: steps[0].guardrails.escalation_queue: the same queue as queue, \"q\" "
          "(escalations go to another queue, like q-leads)");
    fails(minimal_with("{queue: q}", "{queue: q, escalation_queue: \"a b\"}"), TDM_EINVAL,
          "steps[0].guardrails.escalation_queue",
          "t.yaml:11: steps[0].guardrails.escalation_queue: \"a b\" is not a queue name...");
    fails(minimal_with("owner: o\n", "owner: \"\"\n"), TDM_EINVAL, "steps[0].owner",
          "t.yaml:8: steps[0].owner: is empty (name the person accountable for this step)");
    fails(minimal_with("owner: o@example.com", "owner:"), TDM_EINVAL, "owner",
          "t.yaml:2: owner: has no value (write it like maria@example.com)");
}

static void test_kpis(void **state)
{
    (void)state;
    fails(minimal_with("kpis: [k]", "kpis: []"), TDM_EINVAL, "kpis",
          "t.yaml:3: kpis: a process needs at least one linked KPI, the measure it is meant to "
          "improve, like kpis: [first_response_minutes]");
    fails(minimal_with("kpis: [k]", "kpis:"), TDM_EINVAL, "kpis",
          "t.yaml:3: kpis: a process needs at least one linked KPI...");
    fails(minimal_with("kpis: [k]", "kpis: k"), TDM_EINVAL, "kpis",
          "t.yaml:3: kpis: expected a list, got \"k\" (write a list, like "
          "[first_response_minutes])");
    fails(minimal_with("kpis: [k]", "kpis: [k, \"\"]"), TDM_EINVAL, "kpis[1]",
          "t.yaml:3: kpis[1]: is empty (name the measure, like first_response_minutes)");
    fails(minimal_with("kpis: [k]", "kpis: [{name: ''}]"), TDM_EINVAL, "kpis[0].name",
          "t.yaml:3: kpis[0].name: is empty (name the measure, like first_response_minutes)");
    fails(minimal_with("kpis: [k]", "kpis: [k, ~]"), TDM_EINVAL, "kpis[1]",
          "t.yaml:3: kpis[1]: has no value (write it like first_response_minutes)");
    fails(minimal_with("kpis: [k]", "kpis:\n  - a\n  - b\n  - a"), TDM_EINVAL, "kpis[2]",
          "t.yaml:6: kpis[2]: the KPI \"a\" is listed twice (also at [0], line 4; keep one)");
    fails(minimal_with("kpis: [k]", "kpis: [{target: x}]"), TDM_EINVAL, "kpis[0].name",
          "t.yaml:3: kpis[0].name: missing...");
    fails(minimal_with("kpis: [k]", "kpis: [[k]]"), TDM_EINVAL, "kpis[0]",
          "t.yaml:3: kpis[0]: expected text, got a list (write it like first_response_minutes)");
    fails(minimal_with("kpis: [k]", "kpis: [{name: k, target: [1]}]"), TDM_EINVAL, "kpis[0].target",
          "t.yaml:3: kpis[0].target: expected text, got a list...");
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        const char *message;
    } cases[] = {
        {"0", "t.yaml:11: steps[0].guardrails.max_error: 0 is out of range: it must be more than "
              "0 and at most 0.5 (the highest error rate allowed on decisions the AI makes alone: "
              "0.01 means 1%)"},
        {"0.6", "t.yaml:11: steps[0].guardrails.max_error: 0.6 is out of range..."},
        {"-0.01", "t.yaml:11: steps[0].guardrails.max_error: -0.01 is out of range..."},
        {"0.01abc", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got "
                    "\"0.01abc\" (write it like 0.01)"},
        {"\"0.01\"", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got the "
                     "quoted text \"0.01\" (remove the quotes)"},
        {"'0.01'", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got the quoted "
                   "text \"0.01\" (remove the quotes)"},
        {"\"x\"", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got the quoted "
                  "text \"x\" (write it like 0.01)"},
        {".nan", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got \".nan\" "
                 "(write it like 0.01)"},
        {"nan", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got \"nan\"..."},
        {".inf", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got \".inf\"..."},
        {"inf", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got \"inf\"..."},
        {"0x10", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got \"0x10\"..."},
        {"1_000", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got \"1_000\"..."},
        {"1e400", "t.yaml:11: steps[0].guardrails.max_error: \"1e400\" is not a finite number "
                  "(write it like 0.01)"},
        {"1%", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got \"1%\" (write "
               "shares as fractions: 2% is 0.02)"},
        {"[0.01]", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got a list "
                   "(write it like 0.01)"},
        {"{a: 1}", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got a mapping..."},
        {"~", "t.yaml:11: steps[0].guardrails.max_error: has no value (write a number, like 0.01)"},
        {"", "t.yaml:11: steps[0].guardrails.max_error: has no value..."},
        {"true", "t.yaml:11: steps[0].guardrails.max_error: expected a number, got \"true\"..."},
    };
    char guard[80];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(guard, sizeof guard, "{queue: q, max_error: %s}", cases[i].value);
        fails(minimal_with("{queue: q}", guard), TDM_EINVAL, "steps[0].guardrails.max_error",
              cases[i].message);
    }
    /* Accepted spellings. */
    static const char *const good[] = {"0.5", ".5", "5e-1", "+0.5", "0.50", "5.E-1", "1e-300"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(guard, sizeof guard, "{queue: q, max_error: %s}", good[i]);
        tdm_process *p = parse_ok(minimal_with("{queue: q}", guard));
        assert_true(tdm_process_step(p, 0)->max_error > 0);
        tdm_process_free(p);
    }
    /* The other ranges, at and beyond their edges. */
    fails(minimal_with("{queue: q}", "{queue: q, confidence: 1}"), TDM_EINVAL,
          "steps[0].guardrails.confidence",
          "t.yaml:11: steps[0].guardrails.confidence: 1 is out of range: it must be at least 0.5 "
          "and less than 1 (how sure the risk bound must be: 0.95 is usual)");
    fails(minimal_with("{queue: q}", "{queue: q, confidence: 0.49}"), TDM_EINVAL,
          "steps[0].guardrails.confidence", "...");
    fails(minimal_with("{queue: q}", "{queue: q, audit_sample: 1.01}"), TDM_EINVAL,
          "steps[0].guardrails.audit_sample",
          "t.yaml:11: steps[0].guardrails.audit_sample: 1.01 is out of range: it must be at least "
          "0 and at most 1...");
    fails(minimal_with("{queue: q}", "{queue: q, audit_sample: -0.1}"), TDM_EINVAL,
          "steps[0].guardrails.audit_sample", "...");
    fails(minimal_with("{queue: q}", "{queue: q, sla_minutes: 0}"), TDM_EINVAL,
          "steps[0].guardrails.sla_minutes",
          "t.yaml:11: steps[0].guardrails.sla_minutes: 0 is out of range: it must be more than 0 "
          "and at most 5256000 (minutes until a queued task is due; ten years at most)");
    fails(minimal_with("{queue: q}", "{queue: q, sla_minutes: 5256001}"), TDM_EINVAL,
          "steps[0].guardrails.sla_minutes", "...");
    fails(minimal_with("{queue: q}", "{queue: q, priority: 1001}"), TDM_EINVAL,
          "steps[0].guardrails.priority",
          "t.yaml:11: steps[0].guardrails.priority: must be a whole number from -1000 to 1000 "
          "(got 1001)");
    fails(minimal_with("{queue: q}", "{queue: q, priority: -99999999999999999999}"), TDM_EINVAL,
          "steps[0].guardrails.priority", "...");
    fails(minimal_with("{queue: q}", "{queue: q, priority: 1.0}"), TDM_EINVAL,
          "steps[0].guardrails.priority",
          "t.yaml:11: steps[0].guardrails.priority: expected a whole number from -1000 to 1000, "
          "got \"1.0\"");
    fails(minimal_with("{queue: q}", "{queue: q, priority: \"5\"}"), TDM_EINVAL,
          "steps[0].guardrails.priority",
          "t.yaml:11: steps[0].guardrails.priority: expected a whole number from -1000 to 1000, "
          "got the quoted text \"5\"");
    tdm_process *p = parse_ok(minimal_with("{queue: q}", "{queue: q, priority: +7}"));
    assert_int_equal(tdm_process_step(p, 0)->priority, 7);
    tdm_process_free(p);
    p = parse_ok(minimal_with("{queue: q}", "{queue: q, priority: -0000000000000999}"));
    assert_int_equal(tdm_process_step(p, 0)->priority, -999);
    tdm_process_free(p);
    fails(minimal_with("minutes_per_item: 1", "minutes_per_item: 0"), TDM_EINVAL,
          "baseline.minutes_per_item",
          "t.yaml:4: baseline.minutes_per_item: 0 is out of range: it must be more than 0 and at "
          "most 100000 (minutes a person spends on one item)");
    fails(minimal_with("minutes_per_item: 1", "minutes_per_item: 100001"), TDM_EINVAL,
          "baseline.minutes_per_item", "...");
    fails(minimal_with("error_rate: 0.1", "error_rate: 1.5"), TDM_EINVAL, "baseline.error_rate",
          "t.yaml:4: baseline.error_rate: 1.5 is out of range: it must be at least 0 and at most "
          "1 (a share: 0.06 means 6% of items)");
    fails(minimal_with("{minutes_per_item: 1, error_rate: 0.1}", "[1, 0.1]"), TDM_EINVAL,
          "baseline",
          "t.yaml:4: baseline: expected a mapping of keys to values, got a list "
          "(write it like baseline: {minutes_per_item: 4.5, error_rate: 0.06})");
}

static void test_steps(void **state)
{
    (void)state;
    /* Duplicate step ids: the second is named, with the first's place. */
    fails(HEAD STEP_A("ai", "") STEP_A("hybrid", ""), TDM_EINVAL, "steps[1].id",
          "t.yaml:12: steps[1].id: duplicate step id \"s\" (steps[0] on line 6 has it too; step "
          "ids must be unique within a process)");
    fails(edit(HEAD, "steps:\n", "steps: []\n"), TDM_EINVAL, "steps",
          "t.yaml:5: steps: an empty list (a process needs at least one step)");
    fails(minimal_with("  - id: s\n", "  - s\n  - id: s\n"), TDM_EINVAL, "steps[0]",
          "t.yaml:6: steps[0]: expected a mapping of keys to values, got \"s\" (write it like - "
          "id: triage (one mapping per step))");

    /* 64 steps pass, 65 do not. */
    char *buf = malloc(65 * 200 + 200);
    assert_non_null(buf);
    size_t o = (size_t)sprintf(buf, "%s", HEAD);
    for (int i = 0; i < 64; i++)
        o += (size_t)sprintf(buf + o,
                             "  - {id: s%d, allocation: human, owner: o, output: {field: f}, "
                             "guardrails: {queue: q}}\n",
                             i);
    tdm_process *p = parse_ok(buf);
    assert_int_equal(tdm_process_step_count(p), 64);
    size_t index = 0;
    assert_int_equal(tdm_process_step_index(p, "s63", &index), 0);
    assert_int_equal(index, 63);
    tdm_process_free(p);
    sprintf(buf + o, "  - {id: s64, allocation: human, owner: o, output: {field: f}, "
                     "guardrails: {queue: q}}\n");
    fails(buf, TDM_EINVAL, "steps",
          "t.yaml:6: steps: 65 steps; a process has at most 64 (split it into several processes)");
    free(buf);

    /* A human step: no model, inputs optional (even empty). */
    fails(minimal_with("allocation: ai\n", "allocation: human\n    model: linear\n"), TDM_EINVAL,
          "steps[0].model",
          "t.yaml:8: steps[0].model: a human step has no model (remove model, or make the step "
          "hybrid)");
    p = parse_ok(minimal_with("allocation: ai\n    owner: o\n    inputs: [text]\n",
                              "allocation: human\n    owner: o\n    inputs: []\n"));
    assert_int_equal(tdm_process_step(p, 0)->n_inputs, 0);
    tdm_process_free(p);
    fails(minimal_with("allocation: ai\n", "allocation: human\n    refit: auto\n"), TDM_EINVAL,
          "steps[0].refit",
          "t.yaml:8: steps[0].refit: a human step has no model to refit (remove refit, or make "
          "the step hybrid)");
    /* refit: auto by default, off on request, nothing else. */
    p = parse_ok(MINIMAL);
    assert_int_equal(tdm_process_step(p, 0)->refit, 1);
    tdm_process_free(p);
    p = parse_ok(minimal_with("allocation: ai\n", "allocation: ai\n    refit: off\n"));
    assert_int_equal(tdm_process_step(p, 0)->refit, 0);
    tdm_process_free(p);
    p = parse_ok(minimal_with("allocation: ai\n", "allocation: ai\n    refit: auto\n"));
    assert_int_equal(tdm_process_step(p, 0)->refit, 1);
    tdm_process_free(p);
    fails(minimal_with("allocation: ai\n", "allocation: ai\n    refit: weekly\n"), TDM_EINVAL,
          "steps[0].refit",
          "t.yaml:8: steps[0].refit: unknown refit \"weekly\" (auto: refit the model from what "
          "people taught it as answers accumulate; off: learn online only)");
    fails(minimal_with("allocation: ai", "allocation: hybrid\n    model: neural"), TDM_EINVAL,
          "steps[0].model",
          "t.yaml:8: steps[0].model: unknown model kind \"neural\" (known kinds: linear)");
    fails(minimal_with("inputs: [text]", "inputs: []"), TDM_EINVAL, "steps[0].inputs",
          "t.yaml:9: steps[0].inputs: an empty list (an ai step needs at least one field for its "
          "model to read, like inputs: [text])");
    fails(minimal_with("allocation: ai\n    owner: o\n    inputs: [text]",
                       "allocation: hybrid\n    owner: o\n    inputs: ~"),
          TDM_EINVAL, "steps[0].inputs",
          "t.yaml:6: steps[0].inputs: missing (a hybrid step needs the item fields its model "
          "reads, like inputs: [text])");

    /* Inputs. */
    fails(minimal_with("inputs: [text]", "inputs: text"), TDM_EINVAL, "steps[0].inputs",
          "t.yaml:9: steps[0].inputs: expected a list, got \"text\" (write a list, like [text] "
          "or [{name: amount, kind: numeric}])");
    fails(minimal_with("inputs: [text]", "inputs: {text: 1}"), TDM_EINVAL, "steps[0].inputs",
          "t.yaml:9: steps[0].inputs: expected a list, got a mapping...");
    fails(minimal_with("inputs: [text]", "inputs: [a, {name: b, kind: number}]"), TDM_EINVAL,
          "steps[0].inputs[1].kind",
          "t.yaml:9: steps[0].inputs[1].kind: unknown kind \"number\" (expected text, "
          "categorical or numeric)");
    fails(minimal_with("inputs: [text]", "inputs: [a, {kind: numeric}]"), TDM_EINVAL,
          "steps[0].inputs[1].name", "t.yaml:9: steps[0].inputs[1].name: missing...");
    fails(minimal_with("inputs: [text]", "inputs:\n      - a\n      - b\n      - {name: a}"),
          TDM_EINVAL, "steps[0].inputs[2]",
          "t.yaml:12: steps[0].inputs[2]: the input \"a\" is listed twice (also at [0], line 10; "
          "keep one)");
    fails(minimal_with("inputs: [text]", "inputs: [category]"), TDM_EINVAL, "steps[0].output.field",
          "t.yaml:10: steps[0].output.field: \"category\" is also one of the step's inputs (a "
          "model cannot read its own answer; name the answer differently or drop the input)");

    /* Output and labels. */
    fails(minimal_with("{field: category}", "category"), TDM_EINVAL, "steps[0].output",
          "t.yaml:10: steps[0].output: expected a mapping of keys to values, got \"category\" "
          "(write it like output: {field: category, labels: [a, b]})");
    fails(minimal_with("{field: category}", "{field: category, labels: []}"), TDM_EINVAL,
          "steps[0].output.labels",
          "t.yaml:10: steps[0].output.labels: an empty list (name at least one label, or leave "
          "labels out to learn them from the training data)");
    fails(minimal_with("{field: category}", "{field: category, labels: [a, b, a]}"), TDM_EINVAL,
          "steps[0].output.labels[2]",
          "t.yaml:10: steps[0].output.labels[2]: the label \"a\" is listed twice (also at [0], "
          "line 10; keep one)");
    fails(minimal_with("{field: category}", "{field: category, labels: [a, \"\"]}"), TDM_EINVAL,
          "steps[0].output.labels[1]",
          "t.yaml:10: steps[0].output.labels[1]: an empty label (every label needs some text)");
    fails(minimal_with("{field: category}", "{field: category, labels: a}"), TDM_EINVAL,
          "steps[0].output.labels", "t.yaml:10: steps[0].output.labels: expected a list...");
    fails(minimal_with("{field: category}", "{field: \"\"}"), TDM_EINVAL, "steps[0].output.field",
          "t.yaml:10: steps[0].output.field: is empty (name the answer, like category)");
}

static void test_many_labels(void **state)
{
    (void)state;
    /* 10000 labels pass, 10001 do not; a duplicate far down is found and placed. */
    size_t cap = 200000;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t o = (size_t)sprintf(buf, "%s",
                               HEAD STEP_HEAD("ai") "    guardrails: {queue: q}\n"
                                                    "    output:\n"     /* 11 */
                                                    "      field: c\n"  /* 12 */
                                                    "      labels:\n"); /* 13 */
    size_t start = o;
    for (int i = 0; i < 10000; i++)
        o += (size_t)sprintf(buf + o, "        - l%d\n", i);
    tdm_process *p = parse_ok(buf);
    assert_int_equal(tdm_process_step(p, 0)->n_labels, 10000);
    assert_string_equal(tdm_process_step(p, 0)->labels[9999], "l9999");
    tdm_process_free(p);
    sprintf(buf + o, "        - extra\n");
    fails(buf, TDM_EINVAL, "steps[0].output.labels",
          "t.yaml:14: steps[0].output.labels: 10001 labels; a step has at most 10000");
    /* Make label 9000 repeat label 17. */
    o = start;
    for (int i = 0; i < 10000; i++)
        o += (size_t)sprintf(buf + o, "        - l%d\n", i == 9000 ? 17 : i);
    fails(buf, TDM_EINVAL, "steps[0].output.labels[9000]",
          "t.yaml:9014: steps[0].output.labels[9000]: the label \"l17\" is listed twice (also at "
          "[17], line 31; keep one)");
    free(buf);
}

static void test_yaml_level_refusals(void **state)
{
    (void)state;
    /* Duplicate keys. */
    fails(minimal_with("    owner: o\n", "    owner: o\n    owner: p\n"), TDM_EINVAL,
          "steps[0].owner",
          "t.yaml:9: steps[0].owner: duplicate key (it is also on line 8; keep "
          "one)");
    fails(minimal_with("process: p\n", "process: p\nprocess: p\n"), TDM_EINVAL, "process",
          "t.yaml:2: process: duplicate key (it is also on line 1; keep one)");
    /* Anchors and aliases, including the "billion laughs". */
    fails("process: &n p\nowner: *n\n", TDM_EINVAL, "",
          "t.yaml:1: aliases are not supported: anchors (&name) and aliases (*name) are refused "
          "(write the values out in full)");
    fails(minimal_with("kpis: [k]", "kpis: [k]\nx: *k"), TDM_EINVAL, "",
          "t.yaml:4: aliases are not supported...");
    fails("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
          "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
          "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n",
          TDM_EINVAL, "", "t.yaml:1: aliases are not supported...");
    fails(minimal_with("{queue: q}", "&g {queue: q}"), TDM_EINVAL, "",
          "t.yaml:11: aliases are not supported...");
    /* Tags. */
    fails(minimal_with("{queue: q}", "!!map {queue: q}"), TDM_EINVAL, "",
          "t.yaml:11: YAML tags (!!map) are not supported (remove the tag; quote a value to make "
          "it text)");
    fails(minimal_with("owner: o\n", "owner: !local o\n"), TDM_EINVAL, "",
          "t.yaml:8: YAML tags (!local) are not supported...");
    /* A second document. */
    fails(MINIMAL "---\nprocess: q\n", TDM_EINVAL, "",
          "t.yaml:12: a second YAML document (a process file holds one process; remove the '---' "
          "line and what follows, or put it in its own file)");
    fails(MINIMAL "...\nprocess: q\n", TDM_EPARSE, "",
          "t.yaml:13: invalid YAML at column 1: did not find expected <document start>...");
    fails(MINIMAL "...\n---\nprocess: q\n", TDM_EINVAL, "", "t.yaml:13: a second YAML document...");
    tdm_process_free(parse_ok("---\n" MINIMAL "...\n"));
    /* NUL characters, through an escape or raw. */
    fails(minimal_with("owner: o\n", "owner: \"a\\0b\"\n"), TDM_EINVAL, "",
          "t.yaml:8: a value contains a NUL character (remove the \\0 escape)");
    static const char raw[] = "process: p\x00\n";
    fails_len(raw, sizeof raw - 1, TDM_EPARSE, "",
              "t.yaml:1: invalid YAML at column 11: control characters are not allowed (save the "
              "file as UTF-8 text)");
    /* Nesting deeper than any process file needs. */
    char deep[200];
    size_t o = (size_t)sprintf(deep, "process: ");
    for (int i = 0; i < 20; i++)
        deep[o++] = '[';
    deep[o] = '\0';
    fails(deep, TDM_EINVAL, "",
          "t.yaml:1: nested too deeply (a process file needs at most 16 levels; check the "
          "indentation)");
    /* The top level must be a mapping. */
    fails("- a\n- b\n", TDM_EINVAL, "",
          "t.yaml:1: expected a mapping at the top of the file, got a list (a process file is "
          "key: value lines, starting with process: NAME)");
    fails("\n\nhello\n", TDM_EINVAL, "",
          "t.yaml:3: expected a mapping at the top of the file, got a single value...");
}

static void test_yaml_syntax(void **state)
{
    (void)state;
    /* A tab indenting a line. */
    fails(minimal_with("    allocation: ai", "\tallocation: ai"), TDM_EPARSE, "",
          "t.yaml:7: invalid YAML at column 1: found a tab character that violates indentation, "
          "while scanning a plain scalar that starts on line 6 (YAML indents with spaces: "
          "replace the tab)");
    fails("process: p\n\towner: o\n", TDM_EPARSE, "", "t.yaml:2: invalid YAML at column 1: ...");
    /* An unclosed flow sequence. */
    fails(minimal_with("inputs: [text]", "inputs: [text"), TDM_EPARSE, "",
          "t.yaml:10: invalid YAML at column 11: did not find expected ',' or ']', while parsing "
          "a flow sequence that starts on line 9 (close the list with ] and separate its items "
          "with commas)");
    fails("process: [\n", TDM_EPARSE, "",
          "t.yaml:2: invalid YAML at column 1: did not find expected node content, while parsing "
          "a flow node (check the indentation, colons and quotes here and on the line before)");
    /* Bad indentation. */
    fails(minimal_with("    owner: o\n", "   owner: o\n"), TDM_EPARSE, "",
          "t.yaml:8: invalid YAML at column 4: did not find expected '-' indicator, while parsing "
          "a block collection that starts on line 6 (keys of one mapping, and the - of one list, "
          "must line up exactly)");
    fails("process: p\nowner: a: b\n", TDM_EPARSE, "",
          "t.yaml:2: invalid YAML at column 9: mapping values are not allowed in this context "
          "(put a value that holds \": \" in quotes, or fix the indentation)");
    fails("process: \"p\n", TDM_EPARSE, "",
          "t.yaml:2: invalid YAML at column 1: found unexpected end of stream, while scanning a "
          "quoted scalar that starts on line 1 (close the quote, and inside double quotes write "
          "\\\\ for a backslash)");
    /* A mistake at the very end of a file without a final newline stays on its last line. */
    fails("process: p\nowner: [", TDM_EPARSE, "",
          "t.yaml:2: invalid YAML at column 9: did not find expected node content, while parsing "
          "a flow node (check the indentation, colons and quotes here and on the line before)");
    /* Not UTF-8. */
    fails("process: p\nowner: \xff\n", TDM_EPARSE, "",
          "t.yaml:2: invalid YAML at column 8: invalid leading UTF-8 octet (save the file as "
          "UTF-8 text)");
    /* Every message starts with the file name, also without one. */
    tdm_process *p = (tdm_process *)&p;
    tdm_error err;
    assert_int_equal(tdm_process_parse("x: [", 4, NULL, &p, &err), TDM_EPARSE);
    assert_null(p);
    assert_memory_equal(err.message, "<process>:", 10);
}

static void test_empty_and_big(void **state)
{
    (void)state;
    static const char *const empties[] = {
        "", "\n\n", "# only a comment\n", "---\n", "--- ~\n", "null\n", "  \n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++)
        fails(empties[i], TDM_EINVAL, "",
              "t.yaml:1: the file is empty (a process file starts with process: NAME; see "
              "docs/process-file.md)");
    tdm_process *p = (tdm_process *)&p;
    tdm_error err;
    assert_int_equal(tdm_process_parse(NULL, 0, "t.yaml", &p, &err), TDM_EINVAL);
    assert_null(p);

    /* Exactly 1 MiB passes the size check (and parses, padded with a comment); one more does not.
     */
    size_t n = TDM__PROCESS_MAX_BYTES;
    char *big = malloc(n + 1);
    assert_non_null(big);
    size_t o = (size_t)sprintf(big, "%s#", MINIMAL);
    memset(big + o, 'x', n - o - 1);
    big[n - 1] = '\n';
    p = NULL;
    assert_int_equal(tdm_process_parse(big, n, "t.yaml", &p, &err), 0);
    tdm_process_free(p);
    big[n] = '\n';
    fails_len(big, n + 1, TDM_ETOOBIG, "",
              "t.yaml: the file is 1048577 bytes; process files are limited to 1 MiB (1048576 "
              "bytes)");

    /* The same through a file. */
    char path[] = "/tmp/tdm_process_big_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, big, n + 1), (ssize_t)(n + 1));
    close(fd);
    p = (tdm_process *)&p;
    assert_int_equal(tdm_process_load(path, &p, &err), TDM_ETOOBIG);
    assert_null(p);
    char want[200];
    snprintf(want, sizeof want, "%s: the file is larger than 1 MiB, the limit for process files",
             path);
    assert_string_equal(err.message, want);
    unlink(path);
    free(big);
}

static void test_rules_in_file(void **state)
{
    (void)state;
    fails(minimal_with("{queue: q}", "{queue: q, review_when: ['label in [\"a\"', 'x > 1']}"),
          TDM_EINVAL, "steps[0].guardrails.review_when[0]",
          "t.yaml:11: steps[0].guardrails.review_when[0]: column 14: expected ']' to close the "
          "list opened at column 10 (lists are [\"a\", \"b\"])");
    fails(minimal_with("    guardrails: {queue: q}\n", "    guardrails:\n"
                                                       "      queue: q\n"
                                                       "      review_when:\n"
                                                       "        - amount > 10000\n"
                                                       "        - amount\n"),
          TDM_EINVAL, "steps[0].guardrails.review_when[1]",
          "t.yaml:15: steps[0].guardrails.review_when[1]: column 1: a rule must be a condition, "
          "like amount > 10000 or label == \"reject\"");
    fails(minimal_with("{queue: q}", "{queue: q, review_when: 'x > 1'}"), TDM_EINVAL,
          "steps[0].guardrails.review_when",
          "t.yaml:11: steps[0].guardrails.review_when: expected a list, got the quoted text "
          "\"x > 1\" (write a list, like ['amount > 10000', 'label == \"reject\"'])");
    fails(minimal_with("{queue: q}", "{queue: q, review_when: ['']}"), TDM_EINVAL,
          "steps[0].guardrails.review_when[0]",
          "t.yaml:11: steps[0].guardrails.review_when[0]: column 1: the rule is empty (write a "
          "condition, like amount > 10000)");
    fails(minimal_with("{queue: q}", "{queue: q, review_when: [~]}"), TDM_EINVAL,
          "steps[0].guardrails.review_when[0]",
          "t.yaml:11: steps[0].guardrails.review_when[0]: has no value (write it like 'amount > "
          "10000')");
    /* A rule over 4096 bytes, and more than 100 rules. */
    char *buf = malloc(20000);
    assert_non_null(buf);
    size_t o = (size_t)sprintf(buf, "%s",
                               HEAD STEP_HEAD("ai") "    output: {field: category}\n" /* 10 */
                                                    "    guardrails:\n"               /* 11 */
                                                    "      queue: q\n"                /* 12 */
                                                    "      review_when:\n");          /* 13 */
    size_t rules_at = o;
    sprintf(buf + o, "        - 'x > 1%*s'\n", 4092, "");
    fails(buf, TDM_EINVAL, "steps[0].guardrails.review_when[0]",
          "t.yaml:14: steps[0].guardrails.review_when[0]: column 4097: the rule is longer than "
          "4096 bytes (split it into several rules, one per reason to review)");
    sprintf(buf + o, "        - 'x > 1%*s'\n", 4091, "");
    tdm_process_free(parse_ok(buf));
    o = rules_at;
    for (int i = 0; i < 101; i++)
        o += (size_t)sprintf(buf + o, "        - x > %d\n", i);
    fails(buf, TDM_EINVAL, "steps[0].guardrails.review_when",
          "t.yaml:14: steps[0].guardrails.review_when: 101 rules; a step has at most 100");
    free(buf);
}

/* An item for tdm_process_review(). */
typedef struct item {
    double amount;
    const char *country;
    int fail;
} item;

static int item_lookup(void *ctx, const char *name, size_t len, tdm_rule_value *out)
{
    const item *it = ctx;
    if (it->fail)
        return TDM_EIO;
    if (len == 6 && memcmp(name, "amount", 6) == 0) {
        out->type = TDM_RULE_NUMBER;
        out->number = it->amount;
        return 0;
    }
    if (len == 7 && memcmp(name, "country", 7) == 0 && it->country) {
        out->type = TDM_RULE_STRING;
        out->string = it->country;
        out->length = strlen(it->country);
        return 0;
    }
    return TDM_ENOTFOUND;
}

static void test_review(void **state)
{
    (void)state;
    tdm_process *p =
        parse_ok(HEAD STEP_A("hybrid", ", review_when: ['label == \"reject\"', "
                                       "'amount > 10000', 'country == null', "
                                       "'confidence < 0.5']") "  - id: t\n"
                                                              "    allocation: human\n"
                                                              "    owner: o\n"
                                                              "    output: {field: f}\n"
                                                              "    guardrails: {queue: q}\n");
    item it = {500, "NL", 0};
    size_t fired = 7;
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "approve", 0.9, &fired), 0);
    assert_int_equal(fired, SIZE_MAX);
    /* The first rule that holds is reported, even when later ones hold too. */
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "reject", 0.1, &fired), 0);
    assert_int_equal(fired, 0);
    it.amount = 20000;
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "approve", 0.1, &fired), 0);
    assert_int_equal(fired, 1);
    it.amount = 1;
    it.country = NULL;
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, NULL, 0.1, &fired), 0);
    assert_int_equal(fired, 2);
    it.country = "BE";
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "approve", 0.1, &fired), 0);
    assert_int_equal(fired, 3);
    /* A step without rules never fires. */
    assert_int_equal(tdm_process_review(p, 1, item_lookup, &it, "reject", 0, &fired), 0);
    assert_int_equal(fired, SIZE_MAX);
    /* Bad step, no output, failing lookup. */
    fired = 0;
    assert_int_equal(tdm_process_review(p, 2, item_lookup, &it, "x", 1, &fired), TDM_EINVAL);
    assert_int_equal(fired, SIZE_MAX);
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "x", 1, NULL), TDM_EINVAL);
    assert_int_equal(tdm_process_review(NULL, 0, item_lookup, &it, "x", 1, &fired), TDM_EINVAL);
    /* A lookup that fails is passed on, and counts as the rule firing (fail safe). */
    it.fail = 1;
    fired = SIZE_MAX;
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "approve", 1, &fired), TDM_EIO);
    assert_int_equal(fired, 1); /* rule 0 reads no field; rule 1 reads amount */
    tdm_process_free(p);
}

static void test_load(void **state)
{
    (void)state;
    char path[] = "/tmp/tdm_process_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = minimal_with("allocation: ai", "allocation: sometimes");
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    tdm_process *p = (tdm_process *)&p;
    tdm_error err;
    assert_int_equal(tdm_process_load(path, &p, &err), TDM_EINVAL);
    assert_null(p);
    char want[300];
    snprintf(want, sizeof want,
             "%s:7: steps[0].allocation: unknown allocation \"sometimes\" (expected ai, hybrid or "
             "human)",
             path);
    assert_string_equal(err.message, want);
    assert_string_equal(err.field, "steps[0].allocation");

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(MINIMAL, f);
    fclose(f);
    assert_int_equal(tdm_process_load(path, &p, &err), 0);
    assert_string_equal(tdm_process_name(p), "p");
    tdm_process_free(p);
    unlink(path);

    p = (tdm_process *)&p;
    assert_int_equal(tdm_process_load("/nonexistent/dir/p.yaml", &p, &err), TDM_EIO);
    assert_null(p);
    assert_string_equal(err.message, "/nonexistent/dir/p.yaml: cannot open: No such file or "
                                     "directory (check the path and permissions)");
    assert_int_equal(tdm_process_load("/tmp", &p, &err), TDM_EIO);
    assert_non_null(strstr(err.message, "/tmp: cannot read: Is a directory"));
    assert_int_equal(tdm_process_load(NULL, &p, &err), TDM_EINVAL);
}

static void test_rule_check_api(void **state)
{
    (void)state;
    tdm_error err;
    assert_int_equal(tdm_rule_check("amount > 10000 and not (country == \"NL\")", &err), 0);
    assert_int_equal(tdm_rule_check("amount >", &err), TDM_EINVAL);
    assert_string_equal(err.message, "column 9: expected a value after '>', found the end of the "
                                     "rule (values are field names, numbers, \"strings\", true, "
                                     "false, null, label, confidence and (parenthesised "
                                     "conditions))");
}

/* The shipped examples parse, and say what their READMEs say. */
static void test_examples(void **state)
{
    (void)state;
    tdm_process *p = NULL;
    tdm_error err;
    int rc = tdm_process_load(EXAMPLES "/support-triage/process.yaml", &p, &err);
    if (rc)
        print_error("%s\n", err.message);
    assert_int_equal(rc, 0);
    assert_string_equal(tdm_process_name(p), "support-triage");
    const tdm_step_info *s = tdm_process_step(p, 0);
    assert_string_equal(s->output, "category");
    assert_int_equal(s->n_labels, 0);
    item it = {0, NULL, 0};
    size_t fired = 0;
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "card_swallowed", 0.99, &fired), 0);
    assert_int_equal(fired, 0);
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "card_arrival", 0.99, &fired), 0);
    assert_int_equal(fired, SIZE_MAX);
    tdm_process_free(p);

    rc = tdm_process_load(EXAMPLES "/loan-screening/process.yaml", &p, &err);
    if (rc)
        print_error("%s\n", err.message);
    assert_int_equal(rc, 0);
    assert_string_equal(tdm_process_name(p), "loan-screening");
    s = tdm_process_step(p, 0);
    assert_string_equal(s->output, "decision");
    assert_int_equal(s->n_labels, 2);
    for (size_t i = 0; i < s->n_inputs; i++) {
        assert_string_not_equal(s->inputs[i].name, "personal_status");
        assert_string_not_equal(s->inputs[i].name, "foreign_worker");
    }
    /* A rejection is an adverse outcome, not a review rule: only people decide it. */
    assert_int_equal(s->n_adverse, 1);
    assert_string_equal(s->adverse[0], "reject");
    assert_string_equal(s->favourable, "approve");
    assert_int_equal(tdm_process_adverse(p, 0, "reject"), 1);
    assert_int_equal(tdm_process_adverse(p, 0, "approve"), 0);
    assert_int_equal(tdm_process_adverse(p, 0, NULL), 0);
    assert_int_equal(tdm_process_review(p, 0, item_lookup, &it, "approve", 0.99, &fired), 0);
    assert_int_equal(fired, SIZE_MAX);
    tdm_process_free(p);
}

/* favourable, adverse_outcomes and four_eyes: checked against the labels and each other. */
/* related_by names the item field that relates items; absent, there is none. */
static void test_related_by(void **state)
{
    (void)state;
    tdm_process *p =
        parse_ok(minimal_with("process: p\n", "process: p\nrelated_by: customer_id\n"));
    assert_string_equal(tdm_process_related_by(p), "customer_id");
    tdm_process_free(p);
    p = parse_ok(MINIMAL);
    assert_null(tdm_process_related_by(p));
    tdm_process_free(p);
    fails(minimal_with("process: p\n", "process: p\nrelated_by: \"customer id\"\n"), TDM_EINVAL,
          "related_by",
          "t.yaml:2: related_by: \"customer id\" is not an item field name (use 1 to 64 ASCII "
          "letters, digits, '_' and '-', like customer_id)");
    fails(minimal_with("process: p\n", "process: p\nrelated_by: [a]\n"), TDM_EINVAL, "related_by",
          "t.yaml:2: related_by: ...");
}

/* baseline.cost_per_hour: optional, a positive number, 0 from the accessor when absent. */
static void test_cost_per_hour(void **state)
{
    (void)state;
    tdm_process *p = parse_ok(MINIMAL);
    assert_true(tdm_process_baseline_cost(p) == 0);
    tdm_process_free(p);
    p = parse_ok(minimal_with("error_rate: 0.1}", "error_rate: 0.1, cost_per_hour: 42.5}"));
    assert_true(tdm_process_baseline_cost(p) == 42.5);
    assert_true(tdm_process_baseline_minutes(p) == 1);
    tdm_process_free(p);
    fails(minimal_with("error_rate: 0.1}", "error_rate: 0.1, cost_per_hour: 0}"), TDM_EINVAL,
          "baseline.cost_per_hour",
          "t.yaml:4: baseline.cost_per_hour: 0 is out of range: it must be more than 0 and at "
          "most 1000000 (what an hour of a person's time costs, in any currency)");
    fails(minimal_with("error_rate: 0.1}", "error_rate: 0.1, cost_per_hour: -3}"), TDM_EINVAL,
          "baseline.cost_per_hour", "t.yaml:4: baseline.cost_per_hour: -3 is out of range...");
    fails(minimal_with("error_rate: 0.1}", "error_rate: 0.1, cost_per_hour: 1000001}"), TDM_EINVAL,
          "baseline.cost_per_hour", "...");
    fails(minimal_with("error_rate: 0.1}", "error_rate: 0.1, cost_per_hour: \"45\"}"), TDM_EINVAL,
          "baseline.cost_per_hour",
          "t.yaml:4: baseline.cost_per_hour: expected a number, got the quoted text \"45\" "
          "(remove the quotes)");
    fails(minimal_with("error_rate: 0.1}", "error_rate: 0.1, cost_per_hour: 45 EUR}"), TDM_EINVAL,
          "baseline.cost_per_hour",
          "t.yaml:4: baseline.cost_per_hour: expected a number, got \"45 EUR\" (write it like "
          "45)");
    fails(minimal_with("error_rate: 0.1}", "error_rate: 0.1, cost_per_hour: }"), TDM_EINVAL,
          "baseline.cost_per_hour", "t.yaml:4: baseline.cost_per_hour: has no value...");
    fails(minimal_with("error_rate: 0.1}", "error_rate: 0.1, cost_per_hr: 45}"), TDM_EINVAL,
          "baseline.cost_per_hr", "t.yaml:4: baseline.cost_per_hr: unknown key...");
}

static void test_governance_keys(void **state)
{
    (void)state;
    const char *labelled = "output: {field: category, labels: [approve, reject]";
    /* edit() answers in one static buffer: copy between two edits. */
    char base[4096], yaml[4096];
    snprintf(base, sizeof base, "%s", minimal_with("output: {field: category", labelled));
    snprintf(yaml, sizeof yaml, "%s",
             edit(base, "{queue: q}",
                  "{queue: q, adverse_outcomes: [reject], four_eyes: 'amount > 50000'}"));
    char *withfav = strdup(
        edit(yaml, "labels: [approve, reject]", "labels: [approve, reject], favourable: approve"));
    tdm_process *p = parse_ok(withfav);
    const tdm_step_info *si = tdm_process_step(p, 0);
    assert_string_equal(si->favourable, "approve");
    assert_int_equal(si->n_adverse, 1);
    assert_string_equal(si->four_eyes, "amount > 50000");
    tdm_process_free(p);
    free(withfav);
    fails(edit(yaml, "labels: [approve, reject]", "labels: [approve, reject], favourable: yes"),
          TDM_EINVAL, "steps[0].output.favourable",
          "t.yaml:10: steps[0].output.favourable: \"yes\" is not one of the step's labels");
    fails(edit(yaml, "adverse_outcomes: [reject]", "adverse_outcomes: [deny]"), TDM_EINVAL,
          "steps[0].guardrails.adverse_outcomes[0]",
          "t.yaml:11: steps[0].guardrails.adverse_outcomes[0]: \"deny\" is not one of the "
          "step's labels");
    fails(edit(yaml, "labels: [approve, reject]", "labels: [approve, reject], favourable: reject"),
          TDM_EINVAL, "steps[0].guardrails.adverse_outcomes[0]",
          "t.yaml:11: steps[0].guardrails.adverse_outcomes[0]: \"reject\" is also the step's "
          "favourable outcome (an outcome cannot be both)");
    fails(edit(yaml, "four_eyes: 'amount > 50000'", "four_eyes: 'amount >'"), TDM_EINVAL,
          "steps[0].guardrails.four_eyes", "t.yaml:11: steps[0].guardrails.four_eyes: column ...");
    fails(edit(yaml, "adverse_outcomes: [reject]", "adverse_outcomes: []"), TDM_EINVAL,
          "steps[0].guardrails.adverse_outcomes",
          "t.yaml:11: steps[0].guardrails.adverse_outcomes: an empty list...");
    /* four_eyes: always, and a rule that holds or not. */
    p = parse_ok(edit(yaml, "four_eyes: 'amount > 50000'", "four_eyes: always"));
    assert_int_equal(tdm_process_four_eyes(p, 0, item_lookup, NULL, "approve", 0.5), 1);
    tdm_process_free(p);
    p = parse_ok(yaml);
    item it = {0};
    assert_int_equal(tdm_process_four_eyes(p, 0, item_lookup, &it, "approve", 0.5), 0);
    tdm_process_free(p);
    p = parse_ok(base);
    assert_int_equal(tdm_process_four_eyes(p, 0, item_lookup, NULL, "approve", 0.5), 0);
    assert_null(tdm_process_step(p, 0)->four_eyes);
    /* No second_look: never. */
    assert_true(tdm_process_step(p, 0)->second_look == 0);
    assert_int_equal(tdm_process_second_look(p, 0, "approve", "reject", 0.99), 0);
    tdm_process_free(p);

    /* second_look: a contradiction of a proposal at or above it. */
    char looked[4096];
    snprintf(looked, sizeof looked, "%s", edit(base, "{queue: q}", "{queue: q, second_look: 0.9}"));
    p = parse_ok(looked);
    assert_true(tdm_process_step(p, 0)->second_look == 0.9);
    assert_int_equal(tdm_process_second_look(p, 0, "approve", "reject", 0.9), 1);
    assert_int_equal(tdm_process_second_look(p, 0, "approve", "reject", 0.95), 1);
    assert_int_equal(tdm_process_second_look(p, 0, "approve", "reject", 0.89), 0);
    assert_int_equal(tdm_process_second_look(p, 0, "approve", "approve", 0.99), 0);
    assert_int_equal(tdm_process_second_look(p, 0, NULL, "reject", 0.99), 0);
    assert_int_equal(tdm_process_second_look(p, 1, "approve", "reject", 0.99), 0);
    tdm_process_free(p);
    fails(edit(base, "{queue: q}", "{queue: q, second_look: 1.5}"), TDM_EINVAL,
          "steps[0].guardrails.second_look",
          "t.yaml:11: steps[0].guardrails.second_look: 1.5 is out of range: it must be more "
          "than 0 and at most 1 ...");
    fails(edit(base, "{queue: q}", "{queue: q, second_look: 0}"), TDM_EINVAL,
          "steps[0].guardrails.second_look",
          "t.yaml:11: steps[0].guardrails.second_look: 0 is out of range...");
    fails(edit(base, "{queue: q}", "{queue: q, second_look: sure}"), TDM_EINVAL,
          "steps[0].guardrails.second_look", "t.yaml:11: steps[0].guardrails.second_look: ...");
}

/* The same mistake always gives the same message; the first one in the file wins. */
static void test_first_error_deterministic(void **state)
{
    (void)state;
    const char *two =
        minimal_with("allocation: ai\n    owner: o\n", "allocation: auto\n    owner: \"\"\n");
    for (int i = 0; i < 3; i++)
        fails(two, TDM_EINVAL, "steps[0].allocation",
              "t.yaml:7: steps[0].allocation: unknown allocation \"auto\"...");
    /* Unknown keys are found before missing ones, missing ones before bad values. */
    fails(minimal_with("allocation: ai\n    owner: o\n", "allocation: auto\n    ownr: o\n"),
          TDM_EINVAL, "steps[0].ownr", "t.yaml:8: steps[0].ownr: unknown key...");
    fails(minimal_with("allocation: ai\n    owner: o\n", "allocation: auto\n"), TDM_EINVAL,
          "steps[0].owner", "t.yaml:6: steps[0].owner: missing...");
    /* A syntax error anywhere wins over schema errors before it. */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", minimal_with("allocation: ai", "allocation: auto"));
    strcat(buf, "  - [\n");
    fails(buf, TDM_EPARSE, "", "t.yaml:13: invalid YAML...");
}

#ifdef TDM_DEBUG
/*
 * Every allocation in the reader and the rule compiler, made to fail in turn: each failure is
 * TDM_ENOMEM with no object and (under LeakSanitizer) nothing leaked, until the parse needs
 * fewer allocations than the countdown and succeeds.
 */
static void test_alloc_failures(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t k = 1;; k++) {
        tdm__process_alloc_fail_countdown = k;
        tdm_process *p = (tdm_process *)&p;
        tdm_error err;
        int rc = tdm_process_parse(full_yaml, strlen(full_yaml), "t.yaml", &p, &err);
        int injected = tdm__process_alloc_fail_countdown == 0;
        tdm__process_alloc_fail_countdown = 0;
        if (!injected) {
            assert_int_equal(rc, 0);
            tdm_process_free(p);
            break;
        }
        assert_int_equal(rc, TDM_ENOMEM);
        assert_int_equal(err.code, TDM_ENOMEM);
        assert_string_equal(err.message, "t.yaml: out of memory");
        assert_null(p);
        failures++;
    }
    assert_true(failures > 10);
    for (size_t k = 1;; k++) {
        tdm__rule_alloc_fail_countdown = k;
        tdm_process *p = (tdm_process *)&p;
        tdm_error err;
        int rc = tdm_process_parse(full_yaml, strlen(full_yaml), "t.yaml", &p, &err);
        int injected = tdm__rule_alloc_fail_countdown == 0;
        tdm__rule_alloc_fail_countdown = 0;
        if (!injected) {
            assert_int_equal(rc, 0);
            tdm_process_free(p);
            assert_true(k > 6); /* three rules, two allocations each */
            break;
        }
        assert_int_equal(rc, TDM_ENOMEM);
        assert_null(p);
    }
    /* tdm_process_load's own buffer. */
    char path[] = "/tmp/tdm_process_oom_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, MINIMAL, strlen(MINIMAL)), (ssize_t)strlen(MINIMAL));
    close(fd);
    tdm__process_alloc_fail_countdown = 1;
    tdm_process *p = (tdm_process *)&p;
    tdm_error err;
    assert_int_equal(tdm_process_load(path, &p, &err), TDM_ENOMEM);
    tdm__process_alloc_fail_countdown = 0;
    assert_null(p);
    unlink(path);
    /* tdm_rule_check. */
    tdm__rule_alloc_fail_countdown = 1;
    assert_int_equal(tdm_rule_check("x > 1", &err), TDM_ENOMEM);
    tdm__rule_alloc_fail_countdown = 2;
    assert_int_equal(tdm_rule_check("x > 1", &err), TDM_ENOMEM);
    tdm__rule_alloc_fail_countdown = 0;
    assert_int_equal(tdm_rule_check("x > 1", &err), 0);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_allocation_names),
        cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_governance_keys),
        cmocka_unit_test(test_related_by),
        cmocka_unit_test(test_cost_per_hour),
        cmocka_unit_test(test_kpis),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_steps),
        cmocka_unit_test(test_many_labels),
        cmocka_unit_test(test_yaml_level_refusals),
        cmocka_unit_test(test_yaml_syntax),
        cmocka_unit_test(test_empty_and_big),
        cmocka_unit_test(test_rules_in_file),
        cmocka_unit_test(test_review),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_rule_check_api),
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_first_error_deterministic),
#ifdef TDM_DEBUG
        cmocka_unit_test(test_alloc_failures),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
