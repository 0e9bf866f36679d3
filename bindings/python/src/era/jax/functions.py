"""ERA for JAX arrays: XLA FFI custom calls into libera on CPU, the shared jax.numpy formulas
elsewhere (era/jax/_ffi.py); usable under jit, vmap, grad, jvp, jacfwd, hessian and
jax.export.

- continuous_era, discrete_era: jax.custom_jvp. The primal comes from libera (or the
  formula); the tangent rule is linear in the tangents, in jax.numpy, on the primal's
  output (era._formulas.*_jvp), so reverse mode is its transpose and forward mode (jvp,
  jacfwd, hessian) works as well.
- llm_logprob: jax.custom_vjp, forward and backward from libera (or the formulas): the
  backward over a vocabulary-sized row is what libera is fastest at.
- Entropies are metrics: their inputs pass through lax.stop_gradient.

Parameters that configure the activation (target entropy, tau, mode, clip range) are static
Python numbers, checked by libera when the function is called or traced; the continuous
residual is an array and differentiable.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import ShapeDtypeStruct

from .. import _formulas as F
from .. import continuous as _continuous
from .. import discrete as _discrete
from .. import entropy as _entropy
from .. import llm as _llm
from .._arrays import is_bfloat16
from .._errors import BadParameterError, BadShapeError, DTypeError, python_error
from . import _ffi

__all__ = [
    "continuous_era",
    "discrete_era",
    "llm_logprob",
    "softmax_entropy",
    "gaussian_entropy",
    "tanh_gaussian_entropy",
    "truncated_normal_entropy",
    "token_entropy",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
JNP = F.namespace(jnp)


def _float_rows(x, where: str, name: str, allowed=FLOAT_DTYPES, bf16: bool = False):
    """Checks dtype (no casts) and that x has a row axis; returns it as a JAX array."""
    x = jnp.asarray(x)
    dtype = np.dtype(x.dtype)
    if not (dtype in allowed or (bf16 and is_bfloat16(dtype))):
        names = " or ".join(str(d) for d in allowed) + (" or bfloat16" if bf16 else "")
        raise python_error(DTypeError, where, f"{name} has dtype {dtype}; this kernel takes {names}")
    if x.ndim == 0:
        raise python_error(BadShapeError, where, f"{name} is a scalar; it needs a last axis (the row)")
    return x


def _same(x, y, where: str, name: str, ref: str):
    y = jnp.asarray(y)
    if y.shape != x.shape or y.dtype != x.dtype:
        raise python_error(BadShapeError if y.dtype == x.dtype else DTypeError, where,
                           f"{name} is {y.dtype}{list(y.shape)}, {ref} is {x.dtype}{list(x.shape)}")
    return y


def _wide(x):
    """x in the dtype ERA computes its rows in (float64 for float32 rows when JAX has x64)."""
    return JNP.astype(x, F.compute_dtype(JNP, x))


def poisoned(out, faults):
    """out with NaN in the rows whose fault code is not 0 (the formulas' way of refusing bad
    data where nothing can raise: inside a program compiled for an accelerator)."""
    bad = faults != 0
    while bad.ndim < out.ndim:
        bad = bad[..., None]
    return jnp.where(bad, jnp.nan, out).astype(out.dtype)


def _numpy(fn, *arrays):
    """fn on numpy views of concrete CPU arrays, results as JAX arrays: era's own exception
    classes for refused calls, outside any transformation."""
    result = fn(*[None if a is None else np.asarray(a) for a in arrays])
    return jax.tree_util.tree_map(jnp.asarray, result)


# ---------------------------------------------------------------------------------------
# Continuous ERA (math 1)


@partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5))
def _continuous_era(std_logits, residual, target_entropy, log_std_min, log_std_max, backend):
    if backend != "jnp" and _ffi.concrete_on_cpu(std_logits, residual):
        return _numpy(lambda s, r: _continuous.continuous_forward(s, target_entropy, residual=float(r),
                                                                  log_std_min=log_std_min, log_std_max=log_std_max),
                      std_logits, residual)

    def ffi(s, r):
        return _ffi.call("era_continuous_forward", ShapeDtypeStruct(s.shape, s.dtype), s, r,
                         target_entropy=target_entropy, log_std_min=log_std_min, log_std_max=log_std_max)

    def formula(s, r):
        wide = _wide(s)
        delta = r.astype(wide.dtype)
        k = F.continuous_offset(s.shape[-1], target_entropy, log_std_max) + delta
        y = poisoned(F.continuous_forward(JNP, wide, k, log_std_min, log_std_max),
                     F.continuous_faults(JNP, wide, k, delta))
        return y if wide.dtype == s.dtype else F.round_up_to(JNP, y, s.dtype, log_std_max)

    return _ffi.select(backend, (std_logits, residual), ffi, formula)


@_continuous_era.defjvp
def _continuous_jvp(target_entropy, log_std_min, log_std_max, backend, primals, tangents):
    std_logits, residual = primals
    d_std_logits, d_residual = tangents
    out = _continuous_era(std_logits, residual, target_entropy, log_std_min, log_std_max, backend)
    k = F.continuous_offset(std_logits.shape[-1], target_entropy, log_std_max) + residual
    tangent = F.continuous_jvp(JNP, std_logits, d_std_logits, k, d_residual, log_std_min, log_std_max)
    return out, tangent.astype(out.dtype)


def continuous_era(
    std_logits,
    target_entropy: float,
    residual=_continuous.RESIDUAL,
    *,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
    backend: str = "auto",
):
    """Continuous ERA log stds (docs/math.md section 1).

    Args:
        std_logits: ``[..., D]`` float32/float64 raw scale outputs.
        target_entropy: H0 in nats (static).
        residual: delta >= 0 in nats, a scalar (array); differentiable (its gradient sums
            over the rows). Under vmap it may differ per example.
        log_std_min, log_std_max: the clip range (static).
        backend: "auto", "ffi" or "jnp" (era/jax/_ffi.py).
    Returns:
        ``[..., D]`` log stds with Gaussian entropy >= H0 + delta per row (float32 values
        rounded upwards).
    """
    where = "era.jax.continuous_era"
    _ffi.check_backend(backend, where)
    std_logits = _float_rows(std_logits, where, "std_logits")
    residual = jnp.asarray(residual, dtype=std_logits.dtype)
    if residual.ndim != 0:
        raise python_error(BadShapeError, where, f"residual must be a scalar, got shape {residual.shape}")
    # libera checks the static parameters now, on zero rows (with delta = 0).
    _continuous.continuous_forward(
        np.zeros((0, std_logits.shape[-1]), np.dtype(std_logits.dtype)), float(target_entropy),
        log_std_min=float(log_std_min), log_std_max=float(log_std_max),
    )
    return _continuous_era(std_logits, residual, float(target_entropy), float(log_std_min), float(log_std_max),
                           backend)


# ---------------------------------------------------------------------------------------
# Discrete ERA (math 2)


@partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3, 4))
def _discrete_era(logits, target_entropy, tau, mode, backend):
    if backend != "jnp" and _ffi.concrete_on_cpu(logits):
        return _numpy(lambda z: _discrete.discrete_forward(z, target_entropy, tau=tau, mode=mode), logits)

    def ffi(z):
        return _ffi.call("era_discrete_forward", ShapeDtypeStruct(z.shape, z.dtype), z,
                         target_entropy=target_entropy, tau=tau, mode=int(_discrete.MODES[mode]))

    def formula(z):
        a, b = _slope_offset(z.shape[-1], target_entropy, tau, mode)
        wide = _wide(z)
        return poisoned(F.discrete_forward(JNP, wide, a, b, tau, mode), F.discrete_faults(JNP, wide)).astype(z.dtype)

    return _ffi.select(backend, (logits,), ffi, formula)


def _slope_offset(classes, target_entropy, tau, mode):
    c = _discrete.discrete_constant(classes, target_entropy, tau=tau, mode=mode)
    return F.discrete_slope_offset(classes, c, tau)


@_discrete_era.defjvp
def _discrete_jvp(target_entropy, tau, mode, backend, primals, tangents):
    (logits,), (d_logits,) = primals, tangents
    out = _discrete_era(logits, target_entropy, tau, mode, backend)
    a, b = _slope_offset(logits.shape[-1], target_entropy, tau, mode)
    wide = _wide(logits)
    tangent = F.discrete_jvp(JNP, wide, out.astype(wide.dtype), d_logits.astype(wide.dtype), a, b, tau, mode)
    return out, tangent.astype(out.dtype)


def discrete_era(logits, target_entropy: float, *, tau: float = _discrete.TAU, mode: str = _discrete.DEFAULT_MODE,
                 backend: str = "auto"):
    """Discrete ERA output logits (docs/math.md section 2).

    Args:
        logits: ``[..., D]`` float32/float64, D >= 2.
        target_entropy: H0 in nats; tau > e; mode "exact", "tight" or "reference" (static).
        backend: "auto", "ffi" or "jnp" (era/jax/_ffi.py).
    Returns:
        ``[..., D]`` logits whose softmax keeps an entropy >= H0 (modes exact, tight).
    """
    where = "era.jax.discrete_era"
    _ffi.check_backend(backend, where)
    logits = _float_rows(logits, where, "logits")
    # libera checks the parameters (and the class count) now.
    _discrete.mode_number(mode, where)
    _discrete.discrete_constant(logits.shape[-1], float(target_entropy), tau=float(tau), mode=mode)
    return _discrete_era(logits, float(target_entropy), float(tau), mode, backend)


# ---------------------------------------------------------------------------------------
# LLM log-probabilities (math 3)


def _int64(a: np.ndarray) -> np.ndarray:
    # JAX's default integer is int32 (int64 needs jax_enable_x64): widen, losslessly.
    return a if a.dtype == np.int64 else a.astype(np.int64)


def _logprob_forward(logits, labels, logit_scale, has_scale, backend, top_k=0):
    if backend != "jnp" and _ffi.concrete_on_cpu(logits, labels, logit_scale):
        def host(z, a, s):
            result = _llm.llm_logprob_forward(z, _int64(a), s if has_scale else None, top_k=top_k or None)
            return result.logprob, result.entropy

        return _numpy(host, logits, labels, logit_scale)
    spec = ShapeDtypeStruct(labels.shape, jnp.float32)

    def ffi(z, a, s):
        if top_k:
            return _ffi.call("era_llm_topk_logprob_forward", (spec, spec), z, a, s, has_scale=has_scale, top_k=top_k)
        return _ffi.call("era_llm_logprob_forward", (spec, spec), z, a, s, has_scale=has_scale)

    def formula(z, a, s):
        wide, scale = z.astype(jnp.float32), s if has_scale else None
        if top_k:
            logprob, entropy = F.topk_logprob_forward(JNP, wide, F.safe_labels(JNP, a, z.shape[-1]), scale, top_k)
        else:
            logprob, entropy = F.logprob_forward(JNP, wide, F.safe_labels(JNP, a, z.shape[-1]), scale)
        faults = F.llm_faults(JNP, wide, a, scale)
        return poisoned(logprob, faults), poisoned(entropy, faults)

    return _ffi.select(backend, (logits, labels, logit_scale), ffi, formula)


def _logprob_backward(logits, labels, logit_scale, grad_logprob, has_scale, backend, top_k=0):
    if backend != "jnp" and _ffi.concrete_on_cpu(logits, labels, logit_scale, grad_logprob):
        return _numpy(lambda z, a, s, g: _llm.llm_logprob_backward(z, _int64(a), s if has_scale else None, g,
                                                                   top_k=top_k or None),
                      logits, labels, logit_scale, grad_logprob)

    def ffi(z, a, s, g):
        if top_k:
            return _ffi.call("era_llm_topk_logprob_backward", ShapeDtypeStruct(z.shape, z.dtype), z, a, s, g,
                             has_scale=has_scale, top_k=top_k)
        return _ffi.call("era_llm_logprob_backward", ShapeDtypeStruct(z.shape, z.dtype), z, a, s, g,
                         has_scale=has_scale)

    def formula(z, a, s, g):
        wide, scale = z.astype(jnp.float32), s if has_scale else None
        if top_k:
            grad = F.topk_logprob_backward(JNP, wide, F.safe_labels(JNP, a, z.shape[-1]), scale, g, top_k)
        else:
            grad = F.logprob_backward(JNP, wide, F.safe_labels(JNP, a, z.shape[-1]), scale, g)
        return poisoned(grad, F.llm_faults(JNP, wide, a, scale, g)).astype(z.dtype)

    return _ffi.select(backend, (logits, labels, logit_scale, grad_logprob), ffi, formula)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _logprob(logits, labels, logit_scale, has_scale, backend, top_k):
    return _logprob_forward(logits, labels, logit_scale, has_scale, backend, top_k)


def _logprob_fwd(logits, labels, logit_scale, has_scale, backend, top_k):
    return _logprob_forward(logits, labels, logit_scale, has_scale, backend, top_k), (logits, labels, logit_scale)


def _logprob_bwd(has_scale, backend, top_k, saved, cotangents):
    logits, labels, logit_scale = saved
    grad_logprob, _ = cotangents  # the entropy is not differentiated
    grad = _logprob_backward(logits, labels, logit_scale, grad_logprob.astype(jnp.float32), has_scale, backend,
                             top_k)
    return grad, None, None


_logprob.defvjp(_logprob_fwd, _logprob_bwd)


def llm_logprob(logits, labels, logit_scale=None, *, backend: str = "auto",
                top_k: Optional[int] = None) -> Tuple[jax.Array, jax.Array]:
    """ERA log-probabilities ``s_t*z_t[a_t] - logsumexp(s_t*z_t)`` and the entropy of
    softmax(s_t*z_t), a custom_vjp over libera (reverse mode only).

    Args:
        logits: ``[..., V]`` float32 or bfloat16 (libera has no float64 log-prob kernel).
        labels: ``[...]`` integer sampled tokens (int32 or int64).
        logit_scale: ``[...]`` float32 scales, or None for 1; held constant.
        backend: "auto", "ffi" or "jnp" (era/jax/_ffi.py).
        top_k: None, or k >= 1 (a static Python int): the top-k log-prob of the official
            ERA-LLM actor (era.llm_logprob_forward: -1e4 with zero gradient for a label
            outside the k largest logits, the lower index winning a tie; the entropy stays
            the full-vocabulary one). k < 1: BadParameterError.
    Returns:
        (logprob, entropy), float32 ``[...]``; the gradient flows to `logits` through
        logprob only.
    """
    where = "era.jax.llm_logprob"
    k = _top_k(top_k, where)
    _ffi.check_backend(backend, where)
    logits = _float_rows(logits, where, "logits", allowed=(np.dtype(np.float32),), bf16=True)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.shape != logits.shape[:-1]:
        raise python_error(BadShapeError if jnp.issubdtype(labels.dtype, jnp.integer) else DTypeError, where,
                           f"labels must be integers of shape {logits.shape[:-1]}, got "
                           f"{labels.dtype}{list(labels.shape)}")
    has_scale = logit_scale is not None
    if not has_scale:
        logit_scale = jnp.ones(labels.shape, jnp.float32)
    logit_scale = jax.lax.stop_gradient(jnp.asarray(logit_scale))
    if logit_scale.dtype != jnp.float32 or logit_scale.shape != labels.shape:
        raise python_error(DTypeError if logit_scale.dtype != jnp.float32 else BadShapeError, where,
                           f"logit_scale must be float32 of shape {labels.shape}, got "
                           f"{logit_scale.dtype}{list(logit_scale.shape)}")
    return _logprob(logits, labels, logit_scale, has_scale, backend, k)


def _top_k(top_k, where: str) -> int:
    """0 for None (off), else k >= 1, capped at the int32 range of the custom call's
    attribute (any k >= V is the full log-softmax); BadParameterError below 1."""
    if top_k is None:
        return 0
    if isinstance(top_k, bool):
        raise TypeError(f"{where}: top_k must be an int or None, not bool")
    k = int(top_k.__index__())
    if k < 1:
        raise python_error(BadParameterError, where, f"top_k={k} (must be >= 1, or None for the full log-softmax)")
    return min(k, 2**31 - 1)


# ---------------------------------------------------------------------------------------
# Entropies (metrics: no gradient)


def _metric(target, numpy_fn, formula, out_dtype, backend, *arrays, **attributes):
    """A per-row metric ``[..., D] -> [...]``: libera on concrete CPU arrays or as a custom
    call, the formula elsewhere (None: a CPU round trip through pure_callback)."""
    arrays = [jax.lax.stop_gradient(a) for a in arrays]
    if backend != "jnp" and _ffi.concrete_on_cpu(*arrays):
        return _numpy(numpy_fn, *arrays)
    spec = ShapeDtypeStruct(arrays[0].shape[:-1], out_dtype)

    def ffi(*xs):
        return _ffi.call(target, spec, *xs, **attributes)

    def host(*xs):
        return jax.pure_callback(lambda *a: np.asarray(numpy_fn(*[np.asarray(x) for x in a]), spec.dtype), spec, *xs,
                                 vmap_method="broadcast_all")

    return _ffi.select(backend, arrays, ffi, formula or host)


def _one_input_metric(target, numpy_fn, formula_fn, x, where, name, backend):
    """A metric of one float array of rows, its formula poisoned where the rows are not finite."""
    _ffi.check_backend(backend, where)
    x = _float_rows(x, where, name)

    def formula(z):
        return poisoned(formula_fn(JNP, _wide(z)), F.discrete_faults(JNP, z)).astype(z.dtype)

    return _metric(target, numpy_fn, formula, x.dtype, backend, x)


def softmax_entropy(logits, *, backend: str = "auto") -> jax.Array:
    """Entropy of softmax(logits) per row, ``[..., D] -> [...]`` nats (float32/float64)."""
    return _one_input_metric("era_softmax_entropy", _entropy.softmax_entropy, F.softmax_entropy, logits,
                             "era.jax.softmax_entropy", "logits", backend)


def gaussian_entropy(log_std, *, backend: str = "auto") -> jax.Array:
    """Diagonal-Gaussian entropy per row, ``[..., D] -> [...]`` nats."""
    return _one_input_metric("era_gaussian_entropy", _entropy.gaussian_entropy, F.gaussian_entropy, log_std,
                             "era.jax.gaussian_entropy", "log_std", backend)


def tanh_gaussian_entropy(mean, log_std) -> jax.Array:
    """Entropy of tanh(N(mean, exp(log_std)^2)) per row, ``[..., D] -> [...]`` nats, by
    libera's quadrature (on other platforms through a CPU callback: a per-row metric)."""
    where = "era.jax.tanh_gaussian_entropy"
    log_std = _float_rows(log_std, where, "log_std")
    mean = _same(log_std, mean, where, "mean", "log_std")
    return _metric("era_tanh_gaussian_entropy", _entropy.tanh_gaussian_entropy, None, log_std.dtype, "auto", mean,
                   log_std)


def truncated_normal_entropy(loc, log_std, lo: float = -1.0, hi: float = 1.0) -> jax.Array:
    """Entropy of N(loc, exp(log_std)^2) truncated to [lo, hi] per row, nats (libera; on other
    platforms through a CPU callback)."""
    where = "era.jax.truncated_normal_entropy"
    log_std = _float_rows(log_std, where, "log_std")
    loc = _same(log_std, loc, where, "loc", "log_std")
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        _entropy.truncated_normal_entropy(np.zeros((0, 1)), np.zeros((0, 1)), lo, hi)  # libera refuses them
    numpy_fn = lambda m, s: _entropy.truncated_normal_entropy(m, s, lo, hi)  # noqa: E731
    return _metric("era_truncated_normal_entropy", numpy_fn, None, log_std.dtype, "auto", loc, log_std, lo=lo, hi=hi)


def token_entropy(logits, *, backend: str = "auto") -> jax.Array:
    """Entropy of softmax(logits) per token with -inf masks, ``[..., V] -> [...]`` nats:
    float32 for float32/bfloat16 logits, float64 for float64."""
    where = "era.jax.token_entropy"
    _ffi.check_backend(backend, where)
    logits = _float_rows(logits, where, "logits", bf16=True)
    out_dtype = np.float64 if logits.dtype == jnp.float64 else np.float32

    def formula(z):
        return poisoned(F.token_entropy(JNP, z.astype(out_dtype)), F.logit_faults(JNP, z))

    return _metric("era_token_entropy", _llm.token_entropy, formula, out_dtype, backend, logits)
