"""Discrete ERA: softmax policies and classifiers (docs/math.md section 2).

    up = log(tau)/tau,  a = (D*up - C)/(D - 1),  b = (C - up)/(D - 1)
    y_i = max(a*softmax(z)_i + b, 0),  out_i = log h^-1(y_i),  h(p) = -p log p on (0, 1/e]

Guarantee (modes "exact" and "tight"): the entropy of softmax(out) is at least
target_entropy nats for every row. Modes:

- ``"exact"`` (default): C = exp(H0 - 1); feasible for 1 + log(up) <= H0 <= 1 + log(D*up).
  The actual infimum (inputs tending to one-hot) is above H0: see discrete_infimum.
- ``"tight"``: C solved so that the one-hot infimum is H0; feasible for 0 < H0 < log(D).
  Rows near one-hot come that close to H0, and float64 rounding can put one up to
  4.4e-16 * (1 + H0) nats below it (float32: see era.h): check them with a tolerance
  (check_discrete's default).
- ``"reference"``: the official code's approximate inverse, to reproduce published runs;
  nothing is guaranteed (discrete_floor gives NaN).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _era
from ._arrays import like, rows_of
from ._errors import BadParameterError, check, python_error

__all__ = [
    "MODES",
    "discrete_forward",
    "discrete_backward",
    "discrete_floor",
    "discrete_infimum",
    "discrete_constant",
]

MODES = {"exact": _era.DISCRETE_EXACT, "tight": _era.DISCRETE_TIGHT, "reference": _era.DISCRETE_REFERENCE}
# The library's defaults, read from libera (era_discrete_params_init), the one place they are
# set: tau, and the mode by its name.
_DEFAULTS = _era.discrete_defaults()
TAU = float(_DEFAULTS["tau"])
DEFAULT_MODE = next(name for name, number in MODES.items() if number == _DEFAULTS["mode"])


def mode_number(mode: str, where: str) -> int:
    """The era_discrete_mode of a mode name ("exact", "tight", "reference")."""
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        raise python_error(BadParameterError, where, f"mode {mode!r} is not one of {sorted(MODES)}") from None


def _context(target_entropy, tau, mode, extra="") -> str:
    text = f"target_entropy={target_entropy}, tau={tau}, mode={mode!r}"
    return f"{extra}, {text}" if extra else text


def _scalar(fn, name: str, classes: int, target_entropy: float, tau: float, mode: str) -> float:
    where = f"era.{name}"
    status, value = fn(float(target_entropy), float(tau), mode_number(mode, where), int(classes))
    check(status, where, lambda: _context(target_entropy, tau, mode, f"classes={classes}"))
    return value


def discrete_floor(classes: int, target_entropy: float, *, tau: float = TAU, mode: str = DEFAULT_MODE) -> float:
    """The entropy floor (nats) these parameters guarantee for rows of `classes` logits:
    target_entropy for "exact" and "tight", NaN for "reference" (nothing guaranteed)."""
    return _scalar(_era.discrete_floor, "discrete_floor", classes, target_entropy, tau, mode)


def discrete_infimum(classes: int, target_entropy: float, *, tau: float = TAU, mode: str = DEFAULT_MODE) -> float:
    """The infimum of the output entropy over all inputs (nats), reached as the input tends
    to one-hot: above target_entropy in "exact" mode, equal to it in "tight" mode."""
    return _scalar(_era.discrete_infimum, "discrete_infimum", classes, target_entropy, tau, mode)


def discrete_constant(classes: int, target_entropy: float, *, tau: float = TAU, mode: str = DEFAULT_MODE) -> float:
    """The constant C of the mode: exp(H0 - 1), or the solved value in "tight" mode."""
    return _scalar(_era.discrete_constant, "discrete_constant", classes, target_entropy, tau, mode)


def discrete_forward(logits: ArrayLike, target_entropy: float, *, tau: float = TAU, mode: str = DEFAULT_MODE) -> np.ndarray:
    """The ERA output logits for input logits.

    Args:
        logits: ``[..., D]`` float32/float64 logits, D >= 2, all finite.
        target_entropy: H0 in nats.
        tau: > e; the top class gets at most 1/tau before normalisation.
        mode: "exact", "tight" or "reference".
    Returns:
        ``[..., D]`` finite output logits (each <= -log(tau)), the dtype of `logits`; use
        them as ordinary logits (softmax, cross-entropy, sampling).
    Raises:
        InfeasibleTargetError for a target out of the mode's range; BadParameterError
        (tau <= e, non-finite target, unknown mode); BadShapeError (D < 2); NonFiniteError.
    """
    where = "era.discrete_forward"
    x = rows_of(logits, where, "logits")
    out = np.empty_like(x.array)
    status = _era.discrete_forward(
        float(target_entropy), float(tau), mode_number(mode, where), x.rows, x.cols, x.array, out
    )
    check(status, where, lambda: _context(target_entropy, tau, mode, f"logits shape {x.array.shape}"))
    return out


def discrete_backward(
    logits: ArrayLike, grad_out: ArrayLike, target_entropy: float, *, tau: float = TAU, mode: str = DEFAULT_MODE
) -> np.ndarray:
    """Vector-Jacobian product of discrete_forward at the input `logits`.

    With p = softmax(z), t the forward output and dt/dy its derivative (0 where y was
    clamped): ``r_i = grad_out_i * dt/dy_i * a`` and ``grad_j = p_j * (r_j - sum_i r_i*p_i)``.

    Args:
        logits: ``[..., D]`` the forward input.
        grad_out: ``[..., D]`` dL/d(output logits), same dtype.
    Returns:
        ``[..., D]`` dL/d(logits).
    """
    where = "era.discrete_backward"
    x = rows_of(logits, where, "logits")
    g = like(x, grad_out, where, "grad_out", "logits")
    out = np.empty_like(x.array)
    status = _era.discrete_backward(
        float(target_entropy), float(tau), mode_number(mode, where), x.rows, x.cols, x.array, g, out
    )
    check(status, where, lambda: _context(target_entropy, tau, mode, f"logits shape {x.array.shape}"))
    return out
