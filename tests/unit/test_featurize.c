/*
 * test_featurize.c — the featurizer: UTF-8 normalisation, tokens, weights and caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn/featurize.h"

typedef struct fixture {
    tdm__featurizer fz;
    tdm__fscratch *s;
} fixture;

static void setup_text(fixture *fx, size_t max_text, size_t max_features)
{
    tdm_field_spec spec[] = {{"text", TDM_FIELD_TEXT}};
    assert_int_equal(tdm__featurizer_init(&fx->fz, spec, 1, 18, max_text, max_features), 0);
    fx->s = tdm__fscratch_new(&fx->fz);
    assert_non_null(fx->s);
}

static void teardown(fixture *fx)
{
    tdm__fscratch_free(fx->s);
    tdm__featurizer_release(&fx->fz);
}

/* A featurised item copied out of the scratch, sorted by row for comparisons. */
typedef struct vec {
    size_t n;
    uint32_t index[8192];
    float value[8192];
} vec;

static void featurize_text(fixture *fx, const char *text, size_t len, vec *out)
{
    tdm_value v = {text, len};
    tdm__fvec x;
    assert_int_equal(tdm__featurize(&fx->fz, &v, fx->s, &x), 0);
    assert_true(x.n <= 8192);
    out->n = x.n;
    memcpy(out->index, x.index, x.n * sizeof *x.index);
    memcpy(out->value, x.value, x.n * sizeof *x.value);
    /* Insertion sort by row (vectors are small). */
    for (size_t i = 1; i < out->n; i++) {
        uint32_t k = out->index[i];
        float kv = out->value[i];
        size_t j = i;
        while (j > 0 && out->index[j - 1] > k) {
            out->index[j] = out->index[j - 1];
            out->value[j] = out->value[j - 1];
            j--;
        }
        out->index[j] = k;
        out->value[j] = kv;
    }
}

static void assert_same_vec(const vec *a, const vec *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->index[i], b->index[i]);
        assert_true(fabsf(a->value[i] - b->value[i]) < 1e-6f);
    }
}

static double norm(const vec *a)
{
    double s = 0;
    for (size_t i = 0; i < a->n; i++)
        s += (double)a->value[i] * a->value[i];
    return sqrt(s);
}

static vec va, vb;

static int has_name(char (*names)[TDM_FEATURE_NAME_MAX], size_t n, const char *want);

static void test_ascii_unit_norm_distinct_rows(void **state)
{
    (void)state;
    fixture fx;
    setup_text(&fx, 4096, 4096);
    featurize_text(&fx, "I lost my card, my card is lost!", 32, &va);
    assert_true(va.n > 20);
    assert_true(fabs(norm(&va) - 1.0) < 1e-5);
    for (size_t i = 1; i < va.n; i++)
        assert_true(va.index[i] > va.index[i - 1]);
    for (size_t i = 0; i < va.n; i++)
        assert_true(va.index[i] < (1u << 18));
    teardown(&fx);
}

static void test_case_and_unicode_normalisation(void **state)
{
    (void)state;
    fixture fx;
    setup_text(&fx, 4096, 4096);
    /* Case folding, ASCII and beyond. */
    featurize_text(&fx, "Lost CARD", 9, &va);
    featurize_text(&fx, "lost card", 9, &vb);
    assert_same_vec(&va, &vb);
    featurize_text(&fx,
                   "CAF\xc3\x89 \xc3\x9c"
                   "BER",
                   11, &va); /* CAFÉ ÜBER */
    featurize_text(&fx,
                   "caf\xc3\xa9 \xc3\xbc"
                   "ber",
                   11, &vb); /* café über */
    assert_same_vec(&va, &vb);
    /* Compatibility forms: the ligature "ﬁ" and full-width letters. */
    featurize_text(&fx, "\xef\xac\x81le", 5, &va); /* ﬁle */
    featurize_text(&fx, "file", 4, &vb);
    assert_same_vec(&va, &vb);
    featurize_text(&fx, "\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3", 9, &va); /* ＡＢＣ */
    featurize_text(&fx, "abc", 3, &vb);
    assert_same_vec(&va, &vb);
    /* Decomposed e + combining acute composes to the same as the precomposed letter. */
    featurize_text(&fx, "cafe\xcc\x81", 6, &va);
    featurize_text(&fx, "caf\xc3\xa9", 5, &vb);
    assert_same_vec(&va, &vb);
    /* Accents are not stripped: café and cafe differ. */
    featurize_text(&fx, "cafe", 4, &va);
    assert_true(va.n != vb.n || memcmp(va.index, vb.index, va.n * sizeof *va.index) != 0);
    teardown(&fx);
}

static void test_invalid_utf8_is_safe(void **state)
{
    (void)state;
    fixture fx;
    setup_text(&fx, 4096, 4096);
    const char bad[] = "card \xff\xfe lost \xc3 \xe2\x82";
    featurize_text(&fx, bad, sizeof bad - 1, &va);
    /* Invalid bytes act as separators; the valid words still count. */
    featurize_text(&fx, "card   lost  ", 13, &vb);
    assert_same_vec(&va, &vb);
    teardown(&fx);
}

static void test_cjk_and_cyrillic_words(void **state)
{
    (void)state;
    fixture fx;
    setup_text(&fx, 4096, 4096);
    /* "КАРТА" and "карта" (Cyrillic) fold together; Japanese text without spaces still
     * yields character n-grams. */
    featurize_text(&fx, "\xd0\x9a\xd0\x90\xd0\xa0\xd0\xa2\xd0\x90", 10, &va);
    featurize_text(&fx, "\xd0\xba\xd0\xb0\xd1\x80\xd1\x82\xd0\xb0", 10, &vb);
    assert_same_vec(&va, &vb);
    const char *jp = "\xe3\x82\xab\xe3\x83\xbc\xe3\x83\x89\xe3\x82\x92\xe7\xb4\x9b\xe5\xa4\xb1";
    featurize_text(&fx, jp, strlen(jp), &va);
    assert_true(va.n >= 10);
    teardown(&fx);
}

static void test_empty_and_missing(void **state)
{
    (void)state;
    fixture fx;
    setup_text(&fx, 4096, 4096);
    featurize_text(&fx, "", 0, &va);
    assert_int_equal(va.n, 1); /* the field's (missing) token */
    tdm_value missing = {NULL, 0};
    tdm__fvec x;
    assert_int_equal(tdm__featurize(&fx.fz, &missing, fx.s, &x), 0);
    assert_int_equal(x.n, 1);
    assert_int_equal(x.index[0], va.index[0]);
    /* Only punctuation: no words, so no tokens at all. */
    featurize_text(&fx, "?!...", 5, &va);
    assert_int_equal(va.n, 0);
    teardown(&fx);
}

static void test_long_text_costs_its_cap(void **state)
{
    (void)state;
    fixture fx;
    setup_text(&fx, 200, 100000);
    size_t big = 10u << 20;
    char *text = malloc(big);
    assert_non_null(text);
    for (size_t i = 0; i < big; i++)
        text[i] = "abcdefg hij"[i % 11];
    featurize_text(&fx, text, big, &va);
    featurize_text(&fx, text, 200, &vb);
    assert_same_vec(&va, &vb);

    /* A multi-byte character straddling the cap is dropped whole, not split. */
    memset(text, 'a', 199);
    memcpy(text + 199, "\xc3\xa9", 2);
    featurize_text(&fx, text, 201, &va);
    featurize_text(&fx, text, 199, &vb);
    assert_same_vec(&va, &vb);
    free(text);
    teardown(&fx);

    /* The feature cap bounds the tokens of any item. */
    setup_text(&fx, 1 << 20, 50);
    text = malloc(100000);
    assert_non_null(text);
    for (size_t i = 0; i < 100000; i++)
        text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    featurize_text(&fx, text, 100000, &va);
    assert_true(va.n <= 50);
    assert_true(va.n > 0);
    free(text);
    teardown(&fx);
}

static int has_name(char (*names)[TDM_FEATURE_NAME_MAX], size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0)
            return 1;
    return 0;
}

static void test_tokens_words_pairs_chars(void **state)
{
    (void)state;
    fixture fx;
    setup_text(&fx, 4096, 4096);
    const char *text = "Lost card";
    featurize_text(&fx, text, strlen(text), &va);
    /* 2 words + 1 bigram + 1 unordered pair; character n-grams of " lost " (6 code
     * points) and " card ": 5 + 4 + 3 + 2 each. */
    assert_int_equal(va.n, 4 + 2 * 14);
    static char names[64][TDM_FEATURE_NAME_MAX];
    tdm_value v = {text, strlen(text)};
    assert_int_equal(tdm__featurize_names(&fx.fz, &v, fx.s, va.index, va.n, names), 0);
    assert_true(has_name(names, va.n, "text:\"lost\""));
    assert_true(has_name(names, va.n, "text:\"lost card\""));
    assert_true(has_name(names, va.n, "text:\"lost\"+\"card\""));
    assert_true(has_name(names, va.n, "text~\" ca\""));
    assert_true(has_name(names, va.n, "text~\"ard \""));
    assert_true(has_name(names, va.n, "text~\" card\""));
    assert_false(has_name(names, va.n, "text~\" card \"")); /* 6 code points: too long */

    /* Repetition merges: "card card card" has the rows of "card" plus the bigram and the
     * pair "card card". */
    featurize_text(&fx, "card card card", 14, &va);
    featurize_text(&fx, "card", 4, &vb);
    assert_int_equal(va.n, vb.n + 2);

    /* Sublinear weights: in "zz zz" the word occurs twice and weighs 1 + ln 2 against the
     * bigram's 1 (same block, so normalisation cancels in the ratio). */
    featurize_text(&fx, "zz zz", 5, &va);
    tdm_value zz = {"zz zz", 5};
    assert_int_equal(tdm__featurize_names(&fx.fz, &zz, fx.s, va.index, va.n, names), 0);
    float word = 0, bigram = 0;
    for (size_t i = 0; i < va.n; i++) {
        if (strcmp(names[i], "text:\"zz\"") == 0)
            word = va.value[i];
        if (strcmp(names[i], "text:\"zz zz\"") == 0)
            bigram = va.value[i];
    }
    assert_true(bigram > 0);
    assert_true(fabsf(word / bigram - (1.0f + logf(2.0f))) < 1e-5f);

    /* Unordered pairs: "lost card" and "card lost" share the pair row, not the bigram. */
    featurize_text(&fx, "lost card", 9, &va);
    featurize_text(&fx, "card lost", 9, &vb);
    size_t shared = 0;
    for (size_t i = 0; i < va.n; i++)
        for (size_t j = 0; j < vb.n; j++)
            shared += va.index[i] == vb.index[j];
    assert_int_equal(shared, va.n - 1); /* everything but the ordered bigram */

    /* Pairs reach PAIR_WINDOW (4) words back and no further. */
    featurize_text(&fx, "alpha b c d echo", 16, &va);
    featurize_text(&fx, "alpha b c d f echo", 18, &vb);
    static char na[128][TDM_FEATURE_NAME_MAX], nb[128][TDM_FEATURE_NAME_MAX];
    tdm_value a = {"alpha b c d echo", 16}, b = {"alpha b c d f echo", 18};
    assert_int_equal(tdm__featurize_names(&fx.fz, &a, fx.s, va.index, va.n, na), 0);
    assert_int_equal(tdm__featurize_names(&fx.fz, &b, fx.s, vb.index, vb.n, nb), 0);
    assert_true(has_name(na, va.n, "text:\"alpha\"+\"echo\""));
    assert_false(has_name(nb, vb.n, "text:\"alpha\"+\"echo\""));
    teardown(&fx);
}

static void test_fields_hash_apart(void **state)
{
    (void)state;
    tdm_field_spec spec[] = {{"subject", TDM_FIELD_TEXT}, {"body", TDM_FIELD_TEXT}};
    tdm__featurizer fz;
    assert_int_equal(tdm__featurizer_init(&fz, spec, 2, 18, 4096, 4096), 0);
    tdm__fscratch *s = tdm__fscratch_new(&fz);
    tdm_value a[2] = {{"refund", 6}, {NULL, 0}};
    tdm_value b[2] = {{NULL, 0}, {"refund", 6}};
    tdm__fvec x;
    assert_int_equal(tdm__featurize(&fz, a, s, &x), 0);
    uint32_t first[64];
    size_t n = x.n;
    memcpy(first, x.index, n * sizeof *first);
    assert_int_equal(tdm__featurize(&fz, b, s, &x), 0);
    size_t shared = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < x.n; j++)
            shared += first[i] == x.index[j];
    assert_true(shared <= 1); /* only a hash collision could share a row */
    tdm__fscratch_free(s);
    tdm__featurizer_release(&fz);
}

static void test_categorical_and_numeric(void **state)
{
    (void)state;
    tdm_field_spec spec[] = {{"status", TDM_FIELD_CATEGORICAL}, {"age", TDM_FIELD_NUMERIC}};
    tdm__featurizer fz;
    assert_int_equal(tdm__featurizer_init(&fz, spec, 2, 18, 4096, 4096), 0);
    double values[100];
    for (int i = 0; i < 100; i++)
        values[i] = i + 1;
    assert_int_equal(tdm__featurizer_fit_numeric(&fz, 1, values, 100), 0);
    assert_int_equal(fz.fields[1].n_edges, TDM__NUMERIC_EDGES_MAX);
    assert_true(fabs(fz.fields[1].center - 51) < 1e-9);
    tdm__fscratch *s = tdm__fscratch_new(&fz);
    tdm__fvec x;

    tdm_value a[2] = {{" A11 ", 5}, {"5", 1}};
    tdm_value b[2] = {{"A11", 3}, {"95", 2}};
    uint32_t ra[4], rb[4];
    assert_int_equal(tdm__featurize(&fz, a, s, &x), 0);
    assert_int_equal(x.n, 3); /* status=A11, age bin, age value */
    memcpy(ra, x.index, 3 * sizeof *ra);
    assert_int_equal(tdm__featurize(&fz, b, s, &x), 0);
    assert_int_equal(x.n, 3);
    memcpy(rb, x.index, 3 * sizeof *rb);
    assert_int_equal(ra[0], rb[0]);     /* same category after trimming */
    assert_int_not_equal(ra[1], rb[1]); /* different bins */
    assert_int_equal(ra[2], rb[2]);     /* the scaled-value row is shared ... */
    assert_true(x.value[2] > 0);        /* ... with the sign of (95 - median) */

    char names[3][TDM_FEATURE_NAME_MAX];
    assert_int_equal(tdm__featurize_names(&fz, b, s, rb, 3, names), 0);
    assert_string_equal(names[0], "status=A11");
    assert_non_null(strstr(names[1], "age in ["));
    assert_string_equal(names[2], "age (value)");

    /* Not a number, or empty: the field's missing token. */
    tdm_value c[2] = {{"", 0}, {"n/a", 3}};
    assert_int_equal(tdm__featurize(&fz, c, s, &x), 0);
    assert_int_equal(x.n, 2);
    tdm__fscratch_free(s);
    tdm__featurizer_release(&fz);
}

static void test_parse_number(void **state)
{
    (void)state;
    double x;
    assert_int_equal(tdm__parse_number(" 12.5 ", 6, &x), 0);
    assert_true(x == 12.5);
    assert_int_equal(tdm__parse_number("-3e2", 4, &x), 0);
    assert_true(x == -300);
    assert_int_equal(tdm__parse_number("12abc", 5, &x), -1);
    assert_int_equal(tdm__parse_number("", 0, &x), -1);
    assert_int_equal(tdm__parse_number("nan", 3, &x), -1);
    assert_int_equal(tdm__parse_number("inf", 3, &x), -1);
    assert_int_equal(tdm__parse_number("1e999", 5, &x), -1);
}

static void test_bad_setup(void **state)
{
    (void)state;
    tdm_field_spec spec[] = {{"t", TDM_FIELD_TEXT}};
    tdm__featurizer fz;
    assert_int_equal(tdm__featurizer_init(&fz, spec, 1, 4, 4096, 4096), TDM_EINVAL);
    assert_int_equal(tdm__featurizer_init(&fz, spec, 1, 30, 4096, 4096), TDM_EINVAL);
    assert_int_equal(tdm__featurizer_init(&fz, spec, 1, 18, 0, 4096), TDM_EINVAL);
    assert_int_equal(tdm__featurizer_init(&fz, spec, 1, 18, 4096, 0), TDM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii_unit_norm_distinct_rows),
        cmocka_unit_test(test_case_and_unicode_normalisation),
        cmocka_unit_test(test_invalid_utf8_is_safe),
        cmocka_unit_test(test_cjk_and_cyrillic_words),
        cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_long_text_costs_its_cap),
        cmocka_unit_test(test_tokens_words_pairs_chars),
        cmocka_unit_test(test_fields_hash_apart),
        cmocka_unit_test(test_categorical_and_numeric),
        cmocka_unit_test(test_parse_number),
        cmocka_unit_test(test_bad_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
