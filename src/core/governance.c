/*
 * governance.c — the kill switch (a person pauses or resumes the AI's autonomy at a step)
 * and the registry of AI use cases (every step where the AI proposes or decides, with its
 * owner, budget, threshold, automation and audited error).
 *
 * Pausing is the same state as the automatic pause of learning.c (steps.paused, the
 * routing's "paused" test): while it holds, every item of the step goes to a person with
 * the AI's proposal. Resuming clears it and restarts the drift window (steps.audit_since),
 * so that audit samples from before the pause no longer count against the step.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"
#include "tandem/learn.h"

#define REASON_MAX 255

/* ------------------------------------------------------------------------------------------ */
/* Pause and resume                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct pause_ctx {
    const char *process;
    const char *step;
    const char *owner;
    const char *actor;
    int pause;
    const char *reason;
    int changed; /* out */
} pause_ctx;

typedef struct pause_fx {
    char process[TDM_SCOPE_NAME_MAX + 1];
    char step[TDM_SCOPE_NAME_MAX + 1];
    int pause;
    char reason[REASON_MAX + 1];
} pause_fx;

static int pause_set(tdm_engine *e, step_model *sm, void *arg)
{
    (void)e;
    const pause_fx *fx = arg;
    sm->paused = fx->pause;
    snprintf(sm->pause_reason, sizeof sm->pause_reason, "%s", fx->pause ? fx->reason : "");
    return 0;
}

static void *pause_take(void *arg)
{
    pause_fx *own = malloc(sizeof *own);
    if (own != NULL)
        memcpy(own, arg, sizeof *own);
    return own;
}

static void pause_apply(tdm__tx *tx, void *arg)
{
    pause_fx *fx = arg;
    proc_state *ps;
    if (tdm__proc_get(tx->e, fx->process, &ps, NULL) != 0)
        return;
    size_t i;
    if (tdm_process_step_index(ps->p, fx->step, &i) == 0)
        tdm__step_change(tx->e, ps->steps[i], pause_set, pause_take, free, fx);
    tdm__proc_put(tx->e, ps);
}

static int pause_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    pause_ctx *c = job->ctx;
    sqlite3_stmt *st =
        tdm__stmt(tx->stmts, "SELECT paused FROM steps WHERE process = ? AND step = ?", err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->step, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    int was = found ? sqlite3_column_int(st, 0) != 0 : 0;
    sqlite3_reset(st);
    if (!found)
        return tdm__error(err, TDM_ENOTFOUND, "process %s has no step \"%s\"", c->process, c->step);
    c->changed = was != c->pause;
    if (!c->changed)
        return 0; /* pressing the switch twice changes nothing and records nothing */
    st = tdm__stmt(tx->stmts,
                   "UPDATE steps SET paused = ?1, pause_reason = ?2, audit_since = CASE WHEN ?1 "
                   "THEN audit_since ELSE ?3 END WHERE process = ?4 AND step = ?5",
                   err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_int(st, 1, c->pause);
    if (c->pause)
        sqlite3_bind_text(st, 2, c->reason, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, tx->now);
    sqlite3_bind_text(st, 4, c->process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, c->step, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE
                 ? 0
                 : tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "pausing a step");
    sqlite3_reset(st);
    if (rc != 0)
        return rc;
    char subject[2 * TDM_SCOPE_NAME_MAX + 2];
    snprintf(subject, sizeof subject, "%s/%s", c->process, c->step);
    rc = tdm__tx_announce(tx, c->process, c->actor,
                          c->pause ? "automation.paused" : "automation.resumed", subject,
                          c->pause ? json_pack("{s:s, s:s, s:s}", "owner", c->owner, "reason",
                                               c->reason, "by", "person")
                                   : json_pack("{s:s, s:s}", "owner", c->owner, "by", "person"),
                          err);
    if (rc != 0)
        return rc;
    pause_fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    snprintf(fx->process, sizeof fx->process, "%s", c->process);
    snprintf(fx->step, sizeof fx->step, "%s", c->step);
    snprintf(fx->reason, sizeof fx->reason, "%s", c->pause ? c->reason : "");
    fx->pause = c->pause;
    return tdm__tx_effect(tx, pause_apply, free, fx);
}

int tdm_engine_pause_step(tdm_engine *e, const char *process, const char *step, int pause,
                          const char *reason, const char *actor, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || process == NULL || step == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_pause_step: missing argument");
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    if (reason != NULL && strlen(reason) > REASON_MAX)
        return tdm__error_field(err, TDM_EINVAL, "reason", "reason: at most %d bytes", REASON_MAX);
    proc_state *ps;
    int rc = tdm__proc_get(e, process, &ps, err);
    if (rc != 0)
        return rc;
    size_t index;
    if (tdm_process_step_index(ps->p, step, &index) != 0) {
        tdm__proc_put(e, ps);
        return tdm__error(err, TDM_ENOTFOUND, "process %s has no step \"%s\"", process, step);
    }
    const tdm_step_info *info = tdm_process_step(ps->p, index);
    if (info->allocation == TDM_ALLOC_HUMAN) {
        tdm__proc_put(e, ps);
        return tdm__error(err, TDM_EINVAL,
                          "step %s of process %s is a human step: the AI never decides there, "
                          "so there is nothing to pause",
                          step, process);
    }
    char why[REASON_MAX + 1];
    snprintf(why, sizeof why, "%s",
             reason != NULL && reason[0] != '\0' ? reason : "paused by a person");
    pause_ctx c = {process, step, info->owner, actor ? actor : "api", pause != 0, why, 0};
    tdm__job job = {0};
    job.run = pause_run;
    job.ctx = &c;
    rc = tdm__writer_run(e->writer, &job, err);
    tdm__proc_put(e, ps);
    if (rc != 0)
        return rc;
    return tdm__answer(json_pack("{s:s, s:s, s:b, s:o, s:b}", "process", process, "step", step,
                                 "paused", c.pause, "pause_reason",
                                 c.pause ? json_string(why) : json_null(), "changed", c.changed),
                       json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* The registry                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct step_numbers {
    int64_t routed, autonomous;
    int64_t audited, audit_errors;
    int64_t last_audit; /* ms, 0 when none */
} step_numbers;

/* The step's routing counts (q = 0), and its audit samples since training or the last resume
 * (q = 1), or only the latter (first = 1). */
static int read_numbers_from(sqlite3 *db, const char *process, const char *step, size_t first,
                             step_numbers *out, tdm_error *err)
{
    memset(out, 0, sizeof *out);
    static const char *const sql[] = {
        "SELECT (SELECT count(*) FROM tasks WHERE process = ?1 AND step = ?2), "
        "coalesce(sum(autonomous), 0), 0 FROM decisions WHERE process = ?1 AND step = ?2",
        "SELECT count(*), coalesce(sum(1 - correct), 0), coalesce(max(created_at), 0) FROM "
        "checks WHERE process = ?1 AND step = ?2 AND source = 'audit' AND created_at >= "
        "coalesce((SELECT audit_since FROM steps WHERE process = ?1 AND step = ?2), 0)",
    };
    for (size_t q = first; q < 2; q++) {
        sqlite3_stmt *st;
        int rc = tdm__db_kept(db, sql[q], &st, err);
        if (rc != 0)
            return rc;
        sqlite3_bind_text(st, 1, process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, step, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            int64_t a = sqlite3_column_int64(st, 0), b = sqlite3_column_int64(st, 1);
            if (q == 0) {
                out->routed = a + b; /* every item reaching the step: a task or the AI alone */
                out->autonomous = b;
            } else {
                out->audited = a;
                out->audit_errors = b;
                out->last_audit = sqlite3_column_int64(st, 2);
            }
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_ROW)
            return tdm__db_error(db, rc, err, "reading the registry");
    }
    return 0;
}

static int read_numbers(sqlite3 *db, const char *process, const char *step, step_numbers *out,
                        tdm_error *err)
{
    return read_numbers_from(db, process, step, 0, out, err);
}

int tdm__audit_numbers(sqlite3 *db, const char *process, const char *step, int64_t *audited,
                       int64_t *errors, tdm_error *err)
{
    step_numbers n;
    int rc = read_numbers_from(db, process, step, 1, &n, err);
    *audited = n.audited;
    *errors = n.audit_errors;
    return rc;
}

static json_t *registry_entry(proc_state *ps, size_t i, const step_numbers *n)
{
    const tdm_process *p = ps->p;
    const tdm_step_info *si = tdm_process_step(p, i);
    step_model *sm = ps->steps[i];
    json_t *kpis = json_array();
    for (size_t k = 0; k < tdm_process_kpi_count(p); k++)
        json_array_append_new(kpis, json_string(tdm_process_kpi(p, k)));
    pthread_rwlock_rdlock(&sm->lock);
    json_t *threshold = sm->found ? json_real(sm->threshold) : json_null();
    uint64_t version = sm->version;
    int paused = sm->paused;
    json_t *reason = paused ? json_string(sm->pause_reason) : json_null();
    pthread_rwlock_unlock(&sm->lock);
    double delta = 1 - si->confidence;
    json_t *audited_error =
        n->audited > 0 ? json_real((double)n->audit_errors / (double)n->audited) : json_null();
    json_t *bound = n->audited > 0 ? json_real(tdm_binomial_upper_bound(
                                         (uint64_t)n->audit_errors, (uint64_t)n->audited, delta))
                                   : json_null();
    json_t *rate =
        n->routed > 0 ? json_real((double)n->autonomous / (double)n->routed) : json_null();
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:f, s:f, s:f}, s:o, s:I, s:o, s:I, s:I, "
                     "s:I, s:o, s:o, s:o, s:b, s:o}",
                     "process", tdm_process_name(p), "step", si->id, "allocation",
                     tdm_allocation_name(si->allocation), "owner", si->owner, "process_owner",
                     tdm_process_owner(p), "kpis", kpis, "risk_budget", "max_error", si->max_error,
                     "confidence", si->confidence, "audit_sample", si->audit_sample, "threshold",
                     threshold, "model_version", (json_int_t)version, "automation_rate", rate,
                     "routed", (json_int_t)n->routed, "autonomous", (json_int_t)n->autonomous,
                     "audited", (json_int_t)n->audited, "audited_error", audited_error,
                     "audited_error_bound", bound, "last_audit_sample",
                     n->last_audit > 0 ? tdm__json_time(n->last_audit) : json_null(), "paused",
                     paused, "pause_reason", reason);
}

int tdm__registry_entry(sqlite3 *db, proc_state *ps, size_t i, json_t **out, tdm_error *err)
{
    *out = NULL;
    step_numbers num;
    int rc = read_numbers(db, tdm_process_name(ps->p), tdm_process_step(ps->p, i)->id, &num, err);
    if (rc != 0)
        return rc;
    *out = registry_entry(ps, i, &num);
    return *out != NULL ? 0 : tdm__error_code(err, TDM_ENOMEM);
}

int tdm_engine_registry(tdm_engine *e, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_registry: missing argument");
    size_t n;
    proc_state **refs = tdm__proc_all(e, &n);
    if (refs == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    json_t *list = json_array();
    sqlite3 *db = NULL;
    int rc = tdm__reader_get(e, &db, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        for (size_t s = 0; rc == 0 && s < refs[i]->n_steps; s++) {
            const tdm_step_info *si = tdm_process_step(refs[i]->p, s);
            if (si->allocation == TDM_ALLOC_HUMAN)
                continue; /* not an AI use case */
            json_t *entry;
            rc = tdm__registry_entry(db, refs[i], s, &entry, err);
            if (rc == 0)
                json_array_append_new(list, entry);
        }
    }
    if (db != NULL)
        tdm__reader_put(e, db);
    tdm__proc_put_all(e, refs, n);
    if (rc != 0) {
        json_decref(list);
        return rc;
    }
    return tdm__answer(json_pack("{s:o}", "use_cases", list), json, NULL, err);
}
