"""The tanh sampled floor and the tanh-Gaussian entropy gradient from Python: numpy level and
era.torch (gradcheck, opcheck in test_torch_ops.py, torch.compile fullgraph, the device path
on the CPU), against a float64 reference written here: the squashed entropy by a dense
trapezoid rule over the standard normal, the per-row target shift l(c) of era.h written
out plainly, and scipy's bounded minimiser and brentq for the peak and the root."""

import math

import numpy as np
import pytest
from scipy import optimize

import era
from era import _era

torch = pytest.importorskip("torch")
import era.torch as et  # noqa: E402

GAUSS = 0.5 * math.log(2 * math.pi * math.e)
PEAK = 0.6836355635996024  # the squashed entropy's largest value per dimension (mean 0, std 0.87440)
_E = np.linspace(-12.0, 12.0, 24001)
_W = np.exp(-0.5 * _E * _E) / math.sqrt(2 * math.pi) * (_E[1] - _E[0])
_W[[0, -1]] *= 0.5


def reference_dims(mean, log_std):
    """Squashed entropy per dimension: log std + 0.5 log(2 pi e) + E log(1 - tanh^2 x), the
    expectation by the trapezoid rule on e in [-12, 12] (step 1e-3; log(1 - tanh^2) =
    -2 log cosh is analytic, so the rule is accurate to rounding for std up to about 500)."""
    mean = np.asarray(mean, np.float64)
    log_std = np.asarray(log_std, np.float64)
    x = mean[..., None] + np.exp(log_std)[..., None] * _E
    ax = np.abs(x)
    jac = 2 * (math.log(2) - ax - np.log1p(np.exp(-2 * ax)))
    return log_std + GAUSS + jac @ _W


def reference_entropy(mean, log_std):
    return reference_dims(mean, log_std).sum(-1)


def shifted(s, c, target, log_std_min, log_std_max, residual=0.0):
    """l(c) of one row (era.h): max(log_std_max + (K + c) softmax(s), log_std_min)."""
    s = np.asarray(s, np.float64)
    w = np.exp(s - s.max())
    w /= w.sum()
    d = len(s)
    k = target + residual - d * GAUSS - d * log_std_max
    return np.maximum(log_std_max + (k + c) * w, log_std_min), k


def reference_offset(s, m, target, log_std_min, log_std_max):
    """c of one row by scipy: 0 if the entropy at l(0) reaches the target, else the root on
    the rising side, bracketed by the peak; None where the peak lies below the target."""
    def f(c):
        return reference_entropy(m, shifted(s, c, target, log_std_min, log_std_max)[0]) - target

    _, k = shifted(s, 0.0, target, log_std_min, log_std_max)
    if f(0.0) >= 0:
        return 0.0
    rising = f(1e-7) > f(-1e-7)
    w = np.exp(s - s.max())
    w /= w.sum()
    end = -k if rising else (log_std_max - log_std_min) / w.min() + k
    sign = 1.0 if rising else -1.0
    peak = optimize.minimize_scalar(lambda t: -f(sign * t), bounds=(0.0, end), method="bounded",
                                    options={"xatol": 1e-12}).x
    if f(sign * peak) < 0:
        return None
    return sign * optimize.brentq(lambda t: f(sign * t), 0.0, peak, xtol=1e-14, rtol=1e-14)


def batch(rows, dim, seed, mean_scale=1.0, logit_scale=1.0):
    rng = np.random.default_rng(seed)
    return logit_scale * rng.standard_normal((rows, dim)), mean_scale * rng.standard_normal((rows, dim))


# ---------------------------------------------------------------------------------------
# The tanh-Gaussian entropy gradient


def test_entropy_gradient_against_finite_differences_of_the_reference():
    rng = np.random.default_rng(1)
    mean = np.concatenate([rng.uniform(-3, 3, 40), [0.0, 0.0, 2.5, -4.0, 0.3]])
    log_std = np.concatenate([rng.uniform(-6, 4, 40), [np.log(0.5), np.log(0.5) + 1e-9, -8.0, 3.0, 0.0]])
    g = era.tanh_gaussian_entropy_backward(mean[:, None], log_std[:, None], np.ones(len(mean)))
    h = 1e-5
    fd_m = (reference_dims(mean + h, log_std) - reference_dims(mean - h, log_std)) / (2 * h)
    fd_l = (reference_dims(mean, log_std + h) - reference_dims(mean, log_std - h)) / (2 * h)
    # the differences carry the reference's rounding, about 1e-16 |H| / h
    noise = 1e-15 * (1 + np.abs(reference_dims(mean, log_std))) / h
    assert np.all(np.abs(g.mean[:, 0] - fd_m) <= 1e-8 * np.maximum(1, np.abs(fd_m)) + noise)
    assert np.all(np.abs(g.log_std[:, 0] - fd_l) <= 1e-8 * np.maximum(1, np.abs(fd_l)) + noise)


def test_entropy_gradient_against_finite_differences_of_libera_entropy():
    mean, log_std = batch(6, 5, seed=2, mean_scale=1.5)
    log_std = log_std * 1.5
    grad = np.random.default_rng(3).standard_normal(6)
    g = era.tanh_gaussian_entropy_backward(mean, log_std, grad)
    h = 1e-6
    for idx in [(0, 0), (2, 3), (5, 4), (4, 1)]:
        e = np.zeros_like(mean)
        e[idx] = h
        loss = lambda a, b: grad @ era.tanh_gaussian_entropy(a, b)  # noqa: E731
        fd_m = (loss(mean + e, log_std) - loss(mean - e, log_std)) / (2 * h)
        fd_l = (loss(mean, log_std + e) - loss(mean, log_std - e)) / (2 * h)
        assert abs(g.mean[idx] - fd_m) < 1e-7 * max(1, abs(fd_m))
        assert abs(g.log_std[idx] - fd_l) < 1e-7 * max(1, abs(fd_l))
    g32 = era.tanh_gaussian_entropy_backward(mean.astype(np.float32), log_std.astype(np.float32),
                                             grad.astype(np.float32))
    assert g32.mean.dtype == np.float32
    np.testing.assert_allclose(g32.mean, g.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g32.log_std, g.log_std, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------
# The floor: against the reference, positive and negative offsets


@pytest.mark.parametrize("dim, target_per_dim, log_std_min, log_std_max, mean_scale, seed", [
    (1, -1.0, -20.0, 2.0, 1.0, 0),  # c > 0
    (3, -0.5, -20.0, 2.0, 1.0, 1),  # c > 0, some rows infeasible
    (6, -1.0, -8.0, 2.0, 1.0, 2),
    (3, 0.4, -0.1, 2.0, 0.3, 3),  # stds beyond the peak: c < 0
    (2, 0.5, 0.0, 2.0, 0.3, 4),
])
def test_forward_against_reference(dim, target_per_dim, log_std_min, log_std_max, mean_scale, seed):
    s, m = batch(12, dim, seed, mean_scale=mean_scale, logit_scale=0.5)
    target = target_per_dim * dim
    kw = dict(residual=0.0, log_std_min=log_std_min, log_std_max=log_std_max)
    gauss = era.continuous_forward(s, target, **kw)
    signs = set()
    for r in range(len(s)):
        want = reference_offset(s[r], m[r], target, log_std_min, log_std_max)
        if want is None:
            with pytest.raises(era.InfeasibleTargetError):
                era.continuous_tanh_forward(s[r:r + 1], m[r:r + 1], target, **kw)
            continue
        out, c = era.continuous_tanh_forward(s[r:r + 1], m[r:r + 1], target, return_offset=True, **kw)
        out, c = out[0], float(c[0])
        signs.add(np.sign(c))
        assert abs(c - want) <= 1e-8 * (1 + abs(want))
        assert np.all(out >= log_std_min) and np.all(out <= log_std_max)
        if c == 0:
            np.testing.assert_array_equal(out, gauss[r])
            continue
        np.testing.assert_allclose(out, shifted(s[r], c, target, log_std_min, log_std_max)[0], rtol=0, atol=1e-13)
        assert reference_entropy(m[r], out) >= target - 1e-10  # the floor
        before = shifted(s[r], c - 1e-6 * np.sign(c), target, log_std_min, log_std_max)[0]
        assert reference_entropy(m[r], before) < target  # the smallest |c|
        # float32: the floor holds at the stored values
        out32, c32 = era.continuous_tanh_forward(s[r:r + 1].astype(np.float32), m[r:r + 1].astype(np.float32),
                                                 target, return_offset=True, **kw)
        assert out32.dtype == np.float32
        assert reference_entropy(m[r].astype(np.float32), out32[0]) >= target - 1e-9
        np.testing.assert_allclose(out32[0], out, rtol=0, atol=1e-5)
    assert signs - {0.0}, "no row needed an offset"


def test_negative_offsets_and_check():
    s, m = batch(40, 3, seed=5, mean_scale=0.3, logit_scale=0.5)
    kw = dict(residual=0.0, log_std_min=-0.1, log_std_max=2.0)
    target = 0.45 * 3
    out, c = era.continuous_tanh_forward(s, m, target, return_offset=True, **kw)
    assert (c < 0).sum() >= 5
    gauss = era.continuous_forward(s, target, **kw)
    assert np.all(out[c < 0] <= gauss[c < 0])  # the stds shrink towards the peak
    report = era.check_continuous_tanh(m, out, target, **kw)
    assert report.violations == 0 and report.floor == target and report.target == target
    assert era.check_continuous_tanh(m, gauss, target, **kw).violations == (c != 0).sum()
    h = reference_entropy(m, out)
    assert np.all(h >= target - 1e-10)
    assert np.all(np.abs(h[c != 0] - target) < 1e-9)


def test_infeasible_targets_write_nothing():
    d = 3
    s = np.zeros((2, d))
    m = np.zeros((2, d))
    m[1] = 5.0  # the row's peak: 3 * -6.38 nats
    params = (-1.0, 0.0, -20.0, 2.0)  # H0, residual, log_std_min, log_std_max
    out = np.full_like(s, 7.0)
    offset = np.full(2, 7.0)
    status = _era.continuous_tanh_forward(*params, 2, d, s, m, out, offset)
    assert status == _era.STATUS["INFEASIBLE_TARGET"]
    assert np.all(out == 7.0) and np.all(offset == 7.0)
    grads = [np.full_like(s, 7.0), np.full_like(s, 7.0), np.full(2, 7.0)]
    status = _era.continuous_tanh_backward(*params, 2, d, s, m, np.ones_like(s), *grads)
    assert status == _era.STATUS["INFEASIBLE_TARGET"]
    assert all(np.all(g == 7.0) for g in grads)
    with pytest.raises(era.InfeasibleTargetError):
        era.continuous_tanh_forward(s, m, -1.0, residual=0.0)
    era.continuous_tanh_forward(s[:1], m[:1], -1.0, residual=0.0)  # the first row alone is feasible
    # the static bound: D times the largest squashed entropy
    with pytest.raises(era.InfeasibleTargetError):
        era.continuous_tanh_forward(s[:1], m[:1], d * PEAK + 1e-9, residual=0.0)
    with pytest.raises(era.InfeasibleTargetError):
        era.check_continuous_tanh(m, s, d * PEAK + 1e-9, residual=0.0)
    bad = m.copy()
    bad[0, 1] = np.nan
    with pytest.raises(era.NonFiniteError):
        era.continuous_tanh_forward(s, bad, -1.0)
    with pytest.raises(era.BadShapeError):
        era.continuous_tanh_forward(s, m[:, :2], -1.0)


def test_backward_against_finite_differences():
    rng = np.random.default_rng(6)
    cases = [(dict(residual=0.0, log_std_min=-20.0, log_std_max=2.0), -2.5, 0.5, 7, 6),  # c > 0
             (dict(residual=0.0, log_std_min=-0.1, log_std_max=2.0), 1.35, 0.3, 5, 40)]  # c < 0 and c = 0
    for kw, h0, scale, seed, rows in cases:
        s, m = batch(rows, 3, seed=seed, mean_scale=scale, logit_scale=0.5)
        _, c = era.continuous_tanh_forward(s, m, h0, return_offset=True, **kw)
        picked = [int(r) for r in np.flatnonzero(c != 0)[:4]]
        assert len(picked) == 4 and (c[picked] < 0).any() == (h0 > 0)
        s, m, c = s[picked], m[picked], c[picked]
        g = rng.standard_normal(s.shape)
        grads = era.continuous_tanh_backward(s, m, g, h0, **kw)

        def loss(s_, m_, t_):
            return float(np.sum(g * era.continuous_tanh_forward(s_, m_, t_, **kw)))

        h = 1e-6
        for idx in [(0, 0), (1, 2), (2, 1), (3, 2)]:
            e = np.zeros_like(s)
            e[idx] = h
            fd_s = (loss(s + e, m, h0) - loss(s - e, m, h0)) / (2 * h)
            fd_m = (loss(s, m + e, h0) - loss(s, m - e, h0)) / (2 * h)
            assert abs(grads.std_logits[idx] - fd_s) < 1e-6 * max(1, abs(fd_s))
            assert abs(grads.mean[idx] - fd_m) < 1e-6 * max(1, abs(fd_m))
        fd_t = (loss(s, m, h0 + h) - loss(s, m, h0 - h)) / (2 * h)
        assert abs(grads.residual.sum() - fd_t) < 1e-6 * max(1, abs(fd_t))
    # rows with c = 0 (the clip at log_std_min lifts them above the target): the continuous
    # backward pass, dL/dmean = 0
    s, m = batch(4, 3, seed=8, logit_scale=2.0)
    kw = dict(residual=0.0, log_std_min=-2.0, log_std_max=2.0)
    g = rng.standard_normal(s.shape)
    _, c = era.continuous_tanh_forward(s, m, -12.0, return_offset=True, **kw)
    assert np.all(c == 0)
    grads = era.continuous_tanh_backward(s, m, g, -12.0, **kw)
    plain = era.continuous_backward(s, g, -12.0, **kw)
    np.testing.assert_array_equal(grads.std_logits, plain.std_logits)
    np.testing.assert_array_equal(grads.mean, 0.0)


def test_adversarial_search_worst_deficit():
    """Rows of 1 to 61 dimensions, means in [-3, 3], logits from flat to one-hot, targets from
    1e-3 to 1e-10 below a peak of the row. The row entropy depends on u = K + c alone,
    sum_i H(mean_i, max(log_std_max + u w_i, log_std_min)); a (local) peak is found here by
    scipy's bounded search over log(-u) with libera's entropy, and every target below it is
    reached, the floor holding to 1e-12 (1 + |target|) by libera's entropy; the ten rows
    closest to failing hold it by the reference quadrature too. (The row entropy need not be
    unimodal in u: see test_rows_with_two_peaks.)"""
    rng = np.random.default_rng(11)
    lo, hi = -20.0, 2.0
    worst = []
    for trial in range(50):
        d = int(rng.integers(1, 62))
        s = float(rng.choice([0.0, 0.3, 1.0, 5.0, 30.0])) * rng.standard_normal(d)
        s[rng.integers(d)] += float(rng.choice([0.0, 40.0]))
        m = rng.uniform(-3, 3, d) * float(rng.choice([0.1, 1.0]))
        w = np.exp(s - s.max())
        w /= w.sum()

        def row(v):  # the row entropy at u = -exp(v)
            return float(era.tanh_gaussian_entropy(m[None], np.maximum(hi - np.exp(v) * w, lo)[None])[0])

        best = optimize.minimize_scalar(lambda v: -row(v), bounds=(-12.0, 700.0), method="bounded",
                                        options={"xatol": 1e-12})
        peak = -best.fun
        if peak >= d * PEAK:
            continue
        for gap in (1e-3, 1e-7, 1e-10):
            target = peak - gap
            out, c = era.continuous_tanh_forward(s[None], m[None], target, residual=0.0, log_std_min=lo,
                                                 log_std_max=hi, return_offset=True)
            deficit = target - float(era.tanh_gaussian_entropy(m[None], out)[0])
            assert deficit <= 1e-12 * (1 + abs(target))
            worst.append((deficit, d, target, m, out[0]))
    assert len(worst) >= 120
    worst.sort(key=lambda item: -item[0])
    for deficit, d, target, m, out in worst[:10]:
        assert reference_entropy(m, out) >= target - 1e-11 * (1 + abs(target))


def test_rows_with_two_peaks():
    """A row whose entropy falls from c = 0 on the side it first rises, then climbs past the
    target: f(c) - target along c from 0 to 42.4 (reference) is -16.5, -16.9, -17.3, -17.8,
    -12.4, -5.9, +0.05 (entries leaving log_std_min lift the slope). A single-peak search
    called it infeasible; libera and the device path search piece by piece between the kinks
    and agree on the root."""
    s = np.array([[-2.0, 10.0, 2.0, -8.0, 5.0]])
    m = np.zeros((1, 5))
    kw = dict(residual=0.0, log_std_min=-20.0, log_std_max=2.0)
    lifted = shifted(s[0], 42.39218506, -27.5, -20.0, 2.0)[0]
    assert reference_entropy(m[0], lifted) >= -27.5  # an offset exists
    out, c = era.continuous_tanh_forward(s, m, -27.5, return_offset=True, **kw)
    assert reference_entropy(m[0], out[0]) >= -27.5 - 1e-10
    assert 0 < c[0] <= 42.4
    # minimal: a little less misses the target
    assert reference_entropy(m[0], shifted(s[0], c[0] - 1e-6 * c[0], -27.5, -20.0, 2.0)[0]) < -27.5
    native = et.continuous_era_tanh(torch.tensor(s), torch.tensor(m), -27.5, backend="native", **kw)
    np.testing.assert_allclose(native.numpy(), out, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------
# era.torch


def test_torch_gradcheck_and_compile():
    s, m = batch(4, 3, seed=5, mean_scale=0.5)
    st = torch.tensor(s, requires_grad=True)
    mt = torch.tensor(m, requires_grad=True)
    f = lambda a, b: et.continuous_era_tanh(a, b, -2.0, residual=0.0)  # noqa: E731
    assert torch.autograd.gradcheck(f, (st, mt), atol=1e-6)
    assert torch.autograd.gradcheck(lambda a, b: et.tanh_gaussian_entropy(a, b), (mt, st), atol=1e-6)
    out = f(st, mt)
    np.testing.assert_array_equal(out.detach().numpy(), era.continuous_tanh_forward(s, m, -2.0, residual=0.0))

    @torch.compile(fullgraph=True, backend="eager")
    def compiled(a, b):
        return et.continuous_era_tanh(a, b, -2.0, residual=0.0).sum() + et.tanh_gaussian_entropy(b, a).sum()

    value = compiled(st, mt)
    value.backward()
    assert st.grad is not None and mt.grad is not None and torch.isfinite(st.grad).all()


def feasible_rows(s, m, target, **kw):
    """The rows of (s, m) that have an offset (libera, one row at a time)."""
    keep = []
    for r in range(len(s)):
        try:
            era.continuous_tanh_forward(s[r:r + 1], m[r:r + 1], target, **kw)
            keep.append(r)
        except era.InfeasibleTargetError:
            pass
    return s[keep], m[keep]


def test_native_backend_agrees_with_libera():
    """The device path (era._formulas) on the CPU with backend="native", a tensor residual and
    its gradient, c > 0 and c < 0 rows."""
    for h0, lo, scale in ((-3.25, -20.0, 0.5), (1.1, -0.1, 0.3)):
        s0, m0 = batch(8, 3, seed=3, mean_scale=scale, logit_scale=0.5)
        s0, m0 = feasible_rows(s0, m0, h0 + 0.25, residual=0.0, log_std_min=lo, log_std_max=2.0)
        _, c = era.continuous_tanh_forward(s0, m0, h0 + 0.25, residual=0.0, log_std_min=lo, log_std_max=2.0,
                                           return_offset=True)
        assert len(s0) >= 3 and (c != 0).sum() >= 2 and ((c < 0).any() == (h0 > 0))
        s, m = torch.tensor(s0, requires_grad=True), torch.tensor(m0, requires_grad=True)
        g = torch.randn(s.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        results = []
        for backend in ("libera", "native"):
            residual = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
            out = et.continuous_era_tanh(s, m, h0, residual=residual, log_std_min=lo, log_std_max=2.0,
                                         backend=backend)
            grads = torch.autograd.grad((out * g).sum(), (s, m, residual))
            results.append((out.detach(), *grads))
        for a, b in zip(*results):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-10)


def test_native_float32_and_faults():
    kw = dict(residual=0.0, log_std_max=2.0)
    s0, m0 = batch(8, 4, seed=7, mean_scale=0.5, logit_scale=0.5)
    s0, m0 = feasible_rows(s0.astype(np.float32), m0.astype(np.float32), -3.0, **kw)
    s, m = torch.from_numpy(s0), torch.from_numpy(m0)
    native = et.continuous_era_tanh(s, m, -3.0, backend="native", **kw)
    libera = et.continuous_era_tanh(s, m, -3.0, **kw)
    np.testing.assert_allclose(native.numpy(), libera.numpy(), rtol=0, atol=4e-6)
    assert era.check_continuous_tanh(m0, native.numpy(), -3.0, tol=0.0, **kw).violations == 0
    far = m.clone()
    far[1] = 5.0
    for backend in ("libera", "native"):
        with pytest.raises(era.InfeasibleTargetError):  # a row's peak below the target
            et.continuous_era_tanh(s, far, -3.0, backend=backend, **kw)
    with pytest.raises(era.InfeasibleTargetError):  # a residual tensor past the static bound: on the device
        et.continuous_era_tanh(s.double(), m.double(), 2.0, residual=torch.tensor(1.0, dtype=torch.float64),
                               log_std_max=2.0, backend="native")
    bad = m.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(era.NonFiniteError):
        et.continuous_era_tanh(s, bad, -3.0, backend="native", **kw)
