/*
 * risk.c — certified error bounds and the guaranteed-risk confidence threshold.
 *
 * NOTES ON THE DESIGN
 *
 * The upper bound. Given `errors` = k mistakes among n items, the one-sided Clopper-Pearson
 * bound (Clopper & Pearson, 1934) is the p with P(Binomial(n, p) <= k) = delta. By the
 * binomial-beta identity
 *
 *     P(Binomial(n, p) <= k) = 1 - I_p(k + 1, n - k) = I_{1-p}(n - k, k + 1),
 *
 * it is the 1 - delta quantile of Beta(k + 1, n - k). Special cases: n == 0 or k == n give
 * 1 (nothing is known); k == 0 has the closed form 1 - delta^(1/n), computed as
 * -expm1(log(delta) / n) so that small bounds keep their digits.
 *
 * The regularized incomplete beta I_x(a, b) is the continued fraction of Numerical Recipes
 * (section 6.4) evaluated by the modified Lentz method, with the usual symmetry
 * I_x(a, b) = 1 - I_{1-x}(b, a) so that the fraction is only evaluated where it converges
 * quickly, x < (a + 1) / (a + b + 2). The fraction yields whichever tail lies on its own
 * side directly; the other tail is 1 minus it, so the small tail that the root finder
 * compares with delta is never the result of a cancellation.
 *
 * The prefactor x^a (1-x)^b / B(a, b) is where naive code loses accuracy for large n:
 * lgamma(a + b) - lgamma(a) - lgamma(b) + a log x + b log(1-x) subtracts numbers of size
 * n log n, and at n = 10^8 that leaves only about seven correct digits. Instead it is
 * written as in Loader's binomial density (2000),
 *
 *     sqrt(a b / (2 pi N)) exp(stirlerr(N) - stirlerr(a) - stirlerr(b)
 *                              - bd0(a, N x) - bd0(b, N (1-x))),      N = a + b,
 *
 * where stirlerr is the error of Stirling's formula and bd0(y, m) = y log(y / m) + m - y is
 * the deviance term, evaluated by a series when y is near m. Both deviance terms depend on
 * x only through d = a - N x = N (1-x) - b, which is computed from whichever of x and
 * 1 - x is the smaller (and so exactly representable).
 *
 * The quantile is found by Newton's method on g(p) = log P(X <= k; n, p) - log delta,
 * safeguarded by a bracket [lo, hi] that always contains the root: a Newton step leaving
 * the bracket is replaced by bisection (geometric bisection when the bracket spans orders
 * of magnitude). The survival function of Beta(a, b) with a, b >= 1 is log-concave, so g is
 * concave and decreasing: after at most one overshoot Newton converges monotonically, and
 * typically in 5 to 10 evaluations.
 *
 * Accuracy, measured against 50-digit arithmetic: about 1e-13 relative up to n = 10^6.
 * At n = 10^8 a tiny bound loses digits, because above the mean the fraction is evaluated
 * at 1 - p, and 1 - p rounded to a double carries an absolute error of 1e-16, large
 * against p = 5e-8 (k = 1): there the error is 1e-9 relative, at k = 1000 it is 5e-12.
 * Near 1 the bound is as exact as a double near 1 can be (within an ulp or two). The cost is
 * O(sqrt(n)) continued-fraction terms per evaluation in the worst case, about 2,000 at
 * n = 10^8.
 *
 * The threshold. tdm_risk_threshold() is fixed-sequence testing in the "Learn then Test"
 * framework (Bates, Angelopoulos et al., 2021), applied to selective classification with a
 * guaranteed risk (Geifman & El-Yaniv, 2017). The hypotheses "the error of items with
 * confidence >= t exceeds alpha" are ordered by t from high to low, fixed before looking at
 * the labels, and tested in that order, each at level delta; testing stops at the first one
 * that cannot be rejected. Because the order is fixed, the family-wise error stays at delta
 * with no multiplicity correction. Invariants of the scan below:
 *
 *   - items are visited in decreasing confidence; items with equal confidence enter the
 *     set together (a threshold cannot separate them), so a test happens only at the end of
 *     a group of ties;
 *   - the sequence starts at the first group end where at least tdm_risk_start_items()
 *     items are in, or tdm_risk_min_items() when there are fewer items than that in all;
 *   - n_above only grows, errors never shrink.
 *
 * Where the sequence starts. Before tdm_risk_min_items() items even zero errors cannot
 * pass, so that is the earliest useful start. But starting there is fragile: the test at
 * 299 items (alpha 1%, delta 5%) fails on a single mistake among the first ~470 items,
 * and every real data set has a few confidently wrong items (mislabelled examples, mostly)
 * near the top. On Banking77's cross-fitted scores, one seed in four had a mistake at rank
 * 432 and certified 4.8% coverage where the data supports 61%; under bootstrap resampling
 * the 5th percentile of certified coverage was 4 to 10%. So the sequence starts at the
 * smallest count where an observed error rate of alpha / 2 would already be certified
 * (1,146 items at 1% and 5%), which leaves room for those few mistakes; with that start
 * the 5th percentile rose to 41-55% and the median was unchanged. The start depends only
 * on alpha, delta and the number of items, never on the labels, so the sequence is still
 * fixed in advance and the guarantee is untouched. Data sets smaller than that start where
 * zero errors could certify, as before: it is their only chance.
 *
 * The last point gives the optimisation that keeps the scan cheap. The bound decreases as n
 * grows at fixed errors, so once a test has passed with e errors among m items, any later
 * candidate that still has e errors (and so more items) passes too; its bound need not be
 * computed. A test is therefore evaluated only where the error count has changed since the
 * last evaluated pass, and the bound of the accepted threshold is computed once at the end.
 * An evaluation needs no root-find either: bound <= alpha exactly when
 * P(Binomial(m, alpha) <= k) <= delta, one incomplete beta evaluation (see certifies(),
 * which falls back to the root-find only in a hair-thin band where the two could round
 * differently). The sort is a radix sort on the bits of the doubles, so the work is O(n)
 * plus one incomplete beta per distinct error count met before the sequence stops; 10^6
 * distinct confidences with 40,000 errors take about 70 ms.
 */
#include "util/util.h"

#include "tandem/learn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_SQRT_2PI 0.918938533204672741780329736406 /* log(sqrt(2 pi)) */
#define TWO_PI      6.283185307179586476925286766559

/* Iteration caps. The continued fraction needs O(sqrt(a + b)) terms in the worst case. */
#define CF_MIN_ITER   200
#define ROOT_MAX_ITER 300

/*
 * The error of Stirling's approximation, lgamma(z + 1) - ((z + 0.5) log z - z + log
 * sqrt(2 pi)). For z > 15 the asymptotic series is accurate to a few ulps; below that the
 * direct formula subtracts only small numbers.
 */
static double stirlerr(double z)
{
    static const double s0 = 1.0 / 12.0;
    static const double s1 = 1.0 / 360.0;
    static const double s2 = 1.0 / 1260.0;
    static const double s3 = 1.0 / 1680.0;
    static const double s4 = 1.0 / 1188.0;

    if (z <= 15.0)
        return lgamma(z + 1.0) - (z + 0.5) * log(z) + z - LN_SQRT_2PI;
    double z2 = z * z;
    return (s0 - (s1 - (s2 - (s3 - s4 / z2) / z2) / z2) / z2) / z;
}

/*
 * The deviance term y log(y / m) + m - y for m = y - d, without cancellation when d is small
 * against y (Loader's bd0, written in terms of the difference d that the caller computes
 * accurately).
 */
static double bd0(double y, double d)
{
    double m = y - d;
    if (fabs(d) < 0.1 * (y + m)) {
        double v = d / (y + m);
        double s = d * v;
        double ej = 2.0 * y * v;
        double v2 = v * v;
        for (int j = 1; j < 1000; j++) {
            ej *= v2;
            double s1 = s + ej / (double)(2 * j + 1);
            if (s1 == s)
                return s1;
            s = s1;
        }
        return s;
    }
    return -y * log1p(-d / y) - d;
}

/*
 * x^a y^b / B(a, b) with y = 1 - x, for a, b >= 1 and 0 < x < 1. Both x and y are passed:
 * the caller computes one of them exactly and the other as 1 minus it, and the smaller one
 * is the exact one whenever it matters.
 */
static double beta_prefactor(double a, double b, double x, double y)
{
    double nn = a + b;
    double d = (x <= y) ? a - nn * x : nn * y - b;
    double e = stirlerr(nn) - stirlerr(a) - stirlerr(b) - bd0(a, d) - bd0(b, -d);
    return sqrt(a * b / (TWO_PI * nn)) * exp(e);
}

/*
 * The continued fraction of I_x(a, b) (Numerical Recipes 6.4.5), evaluated by the modified
 * Lentz method. Converges quickly for x < (a + 1) / (a + b + 2).
 */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double qab = a + b;
    double qap = a + 1.0;
    double qam = a - 1.0;
    double c = 1.0;
    double d = 1.0 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1.0 / d;
    double h = d;
    int max_iter = CF_MIN_ITER + (int)(20.0 * sqrt(qab < 1e12 ? qab : 1e12));
    for (int m = 1; m <= max_iter; m++) {
        double dm = (double)m;
        double m2 = 2.0 * dm;
        double aa = dm * (b - dm) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + dm) * (qab + dm) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-15)
            break;
    }
    return h;
}

/*
 * The regularized incomplete beta function: *lower = I_x(a, b) and *upper = 1 - I_x(a, b),
 * with y = 1 - x passed alongside x (see beta_prefactor). Whichever of the two the continued
 * fraction produces directly is accurate to its last digits even when tiny. Returns the
 * density x^(a-1) y^(b-1) / B(a, b) at x, which the root finder needs as a derivative.
 */
static double incbeta(double a, double b, double x, double y, double *lower, double *upper)
{
    if (x <= 0.0) {
        *lower = 0.0;
        *upper = 1.0;
        return 0.0;
    }
    if (y <= 0.0) {
        *lower = 1.0;
        *upper = 0.0;
        return 0.0;
    }
    double pf = beta_prefactor(a, b, x, y);
    if (x < (a + 1.0) / (a + b + 2.0)) {
        *lower = pf * beta_cf(a, b, x) / a;
        if (*lower > 1.0)
            *lower = 1.0;
        *upper = 1.0 - *lower;
    } else {
        *upper = pf * beta_cf(b, a, y) / b;
        if (*upper > 1.0)
            *upper = 1.0;
        *lower = 1.0 - *upper;
    }
    return pf / (x * y);
}

/*
 * The Clopper-Pearson upper bound for k errors among n items, with k and n real (weighted
 * counts); k < n, n > 0. The integer entry point below checks its arguments first.
 */
static double cp_upper(double k, double dn, double delta)
{
    double log_delta = log(delta);
    if (k == 0.0)
        return -expm1(log_delta / dn);

    /* P(X <= k; n, p) = 1 - I_p(a, b): the upper tail of Beta(a, b) at p. */
    double a = k + 1.0;
    double b = dn - k;
    double lo = 0.0; /* tail(lo) > delta */
    double hi = 1.0; /* tail(hi) <= delta */
    double p = a / (a + b);

    for (int it = 0; it < ROOT_MAX_ITER; it++) {
        double lower, upper;
        double q = 1.0 - p;
        double dens = incbeta(a, b, p, q, &lower, &upper);
        if (upper == delta)
            return p;
        if (upper > delta)
            lo = p;
        else
            hi = p;

        /*
         * Newton on g(p) = log tail(p) - log delta; g'(p) = -dens / tail. When the tail has
         * underflowed or the density vanished the step is undefined and we bisect.
         */
        double next = NAN;
        if (upper > 0.0 && dens > 0.0)
            next = p + (log(upper) - log_delta) * upper / dens;
        if (!(next > lo && next < hi)) {
            if (lo > 0.0 && hi > 4.0 * lo)
                next = sqrt(lo * hi);
            else if (lo == 0.0 && hi > 1e-300)
                next = hi * 0.0625;
            else
                next = 0.5 * (lo + hi);
        }
        /*
         * Stop when the step is below 1e-15 of the smaller of p and 1 - p (near 1 that is
         * below one ulp, so Newton runs until it stands still), or when no double is left
         * between lo and hi.
         */
        if (fabs(next - p) <= 1e-15 * fmin(next, 1.0 - next) || nextafter(lo, hi) >= hi)
            return next;
        p = next;
    }
    return p;
}

double tdm_binomial_upper_bound(uint64_t errors, uint64_t n, double delta)
{
    if (!(delta > 0.0 && delta < 1.0) || errors > n)
        return NAN;
    if (n == 0 || errors == n)
        return 1.0;
    return cp_upper((double)errors, (double)n, delta);
}

double tdm_binomial_lower_bound(uint64_t errors, uint64_t n, double delta)
{
    if (!(delta > 0.0 && delta < 1.0) || errors > n)
        return NAN;
    if (errors == 0)
        return 0.0;
    /* A lower bound on the error rate is one minus an upper bound on the success rate. */
    return 1.0 - tdm_binomial_upper_bound(n - errors, n, delta);
}

uint64_t tdm_risk_min_items(double alpha, double delta)
{
    if (!(alpha > 0.0 && alpha < 1.0) || !(delta > 0.0 && delta < 1.0))
        return 0;
    /*
     * The closed form ceil(ln delta / ln(1 - alpha)) can land one off when the ratio is an
     * integer up to rounding; settle it with the bound itself, which is what callers test.
     */
    double est = ceil(log(delta) / log1p(-alpha));
    if (!(est < 9.0e18))
        return UINT64_MAX;
    uint64_t n = est < 1.0 ? 1 : (uint64_t)est;
    while (n > 1 && tdm_binomial_upper_bound(0, n - 1, delta) <= alpha)
        n--;
    while (n < UINT64_MAX && tdm_binomial_upper_bound(0, n, delta) > alpha)
        n++;
    return n;
}

/*
 * Whether an error rate of `rate` observed on n items certifies alpha: the Clopper-Pearson
 * bound with a real-valued error count k = rate * n (the 1 - delta quantile of
 * Beta(k + 1, n - k)) is at or below alpha, that is, P(Beta(k + 1, n - k) > alpha) <= delta.
 * Real-valued k makes this monotone in n, so the smallest such n can be bisected.
 */
static int certifies_real(double k, double n, double alpha, double delta)
{
    if (!(k < n))
        return 0;
    double lower, upper;
    incbeta(k + 1.0, n - k, alpha, 1.0 - alpha, &lower, &upper);
    return upper <= delta;
}

static int rate_certifies(double rate, uint64_t n, double alpha, double delta)
{
    return certifies_real(rate * (double)n, (double)n, alpha, delta);
}

uint64_t tdm_risk_start_items(double alpha, double delta)
{
    uint64_t lo = tdm_risk_min_items(alpha, delta);
    if (lo == 0 || lo == UINT64_MAX)
        return lo;
    /* Exponential search for an n that certifies, then bisection down to the smallest. */
    uint64_t hi = lo;
    while (!rate_certifies(alpha / 2, hi, alpha, delta)) {
        if (hi > UINT64_MAX / 4)
            return UINT64_MAX;
        lo = hi + 1;
        hi *= 2;
    }
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (rate_certifies(alpha / 2, mid, alpha, delta))
            hi = mid;
        else
            lo = mid + 1;
    }
    return hi;
}

/*
 * P(Binomial(m, p) <= k) for k < m, the upper tail of Beta(k + 1, m - k) at p. With p fixed
 * this costs one incomplete beta evaluation, against the several of a root-find.
 */
static double binomial_cdf(uint64_t k, uint64_t m, double p)
{
    if (k == 0)
        return exp((double)m * log1p(-p));
    double lower, upper;
    incbeta((double)k + 1.0, (double)(m - k), p, 1.0 - p, &lower, &upper);
    return upper;
}

/*
 * Whether tdm_binomial_upper_bound(k, m, delta) <= alpha. P(Binomial(m, p) <= k) decreases
 * in p and equals delta at the bound, so the bound is at or below alpha exactly when
 * P(Binomial(m, alpha) <= k) <= delta: one incomplete beta evaluation instead of a
 * root-find. When the two sides agree to within 1e-6 (relative), rounding could make this
 * test and the root-find disagree, so the root-find decides; the answer is always the one a
 * caller comparing tdm_binomial_upper_bound() with alpha would get.
 */
static int certifies(uint64_t k, uint64_t m, double alpha, double delta)
{
    if (k >= m)
        return 0;
    double r = log(binomial_cdf(k, m, alpha) / delta);
    if (r < -1e-6)
        return 1;
    if (r > 1e-6)
        return 0;
    return tdm_binomial_upper_bound(k, m, delta) <= alpha;
}

/*
 * An item of the scan: a sort key that orders confidences from high to low (see
 * descending_key) and whether the model was wrong.
 */
typedef struct scored {
    uint64_t key;
    uint32_t wrong;
} scored;

#define SIGN_BIT 0x8000000000000000ULL

/*
 * Maps a non-NaN double to an integer whose unsigned order is the reverse of the doubles'
 * order: the usual sign-magnitude to two's-order flip (set the sign bit of positives, invert
 * negatives), then complemented. -0.0 and +0.0 get adjacent keys, and since the scan groups
 * ties with ==, they form one group.
 */
static uint64_t descending_key(double c)
{
    uint64_t u;
    memcpy(&u, &c, sizeof u);
    u = (u & SIGN_BIT) ? ~u : (u | SIGN_BIT);
    return ~u;
}

static double key_confidence(uint64_t key)
{
    uint64_t u = ~key;
    u = (u & SIGN_BIT) ? (u & ~SIGN_BIT) : ~u;
    double c;
    memcpy(&c, &u, sizeof c);
    return c;
}

/*
 * Least-significant-digit radix sort on the 64-bit keys, one byte per pass, skipping the
 * passes in which every key has the same byte (confidences in [0, 1] share their top
 * bits). Stable and O(n); `tmp` has room for n items. Returns whichever of the two buffers
 * holds the sorted result.
 */
static scored *radix_sort(scored *items, scored *tmp, size_t n)
{
    size_t count[8][256];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            count[b][(items[i].key >> (8 * b)) & 0xff]++;

    scored *src = items;
    scored *dst = tmp;
    for (int b = 0; b < 8; b++) {
        size_t offset[256];
        size_t sum = 0;
        int trivial = 0;
        for (int v = 0; v < 256; v++) {
            if (count[b][v] == n)
                trivial = 1;
            offset[v] = sum;
            sum += count[b][v];
        }
        if (trivial)
            continue;
        for (size_t i = 0; i < n; i++)
            dst[offset[(src[i].key >> (8 * b)) & 0xff]++] = src[i];
        scored *swap = src;
        src = dst;
        dst = swap;
    }
    return src;
}

int tdm_risk_threshold(const double *confidence, const unsigned char *correct, size_t n,
                       double alpha, double delta, tdm_risk_result *out)
{
    if (out == NULL || (n > 0 && (confidence == NULL || correct == NULL)))
        return TDM_EINVAL;
    if (!(alpha > 0.0 && alpha < 1.0) || !(delta > 0.0 && delta < 1.0))
        return TDM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (isnan(confidence[i]))
            return TDM_EINVAL;

    tdm_risk_result res = {0, INFINITY, 0, 0, 1.0, 0};
    uint64_t min_items = tdm_risk_min_items(alpha, delta);
    uint64_t start_items = tdm_risk_start_items(alpha, delta);
    if ((uint64_t)n >= start_items)
        min_items = start_items;
    if (n == 0 || (uint64_t)n < min_items) {
        *out = res;
        return 0;
    }

    size_t bytes;
    if (tdm__size_mul(n, 2 * sizeof(scored), &bytes) != 0)
        return TDM_ENOMEM;
    scored *buf = malloc(bytes);
    if (buf == NULL)
        return TDM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        buf[i].key = descending_key(confidence[i]);
        buf[i].wrong = correct[i] ? 0 : 1;
    }
    const scored *items = radix_sort(buf, buf + n, n);

    size_t n_in = 0;
    size_t errors = 0;
    int have_pass = 0;
    size_t pass_errors = 0; /* errors at the last pass that was actually evaluated */
    while (n_in < n) {
        uint64_t key = items[n_in].key;
        double t = key_confidence(key);
        while (n_in < n && key_confidence(items[n_in].key) == t) {
            errors += items[n_in].wrong;
            n_in++;
        }
        if ((uint64_t)n_in < min_items)
            continue;
        res.n_tested++;
        /*
         * With the same errors among more items the bound can only be lower, so a test that
         * passed stays passed: evaluate only when the error count has moved.
         */
        if (!(have_pass && errors == pass_errors)) {
            if (!certifies(errors, n_in, alpha, delta)) {
                if (!have_pass)
                    res.error_bound = tdm_binomial_upper_bound(errors, n_in, delta);
                break;
            }
            have_pass = 1;
            pass_errors = errors;
        }
        res.found = 1;
        res.threshold = t;
        res.n_above = n_in;
        res.errors = errors;
    }
    free(buf);

    if (res.found) {
        res.error_bound = tdm_binomial_upper_bound(res.errors, res.n_above, delta);
        TDM_ASSERT(res.error_bound <= alpha);
    }
    *out = res;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Weighted items                                                                             */
/* ------------------------------------------------------------------------------------------ */

typedef struct weighted {
    double conf;
    double w;
    unsigned char wrong;
} weighted;

static int by_conf_desc(const void *a, const void *b)
{
    double x = ((const weighted *)a)->conf, y = ((const weighted *)b)->conf;
    return (x < y) - (x > y);
}

/*
 * The weighted scan follows the unweighted one (same sequence, same start rule, stop at the
 * first failure) with effective counts. Its shortcut: the bound grows with the error rate
 * and shrinks as the effective count grows, so a candidate whose rate is no higher and whose
 * effective count is no lower than the last evaluated pass passes too. (The unweighted scan's
 * shortcut is the special case of an unchanged error count.)
 */
int tdm_risk_threshold_weighted(const double *confidence, const unsigned char *correct,
                                const double *weight, size_t n, double alpha, double delta,
                                tdm_risk_result *out)
{
    if (out == NULL || (n > 0 && (confidence == NULL || correct == NULL || weight == NULL)))
        return TDM_EINVAL;
    if (!(alpha > 0.0 && alpha < 1.0) || !(delta > 0.0 && delta < 1.0))
        return TDM_EINVAL;
    double total = 0, total2 = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(confidence[i]) || !(weight[i] > 0) || !isfinite(weight[i]))
            return TDM_EINVAL;
        total += weight[i];
        total2 += weight[i] * weight[i];
    }
    tdm_risk_result res = {0, INFINITY, 0, 0, 1.0, 0};
    double n_total = n ? total * total / total2 : 0;
    double first = (double)tdm_risk_start_items(alpha, delta);
    if (n_total < first)
        first = (double)tdm_risk_min_items(alpha, delta);
    if (n == 0 || n_total < first) {
        *out = res;
        return 0;
    }
    weighted *items = malloc(n * sizeof *items);
    if (items == NULL)
        return TDM_ENOMEM;
    for (size_t i = 0; i < n; i++)
        items[i] = (weighted){confidence[i], weight[i], (unsigned char)(correct[i] ? 0 : 1)};
    qsort(items, n, sizeof *items, by_conf_desc);

    double w = 0, w2 = 0, e = 0, pass_rate = 0, pass_n = 0, k_at = 0, n_at = 0;
    size_t count = 0, errors = 0;
    int have_pass = 0;
    while (count < n) {
        double t = items[count].conf;
        while (count < n && items[count].conf == t) {
            w += items[count].w;
            w2 += items[count].w * items[count].w;
            e += items[count].w * items[count].wrong;
            errors += items[count].wrong;
            count++;
        }
        double n_eff = w * w / w2, rate = e / w;
        if (n_eff < first && !have_pass)
            continue;
        res.n_tested++;
        if (!(have_pass && rate <= pass_rate && n_eff >= pass_n)) {
            if (!certifies_real(rate * n_eff, n_eff, alpha, delta)) {
                if (!have_pass)
                    res.error_bound =
                        rate * n_eff < n_eff ? cp_upper(rate * n_eff, n_eff, delta) : 1.0;
                break;
            }
            have_pass = 1;
            pass_rate = rate;
            pass_n = n_eff;
        }
        res.found = 1;
        res.threshold = t;
        res.n_above = count;
        res.errors = errors;
        k_at = rate * n_eff;
        n_at = n_eff;
    }
    free(items);
    if (res.found)
        res.error_bound = cp_upper(k_at, n_at, delta);
    *out = res;
    return 0;
}
