/*
 * test_plan.c — the task audit (include/tandem/plan.h): the rubric task by task (signals,
 * margins, the holds at hybrid, volume and rare work, tags), a task log read from a buffer
 * (the split, slugs, queues, every kind of bad cell with its place), the process-file
 * skeletons (each one parses), and that docs/plan.md lists the rubric's words exactly.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/plan.h"
#include "tandem/process.h"

/* The signal of that name in a verdict, or NULL. */
static const tdm_plan_signal *find_signal(const tdm_plan_verdict *v, const char *name)
{
    for (size_t i = 0; i < v->n_signals; i++)
        if (strcmp(v->signals[i].name, name) == 0)
            return &v->signals[i];
    return NULL;
}

static tdm_plan_verdict classify(const char *name, const char *desc, const char *tags,
                                 double per_week)
{
    tdm_plan_verdict v;
    tdm_error err = {0};
    int rc = tdm_plan_classify(name, desc, tags, 10, per_week, &v, &err);
    if (rc != 0)
        fail_msg("classify \"%s\": %s", name, err.message);
    return v;
}

static void test_repetitive_is_ai(void **state)
{
    (void)state;
    /* repetitive (routine) 2 + rules (checklist) 2 + data (extract) 2 + volume 2 (40 a week). */
    tdm_plan_verdict v = classify("Invoice intake",
                                  "Routine: extract the totals and check "
                                  "them against the checklist.",
                                  NULL, 40);
    assert_int_equal(v.bucket, TDM_PLAN_AI);
    assert_int_equal(v.ai_score, 8);
    assert_int_equal(v.human_score, 0);
    assert_null(v.forced_by);
    assert_null(v.held_by);
    const tdm_plan_signal *s = find_signal(&v, "data");
    assert_non_null(s);
    /* "Invoice" in the name and "extract" in the description, in text order. */
    assert_string_equal(s->matched, "invoice, extract");
    s = find_signal(&v, "rules");
    assert_string_equal(s->matched, "check, checklist");
    s = find_signal(&v, "volume");
    assert_int_equal(s->weight, 2);
    assert_string_equal(s->matched, "40 a week");
    assert_int_equal(s->toward_ai, 1);
}

static void test_volume_needs_a_word(void **state)
{
    (void)state;
    /* No word toward AI: volume does not count, and the task stays with people. */
    tdm_plan_verdict v = classify("Answer the phone", "Pick up when it rings.", NULL, 200);
    assert_int_equal(v.bucket, TDM_PLAN_HUMAN);
    assert_null(find_signal(&v, "volume"));
    assert_int_equal(v.ai_score, 0);
    /* From 5 a week volume is +1, from 25 +2. */
    v = classify("Sort post", "", NULL, 4.99);
    assert_null(find_signal(&v, "volume"));
    v = classify("Sort post", "", NULL, 5);
    assert_int_equal(find_signal(&v, "volume")->weight, 1);
    v = classify("Sort post", "", NULL, 24.9);
    assert_int_equal(find_signal(&v, "volume")->weight, 1);
    v = classify("Sort post", "", NULL, 25);
    assert_int_equal(find_signal(&v, "volume")->weight, 2);
}

static void test_rare(void **state)
{
    (void)state;
    /* data 2 against rare 1: a difference of 1, hybrid. */
    tdm_plan_verdict v = classify("Quarterly report", "", NULL, 0.25);
    const tdm_plan_signal *s = find_signal(&v, "rare");
    assert_non_null(s);
    assert_int_equal(s->toward_ai, 0);
    assert_string_equal(s->matched, "0.25 a week");
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);
    v = classify("Weekly report", "", NULL, 1);
    assert_null(find_signal(&v, "rare"));
    assert_int_equal(v.bucket, TDM_PLAN_AI);
}

static void test_margins(void **state)
{
    (void)state;
    /* A - H = 2: AI-only. */
    tdm_plan_verdict v = classify("Update records", "", NULL, 2);
    assert_int_equal(v.ai_score - v.human_score, 2);
    assert_int_equal(v.bucket, TDM_PLAN_AI);
    /* data 2 + volume 1 against judgement 2: 1, hybrid. */
    v = classify("Update records", "approve the unusual ones", NULL, 5);
    assert_int_equal(v.ai_score - v.human_score, 1);
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);
    /* data 2 against judgement 2 + creativity 2: -2, still hybrid. */
    v = classify("Draft", "decide the campaign", NULL, 2);
    assert_int_equal(v.ai_score - v.human_score, -2);
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);
    /* data 2 against judgement 2 + relationship 2 + rare 1: -3, human-only. */
    v = classify("Draft", "decide with stakeholders", NULL, 0.5);
    assert_int_equal(v.ai_score - v.human_score, -3);
    assert_int_equal(v.bucket, TDM_PLAN_HUMAN);
    assert_string_equal(v.rule, "the people side leads by the margin");
}

static void test_risk_and_empathy_hold_at_hybrid(void **state)
{
    (void)state;
    /* rules 2 + data 2 + volume 2 = 6 against risk 3: AI leads by 3, but risk holds it. */
    tdm_plan_verdict v = classify("KYC document check", "extract the passport data", NULL, 50);
    assert_int_equal(v.ai_score, 6);
    assert_int_equal(v.human_score, 3);
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);
    assert_string_equal(v.held_by, "risk");
    v = classify("Sort complaints", "routine sorting of the complaint inbox", NULL, 50);
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);
    assert_string_equal(v.held_by, "empathy");
    /* Judgement does not hold: AI 6 against 2 is AI-only. */
    v = classify("Sort claims", "routine sorting by policy; escalate the odd one", NULL, 50);
    assert_int_equal(v.bucket, TDM_PLAN_AI);
    assert_null(v.held_by);
}

static void test_words(void **state)
{
    (void)state;
    /* "rules-based" is the words rules and based; "high-volume" the phrase high volume. */
    tdm_plan_verdict v = classify("Rules-based, high-volume work", "", NULL, 1);
    assert_string_equal(find_signal(&v, "rules")->matched, "rules");
    assert_string_equal(find_signal(&v, "repetitive")->matched, "high volume");
    /* Exact words do not match longer ones: "sop" is not "sophisticated", "log" not "logo". */
    v = classify("Sophisticated logo", "", NULL, 1);
    assert_null(find_signal(&v, "rules"));
    assert_null(find_signal(&v, "data"));
    assert_int_equal(v.bucket, TDM_PLAN_HUMAN);
    /* Case does not matter; a stem matches its endings. */
    v = classify("SUMMARISING", "", NULL, 1);
    assert_string_equal(find_signal(&v, "data")->matched, "summarising");
    /* A long list of matches ends with "..." and stays within the buffer. */
    v = classify("x",
                 "data lookup classify categorise tag tags tagging extract sort sorts "
                 "sorting sorted route routes routed routing summary draft transcribe "
                 "triage entry entries enter entering invoice",
                 NULL, 1);
    const tdm_plan_signal *s = find_signal(&v, "data");
    if (s == NULL) {
        fail();
        return;
    }
    assert_true(strlen(s->matched) < TDM_PLAN_SIGNAL_WORDS);
    assert_non_null(strstr(s->matched, "..."));
    assert_int_equal(s->weight, 2); /* still counted once */
}

static void test_tags(void **state)
{
    (void)state;
    /* A bucket tag wins over the words, whatever their case. */
    tdm_plan_verdict v = classify("Update records", "routine data entry", "Human-Only", 100);
    assert_int_equal(v.bucket, TDM_PLAN_HUMAN);
    assert_string_equal(v.forced_by, "human-only");
    v = classify("Meet partners", "relationship", "ai", 1);
    assert_int_equal(v.bucket, TDM_PLAN_AI);
    assert_string_equal(v.forced_by, "ai");
    /* sensitive and regulated hold AI-only, scored or forced, at hybrid. */
    v = classify("Update records", "routine data entry", "sensitive", 100);
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);
    assert_string_equal(v.held_by, "sensitive");
    assert_null(v.forced_by);
    v = classify("Meet partners", "", "ai-only; regulated", 1);
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);
    assert_string_equal(v.forced_by, "ai-only");
    assert_string_equal(v.held_by, "regulated");
    /* ...and do nothing to a hybrid or human-only task. */
    v = classify("Meet partners", "", "sensitive", 1);
    assert_int_equal(v.bucket, TDM_PLAN_HUMAN);
    assert_null(v.held_by);
    /* The same bucket twice is fine; free tags are read as words. */
    v = classify("Inbox", "", "hybrid,hybrid complaint", 1);
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);
    v = classify("Update records", "", "complaint", 100);
    assert_non_null(find_signal(&v, "empathy"));
    assert_int_equal(v.bucket, TDM_PLAN_HYBRID);

    tdm_plan_verdict bad;
    tdm_error err = {0};
    assert_int_equal(tdm_plan_classify("x", "", "ai-only human-only", 1, 1, &bad, &err),
                     TDM_EINVAL);
    assert_non_null(strstr(err.message, "\"ai-only\" and \"human-only\" contradict"));
    assert_int_equal(tdm_plan_classify("x", "", "human-onyl", 1, 1, &bad, &err), TDM_EINVAL);
    assert_non_null(strstr(err.message, "did you mean \"human-only\""));
    assert_int_equal(tdm_plan_classify("x", "", "sensitve", 1, 1, &bad, &err), TDM_EINVAL);
    assert_non_null(strstr(err.message, "did you mean \"sensitive\""));
    /* Short and unrelated tags are just words. */
    assert_int_equal(tdm_plan_classify("x", "", "hr; q3 finance-team", 1, 1, &bad, &err), 0);
}

/* ---- task logs ----------------------------------------------------------------------------- */

static int read_plan(const char *csv, tdm_plan **plan, tdm_error *err)
{
    tdm_table *t = NULL;
    int rc = tdm_table_read_buffer(csv, strlen(csv), TDM_FORMAT_CSV, "tasks.csv", NULL, &t, err);
    if (rc != 0)
        return rc;
    rc = tdm_plan_from_table(t, plan, err);
    tdm_table_free(t);
    return rc;
}

static const char good_csv[] =
    "name,team,minutes,per_week,description,tags\n"
    "Match invoices,Finance Ops,6,200,Match each invoice to its order.,\n"      /* ai */
    "Check claims,claims,12,10,\"Check documents, then assess fraud risk.\",\n" /* hybrid */
    "Partner lunch,Sales & Partners,90,0.5,Build the relationship.,\n"          /* human */
    "Match invoices,claims,3,1,routine data entry,sensitive\n"                  /* hybrid */
    "Match invoices!,claims,3,2,\"Line one\nline \"\"two\"\" \\\\ done\",\n"    /* ai */
    "  Tidy up  ,claims,0.5,0,,human-only\n";                                   /* human */

static void test_log_and_split(void **state)
{
    (void)state;
    tdm_plan *p = NULL;
    tdm_error err = {0};
    int rc = read_plan(good_csv, &p, &err);
    if (rc != 0)
        fail_msg("%s", err.message);
    assert_string_equal(tdm_plan_source(p), "tasks.csv");
    assert_int_equal(tdm_plan_task_count(p), 6);
    const tdm_plan_task *t = tdm_plan_task_at(p, 0);
    assert_string_equal(t->name, "Match invoices");
    assert_string_equal(t->queue, "finance-ops");
    assert_string_equal(t->slug, "match-invoices");
    assert_int_equal(t->line, 2);
    assert_true(fabs(t->weekly_hours - 20.0) < 1e-12);
    assert_int_equal(t->verdict.bucket, TDM_PLAN_AI);
    assert_int_equal(tdm_plan_task_at(p, 1)->verdict.bucket, TDM_PLAN_HYBRID);
    assert_string_equal(tdm_plan_task_at(p, 2)->queue, "sales-partners");
    assert_int_equal(tdm_plan_task_at(p, 2)->verdict.bucket, TDM_PLAN_HUMAN);
    /* Slugs stay unique: then the name and the team, then a number. */
    assert_string_equal(tdm_plan_task_at(p, 3)->slug, "match-invoices-claims");
    assert_string_equal(tdm_plan_task_at(p, 4)->slug, "match-invoices-claims-2");
    assert_int_equal(tdm_plan_task_at(p, 4)->line, 6);
    /* Cells are trimmed; a row may take no time at all. */
    t = tdm_plan_task_at(p, 5);
    assert_string_equal(t->name, "Tidy up");
    assert_int_equal(t->line, 8);
    assert_true(t->weekly_hours == 0);
    assert_string_equal(t->verdict.forced_by, "human-only");

    tdm_plan_split sp;
    tdm_plan_split_get(p, &sp);
    assert_int_equal(sp.tasks, 6);
    assert_int_equal(sp.teams, 3);
    assert_int_equal(sp.bucket[TDM_PLAN_AI].tasks, 2);
    assert_int_equal(sp.bucket[TDM_PLAN_HYBRID].tasks, 2);
    assert_int_equal(sp.bucket[TDM_PLAN_HUMAN].tasks, 2);
    /* Hours: 20 + 0.1 ai, 2 + 0.05 hybrid, 0.75 + 0 human. */
    assert_true(fabs(sp.bucket[TDM_PLAN_AI].hours - 20.1) < 1e-9);
    assert_true(fabs(sp.bucket[TDM_PLAN_HYBRID].hours - 2.05) < 1e-9);
    assert_true(fabs(sp.bucket[TDM_PLAN_HUMAN].hours - 0.75) < 1e-9);
    assert_true(fabs(sp.hours - 22.9) < 1e-9);
    assert_true(fabs(sp.bucket[TDM_PLAN_AI].share_tasks - 1.0 / 3) < 1e-12);
    assert_true(fabs(sp.bucket[TDM_PLAN_AI].share_hours - 20.1 / 22.9) < 1e-12);
    double sum = 0;
    for (int b = 0; b < TDM_PLAN_BUCKETS; b++)
        sum += sp.bucket[b].share_hours;
    assert_true(fabs(sum - 1) < 1e-12);
    assert_true(tdm_plan_rule_of_thumb(TDM_PLAN_AI) == 0.7);
    assert_true(tdm_plan_rule_of_thumb(TDM_PLAN_HYBRID) == 0.2);
    assert_true(tdm_plan_rule_of_thumb(TDM_PLAN_HUMAN) == 0.1);
    assert_string_equal(tdm_plan_bucket_name(TDM_PLAN_HYBRID), "hybrid");
    tdm_plan_free(p);

    /* Without a tags column, and as JSON Lines with numbers. */
    static const char jsonl[] =
        "{\"name\": \"Sort post\", \"team\": \"desk\", \"minutes\": 2, \"per_week\": 50, "
        "\"description\": \"sort\"}\n";
    tdm_table *tab = NULL;
    assert_int_equal(
        tdm_table_read_buffer(jsonl, strlen(jsonl), TDM_FORMAT_JSONL, "t.jsonl", NULL, &tab, &err),
        0);
    assert_int_equal(tdm_plan_from_table(tab, &p, &err), 0);
    assert_int_equal(tdm_plan_task_at(p, 0)->verdict.bucket, TDM_PLAN_AI);
    assert_string_equal(tdm_plan_task_at(p, 0)->tags, "");
    tdm_plan_free(p);
    tdm_table_free(tab);
}

/* Reads a log that must fail; checks the code, the field and a piece of the message. */
static void expect_error(const char *csv, int code, const char *field, const char *want)
{
    tdm_plan *p = (tdm_plan *)1;
    tdm_error err = {0};
    int rc = read_plan(csv, &p, &err);
    if (rc != code || strstr(err.message, want) == NULL)
        fail_msg("got %d \"%s\", expected %d with \"%s\"", rc, err.message, code, want);
    assert_null(p);
    if (field != NULL)
        assert_string_equal(err.field, field);
}

#define HEADER "name,team,minutes,per_week,description\n"

static void test_log_errors(void **state)
{
    (void)state;
    expect_error("name,team,minutes,description\nA,b,1,x\n", TDM_EINVAL, "per_week",
                 "tasks.csv:1: missing column \"per_week\", occurrences per week (the header is");
    expect_error("name,team,minutes_per_task,per_week,description\nA,b,1,1,x\n", TDM_EINVAL,
                 "minutes_per_task",
                 "tasks.csv:1: unknown column \"minutes_per_task\" (remove it or rename it");
    expect_error("name,team,minuts,per_week,description\nA,b,1,1,x\n", TDM_EINVAL, "minuts",
                 "tasks.csv:1: unknown column \"minuts\" (did you mean \"minutes\"?");
    expect_error("name,team,minutes,Per Week,description\nA,b,1,1,x\n", TDM_EINVAL, "Per Week",
                 "did you mean \"per_week\"?");
    expect_error("name,team,minutes,per_week,description,owner\nA,b,1,1,x,y\n", TDM_EINVAL, "owner",
                 "unknown column \"owner\"");
    expect_error(HEADER, TDM_ENODATA, NULL, "tasks.csv: no tasks");
    expect_error(HEADER "A,b,1,1,x\nB,b,-5,1,x\n", TDM_EINVAL, "minutes",
                 "tasks.csv:3: column \"minutes\": \"-5\" is out of range (minutes one "
                 "occurrence takes must be more than 0");
    expect_error(HEADER "A,b,0,1,x\n", TDM_EINVAL, "minutes", "\"0\" is out of range");
    expect_error(HEADER "A,b,15min,1,x\n", TDM_EINVAL, "minutes",
                 "tasks.csv:2: column \"minutes\": \"15min\" is not a number");
    expect_error(HEADER "A,b,\"2,5\",1,x\n", TDM_EINVAL, "minutes", "with a dot for decimals");
    expect_error(HEADER "A,b,nan,1,x\n", TDM_EINVAL, "minutes", "is not a number");
    expect_error(HEADER "A,b,0x10,1,x\n", TDM_EINVAL, "minutes", "is not a number");
    expect_error(HEADER "A,b,1e9,1,x\n", TDM_EINVAL, "minutes", "at most 100000");
    expect_error(HEADER "A,b,1,,x\n", TDM_EINVAL, "per_week",
                 "column \"per_week\": empty (every task needs its occurrences per week");
    expect_error(HEADER "A,b,1,-0.5,x\n", TDM_EINVAL, "per_week", "must be at least 0");
    expect_error(HEADER "A,b,1,1,x\n , b,1,1,x\n", TDM_EINVAL, "name",
                 "tasks.csv:3: column \"name\": empty");
    expect_error(HEADER "A,,1,1,x\n", TDM_EINVAL, "team", "column \"team\": empty");
    expect_error(HEADER "A,???,1,1,x\n", TDM_EINVAL, "team", "has no letter or digit");
    expect_error(HEADER "\"A\nB\",b,1,1,x\n", TDM_EINVAL, "name", "contains a line break");
    expect_error(HEADER "\xff,b,1,1,x\n", TDM_EINVAL, "name", "not valid UTF-8");
    expect_error(HEADER "A,b,1,1,x\nC,b,1,1,x\nA,b,2,2,y\n", TDM_EINVAL, "name",
                 "tasks.csv:4: column \"name\": task \"A\" of team \"b\" is already on line 2");
    expect_error("name,team,minutes,per_week,description,tags\nA,b,1,1,x,ai human\n", TDM_EINVAL,
                 "tags", "tasks.csv:2: column \"tags\": tags \"ai\" and \"human\" contradict");
}

static void test_skeletons(void **state)
{
    (void)state;
    tdm_plan *p = NULL;
    tdm_error err = {0};
    assert_int_equal(read_plan(good_csv, &p, &err), 0);
    for (size_t i = 0; i < tdm_plan_task_count(p); i++) {
        const tdm_plan_task *t = tdm_plan_task_at(p, i);
        char *yaml = NULL;
        int rc = tdm_plan_skeleton(p, i, &yaml, &err);
        if (t->verdict.bucket == TDM_PLAN_HUMAN) {
            assert_int_equal(rc, TDM_EINVAL);
            assert_null(yaml);
            assert_non_null(strstr(err.message, "is human-only"));
            continue;
        }
        if (rc != 0)
            fail_msg("skeleton %zu: %s", i, err.message);
        tdm_process *proc = NULL;
        rc = tdm_process_parse(yaml, strlen(yaml), "skeleton.yaml", &proc, &err);
        if (rc != 0)
            fail_msg("skeleton %zu does not parse: %s\n%s", i, err.message, yaml);
        assert_string_equal(tdm_process_name(proc), t->slug);
        assert_string_equal(tdm_process_description(proc), t->description);
        assert_true(tdm_process_baseline_minutes(proc) == t->minutes);
        assert_true(tdm_process_baseline_error(proc) == TDM_PLAN_DEFAULT_ERROR);
        assert_int_equal(tdm_process_step_count(proc), 1);
        const tdm_step_info *info = tdm_process_step(proc, 0);
        assert_non_null(info);
        assert_int_equal(info->allocation,
                         t->verdict.bucket == TDM_PLAN_AI ? TDM_ALLOC_AI : TDM_ALLOC_HYBRID);
        assert_string_equal(info->queue, t->queue);
        assert_true(info->max_error == 0.01);
        assert_non_null(strstr(yaml, "owner: process-owner@example.com  # TODO"));
        assert_non_null(strstr(yaml, "error_rate: 0.05  # TODO"));
        assert_non_null(strstr(yaml, "field: outcome  # TODO"));
        tdm_process_free(proc);
        tdm_free(yaml);
    }
    char *yaml = (char *)1;
    assert_int_equal(tdm_plan_skeleton(p, 99, &yaml, &err), TDM_EINVAL);
    assert_null(yaml);
    tdm_plan_free(p);
}

/* docs/plan.md has one table row per group: "| name | side | weight | `w1` `w2` ... |". */
static void test_docs_list_the_rubric(void **state)
{
    (void)state;
    FILE *f = fopen(TDM_SOURCE_DIR "/docs/plan.md", "r");
    assert_non_null(f);
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    const tdm_plan_group *g;
    size_t ng = tdm_plan_rubric(&g);
    assert_int_equal(ng, 8);
    for (size_t i = 0; i < ng; i++) {
        char head[64];
        snprintf(head, sizeof head, "\n| %s | %s | %d |", g[i].name,
                 g[i].toward_ai ? "AI" : "people", g[i].weight);
        const char *row = strstr(doc, head);
        if (row == NULL)
            fail_msg("docs/plan.md has no row starting \"%s\"", head + 1);
        row++;
        const char *end = strchr(row, '\n');
        size_t len = end ? (size_t)(end - row) : strlen(row);
        char *line = strndup(row, len);
        size_t ticks = 0;
        for (const char *p = line; *p; p++)
            ticks += *p == '`';
        if (ticks != 2 * g[i].n_words)
            fail_msg("docs/plan.md lists %zu words for %s; the code has %zu", ticks / 2, g[i].name,
                     g[i].n_words);
        for (size_t k = 0; k < g[i].n_words; k++) {
            char want[80];
            snprintf(want, sizeof want, "`%s`", g[i].words[k]);
            if (strstr(line, want) == NULL)
                fail_msg("docs/plan.md's %s row lacks %s", g[i].name, want);
        }
        free(line);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repetitive_is_ai),
        cmocka_unit_test(test_volume_needs_a_word),
        cmocka_unit_test(test_rare),
        cmocka_unit_test(test_margins),
        cmocka_unit_test(test_risk_and_empathy_hold_at_hybrid),
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_log_and_split),
        cmocka_unit_test(test_log_errors),
        cmocka_unit_test(test_skeletons),
        cmocka_unit_test(test_docs_list_the_rubric),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
