/*
 * test_risk.c — the Clopper-Pearson bound and the guaranteed-risk threshold (src/learn/risk.c).
 *
 * DESIGN NOTES
 *
 * The bound is checked three independent ways: against published values and values computed
 * here beforehand with 50-digit arithmetic (mpmath, by bisection on an exact binomial sum);
 * against a binomial CDF summed in log space with lgamma inside this file, which must give
 * back delta at the returned bound (Clopper & Pearson, 1934: P(X <= k; n, bound) = delta);
 * and through its shape (falls with n, rises with the error count and with 1 - delta).
 *
 * The threshold is checked against two references written here from the header's words
 * alone (fixed-sequence testing in the sense of Bates, Angelopoulos et al., "Learn then
 * Test", 2021; selective classification with guaranteed risk, Geifman & El-Yaniv, 2017): an
 * O(n^2) one that, for each distinct confidence from high to low, counts the items at or
 * above it and tests the bound, with no sorting tricks and no skipped evaluations; and, for
 * sizes where O(n^2) is too slow, one that sorts with qsort and evaluates the bound at every
 * group of ties. Hand-made cases pin the edges: too few items, a first test that fails, ties
 * that must enter together, a later pass that must not rescue an earlier failure.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tandem/learn.h"
#include "util/util.h"

/* |got - want| <= tol * |want|, with both printed on failure. */
static void assert_rel(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * fabs(want))) {
        print_error("got %.17g, want %.17g (relative tolerance %g)\n", got, want, tol);
        fail();
    }
}

static void assert_abs(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("got %.17g, want %.17g (absolute tolerance %g)\n", got, want, tol);
        fail();
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The bound                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void test_bound_published_values(void **state)
{
    (void)state;
    double b0 = tdm_binomial_upper_bound(0, 100, 0.05);
    double b20 = tdm_binomial_upper_bound(20, 1000, 0.05);
    double b50 = tdm_binomial_upper_bound(50, 1000, 0.05);
    printf("bound(0/100) = %.10f, bound(20/1000) = %.10f, bound(50/1000) = %.10f\n", b0, b20, b50);
    /* Four significant digits, as tables print them. */
    assert_abs(b0, 0.02951, 0.5e-5);
    assert_abs(b20, 0.0289, 5e-5);
    assert_abs(b50, 0.06286, 0.5e-5);

    /* Zero errors: exactly 1 - delta^(1/n). */
    assert_rel(b0, 1.0 - pow(0.05, 1.0 / 100.0), 1e-14);

    /* The rule of three's exact forms: 59, 149 and 299 clean items certify 5%, 2% and 1%. */
    assert_true(tdm_binomial_upper_bound(0, 59, 0.05) <= 0.05);
    assert_true(tdm_binomial_upper_bound(0, 58, 0.05) > 0.05);
    assert_true(tdm_binomial_upper_bound(0, 149, 0.05) <= 0.02);
    assert_true(tdm_binomial_upper_bound(0, 148, 0.05) > 0.02);
    assert_true(tdm_binomial_upper_bound(0, 299, 0.05) <= 0.01);
    assert_true(tdm_binomial_upper_bound(0, 298, 0.05) > 0.01);
}

/* Values computed beforehand to 20 digits with mpmath (bisection on the exact binomial sum). */
static void test_bound_reference_values(void **state)
{
    (void)state;
    static const struct {
        uint64_t k, n;
        double delta, want, tol;
    } cases[] = {
        {0, 100, 0.05, 0.0295130496070399345, 1e-13},
        {20, 1000, 0.05, 0.028930122851398710524, 1e-12},
        {50, 1000, 0.05, 0.06286340351237973766, 1e-12},
        {1, 10, 0.05, 0.39416330243650478172, 1e-12},
        {7, 30, 0.1, 0.36114202198139803479, 1e-12},
        {3, 7, 1e-10, 0.99869886548921520347, 1e-12},
        {100, 1000000, 1e-6, 0.00015615090644076862335, 1e-11},
        {500, 1000, 0.01, 0.53722193323900248281, 1e-12},
        {990, 1000, 0.05, 0.99456485985529322666, 1e-12},
        /* At n = 10^8 the last digits of tiny bounds go to the rounding of 1 - p. */
        {1000, 100000000, 0.05, 0.000010536028397505699276, 1e-10},
        {1, 100000000, 0.05, 4.7438644295886490493e-8, 1e-8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = tdm_binomial_upper_bound(cases[i].k, cases[i].n, cases[i].delta);
        printf("bound(%llu/%llu, delta %g) = %.17g\n", (unsigned long long)cases[i].k,
               (unsigned long long)cases[i].n, cases[i].delta, got);
        assert_rel(got, cases[i].want, cases[i].tol);
    }

    /* k = n - 1 has the closed form (1 - delta)^(1/n); compare 1 - p, where it matters. */
    uint64_t ns[] = {2, 10, 1000, 1000000, 100000000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        double n = (double)ns[i];
        double got = tdm_binomial_upper_bound(ns[i] - 1, ns[i], 0.05);
        double want = exp(log1p(-0.05) / n);
        /* One ulp of p near 1 is 1.1e-16 absolute; allow a few. */
        assert_abs(got, want, 4e-16);
    }
}

static void test_bound_edges(void **state)
{
    (void)state;
    assert_true(tdm_binomial_upper_bound(0, 0, 0.05) == 1.0);
    assert_true(tdm_binomial_upper_bound(7, 7, 0.05) == 1.0);
    assert_true(isnan(tdm_binomial_upper_bound(8, 7, 0.05)));
    assert_true(isnan(tdm_binomial_upper_bound(1, 7, 0.0)));
    assert_true(isnan(tdm_binomial_upper_bound(1, 7, 1.0)));
    assert_true(isnan(tdm_binomial_upper_bound(1, 7, -0.5)));
    assert_true(isnan(tdm_binomial_upper_bound(1, 7, NAN)));
    /* A bad delta is NaN even where n == 0 would otherwise give 1. */
    assert_true(isnan(tdm_binomial_upper_bound(0, 0, 2.0)));

    /* Tiny and huge delta stay inside (0, 1) and ordered. */
    double lo = tdm_binomial_upper_bound(3, 50, 0.999999);
    double hi = tdm_binomial_upper_bound(3, 50, 1e-300);
    assert_true(lo > 0.0 && lo < 3.0 / 50.0);
    assert_true(hi > 3.0 / 50.0 && hi < 1.0);

    /* The largest n the header promises, every k from 0 to n. */
    const uint64_t big = 100000000;
    uint64_t ks[] = {0, 1, 2, 10, 1000, 1000000, 49999999, 50000000, 99999990, 99999999, big};
    double prev = 0.0;
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        double b = tdm_binomial_upper_bound(ks[i], big, 0.05);
        assert_true(b > prev && b <= 1.0);
        assert_true(b >= (double)ks[i] / (double)big);
        prev = b;
    }
    /* Near k = n / 2 the normal approximation is excellent: 0.5 + 1.6449 * 0.5 / 10^4. */
    assert_rel(tdm_binomial_upper_bound(50000000, big, 0.05), 0.5 + 1.6448536269514722 * 0.5e-4,
               1e-6);
}

static void test_bound_monotone(void **state)
{
    (void)state;
    /* Falls as n grows at fixed errors. */
    for (uint64_t k = 0; k <= 40; k += 5) {
        double prev = 1.0;
        for (uint64_t n = k + 1; n < 5000; n = n + 1 + n / 7) {
            double b = tdm_binomial_upper_bound(k, n, 0.05);
            assert_true(b < prev);
            prev = b;
        }
    }
    /* Rises with the error count at fixed n. */
    for (uint64_t n = 1; n < 3000; n = 2 * n + 3) {
        double prev = 0.0;
        for (uint64_t k = 0; k <= n; k++) {
            double b = tdm_binomial_upper_bound(k, n, 0.05);
            assert_true(b > prev || (k == n && b == 1.0));
            prev = b;
        }
    }
    /* Rises as delta shrinks (more confidence asks for a wider bound). */
    double deltas[] = {0.5, 0.2, 0.1, 0.05, 0.01, 1e-3, 1e-6, 1e-12};
    double prev = 0.0;
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        double b = tdm_binomial_upper_bound(12, 400, deltas[i]);
        assert_true(b > prev);
        prev = b;
    }
}

/* P(Binomial(n, p) <= k), summed in log space from lgamma; independent of src/learn/risk.c. */
static double brute_binomial_cdf(uint64_t k, uint64_t n, double p)
{
    double lp = log(p), lq = log1p(-p);
    double lgn = lgamma((double)n + 1.0);
    double top = -INFINITY, sum = 0.0;
    /* Terms rise towards k when k < n p, so start at k and stop once they are negligible. */
    for (uint64_t i = k + 1; i-- > 0;) {
        double lt = lgn - lgamma((double)i + 1.0) - lgamma((double)(n - i) + 1.0) + (double)i * lp +
                    (double)(n - i) * lq;
        if (lt > top) {
            sum = sum * exp(top - lt) + 1.0;
            top = lt;
        } else {
            sum += exp(lt - top);
        }
        if (lt < top - 60.0)
            break;
    }
    return exp(top + log(sum));
}

static void test_bound_inverts_brute_force_cdf(void **state)
{
    (void)state;
    tdm__rng rng;
    tdm__rng_seed(&rng, 20240611);
    const double deltas[] = {0.01, 0.05, 0.1, 0.3};
    double worst = 0.0;
    for (int t = 0; t < 300; t++) {
        /* n log-uniform in [1, 10^5], k uniform in [0, n - 1], and sometimes small. */
        uint64_t n = (uint64_t)exp(tdm__rng_double(&rng) * log(1e5)) + 1;
        uint64_t k = tdm__rng_below(&rng, n);
        if (t % 3 == 0 && k > 20)
            k = tdm__rng_below(&rng, 20);
        double delta = deltas[tdm__rng_below(&rng, 4)];
        double b = tdm_binomial_upper_bound(k, n, delta);
        double f = brute_binomial_cdf(k, n, b);
        double err = fabs(f - delta) / delta;
        if (err > worst)
            worst = err;
        if (!(err < 1e-6)) {
            print_error("k=%llu n=%llu delta=%g: bound %.17g gives P(X <= k) = %.17g\n",
                        (unsigned long long)k, (unsigned long long)n, delta, b, f);
            fail();
        }
    }
    printf("worst relative |P(X <= k; n, bound) - delta| / delta over 300 draws: %.3g\n", worst);
}

static void test_min_items(void **state)
{
    (void)state;
    assert_int_equal(tdm_risk_min_items(0.01, 0.05), 299);
    assert_int_equal(tdm_risk_min_items(0.05, 0.05), 59);
    assert_int_equal(tdm_risk_min_items(0.02, 0.05), 149);
    assert_int_equal(tdm_risk_min_items(0.1, 0.1), 22);
    assert_int_equal(tdm_risk_min_items(0.001, 0.01), 4603);

    assert_int_equal(tdm_risk_min_items(0.0, 0.05), 0);
    assert_int_equal(tdm_risk_min_items(1.0, 0.05), 0);
    assert_int_equal(tdm_risk_min_items(0.01, 0.0), 0);
    assert_int_equal(tdm_risk_min_items(0.01, 1.0), 0);
    assert_int_equal(tdm_risk_min_items(NAN, 0.05), 0);
    assert_int_equal(tdm_risk_min_items(0.01, NAN), 0);

    /* The definition, at random points and where the closed form is an integer. */
    tdm__rng rng;
    tdm__rng_seed(&rng, 99);
    for (int t = 0; t < 2000; t++) {
        double alpha = t == 0 ? 0.5 : t == 1 ? 0.9 : exp(-10.0 * tdm__rng_double(&rng));
        double delta = t == 0 ? 0.25 : t == 1 ? 0.01 : exp(-20.0 * tdm__rng_double(&rng));
        if (!(alpha < 1.0 && delta < 1.0))
            continue;
        uint64_t m = tdm_risk_min_items(alpha, delta);
        assert_true(m >= 1);
        assert_true(tdm_binomial_upper_bound(0, m, delta) <= alpha);
        if (m > 1)
            assert_true(tdm_binomial_upper_bound(0, m - 1, delta) > alpha);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The threshold                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * The header's definition, done the slow way: candidates are the distinct confidences from
 * high to low; each counts the items at or above it from scratch.
 */
/* Where the header says the sequence starts for n items. */
static uint64_t first_count(size_t n, double alpha, double delta)
{
    uint64_t start = tdm_risk_start_items(alpha, delta);
    return (uint64_t)n >= start ? start : tdm_risk_min_items(alpha, delta);
}

static void reference_quadratic(const double *conf, const unsigned char *correct, size_t n,
                                double alpha, double delta, tdm_risk_result *out)
{
    tdm_risk_result r = {0, INFINITY, 0, 0, 1.0, 0};
    uint64_t min_items = first_count(n, alpha, delta);
    double prev = INFINITY;
    int first = 1;
    for (;;) {
        /* The next distinct value below `prev` (the first time: the largest). */
        int have = 0;
        double t = 0.0;
        for (size_t i = 0; i < n; i++)
            if ((first || conf[i] < prev) && (!have || conf[i] > t)) {
                t = conf[i];
                have = 1;
            }
        if (!have)
            break;
        first = 0;
        prev = t;
        size_t above = 0, errors = 0;
        for (size_t i = 0; i < n; i++)
            if (conf[i] >= t) {
                above++;
                errors += correct[i] ? 0 : 1;
            }
        if ((uint64_t)above < min_items)
            continue;
        r.n_tested++;
        double b = tdm_binomial_upper_bound(errors, above, delta);
        if (!(b <= alpha)) {
            if (!r.found)
                r.error_bound = b;
            break;
        }
        r.found = 1;
        r.threshold = t;
        r.n_above = above;
        r.errors = errors;
        r.error_bound = b;
    }
    *out = r;
}

typedef struct pair {
    double c;
    unsigned char ok;
} pair;

static int pair_desc(const void *a, const void *b)
{
    double x = ((const pair *)a)->c, y = ((const pair *)b)->c;
    return (x < y) - (x > y);
}

/* The same definition in O(n log n): qsort, then the bound at the end of every tie group. */
static void reference_sorted(const double *conf, const unsigned char *correct, size_t n,
                             double alpha, double delta, tdm_risk_result *out)
{
    tdm_risk_result r = {0, INFINITY, 0, 0, 1.0, 0};
    uint64_t min_items = first_count(n, alpha, delta);
    pair *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i].c = conf[i];
        p[i].ok = correct[i];
    }
    qsort(p, n, sizeof *p, pair_desc);
    size_t i = 0, errors = 0;
    while (i < n) {
        double t = p[i].c;
        while (i < n && p[i].c == t)
            errors += p[i++].ok ? 0 : 1;
        if ((uint64_t)i < min_items)
            continue;
        r.n_tested++;
        double b = tdm_binomial_upper_bound(errors, i, delta);
        if (!(b <= alpha)) {
            if (!r.found)
                r.error_bound = b;
            break;
        }
        r.found = 1;
        r.threshold = t;
        r.n_above = i;
        r.errors = errors;
        r.error_bound = b;
    }
    free(p);
    *out = r;
}

static void assert_same_result(const tdm_risk_result *got, const tdm_risk_result *want)
{
    if (got->found != want->found || got->threshold != want->threshold ||
        got->n_above != want->n_above || got->errors != want->errors ||
        got->n_tested != want->n_tested || got->error_bound != want->error_bound) {
        print_error("got  found=%d threshold=%.17g n_above=%zu errors=%zu bound=%.17g "
                    "tested=%zu\n",
                    got->found, got->threshold, got->n_above, got->errors, got->error_bound,
                    got->n_tested);
        print_error("want found=%d threshold=%.17g n_above=%zu errors=%zu bound=%.17g "
                    "tested=%zu\n",
                    want->found, want->threshold, want->n_above, want->errors, want->error_bound,
                    want->n_tested);
        fail();
    }
}

static tdm_risk_result run(const double *conf, const unsigned char *correct, size_t n, double alpha,
                           double delta)
{
    tdm_risk_result r;
    memset(&r, 0xa5, sizeof r);
    assert_int_equal(tdm_risk_threshold(conf, correct, n, alpha, delta, &r), 0);
    return r;
}

static void test_threshold_synthetic_known(void **state)
{
    (void)state;
    /* 1000 items at 1.000, 0.999, ..., 0.001: the top 600 right, then every 10th wrong. */
    enum { N = 1000 };
    double conf[N];
    unsigned char ok[N];
    for (size_t i = 0; i < N; i++) {
        conf[i] = (double)(N - i) / 1000.0;
        ok[i] = (i < 600 || (i - 600) % 10 != 9) ? 1 : 0;
    }
    const double alphas[] = {0.01, 0.02, 0.05, 0.1};
    for (size_t a = 0; a < 4; a++) {
        tdm_risk_result got = run(conf, ok, N, alphas[a], 0.05);
        tdm_risk_result want;
        reference_quadratic(conf, ok, N, alphas[a], 0.05, &want);
        printf("alpha %.2f: threshold %.3f, %zu items, %zu errors, bound %.5f, %zu tests\n",
               alphas[a], got.threshold, got.n_above, got.errors, got.error_bound, got.n_tested);
        assert_same_result(&got, &want);
        assert_true(got.found);
        assert_true(got.error_bound <= alphas[a]);
    }
    /*
     * By hand at alpha = 0.01: the first error is item 609. With 610 items and 1 error the
     * bound is 0.0078 (pass); item 619 makes 2 errors in 620, bound 0.0102 (fail). So the
     * threshold is item 618's confidence, 0.382, with 619 items above it, after the tests at
     * 299, 300, ..., 620 items.
     */
    tdm_risk_result r = run(conf, ok, N, 0.01, 0.05);
    assert_int_equal(r.found, 1);
    assert_true(r.threshold == (double)(N - 618) / 1000.0);
    assert_int_equal(r.n_above, 619);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.n_tested, 620 - 299 + 1);
    assert_true(r.error_bound == tdm_binomial_upper_bound(1, 619, 0.05));

    /* The input order must not matter. */
    tdm__rng rng;
    tdm__rng_seed(&rng, 5);
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = tdm__rng_below(&rng, i + 1);
        double tc = conf[i];
        conf[i] = conf[j];
        conf[j] = tc;
        unsigned char to = ok[i];
        ok[i] = ok[j];
        ok[j] = to;
    }
    tdm_risk_result shuffled = run(conf, ok, N, 0.01, 0.05);
    assert_same_result(&shuffled, &r);
}

static void test_threshold_too_few_items(void **state)
{
    (void)state;
    enum { N = 298 };
    double conf[N];
    unsigned char ok[N];
    for (size_t i = 0; i < N; i++) {
        conf[i] = 1.0 - (double)i / N;
        ok[i] = 1;
    }
    tdm_risk_result r = run(conf, ok, N, 0.01, 0.05);
    assert_int_equal(r.found, 0);
    assert_true(isinf(r.threshold) && r.threshold > 0);
    assert_int_equal(r.n_above, 0);
    assert_int_equal(r.errors, 0);
    assert_true(r.error_bound == 1.0);
    assert_int_equal(r.n_tested, 0);

    /* One more clean item is exactly enough. */
    double conf2[N + 1];
    unsigned char ok2[N + 1];
    memcpy(conf2, conf, sizeof conf);
    memcpy(ok2, ok, sizeof ok);
    conf2[N] = 0.0;
    ok2[N] = 1;
    r = run(conf2, ok2, N + 1, 0.01, 0.05);
    assert_int_equal(r.found, 1);
    assert_true(r.threshold == 0.0);
    assert_int_equal(r.n_above, 299);
    assert_int_equal(r.n_tested, 1);

    /* n == 0, with NULL arrays, is valid and finds nothing. */
    memset(&r, 0, sizeof r);
    assert_int_equal(tdm_risk_threshold(NULL, NULL, 0, 0.01, 0.05, &r), 0);
    assert_int_equal(r.found, 0);
    assert_true(isinf(r.threshold));
    assert_true(r.error_bound == 1.0);
}

static void test_threshold_first_test_fails(void **state)
{
    (void)state;
    /* 400 items, the most confident one wrong: the first test (at 299 items) fails. */
    enum { N = 400 };
    double conf[N];
    unsigned char ok[N];
    for (size_t i = 0; i < N; i++) {
        conf[i] = 1.0 - (double)i / N;
        ok[i] = i != 0;
    }
    tdm_risk_result r = run(conf, ok, N, 0.01, 0.05);
    assert_int_equal(r.found, 0);
    assert_true(isinf(r.threshold));
    assert_int_equal(r.n_tested, 1);
    assert_true(r.error_bound == tdm_binomial_upper_bound(1, 299, 0.05));
    assert_true(r.error_bound > 0.01);

    /* A later pass must not rescue an earlier failure: 300 clean, 5 wrong, 800 clean (fewer
     * items than tdm_risk_start_items(), so the sequence starts at 299). */
    enum { M = 1105 };
    static double c2[M];
    static unsigned char o2[M];
    for (size_t i = 0; i < M; i++) {
        c2[i] = 1.0 - (double)i / M;
        o2[i] = !(i >= 300 && i < 305);
    }
    r = run(c2, o2, M, 0.01, 0.05);
    /* Tests at 299 and 300 items pass; at 301, 1 error gives a bound of 0.0157: stop. */
    assert_int_equal(r.found, 1);
    assert_int_equal(r.n_above, 300);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.n_tested, 3);
    tdm_risk_result want;
    reference_sorted(c2, o2, M, 0.01, 0.05, &want);
    assert_same_result(&r, &want);
}

static void test_start_items(void **state)
{
    (void)state;
    /* Values from the Beta quantile with a real-valued error count (scipy.stats.beta.ppf):
     * the smallest n with ppf(1 - delta, alpha n / 2 + 1, n - alpha n / 2) <= alpha. */
    assert_int_equal(tdm_risk_start_items(0.01, 0.05), 1146);
    assert_int_equal(tdm_risk_start_items(0.05, 0.05), 223);
    assert_int_equal(tdm_risk_start_items(0.02, 0.05), 569);
    assert_int_equal(tdm_risk_start_items(0.1, 0.1), 75);
    assert_int_equal(tdm_risk_start_items(0.001, 0.05), 11529);
    assert_int_equal(tdm_risk_start_items(0.01, 0.01), 2029);
    assert_int_equal(tdm_risk_start_items(0.0, 0.05), 0);
    assert_int_equal(tdm_risk_start_items(0.01, 1.0), 0);
    /* Never before the point where zero errors certify. */
    assert_true(tdm_risk_start_items(0.3, 0.05) >= tdm_risk_min_items(0.3, 0.05));
    /* At the start, half the target error rate (rounded down) certifies. */
    assert_true(tdm_binomial_upper_bound(5, 1146, 0.05) <= 0.01);
}

/*
 * The reason for the later start: 10,000 items with two confidently wrong ones at ranks 400
 * and 900 and 0.3% errors further down. Starting at 299 items, the sequence would stop at
 * 399; starting at 1,146 it certifies thousands.
 */
static void test_threshold_start_tolerates_early_mistakes(void **state)
{
    (void)state;
    enum { N = 10000 };
    static double conf[N];
    static unsigned char ok[N];
    tdm__rng rng;
    tdm__rng_seed(&rng, 7);
    for (size_t i = 0; i < N; i++) {
        conf[i] = 1.0 - (double)i / N;
        ok[i] = i == 399 || i == 899 ? 0 : (i < 1000 ? 1 : tdm__rng_double(&rng) >= 0.003);
    }
    tdm_risk_result r = run(conf, ok, N, 0.01, 0.05);
    tdm_risk_result want;
    reference_sorted(conf, ok, N, 0.01, 0.05, &want);
    assert_same_result(&r, &want);
    assert_int_equal(r.found, 1);
    assert_true(r.n_above > 5000);
    assert_true(r.error_bound <= 0.01);
    /* What the earliest possible start would have given. */
    assert_false(tdm_binomial_upper_bound(1, 400, 0.05) <= 0.01);
}

static void test_threshold_ties_enter_together(void **state)
{
    (void)state;
    enum { N = 700 };
    double conf[N];
    unsigned char ok[N];
    /*
     * 600 clean items at 0.95, then a tie group of 100 at 0.5 whose first ten are wrong.
     * Taken one at a time, the group's first item would pass (1 error in 601, bound 0.0079)
     * and the threshold would fall to 0.5 with 601 items above it; but a threshold cannot
     * separate equal confidences, and all 100 together bring 10 errors: fail at 0.5.
     */
    for (size_t i = 0; i < N; i++) {
        conf[i] = i < 600 ? 0.95 : 0.5;
        ok[i] = !(i >= 600 && i < 610);
    }
    tdm_risk_result r = run(conf, ok, N, 0.01, 0.05);
    assert_int_equal(r.found, 1);
    assert_true(r.threshold == 0.95);
    assert_int_equal(r.n_above, 600);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.n_tested, 2);

    /*
     * The other way round: with only the first 2 of the group wrong, one at a time would
     * fail at 602 items (2 errors, bound 0.0105), but the whole group passes (2 in 700,
     * bound 0.0090).
     */
    for (size_t i = 602; i < 610; i++)
        ok[i] = 1;
    assert_true(tdm_binomial_upper_bound(2, 602, 0.05) > 0.01);
    r = run(conf, ok, N, 0.01, 0.05);
    assert_int_equal(r.found, 1);
    assert_true(r.threshold == 0.5);
    assert_int_equal(r.n_above, 700);
    assert_int_equal(r.errors, 2);
    assert_int_equal(r.n_tested, 2);
    assert_true(r.error_bound == tdm_binomial_upper_bound(2, 700, 0.05));

    /* Where in the group (and in the input) the errors sit makes no difference. */
    ok[600] = ok[601] = 1;
    ok[698] = ok[699] = 0;
    tdm_risk_result moved = run(conf, ok, N, 0.01, 0.05);
    assert_same_result(&moved, &r);
    double c3[N];
    unsigned char o3[N];
    for (size_t i = 0; i < N; i++) {
        size_t j = (i * 337) % N; /* 337 is prime to 700: a permutation */
        c3[j] = conf[i];
        o3[j] = ok[i];
    }
    moved = run(c3, o3, N, 0.01, 0.05);
    assert_same_result(&moved, &r);

    /* Everything tied: one test, on all items. */
    double c4[1000];
    unsigned char o4[1000];
    for (size_t i = 0; i < 1000; i++) {
        c4[i] = 0.7;
        o4[i] = i % 400 != 7; /* 3 errors */
    }
    r = run(c4, o4, 1000, 0.01, 0.05);
    assert_int_equal(r.found, 1);
    assert_true(r.threshold == 0.7);
    assert_int_equal(r.n_above, 1000);
    assert_int_equal(r.errors, 3);
    assert_int_equal(r.n_tested, 1);

    /* -0.0 and +0.0 are one value. */
    double c5[400];
    unsigned char o5[400];
    for (size_t i = 0; i < 400; i++) {
        c5[i] = i < 300 ? 1.0 : (i % 2 ? 0.0 : -0.0);
        o5[i] = 1;
    }
    r = run(c5, o5, 400, 0.01, 0.05);
    assert_int_equal(r.n_tested, 2);
    assert_int_equal(r.n_above, 400);
    assert_true(r.threshold == 0.0);
}

static void test_threshold_all_correct(void **state)
{
    (void)state;
    enum { N = 1000 };
    double conf[N];
    unsigned char ok[N];
    for (size_t i = 0; i < N; i++) {
        conf[i] = 0.2 + 0.5 * (double)((i * 7919) % N) / N; /* a permutation of 1000 values */
        ok[i] = 1;
    }
    tdm_risk_result r = run(conf, ok, N, 0.01, 0.05);
    assert_int_equal(r.found, 1);
    assert_true(r.threshold == 0.2);
    assert_int_equal(r.n_above, N);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.n_tested, N - 299 + 1);
    assert_true(r.error_bound == tdm_binomial_upper_bound(0, N, 0.05));

    /* Infinite confidences are ordinary values. */
    conf[3] = INFINITY;
    conf[4] = -INFINITY;
    r = run(conf, ok, N, 0.01, 0.05);
    assert_true(r.threshold == -INFINITY);
    assert_int_equal(r.n_above, N);
}

/*
 * The decision at each candidate is "tdm_binomial_upper_bound() <= alpha", exactly, even
 * when alpha sits a hair's breadth from the bound: whatever shortcut the scan takes must
 * agree with the bound itself there.
 */
static void test_threshold_decision_at_the_boundary(void **state)
{
    (void)state;
    static const struct {
        size_t k, m;
        double delta;
    } cases[] = {{0, 400, 0.05}, {3, 700, 0.05},  {12, 1500, 0.1}, {40, 1999, 0.05},
                 {1, 350, 0.2},  {25, 900, 0.01}, {7, 2000, 0.3}};
    static double conf[2000];
    static unsigned char ok[2000];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t m = cases[c].m;
        for (size_t i = 0; i < m; i++) {
            conf[i] = 0.5; /* one group: one test on all m items */
            ok[i] = i >= cases[c].k;
        }
        double b = tdm_binomial_upper_bound(cases[c].k, m, cases[c].delta);
        const double nudges[] = {-1e-9, -1e-12, 0.0, 1e-12, 1e-9};
        for (size_t j = 0; j < 5; j++) {
            double alpha = b * (1.0 + nudges[j]);
            tdm_risk_result r = run(conf, ok, m, alpha, cases[c].delta);
            if ((uint64_t)m < first_count(m, alpha, cases[c].delta)) {
                assert_int_equal(r.n_tested, 0);
                continue;
            }
            assert_int_equal(r.n_tested, 1);
            assert_int_equal(r.found, b <= alpha);
        }
    }
}

static void test_threshold_bad_args(void **state)
{
    (void)state;
    double conf[3] = {0.1, 0.2, 0.3};
    unsigned char ok[3] = {1, 1, 0};
    tdm_risk_result r;
    memset(&r, 0x5a, sizeof r);
    tdm_risk_result before = r;
    assert_int_equal(tdm_risk_threshold(conf, ok, 3, 0.01, 0.05, NULL), TDM_EINVAL);
    assert_int_equal(tdm_risk_threshold(NULL, ok, 3, 0.01, 0.05, &r), TDM_EINVAL);
    assert_int_equal(tdm_risk_threshold(conf, NULL, 3, 0.01, 0.05, &r), TDM_EINVAL);
    assert_int_equal(tdm_risk_threshold(conf, ok, 3, 0.0, 0.05, &r), TDM_EINVAL);
    assert_int_equal(tdm_risk_threshold(conf, ok, 3, 1.0, 0.05, &r), TDM_EINVAL);
    assert_int_equal(tdm_risk_threshold(conf, ok, 3, NAN, 0.05, &r), TDM_EINVAL);
    assert_int_equal(tdm_risk_threshold(conf, ok, 3, 0.01, 0.0, &r), TDM_EINVAL);
    assert_int_equal(tdm_risk_threshold(conf, ok, 3, 0.01, 1.0, &r), TDM_EINVAL);
    assert_int_equal(tdm_risk_threshold(conf, ok, 3, 0.01, NAN, &r), TDM_EINVAL);
    conf[1] = NAN;
    assert_int_equal(tdm_risk_threshold(conf, ok, 3, 0.01, 0.05, &r), TDM_EINVAL);
    /* A failing call leaves the result alone. */
    assert_memory_equal(&r, &before, sizeof r);
}

static void test_threshold_random_against_reference(void **state)
{
    (void)state;
    tdm__rng rng;
    tdm__rng_seed(&rng, 424242);
    const double alphas[] = {0.01, 0.05, 0.1};
    const double levels[] = {10, 50, 200, 1000, 1e9};
    enum { MAX_N = 2000 };
    static double conf[MAX_N];
    static unsigned char ok[MAX_N];
    size_t found = 0, tested = 0;
    for (int t = 0; t < 200; t++) {
        size_t n = 300 + (size_t)tdm__rng_below(&rng, MAX_N - 300 + 1);
        double alpha = alphas[tdm__rng_below(&rng, 3)];
        double delta = (t % 4 == 0) ? 0.1 : 0.05;
        double q = levels[tdm__rng_below(&rng, 5)]; /* few levels, many ties */
        double base = alpha * (0.2 + 2.0 * tdm__rng_double(&rng));
        int pattern = (int)tdm__rng_below(&rng, 3);
        for (size_t i = 0; i < n; i++) {
            double c = floor(tdm__rng_double(&rng) * q) / q;
            double p_wrong;
            if (pattern == 0)
                p_wrong = base; /* errors anywhere */
            else if (pattern == 1)
                p_wrong = 3.0 * base * (1.0 - c) * (1.0 - c); /* errors at low confidence */
            else
                p_wrong = c < 0.7 ? 4.0 * base : base / 10.0;
            conf[i] = c;
            ok[i] = tdm__rng_double(&rng) >= p_wrong;
        }
        tdm_risk_result got = run(conf, ok, n, alpha, delta);
        tdm_risk_result want;
        reference_quadratic(conf, ok, n, alpha, delta, &want);
        assert_same_result(&got, &want);
        found += (size_t)got.found;
        tested += got.n_tested;
    }
    printf("200 random data sets: %zu certified a threshold, %zu tests in all\n", found, tested);
    /* The draw must exercise both outcomes, or the comparison proves little. */
    assert_true(found > 40 && found < 180);
}

static void test_threshold_large_fast(void **state)
{
    (void)state;
    /* Distinct values everywhere; errors get likelier as confidence falls. */
    size_t n = 1000000;
    double *conf = malloc(n * sizeof *conf);
    unsigned char *ok = malloc(n);
    assert_non_null(conf);
    assert_non_null(ok);
    tdm__rng rng;
    tdm__rng_seed(&rng, 77);
    for (size_t i = 0; i < n; i++) {
        conf[i] = tdm__rng_double(&rng);
        ok[i] = tdm__rng_double(&rng) >= 0.12 * (1.0 - conf[i]);
    }
    double t0 = tdm__now();
    tdm_risk_result r = run(conf, ok, n, 0.05, 0.05);
    double ms = (tdm__now() - t0) * 1e3;
    printf("n = 10^6: threshold %.6f, %zu items, %zu errors, bound %.6f, %zu tests, %.1f ms\n",
           r.threshold, r.n_above, r.errors, r.error_bound, r.n_tested, ms);
    assert_true(r.found);
    assert_true(r.n_tested > 500000);
    /* Well under a second in a plain build; sanitizer builds get slack. */
    assert_true(ms < 3000.0);

    /* The same scan at 20,000 items against the plain sort-and-evaluate reference. */
    for (int rep = 0; rep < 3; rep++) {
        size_t m = 20000;
        tdm_risk_result want;
        double alpha = rep == 0 ? 0.05 : rep == 1 ? 0.1 : 0.03;
        reference_sorted(conf + rep * m, ok + rep * m, m, alpha, 0.05, &want);
        r = run(conf + rep * m, ok + rep * m, m, alpha, 0.05);
        assert_same_result(&r, &want);
    }
    free(conf);
    free(ok);
}

static void test_lower_bound(void **state)
{
    (void)state;
    /* scipy.stats.beta.ppf(0.05, k, n - k + 1). */
    assert_true(fabs(tdm_binomial_lower_bound(5, 100, 0.05) - 0.019905563662171832) < 1e-9);
    assert_true(fabs(tdm_binomial_lower_bound(50, 1000, 0.05) - 0.03916353592558932) < 1e-9);
    assert_true(fabs(tdm_binomial_lower_bound(1, 10, 0.05) - 0.005116196891823702) < 1e-9);
    assert_true(tdm_binomial_lower_bound(0, 100, 0.05) == 0.0);
    assert_true(tdm_binomial_lower_bound(7, 50, 0.05) < 7.0 / 50);
    assert_true(isnan(tdm_binomial_lower_bound(5, 4, 0.05)));
}

static void test_weighted_matches_unweighted(void **state)
{
    (void)state;
    tdm__rng rng;
    tdm__rng_seed(&rng, 99);
    enum { MAX_N = 3000 };
    static double conf[MAX_N], w[MAX_N];
    static unsigned char ok[MAX_N];
    for (int t = 0; t < 40; t++) {
        size_t n = 200 + (size_t)tdm__rng_below(&rng, MAX_N - 200);
        double err = 0.002 * (double)tdm__rng_below(&rng, 10);
        for (size_t i = 0; i < n; i++) {
            conf[i] = (double)tdm__rng_below(&rng, 500) / 500.0;
            ok[i] = tdm__rng_double(&rng) >= err * (1.5 - conf[i]);
            w[i] = 1.0;
        }
        tdm_risk_result a, b;
        assert_int_equal(tdm_risk_threshold(conf, ok, n, 0.02, 0.05, &a), 0);
        assert_int_equal(tdm_risk_threshold_weighted(conf, ok, w, n, 0.02, 0.05, &b), 0);
        assert_int_equal(a.found, b.found);
        assert_true(a.threshold == b.threshold);
        assert_int_equal(a.n_above, b.n_above);
        assert_int_equal(a.errors, b.errors);
        assert_true(fabs(a.error_bound - b.error_bound) < 1e-9);
    }
}

static void test_weighted_counts_effective_items(void **state)
{
    (void)state;
    /* 400 audit samples at rate 1/50 (weight 50) and nothing else: 400 effective items, not
     * 20,000, so 1% cannot be certified with 2 errors (bound(2, 400) = 1.57%), though the
     * weighted rate (0.5%) is under it. */
    enum { N = 400 };
    double conf[N], w[N];
    unsigned char ok[N];
    for (size_t i = 0; i < N; i++) {
        conf[i] = 0.99;
        w[i] = 50;
        ok[i] = i >= 2;
    }
    tdm_risk_result r;
    assert_int_equal(tdm_risk_threshold_weighted(conf, ok, w, N, 0.01, 0.05, &r), 0);
    assert_int_equal(r.found, 0);
    /* Mixed weights lower the effective count below the number of items. */
    for (size_t i = 0; i < N; i++) {
        w[i] = i % 2 ? 1 : 10;
        ok[i] = 1;
    }
    assert_int_equal(tdm_risk_threshold_weighted(conf, ok, w, N, 0.01, 0.05, &r), 0);
    /* n_eff = (200*11)^2 / (200*101) = 239.6 < 299: nothing certifies 1%. */
    assert_int_equal(r.found, 0);
    assert_int_equal(tdm_risk_threshold_weighted(conf, ok, w, N, 0.02, 0.05, &r), 0);
    assert_int_equal(r.found, 1);
    w[3] = 0;
    assert_int_equal(tdm_risk_threshold_weighted(conf, ok, w, N, 0.02, 0.05, &r), TDM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_published_values),
        cmocka_unit_test(test_bound_reference_values),
        cmocka_unit_test(test_start_items),
        cmocka_unit_test(test_lower_bound),
        cmocka_unit_test(test_weighted_matches_unweighted),
        cmocka_unit_test(test_weighted_counts_effective_items),
        cmocka_unit_test(test_threshold_start_tolerates_early_mistakes),
        cmocka_unit_test(test_bound_edges),
        cmocka_unit_test(test_bound_monotone),
        cmocka_unit_test(test_bound_inverts_brute_force_cdf),
        cmocka_unit_test(test_min_items),
        cmocka_unit_test(test_threshold_synthetic_known),
        cmocka_unit_test(test_threshold_too_few_items),
        cmocka_unit_test(test_threshold_first_test_fails),
        cmocka_unit_test(test_threshold_ties_enter_together),
        cmocka_unit_test(test_threshold_all_correct),
        cmocka_unit_test(test_threshold_decision_at_the_boundary),
        cmocka_unit_test(test_threshold_bad_args),
        cmocka_unit_test(test_threshold_random_against_reference),
        cmocka_unit_test(test_threshold_large_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
