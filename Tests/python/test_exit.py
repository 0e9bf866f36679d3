"""Interpreter exit while a daemon thread is inside an era call.

A daemon thread that is still in a libera call when the main thread exits used to abort the
process (exit 134, "terminate called without an active exception"): the binding took the
GIL back with a C++ destructor while CPython finalised, and CPython's pthread_exit of such a
thread cannot unwind through a noexcept destructor. Each binding runs here in a subprocess,
several times, with a daemon thread calling era in a loop (most of its time inside libera)
while the main thread exits; every run must exit 0 with nothing on stderr. torch and JAX
abort by themselves in this situation (their own GIL handling); era inside them must exit
exactly as they do without era.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import pytest

RUNS = 3

PROGRAM = textwrap.dedent(
    """
    import sys, threading, time
    import numpy as np
    import era
    binding = sys.argv[1]
    z = np.random.default_rng(0).normal(size=(64, 32000)).astype(np.float32)
    labels = np.zeros(64, np.int64)
    if binding == "numpy":
        call = lambda: era.token_entropy(z)
    elif binding == "raw":
        from era import _era
        out = np.empty(64, np.float32)
        call = lambda: _era.token_entropy(64, 32000, z, out)
    elif binding == "torch":
        import torch, era.torch as et
        t, tl = torch.from_numpy(z), torch.from_numpy(labels)
        def call():
            et.token_entropy(t)
            et.llm_logprob(t, tl)
    elif binding == "torch-backward":
        import torch, era.torch as et
        t, tl = torch.from_numpy(z).requires_grad_(), torch.from_numpy(labels)
        def call():
            et.llm_logprob(t, tl)[0].sum().backward()
    elif binding == "torch-control":
        import torch
        t = torch.from_numpy(z).requires_grad_()
        def call():
            torch.logsumexp(t, -1).sum().backward()
    elif binding == "jax":
        import jax, jax.numpy as jnp, era.jax as ej
        f = jax.jit(lambda x: ej.token_entropy(x).sum())
        x = jnp.asarray(z)
        call = lambda: f(x).block_until_ready()
    elif binding == "jax-control":
        import jax, jax.numpy as jnp
        f = jax.jit(lambda x: jax.nn.logsumexp(x, axis=-1).sum())
        x = jnp.asarray(z)
        call = lambda: f(x).block_until_ready()
    elif binding == "control":
        call = lambda: np.exp(z).sum()
    call()
    inside = threading.Event()
    def loop():
        while True:
            inside.set()
            call()
    threading.Thread(target=loop, daemon=True).start()
    inside.wait()
    time.sleep(0.05)
    print("exiting", flush=True)
    """
)


@functools.lru_cache(maxsize=None)
def run_exits(binding):
    """(returncode, stdout, stderr) of RUNS runs of PROGRAM for `binding`."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    runs = []
    for _ in range(RUNS):
        done = subprocess.run([sys.executable, "-c", PROGRAM, binding], capture_output=True, text=True,
                              timeout=120, env=env)
        runs.append((done.returncode, done.stdout, done.stderr))
    return tuple(runs)


@pytest.mark.parametrize("binding", ["numpy", "raw", "control"])
def test_exit_while_a_daemon_thread_is_inside_era(binding):
    for run, (code, out, err) in enumerate(run_exits(binding)):
        assert out == "exiting\n", (run, out, err)
        assert code == 0 and err == "", (run, code, err[-2000:])


def abort_kind(stderr):
    """Which C++ abort a run's stderr shows (None: another failure)."""
    for kind in ("terminate called without an active exception", "exception not rethrown"):
        if kind in stderr:
            return kind
    return None


def same_exit_as_the_framework(binding, control):
    """`binding` exits as the framework's own `control` program does: cleanly where that is
    clean, and never with the abort era's binding used to cause. (With torch 2.15 and JAX
    0.10 the frameworks themselves abort when a daemon thread is inside one of their own
    calls at exit: torch with "terminate called without an active exception" from its
    pybind11 GIL release, jaxlib with "FATAL: exception not rethrown".)"""
    control_runs = run_exits(control)
    control_clean = all(code == 0 and err == "" for code, _, err in control_runs)
    control_aborts = {abort_kind(err) for code, _, err in control_runs if code != 0}
    for run, (code, out, err) in enumerate(run_exits(binding)):
        assert out == "exiting\n", (run, out, err)
        if control_clean:
            assert code == 0 and err == "", (run, code, err[-2000:])
        else:
            assert code == 0 or abort_kind(err) in control_aborts, (run, code, err[-2000:], control_aborts)


@pytest.mark.parametrize("binding, control, module", [
    ("torch", "torch-control", "torch"),
    ("torch-backward", "torch-control", "torch"),
    ("jax", "jax-control", "era._era_xla"),
])
def test_exit_while_a_daemon_thread_is_inside_era_in_a_framework(binding, control, module):
    """era.torch's kernels go through the fixed binding, but every torch operator (also
    torch.empty, and the backward engine) releases the GIL in torch's own pybind11 code,
    which aborts the same way; era.jax's FFI handlers never touch the GIL, and the Python
    thread waits inside jaxlib. So each exits as plain torch or JAX does."""
    pytest.importorskip(module.split(".")[0])
    pytest.importorskip(module)
    same_exit_as_the_framework(binding, control)
