/*
 * eval.c — `tandem eval`: train on labelled data, predict a held-out set and report accuracy,
 * macro-F1, calibration, and the coverage and error at the certified threshold.
 */
#define _GNU_SOURCE

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "tandem/learn.h"

static const char eval_usage[] =
    "usage: tandem eval --train FILE (--test FILE | --test-fraction F) --label COL\n"
    "                   [--text COL]... [--fields COL[:KIND],...] [options]\n"
    "\n"
    "Trains tandem's classifier on FILE (CSV with a header row, or JSON Lines), predicts the\n"
    "test items and reports how well it did, including the confidence threshold above which\n"
    "its error is certified to stay under --target-error, and the share of test items the AI\n"
    "could have decided alone at that threshold.\n"
    "\n"
    "data:\n"
    "  --train FILE          labelled training data (.csv, .jsonl)\n"
    "  --test FILE           labelled test data with the same columns\n"
    "  --test-fraction F     without --test: hold out a stratified share F of --train\n"
    "  --label COL           the column holding the class\n"
    "  --text COL            a free-text input column (repeatable)\n"
    "  --fields LIST         comma-separated input columns, each optionally COL:KIND with\n"
    "                        KIND text, categorical or numeric (typed automatically if not)\n"
    "                        Without --text and --fields every column but the label is used.\n"
    "\n"
    "guarantee:\n"
    "  --target-error A      error allowed on decisions above the threshold (default 0.01)\n"
    "  --delta D             probability that the certificate is wrong (default 0.05)\n"
    "\n"
    "training:\n"
    "  --seed N              shuffling, folds and split (default 1)\n"
    "  --epochs N            passes over the data (default 20)\n"
    "  --learning-rate R     AdaGrad step (default 0.5)\n"
    "  --dropout P           share of features hidden at each training step (default 0.8)\n"
    "  --folds K             cross-fitting folds for calibration and threshold (default 5)\n"
    "  --hash-bits B         feature table of 2^B rows, 8 to 26 (default: sized from the\n"
    "                        number of labels, 2^16 to 2^20)\n"
    "\n"
    "output:\n"
    "  --json                print one JSON object (keys: accuracy, macro_f1, ece,\n"
    "                        target_error, delta, threshold, coverage, selective_error,\n"
    "                        n_train, n_test, n_classes, train_seconds, predict_per_second,\n"
    "                        model_bytes)\n"
    "  --save-model PATH     write the trained model file\n"
    "  --dump-features PFX   write the hashed features of train and test rows in LIBSVM\n"
    "                        format to PFX.train.svm and PFX.test.svm (for other learners)\n"
    "  --predictions PATH    write one line per test item: true label, predicted label,\n"
    "                        calibrated confidence (tab-separated)\n"
    "  -h, --help            show this help\n";

typedef struct eval_args {
    const char *train, *test, *label, *save_model, *dump_features, *predictions;
    double test_fraction;
    const char **text;
    size_t n_text;
    const char *fields;
    int json;
    tdm_train_opts opts;
} eval_args;

/* A field list being built from --text and --fields. */
typedef struct field_list {
    tdm_field_spec *spec;
    size_t n, cap;
    char **owned; /* names split out of --fields */
    size_t n_owned;
} field_list;

static int field_list_add(field_list *fl, const char *name, tdm_field_kind kind)
{
    for (size_t i = 0; i < fl->n; i++) {
        if (strcmp(fl->spec[i].name, name) == 0) {
            cli_error("column \"%s\" is named twice in --text/--fields", name);
            return -1;
        }
    }
    if (fl->n == fl->cap) {
        size_t cap = fl->cap ? fl->cap * 2 : 8;
        tdm_field_spec *s = realloc(fl->spec, cap * sizeof *s);
        if (s == NULL)
            return -1;
        fl->spec = s;
        fl->cap = cap;
    }
    fl->spec[fl->n++] = (tdm_field_spec){name, kind};
    return 0;
}

static void field_list_release(field_list *fl)
{
    for (size_t i = 0; i < fl->n_owned; i++)
        free(fl->owned[i]);
    free(fl->owned);
    free(fl->spec);
}

/*
 * Builds the model's input fields from the command line, or from every other column.
 * Returns 0, CLI_EXIT_USAGE (a malformed --fields) or CLI_EXIT_FAIL (the data lacks a
 * column, or memory ran out).
 */
static int resolve_fields(const eval_args *a, const tdm_table *train, field_list *fl)
{
    memset(fl, 0, sizeof *fl);
    for (size_t i = 0; i < a->n_text; i++)
        if (field_list_add(fl, a->text[i], TDM_FIELD_TEXT) != 0)
            return CLI_EXIT_FAIL;
    if (a->fields != NULL) {
        char *list = strdup(a->fields);
        if (list == NULL)
            return CLI_EXIT_FAIL;
        size_t cap = 1;
        for (const char *p = list; *p; p++)
            cap += *p == ',';
        fl->owned = calloc(cap, sizeof *fl->owned);
        if (fl->owned == NULL) {
            free(list);
            return CLI_EXIT_FAIL;
        }
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *name = strdup(tok);
            if (name == NULL) {
                free(list);
                return CLI_EXIT_FAIL;
            }
            fl->owned[fl->n_owned++] = name;
            char *colon = strrchr(name, ':');
            tdm_field_kind kind = 0;
            if (colon != NULL && tdm_field_kind_parse(colon + 1, &kind) == 0) {
                *colon = '\0';
            } else if (colon != NULL && tdm_table_column_index(train, name, &(size_t){0}) != 0) {
                cli_error("--fields: unknown kind \"%s\" for column \"%.*s\" (expected text, "
                          "categorical or numeric)",
                          colon + 1, (int)(colon - name), name);
                free(list);
                return CLI_EXIT_USAGE;
            }
            size_t col;
            if (tdm_table_column_index(train, name, &col) != 0) {
                cli_error("--fields: %s has no column \"%s\"", tdm_table_name(train), name);
                free(list);
                return CLI_EXIT_FAIL;
            }
            if (kind == 0)
                kind = tdm_table_infer_kind(train, col);
            if (field_list_add(fl, name, kind) != 0) {
                free(list);
                return CLI_EXIT_FAIL;
            }
        }
        free(list);
    }
    if (fl->n == 0) {
        for (size_t c = 0; c < tdm_table_column_count(train); c++) {
            const char *name = tdm_table_column_name(train, c);
            if (strcmp(name, a->label) == 0)
                continue;
            if (field_list_add(fl, name, tdm_table_infer_kind(train, c)) != 0)
                return CLI_EXIT_FAIL;
        }
    }
    if (fl->n == 0) {
        cli_error("%s: no input columns besides the label \"%s\"", tdm_table_name(train), a->label);
        return CLI_EXIT_FAIL;
    }
    return 0;
}

static int parse_args(int argc, char **argv, eval_args *a)
{
    enum {
        O_TRAIN = 256,
        O_TEST,
        O_FRACTION,
        O_LABEL,
        O_TEXT,
        O_FIELDS,
        O_TARGET,
        O_DELTA,
        O_SEED,
        O_EPOCHS,
        O_LR,
        O_FOLDS,
        O_BITS,
        O_JSON,
        O_SAVE,
        O_DUMP,
        O_PRED,
        O_DROPOUT
    };
    static const struct option longopts[] = {
        {"train", required_argument, NULL, O_TRAIN},
        {"test", required_argument, NULL, O_TEST},
        {"test-fraction", required_argument, NULL, O_FRACTION},
        {"label", required_argument, NULL, O_LABEL},
        {"text", required_argument, NULL, O_TEXT},
        {"fields", required_argument, NULL, O_FIELDS},
        {"target-error", required_argument, NULL, O_TARGET},
        {"delta", required_argument, NULL, O_DELTA},
        {"seed", required_argument, NULL, O_SEED},
        {"epochs", required_argument, NULL, O_EPOCHS},
        {"learning-rate", required_argument, NULL, O_LR},
        {"dropout", required_argument, NULL, O_DROPOUT},
        {"folds", required_argument, NULL, O_FOLDS},
        {"hash-bits", required_argument, NULL, O_BITS},
        {"json", no_argument, NULL, O_JSON},
        {"save-model", required_argument, NULL, O_SAVE},
        {"dump-features", required_argument, NULL, O_DUMP},
        {"predictions", required_argument, NULL, O_PRED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    tdm_train_opts_init(&a->opts);
    a->text = calloc((size_t)argc, sizeof *a->text);
    if (a->text == NULL)
        return CLI_EXIT_FAIL;
    uint64_t u;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_TRAIN:
            a->train = optarg;
            break;
        case O_TEST:
            a->test = optarg;
            break;
        case O_FRACTION:
            if (cli_parse_double("--test-fraction", optarg, 1e-9, 1 - 1e-9, &a->test_fraction))
                return CLI_EXIT_USAGE;
            break;
        case O_LABEL:
            a->label = optarg;
            break;
        case O_TEXT:
            a->text[a->n_text++] = optarg;
            break;
        case O_FIELDS:
            a->fields = optarg;
            break;
        case O_TARGET:
            if (cli_parse_double("--target-error", optarg, 1e-9, 1 - 1e-9, &a->opts.target_error))
                return CLI_EXIT_USAGE;
            break;
        case O_DELTA:
            if (cli_parse_double("--delta", optarg, 1e-9, 1 - 1e-9, &a->opts.delta))
                return CLI_EXIT_USAGE;
            break;
        case O_SEED:
            if (cli_parse_u64("--seed", optarg, 0, UINT64_MAX, &a->opts.seed))
                return CLI_EXIT_USAGE;
            break;
        case O_EPOCHS:
            if (cli_parse_u64("--epochs", optarg, 1, 1000, &u))
                return CLI_EXIT_USAGE;
            a->opts.epochs = (unsigned)u;
            break;
        case O_LR:
            if (cli_parse_double("--learning-rate", optarg, 1e-6, 100, &a->opts.learning_rate))
                return CLI_EXIT_USAGE;
            break;
        case O_DROPOUT:
            if (cli_parse_double("--dropout", optarg, 0, 0.95, &a->opts.dropout))
                return CLI_EXIT_USAGE;
            break;
        case O_FOLDS:
            if (cli_parse_u64("--folds", optarg, 0, 100, &u))
                return CLI_EXIT_USAGE;
            a->opts.folds = (unsigned)u;
            break;
        case O_BITS:
            if (cli_parse_u64("--hash-bits", optarg, 8, 26, &u))
                return CLI_EXIT_USAGE;
            a->opts.hash_bits = (unsigned)u;
            break;
        case O_JSON:
            a->json = 1;
            break;
        case O_SAVE:
            a->save_model = optarg;
            break;
        case O_DUMP:
            a->dump_features = optarg;
            break;
        case O_PRED:
            a->predictions = optarg;
            break;
        case 'h':
            fputs(eval_usage, stdout);
            return -1;
        case ':':
            cli_error("eval: option %s needs a value (see tandem eval --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        default:
            cli_error("eval: unknown option %s (see tandem eval --help)", argv[optind - 1]);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("eval: unexpected argument \"%s\" (see tandem eval --help)", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (a->train == NULL || a->label == NULL) {
        cli_error("eval: --train and --label are required (see tandem eval --help)");
        return CLI_EXIT_USAGE;
    }
    if ((a->test == NULL) == (a->test_fraction == 0)) {
        cli_error("eval: give either --test FILE or --test-fraction F");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Test rows as values in model field order, and their true labels. */
typedef struct test_set {
    size_t n;
    tdm_value *values; /* n * n_fields */
    const char **truth;
    long *truth_index; /* model label index, or -1 for a label the model never saw */
} test_set;

typedef struct label_ref {
    const char *name;
    size_t index;
} label_ref;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const label_ref *)a)->name, ((const label_ref *)b)->name);
}

static int build_test_set(const tdm_model *m, const tdm_table *t, const char *label, test_set *ts)
{
    memset(ts, 0, sizeof *ts);
    size_t nf = tdm_model_field_count(m), label_col;
    if (tdm_table_column_index(t, label, &label_col) != 0) {
        cli_error("%s: no column named \"%s\" for the label", tdm_table_name(t), label);
        return -1;
    }
    size_t *cols = malloc(nf * sizeof *cols);
    if (cols == NULL)
        return -1;
    for (size_t f = 0; f < nf; f++) {
        if (tdm_table_column_index(t, tdm_model_field_name(m, f), &cols[f]) != 0) {
            cli_error("%s: no column named \"%s\" (the model reads it)", tdm_table_name(t),
                      tdm_model_field_name(m, f));
            free(cols);
            return -1;
        }
    }
    size_t nl = tdm_model_label_count(m), rows = tdm_table_row_count(t);
    label_ref *refs = malloc((nl ? nl : 1) * sizeof *refs);
    ts->values = malloc((rows * nf + 1) * sizeof *ts->values);
    ts->truth = malloc((rows ? rows : 1) * sizeof *ts->truth);
    ts->truth_index = malloc((rows ? rows : 1) * sizeof *ts->truth_index);
    if (refs == NULL || ts->values == NULL || ts->truth == NULL || ts->truth_index == NULL) {
        free(cols);
        free(refs);
        return -1;
    }
    for (size_t i = 0; i < nl; i++)
        refs[i] = (label_ref){tdm_model_label(m, i), i};
    qsort(refs, nl, sizeof *refs, by_name);
    for (size_t r = 0; r < rows; r++) {
        size_t len;
        const char *truth = tdm_table_cell(t, r, label_col, &len);
        if (truth == NULL || len == 0)
            continue; /* unlabelled rows cannot be scored */
        for (size_t f = 0; f < nf; f++)
            ts->values[ts->n * nf + f].data =
                tdm_table_cell(t, r, cols[f], &ts->values[ts->n * nf + f].len);
        label_ref key = {truth, 0};
        label_ref *hit = bsearch(&key, refs, nl, sizeof *refs, by_name);
        ts->truth[ts->n] = truth;
        ts->truth_index[ts->n] = hit ? (long)hit->index : -1;
        ts->n++;
    }
    free(cols);
    free(refs);
    if (ts->n == 0) {
        cli_error("%s: no row has a value in the label column \"%s\"", tdm_table_name(t), label);
        return -1;
    }
    return 0;
}

static void test_set_release(test_set *ts)
{
    free(ts->values);
    free(ts->truth);
    free(ts->truth_index);
}

/* Macro-F1 over every class that occurs as a truth or a prediction. */
static double macro_f1(const test_set *ts, const size_t *pred, size_t n_labels)
{
    /* Unseen truths form their own classes; they can only add false negatives, and each
     * counts once however often it occurs, as one class of F1 = 0. */
    size_t *tp = calloc(n_labels, sizeof *tp), *fp = calloc(n_labels, sizeof *fp),
           *fn = calloc(n_labels, sizeof *fn);
    const char **unseen = malloc(ts->n * sizeof *unseen);
    double sum = 0;
    size_t classes = 0, n_unseen = 0;
    if (tp == NULL || fp == NULL || fn == NULL || unseen == NULL)
        goto out;
    for (size_t i = 0; i < ts->n; i++) {
        long t = ts->truth_index[i];
        if (t >= 0 && (size_t)t == pred[i]) {
            tp[pred[i]]++;
            continue;
        }
        fp[pred[i]]++;
        if (t >= 0) {
            fn[t]++;
        } else {
            size_t k = 0;
            while (k < n_unseen && strcmp(unseen[k], ts->truth[i]) != 0)
                k++;
            if (k == n_unseen)
                unseen[n_unseen++] = ts->truth[i];
        }
    }
    for (size_t c = 0; c < n_labels; c++) {
        if (tp[c] + fp[c] + fn[c] == 0)
            continue;
        sum += 2.0 * (double)tp[c] / (double)(2 * tp[c] + fp[c] + fn[c]);
        classes++;
    }
    classes += n_unseen;
out:
    free(tp);
    free(fp);
    free(fn);
    free(unseen);
    return classes ? sum / (double)classes : 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Writes a table's labelled rows as LIBSVM lines: "class row:weight ..." (rows 1-based). */
static int dump_features(const tdm_model *m, const tdm_table *t, const char *label,
                         const char *path)
{
    test_set ts;
    if (build_test_set(m, t, label, &ts) != 0)
        return -1;
    FILE *f = fopen(path, "w");
    size_t cap = 1 << 16;
    uint32_t *index = malloc(cap * sizeof *index);
    float *value = malloc(cap * sizeof *value);
    int rc = -1;
    if (f == NULL || index == NULL || value == NULL) {
        cli_error("%s: cannot write features", path);
        goto out;
    }
    size_t nf = tdm_model_field_count(m);
    for (size_t i = 0; i < ts.n; i++) {
        size_t n;
        if (tdm_model_featurize(m, ts.values + i * nf, index, value, cap, &n) != 0) {
            cli_error("%s: cannot featurise row %zu", tdm_table_name(t), i + 1);
            goto out;
        }
        /* LIBSVM wants ascending feature numbers. */
        for (size_t a = 1; a < n; a++) {
            uint32_t ki = index[a];
            float kv = value[a];
            size_t b = a;
            while (b > 0 && index[b - 1] > ki) {
                index[b] = index[b - 1];
                value[b] = value[b - 1];
                b--;
            }
            index[b] = ki;
            value[b] = kv;
        }
        fprintf(f, "%ld",
                ts.truth_index[i] >= 0 ? ts.truth_index[i] : (long)tdm_model_label_count(m));
        for (size_t k = 0; k < n; k++)
            fprintf(f, " %u:%.6g", index[k] + 1, value[k]);
        fputc('\n', f);
    }
    rc = 0;
out:
    if (f != NULL && fclose(f) != 0 && rc == 0) {
        cli_error("%s: cannot write features", path);
        rc = -1;
    }
    free(index);
    free(value);
    test_set_release(&ts);
    return rc;
}

static void print_json(const eval_args *a, const tdm_train_report *rep, double accuracy, double f1,
                       double ece, double coverage, double sel_error, size_t n_test, double pps,
                       size_t model_bytes)
{
    const tdm_risk_result *risk = &rep->risk;
    json_t *o = json_object();
    json_object_set_new(o, "accuracy", json_real(accuracy));
    json_object_set_new(o, "macro_f1", json_real(f1));
    json_object_set_new(o, "ece", json_real(ece));
    json_object_set_new(o, "target_error", json_real(a->opts.target_error));
    json_object_set_new(o, "delta", json_real(a->opts.delta));
    json_object_set_new(o, "threshold", risk->found ? json_real(risk->threshold) : json_null());
    json_object_set_new(o, "coverage", json_real(coverage));
    json_object_set_new(o, "selective_error",
                        isnan(sel_error) ? json_null() : json_real(sel_error));
    json_object_set_new(o, "n_train", json_integer((json_int_t)rep->n_train));
    json_object_set_new(o, "n_test", json_integer((json_int_t)n_test));
    json_object_set_new(o, "n_classes", json_integer((json_int_t)rep->n_classes));
    json_object_set_new(o, "train_seconds", json_real(rep->seconds));
    json_object_set_new(o, "predict_per_second", json_real(pps));
    json_object_set_new(o, "model_bytes", json_integer((json_int_t)model_bytes));
    char *s = json_dumps(o, JSON_REAL_PRECISION(6));
    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(o);
}

int cli_eval(int argc, char **argv)
{
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        free(a.text);
        return rc < 0 ? 0 : rc;
    }
    tdm_table *train = NULL, *test = NULL, *all = NULL;
    tdm_model *model = NULL;
    field_list fl = {0};
    test_set ts = {0};
    size_t *pred = NULL;
    double *conf = NULL;
    unsigned char *correct = NULL;
    tdm_error err = {0};
    rc = CLI_EXIT_FAIL;

    if (tdm_table_read_file(a.train, TDM_FORMAT_AUTO, NULL, a.test ? &train : &all, &err) != 0) {
        cli_error("%s", err.message);
        goto out;
    }
    if (a.test != NULL) {
        if (tdm_table_read_file(a.test, TDM_FORMAT_AUTO, NULL, &test, &err) != 0) {
            cli_error("%s", err.message);
            goto out;
        }
    } else if (tdm_table_split(all, a.label, a.test_fraction, a.opts.seed, &train, &test, &err) !=
               0) {
        cli_error("%s", err.message);
        goto out;
    }
    int frc = resolve_fields(&a, train, &fl);
    if (frc != 0) {
        rc = frc;
        goto out;
    }

    tdm_train_report rep;
    if (tdm_model_train(train, a.label, fl.spec, fl.n, &a.opts, &model, &rep, &err) != 0) {
        cli_error("%s", err.message);
        goto out;
    }
    if (build_test_set(model, test, a.label, &ts) != 0)
        goto out;

    size_t nf = tdm_model_field_count(model), n = ts.n, right = 0, covered = 0, cov_err = 0;
    pred = malloc(n * sizeof *pred);
    conf = malloc(n * sizeof *conf);
    correct = malloc(n);
    if (pred == NULL || conf == NULL || correct == NULL) {
        cli_error("out of memory");
        goto out;
    }
    FILE *pf = NULL;
    if (a.predictions != NULL && (pf = fopen(a.predictions, "w")) == NULL) {
        cli_error("%s: cannot write predictions", a.predictions);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        tdm_prediction p;
        if (tdm_model_predict(model, ts.values + i * nf, 1, 0, &p) != 0) {
            cli_error("prediction failed on test row %zu", i + 1);
            if (pf != NULL)
                fclose(pf);
            goto out;
        }
        pred[i] = p.top[0].label;
        conf[i] = p.top[0].probability;
        correct[i] = ts.truth_index[i] >= 0 && (size_t)ts.truth_index[i] == pred[i];
        right += correct[i];
        if (rep.risk.found && conf[i] >= rep.risk.threshold) {
            covered++;
            cov_err += !correct[i];
        }
        if (pf != NULL)
            fprintf(pf, "%s\t%s\t%.6f\n", ts.truth[i], tdm_model_label(model, pred[i]), conf[i]);
    }
    if (pf != NULL)
        fclose(pf);

    /* Throughput: whole passes over the test items, single thread, until a second has gone
     * by (at least one pass, at most 50). */
    size_t done = 0;
    double t0 = now_seconds(), elapsed = 0;
    for (int pass = 0; pass < 50 && (pass == 0 || elapsed < 1.0); pass++) {
        for (size_t i = 0; i < n; i++) {
            tdm_prediction p;
            tdm_model_predict(model, ts.values + i * nf, 1, 0, &p);
        }
        done += n;
        elapsed = now_seconds() - t0;
    }
    double pps = elapsed > 0 ? (double)done / elapsed : 0;

    unsigned char *bytes;
    size_t model_bytes = 0;
    if (tdm_model_serialize(model, &bytes, &model_bytes) == 0)
        tdm_free(bytes);
    if (a.save_model != NULL && tdm_model_save(model, a.save_model, &err) != 0) {
        cli_error("%s", err.message);
        goto out;
    }
    if (a.dump_features != NULL) {
        size_t plen = strlen(a.dump_features) + 16;
        char *path = malloc(plen);
        if (path == NULL)
            goto out;
        snprintf(path, plen, "%s.train.svm", a.dump_features);
        int bad = dump_features(model, train, a.label, path);
        snprintf(path, plen, "%s.test.svm", a.dump_features);
        bad = bad || dump_features(model, test, a.label, path);
        free(path);
        if (bad)
            goto out;
    }

    double accuracy = (double)right / (double)n;
    double f1 = macro_f1(&ts, pred, tdm_model_label_count(model));
    double ece = tdm_expected_calibration_error(conf, correct, n, 15);
    double coverage = (double)covered / (double)n;
    double sel_error = covered ? (double)cov_err / (double)covered : NAN;
    if (a.json) {
        print_json(&a, &rep, accuracy, f1, ece, coverage, sel_error, n, pps, model_bytes);
    } else {
        printf("trained on %zu items, %zu classes, in %.2f s (%u epochs, %u folds)\n", rep.n_train,
               rep.n_classes, rep.seconds, a.opts.epochs, a.opts.folds);
        printf("tested on %zu items\n\n", n);
        printf("  accuracy            %.4f\n", accuracy);
        printf("  macro F1            %.4f\n", f1);
        printf("  calibration error   %.4f  (ECE, 15 bins; temperature %.3f)\n", ece,
               rep.temperature);
        if (rep.risk.found) {
            printf("  certified threshold %.6f  (error <= %g with probability %g; %zu of %zu "
                   "held-out items above it, %zu wrong)\n",
                   rep.risk.threshold, a.opts.target_error, 1 - a.opts.delta, rep.risk.n_above,
                   rep.n_train, rep.risk.errors);
            printf("  coverage            %.4f  (share of test items the AI may decide alone)\n",
                   coverage);
            if (covered)
                printf("  selective error     %.4f  (error among them)\n", sel_error);
        } else {
            printf("  certified threshold none: no confidence level certifies error <= %g with "
                   "probability %g on this data (more labelled data, or a looser target)\n",
                   a.opts.target_error, 1 - a.opts.delta);
        }
        printf("  predictions/second  %.0f  (one thread)\n", pps);
        printf("  model size          %zu bytes\n", model_bytes);
    }
    rc = 0;
out:
    free(pred);
    free(conf);
    free(correct);
    test_set_release(&ts);
    tdm_model_free(model);
    field_list_release(&fl);
    tdm_table_free(train);
    tdm_table_free(test);
    tdm_table_free(all);
    free(a.text);
    return rc;
}
