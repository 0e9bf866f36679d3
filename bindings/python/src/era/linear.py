"""Fused linear heads: LLM ERA and a classification head computed from the last hidden
states and the output weight matrix, without storing the logits (docs/linear-heads.md;
era.h, "Fused linear heads").

With hidden states ``H [..., d]`` (every leading position is one token or row) and an output
weight ``W [V, d]`` (one row of d weights per vocabulary entry or class), the logits are
``z = H @ W.T``, ``z[t, v] = sum_j H[t, j] * W[v, j]``. The LLM functions form them one tile
of at most 128 tokens x 2048 vocabulary entries at a time with float32 products (OpenBLAS
sgemm) and fold each tile into per-token statistics kept in double: about 1 MiB of scratch
per thread, never ``T x V``. The results are those of era.llm_logprob_forward /
era.llm_logprob_backward on the logits, up to the rounding of the float32 products.

Every array is float32 (labels int64); nothing is cast silently (DTypeError). There are no
masks here: NaN or an infinity in hidden, weight, bias or a logit scale, and a logit that
overflows float32 in the product, raise NonFiniteError (the weight is scanned even when
there are no tokens). Entropies and log-probabilities are in nats. Results are bit-for-bit
identical for every era.set_num_threads value (OpenBLAS's own thread count,
OPENBLAS_NUM_THREADS, can change the last bits of the products).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import _era
from ._arrays import INDEX_DTYPE, Rows, per_row, rows_of
from ._errors import BadShapeError, check, python_error
from .discrete import DEFAULT_MODE, TAU, _context, mode_number
from .llm import LLMLogprob, _top_k

__all__ = [
    "llm_linear_logprob_forward",
    "llm_linear_logprob_backward",
    "linear_discrete_ce",
    "LinearLogprobGrads",
    "LinearDiscreteCE",
]

F32 = np.dtype(np.float32)
F32_ONLY = (F32,)


def _matrix(weight: ArrayLike, where: str, name: str, inputs: Rows, input_name: str) -> Rows:
    """A 2-D float32 weight ``[outputs, d]`` whose rows have the length of `inputs`' rows."""
    w = rows_of(weight, where, name, dtypes=F32_ONLY)
    if len(w.batch_shape) != 1:
        raise python_error(BadShapeError, where, f"{name} must be 2-D [outputs, d], got shape {w.array.shape}")
    if w.cols != inputs.cols:
        raise python_error(
            BadShapeError, where,
            f"{name} has shape {w.array.shape}: rows of {w.cols} weights, but {input_name} has rows of {inputs.cols}",
        )
    return w


def _logprob_inputs(where, hidden, weight, labels, logit_scale):
    h = rows_of(hidden, where, "hidden", dtypes=F32_ONLY)
    w = _matrix(weight, where, "weight", h, "hidden")
    lab = per_row(labels, where, "labels", INDEX_DTYPE, h.batch_shape)
    scale = None if logit_scale is None else per_row(logit_scale, where, "logit_scale", F32, h.batch_shape)
    return h, w, lab, scale


def _shapes(h: Rows, w: Rows, h_name: str = "hidden") -> str:
    return f"{h_name} shape {h.array.shape}, weight shape {w.array.shape}"


def llm_linear_logprob_forward(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    logit_scale: Optional[ArrayLike] = None,
    *,
    with_entropy: bool = True,
    top_k: Optional[int] = None,
) -> LLMLogprob:
    """era.llm_logprob_forward on the logits ``z = hidden @ weight.T``, without forming them::

        logp'_t = s_t*z_t[a_t] - logsumexp(s_t*z_t)
        H'_t    = entropy of softmax(s_t*z_t)

    Args:
        hidden: ``[..., d]`` float32 last hidden states; the leading axes are the tokens
            (T = their product, 0 allowed), d >= 1.
        weight: ``[V, d]`` float32 output weight (V >= 1 vocabulary entries).
        labels: ``[...]`` int64 sampled tokens a_t in 0..V-1, the shape of hidden's leading axes.
        logit_scale: ``[...]`` float32 s_t > 0 (era.llm_scales), or None for s = 1.
        with_entropy: also return the entropy of softmax(s_t*z_t).
        top_k: None (the full log-softmax), or k >= 1: the top-k log-probability as in
            era.llm_logprob_forward (-1e4 for a label outside the k largest logits, the lower
            index winning a tie; the entropy stays the full-vocabulary one), with each
            token's selection carried across the vocabulary tiles.
    Returns:
        LLMLogprob(logprob ``[...]``, entropy ``[...]`` or None), float32, nats.
    Raises:
        DTypeError (an array of another dtype); BadShapeError (weight not 2-D, rows of
        different lengths, labels or scales not of the tokens' shape, d = 0, V = 0);
        BadIndexError (a label outside 0..V-1); NonFiniteError (NaN or an infinity in hidden,
        weight or logit_scale, a logit that overflows float32); BadParameterError (a scale
        <= 0, or one so large that a log-probability overflows float32).
    """
    where = "era.llm_linear_logprob_forward"
    h, w, lab, scale = _logprob_inputs(where, hidden, weight, labels, logit_scale)
    out_logprob = np.empty(h.rows, np.float32)
    out_entropy = np.empty(h.rows, np.float32) if with_entropy else None
    k = _top_k(top_k)
    if k is None:
        status = _era.llm_linear_logprob_forward(h.rows, h.cols, w.rows, h.array, w.array, lab, scale, out_logprob,
                                                 out_entropy)
    else:
        status = _era.llm_linear_topk_logprob_forward(h.rows, h.cols, w.rows, h.array, w.array, lab, scale, k,
                                                      out_logprob, out_entropy)
    check(status, where, _shapes(h, w) + ("" if k is None else f", top_k={k}"))
    entropy = None if out_entropy is None else out_entropy.reshape(h.batch_shape)
    return LLMLogprob(out_logprob.reshape(h.batch_shape), entropy)


class LinearLogprobGrads(NamedTuple):
    """Gradients of the fused LLM head: ``hidden`` ``[..., d]`` and ``weight`` ``[V, d]``,
    float32; None where not asked for."""

    hidden: Optional[np.ndarray]
    weight: Optional[np.ndarray]


def llm_linear_logprob_backward(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    logit_scale: Optional[ArrayLike],
    grad_logprob: ArrayLike,
    *,
    grad_hidden: bool = True,
    grad_weight: bool = True,
    top_k: Optional[int] = None,
) -> LinearLogprobGrads:
    """Gradients of ``sum_t grad_logprob[t] * logp'_t`` with respect to hidden and weight
    (s_t held constant), through the same tiles as the forward pass::

        dz[t, i] = grad_logprob[t] * s_t * (1{i == a_t} - softmax(s_t*z_t)_i)
        dL/dhidden = dz @ weight        [..., d]
        dL/dweight = dz.T @ hidden      [V, d]   (zeros when there are no tokens)

    The logits are formed twice (statistics, then gradients): about four products' worth of
    work. The inputs are checked, and the statistics pass runs, even when neither gradient
    is asked for.

    Args:
        hidden, weight, labels, logit_scale: as for llm_linear_logprob_forward.
        grad_logprob: ``[...]`` float32 dL/d(logp'), the tokens' shape.
        grad_hidden, grad_weight: which gradients to compute and return.
        top_k: as for llm_linear_logprob_forward: dz is the top-k gradient (at most k
            entries per token, 0 for a label outside the top k), and the products are sums
            over those entries (one pass over the tiles, not two).
    Returns:
        LinearLogprobGrads(hidden ``[..., d]`` or None, weight ``[V, d]`` or None), float32,
        fresh arrays (add them to your own gradient buffers yourself).
    Raises:
        As llm_linear_logprob_forward (but for the log-probability's overflow);
        NonFiniteError also for grad_logprob; BadParameterError when grad_logprob[t] * s_t
        overflows float32, or when a requested gradient could (a bound on it above
        FLT_MAX / 4: 2 max|g s| max|weight| for hidden, sum_t |g_t s_t| max_j |hidden[t, j]|
        for weight).
    """
    where = "era.llm_linear_logprob_backward"
    h, w, lab, scale = _logprob_inputs(where, hidden, weight, labels, logit_scale)
    grad = per_row(grad_logprob, where, "grad_logprob", F32, h.batch_shape)
    out_hidden = np.empty_like(h.array) if grad_hidden else None
    out_weight = np.empty_like(w.array) if grad_weight else None
    k = _top_k(top_k)
    if k is None:
        status = _era.llm_linear_logprob_backward(h.rows, h.cols, w.rows, h.array, w.array, lab, scale, grad,
                                                  out_hidden, out_weight)
    else:
        status = _era.llm_linear_topk_logprob_backward(h.rows, h.cols, w.rows, h.array, w.array, lab, scale, k, grad,
                                                       out_hidden, out_weight)
    check(status, where, _shapes(h, w) + ("" if k is None else f", top_k={k}"))
    return LinearLogprobGrads(out_hidden, out_weight)


class LinearDiscreteCE(NamedTuple):
    """The classification head's mean cross-entropy ``loss`` (a Python float holding the
    float32 result, nats) and its gradients with respect to ``features`` ``[..., d]``,
    ``weight`` ``[K, d]`` and ``bias`` ``[K]`` (float32; None when not asked for, and bias
    None without a bias)."""

    loss: float
    features: Optional[np.ndarray]
    weight: Optional[np.ndarray]
    bias: Optional[np.ndarray]


def linear_discrete_ce(
    features: ArrayLike,
    weight: ArrayLike,
    bias: Optional[ArrayLike],
    labels: ArrayLike,
    target_entropy: float,
    *,
    tau: float = TAU,
    mode: str = DEFAULT_MODE,
    grads: bool = True,
) -> LinearDiscreteCE:
    """A classification head in one call: linear layer, discrete ERA (era.discrete_forward),
    mean cross-entropy, and the gradients back through all three::

        logits_r = features_r @ weight.T + bias          (float32 product)
        z'_r     = discrete ERA forward(logits_r)        (as era.discrete_forward on float32)
        loss     = mean_r (logsumexp(z'_r) - z'_r[labels[r]])

    The ``N x K`` logits and their gradient live in scratch memory (8 N K bytes).

    Args:
        features: ``[..., d]`` float32; the leading axes are the rows (N = their product >= 1).
        weight: ``[K, d]`` float32, K >= 2 classes.
        bias: ``[K]`` float32, or None for no bias.
        labels: ``[...]`` int64 classes in 0..K-1, the shape of features' leading axes.
        target_entropy, tau, mode: the discrete ERA parameters (era.discrete_forward).
        grads: also compute the gradients (else only the loss, and the fields are None).
    Returns:
        LinearDiscreteCE(loss, features ``[..., d]``, weight ``[K, d]``, bias ``[K]``).
    Raises:
        DTypeError; BadShapeError (N = 0: the mean over no rows is undefined; K < 2; d = 0;
        weight not 2-D, rows of different lengths, bias not ``[K]``, labels not of the rows'
        shape; N, K or d above 2**31 - 1); BadIndexError (a label outside 0..K-1);
        NonFiniteError (NaN or an infinity in features, weight or bias, a logit that
        overflows float32); InfeasibleTargetError and BadParameterError as
        era.discrete_forward (and BadParameterError when a gradient could overflow float32).
    """
    where = "era.linear_discrete_ce"
    x = rows_of(features, where, "features", dtypes=F32_ONLY)
    w = _matrix(weight, where, "weight", x, "features")
    b = None if bias is None else per_row(bias, where, "bias", F32, (w.rows,))
    lab = per_row(labels, where, "labels", INDEX_DTYPE, x.batch_shape)
    out_loss = np.empty(1, np.float32)
    out_features = np.empty_like(x.array) if grads else None
    out_weight = np.empty_like(w.array) if grads else None
    out_bias = np.empty(w.rows, np.float32) if grads and b is not None else None
    status = _era.linear_discrete_ce(
        float(target_entropy), float(tau), mode_number(mode, where), x.rows, x.cols, w.rows, x.array, w.array, b, lab,
        out_loss, out_features, out_weight, out_bias,
    )
    check(status, where, _context(target_entropy, tau, mode, _shapes(x, w, "features")))
    return LinearDiscreteCE(float(out_loss[0]), out_features, out_weight, out_bias)
