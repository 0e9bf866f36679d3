/*
 * test_sampled_floor.c -- the C contract of the truncated-normal entropy gradient and of the
 * sampled floor (era_continuous_truncated_*, era_check_continuous_truncated_*): results against
 * a plain closed-form reference (erf), the floor per row, c = 0 rows equal to the continuous
 * output, gradients against central differences, and every error status with nothing written.
 */
#include "era.h"
#include "test_support.h"

#include <string.h>

#define R 64
#define D 6
#define PI 3.141592653589793

/* Entropy of N(m, sd^2) truncated to [lo, hi] (math 1), plainly from erf. */
static double ref_trunc(double m, double ls, double lo, double hi) {
    double sd = exp(ls), a = (lo - m) / sd, b = (hi - m) / sd;
    double z = 0.5 * (erf(b / sqrt(2.0)) - erf(a / sqrt(2.0)));
    double pa = exp(-0.5 * a * a) / sqrt(2 * PI), pb = exp(-0.5 * b * b) / sqrt(2 * PI);
    return log(sqrt(2 * PI * exp(1.0)) * sd * z) + (a * pa - b * pb) / (2 * z);
}

static int untouched(const double *x, int n) {
    for (int i = 0; i < n; i++) if (x[i] != 7.0) return 0;
    return 1;
}
static void fill7(double *x, int n) { for (int i = 0; i < n; i++) x[i] = 7.0; }

int main(void) {
    static double s[R * D], m[R * D], out[R * D], plain[R * D], off[R], g[R * D];
    static double gs[R * D], gm[R * D], gr[R], ge[R];
    era_continuous_params p;
    era_continuous_params_init(&p);
    p.target_entropy = -0.5 * D;
    for (int i = 0; i < R * D; i++) {
        s[i] = 3 * normal();
        m[i] = tanh(2 * normal());
        g[i] = normal();
    }
    for (int r = 0; r < R; r++) ge[r] = normal();

    /* Entropy gradient against central differences of the reference. */
    int ok = era_truncated_normal_entropy_backward_f64(R, D, m, s, -1, 1, ge, gm, gs) == ERA_OK;
    double worst = 0;
    for (int i = 0; i < R * D; i++) {
        double h = 1e-6, r = ge[i / D];
        double fm = r * (ref_trunc(m[i] + h, s[i], -1, 1) - ref_trunc(m[i] - h, s[i], -1, 1)) / (2 * h);
        double fl = r * (ref_trunc(m[i], s[i] + h, -1, 1) - ref_trunc(m[i], s[i] - h, -1, 1)) / (2 * h);
        double e1 = fabs(gm[i] - fm) / fmax(1, fabs(fm)), e2 = fabs(gs[i] - fl) / fmax(1, fabs(fl));
        worst = fmax(worst, fmax(e1, e2));
    }
    report(ok && worst < 1e-6, "truncated_normal_entropy_backward_f64 against central differences");
    {
        float mf[D], lf[D], gf[1] = {1.0f}, om[D], ol[D];
        double md[D], ld[D], gd[1] = {1.0}, omd[D], old[D];
        for (int i = 0; i < D; i++) { mf[i] = (float)(md[i] = m[i]); lf[i] = (float)(ld[i] = s[i]); }
        ok = era_truncated_normal_entropy_backward_f32(1, D, mf, lf, -1, 1, gf, om, ol) == ERA_OK &&
             era_truncated_normal_entropy_backward_f64(1, D, md, ld, -1, 1, gd, omd, old) == ERA_OK;
        for (int i = 0; i < D; i++)
            ok = ok && fabs(om[i] - (float)omd[i]) <= 1e-5 * fmax(1, fabs(omd[i])) &&
                 fabs(ol[i] - (float)old[i]) <= 1e-5 * fmax(1, fabs(old[i]));
        report(ok, "truncated_normal_entropy_backward_f32 agrees with f64");
    }

    /* The floor, and c = 0 rows equal to the continuous output. */
    ok = era_continuous_truncated_forward_f64(&p, R, D, s, m, -1, 1, out, off) == ERA_OK &&
         era_continuous_forward_f64(&p, R, D, s, plain) == ERA_OK;
    double deficit = -INFINITY;
    int active = 0;
    for (int r = 0; r < R; r++) {
        double h = 0;
        for (int i = 0; i < D; i++) h += ref_trunc(m[r * D + i], out[r * D + i], -1, 1);
        deficit = fmax(deficit, p.target_entropy - h);
        if (off[r] > 0) {
            active++;
            ok = ok && h - p.target_entropy < 1e-9;
        } else {
            ok = ok && memcmp(out + r * D, plain + r * D, D * sizeof(double)) == 0;
        }
        for (int i = 0; i < D; i++) ok = ok && out[r * D + i] == plain[r * D + i] + off[r];
    }
    printf("# sampled floor f64: %d of %d rows offset, worst deficit H0 - H = %.3g\n", active, R, deficit);
    report(ok && deficit <= 1e-10 && active > 0, "continuous_truncated_forward_f64: floor holds, offset smallest");
    {
        float sf[R * D], mf[R * D], of[R * D];
        for (int i = 0; i < R * D; i++) { sf[i] = (float)s[i]; mf[i] = (float)m[i]; }
        era_bound_report rep;
        ok = era_continuous_truncated_forward_f32(&p, R, D, sf, mf, -1, 1, of, NULL) == ERA_OK &&
             era_check_continuous_truncated_f32(&p, R, D, mf, of, -1, 1, 1e-5, &rep) == ERA_OK;
        report(ok && rep.violations == 0 && rep.rows == R, "continuous_truncated_forward_f32 passes the f32 check");
        era_bound_report gauss;
        ok = era_check_continuous_truncated_f64(&p, R, D, m, plain, -1, 1, 1e-10, &gauss) == ERA_OK &&
             era_check_continuous_truncated_f64(&p, R, D, m, out, -1, 1, 1e-10, &rep) == ERA_OK;
        printf("# Gaussian ERA output: %lld of %d rows below H0 in truncated entropy, worst deficit %.3g\n",
               (long long)gauss.violations, R, gauss.max_deficit);
        report(ok && rep.violations == 0 && gauss.violations > 0 && rep.floor == p.target_entropy,
               "check_continuous_truncated_f64: Gaussian output violates, sampled floor does not");
    }

    /* Backward against central differences of the forward pass (loss = sum g * out). */
    ok = era_continuous_truncated_backward_f64(&p, R, D, s, m, -1, 1, g, gs, gm, gr) == ERA_OK;
    worst = 0;
    for (int k = 0; k < 8; k++) {
        int i = (k * 37) % (R * D);
        double h = 1e-6, fp, fn, save;
        double *vars[2] = {s, m}, *grads[2] = {gs, gm};
        for (int v = 0; v < 2; v++) {
            save = vars[v][i];
            vars[v][i] = save + h; era_continuous_truncated_forward_f64(&p, R, D, s, m, -1, 1, out, NULL);
            fp = 0; for (int j = 0; j < R * D; j++) fp += g[j] * out[j];
            vars[v][i] = save - h; era_continuous_truncated_forward_f64(&p, R, D, s, m, -1, 1, out, NULL);
            fn = 0; for (int j = 0; j < R * D; j++) fn += g[j] * out[j];
            vars[v][i] = save;
            double fd = (fp - fn) / (2 * h);
            worst = fmax(worst, fabs(grads[v][i] - fd) / fmax(1, fabs(fd)));
        }
    }
    report(ok && worst < 1e-6, "continuous_truncated_backward_f64 against central differences");

    /* Errors: nothing written. */
    fill7(out, R * D); fill7(off, R);
    era_continuous_params bad = p;
    bad.target_entropy = D * log(2.0);
    ok = era_continuous_truncated_forward_f64(&bad, R, D, s, m, -1, 1, out, off) == ERA_ERR_INFEASIBLE_TARGET;
    ok = ok && era_continuous_truncated_forward_f64(&p, R, D, s, m, 1, 1, out, off) == ERA_ERR_BAD_PARAMETER;
    ok = ok && era_continuous_truncated_forward_f64(&p, R, D, s, m, -1, NAN, out, off) == ERA_ERR_BAD_PARAMETER;
    ok = ok && era_continuous_truncated_forward_f64(NULL, R, D, s, m, -1, 1, out, off) == ERA_ERR_NULL_POINTER;
    ok = ok && era_continuous_truncated_forward_f64(&p, R, D, s, NULL, -1, 1, out, off) == ERA_ERR_NULL_POINTER;
    ok = ok && era_continuous_truncated_forward_f64(&p, -1, D, s, m, -1, 1, out, off) == ERA_ERR_BAD_SHAPE;
    ok = ok && era_continuous_truncated_forward_f64(&p, R, D, s, m, -1, 1, out, (double *)m) == ERA_ERR_OVERLAP;
    ok = ok && era_continuous_truncated_forward_f64(&p, R, D, s, m, -1, 1, (double *)m, off) == ERA_ERR_OVERLAP;
    double keep = m[R * D - 1];
    m[R * D - 1] = NAN;
    ok = ok && era_continuous_truncated_forward_f64(&p, R, D, s, m, -1, 1, out, off) == ERA_ERR_NON_FINITE;
    m[R * D - 1] = keep;
    report(ok && untouched(out, R * D) && untouched(off, R), "continuous_truncated_forward_f64 errors, nothing written");
    fill7(gs, R * D); fill7(gm, R * D); fill7(gr, R);
    ok = era_continuous_truncated_backward_f64(&bad, R, D, s, m, -1, 1, g, gs, gm, gr) == ERA_ERR_INFEASIBLE_TARGET;
    ok = ok && era_continuous_truncated_backward_f64(&p, R, D, s, m, -1, 1, g, gs, gs, gr) == ERA_ERR_OVERLAP;
    ok = ok && era_continuous_truncated_backward_f64(&p, R, D, s, m, -1, 1, g, gm, gs, gr) == ERA_OK;  /* distinct */
    fill7(gs, R * D); fill7(gm, R * D);
    g[3] = INFINITY;
    ok = ok && era_continuous_truncated_backward_f64(&p, R, D, s, m, -1, 1, g, gs, gm, gr) == ERA_ERR_NON_FINITE;
    report(ok && untouched(gs, R * D) && untouched(gm, R * D), "continuous_truncated_backward_f64 errors, nothing written");
    fill7(gs, R * D); fill7(gm, R * D);
    float tiny[1] = {-100}, edge[1] = {1.0f}, one[1] = {1.0f}, fm[1] = {7.0f}, fl[1] = {7.0f};
    ok = era_truncated_normal_entropy_backward_f32(1, 1, edge, tiny, -1, 1, one, fm, fl) == ERA_ERR_BAD_PARAMETER;
    ok = ok && fm[0] == 7.0f && fl[0] == 7.0f;  /* dH/dloc ~ e^100 overflows float */
    ok = ok && era_truncated_normal_entropy_backward_f64(R, D, m, s, 2, 1, ge, gm, gs) == ERA_ERR_BAD_PARAMETER;
    ok = ok && era_truncated_normal_entropy_backward_f64(R, D, m, s, -1, 1, ge, gs, gs) == ERA_ERR_OVERLAP;
    ok = ok && era_truncated_normal_entropy_backward_f64(R, D, m, s, -1, 1, NULL, gm, gs) == ERA_ERR_NULL_POINTER;
    report(ok && untouched(gs, R * D) && untouched(gm, R * D), "truncated_normal_entropy_backward_f64 errors, nothing written");

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
