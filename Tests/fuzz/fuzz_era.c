/*
 * fuzz_era.c -- a libFuzzer target for every function of include/era.h.
 *
 * Each input is decoded into one call: the entry point (f32, f64 and bf16 variants), the
 * sizes (mostly small, sometimes negative or overflowing), the parameters (valid, at their
 * boundaries, invalid), the array contents (finite, huge, tiny, denormal, NaN, +-inf, -inf
 * masks, ties, raw bit patterns), labels and response ids (valid and not), NULL pointers, and
 * the exact aliasing the header allows ("in place"; partial overlaps, which libera refuses with
 * ERA_ERR_OVERLAP, are Tests/c/test_overlap.c's).
 *
 * Every array is a heap buffer of exactly its size, so that AddressSanitizer sees any access
 * past it (libera itself must be built with -sanitize=address for that: Tests/fuzz/run.sh).
 * Output buffers are filled with 0xFF bytes (NaN for every float type) before the call.
 *
 * The contract checked for every call (abort() with a message on a violation):
 *  - the status is one the header allows for the arguments: a fault model below predicts the
 *    statuses a call may return (one of its faults when it has any, ERA_OK when it has none;
 *    arguments within rounding of a documented boundary may go either way);
 *  - on any status but ERA_OK every output buffer is byte-identical to its contents before
 *    the call, and on every status every input that is not also an output is unchanged;
 *  - on ERA_OK the outputs keep the header's promises: finite discrete logits in input order,
 *    capped at -log(tau), entropy floor held (era_check_discrete_*); continuous log stds in
 *    [log_std_min, log_std_max] and the Gaussian floor held (era_check_continuous_*);
 *    gradients finite wherever their exact value is bounded inside the float range; LLM
 *    outputs finite (NaN only for a response without tokens); entropies never NaN; the
 *    values agree with plain long-double references where those are cheap;
 *  - with a bit of the input set, the call is repeated with another thread count and must
 *    give bit-identical results.
 */
#include "era.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failure reporting ---------------------------------------------------------------- */

static char call_text[768]; /* what the current call is, for the message */

static void describe(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call_text, sizeof call_text, fmt, ap);
    va_end(ap);
}

static void dump_arrays(void);

static void violation(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "\nfuzz_era: CONTRACT VIOLATION\n  call: %s\n  what: ", call_text);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (getenv("FUZZ_VERBOSE")) dump_arrays();
    abort();
}

/* ---- the input stream: the fuzzer's bytes first, then a generator seeded from them ----- */

static const uint8_t *in_data;
static size_t in_size, in_pos;
static uint64_t in_rng;

static uint8_t byte(void) {
    if (in_pos < in_size) return in_data[in_pos++];
    in_rng ^= in_rng << 13;
    in_rng ^= in_rng >> 7;
    in_rng ^= in_rng << 17;
    return (uint8_t)(in_rng >> 29);
}
static uint16_t u16(void) { uint16_t v = byte(); return (uint16_t)(v | (uint16_t)byte() << 8); }
static uint32_t u32(void) { uint32_t v = u16(); return v | (uint32_t)u16() << 16; }
static uint64_t u64(void) { uint64_t v = u32(); return v | (uint64_t)u32() << 32; }
static double unit(void) { return u16() / 65535.0; }
#define PICK(table) ((table)[byte() % (sizeof(table) / sizeof((table)[0]))])

/* The LLM row statistics of float32 and bfloat16 logits run in float32 lanes (docs/math.md,
 * "Vector kernels" and 5): logsumexp within about 3.5e-7 absolute, the entropy within
 * 3e-7 + 1.4e-7 g relative of the double value (g: the distance in nats from the row maximum
 * to the logits that carry the rest of the probability; measured up to 2.9e-6 relative on
 * confident rows, whose entropies are small). The checks allow 1e-6: log-probabilities and entropies to LLM_STATS_ERR * (1 + |value|), gradient
 * entries to LLM_STATS_ERR relative plus the float32 exponent's rounding (see checks_logprob). */
#define LLM_STATS_ERR 1e-6

/* ---- element types -------------------------------------------------------------------- */

enum { TY_F32, TY_F64, TY_BF16, TY_I64, TY_RAW };
static const size_t type_size[] = {4, 8, 2, 8, 1};
static const char *const type_name[] = {"f32", "f64", "bf16", "i64", "raw"};

static double bf16_value(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static uint16_t bf16_truncate(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return (uint16_t)(bits >> 16);
}

static double get(const void *p, int type, int64_t i) {
    switch (type) {
    case TY_F32: return ((const float *)p)[i];
    case TY_F64: return ((const double *)p)[i];
    case TY_BF16: return bf16_value(((const uint16_t *)p)[i]);
    default: return (double)((const int64_t *)p)[i];
    }
}
static void put(void *p, int type, int64_t i, double v) {
    switch (type) {
    case TY_F32: ((float *)p)[i] = (float)v; break;
    case TY_F64: ((double *)p)[i] = v; break;
    case TY_BF16: ((uint16_t *)p)[i] = bf16_truncate((float)v); break;
    default: ((int64_t *)p)[i] = (int64_t)v; break;
    }
}
static double type_max(int type) { return type == TY_F64 ? DBL_MAX : FLT_MAX; }
static double type_eps(int type) { return type == TY_F64 ? DBL_EPSILON : type == TY_BF16 ? 1.0 / 128 : FLT_EPSILON; }

/* ---- value generation ----------------------------------------------------------------- */

enum { C_MOD, C_INT, C_ZERO, C_HUGE, C_TINY, C_NAN, C_PINF, C_NINF, C_SPREAD, C_PREV, C_NEAR, C_RAW, C_COUNT };

static const double huge32[] = {FLT_MAX, -FLT_MAX, 3e38, -3e38, 1e38, -1e38, 1e30, -1e30, 1e20, -1e20, 1e10, 65504};
static const double huge64[] = {DBL_MAX, -DBL_MAX, 1e308, -1e308, 1e300, -1e300, 1e200, -1e100, 1e30, -1e20, 3e38};
static const double tiny32[] = {FLT_MIN, -FLT_MIN, 1e-40, -1e-40, 1.401298464324817e-45, -1.401298464324817e-45,
                                1e-30, -1e-38, 5.877471754111438e-39};
static const double tiny64[] = {DBL_MIN, -DBL_MIN, 4.9406564584124654e-324, -4.9406564584124654e-324, 1e-310,
                                -1e-310, 1e-300, -1e-200, 1e-30};
static const double spread_values[] = {700,  -700,  745,  -745,  746,  -746,  1000, -1000, 1001,  -1001,
                                       1e4,  -1e4,  88.7, -88.7, 103.9, -103.9, 709.8, -709.8, 1e6, -1e6};

/* One value of class `cls` for an array of `type`, stored at index i (prev: the one before). */
static void gen_element(void *p, int type, int64_t i, int cls, double scale) {
    double prev = i > 0 ? get(p, type, i - 1) : 0.0;
    double v = 0;
    switch (cls) {
    case C_MOD: v = (int16_t)u16() / 256.0 * scale; break;
    case C_INT: v = (double)(byte() % 9) - 4; break;
    case C_ZERO: v = byte() & 1 ? 0.0 : -0.0; break;
    case C_HUGE: v = type == TY_F64 ? PICK(huge64) : PICK(huge32); break;
    case C_TINY: v = type == TY_F64 ? PICK(tiny64) : PICK(tiny32); break;
    case C_NAN: v = byte() & 1 ? NAN : -NAN; break;
    case C_PINF: v = INFINITY; break;
    case C_NINF: v = -INFINITY; break;
    case C_SPREAD: v = PICK(spread_values); break;
    case C_PREV: v = prev; break;
    case C_NEAR:
        if (type == TY_F64) v = nextafter(prev, byte() & 1 ? INFINITY : -INFINITY);
        else v = nextafterf((float)prev, byte() & 1 ? INFINITY : -INFINITY);
        break;
    case C_RAW:
        if (type == TY_F32) { uint32_t b = u32(); memcpy((float *)p + i, &b, 4); return; }
        if (type == TY_F64) { uint64_t b = u64(); memcpy((double *)p + i, &b, 8); return; }
        ((uint16_t *)p)[i] = u16();
        return;
    }
    put(p, type, i, v);
}

enum { P_MOD, P_TIES, P_SPREAD, P_HUGE, P_TINY, P_ONEHOT, P_FINITE, P_CONST, P_NEAR, P_TEMP,
       P_RARE, P_LAST, P_ALL, P_MASK, P_ROWMASK, P_RAW, P_COUNT };

static int shape_bad; /* the header calls the sizes ERA_ERR_BAD_SHAPE: every array is left empty */

/* Fills rows x cols values of `type` by a profile taken from the stream; returns the profile. */
static int fill_values(void *p, int type, int64_t rows, int64_t cols) {
    uint8_t b = byte();
    int profile = b < 128 ? b % 10 : b % P_COUNT; /* mostly finite profiles */
    uint8_t knob = byte();
    if (shape_bad || rows <= 0 || cols <= 0) return profile;
    int64_t n = rows * cols;
    int64_t special_at = (int64_t)(u32() % (uint64_t)n), hot = 0, masked_row = (int64_t)(byte() % (uint64_t)rows);
    double scale = pow(10.0, (double)(knob % 13) - 6.0);
    static const int finite_classes[] = {C_MOD, C_INT, C_ZERO, C_HUGE, C_TINY, C_SPREAD, C_PREV, C_NEAR};
    static const int special_classes[] = {C_NAN, C_PINF, C_NINF};
    for (int64_t i = 0; i < n; i++) {
        int64_t row = i / cols, col = i % cols;
        uint8_t c = byte();
        int cls = C_MOD;
        double sc = 1.0;
        switch (profile) {
        case P_MOD: cls = c < 230 ? C_MOD : C_INT; break;
        case P_TIES: cls = c % 3 == 0 ? C_INT : C_PREV; break;
        case P_SPREAD: cls = c & 1 ? C_SPREAD : C_MOD; break;
        case P_HUGE: cls = c % 3 == 0 ? C_HUGE : C_MOD; break;
        case P_TINY: cls = c % 3 == 0 ? C_TINY : c % 3 == 1 ? C_ZERO : C_MOD; break;
        case P_ONEHOT:
            if (col == 0) hot = (int64_t)(c % (uint64_t)cols);
            cls = C_MOD;
            sc = col == hot ? (knob & 1 ? 1e30 : 100.0) : 0.01;
            if (col == hot && (knob & 2)) sc = 1e6;
            break;
        case P_FINITE: cls = finite_classes[c % 8]; break;
        case P_CONST: cls = i == 0 ? C_MOD : C_PREV; break;
        case P_NEAR: cls = i == 0 || c < 16 ? C_MOD : C_NEAR; break;
        case P_TEMP: cls = C_MOD; sc = scale; break;
        case P_RARE: cls = i == special_at ? special_classes[knob % 3] : C_MOD; break;
        case P_LAST: cls = i == n - 1 ? special_classes[knob % 3] : C_MOD; break;
        case P_ALL: cls = c % C_RAW; break;
        case P_MASK: cls = c < knob ? C_NINF : C_MOD; break;
        case P_ROWMASK: cls = row == masked_row || c == 0 ? C_NINF : C_MOD; break;
        case P_RAW: cls = C_RAW; break;
        }
        gen_element(p, type, i, cls, sc);
    }
    return profile;
}

/* ---- sizes and parameters ------------------------------------------------------------- */

static const int64_t special_sizes[] = {-1, INT64_MIN, INT64_MAX, INT64_MAX / 2, (int64_t)1 << 32,
                                        -((int64_t)1 << 40), INT64_MAX / 4 + 1, 3037000500LL, 0, 1, 2, -2};

/* A size in 0..max, mostly small; about 1 in 20 a special (negative or huge) value. */
static int64_t gen_size(int64_t max) {
    uint8_t b = byte();
    if (b >= 243) return special_sizes[(b - 243) % 12];
    if (b < 64) return b % 4 < max ? b % 4 : max;
    return (int64_t)(u16() % (uint64_t)(max + 1));
}

static int overflows(int64_t n1, int64_t n2, int64_t size) {
    int64_t count, bytes;
    if (n1 < 0 || n2 < 0) return 1;
    if (__builtin_mul_overflow(n1, n2, &count)) return 1;
    return __builtin_mul_overflow(count, size, &bytes);
}

static const double taus[] = {4.0, 4.0, 4.0, 2.72, 3.0, 5.0, 10.0, 100.0, 1e6, 1e15, 1e300, DBL_MAX,
                              2.718281828459045, 2.7182818284590455, 2.718284546742312 /* ~exp(1+1e-6) */,
                              2.7182845467423120 * (1 + 4e-16), 2.7182845467423120 * (1 - 4e-16),
                              2.718287264827154 /* ~exp(1+2e-6) */, 2.0, 1.0, 0.0, -4.0, NAN, INFINITY, -INFINITY};

static void gen_discrete(era_discrete_params *p, int64_t classes) {
    era_discrete_params_init(p);
    uint8_t m = byte();
    static const int32_t bad_modes[] = {3, -1, INT32_MAX, INT32_MIN, 100, 255};
    p->mode = m < 240 ? (int32_t)(m % 3) : PICK(bad_modes);
    uint8_t t = byte();
    p->tau = t < 128 ? 4.0 : t < 160 ? 2.75 + (t - 128) / 4.0 : PICK(taus);
    if (t >= 160 && t < 170) p->tau = exp(1 + 1e-6) * (1 + ((int)(t - 165)) * 2.2e-16); /* straddle the margin */
    double d = classes >= 2 ? (double)classes : 2.0;
    double up = log(p->tau) / p->tau, lo, hi;
    if (p->mode == ERA_DISCRETE_TIGHT) { lo = 0; hi = log(d); }
    else { lo = 1 + log(up); hi = 1 + log(d * up); }
    uint8_t h = byte();
    static const double wild[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, 1e300, -1e300, 5e-324, 1e-300};
    if (h < 150) p->target_entropy = lo + unit() * (hi - lo);
    else if (h < 170) p->target_entropy = lo;
    else if (h < 190) p->target_entropy = hi;
    else if (h < 200) p->target_entropy = nextafter(lo, -INFINITY);
    else if (h < 210) p->target_entropy = nextafter(hi, INFINITY);
    else if (h < 220) p->target_entropy = lo - 1e-6;
    else if (h < 230) p->target_entropy = hi + 1e-6;
    else if (h < 240) p->target_entropy = lo + (hi - lo) * 1e-9;
    else p->target_entropy = PICK(wild);
}

/* Discrete parameter faults for `classes` (the header's "parameter checks"). */
/* The TIGHT one-hot entropy with the smallest offset libera uses, b = DBL_MIN: the top class
 * gets 1/tau, the D - 1 others h^-1(DBL_MIN) = exp(t), -t exp(t) = DBL_MIN (fixed point on
 * t = log(DBL_MIN) - log(-t)), in long double. */
static double tight_smallest_entropy(double tau, double d) {
    long double t = logl(DBL_MIN);
    for (int i = 0; i < 50; i++) t = logl(DBL_MIN) - logl(-t);
    long double top = 1.0L / tau, other = expl(t), total = top + (d - 1) * other;
    long double qt = top / total, qo = other / total;
    return (double)(-qt * logl(qt) - (d - 1) * qo * logl(qo));
}

static void discrete_faults(const era_discrete_params *p, int64_t classes, unsigned *faults, unsigned *maybe);

static const double cont_bounds[][2] = {
    {-8, 0}, {-8, 0}, {-20, 2}, {-5, 2.3}, {-1e-3, 1e-3}, {0, 0}, {1, -1}, {-1e300, 1e300}, {-1e38, 3.4e38},
    {-DBL_MAX, DBL_MAX}, {-8, 1e-300}, {NAN, 0}, {-8, INFINITY}, {-INFINITY, 0}, {-700, -699}, {5, 10},
    {-1000, 50}, {-1e-300, 1e-300}, {-1e4, 1e4}, {-1e4, -9999}, {9999, 1e4}, {-10000.000000000002, 0},
    {0, 10000.000000000002}, {-1e4, 0}};

static void gen_continuous(era_continuous_params *p, int64_t dim) {
    era_continuous_params_init(p);
    uint8_t b = byte();
    if (b < 200) {
        p->log_std_min = cont_bounds[b % 24][0];
        p->log_std_max = cont_bounds[b % 24][1];
    } else {
        p->log_std_min = -(double)byte() / 4;
        p->log_std_max = p->log_std_min + (double)byte() / 16;
    }
    static const double residuals[] = {0, 0, 0, 0.1, 1, 100, 1e300, -0.0, -1e-300, NAN, INFINITY, 0.5, DBL_MAX};
    p->residual = PICK(residuals);
    static const double ks[] = {0.0, -0.0, -1e-12, -1, -10, -1000, -1e300, -DBL_MAX, 1e-12, 1, -0.25, -3};
    double d = dim >= 1 ? (double)dim : 1.0;
    double c = 0.5 * log(2 * M_PI * exp(1.0));
    uint8_t h = byte();
    if (h < 40) p->target_entropy = -0.5 * d; /* the official SAC default */
    else if (h < 200) {
        double k = h < 120 ? -unit() * d * (p->log_std_max - p->log_std_min) : PICK(ks);
        p->target_entropy = k - p->residual + d * c + d * p->log_std_max;
    } else {
        static const double wild[] = {NAN, INFINITY, -INFINITY, 1e300, -1e300, 0.0};
        p->target_entropy = PICK(wild);
    }
}

static void continuous_faults(const era_continuous_params *p, int64_t dim, unsigned *faults, unsigned *maybe);

static void gen_llm(era_llm_params *p) {
    era_llm_params_init(p);
    uint8_t b = byte();
    if (b < 100) return; /* defaults */
    static const double omegas[][2] = {{0.45, 3.0}, {1, 1}, {3, 0.45}, {-1e30, 1e30}, {NAN, 3}, {0.45, INFINITY},
                                       {0.1, 0.3}, {0, 0}, {-5, -1}, {1e38, 1e39}, {0.45, 3.0}};
    uint8_t o = byte();
    if (o < 200) { p->omega_low = omegas[o % 11][0]; p->omega_high = omegas[o % 11][1]; }
    else { p->omega_low = byte() / 32.0; p->omega_high = p->omega_low + byte() / 32.0; }
    static const double ks[] = {2, 2, 1, 0.5, 1e37, 8.5e37, 8.507059173023462e37, 8.507059173023462e37 * (1 + 1e-7),
                                1.1754943508222875e-38, 1.1754943508222875e-38 * 0.99, 1e-39, 1e38, 0, -2, NAN, INFINITY,
                                1e300, 3.4e38, 1.0000001, 1e-30, 4};
    p->k = PICK(ks);
    static const double fractions[] = {0.2, 0.2, 1, 1e-300, 0.5, 0.9999, 1.0000000000000002, 0, -0.1, NAN, INFINITY,
                                       5e-324, 0.05, 0.75};
    p->top_fraction = PICK(fractions);
    static const int32_t flags[] = {1, 0, -1, 7};
    p->scale_advantages = PICK(flags);
}

static void llm_faults(const era_llm_params *p, unsigned *faults, unsigned *maybe);

static double gen_tol(int type) {
    uint8_t b = byte();
    if (b < 220) return type == TY_F64 ? 1e-9 : 1e-5;
    static const double wild[] = {0, 1e300, DBL_MAX, -0.0, -1e-300, NAN, INFINITY, -INFINITY, 5e-324, 1};
    return PICK(wild);
}

/* ---- buffers -------------------------------------------------------------------------- */

#define NBUF 8
typedef struct {
    unsigned char *p;      /* exactly `bytes` long (malloc(0) for an empty array) */
    size_t bytes;
    int type;
    int64_t count;
    int written;           /* the call may write it: an output, or an input passed as an output */
    unsigned char *before; /* contents before the call */
    unsigned char *after;  /* contents after the first call (rerun comparison) */
} buffer;

static buffer B[NBUF];
static void *A[NBUF];      /* the pointers passed for each argument slot */

static void release_all(void) {
    for (int i = 0; i < NBUF; i++) {
        free(B[i].p); free(B[i].before); free(B[i].after);
        memset(&B[i], 0, sizeof B[i]);
        A[i] = NULL;
    }
}

/* Slot i: an array of `count` elements of `type`. Empty (0 bytes) when the shape is bad. */
static void *new_array(int i, int type, int64_t count, int output) {
    if (shape_bad || count < 0) count = 0;
    B[i].type = type;
    B[i].count = count;
    B[i].bytes = (size_t)count * type_size[type];
    B[i].p = malloc(B[i].bytes);
    if (!B[i].p && B[i].bytes) abort();
    B[i].written = output;
    if (output) memset(B[i].p, 0xFF, B[i].bytes);
    A[i] = B[i].p;
    return B[i].p;
}

/* Slot i: a single output struct or value of `bytes` bytes, whatever the shape. */
static void *new_fixed(int i, size_t bytes) {
    int keep = shape_bad;
    shape_bad = 0;
    void *p = new_array(i, TY_RAW, (int64_t)bytes, 1);
    shape_bad = keep;
    return p;
}

/* In place: the output slot `out` gets the very pointer of input slot `in`. */
static void alias(int out, int in) {
    free(B[out].p);
    memset(&B[out], 0, sizeof B[out]);
    A[out] = A[in];
    if (A[in]) B[in].written = 1;
}

/* With a small probability one of the first n slots is passed as NULL. */
static void maybe_null(int n) {
    uint8_t b = byte();
    if (b < 12) A[b % n] = NULL;
}

/* A legal shape too large for this harness (it only allocates small arrays). */
static int too_big(int64_t rows, int64_t cols) {
    if (shape_bad) return 0;
    return rows > 300 || (rows > 0 && cols > 300);
}

/* FUZZ_VERBOSE=1: the arrays of the failing call as they were before it (up to 64 values each). */
static void dump_arrays(void) {
    for (int i = 0; i < NBUF; i++) {
        if (!B[i].before || B[i].type == TY_RAW) continue;
        fprintf(stderr, "  slot %d (%s[%lld], %s%s):", i, type_name[B[i].type], (long long)B[i].count,
                B[i].written ? "written" : "input", A[i] == B[i].p ? "" : A[i] ? ", passed as another slot" : ", passed NULL");
        const char *v = getenv("FUZZ_VERBOSE");
        int64_t limit = v && v[0] == '2' ? B[i].count : 64; /* FUZZ_VERBOSE=2: every value */
        for (int64_t k = 0; k < B[i].count && k < limit; k++) {
            if (B[i].type == TY_I64) fprintf(stderr, " %lld", (long long)((int64_t *)B[i].before)[k]);
            else fprintf(stderr, " %.17g", get(B[i].before, B[i].type, k));
        }
        fprintf(stderr, "%s\n", B[i].count > limit ? " ..." : "");
    }
}

/* ---- status expectations -------------------------------------------------------------- */

#define F(s) (1u << (s))
static unsigned faults, maybe; /* statuses the call must / may return */

static const char *status_name(int s) { return era_status_string((era_status)s); }

static void faults_text(char *out, size_t size, unsigned mask) {
    out[0] = 0;
    for (int s = 1; s < 16; s++)
        if (mask & F(s)) {
            size_t len = strlen(out);
            snprintf(out + len, size - len, "%s%s", len ? ", " : "", status_name(s));
        }
    if (!out[0]) snprintf(out, size, "none");
}

static void check_status(era_status st) {
    char f[200], m[200];
    faults_text(f, sizeof f, faults);
    faults_text(m, sizeof m, maybe);
    if (faults) {
        if (st == ERA_OK) violation("status ok, but the arguments have faults {%s}", f);
        if (!(F(st) & (faults | maybe)))
            violation("status '%s', expected one of {%s} (also allowed {%s})", status_name(st), f, m);
    } else if (st != ERA_OK && !(F(st) & maybe)) {
        violation("status '%s' for valid arguments (allowed besides ok: {%s})", status_name(st), m);
    }
}

/* Outputs untouched on error; inputs untouched always. */
static void check_buffers(era_status st) {
    for (int i = 0; i < NBUF; i++) {
        if (!B[i].p || !B[i].bytes) continue;
        if (B[i].written && st == ERA_OK) continue;
        if (memcmp(B[i].p, B[i].before, B[i].bytes) != 0) {
            size_t k = 0;
            while (B[i].p[k] == B[i].before[k]) k++;
            violation("%s buffer of slot %d (%s[%lld]) changed at byte %zu after status '%s'",
                      B[i].written ? "output" : "input", i, type_name[B[i].type], (long long)B[i].count, k,
                      status_name(st));
        }
    }
}

static void snapshot(void) {
    for (int i = 0; i < NBUF; i++) {
        if (!B[i].p) continue;
        B[i].before = malloc(B[i].bytes ? B[i].bytes : 1);
        memcpy(B[i].before, B[i].p, B[i].bytes);
    }
}

/* The values of input slot i as they were before the call (in-place outputs overwrite them). */
static const void *input(int i) { return B[i].before; }

/* ---- fault models --------------------------------------------------------------------- */

static int near_boundary(double x, double bound, double rel) {
    return fabs(x - bound) <= rel * fmax(1.0, fabs(bound));
}

static void discrete_faults(const era_discrete_params *p, int64_t classes, unsigned *fa, unsigned *ma) {
    if (!p) { *fa |= F(ERA_ERR_NULL_POINTER); return; }
    int bad = 0;
    if (classes < 2) { *fa |= F(ERA_ERR_BAD_SHAPE); *ma |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET); bad = 1; }
    double lt = log(p->tau);
    if (!isfinite(p->target_entropy) || !isfinite(p->tau) || !(lt >= 1 + 1e-6) ||
        (p->mode != ERA_DISCRETE_EXACT && p->mode != ERA_DISCRETE_TIGHT && p->mode != ERA_DISCRETE_REFERENCE)) {
        if (isfinite(p->tau) && p->tau > 0 && near_boundary(lt, 1 + 1e-6, 1e-14) && isfinite(p->target_entropy) &&
            p->mode >= 0 && p->mode <= 2)
            *ma |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET);
        else
            *fa |= F(ERA_ERR_BAD_PARAMETER);
        return;
    }
    if (near_boundary(lt, 1 + 1e-6, 1e-14)) *ma |= F(ERA_ERR_BAD_PARAMETER);
    if (bad) return;
    double d = (double)classes, up = lt / p->tau, h = p->target_entropy;
    if (p->mode == ERA_DISCRETE_TIGHT) {
        double hi = log(d), reach = tight_smallest_entropy(p->tau, d);
        if (!(h > 0 && h < hi)) *fa |= F(ERA_ERR_INFEASIBLE_TARGET);
        if (near_boundary(h, hi, 1e-14)) *ma |= F(ERA_ERR_INFEASIBLE_TARGET);
        /* era.h: below the one-hot entropy reachable with b = DBL_MIN no C is tight. */
        if (h <= reach * (1 + 1e-6)) {
            if (h < reach * (1 - 1e-6)) *fa |= F(ERA_ERR_INFEASIBLE_TARGET); else *ma |= F(ERA_ERR_INFEASIBLE_TARGET);
        }
    } else {
        double lo = 1 + log(up), hi = 1 + log(d * up);
        if (near_boundary(h, lo, 1e-9) || near_boundary(h, hi, 1e-9)) *ma |= F(ERA_ERR_INFEASIBLE_TARGET);
        else if (!(h >= lo && h <= hi)) *fa |= F(ERA_ERR_INFEASIBLE_TARGET);
    }
}

static double continuous_k(const era_continuous_params *p, int64_t dim) {
    double d = (double)dim, c = 0.5 * log(2 * M_PI * exp(1.0));
    return p->target_entropy + p->residual - d * c - d * p->log_std_max;
}

static void continuous_faults(const era_continuous_params *p, int64_t dim, unsigned *fa, unsigned *ma) {
    if (!p) { *fa |= F(ERA_ERR_NULL_POINTER); return; }
    if (dim < 1) { *fa |= F(ERA_ERR_BAD_SHAPE); *ma |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET); return; }
    /* BAD_PARAMETER: a field NaN or infinite, residual < 0, log_std_min >= log_std_max, a bound
     * outside [-1e4, 1e4], or K overflowing (era.h, continuous parameter checks) */
    if (!isfinite(p->target_entropy) || !isfinite(p->residual) || !isfinite(p->log_std_min) ||
        !isfinite(p->log_std_max) || p->residual < 0 || !(p->log_std_min < p->log_std_max) ||
        fabs(p->log_std_min) > 1e4 || fabs(p->log_std_max) > 1e4 || !isfinite(continuous_k(p, dim))) {
        *fa |= F(ERA_ERR_BAD_PARAMETER);
        /* several faults (a bad bound, K = +inf) may report INFEASIBLE_TARGET for K > 0 instead */
        if (continuous_k(p, dim) > 0) *ma |= F(ERA_ERR_INFEASIBLE_TARGET);
        return;
    }
    double d = (double)dim, c = 0.5 * log(2 * M_PI * exp(1.0));
    double k = continuous_k(p, dim);
    double scale = fabs(p->target_entropy) + fabs(p->residual) + d * c + d * fabs(p->log_std_max);
    if (fabs(k) <= 1e-12 * scale) *ma |= F(ERA_ERR_INFEASIBLE_TARGET);
    else if (k > 0) *fa |= F(ERA_ERR_INFEASIBLE_TARGET);
}

static void llm_faults(const era_llm_params *p, unsigned *fa, unsigned *ma) {
    if (!p) { *fa |= F(ERA_ERR_NULL_POINTER); return; }
    const double kmin = FLT_MIN, kmax = 0x1p126;
    int bad = !isfinite(p->omega_low) || !isfinite(p->omega_high) || !isfinite(p->k) || !isfinite(p->top_fraction) ||
              !(p->omega_low <= p->omega_high) || !(p->top_fraction > 0 && p->top_fraction <= 1) || !(p->k > 0);
    if (bad) { *fa |= F(ERA_ERR_BAD_PARAMETER); return; }
    if (near_boundary(p->k / kmin, 1, 1e-6) || near_boundary(p->k / kmax, 1, 1e-6)) *ma |= F(ERA_ERR_BAD_PARAMETER);
    else if (p->k < kmin || p->k > kmax) *fa |= F(ERA_ERR_BAD_PARAMETER);
}

/* ---- long-double references ----------------------------------------------------------- */

/* Softmax statistics of scale*v over a row of `type` values; -inf entries masked.
 * Returns the count of unmasked entries. */
typedef struct { long double m, s, t; int64_t unmasked; } row_stats;

static row_stats stats_of(const void *p, int type, int64_t off, int64_t n, double scale) {
    row_stats r = {-INFINITY, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        long double v = (long double)scale * get(p, type, off + i);
        if (v == -INFINITY) continue;
        r.unmasked++;
        if (v > r.m) r.m = v;
    }
    for (int64_t i = 0; i < n; i++) {
        long double v = (long double)scale * get(p, type, off + i);
        if (v == -INFINITY) continue;
        long double e = expl(v - r.m);
        r.s += e;
        if (e > 0) r.t += (v - r.m) * e;
    }
    return r;
}
static long double stats_entropy(row_stats r) { return logl(r.s) - r.t / r.s; }
static long double stats_lse(row_stats r) { return r.m + logl(r.s); }

static const double GAUSS_C = 1.4189385332046727418; /* 0.5*log(2*pi*e) */

/* Close within tol, where a reference beyond the range of `type` allows an infinity of its sign. */
static void expect_close(double got, long double want, double tol, int type, const char *what, int64_t index) {
    if (isnan(got)) violation("%s[%lld] is NaN (expected %.17Lg)", what, (long long)index, want);
    if (fabsl(want) > type_max(type) * (1 - 1e-6)) {
        if (isinf(got) && (got > 0) == (want > 0)) return;
        if (!isinf(got) && fabsl((long double)got - want) <= tol + 4 * type_eps(type) * fabsl(want)) return;
        violation("%s[%lld] = %.17g, expected %.17Lg (beyond the %s range)", what, (long long)index, got, want,
                  type_name[type]);
    }
    if (!isfinite(got) || fabsl((long double)got - want) > tol)
        violation("%s[%lld] = %.17g, expected %.17Lg within %.3g", what, (long long)index, got, want, tol);
}

/* ---- the entry points ----------------------------------------------------------------- */

enum {
    FN_SOFTMAX_F32, FN_SOFTMAX_F64, FN_GAUSS_F32, FN_GAUSS_F64, FN_TANH_F32, FN_TANH_F64, FN_TRUNC_F32,
    FN_TRUNC_F64, FN_CFWD_F32, FN_CFWD_F64, FN_CBWD_F32, FN_CBWD_F64, FN_DFLOOR, FN_DINF, FN_DCONST, FN_DFWD_F32,
    FN_DFWD_F64, FN_DBWD_F32, FN_DBWD_F64, FN_CHKD_F32, FN_CHKD_F64, FN_CHKC_F32, FN_CHKC_F64, FN_TOK_F32,
    FN_TOK_F64, FN_TOK_BF16, FN_RESP, FN_SCALES, FN_LPF_F32, FN_LPF_BF16, FN_LPB_F32, FN_LPB_BF16, FN_THREADS,
    FN_STATUS, FN_VERSION, FN_INIT,
    /* appended after the first 36 so that older inputs keep decoding to the same entry point
     * (see fn_of_byte) */
    FN_LINF, FN_LINB, FN_LCE,
    /* the truncated-normal policy: bytes 210..222 and 225..231 (see fn_of_byte) */
    FN_TNS_F32, FN_TNS_F64, FN_TNSB_F32, FN_TNSB_F64, FN_TNLP_F32, FN_TNLP_F64, FN_TNLPB_F32, FN_TNLPB_F64,
    /* the truncated-normal entropy gradient and the sampled floor: bytes 39..62 (see fn_of_byte) */
    FN_TNB_F32, FN_TNB_F64, FN_SFF_F32, FN_SFF_F64, FN_SFB_F32, FN_SFB_F64, FN_CHKT_F32, FN_CHKT_F64,
    /* the tanh-Gaussian entropy gradient and the tanh sampled floor: bytes 78..101 (see fn_of_byte) */
    FN_TGB_F32, FN_TGB_F64, FN_THF_F32, FN_THF_F64, FN_THB_F32, FN_THB_F64, FN_CHKH_F32, FN_CHKH_F64, FN_COUNT
};
static const char *const fn_name[] = {
    "era_softmax_entropy_f32", "era_softmax_entropy_f64", "era_gaussian_entropy_f32", "era_gaussian_entropy_f64",
    "era_tanh_gaussian_entropy_f32", "era_tanh_gaussian_entropy_f64", "era_truncated_normal_entropy_f32",
    "era_truncated_normal_entropy_f64", "era_continuous_forward_f32", "era_continuous_forward_f64",
    "era_continuous_backward_f32", "era_continuous_backward_f64", "era_discrete_floor", "era_discrete_infimum",
    "era_discrete_constant", "era_discrete_forward_f32", "era_discrete_forward_f64", "era_discrete_backward_f32",
    "era_discrete_backward_f64", "era_check_discrete_f32", "era_check_discrete_f64", "era_check_continuous_f32",
    "era_check_continuous_f64", "era_token_entropy_f32", "era_token_entropy_f64", "era_token_entropy_bf16",
    "era_llm_response_entropy_f32", "era_llm_scales_f32", "era_llm_logprob_forward_f32",
    "era_llm_logprob_forward_bf16", "era_llm_logprob_backward_f32", "era_llm_logprob_backward_bf16",
    "era_set_num_threads", "era_status_string", "era_version_string", "era_*_params_init",
    "era_llm_linear_logprob_forward_f32", "era_llm_linear_logprob_backward_f32", "era_linear_discrete_ce_f32",
    "era_truncated_normal_sample_f32", "era_truncated_normal_sample_f64", "era_truncated_normal_sample_backward_f32",
    "era_truncated_normal_sample_backward_f64", "era_truncated_normal_log_prob_f32", "era_truncated_normal_log_prob_f64",
    "era_truncated_normal_log_prob_backward_f32", "era_truncated_normal_log_prob_backward_f64",
    "era_truncated_normal_entropy_backward_f32", "era_truncated_normal_entropy_backward_f64",
    "era_continuous_truncated_forward_f32", "era_continuous_truncated_forward_f64",
    "era_continuous_truncated_backward_f32", "era_continuous_truncated_backward_f64",
    "era_check_continuous_truncated_f32", "era_check_continuous_truncated_f64",
    "era_tanh_gaussian_entropy_backward_f32", "era_tanh_gaussian_entropy_backward_f64",
    "era_continuous_tanh_forward_f32", "era_continuous_tanh_forward_f64", "era_continuous_tanh_backward_f32",
    "era_continuous_tanh_backward_f64", "era_check_continuous_tanh_f32", "era_check_continuous_tanh_f64"};

/* The entry point of an input's first byte. Inputs written before the fused linear heads
 * were added picked it as byte % 36; byte % 39 would move most of them (151 % 36 = 7 but
 * 151 % 39 = 34). So the old mapping stays for every byte value an older input can have used
 * (0..35 in the seed corpus, 39..231 and those below 36 in the regressions), and the new
 * functions get the bytes 36..38 (where byte % 39 gives them) and the window 232..255 (24
 * values, 8 each): about 3.5% of inputs per new function, against 2.8% per old one. Only
 * inputs whose first byte is 36..38 or 232..255 decode differently than before this change;
 * no committed input has one (Tests/fuzz/make_corpus.py checks the corpus).
 * The eight truncated-normal entry points took the bytes 210..222 and 225..231, which no
 * committed input starts with (209, 223 and 224 do, and keep their byte % 36): 2 or 3 bytes
 * each, about 1% of inputs per function.
 * The sampled floor's eight entry points took the bytes 39..62 in the same way (3 each, about
 * 1.2% of inputs per function): no committed input starts with one of them.
 * The tanh floor's eight entry points took the bytes 78..101 (3 each), which no committed
 * input starts with (67, 77, 115, 116 and 125 do, and keep their byte % 36). */
static int fn_of_byte(uint8_t b) {
    if (b < 39) return b;
    if (b < 63) return FN_TNB_F32 + (b - 39) % 8;
    if (b >= 78 && b <= 101) return FN_TGB_F32 + (b - 78) % 8;
    if (b >= 232) return FN_LINF + (b - 232) % 3;
    if (b >= 210 && b <= 222) return FN_TNS_F32 + (b - 210) % 8;
    if (b >= 225 && b <= 231) return FN_TNS_F32 + (b - 225 + 5) % 8;
    return b % 36;
}

/* The arguments of the current call (besides the array slots A[]). */
static int fn;
static int64_t n_rows, n_cols, n_resp, n_dim;
static double lo_arg, hi_arg, tol_arg;
static era_discrete_params dparams;
static era_continuous_params cparams;
static era_llm_params lparams;
static const era_discrete_params *dp;
static const era_continuous_params *cpp;
static const era_llm_params *lp;
/* The top-k variants (era_llm_topk_logprob_*, era_llm_linear_topk_logprob_*): with topk_on the
 * logprob and LLM-head inputs call them with top_k = n_topk (see gen_topk). */
static int topk_on;
static int64_t n_topk;
/* top_k selects a strict subset of the vocabulary (below it, the top-k formulas; at or above
 * it, the full log-softmax) */
static int topk_active(void) { return topk_on && n_topk >= 1 && n_topk < n_cols; }

static era_status invoke(void) {
    switch (fn) {
    case FN_SOFTMAX_F32: return era_softmax_entropy_f32(n_rows, n_cols, A[0], A[1]);
    case FN_SOFTMAX_F64: return era_softmax_entropy_f64(n_rows, n_cols, A[0], A[1]);
    case FN_GAUSS_F32: return era_gaussian_entropy_f32(n_rows, n_cols, A[0], A[1]);
    case FN_GAUSS_F64: return era_gaussian_entropy_f64(n_rows, n_cols, A[0], A[1]);
    case FN_TANH_F32: return era_tanh_gaussian_entropy_f32(n_rows, n_cols, A[0], A[1], A[2]);
    case FN_TANH_F64: return era_tanh_gaussian_entropy_f64(n_rows, n_cols, A[0], A[1], A[2]);
    case FN_TRUNC_F32: return era_truncated_normal_entropy_f32(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2]);
    case FN_TRUNC_F64: return era_truncated_normal_entropy_f64(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2]);
    case FN_CFWD_F32: return era_continuous_forward_f32(cpp, n_rows, n_cols, A[0], A[1]);
    case FN_CFWD_F64: return era_continuous_forward_f64(cpp, n_rows, n_cols, A[0], A[1]);
    case FN_CBWD_F32: return era_continuous_backward_f32(cpp, n_rows, n_cols, A[0], A[1], A[2], A[3]);
    case FN_CBWD_F64: return era_continuous_backward_f64(cpp, n_rows, n_cols, A[0], A[1], A[2], A[3]);
    case FN_DFLOOR: return era_discrete_floor(dp, n_cols, A[0]);
    case FN_DINF: return era_discrete_infimum(dp, n_cols, A[0]);
    case FN_DCONST: return era_discrete_constant(dp, n_cols, A[0]);
    case FN_DFWD_F32: return era_discrete_forward_f32(dp, n_rows, n_cols, A[0], A[1]);
    case FN_DFWD_F64: return era_discrete_forward_f64(dp, n_rows, n_cols, A[0], A[1]);
    case FN_DBWD_F32: return era_discrete_backward_f32(dp, n_rows, n_cols, A[0], A[1], A[2]);
    case FN_DBWD_F64: return era_discrete_backward_f64(dp, n_rows, n_cols, A[0], A[1], A[2]);
    case FN_CHKD_F32: return era_check_discrete_f32(dp, n_rows, n_cols, A[0], tol_arg, A[1]);
    case FN_CHKD_F64: return era_check_discrete_f64(dp, n_rows, n_cols, A[0], tol_arg, A[1]);
    case FN_CHKC_F32: return era_check_continuous_f32(cpp, n_rows, n_cols, A[0], A[1], tol_arg, A[2]);
    case FN_CHKC_F64: return era_check_continuous_f64(cpp, n_rows, n_cols, A[0], A[1], tol_arg, A[2]);
    case FN_TOK_F32: return era_token_entropy_f32(n_rows, n_cols, A[0], A[1]);
    case FN_TOK_F64: return era_token_entropy_f64(n_rows, n_cols, A[0], A[1]);
    case FN_TOK_BF16: return era_token_entropy_bf16(n_rows, n_cols, A[0], A[1]);
    case FN_RESP: return era_llm_response_entropy_f32(lp, n_rows, A[0], A[1], n_resp, A[2]);
    case FN_SCALES: return era_llm_scales_f32(lp, n_rows, A[0], n_resp, A[1], A[2], A[3], A[4]);
    case FN_LPF_F32:
        if (topk_on) return era_llm_topk_logprob_forward_f32(n_rows, n_cols, A[0], A[1], A[2], n_topk, A[3], A[4]);
        return era_llm_logprob_forward_f32(n_rows, n_cols, A[0], A[1], A[2], A[3], A[4]);
    case FN_LPF_BF16:
        if (topk_on) return era_llm_topk_logprob_forward_bf16(n_rows, n_cols, A[0], A[1], A[2], n_topk, A[3], A[4]);
        return era_llm_logprob_forward_bf16(n_rows, n_cols, A[0], A[1], A[2], A[3], A[4]);
    case FN_LPB_F32:
        if (topk_on) return era_llm_topk_logprob_backward_f32(n_rows, n_cols, A[0], A[1], A[2], n_topk, A[3], A[4]);
        return era_llm_logprob_backward_f32(n_rows, n_cols, A[0], A[1], A[2], A[3], A[4]);
    case FN_LPB_BF16:
        if (topk_on) return era_llm_topk_logprob_backward_bf16(n_rows, n_cols, A[0], A[1], A[2], n_topk, A[3], A[4]);
        return era_llm_logprob_backward_bf16(n_rows, n_cols, A[0], A[1], A[2], A[3], A[4]);
    case FN_LINF:
        if (topk_on)
            return era_llm_linear_topk_logprob_forward_f32(n_rows, n_dim, n_cols, A[0], A[1], A[2], A[3], n_topk, A[4],
                                                           A[5]);
        return era_llm_linear_logprob_forward_f32(n_rows, n_dim, n_cols, A[0], A[1], A[2], A[3], A[4], A[5]);
    case FN_LINB:
        if (topk_on)
            return era_llm_linear_topk_logprob_backward_f32(n_rows, n_dim, n_cols, A[0], A[1], A[2], A[3], n_topk, A[4],
                                                            A[5], A[6]);
        return era_llm_linear_logprob_backward_f32(n_rows, n_dim, n_cols, A[0], A[1], A[2], A[3], A[4], A[5], A[6]);
    case FN_LCE:
        return era_linear_discrete_ce_f32(dp, n_rows, n_dim, n_cols, A[0], A[1], A[2], A[3], A[4], A[5], A[6], A[7]);
    case FN_TNS_F32: return era_truncated_normal_sample_f32(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3]);
    case FN_TNS_F64: return era_truncated_normal_sample_f64(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3]);
    case FN_TNSB_F32:
        return era_truncated_normal_sample_backward_f32(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3], A[4], A[5]);
    case FN_TNSB_F64:
        return era_truncated_normal_sample_backward_f64(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3], A[4], A[5]);
    case FN_TNLP_F32: return era_truncated_normal_log_prob_f32(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3]);
    case FN_TNLP_F64: return era_truncated_normal_log_prob_f64(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3]);
    case FN_TNLPB_F32:
        return era_truncated_normal_log_prob_backward_f32(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3], A[4],
                                                          A[5], A[6]);
    case FN_TNLPB_F64:
        return era_truncated_normal_log_prob_backward_f64(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3], A[4],
                                                          A[5], A[6]);
    case FN_TNB_F32:
        return era_truncated_normal_entropy_backward_f32(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3], A[4]);
    case FN_TNB_F64:
        return era_truncated_normal_entropy_backward_f64(n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3], A[4]);
    case FN_SFF_F32:
        return era_continuous_truncated_forward_f32(cpp, n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3]);
    case FN_SFF_F64:
        return era_continuous_truncated_forward_f64(cpp, n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3]);
    case FN_SFB_F32:
        return era_continuous_truncated_backward_f32(cpp, n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3], A[4],
                                                     A[5]);
    case FN_SFB_F64:
        return era_continuous_truncated_backward_f64(cpp, n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, A[2], A[3], A[4],
                                                     A[5]);
    case FN_CHKT_F32:
        return era_check_continuous_truncated_f32(cpp, n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, tol_arg, A[2]);
    case FN_CHKT_F64:
        return era_check_continuous_truncated_f64(cpp, n_rows, n_cols, A[0], A[1], lo_arg, hi_arg, tol_arg, A[2]);
    case FN_TGB_F32: return era_tanh_gaussian_entropy_backward_f32(n_rows, n_cols, A[0], A[1], A[2], A[3], A[4]);
    case FN_TGB_F64: return era_tanh_gaussian_entropy_backward_f64(n_rows, n_cols, A[0], A[1], A[2], A[3], A[4]);
    case FN_THF_F32: return era_continuous_tanh_forward_f32(cpp, n_rows, n_cols, A[0], A[1], A[2], A[3]);
    case FN_THF_F64: return era_continuous_tanh_forward_f64(cpp, n_rows, n_cols, A[0], A[1], A[2], A[3]);
    case FN_THB_F32: return era_continuous_tanh_backward_f32(cpp, n_rows, n_cols, A[0], A[1], A[2], A[3], A[4], A[5]);
    case FN_THB_F64: return era_continuous_tanh_backward_f64(cpp, n_rows, n_cols, A[0], A[1], A[2], A[3], A[4], A[5]);
    case FN_CHKH_F32: return era_check_continuous_tanh_f32(cpp, n_rows, n_cols, A[0], A[1], tol_arg, A[2]);
    case FN_CHKH_F64: return era_check_continuous_tanh_f64(cpp, n_rows, n_cols, A[0], A[1], tol_arg, A[2]);
    }
    abort();
}

/* Faults common to rows x cols arrays: negative/too small sizes or overflowing byte counts. */
static void shape_faults(int64_t rows, int64_t cols, int64_t min_cols, const int64_t *sizes_per_element,
                         const int64_t *sizes_per_row) {
    int bad = rows < 0 || cols < min_cols;
    for (int i = 0; sizes_per_element && sizes_per_element[i]; i++) bad |= overflows(rows, cols < 0 ? 0 : cols, sizes_per_element[i]);
    for (int i = 0; sizes_per_row && sizes_per_row[i]; i++) bad |= overflows(rows, 1, sizes_per_row[i]);
    shape_bad = bad;
    if (bad) faults |= F(ERA_ERR_BAD_SHAPE), maybe |= F(ERA_ERR_NULL_POINTER);
}

static int all_finite(int slot, int type, int64_t n) {
    if (!A[slot]) return 1;
    for (int64_t i = 0; i < n; i++) if (!isfinite(get(A[slot], type, i))) return 0;
    return 1;
}
static double max_abs(const void *p, int type, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(get(p, type, i)));
    return m;
}

/* ---- per-function setup (arguments, buffers, fault model) and checks on ERA_OK ----------- */

static int vt_of(int f) {
    switch (f) {
    case FN_SOFTMAX_F64: case FN_GAUSS_F64: case FN_TANH_F64: case FN_TRUNC_F64: case FN_CFWD_F64: case FN_CBWD_F64:
    case FN_DFWD_F64: case FN_DBWD_F64: case FN_CHKD_F64: case FN_CHKC_F64: case FN_TOK_F64: return TY_F64;
    case FN_TNS_F64: case FN_TNSB_F64: case FN_TNLP_F64: case FN_TNLPB_F64: return TY_F64;
    case FN_TNB_F64: case FN_SFF_F64: case FN_SFB_F64: case FN_CHKT_F64: return TY_F64;
    case FN_TGB_F64: case FN_THF_F64: case FN_THB_F64: case FN_CHKH_F64: return TY_F64;
    case FN_TOK_BF16: case FN_LPF_BF16: case FN_LPB_BF16: return TY_BF16;
    default: return TY_F32;
    }
}

/* era.h: the Gaussian, tanh-Gaussian and truncated-normal entropies are refused
 * (BAD_PARAMETER) when an entropy cannot be represented in the output type. Taken here as:
 * a row whose entropy bounds (the magnitudes below) leave half of `range` (the largest
 * value of the type the entropies are written or computed in); for the
 * squashed and truncated ones also a std outside [e^-700, e^700], and for the truncated one
 * a standardised bound beyond 1e150 (its square overflows). `loc_slot`/`logstd_slot` are
 * the input slots (the same one for the plain Gaussian). */
enum { ENT_GAUSS, ENT_TANH, ENT_TRUNC };
static int entropy_extreme(int kind, int vt, double range, int loc_slot, int logstd_slot) {
    int gauss = kind == ENT_GAUSS, tanh_ = kind == ENT_TANH;
    for (int64_t r = 0; r < n_rows; r++) {
        long double row = 0;
        for (int64_t i = 0; i < n_cols; i++) {
            long double m = get(A[loc_slot], vt, r * n_cols + i), ls = get(A[logstd_slot], vt, r * n_cols + i);
            row += fabsl(ls) + GAUSS_C;
            if (gauss) continue;
            if (fabsl(ls) > 700) return 1;
            long double sd = expl(ls);
            if (tanh_) {
                row += 2 * (fabsl(m) + sd);
            } else {
                if (fabsl(lo_arg - m) / sd > 1e150L || fabsl(hi_arg - m) / sd > 1e150L) return 1;
                row += fabsl(logl((long double)hi_arg - lo_arg));
            }
        }
        if (row > range / 2) return 1;
    }
    return 0;
}

/* Returns 0 when the call must be skipped (a legal size too large to allocate). */
static int setup_entropy(int vt) {
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    int inputs = (fn == FN_SOFTMAX_F32 || fn == FN_SOFTMAX_F64 || fn == FN_GAUSS_F32 || fn == FN_GAUSS_F64) ? 1 : 2;
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, es);
    if (too_big(n_rows, n_cols)) return 0;
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    for (int i = 0; i < inputs; i++) fill_values(new_array(i, vt, n, 0), vt, shape_bad ? 0 : n_rows, n_cols);
    new_array(inputs, vt, shape_bad ? 0 : n_rows, 1);
    if (inputs == 2 && byte() < 16) A[1] = A[0]; /* the same array for both inputs */
    maybe_null(inputs + 1);
    if (fn == FN_TRUNC_F32 || fn == FN_TRUNC_F64) {
        static const double bounds[][2] = {{-1, 1}, {-1, 1}, {0, 1}, {-1e-8, 1e-8}, {5, 6}, {-1e300, 1e300},
                                           {-DBL_MAX, DBL_MAX}, {1, 1}, {1, -1}, {NAN, 1}, {-INFINITY, 1},
                                           {0, INFINITY}, {1e8, 1e8 + 1}, {-3, -2}, {-1e-300, 0}};
        uint8_t b = byte();
        if (b < 220) { lo_arg = bounds[b % 15][0]; hi_arg = bounds[b % 15][1]; }
        else { lo_arg = (int8_t)byte() / 8.0; hi_arg = lo_arg + byte() / 64.0; }
        if (!(isfinite(lo_arg) && isfinite(hi_arg) && lo_arg < hi_arg)) {
            if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER); else faults |= F(ERA_ERR_BAD_PARAMETER);
        }
    }
    if (!shape_bad) {
        if (n_rows > 0 && (!A[0] || !A[inputs] || (inputs == 2 && !A[1]))) faults |= F(ERA_ERR_NULL_POINTER);
        for (int i = 0; i < inputs; i++) if (!all_finite(i, vt, n)) faults |= F(ERA_ERR_NON_FINITE);
        if (fn != FN_SOFTMAX_F32 && fn != FN_SOFTMAX_F64 && A[0] && A[inputs - 1] && !(faults & F(ERA_ERR_NON_FINITE)) &&
            entropy_extreme(inputs == 1 ? ENT_GAUSS : (fn == FN_TANH_F32 || fn == FN_TANH_F64) ? ENT_TANH : ENT_TRUNC,
                            vt, type_max(vt), 0, inputs - 1))
            maybe |= F(ERA_ERR_BAD_PARAMETER);
    }
    describe("%s(rows=%lld, cols=%lld, lo=%.17g, hi=%.17g)", fn_name[fn], (long long)n_rows, (long long)n_cols, lo_arg, hi_arg);
    return 1;
}

static void checks_entropy(int vt) {
    const void *x = input(0), *y = B[1].before ? input(1) : x;
    const void *out = A[fn == FN_SOFTMAX_F32 || fn == FN_SOFTMAX_F64 || fn == FN_GAUSS_F32 || fn == FN_GAUSS_F64 ? 1 : 2];
    const void *logstd = (fn == FN_GAUSS_F32 || fn == FN_GAUSS_F64) ? x : (A[1] == A[0] ? x : y);
    const void *mean = x;
    for (int64_t r = 0; r < n_rows; r++) {
        double got = get(out, vt, r);
        if (!isfinite(got)) violation("entropy of row %lld is %g with status ok", (long long)r, got);
        if (fn == FN_SOFTMAX_F32 || fn == FN_SOFTMAX_F64) {
            row_stats s = stats_of(x, vt, r * n_cols, n_cols, 1.0);
            long double h = stats_entropy(s);
            double tol = (vt == TY_F64 ? 1e-12 : 2.5e-7) * (1 + (double)h) + 1e-13 * log((double)n_cols + 1);
            expect_close(got, h, tol, vt, "softmax entropy", r);
            if (got < 0 || got > log((double)n_cols) * (1 + 1e-6) + 1e-6)
                violation("softmax entropy of row %lld = %.17g outside [0, log %lld]", (long long)r, got, (long long)n_cols);
            continue;
        }
        long double gauss = 0, scale = 0;
        for (int64_t i = 0; i < n_cols; i++) {
            double v = get(logstd, vt, r * n_cols + i);
            gauss += v;
            scale += fabs(v) + GAUSS_C;
        }
        gauss += (long double)n_cols * GAUSS_C;
        if (fn == FN_GAUSS_F32 || fn == FN_GAUSS_F64) {
            double tol = 1e-13 * (double)scale + (vt == TY_F64 ? 0 : 1.2e-7 * fabsl(gauss));
            if (scale < type_max(vt) / 4) expect_close(got, gauss, tol, vt, "gaussian entropy", r);
            continue;
        }
        /* Bounds per dimension (x: the standardized value, sigma = exp(log_std), c = GAUSS_C):
         *  tanh:      -2|x| <= log(1 - tanh^2 x) <= 2 log 2 - 2|x| and E|x| >= |mu| (Jensen) give
         *             log sigma + c - 2(|mu| + sigma*sqrt(2/pi)) <= H <= log sigma + c + min(0, 2 log 2 - 2|mu|);
         *  truncated: the density on [lo, hi] lies between its values at the endpoints nearest
         *             and farthest from the mode, which gives
         *             log(hi - lo) - (x_far^2 - x_near^2)/2 <= H <= min(log(hi - lo), log sigma + c).
         * docs/math.md promises 1e-14 (tanh) and 1e-13 (truncated; 2e-8 for intervals narrower
         * than 1e-5 std in a tail) per dimension. */
        long double lower = 0, upper = 0, mag = 0;
        for (int64_t i = 0; i < n_cols; i++) {
            long double ls = get(logstd, vt, r * n_cols + i), mu = get(mean, vt, r * n_cols + i);
            long double sigma = expl(ls);
            mag += fabsl(ls) + GAUSS_C + fabsl(mu);
            if (fn == FN_TANH_F32 || fn == FN_TANH_F64) {
                lower += ls + GAUSS_C - 2 * (fabsl(mu) + sigma * 0.79788456080286535588L);
                upper += ls + GAUSS_C + fminl(0, 1.3862943611198906188L - 2 * fabsl(mu));
            } else {
                long double lo = lo_arg, hi = hi_arg, width = hi - lo, gap;
                if (lo <= mu && mu <= hi) { /* the mode inside: x_near = 0 */
                    long double far = fmaxl(mu - lo, hi - mu);
                    gap = far > 0 ? expl(2 * logl(far) - 2 * ls - 0.69314718055994530942L) : 0;
                } else {                     /* (x_far - x_near)(x_far + x_near)/2 */
                    gap = expl(logl(width) + logl(fabsl(lo + hi - 2 * mu)) - 2 * ls - 0.69314718055994530942L);
                }
                lower += logl(width) - gap;
                upper += fminl(logl(width), ls + GAUSS_C);
            }
        }
        double tol = (vt == TY_F64 ? 1e-12 : 2.5e-7) * (double)(mag + fabsl(upper) + (isfinite(lower) ? fabsl(lower) : 0)) +
                     2e-8 * (double)n_cols;
        if (mag < 1e300 && ((isfinite(lower) && got < lower - tol) || got > upper + tol))
            violation("%s of row %lld = %.17g outside its bounds [%.17Lg, %.17Lg] (tol %.3g)", fn_name[fn], (long long)r,
                      got, lower, upper, tol);
    }
}

/* The arrays of an activation call (continuous or discrete ERA) and their NULL/NON_FINITE
 * faults. Slot 0: the input rows. Forward: slot 1 the output (maybe in place on 0).
 * Backward: slot 1 the upstream gradient (maybe the input itself), slot 2 the output (maybe
 * on 0 or 1) and, with `residual_grad`, slot 3 the optional per-row residual gradient. The
 * order of the bytes read here is part of the input format of the regression inputs. */
static void activation_arrays(int vt, int backward, int residual_grad) {
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    if (!backward) {
        new_array(1, vt, n, 1);
        if (byte() < 64) alias(1, 0);
        maybe_null(2);
    } else {
        fill_values(new_array(1, vt, n, 0), vt, n_rows, n_cols);
        new_array(2, vt, n, 1);
        if (residual_grad) new_array(3, vt, shape_bad ? 0 : n_rows, 1);
        uint8_t a = byte();
        if (a < 16) A[1] = A[0];
        if (a < 48) alias(2, 0);
        else if (a < 80) alias(2, 1);
        if (residual_grad && byte() < 80) A[3] = NULL; /* the residual gradient is optional */
        maybe_null(3);
    }
    if (!shape_bad) {
        if (n_rows > 0 && (!A[0] || !A[1] || (backward && !A[2]))) faults |= F(ERA_ERR_NULL_POINTER);
        if (!all_finite(0, vt, n) || (backward && !all_finite(1, vt, n))) faults |= F(ERA_ERR_NON_FINITE);
    }
}

static int setup_continuous(int vt) {
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    gen_continuous(&cparams, n_cols);
    cpp = byte() < 8 ? NULL : &cparams;
    int backward = fn == FN_CBWD_F32 || fn == FN_CBWD_F64;
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, es);
    if (too_big(n_rows, n_cols)) return 0;
    if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET);
    continuous_faults(cpp, n_cols, shape_bad ? &maybe : &faults, &maybe);
    activation_arrays(vt, backward, 1);
    describe("%s(params=%s{H0=%.17g, delta=%.17g, min=%.17g, max=%.17g}, rows=%lld, dim=%lld, in_place=%d)",
             fn_name[fn], cpp ? "" : "NULL ", cparams.target_entropy, cparams.residual, cparams.log_std_min,
             cparams.log_std_max, (long long)n_rows, (long long)n_cols, backward ? (A[2] == A[0] ? 1 : A[2] == A[1] ? 2 : 0) : A[1] == A[0]);
    return 1;
}

static double round_up_float(double v) {
    float f = (float)v;
    if ((double)f < v) f = nextafterf(f, INFINITY);
    return f;
}

static void checks_continuous(int vt) {
    int backward = fn == FN_CBWD_F32 || fn == FN_CBWD_F64;
    const void *s = input(0);
    double k = continuous_k(&cparams, n_cols);
    double mn = cparams.log_std_min, mx = cparams.log_std_max;
    double mx_t = vt == TY_F64 ? mx : round_up_float(mx);
    int64_t n = n_rows * n_cols;
    if (!backward) {
        const void *out = A[1];
        int all_fin = 1;
        for (int64_t i = 0; i < n; i++) {
            double v = get(out, vt, i);
            if (isnan(v) || v < mn || v > mx_t)
                violation("log std [%lld] = %.17g outside [log_std_min %.17g, log_std_max %.17g (as %s: %.17g)]",
                          (long long)i, v, mn, mx, type_name[vt], mx_t);
            all_fin &= isfinite(v);
        }
        /* the reference: max(log_std_max + K*softmax(s)_i, log_std_min), rounded up for float.
         * Where rounding can cost a row's floor more than 1e-11 (ContinuousERA: the bound
         * 2.3e-16 (|K| (D + 16) + 2 D max(|min|, |max|))), libera's repair pass raises the
         * entries between the bounds by the shortfall (at most that bound), spread evenly times
         * 1.0625, at least one ulp each, in up to 16 rounds (docs/math.md, section 1) */
        double repair_bound = 2.3e-16 * (fabs(k) * ((double)n_cols + 16) + 2 * (double)n_cols * fmax(fabs(mn), fabs(mx)));
        double repair = repair_bound >= 1e-11 ? 1.07 * repair_bound + 17 * 2.3e-16 * fmax(fabs(mn), fabs(mx)) : 0;
        for (int64_t r = 0; r < n_rows && isfinite(k); r++) {
            row_stats st = stats_of(s, vt, r * n_cols, n_cols, 1.0);
            for (int64_t i = 0; i < n_cols; i++) {
                long double w = expl((long double)get(s, vt, r * n_cols + i) - st.m) / st.s;
                long double y = (long double)mx + (long double)k * w;
                if (y < mn) y = mn;
                double got = get(out, vt, r * n_cols + i);
                /* w carries the rounding of the softmax sum: about (dim + 8) ulp; the f32 vector
                 * kernel takes w from exp4, 8.2e-13 relative (docs/math.md, "Vector kernels"):
                 * 2e-12 for the quotient of two of them */
                double tol = 4.5e-16 * (fabs(mx) + fabs(mn) + (double)(n_cols + 8) * fabs(k) * (double)w) +
                             2e-12 * fabs(k) * (double)w + 1e-300 + repair;
                /* exp4 gives 0 below -708 (the portable kernel below -1000): such a weight may be
                 * dropped, visible when |K| is huge (K = -1e300, w = 1e-313) */
                if ((long double)get(s, vt, r * n_cols + i) - st.m < -707.5L) tol += 1.01 * fabs(k) * (double)w;
                if (vt == TY_F32 && fabsl(y) > FLT_MAX) continue; /* rounded up: +inf or -FLT_MAX, both legal */
                if (vt == TY_F32) {
                    if (got < y - tol || got > y + tol + 2.4e-7 * fabsl(y) + 1.5e-45)
                        violation("log std [%lld,%lld] = %.9g, expected %.17Lg rounded up to float", (long long)r,
                                  (long long)i, got, y);
                } else if (fabsl(got - y) > tol) {
                    violation("log std [%lld,%lld] = %.17g, expected %.17Lg", (long long)r, (long long)i, got, y);
                }
            }
        }
        if (all_fin && n_rows > 0) {
            era_bound_report rep;
            long double sum = fabsl(cparams.target_entropy) + fabsl(cparams.residual) + fabs(k);
            for (int64_t i = 0; i < n; i++) sum += fabs(get(out, vt, i)) + GAUSS_C;
            double tol = fmin(1e-12 * (double)sum, 1e300);
            era_status st = vt == TY_F64 ? era_check_continuous_f64(&cparams, n_rows, n_cols, NULL, out, tol, &rep)
                                         : era_check_continuous_f32(&cparams, n_rows, n_cols, NULL, out, tol, &rep);
            if (st != ERA_OK) violation("era_check_continuous on the forward's output: status '%s'", status_name(st));
            if (rep.violations != 0)
                violation("Gaussian floor missed: %lld rows below H0 + delta = %.17g by up to %.3g (tol %.3g), worst row %lld",
                          (long long)rep.violations, rep.target, rep.max_deficit, tol, (long long)rep.worst_row);
            if (rep.rows != n_rows || !(rep.target == cparams.target_entropy + cparams.residual) || rep.floor != rep.target)
                violation("continuous check report: rows %lld, target %.17g, floor %.17g", (long long)rep.rows, rep.target, rep.floor);
        }
        return;
    }
    const void *g = A[1] == A[0] ? input(0) : input(1);
    const void *out = A[2];
    double gmax = max_abs(g, vt, n);
    /* |gradient| <= 2|K| max|g|; the documented intermediate g_j - sum g_i*w_i is within 2 max|g| */
    double bound = 2 * fabs(k) * gmax;
    if (gmax >= type_max(vt) / 4) bound = INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = get(out, vt, i);
        if (isfinite(bound) && bound < type_max(vt) / 4 && !isfinite(v))
            violation("gradient [%lld] = %g, though |K| = %g and max|grad_log_std| = %g bound it by %g", (long long)i, v,
                      fabs(k), gmax, bound);
    }
    if (A[3])
        for (int64_t r = 0; r < n_rows; r++) {
            double v = get(A[3], vt, r);
            if (gmax < type_max(vt) / 4 && !isfinite(v))
                violation("residual gradient [%lld] = %g with max|grad_log_std| = %g", (long long)r, v, gmax);
        }
    /* the reference, for rows whose clipping is unambiguous */
    for (int64_t r = 0; r < n_rows && isfinite(bound) && bound < type_max(vt) / 4; r++) {
        row_stats st = stats_of(s, vt, r * n_cols, n_cols, 1.0);
        long double weighted = 0, w[300], gt[300];
        int ambiguous = 0;
        for (int64_t i = 0; i < n_cols; i++) {
            w[i] = expl((long double)get(s, vt, r * n_cols + i) - st.m) / st.s;
            double y = mx + k * (double)w[i];
            if (fabs(y - mn) <= 1e-9 * (fabs(mx) + fabs(k) + fabs(mn))) ambiguous = 1;
            gt[i] = y > mn ? get(g, vt, r * n_cols + i) : 0;
            weighted += gt[i] * w[i];
        }
        if (ambiguous) continue;
        for (int64_t j = 0; j < n_cols; j++) {
            long double want = (long double)k * w[j] * (gt[j] - weighted);
            /* products gt*w round to absolute 2^-1075 below the normal range, which K multiplies */
            /* a weight below the double range is 0 in libera (and e^-1000 is 0 by design, docs/math.md 5) */
            /* and K*w itself may be subnormal (K = -2.5e-298): absolute 2^-1074 times g_j - sum */
            /* and the f32 vector kernel's w from exp4: 2e-12 relative (docs/math.md) */
            double tol = (1e-13 * gmax + 1e-323) * (double)(n_cols + 1) * fabs(k) * (double)w[j] +
                         4 * type_eps(vt) * fabsl(want) + 1e-300 + 2e-322 * fabs(k) * gmax +
                         1e-323 * (double)fabsl(gt[j] - weighted) + 8e-12 * gmax * fabs(k) * (double)w[j];
            /* a weight exp4 drops (its exponent below -708) */
            if ((long double)get(s, vt, r * n_cols + j) - st.m < -707.5L) tol += 2.02 * fabs(k) * (double)w[j] * gmax;
            if (vt == TY_F32) tol += 1.5e-45;
            expect_close(get(out, vt, r * n_cols + j), want, tol, vt, "continuous gradient", r * n_cols + j);
        }
        if (A[3]) {
            double tol = (1e-13 * gmax + 1e-323) * (double)(n_cols + 1) + 4 * type_eps(vt) * fabsl(weighted) +
                         (vt == TY_F32 ? 1.5e-45 + 4e-12 * gmax : 1e-300);
            expect_close(get(A[3], vt, r), weighted, tol, vt, "residual gradient", r);
        }
    }
}

static int64_t gen_classes(void) {
    uint8_t b = byte();
    static const int64_t wild[] = {0, 1, -1, INT64_MIN, INT64_MAX, (int64_t)1 << 40, 152064, 1000000, 2, 3};
    if (b >= 230) return PICK(wild);
    return 2 + (int64_t)(u16() % 299);
}

static int setup_query(void) {
    n_cols = gen_classes();
    gen_discrete(&dparams, n_cols);
    dp = byte() < 8 ? NULL : &dparams;
    new_fixed(0, sizeof(double));
    if (byte() < 10) A[0] = NULL;
    discrete_faults(dp, n_cols, &faults, &maybe);
    if (!A[0]) faults |= F(ERA_ERR_NULL_POINTER);
    describe("%s(params=%s{H0=%.17g, tau=%.17g, mode=%d}, classes=%lld)", fn_name[fn], dp ? "" : "NULL ",
             dparams.target_entropy, dparams.tau, dparams.mode, (long long)n_cols);
    return 1;
}

static void checks_query(void) {
    double v = *(double *)A[0], h0 = dparams.target_entropy, d = (double)n_cols;
    double up = log(dparams.tau) / dparams.tau;
    int mode = dparams.mode;
    if (fn == FN_DFLOOR) {
        if (mode == ERA_DISCRETE_REFERENCE ? !isnan(v) : v != h0)
            violation("floor %.17g, expected %s", v, mode == ERA_DISCRETE_REFERENCE ? "NaN" : "H0");
    } else if (fn == FN_DINF) {
        if (!isfinite(v)) violation("infimum %.17g is not finite", v);
        if (mode == ERA_DISCRETE_EXACT && v < h0 - 1e-12 * fmax(1, fabs(h0)))
            violation("EXACT infimum %.17g below H0 %.17g", v, h0);
        if (mode == ERA_DISCRETE_TIGHT && fabs(v - h0) > 1e-9 * fmax(1, fabs(h0)))
            violation("TIGHT infimum %.17g differs from H0 %.17g", v, h0);
        if (v < -1e-12 || v > log(d) * (1 + 1e-12)) violation("infimum %.17g outside [0, log D]", v);
    } else {
        if (!isfinite(v) || v <= 0) violation("constant C = %.17g", v);
        if (mode == ERA_DISCRETE_TIGHT) {
            if (v < up * (1 - 1e-12) || v > d * up * (1 + 1e-12)) violation("TIGHT C = %.17g outside [up, D*up]", v);
        } else {
            double want = fmin(fmax(exp(h0 - 1), up), d * up);
            if (fabs(v - want) > 1e-12 * want) violation("C = %.17g, expected exp(H0 - 1) = %.17g", v, want);
        }
    }
}

static int setup_discrete(int vt) {
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    gen_discrete(&dparams, n_cols);
    dp = byte() < 8 ? NULL : &dparams;
    int backward = fn == FN_DBWD_F32 || fn == FN_DBWD_F64;
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 2, es, NULL);
    if (too_big(n_rows, n_cols)) return 0;
    if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET);
    discrete_faults(dp, n_cols, shape_bad ? &maybe : &faults, &maybe);
    activation_arrays(vt, backward, 0);
    describe("%s(params=%s{H0=%.17g, tau=%.17g, mode=%d}, rows=%lld, classes=%lld, in_place=%d)", fn_name[fn],
             dp ? "" : "NULL ", dparams.target_entropy, dparams.tau, dparams.mode, (long long)n_rows,
             (long long)n_cols, backward ? (A[2] == A[0] ? 1 : A[2] == A[1] ? 2 : 0) : A[1] == A[0]);
    return 1;
}

/* log h^-1(y): the t <= -1 with t + log(-t) = log(y), 0 < y < 1/e, by bisection in long double. */
static long double ref_log_inverse(long double y) {
    long double target = logl(y), lo = -2000, hi = -1;
    for (int i = 0; i < 200; i++) {
        long double mid = 0.5L * (lo + hi);
        if (mid + logl(-mid) < target) lo = mid; else hi = mid;
    }
    return 0.5L * (lo + hi);
}

static const void *sort_values;
static int sort_type;
static int64_t sort_base;
static int by_value(const void *a, const void *b) {
    double x = get(sort_values, sort_type, sort_base + *(const int64_t *)a);
    double y = get(sort_values, sort_type, sort_base + *(const int64_t *)b);
    return (x > y) - (x < y);
}

static void checks_discrete(int vt) {
    int backward = fn == FN_DBWD_F32 || fn == FN_DBWD_F64;
    const void *z = input(0);
    int mode = dparams.mode;
    double d = (double)n_cols, up = log(dparams.tau) / dparams.tau, c = 0;
    if (era_discrete_constant(&dparams, n_cols, &c) != ERA_OK) violation("era_discrete_constant failed for accepted parameters");
    double a = fmax(0, (d * up - c) / (d - 1)), b = fmax(0, (c - up) / (d - 1));
    int64_t n = n_rows * n_cols;
    if (!backward) {
        const void *out = A[1];
        double cap = vt == TY_F64 ? -log(dparams.tau) : (double)(float)-log(dparams.tau);
        for (int64_t i = 0; i < n; i++) {
            double v = get(out, vt, i);
            if (!isfinite(v)) violation("output logit [%lld] = %g is not finite", (long long)i, v);
            if (mode != ERA_DISCRETE_REFERENCE && v > cap)
                violation("output logit [%lld] = %.17g above -log(tau) = %.17g", (long long)i, v, cap);
        }
        /* order of the inputs, ties stay ties */
        int64_t idx[300];
        for (int64_t r = 0; r < n_rows; r++) {
            for (int64_t i = 0; i < n_cols; i++) idx[i] = i;
            sort_values = z; sort_type = vt; sort_base = r * n_cols;
            qsort(idx, (size_t)n_cols, sizeof idx[0], by_value);
            for (int64_t i = 1; i < n_cols; i++) {
                double z0 = get(z, vt, r * n_cols + idx[i - 1]), z1 = get(z, vt, r * n_cols + idx[i]);
                double o0 = get(out, vt, r * n_cols + idx[i - 1]), o1 = get(out, vt, r * n_cols + idx[i]);
                if (z0 == z1 ? o0 != o1 : o0 > o1)
                    violation("row %lld: inputs %.17g <= %.17g (classes %lld, %lld) give outputs %.17g, %.17g out of order",
                              (long long)r, z0, z1, (long long)idx[i - 1], (long long)idx[i], o0, o1);
            }
        }
        /* a sample of outputs against the reference inverse */
        for (int k = 0; k < 16 && n > 0; k++) {
            int64_t i = (int64_t)(u32() % (uint64_t)n), r = i / n_cols;
            row_stats st = stats_of(z, vt, r * n_cols, n_cols, 1.0);
            long double zi = get(z, vt, i), p = expl(zi - st.m) / st.s;
            long double y = (long double)a * p + b, t;
            if (y < DBL_MIN) y = DBL_MIN;
            if (y > up) y = up;
            if (mode == ERA_DISCRETE_REFERENCE) {
                long double u = -1 - logl(y);
                t = -1 - sqrtl(2 * u) - 0.75L * u;
            } else {
                t = ref_log_inverse(y);
                if (t > -logl(dparams.tau)) t = -logl(dparams.tau);
            }
            /* relative error of y: the softmax (exp of z - m, a sum of dim terms) and a*p + b */
            double rel_y = 4.5e-16 * (double)(n_cols + 16) * (1 + (double)fabsl(zi - st.m));
            /* |dt/dy| * y: |t/(1+t)| for the exact inverse; for REFERENCE, t = -1 - sqrt(2u) - 0.75u with
             * u = -1 - log y has y*dt/dy = 1/sqrt(2u) + 0.75, and u itself cancels near y = 1/e */
            double cond;
            if (mode == ERA_DISCRETE_REFERENCE) {
                long double u = -1 - logl(y);
                cond = (double)(1 / sqrtl(2 * u) + 0.75L) * (1 + 4.5e-16 / (double)fmaxl(u, 1e-300));
            } else {
                cond = fabs((double)(t / (1 + t)));
            }
            double tol = rel_y * cond + 1e-13 * (double)fabsl(t) + 4 * type_eps(vt) * (double)fabsl(t);
            if (y <= DBL_MIN * 1.0001) tol += 1e-9 * (double)fabsl(t); /* at the clamp */
            expect_close(get(out, vt, i), t, tol, vt, "output logit", i);
        }
        /* the floor */
        if (n_rows > 0) {
            era_bound_report rep;
            /* era.h: the f32 variants round each logit to nearest, which moves a TIGHT row below
             * H0, "about 1e-6" (1e-5 suggested as tolerance). That holds for moderate tau; the
             * logits lie near -log(tau), and rounding one moves it by up to 2^-24 |t|, the entropy
             * by up to 2 H |dt|_max: 2.7e-5 for tau = 1e300 (regression floor-f32-tight-huge-tau). */
            double tol = 1e-9;
            if (vt != TY_F64) {
                double tmax = 0;
                for (int64_t i = 0; i < n; i++) tmax = fmax(tmax, fabs(get(out, vt, i)));
                tol = fmax(1e-5, 2.02 * fabs(dparams.target_entropy) * 0x1p-24 * tmax);
            }
            era_status st = vt == TY_F64 ? era_check_discrete_f64(&dparams, n_rows, n_cols, out, tol, &rep)
                                         : era_check_discrete_f32(&dparams, n_rows, n_cols, out, tol, &rep);
            if (st != ERA_OK) violation("era_check_discrete on the forward's output: status '%s'", status_name(st));
            if (mode != ERA_DISCRETE_REFERENCE && rep.violations)
                violation("entropy floor H0 = %.17g missed by %lld rows, worst row %lld at %.17g (deficit %.3g, tol %g)",
                          dparams.target_entropy, (long long)rep.violations, (long long)rep.worst_row, rep.min_entropy,
                          rep.max_deficit, tol);
        }
        return;
    }
    const void *g = A[1] == A[0] ? input(0) : input(1);
    const void *out = A[2];
    double gmax = max_abs(g, vt, n);
    double lt = log(dparams.tau), slope_bound;
    if (mode == ERA_DISCRETE_REFERENCE) {
        double umin = lt - 1 - log(lt);
        slope_bound = 1 / sqrt(2 * umin) + 0.75;
    } else {
        slope_bound = lt / (lt - 1);
    }
    double bound = (d + 1) * slope_bound * gmax;
    for (int64_t i = 0; i < n; i++) {
        double v = get(out, vt, i);
        if (bound < type_max(vt) / 4 && !isfinite(v))
            violation("gradient [%lld] = %g though its exact value is bounded by %.3g (max|grad_out| = %g)", (long long)i,
                      v, bound, gmax);
    }
}

static int setup_check(int vt) {
    int cont = fn == FN_CHKC_F32 || fn == FN_CHKC_F64;
    n_rows = gen_size(64);
    n_cols = cont ? gen_size(300) : gen_size(300);
    if (cont) { gen_continuous(&cparams, n_cols); cpp = byte() < 8 ? NULL : &cparams; }
    else { gen_discrete(&dparams, n_cols); dp = byte() < 8 ? NULL : &dparams; }
    tol_arg = gen_tol(vt);
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, cont ? 1 : 2, es, NULL);
    if (too_big(n_rows, n_cols)) return 0;
    if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET);
    if (cont) continuous_faults(cpp, n_cols, shape_bad ? &maybe : &faults, &maybe);
    else discrete_faults(dp, n_cols, shape_bad ? &maybe : &faults, &maybe);
    if (!(isfinite(tol_arg) && tol_arg >= 0)) {
        if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER); else faults |= F(ERA_ERR_BAD_PARAMETER);
    }
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    int rs = cont ? 2 : 1;
    if (cont) {
        fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
        fill_values(new_array(1, vt, n, 0), vt, n_rows, n_cols);
        if (byte() < 100) A[0] = NULL; /* no means: the Gaussian check */
    } else {
        fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    }
    new_fixed(rs, sizeof(era_bound_report));
    if (byte() < 8) A[rs] = NULL;
    if (byte() < 8) A[cont ? 1 : 0] = NULL;
    if (!A[rs]) faults |= F(ERA_ERR_NULL_POINTER);
    if (!shape_bad) {
        if (n_rows > 0 && !A[cont ? 1 : 0]) faults |= F(ERA_ERR_NULL_POINTER);
        if (!all_finite(0, vt, n) || (cont && !all_finite(1, vt, n))) faults |= F(ERA_ERR_NON_FINITE);
        /* era.h: a row whose entropy is not a finite double is refused (BAD_PARAMETER). The
         * Gaussian check sums log stds, the squashed one is bounded like the tanh entropy. */
        else if (cont && A[1] && entropy_extreme(A[0] ? ENT_TANH : ENT_GAUSS, vt, DBL_MAX, A[0] ? 0 : 1, 1))
            maybe |= F(ERA_ERR_BAD_PARAMETER);
    }
    if (cont)
        describe("%s(params=%s{H0=%.17g, delta=%.17g, min=%.17g, max=%.17g}, rows=%lld, dim=%lld, mean=%s, tol=%g)",
                 fn_name[fn], cpp ? "" : "NULL ", cparams.target_entropy, cparams.residual, cparams.log_std_min,
                 cparams.log_std_max, (long long)n_rows, (long long)n_cols, A[0] ? "given" : "NULL", tol_arg);
    else
        describe("%s(params=%s{H0=%.17g, tau=%.17g, mode=%d}, rows=%lld, classes=%lld, tol=%g)", fn_name[fn],
                 dp ? "" : "NULL ", dparams.target_entropy, dparams.tau, dparams.mode, (long long)n_rows,
                 (long long)n_cols, tol_arg);
    return 1;
}

static void checks_check(int vt) {
    int cont = fn == FN_CHKC_F32 || fn == FN_CHKC_F64;
    era_bound_report rep;
    memcpy(&rep, A[cont ? 2 : 1], sizeof rep);
    double target, floor_;
    if (cont) {
        target = A[0] ? cparams.target_entropy : cparams.target_entropy + cparams.residual;
        floor_ = A[0] ? NAN : target;
    } else {
        target = dparams.target_entropy;
        floor_ = dparams.mode == ERA_DISCRETE_REFERENCE ? NAN : target;
    }
    if (rep.rows != n_rows) violation("report rows %lld, expected %lld", (long long)rep.rows, (long long)n_rows);
    if (!(rep.target == target)) violation("report target %.17g, expected %.17g", rep.target, target);
    if (isnan(floor_) ? !isnan(rep.floor) : rep.floor != floor_) violation("report floor %.17g, expected %.17g", rep.floor, floor_);
    if (n_rows == 0) {
        if (rep.violations != 0 || rep.min_entropy != INFINITY || !isnan(rep.mean_entropy) || rep.max_deficit != 0 ||
            rep.worst_row != -1)
            violation("report of zero rows: violations %lld, min %g, mean %g, deficit %g, worst %lld",
                      (long long)rep.violations, rep.min_entropy, rep.mean_entropy, rep.max_deficit, (long long)rep.worst_row);
        return;
    }
    if (rep.violations < 0 || rep.violations > n_rows || rep.worst_row < 0 || rep.worst_row >= n_rows ||
        !(rep.max_deficit >= 0) || isnan(rep.min_entropy) || isnan(rep.mean_entropy))
        violation("report: violations %lld, worst row %lld, deficit %g, min %g, mean %g", (long long)rep.violations,
                  (long long)rep.worst_row, rep.max_deficit, rep.min_entropy, rep.mean_entropy);
    if (cont && A[0]) return; /* tanh-squashed entropies: no cheap reference */
    const void *x = input(cont ? 1 : 0);
    long double mn = INFINITY, sum = 0, scale = 0;
    int64_t count_lo = 0, count_hi = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        long double h;
        double eps;
        if (cont) {
            h = (long double)n_cols * GAUSS_C;
            long double mag = (long double)n_cols * GAUSS_C;
            for (int64_t i = 0; i < n_cols; i++) { h += get(x, vt, r * n_cols + i); mag += fabs(get(x, vt, r * n_cols + i)); }
            eps = 1e-13 * (double)mag;
            scale += mag;
        } else {
            h = stats_entropy(stats_of(x, vt, r * n_cols, n_cols, 1.0));
            eps = 1e-11 * (1 + (double)h);
            scale += 1 + h;
        }
        if (h < mn) mn = h;
        sum += h;
        if (h < (long double)target - tol_arg - eps) count_lo++;
        if (h < (long double)target - tol_arg + eps) count_hi++;
    }
    if (scale > 1e300) return;
    if (rep.violations < count_lo || rep.violations > count_hi)
        violation("report counts %lld violations, the reference %lld..%lld", (long long)rep.violations,
                  (long long)count_lo, (long long)count_hi);
    double tol = 1e-11 * (double)scale;
    if (fabsl(rep.min_entropy - mn) > tol) violation("report min entropy %.17g, reference %.17Lg", rep.min_entropy, mn);
    if (fabsl(rep.mean_entropy - sum / n_rows) > tol)
        violation("report mean entropy %.17g, reference %.17Lg", rep.mean_entropy, sum / n_rows);
    long double deficit = (long double)target - mn;
    if (deficit < 0) deficit = 0;
    if (fabsl(rep.max_deficit - deficit) > tol + 1e-15 * fabs(target))
        violation("report max deficit %.17g, reference %.17Lg", rep.max_deficit, deficit);
}

/* Rows of LLM logits: masks (-inf) are legitimate, NaN and +inf and fully masked rows are not. */
static void llm_logit_faults(int slot, int vt, int64_t tokens, int64_t vocab) {
    if (!A[slot]) return;
    for (int64_t t = 0; t < tokens; t++) {
        int64_t unmasked = 0;
        for (int64_t i = 0; i < vocab; i++) {
            double v = get(A[slot], vt, t * vocab + i);
            if (isnan(v) || v == INFINITY) faults |= F(ERA_ERR_NON_FINITE);
            if (v != -INFINITY) unmasked++;
        }
        if (!unmasked) faults |= F(ERA_ERR_NON_FINITE);
    }
}

static void fill_ids(int64_t *ids, int64_t n, int64_t lo, int64_t hi /* valid: lo..hi-1 */) {
    uint8_t profile = byte();
    static const int64_t wild[] = {-2, INT64_MIN, INT64_MAX, -1000, 1 << 20};
    int64_t bad_at = n > 0 ? (int64_t)(u32() % (uint64_t)n) : 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t range = hi - lo;
        int64_t v = range > 0 ? lo + (int64_t)(u32() % (uint64_t)range) : lo;
        if (profile < 40) v = hi > lo + 1 ? lo + 1 : lo;
        else if (profile >= 200 && i == bad_at) {
            uint8_t w = byte();
            v = w < 100 ? hi : w < 150 ? lo - 1 : PICK(wild);
        } else if (profile >= 240) v = (int64_t)u64();
        ids[i] = v;
    }
}

static int setup_token_entropy(int vt) {
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    int out_t = vt == TY_F64 ? TY_F64 : TY_F32;
    int64_t es[] = {(int64_t)type_size[vt], 0}, rs[] = {(int64_t)type_size[out_t], 0};
    shape_faults(n_rows, n_cols, 1, es, rs);
    if (too_big(n_rows, n_cols)) return 0;
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    new_array(1, out_t, shape_bad ? 0 : n_rows, 1);
    maybe_null(2);
    if (!shape_bad) {
        if (n_rows > 0 && (!A[0] || !A[1])) faults |= F(ERA_ERR_NULL_POINTER);
        llm_logit_faults(0, vt, n_rows, n_cols);
    }
    describe("%s(tokens=%lld, vocab=%lld)", fn_name[fn], (long long)n_rows, (long long)n_cols);
    return 1;
}

static void checks_token_entropy(int vt) {
    int out_t = vt == TY_F64 ? TY_F64 : TY_F32;
    for (int64_t t = 0; t < n_rows; t++) {
        row_stats s = stats_of(input(0), vt, t * n_cols, n_cols, 1.0);
        long double h = stats_entropy(s);
        double got = get(A[1], out_t, t);
        double tol = (out_t == TY_F64 ? 1e-12 : LLM_STATS_ERR) * (1 + (double)h);
        expect_close(got, h, tol, out_t, "token entropy", t);
        if (got < 0 || got > log((double)s.unmasked) * (1 + 1e-6) + 1e-6)
            violation("token entropy [%lld] = %.17g outside [0, log %lld]", (long long)t, got, (long long)s.unmasked);
    }
}

static void fill_entropies(float *h, int64_t n) {
    uint8_t b = byte();
    for (int64_t i = 0; i < n; i++) {
        uint8_t c = byte();
        if (b < 160) h[i] = (float)(u16() / 8192.0);            /* 0..8 nats */
        else if (b < 200) h[i] = (float)(c % 8) * 0.5f;          /* ties */
        else if (b < 230) gen_element(h, TY_F32, i, c % C_RAW, 1.0);
        else gen_element(h, TY_F32, i, C_RAW, 1.0);
    }
}

static int setup_response_entropy(void) {
    n_rows = gen_size(300);   /* tokens */
    n_resp = gen_size(64);    /* responses */
    gen_llm(&lparams);
    lp = byte() < 8 ? NULL : &lparams;
    int64_t ts[] = {4, 8, 0}, rsz[] = {4, 0};
    shape_faults(n_rows, 1, 1, NULL, ts);
    if (!shape_bad) { shape_faults(n_resp, 1, 1, NULL, rsz); }
    if (too_big(n_rows, 1) || too_big(n_resp, 1)) return 0;
    llm_faults(lp, shape_bad ? &maybe : &faults, &maybe);
    int64_t tokens = shape_bad ? 0 : n_rows, resp = shape_bad ? 0 : n_resp;
    fill_entropies(new_array(0, TY_F32, tokens, 0), tokens);
    fill_ids(new_array(1, TY_I64, tokens, 0), tokens, -1, resp);
    new_array(2, TY_F32, resp, 1);
    maybe_null(3);
    if (!shape_bad) {
        if ((n_rows > 0 && (!A[0] || !A[1])) || (n_resp > 0 && !A[2])) faults |= F(ERA_ERR_NULL_POINTER);
        if (A[0] && A[1]) {
            const float *h = A[0];
            const int64_t *id = A[1];
            for (int64_t t = 0; t < n_rows; t++) {
                if (id[t] < -1 || id[t] >= n_resp) {
                    faults |= F(ERA_ERR_BAD_INDEX);
                    if (!isfinite(h[t])) maybe |= F(ERA_ERR_NON_FINITE);
                } else if (id[t] >= 0 && !isfinite(h[t])) {
                    faults |= F(ERA_ERR_NON_FINITE);
                }
            }
        }
    }
    describe("%s(params=%s{low=%.9g, high=%.9g, k=%.9g, top=%.17g, scale_adv=%d}, tokens=%lld, responses=%lld)",
             fn_name[fn], lp ? "" : "NULL ", lparams.omega_low, lparams.omega_high, lparams.k, lparams.top_fraction,
             lparams.scale_advantages, (long long)n_rows, (long long)n_resp);
    return 1;
}

static int desc_long_double(const void *a, const void *b) {
    long double x = *(const long double *)a, y = *(const long double *)b;
    return (x < y) - (x > y);
}

static void checks_response_entropy(void) {
    const float *h = input(0);
    const int64_t *id = input(1);
    const float *out = A[2];
    long double *bucket = malloc(sizeof(long double) * (size_t)(n_rows + 1));
    for (int64_t b = 0; b < n_resp; b++) {
        int64_t len = 0;
        for (int64_t t = 0; t < n_rows; t++) if (id[t] == b) bucket[len++] = h[t];
        if (len == 0) {
            if (!isnan(out[b])) violation("response %lld has no tokens but entropy %.9g (expected NaN)", (long long)b, out[b]);
            continue;
        }
        qsort(bucket, (size_t)len, sizeof bucket[0], desc_long_double);
        int64_t top = (int64_t)floor(lparams.top_fraction * (double)len);
        if (top < 1) top = 1;
        long double sum = 0, mag = 0;
        for (int64_t i = 0; i < top; i++) { sum += bucket[i]; mag = fmaxl(mag, fabsl(bucket[i])); }
        expect_close(out[b], sum / top, 2.5e-7 * (double)mag + 1.5e-45, TY_F32, "response entropy", b);
    }
    free(bucket);
}

static int setup_scales(void) {
    n_rows = gen_size(300);  /* tokens */
    n_resp = gen_size(64);   /* responses */
    gen_llm(&lparams);
    lp = byte() < 8 ? NULL : &lparams;
    int64_t ts[] = {4, 8, 0}, rsz[] = {4, 0};
    shape_faults(n_rows, 1, 1, NULL, ts);
    if (!shape_bad) shape_faults(n_resp, 1, 1, NULL, rsz);
    if (too_big(n_rows, 1) || too_big(n_resp, 1)) return 0;
    llm_faults(lp, shape_bad ? &maybe : &faults, &maybe);
    int64_t tokens = shape_bad ? 0 : n_rows, resp = shape_bad ? 0 : n_resp;
    fill_entropies(new_array(0, TY_F32, resp, 0), resp);
    fill_ids(new_array(1, TY_I64, tokens, 0), tokens, -1, resp);
    float *adv = new_array(2, TY_F32, tokens, 0);
    uint8_t ap = byte();
    for (int64_t t = 0; t < tokens; t++) {
        if (ap < 150) adv[t] = (float)((int16_t)u16() / 4096.0);
        else if (ap < 180) adv[t] = (float)(byte() % 3) - 1.0f;
        else gen_element(adv, TY_F32, t, byte() % C_RAW, 1.0);
    }
    new_array(3, TY_F32, tokens, 1);
    new_array(4, TY_F32, tokens, 1);
    if (byte() < 64) alias(4, 2);
    maybe_null(5);
    if (!shape_bad) {
        if ((n_resp > 0 && !A[0]) || (n_rows > 0 && (!A[1] || !A[2] || !A[3] || !A[4]))) faults |= F(ERA_ERR_NULL_POINTER);
        if (A[1] && A[2] && (A[0] || n_resp == 0)) {
            const float *rh = A[0];
            const int64_t *id = A[1];
            int params_ok = !(faults & F(ERA_ERR_BAD_PARAMETER)) && lp;
            for (int64_t t = 0; t < n_rows; t++) {
                if (!isfinite(adv[t])) faults |= F(ERA_ERR_NON_FINITE);
                if (id[t] < -1 || id[t] >= n_resp) { faults |= F(ERA_ERR_BAD_INDEX); continue; }
                if (id[t] < 0) continue;
                if (!isfinite(rh[id[t]])) { faults |= F(ERA_ERR_NON_FINITE); continue; }
                if (!params_ok || !isfinite(adv[t]) || !lparams.scale_advantages || !(adv[t] > 0)) continue;
                double s = 1;
                if (rh[id[t]] < (float)lparams.omega_low) s = lparams.k;
                else if (rh[id[t]] > (float)lparams.omega_high) s = 1 / lparams.k;
                double r = fabs((double)adv[t] / s);
                if (near_boundary(r / FLT_MAX, 1, 1e-6)) maybe |= F(ERA_ERR_BAD_PARAMETER);
                else if (r > FLT_MAX) faults |= F(ERA_ERR_BAD_PARAMETER);
            }
        }
    }
    describe("%s(params=%s{low=%.9g, high=%.9g, k=%.9g, top=%.17g, scale_adv=%d}, tokens=%lld, responses=%lld, in_place=%d)",
             fn_name[fn], lp ? "" : "NULL ", lparams.omega_low, lparams.omega_high, lparams.k, lparams.top_fraction,
             lparams.scale_advantages, (long long)n_rows, (long long)n_resp, A[4] == A[2] && A[2]);
    return 1;
}

static void checks_scales(void) {
    const float *rh = input(0), *adv = input(2), *scale = A[3], *adv_out = A[4];
    const int64_t *id = input(1);
    for (int64_t t = 0; t < n_rows; t++) {
        double s = 1;
        float want_s = 1.0f;
        if (id[t] >= 0 && adv[t] > 0) {
            if (rh[id[t]] < (float)lparams.omega_low) { s = lparams.k; want_s = (float)lparams.k; }
            else if (rh[id[t]] > (float)lparams.omega_high) { s = 1 / lparams.k; want_s = (float)(1 / lparams.k); }
        }
        if (scale[t] != want_s)
            violation("token %lld (response %lld, entropy %.9g, advantage %.9g): scale %.9g, expected %.9g", (long long)t,
                      (long long)id[t], id[t] >= 0 ? rh[id[t]] : 0.0f, adv[t], scale[t], want_s);
        if (!lparams.scale_advantages || s == 1) {
            if (memcmp(&adv_out[t], &adv[t], 4) != 0 && !(adv_out[t] == adv[t]))
                violation("token %lld: advantage %.9g changed to %.9g with scale 1 or scaling off", (long long)t, adv[t], adv_out[t]);
        } else {
            double want = (double)adv[t] / s;
            if (!isfinite(adv_out[t]) || fabs(adv_out[t] - want) > 1.2e-7 * fabs(want) + 1.5e-45)
                violation("token %lld: advantage %.9g / scale %.9g = %.9g, expected %.9g", (long long)t, adv[t], s,
                          adv_out[t], want);
        }
    }
}

static void fill_scales(float *s, int64_t n) {
    uint8_t b = byte();
    static const float nice[] = {1, 2, 0.5f, 4, 0.25f, 1.5f};
    static const float extreme[] = {1e38f, FLT_MAX, FLT_MIN, 1e-45f, 1e-38f, 1e30f, 1e-30f, 8.5e37f};
    static const float bad[] = {0.0f, -0.0f, -1.0f, NAN, INFINITY, -INFINITY, -FLT_MIN};
    int64_t bad_at = n > 0 ? (int64_t)(u32() % (uint64_t)n) : 0;
    for (int64_t i = 0; i < n; i++) {
        if (b < 60) s[i] = 1;
        else if (b < 140) s[i] = PICK(nice);
        else if (b < 180) s[i] = (float)exp((int16_t)u16() / 8192.0);
        else if (b < 210) s[i] = PICK(extreme);
        else if (b < 240) s[i] = i == bad_at ? PICK(bad) : 1;
        else gen_element(s, TY_F32, i, byte() % C_RAW, 1.0);
    }
}

/* The upstream log-prob gradient in slot `slot`, one per token: mostly moderate values
 * (multiples of 1/4096 in [-8, 8)), else the raw value profiles. The byte order is part of
 * the input format. */
static void grad_logprob_array(int slot, int64_t tokens) {
    float *g = new_array(slot, TY_F32, tokens, 0);
    uint8_t gp = byte();
    for (int64_t t = 0; t < tokens; t++) {
        if (gp < 150) g[t] = (float)((int16_t)u16() / 4096.0);
        else gen_element(g, TY_F32, t, byte() % C_RAW, 1.0);
    }
}

/* Whether this logprob or LLM-head call goes to the top-k variant, and its top_k: one byte
 * read after the arrays (so that the inputs written before the top-k variants decode to the
 * same arrays), top-k in about 1 call in 5; top_k mostly 1..vocab+1, sometimes 20, 0,
 * negative or huge. top_k < 1 is BAD_PARAMETER, checked before everything else (era.h). */
static void gen_topk(void) {
    static const int64_t specials[] = {0, -1, INT64_MIN, INT64_MAX, 20, 1, 2};
    topk_on = byte() >= 205;
    if (!topk_on) return;
    uint8_t b = byte();
    n_topk = b < 40 ? PICK(specials) : n_cols > 0 ? 1 + (int64_t)(u16() % ((uint64_t)n_cols + 1)) : 1 + b % 4;
}

/* The faults of a top-k call with top_k < 1: that one, whatever else is wrong. */
static int topk_parameter_fault(void) {
    if (!topk_on || n_topk >= 1) return 0;
    faults = F(ERA_ERR_BAD_PARAMETER);
    maybe = 0;
    return 1;
}

/* The float64 reference selection of one row (long double values): chosen[i] for the n_topk
 * largest finite values, the lower index winning a tie; returns logsumexp over them of s*z. */
static long double topk_reference(const void *z, int type, int64_t off, int64_t n, double s, char *chosen) {
    memset(chosen, 0, (size_t)n);
    long double m = -INFINITY, sum = 0;
    for (int64_t r = 0; r < n_topk && r < n; r++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            double v = get(z, type, off + i);
            if (!chosen[i] && v > -INFINITY && (best < 0 || v > get(z, type, off + best))) best = i;
        }
        if (best < 0) break;
        chosen[best] = 1;
        if (r == 0) m = (long double)s * get(z, type, off + best);
    }
    for (int64_t i = 0; i < n; i++)
        if (chosen[i]) sum += expl((long double)s * get(z, type, off + i) - m);
    return m + logl(sum);
}

static int setup_logprob(int vt) {
    int backward = fn == FN_LPB_F32 || fn == FN_LPB_BF16;
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    int64_t es[] = {(int64_t)type_size[vt], 0}, ts[] = {8, 4, 0};
    shape_faults(n_rows, n_cols, 1, es, ts);
    if (too_big(n_rows, n_cols)) return 0;
    int64_t tokens = shape_bad ? 0 : n_rows, n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, tokens, n_cols);
    fill_ids(new_array(1, TY_I64, tokens, 0), tokens, 0, n_cols);
    fill_scales(new_array(2, TY_F32, tokens, 0), tokens);
    if (byte() < 80) A[2] = NULL; /* scale 1 */
    if (!backward) {
        new_array(3, TY_F32, tokens, 1);
        new_array(4, TY_F32, tokens, 1);
        if (byte() < 80) A[4] = NULL; /* no entropies */
        maybe_null(4);
    } else {
        grad_logprob_array(3, tokens);
        new_array(4, vt, n, 1);
        if (byte() < 64) alias(4, 0);
        maybe_null(5);
    }
    gen_topk();
    if (!topk_parameter_fault() && !shape_bad) {
        if (n_rows > 0 && (!A[0] || !A[1] || !A[3] || (backward && !A[4]))) faults |= F(ERA_ERR_NULL_POINTER);
        llm_logit_faults(0, vt, n_rows, n_cols);
        const int64_t *lab = A[1];
        const float *sc = A[2], *g = backward ? A[3] : NULL;
        for (int64_t t = 0; t < n_rows && lab; t++) {
            double s = sc ? sc[t] : 1.0;
            if (!isfinite(s)) faults |= F(ERA_ERR_NON_FINITE);
            else if (!(s > 0)) faults |= F(ERA_ERR_BAD_PARAMETER);
            if (lab[t] < 0 || lab[t] >= n_cols) { faults |= F(ERA_ERR_BAD_INDEX); continue; }
            if (A[0] && get(A[0], vt, t * n_cols + lab[t]) == -INFINITY) faults |= F(ERA_ERR_BAD_INDEX);
            if (backward && g) {
                if (!isfinite(g[t])) faults |= F(ERA_ERR_NON_FINITE);
                else if (isfinite(s) && s > 0) {
                    /* BAD_PARAMETER when g*s overflows the output type: float32, or bfloat16 for
                     * the bf16 variant (rounding to nearest even: from 0x1.ffp127 up) */
                    double gs = fabs((double)g[t] * s), limit = vt == TY_BF16 ? 0x1.ffp127 : FLT_MAX;
                    if (near_boundary(gs / limit, 1, 1e-6)) maybe |= F(ERA_ERR_BAD_PARAMETER);
                    else if (gs > limit) faults |= F(ERA_ERR_BAD_PARAMETER);
                }
            }
            if (!backward && A[0] && isfinite(s) && s > 0) {
                row_stats st = stats_of(A[0], vt, t * n_cols, n_cols, s);
                double zl = get(A[0], vt, t * n_cols + lab[t]);
                if (st.unmasked && isfinite(zl) && isfinite((double)st.m)) {
                    long double lpv = fabsl((long double)s * zl - stats_lse(st));
                    /* top-k: the log-probability is smaller in magnitude (or -1e4) */
                    if (near_boundary((double)(lpv / FLT_MAX), 1, 1e-6) || fabsl(st.m) > 1e20 ||
                        (topk_active() && lpv > FLT_MAX))
                        maybe |= F(ERA_ERR_BAD_PARAMETER);
                    else if (lpv > FLT_MAX) faults |= F(ERA_ERR_BAD_PARAMETER);
                }
            }
        }
    }
    describe("%s%s(tokens=%lld, vocab=%lld, scales=%s, entropy_out=%s, in_place=%d, top_k=%lld)", fn_name[fn],
             topk_on ? " [top-k variant]" : "", (long long)n_rows, (long long)n_cols, A[2] ? "given" : "NULL",
             backward ? "-" : A[4] ? "given" : "NULL", backward && A[4] && A[4] == A[0], (long long)n_topk);
    return 1;
}

static void checks_logprob(int vt) {
    int backward = fn == FN_LPB_F32 || fn == FN_LPB_BF16;
    const void *z = input(0);
    const int64_t *lab = input(1);
    const float *sc = B[2].before && A[2] ? input(2) : NULL;
    char *chosen = topk_active() ? malloc((size_t)n_cols) : NULL;
    for (int64_t t = 0; t < n_rows; t++) {
        double s = sc ? sc[t] : 1.0;
        row_stats st = stats_of(z, vt, t * n_cols, n_cols, s);
        long double lse = stats_lse(st);
        int outside = 0;
        if (chosen) { /* top-k: the logsumexp over the selection; a label outside gives -1e4 */
            lse = topk_reference(z, vt, t * n_cols, n_cols, s, chosen);
            outside = !chosen[lab[t]];
        }
        if (!backward) {
            double lpv = ((const float *)A[3])[t];
            long double want = outside ? -1e4L : (long double)s * get(z, vt, t * n_cols + lab[t]) - lse;
            if (outside && lpv != -1e4f)
                violation("log-probability [%lld] = %.9g, label outside the top %lld: expected -1e4", (long long)t, lpv,
                          (long long)n_topk);
            double tol = LLM_STATS_ERR * (1 + fabsl(want)) + 4e-16 * (double)(fabsl(st.m) + fabsl(lse) + 1);
            if (lpv > 0) violation("log-probability [%lld] = %.9g > 0", (long long)t, lpv);
            expect_close(lpv, want, tol, TY_F32, "log-probability", t);
            if (A[4]) {
                long double h = stats_entropy(st);
                double got = ((const float *)A[4])[t];
                expect_close(got, h, LLM_STATS_ERR * (1 + (double)h) + 4e-16 * (double)(fabsl(st.m) + 1) * 64, TY_F32, "entropy", t);
                if (got < 0 || got > log((double)st.unmasked) * (1 + 1e-6) + 1e-6)
                    violation("entropy [%lld] = %.9g outside [0, log %lld]", (long long)t, got, (long long)st.unmasked);
            }
            continue;
        }
        double g = ((const float *)input(3))[t];
        double gs = g * s;
        for (int64_t i = 0; i < n_cols; i++) {
            double zi = get(z, vt, t * n_cols + i);
            double got = get(A[4], vt, t * n_cols + i);
            if (!isfinite(got))
                violation("gradient [%lld,%lld] = %g (grad_logprob*scale = %g fits the output type)", (long long)t,
                          (long long)i, got, gs);
            if (zi == -INFINITY || (chosen && (outside || !chosen[i]))) {
                if (got != 0)
                    violation("gradient [%lld,%lld] of a masked logit or one outside the top k = %g, expected 0",
                              (long long)t, (long long)i, got);
                continue;
            }
            long double p = expl((long double)s * zi - lse);
            long double want = (long double)gs * ((i == lab[t]) - p);
            double perr = fmin(2.0, 1e-15 * (double)(fabsl((long double)s * zi) + fabsl(lse) + 1));
            /* the vector kernel: the statistics' error, the float32 exponent's (1.5e-7 per nat
             * below the maximum, bounded by lse - s z), and entries below 2^-127 |g s| as 0 */
            double dist = (double)fabsl(lse - (long double)s * zi);
            double tol = fabs(gs) * (perr + (LLM_STATS_ERR + 1.5e-7 * dist) * (double)p + 1.2e-38) +
                         (vt == TY_BF16 ? 1.0 / 256 : 1.2e-7) * fabsl(want) + 1e-37;
            expect_close(got, want, tol, vt == TY_BF16 ? TY_BF16 : TY_F32, "gradient", t * n_cols + i);
        }
    }
    free(chosen);
}

/* ---- fused linear heads ---------------------------------------------------------------
 * era_llm_linear_logprob_forward_f32 / _backward_f32 and era_linear_discrete_ce_f32: the
 * logits are z = x . w^T (+ bias) of float32 arrays, formed by cblas_sgemm in float32.
 * Slots, LLM: 0 hidden[tokens*dim], 1 weight[vocab*dim], 2 labels, 3 logit_scale (NULL:
 * s = 1); forward 4 out_logprob, 5 out_entropy (optional); backward 4 grad_logprob,
 * 5 out_grad_hidden, 6 out_grad_weight (both optional). Classification: 0 features,
 * 1 weight, 2 bias (optional), 3 labels, 4 out_loss, 5..7 the gradients (optional).
 * No slot is ever aliased: the header allows no overlap in this section.
 *
 * The references are in double: a naive product (each product of two floats is exact in
 * double), then the plain formulas. libera's logits are float32 sums of dim products, so a
 * logit is known only within gamma(dim) * sum_j |x_j w_j| (f32_gamma below: any summation
 * order, FMA or not); every tolerance below carries that bound through a Lipschitz constant
 * of what follows (log-softmax: 2 in the max norm; entropy: 2 log vocab; softmax: 2 from the
 * max norm to the 1-norm), so it holds for any logit error within the bound, not only to
 * first order. */

/* The float32 rounding of a value at or above this magnitude is infinite (FLT_MAX plus half
 * an ulp: rounding to nearest even takes the halfway point up). */
#define F32_OVERFLOW 0x1.ffffffp127
/* libera refuses a gradient whose bound exceeds this (era.h: FLT_MAX / 4) */
#define GRADIENT_LIMIT ((double)FLT_MAX / 4)
/* the absolute rounding of a float32 operation whose result is subnormal */
#define F32_TINY 0x1p-149

/* A bound on the relative error of a float32 sum of n products against the sum of their
 * magnitudes: twice the textbook n * 2^-24. */
static double f32_gamma(int64_t n) { return 0x1p-23 * (double)(n + 2); }

static const int64_t dim_specials[] = {0, -1, INT32_MAX, (int64_t)INT32_MAX + 1, (int64_t)1 << 32, INT64_MAX,
                                       INT64_MIN, 3037000500LL, (int64_t)1 << 62, -((int64_t)1 << 40), 1, 32};

/* dim: mostly 1..32; about 1 in 13 a special one: 0 or negative, INT32_MAX (legal, too large
 * to allocate here: skipped), or above INT32_MAX (BAD_SHAPE, cheap: a bad shape gets empty
 * buffers, so a read of weight before the check shows under AddressSanitizer). */
static int64_t gen_dim(void) {
    uint8_t b = byte();
    if (b >= 236) return dim_specials[(b - 236) % 12];
    if (b < 64) return 1 + b % 4;
    return 1 + u16() % 32;
}

/* Vocabulary entries (llm) or classes: mostly 1..300 (2..300); 1 in 6 larger: for the LLM
 * across the 2048-entry chunks of its tiles (up to 5000: 3 chunks in 3 groups; 1 in 16 of
 * those 32769..35768, 17 or 18 chunks dealt to 16 groups, with at most 2 tokens and dim <= 2),
 * for the classification head 301..1000; 1 in 16 a special size (negative, 0, overflowing). */
static int64_t gen_outputs(int llm) {
    uint8_t b = byte();
    if (b >= 240) return special_sizes[(b - 240) % 12];
    if (b >= 200) {
        if (!llm) return 301 + u16() % 700;
        static const int64_t chunked[] = {2047, 2048, 2049, 4095, 4096, 4097, 3000, 5000};
        uint8_t c = byte();
        if (c >= 240) return 32769 + u16() % 3000; /* 17+ chunks: groups of two (setup keeps it small) */
        return c < 128 ? chunked[c % 8] : 2049 + u16() % 2952;
    }
    if (b < 64) return (llm ? 1 : 2) + b % 4;
    return llm ? 1 + u16() % 300 : 2 + u16() % 299;
}

/* Tokens or rows: gen_size(64), and 1 in 32 of those 120..135, across the 128-token block. */
static int64_t gen_tokens(void) {
    int64_t t = gen_size(64);
    if (t >= 0 && t <= 64 && byte() >= 248) t = 120 + byte() % 16;
    return t;
}

/* era.h: BAD_SHAPE for rows below min_rows, dim < 1, outputs < 1, dim above INT32_MAX, an
 * element or byte count that overflows int64 (rows x dim floats, outputs x dim floats, rows
 * int64 labels); for the classification head also rows or classes above INT32_MAX (and, not
 * in the header's list but in libera's checks, a rows x classes x 8-byte scratch that
 * overflows: unreachable here without allocating gigabytes). */
static int linear_shape_bad(int64_t rows, int64_t dim, int64_t outputs, int64_t min_rows, int classification) {
    if (rows < min_rows || dim < 1 || outputs < 1) return 1;
    if (overflows(rows, dim, 4) || overflows(outputs, dim, 4) || overflows(rows, 1, 8)) return 1;
    if (dim > INT32_MAX) return 1;
    if (classification && (rows > INT32_MAX || outputs > INT32_MAX || overflows(rows, outputs, 8))) return 1;
    return 0;
}

/* z[o] = x . w[o] (+ bias[o]) in double and mag[o] = sum_j |x_j w[o, j]| (+ |bias[o]|), for
 * one row x of dim values and `outputs` rows of w. */
static void linear_row(const float *x, const float *w, int64_t dim, int64_t outputs, const float *bias, double *z,
                       double *mag) {
    for (int64_t o = 0; o < outputs; o++) {
        double s = bias ? (double)bias[o] : 0.0, m = bias ? fabs((double)bias[o]) : 0.0;
        const float *wo = w + o * dim;
        for (int64_t j = 0; j < dim; j++) {
            double p = (double)x[j] * (double)wo[j];
            s += p;
            m += fabs(p);
        }
        z[o] = s;
        mag[o] = m;
    }
}

/* The products the fault model may redo in double per call for its exact predictions (a
 * logit or log-probability near the float32 overflow); past it, the statuses those would
 * decide are only allowed ("maybe"). */
#define PREDICTION_WORK 150000

/* The error bound of one float32 logit (dim products, maybe a bias). */
static double logit_error(double mag, int64_t dim) { return f32_gamma(dim + 1) * mag + (double)(dim + 3) * F32_TINY; }

/* Whether a float32 logit overflows: 0 never (no partial sum can reach the overflow point:
 * each is within (1 + gamma) of the magnitude sum), 2 surely (the exact value is beyond it
 * by more than the rounding), 1 either way. era.h: "a logit that overflows float32 in the
 * product is ERA_ERR_NON_FINITE"; a logit whose exact value fits but whose float32 sum
 * overflows on the way (1e30 * 1e30 - 1e30 * 1e30) is one of those "either way": libera only
 * sees the float32 result. */
static int logit_overflow(double z, double mag, int64_t dim) {
    double err = logit_error(mag, dim);
    if (mag + err < F32_OVERFLOW * (1 - 1e-12)) return 0;
    if (fabs(z) - err > F32_OVERFLOW * (1 + 1e-12)) return 2;
    return 1;
}

/* Largest |value| of each row of a rows x cols float array, into out[rows]. */
static void row_max_abs(const float *v, int64_t rows, int64_t cols, double *out) {
    for (int64_t r = 0; r < rows; r++) {
        double m = 0;
        for (int64_t j = 0; j < cols; j++) m = fmax(m, fabs((double)v[r * cols + j]));
        out[r] = m;
    }
}

/* Softmax statistics of s*z over one row, in long double: max, sum e^(v - max),
 * sum (v - max) e^(v - max). */
typedef struct { long double m, S, T; } lstats;
static lstats llm_stats(const double *z, int64_t n, double s) {
    lstats r = {-INFINITY, 0, 0};
    for (int64_t i = 0; i < n; i++) if ((long double)s * z[i] > r.m) r.m = (long double)s * z[i];
    for (int64_t i = 0; i < n; i++) {
        long double v = (long double)s * z[i] - r.m, e = expl(v);
        r.S += e;
        if (e > 0) r.T += v * e;
    }
    return r;
}

/* ---- the LLM heads -------------------------------------------------------------------- */

/* The fault model of both LLM heads (shape already good). Check order in libera: pointers,
 * the weight scan, then (tokens > 0) labels and scales, the hidden scan, grad_logprob and the
 * gradient bounds (backward), the logits (overflow), the log-probabilities (forward); the
 * model records every fault the header names whatever the order. */
static void linear_llm_faults(int backward) {
    int64_t T = n_rows, d = n_dim, V = n_cols;
    const float *h = A[0], *w = A[1], *sc = A[3], *g = backward ? A[4] : NULL;
    const int64_t *lab = A[2];
    if (!w || (T > 0 && (!h || !lab || !A[4]))) faults |= F(ERA_ERR_NULL_POINTER);
    int w_ok = w && all_finite(1, TY_F32, V * d); /* weight is scanned even without tokens */
    if (w && !w_ok) faults |= F(ERA_ERR_NON_FINITE);
    if (T == 0) return;
    int h_ok = h && all_finite(0, TY_F32, T * d);
    if (h && !h_ok) faults |= F(ERA_ERR_NON_FINITE);
    int scales_finite = 1;
    for (int64_t t = 0; t < T; t++) {
        if (lab && (lab[t] < 0 || lab[t] >= V)) faults |= F(ERA_ERR_BAD_INDEX);
        if (sc && !isfinite(sc[t])) { faults |= F(ERA_ERR_NON_FINITE); scales_finite = 0; }
        else if (sc && !(sc[t] > 0)) faults |= F(ERA_ERR_BAD_PARAMETER);
    }
    double *mh = malloc(sizeof(double) * (size_t)T);
    if (h_ok) row_max_abs(h, T, d, mh);
    double mw = w_ok ? max_abs(w, TY_F32, V * d) : 0;
    if (backward && g) {
        /* NON_FINITE for a non-finite g_t; BAD_PARAMETER when g_t s_t overflows float32 (the
         * product of two floats is exact in double: the prediction is exact). */
        int g_ok = 1;
        for (int64_t t = 0; t < T; t++) {
            double s = sc ? sc[t] : 1.0;
            if (!isfinite(g[t])) { faults |= F(ERA_ERR_NON_FINITE); g_ok = 0; continue; }
            if (isfinite(s) && fabs((double)g[t] * s) >= F32_OVERFLOW) { faults |= F(ERA_ERR_BAD_PARAMETER); g_ok = 0; }
        }
        /* the gradient bounds, exactly as era.h states them (in double, in token order):
         * 2 max_t |g_t s_t| max|weight| for out_grad_hidden, sum_t |g_t s_t| max_j |hidden[t, j]|
         * for out_grad_weight, refused above FLT_MAX / 4; a bound within 1e-12 of the limit
         * may go either way (the rounding of the double sum). libera checks them after the
         * labels, scales and g; the model does wherever they are defined. */
        if (g_ok && scales_finite && h_ok && w_ok) {
            double largest = 0, wbound = 0;
            for (int64_t t = 0; t < T; t++) {
                double gs = fabs((double)g[t] * (sc ? (double)sc[t] : 1.0));
                largest = fmax(largest, gs);
                wbound += gs * mh[t];
            }
            double hbound = 2 * largest * mw;
            if (A[5]) {
                if (near_boundary(hbound / GRADIENT_LIMIT, 1, 1e-12)) maybe |= F(ERA_ERR_BAD_PARAMETER);
                else if (hbound > GRADIENT_LIMIT) faults |= F(ERA_ERR_BAD_PARAMETER);
            }
            if (A[6]) {
                if (near_boundary(wbound / GRADIENT_LIMIT, 1, 1e-12)) maybe |= F(ERA_ERR_BAD_PARAMETER);
                else if (wbound > GRADIENT_LIMIT) faults |= F(ERA_ERR_BAD_PARAMETER);
            }
        }
    }
    /* overflowing logits (NON_FINITE) and, forward, overflowing log-probabilities
     * (BAD_PARAMETER): exact logits only for tokens whose magnitude bound comes near */
    if (h_ok && w_ok) {
        double *z = malloc(sizeof(double) * (size_t)V), *mag = malloc(sizeof(double) * (size_t)V);
        int64_t budget = PREDICTION_WORK; /* products for exact predictions; beyond, "maybe" */
        for (int64_t t = 0; t < T; t++) {
            double s = sc ? sc[t] : 1.0;
            int s_ok = isfinite(s) && s > 0 && lab && lab[t] >= 0 && lab[t] < V;
            double cheap = (double)d * mh[t] * mw, cheap_err = logit_error(cheap, d);
            int logits_near = cheap + cheap_err >= F32_OVERFLOW * (1 - 1e-12);
            int lp_near = !backward && s_ok && s * 2 * (cheap + cheap_err) + 20 >= F32_OVERFLOW * (1 - 1e-9);
            if (!logits_near && !lp_near) continue;
            if (budget < V * d) {
                if (logits_near) maybe |= F(ERA_ERR_NON_FINITE);
                if (lp_near) maybe |= F(ERA_ERR_BAD_PARAMETER);
                continue;
            }
            budget -= V * d;
            linear_row(h + t * d, w, d, V, NULL, z, mag);
            double zerr = 0;
            for (int64_t v = 0; v < V; v++) {
                int o = logit_overflow(z[v], mag[v], d);
                if (o == 2) faults |= F(ERA_ERR_NON_FINITE);
                else if (o == 1) maybe |= F(ERA_ERR_NON_FINITE);
                zerr = fmax(zerr, logit_error(mag[v], d));
            }
            if (!lp_near) continue;
            /* logp' = (s z_a - max) - log S; its float32 rounding is infinite at or above
             * F32_OVERFLOW. The logits' errors move it by at most 2 s zerr. */
            lstats st = llm_stats(z, V, s);
            long double lp = fabsl((long double)s * z[lab[t]] - st.m - logl(st.S));
            long double err = 2.0L * s * zerr + 1e-9L * lp;
            /* top-k: the log-probability is smaller in magnitude (or -1e4) */
            if (lp - err >= F32_OVERFLOW && !topk_active()) faults |= F(ERA_ERR_BAD_PARAMETER);
            else if (lp + err >= F32_OVERFLOW) maybe |= F(ERA_ERR_BAD_PARAMETER);
        }
        free(z);
        free(mag);
    }
    free(mh);
}

static int setup_linear_llm(void) {
    int backward = fn == FN_LINB;
    n_rows = gen_tokens();
    n_dim = gen_dim();
    n_cols = gen_outputs(1);
    /* a few milliseconds per call: at most 2M multiply-adds per product; the vocabularies
     * of more than 16 chunks only with 1..2 tokens and dim 1..2 (the harness fills and checks
     * every weight) */
    if (n_cols > 6000 && n_cols <= 36000 && n_dim > 0 && n_dim <= 64 && n_rows >= 0 && n_rows <= 200) {
        n_dim = 1 + (n_dim - 1) % 2;
        if (n_rows > 2) n_rows = 1 + n_rows % 2;
    } else if (n_cols > 2048 && n_cols <= 6000 && n_dim > 16 && n_dim <= 64) {
        n_dim = 1 + (n_dim - 1) % 16; /* across chunks: dim up to 16 */
    }
    if (n_rows > 0 && n_rows <= 200 && n_dim > 0 && n_dim <= 64 && n_cols > 0 && n_cols <= 36000 &&
        n_rows * n_dim * n_cols > 2000000)
        n_rows = 2000000 / (n_dim * n_cols) > 0 ? 2000000 / (n_dim * n_cols) : 1;
    shape_bad = linear_shape_bad(n_rows, n_dim, n_cols, 0, 0);
    if (shape_bad) faults |= F(ERA_ERR_BAD_SHAPE), maybe |= F(ERA_ERR_NULL_POINTER);
    else if (n_rows > 200 || n_dim > 64 || n_cols > 36000) return 0; /* legal, too large to allocate here */
    int64_t tokens = shape_bad ? 0 : n_rows, nh = shape_bad ? 0 : n_rows * n_dim, nw = shape_bad ? 0 : n_cols * n_dim;
    fill_values(new_array(0, TY_F32, nh, 0), TY_F32, tokens, n_dim);
    fill_values(new_array(1, TY_F32, nw, 0), TY_F32, shape_bad ? 0 : n_cols, n_dim);
    fill_ids(new_array(2, TY_I64, tokens, 0), tokens, 0, n_cols);
    fill_scales(new_array(3, TY_F32, tokens, 0), tokens);
    if (byte() < 80) A[3] = NULL; /* s = 1 */
    if (!backward) {
        new_array(4, TY_F32, tokens, 1);
        new_array(5, TY_F32, tokens, 1);
        if (byte() < 80) A[5] = NULL; /* no entropies */
    } else {
        grad_logprob_array(4, tokens);
        new_array(5, TY_F32, nh, 1);
        new_array(6, TY_F32, nw, 1);
        uint8_t o = byte();
        if (o < 48) A[5] = NULL;       /* only the weight's gradient */
        else if (o < 96) A[6] = NULL;  /* only the hidden states' */
        else if (o < 112) A[5] = A[6] = NULL;
    }
    maybe_null(5);
    gen_topk();
    if (!topk_parameter_fault() && !shape_bad) linear_llm_faults(backward);
    if (!backward)
        describe("%s%s(tokens=%lld, dim=%lld, vocab=%lld, scales=%s, entropy_out=%s, top_k=%lld)", fn_name[fn],
                 topk_on ? " [top-k variant]" : "", (long long)n_rows, (long long)n_dim, (long long)n_cols,
                 A[3] ? "given" : "NULL", A[5] ? "given" : "NULL", (long long)n_topk);
    else
        describe("%s%s(tokens=%lld, dim=%lld, vocab=%lld, scales=%s, grad_hidden=%s, grad_weight=%s, top_k=%lld)",
                 fn_name[fn], topk_on ? " [top-k variant]" : "", (long long)n_rows, (long long)n_dim,
                 (long long)n_cols, A[3] ? "given" : "NULL", A[5] ? "given" : "NULL", A[6] ? "given" : "NULL",
                 (long long)n_topk);
    return 1;
}

/* The largest product (tokens x vocab x dim, rows x classes x dim) the harness redoes in full
 * for a reference: a few milliseconds of the harness's own time. */
#define REFERENCE_WORK 60000

/* Tokens to compare with the reference: all of them when the reference is cheap (a small
 * product), else a sample of 1 to 3 (as many as fit in REFERENCE_WORK, at least one). */
static int64_t reference_tokens(int64_t tokens, int64_t work, int64_t *pick) {
    if (work <= REFERENCE_WORK) {
        for (int64_t t = 0; t < tokens; t++) pick[t] = t;
        return tokens;
    }
    int64_t per_token = work / tokens, count = REFERENCE_WORK / (per_token > 0 ? per_token : 1);
    if (count < 1) count = 1;
    if (count > 3) count = 3;
    for (int64_t k = 0; k < count; k++) pick[k] = (int64_t)(u32() % (uint64_t)tokens);
    return count;
}

/* The reference logits of one token (z[v] = h_row . weight[v], |terms| in mag) and the
 * largest float32 rounding error libera's product can have on any of them. */
static double reference_logits(const float *h_row, const float *w, int64_t d, int64_t V, double *z, double *mag) {
    linear_row(h_row, w, d, V, NULL, z, mag);
    double zerr = 0;
    for (int64_t v = 0; v < V; v++) zerr = fmax(zerr, logit_error(mag[v], d));
    return zerr;
}

static void checks_linear_llm(void) {
    int backward = fn == FN_LINB;
    int64_t T = n_rows, d = n_dim, V = n_cols;
    const float *h = input(0), *w = input(1), *sc = A[3] ? input(3) : NULL;
    const int64_t *lab = input(2);
    if (T == 0) {
        if (backward && A[6]) /* era.h: with tokens == 0, out_grad_weight is set to zeros */
            for (int64_t i = 0; i < V * d; i++)
                if (((const float *)A[6])[i] != 0)
                    violation("grad_weight[%lld] = %g with no tokens (expected 0)", (long long)i, ((const float *)A[6])[i]);
        return;
    }
    double *z = malloc(sizeof(double) * (size_t)V), *mag = malloc(sizeof(double) * (size_t)V);
    int64_t *pick = malloc(sizeof(int64_t) * (size_t)(T > 3 ? T : 3));
    if (!backward) {
        const float *lp = A[4], *ent = A[5];
        for (int64_t t = 0; t < T; t++) {
            if (!isfinite(lp[t]) || lp[t] > 0) violation("log-probability [%lld] = %.9g (must be finite and <= 0)", (long long)t, lp[t]);
            if (ent && (!isfinite(ent[t]) || ent[t] < 0 || ent[t] > log((double)V) * (1 + 1e-6) + 1e-6))
                violation("entropy [%lld] = %.9g outside [0, log %lld]", (long long)t, ent[t], (long long)V);
        }
        int64_t count = reference_tokens(T, T * V * d, pick);
        for (int64_t k = 0; k < count; k++) {
            int64_t t = pick[k];
            double s = sc ? sc[t] : 1.0;
            double zerr = reference_logits(h + t * d, w, d, V, z, mag);
            lstats st = llm_stats(z, V, s);
            long double want = (long double)s * z[lab[t]] - st.m - logl(st.S);
            /* logsumexp is 1-Lipschitz in the max norm: |error| <= 2 s zerr, then libera's
             * statistics (LLM_STATS_ERR) and the rounding to float */
            double tol = 2.0001 * s * zerr + LLM_STATS_ERR * (1 + fabsl(want)) + 1e-15 * (double)(fabsl(st.m) + 1);
            if (topk_active()) {
                /* the selection of float32 logits within rounding of a tie is not predicted:
                 * -1e4, or a log-probability between the full one and 0 */
                if (lp[t] != -1e4f && !(lp[t] >= want - tol))
                    violation("top-k log-probability [%lld] = %.9g below the full one %.9Lg", (long long)t, lp[t], want);
            } else {
                expect_close(lp[t], want, tol, TY_F32, "log-probability (reference)", t);
            }
            if (ent) {
                long double hw = logl(st.S) - st.T / st.S;
                /* the entropy of softmax(x) is (2 log V)-Lipschitz in the max norm of x */
                double tolh = 2.0001 * log((double)V) * s * zerr + LLM_STATS_ERR * (1 + (double)hw) +
                              4e-16 * (double)(fabsl(st.m) + 1) * 64;
                expect_close(ent[t], hw, tolh, TY_F32, "entropy (reference)", t);
            }
        }
        /* the log-probabilities do not depend on whether entropies are asked for */
        if (ent && byte() < 64) {
            float *again = malloc(sizeof(float) * (size_t)T);
            era_status st = topk_on
                ? era_llm_linear_topk_logprob_forward_f32(T, d, V, A[0], A[1], A[2], A[3], n_topk, again, NULL)
                : era_llm_linear_logprob_forward_f32(T, d, V, A[0], A[1], A[2], A[3], again, NULL);
            if (st != ERA_OK) violation("the same call without out_entropy: status '%s'", status_name(st));
            if (memcmp(again, lp, sizeof(float) * (size_t)T) != 0)
                violation("log-probabilities differ with and without out_entropy");
            free(again);
        }
        free(z); free(mag); free(pick);
        return;
    }
    const float *g = input(4), *gh = A[5], *gw = A[6];
    double *gs = malloc(sizeof(double) * (size_t)T), *wcol = calloc((size_t)d, sizeof(double));
    for (int64_t t = 0; t < T; t++) gs[t] = (double)g[t] * (sc ? (double)sc[t] : 1.0);
    for (int64_t v = 0; v < V; v++)
        for (int64_t j = 0; j < d; j++) wcol[j] = fmax(wcol[j], fabs((double)w[v * d + j]));
    /* |dz[t, :]|_1 <= 2 |g_t s_t| and |dz[t, i]| <= |g_t s_t|: the documented bounds */
    if (gh)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < d; j++) {
                /* dz is rounded to float: absolutely (2^-150) where subnormal, times |weight| */
                double v = gh[t * d + j],
                       bound = (2 * fabs(gs[t]) + (double)V * F32_TINY) * wcol[j] * (1 + f32_gamma(V + 5)) +
                               (double)(V + 4) * F32_TINY;
                if (!isfinite(v) || fabs(v) > bound)
                    violation("grad_hidden[%lld,%lld] = %.9g beyond 2 |g s| max|weight[:, j]| = %.9g", (long long)t,
                              (long long)j, v, bound);
            }
    double *hcol = calloc((size_t)d, sizeof(double)); /* sum_t |g_t s_t| |hidden[t, j]| */
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < d; j++) hcol[j] += (fabs(gs[t]) + F32_TINY) * fabs((double)h[t * d + j]);
    if (gw)
        for (int64_t v = 0; v < V; v++)
            for (int64_t j = 0; j < d; j++) {
                double bound = hcol[j] * (1 + f32_gamma(T + 5)) + (double)(T + 4) * F32_TINY;
                double x = gw[v * d + j];
                if (!isfinite(x) || fabs(x) > bound)
                    violation("grad_weight[%lld,%lld] = %.9g beyond sum_t |g s| |hidden[t, j]| = %.9g", (long long)v,
                              (long long)j, x, bound);
            }
    /* the reference: dz = g s (onehot - p), dL/dH = dz W, dL/dW = dz^T H, with the error
     * bounds carried alongside (|p - p'|_1 <= 2 s zerr, then the float32 sums) */
    /* top-k: the bounds above hold (the top-k softmax sums to 1 too); the dense reference
     * below does not apply */
    int full = T * V * d <= REFERENCE_WORK && !topk_active();
    int64_t count = topk_active() ? 0 : full ? T : reference_tokens(T, T * V * d, pick);
    if (full) for (int64_t t = 0; t < T; t++) pick[t] = t;
    double *rw = NULL, *rw_tol = NULL, *rw_mag = NULL;
    if (full && gw) {
        rw = calloc((size_t)(V * d), sizeof(double));
        rw_tol = calloc((size_t)(V * d), sizeof(double));
        rw_mag = calloc((size_t)(V * d), sizeof(double));
    }
    double *rh = malloc(sizeof(double) * (size_t)d), *rh_mag = malloc(sizeof(double) * (size_t)d);
    double *wsum = calloc((size_t)d, sizeof(double)); /* sum_v |weight[v, j]| */
    for (int64_t v = 0; v < V; v++)
        for (int64_t j = 0; j < d; j++) wsum[j] += fabs((double)w[v * d + j]);
    for (int64_t k = 0; k < count; k++) {
        int64_t t = pick[k];
        double s = sc ? sc[t] : 1.0;
        double zerr = reference_logits(h + t * d, w, d, V, z, mag);
        double l1 = fmin(2.0, 2.0001 * s * zerr) + 1e-12; /* |p_libera - p|_1 */
        lstats st = llm_stats(z, V, s);
        for (int64_t j = 0; j < d; j++) rh[j] = rh_mag[j] = 0;
        for (int64_t v = 0; v < V; v++) {
            long double p = expl((long double)s * z[v] - st.m) / st.S;
            double dz = (double)((long double)gs[t] * ((v == lab[t]) - p));
            for (int64_t j = 0; j < d; j++) {
                double wv = w[v * d + j], hv = h[t * d + j];
                rh[j] += dz * wv;
                rh_mag[j] += (fabs(dz) + F32_TINY) * fabs(wv); /* dz's rounding: absolute where subnormal */
                if (rw) {
                    rw[v * d + j] += dz * hv;
                    rw_mag[v * d + j] += (fabs(dz) + fabs(gs[t]) * fmin(1.0, l1)) * fabs(hv);
                    rw_tol[v * d + j] += (fabs(gs[t]) * fmin(1.0, l1) + F32_TINY) * fabs(hv);
                }
            }
        }
        if (gh)
            for (int64_t j = 0; j < d; j++) {
                double lib_err = fabs(gs[t]) * l1 * wcol[j];
                double tol = lib_err + f32_gamma(V + 5) * (rh_mag[j] + lib_err) + F32_TINY * wsum[j] +
                             (double)(V + 4) * F32_TINY;
                expect_close(gh[t * d + j], rh[j], tol, TY_F32, "grad_hidden (reference)", t * d + j);
            }
    }
    if (rw)
        for (int64_t i = 0; i < V * d; i++) {
            double tol = rw_tol[i] + f32_gamma(T + 5) * rw_mag[i] + (double)(T + 4) * F32_TINY;
            expect_close(gw[i], rw[i], tol, TY_F32, "grad_weight (reference)", i);
        }
    free(rw); free(rw_tol); free(rw_mag); free(rh); free(rh_mag); free(wsum); free(hcol); free(gs); free(wcol);
    free(z); free(mag); free(pick);
}

/* ---- the classification head ---------------------------------------------------------- */

/* t = log h^-1(y), t <= -1 with t + log(-t) = log y, 0 < y < 1/e: Newton's method on a
 * bracket in long double (bisection where a step would leave it). */
static long double ce_log_hinv(long double y) {
    long double L = logl(y), lo = -2000, hi = -1;
    long double t = L < -2 ? L - logl(-L) : -1 - sqrtl(2 * (-1 - L));
    if (!(t > lo && t < hi)) t = -1.5L;
    for (int i = 0; i < 200; i++) {
        long double f = t + logl(-t) - L;
        if (f > 0) hi = t; else lo = t;
        long double next = t - f / (1 + 1 / t);
        if (!(next > lo && next < hi)) next = 0.5L * (lo + hi);
        if (fabsl(next - t) <= 1e-19L * fabsl(t)) return next;
        t = next;
    }
    return t;
}

/* y dt/dy, the slope of t in log y, and its largest value over y <= up (era.h math 2): for
 * the exact inverse t/(1+t), at most log(tau)/(log(tau) - 1); for REFERENCE's closed form
 * 1/sqrt(2u) + 0.75, u = -1 - log y. */
static double ce_slope_bound(const era_discrete_params *p) {
    double lt = log(p->tau);
    if (p->mode == ERA_DISCRETE_REFERENCE) return 1 / sqrt(2 * (lt - 1 - log(lt))) + 0.75;
    return lt / (lt - 1);
}

/* The classification head in double for rows x classes: logits z (and their magnitudes), ERA
 * logits t, the loss, the gradient G of the loss with respect to the logits, and bounds on
 * libera's deviation from it. */
typedef struct {
    double *z, *mag, *t, *G, *dG; /* rows x classes */
    double *zerr;                 /* per row: the largest logit error */
    double loss, loss_tol;
    int grad_ok;                  /* every row away from a kink and well conditioned: dG holds */
} ce_ref_t;

static void ce_ref_free(ce_ref_t *R) { free(R->z); free(R->mag); free(R->t); free(R->G); free(R->dG); free(R->zerr); }

static int ce_reference(ce_ref_t *R, const float *x, const float *w, const float *bias, const int64_t *lab) {
    int64_t N = n_rows, d = n_dim, K = n_cols;
    memset(R, 0, sizeof *R);
    double c;
    if (era_discrete_constant(&dparams, K, &c) != ERA_OK) return 0;
    double up = log(dparams.tau) / dparams.tau, dd = (double)K;
    double a = fmax(0, (dd * up - c) / (dd - 1)), b = fmax(0, (c - up) / (dd - 1));
    double slope = ce_slope_bound(&dparams);
    int mode = dparams.mode;
    size_t n = (size_t)(N * K);
    R->z = malloc(sizeof(double) * n); R->mag = malloc(sizeof(double) * n); R->t = malloc(sizeof(double) * n);
    R->G = malloc(sizeof(double) * n); R->dG = malloc(sizeof(double) * n); R->zerr = malloc(sizeof(double) * (size_t)N);
    long double *p = malloc(sizeof(long double) * (size_t)K), *y = malloc(sizeof(long double) * (size_t)K);
    long double *rho = malloc(sizeof(long double) * (size_t)K);
    long double loss = 0, loss_tol = 0;
    R->grad_ok = 1;
    for (int64_t r = 0; r < N; r++) {
        double *z = R->z + r * K, *t = R->t + r * K, *G = R->G + r * K, *dG = R->dG + r * K;
        linear_row(x + r * d, w, d, K, bias, z, R->mag + r * K);
        double zerr = 0;
        for (int64_t k = 0; k < K; k++) zerr = fmax(zerr, logit_error(R->mag[r * K + k], d));
        R->zerr[r] = zerr;
        long double m = -INFINITY, S = 0;
        for (int64_t k = 0; k < K; k++) if (z[k] > m) m = z[k];
        for (int64_t k = 0; k < K; k++) S += expl(z[k] - m);
        double tmax = 0;
        int kink = 0;
        for (int64_t k = 0; k < K; k++) {
            p[k] = expl(z[k] - m) / S;
            long double yk = (long double)a * p[k] + b;
            if (yk < 0) yk = 0;
            if (yk > up) yk = up;
            y[k] = yk;
            if (fabsl(yk / DBL_MIN - 1) < 1e-3L) kink = 1; /* the clamp at DBL_MIN: the derivative jumps */
            long double yc = yk < DBL_MIN ? DBL_MIN : yk;
            long double tk;
            if (mode == ERA_DISCRETE_REFERENCE) {
                long double u = -1 - logl(yc);
                tk = -1 - sqrtl(2 * u) - 0.75L * u;
            } else {
                tk = ce_log_hinv(yc);
            }
            t[k] = (double)tk;
            tmax = fmax(tmax, fabs(t[k]));
        }
        /* cross-entropy at t and its gradient g = (softmax(t) - onehot) / rows */
        long double mt = -INFINITY, St = 0;
        for (int64_t k = 0; k < K; k++) if (t[k] > mt) mt = t[k];
        for (int64_t k = 0; k < K; k++) St += expl(t[k] - mt);
        loss += mt + logl(St) - t[lab[r]];
        /* t is (slope)-Lipschitz in log y, log y 2-Lipschitz in the max norm of z: the ERA
         * logits move by dt; libera rounds them to float (and its inverse is good to 1e-9
         * relative at the clamp, docs/math.md); the cross-entropy is 2-Lipschitz in them */
        double dt = 2.0001 * slope * zerr + (0x1p-24 * 1.01 + 1e-9) * tmax;
        loss_tol += 2 * dt;
        /* the backward: rho_i = g_i (a p_i / y_i) (y dt/dy)_i (0 where clamped),
         * G_j = rho_j - p_j sum_i rho_i; E_j = |rho_j| + p_j sum_i |rho_i| bounds its terms */
        long double sr = 0, sa = 0;
        for (int64_t k = 0; k < K; k++) {
            long double q = expl(t[k] - mt) / St, gk = (q - (k == lab[r])) / (long double)N, slope_k;
            if (mode == ERA_DISCRETE_REFERENCE) slope_k = 1 / sqrtl(2 * (-1 - logl(y[k]))) + 0.75L;
            else slope_k = (long double)t[k] / (1 + (long double)t[k]);
            rho[k] = y[k] > DBL_MIN ? gk * ((long double)a * p[k] / y[k]) * slope_k : 0;
            sr += rho[k];
            sa += fabsl(rho[k]);
        }
        /* |g_libera - g|_1 <= (2 |dt|_max + rounding of g to float) / rows; each |dG_j| <=
         * slope (|dg_j| + p_j |dg|_1) <= 2 slope |dg|_1. The Jacobian taken at libera's float
         * logits instead: relative (2 slope^2 + 4) zerr to first order (slope^3 for margin). */
        double dg1 = (2 * dt + 0x1p-23) / (double)N;
        double absG = 2 * slope * dg1, rel = (4 * slope * slope * slope + 4) * zerr + 0x1p-22;
        if (kink || rel > 1e-3) R->grad_ok = 0;
        for (int64_t k = 0; k < K; k++) {
            G[k] = (double)(rho[k] - p[k] * sr);
            /* + the rounding of g and G to float, absolute (2^-150) where subnormal */
            dG[k] = 2 * rel * (double)(fabsl(rho[k]) + p[k] * sa) + absG + 2 * slope * (double)K * F32_TINY + F32_TINY;
        }
    }
    R->loss = (double)(loss / (long double)N);
    R->loss_tol = (double)(loss_tol / (long double)N);
    free(p); free(y); free(rho);
    return 1;
}

/* era.h: BAD_PARAMETER when a requested gradient could overflow: max_r sum_c |G[r, c]| max|weight|
 * (features), max_c sum_r |G[r, c]| max_j |features[r, j]| (weight), above FLT_MAX / 4, with
 * G libera's float32 logit gradient, which the harness can only bound: sum_c |G[r, c]| <=
 * 4 slope / rows (|rho|_1 <= slope |g|_1, |g|_1 <= 2 / rows, G = rho - p sum(rho)). Below
 * the limit with that bound: no fault. Above, with a well-conditioned reference: G within dG
 * of the reference decides, or leaves it open near the limit; otherwise "maybe". */
static void ce_gradient_faults(const float *x, const float *w, const float *bias, const int64_t *lab) {
    int64_t N = n_rows, d = n_dim, K = n_cols;
    double slope = ce_slope_bound(&dparams), sumg = 4 * slope / (double)N * (1 + 1e-3);
    double *mx = malloc(sizeof(double) * (size_t)N), mw = max_abs(w, TY_F32, K * d), sum_mx = 0;
    row_max_abs(x, N, d, mx);
    for (int64_t r = 0; r < N; r++) sum_mx += mx[r];
    int feat_near = A[5] && sumg * mw >= GRADIENT_LIMIT * (1 - 1e-6);
    int weight_near = A[6] && sumg * sum_mx >= GRADIENT_LIMIT * (1 - 1e-6);
    if (!feat_near && !weight_near) { free(mx); return; }
    ce_ref_t R = {0};
    if (N * K * d > REFERENCE_WORK || N * K > 6000 || !ce_reference(&R, x, w, bias, lab) || !R.grad_ok) {
        if (R.z) ce_ref_free(&R);
        maybe |= F(ERA_ERR_BAD_PARAMETER);
        free(mx);
        return;
    }
    double f_lo = 0, f_hi = 0;
    for (int64_t r = 0; r < N; r++) {
        double lo = 0, hi = 0;
        for (int64_t k = 0; k < K; k++) {
            double gk = fabs(R.G[r * K + k]), e = R.dG[r * K + k] + 0x1p-24 * gk;
            lo += fmax(0, gk - e);
            hi += gk + e;
        }
        f_lo = fmax(f_lo, lo * mw);
        f_hi = fmax(f_hi, hi * mw);
    }
    double w_lo = 0, w_hi = 0;
    for (int64_t k = 0; k < K; k++) {
        double lo = 0, hi = 0;
        for (int64_t r = 0; r < N; r++) {
            double gk = fabs(R.G[r * K + k]), e = R.dG[r * K + k] + 0x1p-24 * gk;
            lo += fmax(0, gk - e) * mx[r];
            hi += (gk + e) * mx[r];
        }
        w_lo = fmax(w_lo, lo);
        w_hi = fmax(w_hi, hi);
    }
    if (feat_near) {
        if (f_lo * (1 - 1e-9) > GRADIENT_LIMIT) faults |= F(ERA_ERR_BAD_PARAMETER);
        else if (f_hi * (1 + 1e-9) >= GRADIENT_LIMIT) maybe |= F(ERA_ERR_BAD_PARAMETER);
    }
    if (weight_near) {
        if (w_lo * (1 - 1e-9) > GRADIENT_LIMIT) faults |= F(ERA_ERR_BAD_PARAMETER);
        else if (w_hi * (1 + 1e-9) >= GRADIENT_LIMIT) maybe |= F(ERA_ERR_BAD_PARAMETER);
    }
    ce_ref_free(&R);
    free(mx);
}

static int setup_linear_ce(void) {
    n_rows = gen_tokens();
    n_dim = gen_dim();
    n_cols = gen_outputs(0);
    gen_discrete(&dparams, n_cols);
    dp = byte() < 8 ? NULL : &dparams;
    /* a few milliseconds per call: at most 1M multiply-adds, 16384 logits (discrete ERA runs
     * on each, forward and backward) */
    if (n_rows > 0 && n_rows <= 200 && n_dim > 0 && n_dim <= 64 && n_cols > 0 && n_cols <= 1200 &&
        n_rows * n_dim * n_cols > 1000000)
        n_rows = 1000000 / (n_dim * n_cols) > 0 ? 1000000 / (n_dim * n_cols) : 1;
    if (n_rows > 0 && n_rows <= 200 && n_cols > 0 && n_cols <= 1200 && n_rows * n_cols > 16384)
        n_rows = 16384 / n_cols > 0 ? 16384 / n_cols : 1;
    /* classes < 2 is the discrete parameter checks' BAD_SHAPE, which run first: with a bad
     * shape a parameter fault may be what is reported (and the other way round) */
    shape_bad = n_cols < 2 || linear_shape_bad(n_rows, n_dim, n_cols, 1, 1);
    if (shape_bad) faults |= F(ERA_ERR_BAD_SHAPE), maybe |= F(ERA_ERR_NULL_POINTER) | F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET);
    else if (n_rows > 200 || n_dim > 64 || n_cols > 1200) return 0;
    discrete_faults(dp, n_cols, shape_bad ? &maybe : &faults, &maybe);
    int64_t rows = shape_bad ? 0 : n_rows, classes = shape_bad ? 0 : n_cols;
    int64_t nx = shape_bad ? 0 : n_rows * n_dim, nw = shape_bad ? 0 : n_cols * n_dim;
    fill_values(new_array(0, TY_F32, nx, 0), TY_F32, rows, n_dim);
    fill_values(new_array(1, TY_F32, nw, 0), TY_F32, classes, n_dim);
    fill_values(new_array(2, TY_F32, classes, 0), TY_F32, classes ? 1 : 0, classes);
    if (byte() < 96) A[2] = NULL; /* no bias */
    fill_ids(new_array(3, TY_I64, rows, 0), rows, 0, n_cols);
    new_fixed(4, sizeof(float));
    new_array(5, TY_F32, nx, 1);
    new_array(6, TY_F32, nw, 1);
    new_array(7, TY_F32, classes, 1);
    uint8_t o = byte();
    if (o >= 96) { /* some gradients not requested */
        if (o & 1) A[5] = NULL;
        if (o & 2) A[6] = NULL;
        if (o & 4) A[7] = NULL;
    }
    maybe_null(5);
    if (!shape_bad) {
        const float *x = A[0], *w = A[1], *bias = A[2];
        const int64_t *lab = A[3];
        if (!x || !w || !lab || !A[4]) faults |= F(ERA_ERR_NULL_POINTER);
        for (int64_t r = 0; r < n_rows && lab; r++)
            if (lab[r] < 0 || lab[r] >= n_cols) faults |= F(ERA_ERR_BAD_INDEX);
        int x_ok = x && all_finite(0, TY_F32, nx), w_ok = w && all_finite(1, TY_F32, nw);
        int b_ok = !bias || all_finite(2, TY_F32, n_cols);
        if ((x && !x_ok) || (w && !w_ok) || !b_ok) faults |= F(ERA_ERR_NON_FINITE);
        if (x_ok && w_ok && b_ok) {
            /* logits that overflow float32 (NON_FINITE), exact only where the bound comes near */
            double *mx = malloc(sizeof(double) * (size_t)n_rows), mw = max_abs(w, TY_F32, nw);
            double mb = bias ? max_abs(bias, TY_F32, n_cols) : 0;
            double *z = malloc(sizeof(double) * (size_t)n_cols), *mag = malloc(sizeof(double) * (size_t)n_cols);
            row_max_abs(x, n_rows, n_dim, mx);
            int logits_fit = 1;
            int64_t budget = PREDICTION_WORK; /* products for exact predictions; beyond, "maybe" */
            for (int64_t r = 0; r < n_rows; r++) {
                double cheap = (double)n_dim * mx[r] * mw + mb;
                if (cheap + logit_error(cheap, n_dim) < F32_OVERFLOW * (1 - 1e-12)) continue;
                if (budget < n_cols * n_dim) {
                    maybe |= F(ERA_ERR_NON_FINITE);
                    logits_fit = 0;
                    continue;
                }
                budget -= n_cols * n_dim;
                linear_row(x + r * n_dim, w, n_dim, n_cols, bias, z, mag);
                for (int64_t k = 0; k < n_cols; k++) {
                    int ov = logit_overflow(z[k], mag[k], n_dim);
                    if (ov == 2) faults |= F(ERA_ERR_NON_FINITE);
                    else if (ov == 1) maybe |= F(ERA_ERR_NON_FINITE);
                    if (ov) logits_fit = 0;
                }
            }
            free(mx); free(z); free(mag);
            int labels_ok = lab && !(faults & F(ERA_ERR_BAD_INDEX));
            if (logits_fit && labels_ok && dp && !(faults & (F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET))) &&
                (A[5] || A[6]))
                ce_gradient_faults(x, w, bias, lab);
            else if (A[5] || A[6])
                maybe |= F(ERA_ERR_BAD_PARAMETER); /* another fault is reported, or the bound is out of reach */
        }
    }
    describe("%s(params=%s{H0=%.17g, tau=%.17g, mode=%d}, rows=%lld, dim=%lld, classes=%lld, bias=%s, grads=%s%s%s)",
             fn_name[fn], dp ? "" : "NULL ", dparams.target_entropy, dparams.tau, dparams.mode, (long long)n_rows,
             (long long)n_dim, (long long)n_cols, A[2] ? "given" : "NULL", A[5] ? "features " : "",
             A[6] ? "weight " : "", A[7] ? "bias" : "");
    return 1;
}

/* got[o, j] against sum_i G[o*os + i*is] m[i, j] (o < outer, i < inner, j < d), where the
 * reference gradient G has the error bound dG: the bound carried through the product, plus
 * float32 rounding of an inner-term sum. */
static void check_gradient_product(const float *got, int64_t outer, int64_t inner, int64_t d, const double *G,
                                   const double *dG, int64_t os, int64_t is, const float *m, const char *what) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < d; j++) {
            double want = 0, mg = 0, err = 0;
            for (int64_t i = 0; i < inner; i++) {
                double g = G[o * os + i * is], e = dG[o * os + i * is], mi = fabs((double)m[i * d + j]);
                want += g * (double)m[i * d + j];
                mg += (fabs(g) + e) * mi;
                err += e * mi;
            }
            double tol = err + f32_gamma(inner + 2) * mg + (double)(inner + 4) * F32_TINY;
            expect_close(got[o * d + j], want, tol, TY_F32, what, o * d + j);
        }
}

static void checks_linear_ce(void) {
    int64_t N = n_rows, d = n_dim, K = n_cols;
    const float *x = input(0), *w = input(1), *bias = A[2] ? input(2) : NULL;
    const int64_t *lab = input(3);
    const float *gx = A[5], *gw = A[6], *gb = A[7];
    float loss;
    memcpy(&loss, A[4], sizeof loss);
    /* the ERA logits lie in [log h^-1(DBL_MIN), -log tau] (about -715..-1): the loss is
     * non-negative and below log K plus their spread */
    if (!isfinite(loss) || loss < 0 || loss > log((double)K) + 750)
        violation("loss = %.9g outside [0, log %lld + 750]", loss, (long long)K);
    double slope = ce_slope_bound(&dparams), sumg = 4 * slope / (double)N;
    /* |G[r, :]|_1 <= 4 slope / rows bounds each gradient by its magnitudes */
    double *wcol = calloc((size_t)d, sizeof(double)), *xcol = calloc((size_t)d, sizeof(double));
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < d; j++) wcol[j] = fmax(wcol[j], fabs((double)w[k * d + j]));
    for (int64_t r = 0; r < N; r++)
        for (int64_t j = 0; j < d; j++) xcol[j] += fabs((double)x[r * d + j]);
    if (gx)
        for (int64_t r = 0; r < N; r++)
            for (int64_t j = 0; j < d; j++) {
                double wc = wcol[j];
                double bound = (sumg + (double)K * F32_TINY) * wc * (1 + 1e-3 + f32_gamma(K + 2)) + (double)(K + 4) * F32_TINY,
                       v = gx[r * d + j];
                if (!isfinite(v) || fabs(v) > bound)
                    violation("grad_features[%lld,%lld] = %.9g beyond (4 slope / rows) max|weight[:, j]| = %.9g",
                              (long long)r, (long long)j, v, bound);
            }
    if (gw)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < d; j++) {
                double xs = xcol[j];
                double bound = (sumg + F32_TINY) * xs * (1 + 1e-3 + f32_gamma(N + 2)) + (double)(N + 4) * F32_TINY,
                       v = gw[k * d + j];
                if (!isfinite(v) || fabs(v) > bound)
                    violation("grad_weight[%lld,%lld] = %.9g beyond (4 slope / rows) sum_r |features[r, j]| = %.9g",
                              (long long)k, (long long)j, v, bound);
            }
    if (gb) {
        /* the softmax is shift-invariant: each row of G sums to 0, so the bias gradient does */
        long double sum = 0;
        for (int64_t k = 0; k < K; k++) {
            if (!isfinite(gb[k]) || fabs(gb[k]) > 4 * slope * (1 + 1e-3))
                violation("grad_bias[%lld] = %.9g beyond 4 slope = %.9g", (long long)k, gb[k], 4 * slope);
            sum += gb[k];
        }
        if (fabsl(sum) > 1e-5 * 4 * slope + (double)K * 1e-7 * 4 * slope)
            violation("grad_bias sums to %.9Lg, expected 0 (softmax shift invariance)", sum);
    }
    free(wcol);
    free(xcol);
    if (N * K * d > REFERENCE_WORK || N * K > 6000) return;
    ce_ref_t R;
    if (!ce_reference(&R, x, w, bias, lab)) violation("era_discrete_constant failed for accepted parameters");
    expect_close(loss, R.loss, R.loss_tol + 1.2e-7 * fabs(R.loss) + 1e-12, TY_F32, "loss (reference)", 0);
    if (R.grad_ok) {
        /* grad_features = G . weight (sum over classes), grad_weight = G^T . features (sum over rows) */
        if (gx) check_gradient_product(gx, N, K, d, R.G, R.dG, K, 1, w, "grad_features (reference)");
        if (gw) check_gradient_product(gw, K, N, d, R.G, R.dG, 1, K, x, "grad_weight (reference)");
        if (gb)
            for (int64_t k = 0; k < K; k++) {
                double want = 0, err = 0, mg = 0;
                for (int64_t r = 0; r < N; r++) {
                    want += R.G[r * K + k];
                    err += R.dG[r * K + k];
                    mg += fabs(R.G[r * K + k]);
                }
                expect_close(gb[k], want, err + 0x1p-23 * mg + 1e-40, TY_F32, "grad_bias (reference)", k);
            }
    }
    ce_ref_free(&R);
}

/* ---- the functions without arrays ----------------------------------------------------- */

static void run_misc(void) {
    if (fn == FN_THREADS) {
        static const int32_t values[] = {-1, 0, 1, 2, 3, 8, 1024, 1025, INT32_MIN, INT32_MAX, 64};
        int32_t n = PICK(values), before = era_get_num_threads();
        describe("era_set_num_threads(%d)", n);
        era_status st = era_set_num_threads(n);
        int32_t now = era_get_num_threads();
        if (n < 0 || n > 1024) {
            if (st != ERA_ERR_BAD_PARAMETER) violation("status '%s', expected bad parameter", status_name(st));
            if (now != before) violation("thread setting changed from %d to %d by a refused call", before, now);
        } else {
            if (st != ERA_OK) violation("status '%s'", status_name(st));
            if (n > 0 && now != n) violation("era_get_num_threads() = %d after setting %d", now, n);
            if (now < 1) violation("era_get_num_threads() = %d", now);
        }
        era_set_num_threads(before);
    } else if (fn == FN_STATUS) {
        int32_t code = (int32_t)u32();
        if (byte() < 128) code = (int32_t)(byte() % 12) - 1;
        describe("era_status_string(%d)", code);
        const char *text = era_status_string((era_status)code);
        if (!text || !text[0] || strlen(text) > 64) violation("no usable text");
        int known = code >= 0 && code <= 9;
        if (known == !strcmp(text, "unknown status")) violation("text '%s' for code %d", text, code);
        if (code == 0 && strcmp(text, "ok")) violation("text '%s' for ERA_OK", text);
    } else if (fn == FN_VERSION) {
        describe("era_version_string / era_abi_version");
        char want[32];
        snprintf(want, sizeof want, "%d.%d.%d", ERA_VERSION_MAJOR, ERA_VERSION_MINOR, ERA_VERSION_PATCH);
        if (strcmp(era_version_string(), want)) violation("version '%s', header %s", era_version_string(), want);
        if (era_abi_version() != ERA_ABI_VERSION) violation("ABI %d, header %d", era_abi_version(), ERA_ABI_VERSION);
    } else {
        describe("era_*_params_init");
        era_continuous_params c;
        era_discrete_params d;
        era_llm_params l;
        memset(&c, byte(), sizeof c);
        memset(&d, byte(), sizeof d);
        memset(&l, byte(), sizeof l);
        era_continuous_params_init(NULL);
        era_discrete_params_init(NULL);
        era_llm_params_init(NULL);
        era_continuous_params_init(&c);
        era_discrete_params_init(&d);
        era_llm_params_init(&l);
        if (!isnan(c.target_entropy) || c.residual != 0 || c.log_std_min != -8 || c.log_std_max != 0)
            violation("continuous defaults");
        if (!isnan(d.target_entropy) || d.tau != 4 || d.mode != ERA_DISCRETE_EXACT) violation("discrete defaults");
        if (l.omega_low != 0.45 || l.omega_high != 3.0 || l.k != 2.0 || l.top_fraction != 0.2 || l.scale_advantages != 1)
            violation("llm defaults");
    }
}

/* ---- the truncated-normal policy (era.h, "Truncated-normal policy") ---------------------
 * Slots: 0 loc, 1 log_std, 2 the third input (uniform / sample / x), then for the backward
 * passes 3 the upstream gradient, and the outputs after them (sample: 3; sample backward:
 * 4, 5; log_prob: 3; log_prob backward: 4, 5, 6). Faults: the interval (lo < hi, finite,
 * hi - lo finite: BAD_PARAMETER), the shape, NULL arrays, an output on an input (OVERLAP),
 * non-finite inputs, a uniform outside (0, 1) and a sample outside [lo, hi] in the sample
 * backward (BAD_PARAMETER). An element whose scale or standardised bounds are extreme, or
 * an upstream gradient near the type's largest value, may report BAD_PARAMETER (a result
 * beyond the output type); moderate elements may not, and in f64 calls their values are
 * checked against long-double references. */
static int tn_outputs(void) {
    return fn == FN_TNSB_F32 || fn == FN_TNSB_F64 ? 2 : fn == FN_TNLPB_F32 || fn == FN_TNLPB_F64 ? 3 : 1;
}
static int tn_inputs(void) { return fn == FN_TNS_F32 || fn == FN_TNS_F64 || fn == FN_TNLP_F32 || fn == FN_TNLP_F64 ? 3 : 4; }

/* An element the entry points must handle without BAD_PARAMETER in f64 (and are checked
 * on): a moderate scale and location and a moderate interval. */
static int tn_moderate(double m, double ls) {
    return fabs(ls) <= 3 && fabs(m) <= 10 && fabs(lo_arg) <= 10 && fabs(hi_arg) <= 10 && hi_arg - lo_arg >= 1e-3;
}

static int setup_truncnorm(int vt) {
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, NULL);
    if (too_big(n_rows, n_cols)) return 0;
    static const double bounds[][2] = {{-1, 1}, {-1, 1}, {-1, 1}, {0, 1}, {-0.1, 0.3}, {5, 6}, {-1e-8, 1e-8},
                                       {-1e300, 1e300}, {-DBL_MAX, DBL_MAX}, {1, 1}, {1, -1}, {NAN, 1},
                                       {-INFINITY, 1}, {0, INFINITY}, {1e8, 1e8 + 1}, {0.1000000001, 0.1000000002}};
    uint8_t b = byte();
    if (b < 220) { lo_arg = bounds[b % 16][0]; hi_arg = bounds[b % 16][1]; }
    else { lo_arg = (int8_t)byte() / 8.0; hi_arg = lo_arg + byte() / 64.0; }
    if (!(isfinite(lo_arg) && isfinite(hi_arg) && lo_arg < hi_arg && isfinite(hi_arg - lo_arg))) {
        if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER); else faults |= F(ERA_ERR_BAD_PARAMETER);
    }
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    int ins = tn_inputs(), outs = tn_outputs();
    for (int i = 0; i < ins; i++) {
        void *p = new_array(i, vt, n, 0);
        fill_values(p, vt, shape_bad ? 0 : n_rows, n_cols);
        uint8_t mode = byte();
        for (int64_t k = 0; k < n && mode < 176; k++) { /* mostly policy-like values */
            double v = get(p, vt, k);
            if (!isfinite(v)) continue;
            if (i == 0) put(p, vt, k, tanh(v));
            else if (i == 1) put(p, vt, k, fmod(v, 12.0) - 3);
            else if (i == 2 && (fn == FN_TNS_F32 || fn == FN_TNS_F64)) put(p, vt, k, (fabs(fmod(v, 1.0)) + 1e-7) / (1 + 2e-7));
            else if (i == 2) put(p, vt, k, lo_arg + (hi_arg - lo_arg) * fabs(fmod(v, 1.0)));
        }
    }
    for (int j = 0; j < outs; j++) new_array(ins + j, vt, n, 1);
    uint8_t a = byte();
    if (a < 12 && n > 0) { A[ins + a % outs] = A[a % ins]; faults |= F(ERA_ERR_OVERLAP); }
    else if (a < 16 && outs > 1 && n > 0) { A[ins + 1] = A[ins]; faults |= F(ERA_ERR_OVERLAP); }
    maybe_null(ins + outs);
    if (!shape_bad) {
        int null = 0;
        for (int i = 0; i < ins + outs; i++) null |= n > 0 && !A[i];
        if (null) faults |= F(ERA_ERR_NULL_POINTER);
        int nonfinite = 0;
        for (int i = 0; i < ins; i++) nonfinite |= B[i].p && A[i] == B[i].p && !all_finite(i, vt, n);
        if (nonfinite) faults |= F(ERA_ERR_NON_FINITE);
        /* an aliased output slot passes an input's pointer: its values are that input's */
        if (!null && !nonfinite && n > 0) {
            int domain = 0, extreme = 0;
            for (int64_t k = 0; k < n; k++) {
                double m = get(A[0], vt, k), ls = get(A[1], vt, k), t = get(A[2], vt, k);
                if (!tn_moderate(m, ls)) extreme = 1;
                /* an upstream gradient within 1e6 of the type's largest value may overflow */
                if (ins == 4 && fabs(get(A[3], vt, k)) > type_max(vt) * 1e-6) extreme = 1;
                if ((fn == FN_TNS_F32 || fn == FN_TNS_F64) && !(t > 0 && t < 1)) domain = 1;
                if ((fn == FN_TNSB_F32 || fn == FN_TNSB_F64) && !(t >= lo_arg && t <= hi_arg)) domain = 1;
            }
            if (domain) faults |= F(ERA_ERR_BAD_PARAMETER);
            if (extreme) maybe |= F(ERA_ERR_BAD_PARAMETER);
        }
    }
    describe("%s(rows=%lld, dim=%lld, lo=%.17g, hi=%.17g)", fn_name[fn], (long long)n_rows, (long long)n_cols, lo_arg,
             hi_arg);
    return 1;
}

/* Long-double references for moderate elements: Z, the CDF, phi. */
static long double tn_cdf_std(long double x) { return 0.5L * erfcl(-x / sqrtl(2.0L)); }
static long double tn_pdf_std(long double x) { return expl(-0.5L * x * x) / sqrtl(2 * 3.14159265358979323846L); }

static void checks_truncnorm(int vt) {
    int ins = tn_inputs();
    int64_t n = n_rows * n_cols;
    for (int64_t k = 0; k < n; k++) {
        double m = get(input(0), vt, k), ls = get(input(1), vt, k), t = get(input(2), vt, k);
        double g = ins == 4 ? get(input(3), vt, k) : 1;
        long double sg = expl(ls), a = (lo_arg - m) / sg, bb = (hi_arg - m) / sg;
        long double z = a > 0 ? tn_cdf_std(-a) - tn_cdf_std(-bb) : tn_cdf_std(bb) - tn_cdf_std(a);
        int check_values = tn_moderate(m, ls) && vt == TY_F64 && z > 1e-30L;
        double tol = 1e-9;
        if (fn == FN_TNS_F32 || fn == FN_TNS_F64) {
            double x = get(A[3], vt, k);
            if (!(x >= lo_arg && x <= hi_arg)) violation("sample[%lld] = %.17g outside [lo, hi]", (long long)k, x);
            long double xi = (x - m) / sg;
            long double f = a > 0 ? (tn_cdf_std(-a) - tn_cdf_std(-xi)) / z : (tn_cdf_std(xi) - tn_cdf_std(a)) / z;
            /* the sample is rounded: F moves by the density times half an ulp */
            double slack = 1e-10 + (double)(tn_pdf_std(0) / (sg * z)) * 2.3e-16 * fmax(1, fabs(x));
            if (check_values && fabsl(f - t) > slack)
                violation("sample[%lld] = %.17g: F(x) = %.17Lg, u = %.17g", (long long)k, x, f, t);
            continue;
        }
        long double xi = (t - m) / sg;
        int inside = t >= lo_arg && t <= hi_arg;
        if (fn == FN_TNLP_F32 || fn == FN_TNLP_F64) {
            double got = get(A[3], vt, k);
            if (!inside) {
                if (got != -INFINITY) violation("log_prob[%lld] = %.17g for x outside [lo, hi]", (long long)k, got);
                continue;
            }
            if (isnan(got) || got == INFINITY) violation("log_prob[%lld] = %g", (long long)k, got);
            if (check_values) {
                long double want = -0.5L * xi * xi - logl(sqrtl(2 * 3.14159265358979323846L) * sg * z);
                expect_close(got, want, tol * fmax(1, fabsl(want)), vt, "log_prob", k);
            }
            continue;
        }
        for (int j = 0; j < tn_outputs(); j++) {
            double v = get(A[ins + j], vt, k);
            if (!isfinite(v)) violation("gradient %d [%lld] = %g with status ok", j, (long long)k, v);
        }
        if (!check_values) continue;
        long double pa = tn_pdf_std(a), pb = tn_pdf_std(bb);
        if (fn == FN_TNLPB_F32 || fn == FN_TNLPB_F64) {
            if (!inside) continue;
            long double wx = -g * xi / sg, wm = g * (xi - (pa - pb) / z) / sg, wl = g * (xi * xi - 1 - (a * pa - bb * pb) / z);
            expect_close(get(A[4], vt, k), wx, tol * fmaxl(1, fabsl(wx)), vt, "grad_x", k);
            expect_close(get(A[5], vt, k), wm, tol * fmaxl(1, fabsl(wm)) + 1e-9 * fabsl(g) / sg, vt, "grad_loc", k);
            expect_close(get(A[6], vt, k), wl, tol * fmaxl(1, fabsl(wl) + fabsl(g) * xi * xi), vt, "grad_log_std", k);
        } else {
            long double f = a > 0 ? (tn_cdf_std(-a) - tn_cdf_std(-xi)) / z : (tn_cdf_std(xi) - tn_cdf_std(a)) / z;
            long double px = tn_pdf_std(xi);
            if (px < 1e-200L) continue;
            long double dm = 1 - (pa * (1 - f) + pb * f) / px, dl = sg * (xi - (a * pa * (1 - f) + bb * pb * f) / px);
            /* the long-double F loses digits near the ends; the scale of the terms bounds the error */
            long double scale = (pa + pb + fabsl(a) * pa + fabsl(bb) * pb) / px * 1e-9L + 1e-9L;
            /* DBL_MIN: an upstream gradient near the subnormals gives products that round to 0 */
            expect_close(get(A[4], vt, k), g * dm, (double)(fabsl(g) * scale) + DBL_MIN, vt, "grad_loc", k);
            expect_close(get(A[5], vt, k), g * dl, (double)(fabsl(g) * sg * (scale + 1e-9L * fabsl(xi))) + DBL_MIN, vt,
                         "grad_log_std", k);
        }
    }
}

/* ---- the truncated-normal entropy gradient and the sampled floor ------------------------
 * era_truncated_normal_entropy_backward_*, era_continuous_truncated_forward_* / _backward_*,
 * era_check_continuous_truncated_*. Check order in libera: the continuous parameters, the
 * interval (BAD_PARAMETER unless lo < hi, both finite), the feasibility of the sampled floor
 * (INFEASIBLE_TARGET if H0 + delta >= dim log(hi - lo)), then the shape, pointers, overlaps
 * and the scan of the inputs; the entropy gradient checks the interval first. */

/* The interval: mostly [-1, 1], sometimes degenerate, reversed, NaN, infinite, tiny or huge. */
static void gen_interval(void) {
    static const double bounds[][2] = {{-1, 1}, {-1, 1}, {-1, 1}, {0, 1}, {-1e-8, 1e-8}, {5, 6}, {-1e300, 1e300},
                                       {-DBL_MAX, DBL_MAX}, {1, 1}, {1, -1}, {NAN, 1}, {-INFINITY, 1},
                                       {0, INFINITY}, {1e8, 1e8 + 1}, {-3, -2}, {-1e-300, 0}, {-2, 2}, {-1, 1}};
    uint8_t b = byte();
    if (b < 220) { lo_arg = bounds[b % 18][0]; hi_arg = bounds[b % 18][1]; }
    else { lo_arg = (int8_t)byte() / 8.0; hi_arg = lo_arg + byte() / 64.0; }
}
static int interval_ok(void) { return isfinite(lo_arg) && isfinite(hi_arg) && lo_arg < hi_arg; }
/* dim log(hi - lo) as libera forms it: log(hi/2 - lo/2) + log 2 (no overflow for +-DBL_MAX) */
static double log_span(void) { return log(0.5 * hi_arg - 0.5 * lo_arg) + log(2.0); }

/* The entropy of N(m, e^(2 ls)) truncated to [lo, hi] and its derivatives dH/dm, dH/dls, in
 * long double from erfc (math 1: H = ls + c + log Z + (alpha phi(alpha) - beta phi(beta))/(2Z),
 * dh/dalpha = a (M - 1 - alpha^2)/2, dh/dbeta = b (1 + beta^2 - M)/2 with a = phi(alpha)/Z,
 * b = phi(beta)/Z, M = alpha a - beta b). Returns 0 where this plain form is not accurate
 * (|ls| > 30, an interval narrower than 1e-3 sd, both bounds beyond 30 sd on one side, or Z
 * below 1e-4 of the tail it is taken from). */
static long double ref_q(long double x) { return 0.5L * erfcl(x * 0.70710678118654752440L); }
static long double ref_phi(long double x) { return fabsl(x) > 140 ? 0 : expl(-0.5L * x * x) * 0.39894228040143267794L; }
static int ref_trunc_normal(double m, double ls, long double *h, long double *dm, long double *dl) {
    if (!(fabs(ls) <= 30)) return 0;
    long double sd = expl(ls), a = ((long double)lo_arg - m) / sd, b = ((long double)hi_arg - m) / sd;
    if (!(b - a >= 1e-3L) || a > 100 || b < -100 || !isfinite(a) || !isfinite(b)) return 0;
    long double lo = a, hi = b;
    if (hi <= 0) { lo = -b; hi = -a; } /* Z(a, b) = Z(-b, -a): take it on the side away from the mass */
    /* beyond 30 sd the rounding of the long-double argument of erfc (relative 1e-19 x^2) is
     * amplified by about x^4 in the derivatives: no reference there */
    if (lo > 30) return 0;
    long double z = lo < 0 ? 1 - ref_q(-lo) - ref_q(hi) : ref_q(lo) - ref_q(hi);
    if (lo >= 0 && !(z >= 1e-4L * ref_q(lo))) return 0;
    long double pa = ref_phi(a), pb = ref_phi(b);
    long double ta = pa == 0 ? 0 : a * pa / z, tb = pb == 0 ? 0 : b * pb / z, mm = ta - tb;
    *h = ls + (long double)GAUSS_C + logl(z) + 0.5L * mm;
    long double da = pa == 0 ? 0 : 0.5L * pa / z * (mm - 1 - a * a), db = pb == 0 ? 0 : 0.5L * pb / z * (1 + b * b - mm);
    *dl = 1 - (da == 0 ? 0 : a * da) - (db == 0 ? 0 : b * db);
    *dm = -(da + db) / sd;
    return 1;
}

static int setup_tn_backward(int vt) {
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    gen_interval();
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, es);
    if (too_big(n_rows, n_cols)) return 0;
    if (!interval_ok()) faults |= F(ERA_ERR_BAD_PARAMETER); /* checked before the shape */
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    fill_values(new_array(1, vt, n, 0), vt, n_rows, n_cols);
    fill_values(new_array(2, vt, shape_bad ? 0 : n_rows, 0), vt, n_rows, 1);
    new_array(3, vt, n, 1);
    new_array(4, vt, n, 1);
    uint8_t a = byte();
    if (a < 48) alias(3, 0); /* out_grad_loc == loc */
    if (a % 3 == 0) alias(4, 1); /* out_grad_log_std == log_std */
    maybe_null(5);
    if (!shape_bad && interval_ok()) {
        if (n_rows > 0 && (!A[0] || !A[1] || !A[2] || !A[3] || !A[4])) faults |= F(ERA_ERR_NULL_POINTER);
        if (!all_finite(0, vt, n) || !all_finite(1, vt, n) || !all_finite(2, vt, n_rows)) faults |= F(ERA_ERR_NON_FINITE);
        /* era.h: BAD_PARAMETER when a gradient cannot be represented in the output type.
         * |dH/dm| <= (2 + alpha^2 + beta^2)(a + b)/sd and |dH/dL| <= 1 + (|alpha| + |beta|)(a + b)(2 + alpha^2 + beta^2)
         * grow without bound only for small sd, huge standardised bounds or a huge upstream
         * gradient: allowed where any of those is extreme. */
        if (!faults && A[0] && A[1] && A[2]) {
            for (int64_t i = 0; i < n; i++) {
                double g = fabs(get(A[2], vt, i / n_cols)), ls = get(A[1], vt, i), m = get(A[0], vt, i);
                long double h, dm, dl;
                if (!ref_trunc_normal(m, ls, &h, &dm, &dl) || g * (fabsl(dm) + fabsl(dl)) > type_max(vt) / 64 ||
                    g > type_max(vt) / 64)
                    maybe |= F(ERA_ERR_BAD_PARAMETER);
            }
        }
    }
    describe("%s(rows=%lld, dim=%lld, lo=%.17g, hi=%.17g, in_place=%d%d)", fn_name[fn], (long long)n_rows,
             (long long)n_cols, lo_arg, hi_arg, A[3] && A[3] == A[0], A[4] && A[4] == A[1]);
    return 1;
}

static void checks_tn_backward(int vt) {
    const void *m = input(0), *ls = input(1), *g = input(2);
    int64_t n = n_rows * n_cols;
    for (int64_t i = 0; i < n; i++) {
        double gl = get(A[3], vt, i), gs = get(A[4], vt, i);
        if (!isfinite(gl) || !isfinite(gs)) violation("entropy gradient [%lld] = (%g, %g) with status ok", (long long)i, gl, gs);
        long double h, dm, dl;
        double gr = get(g, vt, i / n_cols);
        if (!ref_trunc_normal(get(m, vt, i), get(ls, vt, i), &h, &dm, &dl)) continue;
        /* docs/math.md: the gradient is computed in double from the entropy's own pieces; the
         * reference's Z keeps 1e-4 of its tail, so 1e-9 relative to the terms' size */
        long double sd = expl((long double)get(ls, vt, i));
        long double scale_m = (1 + fabsl(dm) + 1 / sd) * fabs(gr), scale_l = (1 + fabsl(dl)) * fabs(gr);
        double tm = 1e-9 * (double)scale_m + 2 * type_eps(vt) * (double)fabsl(gr * dm) + 1e-300;
        double tl = 1e-9 * (double)scale_l + 2 * type_eps(vt) * (double)fabsl(gr * dl) + 1e-300;
        if (vt == TY_F32) tm += 1.5e-45, tl += 1.5e-45;
        expect_close(gl, gr * dm, tm, vt, "truncated-normal dH/dloc", i);
        expect_close(gs, gr * dl, tl, vt, "truncated-normal dH/dlog_std", i);
    }
}

/* The sampled floor's parameter, interval and feasibility faults (shape already decided). */
static void sampled_faults(void) {
    unsigned *fa = shape_bad ? &maybe : &faults;
    unsigned before = *fa;
    continuous_faults(cpp, n_cols, fa, &maybe);
    if (*fa != before) { /* the continuous checks come first; a bad interval may not be seen */
        maybe |= F(ERA_ERR_BAD_PARAMETER);
        return;
    }
    if (!interval_ok()) { *fa |= F(ERA_ERR_BAD_PARAMETER); return; }
    double target = cparams.target_entropy + cparams.residual, sup = (double)n_cols * log_span();
    if (near_boundary(target, sup, 1e-8)) maybe |= F(ERA_ERR_INFEASIBLE_TARGET);
    else if (target >= sup) *fa |= F(ERA_ERR_INFEASIBLE_TARGET);
}

static int setup_sampled(int vt) {
    int backward = fn == FN_SFB_F32 || fn == FN_SFB_F64;
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    gen_continuous(&cparams, n_cols);
    /* targets near the sampled floor's supremum dim log(hi - lo) as well */
    gen_interval();
    uint8_t t = byte();
    if (t >= 200 && interval_ok() && n_cols >= 1) {
        static const double below[] = {1, 0.1, 1e-3, 1e-6, 1e-9, 1e-12, 0, -1e-12};
        cparams.target_entropy = (double)n_cols * log_span() - PICK(below) - cparams.residual;
    }
    cpp = byte() < 8 ? NULL : &cparams;
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, es);
    if (too_big(n_rows, n_cols)) return 0;
    if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET) | F(ERA_ERR_NULL_POINTER);
    sampled_faults();
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    fill_values(new_array(1, vt, n, 0), vt, n_rows, n_cols);
    if (!backward) {
        new_array(2, vt, n, 1);
        new_array(3, vt, shape_bad ? 0 : n_rows, 1);
        uint8_t a = byte();
        if (a < 64) alias(2, 0); /* out_log_std == std_logits */
        if (a % 4 == 1) A[3] = NULL; /* the offsets are optional */
        maybe_null(3);
    } else {
        fill_values(new_array(2, vt, n, 0), vt, n_rows, n_cols);
        new_array(3, vt, n, 1);
        new_array(4, vt, n, 1);
        new_array(5, vt, shape_bad ? 0 : n_rows, 1);
        uint8_t a = byte();
        if (a < 40) alias(3, 0); /* out_grad_std_logits == std_logits */
        else if (a < 80) alias(3, 2); /* == grad_log_std */
        if (a % 3 == 0) alias(4, 1); /* out_grad_loc == loc */
        if (a % 5 == 1) A[5] = NULL; /* the residual gradient is optional */
        maybe_null(5);
    }
    if (!shape_bad && !faults) {
        if (n_rows > 0 && (!A[0] || !A[1] || !A[2] || (backward && (!A[3] || !A[4])))) faults |= F(ERA_ERR_NULL_POINTER);
        if (!all_finite(0, vt, n) || !all_finite(1, vt, n) || (backward && !all_finite(2, vt, n)))
            faults |= F(ERA_ERR_NON_FINITE);
    }
    if (!shape_bad && !faults && n_rows > 0) {
        /* era.h: INFEASIBLE_TARGET also when a row's offset cannot reach the target in double: every
         * scale is at least e^64 (hi - lo) at the offset's limit, where a location far outside the
         * interval (beyond 1e-6 e^128 (hi - lo)) still leaves the entropy below it */
        double span = exp(log_span()), far = 0, mid = 0.5 * lo_arg + 0.5 * hi_arg;
        for (int64_t i = 0; i < n; i++) far = fmax(far, fabs(get(A[1], vt, i) - mid));
        if (far > 1e-6 * exp(128.0) * span || !isfinite(span)) maybe |= F(ERA_ERR_INFEASIBLE_TARGET);
        /* and BAD_PARAMETER when a gradient cannot be represented in the output type: G/S, with
         * S = sum_i dH/dL, grows without bound as the entropy saturates, H_m like 1/sd; allowed
         * where the double forward pass's outputs leave the plain reference or its bound is large */
        if (backward) {
            double *s = malloc((size_t)n * sizeof(double)), *m = malloc((size_t)n * sizeof(double));
            double *out = malloc((size_t)n * sizeof(double)), *off = malloc((size_t)n_rows * sizeof(double));
            for (int64_t i = 0; i < n; i++) s[i] = get(A[0], vt, i), m[i] = get(A[1], vt, i);
            era_status st = era_continuous_truncated_forward_f64(&cparams, n_rows, n_cols, s, m, lo_arg, hi_arg, out, off);
            double k = fabs(continuous_k(&cparams, n_cols)), gmax = max_abs(A[2], vt, n);
            if (st != ERA_OK) maybe |= F(st) | F(ERA_ERR_BAD_PARAMETER);
            for (int64_t r = 0; r < n_rows && st == ERA_OK; r++) {
                long double slope = 0, big = 0;
                int plain = 1;
                for (int64_t i = r * n_cols; i < (r + 1) * n_cols; i++) {
                    long double h, dm, dl;
                    if (!ref_trunc_normal(m[i], out[i], &h, &dm, &dl)) { plain = 0; break; }
                    slope += dl;
                    big = fmaxl(big, fabsl(dm) + fabsl(dl));
                }
                double bound = plain && slope > 0 ? (double)((long double)gmax * n_cols * (1 + big / slope)) * (1 + 2 * k) : INFINITY;
                if (!(bound < type_max(vt) / 64) || (off[r] > 0 && !(slope > 1e-6)))
                    maybe |= F(ERA_ERR_BAD_PARAMETER);
            }
            free(s); free(m); free(out); free(off);
        }
    }
    describe("%s(params=%s{H0=%.17g, delta=%.17g, min=%.17g, max=%.17g}, rows=%lld, dim=%lld, lo=%.17g, hi=%.17g)",
             fn_name[fn], cpp ? "" : "NULL ", cparams.target_entropy, cparams.residual, cparams.log_std_min,
             cparams.log_std_max, (long long)n_rows, (long long)n_cols, lo_arg, hi_arg);
    return 1;
}

/* The sum of the plain reference entropies of a row (0 when a dimension leaves it). */
static int ref_row_entropy(const void *m, const void *ls, int vt, int64_t r, long double *h) {
    *h = 0;
    for (int64_t i = r * n_cols; i < (r + 1) * n_cols; i++) {
        long double e, dm, dl;
        if (!ref_trunc_normal(get(m, vt, i), get(ls, vt, i), &e, &dm, &dl)) return 0;
        *h += e;
    }
    return 1;
}

static void checks_sampled_forward(int vt) {
    const void *s = input(0), *m = input(1), *out = A[2], *off = A[3];
    int64_t n = n_rows * n_cols;
    size_t bytes = (size_t)n * type_size[vt];
    void *l = malloc(bytes ? bytes : 1);
    era_status st = vt == TY_F64 ? era_continuous_forward_f64(&cparams, n_rows, n_cols, s, l)
                                 : era_continuous_forward_f32(&cparams, n_rows, n_cols, s, l);
    if (st != ERA_OK) violation("era_continuous_forward on the same arguments: status '%s'", status_name(st));
    double target = cparams.target_entropy + cparams.residual;
    for (int64_t r = 0; r < n_rows; r++) {
        int64_t base = r * n_cols;
        double c = off ? get(off, vt, r) : get(out, vt, base) - get(l, vt, base);
        /* without out_offset, c is read off the row's first entry: out - l there is rounded at
         * that entry's magnitude, which may be far above another entry's */
        double c_err = off ? 0 : 4 * type_eps(vt) * (fabs(get(out, vt, base)) + fabs(get(l, vt, base)));
        if (!(c >= 0) || !isfinite(c)) violation("offset of row %lld = %g", (long long)r, c);
        int shifted = 0;
        for (int64_t i = base; i < base + n_cols; i++) {
            double o = get(out, vt, i), li = get(l, vt, i);
            if (!isfinite(o) || o < li || o < cparams.log_std_min)
                violation("log std [%lld] = %.17g below the continuous output %.17g (or not finite)", (long long)i, o, li);
            shifted |= o != li;
            /* out = l + c, rounded up in float32; c as stored is c rounded to nearest */
            double tol = 4 * type_eps(vt) * (fabs(o) + fabs(c)) + c_err + (vt == TY_F32 ? 1.5e-45 : 5e-324);
            if (c > 0 && fabs(o - (li + c)) > tol)
                violation("log std [%lld] = %.17g, but l + c = %.17g + %.17g", (long long)i, o, li, c);
        }
        if (off && (c == 0) != !shifted)
            violation("row %lld: offset %g but the log stds %s the continuous output", (long long)r, c,
                      shifted ? "differ from" : "equal");
        /* the floor holds, and a shifted row is no higher than needed (its c is the smallest) */
        long double h;
        if (!ref_row_entropy(m, out, vt, r, &h)) continue;
        double floor_tol = 1e-11 * (1 + fabs(target)) + 1e-12 * (double)n_cols;
        if (h < (long double)target - floor_tol)
            violation("row %lld: truncated entropy %.17Lg below H0 + delta = %.17g (reference)", (long long)r, h, target);
        if (shifted) {
            double mx = 0;
            for (int64_t i = base; i < base + n_cols; i++) mx = fmax(mx, fabs(get(out, vt, i)));
            /* the solve stops within 1e-12 (1 + |target|) above it, or within 4 ulp of c; float32
             * rounds each log std up by up to one float ulp (dH/dL <= 1 per dimension) */
            double above = 2e-12 * (1 + fabs(target)) + floor_tol + (double)n_cols * 8 * type_eps(vt) * (mx + fabs(c));
            if (h > (long double)target + above)
                violation("row %lld: offset %.17g lifts the entropy to %.17Lg, above H0 + delta = %.17g by more than %.3g",
                          (long long)r, c, h, target, above);
            long double h0;
            if (ref_row_entropy(m, l, vt, r, &h0) && h0 >= (long double)target + floor_tol)
                violation("row %lld: offset %.17g though the continuous output already has entropy %.17Lg >= %.17g",
                          (long long)r, c, h0, target);
        }
    }
    if (n_rows > 0) {
        era_bound_report rep;
        double tol = 1e-11 * (1 + fabs(target)) + 1e-12 * (double)n_cols;
        st = vt == TY_F64 ? era_check_continuous_truncated_f64(&cparams, n_rows, n_cols, m, out, lo_arg, hi_arg, tol, &rep)
                          : era_check_continuous_truncated_f32(&cparams, n_rows, n_cols, m, out, lo_arg, hi_arg, tol, &rep);
        if (st == ERA_OK && rep.violations != 0)
            violation("sampled floor missed: %lld rows below H0 + delta = %.17g by up to %.3g (tol %.3g), worst row %lld",
                      (long long)rep.violations, rep.target, rep.max_deficit, tol, (long long)rep.worst_row);
        if (st != ERA_OK && st != ERA_ERR_BAD_PARAMETER)
            violation("era_check_continuous_truncated on the forward's output: status '%s'", status_name(st));
    }
    free(l);
}

/* Directional central difference of the f64 forward pass: sum_i g_i d(out_i)/dt along
 * (ds, dm), t = +-h. */
static int sampled_difference(const double *s, const double *m, const double *ds, const double *dm, const double *g,
                              double h, long double *value) {
    int64_t n = n_rows * n_cols;
    double *sp = malloc((size_t)n * sizeof(double)), *mp = malloc((size_t)n * sizeof(double));
    double *op = malloc((size_t)n * sizeof(double)), *om = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) sp[i] = s[i] + h * ds[i], mp[i] = m[i] + h * dm[i];
    int ok = era_continuous_truncated_forward_f64(&cparams, n_rows, n_cols, sp, mp, lo_arg, hi_arg, op, NULL) == ERA_OK;
    for (int64_t i = 0; i < n; i++) sp[i] = s[i] - h * ds[i], mp[i] = m[i] - h * dm[i];
    ok = ok && era_continuous_truncated_forward_f64(&cparams, n_rows, n_cols, sp, mp, lo_arg, hi_arg, om, NULL) == ERA_OK;
    long double v = 0;
    for (int64_t i = 0; ok && i < n; i++) v += (long double)g[i] * ((long double)op[i] - om[i]) / (2 * h);
    *value = v;
    free(sp); free(mp); free(op); free(om);
    return ok;
}

static void checks_sampled_backward(int vt) {
    const void *s = input(0), *m = input(1), *g = A[2] == A[3] ? input(2) : input(2);
    int64_t n = n_rows * n_cols;
    double gmax = max_abs(g, vt, n);
    for (int64_t i = 0; i < n; i++) {
        double a = get(A[3], vt, i), b = get(A[4], vt, i);
        if (!isfinite(a) || !isfinite(b)) violation("gradient [%lld] = (%g, %g) with status ok", (long long)i, a, b);
    }
    if (A[5])
        for (int64_t r = 0; r < n_rows; r++)
            if (!isfinite(get(A[5], vt, r))) violation("residual gradient [%lld] = %g with status ok", (long long)r, get(A[5], vt, r));
    if (n == 0 || n > 2000) return;
    /* Against central differences of the double forward pass, for moderate arguments away from
     * the kinks (a log std near log_std_min, an offset near 0). */
    double *sd = malloc((size_t)n * sizeof(double)), *md = malloc((size_t)n * sizeof(double));
    double *gd = malloc((size_t)n * sizeof(double)), *dsd = malloc((size_t)n * sizeof(double));
    double *dmd = malloc((size_t)n * sizeof(double)), *out = malloc((size_t)n * sizeof(double));
    double *l = malloc((size_t)n * sizeof(double)), *off = malloc((size_t)n_rows * sizeof(double));
    int moderate = gmax <= 1e6;
    for (int64_t i = 0; i < n; i++) {
        sd[i] = get(s, vt, i), md[i] = get(m, vt, i), gd[i] = get(g, vt, i);
        dsd[i] = ((int)(byte() % 21) - 10) / 10.0, dmd[i] = ((int)(byte() % 21) - 10) / 10.0;
        moderate &= fabs(sd[i]) <= 50 && fabs(md[i]) <= 100;
    }
    moderate &= era_continuous_truncated_forward_f64(&cparams, n_rows, n_cols, sd, md, lo_arg, hi_arg, out, off) == ERA_OK &&
                era_continuous_forward_f64(&cparams, n_rows, n_cols, sd, l) == ERA_OK;
    double span = hi_arg - lo_arg;
    /* The solve stops within 1e-12 (1 + |H0 + delta|) nats above the target (era.h), so c
     * itself is only known to that over the row's slope S = sum_i dH/dL: near the supremum S is
     * tiny and the forward pass's c moves by that much between the two differences. */
    double solve_noise = 0, target_tol = 1e-12 * (1 + fabs(cparams.target_entropy + cparams.residual));
    for (int64_t r = 0; moderate && r < n_rows; r++) {
        if (off[r] > 0 && off[r] < 1e-3) moderate = 0;
        long double h = 0, slope = 0, grow = 0;
        for (int64_t i = r * n_cols; moderate && i < (r + 1) * n_cols; i++) grow += fabs(gd[i]);
        for (int64_t i = r * n_cols; moderate && i < (r + 1) * n_cols; i++) {
            long double e, dm, dl;
            /* clipping at log_std_min (within 1e-3 of it, the difference may cross it) */
            if (l[i] - cparams.log_std_min < 1e-3) moderate = 0;
            if (!ref_trunc_normal(md[i], out[i], &e, &dm, &dl) || fabs(out[i]) > 20 || !(span > 1e-3 * exp(out[i])) ||
                fabsl(dm) > 1e4)
                moderate = 0;
            h += e;
            slope += dl;
        }
        if (moderate && off[r] == 0 && h - (cparams.target_entropy + cparams.residual) < 1e-3) moderate = 0;
        if (moderate && off[r] > 0) solve_noise += slope > 0 ? (double)(grow * target_tol / slope) / 1e-6 : INFINITY;
    }
    if (moderate) {
        long double fd, analytic = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            long double a = (long double)get(A[3], vt, i) * dsd[i], b = (long double)get(A[4], vt, i) * dmd[i];
            analytic += a + b;
            mag += fabsl(a) + fabsl(b) + fabs(gd[i]);
        }
        if (sampled_difference(sd, md, dsd, dmd, gd, 1e-6, &fd)) {
            /* plus the difference quotient's own rounding: the outputs it subtracts are stored
             * to the type's smallest subnormal, divided by the step 2e-6 */
            double quantum = vt == TY_F32 ? 1.401298464324817e-45 : 4.9406564584124654e-324;
            double tol = 2e-4 * (double)mag + (vt == TY_F32 ? 1e-3 * (double)mag : 0) + 4 * (double)n * quantum / 2e-6 +
                         2 * solve_noise;
            if (fabsl(fd - analytic) > tol)
                violation("directional derivative %.12Lg, central difference of the forward pass %.12Lg (tol %.3g)", analytic,
                          fd, tol);
        }
    }
    free(sd); free(md); free(gd); free(dsd); free(dmd); free(out); free(l); free(off);
}

static int setup_sampled_check(int vt) {
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    gen_continuous(&cparams, n_cols);
    gen_interval();
    cpp = byte() < 8 ? NULL : &cparams;
    tol_arg = gen_tol(vt);
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, NULL);
    if (too_big(n_rows, n_cols)) return 0;
    if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET);
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    fill_values(new_array(1, vt, n, 0), vt, n_rows, n_cols);
    new_fixed(2, sizeof(era_bound_report));
    uint8_t b = byte();
    if (b < 8) A[2] = NULL;
    else if (b < 16) A[b % 2] = NULL;
    if (!A[2]) { faults |= F(ERA_ERR_NULL_POINTER); maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET); }
    else {
        sampled_faults();
        if (!faults && !(isfinite(tol_arg) && tol_arg >= 0)) {
            if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER); else faults |= F(ERA_ERR_BAD_PARAMETER);
        }
        if (!shape_bad && !faults) {
            if (n_rows > 0 && (!A[0] || !A[1])) faults |= F(ERA_ERR_NULL_POINTER);
            if (!all_finite(0, vt, n) || !all_finite(1, vt, n)) faults |= F(ERA_ERR_NON_FINITE);
            /* a row entropy that is not a finite double: BAD_PARAMETER */
            else if (A[0] && A[1] && entropy_extreme(ENT_TRUNC, vt, DBL_MAX, 0, 1)) maybe |= F(ERA_ERR_BAD_PARAMETER);
        }
    }
    describe("%s(params=%s{H0=%.17g, delta=%.17g, min=%.17g, max=%.17g}, rows=%lld, dim=%lld, lo=%.17g, hi=%.17g, tol=%g)",
             fn_name[fn], cpp ? "" : "NULL ", cparams.target_entropy, cparams.residual, cparams.log_std_min,
             cparams.log_std_max, (long long)n_rows, (long long)n_cols, lo_arg, hi_arg, tol_arg);
    return 1;
}

static void checks_sampled_check(int vt) {
    era_bound_report rep;
    memcpy(&rep, A[2], sizeof rep);
    double target = cparams.target_entropy + cparams.residual;
    if (rep.rows != n_rows) violation("report rows %lld, expected %lld", (long long)rep.rows, (long long)n_rows);
    if (!(rep.target == target) || !(rep.floor == target))
        violation("report target %.17g, floor %.17g, expected H0 + delta = %.17g", rep.target, rep.floor, target);
    if (n_rows == 0) {
        if (rep.violations != 0 || rep.min_entropy != INFINITY || !isnan(rep.mean_entropy) || rep.max_deficit != 0 ||
            rep.worst_row != -1)
            violation("report of zero rows: violations %lld, min %g, mean %g, deficit %g, worst %lld",
                      (long long)rep.violations, rep.min_entropy, rep.mean_entropy, rep.max_deficit, (long long)rep.worst_row);
        return;
    }
    if (rep.violations < 0 || rep.violations > n_rows || rep.worst_row < 0 || rep.worst_row >= n_rows ||
        !(rep.max_deficit >= 0) || !isfinite(rep.min_entropy) || !isfinite(rep.mean_entropy))
        violation("report: violations %lld, worst row %lld, deficit %g, min %g, mean %g", (long long)rep.violations,
                  (long long)rep.worst_row, rep.max_deficit, rep.min_entropy, rep.mean_entropy);
    /* the plain reference, where every row has one */
    const void *m = input(0), *ls = input(1);
    long double mn = INFINITY, sum = 0, scale = 0;
    int64_t count_lo = 0, count_hi = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        long double h;
        if (!ref_row_entropy(m, ls, vt, r, &h)) return;
        double eps = 1e-12 * (1 + (double)fabsl(h)) + 1e-12 * (double)n_cols;
        scale += 1 + fabsl(h) + (long double)n_cols;
        mn = fminl(mn, h);
        sum += h;
        if (h < (long double)target - tol_arg - eps) count_lo++;
        if (h < (long double)target - tol_arg + eps) count_hi++;
    }
    if (rep.violations < count_lo || rep.violations > count_hi)
        violation("report counts %lld violations, the reference %lld..%lld", (long long)rep.violations,
                  (long long)count_lo, (long long)count_hi);
    double tol = 1e-11 * (double)scale;
    if (fabsl(rep.min_entropy - mn) > tol) violation("report min entropy %.17g, reference %.17Lg", rep.min_entropy, mn);
    if (fabsl(rep.mean_entropy - sum / n_rows) > tol)
        violation("report mean entropy %.17g, reference %.17Lg", rep.mean_entropy, sum / n_rows);
}

/* ---- the tanh-Gaussian entropy gradient and the tanh sampled floor ----------------------
 * era_tanh_gaussian_entropy_backward_*, era_continuous_tanh_forward_* / _backward_*,
 * era_check_continuous_tanh_*. Check order assumed in libera (as the truncated floor's): the
 * continuous parameters, the static feasibility (INFEASIBLE_TARGET if H0 + delta >= dim *
 * 0.6836356...), then the shape, pointers, overlaps and the scan of the inputs, then the rows
 * (INFEASIBLE_TARGET when a row's peak lies below the target; BAD_PARAMETER when a gradient
 * leaves the output type). A row-dependent INFEASIBLE_TARGET is required where a bound on the
 * rows' peaks proves it, and refused after the call where every row's continuous output
 * already reaches the target (checks_refused). */

/* The largest squashed entropy of one dimension: at mean 0, std 0.874400 (60-digit arithmetic,
 * mpmath; era.h: 0.6836356...); targets are also drawn at 0.683648, 1.2e-5 above it. */
#define TANH_PEAK_TRUE 0.68363556359960241194
#define TANH_PEAK_ABOVE 0.683648

/* 20-point Gauss-Legendre rule on [-1, 1], by Newton's method on P_20 (long double). */
#define GL_N 20
static long double gl_x[GL_N], gl_w[GL_N];
static void gl_init(void) {
    if (gl_w[0] != 0) return;
    for (int i = 0; i < GL_N; i++) {
        long double x = cosl(3.14159265358979323846L * (i + 0.75L) / (GL_N + 0.5L)), dp = 1;
        for (int it = 0; it < 100; it++) {
            long double p0 = 1, p1 = x;
            for (int k = 2; k <= GL_N; k++) {
                long double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
                p0 = p1; p1 = p2;
            }
            dp = GL_N * (x * p1 - p0) / (x * x - 1);
            long double step = p1 / dp;
            x -= step;
            if (fabsl(step) < 1e-19L) break;
        }
        gl_x[i] = x;
        gl_w[i] = 2 / ((1 - x * x) * dp * dp);
    }
}

/* The entropy H of tanh(x), x ~ N(mu, e^(2 ls)), one dimension, and dH/dmu = -2 E tanh x,
 * dH/dls = 1 - 2 E[(x - mu) tanh x] (the derivative under the integral, not Stein's form), in
 * long double, by a quadrature of this harness's own:
 *  - std <= 1: the trapezoid rule in e = (x - mu)/std over [-13, 13], step 0.1. The integrands
 *    phi(e) g(mu + std e), g = log(1 - tanh^2), tanh, are analytic in the strip |Im e| < pi/2:
 *    the rule's error is about e^-88 of their size;
 *  - std > 1: log(1 - tanh^2 x) = 2 log 2 - 2|x| - 2 log(1 + e^-2|x|), E|x| and E sign(x) in
 *    closed form (erf), and the parts that decay like e^-2|x| folded onto x >= 0 and integrated
 *    by Gauss-Legendre over 24 unit panels of [0, 24].
 * Returns 0 (no reference) for |ls| > 700 or |mu| > 1e15. */
static int ref_tanh(long double mu, long double ls, long double *h, long double *dm, long double *dl) {
    if (!(fabsl(ls) <= 700) || !(fabsl(mu) <= 1e15L)) return 0;
    const long double LOG4 = 1.38629436111989061883L, RT2PI = 2.50662827463100050242L;
    long double sd = expl(ls), pen = 0, et = 0, ext = 0; /* E log(1 - tanh^2), E tanh, E (x - mu) tanh */
    if (sd <= 1) {
        for (int k = -130; k <= 130; k++) {
            long double e = k * 0.1L, w = 0.1L * expl(-0.5L * e * e) / RT2PI, x = mu + sd * e, ax = fabsl(x);
            long double t = tanhl(x);
            pen += w * (LOG4 - 2 * ax - 2 * log1pl(expl(-2 * ax)));
            et += w * t;
            ext += w * sd * e * t;
        }
    } else {
        gl_init();
        long double z = mu / (sd * 1.41421356237309504880L);
        long double eabs = sd * 0.79788456080286535588L * expl(-z * z) + mu * erfl(z), esgn = erfl(z);
        long double iq = 0, it = 0, ixt = 0;
        for (int p = 0; p < 24; p++)
            for (int i = 0; i < GL_N; i++) {
                long double x = p + 0.5L + 0.5L * gl_x[i], wq = 0.5L * gl_w[i];
                long double up = (x - mu) / sd, dn = (x + mu) / sd;
                long double np = expl(-0.5L * up * up) / (sd * RT2PI), nn = expl(-0.5L * dn * dn) / (sd * RT2PI);
                long double u = expl(-2 * x), q = log1pl(u), one_minus_tanh = 2 * u / (1 + u);
                iq += wq * q * (np + nn);
                it += wq * one_minus_tanh * (np - nn);
                ixt += wq * x * one_minus_tanh * (np + nn);
            }
        pen = LOG4 - 2 * eabs - 2 * iq;
        et = esgn - it;
        ext = (eabs - ixt) - mu * et; /* E x tanh x - mu E tanh x */
    }
    *h = ls + (long double)GAUSS_C + pen;
    *dm = -2 * et;
    *dl = 1 - 2 * ext;
    return 1;
}

/* An upper bound of the squashed entropy of one dimension at mean mu over every std:
 * H <= ls + c + 2 log 2 - 2 max(|mu|, std sqrt(2/pi)) (log(1 - tanh^2 x) <= 2 log 2 - 2|x|, and
 * E|x| >= |mu|, >= std sqrt(2/pi)), maximised over ls. */
static double tanh_peak_bound(double mu) {
    double a = fabs(mu);
    if (a < 0.5) return 1.3379;
    return log(a / 0.79788456080286535588) + GAUSS_C + 1.3862943611198906188 - 2 * a;
}

/* The softmax weights of a row of std_logits, in long double. */
static void tanh_weights(const void *sl, int vt, int64_t r, long double *w) {
    long double mx = -INFINITY, z = 0;
    for (int64_t i = 0; i < n_cols; i++) mx = fmaxl(mx, get(sl, vt, r * n_cols + i));
    for (int64_t i = 0; i < n_cols; i++) z += w[i] = expl((long double)get(sl, vt, r * n_cols + i) - mx);
    for (int64_t i = 0; i < n_cols; i++) w[i] /= z;
}

/* A row of the floor at mean m and log stds ls: its squashed entropy h, its slope in the
 * offset f'(c) = sum_i dH/dls w_i over the entries above log_std_min (w: the row's softmax
 * weights), sum_i |dH/dls| (unweighted: how far the rounding of the stored log stds moves h),
 * max_i |dH/dmu| + |dH/dls|, and the magnitude of the terms; 0 where a dimension has no
 * reference. */
typedef struct { long double h, slope, abs_slope, big, mag; } tanh_row;
static int tanh_row_at(const void *m, const void *ls, int vt, int64_t r, const long double *w, tanh_row *t) {
    memset(t, 0, sizeof *t);
    for (int64_t i = r * n_cols; i < (r + 1) * n_cols; i++) {
        long double h, dm, dl, mu = get(m, vt, i), l = get(ls, vt, i);
        if (!ref_tanh(mu, l, &h, &dm, &dl)) return 0;
        t->h += h;
        if (w && l > cparams.log_std_min) t->slope += dl * w[i - r * n_cols];
        t->abs_slope += fabsl(dl);
        t->big = fmaxl(t->big, fabsl(dm) + fabsl(dl));
        t->mag += fabsl(l) + GAUSS_C + 2 * fabsl(mu) + 2 * expl(l);
    }
    return 1;
}

static int tanh_verify;     /* a row-dependent INFEASIBLE_TARGET is to be verified after the call */

/* The continuous parameter faults and the static feasibility of the tanh floor. */
static void tanh_static_faults(int check) {
    unsigned *fa = shape_bad ? &maybe : &faults;
    unsigned before = *fa;
    continuous_faults(cpp, n_cols, fa, &maybe);
    if (*fa != before) return;
    double target = cparams.target_entropy + cparams.residual, d = (double)n_cols;
    double truth = d * TANH_PEAK_TRUE;
    (void)check;
    /* log_std_max > 709.78: a std of exp(log_std_max) overflows double (era.h), checked first */
    if (!isfinite(exp(cparams.log_std_max))) {
        *fa |= F(ERA_ERR_BAD_PARAMETER);
        return;
    }
    if (near_boundary(target, truth, 1e-9)) maybe |= F(ERA_ERR_INFEASIBLE_TARGET);
    else if (target >= truth) *fa |= F(ERA_ERR_INFEASIBLE_TARGET);
}

static int setup_tanh_backward(int vt) {
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, es);
    if (too_big(n_rows, n_cols)) return 0;
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    fill_values(new_array(1, vt, n, 0), vt, n_rows, n_cols);
    fill_values(new_array(2, vt, shape_bad ? 0 : n_rows, 0), vt, n_rows, 1);
    new_array(3, vt, n, 1);
    new_array(4, vt, n, 1);
    uint8_t a = byte();
    if (a < 48) alias(3, 0); /* out_grad_mean == mean */
    if (a % 3 == 0) alias(4, 1); /* out_grad_log_std == log_std */
    maybe_null(5);
    if (!shape_bad) {
        if (n_rows > 0 && (!A[0] || !A[1] || !A[2] || !A[3] || !A[4])) faults |= F(ERA_ERR_NULL_POINTER);
        if (!all_finite(0, vt, n) || !all_finite(1, vt, n) || !all_finite(2, vt, n_rows)) faults |= F(ERA_ERR_NON_FINITE);
        /* era.h: BAD_PARAMETER when a gradient cannot be represented in the output type:
         * |dH/dmu| <= 2 and |dH/dls| <= 1 + 2 std^2 min(1, 0.8/std) (E sech^2 <= the density's
         * largest value times the integral of sech^2, 2): allowed where the bound times the
         * upstream gradient nears the type's range, or where std overflows double */
        if (!faults && A[1] && A[2]) {
            for (int64_t i = 0; i < n; i++) {
                double g = fabs(get(A[2], vt, i / n_cols)), ls = get(A[1], vt, i);
                double sd = exp(fmin(ls, 800.0)), bound = 3 + fmin(2 * sd * sd, 1.6 * sd);
                if (ls > 700 || g * bound > type_max(vt) / 64 || g > type_max(vt) / 64) maybe |= F(ERA_ERR_BAD_PARAMETER);
            }
        }
    }
    describe("%s(rows=%lld, dim=%lld, in_place=%d%d)", fn_name[fn], (long long)n_rows, (long long)n_cols,
             A[3] && A[3] == A[0], A[4] && A[4] == A[1]);
    return 1;
}

static void checks_tanh_backward(int vt) {
    const void *m = input(0), *ls = input(1), *g = input(2);
    int64_t n = n_rows * n_cols;
    for (int64_t i = 0; i < n; i++) {
        double gm = get(A[3], vt, i), gl = get(A[4], vt, i);
        if (!isfinite(gm) || !isfinite(gl)) violation("entropy gradient [%lld] = (%g, %g) with status ok", (long long)i, gm, gl);
        if (i >= 256) continue; /* the reference on the first 256 entries */
        long double h, dm, dl, gr = get(g, vt, i / n_cols);
        if (!ref_tanh(get(m, vt, i), get(ls, vt, i), &h, &dm, &dl)) continue;
        /* era.h: the expectations in double within about 1e-14 a dimension; dH/dls is formed as
         * 1 - 2 std^2 E sech^2, whose rounding is relative to its terms */
        long double sd = expl((long double)get(ls, vt, i));
        double tm = (double)(fabsl(gr) * (1e-12L * (1 + fabsl(dm)))) + 2 * type_eps(vt) * (double)fabsl(gr * dm) + 1e-300;
        double tl = (double)(fabsl(gr) * (1e-12L * (1 + fabsl(dl) + fminl(2 * sd * sd, 2 * sd)))) +
                    2 * type_eps(vt) * (double)fabsl(gr * dl) + 1e-300;
        if (vt == TY_F32) tm += 1.5e-45, tl += 1.5e-45;
        expect_close(gm, gr * dm, tm, vt, "tanh-Gaussian dH/dmean", i);
        expect_close(gl, gr * dl, tl, vt, "tanh-Gaussian dH/dlog_std", i);
    }
}

/* The continuous output l of the floor's std_logits (slot 0), as libera computes it. */
static void *tanh_plain(int vt, const void *s) {
    int64_t n = n_rows * n_cols;
    void *l = malloc(n ? (size_t)n * type_size[vt] : 1);
    era_status st = vt == TY_F64 ? era_continuous_forward_f64(&cparams, n_rows, n_cols, s, l)
                                 : era_continuous_forward_f32(&cparams, n_rows, n_cols, s, l);
    if (st != ERA_OK) violation("era_continuous_forward on the same arguments: status '%s'", status_name(st));
    return l;
}

static int setup_tanh_floor(int vt) {
    int backward = fn == FN_THB_F32 || fn == FN_THB_F64;
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    gen_continuous(&cparams, n_cols);
    /* targets near the peak (dim * 0.68364) and near the rows' own peaks as well */
    uint8_t t = byte();
    if (t >= 200 && n_cols >= 1) {
        static const double below[] = {1, 0.1, 1e-3, 1e-6, 1e-9, 0, -1e-6, 0.5, 2, 5};
        double peak = t & 1 ? TANH_PEAK_TRUE : TANH_PEAK_ABOVE;
        cparams.target_entropy = (double)n_cols * peak - PICK(below) * (double)n_cols - cparams.residual;
    }
    cpp = byte() < 8 ? NULL : &cparams;
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, es);
    if (too_big(n_rows, n_cols)) return 0;
    if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET) | F(ERA_ERR_NULL_POINTER);
    tanh_verify = 0;
    tanh_static_faults(0);
    int static_clean = !shape_bad && cpp && !faults && !(maybe & F(ERA_ERR_INFEASIBLE_TARGET));
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    fill_values(new_array(1, vt, n, 0), vt, n_rows, n_cols);
    if (!backward) {
        new_array(2, vt, n, 1);
        new_array(3, vt, shape_bad ? 0 : n_rows, 1);
        uint8_t a = byte();
        if (a < 64) alias(2, 0); /* out_log_std == std_logits */
        if (a % 4 == 1) A[3] = NULL; /* the offsets are optional */
        maybe_null(3);
    } else {
        fill_values(new_array(2, vt, n, 0), vt, n_rows, n_cols);
        new_array(3, vt, n, 1);
        new_array(4, vt, n, 1);
        new_array(5, vt, shape_bad ? 0 : n_rows, 1);
        uint8_t a = byte();
        if (a < 40) alias(3, 0); /* out_grad_std_logits == std_logits */
        else if (a < 80) alias(3, 2); /* == grad_log_std */
        if (a % 3 == 0) alias(4, 1); /* out_grad_mean == mean */
        if (a % 5 == 1) A[5] = NULL; /* the residual gradient is optional */
        maybe_null(5);
    }
    if (!shape_bad && !faults) {
        if (n_rows > 0 && (!A[0] || !A[1] || !A[2] || (backward && (!A[3] || !A[4])))) faults |= F(ERA_ERR_NULL_POINTER);
        if (!all_finite(0, vt, n) || !all_finite(1, vt, n) || (backward && !all_finite(2, vt, n)))
            faults |= F(ERA_ERR_NON_FINITE);
    }
    int inputs_ok = !shape_bad && n_rows > 0 && A[0] && A[1] && all_finite(0, vt, n) && all_finite(1, vt, n);
    if (inputs_ok && static_clean && !(faults & ~F(ERA_ERR_NON_FINITE))) {
        /* the rows: INFEASIBLE_TARGET where a row's peak lies below the target. Proven here
         * by the bound of tanh_peak_bound; otherwise allowed and verified after the call. */
        double target = cparams.target_entropy + cparams.residual, margin = 1e-9 * (1 + fabs(target));
        int proven = 0;
        for (int64_t r = 0; r < n_rows && !proven; r++) {
            double bound = 0;
            for (int64_t i = r * n_cols; i < (r + 1) * n_cols; i++) bound += tanh_peak_bound(get(A[1], vt, i));
            if (bound < target - margin) proven = 1;
        }
        maybe |= F(ERA_ERR_INFEASIBLE_TARGET);
        if (proven && !faults) faults |= F(ERA_ERR_INFEASIBLE_TARGET);
        tanh_verify = static_clean;
        /* and BAD_PARAMETER when a gradient cannot be represented in the output type: with
         * S = sum_i dH/dls w_i over the unclipped entries and G' = sum_i g_i w_i (|G'| <= max|g|),
         * |dL/dmean| <= 2|G'/S| and the continuous backward of g - (G'/S) H_L is at most
         * 2 |K + c| max|g| (1 + max|H_L|/|S|): G'/S grows without bound near a row's peak.
         * Allowed where the double forward pass's rows leave the reference (or its budget), or
         * where that bound is large */
        if (backward) {
            double *s = malloc((size_t)n * sizeof(double)), *m = malloc((size_t)n * sizeof(double));
            double *out = malloc((size_t)n * sizeof(double)), *off = malloc((size_t)n_rows * sizeof(double));
            long double *w = malloc((size_t)n_cols * sizeof(long double));
            for (int64_t i = 0; i < n; i++) s[i] = get(A[0], vt, i), m[i] = get(A[1], vt, i);
            era_status st = era_continuous_tanh_forward_f64(&cparams, n_rows, n_cols, s, m, out, off);
            double k = continuous_k(&cparams, n_cols), gmax = A[2] && all_finite(2, vt, n) ? max_abs(A[2], vt, n) : 0;
            if (st != ERA_OK) maybe |= F(st) | F(ERA_ERR_BAD_PARAMETER);
            int64_t budget = 256; /* dimensions held to the reference */
            for (int64_t r = 0; r < n_rows && st == ERA_OK; r++) {
                tanh_row tr;
                tanh_weights(s, TY_F64, r, w);
                if (budget < n_cols || !tanh_row_at(m, out, TY_F64, r, w, &tr)) { /* beyond the budget: allowed */
                    maybe |= F(ERA_ERR_BAD_PARAMETER);
                    break;
                }
                budget -= n_cols;
                double slope = fabs((double)tr.slope);
                double bound = slope > 0 ? gmax * (3 + (double)tr.big / slope) * (1 + 2 * fabs(k + off[r])) : INFINITY;
                if (off[r] == 0) bound = gmax * (1 + 2 * fabs(k)) * (double)n_cols;
                if (!(bound < type_max(vt) / 64) || (off[r] != 0 && !(slope > 1e-6 * (1 + (double)tr.abs_slope))))
                    maybe |= F(ERA_ERR_BAD_PARAMETER);
            }
            free(s); free(m); free(out); free(off); free(w);
        }
    }
    describe("%s(params=%s{H0=%.17g, delta=%.17g, min=%.17g, max=%.17g}, rows=%lld, dim=%lld)", fn_name[fn],
             cpp ? "" : "NULL ", cparams.target_entropy, cparams.residual, cparams.log_std_min, cparams.log_std_max,
             (long long)n_rows, (long long)n_cols);
    return 1;
}

/* After INFEASIBLE_TARGET from the floor with a statically feasible target: not every row may
 * already reach the target at c = 0 (the continuous output), where c = 0 is the answer. */
static void checks_refused(era_status st) {
    if (st != ERA_ERR_INFEASIBLE_TARGET || !tanh_verify) return;
    if (fn != FN_THF_F32 && fn != FN_THF_F64 && fn != FN_THB_F32 && fn != FN_THB_F64) return;
    if (n_rows * n_cols > 256) return; /* the reference's budget */
    int vt = vt_of(fn);
    const void *m = input(1);
    void *l = tanh_plain(vt, input(0));
    double target = cparams.target_entropy + cparams.residual;
    int reached = 1;
    for (int64_t r = 0; r < n_rows && reached; r++) {
        tanh_row t;
        if (!tanh_row_at(m, l, vt, r, NULL, &t)) { reached = 0; break; }
        double tol = 1e-9 * (1 + fabs(target)) + 1e-12 * (double)n_cols + 1e-15 * (double)t.mag;
        if (!(t.h >= (long double)target + tol)) reached = 0;
    }
    free(l);
    if (reached)
        violation("INFEASIBLE_TARGET, but every row's continuous output already reaches H0 + delta = %.17g", target);
}

static void checks_tanh_forward(int vt) {
    const void *s = input(0), *m = input(1), *out = A[2], *off = A[3];
    void *l = tanh_plain(vt, s);
    double target = cparams.target_entropy + cparams.residual, k = continuous_k(&cparams, n_cols);
    double lmin = cparams.log_std_min, lmax = cparams.log_std_max;
    if (vt == TY_F32) lmax = (float)lmax < lmax ? nextafterf((float)lmax, INFINITY) : (float)lmax; /* rounded up */
    long double *w = malloc((size_t)(n_cols > 0 ? n_cols : 1) * sizeof(long double));
    int64_t budget = 256; /* dimensions held to the reference */
    for (int64_t r = 0; r < n_rows; r++) {
        int64_t base = r * n_cols;
        int shifted = 0, up = 0;
        double mx = 0;
        for (int64_t i = base; i < base + n_cols; i++) {
            double o = get(out, vt, i), li = get(l, vt, i);
            if (!isfinite(o) || o < lmin || o > lmax)
                violation("log std [%lld] = %.17g outside [log_std_min, log_std_max] = [%.17g, %.17g]", (long long)i, o, lmin, lmax);
            shifted |= o != li;
            up |= o > li;
            mx = fmax(mx, fabs(o));
        }
        double c = off ? get(off, vt, r) : shifted ? (up ? 1 : -1) : 0; /* without out_offset only its sign */
        if (!isfinite(c)) violation("offset of row %lld = %g", (long long)r, c);
        /* (a float32 offset below the smallest subnormal is stored as 0) */
        if (c == 0 && shifted && vt == TY_F64)
            violation("row %lld: offset 0 but the log stds differ from the continuous output", (long long)r);
        if (!shifted) c = 0; /* a tiny offset may leave every stored value as it was */
        tanh_weights(s, vt, r, w);
        if (off && c != 0) {
            /* out = l(c) = max(log_std_max + (K + c) w_i, log_std_min), rounded up in float32; c as
             * stored is rounded to nearest; K + c <= 0 */
            if (k + c > 4 * type_eps(vt) * (fabs(k) + fabs(c)))
                violation("row %lld: offset %.17g beyond -K = %.17g (the stds all at log_std_max)", (long long)r, c, -k);
            for (int64_t i = base; i < base + n_cols; i++) {
                long double wi = w[i - base], want = fmaxl(cparams.log_std_max + ((long double)k + c) * wi, lmin);
                double o = get(out, vt, i);
                double tol = 4 * type_eps(vt) * (fabs(o) + fabs(cparams.log_std_max) + (double)(fabsl((long double)k + c) * wi) +
                                                 (double)(fabsl((long double)c) * wi) + fabs(k) * (double)wi) +
                             (vt == TY_F32 ? 1.5e-45 : 5e-324);
                if (fabsl(o - want) > tol)
                    violation("log std [%lld] = %.17g, but l(c) = max(%.17g + (K + c) w, %.17g) = %.17Lg (K = %.17g, c = %.17g, w = %.17Lg)",
                              (long long)i, o, cparams.log_std_max, lmin, want, k, c, wi);
            }
        }
        /* the floor holds at the stored values; a shifted row sits at the root nearest 0 */
        if (budget < n_cols) continue;
        budget -= n_cols;
        tanh_row at, at0;
        if (!tanh_row_at(m, out, vt, r, w, &at) || !tanh_row_at(m, l, vt, r, w, &at0)) continue;
        double floor_tol = 1e-11 * (1 + fabs(target)) + 1e-12 * (double)n_cols + 1e-15 * (double)at.mag;
        if (at.h < (long double)target - floor_tol)
            violation("row %lld: squashed entropy %.17Lg below H0 + delta = %.17g (reference; c = %.17g)", (long long)r, at.h,
                      target, c);
        if (c == 0) continue;
        /* the solve stops within 1e-12 (1 + |target|) above the target, or where the stored log
         * stds (rounded up in float32) first reach it: each moves H by |dH/dls| ulp */
        double above = 2e-12 * (1 + fabs(target)) + floor_tol + 8 * type_eps(vt) * (mx + 1) * (double)(at.abs_slope + 1);
        if (at.h > (long double)target + above)
            violation("row %lld: offset %.17g lifts the squashed entropy to %.17Lg, above H0 + delta = %.17g by more than %.3g",
                      (long long)r, c, at.h, target, above);
        if (at0.h >= (long double)target + floor_tol)
            violation("row %lld: offset %.17g though the continuous output already has squashed entropy %.17Lg >= %.17g",
                      (long long)r, c, at0.h, target);
        /* era.h: the smallest c > 0 or the largest c < 0 with f(c) >= 0: f crosses the target
         * towards 0 there (rising with c for c > 0, falling for c < 0), so a slope of the other
         * sign means a farther root; near a peak the slope is small */
        double flat = 1e-6 * (1 + (double)at.abs_slope);
        if ((c > 0 && at.slope < -flat) || (c < 0 && at.slope > flat))
            violation("row %lld: offset %.17g reaches the far root (slope %.6Lg there, beyond the peak)", (long long)r, c, at.slope);
    }
    free(w);
    if (n_rows > 0) {
        era_bound_report rep;
        double tol = 1e-11 * (1 + fabs(target)) + 1e-12 * (double)n_cols;
        era_status st = vt == TY_F64 ? era_check_continuous_tanh_f64(&cparams, n_rows, n_cols, m, out, tol, &rep)
                                     : era_check_continuous_tanh_f32(&cparams, n_rows, n_cols, m, out, tol, &rep);
        if (st == ERA_OK && rep.violations != 0)
            violation("tanh floor missed: %lld rows below H0 + delta = %.17g by up to %.3g (tol %.3g), worst row %lld",
                      (long long)rep.violations, rep.target, rep.max_deficit, tol, (long long)rep.worst_row);
        if (st != ERA_OK && st != ERA_ERR_BAD_PARAMETER)
            violation("era_check_continuous_tanh on the forward's output: status '%s'", status_name(st));
    }
    free(l);
}

/* Directional central difference of the f64 tanh floor: sum_i g_i d(out_i)/dt along (ds, dm). */
static int tanh_difference(const double *s, const double *m, const double *ds, const double *dm, const double *g,
                           double h, long double *value) {
    int64_t n = n_rows * n_cols;
    double *sp = malloc((size_t)n * sizeof(double)), *mp = malloc((size_t)n * sizeof(double));
    double *op = malloc((size_t)n * sizeof(double)), *om = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) sp[i] = s[i] + h * ds[i], mp[i] = m[i] + h * dm[i];
    int ok = era_continuous_tanh_forward_f64(&cparams, n_rows, n_cols, sp, mp, op, NULL) == ERA_OK;
    for (int64_t i = 0; i < n; i++) sp[i] = s[i] - h * ds[i], mp[i] = m[i] - h * dm[i];
    ok = ok && era_continuous_tanh_forward_f64(&cparams, n_rows, n_cols, sp, mp, om, NULL) == ERA_OK;
    long double v = 0;
    for (int64_t i = 0; ok && i < n; i++) v += (long double)g[i] * ((long double)op[i] - om[i]) / (2 * h);
    *value = v;
    free(sp); free(mp); free(op); free(om);
    return ok;
}

static void checks_tanh_floor_backward(int vt) {
    const void *s = input(0), *m = input(1), *g = input(2);
    int64_t n = n_rows * n_cols;
    double gmax = max_abs(g, vt, n);
    for (int64_t i = 0; i < n; i++) {
        double a = get(A[3], vt, i), b = get(A[4], vt, i);
        if (!isfinite(a) || !isfinite(b)) violation("gradient [%lld] = (%g, %g) with status ok", (long long)i, a, b);
    }
    if (A[5])
        for (int64_t r = 0; r < n_rows; r++)
            if (!isfinite(get(A[5], vt, r))) violation("residual gradient [%lld] = %g with status ok", (long long)r, get(A[5], vt, r));
    if (n == 0 || n > 256) return;
    /* Against central differences of the double forward pass, for moderate arguments away from
     * the kinks (a log std near log_std_min, an offset near 0) and from the rows' peaks. */
    double *sd = malloc((size_t)n * sizeof(double)), *md = malloc((size_t)n * sizeof(double));
    double *gd = malloc((size_t)n * sizeof(double)), *dsd = malloc((size_t)n * sizeof(double));
    double *dmd = malloc((size_t)n * sizeof(double)), *out = malloc((size_t)n * sizeof(double));
    double *l = malloc((size_t)n * sizeof(double)), *off = malloc((size_t)n_rows * sizeof(double));
    int moderate = gmax <= 1e6;
    for (int64_t i = 0; i < n; i++) {
        sd[i] = get(s, vt, i), md[i] = get(m, vt, i), gd[i] = get(g, vt, i);
        dsd[i] = ((int)(byte() % 21) - 10) / 10.0, dmd[i] = ((int)(byte() % 21) - 10) / 10.0;
        moderate &= fabs(sd[i]) <= 50 && fabs(md[i]) <= 20;
    }
    moderate &= era_continuous_tanh_forward_f64(&cparams, n_rows, n_cols, sd, md, out, off) == ERA_OK &&
                era_continuous_forward_f64(&cparams, n_rows, n_cols, sd, l) == ERA_OK;
    double target = cparams.target_entropy + cparams.residual, k = continuous_k(&cparams, n_cols);
    long double *w = malloc((size_t)n_cols * sizeof(long double));
    for (int64_t r = 0; moderate && r < n_rows; r++) {
        if (off[r] != 0 && fabs(off[r]) < 1e-3) moderate = 0;
        tanh_weights(sd, TY_F64, r, w);
        for (int64_t i = r * n_cols; moderate && i < (r + 1) * n_cols; i++) {
            /* away from the clipping point of l(c)_i (within 1e-3, the difference may cross it) */
            long double free_ = cparams.log_std_max + ((long double)k + off[r]) * w[i - r * n_cols] - cparams.log_std_min;
            if (fabsl(free_) < 1e-3L || fabs(out[i]) > 8 || fabs(l[i]) > 8) moderate = 0;
        }
        tanh_row t;
        if (!moderate || !tanh_row_at(md, out, TY_F64, r, w, &t)) { moderate = 0; break; }
        if (off[r] == 0 && t.h - target < 1e-3) moderate = 0;    /* c = 0 rows well above the target */
        if (off[r] != 0 && fabsl(t.slope) < 1e-2L) moderate = 0; /* away from the peak */
        if (off[r] != 0 && -(k + off[r]) < 1e-3) moderate = 0;   /* away from c = -K */
    }
    free(w);
    if (moderate) {
        long double fd, analytic = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            long double a = (long double)get(A[3], vt, i) * dsd[i], b = (long double)get(A[4], vt, i) * dmd[i];
            analytic += a + b;
            mag += fabsl(a) + fabsl(b) + fabs(gd[i]);
        }
        if (tanh_difference(sd, md, dsd, dmd, gd, 1e-6, &fd)) {
            double quantum = vt == TY_F32 ? 1.401298464324817e-45 : 4.9406564584124654e-324;
            double tol = 2e-4 * (double)mag + (vt == TY_F32 ? 1e-3 * (double)mag : 0) + 4 * (double)n * quantum / 2e-6;
            if (fabsl(fd - analytic) > tol)
                violation("directional derivative %.12Lg, central difference of the forward pass %.12Lg (tol %.3g)", analytic,
                          fd, tol);
        }
    }
    free(sd); free(md); free(gd); free(dsd); free(dmd); free(out); free(l); free(off);
}

static int setup_tanh_check(int vt) {
    tanh_verify = 0;
    n_rows = gen_size(64);
    n_cols = gen_size(300);
    gen_continuous(&cparams, n_cols);
    uint8_t t = byte();
    if (t >= 200 && n_cols >= 1)
        cparams.target_entropy = (double)n_cols * (t & 1 ? TANH_PEAK_TRUE : TANH_PEAK_ABOVE) - cparams.residual;
    cpp = byte() < 8 ? NULL : &cparams;
    tol_arg = gen_tol(vt);
    int64_t es[] = {(int64_t)type_size[vt], 0};
    shape_faults(n_rows, n_cols, 1, es, NULL);
    if (too_big(n_rows, n_cols)) return 0;
    if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET);
    int64_t n = shape_bad ? 0 : n_rows * n_cols;
    fill_values(new_array(0, vt, n, 0), vt, n_rows, n_cols);
    fill_values(new_array(1, vt, n, 0), vt, n_rows, n_cols);
    new_fixed(2, sizeof(era_bound_report));
    uint8_t b = byte();
    if (b < 8) A[2] = NULL;
    else if (b < 16) A[b % 2] = NULL;
    if (!A[2]) { faults |= F(ERA_ERR_NULL_POINTER); maybe |= F(ERA_ERR_BAD_PARAMETER) | F(ERA_ERR_INFEASIBLE_TARGET); }
    else {
        tanh_static_faults(1);
        if (!faults && !(isfinite(tol_arg) && tol_arg >= 0)) {
            if (shape_bad) maybe |= F(ERA_ERR_BAD_PARAMETER); else faults |= F(ERA_ERR_BAD_PARAMETER);
        }
        if (!shape_bad && !faults) {
            if (n_rows > 0 && (!A[0] || !A[1])) faults |= F(ERA_ERR_NULL_POINTER);
            if (!all_finite(0, vt, n) || !all_finite(1, vt, n)) faults |= F(ERA_ERR_NON_FINITE);
            /* a row entropy that is not a finite double: BAD_PARAMETER */
            else if (A[0] && A[1] && entropy_extreme(ENT_TANH, vt, DBL_MAX, 0, 1)) maybe |= F(ERA_ERR_BAD_PARAMETER);
        }
    }
    describe("%s(params=%s{H0=%.17g, delta=%.17g, min=%.17g, max=%.17g}, rows=%lld, dim=%lld, tol=%g)", fn_name[fn],
             cpp ? "" : "NULL ", cparams.target_entropy, cparams.residual, cparams.log_std_min, cparams.log_std_max,
             (long long)n_rows, (long long)n_cols, tol_arg);
    return 1;
}

static void checks_tanh_check(int vt) {
    era_bound_report rep;
    memcpy(&rep, A[2], sizeof rep);
    double target = cparams.target_entropy + cparams.residual;
    if (rep.rows != n_rows) violation("report rows %lld, expected %lld", (long long)rep.rows, (long long)n_rows);
    if (!(rep.target == target) || !(rep.floor == target))
        violation("report target %.17g, floor %.17g, expected H0 + delta = %.17g", rep.target, rep.floor, target);
    if (n_rows == 0) {
        if (rep.violations != 0 || rep.min_entropy != INFINITY || !isnan(rep.mean_entropy) || rep.max_deficit != 0 ||
            rep.worst_row != -1)
            violation("report of zero rows: violations %lld, min %g, mean %g, deficit %g, worst %lld",
                      (long long)rep.violations, rep.min_entropy, rep.mean_entropy, rep.max_deficit, (long long)rep.worst_row);
        return;
    }
    if (rep.violations < 0 || rep.violations > n_rows || rep.worst_row < 0 || rep.worst_row >= n_rows ||
        !(rep.max_deficit >= 0) || !isfinite(rep.min_entropy) || !isfinite(rep.mean_entropy))
        violation("report: violations %lld, worst row %lld, deficit %g, min %g, mean %g", (long long)rep.violations,
                  (long long)rep.worst_row, rep.max_deficit, rep.min_entropy, rep.mean_entropy);
    /* the reference, where every row has one (and within a budget) */
    if (n_rows * n_cols > 256) return;
    const void *m = input(0), *ls = input(1);
    long double mn = INFINITY, sum = 0, scale = 0;
    int64_t count_lo = 0, count_hi = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        tanh_row t;
        if (!tanh_row_at(m, ls, vt, r, 0, &t)) return;
        double eps = 1e-12 * (1 + (double)fabsl(t.h)) + 1e-12 * (double)n_cols + 1e-15 * (double)t.mag;
        scale += 1 + fabsl(t.h) + (long double)n_cols + 1e-4L * t.mag;
        mn = fminl(mn, t.h);
        sum += t.h;
        if (t.h < (long double)target - tol_arg - eps) count_lo++;
        if (t.h < (long double)target - tol_arg + eps) count_hi++;
    }
    if (rep.violations < count_lo || rep.violations > count_hi)
        violation("report counts %lld violations, the reference %lld..%lld", (long long)rep.violations,
                  (long long)count_lo, (long long)count_hi);
    double tol = 1e-11 * (double)scale;
    if (fabsl(rep.min_entropy - mn) > tol) violation("report min entropy %.17g, reference %.17Lg", rep.min_entropy, mn);
    if (fabsl(rep.mean_entropy - sum / n_rows) > tol)
        violation("report mean entropy %.17g, reference %.17Lg", rep.mean_entropy, sum / n_rows);
}

/* ---- one input ------------------------------------------------------------------------ */

static int setup(void) {
    int vt = vt_of(fn);
    switch (fn) {
    case FN_SOFTMAX_F32: case FN_SOFTMAX_F64: case FN_GAUSS_F32: case FN_GAUSS_F64: case FN_TANH_F32: case FN_TANH_F64:
    case FN_TRUNC_F32: case FN_TRUNC_F64: return setup_entropy(vt);
    case FN_CFWD_F32: case FN_CFWD_F64: case FN_CBWD_F32: case FN_CBWD_F64: return setup_continuous(vt);
    case FN_DFLOOR: case FN_DINF: case FN_DCONST: return setup_query();
    case FN_DFWD_F32: case FN_DFWD_F64: case FN_DBWD_F32: case FN_DBWD_F64: return setup_discrete(vt);
    case FN_CHKD_F32: case FN_CHKD_F64: case FN_CHKC_F32: case FN_CHKC_F64: return setup_check(vt);
    case FN_TOK_F32: case FN_TOK_F64: case FN_TOK_BF16: return setup_token_entropy(vt);
    case FN_RESP: return setup_response_entropy();
    case FN_SCALES: return setup_scales();
    case FN_LINF: case FN_LINB: return setup_linear_llm();
    case FN_LCE: return setup_linear_ce();
    case FN_TNS_F32: case FN_TNS_F64: case FN_TNSB_F32: case FN_TNSB_F64: case FN_TNLP_F32: case FN_TNLP_F64:
    case FN_TNLPB_F32: case FN_TNLPB_F64: return setup_truncnorm(vt);
    case FN_TNB_F32: case FN_TNB_F64: return setup_tn_backward(vt);
    case FN_SFF_F32: case FN_SFF_F64: case FN_SFB_F32: case FN_SFB_F64: return setup_sampled(vt);
    case FN_CHKT_F32: case FN_CHKT_F64: return setup_sampled_check(vt);
    case FN_TGB_F32: case FN_TGB_F64: return setup_tanh_backward(vt);
    case FN_THF_F32: case FN_THF_F64: case FN_THB_F32: case FN_THB_F64: return setup_tanh_floor(vt);
    case FN_CHKH_F32: case FN_CHKH_F64: return setup_tanh_check(vt);
    default: return setup_logprob(vt);
    }
}

static void checks(void) {
    int vt = vt_of(fn);
    switch (fn) {
    case FN_SOFTMAX_F32: case FN_SOFTMAX_F64: case FN_GAUSS_F32: case FN_GAUSS_F64: case FN_TANH_F32: case FN_TANH_F64:
    case FN_TRUNC_F32: case FN_TRUNC_F64: checks_entropy(vt); break;
    case FN_CFWD_F32: case FN_CFWD_F64: case FN_CBWD_F32: case FN_CBWD_F64: checks_continuous(vt); break;
    case FN_DFLOOR: case FN_DINF: case FN_DCONST: checks_query(); break;
    case FN_DFWD_F32: case FN_DFWD_F64: case FN_DBWD_F32: case FN_DBWD_F64: checks_discrete(vt); break;
    case FN_CHKD_F32: case FN_CHKD_F64: case FN_CHKC_F32: case FN_CHKC_F64: checks_check(vt); break;
    case FN_TOK_F32: case FN_TOK_F64: case FN_TOK_BF16: checks_token_entropy(vt); break;
    case FN_RESP: checks_response_entropy(); break;
    case FN_SCALES: checks_scales(); break;
    case FN_LINF: case FN_LINB: checks_linear_llm(); break;
    case FN_LCE: checks_linear_ce(); break;
    case FN_TNS_F32: case FN_TNS_F64: case FN_TNSB_F32: case FN_TNSB_F64: case FN_TNLP_F32: case FN_TNLP_F64:
    case FN_TNLPB_F32: case FN_TNLPB_F64: checks_truncnorm(vt); break;
    case FN_TNB_F32: case FN_TNB_F64: checks_tn_backward(vt); break;
    case FN_SFF_F32: case FN_SFF_F64: checks_sampled_forward(vt); break;
    case FN_SFB_F32: case FN_SFB_F64: checks_sampled_backward(vt); break;
    case FN_CHKT_F32: case FN_CHKT_F64: checks_sampled_check(vt); break;
    case FN_TGB_F32: case FN_TGB_F64: checks_tanh_backward(vt); break;
    case FN_THF_F32: case FN_THF_F64: checks_tanh_forward(vt); break;
    case FN_THB_F32: case FN_THB_F64: checks_tanh_floor_backward(vt); break;
    case FN_CHKH_F32: case FN_CHKH_F64: checks_tanh_check(vt); break;
    default: checks_logprob(vt); break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    in_data = data;
    in_size = size;
    in_pos = 0;
    in_rng = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < size; i++) in_rng = (in_rng ^ data[i]) * 0x100000001B3ull;
    if (!in_rng) in_rng = 1;

    fn = fn_of_byte(byte());
    uint8_t knobs = byte();
    int threads = 1 + (knobs & 3);
    int rerun = (knobs & 0x1C) == 0x1C;  /* 1 in 8: repeat with another thread count */
    era_set_num_threads(threads);
    if (fn >= FN_THREADS && fn <= FN_INIT) { run_misc(); return 0; }

    faults = maybe = 0;
    shape_bad = 0;
    topk_on = 0;
    n_topk = 0;
    n_rows = n_cols = n_resp = n_dim = 0;
    lo_arg = hi_arg = tol_arg = 0;
    dp = NULL; cpp = NULL; lp = NULL;
    memset(&dparams, 0, sizeof dparams);
    memset(&cparams, 0, sizeof cparams);
    memset(&lparams, 0, sizeof lparams);
    if (!setup()) { release_all(); return 0; }
    snapshot();

    static int trace = -1;
    if (trace < 0) trace = getenv("FUZZ_TRACE") != NULL;
    if (trace) { /* FUZZ_TRACE=1: each call and its arrays before it runs (for a hang), then its status */
        fprintf(stderr, "call: %s\n", call_text);
        dump_arrays();
    }
    era_status st = invoke();
    if (trace) {
        char f[200], m[200];
        faults_text(f, sizeof f, faults);
        faults_text(m, sizeof m, maybe);
        fprintf(stderr, "status: %s (faults {%s}, maybe {%s})\n", status_name(st), f, m);
    }
    check_status(st);
    check_buffers(st);
    if (st == ERA_OK) checks();
    else checks_refused(st);

    if (rerun) {
        for (int i = 0; i < NBUF; i++) {
            if (!B[i].p) continue;
            B[i].after = malloc(B[i].bytes ? B[i].bytes : 1);
            memcpy(B[i].after, B[i].p, B[i].bytes);
            memcpy(B[i].p, B[i].before, B[i].bytes);
        }
        int other = threads == 1 ? 2 + (knobs >> 6) * 2 : 1;
        era_set_num_threads(other);
        era_status again = invoke();
        if (again != st) violation("status '%s' with %d threads, '%s' with %d", status_name(st), threads, status_name(again), other);
        for (int i = 0; i < NBUF; i++)
            if (B[i].p && memcmp(B[i].p, B[i].after, B[i].bytes))
                violation("slot %d differs between %d and %d threads", i, threads, other);
    }
    release_all();
    return 0;
}
