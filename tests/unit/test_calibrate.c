/*
 * test_calibrate.c — temperature scaling and the expected calibration error
 * (src/learn/calibrate.c).
 *
 * DESIGN NOTES
 *
 * Temperature scaling (Guo et al., 2017) is tested on data drawn from a known model: true
 * logits z, labels sampled from softmax(z). Handed c * z, the fit must find T close to c,
 * since softmax((c z) / c) is the true model. A second, independent check minimises the same
 * NLL here by golden-section search over log T, with the NLL written out in long double, and
 * the Newton fit must land on the same minimum. The clamp cases (every item fitted with a
 * margin, every item wrong, no curvature at all) and the stride (padding filled with NaN,
 * which must never be read) are pinned by hand.
 *
 * The expected calibration error is checked on a tiny example computed by hand, on large
 * samples whose calibration is known by construction (correct ~ Bernoulli(confidence) is
 * calibrated; Bernoulli(confidence^3) is over-confident), and end to end: over-confident
 * model scores have a large ECE that temperature scaling removes.
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

static void assert_near(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("got %.17g, want %.17g (tolerance %g)\n", got, want, tol);
        fail();
    }
}

/* A standard normal draw (Box-Muller). */
static double gauss(tdm__rng *rng)
{
    double u = tdm__rng_double(rng);
    double v = tdm__rng_double(rng);
    return sqrt(-2.0 * log1p(-u)) * cos(6.283185307179586 * v);
}

/* Synthetic scores from a known model: n rows of k classes, row i at z[i * k]. */
typedef struct synth {
    size_t n, k;
    double *z;        /* true logits */
    uint32_t *labels; /* drawn from softmax(z) */
    float *scaled;    /* scale * z, what the fit is handed */
} synth;

static void synth_make(synth *s, size_t n, size_t k, double spread, uint64_t seed)
{
    s->n = n;
    s->k = k;
    s->z = malloc(n * k * sizeof *s->z);
    s->labels = malloc(n * sizeof *s->labels);
    s->scaled = malloc(n * k * sizeof *s->scaled);
    double *p = malloc(k * sizeof *p);
    assert_true(s->z && s->labels && s->scaled && p);
    tdm__rng rng;
    tdm__rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        double *z = s->z + i * k;
        double m = -INFINITY, sum = 0.0;
        for (size_t j = 0; j < k; j++) {
            z[j] = spread * gauss(&rng);
            if (z[j] > m)
                m = z[j];
        }
        for (size_t j = 0; j < k; j++) {
            p[j] = exp(z[j] - m);
            sum += p[j];
        }
        double u = tdm__rng_double(&rng) * sum;
        size_t y = 0;
        while (y + 1 < k && (u -= p[y]) > 0.0)
            y++;
        s->labels[i] = (uint32_t)y;
    }
    free(p);
}

static void synth_scale(synth *s, double scale)
{
    for (size_t i = 0; i < s->n * s->k; i++)
        s->scaled[i] = (float)(scale * s->z[i]);
}

static void synth_free(synth *s)
{
    free(s->z);
    free(s->labels);
    free(s->scaled);
}

/* Top-class confidence of softmax(logits / T) and whether the top class is the label. */
static void top_confidence(const float *logits, size_t n, size_t k, const uint32_t *labels,
                           double temperature, double *conf, unsigned char *correct)
{
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        size_t top = 0;
        for (size_t j = 1; j < k; j++)
            if (z[j] > z[top])
                top = j;
        double sum = 0.0;
        for (size_t j = 0; j < k; j++)
            sum += exp(((double)z[j] - (double)z[top]) / temperature);
        conf[i] = 1.0 / sum;
        correct[i] = top == labels[i];
    }
}

/* Mean NLL of softmax(logits / T), in long double; independent of the code under test. */
static long double reference_nll(const float *logits, size_t n, size_t k, size_t stride,
                                 const uint32_t *labels, double temperature)
{
    long double total = 0.0L;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * stride;
        long double m = z[0];
        for (size_t j = 1; j < k; j++)
            if (z[j] > m)
                m = z[j];
        long double sum = 0.0L;
        for (size_t j = 0; j < k; j++)
            sum += expl(((long double)z[j] - m) / temperature);
        total += logl(sum) - ((long double)z[labels[i]] - m) / temperature;
    }
    return total / (long double)n;
}

/* Golden-section search for the NLL minimum over log T in [log 0.01, log 100]. */
static double reference_temperature(const float *logits, size_t n, size_t k, const uint32_t *labels)
{
    const double g = 0.6180339887498949;
    double a = log(0.01), b = log(100.0);
    double c = b - g * (b - a), d = a + g * (b - a);
    long double fc = reference_nll(logits, n, k, k, labels, exp(c));
    long double fd = reference_nll(logits, n, k, k, labels, exp(d));
    while (b - a > 1e-9) {
        if (fc < fd) {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = reference_nll(logits, n, k, k, labels, exp(c));
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = reference_nll(logits, n, k, k, labels, exp(d));
        }
    }
    return exp(0.5 * (a + b));
}

static void test_temperature_recovers_known_scale(void **state)
{
    (void)state;
    synth s;
    synth_make(&s, 20000, 10, 2.0, 1234);
    const double scales[] = {3.0, 1.0, 0.5};
    for (size_t i = 0; i < 3; i++) {
        synth_scale(&s, scales[i]);
        double t = -1.0;
        assert_int_equal(tdm_calibrate_temperature(s.scaled, s.n, s.k, s.k, s.labels, &t), 0);
        printf("logits x %.1f: fitted T = %.5f\n", scales[i], t);
        assert_near(t / scales[i], 1.0, 0.10);
    }
    synth_free(&s);
}

static void test_temperature_matches_direct_minimisation(void **state)
{
    (void)state;
    synth s;
    synth_make(&s, 3000, 7, 1.5, 77);
    const double scales[] = {2.5, 0.7};
    for (size_t i = 0; i < 2; i++) {
        synth_scale(&s, scales[i]);
        double t = 0.0;
        assert_int_equal(tdm_calibrate_temperature(s.scaled, s.n, s.k, s.k, s.labels, &t), 0);
        double want = reference_temperature(s.scaled, s.n, s.k, s.labels);
        printf("Newton T = %.9f, golden-section T = %.9f\n", t, want);
        assert_near(t / want, 1.0, 1e-5);
        /* And the fitted T is a minimum of the reference NLL, not just near one. */
        long double at = reference_nll(s.scaled, s.n, s.k, s.k, s.labels, t);
        assert_true(at <= reference_nll(s.scaled, s.n, s.k, s.k, s.labels, t * 1.001));
        assert_true(at <= reference_nll(s.scaled, s.n, s.k, s.k, s.labels, t / 1.001));
    }
    synth_free(&s);
}

/*
 * Hard cases for plain Newton, with a closed-form answer: of 1000 two-class items with
 * logits (0, m), w have label 0 and the rest label 1, so the NLL is minimal where
 * e^(m / T) = (1000 - w) / w. With a large margin the softmax at T = 1 is saturated, the
 * curvature is tiny and the Newton step flies far past the optimum (or vanishes), so the
 * clamp, the step halving and the flat-curvature fallback all get exercised.
 */
static void test_temperature_saturated_start(void **state)
{
    (void)state;
    enum { N = 1000 };
    static float z[2 * N];
    static uint32_t y[N];
    const double margins[] = {10, 30, 100, 300};
    const size_t wrongs[] = {1, 3, 100};
    for (size_t m = 0; m < 4; m++) {
        for (size_t w = 0; w < 3; w++) {
            for (size_t i = 0; i < N; i++) {
                z[2 * i] = 0.0f;
                z[2 * i + 1] = (float)margins[m];
                y[i] = i < wrongs[w] ? 0 : 1;
            }
            double want = margins[m] / log((double)(N - wrongs[w]) / (double)wrongs[w]);
            if (want > 100.0)
                want = 100.0; /* the clamp */
            double t = 0.0;
            assert_int_equal(tdm_calibrate_temperature(z, N, 2, 2, y, &t), 0);
            assert_near(t / want, 1.0, 1e-6);
        }
    }
}

static void test_temperature_honours_stride(void **state)
{
    (void)state;
    synth s;
    synth_make(&s, 2000, 5, 2.0, 9);
    synth_scale(&s, 2.0);
    size_t stride = 8;
    float *wide = malloc(s.n * stride * sizeof *wide);
    assert_non_null(wide);
    for (size_t i = 0; i < s.n; i++)
        for (size_t j = 0; j < stride; j++)
            wide[i * stride + j] = j < s.k ? s.scaled[i * s.k + j] : NAN;
    double packed = 0.0, strided = 0.0;
    assert_int_equal(tdm_calibrate_temperature(s.scaled, s.n, s.k, s.k, s.labels, &packed), 0);
    /* The padding is NaN: reading it would fail the call or poison the fit. */
    assert_int_equal(tdm_calibrate_temperature(wide, s.n, s.k, stride, s.labels, &strided), 0);
    assert_true(packed == strided);
    /* Only the last row's k values are needed, not a whole stride. */
    assert_int_equal(tdm_calibrate_temperature(wide, 1, s.k, 1000000, s.labels, &strided), 0);
    free(wide);
    synth_free(&s);
}

static void test_temperature_clamps(void **state)
{
    (void)state;
    enum { N = 200, K = 3 };
    float z[N * K];
    uint32_t y[N];
    double t;

    /* Every item right with a margin: a sharper softmax always helps; T stops at 0.01. */
    for (size_t i = 0; i < N; i++) {
        y[i] = (uint32_t)(i % K);
        for (size_t j = 0; j < K; j++)
            z[i * K + j] = j == y[i] ? 2.0f : -1.0f;
    }
    assert_int_equal(tdm_calibrate_temperature(z, N, K, K, y, &t), 0);
    assert_near(t, 0.01, 1e-12);

    /* Every item's label below the row mean: flatter always helps; T stops at 100. */
    for (size_t i = 0; i < N; i++)
        y[i] = (uint32_t)((i + 1) % K);
    assert_int_equal(tdm_calibrate_temperature(z, N, K, K, y, &t), 0);
    assert_near(t, 100.0, 1e-9);

    /* No curvature at all (equal logits): nothing to fit, T stays 1. */
    for (size_t i = 0; i < N * K; i++)
        z[i] = 0.25f;
    assert_int_equal(tdm_calibrate_temperature(z, N, K, K, y, &t), 0);
    assert_near(t, 1.0, 0.0);

    /* One class: softmax is 1 whatever T is. */
    uint32_t zeros[N] = {0};
    assert_int_equal(tdm_calibrate_temperature(z, N, 1, 1, zeros, &t), 0);
    assert_near(t, 1.0, 0.0);

    /* A single item, rightly ranked with a margin: also the sharp end of the clamp. */
    float one[3] = {0.0f, 5.0f, 1.0f};
    uint32_t label = 1;
    assert_int_equal(tdm_calibrate_temperature(one, 1, 3, 3, &label, &t), 0);
    assert_near(t, 0.01, 1e-12);

    /* Huge logits neither overflow nor lose the fit. */
    synth s;
    synth_make(&s, 2000, 4, 1.0, 31);
    synth_scale(&s, 1e4);
    assert_int_equal(tdm_calibrate_temperature(s.scaled, s.n, s.k, s.k, s.labels, &t), 0);
    assert_near(t, 100.0, 1e-9);
    synth_free(&s);
}

static void test_temperature_bad_args(void **state)
{
    (void)state;
    float z[6] = {1, 2, 3, 4, 5, 6};
    uint32_t y[2] = {0, 2};
    double t = 42.0;
    assert_int_equal(tdm_calibrate_temperature(z, 0, 3, 3, y, &t), TDM_ENODATA);
    assert_int_equal(tdm_calibrate_temperature(NULL, 0, 3, 3, NULL, &t), TDM_ENODATA);
    assert_int_equal(tdm_calibrate_temperature(NULL, 2, 3, 3, y, &t), TDM_EINVAL);
    assert_int_equal(tdm_calibrate_temperature(z, 2, 3, 3, NULL, &t), TDM_EINVAL);
    assert_int_equal(tdm_calibrate_temperature(z, 2, 3, 3, y, NULL), TDM_EINVAL);
    assert_int_equal(tdm_calibrate_temperature(z, 2, 3, 2, y, &t), TDM_EINVAL);
    assert_int_equal(tdm_calibrate_temperature(z, 2, 0, 3, y, &t), TDM_EINVAL);
    assert_int_equal(tdm_calibrate_temperature(z, 2, 3, SIZE_MAX, y, &t), TDM_EINVAL);
    uint32_t bad[2] = {0, 3};
    assert_int_equal(tdm_calibrate_temperature(z, 2, 3, 3, bad, &t), TDM_EINVAL);
    z[4] = NAN;
    assert_int_equal(tdm_calibrate_temperature(z, 2, 3, 3, y, &t), TDM_EINVAL);
    z[4] = INFINITY;
    assert_int_equal(tdm_calibrate_temperature(z, 2, 3, 3, y, &t), TDM_EINVAL);
    /* A failing call leaves the output alone. */
    assert_true(t == 42.0);
}

static void test_temperature_fast(void **state)
{
    (void)state;
    synth s;
    synth_make(&s, 10000, 77, 2.0, 555);
    synth_scale(&s, 3.0);
    double t = 0.0;
    double t0 = tdm__now();
    assert_int_equal(tdm_calibrate_temperature(s.scaled, s.n, s.k, s.k, s.labels, &t), 0);
    double ms = (tdm__now() - t0) * 1e3;
    printf("10,000 x 77: T = %.4f in %.1f ms\n", t, ms);
    assert_near(t / 3.0, 1.0, 0.10);
    /* About 35 ms in a plain build; the bound leaves room for sanitizers and busy machines. */
    assert_true(ms < 1000.0);
    synth_free(&s);
}

static void test_ece_by_hand(void **state)
{
    (void)state;
    const double conf[] = {0.25, 0.35, 0.65, 0.9, 1.0};
    const unsigned char ok[] = {0, 1, 1, 0, 1};
    /*
     * Two bins: [0, 0.5) holds 0.25 and 0.35 (accuracy 1/2, confidence 0.3): 2/5 * 0.2.
     * [0.5, 1] holds 0.65, 0.9 and 1.0 (accuracy 2/3, confidence 0.85): 3/5 * (0.85 - 2/3).
     */
    assert_near(tdm_expected_calibration_error(conf, ok, 5, 2),
                0.4 * 0.2 + 0.6 * (0.85 - 2.0 / 3.0), 1e-15);
    /*
     * Five bins: 1 = {0.25, 0.35}: 2/5 * 0.2; 3 = {0.65}: 1/5 * 0.35; 4 = {0.9, 1.0} (1.0
     * falls in the last bin): 2/5 * |0.5 - 0.95|.
     */
    assert_near(tdm_expected_calibration_error(conf, ok, 5, 5), 0.08 + 0.07 + 0.18, 1e-15);
    /* One bin: |accuracy - mean confidence| overall = |0.6 - 0.63|. */
    assert_near(tdm_expected_calibration_error(conf, ok, 5, 1), 0.03, 1e-15);
    /* Many bins (more than fit on the stack): each item alone, mean |correct - conf|. */
    double each = (0.25 + 0.65 + 0.35 + 0.9 + 0.0) / 5.0;
    assert_near(tdm_expected_calibration_error(conf, ok, 5, 1000), each, 1e-15);
    /* Out-of-range confidences land in the end bins rather than outside the array. */
    const double wild[] = {-0.5, 1.5};
    const unsigned char wok[] = {0, 1};
    assert_near(tdm_expected_calibration_error(wild, wok, 2, 10), 0.5 * 0.5 + 0.5 * 0.5, 1e-15);
}

static void test_ece_edges(void **state)
{
    (void)state;
    const double conf[] = {0.3};
    const unsigned char ok[] = {1};
    assert_true(tdm_expected_calibration_error(conf, ok, 0, 15) == 0.0);
    assert_true(tdm_expected_calibration_error(NULL, NULL, 0, 15) == 0.0);
    assert_true(tdm_expected_calibration_error(conf, ok, 1, 0) == 0.0);
    assert_near(tdm_expected_calibration_error(conf, ok, 1, 15), 0.7, 1e-15);
    assert_true(isnan(tdm_expected_calibration_error(NULL, ok, 1, 15)));
    const double nan_conf[] = {NAN};
    assert_true(isnan(tdm_expected_calibration_error(nan_conf, ok, 1, 15)));
}

static void test_ece_known_calibration(void **state)
{
    (void)state;
    enum { N = 50000 };
    static double conf[N];
    static unsigned char calibrated[N], overconfident[N];
    tdm__rng rng;
    tdm__rng_seed(&rng, 8);
    for (size_t i = 0; i < N; i++) {
        conf[i] = 0.3 + 0.7 * tdm__rng_double(&rng);
        double u = tdm__rng_double(&rng);
        calibrated[i] = u < conf[i];
        overconfident[i] = u < conf[i] * conf[i] * conf[i];
    }
    double good = tdm_expected_calibration_error(conf, calibrated, N, 15);
    double bad = tdm_expected_calibration_error(conf, overconfident, N, 15);
    printf("ECE calibrated %.4f, over-confident %.4f\n", good, bad);
    assert_true(good < 0.02);
    assert_true(bad > 0.15);
}

static void test_ece_end_to_end(void **state)
{
    (void)state;
    synth s;
    synth_make(&s, 20000, 10, 2.0, 4321);
    double *conf = malloc(s.n * sizeof *conf);
    unsigned char *ok = malloc(s.n);
    assert_true(conf && ok);

    synth_scale(&s, 1.0);
    top_confidence(s.scaled, s.n, s.k, s.labels, 1.0, conf, ok);
    double truth = tdm_expected_calibration_error(conf, ok, s.n, 15);

    synth_scale(&s, 3.0);
    top_confidence(s.scaled, s.n, s.k, s.labels, 1.0, conf, ok);
    double raw = tdm_expected_calibration_error(conf, ok, s.n, 15);

    double t = 0.0;
    assert_int_equal(tdm_calibrate_temperature(s.scaled, s.n, s.k, s.k, s.labels, &t), 0);
    top_confidence(s.scaled, s.n, s.k, s.labels, t, conf, ok);
    double fitted = tdm_expected_calibration_error(conf, ok, s.n, 15);

    printf("ECE: true model %.4f, logits x 3 %.4f, after T = %.3f: %.4f\n", truth, raw, t, fitted);
    assert_true(truth < 0.02);
    assert_true(raw > 0.1);
    assert_true(fitted < 0.02);
    free(conf);
    free(ok);
    synth_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_temperature_recovers_known_scale),
        cmocka_unit_test(test_temperature_matches_direct_minimisation),
        cmocka_unit_test(test_temperature_saturated_start),
        cmocka_unit_test(test_temperature_honours_stride),
        cmocka_unit_test(test_temperature_clamps),
        cmocka_unit_test(test_temperature_bad_args),
        cmocka_unit_test(test_temperature_fast),
        cmocka_unit_test(test_ece_by_hand),
        cmocka_unit_test(test_ece_edges),
        cmocka_unit_test(test_ece_known_calibration),
        cmocka_unit_test(test_ece_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
