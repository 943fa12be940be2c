/*
 * intake.c — items in: parsing a single item or a JSON Lines batch, routing each through the
 * process's steps, and storing items, decisions, tasks and their audit entries in one
 * all-or-nothing job.
 *
 * The CPU work (parsing, predicting, rules) happens on the caller's thread; the writer only
 * stores. An item goes through the steps in order while the AI decides alone; the first step
 * that needs a person stops it with a task, and the item continues from there when the task
 * is completed (tasks.c). Each step's answer is added to the item's working fields under the
 * step's output name, so later steps and rules can read it.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"
#include "policy/route.h"

#define MAX_STEPS 64
#define MAX_ID    128

void tdm__model_by(const char *process, const char *step, uint64_t version, char *buf, size_t cap)
{
    snprintf(buf, cap, "model:%s/%s@v%" PRIu64, process, step, version);
}

static int bind_json(sqlite3_stmt *st, int i, json_t *v, char **keep)
{
    *keep = NULL;
    if (v == NULL) {
        sqlite3_bind_null(st, i);
        return 0;
    }
    *keep = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (*keep == NULL)
        return TDM_ENOMEM;
    sqlite3_bind_text(st, i, *keep, -1, SQLITE_STATIC);
    return 0;
}

int tdm__write_decision(tdm__tx *tx, const char *id, const char *item_id, int64_t item_version,
                        const char *process, const char *step, json_t *value, double confidence,
                        const char *by, int person, int autonomous, uint64_t model_version,
                        json_t *proposal, double proposal_confidence, const char *task_id,
                        const char *actor, tdm_error *err)
{
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "INSERT INTO decisions (id, item_id, item_version, process, step, "
                                 "value, confidence, by, kind, autonomous, model_version, "
                                 "proposal, proposal_confidence, task_id, created_at) VALUES (?, "
                                 "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 err);
    if (st == NULL)
        return err->code;
    char *vtext, *ptext = NULL;
    if (bind_json(st, 6, value, &vtext) != 0)
        return tdm__error_code(err, TDM_ENOMEM);
    if (proposal == value) /* the AI decided: its proposal is the value */
        sqlite3_bind_text(st, 12, vtext, -1, SQLITE_STATIC);
    else if (bind_json(st, 12, proposal, &ptext) != 0) {
        free(vtext);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, item_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, item_version);
    sqlite3_bind_text(st, 4, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, step, -1, SQLITE_STATIC);
    if (confidence >= 0)
        sqlite3_bind_double(st, 7, confidence);
    sqlite3_bind_text(st, 8, by, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, person ? "person" : "model", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 10, autonomous);
    if (model_version > 0)
        sqlite3_bind_int64(st, 11, (sqlite3_int64)model_version);
    if (proposal_confidence >= 0)
        sqlite3_bind_double(st, 13, proposal_confidence);
    if (task_id != NULL)
        sqlite3_bind_text(st, 14, task_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 15, tx->now);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    free(ptext);
    if (rc != SQLITE_DONE) {
        free(vtext);
        return tdm__db_error(tx->db, rc, err, "storing a decision");
    }
    tdm__audit_data d;
    tdm__audit_data_init(&d);
    tdm__audit_data_str(&d, "item", item_id);
    tdm__audit_data_int(&d, "item_version", item_version);
    tdm__audit_data_str(&d, "step", step);
    tdm__audit_data_raw(&d, "value", vtext != NULL ? vtext : "null");
    tdm__audit_data_str(&d, "by", by);
    tdm__audit_data_bool(&d, "autonomous", autonomous);
    if (confidence >= 0)
        tdm__audit_data_real(&d, "confidence", confidence);
    if (task_id != NULL)
        tdm__audit_data_str(&d, "task", task_id);
    free(vtext);
    const char *text = tdm__audit_data_text(&d);
    rc = text != NULL ? tdm__tx_announce_text(tx, process, person ? actor : by, "decision.made", id,
                                              text, err)
                      : tdm__error_code(err, TDM_ENOMEM);
    tdm__audit_data_release(&d);
    return rc;
}

int tdm__write_task(tdm__tx *tx, const char *id, const char *item_id, int64_t item_version,
                    const char *process, const tdm_step_info *info, const tdm__route *r,
                    const char *actor, tdm_error *err)
{
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "INSERT INTO tasks (id, item_id, item_version, process, step, "
                                 "queue, state, priority, due_at, proposal, proposal_confidence, "
                                 "model_version, why, sample_rate, reasons, created_at, "
                                 "updated_at, rule, alternatives, census) VALUES (?, ?, ?, ?, "
                                 "?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 err);
    if (st == NULL)
        return err->code;
    char *ptext, *rtext, *atext;
    if (bind_json(st, 9, r->proposal, &ptext) != 0)
        return tdm__error_code(err, TDM_ENOMEM);
    if (bind_json(st, 14, r->reasons, &rtext) != 0) {
        free(ptext);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    if (bind_json(st, 18, r->alternatives, &atext) != 0) {
        free(ptext);
        free(rtext);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    int64_t due = tx->now + (int64_t)(info->sla_minutes * 60000.0);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, item_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, item_version);
    sqlite3_bind_text(st, 4, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, info->queue, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, info->priority);
    sqlite3_bind_int64(st, 8, due);
    if (r->proposal != NULL) {
        sqlite3_bind_double(st, 10, r->confidence);
        sqlite3_bind_int64(st, 11, (sqlite3_int64)r->model_version);
    }
    sqlite3_bind_text(st, 12, r->why, -1, SQLITE_STATIC);
    if (r->sample_rate > 0)
        sqlite3_bind_double(st, 13, r->sample_rate);
    sqlite3_bind_int64(st, 15, tx->now);
    sqlite3_bind_int64(st, 16, tx->now);
    if (r->rule != NULL)
        sqlite3_bind_text(st, 17, r->rule, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 19, r->census != 0);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    free(rtext);
    free(atext);
    if (rc != SQLITE_DONE) {
        free(ptext);
        return tdm__db_error(tx->db, rc, err, "storing a task");
    }
    tdm__audit_data d;
    tdm__audit_data_init(&d);
    tdm__audit_data_str(&d, "item", item_id);
    tdm__audit_data_int(&d, "item_version", item_version);
    tdm__audit_data_str(&d, "step", info->id);
    tdm__audit_data_str(&d, "queue", info->queue);
    tdm__audit_data_str(&d, "why", r->why);
    if (r->rule != NULL)
        tdm__audit_data_str(&d, "rule", r->rule);
    if (r->proposal != NULL) {
        tdm__audit_data_raw(&d, "proposal", ptext);
        tdm__audit_data_real(&d, "confidence", r->confidence);
    }
    free(ptext);
    const char *text = tdm__audit_data_text(&d);
    rc = text != NULL ? tdm__tx_announce_text(tx, process, actor, "task.created", id, text, err)
                      : tdm__error_code(err, TDM_ENOMEM);
    tdm__audit_data_release(&d);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Submitting                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct sub_item {
    char id[MAX_ID + 1];
    int given;         /* the client named the item: it may exist already */
    json_t *fields;    /* as submitted, without "id" */
    char *fields_text; /* the same as stored, written here and not on the writer's thread */
    json_t *work;      /* fields plus the answers of the steps decided so far */
    size_t n_routes;
    tdm__route routes[MAX_STEPS];
    char rec_id[MAX_STEPS][32]; /* decision ids, or the task id for the last route */
    int64_t version;
} sub_item;

typedef struct sub_ctx {
    proc_state *ps;
    const char *actor;
    sub_item *items;
    size_t n;
} sub_ctx;

static int valid_id(const char *s, size_t len)
{
    if (len == 0 || len > MAX_ID)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

/* Takes one parsed object into `it` (the reference is stolen). `where` names it in errors. */
static int take_item(json_t *obj, sub_item *it, const char *where, tdm_error *err)
{
    memset(it, 0, sizeof *it);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return tdm__error(err, TDM_EPARSE, "%sexpected a JSON object (an item's fields)", where);
    }
    json_t *id = json_object_get(obj, "id");
    if (id != NULL) {
        if (!json_is_string(id) || !valid_id(json_string_value(id), json_string_length(id))) {
            json_decref(obj);
            return tdm__error_field(err, TDM_EINVAL, "id",
                                    "%s\"id\" must be a string of 1 to 128 letters, digits or "
                                    "- _ . : (or leave it out and tandem assigns one)",
                                    where);
        }
        snprintf(it->id, sizeof it->id, "%s", json_string_value(id));
        it->given = 1;
        json_object_del(obj, "id");
    } else {
        tdm__new_id("itm", it->id);
    }
    if (json_object_size(obj) > TDM__ITEM_MAX_FIELDS) {
        size_t n = json_object_size(obj);
        json_decref(obj);
        return tdm__error(err, TDM_ETOOBIG, "%san item has %zu fields; at most %d", where, n,
                          TDM__ITEM_MAX_FIELDS);
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t bytes = json_is_string(v) ? json_string_length(v)
                       : json_is_object(v) || json_is_array(v)
                           ? json_dumpb(v, NULL, 0, JSON_COMPACT)
                           : 0;
        int rc = 0;
        if (strlen(key) > TDM__ITEM_MAX_NAME)
            rc = tdm__error(err, TDM_ETOOBIG, "%sa field name is %zu bytes long; at most %d", where,
                            strlen(key), TDM__ITEM_MAX_NAME);
        else if (bytes > TDM__ITEM_MAX_VALUE)
            rc = tdm__error_field(err, TDM_ETOOBIG, key,
                                  "%sfield \"%.64s\" is %zu bytes long; at most %d (send less, "
                                  "or a reference to the document)",
                                  where, key, bytes, TDM__ITEM_MAX_VALUE);
        if (rc != 0) {
            json_decref(obj);
            return TDM_ETOOBIG;
        }
    }
    it->fields = obj;
    /* A shallow copy: steps add their answers as new keys and never change a value. */
    it->work = json_copy(obj);
    it->fields_text = json_dumps(obj, JSON_COMPACT);
    if (it->work == NULL || it->fields_text == NULL) {
        json_decref(it->work);
        free(it->fields_text);
        json_decref(obj); /* the reference was stolen: nobody else frees it */
        it->fields = it->work = NULL;
        it->fields_text = NULL;
        return tdm__error_code(err, TDM_ENOMEM);
    }
    return 0;
}

static void release_item(sub_item *it)
{
    for (size_t i = 0; i < it->n_routes; i++)
        tdm__route_release(&it->routes[i]);
    json_decref(it->fields);
    json_decref(it->work);
    free(it->fields_text);
}

/* Routes one item from step `from` until a step queues it or the steps run out. */
static int route_item(tdm_engine *e, proc_state *ps, sub_item *it, size_t from, tdm_error *err)
{
    for (size_t s = from; s < ps->n_steps && it->n_routes < MAX_STEPS; s++) {
        tdm__route *r = &it->routes[it->n_routes];
        int rc = tdm__route_step(e, ps, s, it->work, r, err);
        if (rc != 0)
            return rc;
        it->n_routes++;
        if (!r->decided) {
            tdm__new_id("tsk", it->rec_id[it->n_routes - 1]);
            return 0;
        }
        tdm__new_id("dec", it->rec_id[it->n_routes - 1]);
        json_object_set(it->work, tdm_process_step(ps->p, s)->output, r->proposal);
    }
    return 0;
}

static int sub_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    sub_ctx *c = job->ctx;
    const char *process = tdm_process_name(c->ps->p);
    for (size_t i = 0; i < c->n; i++) {
        sub_item *it = &c->items[i];
        /* An id tandem made up is new; only a client's id can name an existing item. */
        int existed = 0;
        sqlite3_stmt *st;
        if (it->given) {
            st = tdm__stmt(tx->stmts, "SELECT version FROM items WHERE id = ?", err);
            if (st == NULL)
                return err->code;
            sqlite3_bind_text(st, 1, it->id, -1, SQLITE_STATIC);
            existed = sqlite3_step(st) == SQLITE_ROW;
            it->version = existed ? sqlite3_column_int64(st, 0) + 1 : 1;
            sqlite3_reset(st);
        } else {
            it->version = 1;
        }
        if (existed) {
            /* A new version of the item: its open tasks can no longer be answered. */
            st = tdm__stmt(tx->stmts,
                           "UPDATE tasks SET state = 'done', action = 'superseded', "
                           "updated_at = ? WHERE item_id = ? AND state != 'done'",
                           err);
            if (st == NULL)
                return err->code;
            sqlite3_bind_int64(st, 1, tx->now);
            sqlite3_bind_text(st, 2, it->id, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "updating tasks");
        }
        int queued = it->n_routes > 0 && !it->routes[it->n_routes - 1].decided;
        size_t at = it->n_routes > 0 ? it->routes[it->n_routes - 1].step : 0;
        st = tdm__stmt(tx->stmts,
                       "INSERT INTO items (id, process, version, fields, status, step, "
                       "received_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON "
                       "CONFLICT (id) DO UPDATE SET process = ?2, version = ?3, fields = ?4, "
                       "status = ?5, step = ?6, updated_at = ?7",
                       err);
        if (st == NULL)
            return err->code;
        sqlite3_bind_text(st, 1, it->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, process, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, it->version);
        sqlite3_bind_text(st, 4, it->fields_text, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, queued ? "queued" : "decided", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)at);
        sqlite3_bind_int64(st, 7, tx->now);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return tdm__db_error(tx->db, rc, err, "storing an item");
        tdm__audit_data d;
        tdm__audit_data_init(&d);
        tdm__audit_data_str(&d, "process", process);
        tdm__audit_data_int(&d, "version", it->version);
        tdm__audit_data_bool(&d, "replaced", existed);
        const char *data = tdm__audit_data_text(&d);
        rc = data != NULL ? tdm__tx_audit_text(tx, c->actor, "item.received", it->id, data, err)
                          : tdm__error_code(err, TDM_ENOMEM);
        tdm__audit_data_release(&d);
        if (rc != 0)
            return rc;
        for (size_t k = 0; k < it->n_routes; k++) {
            tdm__route *r = &it->routes[k];
            const tdm_step_info *info = tdm_process_step(c->ps->p, r->step);
            if (r->decided) {
                char by[320];
                tdm__model_by(process, info->id, r->model_version, by, sizeof by);
                rc = tdm__write_decision(tx, it->rec_id[k], it->id, it->version, process, info->id,
                                         r->proposal, r->confidence, by, 0, 1, r->model_version,
                                         r->proposal, r->confidence, NULL, c->actor, err);
            } else {
                rc = tdm__write_task(tx, it->rec_id[k], it->id, it->version, process, info, r,
                                     c->actor, err);
            }
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* The answer for one item (see engine.h). */
static json_t *item_result(proc_state *ps, const sub_item *it)
{
    if (it->n_routes == 0)
        return json_pack("{s:s, s:s}", "id", it->id, "status", "decided");
    const tdm__route *r = &it->routes[it->n_routes - 1];
    const char *step = tdm_process_step(ps->p, r->step)->id;
    if (r->decided) {
        char by[320];
        tdm__model_by(tdm_process_name(ps->p), step, r->model_version, by, sizeof by);
        return json_pack("{s:s, s:s, s:s, s:{s:s, s:O, s:f, s:s}}", "id", it->id, "status",
                         "decided", "step", step, "decision", "id", it->rec_id[it->n_routes - 1],
                         "value", r->proposal, "confidence", r->confidence, "by", by);
    }
    json_t *proposal =
        r->proposal ? json_pack("{s:O, s:f}", "value", r->proposal, "confidence", r->confidence)
                    : json_null();
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", it->id, "status", "queued", "step", step,
                     "task_id", it->rec_id[it->n_routes - 1], "proposal", proposal);
}

/* Splits a JSON Lines body into objects; blank lines are skipped. */
static int parse_lines(const char *body, size_t len, sub_item **out, size_t *n_out, tdm_error *err)
{
    size_t cap = 64, n = 0;
    sub_item *items = malloc(cap * sizeof *items);
    if (items == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    size_t line = 0;
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        const char *nl = memchr(body + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - body) : len;
        line++;
        size_t a = at, b = end;
        while (a < b && (body[a] == ' ' || body[a] == '\t' || body[a] == '\r'))
            a++;
        while (b > a && (body[b - 1] == ' ' || body[b - 1] == '\t' || body[b - 1] == '\r'))
            b--;
        at = end + 1;
        if (a == b)
            continue;
        json_error_t je;
        json_t *obj = json_loadb(body + a, b - a, JSON_REJECT_DUPLICATES, &je);
        char where[48];
        snprintf(where, sizeof where, "line %zu: ", line);
        if (obj == NULL) {
            rc = tdm__error(err, TDM_EPARSE, "line %zu, column %d: invalid JSON: %s", line,
                            je.column, je.text);
            break;
        }
        if (n == cap) {
            cap *= 2;
            sub_item *grown = realloc(items, cap * sizeof *grown);
            if (grown == NULL) {
                json_decref(obj);
                rc = tdm__error_code(err, TDM_ENOMEM);
                break;
            }
            items = grown;
        }
        rc = take_item(obj, &items[n], where, err);
        if (rc == 0)
            n++;
    }
    if (rc == 0 && n == 0)
        rc = tdm__error(err, TDM_EPARSE, "the body holds no items (send one JSON object per line)");
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            release_item(&items[i]);
        free(items);
        return rc;
    }
    *out = items;
    *n_out = n;
    return 0;
}

/* Parses a request body into items: a JSON Lines batch, or a single object. On failure
 * nothing is left allocated and *out is NULL. */
static int parse_body(const char *body, size_t len, int jsonl, sub_item **out, size_t *n_out,
                      tdm_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (jsonl)
        return parse_lines(body, len, out, n_out, err);
    json_error_t je;
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    sub_item *item = malloc(sizeof *item);
    int rc;
    if (item == NULL) {
        json_decref(obj);
        rc = tdm__error_code(err, TDM_ENOMEM);
    } else if (obj == NULL) {
        rc = tdm__error(err, TDM_EPARSE, "line %d, column %d: invalid JSON: %s", je.line, je.column,
                        je.text);
    } else {
        rc = take_item(obj, item, "", err);
    }
    if (rc != 0) {
        free(item);
        return rc;
    }
    *out = item;
    *n_out = 1;
    return 0;
}

int tdm__intake_parse(const char *body, size_t len, int jsonl,
                      void (*each)(void *arg, const char *id, int given, json_t *fields), void *arg,
                      tdm_error *err)
{
    sub_item *items;
    size_t n;
    int rc = parse_body(body ? body : "", len, jsonl, &items, &n, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        each(arg, items[i].id, items[i].given, items[i].fields);
        release_item(&items[i]);
    }
    free(items);
    return 0;
}

struct tdm_submission {
    tdm_engine *e;
    proc_state *ps;
    sub_item *items;
    size_t n;
    int jsonl;
    char *actor;
    sub_ctx ctx;
    tdm__job job;
};

static void submission_free(tdm_submission *s)
{
    for (size_t i = 0; i < s->n; i++)
        release_item(&s->items[i]);
    free(s->items);
    tdm__proc_put(s->e, s->ps);
    free(s->actor);
    free(s);
}

int tdm_engine_submit_begin(tdm_engine *e, const char *process, const char *body, size_t len,
                            int jsonl, const char *actor, void (*done)(void *arg), void *arg,
                            tdm_submission **out, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || process == NULL || out == NULL || done == NULL || (body == NULL && len > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_submit_begin: missing argument");
    *out = NULL;
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    tdm_submission *s = calloc(1, sizeof *s);
    if (s == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    s->e = e;
    s->jsonl = jsonl;
    s->actor = actor ? strdup(actor) : NULL;
    int rc = actor && s->actor == NULL ? tdm__error_code(err, TDM_ENOMEM)
                                       : tdm__proc_get(e, process, &s->ps, err);
    if (rc != 0) {
        free(s->actor);
        free(s);
        return rc;
    }
    rc = parse_body(body ? body : "", len, jsonl, &s->items, &s->n, err);
    for (size_t i = 0; rc == 0 && i < s->n; i++)
        rc = route_item(e, s->ps, &s->items[i], 0, err);
    if (rc != 0) {
        submission_free(s);
        return rc;
    }
    s->ctx = (sub_ctx){s->ps, s->actor, s->items, s->n};
    s->job.run = sub_run;
    s->job.ctx = &s->ctx;
    *out = s;
    tdm__writer_enqueue(e->writer, &s->job, done, arg);
    return 0;
}

int tdm_submission_end(tdm_submission *s, char **json, size_t *json_len, tdm_error *err)
{
    if (s == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_submission_end: missing argument");
    *json = NULL;
    int rc = s->job.rc;
    if (rc != 0 && err != NULL)
        *err = s->job.err;
    char *out = NULL;
    size_t out_len = 0;
    if (rc == 0 && !s->jsonl) {
        rc = tdm__answer(item_result(s->ps, &s->items[0]), &out, &out_len, err);
    } else if (rc == 0) {
        /* JSON Lines: one result per line, in input order. */
        size_t total = 0;
        char **lines = calloc(s->n, sizeof *lines);
        if (lines == NULL)
            rc = tdm__error_code(err, TDM_ENOMEM);
        for (size_t i = 0; rc == 0 && i < s->n; i++) {
            json_t *r = item_result(s->ps, &s->items[i]);
            lines[i] = r ? json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
            json_decref(r);
            if (lines[i] == NULL)
                rc = tdm__error_code(err, TDM_ENOMEM);
            else
                total += strlen(lines[i]) + 1;
        }
        if (rc == 0 && (out = malloc(total + 1)) == NULL)
            rc = tdm__error_code(err, TDM_ENOMEM);
        for (size_t i = 0; rc == 0 && i < s->n; i++) {
            size_t l = strlen(lines[i]);
            memcpy(out + out_len, lines[i], l);
            out_len += l;
            out[out_len++] = '\n';
        }
        if (out != NULL)
            out[out_len] = '\0';
        for (size_t i = 0; lines != NULL && i < s->n; i++)
            free(lines[i]);
        free(lines);
    }
    submission_free(s);
    if (rc != 0) {
        free(out);
        return rc;
    }
    *json = out;
    if (json_len != NULL)
        *json_len = out_len;
    return 0;
}

/* The blocking form waits for the completion on a condition variable of its own. */
typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
} waiter;

static void wake_waiter(void *arg)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int tdm_engine_submit(tdm_engine *e, const char *process, const char *body, size_t len, int jsonl,
                      const char *actor, char **json, size_t *json_len, tdm_error *err)
{
    if (json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_submit: missing argument");
    waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    tdm_submission *s;
    int rc = tdm_engine_submit_begin(e, process, body, len, jsonl, actor, wake_waiter, &w, &s, err);
    if (rc == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        rc = tdm_submission_end(s, json, json_len, err);
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Continuing after a person's answer                                                         */
/* ------------------------------------------------------------------------------------------ */

int tdm__continue_item(tdm__tx *tx, proc_state *ps, const char *item_id, int64_t version,
                       json_t *work, size_t from, const char *actor, json_t **status,
                       tdm_error *err)
{
    const char *process = tdm_process_name(ps->p);
    sub_item *it = calloc(1, sizeof *it);
    if (it == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    snprintf(it->id, sizeof it->id, "%s", item_id);
    it->work = json_incref(work);
    it->version = version;
    int rc = route_item(tx->e, ps, it, from, err);
    for (size_t k = 0; rc == 0 && k < it->n_routes; k++) {
        tdm__route *r = &it->routes[k];
        const tdm_step_info *info = tdm_process_step(ps->p, r->step);
        if (r->decided) {
            char by[320];
            tdm__model_by(process, info->id, r->model_version, by, sizeof by);
            rc = tdm__write_decision(tx, it->rec_id[k], item_id, version, process, info->id,
                                     r->proposal, r->confidence, by, 0, 1, r->model_version,
                                     r->proposal, r->confidence, NULL, actor, err);
        } else {
            rc = tdm__write_task(tx, it->rec_id[k], item_id, version, process, info, r, actor, err);
        }
    }
    if (rc == 0) {
        int queued = it->n_routes > 0 && !it->routes[it->n_routes - 1].decided;
        size_t at = it->n_routes > 0 ? it->routes[it->n_routes - 1].step : (from ? from - 1 : 0);
        sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                     "UPDATE items SET status = ?, step = ?, updated_at = ? WHERE "
                                     "id = ?",
                                     err);
        if (st == NULL) {
            rc = err->code;
        } else {
            sqlite3_bind_text(st, 1, queued ? "queued" : "decided", -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)at);
            sqlite3_bind_int64(st, 3, tx->now);
            sqlite3_bind_text(st, 4, item_id, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "updating an item");
            sqlite3_reset(st);
        }
        if (rc == 0 && status != NULL)
            *status = item_result(ps, it);
    }
    release_item(it);
    free(it);
    return rc;
}
