/*
 * dashboard.c — the owner dashboard's data for one process (tdm_engine_dashboard): how much
 * the AI decides alone and how much people decide, how often people override it, what it
 * saves against the baseline, over all time and as a series of time buckets; the state of
 * each step's guardrails, of the process's queues, the AI's most frequent confusions and
 * its latest decisions.
 *
 * NOTES ON THE DESIGN OF THE DASHBOARD
 *
 * One snapshot. Everything is read in one read transaction on a pooled read connection, so
 * the numbers of one answer agree with each other even while intake and people write.
 * The steps' thresholds and pause states come, as in the registry, from the engine's
 * memory; their counts from that transaction (tdm__registry_entry, shared with
 * governance.c, so the audited error and its bound are computed in one place only).
 *
 * Totals and series from the same rows. Each source (items, decisions, feedback) is read
 * once, its rows grouped by bucket: the index of the bucket within the window, -1 for
 * everything before the window and -2 for anything after it (a clock set back). The totals
 * are the sums over every group, the series the groups of the window, so that over a window
 * that covers all the rows the series add up exactly to the totals.
 *
 * The window. Buckets are a minute, an hour or a day long, aligned to UTC boundaries
 * (multiples of their length since the epoch, which has no leap seconds). The series has
 * `points` buckets ending with the one holding now; every bucket is present, empty or not.
 * "from" is the start of the first, "to" the end of the last (exclusive).
 *
 * What counts, exactly (docs/api.md, "GET /v1/processes/{name}/dashboard", says it for
 * users). A row is placed in time by the column given in brackets.
 *   - items: the process's items (one per item id, whatever its version) [items.received_at,
 *     the first time it was received].
 *   - decided_by_ai: decisions with autonomous = 1 [decisions.created_at]. Here and below,
 *     the decisions of every version of an item count: an item submitted again is decided
 *     again.
 *   - decided_by_people: decisions with autonomous = 0: a person's answer to a task
 *     [decisions.created_at]. (Every such decision comes from a task today, so this equals
 *     human_answers; it is counted on its own in case that changes.)
 *   - queued (totals only): the process's tasks not done: open, claimed or confirming (four
 *     eyes), now.
 *   - automation_rate: decided_by_ai / (decided_by_ai + decided_by_people); null when both
 *     are 0.
 *   - human_answers: tasks completed with action accept or correct, counted by the decision
 *     each of them made (decisions.task_id is set on exactly those) [decisions.created_at].
 *     An answer confirmed under four eyes counts once, when confirmed.
 *   - overrides: human answers whose value differs from the AI's proposal on the task (an
 *     accept never does; a correct to the proposed value does not)
 *     [decisions.created_at], plus feedback with verdict "inaccurate" on a decision the AI
 *     made alone, with or without a correction [feedback.created_at]. Every feedback row
 *     counts: two people's feedback on one decision are two reviews.
 *   - override_rate: overrides / reviews of the AI, where the reviews are the human answers
 *     to tasks that carried an AI proposal plus every feedback on a decision the AI made
 *     alone; null when there are none. An answer at a human step (no proposal: nothing to
 *     override) counts in human_answers but not in this rate, as in the fairness report.
 *   - escalations (totals only): tasks escalated, that is tasks of the process that are in
 *     the escalation queue of their step (as the process declares it now). Escalating does
 *     not complete a task: tasks.c moves it to that queue, open, and refuses to escalate it
 *     from there, so each escalated task is counted once, whatever happens to it next.
 *   - hours_saved: decided_by_ai × baseline.minutes_per_item / 60.
 *   - steps: every step in order; ai and hybrid steps with their registry numbers (risk
 *     budget, threshold, audit samples since training or the last resume, their error and
 *     its Clopper-Pearson bound, the pause), human steps with nulls where nothing applies.
 *   - queues: every queue a step names (queue, then escalation_queue, in step order, each
 *     once), counting the process's tasks in it: open (open, or claimed with a lapsed
 *     lease, as the queue lists them), claimed (lease running), confirming,
 *     oldest_open_seconds (now − the creation of the oldest open task, whole seconds; null
 *     when none is open), sla_breached (tasks not done whose due_at has passed) and
 *     sla_minutes (of the first step naming the queue).
 *   - confusions: the ten most frequent (proposed, actual) pairs, by count then by the two
 *     labels, from human answers whose value differs from the proposal (proposed: the
 *     proposal, actual: the answer) and from feedback "inaccurate" with a correction
 *     different from the decision's value, on any decision of the process (proposed: the
 *     decision's value, actual: the correction).
 *   - recent: the process's ten latest decisions, newest first.
 *
 * Cost. The totals are over all time, so they read every row the process has in items,
 * decisions and feedback once (feedback through decisions and feedback_decision). Those
 * reads want indexes on items (process, received_at), decisions (process, created_at) and
 * tasks (process, state), which the store does not have yet: until it does, each of them
 * scans its table (as the registry's own counts already do). With them every read is an
 * index range, and the ten recent decisions are the last ten entries of one. The queue
 * counts and the escalations go through tasks_queue, bounded by the queue's tasks not done
 * and by the escalation queue; the confusions and recent decisions answer ten rows.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"

/*
 * The grouped reads. Each places a row in time with its bucket "b": the index of its bucket
 * in the window, -1 before the window, -2 after it. ?1 is the process, ?2 the window's
 * start, ?3 its end and ?4 a bucket's length, all in ms.
 */
static const char items_sql[] =
    "SELECT CASE WHEN received_at < ?2 THEN -1 WHEN received_at >= ?3 THEN -2 ELSE "
    "(received_at - ?2) / ?4 END AS b, count(*) FROM items WHERE process = ?1 GROUP BY b";

static const char decisions_sql[] =
    "SELECT CASE WHEN created_at < ?2 THEN -1 WHEN created_at >= ?3 THEN -2 ELSE "
    "(created_at - ?2) / ?4 END AS b, sum(autonomous <> 0), sum(autonomous = 0), "
    "count(task_id), count(CASE WHEN task_id IS NOT NULL AND proposal IS NOT NULL THEN 1 END), "
    "count(CASE WHEN task_id IS NOT NULL AND proposal IS NOT NULL AND value <> proposal THEN 1 "
    "END) FROM decisions WHERE process = ?1 GROUP BY b";

static const char feedback_sql[] =
    "SELECT CASE WHEN f.created_at < ?2 THEN -1 WHEN f.created_at >= ?3 THEN -2 ELSE "
    "(f.created_at - ?2) / ?4 END AS b, count(*), sum(f.verdict = 'inaccurate') FROM feedback "
    "f JOIN decisions d ON d.id = f.decision_id WHERE d.process = ?1 AND d.autonomous <> 0 "
    "GROUP BY b";

static const char queued_sql[] = "SELECT count(*) FROM tasks WHERE process = ?1 AND state IN "
                                 "('open', 'claimed', 'confirming')";

/* Through tasks_queue: the unary "+" keeps an index on the process from being picked
 * instead, which would read every task the process ever had. */
static const char escalated_sql[] =
    "SELECT count(*) FROM tasks WHERE queue = ?1 AND +process = ?2 AND +step = ?3";

/* ?3 is now. "open" is what the queue's own listing calls open (tasks.c). Through
 * tasks_queue (queue, state): bounded by the queue's tasks not done. */
static const char queue_sql[] =
    "SELECT count(CASE WHEN state = 'open' OR (state = 'claimed' AND lease_until < ?3) THEN 1 "
    "END), count(CASE WHEN state = 'claimed' AND lease_until >= ?3 THEN 1 END), "
    "count(CASE WHEN state = 'confirming' THEN 1 END), "
    "min(CASE WHEN state = 'open' OR (state = 'claimed' AND lease_until < ?3) THEN created_at "
    "END), count(CASE WHEN due_at < ?3 THEN 1 END) FROM tasks WHERE queue = ?1 AND state IN "
    "('open', 'claimed', 'confirming') AND +process = ?2";

/* Labels as the fairness report shows them: a JSON string's text, other values as JSON.
 * ?2 and ?3 bound the time of the answer or the feedback (metrics.c reads a window). */
static const char confusions_sql[] =
    "SELECT json_extract(p, '$') AS proposed, json_extract(a, '$') AS actual, count(*) AS n "
    "FROM (SELECT proposal AS p, value AS a FROM decisions WHERE process = ?1 AND task_id IS "
    "NOT NULL AND proposal IS NOT NULL AND value <> proposal AND created_at >= ?2 AND "
    "created_at < ?3 "
    "UNION ALL SELECT d.value, f.correction FROM feedback f JOIN decisions d ON d.id = "
    "f.decision_id WHERE d.process = ?1 AND f.verdict = 'inaccurate' AND f.correction IS NOT "
    "NULL AND json_extract(f.correction, '$') IS NOT json_extract(d.value, '$') AND "
    "f.created_at >= ?2 AND f.created_at < ?3) "
    "GROUP BY proposed, actual ORDER BY n DESC, proposed, actual LIMIT 10";

static const char recent_sql[] =
    "SELECT id, item_id, step, value, confidence, by, autonomous, created_at FROM decisions "
    "WHERE process = ?1 ORDER BY created_at DESC, seq DESC LIMIT 10";

/* The counts of a bucket, or of all time. */
typedef struct counts {
    int64_t items;
    int64_t by_ai, by_people;
    int64_t answers;   /* human answers */
    int64_t reviews;   /* human answers with a proposal, and feedback on autonomous decisions */
    int64_t overrides; /* of those reviews, the ones that overrode the AI */
} counts;

typedef struct window {
    int64_t now, from, to, width;
    unsigned points;
} window;

/* Adds the counts of one row of a grouped query (its columns after the bucket) to `c`. */
typedef void (*add_fn)(sqlite3_stmt *st, counts *c);

static void add_items(sqlite3_stmt *st, counts *c)
{
    c->items += sqlite3_column_int64(st, 1);
}

static void add_decisions(sqlite3_stmt *st, counts *c)
{
    c->by_ai += sqlite3_column_int64(st, 1);
    c->by_people += sqlite3_column_int64(st, 2);
    c->answers += sqlite3_column_int64(st, 3);
    c->reviews += sqlite3_column_int64(st, 4);
    c->overrides += sqlite3_column_int64(st, 5);
}

static void add_feedback(sqlite3_stmt *st, counts *c)
{
    c->reviews += sqlite3_column_int64(st, 1);
    c->overrides += sqlite3_column_int64(st, 2);
}

/* Prepares (or finds on the connection) a statement and binds ?1: the process, or for the
 * queue's and the escalations' counts the queue. */
static int statement(sqlite3 *db, const char *sql, const char *first, sqlite3_stmt **st,
                     tdm_error *err)
{
    int rc = tdm__db_kept(db, sql, st, err);
    if (rc == 0)
        sqlite3_bind_text(*st, 1, first, -1, SQLITE_STATIC);
    return rc;
}

/* Leaves a kept statement ready for its next use; turns a step's failure into an error. */
static int finish(sqlite3 *db, sqlite3_stmt *st, int step, tdm_error *err)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return step == SQLITE_DONE || step == SQLITE_ROW
               ? 0
               : tdm__db_error(db, step, err, "reading the dashboard");
}

/* Ends a query that built `list` (NULL when memory ran out) from its rows: *out = list, or
 * an error and the list freed. */
static int finish_list(sqlite3 *db, sqlite3_stmt *st, int step, json_t *list, json_t **out,
                       tdm_error *err)
{
    if (list == NULL) {
        finish(db, st, SQLITE_DONE, err);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    int rc = finish(db, st, step, err);
    if (rc != 0) {
        json_decref(list);
        return rc;
    }
    *out = list;
    return 0;
}

/* Runs a grouped query: every row into the totals, the window's rows into their bucket. */
static int grouped(sqlite3 *db, const char *sql, const char *process, const window *w, add_fn add,
                   counts *total, counts *series, tdm_error *err)
{
    sqlite3_stmt *st;
    int rc = statement(db, sql, process, &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 2, w->from);
    sqlite3_bind_int64(st, 3, w->to);
    sqlite3_bind_int64(st, 4, w->width);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t b = sqlite3_column_int64(st, 0);
        add(st, total);
        if (b >= 0 && b < (int64_t)w->points)
            add(st, &series[b]);
    }
    return finish(db, st, s, err);
}

/* A count, with ?1 and, when given, ?2 and ?3 bound to text values. */
static int count_one(sqlite3 *db, const char *sql, const char *a1, const char *a2, const char *a3,
                     int64_t *out, tdm_error *err)
{
    sqlite3_stmt *st;
    int rc = statement(db, sql, a1, &st, err);
    if (rc != 0)
        return rc;
    if (a2 != NULL)
        sqlite3_bind_text(st, 2, a2, -1, SQLITE_STATIC);
    if (a3 != NULL)
        sqlite3_bind_text(st, 3, a3, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    *out = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    return finish(db, st, s, err);
}

static json_t *rate(int64_t num, int64_t den)
{
    return den > 0 ? json_real((double)num / (double)den) : json_null();
}

/* A number as an integer when it is a whole one (SLA minutes), else as a real. */
static json_t *number(double v)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 9e15)
        return json_integer((json_int_t)v);
    return json_real(v);
}

/* A bucket of the series: its start, then its counts. */
static json_t *bucket_json(const counts *c, int64_t at, double minutes_per_item)
{
    return json_pack("{s:o, s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:f}", "at", tdm__json_time(at),
                     "items", (json_int_t)c->items, "decided_by_ai", (json_int_t)c->by_ai,
                     "decided_by_people", (json_int_t)c->by_people, "automation_rate",
                     rate(c->by_ai, c->by_ai + c->by_people), "human_answers",
                     (json_int_t)c->answers, "overrides", (json_int_t)c->overrides, "override_rate",
                     rate(c->overrides, c->reviews), "hours_saved",
                     (double)c->by_ai * minutes_per_item / 60.0);
}

/* The totals: the same counts over all time, with the queue and the escalations. */
static json_t *totals_json(const counts *c, int64_t queued, int64_t escalated,
                           double minutes_per_item)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:I, s:f}", "items",
                     (json_int_t)c->items, "decided_by_ai", (json_int_t)c->by_ai,
                     "decided_by_people", (json_int_t)c->by_people, "queued", (json_int_t)queued,
                     "automation_rate", rate(c->by_ai, c->by_ai + c->by_people), "human_answers",
                     (json_int_t)c->answers, "overrides", (json_int_t)c->overrides, "override_rate",
                     rate(c->overrides, c->reviews), "escalations", (json_int_t)escalated,
                     "hours_saved", (double)c->by_ai * minutes_per_item / 60.0);
}

static json_t *series_json(const counts *series, const window *w, double minutes_per_item)
{
    json_t *list = json_array();
    for (unsigned i = 0; list != NULL && i < w->points; i++) {
        json_t *b = bucket_json(&series[i], w->from + (int64_t)i * w->width, minutes_per_item);
        if (b == NULL || json_array_append_new(list, b) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

/* A field of a registry entry, borrowed (null when missing). */
static json_t *field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return v != NULL ? v : json_null();
}

static int steps_json(sqlite3 *db, proc_state *ps, json_t **out, tdm_error *err)
{
    json_t *list = json_array();
    if (list == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    for (size_t i = 0; i < ps->n_steps; i++) {
        const tdm_step_info *si = tdm_process_step(ps->p, i);
        json_t *s;
        if (si->allocation == TDM_ALLOC_HUMAN) {
            s = json_pack("{s:s, s:s, s:n, s:n, s:n, s:i, s:n, s:n, s:b, s:n}", "step", si->id,
                          "allocation", tdm_allocation_name(si->allocation), "max_error",
                          "confidence", "threshold", "audited", 0, "audited_error",
                          "audited_error_bound", "paused", 0, "pause_reason");
        } else {
            json_t *entry;
            int rc = tdm__registry_entry(db, ps, i, &entry, err);
            if (rc != 0) {
                json_decref(list);
                return rc;
            }
            json_t *budget = field(entry, "risk_budget");
            s = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "step", si->id,
                          "allocation", tdm_allocation_name(si->allocation), "max_error",
                          field(budget, "max_error"), "confidence", field(budget, "confidence"),
                          "threshold", field(entry, "threshold"), "audited",
                          field(entry, "audited"), "audited_error", field(entry, "audited_error"),
                          "audited_error_bound", field(entry, "audited_error_bound"), "paused",
                          field(entry, "paused"), "pause_reason", field(entry, "pause_reason"));
            json_decref(entry);
        }
        if (s == NULL || json_array_append_new(list, s) != 0) {
            json_decref(list);
            return tdm__error_code(err, TDM_ENOMEM);
        }
    }
    *out = list;
    return 0;
}

/* The escalations: per step with an escalation queue, its tasks in that queue. */
static int escalations(sqlite3 *db, proc_state *ps, int64_t *out, tdm_error *err)
{
    *out = 0;
    for (size_t i = 0; i < ps->n_steps; i++) {
        const tdm_step_info *si = tdm_process_step(ps->p, i);
        if (si->escalation_queue == NULL)
            continue;
        int64_t n;
        int rc = count_one(db, escalated_sql, si->escalation_queue, tdm_process_name(ps->p), si->id,
                           &n, err);
        if (rc != 0)
            return rc;
        *out += n;
    }
    return 0;
}

int tdm__queue_counts_read(sqlite3 *db, const char *process, const char *queue, int64_t now,
                           tdm__queue_counts *out, tdm_error *err)
{
    memset(out, 0, sizeof *out);
    out->oldest_open = -1;
    sqlite3_stmt *st;
    int rc = statement(db, queue_sql, queue, &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 2, process, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        out->open = sqlite3_column_int64(st, 0);
        out->claimed = sqlite3_column_int64(st, 1);
        out->confirming = sqlite3_column_int64(st, 2);
        if (sqlite3_column_type(st, 3) != SQLITE_NULL)
            out->oldest_open = sqlite3_column_int64(st, 3);
        out->sla_breached = sqlite3_column_int64(st, 4);
    }
    return finish(db, st, s, err);
}

static int queue_json(sqlite3 *db, const char *process, const char *queue, double sla_minutes,
                      int64_t now, json_t *list, tdm_error *err)
{
    tdm__queue_counts c;
    int rc = tdm__queue_counts_read(db, process, queue, now, &c, err);
    if (rc != 0)
        return rc;
    json_t *age =
        c.oldest_open < 0
            ? json_null()
            : json_integer((json_int_t)(c.oldest_open < now ? (now - c.oldest_open) / 1000 : 0));
    json_t *q = json_pack("{s:s, s:I, s:I, s:I, s:o, s:I, s:o}", "queue", queue, "open",
                          (json_int_t)c.open, "claimed", (json_int_t)c.claimed, "confirming",
                          (json_int_t)c.confirming, "oldest_open_seconds", age, "sla_breached",
                          (json_int_t)c.sla_breached, "sla_minutes", number(sla_minutes));
    if (q == NULL || json_array_append_new(list, q) != 0)
        return tdm__error_code(err, TDM_ENOMEM);
    return 0;
}

/* Whether the list of queues already has `queue`. */
static int listed(json_t *list, const char *queue)
{
    size_t i;
    json_t *q;
    json_array_foreach(list, i, q)
    {
        const char *name = json_string_value(json_object_get(q, "queue"));
        if (name != NULL && strcmp(name, queue) == 0)
            return 1;
    }
    return 0;
}

/* Every queue the steps name, each once, in step order (queue before escalation_queue). */
static int queues_json(sqlite3 *db, proc_state *ps, int64_t now, json_t **out, tdm_error *err)
{
    json_t *list = json_array();
    if (list == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ps->n_steps; i++) {
        const tdm_step_info *si = tdm_process_step(ps->p, i);
        const char *named[2] = {si->queue, si->escalation_queue};
        for (size_t k = 0; rc == 0 && k < 2; k++)
            if (named[k] != NULL && !listed(list, named[k]))
                rc = queue_json(db, tdm_process_name(ps->p), named[k], si->sla_minutes, now, list,
                                err);
    }
    if (rc != 0) {
        json_decref(list);
        return rc;
    }
    *out = list;
    return 0;
}

static const char *text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* A label read from a column json_extract() made (text, or a number as its text). */
static json_t *label(sqlite3_stmt *st, int i)
{
    const char *s = text(st, i);
    return json_string(s != NULL ? s : "null"); /* json_extract() of a JSON null */
}

int tdm__confusions(sqlite3 *db, const char *process, int64_t from, int64_t to, json_t **out,
                    tdm_error *err)
{
    sqlite3_stmt *st;
    int rc = statement(db, confusions_sql, process, &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    json_t *list = json_array();
    int s = SQLITE_DONE;
    while (list != NULL && (s = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *c = json_pack("{s:o, s:o, s:I}", "proposed", label(st, 0), "actual", label(st, 1),
                              "count", (json_int_t)sqlite3_column_int64(st, 2));
        if (c == NULL || json_array_append_new(list, c) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return finish_list(db, st, s, list, out, err);
}

static int recent_json(sqlite3 *db, const char *process, json_t **out, tdm_error *err)
{
    sqlite3_stmt *st;
    int rc = statement(db, recent_sql, process, &st, err);
    if (rc != 0)
        return rc;
    json_t *list = json_array();
    int s = SQLITE_DONE;
    while (list != NULL && (s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *value = (const char *)sqlite3_column_text(st, 3);
        json_t *v = value != NULL ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;
        json_t *d = json_pack(
            "{s:s, s:s, s:s, s:o, s:o, s:s, s:b, s:o}", "decision_id", text(st, 0), "item_id",
            text(st, 1), "step", text(st, 2), "value", v != NULL ? v : json_null(), "confidence",
            sqlite3_column_type(st, 4) == SQLITE_NULL ? json_null()
                                                      : json_real(sqlite3_column_double(st, 4)),
            "by", text(st, 5), "autonomous", sqlite3_column_int(st, 6) != 0, "at",
            tdm__json_time(sqlite3_column_int64(st, 7)));
        if (d == NULL || json_array_append_new(list, d) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return finish_list(db, st, s, list, out, err);
}

/* Everything the answer holds that the store gives, read inside the caller's transaction. */
static int read_all(sqlite3 *db, proc_state *ps, const window *w, const char *bucket, json_t **out,
                    tdm_error *err)
{
    const tdm_process *p = ps->p;
    const char *process = tdm_process_name(p);
    double minutes = tdm_process_baseline_minutes(p);
    counts total = {0};
    counts *series = calloc(w->points, sizeof *series);
    if (series == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    int64_t queued = 0, escalated = 0;
    json_t *steps = NULL, *queues = NULL, *confusions = NULL, *recent = NULL;
    int rc = grouped(db, items_sql, process, w, add_items, &total, series, err);
    if (rc == 0)
        rc = grouped(db, decisions_sql, process, w, add_decisions, &total, series, err);
    if (rc == 0)
        rc = grouped(db, feedback_sql, process, w, add_feedback, &total, series, err);
    if (rc == 0)
        rc = count_one(db, queued_sql, process, NULL, NULL, &queued, err);
    if (rc == 0)
        rc = escalations(db, ps, &escalated, err);
    if (rc == 0)
        rc = steps_json(db, ps, &steps, err);
    if (rc == 0)
        rc = queues_json(db, ps, w->now, &queues, err);
    if (rc == 0)
        rc = tdm__confusions(db, process, INT64_MIN, INT64_MAX, &confusions, err);
    if (rc == 0)
        rc = recent_json(db, process, &recent, err);
    json_t *totals = rc == 0 ? totals_json(&total, queued, escalated, minutes) : NULL;
    json_t *list = rc == 0 ? series_json(series, w, minutes) : NULL;
    free(series);
    if (rc == 0 && (totals == NULL || list == NULL))
        rc = tdm__error_code(err, TDM_ENOMEM);
    if (rc != 0) {
        json_decref(totals);
        json_decref(list);
        json_decref(steps);
        json_decref(queues);
        json_decref(confusions);
        json_decref(recent);
        return rc;
    }
    *out = json_pack("{s:s, s:o, s:s, s:o, s:o, s:{s:f, s:f}, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "process", process, "generated_at", tdm__json_time(w->now), "bucket", bucket,
                     "from", tdm__json_time(w->from), "to", tdm__json_time(w->to), "baseline",
                     "minutes_per_item", minutes, "error_rate", tdm_process_baseline_error(p),
                     "totals", totals, "series", list, "steps", steps, "queues", queues,
                     "confusions", confusions, "recent", recent);
    return *out != NULL ? 0 : tdm__error_code(err, TDM_ENOMEM);
}

int tdm_engine_dashboard(tdm_engine *e, const char *process, const char *bucket, unsigned points,
                         char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || process == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_dashboard: missing argument");
    *json = NULL;
    if (bucket == NULL)
        bucket = "hour";
    int64_t width;
    if (strcmp(bucket, "minute") == 0)
        width = 60 * 1000;
    else if (strcmp(bucket, "hour") == 0)
        width = 3600 * 1000;
    else if (strcmp(bucket, "day") == 0)
        width = 86400 * 1000;
    else
        return tdm__error_field(err, TDM_EINVAL, "bucket",
                                "bucket: expected minute, hour or day, got \"%.64s\"", bucket);
    if (points == 0)
        points = TDM_DASHBOARD_DEFAULT_POINTS;
    if (points > TDM_DASHBOARD_MAX_POINTS)
        return tdm__error_field(err, TDM_EINVAL, "points", "points: %u is over the limit of %d",
                                points, TDM_DASHBOARD_MAX_POINTS);
    proc_state *ps;
    int rc = tdm__proc_get(e, process, &ps, err);
    if (rc != 0)
        return rc;
    window w;
    w.now = tdm__now_ms();
    w.width = width;
    w.points = points;
    int64_t current = w.now - w.now % width;
    w.from = current - (int64_t)(points - 1) * width;
    w.to = current + width;
    sqlite3 *db = NULL;
    rc = tdm__reader_get(e, &db, err);
    if (rc == 0)
        rc = tdm__db_exec(db, "BEGIN", err);
    json_t *answer = NULL;
    if (rc == 0) {
        rc = read_all(db, ps, &w, bucket, &answer, err);
        /* A read transaction changes nothing: ending it either way gives the snapshot back. */
        if (tdm__db_exec(db, "COMMIT", NULL) != 0 && !sqlite3_get_autocommit(db))
            tdm__db_exec(db, "ROLLBACK", NULL);
    }
    if (db != NULL)
        tdm__reader_put(e, db);
    tdm__proc_put(e, ps);
    if (rc != 0)
        return rc;
    return tdm__answer(answer, json, NULL, err);
}
