"""A short soak: 10^5 mixed calls of the numpy level from 4 Python threads at once (libera
releases the GIL), while one of them keeps changing libera's thread setting. Every result
must equal, bit for bit, the one computed beforehand on one thread with the setting at 1
(libera computes each row by the same code whatever the split), and the process's resident
memory must grow by less than 1 MiB over the 90,000 calls after a warm-up of 10,000 (a leak
of 12 bytes a call would show; measured: between -252 and +40 KiB): no thread or buffer
left behind.

The soak runs in a child interpreter, so that what earlier tests left in the process does
not count. Runtime: 13 to 21 s on two cores (small shapes, a quarter of the calls large
enough to be split into blocks).
"""

import gc
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

import era

CALLS = 100_000
WARM_UP = 10_000  # calls before the memory baseline (every case and thread setting seen)
THREADS = 4
SETTINGS = (1, 2, 3, 0)  # 0: the default, the number of online processors
SWITCH_EVERY = 97  # calls of the switching thread between two changes of the setting
RSS_LIMIT = 1 << 20  # bytes
SEGMENT = 10_000  # calls between two readings of the resident memory


def resident_bytes():
    """The process's resident memory in bytes (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def cases():
    """(name, function, arguments, keyword arguments): the activations forward and backward,
    token entropy, the log-prob forward and backward, and the bound checks; small rows, and a
    quarter of the cases with enough work (over 2**16 operations a block) for libera to split
    their rows across its threads."""
    rng = np.random.default_rng(20260)
    out = []
    for rows, cols in ((1, 5), (7, 3), (33, 17), (96, 256)):
        for dtype in (np.float32, np.float64):
            z = (rng.normal(size=(rows, cols)) * 3).astype(dtype)
            g = rng.normal(size=(rows, cols)).astype(dtype)
            target = 0.5 * np.log(cols) if cols > 1 else None
            if target is not None:
                out.append(("discrete_forward", era.discrete_forward, (z, target), {"mode": "exact"}))
                out.append(("discrete_forward tight", era.discrete_forward, (z, target), {"mode": "tight"}))
                out.append(("discrete_backward", era.discrete_backward, (z, g, target), {}))
                out.append(("check_discrete", era.check_discrete, (era.discrete_forward(z, target), target), {}))
            out.append(("continuous_forward", era.continuous_forward, (z, -0.5 * cols), {"residual": 0.25}))
            out.append(("continuous_backward", era.continuous_backward, (z, g, -0.5 * cols), {"residual": 0.25}))
            log_std = era.continuous_forward(z, -0.5 * cols, residual=0.25)
            out.append(("check_continuous", era.check_continuous, (log_std, -0.5 * cols), {"residual": 0.25}))
            out.append(("softmax_entropy", era.softmax_entropy, (z,), {}))
        logits = (rng.normal(size=(rows, cols)) * 4).astype(np.float32)
        labels = rng.integers(0, cols, size=rows)
        scale = rng.choice(np.array([0.5, 1.0, 2.0], np.float32), size=rows)
        grad = rng.normal(size=rows).astype(np.float32)
        out.append(("token_entropy", era.token_entropy, (logits,), {}))
        out.append(("llm_logprob_forward", era.llm_logprob_forward, (logits, labels, scale), {}))
        out.append(("llm_logprob_backward", era.llm_logprob_backward, (logits, labels, scale, grad), {}))
    return out


def flatten(result):
    """A result as a tuple of (dtype, shape, bytes), or of plain values, for exact equality."""
    if isinstance(result, np.ndarray):
        return ((result.dtype.str, result.shape, result.tobytes()),)
    if hasattr(result, "to_dict"):
        return tuple(sorted(result.to_dict().items()))
    if isinstance(result, tuple):
        return tuple(item for part in result for item in flatten(part))
    return (result,)


def soak():
    """Runs the soak in this process: {"problems": [...], "resident": [bytes after the
    warm-up, then after every SEGMENT calls], "calls": N, "seconds": wall time}."""
    start_time = time.perf_counter()
    table = cases()
    era.set_num_threads(1)
    try:
        reference = [flatten(fn(*args, **kwargs)) for _, fn, args, kwargs in table]
    finally:
        era.set_num_threads(0)
    problems = []

    def worker(index, start, count, switching):
        try:
            for i in range(start, start + count):
                if switching and i % SWITCH_EVERY == 0:
                    era.set_num_threads(SETTINGS[(i // SWITCH_EVERY) % len(SETTINGS)])
                case = (index * 7919 + i * 31) % len(table)
                name, fn, args, kwargs = table[case]
                if flatten(fn(*args, **kwargs)) != reference[case]:
                    problems.append(f"thread {index}, call {i}: {name} differs from the one-thread result")
                    return
        except Exception as error:  # noqa: BLE001 - reported by the parent's assertion
            problems.append(f"thread {index}: {type(error).__name__}: {error}")

    def phase(start, calls):
        each = calls // THREADS
        threads = [threading.Thread(target=worker, args=(t, start, each, t == 0)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return each * THREADS

    resident = []
    try:
        done = phase(0, WARM_UP)
        while done < CALLS:
            gc.collect()
            resident.append(resident_bytes())
            done += phase(done, min(SEGMENT, CALLS - done))
        gc.collect()
        resident.append(resident_bytes())
    finally:
        era.set_num_threads(0)
    return {"problems": problems[:5], "resident": resident, "calls": done,
            "seconds": time.perf_counter() - start_time}


def test_soak_threads_and_thread_settings_give_identical_results_and_no_growth():
    # In a fresh interpreter: the resident memory of a process that earlier tests filled
    # (torch's and jax's pools, malloc arenas of their threads) keeps settling for a while,
    # which says nothing about era.
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nsoak: {result['calls']} calls in {result['seconds']:.1f} s")
    assert result["calls"] == CALLS
    assert result["problems"] == [], result["problems"]
    resident = result["resident"]
    if None not in resident:
        growth = resident[-1] - resident[0]
        steps = [(b - a) // 1024 for a, b in zip(resident, resident[1:])]
        print(f"soak: resident memory {resident[0] // 1024} KiB after the warm-up, grew by {growth // 1024} KiB")
        assert growth < RSS_LIMIT, (f"resident memory grew by {growth} bytes over {CALLS - WARM_UP} calls "
                                    f"(KiB per {SEGMENT} calls: {steps})")


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    print(json.dumps(soak()))
