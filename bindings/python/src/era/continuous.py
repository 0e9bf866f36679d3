"""Continuous ERA: bounded Gaussian policies (docs/math.md section 1).

    K        = target_entropy + residual - D*0.5*log(2*pi*e) - D*log_std_max   (<= 0)
    log_std  = max(log_std_max + K * softmax(std_logits), log_std_min)

Guarantee: the Gaussian entropy of every output row, ``sum(log_std) + D*0.5*log(2*pi*e)``,
is at least ``target_entropy + residual`` nats, and every std lies in
``[exp(log_std_min), exp(log_std_max)]``. The mean of the policy passes through unchanged.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import _era
from ._arrays import like, rows_of
from ._errors import check

__all__ = ["continuous_forward", "continuous_backward", "ContinuousGrads"]

# The library's defaults, read from libera (era_continuous_params_init), the one place they
# are set; every default of this package's signatures refers to these.
_DEFAULTS = _era.continuous_defaults()
LOG_STD_MIN = float(_DEFAULTS["log_std_min"])
LOG_STD_MAX = float(_DEFAULTS["log_std_max"])
RESIDUAL = float(_DEFAULTS["residual"])


def _context(shape, target_entropy, residual, log_std_min, log_std_max) -> str:
    return (
        f"std_logits shape {shape}, target_entropy={target_entropy}, residual={residual}, "
        f"log_std_min={log_std_min}, log_std_max={log_std_max}"
    )


def continuous_forward(
    std_logits: ArrayLike,
    target_entropy: float,
    *,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
) -> np.ndarray:
    """The ERA log standard deviations for raw scale outputs.

    Args:
        std_logits: ``[..., D]`` float32/float64 raw scale outputs of the policy network.
        target_entropy: H0 in nats (the official SAC-ERA default is ``-0.5 * D``).
        residual: delta >= 0 added to the target to compensate squashing (nats).
        log_std_min, log_std_max: the clip range of the log std, min < max.
    Returns:
        ``[..., D]`` log standard deviations, the dtype of `std_logits`. float32 values are
        rounded upwards, so the floor holds for the stored values.
    Raises:
        InfeasibleTargetError if ``K > 0``; BadParameterError for non-finite parameters,
        ``residual < 0`` or ``log_std_min >= log_std_max``; NonFiniteError; BadShapeError.
    """
    where = "era.continuous_forward"
    x = rows_of(std_logits, where, "std_logits")
    out = np.empty_like(x.array)
    status = _era.continuous_forward(
        float(target_entropy), float(residual), float(log_std_min), float(log_std_max), x.rows, x.cols, x.array, out
    )
    check(status, where, lambda: _context(x.array.shape, target_entropy, residual, log_std_min, log_std_max))
    return out


class ContinuousGrads(NamedTuple):
    """Gradients of continuous ERA: ``std_logits`` ``[..., D]``, and ``residual`` ``[...]``,
    one value per row (dL/d(residual) of that row, also dL/d(target_entropy)); None when
    not asked for."""

    std_logits: np.ndarray
    residual: Optional[np.ndarray]


def continuous_backward(
    std_logits: ArrayLike,
    grad_log_std: ArrayLike,
    target_entropy: float,
    *,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    residual_grad: bool = True,
) -> ContinuousGrads:
    """Vector-Jacobian product of continuous_forward at `std_logits`.

    With ``w = softmax(std_logits)``, ``m_i = 1`` where the forward value was not clipped
    at log_std_min and ``gt = grad_log_std * m``::

        grad_std_logits[j] = K * w_j * (gt_j - sum_i gt_i*w_i)
        grad_residual      = sum_i gt_i*w_i

    Args:
        std_logits: ``[..., D]`` the forward input.
        grad_log_std: ``[..., D]`` dL/d(log_std), same dtype.
        residual_grad: also return the per-row residual gradient.
    Returns:
        ContinuousGrads(std_logits ``[..., D]``, residual ``[...]`` or None).
    """
    where = "era.continuous_backward"
    x = rows_of(std_logits, where, "std_logits")
    g = like(x, grad_log_std, where, "grad_log_std", "std_logits")
    out = np.empty_like(x.array)
    out_residual = np.empty(x.rows, x.dtype) if residual_grad else None
    status = _era.continuous_backward(
        float(target_entropy),
        float(residual),
        float(log_std_min),
        float(log_std_max),
        x.rows,
        x.cols,
        x.array,
        g,
        out,
        out_residual,
    )
    check(status, where, lambda: _context(x.array.shape, target_entropy, residual, log_std_min, log_std_max))
    return ContinuousGrads(out, None if out_residual is None else out_residual.reshape(x.batch_shape))
