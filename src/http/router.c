/*
 * router.c — from a request line and its headers to a route: path decoding, the route
 * table, methods, media types, body caps, the actor header and query values.
 *
 * Everything that can be decided before the body arrives is decided here, so a request for
 * an unknown path, with a wrong method, a wrong content type or a declared length over its
 * cap is answered at once and its body is never read. So is a request without a valid token
 * (401) or one its token's role or scope does not allow (403). libmicrohttpd is told not to
 * unescape URLs (server.c), so each path segment is percent-decoded on its own: an escaped "/"
 * (%2F) stays inside its segment instead of splitting the path.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"
#include "http/routes.h"

/* ---- the route table --------------------------------------------------------------------- */

/*
 * What a route's scope check looks at, beyond the role (docs/api.md, "Who may call what"):
 * owner and service tokens are scoped to processes, reviewer tokens to queues.
 */
typedef enum route_access {
    ACCESS_PUBLIC,  /* no token needed */
    ACCESS_ROLE,    /* the role decides alone (reads, tokens) */
    ACCESS_PROCESS, /* {name} is a process: owner and service need it in scope */
    ACCESS_QUEUE,   /* {queue}: a reviewer needs it in scope */
    ACCESS_ITEM,    /* {id} is an item: a service needs its process in scope */
    ACCESS_TASK,    /* {id} is a task: owner its process, reviewer its queue */
    ACCESS_WEBHOOK, /* {id} is a webhook: owner its process */
    ACCESS_DECISION /* {id} is a decision: owner its process, reviewer its step's queue */
} route_access;

typedef struct route_method {
    unsigned method;
    tdm__http_body body;
    tdm__http_handler handler;
    unsigned roles; /* tdm_role bits that may call it */
    route_access access;
} route_method;

#define MAX_SEGMENTS 6

/*
 * A route: its path as literal segments and "{param}" segments, the methods it takes and
 * the Allow header that lists them. Paths never overlap, so the first match is the match.
 */
typedef struct route {
    const char *pattern;
    const char *segments[MAX_SEGMENTS + 1];
    const char *allow;
    route_method methods[2];
} route;

enum {
    R_ADMIN = TDM_ROLE_ADMIN,
    R_OWNER = TDM_ROLE_OWNER,
    R_REVIEWER = TDM_ROLE_REVIEWER,
    R_VIEWER = TDM_ROLE_VIEWER,
    R_SERVICE = TDM_ROLE_SERVICE,
    R_READERS = R_ADMIN | R_OWNER | R_REVIEWER | R_VIEWER,
};

static const route routes[] = {
    /* The workspace's page and files: public, like any login page; the data behind them is
     * not. "/" is matched by name in tdm__http_begin (it has no segments). */
    {"/",
     {NULL},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_asset, 0, ACCESS_PUBLIC}}},
    {"/ui/{file}",
     {"ui", "{file}"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_asset, 0, ACCESS_PUBLIC}}},
    {"/v1/me",
     {"v1", "me"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_me, R_READERS | R_SERVICE, ACCESS_ROLE}}},
    {"/v1/queues",
     {"v1", "queues"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_queues, R_READERS, ACCESS_ROLE}}},
    {"/v1/events",
     {"v1", "events"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_events, R_READERS, ACCESS_ROLE}}},
    {"/v1/queues/{queue}/next",
     {"v1", "queues", "{queue}", "next"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_JSON_OPTIONAL, tdm__http_h_next, R_ADMIN | R_OWNER | R_REVIEWER,
       ACCESS_QUEUE}}},
    {"/v1/tasks/{id}",
     {"v1", "tasks", "{id}"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_get_task, R_READERS, ACCESS_TASK}}},
    {"/healthz",
     {"healthz"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_health, 0, ACCESS_PUBLIC}}},
    {"/v1/processes",
     {"v1", "processes"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_list_processes, R_READERS, ACCESS_ROLE}}},
    {"/v1/processes/{name}",
     {"v1", "processes", "{name}"},
     "GET, HEAD, PUT",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_get_process, R_READERS, ACCESS_ROLE},
      {TDM__HTTP_PUT, TDM__BODY_YAML, tdm__http_h_put_process, R_ADMIN | R_OWNER, ACCESS_PROCESS}}},
    {"/v1/processes/{name}/train",
     {"v1", "processes", "{name}", "train"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_TABLE, tdm__http_h_train, R_ADMIN | R_OWNER, ACCESS_PROCESS}}},
    {"/v1/processes/{name}/items",
     {"v1", "processes", "{name}", "items"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_ITEMS, tdm__http_h_submit, R_ADMIN | R_OWNER | R_SERVICE,
       ACCESS_PROCESS}}},
    {"/v1/items/{id}",
     {"v1", "items", "{id}"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_get_item, R_READERS | R_SERVICE, ACCESS_ITEM}}},
    {"/v1/queues/{queue}/tasks",
     {"v1", "queues", "{queue}", "tasks"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_list_tasks, R_READERS, ACCESS_QUEUE}}},
    {"/v1/tasks/{id}/claim",
     {"v1", "tasks", "{id}", "claim"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_JSON_OPTIONAL, tdm__http_h_claim, R_ADMIN | R_OWNER | R_REVIEWER,
       ACCESS_TASK}}},
    {"/v1/tasks/{id}/complete",
     {"v1", "tasks", "{id}", "complete"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_JSON, tdm__http_h_complete, R_ADMIN | R_OWNER | R_REVIEWER,
       ACCESS_TASK}}},
    {"/v1/decisions",
     {"v1", "decisions"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_export, R_ADMIN | R_OWNER | R_VIEWER,
       ACCESS_ROLE}}},
    {"/v1/decisions/{id}/feedback",
     {"v1", "decisions", "{id}", "feedback"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_JSON, tdm__http_h_feedback, R_ADMIN | R_OWNER | R_REVIEWER,
       ACCESS_DECISION}}},
    {"/v1/audit",
     {"v1", "audit"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_audit, R_ADMIN | R_OWNER | R_VIEWER,
       ACCESS_ROLE}}},
    {"/v1/audit/verify",
     {"v1", "audit", "verify"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_audit_verify, R_ADMIN | R_OWNER | R_VIEWER,
       ACCESS_ROLE}}},
    {"/v1/processes/{name}/steps/{step}/pause",
     {"v1", "processes", "{name}", "steps", "{step}", "pause"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_JSON_OPTIONAL, tdm__http_h_pause, R_ADMIN | R_OWNER,
       ACCESS_PROCESS}}},
    {"/v1/processes/{name}/steps/{step}/resume",
     {"v1", "processes", "{name}", "steps", "{step}", "resume"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_JSON_OPTIONAL, tdm__http_h_resume, R_ADMIN | R_OWNER,
       ACCESS_PROCESS}}},
    {"/v1/registry",
     {"v1", "registry"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_registry, R_READERS, ACCESS_ROLE}}},
    {"/v1/tokens",
     {"v1", "tokens"},
     "GET, HEAD, POST",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_list_tokens, R_ADMIN, ACCESS_ROLE},
      {TDM__HTTP_POST, TDM__BODY_JSON, tdm__http_h_create_token, R_ADMIN, ACCESS_ROLE}}},
    {"/v1/tokens/{id}",
     {"v1", "tokens", "{id}"},
     "DELETE",
     {{TDM__HTTP_DELETE, TDM__BODY_NONE, tdm__http_h_revoke_token, R_ADMIN, ACCESS_ROLE}}},
    {"/v1/processes/{name}/fairness",
     {"v1", "processes", "{name}", "fairness"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_fairness, R_READERS, ACCESS_ROLE}}},
    /* Not R_READERS: ACCESS_PROCESS lets every reviewer through, and this is the owners'. */
    {"/v1/processes/{name}/dashboard",
     {"v1", "processes", "{name}", "dashboard"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_dashboard, R_ADMIN | R_OWNER | R_VIEWER,
       ACCESS_PROCESS}}},
    /* Webhooks: the process's owner and admins; their secrets are shown at creation only. */
    {"/v1/processes/{name}/webhooks",
     {"v1", "processes", "{name}", "webhooks"},
     "GET, HEAD, POST",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_list_webhooks, R_ADMIN | R_OWNER, ACCESS_PROCESS},
      {TDM__HTTP_POST, TDM__BODY_JSON, tdm__http_h_create_webhook, R_ADMIN | R_OWNER,
       ACCESS_PROCESS}}},
    {"/v1/webhooks/{id}",
     {"v1", "webhooks", "{id}"},
     "DELETE",
     {{TDM__HTTP_DELETE, TDM__BODY_NONE, tdm__http_h_delete_webhook, R_ADMIN | R_OWNER,
       ACCESS_WEBHOOK}}},
    {"/v1/webhooks/{id}/deliveries",
     {"v1", "webhooks", "{id}", "deliveries"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_webhook_deliveries, R_ADMIN | R_OWNER,
       ACCESS_WEBHOOK}}},
    {"/v1/webhooks/{id}/replay",
     {"v1", "webhooks", "{id}", "replay"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_JSON_OPTIONAL, tdm__http_h_replay_webhook, R_ADMIN | R_OWNER,
       ACCESS_WEBHOOK}}},
    {"/v1/webhooks/{id}/deliveries/{delivery}/replay",
     {"v1", "webhooks", "{id}", "deliveries", "{delivery}", "replay"},
     "POST",
     {{TDM__HTTP_POST, TDM__BODY_JSON_OPTIONAL, tdm__http_h_replay_delivery, R_ADMIN | R_OWNER,
       ACCESS_WEBHOOK}}},
    /* Metrics: the owners' and the viewers' (an owner's scrape shows its processes only). */
    {"/v1/processes/{name}/metrics",
     {"v1", "processes", "{name}", "metrics"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_metrics, R_ADMIN | R_OWNER | R_VIEWER,
       ACCESS_PROCESS}}},
    {"/metrics",
     {"metrics"},
     "GET, HEAD",
     {{TDM__HTTP_GET, TDM__BODY_NONE, tdm__http_h_prometheus, R_ADMIN | R_OWNER | R_VIEWER,
       ACCESS_ROLE}}},
};

/* ---- media types ------------------------------------------------------------------------- */

static const char *const yaml_types[] = {"application/yaml", "application/x-yaml", "text/yaml",
                                         "text/x-yaml",      "text/plain",         NULL};
static const char *const jsonl_types[] = {"application/x-ndjson", "application/jsonl",
                                          "application/json-lines", NULL};

/*
 * Compares the media type of a Content-Type value (before any ";" parameter, without
 * surrounding blanks, case-insensitively) with `want`.
 */
static int media_is(const char *content_type, const char *want)
{
    const char *p = content_type;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, ";");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(p, want, n) == 0;
}

static int media_in(const char *content_type, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (media_is(content_type, list[i]))
            return 1;
    return 0;
}

/* ---- percent-decoding -------------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decodes `n` bytes of `s` into `out` (which has room for n + 1). `plus_is_space` applies
 * the form convention for query values. Returns the decoded length, or -1 for a malformed
 * escape or an escaped NUL.
 */
static long percent_decode(const char *s, size_t n, char *out, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hex_value(s[i + 1]), l = hex_value(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            if (c == '\0')
                return -1;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* ---- begin: everything decided from the headers ------------------------------------------ */

static unsigned method_bit(const char *method)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return TDM__HTTP_GET;
    if (strcmp(method, "PUT") == 0)
        return TDM__HTTP_PUT;
    if (strcmp(method, "POST") == 0)
        return TDM__HTTP_POST;
    if (strcmp(method, "DELETE") == 0)
        return TDM__HTTP_DELETE;
    return TDM__HTTP_OTHER;
}

static void out_of_memory(tdm__http_response *res)
{
    tdm__http_error(res, 500, "internal", "", "out of memory");
}

/*
 * Splits the raw path into decoded segments. Returns the number of segments, 0 when the
 * path cannot match any route (too many segments, an empty one), or -1 with `res` filled.
 */
static int split_path(tdm__http_request *req, const char *url, const char **seg,
                      tdm__http_response *res)
{
    if (url[0] != '/')
        return 0;
    int n = 0;
    const char *p = url + 1;
    for (;;) {
        size_t len = strcspn(p, "/");
        if (len == 0)
            return 0; /* "//", a trailing "/" or the bare root: no route has them */
        if (n == MAX_SEGMENTS)
            return 0;
        char *out = tdm__arena_alloc(&req->arena, len + 1);
        if (out == NULL) {
            out_of_memory(res);
            return -1;
        }
        if (percent_decode(p, len, out, 0) < 0) {
            tdm__http_error(res, 400, "bad_request", "path",
                            "path segment \"%.*s\": malformed percent-escape (use %%XX with two "
                            "hex digits; %%00 is not allowed)",
                            (int)(len > 100 ? 100 : len), p);
            return -1;
        }
        seg[n++] = out;
        if (p[len] == '\0')
            return n;
        p += len + 1;
    }
}

/* Finds the route whose pattern matches the segments; fills req->params. */
static const route *find_route(tdm__http_request *req, const char **seg, int n,
                               const char **param_names)
{
    for (size_t r = 0; r < sizeof routes / sizeof routes[0]; r++) {
        const route *rt = &routes[r];
        int k = 0, np = 0;
        while (k < n && rt->segments[k] != NULL) {
            const char *want = rt->segments[k];
            if (want[0] == '{') {
                if (np < 2) {
                    req->params[np] = seg[k];
                    param_names[np] = want;
                    np++;
                }
            } else if (strcmp(want, seg[k]) != 0) {
                break;
            }
            k++;
        }
        if (k == n && rt->segments[k] == NULL)
            return rt;
    }
    req->params[0] = req->params[1] = NULL;
    return NULL;
}

const char *tdm__http_header(tdm__http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* The token of an "Authorization: Bearer TOKEN" header, or NULL. */
static const char *bearer(tdm__http_request *req)
{
    const char *v =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (v == NULL)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, "Bearer ", 7) != 0)
        return NULL;
    v += 7;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v != '\0' ? v : NULL;
}

static void unauthorized(tdm__http_response *res, const char *fmt, const char *pattern)
{
    tdm__http_error(res, 401, "unauthorized", "Authorization", fmt, pattern);
    res->challenge = "Bearer realm=\"tandem\"";
}

static void forbidden_scope(tdm__http_request *req, tdm__http_response *res, const char *what,
                            const char *name)
{
    tdm__http_error(res, 403, "forbidden", "",
                    "token \"%s\" (%s) may not act on %s \"%.200s\": it is outside the "
                    "token's scope",
                    req->principal->name, tdm_role_name(req->principal->role), what, name);
}

/*
 * Checks the scope of an owner, reviewer or service token against the thing the request is
 * about (see `access`). Returns 0, or -1 with `res` filled (403, or 404 for an unknown task,
 * decision or item).
 */
static int check_scope(tdm__http_request *req, route_access acc, tdm__http_response *res)
{
    const tdm_principal *p = req->principal;
    tdm_role role = p->role;
    if (role == TDM_ROLE_ADMIN || role == TDM_ROLE_VIEWER)
        return 0;
    const char *id = req->params[0];
    char process[TDM_SCOPE_NAME_MAX + 1] = "", queue[TDM_SCOPE_NAME_MAX + 1] = "";
    tdm_resource kind = 0;
    switch (acc) {
    case ACCESS_PUBLIC:
    case ACCESS_ROLE:
        return 0;
    case ACCESS_PROCESS:
        if (role == TDM_ROLE_REVIEWER || (role == TDM_ROLE_SERVICE && p->n_scope == 0) ||
            tdm_principal_in_scope(p, id))
            return 0;
        forbidden_scope(req, res, "process", id);
        return -1;
    case ACCESS_QUEUE:
        if (role != TDM_ROLE_REVIEWER || tdm_principal_in_scope(p, id))
            return 0;
        forbidden_scope(req, res, "queue", id);
        return -1;
    case ACCESS_ITEM:
        if (role != TDM_ROLE_SERVICE || p->n_scope == 0)
            return 0;
        kind = TDM_RESOURCE_ITEM;
        break;
    case ACCESS_TASK:
        kind = TDM_RESOURCE_TASK;
        break;
    case ACCESS_DECISION:
        kind = TDM_RESOURCE_DECISION;
        break;
    case ACCESS_WEBHOOK: {
        /* Only admin and owner reach here (the routes' roles); unknown webhooks are 404. */
        tdm_error werr = {0};
        int wrc = tdm_engine_webhook_process(req->engine, id, process, &werr);
        if (wrc != 0) {
            tdm__http_engine_error(res, wrc, &werr);
            return -1;
        }
        if (tdm_principal_in_scope(p, process))
            return 0;
        forbidden_scope(req, res, "process", process);
        return -1;
    }
    }
    tdm_error err = {0};
    int rc = tdm_engine_resource_scope(req->engine, kind, id, process, queue, &err);
    if (rc != 0) {
        tdm__http_engine_error(res, rc, &err);
        return -1;
    }
    if (role == TDM_ROLE_REVIEWER) {
        if (queue[0] != '\0' && tdm_principal_in_scope(p, queue))
            return 0;
        forbidden_scope(req, res, "queue", queue[0] != '\0' ? queue : "(none)");
        return -1;
    }
    if (tdm_principal_in_scope(p, process))
        return 0;
    forbidden_scope(req, res, "process", process);
    return -1;
}

/*
 * Who is calling, and may they: 401 without a valid bearer token (except on public routes),
 * 403 when the token's role may not call the route or the thing is outside its scope.
 */
static int check_access(tdm__http_request *req, const route_method *m, const char *method,
                        tdm__http_response *res)
{
    req->principal = NULL;
    req->actor = NULL;
    if (m->access == ACCESS_PUBLIC)
        return 0;
    const char *token = bearer(req);
    if (token == NULL) {
        unauthorized(res,
                     "%s needs a token: send \"Authorization: Bearer TOKEN\" (see "
                     "docs/security.md)",
                     req->route.pattern);
        return -1;
    }
    tdm_principal *p = tdm__arena_alloc(&req->arena, sizeof *p);
    if (p == NULL) {
        out_of_memory(res);
        return -1;
    }
    tdm_error err = {0};
    int rc = tdm_engine_authenticate(req->engine, token, p, &err);
    if (rc == TDM_EAUTH) {
        unauthorized(res, "the token is unknown or revoked (%s)", req->route.pattern);
        return -1;
    }
    if (rc != 0) {
        tdm__http_engine_error(res, rc, &err);
        return -1;
    }
    req->principal = p;
    req->actor = p->name;
    if ((m->roles & (unsigned)p->role) == 0) {
        tdm__http_error(res, 403, "forbidden", "",
                        "token \"%s\" is a %s token, and %s %s is not for its role (see "
                        "docs/api.md, \"Who may call what\")",
                        p->name, tdm_role_name(p->role), method, req->route.pattern);
        return -1;
    }
    return check_scope(req, m->access, res);
}

static void unsupported(tdm__http_response *res, const char *method, const char *pattern,
                        const char *got, const char *expected)
{
    if (got == NULL)
        tdm__http_error(res, 415, "unsupported_media_type", "Content-Type",
                        "%s %s needs a Content-Type header (%s)", method, pattern, expected);
    else
        tdm__http_error(res, 415, "unsupported_media_type", "Content-Type",
                        "%s %s does not take \"%.100s\" (send %s)", method, pattern, got, expected);
}

/*
 * Checks the content type against what the route takes, sets req->format or req->jsonl,
 * and returns the body cap that applies, or 0 with `res` filled (415).
 */
static size_t check_media(tdm__http_request *req, const tdm__http_limits *limits,
                          const char *method, tdm__http_response *res)
{
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    const char *pattern = req->route.pattern;
    req->has_content_type = ct != NULL;
    switch (req->route.body) {
    case TDM__BODY_NONE:
        return limits->max_small_body_bytes;
    case TDM__BODY_YAML:
        if (ct != NULL && media_in(ct, yaml_types))
            return limits->max_small_body_bytes;
        unsupported(res, method, pattern, ct,
                    "application/yaml, application/x-yaml, text/yaml, text/x-yaml or "
                    "text/plain");
        return 0;
    case TDM__BODY_TABLE:
        if (ct != NULL && media_is(ct, "text/csv")) {
            req->format = TDM_FORMAT_CSV;
            return limits->max_body_bytes;
        }
        if (ct != NULL && media_in(ct, jsonl_types)) {
            req->format = TDM_FORMAT_JSONL;
            return limits->max_body_bytes;
        }
        unsupported(res, method, pattern, ct,
                    "text/csv, or JSON Lines as application/x-ndjson, application/jsonl or "
                    "application/json-lines");
        return 0;
    case TDM__BODY_ITEMS:
        if (ct != NULL && media_is(ct, "application/json")) {
            req->jsonl = 0;
            return limits->max_small_body_bytes;
        }
        if (ct != NULL && media_in(ct, jsonl_types)) {
            req->jsonl = 1;
            return limits->max_body_bytes;
        }
        unsupported(res, method, pattern, ct,
                    "application/json for one item, or application/x-ndjson, "
                    "application/jsonl or application/json-lines for a batch");
        return 0;
    case TDM__BODY_JSON:
        if (ct != NULL && media_is(ct, "application/json"))
            return limits->max_small_body_bytes;
        unsupported(res, method, pattern, ct, "application/json");
        return 0;
    case TDM__BODY_JSON_OPTIONAL:
        /* No Content-Type is fine as long as no body comes (checked at dispatch). */
        if (ct == NULL || media_is(ct, "application/json"))
            return limits->max_small_body_bytes;
        unsupported(res, method, pattern, ct, "application/json, or no body");
        return 0;
    }
    return 0;
}

int tdm__http_begin(tdm__http_request *req, const tdm__http_limits *limits, const char *url,
                    const char *method, tdm__http_response *res)
{
    const char *seg[MAX_SEGMENTS];
    int n = split_path(req, url, seg, res);
    if (n < 0)
        return -1;
    const char *param_names[2] = {NULL, NULL};
    const route *rt = n > 0 ? find_route(req, seg, n, param_names) : NULL;
    if (rt == NULL && strcmp(url, "/") == 0)
        rt = &routes[0];
    if (rt == NULL) {
        tdm__http_error(res, 404, "not_found", "", "no route for %.200s (see docs/api.md)", url);
        return -1;
    }

    unsigned bit = method_bit(method);
    const route_method *m = NULL;
    for (size_t i = 0; i < 2; i++)
        if (rt->methods[i].handler != NULL && rt->methods[i].method == bit)
            m = &rt->methods[i];
    if (m == NULL) {
        tdm__http_error(res, 405, "method_not_allowed", "", "%s does not take %.16s (allowed: %s)",
                        rt->pattern, method, rt->allow);
        res->allow = rt->allow;
        return -1;
    }
    req->route.handler = m->handler;
    req->route.body = m->body;
    req->route.pattern = rt->pattern;

    for (int i = 0; i < 2 && req->params[i] != NULL; i++) {
        size_t len = strlen(req->params[i]);
        if (len > TDM__HTTP_NAME_MAX) {
            /* "{name}" -> "name" for the field. */
            const char *pn = param_names[i];
            size_t pl = strlen(pn);
            char field[32];
            snprintf(field, sizeof field, "%.*s", (int)(pl > 2 ? pl - 2 : 0), pn + 1);
            tdm__http_error(res, 400, "bad_request", field,
                            "path parameter %s is %zu bytes long (at most %d)", pn, len,
                            TDM__HTTP_NAME_MAX);
            return -1;
        }
    }

    if (check_access(req, m, method, res) != 0)
        return -1;
    if (req->principal != NULL) {
        double wait = tdm__http_limiter_take(limits->limiter, req->principal->id);
        if (wait > 0) {
            unsigned seconds = (unsigned)ceil(wait);
            tdm__http_error(res, 429, "rate_limited", "",
                            "token \"%s\" is over its rate limit; retry in %u s (tandem serve "
                            "--rate-limit sets the limit)",
                            req->principal->name, seconds);
            res->retry_after = seconds;
            return -1;
        }
    }

    size_t cap = check_media(req, limits, method, res);
    if (cap == 0)
        return -1;

    const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl != NULL) {
        char *end;
        errno = 0;
        unsigned long long declared = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && declared > cap) {
            tdm__http_error(res, 413, "too_large", "",
                            "%s %s: the body is %llu bytes, over the limit of %zu bytes%s", method,
                            rt->pattern, declared, cap,
                            cap == limits->max_body_bytes && cap != limits->max_small_body_bytes
                                ? " (send smaller batches, or raise the limit with tandem serve "
                                  "--max-body-mib)"
                                : "");
            return -1;
        }
    }
    tdm__buf_init(&req->body, cap);
    return 0;
}

void tdm__http_dispatch(tdm__http_request *req, tdm__http_response *res)
{
    if (req->route.body == TDM__BODY_JSON_OPTIONAL && req->body.len > 0 && !req->has_content_type) {
        unsupported(res, "POST", req->route.pattern, NULL, "application/json, or no body");
        return;
    }
    req->route.handler(req, res);
}

int tdm__http_query(tdm__http_request *req, const char *name, const char **value,
                    tdm__http_response *res)
{
    const char *raw = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    *value = NULL;
    if (raw == NULL)
        return 0;
    size_t n = strlen(raw);
    char *out = tdm__arena_alloc(&req->arena, n + 1);
    if (out == NULL) {
        out_of_memory(res);
        return -1;
    }
    if (percent_decode(raw, n, out, 1) < 0) {
        tdm__http_error(res, 400, "bad_request", name,
                        "query parameter %s: malformed percent-escape (use %%XX with two hex "
                        "digits; %%00 is not allowed)",
                        name);
        return -1;
    }
    *value = out;
    return 0;
}
