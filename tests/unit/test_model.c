/*
 * test_model.c — the classifier through the public API: training, prediction, reasons,
 * online learning, unseen labels, the model file, and every refusal.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tandem/learn.h"
#include "util/util.h"

/* ------------------------------------------------------------------------------------------ */
/* A small synthetic support queue: three intents, each with its own vocabulary, and one     */
/* label in ten drawn at random, so the model cannot be sure of everything.                   */
/* ------------------------------------------------------------------------------------------ */

static const char *const intents[] = {"refund", "lost_card", "password"};
static const char *const vocab[3][6] = {
    {"refund", "money", "back", "return", "charged", "twice"},
    {"lost", "card", "stolen", "missing", "wallet", "block"},
    {"password", "login", "reset", "forgot", "locked", "account"},
};
static const char *const filler[] = {"please", "help", "my", "i", "the", "need", "today", "now"};

static char *make_csv(size_t per_class, uint64_t seed)
{
    size_t cap = per_class * 3 * 128 + 64, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    len += (size_t)snprintf(buf, cap, "text,intent\n");
    tdm__rng rng;
    tdm__rng_seed(&rng, seed);
    for (size_t i = 0; i < per_class * 3; i++) {
        size_t c = i % 3;
        char line[128];
        size_t label = tdm__rng_below(&rng, 10) == 0 ? (size_t)tdm__rng_below(&rng, 3) : c;
        snprintf(line, sizeof line, "%s %s %s %s %s %s,%s\n", filler[tdm__rng_below(&rng, 8)],
                 vocab[c][tdm__rng_below(&rng, 6)], filler[tdm__rng_below(&rng, 8)],
                 vocab[c][tdm__rng_below(&rng, 6)], vocab[c][tdm__rng_below(&rng, 6)],
                 filler[tdm__rng_below(&rng, 8)], intents[label]);
        size_t n = strlen(line);
        assert_true(len + n < cap);
        memcpy(buf + len, line, n + 1);
        len += n;
    }
    return buf;
}

static tdm_table *synthetic_table(size_t per_class, uint64_t seed)
{
    char *csv = make_csv(per_class, seed);
    tdm_table *t = NULL;
    tdm_error err = {0};
    assert_int_equal(
        tdm_table_read_buffer(csv, strlen(csv), TDM_FORMAT_CSV, "synthetic.csv", NULL, &t, &err),
        0);
    free(csv);
    return t;
}

static const tdm_field_spec text_field[] = {{"text", TDM_FIELD_TEXT}};

static tdm_model *train_synthetic(const tdm_train_opts *opts, tdm_train_report *rep)
{
    tdm_table *t = synthetic_table(60, 11);
    tdm_model *m = NULL;
    tdm_error err = {0};
    int rc = tdm_model_train(t, "intent", text_field, 1, opts, &m, rep, &err);
    if (rc != 0)
        print_error("train failed: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_non_null(m);
    tdm_table_free(t);
    return m;
}

static tdm_prediction predict(const tdm_model *m, const char *text, size_t k, unsigned flags)
{
    tdm_value v = {text, strlen(text)};
    tdm_prediction p;
    assert_int_equal(tdm_model_predict(m, &v, k, flags, &p), 0);
    return p;
}

static double prob_of(const tdm_model *m, const char *text, const char *label)
{
    size_t n = tdm_model_label_count(m);
    tdm_prediction p = predict(m, text, n < TDM_TOP_MAX ? n : TDM_TOP_MAX, 0);
    for (size_t i = 0; i < p.n_top; i++)
        if (strcmp(tdm_model_label(m, p.top[i].label), label) == 0)
            return p.top[i].probability;
    return 0;
}

static const char *top_label(const tdm_model *m, const char *text)
{
    tdm_prediction p = predict(m, text, 1, 0);
    return tdm_model_label(m, p.top[0].label);
}

/* ------------------------------------------------------------------------------------------ */

static void test_train_and_predict(void **state)
{
    (void)state;
    tdm_train_report rep;
    tdm_model *m = train_synthetic(NULL, &rep);
    assert_int_equal(rep.n_train, 180);
    assert_int_equal(rep.n_classes, 3);
    assert_true(rep.temperature > 0);
    assert_true(rep.oof_accuracy > 0.85);
    assert_true(rep.seconds >= 0);
    assert_int_equal(tdm_model_label_count(m), 3);
    assert_int_equal(tdm_model_field_count(m), 1);
    assert_string_equal(tdm_model_field_name(m, 0), "text");
    assert_int_equal(tdm_model_field_kind(m, 0), TDM_FIELD_TEXT);
    assert_null(tdm_model_field_name(m, 1));
    assert_null(tdm_model_label(m, 3));

    assert_string_equal(top_label(m, "I lost my card"), "lost_card");
    assert_string_equal(top_label(m, "forgot my password, please reset"), "password");
    assert_string_equal(top_label(m, "I want my money back"), "refund");

    /* Top-k: sorted, probabilities that add up to at most 1, k capped at the label count. */
    tdm_prediction p = predict(m, "my card was stolen", TDM_TOP_MAX, 0);
    assert_int_equal(p.n_top, 3);
    double sum = 0;
    for (size_t i = 0; i < p.n_top; i++) {
        sum += p.top[i].probability;
        if (i > 0)
            assert_true(p.top[i].probability <= p.top[i - 1].probability);
    }
    assert_true(fabs(sum - 1.0) < 1e-5);
    assert_true(p.top[0].probability > 0.5);
    assert_int_equal(p.n_reasons, 0);
    tdm_model_free(m);
}

static void test_reasons(void **state)
{
    (void)state;
    tdm_model *m = train_synthetic(NULL, NULL);
    tdm_prediction p = predict(m, "my wallet was stolen today", 2, TDM_PREDICT_REASONS);
    assert_string_equal(tdm_model_label(m, p.top[0].label), "lost_card");
    assert_true(p.n_reasons > 0 && p.n_reasons <= TDM_REASONS_MAX);
    int mentions = 0;
    for (size_t i = 0; i < p.n_reasons; i++) {
        assert_true(p.reasons[i].weight > 0);
        if (i > 0)
            assert_true(p.reasons[i].weight <= p.reasons[i - 1].weight);
        assert_non_null(strstr(p.reasons[i].feature, "text"));
        if (strstr(p.reasons[i].feature, "wallet") || strstr(p.reasons[i].feature, "stolen"))
            mentions = 1;
    }
    assert_true(mentions);
    tdm_model_free(m);
}

static void test_online_update_moves_toward_correction(void **state)
{
    (void)state;
    tdm_model *m = train_synthetic(NULL, NULL);
    uint64_t online;
    uint64_t seen = tdm_model_examples_seen(m, &online);
    assert_true(seen > 0);
    assert_int_equal(online, 0);

    const char *text = "please help me now";
    double before = prob_of(m, text, "password");
    tdm_value v = {text, strlen(text)};
    tdm_error err = {0};
    assert_int_equal(tdm_model_update(m, &v, "password", 1.0, &err), 0);
    double after = prob_of(m, text, "password");
    assert_true(after > before);
    tdm_model_examples_seen(m, &online);
    assert_int_equal(online, 1);

    /* A heavier example moves it further. */
    assert_int_equal(tdm_model_update(m, &v, "password", 10.0, &err), 0);
    assert_true(prob_of(m, text, "password") > after);

    /* Refusals leave the model alone. */
    assert_int_equal(tdm_model_update(m, &v, "password", 0.0, &err), TDM_EINVAL);
    assert_non_null(strstr(err.message, "weight"));
    assert_int_equal(tdm_model_update(m, &v, "", 1.0, &err), TDM_EINVAL);
    assert_int_equal(tdm_model_update(m, &v, NULL, 1.0, &err), TDM_EINVAL);
    assert_int_equal(tdm_model_label_count(m), 3);
    tdm_model_free(m);
}

static void test_unseen_label_is_added(void **state)
{
    (void)state;
    tdm_model *m = train_synthetic(NULL, NULL);
    const char *old_text = "I lost my card";
    const char *text = "close my account for good";
    tdm_value v = {text, strlen(text)};
    tdm_error err = {0};
    assert_int_equal(tdm_model_update(m, &v, "close_account", 1.0, &err), 0);
    assert_int_equal(tdm_model_label_count(m), 4);
    assert_string_equal(tdm_model_label(m, 3), "close_account");
    assert_true(prob_of(m, text, "close_account") > 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(tdm_model_update(m, &v, "close_account", 1.0, &err), 0);
    assert_string_equal(top_label(m, text), "close_account");
    /* Items unlike the new examples keep their label. */
    assert_string_equal(top_label(m, old_text), "lost_card");

    /* More labels than the padding holds: the matrix is laid out again, nothing is lost. */
    double p_old = prob_of(m, old_text, "lost_card");
    for (int i = 0; i < 12; i++) {
        char label[32], t[64];
        snprintf(label, sizeof label, "new_%d", i);
        snprintf(t, sizeof t, "word%d other%d", i, i);
        tdm_value nv = {t, strlen(t)};
        assert_int_equal(tdm_model_update(m, &nv, label, 1.0, &err), 0);
    }
    assert_int_equal(tdm_model_label_count(m), 16);
    assert_string_equal(tdm_model_label(m, 15), "new_11");
    assert_string_equal(top_label(m, old_text), "lost_card");
    /* Twelve new classes each take a little probability from everything (measured: 0.886
     * down to 0.810); the old answer must still stand clearly. */
    assert_true(prob_of(m, old_text, "lost_card") > p_old - 0.15);
    assert_string_equal(top_label(m, text), "close_account");
    tdm_model_free(m);
}

static void test_save_load_round_trip(void **state)
{
    (void)state;
    tdm_model *m = train_synthetic(NULL, NULL);
    unsigned char *buf;
    size_t len;
    assert_int_equal(tdm_model_serialize(m, &buf, &len), 0);
    assert_true(len > 24);
    assert_memory_equal(buf, "TDMMODEL", 8);
    tdm_model *copy = NULL;
    tdm_error err = {0};
    assert_int_equal(tdm_model_deserialize(buf, len, "mem", &copy, &err), 0);
    tdm_free(buf);

    /* Identical predictions, bit for bit, on many items. */
    tdm_table *t = synthetic_table(30, 99);
    for (size_t r = 0; r < tdm_table_row_count(t); r++) {
        tdm_value v;
        v.data = tdm_table_cell(t, r, 0, &v.len);
        tdm_prediction a, b;
        assert_int_equal(tdm_model_predict(m, &v, 3, TDM_PREDICT_REASONS, &a), 0);
        assert_int_equal(tdm_model_predict(copy, &v, 3, TDM_PREDICT_REASONS, &b), 0);
        assert_int_equal(a.n_top, b.n_top);
        for (size_t i = 0; i < a.n_top; i++) {
            assert_int_equal(a.top[i].label, b.top[i].label);
            assert_true(a.top[i].probability == b.top[i].probability);
        }
        assert_int_equal(a.n_reasons, b.n_reasons);
        for (size_t i = 0; i < a.n_reasons; i++)
            assert_string_equal(a.reasons[i].feature, b.reasons[i].feature);
    }
    assert_true(tdm_model_temperature(m) == tdm_model_temperature(copy));
    double ta, da, tb, db;
    const tdm_risk_result *ra = tdm_model_risk(m, &ta, &da), *rb = tdm_model_risk(copy, &tb, &db);
    assert_int_equal(ra->found, rb->found);
    assert_true(ra->threshold == rb->threshold && ta == tb && da == db);

    /* Online learning continues identically: the AdaGrad state came along. */
    const char *text = "need help now";
    tdm_value v = {text, strlen(text)};
    assert_int_equal(tdm_model_update(m, &v, "refund", 1.0, &err), 0);
    assert_int_equal(tdm_model_update(copy, &v, "refund", 1.0, &err), 0);
    assert_true(prob_of(m, text, "refund") == prob_of(copy, text, "refund"));

    /* Through a file, and the file is the serialised form. */
    char path[] = "/tmp/tandem-model-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(tdm_model_save(copy, path, &err), 0);
    tdm_model *loaded = NULL;
    assert_int_equal(tdm_model_load(path, &loaded, &err), 0);
    assert_true(prob_of(loaded, text, "refund") == prob_of(copy, text, "refund"));
    uint64_t online;
    tdm_model_examples_seen(loaded, &online);
    assert_int_equal(online, 1);
    remove(path);

    tdm_table_free(t);
    tdm_model_free(loaded);
    tdm_model_free(copy);
    tdm_model_free(m);
}

static void test_load_rejects_bad_files(void **state)
{
    (void)state;
    tdm_model *m = train_synthetic(NULL, NULL);
    unsigned char *buf;
    size_t len;
    assert_int_equal(tdm_model_serialize(m, &buf, &len), 0);
    tdm_model_free(m);
    unsigned char *bad = malloc(len);
    assert_non_null(bad);
    tdm_model *out = (tdm_model *)&out; /* must come back NULL */
    tdm_error err = {0};

    /* A flipped byte anywhere fails the checksum. */
    size_t spots[] = {30, len / 2, len - 9};
    for (size_t i = 0; i < 3; i++) {
        memcpy(bad, buf, len);
        bad[spots[i]] ^= 0x40;
        assert_int_equal(tdm_model_deserialize(bad, len, "flip.tdm", &out, &err), TDM_ECORRUPT);
        assert_null(out);
        assert_non_null(strstr(err.message, "flip.tdm"));
    }
    assert_non_null(strstr(err.message, "checksum"));

    /* Truncated, empty, foreign. */
    assert_int_equal(tdm_model_deserialize(buf, len - 1, "short", &out, &err), TDM_ECORRUPT);
    assert_non_null(strstr(err.message, "truncated"));
    assert_int_equal(tdm_model_deserialize(buf, 10, "short", &out, &err), TDM_ECORRUPT);
    assert_int_equal(tdm_model_deserialize(buf, 0, "empty", &out, &err), TDM_ECORRUPT);
    const char *png = "\x89PNG\r\n\x1a\n and then some more bytes to be long enough";
    assert_int_equal(
        tdm_model_deserialize((const unsigned char *)png, strlen(png), "img.png", &out, &err),
        TDM_ECORRUPT);
    assert_non_null(strstr(err.message, "signature"));

    /* A newer format version, with a checksum that matches: a clear version error. */
    memcpy(bad, buf, len);
    bad[8] = 99;
    uint64_t sum = XXH3_64bits(bad, len - 8);
    for (int i = 0; i < 8; i++)
        bad[len - 8 + (size_t)i] = (unsigned char)(sum >> (8 * i));
    assert_int_equal(tdm_model_deserialize(bad, len, "future.tdm", &out, &err), TDM_EVERSION);
    assert_non_null(strstr(err.message, "version 99"));

    /* A consistent checksum over nonsense contents is still refused, not trusted. */
    memcpy(bad, buf, len);
    memset(bad + 24, 0xff, 16);
    sum = XXH3_64bits(bad, len - 8);
    for (int i = 0; i < 8; i++)
        bad[len - 8 + (size_t)i] = (unsigned char)(sum >> (8 * i));
    assert_int_equal(tdm_model_deserialize(bad, len, "odd.tdm", &out, &err), TDM_ECORRUPT);
    assert_null(out);

    /* Files: missing, and not a model. */
    assert_int_equal(tdm_model_load("/nonexistent/dir/model.tdm", &out, &err), TDM_EIO);
    assert_non_null(strstr(err.message, "/nonexistent/dir/model.tdm"));
    char path[] = "/tmp/tandem-notmodel-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "text,intent\n", 12), 12);
    close(fd);
    assert_int_equal(tdm_model_load(path, &out, &err), TDM_ECORRUPT);
    remove(path);
    assert_int_equal(tdm_model_save(NULL, path, &err) != 0, 1);
    free(bad);
    tdm_free(buf);
}

static void test_train_refusals(void **state)
{
    (void)state;
    tdm_table *t = synthetic_table(10, 3);
    tdm_model *m = (tdm_model *)&m;
    tdm_error err = {0};
    tdm_train_opts o;

    assert_int_equal(tdm_model_train(t, "category", text_field, 1, NULL, &m, NULL, &err),
                     TDM_ENOTFOUND);
    assert_non_null(strstr(err.message, "\"category\""));
    assert_non_null(strstr(err.message, "synthetic.csv"));
    assert_null(m);

    tdm_field_spec missing[] = {{"body", TDM_FIELD_TEXT}};
    assert_int_equal(tdm_model_train(t, "intent", missing, 1, NULL, &m, NULL, &err), TDM_ENOTFOUND);
    assert_non_null(strstr(err.message, "\"body\""));

    tdm_field_spec label_too[] = {{"intent", TDM_FIELD_CATEGORICAL}};
    assert_int_equal(tdm_model_train(t, "intent", label_too, 1, NULL, &m, NULL, &err), TDM_EINVAL);
    assert_non_null(strstr(err.message, "label"));
    assert_int_equal(tdm_model_train(t, "intent", text_field, 0, NULL, &m, NULL, &err), TDM_EINVAL);

    tdm_train_opts_init(&o);
    o.epochs = 0;
    assert_int_equal(tdm_model_train(t, "intent", text_field, 1, &o, &m, NULL, &err), TDM_EINVAL);
    assert_non_null(strstr(err.message, "epochs"));
    tdm_train_opts_init(&o);
    o.dropout = 0.99;
    assert_int_equal(tdm_model_train(t, "intent", text_field, 1, &o, &m, NULL, &err), TDM_EINVAL);
    tdm_train_opts_init(&o);
    o.target_error = 0;
    assert_int_equal(tdm_model_train(t, "intent", text_field, 1, &o, &m, NULL, &err), TDM_EINVAL);
    tdm_train_opts_init(&o);
    o.hash_bits = 5;
    assert_int_equal(tdm_model_train(t, "intent", text_field, 1, &o, &m, NULL, &err), TDM_EINVAL);
    assert_null(m);
    tdm_table_free(t);

    /* A label column with no values at all. */
    const char *csv = "text,intent\nhello,\nworld,\n";
    assert_int_equal(
        tdm_table_read_buffer(csv, strlen(csv), TDM_FORMAT_CSV, "empty.csv", NULL, &t, &err), 0);
    assert_int_equal(tdm_model_train(t, "intent", text_field, 1, NULL, &m, NULL, &err),
                     TDM_ENODATA);
    assert_non_null(strstr(err.message, "intent"));
    tdm_table_free(t);
}

static void test_structured_fields(void **state)
{
    (void)state;
    /* label = high when amount > 50; colour is noise. */
    size_t cap = 64 * 400 + 64, len = 0;
    char *csv = malloc(cap);
    assert_non_null(csv);
    len += (size_t)snprintf(csv, cap, "amount,colour,level\n");
    tdm__rng rng;
    tdm__rng_seed(&rng, 5);
    for (int i = 0; i < 400; i++) {
        int amount = (int)tdm__rng_below(&rng, 100);
        const char *colour = (const char *[]){"red", "green", "blue"}[tdm__rng_below(&rng, 3)];
        len += (size_t)snprintf(csv + len, cap - len, "%d,%s,%s\n", amount, colour,
                                amount > 50 ? "high" : "low");
    }
    tdm_table *t = NULL;
    tdm_error err = {0};
    assert_int_equal(tdm_table_read_buffer(csv, len, TDM_FORMAT_CSV, "levels.csv", NULL, &t, &err),
                     0);
    free(csv);
    size_t col;
    assert_int_equal(tdm_table_column_index(t, "amount", &col), 0);
    assert_int_equal(tdm_table_infer_kind(t, col), TDM_FIELD_NUMERIC);
    tdm_field_spec fields[] = {{"amount", TDM_FIELD_NUMERIC}, {"colour", TDM_FIELD_CATEGORICAL}};
    tdm_model *m = NULL;
    assert_int_equal(tdm_model_train(t, "level", fields, 2, NULL, &m, NULL, &err), 0);
    int right = 0;
    for (int a = 0; a < 100; a++) {
        if (a == 50 || a == 51)
            continue; /* the boundary may fall in either bin */
        char num[8];
        snprintf(num, sizeof num, "%d", a);
        tdm_value v[2] = {{num, strlen(num)}, {"green", 5}};
        tdm_prediction p;
        assert_int_equal(tdm_model_predict(m, v, 1, 0, &p), 0);
        right += strcmp(tdm_model_label(m, p.top[0].label), a > 50 ? "high" : "low") == 0;
    }
    assert_true(right >= 90);
    /* A missing or unreadable value is not an error. */
    tdm_value v[2] = {{NULL, 0}, {"n/a", 3}};
    tdm_prediction p;
    assert_int_equal(tdm_model_predict(m, v, 2, TDM_PREDICT_REASONS, &p), 0);
    tdm_model_free(m);
    tdm_table_free(t);
}

static void test_deterministic_by_seed(void **state)
{
    (void)state;
    tdm_train_opts o;
    tdm_train_opts_init(&o);
    o.seed = 42;
    tdm_model *a = train_synthetic(&o, NULL), *b = train_synthetic(&o, NULL);
    o.seed = 43;
    tdm_model *c = train_synthetic(&o, NULL);
    unsigned char *ba, *bb, *bc;
    size_t la, lb, lc;
    assert_int_equal(tdm_model_serialize(a, &ba, &la), 0);
    assert_int_equal(tdm_model_serialize(b, &bb, &lb), 0);
    assert_int_equal(tdm_model_serialize(c, &bc, &lc), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    assert_true(la != lc || memcmp(ba, bc, la) != 0);
    tdm_free(ba);
    tdm_free(bb);
    tdm_free(bc);
    tdm_model_free(a);
    tdm_model_free(b);
    tdm_model_free(c);
}

static void test_without_folds(void **state)
{
    (void)state;
    tdm_train_opts o;
    tdm_train_opts_init(&o);
    o.folds = 0;
    tdm_train_report rep;
    tdm_model *m = train_synthetic(&o, &rep);
    assert_true(rep.temperature == 1.0);
    assert_int_equal(rep.risk.found, 0);
    assert_false(tdm_model_risk(m, NULL, NULL)->found);
    assert_string_equal(top_label(m, "I lost my card"), "lost_card");
    tdm_model_free(m);
}

/* should_stop: counts its calls and says stop once the count reaches *arg's limit. */
typedef struct stop_count {
    unsigned calls, stop_at;
} stop_count;

static int stop_after(void *arg)
{
    stop_count *c = arg;
    return ++c->calls >= c->stop_at;
}

/* A fit asks should_stop before every pass, stops when told, and then fails with TDM_EBUSY
 * and no model; never told, it finishes as it would without the callback. */
static void test_should_stop(void **state)
{
    (void)state;
    tdm_table *t = synthetic_table(60, 11);
    tdm_train_opts o;
    tdm_model *m = NULL;
    tdm_error err = {0};
    for (unsigned folds = 0; folds <= 5; folds += 5) {
        tdm_train_opts_init(&o);
        o.folds = folds;
        o.epochs = 4;
        stop_count never = {0, UINT32_MAX};
        o.should_stop = stop_after;
        o.stop_arg = &never;
        assert_int_equal(tdm_model_train(t, "intent", text_field, 1, &o, &m, NULL, &err), 0);
        /* One call a pass: 4 epochs of each of the 5 fold models, or of the one fit. */
        assert_int_equal(never.calls, folds ? 5 * 4 : 4);
        tdm_model_free(m);
        m = NULL;

        stop_count soon = {0, 3};
        o.stop_arg = &soon;
        assert_int_equal(tdm_model_train(t, "intent", text_field, 1, &o, &m, NULL, &err),
                         TDM_EBUSY);
        assert_null(m);
        assert_non_null(strstr(err.message, "stopped"));
        assert_int_equal(soon.calls, 3); /* not asked again once it said stop */
    }
    tdm_table_free(t);
}

static void test_predict_and_featurize_arguments(void **state)
{
    (void)state;
    tdm_model *m = train_synthetic(NULL, NULL);
    tdm_value v = {"lost card", 9};
    tdm_prediction p;
    assert_int_equal(tdm_model_predict(m, &v, 0, 0, &p), TDM_EINVAL);
    assert_int_equal(tdm_model_predict(m, &v, TDM_TOP_MAX + 1, 0, &p), TDM_EINVAL);
    assert_int_equal(tdm_model_predict(m, NULL, 1, 0, &p), TDM_EINVAL);

    uint32_t index[256];
    float value[256];
    size_t n;
    assert_int_equal(tdm_model_featurize(m, &v, index, value, 256, &n), 0);
    double norm = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(index[i] < tdm_model_feature_rows(m));
        norm += (double)value[i] * value[i];
    }
    assert_true(fabs(norm - 1) < 1e-5);
    assert_int_equal(tdm_model_featurize(m, &v, index, value, 3, &n), TDM_ETOOBIG);
    assert_true(n > 3);
    assert_true(tdm_model_memory_bytes(m) > tdm_model_feature_rows(m) * sizeof(float));
    tdm_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_and_predict),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_online_update_moves_toward_correction),
        cmocka_unit_test(test_unseen_label_is_added),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_load_rejects_bad_files),
        cmocka_unit_test(test_train_refusals),
        cmocka_unit_test(test_structured_fields),
        cmocka_unit_test(test_deterministic_by_seed),
        cmocka_unit_test(test_without_folds),
        cmocka_unit_test(test_should_stop),
        cmocka_unit_test(test_predict_and_featurize_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
