"""The tanh sampled floor and the differentiable tanh-Gaussian entropy for JAX (docs/math.md,
"The sampled floor, tanh"): XLA FFI custom calls into libera on CPU, the shared jax.numpy
formulas of era._formulas elsewhere (or with backend="jnp"); both jax.custom_vjp, whose
backward is libera's (or the formulas') implicit-function-theorem gradient.
"""

from __future__ import annotations

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

__all__ = ["continuous_era_tanh", "tanh_gaussian_entropy"]


# ---------------------------------------------------------------------------------------
# The tanh-Gaussian entropy, differentiable in mean and log_std


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _tanh_entropy(mean, log_std, backend):
    if backend != "jnp" and _ffi.concrete_on_cpu(mean, log_std):
        return _numpy(_entropy.tanh_gaussian_entropy, mean, log_std)

    def ffi(m, s):
        return _ffi.call("era_tanh_gaussian_entropy", ShapeDtypeStruct(s.shape[:-1], s.dtype), m, s)

    def formula(m, s):
        wm, ws = _wide(m), _wide(s)
        return poisoned(F.tanh_gaussian_entropy(JNP, wm, ws), F.truncated_faults(JNP, wm, ws)).astype(s.dtype)

    return _ffi.select(backend, (mean, log_std), ffi, formula)


def _tanh_entropy_fwd(mean, log_std, backend):
    return _tanh_entropy(mean, log_std, backend), (mean, log_std)


def _tanh_entropy_bwd(backend, saved, grad):
    mean, log_std = saved
    grad = grad.astype(log_std.dtype)
    if backend != "jnp" and _ffi.concrete_on_cpu(mean, log_std, grad):
        grads = _numpy(lambda m, s, g: tuple(_numpy_level.tanh_gaussian_entropy_backward(m, s, g)), mean, log_std, grad)
        return grads[0], grads[1]
    spec = ShapeDtypeStruct(log_std.shape, log_std.dtype)

    def ffi(m, s, g):
        return tuple(_ffi.call("era_tanh_gaussian_entropy_backward", (spec, spec), m, s, g))

    def formula(m, s, g):
        wm, ws, wg = _wide(m), _wide(s), _wide(g)
        dm, dl = F.tanh_gaussian_entropy_backward(JNP, wm, ws, wg)
        faults = F.truncated_faults(JNP, wm, ws, wg)
        return poisoned(dm, faults).astype(s.dtype), poisoned(dl, faults).astype(s.dtype)

    return _ffi.select(backend, (mean, log_std, grad), ffi, formula)


_tanh_entropy.defvjp(_tanh_entropy_fwd, _tanh_entropy_bwd)


def tanh_gaussian_entropy(mean, log_std, *, backend: str = "auto") -> jax.Array:
    """Entropy of tanh(N(mean, exp(log_std)^2)) per row, ``[..., D] -> [...]`` nats;
    differentiable in mean and log_std (first derivatives: libera's
    era_tanh_gaussian_entropy_backward, or the formulas with backend="jnp" and off the CPU)."""
    where = "era.jax.tanh_gaussian_entropy"
    _ffi.check_backend(backend, where)
    log_std = _float_rows(log_std, where, "log_std")
    mean = _same(log_std, mean, where, "mean", "log_std")
    return _tanh_entropy(mean, log_std, backend)


# ---------------------------------------------------------------------------------------
# The tanh sampled floor


def _tanh_setup(s, m, r, target_entropy, log_std_max):
    wide = _wide(s)
    wm, delta = m.astype(wide.dtype), r.astype(wide.dtype)
    dim = s.shape[-1]
    k = F.continuous_offset(dim, target_entropy, log_std_max) + delta
    target = target_entropy + delta
    faults = F.truncated_faults(JNP, wide, wm)
    faults = jnp.where(faults != 0, faults, F.continuous_faults(JNP, wide, k, delta))
    beyond = (target >= dim * F.TANH_ENTROPY_PEAK) & (faults == 0)
    faults = jnp.where(faults != 0, faults, F._flag(JNP, beyond, F.INFEASIBLE_TARGET))
    return wide, wm, k, target, faults


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _tanh_floor(std_logits, mean, residual, target_entropy, log_std_min, log_std_max, backend):
    if backend != "jnp" and _ffi.concrete_on_cpu(std_logits, mean, residual):
        return _numpy(lambda s, m, r: _numpy_level.continuous_tanh_forward(
            s, m, target_entropy, residual=float(r), log_std_min=log_std_min, log_std_max=log_std_max),
            std_logits, mean, residual)

    def ffi(s, m, r):
        return _ffi.call("era_continuous_tanh_forward", ShapeDtypeStruct(s.shape, s.dtype), s, m, r,
                         target_entropy=target_entropy, log_std_min=log_std_min, log_std_max=log_std_max)

    def formula(s, m, r):
        wide, wm, k, target, faults = _tanh_setup(s, m, r, target_entropy, log_std_max)
        narrow = None if wide.dtype == s.dtype else s.dtype
        out, _, infeasible = F.tanh_floor_forward(JNP, wide, wm, k, target, log_std_min, log_std_max, narrow)
        faults = jnp.where(faults != 0, faults, F._flag(JNP, infeasible, F.INFEASIBLE_TARGET))
        return poisoned(out, faults).astype(s.dtype)

    return _ffi.select(backend, (std_logits, mean, residual), ffi, formula)


def _tanh_floor_fwd(std_logits, mean, residual, target_entropy, log_std_min, log_std_max, backend):
    out = _tanh_floor(std_logits, mean, residual, target_entropy, log_std_min, log_std_max, backend)
    return out, (std_logits, mean, residual)


def _tanh_floor_bwd(target_entropy, log_std_min, log_std_max, backend, saved, grad):
    std_logits, mean, residual = saved
    grad = grad.astype(std_logits.dtype)
    if backend != "jnp" and _ffi.concrete_on_cpu(std_logits, mean, residual, grad):
        gs, gm, gr = _numpy(lambda s, m, r, g: tuple(_numpy_level.continuous_tanh_backward(
            s, m, g, target_entropy, residual=float(r), log_std_min=log_std_min, log_std_max=log_std_max)),
            std_logits, mean, residual, grad)
    else:
        spec = ShapeDtypeStruct(std_logits.shape, std_logits.dtype)
        rows = ShapeDtypeStruct(std_logits.shape[:-1], std_logits.dtype)

        def ffi(s, m, r, g):
            return tuple(_ffi.call("era_continuous_tanh_backward", (spec, spec, rows), s, m, r, g,
                                   target_entropy=target_entropy, log_std_min=log_std_min, log_std_max=log_std_max))

        def formula(s, m, r, g):
            wide, wm, k, target, faults = _tanh_setup(s, m, r, target_entropy, log_std_max)
            wg = g.astype(wide.dtype)
            narrow = None if wide.dtype == s.dtype else s.dtype
            gs, gm, gr = F.tanh_floor_backward(JNP, wide, wm, wg, k, target, log_std_min, log_std_max, narrow)
            faults = jnp.where(faults != 0, faults, F.truncated_faults(JNP, wg))
            return (poisoned(gs, faults).astype(s.dtype), poisoned(gm, faults).astype(s.dtype),
                    poisoned(gr, faults).astype(s.dtype))

        gs, gm, gr = _ffi.select(backend, (std_logits, mean, residual, grad), ffi, formula)
    return gs, gm, jnp.sum(gr).astype(residual.dtype).reshape(residual.shape)


_tanh_floor.defvjp(_tanh_floor_fwd, _tanh_floor_bwd)


def continuous_era_tanh(
    std_logits,
    mean,
    target_entropy: float,
    residual=_continuous.RESIDUAL,
    *,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
    backend: str = "auto",
):
    """The tanh sampled floor: continuous ERA log stds for a per-row Gaussian target moved by
    the c nats nearest 0 that lift the entropy of tanh(N(mean, exp(log_std)^2)) to
    ``target_entropy + residual`` (docs/math.md, "The sampled floor, tanh"; c < 0 where the
    stds lie beyond the peak).

    Args:
        std_logits: ``[..., D]`` float32/float64 raw scale outputs; mean: same shape and dtype.
        target_entropy: H0 in nats (static).
        residual: delta >= 0, a scalar (array); differentiable (its gradient sums over rows).
        log_std_min, log_std_max: static.
        backend: "auto", "ffi" or "jnp" (era/jax/_ffi.py).
    Returns:
        ``[..., D]`` log stds within [log_std_min, log_std_max], differentiable in
        std_logits, mean and residual (jax.grad, vjp; no forward mode or second derivatives).
    Raises:
        InfeasibleTargetError (on concrete CPU arrays; in jit JAX's runtime error carrying
        it; a NaN row on other platforms) for a target at or above D * 0.6836... or above a
        row's peak.
    """
    where = "era.jax.continuous_era_tanh"
    _ffi.check_backend(backend, where)
    std_logits = _float_rows(std_logits, where, "std_logits")
    mean = _same(std_logits, mean, where, "mean", "std_logits")
    residual = jnp.asarray(residual, dtype=std_logits.dtype)
    if residual.ndim != 0:
        raise python_error(BadShapeError, where, f"residual must be a scalar, got shape {residual.shape}")
    # libera checks the static parameters and the static feasibility now, on zero rows
    zeros = np.zeros((0, std_logits.shape[-1]), np.dtype(std_logits.dtype))
    _numpy_level.continuous_tanh_forward(zeros, zeros, float(target_entropy), log_std_min=float(log_std_min),
                                         log_std_max=float(log_std_max))
    return _tanh_floor(std_logits, mean, residual, float(target_entropy), float(log_std_min), float(log_std_max),
                       backend)
