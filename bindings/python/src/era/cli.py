"""`python -m era verify FILE --kind discrete|continuous --target-entropy H ...`

Checks the entropy bound of ERA outputs saved with numpy (``.npz`` or ``.npy``) and prints
a report. Exit status: 0 when the bound holds, 1 on a violation, 2 on bad input (a missing,
corrupt or truncated file, a missing key, a bad option or parameter: one line on stderr,
nothing on stdout, also with --json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zipfile
import zlib
from typing import List, Optional

import numpy as np
from numpy.lib import format as npformat

from . import __version__
from ._errors import ERAError
from .check import BoundReport
from .continuous import LOG_STD_MAX, LOG_STD_MIN, RESIDUAL
from .discrete import DEFAULT_MODE, MODES, TAU
from .testing import check_entropy_bound, violating_rows, violation_lines

try:
    import lzma
except ImportError:  # pragma: no cover - a Python built without liblzma: zipfile has no LZMA either
    DECOMPRESSION_ERRORS: tuple = (zlib.error,)
else:
    DECOMPRESSION_ERRORS = (zlib.error, lzma.LZMAError)

EXIT_HOLDS, EXIT_VIOLATION, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_KEYS = {"discrete": "logits", "continuous": "log_std"}
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive
READ_CHUNK = 1 << 24


class BadInput(Exception):
    """Input the verification cannot use (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors (bad or missing options) on one line of stderr, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text) -> str:
    return " ".join(str(text).split())


def row_count(text: str) -> int:
    """--max-rows: an integer >= 0 (0 lists no rows)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="python -m era", description="libera's ERA tools")
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
    verify.add_argument("--mode", default=DEFAULT_MODE, choices=sorted(MODES), help=f"discrete: mode (default {DEFAULT_MODE})")
    verify.add_argument("--residual", type=float, default=RESIDUAL, help=f"continuous: residual delta (default {RESIDUAL:g})")
    verify.add_argument("--log-std-min", type=float, default=LOG_STD_MIN, help=f"continuous (default {LOG_STD_MIN})")
    verify.add_argument("--log-std-max", type=float, default=LOG_STD_MAX, help=f"continuous (default {LOG_STD_MAX})")
    verify.add_argument("--tol", type=float, default=None, help="tolerance in nats (default 1e-5 for float32 data, "
                        "1e-10 for float64)")
    verify.add_argument("--key", default=None, help="array name in the .npz (default: its only array, else "
                        "'logits' or 'log_std' by kind)")
    verify.add_argument("--mean-key", default=None, help="continuous: array of pre-squash means; the check is then "
                        "of the tanh-squashed entropy against H0")
    verify.add_argument("--max-rows", type=row_count, default=5, help="violating rows listed (default 5; 0: none)")
    verify.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return top


def load(path: str, key: Optional[str], kind: str, mean_key: Optional[str]):
    """The array to check (and the means, if asked for) from an .npz or .npy file; anything
    that cannot be read (a missing or corrupt file, a damaged deflate stream, an object
    array, a header claiming more data than the file holds) is BadInput."""
    try:
        return _load(path, key, kind, mean_key)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError, MemoryError,
            *DECOMPRESSION_ERRORS) as error:
        # zipfile raises NotImplementedError for an unknown compression method and
        # RuntimeError for an encrypted member; MemoryError only for an array whose data is
        # all there but does not fit.
        if isinstance(error, DECOMPRESSION_ERRORS):
            error = f"damaged compressed data ({error})"
        elif isinstance(error, MemoryError):
            error = f"the array does not fit in memory ({error})"
        raise BadInput(f"cannot read {path}: {error}") from None


def _load(path: str, key: Optional[str], kind: str, mean_key: Optional[str]):
    with open(path, "rb") as handle:
        magic = handle.read(len(NPY_MAGIC))
        handle.seek(0)
        if magic.startswith(NPY_MAGIC):
            if key not in (None, "arr_0") or mean_key is not None:
                raise BadInput(f"{path} holds a single array; --key/--mean-key need an .npz")
            return read_npy(handle, path), None, "arr_0"
        if not magic.startswith(ZIP_MAGICS):
            raise BadInput(f"cannot read {path}: neither an .npy nor an .npz file")
        with zipfile.ZipFile(handle) as archive:
            members = {name[: -len(".npy")] if name.endswith(".npy") else name: name for name in archive.namelist()}
            names = list(members)
            if key is None:
                key = names[0] if len(names) == 1 else DEFAULT_KEYS[kind]
            for wanted in (key, mean_key):
                if wanted is not None and wanted not in members:
                    raise BadInput(f"{path} has no array {wanted!r} (it has: {', '.join(names) or 'none'})")
            arrays = []
            for wanted in (key, mean_key):
                if wanted is None:
                    arrays.append(None)
                    continue
                if not members[wanted].endswith(".npy"):
                    raise BadInput(f"{path}: member {members[wanted]!r} is not an .npy array")
                with archive.open(members[wanted]) as member:
                    arrays.append(read_npy(member, f"{path}[{wanted}]"))
    return arrays[0], arrays[1], key


def read_npy(stream, name: str) -> np.ndarray:
    """One .npy array from a file or zip member, read without trusting its header: the data
    is read in chunks (no buffer sized by the header's claim), and a header that claims more
    bytes than follow (a truncated file, or an edited shape such as a 36 TiB array in a
    2 KiB file) or an object array is BadInput before anything of that size is allocated."""
    version = npformat.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = npformat.read_array_header_1_0(stream)
    elif version in ((2, 0), (3, 0)):
        # 3.0 differs from 2.0 only in its header's encoding (UTF-8 instead of latin-1),
        # which matters only for the field names of structured dtypes (refused later).
        shape, fortran_order, dtype = npformat.read_array_header_2_0(stream)
    else:
        raise BadInput(f"cannot read {name}: .npy format version {version} is not supported")
    if dtype.hasobject:
        raise BadInput(f"cannot read {name}: object arrays are not supported (dtype {dtype})")
    if any(length < 0 for length in shape):
        raise BadInput(f"cannot read {name}: its header claims shape {shape}")
    count = math.prod(shape)
    size = count * dtype.itemsize
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(min(size - len(data), READ_CHUNK))
        if not chunk:
            raise BadInput(
                f"cannot read {name}: its header claims shape {shape} of {dtype} ({_bytes_text(size)}), "
                f"but only {len(data)} bytes of data follow"
            )
        data += chunk
    if size == 0:
        return np.empty(shape, dtype=dtype, order="F" if fortran_order else "C")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def _bytes_text(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"  # pragma: no cover - the loop returns


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
        print(f"era verify: {one_line(error)}", file=sys.stderr)
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
