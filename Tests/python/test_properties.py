"""Property tests (hypothesis) for every public function of era, with light coverage of
era.torch and era.jax.

What every property draws: leading batch shapes (including empty batches and a single row,
which gives 0-d results), rows of 1, 2, a few and thousands of entries, float32 and float64
(bfloat16 where a kernel takes it), huge and tiny values (+-1e30, 1e-30, subnormals), ties,
and non-contiguous layouts (transposed, strided, reversed). What it checks: the values
against the plain float64 references of reference.py within the tolerances docs/math.md
section 5 states (float64 kernels about 1e-14 relative on well-conditioned rows; float32 to
float32 rounding of a double computation), the entropy floors and std bounds ERA guarantees,
the exception class of every kind of bad input (ERAError subclasses are ValueErrors,
DTypeError is also a TypeError, BadIndexError an IndexError), that a refused call returns
nothing and leaves preallocated outputs alone, and that inputs are never modified.

A known bug is written as a strict xfail (in the "Regressions" section at the end): it turns
into a failure the day the bug is fixed, so that its marker gets removed. None is open.

Runtime: about 20 s on two cores. ERA_PROPERTY_SCALE=N multiplies every example
count (for a longer hunt; the default keeps the file quick).
"""

import json
import math
import os

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import era
import era.testing
import reference as ref
from era import _era

SCALE = max(1, int(os.environ.get("ERA_PROPERTY_SCALE", "1")))
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
BF16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = (F32, F64)
EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)
FLT_MAX = float(np.finfo(np.float32).max)
# An absolute floor for comparisons of results that may be subnormal: two of the smallest steps.
SUBNORMAL = {F32: 2 * float(np.finfo(np.float32).smallest_subnormal), F64: 2 * 5e-324}
GAUSS_C = ref.GAUSS_C
LOG_TAU_MARGIN = 1e-6  # the library requires log(tau) >= 1 + 1e-6
TAU_NEAR_E = math.exp(1 + LOG_TAU_MARGIN + 1e-12)

# Huge, tiny and subnormal values, signed zeros (float64 subnormals become 0 in float32).
SPECIALS = (1e30, -1e30, 1e-30, -1e-30, 5e-324, -5e-324, 2.2250738585072014e-308, 1.401298464324817e-45, 0.0, -0.0)
SMALL_SPECIALS = (1e-30, -1e-30, 5e-324, 1.401298464324817e-45, 0.0, -0.0)


def props(examples):
    """Hypothesis settings: `examples` (times ERA_PROPERTY_SCALE), no deadline, derandomized."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# ---------------------------------------------------------------------------------------
# Strategies


@st.composite
def shapes(draw, min_cols=1, cols=None, max_batch_dim=4):
    """A ``batch + (cols,)`` shape: batch of 0 to 3 axes (sizes 0..4, so empty batches too;
    () is a single row), rows of 1, 2, a few or thousands of entries."""
    if cols is None:
        small = [c for c in (1, 2) if c >= min_cols]
        choices = [st.integers(min_cols, 9), st.sampled_from([64, 1000, 4096])]
        cols = draw(st.one_of([st.sampled_from(small)] + choices) if small else st.one_of(choices))
    top = max_batch_dim if cols <= 64 else 2
    batch = tuple(draw(st.lists(st.integers(0, top), max_size=3)))
    return batch + (cols,)


@st.composite
def arrays(draw, shape, dtype, scale=None, specials=SPECIALS, lo=None, hi=None):
    """Normal values times a drawn scale, with ties (shared values) and special values mixed
    in at drawn rates; clipped to [lo, hi] when given; then cast to `dtype`."""
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 4.0, 40.0])) if scale is None else scale
    p_tie = draw(st.sampled_from([0.0, 0.0, 0.5, 1.0]))
    p_special = draw(st.sampled_from([0.0, 0.0, 0.1, 0.6])) if specials else 0.0
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * scale
    ties = rng.random(shape) < p_tie
    x[ties] = rng.choice([-1.0, 0.0, 1.0], size=int(ties.sum())) * scale
    if specials:
        chosen = rng.random(shape) < p_special
        x[chosen] = rng.choice(specials, size=int(chosen.sum()))
    if lo is not None:
        x = np.clip(x, lo, hi)
    return np.asarray(x).astype(dtype)


def taus():
    return st.sampled_from([TAU_NEAR_E, 3.0, 4.0, 10.0, 1e3, 1e30])


def discrete_range(classes, tau, mode):
    """The feasible targets of a mode (closed for exact/reference, open for tight)."""
    up = math.log(tau) / tau
    if mode == "tight":
        return 0.0, math.log(classes)
    return 1 + math.log(up), 1 + math.log(classes * up)


def inside(lo, hi, fraction):
    return lo + fraction * (hi - lo)


# ---------------------------------------------------------------------------------------
# Helpers


def snapshot(*arrays):
    return [(a, np.array(a, copy=True)) for a in arrays]


def assert_unchanged(snap):
    """Inputs are never written: same bytes (so also same NaNs and signed zeros)."""
    for array, copy in snap:
        assert array.shape == copy.shape and array.dtype == copy.dtype
        assert np.ascontiguousarray(array).tobytes() == np.ascontiguousarray(copy).tobytes()


def assert_same(a, b):
    """Bit-for-bit equal arrays of the same shape and dtype."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def same_report(a, b):
    """BoundReports equal field for field (NaN equal to NaN)."""
    return a.to_dict() == b.to_dict() and a.min_entropy == b.min_entropy


def assert_same_result(got, want):
    """Bit-for-bit equal results: arrays, tuples of arrays (None where not asked), reports."""
    if isinstance(want, era.BoundReport):
        assert same_report(got, want)
    elif isinstance(want, tuple):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same_result(g, w)
    elif want is None:
        assert got is None
    else:
        assert_same(got, want)


def layouts(x):
    """Non-contiguous arrays holding exactly the values of x: (name, view) pairs."""
    out = []
    if x.ndim >= 1:
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        wide[..., ::2] = x
        out.append(("strided", wide[..., ::2]))
        out.append(("reversed", np.ascontiguousarray(x[..., ::-1])[..., ::-1]))
    if x.ndim >= 2:
        out.append(("transposed", np.ascontiguousarray(np.swapaxes(x, 0, -1)).swapaxes(0, -1)))
        out.append(("fortran", np.asfortranarray(x)))
        out.append(("rows reversed", np.ascontiguousarray(x[::-1])[::-1]))
        tall = np.zeros((2 * x.shape[0],) + x.shape[1:], x.dtype)
        tall[::2] = x
        out.append(("row step", tall[::2]))
    for name, view in out:
        assert np.array_equal(view, x, equal_nan=True), name
    return out


def assert_layout_independent(fn, *arrays):
    """fn(*arrays) gives the same bits for every non-contiguous view of the first array (the
    other arrays in the view of that name where they have one), and leaves the views untouched."""
    want = fn(*arrays)
    per_array = [dict(layouts(a)) for a in arrays]
    for name in per_array[0]:
        views = [p.get(name, a) for p, a in zip(per_array, arrays)]
        snap = snapshot(*views)
        assert_same_result(fn(*views), want)
        assert_unchanged(snap)


def raises(cls, fn, *args, **kwargs):
    """fn raises exactly `cls` (nothing is returned), with the documented base classes."""
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    error = info.value
    assert type(error) is cls, f"{type(error).__name__} raised, {cls.__name__} expected: {error}"
    if isinstance(error, era.ERAError):
        assert isinstance(error, ValueError)
    if cls is era.DTypeError:
        assert isinstance(error, TypeError)
    if cls is era.BadIndexError:
        assert isinstance(error, IndexError)
    return error


def entropy_of_log_std(out):
    """Gaussian entropy of stored log stds, summed exactly (math.fsum) in float64."""
    x = np.asarray(out, np.float64)
    flat = x.reshape(-1, x.shape[-1])
    return np.array([math.fsum(row) for row in flat]).reshape(x.shape[:-1]) + x.shape[-1] * GAUSS_C


def round_up_f32(v):
    """v rounded towards +inf to float32."""
    f = np.float32(v)
    return np.nextafter(f, np.float32(np.inf)) if float(f) < v else f


# ---------------------------------------------------------------------------------------
# Coverage: every public function of the numpy level is exercised below


COVERED = {
    "softmax_entropy", "gaussian_entropy", "tanh_gaussian_entropy", "truncated_normal_entropy",
    "continuous_forward", "continuous_backward", "discrete_forward", "discrete_backward", "discrete_floor",
    "discrete_infimum", "discrete_constant", "token_entropy", "llm_response_entropy", "llm_scales",
    "llm_logprob_forward", "llm_logprob_backward", "llm_linear_logprob_forward", "llm_linear_logprob_backward",
    "linear_discrete_ce", "check_discrete", "check_continuous", "set_num_threads", "get_num_threads", "version",
    "abi_version", "truncated_normal_sample", "truncated_normal_sample_backward", "truncated_normal_log_prob",
    "truncated_normal_log_prob_backward", "truncated_normal_entropy_backward", "continuous_truncated_forward",
    "continuous_truncated_backward", "check_continuous_truncated", "tanh_gaussian_entropy_backward",
    "continuous_tanh_forward", "continuous_tanh_backward", "check_continuous_tanh",
}


def test_every_public_function_is_covered():
    public = {name for name in era.__all__ if callable(getattr(era, name)) and not isinstance(getattr(era, name), type)}
    assert public == COVERED, f"not covered: {sorted(public - COVERED)}; gone: {sorted(COVERED - public)}"


# ---------------------------------------------------------------------------------------
# Entropies


@props(30)
@given(st.data())
def test_softmax_entropy(data):
    shape = data.draw(shapes())
    dtype = data.draw(st.sampled_from(FLOATS))
    x = data.draw(arrays(shape, dtype))
    snap = snapshot(x)
    out = era.softmax_entropy(x)
    assert out.shape == shape[:-1] and out.dtype == dtype
    cols = shape[-1]
    tol = (1e-12 if dtype == F64 else 1e-6) * (1 + math.log(cols))
    want = ref.softmax_entropy(x)
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
    assert np.all(out >= -tol) and np.all(out <= math.log(cols) + tol)
    uniform = np.all(x == x[..., :1], axis=-1)  # rows of ties: the uniform distribution
    np.testing.assert_allclose(out[uniform], math.log(cols), rtol=tol, atol=tol)
    assert_unchanged(snap)
    assert_layout_independent(era.softmax_entropy, x)


@props(25)
@given(st.data())
def test_gaussian_entropy(data):
    shape = data.draw(shapes())
    dtype = data.draw(st.sampled_from(FLOATS))
    x = data.draw(arrays(shape, dtype))
    snap = snapshot(x)
    out = era.gaussian_entropy(x)
    assert out.shape == shape[:-1] and out.dtype == dtype
    want = entropy_of_log_std(x)  # exact sum
    # A double sum of D terms: error up to about D*eps*sum|x| (cancellation of +-1e30 terms).
    slack = 4 * shape[-1] * EPS64 * (np.abs(x.astype(np.float64)).sum(axis=-1) + shape[-1] * GAUSS_C)
    if dtype == F32:
        huge = np.abs(want) > FLT_MAX
        assert np.all(np.isinf(out[huge]) & (np.sign(out[huge]) == np.sign(want[huge])))
        out, want, slack = out[~huge], want[~huge], slack[~huge]
        slack = slack + np.abs(want) * EPS32
    assert np.all(np.abs(out.astype(np.float64) - want) <= slack + 1e-300)
    assert_unchanged(snap)
    assert_layout_independent(era.gaussian_entropy, x)


@props(15)
@given(st.data())
def test_tanh_gaussian_entropy(data):
    shape = data.draw(shapes(cols=data.draw(st.integers(1, 3)), max_batch_dim=2))
    dtype = data.draw(st.sampled_from(FLOATS))
    mean = data.draw(arrays(shape, dtype, scale=data.draw(st.sampled_from([0.1, 1.0, 3.0])),
                            specials=(1e30, -1e30, 1e-30, 5e-324, 0.0, -0.0)))
    log_std = data.draw(arrays(shape, dtype, scale=1.0, specials=(-30.0, -1e-30, 0.0), lo=-30.0, hi=1.4))
    snap = snapshot(mean, log_std)
    out = era.tanh_gaussian_entropy(mean, log_std)
    assert out.shape == shape[:-1] and out.dtype == dtype
    want = ref.tanh_gaussian_entropy(mean.astype(np.float64), log_std.astype(np.float64))
    cols = shape[-1]
    if dtype == F64:
        # rtol: the trapezoid weights of the reference sum to 1 within about 1e-11.
        np.testing.assert_allclose(out, want, rtol=2e-11, atol=2e-7 * cols)
    else:
        np.testing.assert_allclose(out, want, rtol=2e-6, atol=2e-6 * cols)
    # Squashing never adds entropy: below the Gaussian entropy of the same log stds.
    assert np.all(out <= entropy_of_log_std(log_std) + 1e-6 * cols)
    assert_unchanged(snap)
    assert_layout_independent(era.tanh_gaussian_entropy, mean, log_std)


@props(20)
@given(st.data())
def test_truncated_normal_entropy(data):
    # Where the float64 reference (a difference of erfc values) is accurate: within about 24
    # standard deviations of the interval, which is at least 1/150 of a standard deviation wide.
    shape = data.draw(shapes(max_batch_dim=3))
    dtype = data.draw(st.sampled_from(FLOATS))
    lo = data.draw(st.sampled_from([-1.0, 0.0]) | st.floats(-3, 2))
    hi = lo + data.draw(st.sampled_from([2.0]) | st.floats(0.05, 5))
    loc = data.draw(arrays(shape, dtype, scale=data.draw(st.sampled_from([0.1, 1.0, 2.0])), specials=SMALL_SPECIALS,
                           lo=lo - 2.0, hi=hi + 2.0))
    log_std = data.draw(arrays(shape, dtype, scale=1.5, specials=SMALL_SPECIALS, lo=-2.5, hi=2.0))
    snap = snapshot(loc, log_std)
    out = era.truncated_normal_entropy(loc, log_std, lo, hi)
    assert out.shape == shape[:-1] and out.dtype == dtype
    want = ref.truncated_normal_entropy(loc.astype(np.float64), log_std.astype(np.float64), lo, hi)
    tol = 1e-9 if dtype == F64 else 2e-6
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol * shape[-1])
    # The truncation to [lo, hi] bounds the entropy by that of the uniform: log(hi - lo) per dimension.
    assert np.all(out <= shape[-1] * math.log(hi - lo) + tol * shape[-1])
    assert_unchanged(snap)
    assert_layout_independent(lambda m, s: era.truncated_normal_entropy(m, s, lo, hi), loc, log_std)


@props(20)
@given(st.floats(3, 12), st.floats(-3, 3), st.sampled_from([-1.0, 1.0]), st.sampled_from([(-1.0, 1.0), (0.0, 3.0)]))
def test_truncated_normal_entropy_far_tails(log10_distance, log_std, side, interval):
    # Far from the interval the truncated normal is an exponential distribution with rate
    # d/sd^2 (d the distance to the nearer bound): entropy 1 + log(sd^2/d) (the library's
    # "tail-stable" probabilities; the erfc-difference reference underflows there).
    lo, hi = interval
    sd = math.exp(log_std)
    distance = 10.0**log10_distance * sd
    loc = hi + distance if side > 0 else lo - distance
    assume(distance / sd**2 * (hi - lo) > 50)  # the exponential's mass beyond the far bound is negligible
    out = float(era.truncated_normal_entropy(np.array([loc]), np.array([log_std]), lo, hi))
    alpha = distance / sd  # the expansion's next term is of order 1/alpha^2
    assert out == pytest.approx(1 + math.log(sd * sd / distance), abs=4 / alpha**2 + 1e-9)


@pytest.mark.parametrize(
    "lo, hi",
    [(1.0, 1.0), (2.0, 1.0), (math.nan, 1.0), (-1.0, math.nan), (-math.inf, 1.0), (-1.0, math.inf),
     (math.inf, math.inf)],
)
def test_truncated_normal_bad_interval(lo, hi):
    x = np.zeros((2, 3))
    snap = snapshot(x)
    raises(era.BadParameterError, era.truncated_normal_entropy, x, x, lo, hi)
    assert_unchanged(snap)


# ---------------------------------------------------------------------------------------
# The truncated-normal policy (docs/math.md, "Truncated-normal policy")


@st.composite
def truncated_normal_inputs(draw):
    """(loc, log_std, lo, hi, dtype) of one shape: intervals of several widths, locations
    inside and up to 3 widths outside, scales from 1e-3 to 20 widths."""
    shape = draw(shapes(max_batch_dim=3))
    dtype = draw(st.sampled_from(FLOATS))
    lo = draw(st.sampled_from([-1.0, 0.0]) | st.floats(-3, 2))
    hi = lo + draw(st.sampled_from([2.0]) | st.floats(0.05, 5))
    width = hi - lo
    loc = draw(arrays(shape, dtype, scale=draw(st.sampled_from([0.3, 1.0, 3.0])) * width, specials=SMALL_SPECIALS,
                      lo=lo - 3 * width, hi=hi + 3 * width))
    log_std = draw(arrays(shape, dtype, scale=2.0, specials=SMALL_SPECIALS, lo=math.log(1e-3 * width),
                          hi=math.log(20 * width)))
    return loc, log_std, lo, hi, dtype


@props(30)
@given(st.data())
def test_truncated_normal_sample_and_log_prob(data):
    """Samples lie in [lo, hi] and are the inverse CDF: increasing in u, and the log-density
    at a sample is finite; the log-density integrates the CDF (F(x2) - F(x1) from the
    uniforms agrees with a quadrature of exp(log p) over [x1, x2]); bad uniforms are refused;
    inputs are never written, and every layout gives the same bits."""
    loc, log_std, lo, hi, dtype = data.draw(truncated_normal_inputs())
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.02, 0.98, size=loc.shape).astype(dtype)
    snap = snapshot(loc, log_std, u)
    x = era.truncated_normal_sample(loc, log_std, u, lo, hi)
    assert x.shape == loc.shape and x.dtype == dtype
    assert np.all((x >= lo) & (x <= hi))
    assert_unchanged(snap)
    assert_layout_independent(lambda *a: era.truncated_normal_sample(*a, lo, hi), loc, log_std, u)
    u2 = np.minimum(u + dtype.type(0.01), dtype.type(0.99))
    x2 = era.truncated_normal_sample(loc, log_std, u2, lo, hi)
    assert np.all(x2 >= x)
    logp = era.truncated_normal_log_prob(loc, log_std, x, lo, hi)
    assert np.all(np.isfinite(logp))
    assert_layout_independent(lambda *a: era.truncated_normal_log_prob(*a, lo, hi), loc, log_std, x)
    if dtype == F64 and loc.size:
        # F(x2) - F(x1) = u2 - u1: Simpson's rule on the density between the two samples.
        flat = [a.reshape(-1) for a in (loc, log_std, x, x2, u, u2)]
        for m, s, a, b, ua, ub in list(zip(*flat))[:8]:
            if b - a < 1e-9 * (hi - lo):
                continue
            grid = np.linspace(a, b, 2001)
            dens = np.exp(era.truncated_normal_log_prob(np.full_like(grid, m), np.full_like(grid, s), grid, lo, hi))
            area = (b - a) / 6000 * (dens[0] + dens[-1] + 4 * dens[1:-1:2].sum() + 2 * dens[2:-1:2].sum())
            assert abs(area - (ub - ua)) <= 1e-6 + 1e-4 * (ub - ua)
    for bad in (0.0, 1.0, -0.5, 1.5):
        if loc.size:
            v = u.copy()
            v.reshape(-1)[0] = bad
            raises(era.BadParameterError, era.truncated_normal_sample, loc, log_std, v, lo, hi)
    raises(era.BadParameterError, era.truncated_normal_log_prob, loc, log_std, x, hi, lo)


@props(20)
@given(st.data())
def test_truncated_normal_gradients(data):
    """float64: the reparameterisation gradient and the log-density's gradients against
    central differences of the forward functions (steps relative to the scale), away from the
    interval's ends (where the difference would step outside)."""
    loc, log_std, lo, hi, _ = data.draw(truncated_normal_inputs())
    loc, log_std = loc.astype(np.float64), log_std.astype(np.float64)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    u = rng.uniform(0.05, 0.95, size=loc.shape)
    g = rng.normal(size=loc.shape)
    x = era.truncated_normal_sample(loc, log_std, u, lo, hi)
    snap = snapshot(loc, log_std, x, g)
    sample_grads = era.truncated_normal_sample_backward(loc, log_std, x, g, lo, hi)
    logp_grads = era.truncated_normal_log_prob_backward(loc, log_std, x, g, lo, hi)
    assert_unchanged(snap)
    scale = np.exp(log_std)
    h = 1e-6
    def sample_at(m, s):
        return era.truncated_normal_sample(m, s, u, lo, hi)
    def logp_at(m, s, v):
        return era.truncated_normal_log_prob(m, s, v, lo, hi)
    d_loc = (sample_at(loc + h * scale, log_std) - sample_at(loc - h * scale, log_std)) / (2 * h * scale)
    d_ls = (sample_at(loc, log_std + h) - sample_at(loc, log_std - h)) / (2 * h)
    inner = (x - lo > 1e-3 * (hi - lo)) & (hi - x > 1e-3 * (hi - lo))
    tol = lambda ref: 1e-4 * (np.abs(ref) + scale)  # noqa: E731
    assert np.all(np.abs(sample_grads.loc - g * d_loc)[inner] <= tol(g * d_loc)[inner])
    assert np.all(np.abs(sample_grads.log_std - g * d_ls)[inner] <= tol(g * d_ls)[inner])
    d_x = (logp_at(loc, log_std, np.minimum(x + h * scale, hi)) - logp_at(loc, log_std, np.maximum(x - h * scale, lo)))
    d_x = d_x / (np.minimum(x + h * scale, hi) - np.maximum(x - h * scale, lo))
    ok = inner & (x + h * scale < hi) & (x - h * scale > lo)
    assert np.all(np.abs(logp_grads.x - g * d_x)[ok] <= 1e-4 * (np.abs(g * d_x) + np.abs(g) / scale)[ok])
    d_m = (logp_at(loc + h * scale, log_std, x) - logp_at(loc - h * scale, log_std, x)) / (2 * h * scale)
    assert np.all(np.abs(logp_grads.loc - g * d_m) <= 1e-4 * (np.abs(g * d_m) + np.abs(g) / scale))


@props(25)
@given(st.data())
def test_truncated_normal_entropy_backward(data):
    """float64 gradients of the summed truncated-normal entropy against central differences
    of truncated_normal_entropy (steps relative to the scale), untouched inputs, every layout
    alike; float32 is the float64 gradient rounded."""
    loc, log_std, lo, hi, dtype = data.draw(truncated_normal_inputs())
    g = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).normal(size=loc.shape[:-1]).astype(dtype)
    snap = snapshot(loc, log_std, g)
    grads = era.truncated_normal_entropy_backward(loc, log_std, g, lo, hi)
    assert grads.loc.shape == loc.shape and grads.loc.dtype == dtype
    assert_unchanged(snap)
    assert_layout_independent(lambda a, b: era.truncated_normal_entropy_backward(a, b, g, lo, hi), loc, log_std)
    m, ls = loc.astype(np.float64), log_std.astype(np.float64)
    wide = era.truncated_normal_entropy_backward(m, ls, g.astype(np.float64), lo, hi)
    if dtype == F32:
        np.testing.assert_allclose(grads.loc, wide.loc.astype(np.float32), rtol=1e-6, atol=1e-30)
        np.testing.assert_allclose(grads.log_std, wide.log_std.astype(np.float32), rtol=1e-6, atol=1e-30)
        return
    sd, h = np.exp(ls), 1e-5
    for i in range(min(loc.shape[-1], 3)):
        step = np.zeros_like(m)
        step[..., i] = h
        d_ls = (era.truncated_normal_entropy(m, ls + step, lo, hi) - era.truncated_normal_entropy(m, ls - step, lo, hi))
        d_m = (era.truncated_normal_entropy(m + step * sd, ls, lo, hi) - era.truncated_normal_entropy(m - step * sd, ls,
                                                                                                      lo, hi))
        np.testing.assert_allclose(wide.log_std[..., i], g * d_ls / (2 * h), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(wide.loc[..., i] * sd[..., i], g * d_m / (2 * h), rtol=1e-4, atol=1e-6)


@props(25)
@given(st.data())
def test_continuous_truncated(data):
    """The sampled floor: every row's truncated-normal entropy reaches H0 + delta (the check
    reports no violation), the offset is c >= 0 and rows already above keep the continuous
    output bit for bit; the backward against central differences (float64); untouched inputs;
    infeasible targets refused with InfeasibleTargetError."""
    shape = data.draw(shapes(max_batch_dim=3, cols=data.draw(st.sampled_from([1, 2, 6, 17]))))
    dtype = data.draw(st.sampled_from(FLOATS))
    d = shape[-1]
    s = data.draw(arrays(shape, dtype, scale=data.draw(st.sampled_from([0.5, 3.0])), specials=SMALL_SPECIALS))
    loc = data.draw(arrays(shape, dtype, scale=0.7, specials=SMALL_SPECIALS, lo=-0.999, hi=0.999))
    sup = d * math.log(2.0)
    target = data.draw(st.sampled_from([-0.5 * d, 0.25 * d, sup - 0.5, sup - 1e-3]))
    snap = snapshot(s, loc)
    out, c = era.continuous_truncated_forward(s, loc, target, return_offset=True)
    assert out.shape == shape and out.dtype == dtype and np.all(c >= 0)
    assert_unchanged(snap)
    report = era.check_continuous_truncated(loc, out, target)
    assert report.violations == 0, report
    gaussian = era.continuous_forward(s, target)
    assert_same(out[c == 0], gaussian[c == 0])
    raises(era.InfeasibleTargetError, era.continuous_truncated_forward, s, loc, sup + 1e-6)
    if dtype == F64 and s.size:
        g = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).normal(size=shape)
        grads = era.continuous_truncated_backward(s, loc, g, target)
        h = 1e-6
        step = np.zeros_like(s)
        step[..., 0] = h
        f = lambda x, m: np.sum(g * era.continuous_truncated_forward(x, m, target), axis=-1)  # noqa: E731
        fd_s = (f(s + step, loc) - f(s - step, loc)) / (2 * h)
        fd_m = (f(s, loc + step) - f(s, loc - step)) / (2 * h)
        np.testing.assert_allclose(grads.std_logits[..., 0], fd_s, rtol=1e-4, atol=1e-5 * (1 + np.abs(g).max()))
        np.testing.assert_allclose(grads.loc[..., 0], fd_m, rtol=1e-4, atol=1e-5 * (1 + np.abs(g).max()))


@props(15)
@given(st.data())
def test_tanh_gaussian_entropy_backward(data):
    """float64 gradients of the summed tanh-Gaussian entropy against central differences of
    tanh_gaussian_entropy, untouched inputs, every layout alike; float32 is the float64
    gradient rounded."""
    shape = data.draw(shapes(max_batch_dim=3))
    dtype = data.draw(st.sampled_from(FLOATS))
    mean = data.draw(arrays(shape, dtype, scale=data.draw(st.sampled_from([0.3, 1.0, 3.0])), specials=SMALL_SPECIALS,
                            lo=-6.0, hi=6.0))
    log_std = data.draw(arrays(shape, dtype, scale=1.5, specials=SMALL_SPECIALS, lo=-6.0, hi=4.0))
    g = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).normal(size=shape[:-1]).astype(dtype)
    snap = snapshot(mean, log_std, g)
    grads = era.tanh_gaussian_entropy_backward(mean, log_std, g)
    assert grads.mean.shape == shape and grads.mean.dtype == dtype
    assert_unchanged(snap)
    assert_layout_independent(lambda a, b: era.tanh_gaussian_entropy_backward(a, b, g), mean, log_std)
    m, ls = mean.astype(np.float64), log_std.astype(np.float64)
    wide = era.tanh_gaussian_entropy_backward(m, ls, g.astype(np.float64))
    if dtype == F32:
        np.testing.assert_allclose(grads.mean, wide.mean.astype(np.float32), rtol=1e-6, atol=1e-30)
        np.testing.assert_allclose(grads.log_std, wide.log_std.astype(np.float32), rtol=1e-6, atol=1e-30)
        return
    h = 1e-5
    for i in range(min(shape[-1], 3)):
        step = np.zeros_like(m)
        step[..., i] = h
        d_ls = era.tanh_gaussian_entropy(m, ls + step) - era.tanh_gaussian_entropy(m, ls - step)
        d_m = era.tanh_gaussian_entropy(m + step, ls) - era.tanh_gaussian_entropy(m - step, ls)
        np.testing.assert_allclose(wide.log_std[..., i], g * d_ls / (2 * h), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(wide.mean[..., i], g * d_m / (2 * h), rtol=1e-5, atol=1e-6)


@props(25)
@given(st.data())
def test_continuous_tanh(data):
    """The tanh sampled floor: every row's squashed entropy reaches H0 + delta (the check
    reports no violation), the outputs stay within the log-std bounds, rows already above keep
    the continuous output bit for bit; the backward against central differences (float64);
    untouched inputs; a target at or above D * 0.6836 refused with InfeasibleTargetError, and a
    row whose peak lies below the target too."""
    shape = data.draw(shapes(max_batch_dim=3, cols=data.draw(st.sampled_from([1, 2, 6, 17]))))
    dtype = data.draw(st.sampled_from(FLOATS))
    d = shape[-1]
    s = data.draw(arrays(shape, dtype, scale=data.draw(st.sampled_from([0.3, 1.0])), specials=SMALL_SPECIALS))
    mean = data.draw(arrays(shape, dtype, scale=0.3, specials=SMALL_SPECIALS, lo=-0.5, hi=0.5))
    target = data.draw(st.sampled_from([-1.5 * d, -1.0 * d, -0.5 * d]))
    kw = dict(residual=0.0, log_std_min=-20.0, log_std_max=2.0)
    snap = snapshot(s, mean)
    try:
        out, c = era.continuous_tanh_forward(s, mean, target, return_offset=True, **kw)
    except era.InfeasibleTargetError:
        assume(False)
    assert out.shape == shape and out.dtype == dtype
    assert np.all(out >= -20.0) and np.all(out <= 2.0)
    assert_unchanged(snap)
    report = era.check_continuous_tanh(mean, out, target, **kw)
    assert report.violations == 0, report
    assert_same(out[c == 0], era.continuous_forward(s, target, **kw)[c == 0])
    raises(era.InfeasibleTargetError, era.continuous_tanh_forward, s, mean, 0.68364 * d, **kw)
    if s.size:
        far = mean.copy()
        far.reshape(-1, d)[0] = 6.0  # that row's peak: below -9 nats a dimension
        raises(era.InfeasibleTargetError, era.continuous_tanh_forward, s, far, target, **kw)
    if dtype == F64 and s.size:
        g = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).normal(size=shape)
        grads = era.continuous_tanh_backward(s, mean, g, target, **kw)
        h = 1e-6
        step = np.zeros_like(s)
        step[..., 0] = h
        f = lambda x, m: np.sum(g * era.continuous_tanh_forward(x, m, target, **kw), axis=-1)  # noqa: E731
        fd_s = (f(s + step, mean) - f(s - step, mean)) / (2 * h)
        fd_m = (f(s, mean + step) - f(s, mean - step)) / (2 * h)
        np.testing.assert_allclose(grads.std_logits[..., 0], fd_s, rtol=1e-4, atol=1e-5 * (1 + np.abs(g).max()))
        np.testing.assert_allclose(grads.mean[..., 0], fd_m, rtol=1e-4, atol=1e-5 * (1 + np.abs(g).max()))


# ---------------------------------------------------------------------------------------
# Continuous ERA


@st.composite
def continuous_params(draw, dim):
    """(target, residual, log_std_min, log_std_max) with the target a drawn fraction of the
    feasible range, from below the all-clipped level up to (just under) K = 0."""
    drawn = st.tuples(st.floats(-20, 0), st.floats(0.25, 8)).map(lambda p: (p[0], p[0] + p[1]))
    log_std_min, log_std_max = draw(st.sampled_from([(-8.0, 0.0), (-20.0, 2.0), (-5.0, -1.0), (-1.0, 3.0)]) | drawn)
    residual = draw(st.sampled_from([0.0, 0.5]) | st.floats(0, 3))
    fraction = draw(st.sampled_from([0.0, 0.5, 1 - 1e-9]) | st.floats(0, 1 - 1e-9))
    top = dim * GAUSS_C + dim * log_std_max
    bottom = dim * GAUSS_C + dim * log_std_min - 2.0
    target = inside(bottom, top, fraction) - residual
    return target, residual, log_std_min, log_std_max


def continuous_k(dim, target, residual, log_std_max):
    return target + residual - dim * GAUSS_C - dim * log_std_max


@props(30)
@given(st.data())
def test_continuous_forward(data):
    shape = data.draw(shapes())
    dtype = data.draw(st.sampled_from(FLOATS))
    s = data.draw(arrays(shape, dtype))
    dim = shape[-1]
    target, residual, lo, hi = data.draw(continuous_params(dim))
    k = continuous_k(dim, target, residual, hi)
    assume(k <= -1e-9 * (1 + abs(target)))
    params = dict(residual=residual, log_std_min=lo, log_std_max=hi)
    snap = snapshot(s)
    out = era.continuous_forward(s, target, **params)
    assert out.shape == shape and out.dtype == dtype
    want = ref.continuous_forward(s, target, residual, lo, hi)
    slack = 8 * EPS64 * (abs(hi) + abs(k) + abs(lo))
    got = out.astype(np.float64)
    if dtype == F64:
        np.testing.assert_allclose(got, want, rtol=0, atol=slack)
        assert np.all((got >= lo) & (got <= hi))
    else:
        # Rounded towards +inf: never below the double value, at most one float32 step above.
        assert np.all(got >= want - slack)
        assert np.all(got <= want + np.spacing(np.abs(want).astype(np.float32)).astype(np.float64) + slack)
        assert np.all((got >= lo) & (got <= float(round_up_f32(hi))))
    # The guarantee: Gaussian entropy >= H0 + residual for every row (exact sum of the stored values).
    floor = target + residual
    assert np.all(entropy_of_log_std(out) >= floor - (1e-10 + dim * slack))
    report = era.check_continuous(out, target, **params)
    assert report.holds and report.floor == report.target == floor
    assert_unchanged(snap)
    assert_layout_independent(lambda x: era.continuous_forward(x, target, **params), s)


@props(25)
@given(st.data())
def test_continuous_backward(data):
    shape = data.draw(shapes())
    dtype = data.draw(st.sampled_from(FLOATS))
    s = data.draw(arrays(shape, dtype))
    g = data.draw(arrays(shape, dtype, specials=SMALL_SPECIALS))
    dim = shape[-1]
    target, residual, lo, hi = data.draw(continuous_params(dim))
    k = continuous_k(dim, target, residual, hi)
    assume(k <= -1e-9 * (1 + abs(target)))
    params = dict(residual=residual, log_std_min=lo, log_std_max=hi)
    snap = snapshot(s, g)
    grads = era.continuous_backward(s, g, target, **params)
    assert grads.std_logits.shape == shape and grads.std_logits.dtype == dtype
    assert grads.residual.shape == shape[:-1] and grads.residual.dtype == dtype
    want_s, want_r = ref.continuous_backward(s, g, target, residual, lo, hi)
    # Rows with an entry within rounding of the clip are ambiguous (clipped or not): skipped.
    y = hi + k * ref.softmax(s)
    clear = np.all(np.abs(y - lo) > 1e-9 * (1 + abs(lo) + abs(k)), axis=-1)
    g_max = np.max(np.abs(g.astype(np.float64)), axis=-1, keepdims=True) if g.size else np.zeros(shape[:-1] + (1,))
    tol = 1e-12 if dtype == F64 else 4 * EPS32
    scale = tol * (1 + abs(k)) * g_max + SUBNORMAL[dtype]
    err = np.abs(grads.std_logits.astype(np.float64) - want_s)
    assert np.all((err <= scale)[clear])
    err_r = np.abs(grads.residual.astype(np.float64) - want_r)
    assert np.all((err_r <= tol * g_max[..., 0] + SUBNORMAL[dtype])[clear])
    assert era.continuous_backward(s, g, target, residual_grad=False, **params).residual is None
    assert_unchanged(snap)
    assert_layout_independent(lambda x, gg: era.continuous_backward(x, gg, target, **params), s, g)


# ---------------------------------------------------------------------------------------
# Discrete ERA


def discrete_pieces(z, target, tau, mode):
    """The float64 pieces of math 2 for logits z: t (the output), y, the clamped mask, a, p.
    C comes from ref.discrete_constants, except in tight mode, where the library's constant is
    used (test_discrete_scalars holds it to the reference's bisection, which is slow)."""
    z = np.asarray(z, np.float64)
    classes = z.shape[-1]
    up = math.log(tau) / tau
    if mode == "tight":
        c = era.discrete_constant(classes, target, tau=tau, mode=mode)
        a, b = max(0.0, (classes * up - c) / (classes - 1)), max(0.0, (c - up) / (classes - 1))
    else:
        _, _, a, b = ref.discrete_constants(classes, target, tau, mode)
    p = ref.softmax(z)
    y_raw = a * p + b
    clamped = y_raw <= ref.TINY
    y = np.maximum(y_raw, ref.TINY)
    t = ref.reference_log_h_inverse(y) if mode == "reference" else ref.log_h_inverse(y)
    return t, y, clamped, a, p


def dt_dy(t, y, mode):
    if mode == "reference":
        u = -1 - np.log(y)
        return (1 / np.sqrt(2 * u) + 0.75) / y
    return t / (y * (1 + t))


@st.composite
def discrete_case(draw, min_fraction=1e-9, tau_min=None):
    """(logits, target, tau, mode) with the target a drawn fraction of the mode's range."""
    shape = draw(shapes(min_cols=2))
    dtype = draw(st.sampled_from(FLOATS))
    z = draw(arrays(shape, dtype))
    mode = draw(st.sampled_from(["exact", "tight", "reference"]))
    tau = draw(taus().filter(lambda t: tau_min is None or t >= tau_min))
    fraction = draw(st.sampled_from([min_fraction, 0.5, 1 - min_fraction]) | st.floats(min_fraction, 1 - min_fraction))
    target = inside(*discrete_range(shape[-1], tau, mode), fraction)
    return z, target, tau, mode


def assert_ties_and_order(z, out):
    """Equal logits give equal outputs, and the order of the classes is kept (non-strictly)."""
    if z.size == 0:
        return
    order = np.argsort(z, axis=-1, kind="stable")
    zs = np.take_along_axis(z, order, axis=-1)
    os_ = np.take_along_axis(out, order, axis=-1)
    tied = zs[..., 1:] == zs[..., :-1]
    assert np.all(os_[..., 1:][tied] == os_[..., :-1][tied])
    assert np.all(os_[..., 1:] >= os_[..., :-1])


@props(40)
@given(discrete_case())
def test_discrete_forward(case):
    z, target, tau, mode = case
    snap = snapshot(z)
    out = era.discrete_forward(z, target, tau=tau, mode=mode)
    assert out.shape == z.shape and out.dtype == z.dtype
    assert np.all(np.isfinite(out))
    t, y, clamped, a, p = discrete_pieces(z, target, tau, mode)
    # Tolerance from the conditioning of t = log h^-1(y): |dt/dy| * y is large near y = 1/e.
    condition = np.where(clamped, 0.0, np.abs(dt_dy(t, y, mode) * y))
    tol = 1e-12 * (1 + np.abs(t)) * (1 + condition)
    if z.dtype == F32:
        tol = tol + np.abs(t) * EPS32
    assert np.all(np.abs(out.astype(np.float64) - t) <= tol)
    if mode != "reference":
        # The guarantee: entropy >= H0 (float32 rows within the documented 1e-5 nats).
        h = ref.softmax_entropy(out)
        assert np.all(h >= target - (1e-10 if z.dtype == F64 else 1e-5))
        assert era.check_discrete(out, target, tau=tau, mode=mode).holds
        cap = -math.log(tau) if z.dtype == F64 else float(np.float32(-math.log(tau)))
        assert np.all(out <= np.nextafter(cap, math.inf))  # each output logit at most -log(tau)
    assert_ties_and_order(z, out)
    assert_unchanged(snap)
    assert_layout_independent(lambda x: era.discrete_forward(x, target, tau=tau, mode=mode), z)


@props(20)
@given(st.data())
def test_discrete_forward_at_the_ends_of_the_range(data):
    # Targets exactly at the ends of the exact mode's closed range: refused as infeasible only
    # through rounding; when accepted, the floor holds.
    classes = data.draw(st.sampled_from([2, 3, 10, 1000]))
    tau = data.draw(taus())
    end = data.draw(st.sampled_from([0, 1]))
    target = discrete_range(classes, tau, "exact")[end]
    dtype = data.draw(st.sampled_from(FLOATS))
    z = data.draw(arrays((3, classes), dtype))
    try:
        out = era.discrete_forward(z, target, tau=tau)
    except era.InfeasibleTargetError:
        return
    assert np.all(np.isfinite(out))
    assert np.all(ref.softmax_entropy(out) >= target - (1e-10 if dtype == F64 else 1e-5))


@props(30)
@given(discrete_case(min_fraction=1e-3, tau_min=3.0), st.data())
def test_discrete_backward(case, data):
    z, target, tau, mode = case
    g = data.draw(arrays(z.shape, z.dtype, specials=SMALL_SPECIALS))
    snap = snapshot(z, g)
    grad = era.discrete_backward(z, g, target, tau=tau, mode=mode)
    assert grad.shape == z.shape and grad.dtype == z.dtype
    t, y, clamped, a, p = discrete_pieces(z, target, tau, mode)
    r = g.astype(np.float64) * np.where(clamped, 0.0, dt_dy(t, y, mode)) * a
    want = p * (r - (r * p).sum(axis=-1, keepdims=True))
    # |grad| <= max|r| per row; relative to it, float64 agrees to ~1e-12, float32 to rounding.
    r_max = np.max(np.abs(r), axis=-1, keepdims=True) if r.size else r
    tol = (1e-11 if z.dtype == F64 else 8 * EPS32) * r_max + SUBNORMAL[z.dtype]
    assert np.all(np.abs(grad.astype(np.float64) - want) <= tol)
    assert_unchanged(snap)
    assert_layout_independent(lambda x, gg: era.discrete_backward(x, gg, target, tau=tau, mode=mode), z, g)


@props(40)
@given(
    st.sampled_from([2, 3, 10, 1000]) | st.integers(2, 10**6),
    taus(),
    st.sampled_from(["exact", "reference"]),
    st.floats(1e-9, 1 - 1e-9),
)
def test_discrete_scalars(classes, tau, mode, fraction):
    target = inside(*discrete_range(classes, tau, mode), fraction)
    floor = era.discrete_floor(classes, target, tau=tau, mode=mode)
    infimum = era.discrete_infimum(classes, target, tau=tau, mode=mode)
    constant = era.discrete_constant(classes, target, tau=tau, mode=mode)
    assert constant == pytest.approx(math.exp(target - 1), rel=1e-14)
    assert infimum == pytest.approx(ref.discrete_infimum(classes, target, tau, mode), rel=1e-9, abs=1e-12)
    if mode == "exact":
        assert floor == target and infimum >= target - 1e-12
    else:
        assert math.isnan(floor)  # nothing is guaranteed in reference mode


@props(6)
@given(st.sampled_from([2, 10, 1000, 152064]), st.sampled_from([3.0, 4.0, 10.0]), st.floats(0.01, 0.99))
def test_discrete_scalars_tight(classes, tau, fraction):
    target = inside(*discrete_range(classes, tau, "tight"), fraction)
    assert era.discrete_floor(classes, target, tau=tau, mode="tight") == target
    constant = era.discrete_constant(classes, target, tau=tau, mode="tight")
    assert constant == pytest.approx(ref.tight_constant(classes, target, tau), rel=1e-9)
    up = math.log(tau) / tau
    assert up <= constant <= classes * up  # a, b >= 0
    # Tight: the one-hot infimum is the target itself.
    assert era.discrete_infimum(classes, target, tau=tau, mode="tight") == pytest.approx(target, abs=1e-9)


@props(40)
@given(
    st.sampled_from([2, 3, 10, 1000]),
    taus(),
    st.sampled_from(["exact", "tight", "reference"]),
    st.sampled_from(["below", "above"]),
    st.floats(1e-6, 100),
)
def test_discrete_infeasible_targets(classes, tau, mode, side, distance):
    lo, hi = discrete_range(classes, tau, mode)
    target = lo - distance if side == "below" else hi + distance
    if mode == "tight" and side == "below":
        target = min(target, 0.0)  # tight: 0 < H0 is required, 0 itself is refused
    z = np.zeros((2, classes))
    for fn in (era.discrete_floor, era.discrete_infimum, era.discrete_constant):
        raises(era.InfeasibleTargetError, fn, classes, target, tau=tau, mode=mode)
    raises(era.InfeasibleTargetError, era.discrete_forward, z, target, tau=tau, mode=mode)
    raises(era.InfeasibleTargetError, era.discrete_backward, z, z, target, tau=tau, mode=mode)
    raises(era.InfeasibleTargetError, era.check_discrete, z, target, tau=tau, mode=mode)
    # Also on an empty batch: the parameters are checked whatever the rows.
    raises(era.InfeasibleTargetError, era.discrete_forward, z[:0], target, tau=tau, mode=mode)


@props(40)
@given(
    st.sampled_from([math.e, math.exp(1 + 0.999e-6), 2.0, 1.0, 0.5, 0.0, -4.0, math.nan, math.inf, -math.inf]),
    st.sampled_from(["exact", "tight", "reference"]),
    st.sampled_from(["forward", "backward", "floor", "infimum", "constant", "check"]),
)
def test_discrete_tau_at_or_below_the_margin(tau, mode, which):
    # tau must exceed e with log(tau) >= 1 + 1e-6; nothing at or below that margin is taken.
    z = np.zeros((2, 4))
    call = {
        "forward": lambda: era.discrete_forward(z, 0.5, tau=tau, mode=mode),
        "backward": lambda: era.discrete_backward(z, z, 0.5, tau=tau, mode=mode),
        "floor": lambda: era.discrete_floor(4, 0.5, tau=tau, mode=mode),
        "infimum": lambda: era.discrete_infimum(4, 0.5, tau=tau, mode=mode),
        "constant": lambda: era.discrete_constant(4, 0.5, tau=tau, mode=mode),
        "check": lambda: era.check_discrete(z, 0.5, tau=tau, mode=mode),
    }[which]
    raises(era.BadParameterError, call)


def test_discrete_tau_just_above_the_margin_is_taken():
    out = era.discrete_forward(np.arange(6.0).reshape(2, 3), 0.5, tau=TAU_NEAR_E)
    assert np.all(np.isfinite(out)) and np.all(ref.softmax_entropy(out) >= 0.5 - 1e-10)


# ---------------------------------------------------------------------------------------
# LLM ERA


LLM_SPECIALS = (1e30, -1e30, 1e-30, 5e-324, 0.0, -0.0)


@st.composite
def masked_logits(draw, dtype, shape=None, labels=False, specials=LLM_SPECIALS):
    """Logits with -inf masks (never a whole row) and, when asked, labels on unmasked logits."""
    shape = draw(shapes()) if shape is None else shape
    z = draw(arrays(shape, F64, specials=specials))
    seed = draw(st.integers(0, 2**32 - 1))
    p_mask = draw(st.sampled_from([0.0, 0.3, 0.9]))
    rng = np.random.default_rng(seed)
    masked = rng.random(shape) < p_mask
    keep = rng.integers(0, shape[-1], size=shape[:-1])
    np.put_along_axis(masked, keep[..., None], False, axis=-1)
    z[masked] = -np.inf
    if dtype == "bits":
        z = z.astype(BF16).view(np.uint16)
    else:
        z = z.astype(dtype)
    if not labels:
        return z
    # A label on an unmasked logit: the kept one, or another unmasked one.
    other = rng.integers(0, shape[-1], size=shape[:-1])
    ok = ~np.take_along_axis(masked, other[..., None], axis=-1)[..., 0]
    return z, np.where(ok, other, keep).astype(np.int64)


def as_float64(z):
    """Logits in float64: bfloat16 bits (uint16) through ml_dtypes."""
    z = np.asarray(z)
    if z.dtype == np.uint16:
        z = z.view(BF16)
    return z.astype(np.float64)


@props(30)
@given(st.data())
def test_token_entropy(data):
    dtype = data.draw(st.sampled_from([F32, F64, BF16, "bits"]))
    z = data.draw(masked_logits(dtype))
    snap = snapshot(z)
    out = era.token_entropy(z)
    assert out.shape == z.shape[:-1] and out.dtype == (F64 if z.dtype == F64 else F32)
    tol = (1e-12 if z.dtype == F64 else 1e-6) * (1 + math.log(z.shape[-1]))
    np.testing.assert_allclose(out, ref.softmax_entropy(as_float64(z)), rtol=tol, atol=tol)
    if z.dtype == BF16:
        assert_same(era.token_entropy(z.view(np.uint16)), out)  # the raw bits give the same
    assert_unchanged(snap)
    assert_layout_independent(era.token_entropy, z)


@props(30)
@given(st.data())
def test_llm_response_entropy(data):
    tokens = data.draw(st.sampled_from([0, 1, 7]) | st.integers(0, 200))
    responses = data.draw(st.integers(0, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    ids = rng.integers(-1, responses, size=tokens).astype(np.int64) if responses else np.full(tokens, -1, np.int64)
    h = (rng.uniform(0, 5, size=tokens)).astype(np.float32)
    if data.draw(st.booleans()):
        h = np.round(h)  # ties
    h[ids < 0] = data.draw(st.sampled_from([0.0, np.nan, np.inf]))  # never read
    fraction = data.draw(st.sampled_from([1e-300, 0.05, 0.2, 0.5, 1.0]) | st.floats(1e-6, 1.0))
    if tokens % 2 == 0 and data.draw(st.booleans()):
        h, ids = h.reshape(2, -1), ids.reshape(2, -1)  # any shape, the same for both
    snap = snapshot(h, ids)
    out = era.llm_response_entropy(h, ids, responses, top_fraction=fraction)
    assert out.shape == (responses,) and out.dtype == F32
    clean = np.where(ids >= 0, h, 0.0)
    want = ref.response_entropy(clean, ids, responses, fraction)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)  # NaN exactly for the empty responses
    assert_unchanged(snap)
    assert_layout_independent(lambda a, b: era.llm_response_entropy(a, b, responses, top_fraction=fraction), h, ids)


@props(30)
@given(st.data())
def test_llm_scales(data):
    responses = data.draw(st.integers(0, 5))
    tokens = data.draw(st.sampled_from([0, 1]) | st.integers(0, 60))
    k = data.draw(st.sampled_from([2.0, 1.0, 1e-3, 1e3]) | st.floats(1e-3, 1e3))
    low = data.draw(st.sampled_from([0.45, 0.0, 3.0]) | st.floats(0, 4))
    high = low + data.draw(st.sampled_from([0.0, 2.55]) | st.floats(0, 4))
    scale_advantages = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    ids = rng.integers(-1, responses, size=tokens).astype(np.int64) if responses else np.full(tokens, -1, np.int64)
    # Entropies at, just around and away from the float32 thresholds (strict comparisons).
    near = [np.float32(low), np.float32(high), np.nextafter(np.float32(low), np.float32(-1)),
            np.nextafter(np.float32(high), np.float32(10)), np.float32(0.0)]
    resp = np.where(rng.random(responses) < 0.5, rng.choice(near, size=responses), rng.uniform(0, 6, size=responses))
    resp = resp.astype(np.float32)
    unused = np.setdiff1d(np.arange(responses), ids)
    resp[unused] = np.nan  # entropies of responses no token belongs to are never read
    adv = rng.choice([-1.5, 0.0, -0.0, 0.7, 2.0, 1e-30], size=tokens).astype(np.float32)
    params = dict(omega_low=low, omega_high=high, k=k, scale_advantages=scale_advantages)
    snap = snapshot(resp, ids, adv)
    out = era.llm_scales(resp, ids, adv, **params)
    assert out.logit_scale.shape == ids.shape and out.advantages.shape == ids.shape
    assert out.logit_scale.dtype == F32 and out.advantages.dtype == F32
    s, new_adv = ref.scales(resp, ids, adv, low, high, k, scale_advantages)
    np.testing.assert_allclose(out.logit_scale, s, rtol=EPS32)
    np.testing.assert_allclose(out.advantages, new_adv, rtol=2 * EPS32, atol=SUBNORMAL[F32])
    assert np.all(out.logit_scale[ids < 0] == 1) and np.all(out.advantages[ids < 0] == adv[ids < 0])
    assert np.all(out.logit_scale[adv <= 0] == 1)
    assert_unchanged(snap)
    assert_layout_independent(lambda a, b, c: era.llm_scales(a, b, c, **params), resp, ids, adv)


def logprob_case(data, specials=LLM_SPECIALS):
    dtype = data.draw(st.sampled_from([F32, BF16, "bits"]))
    z, labels = data.draw(masked_logits(dtype, labels=True, specials=specials))
    scale = None
    if data.draw(st.booleans()):
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        choices = np.array([1.0, 2.0, 0.5, 1e-3, 1e3, 1.401298464324817e-45], np.float32)
        scale = rng.choice(choices, size=labels.shape).astype(np.float32)
    return z, labels, scale


@props(30)
@given(st.data())
def test_llm_logprob_forward(data):
    z, labels, scale = logprob_case(data)
    snap = snapshot(*(a for a in (z, labels, scale) if a is not None))
    z64 = as_float64(z)
    want_lp, want_h = ref.logprob(z64, labels, scale)
    sz = np.abs(np.where(np.isinf(z64), 0.0, z64) * (1.0 if scale is None else scale.astype(np.float64)[..., None]))
    size = sz.max(axis=-1) if sz.size else np.zeros(labels.shape)
    if np.any(np.abs(want_lp) > FLT_MAX):  # a log-probability float32 cannot hold is refused
        raises(era.BadParameterError, era.llm_logprob_forward, z, labels, scale)
        assert_unchanged(snap)
        return
    out = era.llm_logprob_forward(z, labels, scale)
    assert out.logprob.shape == labels.shape and out.logprob.dtype == F32 and out.entropy.dtype == F32
    # Computed in double from the stored values (cancellation ~ eps * |s*z|), then rounded to float32.
    slack = 8 * EPS64 * size + 1e-30
    assert np.all(np.abs(out.logprob - want_lp) <= slack + 2 * EPS32 * np.abs(want_lp))
    assert np.all(np.abs(out.entropy - want_h) <= slack + 2 * EPS32 * (1 + np.abs(want_h)))
    assert np.all(out.logprob <= 0)
    assert era.llm_logprob_forward(z, labels, scale, with_entropy=False).entropy is None
    assert_unchanged(snap)
    assert_layout_independent(lambda zz, ll: era.llm_logprob_forward(zz, ll, scale), z, labels)


@props(30)
@given(st.data())
def test_llm_logprob_backward(data):
    # |s*z| stays below about 1e5 here: for logits tied at a huge value the kernel's softmax is
    # wrong (see test_bug_logprob_backward_ties_at_huge_logits).
    z, labels, scale = logprob_case(data, specials=SMALL_SPECIALS)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    g = rng.choice([0.0, 1.0, -1.0, 0.3, 10.0], size=labels.shape).astype(np.float32)
    snap = snapshot(*(a for a in (z, labels, scale, g) if a is not None))
    grad = era.llm_logprob_backward(z, labels, scale, g)
    assert grad.shape == z.shape and grad.dtype == z.dtype  # bfloat16 in, bfloat16 out (bits stay bits)
    z64 = as_float64(z)
    want = ref.logprob_grad(z64, labels, scale, g)
    gs = np.abs(g.astype(np.float64) * (1.0 if scale is None else scale.astype(np.float64)))[..., None]
    relative = 2 * EPS32 if z.dtype == F32 else 2.0**-8  # bfloat16 keeps 8 significant bits
    assert np.all(np.abs(as_float64(grad) - want) <= relative * gs + 1e-12 * gs + SUBNORMAL[F32])
    assert np.all(as_float64(grad)[np.isinf(z64)] == 0)  # masked logits get exactly 0
    assert_unchanged(snap)
    assert_layout_independent(lambda zz, ll: era.llm_logprob_backward(zz, ll, scale, g), z, labels)


# ---------------------------------------------------------------------------------------
# Fused linear heads (docs/linear-heads.md): the logits come from float32 products

U32 = 2.0**-24  # the unit roundoff of float32
# An absolute floor for gradients summed from products that may underflow (or be flushed).
LINEAR_FLOOR = 1e-36


def gamma32(n):
    """The worst-case relative error of a float32 sum of n products, in any order."""
    return n * U32 / (1 - n * U32)


@st.composite
def linear_llm_case(draw):
    """float32 hidden ``[..., d]`` (empty batches too), weight ``[V, d]`` (V around the
    2048-entry chunk edge too), int64 labels, float32 scales (or None) and grad_logprob."""
    batch = tuple(draw(st.lists(st.integers(0, 4), max_size=2)))
    dim = draw(st.sampled_from([1, 2, 64]) | st.integers(1, 9))
    vocab = draw(st.sampled_from([1, 2, 9, 2048, 2049]) | st.integers(1, 40))
    hidden = draw(arrays(batch + (dim,), F32, scale=draw(st.sampled_from([1e-3, 1.0, 4.0])), specials=SMALL_SPECIALS))
    weight = draw(arrays((vocab, dim), F32, scale=draw(st.sampled_from([1e-3, 1.0])), specials=SMALL_SPECIALS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = rng.integers(0, vocab, size=batch).astype(np.int64)
    scale = None
    if draw(st.booleans()):
        scale = rng.choice(np.array([1.0, 2.0, 0.5, 1e-3, 10.0], np.float32), size=batch).astype(np.float32)
    grad = rng.choice([0.0, 1.0, -1.0, 0.3, 10.0], size=batch).astype(np.float32)
    return hidden, weight, labels, scale, grad


def linear_logits(hidden, weight, scale):
    """(h, w, z, s, delta): the float64 hidden [T, d], weight, logits, scales, and per token
    delta_t, a bound on |s_t (z_fused - z)| from gamma32(d) * sum_j |h_j w_j|."""
    dim = hidden.shape[-1]
    h, w = hidden.astype(F64).reshape(-1, dim), weight.astype(F64)
    z = h @ w.T
    err = gamma32(dim) * (np.abs(h) @ np.abs(w).T) + dim * 2.0**-125
    s = np.ones(len(h)) if scale is None else scale.astype(F64).reshape(-1)
    return h, w, z, s, s * err.max(axis=-1)


@props(30)
@given(linear_llm_case())
def test_llm_linear_logprob_forward(case):
    hidden, weight, labels, scale, _ = case
    snap = snapshot(*(a for a in (hidden, weight, labels, scale) if a is not None))
    out = era.llm_linear_logprob_forward(hidden, weight, labels, scale)
    assert out.logprob.shape == labels.shape and out.logprob.dtype == F32 and out.entropy.dtype == F32
    _, _, z, s, delta = linear_logits(hidden, weight, scale)
    want_lp, want_h = ref.logprob(z, labels.reshape(-1), s)
    x = z * s[:, None]
    size = np.abs(x).max(axis=-1)
    spread = x.max(axis=-1) - x.min(axis=-1)
    # Logits off by at most delta: logp' by 2 delta, the entropy by delta * (spread + 2 delta);
    # then the row statistics (float32 lanes where the vector kernels run: logsumexp within
    # 3.5e-7 absolute, the entropy 2.7e-7 relative, docs/math.md), the rounding to float32.
    slack = 8 * EPS64 * size + 1e-30
    lp_tol = 2 * delta + slack + 3.5e-7 + 2 * EPS32 * np.abs(want_lp)
    h_tol = delta * (spread + 2 * delta) + slack + 2.7e-7 * np.abs(want_h) + 2 * EPS32 * (1 + np.abs(want_h))
    assert np.all(np.abs(out.logprob.reshape(-1) - want_lp) <= lp_tol)
    assert np.all(np.abs(out.entropy.reshape(-1) - want_h) <= h_tol)
    assert np.all(out.logprob <= 0)
    assert_same(era.llm_linear_logprob_forward(hidden, weight, labels, scale, with_entropy=False).logprob, out.logprob)
    assert_unchanged(snap)
    assert_layout_independent(lambda hh, ww: era.llm_linear_logprob_forward(hh, ww, labels, scale), hidden, weight)


@props(30)
@given(linear_llm_case(), st.sampled_from([(True, True), (True, False), (False, True)]))
def test_llm_linear_logprob_backward(case, which):
    hidden, weight, labels, scale, grad = case
    snap = snapshot(*(a for a in (hidden, weight, labels, scale, grad) if a is not None))
    grads = era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad, grad_hidden=which[0],
                                            grad_weight=which[1])
    h, w, z, s, delta = linear_logits(hidden, weight, scale)
    dz = ref.logprob_grad(z, labels.reshape(-1), s, grad.reshape(-1))
    # softmax of logits off by delta is off by a factor within exp(+-2 delta); the gradient
    # rows' own error (float32 lanes: 3e-7 relative plus 1.2e-7 per nat below the row's
    # largest scaled logit, with the statistics' 3.5e-7; entries below 2^-127 |g s| are 0,
    # docs/math.md) gives e, the error of dz; then float32 storage and float32 sums.
    gs = np.abs(grad.reshape(-1).astype(F64) * s)[:, None]
    x = z * s[:, None]
    below = x.max(axis=-1, keepdims=True) - x if x.size else x
    e = gs * ref.softmax(x) * (np.expm1(2 * delta)[:, None] + 7e-7 + 1.2e-7 * below) + gs * 2.0**-126
    a = np.abs(dz) + e
    tokens, vocab = z.shape
    if which[0]:
        assert grads.hidden.shape == hidden.shape and grads.hidden.dtype == F32
        tol = e @ np.abs(w) + (gamma32(vocab) + 2 * U32) * (a @ np.abs(w)) + LINEAR_FLOOR
        assert np.all(np.abs(grads.hidden.reshape(tokens, w.shape[1]) - dz @ w) <= tol)
    else:
        assert grads.hidden is None
    if which[1]:
        assert grads.weight.shape == weight.shape and grads.weight.dtype == F32
        tol = e.T @ np.abs(h) + (gamma32(tokens) + 2 * U32) * (a.T @ np.abs(h)) + LINEAR_FLOOR
        assert np.all(np.abs(grads.weight - dz.T @ h) <= tol)
    else:
        assert grads.weight is None
    assert_unchanged(snap)
    assert_layout_independent(
        lambda hh, ww: era.llm_linear_logprob_backward(hh, ww, labels, scale, grad, grad_hidden=which[0],
                                                       grad_weight=which[1]), hidden, weight)


@st.composite
def linear_ce_case(draw):
    """A classification head whose float32 logits are exact: every value a multiple of 1/8
    of at most 2 in magnitude, so products and sums (d <= 64) are exact in float32, and the
    only rounding left is discrete ERA's and the cross-entropy's."""
    batch = draw(st.sampled_from([(), (1,), (5,), (2, 3)]) | st.tuples(st.integers(1, 40)))
    dim = draw(st.sampled_from([1, 2, 64]) | st.integers(1, 9))
    classes = draw(st.sampled_from([2, 3, 10, 257]) | st.integers(2, 12))
    spread = draw(st.sampled_from([1, 4, 16]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def exact(shape):
        return (rng.integers(-spread, spread + 1, size=shape) / 8).astype(np.float32)

    features, weight = exact(batch + (dim,)), exact((classes, dim))
    bias = exact((classes,)) if draw(st.booleans()) else None
    labels = rng.integers(0, classes, size=batch).astype(np.int64)
    mode = draw(st.sampled_from(["exact", "tight", "reference"]))
    tau = draw(taus().filter(lambda t: t >= 3.0))
    fraction = draw(st.sampled_from([1e-3, 0.5, 1 - 1e-3]) | st.floats(1e-3, 1 - 1e-3))
    return features, weight, bias, labels, inside(*discrete_range(classes, tau, mode), fraction), tau, mode


@props(40)
@given(linear_ce_case(), st.booleans())
def test_linear_discrete_ce(case, grads):
    features, weight, bias, labels, target, tau, mode = case
    snap = snapshot(*(a for a in (features, weight, bias, labels) if a is not None))
    out = era.linear_discrete_ce(features, weight, bias, labels, target, tau=tau, mode=mode, grads=grads)
    f, w = features.astype(F64).reshape(-1, features.shape[-1]), weight.astype(F64)
    z = f @ w.T + (0.0 if bias is None else bias.astype(F64))
    n, rows = len(z), np.arange(len(z))
    lab = labels.reshape(-1)
    t, y, clamped, a, p = discrete_pieces(z, target, tau, mode)
    # The float32 ERA logits are within t_tol of t (test_discrete_forward's bound).
    condition = np.where(clamped, 0.0, np.abs(dt_dy(t, y, mode) * y))
    delta = (1e-12 * (1 + np.abs(t)) * (1 + condition) + np.abs(t) * EPS32).max(axis=-1)
    m = t.max(axis=-1)
    loss = float(np.mean(m + np.log(np.exp(t - m[:, None]).sum(axis=-1)) - t[rows, lab]))
    assert isinstance(out.loss, float)
    assert abs(out.loss - loss) <= np.mean(2 * delta) + EPS32 * abs(loss) + 1e-12
    if not grads:
        assert out.features is None and out.weight is None and out.bias is None
        assert_unchanged(snap)
        return
    q = ref.softmax(t)
    gp = q.copy()
    gp[rows, lab] -= 1
    gp /= n
    deriv = np.where(clamped, 0.0, dt_dy(t, y, mode)) * a
    r = gp * deriv
    g = p * (r - (r * p).sum(axis=-1, keepdims=True))
    # Error of the cross-entropy gradient (ERA logits off by delta, stored as float32), through
    # the ERA backward (linear: at most 2 max|dr| per entry) and its own float32 rounding.
    dr = (q * np.expm1(2 * delta)[:, None] / n + U32 * np.abs(gp)) * np.abs(deriv)
    e = 2 * dr.max(axis=-1) + 8 * EPS32 * (np.abs(r).max(axis=-1) + dr.max(axis=-1)) + SUBNORMAL[F32]
    ga = np.abs(g) + e[:, None]
    classes = len(w)
    assert out.features.shape == features.shape and out.weight.shape == weight.shape
    tol = e[:, None] * np.abs(w).sum(axis=0) + (gamma32(classes) + 2 * U32) * (ga @ np.abs(w)) + LINEAR_FLOOR
    assert np.all(np.abs(out.features.reshape(n, w.shape[1]) - g @ w) <= tol)
    tol = e @ np.abs(f) + (gamma32(n) + 2 * U32) * (ga.T @ np.abs(f)) + LINEAR_FLOOR
    assert np.all(np.abs(out.weight - g.T @ f) <= tol)
    if bias is None:
        assert out.bias is None
    else:
        want = g.sum(axis=0)
        assert out.bias.shape == bias.shape and out.bias.dtype == F32
        assert np.all(np.abs(out.bias - want) <= e.sum() + U32 * np.abs(want) + LINEAR_FLOOR)
    assert_unchanged(snap)
    assert_layout_independent(
        lambda ff, ww: era.linear_discrete_ce(ff, ww, bias, labels, target, tau=tau, mode=mode), features, weight)


@props(10)
@given(st.sampled_from([(0,), (0, 3), (2, 0)]), st.booleans())
def test_linear_discrete_ce_without_rows(batch, with_bias):
    # The mean over no rows is undefined.
    weight = np.ones((3, 4), np.float32)
    bias = np.zeros(3, np.float32) if with_bias else None
    raises(era.BadShapeError, era.linear_discrete_ce, np.zeros(batch + (4,), np.float32), weight, bias,
           np.zeros(batch, np.int64), 0.5)


# ---------------------------------------------------------------------------------------
# Bound checks, era.testing


def assert_report(report, entropies, target, tol, floor, batch_shape):
    """A BoundReport against entropies computed by the reference."""
    h = np.asarray(entropies, np.float64).reshape(-1)
    assert report.rows == h.size and report.batch_shape == tuple(batch_shape) and report.tol == tol
    assert report.target == pytest.approx(target, rel=1e-15, abs=1e-15)
    assert (math.isnan(report.floor) and math.isnan(floor)) or report.floor == pytest.approx(floor, rel=1e-15)
    # Rows within rounding of the threshold may count either way: skip such draws.
    assume(not np.any(np.abs(h - (target - tol)) < 1e-9 * (1 + abs(target))))
    violations = int(np.sum(h < target - tol))
    assert report.violations == violations and report.holds == (violations == 0)
    if h.size == 0:
        assert report.min_entropy == math.inf and math.isnan(report.mean_entropy)
        assert report.worst_row == -1 and report.worst_index is None and report.max_deficit == 0
    else:
        scale = 1e-9 * (1 + np.abs(h).max())
        assert report.min_entropy == pytest.approx(h.min(), abs=scale)
        assert report.mean_entropy == pytest.approx(h.mean(), abs=scale)
        assert report.max_deficit == pytest.approx(max(0.0, target - h.min()), abs=scale)
        assert h[report.worst_row] == pytest.approx(h.min(), abs=scale)
        assert report.worst_index == tuple(int(i) for i in np.unravel_index(report.worst_row, batch_shape))
    as_json = json.loads(json.dumps(report.to_dict()))  # non-finite numbers become null
    assert as_json["rows"] == report.rows and as_json["holds"] == report.holds


@props(30)
@given(st.data())
def test_check_discrete(data):
    shape = data.draw(shapes(min_cols=2))
    dtype = data.draw(st.sampled_from(FLOATS))
    mode = data.draw(st.sampled_from(["exact", "tight", "reference"]))
    tau = data.draw(taus())
    target = inside(*discrete_range(shape[-1], tau, mode), data.draw(st.floats(0.01, 0.99)))
    z = data.draw(arrays(shape, dtype))
    if data.draw(st.booleans()):  # ERA outputs (the bound holds) or arbitrary logits (it may not)
        z = era.discrete_forward(z, target, tau=tau, mode=mode)
    tol = data.draw(st.sampled_from([None, 0.0, 1e-3]))
    snap = snapshot(z)
    report = era.check_discrete(z, target, tau=tau, mode=mode, tol=tol)
    used = (1e-5 if dtype == F32 else 1e-10) if tol is None else tol
    floor = math.nan if mode == "reference" else target
    assert_report(report, ref.softmax_entropy(z), target, used, floor, shape[:-1])
    # era.testing: the same report when the bound holds, else an AssertionError naming rows.
    if report.holds:
        assert same_report(era.testing.assert_entropy_bound(z, kind="discrete", target_entropy=target, tau=tau,
                                                            mode=mode, tol=tol), report)
    else:
        with pytest.raises(AssertionError, match=f"entropy bound violated: {report.violations} of {report.rows} rows"):
            era.testing.assert_entropy_bound(z, kind="discrete", target_entropy=target, tau=tau, mode=mode, tol=tol)
        count, rows = era.testing.violating_rows(z, report, kind="discrete", max_rows=3)
        assert count == report.violations and len(rows) == min(3, count)
        assert era.testing.violation_lines(z, report, kind="discrete")[0].startswith("worst deficit")
    assert same_report(era.testing.check_entropy_bound(z, kind="discrete", target_entropy=target, tau=tau, mode=mode,
                                                       tol=tol), report)
    assert_unchanged(snap)
    assert_layout_independent(lambda x: era.check_discrete(x, target, tau=tau, mode=mode, tol=tol), z)


@props(25)
@given(st.data())
def test_check_continuous(data):
    with_mean = data.draw(st.booleans())
    if with_mean:  # the squashed entropy's reference is slow: few small rows
        shape = data.draw(shapes(cols=data.draw(st.integers(1, 3)), max_batch_dim=2))
    else:
        shape = data.draw(shapes())
    dtype = data.draw(st.sampled_from(FLOATS))
    target, residual, lo, hi = data.draw(continuous_params(shape[-1]))
    assume(continuous_k(shape[-1], target, residual, hi) <= -1e-9 * (1 + abs(target)))
    log_std = data.draw(arrays(shape, dtype, scale=2.0, specials=SMALL_SPECIALS, lo=-12.0, hi=1.0))
    if data.draw(st.booleans()):
        log_std = era.continuous_forward(log_std, target, residual=residual, log_std_min=lo, log_std_max=hi)
    mean = data.draw(arrays(shape, dtype, scale=1.0, specials=SMALL_SPECIALS)) if with_mean else None
    tol = data.draw(st.sampled_from([None, 0.0, 1e-3]))
    params = dict(residual=residual, log_std_min=lo, log_std_max=hi, mean=mean, tol=tol)
    snap = snapshot(*(a for a in (log_std, mean) if a is not None))
    report = era.check_continuous(log_std, target, **params)
    used = (1e-5 if dtype == F32 else 1e-10) if tol is None else tol
    if with_mean:
        h = ref.tanh_gaussian_entropy(mean.astype(np.float64), log_std.astype(np.float64))
        assert_report(report, h, target, used, math.nan, shape[:-1])
    else:
        assert_report(report, entropy_of_log_std(log_std), target + residual, used, target + residual, shape[:-1])
    check = era.testing.check_entropy_bound(log_std, kind="continuous", target_entropy=target, **params)
    assert same_report(check, report)
    assert_unchanged(snap)


@pytest.mark.parametrize("kind", ["", "Discrete", "gaussian", None])
def test_testing_rejects_unknown_kinds(kind):
    with pytest.raises(ValueError, match="kind must be one of"):
        era.testing.assert_entropy_bound(np.zeros((2, 3)), kind=kind, target_entropy=1.0)


@props(20)
@given(st.sampled_from([math.nan, math.inf, -math.inf, -1e-300, -1.0]), st.sampled_from(["discrete", "continuous"]))
def test_check_bad_tolerance(tol, kind):
    x = np.full((2, 3), -1.0)
    snap = snapshot(x)
    if kind == "discrete":
        raises(era.BadParameterError, era.check_discrete, x, 0.5, tol=tol)
    else:
        raises(era.BadParameterError, era.check_continuous, x, -3.0, tol=tol)
    assert_unchanged(snap)


# ---------------------------------------------------------------------------------------
# Threads, versions


@props(15)
@given(st.sampled_from([0, 1, 2, 7, 1024]) | st.integers(1, 1024), st.data())
def test_threads_round_trip_and_identical_results(n, data):
    x = data.draw(arrays((300, 257), F64))  # large enough to be split between threads
    original = era.get_num_threads()
    try:
        era.set_num_threads(1)
        one = (era.discrete_forward(x, 1.0), era.softmax_entropy(x), era.continuous_forward(x, -300.0))
        era.set_num_threads(n)
        assert era.get_num_threads() == (n if n else era.get_num_threads()) and era.get_num_threads() >= 1
        many = (era.discrete_forward(x, 1.0), era.softmax_entropy(x), era.continuous_forward(x, -300.0))
        for a, b in zip(one, many):
            assert_same(a, b)  # bit-for-bit whatever the setting
    finally:
        era.set_num_threads(original)


@props(15)
@given(st.integers(max_value=-1) | st.integers(min_value=1025)
       | st.sampled_from([-1, 1025, 2**31, -(2**31) - 1, 2**70]))
def test_threads_out_of_range(n):
    original = era.get_num_threads()
    raises(era.BadParameterError, era.set_num_threads, n)
    assert era.get_num_threads() == original  # nothing changed


def test_versions():
    major, minor, patch = _era.HEADER_VERSION
    assert era.version() == era.__version__ == f"{major}.{minor}.{patch}"
    assert era.abi_version() == _era.HEADER_ABI_VERSION and isinstance(era.abi_version(), int)


# ---------------------------------------------------------------------------------------
# Bad input: every kind raises its documented class, returns nothing, leaves inputs alone

BATCH, COLS, RESPONSES = (2, 3), 4, 3


def good_arrays():
    """The arrays of one valid call of each function (batch (2, 3), rows of 4)."""
    rng = np.random.default_rng(5)
    return {
        "x": rng.normal(size=BATCH + (COLS,)),
        "y": rng.normal(size=BATCH + (COLS,)) * 0.5,
        "z": rng.normal(size=BATCH + (COLS,)).astype(np.float32),
        "labels": rng.integers(0, COLS, size=BATCH).astype(np.int64),
        "scale": np.full(BATCH, 2.0, np.float32),
        "grad": rng.normal(size=BATCH).astype(np.float32),
        "h": rng.uniform(0, 3, size=BATCH).astype(np.float32),
        "ids": rng.integers(-1, RESPONSES, size=BATCH).astype(np.int64),
        "resp": np.array([0.1, 1.0, 5.0], np.float32),
        "adv": rng.normal(size=BATCH).astype(np.float32),
    }


# Each function: (call on a dict of arrays, the arrays it takes and their kind). Kinds:
# "row" float32/float64 [..., D] (a second "row" argument must match the first), "logits"
# float32/bfloat16 [..., V], "logits64" also float64, "index" int64, "f32" float32.
API = {
    "softmax_entropy": (lambda a: era.softmax_entropy(a["x"]), {"x": "row"}),
    "gaussian_entropy": (lambda a: era.gaussian_entropy(a["x"]), {"x": "row"}),
    "tanh_gaussian_entropy": (lambda a: era.tanh_gaussian_entropy(a["y"], a["x"]), {"x": "row", "y": "row"}),
    "truncated_normal_entropy": (lambda a: era.truncated_normal_entropy(a["y"], a["x"]), {"x": "row", "y": "row"}),
    "continuous_forward": (lambda a: era.continuous_forward(a["x"], -3.0), {"x": "row"}),
    "continuous_backward": (lambda a: era.continuous_backward(a["x"], a["y"], -3.0), {"x": "row", "y": "row"}),
    "discrete_forward": (lambda a: era.discrete_forward(a["x"], 1.0), {"x": "row"}),
    "discrete_backward": (lambda a: era.discrete_backward(a["x"], a["y"], 1.0), {"x": "row", "y": "row"}),
    "check_discrete": (lambda a: era.check_discrete(a["x"], 1.0), {"x": "row"}),
    "check_continuous": (lambda a: era.check_continuous(a["x"], -3.0, mean=a["y"]), {"x": "row", "y": "row"}),
    "testing.check_entropy_bound": (
        lambda a: era.testing.check_entropy_bound(a["x"], kind="continuous", target_entropy=-60.0, mean=a["y"]),
        {"x": "row", "y": "row"},
    ),
    "token_entropy": (lambda a: era.token_entropy(a["z"]), {"z": "logits64"}),
    "llm_logprob_forward": (lambda a: era.llm_logprob_forward(a["z"], a["labels"], a["scale"]),
                            {"z": "logits", "labels": "index", "scale": "f32"}),
    "llm_logprob_backward": (lambda a: era.llm_logprob_backward(a["z"], a["labels"], a["scale"], a["grad"]),
                             {"z": "logits", "labels": "index", "scale": "f32", "grad": "f32"}),
    "llm_response_entropy": (lambda a: era.llm_response_entropy(a["h"], a["ids"], RESPONSES),
                             {"h": "f32", "ids": "index"}),
    "llm_scales": (lambda a: era.llm_scales(a["resp"], a["ids"], a["adv"]),
                   {"resp": "f32", "ids": "index", "adv": "f32"}),
}

COMMON_BAD = [np.int8, np.int32, np.int64, np.uint8, np.uint64, np.float16, np.complex64, np.complex128, np.bool_,
              object, ">f8", ">f4", "<U8", np.longdouble]
WRONG_DTYPES = {
    "row": COMMON_BAD + [np.uint16, BF16],
    "logits": [d for d in COMMON_BAD + [np.float64, np.int16, ">u2"] if d is not np.int64] + [np.int64],
    "logits64": COMMON_BAD + [np.int16, ">u2"],
    "index": [np.int32, np.uint64, np.float64, np.float32, ">i8", np.bool_, object, np.int8, np.uint32, np.int16],
    "f32": [np.float64, np.float16, np.int32, np.int64, ">f4", object, np.bool_, BF16, np.uint16],
}


def api_call(name, arrays):
    return API[name][0](arrays)


def test_the_good_calls_succeed():
    for name in API:
        api_call(name, good_arrays())


def replace(arrays, **new):
    out = dict(arrays)
    out.update(new)
    return out


@props(60)
@given(st.data())
def test_wrong_dtypes_raise_dtype_error(data):
    name = data.draw(st.sampled_from(sorted(API)))
    arg = data.draw(st.sampled_from(sorted(API[name][1])))
    kind = API[name][1][arg]
    wrong = np.dtype(data.draw(st.sampled_from(WRONG_DTYPES[kind])))
    arrays = good_arrays()
    bad = arrays[arg].astype(wrong)
    snap = snapshot(*arrays.values(), bad)
    raises(era.DTypeError, api_call, name, replace(arrays, **{arg: bad}))
    assert_unchanged(snap)


@props(30)
@given(st.sampled_from([n for n, (_, spec) in API.items() if list(spec.values()).count("row") == 2]),
       st.sampled_from(["x", "y"]))
def test_mixed_float_dtypes_raise_dtype_error(name, arg):
    # float32 with float64: never cast, whichever argument it is.
    arrays = good_arrays()
    raises(era.DTypeError, api_call, name, replace(arrays, **{arg: arrays[arg].astype(np.float32)}))


ROW_FUNCTIONS = sorted(n for n, (_, spec) in API.items() if "row" in spec.values())
LLM_LOGITS_FUNCTIONS = ["token_entropy", "llm_logprob_forward", "llm_logprob_backward"]


@props(60)
@given(st.data())
def test_bad_shapes_raise_bad_shape_error(data):
    arrays = good_arrays()
    name = data.draw(st.sampled_from(sorted(API)))
    spec = API[name][1]
    arg = data.draw(st.sampled_from(sorted(spec)))
    kind = spec[arg]
    if kind == "row" or kind.startswith("logits"):
        how = data.draw(st.sampled_from(["scalar", "empty row", "other rows", "other length", "one class"]))
        a = arrays[arg]
        bad = {
            "scalar": a.reshape(-1)[0],  # a 0-d array: no last axis
            "empty row": a[..., :0],
            "other rows": a[:1],
            "other length": np.concatenate([a, a], axis=-1),
            "one class": a[..., :1],
        }[how]
        if how == "one class" and name not in ("discrete_forward", "discrete_backward", "check_discrete"):
            return  # one class is a valid row elsewhere
        if how in ("other rows", "other length") and list(spec.values()).count("row") < 2 and kind == "row":
            return  # a lone row argument has no shape to mismatch
        if how == "scalar":
            bad = np.array(bad)
        new = {arg: bad}
        if how in ("empty row", "one class", "scalar") and kind == "row":
            new = {k: (np.array(arrays[k].reshape(-1)[0]) if how == "scalar" else arrays[k][..., : bad.shape[-1]])
                   for k, v in spec.items() if v == "row"}
        if kind.startswith("logits") and how in ("other rows", "other length"):
            if how == "other length" or name == "token_entropy":
                return  # the vocabulary is free; token_entropy has no other argument
    else:
        # per-token arrays: a shape other than the tokens'
        if name == "llm_scales" and arg == "resp":
            bad = data.draw(st.sampled_from([np.float32(1.0), arrays["resp"].reshape(1, -1)]))
            bad = np.asarray(bad)
        elif name == "llm_scales" and arg == "ids":
            return  # the ids define the tokens' shape there; advantages are checked against them
        else:
            bad = data.draw(st.sampled_from([arrays[arg][:1], arrays[arg].reshape(-1), arrays[arg][..., None]]))
        new = {arg: bad}
    snap = snapshot(*arrays.values(), *new.values())
    raises(era.BadShapeError, api_call, name, replace(arrays, **new))
    assert_unchanged(snap)


@props(20)
@given(st.sampled_from([era.discrete_floor, era.discrete_infimum, era.discrete_constant]),
       st.sampled_from([1, 0, -1, -(2**62)]))
def test_too_few_classes(fn, classes):
    raises(era.BadShapeError, fn, classes, 0.5)


@props(20)
@given(st.sampled_from([-1, -2, -(2**40)]), st.sampled_from(["ids -1", "empty"]))
def test_negative_response_count(responses, tokens):
    h, ids = (np.ones(3, np.float32), np.full(3, -1, np.int64)) if tokens == "ids -1" else (
        np.zeros(0, np.float32), np.zeros(0, np.int64))
    raises(era.BadShapeError, era.llm_response_entropy, h, ids, responses)


@props(60)
@given(st.data())
def test_non_finite_inputs(data):
    arrays = good_arrays()
    name = data.draw(st.sampled_from(sorted(API)))
    spec = API[name][1]
    arg = data.draw(st.sampled_from(sorted(a for a, k in spec.items() if k != "index")))
    value = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    bad = arrays[arg].copy()
    flat = bad.reshape(-1)
    position = data.draw(st.integers(0, flat.size - 1))
    flat[position] = value
    expected = era.NonFiniteError
    if spec[arg].startswith("logits") and value == -np.inf:
        # -inf is a mask in the LLM passes: fine, unless it is the label's logit.
        row = position // bad.shape[-1]
        if name != "token_entropy" and arrays["labels"].reshape(-1)[row] == position % bad.shape[-1]:
            expected = era.BadIndexError
        else:
            expected = None
    if name == "llm_response_entropy" and arrays["ids"].reshape(-1)[position] < 0:
        expected = None  # the entropy of a token of no response is never read
    if name == "llm_scales" and arg == "resp" and position not in arrays["ids"]:
        expected = None  # nor that of a response no token belongs to
    new = replace(arrays, **{arg: bad})
    snap = snapshot(*new.values())
    if expected is None:
        api_call(name, new)
    else:
        raises(expected, api_call, name, new)
    assert_unchanged(snap)


@props(20)
@given(st.sampled_from(LLM_LOGITS_FUNCTIONS), st.integers(0, 5))
def test_fully_masked_rows(name, row):
    arrays = good_arrays()
    z = arrays["z"].copy()
    z.reshape(-1, COLS)[row] = -np.inf
    raises(era.NonFiniteError, api_call, name, replace(arrays, z=z))


def _continuous_call(fn, kw):
    params = dict(target_entropy=-3.0, residual=0.0, log_std_min=-8.0, log_std_max=0.0)
    params.update(kw)
    target = params.pop("target_entropy")
    x = np.zeros((2, 3))
    if fn == "forward":
        return era.continuous_forward(x, target, **params)
    if fn == "backward":
        return era.continuous_backward(x, x, target, **params)
    return era.check_continuous(x - 1, target, mean=x if fn == "check squashed" else None, **params)


CONTINUOUS_ENTRY = {fn: (lambda kw, fn=fn: _continuous_call(fn, kw)) for fn in ("forward", "backward", "check",
                                                                                  "check squashed")}
DISCRETE_ENTRY_NAMES = ("forward", "backward", "floor", "infimum", "constant", "check")


def _discrete_call(fn, kw):
    params = dict(target_entropy=1.0, tau=4.0, mode="exact")
    params.update(kw)
    target = params.pop("target_entropy")
    z = np.zeros((2, 4))
    return {
        "forward": lambda: era.discrete_forward(z, target, **params),
        "backward": lambda: era.discrete_backward(z, z, target, **params),
        "floor": lambda: era.discrete_floor(4, target, **params),
        "infimum": lambda: era.discrete_infimum(4, target, **params),
        "constant": lambda: era.discrete_constant(4, target, **params),
        "check": lambda: era.check_discrete(z, target, **params),
    }[fn]()


DISCRETE_ENTRY = {fn: (lambda kw, fn=fn: _discrete_call(fn, kw)) for fn in DISCRETE_ENTRY_NAMES}


def _llm_call(fn, kw):
    ids = np.array([0, 1, -1], np.int64)
    if fn == "response_entropy":
        return era.llm_response_entropy(np.ones(3, np.float32), ids, 2, **kw)
    return era.llm_scales(np.array([0.1, 5.0], np.float32), ids, np.ones(3, np.float32), **kw)


LLM_ENTRY = {fn: (lambda kw, fn=fn: _llm_call(fn, kw)) for fn in ("response_entropy", "scales")}


def LOGPROB(scale, z=1.0, grad=1.0, backward=False):
    logits = np.array([[0.0, z, -z]], np.float32)
    labels = np.array([2], np.int64)
    s = np.array([scale], np.float32)
    if backward:
        return era.llm_logprob_backward(logits, labels, s, np.array([grad], np.float32))
    return era.llm_logprob_forward(logits, labels, s)


BAD_PARAMETER_CALLS = {
    # continuous: non-finite or out-of-domain parameters, on every continuous entry point
    **{f"{fn} {what}": (lambda fn=fn, kw=kw: CONTINUOUS_ENTRY[fn](kw), era.BadParameterError)
       for fn in ("forward", "backward", "check", "check squashed")
       for what, kw in {
           "target nan": dict(target_entropy=math.nan), "target inf": dict(target_entropy=-math.inf),
           "residual < 0": dict(residual=-1e-12), "residual nan": dict(residual=math.nan),
           "residual inf": dict(residual=math.inf), "min == max": dict(log_std_min=0.0, log_std_max=0.0),
           "min > max": dict(log_std_min=1.0, log_std_max=0.0), "max inf": dict(log_std_max=math.inf),
           "min -inf": dict(log_std_min=-math.inf), "min nan": dict(log_std_min=math.nan),
       }.items()},
    # discrete: the target, the mode (tau: test_discrete_tau_at_or_below_the_margin)
    **{f"discrete {fn} {what}": (lambda fn=fn, kw=kw: DISCRETE_ENTRY[fn](kw), era.BadParameterError)
       for fn in DISCRETE_ENTRY_NAMES
       for what, kw in {
           "target nan": dict(target_entropy=math.nan), "target inf": dict(target_entropy=math.inf),
           "mode unknown": dict(mode="greedy"), "mode EXACT": dict(mode="EXACT"), "mode 0": dict(mode=0),
           "mode None": dict(mode=None), "mode list": dict(mode=["exact"]),
       }.items()},
    # LLM parameters, on both entry points that take them
    **{f"{fn} {what}": (lambda fn=fn, kw=kw: LLM_ENTRY[fn](kw), era.BadParameterError)
       for fn in ("response_entropy", "scales")
       for what, kw in {
           "omega_low > omega_high": dict(omega_low=3.1, omega_high=3.0), "omega nan": dict(omega_low=math.nan),
           "omega inf": dict(omega_high=math.inf), "k 0": dict(k=0.0), "k < 0": dict(k=-2.0), "k nan": dict(k=math.nan),
           "k subnormal": dict(k=1e-39), "1/k subnormal": dict(k=1e38), "k inf": dict(k=math.inf),
           "k too large": dict(k=1e39), "top_fraction 0": dict(top_fraction=0.0),
           "top_fraction < 0": dict(top_fraction=-0.1),
           "top_fraction > 1": dict(top_fraction=1.0 + 1e-12), "top_fraction nan": dict(top_fraction=math.nan),
       }.items()},
    # logit scales <= 0, and values whose results float32 cannot hold
    "logprob scale 0": (lambda: LOGPROB(scale=0.0), era.BadParameterError),
    "logprob scale -0.0": (lambda: LOGPROB(scale=-0.0), era.BadParameterError),
    "logprob scale < 0": (lambda: LOGPROB(scale=-1.0), era.BadParameterError),
    "logprob backward scale 0": (lambda: LOGPROB(scale=0.0, backward=True), era.BadParameterError),
    "logprob overflow": (lambda: LOGPROB(scale=1e10, z=1e30), era.BadParameterError),
    "logprob overflow at s = 1": (lambda: LOGPROB(scale=1.0, z=3.4e38), era.BadParameterError),
    "gradient overflow": (lambda: LOGPROB(scale=1e30, grad=1e10, backward=True), era.BadParameterError),
    "advantage overflow": (lambda: era.llm_scales(np.array([5.0], np.float32), np.zeros(2, np.int64),
                                                  np.array([3e38, 1.0], np.float32), k=2.0), era.BadParameterError),
    # infeasible targets
    "continuous infeasible": (lambda: era.continuous_forward(np.zeros((2, 3)), 10.0), era.InfeasibleTargetError),
    "continuous infeasible via residual": (lambda: era.continuous_forward(np.zeros((2, 3)), 4.0, residual=0.3),
                                           era.InfeasibleTargetError),
    "continuous infeasible check": (lambda: era.check_continuous(np.zeros((2, 3)), 10.0), era.InfeasibleTargetError),
    "continuous infeasible backward": (lambda: era.continuous_backward(np.zeros((2, 3)), np.zeros((2, 3)), 10.0),
                                       era.InfeasibleTargetError),
}


@props(80)
@given(st.sampled_from(sorted(BAD_PARAMETER_CALLS)))
def test_bad_parameters_and_infeasible_targets(case):
    call, cls = BAD_PARAMETER_CALLS[case]
    raises(cls, call)


@props(40)
@given(st.data())
def test_bad_indices_raise_bad_index_error(data):
    arrays = good_arrays()
    name = data.draw(st.sampled_from(["llm_logprob_forward", "llm_logprob_backward", "llm_response_entropy",
                                      "llm_scales"]))
    position = data.draw(st.integers(0, 5))
    if name.startswith("llm_logprob"):
        what = data.draw(st.sampled_from(["below", "above", "huge", "masked"]))
        labels = arrays["labels"].copy()
        z = arrays["z"].copy()
        if what == "masked":
            z.reshape(-1, COLS)[position, labels.reshape(-1)[position]] = -np.inf
        else:
            labels.reshape(-1)[position] = {"below": -1, "above": COLS, "huge": 2**62}[what]
        new = replace(arrays, labels=labels, z=z)
    else:
        ids = arrays["ids"].copy()
        ids.reshape(-1)[position] = data.draw(st.sampled_from([-2, RESPONSES, -(2**62), 2**62]))
        new = replace(arrays, ids=ids)
    snap = snapshot(*new.values())
    raises(era.BadIndexError, api_call, name, new)
    assert_unchanged(snap)


# ---------------------------------------------------------------------------------------
# The raw module: a refused call writes nothing (sentinels stay), whatever the fault's place

SENTINEL = 12345.0


def sentinels(*shapes_dtypes):
    return [np.full(shape, SENTINEL, dtype) for shape, dtype in shapes_dtypes]


def raw_call(name, rows, cols, dtype, x, outs):
    """The _era call of `name` on rows x cols input `x` (the faulty array) and sentinel outputs."""
    ones = np.ones(rows * cols, dtype)
    lab = np.zeros(rows, np.int64)
    return {
        "softmax_entropy": lambda: _era.softmax_entropy(rows, cols, x, outs[0]),
        "gaussian_entropy": lambda: _era.gaussian_entropy(rows, cols, x, outs[0]),
        "tanh_gaussian_entropy": lambda: _era.tanh_gaussian_entropy(rows, cols, ones, x, outs[0]),
        "truncated_normal_entropy": lambda: _era.truncated_normal_entropy(rows, cols, x, ones, -1.0, 1.0, outs[0]),
        "continuous_forward": lambda: _era.continuous_forward(-30.0, 0.0, -8.0, 0.0, rows, cols, x, outs[0]),
        "continuous_backward": lambda: _era.continuous_backward(-30.0, 0.0, -8.0, 0.0, rows, cols, ones, x, outs[0],
                                                                outs[1]),
        "discrete_forward": lambda: _era.discrete_forward(0.5, 4.0, 0, rows, cols, x, outs[0]),
        "discrete_backward": lambda: _era.discrete_backward(0.5, 4.0, 0, rows, cols, ones, x, outs[0]),
        "token_entropy": lambda: _era.token_entropy(rows, cols, x, outs[0]),
        "llm_logprob_forward": lambda: _era.llm_logprob_forward(rows, cols, x, lab, None, outs[0], outs[1]),
        "llm_logprob_backward": lambda: _era.llm_logprob_backward(rows, cols, x, lab, None, np.ones(rows, np.float32),
                                                                  outs[0]),
    }[name]()


RAW_OUTPUTS = {
    "softmax_entropy": lambda r, c, d: [((r,), d)],
    "gaussian_entropy": lambda r, c, d: [((r,), d)],
    "tanh_gaussian_entropy": lambda r, c, d: [((r,), d)],
    "truncated_normal_entropy": lambda r, c, d: [((r,), d)],
    "continuous_forward": lambda r, c, d: [((r * c,), d)],
    "continuous_backward": lambda r, c, d: [((r * c,), d), ((r,), d)],
    "discrete_forward": lambda r, c, d: [((r * c,), d)],
    "discrete_backward": lambda r, c, d: [((r * c,), d)],
    "token_entropy": lambda r, c, d: [((r,), F64 if d == F64 else F32)],
    "llm_logprob_forward": lambda r, c, d: [((r,), F32), ((r,), F32)],
    "llm_logprob_backward": lambda r, c, d: [((r * c,), d)],
}


@props(60)
@given(st.data())
def test_raw_module_writes_nothing_on_error(data):
    name = data.draw(st.sampled_from(sorted(RAW_OUTPUTS)))
    llm = name.startswith("llm")
    dtype = F32 if llm else data.draw(st.sampled_from(FLOATS))
    rows = data.draw(st.sampled_from([1, 3, 2000]) | st.integers(1, 50))  # 2000 rows: split between threads
    cols = data.draw(st.integers(2, 9))
    x = np.random.default_rng(rows * cols).normal(size=rows * cols).astype(dtype)
    where = data.draw(st.sampled_from(["last", "first", "any"]))
    position = {"last": x.size - 1, "first": 0, "any": data.draw(st.integers(0, x.size - 1))}[where]
    fault = data.draw(st.sampled_from(["nan", "inf"] + (["label masked"] if llm else [])))
    expected = _era.STATUS["NON_FINITE"]
    if fault == "label masked":
        x[(position // cols) * cols] = -np.inf  # the label of every row is 0
        expected = _era.STATUS["BAD_INDEX"]
    else:
        x[position] = np.nan if fault == "nan" else np.inf
    before = x.copy()
    outs = sentinels(*RAW_OUTPUTS[name](rows, cols, dtype))
    assert raw_call(name, rows, cols, dtype, x, outs) == expected
    for out in outs:
        assert np.all(out == SENTINEL)
    assert before.tobytes() == x.tobytes()


# ---------------------------------------------------------------------------------------
# era.torch: the same values as the numpy level, the same exception classes

try:
    import torch
    import era.torch as et
except ImportError:  # pragma: no cover - torch is part of the test environment
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

TORCH_FUNCTIONS = ["discrete", "continuous", "softmax", "gaussian", "token", "tanh", "truncated", "logprob"]


def torch_pair(name, x, y, labels):
    """(numpy-level call, era.torch call taking a backend) of one function on numpy inputs."""
    if name == "discrete":
        h0 = inside(*discrete_range(x.shape[-1], 4.0, "tight"), 0.5)
        return (lambda: era.discrete_forward(x, h0, mode="tight"),
                lambda t, b: et.discrete_era(t(x), h0, mode="tight", backend=b))
    if name == "continuous":
        return (lambda: era.continuous_forward(x, -2.0, residual=0.25),
                lambda t, b: et.continuous_era(t(x), -2.0, residual=0.25, backend=b))
    if name == "softmax":
        return lambda: era.softmax_entropy(x), lambda t, b: et.softmax_entropy(t(x), backend=b)
    if name == "gaussian":
        return lambda: era.gaussian_entropy(x), lambda t, b: et.gaussian_entropy(t(x), backend=b)
    if name == "token":
        return lambda: era.token_entropy(x), lambda t, b: et.token_entropy(t(x), backend=b)
    if name == "tanh":
        return lambda: era.tanh_gaussian_entropy(y, x), lambda t, b: et.tanh_gaussian_entropy(t(y), t(x))
    if name == "truncated":
        return (lambda: era.truncated_normal_entropy(y, x, -1.0, 2.0),
                lambda t, b: et.truncated_normal_entropy(t(y), t(x), -1.0, 2.0))
    return (lambda: era.llm_logprob_forward(x, labels),
            lambda t, b: et.llm_logprob(t(x), torch.from_numpy(labels), backend=b))


@needs_torch
@props(30)
@given(st.data())
def test_torch_matches_the_numpy_level(data):
    name = data.draw(st.sampled_from(TORCH_FUNCTIONS))
    dtype = F32 if name == "logprob" else data.draw(st.sampled_from(FLOATS))
    min_cols = 2 if name == "discrete" else 1
    shape = data.draw(shapes(min_cols=min_cols, cols=data.draw(st.integers(min_cols, 6)), max_batch_dim=3))
    x = data.draw(arrays(shape, dtype, specials=SMALL_SPECIALS, lo=-6.0, hi=1.0))
    y = data.draw(arrays(shape, dtype, scale=1.0, specials=SMALL_SPECIALS))
    labels = np.zeros(shape[:-1], np.int64)
    want = np.asarray(torch_pair(name, x, y, labels)[0]() if name != "logprob" else
                      torch_pair(name, x, y, labels)[0]().logprob)
    call = torch_pair(name, x, y, labels)[1]
    pick = (lambda r: r[0]) if name == "logprob" else (lambda r: r)
    def transposed(a):
        return torch.from_numpy(np.ascontiguousarray(np.swapaxes(a, 0, -1))).transpose(0, -1)

    for make in (torch.from_numpy, transposed):
        tensors = []

        def t(a, make=make):
            tensors.append((make(a), a.copy()))
            return tensors[-1][0]

        got = pick(call(t, "libera")).detach().numpy()
        assert_same(got, want)  # libera on CPU tensors: the numpy level's very bits
        for tensor, original in tensors:
            assert np.array_equal(tensor.numpy(), original)  # inputs untouched
    if name not in ("tanh", "truncated"):  # those two are libera's only (device tensors go to the CPU)
        native = pick(call(torch.from_numpy, "native")).detach().numpy()
        assert native.shape == want.shape
        tol = 1e-10 if dtype == F64 else 2e-5
        np.testing.assert_allclose(native.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)


@needs_torch
@props(20)
@given(st.data())
def test_torch_gradients_are_the_numpy_backward(data):
    name = data.draw(st.sampled_from(["discrete", "continuous"]))
    dtype = data.draw(st.sampled_from(FLOATS))
    shape = data.draw(shapes(min_cols=2, cols=data.draw(st.integers(2, 6)), max_batch_dim=3))
    x = data.draw(arrays(shape, dtype, specials=SMALL_SPECIALS))
    g = data.draw(arrays(shape, dtype, specials=SMALL_SPECIALS))
    h0 = inside(*discrete_range(shape[-1], 4.0, "exact"), 0.5)
    for backend in ("libera", "native"):
        t = torch.from_numpy(x.copy()).requires_grad_(True)
        out = (et.discrete_era(t, h0, backend=backend) if name == "discrete"
               else et.continuous_era(t, -2.0, backend=backend))
        out.backward(torch.from_numpy(g))
        want = (era.discrete_backward(x, g, h0) if name == "discrete"
                else era.continuous_backward(x, g, -2.0).std_logits)
        if backend == "libera":
            assert_same(t.grad.numpy(), want)
        else:
            tol = 1e-9 if dtype == F64 else 1e-4
            scale = np.abs(want).max() if want.size else 0.0
            np.testing.assert_allclose(t.grad.numpy(), want, rtol=tol, atol=tol * scale + 1e-30)


def torch_bad_cases():
    """(name, numpy-level call, torch call taking a backend) for each kind of bad input."""
    z = np.random.default_rng(2).normal(size=(3, 4))
    nan = z.copy()
    nan[1, 2] = np.nan
    f32 = z.astype(np.float32)
    masked = f32.copy()
    masked[0, 0] = -np.inf
    full = f32.copy()
    full[2] = -np.inf
    plus = f32.copy()
    plus[1, 1] = np.inf
    lab = np.array([0, 1, 2], np.int64)
    T = torch.from_numpy
    cases = [
        ("discrete nan", lambda: era.discrete_forward(nan, 1.0), lambda b: et.discrete_era(T(nan), 1.0, backend=b)),
        ("continuous nan", lambda: era.continuous_forward(nan, -3.0),
         lambda b: et.continuous_era(T(nan), -3.0, backend=b)),
        ("softmax nan", lambda: era.softmax_entropy(nan), lambda b: et.softmax_entropy(T(nan), backend=b)),
        ("gaussian nan", lambda: era.gaussian_entropy(nan), lambda b: et.gaussian_entropy(T(nan), backend=b)),
        ("token nan", lambda: era.token_entropy(nan), lambda b: et.token_entropy(T(nan), backend=b)),
        ("discrete int", lambda: era.discrete_forward(z.astype(np.int64), 1.0),
         lambda b: et.discrete_era(T(z.astype(np.int64)), 1.0, backend=b)),
        ("continuous int", lambda: era.continuous_forward(z.astype(np.int32), -3.0),
         lambda b: et.continuous_era(T(z.astype(np.int32)), -3.0, backend=b)),
        ("softmax empty row", lambda: era.softmax_entropy(z[:, :0]),
         lambda b: et.softmax_entropy(T(z[:, :0].copy()), backend=b)),
        ("discrete one class", lambda: era.discrete_forward(z[:, :1], 0.5),
         lambda b: et.discrete_era(T(z[:, :1].copy()), 0.5, backend=b)),
        ("discrete scalar", lambda: era.discrete_forward(np.array(1.0), 0.5),
         lambda b: et.discrete_era(torch.tensor(1.0, dtype=torch.float64), 0.5, backend=b)),
        ("discrete tau", lambda: era.discrete_forward(z, 1.0, tau=math.e),
         lambda b: et.discrete_era(T(z), 1.0, tau=math.e, backend=b)),
        ("discrete mode", lambda: era.discrete_forward(z, 1.0, mode="x"),
         lambda b: et.discrete_era(T(z), 1.0, mode="x", backend=b)),
        ("discrete infeasible", lambda: era.discrete_forward(z, 9.0), lambda b: et.discrete_era(T(z), 9.0, backend=b)),
        ("continuous infeasible", lambda: era.continuous_forward(z, 9.0),
         lambda b: et.continuous_era(T(z), 9.0, backend=b)),
        ("continuous residual", lambda: era.continuous_forward(z, -3.0, residual=-1.0),
         lambda b: et.continuous_era(T(z), -3.0, residual=torch.tensor(-1.0), backend=b)),
        ("continuous bounds", lambda: era.continuous_forward(z, -3.0, log_std_min=0.0, log_std_max=-1.0),
         lambda b: et.continuous_era(T(z), -3.0, log_std_min=0.0, log_std_max=-1.0, backend=b)),
        ("logprob label out of range", lambda: era.llm_logprob_forward(f32, lab + 2),
         lambda b: et.llm_logprob(T(f32), T(lab + 2), backend=b)),
        ("logprob label on a mask", lambda: era.llm_logprob_forward(masked, lab),
         lambda b: et.llm_logprob(T(masked), T(lab), backend=b)),
        ("logprob scale 0", lambda: era.llm_logprob_forward(f32, lab, np.zeros(3, np.float32)),
         lambda b: et.llm_logprob(T(f32), T(lab), torch.zeros(3), backend=b)),
        ("logprob scale nan", lambda: era.llm_logprob_forward(f32, lab, np.full(3, np.nan, np.float32)),
         lambda b: et.llm_logprob(T(f32), T(lab), torch.full((3,), math.nan), backend=b)),
        ("logprob fully masked", lambda: era.llm_logprob_forward(full, lab),
         lambda b: et.llm_logprob(T(full), T(lab), backend=b)),
        ("logprob +inf", lambda: era.llm_logprob_forward(plus, lab),
         lambda b: et.llm_logprob(T(plus), T(lab), backend=b)),
        ("logprob float labels", lambda: era.llm_logprob_forward(f32, lab.astype(np.float32)),
         lambda b: et.llm_logprob(T(f32), T(lab.astype(np.float32)), backend=b)),
        ("llm_era id -2", lambda: era.llm_response_entropy(np.ones(3, np.float32), np.array([0, -2, 0]), 1),
         lambda b: et.llm_era(T(f32), T(lab), torch.ones(3), response_ids=torch.tensor([0, -2, 0]), num_responses=1,
                              backend=b)),
        ("llm_era k 0", lambda: era.llm_response_entropy(np.ones(3, np.float32), np.zeros(3, np.int64), 1, k=0.0),
         lambda b: et.llm_era(T(f32), T(lab), torch.ones(3), response_ids=torch.zeros(3, dtype=torch.long),
                              num_responses=1, k=0.0, backend=b)),
    ]
    return cases


@needs_torch
@props(50)
@given(st.integers(0, 24), st.sampled_from(["libera", "native"]))
def test_torch_raises_the_numpy_levels_classes(index, backend):
    name, numpy_call, torch_call = torch_bad_cases()[index]
    with pytest.raises(era.ERAError) as info:
        numpy_call()
    raises(type(info.value), torch_call, backend)


@needs_torch
def test_torch_bad_case_table_is_complete():
    assert len(torch_bad_cases()) == 25


@needs_torch
@props(10)
@given(st.sampled_from(["softmax_entropy", "discrete_forward", "token_entropy"]))
def test_numpy_level_takes_cpu_tensors_and_refuses_device_tensors(name):
    x = torch.randn(3, 4)
    fn = {"softmax_entropy": era.softmax_entropy, "discrete_forward": lambda t: era.discrete_forward(t, 1.0),
          "token_entropy": era.token_entropy}[name]
    assert_same(fn(x), fn(x.numpy()))
    assert_same(fn(x.requires_grad_(True)), fn(x.detach().numpy()))
    # A tensor on another device (meta stands in for CUDA here) is refused, not copied.
    raises(era.DTypeError, fn, torch.empty(3, 4, device="meta"))


# ---------------------------------------------------------------------------------------
# era.jax: the same values as the numpy level on concrete arrays; errors inside jit

try:
    import jax
    import jax.numpy as jnp
    import era.jax as ej
except ImportError:  # pragma: no cover - jax is part of the test environment
    jax = None
needs_jax = pytest.mark.skipif(jax is None, reason="jax is not installed")


def jax_pair(name, x, y, labels, ids, adv):
    """(numpy-level result, era.jax call on jnp arrays) with float32 data (x64-agnostic)."""
    J = jnp.asarray
    if name == "discrete":
        h0 = inside(*discrete_range(x.shape[-1], 4.0, "reference"), 0.5)
        return era.discrete_forward(x, h0, mode="reference"), lambda: ej.discrete_era(J(x), h0, mode="reference")
    if name == "continuous":
        return (era.continuous_forward(x, -2.0, residual=0.5),
                lambda: ej.continuous_era(J(x), -2.0, np.float32(0.5)))
    if name == "softmax":
        return era.softmax_entropy(x), lambda: ej.softmax_entropy(J(x))
    if name == "gaussian":
        return era.gaussian_entropy(x), lambda: ej.gaussian_entropy(J(x))
    if name == "tanh":
        return era.tanh_gaussian_entropy(y, x), lambda: ej.tanh_gaussian_entropy(J(y), J(x))
    if name == "truncated":
        return era.truncated_normal_entropy(y, x), lambda: ej.truncated_normal_entropy(J(y), J(x))
    if name == "token":
        return era.token_entropy(x), lambda: ej.token_entropy(J(x))
    if name == "logprob":
        return (era.llm_logprob_forward(x, labels).logprob,
                lambda: ej.llm_logprob(J(x), J(labels.astype(np.int32)))[0])
    h = era.token_entropy(x).reshape(-1)
    flat_ids = ids.reshape(-1)
    if name == "response entropy":
        return (era.llm_response_entropy(h, flat_ids, 3, top_fraction=0.5),
                lambda: ej.llm_response_entropy(J(h), J(flat_ids.astype(np.int32)), 3, top_fraction=0.5))
    resp = np.array([0.1, 1.0, 5.0], np.float32)
    return (era.llm_scales(resp, flat_ids, adv.reshape(-1)).logit_scale,
            lambda: ej.llm_scales(J(resp), J(flat_ids.astype(np.int32)), J(adv.reshape(-1)))[0])


JAX_FUNCTIONS = ["discrete", "continuous", "softmax", "gaussian", "tanh", "truncated", "token", "logprob",
                 "response entropy", "scales"]


@needs_jax
@props(25)
@given(st.sampled_from(JAX_FUNCTIONS), st.data())
def test_jax_matches_the_numpy_level(name, data):
    shape = data.draw(shapes(min_cols=2, cols=data.draw(st.integers(2, 6)), max_batch_dim=3))
    x = data.draw(arrays(shape, F32, specials=SMALL_SPECIALS, lo=-6.0, hi=1.0))
    y = data.draw(arrays(shape, F32, scale=1.0, specials=SMALL_SPECIALS))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    labels = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int64)
    ids = rng.integers(-1, 3, size=shape[:-1]).astype(np.int64)
    adv = rng.normal(size=shape[:-1]).astype(np.float32)
    want, call = jax_pair(name, x, y, labels, ids, adv)
    snap = snapshot(x, y, labels, ids, adv)
    assert_same(np.asarray(call()), np.asarray(want))
    assert_unchanged(snap)


@needs_jax
@pytest.mark.parametrize("name", ["discrete", "continuous", "softmax", "token", "logprob"])
def test_jax_jit_matches_the_numpy_level(name):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 3, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=(2, 3)).astype(np.int32)
    fn = {
        "discrete": lambda a: ej.discrete_era(a, 1.0),
        "continuous": lambda a: ej.continuous_era(a, -2.0),
        "softmax": ej.softmax_entropy,
        "token": ej.token_entropy,
        "logprob": lambda a: ej.llm_logprob(a, labels)[0],
    }[name]
    assert_same(np.asarray(jax.jit(fn)(jnp.asarray(x))), np.asarray(fn(jnp.asarray(x))))


def jax_bad_cases():
    """(name, class, call taking jit or not) for each kind of bad input."""
    z = np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32)
    nan = z.copy()
    nan[1, 1] = np.nan
    masked = z.copy()
    masked[0, 0] = -np.inf
    lab = np.array([0, 1, 2], np.int32)
    J = jnp.asarray

    def run(fn, *args):
        return lambda jit: (jax.jit(fn) if jit else fn)(*[J(a) for a in args])

    return [
        # data errors: the class on concrete arrays, JAX's runtime error inside jit
        ("discrete nan", era.NonFiniteError, run(lambda a: ej.discrete_era(a, 1.0), nan)),
        ("continuous nan", era.NonFiniteError, run(lambda a: ej.continuous_era(a, -3.0), nan)),
        ("continuous residual < 0", era.BadParameterError, run(lambda a, r: ej.continuous_era(a, -3.0, r), z,
                                                               np.float32(-1.0))),
        ("softmax nan", era.NonFiniteError, run(ej.softmax_entropy, nan)),
        ("logprob label out of range", era.BadIndexError, run(ej.llm_logprob, z, lab + 2)),
        ("logprob label on a mask", era.BadIndexError, run(ej.llm_logprob, masked, lab)),
        ("logprob scale 0", era.BadParameterError, run(ej.llm_logprob, z, lab, np.zeros(3, np.float32))),
        ("response id 3 of 3", era.BadIndexError,
         run(lambda h, i: ej.llm_response_entropy(h, i, 3), np.ones(3, np.float32), np.array([0, 3, 1], np.int32))),
    ]


JAX_STATIC_CASES = {
    # parameter, dtype and shape errors: raised when the function is called or traced, jit or not
    "discrete tau": (era.BadParameterError, lambda a: ej.discrete_era(a, 1.0, tau=2.0)),
    "discrete mode": (era.BadParameterError, lambda a: ej.discrete_era(a, 1.0, mode="x")),
    "discrete infeasible": (era.InfeasibleTargetError, lambda a: ej.discrete_era(a, 9.0)),
    "discrete one class": (era.BadShapeError, lambda a: ej.discrete_era(a[:, :1], 0.5)),
    "continuous infeasible": (era.InfeasibleTargetError, lambda a: ej.continuous_era(a, 9.0)),
    "continuous bounds": (era.BadParameterError, lambda a: ej.continuous_era(a, -3.0, log_std_min=1.0,
                                                                            log_std_max=0.0)),
    "int logits": (era.DTypeError, lambda a: ej.softmax_entropy(a.astype(jnp.int32))),
    "float labels": (era.DTypeError, lambda a: ej.llm_logprob(a, jnp.zeros(3))),
    "scalar": (era.BadShapeError, lambda a: ej.softmax_entropy(a[0, 0])),
    "k 0": (era.BadParameterError, lambda a: ej.llm_scales(jnp.ones(1), jnp.zeros(3, jnp.int32), a[:, 0], k=0.0)),
}


@needs_jax
@props(16)
@given(st.integers(0, 7), st.booleans())
def test_jax_data_errors(index, jit):
    name, cls, call = jax_bad_cases()[index]
    if not jit:
        raises(cls, call, False)
        return
    with pytest.raises(Exception) as info:
        call(True)
    # Inside jit the callback's exception surfaces as JAX's runtime error, with era's message.
    assert isinstance(info.value, jax.errors.JaxRuntimeError) and isinstance(info.value, RuntimeError)
    assert _era.status_string(cls.status) in str(info.value) and cls.__name__ in str(info.value)


@needs_jax
@props(20)
@given(st.sampled_from(sorted(JAX_STATIC_CASES)), st.booleans())
def test_jax_static_errors(name, jit):
    cls, fn = JAX_STATIC_CASES[name]
    z = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32))
    raises(cls, jax.jit(fn) if jit else fn, z)


# ---------------------------------------------------------------------------------------
# Regressions of bugs fixed in libera and in the Python layers (a bug found and not yet fixed
# would be a strict xfail here, so that the day it is fixed its marker must go)


def test_continuous_k_overflow_is_refused():
    s = np.array([[0.0, 50.0]])
    with pytest.raises(era.BadParameterError):  # K = 0 - 2c - 2e308 = -inf broke the floor
        era.continuous_forward(s, 0.0, log_std_max=1e308)


def test_continuous_bounds_beyond_1e4_are_refused():
    # With log std bounds of +-1e10 the rounding of log_std_max + K*w missed the floor by 2e-6.
    with pytest.raises(era.BadParameterError):
        era.continuous_forward(np.array([[0.0, 3.0]]), -3.0, log_std_min=-1e10, log_std_max=1e10)


@pytest.mark.parametrize("loc, log_std, lo, hi, want", [
    (1e16, 0.0, -1.0, 1.0, 1 - math.log(1e16 - 1)),  # exponential tail: entropy 1 + log(sd^2/d)
    (-1e30, 0.0, -1.0, 1.0, 1 - math.log(1e30)),
    (0.0, 0.0, 0.0, 1e-300, math.log(1e-300)),  # nearly uniform on [0, w]: entropy log(w)
])
def test_truncated_normal_far_from_the_interval_is_finite(loc, log_std, lo, hi, want):
    out = float(era.truncated_normal_entropy(np.array([loc]), np.array([log_std]), lo, hi))
    assert out == pytest.approx(want, abs=1e-3)


@pytest.mark.parametrize("loc, log_std, lo, hi, want", [
    (0.0, 0.0, 0.0, 1e-12, math.log(1e-12)),  # was -27.63096 instead of -27.63102
    (0.0, 0.0, 0.0, 1e-17, math.log(1e-17)),  # was -8e16 instead of -39.1
    (0.0, 25.0, 0.0, 1.0, 0.0),  # was 6.6e-6 instead of 4e-46
    (0.0, 40.0, 0.0, 1.0, 0.0),  # was -1.9e17 instead of 5e-45
])
def test_truncated_normal_narrow_interval(loc, log_std, lo, hi, want):
    out = float(era.truncated_normal_entropy(np.array([loc]), np.array([log_std]), lo, hi))
    assert out == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("dtype", [F32, BF16])
def test_logprob_backward_ties_at_huge_logits(dtype):
    z = np.array([[1e30, 1e30, 0.0]], np.float32).astype(dtype)
    grad = era.llm_logprob_backward(z, np.array([2], np.int64), None, np.ones(1, np.float32))
    np.testing.assert_allclose(as_float64(grad), [[-0.5, -0.5, 1.0]], atol=1e-6)  # was [-1, -1, 1]


@needs_torch
@pytest.mark.parametrize("name", ["softmax", "gaussian", "token", "tanh", "truncated"])
def test_torch_entropy_of_one_row_is_0d(name):
    x = torch.randn(5)
    out = {"softmax": lambda: et.softmax_entropy(x), "gaussian": lambda: et.gaussian_entropy(x),
           "token": lambda: et.token_entropy(x), "tanh": lambda: et.tanh_gaussian_entropy(x, x),
           "truncated": lambda: et.truncated_normal_entropy(x, x)}[name]()
    assert out.shape == ()


@needs_torch
@pytest.mark.parametrize("case", ["logprob", "advantage", "gradient"])
def test_torch_native_refuses_float32_overflow_as_libera(case):
    # Fixed: the native (CUDA) path returned -inf/NaN log-probs, inf advantages and inf
    # gradients where libera raises BadParameterError.
    def run(backend):
        if case == "logprob":
            return et.llm_logprob(torch.tensor([[0.0, 1e30]]), torch.tensor([0]), torch.tensor([1e10]), backend=backend)
        if case == "advantage":
            return et.llm_era(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([3e38, 1.0]),
                              response_ids=torch.tensor([0, 0]), num_responses=1, omega_low=0.1, omega_high=0.5,
                              backend=backend)
        x = torch.zeros(1, 3, requires_grad=True)
        logprob, _ = et.llm_logprob(x, torch.tensor([0]), torch.tensor([1e30]), backend=backend)
        (logprob * 1e10).sum().backward()
        return x.grad

    raises(era.BadParameterError, run, "libera")
    raises(era.BadParameterError, run, "native")


def torch_outputs_with_a_backward(function, backend):
    """(the input whose gradient is asked for, an output) of each era.torch function that
    has a backward: the activations, the log-prob passes and the fused linear heads."""
    x = torch.zeros(2, 3, requires_grad=True)
    w = torch.ones(5, 3, requires_grad=True)
    mask = torch.ones(2, 3, dtype=torch.bool)
    out = {
        "llm_logprob": lambda: et.llm_logprob(x, torch.tensor([0, 2]), backend=backend)[0],
        "llm_logprob scaled": lambda: et.llm_logprob(x, torch.tensor([0, 2]), torch.tensor([0.5, 2.0]),
                                                     backend=backend)[0],
        "discrete_era": lambda: et.discrete_era(x, 1.0, backend=backend),
        "continuous_era": lambda: et.continuous_era(x, -3.0, backend=backend),
        "continuous_era residual": lambda: et.continuous_era(x, -3.0, residual=torch.tensor(0.1, requires_grad=True),
                                                             backend=backend),
        "llm_era": lambda: et.llm_era(x.unsqueeze(-1).expand(2, 3, 4), torch.zeros(2, 3, dtype=torch.long),
                                      torch.tensor([1.0, -1.0]), response_mask=mask, backend=backend).logprobs,
        "llm_linear_logprob": lambda: et.llm_linear_logprob(x, w, torch.tensor([0, 4]), backend=backend)[0],
        "llm_linear_era": lambda: et.llm_linear_era(x.unsqueeze(1).expand(2, 3, 3), w,
                                                    torch.zeros(2, 3, dtype=torch.long), torch.tensor([1.0, -1.0]),
                                                    response_mask=mask, backend=backend).logprobs,
        "linear_discrete_ce": lambda: et.linear_discrete_ce(x, w, torch.zeros(5), torch.tensor([0, 4]), 1.0,
                                                            backend=backend),
    }[function]()
    return x, out


BACKWARD_FUNCTIONS = ["llm_logprob", "llm_logprob scaled", "discrete_era", "continuous_era", "continuous_era residual",
                      "llm_era", "llm_linear_logprob", "llm_linear_era", "linear_discrete_ce"]


@needs_torch
@pytest.mark.parametrize("upstream", [math.nan, math.inf])
@pytest.mark.parametrize("backend", ["libera", "native"])
@pytest.mark.parametrize("function", BACKWARD_FUNCTIONS)
def test_torch_backward_refuses_a_non_finite_upstream_gradient(function, backend, upstream):
    # Fixed: the native path passed NaN upstream gradients through where libera raises; the
    # fused heads' device path then named the weight gradient's NaN an overflow
    # (BadParameterError), and linear_discrete_ce scaled its gradients by any upstream value.
    x, out = torch_outputs_with_a_backward(function, backend)
    gradient = torch.ones_like(out)
    gradient.view(-1)[-1] = upstream
    with pytest.raises(era.NonFiniteError):
        out.backward(gradient)
    assert x.grad is None


@needs_torch
@pytest.mark.parametrize("function", BACKWARD_FUNCTIONS)
def test_torch_device_path_defers_a_non_finite_upstream_gradient(function):
    # Deferred (the CUDA default, here forced on CPU): no raise in backward(), NaN in the
    # gradient, and the right class from check_device_errors.
    et.set_device_checks("deferred")
    try:
        x, out = torch_outputs_with_a_backward(function, "native")
        gradient = torch.ones_like(out)
        gradient.view(-1)[-1] = math.nan
        out.backward(gradient)
        assert torch.isnan(x.grad).any()
        with pytest.raises(era.NonFiniteError, match="deferred device check"):
            et.check_device_errors()
    finally:
        et.set_device_checks("auto")
        et.check_device_errors()


@needs_torch
@pytest.mark.parametrize("backend", ["libera", "native"])
def test_torch_linear_discrete_ce_refuses_an_overflowing_gradient(backend):
    # A finite upstream gradient whose product with the saved gradients overflows float32:
    # BadParameterError, as libera's log-prob backward refuses an overflowing g * s.
    features = torch.full((2, 3), 100.0, requires_grad=True)  # weight gradients of about 40
    weight = torch.full((4, 3), 0.01, requires_grad=True)
    loss = et.linear_discrete_ce(features, weight, None, torch.tensor([0, 1]), 1.0, backend=backend)
    with pytest.raises(era.BadParameterError):
        loss.backward(torch.tensor(3e38))
    assert features.grad is None and weight.grad is None
    loss = et.linear_discrete_ce(features, weight, None, torch.tensor([0, 1]), 1.0, backend=backend)
    loss.backward(torch.tensor(1e30))  # large, but the products fit
    assert torch.isfinite(features.grad).all() and torch.isfinite(weight.grad).all()


@needs_torch
@pytest.mark.parametrize("backend", ["libera", "native"])
def test_torch_continuous_log_std_max_beyond_float32_is_refused(backend):
    # libera refuses log std bounds outside [-1e4, 1e4]; the native path checks its parameters there too.
    with pytest.raises(era.BadParameterError):
        et.continuous_era(torch.tensor([[0.0, 3.0]]), -3.0, log_std_max=1e39, backend=backend)


@needs_jax
@pytest.mark.parametrize("fn", ["response_entropy", "scales"])
def test_jax_response_id_below_minus_one_is_refused(fn):
    ids = jnp.asarray([0, -2, 0])
    with pytest.raises(era.BadIndexError):
        if fn == "response_entropy":
            ej.llm_response_entropy(jnp.ones(3, jnp.float32), ids, 1)
        else:
            ej.llm_scales(jnp.asarray([0.1], jnp.float32), ids, jnp.ones(3, jnp.float32))


@needs_jax
@pytest.mark.parametrize("fn", ["response_entropy", "scales"])
def test_jax_float_response_ids_are_refused(fn):
    ids = jnp.asarray([0.7, 1.9])
    with pytest.raises(era.DTypeError):
        if fn == "response_entropy":
            ej.llm_response_entropy(jnp.ones(2, jnp.float32), ids, 2)
        else:
            ej.llm_scales(jnp.asarray([0.1, 5.0], jnp.float32), ids, jnp.ones(2, jnp.float32))


@needs_jax
@pytest.mark.parametrize("fn", ["response_entropy", "scales"])
def test_jax_vmap_out_of_range_id_is_refused(fn):
    ids = jnp.asarray([[0, 1], [0, 0]])  # example 0 uses id 1 with one response
    with pytest.raises((era.BadIndexError, jax.errors.JaxRuntimeError)):
        if fn == "response_entropy":
            h = jnp.asarray([[1.0, 2.0], [10.0, 20.0]], jnp.float32)
            jax.block_until_ready(jax.vmap(lambda a, b: ej.llm_response_entropy(a, b, 1))(h, ids))
        else:
            resp = jnp.asarray([[0.1], [5.0]], jnp.float32)
            jax.block_until_ready(jax.vmap(ej.llm_scales)(resp, ids, jnp.ones((2, 2), jnp.float32)))


@needs_jax
def test_jax_llm_era_empty_vocabulary_is_refused():
    ids = jnp.zeros(3, jnp.int32)
    raises(era.BadShapeError, ej.llm_era, jnp.zeros((3, 0), jnp.float32), ids, jnp.ones(3, jnp.float32),
           response_ids=ids, num_responses=1)
