/*
 * test_era.c -- every non-LLM entry point of libera (era.h: versions, status strings, threads,
 * entropy math, continuous ERA, discrete ERA, bound checks) driven through libera.so, in
 * float32 and float64, against the plain float64 references of era_reference.h.
 * Prints "ok N - name" / "not ok N - name" per case, "# ..." lines for measurements, and ends
 * with "N passed, M failed"; exits non-zero when a case failed.
 */
#define _POSIX_C_SOURCE 199309L
#include "era.h"
#include "era_reference.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERA_TEST_SEED 0x2545F4914F6CDD1Dull
#include "test_support.h"

static void check(int ok, const char *fmt, ...) {
    char name[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    report(ok, name);
}

/* ---- deterministic random numbers (test_support.h), and integers from them ----------- */
static int64_t irand(int64_t n) { return (int64_t)(uniform() * (double)n); }

/* ---- the two float types behind one interface ----------------------------------------
 * f64 == 0: float, f64 == 1: double. Buffers are void *, values go through double. */
static const char *const TN[2] = {"f32", "f64"};
static const double TOL[2] = {1e-5, 1e-10};   /* accuracy and bound tolerance per type */

static size_t tsize(int f64) { return f64 ? sizeof(double) : sizeof(float); }
static void *talloc(int f64, int64_t n) { return xmalloc((size_t)(n > 0 ? n : 1) * tsize(f64)); }
static void tput(void *b, int f64, int64_t i, double v) {
    if (f64) ((double *)b)[i] = v; else ((float *)b)[i] = (float)v;
}
static double tget(const void *b, int f64, int64_t i) {
    return f64 ? ((const double *)b)[i] : (double)((const float *)b)[i];
}
static void tfrom(void *b, int f64, const double *src, int64_t n) { for (int64_t i = 0; i < n; i++) tput(b, f64, i, src[i]); }
static void tto(const void *b, int f64, double *dst, int64_t n) { for (int64_t i = 0; i < n; i++) dst[i] = tget(b, f64, i); }

static era_status w_softmax(int f64, int64_t r, int64_t c, const void *z, void *o) {
    return f64 ? era_softmax_entropy_f64(r, c, z, o) : era_softmax_entropy_f32(r, c, z, o);
}
static era_status w_gauss(int f64, int64_t r, int64_t d, const void *ls, void *o) {
    return f64 ? era_gaussian_entropy_f64(r, d, ls, o) : era_gaussian_entropy_f32(r, d, ls, o);
}
static era_status w_tanh(int f64, int64_t r, int64_t d, const void *m, const void *ls, void *o) {
    return f64 ? era_tanh_gaussian_entropy_f64(r, d, m, ls, o) : era_tanh_gaussian_entropy_f32(r, d, m, ls, o);
}
static era_status w_trunc(int f64, int64_t r, int64_t d, const void *m, const void *ls, double lo, double hi, void *o) {
    return f64 ? era_truncated_normal_entropy_f64(r, d, m, ls, lo, hi, o)
               : era_truncated_normal_entropy_f32(r, d, m, ls, lo, hi, o);
}
static era_status w_cfwd(int f64, const era_continuous_params *p, int64_t r, int64_t d, const void *s, void *o) {
    return f64 ? era_continuous_forward_f64(p, r, d, s, o) : era_continuous_forward_f32(p, r, d, s, o);
}
static era_status w_cbwd(int f64, const era_continuous_params *p, int64_t r, int64_t d, const void *s, const void *g,
                         void *o, void *res) {
    return f64 ? era_continuous_backward_f64(p, r, d, s, g, o, res) : era_continuous_backward_f32(p, r, d, s, g, o, res);
}
static era_status w_dfwd(int f64, const era_discrete_params *p, int64_t r, int64_t d, const void *z, void *o) {
    return f64 ? era_discrete_forward_f64(p, r, d, z, o) : era_discrete_forward_f32(p, r, d, z, o);
}
static era_status w_dbwd(int f64, const era_discrete_params *p, int64_t r, int64_t d, const void *z, const void *g,
                         void *o) {
    return f64 ? era_discrete_backward_f64(p, r, d, z, g, o) : era_discrete_backward_f32(p, r, d, z, g, o);
}
static era_status w_dcheck(int f64, const era_discrete_params *p, int64_t r, int64_t d, const void *z, double tol,
                           era_bound_report *rep) {
    return f64 ? era_check_discrete_f64(p, r, d, z, tol, rep) : era_check_discrete_f32(p, r, d, z, tol, rep);
}
static era_status w_ccheck(int f64, const era_continuous_params *p, int64_t r, int64_t d, const void *m,
                           const void *ls, double tol, era_bound_report *rep) {
    return f64 ? era_check_continuous_f64(p, r, d, m, ls, tol, rep) : era_check_continuous_f32(p, r, d, m, ls, tol, rep);
}

/* |got - want| relative to max(1, |want|). */
static double err1(double got, double want) {
    if (isnan(got) || isnan(want)) return (isnan(got) && isnan(want)) ? 0 : INFINITY;
    if (got == want) return 0;
    return fabs(got - want) / fmax(1.0, fabs(want));
}

static era_continuous_params cparams(double h0, double delta, double lmin, double lmax) {
    era_continuous_params p;
    era_continuous_params_init(&p);
    p.target_entropy = h0;
    p.residual = delta;
    p.log_std_min = lmin;
    p.log_std_max = lmax;
    return p;
}
static era_discrete_params dparams(double h0, double tau, int mode) {
    era_discrete_params p;
    era_discrete_params_init(&p);
    p.target_entropy = h0;
    p.tau = tau;
    p.mode = mode;
    return p;
}
static const char *const MODE_NAME[3] = {"EXACT", "TIGHT", "REFERENCE"};

/* The feasible target range of a discrete mode: [lo, hi] for EXACT/REFERENCE, (lo, hi) TIGHT. */
static void discrete_range(int mode, int64_t d, double tau, double *lo, double *hi) {
    double up = log(tau) / tau;
    if (mode == ERA_DISCRETE_TIGHT) { *lo = 0; *hi = log((double)d); }
    else { *lo = 1.0 + log(up); *hi = 1.0 + log((double)d * up); }
}

/* ======================================================================================
 * 1. versions, status strings, parameter defaults
 * ==================================================================================== */

static void test_versions(void) {
    check(era_abi_version() == ERA_ABI_VERSION, "era_abi_version() == ERA_ABI_VERSION (%d)", ERA_ABI_VERSION);
    char want[40];
    snprintf(want, sizeof want, "%d.%d.%d", ERA_VERSION_MAJOR, ERA_VERSION_MINOR, ERA_VERSION_PATCH);
    const char *v = era_version_string();
    check(v != NULL && strcmp(v, want) == 0 && era_version_string() == v,
          "era_version_string() is \"%s\" (the version macros), a static string", want);
    int ma = -1, mi = -1, pa = -1;
    int n = v ? sscanf(v, "%d.%d.%d", &ma, &mi, &pa) : 0;
    check(n == 3 && ma * 10000 + mi * 100 + pa == ERA_VERSION_NUMBER, "ERA_VERSION_NUMBER %d matches the string",
          ERA_VERSION_NUMBER);
}

static void test_status_strings(void) {
    enum { N = 10 };
    const era_status all[N] = {ERA_OK, ERA_ERR_NULL_POINTER, ERA_ERR_BAD_SHAPE, ERA_ERR_BAD_PARAMETER,
                               ERA_ERR_INFEASIBLE_TARGET, ERA_ERR_NON_FINITE, ERA_ERR_ALLOCATION, ERA_ERR_INTERNAL,
                               ERA_ERR_BAD_INDEX, ERA_ERR_OVERLAP};
    const char *names[N] = {"ERA_OK", "ERA_ERR_NULL_POINTER", "ERA_ERR_BAD_SHAPE", "ERA_ERR_BAD_PARAMETER",
                            "ERA_ERR_INFEASIBLE_TARGET", "ERA_ERR_NON_FINITE", "ERA_ERR_ALLOCATION",
                            "ERA_ERR_INTERNAL", "ERA_ERR_BAD_INDEX", "ERA_ERR_OVERLAP"};
    const char *s[N];
    for (int i = 0; i < N; i++) s[i] = era_status_string(all[i]);
    for (int i = 0; i < N; i++) {
        int ok = s[i] != NULL && s[i][0] != '\0' && strcmp(s[i], "unknown status") != 0 &&
                 era_status_string(all[i]) == s[i];
        for (int j = 0; ok && j < N; j++) if (j != i) ok = s[j] != NULL && strcmp(s[i], s[j]) != 0;
        check(ok, "era_status_string(%s) = \"%s\": own static text, distinct from the others", names[i],
              s[i] ? s[i] : "(null)");
    }
    check(s[0] && strcmp(s[0], "ok") == 0 && s[1] && strcmp(s[1], "null pointer") == 0,
          "status texts \"ok\" and \"null pointer\" as documented");
    const int unknown[3] = {10, 1000, -1};
    for (int i = 0; i < 3; i++) {
        const char *u = era_status_string((era_status)unknown[i]);
        check(u != NULL && strcmp(u, "unknown status") == 0, "era_status_string(%d) = \"unknown status\"", unknown[i]);
    }
}

static void test_params_init(void) {
    era_continuous_params cp;
    memset(&cp, 0x5A, sizeof cp);
    era_continuous_params_init(&cp);
    check(isnan(cp.target_entropy) && cp.residual == 0.0 && cp.log_std_min == -8.0 && cp.log_std_max == 0.0,
          "continuous params init: target NaN (unset), residual 0, log_std_min -8, log_std_max 0");
    era_discrete_params dp;
    memset(&dp, 0x5A, sizeof dp);
    era_discrete_params_init(&dp);
    check(isnan(dp.target_entropy) && dp.tau == 4.0 && dp.mode == ERA_DISCRETE_EXACT,
          "discrete params init: target NaN (unset), tau 4, mode EXACT");
    era_continuous_params_init(NULL);
    era_discrete_params_init(NULL);
    era_continuous_params cq;
    era_continuous_params_init(&cq);
    check(memcmp(&cq, &cp, sizeof cp) == 0, "params init with NULL is ignored; init is repeatable");
}

/* ======================================================================================
 * 2. threads
 * ==================================================================================== */

static void test_threads(void) {
    const int32_t def = era_get_num_threads();
    check(def >= 1, "default thread setting %d >= 1", def);
    int ok = era_set_num_threads(1) == ERA_OK && era_get_num_threads() == 1 && era_set_num_threads(2) == ERA_OK &&
             era_get_num_threads() == 2 && era_set_num_threads(1024) == ERA_OK && era_get_num_threads() == 1024;
    check(ok, "era_set_num_threads 1, 2, 1024 read back by era_get_num_threads");
    ok = era_set_num_threads(0) == ERA_OK && era_get_num_threads() == def;
    check(ok, "era_set_num_threads(0) restores the default %d", def);
    era_set_num_threads(3);
    check(era_set_num_threads(-1) == ERA_ERR_BAD_PARAMETER && era_get_num_threads() == 3,
          "era_set_num_threads(-1) -> bad parameter, setting unchanged");
    check(era_set_num_threads(1025) == ERA_ERR_BAD_PARAMETER && era_get_num_threads() == 3,
          "era_set_num_threads(1025) -> bad parameter, setting unchanged");

    /* Bit-identical results with 1 and 2 threads (and 3, an uneven split). */
    const int64_t rows = 3000, d = 1000, cd = 61;
    double t0 = now();
    for (int f64 = 0; f64 < 2; f64++) {
        void *z = talloc(f64, rows * d), *g = talloc(f64, rows * d);
        void *o[3], *b[3], *co[3], *cb[3], *cr[3];
        era_bound_report rep[3];
        for (int64_t i = 0; i < rows * d; i++) {
            tput(z, f64, i, normal() * (i % 7 == 0 ? 30.0 : 2.0));
            tput(g, f64, i, normal());
        }
        era_discrete_params dp = dparams(3.0, 4.0, ERA_DISCRETE_EXACT);
        era_continuous_params cp = cparams(-0.5 * (double)cd, 0.2, -8, 0);
        int status_ok = 1;
        const int32_t settings[3] = {1, 2, 3};
        for (int k = 0; k < 3; k++) {
            o[k] = talloc(f64, rows * d); b[k] = talloc(f64, rows * d);
            co[k] = talloc(f64, rows * cd); cb[k] = talloc(f64, rows * cd); cr[k] = talloc(f64, rows);
            era_set_num_threads(settings[k]);
            status_ok &= w_dfwd(f64, &dp, rows, d, z, o[k]) == ERA_OK;
            status_ok &= w_dbwd(f64, &dp, rows, d, z, g, b[k]) == ERA_OK;
            status_ok &= w_cfwd(f64, &cp, rows, cd, z, co[k]) == ERA_OK;
            status_ok &= w_cbwd(f64, &cp, rows, cd, z, g, cb[k], cr[k]) == ERA_OK;
            memset(&rep[k], 0, sizeof rep[k]);
            status_ok &= w_dcheck(f64, &dp, rows, d, o[k], 0.0, &rep[k]) == ERA_OK;
        }
        size_t bytes = (size_t)(rows * d) * tsize(f64), cbytes = (size_t)(rows * cd) * tsize(f64);
        int same_d = 1, same_c = 1, same_rep = 1;
        for (int k = 1; k < 3; k++) {
            same_d &= memcmp(o[0], o[k], bytes) == 0 && memcmp(b[0], b[k], bytes) == 0;
            same_c &= memcmp(co[0], co[k], cbytes) == 0 && memcmp(cb[0], cb[k], cbytes) == 0 &&
                      memcmp(cr[0], cr[k], (size_t)rows * tsize(f64)) == 0;
            same_rep &= memcmp(&rep[0], &rep[k], sizeof rep[0]) == 0;
        }
        check(status_ok && same_d, "%s discrete forward+backward 3000 x 1000: bit-identical with 1, 2 and 3 threads",
              TN[f64]);
        check(status_ok && same_c, "%s continuous forward+backward 3000 x 61: bit-identical with 1, 2 and 3 threads",
              TN[f64]);
        check(status_ok && same_rep, "%s discrete check report 3000 x 1000: identical with 1, 2 and 3 threads", TN[f64]);
        for (int k = 0; k < 3; k++) { free(o[k]); free(b[k]); free(co[k]); free(cb[k]); free(cr[k]); }
        free(z); free(g);
    }
    printf("# threads: bit-identity runs took %.2f s\n", now() - t0);
    check(era_set_num_threads(0) == ERA_OK && era_get_num_threads() == def, "thread setting restored with 0 (%d)", def);
}

/* ======================================================================================
 * 3. entropy math
 * ==================================================================================== */

static void test_softmax_entropy(void) {
    enum { R = 40, D = 9 };
    double zd[R * D], want[R], row[D];
    for (int r = 0; r < R; r++) {
        double scale = pow(10.0, (double)(r % 10) - 4.0);
        for (int i = 0; i < D; i++) zd[r * D + i] = normal() * scale;
    }
    for (int i = 0; i < D; i++) { zd[0 * D + i] = 7.0; zd[1 * D + i] = (i == 4) ? 1e30 : -1e30; }
    for (int i = 0; i < D; i++) zd[2 * D + i] = (i < 3) ? 1e30 : -1e30;  /* three tied at the top */
    zd[3 * D + 2] = 1e4;                                                   /* near one-hot */
    for (int f64 = 0; f64 < 2; f64++) {
        void *z = talloc(f64, R * D), *out = talloc(f64, R);
        tfrom(z, f64, zd, R * D);
        int ok = w_softmax(f64, R, D, z, out) == ERA_OK;
        double worst = 0;
        for (int r = 0; r < R; r++) {
            tto((const char *)z + (size_t)(r * D) * tsize(f64), f64, row, D);
            want[r] = ref_softmax_entropy(row, D);
            worst = fmax(worst, err1(tget(out, f64, r), want[r]));
        }
        printf("# softmax entropy %s: worst error %.2e\n", TN[f64], worst);
        check(ok && worst <= TOL[f64], "softmax entropy %s against float64 reference, scales 1e-4..1e5, +-1e30 rows",
              TN[f64]);
        const double tie_tol = f64 ? 4 * DBL_EPSILON : 4 * FLT_EPSILON;
        check(ok && err1(tget(out, f64, 0), log((double)D)) <= tie_tol && tget(out, f64, 1) == 0.0 &&
                  err1(tget(out, f64, 2), log(3.0)) <= tie_tol,
              "softmax entropy %s: ties give log D, one +1e30 gives 0, three tied at 1e30 give log 3", TN[f64]);
        double one = 5.0, h1 = -1;
        void *z1 = talloc(f64, 1), *o1 = talloc(f64, 1);
        tput(z1, f64, 0, one);
        ok = w_softmax(f64, 1, 1, z1, o1) == ERA_OK;
        h1 = tget(o1, f64, 0);
        check(ok && h1 == 0.0, "softmax entropy %s: one column gives 0", TN[f64]);
        /* Long row. */
        const int64_t n = 152064;
        void *zl = talloc(f64, n), *ol = talloc(f64, 1);
        double *rl = xmalloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < n; i++) tput(zl, f64, i, normal() * 3.0);
        tto(zl, f64, rl, n);
        ok = w_softmax(f64, 1, n, zl, ol) == ERA_OK;
        double e = err1(tget(ol, f64, 0), ref_softmax_entropy(rl, n));
        check(ok && e <= TOL[f64], "softmax entropy %s, D = 152064 (error %.1e)", TN[f64], e);
        free(z); free(out); free(z1); free(o1); free(zl); free(ol); free(rl);
    }
}

static void test_gaussian_entropy(void) {
    for (int f64 = 0; f64 < 2; f64++) {
        double worst = 0;
        int ok = 1;
        for (int64_t d = 1; d <= 61; d += 6) {
            const int64_t rows = 5;
            void *ls = talloc(f64, rows * d), *out = talloc(f64, rows);
            double *row = xmalloc(sizeof(double) * (size_t)d);
            for (int64_t i = 0; i < rows * d; i++) tput(ls, f64, i, normal() * 3.0 - 1.0);
            ok &= w_gauss(f64, rows, d, ls, out) == ERA_OK;
            for (int64_t r = 0; r < rows; r++) {
                tto((const char *)ls + (size_t)(r * d) * tsize(f64), f64, row, d);
                worst = fmax(worst, err1(tget(out, f64, r), ref_gaussian_entropy(row, d)));
            }
            free(ls); free(out); free(row);
        }
        printf("# gaussian entropy %s: worst error %.2e\n", TN[f64], worst);
        check(ok && worst <= TOL[f64], "gaussian entropy %s against sum log_std + D*0.5*log(2*pi*e), dims 1..61",
              TN[f64]);
    }
}

static void test_tanh_entropy(void) {
    /* The spec's per-dimension squashing penalties: entropy - (log_std + c) for dim 1. */
    const double mu[4] = {0, 0, 1, 2}, sd[4] = {0.1, 1, 0.5, 1}, quoted[4] = {-0.00995, -0.7491, -0.9792, -2.7856};
    const double half_unit[4] = {5e-6, 5e-5, 5e-5, 5e-5};
    for (int k = 0; k < 4; k++) {
        double ls = log(sd[k]), h = NAN;
        era_status st = era_tanh_gaussian_entropy_f64(1, 1, &mu[k], &ls, &h);
        double pen = h - (ls + ref_gauss_c()), rp = ref_tanh_penalty(mu[k], sd[k]);
        check(st == ERA_OK && fabs(pen - quoted[k]) <= half_unit[k] && fabs(rp - quoted[k]) <= half_unit[k] &&
                  fabs(pen - rp) <= 1e-8,
              "tanh penalty (mu %g, std %g) = %.7f (reference %.7f), spec %g", mu[k], sd[k], pen, rp, quoted[k]);
    }
    /* A grid of means and stds, dim 8 rows, against Simpson quadrature. */
    const double means[6] = {-4, -1, 0, 0.3, 2, 10};
    const double logstds[8] = {-8, -3, -1, -0.6931471805599453, 0, 1, 1.6094379124341003, 4.605170185988092};
    enum { R = 6, D = 8 };
    for (int f64 = 0; f64 < 2; f64++) {
        void *m = talloc(f64, R * D), *ls = talloc(f64, R * D), *out = talloc(f64, R);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < D; i++) {
                tput(m, f64, r * D + i, means[r] + 0.1 * i);
                tput(ls, f64, r * D + i, logstds[(i + r) % 8]);
            }
        int ok = w_tanh(f64, R, D, m, ls, out) == ERA_OK;
        double worst = 0, mrow[D], lrow[D];
        for (int r = 0; ok && r < R; r++) {
            tto((const char *)m + (size_t)(r * D) * tsize(f64), f64, mrow, D);
            tto((const char *)ls + (size_t)(r * D) * tsize(f64), f64, lrow, D);
            worst = fmax(worst, err1(tget(out, f64, r), ref_tanh_gaussian_entropy(mrow, lrow, D)));
        }
        printf("# tanh-gaussian entropy %s: worst error %.2e\n", TN[f64], worst);
        check(ok && worst <= (f64 ? 1e-8 : TOL[0]),
              "tanh-gaussian entropy %s against Simpson quadrature, mean -4..10, std e^-8..100", TN[f64]);
        free(m); free(ls); free(out);
    }
}

static void test_truncated_normal(void) {
    struct { double lo, hi; } iv[5] = {{-1, 1}, {0, 3}, {-2, 5}, {2, 3}, {-0.5, -0.25}};
    const double locs[6] = {-3, -0.7615941559557649, 0, 0.2, 0.9640275800758169, 6};
    const double logstds[5] = {-6, -2, -0.5, 0.5, 2.5};
    enum { D = 5 };
    for (int f64 = 0; f64 < 2; f64++) {
        double worst = 0;
        int ok = 1;
        for (int k = 0; k < 5; k++) {
            void *m = talloc(f64, 6 * D), *ls = talloc(f64, 6 * D), *out = talloc(f64, 6);
            for (int r = 0; r < 6; r++)
                for (int i = 0; i < D; i++) { tput(m, f64, r * D + i, locs[r]); tput(ls, f64, r * D + i, logstds[i]); }
            ok &= w_trunc(f64, 6, D, m, ls, iv[k].lo, iv[k].hi, out) == ERA_OK;
            for (int r = 0; r < 6; r++) {
                double h = 0;
                for (int i = 0; i < D; i++)
                    h += ref_truncated_normal_entropy(tget(m, f64, r * D + i), exp(tget(ls, f64, r * D + i)), iv[k].lo,
                                                      iv[k].hi);
                worst = fmax(worst, err1(tget(out, f64, r), h));
            }
            free(m); free(ls); free(out);
        }
        printf("# truncated normal entropy %s: worst error %.2e\n", TN[f64], worst);
        check(ok && worst <= (f64 ? 1e-8 : TOL[0]),
              "truncated normal entropy %s against Simpson of -f log f: 5 intervals, tails, std e^-6..e^2.5", TN[f64]);
        /* A wide interval: the untruncated Gaussian entropy. */
        void *m = talloc(f64, 1), *ls = talloc(f64, 1), *out = talloc(f64, 1);
        tput(m, f64, 0, 0.5); tput(ls, f64, 0, 0.25);
        ok = w_trunc(f64, 1, 1, m, ls, -60, 60, out) == ERA_OK;
        check(ok && err1(tget(out, f64, 0), ref_gauss_c() + tget(ls, f64, 0)) <= TOL[f64],
              "truncated normal %s on [-60, 60] equals the Gaussian entropy", TN[f64]);
        free(m); free(ls); free(out);
    }
}

/* ======================================================================================
 * 4. continuous ERA
 * ==================================================================================== */

/* K = 0 computed in floating point can come out a rounding above 0, which is (rightly)
 * infeasible: step the target down by ulps until the library accepts it. */
static void feasible_top(era_continuous_params *p, int64_t d) {
    for (int k = 0; k < 16; k++) {
        if (era_continuous_forward_f64(p, 0, d, NULL, NULL) != ERA_ERR_INFEASIBLE_TARGET) return;
        p->target_entropy = nextafter(p->target_entropy, -INFINITY);
    }
}

/* Fills rows x d standard-scale logits of assorted kinds. */
static void continuous_inputs(double *s, int64_t rows, int64_t d) {
    for (int64_t r = 0; r < rows; r++) {
        double *x = s + r * d;
        int kind = (int)(r % 6);
        double scale = pow(10.0, uniform() * 4 - 2);
        for (int64_t i = 0; i < d; i++) x[i] = normal() * scale;
        if (kind == 3) x[irand(d)] += 40.0;
        if (kind == 4) for (int64_t i = 0; i < d; i++) x[i] = 1.5;
        if (kind == 5) for (int64_t i = 0; i < d; i++) x[i] = normal() * 0.01;
    }
}

static void test_continuous_forward(void) {
    const int64_t dims[5] = {1, 2, 6, 17, 61};
    for (int f64 = 0; f64 < 2; f64++) {
        double worst = 0, worst_floor = INFINITY, worst_eq = 0;
        int ok = 1, in_bounds = 1, rounded_up = 1;
        for (int di = 0; di < 5; di++) {
            const int64_t d = dims[di], rows = 12;
            const struct { double h0, delta, lmin, lmax; } ps[3] = {
                {-0.5 * (double)d, 0.0, -8, 0},
                {-3.0 * (double)d, 0.5, -5, 1},
                {(double)d * (ref_gauss_c() + 0.5), 0.0, -8, 0.5}, /* K = 0: every std at its maximum */
            };
            for (int k = 0; k < 3; k++) {
                era_continuous_params p = cparams(ps[k].h0, ps[k].delta, ps[k].lmin, ps[k].lmax);
                if (k == 2) feasible_top(&p, d);
                double *sd = xmalloc(sizeof(double) * (size_t)(rows * d)), *want = xmalloc(sizeof(double) * (size_t)d);
                double *in = xmalloc(sizeof(double) * (size_t)d);
                int *unclipped = xmalloc(sizeof(int) * (size_t)d);
                continuous_inputs(sd, rows, d);
                void *s = talloc(f64, rows * d), *out = talloc(f64, rows * d);
                tfrom(s, f64, sd, rows * d);
                ok &= w_cfwd(f64, &p, rows, d, s, out) == ERA_OK;
                for (int64_t r = 0; r < rows; r++) {
                    tto((const char *)s + (size_t)(r * d) * tsize(f64), f64, in, d);
                    ref_continuous_row(in, d, p.target_entropy, p.residual, p.log_std_min, p.log_std_max, want,
                                       unclipped);
                    double h = 0;
                    int any_clipped = 0;
                    for (int64_t i = 0; i < d; i++) {
                        double got = tget(out, f64, r * d + i);
                        worst = fmax(worst, err1(got, want[i]));
                        h += got;
                        any_clipped |= !unclipped[i];
                        if (f64) in_bounds &= got >= p.log_std_min && got <= p.log_std_max;
                        else in_bounds &= got >= p.log_std_min && (float)got <= (float)p.log_std_max;
                        if (!f64 && want[i] < p.log_std_max) rounded_up &= got >= want[i] - 1e-15 * fabs(want[i]);
                    }
                    h += (double)d * ref_gauss_c();
                    double h0p = p.target_entropy + p.residual;
                    worst_floor = fmin(worst_floor, h - h0p);
                    if (!any_clipped && f64) worst_eq = fmax(worst_eq, err1(h, h0p));
                }
                free(sd); free(want); free(in); free(unclipped); free(s); free(out);
            }
        }
        printf("# continuous forward %s: worst error %.2e, smallest entropy margin over H0+delta %.2e, "
               "unclipped rows |H - (H0+delta)| %.2e\n", TN[f64], worst, worst_floor, worst_eq);
        check(ok && worst <= TOL[f64], "continuous forward %s against float64 reference (dims 1..61, clipped rows, K = 0)",
              TN[f64]);
        check(ok && in_bounds, "continuous forward %s: every log std in [log_std_min, log_std_max]", TN[f64]);
        check(ok && worst_floor >= -TOL[f64], "continuous forward %s: Gaussian entropy >= H0 + delta", TN[f64]);
        if (f64) check(ok && worst_eq <= 1e-12, "continuous forward f64: equality H = H0 + delta on unclipped rows");
        else check(ok && rounded_up, "continuous forward f32: stored log stds rounded up from the float64 values");
    }
}

/* L(s) = sum_i g_i * forward(s)_i with the library's f64 forward. */
static double continuous_loss(const era_continuous_params *p, int64_t d, const double *s, const double *g, double *buf) {
    if (era_continuous_forward_f64(p, 1, d, s, buf) != ERA_OK) return NAN;
    double l = 0;
    for (int64_t i = 0; i < d; i++) l += g[i] * buf[i];
    return l;
}

static void test_continuous_backward(void) {
    /* Against the analytic reference, both types. */
    const int64_t dims[4] = {1, 3, 17, 61};
    for (int f64 = 0; f64 < 2; f64++) {
        double worst = 0, worst_res = 0;
        int ok = 1, null_res_same = 1;
        for (int di = 0; di < 4; di++) {
            const int64_t d = dims[di], rows = 12;
            era_continuous_params p = cparams(-2.0 * (double)d, 0.3, -6, 0.5);
            double *sd = xmalloc(sizeof(double) * (size_t)(rows * d)), *gd = xmalloc(sizeof(double) * (size_t)(rows * d));
            double *in = xmalloc(sizeof(double) * (size_t)d), *gin = xmalloc(sizeof(double) * (size_t)d);
            double *want = xmalloc(sizeof(double) * (size_t)d);
            continuous_inputs(sd, rows, d);
            for (int64_t i = 0; i < rows * d; i++) gd[i] = normal();
            void *s = talloc(f64, rows * d), *g = talloc(f64, rows * d), *out = talloc(f64, rows * d);
            void *out2 = talloc(f64, rows * d), *res = talloc(f64, rows);
            tfrom(s, f64, sd, rows * d);
            tfrom(g, f64, gd, rows * d);
            ok &= w_cbwd(f64, &p, rows, d, s, g, out, res) == ERA_OK;
            ok &= w_cbwd(f64, &p, rows, d, s, g, out2, NULL) == ERA_OK;
            null_res_same &= memcmp(out, out2, (size_t)(rows * d) * tsize(f64)) == 0;
            for (int64_t r = 0; r < rows; r++) {
                double wres, scale = 0;
                tto((const char *)s + (size_t)(r * d) * tsize(f64), f64, in, d);
                tto((const char *)g + (size_t)(r * d) * tsize(f64), f64, gin, d);
                ref_continuous_backward_row(in, gin, d, p.target_entropy, p.residual, p.log_std_min, p.log_std_max,
                                            want, &wres);
                for (int64_t i = 0; i < d; i++) scale = fmax(scale, fabs(want[i]));
                for (int64_t i = 0; i < d; i++)
                    worst = fmax(worst, fabs(tget(out, f64, r * d + i) - want[i]) / fmax(1e-3, scale));
                worst_res = fmax(worst_res, err1(tget(res, f64, r), wres));
            }
            free(sd); free(gd); free(in); free(gin); free(want); free(s); free(g); free(out); free(out2); free(res);
        }
        printf("# continuous backward %s: worst error %.2e (relative to the row's largest gradient), "
               "residual gradient %.2e\n", TN[f64], worst, worst_res);
        check(ok && worst <= TOL[f64] && worst_res <= TOL[f64],
              "continuous backward %s (grad std logits and out_grad_residual) against float64 reference", TN[f64]);
        check(ok && null_res_same, "continuous backward %s: out_grad_residual NULL gives the same gradient", TN[f64]);
    }

    /* Central finite differences of the library's own f64 forward, incl. a clipped row. */
    struct { int64_t d; double h0, delta, lmin, lmax; double s[6]; } cases[4] = {
        {4, -20.0 + 4 * 1.4189385332046727, 0.3, -8, 0, {3, 0, -1, 0.5}},    /* K = -20.3: entry 0 clipped */
        {6, -3.0, 0.5, -8, 0, {0.1, -0.4, 0.9, 0.0, 1.3, -2.0}},
        {5, -40.0, 0.25, -10, 1, {2.5, 2.4, -3, 0.2, 0.7}},                  /* entries 0, 1 clipped */
        {1, -0.5, 0.2, -8, 0, {0.7}},
    };
    double worst_fd = 0, worst_res = 0, worst_target = 0;
    int ok = 1, saw_clipped = 0;
    for (int k = 0; k < 4; k++) {
        const int64_t d = cases[k].d;
        era_continuous_params p = cparams(cases[k].h0, cases[k].delta, cases[k].lmin, cases[k].lmax);
        double s[6], g[6], grad[6], buf[6], res = NAN, ls[6];
        memcpy(s, cases[k].s, sizeof s);
        for (int i = 0; i < 6; i++) g[i] = 0.5 + 0.25 * i - (i % 2);
        ok &= era_continuous_backward_f64(&p, 1, d, s, g, grad, &res) == ERA_OK;
        ok &= era_continuous_forward_f64(&p, 1, d, s, ls) == ERA_OK;
        for (int64_t i = 0; i < d; i++) {
            saw_clipped |= ls[i] == p.log_std_min;
            ok &= fabs(ls[i] - p.log_std_min) > 1e-3 || ls[i] == p.log_std_min; /* away from the kink */
        }
        double scale = 1e-3;
        for (int64_t j = 0; j < d; j++) scale = fmax(scale, fabs(grad[j]));
        for (int64_t j = 0; j < d; j++) {
            const double h = 1e-6, keep = s[j];
            s[j] = keep + h;
            double up = continuous_loss(&p, d, s, g, buf);
            s[j] = keep - h;
            double down = continuous_loss(&p, d, s, g, buf);
            s[j] = keep;
            worst_fd = fmax(worst_fd, fabs((up - down) / (2 * h) - grad[j]) / scale);
        }
        const double h = 1e-6;
        era_continuous_params q = p;
        q.residual = p.residual + h;
        double up = continuous_loss(&q, d, s, g, buf);
        q.residual = p.residual - h;
        double down = continuous_loss(&q, d, s, g, buf);
        worst_res = fmax(worst_res, err1((up - down) / (2 * h), res));
        q = p;
        q.target_entropy = p.target_entropy + h;
        up = continuous_loss(&q, d, s, g, buf);
        q.target_entropy = p.target_entropy - h;
        down = continuous_loss(&q, d, s, g, buf);
        worst_target = fmax(worst_target, err1((up - down) / (2 * h), res));
    }
    printf("# continuous backward f64 vs central differences: grad %.2e, residual %.2e, target %.2e\n", worst_fd,
           worst_res, worst_target);
    check(ok && saw_clipped && worst_fd <= 1e-7,
          "continuous backward f64 against finite differences of the forward (rows clipped at log_std_min)");
    check(ok && worst_res <= 1e-7 && worst_target <= 1e-7,
          "continuous out_grad_residual against finite differences in residual and in target_entropy");
}

/* ======================================================================================
 * 5. discrete ERA
 * ==================================================================================== */

static void test_discrete_constants(void) {
    const int64_t ds[4] = {2, 10, 1000, 152064};
    const double taus[3] = {4, 3, 10};
    double worst_c = 0, worst_inf = 0, worst_tight_c = 0, worst_tight_inf = 0, worst_ref_inf = 0;
    int ok = 1, floors_ok = 1, tight_above = 1;
    for (int di = 0; di < 4; di++)
        for (int ti = 0; ti < 3; ti++)
            for (int mode = 0; mode < 3; mode++)
                for (int fi = 0; fi < 5; fi++) {
                    const double fr[5] = {0.0, 0.1, 0.5, 0.9, 1.0};
                    double lo, hi, h0;
                    discrete_range(mode, ds[di], taus[ti], &lo, &hi);
                    double f = mode == ERA_DISCRETE_TIGHT ? (fi == 0 ? 0.01 : fi == 4 ? 0.99 : fr[fi]) : fr[fi];
                    h0 = lo + f * (hi - lo);
                    era_discrete_params p = dparams(h0, taus[ti], mode);
                    double fl = -1, inf = -1, c = -1;
                    int st = era_discrete_floor(&p, ds[di], &fl) == ERA_OK && era_discrete_infimum(&p, ds[di], &inf) == ERA_OK &&
                             era_discrete_constant(&p, ds[di], &c) == ERA_OK;
                    ok &= st;
                    if (!st) { printf("# status failure: mode %d D %lld tau %g H0 %.17g\n", mode, (long long)ds[di], taus[ti], h0); continue; }
                    if (mode == ERA_DISCRETE_REFERENCE) floors_ok &= isnan(fl);
                    else floors_ok &= fl == h0;
                    if (mode == ERA_DISCRETE_TIGHT) {
                        double rc = ref_tight_constant(h0, ds[di], taus[ti]);
                        worst_tight_c = fmax(worst_tight_c, fabs(c - rc) / rc);
                        worst_tight_inf = fmax(worst_tight_inf, err1(inf, h0));
                        tight_above &= ref_onehot_entropy(c, ds[di], taus[ti], REF_EXACT) >= h0 - 1e-13;
                    } else {
                        double rc = exp(h0 - 1.0);
                        worst_c = fmax(worst_c, fabs(c - rc) / rc);
                        double ri = ref_onehot_entropy(rc, ds[di], taus[ti], mode);
                        if (mode == ERA_DISCRETE_EXACT) worst_inf = fmax(worst_inf, err1(inf, ri));
                        else worst_ref_inf = fmax(worst_ref_inf, err1(inf, ri));
                    }
                }
    printf("# discrete constants: C exp(H0-1) %.2e, TIGHT C vs bisection %.2e; infimum EXACT %.2e, TIGHT vs H0 %.2e, "
           "REFERENCE %.2e\n", worst_c, worst_tight_c, worst_inf, worst_tight_inf, worst_ref_inf);
    check(ok && floors_ok, "era_discrete_floor: H0 for EXACT and TIGHT, NaN for REFERENCE (D 2..152064, tau 3, 4, 10)");
    check(ok && worst_c <= 1e-14, "era_discrete_constant EXACT/REFERENCE = exp(H0 - 1)");
    check(ok && worst_tight_c <= 1e-10 && tight_above,
          "era_discrete_constant TIGHT against bisection; its one-hot entropy is >= H0");
    check(ok && worst_inf <= 1e-10 && worst_ref_inf <= 1e-10,
          "era_discrete_infimum EXACT and REFERENCE against the one-hot entropy reference");
    check(ok && worst_tight_inf <= 1e-10, "era_discrete_infimum TIGHT equals H0");

    /* The spec's numbers. */
    const int64_t td[3] = {10, 1000, 152064};
    const double tc[3] = {0.683819, 0.632910, 0.619661};
    for (int k = 0; k < 3; k++) {
        era_discrete_params p = dparams(1.0, 4.0, ERA_DISCRETE_TIGHT);
        double c = -1;
        int st = era_discrete_constant(&p, td[k], &c) == ERA_OK;
        check(st && fabs(c - tc[k]) <= 1e-6, "TIGHT C(tau 4, H0 1, D %lld) = %.7f, spec %.6f", (long long)td[k], c, tc[k]);
    }
    struct { int64_t d; double h0, spec, spec_tol, math, math_tol; } inf_cases[3] = {
        {1000, 1.0, 1.998, 5e-4, 1.998, 5e-4},
        {1000, 2.0, 4.41, 5e-3, 4.407, 5e-4},
        {152064, 1.0, 2.18, 5e-3, 2.182, 5e-4},
    };
    for (int k = 0; k < 3; k++) {
        era_discrete_params p = dparams(inf_cases[k].h0, 4.0, ERA_DISCRETE_EXACT);
        double inf = -1;
        int st = era_discrete_infimum(&p, inf_cases[k].d, &inf) == ERA_OK;
        check(st && fabs(inf - inf_cases[k].spec) <= inf_cases[k].spec_tol &&
                  fabs(inf - inf_cases[k].math) <= inf_cases[k].math_tol,
              "EXACT infimum (tau 4, D %lld, H0 %g) = %.5f, spec %g, docs %g", (long long)inf_cases[k].d,
              inf_cases[k].h0, inf, inf_cases[k].spec, inf_cases[k].math);
    }
}

/* Compares a batch of forward outputs with ref_discrete_row; returns the worst error. Also
 * counts order/tie violations and outputs above -log(tau). */
static double cap_excess_ulp = -INFINITY; /* largest (output - (-log tau)) in ulp of log tau, f64 */

static double discrete_compare(int f64, const era_discrete_params *p, int64_t rows, int64_t d, const void *z,
                               const void *out, int *order_ok, int *cap_ok, int *finite_ok) {
    /* TIGHT: the forward is compared given the library's C, itself compared with the reference
     * bisection in test_discrete_constants. (For a tiny target C is within ~1e-10 of up and
     * b = (C - up)/(D - 1) amplifies an ulp of C by 1e9: the two C's, both right to an ulp,
     * give visibly different outputs.) */
    double c = ref_discrete_constant(p->target_entropy, d, p->tau, p->mode), worst = 0;
    if (p->mode == ERA_DISCRETE_TIGHT && era_discrete_constant(p, d, &c) != ERA_OK) return INFINITY;
    double *in = xmalloc(sizeof(double) * (size_t)d), *pp = xmalloc(sizeof(double) * (size_t)d);
    double *y = xmalloc(sizeof(double) * (size_t)d), *t = xmalloc(sizeof(double) * (size_t)d);
    const double cap = -log(p->tau);
    for (int64_t r = 0; r < rows; r++) {
        tto((const char *)z + (size_t)(r * d) * tsize(f64), f64, in, d);
        ref_discrete_row(in, d, c, p->tau, p->mode, pp, y, t);
        for (int64_t i = 0; i < d; i++) {
            double got = tget(out, f64, r * d + i);
            *finite_ok &= isfinite(got);
            worst = fmax(worst, err1(got, t[i]));
            static int shown = 0;
            if (err1(got, t[i]) > TOL[f64] && shown++ < 3)
                printf("# forward mismatch: %s mode %d tau %.17g H0 %.17g D %lld row %lld [%lld]: z %.9g, y %.17g, got %.9g, "
                       "reference %.17g\n", TN[f64], p->mode, p->tau, p->target_entropy, (long long)d, (long long)r,
                       (long long)i, in[i], y[i], got, t[i]);
            /* era.h: "each <= -log(tau)"; f32 against the cap rounded to float */
            if (f64) {
                cap_excess_ulp = fmax(cap_excess_ulp, (got - cap) / (DBL_EPSILON * fabs(cap)));
                *cap_ok &= got <= cap;
            } else {
                *cap_ok &= (float)got <= (float)cap;
            }
        }
        for (int64_t i = 0; i + 1 < d; i++) {
            double a = in[i], b = in[i + 1], oa = tget(out, f64, r * d + i), ob = tget(out, f64, r * d + i + 1);
            int ok = a == b ? oa == ob : a < b ? oa <= ob : oa >= ob;
            static int shown = 0;
            if (!ok && shown++ < 3)
                printf("# order broken: %s mode %d tau %.17g H0 %.17g D %lld row %lld [%lld, %lld]: z %.9g, %.9g -> %.9g, %.9g\n",
                       TN[f64], p->mode, p->tau, p->target_entropy, (long long)d, (long long)r, (long long)i,
                       (long long)i + 1, a, b, oa, ob);
            *order_ok &= ok;
        }
    }
    free(in); free(pp); free(y); free(t);
    return worst;
}

static void discrete_inputs(double *z, int64_t rows, int64_t d) {
    for (int64_t r = 0; r < rows; r++) {
        double *x = z + r * d;
        double scale = pow(10.0, (double)(r % 5) - 1.0);
        for (int64_t i = 0; i < d; i++) x[i] = normal() * scale;
        if (r % 7 == 3) x[irand(d)] += 15.0;                            /* near one-hot */
        if (r % 7 == 5 && d > 2) { x[0] = x[d - 1] = 3.0; x[1] = 3.0; }  /* ties */
        if (r % 7 == 6) for (int64_t i = 0; i < d; i++) x[i] = (double)(i % 3);
    }
}

static void test_discrete_forward(void) {
    const int64_t ds[4] = {2, 3, 10, 257};
    const double taus[3] = {4, 3, 20};
    for (int mode = 0; mode < 3; mode++)
        for (int f64 = 0; f64 < 2; f64++) {
            double worst = 0;
            int ok = 1, order_ok = 1, cap_ok = 1, finite_ok = 1;
            for (int di = 0; di < 4; di++)
                for (int ti = 0; ti < 3; ti++)
                    for (int fi = 0; fi < 3; fi++) {
                        const int64_t d = ds[di], rows = 14;
                        double lo, hi;
                        discrete_range(mode, d, taus[ti], &lo, &hi);
                        era_discrete_params p = dparams(lo + (0.2 + 0.3 * fi) * (hi - lo), taus[ti], mode);
                        double *zd = xmalloc(sizeof(double) * (size_t)(rows * d));
                        discrete_inputs(zd, rows, d);
                        void *z = talloc(f64, rows * d), *out = talloc(f64, rows * d);
                        tfrom(z, f64, zd, rows * d);
                        ok &= w_dfwd(f64, &p, rows, d, z, out) == ERA_OK;
                        worst = fmax(worst, discrete_compare(f64, &p, rows, d, z, out, &order_ok, &cap_ok, &finite_ok));
                        free(zd); free(z); free(out);
                    }
            printf("# discrete forward %s %s: worst error %.2e\n", MODE_NAME[mode], TN[f64], worst);
            if (f64) printf("# discrete forward %s f64: largest (output - (-log tau)): %.1f ulp of log tau\n",
                            MODE_NAME[mode], cap_excess_ulp);
            cap_excess_ulp = -INFINITY;
            check(ok && finite_ok && worst <= TOL[f64],
                  "discrete forward %s %s against float64 reference (D 2..257, tau 3, 4, 20)", MODE_NAME[mode], TN[f64]);
            check(ok && order_ok, "discrete forward %s %s: class order kept, ties stay ties", MODE_NAME[mode], TN[f64]);
            check(ok && cap_ok, "discrete forward %s %s: every output logit <= -log(tau)%s", MODE_NAME[mode], TN[f64],
                  f64 ? "" : " (rounded to float)");
        }

    /* The spec's example: D = 10, H0 = 1, z = 0..9, EXACT. */
    for (int f64 = 0; f64 < 2; f64++) {
        era_discrete_params p = dparams(1.0, 4.0, ERA_DISCRETE_EXACT);
        void *z = talloc(f64, 10), *out = talloc(f64, 10);
        double o[10];
        for (int i = 0; i < 10; i++) tput(z, f64, i, i);
        era_bound_report rep;
        int ok = w_dfwd(f64, &p, 1, 10, z, out) == ERA_OK && w_dcheck(f64, &p, 1, 10, out, 0.0, &rep) == ERA_OK;
        tto(out, f64, o, 10);
        double h = ref_softmax_entropy(o, 10);
        check(ok && h >= 1.0 && rep.violations == 0 && rep.min_entropy >= 1.0,
              "spec example %s: D 10, H0 1, z = 0..9 gives entropy %.6f >= 1 (check: %.6f)", TN[f64], h, rep.min_entropy);
        free(z); free(out);
    }

    /* Clamping: at the lowest EXACT target C = up and b = 0, so y = a*p underflows for
     * p = e^-800. Needs a tau for which exp((1 + log(up)) - 1) rounds to up itself. */
    double clamp_tau = 0, c_at = 0;
    for (int k = 0; k < 64 && clamp_tau == 0; k++) {
        const double tau = 3.0 + 0.25 * k;
        double lo, hi;
        discrete_range(ERA_DISCRETE_EXACT, 2, tau, &lo, &hi);
        era_discrete_params p = dparams(lo, tau, ERA_DISCRETE_EXACT);
        if (era_discrete_constant(&p, 2, &c_at) == ERA_OK && c_at == log(tau) / tau) clamp_tau = tau;
    }
    check(clamp_tau > 0, "EXACT at the lowest target 1 + log(up) gives C = up exactly for some tau (tau %g), "
          "so b = 0", clamp_tau);
    for (int f64 = 0; f64 < 2 && clamp_tau > 0; f64++) {
        double lo, hi;
        discrete_range(ERA_DISCRETE_EXACT, 2, clamp_tau, &lo, &hi);
        era_discrete_params p = dparams(lo, clamp_tau, ERA_DISCRETE_EXACT);
        void *z = talloc(f64, 2), *out = talloc(f64, 2), *g = talloc(f64, 2), *gr = talloc(f64, 2);
        tput(z, f64, 0, 800.0); tput(z, f64, 1, 0.0);
        tput(g, f64, 0, 1.0); tput(g, f64, 1, 1.0);
        int ok = w_dfwd(f64, &p, 1, 2, z, out) == ERA_OK && w_dbwd(f64, &p, 1, 2, z, g, gr) == ERA_OK;
        double tmin = ref_log_hinv(DBL_MIN), o1 = tget(out, f64, 1);
        check(ok && isfinite(o1) && err1(o1, tmin) <= TOL[f64] && tget(gr, f64, 1) == 0.0 && tget(gr, f64, 0) == 0.0,
              "discrete %s: an underflowed y is clamped to the smallest normal (output %.6f, reference %.6f), "
              "gradient 0", TN[f64], o1, tmin);
        free(z); free(out); free(g); free(gr);
    }

    /* tau just above e: the top class gets y = up, which rounds to (or near) 1/e, where the
     * inverse of h is undefined or too ill-conditioned for double. libera refuses
     * log(tau) < 1 + 1e-6 and writes nothing. */
    const double near_e[4] = {2.7182818284591002, 2.718281828459045 + 1e-9, 2.7182818284590455, 2.7182818384590455};
    for (int k = 0; k < 4; k++)
        for (int mode = 0; mode < 3; mode++) {
            era_discrete_params p = dparams(1.0, near_e[k], mode);
            double z[8] = {1000, 0, 0, 0, 40, 0, 1, 2}, g[8] = {1, 2, 3, 4, -1, 0.5, 1, 2}, o[8], gr[8], c;
            float zf[8], of[8];
            for (int i = 0; i < 8; i++) zf[i] = (float)z[i];
            memset(o, 0x5A, sizeof o); memset(of, 0x5A, sizeof of); memset(gr, 0x5A, sizeof gr);
            int refused = era_discrete_forward_f64(&p, 2, 4, z, o) == ERA_ERR_BAD_PARAMETER &&
                          era_discrete_forward_f32(&p, 2, 4, zf, of) == ERA_ERR_BAD_PARAMETER &&
                          era_discrete_backward_f64(&p, 2, 4, z, g, gr) == ERA_ERR_BAD_PARAMETER &&
                          era_discrete_constant(&p, 4, &c) == ERA_ERR_BAD_PARAMETER;
            int untouched = 1;
            for (size_t i = 0; i < sizeof o; i++) untouched &= ((unsigned char *)o)[i] == 0x5A && ((unsigned char *)gr)[i] == 0x5A;
            for (size_t i = 0; i < sizeof of; i++) untouched &= ((unsigned char *)of)[i] == 0x5A;
            check(refused && untouched, "discrete %s, tau = %.17g (log(tau) - 1 < 1e-6): BAD_PARAMETER, nothing written",
                  MODE_NAME[mode], near_e[k]);
        }

    /* Just past the margin: accepted, finite outputs and gradients, the top logit at most -log(tau). */
    const double tau_margin = exp(1.0 + 1e-6) * (1 + 1e-12);
    for (int mode = 0; mode < 3; mode++) {
        double lo, hi;
        discrete_range(mode, 4, tau_margin, &lo, &hi);
        era_discrete_params p = dparams(lo + 0.5 * (hi - lo), tau_margin, mode);
        double z[8] = {1000, 0, 0, 0, 40, 0, 1, 2}, g[8] = {1, 2, 3, 4, -1, 0.5, 1, 2}, o[8], gr[8];
        float zf[8], of[8];
        for (int i = 0; i < 8; i++) zf[i] = (float)z[i];
        int st = era_discrete_forward_f64(&p, 2, 4, z, o) == ERA_OK && era_discrete_forward_f32(&p, 2, 4, zf, of) == ERA_OK &&
                 era_discrete_backward_f64(&p, 2, 4, z, g, gr) == ERA_OK;
        int fin = 1;
        for (int i = 0; i < 8; i++) fin &= isfinite(o[i]) && isfinite(of[i]) && isfinite(gr[i]);
        int capped = mode == ERA_DISCRETE_REFERENCE || (o[0] <= -log(tau_margin) && of[0] <= (float)-log(tau_margin));
        check(st && fin && capped, "discrete %s, tau = exp(1 + 1e-6)(1 + 1e-12), one-hot rows: accepted, outputs and "
              "gradients finite (top output f64 %.9g, f32 %.9g, grad %.3g)", MODE_NAME[mode], o[0], (double)of[0], gr[0]);
    }
}

static double discrete_loss(const era_discrete_params *p, int64_t d, const double *z, const double *g, double *buf) {
    if (era_discrete_forward_f64(p, 1, d, z, buf) != ERA_OK) return NAN;
    double l = 0;
    for (int64_t i = 0; i < d; i++) l += g[i] * buf[i];
    return l;
}

static void test_discrete_backward(void) {
    const int64_t ds[3] = {2, 10, 257};
    for (int mode = 0; mode < 3; mode++)
        for (int f64 = 0; f64 < 2; f64++) {
            double worst = 0;
            int ok = 1;
            for (int di = 0; di < 3; di++)
                for (int ti = 0; ti < 2; ti++) {
                    const int64_t d = ds[di], rows = 14;
                    const double tau = ti ? 3.0 : 4.0;
                    double lo, hi;
                    discrete_range(mode, d, tau, &lo, &hi);
                    era_discrete_params p = dparams(lo + 0.4 * (hi - lo), tau, mode);
                    double c = ref_discrete_constant(p.target_entropy, d, tau, mode);
                    double *zd = xmalloc(sizeof(double) * (size_t)(rows * d)), *gd = xmalloc(sizeof(double) * (size_t)(rows * d));
                    double *in = xmalloc(sizeof(double) * (size_t)d), *gin = xmalloc(sizeof(double) * (size_t)d);
                    double *pp = xmalloc(sizeof(double) * (size_t)d), *y = xmalloc(sizeof(double) * (size_t)d);
                    double *t = xmalloc(sizeof(double) * (size_t)d), *want = xmalloc(sizeof(double) * (size_t)d);
                    discrete_inputs(zd, rows, d);
                    for (int64_t i = 0; i < rows * d; i++) gd[i] = normal();
                    void *z = talloc(f64, rows * d), *g = talloc(f64, rows * d), *out = talloc(f64, rows * d);
                    tfrom(z, f64, zd, rows * d);
                    tfrom(g, f64, gd, rows * d);
                    ok &= w_dbwd(f64, &p, rows, d, z, g, out) == ERA_OK;
                    for (int64_t r = 0; r < rows; r++) {
                        tto((const char *)z + (size_t)(r * d) * tsize(f64), f64, in, d);
                        tto((const char *)g + (size_t)(r * d) * tsize(f64), f64, gin, d);
                        ref_discrete_backward_row(in, gin, d, c, tau, mode, pp, y, t, want);
                        double scale = 1e-12;
                        for (int64_t i = 0; i < d; i++) scale = fmax(scale, fabs(want[i]));
                        for (int64_t i = 0; i < d; i++)
                            worst = fmax(worst, fabs(tget(out, f64, r * d + i) - want[i]) / scale);
                    }
                    free(zd); free(gd); free(in); free(gin); free(pp); free(y); free(t); free(want);
                    free(z); free(g); free(out);
                }
            printf("# discrete backward %s %s: worst error %.2e (relative to the row's largest gradient)\n",
                   MODE_NAME[mode], TN[f64], worst);
            check(ok && worst <= TOL[f64], "discrete backward %s %s against float64 reference", MODE_NAME[mode], TN[f64]);
        }

    /* Central finite differences of the library's f64 forward. */
    for (int mode = 0; mode < 3; mode++) {
        double worst = 0;
        int ok = 1;
        for (int k = 0; k < 12; k++) {
            const int64_t d = k % 3 == 0 ? 2 : k % 3 == 1 ? 5 : 12;
            const double tau = k % 2 ? 3.0 : 4.0;
            double lo, hi, z[12], g[12], grad[12], buf[12];
            discrete_range(mode, d, tau, &lo, &hi);
            era_discrete_params p = dparams(lo + (0.15 + 0.06 * k) * (hi - lo), tau, mode);
            for (int64_t i = 0; i < d; i++) { z[i] = normal() * (k < 6 ? 1.0 : 3.0); g[i] = normal(); }
            if (k % 4 == 3) z[0] += 6.0; /* near one-hot */
            ok &= era_discrete_backward_f64(&p, 1, d, z, g, grad) == ERA_OK;
            double scale = 1e-9;
            for (int64_t j = 0; j < d; j++) scale = fmax(scale, fabs(grad[j]));
            for (int64_t j = 0; j < d; j++) {
                const double h = 1e-6, keep = z[j];
                z[j] = keep + h;
                double up = discrete_loss(&p, d, z, g, buf);
                z[j] = keep - h;
                double down = discrete_loss(&p, d, z, g, buf);
                z[j] = keep;
                worst = fmax(worst, fabs((up - down) / (2 * h) - grad[j]) / scale);
            }
        }
        printf("# discrete backward %s f64 vs central differences: worst %.2e\n", MODE_NAME[mode], worst);
        check(ok && worst <= 1e-6, "discrete backward %s f64 against finite differences of the forward", MODE_NAME[mode]);
    }
}

/* ======================================================================================
 * 6. bound checks
 * ==================================================================================== */

static int report_matches(const era_bound_report *rep, int64_t rows, const double *h, double target, double tol,
                          double floor_value) {
    int64_t viol = 0, worst_row = -1;
    double mn = INFINITY, sum = 0, deficit = 0;
    for (int64_t r = 0; r < rows; r++) {
        sum += h[r];
        if (h[r] < mn) { mn = h[r]; worst_row = r; }
        if (h[r] < target - tol) viol++;
        deficit = fmax(deficit, target - h[r]);
    }
    int same_floor = isnan(floor_value) ? isnan(rep->floor) : rep->floor == floor_value;
    return rep->rows == rows && rep->violations == viol && err1(rep->min_entropy, mn) <= 1e-12 &&
           err1(rep->mean_entropy, sum / (double)rows) <= 1e-12 && fabs(rep->max_deficit - deficit) <= 1e-12 &&
           same_floor && rep->target == target && rep->worst_row == worst_row;
}

static void test_checks(void) {
    enum { R = 25, D = 8 };
    for (int f64 = 0; f64 < 2; f64++)
        for (int mode = 0; mode < 3; mode++) {
            double lo, hi;
            discrete_range(mode, D, 4.0, &lo, &hi);
            double h0 = lo + 0.6 * (hi - lo);
            era_discrete_params p = dparams(h0, 4.0, mode);
            void *z = talloc(f64, R * D);
            double h[R], row[D];
            for (int r = 0; r < R; r++)
                for (int i = 0; i < D; i++) tput(z, f64, r * D + i, normal() * (0.2 + 0.15 * r));
            for (int r = 0; r < R; r++) {
                tto((const char *)z + (size_t)(r * D) * tsize(f64), f64, row, D);
                h[r] = ref_softmax_entropy(row, D);
            }
            era_bound_report rep;
            memset(&rep, 0, sizeof rep);
            int ok = w_dcheck(f64, &p, R, D, z, 0.05, &rep) == ERA_OK;
            double fl = mode == ERA_DISCRETE_REFERENCE ? NAN : h0;
            check(ok && rep.violations > 0 && rep.violations < R && report_matches(&rep, R, h, h0, 0.05, fl),
                  "era_check_discrete_%s %s: rows %lld, violations %lld, min/mean, max_deficit %.3f, floor, target, "
                  "worst_row %lld", TN[f64], MODE_NAME[mode], (long long)rep.rows, (long long)rep.violations,
                  rep.max_deficit, (long long)rep.worst_row);
            free(z);
        }
    /* A row exactly at the target with tol 0 is not a violation: two tied classes give log 2. */
    for (int f64 = 0; f64 < 2; f64++) {
        era_discrete_params p = dparams(log(2.0), 4.0, ERA_DISCRETE_EXACT);
        void *z = talloc(f64, 4);
        tput(z, f64, 0, 1.0); tput(z, f64, 1, -1e30); tput(z, f64, 2, 1.0); tput(z, f64, 3, -1e30);
        era_bound_report rep;
        int ok = w_dcheck(f64, &p, 1, 4, z, 0.0, &rep) == ERA_OK;
        check(ok && rep.min_entropy == log(2.0) && rep.violations == 0 && rep.max_deficit == 0.0 && rep.worst_row == 0,
              "era_check_discrete_%s: entropy exactly at the target with tol 0 is no violation, deficit 0", TN[f64]);
        free(z);
    }
    /* rows == 0. */
    for (int f64 = 0; f64 < 2; f64++) {
        era_discrete_params p = dparams(1.0, 4.0, ERA_DISCRETE_TIGHT);
        era_continuous_params cp = cparams(-1.5, 0.25, -8, 0);
        era_bound_report rep, crep, mrep;
        memset(&rep, 0x5A, sizeof rep);
        memset(&crep, 0x5A, sizeof crep);
        memset(&mrep, 0x5A, sizeof mrep);
        int ok = w_dcheck(f64, &p, 0, 6, NULL, 1e-3, &rep) == ERA_OK;
        check(ok && rep.rows == 0 && rep.violations == 0 && rep.min_entropy == INFINITY && isnan(rep.mean_entropy) &&
                  rep.max_deficit == 0.0 && rep.floor == 1.0 && rep.target == 1.0 && rep.worst_row == -1,
              "era_check_discrete_%s with rows 0 (NULL logits): min +inf, mean NaN, worst_row -1, deficit 0", TN[f64]);
        void *mean = talloc(f64, 1); /* any non-NULL mean selects the squashed check */
        ok = w_ccheck(f64, &cp, 0, 3, NULL, NULL, 1e-3, &crep) == ERA_OK &&
             w_ccheck(f64, &cp, 0, 3, mean, NULL, 1e-3, &mrep) == ERA_OK;
        check(ok && crep.rows == 0 && crep.violations == 0 && crep.min_entropy == INFINITY &&
                  isnan(crep.mean_entropy) && crep.max_deficit == 0.0 && crep.floor == -1.25 && crep.target == -1.25 &&
                  crep.worst_row == -1 && mrep.rows == 0 && mrep.violations == 0 && mrep.min_entropy == INFINITY &&
                  isnan(mrep.mean_entropy) && mrep.max_deficit == 0.0 && isnan(mrep.floor) && mrep.target == -1.5 &&
                  mrep.worst_row == -1,
              "era_check_continuous_%s with rows 0 (NULL log_std; mean NULL and given): min +inf, mean NaN, "
              "worst_row -1, floor/target H0 + delta or NaN/H0", TN[f64]);
        free(mean);
    }
    /* Continuous: Gaussian (mean NULL) and tanh-squashed (mean given). */
    enum { CR = 20, CD = 3 };
    for (int f64 = 0; f64 < 2; f64++) {
        era_continuous_params p = cparams(-1.5, 0.5, -8, 0);
        void *ls = talloc(f64, CR * CD), *m = talloc(f64, CR * CD);
        double hg[CR], ht[CR], lrow[CD], mrow[CD];
        for (int i = 0; i < CR * CD; i++) {
            tput(ls, f64, i, -0.3 - 1.2 * uniform() - 0.02 * i);
            tput(m, f64, i, normal() * 1.5);
        }
        for (int r = 0; r < CR; r++) {
            tto((const char *)ls + (size_t)(r * CD) * tsize(f64), f64, lrow, CD);
            tto((const char *)m + (size_t)(r * CD) * tsize(f64), f64, mrow, CD);
            hg[r] = ref_gaussian_entropy(lrow, CD);
            ht[r] = ref_tanh_gaussian_entropy(mrow, lrow, CD);
        }
        era_bound_report rg, rt;
        int ok = w_ccheck(f64, &p, CR, CD, NULL, ls, 0.1, &rg) == ERA_OK;
        check(ok && rg.violations > 0 && rg.violations < CR && report_matches(&rg, CR, hg, -1.0, 0.1, -1.0),
              "era_check_continuous_%s, mean NULL: Gaussian entropies against floor = target = H0 + delta "
              "(violations %lld)", TN[f64], (long long)rg.violations);
        ok = w_ccheck(f64, &p, CR, CD, m, ls, 0.1, &rt) == ERA_OK;
        /* The reference tanh entropy is a quadrature: compare loosely, then the counts exactly. */
        int64_t viol = 0, wr = 0;
        double mn = INFINITY, sum = 0, def = 0;
        for (int r = 0; r < CR; r++) {
            sum += ht[r];
            if (ht[r] < mn) { mn = ht[r]; wr = r; }
            viol += ht[r] < -1.5 - 0.1;
            def = fmax(def, -1.5 - ht[r]);
        }
        check(ok && rt.rows == CR && rt.violations == viol && viol > 0 && viol < CR && err1(rt.min_entropy, mn) <= 1e-8 &&
                  err1(rt.mean_entropy, sum / CR) <= 1e-8 && fabs(rt.max_deficit - def) <= 1e-8 && isnan(rt.floor) &&
                  rt.target == -1.5 && rt.worst_row == wr,
              "era_check_continuous_%s, mean given: tanh-squashed entropies against target H0, floor NaN "
              "(violations %lld)", TN[f64], (long long)rt.violations);
        free(ls); free(m);
    }
}

/* ======================================================================================
 * 7. in place
 * ==================================================================================== */

static void test_in_place(void) {
    enum { R = 9, D = 7 };
    for (int f64 = 0; f64 < 2; f64++) {
        const size_t bytes = (size_t)(R * D) * tsize(f64);
        void *s = talloc(f64, R * D), *g = talloc(f64, R * D), *ref = talloc(f64, R * D), *buf = talloc(f64, R * D);
        void *res1 = talloc(f64, R), *res2 = talloc(f64, R);
        double sd[R * D];
        continuous_inputs(sd, R, D);
        tfrom(s, f64, sd, R * D);
        for (int i = 0; i < R * D; i++) tput(g, f64, i, normal());
        era_continuous_params cp = cparams(-9.0, 0.2, -4, 0.5);
        int ok = w_cfwd(f64, &cp, R, D, s, ref) == ERA_OK;
        memcpy(buf, s, bytes);
        ok &= w_cfwd(f64, &cp, R, D, buf, buf) == ERA_OK;
        check(ok && memcmp(buf, ref, bytes) == 0, "continuous forward %s in place equals out of place", TN[f64]);
        ok = w_cbwd(f64, &cp, R, D, s, g, ref, res1) == ERA_OK;
        memcpy(buf, s, bytes);
        ok &= w_cbwd(f64, &cp, R, D, buf, g, buf, res2) == ERA_OK;
        check(ok && memcmp(buf, ref, bytes) == 0 && memcmp(res1, res2, (size_t)R * tsize(f64)) == 0,
              "continuous backward %s with out == std_logits equals out of place", TN[f64]);
        memcpy(buf, g, bytes);
        ok = w_cbwd(f64, &cp, R, D, s, buf, buf, res2) == ERA_OK;
        check(ok && memcmp(buf, ref, bytes) == 0 && memcmp(res1, res2, (size_t)R * tsize(f64)) == 0,
              "continuous backward %s with out == grad_log_std equals out of place", TN[f64]);
        for (int mode = 0; mode < 3; mode++) {
            double lo, hi;
            discrete_range(mode, D, 4.0, &lo, &hi);
            era_discrete_params dp = dparams(lo + 0.5 * (hi - lo), 4.0, mode);
            ok = w_dfwd(f64, &dp, R, D, s, ref) == ERA_OK;
            memcpy(buf, s, bytes);
            ok &= w_dfwd(f64, &dp, R, D, buf, buf) == ERA_OK;
            check(ok && memcmp(buf, ref, bytes) == 0, "discrete forward %s %s in place equals out of place", MODE_NAME[mode],
                  TN[f64]);
            ok = w_dbwd(f64, &dp, R, D, s, g, ref) == ERA_OK;
            memcpy(buf, s, bytes);
            ok &= w_dbwd(f64, &dp, R, D, buf, g, buf) == ERA_OK;
            int a = ok && memcmp(buf, ref, bytes) == 0;
            memcpy(buf, g, bytes);
            ok = w_dbwd(f64, &dp, R, D, s, buf, buf) == ERA_OK;
            check(a && ok && memcmp(buf, ref, bytes) == 0,
                  "discrete backward %s %s with out == logits and out == grad_out equals out of place", MODE_NAME[mode],
                  TN[f64]);
        }
        free(s); free(g); free(ref); free(buf); free(res1); free(res2);
    }
}

/* ======================================================================================
 * 8. adversarial searches
 * ==================================================================================== */

/* One adversarial row of d logits, kind 0..13. */
static void adversarial_row(double *x, int64_t d, int kind) {
    static const double big[10] = {1, 5, 20, 40, 100, 700, 745, 800, 1e3, 1e4};
    const int64_t top = irand(d);
    const double l = big[irand(10)];
    switch (kind) {
    case 0: for (int64_t i = 0; i < d; i++) x[i] = 0; x[top] = l; break;                        /* one-hot */
    case 1: for (int64_t i = 0; i < d; i++) x[i] = normal() * 0.5; x[top] += l; break;          /* near one-hot */
    case 2: for (int64_t i = 0; i < d; i++) x[i] = uniform() < 0.5 ? -1e30 : 1e30; break;       /* huge, ties */
    case 3: for (int64_t i = 0; i < d; i++) x[i] = -1e30; x[top] = 1e30; break;
    case 4: { double v = normal() * 100; for (int64_t i = 0; i < d; i++) x[i] = v; } break;     /* all tied */
    case 5: for (int64_t i = 0; i < d; i++) x[i] = normal(); x[top] = l; x[(top + 1) % d] = l; break;
    case 6: { double s = pow(10.0, uniform() * 12 - 6); for (int64_t i = 0; i < d; i++) x[i] = normal() * s; } break;
    case 7: { double s = pow(10.0, uniform() * 8 - 4); for (int64_t i = 0; i < d; i++) x[i] = (2 * uniform() - 1) * s; } break;
    case 8: { int64_t k = 1 + irand(d - 1); for (int64_t i = 0; i < d; i++) x[i] = i < k ? 1e4 : 0; } break;
    case 9: { double s = pow(10.0, uniform() * 4 - 2); for (int64_t i = 0; i < d; i++) x[i] = -(double)i * s; } break;
    case 10: for (int64_t i = 0; i < d; i++) x[i] = 0; x[top] = l; x[(top + 1) % d] = l - 1e-3 * uniform(); break;
    case 11: for (int64_t i = 0; i < d; i++) x[i] = uniform() < 0.5 ? -1e4 : 1e4; break;
    case 12: for (int64_t i = 0; i < d; i++) x[i] = normal() * 1e-12; break;
    default: for (int64_t i = 0; i < d; i++) x[i] = normal() * 3; x[top] = 1e30; break;
    }
}

typedef struct {
    int64_t rows, violations, check_violations, check_mismatch, nonfinite, order_bad, cap_bad;
    double worst_deficit; /* max over rows of H0 - H (negative: every row above H0) */
    double worst_forward; /* worst error of sampled rows against the reference forward */
} adv_stats;

/* Runs one batch through forward and both entropy measurements. */
static void adversarial_discrete_batch(int f64, const era_discrete_params *p, int64_t rows, int64_t d, const double *zd,
                                       int compare_rows, adv_stats *st) {
    void *z = talloc(f64, rows * d), *out = talloc(f64, rows * d);
    double *row = xmalloc(sizeof(double) * (size_t)d);
    tfrom(z, f64, zd, rows * d);
    era_status s = w_dfwd(f64, p, rows, d, z, out);
    if (s != ERA_OK) {
        printf("# forward failed (%s): mode %d D %lld tau %.17g H0 %.17g\n", era_status_string(s), p->mode,
               (long long)d, p->tau, p->target_entropy);
        st->nonfinite += rows;
        free(z); free(out); free(row);
        return;
    }
    const double tol = TOL[f64], h0 = p->target_entropy;
    double mn = INFINITY;
    int finite = 1;
    for (int64_t r = 0; r < rows; r++) {
        tto((const char *)out + (size_t)(r * d) * tsize(f64), f64, row, d);
        for (int64_t i = 0; i < d; i++) finite &= isfinite(row[i]);
        double h = ref_softmax_entropy(row, d);
        mn = fmin(mn, h);
        st->rows++;
        if (!(h >= h0 - tol)) {
            st->violations++;
            if (st->violations <= 5)
                printf("# violation: %s mode %d D %lld tau %g H0 %.17g row %lld entropy %.17g deficit %.3e\n", TN[f64],
                       p->mode, (long long)d, p->tau, h0, (long long)r, h, h0 - h);
        }
        st->worst_deficit = fmax(st->worst_deficit, h0 - h);
    }
    if (!finite) st->nonfinite++;
    era_bound_report rep;
    if (finite) {
        if (w_dcheck(f64, p, rows, d, out, tol, &rep) != ERA_OK) st->check_mismatch++;
        else {
            st->check_violations += rep.violations;
            /* the library sums a row plainly: about D * 1e-16 from the compensated reference */
            if (err1(rep.min_entropy, mn) > fmax(1e-12, 2e-16 * (double)d)) st->check_mismatch++;
        }
    }
    if (compare_rows > 0) {
        int order_ok = 1, cap_ok = 1, fin = 1;
        st->worst_forward = fmax(st->worst_forward, discrete_compare(f64, p, compare_rows, d, z, out, &order_ok, &cap_ok, &fin));
        st->order_bad += !order_ok;
        st->cap_bad += !cap_ok;
        st->nonfinite += !fin;
    }
    free(z); free(out); free(row);
}

static void test_adversarial_discrete(void) {
    const int64_t ds[5] = {2, 3, 10, 1000, 152064};
    const double taus[5] = {4, 2.72, 3, 10, 1000};
    const double fr_exact[11] = {0, 1e-9, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98, 1 - 1e-9, 1};
    const double fr_tight[11] = {1e-9, 1e-4, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98, 0.9999, 1 - 1e-9};
    double t0 = now();
    for (int mi = 0; mi < 2; mi++) {
        const int mode = mi ? ERA_DISCRETE_TIGHT : ERA_DISCRETE_EXACT;
        for (int f64 = 0; f64 < 2; f64++) {
            adv_stats st;
            memset(&st, 0, sizeof st);
            st.worst_deficit = -INFINITY;
            for (int di = 0; di < 5; di++) {
                const int64_t d = ds[di];
                const int ntau = d <= 10 ? 5 : d == 1000 ? 2 : 1;
                const int64_t rows = d <= 10 ? 196 : d == 1000 ? 28 : 3;
                for (int ti = 0; ti < ntau; ti++)
                    for (int fi = 0; fi < 11; fi++) {
                        if (d == 152064 && fi % 5 != 0) continue; /* fractions 0, 0.5, 1 (ends) */
                        double lo, hi;
                        discrete_range(mode, d, taus[ti], &lo, &hi);
                        const double fr = mode == ERA_DISCRETE_TIGHT ? fr_tight[fi] : fr_exact[fi];
                        double h0 = fr == 0 ? lo : fr == 1 ? hi : lo + fr * (hi - lo);
                        era_discrete_params p = dparams(h0, taus[ti], mode);
                        double *zd = xmalloc(sizeof(double) * (size_t)(rows * d));
                        /* D = 152064: one-hot, one +1e30 among -1e30, near one-hot, random scale */
                        static const int big_kinds[4] = {0, 3, 1, 6};
                        for (int64_t r = 0; r < rows; r++)
                            adversarial_row(zd + r * d, d, d == 152064 ? big_kinds[(r + fi) % 4] : (int)(r % 14));
                        int compare = d <= 10 ? (int)rows : (d == 1000 ? 2 : (fi == 0 && ti == 0 ? 1 : 0));
                        adversarial_discrete_batch(f64, &p, rows, d, zd, compare, &st);
                        free(zd);
                    }
            }
            printf("# adversarial discrete %s %s: rows %lld, violations beyond %.0e: %lld (check: %lld), worst deficit "
                   "%.3e (negative: margin), forward vs reference %.2e\n", MODE_NAME[mode], TN[f64], (long long)st.rows,
                   TOL[f64], (long long)st.violations, (long long)st.check_violations, st.worst_deficit, st.worst_forward);
            if (f64) printf("# adversarial discrete %s f64: largest (output - (-log tau)) %.1f ulp\n", MODE_NAME[mode],
                            cap_excess_ulp);
            cap_excess_ulp = -INFINITY;
            check(st.violations == 0 && st.check_violations == 0 && st.nonfinite == 0,
                  "adversarial discrete %s %s: %lld rows (D 2, 3, 10, 1000, 152064; one-hot, +-1e30, ties, scales "
                  "1e-12..1e4; targets over the feasible range), no row below H0 - %.0e", MODE_NAME[mode], TN[f64],
                  (long long)st.rows, TOL[f64]);
            check(st.order_bad == 0 && st.cap_bad == 0,
                  "adversarial discrete %s %s: sampled rows keep class order and ties, outputs <= -log(tau)%s (%lld batches "
                  "off)", MODE_NAME[mode], TN[f64], f64 ? "" : " (rounded to float)", (long long)(st.order_bad + st.cap_bad));
            check(st.check_mismatch == 0 && st.worst_forward <= TOL[f64],
                  "adversarial discrete %s %s: check reports agree with the reference entropies, sampled rows agree "
                  "with the reference forward (%.1e)", MODE_NAME[mode], TN[f64], st.worst_forward);
        }
    }
    printf("# adversarial discrete took %.2f s\n", now() - t0);
}

static void test_adversarial_continuous(void) {
    const struct { double lmin, lmax; } bounds[4] = {{-8, 0}, {-20, 2}, {-5, -1}, {-3, 0.1}};
    double t0 = now();
    for (int f64 = 0; f64 < 2; f64++) {
        int64_t nrows = 0, viol = 0, check_viol = 0, out_of_bounds = 0, bad_status = 0;
        double worst = -INFINITY;
        for (int64_t d = 1; d <= 61; d++)
            for (int bi = 0; bi < 4; bi++)
                for (int ki = 0; ki < 9; ki++) {
                    const double span = (double)d * (bounds[bi].lmax - bounds[bi].lmin);
                    const double ks[9] = {0, -1e-9, -0.01, -0.5 * (double)d, -0.5 * span, -0.99 * span, -span,
                                          -2 * span, -1e4};
                    const double delta = (ki % 2) * 0.37;
                    era_continuous_params p = cparams(ks[ki] + (double)d * (ref_gauss_c() + bounds[bi].lmax) - delta,
                                                      delta, bounds[bi].lmin, bounds[bi].lmax);
                    if (ki == 0) feasible_top(&p, d);
                    const double h0 = p.target_entropy;
                    enum { R = 7 };
                    double *sd = xmalloc(sizeof(double) * (size_t)(R * d)), *row = xmalloc(sizeof(double) * (size_t)d);
                    for (int r = 0; r < R; r++) {
                        double *x = sd + r * d;
                        double s = pow(10.0, uniform() * 10 - 5);
                        for (int64_t i = 0; i < d; i++) x[i] = normal() * s;
                        if (r == 1) for (int64_t i = 0; i < d; i++) x[i] = uniform() < 0.5 ? -1e30 : 1e30;
                        if (r == 2) { for (int64_t i = 0; i < d; i++) x[i] = 0; x[irand(d)] = 1e4; }
                        if (r == 3) for (int64_t i = 0; i < d; i++) x[i] = 2.0;
                        if (r == 4) x[irand(d)] += 50;
                        if (r == 5) for (int64_t i = 0; i < d; i++) x[i] = normal() * 1e-9;
                        if (r == 6) for (int64_t i = 0; i < d; i++) x[i] = (double)i * 0.7;
                    }
                    void *s = talloc(f64, R * d), *out = talloc(f64, R * d);
                    tfrom(s, f64, sd, R * d);
                    if (w_cfwd(f64, &p, R, d, s, out) != ERA_OK) { bad_status++; free(sd); free(row); free(s); free(out); continue; }
                    const double h0p = h0 + delta;
                    for (int r = 0; r < R; r++) {
                        tto((const char *)out + (size_t)(r * d) * tsize(f64), f64, row, d);
                        for (int64_t i = 0; i < d; i++)
                            out_of_bounds += !(row[i] >= p.log_std_min &&
                                               (f64 ? row[i] <= p.log_std_max : (float)row[i] <= (float)p.log_std_max));
                        double h = ref_gaussian_entropy(row, d);
                        nrows++;
                        worst = fmax(worst, h0p - h);
                        viol += !(h >= h0p - TOL[f64]);
                    }
                    era_bound_report rep;
                    if (w_ccheck(f64, &p, R, d, NULL, out, TOL[f64], &rep) != ERA_OK) bad_status++;
                    else check_viol += rep.violations;
                    free(sd); free(row); free(s); free(out);
                }
        printf("# adversarial continuous %s: rows %lld, violations beyond %.0e: %lld (check: %lld), worst deficit %.3e "
               "(negative: margin)\n", TN[f64], (long long)nrows, TOL[f64], (long long)viol, (long long)check_viol, worst);
        check(bad_status == 0 && viol == 0 && check_viol == 0 && out_of_bounds == 0,
              "adversarial continuous %s: %lld rows (dims 1..61, 4 bound pairs, K 0..-1e4, std logits 1e-9..1e30): "
              "Gaussian entropy >= H0 + delta - %.0e, log stds within bounds", TN[f64], (long long)nrows, TOL[f64]);
    }
    printf("# adversarial continuous took %.2f s\n", now() - t0);
}

/* ======================================================================================
 * 9. zero rows and bad input
 * ==================================================================================== */

static void test_zero_rows(void) {
    era_continuous_params cp = cparams(-1.0, 0, -8, 0);
    era_discrete_params dp = dparams(1.0, 4.0, ERA_DISCRETE_EXACT);
    for (int f64 = 0; f64 < 2; f64++) {
        int ok = w_softmax(f64, 0, 5, NULL, NULL) == ERA_OK && w_gauss(f64, 0, 5, NULL, NULL) == ERA_OK &&
                 w_tanh(f64, 0, 5, NULL, NULL, NULL) == ERA_OK && w_trunc(f64, 0, 5, NULL, NULL, -1, 1, NULL) == ERA_OK &&
                 w_cfwd(f64, &cp, 0, 5, NULL, NULL) == ERA_OK && w_cbwd(f64, &cp, 0, 5, NULL, NULL, NULL, NULL) == ERA_OK &&
                 w_dfwd(f64, &dp, 0, 5, NULL, NULL) == ERA_OK && w_dbwd(f64, &dp, 0, 5, NULL, NULL, NULL) == ERA_OK;
        check(ok, "%s: every kernel accepts rows == 0 with NULL arrays", TN[f64]);
    }
}

/* Every error case: outputs, report and scalar output are sentinel-filled before the call and
 * must be unchanged byte for byte after it. */
#define SENTINEL 0x5A
enum { BR = 3, BC = 4, BN = BR * BC };
static unsigned char out_a[BN * sizeof(double)], out_b[BN * sizeof(double)];
static era_bound_report rep_s;
static double scalar_s;

static void reset_outputs(void) {
    memset(out_a, SENTINEL, sizeof out_a);
    memset(out_b, SENTINEL, sizeof out_b);
    memset(&rep_s, SENTINEL, sizeof rep_s);
    memset(&scalar_s, SENTINEL, sizeof scalar_s);
}

static int outputs_untouched(void) {
    int ok = 1;
    const unsigned char *r = (const unsigned char *)&rep_s, *s = (const unsigned char *)&scalar_s;
    for (size_t i = 0; i < sizeof out_a; i++) ok &= out_a[i] == SENTINEL && out_b[i] == SENTINEL;
    for (size_t i = 0; i < sizeof rep_s; i++) ok &= r[i] == SENTINEL;
    for (size_t i = 0; i < sizeof scalar_s; i++) ok &= s[i] == SENTINEL;
    return ok;
}

static void expect(era_status got, era_status want, const char *fmt, ...) {
    char name[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int untouched = outputs_untouched();
    if (got != want) printf("# got %s\n", era_status_string(got));
    if (!untouched) printf("# an output was written\n");
    check(got == want && untouched, "bad input: %s -> %s, nothing written", name, era_status_string(want));
}

static const double poison[3] = {NAN, INFINITY, -INFINITY};
static const char *const poison_name[3] = {"NaN", "+inf", "-inf"};
static const int64_t OVER_ROWS = INT64_MAX / 2;

/* Inputs for the bad-input cases, one set per type. */
static void *g_z, *g_g, *g_m, *g_ls, *g_bad;

/* g_bad = copy of src with its last element poisoned. */
static const void *poisoned(int f64, const void *src, int k) {
    memcpy(g_bad, src, (size_t)BN * tsize(f64));
    tput(g_bad, f64, BN - 1, poison[k]);
    return g_bad;
}

static void bad_entropy_functions(int f64) {
    const char *t = TN[f64];
    void *o = out_a;
    /* softmax and gaussian: one input */
    for (int fn = 0; fn < 2; fn++) {
        const char *n = fn ? "gaussian_entropy" : "softmax_entropy";
        era_status (*w)(int, int64_t, int64_t, const void *, void *) = fn ? w_gauss : w_softmax;
        reset_outputs(); expect(w(f64, BR, BC, NULL, o), ERA_ERR_NULL_POINTER, "%s_%s NULL input", n, t);
        reset_outputs(); expect(w(f64, BR, BC, g_ls, NULL), ERA_ERR_NULL_POINTER, "%s_%s NULL output", n, t);
        reset_outputs(); expect(w(f64, -1, BC, g_ls, o), ERA_ERR_BAD_SHAPE, "%s_%s rows -1", n, t);
        reset_outputs(); expect(w(f64, BR, 0, g_ls, o), ERA_ERR_BAD_SHAPE, "%s_%s cols 0", n, t);
        reset_outputs(); expect(w(f64, BR, -3, g_ls, o), ERA_ERR_BAD_SHAPE, "%s_%s cols -3", n, t);
        reset_outputs(); expect(w(f64, OVER_ROWS, 4, g_ls, o), ERA_ERR_BAD_SHAPE, "%s_%s rows*cols overflows", n, t);
        for (int k = 0; k < 3; k++) {
            reset_outputs();
            expect(w(f64, BR, BC, poisoned(f64, g_ls, k), o), ERA_ERR_NON_FINITE, "%s_%s %s in the last element", n, t,
                   poison_name[k]);
        }
    }
    /* tanh-gaussian */
    reset_outputs(); expect(w_tanh(f64, BR, BC, NULL, g_ls, o), ERA_ERR_NULL_POINTER, "tanh_gaussian_entropy_%s NULL mean", t);
    reset_outputs(); expect(w_tanh(f64, BR, BC, g_m, NULL, o), ERA_ERR_NULL_POINTER, "tanh_gaussian_entropy_%s NULL log_std", t);
    reset_outputs(); expect(w_tanh(f64, BR, BC, g_m, g_ls, NULL), ERA_ERR_NULL_POINTER, "tanh_gaussian_entropy_%s NULL output", t);
    reset_outputs(); expect(w_tanh(f64, -1, BC, g_m, g_ls, o), ERA_ERR_BAD_SHAPE, "tanh_gaussian_entropy_%s rows -1", t);
    reset_outputs(); expect(w_tanh(f64, BR, 0, g_m, g_ls, o), ERA_ERR_BAD_SHAPE, "tanh_gaussian_entropy_%s dim 0", t);
    reset_outputs(); expect(w_tanh(f64, OVER_ROWS, 4, g_m, g_ls, o), ERA_ERR_BAD_SHAPE, "tanh_gaussian_entropy_%s rows*dim overflows", t);
    for (int k = 0; k < 3; k++) {
        reset_outputs();
        expect(w_tanh(f64, BR, BC, poisoned(f64, g_m, k), g_ls, o), ERA_ERR_NON_FINITE,
               "tanh_gaussian_entropy_%s %s in the last mean", t, poison_name[k]);
        reset_outputs();
        expect(w_tanh(f64, BR, BC, g_m, poisoned(f64, g_ls, k), o), ERA_ERR_NON_FINITE,
               "tanh_gaussian_entropy_%s %s in the last log_std", t, poison_name[k]);
    }
    /* truncated normal */
    reset_outputs(); expect(w_trunc(f64, BR, BC, NULL, g_ls, -1, 1, o), ERA_ERR_NULL_POINTER, "truncated_normal_entropy_%s NULL loc", t);
    reset_outputs(); expect(w_trunc(f64, BR, BC, g_m, NULL, -1, 1, o), ERA_ERR_NULL_POINTER, "truncated_normal_entropy_%s NULL log_std", t);
    reset_outputs(); expect(w_trunc(f64, BR, BC, g_m, g_ls, -1, 1, NULL), ERA_ERR_NULL_POINTER, "truncated_normal_entropy_%s NULL output", t);
    reset_outputs(); expect(w_trunc(f64, -1, BC, g_m, g_ls, -1, 1, o), ERA_ERR_BAD_SHAPE, "truncated_normal_entropy_%s rows -1", t);
    reset_outputs(); expect(w_trunc(f64, BR, 0, g_m, g_ls, -1, 1, o), ERA_ERR_BAD_SHAPE, "truncated_normal_entropy_%s dim 0", t);
    reset_outputs(); expect(w_trunc(f64, OVER_ROWS, 4, g_m, g_ls, -1, 1, o), ERA_ERR_BAD_SHAPE, "truncated_normal_entropy_%s rows*dim overflows", t);
    const struct { double lo, hi; const char *name; } ivs[7] = {
        {1, 1, "lo == hi"}, {1, -1, "lo > hi"}, {NAN, 1, "lo NaN"}, {-INFINITY, 1, "lo -inf"},
        {INFINITY, INFINITY, "lo +inf"}, {-1, INFINITY, "hi +inf"}, {-1, NAN, "hi NaN"}};
    for (int k = 0; k < 7; k++) {
        reset_outputs();
        expect(w_trunc(f64, BR, BC, g_m, g_ls, ivs[k].lo, ivs[k].hi, o), ERA_ERR_BAD_PARAMETER,
               "truncated_normal_entropy_%s %s", t, ivs[k].name);
    }
    for (int k = 0; k < 3; k++) {
        reset_outputs();
        expect(w_trunc(f64, BR, BC, poisoned(f64, g_m, k), g_ls, -1, 1, o), ERA_ERR_NON_FINITE,
               "truncated_normal_entropy_%s %s in the last loc", t, poison_name[k]);
        reset_outputs();
        expect(w_trunc(f64, BR, BC, g_m, poisoned(f64, g_ls, k), -1, 1, o), ERA_ERR_NON_FINITE,
               "truncated_normal_entropy_%s %s in the last log_std", t, poison_name[k]);
    }
}

/* Continuous parameter sets that must fail, with their status. */
typedef struct { era_continuous_params p; era_status want; const char *name; } bad_cparams;

static int continuous_bad_params(bad_cparams *b) {
    const era_continuous_params good = cparams(-2.0, 0.1, -8, 0);
    int n = 0;
    era_continuous_params unset;
    era_continuous_params_init(&unset);
#define ADD(field, value, status, text) do { b[n].p = good; b[n].p.field = (value); b[n].want = (status); b[n].name = (text); n++; } while (0)
    ADD(target_entropy, BC * 1.4189385332046727 + 0.001, ERA_ERR_INFEASIBLE_TARGET, "infeasible target (K > 0)");
    ADD(log_std_min, 0.0, ERA_ERR_BAD_PARAMETER, "log_std_min == log_std_max");
    ADD(log_std_min, 0.5, ERA_ERR_BAD_PARAMETER, "log_std_min > log_std_max");
    ADD(target_entropy, NAN, ERA_ERR_BAD_PARAMETER, "NaN target");
    ADD(target_entropy, -INFINITY, ERA_ERR_BAD_PARAMETER, "-inf target");
    ADD(residual, -1e-3, ERA_ERR_BAD_PARAMETER, "negative residual");
    ADD(residual, NAN, ERA_ERR_BAD_PARAMETER, "NaN residual");
    ADD(residual, INFINITY, ERA_ERR_BAD_PARAMETER, "+inf residual");
    ADD(log_std_min, NAN, ERA_ERR_BAD_PARAMETER, "NaN log_std_min");
    ADD(log_std_min, -INFINITY, ERA_ERR_BAD_PARAMETER, "-inf log_std_min");
    ADD(log_std_max, NAN, ERA_ERR_BAD_PARAMETER, "NaN log_std_max");
    ADD(log_std_max, INFINITY, ERA_ERR_BAD_PARAMETER, "+inf log_std_max");
#undef ADD
    b[n].p = unset; b[n].want = ERA_ERR_BAD_PARAMETER; b[n].name = "unset target after init"; n++;
    return n;
}

static void bad_continuous_functions(int f64) {
    const char *t = TN[f64];
    void *o = out_a, *r = out_b;
    era_continuous_params p = cparams(-2.0, 0.1, -8, 0);
    /* forward */
    reset_outputs(); expect(w_cfwd(f64, NULL, BR, BC, g_z, o), ERA_ERR_NULL_POINTER, "continuous_forward_%s NULL params", t);
    reset_outputs(); expect(w_cfwd(f64, &p, BR, BC, NULL, o), ERA_ERR_NULL_POINTER, "continuous_forward_%s NULL std_logits", t);
    reset_outputs(); expect(w_cfwd(f64, &p, BR, BC, g_z, NULL), ERA_ERR_NULL_POINTER, "continuous_forward_%s NULL output", t);
    reset_outputs(); expect(w_cfwd(f64, &p, -1, BC, g_z, o), ERA_ERR_BAD_SHAPE, "continuous_forward_%s rows -1", t);
    reset_outputs(); expect(w_cfwd(f64, &p, BR, 0, g_z, o), ERA_ERR_BAD_SHAPE, "continuous_forward_%s dim 0", t);
    reset_outputs(); expect(w_cfwd(f64, &p, OVER_ROWS, 4, g_z, o), ERA_ERR_BAD_SHAPE, "continuous_forward_%s rows*dim overflows", t);
    /* backward */
    reset_outputs(); expect(w_cbwd(f64, NULL, BR, BC, g_z, g_g, o, r), ERA_ERR_NULL_POINTER, "continuous_backward_%s NULL params", t);
    reset_outputs(); expect(w_cbwd(f64, &p, BR, BC, NULL, g_g, o, r), ERA_ERR_NULL_POINTER, "continuous_backward_%s NULL std_logits", t);
    reset_outputs(); expect(w_cbwd(f64, &p, BR, BC, g_z, NULL, o, r), ERA_ERR_NULL_POINTER, "continuous_backward_%s NULL grad_log_std", t);
    reset_outputs(); expect(w_cbwd(f64, &p, BR, BC, g_z, g_g, NULL, r), ERA_ERR_NULL_POINTER, "continuous_backward_%s NULL output", t);
    reset_outputs(); expect(w_cbwd(f64, &p, -1, BC, g_z, g_g, o, r), ERA_ERR_BAD_SHAPE, "continuous_backward_%s rows -1", t);
    reset_outputs(); expect(w_cbwd(f64, &p, BR, 0, g_z, g_g, o, r), ERA_ERR_BAD_SHAPE, "continuous_backward_%s dim 0", t);
    reset_outputs(); expect(w_cbwd(f64, &p, OVER_ROWS, 4, g_z, g_g, o, r), ERA_ERR_BAD_SHAPE, "continuous_backward_%s rows*dim overflows", t);
    /* checks */
    era_bound_report *rep = &rep_s;
    reset_outputs(); expect(w_ccheck(f64, NULL, BR, BC, NULL, g_ls, 0, rep), ERA_ERR_NULL_POINTER, "check_continuous_%s NULL params", t);
    reset_outputs(); expect(w_ccheck(f64, &p, BR, BC, NULL, NULL, 0, rep), ERA_ERR_NULL_POINTER, "check_continuous_%s NULL log_std (mean NULL)", t);
    reset_outputs(); expect(w_ccheck(f64, &p, BR, BC, g_m, NULL, 0, rep), ERA_ERR_NULL_POINTER, "check_continuous_%s NULL log_std (mean given)", t);
    reset_outputs(); expect(w_ccheck(f64, &p, BR, BC, g_m, g_ls, 0, NULL), ERA_ERR_NULL_POINTER, "check_continuous_%s NULL report", t);
    reset_outputs(); expect(w_ccheck(f64, &p, -1, BC, NULL, g_ls, 0, rep), ERA_ERR_BAD_SHAPE, "check_continuous_%s rows -1", t);
    reset_outputs(); expect(w_ccheck(f64, &p, BR, 0, NULL, g_ls, 0, rep), ERA_ERR_BAD_SHAPE, "check_continuous_%s dim 0", t);
    reset_outputs(); expect(w_ccheck(f64, &p, OVER_ROWS, 4, NULL, g_ls, 0, rep), ERA_ERR_BAD_SHAPE, "check_continuous_%s rows*dim overflows", t);
    const double tols[3] = {NAN, -1, INFINITY};
    const char *tol_names[3] = {"NaN", "-1", "+inf"};
    for (int k = 0; k < 3; k++) {
        reset_outputs();
        expect(w_ccheck(f64, &p, BR, BC, NULL, g_ls, tols[k], rep), ERA_ERR_BAD_PARAMETER, "check_continuous_%s tol %s", t,
               tol_names[k]);
    }
    /* bad parameters, for all four continuous functions */
    bad_cparams bp[16];
    int n = continuous_bad_params(bp);
    for (int k = 0; k < n; k++) {
        reset_outputs(); expect(w_cfwd(f64, &bp[k].p, BR, BC, g_z, o), bp[k].want, "continuous_forward_%s %s", t, bp[k].name);
        reset_outputs(); expect(w_cbwd(f64, &bp[k].p, BR, BC, g_z, g_g, o, r), bp[k].want, "continuous_backward_%s %s", t, bp[k].name);
        reset_outputs(); expect(w_ccheck(f64, &bp[k].p, BR, BC, NULL, g_ls, 0, rep), bp[k].want, "check_continuous_%s %s", t, bp[k].name);
    }
    /* non-finite last elements */
    for (int k = 0; k < 3; k++) {
        const char *pn = poison_name[k];
        reset_outputs(); expect(w_cfwd(f64, &p, BR, BC, poisoned(f64, g_z, k), o), ERA_ERR_NON_FINITE, "continuous_forward_%s %s in the last std logit", t, pn);
        reset_outputs(); expect(w_cbwd(f64, &p, BR, BC, poisoned(f64, g_z, k), g_g, o, r), ERA_ERR_NON_FINITE, "continuous_backward_%s %s in the last std logit", t, pn);
        reset_outputs(); expect(w_cbwd(f64, &p, BR, BC, g_z, poisoned(f64, g_g, k), o, r), ERA_ERR_NON_FINITE, "continuous_backward_%s %s in the last grad_log_std", t, pn);
        reset_outputs(); expect(w_ccheck(f64, &p, BR, BC, NULL, poisoned(f64, g_ls, k), 0, rep), ERA_ERR_NON_FINITE, "check_continuous_%s %s in the last log_std (mean NULL)", t, pn);
        reset_outputs(); expect(w_ccheck(f64, &p, BR, BC, g_m, poisoned(f64, g_ls, k), 0, rep), ERA_ERR_NON_FINITE, "check_continuous_%s %s in the last log_std (mean given)", t, pn);
        reset_outputs(); expect(w_ccheck(f64, &p, BR, BC, poisoned(f64, g_m, k), g_ls, 0, rep), ERA_ERR_NON_FINITE, "check_continuous_%s %s in the last mean", t, pn);
    }
}

typedef struct { era_discrete_params p; era_status want; char name[120]; } bad_dparams;

/* Discrete parameter sets for rows of BC = 4 classes that must fail, with their status. */
static int discrete_bad_params(bad_dparams *b) {
    int n = 0;
    const double up = log(4.0) / 4.0, lo = 1.0 + log(up), hi = 1.0 + log(BC * up);
    era_discrete_params unset;
    era_discrete_params_init(&unset);
#define ADDP(h0, tau, mode, status, ...) do { b[n].p = dparams((h0), (tau), (mode)); b[n].want = (status); snprintf(b[n].name, sizeof b[n].name, __VA_ARGS__); n++; } while (0)
    ADDP(hi + 1e-6, 4.0, ERA_DISCRETE_EXACT, ERA_ERR_INFEASIBLE_TARGET, "EXACT H0 above 1 + log(D*up)");
    ADDP(lo - 1e-6, 4.0, ERA_DISCRETE_EXACT, ERA_ERR_INFEASIBLE_TARGET, "EXACT H0 below 1 + log(up)");
    ADDP(hi + 1e-6, 4.0, ERA_DISCRETE_REFERENCE, ERA_ERR_INFEASIBLE_TARGET, "REFERENCE H0 above 1 + log(D*up)");
    ADDP(lo - 1e-6, 4.0, ERA_DISCRETE_REFERENCE, ERA_ERR_INFEASIBLE_TARGET, "REFERENCE H0 below 1 + log(up)");
    ADDP(log((double)BC), 4.0, ERA_DISCRETE_TIGHT, ERA_ERR_INFEASIBLE_TARGET, "TIGHT H0 = log D");
    ADDP(log((double)BC) + 0.5, 4.0, ERA_DISCRETE_TIGHT, ERA_ERR_INFEASIBLE_TARGET, "TIGHT H0 > log D");
    ADDP(0.0, 4.0, ERA_DISCRETE_TIGHT, ERA_ERR_INFEASIBLE_TARGET, "TIGHT H0 = 0");
    ADDP(-0.01, 4.0, ERA_DISCRETE_TIGHT, ERA_ERR_INFEASIBLE_TARGET, "TIGHT H0 < 0");
    ADDP(1.0, 2.718281828459045, ERA_DISCRETE_EXACT, ERA_ERR_BAD_PARAMETER, "tau = e (2.718281828459045)");
    ADDP(1.0, 1.0, ERA_DISCRETE_EXACT, ERA_ERR_BAD_PARAMETER, "tau = 1");
    ADDP(1.0, 0.0, ERA_DISCRETE_TIGHT, ERA_ERR_BAD_PARAMETER, "tau = 0");
    ADDP(1.0, INFINITY, ERA_DISCRETE_EXACT, ERA_ERR_BAD_PARAMETER, "tau = +inf");
    ADDP(1.0, NAN, ERA_DISCRETE_REFERENCE, ERA_ERR_BAD_PARAMETER, "tau = NaN");
    ADDP(1.0, 4.0, 3, ERA_ERR_BAD_PARAMETER, "mode 3");
    ADDP(1.0, 4.0, -1, ERA_ERR_BAD_PARAMETER, "mode -1");
    ADDP(NAN, 4.0, ERA_DISCRETE_EXACT, ERA_ERR_BAD_PARAMETER, "NaN target");
    ADDP(INFINITY, 4.0, ERA_DISCRETE_TIGHT, ERA_ERR_BAD_PARAMETER, "+inf target");
#undef ADDP
    b[n].p = unset; b[n].want = ERA_ERR_BAD_PARAMETER; snprintf(b[n].name, sizeof b[n].name, "unset target after init"); n++;
    return n;
}

static void bad_discrete_functions(int f64) {
    const char *t = TN[f64];
    void *o = out_a;
    era_bound_report *rep = &rep_s;
    era_discrete_params p = dparams(1.0, 4.0, ERA_DISCRETE_EXACT);
    reset_outputs(); expect(w_dfwd(f64, NULL, BR, BC, g_z, o), ERA_ERR_NULL_POINTER, "discrete_forward_%s NULL params", t);
    reset_outputs(); expect(w_dfwd(f64, &p, BR, BC, NULL, o), ERA_ERR_NULL_POINTER, "discrete_forward_%s NULL logits", t);
    reset_outputs(); expect(w_dfwd(f64, &p, BR, BC, g_z, NULL), ERA_ERR_NULL_POINTER, "discrete_forward_%s NULL output", t);
    reset_outputs(); expect(w_dbwd(f64, NULL, BR, BC, g_z, g_g, o), ERA_ERR_NULL_POINTER, "discrete_backward_%s NULL params", t);
    reset_outputs(); expect(w_dbwd(f64, &p, BR, BC, NULL, g_g, o), ERA_ERR_NULL_POINTER, "discrete_backward_%s NULL logits", t);
    reset_outputs(); expect(w_dbwd(f64, &p, BR, BC, g_z, NULL, o), ERA_ERR_NULL_POINTER, "discrete_backward_%s NULL grad_out", t);
    reset_outputs(); expect(w_dbwd(f64, &p, BR, BC, g_z, g_g, NULL), ERA_ERR_NULL_POINTER, "discrete_backward_%s NULL output", t);
    reset_outputs(); expect(w_dcheck(f64, NULL, BR, BC, g_z, 0, rep), ERA_ERR_NULL_POINTER, "check_discrete_%s NULL params", t);
    reset_outputs(); expect(w_dcheck(f64, &p, BR, BC, NULL, 0, rep), ERA_ERR_NULL_POINTER, "check_discrete_%s NULL logits", t);
    reset_outputs(); expect(w_dcheck(f64, &p, BR, BC, g_z, 0, NULL), ERA_ERR_NULL_POINTER, "check_discrete_%s NULL report", t);
    const struct { int64_t rows, cols; const char *name; } shapes[5] = {
        {-1, BC, "rows -1"}, {BR, 1, "classes 1"}, {BR, 0, "classes 0"}, {BR, -2, "classes -2"}, {OVER_ROWS, 4, "rows*classes overflows"}};
    for (int k = 0; k < 5; k++) {
        reset_outputs(); expect(w_dfwd(f64, &p, shapes[k].rows, shapes[k].cols, g_z, o), ERA_ERR_BAD_SHAPE, "discrete_forward_%s %s", t, shapes[k].name);
        reset_outputs(); expect(w_dbwd(f64, &p, shapes[k].rows, shapes[k].cols, g_z, g_g, o), ERA_ERR_BAD_SHAPE, "discrete_backward_%s %s", t, shapes[k].name);
        reset_outputs(); expect(w_dcheck(f64, &p, shapes[k].rows, shapes[k].cols, g_z, 0, rep), ERA_ERR_BAD_SHAPE, "check_discrete_%s %s", t, shapes[k].name);
    }
    const double tols[3] = {NAN, -1, INFINITY};
    const char *tol_names[3] = {"NaN", "-1", "+inf"};
    for (int k = 0; k < 3; k++) {
        reset_outputs();
        expect(w_dcheck(f64, &p, BR, BC, g_z, tols[k], rep), ERA_ERR_BAD_PARAMETER, "check_discrete_%s tol %s", t, tol_names[k]);
    }
    bad_dparams bp[24];
    int n = discrete_bad_params(bp);
    for (int k = 0; k < n; k++) {
        reset_outputs(); expect(w_dfwd(f64, &bp[k].p, BR, BC, g_z, o), bp[k].want, "discrete_forward_%s %s", t, bp[k].name);
        reset_outputs(); expect(w_dbwd(f64, &bp[k].p, BR, BC, g_z, g_g, o), bp[k].want, "discrete_backward_%s %s", t, bp[k].name);
        reset_outputs(); expect(w_dcheck(f64, &bp[k].p, BR, BC, g_z, 0, rep), bp[k].want, "check_discrete_%s %s", t, bp[k].name);
    }
    for (int k = 0; k < 3; k++) {
        const char *pn = poison_name[k];
        reset_outputs(); expect(w_dfwd(f64, &p, BR, BC, poisoned(f64, g_z, k), o), ERA_ERR_NON_FINITE, "discrete_forward_%s %s in the last logit", t, pn);
        reset_outputs(); expect(w_dbwd(f64, &p, BR, BC, poisoned(f64, g_z, k), g_g, o), ERA_ERR_NON_FINITE, "discrete_backward_%s %s in the last logit", t, pn);
        reset_outputs(); expect(w_dbwd(f64, &p, BR, BC, g_z, poisoned(f64, g_g, k), o), ERA_ERR_NON_FINITE, "discrete_backward_%s %s in the last grad_out", t, pn);
        reset_outputs(); expect(w_dcheck(f64, &p, BR, BC, poisoned(f64, g_z, k), 0, rep), ERA_ERR_NON_FINITE, "check_discrete_%s %s in the last logit", t, pn);
    }
}

static void bad_discrete_queries(void) {
    era_discrete_params p = dparams(1.0, 4.0, ERA_DISCRETE_EXACT);
    era_status (*const fns[3])(const era_discrete_params *, int64_t, double *) = {era_discrete_floor, era_discrete_infimum,
                                                                                   era_discrete_constant};
    const char *names[3] = {"era_discrete_floor", "era_discrete_infimum", "era_discrete_constant"};
    bad_dparams bp[24];
    int n = discrete_bad_params(bp);
    for (int f = 0; f < 3; f++) {
        reset_outputs(); expect(fns[f](NULL, BC, &scalar_s), ERA_ERR_NULL_POINTER, "%s NULL params", names[f]);
        reset_outputs(); expect(fns[f](&p, BC, NULL), ERA_ERR_NULL_POINTER, "%s NULL output", names[f]);
        reset_outputs(); expect(fns[f](&p, 1, &scalar_s), ERA_ERR_BAD_SHAPE, "%s classes 1", names[f]);
        reset_outputs(); expect(fns[f](&p, -5, &scalar_s), ERA_ERR_BAD_SHAPE, "%s classes -5", names[f]);
        for (int k = 0; k < n; k++) {
            reset_outputs();
            expect(fns[f](&bp[k].p, BC, &scalar_s), bp[k].want, "%s %s", names[f], bp[k].name);
        }
    }
    /* The ends of the ranges are feasible. */
    const double up = log(4.0) / 4.0;
    era_discrete_params e1 = dparams(1.0 + log(up), 4.0, ERA_DISCRETE_EXACT), e2 = dparams(1.0 + log(BC * up), 4.0, ERA_DISCRETE_EXACT);
    era_discrete_params t1 = dparams(1e-12, 4.0, ERA_DISCRETE_TIGHT), t2 = dparams(log((double)BC) * (1 - 1e-12), 4.0, ERA_DISCRETE_TIGHT);
    double v[4];
    int ok = era_discrete_constant(&e1, BC, &v[0]) == ERA_OK && era_discrete_constant(&e2, BC, &v[1]) == ERA_OK &&
             era_discrete_constant(&t1, BC, &v[2]) == ERA_OK && era_discrete_constant(&t2, BC, &v[3]) == ERA_OK;
    check(ok && err1(v[0], up) <= 1e-14 && err1(v[1], BC * up) <= 1e-14,
          "the ends of the feasible ranges are accepted (EXACT 1 + log(up), 1 + log(D*up); TIGHT near 0 and log D)");
    era_discrete_params just_above_e = dparams(0.5, nextafter(2.718281828459045, 3.0), ERA_DISCRETE_EXACT);
    v[0] = 7.0;
    check(era_discrete_floor(&just_above_e, BC, &v[0]) == ERA_ERR_BAD_PARAMETER && v[0] == 7.0,
          "tau = nextafter(e) is refused (log(tau) - 1 < 1e-6), nothing written");
}

static void test_bad_input(void) {
    for (int f64 = 0; f64 < 2; f64++) {
        g_z = talloc(f64, BN); g_g = talloc(f64, BN); g_m = talloc(f64, BN); g_ls = talloc(f64, BN); g_bad = talloc(f64, BN);
        for (int i = 0; i < BN; i++) {
            tput(g_z, f64, i, 0.3 * i - 1);
            tput(g_g, f64, i, 1.0 - 0.1 * i);
            tput(g_m, f64, i, 0.2 * i - 1);
            tput(g_ls, f64, i, -0.5 - 0.05 * i);
        }
        /* The good inputs pass, so every failure below is down to the one defect named. */
        era_continuous_params cp = cparams(-2.0, 0.1, -8, 0);
        era_discrete_params dp = dparams(1.0, 4.0, ERA_DISCRETE_EXACT);
        era_bound_report rep;
        int ok = w_softmax(f64, BR, BC, g_z, out_a) == ERA_OK && w_gauss(f64, BR, BC, g_ls, out_a) == ERA_OK &&
                 w_tanh(f64, BR, BC, g_m, g_ls, out_a) == ERA_OK && w_trunc(f64, BR, BC, g_m, g_ls, -1, 1, out_a) == ERA_OK &&
                 w_cfwd(f64, &cp, BR, BC, g_z, out_a) == ERA_OK && w_cbwd(f64, &cp, BR, BC, g_z, g_g, out_a, out_b) == ERA_OK &&
                 w_ccheck(f64, &cp, BR, BC, g_m, g_ls, 0, &rep) == ERA_OK && w_ccheck(f64, &cp, BR, BC, NULL, g_ls, 0, &rep) == ERA_OK &&
                 w_dfwd(f64, &dp, BR, BC, g_z, out_a) == ERA_OK && w_dbwd(f64, &dp, BR, BC, g_z, g_g, out_a) == ERA_OK &&
                 w_dcheck(f64, &dp, BR, BC, g_z, 0, &rep) == ERA_OK;
        check(ok, "bad input %s: the unaltered inputs and parameters are accepted", TN[f64]);
        bad_entropy_functions(f64);
        bad_continuous_functions(f64);
        bad_discrete_functions(f64);
        free(g_z); free(g_g); free(g_m); free(g_ls); free(g_bad);
    }
    bad_discrete_queries();
    int32_t before = era_get_num_threads();
    check(era_set_num_threads(-1) == ERA_ERR_BAD_PARAMETER && era_get_num_threads() == before,
          "bad input: era_set_num_threads(-1) -> bad parameter, setting unchanged (%d)", before);
    check(era_set_num_threads(1025) == ERA_ERR_BAD_PARAMETER && era_get_num_threads() == before,
          "bad input: era_set_num_threads(1025) -> bad parameter, setting unchanged (%d)", before);
}

/* Edge cases the fuzz target found (Tests/fuzz/regressions): each returned NaN, an infinity
 * or an inconsistent result with ERA_OK before it was fixed. */
static void test_fuzz_findings(void) {
    /* b = 0 (H0 on EXACT's lower bound 1 + log(up)): r_i = g dt/dy a overflows where p_i is
     * tiny, the gradient itself is bounded. */
    {
        const double tau = 8.25, z[3] = {0, -706, 0}, g[3] = {100, 100, -100};
        era_discrete_params p = dparams(1.0 + log(log(tau) / tau), tau, ERA_DISCRETE_EXACT);
        double c = NAN, grad[3] = {NAN, NAN, NAN}, pp[3], y[3], t[3], want[3];
        int ok = era_discrete_constant(&p, 3, &c) == ERA_OK && era_discrete_backward_f64(&p, 1, 3, z, g, grad) == ERA_OK;
        ref_discrete_backward_row(z, g, 3, c, tau, ERA_DISCRETE_EXACT, pp, y, t, want);
        double worst = 0;
        for (int i = 0; i < 3; i++) worst = fmax(worst, fabs(grad[i] - want[i]) / 100);
        check(ok && isfinite(grad[0]) && isfinite(grad[1]) && isfinite(grad[2]) && worst <= 1e-12,
              "discrete backward with b = 0 and a logit 706 below the others: finite, reference (worst %.2e)", worst);
    }
    /* Entropies beyond the double range are refused and nothing is written. */
    {
        const double huge[2] = {1e308, 1e308}, wide[2] = {710, 0}, mean[2] = {0, 0};
        double out = 42;
        era_status gs = era_gaussian_entropy_f64(1, 2, huge, &out);
        era_status ts = era_tanh_gaussian_entropy_f64(1, 2, mean, wide, &out);
        check(gs == ERA_ERR_BAD_PARAMETER && ts == ERA_ERR_BAD_PARAMETER && out == 42,
              "gaussian entropy of log stds 1e308 and tanh-gaussian entropy with log std 710: bad parameter, "
              "nothing written (%s, %s)", era_status_string(gs), era_status_string(ts));
        float hugef[2] = {3e38f, 3e38f}, outf = 42;
        check(era_gaussian_entropy_f32(1, 2, hugef, &outf) == ERA_ERR_BAD_PARAMETER && outf == 42,
              "gaussian entropy f32 overflowing float: bad parameter, nothing written");
        era_continuous_params cp = cparams(-2.0, 0.0, -8, 0);
        era_bound_report rep;
        memset(&rep, 0x5a, sizeof rep);
        era_bound_report before = rep;
        const double dmax[2] = {DBL_MAX, DBL_MAX};
        era_status cs = era_check_continuous_f64(&cp, 1, 2, NULL, dmax, 0, &rep);
        check(cs == ERA_ERR_BAD_PARAMETER && memcmp(&rep, &before, sizeof rep) == 0,
              "continuous check of log stds DBL_MAX (entropy beyond double): bad parameter, report untouched (%s)",
              era_status_string(cs));
    }
    /* TIGHT with a huge tau: below the one-hot entropy reachable with b = DBL_MIN no C is tight. */
    {
        era_discrete_params low = dparams(4.79e-9, 1e300, ERA_DISCRETE_TIGHT), high = dparams(1e-6, 1e300, ERA_DISCRETE_TIGHT);
        double inf_low = 42, inf_high = NAN;
        era_status sl = era_discrete_infimum(&low, 120, &inf_low), sh = era_discrete_infimum(&high, 120, &inf_high);
        check(sl == ERA_ERR_INFEASIBLE_TARGET && inf_low == 42 && sh == ERA_OK && fabs(inf_high - 1e-6) <= 1e-15,
              "TIGHT, tau 1e300, 120 classes: H0 4.79e-9 infeasible (%s), H0 1e-6 infimum %.17g",
              era_status_string(sl), inf_high);
    }
}

int main(void) {
    double t0 = now();
    test_versions();
    test_status_strings();
    test_params_init();
    test_threads();
    test_softmax_entropy();
    test_gaussian_entropy();
    test_tanh_entropy();
    test_truncated_normal();
    test_continuous_forward();
    test_continuous_backward();
    test_discrete_constants();
    test_discrete_forward();
    test_discrete_backward();
    test_checks();
    test_in_place();
    test_zero_rows();
    test_adversarial_discrete();
    test_adversarial_continuous();
    test_bad_input();
    test_fuzz_findings();
    printf("# total time %.2f s\n", now() - t0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
