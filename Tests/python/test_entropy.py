"""The entropy functions against plain float64 references (docs/math.md sections 1, 4)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import era
import reference as ref


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_softmax_entropy_matches_reference(rng, dtype, rtol):
    z = (rng.normal(size=(3, 4, 7)) * 3).astype(dtype)
    out = era.softmax_entropy(z)
    assert out.shape == (3, 4) and out.dtype == dtype
    np.testing.assert_allclose(out, ref.softmax_entropy(z), rtol=rtol, atol=rtol)


def test_softmax_entropy_extremes():
    # A uniform row has entropy log D; a near one-hot row almost 0; huge spreads stay finite.
    z = np.array([[0.0] * 5, [1000.0, 0, 0, 0, 0], [1e300, -1e300, 0, 0, 0]])
    out = era.softmax_entropy(z)
    np.testing.assert_allclose(out[0], math.log(5), rtol=1e-15)
    assert 0 <= out[1] < 1e-300
    assert np.isfinite(out[2]) and out[2] >= 0


@given(st.lists(st.floats(-50, 50), min_size=1, max_size=12))
def test_softmax_entropy_property(values):
    z = np.array(values)
    h = float(era.softmax_entropy(z))
    assert -1e-12 <= h <= math.log(len(values)) + 1e-12
    assert h == pytest.approx(float(ref.softmax_entropy(z)), abs=1e-11)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-6)])
def test_gaussian_entropy_matches_reference(rng, dtype, rtol):
    log_std = rng.uniform(-3, 1, size=(5, 6)).astype(dtype)
    np.testing.assert_allclose(era.gaussian_entropy(log_std), ref.gaussian_entropy(log_std), rtol=rtol, atol=rtol)


def test_gaussian_entropy_of_standard_normal():
    assert float(era.gaussian_entropy(np.zeros(3))) == pytest.approx(3 * 0.5 * math.log(2 * math.pi * math.e), rel=1e-15)


@pytest.mark.parametrize(
    "mean, std, penalty",
    # The spec's per-dimension penalties E log(1 - tanh^2(x)) (docs/math.md section 1).
    [(0.0, 0.1, -0.00995), (0.0, 1.0, -0.7491), (1.0, 0.5, -0.9792), (2.0, 1.0, -2.7856)],
)
def test_tanh_gaussian_entropy_spec_values(mean, std, penalty):
    log_std = math.log(std)
    h = float(era.tanh_gaussian_entropy(np.array([mean]), np.array([log_std])))
    assert h - (log_std + ref.GAUSS_C) == pytest.approx(penalty, abs=6e-5)


def test_tanh_gaussian_entropy_matches_quadrature(rng):
    mean = rng.uniform(-3, 3, size=(4, 3))
    log_std = rng.uniform(math.log(0.05), math.log(4.0), size=(4, 3))
    np.testing.assert_allclose(era.tanh_gaussian_entropy(mean, log_std), ref.tanh_gaussian_entropy(mean, log_std),
                               atol=2e-7)


def test_tanh_gaussian_entropy_against_monte_carlo(rng):
    mean, log_std = np.array([0.3, -1.2]), np.array([-0.5, 0.4])
    x = mean + np.exp(log_std) * rng.normal(size=(400000, 2))
    mc = (log_std + ref.GAUSS_C).sum() + np.log1p(-np.tanh(x) ** 2).sum(axis=1).mean()
    assert float(era.tanh_gaussian_entropy(mean, log_std)) == pytest.approx(mc, abs=1e-2)


def test_tanh_gaussian_entropy_float32(rng):
    mean = rng.uniform(-1, 1, size=(3, 2)).astype(np.float32)
    log_std = rng.uniform(-2, 0, size=(3, 2)).astype(np.float32)
    out = era.tanh_gaussian_entropy(mean, log_std)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.tanh_gaussian_entropy(mean, log_std), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (0.0, 3.0), (-5.0, -2.0)])
def test_truncated_normal_entropy_matches_reference(rng, lo, hi):
    loc = rng.uniform(-1, 1, size=(4, 3))
    log_std = rng.uniform(-2, 1, size=(4, 3))
    np.testing.assert_allclose(
        era.truncated_normal_entropy(loc, log_std, lo, hi), ref.truncated_normal_entropy(loc, log_std, lo, hi),
        rtol=1e-9, atol=1e-10,
    )


def test_truncated_normal_wide_interval_is_gaussian():
    # Truncation far out in the tails changes nothing measurable.
    h = float(era.truncated_normal_entropy(np.array([0.2]), np.array([-1.0]), -50.0, 50.0))
    assert h == pytest.approx(-1.0 + ref.GAUSS_C, abs=1e-12)
