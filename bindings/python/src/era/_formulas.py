"""ERA's formulas written once against an array namespace (docs/math.md, sections 1 to 3).

libera computes ERA in its own kernels. Every path that does not call libera -- the torch
device path (era.torch.native: CUDA tensors, or ``backend="native"``), the benchmarks'
framework baselines (bench/baselines.py) and a future on-device JAX path -- computes it with
the functions below instead, so that there is one second implementation of each formula,
not one per framework. ``xp`` is the array module: ``numpy``, ``torch`` or ``jax.numpy``
(:func:`namespace` wraps it; the few calls whose spelling differs between them are methods
of :class:`ArrayOps`). The tests hold every function here to libera on the same inputs.

Rules shared by every function:

- Arrays are ``[..., D]`` with the row on the last axis; per-row values are ``[...]``.
- Functions compute in the dtype of their array arguments; the caller casts first (float64
  for float32/float64 ERA rows, as libera does; float32 for half-precision rows and for the
  LLM passes). Scalars (``a``, ``b``, ``k``, ...) are Python floats, or 0-d arrays where
  they depend on data the caller must not read back (a residual on a device).
- Nothing here reads a value back to the host, branches on data, or raises: a bad row gives
  NaN where its outputs would be, and the ``*_faults`` functions return per-row flags that
  the caller turns into errors (see era.torch.native). All of it traces under torch.compile
  and jax.jit.
- Everything is differentiable by the array library's own autodiff where the formula is
  (the double-backward of the torch ops differentiates the backward formulas here).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Optional, Tuple

# 0.5*log(2*pi*e): the entropy of N(0, 1) per dimension (math 1).
GAUSSIAN_ENTROPY_PER_DIM = 0.5 * math.log(2 * math.pi * math.e)
# Halley steps on t + log(-t) = log y from the starts of log_inverse_entropy that reach the
# rounding of each type over 1e-300 <= y <= log(tau)/tau, tau > e (math 2, "The inverse").
HALLEY_STEPS = {"float16": 2, "bfloat16": 2, "float32": 3, "float64": 4}
# era_status codes the fault flags use (include/era.h).
BAD_PARAMETER, INFEASIBLE_TARGET, NON_FINITE, BAD_INDEX = 3, 4, 5, 8


class ArrayOps:
    """The array module ``xp`` with the handful of operations whose spelling differs
    between numpy, torch and jax.numpy. Elementwise functions (``exp``, ``log``, ``where``,
    ``isfinite``, ...) are the module's own, reached as attributes."""

    def __init__(self, xp: Any):
        self.xp = xp
        self.name = xp.__name__

    def __getattr__(self, name: str):
        return getattr(self.xp, name)

    @property
    def is_torch(self) -> bool:
        return self.name == "torch"

    def dtype_name(self, x) -> str:
        return str(x.dtype).replace("torch.", "")

    def astype(self, x, dtype):
        if self.is_torch:
            return x.to(dtype)
        if self.name == "jax.numpy":  # float64 is float32 while JAX's x64 mode is off: ask for that
            import jax

            dtype = jax.dtypes.canonicalize_dtype(dtype)
        return x.astype(dtype)

    def max(self, x, keepdims: bool = True):
        """Maximum along the last axis."""
        reduce = self.xp.amax if self.is_torch else self.xp.max
        return reduce(x, axis=-1, keepdims=keepdims)

    def sum(self, x, keepdims: bool = True):
        """Sum along the last axis."""
        return self.xp.sum(x, axis=-1, keepdims=keepdims)

    def any(self, x):
        """Whether any entry along the last axis is true."""
        return self.xp.any(x, axis=-1) if not self.is_torch else x.any(-1)

    def all(self, x):
        return self.xp.all(x, axis=-1) if not self.is_torch else x.all(-1)

    def take(self, x, index):
        """``x[..., index[...]]``: one entry per row."""
        expanded = index[..., None]
        if self.is_torch:
            return self.xp.take_along_dim(x, expanded, dim=-1)[..., 0]
        return self.xp.take_along_axis(x, expanded, axis=-1)[..., 0]

    def iota(self, n: int, like):
        """0..n-1 on the device of `like` (int64 where the library has it)."""
        if self.is_torch:
            return self.xp.arange(n, device=like.device)
        return self.xp.arange(n)

    def is_index(self, index, n: int, like):
        """A boolean ``[..., n]`` array: True at ``index[...]`` along the last axis."""
        return self.iota(n, like) == index[..., None]

    def argmax(self, x):
        return self.xp.argmax(x, axis=-1) if not self.is_torch else x.argmax(-1)

    def clamp_min(self, x, low):
        return self.xp.clamp(x, min=low) if self.is_torch else self.xp.maximum(x, low)

    def clamp_max(self, x, high):
        return self.xp.clamp(x, max=high) if self.is_torch else self.xp.minimum(x, high)

    def clip(self, x, low, high):
        return self.xp.clamp(x, low, high) if self.is_torch else self.xp.clip(x, low, high)

    def full_like(self, x, value):
        return self.xp.full_like(x, value)

    def cumsum(self, x):
        return self.xp.cumsum(x, 0) if self.is_torch else self.xp.cumsum(x, axis=0)

    def argsort(self, x, descending: bool = False):
        """A stable argsort of a 1-D array (ties keep their order)."""
        if self.is_torch:
            return self.xp.argsort(x, descending=descending, stable=True)
        if self.name == "numpy":
            return self.xp.argsort(-x if descending else x, kind="stable")
        return self.xp.argsort(x, stable=True, descending=descending)

    def segment_sum(self, values, ids, segments: int):
        """``out[j] = sum of values[i] with ids[i] == j`` for j < segments (ids in range)."""
        if self.is_torch:
            out = self.xp.zeros(segments, dtype=values.dtype, device=values.device)
            return out.index_add(0, ids, values)
        if self.name == "numpy":
            out = self.xp.zeros(segments, dtype=values.dtype)
            self.xp.add.at(out, ids, values)
            return out
        import jax

        return jax.ops.segment_sum(values, ids, num_segments=segments)

    def tiny(self, x) -> float:
        """The smallest normal number of x's dtype."""
        return float(self.xp.finfo(x.dtype).tiny)

    def nextafter_up(self, x):
        """The next representable value above x, in x's dtype."""
        return self.xp.nextafter(x, self.full_like(x, math.inf))


@lru_cache(maxsize=None)
def _cached_ops(xp) -> ArrayOps:
    return ArrayOps(xp)


def namespace(xp) -> ArrayOps:
    """The ArrayOps of an array module (numpy, torch, jax.numpy), or of the module of an array."""
    if not hasattr(xp, "__name__") or not hasattr(xp, "exp"):
        kind = type(xp).__module__.split(".")[0]
        if kind == "torch":
            import torch as xp
        elif kind in ("jax", "jaxlib"):
            import jax.numpy as xp
        else:
            import numpy as xp
    return _cached_ops(xp)


def compute_dtype(ops: ArrayOps, x, llm: bool = False):
    """The dtype ERA computes a row in (module docstring): float64 for float32/float64 rows of
    continuous and discrete ERA, float32 for half-precision rows and for float32/half LLM
    rows, float64 for float64 LLM rows."""
    name = ops.dtype_name(x)
    if name == "float64" or (name == "float32" and not llm):
        return ops.float64
    return ops.float32


def _flag(ops: ArrayOps, bad, status: int):
    """``status`` where the per-row boolean `bad` is true, else 0 (int32)."""
    return ops.astype(bad, ops.int32) * status


def softmax(ops: ArrayOps, x):
    """softmax along the last axis (the maximum subtracted)."""
    e = ops.exp(x - ops.max(x))
    return e / ops.sum(e)


# ---------------------------------------------------------------------------------------
# Continuous ERA (math 1)


def continuous_offset(dim: int, target_entropy: float, log_std_max: float) -> float:
    """K less the residual: H0 - D*0.5*log(2*pi*e) - D*log_std_max (math 1)."""
    return target_entropy - dim * GAUSSIAN_ENTROPY_PER_DIM - dim * log_std_max


def continuous_forward(ops: ArrayOps, s, k, log_std_min: float, log_std_max: float):
    """``max(log_std_max + K*softmax(s), log_std_min)`` with K = `k` (a float or a 0-d array)."""
    y = log_std_max + k * softmax(ops, s)
    return ops.where(y > log_std_min, y, log_std_min)


def continuous_backward(ops: ArrayOps, s, g, k, log_std_min: float, log_std_max: float):
    """(dL/ds ``[..., D]``, dL/d(residual) per row ``[...]``) of continuous_forward: with
    ``gt = g`` where the forward value was not clipped and 0 where it was,
    ``dL/ds = K w (gt - sum gt w)`` and ``dL/d(residual) = sum gt w`` (math 1, "Gradient")."""
    w = softmax(ops, s)
    y = log_std_max + k * w
    gt = ops.where(y > log_std_min, g, 0.0)
    gw = ops.sum(gt * w)
    return k * w * (gt - gw), gw[..., 0]


def continuous_jvp(ops: ArrayOps, s, ds, k, dk, log_std_min: float, log_std_max: float):
    """The tangent of continuous_forward at (s, K) along (ds, dK), linear in them:
    ``K dw + dK w`` where the forward value is not clipped (0 where it is), with
    ``dw = w (ds - sum w ds)`` (math 1, "Gradient": its transpose is continuous_backward)."""
    w = softmax(ops, s)
    unclipped = log_std_max + k * w > log_std_min
    dw = w * (ds - ops.sum(w * ds))
    return ops.where(unclipped, k * dw + dk * w, 0.0)


def continuous_faults(ops: ArrayOps, s, k=None, residual=None):
    """Per-row fault codes of continuous ERA: NON_FINITE for a row holding NaN or an
    infinity; when the residual is an array (its value is data, not a parameter),
    BAD_PARAMETER for a residual that is not finite or below 0 and INFEASIBLE_TARGET for
    K > 0, flagged on every row."""
    faults = _flag(ops, ops.any(~ops.isfinite(s)), NON_FINITE)
    if residual is not None:
        bad = ~ops.isfinite(residual) | (residual < 0)
        faults = ops.maximum(faults, _flag(ops, bad & (faults == 0), BAD_PARAMETER))
        faults = ops.maximum(faults, _flag(ops, ~bad & (k > 0) & (faults == 0), INFEASIBLE_TARGET))
    return faults


def round_up_to(ops: ArrayOps, value, dtype, cap: float):
    """`value` stored in the narrower float `dtype` rounded towards +inf, and never above
    `cap` rounded the same way (math 1, "float32 storage"): the stored log stds sum to at
    least the exact sum, so the floor holds for the stored values themselves."""

    def up(v):
        nearest = ops.astype(v, dtype)
        return ops.where(ops.astype(nearest, v.dtype) < v, ops.nextafter_up(nearest), nearest)

    return ops.minimum(up(value), up(ops.full_like(value[..., :1], cap)))


# ---------------------------------------------------------------------------------------
# Discrete ERA (math 2)


def discrete_slope_offset(classes: int, c: float, tau: float) -> Tuple[float, float]:
    """(a, b) of ``y = a*p + b``: a = (D*up - C)/(D - 1), b = (C - up)/(D - 1), both >= 0."""
    up = math.log(tau) / tau
    return max(0.0, (classes * up - c) / (classes - 1)), max(0.0, (c - up) / (classes - 1))


def log_inverse_entropy(ops: ArrayOps, y, steps: Optional[int] = None):
    """t = log h^-1(y), the root t <= -1 of ``t + log(-t) = log y`` (t = W_{-1}(-y)) for
    0 < y < 1/e: Halley's method from the branch-point series (y > 0.25) or the asymptotic
    expansion of W_{-1} (below), `steps` steps (default: HALLEY_STEPS of y's dtype)."""
    if steps is None:
        steps = HALLEY_STEPS[ops.dtype_name(y)]
    log_y = ops.log(y)
    capped = ops.clamp_max(log_y, -1.0)
    q = -ops.sqrt(2 * -ops.expm1(1 + capped))
    near_branch = -1 + q * (1 + q * (-1.0 / 3 + q * (11.0 / 72)))
    l2 = ops.log(-ops.clamp_max(log_y, -1e-30))
    asymptotic = log_y - l2 + l2 / log_y
    t = ops.where(y > 0.25, near_branch, asymptotic)
    for _ in range(steps):
        g = t + ops.log(-t) - log_y
        g1 = 1 + 1 / t
        g2 = -1 / (t * t)
        t = t - g / (g1 - g * g2 / (2 * g1))
    return ops.clamp_max(t, -1.0)


def reference_log_inverse_entropy(ops: ArrayOps, y):
    """The official code's approximation: u = -1 - log y, t = -1 - sqrt(2u) - 0.75u."""
    u = -1 - ops.log(y)
    return -1 - ops.sqrt(2 * u) - 0.75 * u


def _discrete_pieces(ops: ArrayOps, z, a: float, b: float, tau: float, mode: str):
    """p = softmax(z), y = a p + b, whether y was clamped at the smallest normal number of
    the compute type (math 2, "Clamping"), and the output logits t (y kept in
    [smallest, up]; in modes exact and tight t capped at -log(tau))."""
    p = softmax(ops, z)
    y = a * p + b
    up = math.log(tau) / tau
    smallest = ops.tiny(y)
    clamped = y <= smallest
    y_in = ops.clip(y, smallest, up)
    if mode == "reference":
        t = reference_log_inverse_entropy(ops, y_in)
    else:
        t = ops.clamp_max(log_inverse_entropy(ops, y_in), -math.log(tau))
    return p, y, clamped, t


def discrete_forward(ops: ArrayOps, z, a: float, b: float, tau: float, mode: str):
    """Discrete ERA output logits ``log h^-1(a softmax(z) + b)`` (math 2)."""
    return _discrete_pieces(ops, z, a, b, tau, mode)[3]


def discrete_backward(ops: ArrayOps, z, g, a: float, b: float, tau: float, mode: str):
    """dL/dz of discrete_forward (math 2, "Gradient"), in the cancellation-free form of the
    core: ``s_i = g_i (a p_i / y_i) (y_i dt/dy)``, ``dL/dz_j = s_j - p_j sum s``, and for the
    most probable class (the first maximum) minus the sum of the others."""
    p, y, clamped, t = _discrete_pieces(ops, z, a, b, tau, mode)
    y = ops.clamp_min(y, ops.tiny(y))
    if mode == "reference":
        elasticity = 1 / ops.sqrt(2 * (-1 - ops.log(y))) + 0.75
    else:
        elasticity = t / (1 + t)
    elasticity = ops.where(clamped, 0.0, elasticity)
    s = g * (a * p / y) * elasticity
    grad = s - p * ops.sum(s)
    top = ops.is_index(ops.argmax(z), z.shape[-1], z)
    others = ops.sum(ops.where(top, 0.0, grad))
    return ops.where(top, -others, grad)


def discrete_jvp(ops: ArrayOps, z, t, dz, a: float, b: float, tau: float, mode: str):
    """The tangent of discrete_forward at z along dz, given its output t, linear in dz:
    ``dt_i = (y dt/dy)_i (a p_i / y_i) (dz_i - sum_j p_j dz_j)`` (0 where y was clamped), the
    two bounded factors of discrete_backward; for the most probable class the last factor is
    ``sum_{j != top} p_j (dz_top - dz_j)``, the same number without cancellation as p_top
    nears 1. Its transpose is discrete_backward's map (math 2, "Gradient")."""
    p = softmax(ops, z)
    y = a * p + b
    smallest = ops.tiny(y)
    clamped = y <= smallest
    y = ops.clamp_min(y, smallest)
    if mode == "reference":
        elasticity = 1 / ops.sqrt(2 * (-1 - ops.log(y))) + 0.75
    else:
        elasticity = t / (1 + t)
    factor = ops.where(clamped, 0.0, elasticity * (a * p / y))
    top = ops.is_index(ops.argmax(z), z.shape[-1], z)
    centred = dz - ops.sum(p * dz)
    dz_top = ops.sum(ops.where(top, dz, 0.0))
    top_term = ops.sum(ops.where(top, 0.0, p * (dz_top - dz)))
    return factor * ops.where(top, top_term, centred)


def discrete_faults(ops: ArrayOps, z):
    """Per-row fault codes of discrete ERA: NON_FINITE for a row holding NaN or an infinity."""
    return _flag(ops, ops.any(~ops.isfinite(z)), NON_FINITE)


# ---------------------------------------------------------------------------------------
# LLM ERA (math 3)


def _row_statistics(ops: ArrayOps, x, scale):
    """(u, m, d, S) for u = s*x: the row maximum m (0 for a fully masked row, so that no NaN
    arises there), d = u - m and S = sum exp(d). -inf entries (masks) give exp(d) = 0."""
    u = x if scale is None else x * scale[..., None]
    m = ops.max(u)
    m = ops.where(ops.isfinite(m), m, 0.0)
    d = u - m
    return u, m, d, ops.sum(ops.exp(d))


def token_entropy(ops: ArrayOps, x):
    """Entropy of softmax(x) per row with -inf entries masked: ``log S - T/S`` with
    ``S = sum exp(v - m)`` and ``T = sum (v - m) exp(v - m)`` (math 3, "One pass per row")."""
    _, _, d, total = _row_statistics(ops, x, None)
    e = ops.exp(d)
    weighted = ops.sum(ops.where(e > 0, d, 0.0) * e)  # masked: d = -inf, e = 0
    return (ops.log(total) - weighted / total)[..., 0]


def logprob(ops: ArrayOps, x, labels, scale=None):
    """logp'_t = ``(s x[a] - m) - log S`` per row, with the scaled logits formed in x's dtype
    (math 3). `labels` must be in range (see llm_faults)."""
    u, m, _, total = _row_statistics(ops, x, scale)
    return (ops.take(u, labels) - m[..., 0]) - ops.log(total[..., 0])


def logprob_forward(ops: ArrayOps, x, labels, scale=None):
    """(logp'_t, entropy of softmax(s_t x_t)) per row from one set of row statistics."""
    u, m, d, total = _row_statistics(ops, x, scale)
    e = ops.exp(d)
    weighted = ops.sum(ops.where(e > 0, d, 0.0) * e)  # masked: d = -inf, e = 0
    logprob_t = (ops.take(u, labels) - m[..., 0]) - ops.log(total[..., 0])
    return logprob_t, (ops.log(total) - weighted / total)[..., 0]


def logprob_backward(ops: ArrayOps, x, labels, scale, grad_logprob):
    """dL/dx of ``sum_t g_t logp'_t``: ``g_t s_t (onehot(a_t) - softmax(s_t x_t))``; masked
    logits get 0 (math 3). Temporaries are dropped as soon as they are used: this runs on
    vocabulary-sized rows."""
    _, _, d, total = _row_statistics(ops, x, scale)
    p = ops.exp(d)
    del d
    p = p / total
    gs = (grad_logprob if scale is None else grad_logprob * scale)[..., None]
    onehot = ops.is_index(labels, x.shape[-1], x)
    return ops.where(onehot, gs * (1 - p), -gs * p)


def logit_faults(ops: ArrayOps, x):
    """Per-row NON_FINITE for NaN or +inf logits, or a row whose logits are all -inf."""
    bad = ops.any(ops.isnan(x) | (x == math.inf)) | ops.all(x == -math.inf)
    return _flag(ops, bad, NON_FINITE)


def safe_labels(ops: ArrayOps, labels, vocab: int):
    """Labels clipped into 0..vocab-1, so that a gather never reads out of bounds (a bad
    label is flagged by llm_faults, and its row's outputs replaced)."""
    return ops.clip(labels, 0, vocab - 1)


def llm_faults(ops: ArrayOps, x, labels, scale=None, grad_logprob=None):
    """Per-row fault codes of the log-prob passes, the first of libera's checks that fails:
    BAD_INDEX for a label out of range; NON_FINITE for a non-finite scale; BAD_PARAMETER for
    a scale <= 0; NON_FINITE for NaN or +inf logits or a fully masked row; BAD_INDEX for a
    label on a -inf logit; and with `grad_logprob`, NON_FINITE for a non-finite one."""
    vocab = x.shape[-1]
    checks = [(~((labels >= 0) & (labels < vocab)), BAD_INDEX)]
    if scale is not None:
        checks += [(~ops.isfinite(scale), NON_FINITE), (~(scale > 0) & ops.isfinite(scale), BAD_PARAMETER)]
    if grad_logprob is not None:
        checks.append((~ops.isfinite(grad_logprob), NON_FINITE))
    checks.append((logit_faults(ops, x) != 0, NON_FINITE))
    checks.append((ops.take(x, safe_labels(ops, labels, vocab)) == -math.inf, BAD_INDEX))
    faults = None
    for bad, status in checks:
        code = _flag(ops, bad, status)
        faults = code if faults is None else ops.where(faults != 0, faults, code)
    return faults


def response_entropy(ops: ArrayOps, token_h, response_id, num_responses: int, top_fraction: float):
    """Mean of the max(1, floor(top_fraction*L_b)) largest token entropies of each response
    b < num_responses, ``[R]`` (NaN for a response without tokens); 1-D inputs, ids in
    -1..R-1 (-1: no response), sums in the dtype of `token_h` (math 3).

    Sort-based and free of data-dependent shapes: tokens of id -1 go to an extra segment R
    that is dropped; a stable sort by entropy (descending) then by id ranks each token within
    its response."""
    ids = ops.where(response_id < 0, num_responses, response_id)
    order = ops.argsort(token_h, descending=True)
    order = order[ops.argsort(ids[order])]
    h, ids = token_h[order], ids[order]
    ones = ops.astype(ops.full_like(h, 1.0), h.dtype)
    counts = ops.segment_sum(ones, ids, num_responses + 1)
    starts = ops.cumsum(counts) - counts
    rank = ops.astype(ops.iota(h.shape[0], h), h.dtype) - starts[ids]
    top = ops.clamp_min(ops.floor(top_fraction * counts), 1.0)
    kept = ops.where(rank < top[ids], h, 0.0)
    sums = ops.segment_sum(kept, ids, num_responses + 1)
    out = (sums / top)[:num_responses]
    return ops.where(counts[:num_responses] > 0, out, math.nan)


def response_faults(ops: ArrayOps, token_h, response_id, num_responses: int):
    """Per-token fault codes for response_entropy: BAD_INDEX for an id outside -1..R-1,
    NON_FINITE for a non-finite entropy of a token that belongs to a response."""
    bad_id = (response_id < -1) | (response_id >= num_responses)
    code = _flag(ops, bad_id, BAD_INDEX)
    member = response_id >= 0
    return ops.where(code != 0, code, _flag(ops, member & ~ops.isfinite(token_h), NON_FINITE))


def scales(ops: ArrayOps, response_h, response_id, advantages, omega_low: float, omega_high: float, k: float,
           scale_advantages: bool):
    """(s_t, A'_t) per token (math 3): s = k below omega_low, 1/k above omega_high (A > 0
    only), else 1; A' = A/s (or A). The thresholds are compared in the dtype of `response_h`
    (float32: the rule of libera), the division made in float64 and rounded to the dtype of
    `advantages`. `response_h` is ``[R]``, the others per token."""
    member = response_id >= 0
    if response_h.shape[0] == 0:
        h = ops.astype(ops.full_like(advantages, 0.0), response_h.dtype)
    else:
        h = response_h[ops.clip(response_id, 0, response_h.shape[0] - 1)]
    positive = member & (advantages > 0)
    wide = ops.astype(advantages, ops.float64)
    one = ops.full_like(wide, 1.0)
    s = ops.where(positive & (h > omega_high), 1.0 / k, one)
    s = ops.where(positive & (h < omega_low), float(k), s)
    new = ops.astype(wide / s, advantages.dtype) if scale_advantages else advantages
    return ops.astype(s, advantages.dtype), new


def scale_faults(ops: ArrayOps, response_h, response_id, advantages, new_advantages):
    """Per-token fault codes of scales: BAD_INDEX for an id outside -1..R-1, NON_FINITE for a
    non-finite advantage or response entropy a token reads, BAD_PARAMETER for an A/s that
    overflows the advantages' dtype."""
    responses = response_h.shape[0]
    bad_id = (response_id < -1) | (response_id >= responses)
    member = (response_id >= 0) & ~bad_id
    if responses == 0:
        h_bad = member
    else:
        h_bad = member & ~ops.isfinite(response_h[ops.clip(response_id, 0, responses - 1)])
    code = _flag(ops, bad_id, BAD_INDEX)
    code = ops.where(code != 0, code, _flag(ops, ~ops.isfinite(advantages) | h_bad, NON_FINITE))
    return ops.where(code != 0, code, _flag(ops, ~ops.isfinite(new_advantages), BAD_PARAMETER))


# ---------------------------------------------------------------------------------------
# Entropies (math 1)


def softmax_entropy(ops: ArrayOps, x):
    """Entropy of softmax(x) per row (finite rows)."""
    return token_entropy(ops, x)


def gaussian_entropy(ops: ArrayOps, log_std):
    """``sum(log_std) + D*0.5*log(2*pi*e)`` per row."""
    return ops.sum(log_std, keepdims=False) + log_std.shape[-1] * GAUSSIAN_ENTROPY_PER_DIM


# ---------------------------------------------------------------------------------------
# Top-k log-probabilities (docs/math.md, "Top-k log-probabilities"; spec 6.1)

TOPK_OUTSIDE_LOGPROB = -1.0e4


def _kth_largest(ops: ArrayOps, x, k: int):
    """The k-th largest value of each row, ``[..., 1]`` (1 <= k < x.shape[-1]); NaN sorts
    where its library puts it (a row with NaN is refused by llm_faults anyway)."""
    if ops.is_torch:
        return ops.xp.topk(x, k, dim=-1).values[..., k - 1:k]
    vocab = x.shape[-1]
    return ops.xp.sort(x, axis=-1)[..., vocab - k:vocab - k + 1]


def topk_selection(ops: ArrayOps, x, k: int):
    """The top-k mask of each row of x, as libera selects: the k largest finite entries, and
    at a tie at the k-th value the lower indices first (the values above the k-th, then the
    first ``k - count above`` of the values equal to it, by a running count). Masked (-inf)
    entries are never selected: a row with fewer than k finite entries selects those. The
    order of s*x is the order of x (s > 0), so x is compared unscaled, exactly."""
    kth = _kth_largest(ops, x, k)
    above = x > kth
    tied = (x == kth) & (x > -math.inf)
    room = k - ops.sum(ops.astype(above, ops.xp.int32))
    rank = ops.xp.cumsum(ops.astype(tied, ops.xp.int32), -1) if ops.is_torch else ops.xp.cumsum(
        ops.astype(tied, ops.xp.int32), axis=-1)
    return above | (tied & (rank <= room))


def _topk_statistics(ops: ArrayOps, x, labels, scale, k: int):
    """(selected, u, m, S_K, label selected) for u = s*x: m the row maximum (the largest
    selected value), S_K = sum over the selection of exp(u - m)."""
    selected = topk_selection(ops, x, k)
    u = x if scale is None else x * scale[..., None]
    m = ops.max(u)
    m = ops.where(ops.isfinite(m), m, 0.0)
    total = ops.sum(ops.where(selected, ops.exp(u - m), 0.0))
    inside = ops.take(ops.astype(selected, ops.xp.int32), labels) != 0
    return selected, u, m, total, inside


def topk_logprob_forward(ops: ArrayOps, x, labels, scale, k: int):
    """(logp'_t, full-vocabulary entropy of softmax(s_t x_t)): ``(s x[a] - m) - log S_K`` when
    a_t is among the k largest logits, else -1e4. k >= V: logprob_forward."""
    if k >= x.shape[-1]:
        return logprob_forward(ops, x, labels, scale)
    _, entropy = logprob_forward(ops, x, labels, scale)
    _, u, m, total, inside = _topk_statistics(ops, x, labels, scale, k)
    value = (ops.take(u, labels) - m[..., 0]) - ops.log(total[..., 0])
    return ops.where(inside, value, TOPK_OUTSIDE_LOGPROB), entropy


def topk_logprob_backward(ops: ArrayOps, x, labels, scale, grad_logprob, k: int):
    """dL/dx of ``sum_t g_t logp'_t`` for the top-k log-probability: ``g_t s_t (onehot(a_t) -
    softmax over the top k)`` on the top k entries, 0 elsewhere, and 0 for the whole row
    when a_t is outside. k >= V: logprob_backward."""
    if k >= x.shape[-1]:
        return logprob_backward(ops, x, labels, scale, grad_logprob)
    selected, u, m, total, inside = _topk_statistics(ops, x, labels, scale, k)
    p = ops.where(selected, ops.exp(u - m) / total, 0.0)
    gs = (grad_logprob if scale is None else grad_logprob * scale)[..., None]
    gs = ops.where(inside[..., None], gs, 0.0)
    onehot = ops.is_index(labels, x.shape[-1], x)
    return ops.where(onehot, gs * (1 - p), -gs * p)


# The truncated-normal policy (math 6.2): element-wise, any shape. The caller casts to
# float64 first. libera evaluates the far tails with offsets from the nearer bound (exact
# cancellation of exp(-alpha^2/2)); this device path uses the library's log_ndtr / ndtri and
# keeps to the same reflection (the location at or below the interval's midpoint), without
# libera's exact cancellation in the tails: its error grows like 1e-16 * alpha^2. An element
# outside the domain gives NaN.


def _normal_special(ops: ArrayOps):
    """(ndtr, log_ndtr, ndtri) of the array library."""
    if ops.is_torch:
        return ops.xp.special.ndtr, ops.xp.special.log_ndtr, ops.xp.special.ndtri
    if ops.name == "numpy":
        from scipy import special
    else:
        from jax.scipy import special
    return special.ndtr, special.log_ndtr, special.ndtri


def _log1mexp(ops: ArrayOps, x):
    """log(1 - e^x) for x <= 0."""
    return ops.where(x > -0.6931471805599453, ops.log(-ops.expm1(ops.clamp_max(x, -1e-300))),
                     ops.log1p(-ops.exp(ops.clamp_max(x, -0.6931471805599453))))


def _logaddexp(ops: ArrayOps, a, b):
    high = ops.maximum(a, b)
    return high + ops.log1p(ops.exp(ops.minimum(a, b) - high))


def _truncated_frame(ops: ArrayOps, loc, log_std, lo: float, hi: float):
    """Reflection flag, the reflected location and bounds, scale, alpha, beta, log Q(alpha),
    log Q(beta), log Z."""
    _, log_ndtr, _ = _normal_special(ops)
    mirrored = loc > 0.5 * lo + 0.5 * hi
    m = ops.where(mirrored, -loc, loc)
    lo_r = ops.where(mirrored, ops.full_like(loc, -hi), ops.full_like(loc, lo))
    hi_r = ops.where(mirrored, ops.full_like(loc, -lo), ops.full_like(loc, hi))
    sg = ops.exp(log_std)
    alpha, beta = (lo_r - m) / sg, (hi_r - m) / sg
    log_qa, log_qb = log_ndtr(-alpha), log_ndtr(-beta)
    log_z = log_qa + _log1mexp(ops, log_qb - log_qa)
    return mirrored, m, lo_r, hi_r, sg, alpha, beta, log_qa, log_qb, log_z


def truncated_normal_sample(ops: ArrayOps, loc, log_std, u, lo: float, hi: float):
    """x = loc + sg * Phi^-1(Phi(alpha) + u Z), inside [lo, hi] (math 6.2)."""
    _, log_ndtr, ndtri = _normal_special(ops)
    mirrored, m, lo_r, hi_r, sg, alpha, beta, log_qa, log_qb, log_z = _truncated_frame(ops, loc, log_std, lo, hi)
    u_r = ops.where(mirrored, 1 - u, u)
    v_r = ops.where(mirrored, u, 1 - u)
    lower = _logaddexp(ops, log_ndtr(alpha), ops.log(u_r) + log_z)  # log Phi(xi)
    upper = _logaddexp(ops, log_qb, ops.log(v_r) + log_z)  # log Q(xi)
    xi = ops.where(lower <= upper, ndtri(ops.exp(lower)), -ndtri(ops.exp(upper)))
    x = ops.minimum(ops.maximum(m + sg * xi, lo_r), hi_r)
    return ops.where(mirrored, -x, x)


def truncated_normal_log_prob(ops: ArrayOps, loc, log_std, x, lo: float, hi: float):
    """log p(x) = -xi^2/2 - log(sqrt(2 pi) sg Z); -inf outside [lo, hi]."""
    mirrored, m, lo_r, hi_r, sg, alpha, beta, log_qa, log_qb, log_z = _truncated_frame(ops, loc, log_std, lo, hi)
    xr = ops.where(mirrored, -x, x)
    xi = (xr - m) / sg
    value = -0.5 * xi * xi - 0.5 * math.log(2 * math.pi) - log_std - log_z
    inside = (x >= lo) & (x <= hi)
    return ops.where(inside, value, ops.full_like(value, -math.inf))


def truncated_normal_log_prob_backward(ops: ArrayOps, loc, log_std, x, g, lo: float, hi: float):
    """(g dlogp/dx, g dlogp/dloc, g dlogp/dlog_std), 0 outside [lo, hi]."""
    mirrored, m, lo_r, hi_r, sg, alpha, beta, log_qa, log_qb, log_z = _truncated_frame(ops, loc, log_std, lo, hi)
    xi = (ops.where(mirrored, -x, x) - m) / sg
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    ratio_a = ops.exp(-0.5 * alpha * alpha - half_log_2pi - log_z)  # phi(alpha)/Z
    ratio_b = ops.exp(-0.5 * beta * beta - half_log_2pi - log_z)
    sign = ops.where(mirrored, -ops.ones_like(x), ops.ones_like(x))
    inside = (x >= lo) & (x <= hi)
    zero = ops.zeros_like(x)
    dx = ops.where(inside, g * sign * -xi / sg, zero)
    dm = ops.where(inside, g * sign * (xi - ratio_a + ratio_b) / sg, zero)
    dl = ops.where(inside, g * (xi * xi - 1 - (alpha * ratio_a - beta * ratio_b)), zero)
    return dx, dm, dl


def truncated_normal_sample_backward(ops: ArrayOps, loc, log_std, x, g, lo: float, hi: float):
    """(g dx/dloc, g dx/dlog_std) at the sample x (implicit differentiation of F(x) = u)."""
    _, log_ndtr, _ = _normal_special(ops)
    mirrored, m, lo_r, hi_r, sg, alpha, beta, log_qa, log_qb, log_z = _truncated_frame(ops, loc, log_std, lo, hi)
    xi = (ops.where(mirrored, -x, x) - m) / sg
    log_qx = log_ndtr(-xi)
    log_below = log_qa + _log1mexp(ops, log_qx - log_qa) - log_z  # log F
    log_above = log_qx + _log1mexp(ops, log_qb - log_qx) - log_z  # log(1 - F)
    lower = ops.exp(0.5 * (xi - alpha) * (xi + alpha) + log_above)  # phi(alpha)(1-F)/phi(xi)
    upper = ops.exp(0.5 * (xi - beta) * (xi + beta) + log_below)  # phi(beta)F/phi(xi)
    dm = 1 - lower - upper
    dsg = xi - alpha * lower - beta * upper
    sign = ops.where(mirrored, -ops.ones_like(x), ops.ones_like(x))
    return g * dm, g * sign * dsg * sg
