/*
 * db.c — SQLite connections, the schema and its versioned migrations.
 *
 * NOTES ON THE DESIGN OF THE STORE
 *
 * Durability. The database runs in WAL mode with synchronous = FULL: a transaction is on
 * disk (the WAL fsynced) when COMMIT returns, and the engine acknowledges nothing before
 * that. Commits are grouped by the engine's writer (src/core/writer.c), so one fsync serves
 * every request that arrived meanwhile.
 *
 * Migrations. meta.schema_version records the version a database is at. Opening for writing
 * applies every migration above it in one transaction each; a database newer than this build
 * is refused (TDM_EVERSION) rather than misread. Migrations only ever add.
 *
 * Time is stored as integer milliseconds since the epoch (UTC) and rendered as ISO 8601 in
 * answers.
 */
#define _POSIX_C_SOURCE 200809L

#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

/* Each entry brings the schema from version i to i + 1. */
static const char *const migrations[] = {
    /* 0 -> 1: the engine's tables. */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE processes ("
    "  name TEXT PRIMARY KEY, version INTEGER NOT NULL, yaml TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE steps ("
    "  process TEXT NOT NULL, step TEXT NOT NULL, spec_hash TEXT NOT NULL,"
    "  model_version INTEGER NOT NULL DEFAULT 0, model_since INTEGER NOT NULL DEFAULT 1,"
    "  threshold REAL, threshold_n INTEGER,"
    "  threshold_errors INTEGER, threshold_bound REAL, threshold_at INTEGER,"
    "  checks_since INTEGER NOT NULL DEFAULT 0, audit_since INTEGER NOT NULL DEFAULT 0,"
    "  paused INTEGER NOT NULL DEFAULT 0, pause_reason TEXT,"
    "  PRIMARY KEY (process, step));"
    "CREATE TABLE models ("
    "  process TEXT NOT NULL, step TEXT NOT NULL, version INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, reason TEXT NOT NULL, examples_seen INTEGER NOT NULL,"
    "  online_updates INTEGER NOT NULL, n_labels INTEGER NOT NULL, snapshot BLOB,"
    "  PRIMARY KEY (process, step, version));"
    "CREATE TABLE model_updates ("
    "  process TEXT NOT NULL, step TEXT NOT NULL, version INTEGER NOT NULL,"
    "  fields TEXT NOT NULL, label TEXT NOT NULL, weight REAL NOT NULL,"
    "  created_at INTEGER NOT NULL, PRIMARY KEY (process, step, version));"
    "CREATE TABLE items ("
    "  id TEXT PRIMARY KEY, process TEXT NOT NULL, version INTEGER NOT NULL,"
    "  fields TEXT NOT NULL, status TEXT NOT NULL, step INTEGER NOT NULL,"
    "  received_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE decisions ("
    "  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, item_id TEXT NOT NULL,"
    "  item_version INTEGER NOT NULL, process TEXT NOT NULL, step TEXT NOT NULL,"
    "  value TEXT NOT NULL, confidence REAL, by TEXT NOT NULL, kind TEXT NOT NULL,"
    "  autonomous INTEGER NOT NULL, model_version INTEGER, proposal TEXT,"
    "  proposal_confidence REAL, task_id TEXT, created_at INTEGER NOT NULL);"
    "CREATE INDEX decisions_item ON decisions (item_id);"
    "CREATE TABLE tasks ("
    "  id TEXT PRIMARY KEY, item_id TEXT NOT NULL, item_version INTEGER NOT NULL,"
    "  process TEXT NOT NULL, step TEXT NOT NULL, queue TEXT NOT NULL, state TEXT NOT NULL,"
    "  priority INTEGER NOT NULL, due_at INTEGER NOT NULL, claimed_by TEXT,"
    "  lease_until INTEGER, completed_by TEXT, action TEXT, proposal TEXT,"
    "  proposal_confidence REAL, model_version INTEGER, why TEXT NOT NULL, rule TEXT,"
    "  sample_rate REAL, reasons TEXT, created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX tasks_queue ON tasks (queue, state, priority DESC, due_at);"
    "CREATE INDEX tasks_item ON tasks (item_id);"
    "CREATE TABLE feedback ("
    "  id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, actor TEXT NOT NULL,"
    "  verdict TEXT NOT NULL, correction TEXT, comment TEXT, created_at INTEGER NOT NULL);"
    "CREATE TABLE checks ("
    "  id INTEGER PRIMARY KEY, process TEXT NOT NULL, step TEXT NOT NULL,"
    "  confidence REAL NOT NULL, correct INTEGER NOT NULL, weight REAL NOT NULL,"
    "  source TEXT NOT NULL, model_version INTEGER, created_at INTEGER NOT NULL);"
    "CREATE INDEX checks_step ON checks (process, step);"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL,"
    "  event TEXT NOT NULL, subject TEXT NOT NULL, data TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);",
    /* 1 -> 2: API tokens. Only a hash of each token is kept (src/core/tokens.c); a name
     * is unique among the tokens in force, so a revoked token's name can be given again. */
    "CREATE TABLE tokens ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
    "  scope TEXT NOT NULL, hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL,"
    "  created_by TEXT NOT NULL, revoked_at INTEGER, revoked_by TEXT);"
    "CREATE UNIQUE INDEX tokens_name ON tokens (name) WHERE revoked_at IS NULL;",
    /* 2 -> 3: four eyes. A task answered by a first person waits, in state 'confirming', with
     * that answer, for a second person; the decision records who confirmed it. Also an index
     * for the fairness report, which looks feedback up by decision. */
    "ALTER TABLE tasks ADD COLUMN first_by TEXT;"
    "ALTER TABLE tasks ADD COLUMN first_action TEXT;"
    "ALTER TABLE tasks ADD COLUMN first_value TEXT;"
    "ALTER TABLE tasks ADD COLUMN first_comment TEXT;"
    "ALTER TABLE decisions ADD COLUMN confirmed_by TEXT;"
    "CREATE INDEX feedback_decision ON feedback (decision_id);",
    /* 3 -> 4: the workspace. A task keeps the AI's next most likely values beside its
     * proposal, for the person who answers it. */
    "ALTER TABLE tasks ADD COLUMN alternatives TEXT;",
    /* 4 -> 5: measuring and telling. When a task was last claimed (reviewer time), whether
     * its passing its due time was announced, and webhook subscriptions with their
     * deliveries (a delivery row is written in the transaction of its event, so none is lost
     * across a restart; src/core/webhooks.c). tasks_sla holds only the tasks whose passing
     * their due time is still to be announced, so the sweep that looks for them reads a
     * handful of index entries, not every open task. */
    "ALTER TABLE tasks ADD COLUMN claimed_at INTEGER;"
    "ALTER TABLE tasks ADD COLUMN sla_notified INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE webhooks ("
    "  id TEXT PRIMARY KEY, process TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL,"
    "  secret TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL,"
    "  deleted_at INTEGER);"
    "CREATE TABLE deliveries ("
    "  id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, event TEXT NOT NULL,"
    "  payload TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL, last_status INTEGER, last_error TEXT,"
    "  created_at INTEGER NOT NULL, delivered_at INTEGER);"
    "CREATE INDEX deliveries_due ON deliveries (state, next_at);"
    "CREATE INDEX deliveries_webhook ON deliveries (webhook_id, state, created_at);"
    "CREATE INDEX tasks_sla ON tasks (due_at) WHERE sla_notified = 0 AND state <> 'done';",
    /* 5 -> 6: metrics over a window (src/core/metrics.c) find escalations and the kill
     * switch's events on the audit trail by time. These partial indexes hold only those
     * entries, so appending any other audit entry costs no more than before. */
    "CREATE INDEX audit_escalations ON audit (at) WHERE event = 'task.escalated';"
    "CREATE INDEX audit_automation ON audit (at) WHERE event IN ('automation.paused', "
    "'automation.resumed');",
    /* 6 -> 7: why an answer waits for a second person ("four_eyes" or "second_look"), for
     * the task view. */
    "ALTER TABLE tasks ADD COLUMN first_because TEXT;",
    /* 7 -> 8: refits (src/core/learning.c). The rows a batch fit learned from, kept with the
     * version of that fit, so that a refit can learn from them again together with the
     * online updates after it (model_updates); how many rows a fit learned from (what the
     * refit schedule counts); and whether a task's item, and so an
     * update's, would have reached a person whatever the model's confidence (NULL, before:
     * a task's routing reason says; an update counts as such). */
    "CREATE TABLE examples ("
    "  process TEXT NOT NULL, step TEXT NOT NULL, version INTEGER NOT NULL, row INTEGER NOT NULL,"
    "  fields TEXT NOT NULL, label TEXT NOT NULL, PRIMARY KEY (process, step, version, row));"
    "ALTER TABLE models ADD COLUMN fit_rows INTEGER;"
    "ALTER TABLE model_updates ADD COLUMN census INTEGER;"
    "ALTER TABLE tasks ADD COLUMN census INTEGER;",
    /* 8 -> 9: the last refit not adopted (declined: it certified nothing where the model in
     * force has a threshold), the version it read up to and the rows it learned from, so
     * that a restarted engine waits for as many answers again before the next try, as the
     * running one did, instead of fitting the same answers again at once. */
    ("ALTER TABLE steps ADD COLUMN refit_tried INTEGER;"
     "ALTER TABLE steps ADD COLUMN refit_tried_rows INTEGER;"),
    /* 9 -> 10: a model's periodic snapshot written a chunk a writer round (model_chunks,
     * models.snapshot_chunks counts them once all are in), so that storing one (17 MB for
     * Banking77's 77 intents) no longer holds up every request for a round of 130 ms. */
    ("ALTER TABLE models ADD COLUMN snapshot_chunks INTEGER;"
     "CREATE TABLE model_chunks ("
     "  process TEXT NOT NULL, step TEXT NOT NULL, version INTEGER NOT NULL,"
     "  seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (process, step, version, seq));"),
    /* 10 -> 11: a refit's model, written in chunks before the round that adopts it, under a
     * key of its own (models.chunks_at, since its version is known only in that round), and
     * the answers that came during the fit, which that round replays onto it
     * (models.replay_after < version <= replay_upto), so that a load replays them too. */
    ("ALTER TABLE models ADD COLUMN chunks_at INTEGER;"
     "ALTER TABLE models ADD COLUMN replay_after INTEGER;"
     "ALTER TABLE models ADD COLUMN replay_upto INTEGER;"),
};

#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

_Static_assert(N_MIGRATIONS == TDM__SCHEMA_VERSION,
               "every schema version needs its migration (and TDM__SCHEMA_VERSION its bump)");

int tdm__db_error(sqlite3 *db, int rc, tdm_error *err, const char *doing)
{
    int code = TDM_EIO;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        code = TDM_EBUSY;
    else if (rc == SQLITE_NOMEM)
        code = TDM_ENOMEM;
    else if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
        code = TDM_ECORRUPT;
    return tdm__error(err, code, "database: %s: %s", doing,
                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

int tdm__db_exec(sqlite3 *db, const char *sql, tdm_error *err)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return tdm__db_error(db, rc, err, "executing a statement");
    return 0;
}

int tdm__db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, tdm_error *err)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, out, NULL);
    if (rc != SQLITE_OK)
        return tdm__db_error(db, rc, err, "preparing a statement");
    return 0;
}

/* Reads meta.schema_version: 0 for an empty database. */
static int schema_version(sqlite3 *db, int *version, tdm_error *err)
{
    sqlite3_stmt *st;
    *version = 0;
    int rc = sqlite3_prepare_v2(
        db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'", -1, &st,
        NULL);
    if (rc != SQLITE_OK)
        return tdm__db_error(db, rc, err, "reading the schema");
    int has_meta = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    if (!has_meta)
        return 0;
    rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
                            NULL);
    if (rc != SQLITE_OK)
        return tdm__db_error(db, rc, err, "reading the schema version");
    if (sqlite3_step(st) == SQLITE_ROW)
        *version = atoi((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return 0;
}

static int migrate(sqlite3 *db, const char *path, tdm_error *err)
{
    int version;
    int rc = schema_version(db, &version, err);
    if (rc != 0)
        return rc;
    if (version > TDM__SCHEMA_VERSION)
        return tdm__error(err, TDM_EVERSION,
                          "%s: database schema version %d is newer than this tandem's (%d); use "
                          "the tandem that wrote it",
                          path, version, TDM__SCHEMA_VERSION);
    for (int v = version; v < (int)N_MIGRATIONS; v++) {
        char bump[128];
        snprintf(bump, sizeof bump,
                 "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '%d');",
                 v + 1);
        if ((rc = tdm__db_exec(db, "BEGIN IMMEDIATE", err)) != 0)
            return rc;
        if ((rc = tdm__db_exec(db, migrations[v], err)) != 0 ||
            (rc = tdm__db_exec(db, bump, err)) != 0) {
            tdm__db_exec(db, "ROLLBACK", NULL);
            return rc;
        }
        if ((rc = tdm__db_exec(db, "COMMIT", err)) != 0)
            return rc;
    }
    return 0;
}

int tdm__db_open(const char *path, int writer, sqlite3 **out, tdm_error *err)
{
    *out = NULL;
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_NOMUTEX |
                (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        tdm__error(err, TDM_EIO,
                   "%s: cannot open the database: %s (check the path and its "
                   "permissions)",
                   path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return TDM_EIO;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_extended_result_codes(db, 0);
    const char *pragmas = writer ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                   "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
                                 : "PRAGMA temp_store = MEMORY;";
    rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ? TDM_ECORRUPT : TDM_EIO;
        tdm__error(err, code, "%s: not a usable tandem database: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return code;
    }
    if (writer && (rc = migrate(db, path, err)) != 0) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void tdm__db_close(sqlite3 *db)
{
    if (db == NULL)
        return;
    sqlite3_stmt *st;
    while ((st = sqlite3_next_stmt(db, NULL)) != NULL)
        sqlite3_finalize(st);
    sqlite3_close(db);
}

int tdm__db_kept(sqlite3 *db, const char *sql, sqlite3_stmt **out, tdm_error *err)
{
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st != NULL;
         st = sqlite3_next_stmt(db, st)) {
        if (!sqlite3_stmt_busy(st) && strcmp(sqlite3_sql(st), sql) == 0) {
            *out = st;
            return 0;
        }
    }
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return tdm__db_error(db, rc, err, "preparing a statement");
    }
    return 0;
}

sqlite3_stmt *tdm__stmt(tdm__stmt_cache *c, const char *sql, tdm_error *err)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->sql[i] == sql) {
            sqlite3_reset(c->st[i]);
            sqlite3_clear_bindings(c->st[i]);
            return c->st[i];
        }
    }
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        tdm__db_error(c->db, rc, err, "preparing a statement");
        return NULL;
    }
    if (c->n < TDM__STMT_CACHE_MAX) {
        c->sql[c->n] = sql;
        c->st[c->n] = st;
        c->n++;
    }
    /* A full cache still answers; the statement is then finalised with the connection. */
    return st;
}

void tdm__stmt_cache_release(tdm__stmt_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        sqlite3_finalize(c->st[i]);
    c->n = 0;
}

int tdm__db_pool_init(tdm__db_pool *pool, const char *path)
{
    memset(pool, 0, sizeof *pool);
    pool->path = strdup(path);
    if (pool->path == NULL)
        return TDM_ENOMEM;
    pthread_mutex_init(&pool->lock, NULL);
    return 0;
}

void tdm__db_pool_release(tdm__db_pool *pool)
{
    for (size_t i = 0; i < pool->n_free; i++)
        tdm__db_close(pool->free_list[i]);
    free(pool->free_list);
    free(pool->path);
    pthread_mutex_destroy(&pool->lock);
    memset(pool, 0, sizeof *pool);
}

int tdm__db_pool_get(tdm__db_pool *pool, sqlite3 **out, tdm_error *err)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->n_free > 0) {
        *out = pool->free_list[--pool->n_free];
        pthread_mutex_unlock(&pool->lock);
        return 0;
    }
    pthread_mutex_unlock(&pool->lock);
    return tdm__db_open(pool->path, 0, out, err);
}

void tdm__db_pool_put(tdm__db_pool *pool, sqlite3 *db)
{
    if (db == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    if (pool->n_free == pool->cap) {
        size_t cap = pool->cap ? pool->cap * 2 : 8;
        sqlite3 **list = realloc(pool->free_list, cap * sizeof *list);
        if (list == NULL) {
            pthread_mutex_unlock(&pool->lock);
            tdm__db_close(db);
            return;
        }
        pool->free_list = list;
        pool->cap = cap;
    }
    pool->free_list[pool->n_free++] = db;
    pthread_mutex_unlock(&pool->lock);
}

int64_t tdm__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tdm__format_time(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", date, (int)(ms % 1000));
}
