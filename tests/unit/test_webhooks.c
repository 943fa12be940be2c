/*
 * test_webhooks.c — signed webhooks (src/core/webhooks.c) without a network: the signature
 * against the Standard Webhooks test vector, subscribing and what is refused, a delivery
 * row written with its event (and none without a subscription), a subscription made by
 * another engine on the same file counting at once, deleting and replaying. Delivering over
 * HTTP is tests/integration/webhooks.sh's.
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
#include <unistd.h>

#include "core/engine_int.h"
#include "tandem/engine.h"

static const char process_yaml[] = "process: triage\n"
                                   "owner: owner@example.com\n"
                                   "kpis: [first_response_minutes]\n"
                                   "baseline:\n"
                                   "  minutes_per_item: 3\n"
                                   "  error_rate: 0.05\n"
                                   "steps:\n"
                                   "  - id: intent\n"
                                   "    allocation: hybrid\n"
                                   "    owner: lead@example.com\n"
                                   "    inputs: [text]\n"
                                   "    output:\n"
                                   "      field: intent\n"
                                   "      labels: [billing, tech]\n"
                                   "    guardrails:\n"
                                   "      queue: support\n";

static char db_path[64];

static tdm_engine *open_engine_mode(int read_only)
{
    tdm_engine_opts o;
    tdm_engine_opts_init(&o);
    o.db_path = db_path;
    o.seed = 7;
    o.read_only = read_only;
    tdm_engine *e = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_open(&o, &e, &err);
    if (rc != 0)
        print_error("open: %s\n", err.message);
    assert_int_equal(rc, 0);
    return e;
}

static tdm_engine *open_engine(void)
{
    tdm_engine *e = open_engine_mode(0);
    char *out = NULL;
    tdm_error err = {0};
    int rc =
        tdm_engine_put_process(e, "triage", process_yaml, strlen(process_yaml), "root", &out, &err);
    if (rc != 0)
        print_error("put_process: %s\n", err.message);
    assert_int_equal(rc, 0);
    tdm_free(out);
    return e;
}

static json_t *parse(char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    tdm_free(text);
    return v;
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static json_t *subscribe(tdm_engine *e, const char *events)
{
    char body[512], *out = NULL;
    tdm_error err = {0};
    snprintf(body, sizeof body, "{\"url\": \"http://127.0.0.1:9/hook\", \"events\": %s}", events);
    int rc = tdm_engine_webhook_create(e, "triage", body, strlen(body), "root", &out, &err);
    if (rc != 0)
        print_error("webhook_create: %s\n", err.message);
    assert_int_equal(rc, 0);
    return parse(out);
}

/* Submits one item; answers its task id (queued: the step has no model). */
static char *submit(tdm_engine *e, const char *text)
{
    char body[256], *out = NULL;
    size_t len;
    tdm_error err = {0};
    snprintf(body, sizeof body, "{\"text\": \"%s\"}", text);
    assert_int_equal(tdm_engine_submit(e, "triage", body, strlen(body), 0, "svc", &out, &len, &err),
                     0);
    json_t *r = parse(out);
    assert_string_equal(str(r, "status"), "queued");
    char *task = strdup(str(r, "task_id"));
    json_decref(r);
    return task;
}

static int64_t count(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static json_t *deliveries(tdm_engine *e, const char *id, const char *state)
{
    char *out = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_webhook_deliveries(e, id, state, 100, &out, &err);
    if (rc != 0)
        print_error("deliveries: %s\n", err.message);
    assert_int_equal(rc, 0);
    json_t *o = parse(out);
    json_t *list = json_incref(json_object_get(o, "deliveries"));
    json_decref(o);
    return list;
}

static int setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof db_path, "/tmp/tandem-webhooks-%d.db", (int)getpid());
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

/* The vector published with the Standard Webhooks specification and its libraries. */
static void test_signature_vector(void **state)
{
    (void)state;
    static const char body[] = "{\"test\": 2432232314}";
    char sig[TDM__WEBHOOK_SIGNATURE_CAP];
    assert_int_equal(tdm__webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                       "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body,
                                       strlen(body), sig),
                     0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* Without the prefix, the same key. */
    assert_int_equal(tdm__webhook_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                       "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body,
                                       strlen(body), sig),
                     0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* Any change of id, time or body changes it. */
    assert_int_equal(tdm__webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                       "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", body,
                                       strlen(body), sig),
                     0);
    assert_string_not_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_int_equal(tdm__webhook_sign("whsec_not base64!", "msg_1", "1", body, strlen(body), sig),
                     -1);
}

static void test_subscribing(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    json_t *w = subscribe(e, "[\"task.created\", \"sla.breached\"]");
    const char *secret = str(w, "secret");
    assert_non_null(secret);
    assert_int_equal(strlen(secret), 6 + 44);
    assert_memory_equal(secret, "whsec_", 6);
    assert_int_equal(strncmp(str(w, "id"), "whk_", 4), 0);
    assert_int_equal(json_array_size(json_object_get(w, "events")), 2);

    char *out = NULL;
    tdm_error err = {0};
    assert_int_equal(tdm_engine_webhook_list(e, "triage", &out, &err), 0);
    assert_null(strstr(out, "whsec_"));
    json_t *l = parse(out);
    json_t *first = json_array_get(json_object_get(l, "webhooks"), 0);
    assert_string_equal(str(first, "id"), str(w, "id"));
    assert_int_equal(json_integer_value(json_object_get(first, "pending")), 0);
    json_decref(l);

    char process[TDM_SCOPE_NAME_MAX + 1];
    assert_int_equal(tdm_engine_webhook_process(e, str(w, "id"), process, &err), 0);
    assert_string_equal(process, "triage");
    assert_int_equal(tdm_engine_webhook_process(e, "whk_none", process, &err), TDM_ENOTFOUND);

    /* What is refused, with the field at fault; nothing is stored. */
    static const struct {
        const char *body;
        int rc;
        const char *field;
    } bad[] = {
        {"{\"url\": \"ftp://x.example/\", \"events\": [\"task.created\"]}", TDM_EINVAL, "url"},
        {"{\"url\": \"gopher://x.example/\", \"events\": [\"task.created\"]}", TDM_EINVAL, "url"},
        {"{\"url\": \"example.com/hook\", \"events\": [\"task.created\"]}", TDM_EINVAL, "url"},
        {"{\"url\": \"http://a b/\", \"events\": [\"task.created\"]}", TDM_EINVAL, "url"},
        {"{\"url\": \"https://me:pw@x.example/\", \"events\": [\"task.created\"]}", TDM_EINVAL,
         "url"},
        {"{\"url\": 7, \"events\": [\"task.created\"]}", TDM_EINVAL, "url"},
        {"{\"events\": [\"task.created\"]}", TDM_EINVAL, "url"},
        {"{\"url\": \"https://x.example/\"}", TDM_EINVAL, "events"},
        {"{\"url\": \"https://x.example/\", \"events\": []}", TDM_EINVAL, "events"},
        {"{\"url\": \"https://x.example/\", \"events\": \"task.created\"}", TDM_EINVAL, "events"},
        {"{\"url\": \"https://x.example/\", \"events\": [\"task.made\"]}", TDM_EINVAL, "events"},
        {"{\"url\": \"https://x.example/\", \"events\": [1]}", TDM_EINVAL, "events"},
        {"{\"url\": \"https://x.example/\", \"events\": [\"decision.made\", \"decision.made\"]}",
         TDM_EINVAL, "events"},
        {"{\"url\": \"https://x.example/\", \"events\": [\"task.created\"], \"x\": 1}", TDM_EINVAL,
         "x"},
        {"[]", TDM_EPARSE, ""},
        {"{\"url\": ", TDM_EPARSE, ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = NULL;
        int rc = tdm_engine_webhook_create(e, "triage", bad[i].body, strlen(bad[i].body), "root",
                                           &out, &err);
        if (rc != bad[i].rc || strcmp(err.field, bad[i].field) != 0)
            print_error("%s: %d (%s) %s\n", bad[i].body, rc, err.field, err.message);
        assert_int_equal(rc, bad[i].rc);
        assert_string_equal(err.field, bad[i].field);
        assert_null(out);
    }
    const char *ok = "{\"url\": \"https://x.example/\", \"events\": [\"task.created\"]}";
    assert_int_equal(tdm_engine_webhook_create(e, "nope", ok, strlen(ok), "root", &out, &err),
                     TDM_ENOTFOUND);
    assert_int_equal(count("SELECT count(*) FROM webhooks"), 1);

    /* At most TDM_WEBHOOKS_PER_PROCESS in force. */
    for (int i = 1; i < TDM_WEBHOOKS_PER_PROCESS; i++)
        json_decref(subscribe(e, "[\"decision.made\"]"));
    assert_int_equal(tdm_engine_webhook_create(e, "triage", ok, strlen(ok), "root", &out, &err),
                     TDM_ECONFLICT);
    json_decref(w);
    tdm_engine_close(e);

    /* Read-only: listing, not subscribing. */
    e = open_engine_mode(1);
    assert_int_equal(tdm_engine_webhook_list(e, "triage", &out, &err), 0);
    tdm_free(out);
    assert_int_equal(tdm_engine_webhook_create(e, "triage", ok, strlen(ok), "root", &out, &err),
                     TDM_EINVAL);
    tdm_webhook_opts opts;
    tdm_webhook_opts_init(&opts);
    assert_int_equal(tdm_engine_webhooks_start(e, &opts, &err), TDM_EINVAL);
    tdm_engine_close(e);
}

static void test_deliveries_with_their_events(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    /* No subscription: no delivery. */
    free(submit(e, "my invoice is wrong"));
    assert_int_equal(count("SELECT count(*) FROM deliveries"), 0);

    json_t *w = subscribe(e, "[\"task.created\"]");
    const char *id = str(w, "id");
    char *task = submit(e, "the app crashes");
    json_t *list = deliveries(e, id, "pending");
    assert_int_equal(json_array_size(list), 1);
    json_t *d = json_array_get(list, 0);
    assert_string_equal(str(d, "event"), "task.created");
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 0);
    assert_true(json_is_string(json_object_get(d, "next_at")));
    json_t *payload = json_object_get(d, "payload");
    assert_string_equal(str(payload, "type"), "task.created");
    json_t *data = json_object_get(payload, "data");
    assert_string_equal(str(data, "task_id"), task);
    assert_string_equal(str(data, "process"), "triage");
    assert_string_equal(str(data, "actor"), "svc");
    assert_string_equal(str(data, "queue"), "support");
    assert_int_equal(strncmp(str(d, "id"), "msg_", 4), 0);
    /* The audit entry it names is the event's. */
    char *out = NULL;
    tdm_error err = {0};
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(data, "audit_seq"));
    assert_int_equal(tdm_engine_audit(e, seq - 1, 1, &out, &err), 0);
    json_t *a = parse(out);
    json_t *entry = json_array_get(json_object_get(a, "entries"), 0);
    assert_string_equal(str(entry, "event"), "task.created");
    assert_string_equal(str(entry, "subject"), task);
    json_decref(a);
    json_decref(list);

    /* decision.made is not subscribed to: completing the task writes nothing more. */
    assert_int_equal(tdm_engine_claim_task(e, task, "ana", 60, &out, &err), 0);
    tdm_free(out);
    const char *answer = "{\"action\": \"correct\", \"value\": \"tech\"}";
    assert_int_equal(tdm_engine_complete_task(e, task, "ana", answer, strlen(answer), &out, &err),
                     0);
    tdm_free(out);
    assert_int_equal(count("SELECT count(*) FROM deliveries"), 1);

    /* Another engine on the same file subscribes to decision.made: this one's writer sees it
     * at its next job, without a restart. */
    tdm_engine *other = open_engine_mode(0);
    const char *body = "{\"url\": \"https://x.example/d\", \"events\": [\"decision.made\"]}";
    assert_int_equal(
        tdm_engine_webhook_create(other, "triage", body, strlen(body), "ops", &out, &err), 0);
    json_t *w2 = parse(out);
    tdm_engine_close(other);
    char *task2 = submit(e, "another invoice");
    assert_int_equal(tdm_engine_claim_task(e, task2, "ana", 60, &out, &err), 0);
    tdm_free(out);
    assert_int_equal(tdm_engine_complete_task(e, task2, "ana", answer, strlen(answer), &out, &err),
                     0);
    json_t *done = parse(out);
    list = deliveries(e, str(w2, "id"), NULL);
    assert_int_equal(json_array_size(list), 1);
    d = json_array_get(list, 0);
    assert_string_equal(str(d, "event"), "decision.made");
    data = json_object_get(json_object_get(d, "payload"), "data");
    assert_string_equal(str(data, "decision_id"), str(json_object_get(done, "decision"), "id"));
    assert_string_equal(str(data, "actor"), "ana");
    json_decref(list);
    json_decref(done);
    /* The first webhook got task2's task.created. */
    list = deliveries(e, id, NULL);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);

    /* automation.paused through the kill switch reaches a subscription to it. */
    json_t *w3 = subscribe(e, "[\"automation.paused\"]");
    assert_int_equal(
        tdm_engine_pause_step(e, "triage", "intent", 1, "checking", "lead", &out, &err), 0);
    tdm_free(out);
    assert_int_equal(tdm_engine_pause_step(e, "triage", "intent", 0, NULL, "lead", &out, &err), 0);
    tdm_free(out);
    list = deliveries(e, str(w3, "id"), "pending");
    assert_int_equal(json_array_size(list), 1);
    data = json_object_get(json_object_get(json_array_get(list, 0), "payload"), "data");
    assert_string_equal(str(data, "step"), "intent");
    assert_string_equal(str(data, "reason"), "checking");
    json_decref(list);

    free(task);
    free(task2);
    json_decref(w);
    json_decref(w2);
    json_decref(w3);
    tdm_engine_close(e);
}

static void test_delete_and_replay(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    json_t *w = subscribe(e, "[\"task.created\"]");
    const char *id = str(w, "id");
    free(submit(e, "one"));
    free(submit(e, "two"));
    char *out = NULL;
    tdm_error err = {0};

    /* Dead letters, as the delivery thread leaves them; replaying all makes them pending,
     * due now, attempts back at 0. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE deliveries SET state = 'dead', attempts = 8, "
                                  "last_status = 500, last_error = 'HTTP 500'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    json_t *list = deliveries(e, id, "dead");
    assert_int_equal(json_array_size(list), 2);
    assert_true(json_is_null(json_object_get(json_array_get(list, 0), "next_at")));
    assert_string_equal(str(json_array_get(list, 0), "last_error"), "HTTP 500");
    char first[32];
    snprintf(first, sizeof first, "%s", str(json_array_get(list, 1), "id"));
    json_decref(list);
    assert_int_equal(tdm_engine_webhook_replay(e, id, first, "ops", &out, &err), 0);
    json_t *r = parse(out);
    assert_int_equal(json_integer_value(json_object_get(r, "replayed")), 1);
    json_decref(r);
    assert_int_equal(tdm_engine_webhook_replay(e, id, NULL, "ops", &out, &err), 0);
    r = parse(out);
    assert_int_equal(json_integer_value(json_object_get(r, "replayed")), 1);
    json_decref(r);
    list = deliveries(e, id, "pending");
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "attempts")), 0);
    json_decref(list);
    assert_int_equal(tdm_engine_webhook_replay(e, id, "msg_none", "ops", &out, &err),
                     TDM_ENOTFOUND);
    assert_string_equal(err.field, "delivery");
    assert_int_equal(tdm_engine_webhook_deliveries(e, id, "lost", 10, &out, &err), TDM_EINVAL);
    assert_int_equal(tdm_engine_webhook_deliveries(e, id, NULL, 0, &out, &err), TDM_EINVAL);

    /* Deleting cancels what is pending and what is dead; the webhook is gone; its events
     * stop. */
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE deliveries SET state = 'dead' WHERE rowid = 1", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(tdm_engine_webhook_delete(e, id, "ops", &out, &err), 0);
    json_t *gone = parse(out);
    assert_int_equal(json_integer_value(json_object_get(gone, "cancelled")), 2);
    json_decref(gone);
    assert_int_equal(count("SELECT count(*) FROM deliveries WHERE state = 'cancelled'"), 2);
    assert_int_equal(tdm_engine_webhook_delete(e, id, "ops", &out, &err), TDM_ENOTFOUND);
    assert_int_equal(tdm_engine_webhook_deliveries(e, id, NULL, 10, &out, &err), TDM_ENOTFOUND);
    assert_int_equal(tdm_engine_webhook_replay(e, id, NULL, "ops", &out, &err), TDM_ENOTFOUND);
    free(submit(e, "three"));
    assert_int_equal(count("SELECT count(*) FROM deliveries"), 2);
    /* Audited: created, replayed twice, deleted. */
    assert_int_equal(count("SELECT count(*) FROM audit WHERE event LIKE 'webhook.%'"), 4);
    json_decref(w);
    tdm_engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_vector),
        cmocka_unit_test_setup_teardown(test_subscribing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliveries_with_their_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_replay, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
