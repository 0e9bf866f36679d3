"""The sampled floor (docs/math.md, "The sampled floor"): continuous ERA whose floor holds for
the entropy of the normal truncated to ``[lo, hi]`` that the policy actually samples (the
official SAC-ERA code samples location ``tanh(mean)`` on [-1, 1]), and the gradient of the
truncated-normal entropy.

    l       = continuous_forward(std_logits, ...)                       (math 1)
    c       = the smallest c >= 0 with sum_i H_TN(loc_i, l_i + c) >= target_entropy + residual
    log_std = l + c

Feasible iff ``target_entropy + residual < D * log(hi - lo)``. The offset is not clipped at
log_std_max: the returned log stds may exceed it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import _era
from ._arrays import like, rows_of
from ._errors import check
from .check import BoundReport, _report, default_tolerance
from .continuous import LOG_STD_MAX, LOG_STD_MIN, RESIDUAL

__all__ = [
    "truncated_normal_entropy_backward",
    "TruncatedNormalEntropyGrads",
    "continuous_truncated_forward",
    "continuous_truncated_backward",
    "ContinuousTruncatedGrads",
    "check_continuous_truncated",
]


class TruncatedNormalEntropyGrads(NamedTuple):
    """Gradients of truncated_normal_entropy: ``loc`` and ``log_std``, both ``[..., D]``."""

    loc: np.ndarray
    log_std: np.ndarray


def truncated_normal_entropy_backward(
    loc: ArrayLike, log_std: ArrayLike, grad_entropy: ArrayLike, lo: float = -1.0, hi: float = 1.0
) -> TruncatedNormalEntropyGrads:
    """Vector-Jacobian product of era.truncated_normal_entropy: ``grad_entropy[r] * dH/dloc``
    and ``grad_entropy[r] * dH/dlog_std`` per dimension, in double precision.

    Args:
        loc, log_std: ``[..., D]`` float32/float64, as for truncated_normal_entropy.
        grad_entropy: ``[...]`` dL/d(entropy) per row, same dtype.
        lo, hi: the interval, finite, lo < hi.
    Returns:
        TruncatedNormalEntropyGrads(loc, log_std).
    Raises:
        BadParameterError for a bad interval or a gradient the dtype cannot hold (dH/dloc grows
        like exp(-log_std) for a location on a bound); NonFiniteError; BadShapeError.
    """
    where = "era.truncated_normal_entropy_backward"
    s = rows_of(log_std, where, "log_std")
    m = like(s, loc, where, "loc", "log_std")
    g = np.ascontiguousarray(np.asarray(grad_entropy, dtype=s.dtype).reshape(s.rows))
    out_loc = np.empty_like(s.array)
    out_log_std = np.empty_like(s.array)
    status = _era.truncated_normal_entropy_backward(s.rows, s.cols, m, s.array, float(lo), float(hi), g, out_loc,
                                                    out_log_std)
    check(status, where, f"shape {s.array.shape}, lo={lo}, hi={hi}")
    return TruncatedNormalEntropyGrads(out_loc, out_log_std)


def _params(target_entropy, residual, log_std_min, log_std_max):
    """The continuous parameters as the floats the bindings take, in their order."""
    return float(target_entropy), float(residual), float(log_std_min), float(log_std_max)


def _inputs(std_logits: ArrayLike, loc: ArrayLike, where: str):
    """std_logits as rows (era._arrays.rows_of) and loc as an array like it."""
    x = rows_of(std_logits, where, "std_logits")
    return x, like(x, loc, where, "loc", "std_logits")


def _context(shape, target_entropy, residual, log_std_min, log_std_max, lo, hi) -> str:
    return (
        f"std_logits shape {shape}, target_entropy={target_entropy}, residual={residual}, "
        f"log_std_min={log_std_min}, log_std_max={log_std_max}, lo={lo}, hi={hi}"
    )


def continuous_truncated_forward(
    std_logits: ArrayLike,
    loc: ArrayLike,
    target_entropy: float,
    *,
    lo: float = -1.0,
    hi: float = 1.0,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    return_offset: bool = False,
):
    """The sampled-floor log standard deviations.

    Args:
        std_logits: ``[..., D]`` float32/float64 raw scale outputs.
        loc: ``[..., D]`` the locations of the truncated normal (``tanh(mean)`` in SAC-ERA).
        target_entropy: H0 in nats; with `residual`, the truncated-normal entropy every row
            reaches is ``target_entropy + residual``.
        lo, hi: the sampling interval.
        log_std_min, log_std_max: as for continuous_forward (the Gaussian part).
        return_offset: also return the per-row offset c ``[...]``.
    Returns:
        ``[..., D]`` log stds (the dtype of `std_logits`; float32 rounded up), and the offsets
        if asked for.
    Raises:
        InfeasibleTargetError if ``target_entropy + residual >= D log(hi - lo)`` or K > 0;
        BadParameterError; NonFiniteError; BadShapeError.
    """
    where = "era.continuous_truncated_forward"
    x, m = _inputs(std_logits, loc, where)
    out = np.empty_like(x.array)
    offset = np.empty(x.rows, x.dtype) if return_offset else None
    status = _era.continuous_truncated_forward(
        *_params(target_entropy, residual, log_std_min, log_std_max), x.rows, x.cols, x.array, m, float(lo), float(hi),
        out, offset,
    )
    check(status, where, lambda: _context(x.array.shape, target_entropy, residual, log_std_min, log_std_max, lo, hi))
    return (out, offset.reshape(x.batch_shape)) if return_offset else out


class ContinuousTruncatedGrads(NamedTuple):
    """Gradients of the sampled floor: ``std_logits`` and ``loc`` ``[..., D]``, ``residual``
    ``[...]`` (dL/d(residual) of each row, also dL/d(target_entropy)) or None."""

    std_logits: np.ndarray
    loc: np.ndarray
    residual: Optional[np.ndarray]


def continuous_truncated_backward(
    std_logits: ArrayLike,
    loc: ArrayLike,
    grad_log_std: ArrayLike,
    target_entropy: float,
    *,
    lo: float = -1.0,
    hi: float = 1.0,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    residual_grad: bool = True,
) -> ContinuousTruncatedGrads:
    """Vector-Jacobian product of continuous_truncated_forward (implicit function theorem:
    on a row with c > 0, ``dL/dl_i = g_i - G H_L,i / S``, ``dL/dloc_i = -G H_m,i / S``, G the
    row sum of g, S = sum_i H_L,i; rows with c = 0 pass the Gaussian gradient unchanged).

    Returns:
        ContinuousTruncatedGrads(std_logits, loc, residual or None).
    """
    where = "era.continuous_truncated_backward"
    x, m = _inputs(std_logits, loc, where)
    g = like(x, grad_log_std, where, "grad_log_std", "std_logits")
    out = np.empty_like(x.array)
    out_loc = np.empty_like(x.array)
    out_residual = np.empty(x.rows, x.dtype) if residual_grad else None
    status = _era.continuous_truncated_backward(
        *_params(target_entropy, residual, log_std_min, log_std_max), x.rows, x.cols, x.array, m, float(lo), float(hi),
        g, out, out_loc, out_residual,
    )
    check(status, where, lambda: _context(x.array.shape, target_entropy, residual, log_std_min, log_std_max, lo, hi))
    return ContinuousTruncatedGrads(out, out_loc, None if out_residual is None else out_residual.reshape(x.batch_shape))


def check_continuous_truncated(
    loc: ArrayLike,
    log_std: ArrayLike,
    target_entropy: float,
    *,
    lo: float = -1.0,
    hi: float = 1.0,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    tol: Optional[float] = None,
) -> BoundReport:
    """The truncated-normal entropy of each row of log stds (location `loc` on [lo, hi])
    against ``target_entropy + residual``, the sampled floor's guarantee (report.floor).
    Works on any log stds, e.g. to see how far the Gaussian ERA output falls short.

    Args:
        tol: tolerance in nats (None: 1e-5 for float32, 1e-10 for float64).
    """
    where = "era.check_continuous_truncated"
    x = rows_of(log_std, where, "log_std")
    m = like(x, loc, where, "loc", "log_std")
    tol = default_tolerance(x.dtype) if tol is None else float(tol)
    status, values = _era.check_continuous_truncated(
        *_params(target_entropy, residual, log_std_min, log_std_max), x.rows, x.cols, m, x.array, float(lo), float(hi),
        tol,
    )
    check(status, where, f"log_std shape {x.array.shape}, target_entropy={target_entropy}, lo={lo}, hi={hi}")
    return _report(values, tol, x.batch_shape)


# ---------------------------------------------------------------------------------------
# The tanh sampled floor (docs/math.md, "The sampled floor, tanh"): the floor on the entropy
# of a = tanh(x), x ~ N(mean, exp(log_std)^2), the squashed policy SAC samples, reached by
# moving each row's Gaussian target by c nats:
#
#     l(c)_i  = max(log_std_max + (K + c) softmax(std_logits)_i, log_std_min)   (K + c <= 0)
#     f(c)    = sum_i H_tanh(mean_i, l(c)_i) - (target_entropy + residual)
#     c       = 0 if f(0) >= 0, else the root of f nearest 0 on the side where f rises
#               (c < 0 for rows whose stds lie beyond the squashed entropy's peak)
#     log_std = l(c), within [log_std_min, log_std_max]
#
# Feasible only below D * 0.6836 nats (the squashed entropy's largest value, at mean 0), and
# per row only below the row's peak, which falls fast with |mean|: such rows raise
# InfeasibleTargetError.

__all__ += [
    "tanh_gaussian_entropy_backward",
    "TanhGaussianEntropyGrads",
    "continuous_tanh_forward",
    "continuous_tanh_backward",
    "ContinuousTanhGrads",
    "check_continuous_tanh",
]


class TanhGaussianEntropyGrads(NamedTuple):
    """Gradients of tanh_gaussian_entropy: ``mean`` and ``log_std``, both ``[..., D]``."""

    mean: np.ndarray
    log_std: np.ndarray


def tanh_gaussian_entropy_backward(mean: ArrayLike, log_std: ArrayLike,
                                   grad_entropy: ArrayLike) -> TanhGaussianEntropyGrads:
    """Vector-Jacobian product of era.tanh_gaussian_entropy: ``grad_entropy[r] * dH/dmean``
    (``dH/dmean = -2 E tanh x``) and ``grad_entropy[r] * dH/dlog_std``
    (``1 - 2 std^2 E sech^2 x``) per dimension, computed in double precision.

    Args:
        mean, log_std: ``[..., D]`` float32/float64, as for tanh_gaussian_entropy.
        grad_entropy: ``[...]`` dL/d(entropy) per row, same dtype.
    Returns:
        TanhGaussianEntropyGrads(mean, log_std).
    Raises:
        BadParameterError for a gradient the dtype cannot hold (dH/dlog_std grows like the
        std); NonFiniteError; BadShapeError.
    """
    where = "era.tanh_gaussian_entropy_backward"
    s = rows_of(log_std, where, "log_std")
    m = like(s, mean, where, "mean", "log_std")
    g = np.ascontiguousarray(np.asarray(grad_entropy, dtype=s.dtype).reshape(s.rows))
    out_mean = np.empty_like(s.array)
    out_log_std = np.empty_like(s.array)
    status = _era.tanh_gaussian_entropy_backward(s.rows, s.cols, m, s.array, g, out_mean, out_log_std)
    check(status, where, f"shape {s.array.shape}")
    return TanhGaussianEntropyGrads(out_mean, out_log_std)


def _tanh_context(shape, target_entropy, residual, log_std_min, log_std_max) -> str:
    return (
        f"std_logits shape {shape}, target_entropy={target_entropy}, residual={residual}, "
        f"log_std_min={log_std_min}, log_std_max={log_std_max}"
    )


def continuous_tanh_forward(
    std_logits: ArrayLike,
    mean: ArrayLike,
    target_entropy: float,
    *,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    return_offset: bool = False,
):
    """The tanh sampled-floor log standard deviations.

    Args:
        std_logits: ``[..., D]`` float32/float64 raw scale outputs.
        mean: ``[..., D]`` the pre-tanh Gaussian means.
        target_entropy: H0 in nats; with `residual`, the squashed entropy every row reaches
            is ``target_entropy + residual``.
        log_std_min, log_std_max: as for continuous_forward (the Gaussian part).
        return_offset: also return the per-row offset c ``[...]``, in nats of Gaussian target
            (negative where the stds lie beyond the squashed entropy's peak).
    Returns:
        ``[..., D]`` log stds within [log_std_min, log_std_max] (the dtype of `std_logits`;
        float32 rounded up, the floor holding for the stored values), and the offsets if asked
        for.
    Raises:
        InfeasibleTargetError if ``target_entropy + residual >= D * 0.6836...``, K > 0, or a
        row's squashed entropy peaks below the target (nothing is written);
        BadParameterError; NonFiniteError; BadShapeError.
    """
    where = "era.continuous_tanh_forward"
    x = rows_of(std_logits, where, "std_logits")
    m = like(x, mean, where, "mean", "std_logits")
    out = np.empty_like(x.array)
    offset = np.empty(x.rows, x.dtype) if return_offset else None
    status = _era.continuous_tanh_forward(
        *_params(target_entropy, residual, log_std_min, log_std_max), x.rows, x.cols, x.array, m, out, offset,
    )
    check(status, where, lambda: _tanh_context(x.array.shape, target_entropy, residual, log_std_min, log_std_max))
    return (out, offset.reshape(x.batch_shape)) if return_offset else out


class ContinuousTanhGrads(NamedTuple):
    """Gradients of the tanh sampled floor: ``std_logits`` and ``mean`` ``[..., D]``,
    ``residual`` ``[...]`` (dL/d(residual) of each row, also dL/d(target_entropy)) or None."""

    std_logits: np.ndarray
    mean: np.ndarray
    residual: Optional[np.ndarray]


def continuous_tanh_backward(
    std_logits: ArrayLike,
    mean: ArrayLike,
    grad_log_std: ArrayLike,
    target_entropy: float,
    *,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    residual_grad: bool = True,
) -> ContinuousTanhGrads:
    """Vector-Jacobian product of continuous_tanh_forward (implicit function theorem: on a
    row with c != 0, with w = softmax(std_logits) and G', S the sums of g_i w_i and
    H_L,i w_i over the entries above log_std_min, ``dL/dmean_i = -(G'/S) H_m,i``,
    ``dL/d(residual) = G'/S`` and dL/d std_logits the continuous backward pass at the row's
    scale K + c of ``g_i - (G'/S) H_L,i``; rows with c = 0 are the continuous backward pass).

    Returns:
        ContinuousTanhGrads(std_logits, mean, residual or None).
    """
    where = "era.continuous_tanh_backward"
    x = rows_of(std_logits, where, "std_logits")
    m = like(x, mean, where, "mean", "std_logits")
    g = like(x, grad_log_std, where, "grad_log_std", "std_logits")
    out = np.empty_like(x.array)
    out_mean = np.empty_like(x.array)
    out_residual = np.empty(x.rows, x.dtype) if residual_grad else None
    status = _era.continuous_tanh_backward(
        *_params(target_entropy, residual, log_std_min, log_std_max), x.rows, x.cols, x.array, m, g, out, out_mean,
        out_residual,
    )
    check(status, where, lambda: _tanh_context(x.array.shape, target_entropy, residual, log_std_min, log_std_max))
    return ContinuousTanhGrads(out, out_mean, None if out_residual is None else out_residual.reshape(x.batch_shape))


def check_continuous_tanh(
    mean: ArrayLike,
    log_std: ArrayLike,
    target_entropy: float,
    *,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    tol: Optional[float] = None,
) -> BoundReport:
    """The squashed entropy of each row of log stds (pre-tanh means `mean`) against
    ``target_entropy + residual``, the tanh sampled floor's guarantee (report.floor).

    Args:
        tol: tolerance in nats (None: 1e-5 for float32, 1e-10 for float64).
    """
    where = "era.check_continuous_tanh"
    x = rows_of(log_std, where, "log_std")
    m = like(x, mean, where, "mean", "log_std")
    tol = default_tolerance(x.dtype) if tol is None else float(tol)
    status, values = _era.check_continuous_tanh(
        *_params(target_entropy, residual, log_std_min, log_std_max), x.rows, x.cols, m, x.array, tol,
    )
    check(status, where, f"log_std shape {x.array.shape}, target_entropy={target_entropy}")
    return _report(values, tol, x.batch_shape)
