"""LLM ERA for JAX (docs/math.md section 3): response entropies, logit scales and a GRPO-batch
helper, over libera. Layouts as in era.torch.llm:

- padded: logits ``[B, L, V]``, labels ``[B, L]``, advantages ``[B]`` or ``[B, L]``,
  response_mask ``[B, L]`` (True on response tokens; None: all); R = B.
- packed: logits ``[T, V]``, labels, advantages and response_ids ``[T]`` (-1: no response),
  and num_responses R, which must be given (a static int: it sets an output shape).

Every position needs a valid label (0..V-1, on an unmasked logit), also outside responses.
Only the log-probs carry a gradient (to the logits); everything else is stop_gradient'ed.
On CPU every step is a custom call into libera; elsewhere the shared formulas (era/jax/_ffi.py).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import _formulas as F
from .. import llm as _llm
from .._errors import BadShapeError, python_error
from . import _ffi
from .functions import JNP, _int64, _numpy, llm_logprob, poisoned, token_entropy

__all__ = ["llm_response_entropy", "llm_scales", "llm_era", "LLMERAOutput"]


def _check_params(omega_low, omega_high, k, top_fraction) -> dict:
    params = dict(omega_low=float(omega_low), omega_high=float(omega_high), k=float(k), top_fraction=float(top_fraction))
    _llm.llm_response_entropy(np.zeros(0, np.float32), np.zeros(0, np.int64), 0, **params)  # libera checks them
    return params


def llm_response_entropy(
    token_entropy,
    response_ids,
    num_responses: int,
    *,
    top_fraction: float = _llm.TOP_FRACTION,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
    backend: str = "auto",
) -> jax.Array:
    """``[T]`` float32 token entropies and ``[T]`` integer ids -> ``[R]`` float32 response
    entropies (mean of the top max(1, floor(top_fraction*L_b)); NaN for an empty response).
    Under vmap the custom call runs once per example (each has its own responses)."""
    where = "era.jax.llm_response_entropy"
    _ffi.check_backend(backend, where)
    params = _check_params(omega_low, omega_high, k, top_fraction)
    h = jax.lax.stop_gradient(jnp.asarray(token_entropy))
    ids = jnp.asarray(response_ids)
    if h.ndim != 1 or ids.shape != h.shape:
        raise python_error(BadShapeError, where, f"token_entropy and response_ids must be [T], got {h.shape}, {ids.shape}")
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        _llm.llm_response_entropy(np.zeros(0, np.float32), np.zeros(0, ids.dtype), 0, **params)  # DTypeError
    responses = int(num_responses)
    if backend != "jnp" and _ffi.concrete_on_cpu(h, ids):
        return _numpy(lambda h, ids: _llm.llm_response_entropy(h, _int64(ids), responses, **params), h, ids)
    spec = jax.ShapeDtypeStruct((max(responses, 0),), jnp.float32)

    def ffi(h, ids):
        return _ffi.call("era_llm_response_entropy", spec, h, ids, vmap_method="sequential", **params)

    def formula(h, ids):
        faults = F.response_faults(JNP, h, ids, responses)
        safe = jnp.where(faults != 0, -1, ids)
        out = F.response_entropy(JNP, JNP.astype(h, jnp.float64), safe, responses, params["top_fraction"])
        return jnp.where(jnp.any(faults != 0), jnp.nan, out).astype(jnp.float32)

    return _ffi.select(backend, (h, ids), ffi, formula)


def llm_scales(
    response_entropy,
    response_ids,
    advantages,
    *,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
    scale_advantages: bool = _llm.SCALE_ADVANTAGES,
    top_fraction: float = _llm.TOP_FRACTION,
    backend: str = "auto",
):
    """``[R]`` response entropies, ``[T]`` ids and float32 advantages -> (logit_scale ``[T]``,
    advantages ``[T]``), float32, by the rule of section 3."""
    where = "era.jax.llm_scales"
    _ffi.check_backend(backend, where)
    params = _check_params(omega_low, omega_high, k, top_fraction)
    resp = jax.lax.stop_gradient(jnp.asarray(response_entropy))
    ids = jnp.asarray(response_ids)
    adv = jax.lax.stop_gradient(jnp.asarray(advantages))
    if resp.ndim != 1 or ids.ndim != 1 or adv.shape != ids.shape:
        raise python_error(BadShapeError, where, f"shapes must be [R], [T], [T]: got {resp.shape}, {ids.shape}, {adv.shape}")
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        _llm.llm_response_entropy(np.zeros(0, np.float32), np.zeros(0, ids.dtype), 0, **params)  # DTypeError
    if backend != "jnp" and _ffi.concrete_on_cpu(resp, ids, adv):
        def host(resp, ids, adv):
            out = _llm.llm_scales(resp, _int64(ids), adv, scale_advantages=scale_advantages, **params)
            return out.logit_scale, out.advantages

        return _numpy(host, resp, ids, adv)
    spec = jax.ShapeDtypeStruct(ids.shape, jnp.float32)

    def ffi(resp, ids, adv):
        return _ffi.call("era_llm_scales", (spec, spec), resp, ids, adv, vmap_method="sequential",
                         scale_advantages=bool(scale_advantages), **params)

    def formula(resp, ids, adv):
        safe = jnp.where((ids < -1) | (ids >= resp.shape[0]), -1, ids)
        scale, new = F.scales(JNP, resp, safe, adv, params["omega_low"], params["omega_high"], params["k"],
                              scale_advantages)
        faults = F.scale_faults(JNP, resp, ids, adv, new)
        return poisoned(scale, faults), poisoned(new, faults)

    return _ffi.select(backend, (resp, ids, adv), ffi, formula)


class LLMERAOutput(NamedTuple):
    """What llm_era returns (per-token arrays have the labels' shape): logprobs (the only
    differentiable output), advantages A', logit_scale s, token_entropy H_t,
    response_entropy ``[R]``, entropy of softmax(s*z)."""

    logprobs: jax.Array
    advantages: jax.Array
    logit_scale: jax.Array
    token_entropy: jax.Array
    response_entropy: jax.Array
    entropy: jax.Array


def llm_era(
    logits,
    labels,
    advantages,
    *,
    response_mask=None,
    response_ids=None,
    num_responses: Optional[int] = None,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
    top_fraction: float = _llm.TOP_FRACTION,
    scale_advantages: bool = _llm.SCALE_ADVANTAGES,
    backend: str = "auto",
    top_k: Optional[int] = None,
) -> LLMERAOutput:
    """LLM ERA for one GRPO batch (layouts in the module docstring): ERA log-probs
    (differentiable w.r.t. the logits), entropies, scales and rescaled advantages.

    Args:
        logits: ``[B, L, V]`` or ``[T, V]`` float32/bfloat16, already divided by the
            sampling temperature; -inf masks a token.
        labels: integer sampled tokens; advantages: float32.
        backend: "auto", "ffi" or "jnp" (era/jax/_ffi.py).
        top_k: None, or k >= 1 for the official ERA-LLM actor's top-k log-probs
            (era.jax.llm_logprob); the entropies and scales stay the full-vocabulary ones.
    """
    where = "era.jax.llm_era"
    logits = jnp.asarray(logits)
    if logits.ndim >= 1 and logits.shape[-1] == 0:
        raise python_error(BadShapeError, where, f"logits {logits.shape} have an empty vocabulary")
    labels = jnp.asarray(labels)
    advantages = jnp.asarray(advantages)
    params = dict(omega_low=omega_low, omega_high=omega_high, k=k, top_fraction=top_fraction, backend=backend)
    if logits.ndim == 3:
        batch, length = logits.shape[:2]
        if response_ids is not None:
            raise python_error(BadShapeError, where, "[B, L, V] logits take response_mask, not response_ids")
        rows = jnp.broadcast_to(jnp.arange(batch)[:, None], (batch, length))
        ids = rows if response_mask is None else jnp.where(jnp.asarray(response_mask, bool), rows, -1)
        if advantages.shape == (batch,):
            advantages = jnp.broadcast_to(advantages[:, None], (batch, length))
        responses = batch
    elif logits.ndim == 2:
        if response_mask is not None or response_ids is None or num_responses is None:
            raise python_error(BadShapeError, where, "[T, V] logits take response_ids and num_responses")
        ids, responses = jnp.asarray(response_ids), int(num_responses)
    else:
        raise python_error(BadShapeError, where, f"logits must be [B, L, V] or [T, V], got {logits.shape}")
    if labels.shape != logits.shape[:-1] or advantages.shape != labels.shape or ids.shape != labels.shape:
        raise python_error(BadShapeError, where, f"labels {labels.shape}, advantages {advantages.shape} and response "
                           f"ids {ids.shape} must all be {logits.shape[:-1]}")
    shape = labels.shape
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_ids = ids.reshape(-1)
    token_h = token_entropy(flat_logits, backend=backend)
    response_h = llm_response_entropy(token_h, flat_ids, responses, **params)
    scale, new_adv = llm_scales(response_h, flat_ids, advantages.reshape(-1), scale_advantages=scale_advantages, **params)
    logprobs, entropy = llm_logprob(flat_logits, labels.reshape(-1), scale, backend=backend, top_k=top_k)
    return LLMERAOutput(
        logprobs.reshape(shape),
        new_adv.reshape(shape),
        scale.reshape(shape),
        token_h.reshape(shape),
        response_h,
        entropy.reshape(shape),
    )
