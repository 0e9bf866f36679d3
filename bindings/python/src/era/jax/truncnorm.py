"""The truncated-normal policy for JAX (docs/math.md, "Truncated-normal policy"): pure
functions with a custom_vjp. On CPU they call libera through the XLA FFI (era._era_xla), on
other platforms (or with backend="jnp") the formulas of era._formulas in jax.numpy.

    x = loc + scale * Phi^-1(Phi(alpha) + u Z),   u ~ U(0, 1) from `key`
    log p(x) = -((x - loc)/scale)^2/2 - log(sqrt(2 pi) scale Z)

with alpha = (low - loc)/scale, beta = (high - loc)/scale, Z = Phi(beta) - Phi(alpha).
"""

from __future__ import annotations

from functools import partial
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import ShapeDtypeStruct

from .. import _formulas as F
from .. import truncnorm as _truncnorm
from .._errors import BadParameterError, DTypeError, python_error
from . import _ffi
from .functions import JNP, _numpy

__all__ = ["truncated_normal_sample", "truncated_normal_log_prob"]


def _interval(low, high, where: str):
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise python_error(BadParameterError, where, f"need finite low < high, got [{low}, {high}]")
    return low, high


def _floats(where: str, *arrays):
    arrays = jnp.broadcast_arrays(*[jnp.asarray(a) for a in arrays])
    dtype = jnp.result_type(*arrays)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise python_error(DTypeError, where, f"loc and scale must be float32 or float64, got {dtype}")
    return [a.astype(dtype) for a in arrays]


def _run(target, numpy_fn, formula, outputs: int, lo: float, hi: float, backend: str, *arrays):
    """One element-wise truncated-normal kernel: libera on concrete CPU arrays (era's own
    exceptions), the FFI custom call under transformations on CPU, the formulas elsewhere."""
    if backend != "jnp" and _ffi.concrete_on_cpu(*arrays):
        return _numpy(lambda *xs: numpy_fn(*xs, lo, hi), *arrays)
    spec = ShapeDtypeStruct(arrays[0].shape, arrays[0].dtype)
    results = spec if outputs == 1 else tuple(spec for _ in range(outputs))

    def ffi(*xs):
        return _ffi.call(target, results, *xs, vmap_method="broadcast_all", lo=lo, hi=hi)

    def jnp_formula(*xs):
        wide = [JNP.astype(x, jnp.float64) for x in xs]
        out = formula(JNP, *wide, lo, hi)
        dtype = xs[0].dtype
        return out.astype(dtype) if outputs == 1 else tuple(o.astype(dtype) for o in out)

    return _ffi.select(backend, arrays, ffi, jnp_formula)


def _sample_grads(loc, log_std, x, g, lo, hi, backend):
    return _run("era_truncated_normal_sample_backward", _truncnorm.truncated_normal_sample_backward,
                F.truncated_normal_sample_backward, 2, lo, hi, backend, loc, log_std, x, g)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _sample(loc, log_std, u, lo, hi, backend):
    return _run("era_truncated_normal_sample", _truncnorm.truncated_normal_sample, F.truncated_normal_sample, 1, lo, hi,
                backend, loc, log_std, u)


def _sample_fwd(loc, log_std, u, lo, hi, backend):
    x = _sample(loc, log_std, u, lo, hi, backend)
    return x, (loc, log_std, x)


def _sample_bwd(lo, hi, backend, saved, g):
    loc, log_std, x = saved
    grad_loc, grad_log_std = _sample_grads(loc, log_std, x, g, lo, hi, backend)
    return grad_loc, grad_log_std, None


_sample.defvjp(_sample_fwd, _sample_bwd)


def truncated_normal_sample(key, loc, scale, low: float = -1.0, high: float = 1.0,
                            shape: Optional[Sequence[int]] = None, *, backend: str = "auto") -> jax.Array:
    """Samples of N(loc, scale^2) truncated to [low, high], reparameterised: differentiable
    with respect to loc and scale (implicit differentiation of F(x) = u, reverse mode).

    Args:
        key: a jax.random key for the uniforms (drawn in the open interval (0, 1)).
        loc, scale: float32/float64 arrays (or numbers), broadcast together; scale > 0.
        low, high: the interval, finite, low < high.
        shape: the sample shape (default: the broadcast shape of loc and scale); loc and
            scale broadcast to it.
        backend: "auto", "ffi" (libera's custom call, CPU only) or "jnp" (the formulas).
    Returns:
        Samples of `shape`, every one inside [low, high].
    """
    where = "era.jax.truncated_normal_sample"
    _ffi.check_backend(backend, where)
    lo, hi = _interval(low, high, where)
    loc, scale = _floats(where, loc, scale)
    shape = tuple(loc.shape if shape is None else shape)
    loc, scale = jnp.broadcast_to(loc, shape), jnp.broadcast_to(scale, shape)
    tiny = float(jnp.finfo(loc.dtype).tiny)
    u = jax.random.uniform(key, shape, loc.dtype, minval=tiny, maxval=1.0)
    return _sample(loc, jnp.log(scale), u, lo, hi, backend)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _log_prob(loc, log_std, x, lo, hi, backend):
    return _run("era_truncated_normal_log_prob", _truncnorm.truncated_normal_log_prob, F.truncated_normal_log_prob, 1,
                lo, hi, backend, loc, log_std, x)


def _log_prob_fwd(loc, log_std, x, lo, hi, backend):
    return _log_prob(loc, log_std, x, lo, hi, backend), (loc, log_std, x)


def _log_prob_bwd(lo, hi, backend, saved, g):
    loc, log_std, x = saved
    numpy_fn = lambda *a: tuple(_truncnorm.truncated_normal_log_prob_backward(*a))  # noqa: E731
    grad_x, grad_loc, grad_log_std = _run("era_truncated_normal_log_prob_backward", numpy_fn,
                                          F.truncated_normal_log_prob_backward, 3, lo, hi, backend, loc, log_std, x, g)
    return grad_loc, grad_log_std, grad_x


_log_prob.defvjp(_log_prob_fwd, _log_prob_bwd)


def truncated_normal_log_prob(x, loc, scale, low: float = -1.0, high: float = 1.0, *,
                              backend: str = "auto") -> jax.Array:
    """log p(x) of N(loc, scale^2) truncated to [low, high], per element (-inf outside),
    differentiable with respect to x, loc and scale (reverse mode)."""
    where = "era.jax.truncated_normal_log_prob"
    _ffi.check_backend(backend, where)
    lo, hi = _interval(low, high, where)
    x, loc, scale = _floats(where, x, loc, scale)
    return _log_prob(loc, jnp.log(scale), x, lo, hi, backend)
