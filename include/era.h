/*
 * era.h -- the C interface of libera, Entropy Regularizing Activation (ERA).
 *
 * ERA (Kang, Liao, Xu, Xu, arXiv 2510.08549) keeps the sampling entropy of a model's output
 * distribution above a chosen floor by passing the last-layer outputs through a purpose-built
 * activation. This header is the one public contract of libera: C and C++ programs include it
 * and link with -lera (pkg-config name: era). The mathematics is in docs/math.md; section
 * numbers below ("math 2") point there.
 *
 * Conventions that hold for every function below
 * -----------------------------------------------
 *  - Every function returns an era_status. ERA_OK (0) means success. On any other status
 *    NOTHING has been written to any output buffer or output struct: every argument is
 *    checked, and every input value is scanned, before the first write.
 *  - No function aborts the process, prints, allocates memory that outlives the call (but
 *    for libera's worker threads: started on first need, up to the thread setting, and kept
 *    for the life of the process, and OpenBLAS's, see "Fused linear heads"), or
 *    reads global state other than the thread setting (era_set_num_threads) and, once per
 *    process, the processor's features and the environment variable ERA_SIMD: on x86-64
 *    with AVX2 and FMA libera runs vector kernels, elsewhere (or with ERA_SIMD=0) portable
 *    ones; both compute the same formulas in double and differ only in rounding
 *    (docs/math.md, "Vector kernels").
 *  - Arrays are caller-owned, row-major and contiguous. Sizes are int64_t. A pointer to an
 *    array may be NULL only when that array has zero elements (rows == 0); parameter and
 *    report structs are never NULL.
 *  - Negative sizes, and sizes whose element count or byte count overflows int64_t, are
 *    ERA_ERR_BAD_SHAPE.
 *  - Entropies are in nats (natural logarithms).
 *  - Per-row scalars (entropies, residual gradients) have the kernel's float type.
 *  - Aliasing: an output may be the very same array as an input (same pointer, same size)
 *    where a function says so ("in place"). Any other sharing of memory between an output
 *    array and an input or another output array is ERA_ERR_OVERLAP, checked (by comparing
 *    address ranges) before anything is read or written. Parameter and report structs are
 *    not part of this check.
 *  - In the sections of the math that cover continuous and discrete ERA, every non-finite
 *    input value (NaN, +inf, -inf) is ERA_ERR_NON_FINITE. In the LLM passes a -inf logit is a
 *    legitimate mask (a banned token) and contributes nothing; NaN and +inf are errors.
 *  - Every function is safe to call from many threads at once.
 *  - fork() is safe at any moment, also while other threads are inside libera: handlers
 *    registered with pthread_atfork hold the worker pool's lock across fork, and the child
 *    starts a pool (worker threads) of its own on its first call that splits its rows.
 *
 * Change log
 *  0.1.0 (ABI 1): first release: entropy math, continuous ERA, discrete ERA, bound checks,
 *                 LLM ERA. Against the v1 design, era_llm_scales_f32 also takes `responses`
 *                 (the length of response_entropy) so that response ids can be range-checked,
 *                 and ERA_ERR_BAD_INDEX reports ids and labels out of range. Fused linear
 *                 heads on OpenBLAS (era_llm_linear_logprob_*, era_linear_discrete_ce_f32).
 *  0.1.0, later:  ERA_ERR_OVERLAP (9): overlapping input and output arrays, which were
 *                 documented as never allowed but not detected (wrong outputs with ERA_OK),
 *                 are now refused; exact in-place calls work as before. fork() while other
 *                 threads are inside libera no longer leaves the child with a pool whose
 *                 lock may be held and whose workers do not exist (hangs, single-threaded
 *                 calls). Callers that switch over era_status should handle the new code.
 *                 The installed library is libera.so.0.1.0 with the SONAME libera.so.0
 *                 (was libera.so without a SONAME): programs linked against it record
 *                 libera.so.0; relink those linked against the old file. ABI unchanged.
 *  0.1.0, later:  top-k log-probabilities (era_llm_topk_logprob_forward/backward_f32/_bf16,
 *                 era_llm_linear_topk_logprob_forward/backward_f32) -- additions, ABI
 *                 unchanged.
 *                 Truncated-normal policy (era_truncated_normal_sample_*,
 *                 era_truncated_normal_sample_backward_*, era_truncated_normal_log_prob_*,
 *                 era_truncated_normal_log_prob_backward_*): additions, ABI unchanged.
 *                 Additions, ABI unchanged: era_truncated_normal_entropy_backward_*, the
 *                 sampled floor era_continuous_truncated_forward_* / _backward_* and its
 *                 check era_check_continuous_truncated_*.
 *                 Additions, ABI unchanged: era_tanh_gaussian_entropy_backward_*, the
 *                 sampled floor of a tanh-squashed policy era_continuous_tanh_forward_* /
 *                 _backward_* and its check era_check_continuous_tanh_*.
 */
#ifndef ERA_H
#define ERA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------------------- */

#define ERA_VERSION_MAJOR 0
#define ERA_VERSION_MINOR 1
#define ERA_VERSION_PATCH 0
#define ERA_VERSION_NUMBER (ERA_VERSION_MAJOR * 10000 + ERA_VERSION_MINOR * 100 + ERA_VERSION_PATCH)
/* Bumped only when a signature or a documented behaviour changes incompatibly. */
#define ERA_ABI_VERSION 1

/* The ABI version the library was built with; compare with ERA_ABI_VERSION to detect a
 * header/library mismatch. */
int32_t era_abi_version(void);

/* The library version as "MAJOR.MINOR.PATCH", a static string (never free it). */
const char *era_version_string(void);

/* ---------------------------------------------------------------------------------------
 * Status codes
 * ------------------------------------------------------------------------------------- */

typedef enum era_status {
    ERA_OK = 0,
    ERA_ERR_NULL_POINTER = 1,      /* a required pointer was NULL                          */
    ERA_ERR_BAD_SHAPE = 2,         /* a size is negative, too small, or overflows           */
    ERA_ERR_BAD_PARAMETER = 3,     /* a parameter is NaN, out of its domain, or unknown     */
    ERA_ERR_INFEASIBLE_TARGET = 4, /* the target entropy cannot be met with these settings  */
    ERA_ERR_NON_FINITE = 5,        /* an input array holds NaN or an infinity                */
    ERA_ERR_ALLOCATION = 6,        /* scratch memory could not be allocated                  */
    ERA_ERR_INTERNAL = 7,          /* a bug in libera: please report it                       */
    ERA_ERR_BAD_INDEX = 8,         /* a label or response id is out of range, or a label
                                      points at a masked (-inf) logit                         */
    ERA_ERR_OVERLAP = 9            /* an output overlaps an input or another output, other
                                      than the exact "in place" use a function allows          */
} era_status;

/* A stable, human-readable text for a status ("ok", "null pointer", ...), a static string.
 * Unknown values give "unknown status". */
const char *era_status_string(era_status status);

/* ---------------------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------------------- */

/* Sets how many threads one kernel call may use to split its rows (the calling thread is one
 * of them). n >= 1 sets it; n == 0 restores the default, the number of online processors.
 * Small calls run on the calling thread alone. Results are bit-for-bit identical whatever the
 * setting. Safe to call while kernels run: a call in progress keeps the value it started with.
 * Errors: ERA_ERR_BAD_PARAMETER if n < 0 or n > 1024. */
era_status era_set_num_threads(int32_t n);

/* The current thread setting (>= 1). */
int32_t era_get_num_threads(void);

/* ---------------------------------------------------------------------------------------
 * Entropy math (math 1 and 4)
 * Each reads rows x cols (or rows x dim) values and writes one entropy per row.
 * ------------------------------------------------------------------------------------- */

/* Entropy of softmax(logits[r, :]) for each row r: out_entropy[r] = logsumexp(z) - sum p*z,
 * computed stably, in double for both variants. Relative error (docs/math.md 5): f64 at most
 * 4e-15 + 1.2e-16 g + 4e-19 cols, g the distance in nats from the row maximum to the logits
 * that carry the rest of the probability (near one-hot rows included: an entropy of 1e-16 is
 * as accurate as one of 1); f32 the double result rounded to float32 (6e-8).
 * Reads logits[rows*cols]; writes out_entropy[rows].
 * Errors: NULL_POINTER; BAD_SHAPE if rows < 0 or cols < 1; NON_FINITE. */
era_status era_softmax_entropy_f32(int64_t rows, int64_t cols, const float *logits, float *out_entropy);
era_status era_softmax_entropy_f64(int64_t rows, int64_t cols, const double *logits, double *out_entropy);

/* Entropy of the diagonal Gaussian N(mu, diag(exp(log_std)^2)), independent of mu:
 * out_entropy[r] = sum_i log_std[r, i] + dim * 0.5*log(2*pi*e).
 * Reads log_std[rows*dim]; writes out_entropy[rows].
 * Errors: NULL_POINTER; BAD_SHAPE if rows < 0 or dim < 1; NON_FINITE; BAD_PARAMETER when an
 * entropy cannot be represented in the output type (the sum overflows, e.g. log stds 1e308). */
era_status era_gaussian_entropy_f32(int64_t rows, int64_t dim, const float *log_std, float *out_entropy);
era_status era_gaussian_entropy_f64(int64_t rows, int64_t dim, const double *log_std, double *out_entropy);

/* Entropy of a = tanh(x), x ~ N(mean, diag(exp(log_std)^2)) (math 1, "Squashing"):
 * sum_i [log_std_i + 0.5*log(2*pi*e) + E_e log(1 - tanh^2(mean_i + std_i*e))], the expectation
 * computed deterministically in double precision: 64-node Gauss-Hermite quadrature for
 * std <= 0.5, a closed form for E|x| plus Gauss-Legendre panels above (absolute error about
 * 1e-14 per dimension at any std; docs/math.md). The entropy tends to -inf as std grows.
 * Reads mean[rows*dim], log_std[rows*dim]; writes out_entropy[rows].
 * Errors: NULL_POINTER; BAD_SHAPE if rows < 0 or dim < 1; NON_FINITE; BAD_PARAMETER when an
 * entropy cannot be represented in the output type (std = exp(log_std) overflowing double
 * sends it below -DBL_MAX: log_std > 709.78; or a sum of log stds overflows). */
era_status era_tanh_gaussian_entropy_f32(int64_t rows, int64_t dim, const float *mean, const float *log_std,
                                         float *out_entropy);
era_status era_tanh_gaussian_entropy_f64(int64_t rows, int64_t dim, const double *mean, const double *log_std,
                                         double *out_entropy);

/* Gradient of era_tanh_gaussian_entropy (docs/math.md, "Tanh-Gaussian entropy gradient"):
 * with H the entropy of dimension (r, i), x = mean + std*e, e ~ N(0, 1), std = exp(log_std),
 *   out_grad_mean[r, i]    = grad_entropy[r] * dH/dmean    = grad_entropy[r] * (-2 E tanh(x))
 *   out_grad_log_std[r, i] = grad_entropy[r] * dH/dlog_std = grad_entropy[r] * (1 - 2 std^2 E sech^2(x))
 * (the second by Stein's identity E[e f(x)] = std E[f'(x)]), the expectations computed in double
 * with the entropy's quadrature regimes (absolute error about 1e-14 per dimension).
 * Reads mean[rows*dim], log_std[rows*dim], grad_entropy[rows]; writes out_grad_mean[rows*dim],
 * out_grad_log_std[rows*dim]. In place allowed: out_grad_mean == mean,
 * out_grad_log_std == log_std.
 * Errors: NULL_POINTER; BAD_SHAPE if rows < 0 or dim < 1; NON_FINITE for non-finite mean,
 * log_std or grad_entropy; BAD_PARAMETER when a gradient cannot be represented in the output
 * type (dH/dlog_std grows like std for wide Gaussians: log_std > 709.78 overflows double). */
era_status era_tanh_gaussian_entropy_backward_f32(int64_t rows, int64_t dim, const float *mean,
                                                  const float *log_std, const float *grad_entropy,
                                                  float *out_grad_mean, float *out_grad_log_std);
era_status era_tanh_gaussian_entropy_backward_f64(int64_t rows, int64_t dim, const double *mean,
                                                  const double *log_std, const double *grad_entropy,
                                                  double *out_grad_mean, double *out_grad_log_std);

/* Entropy of the normal with location loc and scale exp(log_std), truncated to [lo, hi],
 * summed over the dim independent dimensions of each row (math 1, "Truncated normal"),
 * computed in double precision with tail-stable normal probabilities.
 * Reads loc[rows*dim], log_std[rows*dim]; writes out_entropy[rows].
 * Errors: NULL_POINTER; BAD_SHAPE if rows < 0 or dim < 1; BAD_PARAMETER unless lo < hi, both
 * finite, and when an entropy cannot be represented in the output type (inputs so extreme
 * that a standardised bound or the std overflows double, e.g. log_std = 1e300 or a location
 * 1e300 standard deviations away); NON_FINITE for non-finite loc or log_std. */
era_status era_truncated_normal_entropy_f32(int64_t rows, int64_t dim, const float *loc, const float *log_std,
                                            double lo, double hi, float *out_entropy);
era_status era_truncated_normal_entropy_f64(int64_t rows, int64_t dim, const double *loc, const double *log_std,
                                            double lo, double hi, double *out_entropy);

/* Gradient of era_truncated_normal_entropy (docs/math.md, "Truncated-normal entropy
 * gradient"): with H the entropy of dimension (r, i),
 *   out_grad_loc[r, i]     = grad_entropy[r] * dH/dloc
 *   out_grad_log_std[r, i] = grad_entropy[r] * dH/dlog_std
 * computed in double with the tail-stable normal probabilities of the entropy itself.
 * Reads loc[rows*dim], log_std[rows*dim], grad_entropy[rows]; writes out_grad_loc[rows*dim],
 * out_grad_log_std[rows*dim]. In place allowed: out_grad_loc == loc, out_grad_log_std == log_std.
 * Errors: NULL_POINTER; BAD_SHAPE if rows < 0 or dim < 1; BAD_PARAMETER unless lo < hi, both
 * finite, and when a gradient cannot be represented in the output type (dH/dloc grows like
 * exp(-log_std) for a location on a bound); NON_FINITE for non-finite loc, log_std or
 * grad_entropy. */
era_status era_truncated_normal_entropy_backward_f32(int64_t rows, int64_t dim, const float *loc, const float *log_std,
                                                     double lo, double hi, const float *grad_entropy,
                                                     float *out_grad_loc, float *out_grad_log_std);
era_status era_truncated_normal_entropy_backward_f64(int64_t rows, int64_t dim, const double *loc,
                                                     const double *log_std, double lo, double hi,
                                                     const double *grad_entropy, double *out_grad_loc,
                                                     double *out_grad_log_std);

/* ---------------------------------------------------------------------------------------
 * Continuous ERA: bounded Gaussian policies (math 1)
 *
 *   K        = target_entropy + residual - dim*0.5*log(2*pi*e) - dim*log_std_max   (<= 0)
 *   log_std  = max(log_std_max + K * softmax(std_logits), log_std_min)
 *
 * Guarantee: sum(log_std) + dim*0.5*log(2*pi*e) >= target_entropy + residual, and every
 * exp(log_std) lies in [exp(log_std_min), exp(log_std_max)]. float32 outputs are rounded
 * towards +inf so that the guarantee holds for the stored values; a log_std_max that float
 * cannot represent is then its next float above.
 * ------------------------------------------------------------------------------------- */

typedef struct era_continuous_params {
    double target_entropy; /* H0 in nats. Unset (NaN) after init: the official default,
                              -0.5 * dim, depends on the action dimension; set it. */
    double residual;       /* delta >= 0, added to the target to compensate squashing (0)    */
    double log_std_min;    /* lower clip of log std (-8)                                      */
    double log_std_max;    /* upper bound of log std (0)                                      */
} era_continuous_params;

/* Fills the defaults above. target_entropy is NaN and must be set before any kernel call.
 * A NULL argument is ignored. */
void era_continuous_params_init(era_continuous_params *params);

/* Parameter checks shared by the continuous functions:
 * NULL_POINTER if params is NULL; BAD_PARAMETER if any field is NaN or infinite (so also when
 * target_entropy is unset), residual < 0, log_std_min >= log_std_max, either bound outside
 * [-1e4, 1e4], or K overflows; INFEASIBLE_TARGET if K > 0 (the target exceeds the largest
 * entropy the bounds allow). */

/* Forward pass. Reads std_logits[rows*dim]; writes out_log_std[rows*dim].
 * In place allowed (out_log_std == std_logits).
 * Errors: the parameter checks; NULL_POINTER; BAD_SHAPE if rows < 0 or dim < 1; NON_FINITE. */
era_status era_continuous_forward_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                      const float *std_logits, float *out_log_std);
era_status era_continuous_forward_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                      const double *std_logits, double *out_log_std);

/* Backward pass (vector-Jacobian product). With w = softmax(s), m_i = 1 where the forward
 * value was not clipped at log_std_min, gt = grad_log_std * m:
 *   out_grad_std_logits[r, j] = K * w_j * (gt_j - sum_i gt_i*w_i)
 *   out_grad_residual[r]      = sum_i gt_i*w_i      (also the gradient w.r.t. target_entropy)
 * Reads std_logits[rows*dim], grad_log_std[rows*dim]; writes out_grad_std_logits[rows*dim]
 * and, when out_grad_residual is not NULL, out_grad_residual[rows].
 * In place allowed: out_grad_std_logits may be std_logits or grad_log_std.
 * Errors: as the forward pass; NON_FINITE also for grad_log_std. */
era_status era_continuous_backward_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                       const float *std_logits, const float *grad_log_std,
                                       float *out_grad_std_logits, float *out_grad_residual);
era_status era_continuous_backward_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                       const double *std_logits, const double *grad_log_std,
                                       double *out_grad_std_logits, double *out_grad_residual);

/* The sampled floor (docs/math.md, "The sampled floor"): a floor on the entropy of the normal
 * truncated to [lo, hi] that the policy samples, with location loc, instead of the Gaussian's.
 * With l the forward pass above (era_continuous_forward, bit for bit) and H_TN the truncated
 * entropy (era_truncated_normal_entropy):
 *   c[r]             = the smallest c >= 0 with sum_i H_TN(loc[r, i], l[r, i] + c) >= H0 + residual
 *   out_log_std[r, i] = l[r, i] + c[r]
 * found per row in double by safeguarded Newton iteration (to within 1e-12 * (1 + |H0 + residual|)
 * nats above the target). Rows whose truncated entropy already reaches the target keep c = 0
 * and equal the continuous output. The offset is not clipped at log_std_max: out_log_std may
 * exceed it (the sampled floor is the point); it never falls below l. float32 outputs are
 * rounded towards +inf, so the floor holds for the stored values.
 * Feasible iff H0 + residual < dim * log(hi - lo), the supremum of the truncated entropy, and
 * the continuous parameter checks pass (K <= 0).
 * Reads std_logits[rows*dim], loc[rows*dim]; writes out_log_std[rows*dim] and, when
 * out_offset is not NULL, out_offset[rows] (c per row). In place allowed:
 * out_log_std == std_logits.
 * Errors: the continuous parameter checks; NULL_POINTER; BAD_SHAPE if rows < 0 or dim < 1;
 * BAD_PARAMETER unless lo < hi, both finite; INFEASIBLE_TARGET if H0 + residual >=
 * dim * log(hi - lo), or when a row's offset cannot reach the target in double (a target
 * within rounding of that supremum); NON_FINITE for non-finite std_logits or loc. */
era_status era_continuous_truncated_forward_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                                const float *std_logits, const float *loc, double lo, double hi,
                                                float *out_log_std, float *out_offset);
era_status era_continuous_truncated_forward_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                                const double *std_logits, const double *loc, double lo, double hi,
                                                double *out_log_std, double *out_offset);

/* Backward pass of the sampled floor, by the implicit function theorem. With g = grad_log_std,
 * G = sum_i g_i, H_L,i and H_m,i the derivatives of H_TN(loc_i, out_log_std_i) with respect
 * to log std and location, and S = sum_i H_L,i, on a row with c > 0:
 *   dL/dl_i   = g_i - G * H_L,i / S
 *   dL/dloc_i = -G * H_m,i / S
 *   dL/d(H0 + residual) = G / S + the continuous backward's residual gradient of dL/dl
 * and on a row with c = 0: dL/dl = g, dL/dloc = 0 (the continuous gradient unchanged).
 * out_grad_std_logits is the continuous backward pass (era_continuous_backward) of dL/dl.
 * Reads std_logits[rows*dim], loc[rows*dim], grad_log_std[rows*dim]; writes
 * out_grad_std_logits[rows*dim], out_grad_loc[rows*dim] and, when out_grad_residual is not
 * NULL, out_grad_residual[rows] (also the gradient w.r.t. target_entropy).
 * In place allowed: out_grad_std_logits may be std_logits or grad_log_std; out_grad_loc may
 * be loc.
 * Errors: as the forward pass; NON_FINITE also for grad_log_std; BAD_PARAMETER when a
 * gradient cannot be represented in the output type. */
era_status era_continuous_truncated_backward_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                                 const float *std_logits, const float *loc, double lo, double hi,
                                                 const float *grad_log_std, float *out_grad_std_logits,
                                                 float *out_grad_loc, float *out_grad_residual);
era_status era_continuous_truncated_backward_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                                 const double *std_logits, const double *loc, double lo, double hi,
                                                 const double *grad_log_std, double *out_grad_std_logits,
                                                 double *out_grad_loc, double *out_grad_residual);

/* The sampled floor of a tanh-squashed policy (docs/math.md, "The sampled floor, tanh"; spec 1,
 * "Beyond the paper"): a floor on the entropy of a = tanh(x), x ~ N(mean, exp(log_std)^2),
 * instead of the Gaussian's, reached by moving each row's Gaussian target. With w = softmax of
 * the row's std_logits, K as in era_continuous_forward and H_tanh the squashed entropy
 * (era_tanh_gaussian_entropy), per row:
 *   l(c)_i = max(log_std_max + (K + c) * w_i, log_std_min)  (the continuous ERA output for the
 *            row target H0 + residual + c; l(0) is era_continuous_forward's output bit for bit)
 *   f(c)   = sum_i H_tanh(mean[r, i], l(c)_i) - (H0 + residual)
 *   c[r]   = 0 if f(0) >= 0; otherwise the root of f nearest 0: the smallest c > 0 with
 *            f(c) >= 0 (every std growing; K + c <= 0) or the largest c < 0 with f(c) >= 0
 *            (every std shrinking, where the stds lie beyond the squashed entropy's peak),
 *            whichever has the smaller |c| (the positive one on a tie)
 *   out_log_std[r, i] = l(c[r])_i, always within [log_std_min, log_std_max]
 * The squashed entropy of one dimension is concave in its log std with one peak (it tends to
 * -inf as the std vanishes and as it grows, the squashed mass piling up at +-1), so f is
 * concave between the points where entries leave log_std_min, and the roots are found piece
 * by piece. A row with no such c (its largest entropy on [log_std_min, log_std_max] lies below
 * the target) is INFEASIBLE_TARGET, never a silent clamp. The largest squashed entropy of one
 * dimension is 0.6836356 nats (mean 0, std 0.8744); it falls fast with |mean| (0.0957 at
 * |mean| = 1, -1.233 at 2, -2.847 at 3 nats), so a target a row cannot reach at its current
 * means is an error.
 * c is found in double by safeguarded Newton iteration on each piece's rising branch (within
 * 1e-12 * (1 + |H0 + residual|) nats above the target), the floor evaluated at the stored
 * values (float32 outputs are rounded towards +inf).
 * Reads std_logits[rows*dim], mean[rows*dim]; writes out_log_std[rows*dim] and, when
 * out_offset is not NULL, out_offset[rows] (c per row, in nats of Gaussian target). In place
 * allowed: out_log_std == std_logits.
 * Errors: the continuous parameter checks; BAD_PARAMETER if log_std_max > 709.78 (a std of
 * exp(log_std_max) overflows double: no squashed entropy to compare); NULL_POINTER; BAD_SHAPE if
 * rows < 0 or dim < 1; INFEASIBLE_TARGET if H0 + residual >= dim * 0.6836356... (the largest
 * squashed entropy at any mean and std), or when a row has no offset (above); NON_FINITE for
 * non-finite std_logits or mean. */
era_status era_continuous_tanh_forward_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                           const float *std_logits, const float *mean, float *out_log_std,
                                           float *out_offset);
era_status era_continuous_tanh_forward_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                           const double *std_logits, const double *mean, double *out_log_std,
                                           double *out_offset);

/* Backward pass of the tanh sampled floor, by the implicit function theorem. With
 * g = grad_log_std, H_L,i and H_m,i the derivatives of H_tanh(mean_i, out_log_std_i)
 * (era_tanh_gaussian_entropy_backward), m_i = 1 where l(c)_i > log_std_min (else 0),
 * G' = sum_i g_i m_i w_i and S = sum_i H_L,i m_i w_i (S != 0 off the peak), on a row with c != 0:
 *   dL/dmean_i = -(G'/S) * H_m,i
 *   dL/d(H0 + residual) = G'/S
 *   dL/dstd_logits = the continuous backward pass (era_continuous_backward, with K + c in
 *                    place of K) of g_i - (G'/S) * H_L,i
 * and on a row with c = 0: era_continuous_backward's outputs (dL/d(H0 + residual) = G'),
 * dL/dmean = 0.
 * Reads std_logits[rows*dim], mean[rows*dim], grad_log_std[rows*dim]; writes
 * out_grad_std_logits[rows*dim], out_grad_mean[rows*dim] and, when out_grad_residual is not
 * NULL, out_grad_residual[rows] (also the gradient w.r.t. target_entropy). In place allowed:
 * out_grad_std_logits may be std_logits or grad_log_std; out_grad_mean may be mean.
 * Errors: as the forward pass; NON_FINITE also for grad_log_std; BAD_PARAMETER when a
 * gradient cannot be represented in the output type. */
era_status era_continuous_tanh_backward_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                            const float *std_logits, const float *mean, const float *grad_log_std,
                                            float *out_grad_std_logits, float *out_grad_mean,
                                            float *out_grad_residual);
era_status era_continuous_tanh_backward_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                            const double *std_logits, const double *mean,
                                            const double *grad_log_std, double *out_grad_std_logits,
                                            double *out_grad_mean, double *out_grad_residual);

/* ---------------------------------------------------------------------------------------
 * Discrete ERA: softmax policies and classifiers (math 2)
 *
 *   up = log(tau)/tau,  a = (classes*up - C)/(classes - 1),  b = (C - up)/(classes - 1)
 *   y_i = max(a*softmax(z)_i + b, 0),  out_i = log h^-1(y_i),  h(p) = -p log p on (0, 1/e]
 *
 * Guarantee (modes EXACT and TIGHT): entropy(softmax(out)) >= target_entropy for every row,
 * up to rounding. TIGHT rows approach H0 as the input nears one-hot, and the rounding of C,
 * b and the output logits can put the exact entropy of an f64 row up to 4.4e-16 * (1 + H0)
 * nats below H0 (measured worst 2.2e-15 at 5000 classes, H0 = 8.1; docs/math.md 5):
 * era_check_discrete_f64 with tol = 0 reports such rows, its own entropies adding their
 * rounding (up to 2.4e-14 at 5000 classes); the default Python tolerance, 1e-10, is far
 * above. The f32 variants round each output logit to nearest
 * (relative error 2^-24), which can move a TIGHT row (whose infimum is H0 itself) below H0 by
 * about 2 * H0 * 2^-24 * |t| nats, |t| the magnitude of the logits that carry the
 * probability, about log(tau): measured worst 7.3e-7 at tau near 4, but 2.7e-5 at tau = 1e300
 * (51 classes, H0 = 1.34), where float32 logits near -691 are 6.1e-5 apart. Check f32 outputs
 * with a tolerance of at least that (the Python checks default to 1e-5). EXACT rows sit far
 * above H0 (its infimum, era_discrete_infimum, is well above) and are not affected.
 * ------------------------------------------------------------------------------------- */

typedef enum era_discrete_mode {
    /* C = exp(H0 - 1) with an exact inverse h^-1 (Halley iteration on the Lambert W_{-1}
     * equation). Guaranteed floor H0; the actual infimum (inputs tending to one-hot) is
     * higher, see era_discrete_infimum. */
    ERA_DISCRETE_EXACT = 0,
    /* C solved (once per call, in double) so that the one-hot infimum equals H0: the output
     * entropy gets arbitrarily close to H0, and below it only by rounding (f64: at most
     * 4.4e-16 * (1 + H0) nats; see the guarantee above). */
    ERA_DISCRETE_TIGHT = 1,
    /* C = exp(H0 - 1) with the official code's closed-form approximation of h^-1, only to
     * reproduce published runs: no floor is guaranteed (era_discrete_floor gives NaN). */
    ERA_DISCRETE_REFERENCE = 2
} era_discrete_mode;

typedef struct era_discrete_params {
    double target_entropy; /* H0 in nats. Unset (NaN) after init; set it.               */
    double tau;            /* > e (log(tau) >= 1 + 1e-6); the top class gets at most 1/tau
                              before normalising (4)                                     */
    int32_t mode;          /* an era_discrete_mode (ERA_DISCRETE_EXACT)                     */
} era_discrete_params;

/* Fills the defaults above. target_entropy is NaN and must be set. NULL is ignored. */
void era_discrete_params_init(era_discrete_params *params);

/* Parameter checks shared by the discrete functions:
 * NULL_POINTER if params is NULL; BAD_SHAPE if classes < 2; BAD_PARAMETER if target_entropy is
 * not finite (or unset), tau is not finite or not above e by the margin log(tau) >= 1 + 1e-6
 * (closer to e the inverse of h is too ill-conditioned for double precision), or mode is
 * unknown;
 * INFEASIBLE_TARGET if the target is out of range for the mode:
 *   EXACT, REFERENCE: 1 + log(up) <= H0 <= 1 + log(classes*up);
 *   TIGHT:            0 < H0 < log(classes), and H0 at least the one-hot entropy reached
 *                     with the smallest normal double as b (about 1e-308 nats for moderate
 *                     tau; 9.3e-8 for tau = 1e300 and 120 classes): below it no C makes the
 *                     infimum H0. */

/* The entropy floor these parameters guarantee for rows of `classes` logits, in nats:
 * H0 for EXACT and TIGHT, NaN for REFERENCE (nothing is guaranteed).
 * Writes *out_floor. Errors: the parameter checks; NULL_POINTER if out_floor is NULL. */
era_status era_discrete_floor(const era_discrete_params *params, int64_t classes, double *out_floor);

/* The infimum of the output entropy over all inputs, reached as the input tends to one-hot
 * (math 2, "tight"), in nats: above H0 in EXACT mode, equal to H0 in TIGHT mode, and the
 * approximation's own value in REFERENCE mode. Writes *out_infimum.
 * Errors: the parameter checks; NULL_POINTER if out_infimum is NULL. */
era_status era_discrete_infimum(const era_discrete_params *params, int64_t classes, double *out_infimum);

/* The constant C the mode uses (exp(H0 - 1), or the solved value in TIGHT mode).
 * Writes *out_c. Errors: the parameter checks; NULL_POINTER if out_c is NULL. */
era_status era_discrete_constant(const era_discrete_params *params, int64_t classes, double *out_c);

/* Forward pass. Reads logits[rows*classes]; writes out_logits[rows*classes]: finite output
 * logits in the order of the inputs (ties stay ties), in modes EXACT and TIGHT each at most
 * -log(tau) (as a float: -log(tau) rounded to float32 for the f32 variant).
 * In place allowed (out_logits == logits).
 * Errors: the parameter checks; NULL_POINTER; BAD_SHAPE if rows < 0; NON_FINITE. */
era_status era_discrete_forward_f32(const era_discrete_params *params, int64_t rows, int64_t classes,
                                    const float *logits, float *out_logits);
era_status era_discrete_forward_f64(const era_discrete_params *params, int64_t rows, int64_t classes,
                                    const double *logits, double *out_logits);

/* Backward pass (vector-Jacobian product) at the input logits. With p = softmax(z),
 * t = forward output, dt/dy = t/(y*(1+t)) (EXACT, TIGHT) or (1/sqrt(2u) + 0.75)/y with
 * u = -1 - log y (REFERENCE), zero where y was clamped:
 *   r_i = grad_out_i * dt/dy_i * a,   out_grad_logits[j] = p_j * (r_j - sum_i r_i*p_i)
 * Reads logits[rows*classes], grad_out[rows*classes]; writes out_grad_logits[rows*classes].
 * In place allowed: out_grad_logits may be logits or grad_out.
 * Errors: as the forward pass; NON_FINITE also for grad_out. */
era_status era_discrete_backward_f32(const era_discrete_params *params, int64_t rows, int64_t classes,
                                     const float *logits, const float *grad_out, float *out_grad_logits);
era_status era_discrete_backward_f64(const era_discrete_params *params, int64_t rows, int64_t classes,
                                     const double *logits, const double *grad_out, double *out_grad_logits);

/* ---------------------------------------------------------------------------------------
 * LLM ERA: adaptive logit scaling for GRPO-style policy updates (math 3)
 *
 * Applied in the policy update to the logits of the response tokens, tokens x vocab
 * (already divided by the sampling temperature). With H_t the entropy of softmax(z_t):
 *   Hresp_b = mean of the max(1, floor(top_fraction*L_b)) largest H_t of response b
 *   s_t     = k   if Hresp_b < omega_low  and A_t > 0
 *             1/k if Hresp_b > omega_high and A_t > 0
 *             1   otherwise
 *   A'_t    = A_t / s_t   (when scale_advantages)
 *   logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t)
 * Response ids are int64_t in -1..responses-1; -1 marks a token of no response (prompt,
 * padding), which is ignored. Labels are int64_t in 0..vocab-1.
 * ------------------------------------------------------------------------------------- */

/* bfloat16 as stored in memory: the upper 16 bits of an IEEE float32. */
typedef uint16_t era_bf16;

typedef struct era_llm_params {
    double omega_low;         /* below it (and A > 0) the logits are sharpened by k (0.45)   */
    double omega_high;        /* above it (and A > 0) they are flattened by 1/k (3.0)          */
    double k;                 /* the scale, with k and 1/k normal float32 numbers (2.0)       */
    double top_fraction;      /* in (0, 1]: the share of top token entropies averaged (0.2)   */
    int32_t scale_advantages; /* nonzero: A' = A/s; zero: A' = A (1)                           */
} era_llm_params;

/* Fills the defaults above. NULL is ignored. */
void era_llm_params_init(era_llm_params *params);

/* Parameter checks shared by the LLM functions that take params: NULL_POINTER if params is
 * NULL; BAD_PARAMETER unless every field is finite, omega_low <= omega_high, k > 0 with k and
 * 1/k normal float32 numbers (about 1.2e-38 <= k <= 8.5e37) and 0 < top_fraction <= 1. */

/* Entropy of softmax(logits[t, :]) for each token, in nats, from one streaming pass per row
 * (online max, sum exp, sum z*exp; the logits are never copied). The bf16 variant reads
 * bfloat16 directly; all variants keep their sums in double. Relative error, with g the
 * distance in nats from the row maximum to the logits that carry the rest of the
 * probability (docs/math.md 5; near one-hot rows included): f64 at most
 * 4e-15 + 1.2e-16 g + 4e-19 vocab; f32 and bf16 on the portable kernels 6e-8 (float32
 * rounding); f32 and bf16 where the AVX2 kernels run, whose terms are computed in float32
 * lanes, 3e-7 + 1.4e-7 g (f32) and 3e-7 + 8e-8 g (bf16): measured 2.9e-6 for an f32 row of
 * 262,144 logits whose rest sits 45 nats below its top logit.
 * Reads logits[tokens*vocab]; writes out_entropy[tokens].
 * Errors: NULL_POINTER; BAD_SHAPE if tokens < 0 or vocab < 1; NON_FINITE for a NaN or +inf
 * logit or a row whose logits are all -inf. */
era_status era_token_entropy_f32(int64_t tokens, int64_t vocab, const float *logits, float *out_entropy);
era_status era_token_entropy_f64(int64_t tokens, int64_t vocab, const double *logits, double *out_entropy);
era_status era_token_entropy_bf16(int64_t tokens, int64_t vocab, const era_bf16 *logits, float *out_entropy);

/* Response entropy of each response b in 0..responses-1: the mean of the
 * max(1, floor(top_fraction*L_b)) largest token entropies among its L_b tokens (ties count
 * once each); NaN for a response with no tokens. Tokens may be interleaved in any order.
 * Reads token_entropy[tokens], response_id[tokens]; writes out_response_entropy[responses].
 * Errors: the parameter checks; NULL_POINTER; BAD_SHAPE if tokens < 0 or responses < 0;
 * BAD_INDEX for a response id outside -1..responses-1; NON_FINITE for a non-finite entropy of
 * a token that belongs to a response (those of id -1 are not read). */
era_status era_llm_response_entropy_f32(const era_llm_params *params, int64_t tokens, const float *token_entropy,
                                        const int64_t *response_id, int64_t responses,
                                        float *out_response_entropy);

/* Per-token logit scale s_t and advantage A'_t by the rule above; tokens of response id -1
 * get s = 1 and A' = A. The thresholds are compared in float32 (omega_low and omega_high
 * rounded to float, as a framework compares a float32 tensor with a scalar), strictly: an
 * entropy equal to (float)omega_low keeps scale 1.
 * Reads response_entropy[responses], response_id[tokens], advantages[tokens]; writes
 * out_logit_scale[tokens] and out_advantages[tokens]. In place allowed
 * (out_advantages == advantages).
 * Errors: the parameter checks; NULL_POINTER; BAD_SHAPE if tokens < 0 or responses < 0;
 * BAD_INDEX for a response id outside -1..responses-1; NON_FINITE for a non-finite advantage,
 * or a non-finite entropy of a response some token belongs to; BAD_PARAMETER for an
 * advantage whose rescaled value A/s overflows float32. */
era_status era_llm_scales_f32(const era_llm_params *params, int64_t tokens, const float *response_entropy,
                              int64_t responses, const int64_t *response_id, const float *advantages,
                              float *out_logit_scale, float *out_advantages);

/* ERA log-probabilities logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t) and, when out_entropy is
 * not NULL, the entropy of softmax(s_t*z_t) (the distribution the update sees), from one
 * pass over each row; the scaled logits are never formed. logit_scale may be NULL (s = 1).
 * Accuracy as era_token_entropy_f32; the logsumexp within about 3.5e-7 absolute.
 * Reads logits[tokens*vocab], labels[tokens], logit_scale[tokens]; writes
 * out_logprob[tokens] and out_entropy[tokens].
 * Errors: NULL_POINTER; BAD_SHAPE if tokens < 0 or vocab < 1; BAD_INDEX for a label outside
 * 0..vocab-1 or a label whose logit is -inf; NON_FINITE for a NaN or +inf logit, a fully
 * masked row, or a non-finite scale; BAD_PARAMETER for a scale <= 0, or one so large that a
 * log-probability overflows float32. */
era_status era_llm_logprob_forward_f32(int64_t tokens, int64_t vocab, const float *logits, const int64_t *labels,
                                       const float *logit_scale, float *out_logprob, float *out_entropy);
era_status era_llm_logprob_forward_bf16(int64_t tokens, int64_t vocab, const era_bf16 *logits,
                                        const int64_t *labels, const float *logit_scale, float *out_logprob,
                                        float *out_entropy);

/* Gradient of sum_t grad_logprob[t] * logp'_t with respect to the UNSCALED logits
 * (s_t is a constant):
 *   out_grad_logits[t, i] = grad_logprob[t] * s_t * (1{i == a_t} - softmax(s_t*z_t)_i)
 * written once per element (masked logits get 0). The bf16 variant writes bfloat16, rounded
 * to nearest even. Where the AVX2 kernels run the entries are computed in float32 lanes:
 * within about 3e-7 relative (plus 1.2e-7 per nat below the row's largest scaled logit) of
 * the double-precision value, and entries below 2^-127 |grad_logprob * s| are 0. Reads logits, labels, logit_scale (NULL: s = 1), grad_logprob[tokens];
 * writes out_grad_logits[tokens*vocab]. In place allowed (out_grad_logits == logits).
 * Errors: as the forward pass (but for the log-probability's overflow, which the backward
 * does not form); NON_FINITE also for grad_logprob; BAD_PARAMETER when
 * grad_logprob[t] * s_t overflows the output type (float32, or bfloat16 for the bf16 variant;
 * the bound on the gradient's magnitude). */
era_status era_llm_logprob_backward_f32(int64_t tokens, int64_t vocab, const float *logits, const int64_t *labels,
                                        const float *logit_scale, const float *grad_logprob,
                                        float *out_grad_logits);
era_status era_llm_logprob_backward_bf16(int64_t tokens, int64_t vocab, const era_bf16 *logits,
                                         const int64_t *labels, const float *logit_scale,
                                         const float *grad_logprob, era_bf16 *out_grad_logits);

/* Top-k ERA log-probabilities, as the official ERA-LLM actor computes them (verl's
 * logprobs_from_logits_topk; k = 20 in the published runs; docs/math.md, "Top-k
 * log-probabilities"). With u = s_t*z_t and K_t the top_k largest entries of u:
 *   out_logprob[t] = u[a_t] - logsumexp over K_t of u     if a_t is in K_t
 *                  = -1e4                                   otherwise
 *   out_entropy[t] = entropy of softmax(u) over the FULL vocabulary (when not NULL).
 * K_t is chosen on z_t (the same order as u, s_t > 0). Ties at the k-th value: the lower
 * index wins. -inf logits (masks) are never selected: a row with fewer than top_k finite
 * logits selects all its finite ones. top_k >= vocab gives exactly the results of
 * era_llm_logprob_forward_*. One pass over each row (softmax statistics and a top_k-entry
 * selection); scratch memory is 2 * top_k numbers per token.
 * Reads logits[tokens*vocab], labels[tokens], logit_scale[tokens] (NULL: s = 1); writes
 * out_logprob[tokens] and out_entropy[tokens].
 * Errors: BAD_PARAMETER if top_k < 1 (checked first); otherwise as
 * era_llm_logprob_forward_f32 (a -inf label logit is BAD_INDEX, also outside K_t). */
era_status era_llm_topk_logprob_forward_f32(int64_t tokens, int64_t vocab, const float *logits,
                                            const int64_t *labels, const float *logit_scale, int64_t top_k,
                                            float *out_logprob, float *out_entropy);
era_status era_llm_topk_logprob_forward_bf16(int64_t tokens, int64_t vocab, const era_bf16 *logits,
                                             const int64_t *labels, const float *logit_scale, int64_t top_k,
                                             float *out_logprob, float *out_entropy);

/* Gradient of sum_t grad_logprob[t] * out_logprob[t] of the top-k forward with respect to the
 * UNSCALED logits (s_t is a constant):
 *   out_grad_logits[t, j] = grad_logprob[t] * s_t * (1{j == a_t} - softmax over K_t of u_j)
 * for j in K_t, and 0 for every other j; the whole row is 0 when a_t is outside K_t (the
 * constant -1e4 has no gradient). K_t is selected again (same rule as the forward); each
 * output element is written once, computed in double and rounded once (bf16: to nearest
 * even). top_k >= vocab gives exactly the results of era_llm_logprob_backward_*.
 * Reads logits, labels, logit_scale (NULL: s = 1), grad_logprob[tokens]; writes
 * out_grad_logits[tokens*vocab]. In place allowed (out_grad_logits == logits).
 * Errors: BAD_PARAMETER if top_k < 1 (checked first); otherwise as
 * era_llm_logprob_backward_f32. */
era_status era_llm_topk_logprob_backward_f32(int64_t tokens, int64_t vocab, const float *logits,
                                             const int64_t *labels, const float *logit_scale, int64_t top_k,
                                             const float *grad_logprob, float *out_grad_logits);
era_status era_llm_topk_logprob_backward_bf16(int64_t tokens, int64_t vocab, const era_bf16 *logits,
                                              const int64_t *labels, const float *logit_scale, int64_t top_k,
                                              const float *grad_logprob, era_bf16 *out_grad_logits);

/* ---------------------------------------------------------------------------------------
 * Truncated-normal policy (math 6.2)
 * The normal with location loc and scale sg = exp(log_std), truncated to [lo, hi] (the
 * official SAC-ERA policy samples it with loc = tanh(mean) on [-1, 1]); element-wise over
 * rows x dim independent elements, computed in double precision with tail-stable normal
 * probabilities. With alpha = (lo-loc)/sg, beta = (hi-loc)/sg, Z = Phi(beta) - Phi(alpha):
 *   sample     x = loc + sg * Phi^-1(Phi(alpha) + u*Z),   u ~ U(0, 1) supplied by the caller
 *   log p(x)   = -((x-loc)/sg)^2/2 - log(sqrt(2*pi) * sg * Z)
 * Checks shared by these functions: NULL_POINTER; BAD_SHAPE if rows < 0 or dim < 1;
 * BAD_PARAMETER unless lo < hi, both finite, with hi - lo finite; NON_FINITE for a
 * non-finite value in any input array; BAD_PARAMETER when an element's scale or standardised
 * bounds are not finite and positive (exp(log_std) overflows or underflows, or loc lies so
 * many scales away that alpha or beta overflows), and when a result cannot be represented in
 * the output type (NaN, +inf, or a gradient beyond the float range). No output may overlap
 * an input or another output (OVERLAP).
 * ------------------------------------------------------------------------------------- */

/* One sample per element by inversion of the truncated CDF at uniform[i]: deterministic, the
 * caller's random numbers drive it. Every sample lies in [lo, hi], also after rounding to
 * float (f32: the nearest float inside). Reads loc, log_std, uniform[rows*dim]; writes
 * out_sample[rows*dim].
 * Errors: the checks above; BAD_PARAMETER if a uniform is not in the open interval (0, 1), or
 * (f32) no float lies in [lo, hi]. */
era_status era_truncated_normal_sample_f32(int64_t rows, int64_t dim, const float *loc, const float *log_std,
                                           double lo, double hi, const float *uniform, float *out_sample);
era_status era_truncated_normal_sample_f64(int64_t rows, int64_t dim, const double *loc, const double *log_std,
                                           double lo, double hi, const double *uniform, double *out_sample);

/* Reparameterisation gradient (vector-Jacobian product) of the sample at the sample x itself
 * (the forward output), by implicit differentiation of F(x; loc, sg) = u, F the truncated
 * CDF, xi = (x - loc)/sg:
 *   dx/dloc     = 1  - [phi(alpha)(1-F) + phi(beta)F] / phi(xi)
 *   dx/dlog_std = sg * (xi - [alpha*phi(alpha)(1-F) + beta*phi(beta)F] / phi(xi))
 *   out_grad_loc = grad_sample * dx/dloc,  out_grad_log_std = grad_sample * dx/dlog_std.
 * Reads loc, log_std, sample, grad_sample[rows*dim]; writes out_grad_loc and
 * out_grad_log_std[rows*dim].
 * Errors: the checks above; BAD_PARAMETER if a sample lies outside [lo, hi]. */
era_status era_truncated_normal_sample_backward_f32(int64_t rows, int64_t dim, const float *loc,
                                                    const float *log_std, double lo, double hi, const float *sample,
                                                    const float *grad_sample, float *out_grad_loc,
                                                    float *out_grad_log_std);
era_status era_truncated_normal_sample_backward_f64(int64_t rows, int64_t dim, const double *loc,
                                                    const double *log_std, double lo, double hi, const double *sample,
                                                    const double *grad_sample, double *out_grad_loc,
                                                    double *out_grad_log_std);

/* log p(x) per element (no sum over dim: a distribution with event shape ()). A value
 * outside [lo, hi] is not an error: its log-density is -inf (as torch.distributions gives
 * outside the support), and -inf is also written where the density underflows double.
 * Reads loc, log_std, x[rows*dim]; writes out_log_prob[rows*dim].
 * Errors: the checks above. */
era_status era_truncated_normal_log_prob_f32(int64_t rows, int64_t dim, const float *loc, const float *log_std,
                                             double lo, double hi, const float *x, float *out_log_prob);
era_status era_truncated_normal_log_prob_f64(int64_t rows, int64_t dim, const double *loc, const double *log_std,
                                             double lo, double hi, const double *x, double *out_log_prob);

/* Vector-Jacobian product of era_truncated_normal_log_prob: with g = grad_log_prob,
 *   out_grad_x       = g * -xi/sg
 *   out_grad_loc     = g * (xi - [phi(alpha) - phi(beta)]/Z) / sg
 *   out_grad_log_std = g * (xi^2 - 1 - [alpha*phi(alpha) - beta*phi(beta)]/Z)
 * and 0 for all three where x lies outside [lo, hi]. Reads loc, log_std, x,
 * grad_log_prob[rows*dim]; writes out_grad_x, out_grad_loc, out_grad_log_std[rows*dim].
 * Errors: the checks above. */
era_status era_truncated_normal_log_prob_backward_f32(int64_t rows, int64_t dim, const float *loc,
                                                      const float *log_std, double lo, double hi, const float *x,
                                                      const float *grad_log_prob, float *out_grad_x,
                                                      float *out_grad_loc, float *out_grad_log_std);
era_status era_truncated_normal_log_prob_backward_f64(int64_t rows, int64_t dim, const double *loc,
                                                      const double *log_std, double lo, double hi, const double *x,
                                                      const double *grad_log_prob, double *out_grad_x,
                                                      double *out_grad_loc, double *out_grad_log_std);

/* ---------------------------------------------------------------------------------------
 * Bound verification (math 4)
 * A violation is a result, not an error: the status is ERA_OK and the report counts it.
 * ------------------------------------------------------------------------------------- */

typedef struct era_bound_report {
    int64_t rows;         /* rows checked                                                     */
    int64_t violations;   /* rows whose entropy is below target - tol                         */
    double min_entropy;   /* smallest row entropy (nats); +inf when rows == 0                 */
    double mean_entropy;  /* mean row entropy (nats); NaN when rows == 0                      */
    double max_deficit;   /* max(0, max over rows of target - entropy), in nats                */
    double floor;         /* the entropy the parameters guarantee (NaN when none)             */
    double target;        /* the entropy each row was checked against                         */
    int64_t worst_row;    /* index of the row with the smallest entropy; -1 when rows == 0    */
} era_bound_report;

/* Checks rows of discrete-ERA output logits against the target entropy H0:
 * the entropy of softmax(out_logits[r, :]) for each row (computed in double, with the error of
 * era_softmax_entropy_f64), the count of rows below H0 - tol and the largest deficit.
 * report->floor is era_discrete_floor's value, report->target is H0. TIGHT rows can sit below
 * H0 by rounding (see "Discrete ERA" above): check them with a tolerance, 1e-10 for f64 (the
 * spec's, and the Python default) and 1e-5 for f32; with tol = 0 such rows count as
 * violations.
 * Reads out_logits[rows*classes]; writes *report.
 * Errors: the discrete parameter checks; NULL_POINTER; BAD_SHAPE if rows < 0;
 * BAD_PARAMETER if tol is NaN, infinite or negative; NON_FINITE. */
era_status era_check_discrete_f32(const era_discrete_params *params, int64_t rows, int64_t classes,
                                  const float *out_logits, double tol, era_bound_report *report);
era_status era_check_discrete_f64(const era_discrete_params *params, int64_t rows, int64_t classes,
                                  const double *out_logits, double tol, era_bound_report *report);

/* Checks rows of continuous-ERA log stds.
 * mean == NULL: the Gaussian entropy of each row against the guaranteed floor
 *   target_entropy + residual (report->floor == report->target == H0 + delta).
 * mean != NULL: the tanh-squashed entropy (era_tanh_gaussian_entropy) of each row against
 *   target_entropy, which the residual is tuned to reach but which is not guaranteed
 *   (report->target == H0, report->floor == NaN).
 * Reads log_std[rows*dim] and, if given, mean[rows*dim]; writes *report.
 * Errors: the continuous parameter checks; NULL_POINTER (log_std, report); BAD_SHAPE if
 * rows < 0 or dim < 1; BAD_PARAMETER for a bad tol, or when a row's entropy is not a finite
 * double (log stds so extreme that it overflows: there is nothing to compare); NON_FINITE. */
era_status era_check_continuous_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                    const float *mean, const float *log_std, double tol, era_bound_report *report);
era_status era_check_continuous_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                    const double *mean, const double *log_std, double tol,
                                    era_bound_report *report);

/* Checks rows of log stds against the sampled floor: the truncated-normal entropy
 * (era_truncated_normal_entropy, summed compensated) of each row, location loc on [lo, hi],
 * against H0 + residual (report->target == report->floor == H0 + residual, which
 * era_continuous_truncated_forward guarantees).
 * Reads loc[rows*dim], log_std[rows*dim]; writes *report.
 * Errors: the continuous parameter checks and the sampled floor's (BAD_PARAMETER unless
 * lo < hi, both finite; INFEASIBLE_TARGET if H0 + residual >= dim * log(hi - lo));
 * NULL_POINTER (loc, log_std, report); BAD_SHAPE if rows < 0 or dim < 1; BAD_PARAMETER for a bad
 * tol or a row entropy that is not a finite double; NON_FINITE. */
era_status era_check_continuous_truncated_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                              const float *loc, const float *log_std, double lo, double hi,
                                              double tol, era_bound_report *report);
era_status era_check_continuous_truncated_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                              const double *loc, const double *log_std, double lo, double hi,
                                              double tol, era_bound_report *report);

/* Checks rows of log stds against the tanh sampled floor: the squashed entropy
 * (era_tanh_gaussian_entropy, summed compensated) of each row against H0 + residual
 * (report->target == report->floor == H0 + residual, which era_continuous_tanh_forward
 * guarantees).
 * Reads mean[rows*dim], log_std[rows*dim]; writes *report.
 * Errors: the continuous parameter checks; BAD_PARAMETER if log_std_max > 709.78 and
 * INFEASIBLE_TARGET if H0 + residual >= dim * 0.6836356... (as the forward pass); NULL_POINTER (mean, log_std, report); BAD_SHAPE if
 * rows < 0 or dim < 1; BAD_PARAMETER for a bad tol or a row entropy that is not a finite
 * double; NON_FINITE. */
era_status era_check_continuous_tanh_f32(const era_continuous_params *params, int64_t rows, int64_t dim,
                                         const float *mean, const float *log_std, double tol,
                                         era_bound_report *report);
era_status era_check_continuous_tanh_f64(const era_continuous_params *params, int64_t rows, int64_t dim,
                                         const double *mean, const double *log_std, double tol,
                                         era_bound_report *report);

/* ---------------------------------------------------------------------------------------
 * Fused linear heads (docs/linear-heads.md)
 *
 * The functions above take logits. These take what the logits are made from -- the last
 * hidden states and the output weight matrix -- and compute the same quantities without
 * storing the rows x vocab logits z = hidden . weight^T:
 *   hidden[tokens*dim], weight[vocab*dim] (row-major, one row of dim weights per vocabulary
 *   entry: z[t, v] = sum_j hidden[t, j] * weight[v, j]).
 * The LLM functions form z one tile of at most 128 tokens x 2048 vocabulary entries at a time
 * with cblas_sgemm (OpenBLAS, float32 products) and fold each tile into per-token statistics
 * accumulated in double (math 3, "One pass per row"), or into the gradients: scratch memory is
 * about 1 MiB per thread plus a few numbers per token, never tokens x vocab.
 *
 * Non-finite values: hidden, weight (and bias) are scanned in full before any product, and
 * NaN or an infinity anywhere in them is ERA_ERR_NON_FINITE (weight is always scanned, even
 * when tokens == 0). There are no masks here: a logit that overflows float32 in the product
 * is ERA_ERR_NON_FINITE too. When an input has several faults, the first check to fail
 * names it: the LLM heads check weight, then labels and scales, then hidden; the
 * classification head checks labels, then features and weight, then bias.
 * Threads: tiles are split across the thread setting; every size, and the order of every
 * sum, depends on the problem only, so results are bit-for-bit identical for every
 * era_set_num_threads value. OpenBLAS may also use threads of its own inside each product,
 * by its own setting (OPENBLAS_NUM_THREADS, openblas_set_num_threads), which libera reads
 * but never changes: when OpenBLAS runs more than one thread, the products of a call are
 * issued one at a time (each spread over OpenBLAS's threads) and the rest runs on libera's
 * threads. A different OpenBLAS thread count can change the last bits of the float32
 * products. OpenBLAS keeps its thread pool and buffers for the life of the process.
 * dim (and, for era_linear_discrete_ce_f32, rows and classes) must fit the BLAS's 32-bit int.
 * Aliasing: no output may overlap an input or another output.
 * ------------------------------------------------------------------------------------- */

/* era_llm_logprob_forward_f32 on the logits z = hidden . weight^T, without forming them:
 *   out_logprob[t] = s_t*z_t[a_t] - logsumexp(s_t*z_t)
 *   out_entropy[t] = entropy of softmax(s_t*z_t)   (when out_entropy is not NULL)
 * Reads hidden[tokens*dim], weight[vocab*dim], labels[tokens], logit_scale[tokens] (NULL:
 * s = 1); writes out_logprob[tokens] and out_entropy[tokens].
 * Errors: NULL_POINTER; BAD_SHAPE if tokens < 0, dim < 1, dim > INT32_MAX or vocab < 1;
 * BAD_INDEX for a label outside 0..vocab-1; NON_FINITE for NaN or an infinity in hidden,
 * weight or logit_scale, or a logit that overflows float32; BAD_PARAMETER for a scale <= 0,
 * or one so large that a log-probability overflows float32. */
era_status era_llm_linear_logprob_forward_f32(int64_t tokens, int64_t dim, int64_t vocab, const float *hidden,
                                              const float *weight, const int64_t *labels, const float *logit_scale,
                                              float *out_logprob, float *out_entropy);

/* Gradients of sum_t grad_logprob[t] * logp'_t with respect to hidden and weight (s_t is a
 * constant), through the same tiles: with
 *   dz[t, i] = grad_logprob[t] * s_t * (1{i == a_t} - softmax(s_t*z_t)_i),
 *   out_grad_hidden = dz . weight         [tokens*dim]
 *   out_grad_weight = dz^T . hidden       [vocab*dim]
 * Either output may be NULL, and is then not computed. Outputs are overwritten, never
 * accumulated into: add the result to your own gradient buffers yourself. With tokens == 0,
 * out_grad_weight is set to zeros. One pass over the tiles for the softmax statistics and one
 * for the gradients: about four products' worth of work (the logits twice, then dz . weight
 * and dz^T . hidden).
 * Reads hidden, weight, labels, logit_scale (NULL: s = 1), grad_logprob[tokens]; writes
 * out_grad_hidden[tokens*dim], out_grad_weight[vocab*dim].
 * Errors: as the forward pass (but for the log-probability's overflow, which the backward
 * does not form); NON_FINITE also for grad_logprob; BAD_PARAMETER when grad_logprob[t] * s_t
 * overflows float32, or when a requested gradient could: 2 * max_t |g_t s_t| * max |weight|
 * (out_grad_hidden) or sum_t |g_t s_t| * max_j |hidden[t, j]| (out_grad_weight) above
 * FLT_MAX / 4. */
era_status era_llm_linear_logprob_backward_f32(int64_t tokens, int64_t dim, int64_t vocab, const float *hidden,
                                               const float *weight, const int64_t *labels, const float *logit_scale,
                                               const float *grad_logprob, float *out_grad_hidden,
                                               float *out_grad_weight);

/* era_llm_topk_logprob_forward_f32 on the logits z = hidden . weight^T, without forming them:
 * the top_k selection of each token is carried across the vocabulary tiles (one selection per
 * group of tiles, merged in vocabulary order, so the tie rule -- lower index wins -- and the
 * results do not depend on the thread setting). out_entropy is the full-vocabulary entropy.
 * top_k >= vocab gives exactly the results of era_llm_linear_logprob_forward_f32.
 * Reads and writes as era_llm_linear_logprob_forward_f32.
 * Errors: BAD_PARAMETER if top_k < 1 (checked first); otherwise as
 * era_llm_linear_logprob_forward_f32. */
era_status era_llm_linear_topk_logprob_forward_f32(int64_t tokens, int64_t dim, int64_t vocab, const float *hidden,
                                                   const float *weight, const int64_t *labels,
                                                   const float *logit_scale, int64_t top_k, float *out_logprob,
                                                   float *out_entropy);

/* Gradients of sum_t grad_logprob[t] * logp'_t of the top-k head with respect to hidden and
 * weight (s_t constant): dz[t, j] = grad_logprob[t] * s_t * (1{j == a_t} - softmax over K_t
 * of u_j) for j in K_t, 0 elsewhere (and 0 for the whole row when a_t is outside K_t), then
 * out_grad_hidden = dz . weight and out_grad_weight = dz^T . hidden, each written when not
 * NULL. One pass over the tiles selects K_t; as dz has at most top_k entries per token, the
 * two products are sums over those entries (dz rounded to float32 first; the weight's
 * gradient summed in token order): about one product's worth of work, not four.
 * top_k >= vocab gives exactly the results of era_llm_linear_logprob_backward_f32.
 * Reads and writes as era_llm_linear_logprob_backward_f32.
 * Errors: BAD_PARAMETER if top_k < 1 (checked first); otherwise as
 * era_llm_linear_logprob_backward_f32 (same gradient bounds). */
era_status era_llm_linear_topk_logprob_backward_f32(int64_t tokens, int64_t dim, int64_t vocab,
                                                    const float *hidden, const float *weight,
                                                    const int64_t *labels, const float *logit_scale, int64_t top_k,
                                                    const float *grad_logprob, float *out_grad_hidden,
                                                    float *out_grad_weight);

/* A classification head: linear layer, discrete ERA (math 2), cross-entropy, in one call.
 *   logits_r = features_r . weight^T + bias        (cblas_sgemm, float32)
 *   z'_r     = era_discrete_forward_f32(params, logits_r)
 *   loss     = mean over rows of (logsumexp(z'_r) - z'_r[labels[r]])
 * and, for each gradient pointer that is not NULL, the gradient of loss back through the ERA
 * backward pass (era_discrete_backward_f32) to the features, the weight and the bias. Outputs
 * are overwritten, never accumulated into. The rows x classes logits and their gradients are
 * held in scratch memory (2 * rows * classes floats), as fits classification sizes.
 * Reads features[rows*dim], weight[classes*dim], bias[classes] (NULL: no bias),
 * labels[rows]; writes *out_loss, out_grad_features[rows*dim], out_grad_weight[classes*dim],
 * out_grad_bias[classes].
 * Errors: the discrete parameter checks (BAD_SHAPE if classes < 2); NULL_POINTER (features,
 * weight, labels, out_loss); BAD_SHAPE if rows < 1 (the mean over no rows is undefined),
 * dim < 1, or rows, classes or dim above INT32_MAX; BAD_INDEX for a label outside
 * 0..classes-1; NON_FINITE for NaN or an infinity in features, weight or bias, or a logit that
 * overflows float32; BAD_PARAMETER when a requested gradient could overflow float32
 * (with G the logits' gradient: max_r sum_c |G[r, c]| * max |weight| for the features, or
 * max_c sum_r |G[r, c]| * max_j |features[r, j]| for the weight, above FLT_MAX / 4). */
era_status era_linear_discrete_ce_f32(const era_discrete_params *params, int64_t rows, int64_t dim, int64_t classes,
                                      const float *features, const float *weight, const float *bias,
                                      const int64_t *labels, float *out_loss, float *out_grad_features,
                                      float *out_grad_weight, float *out_grad_bias);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ERA_H */
