"""LLM ERA for a GRPO batch (docs/math.md section 3): one call from the policy-update logits
to ERA log-probs, entropies, logit scales and rescaled advantages.

Two layouts:
- padded: logits ``[B, L, V]``, labels ``[B, L]``, advantages ``[B]`` (one per response) or
  ``[B, L]``, and ``response_mask`` ``[B, L]`` (True on response tokens; None: all tokens).
  Row b is response b.
- packed: logits ``[T, V]``, labels ``[T]``, advantages ``[T]`` and ``response_ids`` ``[T]``
  (int64, -1 for prompt or padding tokens), ``num_responses`` R (default: max id + 1).

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
from . import native
from ._bridge import from_numpy, to_numpy, use_libera
from .functions import LLMLogprobFunction

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


def _layout(logits, labels, advantages, response_mask, response_ids, num_responses, where):
    """(response ids, advantages, R), both per-token tensors of the labels' shape."""
    if logits.dim() == 3:
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
        if response_mask is not None or response_ids is None:
            raise python_error(BadShapeError, where, "[T, V] logits take response_ids (and num_responses)")
        for name, t in (("labels", labels), ("advantages", advantages), ("response_ids", response_ids)):
            if tuple(t.shape) != (tokens,):
                raise python_error(BadShapeError, where, f"{name} {tuple(t.shape)} must be [T] = ({tokens},)")
        if num_responses is None:
            num_responses = int(response_ids.max()) + 1 if tokens else 0
        return response_ids, advantages, int(num_responses)
    raise python_error(BadShapeError, where, f"logits must be [B, L, V] or [T, V], got {tuple(logits.shape)}")


def llm_era(
    logits: torch.Tensor,
    labels: torch.Tensor,
    advantages: torch.Tensor,
    *,
    response_mask: Optional[torch.Tensor] = None,
    response_ids: Optional[torch.Tensor] = None,
    num_responses: Optional[int] = None,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
    top_fraction: float = _llm.TOP_FRACTION,
    scale_advantages: bool = True,
    backend: str = "auto",
) -> LLMERAOutput:
    """LLM ERA for one GRPO batch (layouts in the module docstring).

    Args:
        logits: ``[B, L, V]`` or ``[T, V]`` policy logits already divided by the sampling
            temperature; float32 or bfloat16 (float64: native path); -inf masks a token.
        labels: int64 sampled tokens. advantages: float32 (float64 with float64 logits).
        omega_low, omega_high, k, top_fraction, scale_advantages: the rule of section 3
            (defaults 0.45, 3.0, 2.0, 0.2, on).
        backend: "auto" (libera for CPU float32/bfloat16 tensors, else torch-native),
            "libera" or "native".
    Returns:
        LLMERAOutput. A policy-gradient loss then reads e.g.
        ``-(out.advantages * out.logprobs * mask).sum() / mask.sum()`` (or the clipped
        GRPO objective with ``out.logprobs`` in place of the log-probs).
    """
    where = "era.torch.llm_era"
    ids, adv, responses = _layout(logits, labels, advantages, response_mask, response_ids, num_responses, where)
    params = dict(omega_low=omega_low, omega_high=omega_high, k=k, top_fraction=top_fraction)
    vocab = logits.shape[-1]
    flat_logits = logits.reshape(-1, vocab)
    flat_labels = labels.reshape(-1)
    shape = labels.shape
    libera = use_libera(logits, backend, where) and not (backend == "auto" and logits.dtype == torch.float64)
    if libera:
        ids_np = to_numpy(ids.reshape(-1))
        token_h = _llm.token_entropy(to_numpy(flat_logits))
        response_h = _llm.llm_response_entropy(token_h, ids_np, responses, **params)
        scales = _llm.llm_scales(
            response_h, ids_np, to_numpy(adv.reshape(-1)), scale_advantages=scale_advantages, **params
        )
        logit_scale = from_numpy(scales.logit_scale)
        logprobs, entropy = LLMLogprobFunction.apply(flat_logits, flat_labels, logit_scale)
        token_h, response_h = from_numpy(token_h), from_numpy(response_h)
        new_adv = from_numpy(scales.advantages)
    else:
        token_h = native.token_entropy(flat_logits)
        response_h = native.llm_response_entropy(token_h, ids.reshape(-1), responses, **params)
        logit_scale, new_adv = native.llm_scales(
            response_h, ids.reshape(-1), adv.reshape(-1), scale_advantages=scale_advantages, **params
        )
        logprobs, entropy = native.llm_logprob(flat_logits, flat_labels, logit_scale)
    return LLMERAOutput(
        logprobs.reshape(shape),
        new_adv.reshape(shape),
        logit_scale.reshape(shape),
        token_h.reshape(shape),
        response_h,
        entropy.reshape(shape),
    )


class LLMERA(nn.Module):
    """llm_era with its parameters held by a module: ``forward(logits, labels, advantages,
    response_mask=None, response_ids=None, num_responses=None) -> LLMERAOutput``."""

    def __init__(
        self,
        *,
        omega_low: float = _llm.OMEGA_LOW,
        omega_high: float = _llm.OMEGA_HIGH,
        k: float = _llm.K,
        top_fraction: float = _llm.TOP_FRACTION,
        scale_advantages: bool = True,
        backend: str = "auto",
    ):
        super().__init__()
        self.params = dict(
            omega_low=omega_low, omega_high=omega_high, k=k, top_fraction=top_fraction,
            scale_advantages=scale_advantages, backend=backend,
        )
        native._check_llm_params(omega_low, omega_high, k, top_fraction, scale_advantages)

    def forward(self, logits, labels, advantages, response_mask=None, response_ids=None, num_responses=None):
        return llm_era(
            logits, labels, advantages, response_mask=response_mask, response_ids=response_ids,
            num_responses=num_responses, **self.params,
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.params.items())
