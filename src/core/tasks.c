/*
 * tasks.c — human queues: listing tasks, claiming them under a lease, completing them as
 * accept, correct or escalate, and feedback on any decision.
 *
 * NOTES ON THE DESIGN OF TASKS
 *
 * A task is open, claimed or done. A claim holds a lease; when it runs out the task counts
 * as open again (no sweeper is needed: every read compares lease_until with the clock).
 * Claiming and completing are checked and changed inside one writer job, so two people can
 * never both win: the second gets 409. A task also remembers the item version it was made
 * for; an item submitted again supersedes its open tasks, and completing one of them is 409
 * too ("the item changed"), never a silent overwrite.
 *
 * Completing a task is where people teach the AI: the answer becomes the step's decision,
 * the step's model learns from it at once (a new model version), the proposal is recorded as
 * a check for the threshold when the task's population is unbiased for that purpose (see
 * learning.c), and the item goes on to its next step.
 *
 * Four eyes. When a step asks for it (guardrails.four_eyes: always, or a rule that holds for
 * the answer), a person's accept or correct does not decide yet: the task goes to state
 * "confirming" with that answer beside it. A second person confirms it (then it is decided
 * as above, by the first person, confirmed by the second) or declines it (the task is open
 * again, for anyone). The first person confirming their own answer is refused (403).
 *
 * A second look (guardrails.second_look) is four eyes for one kind of answer: a correction
 * that contradicts an AI proposal made with at least the step's second_look confidence. Such
 * an answer teaches the model that it was wrong where it was sure, and it is a check against
 * the threshold; a person who errs 2% of the time would otherwise make a model that is never
 * wrong there look 2% wrong, and pause a step that is within its budget. Two people agreeing
 * against the AI are wrong together far more rarely. The answer is confirmed or declined as
 * under four eyes, and only the confirmed answer teaches the model and counts as a check.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"
#include "policy/route.h"

/* ------------------------------------------------------------------------------------------ */
/* Reading tasks                                                                              */
/* ------------------------------------------------------------------------------------------ */

#define TASK_COLUMNS                                                                               \
    "t.id, t.item_id, t.item_version, t.process, t.step, t.queue, t.state, t.priority, "           \
    "t.due_at, t.claimed_by, t.lease_until, t.completed_by, t.action, t.proposal, "                \
    "t.proposal_confidence, t.model_version, t.why, t.rule, t.reasons, t.created_at, "             \
    "t.updated_at, i.fields, i.version, t.first_by, t.first_action, t.first_value, "               \
    "t.first_comment, t.alternatives, t.first_because"

static const char *text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static json_t *json_or_null(const char *s)
{
    json_t *v = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

/* A task row (selected with TASK_COLUMNS) as JSON. */
static json_t *task_json(sqlite3_stmt *st, int64_t now)
{
    const char *state = text(st, 6);
    int64_t lease = sqlite3_column_type(st, 10) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 10);
    int claimed = strcmp(state, "claimed") == 0 && lease >= now;
    const char *shown = strcmp(state, "done") == 0         ? "done"
                        : strcmp(state, "confirming") == 0 ? "confirming"
                        : claimed                          ? "claimed"
                                                           : "open";
    json_t *proposal = json_null();
    if (sqlite3_column_type(st, 13) != SQLITE_NULL)
        proposal = json_pack("{s:o, s:f, s:I}", "value", json_or_null(text(st, 13)), "confidence",
                             sqlite3_column_double(st, 14), "model_version",
                             (json_int_t)sqlite3_column_int64(st, 15));
    json_t *t = json_pack(
        "{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:s, s:o, s:o, s:o}", "id", text(st, 0),
        "item_id", text(st, 1), "item_version", (json_int_t)sqlite3_column_int64(st, 2), "process",
        text(st, 3), "step", text(st, 4), "queue", text(st, 5), "state", shown, "priority",
        sqlite3_column_int(st, 7), "due_at", tdm__json_time(sqlite3_column_int64(st, 8)),
        "created_at", tdm__json_time(sqlite3_column_int64(st, 19)), "why", text(st, 16), "proposal",
        proposal, "reasons", json_or_null(text(st, 18)), "item", json_or_null(text(st, 21)));
    json_object_set_new(t, "alternatives",
                        text(st, 27) != NULL ? json_or_null(text(st, 27)) : json_array());
    if (text(st, 17) != NULL)
        json_object_set_new(t, "rule", json_string(text(st, 17)));
    if (claimed) {
        json_object_set_new(t, "claimed_by", json_string(text(st, 9)));
        json_object_set_new(t, "lease_until", tdm__json_time(lease));
    }
    if (strcmp(shown, "done") == 0) {
        json_object_set_new(t, "completed_by",
                            text(st, 11) ? json_string(text(st, 11)) : json_null());
        json_object_set_new(t, "action", text(st, 12) ? json_string(text(st, 12)) : json_null());
        json_object_set_new(t, "completed_at", tdm__json_time(sqlite3_column_int64(st, 20)));
    }
    if (strcmp(shown, "confirming") == 0) {
        json_t *answer = json_pack("{s:s, s:s, s:o, s:s}", "by", text(st, 23), "action",
                                   text(st, 24), "value", json_or_null(text(st, 25)), "because",
                                   text(st, 28) ? text(st, 28) : "four_eyes");
        if (text(st, 26) != NULL)
            json_object_set_new(answer, "comment", json_string(text(st, 26)));
        json_object_set_new(t, "answer", answer);
    }
    /* The item was submitted again since this task was made. */
    if (sqlite3_column_int64(st, 22) != sqlite3_column_int64(st, 2))
        json_object_set_new(t, "item_changed", json_true());
    return t;
}

/* Reads one task as JSON with a connection of the caller's; NULL when it does not exist. */
static json_t *read_task(sqlite3 *db, const char *id, tdm_error *err, int *rc)
{
    sqlite3_stmt *st;
    *rc = tdm__db_prepare(db,
                          "SELECT " TASK_COLUMNS " FROM tasks t JOIN items i ON i.id = t.item_id "
                          "WHERE t.id = ?",
                          &st, err);
    if (*rc != 0)
        return NULL;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    json_t *t = sqlite3_step(st) == SQLITE_ROW ? task_json(st, tdm__now_ms()) : NULL;
    sqlite3_finalize(st);
    return t;
}

int tdm_engine_list_tasks(tdm_engine *e, const char *queue, const char *state, size_t limit,
                          char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || queue == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_list_tasks: missing argument");
    if (state == NULL)
        state = "open";
    const char *where;
    if (strcmp(state, "open") == 0)
        where = "(t.state = 'open' OR (t.state = 'claimed' AND t.lease_until < ?2)) "
                "ORDER BY t.priority DESC, t.due_at, t.created_at";
    else if (strcmp(state, "claimed") == 0)
        where = "t.state = 'claimed' AND t.lease_until >= ?2 ORDER BY t.priority DESC, t.due_at";
    else if (strcmp(state, "confirming") == 0)
        where = "t.state = 'confirming' AND ?2 = ?2 ORDER BY t.priority DESC, t.due_at";
    else if (strcmp(state, "done") == 0)
        where = "t.state = 'done' AND ?2 = ?2 ORDER BY t.updated_at DESC";
    else
        return tdm__error_field(err, TDM_EINVAL, "state",
                                "unknown task state \"%s\" (expected open, claimed, confirming "
                                "or done)",
                                state);
    if (limit < 1 || limit > 1000)
        return tdm__error_field(err, TDM_EINVAL, "limit", "limit %zu is out of range (1 to 1000)",
                                limit);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " TASK_COLUMNS " FROM tasks t JOIN items i ON i.id = t.item_id WHERE "
             "t.queue = ?1 AND %s LIMIT ?3",
             where);
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    rc = tdm__db_prepare(db, sql, &st, err);
    json_t *list = json_array();
    if (rc == 0) {
        int64_t now = tdm__now_ms();
        sqlite3_bind_text(st, 1, queue, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(list, task_json(st, now));
        if (step != SQLITE_DONE)
            rc = tdm__db_error(db, step, err, "listing tasks");
        sqlite3_finalize(st);
    }
    tdm__reader_put(e, db);
    if (rc != 0) {
        json_decref(list);
        return rc;
    }
    return tdm__answer(json_pack("{s:s, s:s, s:o}", "queue", queue, "state", state, "tasks", list),
                       json, NULL, err);
}

/* The task fields a claim or a completion checks. */
typedef struct task_row {
    char state[16];
    char claimed_by[256];
    int64_t lease_until;
    char completed_by[256];
    char action[32];
    char item_id[160];
    int64_t item_version;
    int64_t item_current;
    char process[160];
    char step[160];
    char queue[160];
    char why[32];
    json_t *proposal; /* NULL when none */
    double proposal_confidence;
    uint64_t model_version;
    double sample_rate;
    int census;         /* the item would have reached a person whatever its confidence */
    char first_by[256]; /* four eyes: who gave the answer awaiting confirmation */
    char first_action[32];
    json_t *first_value; /* that answer, or NULL */
    char first_comment[4100];
} task_row;

/* For a task stored without its census flag: whether its reason alone says the item reached
 * a person whatever the model's confidence (learning.c, NOTES ON REFITS). A threshold chose
 * the items below it and the audit samples above it; a rule chose by the item (and maybe by
 * the confidence), and whether a threshold was in force is not known. */
static int census_by_reason(const char *why)
{
    return strcmp(why, "no_threshold") == 0 || strcmp(why, "paused") == 0 ||
           strcmp(why, "hybrid") == 0 || strcmp(why, "no_model") == 0 ||
           strcmp(why, "all_human") == 0;
}

static int load_row(tdm__tx *tx, const char *id, task_row *r, tdm_error *err)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "SELECT t.state, t.claimed_by, t.lease_until, t.completed_by, "
                                 "t.action, t.item_id, t.item_version, i.version, t.process, "
                                 "t.step, t.queue, t.why, t.proposal, t.proposal_confidence, "
                                 "t.model_version, t.sample_rate, t.first_by, t.first_action, "
                                 "t.first_value, t.first_comment, t.census FROM tasks t JOIN "
                                 "items i ON i.id = t.item_id WHERE t.id = ?",
                                 err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return tdm__error_field(err, TDM_ENOTFOUND, "task", "no task \"%s\"", id);
    }
#define COPY(dst, i) snprintf(dst, sizeof dst, "%s", text(st, i) ? text(st, i) : "")
    COPY(r->state, 0);
    COPY(r->claimed_by, 1);
    r->lease_until = sqlite3_column_int64(st, 2);
    COPY(r->completed_by, 3);
    COPY(r->action, 4);
    COPY(r->item_id, 5);
    r->item_version = sqlite3_column_int64(st, 6);
    r->item_current = sqlite3_column_int64(st, 7);
    COPY(r->process, 8);
    COPY(r->step, 9);
    COPY(r->queue, 10);
    COPY(r->why, 11);
    COPY(r->first_by, 16);
    COPY(r->first_action, 17);
    COPY(r->first_comment, 19);
#undef COPY
    if (sqlite3_column_type(st, 18) != SQLITE_NULL)
        r->first_value = json_loads(text(st, 18), JSON_DECODE_ANY, NULL);
    if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
        r->proposal = json_loads(text(st, 12), JSON_DECODE_ANY, NULL);
        r->proposal_confidence = sqlite3_column_double(st, 13);
        r->model_version = (uint64_t)sqlite3_column_int64(st, 14);
    }
    r->sample_rate = sqlite3_column_double(st, 15);
    /* Tasks from before the flag was kept: what their reason tells. */
    r->census = sqlite3_column_type(st, 20) != SQLITE_NULL ? sqlite3_column_int(st, 20)
                                                           : census_by_reason(r->why);
    sqlite3_reset(st);
    return 0;
}

static void row_release(task_row *r)
{
    json_decref(r->proposal);
    json_decref(r->first_value);
    r->proposal = r->first_value = NULL;
}

/* 409 for a task nobody may act on now (done, superseded, or someone else's). */
static int check_open(const task_row *r, const char *id, const char *actor, int64_t now,
                      tdm_error *err)
{
    if (strcmp(r->state, "done") == 0) {
        if (strcmp(r->action, "superseded") == 0)
            return tdm__error_field(err, TDM_ECONFLICT, "task",
                                    "task %s is void: its item %s was submitted again since "
                                    "(work on the new task for it)",
                                    id, r->item_id);
        return tdm__error_field(err, TDM_ECONFLICT, "task",
                                "task %s was already completed by %s (%s)", id, r->completed_by,
                                r->action);
    }
    if (r->item_current != r->item_version)
        return tdm__error_field(err, TDM_ECONFLICT, "task",
                                "task %s was made for version %lld of item %s, which has changed "
                                "since (now version %lld)",
                                id, (long long)r->item_version, r->item_id,
                                (long long)r->item_current);
    if (strcmp(r->state, "claimed") == 0 && r->lease_until >= now &&
        strcmp(r->claimed_by, actor) != 0) {
        char until[32];
        tdm__format_time(r->lease_until, until, sizeof until);
        return tdm__error_field(err, TDM_ECONFLICT, "task", "task %s is claimed by %s until %s", id,
                                r->claimed_by, until);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Claiming                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct claim_ctx {
    const char *id;
    const char *actor;
    unsigned lease;
} claim_ctx;

static int claim_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    claim_ctx *c = job->ctx;
    task_row r;
    int rc = load_row(tx, c->id, &r, err);
    if (rc == 0)
        rc = check_open(&r, c->id, c->actor, tx->now, err);
    if (rc == 0 && strcmp(r.state, "confirming") == 0)
        rc = tdm__error_field(err, TDM_ECONFLICT, "task",
                              "task %s already has %s's answer, waiting for a second person "
                              "(four eyes): confirm or decline it with complete, no claim needed",
                              c->id, r.first_by);
    row_release(&r);
    if (rc != 0)
        return rc;
    int64_t until = tx->now + (int64_t)c->lease * 1000;
    sqlite3_stmt *st =
        tdm__stmt(tx->stmts,
                  "UPDATE tasks SET state = 'claimed', claimed_by = ?1, lease_until "
                  "= ?2, updated_at = ?3, claimed_at = CASE WHEN state = 'claimed' "
                  "AND claimed_by = ?1 AND lease_until >= ?3 THEN claimed_at ELSE ?3 "
                  "END WHERE id = ?4",
                  err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->actor, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, until);
    sqlite3_bind_int64(st, 3, tx->now);
    sqlite3_bind_text(st, 4, c->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "claiming a task");
    return tdm__tx_audit(tx, c->actor, "task.claimed", c->id,
                         json_pack("{s:s, s:o, s:i}", "item", r.item_id, "lease_until",
                                   tdm__json_time(until), "lease_seconds", (int)c->lease),
                         err);
}

static int answer_task(tdm_engine *e, const char *id, json_t *extra, char **json, tdm_error *err)
{
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0) {
        json_decref(extra);
        return rc;
    }
    json_t *t = read_task(db, id, err, &rc);
    tdm__reader_put(e, db);
    if (rc != 0 || t == NULL) {
        json_decref(extra);
        return rc ? rc : tdm__error(err, TDM_ENOTFOUND, "no task \"%s\"", id);
    }
    if (extra == NULL)
        return tdm__answer(t, json, NULL, err);
    json_object_set_new(extra, "task", t);
    return tdm__answer(extra, json, NULL, err);
}

int tdm_engine_claim_task(tdm_engine *e, const char *task_id, const char *actor,
                          unsigned lease_seconds, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || task_id == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_claim_task: missing argument");
    if (lease_seconds == 0)
        lease_seconds = 300;
    if (lease_seconds > 86400)
        return tdm__error_field(err, TDM_EINVAL, "lease_seconds",
                                "lease_seconds %u is out of range (1 to 86400)", lease_seconds);
    claim_ctx c = {task_id, actor ? actor : "api", lease_seconds};
    tdm__job job = {0};
    job.run = claim_run;
    job.ctx = &c;
    int rc = tdm__writer_run(e->writer, &job, err);
    if (rc != 0)
        return rc;
    return answer_task(e, task_id, NULL, json, err);
}

/* ------------------------------------------------------------------------------------------ */
/* The workspace: one task with what a person needs beside it, and the next task              */
/* ------------------------------------------------------------------------------------------ */

/* Binds a JSON scalar (string, integer or real) as SQL would store it; 0, or -1 for others. */
static int bind_scalar(sqlite3_stmt *st, int i, json_t *v)
{
    if (json_is_string(v))
        return sqlite3_bind_text(st, i, json_string_value(v), -1, SQLITE_STATIC) == SQLITE_OK ? 0
                                                                                              : -1;
    if (json_is_integer(v))
        return sqlite3_bind_int64(st, i, json_integer_value(v)) == SQLITE_OK ? 0 : -1;
    if (json_is_real(v))
        return sqlite3_bind_double(st, i, json_real_value(v)) == SQLITE_OK ? 0 : -1;
    return -1;
}

/*
 * The decisions on other items of the process that share the item's related_by value (the
 * same customer), newest first, at most 10; JSON null when the process names no key or the
 * item has no value for it. Uses the partial index made when the process was applied.
 */
static json_t *related_json(sqlite3 *db, const tdm_process *p, const char *item_id, json_t *item,
                            tdm_error *err, int *rc)
{
    const char *key = tdm_process_related_by(p);
    json_t *value = key != NULL ? json_object_get(item, key) : NULL;
    *rc = 0;
    if (value == NULL || !(json_is_string(value) || json_is_number(value)))
        return json_null();
    char index[96], expr[128], sql[1024];
    tdm__related_sql(tdm_process_name(p), key, index, sizeof index, expr, sizeof expr);
    snprintf(sql, sizeof sql,
             "SELECT d.item_id, d.id, d.value, d.by, d.created_at, d.step FROM items i "
             "JOIN decisions d ON d.item_id = i.id WHERE i.process = '%s' AND %s IS NOT NULL "
             "AND %s = ?1 AND i.id <> ?2 ORDER BY d.created_at DESC, d.seq DESC LIMIT 10",
             tdm_process_name(p), expr, expr);
    sqlite3_stmt *st;
    if ((*rc = tdm__db_prepare(db, sql, &st, err)) != 0)
        return NULL;
    json_t *list = json_array();
    if (bind_scalar(st, 1, value) == 0 &&
        sqlite3_bind_text(st, 2, item_id, -1, SQLITE_STATIC) == SQLITE_OK) {
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:s, s:o}", "item_id",
                                                  text(st, 0), "decision_id", text(st, 1), "step",
                                                  text(st, 5), "value", json_or_null(text(st, 2)),
                                                  "by", text(st, 3), "at",
                                                  tdm__json_time(sqlite3_column_int64(st, 4))));
        if (step != SQLITE_DONE)
            *rc = tdm__db_error(db, step, err, "reading related items");
    }
    sqlite3_finalize(st);
    if (*rc != 0) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:s, s:O, s:o}", "key", key, "value", value, "decisions", list);
}

json_t *tdm__step_choices(tdm_engine *e, proc_state *ps, size_t step)
{
    const tdm_step_info *info = tdm_process_step(ps->p, step);
    json_t *choices = json_array();
    if (info->n_labels > 0) {
        for (size_t i = 0; i < info->n_labels; i++)
            json_array_append_new(choices, json_string(info->labels[i]));
        return choices;
    }
    step_model *sm = ps->steps[step];
    tdm_error ignored = {0};
    if (info->allocation == TDM_ALLOC_HUMAN || tdm__model_ensure(e, sm, &ignored) != 0)
        return choices; /* no model: any value goes */
    pthread_rwlock_rdlock(&sm->lock);
    if (sm->model != NULL)
        for (size_t i = 0; i < tdm_model_label_count(sm->model); i++)
            json_array_append_new(choices, json_string(tdm_model_label(sm->model, i)));
    pthread_rwlock_unlock(&sm->lock);
    return choices;
}

/*
 * Adds to a task's JSON what the workspace shows beside it: the values a correction may take
 * (choices), the fields the model reads (inputs) and the decisions on related items. The
 * reader `db` is the caller's.
 */
static int task_context(tdm_engine *e, sqlite3 *db, json_t *t, tdm_error *err)
{
    proc_state *ps = NULL;
    size_t step;
    const char *process = json_string_value(json_object_get(t, "process"));
    if (tdm__proc_get(e, process, &ps, err) != 0 ||
        tdm_process_step_index(ps->p, json_string_value(json_object_get(t, "step")), &step) != 0) {
        /* The process or the step is gone: the task is still shown, without context. */
        tdm__proc_put(e, ps);
        tdm__error_clear(err);
        json_object_set_new(t, "choices", json_array());
        json_object_set_new(t, "inputs", json_array());
        json_object_set_new(t, "related", json_null());
        return 0;
    }
    const tdm_step_info *info = tdm_process_step(ps->p, step);
    json_t *inputs = json_array();
    for (size_t i = 0; i < info->n_inputs; i++)
        json_array_append_new(inputs, json_pack("{s:s, s:s}", "name", info->inputs[i].name, "kind",
                                                tdm_field_kind_name(info->inputs[i].kind)));
    json_object_set_new(t, "choices", tdm__step_choices(e, ps, step));
    json_object_set_new(t, "inputs", inputs);
    int rc;
    json_t *related = related_json(db, ps->p, json_string_value(json_object_get(t, "item_id")),
                                   json_object_get(t, "item"), err, &rc);
    tdm__proc_put(e, ps);
    if (rc != 0)
        return rc;
    json_object_set_new(t, "related", related);
    return 0;
}

/* Reads a task with its context; *json stays NULL when it does not exist (rc 0). */
static int read_task_in_context(tdm_engine *e, const char *id, json_t **out, tdm_error *err)
{
    sqlite3 *db;
    *out = NULL;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    json_t *t = read_task(db, id, err, &rc);
    if (rc == 0 && t != NULL && (rc = task_context(e, db, t, err)) != 0) {
        json_decref(t);
        t = NULL;
    }
    tdm__reader_put(e, db);
    *out = t;
    return rc;
}

int tdm_engine_get_task(tdm_engine *e, const char *task_id, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || task_id == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_get_task: missing argument");
    json_t *t;
    int rc = read_task_in_context(e, task_id, &t, err);
    if (rc != 0)
        return rc;
    if (t == NULL)
        return tdm__error_field(err, TDM_ENOTFOUND, "task", "no task \"%s\"", task_id);
    return tdm__answer(t, json, NULL, err);
}

typedef struct next_ctx {
    claim_ctx claim;
    const char *queue;
    char id[64]; /* the task given, or "" */
} next_ctx;

/*
 * Picks the caller's own claimed task in the queue if they have one (a reload gives it back),
 * else the first open one in queue order, and claims it (renewing the lease of an own one);
 * when nothing is open, someone else's answer waiting for confirmation.
 */
static int next_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    next_ctx *c = job->ctx;
    static const char *const picks[] = {
        "SELECT id FROM tasks WHERE queue = ?1 AND state = 'claimed' AND claimed_by = ?3 AND "
        "lease_until >= ?2 ORDER BY priority DESC, due_at, created_at LIMIT 1",
        "SELECT id FROM tasks WHERE queue = ?1 AND state IN ('open', 'claimed') AND (state = "
        "'open' OR lease_until < ?2) AND ?3 = ?3 ORDER BY priority DESC, due_at, created_at "
        "LIMIT 1",
        /* Last, an answer of someone else's waiting for a second person (four eyes): it is
         * given, not claimed (the confirmation needs no claim). */
        "SELECT id FROM tasks WHERE queue = ?1 AND state = 'confirming' AND first_by <> ?3 AND "
        "?2 = ?2 ORDER BY priority DESC, due_at, created_at LIMIT 1",
    };
    c->id[0] = '\0';
    size_t pick = 0;
    for (; pick < 3; pick++) {
        sqlite3_stmt *st = tdm__stmt(tx->stmts, picks[pick], err);
        if (st == NULL)
            return err->code;
        sqlite3_bind_text(st, 1, c->queue, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, tx->now);
        sqlite3_bind_text(st, 3, c->claim.actor, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(c->id, sizeof c->id, "%s", text(st, 0));
        sqlite3_reset(st);
        if (c->id[0] != '\0')
            break;
    }
    if (c->id[0] == '\0' || pick == 2)
        return 0; /* nothing, or a confirmation: no claim */
    c->claim.id = c->id;
    tdm__job claim = {0};
    claim.ctx = &c->claim;
    return claim_run(tx, &claim, err);
}

int tdm_engine_next_task(tdm_engine *e, const char *queue, const char *actor,
                         unsigned lease_seconds, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || queue == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_next_task: missing argument");
    *json = NULL;
    if (lease_seconds == 0)
        lease_seconds = 300;
    if (lease_seconds > 86400)
        return tdm__error_field(err, TDM_EINVAL, "lease_seconds",
                                "lease_seconds %u is out of range (1 to 86400)", lease_seconds);
    next_ctx c = {{NULL, actor ? actor : "api", lease_seconds}, queue, ""};
    tdm__job job = {0};
    job.run = next_run;
    job.ctx = &c;
    int rc = tdm__writer_run(e->writer, &job, err);
    if (rc != 0 || c.id[0] == '\0')
        return rc;
    json_t *t;
    rc = read_task_in_context(e, c.id, &t, err);
    if (rc != 0)
        return rc;
    if (t == NULL)
        return tdm__error_field(err, TDM_ENOTFOUND, "task", "no task \"%s\"", c.id);
    return tdm__answer(t, json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Completing                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Checks an answer against a step's output: a string, and one of its labels if it has a set. */
static int check_value(const tdm_step_info *info, json_t *value, const char *field, tdm_error *err)
{
    if (!json_is_string(value) || json_string_length(value) == 0 ||
        json_string_length(value) > 1024)
        return tdm__error_field(err, TDM_EINVAL, field,
                                "%s must be a non-empty string of at most 1024 bytes (step "
                                "\"%s\" answers \"%s\")",
                                field, info->id, info->output);
    if (info->n_labels == 0)
        return 0;
    for (size_t i = 0; i < info->n_labels; i++)
        if (strcmp(info->labels[i], json_string_value(value)) == 0)
            return 0;
    return tdm__error_field(
        err, TDM_EINVAL, field, "\"%s\" is not one of step \"%s\"'s labels (%s%s%s%s)",
        json_string_value(value), info->id, info->labels[0], info->n_labels > 1 ? ", " : "",
        info->n_labels > 1 ? info->labels[1] : "", info->n_labels > 2 ? ", ..." : "");
}

/* The item's fields with the answers of the steps decided so far for this version. */
static json_t *working_fields(tdm__tx *tx, proc_state *ps, const char *item_id, int64_t version,
                              tdm_error *err)
{
    sqlite3_stmt *st = tdm__stmt(tx->stmts, "SELECT fields FROM items WHERE id = ?", err);
    if (st == NULL)
        return NULL;
    sqlite3_bind_text(st, 1, item_id, -1, SQLITE_STATIC);
    json_t *work = sqlite3_step(st) == SQLITE_ROW ? json_loads(text(st, 0), 0, NULL) : NULL;
    sqlite3_reset(st);
    if (work == NULL) {
        tdm__error(err, TDM_ECORRUPT, "item %s: its stored fields cannot be read", item_id);
        return NULL;
    }
    st = tdm__stmt(tx->stmts,
                   "SELECT step, value FROM decisions WHERE item_id = ? AND item_version = ? "
                   "ORDER BY seq",
                   err);
    if (st == NULL) {
        json_decref(work);
        return NULL;
    }
    sqlite3_bind_text(st, 1, item_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t idx;
        if (tdm_process_step_index(ps->p, text(st, 0), &idx) == 0)
            json_object_set_new(work, tdm_process_step(ps->p, idx)->output,
                                json_or_null(text(st, 1)));
    }
    sqlite3_reset(st);
    return work;
}

typedef struct complete_ctx {
    const char *id;
    const char *actor;
    const char *action;
    json_t *value; /* borrowed, for correct */
    const char *comment;
    proc_state *ps;
    json_t *decision;    /* the answer's decision part, filled by the job */
    json_t *item;        /* the item's result after routing on, filled by the job */
    json_t *owned_value; /* four eyes: the first answer, when confirming (owned) */
    int awaiting;        /* four eyes: the answer waits for a second person */
    const char *because; /* ... by the rule "four_eyes" or "second_look" */
} complete_ctx;

/* Whether a task's population makes its proposal an unbiased check of the model. */
static int counts_as_check(const char *why)
{
    return strcmp(why, "audit_sample") == 0 || strcmp(why, "below_threshold") == 0 ||
           strcmp(why, "no_threshold") == 0 || strcmp(why, "hybrid") == 0 ||
           strcmp(why, "paused") == 0;
}

/* Four eyes or a second look: keeps the first person's answer on the task, which waits for
 * a second. */
static int await_confirmation(tdm__tx *tx, complete_ctx *c, const task_row *r, json_t *value,
                              tdm_error *err)
{
    char *text_value = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
    sqlite3_stmt *st = text_value != NULL
                           ? tdm__stmt(tx->stmts,
                                       "UPDATE tasks SET state = 'confirming', claimed_by = NULL, "
                                       "lease_until = NULL, first_by = ?, first_action = ?, "
                                       "first_value = ?, first_comment = ?, first_because = ?, "
                                       "updated_at = ? WHERE id = ?",
                                       err)
                           : NULL;
    if (st == NULL) {
        free(text_value);
        return text_value == NULL ? tdm__error_code(err, TDM_ENOMEM) : err->code;
    }
    sqlite3_bind_text(st, 1, c->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, text_value, -1, SQLITE_STATIC);
    if (c->comment != NULL)
        sqlite3_bind_text(st, 4, c->comment, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_text(st, 5, c->because, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, tx->now);
    sqlite3_bind_text(st, 7, c->id, -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st);
    free(text_value);
    if (!ok)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "recording an answer");
    json_t *data = json_pack("{s:s, s:s, s:O, s:s, s:s}", "item", r->item_id, "action", c->action,
                             "value", value, "awaiting", "confirmation", "because", c->because);
    if (c->comment != NULL)
        json_object_set_new(data, "comment", json_string(c->comment));
    c->awaiting = 1;
    return tdm__tx_audit(tx, c->actor, "task.answered", c->id, data, err);
}

static int complete_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    complete_ctx *c = job->ctx;
    task_row r;
    int rc = load_row(tx, c->id, &r, err);
    if (rc != 0)
        return rc;
    rc = check_open(&r, c->id, c->actor, tx->now, err);
    size_t step;
    if (rc == 0 && (strcmp(r.process, tdm_process_name(c->ps->p)) != 0 ||
                    tdm_process_step_index(c->ps->p, r.step, &step) != 0))
        rc = tdm__error_field(err, TDM_ECONFLICT, "task",
                              "task %s belongs to step %s of process %s, which is no longer "
                              "declared",
                              c->id, r.step, r.process);
    if (rc != 0) {
        row_release(&r);
        return rc;
    }
    const tdm_step_info *info = tdm_process_step(c->ps->p, step);
    const char *process = r.process;
    int confirming = strcmp(r.state, "confirming") == 0;
    int second = strcmp(c->action, "confirm") == 0 || strcmp(c->action, "decline") == 0;
    if (confirming != second) {
        row_release(&r);
        return confirming
                   ? tdm__error_field(err, TDM_ECONFLICT, "action",
                                      "task %s waits for a second person to confirm or decline "
                                      "%s's answer (four eyes)",
                                      c->id, r.first_by)
                   : tdm__error_field(err, TDM_ECONFLICT, "action",
                                      "task %s has no answer waiting to be confirmed", c->id);
    }
    if (confirming && strcmp(r.first_by, c->actor) == 0) {
        row_release(&r);
        return tdm__error_field(err, TDM_EFORBIDDEN, "action",
                                "four eyes: %s gave this answer and cannot also confirm or "
                                "decline it; another person must",
                                c->actor);
    }
    if (strcmp(c->action, "decline") == 0) {
        sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                     "UPDATE tasks SET state = 'open', claimed_by = NULL, "
                                     "lease_until = NULL, first_by = NULL, first_action = NULL, "
                                     "first_value = NULL, first_comment = NULL, first_because = "
                                     "NULL, updated_at = ? WHERE id = ?",
                                     err);
        if (st == NULL) {
            row_release(&r);
            return err->code;
        }
        sqlite3_bind_int64(st, 1, tx->now);
        sqlite3_bind_text(st, 2, c->id, -1, SQLITE_STATIC);
        int ok = sqlite3_step(st) == SQLITE_DONE;
        json_t *data = json_pack("{s:s, s:s, s:O}", "item", r.item_id, "answer_by", r.first_by,
                                 "value", r.first_value ? r.first_value : json_null());
        row_release(&r);
        if (!ok) {
            json_decref(data);
            return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "declining an answer");
        }
        if (c->comment != NULL)
            json_object_set_new(data, "comment", json_string(c->comment));
        return tdm__tx_audit(tx, c->actor, "task.declined", c->id, data, err);
    }
    /* Confirming: the first person's answer is the one decided; the second confirms it. */
    const char *answerer = c->actor, *confirmer = NULL;
    if (confirming && r.first_value == NULL) {
        row_release(&r);
        return tdm__error_field(err, TDM_ECONFLICT, "task",
                                "task %s waits for confirmation but its answer is unreadable",
                                c->id);
    }
    if (confirming) {
        confirmer = c->actor;
        answerer = r.first_by;
        c->action = strcmp(r.first_action, "accept") == 0 ? "accept" : "correct";
        json_decref(c->owned_value);
        c->value = c->owned_value = json_incref(r.first_value);
        if (c->comment == NULL && r.first_comment[0] != '\0')
            c->comment = r.first_comment;
    }

    if (strcmp(c->action, "escalate") == 0) {
        row_release(&r);
        if (info->escalation_queue == NULL)
            return tdm__error_field(err, TDM_EINVAL, "action",
                                    "step \"%s\" has no escalation queue (declare "
                                    "guardrails.escalation_queue)",
                                    info->id);
        if (strcmp(r.queue, info->escalation_queue) == 0)
            return tdm__error_field(err, TDM_EINVAL, "action",
                                    "task %s is already in the escalation queue \"%s\"", c->id,
                                    r.queue);
        sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                     "UPDATE tasks SET queue = ?, state = 'open', claimed_by = "
                                     "NULL, lease_until = NULL, updated_at = ? WHERE id = ?",
                                     err);
        if (st == NULL)
            return err->code;
        sqlite3_bind_text(st, 1, info->escalation_queue, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, tx->now);
        sqlite3_bind_text(st, 3, c->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "escalating a task");
        json_t *data = json_pack("{s:s, s:s, s:s}", "item", r.item_id, "from", r.queue, "to",
                                 info->escalation_queue);
        if (c->comment != NULL)
            json_object_set_new(data, "comment", json_string(c->comment));
        return tdm__tx_audit(tx, c->actor, "task.escalated", c->id, data, err);
    }

    json_t *value;
    if (strcmp(c->action, "accept") == 0) {
        if (r.proposal == NULL)
            return tdm__error_field(err, TDM_EINVAL, "action",
                                    "task %s has no AI proposal to accept (answer with "
                                    "\"action\": \"correct\" and a \"value\")",
                                    c->id);
        value = json_incref(r.proposal);
    } else {
        value = json_incref(c->value);
    }
    if (!confirming && value != NULL) {
        json_t *fields = working_fields(tx, c->ps, r.item_id, r.item_version, err);
        if (fields == NULL) {
            json_decref(value);
            row_release(&r);
            return err->code ? err->code : TDM_ENOMEM;
        }
        int four =
            tdm_process_four_eyes(c->ps->p, step, tdm__json_lookup, fields,
                                  json_string_value(value), r.proposal ? r.proposal_confidence : 0);
        json_decref(fields);
        /* The simulation's all-human strategy is the baseline without AI: no second look
         * prompted by the AI's proposal there. */
        int look = !four && tx->e->route_mode != TDM__ROUTE_ALL_HUMAN &&
                   tdm_process_second_look(c->ps->p, step, json_string_value(r.proposal),
                                           json_string_value(value),
                                           r.proposal ? r.proposal_confidence : 0);
        if (four || look) {
            c->because = four ? "four_eyes" : "second_look";
            rc = await_confirmation(tx, c, &r, value, err);
            json_decref(value);
            row_release(&r);
            return rc;
        }
    }
    char dec_id[32], by[300];
    tdm__new_id("dec", dec_id);
    snprintf(by, sizeof by, "person:%s", answerer);
    rc = tdm__write_decision(tx, dec_id, r.item_id, r.item_version, process, info->id, value, -1,
                             by, 1, 0, r.model_version, r.proposal,
                             r.proposal ? r.proposal_confidence : -1, c->id, answerer, err);
    if (rc == 0 && confirmer != NULL) {
        sqlite3_stmt *cs =
            tdm__stmt(tx->stmts, "UPDATE decisions SET confirmed_by = ? WHERE id = ?", err);
        if (cs == NULL) {
            rc = err->code;
        } else {
            sqlite3_bind_text(cs, 1, confirmer, -1, SQLITE_STATIC);
            sqlite3_bind_text(cs, 2, dec_id, -1, SQLITE_STATIC);
            if (sqlite3_step(cs) != SQLITE_DONE)
                rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "confirming a decision");
            sqlite3_reset(cs);
        }
    }
    sqlite3_stmt *st = NULL;
    if (rc == 0) {
        st = tdm__stmt(tx->stmts,
                       "UPDATE tasks SET state = 'done', completed_by = ?, action = ?, "
                       "updated_at = ? WHERE id = ?",
                       err);
        if (st == NULL)
            rc = err->code;
    }
    if (rc == 0) {
        sqlite3_bind_text(st, 1, answerer, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->action, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, tx->now);
        sqlite3_bind_text(st, 4, c->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "completing a task");
    }
    if (rc == 0) {
        json_t *data = json_pack("{s:s, s:s, s:O, s:s}", "item", r.item_id, "action", c->action,
                                 "value", value, "decision", dec_id);
        if (c->comment != NULL)
            json_object_set_new(data, "comment", json_string(c->comment));
        if (confirmer != NULL)
            json_object_set_new(data, "answer_by", json_string(answerer));
        rc = tdm__tx_audit(tx, c->actor, confirmer != NULL ? "task.confirmed" : "task.completed",
                           c->id, data, err);
    }
    json_t *work = rc == 0 ? working_fields(tx, c->ps, r.item_id, r.item_version, err) : NULL;
    if (rc == 0 && work == NULL)
        rc = err->code ? err->code : TDM_ENOMEM;
    uint64_t learned = 0;
    if (rc == 0 && info->allocation != TDM_ALLOC_HUMAN) {
        /* The model learns from the answer; `work` still lacks this step's own output. */
        rc = tdm__learn_in_tx(tx, c->ps, step, work, json_string_value(value), 1.0, "task",
                              r.census, &learned, err);
        if (rc == 0 && r.proposal != NULL && counts_as_check(r.why)) {
            int audit = strcmp(r.why, "audit_sample") == 0;
            int right = json_equal(r.proposal, value);
            double w = audit && r.sample_rate > 0 ? 1.0 / r.sample_rate : 1.0;
            rc = tdm__check_and_follow(tx, c->ps, step, r.proposal_confidence, right, w,
                                       audit ? "audit" : "review", r.model_version, err);
        }
    }
    if (rc == 0) {
        json_object_set(work, info->output, value);
        rc = tdm__continue_item(tx, c->ps, r.item_id, r.item_version, work, step + 1, answerer,
                                &c->item, err);
    }
    if (rc == 0)
        c->decision = json_pack("{s:s, s:O, s:s, s:s, s:I}", "id", dec_id, "value", value, "by", by,
                                "step", info->id, "model_version", (json_int_t)learned);
    if (rc == 0 && confirmer != NULL)
        json_object_set_new(c->decision, "confirmed_by", json_string(confirmer));
    json_decref(work);
    json_decref(value);
    row_release(&r);
    return rc;
}

/* Parses a request body that must be one JSON object (`example` shows one in the message). */
static int parse_request(const char *body, size_t len, const char *example, json_t **out,
                         tdm_error *err)
{
    json_error_t je;
    *out = NULL;
    json_t *req = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (req == NULL)
        return tdm__error(err, TDM_EPARSE, "line %d, column %d: invalid JSON: %s", je.line,
                          je.column, je.text);
    if (!json_is_object(req)) {
        json_decref(req);
        return tdm__error(err, TDM_EPARSE, "expected a JSON object like %s", example);
    }
    *out = req;
    return 0;
}

int tdm_engine_complete_task(tdm_engine *e, const char *task_id, const char *actor,
                             const char *body, size_t len, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || task_id == NULL || json == NULL || (body == NULL && len > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_complete_task: missing argument");
    json_t *req = NULL;
    int rc = parse_request(body, len, "{\"action\": \"accept\"}", &req, err);
    if (rc != 0)
        return rc;
    const char *action = json_string_value(json_object_get(req, "action"));
    json_t *value = json_object_get(req, "value");
    json_t *comment = json_object_get(req, "comment");
    if (action == NULL || (strcmp(action, "accept") != 0 && strcmp(action, "correct") != 0 &&
                           strcmp(action, "escalate") != 0 && strcmp(action, "confirm") != 0 &&
                           strcmp(action, "decline") != 0))
        rc = tdm__error_field(err, TDM_EINVAL, "action",
                              "\"action\" must be \"accept\", \"correct\" or \"escalate\" "
                              "(or, for an answer awaiting four eyes, \"confirm\" or "
                              "\"decline\")");
    else if (strcmp(action, "correct") == 0 && value == NULL)
        rc = tdm__error_field(err, TDM_EINVAL, "value", "a correction needs the right \"value\"");
    else if (strcmp(action, "correct") != 0 && value != NULL)
        rc = tdm__error_field(err, TDM_EINVAL, "value",
                              "\"value\" goes with \"action\": \"correct\" only");
    else if (comment != NULL && (!json_is_string(comment) || json_string_length(comment) > 4096))
        rc = tdm__error_field(err, TDM_EINVAL, "comment",
                              "\"comment\" must be a string of at most 4096 bytes");
    /* Which step is it? Validate the value against it before touching anything. */
    proc_state *ps = NULL;
    char process[160] = "", step_id[160] = "";
    if (rc == 0) {
        sqlite3 *db;
        rc = tdm__reader_get(e, &db, err);
        if (rc == 0) {
            sqlite3_stmt *st;
            rc = tdm__db_prepare(db, "SELECT process, step FROM tasks WHERE id = ?", &st, err);
            if (rc == 0) {
                sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
                if (sqlite3_step(st) == SQLITE_ROW) {
                    snprintf(process, sizeof process, "%s", text(st, 0));
                    snprintf(step_id, sizeof step_id, "%s", text(st, 1));
                } else {
                    rc = tdm__error_field(err, TDM_ENOTFOUND, "task", "no task \"%s\"", task_id);
                }
                sqlite3_finalize(st);
            }
            tdm__reader_put(e, db);
        }
    }
    if (rc == 0)
        rc = tdm__proc_get(e, process, &ps, err);
    size_t step = 0;
    if (rc == 0 && tdm_process_step_index(ps->p, step_id, &step) != 0)
        rc = tdm__error_field(err, TDM_ECONFLICT, "task",
                              "task %s belongs to step %s, which process %s no longer declares",
                              task_id, step_id, process);
    if (rc == 0 && value != NULL)
        rc = check_value(tdm_process_step(ps->p, step), value, "value", err);
    /* Load the models the item will meet next, here rather than on the writer's thread. */
    for (size_t s = step; rc == 0 && s < ps->n_steps; s++)
        if (tdm_process_step(ps->p, s)->allocation != TDM_ALLOC_HUMAN)
            rc = tdm__model_ensure(e, ps->steps[s], err);
    complete_ctx c = {task_id,
                      actor ? actor : "api",
                      action,
                      value,
                      comment ? json_string_value(comment) : NULL,
                      ps,
                      NULL,
                      NULL,
                      NULL,
                      0,
                      NULL};
    if (rc == 0) {
        tdm__job job = {0};
        job.run = complete_run;
        job.ctx = &c;
        rc = tdm__writer_run(e->writer, &job, err);
        tdm__learning_inline(e);
    }
    tdm__proc_put(e, ps);
    json_decref(req);
    json_decref(c.owned_value);
    if (rc != 0) {
        json_decref(c.decision);
        json_decref(c.item);
        return rc;
    }
    json_t *extra = json_pack("{s:o, s:o}", "decision", c.decision ? c.decision : json_null(),
                              "item", c.item ? c.item : json_null());
    if (c.awaiting) {
        json_object_set_new(extra, "awaiting_confirmation", json_true());
        json_object_set_new(extra, "confirmation_because", json_string(c.because));
    }
    return answer_task(e, task_id, extra, json, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Feedback                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct feedback_ctx {
    const char *decision_id;
    const char *actor;
    const char *verdict;
    json_t *correction; /* borrowed */
    const char *comment;
    proc_state *ps;
    char feedback_id[32];
    uint64_t model_version;
} feedback_ctx;

static int feedback_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    feedback_ctx *c = job->ctx;
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "SELECT d.item_id, d.item_version, d.step, d.value, i.fields FROM "
                                 "decisions d JOIN items i ON i.id = d.item_id WHERE d.id = ?",
                                 err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->decision_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return tdm__error_field(err, TDM_ENOTFOUND, "decision", "no decision \"%s\"",
                                c->decision_id);
    }
    char item[160], step_id[160];
    snprintf(item, sizeof item, "%s", text(st, 0));
    snprintf(step_id, sizeof step_id, "%s", text(st, 2));
    json_t *decided = json_or_null(text(st, 3));
    json_t *fields = json_loads(text(st, 4), 0, NULL);
    sqlite3_reset(st);
    int rc = 0;
    tdm__new_id("fb", c->feedback_id);
    char *corr = c->correction ? json_dumps(c->correction, JSON_ENCODE_ANY) : NULL;
    st = tdm__stmt(tx->stmts,
                   "INSERT INTO feedback (id, decision_id, actor, verdict, correction, comment, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   err);
    if (st == NULL) {
        rc = err->code;
    } else {
        sqlite3_bind_text(st, 1, c->feedback_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c->decision_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, c->actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, c->verdict, -1, SQLITE_STATIC);
        if (corr != NULL)
            sqlite3_bind_text(st, 5, corr, -1, SQLITE_STATIC);
        if (c->comment != NULL)
            sqlite3_bind_text(st, 6, c->comment, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, tx->now);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "storing feedback");
        sqlite3_reset(st);
    }
    free(corr);
    if (rc == 0) {
        json_t *data = json_pack("{s:s, s:s, s:s}", "decision", c->decision_id, "item", item,
                                 "verdict", c->verdict);
        if (c->correction != NULL)
            json_object_set(data, "correction", c->correction);
        if (c->comment != NULL)
            json_object_set_new(data, "comment", json_string(c->comment));
        rc = tdm__tx_audit(tx, c->actor, "feedback.given", c->feedback_id, data, err);
    }
    /* The model learns what the verdict says the answer is. */
    size_t step;
    json_t *label = strcmp(c->verdict, "accurate") == 0 ? decided : c->correction;
    if (rc == 0 && fields != NULL && json_is_string(label) &&
        tdm_process_step_index(c->ps->p, step_id, &step) == 0 &&
        tdm_process_step(c->ps->p, step)->allocation != TDM_ALLOC_HUMAN)
        rc = tdm__learn_in_tx(tx, c->ps, step, fields, json_string_value(label), 1.0, "feedback", 0,
                              &c->model_version, err);
    json_decref(decided);
    json_decref(fields);
    return rc;
}

int tdm_engine_feedback(tdm_engine *e, const char *decision_id, const char *actor, const char *body,
                        size_t len, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || decision_id == NULL || json == NULL || (body == NULL && len > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_feedback: missing argument");
    json_t *req;
    int rc = parse_request(body, len, "{\"verdict\": \"inaccurate\", \"correction\": \"...\"}",
                           &req, err);
    if (rc != 0)
        return rc;
    const char *verdict = json_string_value(json_object_get(req, "verdict"));
    json_t *correction = json_object_get(req, "correction");
    json_t *comment = json_object_get(req, "comment");
    if (verdict == NULL || (strcmp(verdict, "accurate") != 0 && strcmp(verdict, "inaccurate") != 0))
        rc = tdm__error_field(err, TDM_EINVAL, "verdict",
                              "\"verdict\" must be \"accurate\" or \"inaccurate\"");
    else if (correction != NULL && strcmp(verdict, "accurate") == 0)
        rc = tdm__error_field(err, TDM_EINVAL, "correction",
                              "a \"correction\" goes with \"verdict\": \"inaccurate\" only");
    else if (comment != NULL && (!json_is_string(comment) || json_string_length(comment) > 4096))
        rc = tdm__error_field(err, TDM_EINVAL, "comment",
                              "\"comment\" must be a string of at most 4096 bytes");
    proc_state *ps = NULL;
    if (rc == 0) {
        char process[160] = "", step_id[160] = "";
        sqlite3 *db;
        rc = tdm__reader_get(e, &db, err);
        if (rc == 0) {
            sqlite3_stmt *st;
            rc = tdm__db_prepare(db, "SELECT process, step FROM decisions WHERE id = ?", &st, err);
            if (rc == 0) {
                sqlite3_bind_text(st, 1, decision_id, -1, SQLITE_STATIC);
                if (sqlite3_step(st) == SQLITE_ROW) {
                    snprintf(process, sizeof process, "%s", text(st, 0));
                    snprintf(step_id, sizeof step_id, "%s", text(st, 1));
                } else {
                    rc = tdm__error_field(err, TDM_ENOTFOUND, "decision", "no decision \"%s\"",
                                          decision_id);
                }
                sqlite3_finalize(st);
            }
            tdm__reader_put(e, db);
        }
        if (rc == 0)
            rc = tdm__proc_get(e, process, &ps, err);
        size_t step;
        if (rc == 0 && tdm_process_step_index(ps->p, step_id, &step) == 0) {
            if (correction != NULL)
                rc = check_value(tdm_process_step(ps->p, step), correction, "correction", err);
            if (rc == 0 && tdm_process_step(ps->p, step)->allocation != TDM_ALLOC_HUMAN)
                rc = tdm__model_ensure(e, ps->steps[step], err);
        }
    }
    feedback_ctx c = {decision_id,
                      actor ? actor : "api",
                      verdict,
                      correction,
                      comment ? json_string_value(comment) : NULL,
                      ps,
                      "",
                      0};
    if (rc == 0) {
        tdm__job job = {0};
        job.run = feedback_run;
        job.ctx = &c;
        rc = tdm__writer_run(e->writer, &job, err);
        tdm__learning_inline(e);
    }
    tdm__proc_put(e, ps);
    if (rc != 0) {
        json_decref(req);
        return rc;
    }
    json_t *answer = json_pack("{s:s, s:s, s:s}", "feedback_id", c.feedback_id, "decision_id",
                               decision_id, "verdict", verdict);
    json_decref(req); /* verdict points into it */
    if (answer != NULL)
        json_object_set_new(answer, "model_version",
                            c.model_version ? json_integer((json_int_t)c.model_version)
                                            : json_null());
    return tdm__answer(answer, json, NULL, err);
}
