"""The accuracy bounds of docs/math.md section 5 on adversarial rows, against exact references.

- Token entropies of float32 and bfloat16 rows of 262,144 logits (confident rows above all),
  on the vector kernels and on the portable ones. libera picks its kernels once per process
  (ERA_SIMD=0: portable), so these checks run in a child process per choice: this file, run
  as a script with an argument, prints the worst error of each check in units of its bound.
- float64 softmax and token entropies of near one-hot rows (always the portable kernels).
- TIGHT mode discrete ERA in float64: how far below H0 an output row can be, and what
  era.check_discrete reports for it.

The float64 references of float32/bfloat16 rows are exact up to exp's rounding (z - max is
exact in double for float32 values; math.fsum sums); the references of float64 rows use
decimal arithmetic at 50 digits.
"""

import json
import math
import os
import subprocess
import sys
from decimal import Decimal, localcontext

import numpy as np
import pytest

import era

VOCAB = 262_144


# ---------------------------------------------------------------------------------------------
# Documented bounds (docs/math.md 5, "Accuracy"), relative to the entropy. g is the distance in
# nats from the row maximum to the smallest logit that is not masked (a bound on the distance of
# every logit that carries probability).

def token_entropy_bound(path: str, dtype: str, g: float) -> float:
    if path == "vector":
        return 3e-7 + (1.4e-7 if dtype == "float32" else 8e-8) * g
    return 6e-8  # the double result rounded to float32


def float64_entropy_bound(g: float, classes: int) -> float:
    return 4e-15 + 1.2e-16 * g + 4e-19 * classes


def tight_deficit_bound(target: float) -> float:
    """How far below H0 the exact entropy of a TIGHT float64 output row may be."""
    return 4.4e-16 * (1 + target)


# ---------------------------------------------------------------------------------------------
# References.

def entropy_from_float64(z: np.ndarray) -> float:
    """Entropy of softmax(z) in float64, for rows whose differences z - max are exact: the count
    k of values at the maximum, r = sum of the other terms and T = sum (z - m) e^(z - m) by
    math.fsum, log(k + r) as log k + log1p(r/k). Error: a few units of 1e-16."""
    z = z[np.isfinite(z)]
    m = z.max()
    d = z - m
    e = np.exp(d)
    top = d == 0
    k = int(top.sum())
    r = math.fsum(e[~top])
    t = math.fsum(d * e)
    return math.log(k) + math.log1p(r / k) - t / (k + r)


def _ln1p(x: Decimal) -> Decimal:
    if x > Decimal("1e-6"):
        return (1 + x).ln()
    total, term, n = Decimal(0), x, 1
    while abs(term) > x * Decimal("1e-48"):
        total += term / n
        n += 1
        term *= -x
    return total


def entropy_exact(z: np.ndarray) -> float:
    """Entropy of softmax(z) for a float64 row, in decimal arithmetic at 50 digits (the row's
    distinct values each once, with their counts)."""
    values, counts = np.unique(z[np.isfinite(z)], return_counts=True)
    with localcontext() as ctx:
        ctx.prec = 50
        m = Decimal(float(values[-1]))
        k = int(counts[-1])
        r = t = Decimal(0)
        for v, c in zip(values[:-1], counts[:-1]):
            d = Decimal(float(v)) - m
            e = d.exp()
            r += c * e
            t += c * d * e
        return float(Decimal(k).ln() + _ln1p(r / k) - t / (k + r))


# ---------------------------------------------------------------------------------------------
# Token entropies of float32 and bfloat16 rows, per kernel choice (in a child process).

def token_rows(rng) -> np.ndarray:
    """Rows of VOCAB logits: confident rows whose entropies run from 1e-2 down to 1e-13 (the
    rest of the probability on one logit in the top logit's float32 lane, on every other logit,
    or on a few), ties at the maximum, a random row and a masked one."""
    rows = []
    for gap in (13.0, 17.5, 22.0, 26.5, 31.0, 35.5, 40.0):
        flat = np.full(VOCAB, rng.uniform(-5, 5))  # every other logit the same distance below
        flat[rng.integers(VOCAB)] += gap
        rows.append(flat)
        noisy = rng.normal(size=VOCAB)
        noisy[rng.integers(VOCAB)] = noisy.max() + gap - 3
        rows.append(noisy)
        pair = np.full(VOCAB, -np.inf)  # two logits 16 apart: the same float32 lane of a chunk
        at = 64 * int(rng.integers(VOCAB // 64))
        pair[at] = rng.uniform(-3, 3)
        pair[at + 16] = pair[at] - gap / 2
        rows.append(pair)
        few = np.full(VOCAB, -1e4)
        few[rng.choice(VOCAB, 5, replace=False)] = rng.uniform(-gap, -gap + 2, 5)
        few[rng.integers(VOCAB)] = 0.0
        rows.append(few)
    ties = rng.normal(size=VOCAB) - 30
    ties[rng.choice(VOCAB, 2, replace=False)] = 0.0
    rows.append(ties)
    rows.append(rng.normal(size=VOCAB) * 2)
    masked = rng.normal(size=VOCAB)
    masked[rng.random(VOCAB) < 0.5] = -np.inf
    rows.append(masked)
    return np.array(rows)


def token_entropy_errors(path: str) -> dict:
    """The worst error of era.token_entropy (and, for float32, era.softmax_entropy, whose
    kernels are the portable ones whatever the choice) in units of the bound for `path`."""
    import ml_dtypes

    rows = token_rows(np.random.default_rng(20251008))
    worst = {}
    for name, dtype in (("float32", np.float32), ("bfloat16", ml_dtypes.bfloat16)):
        stored = rows.astype(dtype)
        wide = stored.astype(np.float64)
        got = era.token_entropy(stored).astype(np.float64)
        ratios = []
        for row, h in zip(wide, got):
            want = entropy_from_float64(row)
            finite = row[np.isfinite(row)]
            g = float(finite.max() - finite.min())
            ratios.append(abs(h - want) / want / token_entropy_bound(path, name, g))
        worst[name] = max(ratios)
    finite = rows[np.isfinite(rows).all(axis=1)].astype(np.float32)
    softmax = era.softmax_entropy(finite).astype(np.float64)
    worst["softmax float32"] = max(
        abs(h - entropy_from_float64(row)) / entropy_from_float64(row) / token_entropy_bound("portable", "float32", 0)
        for row, h in zip(finite.astype(np.float64), softmax)
    )
    return worst


@pytest.mark.parametrize("path", ["vector", "portable"])
def test_token_entropy_of_confident_rows_within_bounds(path):
    env = dict(os.environ)
    env.pop("ERA_SIMD", None)
    if path == "portable":
        env["ERA_SIMD"] = "0"
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in sys.path if p])
    done = subprocess.run([sys.executable, os.path.abspath(__file__), path], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    worst = json.loads(done.stdout)
    # On a processor without AVX2 and FMA the "vector" run takes the portable kernels, whose
    # bound is the tighter one.
    for name, ratio in worst.items():
        assert ratio <= 1, f"{path} {name}: {ratio:.2f} times the documented bound"


# ---------------------------------------------------------------------------------------------
# float64 entropies of near one-hot rows (portable kernels on every processor).

def float64_rows(rng):
    rows = []
    for gap in (1.0, 10.0, 25.0, 36.0, 40.0, 60.0, 100.0, 300.0, 700.0):
        for offset in (0.0, 1e3, -7.3e5):
            rows.append(np.array([offset + gap, offset]))  # (40, 0): 1/41 of its entropy was lost
            for classes, spread in ((10, 1.0), (1000, 0.0), (1000, 3.0)):
                z = offset + rng.normal(size=classes) * spread
                z[rng.integers(classes)] = z.max() + gap
                rows.append(z)
    ties = np.zeros(100)
    ties[:2] = 45.0
    rows.append(ties)
    return rows


@pytest.mark.parametrize("entropy", [era.softmax_entropy, era.token_entropy], ids=["softmax", "token"])
def test_float64_entropy_of_near_one_hot_rows_within_bound(entropy):
    for z in float64_rows(np.random.default_rng(7)):
        want = entropy_exact(z)
        got = float(entropy(z))
        g = float(z.max() - z.min())
        assert abs(got - want) <= float64_entropy_bound(g, z.size) * want, (z.size, g, got, want)


def test_float64_entropy_below_the_double_range_is_zero():
    # 800 nats: the terms underflow, and so does the entropy (about 800 e^-800 = 1e-345).
    for entropy in (era.softmax_entropy, era.token_entropy):
        assert float(entropy(np.array([800.0, 0.0]))) == 0.0


# ---------------------------------------------------------------------------------------------
# TIGHT mode, float64: the output rows against H0.

def tight_inputs(rng, classes):
    rows = []
    for gap in (40.0, 800.0):
        one_hot = np.zeros(classes)
        one_hot[rng.integers(classes)] = gap
        rows.append(one_hot)
    two_hot = np.zeros(classes)
    two_hot[:2] = 30.0
    rows.append(two_hot)
    rows.append(np.zeros(classes))
    if classes <= 100:
        for scale in (1.0, 30.0, 1e4):
            rows.append(rng.normal(size=classes) * scale)
        near = rng.normal(size=classes)
        near[0] += 25.0
        rows.append(near)
    return np.array(rows)


def test_tight_float64_rows_within_documented_distance_of_target():
    rng = np.random.default_rng(11)
    for classes in (2, 3, 10, 100, 1000):
        for tau in (2.75, 4.0, 100.0, 1e8):
            for fraction in (0.002, 0.3, 0.95):
                target = fraction * math.log(classes)
                out = era.discrete_forward(tight_inputs(rng, classes), target, tau=tau, mode="tight")
                exact = np.array([entropy_exact(row) for row in out])
                deficit = target - exact.min()
                assert deficit <= tight_deficit_bound(target), (classes, tau, target, deficit)
                # The one-hot rows reach the infimum, H0: the rows test the bound where it is tight.
                assert deficit >= -1e-12 * (1 + target), (classes, tau, target, deficit)
                # The check computes the entropies itself: with its default tolerance nothing is
                # reported; with tol = 0 at most its own rounding on top of the rows' distance.
                assert era.check_discrete(out, target, tau=tau, mode="tight").violations == 0
                strict = era.check_discrete(out, target, tau=tau, mode="tight", tol=0)
                g = float((out.max(axis=1) - out.min(axis=1)).max())
                own = float64_entropy_bound(g, classes) * target
                assert strict.max_deficit <= tight_deficit_bound(target) + own, (classes, tau, target)


if __name__ == "__main__":
    print(json.dumps(token_entropy_errors(sys.argv[1])))
