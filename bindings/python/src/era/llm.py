"""LLM ERA: adaptive logit scaling for GRPO-style policy updates (docs/math.md section 3).

Applied in the policy update to the logits of the response tokens, ``[T, V]`` (already
divided by the sampling temperature; any leading shape ``[..., V]`` is accepted and
flattened). With H_t the entropy of softmax(z_t)::

    Hresp_b = mean of the max(1, floor(top_fraction*L_b)) largest H_t of response b
    s_t     = k   if Hresp_b < omega_low  and A_t > 0
              1/k if Hresp_b > omega_high and A_t > 0
              1   otherwise
    A'_t    = A_t / s_t                            (when scale_advantages)
    logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t)

Response ids are int64 in -1..R-1 (-1: a prompt or padding token, ignored); labels are
int64 in 0..V-1. A -inf logit is a mask (a banned token); NaN, +inf and fully masked rows
raise NonFiniteError; a label out of range or on a masked logit raises BadIndexError.
Logits may be float32 or bfloat16 (an ml_dtypes bfloat16 array, a torch bfloat16 CPU tensor,
or uint16 raw bits); token_entropy also takes float64. Per-token results are float32.
"""

from __future__ import annotations

import operator
from typing import NamedTuple, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import _era
from ._arrays import INDEX_DTYPE, as_numpy, is_bfloat16, output, per_row, rows_of, vector
from ._errors import BadShapeError, check, python_error

__all__ = [
    "token_entropy",
    "llm_response_entropy",
    "llm_scales",
    "llm_logprob_forward",
    "llm_logprob_backward",
    "LLMScales",
    "LLMLogprob",
    "TOPK_OUTSIDE_LOGPROB",
]

# The library's defaults, read from libera (era_llm_params_init), the one place they are set.
_DEFAULTS = _era.llm_defaults()
OMEGA_LOW = float(_DEFAULTS["omega_low"])
OMEGA_HIGH = float(_DEFAULTS["omega_high"])
K = float(_DEFAULTS["k"])
TOP_FRACTION = float(_DEFAULTS["top_fraction"])
SCALE_ADVANTAGES = bool(_DEFAULTS["scale_advantages"])

F32 = np.dtype(np.float32)
LOGIT_DTYPES = (F32,)

#: The log-probability of a label outside the top k with ``top_k`` set (the constant of the
#: official ERA-LLM actor, verl's ``logprobs_from_logits_topk``); its gradient is zero.
TOPK_OUTSIDE_LOGPROB = -1.0e4


def _top_k(top_k) -> Optional[int]:
    """None (off) or top_k as an int64 (a Python int beyond int64 is capped: it is >= vocab
    anyway, the full log-softmax). Values < 1 go to libera, which refuses them
    (BadParameterError). Non-integers: TypeError."""
    if top_k is None:
        return None
    if isinstance(top_k, bool):
        raise TypeError("top_k must be an int or None, not bool")
    k = operator.index(top_k)
    return min(k, np.iinfo(np.int64).max)


def _params(omega_low, omega_high, k, top_fraction, scale_advantages):
    return float(omega_low), float(omega_high), float(k), float(top_fraction), bool(scale_advantages)


def _params_text(omega_low, omega_high, k, top_fraction) -> str:
    return f"omega_low={omega_low}, omega_high={omega_high}, k={k}, top_fraction={top_fraction}"


def token_entropy(logits: ArrayLike, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Entropy of softmax(logits[t, :]) per token, in nats, from one streaming pass per row
    (sums in double; the logits are never copied when C-contiguous). Relative error, g the
    distance in nats from the row maximum to the logits that carry the rest of the probability
    (docs/math.md 5; near one-hot rows included): float64 4e-15 + 1.2e-16 g (plus 4e-19 V);
    float32 and bfloat16 6e-8, but where the AVX2 kernels run (float32 terms)
    3e-7 + 1.4e-7 g for float32 and 3e-7 + 8e-8 g for bfloat16.

    Args:
        logits: ``[..., V]`` float32, float64 or bfloat16; -inf entries are masked tokens.
        out: optionally, the array to write (``[...]``, the result's dtype).
    Returns:
        ``[...]`` entropies: float64 for float64 logits, else float32.
    """
    where = "era.token_entropy"
    x = rows_of(logits, where, "logits", bf16=True)
    dtype = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    result = output(out, x.batch_shape, dtype, where, "out")
    check(_era.token_entropy(x.rows, x.cols, x.array, result.reshape(-1)), where, f"logits shape {x.array.shape}")
    return result


def llm_response_entropy(
    token_entropy: ArrayLike,
    response_id: ArrayLike,
    num_responses: int,
    *,
    top_fraction: float = TOP_FRACTION,
    omega_low: float = OMEGA_LOW,
    omega_high: float = OMEGA_HIGH,
    k: float = K,
) -> np.ndarray:
    """Response entropy of each response: the mean of its ``max(1, floor(top_fraction*L_b))``
    largest token entropies (NaN for a response with no tokens).

    Args:
        token_entropy: float32 token entropies, any shape (e.g. ``[T]`` or ``[B, L]``).
        response_id: int64, the same shape: the response of each token, -1 for none.
        num_responses: R, the number of responses.
        top_fraction: in (0, 1]. The other parameters are only validated here.
    Returns:
        ``[R]`` float32 response entropies in nats.
    """
    where = "era.llm_response_entropy"
    entropy, shape = vector(token_entropy, where, "token_entropy", F32)
    ids = per_row(response_id, where, "response_id", INDEX_DTYPE, shape)
    responses = int(num_responses)
    out = np.empty(max(responses, 0), np.float32)
    params = _params(omega_low, omega_high, k, top_fraction, True)
    status = _era.llm_response_entropy(*params, entropy.size, entropy, ids, responses, out)
    check(status, where, lambda: f"tokens={entropy.size}, num_responses={responses}, top_fraction={top_fraction}")
    return out


class LLMScales(NamedTuple):
    """Per-token logit scales s_t and advantages A'_t (both float32, the tokens' shape)."""

    logit_scale: np.ndarray
    advantages: np.ndarray


def llm_scales(
    response_entropy: ArrayLike,
    response_id: ArrayLike,
    advantages: ArrayLike,
    *,
    omega_low: float = OMEGA_LOW,
    omega_high: float = OMEGA_HIGH,
    k: float = K,
    scale_advantages: bool = SCALE_ADVANTAGES,
    top_fraction: float = TOP_FRACTION,
) -> LLMScales:
    """Per-token logit scale and advantage by the rule of the module docstring. Tokens of
    response id -1 get s = 1 and A' = A. The thresholds are compared in float32, strictly.

    Args:
        response_entropy: ``[R]`` float32 response entropies (llm_response_entropy).
        response_id: int64 ids, any shape (the tokens' shape).
        advantages: float32, the same shape as response_id.
    Returns:
        LLMScales(logit_scale, advantages), float32, the tokens' shape.
    """
    where = "era.llm_scales"
    resp = as_numpy(response_entropy, where, "response_entropy")
    if resp.ndim != 1:
        raise python_error(BadShapeError, where, f"response_entropy must be 1-D [R], got shape {resp.shape}")
    resp, _ = vector(resp, where, "response_entropy", F32)
    ids, shape = vector(response_id, where, "response_id", INDEX_DTYPE)
    adv = per_row(advantages, where, "advantages", F32, shape)
    out_scale = np.empty(ids.size, np.float32)
    out_adv = np.empty(ids.size, np.float32)
    params = _params(omega_low, omega_high, k, top_fraction, scale_advantages)
    status = _era.llm_scales(*params, ids.size, resp, resp.size, ids, adv, out_scale, out_adv)
    check(status, where,
          lambda: f"tokens={ids.size}, responses={resp.size}, " + _params_text(omega_low, omega_high, k, top_fraction))
    return LLMScales(out_scale.reshape(shape), out_adv.reshape(shape))


class LLMLogprob(NamedTuple):
    """ERA log-probabilities logp'_t and the entropy of softmax(s_t*z_t) (the distribution
    the update sees; None when not asked for), float32, the labels' shape."""

    logprob: np.ndarray
    entropy: Optional[np.ndarray]


def _logprob_inputs(where, logits, labels, logit_scale):
    x = rows_of(logits, where, "logits", dtypes=LOGIT_DTYPES, bf16=True)
    lab = per_row(labels, where, "labels", INDEX_DTYPE, x.batch_shape)
    scale = None if logit_scale is None else per_row(logit_scale, where, "logit_scale", F32, x.batch_shape)
    return x, lab, scale


def llm_logprob_forward(
    logits: ArrayLike,
    labels: ArrayLike,
    logit_scale: Optional[ArrayLike] = None,
    *,
    with_entropy: bool = True,
    out_logprob: Optional[np.ndarray] = None,
    out_entropy: Optional[np.ndarray] = None,
    top_k: Optional[int] = None,
) -> LLMLogprob:
    """``logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t)`` from one pass per row; the scaled
    logits are never formed.

    Args:
        logits: ``[..., V]`` float32 or bfloat16.
        labels: ``[...]`` int64 sampled tokens a_t.
        logit_scale: ``[...]`` float32 s_t > 0 (llm_scales), or None for s = 1.
        with_entropy: also return the entropy of softmax(s_t*z_t).
        out_logprob, out_entropy: optionally, the float32 ``[...]`` arrays to write.
        top_k: None (the full log-softmax), or k >= 1: the top-k log-probability of the
            official ERA-LLM actor (docs/math.md, "Top-k log-probabilities"):
            ``s_t*z_t[a_t] - logsumexp over the k largest s_t*z_t`` when a_t is among them
            (a tie at the k-th value: the lower index wins), else TOPK_OUTSIDE_LOGPROB
            (-1e4). The entropy stays the full-vocabulary one. k >= V gives exactly the
            full log-softmax; k < 1 raises BadParameterError.
    Returns:
        LLMLogprob(logprob ``[...]``, entropy ``[...]`` or None), float32, nats.
    """
    where = "era.llm_logprob_forward"
    x, lab, scale = _logprob_inputs(where, logits, labels, logit_scale)
    logprob = output(out_logprob, x.batch_shape, F32, where, "out_logprob")
    entropy = output(out_entropy, x.batch_shape, F32, where, "out_entropy") if with_entropy else None
    k = _top_k(top_k)
    if k is None:
        status = _era.llm_logprob_forward(x.rows, x.cols, x.array, lab, scale, logprob.reshape(-1),
                                          None if entropy is None else entropy.reshape(-1))
    else:
        status = _era.llm_topk_logprob_forward(x.rows, x.cols, x.array, lab, scale, k, logprob.reshape(-1),
                                               None if entropy is None else entropy.reshape(-1))
    check(status, where, lambda: f"logits shape {x.array.shape}" + ("" if k is None else f", top_k={k}"))
    return LLMLogprob(logprob, entropy)


def llm_logprob_backward(
    logits: ArrayLike,
    labels: ArrayLike,
    logit_scale: Optional[ArrayLike],
    grad_logprob: ArrayLike,
    *,
    out: Optional[np.ndarray] = None,
    top_k: Optional[int] = None,
) -> np.ndarray:
    """Gradient of ``sum_t grad_logprob[t] * logp'_t`` with respect to the UNSCALED logits
    (s_t held constant): ``grad_logprob[t] * s_t * (onehot(a_t) - softmax(s_t*z_t))``;
    masked (-inf) logits get 0.

    Args:
        logits, labels, logit_scale: as for llm_logprob_forward.
        grad_logprob: ``[...]`` float32 dL/d(logp').
        out: optionally, the array to write (the logits' shape and dtype; bfloat16 as
            ml_dtypes bfloat16 or uint16 bits).
        top_k: as for llm_logprob_forward: with k set, the gradient of the top-k
            log-probability, ``grad_logprob[t] * s_t * (onehot(a_t) - softmax over the top
            k)`` on the top k entries and 0 elsewhere; the whole row 0 when a_t is outside.
    Returns:
        ``[..., V]`` dL/d(logits): float32 for float32 logits; for bfloat16 logits the
        bfloat16 gradient (rounded to nearest even) with the representation of the input
        (an ml_dtypes bfloat16 array, or uint16 bits for uint16 bits or a torch tensor).
    """
    where = "era.llm_logprob_backward"
    x, lab, scale = _logprob_inputs(where, logits, labels, logit_scale)
    grad = per_row(grad_logprob, where, "grad_logprob", F32, x.batch_shape)
    also = (x.source_dtype,) if is_bfloat16(x.source_dtype) else ()
    result = output(out, x.array.shape, x.dtype, where, "out", also)
    k = _top_k(top_k)
    if k is None:
        status = _era.llm_logprob_backward(x.rows, x.cols, x.array, lab, scale, grad, result)
    else:
        status = _era.llm_topk_logprob_backward(x.rows, x.cols, x.array, lab, scale, k, grad, result)
    check(status, where, lambda: f"logits shape {x.array.shape}" + ("" if k is None else f", top_k={k}"))
    if out is not None:
        return out
    return result.view(x.source_dtype) if is_bfloat16(x.source_dtype) else result
