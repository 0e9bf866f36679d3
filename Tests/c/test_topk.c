/*
 * test_topk.c -- the top-k LLM log-probability entry points of libera (era.h, "LLM ERA" and
 * "Fused linear heads"; docs/math.md, "Top-k log-probabilities") driven through libera.so,
 * against a float64 reference written plainly below (selection by repeated scans, the lower
 * index winning a tie).
 * Prints "ok N - name" / "not ok N - name" per case and ends with "N passed, M failed".
 */
#include "era.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* ---- float64 reference --------------------------------------------------------------- */
/* chosen[i] = 1 for the k largest finite z (ties: lower index first). */
static void ref_select(const double *z, int64_t v, int64_t k, char *chosen) {
    memset(chosen, 0, (size_t)v);
    for (int64_t r = 0; r < k; r++) {
        int64_t best = -1;
        for (int64_t i = 0; i < v; i++)
            if (!chosen[i] && z[i] > -INFINITY && (best < 0 || z[i] > z[best])) best = i;
        if (best < 0) break;
        chosen[best] = 1;
    }
}

/* logp, full entropy and (when grad) the gradient row of one token. */
static double ref_topk(const double *z, int64_t v, int64_t label, double s, int64_t k, double *entropy,
                       double g, double *grad) {
    char *chosen = xmalloc((size_t)v);
    ref_select(z, v, k, chosen);
    double m = -INFINITY, mk = -INFINITY, sum = 0, sumk = 0, t = 0;
    for (int64_t i = 0; i < v; i++) if (z[i] > -INFINITY) { if (s * z[i] > m) m = s * z[i]; }
    for (int64_t i = 0; i < v; i++) if (chosen[i] && s * z[i] > mk) mk = s * z[i];
    for (int64_t i = 0; i < v; i++) {
        if (z[i] == -INFINITY) continue;
        double d = s * z[i] - m, e = exp(d);
        sum += e; t += d * e;
        if (chosen[i]) sumk += exp(s * z[i] - mk);
    }
    *entropy = log(sum) - t / sum;
    double lse = mk + log(sumk);
    int inside = chosen[label];
    if (grad)
        for (int64_t i = 0; i < v; i++)
            grad[i] = inside && chosen[i] ? g * s * ((i == label) - exp(s * z[i] - lse)) : 0.0;
    free(chosen);
    return inside ? s * z[label] - lse : -1e4;
}

static float bf16_to_float(era_bf16 b) {
    uint32_t bits = (uint32_t)b << 16; float f; memcpy(&f, &bits, 4); return f;
}
static era_bf16 float_to_bf16_truncate(float f) {
    uint32_t bits; memcpy(&bits, &f, 4); return (era_bf16)(bits >> 16);
}

/* ---- cases --------------------------------------------------------------------------- */

/* f32 and bf16, forward and backward, against the reference on rows with ties at the k-th
 * value, masks, fewer finite logits than k, labels inside and outside, scales k, 1, 1/k. */
static void test_against_reference(void) {
    const int64_t rows = 8, v = 3000, k = 20;
    float *z = xmalloc(sizeof(float) * rows * v), *grad = xmalloc(sizeof(float) * rows * v);
    era_bf16 *zb = xmalloc(sizeof(era_bf16) * rows * v), *gradb = xmalloc(sizeof(era_bf16) * rows * v);
    double *zr = xmalloc(sizeof(double) * v), *gr = xmalloc(sizeof(double) * v);
    int64_t labels[8];
    float scales[8], g[8], lp[8], h[8];
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < v; i++) {
            double x = normal() * 2.0;
            if (r == 1) x = floor(x * 2.0);              /* many ties, also at the k-th value */
            if (r == 2 && i % 3 == 0) x = -INFINITY;      /* masks */
            if (r == 3 && i >= 10) x = -INFINITY;         /* fewer than k finite */
            z[r * v + i] = (float)x;
        }
        scales[r] = r % 3 == 0 ? 2.0f : r % 3 == 1 ? 1.0f : 0.5f;
        g[r] = (float)normal();
    }
    /* labels: the top logit, one tied at the k-th value, outside, masked-row-safe */
    labels[0] = 0; labels[2] = 1; labels[3] = 5; labels[4] = 17; labels[5] = 2999; labels[6] = 1234; labels[7] = 77;
    { /* row 1: the label is the last tied value inside the top k, and row 7 the first outside */
        double *zz = zr; for (int64_t i = 0; i < v; i++) zz[i] = z[v + i];
        char *chosen = xmalloc((size_t)v); ref_select(zz, v, k, chosen);
        double kth = INFINITY; for (int64_t i = 0; i < v; i++) if (chosen[i] && zz[i] < kth) kth = zz[i];
        int64_t lastIn = -1, firstOut = -1;
        for (int64_t i = 0; i < v; i++) {
            if (zz[i] == kth && chosen[i]) lastIn = i;
            if (zz[i] == kth && !chosen[i] && firstOut < 0) firstOut = i;
        }
        labels[1] = lastIn;
        report(lastIn >= 0 && firstOut >= 0, "a tie straddles the k-th value in the test row");
        free(chosen);
        memcpy(z + 7 * v, z + v, sizeof(float) * v); labels[7] = firstOut; scales[7] = 1.0f;
    }
    for (int64_t i = 0; i < rows * v; i++) zb[i] = float_to_bf16_truncate(z[i]);
    for (int variant = 0; variant < 2; variant++) {
        era_status st = variant == 0
            ? era_llm_topk_logprob_forward_f32(rows, v, z, labels, scales, k, lp, h)
            : era_llm_topk_logprob_forward_bf16(rows, v, zb, labels, scales, k, lp, h);
        era_status sb = variant == 0
            ? era_llm_topk_logprob_backward_f32(rows, v, z, labels, scales, k, g, grad)
            : era_llm_topk_logprob_backward_bf16(rows, v, zb, labels, scales, k, g, gradb);
        double worst_lp = 0, worst_h = 0, worst_g = 0;
        int outside_ok = 1;
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t i = 0; i < v; i++) zr[i] = variant == 0 ? z[r * v + i] : bf16_to_float(zb[r * v + i]);
            double ent, want = ref_topk(zr, v, labels[r], scales[r], k, &ent, g[r], gr);
            if (want == -1e4) outside_ok &= lp[r] == -1e4f;
            else worst_lp = fmax(worst_lp, fabs(lp[r] - want) / (1 + fabs(want)));
            worst_h = fmax(worst_h, fabs(h[r] - ent) / fmax(ent, 1e-3));
            for (int64_t i = 0; i < v; i++) {
                double got = variant == 0 ? grad[r * v + i] : bf16_to_float(gradb[r * v + i]);
                if (gr[i] == 0) outside_ok &= got == 0;
                else worst_g = fmax(worst_g, fabs(got - gr[i]) / (fabs(gr[i]) + 1e-30));
            }
        }
        char name[160];
        snprintf(name, sizeof name, "%s: forward and backward match the float64 top-k reference "
                 "(logp %.1e, entropy %.1e, gradient %.1e)", variant == 0 ? "f32" : "bf16", worst_lp, worst_h, worst_g);
        report(st == ERA_OK && sb == ERA_OK && worst_lp < 1e-6 && worst_h < 1e-5 &&
               worst_g < (variant == 0 ? 1e-6 : 8e-3), name);
        report(outside_ok && lp[7] == -1e4f && lp[1] != -1e4f,
               variant == 0 ? "f32: outside the top k: -1e4, zero gradient row; the lower index wins the tie"
                            : "bf16: outside the top k: -1e4, zero gradient row; the lower index wins the tie");
    }
    free(z); free(grad); free(zb); free(gradb); free(zr); free(gr);
}

/* k >= vocab is the full log-softmax bit for bit; k = 1 selects the largest logit only. */
static void test_k_limits(void) {
    const int64_t rows = 5, v = 777;
    float *z = xmalloc(sizeof(float) * rows * v), *g1 = xmalloc(sizeof(float) * rows * v);
    float *g2 = xmalloc(sizeof(float) * rows * v);
    int64_t labels[5];
    float scales[5] = {2, 1, 0.5f, 1, 3}, g[5], lp1[5], lp2[5], h1[5], h2[5];
    for (int64_t i = 0; i < rows * v; i++) z[i] = (float)(normal() * 3);
    for (int64_t r = 0; r < rows; r++) { labels[r] = (r * 131) % v; g[r] = (float)normal(); }
    int same = 1;
    for (int64_t k = v; k <= v + 1; k++) {
        same &= era_llm_topk_logprob_forward_f32(rows, v, z, labels, scales, k, lp1, h1) == ERA_OK;
        same &= era_llm_logprob_forward_f32(rows, v, z, labels, scales, lp2, h2) == ERA_OK;
        same &= memcmp(lp1, lp2, sizeof lp1) == 0 && memcmp(h1, h2, sizeof h1) == 0;
        same &= era_llm_topk_logprob_backward_f32(rows, v, z, labels, scales, k, g, g1) == ERA_OK;
        same &= era_llm_logprob_backward_f32(rows, v, z, labels, scales, g, g2) == ERA_OK;
        same &= memcmp(g1, g2, sizeof(float) * rows * v) == 0;
    }
    same &= era_llm_topk_logprob_forward_f32(rows, v, z, labels, scales, INT64_MAX, lp1, h1) == ERA_OK &&
            memcmp(lp1, lp2, sizeof lp1) == 0;
    report(same, "top_k >= vocab (vocab, vocab + 1, INT64_MAX) equals the full log-softmax bit for bit");
    /* k = 1: the argmax label gets 0 and gradient 0 everywhere; any other label -1e4 */
    int64_t best = 0;
    for (int64_t i = 1; i < v; i++) if (z[i] > z[best]) best = i;
    labels[0] = best; labels[1] = (best + 1) % v;
    float lp[5];
    int ok = era_llm_topk_logprob_forward_f32(2, v, z, labels, scales, 1, lp, NULL) == ERA_OK &&
             lp[0] == 0.0f && lp[1] == -1e4f;
    ok &= era_llm_topk_logprob_backward_f32(2, v, z, labels, scales, 1, g, g1) == ERA_OK;
    for (int64_t i = 0; i < 2 * v; i++) ok &= g1[i] == 0.0f;
    report(ok, "top_k = 1: log-probability 0 at the argmax, -1e4 elsewhere, zero gradients");
    free(z); free(g1); free(g2);
}

/* The fused head against the reference on z = hidden . weight^T computed here in double. */
static void test_linear_head(void) {
    const int64_t tokens = 150, dim = 16, v = 5000, k = 20;  /* 2 token blocks, 3 vocab chunks */
    float *hidden = xmalloc(sizeof(float) * tokens * dim), *weight = xmalloc(sizeof(float) * v * dim);
    float *gh = xmalloc(sizeof(float) * tokens * dim), *gw = xmalloc(sizeof(float) * v * dim);
    double *zr = xmalloc(sizeof(double) * v), *gr = xmalloc(sizeof(double) * v);
    double *ghr = xmalloc(sizeof(double) * tokens * dim), *gwr = xmalloc(sizeof(double) * v * dim);
    int64_t *labels = xmalloc(sizeof(int64_t) * tokens);
    float *scales = xmalloc(sizeof(float) * tokens), *g = xmalloc(sizeof(float) * tokens);
    float *lp = xmalloc(sizeof(float) * tokens), *h = xmalloc(sizeof(float) * tokens);
    for (int64_t i = 0; i < tokens * dim; i++) hidden[i] = (float)normal();
    for (int64_t i = 0; i < v * dim; i++) weight[i] = (float)(normal() * 0.5);
    memset(gwr, 0, sizeof(double) * v * dim);
    for (int64_t t = 0; t < tokens; t++) {
        scales[t] = t % 3 == 0 ? 2.0f : t % 3 == 1 ? 1.0f : 0.5f;
        g[t] = (float)normal();
    }
    /* labels: half of them the token's argmax (inside), the rest anywhere (mostly outside) */
    for (int64_t t = 0; t < tokens; t++) {
        int64_t best = 0; double top = -INFINITY;
        for (int64_t j = 0; j < v; j++) {
            double x = 0; for (int64_t d = 0; d < dim; d++) x += (double)hidden[t * dim + d] * weight[j * dim + d];
            if (x > top) { top = x; best = j; }
        }
        labels[t] = t % 2 ? best : (t * 37) % v;
    }
    era_status sf = era_llm_linear_topk_logprob_forward_f32(tokens, dim, v, hidden, weight, labels, scales, k, lp, h);
    era_status sb = era_llm_linear_topk_logprob_backward_f32(tokens, dim, v, hidden, weight, labels, scales, k, g,
                                                             gh, gw);
    double worst_lp = 0, worst_h = 0, worst_gh = 0, worst_gw = 0, scale_gh = 0, scale_gw = 0;
    int outside = 1;
    for (int64_t t = 0; t < tokens; t++) {
        for (int64_t j = 0; j < v; j++) {
            double x = 0; for (int64_t d = 0; d < dim; d++) x += (double)hidden[t * dim + d] * weight[j * dim + d];
            zr[j] = x;
        }
        double ent, want = ref_topk(zr, v, labels[t], scales[t], k, &ent, g[t], gr);
        if (want == -1e4) outside &= lp[t] == -1e4f;
        else worst_lp = fmax(worst_lp, fabs(lp[t] - want) / (1 + fabs(want)));
        worst_h = fmax(worst_h, fabs(h[t] - ent) / fmax(ent, 1e-3));
        for (int64_t d = 0; d < dim; d++) ghr[t * dim + d] = 0;
        for (int64_t j = 0; j < v; j++) {
            if (gr[j] == 0) continue;
            for (int64_t d = 0; d < dim; d++) {
                ghr[t * dim + d] += gr[j] * weight[j * dim + d];
                gwr[j * dim + d] += gr[j] * hidden[t * dim + d];
            }
        }
    }
    for (int64_t i = 0; i < tokens * dim; i++) { worst_gh = fmax(worst_gh, fabs(gh[i] - ghr[i])); scale_gh = fmax(scale_gh, fabs(ghr[i])); }
    for (int64_t i = 0; i < v * dim; i++) { worst_gw = fmax(worst_gw, fabs(gw[i] - gwr[i])); scale_gw = fmax(scale_gw, fabs(gwr[i])); }
    char name[200];
    snprintf(name, sizeof name, "linear head: forward and backward match the float64 top-k reference "
             "(logp %.1e, entropy %.1e, grad hidden %.1e, grad weight %.1e of the largest)",
             worst_lp, worst_h, worst_gh / scale_gh, worst_gw / scale_gw);
    report(sf == ERA_OK && sb == ERA_OK && outside && worst_lp < 1e-5 && worst_h < 1e-4 &&
           worst_gh < 1e-5 * scale_gh && worst_gw < 1e-5 * scale_gw, name);
    /* top_k >= vocab: the dense head bit for bit */
    float *lp2 = xmalloc(sizeof(float) * tokens), *h2 = xmalloc(sizeof(float) * tokens);
    int same = era_llm_linear_topk_logprob_forward_f32(tokens, dim, v, hidden, weight, labels, scales, v, lp, h) == ERA_OK &&
               era_llm_linear_logprob_forward_f32(tokens, dim, v, hidden, weight, labels, scales, lp2, h2) == ERA_OK &&
               memcmp(lp, lp2, sizeof(float) * tokens) == 0 && memcmp(h, h2, sizeof(float) * tokens) == 0;
    report(same, "linear head: top_k >= vocab equals era_llm_linear_logprob_forward_f32 bit for bit");
    free(hidden); free(weight); free(gh); free(gw); free(zr); free(gr); free(ghr); free(gwr);
    free(labels); free(scales); free(g); free(lp); free(h); free(lp2); free(h2);
}

/* Bad input: the status, and nothing written. */
static void test_bad_input(void) {
    const int64_t v = 64;
    float z[2 * 64], grad[2 * 64], lp[2] = {7, 7}, h[2] = {7, 7}, g[2] = {1, 1};
    float w[64 * 4], hid[2 * 4], gh[2 * 4];
    int64_t labels[2] = {3, 5};
    for (int i = 0; i < 2 * 64; i++) { z[i] = (float)normal(); grad[i] = 7; }
    for (int i = 0; i < 64 * 4; i++) w[i] = (float)normal();
    for (int i = 0; i < 8; i++) { hid[i] = (float)normal(); gh[i] = 7; }
    int untouched = 1;
#define UNTOUCHED() do { for (int i = 0; i < 2 * 64; i++) untouched &= grad[i] == 7; \
                         untouched &= lp[0] == 7 && lp[1] == 7 && h[0] == 7 && gh[0] == 7; } while (0)
    int ok = era_llm_topk_logprob_forward_f32(2, v, z, labels, NULL, 0, lp, h) == ERA_ERR_BAD_PARAMETER &&
             era_llm_topk_logprob_forward_f32(0, v, NULL, NULL, NULL, -1, NULL, NULL) == ERA_ERR_BAD_PARAMETER &&
             era_llm_topk_logprob_backward_f32(2, v, z, labels, NULL, 0, g, grad) == ERA_ERR_BAD_PARAMETER &&
             era_llm_linear_topk_logprob_forward_f32(2, 4, v, hid, w, labels, NULL, 0, lp, h) == ERA_ERR_BAD_PARAMETER &&
             era_llm_linear_topk_logprob_backward_f32(2, 4, v, hid, w, labels, NULL, -5, g, gh, NULL) ==
                 ERA_ERR_BAD_PARAMETER;
    UNTOUCHED();
    report(ok && untouched, "top_k < 1: BAD_PARAMETER, nothing written");
    z[70] = NAN;
    ok = era_llm_topk_logprob_forward_f32(2, v, z, labels, NULL, 4, lp, h) == ERA_ERR_NON_FINITE &&
         era_llm_topk_logprob_backward_f32(2, v, z, labels, NULL, 4, g, grad) == ERA_ERR_NON_FINITE;
    z[70] = INFINITY;
    ok &= era_llm_topk_logprob_forward_f32(2, v, z, labels, NULL, 4, lp, h) == ERA_ERR_NON_FINITE &&
          era_llm_topk_logprob_backward_f32(2, v, z, labels, NULL, 4, g, grad) == ERA_ERR_NON_FINITE;
    z[70] = 0;
    UNTOUCHED();
    report(ok && untouched, "NaN or +inf in a later row: NON_FINITE, nothing written");
    z[64 + 5] = -INFINITY;  /* row 1's label masked */
    ok = era_llm_topk_logprob_forward_f32(2, v, z, labels, NULL, 4, lp, h) == ERA_ERR_BAD_INDEX &&
         era_llm_topk_logprob_backward_f32(2, v, z, labels, NULL, 4, g, grad) == ERA_ERR_BAD_INDEX;
    for (int i = 64; i < 128; i++) z[i] = -INFINITY;
    ok &= era_llm_topk_logprob_forward_f32(2, v, z, labels, NULL, 4, lp, h) == ERA_ERR_NON_FINITE;
    for (int i = 64; i < 128; i++) z[i] = (float)normal();
    labels[1] = v;
    ok &= era_llm_topk_logprob_forward_f32(2, v, z, labels, NULL, 4, lp, h) == ERA_ERR_BAD_INDEX &&
          era_llm_linear_topk_logprob_forward_f32(2, 4, v, hid, w, labels, NULL, 4, lp, h) == ERA_ERR_BAD_INDEX;
    labels[1] = 5;
    g[1] = NAN;
    ok &= era_llm_topk_logprob_backward_f32(2, v, z, labels, NULL, 4, g, grad) == ERA_ERR_NON_FINITE &&
          era_llm_linear_topk_logprob_backward_f32(2, 4, v, hid, w, labels, NULL, 4, g, gh, NULL) ==
              ERA_ERR_NON_FINITE;
    g[1] = 1;
    float bad_scale[2] = {1, 0};
    ok &= era_llm_topk_logprob_forward_f32(2, v, z, labels, bad_scale, 4, lp, h) == ERA_ERR_BAD_PARAMETER;
    UNTOUCHED();
    report(ok && untouched, "masked label, masked row, bad label, NaN gradient, zero scale: errors, nothing written");
    ok = era_llm_topk_logprob_forward_f32(2, v, z, labels, NULL, 4, (float *)(void *)z, h) == ERA_ERR_OVERLAP &&
         era_llm_topk_logprob_backward_f32(2, v, z, labels, NULL, 4, g, z + 1) == ERA_ERR_OVERLAP &&
         era_llm_topk_logprob_forward_f32(2, v, NULL, labels, NULL, 4, lp, h) == ERA_ERR_NULL_POINTER &&
         era_llm_topk_logprob_forward_f32(2, 0, z, labels, NULL, 4, lp, h) == ERA_ERR_BAD_SHAPE;
    UNTOUCHED();
    report(ok && untouched, "overlap, NULL and bad shape: errors, nothing written");
    /* in place: the gradient over the logits equals the separate call */
    float copy[2 * 64];
    memcpy(copy, z, sizeof copy);
    ok = era_llm_topk_logprob_backward_f32(2, v, z, labels, NULL, 4, g, grad) == ERA_OK &&
         era_llm_topk_logprob_backward_f32(2, v, copy, labels, NULL, 4, g, copy) == ERA_OK &&
         memcmp(copy, grad, sizeof copy) == 0;
    report(ok, "in place (out_grad_logits == logits) equals the separate call");
#undef UNTOUCHED
}

int main(void) {
    test_against_reference();
    test_k_limits();
    test_linear_head();
    test_bad_input();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
