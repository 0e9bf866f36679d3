/*
 * test_concurrency.c -- every kernel of libera called from eight threads at once, on inputs
 * large enough that libera splits their rows across threads of its own, while a ninth thread
 * keeps changing era_set_num_threads (1, 2, 3, 8, 0) and checks era_get_num_threads after
 * every change. era.h: "Every function is safe to call from many threads at once" and
 * "Results are bit-for-bit identical whatever the setting": every result must equal, bit for
 * bit, the one of a serial run made first with era_set_num_threads(1).
 * Prints "ok N - name" / "not ok N - name" per case and ends with "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#include "era.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ERA_TEST_SEED 0x2545F4914F6CDD1Dull
#include "test_support.h"

/* ---- deterministic inputs ----------------------------------------------------------- */
static era_bf16 to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return (era_bf16)(bits >> 16);
}

/* Sizes: large enough that every kernel splits its rows (libera runs calls below about
 * 65 000 element operations on the calling thread alone). */
enum {
    DR = 512, DC = 2000,      /* discrete ERA, softmax and Gaussian entropies */
    CR = 2048, CD = 64,       /* continuous ERA and its checks */
    CRM = 256,                /* rows of the tanh-squashed check (256 quadrature nodes an entry) */
    TR = 256, TD = 64,        /* tanh-squashed entropy */
    NR = 512, ND = 256,       /* truncated-normal entropy */
    LT = 64, LV = 32000,      /* LLM logits: tokens x vocabulary */
    RT = 4096, RR = 64        /* response entropies and scales: tokens, responses */
};

static float *dz32, *dg32;            /* discrete logits and upstream gradients */
static double *dz64, *dg64;
static float *cs32, *cg32, *cm32;     /* continuous std logits, gradients, means */
static double *cs64, *cg64, *cm64;
static float *tm32, *tl32, *nl32, *ns32;     /* tanh means/log stds, truncated locs/log stds */
static double *tm64, *tl64, *nl64, *ns64;
static float *lz32, *lscale, *lgrad;  /* LLM logits, per-token scales, d loss / d logp */
static double *lz64;
static era_bf16 *lz16;
static int64_t *llabel;
static float *rh, *radv, *rresp;      /* token entropies, advantages, response entropies */
static int64_t *rid;
static float *dout32_ref;             /* the serial discrete EXACT output, checked by era_check_discrete */
static double *dout64_ref;

static era_discrete_params dparams[3];
static era_continuous_params cparams;
static era_llm_params lparams;

static void make_inputs(void) {
    dz32 = xmalloc(sizeof(float) * DR * DC); dg32 = xmalloc(sizeof(float) * DR * DC);
    dz64 = xmalloc(sizeof(double) * DR * DC); dg64 = xmalloc(sizeof(double) * DR * DC);
    for (int64_t i = 0; i < (int64_t)DR * DC; i++) {
        double z = normal() * (i / DC % 4 == 0 ? 8.0 : 2.0);
        if (i % 97 == 0) z = 2.0;                 /* ties */
        if (i / DC % 64 == 5 && i % DC == 3) z = 60.0; /* near one-hot rows */
        dz32[i] = (float)z; dz64[i] = z;
        double g = normal();
        dg32[i] = (float)g; dg64[i] = g;
    }
    cs32 = xmalloc(sizeof(float) * CR * CD); cg32 = xmalloc(sizeof(float) * CR * CD); cm32 = xmalloc(sizeof(float) * CR * CD);
    cs64 = xmalloc(sizeof(double) * CR * CD); cg64 = xmalloc(sizeof(double) * CR * CD); cm64 = xmalloc(sizeof(double) * CR * CD);
    for (int64_t i = 0; i < (int64_t)CR * CD; i++) {
        double s = normal() * 3, g = normal(), m = normal();
        cs32[i] = (float)s; cs64[i] = s; cg32[i] = (float)g; cg64[i] = g; cm32[i] = (float)m; cm64[i] = m;
    }
    tm32 = xmalloc(sizeof(float) * TR * TD); tl32 = xmalloc(sizeof(float) * TR * TD);
    tm64 = xmalloc(sizeof(double) * TR * TD); tl64 = xmalloc(sizeof(double) * TR * TD);
    for (int64_t i = 0; i < (int64_t)TR * TD; i++) {
        double m = normal() * 2, l = normal() - 0.5;  /* stds both sides of 0.5 */
        tm32[i] = (float)m; tm64[i] = m; tl32[i] = (float)l; tl64[i] = l;
    }
    nl32 = xmalloc(sizeof(float) * NR * ND); ns32 = xmalloc(sizeof(float) * NR * ND);
    nl64 = xmalloc(sizeof(double) * NR * ND); ns64 = xmalloc(sizeof(double) * NR * ND);
    for (int64_t i = 0; i < (int64_t)NR * ND; i++) {
        double m = normal() * 3, l = normal() * 2;    /* intervals in the tails too */
        nl32[i] = (float)m; nl64[i] = m; ns32[i] = (float)l; ns64[i] = l;
    }
    lz32 = xmalloc(sizeof(float) * LT * LV); lz64 = xmalloc(sizeof(double) * LT * LV);
    lz16 = xmalloc(sizeof(era_bf16) * LT * LV);
    llabel = xmalloc(sizeof(int64_t) * LT);
    lscale = xmalloc(sizeof(float) * LT); lgrad = xmalloc(sizeof(float) * LT);
    for (int64_t t = 0; t < LT; t++) {
        for (int64_t i = 0; i < LV; i++) {
            double z = normal() * (t % 3 == 0 ? 6.0 : 1.5);
            if (t % 5 == 1 && i % 7 == 2) z = -INFINITY; /* banned tokens */
            lz64[t * LV + i] = z;
            lz32[t * LV + i] = (float)z;
            lz16[t * LV + i] = to_bf16((float)z);
        }
        llabel[t] = (t * 7919) % LV;
        if (t % 5 == 1 && llabel[t] % 7 == 2) llabel[t]++;
        static const float scales[3] = {1.0f, 2.0f, 0.5f};
        lscale[t] = scales[t % 3];
        lgrad[t] = (float)normal();
    }
    rh = xmalloc(sizeof(float) * RT); radv = xmalloc(sizeof(float) * RT);
    rid = xmalloc(sizeof(int64_t) * RT); rresp = xmalloc(sizeof(float) * RR);
    for (int64_t t = 0; t < RT; t++) {
        rh[t] = (float)(uniform() * 5);
        rid[t] = t % 17 == 0 ? -1 : (int64_t)((t * 31) % RR);
        radv[t] = (float)normal();
    }
    for (int64_t b = 0; b < RR; b++) rresp[b] = (float)(b % 8) * 0.5f; /* below, between and above */

    static const int32_t modes[3] = {ERA_DISCRETE_EXACT, ERA_DISCRETE_TIGHT, ERA_DISCRETE_REFERENCE};
    for (int m = 0; m < 3; m++) {
        era_discrete_params_init(&dparams[m]);
        dparams[m].target_entropy = 2.0;
        dparams[m].mode = modes[m];
    }
    era_continuous_params_init(&cparams);
    cparams.target_entropy = -0.5 * CD;
    cparams.residual = 0.25;
    era_llm_params_init(&lparams);
}

/* ---- the kernels ---------------------------------------------------------------------- */

enum {
    K_DFWD32, K_DFWD64 = K_DFWD32 + 3, K_DBWD32 = K_DFWD64 + 3, K_DBWD64 = K_DBWD32 + 3, K_CFWD32 = K_DBWD64 + 3,
    K_CFWD64, K_CBWD32, K_CBWD64, K_SOFT32, K_SOFT64, K_GAUSS32, K_GAUSS64, K_TANH32, K_TANH64, K_TRUNC32, K_TRUNC64,
    K_CHKD32, K_CHKD64, K_CHKC32, K_CHKC64, K_CHKCM32, K_CHKCM64, K_TOK32, K_TOK64, K_TOK16, K_RESP, K_SCALES,
    K_LPF32, K_LPF16, K_LPB32, K_LPB16, K_DFWD32_INPLACE, K_LPB32_INPLACE, K_COUNT
};

typedef struct {
    char name[96];
    size_t out_bytes[2]; /* the outputs a call writes (0: none) */
} kernel_info;

static kernel_info kernels[K_COUNT];
static void *reference[K_COUNT][2];

static void describe(int k, const char *name, size_t out0, size_t out1) {
    snprintf(kernels[k].name, sizeof kernels[k].name, "%s", name);
    kernels[k].out_bytes[0] = out0;
    kernels[k].out_bytes[1] = out1;
}

static void describe_kernels(void) {
    static const char *const mode_names[3] = {"EXACT", "TIGHT", "REFERENCE"};
    char name[96];
    for (int m = 0; m < 3; m++) {
        snprintf(name, sizeof name, "era_discrete_forward_f32 %s %dx%d", mode_names[m], DR, DC);
        describe(K_DFWD32 + m, name, sizeof(float) * DR * DC, 0);
        snprintf(name, sizeof name, "era_discrete_forward_f64 %s %dx%d", mode_names[m], DR, DC);
        describe(K_DFWD64 + m, name, sizeof(double) * DR * DC, 0);
        snprintf(name, sizeof name, "era_discrete_backward_f32 %s %dx%d", mode_names[m], DR, DC);
        describe(K_DBWD32 + m, name, sizeof(float) * DR * DC, 0);
        snprintf(name, sizeof name, "era_discrete_backward_f64 %s %dx%d", mode_names[m], DR, DC);
        describe(K_DBWD64 + m, name, sizeof(double) * DR * DC, 0);
    }
    describe(K_CFWD32, "era_continuous_forward_f32 2048x64", sizeof(float) * CR * CD, 0);
    describe(K_CFWD64, "era_continuous_forward_f64 2048x64", sizeof(double) * CR * CD, 0);
    describe(K_CBWD32, "era_continuous_backward_f32 2048x64 (with residual gradient)", sizeof(float) * CR * CD, sizeof(float) * CR);
    describe(K_CBWD64, "era_continuous_backward_f64 2048x64 (with residual gradient)", sizeof(double) * CR * CD, sizeof(double) * CR);
    describe(K_SOFT32, "era_softmax_entropy_f32 512x2000", sizeof(float) * DR, 0);
    describe(K_SOFT64, "era_softmax_entropy_f64 512x2000", sizeof(double) * DR, 0);
    describe(K_GAUSS32, "era_gaussian_entropy_f32 512x2000", sizeof(float) * DR, 0);
    describe(K_GAUSS64, "era_gaussian_entropy_f64 512x2000", sizeof(double) * DR, 0);
    describe(K_TANH32, "era_tanh_gaussian_entropy_f32 256x64", sizeof(float) * TR, 0);
    describe(K_TANH64, "era_tanh_gaussian_entropy_f64 256x64", sizeof(double) * TR, 0);
    describe(K_TRUNC32, "era_truncated_normal_entropy_f32 512x256", sizeof(float) * NR, 0);
    describe(K_TRUNC64, "era_truncated_normal_entropy_f64 512x256", sizeof(double) * NR, 0);
    describe(K_CHKD32, "era_check_discrete_f32 on the EXACT output 512x2000", sizeof(era_bound_report), 0);
    describe(K_CHKD64, "era_check_discrete_f64 on the EXACT output 512x2000", sizeof(era_bound_report), 0);
    describe(K_CHKC32, "era_check_continuous_f32 2048x64, Gaussian", sizeof(era_bound_report), 0);
    describe(K_CHKC64, "era_check_continuous_f64 2048x64, Gaussian", sizeof(era_bound_report), 0);
    describe(K_CHKCM32, "era_check_continuous_f32 256x64, tanh-squashed (means)", sizeof(era_bound_report), 0);
    describe(K_CHKCM64, "era_check_continuous_f64 256x64, tanh-squashed (means)", sizeof(era_bound_report), 0);
    describe(K_TOK32, "era_token_entropy_f32 64x32000", sizeof(float) * LT, 0);
    describe(K_TOK64, "era_token_entropy_f64 64x32000", sizeof(double) * LT, 0);
    describe(K_TOK16, "era_token_entropy_bf16 64x32000", sizeof(float) * LT, 0);
    describe(K_RESP, "era_llm_response_entropy_f32 4096 tokens, 64 responses", sizeof(float) * RR, 0);
    describe(K_SCALES, "era_llm_scales_f32 4096 tokens, 64 responses", sizeof(float) * RT, sizeof(float) * RT);
    describe(K_LPF32, "era_llm_logprob_forward_f32 64x32000 (scales, entropies)", sizeof(float) * LT, sizeof(float) * LT);
    describe(K_LPF16, "era_llm_logprob_forward_bf16 64x32000 (scales, entropies)", sizeof(float) * LT, sizeof(float) * LT);
    describe(K_LPB32, "era_llm_logprob_backward_f32 64x32000", sizeof(float) * LT * LV, 0);
    describe(K_LPB16, "era_llm_logprob_backward_bf16 64x32000", sizeof(era_bf16) * LT * LV, 0);
    describe(K_DFWD32_INPLACE, "era_discrete_forward_f32 EXACT in place 512x2000", sizeof(float) * DR * DC, 0);
    describe(K_LPB32_INPLACE, "era_llm_logprob_backward_f32 in place 64x32000", sizeof(float) * LT * LV, 0);
}

/* Runs kernel k, writing into out[0] (and out[1]). In-place kernels copy their input first. */
static era_status run_kernel(int k, void *out[2]) {
    void *o = out[0], *o1 = out[1];
    if (k >= K_DFWD32 && k < K_DFWD32 + 3) return era_discrete_forward_f32(&dparams[k - K_DFWD32], DR, DC, dz32, o);
    if (k >= K_DFWD64 && k < K_DFWD64 + 3) return era_discrete_forward_f64(&dparams[k - K_DFWD64], DR, DC, dz64, o);
    if (k >= K_DBWD32 && k < K_DBWD32 + 3) return era_discrete_backward_f32(&dparams[k - K_DBWD32], DR, DC, dz32, dg32, o);
    if (k >= K_DBWD64 && k < K_DBWD64 + 3) return era_discrete_backward_f64(&dparams[k - K_DBWD64], DR, DC, dz64, dg64, o);
    switch (k) {
    case K_CFWD32: return era_continuous_forward_f32(&cparams, CR, CD, cs32, o);
    case K_CFWD64: return era_continuous_forward_f64(&cparams, CR, CD, cs64, o);
    case K_CBWD32: return era_continuous_backward_f32(&cparams, CR, CD, cs32, cg32, o, o1);
    case K_CBWD64: return era_continuous_backward_f64(&cparams, CR, CD, cs64, cg64, o, o1);
    case K_SOFT32: return era_softmax_entropy_f32(DR, DC, dz32, o);
    case K_SOFT64: return era_softmax_entropy_f64(DR, DC, dz64, o);
    case K_GAUSS32: return era_gaussian_entropy_f32(DR, DC, dz32, o);
    case K_GAUSS64: return era_gaussian_entropy_f64(DR, DC, dz64, o);
    case K_TANH32: return era_tanh_gaussian_entropy_f32(TR, TD, tm32, tl32, o);
    case K_TANH64: return era_tanh_gaussian_entropy_f64(TR, TD, tm64, tl64, o);
    case K_TRUNC32: return era_truncated_normal_entropy_f32(NR, ND, nl32, ns32, -1.0, 1.0, o);
    case K_TRUNC64: return era_truncated_normal_entropy_f64(NR, ND, nl64, ns64, -1.0, 1.0, o);
    case K_CHKD32: return era_check_discrete_f32(&dparams[0], DR, DC, dout32_ref, 1e-5, o);
    case K_CHKD64: return era_check_discrete_f64(&dparams[0], DR, DC, dout64_ref, 1e-9, o);
    case K_CHKC32: return era_check_continuous_f32(&cparams, CR, CD, NULL, cs32, 1e-6, o);
    case K_CHKC64: return era_check_continuous_f64(&cparams, CR, CD, NULL, cs64, 1e-9, o);
    case K_CHKCM32: return era_check_continuous_f32(&cparams, CRM, CD, cm32, cs32, 1e-6, o);
    case K_CHKCM64: return era_check_continuous_f64(&cparams, CRM, CD, cm64, cs64, 1e-9, o);
    case K_TOK32: return era_token_entropy_f32(LT, LV, lz32, o);
    case K_TOK64: return era_token_entropy_f64(LT, LV, lz64, o);
    case K_TOK16: return era_token_entropy_bf16(LT, LV, lz16, o);
    case K_RESP: return era_llm_response_entropy_f32(&lparams, RT, rh, rid, RR, o);
    case K_SCALES: return era_llm_scales_f32(&lparams, RT, rresp, RR, rid, radv, o, o1);
    case K_LPF32: return era_llm_logprob_forward_f32(LT, LV, lz32, llabel, lscale, o, o1);
    case K_LPF16: return era_llm_logprob_forward_bf16(LT, LV, lz16, llabel, lscale, o, o1);
    case K_LPB32: return era_llm_logprob_backward_f32(LT, LV, lz32, llabel, lscale, lgrad, o);
    case K_LPB16: return era_llm_logprob_backward_bf16(LT, LV, lz16, llabel, lscale, lgrad, o);
    case K_DFWD32_INPLACE:
        memcpy(o, dz32, sizeof(float) * DR * DC);
        return era_discrete_forward_f32(&dparams[0], DR, DC, o, o);
    case K_LPB32_INPLACE:
        memcpy(o, lz32, sizeof(float) * LT * LV);
        return era_llm_logprob_backward_f32(LT, LV, o, llabel, lscale, lgrad, o);
    }
    return ERA_ERR_INTERNAL;
}

/* ---- the concurrent phase --------------------------------------------------------------- */

enum { WORKERS = 8 };

typedef struct {
    int id;
    int mismatched[K_COUNT]; /* bit-different results */
    int bad_status[K_COUNT];
    int runs[K_COUNT];
} worker;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int workers_done;
static pthread_barrier_t start;

static void *work(void *arg) {
    worker *w = arg;
    pthread_barrier_wait(&start);
    /* every worker runs every kernel, each from another starting point, so that different
     * kernels and the same kernel run side by side */
    for (int i = 0; i < K_COUNT; i++) {
        int k = (i + w->id * 5) % K_COUNT;
        void *out[2] = {NULL, NULL};
        for (int j = 0; j < 2; j++)
            if (kernels[k].out_bytes[j]) {
                out[j] = xmalloc(kernels[k].out_bytes[j]);
                memset(out[j], 0xA5, kernels[k].out_bytes[j]);
            }
        era_status st = run_kernel(k, out);
        w->runs[k]++;
        if (st != ERA_OK) w->bad_status[k]++;
        for (int j = 0; j < 2; j++)
            if (out[j] && memcmp(out[j], reference[k][j], kernels[k].out_bytes[j]) != 0) {
                w->mismatched[k]++;
                break;
            }
        free(out[0]);
        free(out[1]);
    }
    pthread_mutex_lock(&lock);
    workers_done++;
    pthread_mutex_unlock(&lock);
    return NULL;
}

typedef struct {
    long sets, wrong_get, wrong_status, refused_ok, refused_changed;
    long processors;
} toggler_state;

static void *toggle(void *arg) {
    toggler_state *s = arg;
    static const int32_t values[5] = {1, 2, 3, 8, 0};
    struct timespec pause = {0, 200000}; /* 0.2 ms */
    pthread_barrier_wait(&start);
    for (long i = 0;; i++) {
        pthread_mutex_lock(&lock);
        int done = workers_done == WORKERS;
        pthread_mutex_unlock(&lock);
        if (done) break;
        int32_t n = values[i % 5];
        if (era_set_num_threads(n) != ERA_OK) s->wrong_status++;
        int32_t got = era_get_num_threads();
        if (got != (n ? n : (int32_t)s->processors)) s->wrong_get++;
        s->sets++;
        if (i % 50 == 7) { /* refused settings leave the setting alone */
            if (era_set_num_threads(i % 100 == 7 ? -1 : 1025) != ERA_ERR_BAD_PARAMETER) s->refused_ok++;
            if (era_get_num_threads() != got) s->refused_changed++;
        }
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(void) {
    double t0 = now();
    make_inputs();
    describe_kernels();
    double t_inputs = now() - t0;
    double cost[K_COUNT];

    /* the serial run */
    int ok = era_set_num_threads(1) == ERA_OK && era_get_num_threads() == 1;
    report(ok, "era_set_num_threads(1) before the serial run, era_get_num_threads() == 1");
    int serial_ok = 1;
    for (int k = 0; k < K_COUNT; k++) {
        if (k == K_CHKD32) { dout32_ref = reference[K_DFWD32][0]; dout64_ref = reference[K_DFWD64][0]; }
        for (int j = 0; j < 2; j++)
            if (kernels[k].out_bytes[j]) {
                reference[k][j] = xmalloc(kernels[k].out_bytes[j]);
                memset(reference[k][j], 0xA5, kernels[k].out_bytes[j]);
            }
        double start_k = now();
        era_status st = run_kernel(k, reference[k]);
        cost[k] = now() - start_k;
        if (st != ERA_OK) {
            printf("# serial %s: %s\n", kernels[k].name, era_status_string(st));
            serial_ok = 0;
        }
    }
    char name[256];
    snprintf(name, sizeof name, "serial run with 1 thread: all %d kernels return ok", K_COUNT);
    report(serial_ok, name);
    /* the serial EXACT outputs hold the floor (the checks that the concurrent phase repeats) */
    era_bound_report *r32 = reference[K_CHKD32][0], *r64 = reference[K_CHKD64][0];
    report(r32->rows == DR && r32->violations == 0 && r64->rows == DR && r64->violations == 0,
           "serial discrete EXACT outputs hold the entropy floor (era_check_discrete_f32/f64)");
    double t1 = now();
    printf("# serial run: %.2f s (inputs %.2f s); slowest:", t1 - t0 - t_inputs, t_inputs);
    for (int shown = 0; shown < 4; shown++) {
        int worst = 0;
        for (int k = 1; k < K_COUNT; k++) if (cost[k] > cost[worst]) worst = k;
        printf(" %s %.2f s%s", kernels[worst].name, cost[worst], shown < 3 ? "," : "\n");
        cost[worst] = -1;
    }

    /* eight workers and a thread that keeps changing the setting */
    static worker workers[WORKERS];
    pthread_t threads[WORKERS], toggler;
    toggler_state ts;
    memset(&ts, 0, sizeof ts);
    ts.processors = sysconf(_SC_NPROCESSORS_ONLN);
    if (ts.processors < 1) ts.processors = 1;
    pthread_barrier_init(&start, NULL, WORKERS + 1);
    int started = 1;
    for (int w = 0; w < WORKERS; w++) {
        workers[w].id = w;
        if (pthread_create(&threads[w], NULL, work, &workers[w]) != 0) started = 0;
    }
    if (pthread_create(&toggler, NULL, toggle, &ts) != 0) started = 0;
    if (!started) {
        report(0, "starting 8 worker threads and the setting thread");
        printf("%d passed, %d failed\n", passed, failed);
        return 1;
    }
    for (int w = 0; w < WORKERS; w++) pthread_join(threads[w], NULL);
    pthread_join(toggler, NULL);
    pthread_barrier_destroy(&start);
    double t2 = now();
    printf("# concurrent phase: %d workers x %d kernels in %.2f s, %ld setting changes\n", WORKERS, K_COUNT, t2 - t1,
           ts.sets);

    for (int k = 0; k < K_COUNT; k++) {
        int runs = 0, mismatched = 0, bad = 0;
        for (int w = 0; w < WORKERS; w++) {
            runs += workers[w].runs[k];
            mismatched += workers[w].mismatched[k];
            bad += workers[w].bad_status[k];
        }
        if (mismatched || bad) printf("# %s: %d of %d calls differ, %d not ok\n", kernels[k].name, mismatched, runs, bad);
        snprintf(name, sizeof name, "%.96s: %d concurrent calls bit-identical to the serial run", kernels[k].name, runs);
        report(runs == WORKERS && mismatched == 0 && bad == 0, name);
    }
    snprintf(name, sizeof name, "era_set_num_threads 1/2/3/8/0 while the kernels ran: %ld changes, each ok and read "
             "back by era_get_num_threads (0: %ld processors)", ts.sets, ts.processors);
    if (ts.wrong_get || ts.wrong_status)
        printf("# %ld wrong statuses, %ld wrong era_get_num_threads values\n", ts.wrong_status, ts.wrong_get);
    report(ts.sets > 0 && ts.wrong_get == 0 && ts.wrong_status == 0, name);
    report(ts.refused_ok == 0 && ts.refused_changed == 0,
           "era_set_num_threads(-1) and (1025) refused with bad parameter, the setting unchanged");

    /* and once more serially, with the default setting */
    ok = era_set_num_threads(0) == ERA_OK && era_get_num_threads() == (int32_t)ts.processors;
    report(ok, "era_set_num_threads(0) restores the number of online processors");
    int same = 1;
    for (int k = 0; k < K_COUNT; k++) {
        void *out[2] = {NULL, NULL};
        for (int j = 0; j < 2; j++) if (kernels[k].out_bytes[j]) out[j] = xmalloc(kernels[k].out_bytes[j]);
        if (run_kernel(k, out) != ERA_OK) same = 0;
        for (int j = 0; j < 2; j++)
            if (out[j] && memcmp(out[j], reference[k][j], kernels[k].out_bytes[j]) != 0) {
                printf("# %s differs with the default setting\n", kernels[k].name);
                same = 0;
            }
        free(out[0]);
        free(out[1]);
    }
    report(same, "every kernel again with the default setting: bit-identical to the serial run");
    printf("# total %.2f s\n", now() - t0);

    for (int k = 0; k < K_COUNT; k++) { free(reference[k][0]); free(reference[k][1]); }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
