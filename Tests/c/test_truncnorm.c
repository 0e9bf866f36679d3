/*
 * test_truncnorm.c -- the truncated-normal policy entry points (era.h, "Truncated-normal
 * policy") through libera.so in float32 and float64: the log-density against a plain float64
 * reference written with erfc, the sample against its defining property F(x) = u, every
 * sample inside [lo, hi] also in far tails, the gradients against central finite differences
 * in float64, and the error statuses with nothing written.
 * Prints "ok N - name" / "not ok N - name", ends with "N passed, M failed".
 */
#include "era.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "test_support.h"

static void check(int ok, const char *fmt, ...) {
    char name[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    report(ok, name);
}

/* Plain references for moderate arguments (|alpha|, |beta| < 8): Phi from erfc. */
static double ref_phi_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double ref_log_prob(double m, double sg, double lo, double hi, double x) {
    double z = ref_phi_cdf((hi - m) / sg) - ref_phi_cdf((lo - m) / sg), xi = (x - m) / sg;
    return -0.5 * xi * xi - log(sqrt(2 * 3.141592653589793) * sg * z);
}
static double ref_cdf(double m, double sg, double lo, double hi, double x) {
    double a = ref_phi_cdf((lo - m) / sg), z = ref_phi_cdf((hi - m) / sg) - a;
    return (ref_phi_cdf((x - m) / sg) - a) / z;
}

enum { N = 64 };
static const double LO = -1.0, HI = 1.0;

static void sample64(const double *m, const double *l, const double *u, double *x, int n) {
    if (era_truncated_normal_sample_f64(n, 1, m, l, LO, HI, u, x) != ERA_OK) x[0] = NAN;
}
static void log_prob64(const double *m, const double *l, const double *x, double *lp, int n) {
    if (era_truncated_normal_log_prob_f64(n, 1, m, l, LO, HI, x, lp) != ERA_OK) lp[0] = NAN;
}

static void test_values(void) {
    double m[N], l[N], u[N], x[N], lp[N];
    for (int i = 0; i < N; i++) {
        m[i] = tanh(1.5 * normal());
        l[i] = -3 + 3 * uniform();
        u[i] = 0.01 + 0.98 * uniform();
    }
    check(era_truncated_normal_sample_f64(N, 1, m, l, LO, HI, u, x) == ERA_OK, "sample_f64 moderate: ok");
    double worst_cdf = 0, worst_lp = 0;
    for (int i = 0; i < N; i++) {
        worst_cdf = fmax(worst_cdf, fabs(ref_cdf(m[i], exp(l[i]), LO, HI, x[i]) - u[i]));
    }
    check(worst_cdf < 1e-13, "sample_f64: |F(x) - u| <= 1e-13 (worst %.2e)", worst_cdf);
    check(era_truncated_normal_log_prob_f64(N, 1, m, l, LO, HI, x, lp) == ERA_OK, "log_prob_f64: ok");
    for (int i = 0; i < N; i++) {
        double r = ref_log_prob(m[i], exp(l[i]), LO, HI, x[i]);
        worst_lp = fmax(worst_lp, fabs(lp[i] - r) / fmax(1, fabs(r)));
    }
    check(worst_lp < 1e-13, "log_prob_f64 against the erfc reference: worst relative %.2e", worst_lp);

    float mf[N], lf[N], uf[N], xf[N], lpf[N];
    for (int i = 0; i < N; i++) { mf[i] = (float)m[i]; lf[i] = (float)l[i]; uf[i] = (float)u[i]; }
    check(era_truncated_normal_sample_f32(N, 1, mf, lf, LO, HI, uf, xf) == ERA_OK &&
          era_truncated_normal_log_prob_f32(N, 1, mf, lf, LO, HI, xf, lpf) == ERA_OK, "f32 sample and log_prob: ok");
    double worst32 = 0;
    for (int i = 0; i < N; i++) {
        double r = ref_log_prob(mf[i], exp((double)lf[i]), LO, HI, xf[i]);
        worst32 = fmax(worst32, fabs(lpf[i] - r) / fmax(1, fabs(r)));
    }
    check(worst32 < 1e-6, "log_prob_f32 against the float64 reference: worst relative %.2e", worst32);

    double out_of_support = 1.5, lpo = 0;
    check(era_truncated_normal_log_prob_f64(1, 1, m, l, LO, HI, &out_of_support, &lpo) == ERA_OK &&
          lpo == -INFINITY, "log_prob outside [lo, hi] is -inf");
}

static void test_tails(void) {
    /* Locations at, beyond and just inside the bounds with tiny and huge scales; uniforms at
     * both ends of (0, 1). Every sample inside [lo, hi], every log-density finite. */
    const double locs[] = {0.99, 1.0, -1.0, 1 - 1e-7, 1 + 1e-7, 3.0, -40.0, 1e6};
    const double logs[] = {-9.2, -6.9, -3, 0, 3};
    const double us[] = {1e-300, 1e-12, 0.5, 1 - 1e-12};
    int inside = 1, finite = 1, inside32 = 1;
    for (size_t a = 0; a < sizeof locs / sizeof *locs; a++)
        for (size_t b = 0; b < sizeof logs / sizeof *logs; b++)
            for (size_t c = 0; c < sizeof us / sizeof *us; c++) {
                double x, lp;
                if (era_truncated_normal_sample_f64(1, 1, &locs[a], &logs[b], LO, HI, &us[c], &x) != ERA_OK ||
                    era_truncated_normal_log_prob_f64(1, 1, &locs[a], &logs[b], LO, HI, &x, &lp) != ERA_OK) {
                    inside = finite = 0;
                    continue;
                }
                inside &= x >= LO && x <= HI;
                finite &= isfinite(lp);
                float mf = (float)locs[a], lf = (float)logs[b], uf = (float)fmin(fmax(us[c], 1e-30), 0.99999994);
                float xf;
                inside32 &= era_truncated_normal_sample_f32(1, 1, &mf, &lf, -0.1, 0.3, &uf, &xf) == ERA_OK &&
                            (double)xf >= -0.1 && (double)xf <= 0.3;
            }
    check(inside, "f64 samples inside [lo, hi] in far tails");
    check(finite, "f64 log-densities of those samples finite");
    check(inside32, "f32 samples inside [-0.1, 0.3] (bounds not floats) in far tails");
}

static void test_gradients(void) {
    enum { M = 16 };
    double m[M], l[M], u[M], x[M], g[M], gx[M], gm[M], gl[M], sm[M], sl[M];
    for (int i = 0; i < M; i++) {
        m[i] = i < 12 ? tanh(1.5 * normal()) : 1.02 + 0.1 * i;
        l[i] = -3 + 3 * uniform();
        u[i] = 0.05 + 0.9 * uniform();
        g[i] = 1;
    }
    sample64(m, l, u, x, M);
    check(era_truncated_normal_log_prob_backward_f64(M, 1, m, l, LO, HI, x, g, gx, gm, gl) == ERA_OK &&
          era_truncated_normal_sample_backward_f64(M, 1, m, l, LO, HI, x, g, sm, sl) == ERA_OK, "backward f64: ok");
    double worst = 0, worst_sample = 0;
    for (int i = 0; i < M; i++) {
        const double h = 1e-6;
        double mp[1] = {m[i] + h}, mm[1] = {m[i] - h}, lp_[1] = {l[i] + h}, lm[1] = {l[i] - h};
        double xp[1] = {x[i] + h * exp(l[i])}, xm[1] = {x[i] - h * exp(l[i])}, xi[1] = {x[i]};
        double a, b;
        log_prob64(mp, &l[i], xi, &a, 1); log_prob64(mm, &l[i], xi, &b, 1);
        worst = fmax(worst, fabs((a - b) / (2 * h) - gm[i]) / fmax(1, fabs(gm[i])));
        log_prob64(&m[i], lp_, xi, &a, 1); log_prob64(&m[i], lm, xi, &b, 1);
        worst = fmax(worst, fabs((a - b) / (2 * h) - gl[i]) / fmax(1, fabs(gl[i])));
        if (xp[0] <= HI && xm[0] >= LO) {
            log_prob64(&m[i], &l[i], xp, &a, 1); log_prob64(&m[i], &l[i], xm, &b, 1);
            worst = fmax(worst, fabs((a - b) / (2 * h * exp(l[i])) - gx[i]) / fmax(1, fabs(gx[i])));
        }
        sample64(mp, &l[i], &u[i], &a, 1); sample64(mm, &l[i], &u[i], &b, 1);
        worst_sample = fmax(worst_sample, fabs((a - b) / (2 * h) - sm[i]));
        sample64(&m[i], lp_, &u[i], &a, 1); sample64(&m[i], lm, &u[i], &b, 1);
        worst_sample = fmax(worst_sample, fabs((a - b) / (2 * h) - sl[i]));
    }
    check(worst < 1e-6, "log_prob gradients against central differences: worst relative %.2e", worst);
    check(worst_sample < 1e-6, "sample gradients against central differences: worst absolute %.2e", worst_sample);
}

static void test_errors(void) {
    double m[2] = {0, 0.5}, l[2] = {0, -1}, u[2] = {0.5, 0.5}, x[2] = {0, 0}, g[2] = {1, 1};
    double o[2] = {7, 7}, o2[2] = {7, 7}, o3[2] = {7, 7};
#define UNTOUCHED (o[0] == 7 && o[1] == 7 && o2[0] == 7 && o2[1] == 7 && o3[0] == 7 && o3[1] == 7)
    check(era_truncated_normal_sample_f64(2, 1, m, l, 1, 1, u, o) == ERA_ERR_BAD_PARAMETER && UNTOUCHED, "lo == hi: BAD_PARAMETER");
    check(era_truncated_normal_sample_f64(2, 1, m, l, -1, INFINITY, u, o) == ERA_ERR_BAD_PARAMETER && UNTOUCHED, "hi = inf: BAD_PARAMETER");
    check(era_truncated_normal_sample_f64(2, 1, m, l, -1, 1, u, o) == ERA_OK, "sample: ok");
    o[0] = o[1] = 7;
    double ub[2] = {0.5, 1.0};
    check(era_truncated_normal_sample_f64(2, 1, m, l, -1, 1, ub, o) == ERA_ERR_BAD_PARAMETER && UNTOUCHED, "uniform 1: BAD_PARAMETER");
    ub[1] = 0;
    check(era_truncated_normal_sample_f64(2, 1, m, l, -1, 1, ub, o) == ERA_ERR_BAD_PARAMETER && UNTOUCHED, "uniform 0: BAD_PARAMETER");
    ub[1] = NAN;
    check(era_truncated_normal_sample_f64(2, 1, m, l, -1, 1, ub, o) == ERA_ERR_NON_FINITE && UNTOUCHED, "uniform NaN: NON_FINITE");
    double lb[2] = {0, 800};
    check(era_truncated_normal_log_prob_f64(2, 1, m, lb, -1, 1, x, o) == ERA_ERR_BAD_PARAMETER && UNTOUCHED, "scale overflow: BAD_PARAMETER");
    double mb[2] = {0, INFINITY};
    check(era_truncated_normal_log_prob_f64(2, 1, mb, l, -1, 1, x, o) == ERA_ERR_NON_FINITE && UNTOUCHED, "loc inf: NON_FINITE");
    double xb[2] = {0, 2};
    check(era_truncated_normal_sample_backward_f64(2, 1, m, l, -1, 1, xb, g, o, o2) == ERA_ERR_BAD_PARAMETER && UNTOUCHED,
          "sample outside [lo, hi] in the sample backward: BAD_PARAMETER");
    check(era_truncated_normal_log_prob_backward_f64(2, 1, m, l, -1, 1, x, g, o, o2, o2) == ERA_ERR_OVERLAP && UNTOUCHED,
          "two outputs the same: OVERLAP");
    check(era_truncated_normal_sample_f64(2, 1, m, l, -1, 1, u, (double *)u) == ERA_ERR_OVERLAP, "output on the uniforms: OVERLAP");
    check(era_truncated_normal_log_prob_f64(2, 1, m, l, -1, 1, NULL, o) == ERA_ERR_NULL_POINTER && UNTOUCHED, "NULL x: NULL_POINTER");
    check(era_truncated_normal_log_prob_f64(2, 0, m, l, -1, 1, x, o) == ERA_ERR_BAD_SHAPE && UNTOUCHED, "dim 0: BAD_SHAPE");
    check(era_truncated_normal_log_prob_backward_f64(0, 1, NULL, NULL, -1, 1, NULL, NULL, NULL, NULL, NULL) == ERA_OK,
          "rows 0 with NULL arrays: ok");
    float lo32[1] = {0}, uf[1] = {0.5f}, of[1] = {7};
    check(era_truncated_normal_sample_f32(1, 1, lo32, lo32, 0.1000000001, 0.1000000002, uf, of) == ERA_ERR_BAD_PARAMETER &&
          of[0] == 7, "f32: no float in [lo, hi]: BAD_PARAMETER");
#undef UNTOUCHED
}

int main(void) {
    test_values();
    test_tails();
    test_gradients();
    test_errors();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
