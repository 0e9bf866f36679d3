"""The sampled floor and the truncated-normal entropy gradient from Python: numpy level and
era.torch (gradcheck, opcheck in test_torch_ops.py, torch.compile fullgraph), against a
float64 reference written here from scipy.stats.truncnorm."""

import numpy as np
import pytest
from scipy.stats import truncnorm

import era

torch = pytest.importorskip("torch")
import era.torch as et  # noqa: E402


def reference_entropy(loc, log_std, lo=-1.0, hi=1.0):
    """Row sums of the truncated-normal entropy, by scipy in float64."""
    loc = np.asarray(loc, np.float64)
    sd = np.exp(np.asarray(log_std, np.float64))
    h = truncnorm.entropy((lo - loc) / sd, (hi - loc) / sd, loc=loc, scale=sd)
    return h.sum(-1)


def batch(rows=64, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    s = 3 * rng.standard_normal((rows, dim))
    m = np.tanh(2 * rng.standard_normal((rows, dim)))
    return s, m


def test_entropy_gradient_against_finite_differences_of_scipy():
    rng = np.random.default_rng(1)
    loc = np.concatenate([np.tanh(2 * rng.standard_normal(40)), [0.999, -0.9999, 0.5, 0.0]])
    log_std = np.concatenate([rng.uniform(-6, 4, 40), [-8.0, -5.0, 6.0, 8.0]])
    g = era.truncated_normal_entropy_backward(loc[:, None], log_std[:, None], np.ones(len(loc)))
    # Steps scaled to the std (curvature ~ 1/sd^2); the reference's rounding (~1e-16 per
    # entropy) then costs up to ~1e-13/h in the differences, allowed for below.
    h = 1e-4 * np.minimum(1.0, np.exp(log_std))
    col = lambda x: x[:, None]  # noqa: E731
    fd_loc = (reference_entropy(col(loc + h), col(log_std)) - reference_entropy(col(loc - h), col(log_std))) / (2 * h)
    fd_ls = (reference_entropy(col(loc), col(log_std + 1e-5)) - reference_entropy(col(loc), col(log_std - 1e-5))) / 2e-5
    scale_loc = np.maximum(1, np.abs(fd_loc))
    scale_ls = np.maximum(1, np.abs(fd_ls))
    noise = 1e-13 / h
    assert np.all(np.abs(g.loc[:, 0] - fd_loc) < 1e-6 * scale_loc + noise)
    assert np.all(np.abs(g.log_std[:, 0] - fd_ls) < 1e-6 * scale_ls + 1e-8)


def test_floor_holds_and_offset_is_smallest():
    for dim in (1, 3, 6, 17):
        s, m = batch(dim=dim, seed=dim)
        h0 = -0.5 * dim
        out, c = era.continuous_truncated_forward(s, m, h0, return_offset=True)
        gauss = era.continuous_forward(s, h0)
        ent = reference_entropy(m, out)
        assert np.all(ent >= h0 - 1e-9)
        active = c > 0
        assert np.all(np.abs(ent[active] - h0) < 1e-9)
        np.testing.assert_array_equal(out[~active], gauss[~active])
        np.testing.assert_allclose(out, gauss + c[:, None], rtol=0, atol=1e-12)
        report = era.check_continuous_truncated(m, out, h0)
        assert report.violations == 0 and report.floor == h0
        assert era.check_continuous_truncated(m, gauss, h0).violations > 0


def test_float32_floor():
    s, m = batch()
    out = era.continuous_truncated_forward(s.astype(np.float32), m.astype(np.float32), -3.0)
    assert out.dtype == np.float32
    assert np.all(reference_entropy(m.astype(np.float32), out) >= -3.0 - 1e-5)


def test_backward_against_finite_differences():
    s, m = batch(rows=5, dim=4, seed=3)
    rng = np.random.default_rng(4)
    g = rng.standard_normal(s.shape)
    h0 = -2.0
    grads = era.continuous_truncated_backward(s, m, g, h0)

    def loss(s_, m_, t_):
        return float(np.sum(g * era.continuous_truncated_forward(s_, m_, t_)))

    h = 1e-6
    for idx in [(0, 0), (1, 2), (4, 3)]:
        e = np.zeros_like(s)
        e[idx] = h
        fd_s = (loss(s + e, m, h0) - loss(s - e, m, h0)) / (2 * h)
        fd_m = (loss(s, m + e, h0) - loss(s, m - e, h0)) / (2 * h)
        assert abs(grads.std_logits[idx] - fd_s) < 1e-6 * max(1, abs(fd_s))
        assert abs(grads.loc[idx] - fd_m) < 1e-6 * max(1, abs(fd_m))
    fd_t = (loss(s, m, h0 + h) - loss(s, m, h0 - h)) / (2 * h)
    assert abs(grads.residual.sum() - fd_t) < 1e-6 * max(1, abs(fd_t))


def test_errors():
    s, m = batch(rows=2, dim=3)
    with pytest.raises(era.InfeasibleTargetError):
        era.continuous_truncated_forward(s, m, 3 * np.log(2.0))
    with pytest.raises(era.BadParameterError):
        era.continuous_truncated_forward(s, m, -1.0, lo=1.0, hi=1.0)
    bad = m.copy()
    bad[1, 2] = np.nan
    with pytest.raises(era.NonFiniteError):
        era.continuous_truncated_forward(s, bad, -1.0)
    with pytest.raises(era.BadParameterError):  # dH/dloc ~ e^100 does not fit float32
        era.truncated_normal_entropy_backward(np.ones((1, 1), np.float32), np.full((1, 1), -100, np.float32),
                                              np.ones(1, np.float32))


def test_torch_gradcheck_and_compile():
    s, m = batch(rows=4, dim=3, seed=5)
    st = torch.tensor(s, requires_grad=True)
    mt = torch.tensor(m, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: et.continuous_era_truncated(a, b, -1.5), (st, mt), atol=1e-6)
    assert torch.autograd.gradcheck(lambda a, b: et.truncated_normal_entropy(a, b), (mt, st), atol=1e-6)
    out = et.continuous_era_truncated(st, mt, -1.5)
    np.testing.assert_array_equal(out.detach().numpy(), era.continuous_truncated_forward(s, m, -1.5))

    @torch.compile(fullgraph=True, backend="eager")
    def compiled(a, b):
        return et.continuous_era_truncated(a, b, -1.5).sum() + et.truncated_normal_entropy(b, a).sum()

    value = compiled(st, mt)
    value.backward()
    assert st.grad is not None and mt.grad is not None and torch.isfinite(st.grad).all()


# The device path (era._formulas through era.torch.native), taken on the CPU with
# backend="native", and a tensor residual with its gradient.


def _batch(seed=3, rows=12, d=5):
    gen = torch.Generator().manual_seed(seed)
    s = (3 * torch.randn(rows, d, generator=gen, dtype=torch.float64)).requires_grad_()
    m = torch.tanh(2 * torch.randn(rows, d, generator=gen, dtype=torch.float64)).requires_grad_()
    return s, m, torch.randn(rows, d, generator=gen, dtype=torch.float64)


def test_native_backend_agrees_with_libera():
    s, m, g = _batch()
    results = []
    for backend in ("libera", "native"):
        residual = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
        out = et.continuous_era_truncated(s, m, -2.75, residual=residual, backend=backend)
        grads = torch.autograd.grad((out * g).sum(), (s, m, residual))
        results.append((out.detach(), *grads))
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-10)


def test_tensor_residual_gradient_against_differences():
    s, m, g = _batch(seed=5)
    residual = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    out = et.continuous_era_truncated(s, m, -3.0, residual=residual)
    (grad,) = torch.autograd.grad((out * g).sum(), residual)
    h = 1e-6
    value = lambda r: float((et.continuous_era_truncated(s.detach(), m.detach(), -3.0, residual=r) * g).sum())  # noqa
    fd = (value(0.5 + h) - value(0.5 - h)) / (2 * h)
    assert abs(float(grad) - fd) <= 1e-6 * (1 + abs(fd))


def test_native_float32_and_compile():
    s, m, _ = _batch(seed=7)
    s32, m32 = s.detach().float(), m.detach().float()
    native = et.continuous_era_truncated(s32, m32, -2.0, backend="native")
    libera = et.continuous_era_truncated(s32, m32, -2.0)
    np.testing.assert_allclose(native.numpy(), libera.numpy(), rtol=0, atol=4e-6)
    assert era.check_continuous_truncated(m32.numpy(), native.numpy(), -2.0, tol=0.0).violations == 0
    residual = torch.tensor(0.5, dtype=torch.float64)
    compiled = torch.compile(lambda a, b, r: et.continuous_era_truncated(a, b, -2.5, residual=r), fullgraph=True)
    np.testing.assert_array_equal(compiled(s.detach(), m.detach(), residual).numpy(),
                                  et.continuous_era_truncated(s.detach(), m.detach(), -2.5, residual=residual).numpy())


def test_native_faults():
    s, m, _ = _batch(seed=9, rows=3, d=2)
    s, m = s.detach(), m.detach()
    with pytest.raises(era.InfeasibleTargetError):  # H0 + delta above 2 log 2: data, checked on the device
        et.continuous_era_truncated(s, m, 1.0, residual=torch.tensor(0.5, dtype=torch.float64), backend="native")
    with pytest.raises(era.BadParameterError):
        et.continuous_era_truncated(s, m, -1.0, residual=torch.tensor(-0.5, dtype=torch.float64), backend="native")
    bad = m.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(era.NonFiniteError):
        et.continuous_era_truncated(s, bad, -1.0, backend="native")
    far = torch.zeros_like(m)
    far[2, 0] = 1e300
    with pytest.raises(era.InfeasibleTargetError):  # no offset reaches the target in double
        et.continuous_era_truncated(torch.zeros_like(s), far, 2 * np.log(2.0) - 1e-3, backend="native")
    with pytest.raises(era.InfeasibleTargetError):  # a parameter: checked by libera on the host
        et.continuous_era_truncated(s, m, 2.0, backend="native")
