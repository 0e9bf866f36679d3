/*
 * test_support.h -- what the C test programs share: the "ok N - name" / "not ok N - name"
 * reporting with its counters, a deterministic xorshift generator (uniform in [0, 1),
 * standard normal by Box-Muller; a program may choose its seed by defining ERA_TEST_SEED
 * before the include), malloc that exits on failure, and a monotonic clock in seconds (for
 * programs that define _POSIX_C_SOURCE). Each program includes it once; everything is
 * static to that program, and inline so that a program need not use all of it.
 */
#ifndef ERA_TEST_SUPPORT_H
#define ERA_TEST_SUPPORT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int passed, failed;

static inline void report(int ok, const char *name) {
    if (ok) passed++; else failed++;
    printf("%s %d - %s\n", ok ? "ok" : "not ok", passed + failed, name);
    fflush(stdout);  /* lines in order with a crash's, and nothing buffered for a fork to copy */
}

/* ---- deterministic random numbers --------------------------------------------------- */
#ifndef ERA_TEST_SEED
#define ERA_TEST_SEED 0x9E3779B97F4A7C15ull
#endif
static uint64_t rng_state = ERA_TEST_SEED;
static inline double uniform(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static inline double normal(void) {
    double u = uniform(), v = uniform();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* ---- memory and time ---------------------------------------------------------------- */
static inline void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

#if defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 199309L
static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#endif

#endif /* ERA_TEST_SUPPORT_H */
