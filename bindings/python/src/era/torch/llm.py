"""LLM ERA for a GRPO batch (docs/math.md section 3): one call from the policy-update logits
to ERA log-probs, entropies, logit scales and rescaled advantages.

Two layouts:
- padded: logits ``[B, L, V]``, labels ``[B, L]``, advantages ``[B]`` (one per response) or
  ``[B, L]``, and ``response_mask`` ``[B, L]`` (True on response tokens; None: all tokens).
  Row b is response b.
- packed (verl's remove-padding layout): logits ``[T, V]``, labels ``[T]``, advantages
  ``[T]``, and either ``response_ids`` ``[T]`` (int64 or int32, -1 for prompt or padding
  tokens) with ``num_responses`` R (default: max id + 1, which reads the ids back to the
  host: pass it under torch.compile), or ``cu_seqlens`` ``[R + 1]`` (the sequence boundaries:
  sequence b holds tokens cu_seqlens[b] .. cu_seqlens[b+1]-1) with an optional
  ``response_mask`` ``[T]`` marking the response tokens among them.

Every position needs a valid label (0..V-1, on an unmasked logit), also outside the
responses: replace an ignore index such as -100 by any valid token (e.g.
``labels.clamp(min=0)``) and mask the loss instead. Positions outside the responses get
scale 1 and their advantage unchanged.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from .. import llm as _llm
from .._errors import BadShapeError, python_error
from . import _ops
from . import distributed as _distributed
from ._bridge import native_path
from .functions import FLOATS, LABELS, labels_of, require, require_rows, top_k_of

__all__ = ["LLMERAOutput", "llm_era", "LLMERA"]


class LLMERAOutput(NamedTuple):
    """What llm_era returns; per-token tensors have the labels' shape.

    logprobs: logp'_t, differentiable w.r.t. the logits (the scales are constants).
    advantages: A'_t = A_t / s_t (A_t when scale_advantages is off).
    logit_scale: s_t in {k, 1, 1/k}.
    token_entropy: H_t, the entropy of softmax(z_t) ERA decides on (nats).
    response_entropy: ``[R]`` Hresp_b (NaN for a response without tokens).
    entropy: the entropy of softmax(s_t*z_t), the distribution the update sees (nats).
    Only ``logprobs`` carries a gradient; the rest are detached.
    """

    logprobs: torch.Tensor
    advantages: torch.Tensor
    logit_scale: torch.Tensor
    token_entropy: torch.Tensor
    response_entropy: torch.Tensor
    entropy: torch.Tensor


def _ids_from_boundaries(cu_seqlens, response_mask, tokens: int, where: str):
    """Response ids ``[T]`` and R from sequence boundaries (and a mask of response tokens):
    a sorted search on the device, no host read."""
    require(cu_seqlens, LABELS, where, "cu_seqlens")
    if cu_seqlens.dim() != 1 or cu_seqlens.shape[0] < 1:
        raise python_error(BadShapeError, where, f"cu_seqlens must be [R + 1], got shape {tuple(cu_seqlens.shape)}")
    responses = cu_seqlens.shape[0] - 1
    positions = torch.arange(tokens, device=cu_seqlens.device, dtype=cu_seqlens.dtype)
    ids = torch.searchsorted(cu_seqlens, positions, right=True).long() - 1
    outside = (ids < 0) | (ids >= responses)
    if response_mask is not None:
        if tuple(response_mask.shape) != (tokens,):
            raise python_error(BadShapeError, where, f"response_mask {tuple(response_mask.shape)} must be [T] = "
                               f"({tokens},) with cu_seqlens")
        outside = outside | ~response_mask.to(torch.bool)
    return torch.where(outside, torch.full_like(ids, -1), ids), responses


def _layout(logits, labels, advantages, response_mask, response_ids, num_responses, cu_seqlens, where):
    """(response ids, advantages, R), both per-token tensors of the labels' shape."""
    if logits.dim() == 3:
        if cu_seqlens is not None:
            raise python_error(BadShapeError, where, "[B, L, V] logits take response_mask, not cu_seqlens")
        batch, length = logits.shape[:2]
        if response_ids is not None:
            raise python_error(BadShapeError, where, "[B, L, V] logits take response_mask, not response_ids")
        if tuple(labels.shape) != (batch, length):
            raise python_error(BadShapeError, where, f"labels {tuple(labels.shape)} must be [B, L] = {(batch, length)}")
        rows = torch.arange(batch, device=logits.device).unsqueeze(1).expand(batch, length)
        if response_mask is None:
            ids = rows.contiguous()
        else:
            if tuple(response_mask.shape) != (batch, length):
                raise python_error(BadShapeError, where, f"response_mask {tuple(response_mask.shape)} must be "
                                   f"[B, L] = {(batch, length)}")
            ids = torch.where(response_mask.to(torch.bool), rows, torch.full_like(rows, -1))
        if tuple(advantages.shape) == (batch,):
            advantages = advantages.unsqueeze(1).expand(batch, length)
        elif tuple(advantages.shape) != (batch, length):
            raise python_error(BadShapeError, where, f"advantages {tuple(advantages.shape)} must be [B] or [B, L]")
        return ids, advantages, batch
    if logits.dim() == 2:
        tokens = logits.shape[0]
        if cu_seqlens is not None:
            if response_ids is not None:
                raise python_error(BadShapeError, where, "[T, V] logits take response_ids or cu_seqlens, not both")
            response_ids, num_responses = _ids_from_boundaries(cu_seqlens, response_mask, tokens, where)
        elif response_mask is not None or response_ids is None:
            raise python_error(BadShapeError, where, "[T, V] logits take response_ids (and num_responses) or "
                               "cu_seqlens (and a response_mask)")
        require(response_ids, LABELS, where, "response_ids")
        for name, t in (("labels", labels), ("advantages", advantages), ("response_ids", response_ids)):
            if tuple(t.shape) != (tokens,):
                raise python_error(BadShapeError, where, f"{name} {tuple(t.shape)} must be [T] = ({tokens},)")
        if num_responses is None:  # reads the ids back: pass num_responses under torch.compile
            num_responses = int(response_ids.max()) + 1 if tokens else 0
        return response_ids.long(), advantages, int(num_responses)
    raise python_error(BadShapeError, where, f"logits must be [B, L, V] or [T, V], got {tuple(logits.shape)}")


def llm_era(
    logits: torch.Tensor,
    labels: torch.Tensor,
    advantages: torch.Tensor,
    *,
    response_mask: Optional[torch.Tensor] = None,
    response_ids: Optional[torch.Tensor] = None,
    num_responses: Optional[int] = None,
    cu_seqlens: Optional[torch.Tensor] = None,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
    top_fraction: float = _llm.TOP_FRACTION,
    scale_advantages: bool = _llm.SCALE_ADVANTAGES,
    backend: str = "auto",
    top_k: Optional[int] = None,
    process_group=None,
) -> LLMERAOutput:
    """LLM ERA for one GRPO batch (layouts in the module docstring).

    Args:
        logits: ``[B, L, V]`` or ``[T, V]`` policy logits already divided by the sampling
            temperature (float32, bfloat16, float16 or float64); -inf masks a token. Strided
            views such as verl's ``logits[:, :-1]`` are read in place, never copied.
        labels: int64 or int32 sampled tokens. advantages: float32 or float64.
        omega_low, omega_high, k, top_fraction, scale_advantages: the rule of section 3
            (defaults: libera's, era.llm.OMEGA_LOW, OMEGA_HIGH, K, TOP_FRACTION, SCALE_ADVANTAGES).
        backend: "auto" (libera for CPU tensors, the device path elsewhere), "libera" or
            "native" (era.torch.functions).
        top_k: None, or k >= 1 for the official ERA-LLM actor's top-k log-probs (k = 20 in
            its runs): ``logprobs`` is then ``s_t z_t[a_t] - logsumexp`` over the k largest
            scaled logits, -1e4 with zero gradient for a label outside them (the lower index
            wins a tie at the k-th value). The token and response entropies, hence the
            scales, stay the full-vocabulary ones (era.torch.llm_logprob).
        process_group: a torch.distributed group whose processes each hold some of the
            batch's tokens (sequence parallelism: a response's tokens may sit on several of
            them), or None. Every process passes its own tokens with GLOBAL response ids
            (response_ids with num_responses, cu_seqlens shifted by the share's first token,
            or the [B, L] layout) and the same parameters; the response entropies, and so the
            scales, are those of the whole batch (era.torch.distributed: each process sends
            R + 3 integers and sum_b k_b entropies, never per-token values). A process
            whose input is refused raises its error and the others raise
            era.PeerInputError; none is left waiting. Every process must call.
    Returns:
        LLMERAOutput. A policy-gradient loss then reads e.g.
        ``-(out.advantages * out.logprobs * mask).sum() / mask.sum()`` (or the clipped
        GRPO objective with ``out.logprobs`` in place of the log-probs).
    """
    where = "era.torch.llm_era"

    def local():
        require(logits, FLOATS, where, "logits")
        require(advantages, (torch.float32, torch.float64), where, "advantages")
        if process_group is not None and logits.dim() == 2 and response_ids is not None and num_responses is None:
            raise python_error(BadShapeError, where, "with a process_group, pass num_responses with response_ids "
                               "(each process sees only its own ids)")
        ids, adv, responses = _layout(logits, labels, advantages, response_mask, response_ids, num_responses,
                                      cu_seqlens, where)
        require_rows(logits, where, "logits")
        checked = labels_of(labels, logits.shape[:-1], where)
        device_path = native_path(logits, backend, where)
        topk = top_k_of(top_k, where)
        token_h = _ops.call(_ops.token_entropy, logits.detach(), device_path)
        return ids, adv, responses, checked, device_path, token_h, topk

    if process_group is None:
        ids, adv, responses, labels, device_path, token_h, topk = local()
        response_h = None
    else:
        def step():
            _ops.native.check_llm_params(float(omega_low), float(omega_high), float(k), float(top_fraction))
            batch = local()
            ids, responses, token_h = batch[0].reshape(-1), batch[2], batch[5].reshape(-1)
            _distributed.check_members(token_h, ids, responses, where)
            return batch, _distributed.local_counts(ids, responses)

        batch, totals = _distributed.agree_on_input(process_group, where, step)
        ids, adv, responses, labels, device_path, token_h, topk = batch
        response_h = _distributed.response_entropy_across(token_h.reshape(-1), ids.reshape(-1), totals,
                                                          float(top_fraction), process_group)
    return scaled_batch(
        token_h, ids, adv, responses, device_path, omega_low, omega_high, k, top_fraction, scale_advantages,
        lambda scale: _ops.apply(_ops.LLMLogprobFunction, _ops.EagerLLMLogprob, logits, labels, scale, device_path,
                                 topk),
        response_h)


def scaled_batch(token_h, ids, advantages, responses, device_path, omega_low, omega_high, k, top_fraction,
                 scale_advantages, logprobs, response_h=None) -> LLMERAOutput:
    """The rest of llm_era once the token entropies are known: response entropies (unless
    given), scales, and the scaled log-probs, which ``logprobs(logit_scale) -> (logprob,
    entropy)`` gives."""
    if response_h is None:
        response_h = _ops.call(_ops.llm_response_entropy, token_h, ids, responses, float(top_fraction), device_path)
    logit_scale, new_adv = _ops.call(_ops.llm_scales, response_h, ids, advantages.detach(), float(omega_low),
                                     float(omega_high), float(k), bool(scale_advantages), device_path)
    logprob, entropy = logprobs(logit_scale)
    return LLMERAOutput(logprob, new_adv, logit_scale, token_h, response_h, entropy)


class LLMERA(nn.Module):
    """llm_era with its parameters held by a module: ``forward(logits, labels, advantages,
    response_mask=None, response_ids=None, num_responses=None, cu_seqlens=None,
    process_group=None) -> LLMERAOutput``."""

    def __init__(
        self,
        *,
        omega_low: float = _llm.OMEGA_LOW,
        omega_high: float = _llm.OMEGA_HIGH,
        k: float = _llm.K,
        top_fraction: float = _llm.TOP_FRACTION,
        scale_advantages: bool = _llm.SCALE_ADVANTAGES,
        backend: str = "auto",
        top_k: Optional[int] = None,
    ):
        super().__init__()
        self.params = dict(
            omega_low=omega_low, omega_high=omega_high, k=k, top_fraction=top_fraction,
            scale_advantages=scale_advantages, backend=backend, top_k=top_k,
        )
        _ops.native.check_llm_params(float(omega_low), float(omega_high), float(k), float(top_fraction))
        top_k_of(top_k, "era.torch.LLMERA")

    def forward(self, logits, labels, advantages, response_mask=None, response_ids=None, num_responses=None,
                cu_seqlens=None, process_group=None):
        return llm_era(
            logits, labels, advantages, response_mask=response_mask, response_ids=response_ids,
            num_responses=num_responses, cu_seqlens=cu_seqlens, process_group=process_group, **self.params,
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.params.items())
