/*
 * test_engine.c — the engine through its public API, on a real SQLite file: processes,
 * training, routing, queues, feedback, durability across a reopen, and the audit chain.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/engine_int.h" /* the writer, for barrier() */
#include "tandem/engine.h"
#include "util/util.h"

static const char process_yaml[] = "process: triage\n"
                                   "owner: owner@example.com\n"
                                   "kpis: [first_response_minutes]\n"
                                   "baseline:\n"
                                   "  minutes_per_item: 3\n"
                                   "  error_rate: 0.05\n"
                                   "steps:\n"
                                   "  - id: intent\n"
                                   "    allocation: ai\n"
                                   "    owner: lead@example.com\n"
                                   "    inputs: [text]\n"
                                   "    output:\n"
                                   "      field: intent\n"
                                   "    guardrails:\n"
                                   "      max_error: 0.05\n"
                                   "      confidence: 0.95\n"
                                   "      audit_sample: 0\n"
                                   "      review_when:\n"
                                   "        - 'text contains \"lawyer\"'\n"
                                   "      queue: support\n"
                                   "      sla_minutes: 60\n"
                                   "      escalation_queue: leads\n";

static const char *const intents[] = {"refund", "lost_card", "password"};
static const char *const vocab[3][6] = {
    {"refund", "money", "back", "return", "charged", "twice"},
    {"lost", "card", "stolen", "missing", "wallet", "block"},
    {"password", "login", "reset", "forgot", "locked", "account"},
};

static char *training_csv(size_t per_class)
{
    size_t cap = per_class * 3 * 96 + 64, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    len += (size_t)snprintf(buf, cap, "text,intent\n");
    tdm__rng rng;
    tdm__rng_seed(&rng, 3);
    for (size_t i = 0; i < per_class * 3; i++) {
        size_t c = i % 3;
        len += (size_t)snprintf(
            buf + len, cap - len, "please %s my %s %s,%s\n", vocab[c][tdm__rng_below(&rng, 6)],
            vocab[c][tdm__rng_below(&rng, 6)], vocab[c][tdm__rng_below(&rng, 6)], intents[c]);
    }
    return buf;
}

static char db_path[64];

static tdm_engine *open_engine(void)
{
    tdm_engine_opts o;
    tdm_engine_opts_init(&o);
    o.db_path = db_path;
    o.seed = 7;
    tdm_engine *e = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_open(&o, &e, &err);
    if (rc != 0)
        print_error("open: %s\n", err.message);
    assert_int_equal(rc, 0);
    return e;
}

static json_t *parse(char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    tdm_free(text);
    return v;
}

static json_t *submit(tdm_engine *e, const char *body)
{
    char *out;
    tdm_error err = {0};
    int rc = tdm_engine_submit(e, "triage", body, strlen(body), 0, "tester", &out, NULL, &err);
    if (rc != 0)
        print_error("submit: %s\n", err.message);
    assert_int_equal(rc, 0);
    return parse(out);
}

/* Submits the text `before` answered and expects the same status and the same confidence
 * (the model rebuilt exactly); frees `before`. */
static void expect_same_answer(tdm_engine *e, json_t *before)
{
    json_t *r = submit(e, "{\"text\": \"money back twice please\"}");
    assert_string_equal(json_string_value(json_object_get(before, "status")),
                        json_string_value(json_object_get(r, "status")));
    json_t *da = json_object_get(before, "decision") ? json_object_get(before, "decision")
                                                     : json_object_get(before, "proposal");
    json_t *db = json_object_get(r, "decision") ? json_object_get(r, "decision")
                                                : json_object_get(r, "proposal");
    assert_true(json_real_value(json_object_get(da, "confidence")) ==
                json_real_value(json_object_get(db, "confidence")));
    json_decref(before);
    json_decref(r);
}

static int setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof db_path, "/tmp/tandem-engine-%d.db", (int)getpid());
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

static void test_whole_loop(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    tdm_error err = {0};
    char *out;

    /* A process file, refused under the wrong name, accepted under its own. */
    assert_int_equal(
        tdm_engine_put_process(e, "other", process_yaml, strlen(process_yaml), "owner", &out, &err),
        TDM_EINVAL);
    assert_string_equal(err.field, "process");
    assert_int_equal(tdm_engine_put_process(e, "triage", process_yaml, strlen(process_yaml),
                                            "owner", &out, &err),
                     0);
    json_t *p = parse(out);
    assert_string_equal(json_string_value(json_object_get(p, "name")), "triage");
    json_decref(p);

    /* Before training nobody can decide: the item waits for a person, with no proposal. */
    json_t *r = submit(e, "{\"id\": \"first\", \"text\": \"my card was stolen\"}");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "queued");
    assert_true(json_is_null(json_object_get(r, "proposal")));
    json_decref(r);

    /* Training from history gives a model and a certified threshold. */
    char *csv = training_csv(150);
    assert_int_equal(
        tdm_engine_train(e, "triage", csv, strlen(csv), TDM_FORMAT_CSV, "owner", &out, &err), 0);
    free(csv);
    json_t *t = parse(out);
    json_t *s0 = json_array_get(json_object_get(t, "steps"), 0);
    assert_int_equal(json_integer_value(json_object_get(s0, "n_train")), 450);
    assert_false(json_is_null(json_object_get(s0, "threshold")));
    json_decref(t);

    /* Confident items are decided by the AI alone; a review rule sends one to a person. */
    r = submit(e, "{\"id\": \"a1\", \"text\": \"please reset my forgot password\"}");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "decided");
    json_t *dec = json_object_get(r, "decision");
    assert_string_equal(json_string_value(json_object_get(dec, "value")), "password");
    char decision_id[64];
    snprintf(decision_id, sizeof decision_id, "%s", json_string_value(json_object_get(dec, "id")));
    json_decref(r);
    r = submit(e, "{\"id\": \"a2\", \"text\": \"my lawyer says refund the money\"}");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "queued");
    char task_id[64];
    snprintf(task_id, sizeof task_id, "%s", json_string_value(json_object_get(r, "task_id")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "proposal"), "value")),
                        "refund");
    json_decref(r);

    /* The queue shows it; one person claims it, another cannot. */
    assert_int_equal(tdm_engine_list_tasks(e, "support", "open", 10, &out, &err), 0);
    json_t *q = parse(out);
    assert_true(json_array_size(json_object_get(q, "tasks")) >= 2);
    /* A task with a proposal shows the features that drove it. */
    size_t ti;
    json_t *task;
    int with_reasons = 0;
    json_array_foreach(json_object_get(q, "tasks"), ti, task)
    {
        if (!json_is_null(json_object_get(task, "proposal")))
            with_reasons += json_array_size(json_object_get(task, "reasons")) > 0;
    }
    assert_true(with_reasons > 0);
    json_decref(q);
    assert_int_equal(tdm_engine_claim_task(e, task_id, "ana", 60, &out, &err), 0);
    tdm_free(out);
    assert_int_equal(tdm_engine_claim_task(e, task_id, "ben", 60, &out, &err), TDM_ECONFLICT);
    assert_non_null(strstr(err.message, "ana"));

    /* A correction of the wrong type is refused and changes nothing. */
    const char *bad = "{\"action\": \"correct\", \"value\": 42}";
    assert_int_equal(tdm_engine_complete_task(e, task_id, "ana", bad, strlen(bad), &out, &err),
                     TDM_EINVAL);
    assert_string_equal(err.field, "value");
    assert_int_equal(tdm_engine_list_tasks(e, "support", "claimed", 10, &out, &err), 0);
    q = parse(out);
    assert_int_equal(json_array_size(json_object_get(q, "tasks")), 1);
    json_decref(q);

    /* Ben cannot complete Ana's task; Ana accepts. */
    const char *accept = "{\"action\": \"accept\", \"comment\": \"fine\"}";
    assert_int_equal(
        tdm_engine_complete_task(e, task_id, "ben", accept, strlen(accept), &out, &err),
        TDM_ECONFLICT);
    assert_int_equal(
        tdm_engine_complete_task(e, task_id, "ana", accept, strlen(accept), &out, &err), 0);
    json_t *c = parse(out);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "decision"), "value")),
                        "refund");
    assert_true(
        json_integer_value(json_object_get(json_object_get(c, "decision"), "model_version")) > 1);
    json_decref(c);
    /* A second completion is a conflict, not an overwrite. */
    assert_int_equal(
        tdm_engine_complete_task(e, task_id, "ana", accept, strlen(accept), &out, &err),
        TDM_ECONFLICT);
    assert_non_null(strstr(err.message, "already completed"));

    /* Feedback on the AI's decision teaches the model: a new model version. */
    const char *fb = "{\"verdict\": \"inaccurate\", \"correction\": \"lost_card\"}";
    assert_int_equal(tdm_engine_feedback(e, decision_id, "ana", fb, strlen(fb), &out, &err), 0);
    json_t *f = parse(out);
    assert_true(json_integer_value(json_object_get(f, "model_version")) > 1);
    json_decref(f);
    assert_int_equal(tdm_engine_feedback(e, "dec_nope", "ana", fb, strlen(fb), &out, &err),
                     TDM_ENOTFOUND);

    /* Escalation moves a task to the escalation queue. */
    r = submit(e, "{\"id\": \"a3\", \"text\": \"lawyer lawyer lost card\"}");
    snprintf(task_id, sizeof task_id, "%s", json_string_value(json_object_get(r, "task_id")));
    json_decref(r);
    const char *esc = "{\"action\": \"escalate\"}";
    if (tdm_engine_complete_task(e, task_id, "ana", esc, strlen(esc), &out, &err) != 0)
        fail_msg("escalate: %s", err.message);
    tdm_free(out);
    assert_int_equal(tdm_engine_list_tasks(e, "leads", "open", 10, &out, &err), 0);
    q = parse(out);
    assert_int_equal(json_array_size(json_object_get(q, "tasks")), 1);
    json_decref(q);

    /* Submitting an item again voids its open task: completing that is a conflict. */
    r = submit(e, "{\"id\": \"a3\", \"text\": \"lawyer again about my card\"}");
    json_decref(r);
    assert_int_equal(
        tdm_engine_complete_task(e, task_id, "ana", accept, strlen(accept), &out, &err),
        TDM_ECONFLICT);

    /* The item's whole story. */
    assert_int_equal(tdm_engine_get_item(e, "a2", &out, &err), 0);
    json_t *item = parse(out);
    assert_int_equal(json_array_size(json_object_get(item, "decisions")), 1);
    assert_int_equal(json_array_size(json_object_get(item, "tasks")), 1);
    json_decref(item);
    assert_int_equal(tdm_engine_get_item(e, "zzz", &out, &err), TDM_ENOTFOUND);

    /* A prediction before and after a restart agree: the model is rebuilt exactly. */
    r = submit(e, "{\"text\": \"money back twice please\"}");
    json_t *before = json_deep_copy(r);
    json_decref(r);
    tdm_engine_close(e);
    /* Make the reopened engine rebuild the model from the trained snapshot and the log of
     * online updates after it, as after a crash (the close wrote a newer snapshot). */
    sqlite3 *raw0;
    assert_int_equal(sqlite3_open(db_path, &raw0), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw0,
                                  "UPDATE models SET snapshot = NULL WHERE reason != 'trained'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_true(sqlite3_changes(raw0) > 0);
    sqlite3_close(raw0);
    e = open_engine();
    expect_same_answer(e, before);

    /* The audit chain verifies, and names the first entry changed behind its back. */
    tdm_audit_check chk;
    assert_int_equal(tdm_engine_audit_verify(e, &chk, &err), 0);
    assert_true(chk.ok);
    assert_true(chk.entries > 10);
    assert_int_equal(tdm_engine_audit(e, 0, 5, &out, &err), 0);
    json_t *au = parse(out);
    assert_int_equal(json_array_size(json_object_get(au, "entries")), 5);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(au, "entries"), 0), "event")),
                        "process.applied");
    json_decref(au);
    tdm_engine_close(e);

    sqlite3 *raw;
    assert_int_equal(sqlite3_open(db_path, &raw), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(raw, "UPDATE audit SET actor = 'mallory' WHERE seq = 7", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(raw);
    e = open_engine();
    assert_int_equal(tdm_engine_audit_verify(e, &chk, &err), 0);
    assert_false(chk.ok);
    assert_int_equal(chk.first_bad, 7);
    tdm_engine_close(e);
}

static void test_bad_input_changes_nothing(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    tdm_error err = {0};
    char *out;
    assert_int_equal(tdm_engine_put_process(e, "triage", process_yaml, strlen(process_yaml),
                                            "owner", &out, &err),
                     0);
    tdm_free(out);
    assert_int_equal(tdm_engine_health(e, &out, &err), 0);
    json_t *h0 = parse(out);

    const char *cases[] = {"{\"text\": ", "[1, 2]", "{\"id\": 5, \"text\": \"x\"}", ""};
    int codes[] = {TDM_EPARSE, TDM_EPARSE, TDM_EINVAL, TDM_EPARSE};
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            tdm_engine_submit(e, "triage", cases[i], strlen(cases[i]), 0, "t", &out, NULL, &err),
            codes[i]);
    /* A batch with one bad line stores none of it, and says which line. */
    const char *batch = "{\"text\": \"fine\"}\n{\"text\": \"also fine\"}\n{oops}\n";
    assert_int_equal(tdm_engine_submit(e, "triage", batch, strlen(batch), 1, "t", &out, NULL, &err),
                     TDM_EPARSE);
    assert_non_null(strstr(err.message, "line 3"));
    assert_int_equal(tdm_engine_submit(e, "nope", "{}", 2, 0, "t", &out, NULL, &err),
                     TDM_ENOTFOUND);
    const char *bad_yaml = "process: triage\nowner: x\n";
    assert_int_equal(
        tdm_engine_put_process(e, "triage", bad_yaml, strlen(bad_yaml), "o", &out, &err),
        TDM_EINVAL);
    assert_int_equal(
        tdm_engine_train(e, "triage", "a,b\n1,2\n", 8, TDM_FORMAT_CSV, "o", &out, &err),
        TDM_EINVAL);

    assert_int_equal(tdm_engine_health(e, &out, &err), 0);
    json_t *h1 = parse(out);
    assert_true(json_equal(json_object_get(h0, "items"), json_object_get(h1, "items")));
    assert_true(
        json_equal(json_object_get(h0, "audit_entries"), json_object_get(h1, "audit_entries")));
    json_decref(h0);
    json_decref(h1);

    /* A good batch answers one line per item, in order. */
    const char *good =
        "{\"id\": \"b1\", \"text\": \"one\"}\n\n{\"id\": \"b2\", \"text\": \"two\"}\n";
    size_t len;
    assert_int_equal(tdm_engine_submit(e, "triage", good, strlen(good), 1, "t", &out, &len, &err),
                     0);
    assert_int_equal(strlen(out), len);
    assert_non_null(strstr(out, "\"b1\""));
    assert_true(strstr(out, "\"b1\"") < strstr(out, "\"b2\""));
    tdm_free(out);
    tdm_engine_close(e);
}

/*
 * Drift: a step whose audited decisions turn out wrong stops deciding alone and says so
 * (automation.paused on the audit trail, paused in the process summary); and enough human
 * checks move the threshold (threshold.changed).
 */
static void test_audited_errors_pause_automation(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    tdm_error err = {0};
    char *out;
    /* The same process with half of the autonomous decisions drawn for audit. */
    const char *at = strstr(process_yaml, "audit_sample: 0\n");
    assert_non_null(at);
    size_t head = (size_t)(at - process_yaml);
    char *yaml = malloc(sizeof process_yaml + 8);
    assert_non_null(yaml);
    memcpy(yaml, process_yaml, head);
    strcpy(yaml + head, "audit_sample: 0.5\n");
    strcat(yaml, at + strlen("audit_sample: 0\n"));
    assert_int_equal(tdm_engine_put_process(e, "triage", yaml, strlen(yaml), "owner", &out, &err),
                     0);
    tdm_free(out);
    free(yaml);
    char *csv = training_csv(150);
    assert_int_equal(
        tdm_engine_train(e, "triage", csv, strlen(csv), TDM_FORMAT_CSV, "owner", &out, &err), 0);
    free(csv);
    tdm_free(out);

    /* Items the model is sure of: some decided alone, some drawn for audit. */
    int audits = 0, decided = 0;
    char tasks[64][64];
    for (int i = 0; i < 60 && audits < 64; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"text\": \"please reset my forgot password %d\"}", i);
        json_t *r = submit(e, body);
        if (strcmp(json_string_value(json_object_get(r, "status")), "queued") == 0)
            snprintf(tasks[audits++], 64, "%s", json_string_value(json_object_get(r, "task_id")));
        else
            decided++;
        json_decref(r);
    }
    assert_true(decided > 5);
    assert_true(audits > 5);

    /* Reviewers find every audited answer wrong: the model's world has changed. */
    const char *wrong = "{\"action\": \"correct\", \"value\": \"refund\"}";
    for (int i = 0; i < audits; i++) {
        assert_int_equal(
            tdm_engine_complete_task(e, tasks[i], "ana", wrong, strlen(wrong), &out, &err), 0);
        tdm_free(out);
    }

    /* The checks run on the writer after each commit; wait for them (bounded). */
    int paused = 0;
    for (int tries = 0; tries < 100 && !paused; tries++) {
        assert_int_equal(tdm_engine_get_process(e, "triage", &out, &err), 0);
        json_t *p = parse(out);
        paused =
            json_is_true(json_object_get(json_array_get(json_object_get(p, "steps"), 0), "paused"));
        json_decref(p);
        if (!paused) {
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(paused);

    /* From now on everything goes to a person, and the owner was told on the trail. */
    json_t *r = submit(e, "{\"text\": \"please reset my forgot password\"}");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "queued");
    json_decref(r);
    assert_int_equal(tdm_engine_list_tasks(e, "support", "open", 1000, &out, &err), 0);
    assert_non_null(strstr(out, "\"why\":\"paused\""));
    tdm_free(out);
    int found_pause = 0, found_threshold = 0;
    for (uint64_t after = 0;;) {
        assert_int_equal(tdm_engine_audit(e, after, 1000, &out, &err), 0);
        json_t *a = parse(out);
        json_t *entries = json_object_get(a, "entries");
        size_t i;
        json_t *entry;
        json_array_foreach(entries, i, entry)
        {
            const char *ev = json_string_value(json_object_get(entry, "event"));
            if (strcmp(ev, "automation.paused") == 0) {
                found_pause = 1;
                assert_string_equal(
                    json_string_value(json_object_get(json_object_get(entry, "data"), "owner")),
                    "lead@example.com");
            }
            found_threshold |= strcmp(ev, "threshold.changed") == 0;
        }
        size_t n = json_array_size(entries);
        after = (uint64_t)json_integer_value(json_object_get(a, "next"));
        json_decref(a);
        if (n < 1000)
            break;
    }
    assert_true(found_pause);
    assert_true(found_threshold); /* the wrong audits moved the threshold too */
    assert_int_equal(tdm_engine_health(e, &out, &err), 0);
    json_t *h = parse(out);
    assert_int_equal(json_integer_value(json_object_get(h, "paused_steps")), 1);
    json_decref(h);
    tdm_engine_close(e);
}

/* ------------------------------------------------------------------------------------------ */
/* Keeping the threshold honest (src/core/learning.c)                                         */
/* ------------------------------------------------------------------------------------------ */

static int noop_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    (void)tx;
    (void)job;
    (void)err;
    return 0;
}

/* Waits for the recomputations already queued: an empty writer job runs after them. */
static void barrier(tdm_engine *e)
{
    tdm__job job = {0};
    job.run = noop_run;
    tdm_error err = {0};
    assert_int_equal(tdm__writer_run(e->writer, &job, &err), 0);
}

/* The process's yaml with another max_error and audit_sample; free() it. */
static char *custom_yaml(const char *max_error, const char *audit_sample)
{
    const char *m = strstr(process_yaml, "max_error: 0.05\n");
    const char *a = strstr(process_yaml, "audit_sample: 0\n");
    assert_non_null(m);
    assert_non_null(a);
    assert_true(m < a);
    char *yaml = malloc(sizeof process_yaml + 64);
    assert_non_null(yaml);
    size_t len = (size_t)(m - process_yaml);
    memcpy(yaml, process_yaml, len);
    len += (size_t)sprintf(yaml + len, "max_error: %s\n", max_error);
    const char *mid = m + strlen("max_error: 0.05\n");
    memcpy(yaml + len, mid, (size_t)(a - mid));
    len += (size_t)(a - mid);
    len += (size_t)sprintf(yaml + len, "audit_sample: %s\n", audit_sample);
    strcpy(yaml + len, a + strlen("audit_sample: 0\n"));
    return yaml;
}

static void put_and_train(tdm_engine *e, const char *yaml, size_t per_class)
{
    tdm_error err = {0};
    char *out;
    assert_int_equal(tdm_engine_put_process(e, "triage", yaml, strlen(yaml), "owner", &out, &err),
                     0);
    tdm_free(out);
    if (per_class == 0)
        return;
    char *csv = training_csv(per_class);
    assert_int_equal(
        tdm_engine_train(e, "triage", csv, strlen(csv), TDM_FORMAT_CSV, "owner", &out, &err), 0);
    free(csv);
    tdm_free(out);
}

/* The step's threshold (NAN when it has none). */
static double step_threshold(tdm_engine *e)
{
    char *out;
    tdm_error err = {0};
    assert_int_equal(tdm_engine_get_process(e, "triage", &out, &err), 0);
    json_t *p = parse(out);
    json_t *t = json_object_get(json_array_get(json_object_get(p, "steps"), 0), "threshold");
    double v = json_is_number(t) ? json_number_value(t) : NAN;
    json_decref(p);
    return v;
}

/* The data of the trail's `event` entries, in order (a new reference). */
static json_t *audit_data(tdm_engine *e, const char *event)
{
    json_t *all = json_array();
    char *out;
    tdm_error err = {0};
    for (uint64_t after = 0;;) {
        assert_int_equal(tdm_engine_audit(e, after, 1000, &out, &err), 0);
        json_t *a = parse(out);
        json_t *entries = json_object_get(a, "entries");
        size_t i;
        json_t *entry;
        json_array_foreach(entries, i, entry)
        {
            if (strcmp(json_string_value(json_object_get(entry, "event")), event) == 0)
                json_array_append(all, json_object_get(entry, "data"));
        }
        size_t n = json_array_size(entries);
        after = (uint64_t)json_integer_value(json_object_get(a, "next"));
        json_decref(a);
        if (n < 1000)
            break;
    }
    return all;
}

/* The threshold.changed events on the trail, in order (a new reference). */
static json_t *threshold_changes(tdm_engine *e)
{
    return audit_data(e, "threshold.changed");
}

/* Completes a task with `body` as `who`; returns the answer (a new reference). */
static json_t *complete_as(tdm_engine *e, const char *task, const char *who, const char *body)
{
    char *out = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_complete_task(e, task, who, body, strlen(body), &out, &err);
    if (rc != 0)
        print_error("complete: %s\n", err.message);
    assert_int_equal(rc, 0);
    return parse(out);
}

/* Submits `body`; when it is queued, answers its task with the proposal (accept). Returns
 * 1 when a person answered, 0 when the AI decided alone. */
static int submit_and_accept(tdm_engine *e, const char *body, const char *why_wanted)
{
    json_t *r = submit(e, body);
    int queued = strcmp(json_string_value(json_object_get(r, "status")), "queued") == 0;
    if (queued) {
        char task[64];
        snprintf(task, sizeof task, "%s", json_string_value(json_object_get(r, "task_id")));
        char *out;
        tdm_error err = {0};
        if (why_wanted != NULL) {
            assert_int_equal(tdm_engine_get_task(e, task, &out, &err), 0);
            json_t *t = parse(out);
            assert_string_equal(json_string_value(json_object_get(t, "why")), why_wanted);
            json_decref(t);
        }
        json_decref(complete_as(e, task, "ana", "{\"action\": \"accept\"}"));
    }
    json_decref(r);
    return queued;
}

/*
 * Audit samples that people find right leave the certified threshold alone, however heavy
 * their weight. (Recomputed from the top on the weighted checks, as before, 25 right
 * samples of weight 20 beside the 450 cross-fitted checks made an effective count of 86,
 * under the 299 a 1% budget needs: the certificate was gone.)
 */
static void test_right_audits_keep_the_threshold(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    char *yaml = custom_yaml("0.01", "0.05");
    put_and_train(e, yaml, 150);
    free(yaml);
    double t0 = step_threshold(e);
    assert_false(isnan(t0));
    json_t *before = threshold_changes(e);

    int audits = 0, alone = 0;
    for (int i = 0; i < 700; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"text\": \"please reset my forgot password %d\"}", i);
        if (submit_and_accept(e, body, "audit_sample"))
            audits++;
        else
            alone++;
    }
    barrier(e);
    assert_true(audits >= 25); /* a recomputation at least */
    assert_true(alone > 600);
    assert_true(step_threshold(e) == t0);
    json_t *after = threshold_changes(e);
    assert_int_equal(json_array_size(after), json_array_size(before));
    json_decref(before);
    json_decref(after);
    tdm_engine_close(e);
}

/*
 * The drift test looks again at every wrong audit sample, each look at a smaller level, so
 * that a step within its budget is paused with probability at most 1 - confidence over
 * all the looks: 2 wrong among the first 20 audit samples of a 1% step do not pause it
 * (tested once at 95%, the lower bound on 2 of 20 is 1.8%: the old test paused), 2 wrong
 * among the first 10 do.
 */
static void test_drift_looks_are_counted(void **state)
{
    (void)state;
    for (int early = 0; early <= 1; early++) {
        tdm_engine *e = open_engine();
        char *yaml = custom_yaml("0.01", "0.5");
        put_and_train(e, yaml, 150);
        free(yaml);
        assert_false(isnan(step_threshold(e)));
        int audits = 0;
        for (int i = 0; audits < 20; i++) {
            char body[128];
            snprintf(body, sizeof body, "{\"text\": \"please reset my forgot password %d\"}", i);
            json_t *r = submit(e, body);
            if (strcmp(json_string_value(json_object_get(r, "status")), "queued") == 0) {
                audits++;
                int wrong = early ? (audits == 5 || audits == 10) : (audits == 10 || audits == 20);
                const char *answer = wrong ? "{\"action\": \"correct\", \"value\": \"refund\"}"
                                           : "{\"action\": \"accept\"}";
                char task[64], *out;
                tdm_error err = {0};
                snprintf(task, sizeof task, "%s", json_string_value(json_object_get(r, "task_id")));
                assert_int_equal(
                    tdm_engine_complete_task(e, task, "ana", answer, strlen(answer), &out, &err),
                    0);
                tdm_free(out);
                barrier(e);
            }
            json_decref(r);
        }
        char *out;
        tdm_error err = {0};
        assert_int_equal(tdm_engine_get_process(e, "triage", &out, &err), 0);
        json_t *p = parse(out);
        json_t *paused = json_object_get(json_array_get(json_object_get(p, "steps"), 0), "paused");
        assert_true(early ? json_is_true(paused) : json_is_false(paused));
        json_decref(p);
        tdm_engine_close(e);
        teardown(NULL);
    }
}

/* A text for intent c whose words are its own with probability 0.75, else another intent's:
 * the model cannot be sure of all of them. */
/* One number from the store (a fresh connection, so it sees every commit). */
static int64_t sql_int(const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        print_error("no row: %s\n", sql);
    assert_int_equal(rc, SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* An item of intent c: "please" and three of its words, drawn from rng in order. */
static void intent_body(tdm__rng *rng, size_t c, char *body, size_t cap)
{
    const char *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = vocab[c][tdm__rng_below(rng, 6)];
    snprintf(body, cap, "{\"text\": \"please %s my %s %s\"}", w[0], w[1], w[2]);
}

static void mixed_text(tdm__rng *rng, size_t c, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "please");
    for (int w = 0; w < 3; w++) {
        size_t from = tdm__rng_double(rng) < 0.75 ? c : (c + 1 + tdm__rng_below(rng, 2)) % 3;
        len += (size_t)snprintf(buf + len, cap - len, " %s", vocab[from][tdm__rng_below(rng, 6)]);
    }
}

/* Training rows of mixed_text(), 150 per intent. */
static char *mixed_training_csv(void)
{
    size_t cap = 450 * 96 + 64, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    len += (size_t)snprintf(buf, cap, "text,intent\n");
    tdm__rng rng;
    tdm__rng_seed(&rng, 17);
    for (size_t i = 0; i < 450; i++) {
        char text[96];
        mixed_text(&rng, i % 3, text, sizeof text);
        len += (size_t)snprintf(buf + len, cap - len, "%s,%s\n", text, intents[i % 3]);
    }
    return buf;
}

/* Submits `n` items of mixed_text() and answers those that go to a person: with the
 * proposal when `right`, else with another intent. Returns how many went to a person. */
static int unsure_items(tdm_engine *e, int n, int right, int from)
{
    int reviewed = 0;
    tdm__rng rng;
    tdm__rng_seed(&rng, 100 + (uint64_t)from);
    for (int i = from; i < from + n; i++) {
        char text[96], body[128];
        mixed_text(&rng, (size_t)i % 3, text, sizeof text);
        snprintf(body, sizeof body, "{\"text\": \"%s\"}", text);
        json_t *r = submit(e, body);
        if (strcmp(json_string_value(json_object_get(r, "status")), "queued") == 0) {
            const char *proposal =
                json_string_value(json_object_get(json_object_get(r, "proposal"), "value"));
            assert_non_null(proposal);
            const char *other = strcmp(proposal, intents[0]) != 0 ? intents[0] : intents[1];
            char answer[96], task[64];
            if (right)
                snprintf(answer, sizeof answer, "{\"action\": \"accept\"}");
            else
                snprintf(answer, sizeof answer, "{\"action\": \"correct\", \"value\": \"%s\"}",
                         other);
            snprintf(task, sizeof task, "%s", json_string_value(json_object_get(r, "task_id")));
            json_decref(complete_as(e, task, "ana", answer));
            reviewed++;
        }
        json_decref(r);
    }
    barrier(e);
    return reviewed;
}

/*
 * Below the threshold every item goes to a person: a band of those checks, certified on its
 * own, lowers the threshold (the region above it is certified already); a band of mistakes
 * changes nothing.
 */
static void test_band_below_lowers_the_threshold(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    put_and_train(e, process_yaml, 0);
    char *csv = mixed_training_csv();
    char *out;
    tdm_error err = {0};
    assert_int_equal(
        tdm_engine_train(e, "triage", csv, strlen(csv), TDM_FORMAT_CSV, "owner", &out, &err), 0);
    tdm_free(out);
    double t0 = step_threshold(e);
    assert_false(isnan(t0));

    /* People find every proposal right. */
    assert_true(unsure_items(e, 400, 1, 0) >= 59); /* 59 right checks certify 5% at 95% */
    /* A threshold chose those items: none of their answers is census (NOTES ON REFITS). */
    assert_true(sql_int("SELECT count(*) FROM model_updates") >= 59);
    assert_int_equal(sql_int("SELECT count(*) FROM model_updates WHERE census != 0"), 0);
    double t1 = step_threshold(e);
    assert_false(isnan(t1));
    assert_true(t1 < t0);
    json_t *changes = threshold_changes(e);
    json_t *last = json_array_get(changes, json_array_size(changes) - 1);
    assert_non_null(last);
    assert_string_equal(json_string_value(json_object_get(last, "basis")),
                        "band below the threshold");
    assert_true(json_number_value(json_object_get(last, "bound")) <= 0.05);
    assert_true(json_number_value(json_object_get(last, "old")) == t0);
    json_decref(changes);
    tdm_engine_close(e);

    /* Again from the same start, but people find every proposal wrong. */
    teardown(NULL);
    e = open_engine();
    put_and_train(e, process_yaml, 0);
    assert_int_equal(
        tdm_engine_train(e, "triage", csv, strlen(csv), TDM_FORMAT_CSV, "owner", &out, &err), 0);
    tdm_free(out);
    free(csv);
    assert_true(step_threshold(e) == t0);
    size_t n_changes = json_array_size(changes = threshold_changes(e));
    json_decref(changes);
    assert_true(unsure_items(e, 400, 0, 0) > 100);
    assert_true(step_threshold(e) == t0);
    changes = threshold_changes(e);
    assert_int_equal(json_array_size(changes), n_changes);
    json_decref(changes);
    tdm_engine_close(e);
}

/*
 * From nothing: a step never trained learns from people's answers, and once its live checks
 * certify a threshold it starts deciding alone.
 */
static void test_cold_start_certifies_from_live_checks(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    put_and_train(e, process_yaml, 0);
    assert_true(isnan(step_threshold(e)));
    tdm__rng rng;
    tdm__rng_seed(&rng, 5);
    int first_alone = 0;
    for (int i = 0; i < 600 && first_alone == 0; i++) {
        size_t c = (size_t)i % 3;
        char body[160];
        intent_body(&rng, c, body, sizeof body);
        json_t *r = submit(e, body);
        if (strcmp(json_string_value(json_object_get(r, "status")), "decided") == 0) {
            first_alone = i + 1;
        } else {
            char answer[96], task[64];
            snprintf(answer, sizeof answer, "{\"action\": \"correct\", \"value\": \"%s\"}",
                     intents[c]);
            snprintf(task, sizeof task, "%s", json_string_value(json_object_get(r, "task_id")));
            json_decref(complete_as(e, task, "ana", answer));
            barrier(e);
        }
        json_decref(r);
    }
    assert_true(first_alone > 59); /* no fewer checks can certify 5% at 95% */
    assert_false(isnan(step_threshold(e)));
    json_t *changes = threshold_changes(e);
    json_t *first = json_array_get(changes, 0);
    assert_non_null(first);
    assert_true(json_is_null(json_object_get(first, "old")));
    assert_string_equal(json_string_value(json_object_get(first, "basis")), "whole scale");
    assert_true(json_number_value(json_object_get(first, "bound")) <= 0.05);
    json_decref(changes);
    tdm_engine_close(e);
}

/* Live checks on the trail's step so far (the fit's are left out), and how many were right. */
static void live_checks(int64_t *n, int64_t *right)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), coalesce(sum(correct), 0) FROM checks "
                                        "WHERE source <> 'fit'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *n = sqlite3_column_int64(st, 0);
    *right = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/*
 * A second look: a correction that contradicts a proposal made with at least the step's
 * second_look confidence waits for a second person, and only a confirmed answer teaches the
 * model and counts as a check. Accepting the proposal, or a contradiction of a less sure
 * proposal, needs nobody else.
 */
static void test_second_look(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    char *base = custom_yaml("0.05", "1"); /* every confident item is an audit sample */
    const char *at = strstr(base, "audit_sample: 1\n");
    assert_non_null(at);
    char *yaml = malloc(strlen(base) + 64);
    assert_non_null(yaml);
    size_t head = (size_t)(at - base) + strlen("audit_sample: 1\n");
    memcpy(yaml, base, head);
    sprintf(yaml + head, "      second_look: 0.9\n%s", base + head);
    free(base);
    put_and_train(e, yaml, 150);
    free(yaml);

    /* A sure proposal, contradicted: the answer waits. */
    json_t *r = submit(e, "{\"text\": \"please reset my forgot password\"}");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "queued");
    json_t *proposal = json_object_get(r, "proposal");
    assert_string_equal(json_string_value(json_object_get(proposal, "value")), "password");
    assert_true(json_number_value(json_object_get(proposal, "confidence")) >= 0.9);
    char task[64];
    snprintf(task, sizeof task, "%s", json_string_value(json_object_get(r, "task_id")));
    json_decref(r);
    int64_t n0, right0, n, right;
    live_checks(&n0, &right0);
    json_t *a = complete_as(e, task, "ana", "{\"action\": \"correct\", \"value\": \"refund\"}");
    assert_true(json_is_true(json_object_get(a, "awaiting_confirmation")));
    assert_string_equal(json_string_value(json_object_get(a, "confirmation_because")),
                        "second_look");
    assert_true(json_is_null(json_object_get(a, "decision")));
    json_t *waiting = json_object_get(json_object_get(a, "task"), "answer");
    assert_string_equal(json_string_value(json_object_get(waiting, "because")), "second_look");
    assert_string_equal(json_string_value(json_object_get(waiting, "by")), "ana");
    json_decref(a);
    char *out = NULL;
    tdm_error err = {0};
    static const char confirm[] = "{\"action\": \"confirm\"}";
    assert_int_equal(
        tdm_engine_complete_task(e, task, "ana", confirm, sizeof confirm - 1, &out, &err),
        TDM_EFORBIDDEN);
    /* Declined: nothing learned, no check; bob then accepts the proposal, and that stands
     * without a second person. */
    a = complete_as(e, task, "bob", "{\"action\": \"decline\"}");
    json_decref(a);
    barrier(e);
    live_checks(&n, &right);
    assert_int_equal(n, n0);
    a = complete_as(e, task, "bob", "{\"action\": \"accept\"}");
    assert_null(json_object_get(a, "awaiting_confirmation"));
    json_t *d = json_object_get(a, "decision");
    assert_string_equal(json_string_value(json_object_get(d, "value")), "password");
    assert_string_equal(json_string_value(json_object_get(d, "by")), "person:bob");
    json_decref(a);
    barrier(e);
    live_checks(&n, &right);
    assert_int_equal(n, n0 + 1);
    assert_int_equal(right, right0 + 1);

    /* Contradicted and confirmed: decided by the first, confirmed by the second, a wrong
     * check. */
    r = submit(e, "{\"text\": \"please login my reset account\"}");
    snprintf(task, sizeof task, "%s", json_string_value(json_object_get(r, "task_id")));
    assert_true(json_number_value(json_object_get(json_object_get(r, "proposal"), "confidence")) >=
                0.9);
    json_decref(r);
    a = complete_as(e, task, "ana", "{\"action\": \"correct\", \"value\": \"lost_card\"}");
    assert_true(json_is_true(json_object_get(a, "awaiting_confirmation")));
    json_decref(a);
    a = complete_as(e, task, "bob", confirm);
    d = json_object_get(a, "decision");
    assert_string_equal(json_string_value(json_object_get(d, "value")), "lost_card");
    assert_string_equal(json_string_value(json_object_get(d, "by")), "person:ana");
    assert_string_equal(json_string_value(json_object_get(d, "confirmed_by")), "bob");
    json_decref(a);
    barrier(e);
    live_checks(&n, &right);
    assert_int_equal(n, n0 + 2);
    assert_int_equal(right, right0 + 1);
    tdm_engine_close(e);
}

/* Submits `n` items to the hybrid step and answers each: with its intent, or (noise) with an
 * intent drawn at random whatever the text says. */
static void answer_items(tdm_engine *e, int n, int from, int noise)
{
    tdm__rng rng;
    tdm__rng_seed(&rng, 500 + (uint64_t)from);
    for (int i = from; i < from + n; i++) {
        size_t c = (size_t)i % 3;
        char body[160];
        intent_body(&rng, c, body, sizeof body);
        json_t *r = submit(e, body);
        assert_string_equal(json_string_value(json_object_get(r, "status")), "queued");
        const char *want = intents[noise ? tdm__rng_below(&rng, 3) : c];
        const char *proposal =
            json_string_value(json_object_get(json_object_get(r, "proposal"), "value"));
        char answer[96], task[64];
        if (proposal != NULL && strcmp(proposal, want) == 0)
            snprintf(answer, sizeof answer, "{\"action\": \"accept\"}");
        else
            snprintf(answer, sizeof answer, "{\"action\": \"correct\", \"value\": \"%s\"}", want);
        snprintf(task, sizeof task, "%s", json_string_value(json_object_get(r, "task_id")));
        json_decref(complete_as(e, task, "ana", answer));
        json_decref(r);
    }
}

/* The process's yaml into buf (size: at least sizeof process_yaml + 16) with a hybrid step,
 * so that every item reaches a person (and every answer is census). */
static void hybrid_process(char *buf, size_t size)
{
    const char *at = strstr(process_yaml, "allocation: ai");
    assert_non_null(at);
    snprintf(buf, size, "%.*sallocation: hybrid%s", (int)(at - process_yaml), process_yaml,
             at + strlen("allocation: ai"));
}

/*
 * Refits (learning.c, NOTES ON REFITS). After 1,000 answers the step is fitted again, on the
 * learning thread, from the rows of its last train and every answer since; the fit becomes the
 * next version with its own cross-fitted checks, and a paused step stays paused. A reopened
 * engine knows how much that fit learned from. A refit that certifies nothing does not
 * replace a certified model.
 */
static void test_refit(void **state)
{
    (void)state;
    char hybrid[sizeof process_yaml + 16];
    hybrid_process(hybrid, sizeof hybrid);

    tdm_engine *e = open_engine();
    put_and_train(e, hybrid, 20);
    assert_int_equal(sql_int("SELECT count(*) FROM examples WHERE version = 1"), 60);
    char *out;
    tdm_error err = {0};
    assert_int_equal(
        tdm_engine_pause_step(e, "triage", "intent", 1, "by hand", "owner", &out, &err), 0);
    tdm_free(out);
    answer_items(e, 999, 0, 0);
    barrier(e);
    assert_int_equal(sql_int("SELECT count(*) FROM models WHERE reason = 'refit'"), 0);
    /* A hybrid step's items reach a person whatever the confidence: every answer is census.
     * Mark 500 of them as if a threshold had chosen them: the refit must not certify on them. */
    assert_int_equal(sql_int("SELECT count(*) FROM model_updates WHERE census = 1"), 999);
    sql_int("UPDATE model_updates SET census = 0 WHERE version <= 501 RETURNING 0");
    answer_items(e, 1, 999, 0);
    /* The learning thread fits and commits; wait for it, 30 s at most. */
    int64_t version = 0;
    for (int i = 0; i < 300 && version == 0; i++) {
        version = sql_int("SELECT coalesce(max(version), 0) FROM models WHERE reason = 'refit'");
        if (version == 0)
            nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    assert_int_equal(version, 1 + 1000 + 1);
    json_t *refits = audit_data(e, "model.refit");
    assert_int_equal(json_array_size(refits), 1);
    json_t *r0 = json_array_get(refits, 0);
    assert_int_equal(json_integer_value(json_object_get(r0, "model_version")), 1002);
    assert_int_equal(json_integer_value(json_object_get(r0, "n_train")), 1060);
    json_decref(refits);
    /* Only the new model's cross-fitted checks remain, on the 60 + 500 census rows. */
    int64_t crossfit = sql_int("SELECT count(*) FROM checks WHERE source = 'crossfit'");
    assert_true(crossfit > 450 && crossfit <= 560);
    assert_int_equal(sql_int("SELECT count(*) FROM checks WHERE source != 'crossfit' OR "
                             "model_version != 1002"),
                     0);
    assert_int_equal(tdm_engine_get_process(e, "triage", &out, &err), 0);
    json_t *p = parse(out);
    json_t *step = json_array_get(json_object_get(p, "steps"), 0);
    assert_int_equal(json_integer_value(json_object_get(step, "model_version")), 1002);
    assert_true(json_is_true(json_object_get(step, "paused")));
    assert_string_equal(json_string_value(json_object_get(step, "refit")), "auto");
    json_decref(p);
    /* The next answer teaches the refitted model. */
    answer_items(e, 1, 1000, 0);
    barrier(e);
    assert_int_equal(sql_int("SELECT max(version) FROM models"), 1003);
    tdm_engine_close(e);
    e = open_engine();
    step_model *sm = e->procs[0]->steps[0];
    assert_int_equal(sm->version, 1003);
    assert_int_equal(sm->fit_version, 1002);
    assert_int_equal(sm->fit_examples, 1060);
    tdm_engine_close(e);

    /* Certified, then 1,000 answers that say nothing: the refit is declined. */
    teardown(NULL);
    e = open_engine();
    e->refit_inline = 1;
    put_and_train(e, hybrid, 20);
    /* A second train keeps its own rows in place of the first's. */
    char *csv = training_csv(150);
    assert_int_equal(
        tdm_engine_train(e, "triage", csv, strlen(csv), TDM_FORMAT_CSV, "owner", &out, &err), 0);
    free(csv);
    tdm_free(out);
    assert_int_equal(sql_int("SELECT count(*) FROM examples"), 450);
    assert_int_equal(sql_int("SELECT count(*) FROM examples WHERE version = 2"), 450);
    double t0 = step_threshold(e);
    assert_false(isnan(t0));
    answer_items(e, 1000, 0, 1);
    json_t *declined = audit_data(e, "model.refit_declined");
    assert_int_equal(json_array_size(declined), 1);
    json_decref(declined);
    assert_int_equal(sql_int("SELECT count(*) FROM models WHERE reason = 'refit'"), 0);
    assert_int_equal(sql_int("SELECT max(version) FROM models"), 2 + 1000);
    assert_true(step_threshold(e) == t0);
    /* The model in force is still the train's; the next try waits for 1,000 more answers. */
    sm = e->procs[0]->steps[0];
    assert_int_equal(sm->fit_version, 2);
    assert_int_equal(sm->fit_examples, 450);
    assert_int_equal(sm->tried_version, 1002);
    assert_int_equal(sm->tried_examples, 1450);
    tdm_engine_close(e);
    /* A restarted engine remembers the declined refit: the next answer does not try the
     * same fit again. */
    e = open_engine();
    e->refit_inline = 1;
    sm = e->procs[0]->steps[0];
    assert_int_equal(sm->tried_version, 1002);
    assert_int_equal(sm->tried_examples, 1450);
    answer_items(e, 1, 0, 1);
    declined = audit_data(e, "model.refit_declined");
    assert_int_equal(json_array_size(declined), 1);
    json_decref(declined);
    tdm_engine_close(e);
}

/* Waits until the query `sql` gives a number other than 0, 60 s at most. */
static void wait_until(const char *sql)
{
    for (int i = 0; i < 6000 && sql_int(sql) == 0; i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    assert_int_not_equal(sql_int(sql), 0);
}

/* The confidence of the proposal for the item `body` (submitted: it is queued). */
static double proposal_confidence(tdm_engine *e, const char *body)
{
    json_t *r = submit(e, body);
    json_t *c = json_object_get(json_object_get(r, "proposal"), "confidence");
    assert_true(json_is_real(c) || json_is_integer(c));
    double v = json_number_value(c);
    json_decref(r);
    return v;
}

/* An engine whose hybrid step (trained on 20 rows an intent) has had 1,000 answers: its refit
 * has been fitted and is being written in about `chunks` chunks, 20 ms apart, when this
 * returns (after the periodic snapshot the same answer started, in as many chunks). */
static tdm_engine *refit_under_way(size_t chunks)
{
    char hybrid[sizeof process_yaml + 16];
    hybrid_process(hybrid, sizeof hybrid);
    tdm_engine *e = open_engine();
    put_and_train(e, hybrid, 20);
    e->snapshot_chunk =
        (size_t)sql_int("SELECT length(snapshot) FROM models WHERE version = 1") / chunks;
    answer_items(e, 1000, 0, 0);
    wait_until("SELECT count(*) FROM model_chunks WHERE version < 0");
    return e;
}

/* A refit's model goes into the store a chunk a writer round, under a key of its own, before
 * the round that adopts it; the answers given meanwhile are replayed onto it in that round and
 * named in its row, so that an engine that restarts without the close's snapshot (as after a
 * crash) loads the chunks, replays those answers and the ones after, and predicts exactly as
 * the running engine did. */
static void test_refit_in_chunks(void **state)
{
    (void)state;
    /* About 60 chunks, 20 ms apart: the answers below come while they are written. */
    tdm_engine *e = refit_under_way(60);
    answer_items(e, 5, 1000, 0);
    wait_until("SELECT count(*) FROM models WHERE reason = 'refit'");
    int64_t v = sql_int("SELECT version FROM models WHERE reason = 'refit'");
    assert_int_equal(v, 1 + 1005 + 1);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT snapshot IS NULL AND chunks_at = -1001 AND replay_after = 1001 AND "
             "replay_upto = 1006 AND snapshot_chunks = (SELECT count(*) FROM model_chunks "
             "WHERE version = -1001) AND snapshot_chunks > 30 FROM models WHERE version = %lld",
             (long long)v);
    assert_int_equal(sql_int(sql), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM model_chunks WHERE version < 0 AND version "
                             "!= -1001"),
                     0);
    /* Answers after the refit, then the restart without the close's snapshot. The probe
     * names no intent, so that its confidence is not 1 whatever the model. */
    answer_items(e, 3, 1005, 0);
    barrier(e);
    const char *probe = "{\"text\": \"please\"}";
    double before = proposal_confidence(e, probe);
    assert_true(before < 0.99);
    tdm_engine_close(e);
    sql_int("UPDATE models SET snapshot = NULL WHERE reason NOT IN ('trained', 'refit') "
            "RETURNING 0");
    e = open_engine();
    step_model *sm = e->procs[0]->steps[0];
    assert_int_equal(sm->snapshot, v);
    assert_int_equal(sm->fit_version, v);
    assert_int_equal(sm->version, v + 3);
    assert_true(proposal_confidence(e, probe) == before);
    tdm_engine_close(e);
    /* Without the answers its round replayed, the same chunks predict otherwise: the replay
     * is what made them agree. */
    sql_int("UPDATE models SET snapshot = NULL WHERE reason NOT IN ('trained', 'refit') "
            "RETURNING 0");
    sql_int("UPDATE models SET replay_after = NULL, replay_upto = NULL RETURNING 0");
    e = open_engine();
    assert_true(proposal_confidence(e, probe) != before);
    tdm_engine_close(e);
}

/* The process's yaml into buf with a hybrid step, so that every item reaches a person, and no
 * refit, so that the model's versions are the answers'. */
static void hybrid_without_refit(char *buf, size_t size)
{
    const char *at = strstr(process_yaml, "    allocation: ai\n");
    assert_non_null(at);
    snprintf(buf, size, "%.*s    allocation: hybrid\n    refit: off\n%s", (int)(at - process_yaml),
             process_yaml, at + strlen("    allocation: ai\n"));
}

/* Runs `sql` on a connection of its own that waits for the engine's writer, 10 s at most. */
static void sql_exec_waiting(const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* A refit that is not adopted as it was written leaves no chunks behind: one overtaken by a
 * train while its chunks are written (superseded), and one whose chunk went missing meanwhile
 * (stored whole in its round instead). */
static void test_refit_chunks_removed(void **state)
{
    (void)state;
    /* About 150 chunks, 20 ms apart: 3 s for the train below to come first, under ASan too. */
    tdm_engine *e = refit_under_way(150);
    char *csv = training_csv(20);
    char *out;
    tdm_error err = {0};
    assert_int_equal(
        tdm_engine_train(e, "triage", csv, strlen(csv), TDM_FORMAT_CSV, "owner", &out, &err), 0);
    free(csv);
    tdm_free(out);
    wait_until("SELECT count(*) = 0 FROM model_chunks WHERE version < 0");
    assert_int_equal(sql_int("SELECT count(*) FROM models WHERE reason = 'refit'"), 0);
    /* The next refit, 1,000 answers after that train; its first chunk goes. */
    answer_items(e, 1000, 1000, 0);
    wait_until("SELECT count(*) FROM model_chunks WHERE version < 0");
    sql_exec_waiting("DELETE FROM model_chunks WHERE version < 0 AND seq = 0");
    wait_until("SELECT count(*) FROM models WHERE reason = 'refit'");
    wait_until("SELECT count(*) = 0 FROM model_chunks WHERE version < 0");
    assert_int_equal(sql_int("SELECT count(*) FROM models WHERE reason = 'refit' AND snapshot IS "
                             "NOT NULL AND snapshot_chunks IS NULL AND chunks_at IS NULL"),
                     1);
    tdm_engine_close(e);
}

/* The periodic snapshot (after 1,000 online updates) is made on the learning thread and goes
 * a chunk a writer round, and a restarted engine that finds only it (as after a crash: no
 * snapshot from the close) loads it and predicts exactly as before. */
static void test_chunked_snapshot(void **state)
{
    (void)state;
    char hybrid[sizeof process_yaml + 64];
    hybrid_without_refit(hybrid, sizeof hybrid);
    tdm_engine *e = open_engine();
    e->snapshot_chunk = 4096; /* many rounds */
    put_and_train(e, hybrid, 20);
    answer_items(e, 1000, 0, 0);
    /* Answers keep coming while the chunks are written: they start no snapshot of their own
     * (one that started at every answer cleared the one before and none ever finished). */
    answer_items(e, 20, 1000, 0);
    /* The snapshot is of the version the learning thread finds: 1001, the one that made it
     * due, or a later one if answers came before the thread took the model. */
    wait_until("SELECT count(*) FROM models WHERE snapshot_chunks IS NOT NULL");
    int64_t v1 = sql_int("SELECT version FROM models WHERE snapshot_chunks IS NOT NULL");
    assert_in_range(v1, 1001, 1021);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT snapshot_chunks FROM models WHERE version = %lld",
             (long long)v1);
    int64_t chunks = sql_int(sql);
    assert_true(chunks > 3);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM model_chunks WHERE version = %lld",
             (long long)v1);
    assert_int_equal(sql_int(sql), chunks);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM model_chunks WHERE version != %lld",
             (long long)v1);
    assert_int_equal(sql_int(sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM models WHERE version = %lld AND snapshot IS NOT NULL",
             (long long)v1);
    assert_int_equal(sql_int(sql), 0);
    json_t *r = submit(e, "{\"text\": \"money back twice please\"}");
    json_t *before = json_deep_copy(r);
    json_decref(r);
    tdm_engine_close(e);
    sql_int("UPDATE models SET snapshot = NULL WHERE reason != 'trained' RETURNING 0");
    e = open_engine();
    e->snapshot_chunk = 4096;
    step_model *sm = e->procs[0]->steps[0];
    assert_int_equal(sm->snapshot, v1);
    expect_same_answer(e, before);
    /* The next periodic snapshot (at v1 + 1000 or a little later) takes the place of the ones
     * before: their chunks go, and so does an older whole one (as the close writes: this one is a
     * stand-in); the trained model's snapshot stays. */
    sql_int("UPDATE models SET snapshot = x'00' WHERE version = 1010 RETURNING 0");
    answer_items(e, 1000, 1020, 0);
    /* A round each for its chunks, then a round each to remove the older ones. */
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM models WHERE version >= %lld AND snapshot_chunks IS "
             "NOT NULL) = 1 AND (SELECT count(DISTINCT version) FROM model_chunks) = 1 AND "
             "(SELECT count(*) FROM models WHERE snapshot IS NOT NULL) = 1",
             (long long)v1 + 1000);
    wait_until(sql);
    int64_t v2 = sql_int("SELECT version FROM models WHERE snapshot_chunks IS NOT NULL");
    assert_in_range(v2, v1 + 1000, 2021);
    assert_int_equal(sql_int("SELECT count(*) FROM models WHERE snapshot_chunks IS NOT NULL"), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM model_chunks WHERE version != %lld",
             (long long)v2);
    assert_int_equal(sql_int(sql), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM models WHERE snapshot IS NOT NULL"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM models WHERE snapshot IS NOT NULL AND "
                             "reason = 'trained'"),
                     1);
    tdm_engine_close(e);
    /* A chunk gone: the engine says so instead of loading half a model. */
    sql_int("UPDATE models SET snapshot = NULL WHERE reason != 'trained' RETURNING 0");
    sql_int("DELETE FROM model_chunks WHERE seq = 3 RETURNING 0");
    tdm_engine_opts o;
    tdm_engine_opts_init(&o);
    o.db_path = db_path;
    tdm_error err = {0};
    e = NULL;
    assert_int_equal(tdm_engine_open(&o, &e, &err), TDM_ECORRUPT);
    assert_null(e);
    snprintf(sql, sizeof sql, "v%lld: its snapshot's chunks are incomplete", (long long)v2);
    assert_non_null(strstr(err.message, sql));
}

/* answer_items on a thread of its own (answers_thread), so that the test can stop waiting. */
typedef struct answers_job {
    tdm_engine *e;
    int n, from;
    atomic_int done;
} answers_job;

static void *answers_thread(void *arg)
{
    answers_job *j = arg;
    answer_items(j->e, j->n, j->from, 0);
    atomic_store(&j->done, 1);
    return NULL;
}

/*
 * While a periodic snapshot serializes the model (under the step's read lock, tens of
 * milliseconds for a large model), answers to the step are committed and answered at once:
 * their changes to the in-memory step (the model's update, the count of checks, a recomputed
 * threshold) wait for the serialization instead of holding up the writer, and are applied in
 * order when it ends, to the model a restart rebuilds from the store.
 */
static void test_serialization_defers(void **state)
{
    (void)state;
    char hybrid[sizeof process_yaml + 64];
    hybrid_without_refit(hybrid, sizeof hybrid);
    tdm_engine *e = open_engine();
    put_and_train(e, hybrid, 20);
    answer_items(e, 5, 0, 0);
    barrier(e);
    step_model *sm = e->procs[0]->steps[0];
    uint64_t v0 = sm->version;
    assert_int_equal(v0, 1 + 5);

    /* A serialization under way, as tdm__snapshot_periodic holds it. */
    tdm__serialize_begin(sm);
    pthread_rwlock_rdlock(&sm->lock);
    /* 30 answers: more than one recomputation of the threshold (every 25 checks). Before,
     * the first of them waited for the write lock on the writer's thread, and every request
     * with it. */
    answers_job job = {e, 30, 5, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, answers_thread, &job), 0);
    for (int i = 0; i < 1000 && !atomic_load(&job.done); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    if (!atomic_load(&job.done)) {
        pthread_rwlock_unlock(&sm->lock);
        tdm__serialize_end(e, sm);
        pthread_join(t, NULL);
        fail_msg("30 answers did not complete in 10 s beside a serialization");
    }
    pthread_join(t, NULL);
    barrier(e);
    /* Committed, not yet learned in memory. */
    assert_int_equal(sql_int("SELECT max(version) FROM models"), (int64_t)v0 + 30);
    assert_int_equal(sm->version, v0);
    int deferred = 0;
    for (tdm__deferred *d = sm->deferred; d != NULL; d = d->next)
        deferred++;
    /* The 30 updates, and the threshold recomputed at the 25th check since the train. */
    assert_int_equal(deferred, 31);
    pthread_rwlock_unlock(&sm->lock);
    tdm__serialize_end(e, sm);
    assert_int_equal(sm->version, v0 + 30);
    assert_null(sm->deferred);
    /* Later answers are learned at once again. */
    answer_items(e, 1, 35, 0);
    barrier(e);
    assert_int_equal(sm->version, v0 + 31);
    json_t *r = submit(e, "{\"text\": \"money back twice please\"}");
    json_t *before = json_deep_copy(r);
    json_decref(r);
    tdm_engine_close(e);
    /* The model rebuilt from the store (snapshot and replay) predicts exactly as before. */
    e = open_engine();
    expect_same_answer(e, before);
    tdm_engine_close(e);
}

/* A periodic snapshot under way when the engine closes stops before its next round, instead
 * of holding the close for the rest of its paced rounds; the close writes the model whole, and
 * the reopened engine loads that one. */
static void test_snapshot_stops_at_close(void **state)
{
    (void)state;
    char hybrid[sizeof process_yaml + 64];
    hybrid_without_refit(hybrid, sizeof hybrid);
    tdm_engine *e = open_engine();
    e->snapshot_chunk = 16; /* hundreds of rounds, 20 ms apart: seconds */
    put_and_train(e, hybrid, 20);
    answer_items(e, 1000, 0, 0);
    wait_until("SELECT count(*) FROM model_chunks WHERE version = 1001");
    json_t *r = submit(e, "{\"text\": \"money back twice please\"}");
    json_t *before = json_deep_copy(r);
    json_decref(r);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tdm_engine_close(e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(seconds < 2.0);
    /* The whole snapshot, the close's, tells how long the paced one would have gone on. */
    int64_t bytes = sql_int("SELECT length(snapshot) FROM models WHERE version = 1001");
    assert_true((double)(bytes / 16) * 0.020 > 4.0);
    assert_int_equal(sql_int("SELECT count(*) FROM models WHERE snapshot_chunks IS NOT NULL"), 0);
    e = open_engine();
    assert_int_equal(e->procs[0]->steps[0]->snapshot, 1001);
    expect_same_answer(e, before);
    tdm_engine_close(e);
}

/* The task's census flag: set by routing, whatever the reason the item went to a person,
 * when no threshold could have let it past one (NOTES ON REFITS). */
static void test_census_on_tasks(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    put_and_train(e, process_yaml, 0);
    char *out;
    tdm_error err = {0};
    json_t *r = submit(e, "{\"text\": \"please refund my money back\"}");
    char task[64];
    snprintf(task, sizeof task, "%s", json_string_value(json_object_get(r, "task_id")));
    json_decref(r);
    json_decref(complete_as(e, task, "ana", "{\"action\": \"correct\", \"value\": \"refund\"}"));
    json_decref(submit(e, "{\"text\": \"my lawyer wants a refund\"}"));
    assert_int_equal(sql_int("SELECT count(*) FROM tasks WHERE why = 'no_model' AND census = 1"),
                     1);
    assert_int_equal(sql_int("SELECT count(*) FROM tasks WHERE why = 'review_rule' AND census = 1"),
                     1);
    char *csv = training_csv(150);
    assert_int_equal(
        tdm_engine_train(e, "triage", csv, strlen(csv), TDM_FORMAT_CSV, "owner", &out, &err), 0);
    free(csv);
    tdm_free(out);
    assert_false(isnan(step_threshold(e)));
    json_decref(submit(e, "{\"text\": \"my lawyer wants a refund\"}"));
    assert_int_equal(sql_int("SELECT count(*) FROM tasks WHERE why = 'review_rule' AND census = 0"),
                     1);
    assert_int_equal(
        tdm_engine_pause_step(e, "triage", "intent", 1, "by hand", "owner", &out, &err), 0);
    tdm_free(out);
    json_decref(submit(e, "{\"text\": \"please refund my money back\"}"));
    assert_int_equal(sql_int("SELECT count(*) FROM tasks WHERE why = 'paused' AND census = 1"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM tasks WHERE census IS NULL"), 0);
    tdm_engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audited_errors_pause_automation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_right_audits_keep_the_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drift_looks_are_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_band_below_lowers_the_threshold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_look, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_start_certifies_from_live_checks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refit_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refit_chunks_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serialization_defers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_stops_at_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_census_on_tasks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
