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

import numpy as np

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

    def constant(self, values, like):
        """A numpy array of constants as an array of this library, with `like`'s dtype (and device)."""
        if self.is_torch:
            return self.xp.as_tensor(values, dtype=like.dtype, device=like.device)
        return self.xp.asarray(values, dtype=like.dtype)

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

    def repeat(self, steps: int, body, state):
        """``state = body(state)`` `steps` times: a Python loop, or jax.lax.fori_loop in JAX
        (one traced body instead of `steps` unrolled copies: XLA compiles it in a fraction)."""
        if self.name == "jax.numpy":
            import jax

            return jax.lax.fori_loop(0, steps, lambda _, carry: body(carry), state)
        for _ in range(steps):
            state = body(state)
        return state


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


# The truncated-normal entropy, its gradient, and the sampled floor (math 1; docs/math.md,
# "Truncated-normal entropy gradient", "The sampled floor"). Elementwise in float64, regime by
# regime as libera evaluates them (every regime computed, one kept by `where`), so that the
# tails agree with libera: the both-tails-cut form from erf, one tail from the scaled
# complementary error function erfcx and the normal hazard, the far tail (alpha > 1e8) and
# intervals narrower than 1e-5 sd as the truncated exponential. Not covered: bounds, locations
# or scales whose differences overflow double (libera rescales those by 2^-64 first).

# Safeguarded Newton steps of the sampled floor's root find: from c = 0 the row entropy is
# linear in c (slope up to D) until the scales reach the interval, then saturates like
# e^(-2c); Newton lands left of the root and advances by about 1/2 a step there, so a target
# within 1e-12 (1 + |target|) of D log(hi - lo) needs about 30 steps, and every feasible row
# in float64 converges (c to rounding, the entropy within the tolerance above its target) in
# 48 (tested up to targets 1e-12 below the supremum).
SAMPLED_FLOOR_STEPS = 48
_SQRT1_2 = 1 / math.sqrt(2.0)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _special(ops: ArrayOps, name: str):
    if ops.is_torch:
        return getattr(ops.xp.special, name)
    if ops.name == "numpy":
        import scipy.special

        return getattr(scipy.special, name)
    import jax.scipy.special

    return getattr(jax.scipy.special, name)


def _erfcx(ops: ArrayOps, x):
    """exp(x^2) erfc(x) for x >= 0: directly below 26, by its continued fraction above
    (40 terms, as libera)."""
    near = ops.clamp_max(x, 26.0)
    # exp(x^2) with x^2 split exactly (Veltkamp/Dekker, as libera's fused multiply-add): the
    # rounding of x^2 alone costs x^2 2^-53 relative, multiplied by alpha^2 in a tail's entropy
    square = near * near
    split = 134217729.0 * near
    high = split - (split - near)
    low = near - high
    tail = ((high * high - square) + 2 * high * low) + low * low
    direct = ops.exp(square) * (1 + tail) * _special(ops, "erfc")(near)
    far = ops.clamp_min(x, 26.0)
    fraction = far
    for k in range(40, 0, -1):
        fraction = far + (k / 2) / fraction
    return ops.where(x < 26, direct, 1 / (math.sqrt(math.pi) * fraction))


def _hazard_minus_argument(ops: ArrayOps, x):
    """lambda(x) - x for x >= 10 by its continued fraction, and alpha*(lambda - alpha) - 1."""
    x = ops.clamp_min(x, 10.0)
    fraction = x
    for k in range(80, 2, -1):
        fraction = x + k / fraction
    inner = fraction  # x + 3/(x + 4/(...))
    outer = x + 2 / inner
    return 1 / outer, -(2 / inner) / outer


def _times_density(ops: ArrayOps, x):
    """x phi(x), 0 beyond |x| > 40."""
    xc = ops.clip(x, -40.0, 40.0)
    return ops.where(ops.abs(x) > 40, 0.0, xc * ops.exp(-0.5 * xc * xc) * _INV_SQRT_2PI)


def _exp_entropy_times_slope(ops: ArrayOps, x):
    """x q'(x) = x^2 e^-x / (1 - e^-x)^2 of the truncated exponential (q(x) = g(x) - 1 + log x)."""
    xs = ops.clip(x, 1e-3, 1400.0)
    d = -ops.expm1(-xs)
    mid = xs * xs * ops.exp(-xs) / (d * d)
    small = 1 - x * x / 12 + x * x * x * x / 240
    return ops.where(x < 1e-3, small, ops.where(x > 1400, 0.0, mid))


# Narrow intervals and one-tail rows whose log-density changes by at most ENERGY_RANGE over the
# interval take the moments of the energy (as libera: TruncatedNormalEntropyGradient.swift,
# energyDerivative): dH/dlog_std = 2 Var(E), dH/dm = (width/sd) Cov(u, E) for the density
# proportional to exp(-E(u)), E(u) = x u + y u^2/2 on [0, 1], x = alpha*width, y = width^2.
ENERGY_RANGE = 40.0


@lru_cache(maxsize=1)
def _energy_rule():
    """64 Gauss-Legendre nodes and weights on [0, 1]."""
    t, w = np.polynomial.legendre.leggauss(64)
    return 0.5 * (1 - t), 0.5 * w


def _energy_range(ops: ArrayOps, alpha, width):
    x, y = alpha * width, width * width
    end = x + 0.5 * y
    inner = -x / ops.clamp_min(y, 1e-300)
    inside = (inner > 0) & (inner < 1)
    lowest = ops.where(inside, -0.5 * x * ops.clip(inner, 0.0, 1.0), ops.clamp_max(end, 0.0))
    return ops.clamp_min(end, 0.0) - lowest


def _energy_derivative(ops: ArrayOps, alpha, width):
    """(sd * dH/dm, dH/dlog_std, H - log(hi - lo)) from the moments of E, for rows where
    _energy_range <= ENERGY_RANGE (other rows give finite values that the caller discards)."""
    nodes, weights = _energy_rule()
    u = ops.constant(nodes, alpha)
    wts = ops.constant(weights, alpha)
    x = ops.clip(alpha * width, -1e3, 1e3)[..., None]
    y = ops.clamp_max(width * width, 1e3)[..., None]
    e = x * u + 0.5 * y * u * u
    lowest = -ops.max(-e)  # the smallest energy at a node: the largest weight is about 1
    p = wts * ops.exp(lowest - e)
    mass = ops.sum(p, keepdims=False)
    mean_u = ops.sum(p * u, keepdims=False) / mass
    mean_e = ops.sum(p * e, keepdims=False) / mass
    de = e - mean_e[..., None]
    variance = ops.sum(p * de * de, keepdims=False) / mass
    covariance = ops.sum(p * (u - mean_u[..., None]) * de, keepdims=False) / mass
    # the entropy of u, log(integral exp(-E)) + E[E] (libera's energyEntropy)
    entropy = ops.log(mass) + ops.sum(p * (e - lowest), keepdims=False) / mass
    return width * covariance, 2 * variance, entropy


def truncated_normal_parts(ops: ArrayOps, m, log_std, lo: float, hi: float):
    """(H, dH/dm, dH/dlog_std) of N(m, exp(log_std)^2) truncated to [lo, hi], elementwise
    (float64 arrays; lo < hi finite Python floats)."""
    half_log_2pie = GAUSSIAN_ENTROPY_PER_DIM
    log_span = math.log(0.5 * hi - 0.5 * lo) + math.log(2.0)
    log_width = log_span - log_std
    sd = ops.exp(log_std)
    # Narrow: the truncated exponential of rate x = |mid - m| (hi - lo)/sd^2 on the interval.
    offset = 0.5 * (lo + hi) - m
    xn = ops.abs(offset / sd) * ops.exp(ops.clamp_max(log_width, 700.0))
    xs = ops.clamp_min(xn, 1e-3)
    dn = -ops.expm1(-xs)
    g_mid = 1 - ops.log(xs) + ops.log(dn) - ops.where(xs > 700, 0.0, xs * (1 - dn) / dn)
    h_narrow = log_span + ops.where(xn < 1e-3, -xn * xn / 24, g_mid)
    xq_n = _exp_entropy_times_slope(ops, xn)
    slope_n = ops.where(xn < 1e-3, -xn / 12 + xn * xn * xn / 240, (xq_n - 1) / xs)  # g'(x)
    dxdm = ops.where(offset > 0, -1.0, 1.0) * ops.exp(ops.clip(log_span - 2 * log_std, -745.0, 709.0))
    dm_narrow = ops.where(xn == 0, 0.0, slope_n * dxdm)
    dl_narrow = -2 * xn * slope_n
    narrow = log_width < math.log(1e-5)

    alpha0 = (lo - m) / sd
    beta0 = (hi - m) / sd
    width = (hi - lo) / sd
    mirror = (beta0 <= 0) & (alpha0 < 0)
    a = ops.where(mirror, -beta0, alpha0)
    b = ops.where(mirror, -alpha0, beta0)
    # Both tails cut (a < 0 < b).
    z2 = 0.5 * (_special(ops, "erf")(b * _SQRT1_2) + _special(ops, "erf")(-a * _SQRT1_2))
    z2 = ops.where(a < 0, z2, 1.0)
    ta, tb = _times_density(ops, a), _times_density(ops, b)
    h_two = half_log_2pie + ops.log(z2) + (ta - tb) / (2 * z2)
    ac = ops.clip(a, -40.0, 40.0)
    bc = ops.clip(b, -40.0, 40.0)
    pa2 = ops.where(ops.abs(a) > 40, 0.0, ops.exp(-0.5 * ac * ac) * _INV_SQRT_2PI / z2)
    pb2 = ops.where(ops.abs(b) > 40, 0.0, ops.exp(-0.5 * bc * bc) * _INV_SQRT_2PI / z2)
    moment = ta / z2 - tb / z2
    da_two = ops.where(pa2 == 0, 0.0, 0.5 * pa2 * (moment - 1 - ac * ac))
    db_two = ops.where(pb2 == 0, 0.0, 0.5 * pb2 * (1 + bc * bc - moment))
    # One tail (0 <= a < b <= 1e8-ish): the hazard form.
    ap = ops.clip(a, 0.0, 1e8)
    bp = ops.clamp_min(b, 0.0)
    sa = _erfcx(ops, ap * _SQRT1_2)
    sb = _erfcx(ops, bp * _SQRT1_2)
    exponent = -0.5 * width * (2 * ap + width)
    decay = ops.exp(exponent)
    ratio = sb / sa * decay
    one_minus = -ops.expm1(ops.log(sb / sa) + exponent)
    hazard = 2 / (math.sqrt(2 * math.pi) * sa)
    minus_arg, excess_far = _hazard_minus_argument(ops, ap)
    hazard_excess = ops.where(ap > 10, minus_arg, hazard - ap)
    positive = ratio > 0
    beta_term = ops.where(positive, bp * hazard * decay, 0.0)
    bracket = ap * hazard_excess + ap * ap * ratio - beta_term
    h_one = half_log_2pie + ops.log(0.5 * sa) + ops.log(one_minus) + 0.5 * bracket / one_minus
    excess = ops.where(ap > 10, excess_far, ap * (hazard - ap) - 1)
    beta_sq_ratio = ops.where(positive, (1 + bp * bp) * ratio, 0.0)
    pa1 = hazard / one_minus
    pb1 = hazard * decay / one_minus
    da_one = 0.5 * pa1 * (excess + (1 + ap * ap) * ratio - beta_term) / one_minus
    db_one = ops.where(pb1 == 0, 0.0,
                       0.5 * pb1 * (width * (2 * ap + width) - excess - beta_sq_ratio + beta_term) / one_minus)
    # Far tail (a > 1e8): the truncated exponential of rate a on [0, width].
    af = ops.clamp_min(a, 1e8)
    xf = af * width
    xfs = ops.clamp_min(xf, 1e-300)
    df = -ops.expm1(-xfs)
    h_far = 1 - ops.log(af) + ops.log(df) - ops.where(xfs > 700, 0.0, xfs * (1 - df) / df)
    xq_f = _exp_entropy_times_slope(ops, xf)
    dl_far = ops.where(xf < 1e-3, xf * xf / 6 - xf * xf * xf * xf / 120, 2 - 2 * xq_f)
    dm_far = (1 / af - xq_f / af) / sd
    dm_far = ops.where(beta0 <= 0, -dm_far, dm_far)

    two = a < 0
    far = a > 1e8
    h_std = ops.where(two, h_two, ops.where(far, h_far, h_one))
    d_a = ops.where(two, da_two, da_one)
    d_b = ops.where(two, db_two, db_one)
    # mirrored rows: h(alpha, beta) = h(-beta, -alpha), so dh/dalpha = -dh/db', dh/dbeta = -dh/da'
    dh_alpha = ops.where(mirror, -d_b, d_a)
    dh_beta = ops.where(mirror, -d_a, d_b)
    alpha_term = ops.where(dh_alpha == 0, 0.0, alpha0 * dh_alpha)
    beta_term0 = ops.where(dh_beta == 0, 0.0, beta0 * dh_beta)
    dm_std = ops.where(far, dm_far, -(dh_alpha + dh_beta) / sd)
    dl_std = ops.where(far, dl_far, 1 - alpha_term - beta_term0)

    h = ops.where(narrow, h_narrow, log_std + h_std)
    dm = ops.where(narrow, dm_narrow, dm_std)
    dl = ops.where(narrow, dl_narrow, dl_std)
    # The moments of the energy where they apply (libera's order: before the other regimes).
    safe_width = ops.where(ops.isfinite(width), width, 1.0)
    safe_alpha = ops.where(ops.isfinite(alpha0), alpha0, 0.0)
    energy = (log_width < 0.5 * math.log(2 * ENERGY_RANGE)) & ops.isfinite(width) & ops.isfinite(alpha0) & (
        _energy_range(ops, safe_alpha, safe_width) <= ENERGY_RANGE)
    dm_energy, dl_energy, h_energy = _energy_derivative(ops, safe_alpha, safe_width)
    dm = ops.where(energy, dm_energy / sd, dm)
    dl = ops.where(energy, dl_energy, dl)
    # the entropy too where the location lies outside the interval (the closed form cancels
    # there like alpha^2 / (1 - ratio)); inside, the closed form is exact and libera keeps it
    h = ops.where(energy & ((m <= lo) | (m >= hi)), log_span + h_energy, h)
    return h, dm, dl


def truncated_normal_entropy(ops: ArrayOps, loc, log_std, lo: float, hi: float):
    """Entropy of N(loc, exp(log_std)^2) truncated to [lo, hi] per row, ``[..., D] -> [...]``."""
    return ops.sum(truncated_normal_parts(ops, loc, log_std, lo, hi)[0], keepdims=False)


def truncated_normal_entropy_backward(ops: ArrayOps, loc, log_std, grad_entropy, lo: float, hi: float):
    """(grad_entropy * dH/dloc, grad_entropy * dH/dlog_std), ``[..., D]`` each."""
    _, dm, dl = truncated_normal_parts(ops, loc, log_std, lo, hi)
    g = grad_entropy[..., None]
    return g * dm, g * dl


def truncated_faults(ops: ArrayOps, *arrays):
    """Per-row NON_FINITE for a row of any of the ``[..., D]`` arrays holding NaN or an
    infinity (per-row arrays ``[...]`` are taken as one value per row)."""
    bad = None
    for x in arrays:
        row = ops.any(~ops.isfinite(x)) if x.ndim and x.shape == arrays[0].shape else ~ops.isfinite(x)
        bad = row if bad is None else bad | row
    return _flag(ops, bad, NON_FINITE)


def _row_entropy(ops: ArrayOps, m, log_std, lo: float, hi: float):
    h, _, dl = truncated_normal_parts(ops, m, log_std, lo, hi)
    return ops.sum(h, keepdims=False), ops.sum(dl, keepdims=False)


def sampled_floor_offset(ops: ArrayOps, l, m, target, lo: float, hi: float, steps: Optional[int] = None):
    """(c ``[...]``, infeasible ``[...]``): the smallest c >= 0 with
    ``sum_i H_TN(m_i, l_i + c) >= target`` per row (float64 arrays; `target` a float or an
    array broadcasting against the rows), by `steps` (SAMPLED_FLOOR_STEPS) safeguarded Newton
    steps inside the bracket [0, c_max], c_max = log(hi - lo) - min l + 64 (every scale e^64
    times the interval), where a row that does not reach the target is infeasible (c = NaN)."""
    steps = SAMPLED_FLOOR_STEPS if steps is None else steps
    log_span = math.log(0.5 * hi - 0.5 * lo) + math.log(2.0)
    tolerance = 1e-12 * (1 + ops.abs(target + 0 * l[..., 0]))
    f0, slope0 = _row_entropy(ops, m, l, lo, hi)
    f0 = f0 - target
    limit = log_span + ops.max(-l, keepdims=False) + 64  # log(hi - lo) - min_i l_i + 64
    f_limit = _row_entropy(ops, m, l + limit[..., None], lo, hi)[0] - target
    infeasible = (f0 < 0) & ~(f_limit >= 0)
    a = ops.astype(ops.full_like(f0, 0.0), f0.dtype)
    b = limit

    def newton(state):
        a, b, x, fx, slope = state
        step = -fx / slope
        # a step from below already within the tolerance is doubled to land on the feasible side
        push = (fx < 0) & (-fx <= tolerance)
        tiny = 4 * ops.abs(ops.nextafter_up(ops.abs(x)) - ops.abs(x)) + 1e-300
        step = ops.where(push, 2 * step + tiny, step)
        candidate = x + step
        inside = (candidate > a) & (candidate < b)
        candidate = ops.where(inside, candidate, 0.5 * (a + b))
        value, slope = _row_entropy(ops, m, l + candidate[..., None], lo, hi)
        value = value - target
        up = value >= 0
        b = ops.where(up, candidate, b)
        a = ops.where(up, a, candidate)
        return a, b, candidate, value, slope

    b = ops.repeat(steps, newton, (a, b, a, f0, slope0))[1]
    c = ops.where(f0 >= 0, 0.0, b)
    return ops.where(infeasible, math.nan, c), infeasible


def _round_up(ops: ArrayOps, value, dtype):
    """`value` in the narrower float `dtype`, rounded towards +inf."""
    nearest = ops.astype(value, dtype)
    return ops.where(ops.astype(nearest, value.dtype) < value, ops.nextafter_up(nearest), nearest)


def sampled_floor_forward(ops: ArrayOps, s, m, k, target, lo: float, hi: float, log_std_min: float,
                          log_std_max: float, dtype=None):
    """(log stds ``[..., D]``, offsets c ``[...]``, infeasible ``[...]``) of the sampled floor:
    l = continuous_forward(s) (stored in `dtype`, rounded up, when that is narrower than s's),
    out = l + c (rounded up likewise). `k` is K of the Gaussian part, `target` H0 + delta."""
    l = continuous_forward(ops, s, k, log_std_min, log_std_max)
    if dtype is not None:
        l = ops.astype(round_up_to(ops, l, dtype, log_std_max), s.dtype)
    c, infeasible = sampled_floor_offset(ops, l, m, target, lo, hi)
    out = ops.where(c[..., None] > 0, l + c[..., None], l)
    if dtype is not None:
        out = ops.where(c[..., None] > 0, ops.astype(_round_up(ops, out, dtype), s.dtype), l)
    return out, c, infeasible


def sampled_floor_backward(ops: ArrayOps, s, m, g, k, target, lo: float, hi: float, log_std_min: float,
                           log_std_max: float, dtype=None):
    """(dL/ds, dL/dm ``[..., D]``, dL/d(H0 + delta) ``[...]``) of sampled_floor_forward by the
    implicit function theorem: on a row with c > 0, with G = sum g, H_L, H_m the derivatives of
    H_TN at the output and S = sum H_L, ``dL/dl = g - G H_L/S``, ``dL/dm = -G H_m/S`` and
    ``dL/d(H0 + delta) = G/S`` plus the Gaussian part's residual gradient of dL/dl; rows with
    c = 0 pass g to the continuous backward unchanged."""
    out, c, _ = sampled_floor_forward(ops, s, m, k, target, lo, hi, log_std_min, log_std_max, dtype)
    _, dm, dl = truncated_normal_parts(ops, m, out, lo, hi)
    active = c > 0
    total = ops.sum(g)
    per_slope = total / ops.sum(dl)
    grad_l = ops.where(active[..., None], g - per_slope * dl, g)
    grad_m = ops.where(active[..., None], -per_slope * dm, 0.0)
    grad_s, grad_res = continuous_backward(ops, s, grad_l, k, log_std_min, log_std_max)
    return grad_s, grad_m, grad_res + ops.where(active, per_slope[..., 0], 0.0)


# ---------------------------------------------------------------------------------------
# The tanh-Gaussian entropy, its gradient, and the tanh sampled floor (math 1, "Squashing";
# docs/math.md, "Tanh-Gaussian entropy gradient", "The sampled floor, tanh"). Elementwise in
# float64 with libera's quadrature regimes (both computed, one kept by `where`): for
# std <= 0.5 the 64-node Gauss-Hermite rule; above, E|x| in closed form and 16-node
# Gauss-Legendre panels of width 1/2 on [0, 20] against the folded density n(x) + n(-x).

# The largest squashed entropy of one dimension, at mean 0 and std 0.8744 (nats); the
# static feasibility bound of the tanh sampled floor is D times it.
TANH_ENTROPY_PEAK = 0.6836355635996024
# Bisection steps for the peak of a row's squashed entropy along its offset direction (in
# log1p(t) over at most [0, 690]: t to 3e-12 (1 + t), where the entropy is flat to about
# 1e-23 (1 + t)^2), and safeguarded Newton steps for the root (a target at the peak is a
# double root: Newton halves the distance each step).
TANH_PEAK_STEPS = 48
TANH_FLOOR_STEPS = 48
_LOG2 = math.log(2.0)


@lru_cache(maxsize=1)
def _tanh_rules():
    """(Gauss-Hermite nodes, weights) for N(0, 1), 48 of each; (Gauss-Legendre nodes, weights)
    over [0, 20] in 40 panels of width 1/2, 8 nodes each. Fewer nodes than libera's rules
    (64; 16 a panel), for the floor's many evaluations: the same values to 2e-15 relative
    (measured over std from e^-10 to e^10 and means to 300)."""
    gh_x, gh_w = np.polynomial.hermite_e.hermegauss(48)
    gh_w = gh_w / math.sqrt(2 * math.pi)
    t, w = np.polynomial.legendre.leggauss(8)
    t, w = 0.5 * (t + 1), 0.5 * w
    panels = np.arange(40)[:, None]
    gl_x = ((panels + t[None, :]) * 0.5).reshape(-1)
    gl_w = np.broadcast_to(w * 0.5, (40, 8)).reshape(-1)
    return gh_x, gh_w, gl_x, gl_w


def _tanh_terms(ops: ArrayOps, m, log_std, value: bool = True):
    """(E log(1 - tanh^2 x), E tanh x, E sech^2 x) elementwise (the first two None unless
    `value`), x ~ N(m, exp(log_std)^2): Gauss-Hermite for std <= 0.5; above, E|x| in closed
    form, E sign x = erf(m / (std sqrt 2)), and the rest, which decays like exp(-2|x|),
    over the folded density on [0, 20]."""
    gh_x, gh_w, gl_x, gl_w = _tanh_rules()
    sd = ops.exp(log_std)
    narrow = sd <= 0.5
    small = ops.clamp_max(sd, 0.5)
    x = m[..., None] + small[..., None] * ops.constant(gh_x, m)
    w = ops.constant(gh_w, m)
    ax = ops.abs(x)
    e2 = ops.exp(-2 * ax)
    sech_n = ops.sum(w * 4 * e2 / ((1 + e2) * (1 + e2)), keepdims=False)
    wide = ops.clamp_min(sd, 0.5)
    u = ops.constant(gl_x, m)
    v = ops.constant(gl_w, m)
    up = (u - m[..., None]) / wide[..., None]
    down = (u + m[..., None]) / wide[..., None]
    norm = (_INV_SQRT_2PI / wide)[..., None]
    plus = norm * ops.exp(-0.5 * up * up)
    minus = norm * ops.exp(-0.5 * down * down)
    eu = ops.exp(-2 * u)
    sech_w = ops.sum(v * 4 * eu / ((1 + eu) * (1 + eu)) * (plus + minus), keepdims=False)
    e_sech = ops.where(narrow, sech_n, sech_w)
    if not value:
        return None, None, e_sech
    jac_n = ops.sum(w * 2 * (_LOG2 - ax - ops.log1p(e2)), keepdims=False)
    sign = ops.where(x < 0, -1.0, 1.0)
    tanh_n = ops.sum(w * sign * (1 - e2) / (1 + e2), keepdims=False)
    z = m / wide
    erf = _special(ops, "erf")(z * _SQRT1_2)
    mean_abs = wide * math.sqrt(2 / math.pi) * ops.exp(-0.5 * z * z) + m * erf
    corner = ops.sum(v * ops.log1p(eu) * (plus + minus), keepdims=False)
    jac_w = 2 * _LOG2 - 2 * mean_abs - 2 * corner
    tanh_w = erf - ops.sum(v * (2 * eu / (1 + eu)) * (plus - minus), keepdims=False)
    return ops.where(narrow, jac_n, jac_w), ops.where(narrow, tanh_n, tanh_w), e_sech


def tanh_gaussian_parts(ops: ArrayOps, m, log_std):
    """(H, dH/dmean, dH/dlog_std) of tanh(N(m, exp(log_std)^2)), elementwise (float64):
    ``H = log_std + 0.5 log(2 pi e) + E log(1 - tanh^2 x)``, ``dH/dmean = -2 E tanh x``,
    ``dH/dlog_std = 1 - 2 std^2 E sech^2 x`` (Stein's identity)."""
    jac, e_tanh, e_sech = _tanh_terms(ops, m, log_std)
    sd = ops.exp(log_std)
    return log_std + GAUSSIAN_ENTROPY_PER_DIM + jac, -2 * e_tanh, 1 - 2 * sd * sd * e_sech


def _tanh_row_slope(ops: ArrayOps, m, log_std):
    """sum_i dH/dlog_std_i per row (the derivative of the row entropy along a common offset)."""
    sd = ops.exp(log_std)
    return ops.sum(1 - 2 * sd * sd * _tanh_terms(ops, m, log_std, value=False)[2], keepdims=False)


def tanh_gaussian_entropy(ops: ArrayOps, mean, log_std):
    """Entropy of tanh(N(mean, exp(log_std)^2)) per row, ``[..., D] -> [...]``."""
    return ops.sum(tanh_gaussian_parts(ops, mean, log_std)[0], keepdims=False)


def tanh_gaussian_entropy_backward(ops: ArrayOps, mean, log_std, grad_entropy):
    """(grad_entropy * dH/dmean, grad_entropy * dH/dlog_std), ``[..., D]`` each."""
    _, dm, dl = tanh_gaussian_parts(ops, mean, log_std)
    g = grad_entropy[..., None]
    return g * dm, g * dl


def _tanh_floor_log_stds(ops: ArrayOps, w, k, c, log_std_min: float, log_std_max: float, dtype=None):
    """(l(c), moves): ``l(c)_i = max(log_std_max + (K + c) w_i, log_std_min)`` (stored in
    `dtype` rounded up when given, as libera stores it), and whether l(c)_i is above the clip.
    At c = 0 this is continuous_forward bit for bit."""
    y = log_std_max + (k + c[..., None]) * w
    moves = y > log_std_min
    l = ops.where(moves, y, log_std_min)
    if dtype is not None:
        l = ops.astype(round_up_to(ops, l, dtype, log_std_max), w.dtype)
    return l, moves


def _tanh_floor_row(ops: ArrayOps, m, w, l, moves, value: bool = True):
    """(f + target, f') at the log stds l: the row's squashed entropy and
    ``sum_i dH/dlog_std_i w_i`` over the entries that move (None for the first unless `value`)."""
    if value:
        h, _, dl = tanh_gaussian_parts(ops, m, l)
        total = ops.sum(h, keepdims=False)
    else:
        sd = ops.exp(l)
        dl = 1 - 2 * sd * sd * _tanh_terms(ops, m, l, value=False)[2]
        total = None
    return total, ops.sum(ops.where(moves, dl * w, 0.0), keepdims=False)


def tanh_floor_offset(ops: ArrayOps, s, m, k, target, log_std_min: float, log_std_max: float, dtype=None,
                      peak_steps: Optional[int] = None, steps: Optional[int] = None):
    """(c, infeasible) of _tanh_floor_solve."""
    return _tanh_floor_solve(ops, s, m, k, target, log_std_min, log_std_max, dtype, peak_steps, steps)[:2]


def _first_root(ops: ArrayOps, g, slope, f0, bounds, zero, peak_steps: int):
    """libera's firstRoot for every row at once: the first t > 0 with g(t) >= 0, g(0) = f0 < 0,
    g concave between the sorted piece ends `bounds` ``[..., P]`` (kinks, then the search's
    end; repeated ends are empty pieces). Per piece [a, b], with the one-sided slopes just
    inside: falling after a, no root; g(b) >= 0, the root lies in it; still rising at b, its
    peak g(b) < 0; else `peak_steps` bisection steps on the sign of g' for the peak, stopping
    at the first point with g >= 0. Returns (found, A, g(A), B): g(A) < 0 <= g(B) brackets
    the root where found."""
    false = zero > 1
    index = ops.astype(zero, ops.xp.int64)

    def piece(state):
        j, a, fa, found, lo, flo, hi = state
        b = ops.take(bounds, j)
        active = ~found & (b > a)
        inset = (b - a) * 2.0 ** -30
        sa = slope(a + inset)
        fb = g(b)
        sb = slope(b - inset)
        rising = active & (sa > 0)
        at_start = rising & (fa >= 0)
        direct = rising & ~at_start & (fb >= 0)
        peaky = rising & ~at_start & ~direct & (sb < 0)

        def bisect(inner):
            low, low_value, high, hit, hit_at = inner
            mid = 0.5 * (low + high)
            value = g(mid)
            searching = peaky & ~hit
            new_hit = searching & (value >= 0)
            up = slope(mid) > 0
            step = searching & ~new_hit
            return (ops.where(step & up, mid, low), ops.where(step & up, value, low_value),
                    ops.where(step & ~up, mid, high), hit | new_hit, ops.where(new_hit, mid, hit_at))

        low, low_value, _, hit, hit_at = ops.repeat(peak_steps, bisect, (a, fa, b, false, b))
        lo = ops.where(at_start | direct, a, ops.where(hit, low, lo))
        flo = ops.where(at_start | direct, fa, ops.where(hit, low_value, flo))
        hi = ops.where(at_start, a, ops.where(direct, b, ops.where(hit, hit_at, hi)))
        longer = b > a
        return (j + 1, ops.where(longer, b, a), ops.where(longer, fb, fa), found | at_start | direct | hit,
                lo, flo, hi)

    state = (index, zero, f0, false, zero, f0, zero)
    _, _, _, found, lo, flo, hi = ops.repeat(bounds.shape[-1], piece, state)
    return found, lo, flo, hi


def _sorted_last(ops: ArrayOps, x):
    if ops.is_torch:
        return ops.xp.sort(x, dim=-1).values
    return ops.xp.sort(x, axis=-1)


def _tanh_floor_solve(ops: ArrayOps, s, m, k, target, log_std_min: float, log_std_max: float, dtype=None,
                      peak_steps: Optional[int] = None, steps: Optional[int] = None):
    """(c ``[...]``, infeasible ``[...]``, log stds ``[..., D]``) of the tanh sampled floor per row (float64 arrays;
    `k` K of the Gaussian part, `target` H0 + delta), with
    ``f(c) = sum_i H_tanh(m_i, l(c)_i) - target`` (_tanh_floor_log_stds): c = 0 where
    f(0) >= 0; else the root of f nearest 0, libera's search: f is concave between the kinks
    ``c_i = -(log_std_max - log_std_min)/w_i - K`` where entries leave log_std_min, and the
    first root above 0 (up to c = -K, every std at log_std_max) and the first below (down to
    where every entry is clipped) are found piece by piece (_first_root), then by safeguarded
    Newton steps inside their brackets; the nearer wins (the upper on a tie). A row with
    neither is infeasible (c = NaN). The log stds are those at which the root's entropy was
    evaluated: with float32 storage the entropy is a step function of c, and the root sits on
    a step's edge, where l(c) recomputed elsewhere (an XLA fusion) could round to the other
    side."""
    peak_steps = TANH_PEAK_STEPS if peak_steps is None else peak_steps
    steps = TANH_FLOOR_STEPS if steps is None else steps
    w = softmax(ops, s)
    tolerance = 1e-12 * (1 + ops.abs(target + 0 * s[..., 0]))
    zero = ops.astype(ops.full_like(s[..., 0], 0.0), s.dtype)

    def at(c, value=True, stored=False):
        l, moves = _tanh_floor_log_stds(ops, w, k, c, log_std_min, log_std_max, dtype)
        row = _tanh_floor_row(ops, m, w, l, moves, value)
        return (*row, l) if stored else row

    f0, _, l0 = at(zero, stored=True)
    f0 = f0 - target
    span = log_std_max - log_std_min
    kinks = -(span / ops.clamp_min(w, 1e-300)) - k  # [..., D]
    top = ops.clip(-k + zero, 0.0, 1e300)  # c = -K: every std at log_std_max
    bottom = ops.clip(-ops.max(-kinks, keepdims=False), -1e300, 0.0)  # below: every entry clipped

    def search(d, end, ends):
        bounds = _sorted_last(ops, ops.where((ends > 0) & (ends < end[..., None]), ends, end[..., None]))
        bounds = ops.concatenate([bounds, end[..., None]], axis=-1) if not ops.is_torch else \
            ops.xp.cat([bounds, end[..., None]], dim=-1)
        found, a, fa, b = _first_root(ops, lambda t: at(d * t, value=True)[0] - target,
                                      lambda t: d * at(d * t, value=False)[1], f0, bounds, zero, peak_steps)

        def newton(state):
            a, b, t, gt, slope, l_b = state
            flat = slope == 0  # bisection then (rows outside their bracket are frozen anyway)
            step = ops.where(flat, math.nan, -gt / ops.where(flat, 1.0, slope))
            push = (gt < 0) & (-gt <= tolerance)
            tiny = 4 * ops.abs(ops.nextafter_up(ops.abs(t)) - ops.abs(t)) + 1e-300
            step = ops.where(push, 2 * step + tiny, step)
            candidate = t + step
            inside = (candidate > a) & (candidate < b)
            candidate = ops.where(inside, candidate, 0.5 * (a + b))
            value, slope, l = at(d * candidate, stored=True)
            value, slope = value - target, slope * d
            up = value >= 0
            l_b = ops.where(up[..., None], l, l_b)
            return ops.where(up, a, candidate), ops.where(up, candidate, b), candidate, value, slope, l_b

        start_slope = d * at(d * a, value=False)[1]
        l_end = at(d * b, stored=True)[2]
        state = ops.repeat(steps, newton, (a, b, a, fa, start_slope, l_end))
        return found, state[1], state[5]

    found_up, t_up, l_up = search(1.0, top, kinks)
    found_down, t_down, l_down = search(-1.0, -bottom, -kinks)
    use_down = found_down & (~found_up | (t_down < t_up))
    infeasible = (f0 < 0) & ~found_up & ~found_down
    c = ops.where(f0 >= 0, 0.0, ops.where(use_down, -t_down, t_up))
    l_root = ops.where(use_down[..., None], l_down, l_up)
    out = ops.where(infeasible[..., None], math.nan, ops.where((f0 >= 0)[..., None], l0, l_root))
    return ops.where(infeasible, math.nan, c), infeasible, out


def tanh_floor_forward(ops: ArrayOps, s, m, k, target, log_std_min: float, log_std_max: float, dtype=None):
    """(log stds ``[..., D]``, offsets c ``[...]``, infeasible ``[...]``) of the tanh sampled
    floor: ``l(c)_i = max(log_std_max + (K + c) softmax(s)_i, log_std_min)``, the continuous
    output where c = 0 (stored in `dtype`, rounded up, when that is narrower than s's; the
    entropy evaluated at the stored values)."""
    c, infeasible, out = _tanh_floor_solve(ops, s, m, k, target, log_std_min, log_std_max, dtype)
    return out, c, infeasible


def tanh_floor_backward(ops: ArrayOps, s, m, g, k, target, log_std_min: float, log_std_max: float, dtype=None):
    """(dL/ds, dL/dm ``[..., D]``, dL/d(H0 + delta) ``[...]``) of tanh_floor_forward by the
    implicit function theorem: on a row with c != 0, with w = softmax(s), H_L and H_m the
    derivatives of H_tanh at the output, and G', S the sums of g w and H_L w over the entries
    above log_std_min, ``dL/dm = -(G'/S) H_m``, ``dL/d(H0 + delta) = G'/S`` and dL/ds the
    continuous backward at scale K + c of ``g - (G'/S) H_L``; rows with c = 0 are the
    continuous backward of g."""
    c, _, out = _tanh_floor_solve(ops, s, m, k, target, log_std_min, log_std_max, dtype)
    w = softmax(ops, s)
    _, moves = _tanh_floor_log_stds(ops, w, k, c, log_std_min, log_std_max, dtype)
    _, dm, dl = tanh_gaussian_parts(ops, m, out)
    active = c != 0
    weighted = ops.sum(ops.where(moves, g * w, 0.0), keepdims=False)
    slope = ops.sum(ops.where(moves, dl * w, 0.0), keepdims=False)
    per_slope = (weighted / ops.where(active, slope, 1.0))[..., None]
    grad_l = ops.where(active[..., None], g - per_slope * dl, g)
    grad_m = ops.where(active[..., None], -per_slope * dm, 0.0)
    grad_s, grad_res = continuous_backward(ops, s, grad_l, k + ops.where(active, c, 0.0)[..., None], log_std_min,
                                           log_std_max)
    return grad_s, grad_m, ops.where(active, per_slope[..., 0], grad_res)
