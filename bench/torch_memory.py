#!/usr/bin/env python3
"""One measurement of bench/run.py's torch memory sections, in a process of its own: the
median time of a forward + backward and the growth of the peak resident memory over one
such call. run.py starts one process per (case, size, implementation) with
MALLOC_MMAP_THRESHOLD_=131072 in the environment (glibc then maps every block above
128 KiB on its own and unmaps it on free, instead of keeping freed blocks, which would
inflate the resident peak of later calls), so that the peaks do not mix.

    python3 bench/torch_memory.py SPEC_JSON

SPEC_JSON is an object with "case" and its parameters:
- {"case": "linear_logprob", "impl": IMPL, "tokens", "dim", "vocab", "scales", "reps", "min_ms"}:
  IMPL fused_libera | fused_native (era.torch.llm_linear_logprob, backend libera or native),
  unfused_era (logits = hidden @ weight.T, then era.torch.llm_logprob) or unfused_torch
  (the same logits, then baselines.torch_scaled_logprob); loss (logprob * g).sum(),
  gradients for hidden and weight.
- {"case": "linear_ce", "impl": IMPL, "rows", "dim", "classes", "target_entropy", "tau",
  "reps", "min_ms"}: IMPL fused_libera | fused_native (era.torch.linear_discrete_ce), unfused_era
  (F.linear, era.torch.discrete_era, F.cross_entropy) or plain_torch (F.linear,
  F.cross_entropy: no ERA); gradients for features, weight and bias.
- {"case": "llm_device", "backend": "libera" | "native", "batch", "length", "vocab"}:
  era.torch.llm_logprob on bf16 logits read through the strided slice logits[:, :-1] of a
  [batch, length + 1, vocab] tensor, scale None, loss (logprob * g).sum(); one call.
Optional "threads": torch and libera threads.

The memory: after the inputs exist and one warm-up call, "5" is written to
/proc/self/clear_refs (which resets VmHWM, the peak resident set, to the current VmRSS),
VmRSS is read, one call runs, and VmHWM is read while its outputs (the gradients included)
are still alive: peak_mib = (VmHWM - VmRSS) / 1024. Then the call is timed (reps
repetitions of n calls, n such that a repetition lasts >= min_ms; llm_device: the measured
call alone), and its outputs are compared with libera's Python binding (era.*), which
computes the same quantities from numpy arrays. Prints one JSON object.
"""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import sys
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import torch  # noqa: E402
import torch.nn.functional as Fn  # noqa: E402

import era  # noqa: E402
import era.torch as et  # noqa: E402


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(call):
    """(peak growth in MiB over one call, its seconds, its outputs)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS")
    t0 = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - t0
    peak = status_kib("VmHWM")  # out (the gradients) still alive
    return (peak - before) / 1024.0, seconds, out


def median_ms(call, first_s: float, reps: int, min_ms: float) -> dict:
    n = max(1, math.ceil(min_ms * 1e-3 / max(first_s, 1e-9)))
    per_call = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(n):
                call()
            per_call.append((time.perf_counter() - t0) / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    return dict(median_ms=1e3 * statistics.median(per_call), inner=n, reps_ms=[1e3 * t for t in per_call])


def rel_diff(got, ref) -> dict:
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64).reshape(got.shape)
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    if not np.all(np.isfinite(got)):
        diff = math.inf
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    return dict(max_abs=diff, max_rel=diff / scale if scale > 0 else diff)


def check(diffs: dict, tol: float) -> dict:
    return dict(ok=all(d["max_rel"] <= tol for d in diffs.values()), tol=tol, outputs=diffs)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().numpy()


def linear_logprob(spec: dict) -> dict:
    T, d, V, impl = spec["tokens"], spec["dim"], spec["vocab"], spec["impl"]
    gen = torch.Generator().manual_seed(zlib.crc32(f"linear_logprob {T}x{d}x{V}".encode()))
    hidden = torch.randn(T, d, generator=gen).requires_grad_()
    weight = (torch.randn(V, d, generator=gen) / math.sqrt(d)).requires_grad_()
    labels = torch.randint(0, V, (T,), generator=gen)
    scales = torch.tensor(spec["scales"], dtype=torch.float32)
    scale = scales[torch.randint(0, len(scales), (T,), generator=gen)]
    g = torch.randn(T, generator=gen)

    if impl in ("fused_libera", "fused_native"):
        backend = impl.split("_")[1]

        def forward():
            return et.llm_linear_logprob(hidden, weight, labels, scale, backend=backend)[0]
    elif impl == "unfused_era":
        def forward():
            return et.llm_logprob(hidden @ weight.T, labels, scale)[0]
    elif impl == "unfused_torch":
        import baselines

        def forward():
            return baselines.torch_scaled_logprob(hidden @ weight.T, labels, scale)
    else:
        raise SystemExit(f"torch_memory: unknown linear_logprob implementation {impl!r}")

    def call():
        logprob = forward()
        grad_h, grad_w = torch.autograd.grad((logprob * g).sum(), (hidden, weight))
        return logprob.detach(), grad_h, grad_w

    call()  # warm-up
    peak, first_s, out = measure(call)
    del out
    timing = median_ms(call, first_s, spec["reps"], spec["min_ms"])
    logprob, grad_h, grad_w = call()
    h, w, lab, s, gn = (_np(hidden), _np(weight), labels.numpy(), scale.numpy(), g.numpy())
    ref_lp = era.llm_linear_logprob_forward(h, w, lab, s, with_entropy=False).logprob
    ref = era.llm_linear_logprob_backward(h, w, lab, s, gn)
    diffs = dict(logprob=rel_diff(_np(logprob), ref_lp), grad_hidden=rel_diff(_np(grad_h), ref.hidden),
                 grad_weight=rel_diff(_np(grad_w), ref.weight))
    return dict(peak_mib=peak, first_call_ms=1e3 * first_s, logits_mib=T * V * 4 / 2**20,
                grads_mib=(grad_h.nbytes + grad_w.nbytes) / 2**20, check=check(diffs, 1e-4), **timing)


def linear_ce(spec: dict) -> dict:
    N, d, K, impl = spec["rows"], spec["dim"], spec["classes"], spec["impl"]
    h0, tau = spec["target_entropy"], spec["tau"]
    gen = torch.Generator().manual_seed(zlib.crc32(f"linear_ce {N}x{d}x{K}".encode()))
    features = torch.randn(N, d, generator=gen).requires_grad_()
    weight = (torch.randn(K, d, generator=gen) / math.sqrt(d)).requires_grad_()
    bias = (0.1 * torch.randn(K, generator=gen)).requires_grad_()
    labels = torch.randint(0, K, (N,), generator=gen)

    if impl in ("fused_libera", "fused_native"):
        backend = impl.split("_")[1]

        def forward():
            return et.linear_discrete_ce(features, weight, bias, labels, h0, tau=tau, backend=backend)
    elif impl == "unfused_era":
        def forward():
            return Fn.cross_entropy(et.discrete_era(Fn.linear(features, weight, bias), h0, tau=tau), labels)
    elif impl == "plain_torch":
        def forward():
            return Fn.cross_entropy(Fn.linear(features, weight, bias), labels)
    else:
        raise SystemExit(f"torch_memory: unknown linear_ce implementation {impl!r}")

    def call():
        loss = forward()
        grads = torch.autograd.grad(loss, (features, weight, bias))
        return (loss.detach(),) + grads

    call()  # warm-up
    peak, first_s, out = measure(call)
    del out
    timing = median_ms(call, first_s, spec["reps"], spec["min_ms"])
    loss, gf, gw, gb = call()
    result = dict(peak_mib=peak, first_call_ms=1e3 * first_s, logits_mib=N * K * 4 / 2**20,
                  grads_mib=(gf.nbytes + gw.nbytes + gb.nbytes) / 2**20, **timing)
    if impl == "plain_torch":  # other math (no ERA): nothing to compare with libera
        result["check"] = dict(ok=True, tol=None, outputs={}, note="no ERA: not compared")
        return result
    ref = era.linear_discrete_ce(_np(features), _np(weight), _np(bias), labels.numpy(), h0, tau=tau)
    diffs = dict(loss=rel_diff([float(loss)], [ref.loss]), grad_features=rel_diff(_np(gf), ref.features),
                 grad_weight=rel_diff(_np(gw), ref.weight), grad_bias=rel_diff(_np(gb), ref.bias))
    result["check"] = check(diffs, 1e-4)
    return result


def llm_device(spec: dict) -> dict:
    B, L, V, backend = spec["batch"], spec["length"], spec["vocab"], spec["backend"]
    gen = torch.Generator().manual_seed(zlib.crc32(f"llm_device {B}x{L}x{V}".encode()))
    full = torch.empty(B, L + 1, V, dtype=torch.bfloat16)
    for b in range(B):  # N(0, 4^2), a float32 row block at a time
        full[b] = (4.0 * torch.randn(L + 1, V, generator=gen)).to(torch.bfloat16)
    logits = full[:, :-1].requires_grad_()  # the strided view: a leaf, read in place
    labels = torch.randint(0, V, (B, L), generator=gen)
    g = torch.randn(B, L, generator=gen)

    def call(x, lab, gg):
        logprob, _ = et.llm_logprob(x, lab, None, backend=backend)
        (grad,) = torch.autograd.grad((logprob * gg).sum(), x)
        return logprob.detach(), grad

    call(full[:2, :2].requires_grad_(), labels[:2, :2], g[:2, :2])  # warm-up: same layout and dtype, 4 rows
    peak, seconds, (logprob, grad) = measure(lambda: call(logits, labels, g))
    logits_bytes = logits.numel() * logits.element_size()
    x = logits.detach()
    ref_lp = era.llm_logprob_forward(x, labels, None, with_entropy=False).logprob
    diffs = dict(logprob=rel_diff(logprob.numpy(), ref_lp))
    worst = dict(max_abs=0.0, max_rel=0.0)
    ref_scale = 0.0
    for b in range(B):  # the bf16 gradients a batch row at a time (float copies of all would be 2.5 GB)
        ref = torch.from_numpy(era.llm_logprob_backward(x[b], labels[b], None, g[b]).view(np.int16))
        ref = ref.view(torch.bfloat16).float()
        worst["max_abs"] = max(worst["max_abs"], float((grad[b].float() - ref).abs().max()))
        ref_scale = max(ref_scale, float(ref.abs().max()))
    worst["max_rel"] = worst["max_abs"] / ref_scale if ref_scale > 0 else worst["max_abs"]
    diffs["grad"] = worst
    return dict(peak_mib=peak, seconds=seconds, logits_bytes=logits_bytes, grad_bytes=grad.nbytes,
                peak_over_logits=peak * 2**20 / logits_bytes,
                grad_contiguous=grad.is_contiguous(), check=check(diffs, 1e-2))


def main() -> int:
    spec = json.loads(sys.argv[1])
    threads = spec.get("threads")
    if threads is not None:
        era.set_num_threads(threads)
        if threads > 0:
            torch.set_num_threads(threads)
    cases = dict(linear_logprob=linear_logprob, linear_ce=linear_ce, llm_device=llm_device)
    result = cases[spec["case"]](spec)
    result.update(spec=spec, torch_threads=torch.get_num_threads(), libera_threads=era.get_num_threads(),
                  mmap_threshold=os.environ.get("MALLOC_MMAP_THRESHOLD_"))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
