"""ERA for torch tensors: the functional API over the era custom operators (era.torch._ops).

Backend rule (argument ``backend``): "auto" (default) runs libera for CPU tensors and the
device path (era.torch.native) for tensors on other devices; "libera" insists on libera
(CPU tensors only); "native" forces the device path, on any device (useful on CPU to test
it). Both backends compute the same values, to rounding, with the same errors, and the same
first and second derivatives.

dtypes: continuous and discrete ERA take float16, bfloat16, float32 and float64 rows and
return the input's dtype, half precision computed in float32 inside (outputs and gradients
rounded once to the input dtype; continuous log stds rounded upwards, so the entropy floor
holds for the stored values). The LLM passes take float16, bfloat16, float32 or float64
logits and int32 or int64 labels; their per-token results are float32 (float64 for float64
logits). Every function works under torch.compile (fullgraph), torch.export, torch.func
(vmap, grad, jacrev) and torch.autocast (continuous and discrete ERA and the entropies of
their rows follow softmax: float32 under CUDA's autocast, the input dtype under the CPU's;
see era.torch._ops).

Entropies are metrics: no gradient flows through them (their outputs never require grad).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch

from .. import continuous as _continuous
from .. import discrete as _discrete
from .._errors import BadParameterError, BadShapeError, DTypeError, python_error
from . import _ops
from ._bridge import native_path

__all__ = [
    "continuous_era_tanh",
    "continuous_era_truncated",
    "continuous_era",
    "discrete_era",
    "llm_logprob",
    "softmax_entropy",
    "gaussian_entropy",
    "tanh_gaussian_entropy",
    "truncated_normal_entropy",
    "token_entropy",
]

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LABELS = (torch.int32, torch.int64)


def require(t, allowed, where: str, name: str) -> None:
    """A tensor of one of the `allowed` dtypes, else DTypeError (named in torch's terms)."""
    if not isinstance(t, torch.Tensor):
        raise python_error(DTypeError, where, f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise python_error(DTypeError, where, f"{name} has dtype {t.dtype}; it must be one of {names}")


def require_rows(t: torch.Tensor, where: str, name: str, min_cols: int = 1) -> None:
    if t.dim() == 0:
        raise python_error(BadShapeError, where, f"{name} is a scalar; it needs a last axis (the row)")
    if t.shape[-1] < min_cols:
        raise python_error(BadShapeError, where, f"{name} rows have {t.shape[-1]} entries, fewer than {min_cols}")


def labels_of(labels: torch.Tensor, shape, where: str, name: str = "labels") -> torch.Tensor:
    """int32 or int64 labels of exactly `shape`, as int64 (what libera reads)."""
    require(labels, LABELS, where, name)
    if tuple(labels.shape) != tuple(shape):
        raise python_error(BadShapeError, where,
                           f"{name} have shape {tuple(labels.shape)}; they must be {tuple(shape)}")
    return labels.long()


def scale_of(logit_scale: Optional[torch.Tensor], labels: torch.Tensor, where: str) -> Optional[torch.Tensor]:
    """A float32 or float64 logit scale of the labels' shape, detached (a constant), or None."""
    if logit_scale is None:
        return None
    require(logit_scale, (torch.float32, torch.float64), where, "logit_scale")
    if tuple(logit_scale.shape) != tuple(labels.shape):
        raise python_error(BadShapeError, where, f"logit_scale has shape {tuple(logit_scale.shape)}, labels "
                           f"{tuple(labels.shape)}")
    return logit_scale.detach()


# ---------------------------------------------------------------------------------------
# Continuous ERA


def continuous_era(
    std_logits: torch.Tensor,
    target_entropy: float,
    *,
    residual: Union[float, torch.Tensor] = 0.0,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
    backend: str = "auto",
) -> torch.Tensor:
    """Continuous ERA log stds (docs/math.md section 1), differentiable (twice).

    Args:
        std_logits: ``[..., D]`` raw scale outputs (float16, bfloat16, float32, float64).
        target_entropy: H0 in nats (SAC-ERA's default: ``-0.5 * D``).
        residual: delta >= 0 in nats: a float (checked at once), or a one-element tensor
            (differentiable: dL/d(delta) sums over the rows; on a device its value is checked
            there, see era.torch.set_device_checks).
        log_std_min, log_std_max: the clip range of the log std.
        backend: "auto", "libera" or "native" (module docstring).
    Returns:
        ``[..., D]`` log stds in the dtype of `std_logits`, rounded upwards: the Gaussian
        entropy of every row is at least H0 + delta.
    """
    where = "era.torch.continuous_era"
    require(std_logits, FLOATS, where, "std_logits")
    require_rows(std_logits, where, "std_logits")
    native = native_path(std_logits, backend, where)
    target = float(target_entropy)
    if isinstance(residual, torch.Tensor):
        if residual.numel() != 1:
            raise python_error(BadShapeError, where, f"residual must hold one value, got shape {tuple(residual.shape)}")
        require(residual, FLOATS, where, "residual")
        if residual.dim():
            residual = residual.reshape(())
        if not _ops.eager(std_logits, residual):
            # The value at the call, for the backward too: a module may project its residual
            # parameter in place (ERAContinuous) before the backward of an earlier call runs.
            residual = residual.clone()
    else:
        delta = float(residual)
        if not (math.isfinite(delta) and delta >= 0):
            raise python_error(BadParameterError, where, f"residual={delta} must be finite and >= 0")
        target, residual = target + delta, None
    return _ops.apply(_ops.ContinuousERAFunction, _ops.EagerContinuous, std_logits, residual, target,
                      float(log_std_min), float(log_std_max), native)


# ---------------------------------------------------------------------------------------
# Discrete ERA


def discrete_era(
    logits: torch.Tensor,
    target_entropy: float,
    *,
    tau: float = _discrete.TAU,
    mode: str = _discrete.DEFAULT_MODE,
    backend: str = "auto",
) -> torch.Tensor:
    """Discrete ERA output logits (docs/math.md section 2), differentiable (twice).

    Args:
        logits: ``[..., D]`` float16, bfloat16, float32 or float64, D >= 2.
        target_entropy: H0 in nats.
        tau: > e. mode: "exact", "tight" or "reference".
        backend: "auto", "libera" or "native".
    Returns:
        ``[..., D]`` logits in the input dtype whose softmax has entropy >= H0 (modes exact,
        tight; for float16/bfloat16 outputs, up to the rounding of the stored logits).
    """
    where = "era.torch.discrete_era"
    require(logits, FLOATS, where, "logits")
    require_rows(logits, where, "logits", min_cols=2)
    _discrete.mode_number(mode, where)
    native = native_path(logits, backend, where)
    return _ops.apply(_ops.DiscreteERAFunction, _ops.EagerDiscrete, logits, float(target_entropy), float(tau), mode,
                      native)


# ---------------------------------------------------------------------------------------
# LLM log-probabilities


def llm_logprob(
    logits: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: Optional[torch.Tensor] = None,
    *,
    backend: str = "auto",
    top_k: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """ERA log-probabilities ``logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t)`` and the entropy
    of softmax(s_t*z_t), per token.

    Args:
        logits: ``[..., V]`` float32, bfloat16, float16 or float64; -inf masks a token. A
            strided view (``logits[:, :-1]``) is read in place.
        labels: ``[...]`` int64 or int32 sampled tokens.
        logit_scale: ``[...]`` scales s_t (llm_scales), or None for 1; a constant.
        backend: "auto", "libera" or "native".
        top_k: None (the full log-softmax), or k >= 1: the top-k log-prob of the official
            ERA-LLM actor (era.llm_logprob_forward: -1e4 with zero gradient for a label
            outside the k largest logits, the lower index winning a tie; the entropy stays
            the full-vocabulary one). k < 1: BadParameterError.
    Returns:
        (logprob ``[...]`` differentiable in `logits`, entropy ``[...]`` in nats, no grad);
        float32 (float64 for float64 logits).
    """
    where = "era.torch.llm_logprob"
    require(logits, FLOATS, where, "logits")
    require_rows(logits, where, "logits")
    labels = labels_of(labels, logits.shape[:-1], where)
    logit_scale = scale_of(logit_scale, labels, where)
    native = native_path(logits, backend, where)
    k = top_k_of(top_k, where)
    return _ops.apply(_ops.LLMLogprobFunction, _ops.EagerLLMLogprob, logits, labels, logit_scale, native, k)


def top_k_of(top_k: Optional[int], where: str) -> int:
    """The top_k of the log-prob operators: 0 for None (off), else k >= 1 (capped at the int64
    range: any k >= V is the full log-softmax); BadParameterError below 1, TypeError for a
    non-integer."""
    if top_k is None:
        return 0
    if isinstance(top_k, bool):
        raise TypeError(f"{where}: top_k must be an int or None, not bool")
    k = int(top_k.__index__())
    if k < 1:
        raise python_error(BadParameterError, where, f"top_k={k} (must be >= 1, or None for the full log-softmax)")
    return min(k, 2**63 - 1)


# ---------------------------------------------------------------------------------------
# Entropies (metrics: no gradient)


def softmax_entropy(logits: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Entropy of softmax(logits) per row, ``[..., D] -> [...]`` nats, the logits' dtype."""
    where = "era.torch.softmax_entropy"
    require(logits, FLOATS, where, "logits")
    require_rows(logits, where, "logits")
    return _ops.call(_ops.softmax_entropy, logits.detach(), native_path(logits, backend, where))


def gaussian_entropy(log_std: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Diagonal-Gaussian entropy per row, ``[..., D] -> [...]`` nats, log_std's dtype."""
    where = "era.torch.gaussian_entropy"
    require(log_std, FLOATS, where, "log_std")
    require_rows(log_std, where, "log_std")
    return _ops.call(_ops.gaussian_entropy, log_std.detach(), native_path(log_std, backend, where))


def tanh_gaussian_entropy(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of tanh(N(mean, exp(log_std)^2)) per row, ``[..., D] -> [...]`` nats, by
    libera's deterministic quadrature (tensors on other devices are copied to the CPU for it:
    this is a per-row metric, small next to the network). Like truncated_normal_entropy it is
    differentiable in mean and log_std (first derivatives; the backward runs libera on CPU
    tensors, the device path's formulas on others)."""
    where = "era.torch.tanh_gaussian_entropy"
    require(mean, FLOATS, where, "mean")
    require(log_std, FLOATS, where, "log_std")
    require_rows(log_std, where, "log_std")
    if torch.is_grad_enabled() and (mean.requires_grad or log_std.requires_grad):
        # Differentiable (first derivatives): libera's era_tanh_gaussian_entropy_backward.
        return _ops.tanh_gaussian_entropy(mean, log_std)
    return _ops.call(_ops.tanh_gaussian_entropy, mean.detach(), log_std.detach())


def truncated_normal_entropy(
    loc: torch.Tensor, log_std: torch.Tensor, lo: float = -1.0, hi: float = 1.0
) -> torch.Tensor:
    """Entropy of N(loc, exp(log_std)^2) truncated to [lo, hi] per row, ``[..., D] -> [...]``
    nats, by libera (tensors on other devices are copied to the CPU for it). Unlike the other
    entropies it is differentiable in loc and log_std (first derivatives only)."""
    where = "era.torch.truncated_normal_entropy"
    require(loc, FLOATS, where, "loc")
    require(log_std, FLOATS, where, "log_std")
    require_rows(log_std, where, "log_std")
    if torch.is_grad_enabled() and (loc.requires_grad or log_std.requires_grad):
        # Differentiable: the gradient is libera's era_truncated_normal_entropy_backward.
        return _ops.truncated_normal_entropy(loc, log_std, float(lo), float(hi))
    return _ops.call(_ops.truncated_normal_entropy, loc.detach(), log_std.detach(), float(lo), float(hi))


def token_entropy(logits: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Entropy of softmax(logits) per token with -inf masks, ``[..., V] -> [...]`` nats:
    float32 for float32/bfloat16/float16 logits, float64 for float64."""
    where = "era.torch.token_entropy"
    require(logits, FLOATS, where, "logits")
    require_rows(logits, where, "logits")
    return _ops.call(_ops.token_entropy, logits.detach(), native_path(logits, backend, where))


def continuous_era_truncated(
    std_logits: torch.Tensor,
    loc: torch.Tensor,
    target_entropy: float,
    *,
    lo: float = -1.0,
    hi: float = 1.0,
    residual: Union[float, torch.Tensor] = _continuous.RESIDUAL,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
    backend: str = "auto",
) -> torch.Tensor:
    """The sampled floor (docs/math.md, "The sampled floor"): continuous ERA log stds plus the
    smallest per-row offset c >= 0 that lifts the entropy of the normal truncated to [lo, hi]
    with location `loc` (``tanh(mean)`` in SAC-ERA) to ``target_entropy + residual``.

    Differentiable in std_logits, loc and a tensor residual (implicit function theorem). The
    output may exceed log_std_max. CPU tensors go to libera, others to the device path
    (era._formulas; ``backend="native"`` takes it on the CPU too).

    Args:
        std_logits: ``[..., D]`` float raw scale outputs; loc: same shape.
        residual: delta >= 0: a float, or a one-element tensor (its value is data; its
            gradient is the sum over rows of dL/d(H0 + delta)).
    Returns:
        ``[..., D]`` log stds, the dtype of std_logits.
    Raises:
        InfeasibleTargetError if ``target_entropy + residual >= D log(hi - lo)`` or K > 0.
    """
    where = "era.torch.continuous_era_truncated"
    require(std_logits, FLOATS, where, "std_logits")
    require(loc, FLOATS, where, "loc")
    require_rows(std_logits, where, "std_logits")
    if loc.shape != std_logits.shape:
        raise BadShapeError(f"{where}: loc shape {tuple(loc.shape)} differs from std_logits {tuple(std_logits.shape)}")
    native = native_path(std_logits, backend, where)
    target = float(target_entropy)
    if isinstance(residual, torch.Tensor):
        if residual.numel() != 1:
            raise python_error(BadShapeError, where, f"residual must hold one value, got shape {tuple(residual.shape)}")
        require(residual, FLOATS, where, "residual")
        if residual.dim():
            residual = residual.reshape(())
        tensor_residual = residual
    else:
        delta = float(residual)
        if not (math.isfinite(delta) and delta >= 0):
            raise python_error(BadParameterError, where, f"residual={delta} must be finite and >= 0")
        target, tensor_residual = target + delta, None
    return _ops.continuous_truncated_forward(std_logits, loc, tensor_residual, target, float(lo), float(hi),
                                             float(log_std_min), float(log_std_max), native)


def continuous_era_tanh(
    std_logits: torch.Tensor,
    mean: torch.Tensor,
    target_entropy: float,
    *,
    residual: Union[float, torch.Tensor] = _continuous.RESIDUAL,
    log_std_min: float = _continuous.LOG_STD_MIN,
    log_std_max: float = _continuous.LOG_STD_MAX,
    backend: str = "auto",
) -> torch.Tensor:
    """The tanh sampled floor (docs/math.md, "The sampled floor, tanh"): continuous ERA log
    stds for a per-row Gaussian target moved by the c nats nearest 0 that lift the entropy of
    a = tanh(x), x ~ N(mean, exp(log_std)^2), to ``target_entropy + residual`` (c < 0 on
    rows whose stds lie beyond the squashed entropy's peak).

    Differentiable in std_logits, mean and a tensor residual (implicit function theorem). The
    output stays within [log_std_min, log_std_max]. CPU tensors go to libera, others to the
    device path (era._formulas; ``backend="native"`` takes it on the CPU too).

    Args:
        std_logits: ``[..., D]`` float raw scale outputs; mean: same shape (pre-tanh means).
        residual: delta >= 0: a float, or a one-element tensor (its value is data; its
            gradient is the sum over rows of dL/d(H0 + delta)).
    Returns:
        ``[..., D]`` log stds, the dtype of std_logits.
    Raises:
        InfeasibleTargetError if ``target_entropy + residual >= D * 0.6836...``, K > 0, or a
        row's squashed entropy peaks below the target (large |mean|); on other devices the
        row is NaN and the error comes from era.torch.check_device_errors.
    """
    where = "era.torch.continuous_era_tanh"
    require(std_logits, FLOATS, where, "std_logits")
    require(mean, FLOATS, where, "mean")
    require_rows(std_logits, where, "std_logits")
    if mean.shape != std_logits.shape:
        raise BadShapeError(
            f"{where}: mean shape {tuple(mean.shape)} differs from std_logits {tuple(std_logits.shape)}")
    native = native_path(std_logits, backend, where)
    target = float(target_entropy)
    if isinstance(residual, torch.Tensor):
        if residual.numel() != 1:
            raise python_error(BadShapeError, where, f"residual must hold one value, got shape {tuple(residual.shape)}")
        require(residual, FLOATS, where, "residual")
        if residual.dim():
            residual = residual.reshape(())
        tensor_residual = residual
    else:
        delta = float(residual)
        if not (math.isfinite(delta) and delta >= 0):
            raise python_error(BadParameterError, where, f"residual={delta} must be finite and >= 0")
        target, tensor_residual = target + delta, None
    return _ops.continuous_tanh_forward(std_logits, mean, tensor_residual, target, float(log_std_min),
                                        float(log_std_max), native)
