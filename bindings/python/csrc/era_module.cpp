// era._era: the pybind11 module over libera's C ABI (include/era.h), one Python function per
// C entry point (the _f32/_f64/_bf16 variants chosen by the dtype of the first array).
//
// The module is deliberately thin. It takes numpy arrays that the Python layer (era/*.py)
// has already validated and allocated, checks again that each one is exactly what the C
// function will read or write (dtype, C order, alignment, element count, writability), so
// that no Python call can make the library touch memory it does not own, then calls the
// library with the GIL released and returns the era_status as an int. Raising the right
// exception for a status is the Python layer's job (era/_errors.py).
//
// None for an array becomes a NULL pointer, which the library itself answers with
// ERA_ERR_NULL_POINTER where the array is required.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include "era_params.hpp"

namespace py = pybind11;
using era_py::continuous_params;
using era_py::discrete_params;
using era_py::llm_params;

namespace {

bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
}

// The GIL released around a libera call. Not py::gil_scoped_release, because of interpreter
// exit: CPython ends a daemon thread that asks for the GIL back while the interpreter
// finalises with pthread_exit, whose forced unwinding through a noexcept destructor (every
// destructor is noexcept by default) calls std::terminate, and the process aborted (exit 134)
// although the program had exited cleanly. This destructor does not ask once finalisation has
// begun: the thread waits, holding nothing, for the process to end (as CPython 3.14 does with
// such threads). In the short window where finalisation begins while it asks, the destructor
// lets the unwinding pass (noexcept(false)), and pybind11 lets it end the thread.
class released_gil {
public:
    released_gil() : state_(PyEval_SaveThread()) {}
    released_gil(const released_gil &) = delete;
    released_gil &operator=(const released_gil &) = delete;
    ~released_gil() noexcept(false) {
        if (interpreter_finalizing())
            for (;;) pause();
        PyEval_RestoreThread(state_);
    }

private:
    PyThreadState *state_;
};

}  // namespace

namespace {

// The element types the C ABI reads and writes, as numpy describes them.
enum class Elem { f32, f64, i64, u16 };

const char *elem_name(Elem e) {
    switch (e) {
    case Elem::f32: return "float32";
    case Elem::f64: return "float64";
    case Elem::i64: return "int64";
    case Elem::u16: return "uint16 (bfloat16 bits)";
    }
    return "?";
}

bool has_elem(const py::array &a, Elem e) {
    const py::dtype dt = a.dtype();
    const char order = dt.byteorder();
    if (order == '>') return false;  // the library reads native little-endian values
    switch (e) {
    case Elem::f32: return dt.kind() == 'f' && dt.itemsize() == 4;
    case Elem::f64: return dt.kind() == 'f' && dt.itemsize() == 8;
    case Elem::i64: return dt.kind() == 'i' && dt.itemsize() == 8;
    case Elem::u16: return dt.kind() == 'u' && dt.itemsize() == 2;
    }
    return false;
}

constexpr int kAligned = 0x0100;  // NPY_ARRAY_ALIGNED

// A raw pointer into a numpy array that has been checked to hold exactly `count` elements
// of type `e`, C-contiguous and aligned (and writable when `writable`). None gives nullptr.
void *checked_pointer(const py::object &obj, Elem e, int64_t count, const char *name, bool writable) {
    if (obj.is_none()) return nullptr;
    if (!py::isinstance<py::array>(obj)) {
        throw py::type_error(std::string("era._era: ") + name + " must be a numpy array");
    }
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!has_elem(a, e)) {
        throw py::type_error(std::string("era._era: ") + name + " must have dtype " + elem_name(e) + ", got " +
                             py::str(a.dtype()).cast<std::string>());
    }
    if (!(a.flags() & py::array::c_style) || !(a.flags() & kAligned)) {
        throw py::value_error(std::string("era._era: ") + name + " must be C-contiguous and aligned");
    }
    if (count < 0 || static_cast<int64_t>(a.size()) != count) {
        throw py::value_error(std::string("era._era: ") + name + " holds " + std::to_string(a.size()) +
                              " elements where the call needs " + std::to_string(count));
    }
    if (writable) {
        if (!a.writeable()) throw py::value_error(std::string("era._era: ") + name + " is read-only");
        return a.mutable_data();
    }
    return const_cast<void *>(a.data());
}

// rows*cols, or -1 when it is negative or overflows (the library then reports BAD_SHAPE; the
// arrays must be None or empty for the call to reach it).
int64_t element_count(int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) return -1;
    if (cols != 0 && rows > std::numeric_limits<int64_t>::max() / cols) return -1;
    return rows * cols;
}

// The float type of a call, from its first array: f32 or f64 (or u16 where bf16 is allowed).
Elem float_elem(const py::object &obj, const char *name, bool allow_f64, bool allow_bf16) {
    if (!py::isinstance<py::array>(obj)) {
        throw py::type_error(std::string("era._era: ") + name + " must be a numpy array");
    }
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (has_elem(a, Elem::f32)) return Elem::f32;
    if (allow_f64 && has_elem(a, Elem::f64)) return Elem::f64;
    if (allow_bf16 && has_elem(a, Elem::u16)) return Elem::u16;
    throw py::type_error(std::string("era._era: ") + name + " has an unsupported dtype " +
                         py::str(a.dtype()).cast<std::string>());
}

// Sizes of arrays whose count cannot be formed are checked against 0 (only None or an empty
// array passes), so that the library sees the bad size and reports it.
int64_t count_or_zero(int64_t rows, int64_t cols) {
    const int64_t n = element_count(rows, cols);
    return n < 0 ? 0 : n;
}

// The float-type dispatch of a call: call(f, T{}) runs the C entry point f of the C type T
// of e (float for f32, double for f64) and returns its status.
template <typename F32, typename F64, typename Call>
era_status by_float(Elem e, F32 f32, F64 f64, Call call) {
    return e == Elem::f32 ? call(f32, float{}) : call(f64, double{});
}

// The same for logits of float32 or bfloat16 (T is float or era_bf16).
template <typename F32, typename BF16, typename Call>
era_status by_logits(Elem e, F32 f32, BF16 bf16, Call call) {
    return e == Elem::f32 ? call(f32, float{}) : call(bf16, era_bf16{});
}

// A checked pointer as the C type the call reads (ro) or writes (rw).
template <typename T> const T *ro(void *p) { return static_cast<const T *>(p); }
template <typename T> T *rw(void *p) { return static_cast<T *>(p); }

// The inputs the log-probability calls share: logits (float32 or bfloat16), labels and the
// optional logit_scale, checked in that order.
struct LogprobInputs {
    Elem e;
    int64_t n, t;
    void *x, *lab, *s;
};

LogprobInputs logprob_inputs(int64_t tokens, int64_t vocab, const py::object &logits, const py::object &labels,
                             const py::object &logit_scale) {
    LogprobInputs a;
    a.e = float_elem(logits, "logits", false, true);
    a.n = count_or_zero(tokens, vocab);
    a.t = tokens < 0 ? 0 : tokens;
    a.x = checked_pointer(logits, a.e, a.n, "logits", false);
    a.lab = checked_pointer(labels, Elem::i64, a.t, "labels", false);
    a.s = checked_pointer(logit_scale, Elem::f32, a.t, "logit_scale", false);
    return a;
}

py::object report_tuple(const era_bound_report &r) {
    return py::make_tuple(r.rows, r.violations, r.min_entropy, r.mean_entropy, r.max_deficit, r.floor, r.target,
                          r.worst_row);
}

// ---------------------------------------------------------------------------------------
// Entropy math

int softmax_entropy(int64_t rows, int64_t cols, py::object logits, py::object out) {
    const Elem e = float_elem(logits, "logits", true, false);
    const int64_t n = count_or_zero(rows, cols), r = rows < 0 ? 0 : rows;
    void *x = checked_pointer(logits, e, n, "logits", false);
    void *o = checked_pointer(out, e, r, "out_entropy", true);
    released_gil nogil;
    return e == Elem::f32 ? era_softmax_entropy_f32(rows, cols, static_cast<const float *>(x), static_cast<float *>(o))
                          : era_softmax_entropy_f64(rows, cols, static_cast<const double *>(x), static_cast<double *>(o));
}

int gaussian_entropy(int64_t rows, int64_t dim, py::object log_std, py::object out) {
    const Elem e = float_elem(log_std, "log_std", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *x = checked_pointer(log_std, e, n, "log_std", false);
    void *o = checked_pointer(out, e, r, "out_entropy", true);
    released_gil nogil;
    return e == Elem::f32 ? era_gaussian_entropy_f32(rows, dim, static_cast<const float *>(x), static_cast<float *>(o))
                          : era_gaussian_entropy_f64(rows, dim, static_cast<const double *>(x), static_cast<double *>(o));
}

int tanh_gaussian_entropy(int64_t rows, int64_t dim, py::object mean, py::object log_std, py::object out) {
    const Elem e = float_elem(log_std, "log_std", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *m = checked_pointer(mean, e, n, "mean", false);
    void *x = checked_pointer(log_std, e, n, "log_std", false);
    void *o = checked_pointer(out, e, r, "out_entropy", true);
    released_gil nogil;
    return e == Elem::f32 ? era_tanh_gaussian_entropy_f32(rows, dim, static_cast<const float *>(m),
                                                          static_cast<const float *>(x), static_cast<float *>(o))
                          : era_tanh_gaussian_entropy_f64(rows, dim, static_cast<const double *>(m),
                                                          static_cast<const double *>(x), static_cast<double *>(o));
}

int truncated_normal_entropy(int64_t rows, int64_t dim, py::object loc, py::object log_std, double lo, double hi,
                             py::object out) {
    const Elem e = float_elem(log_std, "log_std", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *l = checked_pointer(loc, e, n, "loc", false);
    void *x = checked_pointer(log_std, e, n, "log_std", false);
    void *o = checked_pointer(out, e, r, "out_entropy", true);
    released_gil nogil;
    return e == Elem::f32
               ? era_truncated_normal_entropy_f32(rows, dim, static_cast<const float *>(l), static_cast<const float *>(x),
                                                  lo, hi, static_cast<float *>(o))
               : era_truncated_normal_entropy_f64(rows, dim, static_cast<const double *>(l),
                                                  static_cast<const double *>(x), lo, hi, static_cast<double *>(o));
}

// ---------------------------------------------------------------------------------------
// Continuous ERA

int continuous_forward(double target, double residual, double log_std_min, double log_std_max, int64_t rows,
                       int64_t dim, py::object std_logits, py::object out) {
    const Elem e = float_elem(std_logits, "std_logits", true, false);
    const int64_t n = count_or_zero(rows, dim);
    void *x = checked_pointer(std_logits, e, n, "std_logits", false);
    void *o = checked_pointer(out, e, n, "out_log_std", true);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    released_gil nogil;
    return e == Elem::f32 ? era_continuous_forward_f32(&p, rows, dim, static_cast<const float *>(x), static_cast<float *>(o))
                          : era_continuous_forward_f64(&p, rows, dim, static_cast<const double *>(x),
                                                       static_cast<double *>(o));
}

int continuous_backward(double target, double residual, double log_std_min, double log_std_max, int64_t rows,
                        int64_t dim, py::object std_logits, py::object grad_log_std, py::object out,
                        py::object out_residual) {
    const Elem e = float_elem(std_logits, "std_logits", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *x = checked_pointer(std_logits, e, n, "std_logits", false);
    void *g = checked_pointer(grad_log_std, e, n, "grad_log_std", false);
    void *o = checked_pointer(out, e, n, "out_grad_std_logits", true);
    void *od = checked_pointer(out_residual, e, r, "out_grad_residual", true);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    released_gil nogil;
    return e == Elem::f32
               ? era_continuous_backward_f32(&p, rows, dim, static_cast<const float *>(x), static_cast<const float *>(g),
                                             static_cast<float *>(o), static_cast<float *>(od))
               : era_continuous_backward_f64(&p, rows, dim, static_cast<const double *>(x),
                                             static_cast<const double *>(g), static_cast<double *>(o),
                                             static_cast<double *>(od));
}

// ---------------------------------------------------------------------------------------
// Discrete ERA

using DiscreteScalar = era_status (*)(const era_discrete_params *, int64_t, double *);

py::tuple discrete_scalar(DiscreteScalar fn, double target, double tau, int32_t mode, int64_t classes) {
    const era_discrete_params p = discrete_params(target, tau, mode);
    double value = std::numeric_limits<double>::quiet_NaN();
    era_status s;
    {
        released_gil nogil;
        s = fn(&p, classes, &value);
    }
    return py::make_tuple(static_cast<int>(s), value);
}

int discrete_forward(double target, double tau, int32_t mode, int64_t rows, int64_t classes, py::object logits,
                     py::object out) {
    const Elem e = float_elem(logits, "logits", true, false);
    const int64_t n = count_or_zero(rows, classes);
    void *x = checked_pointer(logits, e, n, "logits", false);
    void *o = checked_pointer(out, e, n, "out_logits", true);
    const era_discrete_params p = discrete_params(target, tau, mode);
    released_gil nogil;
    return e == Elem::f32 ? era_discrete_forward_f32(&p, rows, classes, static_cast<const float *>(x), static_cast<float *>(o))
                          : era_discrete_forward_f64(&p, rows, classes, static_cast<const double *>(x),
                                                     static_cast<double *>(o));
}

int discrete_backward(double target, double tau, int32_t mode, int64_t rows, int64_t classes, py::object logits,
                      py::object grad_out, py::object out) {
    const Elem e = float_elem(logits, "logits", true, false);
    const int64_t n = count_or_zero(rows, classes);
    void *x = checked_pointer(logits, e, n, "logits", false);
    void *g = checked_pointer(grad_out, e, n, "grad_out", false);
    void *o = checked_pointer(out, e, n, "out_grad_logits", true);
    const era_discrete_params p = discrete_params(target, tau, mode);
    released_gil nogil;
    return e == Elem::f32
               ? era_discrete_backward_f32(&p, rows, classes, static_cast<const float *>(x), static_cast<const float *>(g),
                                           static_cast<float *>(o))
               : era_discrete_backward_f64(&p, rows, classes, static_cast<const double *>(x),
                                           static_cast<const double *>(g), static_cast<double *>(o));
}

// ---------------------------------------------------------------------------------------
// LLM ERA

int token_entropy(int64_t tokens, int64_t vocab, py::object logits, py::object out) {
    const Elem e = float_elem(logits, "logits", true, true);
    const int64_t n = count_or_zero(tokens, vocab), t = tokens < 0 ? 0 : tokens;
    void *x = checked_pointer(logits, e, n, "logits", false);
    void *o = checked_pointer(out, e == Elem::f64 ? Elem::f64 : Elem::f32, t, "out_entropy", true);
    released_gil nogil;
    switch (e) {
    case Elem::f32: return era_token_entropy_f32(tokens, vocab, static_cast<const float *>(x), static_cast<float *>(o));
    case Elem::f64: return era_token_entropy_f64(tokens, vocab, static_cast<const double *>(x), static_cast<double *>(o));
    default: return era_token_entropy_bf16(tokens, vocab, static_cast<const era_bf16 *>(x), static_cast<float *>(o));
    }
}

int llm_response_entropy(double omega_low, double omega_high, double k, double top_fraction, bool scale_advantages,
                         int64_t tokens, py::object token_entropy, py::object response_id, int64_t responses,
                         py::object out) {
    const int64_t t = tokens < 0 ? 0 : tokens, r = responses < 0 ? 0 : responses;
    void *h = checked_pointer(token_entropy, Elem::f32, t, "token_entropy", false);
    void *ids = checked_pointer(response_id, Elem::i64, t, "response_id", false);
    void *o = checked_pointer(out, Elem::f32, r, "out_response_entropy", true);
    const era_llm_params p = llm_params(omega_low, omega_high, k, top_fraction, scale_advantages);
    released_gil nogil;
    return era_llm_response_entropy_f32(&p, tokens, static_cast<const float *>(h), static_cast<const int64_t *>(ids),
                                        responses, static_cast<float *>(o));
}

int llm_scales(double omega_low, double omega_high, double k, double top_fraction, bool scale_advantages,
               int64_t tokens, py::object response_entropy, int64_t responses, py::object response_id,
               py::object advantages, py::object out_scale, py::object out_advantages) {
    const int64_t t = tokens < 0 ? 0 : tokens, r = responses < 0 ? 0 : responses;
    void *h = checked_pointer(response_entropy, Elem::f32, r, "response_entropy", false);
    void *ids = checked_pointer(response_id, Elem::i64, t, "response_id", false);
    void *a = checked_pointer(advantages, Elem::f32, t, "advantages", false);
    void *os = checked_pointer(out_scale, Elem::f32, t, "out_logit_scale", true);
    void *oa = checked_pointer(out_advantages, Elem::f32, t, "out_advantages", true);
    const era_llm_params p = llm_params(omega_low, omega_high, k, top_fraction, scale_advantages);
    released_gil nogil;
    return era_llm_scales_f32(&p, tokens, static_cast<const float *>(h), responses, static_cast<const int64_t *>(ids),
                              static_cast<const float *>(a), static_cast<float *>(os), static_cast<float *>(oa));
}

int llm_logprob_forward(int64_t tokens, int64_t vocab, py::object logits, py::object labels, py::object logit_scale,
                        py::object out_logprob, py::object out_entropy) {
    const LogprobInputs a = logprob_inputs(tokens, vocab, logits, labels, logit_scale);
    void *ol = checked_pointer(out_logprob, Elem::f32, a.t, "out_logprob", true);
    void *oh = checked_pointer(out_entropy, Elem::f32, a.t, "out_entropy", true);
    released_gil nogil;
    return by_logits(a.e, era_llm_logprob_forward_f32, era_llm_logprob_forward_bf16, [&](auto f, auto t) {
        using T = decltype(t);
        return f(tokens, vocab, ro<T>(a.x), ro<int64_t>(a.lab), ro<float>(a.s), rw<float>(ol), rw<float>(oh));
    });
}

int llm_logprob_backward(int64_t tokens, int64_t vocab, py::object logits, py::object labels, py::object logit_scale,
                         py::object grad_logprob, py::object out_grad) {
    const LogprobInputs a = logprob_inputs(tokens, vocab, logits, labels, logit_scale);
    void *g = checked_pointer(grad_logprob, Elem::f32, a.t, "grad_logprob", false);
    void *o = checked_pointer(out_grad, a.e, a.n, "out_grad_logits", true);
    released_gil nogil;
    return by_logits(a.e, era_llm_logprob_backward_f32, era_llm_logprob_backward_bf16, [&](auto f, auto t) {
        using T = decltype(t);
        return f(tokens, vocab, ro<T>(a.x), ro<int64_t>(a.lab), ro<float>(a.s), ro<float>(g), rw<T>(o));
    });
}

// ---------------------------------------------------------------------------------------
// Fused linear heads: hidden[tokens*dim] (features[rows*dim]) and weight[vocab*dim]
// (weight[classes*dim]) in place of the logits; every array float32 but the int64 labels.

int llm_linear_logprob_forward(int64_t tokens, int64_t dim, int64_t vocab, py::object hidden, py::object weight,
                               py::object labels, py::object logit_scale, py::object out_logprob,
                               py::object out_entropy) {
    const int64_t t = tokens < 0 ? 0 : tokens;
    void *h = checked_pointer(hidden, Elem::f32, count_or_zero(tokens, dim), "hidden", false);
    void *w = checked_pointer(weight, Elem::f32, count_or_zero(vocab, dim), "weight", false);
    void *lab = checked_pointer(labels, Elem::i64, t, "labels", false);
    void *s = checked_pointer(logit_scale, Elem::f32, t, "logit_scale", false);
    void *ol = checked_pointer(out_logprob, Elem::f32, t, "out_logprob", true);
    void *oh = checked_pointer(out_entropy, Elem::f32, t, "out_entropy", true);
    released_gil nogil;
    return era_llm_linear_logprob_forward_f32(tokens, dim, vocab, static_cast<const float *>(h),
                                              static_cast<const float *>(w), static_cast<const int64_t *>(lab),
                                              static_cast<const float *>(s), static_cast<float *>(ol),
                                              static_cast<float *>(oh));
}

int llm_linear_logprob_backward(int64_t tokens, int64_t dim, int64_t vocab, py::object hidden, py::object weight,
                                py::object labels, py::object logit_scale, py::object grad_logprob,
                                py::object out_grad_hidden, py::object out_grad_weight) {
    const int64_t t = tokens < 0 ? 0 : tokens;
    const int64_t nh = count_or_zero(tokens, dim), nw = count_or_zero(vocab, dim);
    void *h = checked_pointer(hidden, Elem::f32, nh, "hidden", false);
    void *w = checked_pointer(weight, Elem::f32, nw, "weight", false);
    void *lab = checked_pointer(labels, Elem::i64, t, "labels", false);
    void *s = checked_pointer(logit_scale, Elem::f32, t, "logit_scale", false);
    void *g = checked_pointer(grad_logprob, Elem::f32, t, "grad_logprob", false);
    void *oh = checked_pointer(out_grad_hidden, Elem::f32, nh, "out_grad_hidden", true);
    void *ow = checked_pointer(out_grad_weight, Elem::f32, nw, "out_grad_weight", true);
    released_gil nogil;
    return era_llm_linear_logprob_backward_f32(tokens, dim, vocab, static_cast<const float *>(h),
                                               static_cast<const float *>(w), static_cast<const int64_t *>(lab),
                                               static_cast<const float *>(s), static_cast<const float *>(g),
                                               static_cast<float *>(oh), static_cast<float *>(ow));
}

// ---------------------------------------------------------------------------------------
// Top-k log-probabilities: as the four functions above, with top_k (>= 1; era.h).

int llm_topk_logprob_forward(int64_t tokens, int64_t vocab, py::object logits, py::object labels,
                             py::object logit_scale, int64_t top_k, py::object out_logprob, py::object out_entropy) {
    const LogprobInputs a = logprob_inputs(tokens, vocab, logits, labels, logit_scale);
    void *ol = checked_pointer(out_logprob, Elem::f32, a.t, "out_logprob", true);
    void *oh = checked_pointer(out_entropy, Elem::f32, a.t, "out_entropy", true);
    released_gil nogil;
    return by_logits(a.e, era_llm_topk_logprob_forward_f32, era_llm_topk_logprob_forward_bf16, [&](auto f, auto t) {
        using T = decltype(t);
        return f(tokens, vocab, ro<T>(a.x), ro<int64_t>(a.lab), ro<float>(a.s), top_k, rw<float>(ol), rw<float>(oh));
    });
}

int llm_topk_logprob_backward(int64_t tokens, int64_t vocab, py::object logits, py::object labels,
                              py::object logit_scale, int64_t top_k, py::object grad_logprob, py::object out_grad) {
    const LogprobInputs a = logprob_inputs(tokens, vocab, logits, labels, logit_scale);
    void *g = checked_pointer(grad_logprob, Elem::f32, a.t, "grad_logprob", false);
    void *o = checked_pointer(out_grad, a.e, a.n, "out_grad_logits", true);
    released_gil nogil;
    return by_logits(a.e, era_llm_topk_logprob_backward_f32, era_llm_topk_logprob_backward_bf16, [&](auto f, auto t) {
        using T = decltype(t);
        return f(tokens, vocab, ro<T>(a.x), ro<int64_t>(a.lab), ro<float>(a.s), top_k, ro<float>(g), rw<T>(o));
    });
}

int llm_linear_topk_logprob_forward(int64_t tokens, int64_t dim, int64_t vocab, py::object hidden, py::object weight,
                                    py::object labels, py::object logit_scale, int64_t top_k, py::object out_logprob,
                                    py::object out_entropy) {
    const int64_t t = tokens < 0 ? 0 : tokens;
    void *h = checked_pointer(hidden, Elem::f32, count_or_zero(tokens, dim), "hidden", false);
    void *w = checked_pointer(weight, Elem::f32, count_or_zero(vocab, dim), "weight", false);
    void *lab = checked_pointer(labels, Elem::i64, t, "labels", false);
    void *s = checked_pointer(logit_scale, Elem::f32, t, "logit_scale", false);
    void *ol = checked_pointer(out_logprob, Elem::f32, t, "out_logprob", true);
    void *oh = checked_pointer(out_entropy, Elem::f32, t, "out_entropy", true);
    released_gil nogil;
    return era_llm_linear_topk_logprob_forward_f32(tokens, dim, vocab, static_cast<const float *>(h),
                                                   static_cast<const float *>(w), static_cast<const int64_t *>(lab),
                                                   static_cast<const float *>(s), top_k, static_cast<float *>(ol),
                                                   static_cast<float *>(oh));
}

int llm_linear_topk_logprob_backward(int64_t tokens, int64_t dim, int64_t vocab, py::object hidden, py::object weight,
                                     py::object labels, py::object logit_scale, int64_t top_k,
                                     py::object grad_logprob, py::object out_grad_hidden,
                                     py::object out_grad_weight) {
    const int64_t t = tokens < 0 ? 0 : tokens;
    const int64_t nh = count_or_zero(tokens, dim), nw = count_or_zero(vocab, dim);
    void *h = checked_pointer(hidden, Elem::f32, nh, "hidden", false);
    void *w = checked_pointer(weight, Elem::f32, nw, "weight", false);
    void *lab = checked_pointer(labels, Elem::i64, t, "labels", false);
    void *s = checked_pointer(logit_scale, Elem::f32, t, "logit_scale", false);
    void *g = checked_pointer(grad_logprob, Elem::f32, t, "grad_logprob", false);
    void *oh = checked_pointer(out_grad_hidden, Elem::f32, nh, "out_grad_hidden", true);
    void *ow = checked_pointer(out_grad_weight, Elem::f32, nw, "out_grad_weight", true);
    released_gil nogil;
    return era_llm_linear_topk_logprob_backward_f32(tokens, dim, vocab, static_cast<const float *>(h),
                                                    static_cast<const float *>(w), static_cast<const int64_t *>(lab),
                                                    static_cast<const float *>(s), top_k,
                                                    static_cast<const float *>(g), static_cast<float *>(oh),
                                                    static_cast<float *>(ow));
}

int linear_discrete_ce(double target, double tau, int32_t mode, int64_t rows, int64_t dim, int64_t classes,
                       py::object features, py::object weight, py::object bias, py::object labels,
                       py::object out_loss, py::object out_grad_features, py::object out_grad_weight,
                       py::object out_grad_bias) {
    const int64_t r = rows < 0 ? 0 : rows, c = classes < 0 ? 0 : classes;
    const int64_t nf = count_or_zero(rows, dim), nw = count_or_zero(classes, dim);
    void *f = checked_pointer(features, Elem::f32, nf, "features", false);
    void *w = checked_pointer(weight, Elem::f32, nw, "weight", false);
    void *b = checked_pointer(bias, Elem::f32, c, "bias", false);
    void *lab = checked_pointer(labels, Elem::i64, r, "labels", false);
    void *ol = checked_pointer(out_loss, Elem::f32, 1, "out_loss", true);
    void *of = checked_pointer(out_grad_features, Elem::f32, nf, "out_grad_features", true);
    void *ow = checked_pointer(out_grad_weight, Elem::f32, nw, "out_grad_weight", true);
    void *ob = checked_pointer(out_grad_bias, Elem::f32, c, "out_grad_bias", true);
    const era_discrete_params p = discrete_params(target, tau, mode);
    released_gil nogil;
    return era_linear_discrete_ce_f32(&p, rows, dim, classes, static_cast<const float *>(f),
                                      static_cast<const float *>(w), static_cast<const float *>(b),
                                      static_cast<const int64_t *>(lab), static_cast<float *>(ol),
                                      static_cast<float *>(of), static_cast<float *>(ow), static_cast<float *>(ob));
}

// ---------------------------------------------------------------------------------------
// Bound verification: (status, report tuple or None)

py::tuple check_discrete(double target, double tau, int32_t mode, int64_t rows, int64_t classes, py::object out_logits,
                         double tol) {
    const Elem e = float_elem(out_logits, "out_logits", true, false);
    void *x = checked_pointer(out_logits, e, count_or_zero(rows, classes), "out_logits", false);
    const era_discrete_params p = discrete_params(target, tau, mode);
    era_bound_report report{};
    era_status s;
    {
        released_gil nogil;
        s = e == Elem::f32 ? era_check_discrete_f32(&p, rows, classes, static_cast<const float *>(x), tol, &report)
                           : era_check_discrete_f64(&p, rows, classes, static_cast<const double *>(x), tol, &report);
    }
    return py::make_tuple(static_cast<int>(s), s == ERA_OK ? report_tuple(report) : py::none());
}

py::tuple check_continuous(double target, double residual, double log_std_min, double log_std_max, int64_t rows,
                           int64_t dim, py::object mean, py::object log_std, double tol) {
    const Elem e = float_elem(log_std, "log_std", true, false);
    const int64_t n = count_or_zero(rows, dim);
    void *m = checked_pointer(mean, e, n, "mean", false);
    void *x = checked_pointer(log_std, e, n, "log_std", false);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    era_bound_report report{};
    era_status s;
    {
        released_gil nogil;
        s = e == Elem::f32 ? era_check_continuous_f32(&p, rows, dim, static_cast<const float *>(m),
                                                      static_cast<const float *>(x), tol, &report)
                           : era_check_continuous_f64(&p, rows, dim, static_cast<const double *>(m),
                                                      static_cast<const double *>(x), tol, &report);
    }
    return py::make_tuple(static_cast<int>(s), s == ERA_OK ? report_tuple(report) : py::none());
}

// ---------------------------------------------------------------------------------------
// The truncated-normal entropy gradient and the sampled floor

int truncated_normal_entropy_backward(int64_t rows, int64_t dim, py::object loc, py::object log_std, double lo,
                                      double hi, py::object grad_entropy, py::object out_loc, py::object out_log_std) {
    const Elem e = float_elem(log_std, "log_std", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *l = checked_pointer(loc, e, n, "loc", false);
    void *x = checked_pointer(log_std, e, n, "log_std", false);
    void *g = checked_pointer(grad_entropy, e, r, "grad_entropy", false);
    void *ol = checked_pointer(out_loc, e, n, "out_grad_loc", true);
    void *ox = checked_pointer(out_log_std, e, n, "out_grad_log_std", true);
    released_gil nogil;
    return by_float(e, era_truncated_normal_entropy_backward_f32, era_truncated_normal_entropy_backward_f64,
                    [&](auto f, auto t) {
                        using T = decltype(t);
                        return f(rows, dim, ro<T>(l), ro<T>(x), lo, hi, ro<T>(g), rw<T>(ol), rw<T>(ox));
                    });
}

int continuous_truncated_forward(double target, double residual, double log_std_min, double log_std_max, int64_t rows,
                                 int64_t dim, py::object std_logits, py::object loc, double lo, double hi,
                                 py::object out, py::object out_offset) {
    const Elem e = float_elem(std_logits, "std_logits", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *x = checked_pointer(std_logits, e, n, "std_logits", false);
    void *l = checked_pointer(loc, e, n, "loc", false);
    void *o = checked_pointer(out, e, n, "out_log_std", true);
    void *oc = checked_pointer(out_offset, e, r, "out_offset", true);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    released_gil nogil;
    return by_float(e, era_continuous_truncated_forward_f32, era_continuous_truncated_forward_f64, [&](auto f, auto t) {
        using T = decltype(t);
        return f(&p, rows, dim, ro<T>(x), ro<T>(l), lo, hi, rw<T>(o), rw<T>(oc));
    });
}

int continuous_truncated_backward(double target, double residual, double log_std_min, double log_std_max,
                                  int64_t rows, int64_t dim, py::object std_logits, py::object loc, double lo,
                                  double hi, py::object grad_log_std, py::object out, py::object out_loc,
                                  py::object out_residual) {
    const Elem e = float_elem(std_logits, "std_logits", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *x = checked_pointer(std_logits, e, n, "std_logits", false);
    void *l = checked_pointer(loc, e, n, "loc", false);
    void *g = checked_pointer(grad_log_std, e, n, "grad_log_std", false);
    void *o = checked_pointer(out, e, n, "out_grad_std_logits", true);
    void *ol = checked_pointer(out_loc, e, n, "out_grad_loc", true);
    void *od = checked_pointer(out_residual, e, r, "out_grad_residual", true);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    released_gil nogil;
    return by_float(e, era_continuous_truncated_backward_f32, era_continuous_truncated_backward_f64, [&](auto f, auto t) {
        using T = decltype(t);
        return f(&p, rows, dim, ro<T>(x), ro<T>(l), lo, hi, ro<T>(g), rw<T>(o), rw<T>(ol), rw<T>(od));
    });
}

py::tuple check_continuous_truncated(double target, double residual, double log_std_min, double log_std_max,
                                     int64_t rows, int64_t dim, py::object loc, py::object log_std, double lo,
                                     double hi, double tol) {
    const Elem e = float_elem(log_std, "log_std", true, false);
    const int64_t n = count_or_zero(rows, dim);
    void *l = checked_pointer(loc, e, n, "loc", false);
    void *x = checked_pointer(log_std, e, n, "log_std", false);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    era_bound_report report{};
    era_status s;
    {
        released_gil nogil;
        s = by_float(e, era_check_continuous_truncated_f32, era_check_continuous_truncated_f64, [&](auto f, auto t) {
            using T = decltype(t);
            return f(&p, rows, dim, ro<T>(l), ro<T>(x), lo, hi, tol, &report);
        });
    }
    return py::make_tuple(static_cast<int>(s), s == ERA_OK ? report_tuple(report) : py::none());
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Truncated-normal policy: element-wise over rows x dim, inputs then outputs, all of the
// float type of `loc`.

namespace {

template <int Inputs, int Outputs, typename F32, typename F64, typename Call>
int truncated_normal_elementwise(F32 f32, F64 f64, Call call, int64_t rows, int64_t dim,
                                 const std::array<py::object, Inputs + Outputs> &arrays,
                                 const std::array<const char *, Inputs + Outputs> &names) {
    const Elem e = float_elem(arrays[0], names[0], true, false);
    const int64_t n = count_or_zero(rows, dim);
    std::array<void *, Inputs + Outputs> p{};
    for (int i = 0; i < Inputs + Outputs; i++) p[i] = checked_pointer(arrays[i], e, n, names[i], i >= Inputs);
    released_gil nogil;
    return by_float(e, f32, f64, [&](auto f, auto t) { return call(f, t, p); });
}

int truncated_normal_sample(int64_t rows, int64_t dim, py::object loc, py::object log_std, double lo, double hi,
                            py::object uniform, py::object out) {
    return truncated_normal_elementwise<3, 1>(
        era_truncated_normal_sample_f32, era_truncated_normal_sample_f64,
        [&](auto f, auto t, const auto &p) {
            using T = decltype(t);
            return f(rows, dim, ro<T>(p[0]), ro<T>(p[1]), lo, hi, ro<T>(p[2]), rw<T>(p[3]));
        },
        rows, dim, {loc, log_std, uniform, out}, {"loc", "log_std", "uniform", "out_sample"});
}

int truncated_normal_sample_backward(int64_t rows, int64_t dim, py::object loc, py::object log_std, double lo,
                                     double hi, py::object sample, py::object grad_sample, py::object out_loc,
                                     py::object out_log_std) {
    return truncated_normal_elementwise<4, 2>(
        era_truncated_normal_sample_backward_f32, era_truncated_normal_sample_backward_f64,
        [&](auto f, auto t, const auto &p) {
            using T = decltype(t);
            return f(rows, dim, ro<T>(p[0]), ro<T>(p[1]), lo, hi, ro<T>(p[2]), ro<T>(p[3]), rw<T>(p[4]), rw<T>(p[5]));
        },
        rows, dim, {loc, log_std, sample, grad_sample, out_loc, out_log_std},
        {"loc", "log_std", "sample", "grad_sample", "out_grad_loc", "out_grad_log_std"});
}

int truncated_normal_log_prob(int64_t rows, int64_t dim, py::object loc, py::object log_std, double lo, double hi,
                              py::object x, py::object out) {
    return truncated_normal_elementwise<3, 1>(
        era_truncated_normal_log_prob_f32, era_truncated_normal_log_prob_f64,
        [&](auto f, auto t, const auto &p) {
            using T = decltype(t);
            return f(rows, dim, ro<T>(p[0]), ro<T>(p[1]), lo, hi, ro<T>(p[2]), rw<T>(p[3]));
        },
        rows, dim, {loc, log_std, x, out}, {"loc", "log_std", "x", "out_log_prob"});
}

int truncated_normal_log_prob_backward(int64_t rows, int64_t dim, py::object loc, py::object log_std, double lo,
                                       double hi, py::object x, py::object grad_log_prob, py::object out_x,
                                       py::object out_loc, py::object out_log_std) {
    return truncated_normal_elementwise<4, 3>(
        era_truncated_normal_log_prob_backward_f32, era_truncated_normal_log_prob_backward_f64,
        [&](auto f, auto t, const auto &p) {
            using T = decltype(t);
            return f(rows, dim, ro<T>(p[0]), ro<T>(p[1]), lo, hi, ro<T>(p[2]), ro<T>(p[3]), rw<T>(p[4]), rw<T>(p[5]),
                     rw<T>(p[6]));
        },
        rows, dim, {loc, log_std, x, grad_log_prob, out_x, out_loc, out_log_std},
        {"loc", "log_std", "x", "grad_log_prob", "out_grad_x", "out_grad_loc", "out_grad_log_std"});
}

}  // namespace

void register_truncated_normal(py::module_ &m) {
    m.def("truncated_normal_sample", &truncated_normal_sample);
    m.def("truncated_normal_sample_backward", &truncated_normal_sample_backward);
    m.def("truncated_normal_log_prob", &truncated_normal_log_prob);
    m.def("truncated_normal_log_prob_backward", &truncated_normal_log_prob_backward);
}

// ---------------------------------------------------------------------------------------
// The tanh-Gaussian entropy gradient and the tanh sampled floor

namespace {

int tanh_gaussian_entropy_backward(int64_t rows, int64_t dim, py::object mean, py::object log_std,
                                   py::object grad_entropy, py::object out_mean, py::object out_log_std) {
    const Elem e = float_elem(log_std, "log_std", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *m = checked_pointer(mean, e, n, "mean", false);
    void *x = checked_pointer(log_std, e, n, "log_std", false);
    void *g = checked_pointer(grad_entropy, e, r, "grad_entropy", false);
    void *om = checked_pointer(out_mean, e, n, "out_grad_mean", true);
    void *ox = checked_pointer(out_log_std, e, n, "out_grad_log_std", true);
    released_gil nogil;
    return by_float(e, era_tanh_gaussian_entropy_backward_f32, era_tanh_gaussian_entropy_backward_f64,
                    [&](auto f, auto t) {
                        using T = decltype(t);
                        return f(rows, dim, ro<T>(m), ro<T>(x), ro<T>(g), rw<T>(om), rw<T>(ox));
                    });
}

int continuous_tanh_forward(double target, double residual, double log_std_min, double log_std_max, int64_t rows,
                            int64_t dim, py::object std_logits, py::object mean, py::object out, py::object out_offset) {
    const Elem e = float_elem(std_logits, "std_logits", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *x = checked_pointer(std_logits, e, n, "std_logits", false);
    void *m = checked_pointer(mean, e, n, "mean", false);
    void *o = checked_pointer(out, e, n, "out_log_std", true);
    void *oc = checked_pointer(out_offset, e, r, "out_offset", true);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    released_gil nogil;
    return by_float(e, era_continuous_tanh_forward_f32, era_continuous_tanh_forward_f64, [&](auto f, auto t) {
        using T = decltype(t);
        return f(&p, rows, dim, ro<T>(x), ro<T>(m), rw<T>(o), rw<T>(oc));
    });
}

int continuous_tanh_backward(double target, double residual, double log_std_min, double log_std_max, int64_t rows,
                             int64_t dim, py::object std_logits, py::object mean, py::object grad_log_std,
                             py::object out, py::object out_mean, py::object out_residual) {
    const Elem e = float_elem(std_logits, "std_logits", true, false);
    const int64_t n = count_or_zero(rows, dim), r = rows < 0 ? 0 : rows;
    void *x = checked_pointer(std_logits, e, n, "std_logits", false);
    void *m = checked_pointer(mean, e, n, "mean", false);
    void *g = checked_pointer(grad_log_std, e, n, "grad_log_std", false);
    void *o = checked_pointer(out, e, n, "out_grad_std_logits", true);
    void *om = checked_pointer(out_mean, e, n, "out_grad_mean", true);
    void *od = checked_pointer(out_residual, e, r, "out_grad_residual", true);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    released_gil nogil;
    return by_float(e, era_continuous_tanh_backward_f32, era_continuous_tanh_backward_f64, [&](auto f, auto t) {
        using T = decltype(t);
        return f(&p, rows, dim, ro<T>(x), ro<T>(m), ro<T>(g), rw<T>(o), rw<T>(om), rw<T>(od));
    });
}

py::tuple check_continuous_tanh(double target, double residual, double log_std_min, double log_std_max, int64_t rows,
                                int64_t dim, py::object mean, py::object log_std, double tol) {
    const Elem e = float_elem(log_std, "log_std", true, false);
    const int64_t n = count_or_zero(rows, dim);
    void *m = checked_pointer(mean, e, n, "mean", false);
    void *x = checked_pointer(log_std, e, n, "log_std", false);
    const era_continuous_params p = continuous_params(target, residual, log_std_min, log_std_max);
    era_bound_report report{};
    era_status s;
    {
        released_gil nogil;
        s = by_float(e, era_check_continuous_tanh_f32, era_check_continuous_tanh_f64, [&](auto f, auto t) {
            using T = decltype(t);
            return f(&p, rows, dim, ro<T>(m), ro<T>(x), tol, &report);
        });
    }
    return py::make_tuple(static_cast<int>(s), s == ERA_OK ? report_tuple(report) : py::none());
}

}  // namespace

void register_tanh_floor(py::module_ &m) {
    m.def("tanh_gaussian_entropy_backward", &tanh_gaussian_entropy_backward);
    m.def("continuous_tanh_forward", &continuous_tanh_forward);
    m.def("continuous_tanh_backward", &continuous_tanh_backward);
    m.def("check_continuous_tanh", &check_continuous_tanh);
}

PYBIND11_MODULE(_era, m) {
    m.doc() = "libera's C ABI (include/era.h), one function per entry point; use the era package, not this module.";

    m.attr("HEADER_ABI_VERSION") = ERA_ABI_VERSION;
    m.attr("HEADER_VERSION") = py::make_tuple(ERA_VERSION_MAJOR, ERA_VERSION_MINOR, ERA_VERSION_PATCH);
    m.attr("DISCRETE_EXACT") = static_cast<int>(ERA_DISCRETE_EXACT);
    m.attr("DISCRETE_TIGHT") = static_cast<int>(ERA_DISCRETE_TIGHT);
    m.attr("DISCRETE_REFERENCE") = static_cast<int>(ERA_DISCRETE_REFERENCE);
    py::dict statuses;
    statuses["OK"] = static_cast<int>(ERA_OK);
    statuses["NULL_POINTER"] = static_cast<int>(ERA_ERR_NULL_POINTER);
    statuses["BAD_SHAPE"] = static_cast<int>(ERA_ERR_BAD_SHAPE);
    statuses["BAD_PARAMETER"] = static_cast<int>(ERA_ERR_BAD_PARAMETER);
    statuses["INFEASIBLE_TARGET"] = static_cast<int>(ERA_ERR_INFEASIBLE_TARGET);
    statuses["NON_FINITE"] = static_cast<int>(ERA_ERR_NON_FINITE);
    statuses["ALLOCATION"] = static_cast<int>(ERA_ERR_ALLOCATION);
    statuses["INTERNAL"] = static_cast<int>(ERA_ERR_INTERNAL);
    statuses["BAD_INDEX"] = static_cast<int>(ERA_ERR_BAD_INDEX);
    statuses["OVERLAP"] = static_cast<int>(ERA_ERR_OVERLAP);
    m.attr("STATUS") = statuses;

    m.def("abi_version", &era_abi_version, "era_abi_version(): the ABI version libera was built with.");
    m.def("version_string", []() { return std::string(era_version_string()); }, "era_version_string().");
    m.def("status_string", [](int s) { return std::string(era_status_string(static_cast<era_status>(s))); },
          py::arg("status"), "era_status_string(status).");
    m.def("set_num_threads", [](int32_t n) { return static_cast<int>(era_set_num_threads(n)); }, py::arg("n"));
    m.def("get_num_threads", &era_get_num_threads);

    m.def("continuous_defaults", []() {
        era_continuous_params p;
        era_continuous_params_init(&p);
        py::dict d;
        d["target_entropy"] = p.target_entropy;
        d["residual"] = p.residual;
        d["log_std_min"] = p.log_std_min;
        d["log_std_max"] = p.log_std_max;
        return d;
    });
    m.def("discrete_defaults", []() {
        era_discrete_params p;
        era_discrete_params_init(&p);
        py::dict d;
        d["target_entropy"] = p.target_entropy;
        d["tau"] = p.tau;
        d["mode"] = p.mode;
        return d;
    });
    m.def("llm_defaults", []() {
        era_llm_params p;
        era_llm_params_init(&p);
        py::dict d;
        d["omega_low"] = p.omega_low;
        d["omega_high"] = p.omega_high;
        d["k"] = p.k;
        d["top_fraction"] = p.top_fraction;
        d["scale_advantages"] = p.scale_advantages != 0;
        return d;
    });

    m.def("softmax_entropy", &softmax_entropy);
    m.def("gaussian_entropy", &gaussian_entropy);
    m.def("tanh_gaussian_entropy", &tanh_gaussian_entropy);
    m.def("truncated_normal_entropy", &truncated_normal_entropy);
    m.def("continuous_forward", &continuous_forward);
    m.def("continuous_backward", &continuous_backward);
    m.def("discrete_floor", [](double target, double tau, int32_t mode, int64_t classes) {
        return discrete_scalar(&era_discrete_floor, target, tau, mode, classes);
    });
    m.def("discrete_infimum", [](double target, double tau, int32_t mode, int64_t classes) {
        return discrete_scalar(&era_discrete_infimum, target, tau, mode, classes);
    });
    m.def("discrete_constant", [](double target, double tau, int32_t mode, int64_t classes) {
        return discrete_scalar(&era_discrete_constant, target, tau, mode, classes);
    });
    m.def("discrete_forward", &discrete_forward);
    m.def("discrete_backward", &discrete_backward);
    m.def("token_entropy", &token_entropy);
    m.def("llm_response_entropy", &llm_response_entropy);
    m.def("llm_scales", &llm_scales);
    m.def("llm_logprob_forward", &llm_logprob_forward);
    m.def("llm_logprob_backward", &llm_logprob_backward);
    m.def("llm_linear_logprob_forward", &llm_linear_logprob_forward);
    m.def("llm_linear_logprob_backward", &llm_linear_logprob_backward);
    m.def("linear_discrete_ce", &linear_discrete_ce);
    m.def("check_discrete", &check_discrete);
    m.def("check_continuous", &check_continuous);
    m.def("llm_topk_logprob_forward", &llm_topk_logprob_forward);
    m.def("llm_topk_logprob_backward", &llm_topk_logprob_backward);
    m.def("llm_linear_topk_logprob_forward", &llm_linear_topk_logprob_forward);
    m.def("llm_linear_topk_logprob_backward", &llm_linear_topk_logprob_backward);
    register_truncated_normal(m);
    m.def("truncated_normal_entropy_backward", &truncated_normal_entropy_backward);
    m.def("continuous_truncated_forward", &continuous_truncated_forward);
    m.def("continuous_truncated_backward", &continuous_truncated_backward);
    m.def("check_continuous_truncated", &check_continuous_truncated);
    register_tanh_floor(m);
}
