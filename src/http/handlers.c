/*
 * handlers.c — one function per route of the HTTP API v1 (docs/api.md). Each reads its
 * query values, calls the engine and turns the answer or the failure into a response; the
 * engine does all the work and all the validation of bodies, so the HTTP API and the
 * command line behave the same.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/assets.h"
#include "http/http_int.h"
#include "http/routes.h"
#include "tandem/engine.h"

#define CT_JSON   "application/json"
#define CT_NDJSON "application/x-ndjson"
#define CT_CSV    "text/csv; charset=utf-8"

/* ---- answers ----------------------------------------------------------------------------- */

static const char oom_body[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"field\":\"\"}}\n";

static void fail_oom(tdm__http_response *res)
{
    res->status = 500;
    res->content_type = CT_JSON;
    res->body = (char *)oom_body;
    res->len = sizeof oom_body - 1;
    res->free_body = NULL;
}

/* A JSON string of `s`; bytes that are not valid UTF-8 become '?' so the answer stays JSON. */
static json_t *safe_string(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* Serialises `o` (consumed) as the answer with `status`, ending it with a newline. */
static void answer_json(tdm__http_response *res, unsigned status, json_t *o)
{
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(o);
    if (s == NULL) {
        fail_oom(res);
        return;
    }
    size_t len = strlen(s);
    char *body = realloc(s, len + 2);
    if (body == NULL) {
        free(s);
        fail_oom(res);
        return;
    }
    body[len] = '\n';
    body[len + 1] = '\0';
    res->status = status;
    res->content_type = CT_JSON;
    res->body = body;
    res->len = len + 1;
    res->free_body = free;
}

void tdm__http_error(tdm__http_response *res, unsigned status, const char *code, const char *field,
                     const char *fmt, ...)
{
    char message[TDM_ERROR_MESSAGE_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    json_t *inner = json_object(), *o = json_object();
    if (inner == NULL || o == NULL || json_object_set_new(inner, "code", json_string(code)) != 0 ||
        json_object_set_new(inner, "message", safe_string(message)) != 0 ||
        json_object_set_new(inner, "field", safe_string(field != NULL ? field : "")) != 0 ||
        json_object_set_new(o, "error", inner) != 0) {
        json_decref(o);
        fail_oom(res);
        return;
    }
    answer_json(res, status, o);
}

void tdm__http_engine_error(tdm__http_response *res, int rc, const tdm_error *err)
{
    unsigned status;
    const char *code;
    switch (rc) {
    case TDM_EPARSE:
        status = 400, code = "bad_request";
        break;
    case TDM_EINVAL:
        status = 422, code = "invalid";
        break;
    case TDM_ENOTFOUND:
        status = 404, code = "not_found";
        break;
    case TDM_ECONFLICT:
        status = 409, code = "conflict";
        break;
    case TDM_ETOOBIG:
        status = 413, code = "too_large";
        break;
    case TDM_EBUSY:
        status = 503, code = "busy";
        break;
    case TDM_EAUTH:
        status = 401, code = "unauthorized";
        break;
    case TDM_EFORBIDDEN:
        status = 403, code = "forbidden";
        break;
    default:
        status = 500, code = "internal";
        break;
    }
    const char *message = err->message[0] != '\0' ? err->message : tdm_strerror(rc);
    tdm__http_error(res, status, code, err->field, "%s", message);
}

void tdm__http_text(tdm__http_response *res, const char *content_type, char *text, size_t len)
{
    char *body = malloc(len + 2);
    if (body == NULL) {
        tdm_free(text);
        fail_oom(res);
        return;
    }
    if (len > 0)
        memcpy(body, text, len);
    tdm_free(text);
    if (len == 0 || body[len - 1] != '\n')
        body[len++] = '\n';
    body[len] = '\0';
    res->status = 200;
    res->content_type = content_type;
    res->body = body;
    res->len = len;
    res->free_body = free;
}

/* The usual ending of a handler: the engine's JSON answer, or its error. */
static void engine_answer(tdm__http_response *res, int rc, char *json, const tdm_error *err)
{
    if (rc != 0) {
        tdm_free(json);
        tdm__http_engine_error(res, rc, err);
        return;
    }
    tdm__http_text(res, CT_JSON, json, json != NULL ? strlen(json) : 0);
}

/* ---- query values ------------------------------------------------------------------------ */

/*
 * Reads a whole-number query value in [lo, hi], `def` when absent. Returns 0, or -1 with a
 * 400 naming the parameter in `res`.
 */
static int query_number(tdm__http_request *req, const char *name, uint64_t def, uint64_t lo,
                        uint64_t hi, uint64_t *out, tdm__http_response *res)
{
    const char *v;
    if (tdm__http_query(req, name, &v, res) != 0)
        return -1;
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < lo || n > hi) {
        tdm__http_error(res, 400, "bad_request", name,
                        "query parameter %s: expected a whole number from %llu to %llu, got "
                        "\"%.64s\"",
                        name, (unsigned long long)lo, (unsigned long long)hi, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* ---- routes ------------------------------------------------------------------------------ */

void tdm__http_h_health(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_health(req->engine, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_list_processes(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_list_processes(req->engine, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_get_process(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_get_process(req->engine, req->params[0], &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_put_process(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc =
        tdm_engine_put_process(req->engine, req->params[0], req->body.data ? req->body.data : "",
                               req->body.len, req->actor, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_train(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_train(req->engine, req->params[0], req->body.data ? req->body.data : "",
                              req->body.len, req->format, req->actor, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_submit(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    size_t len = 0;
    tdm_error err = {0};
    int rc = tdm_engine_submit(req->engine, req->params[0], req->body.data ? req->body.data : "",
                               req->body.len, req->jsonl, req->actor, &json, &len, &err);
    if (rc != 0) {
        tdm_free(json);
        tdm__http_engine_error(res, rc, &err);
        return;
    }
    tdm__http_text(res, req->jsonl ? CT_NDJSON : CT_JSON, json, len);
}

int tdm__http_h_submit_start(tdm__http_request *req, tdm__http_response *res,
                             void (*done)(void *arg), void *arg)
{
    tdm_error err = {0};
    int rc = tdm_engine_submit_begin(req->engine, req->params[0],
                                     req->body.data ? req->body.data : "", req->body.len,
                                     req->jsonl, req->actor, done, arg, &req->pending, &err);
    if (rc != 0) {
        req->pending = NULL;
        tdm__http_engine_error(res, rc, &err);
        return 0;
    }
    return 1;
}

void tdm__http_h_submit_finish(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    size_t len = 0;
    tdm_error err = {0};
    int rc = tdm_submission_end(req->pending, &json, &len, &err);
    req->pending = NULL;
    if (rc != 0) {
        tdm_free(json);
        tdm__http_engine_error(res, rc, &err);
        return;
    }
    tdm__http_text(res, req->jsonl ? CT_NDJSON : CT_JSON, json, len);
}

void tdm__http_h_get_item(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_get_item(req->engine, req->params[0], &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_list_tasks(tdm__http_request *req, tdm__http_response *res)
{
    const char *state;
    uint64_t limit;
    if (tdm__http_query(req, "state", &state, res) != 0)
        return;
    if (state != NULL && strcmp(state, "open") != 0 && strcmp(state, "claimed") != 0 &&
        strcmp(state, "confirming") != 0 && strcmp(state, "done") != 0) {
        tdm__http_error(res, 400, "bad_request", "state",
                        "query parameter state: expected open, claimed, confirming or done, got "
                        "\"%.64s\"",
                        state);
        return;
    }
    if (query_number(req, "limit", 50, 1, 1000, &limit, res) != 0)
        return;
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_list_tasks(req->engine, req->params[0], state, (size_t)limit, &json, &err);
    engine_answer(res, rc, json, &err);
}

/* Reads {"lease_seconds": N} (every key optional); an empty body means the defaults. */
static int claim_body(tdm__http_request *req, unsigned *lease, tdm__http_response *res)
{
    *lease = 0;
    if (req->body.len == 0)
        return 0;
    json_error_t jerr;
    json_t *o = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        tdm__http_error(res, 400, "bad_request", "",
                        "request body: line %d, column %d: %s (send a JSON object such as "
                        "{\"lease_seconds\": 600}, or no body)",
                        jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        tdm__http_error(res, 400, "bad_request", "",
                        "request body: expected a JSON object such as {\"lease_seconds\": 600}");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "lease_seconds") != 0) {
            tdm__http_error(res, 422, "invalid", key,
                            "request body: unknown key \"%.64s\" (expected lease_seconds)", key);
            json_decref(o);
            return -1;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 86400) {
            tdm__http_error(res, 422, "invalid", "lease_seconds",
                            "lease_seconds: expected a whole number of seconds from 1 to 86400");
            json_decref(o);
            return -1;
        }
        *lease = (unsigned)json_integer_value(v);
    }
    json_decref(o);
    return 0;
}

void tdm__http_h_claim(tdm__http_request *req, tdm__http_response *res)
{
    unsigned lease;
    if (claim_body(req, &lease, res) != 0)
        return;
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_claim_task(req->engine, req->params[0], req->actor, lease, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_complete(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc =
        tdm_engine_complete_task(req->engine, req->params[0], req->actor,
                                 req->body.data ? req->body.data : "", req->body.len, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_feedback(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_feedback(req->engine, req->params[0], req->actor,
                                 req->body.data ? req->body.data : "", req->body.len, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_audit(tdm__http_request *req, tdm__http_response *res)
{
    uint64_t after, limit;
    if (query_number(req, "after", 0, 0, UINT64_MAX, &after, res) != 0 ||
        query_number(req, "limit", 100, 1, 1000, &limit, res) != 0)
        return;
    tdm_audit_filter f;
    const char *names[3] = {"event", "actor", "subject"};
    const char **values[3] = {&f.event, &f.actor, &f.subject};
    for (size_t i = 0; i < 3; i++) {
        if (tdm__http_query(req, names[i], values[i], res) != 0)
            return;
        if (*values[i] != NULL && strlen(*values[i]) > TDM__HTTP_NAME_MAX) {
            tdm__http_error(res, 400, "bad_request", names[i],
                            "query parameter %s: at most %d bytes", names[i], TDM__HTTP_NAME_MAX);
            return;
        }
        if (*values[i] != NULL && (*values[i])[0] == '\0')
            *values[i] = NULL; /* an empty filter field in a form: no filter */
    }
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_audit_filtered(req->engine, after, (size_t)limit, &f, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_audit_verify(tdm__http_request *req, tdm__http_response *res)
{
    tdm_audit_check check;
    tdm_error err = {0};
    memset(&check, 0, sizeof check);
    int rc = tdm_engine_audit_verify(req->engine, &check, &err);
    if (rc != 0) {
        tdm__http_engine_error(res, rc, &err);
        return;
    }
    check.reason[sizeof check.reason - 1] = '\0';
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "ok", json_boolean(check.ok)) != 0 ||
        json_object_set_new(o, "entries", json_integer((json_int_t)check.entries)) != 0 ||
        json_object_set_new(o, "first_bad", json_integer((json_int_t)check.first_bad)) != 0 ||
        json_object_set_new(o, "reason", safe_string(check.reason)) != 0) {
        json_decref(o);
        fail_oom(res);
        return;
    }
    answer_json(res, 200, o);
}

/* The export is gathered into a capped buffer; the writer stops the engine at the cap. */
typedef struct export_sink {
    tdm__buf buf;
    int rc; /* the buffer's failure, when it stopped the export */
} export_sink;

static int export_write(void *ctx, const char *data, size_t len)
{
    export_sink *sink = ctx;
    sink->rc = tdm__buf_append(&sink->buf, data, len);
    return sink->rc != 0;
}

void tdm__http_h_export(tdm__http_request *req, tdm__http_response *res)
{
    const char *format, *process;
    if (tdm__http_query(req, "format", &format, res) != 0 ||
        tdm__http_query(req, "process", &process, res) != 0)
        return;
    tdm_export_format f;
    if (format == NULL || strcmp(format, "jsonl") == 0) {
        f = TDM_EXPORT_JSONL;
    } else if (strcmp(format, "csv") == 0) {
        f = TDM_EXPORT_CSV;
    } else {
        tdm__http_error(res, 400, "bad_request", "format",
                        "query parameter format: expected csv or jsonl, got \"%.64s\"", format);
        return;
    }
    if (process != NULL && (process[0] == '\0' || strlen(process) > TDM__HTTP_NAME_MAX)) {
        tdm__http_error(res, 400, "bad_request", "process",
                        "query parameter process: expected a process name of 1 to %d bytes",
                        TDM__HTTP_NAME_MAX);
        return;
    }
    export_sink sink;
    tdm__buf_init(&sink.buf, TDM__HTTP_EXPORT_MAX);
    sink.rc = 0;
    tdm_error err = {0};
    int rc = tdm_engine_export_decisions(req->engine, process, f, export_write, &sink, &err);
    if (rc != 0 || sink.rc != 0) {
        tdm__buf_release(&sink.buf);
        if (sink.rc == TDM_ETOOBIG)
            tdm__http_error(res, 413, "too_large", "",
                            "the export is larger than %zu MiB; export one process at a time "
                            "(process=NAME) or run tandem export decisions on the database",
                            TDM__HTTP_EXPORT_MAX >> 20);
        else if (sink.rc != 0)
            fail_oom(res);
        else
            tdm__http_engine_error(res, rc, &err);
        return;
    }
    size_t len;
    char *body = tdm__buf_take(&sink.buf, &len);
    if (body == NULL) {
        fail_oom(res);
        return;
    }
    res->status = 200;
    res->content_type = f == TDM_EXPORT_CSV ? CT_CSV : CT_NDJSON;
    res->body = body;
    res->len = len;
    res->free_body = free;
}

/* ---- governance -------------------------------------------------------------------------- */

/* Reads {"reason": "..."} (optional; an empty body is fine). Returns 0 or -1 with `res`. */
static int pause_body(tdm__http_request *req, const char **reason, json_t **keep,
                      tdm__http_response *res)
{
    *reason = NULL;
    *keep = NULL;
    if (req->body.len == 0)
        return 0;
    json_error_t jerr;
    json_t *o = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        tdm__http_error(res, 400, "bad_request", "",
                        "request body: line %d, column %d: %s (send {\"reason\": \"...\"}, or "
                        "no body)",
                        jerr.line, jerr.column, jerr.text);
        return -1;
    }
    const char *key;
    json_t *v;
    if (!json_is_object(o)) {
        json_decref(o);
        tdm__http_error(res, 400, "bad_request", "",
                        "request body: expected a JSON object such as {\"reason\": \"drift\"}");
        return -1;
    }
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "reason") != 0 || !json_is_string(v)) {
            tdm__http_error(res, 422, "invalid", key,
                            strcmp(key, "reason") != 0
                                ? "request body: unknown key \"%.64s\" (expected reason)"
                                : "%s: expected a string",
                            key);
            json_decref(o);
            return -1;
        }
        *reason = json_string_value(v);
    }
    *keep = o;
    return 0;
}

static void pause_or_resume(tdm__http_request *req, tdm__http_response *res, int pause)
{
    const char *reason;
    json_t *keep;
    if (pause_body(req, &reason, &keep, res) != 0)
        return;
    if (!pause && reason != NULL) {
        json_decref(keep);
        tdm__http_error(res, 422, "invalid", "reason", "resume takes no reason");
        return;
    }
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_pause_step(req->engine, req->params[0], req->params[1], pause, reason,
                                   req->actor, &json, &err);
    json_decref(keep);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_pause(tdm__http_request *req, tdm__http_response *res)
{
    pause_or_resume(req, res, 1);
}

void tdm__http_h_resume(tdm__http_request *req, tdm__http_response *res)
{
    pause_or_resume(req, res, 0);
}

void tdm__http_h_registry(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_registry(req->engine, &json, &err);
    engine_answer(res, rc, json, &err);
}

/* ---- the workspace ----------------------------------------------------------------------- */

/* GET /v1/me: who the token is, so that the workspace shows what the role allows. */
void tdm__http_h_me(tdm__http_request *req, tdm__http_response *res)
{
    const tdm_principal *p = req->principal;
    json_t *scope = json_array();
    for (size_t i = 0; i < p->n_scope; i++)
        json_array_append_new(scope, safe_string(p->scope[i]));
    answer_json(res, 200,
                json_pack("{s:s, s:o, s:s, s:o}", "id", p->id, "name", safe_string(p->name), "role",
                          tdm_role_name(p->role), "scope", scope));
}

void tdm__http_h_queues(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_queues(req->engine, req->principal, &json, NULL, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_get_task(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_get_task(req->engine, req->params[0], &json, &err);
    engine_answer(res, rc, json, &err);
}

/* POST /v1/queues/{queue}/next: claims the caller's next task; 204 when there is none. */
void tdm__http_h_next(tdm__http_request *req, tdm__http_response *res)
{
    unsigned lease;
    if (claim_body(req, &lease, res) != 0)
        return;
    if (req->principal->role == TDM_ROLE_OWNER) {
        if (!tdm_engine_queue_visible(req->engine, req->principal, req->params[0])) {
            tdm__http_error(res, 403, "forbidden", "",
                            "token \"%s\" (owner) may not work queue \"%.200s\": no process in "
                            "its scope sends tasks there",
                            req->principal->name, req->params[0]);
            return;
        }
    }
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_next_task(req->engine, req->params[0], req->actor, lease, &json, &err);
    if (rc == 0 && json == NULL) {
        res->status = 204;
        res->content_type = NULL;
        res->body = NULL;
        res->len = 0;
        res->free_body = NULL;
        return;
    }
    engine_answer(res, rc, json, &err);
}

/* GET / and GET /ui/{file}: the workspace's embedded files (cmake/embed.cmake). */
void tdm__http_h_asset(tdm__http_request *req, tdm__http_response *res)
{
    const char *name = req->params[0] != NULL ? req->params[0] : "index.html";
    for (const tdm__asset *a = tdm__assets; a->name != NULL; a++) {
        if (strcmp(a->name, name) != 0)
            continue;
        res->status = 200;
        res->content_type = a->type;
        res->body = (char *)a->data;
        res->len = a->len;
        res->free_body = NULL;
        res->page = 1;
        res->etag = a->etag;
        const char *inm = tdm__http_header(req, "If-None-Match");
        if (inm != NULL && strstr(inm, a->etag) != NULL) {
            res->status = 304;
            res->len = 0;
        }
        return;
    }
    tdm__http_error(res, 404, "not_found", "file", "no file \"%.200s\" in the workspace", name);
}

/* ---- tokens ------------------------------------------------------------------------------ */

void tdm__http_h_list_tokens(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_token_list(req->engine, &json, &err);
    engine_answer(res, rc, json, &err);
}

/* Reads {"name": ..., "role": ..., "scope": [...]} and creates the token: 201 with it. */
void tdm__http_h_create_token(tdm__http_request *req, tdm__http_response *res)
{
    static const char example[] =
        "{\"name\": \"alice\", \"role\": \"reviewer\", \"scope\": [\"support\"]}";
    json_error_t jerr;
    json_t *o = json_loadb(req->body.data ? req->body.data : "", req->body.len,
                           JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        tdm__http_error(res, 400, "bad_request", "",
                        "request body: line %d, column %d: %s (send a JSON object such as %s)",
                        jerr.line, jerr.column, jerr.text, example);
        return;
    }
    const char *name = NULL, *role_name = NULL, *scope[TDM_SCOPE_MAX];
    size_t n_scope = 0;
    tdm_role role = 0;
    const char *key;
    json_t *v;
    if (!json_is_object(o)) {
        tdm__http_error(res, 400, "bad_request", "",
                        "request body: expected a JSON object such as %s", example);
        goto done;
    }
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "name") == 0 && json_is_string(v)) {
            name = json_string_value(v);
        } else if (strcmp(key, "role") == 0 && json_is_string(v)) {
            role_name = json_string_value(v);
        } else if (strcmp(key, "scope") == 0 && json_is_array(v)) {
            size_t i;
            json_t *x;
            if (json_array_size(v) > TDM_SCOPE_MAX) {
                tdm__http_error(res, 422, "invalid", "scope", "scope: at most %d names",
                                TDM_SCOPE_MAX);
                goto done;
            }
            json_array_foreach(v, i, x)
            {
                if (!json_is_string(x)) {
                    tdm__http_error(res, 422, "invalid", "scope",
                                    "scope[%zu]: expected a process or queue name (a string)", i);
                    goto done;
                }
                scope[n_scope++] = json_string_value(x);
            }
        } else if (strcmp(key, "name") == 0 || strcmp(key, "role") == 0 ||
                   strcmp(key, "scope") == 0) {
            tdm__http_error(res, 422, "invalid", key, "%s: expected %s", key,
                            strcmp(key, "scope") == 0 ? "an array of names" : "a string");
            goto done;
        } else {
            tdm__http_error(res, 422, "invalid", key,
                            "request body: unknown key \"%.64s\" (expected name, role, scope)",
                            key);
            goto done;
        }
    }
    if (name == NULL || role_name == NULL) {
        tdm__http_error(res, 422, "invalid", name == NULL ? "name" : "role",
                        "request body: %s is missing (send %s)", name == NULL ? "name" : "role",
                        example);
        goto done;
    }
    if (tdm_role_parse(role_name, &role) != 0) {
        tdm__http_error(res, 422, "invalid", "role",
                        "role: expected admin, owner, reviewer, viewer or service, got \"%.64s\"",
                        role_name);
        goto done;
    }
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_token_create(req->engine, name, role, scope, n_scope, NULL, req->actor,
                                     &json, &err);
    engine_answer(res, rc, json, &err);
    if (rc == 0)
        res->status = 201;
done:
    json_decref(o);
}

void tdm__http_h_revoke_token(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_token_revoke(req->engine, req->params[0], req->actor, &json, &err);
    engine_answer(res, rc, json, &err);
}

/* ---- fairness ---------------------------------------------------------------------------- */

/*
 * Reads `bins` (comma-separated numbers) into an arena array: 0, or -1 with a 400 naming
 * the parameter. The engine checks their count and order (422).
 */
static int query_bins(tdm__http_request *req, double **bins, size_t *n, tdm__http_response *res)
{
    const char *v;
    *bins = NULL;
    *n = 0;
    if (tdm__http_query(req, "bins", &v, res) != 0)
        return -1;
    if (v == NULL)
        return 0;
    size_t count = 1;
    for (const char *p = v; *p; p++)
        count += *p == ',';
    double *out = tdm__arena_alloc(&req->arena, count * sizeof *out);
    if (out == NULL) {
        fail_oom(res);
        return -1;
    }
    const char *p = v;
    for (size_t i = 0; i < count; i++) {
        char *end;
        errno = 0;
        out[i] = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || errno != 0 || p[0] == ' ' ||
            !isfinite(out[i])) {
            tdm__http_error(res, 400, "bad_request", "bins",
                            "query parameter bins: expected comma-separated numbers like "
                            "25,40,60, got \"%.64s\"",
                            v);
            return -1;
        }
        p = end + 1;
    }
    *bins = out;
    *n = count;
    return 0;
}

void tdm__http_h_fairness(tdm__http_request *req, tdm__http_response *res)
{
    const char *group, *step;
    double *bins;
    size_t n_bins;
    if (tdm__http_query(req, "group", &group, res) != 0 ||
        tdm__http_query(req, "step", &step, res) != 0 || query_bins(req, &bins, &n_bins, res) != 0)
        return;
    if (group == NULL) {
        tdm__http_error(res, 400, "bad_request", "group",
                        "query parameter group is required: the item field to compare groups "
                        "by, like group=age");
        return;
    }
    char *json = NULL;
    tdm_error err = {0};
    int rc =
        tdm_engine_fairness(req->engine, req->params[0], step, group, bins, n_bins, &json, &err);
    engine_answer(res, rc, json, &err);
}

/* ---- the owner dashboard ----------------------------------------------------------------- */

void tdm__http_h_dashboard(tdm__http_request *req, tdm__http_response *res)
{
    const char *bucket;
    uint64_t points;
    if (tdm__http_query(req, "bucket", &bucket, res) != 0)
        return;
    if (bucket != NULL && strcmp(bucket, "minute") != 0 && strcmp(bucket, "hour") != 0 &&
        strcmp(bucket, "day") != 0) {
        tdm__http_error(res, 400, "bad_request", "bucket",
                        "query parameter bucket: expected minute, hour or day, got \"%.64s\"",
                        bucket);
        return;
    }
    if (query_number(req, "points", TDM_DASHBOARD_DEFAULT_POINTS, 1, TDM_DASHBOARD_MAX_POINTS,
                     &points, res) != 0)
        return;
    char *json = NULL;
    tdm_error err = {0};
    int rc =
        tdm_engine_dashboard(req->engine, req->params[0], bucket, (unsigned)points, &json, &err);
    engine_answer(res, rc, json, &err);
}

/* ---- webhooks ---------------------------------------------------------------------------- */

void tdm__http_h_list_webhooks(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_webhook_list(req->engine, req->params[0], &json, &err);
    engine_answer(res, rc, json, &err);
}

/* POST /v1/processes/{name}/webhooks: 201 with the subscription and its secret. */
void tdm__http_h_create_webhook(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc =
        tdm_engine_webhook_create(req->engine, req->params[0], req->body.data ? req->body.data : "",
                                  req->body.len, req->actor, &json, &err);
    engine_answer(res, rc, json, &err);
    if (rc == 0)
        res->status = 201;
}

void tdm__http_h_delete_webhook(tdm__http_request *req, tdm__http_response *res)
{
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_webhook_delete(req->engine, req->params[0], req->actor, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_webhook_deliveries(tdm__http_request *req, tdm__http_response *res)
{
    const char *state;
    uint64_t limit;
    if (tdm__http_query(req, "state", &state, res) != 0)
        return;
    if (state != NULL && strcmp(state, "pending") != 0 && strcmp(state, "delivered") != 0 &&
        strcmp(state, "dead") != 0 && strcmp(state, "cancelled") != 0) {
        tdm__http_error(res, 400, "bad_request", "state",
                        "query parameter state: expected pending, delivered, dead or cancelled, "
                        "got \"%.64s\"",
                        state);
        return;
    }
    if (query_number(req, "limit", 100, 1, 1000, &limit, res) != 0)
        return;
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_webhook_deliveries(req->engine, req->params[0], state, (size_t)limit, &json,
                                           &err);
    engine_answer(res, rc, json, &err);
}

/* A replay takes no body, or an empty JSON object. Returns 0 or -1 with `res` filled. */
static int empty_body(tdm__http_request *req, tdm__http_response *res)
{
    if (req->body.len == 0)
        return 0;
    json_error_t jerr;
    json_t *o = json_loadb(req->body.data, req->body.len, 0, &jerr);
    int empty = json_is_object(o) && json_object_size(o) == 0;
    json_decref(o);
    if (empty)
        return 0;
    tdm__http_error(res, o == NULL ? 400 : 422, o == NULL ? "bad_request" : "invalid", "",
                    "%s takes no body (or {})", req->route.pattern);
    return -1;
}

void tdm__http_h_replay_webhook(tdm__http_request *req, tdm__http_response *res)
{
    if (empty_body(req, res) != 0)
        return;
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_webhook_replay(req->engine, req->params[0], NULL, req->actor, &json, &err);
    engine_answer(res, rc, json, &err);
}

void tdm__http_h_replay_delivery(tdm__http_request *req, tdm__http_response *res)
{
    if (empty_body(req, res) != 0)
        return;
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_webhook_replay(req->engine, req->params[0], req->params[1], req->actor,
                                       &json, &err);
    engine_answer(res, rc, json, &err);
}

/* ---- metrics ----------------------------------------------------------------------------- */

/* GET /v1/processes/{name}/metrics: from, to and by are checked by the engine (400 naming
 * them); rate and top here. */
void tdm__http_h_metrics(tdm__http_request *req, tdm__http_response *res)
{
    tdm_metrics_query q;
    tdm_metrics_query_init(&q);
    const char *rate;
    uint64_t top;
    if (tdm__http_query(req, "from", &q.from, res) != 0 ||
        tdm__http_query(req, "to", &q.to, res) != 0 ||
        tdm__http_query(req, "by", &q.by, res) != 0 ||
        tdm__http_query(req, "segment", &q.segment, res) != 0 ||
        tdm__http_query(req, "rate", &rate, res) != 0 ||
        query_number(req, "top", TDM_METRICS_DEFAULT_TOP, 1, TDM_METRICS_MAX_TOP, &top, res) != 0)
        return;
    if (rate != NULL) {
        char *end;
        errno = 0;
        q.cost_per_hour = strtod(rate, &end);
        if (end == rate || *end != '\0' || errno != 0 || rate[0] == ' ' ||
            !(q.cost_per_hour > 0 && q.cost_per_hour <= 1e6)) {
            tdm__http_error(res, 400, "bad_request", "rate",
                            "query parameter rate: expected the cost of a person's hour, a "
                            "number more than 0 and at most 1000000, got \"%.64s\"",
                            rate);
            return;
        }
    }
    q.top = (unsigned)top;
    char *json = NULL;
    tdm_error err = {0};
    int rc = tdm_engine_metrics(req->engine, req->params[0], &q, &json, &err);
    engine_answer(res, rc, json, &err);
}

/* GET /metrics: Prometheus's text format, the processes the token may see. */
void tdm__http_h_prometheus(tdm__http_request *req, tdm__http_response *res)
{
    char *text = NULL;
    size_t len = 0;
    tdm_error err = {0};
    int rc = tdm_engine_prometheus(req->engine, req->principal, &text, &len, &err);
    if (rc != 0) {
        tdm_free(text);
        tdm__http_engine_error(res, rc, &err);
        return;
    }
    tdm__http_text(res, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
