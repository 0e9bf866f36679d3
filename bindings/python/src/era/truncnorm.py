"""The truncated normal as a policy distribution (docs/math.md, "Truncated-normal policy").

The normal with location ``loc`` and scale ``exp(log_std)`` truncated to ``[lo, hi]`` (the
official SAC-ERA policy: ``loc = tanh(mean)`` on [-1, 1]), element-wise: every array has the
shape of ``loc`` (any shape, float32 or float64; all inputs the same shape and dtype). With
``alpha = (lo-loc)/sg``, ``beta = (hi-loc)/sg``, ``Z = Phi(beta) - Phi(alpha)``::

    sample    x = loc + sg * Phi^-1(Phi(alpha) + u*Z)      u ~ U(0, 1), supplied by the caller
    log p(x)  = -((x-loc)/sg)^2/2 - log(sqrt(2*pi) * sg * Z)

computed in double precision with tail-stable normal probabilities (also for intervals far
in a tail of the normal). Errors: NonFiniteError for a non-finite input; BadParameterError
unless lo < hi, both finite, for a uniform outside (0, 1), a sample outside [lo, hi] in the
sample backward, an element whose scale or standardised bounds overflow, or a result beyond
the dtype; BadShapeError / DTypeError for mismatched arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import _era
from ._arrays import FLOAT_DTYPES, as_numpy, c_array
from ._errors import BadShapeError, DTypeError, check, python_error

__all__ = [
    "truncated_normal_sample",
    "truncated_normal_sample_backward",
    "truncated_normal_log_prob",
    "truncated_normal_log_prob_backward",
    "TruncatedNormalSampleGrads",
    "TruncatedNormalLogProbGrads",
]


def _elements(loc: ArrayLike, log_std: ArrayLike, others, where: str):
    """The shape of `loc`, its element count, and loc, log_std and the other (name, value)
    inputs as flat C-ordered arrays, all of loc's shape and float dtype."""
    first = as_numpy(loc, where, "loc")
    if first.dtype not in FLOAT_DTYPES:
        raise python_error(DTypeError, where, f"loc has dtype {first.dtype}; this kernel takes float32 or float64")
    arrays = [c_array(first).reshape(-1)]
    for name, value in [("log_std", log_std)] + list(others):
        array = as_numpy(value, where, name)
        if array.dtype != first.dtype:
            raise python_error(DTypeError, where, f"{name} has dtype {array.dtype}, loc has {first.dtype}")
        if array.shape != first.shape:
            raise python_error(BadShapeError, where, f"{name} has shape {array.shape}, loc has {first.shape}")
        arrays.append(c_array(array).reshape(-1))
    return first.shape, first.size, arrays


def _context(shape, lo, hi) -> str:
    return f"shape {shape}, lo={lo}, hi={hi}"


def _run(kernel, where: str, loc: ArrayLike, log_std: ArrayLike, others, lo: float, hi: float, outputs: int):
    """Runs the element-wise libera `kernel` on loc, log_std and the other (name, value)
    inputs into `outputs` fresh arrays of loc's dtype, and returns those in loc's shape."""
    shape, n, (m, s, *rest) = _elements(loc, log_std, others, where)
    outs = [np.empty(n, m.dtype) for _ in range(outputs)]
    check(kernel(n, 1, m, s, float(lo), float(hi), *rest, *outs), where, lambda: _context(shape, lo, hi))
    return [out.reshape(shape) for out in outs]


def truncated_normal_sample(loc: ArrayLike, log_std: ArrayLike, uniform: ArrayLike, lo: float = -1.0,
                            hi: float = 1.0) -> np.ndarray:
    """Samples by inversion of the truncated CDF at the caller's uniforms: deterministic.

    Args:
        loc, log_std: locations and log scales, any shape, float32/float64.
        uniform: same shape and dtype, every value in the open interval (0, 1).
        lo, hi: the interval, finite, lo < hi.
    Returns:
        Samples of that shape and dtype, every one inside [lo, hi].
    """
    (out,) = _run(_era.truncated_normal_sample, "era.truncated_normal_sample", loc, log_std, [("uniform", uniform)],
                  lo, hi, 1)
    return out


class TruncatedNormalSampleGrads(NamedTuple):
    """Gradients of the reparameterised sample: ``loc`` and ``log_std``, each of the input shape."""

    loc: np.ndarray
    log_std: np.ndarray


def truncated_normal_sample_backward(loc: ArrayLike, log_std: ArrayLike, sample: ArrayLike, grad_sample: ArrayLike,
                                     lo: float = -1.0, hi: float = 1.0) -> TruncatedNormalSampleGrads:
    """Vector-Jacobian product of truncated_normal_sample, at the sample itself (implicit
    differentiation of F(x; loc, sg) = u, math 6.2)::

        dx/dloc     = 1  - [phi(alpha)(1-F) + phi(beta)F] / phi(xi)
        dx/dlog_std = sg * (xi - [alpha phi(alpha)(1-F) + beta phi(beta)F] / phi(xi))

    Args:
        loc, log_std: the forward inputs.
        sample: the forward output (inside [lo, hi]).
        grad_sample: dL/d(sample), same shape and dtype.
    Returns:
        TruncatedNormalSampleGrads(loc, log_std).
    """
    others = [("sample", sample), ("grad_sample", grad_sample)]
    return TruncatedNormalSampleGrads(*_run(_era.truncated_normal_sample_backward,
                                            "era.truncated_normal_sample_backward", loc, log_std, others, lo, hi, 2))


def truncated_normal_log_prob(loc: ArrayLike, log_std: ArrayLike, x: ArrayLike, lo: float = -1.0,
                              hi: float = 1.0) -> np.ndarray:
    """log p(x) per element (not summed): -inf for x outside [lo, hi].

    Args:
        loc, log_std: locations and log scales.
        x: the values, same shape and dtype.
    Returns:
        Log-densities of that shape and dtype.
    """
    (out,) = _run(_era.truncated_normal_log_prob, "era.truncated_normal_log_prob", loc, log_std, [("x", x)], lo, hi, 1)
    return out


class TruncatedNormalLogProbGrads(NamedTuple):
    """Gradients of the log-density: ``x``, ``loc`` and ``log_std``, each of the input shape."""

    x: np.ndarray
    loc: np.ndarray
    log_std: np.ndarray


def truncated_normal_log_prob_backward(loc: ArrayLike, log_std: ArrayLike, x: ArrayLike, grad_log_prob: ArrayLike,
                                       lo: float = -1.0, hi: float = 1.0) -> TruncatedNormalLogProbGrads:
    """Vector-Jacobian product of truncated_normal_log_prob (g = grad_log_prob)::

        grad_x       = g * -xi/sg
        grad_loc     = g * (xi - [phi(alpha) - phi(beta)]/Z) / sg
        grad_log_std = g * (xi^2 - 1 - [alpha phi(alpha) - beta phi(beta)]/Z)

    all 0 where x lies outside [lo, hi].
    """
    others = [("x", x), ("grad_log_prob", grad_log_prob)]
    return TruncatedNormalLogProbGrads(*_run(_era.truncated_normal_log_prob_backward,
                                             "era.truncated_normal_log_prob_backward", loc, log_std, others, lo, hi, 3))
