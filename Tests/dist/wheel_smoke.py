"""Smoke test of an installed era wheel, run by Tests/dist-checks.sh with the virtualenv's
python, from a directory outside the repository, with a bare environment.

    python wheel_smoke.py numpy            era from the virtualenv, libera and OpenBLAS from
                                           the wheel, discrete and continuous ERA with numpy
    python wheel_smoke.py torch SITE       the same, then era.torch, with torch borrowed from
    python wheel_smoke.py jax SITE         SITE (another interpreter's site-packages of the same
                                           Python version, appended to sys.path so that the
                                           virtualenv's era and numpy still come first);
                                           then era.jax (its XLA FFI handlers)

Prints one line "ok ..." and exits 0, or fails with a traceback.
"""

import os
import sys

what = sys.argv[1]
if what in ("torch", "jax"):
    sys.path.append(sys.argv[2])

import numpy as np

import era

here = os.path.dirname(era.__file__)
assert here.startswith(sys.prefix + os.sep), f"era imported from {here}, not from the virtualenv {sys.prefix}"

# Every shared object loaded from the wheel's tree, and none of libera or OpenBLAS from elsewhere.
site = os.path.dirname(here)
maps = {line.split()[-1] for line in open("/proc/self/maps").read().splitlines() if line.endswith(".so") or ".so." in line.split()[-1]}
libera = {path for path in maps if os.path.basename(path).startswith("libera")}
assert libera == {os.path.join(here, "libera.so")}, libera
blas = {path for path in maps if "openblas" in os.path.basename(path)}
ours = {path for path in blas if path.startswith(os.path.join(site, "era_activation.libs") + os.sep)}
assert ours, f"the wheel's OpenBLAS is not loaded: {blas}"
# numpy's wheel carries an OpenBLAS of its own (numpy.libs); none may come from the system
assert all(path.startswith(sys.prefix + os.sep) for path in blas), blas

# Discrete ERA: the output's entropy meets the target, through numpy.
logits = np.linspace(-3.0, 9.0, 24).reshape(2, 12)
out = era.discrete_forward(logits, 1.5)
assert era.check_discrete(out, 1.5).holds and float(era.softmax_entropy(out).min()) >= 1.5 - 1e-9
# Continuous ERA with the library's defaults (log-std bounds included): the bound holds.
log_std = era.continuous_forward(np.array([[0.3, -1.0, 2.0, 0.1]]), -2.0)
assert era.check_continuous(log_std, -2.0).holds
# The fused linear head goes through OpenBLAS (its matrix products).
rng = np.random.default_rng(0)
features = rng.standard_normal((8, 16)).astype(np.float32)
weight = rng.standard_normal((5, 16)).astype(np.float32)
head = era.linear_discrete_ce(features, weight, None, np.arange(8) % 5, 1.0)
assert np.isfinite(head.loss)
assert era.version() == era._era.version_string() and era.abi_version() == era._era.HEADER_ABI_VERSION
message = f"ok numpy: era {era.version()} from {here}"

if what == "torch":
    import torch

    import era.torch

    z = torch.linspace(-3.0, 9.0, 12, dtype=torch.float64, requires_grad=True)
    y = era.torch.discrete_era(z, 1.5)
    y.sum().backward()
    assert float(era.softmax_entropy(y.detach().numpy())) >= 1.5 - 1e-9 and z.grad is not None
    message += f"; era.torch with torch {torch.__version__}"
elif what == "jax":
    import jax

    import era.jax

    z = np.linspace(-3.0, 9.0, 12)
    lowered = jax.jit(lambda v: era.jax.discrete_era(v, 1.5)).lower(z).as_text()
    assert "era_discrete_forward" in lowered, "era.jax did not lower to libera's XLA FFI handler"
    y = np.asarray(jax.jit(lambda v: era.jax.discrete_era(v, 1.5))(z))
    assert float(era.softmax_entropy(y)) >= 1.5 - 1e-9
    message += f"; era.jax (XLA FFI) with jax {jax.__version__}"
print(message)
