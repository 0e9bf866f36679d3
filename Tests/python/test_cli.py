"""era.testing.assert_entropy_bound and `python -m era verify` (exit codes 0/1/2)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import era
import era.testing


@pytest.fixture
def outputs(rng):
    z = rng.normal(size=(4, 3, 6)) * 3
    return era.discrete_forward(z, 1.0), z


def test_assert_entropy_bound_passes_on_era_outputs(outputs, rng):
    good, _ = outputs
    report = era.testing.assert_entropy_bound(good, kind="discrete", target_entropy=1.0)
    assert report.holds
    log_std = era.continuous_forward(rng.normal(size=(5, 2)), -1.0, residual=0.1)
    assert era.testing.assert_entropy_bound(log_std, kind="continuous", target_entropy=-1.0, residual=0.1).holds


def test_assert_entropy_bound_names_the_violating_rows(outputs):
    _, raw = outputs
    raw = raw.copy()
    raw[2, 1] *= 50
    raw[0, 2] *= 50
    h = era.softmax_entropy(raw)
    with pytest.raises(AssertionError) as info:
        era.testing.assert_entropy_bound(raw, kind="discrete", target_entropy=1.0, max_rows_shown=2)
    message = str(info.value)
    bad = np.argwhere(h < 1.0 - 1e-10)
    worst = np.unravel_index(np.argmin(h), h.shape)
    assert f"{len(bad)} of 12 rows below target 1" in message
    assert f"worst deficit {1.0 - h.min():.6g} nats at row ({worst[0]}, {worst[1]})" in message
    first = bad[0]
    assert f"({first[0]}, {first[1]}): {h[tuple(first)]:.6g}" in message
    if len(bad) > 2:
        assert f"(first 2 of {len(bad)})" in message


def test_assert_entropy_bound_continuous_squashed_violation(rng):
    log_std = np.full((3, 2), -0.1)
    mean = np.array([[0.0, 0.0], [3.0, 3.0], [0.0, 0.0]])
    with pytest.raises(AssertionError, match=r"tanh-squashed entropy[\s\S]*\(1,\)"):
        era.testing.assert_entropy_bound(log_std, kind="continuous", target_entropy=0.0, mean=mean)


def test_assert_entropy_bound_bad_input_is_an_era_error(outputs):
    good, _ = outputs
    with pytest.raises(era.InfeasibleTargetError):
        era.testing.assert_entropy_bound(good, kind="discrete", target_entropy=50.0)
    with pytest.raises(ValueError, match="kind"):
        era.testing.assert_entropy_bound(good, kind="gaussian", target_entropy=1.0)


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "era", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_exit_codes(tmp_path, outputs):
    good, raw = outputs
    np.savez(tmp_path / "good.npz", logits=good)
    np.savez(tmp_path / "bad.npz", logits=raw * 20, other=good)
    np.save(tmp_path / "single.npy", good)

    ok = run_cli("verify", "good.npz", "--kind", "discrete", "--target-entropy", "1.0", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "bound holds" in ok.stdout and "rows          12" in ok.stdout

    bad = run_cli("verify", "bad.npz", "--kind", "discrete", "--target-entropy", "1.0", cwd=tmp_path)
    assert bad.returncode == 1
    assert "BOUND VIOLATED" in bad.stdout and "violating rows" in bad.stdout and "worst deficit" in bad.stdout

    npy = run_cli("verify", "single.npy", "--kind", "discrete", "--target-entropy", "1.0", cwd=tmp_path)
    assert npy.returncode == 0, npy.stderr

    as_json = run_cli("verify", "bad.npz", "--key", "other", "--kind", "discrete", "--target-entropy", "1.0", "--json",
                      cwd=tmp_path)
    assert as_json.returncode == 0
    data = json.loads(as_json.stdout)
    assert data["holds"] is True and data["rows"] == 12 and data["key"] == "other" and data["violating_rows"] == []

    bad_json = run_cli("verify", "bad.npz", "--kind", "discrete", "--target-entropy", "1.0", "--json", cwd=tmp_path)
    data = json.loads(bad_json.stdout)
    assert bad_json.returncode == 1 and data["violations"] > 0 and data["violating_rows"][0]["index"]


@pytest.mark.parametrize(
    "args, text",
    [
        (["verify", "missing.npz", "--kind", "discrete", "--target-entropy", "1"], "cannot read missing.npz"),
        (["verify", "two.npz", "--kind", "discrete", "--target-entropy", "1", "--key", "nope"], "no array 'nope'"),
        (["verify", "two.npz", "--kind", "discrete", "--target-entropy", "9"], "infeasible target entropy"),
        (["verify", "two.npz", "--kind", "discrete", "--target-entropy", "1", "--tau", "2"], "bad parameter"),
        (["verify", "two.npz", "--kind", "continuous", "--target-entropy", "0", "--key", "logits",
          "--log-std-min", "1"], "bad parameter"),
        (["verify", "ints.npz", "--kind", "discrete", "--target-entropy", "1"], "dtype int64"),
        (["verify", "two.npz", "--kind", "discrete"], "--target-entropy"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, outputs, args, text):
    good, _ = outputs
    np.savez(tmp_path / "two.npz", logits=good, other=good)
    np.savez(tmp_path / "ints.npz", logits=np.ones((2, 3), np.int64))
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert text in result.stderr
    assert result.stdout == ""


def test_cli_continuous_with_means(tmp_path, rng):
    log_std = era.continuous_forward(rng.normal(size=(4, 2)), -1.0, residual=0.5)
    np.savez(tmp_path / "policy.npz", log_std=log_std, mean=np.zeros((4, 2)))
    gaussian = run_cli("verify", "policy.npz", "--kind", "continuous", "--target-entropy", "-1", "--residual", "0.5",
                       cwd=tmp_path)
    assert gaussian.returncode == 0, gaussian.stdout + gaussian.stderr
    squashed = run_cli("verify", "policy.npz", "--kind", "continuous", "--target-entropy", "-1", "--mean-key", "mean",
                       "--json", cwd=tmp_path)
    report = era.check_continuous(log_std, -1.0, mean=np.zeros((4, 2)))
    assert squashed.returncode == (0 if report.holds else 1)
    assert json.loads(squashed.stdout)["min_entropy"] == pytest.approx(report.min_entropy)
