"""Calling libera from JAX: jax.pure_callback (vmap_method="broadcast_all") under
transformations, a direct call on concrete arrays.

Under vmap with "broadcast_all" every operand of a callback gets the same leading vmap axes
(unbatched ones are tiled), so a host function sees ``vmap_shape + per-example shape``.
Row-wise kernels need nothing more: rows are rows, whatever axes come first. The functions
that group tokens by response, and the residual (one scalar per call in libera), look at
those leading axes explicitly.

Errors: on concrete arrays a refused call raises the ERAError subclass itself; inside jit
(or grad, vmap) it surfaces as JAX's runtime error, whose message carries era's.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

VMAP_METHOD = "broadcast_all"


def host_call(host: Callable[..., Any], result_shape_dtypes: Any, *args: Any) -> Any:
    """host(*numpy arrays) -> numpy arrays matching `result_shape_dtypes`, run directly on
    concrete arrays and through jax.pure_callback on tracers."""
    def on_numpy(*arrays):
        # pure_callback hands over JAX arrays: libera's layer wants numpy (zero-copy on CPU).
        return host(*[np.asarray(a) for a in arrays])

    if not any(isinstance(a, jax.core.Tracer) for a in args):
        return jax.tree_util.tree_map(
            lambda r, spec: jnp.asarray(np.asarray(r, dtype=spec.dtype).reshape(spec.shape)),
            on_numpy(*args),
            result_shape_dtypes,
        )
    return jax.pure_callback(on_numpy, result_shape_dtypes, *args, vmap_method=VMAP_METHOD)


def per_scalar(fn: Callable[[np.ndarray, float], Any], x: np.ndarray, scalar: np.ndarray) -> Any:
    """fn(x, s) for a call whose scalar parameter `s` may have been batched by vmap: `scalar`
    has the vmap shape V (() outside vmap) and `x` the shape V + its own. One call when every
    s is the same (or there is none), else one call per distinct value on the examples that
    use it. `fn` returns an array or a tuple of arrays, each with leading axes those of `x`."""
    vmap_shape = scalar.shape
    flat = scalar.reshape(-1)
    values = np.unique(flat)
    if values.size <= 1:
        return fn(x, float(values[0]) if values.size else 0.0)
    examples = x.reshape((flat.size,) + x.shape[len(vmap_shape):])
    pieces = [(np.flatnonzero(flat == value), fn(examples[flat == value], float(value))) for value in values]
    single = not isinstance(pieces[0][1], tuple)
    outs = []
    for k, template in enumerate((pieces[0][1],) if single else pieces[0][1]):
        out = np.empty((flat.size,) + template.shape[1:], template.dtype)
        for where, result in pieces:
            out[where] = result if single else result[k]
        outs.append(out.reshape(vmap_shape + out.shape[1:]))
    return outs[0] if single else tuple(outs)
