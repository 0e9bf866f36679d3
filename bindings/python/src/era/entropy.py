"""Entropies of the distributions ERA works with (docs/math.md sections 1 and 4), in nats.

Each function reads rows ``[..., D]`` (float32 or float64; the result has the input's
dtype) and returns one entropy per row, shape ``[...]`` (a 0-d array for a single row).
Non-finite inputs raise NonFiniteError; an empty last axis raises BadShapeError.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _era
from ._arrays import like, rows_of
from ._errors import check

__all__ = ["softmax_entropy", "gaussian_entropy", "tanh_gaussian_entropy", "truncated_normal_entropy"]


def softmax_entropy(logits: ArrayLike) -> np.ndarray:
    """Entropy of softmax(logits) per row: ``logsumexp(z) - sum(p*z)``, computed stably in
    double: float64 within 4e-15 + 1.2e-16 g (+ 4e-19 D) relative, g the distance in nats from
    the row maximum to the logits that carry the rest of the probability (near one-hot rows
    included); float32 the double value rounded (docs/math.md 5).

    Args:
        logits: ``[..., D]`` float32/float64, D >= 1, all finite.
    Returns:
        ``[...]`` entropies in nats, the dtype of `logits`.
    """
    where = "era.softmax_entropy"
    x = rows_of(logits, where, "logits")
    out = np.empty(x.rows, x.dtype)
    check(_era.softmax_entropy(x.rows, x.cols, x.array, out), where, f"logits shape {x.array.shape}")
    return out.reshape(x.batch_shape)


def gaussian_entropy(log_std: ArrayLike) -> np.ndarray:
    """Entropy of the diagonal Gaussian with these log standard deviations (independent of
    the mean): ``sum_i log_std_i + D * 0.5*log(2*pi*e)``.

    Args:
        log_std: ``[..., D]`` float32/float64 log standard deviations.
    Returns:
        ``[...]`` entropies in nats.
    """
    where = "era.gaussian_entropy"
    x = rows_of(log_std, where, "log_std")
    out = np.empty(x.rows, x.dtype)
    check(_era.gaussian_entropy(x.rows, x.cols, x.array, out), where, f"log_std shape {x.array.shape}")
    return out.reshape(x.batch_shape)


def tanh_gaussian_entropy(mean: ArrayLike, log_std: ArrayLike) -> np.ndarray:
    """Entropy of ``a = tanh(x)``, ``x ~ N(mean, diag(exp(log_std)^2))`` (math 1,
    "Squashing"), computed deterministically in double precision (Gauss-Hermite quadrature for
    std <= 0.5, a closed form plus Gauss-Legendre panels above; about 1e-14 absolute per
    dimension). It tends to -inf as the std grows.

    Args:
        mean: ``[..., D]`` float32/float64 means of the pre-squash Gaussian.
        log_std: same shape and dtype, its log standard deviations.
    Returns:
        ``[...]`` entropies in nats.
    """
    where = "era.tanh_gaussian_entropy"
    s = rows_of(log_std, where, "log_std")
    m = like(s, mean, where, "mean", "log_std")
    out = np.empty(s.rows, s.dtype)
    check(_era.tanh_gaussian_entropy(s.rows, s.cols, m, s.array, out), where, f"shape {s.array.shape}")
    return out.reshape(s.batch_shape)


def truncated_normal_entropy(loc: ArrayLike, log_std: ArrayLike, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """Entropy of the normal with location `loc` and scale ``exp(log_std)`` truncated to
    ``[lo, hi]``, summed over the D independent dimensions of each row (math 1, "Truncated
    normal"; the official SAC-ERA code samples it with ``loc = tanh(mean)`` on [-1, 1]).

    Args:
        loc: ``[..., D]`` float32/float64 locations.
        log_std: same shape and dtype, log scales.
        lo, hi: the interval, finite, lo < hi (else BadParameterError).
    Returns:
        ``[...]`` entropies in nats.
    """
    where = "era.truncated_normal_entropy"
    s = rows_of(log_std, where, "log_std")
    m = like(s, loc, where, "loc", "log_std")
    out = np.empty(s.rows, s.dtype)
    status = _era.truncated_normal_entropy(s.rows, s.cols, m, s.array, float(lo), float(hi), out)
    check(status, where, f"shape {s.array.shape}, lo={lo}, hi={hi}")
    return out.reshape(s.batch_shape)
