/*
 * test_support.h -- what the C test programs test_llm.c and test_linear.c share: the
 * "ok N - name" / "not ok N - name" reporting with its counters, and a deterministic
 * xorshift generator (uniform in [0, 1), standard normal by Box-Muller). Each program
 * includes it once; everything is static to that program.
 */
#ifndef ERA_TEST_SUPPORT_H
#define ERA_TEST_SUPPORT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static int passed, failed;

static void report(int ok, const char *name) {
    if (ok) passed++; else failed++;
    printf("%s %d - %s\n", ok ? "ok" : "not ok", passed + failed, name);
}

/* ---- deterministic random numbers --------------------------------------------------- */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double normal(void) {
    double u = uniform(), v = uniform();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

#endif /* ERA_TEST_SUPPORT_H */
