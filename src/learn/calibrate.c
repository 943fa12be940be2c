/*
 * calibrate.c — temperature scaling and the expected calibration error.
 *
 * NOTES ON THE DESIGN
 *
 * Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017) divides
 * every logit by one scalar T > 0 fitted on held-out scores. It keeps the ranking of classes,
 * so it changes confidence and never accuracy, and with one parameter it barely overfits a
 * calibration set of a few thousand items. It matters here because the guaranteed-risk
 * threshold (risk.c) is chosen on confidences, and a calibrated confidence is one a reviewer
 * can read as a probability.
 *
 * The fit works on beta = 1 / T. For row i with logits z and label y,
 *
 *     nll_i(beta) = log sum_j exp(beta z_j) - beta z_y,
 *     nll_i'(beta) = E_p[z] - z_y,          p = softmax(beta z),
 *     nll_i''(beta) = Var_p[z] >= 0,
 *
 * so the mean NLL is convex in beta (a log-sum-exp of linear functions of beta minus a
 * linear term), whereas it is not convex in T. Newton's method on beta therefore converges
 * quickly from beta = 1 (the uncalibrated model). One pass over the rows computes the loss,
 * gradient and Hessian together at a point. The row maximum is subtracted before
 * exponentiating, so nothing overflows, and the moments are accumulated around it too:
 * the softmax puts its largest weight there, which keeps the cancellation in
 * E[u^2] - E[u]^2 small.
 *
 * Safeguards. beta is clamped to [1/100, 100] (T in [0.01, 100]): data that a sharper
 * softmax always fits better (every item already right with a margin) would otherwise send
 * beta to infinity, and data the model always gets wrong would send it to zero; the clamp
 * makes those cases return the bound reached. A step is clamped first and then, if it
 * raises the loss, halved (up to 40 times). Where the Hessian vanishes (every row has
 * equal logits, or the softmax is saturated) the Newton step is undefined and the step
 * doubles or halves beta in the downhill direction instead. Iteration stops when the
 * step would move beta by less than 1e-7 (a full Newton step that short is still taken),
 * when no halving lowers the loss, or after 50 iterations.
 *
 * The expected calibration error (Naeini et al., 2015; as used by Guo et al.) sorts items
 * into equal-width confidence bins over [0, 1] and takes the share-weighted mean of
 * |accuracy - mean confidence| per bin. Bin b holds confidences in [b/B, (b+1)/B); 1.0 goes
 * in the last bin, and values outside [0, 1] are clamped into the end bins. The result is
 * NaN when it cannot be computed: NULL arrays with n > 0, a NaN confidence, or no memory
 * for the bin table (more than 64 bins are counted on the heap).
 */
#include "util/util.h"

#include "tandem/learn.h"

#include <math.h>
#include <stdlib.h>

#define BETA_MIN     0.01
#define BETA_MAX     100.0
#define MAX_ITER     50
#define MAX_HALVINGS 40
#define STEP_TOL     1e-7

/* The mean loss and its first two derivatives in beta at one point. */
typedef struct nll_eval {
    double loss;
    double grad;
    double hess;
} nll_eval;

/* The rows, as validated by tdm_calibrate_temperature(). */
typedef struct calib_data {
    const float *logits;
    size_t n;
    size_t n_classes;
    size_t stride;
    const uint32_t *labels;
} calib_data;

/*
 * One pass over every row at `beta`. For each row, with m its largest logit and
 * w_j = exp(beta (z_j - m)), S = sum w_j, the row's loss is log S - beta (z_y - m), its
 * gradient E[z - m] - (z_y - m) and its Hessian E[(z - m)^2] - E[z - m]^2.
 */
static void nll_at(const calib_data *data, double beta, nll_eval *ev)
{
    double loss = 0.0, grad = 0.0, hess = 0.0;
    for (size_t i = 0; i < data->n; i++) {
        const float *z = data->logits + i * data->stride;
        double m = z[0];
        for (size_t j = 1; j < data->n_classes; j++)
            if (z[j] > m)
                m = z[j];
        double s = 0.0, s1 = 0.0, s2 = 0.0;
        for (size_t j = 0; j < data->n_classes; j++) {
            double u = (double)z[j] - m;
            double w = exp(beta * u);
            s += w;
            s1 += w * u;
            s2 += w * u * u;
        }
        double mean = s1 / s;
        double var = s2 / s - mean * mean;
        double uy = (double)z[data->labels[i]] - m;
        loss += log(s) - beta * uy;
        grad += mean - uy;
        hess += var > 0.0 ? var : 0.0;
    }
    double inv_n = 1.0 / (double)data->n;
    ev->loss = loss * inv_n;
    ev->grad = grad * inv_n;
    ev->hess = hess * inv_n;
}

static double clamp_beta(double beta)
{
    return beta < BETA_MIN ? BETA_MIN : beta > BETA_MAX ? BETA_MAX : beta;
}

int tdm_calibrate_temperature(const float *logits, size_t n, size_t n_classes, size_t stride,
                              const uint32_t *labels, double *temperature)
{
    if (temperature == NULL)
        return TDM_EINVAL;
    if (n == 0)
        return TDM_ENODATA;
    if (logits == NULL || labels == NULL || n_classes == 0 || stride < n_classes)
        return TDM_EINVAL;
    size_t last_row;
    if (tdm__size_mul(n - 1, stride, &last_row) != 0 || last_row > SIZE_MAX - n_classes)
        return TDM_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] >= n_classes)
            return TDM_EINVAL;
        const float *z = logits + i * stride;
        for (size_t j = 0; j < n_classes; j++)
            if (!isfinite(z[j]))
                return TDM_EINVAL;
    }

    calib_data data = {logits, n, n_classes, stride, labels};
    double beta = 1.0;
    nll_eval cur;
    nll_at(&data, beta, &cur);
    for (int it = 0; it < MAX_ITER; it++) {
        double step;
        if (cur.hess > 1e-12 * (1.0 + fabs(cur.grad)))
            step = -cur.grad / cur.hess;
        else if (cur.grad < 0.0)
            step = beta; /* flat curvature, loss falling: double beta */
        else if (cur.grad > 0.0)
            step = -0.5 * beta;
        else
            break;

        /*
         * Clamp first, then backtrack: accept the first step that does not raise the loss.
         * (Halving the raw step instead would waste every halving on a step that the clamp
         * turns into the same point when the curvature is tiny and the step enormous.) A
         * step shorter than the tolerance is convergence: a full step that short is taken
         * without evaluating it (near the optimum Newton's step is the error left, so this
         * costs nothing and gains digits), and a halved one is dropped. Not evaluating also
         * keeps rounding noise in the loss near the optimum from costing a cascade of
         * halvings, each a full pass over the data.
         */
        step = clamp_beta(beta + step) - beta;
        if (fabs(step) < STEP_TOL) {
            beta = clamp_beta(beta + step);
            break;
        }
        int moved = 0;
        for (int h = 0; h < MAX_HALVINGS; h++, step *= 0.5) {
            double next = clamp_beta(beta + step);
            if (fabs(step) < STEP_TOL)
                break;
            nll_eval ev;
            nll_at(&data, next, &ev);
            if (ev.loss <= cur.loss) {
                beta = next;
                cur = ev;
                moved = 1;
                break;
            }
        }
        if (!moved)
            break;
    }
    TDM_ASSERT(beta >= BETA_MIN && beta <= BETA_MAX);
    *temperature = 1.0 / beta;
    return 0;
}

double tdm_expected_calibration_error(const double *confidence, const unsigned char *correct,
                                      size_t n, unsigned bins)
{
    if (n == 0 || bins == 0)
        return 0.0;
    if (confidence == NULL || correct == NULL)
        return NAN;

    /* Per bin: item count, sum of correctness, sum of confidence. */
    enum { STACK_BINS = 64 };
    double stack[3 * STACK_BINS];
    double *acc = stack;
    if (bins > STACK_BINS) {
        acc = calloc(bins, 3 * sizeof(double));
        if (acc == NULL)
            return NAN;
    } else {
        for (unsigned b = 0; b < 3 * bins; b++)
            acc[b] = 0.0;
    }
    double *count = acc;
    double *hits = acc + bins;
    double *conf = acc + 2 * (size_t)bins;

    for (size_t i = 0; i < n; i++) {
        double c = confidence[i];
        double pos = c * (double)bins;
        /* Written so that NaN lands in bin 0, where it poisons the sum as it should. */
        unsigned b = 0;
        if (pos >= (double)bins)
            b = bins - 1;
        else if (pos > 0.0)
            b = (unsigned)pos;
        count[b] += 1.0;
        hits[b] += correct[i] ? 1.0 : 0.0;
        conf[b] += c;
    }

    double ece = 0.0;
    for (unsigned b = 0; b < bins; b++)
        if (count[b] > 0.0)
            ece += fabs(hits[b] - conf[b]) / (double)n;
    if (acc != stack)
        free(acc);
    return ece;
}
