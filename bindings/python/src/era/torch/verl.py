"""GRPO with ERA on the tensors verl's actor holds (docs/python.md, "GRPO on verl's layouts").

verl keeps a micro-batch as ``input_ids``/``attention_mask`` ``[B, S]`` (prompt left-padded,
then the response, right-padded, in the last ``Lr`` columns), ``responses`` ``[B, Lr]``,
``response_mask``, ``advantages`` and ``old_log_probs`` ``[B, Lr]``, and computes the logits
in one of two layouts:

- padded: ``logits`` ``[B, Lr, V]``, the response positions of the model's output
  (``output.logits[:, -Lr - 1:-1]``, a strided view is fine);
- remove-padding: ``logits`` ``[T, V]`` over the T = attention_mask.sum() real tokens of the
  micro-batch, in order (verl's ``unpad_input``); pass ``input_ids`` and ``attention_mask`` so
  that the response positions can be found. The logit of a position scores the next token.

verl_era runs LLM ERA (era.torch.llm_era) on either and returns ``[B, Lr]`` tensors, which is
what the policy loss reads; ``VerlERAOutput.policy_loss`` is verl's clipped objective on them.

Sequence parallelism (remove-padding layout, ``process_group``): each process holds an equal,
contiguous share of the T real tokens padded at the end to a multiple of the group's size
(Ulysses' slicing), ``logits`` ``[T_pad / world, V]``; the other tensors are the whole
micro-batch's. The response entropies are merged exactly (llm_era's process_group) and each
process's outputs cover its own tokens: ``local_mask`` marks them. policy_loss then sums over
the group (two scalars), so that its value is the whole batch's and the gradients of the
processes add up to the single-process gradient. No per-token value crosses processes.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.distributed as dist

from .. import llm as _llm
from .._errors import BadParameterError, BadShapeError, python_error
from .functions import FLOATS, LABELS, require
from .llm import llm_era

__all__ = ["verl_era", "VerlERAOutput", "PolicyLoss", "LOSS_AGG_MODES"]

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")


class PolicyLoss(NamedTuple):
    """verl's clipped policy-gradient loss and its statistics (means over the response tokens)."""

    loss: torch.Tensor
    clipfrac: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac_lower: torch.Tensor


class VerlERAOutput(NamedTuple):
    """What verl_era returns: ``[B, Lr]`` tensors (0 where local_mask is False) and ``[B]``
    response entropies.

    log_probs: ERA log-probs logp'_t, differentiable w.r.t. the logits.
    advantages: A'_t (A_t / s_t when scale_advantages). logit_scale: s_t.
    entropy: the entropy of softmax(s_t z_t) (nats). token_entropy: H_t, that of softmax(z_t).
    response_entropy: ``[B]`` Hresp_b (NaN for a response without tokens).
    old_log_probs: as given (None if not given). local_mask: the response tokens these
    tensors hold (response_mask, or this process's share of it with a process group).
    """

    log_probs: torch.Tensor
    advantages: torch.Tensor
    logit_scale: torch.Tensor
    entropy: torch.Tensor
    token_entropy: torch.Tensor
    response_entropy: torch.Tensor
    old_log_probs: Optional[torch.Tensor]
    local_mask: torch.Tensor
    process_group: object = None

    def policy_loss(self, clip_ratio_low: float = 0.2, clip_ratio_high: Optional[float] = None,
                    clip_ratio_c: float = 3.0, loss_agg_mode: str = "token-mean") -> PolicyLoss:
        """verl's vanilla policy loss (dual clip) with the ERA log-probs and advantages:

            r = exp(clamp(logp' - logp_old, -20, 20))
            l = max(-A' r, -A' clamp(r, 1 - clip_ratio_low, 1 + clip_ratio_high))
            l = min(l, -A' clip_ratio_c)   where A' < 0

        aggregated over the response tokens by loss_agg_mode ("token-mean": their mean;
        "seq-mean-token-sum" / "seq-mean-token-mean": the mean over responses of each
        response's sum / mean). With a process group the sums run over the group: the value is
        the whole batch's on every process, and the gradients of the processes add up to the
        single-process gradient (each process's flows through its own tokens)."""
        where = "era.torch.VerlERAOutput.policy_loss"
        if self.old_log_probs is None:
            raise python_error(BadParameterError, where, "verl_era was called without old_log_probs")
        if clip_ratio_high is None:
            clip_ratio_high = clip_ratio_low
        if not (clip_ratio_low >= 0 and clip_ratio_high >= 0 and clip_ratio_c > 1):
            raise python_error(BadParameterError, where, f"clip ratios must be >= 0 and clip_ratio_c > 1, got "
                               f"{clip_ratio_low}, {clip_ratio_high}, {clip_ratio_c}")
        if loss_agg_mode not in LOSS_AGG_MODES:
            raise python_error(BadParameterError, where, f"loss_agg_mode must be one of {LOSS_AGG_MODES}, got "
                               f"{loss_agg_mode!r}")
        mask = self.local_mask.to(self.log_probs.dtype)
        adv = self.advantages.to(self.log_probs.dtype)
        log_ratio = torch.clamp(self.log_probs - self.old_log_probs.to(self.log_probs.dtype), -20.0, 20.0)
        ratio = torch.exp(log_ratio)
        loss1 = -adv * ratio
        loss2 = -adv * torch.clamp(ratio, 1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
        clipped = torch.maximum(loss1, loss2)
        loss3 = -adv * clip_ratio_c
        dual = torch.minimum(loss3, clipped)
        losses = torch.where(adv < 0, dual, clipped)

        def total(x):  # a sum over the group's response tokens: value of all, gradient of ours
            local = (x * mask).sum(dim=-1)
            if self.process_group is None:
                return local
            whole = local.detach().clone()
            dist.all_reduce(whole, group=self.process_group)
            return local + (whole - local.detach())

        tokens = total(torch.ones_like(mask)).detach()  # per response
        if loss_agg_mode == "token-mean":
            loss = total(losses).sum() / tokens.sum().clamp(min=1)
        else:
            per_response = total(losses)
            if loss_agg_mode == "seq-mean-token-mean":
                per_response = per_response / tokens.clamp(min=1)
            present = (tokens > 0).to(per_response.dtype)
            loss = (per_response * present).sum() / present.sum().clamp(min=1)
        count = tokens.sum().clamp(min=1)
        with torch.no_grad():
            clipfrac = total((loss2 > loss1).to(mask.dtype)).sum() / count
            approx_kl = total(-log_ratio).sum() / count
            lower = ((clipped > loss3) & (adv < 0)).to(mask.dtype)
            clipfrac_lower = total(lower).sum() / count
        return PolicyLoss(loss, clipfrac, approx_kl, clipfrac_lower)


def _response_positions(input_ids, attention_mask, response_mask, where):
    """For each response token (b, j): the flat index, among the real tokens, of the position
    whose logit scores it (the one before it), and whether it is a response token there."""
    batch, seqlen = input_ids.shape
    length = response_mask.shape[1]
    if tuple(attention_mask.shape) != (batch, seqlen):
        raise python_error(BadShapeError, where, f"attention_mask {tuple(attention_mask.shape)} must be "
                           f"input_ids' shape {(batch, seqlen)}")
    if response_mask.shape[0] != batch or length >= seqlen:
        raise python_error(BadShapeError, where, f"response_mask {tuple(response_mask.shape)} must be [B, Lr] "
                           f"with B = {batch} and Lr < S = {seqlen}")
    real = attention_mask.to(torch.bool)
    flat = torch.cumsum(real.reshape(-1).to(torch.int64), 0).reshape(batch, seqlen) - 1
    scorer = slice(seqlen - length - 1, seqlen - 1)
    member = response_mask.to(torch.bool) & real[:, scorer] & real[:, seqlen - length:]
    return flat[:, scorer], member, input_ids[real]


def verl_era(
    logits: torch.Tensor,
    responses: torch.Tensor,
    response_mask: torch.Tensor,
    advantages: torch.Tensor,
    old_log_probs: Optional[torch.Tensor] = None,
    *,
    input_ids: Optional[torch.Tensor] = None,
    attention_mask: Optional[torch.Tensor] = None,
    process_group=None,
    omega_low: float = _llm.OMEGA_LOW,
    omega_high: float = _llm.OMEGA_HIGH,
    k: float = _llm.K,
    top_fraction: float = _llm.TOP_FRACTION,
    scale_advantages: bool = _llm.SCALE_ADVANTAGES,
    top_k: Optional[int] = None,
    backend: str = "auto",
) -> VerlERAOutput:
    """LLM ERA on verl's tensors (layouts in the module docstring).

    Args:
        logits: ``[B, Lr, V]`` (padded) or ``[T, V]`` / ``[T_pad / world, V]`` (remove-padding,
            with input_ids and attention_mask), divided by the sampling temperature.
        responses: ``[B, Lr]`` int64 or int32 sampled tokens. response_mask: ``[B, Lr]``.
        advantages: ``[B, Lr]`` or ``[B]`` float32 or float64. old_log_probs: ``[B, Lr]`` or
            None (then policy_loss is unavailable).
        input_ids, attention_mask: ``[B, S]``, the remove-padding layout's.
        process_group: sequence parallelism (remove-padding layout only): see the module
            docstring. Every process of the group must call.
        omega_low, omega_high, k, top_fraction, scale_advantages, top_k, backend: as llm_era
            (top_k=20 with scale_advantages=False is the official README run:
            era.presets.ERA_LLM_TOPK.kwargs()).
    Returns:
        VerlERAOutput; ``out.policy_loss(clip_ratio_low, clip_ratio_high, clip_ratio_c,
        loss_agg_mode)`` is the loss to minimise.
    """
    where = "era.torch.verl_era"
    require(logits, FLOATS, where, "logits")
    require(responses, LABELS, where, "responses")
    require(advantages, (torch.float32, torch.float64), where, "advantages")
    if responses.dim() != 2:
        raise python_error(BadShapeError, where, f"responses must be [B, Lr], got {tuple(responses.shape)}")
    batch, length = responses.shape
    if tuple(response_mask.shape) != (batch, length):
        raise python_error(BadShapeError, where, f"response_mask {tuple(response_mask.shape)} must be "
                           f"responses' shape {(batch, length)}")
    if tuple(advantages.shape) == (batch,):
        advantages = advantages.unsqueeze(1).expand(batch, length)
    elif tuple(advantages.shape) != (batch, length):
        raise python_error(BadShapeError, where, f"advantages {tuple(advantages.shape)} must be [B] or [B, Lr]")
    if old_log_probs is not None and tuple(old_log_probs.shape) != (batch, length):
        raise python_error(BadShapeError, where, f"old_log_probs {tuple(old_log_probs.shape)} must be "
                           f"{(batch, length)}")
    params = dict(omega_low=omega_low, omega_high=omega_high, k=k, top_fraction=top_fraction,
                  scale_advantages=scale_advantages, top_k=top_k, backend=backend)
    mask = response_mask.to(torch.bool)

    if logits.dim() == 3:
        if input_ids is not None or attention_mask is not None or process_group is not None:
            raise python_error(BadShapeError, where, "[B, Lr, V] logits take neither input_ids, attention_mask "
                               "nor a process_group (those belong to the remove-padding layout)")
        out = llm_era(logits, responses, advantages, response_mask=mask, **params)
        zero = torch.zeros((), dtype=out.logprobs.dtype, device=out.logprobs.device)
        return VerlERAOutput(torch.where(mask, out.logprobs, zero), out.advantages, out.logit_scale,
                             out.entropy, out.token_entropy, out.response_entropy, old_log_probs, mask, None)

    if logits.dim() != 2 or input_ids is None or attention_mask is None:
        raise python_error(BadShapeError, where, "logits must be [B, Lr, V], or [T, V] with input_ids and "
                           f"attention_mask; got {tuple(logits.shape)}")
    require(input_ids, LABELS, where, "input_ids")
    if input_ids.dim() != 2:
        raise python_error(BadShapeError, where, f"input_ids must be [B, S], got {tuple(input_ids.shape)}")
    scorer, member, real_ids = _response_positions(input_ids, attention_mask, mask, where)
    tokens = real_ids.shape[0]
    world = 1 if process_group is None else dist.get_world_size(process_group)
    rank = 0 if process_group is None else dist.get_rank(process_group)
    share = logits.shape[0]
    if share * world < tokens or (process_group is None and share != tokens):
        raise python_error(BadShapeError, where, f"logits have {share} rows; the micro-batch has {tokens} real "
                           f"tokens" + (f" (each of {world} processes holds ceil(T / {world}))" if world > 1 else ""))
    padded = share * world
    # Per flat position: the next token (the label its logit scores), its response, its advantage.
    labels = torch.zeros(padded, dtype=torch.int64, device=input_ids.device)
    labels[:tokens] = torch.roll(real_ids.long(), -1)
    ids = torch.full((padded,), -1, dtype=torch.int64, device=input_ids.device)
    rows = torch.arange(batch, device=input_ids.device).unsqueeze(1).expand(batch, length)
    ids[scorer[member]] = rows[member]
    labels[scorer[member]] = responses.long()[member]
    flat_adv = torch.zeros(padded, dtype=advantages.dtype, device=advantages.device)
    flat_adv[scorer[member]] = advantages[member]
    mine = slice(rank * share, (rank + 1) * share)
    out = llm_era(logits, labels[mine], flat_adv[mine], response_ids=ids[mine], num_responses=batch,
                  process_group=process_group, **params)
    # Back to [B, Lr]: the response tokens scored by this process's positions.
    local = member & (scorer >= mine.start) & (scorer < mine.stop)
    at = torch.where(local, scorer - mine.start, torch.zeros_like(scorer))

    def back(x):
        picked = x[at]
        return torch.where(local, picked, torch.zeros((), dtype=picked.dtype, device=picked.device))

    return VerlERAOutput(back(out.logprobs), back(out.advantages), back(out.logit_scale), back(out.entropy),
                         back(out.token_entropy), out.response_entropy, old_log_probs, local, process_group)
