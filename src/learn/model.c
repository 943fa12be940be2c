/*
 * model.c — multinomial logistic regression over hashed features, learned with AdaGrad.
 *
 * NOTES ON THE DESIGN OF THE MODEL
 *
 * Weights are one dense matrix of (1 << hash_bits) rows, one per hashed feature, each row
 * holding one float per class, padded to a multiple of TDM__CLASS_ALIGN. Row-major order
 * keeps the classes of a feature contiguous: an item touches a few hundred rows and for each
 * of them reads or writes one short contiguous run, which the compiler vectorises. A class
 * added online takes the next padding column; only when the padding is used up is the matrix
 * laid out again with a wider stride.
 *
 * Learning is AdaGrad on the softmax cross-entropy with one accumulator per feature row
 * ("row-wise" AdaGrad, as large embedding tables are trained): a feature's step is
 * lr * g / sqrt(G) with G the running sum of its squared gradients, averaged over the
 * classes (started at TDM__ADAGRAD_INIT). Rare features keep large steps, frequent ones
 * settle. Sharing G across a row's classes costs nothing measurable in accuracy against one
 * accumulator per weight, halves memory and turns the update into one vectorised
 * multiply-add per row. The same step serves a batch fit (shuffled epochs, train.c) and a
 * single online example (tdm_model_update); the accumulators are saved with the model, so
 * online learning continues at the rates training left off with. docs/learning.md says why
 * AdaGrad rather than FTRL-Proximal.
 *
 * The two inner loops (scores, update) are compiled twice where the compiler can, for
 * x86-64-v3 (AVX2, FMA) and for the baseline, and the better one is picked at load time.
 *
 * Probabilities are softmax(scores / temperature); the temperature is fitted on held-out
 * scores by train.c. Padding columns never enter a softmax: only the first n_labels scores
 * are read.
 */
#define _POSIX_C_SOURCE 200809L

#include "learn/model_int.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TDM_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TDM_KERNEL
#endif

/*
 * Eight floats, one AVX register (two SSE registers on the baseline target). Rows are
 * 32-byte aligned and a multiple of eight floats long, so they are walked eight at a time;
 * loads and stores go through memcpy, which compiles to plain vector moves and keeps the
 * float arrays free of type-punning.
 */
typedef float v8f __attribute__((vector_size(32)));

#define LOAD8(dst, p)  memcpy(&(dst), (p), sizeof(v8f))
#define STORE8(p, src) memcpy((p), &(src), sizeof(v8f))

/* scores[0 .. stride) += sum over j of val[j] * w[idx[j]]: the forward pass. */
TDM_KERNEL
static void kernel_scores(const float *restrict w, size_t stride, const uint32_t *idx,
                          const float *val, size_t n, float *restrict scores)
{
    for (size_t j = 0; j < n; j++) {
        const float *row = w + (size_t)idx[j] * stride;
        const v8f v = {val[j], val[j], val[j], val[j], val[j], val[j], val[j], val[j]};
        for (size_t c = 0; c < stride; c += TDM__CLASS_ALIGN) {
            v8f acc, x;
            LOAD8(acc, scores + c);
            LOAD8(x, row + c);
            acc += v * x;
            STORE8(scores + c, acc);
        }
    }
}

/*
 * The row-wise AdaGrad step for every feature of an example: G[row] += (v^2) * gsq, then
 * w[row] -= (lr * v / sqrt(G[row])) * grad.
 */
TDM_KERNEL
static void kernel_update(float *restrict w, float *restrict g, size_t stride, const uint32_t *idx,
                          const float *val, size_t n, const float *restrict grad, float lr,
                          float gsq)
{
    for (size_t j = 0; j < n; j++) {
        const uint32_t r = idx[j];
        const float v = val[j];
        g[r] += v * v * gsq;
        const float step = lr * v / sqrtf(g[r]);
        const v8f sv = {step, step, step, step, step, step, step, step};
        float *row = w + (size_t)r * stride;
        for (size_t c = 0; c < stride; c += TDM__CLASS_ALIGN) {
            v8f x, d;
            LOAD8(x, row + c);
            LOAD8(d, grad + c);
            x -= sv * d;
            STORE8(row + c, x);
        }
    }
}

static size_t round_stride(size_t n)
{
    return (n + TDM__CLASS_ALIGN - 1) / TDM__CLASS_ALIGN * TDM__CLASS_ALIGN;
}

static float *alloc_floats(size_t n)
{
    /* 64-byte alignment keeps every row (a multiple of 8 floats) on a 32-byte boundary.
     * (Transparent huge pages for the matrix were tried: no measurable gain.) */
    size_t bytes;
    if (tdm__size_mul(n, sizeof(float), &bytes) != 0 || bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p != NULL)
        memset(p, 0, bytes);
    return p;
}

int tdm__model_new(tdm__featurizer *fz, const char *const *labels, size_t n_labels,
                   double learning_rate, tdm_model **out)
{
    *out = NULL;
    tdm_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return TDM_ENOMEM;
    m->fz = *fz;
    memset(fz, 0, sizeof *fz);
    m->n_rows = (size_t)1 << m->fz.hash_bits;
    m->stride = round_stride(n_labels ? n_labels : 1);
    m->labels = calloc(m->stride, sizeof *m->labels);
    size_t cells;
    m->w = tdm__size_mul(m->n_rows, m->stride, &cells) == 0 ? alloc_floats(cells) : NULL;
    m->g = alloc_floats(m->n_rows);
    m->bias = alloc_floats(m->stride);
    m->gbias = alloc_floats(m->stride);
    if (!m->labels || !m->w || !m->g || !m->bias || !m->gbias) {
        tdm_model_free(m);
        return TDM_ENOMEM;
    }
    for (size_t i = 0; i < n_labels; i++) {
        m->labels[i] = strdup(labels[i]);
        if (m->labels[i] == NULL) {
            tdm_model_free(m);
            return TDM_ENOMEM;
        }
        m->n_labels++;
    }
    m->learning_rate = learning_rate;
    m->temperature = 1.0;
    m->risk.found = 0;
    m->risk.threshold = INFINITY;
    m->risk.error_bound = 1.0;
    tdm__model_reset(m);
    *out = m;
    return 0;
}

void tdm__model_reset(tdm_model *m)
{
    memset(m->w, 0, m->n_rows * m->stride * sizeof *m->w);
    for (size_t i = 0; i < m->n_rows; i++)
        m->g[i] = TDM__ADAGRAD_INIT;
    memset(m->bias, 0, m->stride * sizeof *m->bias);
    for (size_t i = 0; i < m->stride; i++)
        m->gbias[i] = TDM__ADAGRAD_INIT;
    m->examples_seen = 0;
    m->online_updates = 0;
}

void tdm_model_free(tdm_model *m)
{
    if (m == NULL)
        return;
    if (m->labels != NULL) {
        for (size_t i = 0; i < m->n_labels; i++)
            free(m->labels[i]);
        free(m->labels);
    }
    free(m->w);
    free(m->g);
    free(m->bias);
    free(m->gbias);
    tdm__featurizer_release(&m->fz);
    free(m);
}

/* ------------------------------------------------------------------------------------------ */
/* Accessors                                                                                  */
/* ------------------------------------------------------------------------------------------ */

size_t tdm_model_field_count(const tdm_model *m)
{
    return m->fz.n_fields;
}

const char *tdm_model_field_name(const tdm_model *m, size_t f)
{
    return f < m->fz.n_fields ? m->fz.fields[f].name : NULL;
}

tdm_field_kind tdm_model_field_kind(const tdm_model *m, size_t f)
{
    return f < m->fz.n_fields ? m->fz.fields[f].kind : (tdm_field_kind)0;
}

size_t tdm_model_label_count(const tdm_model *m)
{
    return m->n_labels;
}

const char *tdm_model_label(const tdm_model *m, size_t i)
{
    return i < m->n_labels ? m->labels[i] : NULL;
}

double tdm_model_temperature(const tdm_model *m)
{
    return m->temperature;
}

const tdm_risk_result *tdm_model_risk(const tdm_model *m, double *target_error, double *delta)
{
    if (target_error != NULL)
        *target_error = m->target_error;
    if (delta != NULL)
        *delta = m->delta;
    return &m->risk;
}

uint64_t tdm_model_examples_seen(const tdm_model *m, uint64_t *online_updates)
{
    if (online_updates != NULL)
        *online_updates = m->online_updates;
    return m->examples_seen;
}

size_t tdm_model_memory_bytes(const tdm_model *m)
{
    size_t bytes = sizeof *m + (m->n_rows * m->stride + m->n_rows) * sizeof(float) +
                   2 * m->stride * sizeof(float) + m->stride * sizeof(char *);
    for (size_t i = 0; i < m->n_labels; i++)
        bytes += strlen(m->labels[i]) + 1;
    return bytes;
}

int tdm__model_label_index(const tdm_model *m, const char *label, uint32_t *index)
{
    for (size_t i = 0; i < m->n_labels; i++) {
        if (strcmp(m->labels[i], label) == 0) {
            *index = (uint32_t)i;
            return 0;
        }
    }
    return TDM_ENOTFOUND;
}

/* ------------------------------------------------------------------------------------------ */
/* Scores and learning                                                                        */
/* ------------------------------------------------------------------------------------------ */

void tdm__model_scores(const tdm_model *m, const tdm__fvec *x, float *scores)
{
    memcpy(scores, m->bias, m->stride * sizeof *scores);
    kernel_scores(m->w, m->stride, x->index, x->value, x->n, scores);
}

void tdm__model_prefetch(const tdm_model *m, const tdm__fvec *x)
{
#if defined(__GNUC__)
    /* The first two cache lines of each row: asking for all of them fills the miss queue
     * and stalls, while the hardware's own prefetcher follows a row once it has begun
     * (measured: two lines train 20% faster than one per 64 bytes of the row). */
    const size_t bytes = m->stride * sizeof(float) < 128 ? m->stride * sizeof(float) : 128;
    for (size_t j = 0; j < x->n; j++) {
        const char *row = (const char *)(m->w + (size_t)x->index[j] * m->stride);
        for (size_t off = 0; off < bytes; off += 64)
            __builtin_prefetch(row + off, 1, 3);
    }
#else
    (void)m;
    (void)x;
#endif
}

/* Turns scores[0 .. n) into probabilities softmax(scores / t), in place. */
/*
 * e^x for x <= 0, to about 2 ulp: x = k ln 2 + r with |r| <= ln 2 / 2, e^r by its degree-6
 * Taylor polynomial, 2^k put into the exponent bits. Unlike expf() it has no error path,
 * so the loop over a row of scores vectorises; a training step calls it for every label.
 * Below -87 the result would be subnormal: it is 0.
 */
static inline float exp_nonpositive(float x)
{
    if (x < -87.0f)
        return 0.0f;
    const float k = floorf(x * 1.44269504088896341f + 0.5f);
    const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Turns scores[0 .. n) into probabilities softmax(scores / t), in place. */
TDM_KERNEL
static void softmax(float *scores, size_t n, double t)
{
    float mx = scores[0];
    for (size_t c = 1; c < n; c++)
        mx = scores[c] > mx ? scores[c] : mx;
    const float inv_t = (float)(1.0 / t);
    float sum = 0;
    for (size_t c = 0; c < n; c++) {
        scores[c] = exp_nonpositive((scores[c] - mx) * inv_t);
        sum += scores[c];
    }
    const float inv = 1.0f / sum;
    for (size_t c = 0; c < n; c++)
        scores[c] *= inv;
}

void tdm__model_step(tdm_model *m, const tdm__fvec *x, uint32_t label, float weight, float *scores)
{
    const size_t stride = m->stride, n = m->n_labels;
    const float lr = (float)m->learning_rate;
    TDM_ASSERT(label < n);

    tdm__model_scores(m, x, scores);
    softmax(scores, n, 1.0);

    /* scores becomes the gradient of the loss with respect to the scores; padding columns
     * get none, so their weights stay zero. */
    float gsq = 0;
    for (size_t c = 0; c < n; c++) {
        float gc = weight * (scores[c] - (c == label ? 1.0f : 0.0f));
        scores[c] = gc;
        gsq += gc * gc;
        m->gbias[c] += gc * gc;
        m->bias[c] -= lr * gc / sqrtf(m->gbias[c]);
    }
    for (size_t c = n; c < stride; c++)
        scores[c] = 0;
    kernel_update(m->w, m->g, stride, x->index, x->value, x->n, scores, lr, gsq / (float)n);
}

/*
 * dst = base + scale * (src - base) when `first`, else dst += scale * (src - base). Working
 * on differences from the fresh value `base` keeps untouched entries exactly at it, so an
 * average of models still tells untouched feature rows apart (persist.c leaves them out).
 */
static void scale_add(float *restrict dst, const float *restrict src, size_t n, float scale,
                      float base, int first)
{
    if (first) {
        for (size_t i = 0; i < n; i++)
            dst[i] = base + scale * (src[i] - base);
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] += scale * (src[i] - base);
    }
}

void tdm__model_accumulate(tdm_model *dst, const tdm_model *src, float scale, int first)
{
    TDM_ASSERT(dst->n_rows == src->n_rows && dst->stride == src->stride);
    scale_add(dst->w, src->w, dst->n_rows * dst->stride, scale, 0.0f, first);
    scale_add(dst->g, src->g, dst->n_rows, scale, TDM__ADAGRAD_INIT, first);
    scale_add(dst->bias, src->bias, dst->stride, scale, 0.0f, first);
    scale_add(dst->gbias, src->gbias, dst->stride, scale, TDM__ADAGRAD_INIT, first);
}

/* ------------------------------------------------------------------------------------------ */
/* Per-thread scratch for predictions                                                         */
/* ------------------------------------------------------------------------------------------ */

/*
 * Predictions must not allocate per call (they run at several hundred thousand a second), and
 * a const model must be usable from many threads at once, so each thread keeps one scratch,
 * grown when a model with larger caps comes along and freed when the thread exits.
 */
typedef struct thread_scratch {
    tdm__fscratch *fs;
    size_t max_features, max_text_bytes;
    float *scores;
    size_t stride;
} thread_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_destroy(void *p)
{
    thread_scratch *ts = p;
    if (ts == NULL)
        return;
    tdm__fscratch_free(ts->fs);
    free(ts->scores);
    free(ts);
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

static thread_scratch *scratch_get(const tdm_model *m)
{
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok)
        return NULL;
    thread_scratch *ts = pthread_getspecific(scratch_key);
    if (ts == NULL) {
        ts = calloc(1, sizeof *ts);
        if (ts == NULL || pthread_setspecific(scratch_key, ts) != 0) {
            free(ts);
            return NULL;
        }
    }
    if (ts->fs == NULL || ts->max_features < m->fz.max_features ||
        ts->max_text_bytes < m->fz.max_text_bytes) {
        tdm__fscratch *fs = tdm__fscratch_new(&m->fz);
        if (fs == NULL)
            return NULL;
        tdm__fscratch_free(ts->fs);
        ts->fs = fs;
        ts->max_features = m->fz.max_features;
        ts->max_text_bytes = m->fz.max_text_bytes;
    }
    if (ts->stride < m->stride) {
        float *sc = alloc_floats(m->stride);
        if (sc == NULL)
            return NULL;
        free(ts->scores);
        ts->scores = sc;
        ts->stride = m->stride;
    }
    return ts;
}

/*
 * Featurises one item into this thread's scratch: *ts is the scratch, *x points into it and
 * stays valid until the thread's next call. Returns 0, TDM_ENOMEM or the featurizer's error.
 */
static int featurize_item(const tdm_model *m, const tdm_value *values, thread_scratch **ts,
                          tdm__fvec *x)
{
    *ts = scratch_get(m);
    if (*ts == NULL)
        return TDM_ENOMEM;
    return tdm__featurize(&m->fz, values, (*ts)->fs, x);
}

/* ------------------------------------------------------------------------------------------ */
/* Prediction                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Fills out->reasons with the features that raised label `top` most against the average. */
static int explain(const tdm_model *m, const tdm_value *values, const tdm__fvec *x, uint32_t top,
                   tdm__fscratch *fs, tdm_prediction *out)
{
    uint32_t rows[TDM_REASONS_MAX] = {0};
    double contrib[TDM_REASONS_MAX] = {0};
    size_t n = 0;
    for (size_t j = 0; j < x->n; j++) {
        const float *row = m->w + (size_t)x->index[j] * m->stride;
        double mean = 0;
        for (size_t c = 0; c < m->n_labels; c++)
            mean += row[c];
        mean /= (double)m->n_labels;
        double v = x->value[j] * (row[top] - mean);
        if (v <= 0)
            continue;
        /* Insertion into a short list kept sorted by contribution, largest first. */
        size_t at = n < TDM_REASONS_MAX ? n : TDM_REASONS_MAX;
        while (at > 0 && contrib[at - 1] < v)
            at--;
        if (at >= TDM_REASONS_MAX)
            continue;
        size_t last = n < TDM_REASONS_MAX ? n : TDM_REASONS_MAX - 1;
        for (size_t i = last; i > at; i--) {
            rows[i] = rows[i - 1];
            contrib[i] = contrib[i - 1];
        }
        rows[at] = x->index[j];
        contrib[at] = v;
        if (n < TDM_REASONS_MAX)
            n++;
    }
    char names[TDM_REASONS_MAX][TDM_FEATURE_NAME_MAX];
    /* Naming re-runs the tokenizer; it leaves x (the merged vector) alone. */
    int rc = tdm__featurize_names(&m->fz, values, fs, rows, n, names);
    if (rc != 0)
        return rc;
    out->n_reasons = n;
    for (size_t i = 0; i < n; i++) {
        memcpy(out->reasons[i].feature, names[i], TDM_FEATURE_NAME_MAX);
        if (out->reasons[i].feature[0] == '\0')
            snprintf(out->reasons[i].feature, TDM_FEATURE_NAME_MAX, "#%u", (unsigned)rows[i]);
        out->reasons[i].weight = contrib[i];
    }
    return 0;
}

int tdm_model_predict(const tdm_model *m, const tdm_value *values, size_t k, unsigned flags,
                      tdm_prediction *out)
{
    if (m == NULL || values == NULL || out == NULL || k == 0 || k > TDM_TOP_MAX)
        return TDM_EINVAL;
    out->n_top = 0;
    out->n_reasons = 0;
    if (m->n_labels == 0)
        return TDM_EINVAL;
    thread_scratch *ts;
    tdm__fvec x;
    int rc = featurize_item(m, values, &ts, &x);
    if (rc != 0)
        return rc;
    float *p = ts->scores;
    tdm__model_scores(m, &x, p);
    softmax(p, m->n_labels, m->temperature);

    if (k > m->n_labels)
        k = m->n_labels;
    for (size_t c = 0; c < m->n_labels; c++) {
        size_t at = out->n_top;
        while (at > 0 && out->top[at - 1].probability < p[c])
            at--;
        if (at >= k)
            continue;
        size_t last = out->n_top < k ? out->n_top : k - 1;
        for (size_t i = last; i > at; i--)
            out->top[i] = out->top[i - 1];
        out->top[at].label = c;
        out->top[at].probability = p[c];
        if (out->n_top < k)
            out->n_top++;
    }
    if (flags & TDM_PREDICT_REASONS)
        return explain(m, values, &x, (uint32_t)out->top[0].label, ts->fs, out);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Online learning                                                                            */
/* ------------------------------------------------------------------------------------------ */

/* Lays the weight matrix out again with room for at least `want` classes. */
static int widen(tdm_model *m, size_t want)
{
    size_t stride = round_stride(want);
    float *w = alloc_floats(m->n_rows * stride);
    float *b = alloc_floats(stride);
    float *gb = alloc_floats(stride);
    char **labels = calloc(stride, sizeof *labels);
    if (!w || !b || !gb || !labels) {
        free(w);
        free(b);
        free(gb);
        free(labels);
        return TDM_ENOMEM;
    }
    for (size_t r = 0; r < m->n_rows; r++)
        memcpy(w + r * stride, m->w + r * m->stride, m->stride * sizeof *w);
    memcpy(b, m->bias, m->stride * sizeof *b);
    memcpy(gb, m->gbias, m->stride * sizeof *gb);
    for (size_t c = m->stride; c < stride; c++)
        gb[c] = TDM__ADAGRAD_INIT;
    memcpy(labels, m->labels, m->n_labels * sizeof *labels);
    free(m->w);
    free(m->bias);
    free(m->gbias);
    free(m->labels);
    m->w = w;
    m->bias = b;
    m->gbias = gb;
    m->labels = labels;
    m->stride = stride;
    return 0;
}

int tdm__model_add_label(tdm_model *m, const char *label, uint32_t *index)
{
    char *copy = strdup(label);
    if (copy == NULL)
        return TDM_ENOMEM;
    if (m->n_labels == m->stride) {
        int rc = widen(m, m->n_labels + 1);
        if (rc != 0) {
            free(copy);
            return rc;
        }
    }
    /* A new class starts below every known one, so it is not proposed for items unlike the
     * examples that teach it, and its bias learns at the rate the others have settled to: a
     * fresh AdaGrad sum would let its first example move the bias by a whole learning-rate
     * step and spread the class's probability over every item. */
    float low = 0;
    double gsum = 0;
    for (size_t c = 0; c < m->n_labels; c++) {
        if (c == 0 || m->bias[c] < low)
            low = m->bias[c];
        gsum += m->gbias[c];
    }
    size_t c = m->n_labels;
    m->bias[c] = m->n_labels > 0 ? low - 1.0f : 0.0f;
    m->gbias[c] = m->n_labels > 0 ? (float)(gsum / (double)m->n_labels) : TDM__ADAGRAD_INIT;
    m->labels[c] = copy;
    m->n_labels++;
    *index = (uint32_t)c;
    return 0;
}

int tdm_model_update(tdm_model *m, const tdm_value *values, const char *label, double weight,
                     tdm_error *err)
{
    if (m == NULL || values == NULL || label == NULL)
        return tdm__error(err, TDM_EINVAL, "tdm_model_update: model, values and label are needed");
    if (!(weight > 0) || !isfinite(weight) || weight > 1000)
        return tdm__error(err, TDM_EINVAL, "example weight %g is out of range (0, 1000]", weight);
    if (label[0] == '\0')
        return tdm__error(err, TDM_EINVAL, "the label is empty (give the correct label)");
    uint32_t index;
    int added = 0;
    if (tdm__model_label_index(m, label, &index) != 0) {
        int rc = tdm__model_add_label(m, label, &index);
        if (rc != 0)
            return tdm__error_code(err, rc);
        added = 1;
    }
    /* After adding the label: the scratch's score buffer follows the model's stride. */
    thread_scratch *ts;
    tdm__fvec x;
    int rc = featurize_item(m, values, &ts, &x);
    if (rc != 0) {
        if (added) {
            /* Take the label back out so a failed update leaves the model as it was. */
            m->n_labels--;
            free(m->labels[m->n_labels]);
            m->labels[m->n_labels] = NULL;
            m->bias[m->n_labels] = 0;
            m->gbias[m->n_labels] = TDM__ADAGRAD_INIT;
        }
        return tdm__error_code(err, rc);
    }
    tdm__model_step(m, &x, index, (float)weight, ts->scores);
    m->online_updates++;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Inspection                                                                                 */
/* ------------------------------------------------------------------------------------------ */

size_t tdm_model_feature_rows(const tdm_model *m)
{
    return m->n_rows;
}

int tdm_model_featurize(const tdm_model *m, const tdm_value *values, uint32_t *index, float *value,
                        size_t cap, size_t *n)
{
    if (m == NULL || values == NULL || n == NULL || (cap > 0 && (index == NULL || value == NULL)))
        return TDM_EINVAL;
    thread_scratch *ts;
    tdm__fvec x;
    int rc = featurize_item(m, values, &ts, &x);
    if (rc != 0)
        return rc;
    *n = x.n;
    if (x.n > cap)
        return TDM_ETOOBIG;
    memcpy(index, x.index, x.n * sizeof *index);
    memcpy(value, x.value, x.n * sizeof *value);
    return 0;
}
