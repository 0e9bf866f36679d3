"""era.torch.TruncatedNormal and its operators: values against the numpy level (libera),
the device path (backend="native") against libera, gradients against finite differences in
float64, torch.library.opcheck, torch.compile(fullgraph=True), and the entropy's value."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import era  # noqa: E402
import era.torch as et  # noqa: E402
from era.torch import _ops  # noqa: E402

LOC = [0.3, 0.99, -0.99, 1.0, 1.5, -0.2]
LOG_STD = [-1.0, -4.0, -6.9, -2.0, -1.0, 0.5]


def _params(dtype=torch.float64, grad=False):
    loc = torch.tensor(LOC, dtype=dtype, requires_grad=grad)
    scale = torch.tensor(LOG_STD, dtype=dtype).exp().requires_grad_(grad)
    return loc, scale


@pytest.mark.parametrize("backend", ["auto", "native"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rsample_and_log_prob_match_libera(backend, dtype):
    loc, scale = _params(dtype)
    d = et.TruncatedNormal(loc, scale, backend=backend)
    torch.manual_seed(0)
    x = d.rsample((3,))
    assert x.shape == (3, 6) and x.dtype == dtype
    assert bool(((x >= -1) & (x <= 1)).all())
    torch.manual_seed(0)
    u = torch.rand((3, 6), dtype=dtype).clamp(min=torch.finfo(dtype).tiny)
    want = era.truncated_normal_sample(np.broadcast_to(loc.numpy(), (3, 6)), np.broadcast_to(scale.log().numpy(), (3, 6)),
                                       u.numpy())
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    np.testing.assert_allclose(x.numpy(), want, rtol=tol, atol=tol)
    lp = d.log_prob(x)
    want_lp = era.truncated_normal_log_prob(np.broadcast_to(loc.numpy(), (3, 6)),
                                            np.broadcast_to(scale.log().numpy(), (3, 6)), x.numpy())
    np.testing.assert_allclose(lp.numpy(), want_lp, rtol=tol * 10, atol=tol * 10)


def test_distribution_shapes_and_support():
    d = et.TruncatedNormal(torch.zeros(4, 1), torch.ones(3))
    assert d.batch_shape == (4, 3) and d.event_shape == ()
    assert d.sample((2,)).shape == (2, 4, 3)
    assert d.support.lower_bound == -1 and d.support.upper_bound == 1
    assert et.TruncatedNormal(0.0, 1.0).batch_shape == ()
    assert d.expand((5, 4, 3)).sample().shape == (5, 4, 3)
    outside = et.TruncatedNormal(torch.zeros(3), torch.ones(3), validate_args=False).log_prob(torch.tensor(2.0))
    assert outside.eq(-math.inf).all()
    with pytest.raises(ValueError):
        et.TruncatedNormal(torch.zeros(2), torch.ones(2), validate_args=True).log_prob(torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError):
        et.TruncatedNormal(torch.zeros(2), -torch.ones(2), validate_args=True)
    with pytest.raises(ValueError):
        et.TruncatedNormal(torch.zeros(2), torch.ones(2), low=1.0, high=1.0)


@pytest.mark.parametrize("backend", ["auto", "native"])
def test_rsample_gradient_against_finite_differences(backend):
    loc, scale = _params(grad=True)
    u = torch.tensor([0.2, 0.01, 0.5, 0.9, 0.7, 0.999], dtype=torch.float64)
    x = _ops.truncated_normal_sample(loc, scale.log(), u, -1.0, 1.0, backend == "native")
    x.sum().backward()

    def sample(m, s):
        return era.truncated_normal_sample(m, np.log(s), u.numpy())

    m0, s0 = loc.detach().numpy(), scale.detach().numpy()
    h = 1e-6 * s0
    fd_loc = (sample(m0 + h, s0) - sample(m0 - h, s0)) / (2 * h)
    fd_scale = (sample(m0, s0 + h) - sample(m0, s0 - h)) / (2 * h)
    np.testing.assert_allclose(loc.grad.numpy(), fd_loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scale.grad.numpy(), fd_scale, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["auto", "native"])
def test_log_prob_gradient_against_finite_differences(backend):
    loc, scale = _params(grad=True)
    value = torch.tensor([0.1, 0.98, -0.999, 0.95, 0.9, 0.3], dtype=torch.float64, requires_grad=True)
    et.TruncatedNormal(loc, scale, backend=backend).log_prob(value).sum().backward()

    def log_prob(m, s, v):
        return era.truncated_normal_log_prob(m, np.log(s), v)

    m0, s0, v0 = loc.detach().numpy(), scale.detach().numpy(), value.detach().numpy()
    h = 1e-7 * s0
    for grad, fd in [
        (loc.grad, (log_prob(m0 + h, s0, v0) - log_prob(m0 - h, s0, v0)) / (2 * h)),
        (scale.grad, (log_prob(m0, s0 + h, v0) - log_prob(m0, s0 - h, v0)) / (2 * h)),
        (value.grad, (log_prob(m0, s0, v0 + h) - log_prob(m0, s0, v0 - h)) / (2 * h)),
    ]:
        np.testing.assert_allclose(grad.numpy(), fd, rtol=1e-5, atol=1e-5)


def test_entropy_value_mean_and_variance():
    loc, scale = _params()
    d = et.TruncatedNormal(loc, scale)
    want = era.truncated_normal_entropy(loc.numpy()[:, None], scale.log().numpy()[:, None])
    np.testing.assert_allclose(d.entropy().numpy(), want, rtol=1e-12)
    assert d.entropy().shape == d.batch_shape
    stats = pytest.importorskip("scipy.stats")
    s = scale.numpy()
    a, b = (-1 - loc.numpy()) / s, (1 - loc.numpy()) / s
    np.testing.assert_allclose(d.mean.numpy(), stats.truncnorm.mean(a, b, loc=loc.numpy(), scale=s), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d.variance.numpy(), stats.truncnorm.var(a, b, loc=loc.numpy(), scale=s), rtol=1e-6,
                               atol=1e-12)


def _opcheck_cases():
    loc, scale = _params()
    log_std = scale.log().detach()
    u = torch.tensor([0.2, 0.01, 0.5, 0.9, 0.7, 0.999], dtype=torch.float64)
    x = _ops.truncated_normal_sample(loc, log_std, u, -1.0, 1.0, False)
    g = torch.ones(6, dtype=torch.float64)
    cases = []
    for native_path in (False, True):
        grad_loc = loc.clone().requires_grad_()
        grad_log_std = log_std.clone().requires_grad_()
        grad_x = x.clone().requires_grad_()
        cases += [
            (_ops.truncated_normal_sample, (grad_loc, grad_log_std, u, -1.0, 1.0, native_path)),
            (_ops.truncated_normal_log_prob, (grad_loc, grad_log_std, grad_x, -1.0, 1.0, native_path)),
            (_ops.truncated_normal_sample_backward, (loc, log_std, x, g, -1.0, 1.0, native_path)),
            (_ops.truncated_normal_log_prob_backward, (loc, log_std, x, g, -1.0, 1.0, native_path)),
        ]
    return cases


@pytest.mark.parametrize("index", range(8))
def test_opcheck(index):
    op, args = _opcheck_cases()[index]
    torch.library.opcheck(op, args)


def test_every_operator_is_checked():
    assert {op._name for op, _ in _opcheck_cases()} == {op._name for op in _ops.TRUNCATED_NORMAL_OPERATORS}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compile_fullgraph(dtype):
    torch._dynamo.reset()

    def loss(loc, scale, u):
        d = et.TruncatedNormal(loc, scale)
        x = _ops.truncated_normal_sample(d.loc, d.scale.log(), u, -1.0, 1.0, False)
        return (d.log_prob(x.detach()) + x).sum()

    loc, scale = _params(dtype, grad=True)
    u = torch.full((6,), 0.3, dtype=dtype)
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    out = compiled(loc, scale, u)
    out.backward()
    grads = (loc.grad.clone(), scale.grad.clone())
    loc.grad = scale.grad = None
    loss(loc, scale, u).backward()
    torch.testing.assert_close(out, loss(loc, scale, u))
    torch.testing.assert_close(grads, (loc.grad, scale.grad))


def test_errors_raise_library_exceptions():
    with pytest.raises(era.NonFiniteError):
        et.TruncatedNormal(torch.tensor([0.0, math.nan]), torch.ones(2)).log_prob(torch.zeros(2))
    with pytest.raises(era.BadParameterError):
        _ops.truncated_normal_sample(torch.zeros(2), torch.zeros(2), torch.tensor([0.5, 1.0]), -1.0, 1.0, False)


def test_device_path_reports_bad_values_as_libera_does():
    """backend="native" (the path CUDA tensors take) on CPU tensors: a NaN location, a uniform
    outside (0, 1) and a bad interval raise the classes libera's path raises."""
    loc, log_std = torch.zeros(3, dtype=torch.float64), torch.full((3,), -1.0, dtype=torch.float64)
    u = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)
    for native in (False, True):
        with pytest.raises(era.NonFiniteError):
            _ops.truncated_normal_sample(torch.tensor([0.0, math.nan, 0.0], dtype=torch.float64), log_std, u,
                                         -1.0, 1.0, native)
        with pytest.raises(era.BadParameterError):
            _ops.truncated_normal_sample(loc, log_std, torch.tensor([0.2, 1.0, 0.7], dtype=torch.float64), -1.0,
                                         1.0, native)
        with pytest.raises(era.BadParameterError):
            _ops.truncated_normal_log_prob(loc, log_std, u, 1.0, -1.0, native)
        with pytest.raises(era.BadParameterError):
            _ops.truncated_normal_sample_backward(loc, log_std, torch.tensor([0.2, 1.5, 0.0], dtype=torch.float64),
                                                  torch.ones(3, dtype=torch.float64), -1.0, 1.0, native)


def test_vmap_and_jacobian():
    """torch.func through era.torch.TruncatedNormal: vmap of log_prob over a batch of
    locations equals the rows one by one, and jacrev of the reparameterised sample (diagonal:
    element-wise) equals the backward operator's gradient."""
    from torch.func import jacrev, vmap

    loc = torch.tanh(torch.randn(4, 3, dtype=torch.float64))
    scale = (torch.randn(4, 3, dtype=torch.float64) - 1).exp()
    x = et.TruncatedNormal(loc[0], scale[0]).sample()
    batched = vmap(lambda m, s: et.TruncatedNormal(m, s).log_prob(x))(loc, scale)
    for r in range(4):
        assert torch.equal(batched[r], et.TruncatedNormal(loc[r], scale[r]).log_prob(x))
    u = torch.rand(3, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    log_std = scale[0].log()
    jac = jacrev(lambda m: _ops.TruncatedNormalSampleFunction.apply(m, log_std, u, -1.0, 1.0, False))(loc[0])
    sample = _ops.truncated_normal_sample(loc[0], log_std, u, -1.0, 1.0, False)
    grad_loc, _ = _ops.truncated_normal_sample_backward(loc[0], log_std, sample, torch.ones(3, dtype=torch.float64),
                                                        -1.0, 1.0, False)
    torch.testing.assert_close(jac, torch.diag(grad_loc))
