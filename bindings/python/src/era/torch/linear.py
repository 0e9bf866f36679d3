"""Fused linear heads for torch (docs/linear-heads.md): ERA computed from the last hidden
states and the output weight, without storing the logits.

- llm_linear_logprob / ERALinearLogprob: ERA log-probs (and the entropy of the scaled
  distribution) of ``z = hidden @ weight.T``, gradients for hidden and weight.
- llm_linear_era: llm_era through the fused head (the token entropies from a first pass,
  then the scaled log-probs), for GRPO batches whose [T, V] logits should never exist.
- linear_discrete_ce / ERALinearCrossEntropy: linear layer + discrete ERA + mean
  cross-entropy in one operator.

On CPU these run libera's fused kernels (OpenBLAS products in float32, the rows x vocab
logits never formed; other dtypes take float32 copies, float64 the formulas below in
float64). On other devices (and with ``backend="native"``) they run the device path's
chunked torch version (era.torch.native): the logits of a chunk of rows at a time, the
weight gradient accumulated in float32 (float64 for float64 weights). Both are operators
(torch.ops.era.llm_linear_logprob_forward, ..._backward, linear_discrete_ce) with the same
support for torch.compile, export, torch.func and double backward as the rest of era.torch.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

from .. import discrete as _discrete
from .. import llm as _llm
from .._errors import BadShapeError, python_error
from . import _ops
from ._bridge import native_path
from .functions import FLOATS, labels_of, require, scale_of, top_k_of
from .llm import LLMERAOutput, _layout, scaled_batch

__all__ = [
    "llm_linear_logprob",
    "llm_linear_era",
    "linear_discrete_ce",
    "ERALinearLogprob",
    "ERALinearCrossEntropy",
]


def _head(x: torch.Tensor, weight: torch.Tensor, where: str, name: str) -> None:
    require(x, FLOATS, where, name)
    require(weight, FLOATS, where, "weight")
    if weight.dim() != 2 or x.dim() == 0 or x.shape[-1] != weight.shape[1]:
        raise python_error(BadShapeError, where, f"{name} {tuple(x.shape)} and weight {tuple(weight.shape)} must be "
                           "[..., d] and [V, d]")
    if weight.shape[0] < 1 or weight.shape[1] < 1:
        raise python_error(BadShapeError, where, f"weight {tuple(weight.shape)} needs V >= 1 rows of d >= 1")


def llm_linear_logprob(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: Optional[torch.Tensor] = None,
    *,
    backend: str = "auto",
    top_k: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """era.torch.llm_logprob on the logits ``hidden @ weight.T``, without forming them.

    Args:
        hidden: ``[..., d]`` last hidden states (one token per leading position).
        weight: ``[V, d]`` output weight (an lm_head's ``weight``, no bias).
        labels: ``[...]`` int64 or int32 sampled tokens.
        logit_scale: ``[...]`` s_t (llm_scales), or None for 1; a constant.
        backend: "auto", "libera" or "native".
        top_k: None, or k >= 1: the top-k log-prob (era.torch.llm_logprob).
    Returns:
        (logprob ``[...]``, differentiable in hidden and weight; entropy of softmax(s_t z_t)
        ``[...]``, no grad), float32 (float64 for float64 inputs).
    """
    where = "era.torch.llm_linear_logprob"
    _head(hidden, weight, where, "hidden")
    labels = labels_of(labels, hidden.shape[:-1], where)
    logit_scale = scale_of(logit_scale, labels, where)
    native = native_path(hidden, backend, where)
    k = top_k_of(top_k, where)
    return _ops.apply(_ops.LinearLogprobFunction, _ops.EagerLinearLogprob, hidden, weight, labels, logit_scale, native,
                      k)


def llm_linear_era(
    hidden: torch.Tensor,
    weight: torch.Tensor,
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
) -> LLMERAOutput:
    """era.torch.llm_era with hidden states ``[B, L, d]`` or ``[T, d]`` and the output weight
    ``[V, d]`` in place of the logits (same layouts and results). Two passes through the head:
    the token entropies (the fused forward with scale 1), then the scaled log-probs; the
    backward forms the logits twice more, a chunk at a time."""
    where = "era.torch.llm_linear_era"
    _head(hidden, weight, where, "hidden")
    require(advantages, (torch.float32, torch.float64), where, "advantages")
    ids, adv, responses = _layout(hidden, labels, advantages, response_mask, response_ids, num_responses, cu_seqlens,
                                  where)
    labels = labels_of(labels, hidden.shape[:-1], where)
    device_path = native_path(hidden, backend, where)
    topk = top_k_of(top_k, where)
    h, w = hidden.detach(), weight.detach()
    _, token_h = _ops.call(_ops.llm_linear_logprob_forward, h, w, labels, None, device_path, 0)
    return scaled_batch(
        token_h, ids, adv, responses, device_path, omega_low, omega_high, k, top_fraction, scale_advantages,
        lambda scale: _ops.apply(_ops.LinearLogprobFunction, _ops.EagerLinearLogprob, hidden, weight, labels, scale,
                                 device_path, topk))


def linear_discrete_ce(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    labels: torch.Tensor,
    target_entropy: float,
    *,
    tau: float = _discrete.TAU,
    mode: str = _discrete.DEFAULT_MODE,
    backend: str = "auto",
) -> torch.Tensor:
    """Mean cross-entropy of discrete ERA on the logits ``features @ weight.T + bias``, in one
    operator: libera computes the loss and its gradients together (the backward scales the
    saved gradients; a double backward recomputes them as a function of the inputs).

    Args:
        features: ``[..., d]`` (at least one row); weight ``[K, d]``, K >= 2; bias ``[K]``
            or None; labels ``[...]`` int64 or int32 classes.
        target_entropy, tau, mode: as era.torch.discrete_era.
    Returns:
        The 0-d loss in nats, float32 (float64 for float64 inputs).
    """
    where = "era.torch.linear_discrete_ce"
    _head(features, weight, where, "features")
    if bias is not None:
        require(bias, FLOATS, where, "bias")
    labels = labels_of(labels, features.shape[:-1], where)
    _discrete.mode_number(mode, where)
    native = native_path(features, backend, where)
    with_grads = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (features, weight, bias))
    out = _ops.apply(_ops.LinearCEFunction, _ops.EagerLinearCE, features, weight, bias, labels, float(target_entropy),
                     float(tau), mode, with_grads, native)
    return out[0]


class ERALinearLogprob(nn.Module):
    """An LLM output head that returns ERA log-probs instead of logits:
    ``forward(hidden [..., d], labels [...], logit_scale=None) -> (logprob, entropy)``.

    Holds ``weight`` ``[V, d]`` (as nn.Linear(d, V, bias=False) does); ``from_linear``
    shares an existing head's weight (tied embeddings included) instead of copying it."""

    def __init__(self, in_features: int, vocab_size: int, *, backend: str = "auto", device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, in_features, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation
        self.backend = backend

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, backend: str = "auto") -> "ERALinearLogprob":
        if linear.bias is not None:
            raise python_error(BadShapeError, "era.torch.ERALinearLogprob.from_linear",
                               "the fused LLM head has no bias; the linear layer has one")
        head = cls(linear.in_features, linear.out_features, backend=backend, device="meta")  # no storage
        head.weight = linear.weight
        return head

    def forward(self, hidden, labels, logit_scale=None):
        return llm_linear_logprob(hidden, self.weight, labels, logit_scale, backend=self.backend)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, vocab_size={self.weight.shape[0]}, backend={self.backend!r}"


class ERALinearCrossEntropy(nn.Module):
    """A classification head trained through discrete ERA: ``forward(features, labels) ->
    loss`` (linear + ERA + mean cross-entropy in one operator), and ``logits(features)`` for
    prediction (the ERA logits, whose softmax keeps the entropy floor).

    Args:
        in_features, num_classes: d and K. bias: a learned bias (default True).
        target_entropy, tau, mode: as era.torch.ERADiscrete."""

    def __init__(self, in_features: int, num_classes: int, target_entropy: float, *, bias: bool = True,
                 tau: float = _discrete.TAU, mode: str = _discrete.DEFAULT_MODE, backend: str = "auto", device=None, dtype=None):
        super().__init__()
        _discrete.mode_number(mode, "era.torch.ERALinearCrossEntropy")
        self.linear = nn.Linear(in_features, num_classes, bias=bias, device=device, dtype=dtype)
        self.target_entropy, self.tau, self.mode, self.backend = float(target_entropy), float(tau), mode, backend

    def forward(self, features, labels):
        return linear_discrete_ce(features, self.linear.weight, self.linear.bias, labels, self.target_entropy,
                                  tau=self.tau, mode=self.mode, backend=self.backend)

    def logits(self, features):
        from .functions import discrete_era

        return discrete_era(self.linear(features), self.target_entropy, tau=self.tau, mode=self.mode,
                            backend=self.backend)

    def extra_repr(self) -> str:
        return f"target_entropy={self.target_entropy}, tau={self.tau}, mode={self.mode!r}, backend={self.backend!r}"
