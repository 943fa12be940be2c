/*
 * writer.c — the engine's single writer: group commit.
 *
 * NOTES ON THE DESIGN OF THE WRITER
 *
 * An fsync costs about 0.3 ms on the machines we measured, so committing each request on its
 * own would cap tandem at a few thousand durable writes a second. Instead one thread owns the
 * write connection. Requests queue jobs and wait; the writer takes every job queued so far,
 * runs them in one transaction, each inside its own SAVEPOINT, and commits once. While it
 * commits, new jobs queue up for the next round: the busier the engine, the more work one
 * fsync covers, with no timer in the way. (opts->commit_window_us can add a short wait before
 * each round to gather more; it is 0 by default.)
 *
 * A job that fails is rolled back to its savepoint and gets its error; the others commit.
 * The audit chain's tail is restored with it, so the chain never records what was rolled
 * back. If COMMIT itself fails, every job of the round fails with that error and the tail
 * goes back to where the round began.
 *
 * Effects outside the database (tdm__tx_effect) run only after a durable commit, in the
 * order they were registered, on this thread.
 *
 * Checkpoints (copying the WAL back into the database file) run on a thread of their own:
 * SQLite would otherwise run them inside a commit now and then, and every request waiting
 * on that commit would wait for a 10-20 ms copy too. The writer connection turns automatic
 * checkpoints off; its WAL hook wakes the checkpointer once the WAL holds CHECKPOINT_PAGES
 * pages, and the checkpointer runs a PASSIVE checkpoint, which never blocks the writer.
 *
 * That alone lets the WAL grow without end under steady load: SQLite starts writing the WAL
 * from its beginning again only when a write transaction begins with every frame already
 * copied, and a checkpoint running beside the writer never catches up with it (we measured
 * 100 MB after 10 s at 10,000 items a second, and every commit then also paid for an inode
 * update as the file grew). So the work is split: the checkpointer copies the bulk, then
 * asks the writer to finish (ckpt_tail). After its next round the writer runs a second
 * PASSIVE checkpoint on its own connection, with no transaction open; it copies only what
 * was committed since, and the round after begins the WAL anew. The WAL stays near
 * CHECKPOINT_PAGES pages and its file keeps its size.
 *
 * The writer's pass holds up every request waiting for the next round, so the checkpointer
 * leaves it little: it passes again while its last pass copied CHECKPOINT_TAIL_PAGES frames
 * or more (those committed during the pass before). With one pass, the writer's took 1-4 ms
 * beside intake at 5,000 items a second and 6-16 ms (once 44) while a model snapshot went
 * in a megabyte a round: it copied all that came during a pass of 2-18 ms.
 *
 * Each waiting request sleeps on its own condition variable: waking every waiter at the end
 * of every round (a broadcast) cost the request threads nearly half their CPU at 6,000
 * requests a second, in fights over the writer's mutex.
 */
#define _GNU_SOURCE /* pthread_setname_np */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine_int.h"

#define CHECKPOINT_PAGES 2000
/* The checkpointer passes again while a pass copied this many frames or more (at most
 * CHECKPOINT_PASSES passes), so that the writer's own pass copies few. */
#define CHECKPOINT_TAIL_PAGES 64
#define CHECKPOINT_PASSES     4

struct tdm__writer {
    tdm_engine *e;
    sqlite3 *db;
    /* The checkpointer: */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    pthread_cond_t ckpt_wake;
    int ckpt_due, ckpt_started;
    int ckpt_tail;        /* the checkpointer copied the bulk; the writer copies the rest */
    int64_t data_version; /* PRAGMA data_version at the last round; 0 before the first */
    tdm__stmt_cache stmts;
    tdm__audit_tail tail;
    unsigned window_us;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work; /* jobs queued, or stop */
    tdm__job *head, *last;
    int stop;
};

int tdm__tx_effect(tdm__tx *tx, void (*apply)(tdm__tx *tx, void *arg), void (*drop)(void *arg),
                   void *arg)
{
    tdm__effect *fx = malloc(sizeof *fx);
    if (fx == NULL) {
        if (drop)
            drop(arg);
        return TDM_ENOMEM;
    }
    *fx = (tdm__effect){apply, drop, arg, NULL};
    /* Keep registration order: walk to the end (jobs register a handful at most). */
    tdm__effect **at = &tx->effects;
    while (*at != NULL)
        at = &(*at)->next;
    *at = fx;
    return 0;
}

int tdm__tx_audit(tdm__tx *tx, const char *actor, const char *event, const char *subject,
                  json_t *data, tdm_error *err)
{
    return tdm__audit_append(tx->stmts, tx->audit, tx->now, actor, event, subject, data, err);
}

int tdm__tx_audit_text(tdm__tx *tx, const char *actor, const char *event, const char *subject,
                       const char *data, tdm_error *err)
{
    return tdm__audit_append_text(tx->stmts, tx->audit, tx->now, actor, event, subject, data, err);
}

static void drop_effects(tdm__effect *fx)
{
    while (fx != NULL) {
        tdm__effect *next = fx->next;
        if (fx->drop)
            fx->drop(fx->arg);
        free(fx);
        fx = next;
    }
}

static void apply_effects(tdm__tx *tx, tdm__effect *fx)
{
    while (fx != NULL) {
        tdm__effect *next = fx->next;
        if (fx->apply)
            fx->apply(tx, fx->arg);
        if (fx->drop)
            fx->drop(fx->arg);
        free(fx);
        fx = next;
    }
}

/* Runs a transaction-control statement through the statement cache. */
static int control(tdm__writer *w, const char *sql)
{
    sqlite3_stmt *st = tdm__stmt(&w->stmts, sql, NULL);
    if (st == NULL)
        return -1;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/*
 * Inside the round's transaction: when another process wrote to the database since the
 * last round (tandem token revoke --db while a server runs, say), reloads the audit tail,
 * so that the next entry follows the last one stored, not the last one this writer made.
 * PRAGMA data_version changes only with other connections' commits.
 */
static int follow_others(tdm__writer *w, tdm_error *err)
{
    sqlite3_stmt *st = tdm__stmt(&w->stmts, "PRAGMA data_version", err);
    if (st == NULL)
        return err->code;
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    if (v == w->data_version)
        return 0;
    int first = w->data_version == 0;
    w->data_version = v;
    if (first)
        return 0;
    tdm__webhooks_forget(w->e); /* it may have changed the subscriptions too */
    return tdm__audit_load_tail(w->db, &w->tail, err);
}

/* Runs one round: every job in `jobs`, one transaction, one commit. */
static void run_round(tdm__writer *w, tdm__job *jobs)
{
    tdm__tx tx = {w->e, w->db, &w->stmts, &w->tail, tdm__now_ms(), NULL};
    tdm_error err = {0};
    int begin_rc = 0;
    /* A lone job needs no savepoint: if it fails, the whole transaction is its own. */
    int single = jobs != NULL && jobs->next == NULL;
    if (control(w, "BEGIN IMMEDIATE") != 0)
        begin_rc = tdm__db_error(w->db, sqlite3_errcode(w->db), &err, "starting a transaction");
    else if ((begin_rc = follow_others(w, &err)) != 0)
        control(w, "ROLLBACK");
    tdm__audit_tail start = w->tail;
    for (tdm__job *j = jobs; j != NULL; j = j->next) {
        j->effects = NULL;
        if (begin_rc != 0) {
            j->rc = begin_rc;
            j->err = err;
            continue;
        }
        tdm__audit_tail before = w->tail;
        tdm__error_clear(&j->err);
        tx.effects = NULL;
        if (!single)
            control(w, "SAVEPOINT job");
        j->rc = j->run(&tx, j, &j->err);
        if (j->rc != 0) {
            if (!single)
                control(w, "ROLLBACK TO job");
            w->tail = before;
            drop_effects(tx.effects);
        } else {
            j->effects = tx.effects;
        }
        if (!single)
            control(w, "RELEASE job");
    }
    if (begin_rc == 0 && single && jobs->rc != 0) {
        control(w, "ROLLBACK");
        w->tail = start;
    } else if (begin_rc == 0 && control(w, "COMMIT") != 0) {
        tdm__db_error(w->db, sqlite3_errcode(w->db), &err, "committing");
        control(w, "ROLLBACK");
        w->tail = start;
        for (tdm__job *j = jobs; j != NULL; j = j->next) {
            if (j->rc == 0) {
                j->rc = err.code;
                j->err = err;
                drop_effects(j->effects);
                j->effects = NULL;
            }
        }
    }
    /* Durable: now the effects, in job order. */
    for (tdm__job *j = jobs; j != NULL; j = j->next) {
        if (j->rc == 0) {
            tx.effects = NULL;
            apply_effects(&tx, j->effects);
            j->effects = NULL;
        }
    }
}

/* The WAL hook: after each commit, with the number of pages in the WAL. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    tdm__writer *w = arg;
    pthread_mutex_lock(&w->lock);
    if (pages >= CHECKPOINT_PAGES && w->ckpt_started && !w->ckpt_tail) {
        w->ckpt_due = 1;
        pthread_cond_signal(&w->ckpt_wake);
    }
    pthread_mutex_unlock(&w->lock);
    return SQLITE_OK;
}

static void *checkpoint_main(void *arg)
{
    tdm__writer *w = arg;
    pthread_setname_np(pthread_self(), "tandem-ckpt");
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->ckpt_due && !w->stop)
            pthread_cond_wait(&w->ckpt_wake, &w->lock);
        if (w->stop)
            break;
        w->ckpt_due = 0;
        pthread_mutex_unlock(&w->lock);
        /* Pass after pass while the last one still had much to copy (what was committed
         * during the one before it): the writer's pass then has little left. */
        int rc = SQLITE_OK, copied = 0, before = 0;
        for (int pass = 0; pass < CHECKPOINT_PASSES; pass++) {
            rc = sqlite3_wal_checkpoint_v2(w->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                           &copied);
            if (rc != SQLITE_OK || copied - before < CHECKPOINT_TAIL_PAGES)
                break;
            before = copied;
        }
        pthread_mutex_lock(&w->lock);
        /* Frames committed while it ran are the writer's to copy (see the notes above). */
        if (rc == SQLITE_OK)
            w->ckpt_tail = 1;
        /* The hook may have asked again meanwhile: the writer's pass covers that too. */
        w->ckpt_due = 0;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void *writer_main(void *arg)
{
    tdm__writer *w = arg;
    pthread_setname_np(pthread_self(), "tandem-writer");
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == NULL && !w->stop)
            pthread_cond_wait(&w->work, &w->lock);
        if (w->head == NULL && w->stop)
            break;
        if (w->window_us > 0) {
            pthread_mutex_unlock(&w->lock);
            struct timespec ts = {0, (long)w->window_us * 1000};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&w->lock);
        }
        tdm__job *jobs = w->head;
        w->head = w->last = NULL;
        pthread_mutex_unlock(&w->lock);

        run_round(w, jobs);

        /* Wake the waiters; free the deferred jobs; set the notified jobs aside and notify
         * them after the lock is released. Once notified, a job may be freed at once by its
         * owner, so nothing of it is read after the call. */
        tdm__job *notify_list = NULL;
        pthread_mutex_lock(&w->lock);
        for (tdm__job *j = jobs, *next; j != NULL; j = next) {
            next = j->next;
            if (j->deferred) {
                free(j->ctx);
                free(j);
            } else if (j->wake != NULL) {
                j->done = 1;
                pthread_cond_signal(j->wake);
            } else if (j->notify != NULL) {
                j->next = notify_list;
                notify_list = j;
            }
        }
        pthread_mutex_unlock(&w->lock);
        for (tdm__job *j = notify_list, *next; j != NULL; j = next) {
            next = j->next;
            void (*notify)(void *) = j->notify;
            void *notify_arg = j->notify_arg;
            j->done = 1;
            notify(notify_arg);
        }
        pthread_mutex_lock(&w->lock);
        if (w->ckpt_tail) {
            w->ckpt_tail = 0;
            pthread_mutex_unlock(&w->lock);
            /* Between two rounds, no transaction open: copy the rest of the WAL so that the
             * next round starts it anew. */
            sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
            pthread_mutex_lock(&w->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int tdm__writer_start(tdm_engine *e, unsigned window_us, tdm__writer **out, tdm_error *err)
{
    *out = NULL;
    tdm__writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    w->e = e;
    w->window_us = window_us > 100000 ? 100000 : window_us;
    int rc = tdm__db_open(e->db_path, 1, &w->db, err);
    if (rc == 0)
        rc = tdm__audit_load_tail(w->db, &w->tail, err);
    if (rc != 0) {
        tdm__db_close(w->db);
        free(w);
        return rc;
    }
    w->stmts.db = w->db;
    /* A larger page cache keeps the indexes' hot pages in memory between rounds, and the
     * checkpointer (below) takes checkpoints off the writer's commits. */
    sqlite3_exec(w->db, "PRAGMA cache_size = -65536", NULL, NULL, NULL);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->ckpt_wake, NULL);
    if (tdm__db_open(e->db_path, 1, &w->ckpt_db, NULL) == 0) {
        if (pthread_create(&w->ckpt_thread, NULL, checkpoint_main, w) == 0) {
            w->ckpt_started = 1;
            sqlite3_wal_autocheckpoint(w->db, 0);
            sqlite3_wal_hook(w->db, wal_hook, w);
        } else {
            tdm__db_close(w->ckpt_db);
            w->ckpt_db = NULL;
        }
    }
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_lock(&w->lock);
        w->stop = 1;
        pthread_cond_broadcast(&w->ckpt_wake);
        pthread_mutex_unlock(&w->lock);
        if (w->ckpt_started)
            pthread_join(w->ckpt_thread, NULL);
        tdm__db_close(w->ckpt_db);
        tdm__stmt_cache_release(&w->stmts);
        tdm__db_close(w->db);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->ckpt_wake);
        free(w);
        return tdm__error(err, TDM_ENOMEM, "cannot start the writer thread");
    }
    *out = w;
    return 0;
}

void tdm__writer_stop(tdm__writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_broadcast(&w->work);
    pthread_cond_broadcast(&w->ckpt_wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    if (w->ckpt_started)
        pthread_join(w->ckpt_thread, NULL);
    tdm__db_close(w->ckpt_db);
    /* A last full checkpoint leaves the database file complete and the WAL empty. */
    sqlite3_wal_hook(w->db, NULL, NULL);
    sqlite3_wal_checkpoint_v2(w->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    tdm__stmt_cache_release(&w->stmts);
    tdm__db_close(w->db);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->ckpt_wake);
    free(w);
}

static void enqueue(tdm__writer *w, tdm__job *job)
{
    job->next = NULL;
    if (w->last != NULL)
        w->last->next = job;
    else
        w->head = job;
    w->last = job;
    pthread_cond_signal(&w->work);
}

int tdm__writer_run(tdm__writer *w, tdm__job *job, tdm_error *err)
{
    pthread_cond_t wake;
    pthread_cond_init(&wake, NULL);
    job->done = 0;
    job->deferred = 0;
    job->rc = 0;
    job->wake = &wake;
    job->notify = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->stop) {
        pthread_mutex_unlock(&w->lock);
        pthread_cond_destroy(&wake);
        return tdm__error(err, TDM_EBUSY, "the engine is shutting down");
    }
    enqueue(w, job);
    while (!job->done)
        pthread_cond_wait(&wake, &w->lock);
    pthread_mutex_unlock(&w->lock);
    pthread_cond_destroy(&wake);
    if (job->rc != 0 && err != NULL)
        *err = job->err;
    return job->rc;
}

void tdm__writer_enqueue(tdm__writer *w, tdm__job *job, void (*notify)(void *arg), void *arg)
{
    job->done = 0;
    job->deferred = 0;
    job->rc = 0;
    job->wake = NULL;
    job->notify = notify;
    job->notify_arg = arg;
    pthread_mutex_lock(&w->lock);
    if (w->stop) {
        pthread_mutex_unlock(&w->lock);
        job->rc = tdm__error(&job->err, TDM_EBUSY, "the engine is shutting down");
        job->done = 1;
        notify(arg);
        return;
    }
    enqueue(w, job);
    pthread_mutex_unlock(&w->lock);
}

void tdm__writer_defer(tdm__writer *w, tdm__job *job)
{
    job->done = 0;
    job->deferred = 1;
    job->wake = NULL;
    job->notify = NULL;
    job->rc = 0;
    pthread_mutex_lock(&w->lock);
    enqueue(w, job);
    pthread_mutex_unlock(&w->lock);
}
