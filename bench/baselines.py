"""The baselines of bench/run.py: libera's math in plain PyTorch, JAX and numpy, with no libera
code. The formulas are era._formulas, the module the torch device path also runs, written
once against an array namespace (tests hold it to libera in numpy, torch and jax.numpy):
the baselines differ only in the array library and in where the backward comes from.

- PyTorch (eager, and torch.compile in run.py): float32 on CPU; bfloat16 logits are upcast
  to float32 for the compute, as training code does with ``logits.float()``; forward only,
  the backward comes from autograd.
- JAX (``jax.jit``; the backward from ``jax.vjp``; bfloat16 upcast likewise).
- numpy: forward and the analytic backward of era._formulas, in float64 for continuous and
  discrete ERA (the precision libera computes them in) and in float32 for the
  vocabulary-sized LLM passes.

Discrete ERA takes the workload's mode: "exact" (C = exp(H0 - 1), the inverse of h by Halley's
method on ``t + log(-t) = log y``: era._formulas.log_inverse_entropy, the steps that reach the
rounding of each type, 3 in float32 and 4 in float64), "tight" (the same inverse, with the C
that run.py takes from era.discrete_constant: one scalar solved per call, as the torch device
path takes it) or "reference" (C = exp(H0 - 1) and the official closed-form inverse).

Every function takes arrays of shape [rows, D] (D: classes, action dimensions or vocabulary)
and per-row arrays of shape [rows].
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from era import _formulas as F

try:
    import torch
except ImportError:  # the torch rows are skipped
    torch = None
try:
    import jax
    import jax.numpy as jnp
except ImportError:  # the JAX rows are skipped
    jax = jnp = None

NP = F.namespace(np)
TORCH = F.namespace(torch) if torch is not None else None
JNP = F.namespace(jnp) if jnp is not None else None


# ---------------------------------------------------------------------------------------
# Constants, in double precision


def discrete_slope_offset(classes: int, target_entropy: float, tau: float, c: Optional[float] = None):
    """(a, b) of ``y = a*p + b`` (math 2) for the constant c, by default the "exact" and
    "reference" modes' C = exp(H0 - 1)."""
    return F.discrete_slope_offset(classes, math.exp(target_entropy - 1) if c is None else c, tau)


def continuous_offset(dim: int, target_entropy: float, log_std_max: float) -> float:
    """K less the residual (math 1): H0 - D*0.5*log(2*pi*e) - D*log_std_max."""
    return F.continuous_offset(dim, target_entropy, log_std_max)


# ---------------------------------------------------------------------------------------
# numpy: forward and analytic backward


def numpy_discrete(z, g, a: float, b: float, tau: float, mode: str = "exact"):
    """Discrete ERA forward and backward in float64; (output logits, dL/dz) in z's dtype."""
    wide, g64 = z.astype(np.float64), g.astype(np.float64)
    out = F.discrete_forward(NP, wide, a, b, tau, mode)
    grad = F.discrete_backward(NP, wide, g64, a, b, tau, mode)
    return out.astype(z.dtype), grad.astype(z.dtype)


def numpy_continuous(s, g, offset: float, residual: float, log_std_min: float, log_std_max: float):
    """Continuous ERA forward and backward in float64; (log_std, dL/ds, dL/d(residual) per row)
    in s's dtype."""
    wide, g64 = s.astype(np.float64), g.astype(np.float64)
    k = offset + residual
    log_std = F.continuous_forward(NP, wide, k, log_std_min, log_std_max)
    grad, grad_residual = F.continuous_backward(NP, wide, g64, k, log_std_min, log_std_max)
    return log_std.astype(s.dtype), grad.astype(s.dtype), grad_residual.astype(s.dtype)


def numpy_token_entropy(x):
    """Entropy of softmax per row, float32 (bfloat16 upcast first)."""
    return F.token_entropy(NP, x.astype(np.float32, copy=False))


def numpy_scaled_logprob(x, labels, scale, glp):
    """(logp_t, its gradient in the unscaled logits) in float32; the gradient has x's dtype."""
    z = x.astype(np.float32, copy=False)
    logprob = F.logprob(NP, z, labels, scale)
    grad = F.logprob_backward(NP, z, labels, scale, glp)
    return logprob, grad.astype(x.dtype, copy=False)


# ---------------------------------------------------------------------------------------
# PyTorch: forward, backward by autograd (run.py also compiles these)


def torch_discrete(z, a: float, b: float, tau: float, mode: str = "exact"):
    """Discrete ERA output logits, differentiable (math 2)."""
    return F.discrete_forward(TORCH, z, a, b, tau, mode)


def torch_continuous(s, residual, offset: float, log_std_min: float, log_std_max: float):
    """Continuous ERA log stds, differentiable in s and in the residual tensor (math 1)."""
    return F.continuous_forward(TORCH, s, offset + residual, log_std_min, log_std_max)


def torch_token_entropy(x):
    """Entropy of softmax per row, float32 compute."""
    return F.token_entropy(TORCH, x.float())


def torch_scaled_logprob(x, labels, scale):
    """s_t z_t[a_t] - logsumexp(s_t z_t), float32 compute, differentiable in x."""
    return F.logprob(TORCH, x.float(), labels, scale)


# ---------------------------------------------------------------------------------------
# JAX: the same forward, jitted by the caller; the backward by jax.vjp


def jax_discrete(z, a: float, b: float, tau: float, mode: str = "exact"):
    return F.discrete_forward(JNP, z, a, b, tau, mode)


def jax_continuous(s, residual, offset: float, log_std_min: float, log_std_max: float):
    return F.continuous_forward(JNP, s, offset + residual, log_std_min, log_std_max)


def jax_token_entropy(x):
    return F.token_entropy(JNP, x.astype(jnp.float32))


def jax_scaled_logprob(x, labels, scale):
    return F.logprob(JNP, x.astype(jnp.float32), labels, scale)
