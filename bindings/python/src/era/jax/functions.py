"""ERA for JAX arrays: jax.custom_vjp functions whose forward and backward call libera
(era_*_forward / era_*_backward) through era.jax._host; usable under jit, vmap and grad.

Parameters that configure the activation (target entropy, tau, mode, clip range) are static
Python numbers; the continuous residual is an array and differentiable. Entropies are
metrics: their inputs pass through lax.stop_gradient, so no gradient flows through them.
"""

from __future__ import annotations

from functools import partial
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import ShapeDtypeStruct

from .. import continuous as _continuous
from .. import discrete as _discrete
from .. import entropy as _entropy
from .. import llm as _llm
from .._arrays import is_bfloat16
from .._errors import BadShapeError, DTypeError, python_error
from ._host import host_call, per_scalar

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


# ---------------------------------------------------------------------------------------
# Continuous ERA


def _continuous_params(target_entropy, log_std_min, log_std_max):
    return dict(target_entropy=target_entropy, log_std_min=log_std_min, log_std_max=log_std_max)


def _continuous_forward_host(params):
    def host(std_logits, residual):
        return per_scalar(lambda x, delta: _continuous.continuous_forward(x, residual=delta, **params), std_logits, residual)

    return host


def _continuous_backward_host(params):
    def host(std_logits, grad, residual):
        def both(xg, delta):
            x, g = xg[..., 0, :], xg[..., 1, :]
            grads = _continuous.continuous_backward(x, g, residual=delta, **params)
            return grads.std_logits, grads.residual

        return per_scalar(both, np.stack([std_logits, grad], axis=-2), residual)

    return host


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _continuous_vjp(std_logits, residual, target_entropy, log_std_min, log_std_max):
    params = _continuous_params(target_entropy, log_std_min, log_std_max)
    spec = ShapeDtypeStruct(std_logits.shape, std_logits.dtype)
    return host_call(_continuous_forward_host(params), spec, std_logits, residual)


def _continuous_fwd(std_logits, residual, target_entropy, log_std_min, log_std_max):
    out = _continuous_vjp(std_logits, residual, target_entropy, log_std_min, log_std_max)
    return out, (std_logits, residual)


def _continuous_bwd(target_entropy, log_std_min, log_std_max, saved, grad_log_std):
    std_logits, residual = saved
    params = _continuous_params(target_entropy, log_std_min, log_std_max)
    specs = (
        ShapeDtypeStruct(std_logits.shape, std_logits.dtype),
        ShapeDtypeStruct(std_logits.shape[:-1], std_logits.dtype),
    )
    grad_std_logits, grad_rows = host_call(_continuous_backward_host(params), specs, std_logits, grad_log_std, residual)
    return grad_std_logits, jnp.sum(grad_rows).astype(residual.dtype).reshape(residual.shape)


_continuous_vjp.defvjp(_continuous_fwd, _continuous_bwd)


def continuous_era(
    std_logits,
    target_entropy: float,
    residual=0.0,
    *,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
):
    """Continuous ERA log stds (docs/math.md section 1), a custom_vjp over libera.

    Args:
        std_logits: ``[..., D]`` float32/float64 raw scale outputs.
        target_entropy: H0 in nats (static).
        residual: delta >= 0 in nats, a scalar (array); differentiable (the gradient is
            summed over the rows).
        log_std_min, log_std_max: the clip range (static).
    Returns:
        ``[..., D]`` log stds with Gaussian entropy >= H0 + delta per row.
    """
    where = "era.jax.continuous_era"
    std_logits = _float_rows(std_logits, where, "std_logits")
    residual = jnp.asarray(residual, dtype=std_logits.dtype)
    if residual.ndim != 0:
        raise python_error(BadShapeError, where, f"residual must be a scalar, got shape {residual.shape}")
    # libera checks the static parameters now, on zero rows (with delta = 0).
    _continuous.continuous_forward(
        np.zeros((0, std_logits.shape[-1]), np.dtype(std_logits.dtype)), float(target_entropy),
        log_std_min=float(log_std_min), log_std_max=float(log_std_max),
    )
    return _continuous_vjp(std_logits, residual, float(target_entropy), float(log_std_min), float(log_std_max))


# ---------------------------------------------------------------------------------------
# Discrete ERA


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _discrete_vjp(logits, target_entropy, tau, mode):
    def host(z):
        return _discrete.discrete_forward(z, target_entropy, tau=tau, mode=mode)

    return host_call(host, ShapeDtypeStruct(logits.shape, logits.dtype), logits)


def _discrete_fwd(logits, target_entropy, tau, mode):
    return _discrete_vjp(logits, target_entropy, tau, mode), logits


def _discrete_bwd(target_entropy, tau, mode, logits, grad_out):
    def host(z, g):
        return _discrete.discrete_backward(z, g, target_entropy, tau=tau, mode=mode)

    return (host_call(host, ShapeDtypeStruct(logits.shape, logits.dtype), logits, grad_out),)


_discrete_vjp.defvjp(_discrete_fwd, _discrete_bwd)


def discrete_era(logits, target_entropy: float, *, tau: float = _discrete.TAU, mode: str = "exact"):
    """Discrete ERA output logits (docs/math.md section 2), a custom_vjp over libera.

    Args:
        logits: ``[..., D]`` float32/float64, D >= 2.
        target_entropy: H0 in nats; tau > e; mode "exact", "tight" or "reference" (static).
    Returns:
        ``[..., D]`` logits whose softmax keeps an entropy >= H0 (modes exact, tight).
    """
    where = "era.jax.discrete_era"
    logits = _float_rows(logits, where, "logits")
    # libera checks the parameters (and the class count) now.
    _discrete.discrete_constant(logits.shape[-1], float(target_entropy), tau=float(tau), mode=mode)
    return _discrete_vjp(logits, float(target_entropy), float(tau), mode)


# ---------------------------------------------------------------------------------------
# LLM log-probabilities


def _int64(a: np.ndarray) -> np.ndarray:
    # JAX's default integer is int32 (int64 needs jax_enable_x64): widen, losslessly.
    return a if a.dtype == np.int64 else a.astype(np.int64)


@jax.custom_vjp
def _logprob_vjp(logits, labels, logit_scale):
    def host(z, a, s):
        result = _llm.llm_logprob_forward(z, _int64(a), s)
        return result.logprob, result.entropy

    spec = ShapeDtypeStruct(labels.shape, np.float32)
    return host_call(host, (spec, spec), logits, labels, logit_scale)


def _logprob_fwd(logits, labels, logit_scale):
    return _logprob_vjp(logits, labels, logit_scale), (logits, labels, logit_scale)


def _logprob_bwd(saved, cotangents):
    logits, labels, logit_scale = saved
    grad_logprob, _ = cotangents  # the entropy is not differentiated

    def host(z, a, s, g):
        return _llm.llm_logprob_backward(z, _int64(a), s, g)

    grad = host_call(host, ShapeDtypeStruct(logits.shape, logits.dtype), logits, labels, logit_scale, grad_logprob)
    return grad, None, None


_logprob_vjp.defvjp(_logprob_fwd, _logprob_bwd)


def llm_logprob(logits, labels, logit_scale=None) -> Tuple[jax.Array, jax.Array]:
    """ERA log-probabilities ``s_t*z_t[a_t] - logsumexp(s_t*z_t)`` and the entropy of
    softmax(s_t*z_t), a custom_vjp over libera.

    Args:
        logits: ``[..., V]`` float32 or bfloat16 (libera has no float64 log-prob kernel).
        labels: ``[...]`` integer sampled tokens (int32 is widened to int64 for libera).
        logit_scale: ``[...]`` float32 scales, or None for 1; held constant.
    Returns:
        (logprob, entropy), float32 ``[...]``; the gradient flows to `logits` through
        logprob only.
    """
    where = "era.jax.llm_logprob"
    logits = _float_rows(logits, where, "logits", allowed=(np.dtype(np.float32),), bf16=True)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.shape != logits.shape[:-1]:
        raise python_error(BadShapeError if jnp.issubdtype(labels.dtype, jnp.integer) else DTypeError, where,
                           f"labels must be integers of shape {logits.shape[:-1]}, got {labels.dtype}{list(labels.shape)}")
    if logit_scale is None:
        logit_scale = jnp.ones(labels.shape, jnp.float32)
    logit_scale = jax.lax.stop_gradient(jnp.asarray(logit_scale))
    if logit_scale.dtype != jnp.float32 or logit_scale.shape != labels.shape:
        raise python_error(DTypeError if logit_scale.dtype != jnp.float32 else BadShapeError, where,
                           f"logit_scale must be float32 of shape {labels.shape}, got "
                           f"{logit_scale.dtype}{list(logit_scale.shape)}")
    return _logprob_vjp(logits, labels, logit_scale)


# ---------------------------------------------------------------------------------------
# Entropies (metrics: no gradient)


def _per_row(fn, out_dtype, *arrays):
    arrays = [jax.lax.stop_gradient(a) for a in arrays]
    return host_call(fn, ShapeDtypeStruct(arrays[0].shape[:-1], out_dtype), *arrays)


def softmax_entropy(logits) -> jax.Array:
    """Entropy of softmax(logits) per row, ``[..., D] -> [...]`` nats (float32/float64)."""
    logits = _float_rows(logits, "era.jax.softmax_entropy", "logits")
    return _per_row(_entropy.softmax_entropy, logits.dtype, logits)


def gaussian_entropy(log_std) -> jax.Array:
    """Diagonal-Gaussian entropy per row, ``[..., D] -> [...]`` nats."""
    log_std = _float_rows(log_std, "era.jax.gaussian_entropy", "log_std")
    return _per_row(_entropy.gaussian_entropy, log_std.dtype, log_std)


def tanh_gaussian_entropy(mean, log_std) -> jax.Array:
    """Entropy of tanh(N(mean, exp(log_std)^2)) per row, ``[..., D] -> [...]`` nats."""
    where = "era.jax.tanh_gaussian_entropy"
    log_std = _float_rows(log_std, where, "log_std")
    mean = _same(log_std, mean, where, "mean", "log_std")
    return _per_row(_entropy.tanh_gaussian_entropy, log_std.dtype, mean, log_std)


def truncated_normal_entropy(loc, log_std, lo: float = -1.0, hi: float = 1.0) -> jax.Array:
    """Entropy of N(loc, exp(log_std)^2) truncated to [lo, hi] per row, nats."""
    where = "era.jax.truncated_normal_entropy"
    log_std = _float_rows(log_std, where, "log_std")
    loc = _same(log_std, loc, where, "loc", "log_std")

    def host(m, s):
        return _entropy.truncated_normal_entropy(m, s, float(lo), float(hi))

    return _per_row(host, log_std.dtype, loc, log_std)


def token_entropy(logits) -> jax.Array:
    """Entropy of softmax(logits) per token with -inf masks, ``[..., V] -> [...]`` nats:
    float32 for float32/bfloat16 logits, float64 for float64."""
    logits = _float_rows(logits, "era.jax.token_entropy", "logits", bf16=True)
    out_dtype = np.float64 if logits.dtype == jnp.float64 else np.float32
    return _per_row(_llm.token_entropy, out_dtype, logits)

