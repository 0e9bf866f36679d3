/*
 * bench_c.c -- times libera's kernels through the C ABI (include/era.h) for bench/run.py.
 *
 * run.py writes one workload's inputs as raw little-endian files into DATA_DIR, runs
 *
 *   bench_c KIND DTYPE ROWS COLS DATA_DIR MIN_MS REPS [P1 P2 P3 P4]
 *
 *   KIND discrete       P1 target_entropy, P2 tau, P3 mode (0 exact, 1 tight, 2 reference)
 *                       inputs x.bin [rows*cols] f32, g.bin [rows*cols] f32
 *                       outputs out.bin (forward), grad.bin (backward)
 *   KIND continuous     P1 target_entropy, P2 residual, P3 log_std_min, P4 log_std_max
 *                       inputs x.bin, g.bin as above
 *                       outputs out.bin, grad.bin, grad_residual.bin [rows]
 *   KIND token_entropy  inputs x.bin [rows*cols] f32 or bf16; output out.bin [rows] f32
 *   KIND logprob        inputs x.bin f32 or bf16, labels.bin [rows] int64, scale.bin [rows]
 *                       f32, glp.bin [rows] f32 (upstream gradient of the log-probs)
 *                       outputs out.bin [rows] f32 (log-probs, entropy not asked for),
 *                       grad.bin [rows*cols] (the dtype of x)
 *
 * and reads the JSON object it prints on stdout. The environment variable ERA_BENCH_THREADS,
 * when set, is passed to era_set_num_threads first (0: the library's default). The outputs of one forward and one backward
 * call are written before timing, so that run.py can check them against the Python binding.
 * Each pass ("fwd", "bwd", "fwd+bwd") is timed as REPS repetitions of n calls, n chosen so
 * that one repetition lasts at least MIN_MS milliseconds (clock_gettime(CLOCK_MONOTONIC));
 * the JSON gives the median time of one call and every repetition's time.
 */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "era.h"

enum { MAX_REPS = 1000 };

typedef struct workload {
    const char *kind;
    int bf16;       /* x is bfloat16 (token_entropy, logprob) */
    int64_t rows, cols;
    era_discrete_params discrete;
    era_continuous_params continuous;
    void *x;        /* the logits: float or era_bf16                                     */
    float *g;       /* upstream gradient of the forward output (discrete, continuous)    */
    int64_t *labels;
    float *scale;
    float *glp;     /* upstream gradient of the log-probs                                */
    void *out;      /* forward output                                                    */
    void *grad;     /* backward output                                                   */
    float *grad_residual;
} workload;

typedef era_status (*pass_fn)(workload *w);

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fail(const char *what, const char *detail) {
    printf("{\"error\": \"%s: %s\"}\n", what, detail);
    exit(1);
}

static void *read_input(const char *dir, const char *name, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail("cannot open", path);
    void *data = malloc(bytes ? bytes : 1);
    if (!data) fail("out of memory reading", path);
    if (fread(data, 1, bytes, f) != bytes) fail("short file", path);
    fclose(f);
    return data;
}

static void write_output(const char *dir, const char *name, const void *data, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes) fail("cannot write", path);
    fclose(f);
}

static void *alloc_output(size_t bytes) {
    void *data = malloc(bytes ? bytes : 1);
    if (!data) fail("out of memory", "output buffer");
    return data;
}

/* ---- the passes of each kind ---------------------------------------------------------- */

static era_status discrete_fwd(workload *w) {
    return era_discrete_forward_f32(&w->discrete, w->rows, w->cols, w->x, w->out);
}
static era_status discrete_bwd(workload *w) {
    return era_discrete_backward_f32(&w->discrete, w->rows, w->cols, w->x, w->g, w->grad);
}
static era_status continuous_fwd(workload *w) {
    return era_continuous_forward_f32(&w->continuous, w->rows, w->cols, w->x, w->out);
}
static era_status continuous_bwd(workload *w) {
    return era_continuous_backward_f32(&w->continuous, w->rows, w->cols, w->x, w->g, w->grad, w->grad_residual);
}
static era_status token_entropy_fwd(workload *w) {
    return w->bf16 ? era_token_entropy_bf16(w->rows, w->cols, w->x, w->out)
                   : era_token_entropy_f32(w->rows, w->cols, w->x, w->out);
}
static era_status logprob_fwd(workload *w) {
    return w->bf16 ? era_llm_logprob_forward_bf16(w->rows, w->cols, w->x, w->labels, w->scale, w->out, NULL)
                   : era_llm_logprob_forward_f32(w->rows, w->cols, w->x, w->labels, w->scale, w->out, NULL);
}
static era_status logprob_bwd(workload *w) {
    return w->bf16 ? era_llm_logprob_backward_bf16(w->rows, w->cols, w->x, w->labels, w->scale, w->glp, w->grad)
                   : era_llm_logprob_backward_f32(w->rows, w->cols, w->x, w->labels, w->scale, w->glp, w->grad);
}

/* The forward and backward of the workload's kind; bwd is NULL for forward-only kinds. */
static pass_fn g_fwd, g_bwd;

static era_status fwd_then_bwd(workload *w) {
    era_status s = g_fwd(w);
    return s != ERA_OK ? s : g_bwd(w);
}

static void run_checked(pass_fn fn, workload *w, const char *pass) {
    era_status s = fn(w);
    if (s != ERA_OK) fail(pass, era_status_string(s));
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times `fn`: n calls per repetition (at least min_s seconds), reps repetitions; prints the
 * JSON member "name": {...} with the median seconds per call in milliseconds. */
static void time_pass(const char *name, pass_fn fn, workload *w, double min_s, int reps, int last) {
    run_checked(fn, w, name); /* warm-up */
    long n = 1;
    for (;;) {
        double t0 = seconds_now();
        for (long i = 0; i < n; i++) run_checked(fn, w, name);
        double elapsed = seconds_now() - t0;
        if (elapsed >= min_s) break;
        double grow = elapsed > 0 ? 1.2 * min_s / elapsed : 10.0;
        n = (long)((double)n * (grow < 2.0 ? 2.0 : grow > 100.0 ? 100.0 : grow)) + 1;
    }
    double per_call[MAX_REPS], sorted[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        double t0 = seconds_now();
        for (long i = 0; i < n; i++) run_checked(fn, w, name);
        per_call[r] = (seconds_now() - t0) / (double)n;
        sorted[r] = per_call[r];
    }
    qsort(sorted, (size_t)reps, sizeof sorted[0], compare_doubles);
    double median = reps % 2 ? sorted[reps / 2] : 0.5 * (sorted[reps / 2 - 1] + sorted[reps / 2]);
    printf("    \"%s\": {\"median_ms\": %.6g, \"inner\": %ld, \"reps_ms\": [", name, 1e3 * median, n);
    for (int r = 0; r < reps; r++) printf("%s%.6g", r ? ", " : "", 1e3 * per_call[r]);
    printf("]}%s\n", last ? "" : ",");
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s KIND DTYPE ROWS COLS DATA_DIR MIN_MS REPS [P1 P2 P3 P4]\n", argv[0]);
        return 2;
    }
    workload w;
    memset(&w, 0, sizeof w);
    w.kind = argv[1];
    const char *dtype = argv[2];
    w.rows = atoll(argv[3]);
    w.cols = atoll(argv[4]);
    const char *dir = argv[5];
    double min_s = atof(argv[6]) * 1e-3;
    int reps = atoi(argv[7]);
    double p[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4 && 8 + i < argc; i++) p[i] = atof(argv[8 + i]);
    if (reps < 1 || reps > MAX_REPS) fail("bad argument", "REPS must be 1..1000");
    if (strcmp(dtype, "f32") != 0 && strcmp(dtype, "bf16") != 0) fail("bad argument", "DTYPE must be f32 or bf16");
    w.bf16 = strcmp(dtype, "bf16") == 0;
    const char *threads = getenv("ERA_BENCH_THREADS");
    if (threads && *threads && era_set_num_threads((int32_t)atoi(threads)) != ERA_OK)
        fail("bad ERA_BENCH_THREADS", threads);

    size_t n = (size_t)(w.rows * w.cols), rows = (size_t)w.rows;
    size_t x_bytes = n * (w.bf16 ? sizeof(era_bf16) : sizeof(float));
    w.x = read_input(dir, "x.bin", x_bytes);
    size_t out_bytes = 0, grad_bytes = 0;

    if (strcmp(w.kind, "discrete") == 0 || strcmp(w.kind, "continuous") == 0) {
        if (w.bf16) fail("bad argument", "discrete and continuous ERA take f32 here");
        w.g = read_input(dir, "g.bin", n * sizeof(float));
        out_bytes = grad_bytes = n * sizeof(float);
        if (w.kind[0] == 'd') {
            era_discrete_params_init(&w.discrete);
            w.discrete.target_entropy = p[0];
            w.discrete.tau = p[1];
            w.discrete.mode = (int32_t)p[2];
            g_fwd = discrete_fwd;
            g_bwd = discrete_bwd;
        } else {
            era_continuous_params_init(&w.continuous);
            w.continuous.target_entropy = p[0];
            w.continuous.residual = p[1];
            w.continuous.log_std_min = p[2];
            w.continuous.log_std_max = p[3];
            w.grad_residual = alloc_output(rows * sizeof(float));
            g_fwd = continuous_fwd;
            g_bwd = continuous_bwd;
        }
    } else if (strcmp(w.kind, "token_entropy") == 0) {
        out_bytes = rows * sizeof(float);
        g_fwd = token_entropy_fwd;
    } else if (strcmp(w.kind, "logprob") == 0) {
        w.labels = read_input(dir, "labels.bin", rows * sizeof(int64_t));
        w.scale = read_input(dir, "scale.bin", rows * sizeof(float));
        w.glp = read_input(dir, "glp.bin", rows * sizeof(float));
        out_bytes = rows * sizeof(float);
        grad_bytes = x_bytes;
        g_fwd = logprob_fwd;
        g_bwd = logprob_bwd;
    } else {
        fail("unknown KIND", w.kind);
    }
    w.out = alloc_output(out_bytes);
    if (grad_bytes) w.grad = alloc_output(grad_bytes);

    /* One checked call of each pass; its outputs go back to run.py for verification. */
    run_checked(g_fwd, &w, "fwd");
    write_output(dir, "out.bin", w.out, out_bytes);
    if (g_bwd) {
        run_checked(g_bwd, &w, "bwd");
        write_output(dir, "grad.bin", w.grad, grad_bytes);
        if (w.grad_residual) write_output(dir, "grad_residual.bin", w.grad_residual, rows * sizeof(float));
    }

    printf("{\n  \"version\": \"%s\", \"abi\": %d, \"threads\": %d,\n  \"passes\": {\n", era_version_string(),
           (int)era_abi_version(), (int)era_get_num_threads());
    if (g_bwd) {
        time_pass("fwd", g_fwd, &w, min_s, reps, 0);
        time_pass("bwd", g_bwd, &w, min_s, reps, 0);
        time_pass("fwd+bwd", fwd_then_bwd, &w, min_s, reps, 1);
    } else {
        time_pass("fwd", g_fwd, &w, min_s, reps, 1);
    }
    printf("  }\n}\n");
    free(w.x), free(w.g), free(w.labels), free(w.scale), free(w.glp), free(w.out), free(w.grad);
    free(w.grad_residual);
    return 0;
}
