/*
 * test_fairness.c — tdm_engine_fairness on a store laid out by hand: decisions by the AI and
 * by people, open tasks, feedback of every kind, an item submitted again, an item of another
 * process and one that never reached the step. Every number of the report is checked
 * against the definitions in docs/api.md, worked out in the comments.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tandem/engine.h"

/* Two steps: "intake" (a person, no favourable outcome) then "screen" (favourable approve). */
static const char process_yaml[] = "process: loans\n"
                                   "owner: owner@example.com\n"
                                   "kpis: [lead_time_hours]\n"
                                   "baseline: {minutes_per_item: 20, error_rate: 0.2}\n"
                                   "steps:\n"
                                   "  - id: intake\n"
                                   "    allocation: human\n"
                                   "    owner: desk@example.com\n"
                                   "    output: {field: complete, labels: [yes, no]}\n"
                                   "    guardrails: {queue: intake}\n"
                                   "  - id: screen\n"
                                   "    allocation: hybrid\n"
                                   "    owner: risk@example.com\n"
                                   "    inputs: [text]\n"
                                   "    output:\n"
                                   "      field: decision\n"
                                   "      labels: [approve, reject]\n"
                                   "      favourable: approve\n"
                                   "    guardrails: {queue: loans}\n";

static const char plain_yaml[] = "process: plain\n"
                                 "owner: owner@example.com\n"
                                 "kpis: [lead_time_hours]\n"
                                 "baseline: {minutes_per_item: 20, error_rate: 0.2}\n"
                                 "steps:\n"
                                 "  - id: triage\n"
                                 "    allocation: human\n"
                                 "    owner: desk@example.com\n"
                                 "    output: {field: answer, labels: [yes, no]}\n"
                                 "    guardrails: {queue: plain}\n";

/*
 * The store, item by item (age, region; what happened at "screen"):
 *   i1  22, "north"   the AI approved alone; feedback "accurate"          truth approve
 *   i2  30, 7         the AI approved alone; "inaccurate", reject          truth reject
 *   i3  24, 2.5       proposal reject, a person approved (an override)     truth approve
 *   i4  40, true      proposal reject, a person rejected; then
 *                     "inaccurate" without a correction                    truth unknown
 *   i5  "25", null    queued, proposal approve, undecided
 *   i6  "old", -      queued at a human-like task without a proposal
 *   i7  50, "north"   version 1 approved by the AI (no longer counts); version 2 queued,
 *                     proposal reject
 *   i8                another process's item
 *   i9  60            decided at "intake" only: never reached "screen"
 *   i10 25, "south"   the AI's reject; feedback "accurate", then "inaccurate", approve
 *                                                                          truth approve
 */
static const char fixture_sql[] =
    "INSERT INTO items VALUES"
    " ('i1','loans',1,'{\"age\":22,\"region\":\"north\"}','decided',1,1,1),"
    " ('i2','loans',1,'{\"age\":30,\"region\":7}','decided',1,1,1),"
    " ('i3','loans',1,'{\"age\":24,\"region\":2.5}','decided',1,1,1),"
    " ('i4','loans',1,'{\"age\":40,\"region\":true}','decided',1,1,1),"
    " ('i5','loans',1,'{\"age\":\"25\",\"region\":null}','queued',1,1,1),"
    " ('i6','loans',1,'{\"age\":\"old\"}','queued',1,1,1),"
    " ('i7','loans',2,'{\"age\":50,\"region\":\"north\"}','queued',1,1,1),"
    " ('i8','other',1,'{\"age\":33}','decided',0,1,1),"
    " ('i9','loans',1,'{\"age\":60}','queued',0,1,1),"
    " ('i10','loans',1,'{\"age\":25,\"region\":\"south\"}','decided',1,1,1);"
    "INSERT INTO decisions (id, item_id, item_version, process, step, value, confidence, by,"
    " kind, autonomous, model_version, proposal, proposal_confidence, task_id, created_at) VALUES"
    " ('d1','i1',1,'loans','screen','\"approve\"',0.9,'model','model',1,1,'\"approve\"',0.9,"
    "  NULL,1),"
    " ('d2','i2',1,'loans','screen','\"approve\"',0.9,'model','model',1,1,'\"approve\"',0.9,"
    "  NULL,1),"
    " ('d3','i3',1,'loans','screen','\"approve\"',NULL,'person:ana','person',0,1,'\"reject\"',"
    "  0.6,'t3',1),"
    " ('d4','i4',1,'loans','screen','\"reject\"',NULL,'person:ana','person',0,1,'\"reject\"',"
    "  0.7,'t4',1),"
    " ('d7','i7',1,'loans','screen','\"approve\"',0.9,'model','model',1,1,'\"approve\"',0.9,"
    "  NULL,1),"
    " ('d8','i8',1,'other','screen','\"approve\"',0.9,'model','model',1,1,'\"approve\"',0.9,"
    "  NULL,1),"
    " ('d9','i9',1,'loans','intake','\"yes\"',NULL,'person:bo','person',0,NULL,NULL,NULL,"
    "  NULL,1),"
    " ('d10','i10',1,'loans','screen','\"reject\"',0.8,'model','model',1,1,'\"reject\"',0.8,"
    "  NULL,1);"
    "INSERT INTO tasks (id, item_id, item_version, process, step, queue, state, priority,"
    " due_at, proposal, proposal_confidence, model_version, why, created_at, updated_at) VALUES"
    " ('t3','i3',1,'loans','screen','loans','done',0,1,'\"reject\"',0.6,1,'hybrid',1,1),"
    " ('t4','i4',1,'loans','screen','loans','done',0,1,'\"reject\"',0.7,1,'hybrid',1,1),"
    " ('t5','i5',1,'loans','screen','loans','open',0,1,'\"approve\"',0.7,1,'hybrid',1,1),"
    " ('t6','i6',1,'loans','screen','loans','open',0,1,NULL,NULL,NULL,'no_model',1,1),"
    " ('t7','i7',2,'loans','screen','loans','open',0,1,'\"reject\"',0.7,1,'hybrid',1,1);"
    "INSERT INTO feedback (id, decision_id, actor, verdict, correction, comment, created_at)"
    " VALUES ('f1','d1','ana','accurate',NULL,NULL,1),"
    " ('f2','d2','ana','inaccurate','\"reject\"',NULL,1),"
    " ('f4','d4','bo','inaccurate',NULL,NULL,1),"
    " ('f10a','d10','ana','accurate',NULL,NULL,1),"
    " ('f10b','d10','bo','inaccurate','\"approve\"',NULL,2);";

static char db_path[64];

static int setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof db_path, "/tmp/tandem-fairness-%d.db", (int)getpid());
    unlink(db_path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[80];
    unlink(db_path);
    snprintf(p, sizeof p, "%s-wal", db_path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db_path);
    unlink(p);
    snprintf(p, sizeof p, "%s-tokens", db_path);
    unlink(p);
    return 0;
}

static tdm_engine *open_with_fixture(void)
{
    tdm_engine_opts o;
    tdm_engine_opts_init(&o);
    o.db_path = db_path;
    o.seed = 7;
    tdm_engine *e = NULL;
    tdm_error err = {0};
    assert_int_equal(tdm_engine_open(&o, &e, &err), 0);
    char *out = NULL;
    int rc =
        tdm_engine_put_process(e, "loans", process_yaml, strlen(process_yaml), "owner", &out, &err);
    if (rc != 0)
        print_error("put: %s\n", err.message);
    assert_int_equal(rc, 0);
    tdm_free(out);
    assert_int_equal(
        tdm_engine_put_process(e, "plain", plain_yaml, strlen(plain_yaml), "owner", &out, &err), 0);
    tdm_free(out);
    /* The rows go in behind the engine's back, on a connection of their own. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char *msg = NULL;
    rc = sqlite3_exec(db, fixture_sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("fixture: %s\n", msg);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
    return e;
}

static json_t *report(tdm_engine *e, const char *step, const char *field, const double *bins,
                      size_t n_bins)
{
    char *out = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_fairness(e, "loans", step, field, bins, n_bins, &out, &err);
    if (rc != 0)
        print_error("fairness: %s\n", err.message);
    assert_int_equal(rc, 0);
    json_t *v = json_loads(out, 0, NULL);
    assert_non_null(v);
    tdm_free(out);
    return v;
}

static json_t *group_at(json_t *r, size_t i, const char *name)
{
    json_t *g = json_array_get(json_object_get(r, "groups"), i);
    assert_non_null(g);
    assert_string_equal(json_string_value(json_object_get(g, "group")), name);
    return g;
}

/* `want` < 0 means null. */
static void expect_rate(json_t *g, const char *key, double want)
{
    json_t *v = json_object_get(g, key);
    assert_non_null(v);
    if (want < 0) {
        if (!json_is_null(v))
            print_error("%s: expected null, got %g\n", key, json_number_value(v));
        assert_true(json_is_null(v));
        return;
    }
    if (!json_is_number(v) || fabs(json_number_value(v) - want) > 1e-9)
        print_error("%s: expected %.10f, got %.10f\n", key, want, json_number_value(v));
    assert_true(json_is_number(v));
    assert_true(fabs(json_number_value(v) - want) < 1e-9);
}

static void test_report_by_bins(void **state)
{
    (void)state;
    tdm_engine *e = open_with_fixture();
    double bins[] = {25};
    json_t *r = report(e, NULL, "age", bins, 1);
    assert_string_equal(json_string_value(json_object_get(r, "step")), "screen");
    assert_string_equal(json_string_value(json_object_get(r, "favourable")), "approve");
    assert_int_equal(json_array_size(json_object_get(r, "groups")), 3);

    /* "(missing)": i6, with no proposal and no decision: every rate is null. */
    json_t *g = group_at(r, 0, "(missing)");
    assert_int_equal(json_object_size(g), 9);
    assert_int_equal(json_integer_value(json_object_get(g, "count")), 1);
    expect_rate(g, "ai_favourable_rate", -1);
    expect_rate(g, "final_favourable_rate", -1);
    expect_rate(g, "impact_ratio", -1);
    assert_true(json_is_null(json_object_get(g, "four_fifths_ok")));
    expect_rate(g, "override_rate", -1);
    expect_rate(g, "tpr", -1);
    expect_rate(g, "fpr", -1);

    /* "<=25": i1, i3, i5 ("25" is a number), i10 (on the edge). Proposals approve, reject,
     * approve, reject; decisions approve, approve, reject (i5 undecided); one person decision,
     * an override; truths approve (AI right), approve (AI wrong), approve (AI wrong). */
    g = group_at(r, 1, "<=25");
    assert_int_equal(json_integer_value(json_object_get(g, "count")), 4);
    expect_rate(g, "ai_favourable_rate", 0.5);
    expect_rate(g, "final_favourable_rate", 2.0 / 3.0);
    expect_rate(g, "impact_ratio", 1);
    assert_true(json_is_true(json_object_get(g, "four_fifths_ok")));
    expect_rate(g, "override_rate", 1);
    expect_rate(g, "tpr", 1.0 / 3.0);
    expect_rate(g, "fpr", -1);

    /* ">25": i2, i4, i7 (its version 2 only). Proposals approve, reject, reject; decisions
     * approve, reject; i4's person agreed with the AI; truths: i2 reject (AI said approve),
     * i4 unknown. */
    g = group_at(r, 2, ">25");
    assert_int_equal(json_integer_value(json_object_get(g, "count")), 3);
    expect_rate(g, "ai_favourable_rate", 1.0 / 3.0);
    expect_rate(g, "final_favourable_rate", 0.5);
    expect_rate(g, "impact_ratio", 0.5 / (2.0 / 3.0));
    assert_true(json_is_false(json_object_get(g, "four_fifths_ok")));
    expect_rate(g, "override_rate", 0);
    expect_rate(g, "tpr", -1);
    expect_rate(g, "fpr", 1);

    /* One group has a TPR and one an FPR: both gaps are 0. */
    json_t *eo = json_object_get(r, "equalized_odds");
    expect_rate(eo, "tpr_gap", 0);
    expect_rate(eo, "fpr_gap", 0);
    json_decref(r);

    /* Two edges: <=25, 25<..<=40 (i2, i4), >40 (i7). */
    double two[] = {25, 40};
    r = report(e, "screen", "age", two, 2);
    assert_int_equal(json_array_size(json_object_get(r, "groups")), 4);
    assert_int_equal(json_integer_value(json_object_get(group_at(r, 1, "25<..<=40"), "count")), 2);
    group_at(r, 2, "<=25");
    assert_int_equal(json_integer_value(json_object_get(group_at(r, 3, ">40"), "count")), 1);
    json_decref(r);
    tdm_engine_close(e);
}

static void test_report_by_value(void **state)
{
    (void)state;
    tdm_engine *e = open_with_fixture();
    json_t *r = report(e, NULL, "region", NULL, 0);
    static const char *const names[] = {"(missing)", "2.5", "7", "north", "south", "true"};
    static const int counts[] = {2, 1, 1, 2, 1, 1};
    assert_int_equal(json_array_size(json_object_get(r, "groups")), 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(json_integer_value(json_object_get(group_at(r, i, names[i]), "count")),
                         counts[i]);
    assert_true(json_is_null(json_object_get(r, "bins")));
    json_decref(r);
    tdm_engine_close(e);
}

static void test_errors(void **state)
{
    (void)state;
    tdm_engine *e = open_with_fixture();
    char *out = NULL, long_field[TDM_FAIRNESS_FIELD_MAX + 2];
    tdm_error err = {0};
    memset(long_field, 'a', sizeof long_field - 1);
    long_field[sizeof long_field - 1] = '\0';
    double many[TDM_FAIRNESS_MAX_BINS + 1], down[] = {40, 25}, flat[] = {25, 25};
    for (size_t i = 0; i < TDM_FAIRNESS_MAX_BINS + 1; i++)
        many[i] = (double)i;

    assert_int_equal(tdm_engine_fairness(e, "nope", NULL, "age", NULL, 0, &out, &err),
                     TDM_ENOTFOUND);
    assert_int_equal(tdm_engine_fairness(e, "loans", NULL, "", NULL, 0, &out, &err), TDM_EINVAL);
    assert_string_equal(err.field, "group");
    assert_int_equal(tdm_engine_fairness(e, "loans", NULL, long_field, NULL, 0, &out, &err),
                     TDM_EINVAL);
    assert_string_equal(err.field, "group");
    long_field[TDM_FAIRNESS_FIELD_MAX] = '\0'; /* 200 bytes: accepted */
    assert_int_equal(tdm_engine_fairness(e, "loans", NULL, long_field, NULL, 0, &out, &err), 0);
    tdm_free(out);
    assert_int_equal(
        tdm_engine_fairness(e, "loans", NULL, "age", many, TDM_FAIRNESS_MAX_BINS + 1, &out, &err),
        TDM_EINVAL);
    assert_string_equal(err.field, "bins");
    assert_int_equal(
        tdm_engine_fairness(e, "loans", NULL, "age", many, TDM_FAIRNESS_MAX_BINS, &out, &err), 0);
    tdm_free(out);
    assert_int_equal(tdm_engine_fairness(e, "loans", NULL, "age", down, 2, &out, &err), TDM_EINVAL);
    assert_string_equal(err.field, "bins");
    assert_int_equal(tdm_engine_fairness(e, "loans", NULL, "age", flat, 2, &out, &err), TDM_EINVAL);
    assert_string_equal(err.field, "bins");
    assert_int_equal(tdm_engine_fairness(e, "loans", "intake", "age", NULL, 0, &out, &err),
                     TDM_EINVAL);
    assert_string_equal(err.field, "step");
    assert_string_equal(err.message, "step intake declares no favourable outcome "
                                     "(output.favourable)");
    assert_int_equal(tdm_engine_fairness(e, "loans", "nope", "age", NULL, 0, &out, &err),
                     TDM_EINVAL);
    assert_string_equal(err.field, "step");
    assert_int_equal(tdm_engine_fairness(e, "plain", NULL, "age", NULL, 0, &out, &err), TDM_EINVAL);
    assert_string_equal(err.field, "step");
    tdm_engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_by_bins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_by_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
