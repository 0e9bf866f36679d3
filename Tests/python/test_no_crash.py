"""No input crashes the interpreter.

The test runs this file as a child Python (``python test_no_crash.py --child PROGRESS``). The
child calls every public function of era (the numpy level, era.testing, the CLI, era.torch
with both backends, era.jax eagerly and under jit/vmap) and every entry point of the raw
module era._era with bad arguments: None (NULL), zero-size and 0-d arrays, wrong shapes and
mismatched lengths, sizes that are negative or whose products overflow int64, NaN and
infinities, integer, object, string, structured and big-endian arrays, read-only, strided,
broadcast and overlapping arrays, bad parameters of every kind; and a few of them from
several Python threads at once. It catches every exception, counts them by class, and exits
0. The parent asserts that it did (a segfault or an abort gives a negative return code, the
signal), names the call that was running when it died, and prints the counts.

Calls never ask for memory that could actually be granted: sizes are either small or far
beyond any address space (2**50 elements and up), so a missing check shows as an exception or
a crash, not as an out-of-memory kill.
"""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import subprocess
import sys
import threading

# The exceptions a refused call may raise: era's classes (ValueError, TypeError, IndexError,
# MemoryError subclasses), the builtins numpy, pybind11, torch and jax use for arguments they
# cannot take, and the AssertionError of era.testing. Anything else is listed as unexpected.
EXPECTED_BASES = (ValueError, TypeError, IndexError, MemoryError, OverflowError, RuntimeError, AssertionError)
# Other classes seen today, by (section, class): each is a rough edge, not a crash.
KNOWN_UNEXPECTED = {
    # era.torch takes tensors; None, strings, lists or numpy arrays fail on a tensor attribute.
    ("torch_level", "AttributeError"),
    # era.jax.llm_era with a vocabulary of 0: reshape(-1, 0) divides by zero (not BadShapeError).
    ("jax_level", "ZeroDivisionError"),
}


# ---------------------------------------------------------------------------------------
# The parent: the pytest test


def test_no_input_crashes_the_interpreter(tmp_path):
    progress = tmp_path / "progress.txt"
    env = dict(os.environ, PYTHONFAULTHANDLER="1", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", str(progress)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = progress.read_text().splitlines() if progress.exists() else []
    last = lines[-1] if lines else "(before the first call)"
    if proc.returncode != 0:
        how = f"signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0 else f"exit {proc.returncode}"
        if proc.returncode == 3:
            how = f"a call ran longer than {HANG_SECONDS} s"
        pytest_fail(
            f"the child died ({how}) during call {len(lines)}: {last}\n--- stderr (tail) ---\n{proc.stderr[-6000:]}"
        )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{summary['calls']} calls in the child ({summary['seconds']:.1f} s):")
    for name, count in sorted(summary["outcomes"].items(), key=lambda item: -item[1]):
        print(f"  {count:6d}  {name}")
    for section, count in summary["sections"].items():
        print(f"  section {section}: {count} calls")
    kinds = collections.Counter((u["section"], u["class"]) for u in summary["unexpected"])
    for (section, name), count in sorted(kinds.items()):
        known = "known" if (section, name) in KNOWN_UNEXPECTED else "NEW"
        example = next(u["call"] for u in summary["unexpected"] if (u["section"], u["class"]) == (section, name))
        print(f"  unexpected class {name} in {section}: {count} calls ({known}), e.g. {example}")
    assert summary["calls"] == len(lines) and summary["calls"] > 5000
    assert all(count > 0 for count in summary["sections"].values()), summary["sections"]
    # SystemError means a C extension broke the interpreter's rules: as bad as a crash.
    assert "SystemError" not in summary["outcomes"]
    new = sorted(set(kinds) - KNOWN_UNEXPECTED)
    assert not new, f"exception classes outside {[c.__name__ for c in EXPECTED_BASES]}: {new}"


def pytest_fail(message):
    import pytest

    pytest.fail(message, pytrace=False)


# ---------------------------------------------------------------------------------------
# Regressions of bugs that a child process showed (both fixed)


def _parametrize(names, values):
    import pytest

    return pytest.mark.parametrize(names, values)


@_parametrize("log_std, lo, hi", [(710.0, -1.0, 1.0), (600.0, 0.0, 1e-300)])
def test_truncated_normal_entropy_returns(log_std, lo, hi):
    # Both standardised bounds 0 once made libera mirror the interval forever.
    code = ("import numpy as np, era; "
            f"print(era.truncated_normal_entropy(np.array([0.0]), np.array([{log_std!r}]), {lo!r}, {hi!r}))")
    try:
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=3)
    except subprocess.TimeoutExpired:
        pytest_fail(f"era.truncated_normal_entropy(0, {log_std}, {lo}, {hi}) did not return within 3 s (killed)")


@_parametrize("content", ["corrupt zip", "object array"])
def test_cli_unreadable_npz_exits_2(tmp_path, content):
    import numpy as np

    path = tmp_path / "outputs.npz"
    if content == "corrupt zip":
        path.write_bytes(b"PK\x03\x04 not really a zip archive")
    else:
        np.savez(path, logits=np.array([[1.0, None]], dtype=object))
    proc = subprocess.run([sys.executable, "-m", "era", "verify", str(path), "--kind", "discrete",
                           "--target-entropy", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr[-300:])


# ---------------------------------------------------------------------------------------
# The child


# Calls that never return today: libera's truncated normal entropy loops forever when both
# standardised bounds (lo - loc)/sd and (hi - loc)/sd are zero (sd = exp(log_std) = inf, or an
# interval that vanishes against sd; see test_bug_truncated_normal_entropy_never_returns). The
# child wraps that entry point so that such calls are skipped and counted.


HANG_SECONDS = 60  # one call running longer than this is a hang: the child exits 3


class Recorder:
    """Runs calls, writes each one's label to the progress file first (flushed, so that the
    parent can name a call that crashed), and counts the outcomes by exception class. A
    watchdog ends the child (exit 3) when one call runs longer than HANG_SECONDS."""

    def __init__(self, path):
        self.progress = open(path, "w", buffering=1)
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()
        self.sections = collections.Counter()
        self.unexpected = []
        self.section = "setup"
        self.running = {}  # thread id -> (label, start)
        threading.Thread(target=self._watchdog, daemon=True).start()

    def _watchdog(self):
        import time

        while True:
            time.sleep(1.0)
            with self.lock:
                late = [(label, time.monotonic() - start) for label, start in self.running.values()
                        if time.monotonic() - start > HANG_SECONDS]
            if late:
                sys.stderr.write(f"HANG: {late[0][0]} ran {late[0][1]:.0f} s\n")
                sys.stderr.flush()
                os._exit(3)

    def __call__(self, label, fn, *args, **kwargs):
        import time

        label = f"[{self.section}] {label}"
        with self.lock:
            self.progress.write(label + "\n")
            self.sections[self.section] += 1
            self.running[threading.get_ident()] = (label, time.monotonic())
        try:
            result = fn(*args, **kwargs)
            _touch(result)
            outcome = "(returned)"
        except SystemExit as error:  # the CLI's argparse
            outcome = f"SystemExit({error.code})"
        except Exception as error:  # noqa: BLE001 - counting them is the point
            outcome = type(error).__name__
            if not isinstance(error, EXPECTED_BASES):
                with self.lock:
                    self.unexpected.append({"section": self.section, "class": outcome,
                                            "call": f"{label}: {str(error)[:160]}"})
        with self.lock:
            self.outcomes[outcome] += 1
            del self.running[threading.get_ident()]

    def calls(self):
        return sum(self.outcomes.values())


def _touch(result):
    """Reads every value of a result (a returned array that points at freed or foreign memory
    crashes here rather than later)."""
    import numpy as np

    if result is None:
        return
    if isinstance(result, tuple):
        for item in result:
            _touch(item)
        return
    if hasattr(result, "to_dict"):
        result.to_dict()
        return
    try:
        np.asarray(result).tobytes()
    except Exception:  # noqa: BLE001 - a tensor with grad etc.: its string form reads it too
        str(result)


def child(progress_path):
    import time

    start = time.perf_counter()
    run = Recorder(progress_path)
    import numpy as np


    from importlib.util import find_spec

    sections = [numpy_level, raw_module, cli_and_testing, threads]
    if find_spec("torch") is not None:
        sections.append(torch_level)
    if find_spec("jax") is not None:
        sections.append(jax_level)
    np.seterr(all="ignore")
    for section in sections:
        run.section = section.__name__
        section(run)
    print(json.dumps({
        "calls": run.calls(),
        "outcomes": dict(run.outcomes),
        "sections": dict(run.sections),
        "unexpected": run.unexpected,
        "seconds": time.perf_counter() - start,
    }))
    return 0


# ---------------------------------------------------------------------------------------
# Bad values


def bad_arrays():
    """Array-like values that are wrong in some way (or right, for contrast), by name."""
    import ml_dtypes
    import numpy as np

    rng = np.random.default_rng(0)
    good = rng.normal(size=(3, 4))
    read_only = good.copy()
    read_only.flags.writeable = False
    all_masked = good.astype(np.float32)
    all_masked[1] = -np.inf
    values = {
        "None": None,
        "python float": 1.5,
        "python int": 3,
        "python bool": True,
        "string": "logits",
        "bytes": b"\x00\x01",
        "dict": {"a": 1},
        "nested list": [[1.0, 2.0], [3.0, 4.0]],
        "ragged list": [[1.0], [1.0, 2.0]],
        "empty list": [],
        "0-d float64": np.array(1.0),
        "0-d nan": np.array(np.nan),
        "0-d int": np.array(3),
        "numpy scalar": np.float32(2.0),
        "empty 1-d": np.zeros(0),
        "empty rows": np.zeros((0, 4)),
        "empty row length": np.zeros((3, 0)),
        "empty both": np.zeros((0, 0)),
        "empty middle": np.zeros((2, 0, 4)),
        "float64": good,
        "float32": good.astype(np.float32),
        "float32 rows of 1": good[:, :1].astype(np.float32).copy(),
        "float16": good.astype(np.float16),
        "bfloat16": good.astype(ml_dtypes.bfloat16),
        "uint16 bits": good.astype(ml_dtypes.bfloat16).view(np.uint16),
        "int64": np.arange(12).reshape(3, 4),
        "int32": np.arange(12, dtype=np.int32).reshape(3, 4),
        "uint64": np.arange(12, dtype=np.uint64).reshape(3, 4),
        "bool": good > 0,
        "complex": good.astype(np.complex128),
        "longdouble": good.astype(np.longdouble),
        "big-endian float64": good.astype(">f8"),
        "big-endian int64": np.arange(12).reshape(3, 4).astype(">i8"),
        "object floats": good.astype(object),
        "object mixed": np.array([[1.0, "a", None, 2]], dtype=object),
        "strings": good.astype("U6"),
        "structured": np.zeros((3, 4), dtype=[("a", "f8"), ("b", "i4")]),
        "datetime": np.zeros((3, 4), dtype="datetime64[s]"),
        "nan": np.where(good > 1, np.nan, good),
        "inf": np.where(good > 1, np.inf, good),
        "-inf": np.where(good > 1, -np.inf, good),
        "float32 row all -inf": all_masked,
        "huge 1e308": good * 1e308,
        "float32 max": np.full((3, 4), np.finfo(np.float32).max, np.float32),
        "subnormal": np.full((3, 4), 5e-324),
        "read-only": read_only,
        "transposed": good.T,
        "strided": good[:, ::2],
        "negative strides": good[::-1, ::-1],
        "broadcast (stride 0)": np.broadcast_to(good[:1], (3, 4)),
        "fortran": np.asfortranarray(good),
        "masked array": np.ma.masked_array(good, mask=good > 0),
        "memoryview": memoryview(good.copy()),
        "labels huge": np.array([2**62, -(2**62), 0], np.int64),
        "labels -1": np.full(3, -1, np.int64),
        "labels ok": np.array([0, 1, 2], np.int64),
        "labels 2-d": np.zeros((3, 4), np.int64),
        "float32 tokens": np.ones(3, np.float32),
        "float32 tokens nan": np.array([1.0, np.nan, 2.0], np.float32),
        "float32 tokens 0": np.zeros(3, np.float32),
        "float32 tokens huge": np.full(3, 3e38, np.float32),
        "wide row": np.zeros((1, 20000), np.float32),
    }
    return values


SCALARS = {
    "0": 0.0, "-1": -1.0, "1": 1.0, "0.5": 0.5, "e": math.e, "1e308": 1e308, "-1e308": -1e308, "nan": math.nan,
    "inf": math.inf, "-inf": -math.inf, "subnormal": 5e-324, "2**63": 2**63, "-2**63-1": -(2**63) - 1,
    "2**70": 2**70, "string": "x", "None": None, "list": [1.0], "complex": 1j, "bool": True,
    "numpy float32": None, "numpy int64": None, "0-d array": None, "array": None,
}


def scalar_values():
    import numpy as np

    values = dict(SCALARS)
    values.update({"numpy float32": np.float32(1.5), "numpy int64": np.int64(5), "0-d array": np.array(2.0),
                   "array": np.ones(3)})
    return values


# ---------------------------------------------------------------------------------------
# The numpy level


def numpy_api():
    """Each public function as (name, call(**kwargs), defaults) so that any argument can be
    replaced; the defaults make a valid call."""
    import numpy as np

    import era

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4))
    z32 = x.astype(np.float32)
    w32 = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 1, 2], np.int64)
    ones32 = np.ones(3, np.float32)
    ids = np.array([0, 1, -1], np.int64)
    return [
        ("softmax_entropy", era.softmax_entropy, dict(logits=x)),
        ("gaussian_entropy", era.gaussian_entropy, dict(log_std=x)),
        ("tanh_gaussian_entropy", era.tanh_gaussian_entropy, dict(mean=x, log_std=x)),
        ("truncated_normal_entropy", era.truncated_normal_entropy, dict(loc=x, log_std=x, lo=-1.0, hi=1.0)),
        ("continuous_forward", era.continuous_forward,
         dict(std_logits=x, target_entropy=-3.0, residual=0.0, log_std_min=-8.0, log_std_max=0.0)),
        ("continuous_backward", era.continuous_backward,
         dict(std_logits=x, grad_log_std=x, target_entropy=-3.0, residual=0.0, log_std_min=-8.0, log_std_max=0.0,
              residual_grad=True)),
        ("discrete_forward", era.discrete_forward, dict(logits=x, target_entropy=1.0, tau=4.0, mode="exact")),
        ("discrete_backward", era.discrete_backward,
         dict(logits=x, grad_out=x, target_entropy=1.0, tau=4.0, mode="tight")),
        ("discrete_floor", era.discrete_floor, dict(classes=4, target_entropy=1.0, tau=4.0, mode="exact")),
        ("discrete_infimum", era.discrete_infimum, dict(classes=4, target_entropy=1.0, tau=4.0, mode="tight")),
        ("discrete_constant", era.discrete_constant, dict(classes=4, target_entropy=1.0, tau=4.0, mode="reference")),
        ("token_entropy", era.token_entropy, dict(logits=z32)),
        ("llm_response_entropy", era.llm_response_entropy,
         dict(token_entropy=ones32, response_id=ids, num_responses=2, top_fraction=0.2, omega_low=0.45,
              omega_high=3.0, k=2.0)),
        ("llm_scales", era.llm_scales,
         dict(response_entropy=np.array([0.1, 5.0], np.float32), response_id=ids, advantages=ones32, omega_low=0.45,
              omega_high=3.0, k=2.0, scale_advantages=True, top_fraction=0.2)),
        ("llm_logprob_forward", era.llm_logprob_forward,
         dict(logits=z32, labels=labels, logit_scale=ones32, with_entropy=True)),
        ("llm_logprob_backward", era.llm_logprob_backward,
         dict(logits=z32, labels=labels, logit_scale=ones32, grad_logprob=ones32)),
        ("llm_linear_logprob_forward", era.llm_linear_logprob_forward,
         dict(hidden=z32, weight=w32, labels=labels, logit_scale=ones32, with_entropy=True)),
        ("llm_linear_logprob_backward", era.llm_linear_logprob_backward,
         dict(hidden=z32, weight=w32, labels=labels, logit_scale=ones32, grad_logprob=ones32, grad_hidden=True,
              grad_weight=True)),
        ("linear_discrete_ce", era.linear_discrete_ce,
         dict(features=z32, weight=w32, bias=np.zeros(5, np.float32), labels=labels, target_entropy=1.0, tau=4.0,
              mode="exact", grads=True)),
        ("check_discrete", era.check_discrete, dict(out_logits=x, target_entropy=1.0, tau=4.0, mode="exact", tol=None)),
        ("check_continuous", era.check_continuous,
         dict(log_std=x, target_entropy=-3.0, residual=0.0, log_std_min=-8.0, log_std_max=0.0, mean=x, tol=None)),
        ("set_num_threads", era.set_num_threads, dict(n=0)),
        ("get_num_threads", era.get_num_threads, dict()),
        ("version", era.version, dict()),
        ("abi_version", era.abi_version, dict()),
    ]


ARRAY_ARGUMENTS = {"logits", "log_std", "mean", "loc", "std_logits", "grad_log_std", "grad_out", "token_entropy",
                   "response_id", "response_entropy", "advantages", "labels", "logit_scale", "grad_logprob",
                   "out_logits", "hidden", "weight", "features", "bias"}


def numpy_level(run):
    import numpy as np

    import era

    arrays = bad_arrays()
    scalars = scalar_values()
    for name, fn, defaults in numpy_api():
        run(f"{name} (good)", fn, **defaults)
        for argument in defaults:
            pool = arrays if argument in ARRAY_ARGUMENTS else scalars
            for value_name, value in pool.items():
                run(f"{name}({argument}={value_name})", fn, **dict(defaults, **{argument: value}))
        if name in ("set_num_threads",):
            for n in (-1, 1025, 2**31, -(2**31) - 1, 2**64, 1024, 1):
                run(f"set_num_threads({n})", fn, n)
            era.set_num_threads(0)
    # Several bad arguments at once: every array argument the same bad value.
    for name, fn, defaults in numpy_api():
        array_args = [a for a in defaults if a in ARRAY_ARGUMENTS]
        if len(array_args) < 2:
            continue
        for value_name, value in arrays.items():
            run(f"{name}(all arrays={value_name})", fn, **dict(defaults, **{a: value for a in array_args}))
    # Sizes that no array can have.
    h = np.ones(3, np.float32)
    ids = np.zeros(3, np.int64)
    for responses in (-1, 0, 2**50, 2**62, 2**63 - 1, 2**63, 2**64, -(2**63)):
        run(f"llm_response_entropy(num_responses={responses})", era.llm_response_entropy, h, ids, responses)
    for classes in (-(2**63), -1, 0, 1, 2, 2**31, 2**62, 2**63 - 1, 2**63, 2**100):
        for fn in (era.discrete_floor, era.discrete_infimum, era.discrete_constant):
            for mode in ("exact", "tight", "reference"):
                run(f"{fn.__name__}(classes={classes}, {mode})", fn, classes, 0.5, mode=mode)
    # Extreme but legal parameters.
    x = np.random.default_rng(2).normal(size=(4, 6))
    for tau in (math.exp(1 + 1e-6), 1e300, 1.7e308):
        for mode in ("exact", "tight", "reference"):
            for target in (-1e308, -700.0, 0.0, 1e-300, 0.5, 1.7, 1e308):
                run(f"discrete_forward(tau={tau}, {mode}, {target})", era.discrete_forward, x, target, tau=tau,
                    mode=mode)
                run(f"discrete_backward(tau={tau}, {mode}, {target})", era.discrete_backward, x, x, target, tau=tau,
                    mode=mode)
    for lo, hi in ((-1e308, 1e308), (-1e308, 1e308 * 1.7), (0.0, 5e-324), (1e308, 1.7e308), (-1.0, 1.0)):
        for log_std in (-1e308, -745.0, 0.0, 700.0, 1e308):
            for loc in (-1e308, 0.0, 1e16, 1e308):
                run(f"truncated_normal_entropy({loc}, {log_std}, {lo}, {hi})", era.truncated_normal_entropy,
                    np.array([loc]), np.array([log_std]), lo, hi)
                run(f"tanh_gaussian_entropy({loc}, {log_std})", era.tanh_gaussian_entropy, np.array([loc]),
                    np.array([log_std]))
    extremes = [(-1e308, 1e308, 0.0, 0.0), (-8.0, 1e308, 1e308, -1e308), (-1e308, -1e307, 0.0, -1e308),
                (-8.0, 0.0, 0.0, -1e308), (-8.0, 3.4e38, 0.0, -3.0), (-8.0, 1e39, 0.0, -3.0)]
    for low, high, residual, target in extremes:
        for dtype in (np.float32, np.float64):
            s = x.astype(dtype)
            run(f"continuous_forward({low}, {high}, {residual}, {target}, {dtype.__name__})", era.continuous_forward,
                s, target, residual=residual, log_std_min=low, log_std_max=high)
            run(f"continuous_backward({low}, {high})", era.continuous_backward, s, s, target, residual=residual,
                log_std_min=low, log_std_max=high)
            run(f"check_continuous({low}, {high})", era.check_continuous, s, target, residual=residual,
                log_std_min=low, log_std_max=high, mean=s)


# ---------------------------------------------------------------------------------------
# The raw module era._era


def raw_module(run):
    import numpy as np

    from era import _era

    sizes = [(3, 4), (0, 4), (0, 0), (4, 0), (-1, 4), (3, -1), (-(2**63), 1), (2**62, 4), (2**63 - 1, 2**63 - 1),
             (2**31, 2**31 + 1), (1, 2**62), (2**32, 2**32), (2**63 - 1, 1), (1, 2**63 - 1)]
    feasible = 10**6

    def array(kind, count, variant):
        """An array of `kind` ('f64', 'f32', 'i64', 'u16') meant to hold `count` elements."""
        dtype = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "u16": np.uint16}[kind]
        ok = 0 <= count <= feasible
        if variant == "exact":
            return np.zeros(count, dtype) if ok else None
        if variant == "none":
            return None
        if variant == "empty":
            return np.zeros(0, dtype)
        if variant == "short":
            return np.zeros(max(count - 1, 0), dtype) if ok else np.zeros(1, dtype)
        if variant == "long":
            return np.zeros(count + 1, dtype) if ok else np.zeros(2, dtype)
        if variant == "0-d":
            return np.array(0, dtype)
        if variant == "read-only":
            a = np.zeros(count if ok else 1, dtype)
            a.flags.writeable = False
            return a
        if variant == "strided":
            return np.zeros(2 * count if ok else 2, dtype)[::2]
        if variant == "wrong dtype":
            return np.zeros(count if ok else 1, np.float64 if kind != "f64" else np.float32)
        if variant == "big-endian":
            return np.zeros(count if ok else 1, np.dtype(dtype).newbyteorder(">"))
        if variant == "list":
            return [0.0] * (count if ok else 1)
        if variant == "2-d":
            return np.zeros((1, count) if ok else (1, 1), dtype)
        if variant == "nan":
            a = np.zeros(count if ok else 1, dtype)
            if a.size and kind in ("f64", "f32"):
                a[-1] = np.nan
            if a.size and kind == "i64":
                a[-1] = -(2**63)
            if a.size and kind == "u16":
                a[-1] = 0x7FC0  # a bfloat16 NaN
            return a
        raise AssertionError(variant)

    variants = ["exact", "none", "empty", "short", "long", "0-d", "read-only", "strided", "wrong dtype", "big-endian",
                "list", "2-d", "nan"]

    # Each kernel: its scalar parameters and its arrays as (kind, count of rows*cols 'n', rows 'r',
    # or 'c' for the responses) - the float kind 'F' follows the call's dtype.
    kernels = {
        "softmax_entropy": ([], [("F", "n"), ("F", "r")]),
        "gaussian_entropy": ([], [("F", "n"), ("F", "r")]),
        "tanh_gaussian_entropy": ([], [("F", "n"), ("F", "n"), ("F", "r")]),
        "truncated_normal_entropy": ([], [("F", "n"), ("F", "n"), "lohi", ("F", "r")]),
        "continuous_forward": ([-3.0, 0.0, -8.0, 0.0], [("F", "n"), ("F", "n")]),
        "continuous_backward": ([-3.0, 0.0, -8.0, 0.0], [("F", "n"), ("F", "n"), ("F", "n"), ("F", "r")]),
        "discrete_forward": ([0.5, 4.0, 0], [("F", "n"), ("F", "n")]),
        "discrete_backward": ([0.5, 4.0, 1], [("F", "n"), ("F", "n"), ("F", "n")]),
        "token_entropy": ([], [("F", "n"), ("F", "r")]),
        "llm_logprob_forward": ([], [("F32", "n"), ("i64", "r"), ("f32", "r"), ("f32", "r"), ("f32", "r")]),
        "llm_logprob_backward": ([], [("F32", "n"), ("i64", "r"), ("f32", "r"), ("f32", "r"), ("F32", "n")]),
        "check_discrete": ([0.5, 4.0, 2], [("F", "n"), "tol"]),
        "check_continuous": ([-3.0, 0.0, -8.0, 0.0], [("F", "n"), ("F", "n"), "tol"]),
    }

    def build(name, rows, cols, dtype, variant_of):
        scalars, spec = kernels[name]
        n = rows * cols if rows >= 0 and cols >= 0 else -1
        args = list(scalars) + [rows, cols]
        for index, item in enumerate(spec):
            if item == "lohi":
                args += [-1.0, 1.0]
                continue
            if item == "tol":
                args.append(1e-9)
                continue
            kind, count = item
            if kind == "F":
                kind = dtype
            elif kind == "F32":
                kind = "u16" if dtype == "u16" else "f32"
            count = {"n": n, "r": rows}[count]
            args.append(array(kind, count, variant_of(index)))
        return args

    for name in kernels:
        fn = getattr(_era, name)
        if name.startswith("llm"):
            dtypes = ["f32", "u16"]
        else:
            dtypes = ["f64", "f32"] + (["u16"] if name == "token_entropy" else [])
        for dtype in dtypes:
            for rows, cols in sizes:
                for variant in variants:
                    # every array in the same variant, then each array alone in it
                    run(f"_era.{name}({rows}, {cols}, {dtype}, all {variant})", fn,
                        *build(name, rows, cols, dtype, lambda i, v=variant: v))
                    for position in range(len(kernels[name][1])):
                        run(f"_era.{name}({rows}, {cols}, {dtype}, #{position} {variant})", fn,
                            *build(name, rows, cols, dtype, lambda i, p=position, v=variant: v if i == p else "exact"))

    # The fused linear heads: three sizes (tokens or rows, dim, vocab or classes); arrays as
    # (kind, count): 'h' rows*dim, 'w' vocab*dim, 't' rows, 'v' vocab, '1' one element.
    linear_sizes = [(3, 4, 5), (0, 4, 5), (3, 0, 5), (3, 4, 0), (3, 4, 1), (0, 0, 0), (-1, 4, 5), (3, -1, 5),
                    (3, 4, -1), (2**31, 1, 2), (1, 2**31, 2), (1, 1, 2**31), (2**62, 4, 5), (3, 2**62, 5),
                    (3, 4, 2**62), (2**63 - 1, 2**63 - 1, 2**63 - 1), (-(2**63), 1, 1), (2**32, 2**32, 1)]
    linear = {
        "llm_linear_logprob_forward": ([], ["h", "w", "it", "t", "t", "t"]),
        "llm_linear_logprob_backward": ([], ["h", "w", "it", "t", "t", "h", "w"]),
        "linear_discrete_ce": ([0.5, 4.0, 0], ["h", "w", "v", "it", "1", "h", "w", "v"]),
    }

    def build_linear(name, rows, dim, vocab, variant_of):
        scalars, spec = linear[name]

        def count(a, b):
            return a * b if a >= 0 and b >= 0 else -1

        counts = {"h": count(rows, dim), "w": count(vocab, dim), "t": rows, "v": vocab, "1": 1}
        args = list(scalars) + [rows, dim, vocab]
        for index, item in enumerate(spec):
            kind = "i64" if item.startswith("i") else "f32"
            args.append(array(kind, counts[item[-1]], variant_of(index)))
        return args

    for name in linear:
        fn = getattr(_era, name)
        for rows, dim, vocab in linear_sizes:
            for variant in variants:
                run(f"_era.{name}({rows}, {dim}, {vocab}, all {variant})", fn,
                    *build_linear(name, rows, dim, vocab, lambda i, v=variant: v))
                for position in range(len(linear[name][1])):
                    one = (lambda i, p=position, v=variant: v if i == p else "exact")
                    run(f"_era.{name}({rows}, {dim}, {vocab}, #{position} {variant})", fn,
                        *build_linear(name, rows, dim, vocab, one))
    for labels in ([5, 0, 0], [-1, 0, 0], [2**62, 0, 0], [-(2**63), 0, 0]):
        h, w = np.ones(12, np.float32), np.ones(20, np.float32)
        lab = np.array(labels, np.int64)
        run(f"_era.llm_linear_logprob_forward(labels={labels})", _era.llm_linear_logprob_forward, 3, 4, 5, h, w, lab,
            None, np.zeros(3, np.float32), None)
        run(f"_era.llm_linear_logprob_backward(labels={labels})", _era.llm_linear_logprob_backward, 3, 4, 5, h, w, lab,
            None, np.ones(3, np.float32), np.zeros(12, np.float32), np.zeros(20, np.float32))
        run(f"_era.linear_discrete_ce(labels={labels})", _era.linear_discrete_ce, 0.5, 4.0, 0, 3, 4, 5, h, w, None,
            lab, np.zeros(1, np.float32), np.zeros(12, np.float32), np.zeros(20, np.float32), None)

    # In place (allowed) and partially overlapping buffers (not allowed, but must not crash).
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32):
        y = rng.normal(size=4000).astype(dtype)
        run("discrete_forward in place", _era.discrete_forward, 0.5, 4.0, 0, 100, 40, y, y)
        y = rng.normal(size=4000).astype(dtype)
        run("discrete_forward overlapping", _era.discrete_forward, 0.5, 4.0, 0, 99, 40, y[:3960], y[40:])
        y = rng.normal(size=4000).astype(dtype)
        run("continuous_forward overlapping", _era.continuous_forward, -3.0, 0.0, -8.0, 0.0, 99, 40, y[40:], y[:3960])
        y = rng.normal(size=4000).astype(dtype)
        run("continuous_backward overlapping", _era.continuous_backward, -3.0, 0.0, -8.0, 0.0, 99, 40, y[:3960],
            y[20:3980], y[40:], y[:99])
        y = rng.normal(size=4000).astype(dtype)
        run("softmax_entropy overlapping", _era.softmax_entropy, 100, 40, y, y[:100])
    z = rng.normal(size=(50, 8)).astype(np.float32).reshape(-1)
    run("llm_logprob_backward in place", _era.llm_logprob_backward, 50, 8, z, np.zeros(50, np.int64), None,
        np.ones(50, np.float32), z)

    # Scalar parameters: modes, class counts and thresholds out of every range, ints too big.
    ints = [-1, 0, 1, 2, 3, 2**31 - 1, -(2**31), 2**31, 2**63, -(2**63) - 1]
    doubles = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e308, -1e308, math.e]
    x = np.zeros(12)
    out = np.zeros(12)
    for mode in ints:
        run(f"_era.discrete_forward(mode={mode})", _era.discrete_forward, 0.5, 4.0, mode, 3, 4, x, out)
        for classes in ints:
            for fn in (_era.discrete_floor, _era.discrete_infimum, _era.discrete_constant):
                run(f"_era.{fn.__name__}(mode={mode}, classes={classes})", fn, 0.5, 4.0, mode, classes)
    for value in doubles:
        run(f"_era.discrete_forward(target={value})", _era.discrete_forward, value, 4.0, 0, 3, 4, x, out)
        run(f"_era.discrete_forward(tau={value})", _era.discrete_forward, 0.5, value, 0, 3, 4, x, out)
        for position in range(4):
            params = [-3.0, 0.0, -8.0, 0.0]
            params[position] = value
            run(f"_era.continuous_forward(param {position}={value})", _era.continuous_forward, *params, 3, 4, x, out)
        run(f"_era.truncated_normal_entropy(lo={value})", _era.truncated_normal_entropy, 3, 4, x, x, value, 1.0,
            np.zeros(3))
        run(f"_era.check_discrete(tol={value})", _era.check_discrete, 0.5, 4.0, 0, 3, 4, x, value)
        for position in range(4):
            params = [0.45, 3.0, 2.0, 0.2]
            params[position] = value
            run(f"_era.llm_response_entropy(param {position}={value})", _era.llm_response_entropy, *params, True, 3,
                np.ones(3, np.float32), np.zeros(3, np.int64), 1, np.zeros(1, np.float32))
            run(f"_era.llm_scales(param {position}={value})", _era.llm_scales, *params, False, 3,
                np.ones(1, np.float32), 1, np.zeros(3, np.int64), np.ones(3, np.float32), np.zeros(3, np.float32),
                np.zeros(3, np.float32))
    for responses in ints + [2**62]:
        run(f"_era.llm_response_entropy(responses={responses})", _era.llm_response_entropy, 0.45, 3.0, 2.0, 0.2, True,
            3, np.ones(3, np.float32), np.zeros(3, np.int64), responses, None)
        run(f"_era.llm_scales(responses={responses})", _era.llm_scales, 0.45, 3.0, 2.0, 0.2, True, 3, None, responses,
            np.zeros(3, np.int64), np.ones(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32))
    for ids in ([5, 0, 0], [-2, 0, 0], [2**62, 0, 0], [-(2**63), 0, 0]):
        run(f"_era.llm_scales(ids={ids})", _era.llm_scales, 0.45, 3.0, 2.0, 0.2, True, 3, np.ones(1, np.float32), 1,
            np.array(ids, np.int64), np.ones(3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32))
        run(f"_era.llm_response_entropy(ids={ids})", _era.llm_response_entropy, 0.45, 3.0, 2.0, 0.2, True, 3,
            np.ones(3, np.float32), np.array(ids, np.int64), 1, np.zeros(1, np.float32))
    for labels in ([4, 0, 0], [-1, 0, 0], [2**62, 0, 0], [-(2**63), 0, 0]):
        run(f"_era.llm_logprob_forward(labels={labels})", _era.llm_logprob_forward, 3, 4, np.zeros(12, np.float32),
            np.array(labels, np.int64), None, np.zeros(3, np.float32), None)
        run(f"_era.llm_logprob_backward(labels={labels})", _era.llm_logprob_backward, 3, 4, np.zeros(12, np.float32),
            np.array(labels, np.int64), None, np.ones(3, np.float32), np.zeros(12, np.float32))
    for n in ints:
        run(f"_era.set_num_threads({n})", _era.set_num_threads, n)
        run(f"_era.status_string({n})", _era.status_string, n)
    _era.set_num_threads(0)
    for fn in ("abi_version", "version_string", "get_num_threads", "continuous_defaults", "discrete_defaults",
               "llm_defaults"):
        run(f"_era.{fn}()", getattr(_era, fn))
        run(f"_era.{fn}(extra)", getattr(_era, fn), 1)
    # Wrong argument counts and types for every entry point.
    for name in list(kernels) + list(linear) + ["discrete_floor", "discrete_infimum", "discrete_constant",
                                                "llm_response_entropy", "llm_scales"]:
        fn = getattr(_era, name)
        run(f"_era.{name}()", fn)
        run(f"_era.{name}(None x 12)", fn, *([None] * 12))
        run(f"_era.{name}('x' x 12)", fn, *(["x"] * 12))


# ---------------------------------------------------------------------------------------
# era.testing and the CLI


def cli_and_testing(run):
    import io
    import tempfile
    import zipfile

    import numpy as np

    import era.testing
    from era.cli import main

    arrays = bad_arrays()
    for value_name, value in arrays.items():
        for kind in ("discrete", "continuous", "other"):
            run(f"assert_entropy_bound({value_name}, {kind})", era.testing.assert_entropy_bound, value, kind=kind,
                target_entropy=0.5)
            run(f"assert_entropy_bound(mean={value_name})", era.testing.assert_entropy_bound, np.zeros((3, 4)),
                kind="continuous", target_entropy=-3.0, mean=value)
    report = era.check_discrete(np.zeros((3, 4)), 0.5)
    for value_name, value in arrays.items():
        run(f"violating_rows({value_name})", era.testing.violating_rows, value, report, kind="discrete")
        run(f"violation_lines({value_name})", era.testing.violation_lines, value, report, kind="discrete")

    folder = tempfile.mkdtemp()
    files = {}
    for value_name in ("float64", "float32", "int64", "nan", "empty rows", "empty row length", "0-d float64",
                       "object floats", "strings", "structured", "complex", "big-endian float64", "huge 1e308"):
        path = os.path.join(folder, f"{len(files)}.npz")
        try:
            np.savez(path, logits=arrays[value_name], log_std=arrays[value_name])
        except Exception:  # noqa: BLE001 - some cannot be saved at all
            continue
        files[value_name] = path
    garbage = os.path.join(folder, "garbage.npz")
    with open(garbage, "wb") as handle:
        handle.write(b"PK\x03\x04 not really a zip")
    files["garbage"] = garbage
    # an .npz whose deflate stream is damaged, and .npy headers claiming a 36 TiB array
    damaged = os.path.join(folder, "damaged.npz")
    np.savez_compressed(damaged, logits=np.round(np.random.default_rng(5).normal(size=(40, 50)), 1))
    raw = bytearray(open(damaged, "rb").read())
    middle = len(raw) // 3
    raw[middle:middle + 16] = bytes(b ^ 0xFF for b in raw[middle:middle + 16])
    with open(damaged, "wb") as handle:
        handle.write(bytes(raw))
    files["damaged deflate"] = damaged
    member = io.BytesIO()
    np.save(member, np.zeros((6, 50)))
    member = member.getvalue().replace(b"(6, 50), }" + b" " * 10, b"(824633720832, 6), }")  # same length
    assert b"824633720832" in member
    claimed = os.path.join(folder, "claimed.npy")
    with open(claimed, "wb") as handle:
        handle.write(member)
    files["claimed 36 TiB npy"] = claimed
    with zipfile.ZipFile(os.path.join(folder, "claimed.npz"), "w") as archive:
        archive.writestr("logits.npy", member)
    files["claimed 36 TiB npz"] = os.path.join(folder, "claimed.npz")
    files["missing"] = os.path.join(folder, "missing.npz")
    files["folder"] = folder
    for value_name, path in files.items():
        for kind in ("discrete", "continuous"):
            for extra in ([], ["--json"], ["--key", "nope"], ["--mean-key", "logits"], ["--tol", "-1"],
                          ["--tau", "2"], ["--mode", "x"], ["--max-rows", "-5"], ["--target-entropy", "nan"]):
                run(f"cli verify {value_name} {kind} {extra}", main,
                    ["verify", path, "--kind", kind, "--target-entropy", "0.5"] + extra)
    for argv in ([], ["--version"], ["verify"], ["bogus"], ["verify", garbage, "--kind", "x", "--target-entropy", "1"],
                 ["verify", garbage, "--kind", "discrete", "--target-entropy", "x"]):
        run(f"cli {argv}", main, argv)


# ---------------------------------------------------------------------------------------
# Threads: bad and good calls from several Python threads at once (the GIL is released)


def threads(run):
    import numpy as np

    import era

    rng = np.random.default_rng(4)
    big = rng.normal(size=(20000, 16))
    bad = big.copy()
    bad[-1, -1] = np.nan

    def worker(seed):
        local = np.random.default_rng(seed)
        for i in range(40):
            choice = local.integers(0, 6)
            if choice == 0:
                run(f"thread {seed} discrete_forward", era.discrete_forward, big, 1.0)
            elif choice == 1:
                run(f"thread {seed} discrete_forward nan", era.discrete_forward, bad, 1.0)
            elif choice == 2:
                run(f"thread {seed} set_num_threads", era.set_num_threads, int(local.integers(-2, 1030)))
            elif choice == 3:
                run(f"thread {seed} softmax_entropy nan", era.softmax_entropy, bad)
            elif choice == 4:
                run(f"thread {seed} continuous_forward", era.continuous_forward, big, -20.0)
            else:
                run(f"thread {seed} llm_logprob_forward", era.llm_logprob_forward, big.astype(np.float32),
                    local.integers(-1, 17, size=20000))

    pool = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    era.set_num_threads(1024)
    run("1024 threads on a large call", era.discrete_forward, big, 1.0)
    era.set_num_threads(0)


# ---------------------------------------------------------------------------------------
# era.torch


def torch_level(run):
    import numpy as np
    import torch

    import era.torch as et

    arrays = bad_arrays()
    tensors = {}
    for value_name, value in arrays.items():
        try:
            tensors[value_name] = torch.as_tensor(value) if value is not None else None
        except Exception:  # noqa: BLE001 - not every value is a tensor
            tensors[value_name] = value
    tensors["bfloat16 tensor"] = torch.randn(3, 4).bfloat16()
    tensors["requires grad"] = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    tensors["meta device"] = torch.empty(3, 4, device="meta")
    tensors["expanded (stride 0)"] = torch.randn(1, 4).expand(3, 4)
    tensors["non-contiguous"] = torch.randn(4, 3).t()
    good = torch.randn(3, 4, dtype=torch.float64)
    good32 = good.float()
    labels = torch.tensor([0, 1, 2])
    functions = {
        "discrete_era": lambda t, b: et.discrete_era(t, 0.5, backend=b),
        "continuous_era": lambda t, b: et.continuous_era(t, -3.0, backend=b),
        "continuous_era residual": lambda t, b: et.continuous_era(good, -3.0, residual=t, backend=b),
        "softmax_entropy": lambda t, b: et.softmax_entropy(t, backend=b),
        "gaussian_entropy": lambda t, b: et.gaussian_entropy(t, backend=b),
        "token_entropy": lambda t, b: et.token_entropy(t, backend=b),
        "tanh_gaussian_entropy": lambda t, b: et.tanh_gaussian_entropy(t, t),
        "truncated_normal_entropy": lambda t, b: et.truncated_normal_entropy(t, t),
        "llm_logprob logits": lambda t, b: et.llm_logprob(t, labels, backend=b),
        "llm_logprob labels": lambda t, b: et.llm_logprob(good32, t, backend=b),
        "llm_logprob scale": lambda t, b: et.llm_logprob(good32, labels, t, backend=b),
        "llm_era logits": lambda t, b: et.llm_era(t, labels, torch.ones(3), response_ids=labels, backend=b),
        "llm_era labels": lambda t, b: et.llm_era(good32, t, torch.ones(3), response_ids=labels, backend=b),
        "llm_era advantages": lambda t, b: et.llm_era(good32, labels, t, response_ids=labels, backend=b),
        "llm_era ids": lambda t, b: et.llm_era(good32, labels, torch.ones(3), response_ids=t, backend=b),
        "llm_era mask": lambda t, b: et.llm_era(good32.reshape(1, 3, 4), labels.reshape(1, 3), torch.ones(1),
                                                response_mask=t, backend=b),
    }
    for function_name, fn in functions.items():
        for backend in ("auto", "libera", "native", "bogus"):
            for value_name, value in tensors.items():
                run(f"torch {function_name}({value_name}, {backend})", fn, value, backend)

    # Gradients: bad upstream gradients through the libera and native backward passes.
    for backend in ("libera", "native"):
        for upstream_name in ("nan", "inf", "huge 1e308", "float64"):
            upstream = torch.as_tensor(arrays[upstream_name])

            def backward(kind, backend=backend, upstream=upstream):
                x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
                out = et.discrete_era(x, 0.5, backend=backend) if kind == "discrete" else et.continuous_era(
                    x, -3.0, residual=torch.tensor(0.2, requires_grad=True), backend=backend)
                out.backward(upstream)
                return x.grad

            run(f"torch discrete backward({upstream_name}, {backend})", backward, "discrete")
            run(f"torch continuous backward({upstream_name}, {backend})", backward, "continuous")

            def logprob_backward(backend=backend, upstream=upstream):
                x = torch.randn(3, 4, requires_grad=True)
                lp, _ = et.llm_logprob(x, labels, backend=backend)
                lp.backward(upstream.reshape(-1)[:3].float())
                return x.grad

            run(f"torch llm_logprob backward({upstream_name}, {backend})", logprob_backward)

    # Modules with bad settings, then bad inputs.
    scalars = scalar_values()
    for value_name, value in scalars.items():
        run(f"ERAContinuous(action_dim={value_name})", et.ERAContinuous, value)
        run(f"ERAContinuous(residual={value_name})", et.ERAContinuous, 4, residual=value)
        run(f"ERAContinuous(target={value_name})", lambda v=value: et.ERAContinuous(4, v)(good, good))
        run(f"ERADiscrete(target={value_name})", lambda v=value: et.ERADiscrete(v)(good))
        run(f"ERADiscrete(tau={value_name})", lambda v=value: et.ERADiscrete(0.5, tau=v)(good))
        run(f"ERADiscrete(mode={value_name})", et.ERADiscrete, 0.5, mode=value)
        run(f"LLMERA(k={value_name})", et.LLMERA, k=value)
        run(f"LLMERA(top_fraction={value_name})", et.LLMERA, top_fraction=value)
        run(f"llm_era(num_responses={value_name})", et.llm_era, good32, labels, torch.ones(3), response_ids=labels,
            num_responses=value)
    for num_responses in (2**50, 2**63, -5):
        for backend in ("libera", "native"):
            run(f"llm_era(num_responses={num_responses}, {backend})", et.llm_era, good32, labels, torch.ones(3),
                response_ids=labels, num_responses=num_responses, backend=backend)
    module = et.ERAContinuous(4, learn_residual=True)
    for value_name, value in tensors.items():
        run(f"ERAContinuous.forward({value_name})", module, good, value)
        run(f"ERAContinuous.residual_loss({value_name})", module.residual_loss, value, value)
        run(f"ERAContinuous.residual_loss({value_name}, truncated)", module.residual_loss, value, value,
            "truncated_normal")
    run("ERAContinuous.residual_loss(squash=bogus)", module.residual_loss, good, good, "bogus")
    with torch.no_grad():
        module.residual.fill_(-1.0)  # an optimizer step left it negative: projected back
    run("ERAContinuous negative residual", module, good, good)
    with torch.no_grad():
        module.residual.fill_(math.nan)
    run("ERAContinuous nan residual", module, good, good)
    del np


# ---------------------------------------------------------------------------------------
# era.jax


def jax_level(run):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import era.jax as ej

    arrays = bad_arrays()
    good = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    labels = np.array([0, 1, 2], np.int32)
    functions = {
        "discrete_era": lambda a: ej.discrete_era(a, 0.5),
        "continuous_era": lambda a: ej.continuous_era(a, -3.0),
        "continuous_era residual": lambda a: ej.continuous_era(good, -3.0, a),
        "softmax_entropy": ej.softmax_entropy,
        "gaussian_entropy": ej.gaussian_entropy,
        "tanh_gaussian_entropy": lambda a: ej.tanh_gaussian_entropy(a, a),
        "truncated_normal_entropy": lambda a: ej.truncated_normal_entropy(a, a),
        "token_entropy": ej.token_entropy,
        "llm_logprob logits": lambda a: ej.llm_logprob(a, labels),
        "llm_logprob labels": lambda a: ej.llm_logprob(good, a),
        "llm_logprob scale": lambda a: ej.llm_logprob(good, labels, a),
        "llm_response_entropy": lambda a: ej.llm_response_entropy(a, labels, 3),
        "llm_response_entropy ids": lambda a: ej.llm_response_entropy(np.ones(3, np.float32), a, 3),
        "llm_scales": lambda a: ej.llm_scales(a, labels, np.ones(3, np.float32)),
        "llm_scales advantages": lambda a: ej.llm_scales(np.ones(3, np.float32), labels, a),
        "llm_era": lambda a: ej.llm_era(a, labels, np.ones(3, np.float32), response_ids=labels, num_responses=3),
    }
    for function_name, fn in functions.items():
        for value_name, value in arrays.items():
            run(f"jax {function_name}({value_name})", lambda f=fn, v=value: jax.block_until_ready(f(v)))
    # Under jit (data errors inside the callback) and vmap, on a few values each.
    for function_name in ("discrete_era", "continuous_era", "softmax_entropy", "token_entropy", "llm_logprob logits",
                          "llm_logprob labels", "llm_response_entropy ids"):
        fn = functions[function_name]
        for value_name in ("float32", "nan", "inf", "-inf", "float32 row all -inf", "labels huge", "labels -1",
                           "empty rows", "float32 max"):
            value = arrays[value_name]
            run(f"jax jit {function_name}({value_name})", lambda f=fn, v=value: jax.block_until_ready(jax.jit(f)(v)))
            run(f"jax vmap {function_name}({value_name})",
                lambda f=fn, v=value: jax.block_until_ready(jax.vmap(f)(jnp.asarray(v)[None])))
    # Gradients with bad cotangents.
    for value_name in ("nan", "inf", "huge 1e308"):
        cot = jnp.asarray(arrays[value_name], jnp.float32)
        run(f"jax grad discrete ({value_name})",
            lambda c=cot: jax.block_until_ready(jax.grad(lambda z: jnp.sum(ej.discrete_era(z, 0.5) * c))(good)))
        run(f"jax grad logprob ({value_name})",
            lambda c=cot: jax.block_until_ready(
                jax.grad(lambda z: jnp.sum(ej.llm_logprob(z, labels)[0] * c[:, 0]))(good)))
    for responses in (-1, 0, 2**50, 2**63):
        run(f"jax llm_response_entropy(R={responses})", ej.llm_response_entropy, np.ones(3, np.float32), labels,
            responses)
        run(f"jax jit llm_response_entropy(R={responses})",
            lambda r=responses: jax.block_until_ready(jax.jit(lambda h: ej.llm_response_entropy(h, labels, r))(
                np.ones(3, np.float32))))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2]))
    sys.exit("usage: test_no_crash.py --child PROGRESS_FILE (pytest runs the parent)")
