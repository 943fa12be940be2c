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
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    r = submit(e, "{\"text\": \"money back twice please\"}");
    json_t *pa = json_object_get(before, "status");
    assert_string_equal(json_string_value(pa), json_string_value(json_object_get(r, "status")));
    json_t *da = json_object_get(before, "decision") ? json_object_get(before, "decision")
                                                     : json_object_get(before, "proposal");
    json_t *db = json_object_get(r, "decision") ? json_object_get(r, "decision")
                                                : json_object_get(r, "proposal");
    assert_true(json_real_value(json_object_get(da, "confidence")) ==
                json_real_value(json_object_get(db, "confidence")));
    json_decref(before);
    json_decref(r);

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audited_errors_pause_automation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
