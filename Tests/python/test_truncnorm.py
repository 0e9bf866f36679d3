"""The truncated-normal policy (docs/math.md, "Truncated-normal policy") at the numpy level:
against scipy.stats.truncnorm where scipy is accurate, against a 40-digit mpmath reference
in far tails (where scipy is not), the gradients against central finite differences in
float64, every sample inside [lo, hi], and the error statuses."""

import math

import numpy as np
import pytest

import era

mpmath = pytest.importorskip("mpmath")
stats = pytest.importorskip("scipy.stats")

LO, HI = -1.0, 1.0


# ---- the 40-digit reference, written from the definitions ---------------------------------

def _mp_parts(m, log_std, lo, hi):
    m, sg = mpmath.mpf(m), mpmath.exp(mpmath.mpf(log_std))
    a, b = (lo - m) / sg, (hi - m) / sg
    z = mpmath.ncdf(-a) - mpmath.ncdf(-b) if a > 0 else mpmath.ncdf(b) - mpmath.ncdf(a)
    return m, sg, a, b, z


def mp_log_prob_exact(m, log_std, x, lo=LO, hi=HI):
    m, sg, _, _, z = _mp_parts(m, log_std, lo, hi)
    xi = (mpmath.mpf(x) - m) / sg
    return -xi**2 / 2 - mpmath.log(mpmath.sqrt(2 * mpmath.pi) * sg * z)


def mp_log_prob(m, log_std, x, lo=LO, hi=HI):
    with mpmath.workdps(40):
        return float(mp_log_prob_exact(m, log_std, x, lo, hi))


def mp_cdf(m, log_std, x, lo=LO, hi=HI):
    """F(x) and 1 - F(x), each from the side where it is small."""
    m, sg, a, b, z = _mp_parts(m, log_std, lo, hi)
    xi = (mpmath.mpf(x) - m) / sg
    below = (mpmath.ncdf(-a) - mpmath.ncdf(-xi)) if a > 0 else (mpmath.ncdf(xi) - mpmath.ncdf(a))
    above = (mpmath.ncdf(-xi) - mpmath.ncdf(-b)) if a > 0 else (mpmath.ncdf(b) - mpmath.ncdf(xi))
    return below / z, above / z


def sample_error(x, want, log_std):
    """|x - want| beyond 2 ulp of the value (the representation's own floor), in units of the
    scale (or of the interval, for a scale wider than it)."""
    return max(0.0, abs(x - want) - 2 * np.spacing(abs(want))) / min(math.exp(log_std), HI - LO)


def mp_sample(m, log_std, u, lo=LO, hi=HI):
    """The x with F(x) = u, by 200 bisections of [lo, hi] at 40 digits."""
    with mpmath.workdps(40):
        u = mpmath.mpf(u)
        left, right = mpmath.mpf(lo), mpmath.mpf(hi)
        for _ in range(200):
            mid = (left + right) / 2
            below, above = mp_cdf(m, log_std, mid, lo, hi)
            if (below < u) if u < 0.5 else (above > 1 - u):
                left = mid
            else:
                right = mid
        return float((left + right) / 2)


# ---- against scipy, where scipy is accurate -----------------------------------------------

SCIPY_LOCS = [0.0, 0.5, 0.99, -0.99, 1.0, 1.5, -3.0]
SCIPY_LOG_STDS = [-6.9, -4.0, -2.0, 0.0, 1.0, 3.0]
UNIFORMS = [1e-9, 0.01, 0.3, 0.5, 0.7, 0.99, 1 - 1e-9]


def _grid(locs, log_stds):
    m, s = np.meshgrid(np.array(locs), np.array(log_stds), indexing="ij")
    return m.ravel(), s.ravel()


def test_against_scipy_truncnorm():
    """Within scipy's own accuracy everywhere on the grid; where the two differ by more than
    1e-12, the 40-digit reference sides with era (scipy loses digits near u = 1 and for
    intervals thousands of scales into a tail)."""
    m, s = _grid(SCIPY_LOCS, SCIPY_LOG_STDS)
    sg = np.exp(s)
    a, b = (LO - m) / sg, (HI - m) / sg
    worst_ppf = worst_logpdf = worst_ours = 0.0
    for u0 in UNIFORMS:
        u = np.full(m.shape, u0)
        x = era.truncated_normal_sample(m, s, u)
        ppf_error = np.abs(x - stats.truncnorm.ppf(u, a, b, loc=m, scale=sg)) / np.minimum(sg, HI - LO)
        lp = era.truncated_normal_log_prob(m, s, x)
        want_lp = stats.truncnorm.logpdf(x, a, b, loc=m, scale=sg)
        lp_error = np.abs(lp - want_lp) / np.maximum(1, np.abs(want_lp))
        worst_ppf, worst_logpdf = max(worst_ppf, ppf_error.max()), max(worst_logpdf, lp_error.max())
        for i in np.argsort(ppf_error)[::-1][:3]:
            if ppf_error[i] > 1e-12:
                worst_ours = max(worst_ours, sample_error(x[i], mp_sample(m[i], s[i], u0), s[i]))
        for i in np.flatnonzero(lp_error > 1e-12):
            worst_ours = max(worst_ours, abs(lp[i] - mp_log_prob(m[i], s[i], x[i])) / max(1, abs(lp[i])))
    # Measured: scipy's ppf within 1.1e-8 of a scale, its logpdf within 1.1e-10 relative; era
    # within 6e-15 of the reference at each of those points.
    assert worst_ppf < 5e-8, worst_ppf
    assert worst_logpdf < 1e-9, worst_logpdf
    assert worst_ours < 1e-13, worst_ours


def test_entropy_against_scipy():
    m, s = _grid(SCIPY_LOCS, SCIPY_LOG_STDS)
    sg = np.exp(s)
    a, b = (LO - m) / sg, (HI - m) / sg
    ours = era.truncated_normal_entropy(m[:, None], s[:, None])
    with np.errstate(all="ignore"):
        want = np.array([stats.truncnorm.entropy(a[i], b[i], loc=m[i], scale=sg[i]) for i in range(len(m))])
    finite = np.isfinite(want)  # scipy gives NaN for intervals far in a tail
    assert finite.sum() >= 30
    np.testing.assert_allclose(ours[finite], want[finite], rtol=1e-9, atol=1e-9)


# ---- far tails, against the 40-digit reference --------------------------------------------

TAIL_CASES = [
    (0.99, -6.9), (1.0, -9.2), (1 - 1e-7, -9.2), (1 + 1e-7, -9.2), (-1 - 1e-7, -9.2), (3.0, -2.0), (3.0, -6.9),
    (-5.0, -4.0), (40.0, 0.0), (-1e4, 3.0), (1e3, -4.0), (0.0, -12.0), (0.5, 6.0), (2.0, -20.0),
]


def test_far_tails_against_mpmath():
    m = np.array([c[0] for c in TAIL_CASES])
    s = np.array([c[1] for c in TAIL_CASES])
    worst_sample = worst_lp = 0.0
    for u0 in [1e-300, 1e-12, 0.3, 0.9, 1 - 1e-12]:
        x = era.truncated_normal_sample(m, s, np.full(m.shape, u0))
        assert np.all((x >= LO) & (x <= HI))
        lp = era.truncated_normal_log_prob(m, s, x)
        for i in range(len(m)):
            want = mp_sample(m[i], s[i], u0)
            worst_sample = max(worst_sample, sample_error(x[i], want, s[i]))
            want_lp = mp_log_prob(m[i], s[i], x[i])
            worst_lp = max(worst_lp, abs(lp[i] - want_lp) / max(1.0, abs(want_lp)))
    # Measured: sample 2.5e-14 of a scale (a huge scale: of the interval), log-density 6.7e-16.
    assert worst_sample < 1e-12, worst_sample
    assert worst_lp < 1e-12, worst_lp


def test_adversarial_search_against_mpmath():
    """Random locations, log scales and uniforms over wide ranges (tails included); the worst
    relative errors stay within the documented bounds."""
    rng = np.random.default_rng(7)
    n = 120
    m = np.concatenate([np.tanh(rng.normal(0, 3, n // 2)), rng.uniform(-6, 6, n // 2)])
    s = rng.uniform(-14, 4, n)
    u = np.exp(rng.uniform(-40, 0, n)) * rng.choice([1, -1], n)
    u = np.where(u < 0, 1 + u, u)
    u = np.clip(u, 1e-300, 1 - 1e-16)
    x = era.truncated_normal_sample(m, s, u)
    lp = era.truncated_normal_log_prob(m, s, x)
    assert np.all((x >= LO) & (x <= HI))
    worst_sample = max(sample_error(x[i], mp_sample(m[i], s[i], u[i]), s[i]) for i in range(n))
    worst_lp = max(abs(lp[i] - mp_log_prob(m[i], s[i], x[i])) / max(1, abs(lp[i])) for i in range(n))
    assert worst_sample < 1e-12, worst_sample
    assert worst_lp < 1e-12, worst_lp


# ---- gradients ------------------------------------------------------------------------------

GRAD_CASES = [(0.3, -1.0), (0.99, -4.0), (-0.99, -6.9), (1.0, -2.0), (1.5, -1.0), (3.0, -2.0), (-5.0, 0.0),
              (1 + 1e-7, -9.2), (0.0, 2.0)]


def _fd(f, v, h):
    return (f(v + h) - f(v - h)) / (2 * h)


def test_log_prob_gradients_against_finite_differences():
    m = np.array([c[0] for c in GRAD_CASES])
    s = np.array([c[1] for c in GRAD_CASES])
    x = era.truncated_normal_sample(m, s, np.full(m.shape, 0.37))
    g = era.truncated_normal_log_prob_backward(m, s, x, np.ones_like(x))
    h = 1e-6
    sg = np.exp(s)
    fm = _fd(lambda v: era.truncated_normal_log_prob(v, s, x), m, h * sg)
    fs = _fd(lambda v: era.truncated_normal_log_prob(m, v, x), s, h)
    # log p is quadratic in x: a wide step inside [lo, hi] is exact up to rounding
    hx = np.minimum(1e-3 * sg, 0.5 * np.minimum(x - LO, HI - x))
    fx = _fd(lambda v: era.truncated_normal_log_prob(m, s, v), x, hx)
    for ours, fd, scale in [(g.loc, fm, 1 / sg), (g.log_std, fs, 1.0), (g.x, fx, 1 / sg)]:
        np.testing.assert_allclose(ours, fd, rtol=1e-6, atol=1e-6 * np.max(scale))


def test_sample_gradients_against_finite_differences():
    m = np.array([c[0] for c in GRAD_CASES])
    s = np.array([c[1] for c in GRAD_CASES])
    worst = 0.0
    for u0 in [1e-6, 0.2, 0.5, 0.9, 1 - 1e-6]:
        u = np.full(m.shape, u0)
        x = era.truncated_normal_sample(m, s, u)
        g = era.truncated_normal_sample_backward(m, s, x, np.ones_like(x))
        h = 1e-6
        sg = np.exp(s)
        fm = _fd(lambda v: era.truncated_normal_sample(v, s, u), m, h * sg)
        fs = _fd(lambda v: era.truncated_normal_sample(m, v, u), s, h)
        worst = max(worst, float(np.max(np.abs(g.loc - fm))), float(np.max(np.abs(g.log_std - fs) / sg)))
    # Measured 4.5e-7 (relative to a scale): the truncation error of the central difference
    # where the sample bends sharply, near the bounds of an interval in a tail.
    assert worst < 2e-6, worst


def test_sample_gradients_untruncated_limit():
    # Far from the bounds the truncation does not matter: dx/dloc = 1, dx/dlog_std = x - loc.
    m, s = np.array([0.0, 0.1]), np.array([-5.0, -4.0])
    x = era.truncated_normal_sample(m, s, np.array([0.3, 0.8]))
    g = era.truncated_normal_sample_backward(m, s, x, np.ones(2))
    np.testing.assert_allclose(g.loc, 1.0, atol=1e-12)
    np.testing.assert_allclose(g.log_std, x - m, atol=1e-15)


def test_tail_gradients_against_mpmath():
    # Derivatives of the 40-digit log-density, where finite differences of float64 lose digits.
    for m, s in [(3.0, -6.9), (1 + 1e-7, -9.2), (-40.0, -1.0)]:
        x = float(era.truncated_normal_sample(np.array([m]), np.array([s]), np.array([0.4]))[0])
        g = era.truncated_normal_log_prob_backward(np.array([m]), np.array([s]), np.array([x]), np.ones(1))
        with mpmath.workdps(40):
            want_m = mpmath.diff(lambda v: mp_log_prob_exact(v, s, x), m)
            want_s = mpmath.diff(lambda v: mp_log_prob_exact(m, v, x), s)
        assert float(g.loc[0]) == pytest.approx(float(want_m), rel=1e-6)
        assert float(g.log_std[0]) == pytest.approx(float(want_s), rel=1e-6, abs=1e-6)


# ---- samples inside, dtypes, errors ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (-0.1, 0.3), (2.0, 2.5)])
def test_samples_always_inside(rng, dtype, lo, hi):
    n = 4000
    m = np.concatenate([rng.uniform(-3, 3, n // 2), rng.normal(0, 1e3, n // 2)]).astype(dtype)
    s = rng.uniform(-20, 8, n).astype(dtype)
    u = rng.choice(np.array([1e-30, 1e-7, 0.5, 1 - 6e-8, 0.99999994], dtype=dtype), n)
    x = era.truncated_normal_sample(m, s, u, lo, hi)
    assert x.dtype == dtype and x.shape == (n,)
    assert np.all((x.astype(np.float64) >= lo) & (x.astype(np.float64) <= hi))
    lp = era.truncated_normal_log_prob(m, s, x, lo, hi)
    assert not np.any(np.isnan(lp)) and not np.any(lp == np.inf)


def test_float32_matches_float64():
    m, s = _grid(SCIPY_LOCS, SCIPY_LOG_STDS[1:])
    u = np.full(m.shape, 0.4)
    x32 = era.truncated_normal_sample(m.astype(np.float32), s.astype(np.float32), u.astype(np.float32))
    x64 = era.truncated_normal_sample(m.astype(np.float32).astype(np.float64), s.astype(np.float32).astype(np.float64), u)
    np.testing.assert_allclose(x32, x64, rtol=1e-6, atol=1e-7)


def test_log_prob_outside_support_is_minus_inf():
    lp = era.truncated_normal_log_prob(np.zeros(3), np.zeros(3), np.array([-1.5, 0.0, 1.0 + 1e-12]))
    assert lp[0] == -np.inf and np.isfinite(lp[1]) and lp[2] == -np.inf
    g = era.truncated_normal_log_prob_backward(np.zeros(3), np.zeros(3), np.array([-1.5, 0.0, 2.0]), np.ones(3))
    assert g.x[0] == g.loc[0] == g.log_std[0] == 0 and g.x[2] == 0


def test_shapes_and_scalars():
    x = era.truncated_normal_sample(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.full((2, 3, 4), 0.5))
    assert x.shape == (2, 3, 4) and np.all(x == 0)
    assert np.shape(era.truncated_normal_log_prob(np.float64(0), np.float64(0), np.float64(0))) == ()
    assert era.truncated_normal_sample(np.zeros(0), np.zeros(0), np.zeros(0)).shape == (0,)


def test_errors():
    z, half = np.zeros(2), np.full(2, 0.5)
    with pytest.raises(era.BadParameterError):
        era.truncated_normal_sample(z, z, half, 1.0, 1.0)
    with pytest.raises(era.BadParameterError):
        era.truncated_normal_sample(z, z, np.array([0.5, 1.0]))
    with pytest.raises(era.BadParameterError):
        era.truncated_normal_sample(z, z, np.array([0.0, 0.5]))
    with pytest.raises(era.NonFiniteError):
        era.truncated_normal_log_prob(np.array([0, np.nan]), z, z)
    with pytest.raises(era.BadParameterError):
        era.truncated_normal_sample_backward(z, z, np.array([0, 1.5]), np.ones(2))
    with pytest.raises(era.BadParameterError):
        era.truncated_normal_log_prob(z, np.array([0.0, 800.0]), z)
    with pytest.raises(era.BadShapeError):
        era.truncated_normal_log_prob(z, np.zeros(3), z)
    with pytest.raises(era.DTypeError):
        era.truncated_normal_log_prob(z, z.astype(np.float32), z)
