/*
 * test_tokens.c — API tokens through the public API, on a real SQLite file: creating,
 * authenticating, listing and revoking, validation, the audit trail, scopes, where a
 * resource belongs, read-only engines and the migration from schema version 1.
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

#include "store/db.h"
#include "tandem/engine.h"

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
                                   "      queue: support\n"
                                   "      sla_minutes: 60\n"
                                   "      escalation_queue: leads\n";

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
    return open_engine_mode(0);
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

/* Creates a token and answers the creation's JSON; fails the test if it fails. */
static json_t *create(tdm_engine *e, const char *name, tdm_role role, const char *const *scope,
                      size_t n, const char *secret)
{
    char *out = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_token_create(e, name, role, scope, n, secret, "root", &out, &err);
    if (rc != 0)
        print_error("create %s: %s\n", name, err.message);
    assert_int_equal(rc, 0);
    return parse(out);
}

static int setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof db_path, "/tmp/tandem-tokens-%d.db", (int)getpid());
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

static void test_roles_and_scopes(void **state)
{
    (void)state;
    const char *names[] = {"admin", "owner", "reviewer", "viewer", "service"};
    for (size_t i = 0; i < 5; i++) {
        tdm_role r;
        assert_int_equal(tdm_role_parse(names[i], &r), 0);
        assert_string_equal(tdm_role_name(r), names[i]);
    }
    tdm_role r;
    assert_int_equal(tdm_role_parse("Admin", &r), TDM_EINVAL);
    assert_int_equal(tdm_role_parse("root", &r), TDM_EINVAL);
    assert_null(tdm_role_name((tdm_role)3));

    tdm_principal p;
    memset(&p, 0, sizeof p);
    p.role = TDM_ROLE_OWNER;
    assert_false(tdm_principal_in_scope(&p, "triage"));
    strcpy(p.scope[0], "triage");
    strcpy(p.scope[1], "billing");
    p.n_scope = 2;
    assert_true(tdm_principal_in_scope(&p, "triage"));
    assert_true(tdm_principal_in_scope(&p, "billing"));
    assert_false(tdm_principal_in_scope(&p, "tri"));
    assert_false(tdm_principal_in_scope(&p, "other"));
    strcpy(p.scope[2], "*");
    p.n_scope = 3;
    assert_true(tdm_principal_in_scope(&p, "other"));
    assert_true(tdm_principal_in_scope(&p, ""));
}

static void test_round_trip(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    tdm_error err = {0};
    char *out;
    int64_t n = -1;
    assert_int_equal(tdm_engine_token_count(e, &n, &err), 0);
    assert_int_equal(n, 0);

    const char *scope[] = {"triage", "billing"};
    json_t *t = create(e, "ci-deploy", TDM_ROLE_OWNER, scope, 2, NULL);
    const char *id = str(t, "id");
    const char *token = str(t, "token");
    assert_non_null(id);
    assert_non_null(token);
    assert_int_equal(strncmp(id, "tok_", 4), 0);
    assert_int_equal(strlen(token), 4 + 43);
    assert_int_equal(strncmp(token, "tdm_", 4), 0);
    for (const char *c = token + 4; *c; c++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c));
    assert_string_equal(str(t, "name"), "ci-deploy");
    assert_string_equal(str(t, "role"), "owner");
    assert_int_equal(json_array_size(json_object_get(t, "scope")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(t, "scope"), 1)),
                        "billing");
    assert_non_null(str(t, "created_at"));

    assert_int_equal(tdm_engine_token_count(e, &n, &err), 0);
    assert_int_equal(n, 1);

    /* The token finds its holder. */
    tdm_principal p;
    assert_int_equal(tdm_engine_authenticate(e, token, &p, &err), 0);
    assert_string_equal(p.id, id);
    assert_string_equal(p.name, "ci-deploy");
    assert_int_equal(p.role, TDM_ROLE_OWNER);
    assert_int_equal(p.n_scope, 2);
    assert_string_equal(p.scope[0], "triage");
    assert_string_equal(p.scope[1], "billing");
    assert_true(tdm_principal_in_scope(&p, "billing"));
    assert_false(tdm_principal_in_scope(&p, "other"));

    /* One character off, a prefix, nothing, or too long: no one. */
    char wrong[64];
    snprintf(wrong, sizeof wrong, "%s", token);
    size_t last = strlen(wrong) - 1;
    wrong[last] = wrong[last] == 'A' ? 'B' : 'A';
    assert_int_equal(tdm_engine_authenticate(e, wrong, &p, &err), TDM_EAUTH);
    assert_string_equal(err.message, "unknown or revoked token");
    wrong[last] = token[last];
    wrong[5] = wrong[5] == 'A' ? 'B' : 'A';
    assert_int_equal(tdm_engine_authenticate(e, wrong, &p, &err), TDM_EAUTH);
    wrong[5] = token[5];
    wrong[last] = '\0';
    assert_int_equal(tdm_engine_authenticate(e, wrong, &p, &err), TDM_EAUTH);
    assert_int_equal(tdm_engine_authenticate(e, NULL, &p, &err), TDM_EAUTH);
    assert_int_equal(tdm_engine_authenticate(e, "", &p, &err), TDM_EAUTH);
    char huge[400];
    memset(huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(tdm_engine_authenticate(e, huge, &p, &err), TDM_EAUTH);

    /* The list shows it without the token or anything like it. */
    assert_int_equal(tdm_engine_token_list(e, &out, &err), 0);
    assert_null(strstr(out, token));
    assert_null(strstr(out, token + 4));
    assert_null(strstr(out, "hash"));
    json_t *l = parse(out);
    json_t *tokens = json_object_get(l, "tokens");
    assert_int_equal(json_array_size(tokens), 1);
    json_t *row = json_array_get(tokens, 0);
    assert_string_equal(str(row, "id"), id);
    assert_string_equal(str(row, "name"), "ci-deploy");
    assert_string_equal(str(row, "role"), "owner");
    assert_string_equal(str(row, "created_by"), "root");
    assert_string_equal(str(row, "created_at"), str(t, "created_at"));
    assert_true(json_is_null(json_object_get(row, "revoked_at")));
    assert_null(json_object_get(row, "token"));
    assert_int_equal(json_array_size(json_object_get(row, "scope")), 2);
    json_decref(l);

    /* Revoked, it stops working at once. */
    assert_int_equal(tdm_engine_token_revoke(e, id, "root", &out, &err), 0);
    json_t *rv = parse(out);
    assert_string_equal(str(rv, "id"), id);
    assert_string_equal(str(rv, "name"), "ci-deploy");
    assert_true(json_is_string(json_object_get(rv, "revoked_at")));
    assert_null(json_object_get(rv, "token"));
    json_decref(rv);
    assert_int_equal(tdm_engine_authenticate(e, token, &p, &err), TDM_EAUTH);
    assert_string_equal(err.message, "unknown or revoked token");
    assert_int_equal(tdm_engine_token_count(e, &n, &err), 0);
    assert_int_equal(n, 0);

    /* Revoking again, or an unknown id. */
    assert_int_equal(tdm_engine_token_revoke(e, id, "root", &out, &err), TDM_ECONFLICT);
    assert_int_equal(tdm_engine_token_revoke(e, "tok_nope", NULL, &out, &err), TDM_ENOTFOUND);
    assert_string_equal(err.message, "no token \"tok_nope\"");

    /* The list still shows the revoked token, now with its revocation time. */
    assert_int_equal(tdm_engine_token_list(e, &out, &err), 0);
    assert_null(strstr(out, token));
    l = parse(out);
    assert_int_equal(json_array_size(json_object_get(l, "tokens")), 1);
    assert_true(json_is_string(
        json_object_get(json_array_get(json_object_get(l, "tokens"), 0), "revoked_at")));
    json_decref(l);
    json_decref(t);

    /* Survives a reopen (revocation included). */
    tdm_engine_close(e);
    e = open_engine();
    assert_int_equal(tdm_engine_token_count(e, &n, &err), 0);
    assert_int_equal(n, 0);
    tdm_engine_close(e);
}

static void test_given_secret_and_names(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    tdm_error err = {0};
    char *out;
    const char *secret = "my-own-admin-token-0123456789abcdef";
    json_t *t = create(e, "bootstrap", TDM_ROLE_ADMIN, NULL, 0, secret);
    assert_string_equal(str(t, "token"), secret);
    assert_int_equal(json_array_size(json_object_get(t, "scope")), 0);
    char id1[32];
    snprintf(id1, sizeof id1, "%s", str(t, "id"));
    json_decref(t);
    tdm_principal p;
    assert_int_equal(tdm_engine_authenticate(e, secret, &p, &err), 0);
    assert_int_equal(p.role, TDM_ROLE_ADMIN);
    assert_int_equal(p.n_scope, 0);
    assert_string_equal(p.name, "bootstrap");

    /* A name in force is taken; another name is fine. */
    assert_int_equal(
        tdm_engine_token_create(e, "bootstrap", TDM_ROLE_VIEWER, NULL, 0, NULL, NULL, &out, &err),
        TDM_ECONFLICT);
    assert_non_null(strstr(err.message, "a token named bootstrap is in force"));
    t = create(e, "reader", TDM_ROLE_VIEWER, NULL, 0, NULL);
    json_decref(t);

    /* The same secret again is refused: it would be two tokens in one. */
    assert_int_equal(
        tdm_engine_token_create(e, "again", TDM_ROLE_ADMIN, NULL, 0, secret, NULL, &out, &err),
        TDM_ECONFLICT);
    assert_string_equal(err.field, "token");

    /* After the revocation the name is free again. */
    assert_int_equal(tdm_engine_token_revoke(e, id1, NULL, &out, &err), 0);
    tdm_free(out);
    t = create(e, "bootstrap", TDM_ROLE_SERVICE, NULL, 0, NULL);
    assert_string_equal(str(t, "role"), "service");
    assert_int_equal(tdm_engine_authenticate(e, str(t, "token"), &p, &err), 0);
    assert_int_equal(p.role, TDM_ROLE_SERVICE);
    assert_int_equal(p.n_scope, 0);
    json_decref(t);

    /* Oldest first; names are listed, tokens never. */
    assert_int_equal(tdm_engine_token_list(e, &out, &err), 0);
    assert_null(strstr(out, secret));
    json_t *l = parse(out);
    json_t *tokens = json_object_get(l, "tokens");
    assert_int_equal(json_array_size(tokens), 3);
    assert_string_equal(str(json_array_get(tokens, 0), "id"), id1);
    assert_string_equal(str(json_array_get(tokens, 0), "created_by"), "root");
    assert_string_equal(str(json_array_get(tokens, 1), "name"), "reader");
    assert_string_equal(str(json_array_get(tokens, 2), "name"), "bootstrap");
    json_decref(l);
    int64_t n;
    assert_int_equal(tdm_engine_token_count(e, &n, &err), 0);
    assert_int_equal(n, 2);
    tdm_engine_close(e);
}

static void expect_invalid(tdm_engine *e, const char *name, tdm_role role, const char *const *scope,
                           size_t n, const char *secret, const char *field)
{
    char *out = NULL;
    tdm_error err = {0};
    assert_int_equal(tdm_engine_token_create(e, name, role, scope, n, secret, NULL, &out, &err),
                     TDM_EINVAL);
    assert_string_equal(err.field, field);
    assert_true(err.message[0] != '\0');
    assert_null(out);
    if (secret != NULL)
        assert_null(strstr(err.message, secret));
}

static void test_validation(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    tdm_error err = {0};
    const char *one[] = {"triage"};
    const char *empty[] = {""};
    const char *blank_ok[] = {"queue with blank"};
    const char *ctl[] = {"tab\there"};
    char long_name[TDM_TOKEN_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    char long_scope[TDM_SCOPE_NAME_MAX + 2];
    memset(long_scope, 'q', sizeof long_scope - 1);
    long_scope[sizeof long_scope - 1] = '\0';
    const char *too_long[] = {long_scope};
    const char *many[TDM_SCOPE_MAX + 1];
    for (size_t i = 0; i < TDM_SCOPE_MAX + 1; i++)
        many[i] = "p";

    expect_invalid(e, "", TDM_ROLE_ADMIN, NULL, 0, NULL, "name");
    expect_invalid(e, "has space", TDM_ROLE_ADMIN, NULL, 0, NULL, "name");
    expect_invalid(e, "slash/no", TDM_ROLE_ADMIN, NULL, 0, NULL, "name");
    expect_invalid(e, "caf\xc3\xa9", TDM_ROLE_ADMIN, NULL, 0, NULL, "name");
    expect_invalid(e, long_name, TDM_ROLE_ADMIN, NULL, 0, NULL, "name");
    expect_invalid(e, "x", (tdm_role)0, NULL, 0, NULL, "role");
    expect_invalid(e, "x", (tdm_role)3, NULL, 0, NULL, "role");
    expect_invalid(e, "x", TDM_ROLE_OWNER, NULL, 0, NULL, "scope");
    expect_invalid(e, "x", TDM_ROLE_REVIEWER, NULL, 0, NULL, "scope");
    expect_invalid(e, "x", TDM_ROLE_ADMIN, one, 1, NULL, "scope");
    expect_invalid(e, "x", TDM_ROLE_VIEWER, one, 1, NULL, "scope");
    expect_invalid(e, "x", TDM_ROLE_OWNER, empty, 1, NULL, "scope");
    expect_invalid(e, "x", TDM_ROLE_OWNER, ctl, 1, NULL, "scope");
    expect_invalid(e, "x", TDM_ROLE_OWNER, too_long, 1, NULL, "scope");
    expect_invalid(e, "x", TDM_ROLE_SERVICE, many, TDM_SCOPE_MAX + 1, NULL, "scope");
    expect_invalid(e, "x", TDM_ROLE_ADMIN, NULL, 0, "short-secret", "token");
    expect_invalid(e, "x", TDM_ROLE_ADMIN, NULL, 0, "0123456789abcdef 0123456789abcdef", "token");
    expect_invalid(e, "x", TDM_ROLE_ADMIN, NULL, 0, "0123456789abcdef\t0123456789abcdef", "token");
    char huge[300];
    memset(huge, 'z', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    expect_invalid(e, "x", TDM_ROLE_ADMIN, NULL, 0, huge, "token");

    /* Edges that are fine. */
    char max_name[TDM_TOKEN_NAME_MAX + 1];
    memset(max_name, 'b', sizeof max_name - 1);
    max_name[sizeof max_name - 1] = '\0';
    json_decref(create(e, max_name, TDM_ROLE_VIEWER, NULL, 0, NULL));
    json_decref(create(e, "Jo.Doe_2@example-corp", TDM_ROLE_REVIEWER, blank_ok, 1, NULL));
    json_decref(create(e, "exact-32", TDM_ROLE_ADMIN, NULL, 0, "0123456789abcdef0123456789abcdef"));
    json_decref(create(e, "many", TDM_ROLE_SERVICE, many, TDM_SCOPE_MAX, NULL));
    long_scope[TDM_SCOPE_NAME_MAX] = '\0';
    json_t *t = create(e, "long-scope", TDM_ROLE_OWNER, too_long, 1, NULL);
    tdm_principal p;
    assert_int_equal(tdm_engine_authenticate(e, str(t, "token"), &p, &err), 0);
    assert_string_equal(p.scope[0], long_scope);
    json_decref(t);

    /* Nothing failed left anything behind. */
    int64_t n;
    assert_int_equal(tdm_engine_token_count(e, &n, &err), 0);
    assert_int_equal(n, 5);
    tdm_engine_close(e);
}

static void test_audit_trail(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    tdm_error err = {0};
    char *out;
    const char *scope[] = {"support"};
    json_t *t = create(e, "alice", TDM_ROLE_REVIEWER, scope, 1, NULL);
    char token[128];
    snprintf(token, sizeof token, "%s", str(t, "token"));
    assert_int_equal(tdm_engine_token_revoke(e, str(t, "id"), "bob", &out, &err), 0);
    tdm_free(out);

    assert_int_equal(tdm_engine_audit(e, 0, 100, &out, &err), 0);
    assert_null(strstr(out, token));
    assert_null(strstr(out, token + 4));
    json_t *a = parse(out);
    json_t *entries = json_object_get(a, "entries");
    assert_int_equal(json_array_size(entries), 2);
    json_t *c = json_array_get(entries, 0), *r = json_array_get(entries, 1);
    assert_string_equal(str(c, "event"), "token.created");
    assert_string_equal(str(c, "subject"), str(t, "id"));
    assert_string_equal(str(c, "actor"), "root");
    json_t *data = json_object_get(c, "data");
    assert_string_equal(str(data, "name"), "alice");
    assert_string_equal(str(data, "role"), "reviewer");
    assert_string_equal(json_string_value(json_array_get(json_object_get(data, "scope"), 0)),
                        "support");
    assert_int_equal(json_object_size(data), 3);
    assert_string_equal(str(r, "event"), "token.revoked");
    assert_string_equal(str(r, "subject"), str(t, "id"));
    assert_string_equal(str(r, "actor"), "bob");
    assert_string_equal(str(json_object_get(r, "data"), "name"), "alice");
    json_decref(a);
    json_decref(t);

    /* A failed creation leaves no entry; an unknown actor is "api". */
    assert_int_equal(
        tdm_engine_token_create(e, "bad name", TDM_ROLE_ADMIN, NULL, 0, NULL, NULL, &out, &err),
        TDM_EINVAL);
    t = NULL;
    assert_int_equal(
        tdm_engine_token_create(e, "carol", TDM_ROLE_VIEWER, NULL, 0, NULL, NULL, &out, &err), 0);
    t = parse(out);
    json_decref(t);
    assert_int_equal(tdm_engine_audit(e, 2, 100, &out, &err), 0);
    a = parse(out);
    entries = json_object_get(a, "entries");
    assert_int_equal(json_array_size(entries), 1);
    assert_string_equal(str(json_array_get(entries, 0), "actor"), "api");
    json_decref(a);

    tdm_audit_check chk;
    assert_int_equal(tdm_engine_audit_verify(e, &chk, &err), 0);
    assert_true(chk.ok);
    assert_int_equal(chk.entries, 3);
    tdm_engine_close(e);
}

static void test_resource_scope(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    tdm_error err = {0};
    char *out;
    char process[TDM_SCOPE_NAME_MAX + 1], queue[TDM_SCOPE_NAME_MAX + 1];
    assert_int_equal(tdm_engine_resource_scope(e, TDM_RESOURCE_ITEM, "nope", process, queue, &err),
                     TDM_ENOTFOUND);
    assert_non_null(strstr(err.message, "item"));
    assert_non_null(strstr(err.message, "nope"));
    assert_int_equal(
        tdm_engine_resource_scope(e, TDM_RESOURCE_TASK, "task_nope", process, queue, &err),
        TDM_ENOTFOUND);
    assert_non_null(strstr(err.message, "task"));
    assert_non_null(strstr(err.message, "task_nope"));
    assert_int_equal(
        tdm_engine_resource_scope(e, TDM_RESOURCE_DECISION, "dec_nope", process, queue, &err),
        TDM_ENOTFOUND);
    assert_non_null(strstr(err.message, "decision"));

    /* A process, an item waiting in a queue, then a person's decision on it. */
    assert_int_equal(tdm_engine_put_process(e, "triage", process_yaml, strlen(process_yaml),
                                            "owner", &out, &err),
                     0);
    tdm_free(out);
    const char *body = "{\"id\": \"first\", \"text\": \"my card was stolen\"}";
    assert_int_equal(tdm_engine_submit(e, "triage", body, strlen(body), 0, "svc", &out, NULL, &err),
                     0);
    json_t *r = parse(out);
    assert_string_equal(str(r, "status"), "queued");
    char task[64];
    snprintf(task, sizeof task, "%s", str(r, "task_id"));
    json_decref(r);

    assert_int_equal(tdm_engine_resource_scope(e, TDM_RESOURCE_ITEM, "first", process, queue, &err),
                     0);
    assert_string_equal(process, "triage");
    assert_string_equal(queue, "");
    assert_int_equal(tdm_engine_resource_scope(e, TDM_RESOURCE_TASK, task, process, queue, &err),
                     0);
    assert_string_equal(process, "triage");
    assert_string_equal(queue, "support");

    const char *answer = "{\"action\": \"correct\", \"value\": \"lost_card\"}";
    assert_int_equal(tdm_engine_complete_task(e, task, "alice", answer, strlen(answer), &out, &err),
                     0);
    r = parse(out);
    char decision[64];
    snprintf(decision, sizeof decision, "%s", str(json_object_get(r, "decision"), "id"));
    json_decref(r);
    assert_int_equal(
        tdm_engine_resource_scope(e, TDM_RESOURCE_DECISION, decision, process, queue, &err), 0);
    assert_string_equal(process, "triage");
    assert_string_equal(queue, "support");
    tdm_engine_close(e);
}

static void test_read_only(void **state)
{
    (void)state;
    tdm_engine *e = open_engine();
    json_t *t = create(e, "ops", TDM_ROLE_VIEWER, NULL, 0, NULL);
    char token[128];
    snprintf(token, sizeof token, "%s", str(t, "token"));
    json_decref(t);
    tdm_engine_close(e);

    e = open_engine_mode(1);
    tdm_error err = {0};
    char *out = NULL;
    tdm_principal p;
    assert_int_equal(tdm_engine_authenticate(e, token, &p, &err), 0);
    assert_string_equal(p.name, "ops");
    int64_t n;
    assert_int_equal(tdm_engine_token_count(e, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(
        tdm_engine_token_create(e, "more", TDM_ROLE_VIEWER, NULL, 0, NULL, NULL, &out, &err),
        TDM_EINVAL);
    assert_int_equal(tdm_engine_token_revoke(e, p.id, NULL, &out, &err), TDM_EINVAL);
    assert_null(out);
    tdm_engine_close(e);
}

/* Principals are cached, yet a revocation by another engine on the same file (as `tandem
 * token revoke --db` is, in another process) counts at the next call: the counter in
 * PATH-tokens, which every engine maps, tells them. */
static void test_revocation_elsewhere(void **state)
{
    (void)state;
    tdm_engine *a = open_engine();
    json_t *t = create(a, "ops", TDM_ROLE_VIEWER, NULL, 0, NULL);
    char token[128], id[64];
    snprintf(token, sizeof token, "%s", str(t, "token"));
    snprintf(id, sizeof id, "%s", str(t, "id"));
    json_decref(t);
    tdm_error err = {0};
    tdm_principal p;
    for (int i = 0; i < 3; i++) { /* read once, then from the cache */
        assert_int_equal(tdm_engine_authenticate(a, token, &p, &err), 0);
        assert_string_equal(p.name, "ops");
        assert_int_equal(p.role, TDM_ROLE_VIEWER);
    }
    char counter[80];
    snprintf(counter, sizeof counter, "%s-tokens", db_path);
    assert_int_equal(access(counter, F_OK), 0);

    tdm_engine *b = open_engine();
    char *out = NULL;
    assert_int_equal(tdm_engine_authenticate(b, token, &p, &err), 0);
    assert_int_equal(tdm_engine_token_revoke(b, id, "root", &out, &err), 0);
    tdm_free(out);
    assert_int_equal(tdm_engine_authenticate(a, token, &p, &err), TDM_EAUTH);
    assert_string_equal(err.message, "unknown or revoked token");
    assert_int_equal(tdm_engine_authenticate(b, token, &p, &err), TDM_EAUTH);

    /* A token made by one is known to the other at once (unknown tokens are not cached). */
    t = create(b, "later", TDM_ROLE_ADMIN, NULL, 0, NULL);
    snprintf(token, sizeof token, "%s", str(t, "token"));
    json_decref(t);
    assert_int_equal(tdm_engine_authenticate(a, token, &p, &err), 0);
    assert_string_equal(p.name, "later");
    tdm_engine_close(b);
    tdm_engine_close(a);
}

/* A database of schema version 1 (before tokens and four eyes; made from a new one by taking
 * their tables and columns away): read-only it has no tokens; opened for writing it is
 * migrated and takes them. */
static void test_migration_from_v1(void **state)
{
    (void)state;
    tdm_engine_close(open_engine());
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(db_path, &raw), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(raw,
                     "DROP TABLE tokens; ALTER TABLE tasks DROP COLUMN first_by; "
                     "ALTER TABLE tasks DROP COLUMN first_action; ALTER TABLE tasks "
                     "DROP COLUMN first_value; ALTER TABLE tasks DROP COLUMN "
                     "first_comment; ALTER TABLE decisions DROP COLUMN "
                     "confirmed_by; DROP INDEX feedback_decision; ALTER TABLE tasks "
                     "DROP COLUMN alternatives; ALTER TABLE tasks DROP COLUMN claimed_at; "
                     "DROP INDEX tasks_sla; ALTER TABLE tasks DROP COLUMN sla_notified; "
                     "DROP TABLE webhooks; DROP TABLE deliveries; DROP INDEX audit_escalations; "
                     "DROP INDEX audit_automation; ALTER TABLE tasks DROP COLUMN first_because; "
                     "DROP TABLE examples; ALTER TABLE model_updates DROP COLUMN census; "
                     "ALTER TABLE models DROP COLUMN fit_rows; "
                     "ALTER TABLE tasks DROP COLUMN census; "
                     "ALTER TABLE steps DROP COLUMN refit_tried; "
                     "ALTER TABLE steps DROP COLUMN refit_tried_rows; "
                     "DROP TABLE model_chunks; ALTER TABLE models DROP COLUMN snapshot_chunks; "
                     "ALTER TABLE models DROP COLUMN chunks_at; "
                     "ALTER TABLE models DROP COLUMN replay_after; "
                     "ALTER TABLE models DROP COLUMN replay_upto; "
                     "UPDATE meta SET "
                     "value = '1' WHERE key = "
                     "'schema_version';",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(raw);

    tdm_engine *e = open_engine_mode(1);
    tdm_error err = {0};
    char *out;
    tdm_principal p;
    int64_t n = -1;
    assert_int_equal(tdm_engine_token_count(e, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(
        tdm_engine_authenticate(e, "tdm_whatever-it-is-it-is-not-there-at-all", &p, &err),
        TDM_EAUTH);
    assert_int_equal(tdm_engine_token_list(e, &out, &err), 0);
    json_t *l = parse(out);
    assert_int_equal(json_array_size(json_object_get(l, "tokens")), 0);
    json_decref(l);
    tdm_engine_close(e);

    e = open_engine();
    json_t *t = create(e, "after-migration", TDM_ROLE_ADMIN, NULL, 0, NULL);
    assert_int_equal(tdm_engine_authenticate(e, str(t, "token"), &p, &err), 0);
    json_decref(t);
    tdm_engine_close(e);
    assert_int_equal(sqlite3_open(db_path, &raw), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(raw, "SELECT value FROM meta WHERE key = 'schema_version'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char want[16];
    snprintf(want, sizeof want, "%d", TDM__SCHEMA_VERSION);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), want);
    sqlite3_finalize(st);
    /* Only the hash is stored: 32 bytes. */
    assert_int_equal(sqlite3_prepare_v2(raw, "SELECT length(hash) FROM tokens", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 32);
    sqlite3_finalize(st);
    sqlite3_close(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_and_scopes),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_given_secret_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_trail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
