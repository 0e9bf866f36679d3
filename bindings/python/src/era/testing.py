"""Entropy-bound assertions for users' test suites (pytest or any other runner).

    import era.testing
    era.testing.assert_entropy_bound(out_logits, kind="discrete", target_entropy=1.0)

On a violation the AssertionError names the violating rows (their batch indices and
entropies, the first few), the worst deficit and the parameters, so a CI log says which
samples broke the floor without a debugger.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
from numpy.typing import ArrayLike

from ._arrays import as_numpy
from .check import BoundReport, check_continuous, check_discrete
from .continuous import LOG_STD_MAX, LOG_STD_MIN, RESIDUAL
from .discrete import DEFAULT_MODE, TAU
from .entropy import gaussian_entropy, softmax_entropy, tanh_gaussian_entropy

__all__ = ["assert_entropy_bound", "check_entropy_bound", "violating_rows", "violation_lines"]

KINDS = ("discrete", "continuous")


def check_entropy_bound(
    values: ArrayLike,
    *,
    kind: str,
    target_entropy: float,
    tau: float = TAU,
    mode: str = DEFAULT_MODE,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    mean: Optional[ArrayLike] = None,
    tol: Optional[float] = None,
) -> BoundReport:
    """check_discrete or check_continuous, chosen by `kind` ("discrete": `values` are output
    logits; "continuous": `values` are log stds, with `mean` for the squashed entropy)."""
    if kind == "discrete":
        return check_discrete(values, target_entropy, tau=tau, mode=mode, tol=tol)
    if kind == "continuous":
        return check_continuous(
            values,
            target_entropy,
            residual=residual,
            log_std_min=log_std_min,
            log_std_max=log_std_max,
            mean=mean,
            tol=tol,
        )
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _row_entropies(values, kind: str, mean) -> np.ndarray:
    """Per-row entropies in float64 (the float32 rows upcast exactly), as the check sees them."""
    x = as_numpy(values, "era.testing", "values").astype(np.float64)
    if kind == "discrete":
        return softmax_entropy(x)
    if mean is None:
        return gaussian_entropy(x)
    return tanh_gaussian_entropy(as_numpy(mean, "era.testing", "mean").astype(np.float64), x)


def _index(flat: int, batch_shape) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, batch_shape)) if batch_shape else ()


def _index_text(index: tuple) -> str:
    return "(" + ", ".join(str(i) for i in index) + ("," if len(index) == 1 else "") + ")"


def violating_rows(values: ArrayLike, report: BoundReport, *, kind: str, mean=None, max_rows: int = 5):
    """The violating rows of a checked batch: (total count, the first `max_rows` as a list of
    (batch index, entropy in nats) in row order)."""
    if not (isinstance(max_rows, (int, np.integer)) and max_rows >= 0):
        raise ValueError(f"era.testing: max_rows must be an integer >= 0, got {max_rows!r}")
    entropies = _row_entropies(values, kind, mean).reshape(-1)
    bad = np.flatnonzero(entropies < report.target - report.tol)
    return len(bad), [(_index(int(r), report.batch_shape), float(entropies[r])) for r in bad[:max_rows]]


def violation_lines(values: ArrayLike, report: BoundReport, *, kind: str, mean=None, max_rows: int = 5) -> List[str]:
    """Lines describing the violating rows of a failed check: the worst one and the first
    `max_rows` in row order, each with its batch index and entropy (nats)."""
    count, rows = violating_rows(values, report, kind=kind, mean=mean, max_rows=max_rows)
    worst = _index_text(_index(report.worst_row, report.batch_shape))
    lines = [
        f"worst deficit {report.max_deficit:.6g} nats at row {worst}: "
        f"entropy {report.min_entropy:.6g} < target {report.target:.6g}"
    ]
    shown = ", ".join(f"{_index_text(index)}: {entropy:.6g}" for index, entropy in rows)
    if not rows:
        lines.append(f"violating rows: {count} (none listed)")
    else:
        more = f" (first {max_rows} of {count})" if count > max_rows else ""
        lines.append(f"violating rows{more}: {shown}")
    return lines


def assert_entropy_bound(
    values: ArrayLike,
    *,
    kind: str,
    target_entropy: float,
    tau: float = TAU,
    mode: str = DEFAULT_MODE,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    mean: Optional[ArrayLike] = None,
    tol: Optional[float] = None,
    max_rows_shown: int = 5,
) -> BoundReport:
    """Asserts that every row of ERA outputs keeps its entropy at or above the target.

    Args:
        values: ``[..., D]`` float32/float64: discrete-ERA output logits (kind="discrete")
            or continuous-ERA log stds (kind="continuous").
        kind: "discrete" or "continuous".
        target_entropy: H0 in nats. Discrete rows are checked against H0; continuous rows
            against H0 + residual (Gaussian entropy), or against H0 with `mean` given
            (tanh-squashed entropy).
        tau, mode: discrete parameters; residual, log_std_min, log_std_max: continuous ones.
        mean: optional ``[..., D]`` pre-squash means (continuous only).
        tol: tolerance in nats (None: 1e-5 for float32, 1e-10 for float64).
        max_rows_shown: how many violating rows the message lists.
    Returns:
        The BoundReport, when the bound holds.
    Raises:
        AssertionError naming the violating rows and the worst deficit; ERAError subclasses
        for bad input (bad parameters, non-finite values), as the check functions.
    """
    report = check_entropy_bound(
        values,
        kind=kind,
        target_entropy=target_entropy,
        tau=tau,
        mode=mode,
        residual=residual,
        log_std_min=log_std_min,
        log_std_max=log_std_max,
        mean=mean,
        tol=tol,
    )
    if report.holds:
        return report
    what = f"{kind}, mode {mode!r}, tau {tau}" if kind == "discrete" else f"{kind}, residual {residual}"
    if kind == "continuous":
        what += ", tanh-squashed entropy" if mean is not None else ", Gaussian entropy"
    head = (
        f"entropy bound violated: {report.violations} of {report.rows} rows below target {report.target:.6g} "
        f"- tol {report.tol:g} nats ({what})"
    )
    lines = [head] + ["  " + line for line in violation_lines(values, report, kind=kind, mean=mean, max_rows=max_rows_shown)]
    lines.append(f"  min entropy {report.min_entropy:.6g}, mean {report.mean_entropy:.6g}, floor {report.floor:.6g} nats")
    raise AssertionError("\n".join(lines))
