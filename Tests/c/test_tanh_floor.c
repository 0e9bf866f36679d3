/*
 * test_tanh_floor.c -- the C contract of the tanh-Gaussian entropy gradient and of the tanh
 * sampled floor (era_tanh_gaussian_entropy_backward_*, era_continuous_tanh_forward_* /
 * _backward_*, era_check_continuous_tanh_*): results against a plain quadrature reference
 * (composite Simpson over the standard normal, written here), the floor per row with the
 * offset c the root nearest 0 (rows with c > 0, c < 0 and c = 0), gradients
 * against the reference and against central differences, the row-dependent and the static
 * infeasibility, and every error status with nothing written.
 */
#include "era.h"
#include "test_support.h"

#include <string.h>

#define PI 3.14159265358979323846

/* ---- reference: E_{e ~ N(0,1)} g(mu + sd e) by composite Simpson ------------------------ */

enum { G_LOGSECH2, G_TANH, G_ETANH };

static double g_of(int kind, double e, double mu, double sd) {
    double x = mu + sd * e, ax = fabs(x);
    double w = exp(-0.5 * e * e) / sqrt(2 * PI);
    switch (kind) {
    case G_LOGSECH2: return w * (2 * log(2.0) - 2 * ax - 2 * log1p(exp(-2 * ax))); /* log(1 - tanh^2 x) */
    case G_TANH: return w * tanh(x);
    default: return w * e * tanh(x);
    }
}

static double simpson(int kind, double mu, double sd, double a, double b, int n) {
    if (!(b > a)) return 0;
    double h = (b - a) / n, s = g_of(kind, a, mu, sd) + g_of(kind, b, mu, sd);
    for (int i = 1; i < n; i++) s += (i % 2 ? 4.0 : 2.0) * g_of(kind, a + i * h, mu, sd);
    return s * h / 3;
}

/* Over e in [-12, 12] (the normal mass beyond is below 1e-32), in three pieces so that the bend
 * where mu + sd e crosses 0 (width about 1/sd in e) is resolved: [e0 - 30/sd, e0 + 30/sd] finely. */
static double expect_g(int kind, double mu, double sd) {
    double lo = -12, hi = 12, e0 = -mu / sd, w = 30 / sd;
    double a = fmin(fmax(e0 - w, lo), hi), b = fmin(fmax(e0 + w, lo), hi);
    return simpson(kind, mu, sd, lo, a, 6000) + simpson(kind, mu, sd, a, b, 12000) + simpson(kind, mu, sd, b, hi, 6000);
}

static const double GAUSS_C = 1.4189385332046727418; /* 0.5 log(2 pi e) */

/* Entropy of tanh(x), x ~ N(mu, e^(2 ls)), one dimension, and its derivatives. dH/dls is the
 * derivative under the integral, 1 + E[-2 tanh(x) sd e] (not Stein's form). */
static double ref_h(double mu, double ls) { return ls + GAUSS_C + expect_g(G_LOGSECH2, mu, exp(ls)); }
static double ref_dmean(double mu, double ls) { return -2 * expect_g(G_TANH, mu, exp(ls)); }
static double ref_dls(double mu, double ls) { return 1 - 2 * exp(ls) * expect_g(G_ETANH, mu, exp(ls)); }

static double ref_row_h(const double *m, const double *ls, int d) {
    double h = 0;
    for (int i = 0; i < d; i++) h += ref_h(m[i], ls[i]);
    return h;
}
/* The floor's row map (era.h): w = softmax(s), l(c)_i = max(max + (K + c) w_i, min). */
static void softmax(const double *s, int d, double *w) {
    double mx = s[0], z = 0;
    for (int i = 1; i < d; i++) mx = fmax(mx, s[i]);
    for (int i = 0; i < d; i++) z += w[i] = exp(s[i] - mx);
    for (int i = 0; i < d; i++) w[i] /= z;
}
static double gauss_k(const era_continuous_params *p, int d) {
    return p->target_entropy + p->residual - d * GAUSS_C - d * p->log_std_max;
}
/* f'(c) = sum_i dH/dls(l_i) w_i over the entries above log_std_min */
static double ref_row_slope(const double *m, const double *ls, const double *w, double lmin, int d) {
    double s = 0;
    for (int i = 0; i < d; i++)
        if (ls[i] > lmin) s += ref_dls(m[i], ls[i]) * w[i];
    return s;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static int untouched(const double *x, int n) {
    for (int i = 0; i < n; i++) if (x[i] != 7.0) return 0;
    return 1;
}
static void fill7(double *x, int n) { for (int i = 0; i < n; i++) x[i] = 7.0; }
static int untouched_f(const float *x, int n) {
    for (int i = 0; i < n; i++) if (x[i] != 7.0f) return 0;
    return 1;
}
static void fill7f(float *x, int n) { for (int i = 0; i < n; i++) x[i] = 7.0f; }

/* ---- the entropy gradient --------------------------------------------------------------- */

static void test_entropy_backward(void) {
    enum { R = 8, D = 5 };
    static double m[R * D], ls[R * D], ge[R], gm[R * D], gl[R * D], h1[R], h2[R];
    for (int i = 0; i < R * D; i++) {
        m[i] = 1.5 * normal();
        ls[i] = -3 + 5 * uniform(); /* std e^-3 .. e^2 */
    }
    m[0] = 0; ls[0] = log(0.87440036972097); /* the peak at mean 0: dH/dls = 0 */
    m[1] = 6; ls[1] = 3;
    for (int r = 0; r < R; r++) ge[r] = normal();
    int ok = era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm, gl) == ERA_OK;
    double worst = 0;
    for (int i = 0; ok && i < R * D; i++) {
        double g = ge[i / D], dm = g * ref_dmean(m[i], ls[i]), dl = g * ref_dls(m[i], ls[i]);
        worst = fmax(worst, fmax(fabs(gm[i] - dm) / fmax(1, fabs(dm)), fabs(gl[i] - dl) / fmax(1, fabs(dl))));
    }
    printf("# tanh entropy gradient f64: worst error against Simpson %.3g\n", worst);
    report(ok && worst < 1e-9 && fabs(gl[0]) < 1e-9 * fabs(ge[0]) + 1e-12,
           "tanh_gaussian_entropy_backward_f64 against the quadrature reference (peak: dH/dlog_std = 0)");

    /* against central differences of libera's own entropy (consistency of the pair) */
    worst = 0;
    for (int i = 0; i < R * D; i += 3) {
        double hstep = 1e-5, keep, fd;
        double *vars[2] = {m, ls}, *grads[2] = {gm, gl};
        for (int v = 0; v < 2; v++) {
            keep = vars[v][i];
            vars[v][i] = keep + hstep; era_tanh_gaussian_entropy_f64(R, D, m, ls, h1);
            vars[v][i] = keep - hstep; era_tanh_gaussian_entropy_f64(R, D, m, ls, h2);
            vars[v][i] = keep;
            fd = ge[i / D] * (h1[i / D] - h2[i / D]) / (2 * hstep);
            worst = fmax(worst, fabs(grads[v][i] - fd) / fmax(1, fabs(fd)));
        }
    }
    report(worst < 1e-7, "tanh_gaussian_entropy_backward_f64 against central differences of the entropy");

    /* in place gives the same bits; f32 agrees with f64 */
    {
        double mc[R * D], lc[R * D];
        memcpy(mc, m, sizeof mc); memcpy(lc, ls, sizeof lc);
        ok = era_tanh_gaussian_entropy_backward_f64(R, D, mc, lc, ge, mc, lc) == ERA_OK &&
             memcmp(mc, gm, sizeof mc) == 0 && memcmp(lc, gl, sizeof lc) == 0;
        report(ok, "tanh_gaussian_entropy_backward_f64 in place: the same results bit for bit");
        float mf[R * D], lf[R * D], gf[R], omf[R * D], olf[R * D];
        double md[R * D], ld[R * D], omd[R * D], old[R * D];
        for (int i = 0; i < R * D; i++) { mf[i] = (float)m[i]; lf[i] = (float)ls[i]; md[i] = mf[i]; ld[i] = lf[i]; }
        double gd[R];
        for (int r = 0; r < R; r++) { gf[r] = (float)ge[r]; gd[r] = gf[r]; }
        ok = era_tanh_gaussian_entropy_backward_f32(R, D, mf, lf, gf, omf, olf) == ERA_OK &&
             era_tanh_gaussian_entropy_backward_f64(R, D, md, ld, gd, omd, old) == ERA_OK;
        for (int i = 0; ok && i < R * D; i++)
            ok = fabs(omf[i] - omd[i]) <= 2e-7 * fmax(1e-3, fabs(omd[i])) && fabs(olf[i] - old[i]) <= 2e-7 * fmax(1e-3, fabs(old[i]));
        report(ok, "tanh_gaussian_entropy_backward_f32 is the f64 gradient rounded (2e-7)");
    }

    /* errors, nothing written */
    fill7(gm, R * D); fill7(gl, R * D);
    ok = era_tanh_gaussian_entropy_backward_f64(R, D, NULL, ls, ge, gm, gl) == ERA_ERR_NULL_POINTER;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, NULL, ge, gm, gl) == ERA_ERR_NULL_POINTER;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, NULL, gm, gl) == ERA_ERR_NULL_POINTER;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, NULL, gl) == ERA_ERR_NULL_POINTER;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm, NULL) == ERA_ERR_NULL_POINTER;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(-1, D, m, ls, ge, gm, gl) == ERA_ERR_BAD_SHAPE;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, 0, m, ls, ge, gm, gl) == ERA_ERR_BAD_SHAPE;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(INT64_MAX / 2, 4, m, ls, ge, gm, gl) == ERA_ERR_BAD_SHAPE;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm, gm) == ERA_ERR_OVERLAP;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm + 1, gl) == ERA_ERR_OVERLAP;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, ls, gl) == ERA_ERR_OVERLAP; /* grad_mean on log_std */
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm, m) == ERA_ERR_OVERLAP;  /* grad_log_std on mean */
    ok = ok && era_tanh_gaussian_entropy_backward_f64(1, D, m, ls, ge, gm, (double *)ge) == ERA_ERR_OVERLAP;
    double keep = m[R * D - 1];
    m[R * D - 1] = NAN;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm, gl) == ERA_ERR_NON_FINITE;
    m[R * D - 1] = keep; keep = ls[R * D - 1]; ls[R * D - 1] = -INFINITY;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm, gl) == ERA_ERR_NON_FINITE;
    ls[R * D - 1] = keep; keep = ge[R - 1]; ge[R - 1] = INFINITY;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm, gl) == ERA_ERR_NON_FINITE;
    ge[R - 1] = keep; keep = ls[3]; ls[3] = 710; /* std overflows double: dH/dlog_std ~ std */
    ok = ok && era_tanh_gaussian_entropy_backward_f64(R, D, m, ls, ge, gm, gl) == ERA_ERR_BAD_PARAMETER;
    ls[3] = keep;
    ok = ok && era_tanh_gaussian_entropy_backward_f64(0, D, NULL, NULL, NULL, NULL, NULL) == ERA_OK;
    report(ok && untouched(gm, R * D) && untouched(gl, R * D), "tanh_gaussian_entropy_backward_f64 errors, nothing written");
    {
        float mf[2] = {0.5f, 0}, lf[2] = {0, 100}, gf[1] = {1}, om[2], ol[2]; /* dH/dlog_std ~ e^100 > FLT_MAX */
        fill7f(om, 2); fill7f(ol, 2);
        ok = era_tanh_gaussian_entropy_backward_f32(1, 2, mf, lf, gf, om, ol) == ERA_ERR_BAD_PARAMETER;
        lf[1] = NAN;
        ok = ok && era_tanh_gaussian_entropy_backward_f32(1, 2, mf, lf, gf, om, ol) == ERA_ERR_NON_FINITE;
        report(ok && untouched_f(om, 2) && untouched_f(ol, 2),
               "tanh_gaussian_entropy_backward_f32: a gradient beyond float is bad parameter, nothing written");
    }
}

/* ---- the floor -------------------------------------------------------------------------- */

/* Two batches of rows:
 *  A: dim 4, log stds in [-4, 0], H0 = -2: the offset lifts small stds (c > 0); rows whose
 *     softmax piles on one dimension clip the others at -4 and may already reach H0 (c = 0).
 *  B: dim 2, log stds in [-1, 1], H0 = 0: rows with one std at e^1, beyond the squashed
 *     entropy's peak (std 0.874 at mean 0), have a falling entropy at c = 0 (c < 0); rows
 *     with both stds clipped at e^-1 reach H0 (c = 0). */
#define RA 24
#define DA 4
#define RB 16
#define DB 2

typedef struct {
    era_continuous_params p;
    int rows, dim;
    double s[RA * DA], m[RA * DA], g[RA * DA];
} batch;

static void make_batches(batch *a, batch *b) {
    era_continuous_params_init(&a->p);
    a->p.target_entropy = -0.5 * DA; a->p.log_std_min = -4; a->p.log_std_max = 0;
    a->rows = RA; a->dim = DA;
    for (int i = 0; i < RA * DA; i++) {
        int r = i / DA;
        a->s[i] = (r % 3 == 0 ? 6 : 1.5) * normal();
        a->m[i] = 0.6 * normal();
        a->g[i] = normal();
    }
    era_continuous_params_init(&b->p);
    b->p.target_entropy = 0; b->p.log_std_min = -1; b->p.log_std_max = 1;
    b->rows = RB; b->dim = DB;
    for (int r = 0; r < RB; r++) {
        int wide = r % 2 == 0;
        b->s[r * DB] = wide ? -2 - uniform() : 0.1 * normal(); /* wide: dim 0 keeps std near e^1 */
        b->s[r * DB + 1] = wide ? 2 + uniform() : 0.1 * normal();
        for (int i = 0; i < DB; i++) {
            b->m[r * DB + i] = 0.3 * normal();
            b->g[r * DB + i] = normal();
        }
    }
}

/* Forward f64 on a batch: every row against the reference. Counts rows by the sign of c. */
static void check_forward(batch *bt, const char *name, int *pos, int *neg, int *zero) {
    int R = bt->rows, D = bt->dim, n = R * D;
    double out[RA * DA], plain[RA * DA], off[RA], t = bt->p.target_entropy + bt->p.residual;
    int ok = era_continuous_tanh_forward_f64(&bt->p, R, D, bt->s, bt->m, out, off) == ERA_OK &&
             era_continuous_forward_f64(&bt->p, R, D, bt->s, plain) == ERA_OK;
    double worst_below = 0, worst_above = 0;
    *pos = *neg = *zero = 0;
    double k = gauss_k(&bt->p, D), lmin = bt->p.log_std_min, lmax = bt->p.log_std_max, w[RA * DA];
    for (int r = 0; ok && r < R; r++) {
        const double *mr = bt->m + r * D;
        softmax(bt->s + r * D, D, w);
        double h = ref_row_h(mr, out + r * D, D), h0 = ref_row_h(mr, plain + r * D, D);
        worst_below = fmax(worst_below, t - h);
        if (off[r] == 0) {
            (*zero)++;
            ok = memcmp(out + r * D, plain + r * D, (size_t)D * sizeof(double)) == 0 && h0 >= t - 1e-9;
            if (!ok) printf("# row %d: c = 0 but the output differs from the continuous one or H = %.12g < %.12g\n", r, h0, t);
            continue;
        }
        off[r] > 0 ? (*pos)++ : (*neg)++;
        worst_above = fmax(worst_above, h - t);
        double s0 = ref_row_slope(mr, plain + r * D, w, lmin, D), s1 = ref_row_slope(mr, out + r * D, w, lmin, D);
        /* out = l(c), within the bounds, K + c <= 0 */
        ok = ok && k + off[r] <= 0;
        for (int i = 0; i < D; i++) {
            double want = fmax(lmax + (k + off[r]) * w[i], lmin), o = out[r * D + i];
            ok = ok && fabs(o - want) <= 1e-13 * (1 + fabs(lmax) + fabs(k + off[r]) * w[i]) && o >= lmin && o <= lmax;
        }
        /* below the target at c = 0, and f crossing the target towards 0 at c (rising with c for
         * c > 0, falling for c < 0): the root nearest 0 on its side */
        ok = ok && h0 < t && (off[r] > 0) == (s1 > 0) && fabs(h - t) < 1e-9;
        if (off[r] > 0 && s0 < 0) printf("# row %d: c = %.6g > 0 though f falls at 0 (a kink lifts it)\n", r, off[r]);
        if (!ok)
            printf("# row %d: c = %.12g, H(0) = %.12g, H(c) = %.12g, target %.12g, slopes %.3g, %.3g\n", r, off[r], h0, h, t,
                   s0, s1);
    }
    printf("# %s: %d rows c > 0, %d rows c < 0, %d rows c = 0; worst H0 - H = %.3g, worst H - H0 (offset rows) = %.3g\n", name,
           *pos, *neg, *zero, worst_below, worst_above);
    report(ok && worst_below <= 1e-10 && n > 0, name);
}

/* loss = sum g * out; its central difference along one input coordinate */
static double fd_loss(batch *bt, double *var, double hstep) {
    int n = bt->rows * bt->dim;
    double out[RA * DA], fp = 0, fn = 0, keep = *var;
    *var = keep + hstep;
    era_continuous_tanh_forward_f64(&bt->p, bt->rows, bt->dim, bt->s, bt->m, out, NULL);
    for (int j = 0; j < n; j++) fp += bt->g[j] * out[j];
    *var = keep - hstep;
    era_continuous_tanh_forward_f64(&bt->p, bt->rows, bt->dim, bt->s, bt->m, out, NULL);
    for (int j = 0; j < n; j++) fn += bt->g[j] * out[j];
    *var = keep;
    return (fp - fn) / (2 * hstep);
}

static void check_backward(batch *bt, const char *name) {
    int R = bt->rows, D = bt->dim, n = R * D;
    double gs[RA * DA], gm[RA * DA], gr[RA];
    int ok = era_continuous_tanh_backward_f64(&bt->p, R, D, bt->s, bt->m, bt->g, gs, gm, gr) == ERA_OK;
    double worst = 0;
    for (int i = 0; ok && i < n; i++) {
        double fs = fd_loss(bt, &bt->s[i], 1e-6), fm = fd_loss(bt, &bt->m[i], 1e-6);
        worst = fmax(worst, fmax(fabs(gs[i] - fs) / fmax(1, fabs(fs)), fabs(gm[i] - fm) / fmax(1, fabs(fm))));
    }
    /* the residual gradient is the gradient with respect to H0 */
    double sum = 0;
    for (int r = 0; r < R; r++) sum += gr[r];
    double fr = fd_loss(bt, &bt->p.target_entropy, 1e-6), er = fabs(sum - fr) / fmax(1, fabs(fr));
    printf("# %s: worst relative error against central differences %.3g (inputs), %.3g (H0)\n", name, worst, er);
    report(ok && worst < 1e-6 && er < 1e-6, name);
}

static void test_floor(void) {
    static batch a, b;
    make_batches(&a, &b);
    int pa, na, za, pb, nb, zb;
    check_forward(&a, "continuous_tanh_forward_f64, batch A: floor held, c a root crossing towards 0", &pa, &na, &za);
    check_forward(&b, "continuous_tanh_forward_f64, batch B: floor held, c a root crossing towards 0", &pb, &nb, &zb);
    report(pa + pb > 0 && na + nb > 0 && za + zb > 0, "the floor batches have rows with c > 0, c < 0 and c = 0");

    /* in place, out_offset optional */
    {
        double s[RB * DB], out[RB * DB], off[RB];
        memcpy(s, b.s, sizeof s);
        int ok = era_continuous_tanh_forward_f64(&b.p, RB, DB, b.s, b.m, out, off) == ERA_OK &&
                 era_continuous_tanh_forward_f64(&b.p, RB, DB, s, b.m, s, NULL) == ERA_OK && memcmp(s, out, sizeof s) == 0;
        report(ok, "continuous_tanh_forward_f64 in place (out_log_std == std_logits), no out_offset: the same bits");
    }

    /* float32: the floor holds at the stored values (reference), and the f32 check agrees */
    for (int k = 0; k < 2; k++) {
        batch *bt = k ? &b : &a;
        int R = bt->rows, D = bt->dim, n = R * D;
        float sf[RA * DA], mf[RA * DA], of[RA * DA], cf[RA];
        double od[RA * DA], md[RA * DA];
        for (int i = 0; i < n; i++) { sf[i] = (float)bt->s[i]; mf[i] = (float)bt->m[i]; md[i] = mf[i]; }
        era_bound_report rep;
        int ok = era_continuous_tanh_forward_f32(&bt->p, R, D, sf, mf, of, cf) == ERA_OK &&
                 era_check_continuous_tanh_f32(&bt->p, R, D, mf, of, 0, &rep) == ERA_OK;
        for (int i = 0; i < n; i++) od[i] = of[i];
        double t = bt->p.target_entropy + bt->p.residual, worst = -INFINITY;
        for (int r = 0; ok && r < R; r++) worst = fmax(worst, t - ref_row_h(md + r * D, od + r * D, D));
        printf("# continuous_tanh_forward_f32, batch %c: worst H0 - H at the stored values %.3g\n", k ? 'B' : 'A', worst);
        report(ok && rep.violations == 0 && worst <= 1e-9,
               k ? "continuous_tanh_forward_f32, batch B: floor held at the stored values (reference and f32 check)"
                 : "continuous_tanh_forward_f32, batch A: floor held at the stored values (reference and f32 check)");
    }

    /* the check: the Gaussian ERA output misses the squashed floor, the tanh floor's does not */
    {
        double plain[RA * DA], out[RA * DA];
        era_bound_report rg, rt;
        int ok = era_continuous_forward_f64(&a.p, RA, DA, a.s, plain) == ERA_OK &&
                 era_continuous_tanh_forward_f64(&a.p, RA, DA, a.s, a.m, out, NULL) == ERA_OK &&
                 era_check_continuous_tanh_f64(&a.p, RA, DA, a.m, plain, 1e-10, &rg) == ERA_OK &&
                 era_check_continuous_tanh_f64(&a.p, RA, DA, a.m, out, 1e-10, &rt) == ERA_OK;
        double t = a.p.target_entropy, mn = INFINITY, mean = 0;
        int below = 0, worst = -1;
        for (int r = 0; r < RA; r++) {
            double h = ref_row_h(a.m + r * DA, plain + r * DA, DA);
            if (h < mn) { mn = h; worst = r; }
            mean += h / RA;
            below += h < t - 1e-10;
        }
        printf("# Gaussian ERA output: %lld of %d rows below H0 in squashed entropy, worst deficit %.3g\n",
               (long long)rg.violations, RA, rg.max_deficit);
        ok = ok && rg.rows == RA && rg.violations == below && below > 0 && rg.target == t && rg.floor == t &&
             fabs(rg.min_entropy - mn) < 1e-9 && fabs(rg.mean_entropy - mean) < 1e-9 && rg.worst_row == worst &&
             fabs(rg.max_deficit - (t - mn)) < 1e-9 && rt.violations == 0 && rt.max_deficit <= 1e-10;
        report(ok, "check_continuous_tanh_f64: report against the reference; Gaussian output violates, the floor does not");
    }

    check_backward(&a, "continuous_tanh_backward_f64, batch A (c > 0, c = 0) against central differences");
    check_backward(&b, "continuous_tanh_backward_f64, batch B (c < 0, c = 0) against central differences");
    {
        double gs[RB * DB], gm[RB * DB], gr[RB], s[RB * DB], g[RB * DB], m[RB * DB];
        float sf[RB * DB], mf[RB * DB], gf[RB * DB], gsf[RB * DB], gmf[RB * DB], grf[RB];
        for (int i = 0; i < RB * DB; i++) {
            sf[i] = (float)b.s[i]; mf[i] = (float)b.m[i]; gf[i] = (float)b.g[i];
            s[i] = sf[i]; m[i] = mf[i]; g[i] = gf[i];
        }
        int ok = era_continuous_tanh_backward_f64(&b.p, RB, DB, s, m, g, gs, gm, gr) == ERA_OK &&
                 era_continuous_tanh_backward_f32(&b.p, RB, DB, sf, mf, gf, gsf, gmf, grf) == ERA_OK;
        double worst = 0;
        for (int i = 0; ok && i < RB * DB; i++)
            worst = fmax(worst, fmax(fabs(gsf[i] - gs[i]), fabs(gmf[i] - gm[i])) / fmax(1, fmax(fabs(gs[i]), fabs(gm[i]))));
        for (int r = 0; ok && r < RB; r++) worst = fmax(worst, fabs(grf[r] - gr[r]) / fmax(1, fabs(gr[r])));
        report(ok && worst < 1e-5, "continuous_tanh_backward_f32 agrees with f64 on the same values (1e-5)");
        /* in place: out_grad_std_logits on grad_log_std, out_grad_mean on mean */
        double s2[RB * DB], g2[RB * DB], m2[RB * DB];
        memcpy(s2, s, sizeof s2); memcpy(g2, g, sizeof g2); memcpy(m2, m, sizeof m2);
        ok = era_continuous_tanh_backward_f64(&b.p, RB, DB, s2, m2, g2, g2, m2, NULL) == ERA_OK &&
             memcmp(g2, gs, sizeof g2) == 0 && memcmp(m2, gm, sizeof m2) == 0;
        memcpy(s2, s, sizeof s2);
        ok = ok && era_continuous_tanh_backward_f64(&b.p, RB, DB, s2, m, g, s2, gm, NULL) == ERA_OK && memcmp(s2, gs, sizeof s2) == 0;
        report(ok, "continuous_tanh_backward_f64 in place (grad_log_std, std_logits, mean): the same bits");
    }

    /* errors: nothing written */
    {
        enum { R = RB, D = DB, N = RB * DB };
        double s[N], m[N], g[N], out[N], off[R], gs[N], gm[N], gr[R];
        memcpy(s, b.s, sizeof s); memcpy(m, b.m, sizeof m); memcpy(g, b.g, sizeof g);
        era_continuous_params p = b.p, bad;
        fill7(out, N); fill7(off, R);
        int ok = era_continuous_tanh_forward_f64(NULL, R, D, s, m, out, off) == ERA_ERR_NULL_POINTER;
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, NULL, m, out, off) == ERA_ERR_NULL_POINTER;
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, NULL, out, off) == ERA_ERR_NULL_POINTER;
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, m, NULL, off) == ERA_ERR_NULL_POINTER;
        ok = ok && era_continuous_tanh_forward_f64(&p, -1, D, s, m, out, off) == ERA_ERR_BAD_SHAPE;
        ok = ok && era_continuous_tanh_forward_f64(&p, R, 0, s, m, out, off) == ERA_ERR_BAD_SHAPE;
        ok = ok && era_continuous_tanh_forward_f64(&p, INT64_MAX / 2, 4, s, m, out, off) == ERA_ERR_BAD_SHAPE;
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, m, m, off) == ERA_ERR_OVERLAP;      /* out on mean */
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, m, s + 1, off) == ERA_ERR_OVERLAP;  /* partial */
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, m, out, out + 2) == ERA_ERR_OVERLAP; /* offset in out */
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, m, out, m) == ERA_ERR_OVERLAP;
        bad = p; bad.residual = -1;
        ok = ok && era_continuous_tanh_forward_f64(&bad, R, D, s, m, out, off) == ERA_ERR_BAD_PARAMETER;
        bad = p; bad.log_std_min = bad.log_std_max;
        ok = ok && era_continuous_tanh_forward_f64(&bad, R, D, s, m, out, off) == ERA_ERR_BAD_PARAMETER;
        bad = p; bad.target_entropy = NAN;
        ok = ok && era_continuous_tanh_forward_f64(&bad, R, D, s, m, out, off) == ERA_ERR_BAD_PARAMETER;
        bad = p; bad.target_entropy = 100; /* K > 0 */
        ok = ok && era_continuous_tanh_forward_f64(&bad, R, D, s, m, out, off) == ERA_ERR_INFEASIBLE_TARGET;
        /* statically infeasible: above dim * 0.68363556 (the peak at mean 0), though K <= 0 */
        bad = p; bad.target_entropy = D * 0.68366;
        ok = ok && era_continuous_tanh_forward_f64(&bad, R, D, s, m, out, off) == ERA_ERR_INFEASIBLE_TARGET;
        bad = p; bad.target_entropy = D * 0.68 - 0.5; bad.residual = 0.5; /* feasible only near mean 0 */
        ok = ok && era_continuous_tanh_forward_f64(&bad, R, D, s, m, out, off) == ERA_ERR_INFEASIBLE_TARGET;
        double keep = s[N - 1];
        s[N - 1] = NAN;
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, m, out, off) == ERA_ERR_NON_FINITE;
        s[N - 1] = keep; keep = m[N - 1]; m[N - 1] = INFINITY;
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, m, out, off) == ERA_ERR_NON_FINITE;
        m[N - 1] = keep;
        /* row-dependent: the last row's means at +-3 (peak -2.85 nats a dimension) cannot reach H0 = 0 */
        m[N - 1] = 3; m[N - 2] = -3;
        ok = ok && era_continuous_tanh_forward_f64(&p, R, D, s, m, out, off) == ERA_ERR_INFEASIBLE_TARGET;
        report(ok && untouched(out, N) && untouched(off, R), "continuous_tanh_forward_f64 errors, nothing written");
        era_bound_report infeasible;
        ok = era_check_continuous_tanh_f64(&p, R, D, m, s, 0, &infeasible) == ERA_OK && infeasible.violations >= 1;
        report(ok, "check_continuous_tanh_f64 of a row that cannot reach H0: a violation, not an error");

        fill7(gs, N); fill7(gm, N); fill7(gr, R);
        ok = era_continuous_tanh_backward_f64(&p, R, D, s, m, g, gs, gm, gr) == ERA_ERR_INFEASIBLE_TARGET;
        m[N - 1] = b.m[N - 1]; m[N - 2] = b.m[N - 2];
        ok = ok && era_continuous_tanh_backward_f64(&bad, R, D, s, m, g, gs, gm, gr) == ERA_ERR_INFEASIBLE_TARGET;
        ok = ok && era_continuous_tanh_backward_f64(NULL, R, D, s, m, g, gs, gm, gr) == ERA_ERR_NULL_POINTER;
        ok = ok && era_continuous_tanh_backward_f64(&p, R, D, s, m, NULL, gs, gm, gr) == ERA_ERR_NULL_POINTER;
        ok = ok && era_continuous_tanh_backward_f64(&p, R, D, s, m, g, gs, NULL, gr) == ERA_ERR_NULL_POINTER;
        ok = ok && era_continuous_tanh_backward_f64(&p, R, -1, s, m, g, gs, gm, gr) == ERA_ERR_BAD_SHAPE;
        ok = ok && era_continuous_tanh_backward_f64(&p, R, D, s, m, g, gs, gs, gr) == ERA_ERR_OVERLAP;
        ok = ok && era_continuous_tanh_backward_f64(&p, R, D, s, m, g, gs, s, gr) == ERA_ERR_OVERLAP;    /* grad_mean on std_logits */
        ok = ok && era_continuous_tanh_backward_f64(&p, R, D, s, m, g, m, gm, gr) == ERA_ERR_OVERLAP;    /* grad_std_logits on mean */
        ok = ok && era_continuous_tanh_backward_f64(&p, R, D, s, m, g, gs, gm, gm + 1) == ERA_ERR_OVERLAP;
        g[5] = -INFINITY;
        ok = ok && era_continuous_tanh_backward_f64(&p, R, D, s, m, g, gs, gm, gr) == ERA_ERR_NON_FINITE;
        g[5] = b.g[5];
        report(ok && untouched(gs, N) && untouched(gm, N) && untouched(gr, R), "continuous_tanh_backward_f64 errors, nothing written");

        era_bound_report rep;
        memset(&rep, 0x5A, sizeof rep);
        era_bound_report same = rep;
        ok = era_check_continuous_tanh_f64(&p, R, D, NULL, s, 0, &rep) == ERA_ERR_NULL_POINTER;
        ok = ok && era_check_continuous_tanh_f64(&p, R, D, m, NULL, 0, &rep) == ERA_ERR_NULL_POINTER;
        ok = ok && era_check_continuous_tanh_f64(&p, R, D, m, s, 0, NULL) == ERA_ERR_NULL_POINTER;
        ok = ok && era_check_continuous_tanh_f64(NULL, R, D, m, s, 0, &rep) == ERA_ERR_NULL_POINTER;
        ok = ok && era_check_continuous_tanh_f64(&p, R, D, m, s, NAN, &rep) == ERA_ERR_BAD_PARAMETER;
        ok = ok && era_check_continuous_tanh_f64(&p, R, D, m, s, -1, &rep) == ERA_ERR_BAD_PARAMETER;
        ok = ok && era_check_continuous_tanh_f64(&p, -1, D, m, s, 0, &rep) == ERA_ERR_BAD_SHAPE;
        bad = p; bad.target_entropy = D * 0.68366;
        ok = ok && era_check_continuous_tanh_f64(&bad, R, D, m, s, 0, &rep) == ERA_ERR_INFEASIBLE_TARGET;
        s[0] = NAN;
        ok = ok && era_check_continuous_tanh_f64(&p, R, D, m, s, 0, &rep) == ERA_ERR_NON_FINITE;
        s[0] = b.s[0];
        ok = ok && memcmp(&rep, &same, sizeof rep) == 0;
        ok = ok && era_check_continuous_tanh_f64(&p, 0, D, NULL, NULL, 0, &rep) == ERA_OK && rep.rows == 0 && rep.worst_row == -1;
        report(ok, "check_continuous_tanh_f64 errors, report untouched; zero rows fine");

        /* f32: the same refusals */
        float sf[N], mf[N], of[N], cf[R];
        for (int i = 0; i < N; i++) { sf[i] = (float)s[i]; mf[i] = (float)m[i]; }
        fill7f(of, N); fill7f(cf, R);
        mf[N - 1] = 3; mf[N - 2] = -3;
        ok = era_continuous_tanh_forward_f32(&p, R, D, sf, mf, of, cf) == ERA_ERR_INFEASIBLE_TARGET;
        mf[N - 1] = NAN;
        ok = ok && era_continuous_tanh_forward_f32(&p, R, D, sf, mf, of, cf) == ERA_ERR_NON_FINITE;
        mf[N - 1] = (float)m[N - 1]; mf[N - 2] = (float)m[N - 2];
        ok = ok && era_continuous_tanh_forward_f32(&p, R, D, sf, mf, of, of + 1) == ERA_ERR_OVERLAP;
        report(ok && untouched_f(of, N) && untouched_f(cf, R), "continuous_tanh_forward_f32 errors, nothing written");
    }
}

int main(void) {
    test_entropy_backward();
    test_floor();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
