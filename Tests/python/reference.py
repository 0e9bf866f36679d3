"""Plain float64 numpy references of docs/math.md, written independently of libera.

They favour the obvious over the fast: bisection instead of Halley's method, a dense
trapezoid rule instead of quadrature, loops over responses. The tests compare libera (and
era.torch.native) against them, never against libera itself.
"""

import functools
import math

import numpy as np

GAUSS_C = 0.5 * math.log(2 * math.pi * math.e)
TINY = np.finfo(np.float64).tiny


def softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_entropy(z):
    """Entropy of softmax(z) along the last axis; -inf entries are masked."""
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    d = z - m
    e = np.exp(d)
    s = e.sum(axis=-1)
    p = e / s[..., None]
    with np.errstate(invalid="ignore"):
        logp = np.where(np.isinf(d), 0.0, d - np.log(s)[..., None])
    return -(p * logp).sum(axis=-1)


def gaussian_entropy(log_std):
    log_std = np.asarray(log_std, np.float64)
    return log_std.sum(axis=-1) + log_std.shape[-1] * GAUSS_C


def _log_one_minus_tanh_sq(x):
    ax = np.abs(x)
    return 2 * (math.log(2) - ax - np.log1p(np.exp(-2 * ax)))


def tanh_gaussian_entropy(mean, log_std, nodes=200001, width=12.0):
    """Per row: sum_i log_std_i + c + E_e log(1 - tanh^2(mean_i + std_i e)), the expectation
    by the trapezoid rule on e in [-width, width]."""
    mean = np.asarray(mean, np.float64)
    log_std = np.asarray(log_std, np.float64)
    e = np.linspace(-width, width, nodes)
    w = np.exp(-0.5 * e * e) / math.sqrt(2 * math.pi)
    w[0] *= 0.5
    w[-1] *= 0.5
    w *= e[1] - e[0]
    out = np.empty(mean.shape)
    for index in np.ndindex(mean.shape):
        x = mean[index] + math.exp(log_std[index]) * e
        out[index] = np.dot(w, _log_one_minus_tanh_sq(x))
    return (log_std + GAUSS_C + out).sum(axis=-1)


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _normal_mass(alpha, beta):
    """Phi(beta) - Phi(alpha), from the tail on the side where the interval lies."""
    r = math.sqrt(2)
    if alpha >= 0:
        return 0.5 * (math.erfc(alpha / r) - math.erfc(beta / r))
    if beta <= 0:
        return 0.5 * (math.erfc(-beta / r) - math.erfc(-alpha / r))
    return 0.5 * (math.erf(beta / r) - math.erf(alpha / r))


def truncated_normal_entropy(loc, log_std, lo, hi):
    loc = np.asarray(loc, np.float64)
    log_std = np.asarray(log_std, np.float64)
    out = np.empty(loc.shape)
    for index in np.ndindex(loc.shape):
        sd = math.exp(log_std[index])
        alpha, beta = (lo - loc[index]) / sd, (hi - loc[index]) / sd
        z = _normal_mass(alpha, beta)
        out[index] = math.log(math.sqrt(2 * math.pi * math.e) * sd * z) + (alpha * _phi(alpha) - beta * _phi(beta)) / (
            2 * z
        )
    return out.sum(axis=-1)


# ---------------------------------------------------------------------------------------
# Continuous ERA (math 1)


def continuous_k(dim, target, residual=0.0, log_std_max=0.0):
    return target + residual - dim * GAUSS_C - dim * log_std_max


def continuous_forward(s, target, residual=0.0, log_std_min=-8.0, log_std_max=0.0):
    s = np.asarray(s, np.float64)
    k = continuous_k(s.shape[-1], target, residual, log_std_max)
    y = log_std_max + k * softmax(s)
    return np.maximum(y, log_std_min)


def continuous_backward(s, g, target, residual=0.0, log_std_min=-8.0, log_std_max=0.0):
    s = np.asarray(s, np.float64)
    k = continuous_k(s.shape[-1], target, residual, log_std_max)
    w = softmax(s)
    y = log_std_max + k * w
    gt = np.where(y > log_std_min, np.asarray(g, np.float64), 0.0)
    weighted = (gt * w).sum(axis=-1, keepdims=True)
    return k * w * (gt - weighted), weighted[..., 0]


# ---------------------------------------------------------------------------------------
# Discrete ERA (math 2)


def log_h_inverse(y):
    """t <= -1 with -t*exp(t) = y, by bisection on the increasing t + log(-t) = log(y)."""
    y = np.asarray(y, np.float64)
    target = np.log(y)
    lo = np.full(y.shape, -2000.0)
    hi = np.full(y.shape, -1.0)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        below = mid + np.log(-mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def reference_log_h_inverse(y):
    u = -1 - np.log(y)
    return -1 - np.sqrt(2 * u) - 0.75 * u


def one_hot_entropy(top, other, others):
    total = top + others * other
    q_top = top / total
    h = -q_top * math.log(q_top)
    if other > 0:
        q = other / total
        h -= others * q * math.log(q)
    return h


@functools.lru_cache(maxsize=None)
def tight_constant(classes, target, tau=4.0):
    """C whose one-hot infimum is `target`, by bisection on log b."""
    up = math.log(tau) / tau

    def entropy(log_b):
        other = math.exp(float(log_h_inverse(math.exp(log_b))))
        return one_hot_entropy(1 / tau, other, classes - 1)

    lo, hi = math.log(TINY), math.log(up)
    for _ in range(300):
        mid = 0.5 * (lo + hi)
        if entropy(mid) >= target:
            hi = mid
        else:
            lo = mid
    return up + (classes - 1) * math.exp(hi)


def discrete_constants(classes, target, tau=4.0, mode="exact"):
    up = math.log(tau) / tau
    c = tight_constant(classes, target, tau) if mode == "tight" else math.exp(target - 1)
    a = max(0.0, (classes * up - c) / (classes - 1))
    b = max(0.0, (c - up) / (classes - 1))
    return up, c, a, b


def discrete_forward(z, target, tau=4.0, mode="exact"):
    z = np.asarray(z, np.float64)
    _, _, a, b = discrete_constants(z.shape[-1], target, tau, mode)
    y = np.maximum(a * softmax(z) + b, TINY)
    return reference_log_h_inverse(y) if mode == "reference" else log_h_inverse(y)


def discrete_backward(z, g, target, tau=4.0, mode="exact"):
    """VJP of math 2: r_i = g_i dt/dy(y_i) a (0 where y is clamped), and
    dL/dz_j = p_j (r_j - sum_i r_i p_i) = p_j sum_{i != j} p_i (r_j - r_i), the second form
    summed plainly in long double (no cancellation as p_j nears 1, no overflow of r_i)."""
    z = np.asarray(z, np.float64)
    g = np.asarray(g, np.float64)
    _, _, a, b = discrete_constants(z.shape[-1], target, tau, mode)
    y = a * softmax(z) + b
    clamped = y <= TINY
    y = np.maximum(y, TINY).astype(np.longdouble)
    if mode == "reference":
        dt_dy = (1 / np.sqrt(2 * (-1 - np.log(y))) + 0.75) / y
    else:
        t = log_h_inverse(y.astype(np.float64)).astype(np.longdouble)
        dt_dy = t / (y * (1 + t))
    r = np.where(clamped, 0, g.astype(np.longdouble) * dt_dy * a)
    e = np.exp(z.astype(np.longdouble) - z.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    pairs = p[..., None, :] * (r[..., :, None] - r[..., None, :])  # [.., j, i] = p_i (r_j - r_i)
    return (p * pairs.sum(axis=-1)).astype(np.float64)


def discrete_infimum(classes, target, tau=4.0, mode="exact"):
    _, _, _, b = discrete_constants(classes, target, tau, mode)
    inverse = reference_log_h_inverse if mode == "reference" else log_h_inverse
    top = math.exp(float(inverse(math.log(tau) / tau)))
    other = math.exp(float(inverse(b))) if b > 0 else 0.0
    return one_hot_entropy(top, other, classes - 1)


# ---------------------------------------------------------------------------------------
# LLM ERA (math 3)


def response_entropy(token_entropy, response_id, responses, top_fraction=0.2):
    out = np.full(responses, np.nan)
    h = np.asarray(token_entropy, np.float64).reshape(-1)
    ids = np.asarray(response_id).reshape(-1)
    for b in range(responses):
        mine = sorted(h[ids == b], reverse=True)
        if mine:
            n = max(1, math.floor(top_fraction * len(mine)))
            out[b] = sum(mine[:n]) / n
    return out


def scales(response_entropy, response_id, advantages, omega_low=0.45, omega_high=3.0, k=2.0, scale_advantages=True):
    """The rule of math 3, thresholds compared in float32 as the library documents."""
    ids = np.asarray(response_id).reshape(-1)
    adv = np.asarray(advantages, np.float32).reshape(-1)
    s = np.ones(ids.size)
    for t, b in enumerate(ids):
        if b < 0 or not adv[t] > 0:
            continue
        h = np.float32(response_entropy[b])
        if h < np.float32(omega_low):
            s[t] = k
        elif h > np.float32(omega_high):
            s[t] = 1 / k
    new_adv = adv.astype(np.float64) / s if scale_advantages else adv.astype(np.float64)
    return s, new_adv


def logprob(z, labels, scale=None):
    """(s*z[a] - logsumexp(s*z), entropy of softmax(s*z)) per token, -inf masked."""
    z = np.asarray(z, np.float64)
    s = np.ones(z.shape[:-1]) if scale is None else np.asarray(scale, np.float64)
    x = z * s[..., None]
    m = x.max(axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(x - m).sum(axis=-1))
    picked = np.take_along_axis(x, np.asarray(labels)[..., None], axis=-1)[..., 0]
    return picked - lse, softmax_entropy(x)


def logprob_grad(z, labels, scale, grad):
    z = np.asarray(z, np.float64)
    s = np.ones(z.shape[:-1]) if scale is None else np.asarray(scale, np.float64)
    p = softmax(z * s[..., None])
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, np.asarray(labels)[..., None], 1.0, axis=-1)
    return np.asarray(grad, np.float64)[..., None] * s[..., None] * (onehot - p)


def central_difference(f, x, eps=1e-6):
    """d(sum of f(x) * weights)/dx for random fixed weights, returned with the weights."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(1234)
    weights = rng.normal(size=np.shape(f(x)))
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        grad[index] = ((f(plus) * weights).sum() - (f(minus) * weights).sum()) / (2 * eps)
    return weights, grad
