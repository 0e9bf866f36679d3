"""Bound verification (docs/math.md section 4) against the reference entropies."""

import json
import math

import numpy as np
import pytest

import era
import reference as ref


def test_check_discrete_on_era_outputs(rng):
    z = rng.normal(size=(5, 3, 8)) * 4
    out = era.discrete_forward(z, 1.2)
    report = era.check_discrete(out, 1.2)
    h = ref.softmax_entropy(out).reshape(-1)
    assert report.holds and report.violations == 0 and report.rows == 15
    assert report.min_entropy == pytest.approx(h.min(), rel=1e-12)
    assert report.mean_entropy == pytest.approx(h.mean(), rel=1e-12)
    assert report.worst_row == int(np.argmin(h))
    assert report.worst_index == tuple(int(i) for i in np.unravel_index(np.argmin(h), (5, 3)))
    assert report.floor == 1.2 and report.target == 1.2 and report.max_deficit == 0.0
    assert report.tol == 1e-10


def test_check_discrete_counts_violations(rng):
    z = rng.normal(size=(6, 5))
    z[[1, 4]] *= 40  # two confident rows: raw logits, not ERA outputs
    target = 1.0
    report = era.check_discrete(z, target)
    h = ref.softmax_entropy(z)
    assert report.violations == int(np.sum(h < target - 1e-10)) >= 2
    assert report.max_deficit == pytest.approx(target - h.min(), rel=1e-12)
    assert not report.holds


def test_reference_mode_has_no_floor(rng):
    out = era.discrete_forward(rng.normal(size=(3, 4)), 1.0, mode="reference")
    report = era.check_discrete(out, 1.0, mode="reference")
    assert math.isnan(report.floor) and report.target == 1.0


def test_check_continuous_gaussian_and_squashed(rng):
    s = rng.normal(size=(4, 3))
    log_std = era.continuous_forward(s, -2.0, residual=0.5)
    report = era.check_continuous(log_std, -2.0, residual=0.5)
    assert report.holds and report.target == pytest.approx(-1.5) and report.floor == pytest.approx(-1.5)
    assert report.min_entropy == pytest.approx(ref.gaussian_entropy(log_std).min(), abs=1e-12)
    mean = rng.normal(size=(4, 3))
    squashed = era.check_continuous(log_std, -2.0, residual=0.5, mean=mean)
    h = ref.tanh_gaussian_entropy(mean, log_std)
    assert squashed.target == -2.0 and math.isnan(squashed.floor)
    assert squashed.min_entropy == pytest.approx(h.min(), abs=1e-6)
    assert squashed.violations == int(np.sum(h < -2.0 - 1e-10))


def test_float32_default_tolerance(rng):
    out = era.discrete_forward(rng.normal(size=(3, 4)).astype(np.float32), 1.0)
    assert era.check_discrete(out, 1.0).tol == 1e-5
    assert era.check_discrete(out, 1.0, tol=0.5).tol == 0.5


def test_report_to_dict_is_json_ready():
    report = era.check_discrete(np.zeros((0, 3)), 1.0)
    data = report.to_dict()
    assert data["min_entropy"] is None and data["mean_entropy"] is None  # inf / NaN
    assert data["holds"] is True and data["batch_shape"] == [0]
    json.dumps(data)
