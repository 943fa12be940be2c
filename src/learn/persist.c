/*
 * persist.c — the model file: a versioned, checksummed, little-endian byte string.
 *
 * NOTES ON THE DESIGN OF THE MODEL FILE
 *
 * Layout (all integers and floats little-endian, floats IEEE 754):
 *
 *   offset  size  field
 *   0       8     magic "TDMMODEL"
 *   8       4     format version (TDM__MODEL_VERSION)
 *   12      4     flags, 0
 *   16      8     payload length P
 *   24      P     payload (below)
 *   24+P    8     XXH3-64 of bytes [0, 24+P)
 *
 * Payload, in order: featurizer (hash bits, caps, fields with kind and numeric bins),
 * labels, learning rate, temperature, certified threshold and its risk target, counters,
 * bias and its AdaGrad sums, then the feature rows that differ from a fresh model, each as
 * its row number, its AdaGrad sum and n_labels weights. Untouched rows are left out, which
 * keeps files a fraction of the in-memory matrix.
 *
 * Every value is written and read through explicit byte shuffling (put_u32 / get_u32 ...),
 * never by dumping structs, so the file is the same on every platform. A reader checks the
 * magic, the version, the length and the checksum before it trusts a single field, and then
 * bounds-checks every read, so a corrupt file is TDM_ECORRUPT and never a crash.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "learn/model_int.h"
#include "util/util.h"

#define TDM__MODEL_MAGIC   "TDMMODEL"
#define TDM__MODEL_VERSION 1u
#define HEADER_BYTES       24
#define MAX_STRING         (1u << 20)

/* ------------------------------------------------------------------------------------------ */
/* Writing                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct writer {
    unsigned char *buf;
    size_t len, cap;
    int failed;
} writer;

static void reserve(writer *w, size_t more)
{
    if (w->failed || w->len + more <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + more)
        cap *= 2;
    unsigned char *b = realloc(w->buf, cap);
    if (b == NULL) {
        w->failed = 1;
        return;
    }
    w->buf = b;
    w->cap = cap;
}

static void put_bytes(writer *w, const void *p, size_t n)
{
    reserve(w, n);
    if (w->failed)
        return;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_u32(writer *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put_bytes(w, b, 4);
}

static void put_u64(writer *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_f32(writer *w, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(w, v);
}

static void put_f64(writer *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(w, v);
}

static void put_str(writer *w, const char *s)
{
    size_t n = strlen(s);
    put_u32(w, (uint32_t)n);
    put_bytes(w, s, n);
}

static void patch_u64(writer *w, size_t at, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w->buf[at + (size_t)i] = (unsigned char)(v >> (8 * i));
}

/* One saved row at p: its index, its AdaGrad sum and its n weights, each little-endian, as
 * put_u32 and put_f32 write them (a plain copy where the machine is little-endian). */
static void put_row(unsigned char *p, uint32_t index, float g, const float *w, size_t n)
{
    uint32_t v;
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(index >> (8 * i));
    memcpy(&v, &g, 4);
    for (int i = 0; i < 4; i++)
        p[4 + i] = (unsigned char)(v >> (8 * i));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p + 8, w, 4 * n);
#else
    for (size_t c = 0; c < n; c++) {
        memcpy(&v, &w[c], 4);
        for (int i = 0; i < 4; i++)
            p[8 + 4 * c + (size_t)i] = (unsigned char)(v >> (8 * i));
    }
#endif
}

/* A row is worth saving when it differs from what tdm__model_reset() leaves. */
static int row_touched(const tdm_model *m, size_t r)
{
    if (m->g[r] != TDM__ADAGRAD_INIT)
        return 1;
    const float *w = m->w + r * m->stride;
    int any = 0; /* no early exit: the loop vectorises, and most rows are all zero */
    for (size_t c = 0; c < m->n_labels; c++)
        any |= w[c] != 0.0f;
    return any;
}

int tdm_model_serialize(const tdm_model *m, unsigned char **out, size_t *out_len)
{
    if (m == NULL || out == NULL || out_len == NULL)
        return TDM_EINVAL;
    *out = NULL;
    *out_len = 0;
    writer w = {0};
    put_bytes(&w, TDM__MODEL_MAGIC, 8);
    put_u32(&w, TDM__MODEL_VERSION);
    put_u32(&w, 0);
    put_u64(&w, 0); /* payload length, patched below */

    put_u32(&w, m->fz.hash_bits);
    put_u64(&w, m->fz.max_text_bytes);
    put_u64(&w, m->fz.max_features);
    put_u32(&w, (uint32_t)m->fz.n_fields);
    for (size_t i = 0; i < m->fz.n_fields; i++) {
        const tdm__field *f = &m->fz.fields[i];
        put_str(&w, f->name);
        put_u32(&w, (uint32_t)f->kind);
        put_u32(&w, f->n_edges);
        for (uint32_t e = 0; e < f->n_edges; e++)
            put_f64(&w, f->edges[e]);
        put_f64(&w, f->center);
        put_f64(&w, f->scale);
    }
    put_u32(&w, (uint32_t)m->n_labels);
    for (size_t i = 0; i < m->n_labels; i++)
        put_str(&w, m->labels[i]);
    put_f64(&w, m->learning_rate);
    put_f64(&w, m->temperature);
    put_f64(&w, m->target_error);
    put_f64(&w, m->delta);
    put_u32(&w, (uint32_t)m->risk.found);
    put_f64(&w, m->risk.threshold);
    put_u64(&w, m->risk.n_above);
    put_u64(&w, m->risk.errors);
    put_f64(&w, m->risk.error_bound);
    put_u64(&w, m->risk.n_tested);
    put_u64(&w, m->examples_seen);
    put_u64(&w, m->online_updates);
    for (size_t c = 0; c < m->n_labels; c++)
        put_f32(&w, m->bias[c]);
    for (size_t c = 0; c < m->n_labels; c++)
        put_f32(&w, m->gbias[c]);

    /* The rows: one pass over the table (it is large: 84 MB for 77 labels at 2^18 rows, and
     * the snapshots of a close, and of a refit whose chunks could not all be stored, are
     * taken on the writer's thread), the count patched in after. */
    size_t count_at = w.len;
    put_u64(&w, 0);
    uint64_t touched = 0;
    const size_t row_bytes = 8 + 4 * m->n_labels;
    for (size_t r = 0; r < m->n_rows && !w.failed; r++) {
        if (!row_touched(m, r))
            continue;
        reserve(&w, row_bytes);
        if (w.failed)
            break;
        put_row(w.buf + w.len, (uint32_t)r, m->g[r], m->w + r * m->stride, m->n_labels);
        w.len += row_bytes;
        touched++;
    }
    if (!w.failed)
        patch_u64(&w, count_at, touched);
    if (w.failed) {
        free(w.buf);
        return TDM_ENOMEM;
    }
    patch_u64(&w, 16, (uint64_t)(w.len - HEADER_BYTES));
    put_u64(&w, XXH3_64bits(w.buf, w.len));
    if (w.failed) {
        free(w.buf);
        return TDM_ENOMEM;
    }
    *out = w.buf;
    *out_len = w.len;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct reader {
    const unsigned char *p;
    size_t len, at;
    int bad;
} reader;

static const unsigned char *take(reader *r, size_t n)
{
    if (r->bad || n > r->len - r->at) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p + r->at;
    r->at += n;
    return p;
}

static uint32_t get_u32(reader *r)
{
    const unsigned char *b = take(r, 4);
    if (b == NULL)
        return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(reader *r)
{
    uint64_t lo = get_u32(r);
    uint64_t hi = get_u32(r);
    return lo | hi << 32;
}

static float get_f32(reader *r)
{
    uint32_t v = get_u32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static double get_f64(reader *r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

/* Reads a length-prefixed string into a new NUL-terminated allocation (NULL if bad). */
static char *get_str(reader *r)
{
    uint32_t n = get_u32(r);
    if (n > MAX_STRING) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *b = take(r, n);
    if (b == NULL || memchr(b, '\0', n) != NULL) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, b, n);
    s[n] = '\0';
    return s;
}

/* Reads the featurizer section into fz (set up on success, zeroed on failure). */
static int read_featurizer(reader *r, tdm__featurizer *fz)
{
    memset(fz, 0, sizeof *fz);
    uint32_t hash_bits = get_u32(r);
    uint64_t max_text = get_u64(r), max_feat = get_u64(r);
    uint32_t n_fields = get_u32(r);
    if (r->bad || n_fields > 65536 || max_text > (1u << 26) || max_feat > (1u << 24))
        return TDM_ECORRUPT;
    tdm__field *fields = calloc(n_fields ? n_fields : 1, sizeof *fields);
    tdm_field_spec *specs = calloc(n_fields ? n_fields : 1, sizeof *specs);
    int rc = TDM_ENOMEM;
    if (fields == NULL || specs == NULL)
        goto out;
    rc = TDM_ECORRUPT;
    for (uint32_t i = 0; i < n_fields; i++) {
        tdm__field *f = &fields[i];
        f->name = get_str(r);
        f->kind = (tdm_field_kind)get_u32(r);
        f->n_edges = get_u32(r);
        if (f->name == NULL) {
            rc = r->bad ? TDM_ECORRUPT : TDM_ENOMEM;
            goto out;
        }
        if (r->bad || f->n_edges > TDM__NUMERIC_EDGES_MAX || f->kind < TDM_FIELD_TEXT ||
            f->kind > TDM_FIELD_NUMERIC)
            goto out;
        for (uint32_t e = 0; e < f->n_edges; e++)
            f->edges[e] = get_f64(r);
        f->center = get_f64(r);
        f->scale = get_f64(r);
        specs[i].name = f->name;
        specs[i].kind = f->kind;
    }
    if (r->bad)
        goto out;
    rc = tdm__featurizer_init(fz, specs, n_fields, hash_bits, (size_t)max_text, (size_t)max_feat);
    if (rc == TDM_EINVAL)
        rc = TDM_ECORRUPT;
    if (rc != 0)
        goto out;
    for (uint32_t i = 0; i < n_fields; i++) {
        fz->fields[i].n_edges = fields[i].n_edges;
        memcpy(fz->fields[i].edges, fields[i].edges, sizeof fields[i].edges);
        fz->fields[i].center = fields[i].center;
        fz->fields[i].scale = fields[i].scale;
    }
out:
    if (fields != NULL)
        for (uint32_t i = 0; i < n_fields; i++)
            free(fields[i].name);
    free(fields);
    free(specs);
    return rc;
}

static int corrupt(tdm_error *err, const char *name, const char *what)
{
    return tdm__error(err, TDM_ECORRUPT, "%s: not a valid tandem model file (%s)", name, what);
}

int tdm_model_deserialize(const unsigned char *buf, size_t len, const char *name, tdm_model **out,
                          tdm_error *err)
{
    if (name == NULL)
        name = "model";
    if (out == NULL || (buf == NULL && len > 0))
        return tdm__error(err, TDM_EINVAL, "tdm_model_deserialize: missing argument");
    *out = NULL;
    if (len < HEADER_BYTES + 8 || memcmp(buf, TDM__MODEL_MAGIC, 8) != 0)
        return corrupt(err, name, "it does not start with the tandem model signature");
    reader r = {buf, len, 8, 0};
    uint32_t version = get_u32(&r);
    uint32_t flags = get_u32(&r);
    uint64_t payload = get_u64(&r);
    if (version != TDM__MODEL_VERSION)
        return tdm__error(err, TDM_EVERSION,
                          "%s: model format version %u; this tandem reads version %u (retrain "
                          "the model or use the tandem that wrote it)",
                          name, version, TDM__MODEL_VERSION);
    if (flags != 0)
        return corrupt(err, name, "unknown flags");
    if (payload != len - HEADER_BYTES - 8)
        return corrupt(err, name, "its length does not match its header; is it truncated?");
    reader tail = {buf, len, len - 8, 0};
    if (get_u64(&tail) != XXH3_64bits(buf, len - 8))
        return corrupt(err, name, "checksum mismatch; the file is damaged");

    /* The checksum vouches for the bytes; the checks below guard against a file that was
     * written wrongly rather than damaged. */
    tdm__featurizer fz;
    char **labels = NULL;
    uint32_t n_labels = 0;
    tdm_model *m = NULL;
    const char *what = "a field is out of range";
    int rc = read_featurizer(&r, &fz);
    if (rc != 0)
        goto fail;
    rc = TDM_ECORRUPT;

    n_labels = get_u32(&r);
    if (r.bad || n_labels > (1u << 20))
        goto fail;
    labels = calloc(n_labels ? n_labels : 1, sizeof *labels);
    if (labels == NULL) {
        rc = TDM_ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < n_labels; i++) {
        labels[i] = get_str(&r);
        if (labels[i] == NULL) {
            rc = r.bad ? TDM_ECORRUPT : TDM_ENOMEM;
            goto fail;
        }
    }
    double lr = get_f64(&r);
    if (r.bad || !(lr > 0) || lr > 100)
        goto fail;
    rc = tdm__model_new(&fz, (const char *const *)labels, n_labels, lr, &m);
    if (rc != 0)
        goto fail;
    rc = TDM_ECORRUPT;
    m->temperature = get_f64(&r);
    m->target_error = get_f64(&r);
    m->delta = get_f64(&r);
    m->risk.found = (int)get_u32(&r);
    m->risk.threshold = get_f64(&r);
    m->risk.n_above = (size_t)get_u64(&r);
    m->risk.errors = (size_t)get_u64(&r);
    m->risk.error_bound = get_f64(&r);
    m->risk.n_tested = (size_t)get_u64(&r);
    m->examples_seen = get_u64(&r);
    m->online_updates = get_u64(&r);
    if (r.bad || !(m->temperature > 0) || !isfinite(m->temperature)) {
        what = "bad calibration temperature";
        goto fail;
    }
    for (size_t c = 0; c < n_labels; c++)
        m->bias[c] = get_f32(&r);
    for (size_t c = 0; c < n_labels; c++)
        m->gbias[c] = get_f32(&r);
    uint64_t touched = get_u64(&r);
    if (r.bad || touched > m->n_rows)
        goto fail;
    uint64_t prev = 0;
    for (uint64_t i = 0; i < touched; i++) {
        uint32_t row = get_u32(&r);
        if (r.bad || row >= m->n_rows || (i > 0 && row <= prev)) {
            what = "weight rows out of order";
            goto fail;
        }
        prev = row;
        m->g[row] = get_f32(&r);
        float *wr = m->w + (size_t)row * m->stride;
        for (size_t c = 0; c < n_labels; c++)
            wr[c] = get_f32(&r);
    }
    if (r.bad || r.at != len - 8) {
        what = "its contents do not fill its length";
        goto fail;
    }
    for (uint32_t i = 0; i < n_labels; i++)
        free(labels[i]);
    free(labels);
    *out = m;
    tdm__error_clear(err);
    return 0;

fail:
    tdm_model_free(m);
    tdm__featurizer_release(&fz);
    if (labels != NULL) {
        for (uint32_t i = 0; i < n_labels; i++)
            free(labels[i]);
        free(labels);
    }
    if (rc == TDM_ENOMEM)
        return tdm__error(err, rc, "%s: out of memory loading the model", name);
    return corrupt(err, name, r.bad ? "it ends too early" : what);
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                      */
/* ------------------------------------------------------------------------------------------ */

int tdm_model_save(const tdm_model *m, const char *path, tdm_error *err)
{
    unsigned char *buf;
    size_t len;
    int rc = tdm_model_serialize(m, &buf, &len);
    if (rc != 0)
        return tdm__error(err, rc, "%s: cannot serialise the model: %s", path, tdm_strerror(rc));

    /* Write to a temporary name and rename, so a crash never leaves half a model behind. */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (tmp == NULL) {
        free(buf);
        return tdm__error_code(err, TDM_ENOMEM);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        rc = tdm__error(err, TDM_EIO, "%s: cannot create the model file: %s", tmp, strerror(errno));
        goto out;
    }
    size_t wrote = fwrite(buf, 1, len, f);
    int close_rc = fclose(f);
    if (wrote != len || close_rc != 0) {
        rc = tdm__error(err, TDM_EIO, "%s: cannot write the model file: %s", tmp, strerror(errno));
        remove(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = tdm__error(err, TDM_EIO, "%s: cannot move the model file into place: %s", path,
                        strerror(errno));
        remove(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    free(buf);
    return rc;
}

int tdm_model_load(const char *path, tdm_model **out, tdm_error *err)
{
    if (path == NULL || out == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_model_load: missing argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return tdm__error(err, TDM_EIO, "%s: cannot open the model file: %s", path,
                          strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1u << 20;
            unsigned char *b = realloc(buf, ncap);
            if (b == NULL) {
                rc = tdm__error_code(err, TDM_ENOMEM);
                break;
            }
            buf = b;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = tdm__error(err, TDM_EIO, "%s: cannot read the model file: %s", path,
                                strerror(errno));
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        rc = tdm_model_deserialize(buf, len, path, out, err);
    free(buf);
    return rc;
}
