"""The sampled floor and the differentiable truncated-normal entropy for JAX (docs/math.md,
"The sampled floor"): XLA FFI custom calls into libera on CPU, the shared jax.numpy formulas
of era._formulas elsewhere (or with backend="jnp"); both jax.custom_vjp, whose backward is
libera's (or the formulas') implicit-function-theorem gradient.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import ShapeDtypeStruct

from .. import _formulas as F
from .. import continuous as _continuous
from .. import entropy as _entropy
from .. import sampled_floor as _numpy_level
from .._errors import BadShapeError, python_error
from . import _ffi
from .functions import JNP, _float_rows, _numpy, _same, _wide, poisoned

__all__ = ["continuous_era_truncated", "truncated_normal_entropy"]


# ---------------------------------------------------------------------------------------
# The truncated-normal entropy, differentiable in loc and log_std


def _entropy_faults(m, ls):
    return F.truncated_faults(JNP, m, ls)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _truncated_entropy(loc, log_std, lo, hi, backend):
    if backend != "jnp" and _ffi.concrete_on_cpu(loc, log_std):
        return _numpy(lambda m, s: _entropy.truncated_normal_entropy(m, s, lo, hi), loc, log_std)

    def ffi(m, s):
        return _ffi.call("era_truncated_normal_entropy", ShapeDtypeStruct(s.shape[:-1], s.dtype), m, s, lo=lo, hi=hi)

    def formula(m, s):
        wm, ws = _wide(m), _wide(s)
        return poisoned(F.truncated_normal_entropy(JNP, wm, ws, lo, hi), _entropy_faults(wm, ws)).astype(s.dtype)

    return _ffi.select(backend, (loc, log_std), ffi, formula)


def _truncated_entropy_fwd(loc, log_std, lo, hi, backend):
    return _truncated_entropy(loc, log_std, lo, hi, backend), (loc, log_std)


def _truncated_entropy_bwd(lo, hi, backend, saved, grad):
    loc, log_std = saved
    grad = grad.astype(log_std.dtype)
    if backend != "jnp" and _ffi.concrete_on_cpu(loc, log_std, grad):
        grads = _numpy(lambda m, s, g: tuple(_numpy_level.truncated_normal_entropy_backward(m, s, g, lo, hi)),
                       loc, log_std, grad)
        return grads[0], grads[1]
    spec = ShapeDtypeStruct(log_std.shape, log_std.dtype)

    def ffi(m, s, g):
        return tuple(_ffi.call("era_truncated_normal_entropy_backward", (spec, spec), m, s, g, lo=lo, hi=hi))

    def formula(m, s, g):
        wm, ws, wg = _wide(m), _wide(s), _wide(g)
        dm, dl = F.truncated_normal_entropy_backward(JNP, wm, ws, wg, lo, hi)
        faults = F.truncated_faults(JNP, wm, ws, wg)
        return poisoned(dm, faults).astype(s.dtype), poisoned(dl, faults).astype(s.dtype)

    return _ffi.select(backend, (loc, log_std, grad), ffi, formula)


_truncated_entropy.defvjp(_truncated_entropy_fwd, _truncated_entropy_bwd)


def truncated_normal_entropy(loc, log_std, lo: float = -1.0, hi: float = 1.0, *, backend: str = "auto") -> jax.Array:
    """Entropy of N(loc, exp(log_std)^2) truncated to [lo, hi] per row, ``[..., D] -> [...]``
    nats; differentiable in loc and log_std (first derivatives: libera's
    era_truncated_normal_entropy_backward, or the formulas)."""
    where = "era.jax.truncated_normal_entropy"
    _ffi.check_backend(backend, where)
    log_std = _float_rows(log_std, where, "log_std")
    loc = _same(log_std, loc, where, "loc", "log_std")
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        _entropy.truncated_normal_entropy(np.zeros((0, 1)), np.zeros((0, 1)), lo, hi)  # libera refuses them
    return _truncated_entropy(loc, log_std, lo, hi, backend)


# ---------------------------------------------------------------------------------------
# The sampled floor


def _sampled_setup(s, m, r, target_entropy, lo, hi, log_std_max):
    wide = _wide(s)
    wm, delta = m.astype(wide.dtype), r.astype(wide.dtype)
    dim = s.shape[-1]
    k = F.continuous_offset(dim, target_entropy, log_std_max) + delta
    target = target_entropy + delta
    faults = F.truncated_faults(JNP, wide, wm)
    faults = jnp.where(faults != 0, faults, F.continuous_faults(JNP, wide, k, delta))
    sup = dim * (math.log(0.5 * hi - 0.5 * lo) + math.log(2.0))
    faults = jnp.where(faults != 0, faults, F._flag(JNP, (target >= sup) & (faults == 0), F.INFEASIBLE_TARGET))
    return wide, wm, k, target, faults


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7, 8))
def _sampled(std_logits, loc, residual, target_entropy, lo, hi, log_std_min, log_std_max, backend):
    if backend != "jnp" and _ffi.concrete_on_cpu(std_logits, loc, residual):
        return _numpy(lambda s, m, r: _numpy_level.continuous_truncated_forward(
            s, m, target_entropy, lo=lo, hi=hi, residual=float(r), log_std_min=log_std_min, log_std_max=log_std_max),
            std_logits, loc, residual)

    def ffi(s, m, r):
        return _ffi.call("era_continuous_truncated_forward", ShapeDtypeStruct(s.shape, s.dtype), s, m, r,
                         target_entropy=target_entropy, lo=lo, hi=hi, log_std_min=log_std_min,
                         log_std_max=log_std_max)

    def formula(s, m, r):
        wide, wm, k, target, faults = _sampled_setup(s, m, r, target_entropy, lo, hi, log_std_max)
        narrow = None if wide.dtype == s.dtype else s.dtype
        out, _, infeasible = F.sampled_floor_forward(JNP, wide, wm, k, target, lo, hi, log_std_min, log_std_max,
                                                     narrow)
        faults = jnp.where(faults != 0, faults, F._flag(JNP, infeasible, F.INFEASIBLE_TARGET))
        return poisoned(out, faults).astype(s.dtype)

    return _ffi.select(backend, (std_logits, loc, residual), ffi, formula)


def _sampled_fwd(std_logits, loc, residual, target_entropy, lo, hi, log_std_min, log_std_max, backend):
    out = _sampled(std_logits, loc, residual, target_entropy, lo, hi, log_std_min, log_std_max, backend)
    return out, (std_logits, loc, residual)


def _sampled_bwd(target_entropy, lo, hi, log_std_min, log_std_max, backend, saved, grad):
    std_logits, loc, residual = saved
    grad = grad.astype(std_logits.dtype)
    if backend != "jnp" and _ffi.concrete_on_cpu(std_logits, loc, residual, grad):
        gs, gm, gr = _numpy(lambda s, m, r, g: tuple(_numpy_level.continuous_truncated_backward(
            s, m, g, target_entropy, lo=lo, hi=hi, residual=float(r), log_std_min=log_std_min,
            log_std_max=log_std_max)), std_logits, loc, residual, grad)
    else:
        spec = ShapeDtypeStruct(std_logits.shape, std_logits.dtype)
        rows = ShapeDtypeStruct(std_logits.shape[:-1], std_logits.dtype)

        def ffi(s, m, r, g):
            return tuple(_ffi.call("era_continuous_truncated_backward", (spec, spec, rows), s, m, r, g,
                                   target_entropy=target_entropy, lo=lo, hi=hi, log_std_min=log_std_min,
                                   log_std_max=log_std_max))

        def formula(s, m, r, g):
            wide, wm, k, target, faults = _sampled_setup(s, m, r, target_entropy, lo, hi, log_std_max)
            wg = g.astype(wide.dtype)
            narrow = None if wide.dtype == s.dtype else s.dtype
            gs, gm, gr = F.sampled_floor_backward(JNP, wide, wm, wg, k, target, lo, hi, log_std_min, log_std_max,
                                                  narrow)
            faults = jnp.where(faults != 0, faults, F.truncated_faults(JNP, wg))
            return (poisoned(gs, faults).astype(s.dtype), poisoned(gm, faults).astype(s.dtype),
                    poisoned(gr, faults).astype(s.dtype))

        gs, gm, gr = _ffi.select(backend, (std_logits, loc, residual, grad), ffi, formula)
    return gs, gm, jnp.sum(gr).astype(residual.dtype).reshape(residual.shape)


_sampled.defvjp(_sampled_fwd, _sampled_bwd)


def continuous_era_truncated(
    std_logits,
    loc,
    target_entropy: float,
    residual=_continuous.RESIDUAL,
    *,
    lo: float = -1.0,
    hi: float = 1.0,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
    backend: str = "auto",
):
    """The sampled floor: continuous ERA log stds plus the smallest per-row offset c >= 0 that
    lifts the entropy of the normal truncated to [lo, hi] with location `loc` to
    ``target_entropy + residual`` (docs/math.md, "The sampled floor").

    Args:
        std_logits: ``[..., D]`` float32/float64 raw scale outputs; loc: same shape and dtype.
        target_entropy: H0 in nats (static).
        residual: delta >= 0, a scalar (array); differentiable (its gradient sums over rows).
        lo, hi, log_std_min, log_std_max: static.
        backend: "auto", "ffi" or "jnp" (era/jax/_ffi.py).
    Returns:
        ``[..., D]`` log stds (may exceed log_std_max), differentiable in std_logits, loc and
        residual (jax.grad, vjp; no forward mode or second derivatives).
    """
    where = "era.jax.continuous_era_truncated"
    _ffi.check_backend(backend, where)
    std_logits = _float_rows(std_logits, where, "std_logits")
    loc = _same(std_logits, loc, where, "loc", "std_logits")
    residual = jnp.asarray(residual, dtype=std_logits.dtype)
    if residual.ndim != 0:
        raise python_error(BadShapeError, where, f"residual must be a scalar, got shape {residual.shape}")
    # libera checks the static parameters, the interval and the feasibility now, on zero rows
    zeros = np.zeros((0, std_logits.shape[-1]), np.dtype(std_logits.dtype))
    _numpy_level.continuous_truncated_forward(zeros, zeros, float(target_entropy), lo=float(lo), hi=float(hi),
                                          log_std_min=float(log_std_min), log_std_max=float(log_std_max))
    return _sampled(std_logits, loc, residual, float(target_entropy), float(lo), float(hi), float(log_std_min),
                    float(log_std_max), backend)
