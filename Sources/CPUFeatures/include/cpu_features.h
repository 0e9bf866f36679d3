/* What the processor running libera can execute, asked once. The vector kernels
 * (Sources/ERASIMD) are compiled for AVX2 + FMA on x86-64; ERACore calls them only when this
 * says the processor runs them, and its portable scalar kernels otherwise. Not exported
 * from libera.so (the version script keeps only era_*). */
#ifndef LIBERA_CPU_FEATURES_H
#define LIBERA_CPU_FEATURES_H

/* 1 when the vector kernels can run here: x86-64 with AVX2 and FMA supported by the
 * processor and enabled by the operating system, or AArch64 (NEON and FMA are baseline);
 * else 0. */
int libera_cpu_runs_simd_kernels(void);

#endif
