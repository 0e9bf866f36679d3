/*
 * era_reference.h -- plain float64 references for Tests/c/test_era.c.
 *
 * Every formula of docs/math.md sections 1, 2 and 4 written again, as directly as the
 * mathematics states it and without the library's numerical devices:
 *   - softmax and its entropy from the definition (row maximum subtracted), the entropy
 *     with compensated sums so that rows of 152064 classes keep full accuracy;
 *   - h^-1 by bisection on -t*exp(t) = y over t <= -1 (no Lambert W, no Halley), with y
 *     clamped at the smallest normal double as the contract specifies;
 *   - the tanh-Gaussian expectation by composite Simpson integration of the normal density
 *     over [-12, 12] (no Gauss-Hermite);
 *   - the truncated-normal entropy by Simpson integration of -f log f of the truncated
 *     density itself (no closed form, no erf);
 *   - the TIGHT constant by bisection on C of the one-hot entropy.
 * Only the C standard library; nothing from libera.
 */
#ifndef ERA_REFERENCE_H
#define ERA_REFERENCE_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define REF_PI 3.14159265358979323846
#define REF_E 2.71828182845904523536

/* ---- softmax ------------------------------------------------------------------------ */

static double ref_row_max(const double *z, int64_t n) {
    double m = z[0];
    for (int64_t i = 1; i < n; i++)
        if (z[i] > m) m = z[i];
    return m;
}

/* p = softmax(z). A difference z_i - max that overflows to -inf gives p_i = 0. */
static void ref_softmax(const double *z, int64_t n, double *p) {
    double m = ref_row_max(z, n), s = 0;
    for (int64_t i = 0; i < n; i++) {
        p[i] = exp(z[i] - m);
        s += p[i];
    }
    for (int64_t i = 0; i < n; i++) p[i] /= s;
}

/* Neumaier's compensated summation: *sum + *comp is the running total. */
static void ref_add(double *sum, double *comp, double x) {
    double t = *sum + x;
    if (fabs(*sum) >= fabs(x)) *comp += (*sum - t) + x; else *comp += (x - t) + *sum;
    *sum = t;
}

/* -sum p log p for p = softmax(z): with d_i = z_i - max, e_i = exp(d_i), S = sum e_i,
 * log p_i = d_i - log S, so H = log S - sum e_i d_i / S (terms with e_i = 0 add nothing).
 * The sums are compensated, and S = 1 + eps (eps: every term but the first maximum) goes
 * through log1p, so that a near one-hot row of 152064 classes, whose entropy is the sum of
 * many tiny terms, keeps full relative accuracy (a plain running sum starting at 1 loses
 * about n * 1e-16 absolute). */
static double ref_softmax_entropy(const double *z, int64_t n) {
    double m = ref_row_max(z, n), eps = 0, eps_c = 0, t = 0, t_c = 0;
    int64_t top = 0;
    while (z[top] != m) top++;
    for (int64_t i = 0; i < n; i++) {
        if (i == top) continue;
        double d = z[i] - m, e = exp(d);
        if (e > 0) {
            ref_add(&eps, &eps_c, e);
            ref_add(&t, &t_c, e * d);
        }
    }
    eps += eps_c;
    t += t_c;
    return log1p(eps) - t / (1.0 + eps);
}

/* ---- Gaussians ---------------------------------------------------------------------- */

/* Entropy of N(0, 1): 0.5*log(2*pi*e). */
static double ref_gauss_c(void) { return 0.5 * log(2.0 * REF_PI * REF_E); }

static double ref_gaussian_entropy(const double *log_std, int64_t dim) {
    double h = 0;
    for (int64_t i = 0; i < dim; i++) h += log_std[i] + ref_gauss_c();
    return h;
}

/* log(1 - tanh(x)^2) = -2 log cosh x; beyond |x| = 20, cosh x = e^|x| / 2 to double precision. */
static double ref_log_sech2(double x) {
    double ax = fabs(x);
    if (ax < 20) return -2.0 * log(cosh(ax));
    return 2.0 * log(2.0) - 2.0 * ax;
}

static double ref_tanh_integrand(double e, double mu, double sd) {
    return exp(-0.5 * e * e) / sqrt(2.0 * REF_PI) * ref_log_sech2(mu + sd * e);
}

/* Composite Simpson rule with n (even) panels over [a, b]. */
static double ref_simpson_tanh(double mu, double sd, double a, double b, int n) {
    if (!(b > a)) return 0;
    double h = (b - a) / n, s = ref_tanh_integrand(a, mu, sd) + ref_tanh_integrand(b, mu, sd);
    for (int i = 1; i < n; i++) s += (i % 2 ? 4.0 : 2.0) * ref_tanh_integrand(a + i * h, mu, sd);
    return s * h / 3.0;
}

/* E_{e ~ N(0,1)} log(1 - tanh^2(mu + sd*e)): the per-dimension squashing penalty. Simpson over
 * e in [-12, 12] (the normal mass beyond is below 1e-32), in three pieces so that the bend of
 * log cosh where mu + sd*e crosses 0 is resolved: [e0 - 30/sd, e0 + 30/sd] finely, the
 * (almost linear) rest coarser. */
static double ref_tanh_penalty(double mu, double sd) {
    double lo = -12, hi = 12, e0 = -mu / sd, w = 30.0 / sd;
    double a = fmin(fmax(e0 - w, lo), hi), b = fmin(fmax(e0 + w, lo), hi);
    return ref_simpson_tanh(mu, sd, lo, a, 4000) + ref_simpson_tanh(mu, sd, a, b, 20000) +
           ref_simpson_tanh(mu, sd, b, hi, 4000);
}

/* Entropy of tanh(x), x ~ N(mean, diag(exp(log_std)^2)), summed over dim. */
static double ref_tanh_gaussian_entropy(const double *mean, const double *log_std, int64_t dim) {
    double h = 0;
    for (int64_t i = 0; i < dim; i++) h += log_std[i] + ref_gauss_c() + ref_tanh_penalty(mean[i], exp(log_std[i]));
    return h;
}

/* Entropy of N(m, sd^2) truncated to [lo, hi], by integrating -f log f of the truncated density
 * f. With u = (x - m)/sd and u0 the u of the point of [lo, hi] nearest to m, f = w/Z' where
 * w(x) = exp(-(u^2 - u0^2)/2) <= 1 and Z' = integral of w, so
 *   H = -int f log f dx = log Z' + (1/Z') int w (u^2 - u0^2)/2 dx.
 * Both integrals by Simpson over the part of [lo, hi] where w > e^-80. */
static double ref_truncated_normal_entropy(double m, double sd, double lo, double hi) {
    double x0 = m < lo ? lo : (m > hi ? hi : m), u0 = (x0 - m) / sd;
    double r = sqrt(u0 * u0 + 160.0);
    double a = fmax(lo, m - sd * r), b = fmin(hi, m + sd * r);
    const int n = 20000;
    double h = (b - a) / n, z = 0, q = 0;
    for (int i = 0; i <= n; i++) {
        double x = a + i * h, u = (x - m) / sd, v = 0.5 * (u * u - u0 * u0), w = exp(-v);
        double c = (i == 0 || i == n) ? 1.0 : (i % 2 ? 4.0 : 2.0);
        z += c * w;
        q += c * w * v;
    }
    z *= h / 3.0;
    q *= h / 3.0;
    return log(z) + q / z;
}

/* ---- continuous ERA ----------------------------------------------------------------- */

static double ref_continuous_k(double h0, double delta, double log_std_max, int64_t dim) {
    return h0 + delta - dim * ref_gauss_c() - dim * log_std_max;
}

/* log_std = max(log_std_max + K*softmax(s), log_std_min); unclipped[i] = 1 where y > min. */
static void ref_continuous_row(const double *s, int64_t dim, double h0, double delta, double lmin, double lmax,
                               double *log_std, int *unclipped) {
    double k = ref_continuous_k(h0, delta, lmax, dim);
    ref_softmax(s, dim, log_std);
    for (int64_t i = 0; i < dim; i++) {
        double y = lmax + k * log_std[i];
        if (unclipped) unclipped[i] = y > lmin;
        log_std[i] = y > lmin ? y : lmin;
    }
}

/* VJP: grad_s[j] = K w_j (gt_j - sum gt_i w_i), grad_residual = sum gt_i w_i, gt = g * m. */
static void ref_continuous_backward_row(const double *s, const double *g, int64_t dim, double h0, double delta,
                                        double lmin, double lmax, double *grad_s, double *grad_residual) {
    double k = ref_continuous_k(h0, delta, lmax, dim), sw = 0;
    ref_softmax(s, dim, grad_s); /* grad_s holds w for now */
    for (int64_t i = 0; i < dim; i++) {
        double y = lmax + k * grad_s[i];
        if (y > lmin) sw += g[i] * grad_s[i];
    }
    for (int64_t i = 0; i < dim; i++) {
        double w = grad_s[i], y = lmax + k * w, gt = y > lmin ? g[i] : 0.0;
        grad_s[i] = k * w * (gt - sw);
    }
    *grad_residual = sw;
}

/* ---- discrete ERA ------------------------------------------------------------------- */

enum { REF_EXACT = 0, REF_TIGHT = 1, REF_REFERENCE = 2 };

/* t = log h^-1(y), 0 < y < 1/e: the root t <= -1 of -t*exp(t) = y, by bisection (the left
 * side increases from 0 to 1/e on (-inf, -1]); of the two last bracket ends, the closer. */
static double ref_log_hinv(double y) {
    double lo = -800.0, hi = -1.0;
    for (int k = 0; k < 4000; k++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        if (-mid * exp(mid) < y) lo = mid; else hi = mid;
    }
    return fabs(-lo * exp(lo) - y) < fabs(-hi * exp(hi) - y) ? lo : hi;
}

/* The official code's closed form: u = -1 - log y, t = -1 - sqrt(2u) - 0.75u. */
static double ref_log_hinv_approx(double y) {
    double u = -1.0 - log(y);
    return -1.0 - sqrt(2.0 * u) - 0.75 * u;
}

static double ref_t_of_y(double y, int mode) { return mode == REF_REFERENCE ? ref_log_hinv_approx(y) : ref_log_hinv(y); }

/* dt/dy: -1/(exp(t)(1 + t)) for the exact inverse; (1/sqrt(2u) + 0.75)/y for the closed form.
 * Below t = -700 exp(t) would be subnormal (too few significant bits), so there exp(t) is
 * taken from the defining equation, exp(t) = -y/t. In long double: near the clamp point
 * (y ~ 1e-308) dt/dy ~ 1/y is beyond the double range. */
static long double ref_dt_dy(double y, double t, int mode) {
    if (mode == REF_REFERENCE) {
        long double u = -1.0L - logl(y);
        return (1.0L / sqrtl(2.0L * u) + 0.75L) / y;
    }
    long double et = t > -700.0 ? expl(t) : -(long double)y / t;
    return -1.0L / (et * (1.0L + t));
}

/* Entropy of the output for a one-hot input: the top class gets y = up, the other D - 1
 * get y = b = (C - up)/(D - 1); softmax of those output logits. */
static double ref_onehot_entropy(double c, int64_t d, double tau, int mode) {
    double up = log(tau) / tau, b = (c - up) / (double)(d - 1);
    if (!(b > 0)) return 0.0;
    double t_top = ref_t_of_y(up, mode), t_o = ref_t_of_y(b, mode), m = fmax(t_top, t_o);
    double e_top = exp(t_top - m), e_o = exp(t_o - m), s = e_top + (double)(d - 1) * e_o;
    return log(s) - ((t_top - m) * e_top + (double)(d - 1) * (t_o - m) * e_o) / s;
}

/* TIGHT: the C in (up, D*up) whose one-hot entropy is H0 (increasing in C), by bisection;
 * the end of the final bracket whose entropy is >= H0. */
static double ref_tight_constant(double h0, int64_t d, double tau) {
    double up = log(tau) / tau, lo = up, hi = (double)d * up;
    for (int k = 0; k < 4000; k++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        if (ref_onehot_entropy(mid, d, tau, REF_EXACT) < h0) lo = mid; else hi = mid;
    }
    return hi;
}

static double ref_discrete_constant(double h0, int64_t d, double tau, int mode) {
    return mode == REF_TIGHT ? ref_tight_constant(h0, d, tau) : exp(h0 - 1.0);
}

/* Forward of one row with constant C: p = softmax(z), y_i = max(a p_i + b, 0),
 * t_i = log h^-1(y_i). y below the smallest normal double can only come from underflow; the
 * contract (docs/math.md 2, "Clamping") clamps it to DBL_MIN, so such t_i = log h^-1(DBL_MIN)
 * (about -715) and their derivative is 0 (see ref_discrete_backward_row). */
static void ref_discrete_row(const double *z, int64_t d, double c, double tau, int mode, double *p, double *y,
                             double *t) {
    double up = log(tau) / tau, a = ((double)d * up - c) / (double)(d - 1), b = (c - up) / (double)(d - 1);
    ref_softmax(z, d, p);
    for (int64_t i = 0; i < d; i++) {
        y[i] = fmax(a * p[i] + b, 0.0);
        t[i] = ref_t_of_y(fmax(y[i], DBL_MIN), mode);
    }
}

/* VJP of one row: r_i = g_i dt/dy(y_i) a (0 where clamped), grad_j = p_j (r_j - sum_i r_i p_i),
 * evaluated as grad_j = p_j sum_{i != j} p_i (r_j - r_i) in long double: the same value, free
 * of the cancellation r_j - sum r_i p_i suffers when p_j is near 1 (O(d^2), plainly).
 * p, y, t are scratch of length d. */
static void ref_discrete_backward_row(const double *z, const double *g, int64_t d, double c, double tau, int mode,
                                      double *p, double *y, double *t, double *grad) {
    double up = log(tau) / tau, a = ((double)d * up - c) / (double)(d - 1);
    ref_discrete_row(z, d, c, tau, mode, p, y, t);
    double m = ref_row_max(z, d);
    long double s = 0;
    for (int64_t i = 0; i < d; i++) s += expl((long double)z[i] - m);
    long double *r = malloc(sizeof(long double) * (size_t)d), *out = malloc(sizeof(long double) * (size_t)d);
    /* y == DBL_MIN exactly is the clamp point itself (measure zero): counted as clamped */
    for (int64_t i = 0; i < d; i++) r[i] = y[i] > DBL_MIN ? g[i] * ref_dt_dy(y[i], t[i], mode) * a : 0.0L;
    for (int64_t j = 0; j < d; j++) {
        long double pj = expl((long double)z[j] - m) / s, sum = 0;
        for (int64_t i = 0; i < d; i++)
            if (i != j) sum += expl((long double)z[i] - m) / s * (r[j] - r[i]);
        out[j] = pj * sum;
    }
    for (int64_t j = 0; j < d; j++) grad[j] = (double)out[j];
    free(r);
    free(out);
}

#endif /* ERA_REFERENCE_H */
