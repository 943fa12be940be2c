/*
 * learn.h — tandem's learning core: labelled tables, the online classifier, calibration and
 * guaranteed-risk thresholds.
 *
 * The pieces, in the order data flows through them:
 *
 *   tdm_table        rows read from CSV (RFC 4180, header row) or JSON Lines.
 *   tdm_field_spec   which columns feed the model and how (text, categorical, numeric).
 *   tdm_model        hashed features -> multinomial logistic regression trained with AdaGrad,
 *                    temperature-calibrated, learning online from single examples.
 *   tdm_risk_*       the confidence threshold above which the model's error is certified to
 *                    stay under a target (Clopper-Pearson bound, fixed-sequence testing).
 *
 * docs/learning.md explains the choices and their reasons.
 */
#ifndef TANDEM_LEARN_H
#define TANDEM_LEARN_H

#include "tandem/tandem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Tables                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct tdm_table tdm_table;

typedef enum tdm_table_format {
    TDM_FORMAT_AUTO = 0, /* by file extension (.csv, .jsonl, .ndjson), else by first byte */
    TDM_FORMAT_CSV = 1,
    TDM_FORMAT_JSONL = 2,
} tdm_table_format;

/* Caps that keep a hostile or mistaken input from growing memory without bound. */
typedef struct tdm_table_limits {
    size_t max_bytes;        /* whole input; default 1 GiB */
    size_t max_record_bytes; /* one CSV record or JSON line; default 16 MiB */
    size_t max_columns;      /* default 4096 */
    size_t max_rows;         /* default 100,000,000 */
} tdm_table_limits;

/* Fills `limits` with the defaults above. */
void tdm_table_limits_init(tdm_table_limits *limits);

/*
 * Reads a whole table from `path`. CSV needs a header row; every record must have as many
 * fields as the header. JSON Lines needs one object per non-blank line; the columns are the
 * union of the keys, in order of first appearance, and a key missing from a line (or null)
 * is a missing cell. Numbers and booleans keep their JSON text; nested arrays and objects are
 * kept as compact JSON text. A UTF-8 byte-order mark is skipped.
 *
 * `limits` may be NULL for the defaults. On success *out is a new table you own; free it with
 * tdm_table_free(). On failure *out is NULL and `err` names the file, line and problem:
 * TDM_EIO (cannot read), TDM_EPARSE (malformed record), TDM_ETOOBIG (a limit was exceeded),
 * TDM_ENOMEM.
 */
int tdm_table_read_file(const char *path, tdm_table_format format, const tdm_table_limits *limits,
                        tdm_table **out, tdm_error *err);

/*
 * Same as tdm_table_read_file() on a buffer already in memory (an HTTP body, say). `name`
 * is used in messages in place of a file name. The buffer is copied; the caller keeps it.
 * TDM_FORMAT_AUTO looks at the first non-blank byte: '{' means JSON Lines, else CSV.
 */
int tdm_table_read_buffer(const char *data, size_t len, tdm_table_format format, const char *name,
                          const tdm_table_limits *limits, tdm_table **out, tdm_error *err);

/* Frees a table and every string it handed out. NULL is ignored. */
void tdm_table_free(tdm_table *table);

size_t tdm_table_row_count(const tdm_table *table);
size_t tdm_table_column_count(const tdm_table *table);

/* The column's name; owned by the table. */
const char *tdm_table_column_name(const tdm_table *table, size_t col);

/* Finds a column by exact name. Returns 0 and sets *col, or TDM_ENOTFOUND. */
int tdm_table_column_index(const tdm_table *table, const char *name, size_t *col);

/*
 * The cell at (row, col): a pointer owned by the table, NUL-terminated, with its length in
 * *len when `len` is not NULL. Returns NULL for a missing cell (a JSON key absent or null);
 * an empty CSV field is "" with length 0.
 */
const char *tdm_table_cell(const tdm_table *table, size_t row, size_t col, size_t *len);

/* The 1-based line on which a row starts in its input, for messages. */
size_t tdm_table_row_line(const tdm_table *table, size_t row);

/*
 * 1 when column `col` holds at least one value and every value it holds (missing and empty
 * cells aside) is a number as JSON writes one, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?;
 * else 0. `tandem submit` and `tandem simulate` send such a column's values as JSON numbers.
 */
int tdm_table_column_is_json_number(const tdm_table *table, size_t col);

/* The file name (or buffer name) the table was read from; owned by the table. */
const char *tdm_table_name(const tdm_table *table);

/*
 * Makes a new table with the same columns holding copies of rows[0 .. n) of `table`, in that
 * order (a row may repeat). Row lines are kept, so messages still point into the original
 * input. On success *out is yours to free with tdm_table_free(). Returns 0, TDM_EINVAL (a row
 * out of range) or TDM_ENOMEM.
 */
int tdm_table_select(const tdm_table *table, const size_t *rows, size_t n, tdm_table **out);

/*
 * Splits a table in two, stratified by the column `label_column`: of each label's rows, a
 * seeded random share `fraction` (rounded, but at least one when the label has two or more
 * rows) goes to *test and the rest to *train. Rows without a label go to *train. The same
 * seed always gives the same split. On success both tables are yours to free. Returns 0,
 * TDM_ENOTFOUND (no such column; the message names it), TDM_EINVAL (fraction outside
 * (0, 1)) or TDM_ENOMEM.
 */
int tdm_table_split(const tdm_table *table, const char *label_column, double fraction,
                    uint64_t seed, tdm_table **train, tdm_table **test, tdm_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Fields                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef enum tdm_field_kind {
    TDM_FIELD_TEXT = 1,        /* free text: word 1-2-grams and character 2-5-grams */
    TDM_FIELD_CATEGORICAL = 2, /* one token per distinct value: field=value */
    TDM_FIELD_NUMERIC = 3,     /* learned quantile bins plus a scaled value */
} tdm_field_kind;

/* "text", "categorical" or "numeric"; "unknown" for anything else. */
const char *tdm_field_kind_name(tdm_field_kind kind);

/* Parses a kind name as printed by tdm_field_kind_name(). Returns 0 or TDM_EINVAL. */
int tdm_field_kind_parse(const char *name, tdm_field_kind *kind);

/*
 * Guesses how a column should be used: numeric when every present, non-empty value is a
 * finite number; text when values read as prose (most contain spaces and few repeat, or
 * they are long); categorical otherwise.
 */
tdm_field_kind tdm_table_infer_kind(const tdm_table *table, size_t col);

/* One input field of a model. */
typedef struct tdm_field_spec {
    const char *name;
    tdm_field_kind kind;
} tdm_field_spec;

/* A field value handed to the model: `data` NULL means missing. Need not be NUL-terminated. */
typedef struct tdm_value {
    const char *data;
    size_t len;
} tdm_value;

/* ------------------------------------------------------------------------------------------ */
/* Guaranteed-risk thresholds and calibration                                                 */
/* ------------------------------------------------------------------------------------------ */

/*
 * One-sided Clopper-Pearson upper confidence bound on an error rate: the p such that
 * P(Binomial(n, p) <= errors) = delta. With probability at least 1 - delta the true error
 * rate is at or below it. Returns 1.0 when n == 0 and NaN for errors > n or delta outside
 * (0, 1).
 */
double tdm_binomial_upper_bound(uint64_t errors, uint64_t n, double delta);

/*
 * The fewest error-free items that certify `alpha` at `delta`: ceil(ln delta / ln(1 - alpha)),
 * 299 for alpha = 0.01 and delta = 0.05. Returns 0 for arguments outside (0, 1).
 */
uint64_t tdm_risk_min_items(double alpha, double delta);

/*
 * Where the fixed sequence of tdm_risk_threshold() starts when there is enough data: the
 * fewest items on which an observed error rate of alpha / 2 would already certify alpha
 * (1,146 for alpha = 0.01 and delta = 0.05). Starting there, a few confidently wrong items
 * near the top cannot stop the sequence before it has begun (docs/learning.md). Returns 0
 * for arguments outside (0, 1).
 */
uint64_t tdm_risk_start_items(double alpha, double delta);

typedef struct tdm_risk_result {
    int found;          /* 1 when a threshold was certified, else 0 */
    double threshold;   /* lowest certified confidence threshold; INFINITY when !found */
    size_t n_above;     /* items with confidence >= threshold */
    size_t errors;      /* errors among them */
    double error_bound; /* Clopper-Pearson upper bound on their error rate */
    size_t n_tested;    /* thresholds tested, including the one that failed */
} tdm_risk_result;

/*
 * Chooses the lowest confidence threshold t such that the Clopper-Pearson upper bound on the
 * error of items with confidence >= t stays <= alpha, testing the distinct confidence values
 * from high to low as a fixed sequence and stopping at the first failure (Learn then Test,
 * fixed-sequence form). The sequence starts at the highest value with at least
 * tdm_risk_start_items(alpha, delta) items at or above it, or, when there are fewer items
 * than that in all, tdm_risk_min_items(alpha, delta); with fewer items than the latter
 * nothing can be certified and out->found is 0. correct[i] is 1 when item i was right.
 * Returns 0, TDM_EINVAL for bad arguments, or TDM_ENOMEM.
 */
int tdm_risk_threshold(const double *confidence, const unsigned char *correct, size_t n,
                       double alpha, double delta, tdm_risk_result *out);

/*
 * tdm_risk_threshold() for weighted items, such as audit samples drawn at a rate r and so
 * weighing 1/r. At each candidate threshold the items above it count as n_eff = (sum w)^2 /
 * sum w^2 items (Kish's effective sample size) with an error rate of sum w*wrong / sum w,
 * and the Clopper-Pearson bound is taken at that real-valued count. With every weight 1 this
 * is exactly tdm_risk_threshold(). out->n_above and out->errors count items, unweighted.
 * Weights must be finite and > 0 (else TDM_EINVAL).
 */
int tdm_risk_threshold_weighted(const double *confidence, const unsigned char *correct,
                                const double *weight, size_t n, double alpha, double delta,
                                tdm_risk_result *out);

/*
 * The Clopper-Pearson lower bound on an error rate: with probability 1 - delta the true rate
 * is at or above it (0 when errors == 0). Used to tell when audited errors prove a step's
 * autonomous decisions worse than their budget.
 */
double tdm_binomial_lower_bound(uint64_t errors, uint64_t n, double delta);

/*
 * Fits a temperature T > 0 minimising the negative log-likelihood of softmax(logits / T)
 * on held-out scores. logits is n rows of `n_classes` values, row i starting at
 * logits[i * stride]; labels[i] is the true class of row i. Returns 0, TDM_EINVAL or
 * TDM_ENODATA (n == 0).
 */
int tdm_calibrate_temperature(const float *logits, size_t n, size_t n_classes, size_t stride,
                              const uint32_t *labels, double *temperature);

/*
 * Expected calibration error over `bins` equal-width confidence bins (15 is customary):
 * the share-weighted mean of |accuracy - mean confidence| per bin. Returns 0 for n == 0.
 */
double tdm_expected_calibration_error(const double *confidence, const unsigned char *correct,
                                      size_t n, unsigned bins);

/* ------------------------------------------------------------------------------------------ */
/* Models                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct tdm_model tdm_model;

typedef struct tdm_train_opts {
    unsigned hash_bits;    /* feature table of 2^hash_bits rows, 8..26; default 0: sized from
                              the label count to at most 128 MiB of weights (2^18 rows for
                              77 labels, 2^20 for two), within 2^16 .. 2^20 */
    unsigned epochs;       /* shuffled passes in a batch fit; default 20 */
    double learning_rate;  /* AdaGrad base step; default 0.5 */
    double dropout;        /* share of an example's features hidden at random at each step
                              of a batch fit, [0, 0.95]; default 0.8 */
    unsigned folds;        /* cross-fitting folds for calibration and threshold; default 5;
                              0 or 1 fits on everything and leaves the model uncalibrated */
    uint64_t seed;         /* shuffling and fold assignment; default 1 */
    size_t max_text_bytes; /* bytes of each text field that are read; default 4096 */
    size_t max_features;   /* features generated per item; default 4096 */
    double target_error;   /* alpha for the certified threshold; default 0.01 */
    double delta;          /* failure probability of the certificate; default 0.05 */
    int keep_scores;       /* fill the report's out-of-fold scores (see tdm_train_report) */
    /* Asked before each pass over the rows (about 120 times in a default fit); a nonzero
     * answer stops the fit, which then fails with TDM_EBUSY. NULL: never stop. Called on the
     * fitting thread. */
    int (*should_stop)(void *arg);
    void *stop_arg;
} tdm_train_opts;

/* Fills `opts` with the defaults above. */
void tdm_train_opts_init(tdm_train_opts *opts);

/* What a batch fit measured on the way (all from cross-fitted, out-of-fold scores). */
typedef struct tdm_train_report {
    size_t n_train;       /* rows trained on */
    size_t n_classes;     /* distinct labels */
    double temperature;   /* fitted calibration temperature (1 when folds < 2) */
    double oof_accuracy;  /* accuracy of the out-of-fold predictions */
    double oof_ece;       /* their expected calibration error, 15 bins */
    tdm_risk_result risk; /* certified threshold at opts->target_error, opts->delta */
    double seconds;       /* wall-clock time of the whole fit */
    /* With opts->keep_scores: for each labelled row (n_scores rows, in table order), the
     * calibrated out-of-fold confidence, whether the top label was right, and the top label
     * (an index for tdm_model_label()). Free them with tdm_train_report_release(). NULL
     * otherwise. */
    size_t n_scores;
    double *oof_confidence;
    unsigned char *oof_correct;
    uint32_t *oof_label;
} tdm_train_report;

/* Frees what a report holds (its score arrays); the struct itself is the caller's. */
void tdm_train_report_release(tdm_train_report *report);

/*
 * Trains a model on every row of `data`: `label_column` holds the class, `fields` the inputs
 * (each must name a column of the table). With opts->folds = K >= 2 (and at least 2K labelled
 * rows) it cross-fits: K models each trained on K-1 folds score the fold they did not see;
 * those scores fit the temperature and choose the certified threshold, which are stored in
 * the model, and the model returned is the average of the K fold models. Otherwise it is
 * fitted once on all rows, uncalibrated and with no certified threshold.
 *
 * On success *out is a new model you own (free with tdm_model_free()) and `report`, when not
 * NULL, is filled. Errors: TDM_ENOTFOUND (a column is missing; the message names it),
 * TDM_ENODATA (no labelled rows), TDM_EINVAL (bad options), TDM_ENOMEM.
 */
int tdm_model_train(const tdm_table *data, const char *label_column, const tdm_field_spec *fields,
                    size_t n_fields, const tdm_train_opts *opts, tdm_model **out,
                    tdm_train_report *report, tdm_error *err);

/*
 * Makes an untrained model over `fields`, with no labels yet: tdm_model_update() adds them as
 * it meets them, so a step can start learning from its first human answers. It is
 * uncalibrated (temperature 1) and has no certified threshold. Uses opts's table size (2^16
 * rows when 0), caps and learning rate; NULL for the defaults. Returns 0, TDM_EINVAL or
 * TDM_ENOMEM.
 */
int tdm_model_new(const tdm_field_spec *fields, size_t n_fields, const tdm_train_opts *opts,
                  tdm_model **out);

/* Frees a model. NULL is ignored. */
void tdm_model_free(tdm_model *model);

/* The model's input fields, in the order tdm_model_predict() expects their values. */
size_t tdm_model_field_count(const tdm_model *model);
const char *tdm_model_field_name(const tdm_model *model, size_t field);
tdm_field_kind tdm_model_field_kind(const tdm_model *model, size_t field);

/* The labels the model knows; owned by the model and valid until it is freed. */
size_t tdm_model_label_count(const tdm_model *model);
const char *tdm_model_label(const tdm_model *model, size_t label);

/* Calibration temperature, and the threshold certified when the model was trained. */
double tdm_model_temperature(const tdm_model *model);
const tdm_risk_result *tdm_model_risk(const tdm_model *model, double *target_error, double *delta);

/* Examples the model has learned from: in its batch fit, and online since. */
uint64_t tdm_model_examples_seen(const tdm_model *model, uint64_t *online_updates);

/* Bytes of memory the model holds (weights, AdaGrad state and tables). */
size_t tdm_model_memory_bytes(const tdm_model *model);

#define TDM_TOP_MAX          8
#define TDM_REASONS_MAX      8
#define TDM_FEATURE_NAME_MAX 72

/* A prediction: the top labels with calibrated probabilities, and optionally why. */
typedef struct tdm_prediction {
    size_t n_top;
    struct {
        size_t label;       /* index for tdm_model_label() */
        double probability; /* calibrated */
    } top[TDM_TOP_MAX];
    size_t n_reasons;
    struct {
        char feature[TDM_FEATURE_NAME_MAX]; /* e.g. text:"lost card", text:~"card" */
        double weight; /* how much it raised the top label's score against the average */
    } reasons[TDM_REASONS_MAX];
} tdm_prediction;

#define TDM_PREDICT_REASONS 0x1u /* also fill out->reasons (slower) */

/*
 * Predicts the `k` most likely labels (1 <= k <= TDM_TOP_MAX) for one item. `values` holds
 * tdm_model_field_count() values in field order. Safe to call from several threads at once
 * on a model nobody is updating. Returns 0, TDM_EINVAL or TDM_ENOMEM.
 */
int tdm_model_predict(const tdm_model *model, const tdm_value *values, size_t k, unsigned flags,
                      tdm_prediction *out);

/*
 * The hashed, weighted features the model sees for one item: at most `cap` (row, weight)
 * pairs written to index[] and value[], their number in *n (rows are distinct; the vector
 * has unit norm). For inspection and for feeding the same features to other learners.
 * Returns 0, TDM_EINVAL, TDM_ETOOBIG (more than `cap` features; *n says how many) or
 * TDM_ENOMEM.
 */
int tdm_model_featurize(const tdm_model *model, const tdm_value *values, uint32_t *index,
                        float *value, size_t cap, size_t *n);

/* Rows in the model's feature table (1 << hash bits). */
size_t tdm_model_feature_rows(const tdm_model *model);

/*
 * Learns from one labelled example at once (a reviewer's answer): one AdaGrad step with
 * importance `weight` (1 for an ordinary example). A label the model has never seen is added
 * to it. Not safe concurrently with other calls on the same model. Returns 0, TDM_EINVAL or
 * TDM_ENOMEM (the model is unchanged then).
 */
int tdm_model_update(tdm_model *model, const tdm_value *values, const char *label, double weight,
                     tdm_error *err);

/*
 * Serialises a model into a versioned, checksummed, little-endian byte string (see
 * docs/learning.md, "Model file"). On success *buf is yours to tdm_free().
 */
int tdm_model_serialize(const tdm_model *model, unsigned char **buf, size_t *len);

/*
 * Rebuilds a model from tdm_model_serialize() output. A buffer that is not a tandem model,
 * is truncated or fails its checksum is TDM_ECORRUPT; a newer format is TDM_EVERSION.
 * `name` is used in messages. On success *out is a new model you own.
 */
int tdm_model_deserialize(const unsigned char *buf, size_t len, const char *name, tdm_model **out,
                          tdm_error *err);

/* Writes / reads a model file (the serialised form). Errors as above, plus TDM_EIO. */
int tdm_model_save(const tdm_model *model, const char *path, tdm_error *err);
int tdm_model_load(const char *path, tdm_model **out, tdm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_LEARN_H */
