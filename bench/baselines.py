"""The baselines of bench/run.py: libera's math (docs/math.md) written plainly in each
framework, as a user of that framework would write it, with no libera code.

- PyTorch eager (float32 on CPU; bfloat16 logits are upcast to float32 for the compute, as
  training code does with ``logits.float()``): forward only, the backward comes from autograd.
- JAX (``jax.jit``; the backward from ``jax.vjp``; bfloat16 upcast likewise).
- numpy: forward and analytic backward, in float64 for continuous and discrete ERA (the
  precision libera computes them in) and in float32 for the vocabulary-sized LLM passes.

Discrete ERA is the "exact" mode: C = exp(H0 - 1) and the inverse of h by Halley's method on
``t + log(-t) = log y`` from the asymptotic start ``L1 - L2 + L2/L1`` (math 2, "The inverse"),
a fixed number of steps: 3 reach float32 rounding (relative error 4e-7 over 1e-37 <= y <= 0.35),
4 reach float64 rounding (5e-16 over 1e-300 <= y <= 0.35).

Every function takes arrays of shape [rows, D] (D: classes, action dimensions or vocabulary)
and per-row arrays of shape [rows].
"""

from __future__ import annotations

import math

import numpy as np

try:
    import torch
except ImportError:  # the torch rows are skipped
    torch = None
try:
    import jax
    import jax.numpy as jnp
except ImportError:  # the JAX rows are skipped
    jax = jnp = None

# 0.5*log(2*pi*e): the entropy of N(0, 1) per dimension (math 1).
GAUSSIAN_ENTROPY_PER_DIM = 0.5 * math.log(2 * math.pi * math.e)
# Halley steps from the asymptotic start that reach the rounding of each type (module docstring).
HALLEY_STEPS = {"float32": 3, "float64": 4}


# ---------------------------------------------------------------------------------------
# Constants, in double precision


def discrete_slope_offset(classes: int, target_entropy: float, tau: float):
    """(a, b) of ``y = a*p + b`` in the "exact" mode (math 2): C = exp(H0 - 1)."""
    up = math.log(tau) / tau
    c = math.exp(target_entropy - 1)
    return (classes * up - c) / (classes - 1), (c - up) / (classes - 1)


def continuous_offset(dim: int, target_entropy: float, log_std_max: float) -> float:
    """K less the residual (math 1): H0 - D*0.5*log(2*pi*e) - D*log_std_max."""
    return target_entropy - dim * GAUSSIAN_ENTROPY_PER_DIM - dim * log_std_max


def log_inverse_entropy(y, steps: int, xp):
    """t = log h^-1(y), the root t <= -1 of ``t + log(-t) = log y`` for 0 < y < 1/e, by
    `steps` Halley steps from the asymptotic start (math 2). `xp` is numpy, torch or
    jax.numpy: the same arithmetic in each framework."""
    log_y = xp.log(y)
    l2 = xp.log(-log_y)
    t = log_y - l2 + l2 / log_y
    for _ in range(steps):
        g = t + xp.log(-t) - log_y
        g1 = 1 + 1 / t
        g2 = -1 / (t * t)
        t = t - g / (g1 - g * g2 / (2 * g1))
    return t


# ---------------------------------------------------------------------------------------
# numpy: forward and analytic backward


def _np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def numpy_discrete(z, g, a: float, b: float):
    """Discrete ERA forward and backward in float64 (math 2, "Gradient"); returns
    (output logits, dL/dz) in z's dtype."""
    p = _np_softmax(z.astype(np.float64))
    y = a * p + b
    tiny = np.finfo(np.float64).tiny
    unclamped = y > tiny
    y = np.maximum(y, tiny)
    t = log_inverse_entropy(y, HALLEY_STEPS["float64"], np)
    # s_i = r_i p_i = g_i (a p_i / y_i) (y_i dt/dy), y dt/dy = t/(1 + t); dz_j = s_j - p_j sum s
    s = g * (a * p / y) * np.where(unclamped, t / (1 + t), 0.0)
    grad = s - p * s.sum(-1, keepdims=True)
    return t.astype(z.dtype), grad.astype(z.dtype)


def numpy_continuous(s, g, offset: float, residual: float, log_std_min: float, log_std_max: float):
    """Continuous ERA forward and backward in float64 (math 1); returns (log_std, dL/ds,
    dL/d(residual) per row) in s's dtype."""
    w = _np_softmax(s.astype(np.float64))
    k = offset + residual
    y = log_std_max + k * w
    unclipped = y > log_std_min
    log_std = np.where(unclipped, y, log_std_min)
    gt = np.where(unclipped, g, 0.0)
    gw = (gt * w).sum(-1, keepdims=True)
    grad = k * w * (gt - gw)
    return log_std.astype(s.dtype), grad.astype(s.dtype), gw[:, 0].astype(s.dtype)


def numpy_token_entropy(x):
    """Entropy of softmax per row, float32: logsumexp - sum p*z (bfloat16 upcast first)."""
    z = x.astype(np.float32, copy=False)
    m = z.max(-1, keepdims=True)
    e = np.exp(z - m)
    total = e.sum(-1, keepdims=True)
    lse = m + np.log(total)
    return lse[:, 0] - (e * z).sum(-1) / total[:, 0]


def numpy_scaled_logprob(x, labels, scale, glp):
    """logp_t = s_t z_t[a_t] - logsumexp(s_t z_t) and its gradient in the unscaled logits,
    g_t s_t (onehot(a_t) - softmax(s_t z_t)) (math 3), in float32; the gradient has x's dtype."""
    z = x.astype(np.float32) * scale[:, None]
    m = z.max(-1, keepdims=True)
    e = np.exp(z - m)
    total = e.sum(-1, keepdims=True)
    rows = np.arange(len(labels))
    logprob = z[rows, labels] - (m + np.log(total))[:, 0]
    gs = (glp * scale)[:, None]
    e *= -gs / total
    e[rows, labels] += gs[:, 0]
    return logprob, e.astype(x.dtype, copy=False)


# ---------------------------------------------------------------------------------------
# PyTorch eager: forward written plainly, backward by autograd


def torch_discrete(z, a: float, b: float):
    """Discrete ERA output logits, differentiable (math 2)."""
    p = torch.softmax(z, dim=-1)
    y = torch.clamp(a * p + b, min=torch.finfo(z.dtype).tiny)
    return log_inverse_entropy(y, HALLEY_STEPS[str(z.dtype).replace("torch.", "")], torch)


def torch_continuous(s, residual, offset: float, log_std_min: float, log_std_max: float):
    """Continuous ERA log stds, differentiable in s and in the residual tensor (math 1)."""
    k = offset + residual
    return torch.clamp(log_std_max + k * torch.softmax(s, dim=-1), min=log_std_min)


def torch_token_entropy(x):
    """Entropy of softmax per row: logsumexp - sum p*z, float32 compute."""
    z = x.float()
    lse = torch.logsumexp(z, dim=-1)
    p = torch.exp(z - lse.unsqueeze(-1))
    return lse - (p * z).sum(-1)


def torch_scaled_logprob(x, labels, scale):
    """s_t z_t[a_t] - logsumexp(s_t z_t), float32 compute, differentiable in x."""
    z = x.float() * scale.unsqueeze(-1)
    return z.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z, dim=-1)


# ---------------------------------------------------------------------------------------
# JAX: the same forward, jitted by the caller; the backward by jax.vjp


def jax_discrete(z, a: float, b: float):
    p = jax.nn.softmax(z, axis=-1)
    y = jnp.maximum(a * p + b, jnp.finfo(z.dtype).tiny)
    return log_inverse_entropy(y, HALLEY_STEPS[str(z.dtype)], jnp)


def jax_continuous(s, residual, offset: float, log_std_min: float, log_std_max: float):
    k = offset + residual
    return jnp.maximum(log_std_max + k * jax.nn.softmax(s, axis=-1), log_std_min)


def jax_token_entropy(x):
    z = x.astype(jnp.float32)
    lse = jax.nn.logsumexp(z, axis=-1)
    p = jnp.exp(z - lse[:, None])
    return lse - (p * z).sum(-1)


def jax_scaled_logprob(x, labels, scale):
    z = x.astype(jnp.float32) * scale[:, None]
    picked = jnp.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
    return picked - jax.nn.logsumexp(z, axis=-1)
