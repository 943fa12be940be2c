/*
 * engine.c — opening and closing the engine, the process registry, process routes, health,
 * and helpers shared by src/core/ (ids, answers, read connections).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine_int.h"

void tdm_engine_opts_init(tdm_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->commit_window_us = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/*
 * Ids are time-ordered, as UUIDv7 is: twelve hex digits of the creation time in ms, then
 * twelve of randomness. Random ids scatter every insert over the whole of each index, so
 * each new row dirtied its own page: measured on the intake benchmark, 12 KiB written per
 * item against 2 KiB with ordered ids, and half the throughput. The price is that an id
 * tells when its thing was made.
 */
void tdm__new_id(const char *prefix, char out[32])
{
    /* The random part comes from a per-thread buffer of the kernel's random bytes, filled
     * 85 ids at a time: a getrandom call per id was two system calls per item (its id and
     * its decision's). */
    static _Thread_local unsigned char pool[510];
    static _Thread_local size_t used = sizeof pool;
    if (used == sizeof pool) {
        randombytes_buf(pool, sizeof pool);
        used = 0;
    }
    const unsigned char *r = pool + used;
    used += 6;
    char hex[13];
    sodium_bin2hex(hex, sizeof hex, r, 6);
    snprintf(out, 32, "%s_%012llx%s", prefix, (unsigned long long)tdm__now_ms() & 0xffffffffffffULL,
             hex);
}

double tdm__draw(tdm_engine *e)
{
    pthread_mutex_lock(&e->lock);
    double d = tdm__rng_double(&e->rng);
    pthread_mutex_unlock(&e->lock);
    return d;
}

int tdm__answer(json_t *value, char **out, size_t *len, tdm_error *err)
{
    if (value == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    char *s = json_dumps(value, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(value);
    if (s == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    *out = s;
    if (len != NULL)
        *len = strlen(s);
    return 0;
}

json_t *tdm__json_time(int64_t ms)
{
    char buf[32];
    tdm__format_time(ms, buf, sizeof buf);
    return json_string(buf);
}

int tdm__reader_get(tdm_engine *e, sqlite3 **db, tdm_error *err)
{
    return tdm__db_pool_get(&e->readers, db, err);
}

void tdm__reader_put(tdm_engine *e, sqlite3 *db)
{
    tdm__db_pool_put(&e->readers, db);
}

/* ------------------------------------------------------------------------------------------ */
/* Step models and process states                                                             */
/* ------------------------------------------------------------------------------------------ */

static step_model *step_model_new(const char *process, const char *step)
{
    step_model *sm = calloc(1, sizeof *sm);
    if (sm == NULL)
        return NULL;
    sm->process = strdup(process);
    sm->step = strdup(step);
    if (sm->process == NULL || sm->step == NULL) {
        free(sm->process);
        free(sm->step);
        free(sm);
        return NULL;
    }
    pthread_rwlock_init(&sm->lock, NULL);
    pthread_mutex_init(&sm->defer_lock, NULL);
    sm->deferred_tail = &sm->deferred;
    sm->refs = 1;
    sm->since = 1;
    sm->threshold = INFINITY;
    return sm;
}

static void step_model_free(step_model *sm)
{
    if (sm == NULL)
        return;
    /* A serialization holds a reference to its step until it has run the changes it queued. */
    TDM_ASSERT(sm->deferred == NULL);
    tdm_model_free(sm->model);
    pthread_rwlock_destroy(&sm->lock);
    pthread_mutex_destroy(&sm->defer_lock);
    free(sm->process);
    free(sm->step);
    free(sm);
}

/* Drops a reference; call under engine->lock. */
static void step_model_unref(step_model *sm)
{
    if (sm != NULL && --sm->refs == 0)
        step_model_free(sm);
}

void tdm__step_model_put(tdm_engine *e, step_model *sm)
{
    pthread_mutex_lock(&e->lock);
    step_model_unref(sm);
    pthread_mutex_unlock(&e->lock);
}

static void proc_free(proc_state *ps)
{
    if (ps == NULL)
        return;
    for (size_t i = 0; i < ps->n_steps; i++)
        step_model_unref(ps->steps[i]);
    free(ps->steps);
    tdm_process_free(ps->p);
    free(ps->yaml);
    free(ps);
}

int tdm__proc_get(tdm_engine *e, const char *name, proc_state **out, tdm_error *err)
{
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n_procs; i++) {
        if (strcmp(tdm_process_name(e->procs[i]->p), name) == 0) {
            e->procs[i]->refs++;
            *out = e->procs[i];
            pthread_mutex_unlock(&e->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&e->lock);
    *out = NULL;
    return tdm__error_field(err, TDM_ENOTFOUND, "process",
                            "no process named \"%s\" (apply its process file first: PUT "
                            "/v1/processes/%s)",
                            name, name);
}

void tdm__proc_put(tdm_engine *e, proc_state *ps)
{
    if (ps == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    if (--ps->refs == 0) {
        /* Step models are unreferenced under the same lock. */
        proc_free(ps);
    }
    pthread_mutex_unlock(&e->lock);
}

/*
 * A step's spec hash: what a trained model depends on (inputs and their kinds, the output,
 * the label set, the model kind). Steps whose hash is unchanged keep their model when the
 * process is replaced.
 */
static void spec_hash(const tdm_step_info *s, char out[33])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    char buf[32];
    for (size_t i = 0; i < s->n_inputs; i++) {
        crypto_generichash_update(&st, (const unsigned char *)s->inputs[i].name,
                                  strlen(s->inputs[i].name) + 1);
        snprintf(buf, sizeof buf, "%d;", (int)s->inputs[i].kind);
        crypto_generichash_update(&st, (const unsigned char *)buf, strlen(buf));
    }
    crypto_generichash_update(&st, (const unsigned char *)"|", 1);
    crypto_generichash_update(&st, (const unsigned char *)s->output, strlen(s->output) + 1);
    for (size_t i = 0; i < s->n_labels; i++)
        crypto_generichash_update(&st, (const unsigned char *)s->labels[i],
                                  strlen(s->labels[i]) + 1);
    crypto_generichash_update(&st, (const unsigned char *)"|", 1);
    if (s->model != NULL)
        crypto_generichash_update(&st, (const unsigned char *)s->model, strlen(s->model) + 1);
    unsigned char d[16];
    crypto_generichash_final(&st, d, sizeof d);
    sodium_bin2hex(out, 33, d, sizeof d);
}

int tdm__step_state_load(tdm_engine *e, step_model *sm, tdm_error *err)
{
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    rc = tdm__db_prepare(db,
                         "SELECT model_version, model_since, threshold, paused, pause_reason "
                         "FROM steps WHERE process = ? AND step = ?",
                         &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, sm->process, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, sm->step, -1, SQLITE_STATIC);
        pthread_rwlock_wrlock(&sm->lock);
        if (sqlite3_step(st) == SQLITE_ROW) {
            sm->since = (uint64_t)sqlite3_column_int64(st, 1);
            sm->found = sqlite3_column_type(st, 2) != SQLITE_NULL;
            sm->threshold = sm->found ? sqlite3_column_double(st, 2) : INFINITY;
            sm->paused = sqlite3_column_int(st, 3);
            const char *why = (const char *)sqlite3_column_text(st, 4);
            snprintf(sm->pause_reason, sizeof sm->pause_reason, "%s", why ? why : "");
            /* The model itself loads lazily (tdm__model_ensure); remember which version. */
            if (!sm->loaded)
                sm->version = (uint64_t)sqlite3_column_int64(st, 0);
        }
        pthread_rwlock_unlock(&sm->lock);
        sqlite3_finalize(st);
    }
    tdm__reader_put(e, db);
    return rc;
}

/*
 * Builds the in-memory state of a process. Steps found in `old` with the same id and spec
 * share its step models; the others get new ones. *changed gets the ids of new or changed
 * steps (caller frees the array, not the strings).
 */
static int proc_build(tdm_engine *e, tdm_process *p, const char *yaml, size_t len, int64_t version,
                      proc_state *old, proc_state **out, tdm_error *err)
{
    proc_state *ps = calloc(1, sizeof *ps);
    if (ps == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    ps->p = p;
    ps->refs = 1;
    ps->version = version;
    ps->yaml = malloc(len + 1);
    ps->n_steps = tdm_process_step_count(p);
    ps->steps = calloc(ps->n_steps ? ps->n_steps : 1, sizeof *ps->steps);
    if (ps->yaml == NULL || ps->steps == NULL) {
        ps->p = NULL;
        proc_free(ps);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    memcpy(ps->yaml, yaml, len);
    ps->yaml[len] = '\0';
    for (size_t i = 0; i < ps->n_steps; i++) {
        const tdm_step_info *si = tdm_process_step(p, i);
        char h[33];
        spec_hash(si, h);
        step_model *reuse = NULL;
        if (old != NULL) {
            size_t j;
            if (tdm_process_step_index(old->p, si->id, &j) == 0) {
                char oh[33];
                spec_hash(tdm_process_step(old->p, j), oh);
                if (strcmp(h, oh) == 0)
                    reuse = old->steps[j];
            }
        }
        if (reuse != NULL) {
            pthread_mutex_lock(&e->lock);
            reuse->refs++;
            pthread_mutex_unlock(&e->lock);
            ps->steps[i] = reuse;
        } else {
            ps->steps[i] = step_model_new(tdm_process_name(p), si->id);
            if (ps->steps[i] == NULL) {
                ps->p = NULL;
                pthread_mutex_lock(&e->lock);
                proc_free(ps);
                pthread_mutex_unlock(&e->lock);
                return tdm__error_code(err, TDM_ENOMEM);
            }
        }
    }
    *out = ps;
    return 0;
}

/* Puts `ps` in the registry in place of the process of the same name (dropping that one). */
static int registry_set(tdm_engine *e, proc_state *ps)
{
    pthread_mutex_lock(&e->lock);
    const char *name = tdm_process_name(ps->p);
    for (size_t i = 0; i < e->n_procs; i++) {
        if (strcmp(tdm_process_name(e->procs[i]->p), name) == 0) {
            proc_state *old = e->procs[i];
            e->procs[i] = ps;
            if (--old->refs == 0)
                proc_free(old);
            pthread_mutex_unlock(&e->lock);
            return 0;
        }
    }
    if (e->n_procs == e->cap_procs) {
        size_t cap = e->cap_procs ? e->cap_procs * 2 : 8;
        proc_state **procs = realloc(e->procs, cap * sizeof *procs);
        if (procs == NULL) {
            pthread_mutex_unlock(&e->lock);
            return TDM_ENOMEM;
        }
        e->procs = procs;
        e->cap_procs = cap;
    }
    e->procs[e->n_procs++] = ps;
    pthread_mutex_unlock(&e->lock);
    return 0;
}

/* Loads every process from the store into the registry. */
static int load_processes(tdm_engine *e, tdm_error *err)
{
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    rc = tdm__db_prepare(db, "SELECT name, version, yaml FROM processes ORDER BY name", &st, err);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *yaml = (const char *)sqlite3_column_text(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        tdm_process *p = NULL;
        char file[256];
        snprintf(file, sizeof file, "stored process %s", name);
        rc = tdm_process_parse(yaml, len, file, &p, err);
        if (rc != 0)
            break;
        proc_state *ps = NULL;
        rc = proc_build(e, p, yaml, len, sqlite3_column_int64(st, 1), NULL, &ps, err);
        if (rc != 0) {
            tdm_process_free(p);
            break;
        }
        for (size_t i = 0; rc == 0 && i < ps->n_steps; i++)
            rc = tdm__step_state_load(e, ps->steps[i], err);
        if (rc == 0)
            rc = registry_set(e, ps);
        if (rc != 0) {
            pthread_mutex_lock(&e->lock);
            proc_free(ps);
            pthread_mutex_unlock(&e->lock);
        }
    }
    if (st != NULL)
        sqlite3_finalize(st);
    tdm__reader_put(e, db);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Open and close                                                                             */
/* ------------------------------------------------------------------------------------------ */

int tdm_engine_open(const tdm_engine_opts *opts, tdm_engine **out, tdm_error *err)
{
    tdm__error_clear(err);
    if (out == NULL || opts == NULL || opts->db_path == NULL || opts->db_path[0] == '\0')
        return tdm__error(err, TDM_EINVAL, "tdm_engine_open: a database path is needed");
    *out = NULL;
    if (sodium_init() < 0)
        return tdm__error(err, TDM_EIO, "libsodium failed to initialise");
    tdm_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    e->db_path = strdup(opts->db_path);
    e->read_only = opts->read_only;
    pthread_mutex_init(&e->lock, NULL);
    uint64_t seed = opts->seed;
    if (seed == 0) {
        randombytes_buf(&seed, sizeof seed);
    }
    tdm__rng_seed(&e->rng, seed);
    int rc = e->db_path == NULL ? TDM_ENOMEM : 0;
    if (rc == 0)
        rc = tdm__db_pool_init(&e->readers, opts->db_path);
    if (rc == 0)
        rc = tdm__webhooks_init(e, err);
    if (rc == 0 && !e->read_only)
        rc = tdm__writer_start(e, opts->commit_window_us, &e->writer, err);
    else if (rc == 0) {
        /* Read-only: the database must exist and have the schema. */
        sqlite3 *db;
        rc = tdm__reader_get(e, &db, err);
        if (rc == 0)
            tdm__reader_put(e, db);
    }
    if (rc == 0) /* the database is there now: the counter file takes its permissions */
        rc = tdm__token_cache_open(e);
    if (rc == 0 && !e->read_only)
        rc = tdm__learning_open(e);
    if (rc == 0)
        rc = load_processes(e, err);
    /* Bring trained models into memory now rather than on the first request that needs one
     * (a large model takes a tenth of a second to load). */
    for (size_t i = 0; rc == 0 && !e->read_only && i < e->n_procs; i++)
        for (size_t s = 0; rc == 0 && s < e->procs[i]->n_steps; s++)
            if (tdm_process_step(e->procs[i]->p, s)->allocation != TDM_ALLOC_HUMAN)
                rc = tdm__model_ensure(e, e->procs[i]->steps[s], err);
    if (rc != 0) {
        if (rc == TDM_ENOMEM)
            tdm__error_code(err, rc);
        tdm_engine_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* Saves a snapshot of every model that learned online since its last one (at close). */
static void snapshot_all(tdm_engine *e);

void tdm_engine_close(tdm_engine *e)
{
    if (e == NULL)
        return;
    tdm_engine_webhooks_stop(e); /* it writes through the writer: stopped first */
    tdm__learning_close(e);      /* so do a refit and a periodic snapshot */
    if (e->writer != NULL) {
        snapshot_all(e);
        tdm__writer_stop(e->writer);
    }
    tdm__webhooks_free(e);
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n_procs; i++)
        if (--e->procs[i]->refs == 0)
            proc_free(e->procs[i]);
    pthread_mutex_unlock(&e->lock);
    free(e->procs);
    if (e->readers.path != NULL)
        tdm__db_pool_release(&e->readers);
    tdm__token_cache_close(e);
    pthread_mutex_destroy(&e->lock);
    free(e->db_path);
    free(e);
}

/* ------------------------------------------------------------------------------------------ */
/* Snapshots                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/*
 * Periodic snapshots (every TDM__SNAPSHOT_EVERY online updates) are made on the learning
 * thread (learning.c), off the writer's. The model is serialized there under the step's read
 * lock (30-45 ms for Banking77's 17 MB): requests keep being decided meanwhile, and only an
 * answer to the same step, whose update needs the write lock, holds its writer round until
 * the copy is done. Then it is written SNAPSHOT_CHUNK bytes a writer round into model_chunks,
 * with a pause of SNAPSHOT_GAP_US between two rounds, and models.snapshot_chunks is set in
 * the round of the last one. Written in one round, a model of 17 MB held up every request
 * waiting on that round for about 130 ms. Serialized on the writer's thread, it held up one
 * round for 43-51 ms, and its chunks in back-to-back rounds kept long the rounds that had to
 * drain the requests queued meanwhile: a p99 of 164-310 ms beside 5,000 items/s where the
 * same runs without a snapshot had 19-28 ms (bench/learning). Until the count is set the
 * chunks are not a snapshot (a crash in between leaves chunks that the next snapshot of the
 * step removes). The snapshots written when the engine closes go in one piece, into
 * models.snapshot, as before.
 */
#define SNAPSHOT_CHUNK  ((size_t)1 << 20)
#define SNAPSHOT_GAP_US 20000

typedef struct snapshot_ctx {
    step_model *sm;
    const unsigned char *buf; /* the serialized model, */
    size_t len, off;          /* its length and how much of it is written, */
    size_t n;                 /* the bytes of the chunk this round writes, */
    int64_t key;              /* the version it is of (model_chunks.version): a refit's chunks
                                 are written under a negative key before it has a version */
    int64_t seq;              /* the chunk's number (the count of all, once they are written), */
    int more;                 /* a round of pruning removed a chunk */
} snapshot_ctx;

/* Runs one statement of a chunked snapshot, ?1..?4 the step, key and chunk number, ?5 the
 * data when there is some; 0 or an error (err set). */
static int chunk_stmt(tdm__tx *tx, const char *sql, const snapshot_ctx *c, const void *data,
                      size_t len, tdm_error *err)
{
    sqlite3_stmt *st = tdm__stmt(tx->stmts, sql, err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->sm->process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->sm->step, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, c->key);
    sqlite3_bind_int64(st, 4, c->seq);
    if (data != NULL)
        sqlite3_bind_blob64(st, 5, data, len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : tdm__db_error(tx->db, rc, err, "saving a model snapshot");
}

/* A writer job: the chunk of c's snapshot at c->off, c->n bytes, as chunk c->seq. A refit's
 * first chunk first removes what a crash may have left under the same key. */
static int snapshot_chunk(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    snapshot_ctx *c = job->ctx;
    if (c->key < 0 && c->seq == 0) {
        int rc = chunk_stmt(tx,
                            "DELETE FROM model_chunks WHERE process = ?1 AND step = ?2 AND "
                            "version = ?3 AND ?4 = 0",
                            c, NULL, 0, err);
        if (rc != 0)
            return rc;
    }
    return chunk_stmt(tx,
                      "INSERT INTO model_chunks (process, step, version, seq, data) "
                      "VALUES (?1, ?2, ?3, ?4, ?5)",
                      c, c->buf + c->off, c->n, err);
}

/* A writer job: removes one chunk stored under c->key; c->more says whether there was one. */
static int chunk_discard(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    snapshot_ctx *c = job->ctx;
    int rc = chunk_stmt(tx,
                        "DELETE FROM model_chunks WHERE rowid IN (SELECT rowid FROM model_chunks "
                        "WHERE process = ?1 AND step = ?2 AND version = ?3 AND ?4 >= 0 LIMIT 1)",
                        c, NULL, 0, err);
    c->more = rc == 0 && sqlite3_changes(tx->db) > 0;
    return rc;
}

/* A writer job: makes the c->seq chunks written the snapshot of version c->key, if every one is
 * there, and the step's older periodic snapshots no snapshots any more (c->more says whether
 * it was made). */
static int snapshot_finish(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    snapshot_ctx *c = job->ctx;
    /* Only if every chunk is there (a failed round may have lost one: then this version has
     * no snapshot, which costs only a longer replay, and its chunks go with the next one's
     * pruning). */
    int rc = chunk_stmt(tx,
                        "UPDATE models SET snapshot_chunks = ?4 WHERE process = ?1 AND step = ?2 "
                        "AND version = ?3 AND (SELECT count(*) FROM model_chunks WHERE process = "
                        "?1 AND step = ?2 AND version = ?3) = ?4",
                        c, NULL, 0, err);
    c->more = rc == 0 && sqlite3_changes(tx->db) > 0;
    if (!c->more)
        return rc;
    /* The step's older periodic snapshots are of no more use (a model loads from the newest):
     * without this a step kept one of 17 MB for every 1,000 answers. They stop being snapshots
     * here; their chunks go a round at a time after (snapshot_prune). A fit's own snapshot
     * (trained, refit) stays. ?4 is the chunk count here, always at least 1. */
    return chunk_stmt(tx,
                      "UPDATE models SET snapshot_chunks = NULL WHERE process = ?1 AND step = ?2 "
                      "AND version < ?3 AND ?4 > 0 AND snapshot_chunks IS NOT NULL AND reason NOT "
                      "IN ('trained', 'refit')",
                      c, NULL, 0, err);
}

/* A writer job: removes one chunk of the step's older snapshots (freeing a chunk's pages reads
 * them: 17 MB at once held a round for about 40 ms), or of a refit that no model refers to
 * (a negative key, learning.c); c->more says whether there was one. When there was none, the
 * older whole snapshots that are not a fit's own (the close writes one). */
static int snapshot_prune(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    snapshot_ctx *c = job->ctx;
    int rc = chunk_stmt(tx,
                        "DELETE FROM model_chunks WHERE rowid IN (SELECT rowid FROM model_chunks "
                        "WHERE process = ?1 AND step = ?2 AND version < ?3 AND ?4 > 0 AND "
                        "version NOT IN (SELECT coalesce(chunks_at, version) FROM models WHERE "
                        "process = ?1 AND step = ?2 AND snapshot_chunks IS NOT NULL) LIMIT 1)",
                        c, NULL, 0, err);
    c->more = rc == 0 && sqlite3_changes(tx->db) > 0;
    if (rc != 0 || c->more)
        return rc;
    return chunk_stmt(tx,
                      "UPDATE models SET snapshot = NULL WHERE process = ?1 AND step = ?2 AND "
                      "version < ?3 AND ?4 > 0 AND snapshot IS NOT NULL AND reason NOT IN "
                      "('trained', 'refit')",
                      c, NULL, 0, err);
}

/* Runs one job of c's snapshot in a writer round of its own: after the gap since the last
 * one when `paced`; not at all, TDM_EBUSY, once `stop(stop_arg)` says the engine closes. */
static int snapshot_round(tdm_engine *e, snapshot_ctx *c,
                          int (*run)(tdm__tx *, tdm__job *, tdm_error *), int paced,
                          int (*stop)(void *), void *stop_arg)
{
    if (paced) {
        struct timespec gap = {0, SNAPSHOT_GAP_US * 1000L};
        while (nanosleep(&gap, &gap) != 0 && errno == EINTR)
            ;
    }
    if (stop != NULL && stop(stop_arg))
        return TDM_EBUSY;
    tdm__job job = {0};
    job.run = run;
    job.ctx = c;
    return tdm__writer_run(e->writer, &job, NULL);
}

/* Writes c->buf's c->len bytes a chunk a round under c->key, from chunk 0; the first round
 * without a pause. */
static int chunks_write(tdm_engine *e, snapshot_ctx *c, int paced, int (*stop)(void *),
                        void *stop_arg)
{
    size_t chunk = e->snapshot_chunk ? e->snapshot_chunk : SNAPSHOT_CHUNK;
    int rc = 0;
    while (rc == 0 && c->off < c->len) {
        c->n = c->len - c->off < chunk ? c->len - c->off : chunk;
        rc = snapshot_round(e, c, snapshot_chunk, paced && c->off > 0, stop, stop_arg);
        if (rc == 0) {
            c->off += c->n;
            c->seq++;
        }
    }
    return rc;
}

int tdm__chunks_write(tdm_engine *e, step_model *sm, int64_t key, const unsigned char *buf,
                      size_t len, int paced, int (*stop)(void *), void *stop_arg, int64_t *n)
{
    snapshot_ctx c = {.sm = sm, .buf = buf, .len = len, .key = key};
    int rc = chunks_write(e, &c, paced, stop, stop_arg);
    *n = c.seq;
    return rc;
}

void tdm__chunks_discard(tdm_engine *e, step_model *sm, int64_t key, int paced, int (*stop)(void *),
                         void *stop_arg)
{
    snapshot_ctx c = {.sm = sm, .key = key};
    int rc;
    do
        rc = snapshot_round(e, &c, chunk_discard, paced, stop, stop_arg);
    while (rc == 0 && c.more);
}

void tdm__snapshot_periodic(tdm_engine *e, step_model *sm, int paced, int (*stop)(void *),
                            void *stop_arg)
{
    snapshot_ctx c = {.sm = sm};
    unsigned char *buf = NULL;
    uint64_t version = 0;
    /* Tens of milliseconds for a large model: the writer defers its changes meanwhile. */
    tdm__serialize_begin(sm);
    pthread_rwlock_rdlock(&sm->lock);
    int rc = 0, write = sm->model != NULL && sm->version > sm->snapshot;
    if (write) {
        rc = tdm_model_serialize(sm->model, &buf, &c.len);
        version = sm->version;
    }
    pthread_rwlock_unlock(&sm->lock);
    tdm__serialize_end(e, sm);
    c.buf = buf;
    c.key = (int64_t)version;
    /* A failed round leaves this version without a snapshot: only a longer replay. */
    if (write && rc == 0)
        rc = chunks_write(e, &c, paced, stop, stop_arg);
    tdm_free(buf);
    c.buf = NULL;
    if (write && rc == 0)
        rc = snapshot_round(e, &c, snapshot_finish, paced, stop, stop_arg);
    if (write && rc == 0 && c.more) {
        pthread_rwlock_wrlock(&sm->lock);
        if (version > sm->snapshot)
            sm->snapshot = version;
        pthread_rwlock_unlock(&sm->lock);
        do
            rc = snapshot_round(e, &c, snapshot_prune, paced, stop, stop_arg);
        while (rc == 0 && c.more);
    }
    /* The periodic snapshot is over, written or not: the next may start. */
    pthread_rwlock_wrlock(&sm->lock);
    sm->snapshotting = 0;
    pthread_rwlock_unlock(&sm->lock);
}

/* A writer job: the model of the step_model in job->ctx whole into models.snapshot (at close). */
static int snapshot_whole(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    step_model *sm = job->ctx;
    pthread_rwlock_rdlock(&sm->lock);
    if (sm->model == NULL || sm->version <= sm->snapshot) {
        pthread_rwlock_unlock(&sm->lock);
        return 0;
    }
    unsigned char *buf;
    size_t len;
    int rc = tdm_model_serialize(sm->model, &buf, &len);
    uint64_t version = sm->version;
    pthread_rwlock_unlock(&sm->lock);
    if (rc != 0)
        return tdm__error_code(err, rc);
    sqlite3_stmt *st = tdm__stmt(
        tx->stmts, "UPDATE models SET snapshot = ? WHERE process = ? AND step = ? AND version = ?",
        err);
    if (st == NULL) {
        tdm_free(buf);
        return err->code;
    }
    sqlite3_bind_blob64(st, 1, buf, len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sm->process, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sm->step, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)version);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    tdm_free(buf);
    if (rc != SQLITE_DONE)
        return tdm__db_error(tx->db, rc, err, "saving a model snapshot");
    pthread_rwlock_wrlock(&sm->lock);
    if (version > sm->snapshot)
        sm->snapshot = version;
    pthread_rwlock_unlock(&sm->lock);
    return 0;
}

static void snapshot_all(tdm_engine *e)
{
    pthread_mutex_lock(&e->lock);
    size_t n = 0;
    for (size_t i = 0; i < e->n_procs; i++)
        n += e->procs[i]->n_steps;
    step_model **list = calloc(n ? n : 1, sizeof *list);
    n = 0;
    for (size_t i = 0; list != NULL && i < e->n_procs; i++) {
        for (size_t s = 0; s < e->procs[i]->n_steps; s++) {
            step_model *sm = e->procs[i]->steps[s];
            sm->refs++;
            list[n++] = sm;
        }
    }
    pthread_mutex_unlock(&e->lock);
    for (size_t i = 0; i < n; i++) {
        tdm__job job = {0};
        job.run = snapshot_whole;
        job.ctx = list[i];
        tdm__writer_run(e->writer, &job, NULL);
    }
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < n; i++)
        step_model_unref(list[i]);
    pthread_mutex_unlock(&e->lock);
    free(list);
}

/* ------------------------------------------------------------------------------------------ */
/* Processes                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static json_t *string_list(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* The summary of a process and its steps' state. */
static json_t *proc_summary(proc_state *ps)
{
    const tdm_process *p = ps->p;
    json_t *kpis = json_array();
    for (size_t i = 0; i < tdm_process_kpi_count(p); i++)
        json_array_append_new(kpis, json_string(tdm_process_kpi(p, i)));
    json_t *steps = json_array();
    for (size_t i = 0; i < ps->n_steps; i++) {
        const tdm_step_info *si = tdm_process_step(p, i);
        step_model *sm = ps->steps[i];
        json_t *inputs = json_array();
        for (size_t f = 0; f < si->n_inputs; f++)
            json_array_append_new(inputs,
                                  json_pack("{s:s, s:s}", "name", si->inputs[f].name, "kind",
                                            tdm_field_kind_name(si->inputs[f].kind)));
        pthread_rwlock_rdlock(&sm->lock);
        json_t *state = json_pack("{s:I, s:o, s:b, s:s}", "model_version", (json_int_t)sm->version,
                                  "threshold", sm->found ? json_real(sm->threshold) : json_null(),
                                  "paused", sm->paused, "pause_reason", sm->pause_reason);
        pthread_rwlock_unlock(&sm->lock);
        json_t *step = json_pack(
            "{s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:{s:f, s:f, s:f, s:o, s:o, s:o}, s:s, s:f, "
            "s:o, s:i}",
            "id", si->id, "allocation", tdm_allocation_name(si->allocation), "owner", si->owner,
            "inputs", inputs, "output", si->output, "labels",
            si->n_labels ? string_list(si->labels, si->n_labels) : json_null(), "model",
            si->model ? json_string(si->model) : json_null(), "refit",
            si->model ? json_string(si->refit ? "auto" : "off") : json_null(), "guardrails",
            "max_error", si->max_error, "confidence", si->confidence, "audit_sample",
            si->audit_sample, "review_when", string_list(si->rules, si->n_rules), "four_eyes",
            si->four_eyes ? json_string(si->four_eyes) : json_null(), "second_look",
            si->second_look > 0 ? json_real(si->second_look) : json_null(), "queue", si->queue,
            "sla_minutes", si->sla_minutes, "escalation_queue",
            si->escalation_queue ? json_string(si->escalation_queue) : json_null(), "priority",
            si->priority);
        json_object_update(step, state);
        json_decref(state);
        json_array_append_new(steps, step);
    }
    return json_pack("{s:s, s:I, s:s, s:s, s:o, s:{s:f, s:f}, s:o}", "name", tdm_process_name(p),
                     "version", (json_int_t)ps->version, "owner", tdm_process_owner(p),
                     "description", tdm_process_description(p), "kpis", kpis, "baseline",
                     "minutes_per_item", tdm_process_baseline_minutes(p), "error_rate",
                     tdm_process_baseline_error(p), "steps", steps);
}

typedef struct put_ctx {
    proc_state *old; /* may be NULL */
    proc_state *ps;  /* the new state; the registry takes it after the commit */
    const char *actor;
    int64_t version;
} put_ctx;

static void put_apply(tdm__tx *tx, void *arg)
{
    put_ctx *c = arg;
    if (registry_set(tx->e, c->ps) == 0)
        c->ps = NULL; /* the registry owns it now */
}

/*
 * The index behind "related items" (the process's related_by key): a partial index over the
 * process's items that carry the key, so that items without it cost intake nothing. Made,
 * changed or dropped to match the process file; its SQL is compared with what is stored so
 * that an unchanged key rebuilds nothing. tdm__related_sql() writes the expression both the
 * index and its query use (they must match for the planner to pick the index).
 */
void tdm__related_sql(const char *process, const char *key, char *index_name, size_t name_cap,
                      char *expr, size_t expr_cap)
{
    snprintf(index_name, name_cap, "related:%s", process);
    snprintf(expr, expr_cap, "json_extract(fields, '$.\"%s\"')", key != NULL ? key : "");
}

static int related_index(tdm__tx *tx, const tdm_process *p, tdm_error *err)
{
    const char *name = tdm_process_name(p), *key = tdm_process_related_by(p);
    char index[96], expr[128], want[512] = "";
    tdm__related_sql(name, key, index, sizeof index, expr, sizeof expr);
    /* Process names and keys are restricted to characters that need no quoting here. */
    if (key != NULL)
        snprintf(want, sizeof want,
                 "CREATE INDEX \"%s\" ON items (%s, received_at) WHERE process = '%s' AND %s "
                 "IS NOT NULL",
                 index, expr, name, expr);
    sqlite3_stmt *st = tdm__stmt(
        tx->stmts, "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?", err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, index, -1, SQLITE_STATIC);
    const char *have =
        sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    int same = have != NULL ? strcmp(have, want) == 0 : want[0] == '\0';
    int exists = have != NULL;
    sqlite3_reset(st);
    if (same)
        return 0;
    char drop[128];
    snprintf(drop, sizeof drop, "DROP INDEX \"%s\"", index);
    if (exists && sqlite3_exec(tx->db, drop, NULL, NULL, NULL) != SQLITE_OK)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "dropping the related index");
    if (want[0] != '\0' && sqlite3_exec(tx->db, want, NULL, NULL, NULL) != SQLITE_OK)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "indexing related items");
    return 0;
}

static int put_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    put_ctx *c = job->ctx;
    proc_state *ps = c->ps;
    const char *name = tdm_process_name(ps->p);
    sqlite3_stmt *st = tdm__stmt(tx->stmts, "SELECT version FROM processes WHERE name = ?", err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int64_t version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) + 1 : 1;
    sqlite3_reset(st);
    st = tdm__stmt(tx->stmts,
                   "INSERT INTO processes (name, version, yaml, created_at, updated_at) "
                   "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO UPDATE SET "
                   "version = ?2, yaml = ?3, updated_at = ?4",
                   err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    sqlite3_bind_text(st, 3, ps->yaml, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, tx->now);
    if (sqlite3_step(st) != SQLITE_DONE)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "storing the process");
    ps->version = version;
    c->version = version;
    int rc = related_index(tx, ps->p, err);
    if (rc != 0)
        return rc;

    json_t *changed = json_array();
    for (size_t i = 0; i < ps->n_steps; i++) {
        const tdm_step_info *si = tdm_process_step(ps->p, i);
        char h[33];
        spec_hash(si, h);
        /* A step whose spec changed (or a new one) starts without a model: versions before
         * model_since belong to the old spec and are never loaded again. */
        st =
            tdm__stmt(tx->stmts, "SELECT spec_hash FROM steps WHERE process = ? AND step = ?", err);
        if (st == NULL) {
            json_decref(changed);
            return err->code;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, si->id, -1, SQLITE_STATIC);
        int exists = sqlite3_step(st) == SQLITE_ROW;
        int same = exists && strcmp((const char *)sqlite3_column_text(st, 0), h) == 0;
        sqlite3_reset(st);
        if (same)
            continue;
        json_array_append_new(changed, json_string(si->id));
        st = tdm__stmt(tx->stmts,
                       "INSERT INTO steps (process, step, spec_hash, model_version, model_since, "
                       "threshold, paused, pause_reason) VALUES (?1, ?2, ?3, 0, "
                       "(SELECT coalesce(max(version), 0) + 1 FROM models WHERE process = ?1 AND "
                       "step = ?2), NULL, 0, NULL) ON CONFLICT (process, step) DO UPDATE SET "
                       "spec_hash = ?3, model_version = 0, model_since = excluded.model_since, "
                       "threshold = NULL, paused = 0, pause_reason = NULL, checks_since = 0",
                       err);
        if (st == NULL) {
            json_decref(changed);
            return err->code;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, si->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, h, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            json_decref(changed);
            return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "storing a step");
        }
        /* Old checks were made on the old spec's models. */
        st = tdm__stmt(tx->stmts, "DELETE FROM checks WHERE process = ? AND step = ?", err);
        if (st == NULL) {
            json_decref(changed);
            return err->code;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, si->id, -1, SQLITE_STATIC);
        sqlite3_step(st);
        /* The in-memory step model is a new one (proc_build); give it the new start. */
        st = tdm__stmt(tx->stmts, "SELECT model_since FROM steps WHERE process = ? AND step = ?",
                       err);
        if (st == NULL) {
            json_decref(changed);
            return err->code;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, si->id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            step_model *sm = ps->steps[i];
            pthread_rwlock_wrlock(&sm->lock);
            sm->since = (uint64_t)sqlite3_column_int64(st, 0);
            sm->loaded = 1; /* nothing to load: a new spec has no model yet */
            pthread_rwlock_unlock(&sm->lock);
        }
        sqlite3_reset(st);
    }
    const tdm_process *p = ps->p;
    json_t *kpis = json_array();
    for (size_t i = 0; i < tdm_process_kpi_count(p); i++)
        json_array_append_new(kpis, json_string(tdm_process_kpi(p, i)));
    json_t *steps = json_array();
    for (size_t i = 0; i < ps->n_steps; i++)
        json_array_append_new(steps, json_string(tdm_process_step(p, i)->id));
    rc = tdm__tx_audit(tx, c->actor, "process.applied", name,
                       json_pack("{s:I, s:s, s:o, s:o, s:o}", "version", (json_int_t)version,
                                 "owner", tdm_process_owner(p), "kpis", kpis, "steps", steps,
                                 "changed_steps", changed),
                       err);
    if (rc != 0)
        return rc;
    return tdm__tx_effect(tx, put_apply, NULL, c);
}

int tdm_engine_put_process(tdm_engine *e, const char *name, const char *yaml, size_t len,
                           const char *actor, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || name == NULL || json == NULL || (yaml == NULL && len > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_put_process: missing argument");
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    char file[256];
    snprintf(file, sizeof file, "%.200s.yaml", name);
    tdm_process *p = NULL;
    int rc = tdm_process_parse(yaml ? yaml : "", len, file, &p, err);
    if (rc != 0)
        return rc;
    if (strcmp(tdm_process_name(p), name) != 0) {
        rc = tdm__error_field(err, TDM_EINVAL, "process",
                              "%s: the file declares process \"%s\" but the request names "
                              "\"%s\" (make them the same)",
                              file, tdm_process_name(p), name);
        tdm_process_free(p);
        return rc;
    }
    proc_state *old = NULL;
    tdm_error ignore;
    tdm__proc_get(e, name, &old, &ignore);
    proc_state *ps = NULL;
    rc = proc_build(e, p, yaml ? yaml : "", len, 0, old, &ps, err);
    if (rc != 0) {
        tdm_process_free(p);
        tdm__proc_put(e, old);
        return rc;
    }
    put_ctx c = {old, ps, actor, 0};
    tdm__job job = {0};
    job.run = put_run;
    job.ctx = &c;
    rc = tdm__writer_run(e->writer, &job, err);
    tdm__proc_put(e, old);
    if (rc != 0 || c.ps != NULL) {
        /* Failed, or (out of memory) the registry could not take it. */
        pthread_mutex_lock(&e->lock);
        proc_free(ps);
        pthread_mutex_unlock(&e->lock);
        return rc != 0 ? rc : tdm__error_code(err, TDM_ENOMEM);
    }
    proc_state *now;
    rc = tdm__proc_get(e, name, &now, err);
    if (rc != 0)
        return rc;
    /* Steps that are new in memory read their state (an earlier version's, or none) from the
     * store; steps carried over keep theirs. */
    for (size_t i = 0; i < now->n_steps; i++) {
        pthread_rwlock_rdlock(&now->steps[i]->lock);
        int loaded = now->steps[i]->loaded;
        pthread_rwlock_unlock(&now->steps[i]->lock);
        if (!loaded)
            tdm__step_state_load(e, now->steps[i], NULL);
    }
    json_t *summary = proc_summary(now);
    tdm__proc_put(e, now);
    return tdm__answer(summary, json, NULL, err);
}

proc_state **tdm__proc_all(tdm_engine *e, size_t *n)
{
    pthread_mutex_lock(&e->lock);
    *n = e->n_procs;
    proc_state **refs = calloc(*n ? *n : 1, sizeof *refs);
    for (size_t i = 0; refs != NULL && i < *n; i++) {
        refs[i] = e->procs[i];
        refs[i]->refs++;
    }
    pthread_mutex_unlock(&e->lock);
    return refs;
}

void tdm__proc_put_all(tdm_engine *e, proc_state **refs, size_t n)
{
    for (size_t i = 0; refs != NULL && i < n; i++)
        tdm__proc_put(e, refs[i]);
    free(refs);
}

int tdm_engine_list_processes(tdm_engine *e, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    size_t n;
    proc_state **refs = tdm__proc_all(e, &n);
    if (refs == NULL)
        return tdm__error_code(err, TDM_ENOMEM);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, proc_summary(refs[i]));
    tdm__proc_put_all(e, refs, n);
    return tdm__answer(json_pack("{s:o}", "processes", list), json, NULL, err);
}

int tdm_engine_get_process(tdm_engine *e, const char *name, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    proc_state *ps = NULL;
    int rc = tdm__proc_get(e, name, &ps, err);
    if (rc != 0)
        return rc;
    json_t *summary = proc_summary(ps);
    tdm__proc_put(e, ps);
    return tdm__answer(summary, json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Health                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int64_t count(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

int tdm_engine_health(tdm_engine *e, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    int64_t items = count(db, "SELECT count(*) FROM items");
    int64_t open_tasks = count(db, "SELECT count(*) FROM tasks WHERE state != 'done'");
    int64_t audit = count(db, "SELECT coalesce(max(seq), 0) FROM audit");
    /* Steps whose automation was pulled back: a number an operator's monitoring can watch. */
    int64_t paused = count(db, "SELECT count(*) FROM steps WHERE paused != 0");
    tdm__reader_put(e, db);
    if (items < 0 || open_tasks < 0 || audit < 0 || paused < 0)
        return tdm__error(err, TDM_EIO, "database: cannot read the counts");
    return tdm__answer(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "status", "ok", "version",
                                 tdm_version(), "items", (json_int_t)items, "open_tasks",
                                 (json_int_t)open_tasks, "audit_entries", (json_int_t)audit,
                                 "paused_steps", (json_int_t)paused),
                       json, NULL, err);
}
