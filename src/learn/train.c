/*
 * train.c — a batch fit with cross-fitting: from a table to a calibrated model whose
 * certified threshold was chosen on scores it never trained on.
 *
 * NOTES ON THE DESIGN OF THE BATCH FIT
 *
 *   1. Labelled rows (label present and non-empty) are featurised once into a compressed
 *      sparse row matrix; every epoch of every fold reads that matrix.
 *   2. Rows are dealt into K folds, stratified: each label's rows are shuffled and dealt
 *      round-robin, so every fold sees every label in proportion.
 *   3. For each fold, the model is fitted on the other K-1 folds and scores the held-out
 *      fold. The out-of-fold scores are honest: every row is scored by a model that did not
 *      see it. They fit the temperature and, through tdm_risk_threshold(), choose the
 *      confidence threshold certified at (target_error, delta).
 *   4. The final model is the average of the K fold models (weights and AdaGrad state).
 *      For a linear model that is exactly the ensemble of their scores: every row has been
 *      learned from by K-1 of them, and averaging cancels much of each one's variance, so
 *      it is at least as accurate as its members. It keeps the temperature and threshold.
 *      It also costs nothing more: there is no separate fit on all rows.
 *
 * With fewer than two folds the model is fitted once on all rows and left uncalibrated,
 * with no certified threshold. No out-of-fold score is ever computed on a row its model
 * learned from: that is what the certificate rests on.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "learn/model_int.h"
#include "util/util.h"

void tdm_train_report_release(tdm_train_report *r)
{
    if (r == NULL)
        return;
    free(r->oof_confidence);
    free(r->oof_correct);
    free(r->oof_label);
    r->oof_confidence = NULL;
    r->oof_correct = NULL;
    r->oof_label = NULL;
    r->n_scores = 0;
}

void tdm_train_opts_init(tdm_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->hash_bits = 0;
    o->epochs = 20;
    o->learning_rate = 0.5;
    o->dropout = 0.8;
    o->folds = 5;
    o->seed = 1;
    o->max_text_bytes = 4096;
    o->max_features = 4096;
    o->target_error = 0.01;
    o->delta = 0.05;
}

/* Labelled rows featurised once: row i's features are index/value[start[i] .. start[i+1]). */
typedef struct csr {
    size_t n;
    size_t max_row;   /* most features in one row */
    uint32_t *n_text; /* per row: how many of its features come from text fields */
    size_t *start;
    uint32_t *index;
    float *value;
    uint32_t *label;
} csr;

static void csr_release(csr *x)
{
    free(x->n_text);
    free(x->start);
    free(x->index);
    free(x->value);
    free(x->label);
    memset(x, 0, sizeof *x);
}

static tdm__fvec csr_row(const csr *x, size_t i)
{
    tdm__fvec v = {x->index + x->start[i], x->value + x->start[i], x->start[i + 1] - x->start[i],
                   x->n_text[i]};
    return v;
}

/* A label -> index map for the fit (open addressing on the label's hash). */
typedef struct label_map {
    size_t mask;
    int64_t *slot; /* index into labels, or -1 */
    const char **labels;
    size_t n, cap;
} label_map;

static int label_map_init(label_map *lm)
{
    memset(lm, 0, sizeof *lm);
    lm->mask = 255;
    lm->slot = malloc((lm->mask + 1) * sizeof *lm->slot);
    lm->cap = 64;
    lm->labels = malloc(lm->cap * sizeof *lm->labels);
    if (lm->slot == NULL || lm->labels == NULL)
        return TDM_ENOMEM;
    for (size_t i = 0; i <= lm->mask; i++)
        lm->slot[i] = -1;
    return 0;
}

static void label_map_release(label_map *lm)
{
    free(lm->slot);
    free(lm->labels);
}

/* Finds or adds `label` (owned by the table, so only the pointer is kept). */
static int label_map_get(label_map *lm, const char *label, size_t len, uint32_t *index)
{
    if (2 * (lm->n + 1) > lm->mask + 1) {
        size_t mask = lm->mask * 2 + 1;
        int64_t *slot = malloc((mask + 1) * sizeof *slot);
        if (slot == NULL)
            return TDM_ENOMEM;
        for (size_t i = 0; i <= mask; i++)
            slot[i] = -1;
        for (size_t i = 0; i < lm->n; i++) {
            size_t h = (size_t)XXH3_64bits(lm->labels[i], strlen(lm->labels[i])) & mask;
            while (slot[h] >= 0)
                h = (h + 1) & mask;
            slot[h] = (int64_t)i;
        }
        free(lm->slot);
        lm->slot = slot;
        lm->mask = mask;
    }
    size_t h = (size_t)XXH3_64bits(label, len) & lm->mask;
    while (lm->slot[h] >= 0) {
        const char *l = lm->labels[lm->slot[h]];
        if (strlen(l) == len && memcmp(l, label, len) == 0) {
            *index = (uint32_t)lm->slot[h];
            return 0;
        }
        h = (h + 1) & lm->mask;
    }
    if (lm->n == lm->cap) {
        const char **labels = realloc(lm->labels, 2 * lm->cap * sizeof *labels);
        if (labels == NULL)
            return TDM_ENOMEM;
        lm->labels = labels;
        lm->cap *= 2;
    }
    lm->slot[h] = (int64_t)lm->n;
    lm->labels[lm->n] = label;
    *index = (uint32_t)lm->n++;
    return 0;
}

/* Featurises every labelled row of the table into `x`. */
static int build_csr(const tdm__featurizer *fz, const tdm_table *t, const size_t *cols,
                     const size_t *rows, const uint32_t *labels, size_t n, csr *x)
{
    memset(x, 0, sizeof *x);
    tdm__fscratch *s = tdm__fscratch_new(fz);
    tdm_value *vals = calloc(fz->n_fields ? fz->n_fields : 1, sizeof *vals);
    size_t cap = n * 64 + 1024, used = 0;
    x->start = malloc((n + 1) * sizeof *x->start);
    x->label = malloc((n ? n : 1) * sizeof *x->label);
    x->n_text = malloc((n ? n : 1) * sizeof *x->n_text);
    x->index = malloc(cap * sizeof *x->index);
    x->value = malloc(cap * sizeof *x->value);
    int rc = TDM_ENOMEM;
    if (!s || !vals || !x->start || !x->label || !x->n_text || !x->index || !x->value)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        for (size_t f = 0; f < fz->n_fields; f++)
            vals[f].data = tdm_table_cell(t, rows[i], cols[f], &vals[f].len);
        tdm__fvec v;
        rc = tdm__featurize(fz, vals, s, &v);
        if (rc != 0)
            goto fail;
        if (used + v.n > cap) {
            size_t ncap = (used + v.n) * 2;
            uint32_t *ni = realloc(x->index, ncap * sizeof *ni);
            if (ni == NULL)
                goto nomem;
            x->index = ni;
            float *nv = realloc(x->value, ncap * sizeof *nv);
            if (nv == NULL)
                goto nomem;
            x->value = nv;
            cap = ncap;
        }
        x->start[i] = used;
        x->n_text[i] = (uint32_t)v.n_text;
        if (v.n > x->max_row)
            x->max_row = v.n;
        memcpy(x->index + used, v.index, v.n * sizeof *v.index);
        memcpy(x->value + used, v.value, v.n * sizeof *v.value);
        used += v.n;
        x->label[i] = labels[i];
    }
    x->start[n] = used;
    x->n = n;
    tdm__fscratch_free(s);
    free(vals);
    return 0;
nomem:
    rc = TDM_ENOMEM;
fail:
    tdm__fscratch_free(s);
    free(vals);
    csr_release(x);
    return rc;
}

static void shuffle(uint32_t *a, size_t n, tdm__rng *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)tdm__rng_below(rng, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Working memory of a batch fit. */
typedef struct fit_ctx {
    const csr *x;
    unsigned epochs;
    double dropout;
    tdm__rng *rng;
    float *scores;      /* stride floats */
    uint32_t *kept_idx; /* 2 * x->max_row: the surviving features of two examples */
    float *kept_val;
    int (*should_stop)(void *arg);
    void *stop_arg;
    int stopped; /* should_stop said so: the fit is unfinished */
} fit_ctx;

/*
 * Hides each text feature of `v` with probability ctx->dropout and scales the survivors by
 * 1 / (1 - dropout) into idx/val, so the expected input is unchanged ("inverted" dropout:
 * predictions use every feature as it is). Structured features are copied as they are:
 * the many overlapping n-grams of a text say the same thing several times over and
 * dropout teaches the model not to lean on any one of them (+1 point of accuracy on
 * Banking77), while an application's twenty fields each say something else (dropping 80%
 * of them brought German credit down to the majority class). Without dropout, returns v.
 */
static tdm__fvec drop_features(const fit_ctx *ctx, tdm__fvec v, uint32_t *idx, float *val)
{
    if (ctx->dropout <= 0)
        return v;
    /* One random byte per feature: the rate is applied in steps of 1/256. */
    const unsigned cut = (unsigned)(ctx->dropout * 256.0 + 0.5);
    const float scale = (float)(256.0 / (256.0 - cut));
    size_t kept = 0;
    uint64_t bits = 0;
    /* Branch-free: every feature is written, and the write position advances only past
     * the ones kept (a kept/dropped branch would be mispredicted a fifth of the time). */
    for (size_t j = 0; j < v.n_text; j++) {
        if ((j & 7) == 0)
            bits = tdm__rng_next(ctx->rng);
        unsigned r = (unsigned)(bits >> ((j & 7) * 8)) & 0xffu;
        idx[kept] = v.index[j];
        val[kept] = v.value[j] * scale;
        kept += r >= cut;
    }
    size_t n_text = kept;
    for (size_t j = v.n_text; j < v.n; j++) {
        idx[kept] = v.index[j];
        val[kept] = v.value[j];
        kept++;
    }
    tdm__fvec out = {idx, val, kept, n_text};
    return out;
}

/*
 * Fits m on the rows listed in `order` for ctx->epochs shuffled passes, with dropout. The
 * next example's dropout is drawn one step ahead so that its weight rows can be fetched
 * into cache while the current example is learned from: the table is far larger than any
 * cache, and the step would otherwise wait on memory.
 */
static void fit_rows(tdm_model *m, fit_ctx *ctx, uint32_t *order, size_t n)
{
    const csr *x = ctx->x;
    uint32_t *idx[2] = {ctx->kept_idx, ctx->kept_idx + x->max_row};
    float *val[2] = {ctx->kept_val, ctx->kept_val + x->max_row};
    for (unsigned e = 0; e < ctx->epochs && n > 0; e++) {
        if (ctx->should_stop != NULL && ctx->should_stop(ctx->stop_arg)) {
            ctx->stopped = 1;
            return;
        }
        shuffle(order, n, ctx->rng);
        tdm__fvec next = drop_features(ctx, csr_row(x, order[0]), idx[0], val[0]);
        for (size_t i = 0; i < n; i++) {
            tdm__fvec v = next;
            if (i + 2 < n) {
                /* The example after next: its features, so that drawing its dropout next
                 * step does not wait on memory either. */
                const tdm__fvec far = csr_row(x, order[i + 2]);
                for (size_t j = 0; j < far.n; j += 16) {
                    __builtin_prefetch(far.index + j);
                    __builtin_prefetch(far.value + j);
                }
            }
            if (i + 1 < n) {
                next = drop_features(ctx, csr_row(x, order[i + 1]), idx[(i + 1) & 1],
                                     val[(i + 1) & 1]);
                tdm__model_prefetch(m, &next);
            }
            tdm__model_step(m, &v, x->label[order[i]], 1.0f, ctx->scores);
        }
        m->examples_seen += n;
    }
}

/*
 * The feature table's size when the caller leaves it to us: as many rows as fit in about
 * TDM__AUTO_TABLE_BYTES of weights for this many labels, within [2^16, 2^20]. Banking77's
 * 77 labels get 2^18 rows (84 MB; a batch fit holds two such matrices); a yes/no decision
 * gets 2^20.
 */
#define TDM__AUTO_TABLE_BYTES ((size_t)128 << 20)

static unsigned auto_hash_bits(size_t n_labels)
{
    size_t row_bytes =
        (n_labels + TDM__CLASS_ALIGN - 1) / TDM__CLASS_ALIGN * TDM__CLASS_ALIGN * sizeof(float);
    unsigned bits = 16;
    while (bits < 20 && ((size_t)2 << bits) * row_bytes <= TDM__AUTO_TABLE_BYTES)
        bits++;
    return bits;
}

static int check_opts(const tdm_train_opts *o, tdm_error *err);

int tdm_model_new(const tdm_field_spec *fields, size_t n_fields, const tdm_train_opts *opts,
                  tdm_model **out)
{
    tdm_train_opts defaults;
    if (opts == NULL) {
        tdm_train_opts_init(&defaults);
        opts = &defaults;
    }
    if (out == NULL || (n_fields > 0 && fields == NULL) || check_opts(opts, NULL) != 0)
        return TDM_EINVAL;
    *out = NULL;
    for (size_t f = 0; f < n_fields; f++)
        if (fields[f].name == NULL || fields[f].kind < TDM_FIELD_TEXT ||
            fields[f].kind > TDM_FIELD_NUMERIC)
            return TDM_EINVAL;
    tdm__featurizer fz;
    int rc = tdm__featurizer_init(&fz, fields, n_fields, opts->hash_bits ? opts->hash_bits : 16,
                                  opts->max_text_bytes, opts->max_features);
    if (rc != 0)
        return rc;
    tdm_model *m;
    rc = tdm__model_new(&fz, NULL, 0, opts->learning_rate, &m);
    tdm__featurizer_release(&fz); /* zeroed if the model took it */
    if (rc != 0)
        return rc;
    m->target_error = opts->target_error;
    m->delta = opts->delta;
    *out = m;
    return 0;
}

static int check_opts(const tdm_train_opts *o, tdm_error *err)
{
    if (o->hash_bits != 0 && (o->hash_bits < 8 || o->hash_bits > 26))
        return tdm__error(err, TDM_EINVAL,
                          "hash bits %u is out of range (8 to 26, or 0 for automatic)",
                          o->hash_bits);
    if (o->epochs < 1 || o->epochs > 1000)
        return tdm__error(err, TDM_EINVAL, "epochs %u is out of range (1 to 1000)", o->epochs);
    if (!(o->dropout >= 0 && o->dropout <= 0.95))
        return tdm__error(err, TDM_EINVAL, "dropout %g is out of range [0, 0.95]", o->dropout);
    if (!(o->learning_rate > 0) || o->learning_rate > 100)
        return tdm__error(err, TDM_EINVAL, "learning rate %g is out of range (0, 100]",
                          o->learning_rate);
    if (o->folds > 100)
        return tdm__error(err, TDM_EINVAL, "folds %u is out of range (0 to 100)", o->folds);
    if (!(o->target_error > 0 && o->target_error < 1))
        return tdm__error(err, TDM_EINVAL, "target error %g must be between 0 and 1",
                          o->target_error);
    if (!(o->delta > 0 && o->delta < 1))
        return tdm__error(err, TDM_EINVAL, "delta %g must be between 0 and 1", o->delta);
    if (o->max_text_bytes < 1 || o->max_text_bytes > (1u << 26))
        return tdm__error(err, TDM_EINVAL, "max text bytes %zu is out of range (1 to 64 MiB)",
                          o->max_text_bytes);
    if (o->max_features < 1 || o->max_features > (1u << 24))
        return tdm__error(err, TDM_EINVAL, "max features %zu is out of range (1 to 16777216)",
                          o->max_features);
    return 0;
}

/* Learns the quantile bins of every numeric field from the labelled rows. */
static int fit_numeric_fields(tdm__featurizer *fz, const tdm_table *t, const size_t *cols,
                              const size_t *rows, size_t n)
{
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (v == NULL)
        return TDM_ENOMEM;
    for (size_t f = 0; f < fz->n_fields; f++) {
        if (fz->fields[f].kind != TDM_FIELD_NUMERIC)
            continue;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            size_t len;
            const char *cell = tdm_table_cell(t, rows[i], cols[f], &len);
            if (cell != NULL && tdm__parse_number(cell, len, &v[m]) == 0)
                m++;
        }
        int rc = tdm__featurizer_fit_numeric(fz, f, v, m);
        if (rc != 0) {
            free(v);
            return rc;
        }
    }
    free(v);
    return 0;
}

/*
 * Deals rows into `k` folds stratified by label: fold[i] for row i. Each label's rows are
 * shuffled and dealt round-robin, starting where the previous label stopped, so fold sizes
 * differ by at most one.
 */
static int assign_folds(const csr *x, size_t n_labels, unsigned k, tdm__rng *rng, uint8_t *fold)
{
    size_t *count = calloc(n_labels + 1, sizeof *count);
    uint32_t *by_label = malloc((x->n ? x->n : 1) * sizeof *by_label);
    if (count == NULL || by_label == NULL) {
        free(count);
        free(by_label);
        return TDM_ENOMEM;
    }
    for (size_t i = 0; i < x->n; i++)
        count[x->label[i] + 1]++;
    for (size_t c = 0; c < n_labels; c++)
        count[c + 1] += count[c];
    /* count[c] is now the start of label c's rows in by_label. */
    size_t *fill = malloc((n_labels ? n_labels : 1) * sizeof *fill);
    if (fill == NULL) {
        free(count);
        free(by_label);
        return TDM_ENOMEM;
    }
    memcpy(fill, count, n_labels * sizeof *fill);
    for (size_t i = 0; i < x->n; i++)
        by_label[fill[x->label[i]]++] = (uint32_t)i;
    size_t deal = 0;
    for (size_t c = 0; c < n_labels; c++) {
        shuffle(by_label + count[c], count[c + 1] - count[c], rng);
        for (size_t i = count[c]; i < count[c + 1]; i++)
            fold[by_label[i]] = (uint8_t)(deal++ % k);
    }
    free(fill);
    free(count);
    free(by_label);
    return 0;
}

/*
 * Cross-fits: fills logits (x->n rows of m->stride) with out-of-fold scores, fitting each
 * fold model in `work`, and leaves the average of the fold models in m.
 */
static int cross_fit(tdm_model *m, tdm_model *work, fit_ctx *ctx, unsigned k, float *logits)
{
    const csr *x = ctx->x;
    uint8_t *fold = malloc(x->n);
    uint32_t *order = malloc(x->n * sizeof *order);
    int rc = TDM_ENOMEM;
    if (fold == NULL || order == NULL)
        goto out;
    rc = assign_folds(x, m->n_labels, k, ctx->rng, fold);
    if (rc != 0)
        goto out;
    for (unsigned f = 0; f < k; f++) {
        size_t n = 0;
        for (size_t i = 0; i < x->n; i++)
            if (fold[i] != f)
                order[n++] = (uint32_t)i;
        tdm__model_reset(work);
        fit_rows(work, ctx, order, n);
        if (ctx->stopped)
            break;
        for (size_t i = 0; i < x->n; i++) {
            if (fold[i] != f)
                continue;
            tdm__fvec v = csr_row(x, i);
            tdm__model_scores(work, &v, logits + i * work->stride);
        }
        tdm__model_accumulate(m, work, 1.0f / (float)k, f == 0);
        m->examples_seen += work->examples_seen;
    }
    rc = 0;
out:
    free(fold);
    free(order);
    return rc;
}

/* Calibrated confidence (top probability), the top label and its correctness, for each
 * out-of-fold score. */
static void confidences(const float *logits, size_t n, size_t n_labels, size_t stride, double t,
                        const uint32_t *label, double *conf, unsigned char *correct, uint32_t *top)
{
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * stride;
        size_t best = 0;
        for (size_t c = 1; c < n_labels; c++)
            if (z[c] > z[best])
                best = c;
        double sum = 0;
        for (size_t c = 0; c < n_labels; c++)
            sum += exp(((double)z[c] - z[best]) / t);
        conf[i] = 1.0 / sum;
        correct[i] = best == label[i];
        top[i] = (uint32_t)best;
    }
}

int tdm_model_train(const tdm_table *t, const char *label_column, const tdm_field_spec *fields,
                    size_t n_fields, const tdm_train_opts *opts, tdm_model **out,
                    tdm_train_report *report, tdm_error *err)
{
    double t0 = tdm__now();
    tdm_train_opts defaults;
    if (opts == NULL) {
        tdm_train_opts_init(&defaults);
        opts = &defaults;
    }
    tdm__error_clear(err);
    if (out == NULL || t == NULL || label_column == NULL || (n_fields > 0 && fields == NULL))
        return tdm__error(err, TDM_EINVAL, "tdm_model_train: missing argument");
    *out = NULL;
    int rc = check_opts(opts, err);
    if (rc != 0)
        return rc;
    if (n_fields == 0)
        return tdm__error(err, TDM_EINVAL,
                          "no input fields: name at least one column to learn from");

    size_t label_col;
    if (tdm_table_column_index(t, label_column, &label_col) != 0)
        return tdm__error(err, TDM_ENOTFOUND, "%s: no column named \"%s\" for the label",
                          tdm_table_name(t), label_column);
    size_t *cols = malloc(n_fields * sizeof *cols);
    size_t n_rows = tdm_table_row_count(t);
    size_t *rows = malloc((n_rows ? n_rows : 1) * sizeof *rows);
    uint32_t *labels = malloc((n_rows ? n_rows : 1) * sizeof *labels);
    tdm_model *m = NULL, *work = NULL;
    tdm__featurizer work_fz;
    memset(&work_fz, 0, sizeof work_fz);
    csr x = {0};
    label_map lm;
    float *logits = NULL, *scores = NULL, *kept_val = NULL;
    uint32_t *kept_idx = NULL;
    double *conf = NULL;
    unsigned char *correct = NULL;
    uint32_t *top = NULL;
    tdm__featurizer fz;
    memset(&fz, 0, sizeof fz);
    tdm_train_report rep;
    memset(&rep, 0, sizeof rep);
    rc = label_map_init(&lm);
    if (rc != 0 || cols == NULL || rows == NULL || labels == NULL) {
        rc = tdm__error_code(err, TDM_ENOMEM);
        goto out;
    }
    for (size_t f = 0; f < n_fields; f++) {
        if (fields[f].name == NULL || tdm_table_column_index(t, fields[f].name, &cols[f]) != 0) {
            rc = tdm__error(err, TDM_ENOTFOUND, "%s: no column named \"%s\" for an input field",
                            tdm_table_name(t), fields[f].name ? fields[f].name : "(null)");
            goto out;
        }
        if (cols[f] == label_col) {
            rc = tdm__error(err, TDM_EINVAL,
                            "column \"%s\" is the label; it cannot also be an input field",
                            label_column);
            goto out;
        }
        if (fields[f].kind < TDM_FIELD_TEXT || fields[f].kind > TDM_FIELD_NUMERIC) {
            rc = tdm__error(err, TDM_EINVAL, "field \"%s\" has no valid kind", fields[f].name);
            goto out;
        }
    }

    /* Labelled rows and their label indices, labels numbered in order of appearance. */
    size_t n = 0;
    for (size_t r = 0; r < n_rows; r++) {
        size_t len;
        const char *cell = tdm_table_cell(t, r, label_col, &len);
        if (cell == NULL || len == 0)
            continue;
        rc = label_map_get(&lm, cell, len, &labels[n]);
        if (rc != 0) {
            rc = tdm__error_code(err, rc);
            goto out;
        }
        rows[n++] = r;
    }
    if (n == 0) {
        rc = tdm__error(err, TDM_ENODATA, "%s: no row has a value in the label column \"%s\"",
                        tdm_table_name(t), label_column);
        goto out;
    }

    unsigned hash_bits = opts->hash_bits ? opts->hash_bits : auto_hash_bits(lm.n);
    rc = tdm__featurizer_init(&fz, fields, n_fields, hash_bits, opts->max_text_bytes,
                              opts->max_features);
    if (rc == 0)
        rc = fit_numeric_fields(&fz, t, cols, rows, n);
    if (rc == 0)
        rc = tdm__model_new(&fz, lm.labels, lm.n, opts->learning_rate, &m);
    if (rc == 0)
        rc = build_csr(&m->fz, t, cols, rows, labels, n, &x);
    if (rc != 0) {
        rc = tdm__error_code(err, rc);
        goto out;
    }
    m->target_error = opts->target_error;
    m->delta = opts->delta;

    tdm__rng rng;
    tdm__rng_seed(&rng, opts->seed);
    scores = malloc(m->stride * sizeof *scores);
    kept_idx = malloc((2 * x.max_row + 1) * sizeof *kept_idx);
    kept_val = malloc((2 * x.max_row + 1) * sizeof *kept_val);
    if (scores == NULL || kept_idx == NULL || kept_val == NULL) {
        rc = tdm__error_code(err, TDM_ENOMEM);
        goto out;
    }
    fit_ctx ctx = {.x = &x,
                   .epochs = opts->epochs,
                   .dropout = opts->dropout,
                   .rng = &rng,
                   .scores = scores,
                   .kept_idx = kept_idx,
                   .kept_val = kept_val,
                   .should_stop = opts->should_stop,
                   .stop_arg = opts->stop_arg};
    rep.temperature = 1.0;
    rep.risk.threshold = INFINITY;
    rep.risk.error_bound = 1.0;

    unsigned k = opts->folds;
    if (k >= 2 && n >= 2 * (size_t)k) {
        logits = malloc(x.n * m->stride * sizeof *logits);
        conf = malloc(x.n * sizeof *conf);
        correct = malloc(x.n);
        top = malloc(x.n * sizeof *top);
        if (logits == NULL || conf == NULL || correct == NULL || top == NULL) {
            rc = tdm__error_code(err, TDM_ENOMEM);
            goto out;
        }
        /* The fold models need weights but no featurizer of their own. */
        rc = tdm__featurizer_init(&work_fz, NULL, 0, hash_bits, 1, 1);
        if (rc == 0)
            rc = tdm__model_new(&work_fz, lm.labels, lm.n, opts->learning_rate, &work);
        if (rc == 0)
            rc = cross_fit(m, work, &ctx, k, logits);
        tdm_model_free(work);
        work = NULL;
        if (rc == 0 && ctx.stopped) {
            rc = tdm__error(err, TDM_EBUSY, "the fit was stopped before it finished");
            goto out;
        }
        if (rc == 0)
            rc = tdm_calibrate_temperature(logits, x.n, m->n_labels, m->stride, x.label,
                                           &rep.temperature);
        if (rc != 0) {
            rc = tdm__error_code(err, rc);
            goto out;
        }
        confidences(logits, x.n, m->n_labels, m->stride, rep.temperature, x.label, conf, correct,
                    top);
        size_t right = 0;
        for (size_t i = 0; i < x.n; i++)
            right += correct[i];
        rep.oof_accuracy = (double)right / (double)x.n;
        rep.oof_ece = tdm_expected_calibration_error(conf, correct, x.n, 15);
        rc = tdm_risk_threshold(conf, correct, x.n, opts->target_error, opts->delta, &rep.risk);
        if (rc != 0) {
            rc = tdm__error_code(err, rc);
            goto out;
        }
        if (opts->keep_scores) {
            /* Hand the score arrays over to the report (the CSR rows are the labelled rows,
             * in table order). */
            rep.n_scores = x.n;
            rep.oof_confidence = conf;
            rep.oof_correct = correct;
            rep.oof_label = top;
            conf = NULL;
            correct = NULL;
            top = NULL;
        }
    } else {
        /* No cross-fitting: one fit on every labelled row. The label indices are no longer
         * needed (x holds them), so their array becomes the visiting order. */
        for (size_t i = 0; i < x.n; i++)
            labels[i] = (uint32_t)i;
        fit_rows(m, &ctx, labels, x.n);
        if (ctx.stopped) {
            rc = tdm__error(err, TDM_EBUSY, "the fit was stopped before it finished");
            goto out;
        }
    }
    m->temperature = rep.temperature;
    m->risk = rep.risk;

    rep.n_train = x.n;
    rep.n_classes = m->n_labels;
    rep.seconds = tdm__now() - t0;
    if (report != NULL)
        *report = rep;
    else
        tdm_train_report_release(&rep);
    *out = m;
    m = NULL;
    rc = 0;
out:
    if (rc != 0)
        tdm_train_report_release(&rep);
    tdm_model_free(m);
    tdm__featurizer_release(&fz);
    tdm__featurizer_release(&work_fz);
    csr_release(&x);
    label_map_release(&lm);
    free(cols);
    free(rows);
    free(labels);
    free(logits);
    free(scores);
    free(kept_idx);
    free(kept_val);
    free(conf);
    free(correct);
    free(top);
    return rc;
}
