/*
 * inbox.c — the queues a person may work, with what is waiting in each: the workspace's
 * inbox (GET /v1/queues) and the live stream that repeats it when it changes
 * (GET /v1/events).
 *
 * A queue is known from the processes that name it (a step's queue or escalation_queue).
 * Who sees which: admin and viewer all of them, an owner those of the processes in its
 * scope, a reviewer those in its scope. Counts are read from the tasks table through the
 * tasks_queue index (queue, state, ...), so each queue costs one index range over its
 * unfinished tasks, not a scan of the table.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"

#define QUEUES_MAX 256

typedef struct queue_ref {
    const char *name; /* owned by a process held in `procs` */
    json_t *processes;
} queue_ref;

/* May `p` see queue `q`, named by a step of `proc`? */
static int may_see(const tdm_principal *p, const tdm_process *proc, const char *q)
{
    switch (p->role) {
    case TDM_ROLE_ADMIN:
    case TDM_ROLE_VIEWER:
        return 1;
    case TDM_ROLE_OWNER:
        return tdm_principal_in_scope(p, tdm_process_name(proc));
    case TDM_ROLE_REVIEWER:
        return tdm_principal_in_scope(p, q);
    case TDM_ROLE_SERVICE:
        return 0;
    }
    return 0;
}

/* Adds queue `q` of process `proc` to the list, once; -1 when the list is full. */
static int add_queue(queue_ref *qs, size_t *n, const char *q, const tdm_process *proc)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(qs[i].name, q) != 0)
            continue;
        json_t *list = qs[i].processes;
        const char *name = tdm_process_name(proc);
        size_t k;
        json_t *v;
        json_array_foreach(list, k, v) if (strcmp(json_string_value(v), name) == 0) return 0;
        json_array_append_new(list, json_string(name));
        return 0;
    }
    if (*n == QUEUES_MAX)
        return -1;
    qs[*n].name = q;
    qs[*n].processes = json_pack("[s]", tdm_process_name(proc));
    (*n)++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const queue_ref *)a)->name, ((const queue_ref *)b)->name);
}

/* FNV-1a over the counts that make the inbox look different (not the ages, which tick). */
static uint64_t mix(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/*
 * Walks the queues the processes name (a step's queue and escalation_queue) that `who` may
 * see: adds each to qs/n, or with `only` set, returns 1 as soon as that one is found.
 */
static int visit_queues(proc_state **procs, size_t n_procs, const tdm_principal *who,
                        const char *only, queue_ref *qs, size_t *n)
{
    for (size_t i = 0; i < n_procs; i++) {
        const tdm_process *proc = procs[i]->p;
        for (size_t s = 0; s < tdm_process_step_count(proc); s++) {
            const tdm_step_info *info = tdm_process_step(proc, s);
            const char *names[2] = {info->queue, info->escalation_queue};
            for (size_t k = 0; k < 2; k++) {
                if (names[k] == NULL || !may_see(who, proc, names[k]))
                    continue;
                if (only != NULL) {
                    if (strcmp(names[k], only) == 0)
                        return 1;
                } else {
                    (void)add_queue(qs, n, names[k], proc);
                }
            }
        }
    }
    return 0;
}

int tdm_engine_queue_visible(tdm_engine *e, const tdm_principal *who, const char *queue)
{
    if (e == NULL || who == NULL || queue == NULL)
        return 0;
    size_t n_procs;
    proc_state **procs = tdm__proc_all(e, &n_procs);
    int found = procs != NULL && visit_queues(procs, n_procs, who, queue, NULL, NULL);
    tdm__proc_put_all(e, procs, n_procs);
    return found;
}

int tdm_engine_queues(tdm_engine *e, const tdm_principal *who, char **json, uint64_t *fingerprint,
                      tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || who == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_queues: missing argument");
    size_t n_procs;
    proc_state **procs = tdm__proc_all(e, &n_procs);
    if (procs == NULL && n_procs > 0)
        return tdm__error(err, TDM_ENOMEM, "out of memory");
    queue_ref *qs = calloc(QUEUES_MAX, sizeof *qs);
    if (qs == NULL) {
        tdm__proc_put_all(e, procs, n_procs);
        return tdm__error(err, TDM_ENOMEM, "out of memory");
    }
    size_t n = 0;
    visit_queues(procs, n_procs, who, NULL, qs, &n);
    qsort(qs, n, sizeof *qs, by_name);

    sqlite3 *db = NULL;
    int rc = tdm__reader_get(e, &db, err);
    json_t *list = json_array();
    uint64_t h = 14695981039346656037ULL;
    int64_t now = tdm__now_ms();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* Unfinished tasks only: an expired claim counts as open, as everywhere. */
        sqlite3_stmt *st;
        rc = tdm__db_kept(
            db,
            "SELECT total(state = 'open' OR (state = 'claimed' AND lease_until < ?2)), "
            "total(state = 'claimed' AND lease_until >= ?2), total(state = 'confirming'), "
            "min(CASE WHEN state = 'open' OR (state = 'claimed' AND lease_until < ?2) THEN "
            "created_at END), total(due_at < ?2) FROM tasks WHERE queue = ?1 AND state IN "
            "('open', 'claimed', 'confirming')",
            &st, err);
        if (rc != 0)
            break;
        sqlite3_bind_text(st, 1, qs[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        int step = sqlite3_step(st);
        if (step != SQLITE_ROW) {
            rc = tdm__db_error(db, step, err, "counting a queue's tasks");
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            break;
        }
        int64_t counts[4] = {
            sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
            sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3)};
        int64_t breached = sqlite3_column_int64(st, 4);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        h = mix(h, qs[i].name, strlen(qs[i].name) + 1);
        h = mix(h, counts, sizeof counts);
        h = mix(h, &breached, sizeof breached);
        json_t *q = json_pack("{s:s, s:O, s:I, s:I, s:I, s:I}", "queue", qs[i].name, "processes",
                              qs[i].processes, "open", (json_int_t)counts[0], "claimed",
                              (json_int_t)counts[1], "confirming", (json_int_t)counts[2],
                              "sla_breached", (json_int_t)breached);
        if (counts[3] < 0) {
            json_object_set_new(q, "oldest_open_at", json_null());
            json_object_set_new(q, "oldest_open_seconds", json_null());
        } else {
            json_object_set_new(q, "oldest_open_at", tdm__json_time(counts[3]));
            json_object_set_new(q, "oldest_open_seconds",
                                json_integer((json_int_t)((now - counts[3]) / 1000)));
        }
        json_array_append_new(list, q);
    }
    if (db != NULL)
        tdm__reader_put(e, db);
    for (size_t i = 0; i < n; i++)
        json_decref(qs[i].processes);
    free(qs);
    tdm__proc_put_all(e, procs, n_procs);
    if (rc != 0) {
        json_decref(list);
        return rc;
    }
    if (fingerprint != NULL)
        *fingerprint = h;
    return tdm__answer(json_pack("{s:o, s:o}", "at", tdm__json_time(now), "queues", list), json,
                       NULL, err);
}
