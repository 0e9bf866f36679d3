// era._era_xla: libera's kernels as XLA FFI handlers, for era.jax on CPU.
//
// Each handler is an XLA custom-call target (registered by era/jax/_ffi.py with
// jax.ffi.register_ffi_target, platform "cpu") that reads XLA's buffers in place and calls
// the C ABI (include/era.h) on them: no Python, no host copy, no GIL. Arrays are rows on the
// last axis; every leading axis (vmap's included) is more rows. Parameters are attributes
// (static). A refused call returns an FFI error whose message starts with era's exception
// class and the library's text ("era.NonFiniteError: non-finite input: ..."), which JAX
// raises as its runtime error inside jit.
//
// The module exposes handlers(): a dict of target name -> PyCapsule of the handler.

#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "xla/ffi/api/ffi.h"

#include "era_params.hpp"

namespace py = pybind11;
namespace ffi = xla::ffi;

namespace {

using ffi::AnyBuffer;
using ffi::DataType;
using ffi::Error;
using ffi::Result;

// The era exception class of a status (era/_errors.py), for the error message.
const char *class_name(era_status s) {
    switch (s) {
    case ERA_ERR_NULL_POINTER: return "NullPointerError";
    case ERA_ERR_BAD_SHAPE: return "BadShapeError";
    case ERA_ERR_BAD_PARAMETER: return "BadParameterError";
    case ERA_ERR_INFEASIBLE_TARGET: return "InfeasibleTargetError";
    case ERA_ERR_NON_FINITE: return "NonFiniteError";
    case ERA_ERR_ALLOCATION: return "AllocationError";
    case ERA_ERR_BAD_INDEX: return "BadIndexError";
    default: return "InternalError";
    }
}

Error check(era_status s, const char *where) {
    if (s == ERA_OK) return Error::Success();
    return Error(ffi::ErrorCode::kInvalidArgument,
                 std::string("era.") + class_name(s) + ": " + era_status_string(s) + ": " + where);
}

Error refuse(const char *where, const std::string &what) {
    return Error(ffi::ErrorCode::kInvalidArgument, std::string("era.DTypeError: bad dtype: ") + where + ": " + what);
}

// An array as rows x cols: cols is the last axis, rows the product of the others.
struct Rows {
    int64_t rows = 0, cols = 0;
};

Rows rows_of(const AnyBuffer &x) {
    auto dims = x.dimensions();
    Rows r;
    r.cols = dims.size() ? dims.back() : 1;
    r.rows = r.cols ? static_cast<int64_t>(x.element_count()) / r.cols : 0;
    return r;
}

bool is(const AnyBuffer &x, DataType t) { return x.element_type() == t; }

template <typename T> const T *in(const AnyBuffer &x) { return static_cast<const T *>(x.untyped_data()); }
template <typename T> T *out(Result<AnyBuffer> &x) { return static_cast<T *>(x->untyped_data()); }

// Labels and response ids come as int32 (JAX's default) or int64; libera reads int64.
struct Indices {
    std::vector<int64_t> widened;
    const int64_t *data = nullptr;
};

Indices indices_of(const AnyBuffer &x) {
    Indices r;
    if (is(x, DataType::S64)) {
        r.data = in<int64_t>(x);
        return r;
    }
    const int32_t *narrow = in<int32_t>(x);
    r.widened.assign(narrow, narrow + x.element_count());
    r.data = r.widened.data();
    return r;
}

bool is_index(const AnyBuffer &x) { return is(x, DataType::S64) || is(x, DataType::S32); }

// The float-type dispatch the handlers share: call(f, T{}) runs the C entry point f of x's
// float type T (f32 for float32, f64 for float64) and returns its status.
template <typename F32, typename F64, typename Call>
Error by_float(const AnyBuffer &x, const char *where, F32 f32, F64 f64, Call call) {
    if (is(x, DataType::F32)) return check(call(f32, float{}), where);
    if (is(x, DataType::F64)) return check(call(f64, double{}), where);
    return refuse(where, "this kernel takes float32 or float64");
}

// The same for logits of float32 or bfloat16 (T is float or era_bf16).
template <typename F32, typename BF16, typename Call>
Error by_logits(const AnyBuffer &x, const char *where, F32 f32, BF16 bf16, Call call) {
    if (is(x, DataType::F32)) return check(call(f32, float{}), where);
    if (is(x, DataType::BF16)) return check(call(bf16, era_bf16{}), where);
    return refuse(where, "this kernel takes float32 or bfloat16 logits");
}

// ---------------------------------------------------------------------------------------
// Entropies

template <typename F32, typename F64>
Error row_metric(AnyBuffer x, Result<AnyBuffer> y, const char *where, F32 f32, F64 f64) {
    const Rows r = rows_of(x);
    if (is(x, DataType::F32)) return check(f32(r.rows, r.cols, in<float>(x), out<float>(y)), where);
    if (is(x, DataType::F64)) return check(f64(r.rows, r.cols, in<double>(x), out<double>(y)), where);
    return refuse(where, "this kernel takes float32 or float64");
}

Error SoftmaxEntropyImpl(AnyBuffer x, Result<AnyBuffer> y) {
    return row_metric(x, y, "era.jax.softmax_entropy", era_softmax_entropy_f32, era_softmax_entropy_f64);
}

Error GaussianEntropyImpl(AnyBuffer x, Result<AnyBuffer> y) {
    return row_metric(x, y, "era.jax.gaussian_entropy", era_gaussian_entropy_f32, era_gaussian_entropy_f64);
}

Error TanhGaussianEntropyImpl(AnyBuffer mean, AnyBuffer log_std, Result<AnyBuffer> y) {
    const char *where = "era.jax.tanh_gaussian_entropy";
    const Rows r = rows_of(log_std);
    if (is(log_std, DataType::F32))
        return check(era_tanh_gaussian_entropy_f32(r.rows, r.cols, in<float>(mean), in<float>(log_std), out<float>(y)),
                     where);
    if (is(log_std, DataType::F64))
        return check(era_tanh_gaussian_entropy_f64(r.rows, r.cols, in<double>(mean), in<double>(log_std),
                                                   out<double>(y)),
                     where);
    return refuse(where, "this kernel takes float32 or float64");
}

Error TruncatedNormalEntropyImpl(AnyBuffer loc, AnyBuffer log_std, Result<AnyBuffer> y, double lo, double hi) {
    const char *where = "era.jax.truncated_normal_entropy";
    const Rows r = rows_of(log_std);
    if (is(log_std, DataType::F32))
        return check(era_truncated_normal_entropy_f32(r.rows, r.cols, in<float>(loc), in<float>(log_std), lo, hi,
                                                      out<float>(y)),
                     where);
    if (is(log_std, DataType::F64))
        return check(era_truncated_normal_entropy_f64(r.rows, r.cols, in<double>(loc), in<double>(log_std), lo, hi,
                                                      out<double>(y)),
                     where);
    return refuse(where, "this kernel takes float32 or float64");
}

// ---------------------------------------------------------------------------------------
// Continuous and discrete ERA (forward: the backward is the transposed tangent rule, in JAX)

// Whether every value of a float buffer is the same (bitwise).
bool all_equal(const AnyBuffer &x) {
    const size_t width = ffi::ByteWidth(x.element_type()), count = x.element_count();
    const auto *bytes = static_cast<const unsigned char *>(x.untyped_data());
    for (size_t i = 1; i < count; i++) {
        if (std::memcmp(bytes, bytes + i * width, width) != 0) return false;
    }
    return true;
}

// One group of rows of a residual-taking call: rows x cols values from element at, one value
// per row (the residual's gradient) from row_at.
struct Group {
    int64_t rows, cols, at, row_at;
};

// The residual is one value per call, or (under vmap) one per example: then the rows split
// into equal groups, one per residual value, each a call of its own: call(f, T{}, &p, group)
// runs the C entry point f of x's float type T with p.residual the group's value.
template <typename F32, typename F64, typename Call>
Error by_residual_group(const AnyBuffer &x, const AnyBuffer &residual, const char *where, era_continuous_params p,
                        F32 f32, F64 f64, Call call) {
    const Rows r = rows_of(x);
    int64_t groups = static_cast<int64_t>(residual.element_count());
    if (groups < 1 || r.rows % groups != 0) return check(ERA_ERR_BAD_SHAPE, where);
    if (!is(residual, x.element_type())) return refuse(where, "residual must have std_logits' dtype");
    if (all_equal(residual)) groups = 1;  // a residual vmap tiled: one call for all the rows
    const int64_t rows = r.rows / groups, count = rows * r.cols;
    for (int64_t g = 0; g < groups; g++) {
        const Group at{rows, r.cols, g * count, g * rows};
        era_status s;
        if (is(x, DataType::F32)) {
            p.residual = in<float>(residual)[g];
            s = call(f32, float{}, &p, at);
        } else if (is(x, DataType::F64)) {
            p.residual = in<double>(residual)[g];
            s = call(f64, double{}, &p, at);
        } else {
            return refuse(where, "this kernel takes float32 or float64");
        }
        if (s != ERA_OK) return check(s, where);
    }
    return Error::Success();
}

Error ContinuousForwardImpl(AnyBuffer std_logits, AnyBuffer residual, Result<AnyBuffer> log_std,
                            double target_entropy, double log_std_min, double log_std_max) {
    const era_continuous_params p = era_py::continuous_params(target_entropy, 0.0, log_std_min, log_std_max);
    return by_residual_group(std_logits, residual, "era.jax.continuous_era", p, era_continuous_forward_f32,
                             era_continuous_forward_f64,
                             [&](auto f, auto t, const era_continuous_params *q, Group g) {
                                 using T = decltype(t);
                                 return f(q, g.rows, g.cols, in<T>(std_logits) + g.at, out<T>(log_std) + g.at);
                             });
}

Error DiscreteForwardImpl(AnyBuffer logits, Result<AnyBuffer> y, double target_entropy, double tau, int32_t mode) {
    const char *where = "era.jax.discrete_era";
    const Rows r = rows_of(logits);
    const era_discrete_params p = era_py::discrete_params(target_entropy, tau, mode);
    if (is(logits, DataType::F32))
        return check(era_discrete_forward_f32(&p, r.rows, r.cols, in<float>(logits), out<float>(y)), where);
    if (is(logits, DataType::F64))
        return check(era_discrete_forward_f64(&p, r.rows, r.cols, in<double>(logits), out<double>(y)), where);
    return refuse(where, "this kernel takes float32 or float64");
}

// ---------------------------------------------------------------------------------------
// LLM ERA

Error TokenEntropyImpl(AnyBuffer logits, Result<AnyBuffer> y) {
    const char *where = "era.jax.token_entropy";
    const Rows r = rows_of(logits);
    if (is(logits, DataType::F32))
        return check(era_token_entropy_f32(r.rows, r.cols, in<float>(logits), out<float>(y)), where);
    if (is(logits, DataType::F64))
        return check(era_token_entropy_f64(r.rows, r.cols, in<double>(logits), out<double>(y)), where);
    if (is(logits, DataType::BF16))
        return check(era_token_entropy_bf16(r.rows, r.cols, in<era_bf16>(logits), out<float>(y)), where);
    return refuse(where, "this kernel takes float32, float64 or bfloat16");
}

// logit_scale is read only when has_scale (JAX has no optional operands here).
Error LogprobForwardImpl(AnyBuffer logits, AnyBuffer labels, AnyBuffer logit_scale, Result<AnyBuffer> logprob,
                         Result<AnyBuffer> entropy, bool has_scale) {
    const char *where = "era.jax.llm_logprob";
    if (!is_index(labels)) return refuse(where, "labels must be int32 or int64");
    const Rows r = rows_of(logits);
    const Indices a = indices_of(labels);
    const float *s = has_scale ? in<float>(logit_scale) : nullptr;
    if (is(logits, DataType::F32))
        return check(era_llm_logprob_forward_f32(r.rows, r.cols, in<float>(logits), a.data, s, out<float>(logprob),
                                                 out<float>(entropy)),
                     where);
    if (is(logits, DataType::BF16))
        return check(era_llm_logprob_forward_bf16(r.rows, r.cols, in<era_bf16>(logits), a.data, s,
                                                  out<float>(logprob), out<float>(entropy)),
                     where);
    return refuse(where, "this kernel takes float32 or bfloat16 logits");
}

Error LogprobBackwardImpl(AnyBuffer logits, AnyBuffer labels, AnyBuffer logit_scale, AnyBuffer grad_logprob,
                          Result<AnyBuffer> grad, bool has_scale) {
    const char *where = "era.jax.llm_logprob (backward)";
    if (!is_index(labels)) return refuse(where, "labels must be int32 or int64");
    const Rows r = rows_of(logits);
    const Indices a = indices_of(labels);
    const float *s = has_scale ? in<float>(logit_scale) : nullptr;
    if (is(logits, DataType::F32))
        return check(era_llm_logprob_backward_f32(r.rows, r.cols, in<float>(logits), a.data, s, in<float>(grad_logprob),
                                                  out<float>(grad)),
                     where);
    if (is(logits, DataType::BF16))
        return check(era_llm_logprob_backward_bf16(r.rows, r.cols, in<era_bf16>(logits), a.data, s,
                                                   in<float>(grad_logprob), out<era_bf16>(grad)),
                     where);
    return refuse(where, "this kernel takes float32 or bfloat16 logits");
}

// One call per vmap example (vmap_method "sequential"): tokens and ids are flat.
Error ResponseEntropyImpl(AnyBuffer token_entropy, AnyBuffer response_id, Result<AnyBuffer> y, double omega_low,
                          double omega_high, double k, double top_fraction) {
    const char *where = "era.jax.llm_response_entropy";
    if (!is(token_entropy, DataType::F32)) return refuse(where, "token_entropy must be float32");
    if (!is_index(response_id)) return refuse(where, "response_id must be int32 or int64");
    const Indices ids = indices_of(response_id);
    const era_llm_params p = era_py::llm_params(omega_low, omega_high, k, top_fraction, true);
    return check(era_llm_response_entropy_f32(&p, static_cast<int64_t>(token_entropy.element_count()),
                                              in<float>(token_entropy), ids.data,
                                              static_cast<int64_t>(y->element_count()), out<float>(y)),
                 where);
}

Error ScalesImpl(AnyBuffer response_entropy, AnyBuffer response_id, AnyBuffer advantages, Result<AnyBuffer> scale,
                 Result<AnyBuffer> new_advantages, double omega_low, double omega_high, double k, double top_fraction,
                 bool scale_advantages) {
    const char *where = "era.jax.llm_scales";
    if (!is(response_entropy, DataType::F32) || !is(advantages, DataType::F32))
        return refuse(where, "response_entropy and advantages must be float32");
    if (!is_index(response_id)) return refuse(where, "response_id must be int32 or int64");
    const Indices ids = indices_of(response_id);
    const era_llm_params p = era_py::llm_params(omega_low, omega_high, k, top_fraction, scale_advantages);
    return check(era_llm_scales_f32(&p, static_cast<int64_t>(advantages.element_count()), in<float>(response_entropy),
                                    static_cast<int64_t>(response_entropy.element_count()), ids.data,
                                    in<float>(advantages), out<float>(scale), out<float>(new_advantages)),
                 where);
}

// Top-k log-probabilities (era.h): as the two handlers above, with top_k >= 1.
Error TopKLogprobForwardImpl(AnyBuffer logits, AnyBuffer labels, AnyBuffer logit_scale, Result<AnyBuffer> logprob,
                             Result<AnyBuffer> entropy, bool has_scale, int32_t top_k) {
    const char *where = "era.jax.llm_logprob (top_k)";
    if (!is_index(labels)) return refuse(where, "labels must be int32 or int64");
    const Rows r = rows_of(logits);
    const Indices a = indices_of(labels);
    const float *s = has_scale ? in<float>(logit_scale) : nullptr;
    return by_logits(logits, where, era_llm_topk_logprob_forward_f32, era_llm_topk_logprob_forward_bf16,
                     [&](auto f, auto t) {
                         using T = decltype(t);
                         return f(r.rows, r.cols, in<T>(logits), a.data, s, top_k, out<float>(logprob),
                                  out<float>(entropy));
                     });
}

Error TopKLogprobBackwardImpl(AnyBuffer logits, AnyBuffer labels, AnyBuffer logit_scale, AnyBuffer grad_logprob,
                              Result<AnyBuffer> grad, bool has_scale, int32_t top_k) {
    const char *where = "era.jax.llm_logprob (top_k, backward)";
    if (!is_index(labels)) return refuse(where, "labels must be int32 or int64");
    const Rows r = rows_of(logits);
    const Indices a = indices_of(labels);
    const float *s = has_scale ? in<float>(logit_scale) : nullptr;
    return by_logits(logits, where, era_llm_topk_logprob_backward_f32, era_llm_topk_logprob_backward_bf16,
                     [&](auto f, auto t) {
                         using T = decltype(t);
                         return f(r.rows, r.cols, in<T>(logits), a.data, s, top_k, in<float>(grad_logprob),
                                  out<T>(grad));
                     });
}

// ---------------------------------------------------------------------------------------
// The truncated-normal entropy gradient and the sampled floor (era.jax.sampled_floor)

Error TruncatedNormalBackwardImpl(AnyBuffer loc, AnyBuffer log_std, AnyBuffer grad_entropy, Result<AnyBuffer> grad_loc,
                                  Result<AnyBuffer> grad_log_std, double lo, double hi) {
    const Rows r = rows_of(log_std);
    return by_float(log_std, "era.jax.truncated_normal_entropy (backward)", era_truncated_normal_entropy_backward_f32,
                    era_truncated_normal_entropy_backward_f64, [&](auto f, auto t) {
                        using T = decltype(t);
                        return f(r.rows, r.cols, in<T>(loc), in<T>(log_std), lo, hi, in<T>(grad_entropy),
                                 out<T>(grad_loc), out<T>(grad_log_std));
                    });
}

// The residual as for ContinuousForwardImpl: one value per call, or one per group of rows.
Error SampledForwardImpl(AnyBuffer std_logits, AnyBuffer loc, AnyBuffer residual, Result<AnyBuffer> log_std,
                         double target_entropy, double lo, double hi, double log_std_min, double log_std_max) {
    const era_continuous_params p = era_py::continuous_params(target_entropy, 0.0, log_std_min, log_std_max);
    return by_residual_group(std_logits, residual, "era.jax.continuous_era_truncated", p,
                             era_continuous_truncated_forward_f32, era_continuous_truncated_forward_f64,
                             [&](auto f, auto t, const era_continuous_params *q, Group g) {
                                 using T = decltype(t);
                                 return f(q, g.rows, g.cols, in<T>(std_logits) + g.at, in<T>(loc) + g.at, lo, hi,
                                          out<T>(log_std) + g.at, nullptr);
                             });
}

Error SampledBackwardImpl(AnyBuffer std_logits, AnyBuffer loc, AnyBuffer residual, AnyBuffer grad_log_std,
                          Result<AnyBuffer> grad_std_logits, Result<AnyBuffer> grad_loc, Result<AnyBuffer> grad_residual,
                          double target_entropy, double lo, double hi, double log_std_min, double log_std_max) {
    const era_continuous_params p = era_py::continuous_params(target_entropy, 0.0, log_std_min, log_std_max);
    return by_residual_group(std_logits, residual, "era.jax.continuous_era_truncated (backward)", p,
                             era_continuous_truncated_backward_f32, era_continuous_truncated_backward_f64,
                             [&](auto f, auto t, const era_continuous_params *q, Group g) {
                                 using T = decltype(t);
                                 return f(q, g.rows, g.cols, in<T>(std_logits) + g.at, in<T>(loc) + g.at, lo, hi,
                                          in<T>(grad_log_std) + g.at, out<T>(grad_std_logits) + g.at,
                                          out<T>(grad_loc) + g.at, out<T>(grad_residual) + g.row_at);
                             });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(EraSoftmaxEntropy, SoftmaxEntropyImpl,
                              ffi::Ffi::Bind().Arg<AnyBuffer>().Ret<AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraGaussianEntropy, GaussianEntropyImpl,
                              ffi::Ffi::Bind().Arg<AnyBuffer>().Ret<AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTanhGaussianEntropy, TanhGaussianEntropyImpl,
                              ffi::Ffi::Bind().Arg<AnyBuffer>().Arg<AnyBuffer>().Ret<AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTruncatedNormalEntropy, TruncatedNormalEntropyImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("lo")
                                  .Attr<double>("hi"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraContinuousForward, ContinuousForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("target_entropy")
                                  .Attr<double>("log_std_min")
                                  .Attr<double>("log_std_max"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraDiscreteForward, DiscreteForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("target_entropy")
                                  .Attr<double>("tau")
                                  .Attr<int32_t>("mode"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTokenEntropy, TokenEntropyImpl, ffi::Ffi::Bind().Arg<AnyBuffer>().Ret<AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraLogprobForward, LogprobForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<bool>("has_scale"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraLogprobBackward, LogprobBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<bool>("has_scale"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraResponseEntropy, ResponseEntropyImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("omega_low")
                                  .Attr<double>("omega_high")
                                  .Attr<double>("k")
                                  .Attr<double>("top_fraction"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraScales, ScalesImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("omega_low")
                                  .Attr<double>("omega_high")
                                  .Attr<double>("k")
                                  .Attr<double>("top_fraction")
                                  .Attr<bool>("scale_advantages"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTopKLogprobForward, TopKLogprobForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<bool>("has_scale")
                                  .Attr<int32_t>("top_k"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTopKLogprobBackward, TopKLogprobBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<bool>("has_scale")
                                  .Attr<int32_t>("top_k"));

// ---------------------------------------------------------------------------------------
// Truncated-normal policy: element-wise, every operand of one shape and float type; the
// interval as attributes.

namespace {

int64_t elements(const AnyBuffer &x) { return static_cast<int64_t>(x.element_count()); }

Error TruncatedNormalSampleImpl(AnyBuffer loc, AnyBuffer log_std, AnyBuffer uniform, Result<AnyBuffer> x, double lo,
                                double hi) {
    const int64_t n = elements(loc);
    return by_float(loc, "era.jax.truncated_normal_sample", era_truncated_normal_sample_f32,
                    era_truncated_normal_sample_f64, [&](auto f, auto t) {
                        using T = decltype(t);
                        return f(n, 1, in<T>(loc), in<T>(log_std), lo, hi, in<T>(uniform), out<T>(x));
                    });
}

Error TruncatedNormalSampleBackwardImpl(AnyBuffer loc, AnyBuffer log_std, AnyBuffer sample, AnyBuffer grad,
                                        Result<AnyBuffer> grad_loc, Result<AnyBuffer> grad_log_std, double lo,
                                        double hi) {
    const int64_t n = elements(loc);
    return by_float(loc, "era.jax.truncated_normal_sample (gradient)", era_truncated_normal_sample_backward_f32,
                    era_truncated_normal_sample_backward_f64, [&](auto f, auto t) {
                        using T = decltype(t);
                        return f(n, 1, in<T>(loc), in<T>(log_std), lo, hi, in<T>(sample), in<T>(grad),
                                 out<T>(grad_loc), out<T>(grad_log_std));
                    });
}

Error TruncatedNormalLogProbImpl(AnyBuffer loc, AnyBuffer log_std, AnyBuffer x, Result<AnyBuffer> log_prob, double lo,
                                 double hi) {
    const int64_t n = elements(loc);
    return by_float(loc, "era.jax.truncated_normal_log_prob", era_truncated_normal_log_prob_f32,
                    era_truncated_normal_log_prob_f64, [&](auto f, auto t) {
                        using T = decltype(t);
                        return f(n, 1, in<T>(loc), in<T>(log_std), lo, hi, in<T>(x), out<T>(log_prob));
                    });
}

Error TruncatedNormalLogProbBackwardImpl(AnyBuffer loc, AnyBuffer log_std, AnyBuffer x, AnyBuffer grad,
                                         Result<AnyBuffer> grad_x, Result<AnyBuffer> grad_loc,
                                         Result<AnyBuffer> grad_log_std, double lo, double hi) {
    const int64_t n = elements(loc);
    return by_float(loc, "era.jax.truncated_normal_log_prob (gradient)", era_truncated_normal_log_prob_backward_f32,
                    era_truncated_normal_log_prob_backward_f64, [&](auto f, auto t) {
                        using T = decltype(t);
                        return f(n, 1, in<T>(loc), in<T>(log_std), lo, hi, in<T>(x), in<T>(grad), out<T>(grad_x),
                                 out<T>(grad_loc), out<T>(grad_log_std));
                    });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTruncatedNormalSample, TruncatedNormalSampleImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("lo")
                                  .Attr<double>("hi"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTruncatedNormalSampleBackward, TruncatedNormalSampleBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("lo")
                                  .Attr<double>("hi"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTruncatedNormalLogProb, TruncatedNormalLogProbImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("lo")
                                  .Attr<double>("hi"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTruncatedNormalLogProbBackward, TruncatedNormalLogProbBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("lo")
                                  .Attr<double>("hi"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTruncatedNormalBackward, TruncatedNormalBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("lo")
                                  .Attr<double>("hi"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraSampledForward, SampledForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("target_entropy")
                                  .Attr<double>("lo")
                                  .Attr<double>("hi")
                                  .Attr<double>("log_std_min")
                                  .Attr<double>("log_std_max"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraSampledBackward, SampledBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("target_entropy")
                                  .Attr<double>("lo")
                                  .Attr<double>("hi")
                                  .Attr<double>("log_std_min")
                                  .Attr<double>("log_std_max"));

// ---------------------------------------------------------------------------------------
// The tanh-Gaussian entropy gradient and the tanh sampled floor (era.jax.tanh_floor)

namespace {

Error TanhGaussianBackwardImpl(AnyBuffer mean, AnyBuffer log_std, AnyBuffer grad_entropy, Result<AnyBuffer> grad_mean,
                               Result<AnyBuffer> grad_log_std) {
    const Rows r = rows_of(log_std);
    return by_float(log_std, "era.jax.tanh_gaussian_entropy (backward)", era_tanh_gaussian_entropy_backward_f32,
                    era_tanh_gaussian_entropy_backward_f64, [&](auto f, auto t) {
                        using T = decltype(t);
                        return f(r.rows, r.cols, in<T>(mean), in<T>(log_std), in<T>(grad_entropy), out<T>(grad_mean),
                                 out<T>(grad_log_std));
                    });
}

// The residual as for ContinuousForwardImpl: one value per call, or one per group of rows.
Error TanhFloorForwardImpl(AnyBuffer std_logits, AnyBuffer mean, AnyBuffer residual, Result<AnyBuffer> log_std,
                           double target_entropy, double log_std_min, double log_std_max) {
    const era_continuous_params p = era_py::continuous_params(target_entropy, 0.0, log_std_min, log_std_max);
    return by_residual_group(std_logits, residual, "era.jax.continuous_era_tanh", p, era_continuous_tanh_forward_f32,
                             era_continuous_tanh_forward_f64,
                             [&](auto f, auto t, const era_continuous_params *q, Group g) {
                                 using T = decltype(t);
                                 return f(q, g.rows, g.cols, in<T>(std_logits) + g.at, in<T>(mean) + g.at,
                                          out<T>(log_std) + g.at, nullptr);
                             });
}

Error TanhFloorBackwardImpl(AnyBuffer std_logits, AnyBuffer mean, AnyBuffer residual, AnyBuffer grad_log_std,
                            Result<AnyBuffer> grad_std_logits, Result<AnyBuffer> grad_mean,
                            Result<AnyBuffer> grad_residual, double target_entropy, double log_std_min,
                            double log_std_max) {
    const era_continuous_params p = era_py::continuous_params(target_entropy, 0.0, log_std_min, log_std_max);
    return by_residual_group(std_logits, residual, "era.jax.continuous_era_tanh (backward)", p,
                             era_continuous_tanh_backward_f32, era_continuous_tanh_backward_f64,
                             [&](auto f, auto t, const era_continuous_params *q, Group g) {
                                 using T = decltype(t);
                                 return f(q, g.rows, g.cols, in<T>(std_logits) + g.at, in<T>(mean) + g.at,
                                          in<T>(grad_log_std) + g.at, out<T>(grad_std_logits) + g.at,
                                          out<T>(grad_mean) + g.at, out<T>(grad_residual) + g.row_at);
                             });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTanhGaussianBackward, TanhGaussianBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTanhFloorForward, TanhFloorForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("target_entropy")
                                  .Attr<double>("log_std_min")
                                  .Attr<double>("log_std_max"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(EraTanhFloorBackward, TanhFloorBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Arg<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Ret<AnyBuffer>()
                                  .Attr<double>("target_entropy")
                                  .Attr<double>("log_std_min")
                                  .Attr<double>("log_std_max"));

PYBIND11_MODULE(_era_xla, m) {
    m.doc() = "libera's kernels as XLA FFI handlers for era.jax (registered by era/jax/_ffi.py).";
    m.def("handlers", []() {
        py::dict d;
        auto add = [&d](const char *name, XLA_FFI_Handler *handler) {
            d[name] = py::capsule(reinterpret_cast<void *>(handler));
        };
        add("era_softmax_entropy", EraSoftmaxEntropy);
        add("era_gaussian_entropy", EraGaussianEntropy);
        add("era_tanh_gaussian_entropy", EraTanhGaussianEntropy);
        add("era_truncated_normal_entropy", EraTruncatedNormalEntropy);
        add("era_continuous_forward", EraContinuousForward);
        add("era_discrete_forward", EraDiscreteForward);
        add("era_token_entropy", EraTokenEntropy);
        add("era_llm_logprob_forward", EraLogprobForward);
        add("era_llm_logprob_backward", EraLogprobBackward);
        add("era_llm_response_entropy", EraResponseEntropy);
        add("era_llm_scales", EraScales);
        add("era_llm_topk_logprob_forward", EraTopKLogprobForward);
        add("era_llm_topk_logprob_backward", EraTopKLogprobBackward);
        add("era_truncated_normal_sample", EraTruncatedNormalSample);
        add("era_truncated_normal_sample_backward", EraTruncatedNormalSampleBackward);
        add("era_truncated_normal_log_prob", EraTruncatedNormalLogProb);
        add("era_truncated_normal_log_prob_backward", EraTruncatedNormalLogProbBackward);
        add("era_truncated_normal_entropy_backward", EraTruncatedNormalBackward);
        add("era_continuous_truncated_forward", EraSampledForward);
        add("era_continuous_truncated_backward", EraSampledBackward);
        add("era_tanh_gaussian_entropy_backward", EraTanhGaussianBackward);
        add("era_continuous_tanh_forward", EraTanhFloorForward);
        add("era_continuous_tanh_backward", EraTanhFloorBackward);
        return d;
    });
}
