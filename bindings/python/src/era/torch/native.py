"""The torch-native implementation of ERA, for tensors libera cannot read (CUDA and other
devices). It is the one place in the package that writes the formulas again, from
docs/math.md, and the tests hold it to libera's results on CPU.

What stays with libera even here: every parameter check (a zero-row call validates the
parameters with the library's own rules) and the discrete constant C (era_discrete_constant,
which solves the "tight" mode). Errors are the same ERAError subclasses as libera's.
Precision: continuous and discrete ERA compute in float64 and store the input's dtype (as
libera does); the LLM passes compute in float32 for float32/bfloat16 logits (float64 for
float64 logits), so they agree with libera to float32 rounding of sums over the vocabulary.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

from .. import continuous as _continuous
from .. import discrete as _discrete
from .. import llm as _llm
from .._errors import BadIndexError, BadParameterError, BadShapeError, DTypeError, NonFiniteError, python_error

# 0.5*log(2*pi*e): the entropy of N(0, 1) per dimension (math 1).
GAUSSIAN_ENTROPY_PER_DIM = 0.5 * math.log(2 * math.pi * math.e)
# y at or below this is clamped in discrete ERA (math 2, "Clamping"): the smallest normal double.
SMALLEST_Y = float(np.finfo(np.float64).tiny)
FLOAT_DTYPES = (torch.float32, torch.float64)
LOGIT_DTYPES = (torch.float32, torch.bfloat16, torch.float64)


def _require_dtype(t: torch.Tensor, allowed, where: str, name: str) -> None:
    if t.dtype not in allowed:
        names = " or ".join(str(d).replace("torch.", "") for d in allowed)
        raise python_error(DTypeError, where, f"{name} has dtype {str(t.dtype).replace('torch.', '')}; it must be {names}")


def _require_finite(t: torch.Tensor, where: str, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise python_error(NonFiniteError, where, f"{name} holds NaN or an infinity")


def _rows_shape(t: torch.Tensor, where: str, name: str, min_cols: int = 1) -> None:
    if t.dim() == 0:
        raise python_error(BadShapeError, where, f"{name} is a scalar; it needs a last axis (the row)")
    if t.shape[-1] < min_cols:
        raise python_error(BadShapeError, where, f"{name} rows have {t.shape[-1]} entries, fewer than {min_cols}")


# ---------------------------------------------------------------------------------------
# Entropies (math 1, 3)


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax per row, ``[..., D] -> [...]``, nats (no gradient)."""
    where = "era.torch.native.softmax_entropy"
    _require_dtype(logits, FLOAT_DTYPES, where, "logits")
    _rows_shape(logits, where, "logits")
    _require_finite(logits, where, "logits")
    with torch.no_grad():
        return _masked_entropy(logits)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """``sum(log_std) + D*0.5*log(2*pi*e)`` per row, ``[..., D] -> [...]``, nats."""
    where = "era.torch.native.gaussian_entropy"
    _require_dtype(log_std, FLOAT_DTYPES, where, "log_std")
    _rows_shape(log_std, where, "log_std")
    _require_finite(log_std, where, "log_std")
    with torch.no_grad():
        d = log_std.shape[-1]
        return (log_std.double().sum(-1) + d * GAUSSIAN_ENTROPY_PER_DIM).to(log_std.dtype)


def _masked_entropy(x: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(x) along the last axis, -inf entries masked, in x's dtype:
    ``H = log S - T/S`` with ``S = sum exp(v - m)``, ``T = sum (v - m) exp(v - m)`` (math 3)."""
    m = x.amax(-1, keepdim=True)
    d = x - m
    e = torch.exp(d)
    s = e.sum(-1)
    t = torch.where(torch.isinf(d), torch.zeros_like(d), d * e).sum(-1)
    return torch.log(s) - t / s


def _llm_compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _check_llm_logits(logits: torch.Tensor, where: str) -> None:
    _require_dtype(logits, LOGIT_DTYPES, where, "logits")
    _rows_shape(logits, where, "logits")
    if bool((torch.isnan(logits) | (logits == math.inf)).any()):
        raise python_error(NonFiniteError, where, "logits hold NaN or +inf")
    if logits.numel() and bool((logits == -math.inf).all(-1).any()):
        raise python_error(NonFiniteError, where, "a row of logits is fully masked (all -inf)")


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per token, -inf logits masked, ``[..., V] -> [...]``:
    float64 for float64 logits, else float32 (no gradient)."""
    where = "era.torch.native.token_entropy"
    _check_llm_logits(logits, where)
    with torch.no_grad():
        return _masked_entropy(logits.to(_llm_compute_dtype(logits)))


# ---------------------------------------------------------------------------------------
# Continuous ERA (math 1)


def continuous_era(
    std_logits: torch.Tensor,
    target_entropy: float,
    residual=0.0,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
) -> torch.Tensor:
    """``max(log_std_max + K*softmax(s), log_std_min)``, K = H0 + delta - D*c - D*log_std_max,
    differentiable (by autograd) in `std_logits` and in `residual` when it is a tensor."""
    where = "era.torch.native.continuous_era"
    _require_dtype(std_logits, FLOAT_DTYPES, where, "std_logits")
    _rows_shape(std_logits, where, "std_logits")
    delta = float(residual.detach()) if isinstance(residual, torch.Tensor) else float(residual)
    dim = std_logits.shape[-1]
    # The library checks the parameters (and the feasibility of the target) on zero rows.
    _continuous.continuous_forward(
        np.zeros((0, dim)), target_entropy, residual=delta, log_std_min=log_std_min, log_std_max=log_std_max
    )
    _require_finite(std_logits, where, "std_logits")
    if isinstance(residual, torch.Tensor):
        residual = residual.to(device=std_logits.device, dtype=torch.float64)
    k = target_entropy + residual - dim * GAUSSIAN_ENTROPY_PER_DIM - dim * log_std_max
    w = torch.softmax(std_logits.double(), dim=-1)
    y = log_std_max + k * w
    log_std = torch.where(y > log_std_min, y, torch.full_like(y, log_std_min))
    if log_std.requires_grad:
        log_std.register_hook(lambda grad: _refuse_non_finite_grad(grad, where, "grad_log_std"))
    if std_logits.dtype == torch.float64:
        return log_std
    # float32 storage rounds upwards (never above float32(log_std_max)), as libera does, so the
    # floor holds for the stored values; the gradient is that of the double value.
    nearest = log_std.float()
    with torch.no_grad():
        up = torch.nextafter(nearest, torch.full_like(nearest, math.inf))
        stored = torch.where(nearest.double() < log_std, up, nearest)
        stored = torch.minimum(stored, torch.tensor(log_std_max, dtype=torch.float32, device=stored.device))
    return nearest + (stored - nearest).detach()


# ---------------------------------------------------------------------------------------
# Discrete ERA (math 2)


def log_inverse_entropy_term(y: torch.Tensor) -> torch.Tensor:
    """t = log h^-1(y), the solution t <= -1 of ``-t*exp(t) = y`` (t = W_{-1}(-y)), for
    0 < y < 1/e, float64: Halley's method on ``t + log(-t) = log y`` from the branch-point
    series (y > 0.25) or the asymptotic expansion of W_{-1} (below)."""
    log_y = torch.log(y)
    q = -torch.sqrt(2 * -torch.expm1(1 + torch.clamp(log_y, max=-1.0)))
    near_branch = -1 + q * (1 + q * (-1.0 / 3 + q * (11.0 / 72)))
    l2 = torch.log(-torch.clamp(log_y, max=-1e-300))
    asymptotic = log_y - l2 + l2 / log_y
    t = torch.where(y > 0.25, near_branch, asymptotic)
    for _ in range(6):
        g = t + torch.log(-t) - log_y
        g1 = 1 + 1 / t
        g2 = -1 / (t * t)
        t = t - g / (g1 - g * g2 / (2 * g1))
    return torch.clamp(t, max=-1.0)


def reference_log_inverse_entropy_term(y: torch.Tensor) -> torch.Tensor:
    """The official code's approximation: u = -1 - log y, t = -1 - sqrt(2u) - 0.75u."""
    u = -1 - torch.log(y)
    return -1 - torch.sqrt(2 * u) - 0.75 * u


def _discrete_constants(classes: int, target_entropy: float, tau: float, mode: str) -> Tuple[float, float]:
    """The slope a and offset b of y in p; C comes from libera (which also checks the
    parameters and solves the "tight" mode)."""
    c = _discrete.discrete_constant(classes, target_entropy, tau=tau, mode=mode)
    up = math.log(tau) / tau
    return max(0.0, (classes * up - c) / (classes - 1)), max(0.0, (c - up) / (classes - 1))


def _discrete_pieces(z: torch.Tensor, a: float, b: float, mode: str):
    """p, the clamped y, a mask of the clamped entries and t, all float64."""
    p = torch.softmax(z.double(), dim=-1)
    y = a * p + b
    clamped = y <= SMALLEST_Y
    y = torch.clamp(y, min=SMALLEST_Y)
    t = reference_log_inverse_entropy_term(y) if mode == "reference" else log_inverse_entropy_term(y)
    return p, y, clamped, t


class _DiscreteERA(torch.autograd.Function):
    """Discrete ERA with the analytic backward of math 2, in float64 on any device."""

    @staticmethod
    def forward(ctx, logits, a, b, mode):
        with torch.no_grad():
            _, _, _, t = _discrete_pieces(logits, a, b, mode)
        ctx.save_for_backward(logits)
        ctx.constants = (a, b, mode)
        return t.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (logits,) = ctx.saved_tensors
        a, b, mode = ctx.constants
        _refuse_non_finite_grad(grad_out, "era.torch.native.discrete_era (backward)", "grad_out")
        # As the core: s_i = r_i p_i = g_i (a p_i / y_i) (y_i dt/dy), free of the overflow of
        # dt/dy ~ 1/y; grad_j = s_j - p_j sum s, except for the most probable class, whose
        # gradient is minus the sum of the others (no cancellation as p_j nears 1).
        with torch.no_grad():
            p, y, clamped, t = _discrete_pieces(logits, a, b, mode)
            if mode == "reference":
                elasticity = 1 / torch.sqrt(2 * (-1 - torch.log(y))) + 0.75
            else:
                elasticity = t / (1 + t)
            elasticity = torch.where(clamped, torch.zeros_like(elasticity), elasticity)
            s = grad_out.double() * (a * p / y) * elasticity
            grad = s - p * s.sum(-1, keepdim=True)
            top = logits.argmax(dim=-1, keepdim=True)
            others = grad.scatter(-1, top, 0.0).sum(-1, keepdim=True)
            grad = grad.scatter(-1, top, -others)
        return grad.to(logits.dtype), None, None, None


def discrete_era(
    logits: torch.Tensor, target_entropy: float, tau: float = _discrete.TAU, mode: str = "exact"
) -> torch.Tensor:
    """Discrete ERA output logits, ``[..., D] -> [..., D]``, differentiable in `logits`."""
    where = "era.torch.native.discrete_era"
    _require_dtype(logits, FLOAT_DTYPES, where, "logits")
    _rows_shape(logits, where, "logits")
    a, b = _discrete_constants(logits.shape[-1], target_entropy, tau, mode)
    _require_finite(logits, where, "logits")
    return _DiscreteERA.apply(logits, a, b, mode)


# ---------------------------------------------------------------------------------------
# LLM ERA (math 3)


def _check_llm_params(omega_low, omega_high, k, top_fraction, scale_advantages) -> None:
    """The library checks the LLM parameters on zero tokens."""
    _llm.llm_response_entropy(
        np.zeros(0, np.float32),
        np.zeros(0, np.int64),
        0,
        top_fraction=top_fraction,
        omega_low=omega_low,
        omega_high=omega_high,
        k=k,
    )


def _check_ids(response_id: torch.Tensor, responses: int, where: str) -> None:
    _require_dtype(response_id, (torch.int64,), where, "response_id")
    if responses < 0:
        raise python_error(BadShapeError, where, f"num_responses={responses} is negative")
    if response_id.numel() and bool(((response_id < -1) | (response_id >= responses)).any()):
        raise python_error(BadIndexError, where, f"a response id is outside -1..{responses - 1}")


def llm_response_entropy(
    token_entropy: torch.Tensor,
    response_id: torch.Tensor,
    num_responses: int,
    *,
    top_fraction: float = _llm.TOP_FRACTION,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
) -> torch.Tensor:
    """Mean of the max(1, floor(top_fraction*L_b)) largest token entropies of each response,
    ``[R]`` (NaN for a response without tokens), in the dtype of `token_entropy`."""
    where = "era.torch.native.llm_response_entropy"
    _check_llm_params(omega_low, omega_high, k, top_fraction, True)
    _require_dtype(token_entropy, FLOAT_DTYPES, where, "token_entropy")
    if token_entropy.shape != response_id.shape:
        raise python_error(BadShapeError, where, f"response_id has shape {tuple(response_id.shape)}, "
                           f"token_entropy {tuple(token_entropy.shape)}")
    _check_ids(response_id, num_responses, where)
    h = token_entropy.detach().reshape(-1)
    ids = response_id.reshape(-1)
    member = ids >= 0
    if not bool(torch.isfinite(h[member]).all()):
        raise python_error(NonFiniteError, where, "a response token has a non-finite entropy")
    h, ids = h[member].double(), ids[member]
    # Sort by response, and within a response by decreasing entropy: rank = position in group.
    order = torch.sort(h, descending=True, stable=True).indices
    order = order[torch.sort(ids[order], stable=True).indices]
    h, ids = h[order], ids[order]
    counts = torch.bincount(ids, minlength=num_responses)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(ids.numel(), device=ids.device) - starts[ids]
    top = torch.clamp(torch.floor(top_fraction * counts.double()), min=1)
    keep = rank < top[ids]
    sums = torch.zeros(num_responses, dtype=torch.float64, device=h.device).index_add_(0, ids[keep], h[keep])
    out = sums / top
    out = torch.where(counts > 0, out, torch.full_like(out, math.nan))
    return out.to(token_entropy.dtype)


def llm_scales(
    response_entropy: torch.Tensor,
    response_id: torch.Tensor,
    advantages: torch.Tensor,
    *,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
    scale_advantages: bool = True,
    top_fraction: float = _llm.TOP_FRACTION,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(logit scale s_t, advantage A'_t) per token, in the dtype of `advantages`; the
    thresholds are compared in the dtype of `response_entropy`, strictly."""
    where = "era.torch.native.llm_scales"
    _check_llm_params(omega_low, omega_high, k, top_fraction, scale_advantages)
    if advantages.shape != response_id.shape:
        raise python_error(BadShapeError, where, f"advantages has shape {tuple(advantages.shape)}, "
                           f"response_id {tuple(response_id.shape)}")
    _require_dtype(advantages, FLOAT_DTYPES, where, "advantages")
    _check_ids(response_id, response_entropy.numel(), where)
    _require_finite(advantages, where, "advantages")
    member = response_id >= 0
    h = response_entropy.detach()[torch.clamp(response_id, min=0)]
    if not bool(torch.isfinite(h[member]).all()):
        raise python_error(NonFiniteError, where, "a response that tokens belong to has a non-finite entropy")
    low = torch.tensor(omega_low, dtype=h.dtype, device=h.device)
    high = torch.tensor(omega_high, dtype=h.dtype, device=h.device)
    positive = member & (advantages > 0)
    scale = torch.ones(response_id.shape, dtype=torch.float64, device=advantages.device)
    scale = torch.where(positive & (h > high), torch.full_like(scale, 1.0 / k), scale)
    scale = torch.where(positive & (h < low), torch.full_like(scale, float(k)), scale)
    adv = (advantages.double() / scale).to(advantages.dtype) if scale_advantages else advantages.clone()
    if not bool(torch.isfinite(adv).all()):
        raise python_error(BadParameterError, where, f"an advantage A/s overflows {_dtype_name(advantages)}")
    return scale.to(advantages.dtype), adv


def _check_labels(logits: torch.Tensor, labels: torch.Tensor, where: str) -> None:
    _require_dtype(labels, (torch.int64,), where, "labels")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise python_error(BadShapeError, where, f"labels have shape {tuple(labels.shape)}, logits "
                           f"{tuple(logits.shape)}")
    vocab = logits.shape[-1]
    if labels.numel() == 0:
        return
    if bool(((labels < 0) | (labels >= vocab)).any()):
        raise python_error(BadIndexError, where, f"a label is outside 0..{vocab - 1}")
    picked = logits.detach().gather(-1, labels.unsqueeze(-1))
    if bool((picked == -math.inf).any()):
        raise python_error(BadIndexError, where, "a label points at a masked (-inf) logit")


def llm_logprob(
    logits: torch.Tensor, labels: torch.Tensor, logit_scale: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(logp'_t, entropy of softmax(s_t*z_t)) per token, ``[..., V] -> [...]``; logp' is
    differentiable in `logits` (s held constant), the entropy is not."""
    where = "era.torch.native.llm_logprob"
    _check_llm_logits(logits, where)
    _check_labels(logits, labels, where)
    compute = _llm_compute_dtype(logits)
    x = logits.to(compute)
    if logit_scale is not None:
        if tuple(logit_scale.shape) != tuple(labels.shape):
            raise python_error(BadShapeError, where, f"logit_scale has shape {tuple(logit_scale.shape)}, labels "
                               f"{tuple(labels.shape)}")
        _require_dtype(logit_scale, FLOAT_DTYPES, where, "logit_scale")
        _require_finite(logit_scale, where, "logit_scale")
        if logit_scale.numel() and bool((logit_scale <= 0).any()):
            raise python_error(BadParameterError, where, "a logit scale is <= 0")
        x = x * logit_scale.detach().to(compute).unsqueeze(-1)
    lse = torch.logsumexp(x, dim=-1)
    logprob = x.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - lse
    # libera evaluates in double and refuses a log-prob float32 cannot hold; here the scaled
    # logits are formed in the compute dtype, so an overflow shows as a non-finite log-prob
    # (labels never point at -inf logits). Refused, as libera does, rather than returned.
    if not bool(torch.isfinite(logprob.detach()).all()):
        raise python_error(BadParameterError, where, f"a scaled logit or log-probability overflows {_dtype_name(x)}")
    if logprob.requires_grad:
        scale = None if logit_scale is None else logit_scale.detach().double()
        logprob.register_hook(lambda grad: _check_logprob_grad(grad, scale, logits.dtype))
    with torch.no_grad():
        entropy = _masked_entropy(x.detach())
    return logprob, entropy


def _refuse_non_finite_grad(grad: Optional[torch.Tensor], where: str, name: str) -> Optional[torch.Tensor]:
    """As libera's backward kernels: an upstream gradient holding NaN or an infinity is
    refused (NonFiniteError, which ends ``backward()``) instead of spreading NaN."""
    if grad is not None and not bool(torch.isfinite(grad).all()):
        raise python_error(NonFiniteError, where, f"{name} holds NaN or an infinity")
    return grad


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _check_logprob_grad(grad: torch.Tensor, scale: Optional[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """The backward's checks, as libera's: a non-finite upstream gradient is refused
    (NonFiniteError), and so is one whose g*s, the bound on the logit gradient, overflows the
    logits' dtype (BadParameterError). Raised from the hook, the error ends ``backward()``."""
    where = "era.torch.native.llm_logprob (backward)"
    if grad is None:  # no gradient flows (autograd may pass None, e.g. under gradcheck)
        return grad
    _refuse_non_finite_grad(grad, where, "grad_logprob")
    bound = grad.double() if scale is None else grad.double() * scale
    if not bool(torch.isfinite(bound.to(dtype)).all()):
        raise python_error(BadParameterError, where, f"grad_logprob * logit_scale overflows {str(dtype).replace('torch.', '')}")
    return grad
