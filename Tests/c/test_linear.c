/*
 * test_linear.c -- the fused linear heads of libera (era.h, "Fused linear heads";
 * docs/linear-heads.md) driven through libera.so, against float64 references written plainly
 * below: a naive double matrix product, then the softmax, ERA and cross-entropy formulas
 * (discrete ERA rows from era_reference.h).
 * Prints "ok N - name" / "not ok N - name" per case, "# ..." lines with the worst errors, and
 * ends with "N passed, M failed".
 */
#include "era.h"
#include "era_reference.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* Tolerances (float32 products of float32 inputs against float64 references):
 * per-token values |got - want| <= TOL_VALUE * (1 + |want|); arrays of gradients
 * max |got - want| <= TOL_GRAD * max |want|. */
#define TOL_VALUE 2e-5
#define TOL_GRAD 2e-5

/* ---- float64 references -------------------------------------------------------------- */

/* z[r, o] = sum_j x[r, j] * w[o, j] (+ bias[o]) in double. */
static void ref_linear(int64_t rows, int64_t dim, int64_t outputs, const float *x, const float *w, const float *bias,
                       double *z) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < outputs; o++) {
            double sum = bias ? (double)bias[o] : 0.0;
            for (int64_t j = 0; j < dim; j++) sum += (double)x[r * dim + j] * (double)w[o * dim + j];
            z[r * outputs + o] = sum;
        }
}

/* LLM ERA on one row (math 3): logp = s z_a - logsumexp(s z), H = entropy(softmax(s z)),
 * and p = softmax(s z) when p is not NULL. Two passes, plain loops. */
static void ref_llm_row(const double *z, int64_t v, int64_t label, double s, double *logp, double *entropy,
                        double *p) {
    double m = -INFINITY, sum = 0, t = 0;
    for (int64_t i = 0; i < v; i++) if (s * z[i] > m) m = s * z[i];
    for (int64_t i = 0; i < v; i++) {
        double d = s * z[i] - m, e = exp(d);
        sum += e; t += d * e;
    }
    *logp = (s * z[label] - m) - log(sum);
    *entropy = log(sum) - t / sum;
    if (p) for (int64_t i = 0; i < v; i++) p[i] = exp(s * z[i] - m) / sum;
}

/* One LLM head problem: hidden[t*d], weight[v*d], labels, scales (or NULL), grad_logprob. */
typedef struct {
    int64_t t, d, v;
    float *h, *w, *scale, *g;
    int64_t *labels;
} llm_problem;

static llm_problem make_llm(int64_t t, int64_t d, int64_t v, int scaled) {
    llm_problem p = {t, d, v, NULL, NULL, NULL, NULL, NULL};
    p.h = xmalloc(sizeof(float) * (size_t)(t * d));
    p.w = xmalloc(sizeof(float) * (size_t)(v * d));
    p.g = xmalloc(sizeof(float) * (size_t)t);
    p.labels = xmalloc(sizeof(int64_t) * (size_t)t);
    p.scale = scaled ? xmalloc(sizeof(float) * (size_t)t) : NULL;
    double spread = 3.0 / sqrt((double)d); /* logits of about N(0, 9) */
    for (int64_t i = 0; i < t * d; i++) p.h[i] = (float)normal();
    for (int64_t i = 0; i < v * d; i++) p.w[i] = (float)(spread * normal());
    for (int64_t i = 0; i < t; i++) {
        p.labels[i] = (int64_t)(uniform() * (double)v) % v;
        p.g[i] = (float)normal();
        if (scaled) p.scale[i] = i % 3 == 0 ? 2.0f : i % 3 == 1 ? 0.5f : 1.0f;
    }
    return p;
}

static void free_llm(llm_problem *p) {
    free(p->h); free(p->w); free(p->g); free(p->labels); free(p->scale);
}

static double scale_of(const llm_problem *p, int64_t t) { return p->scale ? (double)p->scale[t] : 1.0; }

/* Reference forward: logp[t], entropy[t]. */
static void ref_llm_forward(const llm_problem *p, double *logp, double *entropy) {
    double *z = xmalloc(sizeof(double) * (size_t)p->v);
    for (int64_t t = 0; t < p->t; t++) {
        ref_linear(1, p->d, p->v, p->h + t * p->d, p->w, NULL, z);
        ref_llm_row(z, p->v, p->labels[t], scale_of(p, t), &logp[t], &entropy[t], NULL);
    }
    free(z);
}

/* Reference gradients of sum_t g_t logp_t: dz = g s (onehot(a) - p), gh = dz W, gw = dz^T H. */
static void ref_llm_backward(const llm_problem *p, double *gh, double *gw) {
    double *z = xmalloc(sizeof(double) * (size_t)p->v), *prob = xmalloc(sizeof(double) * (size_t)p->v);
    memset(gh, 0, sizeof(double) * (size_t)(p->t * p->d));
    memset(gw, 0, sizeof(double) * (size_t)(p->v * p->d));
    for (int64_t t = 0; t < p->t; t++) {
        double logp, h, s = scale_of(p, t), gs = (double)p->g[t] * s;
        ref_linear(1, p->d, p->v, p->h + t * p->d, p->w, NULL, z);
        ref_llm_row(z, p->v, p->labels[t], s, &logp, &h, prob);
        for (int64_t i = 0; i < p->v; i++) {
            double dz = gs * ((i == p->labels[t] ? 1.0 : 0.0) - prob[i]);
            for (int64_t j = 0; j < p->d; j++) {
                gh[t * p->d + j] += dz * (double)p->w[i * p->d + j];
                gw[i * p->d + j] += dz * (double)p->h[t * p->d + j];
            }
        }
    }
    free(z); free(prob);
}

/* sum_t g_t logp_t for hidden and weight given in double (finite differences). */
static double ref_llm_objective(const llm_problem *p, const double *h, const double *w) {
    double *z = xmalloc(sizeof(double) * (size_t)p->v), total = 0;
    for (int64_t t = 0; t < p->t; t++) {
        for (int64_t i = 0; i < p->v; i++) {
            double sum = 0;
            for (int64_t j = 0; j < p->d; j++) sum += h[t * p->d + j] * w[i * p->d + j];
            z[i] = sum;
        }
        double logp, entropy;
        ref_llm_row(z, p->v, p->labels[t], scale_of(p, t), &logp, &entropy, NULL);
        total += (double)p->g[t] * logp;
    }
    free(z);
    return total;
}

/* max |got - want| / max |want| over n values (0 when both are all zero). */
static double array_error(const float *got, const double *want, int64_t n) {
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

static double value_error(double got, double want) { return fabs(got - want) / (1.0 + fabs(want)); }

static int all_equal_to(const float *x, int64_t n, float value) {
    for (int64_t i = 0; i < n; i++) if (memcmp(&x[i], &value, sizeof value) != 0) return 0;
    return 1;
}

static void fill(float *x, int64_t n, float value) { for (int64_t i = 0; i < n; i++) x[i] = value; }

/* ---- LLM head: accuracy ---------------------------------------------------------------- */

static const int64_t llm_shapes[][3] = {
    /* tokens, dim, vocab: a single logit, dim 1, exactly one chunk (2048), one chunk and one
     * entry, one token block (128) and one token, 17 chunks dealt to 16 groups, odd sizes. */
    {1, 1, 1}, {1, 3, 2}, {5, 1, 7}, {3, 16, 2048}, {7, 33, 2049}, {129, 17, 5000}, {130, 8, 34819},
    {257, 24, 4097},
};
#define LLM_SHAPES (int)(sizeof llm_shapes / sizeof llm_shapes[0])

static double worst_forward_logp, worst_forward_entropy, worst_grad_hidden, worst_grad_weight;

static void test_llm_forward_shapes(void) {
    for (int k = 0; k < LLM_SHAPES; k++) {
        for (int scaled = 0; scaled <= 1; scaled++) {
            llm_problem p = make_llm(llm_shapes[k][0], llm_shapes[k][1], llm_shapes[k][2], scaled);
            float *logp = xmalloc(sizeof(float) * (size_t)p.t), *h = xmalloc(sizeof(float) * (size_t)p.t);
            float *logp_only = xmalloc(sizeof(float) * (size_t)p.t);
            double *rl = xmalloc(sizeof(double) * (size_t)p.t), *rh = xmalloc(sizeof(double) * (size_t)p.t);
            int ok = era_llm_linear_logprob_forward_f32(p.t, p.d, p.v, p.h, p.w, p.labels, p.scale, logp, h) == ERA_OK &&
                     era_llm_linear_logprob_forward_f32(p.t, p.d, p.v, p.h, p.w, p.labels, p.scale, logp_only, NULL) ==
                         ERA_OK &&
                     memcmp(logp, logp_only, sizeof(float) * (size_t)p.t) == 0;
            ref_llm_forward(&p, rl, rh);
            double el = 0, eh = 0;
            for (int64_t t = 0; t < p.t; t++) {
                el = fmax(el, value_error(logp[t], rl[t]));
                eh = fmax(eh, value_error(h[t], rh[t]));
            }
            worst_forward_logp = fmax(worst_forward_logp, el);
            worst_forward_entropy = fmax(worst_forward_entropy, eh);
            char name[160];
            snprintf(name, sizeof name,
                     "linear logprob forward T=%lld d=%lld V=%lld %s: logp err %.1e, entropy err %.1e; NULL entropy same",
                     (long long)p.t, (long long)p.d, (long long)p.v, scaled ? "scaled" : "s=1", el, eh);
            report(ok && el <= TOL_VALUE && eh <= TOL_VALUE, name);
            free(logp); free(h); free(logp_only); free(rl); free(rh);
            free_llm(&p);
        }
    }
}

static void test_llm_backward_shapes(void) {
    for (int k = 0; k < LLM_SHAPES; k++) {
        llm_problem p = make_llm(llm_shapes[k][0], llm_shapes[k][1], llm_shapes[k][2], k % 2);
        int64_t nh = p.t * p.d, nw = p.v * p.d;
        float *gh = xmalloc(sizeof(float) * (size_t)nh), *gw = xmalloc(sizeof(float) * (size_t)nw);
        float *gh_only = xmalloc(sizeof(float) * (size_t)nh), *gw_only = xmalloc(sizeof(float) * (size_t)nw);
        double *rh = xmalloc(sizeof(double) * (size_t)nh), *rw = xmalloc(sizeof(double) * (size_t)nw);
        int ok = era_llm_linear_logprob_backward_f32(p.t, p.d, p.v, p.h, p.w, p.labels, p.scale, p.g, gh, gw) == ERA_OK &&
                 era_llm_linear_logprob_backward_f32(p.t, p.d, p.v, p.h, p.w, p.labels, p.scale, p.g, gh_only, NULL) ==
                     ERA_OK &&
                 era_llm_linear_logprob_backward_f32(p.t, p.d, p.v, p.h, p.w, p.labels, p.scale, p.g, NULL, gw_only) ==
                     ERA_OK &&
                 memcmp(gh, gh_only, sizeof(float) * (size_t)nh) == 0 &&
                 memcmp(gw, gw_only, sizeof(float) * (size_t)nw) == 0;
        ref_llm_backward(&p, rh, rw);
        double eh = array_error(gh, rh, nh), ew = array_error(gw, rw, nw);
        worst_grad_hidden = fmax(worst_grad_hidden, eh);
        worst_grad_weight = fmax(worst_grad_weight, ew);
        char name[160];
        snprintf(name, sizeof name,
                 "linear logprob backward T=%lld d=%lld V=%lld: grad hidden err %.1e, grad weight err %.1e; "
                 "each alone bit-identical",
                 (long long)p.t, (long long)p.d, (long long)p.v, eh, ew);
        report(ok && eh <= TOL_GRAD && ew <= TOL_GRAD, name);
        free(gh); free(gw); free(gh_only); free(gw_only); free(rh); free(rw);
        free_llm(&p);
    }
}

/* Fused against unfused: the logits materialised (double product rounded to float), then
 * era_llm_logprob_forward_f32 / _backward_f32, and the backward's dz multiplied out. */
static void test_llm_fused_vs_unfused(void) {
    llm_problem p = make_llm(37, 64, 5000, 1);
    int64_t n = p.t * p.v;
    double *zd = xmalloc(sizeof(double) * (size_t)n);
    float *z = xmalloc(sizeof(float) * (size_t)n), *dz = xmalloc(sizeof(float) * (size_t)n);
    ref_linear(p.t, p.d, p.v, p.h, p.w, NULL, zd);
    for (int64_t i = 0; i < n; i++) z[i] = (float)zd[i];
    float lf[37] = {0}, hf[37] = {0}, lu[37] = {0}, hu[37] = {0};
    int ok = era_llm_linear_logprob_forward_f32(p.t, p.d, p.v, p.h, p.w, p.labels, p.scale, lf, hf) == ERA_OK &&
             era_llm_logprob_forward_f32(p.t, p.v, z, p.labels, p.scale, lu, hu) == ERA_OK;
    double el = 0, eh = 0;
    for (int64_t t = 0; t < p.t; t++) {
        el = fmax(el, value_error(lf[t], lu[t]));
        eh = fmax(eh, value_error(hf[t], hu[t]));
    }
    printf("# fused vs unfused forward (T=37 d=64 V=5000): logp %.1e, entropy %.1e\n", el, eh);
    report(ok && el <= TOL_VALUE && eh <= TOL_VALUE, "linear logprob forward equals era_llm_logprob_forward_f32 on the logits");

    int64_t nh = p.t * p.d, nw = p.v * p.d;
    float *gh = xmalloc(sizeof(float) * (size_t)nh), *gw = xmalloc(sizeof(float) * (size_t)nw);
    double *uh = xmalloc(sizeof(double) * (size_t)nh), *uw = xmalloc(sizeof(double) * (size_t)nw);
    ok = era_llm_linear_logprob_backward_f32(p.t, p.d, p.v, p.h, p.w, p.labels, p.scale, p.g, gh, gw) == ERA_OK &&
         era_llm_logprob_backward_f32(p.t, p.v, z, p.labels, p.scale, p.g, dz) == ERA_OK;
    memset(uh, 0, sizeof(double) * (size_t)nh);
    memset(uw, 0, sizeof(double) * (size_t)nw);
    for (int64_t t = 0; t < p.t; t++)
        for (int64_t i = 0; i < p.v; i++)
            for (int64_t j = 0; j < p.d; j++) {
                uh[t * p.d + j] += (double)dz[t * p.v + i] * (double)p.w[i * p.d + j];
                uw[i * p.d + j] += (double)dz[t * p.v + i] * (double)p.h[t * p.d + j];
            }
    double e1 = array_error(gh, uh, nh), e2 = array_error(gw, uw, nw);
    printf("# fused vs unfused backward: grad hidden %.1e, grad weight %.1e\n", e1, e2);
    report(ok && e1 <= TOL_GRAD && e2 <= TOL_GRAD,
           "linear logprob backward equals era_llm_logprob_backward_f32's dz multiplied out");
    free(zd); free(z); free(dz); free(gh); free(gw); free(uh); free(uw);
    free_llm(&p);
}

/* Central differences of the float64 objective sum_t g_t logp_t against the float64
 * reference gradient (checks the formula) and against libera's gradient. */
static void test_llm_finite_differences(void) {
    llm_problem p = make_llm(3, 5, 11, 1);
    int64_t nh = p.t * p.d, nw = p.v * p.d;
    double *h = xmalloc(sizeof(double) * (size_t)nh), *w = xmalloc(sizeof(double) * (size_t)nw);
    double *rh = xmalloc(sizeof(double) * (size_t)nh), *rw = xmalloc(sizeof(double) * (size_t)nw);
    float *gh = xmalloc(sizeof(float) * (size_t)nh), *gw = xmalloc(sizeof(float) * (size_t)nw);
    for (int64_t i = 0; i < nh; i++) h[i] = p.h[i];
    for (int64_t i = 0; i < nw; i++) w[i] = p.w[i];
    ref_llm_backward(&p, rh, rw);
    int ok = era_llm_linear_logprob_backward_f32(p.t, p.d, p.v, p.h, p.w, p.labels, p.scale, p.g, gh, gw) == ERA_OK;
    const double step = 1e-6;
    double worst_ref = 0, worst_lib = 0, scale = 0;
    for (int64_t i = 0; i < nh + nw; i++) {
        double *x = i < nh ? &h[i] : &w[i - nh], keep = *x;
        *x = keep + step; double up = ref_llm_objective(&p, h, w);
        *x = keep - step; double down = ref_llm_objective(&p, h, w);
        *x = keep;
        double fd = (up - down) / (2 * step), ref = i < nh ? rh[i] : rw[i - nh], lib = i < nh ? gh[i] : gw[i - nh];
        worst_ref = fmax(worst_ref, fabs(fd - ref));
        worst_lib = fmax(worst_lib, fabs(fd - lib));
        scale = fmax(scale, fabs(fd));
    }
    printf("# linear logprob gradients vs central differences (every coordinate, T=3 d=5 V=11): "
           "reference %.1e, libera %.1e (relative to the largest gradient)\n", worst_ref / scale, worst_lib / scale);
    report(ok && worst_ref <= 1e-8 * scale && worst_lib <= TOL_GRAD * scale,
           "linear logprob gradients match central differences (reference and libera)");
    free(h); free(w); free(rh); free(rw); free(gh); free(gw);
    free_llm(&p);
}

static void test_llm_edges(void) {
    /* tokens == 0: nothing to read but the weight; the backward writes a zero weight gradient. */
    float w[6] = {1, 2, 3, 4, 5, 6}, gw[6];
    fill(gw, 6, 7.0f);
    int ok = era_llm_linear_logprob_forward_f32(0, 2, 3, NULL, w, NULL, NULL, NULL, NULL) == ERA_OK &&
             era_llm_linear_logprob_backward_f32(0, 2, 3, NULL, w, NULL, NULL, NULL, NULL, gw) == ERA_OK &&
             all_equal_to(gw, 6, 0.0f) &&
             era_llm_linear_logprob_backward_f32(0, 2, 3, NULL, w, NULL, NULL, NULL, NULL, NULL) == ERA_OK;
    report(ok, "tokens = 0: OK with NULL token arrays; the weight gradient is zero");

    /* vocab == 1: log-probability 0, entropy 0, gradients 0. */
    float h[3] = {0.5f, -1, 2}, w1[3] = {1, 1, 1}, logp = -1, ent = -1, g = 1.5f, gh[3], gw1[3];
    int64_t label = 0;
    ok = era_llm_linear_logprob_forward_f32(1, 3, 1, h, w1, &label, NULL, &logp, &ent) == ERA_OK && logp == 0 &&
         ent == 0 &&
         era_llm_linear_logprob_backward_f32(1, 3, 1, h, w1, &label, NULL, &g, gh, gw1) == ERA_OK &&
         all_equal_to(gh, 3, 0.0f) && all_equal_to(gw1, 3, 0.0f);
    report(ok, "vocab = 1: log-probability 0, entropy 0, zero gradients");

    /* Two tied logits: logp = -log 2, entropy = log 2. */
    float h2[2] = {1, 2}, w2[4] = {3, 1, 1, 2};
    int64_t labels2 = 1;
    ok = era_llm_linear_logprob_forward_f32(1, 2, 2, h2, w2, &labels2, NULL, &logp, &ent) == ERA_OK &&
         fabs(logp + log(2.0)) < 1e-7 && fabs(ent - log(2.0)) < 1e-7;
    report(ok, "tied logits: log-probability -log 2, entropy log 2");

    /* Two logits of 1e30 in different chunks and groups (entries 5 and 4500 of 4600), the
     * rest -1e30: the statistics merged across chunks give -log 2 and log 2. */
    enum { VB = 4600 };
    float one_h = 1.0f, *wb = xmalloc(sizeof(float) * VB), gb[VB], g1 = 1.0f;
    for (int v = 0; v < VB; v++) wb[v] = (v == 5 || v == 4500) ? 1e30f : -1e30f;
    int64_t labels_b[2] = {4500, 7};
    float one_hh[2] = {1.0f, 1.0f}, lb[2], eb[2];
    ok = era_llm_linear_logprob_forward_f32(2, 1, VB, one_hh, wb, labels_b, NULL, lb, eb) == ERA_OK &&
         fabs(lb[0] + log(2.0)) < 1e-7 && fabs(eb[0] - log(2.0)) < 1e-7 && lb[1] < -1e30f &&
         era_llm_linear_logprob_backward_f32(1, 1, VB, &one_h, wb, labels_b, NULL, &g1, NULL, gb) == ERA_OK &&
         gb[4500] == 0.5f && gb[5] == -0.5f && gb[7] == 0.0f;
    report(ok, "logits of 1e30 tied across chunks: -log 2, entropy log 2, gradient +-1/2");
    free(wb);
}

/* ---- LLM head: errors leave every output untouched ------------------------------------- */

#define SENTINEL 12345.0f

static void test_llm_errors(void) {
    enum { T = 3, D = 4, V = 5 };
    float h[T * D], w[V * D], scale[T] = {1, 2, 1}, g[T] = {1, -1, 0.5f};
    int64_t labels[T] = {0, 4, 2};
    for (int i = 0; i < T * D; i++) h[i] = (float)normal();
    for (int i = 0; i < V * D; i++) w[i] = (float)normal();
    float lp[T], en[T], gh[T * D], gw[V * D];
#define RESET() (fill(lp, T, SENTINEL), fill(en, T, SENTINEL), fill(gh, T * D, SENTINEL), fill(gw, V * D, SENTINEL))
#define UNTOUCHED() (all_equal_to(lp, T, SENTINEL) && all_equal_to(en, T, SENTINEL) && \
                     all_equal_to(gh, T * D, SENTINEL) && all_equal_to(gw, V * D, SENTINEL))
#define FWD(tok, dim, voc, hh, ww, ll, ss) era_llm_linear_logprob_forward_f32(tok, dim, voc, hh, ww, ll, ss, lp, en)
#define BWD(tok, dim, voc, hh, ww, ll, ss, gg) era_llm_linear_logprob_backward_f32(tok, dim, voc, hh, ww, ll, ss, gg, gh, gw)
    struct { const char *name; int status, expected; } cases[64];
    int n = 0;
#define CASE(label, call, want) do { RESET(); int s_ = (call); cases[n].name = label; \
        cases[n].status = s_ == (want) && UNTOUCHED(); cases[n].expected = want; n++; } while (0)

    CASE("forward hidden NULL", FWD(T, D, V, NULL, w, labels, scale), ERA_ERR_NULL_POINTER);
    CASE("forward weight NULL", FWD(T, D, V, h, NULL, labels, scale), ERA_ERR_NULL_POINTER);
    CASE("forward labels NULL", FWD(T, D, V, h, w, NULL, scale), ERA_ERR_NULL_POINTER);
    CASE("forward out_logprob NULL",
         era_llm_linear_logprob_forward_f32(T, D, V, h, w, labels, scale, NULL, en), ERA_ERR_NULL_POINTER);
    CASE("backward grad_logprob NULL", BWD(T, D, V, h, w, labels, scale, NULL), ERA_ERR_NULL_POINTER);
    CASE("forward tokens < 0", FWD(-1, D, V, h, w, labels, scale), ERA_ERR_BAD_SHAPE);
    CASE("forward dim 0", FWD(T, 0, V, h, w, labels, scale), ERA_ERR_BAD_SHAPE);
    CASE("forward vocab 0", FWD(T, D, 0, h, w, labels, scale), ERA_ERR_BAD_SHAPE);
    CASE("forward dim above INT32_MAX", FWD(0, (int64_t)1 << 31, 1, h, w, labels, scale), ERA_ERR_BAD_SHAPE);
    CASE("forward tokens*dim overflows", FWD((int64_t)1 << 62, 4, V, h, w, labels, scale), ERA_ERR_BAD_SHAPE);
    CASE("backward vocab*dim overflows", BWD(T, (int64_t)1 << 31, (int64_t)1 << 40, h, w, labels, scale, g),
         ERA_ERR_BAD_SHAPE);
    int64_t bad_low[T] = {0, -1, 2}, bad_high[T] = {0, 1, V};
    CASE("forward label -1", FWD(T, D, V, h, w, bad_low, scale), ERA_ERR_BAD_INDEX);
    CASE("forward label == vocab (last token)", FWD(T, D, V, h, w, bad_high, scale), ERA_ERR_BAD_INDEX);
    CASE("backward label == vocab", BWD(T, D, V, h, w, bad_high, scale, g), ERA_ERR_BAD_INDEX);
    float scale_zero[T] = {1, 1, 0}, scale_neg[T] = {1, -2, 1}, scale_nan[T] = {1, 1, NAN}, scale_inf[T] = {INFINITY, 1, 1};
    CASE("forward scale 0", FWD(T, D, V, h, w, labels, scale_zero), ERA_ERR_BAD_PARAMETER);
    CASE("forward scale < 0", FWD(T, D, V, h, w, labels, scale_neg), ERA_ERR_BAD_PARAMETER);
    CASE("forward scale NaN", FWD(T, D, V, h, w, labels, scale_nan), ERA_ERR_NON_FINITE);
    CASE("backward scale inf", BWD(T, D, V, h, w, labels, scale_inf, g), ERA_ERR_NON_FINITE);

    /* Non-finite inputs: NaN in the last hidden value, +inf / -inf in the last weight. */
    float hn[T * D], wn[V * D];
    memcpy(hn, h, sizeof h); memcpy(wn, w, sizeof w);
    hn[T * D - 1] = NAN;
    CASE("forward NaN in hidden (last value)", FWD(T, D, V, hn, w, labels, scale), ERA_ERR_NON_FINITE);
    CASE("backward NaN in hidden", BWD(T, D, V, hn, w, labels, scale, g), ERA_ERR_NON_FINITE);
    wn[V * D - 1] = INFINITY;
    CASE("forward +inf in weight (last value)", FWD(T, D, V, h, wn, labels, scale), ERA_ERR_NON_FINITE);
    wn[V * D - 1] = -INFINITY;
    CASE("backward -inf in weight", BWD(T, D, V, h, wn, labels, scale, g), ERA_ERR_NON_FINITE);
    CASE("forward tokens 0, -inf in weight (always scanned)", FWD(0, D, V, NULL, wn, NULL, NULL), ERA_ERR_NON_FINITE);
    CASE("backward tokens 0, -inf in weight", BWD(0, D, V, NULL, wn, NULL, NULL, NULL), ERA_ERR_NON_FINITE);

    /* Finite inputs whose product overflows float32: +inf and -inf logits (no masks here). */
    float hbig[T * D], wbig[V * D];
    memcpy(hbig, h, sizeof h); memcpy(wbig, w, sizeof w);
    for (int j = 0; j < D; j++) { hbig[(T - 1) * D + j] = 1e20f; wbig[2 * D + j] = 1e20f; }
    CASE("forward logit overflows to +inf (last token)", FWD(T, D, V, hbig, wbig, labels, scale), ERA_ERR_NON_FINITE);
    for (int j = 0; j < D; j++) wbig[2 * D + j] = -1e20f;
    CASE("forward logit overflows to -inf", FWD(T, D, V, hbig, wbig, labels, scale), ERA_ERR_NON_FINITE);
    CASE("backward logit overflows to -inf", BWD(T, D, V, hbig, wbig, labels, scale, g), ERA_ERR_NON_FINITE);

    /* A scale so large that a log-probability overflows float32. */
    float scale_huge[T] = {1, 1, 1e38f};
    int64_t low_label[T] = {0, 4, 0};
    float hs[T * D], ws[V * D];
    memset(hs, 0, sizeof hs); memset(ws, 0, sizeof ws);
    for (int t = 0; t < T; t++) hs[t * D] = 1;
    for (int v = 0; v < V; v++) ws[v * D] = (float)v; /* z_t = (0, 1, 2, 3, 4) */
    CASE("forward log-probability overflows float32", FWD(T, D, V, hs, ws, low_label, scale_huge), ERA_ERR_BAD_PARAMETER);
    float ok_lp[T];
    int fine = era_llm_linear_logprob_backward_f32(T, D, V, hs, ws, low_label, scale_huge, g, NULL, gw) == ERA_OK &&
               era_llm_linear_logprob_forward_f32(T, D, V, hs, ws, low_label, NULL, ok_lp, NULL) == ERA_OK;

    /* Gradient bounds: g*s overflowing float32; a hidden gradient that could overflow. */
    float g_nan[T] = {1, NAN, 1}, g_big[T] = {1, 1, 3e38f}, g_large[T] = {1, 1, 1e37f};
    CASE("backward NaN grad_logprob", BWD(T, D, V, h, w, labels, scale, g_nan), ERA_ERR_NON_FINITE);
    float scale_two[T] = {1, 1, 2};
    CASE("backward g*s overflows float32", BWD(T, D, V, h, w, labels, scale_two, g_big), ERA_ERR_BAD_PARAMETER);
    float w100[V * D];
    for (int i = 0; i < V * D; i++) w100[i] = 100.0f * w[i] / (fabsf(w[i]) + 1.0f) + 50.0f;
    CASE("backward hidden gradient bound above FLT_MAX/4", BWD(T, D, V, h, w100, labels, scale, g_large),
         ERA_ERR_BAD_PARAMETER);
    RESET();
    int only_weight = era_llm_linear_logprob_backward_f32(T, D, V, h, w100, labels, scale, g_large, NULL, gw) == ERA_OK;

    int all = 1;
    for (int i = 0; i < n; i++) {
        if (!cases[i].status) { printf("# failed: %s\n", cases[i].name); all = 0; }
    }
    char name[120];
    snprintf(name, sizeof name, "linear logprob errors: %d cases, each its status with every output untouched", n);
    report(all, name);
    report(fine && only_weight,
           "the same inputs pass where the bound does not apply (weight gradient alone; forward at scale 1)");
#undef RESET
#undef UNTOUCHED
#undef FWD
#undef BWD
#undef CASE
}

/* ---- LLM head: thread settings and concurrent calls ------------------------------------ */

typedef struct {
    const llm_problem *p;
    float *logp, *entropy, *gh, *gw;
    int status;
} llm_job;

static void run_llm(llm_job *j) {
    const llm_problem *p = j->p;
    int a = era_llm_linear_logprob_forward_f32(p->t, p->d, p->v, p->h, p->w, p->labels, p->scale, j->logp, j->entropy);
    int b = era_llm_linear_logprob_backward_f32(p->t, p->d, p->v, p->h, p->w, p->labels, p->scale, p->g, j->gh, j->gw);
    j->status = a == ERA_OK && b == ERA_OK;
}

static void *run_llm_thread(void *arg) { run_llm(arg); return NULL; }

static llm_job make_job(const llm_problem *p) {
    llm_job j = {p, xmalloc(sizeof(float) * (size_t)p->t), xmalloc(sizeof(float) * (size_t)p->t),
                 xmalloc(sizeof(float) * (size_t)(p->t * p->d)), xmalloc(sizeof(float) * (size_t)(p->v * p->d)), 0};
    return j;
}

static int same_results(const llm_job *a, const llm_job *b) {
    const llm_problem *p = a->p;
    return a->status && b->status && memcmp(a->logp, b->logp, sizeof(float) * (size_t)p->t) == 0 &&
           memcmp(a->entropy, b->entropy, sizeof(float) * (size_t)p->t) == 0 &&
           memcmp(a->gh, b->gh, sizeof(float) * (size_t)(p->t * p->d)) == 0 &&
           memcmp(a->gw, b->gw, sizeof(float) * (size_t)(p->v * p->d)) == 0;
}

static void free_job(llm_job *j) { free(j->logp); free(j->entropy); free(j->gh); free(j->gw); }

static void test_llm_threads(void) {
    /* 3 token blocks x 17 chunks (16 groups). */
    llm_problem p = make_llm(300, 24, 34819, 1);
    llm_job serial = make_job(&p);
    era_set_num_threads(1);
    run_llm(&serial);
    int ok = serial.status;
    const int settings[] = {2, 3, 7, 0};
    for (int k = 0; k < 4; k++) {
        llm_job other = make_job(&p);
        era_set_num_threads(settings[k]);
        run_llm(&other);
        ok = ok && same_results(&serial, &other);
        free_job(&other);
    }
    report(ok, "linear logprob forward and backward bit-identical for thread settings 1, 2, 3, 7 and the default");

    /* Three calls at once from threads of the caller's. */
    llm_job jobs[3];
    pthread_t threads[3];
    for (int k = 0; k < 3; k++) {
        jobs[k] = make_job(&p);
        pthread_create(&threads[k], NULL, run_llm_thread, &jobs[k]);
    }
    ok = 1;
    for (int k = 0; k < 3; k++) {
        pthread_join(threads[k], NULL);
        ok = ok && same_results(&serial, &jobs[k]);
        free_job(&jobs[k]);
    }
    report(ok, "three concurrent linear logprob calls give the serial results bit for bit");
    free_job(&serial);
    free_llm(&p);
}

/* ---- linear + discrete ERA + cross-entropy --------------------------------------------- */

typedef struct {
    int64_t rows, dim, classes;
    float *x, *w, *b;
    int64_t *labels;
} ce_problem;

static ce_problem make_ce(int64_t rows, int64_t dim, int64_t classes, int with_bias, double spread) {
    ce_problem p = {rows, dim, classes, NULL, NULL, NULL, NULL};
    p.x = xmalloc(sizeof(float) * (size_t)(rows * dim));
    p.w = xmalloc(sizeof(float) * (size_t)(classes * dim));
    p.b = with_bias ? xmalloc(sizeof(float) * (size_t)classes) : NULL;
    p.labels = xmalloc(sizeof(int64_t) * (size_t)rows);
    for (int64_t i = 0; i < rows * dim; i++) p.x[i] = (float)normal();
    for (int64_t i = 0; i < classes * dim; i++) p.w[i] = (float)(spread / sqrt((double)dim) * normal());
    for (int64_t i = 0; with_bias && i < classes; i++) p.b[i] = (float)(0.5 * normal());
    for (int64_t r = 0; r < rows; r++) p.labels[r] = (int64_t)(uniform() * (double)classes) % classes;
    return p;
}

static void free_ce(ce_problem *p) { free(p->x); free(p->w); free(p->b); free(p->labels); }

/* Reference head: loss and the gradients (double): logits in double, the discrete ERA rows
 * and their backward from era_reference.h, cross-entropy plainly. x, w and b are taken in
 * double so that the same code serves the finite differences. */
static double ref_ce(const era_discrete_params *prm, const ce_problem *p, const double *x, const double *w,
                     const double *b, double *gx, double *gw, double *gb) {
    int64_t n = p->rows, d = p->dim, k = p->classes;
    double c = ref_discrete_constant(prm->target_entropy, k, prm->tau, prm->mode);
    double *z = xmalloc(sizeof(double) * (size_t)k), *pr = xmalloc(sizeof(double) * (size_t)k);
    double *y = xmalloc(sizeof(double) * (size_t)k), *t = xmalloc(sizeof(double) * (size_t)k);
    double *q = xmalloc(sizeof(double) * (size_t)k), *g = xmalloc(sizeof(double) * (size_t)k);
    double *gz = xmalloc(sizeof(double) * (size_t)k);
    double loss = 0;
    if (gx) memset(gx, 0, sizeof(double) * (size_t)(n * d));
    if (gw) memset(gw, 0, sizeof(double) * (size_t)(k * d));
    if (gb) memset(gb, 0, sizeof(double) * (size_t)k);
    for (int64_t r = 0; r < n; r++) {
        for (int64_t o = 0; o < k; o++) {
            double sum = b ? b[o] : 0.0;
            for (int64_t j = 0; j < d; j++) sum += x[r * d + j] * w[o * d + j];
            z[o] = sum;
        }
        ref_discrete_row(z, k, c, prm->tau, prm->mode, pr, y, t);
        /* cross-entropy at the ERA logits t, and its gradient (softmax(t) - onehot) / rows */
        double m = ref_row_max(t, k), s = 0;
        for (int64_t o = 0; o < k; o++) s += exp(t[o] - m);
        loss += (m + log(s)) - t[p->labels[r]];
        if (!gx && !gw && !gb) continue;
        ref_softmax(t, k, q);
        for (int64_t o = 0; o < k; o++) g[o] = (q[o] - (o == p->labels[r] ? 1.0 : 0.0)) / (double)n;
        ref_discrete_backward_row(z, g, k, c, prm->tau, prm->mode, pr, y, t, gz);
        for (int64_t o = 0; o < k; o++) {
            if (gb) gb[o] += gz[o];
            for (int64_t j = 0; j < d; j++) {
                if (gx) gx[r * d + j] += gz[o] * w[o * d + j];
                if (gw) gw[o * d + j] += gz[o] * x[r * d + j];
            }
        }
    }
    free(z); free(pr); free(y); free(t); free(q); free(g); free(gz);
    return loss / (double)n;
}

static double *to_double(const float *x, int64_t n) {
    double *out = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) out[i] = x[i];
    return out;
}

static const int64_t ce_shapes[][3] = {{1, 1, 2}, {7, 5, 10}, {9, 64, 1000}, {130, 19, 37}};
#define CE_SHAPES (int)(sizeof ce_shapes / sizeof ce_shapes[0])

static void test_ce_reference(void) {
    double worst_loss = 0, worst_grad = 0;
    int all = 1;
    for (int mode = 0; mode <= 2; mode++) {
        for (int k = 0; k < CE_SHAPES; k++) {
            ce_problem p = make_ce(ce_shapes[k][0], ce_shapes[k][1], ce_shapes[k][2], k % 2 == 0, 3.0);
            era_discrete_params prm;
            era_discrete_params_init(&prm);
            prm.mode = mode;
            double lo = 1 + log(log(4.0) / 4.0), hi = 1 + log((double)p.classes * log(4.0) / 4.0);
            prm.target_entropy = mode == ERA_DISCRETE_TIGHT ? 0.6 * log((double)p.classes) : lo + 0.5 * (hi - lo);
            int64_t nx = p.rows * p.dim, nw = p.classes * p.dim;
            float loss = -1, *gx = xmalloc(sizeof(float) * (size_t)nx), *gw = xmalloc(sizeof(float) * (size_t)nw);
            float *gb = xmalloc(sizeof(float) * (size_t)p.classes);
            int ok = era_linear_discrete_ce_f32(&prm, p.rows, p.dim, p.classes, p.x, p.w, p.b, p.labels, &loss, gx, gw,
                                                gb) == ERA_OK;
            double *x = to_double(p.x, nx), *w = to_double(p.w, nw), *b = p.b ? to_double(p.b, p.classes) : NULL;
            double *rx = xmalloc(sizeof(double) * (size_t)nx), *rw = xmalloc(sizeof(double) * (size_t)nw);
            double *rb = xmalloc(sizeof(double) * (size_t)p.classes);
            double rl = ref_ce(&prm, &p, x, w, b, rx, rw, rb);
            double el = value_error(loss, rl);
            double eg = fmax(fmax(array_error(gx, rx, nx), array_error(gw, rw, nw)), array_error(gb, rb, p.classes));
            worst_loss = fmax(worst_loss, el);
            worst_grad = fmax(worst_grad, eg);
            if (!(ok && el <= TOL_VALUE && eg <= 1e-4)) {
                printf("# failed: mode %d rows %lld dim %lld classes %lld: loss err %.1e grad err %.1e\n", mode,
                       (long long)p.rows, (long long)p.dim, (long long)p.classes, el, eg);
                all = 0;
            }
            free(gx); free(gw); free(gb); free(x); free(w); free(b); free(rx); free(rw); free(rb);
            free_ce(&p);
        }
    }
    printf("# linear discrete CE vs float64 reference (3 modes x %d shapes): loss %.1e, gradients %.1e\n", CE_SHAPES,
           worst_loss, worst_grad);
    report(all, "linear discrete CE: loss and gradients against the float64 reference, every mode, with/without bias");
}

/* The same head composed from the unfused entry points: float logits, era_discrete_forward_f32,
 * cross-entropy, era_discrete_backward_f32, gradients multiplied out in double. */
static void test_ce_unfused(void) {
    ce_problem p = make_ce(40, 32, 100, 1, 3.0);
    era_discrete_params prm;
    era_discrete_params_init(&prm);
    prm.target_entropy = 1.5;
    int64_t n = p.rows * p.classes, nx = p.rows * p.dim, nw = p.classes * p.dim;
    double *zd = xmalloc(sizeof(double) * (size_t)n);
    float *z = xmalloc(sizeof(float) * (size_t)n), *t = xmalloc(sizeof(float) * (size_t)n);
    float *g = xmalloc(sizeof(float) * (size_t)n), *dz = xmalloc(sizeof(float) * (size_t)n);
    ref_linear(p.rows, p.dim, p.classes, p.x, p.w, p.b, zd);
    for (int64_t i = 0; i < n; i++) z[i] = (float)zd[i];
    int ok = era_discrete_forward_f32(&prm, p.rows, p.classes, z, t) == ERA_OK;
    double loss = 0;
    for (int64_t r = 0; r < p.rows; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t o = 0; o < p.classes; o++) m = fmax(m, t[r * p.classes + o]);
        for (int64_t o = 0; o < p.classes; o++) s += exp(t[r * p.classes + o] - m);
        loss += m + log(s) - t[r * p.classes + p.labels[r]];
        for (int64_t o = 0; o < p.classes; o++)
            g[r * p.classes + o] =
                (float)((exp(t[r * p.classes + o] - m) / s - (o == p.labels[r] ? 1.0 : 0.0)) / (double)p.rows);
    }
    loss /= (double)p.rows;
    ok = ok && era_discrete_backward_f32(&prm, p.rows, p.classes, z, g, dz) == ERA_OK;
    double *ux = xmalloc(sizeof(double) * (size_t)nx), *uw = xmalloc(sizeof(double) * (size_t)nw);
    double ub[100] = {0};
    memset(ux, 0, sizeof(double) * (size_t)nx);
    memset(uw, 0, sizeof(double) * (size_t)nw);
    for (int64_t r = 0; r < p.rows; r++)
        for (int64_t o = 0; o < p.classes; o++) {
            double v = dz[r * p.classes + o];
            ub[o] += v;
            for (int64_t j = 0; j < p.dim; j++) {
                ux[r * p.dim + j] += v * p.w[o * p.dim + j];
                uw[o * p.dim + j] += v * p.x[r * p.dim + j];
            }
        }
    float fl = 0, *gx = xmalloc(sizeof(float) * (size_t)nx), *gw = xmalloc(sizeof(float) * (size_t)nw), gb[100];
    ok = ok && era_linear_discrete_ce_f32(&prm, p.rows, p.dim, p.classes, p.x, p.w, p.b, p.labels, &fl, gx, gw, gb) ==
                   ERA_OK;
    double el = value_error(fl, loss);
    double eg = fmax(fmax(array_error(gx, ux, nx), array_error(gw, uw, nw)), array_error(gb, ub, p.classes));
    printf("# linear discrete CE vs the unfused entry points: loss %.1e, gradients %.1e\n", el, eg);
    report(ok && el <= TOL_VALUE && eg <= 1e-4,
           "linear discrete CE equals era_discrete_forward_f32 + CE + era_discrete_backward_f32");
    free(zd); free(z); free(t); free(g); free(dz); free(ux); free(uw); free(gx); free(gw);
    free_ce(&p);
}

static void test_ce_finite_differences(void) {
    ce_problem p = make_ce(4, 3, 6, 1, 3.0);
    era_discrete_params prm;
    era_discrete_params_init(&prm);
    prm.target_entropy = 1.2;
    int64_t nx = p.rows * p.dim, nw = p.classes * p.dim, nb = p.classes;
    double *x = to_double(p.x, nx), *w = to_double(p.w, nw), *b = to_double(p.b, nb);
    double *rx = xmalloc(sizeof(double) * (size_t)nx), *rw = xmalloc(sizeof(double) * (size_t)nw);
    double *rb = xmalloc(sizeof(double) * (size_t)nb);
    float loss, *gx = xmalloc(sizeof(float) * (size_t)nx), *gw = xmalloc(sizeof(float) * (size_t)nw);
    float *gb = xmalloc(sizeof(float) * (size_t)nb);
    ref_ce(&prm, &p, x, w, b, rx, rw, rb);
    int ok = era_linear_discrete_ce_f32(&prm, p.rows, p.dim, p.classes, p.x, p.w, p.b, p.labels, &loss, gx, gw, gb) ==
             ERA_OK;
    const double step = 1e-6;
    double worst_ref = 0, worst_lib = 0, scale = 0;
    for (int64_t i = 0; i < nx + nw + nb; i++) {
        double *v = i < nx ? &x[i] : i < nx + nw ? &w[i - nx] : &b[i - nx - nw], keep = *v;
        *v = keep + step; double up = ref_ce(&prm, &p, x, w, b, NULL, NULL, NULL);
        *v = keep - step; double down = ref_ce(&prm, &p, x, w, b, NULL, NULL, NULL);
        *v = keep;
        double fd = (up - down) / (2 * step);
        double ref = i < nx ? rx[i] : i < nx + nw ? rw[i - nx] : rb[i - nx - nw];
        double lib = i < nx ? gx[i] : i < nx + nw ? gw[i - nx] : gb[i - nx - nw];
        worst_ref = fmax(worst_ref, fabs(fd - ref));
        worst_lib = fmax(worst_lib, fabs(fd - lib));
        scale = fmax(scale, fabs(fd));
    }
    printf("# linear discrete CE gradients vs central differences (every coordinate): reference %.1e, libera %.1e "
           "(relative to the largest gradient)\n", worst_ref / scale, worst_lib / scale);
    report(ok && worst_ref <= 1e-7 * scale && worst_lib <= 1e-4 * scale,
           "linear discrete CE gradients match central differences (reference and libera)");
    free(x); free(w); free(b); free(rx); free(rw); free(rb); free(gx); free(gw); free(gb);
    free_ce(&p);
}

static void test_ce_outputs_and_threads(void) {
    ce_problem p = make_ce(300, 40, 257, 1, 3.0);
    era_discrete_params prm;
    era_discrete_params_init(&prm);
    prm.target_entropy = 2.0;
    int64_t nx = p.rows * p.dim, nw = p.classes * p.dim;
    float l1, l2, l3, l4, l5;
    float *gx = xmalloc(sizeof(float) * (size_t)nx), *gw = xmalloc(sizeof(float) * (size_t)nw);
    float *gb = xmalloc(sizeof(float) * (size_t)p.classes);
    float *gx2 = xmalloc(sizeof(float) * (size_t)nx), *gw2 = xmalloc(sizeof(float) * (size_t)nw);
    float *gb2 = xmalloc(sizeof(float) * (size_t)p.classes);
    era_set_num_threads(1);
    int ok = era_linear_discrete_ce_f32(&prm, p.rows, p.dim, p.classes, p.x, p.w, p.b, p.labels, &l1, gx, gw, gb) == ERA_OK &&
             era_linear_discrete_ce_f32(&prm, p.rows, p.dim, p.classes, p.x, p.w, p.b, p.labels, &l2, NULL, NULL, NULL) == ERA_OK &&
             era_linear_discrete_ce_f32(&prm, p.rows, p.dim, p.classes, p.x, p.w, p.b, p.labels, &l3, gx2, NULL, NULL) == ERA_OK &&
             era_linear_discrete_ce_f32(&prm, p.rows, p.dim, p.classes, p.x, p.w, p.b, p.labels, &l4, NULL, gw2, gb2) == ERA_OK &&
             l1 == l2 && l1 == l3 && l1 == l4 && memcmp(gx, gx2, sizeof(float) * (size_t)nx) == 0 &&
             memcmp(gw, gw2, sizeof(float) * (size_t)nw) == 0 && memcmp(gb, gb2, sizeof(float) * (size_t)p.classes) == 0;
    report(ok, "linear discrete CE: NULL gradient outputs are skipped, the others bit-identical");
    ok = 1;
    const int settings[] = {2, 3, 0};
    for (int k = 0; k < 3; k++) {
        era_set_num_threads(settings[k]);
        ok = ok && era_linear_discrete_ce_f32(&prm, p.rows, p.dim, p.classes, p.x, p.w, p.b, p.labels, &l5, gx2, gw2, gb2) == ERA_OK &&
             l5 == l1 && memcmp(gx, gx2, sizeof(float) * (size_t)nx) == 0 &&
             memcmp(gw, gw2, sizeof(float) * (size_t)nw) == 0 && memcmp(gb, gb2, sizeof(float) * (size_t)p.classes) == 0;
    }
    report(ok, "linear discrete CE bit-identical for thread settings 1, 2, 3 and the default");
    free(gx); free(gw); free(gb); free(gx2); free(gw2); free(gb2);
    free_ce(&p);
}

static void test_ce_errors(void) {
    enum { R = 3, D = 4, K = 5 };
    float x[R * D], w[K * D], b[K];
    int64_t labels[R] = {0, 4, 2};
    for (int i = 0; i < R * D; i++) x[i] = (float)normal();
    for (int i = 0; i < K * D; i++) w[i] = (float)normal();
    for (int i = 0; i < K; i++) b[i] = (float)normal();
    era_discrete_params prm, unset, infeasible, bad_mode;
    era_discrete_params_init(&prm);
    prm.target_entropy = 1.0;
    era_discrete_params_init(&unset);
    infeasible = prm; infeasible.target_entropy = 5.0;
    bad_mode = prm; bad_mode.mode = 9;
    float loss, gx[R * D], gw[K * D], gb[K];
#define RESET() (fill(&loss, 1, SENTINEL), fill(gx, R * D, SENTINEL), fill(gw, K * D, SENTINEL), fill(gb, K, SENTINEL))
#define UNTOUCHED() (all_equal_to(&loss, 1, SENTINEL) && all_equal_to(gx, R * D, SENTINEL) && \
                     all_equal_to(gw, K * D, SENTINEL) && all_equal_to(gb, K, SENTINEL))
#define CE(pp, rows, dim, cls, xx, ww, bb, ll) era_linear_discrete_ce_f32(pp, rows, dim, cls, xx, ww, bb, ll, &loss, gx, gw, gb)
    struct { const char *name; int ok; } cases[40];
    int n = 0;
#define CASE(label, call, want) do { RESET(); int s_ = (call); cases[n].name = label; \
        cases[n].ok = s_ == (want) && UNTOUCHED(); n++; } while (0)
    CASE("params NULL", CE(NULL, R, D, K, x, w, b, labels), ERA_ERR_NULL_POINTER);
    CASE("target unset", CE(&unset, R, D, K, x, w, b, labels), ERA_ERR_BAD_PARAMETER);
    CASE("unknown mode", CE(&bad_mode, R, D, K, x, w, b, labels), ERA_ERR_BAD_PARAMETER);
    CASE("infeasible target", CE(&infeasible, R, D, K, x, w, b, labels), ERA_ERR_INFEASIBLE_TARGET);
    CASE("classes 1", CE(&prm, R, D, 1, x, w, b, labels), ERA_ERR_BAD_SHAPE);
    CASE("rows 0", CE(&prm, 0, D, K, x, w, b, labels), ERA_ERR_BAD_SHAPE);
    CASE("rows < 0", CE(&prm, -2, D, K, x, w, b, labels), ERA_ERR_BAD_SHAPE);
    CASE("dim 0", CE(&prm, R, 0, K, x, w, b, labels), ERA_ERR_BAD_SHAPE);
    CASE("rows above INT32_MAX", CE(&prm, (int64_t)1 << 31, 1, K, x, w, b, labels), ERA_ERR_BAD_SHAPE);
    CASE("features NULL", CE(&prm, R, D, K, NULL, w, b, labels), ERA_ERR_NULL_POINTER);
    CASE("weight NULL", CE(&prm, R, D, K, x, NULL, b, labels), ERA_ERR_NULL_POINTER);
    CASE("labels NULL", CE(&prm, R, D, K, x, w, b, NULL), ERA_ERR_NULL_POINTER);
    CASE("out_loss NULL", era_linear_discrete_ce_f32(&prm, R, D, K, x, w, b, labels, NULL, gx, gw, gb),
         ERA_ERR_NULL_POINTER);
    int64_t bad_label[R] = {0, 1, K}, neg_label[R] = {-1, 1, 2};
    CASE("label == classes (last row)", CE(&prm, R, D, K, x, w, b, bad_label), ERA_ERR_BAD_INDEX);
    CASE("label -1", CE(&prm, R, D, K, x, w, b, neg_label), ERA_ERR_BAD_INDEX);
    float xn[R * D], wn[K * D], bn[K];
    memcpy(xn, x, sizeof x); memcpy(wn, w, sizeof w); memcpy(bn, b, sizeof b);
    xn[R * D - 1] = NAN;
    CASE("NaN in features (last value)", CE(&prm, R, D, K, xn, w, b, labels), ERA_ERR_NON_FINITE);
    wn[0] = -INFINITY;
    CASE("-inf in weight", CE(&prm, R, D, K, x, wn, b, labels), ERA_ERR_NON_FINITE);
    bn[K - 1] = INFINITY;
    CASE("+inf in bias", CE(&prm, R, D, K, x, w, bn, labels), ERA_ERR_NON_FINITE);
    float xbig[R * D], wbig[K * D];
    for (int i = 0; i < R * D; i++) xbig[i] = 1e20f;
    for (int i = 0; i < K * D; i++) wbig[i] = i < D ? 1e20f : 0.0f;
    CASE("logit overflows float32", CE(&prm, R, D, K, xbig, wbig, NULL, labels), ERA_ERR_NON_FINITE);
    /* A weight gradient that could overflow: features of 3e38 with zero weights (flat logits)
     * and H0 = 0, where the logit gradients sum to about 2 per row in magnitude. */
    era_discrete_params low = prm;
    low.target_entropy = 0.0;
    float xhuge[R * D], wzero[K * D];
    for (int i = 0; i < R * D; i++) xhuge[i] = (i % 2 ? 3e38f : -3e38f);
    memset(wzero, 0, sizeof wzero);
    int64_t same_label[R] = {0, 0, 0};
    CASE("weight gradient bound above FLT_MAX/4", CE(&low, R, D, K, xhuge, wzero, b, same_label), ERA_ERR_BAD_PARAMETER);
    RESET();
    int without = era_linear_discrete_ce_f32(&low, R, D, K, xhuge, wzero, b, same_label, &loss, gx, NULL, gb) == ERA_OK;
#undef RESET
#undef UNTOUCHED
#undef CE
#undef CASE
    int all = 1;
    for (int i = 0; i < n; i++) if (!cases[i].ok) { printf("# failed: %s\n", cases[i].name); all = 0; }
    char name[120];
    snprintf(name, sizeof name, "linear discrete CE errors: %d cases, each its status with every output untouched", n);
    report(all, name);
    report(without, "linear discrete CE: the same inputs pass without the weight gradient");
}

int main(void) {
    /* era_reference.h serves every C test; this one uses its discrete ERA rows only. */
    (void)ref_softmax_entropy; (void)ref_gaussian_entropy; (void)ref_tanh_gaussian_entropy;
    (void)ref_truncated_normal_entropy; (void)ref_continuous_row; (void)ref_continuous_backward_row;
    test_llm_forward_shapes();
    test_llm_backward_shapes();
    printf("# linear logprob vs float64 reference, worst: logp %.1e, entropy %.1e (|err|/(1+|ref|)); grad hidden %.1e, "
           "grad weight %.1e (relative to the largest)\n",
           worst_forward_logp, worst_forward_entropy, worst_grad_hidden, worst_grad_weight);
    test_llm_fused_vs_unfused();
    test_llm_finite_differences();
    test_llm_edges();
    test_llm_errors();
    test_llm_threads();
    era_set_num_threads(0);
    test_ce_reference();
    test_ce_unfused();
    test_ce_finite_differences();
    test_ce_outputs_and_threads();
    era_set_num_threads(0);
    test_ce_errors();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
