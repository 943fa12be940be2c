/*
 * client.c — the two ways a command reaches an engine (client.h): directly on a database
 * through engine.h, or through a running server with libcurl. Over HTTP every answer that
 * is not 200 carries {"error": {"code", "message", "field"}}; its message becomes the
 * command's message and its status maps back onto the engine's error code.
 */
#define _GNU_SOURCE

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "client.h"

/* The largest answer read from a server into memory (submit results, training reports). */
#define ANSWER_MAX ((size_t)1 << 30)

struct cli_client {
    tdm_engine *engine; /* --db */
    CURL *curl;         /* --url */
    char *base;         /* the URL without trailing slashes */
    const char *actor;  /* --db: who acts */
    const char *token;  /* --url: TANDEM_TOKEN */
    const char *where;
};

static int fail(tdm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(tdm_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->code = code;
    err->field[0] = '\0';
    return code;
}

int cli_target_check(const cli_target *t, const char *cmd)
{
    if ((t->db == NULL) == (t->url == NULL)) {
        cli_error("%s: give exactly one of --db PATH and --url URL (see tandem %s --help)", cmd,
                  cmd);
        return CLI_EXIT_USAGE;
    }
    if (t->url != NULL && strncmp(t->url, "http://", 7) != 0 &&
        strncmp(t->url, "https://", 8) != 0) {
        cli_error("%s: --url \"%s\": expected http://HOST:PORT, like http://127.0.0.1:8080", cmd,
                  t->url);
        return CLI_EXIT_USAGE;
    }
    if (t->actor != NULL && t->url != NULL) {
        cli_error("%s: --actor goes with --db; through --url the token in TANDEM_TOKEN names "
                  "who acts",
                  cmd);
        return CLI_EXIT_USAGE;
    }
    if (t->actor != NULL && (t->actor[0] == '\0' || strlen(t->actor) > 128)) {
        cli_error("%s: --actor: expected a name of 1 to 128 characters", cmd);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cli_client_open(const cli_target *t, int read_only, cli_client **out)
{
    cli_client *c = calloc(1, sizeof *c);
    *out = NULL;
    if (c == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    c->actor = t->actor;
    if (t->db != NULL) {
        tdm_engine_opts opts;
        tdm_error err = {0};
        tdm_engine_opts_init(&opts);
        opts.db_path = t->db;
        opts.read_only = read_only;
        if (tdm_engine_open(&opts, &c->engine, &err) != 0) {
            cli_error("%s", err.message[0] ? err.message : tdm_strerror(err.code));
            free(c);
            return CLI_EXIT_FAIL;
        }
        c->where = t->db;
        *out = c;
        return 0;
    }
    c->token = getenv("TANDEM_TOKEN");
    if (c->token != NULL && c->token[0] == '\0')
        c->token = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c->curl = curl_easy_init()) == NULL ||
        (c->base = strdup(t->url)) == NULL) {
        cli_error("cannot set up HTTP (libcurl failed to start)");
        if (c->curl != NULL)
            curl_easy_cleanup(c->curl);
        free(c);
        return CLI_EXIT_FAIL;
    }
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    c->where = c->base;
    *out = c;
    return 0;
}

void cli_client_close(cli_client *c)
{
    if (c == NULL)
        return;
    if (c->engine != NULL)
        tdm_engine_close(c->engine);
    if (c->curl != NULL) {
        curl_easy_cleanup(c->curl);
        curl_global_cleanup();
    }
    free(c->base);
    free(c);
}

const char *cli_client_where(const cli_client *c)
{
    return c->where;
}

/* ---- the engine, directly ---------------------------------------------------------------- */

/* Moves an engine answer (freed with tdm_free) into malloc'd memory. */
static int take_answer(char *text, size_t len, char **json, tdm_error *err)
{
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        tdm_free(text);
        return fail(err, TDM_ENOMEM, "out of memory");
    }
    if (len > 0)
        memcpy(copy, text, len);
    copy[len] = '\0';
    tdm_free(text);
    *json = copy;
    return 0;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

typedef struct http_answer {
    CURL *curl;
    FILE *stream; /* a 200 answer is written here instead of kept, when set */
    char *data;
    size_t len, alloc;
    int too_big;
    int write_failed;
} http_answer;

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    http_answer *a = ud;
    size_t len = size * n;
    if (a->stream != NULL) {
        long code = 0;
        curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200) {
            if (fwrite(p, 1, len, a->stream) != len) {
                a->write_failed = errno ? errno : EIO;
                return 0;
            }
            return len;
        }
    }
    if (len > ANSWER_MAX - a->len) {
        a->too_big = 1;
        return 0;
    }
    if (a->len + len + 1 > a->alloc) {
        size_t alloc = a->alloc ? a->alloc : 4096;
        while (alloc < a->len + len + 1)
            alloc *= 2;
        char *d = realloc(a->data, alloc);
        if (d == NULL) {
            a->too_big = 1;
            return 0;
        }
        a->data = d;
        a->alloc = alloc;
    }
    memcpy(a->data + a->len, p, len);
    a->len += len;
    a->data[a->len] = '\0';
    return len;
}

static int status_code(long status)
{
    switch (status) {
    case 400:
        return TDM_EPARSE;
    case 401:
        return TDM_EAUTH;
    case 403:
        return TDM_EFORBIDDEN;
    case 404:
        return TDM_ENOTFOUND;
    case 409:
        return TDM_ECONFLICT;
    case 413:
        return TDM_ETOOBIG;
    case 415:
    case 422:
        return TDM_EINVAL;
    case 503:
        return TDM_EBUSY;
    default:
        return TDM_EIO;
    }
}

/* Turns a failed answer into `err`: the server's own message when it sent one. */
static int answer_error(const cli_client *c, long status, const http_answer *a, tdm_error *err)
{
    int code = status_code(status);
    json_t *o = a->data != NULL ? json_loadb(a->data, a->len, 0, NULL) : NULL;
    json_t *e = json_object_get(o, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *field = json_string_value(json_object_get(e, "field"));
    if (msg != NULL && msg[0] != '\0')
        fail(err, code, "%s%s", msg,
             status == 401 && c->token == NULL
                 ? " (the command line sends the token in the environment variable TANDEM_TOKEN, "
                   "which is not set)"
                 : "");
    else
        fail(err, code, "%s: the server answered HTTP %ld", c->base, status);
    if (field != NULL)
        snprintf(err->field, sizeof err->field, "%s", field);
    json_decref(o);
    return code;
}

/*
 * Sends one request. `path` is already escaped. On 200 the answer is in *json (malloc'd)
 * or, with `stream`, written there.
 */
static int http_call(cli_client *c, const char *method, const char *path, const char *ctype,
                     const char *body, size_t len, FILE *stream, char **json, size_t *json_len,
                     tdm_error *err)
{
    char *url = NULL, errbuf[CURL_ERROR_SIZE] = "", *auth = NULL;
    struct curl_slist *headers = NULL, *h;
    http_answer a = {.curl = c->curl, .stream = stream};
    int rc = 0;
    if (asprintf(&url, "%s%s", c->base, path) < 0)
        return fail(err, TDM_ENOMEM, "out of memory");
    if (ctype != NULL || strcmp(method, "GET") != 0) {
        /* Without a type, "Content-Type:" stops libcurl from adding its form type. */
        char line[128];
        snprintf(line, sizeof line, "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
        if ((h = curl_slist_append(headers, line)) == NULL)
            goto oom;
        headers = h;
    }
    if (c->token != NULL) {
        if (asprintf(&auth, "Authorization: Bearer %s", c->token) < 0) {
            auth = NULL;
            goto oom;
        }
        if ((h = curl_slist_append(headers, auth)) == NULL)
            goto oom;
        headers = h;
    }
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "tandem/" TDM_VERSION_STRING);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = curl_easy_perform(c->curl);
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (a.write_failed) {
        rc = fail(err, TDM_EIO, "cannot write the answer: %s", strerror(a.write_failed));
    } else if (a.too_big) {
        rc = fail(err, TDM_ETOOBIG, "%s%s: the answer is over %zu MiB", c->base, path,
                  ANSWER_MAX >> 20);
    } else if (cc != CURLE_OK) {
        rc = fail(err, TDM_EIO, "%s: %s (is tandem serve running there?)", url,
                  errbuf[0] ? errbuf : curl_easy_strerror(cc));
    } else if (status != 200 && status != 201) {
        rc = answer_error(c, status, &a, err);
    } else if (json != NULL) {
        if (a.data == NULL && (a.data = calloc(1, 1)) == NULL)
            goto oom;
        *json = a.data;
        if (json_len != NULL)
            *json_len = a.len;
        a.data = NULL;
    }
    goto out;
oom:
    rc = fail(err, TDM_ENOMEM, "out of memory");
out:
    curl_slist_free_all(headers);
    if (auth != NULL)
        sodium_memzero(auth, strlen(auth));
    free(auth);
    free(url);
    free(a.data);
    return rc;
}

/* "/v1/processes/NAME" + suffix, with NAME escaped. */
static int process_path(cli_client *c, const char *name, const char *suffix, char **out,
                        tdm_error *err)
{
    char *esc = curl_easy_escape(c->curl, name, 0);
    if (esc == NULL || asprintf(out, "/v1/processes/%s%s", esc, suffix) < 0) {
        curl_free(esc);
        return fail(err, TDM_ENOMEM, "out of memory");
    }
    curl_free(esc);
    return 0;
}

/* ---- the calls --------------------------------------------------------------------------- */

int cli_client_put_process(cli_client *c, const char *name, const char *yaml, size_t len,
                           char **json, tdm_error *err)
{
    if (c->engine != NULL) {
        char *text = NULL;
        int rc = tdm_engine_put_process(c->engine, name, yaml, len, c->actor, &text, err);
        return rc != 0 ? rc : take_answer(text, text ? strlen(text) : 0, json, err);
    }
    char *path;
    int rc = process_path(c, name, "", &path, err);
    if (rc != 0)
        return rc;
    rc = http_call(c, "PUT", path, "application/yaml", yaml, len, NULL, json, NULL, err);
    free(path);
    return rc;
}

int cli_client_train(cli_client *c, const char *process, const char *data, size_t len,
                     tdm_table_format format, char **json, tdm_error *err)
{
    if (c->engine != NULL) {
        char *text = NULL;
        int rc = tdm_engine_train(c->engine, process, data, len, format, c->actor, &text, err);
        return rc != 0 ? rc : take_answer(text, text ? strlen(text) : 0, json, err);
    }
    char *path;
    int rc = process_path(c, process, "/train", &path, err);
    if (rc != 0)
        return rc;
    rc =
        http_call(c, "POST", path, format == TDM_FORMAT_JSONL ? "application/x-ndjson" : "text/csv",
                  data, len, NULL, json, NULL, err);
    free(path);
    return rc;
}

int cli_client_submit(cli_client *c, const char *process, const char *body, size_t len, char **json,
                      size_t *json_len, tdm_error *err)
{
    if (c->engine != NULL) {
        char *text = NULL;
        size_t n = 0;
        int rc = tdm_engine_submit(c->engine, process, body, len, 1, c->actor, &text, &n, err);
        if (rc != 0)
            return rc;
        *json_len = n;
        return take_answer(text, n, json, err);
    }
    char *path;
    int rc = process_path(c, process, "/items", &path, err);
    if (rc != 0)
        return rc;
    rc = http_call(c, "POST", path, "application/x-ndjson", body, len, NULL, json, json_len, err);
    free(path);
    return rc;
}

typedef struct file_sink {
    FILE *f;
    int error;
} file_sink;

static int write_file(void *ctx, const char *data, size_t len)
{
    file_sink *s = ctx;
    if (fwrite(data, 1, len, s->f) != len) {
        s->error = errno ? errno : EIO;
        return 1;
    }
    return 0;
}

int cli_client_export(cli_client *c, const char *process, tdm_export_format format, FILE *out,
                      tdm_error *err)
{
    if (c->engine != NULL) {
        file_sink sink = {out, 0};
        int rc = tdm_engine_export_decisions(c->engine, process, format, write_file, &sink, err);
        if (sink.error != 0)
            return fail(err, TDM_EIO, "cannot write the decisions: %s", strerror(sink.error));
        return rc;
    }
    char *path, *esc = NULL;
    const char *fmt = format == TDM_EXPORT_CSV ? "csv" : "jsonl";
    if (process != NULL && (esc = curl_easy_escape(c->curl, process, 0)) == NULL)
        return fail(err, TDM_ENOMEM, "out of memory");
    int n = esc != NULL ? asprintf(&path, "/v1/decisions?format=%s&process=%s", fmt, esc)
                        : asprintf(&path, "/v1/decisions?format=%s", fmt);
    curl_free(esc);
    if (n < 0)
        return fail(err, TDM_ENOMEM, "out of memory");
    int rc = http_call(c, "GET", path, NULL, NULL, 0, out, NULL, NULL, err);
    free(path);
    return rc;
}

int cli_client_audit_verify(cli_client *c, tdm_audit_check *check, tdm_error *err)
{
    memset(check, 0, sizeof *check);
    if (c->engine != NULL)
        return tdm_engine_audit_verify(c->engine, check, err);
    char *json = NULL;
    int rc = http_call(c, "GET", "/v1/audit/verify", NULL, NULL, 0, NULL, &json, NULL, err);
    if (rc != 0)
        return rc;
    json_t *o = json_loads(json, 0, NULL);
    json_t *ok = json_object_get(o, "ok"), *entries = json_object_get(o, "entries");
    if (!json_is_boolean(ok) || !json_is_integer(entries)) {
        json_decref(o);
        free(json);
        return fail(err, TDM_EPARSE, "%s/v1/audit/verify: unexpected answer (is this tandem?)",
                    c->base);
    }
    check->ok = json_is_true(ok);
    check->entries = (uint64_t)json_integer_value(entries);
    check->first_bad = (uint64_t)json_integer_value(json_object_get(o, "first_bad"));
    const char *reason = json_string_value(json_object_get(o, "reason"));
    snprintf(check->reason, sizeof check->reason, "%s", reason ? reason : "");
    json_decref(o);
    free(json);
    return 0;
}

/* ---- governance -------------------------------------------------------------------------- */

int cli_client_pause_step(cli_client *c, const char *process, const char *step, int pause,
                          const char *reason, char **json, tdm_error *err)
{
    if (c->engine != NULL)
        return tdm_engine_pause_step(c->engine, process, step, pause, reason,
                                     c->actor ? c->actor : "api", json, err);
    char *esc = curl_easy_escape(c->curl, step, 0), *suffix = NULL, *path = NULL, *body = NULL;
    int rc = 0;
    if (esc == NULL || asprintf(&suffix, "/steps/%s/%s", esc, pause ? "pause" : "resume") < 0) {
        suffix = NULL;
        rc = fail(err, TDM_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = process_path(c, process, suffix, &path, err)) != 0)
        goto out;
    if (reason != NULL) {
        json_t *o = json_pack("{s:s}", "reason", reason);
        body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (body == NULL) {
            rc = fail(err, TDM_ENOMEM, "out of memory");
            goto out;
        }
    }
    rc =
        http_call(c, "POST", path, body != NULL ? "application/json" : NULL,
                  body != NULL ? body : "", body != NULL ? strlen(body) : 0, NULL, json, NULL, err);
out:
    curl_free(esc);
    free(suffix);
    free(path);
    free(body);
    return rc;
}

int cli_client_registry(cli_client *c, char **json, tdm_error *err)
{
    if (c->engine != NULL)
        return tdm_engine_registry(c->engine, json, err);
    return http_call(c, "GET", "/v1/registry", NULL, NULL, 0, NULL, json, NULL, err);
}

/* ---- tokens ------------------------------------------------------------------------------ */

int cli_client_token_create(cli_client *c, const char *name, tdm_role role,
                            const char *const *scope, size_t n_scope, char **json, tdm_error *err)
{
    if (c->engine != NULL)
        return tdm_engine_token_create(c->engine, name, role, scope, n_scope, NULL,
                                       c->actor ? c->actor : "tandem token", json, err);
    json_t *o = json_object(), *sc = json_array();
    for (size_t i = 0; sc != NULL && i < n_scope; i++)
        json_array_append_new(sc, json_string(scope[i]));
    if (o == NULL || sc == NULL || json_object_set_new(o, "name", json_string(name)) != 0 ||
        json_object_set_new(o, "role", json_string(tdm_role_name(role))) != 0 ||
        json_object_set_new(o, "scope", sc) != 0) {
        json_decref(o);
        return fail(err, TDM_ENOMEM, "out of memory");
    }
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (body == NULL)
        return fail(err, TDM_ENOMEM, "out of memory");
    int rc = http_call(c, "POST", "/v1/tokens", "application/json", body, strlen(body), NULL, json,
                       NULL, err);
    free(body);
    return rc;
}

int cli_client_token_list(cli_client *c, char **json, tdm_error *err)
{
    if (c->engine != NULL)
        return tdm_engine_token_list(c->engine, json, err);
    return http_call(c, "GET", "/v1/tokens", NULL, NULL, 0, NULL, json, NULL, err);
}

int cli_client_token_revoke(cli_client *c, const char *id, char **json, tdm_error *err)
{
    if (c->engine != NULL)
        return tdm_engine_token_revoke(c->engine, id, c->actor ? c->actor : "tandem token", json,
                                       err);
    char *esc = curl_easy_escape(c->curl, id, 0), *path = NULL;
    if (esc == NULL || asprintf(&path, "/v1/tokens/%s", esc) < 0) {
        curl_free(esc);
        return fail(err, TDM_ENOMEM, "out of memory");
    }
    curl_free(esc);
    int rc = http_call(c, "DELETE", path, NULL, "", 0, NULL, json, NULL, err);
    free(path);
    return rc;
}

/* ---- fairness ---------------------------------------------------------------------------- */

/* Appends "?name=VALUE" or "&name=VALUE" (VALUE escaped) to *path, which is malloc'd and
 * replaced. */
static int add_query(cli_client *c, char **path, const char *name, const char *value,
                     tdm_error *err)
{
    char *esc = curl_easy_escape(c->curl, value, 0), *longer = NULL;
    if (esc == NULL ||
        asprintf(&longer, "%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', name, esc) < 0) {
        curl_free(esc);
        return fail(err, TDM_ENOMEM, "out of memory");
    }
    curl_free(esc);
    free(*path);
    *path = longer;
    return 0;
}

int cli_client_fairness(cli_client *c, const char *process, const char *step, const char *group,
                        const double *bins, size_t n_bins, char **json, tdm_error *err)
{
    if (c->engine != NULL) {
        char *text = NULL;
        int rc = tdm_engine_fairness(c->engine, process, step, group, bins, n_bins, &text, err);
        return rc != 0 ? rc : take_answer(text, text ? strlen(text) : 0, json, err);
    }
    if (n_bins > TDM_FAIRNESS_MAX_BINS)
        return fail(err, TDM_EINVAL, "bins: %zu edges; at most %d", n_bins, TDM_FAIRNESS_MAX_BINS);
    /* The edges go as numbers that read back exactly: 25 as "25", 0.1 as "0.1". */
    char edges[TDM_FAIRNESS_MAX_BINS * 26 + 1] = "";
    size_t used = 0;
    for (size_t i = 0; i < n_bins; i++) {
        char num[32];
        snprintf(num, sizeof num, "%.15g", bins[i]);
        if (strtod(num, NULL) != bins[i])
            snprintf(num, sizeof num, "%.17g", bins[i]);
        used += (size_t)snprintf(edges + used, sizeof edges - used, "%s%s", i ? "," : "", num);
    }
    char *path = NULL;
    int rc = process_path(c, process, "/fairness", &path, err);
    if (rc == 0)
        rc = add_query(c, &path, "group", group, err);
    if (rc == 0 && n_bins > 0)
        rc = add_query(c, &path, "bins", edges, err);
    if (rc == 0 && step != NULL)
        rc = add_query(c, &path, "step", step, err);
    if (rc == 0)
        rc = http_call(c, "GET", path, NULL, NULL, 0, NULL, json, NULL, err);
    free(path);
    return rc;
}

/* ---- files ------------------------------------------------------------------------------- */

int cli_read_file(const char *path, size_t max, char **data, size_t *len)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    const char *name = is_stdin ? "standard input" : path;
    *data = NULL;
    *len = 0;
    if (f == NULL) {
        cli_error("%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    size_t n = 0, alloc = 0;
    char *buf = NULL;
    for (;;) {
        if (n + 65536 + 1 > alloc) {
            size_t want = alloc ? alloc * 2 : 65536 * 2;
            char *b = realloc(buf, want);
            if (b == NULL) {
                cli_error("%s: out of memory", name);
                goto bad;
            }
            buf = b;
            alloc = want;
        }
        size_t got = fread(buf + n, 1, 65536, f);
        n += got;
        if (n > max) {
            cli_error("%s: larger than %zu MiB", name, max >> 20);
            goto bad;
        }
        if (got < 65536) {
            if (ferror(f)) {
                cli_error("%s: cannot read: %s", name, strerror(errno));
                goto bad;
            }
            break;
        }
    }
    buf[n] = '\0';
    if (!is_stdin)
        fclose(f);
    *data = buf;
    *len = n;
    return 0;
bad:
    free(buf);
    if (!is_stdin)
        fclose(f);
    return -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

tdm_table_format cli_guess_format(const char *path, const char *data, size_t len)
{
    if (ends_with(path, ".csv"))
        return TDM_FORMAT_CSV;
    if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") || ends_with(path, ".json"))
        return TDM_FORMAT_JSONL;
    size_t i = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    return i < len && data[i] == '{' ? TDM_FORMAT_JSONL : TDM_FORMAT_CSV;
}

/* ---- for commands that make their own calls (webhook.c) ---------------------------------- */

tdm_engine *cli_client_engine(cli_client *c)
{
    return c->engine;
}

int cli_client_take(char *text, char **json, tdm_error *err)
{
    return take_answer(text, text != NULL ? strlen(text) : 0, json, err);
}

char *cli_client_escape(cli_client *c, const char *s)
{
    char *esc = c->curl != NULL ? curl_easy_escape(c->curl, s, 0) : NULL;
    char *copy = esc != NULL ? strdup(esc) : NULL;
    curl_free(esc);
    return copy;
}

int cli_client_request(cli_client *c, const char *method, const char *path, const char *body,
                       char **json, tdm_error *err)
{
    if (c->curl == NULL)
        return fail(err, TDM_EINVAL, "%s %s: only through a server (--url)", method, path);
    return http_call(c, method, path, body != NULL ? "application/json" : NULL,
                     body != NULL ? body : "", body != NULL ? strlen(body) : 0, NULL, json, NULL,
                     err);
}
