/*
 * query.c — reading the store: an item with its decisions and tasks, the audit trail and its
 * verification, and the decision export. Every call here uses a read connection, so it runs
 * beside the writer without waiting for it.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"

static const char *text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static json_t *json_or_null(const char *s)
{
    json_t *v = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *opt_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : json_real(sqlite3_column_double(st, i));
}

static json_t *opt_text(sqlite3_stmt *st, int i)
{
    return text(st, i) ? json_string(text(st, i)) : json_null();
}

/*
 * Adds to each decision of an item what a decision page shows: the feedback given on it and
 * the values a correction may take ("choices", empty when any value goes).
 */
static int decision_context(tdm_engine *e, sqlite3 *db, const char *process, json_t *decisions,
                            tdm_error *err)
{
    proc_state *ps = NULL;
    if (tdm__proc_get(e, process, &ps, NULL) != 0)
        ps = NULL; /* the process is gone: no choices to offer */
    sqlite3_stmt *st = NULL;
    int rc = tdm__db_prepare(db,
                             "SELECT verdict, actor, created_at, correction, comment FROM "
                             "feedback WHERE decision_id = ? ORDER BY created_at, id",
                             &st, err);
    size_t i;
    json_t *d;
    json_array_foreach(decisions, i, d)
    {
        if (rc != 0)
            break;
        json_t *list = json_array();
        sqlite3_bind_text(st, 1, json_string_value(json_object_get(d, "id")), -1, SQLITE_STATIC);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:o, s:o}", "verdict",
                                                  text(st, 0), "by", text(st, 1), "at",
                                                  tdm__json_time(sqlite3_column_int64(st, 2)),
                                                  "correction", json_or_null(text(st, 3)),
                                                  "comment", opt_text(st, 4)));
        if (step != SQLITE_DONE)
            rc = tdm__db_error(db, step, err, "reading feedback");
        sqlite3_reset(st);
        json_object_set_new(d, "feedback", list);
        size_t k;
        json_t *choices = NULL;
        if (ps != NULL &&
            tdm_process_step_index(ps->p, json_string_value(json_object_get(d, "step")), &k) == 0)
            choices = tdm__step_choices(e, ps, k);
        json_object_set_new(d, "choices", choices != NULL ? choices : json_array());
    }
    sqlite3_finalize(st);
    tdm__proc_put(e, ps);
    return rc;
}

int tdm_engine_get_item(tdm_engine *e, const char *id, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || id == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_get_item: missing argument");
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st = NULL;
    json_t *item = NULL;
    rc = tdm__db_prepare(db,
                         "SELECT id, process, version, fields, status, received_at, updated_at "
                         "FROM items WHERE id = ?",
                         &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            item = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:o}", "id", text(st, 0), "process",
                             text(st, 1), "version", (json_int_t)sqlite3_column_int64(st, 2),
                             "status", text(st, 4), "fields", json_or_null(text(st, 3)),
                             "received_at", tdm__json_time(sqlite3_column_int64(st, 5)),
                             "updated_at", tdm__json_time(sqlite3_column_int64(st, 6)));
        else
            rc = tdm__error_field(err, TDM_ENOTFOUND, "item", "no item \"%s\"", id);
        sqlite3_finalize(st);
    }
    if (rc == 0) {
        json_t *decisions = json_array();
        rc = tdm__db_prepare(db,
                             "SELECT id, item_version, step, value, confidence, by, kind, "
                             "autonomous, model_version, proposal, proposal_confidence, task_id, "
                             "created_at, confirmed_by FROM decisions WHERE item_id = ? ORDER BY "
                             "seq",
                             &st, err);
        if (rc == 0) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            while (sqlite3_step(st) == SQLITE_ROW) {
                json_t *d = json_pack(
                    "{s:s, s:I, s:s, s:o, s:o, s:s, s:s, s:b, s:o, s:o}", "id", text(st, 0),
                    "item_version", (json_int_t)sqlite3_column_int64(st, 1), "step", text(st, 2),
                    "value", json_or_null(text(st, 3)), "confidence", opt_real(st, 4), "by",
                    text(st, 5), "kind", text(st, 6), "autonomous", sqlite3_column_int(st, 7),
                    "created_at", tdm__json_time(sqlite3_column_int64(st, 12)), "task_id",
                    opt_text(st, 11));
                if (sqlite3_column_type(st, 13) != SQLITE_NULL) /* four eyes, a second look */
                    json_object_set_new(d, "confirmed_by", json_string(text(st, 13)));
                if (sqlite3_column_type(st, 9) != SQLITE_NULL)
                    json_object_set_new(d, "proposal",
                                        json_pack("{s:o, s:o, s:I}", "value",
                                                  json_or_null(text(st, 9)), "confidence",
                                                  opt_real(st, 10), "model_version",
                                                  (json_int_t)sqlite3_column_int64(st, 8)));
                json_array_append_new(decisions, d);
            }
            sqlite3_finalize(st);
        }
        if (rc == 0)
            rc = decision_context(e, db, json_string_value(json_object_get(item, "process")),
                                  decisions, err);
        json_object_set_new(item, "decisions", decisions);
    }
    if (rc == 0) {
        json_t *tasks = json_array();
        rc = tdm__db_prepare(db,
                             "SELECT id, item_version, step, queue, state, claimed_by, "
                             "lease_until, completed_by, action, why, due_at, created_at FROM "
                             "tasks WHERE item_id = ? ORDER BY created_at, id",
                             &st, err);
        if (rc == 0) {
            int64_t now = tdm__now_ms();
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            while (sqlite3_step(st) == SQLITE_ROW) {
                const char *state = text(st, 4);
                if (strcmp(state, "claimed") == 0 && sqlite3_column_int64(st, 6) < now)
                    state = "open";
                json_array_append_new(
                    tasks,
                    json_pack("{s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:o}", "id",
                              text(st, 0), "item_version", (json_int_t)sqlite3_column_int64(st, 1),
                              "step", text(st, 2), "queue", text(st, 3), "state", state,
                              "claimed_by",
                              strcmp(state, "claimed") == 0 ? opt_text(st, 5) : json_null(),
                              "completed_by", opt_text(st, 7), "action", opt_text(st, 8), "why",
                              text(st, 9), "due_at", tdm__json_time(sqlite3_column_int64(st, 10)),
                              "created_at", tdm__json_time(sqlite3_column_int64(st, 11))));
            }
            sqlite3_finalize(st);
        }
        json_object_set_new(item, "tasks", tasks);
    }
    tdm__reader_put(e, db);
    if (rc != 0) {
        json_decref(item);
        return rc;
    }
    return tdm__answer(item, json, NULL, err);
}

int tdm_engine_audit(tdm_engine *e, uint64_t after, size_t limit, char **json, tdm_error *err)
{
    return tdm_engine_audit_filtered(e, after, limit, NULL, json, err);
}

int tdm_engine_audit_filtered(tdm_engine *e, uint64_t after, size_t limit,
                              const tdm_audit_filter *filter, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_audit: missing argument");
    if (limit < 1 || limit > 1000)
        return tdm__error_field(err, TDM_EINVAL, "limit", "limit %zu is out of range (1 to 1000)",
                                limit);
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    json_t *out = NULL;
    rc = tdm__audit_list(db, after, limit, filter, &out, err);
    tdm__reader_put(e, db);
    if (rc != 0)
        return rc;
    return tdm__answer(out, json, NULL, err);
}

int tdm_engine_audit_verify(tdm_engine *e, tdm_audit_check *out, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || out == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_audit_verify: missing argument");
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    rc = tdm__audit_verify(db, out, err);
    tdm__reader_put(e, db);
    return rc;
}

/* Quotes a CSV field when it needs it (RFC 4180). */
static void csv_field(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t need = strlen(s) * 2 + 4;
    if (*len + need >= *cap) {
        size_t ncap = (*cap + need) * 2;
        char *grown = realloc(*buf, ncap);
        if (grown == NULL)
            return;
        *buf = grown;
        *cap = ncap;
    }
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        (*buf)[(*len)++] = '"';
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            (*buf)[(*len)++] = '"';
        (*buf)[(*len)++] = *p;
    }
    if (quote)
        (*buf)[(*len)++] = '"';
}

int tdm_engine_export_decisions(tdm_engine *e, const char *process, tdm_export_format format,
                                int (*write)(void *ctx, const char *data, size_t len), void *ctx,
                                tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || write == NULL || (format != TDM_EXPORT_CSV && format != TDM_EXPORT_JSONL))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_export_decisions: bad arguments");
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    rc = tdm__db_prepare(db,
                         "SELECT id, item_id, item_version, process, step, value, confidence, "
                         "by, kind, autonomous, created_at FROM decisions WHERE ?1 IS NULL OR "
                         "process = ?1 ORDER BY seq",
                         &st, err);
    if (rc != 0) {
        tdm__reader_put(e, db);
        return rc;
    }
    if (process != NULL)
        sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    static const char header[] = "decision_id,item_id,item_version,process,step,value,"
                                 "confidence,by,kind,autonomous,created_at\n";
    if (format == TDM_EXPORT_CSV && write(ctx, header, sizeof header - 1) != 0)
        rc = tdm__error(err, TDM_EIO, "export: the output stopped taking data");
    size_t cap = 1024;
    char *line = malloc(cap);
    if (line == NULL)
        rc = tdm__error_code(err, TDM_ENOMEM);
    int step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        char at[32], num[64];
        tdm__format_time(sqlite3_column_int64(st, 10), at, sizeof at);
        json_t *value = json_or_null(text(st, 5));
        size_t len = 0;
        if (format == TDM_EXPORT_JSONL) {
            json_t *o = json_pack(
                "{s:s, s:s, s:I, s:s, s:s, s:O, s:o, s:s, s:s, s:b, s:s}", "decision_id",
                text(st, 0), "item_id", text(st, 1), "item_version",
                (json_int_t)sqlite3_column_int64(st, 2), "process", text(st, 3), "step",
                text(st, 4), "value", value, "confidence", opt_real(st, 6), "by", text(st, 7),
                "kind", text(st, 8), "autonomous", sqlite3_column_int(st, 9), "created_at", at);
            char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
            json_decref(o);
            if (s == NULL) {
                rc = tdm__error_code(err, TDM_ENOMEM);
            } else {
                size_t l = strlen(s);
                if (write(ctx, s, l) != 0 || write(ctx, "\n", 1) != 0)
                    rc = tdm__error(err, TDM_EIO, "export: the output stopped taking data");
                free(s);
            }
        } else {
            const char *fields[11];
            char version[32], conf[32];
            char *vtext = json_is_string(value) ? NULL : json_dumps(value, JSON_ENCODE_ANY);
            snprintf(version, sizeof version, "%lld", (long long)sqlite3_column_int64(st, 2));
            if (sqlite3_column_type(st, 6) == SQLITE_NULL)
                conf[0] = '\0';
            else
                snprintf(conf, sizeof conf, "%.6f", sqlite3_column_double(st, 6));
            snprintf(num, sizeof num, "%d", sqlite3_column_int(st, 9));
            fields[0] = text(st, 0);
            fields[1] = text(st, 1);
            fields[2] = version;
            fields[3] = text(st, 3);
            fields[4] = text(st, 4);
            fields[5] = json_is_string(value) ? json_string_value(value) : (vtext ? vtext : "");
            fields[6] = conf;
            fields[7] = text(st, 7);
            fields[8] = text(st, 8);
            fields[9] = num;
            fields[10] = at;
            for (int f = 0; f < 11; f++) {
                if (f > 0)
                    line[len++] = ',';
                csv_field(&line, &len, &cap, fields[f] ? fields[f] : "");
                if (len + 2 >= cap) {
                    char *grown = realloc(line, cap * 2);
                    if (grown == NULL)
                        break;
                    line = grown;
                    cap *= 2;
                }
            }
            line[len++] = '\n';
            free(vtext);
            if (write(ctx, line, len) != 0)
                rc = tdm__error(err, TDM_EIO, "export: the output stopped taking data");
        }
        json_decref(value);
    }
    free(line);
    sqlite3_finalize(st);
    tdm__reader_put(e, db);
    return rc;
}
