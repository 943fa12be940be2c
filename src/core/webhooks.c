/*
 * webhooks.c — signed webhooks: subscriptions per process, a delivery row for every event a
 * subscription asks for, and the delivery thread that posts them, signed, with retries,
 * exponential backoff and a dead-letter list that can be replayed.
 *
 * NOTES ON THE DESIGN OF WEBHOOKS
 *
 * Nothing lost. The events webhooks carry (task.created, decision.made, sla.breached,
 * automation.paused) all happen inside writer jobs, where tdm__tx_announce() appends the
 * event's audit entry and, in the same transaction, one row in `deliveries` per subscription
 * that wants it. An acknowledged event therefore always has its delivery rows, and no row is
 * ever written for an event that was rolled back. A delivery's state lives only in its row:
 * pending (next_at: when the next attempt is due), delivered, dead (its attempts used up:
 * the dead-letter list) or cancelled (its webhook was deleted). After a crash or a restart
 * the pending rows go out at their next_at. An attempt in flight when the server dies is
 * made again with the same webhook-id (the row's id), so receivers deduplicate on it:
 * delivery is at least once, never silently zero times.
 *
 * No cost without subscriptions. Which processes have subscriptions to what is kept in
 * memory (struct tdm__webhooks, `subs`), read and changed on the writer thread only, so
 * without a lock: loaded from the store before the first event, and forgotten (read again
 * before the next event) when a job creates or deletes a subscription, when such a job
 * fails, and when another process wrote to the database (writer.c's follow_others; that is
 * how `tandem webhook create --db` beside a running server counts). With no subscription,
 * announcing an event costs one comparison more than auditing it.
 *
 * Delivering. tdm_engine_webhooks_start() starts one thread (tandem serve does; an engine
 * that only a command line opens never delivers, and its rows wait for the next server). It
 * reads the due rows on a read connection, posts up to `concurrency` of them at once with
 * libcurl's multi interface, each within `timeout_ms`, and records the outcomes in one
 * writer job: it never writes on a connection of its own. A commit that wrote a delivery
 * wakes it (an effect), so a delivery leaves within milliseconds of its event; otherwise it
 * sleeps until the next due row, the next SLA sweep or stop. Deliveries of one webhook may
 * arrive out of order (they go out concurrently, and retries come later).
 *
 * Signing, as Standard Webhooks (standardwebhooks.com) says. The body is {"type": EVENT,
 * "timestamp": ISO 8601, "data": {...}}, stored with the row and sent byte for byte the same
 * on every attempt. Headers: webhook-id (the row's id), webhook-timestamp (the attempt's
 * Unix seconds) and webhook-signature: "v1," and the base64 of HMAC-SHA256 over
 * "{webhook-id}.{webhook-timestamp}.{body}", keyed with the base64-decoded part of the
 * secret after "whsec_". The secret is kept in the store as given out, since signing needs
 * it (docs/security.md).
 *
 * Retries. After failed attempt n the next is due after retry_base_ms times 1, 6, 24, 120,
 * 360, 720, then 1440 (with the default 5 s: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, then
 * every 2 h), plus up to 10% jitter from a seeded generator, so that receivers coming back
 * up are not all hit at once; after max_attempts failed attempts the row is dead. A 2xx
 * answer is a delivery; anything else (another status, no answer in time, a refused
 * connection) is a failed attempt, recorded with its status or libcurl's error, never with
 * the answer's body. Redirects are not followed. A replay makes a row pending again, due
 * at once, with its attempts back at 0.
 *
 * SLA. Every sweep_ms the thread looks (a read of the partial index tasks_sla) for tasks
 * not done whose due time has passed and whose passing was not announced
 * (tasks.sla_notified = 0); when there are, one writer job marks up to SLA_BATCH of them
 * and announces task.sla_breached for each: the audit entry, and the webhook event
 * sla.breached.
 *
 * Retention. Delivered and cancelled rows older than keep_days are deleted, a few thousand
 * at a time, once a minute; dead rows stay until they are replayed or their webhook is
 * deleted and pruned.
 */
#define _GNU_SOURCE /* pthread_setname_np */

#include <curl/curl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine_int.h"

#define SECRET_PREFIX "whsec_"
#define SECRET_BYTES  32
#define SECRET_CAP                                                                                 \
    (sizeof SECRET_PREFIX - 1 +                                                                    \
     sodium_base64_ENCODED_LEN(SECRET_BYTES, sodium_base64_VARIANT_ORIGINAL))
#define SIGNATURE_CAP                                                                              \
    (3 + sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES, sodium_base64_VARIANT_ORIGINAL))
#define KEY_MAX        128   /* bytes of a decoded secret */
#define LIST_MAX       1000  /* deliveries in one listing, replayed ids in one answer */
#define SLA_BATCH      500   /* tasks one SLA job announces */
#define PRUNE_EVERY_MS 60000 /* how often old rows are deleted */
#define PRUNE_BATCH    5000  /* rows one prune deletes at most, per state */
#define ERROR_MAX      320

/* ------------------------------------------------------------------------------------------ */
/* Events and states                                                                          */
/* ------------------------------------------------------------------------------------------ */

enum {
    EV_TASK_CREATED = 1,
    EV_DECISION_MADE = 2,
    EV_SLA_BREACHED = 4,
    EV_AUTOMATION_PAUSED = 8,
};

static const struct event_kind {
    const char *name;  /* the webhook event */
    const char *audit; /* the audit event behind it */
    unsigned bit;
    const char *key; /* what the audit entry's subject is called in the payload's data */
} kinds[] = {
    {"task.created", "task.created", EV_TASK_CREATED, "task_id"},
    {"decision.made", "decision.made", EV_DECISION_MADE, "decision_id"},
    {"sla.breached", "task.sla_breached", EV_SLA_BREACHED, "task_id"},
    {"automation.paused", "automation.paused", EV_AUTOMATION_PAUSED, "step"},
};

#define N_KINDS     (sizeof kinds / sizeof kinds[0])
#define EVENT_NAMES "task.created, decision.made, sla.breached or automation.paused"

static const char *const states[] = {"pending", "delivered", "dead", "cancelled"};

#define N_STATES (sizeof states / sizeof states[0])

static const struct event_kind *kind_named(const char *name)
{
    for (size_t i = 0; i < N_KINDS; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

static const struct event_kind *kind_audited(const char *audit)
{
    for (size_t i = 0; i < N_KINDS; i++)
        if (strcmp(kinds[i].audit, audit) == 0)
            return &kinds[i];
    return NULL;
}

/* The events of a stored list (JSON text) as bits; unknown names count for nothing. */
static unsigned events_mask(const char *text)
{
    json_t *list = text ? json_loads(text, 0, NULL) : NULL;
    unsigned mask = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const struct event_kind *k = json_is_string(v) ? kind_named(json_string_value(v)) : NULL;
        if (k != NULL)
            mask |= k->bit;
    }
    json_decref(list);
    return mask;
}

/* ------------------------------------------------------------------------------------------ */
/* The engine's part                                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct sub {
    char id[32];
    char *process;
    unsigned events;
} sub;

struct tdm__webhooks {
    /* The writer thread's alone (see the notes): */
    int loaded; /* subs is what the store holds */
    sub *subs;
    size_t n_subs;
    /* The delivery thread: its flags under `lock`. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started, stop, kicked;
    pthread_t thread;
    tdm_webhook_opts opts;
    tdm__rng rng; /* jitter; the delivery thread's */
};

static void subs_clear(struct tdm__webhooks *w)
{
    for (size_t i = 0; i < w->n_subs; i++)
        free(w->subs[i].process);
    free(w->subs);
    w->subs = NULL;
    w->n_subs = 0;
    w->loaded = 0;
}

int tdm__webhooks_init(tdm_engine *e, tdm_error *err)
{
    struct tdm__webhooks *w = calloc(1, sizeof *w);
    if (w == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    e->webhooks = w;
    return 0;
}

void tdm__webhooks_free(tdm_engine *e)
{
    struct tdm__webhooks *w = e->webhooks;
    if (w == NULL)
        return;
    TDM_ASSERT(!w->started);
    subs_clear(w);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
    e->webhooks = NULL;
}

void tdm__webhooks_forget(tdm_engine *e)
{
    if (e->webhooks != NULL)
        e->webhooks->loaded = 0;
}

/* An effect's drop: forgets the subscriptions after a job that changed them, committed or
 * not. */
static void forget_drop(void *arg)
{
    tdm__webhooks_forget(arg);
}

static void kick(struct tdm__webhooks *w)
{
    pthread_mutex_lock(&w->lock);
    w->kicked = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* An effect: a delivery was committed; the delivery thread (if any) sends it now. */
static void kick_apply(tdm__tx *tx, void *arg)
{
    (void)arg;
    kick(tx->e->webhooks);
}

/* Reads the subscriptions in force, in the running transaction. */
static int subs_load(tdm__tx *tx, struct tdm__webhooks *w, tdm_error *err)
{
    subs_clear(w);
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(
        tx->db, "SELECT id, process, events FROM webhooks WHERE deleted_at IS NULL", &st, err);
    if (rc != 0)
        return rc;
    size_t cap = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (w->n_subs == cap) {
            size_t more = cap ? cap * 2 : 8;
            sub *grown = realloc(w->subs, more * sizeof *grown);
            if (grown == NULL)
                break;
            w->subs = grown;
            cap = more;
        }
        sub *s = &w->subs[w->n_subs];
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *process = (const char *)sqlite3_column_text(st, 1);
        snprintf(s->id, sizeof s->id, "%s", id ? id : "");
        s->process = strdup(process ? process : "");
        s->events = events_mask((const char *)sqlite3_column_text(st, 2));
        if (s->process == NULL)
            break;
        w->n_subs++;
    }
    sqlite3_finalize(st);
    if (step == SQLITE_ROW) {
        subs_clear(w);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    if (step != SQLITE_DONE) {
        subs_clear(w);
        return tdm__db_error(tx->db, step, err, "reading the webhooks");
    }
    w->loaded = 1;
    return 0;
}

/* The body of a delivery: {"type", "timestamp", "data"}, the data being the audit entry's
 * with the process, the subject (under k->key), the actor and the entry's number added.
 * NULL when out of memory; free() it. */
static char *make_payload(tdm__tx *tx, const struct event_kind *k, const char *process,
                          const char *actor, const char *subject, json_t *data)
{
    const char *value = subject;
    size_t pl = strlen(process);
    if (k->bit == EV_AUTOMATION_PAUSED && strncmp(subject, process, pl) == 0 && subject[pl] == '/')
        value = subject + pl + 1; /* "process/step" */
    json_t *d = json_pack("{s:s, s:s, s:s, s:I}", "process", process, k->key, value, "actor",
                          actor ? actor : "api", "audit_seq", (json_int_t)(tx->audit->seq + 1));
    if (d != NULL && data != NULL && json_object_update_missing(d, data) != 0) {
        json_decref(d);
        d = NULL;
    }
    json_t *body = d ? json_pack("{s:s, s:o, s:o}", "type", k->name, "timestamp",
                                 tdm__json_time(tx->now), "data", d)
                     : NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(body);
    return text;
}

/* Writes the deliveries of one event for every subscription that wants it. */
static int write_deliveries(tdm__tx *tx, struct tdm__webhooks *w, const struct event_kind *k,
                            const char *process, const char *actor, const char *subject,
                            json_t *data, tdm_error *err)
{
    int rc = w->loaded ? 0 : subs_load(tx, w, err);
    char *payload = NULL;
    int wrote = 0;
    for (size_t i = 0; rc == 0 && i < w->n_subs; i++) {
        const sub *s = &w->subs[i];
        if ((s->events & k->bit) == 0 || strcmp(s->process, process) != 0)
            continue;
        if (payload == NULL &&
            (payload = make_payload(tx, k, process, actor, subject, data)) == NULL) {
            rc = tdm__error_code(err, TDM_ENOMEM);
            break;
        }
        sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                     "INSERT INTO deliveries (id, webhook_id, event, payload, "
                                     "state, attempts, next_at, created_at) VALUES (?, ?, ?, ?, "
                                     "'pending', 0, ?6, ?6)",
                                     err);
        if (st == NULL) {
            rc = err->code;
            break;
        }
        char id[32];
        tdm__new_id("msg", id);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, k->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, payload, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, tx->now);
        int step = sqlite3_step(st);
        sqlite3_reset(st);
        if (step != SQLITE_DONE)
            rc = tdm__db_error(tx->db, step, err, "storing a webhook delivery");
        wrote = 1;
    }
    free(payload);
    if (rc == 0 && wrote)
        rc = tdm__tx_effect(tx, kick_apply, NULL, NULL);
    return rc;
}

int tdm__tx_announce(tdm__tx *tx, const char *process, const char *actor, const char *event,
                     const char *subject, json_t *data, tdm_error *err)
{
    struct tdm__webhooks *w = tx->e->webhooks;
    if (w != NULL && !(w->loaded && w->n_subs == 0) && process != NULL) {
        const struct event_kind *k = kind_audited(event);
        int rc = k ? write_deliveries(tx, w, k, process, actor, subject, data, err) : 0;
        if (rc != 0) {
            json_decref(data);
            return rc;
        }
    }
    return tdm__tx_audit(tx, actor, event, subject, data, err);
}

int tdm__tx_announce_text(tdm__tx *tx, const char *process, const char *actor, const char *event,
                          const char *subject, const char *data, tdm_error *err)
{
    struct tdm__webhooks *w = tx->e->webhooks;
    if (w != NULL && !(w->loaded && w->n_subs == 0) && process != NULL) {
        const struct event_kind *k = kind_audited(event);
        if (k != NULL) {
            json_t *obj = json_loads(data ? data : "{}", 0, NULL);
            if (obj == NULL)
                return tdm__error_code(err, TDM_ENOMEM); /* our own text: only memory fails */
            int rc = write_deliveries(tx, w, k, process, actor, subject, obj, err);
            json_decref(obj);
            if (rc != 0)
                return rc;
        }
    }
    return tdm__tx_audit_text(tx, actor, event, subject, data, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Checking a subscription                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const char create_example[] =
    "{\"url\": \"https://example.com/hooks/tandem\", \"events\": [\"task.created\", "
    "\"decision.made\"]}";

/* A receiver's URL: http or https, with a host, without credentials or blanks. */
static int check_url(const char *url, tdm_error *err)
{
    size_t n = strlen(url);
    if (n == 0 || n > TDM_WEBHOOK_URL_MAX)
        return tdm__error_field(
            err, TDM_EINVAL, "url",
            "url: %s (a receiver's http:// or https:// URL of at most %d bytes, "
            "like https://example.com/hooks/tandem)",
            n == 0 ? "empty" : "too long", TDM_WEBHOOK_URL_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f)
            return tdm__error_field(err, TDM_EINVAL, "url",
                                    "url: a blank or control character at offset %zu (percent-"
                                    "encode it, like %%20)",
                                    i);
    }
    CURLU *h = curl_url();
    if (h == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    int rc = 0;
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
    CURLUcode uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        rc = tdm__error_field(err, TDM_EINVAL, "url",
                              "url \"%.200s\": %s (expected an http:// or https:// URL, like "
                              "https://example.com/hooks/tandem)",
                              url, curl_url_strerror(uc));
    } else if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        rc = tdm__error_field(err, TDM_EINVAL, "url",
                              "url \"%.200s\": the scheme is \"%.32s\"; tandem delivers over "
                              "http:// and https:// only",
                              url, scheme ? scheme : "");
    } else if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        rc = tdm__error_field(err, TDM_EINVAL, "url", "url \"%.200s\": no host", url);
    } else if (curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK ||
               curl_url_get(h, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        rc = tdm__error_field(err, TDM_EINVAL, "url",
                              "url: leave credentials out of the URL (it is listed and audited); "
                              "receivers authenticate tandem by the webhook-signature header");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(h);
    return rc;
}

/* The events asked for: a non-empty array of known names, each once. */
static int check_events(json_t *v, tdm_error *err)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return tdm__error_field(err, TDM_EINVAL, "events",
                                "events: expected a non-empty array of event names (" EVENT_NAMES
                                ")");
    unsigned seen = 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        const struct event_kind *k = json_is_string(x) ? kind_named(json_string_value(x)) : NULL;
        if (k == NULL)
            return tdm__error_field(err, TDM_EINVAL, "events",
                                    "events[%zu]: %s%.64s%s is not an event (expected " EVENT_NAMES
                                    ")",
                                    i, json_is_string(x) ? "\"" : "",
                                    json_is_string(x) ? json_string_value(x) : "a non-string",
                                    json_is_string(x) ? "\"" : "");
        if (seen & k->bit)
            return tdm__error_field(err, TDM_EINVAL, "events",
                                    "events[%zu]: \"%s\" is listed twice", i, k->name);
        seen |= k->bit;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Rows as JSON                                                                               */
/* ------------------------------------------------------------------------------------------ */

static const char *text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static json_t *time_or_null(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : tdm__json_time(sqlite3_column_int64(st, i));
}

static json_t *events_json(const char *text_)
{
    json_t *v = json_loads(text_, 0, NULL);
    if (json_is_array(v))
        return v;
    json_decref(v);
    return json_array();
}

#define WEBHOOK_COLUMNS "id, process, url, events, created_at, created_by"

/* A webhook row (WEBHOOK_COLUMNS first) as listed; pending and dead are added by the list. */
static json_t *webhook_json(sqlite3_stmt *st)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s}", "id", text(st, 0), "process", text(st, 1),
                     "url", text(st, 2), "events", events_json(text(st, 3)), "created_at",
                     tdm__json_time(sqlite3_column_int64(st, 4)), "created_by", text(st, 5));
}

#define DELIVERY_COLUMNS                                                                           \
    "id, webhook_id, event, state, attempts, next_at, last_status, last_error, created_at, "       \
    "delivered_at, payload, rowid"

static json_t *delivery_json(sqlite3_stmt *st)
{
    int pending = strcmp(text(st, 3), "pending") == 0;
    json_t *payload = json_loads(text(st, 10), 0, NULL);
    if (payload == NULL)
        payload = json_string(text(st, 10));
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "id", text(st, 0), "webhook_id",
        text(st, 1), "event", text(st, 2), "state", text(st, 3), "attempts",
        (json_int_t)sqlite3_column_int64(st, 4), "next_at",
        pending ? time_or_null(st, 5) : json_null(), "last_status",
        sqlite3_column_type(st, 6) == SQLITE_NULL ? json_null()
                                                  : json_integer(sqlite3_column_int64(st, 6)),
        "last_error",
        sqlite3_column_type(st, 7) == SQLITE_NULL ? json_null() : json_string(text(st, 7)),
        "created_at", tdm__json_time(sqlite3_column_int64(st, 8)), "delivered_at",
        time_or_null(st, 9), "payload", payload ? payload : json_null());
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Creating                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct create_ctx {
    const char *id, *process, *url, *events_text, *secret, *actor;
    json_t *events; /* borrowed */
    int64_t created_at;
} create_ctx;

static int create_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    create_ctx *c = job->ctx;
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(
        tx->db, "SELECT count(*) FROM webhooks WHERE process = ? AND deleted_at IS NULL", &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, c->process, -1, SQLITE_STATIC);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (n >= TDM_WEBHOOKS_PER_PROCESS)
        return tdm__error(err, TDM_ECONFLICT,
                          "process %s has %d webhooks already, the most it may have; delete one "
                          "first (tandem webhook list, tandem webhook delete)",
                          c->process, TDM_WEBHOOKS_PER_PROCESS);
    rc = tdm__db_prepare(tx->db,
                         "INSERT INTO webhooks (id, process, url, events, secret, created_at, "
                         "created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->events_text, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, c->secret, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, tx->now);
    sqlite3_bind_text(st, 7, c->actor, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return tdm__db_error(tx->db, step, err, "storing a webhook");
    tdm__webhooks_forget(tx->e);
    if ((rc = tdm__tx_effect(tx, NULL, forget_drop, tx->e)) != 0)
        return tdm__error_code(err, rc);
    c->created_at = tx->now;
    return tdm__tx_audit(
        tx, c->actor, "webhook.created", c->id,
        json_pack("{s:s, s:s, s:O}", "process", c->process, "url", c->url, "events", c->events),
        err);
}

int tdm_engine_webhook_create(tdm_engine *e, const char *process, const char *body, size_t len,
                              const char *actor, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || process == NULL || json == NULL || (body == NULL && len > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_webhook_create: missing argument");
    *json = NULL;
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    proc_state *ps;
    int rc = tdm__proc_get(e, process, &ps, err);
    if (rc != 0)
        return rc;
    tdm__proc_put(e, ps);

    json_error_t je;
    json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return tdm__error(err, TDM_EPARSE, "request body: line %d, column %d: %s (send %s)",
                          je.line, je.column, je.text, create_example);
    const char *url = NULL;
    json_t *events = NULL;
    const char *key;
    json_t *v;
    if (!json_is_object(o)) {
        json_decref(o);
        return tdm__error(err, TDM_EPARSE, "request body: expected a JSON object such as %s",
                          create_example);
    }
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "url") == 0 && json_is_string(v)) {
            url = json_string_value(v);
        } else if (strcmp(key, "url") == 0) {
            rc = tdm__error_field(err, TDM_EINVAL, "url", "url: expected a string");
        } else if (strcmp(key, "events") == 0) {
            events = v;
        } else {
            rc = tdm__error_field(err, TDM_EINVAL, key,
                                  "request body: unknown key \"%.64s\" (expected url and events)",
                                  key);
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && (url == NULL || events == NULL))
        rc = tdm__error_field(err, TDM_EINVAL, url == NULL ? "url" : "events",
                              "request body: %s is missing (send %s)",
                              url == NULL ? "url" : "events", create_example);
    if (rc == 0)
        rc = check_url(url, err);
    if (rc == 0)
        rc = check_events(events, err);
    if (rc != 0) {
        json_decref(o);
        return rc;
    }

    unsigned char raw[SECRET_BYTES];
    char secret[SECRET_CAP];
    randombytes_buf(raw, sizeof raw);
    memcpy(secret, SECRET_PREFIX, sizeof SECRET_PREFIX - 1);
    sodium_bin2base64(secret + sizeof SECRET_PREFIX - 1, sizeof secret - (sizeof SECRET_PREFIX - 1),
                      raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(raw, sizeof raw);
    char id[32];
    tdm__new_id("whk", id);
    char *events_text = json_dumps(events, JSON_COMPACT);
    create_ctx c = {id, process, url, events_text, secret, actor ? actor : "api", events, 0};
    if (events_text == NULL) {
        rc = tdm__error_code(err, TDM_ENOMEM);
    } else {
        tdm__job job = {0};
        job.run = create_run;
        job.ctx = &c;
        rc = tdm__writer_run(e->writer, &job, err);
    }
    json_t *answer = NULL;
    if (rc == 0)
        answer = json_pack("{s:s, s:s, s:s, s:O, s:s, s:o, s:s}", "id", id, "process", process,
                           "url", url, "events", events, "secret", secret, "created_at",
                           tdm__json_time(c.created_at), "created_by", c.actor);
    free(events_text);
    json_decref(o);
    sodium_memzero(secret, sizeof secret);
    if (rc != 0)
        return rc;
    return tdm__answer(answer, json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Listing, finding, deleting                                                                 */
/* ------------------------------------------------------------------------------------------ */

int tdm_engine_webhook_list(tdm_engine *e, const char *process, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || process == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_webhook_list: missing argument");
    *json = NULL;
    proc_state *ps;
    int rc = tdm__proc_get(e, process, &ps, err);
    if (rc != 0)
        return rc;
    tdm__proc_put(e, ps);
    sqlite3 *db;
    if ((rc = tdm__reader_get(e, &db, err)) != 0)
        return rc;
    sqlite3_stmt *st;
    json_t *list = json_array();
    rc = tdm__db_prepare(db,
                         "SELECT " WEBHOOK_COLUMNS ", (SELECT count(*) FROM deliveries d WHERE "
                         "d.webhook_id = w.id AND d.state = 'pending'), (SELECT count(*) FROM "
                         "deliveries d WHERE d.webhook_id = w.id AND d.state = 'dead') FROM "
                         "webhooks w WHERE process = ? AND deleted_at IS NULL ORDER BY "
                         "created_at, rowid",
                         &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *w = webhook_json(st);
            json_object_set_new(w, "pending", json_integer(sqlite3_column_int64(st, 6)));
            json_object_set_new(w, "dead", json_integer(sqlite3_column_int64(st, 7)));
            json_array_append_new(list, w);
        }
        if (step != SQLITE_DONE)
            rc = tdm__db_error(db, step, err, "listing webhooks");
        sqlite3_finalize(st);
    }
    tdm__reader_put(e, db);
    if (rc != 0) {
        json_decref(list);
        return rc;
    }
    return tdm__answer(json_pack("{s:o}", "webhooks", list), json, NULL, err);
}

static int not_found(tdm_error *err, const char *id)
{
    return tdm__error_field(err, TDM_ENOTFOUND, "id",
                            "no webhook \"%.64s\" (it may have been deleted; see tandem webhook "
                            "list)",
                            id);
}

int tdm_engine_webhook_process(tdm_engine *e, const char *id, char process[TDM_SCOPE_NAME_MAX + 1],
                               tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || id == NULL || process == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_webhook_process: missing argument");
    process[0] = '\0';
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    rc = tdm__db_kept(db, "SELECT process FROM webhooks WHERE id = ? AND deleted_at IS NULL", &st,
                      err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            snprintf(process, TDM_SCOPE_NAME_MAX + 1, "%s", text(st, 0));
        else if (step == SQLITE_DONE)
            rc = not_found(err, id);
        else
            rc = tdm__db_error(db, step, err, "looking up a webhook");
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    tdm__reader_put(e, db);
    return rc;
}

typedef struct delete_ctx {
    const char *id, *actor;
    json_t *row; /* out */
} delete_ctx;

/* Runs `sql`, an UPDATE whose ?1 is the transaction's time and ?2 an id. `what` names it in
 * an error. Returns 0 or an error (err set); sqlite3_changes64() says how many rows. */
static int update_at(tdm__tx *tx, const char *sql, const char *id, const char *what, tdm_error *err)
{
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(tx->db, sql, &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, tx->now);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : tdm__db_error(tx->db, step, err, what);
}

static int delete_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    delete_ctx *c = job->ctx;
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(tx->db,
                             "SELECT " WEBHOOK_COLUMNS " FROM webhooks WHERE id = ? AND "
                             "deleted_at IS NULL",
                             &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        c->row = webhook_json(st);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW)
        return step == SQLITE_DONE ? not_found(err, c->id)
                                   : tdm__db_error(tx->db, step, err, "reading a webhook");
    if (c->row == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    if ((rc = update_at(tx, "UPDATE webhooks SET deleted_at = ?1 WHERE id = ?2", c->id,
                        "deleting a webhook", err)) != 0 ||
        (rc = update_at(tx,
                        "UPDATE deliveries SET state = 'cancelled', next_at = ?1 WHERE "
                        "webhook_id = ?2 AND state IN ('pending', 'dead')",
                        c->id, "cancelling deliveries", err)) != 0)
        return rc;
    int64_t cancelled = sqlite3_changes64(tx->db);
    tdm__webhooks_forget(tx->e);
    if ((rc = tdm__tx_effect(tx, NULL, forget_drop, tx->e)) != 0)
        return tdm__error_code(err, rc);
    json_object_set_new(c->row, "deleted_at", tdm__json_time(tx->now));
    json_object_set_new(c->row, "cancelled", json_integer(cancelled));
    return tdm__tx_audit(tx, c->actor, "webhook.deleted", c->id,
                         json_pack("{s:O, s:O, s:I}", "process", json_object_get(c->row, "process"),
                                   "url", json_object_get(c->row, "url"), "cancelled",
                                   (json_int_t)cancelled),
                         err);
}

int tdm_engine_webhook_delete(tdm_engine *e, const char *id, const char *actor, char **json,
                              tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || id == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_webhook_delete: missing argument");
    *json = NULL;
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    delete_ctx c = {id, actor ? actor : "api", NULL};
    tdm__job job = {0};
    job.run = delete_run;
    job.ctx = &c;
    int rc = tdm__writer_run(e->writer, &job, err);
    if (rc != 0) {
        json_decref(c.row);
        return rc;
    }
    return tdm__answer(c.row, json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Deliveries: listing and replaying                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct listed {
    int64_t created_at, rowid;
    json_t *row;
} listed;

static int newest_first(const void *a, const void *b)
{
    const listed *x = a, *y = b;
    if (x->created_at != y->created_at)
        return x->created_at > y->created_at ? -1 : 1;
    return x->rowid > y->rowid ? -1 : x->rowid < y->rowid;
}

int tdm_engine_webhook_deliveries(tdm_engine *e, const char *id, const char *state, size_t limit,
                                  char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || id == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_webhook_deliveries: missing argument");
    *json = NULL;
    if (limit < 1 || limit > LIST_MAX)
        return tdm__error_field(err, TDM_EINVAL, "limit", "limit: expected 1 to %d, got %zu",
                                LIST_MAX, limit);
    size_t first = 0, last = N_STATES;
    if (state != NULL) {
        while (first < N_STATES && strcmp(states[first], state) != 0)
            first++;
        if (first == N_STATES)
            return tdm__error_field(err, TDM_EINVAL, "state",
                                    "state: expected pending, delivered, dead or cancelled, got "
                                    "\"%.64s\"",
                                    state);
        last = first + 1;
    }
    char process[TDM_SCOPE_NAME_MAX + 1];
    int rc = tdm_engine_webhook_process(e, id, process, err);
    if (rc != 0)
        return rc;
    sqlite3 *db;
    if ((rc = tdm__reader_get(e, &db, err)) != 0)
        return rc;
    /* Newest first within each state (the index deliveries_webhook), then merged: each state
     * gives at most `limit`, so the work is bounded by the limit, not by the table. */
    listed *rows = calloc(limit * (last - first), sizeof *rows);
    size_t n = 0;
    sqlite3_stmt *st = NULL;
    if (rows == NULL)
        rc = tdm__error_code(err, TDM_ENOMEM);
    else
        rc = tdm__db_prepare(db,
                             "SELECT " DELIVERY_COLUMNS " FROM deliveries WHERE webhook_id = ? "
                             "AND state = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                             &st, err);
    if (rc == 0 && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        rc = tdm__db_error(db, sqlite3_errcode(db), err, "reading deliveries");
    for (size_t s = first; rc == 0 && s < last; s++) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, states[s], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            rows[n].created_at = sqlite3_column_int64(st, 8);
            rows[n].rowid = sqlite3_column_int64(st, 11);
            rows[n].row = delivery_json(st);
            n++;
        }
        if (step != SQLITE_DONE)
            rc = tdm__db_error(db, step, err, "reading deliveries");
        sqlite3_reset(st);
    }
    if (st != NULL) {
        sqlite3_finalize(st);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    tdm__reader_put(e, db);
    json_t *list = rc == 0 ? json_array() : NULL;
    if (rows != NULL)
        qsort(rows, n, sizeof *rows, newest_first);
    for (size_t i = 0; i < n; i++) {
        if (list != NULL && i < limit)
            json_array_append(list, rows[i].row);
        json_decref(rows[i].row);
    }
    free(rows);
    if (rc != 0)
        return rc;
    return tdm__answer(json_pack("{s:o}", "deliveries", list), json, NULL, err);
}

typedef struct replay_ctx {
    const char *id, *delivery, *actor;
    int64_t replayed; /* out */
    json_t *ids;      /* out */
} replay_ctx;

static int replay_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    replay_ctx *c = job->ctx;
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(
        tx->db, "SELECT process FROM webhooks WHERE id = ? AND deleted_at IS NULL", &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW)
        return step == SQLITE_DONE ? not_found(err, c->id)
                                   : tdm__db_error(tx->db, step, err, "reading a webhook");
    c->ids = json_array();
    if (c->ids == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    const char *from = NULL;
    char was[16] = "";
    if (c->delivery != NULL) {
        rc = tdm__db_prepare(tx->db, "SELECT state FROM deliveries WHERE id = ? AND webhook_id = ?",
                             &st, err);
        if (rc != 0)
            return rc;
        sqlite3_bind_text(st, 1, c->delivery, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->id, -1, SQLITE_STATIC);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            snprintf(was, sizeof was, "%s", text(st, 0));
        sqlite3_finalize(st);
        if (step != SQLITE_ROW)
            return step == SQLITE_DONE
                       ? tdm__error_field(err, TDM_ENOTFOUND, "delivery",
                                          "webhook %.64s has no delivery \"%.64s\" (see tandem "
                                          "webhook deliveries)",
                                          c->id, c->delivery)
                       : tdm__db_error(tx->db, step, err, "reading a delivery");
        if (strcmp(was, "cancelled") == 0)
            return tdm__error_field(err, TDM_ECONFLICT, "delivery",
                                    "delivery %.64s was cancelled with its webhook", c->delivery);
        rc = update_at(tx,
                       "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?1, "
                       "delivered_at = NULL WHERE id = ?2",
                       c->delivery, "replaying deliveries", err);
        json_array_append_new(c->ids, json_string(c->delivery));
    } else {
        from = "dead";
        rc = tdm__db_prepare(tx->db,
                             "SELECT id FROM deliveries WHERE webhook_id = ? AND state = 'dead' "
                             "ORDER BY created_at DESC LIMIT ?",
                             &st, err);
        if (rc != 0)
            return rc;
        sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, LIST_MAX);
        while ((step = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(c->ids, json_string(text(st, 0)));
        sqlite3_finalize(st);
        if (step != SQLITE_DONE)
            return tdm__db_error(tx->db, step, err, "reading dead deliveries");
        rc = update_at(tx,
                       "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?1 "
                       "WHERE webhook_id = ?2 AND state = 'dead'",
                       c->id, "replaying deliveries", err);
    }
    if (rc != 0)
        return rc;
    c->replayed = sqlite3_changes64(tx->db);
    if (c->replayed == 0)
        return 0; /* nothing was dead: nothing changes, nothing is recorded */
    if ((rc = tdm__tx_effect(tx, kick_apply, NULL, NULL)) != 0)
        return tdm__error_code(err, rc);
    json_t *data =
        c->delivery != NULL
            ? json_pack("{s:s, s:s}", "delivery", c->delivery, "was", was)
            : json_pack("{s:s, s:I}", "state", from, "deliveries", (json_int_t)c->replayed);
    return tdm__tx_audit(tx, c->actor, "webhook.replayed", c->id, data, err);
}

int tdm_engine_webhook_replay(tdm_engine *e, const char *id, const char *delivery,
                              const char *actor, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || id == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_webhook_replay: missing argument");
    *json = NULL;
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    replay_ctx c = {id, delivery, actor ? actor : "api", 0, NULL};
    tdm__job job = {0};
    job.run = replay_run;
    job.ctx = &c;
    int rc = tdm__writer_run(e->writer, &job, err);
    if (rc != 0) {
        json_decref(c.ids);
        return rc;
    }
    return tdm__answer(json_pack("{s:s, s:I, s:o}", "webhook_id", id, "replayed",
                                 (json_int_t)c.replayed, "deliveries",
                                 c.ids ? c.ids : json_array()),
                       json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Signing                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/*
 * "v1," and the base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}", keyed with the bytes
 * the secret's base64 (after "whsec_") stands for. Returns 0, or -1 for a secret that does
 * not decode.
 */
int tdm__webhook_sign(const char *secret, const char *id, const char *timestamp, const char *body,
                      size_t len, char out[TDM__WEBHOOK_SIGNATURE_CAP])
{
    const char *b64 = secret;
    if (strncmp(b64, SECRET_PREFIX, sizeof SECRET_PREFIX - 1) == 0)
        b64 += sizeof SECRET_PREFIX - 1;
    unsigned char key[KEY_MAX], mac[crypto_auth_hmacsha256_BYTES];
    size_t key_len = 0;
    if (sodium_base642bin(key, sizeof key, b64, strlen(b64), NULL, &key_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        key_len == 0)
        return -1;
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)timestamp, strlen(timestamp));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "v1,", 3);
    sodium_bin2base64(out + 3, TDM__WEBHOOK_SIGNATURE_CAP - 3, mac, sizeof mac,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(key, sizeof key);
    sodium_memzero(&st, sizeof st);
    return 0;
}

_Static_assert(SIGNATURE_CAP <= TDM__WEBHOOK_SIGNATURE_CAP, "room for a signature");

/* ------------------------------------------------------------------------------------------ */
/* The delivery thread                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* One attempt at one delivery. */
typedef struct attempt {
    char id[32];
    int64_t attempts; /* made before this one */
    char *url, *secret, *payload;
    CURL *h;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    int finished;
    CURLcode result;
    long status;
} attempt;

static void attempt_release(attempt *a)
{
    if (a->h != NULL)
        curl_easy_cleanup(a->h);
    curl_slist_free_all(a->headers);
    free(a->url);
    if (a->secret != NULL)
        sodium_memzero(a->secret, strlen(a->secret));
    free(a->secret);
    free(a->payload);
    memset(a, 0, sizeof *a);
}

static int stopping(struct tdm__webhooks *w)
{
    pthread_mutex_lock(&w->lock);
    int stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

/* Reads up to `cap` deliveries due at `now`, oldest due first. Returns how many. */
static size_t due(tdm_engine *e, attempt *a, size_t cap, int64_t now)
{
    sqlite3 *db;
    if (tdm__reader_get(e, &db, NULL) != 0)
        return 0;
    sqlite3_stmt *st;
    size_t n = 0;
    if (tdm__db_kept(db,
                     "SELECT d.id, d.attempts, d.payload, w.url, w.secret FROM deliveries d "
                     "JOIN webhooks w ON w.id = d.webhook_id WHERE d.state = 'pending' AND "
                     "d.next_at <= ? AND w.deleted_at IS NULL ORDER BY d.next_at LIMIT ?",
                     &st, NULL) == 0) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)cap);
        while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
            attempt *x = &a[n];
            memset(x, 0, sizeof *x);
            snprintf(x->id, sizeof x->id, "%s", text(st, 0));
            x->attempts = sqlite3_column_int64(st, 1);
            x->payload = strdup(text(st, 2));
            x->url = strdup(text(st, 3));
            x->secret = strdup(text(st, 4));
            if (x->payload == NULL || x->url == NULL || x->secret == NULL) {
                attempt_release(x);
                break;
            }
            n++;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    tdm__reader_put(e, db);
    return n;
}

/* When the next pending delivery is due; 0 when none is. */
static int64_t next_due(tdm_engine *e)
{
    sqlite3 *db;
    if (tdm__reader_get(e, &db, NULL) != 0)
        return 0;
    sqlite3_stmt *st;
    int64_t at = 0;
    if (tdm__db_kept(db,
                     "SELECT next_at FROM deliveries WHERE state = 'pending' ORDER BY next_at "
                     "LIMIT 1",
                     &st, NULL) == 0) {
        if (sqlite3_step(st) == SQLITE_ROW)
            at = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    tdm__reader_put(e, db);
    return at;
}

/* Reads and drops an answer's body: only its status counts, and none of it is kept, so a
 * subscription cannot be used to read what another service answers (docs/security.md). */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static int add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *h = curl_slist_append(*list, line);
    if (h == NULL)
        return -1;
    *list = h;
    return 0;
}

/* Prepares a's request: the signed headers, the body, the limits. Returns 0 or -1 (errbuf
 * says why). */
static int prepare(struct tdm__webhooks *w, attempt *a)
{
    char timestamp[24], signature[TDM__WEBHOOK_SIGNATURE_CAP];
    char id_line[64], ts_line[64], sig_line[TDM__WEBHOOK_SIGNATURE_CAP + 32];
    snprintf(timestamp, sizeof timestamp, "%lld", (long long)time(NULL));
    if (tdm__webhook_sign(a->secret, a->id, timestamp, a->payload, strlen(a->payload), signature) !=
        0) {
        snprintf(a->errbuf, sizeof a->errbuf, "the webhook's secret does not decode");
        return -1;
    }
    snprintf(id_line, sizeof id_line, "webhook-id: %s", a->id);
    snprintf(ts_line, sizeof ts_line, "webhook-timestamp: %s", timestamp);
    snprintf(sig_line, sizeof sig_line, "webhook-signature: %s", signature);
    /* "Expect:" keeps libcurl from waiting for a 100-continue before a large body. */
    if (add_header(&a->headers, "Content-Type: application/json") != 0 ||
        add_header(&a->headers, "Expect:") != 0 || add_header(&a->headers, id_line) != 0 ||
        add_header(&a->headers, ts_line) != 0 || add_header(&a->headers, sig_line) != 0 ||
        (a->h = curl_easy_init()) == NULL) {
        snprintf(a->errbuf, sizeof a->errbuf, "out of memory");
        return -1;
    }
    long timeout = (long)w->opts.timeout_ms;
    curl_easy_setopt(a->h, CURLOPT_URL, a->url);
    curl_easy_setopt(a->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(a->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(a->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(a->h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(a->h, CURLOPT_USERAGENT, "tandem/" TDM_VERSION_STRING " (webhooks)");
    curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(a->h, CURLOPT_POST, 1L);
    curl_easy_setopt(a->h, CURLOPT_POSTFIELDS, a->payload);
    curl_easy_setopt(a->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(a->payload));
    curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(a->h, CURLOPT_ERRORBUFFER, a->errbuf);
    curl_easy_setopt(a->h, CURLOPT_PRIVATE, a);
    return 0;
}

/* Posts every attempt at once and waits for them all (or for stop). */
static void send_all(struct tdm__webhooks *w, attempt *a, size_t n)
{
    CURLM *m = curl_multi_init();
    for (size_t i = 0; i < n; i++) {
        a[i].result = CURLE_FAILED_INIT;
        if (prepare(w, &a[i]) != 0 || m == NULL || curl_multi_add_handle(m, a[i].h) != CURLM_OK)
            a[i].finished = 1; /* a failed attempt, with errbuf saying why */
    }
    int running = m != NULL;
    while (running > 0) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *p = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
            attempt *x = (attempt *)p;
            if (x == NULL)
                continue;
            x->finished = 1;
            x->result = msg->data.result;
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
        }
        if (running == 0 || stopping(w))
            break;
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (size_t i = 0; m != NULL && i < n; i++)
        if (a[i].h != NULL)
            curl_multi_remove_handle(m, a[i].h);
    curl_multi_cleanup(m);
}

/* The outcome of one finished attempt, for the writer. */
typedef struct outcome {
    char id[32];
    int ok;
    long status; /* 0: no answer */
    int64_t delay_ms;
    char error[ERROR_MAX];
} outcome;

typedef struct record_ctx {
    outcome *o;
    size_t n;
    unsigned max_attempts;
} record_ctx;

static int record_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    record_ctx *c = job->ctx;
    sqlite3_stmt *ok, *failed;
    int rc = tdm__db_prepare(tx->db,
                             "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, "
                             "last_status = ?1, last_error = NULL, delivered_at = ?2, next_at = ?2 "
                             "WHERE id = ?3 AND state = 'pending'",
                             &ok, err);
    if (rc != 0)
        return rc;
    rc = tdm__db_prepare(tx->db,
                         "UPDATE deliveries SET attempts = attempts + 1, last_status = ?1, "
                         "last_error = ?2, state = CASE WHEN attempts + 1 >= ?3 THEN 'dead' ELSE "
                         "'pending' END, next_at = CASE WHEN attempts + 1 >= ?3 THEN ?4 ELSE ?4 + "
                         "?5 END WHERE id = ?6 AND state = 'pending'",
                         &failed, err);
    if (rc != 0) {
        sqlite3_finalize(ok);
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < c->n; i++) {
        const outcome *o = &c->o[i];
        sqlite3_stmt *st = o->ok ? ok : failed;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (o->status > 0)
            sqlite3_bind_int64(st, 1, o->status);
        if (o->ok) {
            sqlite3_bind_int64(st, 2, tx->now);
            sqlite3_bind_text(st, 3, o->id, -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_text(st, 2, o->error, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, c->max_attempts);
            sqlite3_bind_int64(st, 4, tx->now);
            sqlite3_bind_int64(st, 5, o->delay_ms);
            sqlite3_bind_text(st, 6, o->id, -1, SQLITE_STATIC);
        }
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "recording a delivery");
    }
    sqlite3_finalize(ok);
    sqlite3_finalize(failed);
    return rc;
}

static const unsigned backoff[] = {1, 6, 24, 120, 360, 720, 1440};

/* The wait after failed attempt `n` (1, 2, ...), with jitter. */
static int64_t delay_after(struct tdm__webhooks *w, int64_t n)
{
    size_t i = n < 1 ? 0 : (size_t)(n - 1);
    if (i >= sizeof backoff / sizeof backoff[0])
        i = sizeof backoff / sizeof backoff[0] - 1;
    double d = (double)w->opts.retry_base_ms * backoff[i];
    return (int64_t)(d * (1 + 0.1 * tdm__rng_double(&w->rng)));
}

/* Keeps printable ASCII of `s`, other bytes as '?', so that last_error is always text. */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

/* Records the finished attempts in one writer job. */
static void record(tdm_engine *e, struct tdm__webhooks *w, attempt *a, size_t n)
{
    outcome *o = calloc(n, sizeof *o);
    if (o == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!a[i].finished)
            continue; /* abandoned at stop: it stays pending, and goes again */
        outcome *x = &o[k++];
        snprintf(x->id, sizeof x->id, "%s", a[i].id);
        x->status = a[i].result == CURLE_OK ? a[i].status : 0;
        x->ok = a[i].result == CURLE_OK && a[i].status >= 200 && a[i].status <= 299;
        if (x->ok)
            continue;
        x->delay_ms = delay_after(w, a[i].attempts + 1);
        if (a[i].result != CURLE_OK)
            snprintf(x->error, sizeof x->error, "%s",
                     a[i].errbuf[0] ? a[i].errbuf : curl_easy_strerror(a[i].result));
        else
            snprintf(x->error, sizeof x->error, "HTTP %ld", a[i].status);
        printable(x->error);
    }
    record_ctx c = {o, k, w->opts.max_attempts};
    tdm__job job = {0};
    job.run = record_run;
    job.ctx = &c;
    if (k > 0)
        tdm__writer_run(e->writer, &job, NULL);
    free(o);
}

/* ---- the SLA sweep ------------------------------------------------------------------------ */

typedef struct breach {
    char id[32];
    char *process;
    json_t *data;
} breach;

typedef struct sla_ctx {
    size_t announced; /* out */
} sla_ctx;

static int sla_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    sla_ctx *c = job->ctx;
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(tx->db,
                             "SELECT id, item_id, item_version, process, step, queue, state, "
                             "due_at, claimed_by FROM tasks WHERE sla_notified = 0 AND state <> "
                             "'done' AND due_at <= ? ORDER BY due_at LIMIT ?",
                             &st, err);
    if (rc != 0)
        return rc;
    breach *b = calloc(SLA_BATCH, sizeof *b);
    size_t n = 0;
    int step = SQLITE_DONE;
    if (b == NULL)
        rc = tdm__error_code(err, TDM_ENOMEM);
    sqlite3_bind_int64(st, 1, tx->now);
    sqlite3_bind_int(st, 2, SLA_BATCH);
    while (rc == 0 && n < SLA_BATCH && (step = sqlite3_step(st)) == SQLITE_ROW) {
        breach *x = &b[n];
        snprintf(x->id, sizeof x->id, "%s", text(st, 0));
        x->process = strdup(text(st, 3));
        x->data = json_pack("{s:s, s:I, s:s, s:s, s:s, s:o, s:o}", "item", text(st, 1),
                            "item_version", (json_int_t)sqlite3_column_int64(st, 2), "step",
                            text(st, 4), "queue", text(st, 5), "state", text(st, 6), "due_at",
                            tdm__json_time(sqlite3_column_int64(st, 7)), "claimed_by",
                            sqlite3_column_type(st, 8) == SQLITE_NULL ? json_null()
                                                                      : json_string(text(st, 8)));
        n++;
        if (x->process == NULL || x->data == NULL)
            rc = tdm__error_code(err, TDM_ENOMEM);
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = tdm__db_error(tx->db, step, err, "looking for tasks past their due time");
    sqlite3_finalize(st);
    sqlite3_stmt *mark = NULL;
    if (rc == 0)
        rc = tdm__db_prepare(tx->db, "UPDATE tasks SET sla_notified = 1 WHERE id = ?", &mark, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_reset(mark);
        sqlite3_bind_text(mark, 1, b[i].id, -1, SQLITE_STATIC);
        if (sqlite3_step(mark) != SQLITE_DONE) {
            rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "marking a task");
            break;
        }
        json_t *data = b[i].data;
        b[i].data = NULL;
        rc = tdm__tx_announce(tx, b[i].process, "tandem", "task.sla_breached", b[i].id, data, err);
    }
    sqlite3_finalize(mark);
    for (size_t i = 0; b != NULL && i < n; i++) {
        free(b[i].process);
        json_decref(b[i].data);
    }
    free(b);
    c->announced = rc == 0 ? n : 0;
    return rc;
}

/* Announces the tasks that passed their due time since the last sweep. */
static void sweep_sla(tdm_engine *e, int64_t now)
{
    sqlite3 *db;
    if (tdm__reader_get(e, &db, NULL) != 0)
        return;
    sqlite3_stmt *st;
    int any = 0;
    if (tdm__db_kept(db,
                     "SELECT 1 FROM tasks WHERE sla_notified = 0 AND state <> 'done' AND due_at "
                     "<= ? LIMIT 1",
                     &st, NULL) == 0) {
        sqlite3_bind_int64(st, 1, now);
        any = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    tdm__reader_put(e, db);
    for (int round = 0; any && round < 100; round++) {
        sla_ctx c = {0};
        tdm__job job = {0};
        job.run = sla_run;
        job.ctx = &c;
        if (tdm__writer_run(e->writer, &job, NULL) != 0 || c.announced < SLA_BATCH)
            break;
    }
}

/* ---- retention ---------------------------------------------------------------------------- */

typedef struct prune_ctx {
    int64_t before;
} prune_ctx;

static int prune_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    prune_ctx *c = job->ctx;
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(tx->db,
                             "DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries "
                             "WHERE state = ? AND next_at < ? LIMIT ?)",
                             &st, err);
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, i == 0 ? "delivered" : "cancelled", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, c->before);
        sqlite3_bind_int(st, 3, PRUNE_BATCH);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "deleting old deliveries");
    }
    sqlite3_finalize(st);
    return rc;
}

static void prune(tdm_engine *e, struct tdm__webhooks *w, int64_t now)
{
    prune_ctx c = {now - (int64_t)w->opts.keep_days * 86400000};
    tdm__job job = {0};
    job.run = prune_run;
    job.ctx = &c;
    tdm__writer_run(e->writer, &job, NULL);
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* Sleeps until `until` (epoch ms), a kick or stop. */
static void sleep_until(struct tdm__webhooks *w, int64_t until)
{
    struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000};
    pthread_mutex_lock(&w->lock);
    while (!w->kicked && !w->stop && tdm__now_ms() < until)
        if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) != 0)
            break;
    w->kicked = 0;
    pthread_mutex_unlock(&w->lock);
}

static void *deliver_main(void *arg)
{
    tdm_engine *e = arg;
    struct tdm__webhooks *w = e->webhooks;
    pthread_setname_np(pthread_self(), "tandem-webhooks");
    attempt *batch = calloc(w->opts.concurrency, sizeof *batch);
    int64_t next_sweep = 0, next_prune = 0;
    while (batch != NULL && !stopping(w)) {
        int64_t now = tdm__now_ms();
        if (now >= next_sweep) {
            sweep_sla(e, now);
            next_sweep = now + w->opts.sweep_ms;
        }
        if (w->opts.keep_days > 0 && now >= next_prune) {
            prune(e, w, now);
            next_prune = now + PRUNE_EVERY_MS;
        }
        size_t n = due(e, batch, w->opts.concurrency, now);
        if (n > 0) {
            send_all(w, batch, n);
            record(e, w, batch, n);
            for (size_t i = 0; i < n; i++)
                attempt_release(&batch[i]);
            continue;
        }
        int64_t wake = next_sweep, at = next_due(e);
        if (at > 0 && at < wake)
            wake = at;
        if (w->opts.keep_days > 0 && next_prune < wake)
            wake = next_prune;
        /* Nothing was due at `now`, so nothing is due before now: never spin. */
        if (wake <= now)
            wake = now + 10;
        sleep_until(w, wake);
    }
    free(batch);
    return NULL;
}

void tdm_webhook_opts_init(tdm_webhook_opts *opts)
{
    if (opts == NULL)
        return;
    *opts = (tdm_webhook_opts){.retry_base_ms = 5000,
                               .max_attempts = 8,
                               .timeout_ms = 10000,
                               .sweep_ms = 1000,
                               .keep_days = 7,
                               .concurrency = 16,
                               .seed = 0};
}

int tdm_engine_webhooks_start(tdm_engine *e, const tdm_webhook_opts *opts, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || opts == NULL || e->webhooks == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_webhooks_start: missing argument");
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only: it cannot deliver");
    static const struct {
        const char *name;
        size_t offset;
        unsigned lo, hi;
    } limits[] = {
        {"retry_base_ms", offsetof(tdm_webhook_opts, retry_base_ms), 1, 86400000},
        {"max_attempts", offsetof(tdm_webhook_opts, max_attempts), 1, 100},
        {"timeout_ms", offsetof(tdm_webhook_opts, timeout_ms), 100, 600000},
        {"sweep_ms", offsetof(tdm_webhook_opts, sweep_ms), 10, 3600000},
        {"keep_days", offsetof(tdm_webhook_opts, keep_days), 0, 36500},
        {"concurrency", offsetof(tdm_webhook_opts, concurrency), 1, 256},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        unsigned v;
        memcpy(&v, (const char *)opts + limits[i].offset, sizeof v);
        if (v < limits[i].lo || v > limits[i].hi)
            return tdm__error_field(err, TDM_EINVAL, limits[i].name,
                                    "webhooks: %s is %u; expected %u to %u", limits[i].name, v,
                                    limits[i].lo, limits[i].hi);
    }
    struct tdm__webhooks *w = e->webhooks;
    pthread_mutex_lock(&w->lock);
    if (w->started) {
        pthread_mutex_unlock(&w->lock);
        return tdm__error(err, TDM_EINVAL, "webhooks: the delivery thread is running already");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pthread_mutex_unlock(&w->lock);
        return tdm__error(err, TDM_EIO, "webhooks: libcurl failed to start");
    }
    w->opts = *opts;
    uint64_t seed = opts->seed;
    if (seed == 0)
        randombytes_buf(&seed, sizeof seed);
    tdm__rng_seed(&w->rng, seed);
    w->stop = 0;
    w->kicked = 1;
    if (pthread_create(&w->thread, NULL, deliver_main, e) != 0) {
        pthread_mutex_unlock(&w->lock);
        curl_global_cleanup();
        return tdm__error(err, TDM_ENOMEM, "webhooks: cannot start the delivery thread");
    }
    w->started = 1;
    pthread_mutex_unlock(&w->lock);
    return 0;
}

void tdm_engine_webhooks_stop(tdm_engine *e)
{
    if (e == NULL || e->webhooks == NULL)
        return;
    struct tdm__webhooks *w = e->webhooks;
    pthread_mutex_lock(&w->lock);
    if (!w->started) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_lock(&w->lock);
    w->started = 0;
    w->stop = 0;
    pthread_mutex_unlock(&w->lock);
    curl_global_cleanup();
}
