/*
 * learning.c — the engine's models: training from history, loading (snapshot + replay),
 * online learning from human answers, and keeping each step's threshold honest.
 *
 * NOTES ON THE DESIGN OF MODEL VERSIONS
 *
 * Every change to a step's model is a new version, numbered per step: a batch fit stores the
 * whole model (a snapshot) as its version; an online update stores only what it learned
 * from (the item's input fields, the label, the weight) in model_updates, plus a models row
 * with the counts. A model is rebuilt by loading the newest snapshot at or below the step's
 * current version and replaying the updates after it, in order: updates are deterministic,
 * so the result is the same model, bit for bit. Snapshots are written every
 * TDM__SNAPSHOT_EVERY updates and when the engine closes, which keeps replays short.
 *
 * NOTES ON KEEPING THE THRESHOLD HONEST
 *
 * A step's threshold is first certified on the cross-fitted scores of its batch fit, which
 * are stored as checks (source "crossfit"). After that, checks come from people: every task
 * answered on an item whose model proposal was recorded before the model learned the answer
 * is a prequential test of the model (source "review", or "audit" for an audit sample). Only
 * tasks that were not queued by a review rule count (rule-fired items are a population the
 * AI never decides alone); audit samples count with weight 1 / their sampling rate, since
 * they stand for all the autonomous decisions they were drawn from. Every
 * TDM__RECOMPUTE_EVERY new checks (and after every wrong audit sample) the threshold is
 * recomputed with tdm_risk_threshold_weighted(), on checks chosen by rules that never look
 * at whether a check was right:
 *
 *   - Only live checks that describe the current model: the most recent
 *     TDM__LIVE_WINDOW_STARTS * tdm_risk_start_items() of them (9,168 at a 1% budget and
 *     95% confidence). The online model changes with every answer, and checks of its first
 *     versions — a model that has seen one label proposes it at confidence 1 — must age
 *     out, or they hold the top of the confidence scale for ever. But the scan starts only
 *     where tdm_risk_start_items() checks are in, and those must be a small top slice of
 *     the window for the start to fall where errors are rare. On the checks of a cold-start
 *     replay of Banking77 (reviewers who never err, seed 1), scanned every 500 rows,
 *     windows of 2 and 4 times that count never certified anything, where 6 and 8 times
 *     certified as early as all the checks did and came lower after; with seed 2 none of
 *     them certified.
 *
 *   - With a certified threshold t in force (and automation not paused), only the band
 *     below t is tested: the window's checks with confidence under t, scanned from t down.
 *     The region above t is already certified; if the band [t', t) is certified at or under
 *     the budget too, so is everything above t' (a mixture of two parts, each at or under
 *     it), and t' replaces t. In fixed-sequence terms the band test is a level-delta test
 *     of "the error above t' exceeds the budget" given that the one above t did not, so the
 *     sequence keeps its level. Below t every item went to a person, so the band's checks
 *     are a census with weight 1: the heavy audit weights never enter. A band that does not
 *     certify changes nothing.
 *
 *   - With no threshold, or while automation is paused, the whole scale is scanned anew, on
 *     the last fit's cross-fitted checks and the live window together.
 *
 * Why the threshold in force is not re-tested from the top on the weighted checks, as it was
 * before: above t the only live checks are the audit samples, a 2% sample weighing 50 each.
 * Any honest bound on a region whose mass is mostly autonomous decisions, known through a
 * few dozen samples, is wide: 40 audit samples without a mistake bound that region's error
 * at 7%, so mixing them in took the certificate away even when every audit sample was right
 * (with Kish's effective count, after about 15 of them on Banking77). Certifying the
 * autonomous region from audit samples alone would take about 300 error-free samples at a
 * 1% budget, 15,000 autonomous decisions at a 2% rate. So the audit samples do what they can
 * do well, the drift test: after every wrong audit sample, the audit samples since the
 * model was fitted or automation resumed are tested, and when the Clopper-Pearson lower
 * bound on their error is above the step's budget, the autonomous decisions are proven
 * worse than allowed, and the step stops deciding alone (paused, with an automation.paused
 * audit event naming the owner) until a person resumes it or a new model is trained.
 *
 * The drift test looks again at every wrong audit sample, and a test at level delta repeated
 * at every look would, over a long enough run, pause a step whose error sits right at its
 * budget with a probability near one. So the look at the k-th wrong sample is made at level
 * delta / (k (k + 1)), which sum to delta: the chance that a step within its budget is ever
 * paused stays at or under delta for as long as the samples accumulate. (Between wrong
 * samples the lower bound only falls, so the looks at wrong samples are the only ones that
 * matter; and the k-th look rejects exactly when the k-th wrong sample comes early, which
 * for an error rate at or under the budget has probability at most its level.) Measured at
 * a 1% budget and 95% confidence, 4,000 runs of 3,000 samples each: a step exactly at its
 * budget was paused in 27% of the runs by the test at a fixed level, and is now in 2.6%;
 * one whose decisions are 10% wrong is still always paused, after 29 samples on average
 * instead of 17. Two wrong samples pause a 1% step when they come within the first 13
 * samples (35 before). While paused, recomputations scan the whole scale, so the threshold a
 * resumed step returns to is certified afresh and may be higher than before.
 *
 * What the certificate means. Each recomputation is a level-delta test on the checks it
 * reads; the recomputations over time are not corrected for their number, and the checks are
 * judged by reviewers: when reviewers err, a check counts their mistake as the model's (for
 * a reviewer who errs at random this only makes the bound more cautious, by about the
 * reviewers' error rate, which is why a budget below the reviewers' own error rate cannot be
 * certified from their answers at all).
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"

/* The live checks a recomputation reads, in units of tdm_risk_start_items() (see the notes). */
#define TDM__LIVE_WINDOW_STARTS 8

/* A step's first refit comes after this many answers; later ones when the answers since the
 * last fit reach half of what that fit learned from (see NOTES ON REFITS). */
#define TDM__REFIT_FIRST 1000

/* The learning thread's nice value. A fit keeps a core busy for seconds (3.4 s for 10,003
 * Banking77 rows); beside intake at 5,000 items/s on two cores, a refit of 9,000 rows took the
 * p90 from 7-15 ms to 45-264 ms at normal priority, 30-82 ms at nice 10, where the fit has a
 * tenth of a request thread's weight while they want the CPU and all of an idle core. (What a
 * refit still costs the p99 beside intake, from the fit's CPU and the writer round that
 * stores the new model, 17 MB, bench/learning measures.) A periodic snapshot's serializing
 * gets the same low priority. */
#define TDM__REFIT_NICE 10

/* What the learning thread does for a step: a refit (NOTES ON REFITS) or a periodic snapshot
 * (engine.c). */
enum { WORK_REFIT, WORK_SNAPSHOT };

static void learning_later(tdm_engine *e, step_model *sm, int kind);

/* Whether sm has learned enough online since its last fit (or its last refit not adopted)
 * to be fitted again; under its lock. */
static int refit_due(const step_model *sm)
{
    int tried = sm->tried_version > sm->fit_version;
    uint64_t from = tried ? sm->tried_version : sm->fit_version;
    uint64_t rows = tried ? sm->tried_examples : sm->fit_examples;
    uint64_t need = rows / 2 > TDM__REFIT_FIRST ? rows / 2 : TDM__REFIT_FIRST;
    return sm->version > from && sm->version - from >= need;
}

/* ------------------------------------------------------------------------------------------ */
/* Item values                                                                                */
/* ------------------------------------------------------------------------------------------ */

void tdm__item_values(const tdm_step_info *info, json_t *fields, item_values *out)
{
    out->n = info->n_inputs < 64 ? info->n_inputs : 64;
    for (size_t i = 0; i < out->n; i++) {
        json_t *v = fields ? json_object_get(fields, info->inputs[i].name) : NULL;
        out->v[i].data = NULL;
        out->v[i].len = 0;
        if (json_is_string(v)) {
            out->v[i].data = json_string_value(v);
            out->v[i].len = json_string_length(v);
        } else if (json_is_integer(v)) {
            int n = snprintf(out->num[i], sizeof out->num[i], "%" JSON_INTEGER_FORMAT,
                             json_integer_value(v));
            out->v[i].data = out->num[i];
            out->v[i].len = (size_t)n;
        } else if (json_is_real(v)) {
            int n = snprintf(out->num[i], sizeof out->num[i], "%.17g", json_real_value(v));
            out->v[i].data = out->num[i];
            out->v[i].len = (size_t)n;
        } else if (json_is_boolean(v)) {
            out->v[i].data = json_is_true(v) ? "true" : "false";
            out->v[i].len = strlen(out->v[i].data);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Creates an empty model for a step that has never been trained (online learning from the
 * first human answers). */
static int empty_model(const tdm_step_info *info, tdm_model **out)
{
    tdm_train_opts o;
    tdm_train_opts_init(&o);
    o.target_error = info->max_error;
    o.delta = 1 - info->confidence;
    return tdm_model_new(info->inputs, info->n_inputs, &o, out);
}

/* Replays one logged update onto `m`. */
static int replay(const tdm_step_info *info, tdm_model *m, const char *fields_json,
                  const char *label, double weight)
{
    json_t *fields = json_loads(fields_json, 0, NULL);
    if (fields == NULL)
        return TDM_ECORRUPT;
    item_values iv;
    tdm__item_values(info, fields, &iv);
    int rc = tdm_model_update(m, iv.v, label, weight, NULL);
    json_decref(fields);
    return rc;
}

static const tdm_step_info *find_step(tdm_engine *e, step_model *sm, proc_state **ps_out,
                                      size_t *index)
{
    proc_state *ps;
    if (tdm__proc_get(e, sm->process, &ps, NULL) != 0)
        return NULL;
    size_t i;
    if (tdm_process_step_index(ps->p, sm->step, &i) != 0 || ps->steps[i] != sm) {
        tdm__proc_put(e, ps);
        return NULL;
    }
    *ps_out = ps;
    if (index != NULL)
        *index = i;
    return tdm_process_step(ps->p, i);
}

/* Binds ?1 process, ?2 step, ?3 and ?4 a range of versions: the parameters of load_model()'s
 * queries. */
static void bind_versions(sqlite3_stmt *st, const step_model *sm, uint64_t from, uint64_t to)
{
    sqlite3_bind_text(st, 1, sm->process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sm->step, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)from);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)to);
}

/* Reads a snapshot stored in chunks (engine.c, periodic snapshots): `n` chunks numbered
 * from 0, concatenated, then deserialized into *out. */
static int load_chunks(sqlite3 *db, const step_model *sm, uint64_t version, int64_t n,
                       const char *name, tdm_model **out, tdm_error *err)
{
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(db,
                             "SELECT seq, data FROM model_chunks WHERE process = ? AND step = ? "
                             "AND version = ? ORDER BY seq",
                             &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, sm->process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sm->step, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)version);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        rc = TDM_ENOMEM;
    int64_t seen = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(st, 1);
        size_t size = (size_t)sqlite3_column_bytes(st, 1);
        if (sqlite3_column_int64(st, 0) != seen++ || (size > 0 && data == NULL))
            rc = TDM_ECORRUPT;
        else if (size > 0 && fwrite(data, 1, size, f) != size)
            rc = TDM_ENOMEM;
    }
    sqlite3_finalize(st);
    if (f != NULL && fclose(f) != 0 && rc == 0)
        rc = TDM_ENOMEM;
    if (rc == 0 && seen != n)
        rc = TDM_ECORRUPT;
    if (rc == 0)
        rc = tdm_model_deserialize((const unsigned char *)buf, len, name, out, err);
    else
        rc = tdm__error(err, rc, "%s: its snapshot's chunks are %s", name,
                        rc == TDM_ENOMEM ? "too large for memory" : "incomplete");
    free(buf);
    return rc;
}

/* Replays onto m the answers to process/step of versions (after, upto], in order, and sets *n
 * to how many there were: a refit's round replays those that came during its fit (refit_run),
 * and a load replays them again after the refit's chunks (load_model). */
static int replay_range(sqlite3 *db, const char *process, const char *step,
                        const tdm_step_info *info, tdm_model *m, uint64_t after, uint64_t upto,
                        size_t *n, tdm_error *err)
{
    *n = 0;
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(db,
                             "SELECT fields, label, weight FROM model_updates WHERE process = ?1 "
                             "AND step = ?2 AND version > ?3 AND version <= ?4 ORDER BY version",
                             &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, step, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)after);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)upto);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        rc = replay(info, m, (const char *)sqlite3_column_text(st, 0),
                    (const char *)sqlite3_column_text(st, 1), sqlite3_column_double(st, 2));
        ++*n;
    }
    sqlite3_finalize(st);
    if (rc != 0)
        return tdm__error(err, rc,
                          "model %s/%s: cannot replay the answers its refit learned "
                          "from during its fit (versions %llu to %llu): %s",
                          process, step, (unsigned long long)after + 1, (unsigned long long)upto,
                          tdm_strerror(rc));
    return 0;
}

/* Loads sm's model from the store; called with sm->lock held for writing. */
static int load_model(tdm_engine *e, step_model *sm, const tdm_step_info *info, tdm_error *err)
{
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st = NULL;
    tdm_model *m = NULL;
    uint64_t at = 0;
    /* The current version, as the store has it (it may be ahead of what we were told). */
    rc = tdm__db_prepare(db,
                         "SELECT model_version, model_since, coalesce(refit_tried, 0), "
                         "coalesce(refit_tried_rows, 0) FROM steps WHERE process = ? AND "
                         "step = ?",
                         &st, err);
    uint64_t current = 0, since = sm->since, fit_version = 0, fit_examples = 0;
    uint64_t tried = 0, tried_rows = 0;
    if (rc == 0) {
        sqlite3_bind_text(st, 1, sm->process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, sm->step, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            current = (uint64_t)sqlite3_column_int64(st, 0);
            since = (uint64_t)sqlite3_column_int64(st, 1);
            tried = (uint64_t)sqlite3_column_int64(st, 2);
            tried_rows = (uint64_t)sqlite3_column_int64(st, 3);
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == 0 && current >= since && current > 0) {
        rc = tdm__db_prepare(db,
                             "SELECT version, snapshot, snapshot_chunks, coalesce(chunks_at, "
                             "version), coalesce(replay_after, 0), coalesce(replay_upto, 0) FROM "
                             "models WHERE process = ? AND step = ? AND version >= ? AND version "
                             "<= ? AND (snapshot IS NOT NULL OR snapshot_chunks IS NOT NULL) "
                             "ORDER BY version DESC LIMIT 1",
                             &st, err);
        uint64_t replay_after = 0, replay_upto = 0;
        if (rc == 0) {
            bind_versions(st, sm, since, current);
            if (sqlite3_step(st) == SQLITE_ROW) {
                at = (uint64_t)sqlite3_column_int64(st, 0);
                char name[160];
                snprintf(name, sizeof name, "model %s/%s v%llu", sm->process, sm->step,
                         (unsigned long long)at);
                if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
                    rc = tdm_model_deserialize(sqlite3_column_blob(st, 1),
                                               (size_t)sqlite3_column_bytes(st, 1), name, &m, err);
                } else {
                    rc = load_chunks(db, sm, sqlite3_column_int64(st, 3),
                                     sqlite3_column_int64(st, 2), name, &m, err);
                    replay_after = (uint64_t)sqlite3_column_int64(st, 4);
                    replay_upto = (uint64_t)sqlite3_column_int64(st, 5);
                }
                sm->snapshot = at;
            }
            sqlite3_finalize(st);
            st = NULL;
        }
        /* A refit stored in chunks is the fit as it was read: first the answers that its
         * round replayed onto it (NOTES ON REFITS). */
        size_t replayed;
        if (rc == 0 && m != NULL && replay_upto > replay_after)
            rc = replay_range(db, sm->process, sm->step, info, m, replay_after, replay_upto,
                              &replayed, err);
        if (rc == 0)
            rc = tdm__db_prepare(db,
                                 "SELECT version, coalesce(fit_rows, 0) FROM models WHERE "
                                 "process = ?1 AND step = ?2 AND version >= ?3 AND version <= ?4 "
                                 "AND reason IN ('trained', 'refit') ORDER BY version DESC "
                                 "LIMIT 1",
                                 &st, err);
        if (rc == 0) {
            bind_versions(st, sm, since, current);
            if (sqlite3_step(st) == SQLITE_ROW) {
                fit_version = (uint64_t)sqlite3_column_int64(st, 0);
                fit_examples = (uint64_t)sqlite3_column_int64(st, 1);
            }
            sqlite3_finalize(st);
            st = NULL;
        }
        if (rc == 0) {
            rc = tdm__db_prepare(db,
                                 "SELECT version, fields, label, weight FROM model_updates WHERE "
                                 "process = ?1 AND step = ?2 AND version >= ?3 AND version <= ?4 "
                                 "AND version > ?5 ORDER BY version",
                                 &st, err);
        }
        if (rc == 0) {
            bind_versions(st, sm, since, current);
            sqlite3_bind_int64(st, 5, (sqlite3_int64)at);
            while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
                if (m == NULL && (rc = empty_model(info, &m)) != 0)
                    break;
                rc = replay(info, m, (const char *)sqlite3_column_text(st, 1),
                            (const char *)sqlite3_column_text(st, 2), sqlite3_column_double(st, 3));
                at = (uint64_t)sqlite3_column_int64(st, 0);
            }
            sqlite3_finalize(st);
            if (rc != 0)
                tdm__error(err, rc, "model %s/%s: cannot replay its updates: %s", sm->process,
                           sm->step, tdm_strerror(rc));
        }
    }
    tdm__reader_put(e, db);
    if (rc != 0) {
        tdm_model_free(m);
        return rc;
    }
    tdm_model_free(sm->model);
    sm->model = m;
    sm->version = m ? at : 0;
    sm->since = since;
    sm->fit_version = fit_version > 0 ? fit_version : since - 1;
    sm->fit_examples = fit_examples;
    /* A refit declined after the fit in force (one before it, or before a new train, no
     * longer counts). */
    if (tried > sm->fit_version && tried <= current && tried > sm->tried_version) {
        sm->tried_version = tried;
        sm->tried_examples = tried_rows;
    }
    sm->loaded = 1;
    return 0;
}

int tdm__model_ensure(tdm_engine *e, step_model *sm, tdm_error *err)
{
    pthread_rwlock_rdlock(&sm->lock);
    int loaded = sm->loaded;
    pthread_rwlock_unlock(&sm->lock);
    if (loaded)
        return 0;
    proc_state *ps = NULL;
    const tdm_step_info *info = find_step(e, sm, &ps, NULL);
    if (info == NULL)
        return tdm__error(err, TDM_ENOTFOUND, "step %s/%s is gone", sm->process, sm->step);
    pthread_rwlock_wrlock(&sm->lock);
    int rc = sm->loaded ? 0 : load_model(e, sm, info, err);
    pthread_rwlock_unlock(&sm->lock);
    tdm__proc_put(e, ps);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Online learning                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct update_fx {
    tdm_engine *e;
    step_model *sm;
    proc_state *ps; /* keeps sm and the step info alive until the effect has run */
    size_t step;
    json_t *fields;
    char *label;
    double weight;
    uint64_t version;
} update_fx;

static void update_drop(void *arg)
{
    update_fx *u = arg;
    if (u->ps != NULL)
        tdm__proc_put(u->e, u->ps);
    json_decref(u->fields);
    free(u->label);
    free(u);
}

/* What a change to a step (tdm__step_change) asks of the learning thread once sm->lock is
 * let go. */
enum { LATER_SNAPSHOT = 1, LATER_REFIT = 2 };

static void learning_later(tdm_engine *e, step_model *sm, int kind);

void tdm__step_change(tdm_engine *e, step_model *sm, int (*run)(tdm_engine *, step_model *, void *),
                      void *(*take)(void *), void (*drop)(void *), void *arg)
{
    pthread_mutex_lock(&sm->defer_lock);
    if (sm->serializing) {
        tdm__deferred *d = malloc(sizeof *d);
        void *owned = d != NULL ? take(arg) : NULL;
        if (owned != NULL) {
            *d = (tdm__deferred){NULL, run, drop, owned};
            *sm->deferred_tail = d;
            sm->deferred_tail = &d->next;
            pthread_mutex_unlock(&sm->defer_lock);
            return;
        }
        free(d);
    }
    /* Not serializing (or out of memory), and no serialization begins while defer_lock is
     * held: the write lock comes after the readers of the moment. */
    pthread_rwlock_wrlock(&sm->lock);
    int later = run(e, sm, arg);
    pthread_rwlock_unlock(&sm->lock);
    pthread_mutex_unlock(&sm->defer_lock);
    if (later & LATER_SNAPSHOT)
        learning_later(e, sm, WORK_SNAPSHOT);
    if (later & LATER_REFIT)
        learning_later(e, sm, WORK_REFIT);
}

void tdm__serialize_begin(step_model *sm)
{
    pthread_mutex_lock(&sm->defer_lock);
    sm->serializing = 1;
    pthread_mutex_unlock(&sm->defer_lock);
}

void tdm__serialize_end(tdm_engine *e, step_model *sm)
{
    /* defer_lock first, as everywhere: the writer queues nothing more meanwhile and its next
     * change waits for these, so the changes are applied in the order they came. */
    pthread_mutex_lock(&sm->defer_lock);
    pthread_rwlock_wrlock(&sm->lock);
    tdm__deferred *d = sm->deferred;
    sm->deferred = NULL;
    sm->deferred_tail = &sm->deferred;
    sm->serializing = 0;
    int later = 0;
    for (tdm__deferred *x = d; x != NULL; x = x->next)
        later |= x->run(e, sm, x->arg);
    pthread_rwlock_unlock(&sm->lock);
    pthread_mutex_unlock(&sm->defer_lock);
    while (d != NULL) {
        tdm__deferred *next = d->next;
        d->drop(d->arg);
        free(d);
        d = next;
    }
    if (later & LATER_SNAPSHOT)
        learning_later(e, sm, WORK_SNAPSHOT);
    if (later & LATER_REFIT)
        learning_later(e, sm, WORK_REFIT);
}

/* Under sm->lock (write): the in-memory model learns the update, if it is in memory
 * (otherwise its next load replays this update from the store). */
static int update_run(tdm_engine *e, step_model *sm, void *arg)
{
    update_fx *u = arg;
    const tdm_step_info *info = tdm_process_step(u->ps->p, u->step);
    int later = 0;
    if (sm->loaded) {
        if (u->version == sm->version + 1) {
            if (sm->model == NULL && empty_model(info, &sm->model) != 0)
                sm->loaded = 0;
            item_values iv;
            tdm__item_values(info, u->fields, &iv);
            if (sm->model != NULL &&
                tdm_model_update(sm->model, iv.v, u->label, u->weight, NULL) == 0) {
                sm->version = u->version;
                /* One periodic snapshot at a time: it takes several rounds (engine.c). */
                if (!sm->snapshotting && sm->version - sm->snapshot >= TDM__SNAPSHOT_EVERY) {
                    sm->snapshotting = 1;
                    later |= LATER_SNAPSHOT;
                }
                /* Where every item goes to a person (a simulation's all-human strategy)
                 * nothing reads the model's quality: no refit spends the time. */
                if (info->refit && !sm->refit_queued && refit_due(sm) &&
                    e->route_mode != TDM__ROUTE_ALL_HUMAN) {
                    sm->refit_queued = 1;
                    later |= LATER_REFIT;
                }
            } else {
                sm->loaded = 0; /* reload from the store next time */
            }
        } else if (u->version > sm->version) {
            sm->loaded = 0; /* we missed one: reload */
        }
    }
    return later;
}

/* Moves an update into a block of its own: the effect's copy keeps nothing to free. */
static void *update_take(void *arg)
{
    update_fx *u = arg, *own = malloc(sizeof *own);
    if (own != NULL) {
        *own = *u;
        u->ps = NULL;
        u->fields = NULL;
        u->label = NULL;
    }
    return own;
}

/* After the commit: the in-memory model learns (tdm__step_change). */
static void update_apply(tdm__tx *tx, void *arg)
{
    update_fx *u = arg;
    tdm__step_change(tx->e, u->sm, update_run, update_take, update_drop, u);
}

int tdm__learn_in_tx(tdm__tx *tx, proc_state *ps, size_t step, json_t *fields, const char *label,
                     double weight, const char *why, int census, uint64_t *version, tdm_error *err)
{
    const tdm_step_info *info = tdm_process_step(ps->p, step);
    step_model *sm = ps->steps[step];
    const char *process = tdm_process_name(ps->p);
    /* The item's input fields only: that is all the model reads, and all a replay needs. */
    json_t *inputs = json_object();
    for (size_t i = 0; i < info->n_inputs; i++) {
        json_t *v = json_object_get(fields, info->inputs[i].name);
        if (v != NULL)
            json_object_set(inputs, info->inputs[i].name, v);
    }
    char *text = json_dumps(inputs, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        json_decref(inputs);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "SELECT coalesce(max(version), 0), (SELECT model_since FROM steps "
                                 "WHERE process = ?1 AND step = ?2) FROM models WHERE process = "
                                 "?1 AND step = ?2",
                                 err);
    int rc = 0;
    uint64_t v = 0, since = 1;
    if (st == NULL) {
        rc = err->code;
    } else {
        sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            v = (uint64_t)sqlite3_column_int64(st, 0) + 1;
            since = (uint64_t)sqlite3_column_int64(st, 1);
        }
        sqlite3_reset(st);
        if (v < since)
            v = since;
    }
    /* Counts of what this version learned from: the previous version's, plus one. */
    int64_t seen = 0, online = 0;
    if (rc == 0) {
        st = tdm__stmt(tx->stmts,
                       "SELECT examples_seen, online_updates, n_labels FROM models WHERE process "
                       "= ? AND step = ? AND version = ?",
                       err);
        if (st == NULL) {
            rc = err->code;
        } else {
            sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)(v - 1));
            if (sqlite3_step(st) == SQLITE_ROW && v - 1 >= since) {
                seen = sqlite3_column_int64(st, 0);
                online = sqlite3_column_int64(st, 1);
            }
            sqlite3_reset(st);
        }
    }
    if (rc == 0) {
        st = tdm__stmt(tx->stmts,
                       "INSERT INTO model_updates (process, step, version, fields, label, weight, "
                       "created_at, census) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       err);
        if (st == NULL) {
            rc = err->code;
        } else {
            sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)v);
            sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, label, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 6, weight);
            sqlite3_bind_int64(st, 7, tx->now);
            sqlite3_bind_int(st, 8, census != 0);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "logging a model update");
            sqlite3_reset(st);
        }
    }
    if (rc == 0) {
        st = tdm__stmt(tx->stmts,
                       "INSERT INTO models (process, step, version, created_at, reason, "
                       "examples_seen, online_updates, n_labels, snapshot) VALUES (?, ?, ?, ?, "
                       "?, ?, ?, 0, NULL)",
                       err);
        if (st == NULL) {
            rc = err->code;
        } else {
            sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)v);
            sqlite3_bind_int64(st, 4, tx->now);
            sqlite3_bind_text(st, 5, why, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 6, seen + 1);
            sqlite3_bind_int64(st, 7, online + 1);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err,
                                   "recording a model version");
            sqlite3_reset(st);
        }
    }
    if (rc == 0) {
        st = tdm__stmt(tx->stmts,
                       "UPDATE steps SET model_version = ? WHERE process = ? AND step = ?", err);
        if (st == NULL) {
            rc = err->code;
        } else {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)v);
            sqlite3_bind_text(st, 2, process, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, info->id, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "updating a step");
            sqlite3_reset(st);
        }
    }
    free(text);
    if (rc != 0) {
        json_decref(inputs);
        return rc;
    }
    update_fx *u = calloc(1, sizeof *u);
    char *l = strdup(label);
    if (u == NULL || l == NULL) {
        free(u);
        free(l);
        json_decref(inputs);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    pthread_mutex_lock(&tx->e->lock);
    ps->refs++;
    pthread_mutex_unlock(&tx->e->lock);
    *u = (update_fx){tx->e, sm, ps, step, inputs, l, weight, v};
    *version = v;
    return tdm__tx_effect(tx, update_apply, update_drop, u);
}

/* ------------------------------------------------------------------------------------------ */
/* Checks, thresholds and drift                                                               */
/* ------------------------------------------------------------------------------------------ */

static int insert_check(tdm__tx *tx, const char *process, const char *step, double confidence,
                        int correct, double weight, const char *source, uint64_t model_version,
                        tdm_error *err)
{
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "INSERT INTO checks (process, step, confidence, correct, weight, "
                                 "source, model_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
                                 "?)",
                                 err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, step, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, confidence);
    sqlite3_bind_int(st, 4, correct ? 1 : 0);
    sqlite3_bind_double(st, 5, weight);
    sqlite3_bind_text(st, 6, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)model_version);
    sqlite3_bind_int64(st, 8, tx->now);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return tdm__db_error(tx->db, rc, err, "recording a check");
    return 0;
}

/* A recomputation, queued as a deferred job: plain data, freed with free(). */
typedef struct recompute_ctx {
    char process[128];
    char step[128];
    char owner[256];
    double alpha, delta;
} recompute_ctx;

/* The outcome, applied to the step model after the commit. */
typedef struct recompute_fx {
    char process[128];
    char step[128];
    int found;
    double threshold;
    int pause;
    char reason[256];
} recompute_fx;

/* Finds the live step model of process/step and takes a reference to its process. */
static step_model *live_step(tdm_engine *e, const char *process, const char *step, proc_state **ps)
{
    if (tdm__proc_get(e, process, ps, NULL) != 0)
        return NULL;
    size_t i;
    if (tdm_process_step_index((*ps)->p, step, &i) != 0) {
        tdm__proc_put(e, *ps);
        return NULL;
    }
    return (*ps)->steps[i];
}

/* A recomputed threshold (or a pause) for the step, and its process held meanwhile. */
typedef struct recompute_change {
    tdm_engine *e;
    proc_state *ps;
    recompute_fx r;
} recompute_change;

static int recompute_run_locked(tdm_engine *e, step_model *sm, void *arg)
{
    (void)e;
    const recompute_fx *r = &((recompute_change *)arg)->r;
    sm->found = r->found;
    sm->threshold = r->found ? r->threshold : INFINITY;
    if (r->pause) {
        sm->paused = 1;
        snprintf(sm->pause_reason, sizeof sm->pause_reason, "%s", r->reason);
    }
    return 0;
}

static void *recompute_take(void *arg)
{
    recompute_change *c = arg, *own = malloc(sizeof *own);
    if (own != NULL) {
        *own = *c;
        c->ps = NULL;
    }
    return own;
}

static void recompute_drop(void *arg)
{
    recompute_change *c = arg;
    if (c->ps != NULL)
        tdm__proc_put(c->e, c->ps);
    free(c);
}

static void recompute_apply(tdm__tx *tx, void *arg)
{
    recompute_change c = {tx->e, NULL, *(recompute_fx *)arg};
    step_model *sm = live_step(tx->e, c.r.process, c.r.step, &c.ps);
    if (sm == NULL)
        return;
    tdm__step_change(tx->e, sm, recompute_run_locked, recompute_take, recompute_drop, &c);
    if (c.ps != NULL)
        tdm__proc_put(tx->e, c.ps);
}

/* Checks read for a recomputation: growable arrays, freed with check_set_release(). */
typedef struct check_set {
    double *conf, *w;
    unsigned char *ok;
    size_t n, cap;
} check_set;

static void check_set_release(check_set *cs)
{
    free(cs->conf);
    free(cs->w);
    free(cs->ok);
    memset(cs, 0, sizeof *cs);
}

static int check_set_push(check_set *cs, double conf, int ok, double w)
{
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? 2 * cs->cap : 1024;
        double *nc = realloc(cs->conf, cap * sizeof *nc);
        if (nc == NULL)
            return TDM_ENOMEM;
        cs->conf = nc;
        double *nw = realloc(cs->w, cap * sizeof *nw);
        if (nw == NULL)
            return TDM_ENOMEM;
        cs->w = nw;
        unsigned char *no = realloc(cs->ok, cap);
        if (no == NULL)
            return TDM_ENOMEM;
        cs->ok = no;
        cs->cap = cap;
    }
    cs->conf[cs->n] = conf;
    cs->ok[cs->n] = (unsigned char)(ok ? 1 : 0);
    cs->w[cs->n] = w;
    cs->n++;
    return 0;
}

/*
 * Appends to `cs` the checks of process/step that the statement selects (its first three
 * columns: confidence, correct, weight; ?1 process, ?2 step, ?3 a limit when it has one),
 * keeping only those with confidence below `below` (INFINITY: all).
 */
static int load_checks(tdm__tx *tx, const char *sql, const char *process, const char *step,
                       int64_t limit, double below, check_set *cs, tdm_error *err)
{
    sqlite3_stmt *st = tdm__stmt(tx->stmts, sql, err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, step, -1, SQLITE_STATIC);
    if (limit > 0)
        sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
    int rc = 0, s;
    while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
        double conf = sqlite3_column_double(st, 0);
        if (conf < below)
            rc = check_set_push(cs, conf, sqlite3_column_int(st, 1), sqlite3_column_double(st, 2));
    }
    sqlite3_reset(st);
    if (rc != 0)
        return tdm__error_code(err, rc);
    return 0;
}

/* The live checks a recomputation reads: the most recent ones, at most this many. */
static int64_t live_window(double alpha, double delta)
{
    uint64_t start = tdm_risk_start_items(alpha, delta);
    if (start == 0 || start > 500000)
        return 1000000;
    return (int64_t)(TDM__LIVE_WINDOW_STARTS * start);
}

static int recompute_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    recompute_ctx *c = job->ctx;
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "SELECT threshold, paused, audit_since, threshold_n, "
                                 "threshold_errors, threshold_bound FROM steps WHERE process = ? "
                                 "AND step = ?",
                                 err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->step, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return 0; /* the step is gone */
    }
    int had = sqlite3_column_type(st, 0) != SQLITE_NULL;
    double old = had ? sqlite3_column_double(st, 0) : 0;
    int paused = sqlite3_column_int(st, 1);
    int64_t audit_since = sqlite3_column_int64(st, 2);
    int64_t old_n = sqlite3_column_int64(st, 3);
    int64_t old_errors = sqlite3_column_int64(st, 4);
    double old_bound =
        sqlite3_column_type(st, 5) == SQLITE_NULL ? 1.0 : sqlite3_column_double(st, 5);
    sqlite3_reset(st);

    /*
     * With a certified threshold in force, only the band below it is tested (lowering);
     * otherwise (none, or automation paused) the whole scale is scanned anew, on the last
     * fit's cross-fitted checks and the live window together. See NOTES ON KEEPING THE
     * THRESHOLD HONEST.
     */
    int band = had && !paused;
    check_set cs = {0};
    int rc = load_checks(tx,
                         "SELECT confidence, correct, weight FROM checks WHERE process = ?1 AND "
                         "step = ?2 AND source != 'crossfit' ORDER BY id DESC LIMIT ?3",
                         c->process, c->step, live_window(c->alpha, c->delta),
                         band ? old : INFINITY, &cs, err);
    if (rc == 0 && !band)
        rc = load_checks(tx,
                         "SELECT confidence, correct, weight FROM checks WHERE process = ?1 AND "
                         "step = ?2 AND source = 'crossfit'",
                         c->process, c->step, 0, INFINITY, &cs, err);
    tdm_risk_result risk;
    if (rc == 0) {
        int s = tdm_risk_threshold_weighted(cs.conf, cs.ok, cs.w, cs.n, c->alpha, c->delta, &risk);
        if (s != 0)
            rc = tdm__error_code(err, s);
    }
    size_t n = cs.n;
    check_set_release(&cs);
    if (rc != 0)
        return rc;

    /* What is in force after this recomputation. */
    int found = had;
    double threshold = old;
    int64_t new_n = old_n, new_errors = old_errors;
    double new_bound = old_bound;
    if (band) {
        if (risk.found && risk.threshold < old) {
            /* Above the old threshold the certificate stands; the band adds its own. */
            threshold = risk.threshold;
            new_n = old_n + (int64_t)risk.n_above;
            new_errors = old_errors + (int64_t)risk.errors;
            new_bound = risk.error_bound > old_bound ? risk.error_bound : old_bound;
        }
    } else {
        found = risk.found;
        threshold = risk.threshold;
        new_n = (int64_t)risk.n_above;
        new_errors = (int64_t)risk.errors;
        new_bound = risk.error_bound;
    }

    recompute_fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    snprintf(fx->process, sizeof fx->process, "%s", c->process);
    snprintf(fx->step, sizeof fx->step, "%s", c->step);
    fx->found = found;
    fx->threshold = threshold;
    if (had != found || (had && old != threshold)) {
        st = tdm__stmt(tx->stmts,
                       "UPDATE steps SET threshold = ?, threshold_n = ?, threshold_errors = ?, "
                       "threshold_bound = ?, threshold_at = ? WHERE process = ? AND step = ?",
                       err);
        if (st == NULL) {
            free(fx);
            return err->code;
        }
        if (found)
            sqlite3_bind_double(st, 1, threshold);
        else
            sqlite3_bind_null(st, 1);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)new_n);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)new_errors);
        sqlite3_bind_double(st, 4, new_bound);
        sqlite3_bind_int64(st, 5, tx->now);
        sqlite3_bind_text(st, 6, c->process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, c->step, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE
                 ? 0
                 : tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "storing a threshold");
        sqlite3_reset(st);
        if (rc == 0) {
            char subject[260];
            snprintf(subject, sizeof subject, "%s/%s", c->process, c->step);
            rc = tdm__tx_audit(tx, "tandem", "threshold.changed", subject,
                               json_pack("{s:o, s:o, s:I, s:I, s:f, s:f, s:f, s:I, s:s}", "old",
                                         had ? json_real(old) : json_null(), "new",
                                         found ? json_real(threshold) : json_null(), "n_above",
                                         (json_int_t)new_n, "errors", (json_int_t)new_errors,
                                         "bound", new_bound, "max_error", c->alpha, "confidence",
                                         1 - c->delta, "checks", (json_int_t)n, "basis",
                                         band ? "band below the threshold" : "whole scale"),
                               err);
        }
    }
    /* Drift: the audit samples since the model was trained or automation resumed. */
    if (rc == 0 && !paused) {
        st = tdm__stmt(tx->stmts,
                       "SELECT count(*), coalesce(sum(1 - correct), 0) FROM checks WHERE process "
                       "= ? AND step = ? AND source = 'audit' AND created_at >= ?",
                       err);
        if (st == NULL) {
            rc = err->code;
        } else {
            sqlite3_bind_text(st, 1, c->process, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, c->step, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, audit_since);
            uint64_t an = 0, ak = 0;
            if (sqlite3_step(st) == SQLITE_ROW) {
                an = (uint64_t)sqlite3_column_int64(st, 0);
                ak = (uint64_t)sqlite3_column_int64(st, 1);
            }
            sqlite3_reset(st);
            /* The look at the ak-th wrong sample spends delta / (ak (ak + 1)) (see the notes). */
            double spent = ak > 0 ? c->delta / ((double)ak * (double)(ak + 1)) : c->delta;
            double lower = an > 0 ? tdm_binomial_lower_bound(ak, an, spent) : 0;
            if (an > 0 && lower > c->alpha) {
                fx->pause = 1;
                snprintf(fx->reason, sizeof fx->reason,
                         "audited error %llu of %llu (at least %.2f%%, with confidence %.0f%% "
                         "over every look at the audit samples) exceeds the %.2f%% budget",
                         (unsigned long long)ak, (unsigned long long)an, 100 * lower,
                         100 * (1 - c->delta), 100 * c->alpha);
                st = tdm__stmt(tx->stmts,
                               "UPDATE steps SET paused = 1, pause_reason = ? WHERE process = ? "
                               "AND step = ?",
                               err);
                if (st == NULL) {
                    rc = err->code;
                } else {
                    sqlite3_bind_text(st, 1, fx->reason, -1, SQLITE_STATIC);
                    sqlite3_bind_text(st, 2, c->process, -1, SQLITE_STATIC);
                    sqlite3_bind_text(st, 3, c->step, -1, SQLITE_STATIC);
                    rc =
                        sqlite3_step(st) == SQLITE_DONE
                            ? 0
                            : tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "pausing a step");
                    sqlite3_reset(st);
                }
                if (rc == 0) {
                    char subject[260];
                    snprintf(subject, sizeof subject, "%s/%s", c->process, c->step);
                    rc = tdm__tx_announce(tx, c->process, "tandem", "automation.paused", subject,
                                          json_pack("{s:s, s:s, s:I, s:I, s:f, s:f}", "owner",
                                                    c->owner, "reason", fx->reason, "audited",
                                                    (json_int_t)an, "errors", (json_int_t)ak,
                                                    "lower_bound", lower, "max_error", c->alpha),
                                          err);
                }
            }
        }
    }
    if (rc != 0) {
        free(fx);
        return rc;
    }
    return tdm__tx_effect(tx, recompute_apply, free, fx);
}

typedef struct check_fx {
    char process[128];
    char step[128];
    char owner[256];
    double alpha, delta;
    int wrong_audit;
} check_fx;

static void check_apply(tdm__tx *tx, void *arg)
{
    check_fx *c = arg;
    proc_state *ps;
    step_model *sm = live_step(tx->e, c->process, c->step, &ps);
    if (sm == NULL)
        return;
    pthread_mutex_lock(&sm->defer_lock); /* not sm->lock: a serialization may hold it */
    sm->checks_since++;
    int due = sm->checks_since >= TDM__RECOMPUTE_EVERY || c->wrong_audit;
    if (due)
        sm->checks_since = 0;
    pthread_mutex_unlock(&sm->defer_lock);
    tdm__proc_put(tx->e, ps);
    if (!due)
        return;
    tdm__job *job = calloc(1, sizeof *job);
    recompute_ctx *r = calloc(1, sizeof *r);
    if (job == NULL || r == NULL) {
        free(job);
        free(r);
        return;
    }
    snprintf(r->process, sizeof r->process, "%s", c->process);
    snprintf(r->step, sizeof r->step, "%s", c->step);
    snprintf(r->owner, sizeof r->owner, "%s", c->owner);
    r->alpha = c->alpha;
    r->delta = c->delta;
    job->run = recompute_run;
    job->ctx = r;
    tdm__writer_defer(tx->e->writer, job);
}

int tdm__check_and_follow(tdm__tx *tx, proc_state *ps, size_t step, double confidence, int correct,
                          double weight, const char *source, uint64_t model_version, tdm_error *err)
{
    const tdm_step_info *info = tdm_process_step(ps->p, step);
    const char *process = tdm_process_name(ps->p);
    int rc = insert_check(tx, process, info->id, confidence, correct, weight, source, model_version,
                          err);
    if (rc != 0)
        return rc;
    check_fx *c = calloc(1, sizeof *c);
    if (c == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    snprintf(c->process, sizeof c->process, "%s", process);
    snprintf(c->step, sizeof c->step, "%s", info->id);
    snprintf(c->owner, sizeof c->owner, "%s", info->owner);
    c->alpha = info->max_error;
    c->delta = 1 - info->confidence;
    c->wrong_audit = !correct && strcmp(source, "audit") == 0;
    return tdm__tx_effect(tx, check_apply, free, c);
}

/* ------------------------------------------------------------------------------------------ */
/* Training from history                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct trained {
    size_t step;
    tdm_model *model;
    tdm_train_report rep;
    unsigned char *blob;
    size_t blob_len;
    uint64_t version;
    size_t *keep; /* the scored rows that are checks: no review rule fires on them */
    size_t n_keep;
    /* A refit stored in chunks before its round (NOTES ON REFITS): blob is then not stored. */
    int64_t chunks;        /* chunks written under chunks_at; 0: store blob whole */
    int64_t chunks_at;     /* their key in model_chunks */
    uint64_t replay_after; /* the answers (replay_after, replay_upto] its round replayed */
    uint64_t replay_upto;
} trained;

static void trained_release(trained *t)
{
    tdm_model_free(t->model);
    tdm_free(t->blob);
    tdm_train_report_release(&t->rep);
    free(t->keep);
    *t = (trained){0};
}

/* A rule lookup over one row of the training table: a cell that reads as a number is a
 * number, otherwise a string; an empty or missing cell is missing. */
typedef struct row_ctx {
    const tdm_table *t;
    size_t row;
} row_ctx;

static int row_lookup(void *ctx, const char *name, size_t len, tdm_rule_value *out)
{
    row_ctx *r = ctx;
    char key[256];
    size_t col, clen;
    if (len >= sizeof key)
        return TDM_ENOTFOUND;
    memcpy(key, name, len);
    key[len] = '\0';
    if (tdm_table_column_index(r->t, key, &col) != 0)
        return TDM_ENOTFOUND;
    const char *cell = tdm_table_cell(r->t, r->row, col, &clen);
    if (cell == NULL || clen == 0)
        return TDM_ENOTFOUND;
    memset(out, 0, sizeof *out);
    char *end;
    double x = strtod(cell, &end);
    if (end != cell && *end == '\0' && isfinite(x)) {
        out->type = TDM_RULE_NUMBER;
        out->number = x;
    } else {
        out->type = TDM_RULE_STRING;
        out->string = cell;
        out->length = clen;
    }
    return 0;
}

/*
 * The certificate is about the decisions the AI may make alone, so it is computed on the
 * rows no review rule sends to a person: for each scored training row, the step's rules are
 * evaluated on the row's fields with its out-of-fold proposal, and only the rows where none
 * fires and the proposal is not an adverse outcome count (as the checks made later by people leave
 * out rule-fired tasks). In loan screening, where every rejection goes to a person, this certifies
 * the error among the approvals rather than among all proposals. With `census` (a refit), only
 * the rows it marks are checks: the others were chosen by a threshold (NOTES ON REFITS).
 */
static int filter_checks(const tdm_process *p, size_t step, const tdm_table *table,
                         const char *output, const unsigned char *census, trained *t, double alpha,
                         double delta)
{
    size_t col;
    if (tdm_table_column_index(table, output, &col) != 0)
        return TDM_EINVAL;
    size_t n = t->rep.n_scores;
    t->keep = malloc((n ? n : 1) * sizeof *t->keep);
    double *conf = malloc((n ? n : 1) * sizeof *conf);
    unsigned char *ok = malloc(n ? n : 1);
    if (t->keep == NULL || conf == NULL || ok == NULL) {
        free(conf);
        free(ok);
        return TDM_ENOMEM;
    }
    size_t i = 0;
    for (size_t r = 0; r < tdm_table_row_count(table) && i < n; r++) {
        size_t len;
        const char *label = tdm_table_cell(table, r, col, &len);
        if (label == NULL || len == 0)
            continue; /* not a labelled row: not scored */
        row_ctx rc = {table, r};
        size_t fired = SIZE_MAX;
        const char *proposal = tdm_model_label(t->model, t->rep.oof_label[i]);
        if (tdm_process_review(p, step, row_lookup, &rc, proposal, t->rep.oof_confidence[i],
                               &fired) != 0 &&
            fired == SIZE_MAX)
            fired = 0;
        /* A person decides adverse outcomes: those rows are not the AI's to certify. */
        if (tdm_process_adverse(p, step, proposal))
            fired = 0;
        if (census != NULL && !census[r])
            fired = 0;
        if (fired == SIZE_MAX) {
            conf[t->n_keep] = t->rep.oof_confidence[i];
            ok[t->n_keep] = t->rep.oof_correct[i];
            t->keep[t->n_keep++] = i;
        }
        i++;
    }
    int rc = tdm_risk_threshold(conf, ok, t->n_keep, alpha, delta, &t->rep.risk);
    free(conf);
    free(ok);
    return rc;
}

/* The inputs of one training row as the JSON an online update logs (model_updates.fields):
 * each input's cell as text, empty cells left out, as the model reads them. */
static char *row_fields(const tdm_step_info *info, const tdm_table *table, size_t row)
{
    json_t *o = json_object();
    for (size_t f = 0; o != NULL && f < info->n_inputs; f++) {
        size_t col, len;
        if (tdm_table_column_index(table, info->inputs[f].name, &col) != 0)
            continue;
        const char *cell = tdm_table_cell(table, row, col, &len);
        if (cell != NULL && len > 0)
            json_object_set_new(o, info->inputs[f].name, json_stringn(cell, len));
    }
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return text;
}

/* Keeps the labelled rows a batch fit learned from, for the refits after it, in place of an
 * earlier train's (a refit reads the last train's only). */
static int store_examples(tdm__tx *tx, const char *process, const tdm_step_info *info,
                          uint64_t version, const tdm_table *table, tdm_error *err)
{
    size_t col;
    if (tdm_table_column_index(table, info->output, &col) != 0)
        return 0;
    sqlite3_stmt *st = tdm__stmt(
        tx->stmts, "DELETE FROM examples WHERE process = ? AND step = ? AND version < ?", err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)version);
    int done = sqlite3_step(st);
    sqlite3_reset(st);
    if (done != SQLITE_DONE)
        return tdm__db_error(tx->db, done, err, "replacing the training examples");
    st = tdm__stmt(tx->stmts,
                   "INSERT INTO examples (process, step, version, row, fields, "
                   "label) VALUES (?, ?, ?, ?, ?, ?)",
                   err);
    if (st == NULL)
        return err->code;
    for (size_t r = 0; r < tdm_table_row_count(table); r++) {
        size_t len;
        const char *label = tdm_table_cell(table, r, col, &len);
        if (label == NULL || len == 0)
            continue;
        char *fields = row_fields(info, table, r);
        if (fields == NULL)
            return tdm__error_code(err, TDM_ENOMEM);
        sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)version);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)r);
        sqlite3_bind_text(st, 5, fields, -1, free);
        sqlite3_bind_text(st, 6, label, (int)len, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return tdm__db_error(tx->db, rc, err, "keeping the training examples");
    }
    return 0;
}

typedef struct fit_fx {
    step_model *sm;
    tdm_model *model;
    uint64_t version;
    uint64_t examples;
    int found;
    double threshold;
    int keep_pause; /* a refit: automation stays paused if it was */
} fit_fx;

static void fit_drop(void *arg)
{
    fit_fx *f = arg;
    tdm_model_free(f->model);
    free(f);
}

static int fit_run(tdm_engine *e, step_model *sm, void *arg)
{
    (void)e;
    fit_fx *f = arg;
    tdm_model_free(sm->model);
    sm->model = f->model;
    f->model = NULL;
    sm->version = f->version;
    sm->snapshot = f->version;
    sm->fit_version = f->version;
    sm->fit_examples = f->examples;
    sm->loaded = 1;
    sm->found = f->found;
    sm->threshold = f->found ? f->threshold : INFINITY;
    if (!f->keep_pause) {
        sm->paused = 0;
        sm->pause_reason[0] = '\0';
    }
    sm->checks_since = 0;
    return 0;
}

static void *fit_take(void *arg)
{
    fit_fx *f = arg, *own = malloc(sizeof *own);
    if (own != NULL) {
        *own = *f;
        f->model = NULL;
    }
    return own;
}

/* After the commit: the step takes the fitted model (tdm__step_change). */
static void fit_apply(tdm__tx *tx, void *arg)
{
    fit_fx *f = arg;
    tdm__step_change(tx->e, f->sm, fit_run, fit_take, fit_drop, f);
}

/*
 * Stores a batch fit of one step as its new model version, in the running transaction: the
 * model with its snapshot, the threshold its cross-fitted scores certify, those scores as the
 * step's checks (replacing the old ones, which describe another model), the training rows
 * when `table` is given (a `tandem train`; a refit's rows are already kept), and an audit
 * entry. A train resumes a paused step; a refit (`refit` set) leaves the pause as it is.
 * `rows`: how many examples the model has learned from (what the refit schedule counts).
 * The model moves into an effect that swaps it in after the commit.
 */
static int commit_fit(tdm__tx *tx, proc_state *ps, trained *t, const char *actor,
                      const tdm_table *table, int refit, uint64_t rows, tdm_error *err)
{
    const char *process = tdm_process_name(ps->p);
    const tdm_step_info *info = tdm_process_step(ps->p, t->step);
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "SELECT max(coalesce((SELECT max(version) FROM models WHERE "
                                 "process = ?1 AND step = ?2), 0) + 1, (SELECT model_since "
                                 "FROM steps WHERE process = ?1 AND step = ?2))",
                                 err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
    t->version = sqlite3_step(st) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 1;
    sqlite3_reset(st);
    uint64_t online;
    uint64_t seen = tdm_model_examples_seen(t->model, &online);
    st = tdm__stmt(tx->stmts,
                   "INSERT INTO models (process, step, version, created_at, reason, "
                   "examples_seen, online_updates, n_labels, snapshot, fit_rows, "
                   "snapshot_chunks, chunks_at, replay_after, replay_upto) VALUES (?, ?, ?, ?, ?, "
                   "?, 0, ?, ?, ?, ?, ?, ?, ?)",
                   err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)t->version);
    sqlite3_bind_int64(st, 4, tx->now);
    sqlite3_bind_text(st, 5, refit ? "refit" : "trained", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)seen);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)tdm_model_label_count(t->model));
    if (t->chunks > 0) {
        sqlite3_bind_null(st, 8);
        sqlite3_bind_int64(st, 10, t->chunks);
        sqlite3_bind_int64(st, 11, t->chunks_at);
        if (t->replay_upto > t->replay_after) {
            sqlite3_bind_int64(st, 12, (sqlite3_int64)t->replay_after);
            sqlite3_bind_int64(st, 13, (sqlite3_int64)t->replay_upto);
        } else {
            sqlite3_bind_null(st, 12);
            sqlite3_bind_null(st, 13);
        }
    } else {
        sqlite3_bind_blob64(st, 8, t->blob, t->blob_len, SQLITE_STATIC);
        for (int k = 10; k <= 13; k++)
            sqlite3_bind_null(st, k);
    }
    sqlite3_bind_int64(st, 9, (sqlite3_int64)rows);
    if (sqlite3_step(st) != SQLITE_DONE)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "storing a model");
    const tdm_risk_result *r = &t->rep.risk;
    st = tdm__stmt(tx->stmts,
                   "UPDATE steps SET model_version = ?1, threshold = ?2, threshold_n = ?3, "
                   "threshold_errors = ?4, threshold_bound = ?5, threshold_at = ?6, audit_since "
                   "= ?6, paused = CASE WHEN ?9 THEN paused ELSE 0 END, pause_reason = CASE "
                   "WHEN ?9 THEN pause_reason END, checks_since = 0 WHERE process = ?7 AND step "
                   "= ?8",
                   err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)t->version);
    if (r->found)
        sqlite3_bind_double(st, 2, r->threshold);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->n_above);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)r->errors);
    sqlite3_bind_double(st, 5, r->error_bound);
    sqlite3_bind_int64(st, 6, tx->now);
    sqlite3_bind_text(st, 7, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, refit);
    if (sqlite3_step(st) != SQLITE_DONE)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "updating a step");
    /* The new model's own cross-fitted scores replace the old checks. */
    st = tdm__stmt(tx->stmts, "DELETE FROM checks WHERE process = ? AND step = ?", err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "clearing checks");
    for (size_t k = 0; k < t->n_keep; k++) {
        size_t at = t->keep[k];
        int rc = insert_check(tx, process, info->id, t->rep.oof_confidence[at],
                              t->rep.oof_correct[at], 1.0, "crossfit", t->version, err);
        if (rc != 0)
            return rc;
    }
    int rc = table != NULL ? store_examples(tx, process, info, t->version, table, err) : 0;
    if (rc != 0)
        return rc;
    char subject[260];
    snprintf(subject, sizeof subject, "%s/%s", process, info->id);
    rc = tdm__tx_audit(tx, actor, refit ? "model.refit" : "model.trained", subject,
                       json_pack("{s:I, s:I, s:I, s:o, s:f, s:f, s:f}", "model_version",
                                 (json_int_t)t->version, "n_train", (json_int_t)t->rep.n_train,
                                 "n_classes", (json_int_t)t->rep.n_classes, "threshold",
                                 r->found ? json_real(r->threshold) : json_null(), "oof_accuracy",
                                 t->rep.oof_accuracy, "max_error", info->max_error, "confidence",
                                 info->confidence),
                       err);
    if (rc != 0)
        return rc;
    fit_fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    /* The model moves into the effect; if the commit fails the effect frees it. */
    *f = (fit_fx){ps->steps[t->step], t->model, t->version, rows, r->found, r->threshold, refit};
    t->model = NULL;
    return tdm__tx_effect(tx, fit_apply, fit_drop, f);
}

typedef struct train_ctx {
    proc_state *ps;
    const char *actor;
    const tdm_table *table;
    trained *t;
    size_t n;
} train_ctx;

static int train_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    train_ctx *c = job->ctx;
    for (size_t i = 0; i < c->n; i++) {
        int rc = commit_fit(tx, c->ps, &c->t[i], c->actor, c->table, 0, c->t[i].rep.n_train, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Fits step `index` of ps on `table` into *t: the model, its cross-fitted report, the rows
 * that are checks (of those `census` marks, when given), the model serialized. On failure *t
 * holds nothing. */
static int learning_stopping(void *arg);

static int fit_step(proc_state *ps, size_t index, const tdm_table *table,
                    const unsigned char *census, struct tdm__learning *stop, trained *t,
                    tdm_error *err)
{
    const tdm_step_info *info = tdm_process_step(ps->p, index);
    tdm_train_opts o;
    tdm_train_opts_init(&o);
    o.target_error = info->max_error;
    o.delta = 1 - info->confidence;
    o.keep_scores = 1;
    if (stop != NULL) {
        o.should_stop = learning_stopping;
        o.stop_arg = stop;
    }
    *t = (trained){0};
    t->step = index;
    int rc = tdm_model_train(table, info->output, info->inputs, info->n_inputs, &o, &t->model,
                             &t->rep, err);
    if (rc == 0) {
        int s = filter_checks(ps->p, index, table, info->output, census, t, info->max_error,
                              1 - info->confidence);
        if (s == 0)
            s = tdm_model_serialize(t->model, &t->blob, &t->blob_len);
        if (s != 0)
            rc = tdm__error_code(err, s);
    }
    if (rc != 0)
        trained_release(t);
    return rc;
}

static int has_column(const tdm_table *t, const char *name)
{
    size_t col;
    return tdm_table_column_index(t, name, &col) == 0;
}

int tdm_engine_train(tdm_engine *e, const char *process, const char *data, size_t len,
                     tdm_table_format format, const char *actor, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || process == NULL || json == NULL || (data == NULL && len > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_train: missing argument");
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    proc_state *ps;
    int rc = tdm__proc_get(e, process, &ps, err);
    if (rc != 0)
        return rc;
    tdm_table *table = NULL;
    rc = tdm_table_read_buffer(data ? data : "", len, format, "training data", NULL, &table, err);
    if (rc != 0) {
        tdm__proc_put(e, ps);
        if (rc == TDM_EPARSE || rc == TDM_ETOOBIG)
            err->field[0] = '\0';
        return rc;
    }
    trained *t = calloc(ps->n_steps ? ps->n_steps : 1, sizeof *t);
    size_t n = 0;
    rc = t ? 0 : tdm__error_code(err, TDM_ENOMEM);
    json_t *wanted = json_array();
    for (size_t i = 0; rc == 0 && i < ps->n_steps; i++) {
        const tdm_step_info *info = tdm_process_step(ps->p, i);
        if (info->allocation == TDM_ALLOC_HUMAN)
            continue;
        json_array_append_new(wanted, json_string(info->output));
        if (!has_column(table, info->output))
            continue;
        for (size_t f = 0; f < info->n_inputs; f++) {
            if (!has_column(table, info->inputs[f].name)) {
                rc = tdm__error_field(err, TDM_EINVAL, info->inputs[f].name,
                                      "training data: no column \"%s\", which step \"%s\" reads "
                                      "(add it, or train with the step's inputs)",
                                      info->inputs[f].name, info->id);
                break;
            }
        }
        if (rc == 0 && info->n_labels > 0) {
            /* With a declared label set, every answer in the data must be one of them. */
            size_t col;
            tdm_table_column_index(table, info->output, &col);
            for (size_t r = 0; r < tdm_table_row_count(table); r++) {
                const char *v = tdm_table_cell(table, r, col, NULL);
                if (v == NULL || v[0] == '\0')
                    continue;
                size_t l = 0;
                while (l < info->n_labels && strcmp(info->labels[l], v) != 0)
                    l++;
                if (l == info->n_labels) {
                    rc = tdm__error_field(err, TDM_EINVAL, info->output,
                                          "training data:%zu: \"%s\" is not one of step \"%s\"'s "
                                          "labels (fix the data or add it to output.labels)",
                                          tdm_table_row_line(table, r), v, info->id);
                    break;
                }
            }
        }
        if (rc != 0)
            break;
        rc = fit_step(ps, i, table, NULL, NULL, &t[n], err);
        if (rc != 0) {
            if (err->field[0] == '\0')
                snprintf(err->field, sizeof err->field, "%s", info->output);
            break;
        }
        n++;
    }
    if (rc == 0 && n == 0) {
        char *names = json_dumps(wanted, JSON_COMPACT);
        rc = tdm__error_field(err, TDM_EINVAL, "data",
                              "training data: none of the columns the process's AI steps answer "
                              "(%s) is present; a labelled column is needed to train",
                              names ? names : "?");
        free(names);
    }
    json_decref(wanted);
    json_t *steps = json_array();
    if (rc == 0) {
        train_ctx c = {ps, actor, table, t, n};
        tdm__job job = {0};
        job.run = train_run;
        job.ctx = &c;
        rc = tdm__writer_run(e->writer, &job, err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const tdm_risk_result *r = &t[i].rep.risk;
            json_array_append_new(
                steps,
                json_pack("{s:s, s:I, s:I, s:I, s:o, s:I, s:I, s:f, s:f}", "step",
                          tdm_process_step(ps->p, t[i].step)->id, "model_version",
                          (json_int_t)t[i].version, "n_train", (json_int_t)t[i].rep.n_train,
                          "n_classes", (json_int_t)t[i].rep.n_classes, "threshold",
                          r->found ? json_real(r->threshold) : json_null(), "certified_n",
                          (json_int_t)r->n_above, "eligible_n", (json_int_t)t[i].n_keep,
                          "oof_accuracy", t[i].rep.oof_accuracy, "seconds", t[i].rep.seconds));
        }
    }
    tdm_table_free(table);
    for (size_t i = 0; i < n; i++)
        trained_release(&t[i]);
    free(t);
    tdm__proc_put(e, ps);
    if (rc != 0) {
        json_decref(steps);
        return rc;
    }
    return tdm__answer(json_pack("{s:s, s:o}", "process", process, "steps", steps), json, NULL,
                       err);
}

/* ------------------------------------------------------------------------------------------ */
/* Refits                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/*
 * NOTES ON REFITS
 *
 * Online learning takes one small step per answer, and a model that has only ever learned
 * that way stays well behind a batch fit of the same answers: on Banking77, a step that
 * starts from nothing has certified next to nothing after 10,000 answers, while a batch fit
 * of them certifies more than half of the items. A batch fit also brings what online
 * learning cannot: cross-fitted scores, the strongest evidence a certificate can rest on.
 * So a step with `refit: auto` (the default) is fitted again, as `tandem train` would fit
 * it, from everything it has learned: the rows of its last `tandem train` (kept in
 * `examples`) and every answer after them (`model_updates`). The first refit comes after
 * TDM__REFIT_FIRST answers, each later one when the answers since the last fit reach half of
 * what that fit learned from. Each fit then has at least 1.5 times the data of the one before,
 * so all the refits of a step together cost at most three fits of all its data.
 *
 * The refit runs off the hot path: on the learning thread (or, in a simulation, in the call
 * that made it due), reading the examples on a reader connection and fitting without any
 * lock, so answers keep arriving. The fitted model then goes into model_chunks a chunk a
 * writer round, paced like a periodic snapshot (engine.c), under the key -seen: its version
 * is known only in the round that adopts it. That round, on the writer, replays onto the new
 * model in memory the answers that arrived during the fit (updates are deterministic), so
 * nothing taught is lost, and stores it as the step's next version, with its cross-fitted
 * checks in place of the old ones, exactly as a train does; its models row points at the
 * chunks (chunks_at) and names the answers replayed (replay_after < version <= replay_upto),
 * which a load replays after the chunks. Stored whole in that round, the model (17 MB for
 * Banking77, serialized again there when answers had come) held up every request waiting on
 * it. A refit declined, superseded, or stored whole because a chunk is missing has its
 * chunks removed, a round each; the ones a crash leaves go with the step's next periodic
 * snapshot, or with the next refit of the same key.
 *
 * What certifies it. Once a threshold is in force, the items people answer are no longer a
 * sample of all items: they are the ones the model was unsure of (below the threshold), and
 * audit samples drawn among the others. Cross-fitted scores of such answers describe the hard
 * items only; weighted back to the population, the audit samples' heavy weights leave too few
 * effective checks to certify anything (see NOTES ON KEEPING THE THRESHOLD HONEST). So every
 * task records whether its item would have reached a person whatever the model's confidence
 * and the rules said (tasks.census, set by routing: no threshold in force, automation
 * paused, a hybrid step), its answer's update keeps the flag (model_updates.census), and the
 * refit is trained on every row but certified only on the training rows and those answers:
 * an unselected sample, on which filter_checks() then applies the rules with the refit's
 * own proposals, as on a train's rows. The flag is not the task's routing reason: before
 * any threshold, a rule like `confidence < 0.3` sends to a person the very items the online
 * model is unsure of, and leaving those out keeps the easy ones, an optimistic certificate.
 * (Judged by the reason, the Banking77 cold start of bench/simulate decided 43% of its last
 * 3,000 items alone; with the flag, 23%, at 0.43% error for a 1% budget.)
 *
 * When it is adopted. A step with a certified threshold keeps its model unless the refit
 * certifies one of its own: a refit never takes automation away by failing to certify on
 * data the model in force was already certified for. A step without one takes the refit
 * whatever it certifies, since its checks then describe the better model. A refit never
 * resumes a paused step (that is the owner's call, or a `tandem train`'s). A fit whose
 * examples are gone (a model trained before the store kept them) is not attempted: it would
 * forget the training data.
 */

typedef struct learning_work {
    step_model *sm; /* holds a reference */
    int kind;       /* WORK_REFIT, WORK_SNAPSHOT */
} learning_work;

/* The learning thread and what waits for it: refits, and periodic snapshots (engine.c). */
typedef struct tdm__learning {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    learning_work *queue;
    size_t n, cap;
    pthread_t thread;
    int started, stopping;
} tdm__learning;

/* Whether the engine is closing (tdm__learning_close): a refit's tdm_train_opts.should_stop,
 * and a periodic snapshot's between two of its rounds. */
static int learning_stopping(void *arg)
{
    tdm__learning *r = arg;
    pthread_mutex_lock(&r->lock);
    int stopping = r->stopping;
    pthread_mutex_unlock(&r->lock);
    return stopping;
}

typedef struct refit_ctx {
    proc_state *ps;
    trained t;
    uint64_t seen;         /* the newest version the fit learned from */
    uint64_t since;        /* the step's model_since when the examples were read */
    unsigned char *census; /* per row of the refit's table: may be a check */
    size_t rows, cap;
    int adopted;
} refit_ctx;

static int census_push(refit_ctx *c, int census)
{
    if (c->rows == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4096;
        unsigned char *v = realloc(c->census, cap);
        if (v == NULL)
            return TDM_ENOMEM;
        c->census = v;
        c->cap = cap;
    }
    c->census[c->rows++] = (unsigned char)(census != 0);
    return 0;
}

/* Appends one example, as a JSON Lines row of the refit's table, to *buf. */
static int append_row(const tdm_step_info *info, const char *fields, const char *label, FILE *buf)
{
    json_t *o = json_loads(fields, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return TDM_ECORRUPT;
    }
    json_object_set_new(o, info->output, json_string(label));
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (line == NULL)
        return TDM_ENOMEM;
    int rc = fputs(line, buf) >= 0 && fputc('\n', buf) != EOF ? 0 : TDM_ENOMEM;
    free(line);
    return rc;
}

/* Reads what the step has learned from since its last `tandem train` into JSON Lines. */
static int refit_data(tdm_engine *e, step_model *sm, const tdm_step_info *info, refit_ctx *c,
                      FILE *buf, tdm_error *err)
{
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = tdm__db_prepare(db,
                         "SELECT model_version, model_since, (SELECT coalesce(max(version), 0) "
                         "FROM models WHERE process = ?1 AND step = ?2 AND reason = 'trained' AND "
                         "version >= steps.model_since) FROM steps WHERE process = ?1 AND step = "
                         "?2",
                         &st, err);
    uint64_t trained_at = 0;
    if (rc == 0) {
        sqlite3_bind_text(st, 1, sm->process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, sm->step, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            c->seen = (uint64_t)sqlite3_column_int64(st, 0);
            c->since = (uint64_t)sqlite3_column_int64(st, 1);
            trained_at = (uint64_t)sqlite3_column_int64(st, 2);
        } else {
            rc = TDM_ENOTFOUND;
        }
        sqlite3_finalize(st);
    }
    size_t rows = 0;
    if (rc == 0 && trained_at > 0)
        rc = tdm__db_prepare(db,
                             "SELECT fields, label FROM examples WHERE process = ? AND step = ? "
                             "AND version = ? ORDER BY row",
                             &st, err);
    if (rc == 0 && trained_at > 0) {
        sqlite3_bind_text(st, 1, sm->process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, sm->step, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)trained_at);
        while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
            rc = append_row(info, (const char *)sqlite3_column_text(st, 0),
                            (const char *)sqlite3_column_text(st, 1), buf);
            if (rc == 0)
                rc = census_push(c, 1); /* history: every row was labelled */
            rows++;
        }
        sqlite3_finalize(st);
        if (rc == 0 && rows == 0)
            rc = TDM_ENOTFOUND; /* trained before the store kept examples */
    }
    if (rc == 0)
        rc = tdm__db_prepare(db,
                             "SELECT fields, label, coalesce(census, 1) FROM model_updates "
                             "WHERE process = ? AND step = ? AND version > ? AND version >= ? "
                             "AND version <= ? ORDER BY version",
                             &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, sm->process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, sm->step, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)trained_at);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)c->since);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)c->seen);
        while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
            rc = append_row(info, (const char *)sqlite3_column_text(st, 0),
                            (const char *)sqlite3_column_text(st, 1), buf);
            if (rc == 0)
                rc = census_push(c, sqlite3_column_int(st, 2));
        }
        sqlite3_finalize(st);
    }
    tdm__reader_put(e, db);
    return rc;
}

static int refit_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    refit_ctx *c = job->ctx;
    const char *process = tdm_process_name(c->ps->p);
    const tdm_step_info *info = tdm_process_step(c->ps->p, c->t.step);
    sqlite3_stmt *st = tdm__stmt(tx->stmts,
                                 "SELECT model_version, model_since, threshold IS NOT NULL, "
                                 "(SELECT count(*) FROM models WHERE process = ?1 AND step = ?2 "
                                 "AND version > ?3 AND reason IN ('trained', 'refit')) FROM steps "
                                 "WHERE process = ?1 AND step = ?2",
                                 err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)c->seen);
    int row = sqlite3_step(st) == SQLITE_ROW;
    uint64_t current = row ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    uint64_t since = row ? (uint64_t)sqlite3_column_int64(st, 1) : 0;
    int certified = row && sqlite3_column_int(st, 2);
    int superseded = !row || since != c->since || sqlite3_column_int64(st, 3) > 0;
    sqlite3_reset(st);
    /* A newer fit or a changed step makes this one moot; a certified model stays unless the
     * refit certifies too (see NOTES ON REFITS), which the trail says. */
    if (superseded)
        return 0;
    if (certified && !c->t.rep.risk.found) {
        /* Remembered in the store too, so that a restart does not try the same again. */
        st = tdm__stmt(tx->stmts,
                       "UPDATE steps SET refit_tried = ?, refit_tried_rows = ? WHERE process = ? "
                       "AND step = ?",
                       err);
        if (st == NULL)
            return err->code;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)c->seen);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)c->t.rep.n_train);
        sqlite3_bind_text(st, 3, process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, info->id, -1, SQLITE_STATIC);
        int step_rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (step_rc != SQLITE_DONE)
            return tdm__db_error(tx->db, step_rc, err, "recording a declined refit");
        char subject[260];
        snprintf(subject, sizeof subject, "%s/%s", process, info->id);
        return tdm__tx_audit(tx, "tandem", "model.refit_declined", subject,
                             json_pack("{s:I, s:I, s:f, s:s}", "model_version", (json_int_t)current,
                                       "n_train", (json_int_t)c->t.rep.n_train, "oof_accuracy",
                                       c->t.rep.oof_accuracy, "why",
                                       "the refit certifies no threshold and the model in force "
                                       "has one: the model in force stays"),
                             err);
    }
    /* The answers that came during the fit. */
    size_t replayed;
    int rc =
        replay_range(tx->db, process, info->id, info, c->t.model, c->seen, current, &replayed, err);
    if (rc != 0)
        return rc;
    /* Its chunks are the fit as it was read: a load replays what this round did. Should one
     * be missing (a round that failed), the model goes whole, as before chunks. */
    if (c->t.chunks > 0) {
        st = tdm__stmt(tx->stmts,
                       "SELECT count(*) FROM model_chunks WHERE process = ? AND step = ? AND "
                       "version = ?",
                       err);
        if (st == NULL)
            return err->code;
        sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, info->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, c->t.chunks_at);
        if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int64(st, 0) != c->t.chunks)
            c->t.chunks = 0;
        sqlite3_reset(st);
        c->t.replay_after = c->seen;
        c->t.replay_upto = replayed > 0 ? current : c->seen;
    }
    if (c->t.chunks == 0 && replayed > 0) {
        tdm_free(c->t.blob);
        c->t.blob = NULL;
        rc = tdm_model_serialize(c->t.model, &c->t.blob, &c->t.blob_len);
        if (rc != 0)
            return tdm__error(err, rc, "refit of %s/%s: cannot serialize it: %s", process, info->id,
                              tdm_strerror(rc));
    }
    rc = commit_fit(tx, c->ps, &c->t, "tandem", NULL, 1, c->t.rep.n_train + replayed, err);
    if (rc == 0)
        c->adopted = 1;
    return rc;
}

/* Fits sm's step again from what it has learned, and commits the fit if it is adopted. */
static void refit_step(tdm_engine *e, step_model *sm)
{
    proc_state *ps = NULL;
    size_t index = 0;
    const tdm_step_info *info = find_step(e, sm, &ps, &index);
    refit_ctx c = {0};
    tdm_error err;
    tdm__error_clear(&err);
    int rc = info != NULL ? 0 : TDM_ENOTFOUND;
    char *data = NULL;
    size_t len = 0;
    FILE *buf = rc == 0 ? open_memstream(&data, &len) : NULL;
    if (rc == 0 && buf == NULL)
        rc = TDM_ENOMEM;
    if (rc == 0)
        rc = refit_data(e, sm, info, &c, buf, &err);
    if (buf != NULL && fclose(buf) != 0 && rc == 0)
        rc = TDM_ENOMEM;
    tdm_table *table = NULL;
    if (rc == 0)
        rc = tdm_table_read_buffer(data, len, TDM_FORMAT_JSONL, "refit", NULL, &table, &err);
    free(data);
    if (rc == 0) {
        c.ps = ps;
        rc = tdm_table_row_count(table) == c.rows ? 0 : TDM_ECORRUPT;
        if (rc == 0)
            rc = fit_step(ps, index, table, c.census, e->learning, &c.t, &err);
    }
    tdm_table_free(table);
    /* The fit goes into the store a chunk a round before the round that adopts it, unless
     * that round will decline it: it certifies nothing where the model in force does. */
    int64_t key = -(int64_t)c.seen, staged = 0;
    if (rc == 0) {
        pthread_rwlock_rdlock(&sm->lock);
        int declined = sm->found && !c.t.rep.risk.found;
        pthread_rwlock_unlock(&sm->lock);
        if (!declined && c.seen > 0 && c.seen < INT64_MAX) {
            rc = tdm__chunks_write(e, sm, key, c.t.blob, c.t.blob_len, !e->refit_inline,
                                   learning_stopping, e->learning, &staged);
            c.t.chunks = rc == 0 ? staged : 0;
            c.t.chunks_at = key;
            if (rc != 0 && rc != TDM_EBUSY)
                rc = 0; /* stored whole in its round instead */
        }
    }
    if (rc == 0) {
        tdm__job job = {0};
        job.run = refit_run;
        job.ctx = &c;
        rc = tdm__writer_run(e->writer, &job, &err);
    }
    /* Chunks the step's models do not refer to: a refit declined, superseded or stored whole.
     * (Those a crash leaves go with the step's next periodic snapshot.) */
    if (staged > 0 && (!c.adopted || c.t.chunks == 0) && rc != TDM_EBUSY)
        tdm__chunks_discard(e, sm, key, !e->refit_inline, learning_stopping, e->learning);
    /* Not adopted, or failed: wait for as many answers again before the next try; stopped
     * because the engine closes (TDM_EBUSY), not: the next start tries at once. */
    pthread_rwlock_wrlock(&sm->lock);
    sm->refit_queued = 0;
    if (!c.adopted && rc != TDM_EBUSY && c.seen > sm->fit_version && c.seen > sm->tried_version) {
        sm->tried_version = c.seen;
        sm->tried_examples = c.t.rep.n_train;
    }
    pthread_rwlock_unlock(&sm->lock);
    trained_release(&c.t);
    free(c.census);
    if (ps != NULL)
        tdm__proc_put(e, ps);
}

/* Does one piece of the learning thread's work, in the calling thread; drops its reference. */
static void learning_do(tdm_engine *e, learning_work w)
{
    if (w.kind == WORK_REFIT)
        refit_step(e, w.sm);
    else
        tdm__snapshot_periodic(e, w.sm, !e->refit_inline, learning_stopping, e->learning);
    tdm__step_model_put(e, w.sm);
}

static void *learning_main(void *arg)
{
    tdm_engine *e = arg;
    tdm__learning *r = e->learning;
    /* A fit takes a core for seconds; at normal priority it took it from intake (see
     * TDM__REFIT_NICE). If the system refuses, the thread runs at normal priority. */
    tdm__thread_nice(TDM__REFIT_NICE);
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (r->n == 0 && !r->stopping)
            pthread_cond_wait(&r->wake, &r->lock);
        if (r->stopping)
            break;
        learning_work w = r->queue[0];
        memmove(r->queue, r->queue + 1, --r->n * sizeof *r->queue);
        pthread_mutex_unlock(&r->lock);
        learning_do(e, w);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* Queues a refit or a periodic snapshot of sm (from the writer thread, after the answer that
 * made it due; its flag, refit_queued or snapshotting, is set). */
static void learning_later(tdm_engine *e, step_model *sm, int kind)
{
    tdm__learning *r = e->learning;
    pthread_mutex_lock(&r->lock);
    int ok = !r->stopping;
    if (ok && r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        learning_work *q = realloc(r->queue, cap * sizeof *q);
        ok = q != NULL;
        if (ok) {
            r->queue = q;
            r->cap = cap;
        }
    }
    if (ok && !e->refit_inline && !r->started) {
        r->started = pthread_create(&r->thread, NULL, learning_main, e) == 0;
        ok = r->started;
    }
    if (ok) {
        pthread_mutex_lock(&e->lock);
        sm->refs++;
        pthread_mutex_unlock(&e->lock);
        r->queue[r->n++] = (learning_work){sm, kind};
        pthread_cond_signal(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    if (!ok) { /* try again at the next answer (a snapshot: or the close takes it) */
        pthread_rwlock_wrlock(&sm->lock);
        if (kind == WORK_REFIT)
            sm->refit_queued = 0;
        else
            sm->snapshotting = 0;
        pthread_rwlock_unlock(&sm->lock);
    }
}

void tdm__learning_inline(tdm_engine *e)
{
    tdm__learning *r = e->learning;
    if (r == NULL || !e->refit_inline)
        return;
    pthread_mutex_lock(&r->lock);
    while (r->n > 0) {
        learning_work w = r->queue[0];
        memmove(r->queue, r->queue + 1, --r->n * sizeof *r->queue);
        pthread_mutex_unlock(&r->lock);
        learning_do(e, w);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
}

int tdm__learning_open(tdm_engine *e)
{
    tdm__learning *r = calloc(1, sizeof *r);
    if (r == NULL)
        return TDM_ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    e->learning = r;
    return 0;
}

void tdm__learning_close(tdm_engine *e)
{
    tdm__learning *r = e->learning;
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    if (r->started)
        pthread_join(r->thread, NULL);
    for (size_t i = 0; i < r->n; i++) {
        step_model *sm = r->queue[i].sm;
        pthread_rwlock_wrlock(&sm->lock);
        if (r->queue[i].kind == WORK_SNAPSHOT)
            sm->snapshotting = 0;
        pthread_rwlock_unlock(&sm->lock);
        tdm__step_model_put(e, sm);
    }
    free(r->queue);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
    e->learning = NULL;
}
