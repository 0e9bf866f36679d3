"""era.jax's two implementations and how a call picks one.

- On CPU: XLA FFI custom calls into libera (era._era_xla, C++ handlers against the XLA FFI
  headers jaxlib ships, built with the package and registered here at import). XLA calls
  them on its own buffers: no Python, no host callback, no copy.
- On any other platform (GPU, TPU): jax.numpy, from the shared formulas of era._formulas,
  which the tests hold to libera.

``backend="auto"`` (every function's default) lowers both and lets XLA keep the one of the
platform the program is compiled for (jax.lax.platform_dependent); ``"ffi"`` insists on the
custom calls (CPU only), ``"jnp"`` forces the formulas on any platform (to test them on
CPU). Called on concrete CPU arrays outside any transformation, the functions call libera
directly through era's numpy layer, so a refused call raises era's exception class itself;
inside jit a refused custom call raises JAX's runtime error carrying era's class and message.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax import export
from jax.experimental.xla_metadata import set_xla_metadata

from .._errors import BadParameterError, python_error

try:
    from .. import _era_xla
except ImportError as error:  # pragma: no cover - the package is built with jax installed
    raise ImportError(
        "era.jax needs era._era_xla, the XLA FFI handlers built with the era package when jax is installed; "
        "install jax, then reinstall era (pip install --no-build-isolation ./bindings/python)"
    ) from error

BACKENDS = ("auto", "ffi", "jnp")
HANDLERS = _era_xla.handlers()
# Targets whose every operand is rows on the last axis: XLA may split them along any leading
# (batch) axis, so a batch-sharded input is computed where it lives.
ROW_WISE = (
    "era_softmax_entropy", "era_gaussian_entropy", "era_tanh_gaussian_entropy", "era_truncated_normal_entropy",
    "era_discrete_forward", "era_token_entropy", "era_llm_logprob_forward", "era_llm_logprob_backward",
    "era_llm_topk_logprob_forward", "era_llm_topk_logprob_backward",
)

for _name, _capsule in HANDLERS.items():
    jax.ffi.register_ffi_target(_name, _capsule, platform="cpu")
for _name in ROW_WISE:
    jax.ffi.register_ffi_target_as_batch_partitionable(_name)


def export_checks() -> list:
    """The safety checks jax.export must skip for era's custom calls, which XLA does not know:
    ``jax.export.export(f, disabled_checks=era.jax.export_checks())``. The exported program
    runs where era.jax is imported (which registers the targets)."""
    return [export.DisabledSafetyCheck.custom_call(name) for name in HANDLERS]


def check_backend(backend: str, where: str) -> str:
    if backend not in BACKENDS:
        raise python_error(BadParameterError, where, f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def concrete_on_cpu(*arrays: Any) -> bool:
    """Whether every argument is a concrete array (no tracer) on the CPU: the call can run
    libera through the numpy layer and raise era's exception classes itself."""
    for a in arrays:
        if a is None:
            continue
        if isinstance(a, jax.core.Tracer):
            return False
        devices = getattr(a, "devices", None)
        if devices is not None and any(d.platform != "cpu" for d in devices()):
            return False
    return True


def call(target: str, results: Any, *args: Any, vmap_method: str = "broadcast_all", **attributes: Any):
    """jax.ffi.ffi_call of an era target. Attributes are Python numbers: floats become float64
    attributes, bools stay bools, ints become int32 (what the handlers declare). A row-wise
    target is marked with its batch axes (every axis of its first operand but the row), so
    that XLA's partitioner may run it on each shard of a batch-sharded input."""
    attrs = {}
    for key, value in attributes.items():
        if isinstance(value, bool):
            attrs[key] = value
        elif isinstance(value, int):
            attrs[key] = np.int32(value)
        else:
            attrs[key] = np.float64(value)
    function = jax.ffi.ffi_call(target, results, vmap_method=vmap_method)
    if target not in ROW_WISE:
        return function(*args, **attrs)
    with set_xla_metadata(num_batch_dims=str(args[0].ndim - 1)):
        return function(*args, **attrs)


def select(backend: str, args: Sequence[Any], ffi: Callable, formula: Callable):
    """ffi(*args) or formula(*args) by the backend: "auto" lowers both and keeps the CPU's
    custom call on CPU, the formula elsewhere."""
    if backend == "ffi":
        return ffi(*args)
    if backend == "jnp":
        return formula(*args)
    return jax.lax.platform_dependent(*args, cpu=ffi, default=formula)
