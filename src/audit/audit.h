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

/* The same with `data` already compact JSON text (NULL means {}), stored and hashed as is. */
int tdm__audit_append_text(tdm__stmt_cache *c, tdm__audit_tail *tail, int64_t at, const char *actor,
                           const char *event, const char *subject, const char *data,
                           tdm_error *err);

/*
 * An entry's data written straight as compact JSON text, for the events of intake (an item
 * received, a decision made, a task created: two per item), where building a json_t only to
 * dump it took a quarter of the writer's instructions. The text is byte for byte what
 * tdm__audit_append() stores for the same object built with jansson, members in the order
 * added (tests/unit/test_audit.c compares the two). Strings must be valid UTF-8, as every
 * string that reaches the engine is. Out of memory makes later calls do nothing and
 * tdm__audit_data_text() return NULL.
 */
typedef struct tdm__audit_data {
    char *p; /* `small` until the text outgrows it */
    size_t len, cap;
    int failed;
    char small[256];
} tdm__audit_data;

void tdm__audit_data_init(tdm__audit_data *d);
void tdm__audit_data_str(tdm__audit_data *d, const char *key, const char *value);
void tdm__audit_data_int(tdm__audit_data *d, const char *key, int64_t value);
void tdm__audit_data_bool(tdm__audit_data *d, const char *key, int value);
void tdm__audit_data_real(tdm__audit_data *d, const char *key, double value);
/* `json` is a value already written as compact JSON text; it is copied as is. */
void tdm__audit_data_raw(tdm__audit_data *d, const char *key, const char *json);
/* Closes the object and returns its text (valid until release), or NULL if out of memory. */
const char *tdm__audit_data_text(tdm__audit_data *d);
void tdm__audit_data_release(tdm__audit_data *d);

/* Recomputes the whole chain (see tdm_engine_audit_verify()). */
int tdm__audit_verify(sqlite3 *db, tdm_audit_check *out, tdm_error *err);

/* {"entries": [...], "next": SEQ, "end": bool} for entries after `after` that match `filter`
 * (may be NULL): see tdm_engine_audit_filtered(). */
int tdm__audit_list(sqlite3 *db, uint64_t after, size_t limit, const tdm_audit_filter *filter,
                    json_t **out, tdm_error *err);

#endif /* TDM_AUDIT_AUDIT_H */
