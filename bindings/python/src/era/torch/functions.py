"""ERA for torch tensors: autograd Functions over libera (CPU tensors, no copies when
contiguous) and the functional API that picks libera or the torch-native implementation.

Backend rule (argument ``backend``): "auto" (default) uses libera for CPU tensors and
era.torch.native for other devices; "libera" insists on libera (CPU only); "native" forces
the torch-native path (useful on CPU to test it). The LLM log-prob has no float64 kernel in
libera, so float64 logits take the native path under "auto".

Entropies are metrics: no gradient flows through them (their outputs never require grad).
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import torch

from .. import continuous as _continuous
from .. import discrete as _discrete
from .. import entropy as _entropy
from .. import llm as _llm
from .._errors import BadShapeError, python_error
from . import native
from ._bridge import from_numpy, to_numpy, use_libera

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


# ---------------------------------------------------------------------------------------
# Continuous ERA


class ContinuousERAFunction(torch.autograd.Function):
    """libera's continuous ERA: forward era_continuous_forward, backward
    era_continuous_backward (gradients for std_logits and the residual)."""

    @staticmethod
    def forward(ctx, std_logits, residual, target_entropy, log_std_min, log_std_max):
        params = dict(
            target_entropy=target_entropy,
            residual=float(residual),
            log_std_min=log_std_min,
            log_std_max=log_std_max,
        )
        log_std = _continuous.continuous_forward(to_numpy(std_logits), **params)
        ctx.save_for_backward(std_logits)
        ctx.params = params
        ctx.residual_meta = (residual.shape, residual.dtype, residual.device)
        return from_numpy(log_std)

    @staticmethod
    def backward(ctx, grad_log_std):
        (std_logits,) = ctx.saved_tensors
        want_residual = ctx.needs_input_grad[1]
        grads = _continuous.continuous_backward(
            to_numpy(std_logits), to_numpy(grad_log_std), residual_grad=want_residual, **ctx.params
        )
        grad_std_logits = from_numpy(grads.std_logits) if ctx.needs_input_grad[0] else None
        grad_residual = None
        if want_residual:
            total = float(np.sum(grads.residual, dtype=np.float64))
            shape, dtype, device = ctx.residual_meta
            grad_residual = torch.full(shape, total, dtype=dtype, device=device)
        return grad_std_logits, grad_residual, None, None, None


def continuous_era(
    std_logits: torch.Tensor,
    target_entropy: float,
    *,
    residual: Union[float, torch.Tensor] = 0.0,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
    backend: str = "auto",
) -> torch.Tensor:
    """Continuous ERA log stds (docs/math.md section 1), differentiable.

    Args:
        std_logits: ``[..., D]`` float32/float64 raw scale outputs.
        target_entropy: H0 in nats (SAC-ERA's default: ``-0.5 * D``).
        residual: delta >= 0 in nats, a float or a one-element tensor (then differentiable:
            dL/d(delta) is summed over the rows).
        log_std_min, log_std_max: the clip range of the log std.
        backend: "auto", "libera" or "native" (module docstring).
    Returns:
        ``[..., D]`` log stds, the dtype of `std_logits`; Gaussian entropy of every row
        >= H0 + delta.
    """
    where = "era.torch.continuous_era"
    if isinstance(residual, torch.Tensor) and residual.numel() != 1:
        raise python_error(BadShapeError, where, f"residual must hold one value, got shape {tuple(residual.shape)}")
    if not use_libera(std_logits, backend, where):
        return native.continuous_era(std_logits, target_entropy, residual, log_std_min, log_std_max)
    if not isinstance(residual, torch.Tensor):
        residual = torch.tensor(float(residual), dtype=torch.float64)
    return ContinuousERAFunction.apply(
        std_logits, residual, float(target_entropy), float(log_std_min), float(log_std_max)
    )


# ---------------------------------------------------------------------------------------
# Discrete ERA


class DiscreteERAFunction(torch.autograd.Function):
    """libera's discrete ERA: forward era_discrete_forward, backward era_discrete_backward."""

    @staticmethod
    def forward(ctx, logits, target_entropy, tau, mode):
        params = dict(target_entropy=target_entropy, tau=tau, mode=mode)
        out = _discrete.discrete_forward(to_numpy(logits), **params)
        ctx.save_for_backward(logits)
        ctx.params = params
        return from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out):
        (logits,) = ctx.saved_tensors
        grad = _discrete.discrete_backward(to_numpy(logits), to_numpy(grad_out), **ctx.params)
        return from_numpy(grad), None, None, None


def discrete_era(
    logits: torch.Tensor,
    target_entropy: float,
    *,
    tau: float = _discrete.TAU,
    mode: str = "exact",
    backend: str = "auto",
) -> torch.Tensor:
    """Discrete ERA output logits (docs/math.md section 2), differentiable.

    Args:
        logits: ``[..., D]`` float32/float64, D >= 2.
        target_entropy: H0 in nats.
        tau: > e. mode: "exact", "tight" or "reference".
        backend: "auto", "libera" or "native".
    Returns:
        ``[..., D]`` logits whose softmax has entropy >= H0 (modes exact, tight).
    """
    if not use_libera(logits, backend, "era.torch.discrete_era"):
        return native.discrete_era(logits, target_entropy, tau, mode)
    return DiscreteERAFunction.apply(logits, float(target_entropy), float(tau), mode)


# ---------------------------------------------------------------------------------------
# LLM log-probabilities


class LLMLogprobFunction(torch.autograd.Function):
    """libera's ERA log-prob: forward era_llm_logprob_forward (log-probs and the entropy of
    the scaled distribution), backward era_llm_logprob_backward (float32 or bfloat16)."""

    @staticmethod
    def forward(ctx, logits, labels, logit_scale):
        scale = None if logit_scale is None else to_numpy(logit_scale)
        result = _llm.llm_logprob_forward(to_numpy(logits), to_numpy(labels), scale)
        ctx.save_for_backward(logits, labels, logit_scale)
        entropy = from_numpy(result.entropy)
        ctx.mark_non_differentiable(entropy)
        return from_numpy(result.logprob), entropy

    @staticmethod
    def backward(ctx, grad_logprob, _grad_entropy):
        logits, labels, logit_scale = ctx.saved_tensors
        scale = None if logit_scale is None else to_numpy(logit_scale)
        grad = _llm.llm_logprob_backward(to_numpy(logits), to_numpy(labels), scale, to_numpy(grad_logprob))
        return from_numpy(grad, bfloat16=logits.dtype == torch.bfloat16), None, None


def llm_logprob(
    logits: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: Optional[torch.Tensor] = None,
    *,
    backend: str = "auto",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """ERA log-probabilities ``logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t)`` and the entropy
    of softmax(s_t*z_t), per token.

    Args:
        logits: ``[..., V]`` float32 or bfloat16 (float64: native path); -inf masks a token.
        labels: ``[...]`` int64 sampled tokens.
        logit_scale: ``[...]`` float32 scales s_t (llm_scales), or None for 1; a constant.
        backend: "auto", "libera" or "native".
    Returns:
        (logprob ``[...]`` differentiable in `logits`, entropy ``[...]`` in nats, no grad);
        float32 (float64 for float64 logits on the native path).
    """
    where = "era.torch.llm_logprob"
    libera = use_libera(logits, backend, where)
    if libera and not (backend == "auto" and logits.dtype == torch.float64):
        return LLMLogprobFunction.apply(logits, labels, logit_scale)
    return native.llm_logprob(logits, labels, logit_scale)


# ---------------------------------------------------------------------------------------
# Entropies (metrics: no gradient)


def _numpy_result(a: np.ndarray, device: torch.device) -> torch.Tensor:
    # np.ascontiguousarray would turn a 0-d result (one row) into shape [1].
    a = np.asarray(a)
    return torch.from_numpy(a if a.flags.c_contiguous else np.ascontiguousarray(a)).to(device)


def softmax_entropy(logits: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Entropy of softmax(logits) per row, ``[..., D] -> [...]`` nats (float32/float64)."""
    if not use_libera(logits, backend, "era.torch.softmax_entropy"):
        return native.softmax_entropy(logits)
    return _numpy_result(_entropy.softmax_entropy(to_numpy(logits)), logits.device)


def gaussian_entropy(log_std: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Diagonal-Gaussian entropy per row, ``[..., D] -> [...]`` nats."""
    if not use_libera(log_std, backend, "era.torch.gaussian_entropy"):
        return native.gaussian_entropy(log_std)
    return _numpy_result(_entropy.gaussian_entropy(to_numpy(log_std)), log_std.device)


def tanh_gaussian_entropy(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of tanh(N(mean, exp(log_std)^2)) per row, ``[..., D] -> [...]`` nats, by
    libera's deterministic quadrature (tensors on other devices are copied to the CPU for it:
    this is a per-row metric, small next to the network)."""
    value = _entropy.tanh_gaussian_entropy(to_numpy(mean.cpu()), to_numpy(log_std.cpu()))
    return _numpy_result(value, log_std.device)


def truncated_normal_entropy(
    loc: torch.Tensor, log_std: torch.Tensor, lo: float = -1.0, hi: float = 1.0
) -> torch.Tensor:
    """Entropy of N(loc, exp(log_std)^2) truncated to [lo, hi] per row, ``[..., D] -> [...]``
    nats, by libera (tensors on other devices are copied to the CPU for it)."""
    value = _entropy.truncated_normal_entropy(to_numpy(loc.cpu()), to_numpy(log_std.cpu()), lo, hi)
    return _numpy_result(value, log_std.device)


def token_entropy(logits: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Entropy of softmax(logits) per token with -inf masks, ``[..., V] -> [...]`` nats:
    float32 for float32/bfloat16 logits, float64 for float64."""
    if not use_libera(logits, backend, "era.torch.token_entropy"):
        return native.token_entropy(logits)
    return _numpy_result(_llm.token_entropy(to_numpy(logits)), logits.device)
