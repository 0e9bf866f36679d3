/* The fused linear + LLM-ERA log-prob head against the unfused path (cblas_sgemm into a
 * tokens x vocab logits buffer, then era_llm_logprob_*): the fastest of REPS calls and the
 * growth of the peak resident memory over the call, in one process per mode so that the
 * peaks do not mix. Run by bench/run.py.
 *   usage: bench_linear MODE T D V REPS     MODE: fused_fwd unfused_fwd fused_bwd unfused_bwd
 * ERA_BENCH_THREADS sets libera's thread setting; OpenBLAS keeps its own (OPENBLAS_NUM_THREADS).
 * Prints one JSON object: {"mode", "tokens", "dim", "vocab", "seconds", "peak_mib", "status"}. */
#define _POSIX_C_SOURCE 199309L
#include "era.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The peak resident memory of this process image, VmHWM of /proc/self/status, in KiB (not
 * getrusage's ru_maxrss, which a process started from a large one, such as run.py, inherits
 * across exec). */
static long peak_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = atol(line + 6);
    if (f) fclose(f);
    return kib;
}

static double uniform(unsigned long long *state) { /* splitmix64 in [0, 1) */
    unsigned long long z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: bench_linear MODE T D V REPS\n"); return 2; }
    const char *mode = argv[1];
    const long T = atol(argv[2]), D = atol(argv[3]), V = atol(argv[4]);
    const int reps = atoi(argv[5]);
    const char *threads = getenv("ERA_BENCH_THREADS");  /* libera's thread setting, as bench_c */
    if (threads && era_set_num_threads(atoi(threads)) != ERA_OK) { fprintf(stderr, "bad ERA_BENCH_THREADS\n"); return 2; }
    float *h = malloc(sizeof(float) * (size_t)(T * D)), *w = malloc(sizeof(float) * (size_t)(V * D));
    float *g = malloc(sizeof(float) * (size_t)T), *lp = malloc(sizeof(float) * (size_t)T), *en = malloc(sizeof(float) * (size_t)T);
    float *gh = malloc(sizeof(float) * (size_t)(T * D)), *gw = malloc(sizeof(float) * (size_t)(V * D));
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)T);
    if (!h || !w || !g || !lp || !en || !gh || !gw || !labels) { fprintf(stderr, "out of memory\n"); return 2; }
    unsigned long long state = 1;
    for (long i = 0; i < T * D; i++) h[i] = (float)((uniform(&state) - 0.5) * 3.4);
    for (long i = 0; i < V * D; i++) w[i] = (float)((uniform(&state) - 0.5) * 3.4 / __builtin_sqrt((double)D));
    for (long t = 0; t < T; t++) { labels[t] = (int64_t)(uniform(&state) * (double)V); g[t] = 1.0f / (float)T; }
    /* Touch every output page (with a value: a compiler may turn malloc + memset 0 into
     * calloc, whose pages stay untouched) and warm OpenBLAS before the baseline, so that the
     * peak growth is the call's own memory. */
    for (long i = 0; i < T * D; i++) gh[i] = 1;
    for (long i = 0; i < V * D; i++) gw[i] = 1;
    for (long t = 0; t < T; t++) lp[t] = en[t] = 1;
    { float c[64 * 64]; cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 64, 64, D < 64 ? (int)D : 64, 1, h, (int)D, w, (int)D, 0, c, 64); }
    const long base = peak_kib();
    double best = 1e30;
    int status = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (!strcmp(mode, "fused_fwd")) {
            status |= era_llm_linear_logprob_forward_f32(T, D, V, h, w, labels, NULL, lp, en);
        } else if (!strcmp(mode, "fused_bwd")) {
            status |= era_llm_linear_logprob_backward_f32(T, D, V, h, w, labels, NULL, g, gh, gw);
        } else {
            float *z = malloc(sizeof(float) * (size_t)(T * V));
            if (!z) { fprintf(stderr, "out of memory\n"); return 2; }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)V, (int)D, 1, h, (int)D, w, (int)D, 0, z, (int)V);
            if (!strcmp(mode, "unfused_fwd")) {
                status |= era_llm_logprob_forward_f32(T, V, z, labels, NULL, lp, en);
            } else { /* dz over the logits in place, then dz . W and dz^T . h */
                status |= era_llm_logprob_backward_f32(T, V, z, labels, NULL, g, z);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)D, (int)V, 1, z, (int)V, w, (int)D, 0, gh, (int)D);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)V, (int)D, (int)T, 1, z, (int)V, h, (int)D, 0, gw, (int)D);
            }
            free(z);
        }
        double t = now() - t0;
        if (t < best) best = t;
    }
    printf("{\"mode\": \"%s\", \"tokens\": %ld, \"dim\": %ld, \"vocab\": %ld, \"seconds\": %.6f, \"peak_mib\": %.1f, "
           "\"status\": %d}\n", mode, T, D, V, best, (double)(peak_kib() - base) / 1024.0, status);
    return status != 0;
}
