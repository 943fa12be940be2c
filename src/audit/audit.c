/*
 * audit.c — the hash-chained audit trail.
 *
 * NOTES ON THE DESIGN OF THE AUDIT TRAIL
 *
 * Each entry is (seq, at, actor, event, subject, data, prev_hash, hash). seq counts from 1
 * with no gaps; prev_hash is the previous entry's hash (64 zeros for the first); hash is
 * BLAKE2b-256 (libsodium's crypto_generichash) over prev_hash and every other field, each
 * written as its length, a colon and its bytes. Changing any field of any entry, removing
 * an entry or reordering entries changes a hash that a later entry has recorded, so
 * tdm__audit_verify() walks the chain from the first entry and names the first one whose
 * stored hash, predecessor link or sequence number does not match what it recomputes.
 *
 * The chain's tail lives in memory in the engine's writer (the only thread that appends), so
 * appending costs one hash and one INSERT. `data` is stored exactly as it was hashed
 * (compact JSON), so verification never depends on re-serialising it.
 */
#include "audit/audit.h"

#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* Writes `v` in decimal into buf (at least 21 bytes) and returns the length. */
static size_t decimal(uint64_t v, char *buf)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static void hash_field(crypto_generichash_state *st, const char *bytes, size_t len)
{
    char prefix[24];
    size_t n = decimal(len, prefix);
    prefix[n++] = ':';
    crypto_generichash_update(st, (const unsigned char *)prefix, (unsigned long long)n);
    crypto_generichash_update(st, (const unsigned char *)bytes, len);
}

void tdm__audit_hash(const char *prev_hash, uint64_t seq, int64_t at, const char *actor,
                     const char *event, const char *subject, const char *data,
                     char out[TDM__HASH_HEX])
{
    crypto_generichash_state st;
    unsigned char digest[32];
    char num[24];
    crypto_generichash_init(&st, NULL, 0, sizeof digest);
    hash_field(&st, prev_hash, strlen(prev_hash));
    hash_field(&st, num, decimal(seq, num));
    /* Times are after 1970: never negative. */
    hash_field(&st, num, decimal(at < 0 ? 0 : (uint64_t)at, num));
    hash_field(&st, actor, strlen(actor));
    hash_field(&st, event, strlen(event));
    hash_field(&st, subject, strlen(subject));
    hash_field(&st, data, strlen(data));
    crypto_generichash_final(&st, digest, sizeof digest);
    sodium_bin2hex(out, TDM__HASH_HEX, digest, sizeof digest);
}

int tdm__audit_load_tail(sqlite3 *db, tdm__audit_tail *tail, tdm_error *err)
{
    tail->seq = 0;
    memset(tail->hash, '0', 64);
    tail->hash[64] = '\0';
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(db, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &st, err);
    if (rc != 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW) {
        tail->seq = (uint64_t)sqlite3_column_int64(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 1);
        snprintf(tail->hash, sizeof tail->hash, "%s", h ? h : "");
    }
    sqlite3_finalize(st);
    return 0;
}

int tdm__audit_append(tdm__stmt_cache *c, tdm__audit_tail *tail, int64_t at, const char *actor,
                      const char *event, const char *subject, json_t *data, tdm_error *err)
{
    char *text = data ? json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(data);
    int rc = tdm__audit_append_text(c, tail, at, actor, event, subject, text, err);
    free(text);
    return rc;
}

int tdm__audit_append_text(tdm__stmt_cache *c, tdm__audit_tail *tail, int64_t at, const char *actor,
                           const char *event, const char *subject, const char *data, tdm_error *err)
{
    const char *payload = data ? data : "{}";
    uint64_t seq = tail->seq + 1;
    char hash[TDM__HASH_HEX];
    if (actor == NULL)
        actor = "api";
    tdm__audit_hash(tail->hash, seq, at, actor, event, subject, payload, hash);

    sqlite3_stmt *st = tdm__stmt(c,
                                 "INSERT INTO audit (seq, at, actor, event, subject, data, "
                                 "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 err);
    if (st == NULL)
        return err ? err->code : TDM_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 2, at);
    sqlite3_bind_text(st, 3, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, event, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, payload, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, tail->hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return tdm__db_error(c->db, rc, err, "appending to the audit trail");
    tail->seq = seq;
    memcpy(tail->hash, hash, sizeof hash);
    return 0;
}

/* ---- entry data as text ---------------------------------------------------------------- */

void tdm__audit_data_init(tdm__audit_data *d)
{
    d->p = d->small;
    d->cap = sizeof d->small;
    d->small[0] = '{';
    d->len = 1;
    d->failed = 0;
}

/* Makes room for n more bytes and a NUL; 0 when there is. */
static int data_room(tdm__audit_data *d, size_t n)
{
    if (d->failed)
        return -1;
    if (d->len + n + 1 <= d->cap)
        return 0;
    size_t cap = d->cap * 2;
    while (cap < d->len + n + 1)
        cap *= 2;
    char *p = d->p == d->small ? malloc(cap) : realloc(d->p, cap);
    if (p == NULL) {
        d->failed = 1;
        return -1;
    }
    if (d->p == d->small)
        memcpy(p, d->small, d->len);
    d->p = p;
    d->cap = cap;
    return 0;
}

static void data_bytes(tdm__audit_data *d, const char *bytes, size_t n)
{
    if (data_room(d, n) == 0) {
        memcpy(d->p + d->len, bytes, n);
        d->len += n;
    }
}

/* A JSON string as jansson writes it without JSON_ENSURE_ASCII or JSON_ESCAPE_SLASH: '"' and
 * '\' escaped, the control characters with their short escape or \u00XX, the rest as is. */
static void data_string(tdm__audit_data *d, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    data_bytes(d, "\"", 1);
    const char *run = s;
    for (;; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        data_bytes(d, run, (size_t)(s - run));
        if (ch == 0)
            break;
        char esc[6] = {'\\', 0, '0', '0', hex[ch >> 4], hex[ch & 15]};
        size_t n = 2;
        switch (ch) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            n = 6;
            break;
        }
        data_bytes(d, esc, n);
        run = s + 1;
    }
    data_bytes(d, "\"", 1);
}

static void data_key(tdm__audit_data *d, const char *key)
{
    if (d->len > 1)
        data_bytes(d, ",", 1);
    data_string(d, key);
    data_bytes(d, ":", 1);
}

void tdm__audit_data_str(tdm__audit_data *d, const char *key, const char *value)
{
    data_key(d, key);
    data_string(d, value);
}

void tdm__audit_data_int(tdm__audit_data *d, const char *key, int64_t value)
{
    char num[24];
    uint64_t mag = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    size_t n = 0;
    if (value < 0)
        num[n++] = '-';
    n += decimal(mag, num + n);
    data_key(d, key);
    data_bytes(d, num, n);
}

void tdm__audit_data_bool(tdm__audit_data *d, const char *key, int value)
{
    data_key(d, key);
    if (value)
        data_bytes(d, "true", 4);
    else
        data_bytes(d, "false", 5);
}

void tdm__audit_data_real(tdm__audit_data *d, const char *key, double value)
{
    /* As jansson with JSON_REAL_PRECISION(10): %.10g, and ".0" after a bare integer. JSON
     * has no NaN or infinity (jansson refuses to make them): null stands for them. */
    if (!isfinite(value)) {
        data_key(d, key);
        data_bytes(d, "null", 4);
        return;
    }
    char num[40];
    int n = snprintf(num, sizeof num - 2, "%.10g", value);
    if (n < 0 || (size_t)n >= sizeof num - 2) {
        d->failed = 1;
        return;
    }
    if (strspn(num, "0123456789-") == (size_t)n) {
        num[n++] = '.';
        num[n++] = '0';
        num[n] = '\0'; /* the room was kept: sizeof num - 2 above */
    }
    /* ... and an exponent without its '+' or leading zeros: 1e21, 1e-7. */
    char *e = memchr(num, 'e', (size_t)n);
    if (e != NULL) {
        char *from = e + 1, *to = e + 1;
        if (*from == '-')
            from = ++to;
        else if (*from == '+')
            from++;
        while (*from == '0' && from[1] != '\0')
            from++;
        memmove(to, from, (size_t)(num + n - from) + 1);
        n -= (int)(from - to);
    }
    data_key(d, key);
    data_bytes(d, num, (size_t)n);
}

void tdm__audit_data_raw(tdm__audit_data *d, const char *key, const char *json)
{
    data_key(d, key);
    data_bytes(d, json, strlen(json));
}

const char *tdm__audit_data_text(tdm__audit_data *d)
{
    if (data_room(d, 1) != 0)
        return NULL;
    d->p[d->len++] = '}';
    d->p[d->len] = '\0';
    return d->p;
}

void tdm__audit_data_release(tdm__audit_data *d)
{
    if (d->p != d->small)
        free(d->p);
    d->p = d->small;
    d->len = 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

int tdm__audit_verify(sqlite3 *db, tdm_audit_check *out, tdm_error *err)
{
    memset(out, 0, sizeof *out);
    out->ok = 1;
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(
        db, "SELECT seq, at, actor, event, subject, data, prev_hash, hash FROM audit ORDER BY seq",
        &st, err);
    if (rc != 0)
        return rc;
    char prev[TDM__HASH_HEX];
    memset(prev, '0', 64);
    prev[64] = '\0';
    uint64_t expect = 1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
        const char *stored_prev = col_text(st, 6), *stored = col_text(st, 7);
        char want[TDM__HASH_HEX];
        tdm__audit_hash(prev, seq, sqlite3_column_int64(st, 1), col_text(st, 2), col_text(st, 3),
                        col_text(st, 4), col_text(st, 5), want);
        const char *why = NULL;
        if (seq != expect)
            why = seq > expect ? "entries before it are missing" : "its sequence number repeats";
        else if (strcmp(stored_prev, prev) != 0)
            why = "it does not link to the entry before it";
        else if (strcmp(stored, want) != 0)
            why = "its contents do not match its hash (the entry was changed)";
        out->entries++;
        if (why != NULL) {
            out->ok = 0;
            out->first_bad = seq;
            snprintf(out->reason, sizeof out->reason, "entry %" PRIu64 ": %s", seq, why);
            break;
        }
        memcpy(prev, stored, 64);
        prev[64] = '\0';
        expect = seq + 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return tdm__db_error(db, rc, err, "reading the audit trail");
    return 0;
}

int tdm__audit_list(sqlite3 *db, uint64_t after, size_t limit, const tdm_audit_filter *filter,
                    json_t **out, tdm_error *err)
{
    tdm_audit_filter none = {NULL, NULL, NULL};
    if (filter == NULL)
        filter = &none;
    int filtered = filter->event != NULL || filter->actor != NULL || filter->subject != NULL;
    /* A subject "x*" is a prefix; anything else must match whole. */
    const char *subject = filter->subject, *prefix = NULL;
    size_t prefix_len = 0;
    if (subject != NULL && subject[0] != '\0' && subject[strlen(subject) - 1] == '*') {
        prefix = subject;
        prefix_len = strlen(subject) - 1;
        subject = NULL;
    }
    sqlite3_int64 newest = 0;
    sqlite3_stmt *st;
    int rc = tdm__db_prepare(db, "SELECT coalesce(max(seq), 0) FROM audit", &st, err);
    if (rc != 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        newest = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    /* Without a filter every entry matches, so the limit bounds the work; with one, the
     * window does. */
    sqlite3_int64 upto = filtered && (sqlite3_int64)after + TDM_AUDIT_SCAN_MAX < newest
                             ? (sqlite3_int64)after + TDM_AUDIT_SCAN_MAX
                             : newest;
    rc = tdm__db_prepare(db,
                         "SELECT seq, at, actor, event, subject, data, prev_hash, hash FROM "
                         "audit WHERE seq > ?1 AND seq <= ?2 AND (?3 IS NULL OR event = ?3) AND "
                         "(?4 IS NULL OR actor = ?4) AND (?5 IS NULL OR subject = ?5) AND (?6 IS "
                         "NULL OR substr(subject, 1, ?7) = ?6) ORDER BY seq LIMIT ?8",
                         &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after);
    sqlite3_bind_int64(st, 2, upto);
    if (filter->event != NULL)
        sqlite3_bind_text(st, 3, filter->event, -1, SQLITE_STATIC);
    if (filter->actor != NULL)
        sqlite3_bind_text(st, 4, filter->actor, -1, SQLITE_STATIC);
    if (subject != NULL)
        sqlite3_bind_text(st, 5, subject, -1, SQLITE_STATIC);
    if (prefix != NULL)
        sqlite3_bind_text(st, 6, prefix, (int)prefix_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)prefix_len);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)limit);
    json_t *entries = json_array();
    uint64_t last = after;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char at[32];
        tdm__format_time(sqlite3_column_int64(st, 1), at, sizeof at);
        json_t *data = json_loads(col_text(st, 5), 0, NULL);
        last = (uint64_t)sqlite3_column_int64(st, 0);
        n++;
        json_array_append_new(
            entries, json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "seq", (json_int_t)last,
                               "at", at, "actor", col_text(st, 2), "event", col_text(st, 3),
                               "subject", col_text(st, 4), "data", data ? data : json_object(),
                               "prev_hash", col_text(st, 6), "hash", col_text(st, 7)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(entries);
        return tdm__db_error(db, rc, err, "reading the audit trail");
    }
    /* Fewer than asked: everything up to the window's end was looked at. */
    if (n < limit && (uint64_t)upto > last)
        last = (uint64_t)upto;
    *out = json_pack("{s:o, s:I, s:b}", "entries", entries, "next", (json_int_t)last, "end",
                     (sqlite3_int64)last >= newest);
    return 0;
}
