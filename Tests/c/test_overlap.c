/*
 * test_overlap.c -- aliasing between a call's arrays (era.h, "Aliasing"). For every entry
 * point that reads and writes arrays, with all arrays carved out of one arena:
 *   - an output that partially overlaps an input (shifted by one element) is ERA_ERR_OVERLAP,
 *     and the arena is unchanged byte for byte (nothing written);
 *   - an output that is exactly an input it may not replace is ERA_ERR_OVERLAP too;
 *   - two outputs that overlap each other are ERA_ERR_OVERLAP;
 *   - the documented in-place calls (same pointer, same size) still work and give the
 *     out-of-place results bit for bit;
 *   - arrays that touch without sharing a byte (one ends where the next starts) are fine.
 * Prints "ok N - name" / "not ok N - name" per case and ends with "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#include "era.h"
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

enum { R = 6, D = 7, V = 33, T = 5, ARENA = 1 << 16 };

static unsigned char *arena, *snapshot;

static void fill_arena(void) {
    /* Every float and double slot of the arena holds a modest finite value (the same bytes
     * read as either type): so that any carving of it is valid input. */
    for (size_t i = 0; i + 8 <= ARENA; i += 8) {
        double v = 2.0 * uniform() - 1.0;
        float f[2] = {(float)v, (float)(-v / 3)};
        if ((i / 8) % 2) memcpy(arena + i, f, 8);
        else memcpy(arena + i, &v, 8);
    }
}

/* Arena pointers at byte offsets (aligned for the types used). */
static float *F(size_t offset) { return (float *)(void *)(arena + offset); }
static double *Dp(size_t offset) { return (double *)(void *)(arena + offset); }
static int64_t *I(size_t offset) { return (int64_t *)(void *)(arena + offset); }
static era_bf16 *B(size_t offset) { return (era_bf16 *)(void *)(arena + offset); }

static void take_snapshot(void) { memcpy(snapshot, arena, ARENA); }
static int unchanged(void) { return memcmp(snapshot, arena, ARENA) == 0; }

/* A refused call: the status is ERA_ERR_OVERLAP and the arena is untouched. */
static void refused(era_status status, const char *name) {
    char line[200];
    snprintf(line, sizeof line, "%s: ERA_ERR_OVERLAP, nothing written", name);
    if (status != ERA_ERR_OVERLAP) printf("# got status %d (%s)\n", (int)status, era_status_string(status));
    report(status == ERA_ERR_OVERLAP && unchanged(), line);
}

static void labels_at(size_t offset, int64_t n, int64_t range) {
    for (int64_t i = 0; i < n; i++) I(offset)[i] = (i * 7 + 3) % range;
}
static void ids_at(size_t offset, int64_t n, int64_t responses) {
    for (int64_t i = 0; i < n; i++) I(offset)[i] = i % responses;
}

static void test_discrete(void) {
    era_discrete_params p;
    era_discrete_params_init(&p);
    p.target_entropy = 1.0;
    size_t z = 0, g = 4096, out = 8192;
    const size_t n = (size_t)R * D;
    /* forward f32: out shifted one float into the logits */
    take_snapshot();
    refused(era_discrete_forward_f32(&p, R, D, F(z), F(z) + 1), "discrete forward f32, output = logits + 1");
    refused(era_discrete_forward_f64(&p, R, D, Dp(z), Dp(z) + n - 1), "discrete forward f64, output overlaps the logits' last value");
    refused(era_discrete_backward_f64(&p, R, D, Dp(z), Dp(g), Dp(g) - 1), "discrete backward f64, output = grad_out - 1");
    /* in place equals out of place */
    int ok = era_discrete_forward_f64(&p, R, D, Dp(z), Dp(out)) == ERA_OK &&
             era_discrete_forward_f64(&p, R, D, Dp(z), Dp(z)) == ERA_OK && memcmp(Dp(z), Dp(out), n * 8) == 0;
    report(ok, "discrete forward f64 in place (output == logits): OK, equal to out of place");
    ok = era_discrete_backward_f32(&p, R, D, F(z), F(g), F(out)) == ERA_OK &&
         era_discrete_backward_f32(&p, R, D, F(z), F(g), F(g)) == ERA_OK && memcmp(F(g), F(out), n * 4) == 0;
    report(ok, "discrete backward f32 in place over grad_out: OK, equal to out of place");
    /* adjacent, not overlapping */
    report(era_discrete_forward_f32(&p, R, D, F(z), F(z) + n) == ERA_OK,
           "discrete forward f32, output starting right after the logits: OK");
}

static void test_continuous(void) {
    era_continuous_params p;
    era_continuous_params_init(&p);
    p.target_entropy = -0.5 * D;
    size_t s = 0, g = 4096, out = 8192, res = 12288;
    const size_t n = (size_t)R * D;
    take_snapshot();
    refused(era_continuous_forward_f32(&p, R, D, F(s), F(s) + 3), "continuous forward f32, output = std_logits + 3");
    refused(era_continuous_backward_f64(&p, R, D, Dp(s), Dp(g), Dp(out), Dp(g) + 2),
            "continuous backward f64, residual gradient inside grad_log_std");
    refused(era_continuous_backward_f64(&p, R, D, Dp(s), Dp(g), Dp(out), Dp(out) + n - 1),
            "continuous backward f64, residual gradient overlapping the output");
    refused(era_continuous_backward_f32(&p, R, D, F(s), F(g), F(out), F(s)),
            "continuous backward f32, residual gradient at std_logits (never in place)");
    int ok = era_continuous_backward_f64(&p, R, D, Dp(s), Dp(g), Dp(out), Dp(res)) == ERA_OK;
    double *copy = malloc(n * 8), residual[R];
    memcpy(copy, Dp(out), n * 8);
    memcpy(residual, Dp(res), sizeof residual);
    ok = ok && era_continuous_backward_f64(&p, R, D, Dp(s), Dp(g), Dp(s), Dp(res)) == ERA_OK &&
         memcmp(Dp(s), copy, n * 8) == 0 && memcmp(Dp(res), residual, sizeof residual) == 0;
    report(ok, "continuous backward f64 in place over std_logits: OK, equal to out of place");
    free(copy);
}

static void test_entropies(void) {
    size_t a = 0, b = 4096;
    const size_t n = (size_t)R * D;
    take_snapshot();
    refused(era_softmax_entropy_f32(R, D, F(a), F(a) + 5), "softmax entropy f32, output inside the logits");
    refused(era_softmax_entropy_f64(R, D, Dp(a), Dp(a)), "softmax entropy f64, output == logits (no in-place form)");
    refused(era_gaussian_entropy_f64(R, D, Dp(a), Dp(a) + n - 2), "Gaussian entropy f64, output over the log stds' end");
    refused(era_tanh_gaussian_entropy_f32(R, D, F(a), F(b), F(b) + 1), "tanh-Gaussian entropy f32, output inside log_std");
    refused(era_truncated_normal_entropy_f64(R, D, Dp(a), Dp(b), -1.0, 1.0, Dp(a) + 4),
            "truncated-normal entropy f64, output inside loc");
    report(era_softmax_entropy_f64(R, D, Dp(a), Dp(a) + n) == ERA_OK, "softmax entropy f64, output right after the logits: OK");
}

static void test_llm(void) {
    era_llm_params p;
    era_llm_params_init(&p);
    size_t z = 0, lab = 8192, sc = 9216, gl = 10240, out = 11264, out2 = 12288, big = 16384;
    const size_t n = (size_t)T * V;
    labels_at(lab, T, V);
    for (int t = 0; t < T; t++) { F(sc)[t] = 0.5f + 0.25f * (float)t; F(gl)[t] = 1.0f; }
    take_snapshot();
    refused(era_token_entropy_f32(T, V, F(z), F(z) + 2), "token entropy f32, output inside the logits");
    refused(era_token_entropy_bf16(T, V, B(z), F(z) + 3), "token entropy bf16, output inside the logits");
    refused(era_llm_logprob_forward_f32(T, V, F(z), I(lab), F(sc), F(sc) + 1, NULL),
            "log-prob forward f32, log-probs over the scales");
    refused(era_llm_logprob_forward_f32(T, V, F(z), I(lab), NULL, F(out), F(out) + 2),
            "log-prob forward f32, entropies overlapping the log-probs");
    refused(era_llm_logprob_forward_bf16(T, V, B(z), I(lab), NULL, F(lab), NULL),
            "log-prob forward bf16, log-probs over the labels");
    refused(era_llm_logprob_backward_f32(T, V, F(z), I(lab), F(sc), F(gl), F(z) + 1),
            "log-prob backward f32, gradient = logits + 1");
    refused(era_llm_logprob_backward_f32(T, V, F(big), I(lab), NULL, F(gl), F(big) - 4),
            "log-prob backward f32, gradient overlapping grad_logprob");
    refused(era_llm_logprob_backward_bf16(T, V, B(z), I(lab), NULL, F(gl), B(z) + 7),
            "log-prob backward bf16, gradient = logits + 7");
    /* in place over the logits: the documented form */
    for (size_t i = 0; i < n; i++) F(big)[i] = F(z)[i];
    int ok = era_llm_logprob_backward_f32(T, V, F(z), I(lab), F(sc), F(gl), F(out2)) == ERA_OK;
    float *want = malloc(n * 4);
    memcpy(want, F(out2), n * 4);
    ok = ok && era_llm_logprob_backward_f32(T, V, F(big), I(lab), F(sc), F(gl), F(big)) == ERA_OK &&
         memcmp(F(big), want, n * 4) == 0;
    report(ok, "log-prob backward f32 in place over the logits: OK, equal to out of place");
    free(want);

    /* response entropies and scales */
    size_t h = 0, id = 1024, resp = 2048, adv = 3072, osc = 4096;
    for (int t = 0; t < T; t++) { F(h)[t] = 0.1f * (float)(t + 1); F(adv)[t] = (float)t - 2.0f; }
    ids_at(id, T, 2);
    take_snapshot();
    refused(era_llm_response_entropy_f32(&p, T, F(h), I(id), 2, F(h) + 1), "response entropy, output inside token_entropy");
    refused(era_llm_response_entropy_f32(&p, T, F(h), I(id), 2, F(id) + 1), "response entropy, output inside response_id");
    ok = era_llm_response_entropy_f32(&p, T, F(h), I(id), 2, F(resp)) == ERA_OK;
    take_snapshot();
    refused(era_llm_scales_f32(&p, T, F(resp), 2, I(id), F(adv), F(adv), F(osc)),
            "scales, out_logit_scale == advantages (only out_advantages may be)");
    refused(era_llm_scales_f32(&p, T, F(resp), 2, I(id), F(adv), F(osc), F(osc) + 1),
            "scales, the two outputs overlapping");
    refused(era_llm_scales_f32(&p, T, F(resp), 2, I(id), F(adv), F(osc), F(adv) + 1),
            "scales, out_advantages = advantages + 1");
    float scale[T], advantage[T];
    ok = ok && era_llm_scales_f32(&p, T, F(resp), 2, I(id), F(adv), F(osc), F(osc) + T) == ERA_OK;
    memcpy(scale, F(osc), sizeof scale);
    memcpy(advantage, F(osc) + T, sizeof advantage);
    ok = ok && era_llm_scales_f32(&p, T, F(resp), 2, I(id), F(adv), F(osc), F(adv)) == ERA_OK &&
         memcmp(F(osc), scale, sizeof scale) == 0 && memcmp(F(adv), advantage, sizeof advantage) == 0;
    report(ok, "scales in place (out_advantages == advantages), outputs touching: OK, equal to out of place");
}

static void test_linear(void) {
    enum { RT = 4, DIM = 5, VOC = 9 };
    size_t hid = 0, w = 1024, lab = 2048, gl = 3072, oh = 4096, ow = 5120, bias = 6144, loss = 7168;
    labels_at(lab, RT, VOC);
    for (int t = 0; t < RT; t++) F(gl)[t] = 1.0f;
    take_snapshot();
    refused(era_llm_linear_logprob_forward_f32(RT, DIM, VOC, F(hid), F(w), I(lab), NULL, F(w) + 3, NULL),
            "linear log-prob forward, log-probs inside the weight");
    refused(era_llm_linear_logprob_backward_f32(RT, DIM, VOC, F(hid), F(w), I(lab), NULL, F(gl), F(oh), F(oh) + 2),
            "linear log-prob backward, the two gradients overlapping");
    refused(era_llm_linear_logprob_backward_f32(RT, DIM, VOC, F(hid), F(w), I(lab), NULL, F(gl), F(hid), NULL),
            "linear log-prob backward, grad_hidden == hidden (never in place)");
    era_discrete_params p;
    era_discrete_params_init(&p);
    p.target_entropy = 1.0;
    refused(era_linear_discrete_ce_f32(&p, RT, DIM, VOC, F(hid), F(w), F(bias), I(lab), F(bias) + 2, NULL, NULL, NULL),
            "linear discrete CE, the loss inside the bias");
    refused(era_linear_discrete_ce_f32(&p, RT, DIM, VOC, F(hid), F(w), NULL, I(lab), F(loss), F(hid) + 1, NULL, NULL),
            "linear discrete CE, grad_features = features + 1");
    report(era_linear_discrete_ce_f32(&p, RT, DIM, VOC, F(hid), F(w), F(bias), I(lab), F(loss), F(oh), F(ow),
                                      F(bias) + VOC) == ERA_OK,
           "linear discrete CE, grad_bias right after the bias: OK");
}

int main(void) {
    arena = malloc(ARENA);
    snapshot = malloc(ARENA);
    if (!arena || !snapshot) return 2;
    fill_arena();
    test_discrete();
    fill_arena();
    test_continuous();
    fill_arena();
    test_entropies();
    fill_arena();
    test_llm();
    fill_arena();
    test_linear();
    report(strcmp(era_status_string(ERA_ERR_OVERLAP), "overlapping buffers") == 0,
           "era_status_string(ERA_ERR_OVERLAP) is \"overlapping buffers\"");
    printf("%d passed, %d failed\n", passed, failed);
    free(arena);
    free(snapshot);
    return failed != 0;
}
