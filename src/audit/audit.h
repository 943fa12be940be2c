/*
 * audit.h — the append-only, hash-chained audit trail.
 *
 * Private to libtandem. Every event the engine records goes through tdm__audit_append()
 * inside the writer's transaction; tdm__audit_verify() recomputes the chain from the start.
 */
#ifndef TDM_AUDIT_AUDIT_H
#define TDM_AUDIT_AUDIT_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "store/db.h"
#include "tandem/engine.h"

#define TDM__HASH_HEX 65 /* 64 hex digits and a NUL */

/* The end of the chain: the last entry's sequence number and hash (all zeros when empty). */
typedef struct tdm__audit_tail {
    uint64_t seq;
    char hash[TDM__HASH_HEX];
} tdm__audit_tail;

/* Reads the chain's end from the database. */
int tdm__audit_load_tail(sqlite3 *db, tdm__audit_tail *tail, tdm_error *err);

/*
 * Computes an entry's hash: BLAKE2b-256 over the previous hash and every field, each
 * length-prefixed so that no two different entries hash the same bytes. `out` gets hex.
 */
void tdm__audit_hash(const char *prev_hash, uint64_t seq, int64_t at, const char *actor,
                     const char *event, const char *subject, const char *data,
                     char out[TDM__HASH_HEX]);

/*
 * Appends one entry after `tail` (and advances it) using the writer's statement cache. `data`
 * is a JSON object (stolen: the reference is released here); NULL means {}. Returns 0 or a
 * database error. On failure `tail` is unchanged.
 */
int tdm__audit_append(tdm__stmt_cache *c, tdm__audit_tail *tail, int64_t at, const char *actor,
                      const char *event, const char *subject, json_t *data, tdm_error *err);

/* Recomputes the whole chain (see tdm_engine_audit_verify()). */
int tdm__audit_verify(sqlite3 *db, tdm_audit_check *out, tdm_error *err);

/* {"entries": [...], "next": SEQ, "end": bool} for entries after `after` that match `filter`
 * (may be NULL): see tdm_engine_audit_filtered(). */
int tdm__audit_list(sqlite3 *db, uint64_t after, size_t limit, const tdm_audit_filter *filter,
                    json_t **out, tdm_error *err);

#endif /* TDM_AUDIT_AUDIT_H */
