#!/usr/bin/env python3
"""libera's benchmarks: speed of libera (through C and through Python) against plain
PyTorch (eager and torch.compile), JAX jit and numpy implementations of the same math
(bench/baselines.py) and against the time numpy takes just to read the input bytes, on
identical inputs.

    python3 bench/run.py [--quick] [--only PATTERN] [--json PATH] [--lib DIR] [--threads N]

For each workload below: the inputs are made from a fixed seed; every implementation is run
once and checked against libera's Python binding (the maximum differences are printed; an
implementation that disagrees beyond the stated tolerance is not timed); then each is timed
as REPS repetitions of n calls, n chosen so that a repetition lasts at least MIN_MS, the
Python implementations in turn within each repetition (so that the machine's drift is shared
out); the median time of one call is reported. libera through C is bench/bench_c.c, compiled
here into bench/build/ against the library in --lib (default $ERA_LIB_DIR, else
.build/release), fed the same inputs through files. The torch columns come eager and under
torch.compile (compiled by the checked first call, before any timing). The tables (markdown:
times, then ratios) go to stdout, all numbers to bench/results.json.

Then the sections (SECTIONS; --only selects them by name too): the fused linear head in C
(bench_linear.c), the fused heads in torch and the LLM device path's memory (one process per
measurement, bench/torch_memory.py), and a training step of the classification example's
MLP with and without ERA, eager and compiled. bench/README.md says what each column and
section is.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import baselines  # noqa: E402
from baselines import jax, jnp, torch  # noqa: E402  (None when not installed)

if jax is not None:
    import era.jax as era_jax  # noqa: E402
    import jax_callback  # noqa: E402

try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None

BUILD_DIR = os.path.join(HERE, "build")  # the C program and the inputs it reads (gitignored)
DEFAULT_JSON = os.path.join(HERE, "results.json")
REPS, MIN_MS = 9, 50.0  # default: median of 9 repetitions of >= 50 ms each
QUICK_REPS, QUICK_MIN_MS = 3, 10.0


# ---------------------------------------------------------------------------------------
# Workloads


@dataclass(frozen=True)
class Workload:
    """One benchmark: a kernel family (kind), its shape [rows, cols] and the logits' dtype."""

    name: str
    kind: str  # "discrete", "continuous", "token_entropy", "logprob"
    rows: int
    cols: int
    dtype: str = "f32"  # "f32" or "bf16" (LLM logits)
    mode: str = "exact"  # discrete ERA: "exact", "tight" or "reference"

    @property
    def pass_name(self) -> str:
        """The pass the table reports: token entropy is a metric (forward only)."""
        return "fwd" if self.kind == "token_entropy" else "fwd+bwd"


WORKLOADS: List[Workload] = [
    Workload("discrete_256x10", "discrete", 256, 10),
    Workload("discrete_256x1000", "discrete", 256, 1000),
    Workload("discrete_4096x10", "discrete", 4096, 10),
    Workload("discrete_64x32000", "discrete", 64, 32000),
    Workload("discrete_reference_256x1000", "discrete", 256, 1000, mode="reference"),
    Workload("discrete_reference_4096x10", "discrete", 4096, 10, mode="reference"),
    Workload("discrete_tight_256x1000", "discrete", 256, 1000, mode="tight"),
    Workload("discrete_tight_4096x10", "discrete", 4096, 10, mode="tight"),
    Workload("continuous_256x6", "continuous", 256, 6),
    Workload("continuous_256x21", "continuous", 256, 21),
    Workload("continuous_4096x61", "continuous", 4096, 61),
    Workload("token_entropy_64x151936_f32", "token_entropy", 64, 151936),
    Workload("token_entropy_64x151936_bf16", "token_entropy", 64, 151936, "bf16"),
    Workload("logprob_64x151936_f32", "logprob", 64, 151936),
    Workload("logprob_64x151936_bf16", "logprob", 64, 151936, "bf16"),
]

# The fused linear + log-prob head (era_llm_linear_logprob_*, docs/linear-heads.md) is timed
# apart, by bench/bench_linear.c, against the unfused path in C (sgemm into T x V logits, then
# era_llm_logprob_*): time and peak extra memory, one process per mode. (tokens, dim, vocab):
LINEAR_SIZES = [(512, 256, 32000), (256, 512, 151936)]
LINEAR_MODES = ["fused_fwd", "unfused_fwd", "fused_bwd", "unfused_bwd"]


def fused_linear_head(lib_dir: str, reps: int, threads: Optional[int]) -> List[dict]:
    """Builds and runs bench_linear for every size and mode; returns its JSON records."""
    exe = os.path.join(BUILD_DIR, "bench_linear")
    cc = os.environ.get("CC", "cc")
    blas = subprocess.run(["pkg-config", "--cflags", "--libs", "openblas"], capture_output=True, text=True,
                          check=True).stdout.split()
    subprocess.run([cc, "-O2", "-std=c99", "-I", os.path.join(ROOT, "include"), os.path.join(HERE, "bench_linear.c"),
                    "-o", exe, "-L", lib_dir, "-lera", *blas, "-lm", f"-Wl,-rpath,{lib_dir}"], check=True)
    env = dict(os.environ)
    if threads is not None:
        env["ERA_BENCH_THREADS"] = str(threads)
    records = []
    for tokens, dim, vocab in LINEAR_SIZES:
        for mode in LINEAR_MODES:
            proc = subprocess.run([exe, mode, str(tokens), str(dim), str(vocab), str(min(reps, 3))],
                                  capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"bench_linear {mode} failed: {proc.stdout.strip()} {proc.stderr.strip()}")
            records.append(json.loads(proc.stdout))
            print(f"    {mode} T={tokens} d={dim} V={vocab}: {records[-1]['seconds'] * 1e3:.0f} ms, "
                  f"peak +{records[-1]['peak_mib']:.1f} MiB", flush=True)
    return records


def linear_table(records: List[dict]) -> str:
    lines = ["| tokens x dim x vocab | pass | fused ms | unfused ms | unfused/fused | fused peak MiB | unfused peak MiB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    by = {(r["tokens"], r["dim"], r["vocab"], r["mode"]): r for r in records}
    for tokens, dim, vocab in LINEAR_SIZES:
        for kind, name in (("fwd", "forward"), ("bwd", "backward")):
            f, u = by[(tokens, dim, vocab, f"fused_{kind}")], by[(tokens, dim, vocab, f"unfused_{kind}")]
            lines.append(f"| {tokens} x {dim} x {vocab} | {name} | {f['seconds'] * 1e3:.0f} | {u['seconds'] * 1e3:.0f} | "
                         f"{u['seconds'] / f['seconds']:.2f} | {f['peak_mib']:.1f} | {u['peak_mib']:.1f} |")
    return "\n".join(lines)

# Parameters shared by the workloads (docs/math.md).
TAU = 4.0
LOG_STD_MIN, LOG_STD_MAX, RESIDUAL = -8.0, 0.0, 0.0
LOGIT_SCALES = (0.5, 1.0, 2.0)


DISCRETE_MODES = ("exact", "tight", "reference")  # era.h's ERA_DISCRETE_* values, in order


def discrete_target(classes: int) -> float:
    """Mid-range of the exact mode's feasible interval [1 + log(up), 1 + log(D*up)]."""
    up = math.log(TAU) / TAU
    return 1 + math.log(up) + 0.5 * math.log(classes)


def continuous_target(dim: int) -> float:
    """SAC-ERA's default target, -0.5 * D."""
    return -0.5 * dim


def params_of(w: Workload) -> dict:
    if w.kind == "discrete":
        return dict(target_entropy=discrete_target(w.cols), tau=TAU, mode=w.mode)
    if w.kind == "continuous":
        return dict(target_entropy=continuous_target(w.cols), residual=RESIDUAL, log_std_min=LOG_STD_MIN,
                    log_std_max=LOG_STD_MAX)
    if w.kind == "logprob":
        return dict(logit_scales=list(LOGIT_SCALES))
    return {}


def make_inputs(w: Workload) -> Dict[str, np.ndarray]:
    """The workload's inputs from a seed fixed by kind and shape (the bf16 rows get the
    float32 rows' logits, rounded)."""
    rng = np.random.default_rng(zlib.crc32(f"{w.kind} {w.rows}x{w.cols}".encode()))
    shape = (w.rows, w.cols)
    if w.kind in ("discrete", "continuous"):
        spread = 2.0 if w.kind == "discrete" else 1.0
        return dict(x=rng.standard_normal(shape, dtype=np.float32) * np.float32(spread),
                    g=rng.standard_normal(shape, dtype=np.float32))
    x = rng.standard_normal(shape, dtype=np.float32) * np.float32(4.0)
    if w.dtype == "bf16":
        x = x.astype(ml_dtypes.bfloat16)
    if w.kind == "token_entropy":
        return dict(x=x)
    return dict(x=x,
                labels=rng.integers(0, w.cols, w.rows, dtype=np.int64),
                scale=rng.choice(np.array(LOGIT_SCALES, np.float32), w.rows),
                glp=rng.standard_normal(w.rows, dtype=np.float32))


def floor_arrays(w: Workload, inputs) -> List[np.ndarray]:
    """The bytes the fastest possible pass must read: the logits, plus the upstream gradient
    (and labels and scales) when the pass has a backward."""
    if w.kind == "token_entropy":
        return [inputs["x"]]
    if w.kind == "logprob":
        return [inputs[k] for k in ("x", "labels", "scale", "glp")]
    return [inputs["x"], inputs["g"]]


# Tolerated difference from libera's Python binding, relative to the largest magnitude of
# each output: float32 compute in the frameworks against libera's double accumulation; a
# bfloat16 gradient may differ by one bfloat16 rounding (2^-8 relative).
TOLERANCE = {"f32": 1e-4, "bf16": 1e-2}


# ---------------------------------------------------------------------------------------
# Implementations: for each kind, runners (no arguments, return the outputs by name)


def _torch_tensor(a: np.ndarray):
    if ml_dtypes is not None and a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _jax_fwd_bwd(f, argnums=(0,)):
    """jit of (forward, vjp of the forward with cotangent ct) for f(*args)."""

    def fwd_bwd(ct, *args):
        out, vjp = jax.vjp(lambda *diff: f(*_merge(args, argnums, diff)), *[args[i] for i in argnums])
        return out, vjp(ct)

    return jax.jit(fwd_bwd)


def _merge(args, argnums, diff):
    args = list(args)
    for i, d in zip(argnums, diff):
        args[i] = d
    return args


def _blocked(f):
    def run(*args):
        return jax.block_until_ready(f(*args))

    return run


def _compiled(f):
    """torch.compile of f as the compiled columns use it: default mode (inductor), static
    shapes, the whole function one graph (a graph break is an error, reported as such)."""
    return torch.compile(f, dynamic=False, fullgraph=True)


def _torch_columns(runners: dict, torch_runner, era_forward, native_forward, base_forward) -> None:
    """The torch columns of a workload: era.torch (libera), era.torch.native and the plain
    baseline, each eager and under torch.compile; torch_runner(forward) makes a runner."""
    if era_forward is not None:
        runners["era.torch"] = torch_runner(era_forward)
        runners["era.torch compiled"] = torch_runner(_compiled(era_forward))
        runners["era.torch.native"] = torch_runner(native_forward)
        runners["era.torch.native compiled"] = torch_runner(_compiled(native_forward))
    runners["torch eager"] = torch_runner(base_forward)
    runners["torch.compile"] = torch_runner(_compiled(base_forward))


def _jax_columns(runners: dict, era_forward, callback_forward, args, names, argnums=(0,)) -> None:
    """The era.jax columns of a workload: era.jax (XLA FFI custom calls into libera) and the
    previous release's pure_callback path (jax_callback.py), forward and jax.vjp in one jit,
    as the JAX jit column; `args` are (cotangent, inputs...), `names` the outputs' keys."""
    for column, forward in (("era.jax", era_forward), ("era.jax callback", callback_forward)):
        f = _blocked(_jax_fwd_bwd(forward, argnums=argnums))

        def run(f=f):
            out, grads = f(*args)
            return dict(zip(names, (out,) + tuple(grads)))

        runners[column] = run


def build_discrete(w, inp, era, et) -> Dict[str, Callable[[], dict]]:
    p = params_of(w)
    c = era.discrete_constant(w.cols, p["target_entropy"], tau=TAU, mode="tight") if w.mode == "tight" else None
    a, b = baselines.discrete_slope_offset(w.cols, p["target_entropy"], TAU, c)
    x, g = inp["x"], inp["g"]
    runners = {}

    def libera_py():
        return dict(out=era.discrete_forward(x, **p), grad=era.discrete_backward(x, g, **p))

    runners["libera-Py"] = libera_py
    if torch is not None:
        xt, gt = _torch_tensor(x).requires_grad_(), _torch_tensor(g)

        def torch_runner(forward):
            def run():
                out = forward(xt)
                (grad,) = torch.autograd.grad(out, xt, gt)
                return dict(out=out.detach(), grad=grad)

            return run

        _torch_columns(runners, torch_runner,
                       None if et is None else (lambda z: et.discrete_era(z, **p)),
                       None if et is None else (lambda z: et.discrete_era(z, **p, backend="native")),
                       lambda z: baselines.torch_discrete(z, a, b, TAU, w.mode))
    if jax is not None:
        f = _blocked(_jax_fwd_bwd(lambda z: baselines.jax_discrete(z, a, b, TAU, w.mode)))
        xj, gj = jnp.asarray(x), jnp.asarray(g)

        def jax_run():
            out, (grad,) = f(gj, xj)
            return dict(out=out, grad=grad)

        runners["JAX jit"] = jax_run
        params = tuple(sorted(p.items()))
        _jax_columns(runners, (lambda z: era_jax.discrete_era(z, **p)),
                     (lambda z: jax_callback.discrete_era(z, params)), (gj, xj), ("out", "grad"))

    def numpy_run():
        out, grad = baselines.numpy_discrete(x, g, a, b, TAU, w.mode)
        return dict(out=out, grad=grad)

    runners["numpy"] = numpy_run
    return runners


def build_continuous(w, inp, era, et) -> Dict[str, Callable[[], dict]]:
    p = params_of(w)
    offset = baselines.continuous_offset(w.cols, p["target_entropy"], LOG_STD_MAX)
    x, g = inp["x"], inp["g"]
    runners = {}

    def libera_py():
        out = era.continuous_forward(x, **p)
        grads = era.continuous_backward(x, g, **p)
        return dict(out=out, grad=grads.std_logits, grad_residual=np.sum(grads.residual, dtype=np.float64))

    runners["libera-Py"] = libera_py
    empty = np.zeros((0, w.cols), np.float32)

    def empty_call():  # the same two binding calls on zero rows: the cost of the call itself
        era.continuous_forward(empty, **p)
        era.continuous_backward(empty, empty, **p)
        return {}

    runners["empty call"] = empty_call
    if torch is not None:
        xt, gt = _torch_tensor(x).requires_grad_(), _torch_tensor(g)
        rt = torch.tensor(RESIDUAL, dtype=torch.float32, requires_grad=True)  # a learned residual

        def torch_runner(forward):
            def run():
                out = forward(xt, rt)
                grad, grad_residual = torch.autograd.grad(out, (xt, rt), gt)
                return dict(out=out.detach(), grad=grad, grad_residual=grad_residual)

            return run

        kw = dict(log_std_min=LOG_STD_MIN, log_std_max=LOG_STD_MAX)
        _torch_columns(runners, torch_runner,
                       None if et is None else (
                           lambda s, r: et.continuous_era(s, p["target_entropy"], residual=r, **kw)),
                       None if et is None else (
                           lambda s, r: et.continuous_era(s, p["target_entropy"], residual=r, backend="native", **kw)),
                       lambda s, r: baselines.torch_continuous(s, r, offset, LOG_STD_MIN, LOG_STD_MAX))
    if jax is not None:
        f = _blocked(_jax_fwd_bwd(lambda s, r: baselines.jax_continuous(s, r, offset, LOG_STD_MIN, LOG_STD_MAX),
                                  argnums=(0, 1)))
        xj, gj, rj = jnp.asarray(x), jnp.asarray(g), jnp.asarray(RESIDUAL, jnp.float32)

        def jax_run():
            out, (grad, grad_residual) = f(gj, xj, rj)
            return dict(out=out, grad=grad, grad_residual=grad_residual)

        runners["JAX jit"] = jax_run
        kw = dict(log_std_min=LOG_STD_MIN, log_std_max=LOG_STD_MAX)
        params = tuple(sorted(dict(target_entropy=p["target_entropy"], **kw).items()))
        _jax_columns(runners, (lambda s, r: era_jax.continuous_era(s, p["target_entropy"], r, **kw)),
                     (lambda s, r: jax_callback.continuous_era(s, r, params)), (gj, xj, rj),
                     ("out", "grad", "grad_residual"), argnums=(0, 1))

    def numpy_run():
        out, grad, grad_residual = baselines.numpy_continuous(x, g, offset, RESIDUAL, LOG_STD_MIN, LOG_STD_MAX)
        return dict(out=out, grad=grad, grad_residual=np.sum(grad_residual, dtype=np.float64))

    runners["numpy"] = numpy_run
    return runners


def build_token_entropy(w, inp, era, et) -> Dict[str, Callable[[], dict]]:
    x = inp["x"]
    runners = {"libera-Py": lambda: dict(out=era.token_entropy(x))}
    if torch is not None:
        xt = _torch_tensor(x)

        def torch_runner(forward):  # a metric: no autograd graph (era.torch's entropies carry none)
            def run():
                with torch.no_grad():
                    return dict(out=forward(xt))

            return run

        _torch_columns(runners, torch_runner,
                       None if et is None else (lambda z: et.token_entropy(z)),
                       None if et is None else (lambda z: et.token_entropy(z, backend="native")),
                       baselines.torch_token_entropy)
    if jax is not None:
        f = _blocked(jax.jit(baselines.jax_token_entropy))
        xj = jnp.asarray(x)
        runners["JAX jit"] = lambda: dict(out=f(xj))
        ffi, callback = _blocked(jax.jit(era_jax.token_entropy)), _blocked(jax.jit(jax_callback.token_entropy))
        runners["era.jax"] = lambda: dict(out=ffi(xj))
        runners["era.jax callback"] = lambda: dict(out=callback(xj))
    runners["numpy"] = lambda: dict(out=baselines.numpy_token_entropy(x))
    return runners


def build_logprob(w, inp, era, et) -> Dict[str, Callable[[], dict]]:
    x, labels, scale, glp = inp["x"], inp["labels"], inp["scale"], inp["glp"]
    runners = {}

    def libera_py():
        out = era.llm_logprob_forward(x, labels, scale, with_entropy=False).logprob
        return dict(out=out, grad=era.llm_logprob_backward(x, labels, scale, glp))

    runners["libera-Py"] = libera_py
    if torch is not None:
        xt = _torch_tensor(x).requires_grad_()
        lt, st, gt = _torch_tensor(labels), _torch_tensor(scale), _torch_tensor(glp)

        def torch_runner(forward):
            def run():
                out = forward(xt)
                (grad,) = torch.autograd.grad(out, xt, gt)
                return dict(out=out.detach(), grad=grad)

            return run

        # era.torch.llm_logprob also returns the entropy of the scaled distribution
        _torch_columns(runners, torch_runner,
                       None if et is None else (lambda z: et.llm_logprob(z, lt, st)[0]),
                       None if et is None else (lambda z: et.llm_logprob(z, lt, st, backend="native")[0]),
                       lambda z: baselines.torch_scaled_logprob(z, lt, st))
    if jax is not None:
        f = _blocked(_jax_fwd_bwd(baselines.jax_scaled_logprob))
        xj, lj, sj, gj = jnp.asarray(x), jnp.asarray(labels.astype(np.int32)), jnp.asarray(scale), jnp.asarray(glp)

        def jax_run():
            out, (grad,) = f(gj, xj, lj, sj)
            return dict(out=out, grad=grad)

        runners["JAX jit"] = jax_run
        _jax_columns(runners, (lambda z, a, s: era_jax.llm_logprob(z, a, s)[0]), jax_callback.llm_logprob,
                     (gj, xj, lj, sj), ("out", "grad"))

    def numpy_run():
        out, grad = baselines.numpy_scaled_logprob(x, labels, scale, glp)
        return dict(out=out, grad=grad)

    runners["numpy"] = numpy_run
    return runners


BUILDERS = {
    "discrete": build_discrete,
    "continuous": build_continuous,
    "token_entropy": build_token_entropy,
    "logprob": build_logprob,
}

# The table's implementation columns, in order.
IMPLS = ["libera-C", "libera-Py", "era.torch", "era.torch compiled", "torch eager", "torch.compile", "era.torch.native",
         "era.torch.native compiled", "era.jax", "era.jax callback", "JAX jit", "numpy", "read floor", "empty call"]
COMPILED = ("era.torch compiled", "era.torch.native compiled", "torch.compile")


def _int_view(a: np.ndarray) -> np.ndarray:
    """The same bytes as the widest integers that tile them: numpy's fastest reduction (its
    float32 sum is pairwise and runs at about half the memory bandwidth here)."""
    flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    for t in (np.int64, np.int32):
        if flat.size % np.dtype(t).itemsize == 0:
            return flat.view(t)
    return flat


def floor_runner(arrays: List[np.ndarray]) -> Callable[[], dict]:
    views = [_int_view(a) for a in arrays]

    def run():
        for v in views:
            np.sum(v)
        return {}

    return run


# ---------------------------------------------------------------------------------------
# libera through C


def c_arguments(w: Workload, p: dict) -> List[str]:
    if w.kind == "discrete":
        return [repr(p["target_entropy"]), repr(TAU), str(DISCRETE_MODES.index(w.mode))]  # ERA_DISCRETE_*
    if w.kind == "continuous":
        return [repr(p["target_entropy"]), repr(RESIDUAL), repr(LOG_STD_MIN), repr(LOG_STD_MAX)]
    return []


def build_c(lib_dir: str) -> str:
    """Compiles bench_c.c against libera in lib_dir into bench/build/bench_c."""
    if not os.path.exists(os.path.join(lib_dir, "libera.so")):
        sys.exit(f"bench: no libera.so in {lib_dir} (build it, or pass --lib DIR / set ERA_LIB_DIR)")
    os.makedirs(BUILD_DIR, exist_ok=True)
    exe = os.path.join(BUILD_DIR, "bench_c")
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-std=c99", "-I", os.path.join(ROOT, "include"), os.path.join(HERE, "bench_c.c"), "-o", exe,
           "-L", lib_dir, "-lera", f"-Wl,-rpath,{lib_dir}"]
    subprocess.run(cmd, check=True)
    return exe


def run_c(exe: str, w: Workload, inp: dict, reps: int, min_ms: float, threads: Optional[int]):
    """Runs the C program on the workload's inputs (with libera's thread setting `threads`
    when not None); returns (its JSON, its outputs)."""
    data = os.path.join(BUILD_DIR, "data")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    try:
        for name, a in inp.items():
            a.tofile(os.path.join(data, f"{name}.bin"))
        cmd = [exe, w.kind, w.dtype, str(w.rows), str(w.cols), data, repr(min_ms), str(reps)]
        env = dict(os.environ, ERA_BENCH_THREADS=str(threads)) if threads is not None else None
        proc = subprocess.run(cmd + c_arguments(w, params_of(w)), capture_output=True, text=True, env=env)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(f"bench_c failed ({proc.returncode}): {proc.stdout.strip()} {proc.stderr.strip()}")
        result = json.loads(proc.stdout)
        x_dtype = inp["x"].dtype
        outputs = {}
        per_row_out = w.kind in ("token_entropy", "logprob")
        outputs["out"] = np.fromfile(os.path.join(data, "out.bin"), np.float32 if per_row_out else x_dtype)
        if w.kind != "token_entropy":
            outputs["grad"] = np.fromfile(os.path.join(data, "grad.bin"), x_dtype).reshape(w.rows, w.cols)
        if not per_row_out:
            outputs["out"] = outputs["out"].reshape(w.rows, w.cols)
        if w.kind == "continuous":
            residual = np.fromfile(os.path.join(data, "grad_residual.bin"), np.float32)
            outputs["grad_residual"] = np.sum(residual, dtype=np.float64)
        return result, outputs
    finally:
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Checking and timing


def as_float64(a) -> np.ndarray:
    if torch is not None and isinstance(a, torch.Tensor):
        a = a.detach().float().numpy()
    return np.asarray(a).astype(np.float64)


def compare(outputs: dict, reference: dict, tol: float) -> dict:
    """Max absolute difference of each output, and relative to the reference's largest
    magnitude; ok when every relative difference is within tol."""
    result, ok = {}, True
    for key, ref in reference.items():
        ref = as_float64(ref)
        got = as_float64(outputs[key]).reshape(ref.shape)
        diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        if not np.all(np.isfinite(got)):
            diff = math.inf
        scale = float(np.max(np.abs(ref))) if ref.size else 1.0
        rel = diff / scale if scale > 0 else diff
        result[key] = dict(max_abs=diff, max_rel=rel)
        ok = ok and rel <= tol
    return dict(ok=ok, tol=tol, outputs=result)


def calibrate(run: Callable[[], dict], min_s: float) -> int:
    """The number of calls that lasts at least min_s."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            run()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s:
            return n
        grow = 1.2 * min_s / elapsed if elapsed > 0 else 10.0
        n = int(n * min(max(grow, 2.0), 100.0)) + 1


def time_round_robin(runners: Dict[str, Callable[[], dict]], reps: int, min_ms: float) -> dict:
    """Median seconds per call of each runner; within each repetition every runner is timed
    once, in turn."""
    min_s = min_ms * 1e-3
    inner = {name: calibrate(run, min_s) for name, run in runners.items()}
    per_call: Dict[str, List[float]] = {name: [] for name in runners}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(reps):
            for name, run in runners.items():
                n = inner[name]
                t0 = time.perf_counter()
                for _ in range(n):
                    run()
                per_call[name].append((time.perf_counter() - t0) / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: dict(median_ms=1e3 * statistics.median(ts), inner=inner[name], reps_ms=[1e3 * t for t in ts])
            for name, ts in per_call.items()}


# ---------------------------------------------------------------------------------------
# Ratios, targets, table

RATIOS = [  # (column, numerator, denominator)
    ("torch/C", "torch eager", "libera-C"),
    ("compile/C", "torch.compile", "libera-C"),
    ("JAX/C", "JAX jit", "libera-C"),
    ("era.jax/JAX", "era.jax", "JAX jit"),
    ("callback/era.jax", "era.jax callback", "era.jax"),
    ("numpy/C", "numpy", "libera-C"),
    ("C/floor", "libera-C", "read floor"),
    ("Py/C", "libera-Py", "libera-C"),
]


def ratio(times: dict, num: str, den: str) -> Optional[float]:
    a, b = times.get(num), times.get(den)
    return a / b if a is not None and b else None


def targets(w: Workload, times: dict, via: str = "libera-C", jax_reference_ms: Optional[float] = None) -> Optional[dict]:
    """The speed targets that apply to this workload, judged on libera through `via`
    (bench/README.md, "Targets"). jax_reference_ms: JAX jit's time for the reference formula
    at the same shape, which the exact and tight modes are judged against."""
    checks = []  # (text, value, bound, holds)

    def at_least(text, value, bound):
        checks.append((text, value, bound, value is not None and value >= bound))

    def at_most(text, value, bound):
        checks.append((text, value, bound, value is not None and value <= bound))

    shape = (w.rows, w.cols)
    if w.kind == "token_entropy":
        at_most("time/floor <= 1.5", ratio(times, via, "read floor"), 1.5)
    elif w.kind == "logprob":
        at_most("time/floor <= 6", ratio(times, via, "read floor"), 6.0)
        at_least("JAX/libera >= 2", ratio(times, "JAX jit", via), 2.0)
    elif w.kind == "discrete" and shape in ((256, 1000), (4096, 10)):
        if w.mode == "reference":
            at_least("compile/libera >= 1.5", ratio(times, "torch.compile", via), 1.5)
            at_least("JAX/libera >= 1.5", ratio(times, "JAX jit", via), 1.5)
        else:
            own = times.get(via)
            at_most("libera/JAX-reference <= 2", own / jax_reference_ms if own and jax_reference_ms else None, 2.0)
    elif w.name == "continuous_4096x61":
        at_least("JAX/libera >= 1.5", ratio(times, "JAX jit", via), 1.5)
    elif w.name == "continuous_256x21":
        at_least("JAX/libera >= 1", ratio(times, "JAX jit", via), 1.0)
        if via == "libera-C":
            at_most("Py/empty call <= 3", ratio(times, "libera-Py", "empty call"), 3.0)  # judged from Python
    if not checks:
        return None
    return dict(met=all(c[3] for c in checks), via=via,
                checks=[dict(target=t, value=v, bound=b, met=h) for t, v, b, h in checks])


def judge_targets(rows: List[dict]) -> None:
    """Sets each row's targets, once every workload has run (the exact and tight modes are
    judged against the reference workload of the same shape)."""
    by_name = {w.name: w for w in WORKLOADS}
    jax_reference = {(r["rows"], r["cols"]): r["times_ms"].get("JAX jit") for r in rows
                     if r["kind"] == "discrete" and r["params"].get("mode") == "reference"}
    for row in rows:
        w = by_name[row["name"]]
        ref = jax_reference.get((w.rows, w.cols))
        row["target"] = targets(w, row["times_ms"], jax_reference_ms=ref)
        row["target_via_python"] = targets(w, row["times_ms"], via="libera-Py", jax_reference_ms=ref)


def target_text(t: Optional[dict]) -> str:
    if t is None:
        return ""
    parts = [f"{c['target'].split(' ')[0]} {fmt_ratio(c['value'])}" for c in t["checks"]]
    return ("met" if t["met"] else "missed") + " (" + ", ".join(parts) + ")"


def fmt_ms(v: Optional[float]) -> str:
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def fmt_ratio(v: Optional[float]) -> str:
    if v is None:
        return "—"
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _markdown(header: List[str], body: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def table(rows: List[dict]) -> str:
    """Two tables: the times (ms), then the ratios and targets (one table of both would be
    24 columns wide)."""
    times, ratios = [], []
    for row in rows:
        cells = [row["name"], row["pass"]]
        for impl in IMPLS:
            status = row["status"].get(impl)
            cells.append(fmt_ms(row["times_ms"].get(impl)) if status in (None, "ok") else status)
        times.append(cells)
        ratios.append([row["name"], row["pass"]] + [fmt_ratio(row["ratios"].get(r[0])) for r in RATIOS]
                      + [target_text(row["target"])])
    return (_markdown(["workload", "pass"] + [f"{i} ms" for i in IMPLS], times) + "\n\n"
            + _markdown(["workload", "pass"] + [r[0] for r in RATIOS] + ["target"], ratios))


# ---------------------------------------------------------------------------------------
# The torch sections: fused linear heads, LLM device-path memory, a training step

SECTIONS = ["fused_linear_head", "torch_linear_heads", "llm_device_memory", "training_step"]

# Fused heads in torch, each (size, implementation) in a process of its own (torch_memory.py).
TORCH_LOGPROB_IMPLS = [  # (key, table text)
    ("fused_libera", "era.torch.llm_linear_logprob, libera"),
    ("fused_native", "era.torch.llm_linear_logprob, native"),
    ("unfused_era", "hidden @ weight.T, era.torch.llm_logprob"),
    ("unfused_torch", "hidden @ weight.T, plain torch (baselines)"),
]
CE_SIZES = [(4096, 512, 1000), (256, 512, 10)]  # (rows, features, classes)
TORCH_CE_IMPLS = [
    ("fused_libera", "era.torch.linear_discrete_ce, libera"),
    ("fused_native", "era.torch.linear_discrete_ce, native"),
    ("unfused_era", "F.linear, era.torch.discrete_era, F.cross_entropy"),
    ("plain_torch", "F.linear, F.cross_entropy (no ERA)"),
]
MMAP_THRESHOLD = "131072"  # MALLOC_MMAP_THRESHOLD_ of the memory processes
LLM_DEVICE_SHAPE = (16, 128, 151936)  # (batch, length, vocab): bf16 logits read as logits[:, :-1] of length + 1


def memory_case(spec: dict, threads: Optional[int]) -> dict:
    """Runs bench/torch_memory.py on one spec in a fresh process; its JSON record (or one
    with an "error")."""
    spec = dict(spec, threads=threads)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)
    proc = subprocess.run([sys.executable, os.path.join(HERE, "torch_memory.py"), json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return dict(spec=spec, error=f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def _case_text(r: dict) -> str:
    if "error" in r:
        return "ERROR"
    c = r["check"]
    if not c["outputs"]:
        return c.get("note", "")
    worst = max(v["max_rel"] for v in c["outputs"].values())
    return ("ok" if c["ok"] else "WRONG") + f" ({worst:.2g} rel)"


def torch_linear_heads(reps: int, min_ms: float, threads: Optional[int]) -> dict:
    """The fused heads of era.torch against the unfused paths: median forward + backward
    and peak memory growth, one process per (size, implementation)."""
    common = dict(reps=min(reps, 3), min_ms=min_ms)
    logprob, ce = [], []
    for tokens, dim, vocab in LINEAR_SIZES:
        for impl, _ in TORCH_LOGPROB_IMPLS:
            r = memory_case(dict(common, case="linear_logprob", impl=impl, tokens=tokens, dim=dim, vocab=vocab,
                                 scales=list(LOGIT_SCALES)), threads)
            logprob.append(r)
            print(f"    logprob {impl} {tokens} x {dim} x {vocab}: " + _case_line(r), flush=True)
    for rows, dim, classes in CE_SIZES:
        for impl, _ in TORCH_CE_IMPLS:
            r = memory_case(dict(common, case="linear_ce", impl=impl, rows=rows, dim=dim, classes=classes,
                                 target_entropy=discrete_target(classes), tau=TAU), threads)
            ce.append(r)
            print(f"    ce {impl} {rows} x {dim} x {classes}: " + _case_line(r), flush=True)
    return dict(logprob=logprob, ce=ce)


def _case_line(r: dict) -> str:
    if "error" in r:
        return "ERROR " + r["error"]
    return f"{r['median_ms']:.1f} ms, peak +{r['peak_mib']:.1f} MiB, check {_case_text(r)}"


def torch_heads_table(result: dict) -> str:
    body = []
    for key, impls, sizes, size_text in (
            ("logprob", TORCH_LOGPROB_IMPLS, LINEAR_SIZES, "tokens x dim x vocab"),
            ("ce", TORCH_CE_IMPLS, CE_SIZES, "rows x features x classes")):
        records = result[key]
        for i, size in enumerate(sizes):
            group = records[i * len(impls):(i + 1) * len(impls)]
            fused = group[0].get("median_ms")
            for (impl, text), r in zip(impls, group):
                head = "LLM log-prob" if key == "logprob" else "classification CE"
                shape = " x ".join(str(v) for v in size)
                if "error" in r:
                    body.append([head, shape, text, "error", "—", "—", "—", "—", "ERROR"])
                    continue
                vs_fused = r["median_ms"] / fused if fused else None
                body.append([head, shape, text, fmt_ms(r["median_ms"]), fmt_ratio(vs_fused), f"{r['peak_mib']:.1f}",
                             f"{r['grads_mib']:.1f}", f"{r['logits_mib']:.1f}", _case_text(r)])
    return _markdown(["head", "size", "implementation", "fwd+bwd ms", "/ fused libera", "peak +MiB", "grads MiB",
                      "logits MiB", "check vs libera-Py"], body)


def llm_device_memory(threads: Optional[int]) -> List[dict]:
    batch, length, vocab = LLM_DEVICE_SHAPE
    records = []
    for backend in ("libera", "native"):
        r = memory_case(dict(case="llm_device", backend=backend, batch=batch, length=length, vocab=vocab), threads)
        records.append(r)
        if "error" in r:
            print(f"    {backend}: ERROR {r['error']}", flush=True)
        else:
            print(f"    {backend}: {r['seconds']:.1f} s, peak +{r['peak_mib']:.0f} MiB = "
                  f"{r['peak_over_logits']:.2f} x the logits, check {_case_text(r)}", flush=True)
    return records


def llm_device_table(records: List[dict]) -> str:
    batch, length, vocab = LLM_DEVICE_SHAPE
    body = []
    for r in records:
        backend = r["spec"]["backend"]
        if "error" in r:
            body.append([backend, "error", "—", "—", "ERROR"])
            continue
        body.append([backend, f"{r['seconds']:.2f}", f"{r['peak_mib']:.0f}", f"{r['peak_over_logits']:.2f}",
                     _case_text(r)])
    return (f"bf16 logits {batch} x {length} x {vocab} (a strided view, {batch * length * vocab * 2 / 2**20:.0f} MiB), "
            "era.torch.llm_logprob forward + backward, the returned gradient included:\n\n"
            + _markdown(["backend", "fwd+bwd s", "peak +MiB", "peak / logits bytes", "check vs libera-Py"], body))


# The classification example's MLP (examples/python/classification/train.py), one training step.
TRAIN_FEATURES, TRAIN_HIDDEN, TRAIN_CLASSES, TRAIN_LR = 64, 128, 10, 1e-3
TRAIN_H0, TRAIN_MODE = 0.3, "tight"
TRAIN_BATCHES = (256, 4096)
TRAIN_VARIANTS = ["plain eager", "ERA eager", "plain compiled", "ERA compiled"]


def _plain_loss(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


def _era_loss(model, head, x, y):
    return torch.nn.functional.cross_entropy(head(model(x)), y)


def training_step(era, et, reps: int, min_ms: float) -> List[dict]:
    """Median step time (forward, loss, zero_grad, backward, Adam step) of the MLP with plain
    cross-entropy and with ERA, eager and with the forward and loss compiled; torch and
    libera on one thread."""
    nn = torch.nn
    threads = torch.get_num_threads(), era.get_num_threads()
    torch.set_num_threads(1)
    era.set_num_threads(1)
    records = []
    try:
        for batch in TRAIN_BATCHES:
            torch._dynamo.reset()
            gen = torch.Generator().manual_seed(batch)
            x = torch.randn(batch, TRAIN_FEATURES, generator=gen)
            y = torch.randint(0, TRAIN_CLASSES, (batch,), generator=gen)
            runners = {}
            for name in TRAIN_VARIANTS:
                torch.manual_seed(0)  # the same initial weights for every variant
                model = nn.Sequential(nn.Linear(TRAIN_FEATURES, TRAIN_HIDDEN), nn.ReLU(),
                                      nn.Linear(TRAIN_HIDDEN, TRAIN_HIDDEN), nn.ReLU(),
                                      nn.Linear(TRAIN_HIDDEN, TRAIN_CLASSES))
                opt = torch.optim.Adam(model.parameters(), lr=TRAIN_LR)
                if name.startswith("ERA"):
                    loss_fn, extra = _era_loss, (et.ERADiscrete(TRAIN_H0, mode=TRAIN_MODE),)
                else:
                    loss_fn, extra = _plain_loss, ()
                if name.endswith("compiled"):
                    loss_fn = torch.compile(loss_fn, dynamic=False, fullgraph=True)

                def step(loss_fn=loss_fn, model=model, opt=opt, extra=extra):
                    loss = loss_fn(model, *extra, x, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    return dict(loss=loss.detach())

                runners[name] = step
            rec = dict(batch=batch, first_call_ms={}, first_loss={}, status={})
            for name, step in runners.items():  # the first step compiles; then two more
                t0 = time.perf_counter()
                try:
                    rec["first_loss"][name] = float(step()["loss"])
                    rec["first_call_ms"][name] = 1e3 * (time.perf_counter() - t0)
                    step(), step()
                    rec["status"][name] = "ok"
                except Exception as e:
                    rec["status"][name] = f"error: {type(e).__name__}: {str(e)[:2000]}"
            # Same weights, same batch: the compiled first loss is the eager one.
            loss = rec["first_loss"]
            rec["loss_agrees"] = {k: abs(loss.get(f"{k} compiled", math.nan) - loss.get(f"{k} eager", math.nan))
                                  <= 1e-5 * abs(loss.get(f"{k} eager", 1.0)) for k in ("plain", "ERA")}
            ok = {n: r for n, r in runners.items() if rec["status"][n] == "ok"}
            counts = compile_counts()
            timing = time_round_robin(ok, reps, min_ms)
            rec["compile_counts"] = dict(before_timing=counts, after_timing=compile_counts())
            rec["timing"] = timing
            ms = rec["times_ms"] = {n: t["median_ms"] for n, t in timing.items()}
            rec["era_overhead_pct"] = {
                mode: None if ratio(ms, f"ERA {mode}", f"plain {mode}") is None
                else 100 * (ratio(ms, f"ERA {mode}", f"plain {mode}") - 1) for mode in ("eager", "compiled")}
            records.append(rec)
            print(f"    batch {batch}: " + ", ".join(f"{n} {fmt_ms(ms.get(n))} ms" for n in TRAIN_VARIANTS)
                  + "; first (compiling) step " + ", ".join(f"{n} {rec['first_call_ms'][n] / 1e3:.1f} s"
                                                         for n in TRAIN_VARIANTS if n.endswith("compiled")
                                                         and n in rec["first_call_ms"]), flush=True)
            for name, status in rec["status"].items():
                if status != "ok":
                    print(f"    {name}: {status}", flush=True)
            if counts != rec["compile_counts"]["after_timing"]:
                print(f"    note: torch.compile compiled again during the timing: {counts} -> "
                      f"{rec['compile_counts']['after_timing']}", flush=True)
            if not all(rec["loss_agrees"].values()):
                print(f"    note: compiled and eager first losses differ: {loss}", flush=True)
    finally:
        torch.set_num_threads(threads[0])
        era.set_num_threads(threads[1])
    return records


def _pct(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:+.0f}%"


TRAIN_OVERHEAD_TARGET_PCT = 7.0  # ERA's share of a training step the paper reports


def training_table(records: List[dict]) -> str:
    body = []
    for r in records:
        ms = r["times_ms"]
        overheads = [r["era_overhead_pct"][m] for m in ("eager", "compiled")]
        target = ("" if any(o is None for o in overheads)
                  else ("met" if max(overheads) <= TRAIN_OVERHEAD_TARGET_PCT else "missed"))
        body.append([str(r["batch"]), fmt_ms(ms.get("plain eager")), fmt_ms(ms.get("ERA eager")),
                     _pct(r["era_overhead_pct"]["eager"]), fmt_ms(ms.get("plain compiled")),
                     fmt_ms(ms.get("ERA compiled")), _pct(r["era_overhead_pct"]["compiled"]), target])
    return ("MLP 64-128-128-10, Adam, ERA mode tight H0 = 0.3; torch and libera on one thread; "
            "compiled: the forward and loss under torch.compile(fullgraph=True); target: ERA's overhead "
            f"<= {TRAIN_OVERHEAD_TARGET_PCT:g}% (the paper's figure) in both:\n\n"
            + _markdown(["batch", "plain eager ms", "ERA eager ms", "ERA overhead eager", "plain compiled ms",
                         "ERA compiled ms", "ERA overhead compiled", "target"], body))


# ---------------------------------------------------------------------------------------
# The run


def sha256(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def machine(era, lib_dir: str, c_threads) -> dict:
    cpu = {"processors_online": os.cpu_count(), "affinity": len(os.sched_getaffinity(0))}
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu["model"] = re.search(r"model name\s*:\s*(.*)", info).group(1)
        flags = set(re.search(r"flags\s*:\s*(.*)", info).group(1).split())
        cpu["flags"] = sorted(flags & {"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_bf16"})
    except (OSError, AttributeError):
        pass
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            cpu["l3"] = f.read().strip()
    except OSError:
        pass
    cc = subprocess.run([os.environ.get("CC", "cc"), "--version"], capture_output=True, text=True).stdout
    package_lib = os.path.join(os.path.dirname(era.__file__), "libera.so")
    versions = {"python": platform.python_version(), "numpy": np.__version__, "era": era.version(),
                "era_abi": era.abi_version(), "cc": cc.splitlines()[0] if cc else None,
                "torch": getattr(torch, "__version__", None), "jax": getattr(jax, "__version__", None),
                "ml_dtypes": getattr(ml_dtypes, "__version__", None)}
    threads = {"libera_python": era.get_num_threads(), "libera_c": c_threads,
               "torch": torch.get_num_threads() if torch is not None else None,
               "numpy": 1, "XLA_FLAGS": os.environ.get("XLA_FLAGS"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    libs = {"c": {"path": os.path.join(lib_dir, "libera.so"), "sha256": sha256(os.path.join(lib_dir, "libera.so"))},
            "python": {"path": package_lib, "sha256": sha256(package_lib)}}
    return dict(platform=platform.platform(), cpu=cpu, versions=versions, threads=threads, libraries=libs)


def run_workload(w: Workload, exe: str, era, et, reps: int, min_ms: float, threads: Optional[int]) -> dict:
    t_start = time.perf_counter()
    inp = make_inputs(w)
    tol = TOLERANCE[w.dtype]
    row = {"name": w.name, "kind": w.kind, "dtype": w.dtype, "rows": w.rows, "cols": w.cols, "pass": w.pass_name,
           "params": params_of(w), "status": {}, "checks": {}, "times_ms": {}, "timing": {}}
    if torch is not None:
        torch._dynamo.reset()  # each workload compiles afresh: no cache entries of other shapes to guard on
    runners = BUILDERS[w.kind](w, inp, era, et)
    floor = floor_arrays(w, inp)
    row["floor_bytes"] = int(sum(a.nbytes for a in floor))

    # Correctness: every implementation against libera's Python binding, before timing.
    reference = runners["libera-Py"]()
    try:
        c_result, c_outputs = run_c(exe, w, inp, reps, min_ms, threads)
        row["checks"]["libera-C"] = check = compare(c_outputs, reference, tol)
        row["status"]["libera-C"] = "ok" if check["ok"] else "wrong"
        c_passes = c_result["passes"]
        row["c_passes_ms"] = {k: v["median_ms"] for k, v in c_passes.items()}
        row["timing"]["libera-C"] = c_passes[w.pass_name]
        if check["ok"]:
            row["times_ms"]["libera-C"] = c_passes[w.pass_name]["median_ms"]
        row["c_threads"] = c_result.get("threads")
    except (RuntimeError, OSError, ValueError) as e:
        row["status"]["libera-C"] = "error"
        row["checks"]["libera-C"] = dict(ok=False, error=str(e))
    timed = {}
    row["first_call_ms"] = {}  # the checked call: for the compiled columns, compilation (forward and backward)
    for name, run in runners.items():
        if name == "libera-Py":
            timed[name] = run
            row["status"][name] = "ok"
            continue
        try:
            t0 = time.perf_counter()
            outputs = run()
            row["first_call_ms"][name] = 1e3 * (time.perf_counter() - t0)
        except Exception as e:  # a baseline that cannot run here (or compile: a graph break) is reported, not fatal
            row["status"][name] = "error"
            row["checks"][name] = dict(ok=False, error=f"{type(e).__name__}: {str(e)[:2000]}")
            continue
        if outputs:
            row["checks"][name] = check = compare(outputs, reference, tol)
            if not check["ok"]:
                row["status"][name] = "wrong"
                continue
        row["status"][name] = "ok"
        timed[name] = run
    timed["read floor"] = floor_runner(floor)
    row["status"]["read floor"] = "ok"
    print_checks(row)
    compiled = {n: f"{row['first_call_ms'][n] / 1e3:.1f} s" for n in COMPILED if n in timed}
    if compiled:
        print("    first (compiling) call: " + ", ".join(f"{n} {t}" for n, t in compiled.items()), flush=True)

    counts = compile_counts()
    for name, t in time_round_robin(timed, reps, min_ms).items():
        row["timing"][name] = t
        row["times_ms"][name] = t["median_ms"]
    row["compile_counts"] = dict(before_timing=counts, after_timing=compile_counts())
    if counts != row["compile_counts"]["after_timing"]:  # calibrate()'s calls come first, so this is in the timing
        print(f"    note: torch.compile compiled again during the timing: {counts} -> "
              f"{row['compile_counts']['after_timing']}", flush=True)
    row["ratios"] = {col: ratio(row["times_ms"], num, den) for col, num, den in RATIOS}
    row["seconds"] = time.perf_counter() - t_start
    return row


def compile_counts() -> Optional[dict]:
    """torch.compile's counters (graphs captured, AOT autograd and inductor compilations, graph
    breaks): unchanged over the timing when nothing was compiled in it."""
    if torch is None:
        return None
    from torch._dynamo.utils import counters

    return dict(graphs=counters["stats"]["unique_graphs"], aot_autograd=counters["aot_autograd"]["total"],
                inductor=sum(v for k, v in counters["inductor"].items() if k.startswith("fxgraph_cache")),
                graph_breaks=sum(counters["graph_break"].values()))


def print_checks(row: dict) -> None:
    parts = []
    for name, check in row["checks"].items():
        if "error" in check:
            parts.append(f"{name}: ERROR {check['error']}")
            continue
        diffs = ", ".join(f"{k} {v['max_abs']:.2g}" + (f" ({v['max_rel']:.2g} rel)" if v["max_abs"] else "")
                          for k, v in check["outputs"].items())
        parts.append(f"{name}: {diffs}" + ("" if check["ok"] else "  <-- WRONG"))
    tol = TOLERANCE[row["dtype"]]
    print(f"check {row['name']} (max |x - libera-Py|; tolerance {tol:g} relative to the largest |value|):", flush=True)
    for p in parts:
        print(f"    {p}", flush=True)


def set_affinity(cpus: set) -> None:
    """Every thread of this process (and those it starts later, bench_c included) on `cpus`.
    With --threads 1 the workloads run on one processor: XLA's CPU client runs a jitted
    function's loops on its own thread pool (2 threads here: 0.77 ms for discrete reference
    256x1000 forward + backward, 1.17 ms on one core), which neither jax nor XLA_FLAGS limit
    to one thread. The sections run on every processor again: their OpenBLAS products keep
    OpenBLAS's own threads, which would then share one core (the fused head took 2.5 s
    instead of 1.95)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # a thread that has just exited
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPS} repetitions of >= {QUICK_MIN_MS:g} ms")
    parser.add_argument("--only", metavar="PATTERN", help="run the workloads and sections whose name matches this "
                        "regex (sections: " + ", ".join(SECTIONS) + ")")
    parser.add_argument("--json", metavar="PATH", default=DEFAULT_JSON, help="where to write the results")
    parser.add_argument("--lib", metavar="DIR", default=os.environ.get("ERA_LIB_DIR"),
                        help="the directory of the libera.so bench_c links (default $ERA_LIB_DIR, else .build/release)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for libera (C and Python) and torch (default: each library's own; "
                        "JAX keeps XLA's); 1 also pins the process to one processor for the workloads, so that "
                        "XLA's pool, which no setting limits, runs on one core too")
    parser.add_argument("--reps", type=int, help=f"repetitions (default {REPS})")
    parser.add_argument("--min-ms", type=float, help=f"least duration of one repetition (default {MIN_MS:g})")
    args = parser.parse_args()
    reps = args.reps or (QUICK_REPS if args.quick else REPS)
    min_ms = args.min_ms or (QUICK_MIN_MS if args.quick else MIN_MS)
    lib_dir = os.path.abspath(args.lib or os.path.join(ROOT, ".build", "release"))
    workloads = [w for w in WORKLOADS if not args.only or re.search(args.only, w.name)]
    sections = [s for s in SECTIONS if not args.only or re.search(args.only, s)]
    if torch is None:
        sections = [s for s in sections if s == "fused_linear_head"]
    if not workloads and not sections:
        sys.exit(f"bench: nothing matches {args.only!r}: " + ", ".join([w.name for w in WORKLOADS] + SECTIONS))

    import era

    et = None
    if torch is not None:
        import era.torch as et
    all_cpus = os.sched_getaffinity(0)
    if args.threads == 1:
        set_affinity({min(all_cpus)})
    if args.threads is not None:
        era.set_num_threads(args.threads)
        if torch is not None and args.threads > 0:
            torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    if load_start[0] > (os.cpu_count() or 1) - 0.5:
        print(f"note: the machine is busy (load average {load_start[0]:.1f} on {os.cpu_count()} processors); "
              "multi-threaded rows (torch's OpenMP pool above all) slow down erratically; --threads 1 is steadier",
              flush=True)
    exe = build_c(lib_dir)
    c_lib_at_start = sha256(os.path.join(lib_dir, "libera.so"))
    rows = []
    for w in workloads:
        rows.append(run_workload(w, exe, era, et, reps, min_ms, args.threads))
        print(f"    timed in {rows[-1]['seconds']:.1f} s", flush=True)
    set_affinity(all_cpus)

    linear = []
    if "fused_linear_head" in sections:
        print("fused_linear_head", flush=True)
        linear = fused_linear_head(lib_dir, reps, args.threads)
    heads, device_memory, training = None, None, None
    if "torch_linear_heads" in sections:
        print("torch_linear_heads (one process each)", flush=True)
        heads = torch_linear_heads(reps, min_ms, args.threads)
    if "llm_device_memory" in sections:
        print("llm_device_memory (one process each)", flush=True)
        device_memory = llm_device_memory(args.threads)
    if "training_step" in sections:
        print("training_step (torch and libera on one thread)", flush=True)
        training = training_step(era, et, reps, min_ms)

    c_threads = next((r.get("c_threads") for r in rows if r.get("c_threads")), None)
    meta = machine(era, lib_dir, c_threads)
    meta["settings"] = dict(reps=reps, min_ms=min_ms, quick=args.quick, only=args.only, threads=args.threads)
    meta["date"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    meta["seconds"] = time.perf_counter() - t_start
    meta["load_average"] = dict(start=load_start, end=os.getloadavg())
    judge_targets(rows)
    text = table(rows) if rows else None
    extra_tables = dict(fused_linear_table=linear_table(linear) if linear else None,
                        torch_linear_heads_table=torch_heads_table(heads) if heads else None,
                        llm_device_memory_table=llm_device_table(device_memory) if device_memory else None,
                        training_step_table=training_table(training) if training else None)
    for t in [text] + list(extra_tables.values()):
        if t:
            print()
            print(t)
    libs = meta["libraries"]
    libs["c"]["sha256_at_start"] = c_lib_at_start
    if libs["c"]["sha256"] != c_lib_at_start:
        print(f"\nnote: {libs['c']['path']} changed during the run: the libera-C rows may mix two builds")
    if libs["c"]["sha256"] != libs["python"]["sha256"]:
        print(f"\nnote: libera-C links {libs['c']['path']}, which differs from the era package's "
              f"{libs['python']['path']} (reinstall the bindings to time the same build)")
    wrong = [f"{r['name']}: {k}" for r in rows for k, s in r["status"].items() if s == "wrong"]
    for name, records in (("torch_linear_heads", (heads or {}).get("logprob", []) + (heads or {}).get("ce", [])),
                          ("llm_device_memory", device_memory or [])):
        for r in records:
            if "error" in r or not r["check"]["ok"]:
                spec = r["spec"]
                what = spec.get("impl", spec.get("backend"))
                wrong.append(f"{name}: {spec['case']} {what}" + (" (error)" if "error" in r else ""))
    for r in training or []:
        wrong += [f"training_step batch {r['batch']}: {n} ({s})" for n, s in r["status"].items() if s != "ok"]
    if wrong:
        print("\nWRONG results or failures (the workloads' wrong columns are not timed): " + "; ".join(wrong))
    c_failed = [r["name"] for r in rows if r["status"].get("libera-C") == "error"]
    if c_failed:
        print("\nbench_c failed on: " + ", ".join(c_failed) + " (see checks in the JSON)")
    print(f"\n{len(rows)} workloads and {len(sections)} sections in {meta['seconds']:.0f} s; "
          f"libera threads {meta['threads']['libera_python']}, "
          f"torch threads {meta['threads']['torch']}; medians of {reps} x >= {min_ms:g} ms; -> {args.json}")
    with open(args.json, "w") as f:
        json.dump(dict(meta=meta, table=text, workloads=rows, fused_linear_head=linear, torch_linear_heads=heads,
                       llm_device_memory=device_memory, training_step=training, **extra_tables), f, indent=1)
        f.write("\n")
    return 1 if wrong or c_failed else 0


if __name__ == "__main__":
    sys.exit(main())
