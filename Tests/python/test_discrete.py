"""Discrete ERA through era (numpy level) against the float64 reference (docs/math.md section 2)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import era
import reference as ref

MODES = ["exact", "tight", "reference"]


def test_library_defaults_match_python_defaults():
    defaults = era._era.discrete_defaults()
    assert math.isnan(defaults["target_entropy"])
    assert defaults["tau"] == era.discrete.TAU
    assert defaults["mode"] == era.discrete.MODES["exact"]


@pytest.mark.parametrize("mode", MODES)
def test_forward_matches_reference(rng, mode):
    z = rng.normal(size=(3, 2, 10)) * 3
    out = era.discrete_forward(z, 1.0, mode=mode)
    assert out.shape == z.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, ref.discrete_forward(z, 1.0, mode=mode), rtol=1e-12, atol=1e-12)


def test_forward_float32(rng):
    z = (rng.normal(size=(4, 6)) * 2).astype(np.float32)
    out = era.discrete_forward(z, 1.2, tau=5.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.discrete_forward(z, 1.2, tau=5.0), rtol=1e-6)


def test_spec_example_and_output_properties():
    # docs/math.md: D = 10, H0 = 1, z = 0..9 gives an entropy of at least 1.
    z = np.arange(10.0)
    out = era.discrete_forward(z, 1.0)
    assert float(ref.softmax_entropy(out)) >= 1.0
    assert np.all(out <= -math.log(4.0) + 1e-12)  # each output logit <= -log(tau)
    assert np.all(np.diff(out) > 0)  # the order of the classes is kept
    ties = era.discrete_forward(np.array([1.0, 1.0, 0.0]), 0.9)
    assert ties[0] == ties[1]


@pytest.mark.parametrize(
    "classes, target, mode, expected",
    [
        # docs/math.md section 2: one-hot floors (exact) and solved constants (tight), tau = 4.
        (1000, 1.0, "exact", 1.998),
        (1000, 2.0, "exact", 4.41),
        (152064, 1.0, "exact", 2.18),
    ],
)
def test_infimum_spec_values(classes, target, mode, expected):
    assert era.discrete_infimum(classes, target, mode=mode) == pytest.approx(expected, abs=6e-3)


@pytest.mark.parametrize("classes, c", [(10, 0.683819), (1000, 0.632910), (152064, 0.619661)])
def test_tight_constant_spec_values(classes, c):
    assert era.discrete_constant(classes, 1.0, mode="tight") == pytest.approx(c, abs=1e-6)
    assert era.discrete_constant(classes, 1.0, mode="tight") == pytest.approx(ref.tight_constant(classes, 1.0), rel=1e-9)
    assert era.discrete_infimum(classes, 1.0, mode="tight") == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_floor_infimum_constant_against_reference(mode):
    for classes, target in [(2, 0.5), (7, 1.1), (50, 2.0)]:
        floor = era.discrete_floor(classes, target, mode=mode)
        if mode == "reference":
            assert math.isnan(floor)
        else:
            assert floor == target
        assert era.discrete_infimum(classes, target, mode=mode) == pytest.approx(
            ref.discrete_infimum(classes, target, mode=mode), rel=1e-9
        )
        _, c, _, _ = ref.discrete_constants(classes, target, mode=mode)
        assert era.discrete_constant(classes, target, mode=mode) == pytest.approx(c, rel=1e-9)


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 8)), elements=st.floats(-60, 60)),
    st.sampled_from(["exact", "tight"]),
    st.floats(0.05, 0.95),
)
def test_guarantee_adversarial(z, mode, fraction):
    # The target as a fraction of the mode's feasible range, so every draw is feasible.
    classes = z.shape[-1]
    up = math.log(4.0) / 4.0
    if mode == "exact":
        lo, hi = 1 + math.log(up), 1 + math.log(classes * up)
    else:
        lo, hi = 0.0, math.log(classes)
    target = lo + fraction * (hi - lo)
    out = era.discrete_forward(z, target, mode=mode)
    assert np.all(np.isfinite(out))
    assert np.all(ref.softmax_entropy(out) >= target - 1e-9)


def test_tight_is_tight_near_one_hot():
    z = np.array([[80.0] + [0.0] * 9])
    h = float(ref.softmax_entropy(era.discrete_forward(z, 1.0, mode="tight"))[0])
    assert 1.0 - 1e-9 <= h <= 1.0 + 1e-6


@pytest.mark.parametrize("mode", MODES)
def test_backward_matches_finite_differences_of_reference(rng, mode):
    z = rng.normal(size=(2, 5))
    weights, numeric = ref.central_difference(lambda x: ref.discrete_forward(x, 1.0, mode=mode), z)
    grad = era.discrete_backward(z, weights, 1.0, mode=mode)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_backward_float32(rng):
    z = rng.normal(size=(3, 4)).astype(np.float32)
    g = rng.normal(size=(3, 4)).astype(np.float32)
    grad32 = era.discrete_backward(z, g, 1.0)
    grad64 = era.discrete_backward(z.astype(np.float64), g.astype(np.float64), 1.0)
    assert grad32.dtype == np.float32
    np.testing.assert_allclose(grad32, grad64, rtol=1e-5, atol=1e-6)
