"""The device path of era.torch: ERA on tensors libera cannot read (CUDA and other devices), and
on any tensor with ``backend="native"``, from the shared formulas of era._formulas.

These are the non-CPU kernels of the era custom ops (era.torch._ops); call them through the
era.torch functions, which add autograd. They never read a tensor value back to the host:

- Parameters (targets, tau, bounds, the LLM thresholds) depend on no tensor data; libera
  checks them on the host, with its own rules, before anything runs (and solves the
  constant C of discrete ERA's "tight" mode).
- Data (NaN, labels out of range, a non-finite upstream gradient, a residual tensor that
  makes the target infeasible) is checked on the device: a faulty row's outputs are NaN, and
  its fault codes go to era.torch._checks.record, which raises at once for CPU tensors and
  defers the check on other devices (era.torch.set_device_checks, check_device_errors).

Precision: continuous and discrete ERA compute float32 and float64 rows in float64 and half-
precision rows in float32, and store the input's dtype (continuous log stds rounded upwards,
as libera stores them); the LLM passes compute in float32 (float64 for float64 logits).

Memory: the LLM passes run over chunks of rows (chunk_elements), so their temporaries stay
a few float32 chunks whatever the batch: a forward and backward pass adds the gradient (1x
the logits) plus the chunks' temporaries (bench/README.md has the measured peaks).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import _formulas as F
from .. import continuous as _continuous
from .. import discrete as _discrete
from .. import llm as _llm
from .._errors import BadShapeError, error_for_status, python_error
from . import _checks
from ._bridge import cast as _cast

OPS = F.namespace(torch)
# The LLM passes' chunks: at most CHUNK_ELEMENTS logits (32 MiB per float32 temporary), and
# about a sixteenth of the logits, but never fewer than MIN_CHUNK_ELEMENTS (or one row).
CHUNK_ELEMENTS = 1 << 23
MIN_CHUNK_ELEMENTS = 1 << 20


def _wide(t: torch.Tensor, llm: bool = False) -> torch.Tensor:
    return t.to(F.compute_dtype(OPS, t, llm=llm))


def _poison(out: torch.Tensor, faults: torch.Tensor) -> torch.Tensor:
    """out with NaN in the rows whose fault code is not 0 (faults has out's leading shape)."""
    bad = faults != 0
    while bad.dim() < out.dim():
        bad = bad.unsqueeze(-1)
    return torch.where(bad, torch.full_like(out, math.nan), out)


def _need_rows(t: torch.Tensor, where: str, name: str, min_cols: int = 1) -> None:
    if t.dim() == 0:
        raise python_error(BadShapeError, where, f"{name} is a scalar; it needs a last axis (the row)")
    if t.shape[-1] < min_cols:
        raise python_error(BadShapeError, where, f"{name} rows have {t.shape[-1]} entries, fewer than {min_cols}")


# ---------------------------------------------------------------------------------------
# Parameter checks (on the host, by libera's rules, cached)


@lru_cache(maxsize=256)
def _continuous_checked(dim: int, target_entropy: float, log_std_min: float, log_std_max: float) -> None:
    """libera checks the parameters on zero rows. A residual tensor is checked on the device;
    it can only raise the target, so the target is checked here without it."""
    _continuous.continuous_forward(np.zeros((0, dim)), target_entropy, log_std_min=log_std_min,
                                   log_std_max=log_std_max)


@lru_cache(maxsize=256)
def discrete_slope_offset(classes: int, target_entropy: float, tau: float, mode: str) -> Tuple[float, float]:
    """(a, b) of y = a p + b, with C from libera (which checks the parameters and solves the
    "tight" mode)."""
    c = _discrete.discrete_constant(classes, target_entropy, tau=tau, mode=mode)
    return F.discrete_slope_offset(classes, c, tau)


@lru_cache(maxsize=64)
def check_llm_params(omega_low: float, omega_high: float, k: float, top_fraction: float) -> None:
    """libera checks the LLM parameters on zero tokens."""
    _llm.llm_response_entropy(np.zeros(0, np.float32), np.zeros(0, np.int64), 0, top_fraction=top_fraction,
                              omega_low=omega_low, omega_high=omega_high, k=k)


# ---------------------------------------------------------------------------------------
# Continuous ERA (math 1)


def _continuous_k(s: torch.Tensor, residual: Optional[torch.Tensor], target_entropy: float, log_std_max: float):
    """K = H0 + delta - D c - D log_std_max: a float, or a 0-d tensor on s's device when the
    residual is a tensor (then its value is data, checked on the device)."""
    k = F.continuous_offset(s.shape[-1], target_entropy, log_std_max)
    return k if residual is None else k + residual.to(s)


def _continuous_faults(s, k, residual):
    return F.continuous_faults(OPS, s, k, None if residual is None else residual.to(s))


def continuous_forward(std_logits, residual, target_entropy, log_std_min, log_std_max):
    """Log stds ``[..., D]`` in std_logits' dtype. `residual`: a 0-d tensor, or None when
    the residual is already part of `target_entropy`."""
    where = "era.torch.native.continuous_forward"
    _need_rows(std_logits, where, "std_logits")
    _continuous_checked(std_logits.shape[-1], target_entropy, log_std_min, log_std_max)
    s = _wide(std_logits)
    k = _continuous_k(s, residual, target_entropy, log_std_max)
    faults = _continuous_faults(s, k, residual)
    _checks.record(faults, where)
    y = _poison(F.continuous_forward(OPS, s, k, log_std_min, log_std_max), faults)
    if std_logits.dtype == s.dtype:
        return y
    return F.round_up_to(OPS, y, std_logits.dtype, log_std_max)


def continuous_backward(std_logits, residual, grad_log_std, target_entropy, log_std_min, log_std_max):
    """(dL/d std_logits in its dtype, dL/d residual per row in float64)."""
    where = "era.torch.native.continuous_backward"
    _need_rows(std_logits, where, "std_logits")
    _continuous_checked(std_logits.shape[-1], target_entropy, log_std_min, log_std_max)
    s = _wide(std_logits)
    g = grad_log_std.to(s.dtype)
    k = _continuous_k(s, residual, target_entropy, log_std_max)
    faults = _continuous_faults(s, k, residual)
    faults = torch.where(faults != 0, faults, F.continuous_faults(OPS, g))
    _checks.record(faults, where)
    grad, grad_residual = F.continuous_backward(OPS, s, g, k, log_std_min, log_std_max)
    return _poison(grad, faults).to(std_logits.dtype), _poison(grad_residual, faults).to(torch.float64)


# ---------------------------------------------------------------------------------------
# Discrete ERA (math 2)


def discrete_forward(logits, target_entropy, tau, mode):
    """Output logits ``[..., D]`` in the logits' dtype."""
    where = "era.torch.native.discrete_forward"
    _need_rows(logits, where, "logits")
    a, b = discrete_slope_offset(logits.shape[-1], target_entropy, tau, mode)
    z = _wide(logits)
    faults = F.discrete_faults(OPS, z)
    _checks.record(faults, where)
    return _poison(F.discrete_forward(OPS, z, a, b, tau, mode), faults).to(logits.dtype)


def discrete_backward(logits, grad_out, target_entropy, tau, mode):
    where = "era.torch.native.discrete_backward"
    _need_rows(logits, where, "logits")
    a, b = discrete_slope_offset(logits.shape[-1], target_entropy, tau, mode)
    z = _wide(logits)
    g = grad_out.to(z.dtype)
    faults = F.discrete_faults(OPS, z)
    faults = torch.where(faults != 0, faults, F.discrete_faults(OPS, g))
    _checks.record(faults, where)
    return _poison(F.discrete_backward(OPS, z, g, a, b, tau, mode), faults).to(logits.dtype)


# ---------------------------------------------------------------------------------------
# Entropies


def softmax_entropy(logits):
    """Entropy of softmax per row (finite rows), in the logits' dtype, computed in float64
    for float32/float64 rows."""
    where = "era.torch.native.softmax_entropy"
    _need_rows(logits, where, "logits")
    z = _wide(logits)
    faults = F.discrete_faults(OPS, z)
    _checks.record(faults, where)
    return _poison(F.softmax_entropy(OPS, z), faults).to(logits.dtype)


def gaussian_entropy(log_std):
    """``sum(log_std) + D*0.5*log(2*pi*e)`` per row, in log_std's dtype."""
    where = "era.torch.native.gaussian_entropy"
    _need_rows(log_std, where, "log_std")
    x = _wide(log_std)
    faults = F.discrete_faults(OPS, x)
    value = F.gaussian_entropy(OPS, x).to(log_std.dtype)
    # As libera: an entropy the dtype cannot hold (log stds near its largest value) is refused.
    faults = torch.where(faults != 0, faults, (~torch.isfinite(value)).to(torch.int32) * F.BAD_PARAMETER)
    _checks.record(faults, where)
    return _poison(value, faults)


# ---------------------------------------------------------------------------------------
# LLM ERA (math 3): chunked over the token rows


def chunk_elements(total: int) -> int:
    """Logits per chunk for a pass over `total` logits (CHUNK_ELEMENTS, MIN_CHUNK_ELEMENTS)."""
    return max(min(total, MIN_CHUNK_ELEMENTS), min(CHUNK_ELEMENTS, total // 16))


def _for_row_chunks(logits: torch.Tensor, per_row_in: Sequence[Optional[torch.Tensor]],
                    per_row_out: Sequence[torch.Tensor], per_logit_out: Sequence[torch.Tensor],
                    body: Callable, step: Optional[int] = None) -> None:
    """Calls ``body(x, ins) -> (row results, logit results)`` on chunks of `step` rows
    (chunk_elements of all the logits), ``x`` a ``[rows, V]`` view of `logits` (never a copy:
    a strided view such as ``logits[:, :-1]`` is walked one leading index at a time), and
    writes the results into the matching slices of the outputs (contiguous, of logits'
    leading shape, and of logits' shape)."""
    vocab = logits.shape[-1]
    if step is None:
        step = max(1, chunk_elements(logits.numel()) // max(vocab, 1))
    try:
        x = logits.view(-1, vocab)
    except RuntimeError:  # leading axes that do not collapse into one
        for i in range(logits.shape[0]):
            _for_row_chunks(logits[i], [None if t is None else t[i] for t in per_row_in],
                            [t[i] for t in per_row_out], [t[i] for t in per_logit_out], body, step)
        return
    rows = x.shape[0]
    ins = [None if t is None else t.reshape(rows) for t in per_row_in]
    row_outs = [t.view(rows) for t in per_row_out]
    logit_outs = [t.view(rows, vocab) for t in per_logit_out]
    for start in range(0, rows, step):
        part = slice(start, start + step)
        row_results, logit_results = body(x[part], [None if t is None else t[part] for t in ins])
        for out, value in zip(row_outs, row_results):
            out[part] = value
        for out, value in zip(logit_outs, logit_results):
            out[part] = value


def _llm_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def token_entropy(logits):
    """Entropy of softmax per token, -inf masked: float64 for float64 logits, else float32."""
    where = "era.torch.native.token_entropy"
    _need_rows(logits, where, "logits")
    lead = logits.shape[:-1]
    out = torch.empty(lead, dtype=_llm_dtype(logits), device=logits.device)
    faults = torch.empty(lead, dtype=torch.int32, device=logits.device)

    def body(x, _):
        x = _wide(x, llm=True)
        return (F.token_entropy(OPS, x), F.logit_faults(OPS, x)), ()

    _for_row_chunks(logits, [], [out, faults], [], body)
    _checks.record(faults, where)
    return _poison(out, faults)


def _scale_in(scale, x):
    return None if scale is None else scale.to(x.dtype)


def _logprob_forward(x, labels, scale, top_k: int):
    """F.logprob_forward, or with top_k >= 1 F.topk_logprob_forward (the top-k log-prob)."""
    if top_k >= 1:
        return F.topk_logprob_forward(OPS, x, labels, scale, top_k)
    return F.logprob_forward(OPS, x, labels, scale)


def _logprob_backward(x, labels, scale, g, top_k: int):
    if top_k >= 1:
        return F.topk_logprob_backward(OPS, x, labels, scale, g, top_k)
    return F.logprob_backward(OPS, x, labels, scale, g)


def _overflow(value, status):
    return (~torch.isfinite(value)).to(torch.int32) * status


def logprob_forward(logits, labels, logit_scale, top_k: int = 0):
    """(logp'_t, entropy of softmax(s_t z_t)) per token, float32 (float64 for float64 logits).
    A log-probability the output dtype cannot hold is BAD_PARAMETER, as in libera. top_k >= 1:
    the top-k log-probability (F.topk_logprob_forward; 0: off)."""
    where = "era.torch.native.llm_logprob_forward"
    _need_rows(logits, where, "logits")
    lead, vocab = logits.shape[:-1], logits.shape[-1]
    dtype = _llm_dtype(logits)
    logprob = torch.empty(lead, dtype=dtype, device=logits.device)
    entropy = torch.empty(lead, dtype=dtype, device=logits.device)
    faults = torch.empty(lead, dtype=torch.int32, device=logits.device)

    def body(x, ins):
        labels, scale = ins
        x = _wide(x, llm=True)
        scale = _scale_in(scale, x)
        lp, h = _logprob_forward(x, F.safe_labels(OPS, labels, vocab), scale, top_k)
        code = F.llm_faults(OPS, x, labels, scale)
        code = torch.where(code != 0, code, _overflow(lp, F.BAD_PARAMETER))
        return (lp, h, code), ()

    _for_row_chunks(logits, [labels, logit_scale], [logprob, entropy, faults], [], body)
    _checks.record(faults, where)
    return _poison(logprob, faults), _poison(entropy, faults)


def logprob_backward(logits, labels, logit_scale, grad_logprob, top_k: int = 0):
    """dL/d logits of ``sum_t g_t logp'_t`` in the logits' dtype. A g_t s_t that the logits'
    dtype cannot hold (the bound on the gradient) is BAD_PARAMETER, as in libera."""
    where = "era.torch.native.llm_logprob_backward"
    _need_rows(logits, where, "logits")
    lead, vocab = logits.shape[:-1], logits.shape[-1]
    grad = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
    faults = torch.empty(lead, dtype=torch.int32, device=logits.device)

    def body(x, ins):
        labels, scale, g = ins
        x = _wide(x, llm=True)
        scale = _scale_in(scale, x)
        g = g.to(x.dtype)
        code = F.llm_faults(OPS, x, labels, scale, g)
        bound = g.double() if scale is None else g.double() * scale.double()
        code = torch.where(code != 0, code, _overflow(bound.to(logits.dtype), F.BAD_PARAMETER))
        return (code,), (_logprob_backward(x, F.safe_labels(OPS, labels, vocab), scale, g, top_k),)

    _for_row_chunks(logits, [labels, logit_scale, grad_logprob], [faults], [grad], body)
    _checks.record(faults, where)
    return grad.masked_fill_((faults != 0).unsqueeze(-1), math.nan)


def response_entropy(token_h, response_id, num_responses, top_fraction):
    """``[R]`` response entropies in token_h's dtype (sums in float64); every response NaN if
    an id is out of range or a response token's entropy is not finite."""
    where = "era.torch.native.llm_response_entropy"
    h = token_h.reshape(-1)
    ids = response_id.reshape(-1)
    faults = F.response_faults(OPS, h, ids, num_responses)
    _checks.record(faults, where)
    safe = torch.where(faults != 0, torch.full_like(ids, -1), ids)
    out = F.response_entropy(OPS, h.to(torch.float64), safe, num_responses, top_fraction)
    bad = (faults != 0).any()
    return torch.where(bad, torch.full_like(out, math.nan), out).to(token_h.dtype)


def scales(response_h, response_id, advantages, omega_low, omega_high, k, scale_advantages):
    """(s_t, A'_t) per token, in the advantages' dtype."""
    where = "era.torch.native.llm_scales"
    ids = torch.where((response_id < -1) | (response_id >= response_h.shape[0]), torch.full_like(response_id, -1),
                      response_id)
    scale, new = F.scales(OPS, response_h, ids, advantages, omega_low, omega_high, k, scale_advantages)
    faults = F.scale_faults(OPS, response_h, response_id, advantages, new)
    _checks.record(faults, where)
    return _poison(scale, faults), _poison(new, faults)


# ---------------------------------------------------------------------------------------
# Fused linear heads (docs/linear-heads.md): the logits z = hidden @ weight.T are formed one
# chunk of rows at a time, never all at once


def _matrix_rows(x: torch.Tensor, weight: torch.Tensor, where: str, name: str) -> torch.Tensor:
    """x ``[..., d]`` as ``[rows, d]`` (a view when it can be), against weight ``[V, d]``."""
    if weight.dim() != 2 or x.dim() == 0 or x.shape[-1] != weight.shape[1] or weight.shape[1] < 1:
        raise python_error(BadShapeError, where, f"{name} {tuple(x.shape)} and weight {tuple(weight.shape)} must be "
                           "[..., d] and [V, d] with d >= 1")
    return x.reshape(-1, x.shape[-1])


def _linear_chunks(rows: int, outputs: int):
    step = max(1, chunk_elements(rows * outputs) // max(outputs, 1))
    return [slice(start, start + step) for start in range(0, rows, step)]


def _product(x: torch.Tensor, weight: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """x @ weight.T in the inputs' dtype (tensor cores for half precision), then widened."""
    return (x @ weight.T).to(compute)


def _logit_faults(z: torch.Tensor) -> torch.Tensor:
    """NON_FINITE for a row with a non-finite logit: there are no masks in the fused heads
    (NaN or an infinity in hidden or weight, or a product that overflows)."""
    return (~torch.isfinite(z)).any(-1).to(torch.int32) * F.NON_FINITE


def linear_logprob_forward(hidden, weight, labels, logit_scale, top_k: int = 0):
    """(logp'_t, entropy of softmax(s_t z_t)) for z = hidden @ weight.T: float32 (float64
    for float64 inputs), the shape of hidden's leading axes."""
    where = "era.torch.native.llm_linear_logprob_forward"
    h = _matrix_rows(hidden, weight, where, "hidden")
    rows, vocab = h.shape[0], weight.shape[0]
    dtype = _llm_dtype(hidden)
    logprob = torch.empty(rows, dtype=dtype, device=hidden.device)
    entropy = torch.empty(rows, dtype=dtype, device=hidden.device)
    faults = torch.empty(rows, dtype=torch.int32, device=hidden.device)
    labels = labels.reshape(rows)
    scale = None if logit_scale is None else logit_scale.reshape(rows)
    for part in _linear_chunks(rows, vocab):
        z = _product(h[part], weight, dtype)
        s = _scale_in(None if scale is None else scale[part], z)
        code = F.llm_faults(OPS, z, labels[part], s)
        code = torch.where(code != 0, code, _logit_faults(z))
        lp, ent = _logprob_forward(z, F.safe_labels(OPS, labels[part], vocab), s, top_k)
        faults[part] = torch.where(code != 0, code, _overflow(lp, F.BAD_PARAMETER))
        logprob[part], entropy[part] = lp, ent
    _checks.record(faults, where)
    lead = hidden.shape[:-1]
    return _poison(logprob, faults).reshape(lead), _poison(entropy, faults).reshape(lead)


def linear_logprob_backward(hidden, weight, labels, logit_scale, grad_logprob, grad_hidden, grad_weight,
                            top_k: int = 0):
    """(dL/d hidden, dL/d weight) of ``sum_t g_t logp'_t`` for z = hidden @ weight.T; an
    empty tensor for a gradient not asked for. dL/d weight accumulates over the chunks in
    float32 (float64 for float64 inputs)."""
    where = "era.torch.native.llm_linear_logprob_backward"
    h = _matrix_rows(hidden, weight, where, "hidden")
    rows, vocab = h.shape[0], weight.shape[0]
    dtype = _llm_dtype(hidden)
    out_h = torch.empty(h.shape, dtype=hidden.dtype, device=hidden.device) if grad_hidden else hidden.new_empty(0)
    acc_w = torch.zeros(weight.shape, dtype=dtype, device=weight.device) if grad_weight else None
    faults = torch.empty(rows, dtype=torch.int32, device=hidden.device)
    labels, g = labels.reshape(rows), grad_logprob.reshape(rows)
    scale = None if logit_scale is None else logit_scale.reshape(rows)
    for part in _linear_chunks(rows, vocab):
        z = _product(h[part], weight, dtype)
        s = _scale_in(None if scale is None else scale[part], z)
        gs = g[part].to(dtype)
        code = F.llm_faults(OPS, z, labels[part], s, gs)
        code = torch.where(code != 0, code, _logit_faults(z))
        bound = gs.double() if s is None else gs.double() * s.double()
        faults[part] = torch.where(code != 0, code, _overflow(bound.to(torch.float32), F.BAD_PARAMETER))
        dz = _logprob_backward(z, F.safe_labels(OPS, labels[part], vocab), s, gs, top_k)
        del z
        if grad_hidden:
            out_h[part] = dz.to(weight.dtype) @ weight
        if grad_weight:
            acc_w.addmm_(dz.T, h[part].to(dtype))  # in place: no weight-sized temporary
    # As libera: a gradient that overflows is BAD_PARAMETER (libera refuses it from a bound).
    # Reductions only: no temporary as large as the weight.
    out_w = weight.new_empty(0)
    if grad_weight:
        out_w = _cast(acc_w, weight.dtype)
        del acc_w
        # the extremes propagate NaN and hold any infinity; isfinite() would build temporaries
        extremes = torch.stack([out_w.amax(), out_w.amin()]) if out_w.numel() else out_w.new_zeros(2)
        # Only when no row is faulty: a faulty row (a NaN upstream gradient, NON_FINITE)
        # spreads NaN into the weight's gradient, which is not an overflow of the others.
        overflow = (~torch.isfinite(extremes).all() & (faults == 0).all()).to(torch.int32) * F.BAD_PARAMETER
        faults = torch.where(faults != 0, faults, overflow)
    if grad_hidden:
        overflow = (~torch.isfinite(out_h).all(-1)).to(torch.int32) * F.BAD_PARAMETER
        faults = torch.where(faults != 0, faults, overflow)
    _checks.record(faults, where)
    if grad_weight:
        out_w.masked_fill_((faults != 0).any(), math.nan)
    if grad_hidden:
        out_h = out_h.masked_fill_((faults != 0).unsqueeze(-1), math.nan).reshape(hidden.shape)
    return out_h, out_w


def linear_ce_upstream(grad_loss, saved, device_checks: bool = True):
    """The upstream gradient of linear_discrete_ce's loss (0-d), checked as libera's backward
    kernels check theirs before the saved gradients are scaled by it: NaN or an infinity is
    NON_FINITE, and a product with a saved gradient that overflows that gradient's dtype is
    BAD_PARAMETER. Returns grad_loss (a copy), or NaN when faulty. `device_checks`: report
    by set_device_checks (no host synchronisation); else raise at once (libera's path)."""
    where = "era.torch.native.linear_discrete_ce (backward)" if device_checks else \
        "era.torch.linear_discrete_ce (backward)"
    g = grad_loss.double()
    fault = (~torch.isfinite(g)).to(torch.int32) * F.NON_FINITE
    for grad in saved:
        if grad.numel() == 0:
            continue
        # the largest magnitude from the extremes (no temporary as large as the gradient);
        # NaN there comes from a faulty forward, already reported, and counts as 0
        top = torch.stack([grad.amax(), grad.amin()]).double().abs().nan_to_num(nan=0.0).amax()
        over = ~torch.isfinite((g.abs() * top).to(grad.dtype))
        fault = torch.where(fault != 0, fault, over.to(torch.int32) * F.BAD_PARAMETER)
    if not device_checks:
        status = int(fault)
        if status:
            raise error_for_status(status, where, "grad_loss")
        return grad_loss.clone()
    _checks.record(fault.reshape(1), where, "grad_loss")
    return torch.where(fault != 0, torch.full_like(grad_loss, math.nan), grad_loss)


def linear_discrete_ce(features, weight, bias, labels, target_entropy, tau, mode, with_grads):
    """(mean cross-entropy of discrete ERA over z = features @ weight.T + bias, and its
    gradients for features, weight and bias, or empty tensors), computed in float64 for
    float32/float64 inputs (float32 for half precision), the loss in float32 (float64)."""
    where = "era.torch.native.linear_discrete_ce"
    x = _matrix_rows(features, weight, where, "features")
    rows, classes = x.shape[0], weight.shape[0]
    if rows < 1:
        raise python_error(BadShapeError, where, "features hold no rows: the mean over no rows is undefined")
    if bias is not None and tuple(bias.shape) != (classes,):
        raise python_error(BadShapeError, where, f"bias {tuple(bias.shape)} must be [{classes}]")
    a, b = discrete_slope_offset(classes, target_entropy, tau, mode)
    compute = F.compute_dtype(OPS, x)
    labels = labels.reshape(rows)
    total = torch.zeros((), dtype=compute, device=x.device)
    faults = torch.empty(rows, dtype=torch.int32, device=x.device)
    grads = None
    if with_grads:
        grads = (torch.empty(x.shape, dtype=features.dtype, device=x.device),
                 torch.zeros(weight.shape, dtype=compute, device=x.device),
                 None if bias is None else torch.zeros(classes, dtype=compute, device=x.device))
    for part in _linear_chunks(rows, classes):
        z = _product(x[part], weight, compute)
        if bias is not None:
            z = z + bias.to(compute)
        code = torch.where((labels[part] < 0) | (labels[part] >= classes), F.BAD_INDEX, _logit_faults(z))
        faults[part] = code
        target = F.safe_labels(OPS, labels[part], classes)
        t = F.discrete_forward(OPS, z, a, b, tau, mode)
        total = total + (torch.logsumexp(t, -1) - OPS.take(t, target)).sum()
        if with_grads:
            onehot = OPS.is_index(target, classes, t)
            dz = F.discrete_backward(OPS, z, (torch.softmax(t, -1) - onehot.to(compute)) / rows, a, b, tau, mode)
            grads[0][part] = (dz.to(weight.dtype) @ weight).to(features.dtype)
            grads[1].addmm_(dz.T, x[part].to(compute))
            if bias is not None:
                grads[2].add_(dz.sum(0))
    _checks.record(faults, where)
    bad = (faults != 0).any()
    loss = torch.where(bad, math.nan, total / rows).to(_llm_dtype(features))
    if not with_grads:
        empty = features.new_empty(0)
        return loss, empty, empty, empty
    grad_x = grads[0].masked_fill_(bad, math.nan).reshape(features.shape)
    grad_w = torch.where(bad, math.nan, grads[1]).to(weight.dtype)
    grad_b = features.new_empty(0) if bias is None else torch.where(bad, math.nan, grads[2]).to(bias.dtype)
    return loss, grad_x, grad_w, grad_b


# ---------------------------------------------------------------------------------------
# The truncated-normal entropy, its gradient and the sampled floor (docs/math.md, "The sampled
# floor"): era._formulas in float64, a fixed number of root-find steps, no host reads.


@lru_cache(maxsize=256)
def _interval_checked(lo: float, hi: float) -> None:
    """libera's interval check, on zero rows."""
    from .. import entropy as _entropy

    _entropy.truncated_normal_entropy(np.zeros((0, 1)), np.zeros((0, 1)), lo, hi)


@lru_cache(maxsize=256)
def _sampled_checked(dim: int, target_entropy: float, lo: float, hi: float, log_std_min: float,
                     log_std_max: float) -> None:
    """libera checks the sampled floor's parameters, interval and feasibility on zero rows (a
    residual tensor only raises the target: it is checked on the device)."""
    from .. import sampled_floor as _sampled

    _sampled.continuous_truncated_forward(np.zeros((0, dim)), np.zeros((0, dim)), target_entropy, lo=lo, hi=hi,
                                          log_std_min=log_std_min, log_std_max=log_std_max)


def truncated_normal_entropy(loc, log_std, lo, hi):
    """Entropy of N(loc, exp(log_std)^2) truncated to [lo, hi] per row, in log_std's dtype."""
    where = "era.torch.native.truncated_normal_entropy"
    _need_rows(log_std, where, "log_std")
    _interval_checked(lo, hi)
    m, ls = loc.to(torch.float64), log_std.to(torch.float64)
    faults = F.truncated_faults(OPS, m, ls)
    _checks.record(faults, where)
    return _poison(F.truncated_normal_entropy(OPS, m, ls, lo, hi), faults).to(log_std.dtype)


def truncated_normal_entropy_backward(loc, log_std, grad_entropy, lo, hi):
    """(dL/d loc, dL/d log_std) of truncated_normal_entropy, in log_std's dtype."""
    where = "era.torch.native.truncated_normal_entropy_backward"
    _need_rows(log_std, where, "log_std")
    _interval_checked(lo, hi)
    m, ls, g = loc.to(torch.float64), log_std.to(torch.float64), grad_entropy.to(torch.float64)
    faults = F.truncated_faults(OPS, m, ls, g)
    grad_loc, grad_log_std = F.truncated_normal_entropy_backward(OPS, m, ls, g, lo, hi)
    # a gradient the output dtype cannot hold: BAD_PARAMETER (libera's rule)
    wide = ~torch.isfinite(grad_loc.to(log_std.dtype)) | ~torch.isfinite(grad_log_std.to(log_std.dtype))
    faults = torch.where(faults != 0, faults, F._flag(OPS, wide.any(-1), F.BAD_PARAMETER))
    _checks.record(faults, where)
    return _poison(grad_loc, faults).to(log_std.dtype), _poison(grad_log_std, faults).to(log_std.dtype)


def _sampled_setup(std_logits, loc, residual, target_entropy, lo, hi, log_std_min, log_std_max, where):
    """(s, m, K, target, faults) in float64; faults: NON_FINITE rows, and for a residual
    tensor BAD_PARAMETER (not finite or < 0) and INFEASIBLE_TARGET (K > 0 or a target at or
    above dim log(hi - lo))."""
    _need_rows(std_logits, where, "std_logits")
    dim = std_logits.shape[-1]
    _sampled_checked(dim, target_entropy, lo, hi, log_std_min, log_std_max)
    s, m = _wide(std_logits), loc.to(torch.float64)
    k = _continuous_k(s, residual, target_entropy, log_std_max)
    target = target_entropy if residual is None else target_entropy + residual.to(s)
    faults = F.truncated_faults(OPS, s, m)
    if residual is not None:
        faults = torch.where(faults != 0, faults, _continuous_faults(s, k, residual))
        sup = dim * (math.log(0.5 * hi - 0.5 * lo) + math.log(2.0))
        beyond = F._flag(OPS, (target >= sup) & (faults == 0), F.INFEASIBLE_TARGET)
        faults = torch.maximum(faults, beyond)
    return s, m, k, target, faults


def continuous_truncated_forward(std_logits, loc, residual, target_entropy, lo, hi, log_std_min, log_std_max):
    """Sampled-floor log stds ``[..., D]`` in std_logits' dtype (float32 rounded up)."""
    where = "era.torch.native.continuous_truncated_forward"
    s, m, k, target, faults = _sampled_setup(std_logits, loc, residual, target_entropy, lo, hi, log_std_min,
                                             log_std_max, where)
    narrow = None if std_logits.dtype == s.dtype else std_logits.dtype
    out, _, infeasible = F.sampled_floor_forward(OPS, s, m, k, target, lo, hi, log_std_min, log_std_max, narrow)
    faults = torch.where(faults != 0, faults, F._flag(OPS, infeasible, F.INFEASIBLE_TARGET))
    _checks.record(faults, where)
    return _poison(out, faults).to(std_logits.dtype)


def continuous_truncated_backward(std_logits, loc, residual, grad_log_std, target_entropy, lo, hi, log_std_min,
                                  log_std_max):
    """(dL/d std_logits, dL/d loc in std_logits' dtype, dL/d residual per row in float64)."""
    where = "era.torch.native.continuous_truncated_backward"
    s, m, k, target, faults = _sampled_setup(std_logits, loc, residual, target_entropy, lo, hi, log_std_min,
                                             log_std_max, where)
    g = grad_log_std.to(torch.float64)
    faults = torch.where(faults != 0, faults, F.truncated_faults(OPS, g))
    narrow = None if std_logits.dtype == s.dtype else std_logits.dtype
    grad_s, grad_m, grad_r = F.sampled_floor_backward(OPS, s, m, g, k, target, lo, hi, log_std_min, log_std_max,
                                                      narrow)
    wide = (~torch.isfinite(grad_s.to(std_logits.dtype)) | ~torch.isfinite(grad_m.to(std_logits.dtype))).any(-1)
    wide = wide | ~torch.isfinite(grad_r)
    faults = torch.where(faults != 0, faults, F._flag(OPS, wide, F.BAD_PARAMETER))
    _checks.record(faults, where)
    return (_poison(grad_s, faults).to(std_logits.dtype), _poison(grad_m, faults).to(std_logits.dtype),
            _poison(grad_r, faults))


# ---------------------------------------------------------------------------------------
# The tanh-Gaussian entropy gradient and the tanh sampled floor (docs/math.md, "The sampled
# floor, tanh"): era._formulas in float64, fixed step counts, no host reads.


@lru_cache(maxsize=256)
def _tanh_checked(dim: int, target_entropy: float, log_std_min: float, log_std_max: float) -> None:
    """libera checks the tanh floor's parameters and static feasibility on zero rows (a
    residual tensor only raises the target: it is checked on the device)."""
    from .. import sampled_floor as _sampled

    _sampled.continuous_tanh_forward(np.zeros((0, dim)), np.zeros((0, dim)), target_entropy,
                                     log_std_min=log_std_min, log_std_max=log_std_max)


def tanh_gaussian_entropy_backward(mean, log_std, grad_entropy):
    """(dL/d mean, dL/d log_std) of the tanh-Gaussian entropy, in log_std's dtype."""
    where = "era.torch.native.tanh_gaussian_entropy_backward"
    _need_rows(log_std, where, "log_std")
    m, ls, g = mean.to(torch.float64), log_std.to(torch.float64), grad_entropy.to(torch.float64)
    faults = F.truncated_faults(OPS, m, ls, g)
    grad_mean, grad_log_std = F.tanh_gaussian_entropy_backward(OPS, m, ls, g)
    wide = ~torch.isfinite(grad_mean.to(log_std.dtype)) | ~torch.isfinite(grad_log_std.to(log_std.dtype))
    faults = torch.where(faults != 0, faults, F._flag(OPS, wide.any(-1), F.BAD_PARAMETER))
    _checks.record(faults, where)
    return _poison(grad_mean, faults).to(log_std.dtype), _poison(grad_log_std, faults).to(log_std.dtype)


def _tanh_setup(std_logits, mean, residual, target_entropy, log_std_min, log_std_max, where):
    """(s, m, K, target, faults) in float64, as _sampled_setup with the squashed entropy's
    static bound D * F.TANH_ENTROPY_PEAK."""
    _need_rows(std_logits, where, "std_logits")
    dim = std_logits.shape[-1]
    _tanh_checked(dim, target_entropy, log_std_min, log_std_max)
    s, m = _wide(std_logits), mean.to(torch.float64)
    k = _continuous_k(s, residual, target_entropy, log_std_max)
    target = target_entropy if residual is None else target_entropy + residual.to(s)
    faults = F.truncated_faults(OPS, s, m)
    if residual is not None:
        faults = torch.where(faults != 0, faults, _continuous_faults(s, k, residual))
        beyond = F._flag(OPS, (target >= dim * F.TANH_ENTROPY_PEAK) & (faults == 0), F.INFEASIBLE_TARGET)
        faults = torch.maximum(faults, beyond)
    return s, m, k, target, faults


def continuous_tanh_forward(std_logits, mean, residual, target_entropy, log_std_min, log_std_max):
    """Tanh sampled-floor log stds ``[..., D]`` in std_logits' dtype (float32 rounded up)."""
    where = "era.torch.native.continuous_tanh_forward"
    s, m, k, target, faults = _tanh_setup(std_logits, mean, residual, target_entropy, log_std_min, log_std_max,
                                          where)
    narrow = None if std_logits.dtype == s.dtype else std_logits.dtype
    out, _, infeasible = F.tanh_floor_forward(OPS, s, m, k, target, log_std_min, log_std_max, narrow)
    faults = torch.where(faults != 0, faults, F._flag(OPS, infeasible, F.INFEASIBLE_TARGET))
    _checks.record(faults, where)
    return _poison(out, faults).to(std_logits.dtype)


def continuous_tanh_backward(std_logits, mean, residual, grad_log_std, target_entropy, log_std_min, log_std_max):
    """(dL/d std_logits, dL/d mean in std_logits' dtype, dL/d residual per row in float64)."""
    where = "era.torch.native.continuous_tanh_backward"
    s, m, k, target, faults = _tanh_setup(std_logits, mean, residual, target_entropy, log_std_min, log_std_max,
                                          where)
    g = grad_log_std.to(torch.float64)
    faults = torch.where(faults != 0, faults, F.truncated_faults(OPS, g))
    narrow = None if std_logits.dtype == s.dtype else std_logits.dtype
    grad_s, grad_m, grad_r = F.tanh_floor_backward(OPS, s, m, g, k, target, log_std_min, log_std_max, narrow)
    # a row whose peak lies below the target has no offset (NaN): INFEASIBLE_TARGET, as libera
    faults = torch.where(faults != 0, faults, F._flag(OPS, torch.isnan(grad_r), F.INFEASIBLE_TARGET))
    wide = (~torch.isfinite(grad_s.to(std_logits.dtype)) | ~torch.isfinite(grad_m.to(std_logits.dtype))).any(-1)
    wide = wide | ~torch.isfinite(grad_r)
    faults = torch.where(faults != 0, faults, F._flag(OPS, wide, F.BAD_PARAMETER))
    _checks.record(faults, where)
    return (_poison(grad_s, faults).to(std_logits.dtype), _poison(grad_m, faults).to(std_logits.dtype),
            _poison(grad_r, faults))
