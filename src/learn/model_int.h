/*
 * model_int.h — the inside of a tdm_model, shared by model.c (prediction, learning),
 * train.c (batch fit with cross-fitting) and persist.c (the model file).
 */
#ifndef TDM_LEARN_MODEL_INT_H
#define TDM_LEARN_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "learn/featurize.h"
#include "tandem/learn.h"

/* Class columns are padded to a multiple of this, so rows stay aligned for vector loops and
 * a few labels can be added online without re-laying the matrix. */
#define TDM__CLASS_ALIGN 8

/* AdaGrad's accumulators start here instead of 0, which would make the first step of every
 * feature a full learning-rate step whatever the gradient. */
#define TDM__ADAGRAD_INIT 0.01f

struct tdm_model {
    tdm__featurizer fz;

    size_t n_labels;
    size_t stride; /* floats per weight row: n_labels rounded up to TDM__CLASS_ALIGN */
    char **labels; /* n_labels strings, each its own allocation so pointers stay valid */

    size_t n_rows; /* 1 << fz.hash_bits */
    float *w;      /* n_rows * stride weights, row-major: w[row * stride + class] */
    float *g;      /* n_rows AdaGrad sums of squared gradients, one per feature row */
    float *bias;   /* stride */
    float *gbias;  /* stride: AdaGrad sums for the bias, one per class */

    double learning_rate;
    double temperature;
    double target_error, delta;
    tdm_risk_result risk;

    uint64_t examples_seen; /* examples in batch fits, counting each epoch once */
    uint64_t online_updates;
};

/*
 * Allocates a zeroed model with `n_labels` labels (copied) over an already set-up featurizer,
 * which the model takes over (fz is left zeroed). Returns 0 or TDM_ENOMEM.
 */
int tdm__model_new(tdm__featurizer *fz, const char *const *labels, size_t n_labels,
                   double learning_rate, tdm_model **out);

/* Resets weights and AdaGrad state to a fresh model's (for refitting on other rows). */
void tdm__model_reset(tdm_model *m);

/*
 * Sets dst's weights and AdaGrad state to `scale` times src's (when `first`), or adds that
 * to them (otherwise). Both models must have the same feature rows and stride.
 */
void tdm__model_accumulate(tdm_model *dst, const tdm_model *src, float scale, int first);

/* Prefetches the weight rows of `x` into cache ahead of a step that will read them. */
void tdm__model_prefetch(const tdm_model *m, const tdm__fvec *x);

/* Raw scores (logits) of every class for a featurised item, into scores[0 .. stride). */
void tdm__model_scores(const tdm_model *m, const tdm__fvec *x, float *scores);

/* One AdaGrad step on (x, label) with importance `weight`; `scores` is scratch (stride). */
void tdm__model_step(tdm_model *m, const tdm__fvec *x, uint32_t label, float weight, float *scores);

/* Finds a label's index. Returns 0 and sets *index, or TDM_ENOTFOUND. */
int tdm__model_label_index(const tdm_model *m, const char *label, uint32_t *index);

/* Adds a label (weights zero, bias below every existing one). Returns 0 or TDM_ENOMEM. */
int tdm__model_add_label(tdm_model *m, const char *label, uint32_t *index);

#endif /* TDM_LEARN_MODEL_INT_H */
