"""What every ERA example shares: its command line, mean ± std summaries, the step-time
overhead measurement, the bound-report printout and the three output files
(``<name>.png``, ``<name>.md``, ``<name>.json``).

Only reporting lives here; each example's model and training loop stay in its own script.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

import era  # noqa: E402

__all__ = [
    "parse_args",
    "mean_std",
    "fmt",
    "markdown_table",
    "measure_overhead",
    "overhead_line",
    "print_bound_report",
    "check_continuous_forwards",
    "write_outputs",
    "plt",
]


def parse_args(description: str, quick_seeds: Sequence[int], long_seeds: Sequence[int], argv=None):
    """``[--quick] [--out DIR] [--seeds S ...]``; seeds default by setting."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="the short demo setting")
    parser.add_argument("--out", default="out", help="output folder (default: out/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="random seeds")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = list(quick_seeds if args.quick else long_seeds)
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def mean_std(values: Iterable[float]) -> Dict[str, float]:
    """Mean and population std (0 for one value) of per-seed numbers."""
    a = np.asarray(list(values), dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "values": [float(v) for v in a]}


def fmt(stat: Dict[str, float], digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± std`` of a mean_std dict, each multiplied by `scale` (e.g. 100 for %)."""
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def measure_overhead(
    step_with_era: Callable[[], None],
    step_without_era: Callable[[], None],
    *,
    warmup: int = 20,
    repeats: int = 200,
) -> Dict[str, float]:
    """Median wall time (ms) of one training step with ERA and of the same step without it.

    The two steps alternate (with, without, with, ...) so that load from other processes
    falls on both alike; the first `warmup` pairs are not timed. Each callable must run one
    complete step (forward, backward, optimizer update) and return when it is done.
    """
    for _ in range(warmup):
        step_with_era()
        step_without_era()
    with_era: List[float] = []
    without_era: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        step_with_era()
        with_era.append(time.perf_counter() - start)
        start = time.perf_counter()
        step_without_era()
        without_era.append(time.perf_counter() - start)
    era_ms = 1e3 * float(np.median(with_era))
    plain_ms = 1e3 * float(np.median(without_era))
    return {
        "era_ms": era_ms,
        "plain_ms": plain_ms,
        "overhead_pct": 100.0 * (era_ms - plain_ms) / plain_ms,
        "repeats": repeats,
        "warmup": warmup,
    }


def overhead_line(timing: Dict[str, float]) -> str:
    return (
        f"step time: {timing['era_ms']:.3f} ms with ERA vs {timing['plain_ms']:.3f} ms without "
        f"(median of {timing['repeats']} steps): overhead {timing['overhead_pct']:+.1f}%"
    )


def print_bound_report(title: str, report) -> Dict[str, object]:
    """Prints an era.BoundReport (rows, violations, min/mean entropy, target, floor) and
    returns its dict."""
    floor = "none" if math.isnan(report.floor) else f"{report.floor:.6f}"
    print(f"bound report: {title}")
    print(
        f"  rows {report.rows}, violations {report.violations}, min entropy {report.min_entropy:.6f} nats, "
        f"mean {report.mean_entropy:.6f}, target {report.target:.6f}, guaranteed floor {floor}, "
        f"max deficit {report.max_deficit:.3g}, tol {report.tol:g}: {'HOLDS' if report.holds else 'VIOLATED'}"
    )
    return report.to_dict()


def check_continuous_forwards(forwards, target_entropy: float, *, log_std_min: float, log_std_max: float):
    """Checks continuous-ERA log stds recorded forward by forward, each against the floor its
    own residual guarantees (H0 + delta, docs/math.md §1), with era.check_continuous.

    Args:
        forwards: iterable of ``(log_std [..., D], residual)``, one per ERA call.
    Returns:
        A dict summing the per-forward BoundReports: forwards, rows, violations,
        min_entropy, min_margin (the smallest entropy - (H0 + delta)), max_deficit, the
        residual range, and holds.
    """
    total = {"forwards": 0, "rows": 0, "violations": 0, "min_entropy": math.inf, "min_margin": math.inf,
             "max_deficit": 0.0, "target": float(target_entropy), "residual_min": math.inf, "residual_max": -math.inf}
    for log_std, residual in forwards:
        report = era.check_continuous(log_std, target_entropy, residual=float(residual),
                                      log_std_min=log_std_min, log_std_max=log_std_max)
        total["forwards"] += 1
        total["rows"] += report.rows
        total["violations"] += report.violations
        total["min_entropy"] = min(total["min_entropy"], report.min_entropy)
        total["min_margin"] = min(total["min_margin"], report.min_entropy - report.target)
        total["max_deficit"] = max(total["max_deficit"], report.max_deficit)
        total["residual_min"] = min(total["residual_min"], float(residual))
        total["residual_max"] = max(total["residual_max"], float(residual))
    total["holds"] = total["violations"] == 0
    print(f"  per-call check against H0 + delta: {total['forwards']} ERA calls, {total['rows']} rows, "
          f"violations {total['violations']}, smallest margin {total['min_margin']:+.3g} nats, "
          f"delta in [{total['residual_min']:.4f}, {total['residual_max']:.4f}]: "
          f"{'HOLDS' if total['holds'] else 'VIOLATED'}")
    return total


def write_outputs(out: Path, name: str, figure, markdown: str, data: Dict[str, object]) -> None:
    """Writes ``<name>.png`` (the figure), ``<name>.md`` and ``<name>.json`` under `out`."""
    figure.tight_layout()
    figure.savefig(out / f"{name}.png", dpi=120)
    plt.close(figure)
    (out / f"{name}.md").write_text(markdown.rstrip() + "\n")
    (out / f"{name}.json").write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    print(f"wrote {out / name}.png, .md, .json")


def finish(markdown: str, holds: bool, failure: str = "ENTROPY BOUND VIOLATED") -> int:
    """Prints the example's markdown section and returns its exit status: 0, or 1 (after
    `failure` on stderr) when its verified guarantee did not hold, which stops `make demo`."""
    print(markdown)
    if not holds:
        print(failure, file=sys.stderr)
        return 1
    return 0


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
