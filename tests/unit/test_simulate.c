/*
 * test_simulate.c — tdm_simulate through its C API: every option it refuses (with the field
 * named), data that lacks what the process needs, a work directory that cannot be used, and
 * a small replay whose numbers the rules decide, the same whether the strategies run one at
 * a time or side by side, leaving nothing behind. The command line and the Banking77 runs
 * are tests/integration/simulate.sh's and bench/simulate's.
 */
#define _GNU_SOURCE /* mkdtemp */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tandem/simulate.h"

/* Two labels told apart by one word each; the AI may decide alone within 10%. */
static const char process_yaml[] = "process: tiny\n"
                                   "owner: owner@example.com\n"
                                   "kpis: [misrouted_share]\n"
                                   "baseline: {minutes_per_item: 3, error_rate: 0.1}\n"
                                   "steps:\n"
                                   "  - id: sort\n"
                                   "    allocation: ai\n"
                                   "    owner: lead@example.com\n"
                                   "    inputs: [text]\n"
                                   "    output: {field: intent, labels: [billing, account]}\n"
                                   "    model: linear\n"
                                   "    guardrails: {max_error: 0.1, confidence: 0.9, "
                                   "audit_sample: 0, queue: tiny}\n";

/* `rows` rows alternating billing and account; `label` is the label column's name. */
static tdm_table *make_table(size_t rows, const char *label)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    fprintf(m, "text,%s\n", label);
    for (size_t i = 1; i <= rows; i++) {
        if (i % 2)
            fprintf(m, "\"question %zu about my invoice\",billing\n", i);
        else
            fprintf(m, "\"reset my password please, ticket %zu\",account\n", i);
    }
    assert_int_equal(fclose(m), 0);
    tdm_table *t = NULL;
    tdm_error err = {0};
    assert_int_equal(tdm_table_read_buffer(buf, len, TDM_FORMAT_CSV, "tiny.csv", NULL, &t, &err),
                     0);
    free(buf);
    return t;
}

typedef struct fixture {
    tdm_table *data;
    char dir[64];
    tdm_sim_strategy strategies[3];
    tdm_sim_opts o;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->data = make_table(60, "intent");
    snprintf(f->dir, sizeof f->dir, "/tmp/tdm-test-simulate-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->strategies[0] = (tdm_sim_strategy){TDM_SIM_ALL_HUMAN, 0, NULL};
    f->strategies[1] = (tdm_sim_strategy){TDM_SIM_FIXED, 0.5, NULL};
    f->strategies[2] = (tdm_sim_strategy){TDM_SIM_GUARANTEED, 0, NULL};
    tdm_sim_opts_init(&f->o);
    f->o.process_yaml = process_yaml;
    f->o.process_len = strlen(process_yaml);
    f->o.process_file = "tiny.yaml";
    f->o.data = f->data;
    f->o.history = 20;
    f->o.strategies = f->strategies;
    f->o.n_strategies = 3;
    f->o.work_dir = f->dir;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tdm_table_free(f->data);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Runs the simulation expecting `code` and, for an error, `field`. */
static void expect_error(const tdm_sim_opts *o, int code, const char *field)
{
    char *json = (char *)"untouched";
    tdm_error err = {0};
    assert_int_equal(tdm_simulate(o, &json, &err), code);
    assert_null(json);
    assert_true(err.message[0] != '\0');
    if (field != NULL)
        assert_string_equal(err.field, field);
}

static void test_option_errors(void **state)
{
    fixture *f = *state;
    tdm_sim_opts o = f->o;
    tdm_sim_strategy s[1];

    o.history = 60; /* every row: nothing left to replay */
    expect_error(&o, TDM_EINVAL, "history");
    o = f->o;
    o.reviewer_error = 1;
    expect_error(&o, TDM_EINVAL, "reviewer_error");
    o.reviewer_error = -0.01;
    expect_error(&o, TDM_EINVAL, "reviewer_error");
    o = f->o;
    o.reviewer_minutes = INFINITY;
    expect_error(&o, TDM_EINVAL, "reviewer_minutes");
    o = f->o;
    o.n_strategies = 0;
    expect_error(&o, TDM_EINVAL, "strategies");
    o.n_strategies = TDM_SIM_MAX_STRATEGIES + 1;
    expect_error(&o, TDM_EINVAL, "strategies");
    o = f->o;
    s[0] = (tdm_sim_strategy){(tdm_sim_kind)99, 0, NULL};
    o.strategies = s;
    o.n_strategies = 1;
    expect_error(&o, TDM_EINVAL, "strategies");
    s[0] = (tdm_sim_strategy){TDM_SIM_FIXED, 0, NULL};
    expect_error(&o, TDM_EINVAL, "strategies");
    s[0].threshold = 1.01;
    expect_error(&o, TDM_EINVAL, "strategies");
    s[0].threshold = NAN;
    expect_error(&o, TDM_EINVAL, "strategies");
    o = f->o;
    o.process_yaml = NULL;
    expect_error(&o, TDM_EINVAL, NULL);
    char *json = NULL;
    assert_int_equal(tdm_simulate(NULL, &json, NULL), TDM_EINVAL);
    assert_int_equal(tdm_simulate(&f->o, NULL, NULL), TDM_EINVAL);
}

static void test_data_errors(void **state)
{
    fixture *f = *state;
    tdm_sim_opts o = f->o;
    /* The label column under another name: the process's "intent" is missing. */
    tdm_table *other = make_table(60, "topic");
    o.data = other;
    expect_error(&o, TDM_EINVAL, "data");
    tdm_table_free(other);
    /* A process file that does not validate names its line. */
    o = f->o;
    static const char bad[] = "process: tiny\nowner: o@example.com\nsteps: 3\n";
    o.process_yaml = bad;
    o.process_len = strlen(bad);
    char *json = NULL;
    tdm_error err = {0};
    assert_true(tdm_simulate(&o, &json, &err) < 0);
    assert_non_null(strstr(err.message, "tiny.yaml:"));
    /* A work directory that does not exist. */
    o = f->o;
    o.work_dir = "/nonexistent/tandem-simulate";
    expect_error(&o, TDM_EIO, NULL);
}

static void test_known_outcome(void **state)
{
    fixture *f = *state;
    f->o.threads = 1;
    char *one = NULL, *two = NULL;
    tdm_error err = {0};
    assert_int_equal(tdm_simulate(&f->o, &one, &err), 0);
    f->o.threads = 3;
    assert_int_equal(tdm_simulate(&f->o, &two, &err), 0);
    assert_string_equal(one, two); /* side by side or one at a time: the same answer */

    json_t *r = json_loads(one, 0, NULL);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "items")), 40);
    assert_int_equal(json_integer_value(json_object_get(r, "history")), 20);
    json_t *s = json_object_get(r, "strategies");
    assert_int_equal(json_array_size(s), 3);
    json_t *human = json_array_get(s, 0), *fixed = json_array_get(s, 1),
           *guaranteed = json_array_get(s, 2);
    assert_string_equal(json_string_value(json_object_get(human, "name")), "all-human");
    assert_string_equal(json_string_value(json_object_get(fixed, "name")), "fixed:0.5");
    assert_string_equal(json_string_value(json_object_get(guaranteed, "name")), "guaranteed");
    /* All-human: every item answered, 3 minutes each (the baseline), nothing saved. */
    assert_true(json_number_value(json_object_get(human, "ai_share")) == 0);
    assert_true(json_is_null(json_object_get(human, "ai_error")));
    assert_true(json_is_null(json_object_get(human, "first_ai_item")));
    assert_true(json_number_value(json_object_get(human, "reviewer_minutes")) == 120);
    assert_true(json_number_value(json_object_get(human, "hours_saved")) == 0);
    assert_int_equal(json_integer_value(json_object_get(human, "answers")), 40);
    /* Fixed at 0.5 with two labels and no rule: the AI decides every item, and the data
     * lets it be right every time. */
    assert_true(json_number_value(json_object_get(fixed, "ai_share")) == 1);
    assert_true(json_number_value(json_object_get(fixed, "ai_error")) == 0);
    assert_int_equal(json_integer_value(json_object_get(fixed, "first_ai_item")), 1);
    assert_true(json_number_value(json_object_get(fixed, "hours_saved")) == 2); /* 40 x 3 / 60 */
    /* Guaranteed: certified on 20 rows at 10% with 90% confidence, then never wrong. */
    assert_true(json_number_value(json_object_get(guaranteed, "ai_share")) > 0);
    assert_true(json_number_value(json_object_get(guaranteed, "final_error")) == 0);
    json_t *blocks = json_object_get(guaranteed, "blocks");
    assert_int_equal(json_array_size(blocks), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(blocks, 0), "end")), 40);
    json_decref(r);
    tdm_free(one);
    tdm_free(two);

    /* The throwaway stores are gone. */
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *de;
    size_t left = 0;
    while ((de = readdir(d)) != NULL)
        left += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(left, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_option_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_outcome, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
