/*
 * featurize.h — turns an item's field values into a sparse, hashed, L2-normalised vector.
 *
 * Private to libtandem. A featurizer is part of a model: it is fitted on the training table
 * (numeric fields learn their quantile bins and scale there), saved with the model and used
 * unchanged for every prediction and online update afterwards, so a value always maps to
 * the same features.
 */
#ifndef TDM_LEARN_FEATURIZE_H
#define TDM_LEARN_FEATURIZE_H

#include <stddef.h>
#include <stdint.h>

#include "tandem/learn.h"

/* Most quantile edges a numeric field learns (so at most this + 1 bins). */
#define TDM__NUMERIC_EDGES_MAX 15

typedef struct tdm__field {
    char *name;
    tdm_field_kind kind;
    uint64_t seed; /* hash seed derived from the name, so equal tokens in two fields differ */
    /* Numeric fields only. */
    uint32_t n_edges;
    double edges[TDM__NUMERIC_EDGES_MAX];
    double center; /* median of the training values */
    double scale;  /* robust spread (IQR / 1.349, else standard deviation, else 1) */
} tdm__field;

typedef struct tdm__featurizer {
    unsigned hash_bits;    /* the feature table has 1 << hash_bits rows */
    uint32_t mask;         /* (1 << hash_bits) - 1 */
    size_t max_text_bytes; /* bytes of a text value that are read */
    size_t max_features;   /* raw features generated per item, before merging duplicates */
    size_t n_fields;
    tdm__field *fields;
} tdm__featurizer;

/*
 * A sparse vector: parallel arrays of feature rows and weights. The first n_text entries
 * come from text fields (many, redundant n-grams: training may drop some at random); the
 * rest from structured fields (few, each one informative: never dropped).
 */
typedef struct tdm__fvec {
    uint32_t *index;
    float *value;
    size_t n;
    size_t n_text;
} tdm__fvec;

/*
 * Working memory for featurising one item at a time. One scratch per thread; it grows to fit
 * the featurizer's caps once and is then reused without allocating.
 */
typedef struct tdm__fscratch tdm__fscratch;

/*
 * Sets up `fz` for `n_fields` fields (names are copied) and the caps and table size in
 * `opts`; numeric fields start with no bins until tdm__featurizer_fit_numeric().
 * Returns 0 or TDM_ENOMEM / TDM_EINVAL. Release with tdm__featurizer_release().
 */
int tdm__featurizer_init(tdm__featurizer *fz, const tdm_field_spec *fields, size_t n_fields,
                         unsigned hash_bits, size_t max_text_bytes, size_t max_features);
void tdm__featurizer_release(tdm__featurizer *fz);

/* Learns field `f`'s quantile edges, center and scale from `n` finite values (sorted here). */
int tdm__featurizer_fit_numeric(tdm__featurizer *fz, size_t f, double *values, size_t n);

/* Parses a numeric cell ("  12.5 ") into a finite double. Returns 0, or -1 if it is not one. */
int tdm__parse_number(const char *data, size_t len, double *out);

tdm__fscratch *tdm__fscratch_new(const tdm__featurizer *fz);
void tdm__fscratch_free(tdm__fscratch *s);

/*
 * Featurises one item. `values` holds fz->n_fields values in field order. The result points
 * into the scratch and stays valid until its next use. Feature rows are distinct; the vector
 * has unit L2 norm (or is empty when the item has no usable value).
 * Returns 0 or TDM_ENOMEM.
 */
int tdm__featurize(const tdm__featurizer *fz, const tdm_value *values, tdm__fscratch *s,
                   tdm__fvec *out);

/*
 * Names features for explanations: regenerates the item's tokens and, for every row in
 * `rows` (n_rows of them), writes the first token that hashes there into names[i]
 * (TDM_FEATURE_NAME_MAX bytes each, "" when none does).
 */
int tdm__featurize_names(const tdm__featurizer *fz, const tdm_value *values, tdm__fscratch *s,
                         const uint32_t *rows, size_t n_rows, char (*names)[TDM_FEATURE_NAME_MAX]);

#endif /* TDM_LEARN_FEATURIZE_H */
