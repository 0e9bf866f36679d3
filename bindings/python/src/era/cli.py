"""`python -m era verify FILE --kind discrete|continuous --target-entropy H ...`

Checks the entropy bound of ERA outputs saved with numpy (``.npz`` or ``.npy``) and prints
a report. Exit status: 0 when the bound holds, 1 on a violation, 2 on bad input (a missing
file or key, a bad parameter: the library's message goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from typing import List, Optional

import numpy as np

from . import __version__
from ._errors import ERAError
from .check import BoundReport
from .continuous import LOG_STD_MAX, LOG_STD_MIN
from .discrete import MODES, TAU
from .testing import check_entropy_bound, violating_rows, violation_lines

EXIT_HOLDS, EXIT_VIOLATION, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_KEYS = {"discrete": "logits", "continuous": "log_std"}


class BadInput(Exception):
    """Input the verification cannot use (exit status 2)."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m era", description="libera's ERA tools")
    top.add_argument("--version", action="version", version=f"era {__version__}")
    commands = top.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify",
        help="check the entropy bound of saved ERA outputs",
        description="Check that every row of saved ERA outputs keeps its entropy (nats) at or above the target. "
        "Exit 0: the bound holds; 1: a violation; 2: bad input.",
    )
    verify.add_argument("file", help=".npz (or .npy) file of ERA outputs, rows on the last axis")
    verify.add_argument("--kind", required=True, choices=sorted(DEFAULT_KEYS), help="discrete: output logits; "
                        "continuous: log stds")
    verify.add_argument("--target-entropy", required=True, type=float, metavar="H", help="target entropy H0, nats")
    verify.add_argument("--tau", type=float, default=TAU, help=f"discrete: tau (default {TAU})")
    verify.add_argument("--mode", default="exact", choices=sorted(MODES), help="discrete: mode (default exact)")
    verify.add_argument("--residual", type=float, default=0.0, help="continuous: residual delta (default 0)")
    verify.add_argument("--log-std-min", type=float, default=LOG_STD_MIN, help=f"continuous (default {LOG_STD_MIN})")
    verify.add_argument("--log-std-max", type=float, default=LOG_STD_MAX, help=f"continuous (default {LOG_STD_MAX})")
    verify.add_argument("--tol", type=float, default=None, help="tolerance in nats (default 1e-5 for float32 data, "
                        "1e-10 for float64)")
    verify.add_argument("--key", default=None, help="array name in the .npz (default: its only array, else "
                        "'logits' or 'log_std' by kind)")
    verify.add_argument("--mean-key", default=None, help="continuous: array of pre-squash means; the check is then "
                        "of the tanh-squashed entropy against H0")
    verify.add_argument("--max-rows", type=int, default=5, help="violating rows listed (default 5)")
    verify.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return top


def load(path: str, key: Optional[str], kind: str, mean_key: Optional[str]):
    """The array to check (and the means, if asked for) from an .npz or .npy file; anything
    numpy cannot read (a missing or corrupt file, an object array) is BadInput."""
    try:
        return _load(path, key, kind, mean_key)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise BadInput(f"cannot read {path}: {error}") from None


def _load(path: str, key: Optional[str], kind: str, mean_key: Optional[str]):
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        if key not in (None, "arr_0") or mean_key is not None:
            raise BadInput(f"{path} holds a single array; --key/--mean-key need an .npz")
        return data, None, "arr_0"
    with data:
        names = list(data.files)
        if key is None:
            key = names[0] if len(names) == 1 else DEFAULT_KEYS[kind]
        for wanted in (key, mean_key):
            if wanted is not None and wanted not in names:
                raise BadInput(f"{path} has no array {wanted!r} (it has: {', '.join(names) or 'none'})")
        values = data[key]
        mean = data[mean_key] if mean_key is not None else None
    return values, mean, key


def report_text(source: str, args, report: BoundReport, extra: List[str]) -> str:
    params = (
        f"mode {args.mode}, tau {args.tau:g}"
        if args.kind == "discrete"
        else f"residual {args.residual:g}, log std in [{args.log_std_min:g}, {args.log_std_max:g}]"
        + (", tanh-squashed entropy" if args.mean_key else ", Gaussian entropy")
    )
    worst = "-" if report.worst_index is None else str(report.worst_index)
    lines = [
        f"era verify: {source} ({args.kind}, {params})",
        f"  rows          {report.rows}  (batch shape {report.batch_shape})",
        f"  target        {report.target:.10g} nats (tol {report.tol:g})",
        f"  floor         {report.floor:.10g} nats",
        f"  min entropy   {report.min_entropy:.10g} nats (row {worst})",
        f"  mean entropy  {report.mean_entropy:.10g} nats",
        f"  max deficit   {report.max_deficit:.10g} nats",
        f"  violations    {report.violations}",
    ]
    lines += ["  " + line for line in extra]
    lines.append("bound holds" if report.holds else "BOUND VIOLATED")
    return "\n".join(lines)


def verify(args) -> int:
    try:
        values, mean, key = load(args.file, args.key, args.kind, args.mean_key)
        report = check_entropy_bound(
            values,
            kind=args.kind,
            target_entropy=args.target_entropy,
            tau=args.tau,
            mode=args.mode,
            residual=args.residual,
            log_std_min=args.log_std_min,
            log_std_max=args.log_std_max,
            mean=mean,
            tol=args.tol,
        )
        extra, listed = [], []
        if not report.holds:
            extra = violation_lines(values, report, kind=args.kind, mean=mean, max_rows=args.max_rows)
            _, listed = violating_rows(values, report, kind=args.kind, mean=mean, max_rows=args.max_rows)
    except (BadInput, ERAError) as error:
        print(f"era verify: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    source = f"{args.file}[{key}]"
    if args.json:
        out = {"file": args.file, "key": key, "kind": args.kind, **report.to_dict()}
        out["violating_rows"] = [{"index": list(index), "entropy": entropy} for index, entropy in listed]
        print(json.dumps(out))
    else:
        print(report_text(source, args, report, extra))
    return EXIT_HOLDS if report.holds else EXIT_VIOLATION


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "verify":
        return verify(args)
    return EXIT_BAD_INPUT  # pragma: no cover - argparse requires a command
