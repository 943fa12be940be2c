/*
 * tokens.c — API tokens: creating, listing and revoking them, finding the principal behind
 * one, and where a resource belongs, for the access checks of the HTTP layer.
 *
 * NOTES ON THE DESIGN OF TOKENS
 *
 * What is kept. A token is shown once, in the answer that creates it; the store keeps only
 * its BLAKE2b-256 hash (unkeyed: the tokens we make carry 256 bits of randomness, so there
 * is nothing for a key or a slow hash to protect against, and a caller-given token must be
 * at least 32 characters). Nothing on the audit trail or in a listing holds the token or its
 * hash.
 *
 * Looking a token up. tdm_engine_authenticate() hashes the token and finds the row by its
 * hash (a unique index), then compares the stored hash with sodium_memcmp. The lookup by
 * index leaks at most how the hash of a guess sorts among stored hashes, which says nothing
 * about any token; the constant-time comparison is there so that no code path ever compares
 * secrets byte by byte. An engine opened read-only can authenticate too.
 *
 * The cache, and seeing a revocation at once. Every request authenticates, and reading the
 * database for it cost about 20 µs under intake (the writer's commits make each read
 * transaction start cold). So the principals of tokens found are kept in a small cache,
 * keyed by the token's hash (found by the hash's first bytes, confirmed with sodium_memcmp;
 * unknown tokens are never cached). What makes a cached principal stale is a revocation
 * (tokens never change otherwise), and a revocation may be written by another process on the
 * same database file (`tandem token revoke --db`). Each process that opens the database maps
 * the file PATH-tokens, which holds one 64-bit counter, shared memory between them all. A
 * revocation bumps it after its commit, before tdm_engine_token_revoke() returns; a cached
 * principal counts only while the counter is what it was when the principal was read from
 * the database (read before the database, so a bump during the read is not missed). So a
 * revocation counts at the next request in every process, as it did when every request read
 * the database. The cost of a hit is an atomic load and a copy. Entries also expire after
 * TOKEN_CACHE_TTL_MS, which bounds what a process that died between its commit and its bump,
 * or a PATH-tokens deleted under a running server, could leave stale. Where PATH-tokens
 * cannot be made or mapped (a read-only directory), nothing is cached and every request reads
 * the database, as before; an in-memory database, which no other process can open, counts
 * its revocations in the process.
 *
 * States. A token is in force until revoked; revoking is final. A name is unique among the
 * tokens in force (a partial unique index), so a name can be given again once its token is
 * revoked. Checking a name and inserting happen in one writer job, so two creations with one
 * name cannot both win; the index is the backstop.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/engine_int.h"

#define TOKEN_PREFIX     "tdm_"
#define TOKEN_RANDOM     32                       /* bytes of randomness in a token we make */
#define TOKEN_SECRET_MIN 32                       /* characters in a token the caller chooses */
#define TOKEN_SECRET_MAX 256                      /* and in any token presented */
#define TOKEN_HASH       crypto_generichash_BYTES /* 32 */

#define TOKEN_COLUMNS "id, name, role, scope, created_at, created_by, revoked_at"

#define TOKEN_CACHE_SLOTS  64    /* principals kept, one per slot (by the hash's first bytes) */
#define TOKEN_CACHE_TTL_MS 10000 /* a cached principal is read again after this long */

/* ------------------------------------------------------------------------------------------ */
/* Roles and scopes                                                                           */
/* ------------------------------------------------------------------------------------------ */

static const struct {
    tdm_role role;
    const char *name;
} roles[] = {
    {TDM_ROLE_ADMIN, "admin"},   {TDM_ROLE_OWNER, "owner"},     {TDM_ROLE_REVIEWER, "reviewer"},
    {TDM_ROLE_VIEWER, "viewer"}, {TDM_ROLE_SERVICE, "service"},
};

#define N_ROLES (sizeof roles / sizeof roles[0])

const char *tdm_role_name(tdm_role role)
{
    for (size_t i = 0; i < N_ROLES; i++)
        if (roles[i].role == role)
            return roles[i].name;
    return NULL;
}

int tdm_role_parse(const char *name, tdm_role *out)
{
    if (name == NULL || out == NULL)
        return TDM_EINVAL;
    for (size_t i = 0; i < N_ROLES; i++) {
        if (strcmp(roles[i].name, name) == 0) {
            *out = roles[i].role;
            return 0;
        }
    }
    return TDM_EINVAL;
}

int tdm_principal_in_scope(const tdm_principal *p, const char *name)
{
    if (p == NULL || name == NULL)
        return 0;
    for (size_t i = 0; i < p->n_scope && i < TDM_SCOPE_MAX; i++)
        if (strcmp(p->scope[i], "*") == 0 || strcmp(p->scope[i], name) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Checking what a creation asks for                                                          */
/* ------------------------------------------------------------------------------------------ */

static int check_name(const char *name, tdm_error *err)
{
    size_t n = strlen(name);
    int ok = n >= 1 && n <= TDM_TOKEN_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '@' || c == '-';
    }
    if (ok)
        return 0;
    if (n == 0)
        return tdm__error_field(err, TDM_EINVAL, "name",
                                "a token needs a name (1 to %d letters, digits, '.', '_', '@' "
                                "or '-', like ci-deploy)",
                                TDM_TOKEN_NAME_MAX);
    return tdm__error_field(err, TDM_EINVAL, "name",
                            "token name \"%.*s%s\" is not valid (use 1 to %d letters, digits, "
                            "'.', '_', '@' or '-', like ci-deploy)",
                            n > 64 ? 64 : (int)n, name, n > 64 ? "..." : "", TDM_TOKEN_NAME_MAX);
}

/* A token chosen by the caller: 32 to 256 printable ASCII characters, no blanks. The message
 * never repeats it. */
static int check_secret(const char *secret, tdm_error *err)
{
    size_t n = strnlen(secret, TOKEN_SECRET_MAX + 1);
    if (n < TOKEN_SECRET_MIN || n > TOKEN_SECRET_MAX)
        return tdm__error_field(err, TDM_EINVAL, "token",
                                "the given token has %s%zu characters; it needs %d to %d "
                                "printable ASCII characters without blanks (or give none, and "
                                "tandem makes one up)",
                                n > TOKEN_SECRET_MAX ? "over " : "",
                                n > TOKEN_SECRET_MAX ? (size_t)TOKEN_SECRET_MAX : n,
                                TOKEN_SECRET_MIN, TOKEN_SECRET_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)secret[i];
        if (c < 0x21 || c > 0x7e)
            return tdm__error_field(err, TDM_EINVAL, "token",
                                    "the given token has a %s at offset %zu; it needs %d to %d "
                                    "printable ASCII characters without blanks",
                                    c == ' ' || c == '\t' ? "blank" : "non-printable byte", i,
                                    TOKEN_SECRET_MIN, TOKEN_SECRET_MAX);
    }
    return 0;
}

static int check_scope(tdm_role role, const char *const *scope, size_t n, tdm_error *err)
{
    const char *rname = tdm_role_name(role);
    if ((role == TDM_ROLE_OWNER || role == TDM_ROLE_REVIEWER) && n == 0)
        return tdm__error_field(err, TDM_EINVAL, "scope",
                                "a%s %s token needs a scope: the %s it may work on (\"*\" for "
                                "all)",
                                role == TDM_ROLE_OWNER ? "n" : "", rname,
                                role == TDM_ROLE_OWNER ? "processes" : "queues");
    if ((role == TDM_ROLE_ADMIN || role == TDM_ROLE_VIEWER) && n > 0)
        return tdm__error_field(err, TDM_EINVAL, "scope",
                                "a%s %s token takes no scope (it %s everything); leave the "
                                "scope out",
                                role == TDM_ROLE_ADMIN ? "n" : "", rname,
                                role == TDM_ROLE_ADMIN ? "may do" : "may read");
    if (n > TDM_SCOPE_MAX)
        return tdm__error_field(err, TDM_EINVAL, "scope",
                                "a scope holds at most %d names (this one has %zu); use \"*\" "
                                "for all",
                                TDM_SCOPE_MAX, n);
    for (size_t i = 0; i < n; i++) {
        const char *s = scope[i];
        size_t len = s ? strnlen(s, TDM_SCOPE_NAME_MAX + 1) : 0;
        if (len == 0 || len > TDM_SCOPE_NAME_MAX)
            return tdm__error_field(err, TDM_EINVAL, "scope",
                                    "scope entry %zu is %s (each is a name of 1 to %d "
                                    "characters)",
                                    i + 1, len == 0 ? "empty" : "too long", TDM_SCOPE_NAME_MAX);
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)s[k];
            if (c < 0x20 || c > 0x7e)
                return tdm__error_field(err, TDM_EINVAL, "scope",
                                        "scope entry %zu has a non-printable byte 0x%02x at "
                                        "offset %zu (names are printable ASCII)",
                                        i + 1, c, k);
        }
    }
    return 0;
}

static void token_hash(const char *token, size_t len, unsigned char out[TOKEN_HASH])
{
    crypto_generichash(out, TOKEN_HASH, (const unsigned char *)token, len, NULL, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Rows as JSON                                                                               */
/* ------------------------------------------------------------------------------------------ */

static const char *text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* A token row (selected with TOKEN_COLUMNS) as the list shows it. */
static json_t *token_json(sqlite3_stmt *st)
{
    json_t *scope = text(st, 3) ? json_loads(text(st, 3), 0, NULL) : NULL;
    if (!json_is_array(scope)) {
        json_decref(scope);
        scope = json_array();
    }
    json_t *revoked = sqlite3_column_type(st, 6) == SQLITE_NULL
                          ? json_null()
                          : tdm__json_time(sqlite3_column_int64(st, 6));
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:o}", "id", text(st, 0), "name", text(st, 1),
                     "role", text(st, 2), "scope", scope, "created_at",
                     tdm__json_time(sqlite3_column_int64(st, 4)), "created_by", text(st, 5),
                     "revoked_at", revoked);
}

/*
 * Prepares a statement on the tokens table of a read connection. A database of schema
 * version 1 opened read-only is not migrated and has no such table; to the caller that is a
 * store without tokens: *st is then NULL and the answer 0.
 */
static int prepare_tokens(sqlite3 *db, const char *sql, sqlite3_stmt **st, tdm_error *err)
{
    *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
        return 0;
    int rc = sqlite3_errcode(db);
    sqlite3_stmt *probe;
    int absent = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
                           "'tokens'",
                           -1, &probe, NULL) == SQLITE_OK) {
        absent = sqlite3_step(probe) == SQLITE_ROW && sqlite3_column_int(probe, 0) == 0;
        sqlite3_finalize(probe);
    }
    *st = NULL;
    if (absent)
        return 0;
    return tdm__db_error(db, rc, err, "preparing a statement on tokens");
}

/* ------------------------------------------------------------------------------------------ */
/* Creating                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct create_ctx {
    const char *id;
    const char *name;
    const char *role;
    json_t *scope; /* borrowed */
    const char *scope_text;
    const unsigned char *hash;
    const char *actor;
    int64_t created_at; /* filled by the job */
} create_ctx;

static int create_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    create_ctx *c = job->ctx;
    sqlite3_stmt *st =
        tdm__stmt(tx->stmts, "SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL", err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        int rc = tdm__error_field(err, TDM_ECONFLICT, "name",
                                  "a token named %s is in force (%s); revoke it first or pick "
                                  "another name",
                                  c->name, text(st, 0));
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    st = tdm__stmt(tx->stmts,
                   "INSERT INTO tokens (id, name, role, scope, hash, created_at, created_by) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->scope_text, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, c->hash, TOKEN_HASH, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, tx->now);
    sqlite3_bind_text(st, 7, c->actor, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    /* The name was free (checked above), so a broken constraint is the hash: a caller-given
     * token that is, or was before its revocation, another token. */
    if (step == SQLITE_CONSTRAINT)
        return tdm__error_field(err, TDM_ECONFLICT, "token",
                                "the given token is, or was, another token's; choose a new one");
    if (step != SQLITE_DONE)
        return tdm__db_error(tx->db, step, err, "storing a token");
    c->created_at = tx->now;
    return tdm__tx_audit(
        tx, c->actor, "token.created", c->id,
        json_pack("{s:s, s:s, s:O}", "name", c->name, "role", c->role, "scope", c->scope), err);
}

int tdm_engine_token_create(tdm_engine *e, const char *name, tdm_role role,
                            const char *const *scope, size_t n_scope, const char *secret,
                            const char *actor, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || name == NULL || json == NULL || (scope == NULL && n_scope > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_engine_token_create: missing argument");
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    const char *role_name = tdm_role_name(role);
    if (role_name == NULL)
        return tdm__error_field(err, TDM_EINVAL, "role",
                                "unknown role %d (expected admin, owner, reviewer, viewer or "
                                "service)",
                                (int)role);
    int rc = check_name(name, err);
    if (rc == 0)
        rc = check_scope(role, scope, n_scope, err);
    if (rc == 0 && secret != NULL)
        rc = check_secret(secret, err);
    if (rc != 0)
        return rc;

    /* The token: "tdm_" and 43 base64url characters, or the caller's. */
    char made[sizeof TOKEN_PREFIX - 1 +
              sodium_base64_ENCODED_LEN(TOKEN_RANDOM, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    if (secret == NULL) {
        unsigned char raw[TOKEN_RANDOM];
        randombytes_buf(raw, sizeof raw);
        memcpy(made, TOKEN_PREFIX, sizeof TOKEN_PREFIX - 1);
        sodium_bin2base64(made + sizeof TOKEN_PREFIX - 1, sizeof made - (sizeof TOKEN_PREFIX - 1),
                          raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof raw);
        secret = made;
    }
    unsigned char hash[TOKEN_HASH];
    token_hash(secret, strlen(secret), hash);

    json_t *scope_json = json_array();
    for (size_t i = 0; scope_json != NULL && i < n_scope; i++)
        if (json_array_append_new(scope_json, json_string(scope[i])) != 0) {
            json_decref(scope_json);
            scope_json = NULL;
        }
    char *scope_text = scope_json ? json_dumps(scope_json, JSON_COMPACT) : NULL;
    char id[32];
    tdm__new_id("tok", id);
    create_ctx c = {id, name, role_name, scope_json, scope_text, hash, actor ? actor : "api", 0};
    if (scope_text == NULL) {
        rc = tdm__error_code(err, TDM_ENOMEM);
    } else {
        tdm__job job = {0};
        job.run = create_run;
        job.ctx = &c;
        rc = tdm__writer_run(e->writer, &job, err);
    }
    free(scope_text);
    json_t *answer = NULL;
    if (rc == 0)
        answer = json_pack("{s:s, s:s, s:s, s:s, s:O, s:o}", "id", id, "token", secret, "name",
                           name, "role", role_name, "scope", scope_json, "created_at",
                           tdm__json_time(c.created_at));
    json_decref(scope_json);
    sodium_memzero(made, sizeof made);
    if (rc != 0)
        return rc;
    return tdm__answer(answer, json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Listing and counting                                                                       */
/* ------------------------------------------------------------------------------------------ */

int tdm_engine_token_list(tdm_engine *e, char **json, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_token_list: missing argument");
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    json_t *list = json_array();
    sqlite3_stmt *st;
    rc = prepare_tokens(db, "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY created_at, rowid", &st,
                        err);
    if (st != NULL) {
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(list, token_json(st));
        if (step != SQLITE_DONE)
            rc = tdm__db_error(db, step, err, "listing tokens");
        sqlite3_finalize(st);
    }
    tdm__reader_put(e, db);
    if (rc != 0) {
        json_decref(list);
        return rc;
    }
    return tdm__answer(json_pack("{s:o}", "tokens", list), json, NULL, err);
}

int tdm_engine_token_count(tdm_engine *e, int64_t *count, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || count == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_token_count: missing argument");
    *count = 0;
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    rc = prepare_tokens(db, "SELECT count(*) FROM tokens WHERE revoked_at IS NULL", &st, err);
    if (st != NULL) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            *count = sqlite3_column_int64(st, 0);
        else
            rc = tdm__db_error(db, step, err, "counting tokens");
        sqlite3_finalize(st);
    }
    tdm__reader_put(e, db);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The cache of principals                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct cache_slot {
    int used;
    unsigned char hash[TOKEN_HASH];
    uint64_t generation; /* the revocation counter when the principal was read */
    int64_t read_ms;     /* monotonic time it was read */
    tdm_principal who;
} cache_slot;

typedef struct tdm__token_cache {
    pthread_mutex_t lock;
    _Atomic uint64_t *counter; /* the mapped PATH-tokens, or &local */
    _Atomic uint64_t local;    /* the counter of an in-memory database */
    int fd;                    /* PATH-tokens, or -1 */
    int writable;              /* this process may bump the counter */
    cache_slot slots[TOKEN_CACHE_SLOTS];
} tdm__token_cache;

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "the revocation counter is shared memory between processes: its atomic "
               "operations must be lock-free");

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens and maps PATH-tokens (made with the database file's permissions if missing, or
 * with the umask's when the database is new too, then sized to hold the counter).
 * Read-only where it cannot be written: such a process cannot revoke either. Returns 0,
 * or -1 when there is no usable file. */
static int counter_map(tdm__token_cache *c, const char *db_path)
{
    size_t n = strlen(db_path);
    char *path = malloc(n + sizeof "-tokens");
    if (path == NULL)
        return -1;
    memcpy(path, db_path, n);
    memcpy(path + n, "-tokens", sizeof "-tokens");
    c->writable = 1;
    /* Made with the database's permissions: whoever may write the database may revoke, and
     * so must be able to bump the counter. */
    struct stat db;
    int db_exists = stat(db_path, &db) == 0;
    mode_t mode = db_exists ? (db.st_mode & 0666) : 0666;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0 && db_exists)
        (void)fchmod(fd, mode); /* as the database's, whatever the umask */
    else if (fd < 0 && errno == EEXIST)
        fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        c->writable = 0;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    free(path);
    if (fd < 0)
        return -1;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (ok && (size_t)st.st_size < sizeof(uint64_t))
        ok = c->writable && ftruncate(fd, sizeof(uint64_t)) == 0;
    void *map = MAP_FAILED;
    if (ok)
        map = mmap(NULL, sizeof(uint64_t), PROT_READ | (c->writable ? PROT_WRITE : 0), MAP_SHARED,
                   fd, 0);
    if (map == MAP_FAILED) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->counter = map;
    return 0;
}

int tdm__token_cache_open(tdm_engine *e)
{
    tdm__token_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TDM_ENOMEM;
    c->fd = -1;
    if (strcmp(e->db_path, ":memory:") == 0) {
        c->counter = &c->local;
        c->writable = 1;
    } else if (counter_map(c, e->db_path) != 0) {
        free(c); /* no cache: every request reads the database */
        return 0;
    }
    pthread_mutex_init(&c->lock, NULL);
    e->tokens = c;
    return 0;
}

void tdm__token_cache_close(tdm_engine *e)
{
    tdm__token_cache *c = e->tokens;
    if (c == NULL)
        return;
    if (c->fd >= 0) {
        munmap((void *)c->counter, sizeof(uint64_t));
        close(c->fd);
    }
    pthread_mutex_destroy(&c->lock);
    sodium_memzero(c->slots, sizeof c->slots);
    free(c);
    e->tokens = NULL;
}

static cache_slot *cache_slot_of(tdm__token_cache *c, const unsigned char hash[TOKEN_HASH])
{
    return &c->slots[((unsigned)hash[0] | (unsigned)hash[1] << 8) % TOKEN_CACHE_SLOTS];
}

/* 1 and *out filled when the token's principal is cached and still good, else 0. */
static int cache_get(tdm__token_cache *c, const unsigned char hash[TOKEN_HASH], tdm_principal *out)
{
    uint64_t now_gen = atomic_load(c->counter);
    int64_t now = monotonic_ms();
    pthread_mutex_lock(&c->lock);
    cache_slot *s = cache_slot_of(c, hash);
    int hit = s->used && s->generation == now_gen && now - s->read_ms < TOKEN_CACHE_TTL_MS &&
              sodium_memcmp(s->hash, hash, TOKEN_HASH) == 0;
    if (hit)
        *out = s->who;
    pthread_mutex_unlock(&c->lock);
    return hit;
}

static void cache_put(tdm__token_cache *c, const unsigned char hash[TOKEN_HASH],
                      uint64_t generation, int64_t read_ms, const tdm_principal *who)
{
    pthread_mutex_lock(&c->lock);
    cache_slot *s = cache_slot_of(c, hash);
    s->used = 1;
    memcpy(s->hash, hash, TOKEN_HASH);
    s->generation = generation;
    s->read_ms = read_ms;
    s->who = *who;
    pthread_mutex_unlock(&c->lock);
}

/* After a revocation's commit: every process's cached principals are stale. */
static void cache_bump(tdm__token_cache *c)
{
    if (c != NULL && c->writable)
        atomic_fetch_add(c->counter, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Revoking                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct revoke_ctx {
    const char *id;
    const char *actor;
    json_t *token; /* the token as the list shows it, filled by the job */
} revoke_ctx;

static int revoke_run(tdm__tx *tx, tdm__job *job, tdm_error *err)
{
    revoke_ctx *c = job->ctx;
    sqlite3_stmt *st =
        tdm__stmt(tx->stmts, "SELECT name, revoked_at, revoked_by FROM tokens WHERE id = ?", err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return tdm__error_field(err, TDM_ENOTFOUND, "token", "no token \"%s\"", c->id);
    }
    char name[TDM_TOKEN_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", text(st, 0));
    if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
        char at[32];
        tdm__format_time(sqlite3_column_int64(st, 1), at, sizeof at);
        int rc = tdm__error_field(err, TDM_ECONFLICT, "token",
                                  "token %s (%s) was already revoked at %s by %s", c->id, name, at,
                                  text(st, 2) ? text(st, 2) : "?");
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    st = tdm__stmt(tx->stmts,
                   "UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at "
                   "IS NULL",
                   err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_int64(st, 1, tx->now);
    sqlite3_bind_text(st, 2, c->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return tdm__db_error(tx->db, sqlite3_errcode(tx->db), err, "revoking a token");
    int rc =
        tdm__tx_audit(tx, c->actor, "token.revoked", c->id, json_pack("{s:s}", "name", name), err);
    if (rc != 0)
        return rc;
    st = tdm__stmt(tx->stmts, "SELECT " TOKEN_COLUMNS " FROM tokens WHERE id = ?", err);
    if (st == NULL)
        return err->code;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        c->token = token_json(st);
    sqlite3_reset(st);
    return c->token != NULL ? 0 : tdm__error_code(err, TDM_ENOMEM);
}

int tdm_engine_token_revoke(tdm_engine *e, const char *id, const char *actor, char **json,
                            tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || id == NULL || json == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_token_revoke: missing argument");
    if (e->read_only)
        return tdm__error(err, TDM_EINVAL, "the engine is open read-only");
    revoke_ctx c = {id, actor ? actor : "api", NULL};
    tdm__job job = {0};
    job.run = revoke_run;
    job.ctx = &c;
    int rc = tdm__writer_run(e->writer, &job, err);
    if (rc != 0) {
        json_decref(c.token);
        return rc;
    }
    cache_bump(e->tokens); /* committed: no process may trust its cached copy now */
    return tdm__answer(c.token, json, NULL, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Authenticating                                                                             */
/* ------------------------------------------------------------------------------------------ */

/* Fills `out` from a row of (id, name, role, scope). A row that does not fit is corrupt:
 * creation never stores one. */
static int principal_fill(sqlite3_stmt *st, tdm_principal *out, tdm_error *err)
{
    memset(out, 0, sizeof *out);
    const char *id = text(st, 0), *name = text(st, 1), *role = text(st, 2);
    json_t *scope = text(st, 3) ? json_loads(text(st, 3), 0, NULL) : NULL;
    int ok = id != NULL && name != NULL && role != NULL && strlen(id) < sizeof out->id &&
             strlen(name) < sizeof out->name && tdm_role_parse(role, &out->role) == 0 &&
             json_is_array(scope) && json_array_size(scope) <= TDM_SCOPE_MAX;
    for (size_t i = 0; ok && i < json_array_size(scope); i++) {
        const char *s = json_string_value(json_array_get(scope, i));
        ok = s != NULL && strlen(s) <= TDM_SCOPE_NAME_MAX;
        if (ok)
            memcpy(out->scope[i], s, strlen(s) + 1);
    }
    if (ok) {
        memcpy(out->id, id, strlen(id) + 1);
        memcpy(out->name, name, strlen(name) + 1);
        out->n_scope = json_array_size(scope);
    }
    json_decref(scope);
    if (ok)
        return 0;
    memset(out, 0, sizeof *out);
    return tdm__error(err, TDM_ECORRUPT, "database: token %s has a malformed row (role or scope)",
                      id ? id : "?");
}

int tdm_engine_authenticate(tdm_engine *e, const char *token, tdm_principal *out, tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || out == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_authenticate: missing argument");
    memset(out, 0, sizeof *out);
    if (token == NULL || token[0] == '\0')
        return tdm__error(err, TDM_EAUTH, "no token given");
    size_t len = strnlen(token, TOKEN_SECRET_MAX + 1);
    if (len > TOKEN_SECRET_MAX)
        return tdm__error(err, TDM_EAUTH, "malformed token (longer than %d bytes)",
                          TOKEN_SECRET_MAX);
    unsigned char hash[TOKEN_HASH];
    token_hash(token, len, hash);
    tdm__token_cache *cache = e->tokens;
    if (cache != NULL && cache_get(cache, hash, out))
        return 0;
    /* Read before the database: a revocation bumping the counter during the read leaves the
     * entry stale at once. */
    uint64_t generation = cache != NULL ? atomic_load(cache->counter) : 0;
    int64_t read_ms = monotonic_ms();
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    int found = 0;
    static const char sql[] =
        "SELECT id, name, role, scope, hash FROM tokens WHERE hash = ? AND revoked_at IS NULL";
    /* Every request runs this: the statement stays with the connection (preparing it cost
     * more than the lookup). Where the table is missing, prepare_tokens says so. */
    sqlite3_stmt *st;
    int kept = tdm__db_kept(db, sql, &st, err) == 0;
    if (!kept) {
        tdm__error_clear(err);
        rc = prepare_tokens(db, sql, &st, err);
    }
    if (st != NULL) {
        sqlite3_bind_blob(st, 1, hash, sizeof hash, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            const void *stored = sqlite3_column_blob(st, 4);
            found = stored != NULL && sqlite3_column_bytes(st, 4) == TOKEN_HASH &&
                    sodium_memcmp(stored, hash, TOKEN_HASH) == 0;
            if (found)
                rc = principal_fill(st, out, err);
        } else if (step != SQLITE_DONE) {
            rc = tdm__db_error(db, step, err, "looking up a token");
        }
        if (kept) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
        } else {
            sqlite3_finalize(st);
        }
    }
    tdm__reader_put(e, db);
    if (rc != 0)
        return rc;
    if (!found)
        return tdm__error(err, TDM_EAUTH, "unknown or revoked token");
    if (cache != NULL)
        cache_put(cache, hash, generation, read_ms, out);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Where a thing belongs                                                                      */
/* ------------------------------------------------------------------------------------------ */

int tdm_engine_resource_scope(tdm_engine *e, tdm_resource kind, const char *id,
                              char process[TDM_SCOPE_NAME_MAX + 1],
                              char queue[TDM_SCOPE_NAME_MAX + 1], tdm_error *err)
{
    tdm__error_clear(err);
    if (e == NULL || id == NULL || process == NULL || queue == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_engine_resource_scope: missing argument");
    process[0] = '\0';
    queue[0] = '\0';
    const char *what, *sql;
    switch (kind) {
    case TDM_RESOURCE_ITEM:
        what = "item";
        sql = "SELECT process FROM items WHERE id = ?";
        break;
    case TDM_RESOURCE_TASK:
        what = "task";
        sql = "SELECT process, queue FROM tasks WHERE id = ?";
        break;
    case TDM_RESOURCE_DECISION:
        what = "decision";
        sql = "SELECT process, step FROM decisions WHERE id = ?";
        break;
    default:
        return tdm__error_field(err, TDM_EINVAL, "kind", "unknown resource kind %d", (int)kind);
    }
    sqlite3 *db;
    int rc = tdm__reader_get(e, &db, err);
    if (rc != 0)
        return rc;
    char second[TDM_SCOPE_NAME_MAX + 1] = "";
    sqlite3_stmt *st;
    rc = tdm__db_prepare(db, sql, &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            snprintf(process, TDM_SCOPE_NAME_MAX + 1, "%s", text(st, 0) ? text(st, 0) : "");
            if (kind != TDM_RESOURCE_ITEM)
                snprintf(second, sizeof second, "%s", text(st, 1) ? text(st, 1) : "");
        } else if (step == SQLITE_DONE) {
            rc = tdm__error_field(err, TDM_ENOTFOUND, what, "no %s \"%s\"", what, id);
        } else {
            rc = tdm__db_error(db, step, err, "looking up where a resource belongs");
        }
        sqlite3_finalize(st);
    }
    tdm__reader_put(e, db);
    if (rc != 0)
        return rc;
    if (kind == TDM_RESOURCE_TASK) {
        memcpy(queue, second, sizeof second);
    } else if (kind == TDM_RESOURCE_DECISION) {
        /* The step's queue in the process as it is now; none if the step is gone. */
        proc_state *ps = NULL;
        tdm_error ignore;
        size_t step;
        if (tdm__proc_get(e, process, &ps, &ignore) == 0 &&
            tdm_process_step_index(ps->p, second, &step) == 0) {
            const char *q = tdm_process_step(ps->p, step)->queue;
            snprintf(queue, TDM_SCOPE_NAME_MAX + 1, "%s", q ? q : "");
        }
        tdm__proc_put(e, ps);
    }
    return 0;
}
