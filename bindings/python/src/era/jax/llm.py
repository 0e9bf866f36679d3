"""LLM ERA for JAX (docs/math.md section 3): response entropies, logit scales and a GRPO-batch
helper, over libera. Layouts as in era.torch.llm:

- padded: logits ``[B, L, V]``, labels ``[B, L]``, advantages ``[B]`` or ``[B, L]``,
  response_mask ``[B, L]`` (True on response tokens; None: all); R = B.
- packed: logits ``[T, V]``, labels, advantages and response_ids ``[T]`` (-1: no response),
  and num_responses R, which must be given (a static int: it sets an output shape).

Every position needs a valid label (0..V-1, on an unmasked logit), also outside responses.
Only the log-probs carry a gradient (to the logits); everything else is stop_gradient'ed.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import ShapeDtypeStruct

from .. import llm as _llm
from .._errors import BadIndexError, BadShapeError, DTypeError, python_error
from ._host import host_call
from .functions import _int64, llm_logprob, token_entropy

__all__ = ["llm_response_entropy", "llm_scales", "llm_era", "LLMERAOutput"]


def _grouped_ids(ids: np.ndarray, responses: int) -> np.ndarray:
    """Response ids of a vmapped batch (vmap axes first, tokens last) renumbered so that the
    responses of example n become n*R .. n*R + R-1: one libera call then serves the batch.
    The ids are checked first (integers in -1..R-1), as libera would check them unbatched:
    renumbered, an id below -1 or of R would pass for another example's response."""
    if ids.dtype.kind not in "iu":
        raise python_error(DTypeError, "era.jax response ids", f"ids must be integers, not {ids.dtype}")
    if ids.size and (ids.min() < -1 or ids.max() >= responses):
        raise python_error(BadIndexError, "era.jax response ids",
                           f"an id outside -1..{responses - 1} (min {ids.min()}, max {ids.max()})")
    ids = _int64(ids)
    examples = int(np.prod(ids.shape[:-1], dtype=np.int64))
    offsets = (np.arange(examples, dtype=np.int64) * responses).reshape(ids.shape[:-1] + (1,))
    return np.where(ids >= 0, ids + offsets, -1).reshape(-1)


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
) -> jax.Array:
    """``[T]`` float32 token entropies and ``[T]`` integer ids -> ``[R]`` float32 response
    entropies (mean of the top max(1, floor(top_fraction*L_b)); NaN for an empty response)."""
    where = "era.jax.llm_response_entropy"
    params = _check_params(omega_low, omega_high, k, top_fraction)
    h = jax.lax.stop_gradient(jnp.asarray(token_entropy))
    ids = jnp.asarray(response_ids)
    if h.ndim != 1 or ids.shape != h.shape:
        raise python_error(BadShapeError, where, f"token_entropy and response_ids must be [T], got {h.shape}, {ids.shape}")
    responses = int(num_responses)

    def host(h, ids):
        examples = int(np.prod(h.shape[:-1], dtype=np.int64))
        out = _llm.llm_response_entropy(h.reshape(-1), _grouped_ids(ids, responses), responses * examples, **params)
        return out.reshape(h.shape[:-1] + (responses,))

    return host_call(host, ShapeDtypeStruct((max(responses, 0),), np.float32), h, ids)


def llm_scales(
    response_entropy,
    response_ids,
    advantages,
    *,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
    scale_advantages: bool = True,
    top_fraction: float = _llm.TOP_FRACTION,
):
    """``[R]`` response entropies, ``[T]`` ids and float32 advantages -> (logit_scale ``[T]``,
    advantages ``[T]``), float32, by the rule of section 3."""
    where = "era.jax.llm_scales"
    params = _check_params(omega_low, omega_high, k, top_fraction)
    resp = jax.lax.stop_gradient(jnp.asarray(response_entropy))
    ids = jnp.asarray(response_ids)
    adv = jax.lax.stop_gradient(jnp.asarray(advantages))
    if resp.ndim != 1 or ids.ndim != 1 or adv.shape != ids.shape:
        raise python_error(BadShapeError, where, f"shapes must be [R], [T], [T]: got {resp.shape}, {ids.shape}, {adv.shape}")
    responses = resp.shape[0]

    def host(resp, ids, adv):
        out = _llm.llm_scales(
            resp.reshape(-1), _grouped_ids(ids, responses), adv.reshape(-1), scale_advantages=scale_advantages, **params
        )
        return out.logit_scale.reshape(ids.shape), out.advantages.reshape(ids.shape)

    spec = ShapeDtypeStruct(ids.shape, np.float32)
    return host_call(host, (spec, spec), resp, ids, adv)


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
    scale_advantages: bool = True,
) -> LLMERAOutput:
    """LLM ERA for one GRPO batch (layouts in the module docstring): ERA log-probs
    (differentiable w.r.t. the logits), entropies, scales and rescaled advantages.

    Args:
        logits: ``[B, L, V]`` or ``[T, V]`` float32/bfloat16, already divided by the
            sampling temperature; -inf masks a token.
        labels: integer sampled tokens; advantages: float32.
    """
    where = "era.jax.llm_era"
    logits = jnp.asarray(logits)
    if logits.ndim >= 1 and logits.shape[-1] == 0:
        raise python_error(BadShapeError, where, f"logits {logits.shape} have an empty vocabulary")
    labels = jnp.asarray(labels)
    advantages = jnp.asarray(advantages)
    params = dict(omega_low=omega_low, omega_high=omega_high, k=k, top_fraction=top_fraction)
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
    token_h = token_entropy(flat_logits)
    response_h = llm_response_entropy(token_h, flat_ids, responses, **params)
    scale, new_adv = llm_scales(response_h, flat_ids, advantages.reshape(-1), scale_advantages=scale_advantages, **params)
    logprobs, entropy = llm_logprob(flat_logits, labels.reshape(-1), scale)
    return LLMERAOutput(
        logprobs.reshape(shape),
        new_adv.reshape(shape),
        scale.reshape(shape),
        token_h.reshape(shape),
        response_h,
        entropy.reshape(shape),
    )
