/*
 * test_llm.c -- the LLM entry points of libera (era.h, "LLM ERA"; math section 3) driven
 * through libera.so, against float64 references written plainly below.
 * Prints "ok N - name" / "not ok N - name" per case and ends with "N passed, M failed".
 */
#include "era.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

/* ---- bfloat16 ----------------------------------------------------------------------- */
static float bf16_to_float(era_bf16 b) {
    uint32_t bits = (uint32_t)b << 16; float f; memcpy(&f, &bits, 4); return f;
}
static era_bf16 float_to_bf16_truncate(float f) {
    uint32_t bits; memcpy(&bits, &f, 4); return (era_bf16)(bits >> 16);
}

/* ---- float64 references (two passes, plain loops) ------------------------------------ */
/* logsumexp and entropy of softmax(scale * z) over one row; -inf entries are masked. */
static void ref_row(const double *z, int64_t v, double scale, double *lse, double *entropy) {
    double m = -INFINITY, s = 0, t = 0;
    for (int64_t i = 0; i < v; i++) if (scale * z[i] > m) m = scale * z[i];
    for (int64_t i = 0; i < v; i++) {
        if (z[i] == -INFINITY) continue;
        double d = scale * z[i] - m, e = exp(d);
        s += e; t += d * e;
    }
    *lse = m + log(s);
    *entropy = log(s) - t / s;
}

static double ref_logprob(const double *z, int64_t v, int64_t label, double scale) {
    double lse, h;
    ref_row(z, v, scale, &lse, &h);
    return scale * z[label] - lse;
}

static int close_to(double got, double want, double rel, double abs_tol) {
    return fabs(got - want) <= abs_tol + rel * fabs(want);
}

/* ---- cases --------------------------------------------------------------------------- */

static void test_token_entropy(void) {
    /* f32, f64 and bf16 on rows with masks, large V and huge logits. */
    const int64_t rows = 4, v = 151936;
    float *zf = malloc(sizeof(float) * rows * v);
    double *zd = malloc(sizeof(double) * rows * v);
    era_bf16 *zb = malloc(sizeof(era_bf16) * rows * v);
    double *zr = malloc(sizeof(double) * v);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < v; i++) {
            double x = normal() * (r == 2 ? 8.0 : 2.0);
            if (r == 1 && i % 3 == 0) x = -INFINITY;   /* every third token banned */
            if (r == 3) x = (i == 7) ? 60.0 : normal(); /* near one-hot */
            zd[r * v + i] = x;
            zf[r * v + i] = (float)x;
            zb[r * v + i] = float_to_bf16_truncate((float)x);
        }
    float ef[4], eb[4]; double ed[4];
    int ok = era_token_entropy_f32(rows, v, zf, ef) == ERA_OK && era_token_entropy_f64(rows, v, zd, ed) == ERA_OK &&
             era_token_entropy_bf16(rows, v, zb, eb) == ERA_OK;
    double worst32 = 0, worst64 = 0, worst16 = 0;
    for (int64_t r = 0; ok && r < rows; r++) {
        double lse, h;
        for (int64_t i = 0; i < v; i++) zr[i] = (double)zf[r * v + i];
        ref_row(zr, v, 1.0, &lse, &h);
        worst32 = fmax(worst32, fabs(ef[r] - h) / fmax(1, fabs(h)));
        ref_row(zd + r * v, v, 1.0, &lse, &h);
        worst64 = fmax(worst64, fabs(ed[r] - h) / fmax(1, fabs(h)));
        for (int64_t i = 0; i < v; i++) zr[i] = (double)bf16_to_float(zb[r * v + i]);
        ref_row(zr, v, 1.0, &lse, &h);
        worst16 = fmax(worst16, fabs(eb[r] - h) / fmax(1, fabs(h)));
    }
    printf("# token entropy V=%lld: worst relative error f32 %.2e, f64 %.2e, bf16 %.2e\n", (long long)v, worst32,
           worst64, worst16);
    report(ok && worst32 < 1e-6 && worst64 < 1e-12 && worst16 < 1e-6, "token entropy f32/f64/bf16, V = 151936, masks");

    /* V = 1: entropy 0; ties: log V. */
    float one = 3.0f, e1 = -1, ties[8] = {2, 2, 2, 2, 2, 2, 2, 2}, et = -1;
    ok = era_token_entropy_f32(1, 1, &one, &e1) == ERA_OK && e1 == 0.0f &&
         era_token_entropy_f32(1, 8, ties, &et) == ERA_OK && close_to(et, log(8.0), 1e-7, 0);
    report(ok, "token entropy V = 1 is 0, 8 ties give log 8");
    free(zf); free(zd); free(zb); free(zr);
}

static void test_response_entropy_and_scales(void) {
    era_llm_params p;
    era_llm_params_init(&p);
    report(p.omega_low == 0.45 && p.omega_high == 3.0 && p.k == 2.0 && p.top_fraction == 0.2 && p.scale_advantages,
           "llm params defaults 0.45, 3.0, 2.0, 0.2, on");

    /* Interleaved responses: 0 has 5 tokens (n = 1), 1 has 10 (n = 2, a tie at the top), 2 has
     * one token, 3 has none; -1 tokens are ignored (their NaN entropy is never read). */
    const float h[] = {0.1f, 1.0f, 0.3f, 2.0f, NAN, 0.2f, 2.0f, 0.5f, 0.4f, 0.9f,
                       0.7f, 0.05f, 0.6f, 0.8f, 1.5f, 0.3f, 0.2f, 0.1f};
    const int64_t id[] = {0, 1, 0, 1, -1, 0, 1, 1, 0, 1, 1, 2, 1, 1, 0, 1, 1, 1};
    const int64_t tokens = 18, responses = 4;
    float got[4] = {-1, -1, -1, -1};
    int ok = era_llm_response_entropy_f32(&p, tokens, h, id, responses, got) == ERA_OK;
    /* response 0: {0.1, 0.3, 0.2, 0.4, 1.5} -> top 1 = 1.5;
     * response 1: {1.0, 2.0, 2.0, 0.5, 0.9, 0.7, 0.6, 0.8, 0.3, 0.2, 0.1} (11) -> top 2 = 2.0;
     * response 2: {0.05} -> 0.05; response 3: none -> NaN */
    ok = ok && close_to(got[0], 1.5, 1e-7, 0) && close_to(got[1], 2.0, 1e-7, 0) && close_to(got[2], 0.05, 1e-6, 0) &&
         isnan(got[3]);
    report(ok, "response entropy: interleaved, ties, short and empty responses");

    /* top_fraction 1: the plain mean. */
    era_llm_params all = p;
    all.top_fraction = 1.0;
    ok = era_llm_response_entropy_f32(&all, tokens, h, id, responses, got) == ERA_OK &&
         close_to(got[0], (0.1 + 0.3 + 0.2 + 0.4 + 1.5) / 5, 1e-6, 0);
    report(ok, "response entropy with top_fraction 1 is the mean");

    /* Scales at the thresholds: strict inequalities. */
    const float resp_h[] = {0.45f, 0.4499f, 3.0f, 3.0001f, 1.0f};
    const int64_t rid[] = {0, 1, 2, 3, 4, 1, 3, -1, 1};
    const float adv[] = {1, 1, 1, 1, 1, -1, 0, 2, 0.5f};
    float scale[9], adv_out[9];
    ok = era_llm_scales_f32(&p, 9, resp_h, 5, rid, adv, scale, adv_out) == ERA_OK;
    const float want_scale[] = {1, 2, 1, 0.5f, 1, 1, 1, 1, 2};
    const float want_adv[] = {1, 0.5f, 1, 2, 1, -1, 0, 2, 0.25f};
    for (int t = 0; ok && t < 9; t++) ok = scale[t] == want_scale[t] && adv_out[t] == want_adv[t];
    report(ok, "scales: k below omega_low, 1/k above omega_high, 1 at both, only for A > 0");

    era_llm_params keep = p;
    keep.scale_advantages = 0;
    float adv_in_place[9];
    memcpy(adv_in_place, adv, sizeof adv);
    ok = era_llm_scales_f32(&keep, 9, resp_h, 5, rid, adv_in_place, scale, adv_in_place) == ERA_OK;
    for (int t = 0; ok && t < 9; t++) ok = adv_in_place[t] == adv[t] && scale[t] == want_scale[t];
    report(ok, "scales: scale_advantages off leaves A, in place");
}

static void test_logprob(void) {
    const int64_t tokens = 6, v = 2000;
    float *z = malloc(sizeof(float) * tokens * v), *grad = malloc(sizeof(float) * tokens * v);
    era_bf16 *zb = malloc(sizeof(era_bf16) * tokens * v), *gradb = malloc(sizeof(era_bf16) * tokens * v);
    double *zr = malloc(sizeof(double) * v);
    int64_t labels[6];
    float scales[6] = {1, 2, 0.5f, 1, 2, 0.5f}, g[6], logp[6], ent[6], logpb[6];
    for (int64_t t = 0; t < tokens; t++) {
        for (int64_t i = 0; i < v; i++) {
            float x = (float)(normal() * 3);
            if (t == 3 && i % 5 == 1) x = -INFINITY;
            z[t * v + i] = x;
            zb[t * v + i] = float_to_bf16_truncate(x);
        }
        labels[t] = (t * 397) % v;
        if (labels[t] % 5 == 1) labels[t]++;
        g[t] = (float)normal();
    }
    int ok = era_llm_logprob_forward_f32(tokens, v, z, labels, scales, logp, ent) == ERA_OK &&
             era_llm_logprob_backward_f32(tokens, v, z, labels, scales, g, grad) == ERA_OK &&
             era_llm_logprob_forward_bf16(tokens, v, zb, labels, scales, logpb, NULL) == ERA_OK &&
             era_llm_logprob_backward_bf16(tokens, v, zb, labels, scales, g, gradb) == ERA_OK;
    double worst_lp = 0, worst_h = 0, worst_g = 0, worst_fd = 0, worst_lpb = 0, worst_gb = 0;
    for (int64_t t = 0; ok && t < tokens; t++) {
        double lse, h;
        for (int64_t i = 0; i < v; i++) zr[i] = z[t * v + i];
        ref_row(zr, v, scales[t], &lse, &h);
        double lp = scales[t] * zr[labels[t]] - lse;
        worst_lp = fmax(worst_lp, fabs(logp[t] - lp) / fmax(1, fabs(lp)));
        worst_h = fmax(worst_h, fabs(ent[t] - h) / fmax(1, h));
        for (int64_t i = 0; i < v; i++) {
            double p = zr[i] == -INFINITY ? 0 : exp(scales[t] * zr[i] - lse);
            double want = g[t] * scales[t] * ((i == labels[t]) - p);
            worst_g = fmax(worst_g, fabs(grad[t * v + i] - want));
            if (zr[i] == -INFINITY && grad[t * v + i] != 0.0f) worst_g = INFINITY;
        }
        /* central finite differences of the float64 reference at a few entries */
        for (int k = 0; k < 5; k++) {
            int64_t i = k == 0 ? labels[t] : (int64_t)(uniform() * v);
            if (zr[i] == -INFINITY) continue;
            double keep = zr[i], step = 1e-5;
            zr[i] = keep + step;
            double up = ref_logprob(zr, v, labels[t], scales[t]);
            zr[i] = keep - step;
            double down = ref_logprob(zr, v, labels[t], scales[t]);
            zr[i] = keep;
            worst_fd = fmax(worst_fd, fabs(grad[t * v + i] - g[t] * (up - down) / (2 * step)));
        }
        for (int64_t i = 0; i < v; i++) zr[i] = bf16_to_float(zb[t * v + i]);
        ref_row(zr, v, scales[t], &lse, &h);
        lp = scales[t] * zr[labels[t]] - lse;
        worst_lpb = fmax(worst_lpb, fabs(logpb[t] - lp) / fmax(1, fabs(lp)));
        for (int64_t i = 0; i < v; i++) {
            double p = zr[i] == -INFINITY ? 0 : exp(scales[t] * zr[i] - lse);
            double want = g[t] * scales[t] * ((i == labels[t]) - p);
            /* one bfloat16 rounding: relative 2^-8 */
            worst_gb = fmax(worst_gb, fabs(bf16_to_float(gradb[t * v + i]) - want) / (fabs(want) + 1e-30));
        }
    }
    printf("# logprob: f32 rel %.2e, entropy rel %.2e, grad abs %.2e, grad vs finite differences %.2e; "
           "bf16 logprob rel %.2e, bf16 grad rel %.2e\n", worst_lp, worst_h, worst_g, worst_fd, worst_lpb, worst_gb);
    report(ok && worst_lp < 1e-6 && worst_h < 1e-6 && worst_g < 1e-7, "logprob forward/backward f32 against float64");
    report(ok && worst_fd < 1e-6, "logprob gradient against central finite differences");
    report(ok && worst_lpb < 1e-6 && worst_gb <= 1.0 / 256, "logprob forward/backward bf16 against float64");

    /* In place backward equals out of place. */
    float *copy = malloc(sizeof(float) * tokens * v);
    memcpy(copy, z, sizeof(float) * tokens * v);
    ok = era_llm_logprob_backward_f32(tokens, v, copy, labels, scales, g, copy) == ERA_OK &&
         memcmp(copy, grad, sizeof(float) * tokens * v) == 0;
    report(ok, "logprob backward in place equals out of place");

    /* NULL scales mean 1. */
    float ones[6] = {1, 1, 1, 1, 1, 1}, lp1[6], lp2[6];
    ok = era_llm_logprob_forward_f32(tokens, v, z, labels, ones, lp1, NULL) == ERA_OK &&
         era_llm_logprob_forward_f32(tokens, v, z, labels, NULL, lp2, NULL) == ERA_OK && memcmp(lp1, lp2, sizeof lp1) == 0;
    report(ok, "logprob with NULL scales equals scales of 1");
    free(z); free(grad); free(zb); free(gradb); free(zr); free(copy);
}

/* A GRPO step end to end: 4 responses of different lengths (and prompt tokens, id -1) from a
 * batch of logits, labels and advantages to ERA log-probs, rescaled advantages and the logit
 * gradient of loss = -sum_t A'_t logp'_t, against the same pipeline in float64. */
static int compare_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

static void test_grpo_step(void) {
    enum { T = 40, V = 300, R = 4 };
    static float z[T * V], grad[T * V];
    static double zr[V];
    int64_t labels[T], id[T];
    float adv[T], h[T], rh[R], scale[T], adv_out[T], logp[T], dlogp[T];
    for (int t = 0; t < T; t++) {
        id[t] = t < 4 ? -1 : (t * 7) % R;                 /* interleaved responses, 4 prompt tokens */
        double temperature = id[t] == 0 ? 0.002 : (id[t] == 1 ? 3.0 : 0.2); /* sharp, flat, mid */
        for (int i = 0; i < V; i++) z[t * V + i] = (float)(normal() / temperature);
        labels[t] = (t * 31) % V;
        adv[t] = id[t] == 3 ? -1.0f : 1.0f;
    }
    era_llm_params p;
    era_llm_params_init(&p);
    p.omega_high = 4.0;  /* response 1 (flat) lies above it */
    int ok = era_token_entropy_f32(T, V, z, h) == ERA_OK &&
             era_llm_response_entropy_f32(&p, T, h, id, R, rh) == ERA_OK &&
             era_llm_scales_f32(&p, T, rh, R, id, adv, scale, adv_out) == ERA_OK &&
             era_llm_logprob_forward_f32(T, V, z, labels, scale, logp, NULL) == ERA_OK;
    for (int t = 0; t < T; t++) dlogp[t] = -adv_out[t];
    ok = ok && era_llm_logprob_backward_f32(T, V, z, labels, scale, dlogp, grad) == ERA_OK;

    /* the float64 pipeline */
    double href[T], rhref[R], worst = 0;
    for (int t = 0; t < T; t++) {
        double lse;
        for (int i = 0; i < V; i++) zr[i] = z[t * V + i];
        ref_row(zr, V, 1.0, &lse, &href[t]);
    }
    int saw_k = 0, saw_inverse = 0;
    for (int b = 0; b < R; b++) {
        double bucket[T];
        int n = 0;
        for (int t = 0; t < T; t++) if (id[t] == b) bucket[n++] = href[t];
        qsort(bucket, (size_t)n, sizeof(double), compare_desc);
        int top = (int)floor(p.top_fraction * n);
        if (top < 1) top = 1;
        double sum = 0;
        for (int i = 0; i < top; i++) sum += bucket[i];
        rhref[b] = sum / top;
        worst = fmax(worst, fabs(rh[b] - rhref[b]));
    }
    for (int t = 0; t < T; t++) {
        double s = 1;
        if (id[t] >= 0 && adv[t] > 0) {
            if ((float)rhref[id[t]] < (float)p.omega_low) s = p.k;
            else if ((float)rhref[id[t]] > (float)p.omega_high) s = 1 / p.k;
        }
        saw_k |= s == p.k;
        saw_inverse |= s == 1 / p.k;
        ok = ok && scale[t] == (float)s && close_to(adv_out[t], adv[t] / s, 1e-7, 0);
        double lse, hh;
        for (int i = 0; i < V; i++) zr[i] = z[t * V + i];
        ref_row(zr, V, s, &lse, &hh);
        worst = fmax(worst, fabs(logp[t] - (s * zr[labels[t]] - lse)) / fmax(1, fabs(s * zr[labels[t]] - lse)));
        for (int i = 0; i < V; i++) {
            double want = -(adv[t] / s) * s * ((i == labels[t]) - exp(s * zr[i] - lse));
            worst = fmax(worst, fabs(grad[t * V + i] - want));
        }
    }
    printf("# GRPO step: %d tokens, %d responses, worst error against float64 %.2e (ok %d, k %d, 1/k %d; response entropies %.3f %.3f %.3f %.3f)\n", T, R, worst, ok, saw_k, saw_inverse, rhref[0], rhref[1], rhref[2], rhref[3]);
    report(ok && saw_k && saw_inverse && worst < 1e-6,
           "GRPO step: entropies -> response entropies -> scales (k and 1/k) -> log-probs -> gradient");
}

/* Bad input: each call must fail with `want` and leave both outputs byte for byte as they were. */
#define SENTINEL 0x5A
enum { BT = 3, BV = 4 };
static float out_a[BT * BV], out_b[BT * BV];

static void reset_outputs(void) {
    memset(out_a, SENTINEL, sizeof out_a);
    memset(out_b, SENTINEL, sizeof out_b);
}

static void expect_error(era_status got, era_status want, const char *name) {
    int untouched = 1;
    for (size_t i = 0; i < sizeof out_a; i++) untouched &= ((unsigned char *)out_a)[i] == SENTINEL;
    for (size_t i = 0; i < sizeof out_b; i++) untouched &= ((unsigned char *)out_b)[i] == SENTINEL;
    char label[200];
    snprintf(label, sizeof label, "bad input: %s -> %s, outputs untouched", name, era_status_string(want));
    if (got != want) printf("# got %s\n", era_status_string(got));
    report(got == want && untouched, label);
}

static void test_bad_input(void) {
    float z[BT * BV], bad[BT * BV], g[BT] = {1, 1, 1}, s[BT] = {1, 2, 1};
    float h[BT] = {0.1f, 0.2f, 0.3f}, a[BT] = {1, 1, 1}, resp_h[2] = {0.2f, 1.0f};
    int64_t labels[BT] = {0, 1, 2}, id[BT] = {0, 0, 1};
    era_bf16 zb[BT * BV];
    for (int i = 0; i < BT * BV; i++) { z[i] = (float)i / 3; zb[i] = float_to_bf16_truncate(z[i]); }
    era_bf16 *outb = (era_bf16 *)out_a;
    era_llm_params p;
    era_llm_params_init(&p);

    reset_outputs(); expect_error(era_token_entropy_f32(BT, 0, z, out_a), ERA_ERR_BAD_SHAPE, "zero vocabulary");
    reset_outputs(); expect_error(era_token_entropy_f32(-1, BV, z, out_a), ERA_ERR_BAD_SHAPE, "negative tokens");
    reset_outputs(); expect_error(era_token_entropy_f32(INT64_MAX / 2, 4, z, out_a), ERA_ERR_BAD_SHAPE,
                                  "tokens*vocab overflows");
    reset_outputs(); expect_error(era_token_entropy_f32(BT, BV, NULL, out_a), ERA_ERR_NULL_POINTER, "NULL logits");
    reset_outputs(); expect_error(era_token_entropy_f32(BT, BV, z, NULL), ERA_ERR_NULL_POINTER, "NULL entropy output");

    const char *poison_names[3] = {"NaN in the last logit", "+inf in the last logit", "a fully masked last row"};
    for (int k = 0; k < 3; k++) {
        memcpy(bad, z, sizeof z);
        if (k == 0) bad[BT * BV - 1] = NAN;
        if (k == 1) bad[BT * BV - 1] = INFINITY;
        if (k == 2) for (int i = 0; i < BV; i++) bad[(BT - 1) * BV + i] = -INFINITY;
        char name[120];
        snprintf(name, sizeof name, "token entropy, %s", poison_names[k]);
        reset_outputs(); expect_error(era_token_entropy_f32(BT, BV, bad, out_a), ERA_ERR_NON_FINITE, name);
        snprintf(name, sizeof name, "logprob forward, %s", poison_names[k]);
        reset_outputs();
        expect_error(era_llm_logprob_forward_f32(BT, BV, bad, labels, s, out_a, out_b), ERA_ERR_NON_FINITE, name);
        snprintf(name, sizeof name, "logprob backward, %s", poison_names[k]);
        reset_outputs();
        expect_error(era_llm_logprob_backward_f32(BT, BV, bad, labels, s, g, out_a), ERA_ERR_NON_FINITE, name);
    }
    era_bf16 badb[BT * BV];
    memcpy(badb, zb, sizeof zb);
    badb[BT * BV - 1] = 0x7FC0; /* NaN */
    reset_outputs(); expect_error(era_token_entropy_bf16(BT, BV, badb, out_a), ERA_ERR_NON_FINITE, "bf16 NaN logit");
    reset_outputs(); expect_error(era_llm_logprob_backward_bf16(BT, BV, badb, labels, s, g, outb), ERA_ERR_NON_FINITE,
                                  "bf16 backward NaN logit");

    int64_t label_cases[2] = {-1, BV};
    for (int k = 0; k < 2; k++) {
        int64_t bad_labels[BT] = {0, 1, label_cases[k]};
        char name[80];
        snprintf(name, sizeof name, "label %lld of vocabulary %d", (long long)label_cases[k], BV);
        reset_outputs();
        expect_error(era_llm_logprob_forward_f32(BT, BV, z, bad_labels, s, out_a, out_b), ERA_ERR_BAD_INDEX, name);
        reset_outputs();
        expect_error(era_llm_logprob_backward_f32(BT, BV, z, bad_labels, s, g, out_a), ERA_ERR_BAD_INDEX, name);
    }
    memcpy(bad, z, sizeof z);
    bad[(BT - 1) * BV + labels[BT - 1]] = -INFINITY;
    reset_outputs();
    expect_error(era_llm_logprob_forward_f32(BT, BV, bad, labels, s, out_a, out_b), ERA_ERR_BAD_INDEX,
                 "label at a masked logit");
    float bad_scale[BT] = {1, 1, 0};
    reset_outputs();
    expect_error(era_llm_logprob_forward_f32(BT, BV, z, labels, bad_scale, out_a, out_b), ERA_ERR_BAD_PARAMETER,
                 "scale 0");
    bad_scale[2] = NAN;
    reset_outputs();
    expect_error(era_llm_logprob_backward_f32(BT, BV, z, labels, bad_scale, g, out_a), ERA_ERR_NON_FINITE, "NaN scale");
    float bad_g[BT] = {1, 1, NAN};
    reset_outputs();
    expect_error(era_llm_logprob_backward_f32(BT, BV, z, labels, s, bad_g, out_a), ERA_ERR_NON_FINITE,
                 "NaN upstream gradient");

    int64_t bad_ids[2][BT] = {{0, 0, 2}, {0, -2, 1}};
    for (int k = 0; k < 2; k++) {
        reset_outputs();
        expect_error(era_llm_response_entropy_f32(&p, BT, h, bad_ids[k], 2, out_a), ERA_ERR_BAD_INDEX,
                     k ? "response id -2" : "response id == responses");
        reset_outputs();
        expect_error(era_llm_scales_f32(&p, BT, resp_h, 2, bad_ids[k], a, out_a, out_b), ERA_ERR_BAD_INDEX,
                     k ? "scales, response id -2" : "scales, response id == responses");
    }
    float bad_h[BT] = {0.1f, NAN, 0.3f};
    reset_outputs();
    expect_error(era_llm_response_entropy_f32(&p, BT, bad_h, id, 2, out_a), ERA_ERR_NON_FINITE,
                 "NaN entropy of a response token");
    int64_t prompt_id[BT] = {0, -1, 1};
    report(era_llm_response_entropy_f32(&p, BT, bad_h, prompt_id, 2, out_a) == ERA_OK,
           "a NaN entropy of a token of no response (id -1) is not read");
    float bad_a[BT] = {1, 1, INFINITY};
    reset_outputs();
    expect_error(era_llm_scales_f32(&p, BT, resp_h, 2, id, bad_a, out_a, out_b), ERA_ERR_NON_FINITE, "infinite advantage");

    era_llm_params bad_params[7];
    for (int k = 0; k < 7; k++) bad_params[k] = p;
    bad_params[0].omega_low = 4.0;    /* above omega_high */
    bad_params[1].k = 0.0;
    bad_params[2].top_fraction = 0.0;
    bad_params[3].top_fraction = 1.5;
    bad_params[4].omega_high = NAN;
    bad_params[5].k = 1e300;          /* float32 scale would be inf */
    bad_params[6].k = 1e-300;         /* float32 scale would be 0 */
    const char *param_names[7] = {"omega_low > omega_high", "k = 0", "top_fraction 0", "top_fraction 1.5",
                                  "NaN omega_high", "k = 1e300", "k = 1e-300"};
    for (int k = 0; k < 7; k++) {
        reset_outputs();
        expect_error(era_llm_response_entropy_f32(&bad_params[k], BT, h, id, 2, out_a), ERA_ERR_BAD_PARAMETER,
                     param_names[k]);
    }
    reset_outputs();
    expect_error(era_llm_scales_f32(NULL, BT, resp_h, 2, id, a, out_a, out_b), ERA_ERR_NULL_POINTER, "NULL params");

    /* Results that would leave the float32 range. */
    era_llm_params huge_k = p;
    huge_k.k = 1e30;                  /* legal, but above omega_high A / (1/k) = 3e38 * 1e30 overflows */
    float huge_a[BT] = {1, 1, 3e38f}, high_h[2] = {10.0f, 10.0f};
    reset_outputs();
    expect_error(era_llm_scales_f32(&huge_k, BT, high_h, 2, id, huge_a, out_a, out_b), ERA_ERR_BAD_PARAMETER,
                 "rescaled advantage overflows float32");
    float huge_s[BT] = {1, 1, 1e38f};
    memcpy(bad, z, sizeof z);
    bad[(BT - 1) * BV + 1] = 100.0f;  /* logp of the last token = 1e38 * (z[2] - 100): below -FLT_MAX */
    reset_outputs();
    expect_error(era_llm_logprob_forward_f32(BT, BV, bad, labels, huge_s, out_a, out_b), ERA_ERR_BAD_PARAMETER,
                 "scale 1e38: the log-probability overflows float32");
    float big_g[BT] = {1, 1, 1e10f};
    reset_outputs();
    expect_error(era_llm_logprob_backward_f32(BT, BV, z, labels, huge_s, big_g, out_a), ERA_ERR_BAD_PARAMETER,
                 "gradient * scale overflows float32");
}

int main(void) {
    test_token_entropy();
    test_response_entropy_and_scales();
    test_logprob();
    test_grpo_step();
    test_bad_input();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
