"""Bound verification (docs/math.md section 4): is every row's entropy at least the target?

A violation is a result, not an error: the functions return a BoundReport that counts it.
Tolerances default to 1e-5 nats for float32 rows and 1e-10 for float64 (math 5).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike

from . import _era
from ._arrays import like, rows_of
from ._errors import check
from .continuous import LOG_STD_MAX, LOG_STD_MIN, RESIDUAL
from .discrete import DEFAULT_MODE, TAU, mode_number

__all__ = ["BoundReport", "check_discrete", "check_continuous", "default_tolerance"]


def default_tolerance(dtype: np.dtype) -> float:
    """The tolerance (nats) a bound is checked with by default: 1e-5 for float32, 1e-10 for
    float64."""
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-10


@dataclass(frozen=True)
class BoundReport:
    """The outcome of a bound check (era_bound_report), entropies in nats.

    Attributes:
        rows: rows checked.
        violations: rows whose entropy is below ``target - tol``.
        min_entropy: smallest row entropy (+inf when rows == 0).
        mean_entropy: mean row entropy (NaN when rows == 0).
        max_deficit: ``max(0, max over rows of target - entropy)``.
        floor: the entropy the parameters guarantee (NaN when none: discrete "reference"
            mode, or a continuous check of the squashed entropy).
        target: the entropy each row was checked against.
        worst_row: flat index (C order over the batch shape) of the row with the smallest
            entropy; -1 when rows == 0.
        tol: the tolerance used.
        batch_shape: the batch shape of the rows checked.
    """

    rows: int
    violations: int
    min_entropy: float
    mean_entropy: float
    max_deficit: float
    floor: float
    target: float
    worst_row: int
    tol: float
    batch_shape: Tuple[int, ...]

    @property
    def holds(self) -> bool:
        """True when no row violates the bound."""
        return self.violations == 0

    @property
    def worst_index(self) -> Optional[Tuple[int, ...]]:
        """worst_row as an index into the batch shape (None when there are no rows)."""
        if self.worst_row < 0:
            return None
        return tuple(int(i) for i in np.unravel_index(self.worst_row, self.batch_shape)) if self.batch_shape else ()

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become None)."""
        out = asdict(self)
        out["batch_shape"] = list(self.batch_shape)
        out["holds"] = self.holds
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


def _report(values, tol: float, batch_shape) -> BoundReport:
    rows, violations, min_e, mean_e, deficit, floor, target, worst = values
    return BoundReport(
        int(rows), int(violations), min_e, mean_e, deficit, floor, target, int(worst), float(tol), tuple(batch_shape)
    )


def check_discrete(
    out_logits: ArrayLike,
    target_entropy: float,
    *,
    tau: float = TAU,
    mode: str = DEFAULT_MODE,
    tol: Optional[float] = None,
) -> BoundReport:
    """Checks rows of discrete-ERA OUTPUT logits against the target entropy.

    Args:
        out_logits: ``[..., D]`` float32/float64 output logits (discrete_forward's result).
        target_entropy, tau, mode: the parameters that produced them.
        tol: tolerance in nats (None: 1e-5 for float32, 1e-10 for float64), >= 0.
    Returns:
        BoundReport; report.floor is discrete_floor's value, report.target is H0.
    """
    where = "era.check_discrete"
    x = rows_of(out_logits, where, "out_logits")
    tol = default_tolerance(x.dtype) if tol is None else float(tol)
    status, values = _era.check_discrete(
        float(target_entropy), float(tau), mode_number(mode, where), x.rows, x.cols, x.array, tol
    )
    check(status, where, f"out_logits shape {x.array.shape}, target_entropy={target_entropy}, tau={tau}, "
          f"mode={mode!r}, tol={tol}")
    return _report(values, tol, x.batch_shape)


def check_continuous(
    log_std: ArrayLike,
    target_entropy: float,
    *,
    residual: float = RESIDUAL,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
    mean: Optional[ArrayLike] = None,
    tol: Optional[float] = None,
) -> BoundReport:
    """Checks rows of continuous-ERA log stds.

    Without `mean`: the Gaussian entropy of each row against the guaranteed floor
    ``target_entropy + residual``. With `mean`: the tanh-squashed entropy of each row against
    target_entropy, which the residual is tuned to reach but which is not guaranteed
    (report.floor is NaN then).

    Args:
        log_std: ``[..., D]`` float32/float64 log stds (continuous_forward's result).
        target_entropy, residual, log_std_min, log_std_max: the parameters that produced them.
        mean: optional ``[..., D]`` pre-squash means, same dtype.
        tol: tolerance in nats (None: 1e-5 for float32, 1e-10 for float64).
    Returns:
        BoundReport.
    """
    where = "era.check_continuous"
    x = rows_of(log_std, where, "log_std")
    m = None if mean is None else like(x, mean, where, "mean", "log_std")
    tol = default_tolerance(x.dtype) if tol is None else float(tol)
    status, values = _era.check_continuous(
        float(target_entropy), float(residual), float(log_std_min), float(log_std_max), x.rows, x.cols, m, x.array, tol
    )
    check(status, where, f"log_std shape {x.array.shape}, target_entropy={target_entropy}, residual={residual}, "
          f"log_std_min={log_std_min}, log_std_max={log_std_max}, tol={tol}")
    return _report(values, tol, x.batch_shape)
