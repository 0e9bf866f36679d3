"""Continuous ERA through era (numpy level) against the float64 reference (docs/math.md section 1)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import era
import reference as ref


def test_library_defaults_match_python_defaults():
    defaults = era._era.continuous_defaults()
    assert math.isnan(defaults["target_entropy"])
    assert defaults["residual"] == 0.0
    assert (defaults["log_std_min"], defaults["log_std_max"]) == (era.continuous.LOG_STD_MIN, era.continuous.LOG_STD_MAX)


@pytest.mark.parametrize("residual", [0.0, 0.7])
def test_forward_matches_reference_float64(rng, residual):
    s = rng.normal(size=(2, 5, 4)) * 2
    out = era.continuous_forward(s, -2.0, residual=residual)
    assert out.shape == s.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, ref.continuous_forward(s, -2.0, residual), rtol=1e-13, atol=1e-13)


def test_forward_float32_rounds_up_and_keeps_the_floor(rng):
    s = (rng.normal(size=(64, 6)) * 3).astype(np.float32)
    out = era.continuous_forward(s, -3.0, residual=0.25)
    exact = ref.continuous_forward(s, -3.0, 0.25)
    assert out.dtype == np.float32
    assert np.all(out.astype(np.float64) >= exact)  # rounded towards +inf
    np.testing.assert_allclose(out, exact, rtol=1e-6, atol=1e-6)
    assert np.all(ref.gaussian_entropy(out) >= -3.0 + 0.25)


def test_forward_clips_at_log_std_min():
    # A very negative target with a peaked softmax drives one entry below the clip.
    s = np.array([[10.0, 0.0, 0.0]])
    out = era.continuous_forward(s, -30.0, log_std_min=-5.0, log_std_max=0.0)
    assert out.min() == -5.0
    np.testing.assert_allclose(out, ref.continuous_forward(s, -30.0, log_std_min=-5.0), rtol=1e-14)


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=st.floats(-20, 20)),
    st.floats(-12, 0),
    st.floats(0, 2),
)
def test_guarantee_holds(s, target, residual):
    dim = s.shape[-1]
    target = target * dim / 6 - residual  # keep K <= 0 for every dim
    out = era.continuous_forward(s, target, residual=residual)
    assert np.all(ref.gaussian_entropy(out) >= target + residual - 1e-10)
    assert np.all((out >= -8.0) & (out <= 0.0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_matches_reference(rng, dtype):
    s = (rng.normal(size=(3, 4)) * 2).astype(dtype)
    g = rng.normal(size=(3, 4)).astype(dtype)
    grads = era.continuous_backward(s, g, -1.0, residual=0.3)
    want_s, want_r = ref.continuous_backward(s, g, -1.0, 0.3)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(grads.std_logits, want_s, rtol=tol, atol=tol)
    np.testing.assert_allclose(grads.residual, want_r, rtol=tol, atol=tol)
    assert grads.residual.shape == (3,)
    assert era.continuous_backward(s, g, -1.0, residual_grad=False).residual is None


def test_backward_matches_finite_differences(rng):
    s = rng.normal(size=(2, 3))
    weights, numeric = ref.central_difference(lambda x: ref.continuous_forward(x, -1.5, 0.2), s)
    grads = era.continuous_backward(s, weights, -1.5, residual=0.2)
    np.testing.assert_allclose(grads.std_logits, numeric, rtol=1e-6, atol=1e-8)
    # dL/d(residual): differentiate the forward in the residual.
    eps = 1e-6
    up = (era.continuous_forward(s, -1.5, residual=0.2 + eps) * weights).sum(axis=-1)
    down = (era.continuous_forward(s, -1.5, residual=0.2 - eps) * weights).sum(axis=-1)
    np.testing.assert_allclose(grads.residual, (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_backward_zero_where_clipped():
    s = np.array([[10.0, 0.0, 0.0]])
    g = np.array([[1.0, 0.0, 0.0]])  # only the clipped entry has a cotangent
    grads = era.continuous_backward(s, g, -30.0, log_std_min=-5.0)
    np.testing.assert_array_equal(grads.std_logits, np.zeros((1, 3)))
    assert grads.residual[0] == 0.0


WIDE_BOUNDS = [(-1e4, 1e4), (-1e3, 1e3), (-1e4, 0.0), (-8.0, 1e4), (-1e4, -9999.0), (9990.0, 1e4), (-20.0, 0.0)]


@pytest.mark.parametrize("bounds", WIDE_BOUNDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_floor_holds_at_wide_legal_bounds(bounds, dtype):
    # Adversarial scan over the legal parameter range (bounds within +-1e4): targets from the
    # top of the feasible range (K = 0) down to the bottom, D up to 5000, inputs from nearly
    # uniform to one-hot. With log-std bounds of +-1e4 and D of 1000-5000 the float64 rows used
    # to miss the target by up to 1.6e-7 nats. The floor is checked with an exact sum
    # (math.fsum) of the stored log stds and with era.check_continuous at the spec's tolerance.
    lo, hi = bounds
    tol = 1e-10 if dtype == np.float64 else 1e-5
    rng = np.random.default_rng(int(abs(lo) + abs(hi)))
    c = 0.5 * math.log(2 * math.pi * math.e)
    worst = -math.inf
    for d in (1, 7, 1000, 5000):
        for fraction in (0.0, 1e-12, 1e-3, 0.3, 0.5, 0.9, 0.999, 1 - 1e-12):
            residual = 0.0 if fraction < 0.5 else 0.25
            # K = H0 + delta - D c - D hi runs from 0 (fraction 0) to D (lo - hi) (fraction 1).
            target = d * (hi + c) + fraction * d * (lo - hi) - residual
            s = np.concatenate([rng.normal(size=(2, d)) * scale for scale in (0.1, 3.0, 30.0, 300.0)]
                               + [np.eye(1, d) * 50.0, np.zeros((1, d))]).astype(dtype)
            try:
                log_std = era.continuous_forward(s, target, residual=residual, log_std_min=lo, log_std_max=hi)
            except era.InfeasibleTargetError:
                # only a target within its own rounding of the top of the range (the largest
                # entropy the bounds allow) may turn out infeasible
                assert (d * (hi + c) - target) <= 4 * np.spacing(abs(target)), (d, fraction)
                continue
            assert np.all(log_std >= dtype(lo)) and np.all(log_std <= dtype(hi))
            floor = target + residual
            for row in log_std.astype(np.float64):
                # the exact sum of the stored values, D c and -floor, rounded once
                worst = max(worst, -math.fsum([*row, d * c, -floor]))
            report = era.check_continuous(log_std, target, residual=residual, log_std_min=lo, log_std_max=hi, tol=tol)
            assert report.violations == 0, (d, fraction, report)
    assert worst <= tol, worst
