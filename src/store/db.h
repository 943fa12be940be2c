/*
 * db.h — the SQLite store: opening, the schema and its migrations, and small helpers for
 * prepared statements.
 *
 * Private to libtandem. One connection writes (the engine's writer thread owns it); reads
 * use their own connections from a small pool, which WAL mode lets run beside the writer.
 *
 * Why no table of function pointers yet: the brief foresees a PostgreSQL backend, and the
 * conventions make pluggable parts tables of function pointers. With one backend the table
 * would only add indirection; the SQL is kept in src/store/ and src/core/ calls it through
 * the functions declared here, which is where the ops table will go when a second backend
 * arrives (noted in docs/architecture.md).
 */
#ifndef TDM_STORE_DB_H
#define TDM_STORE_DB_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "tandem/tandem.h"

/* The schema version this build writes; older databases are migrated on open. */
#define TDM__SCHEMA_VERSION 11

/*
 * Opens (creating if asked) the database at `path`, applies the connection settings (WAL,
 * synchronous FULL, foreign keys, a busy timeout) and, for a writer, brings the schema up to
 * date. Returns 0 or TDM_EIO / TDM_EVERSION / TDM_ECORRUPT with a message.
 */
int tdm__db_open(const char *path, int writer, sqlite3 **out, tdm_error *err);

/* Closes a connection (finalising any statements left). */
void tdm__db_close(sqlite3 *db);

/* Runs SQL without results; on failure fills err with the SQLite message and returns TDM_EIO
 * (or TDM_EBUSY when the database stayed locked). */
int tdm__db_exec(sqlite3 *db, const char *sql, tdm_error *err);

/* Prepares a statement; on failure fills err and returns TDM_EIO. */
int tdm__db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, tdm_error *err);
/*
 * Like tdm__db_prepare, but the statement stays with the connection (a pooled reader) for
 * the next call with the same SQL: reset it and clear its bindings when done, never
 * finalize it (tdm__db_close does). For the statements every request runs.
 */
int tdm__db_kept(sqlite3 *db, const char *sql, sqlite3_stmt **out, tdm_error *err);

/* Maps a SQLite result code to a TDM_E* code and records the message. */
int tdm__db_error(sqlite3 *db, int rc, tdm_error *err, const char *doing);

/*
 * Prepared statements kept for the life of a connection, looked up by the address of their
 * SQL text (always a string literal), so a hot path prepares each statement once.
 */
#define TDM__STMT_CACHE_MAX 128

typedef struct tdm__stmt_cache {
    sqlite3 *db;
    size_t n;
    const char *sql[TDM__STMT_CACHE_MAX];
    sqlite3_stmt *st[TDM__STMT_CACHE_MAX];
} tdm__stmt_cache;

/* Returns the statement for `sql`, reset and with its bindings cleared, or NULL (err set). */
sqlite3_stmt *tdm__stmt(tdm__stmt_cache *c, const char *sql, tdm_error *err);

/* Finalises every cached statement. */
void tdm__stmt_cache_release(tdm__stmt_cache *c);

/* A pool of read connections, created on demand and reused. */
typedef struct tdm__db_pool {
    char *path;
    pthread_mutex_t lock;
    sqlite3 **free_list;
    size_t n_free, cap;
} tdm__db_pool;

int tdm__db_pool_init(tdm__db_pool *pool, const char *path);
void tdm__db_pool_release(tdm__db_pool *pool);
/* Takes a read connection (opening one if none is free); give it back with _put. */
int tdm__db_pool_get(tdm__db_pool *pool, sqlite3 **out, tdm_error *err);
void tdm__db_pool_put(tdm__db_pool *pool, sqlite3 *db);

/* Milliseconds since the Unix epoch, from the real-time clock. */
int64_t tdm__now_ms(void);

/* Formats epoch milliseconds as "2026-11-21T09:30:00.123Z" into buf (at least 25 bytes). */
void tdm__format_time(int64_t ms, char *buf, size_t cap);

#endif /* TDM_STORE_DB_H */
