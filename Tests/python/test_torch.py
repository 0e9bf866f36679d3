"""era.torch: autograd Functions and modules over libera, and the torch-native path held to
libera on CPU (its CUDA use is tested when a GPU is present)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import era  # noqa: E402
import era.torch as et  # noqa: E402
import reference as ref  # noqa: E402
from era.torch._bridge import to_numpy  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
MODES = ["exact", "tight", "reference"]
BACKENDS = ["libera", "native"]


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def f64(*shape, scale=1.0, grad=True):
    return (torch.randn(*shape, dtype=torch.float64) * scale).requires_grad_(grad)


# ---------------------------------------------------------------------------------------
# Zero copies on CPU


def test_contiguous_tensors_are_handed_over_without_a_copy():
    for t in (torch.randn(4, 5), torch.randn(4, 5, dtype=torch.float64), torch.randn(3, 7).bfloat16()):
        assert to_numpy(t).__array_interface__["data"][0] == t.data_ptr()
    strided = torch.randn(5, 4).t()
    assert to_numpy(strided).__array_interface__["data"][0] != strided.data_ptr()
    np.testing.assert_array_equal(to_numpy(strided), strided.numpy())


# ---------------------------------------------------------------------------------------
# Continuous ERA


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_continuous_gradcheck(backend, shape):
    s = f64(*shape, scale=2.0)
    residual = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)

    def fn(s, residual):
        return et.continuous_era(s, -1.0 * shape[-1], residual=residual, backend=backend)

    assert torch.autograd.gradcheck(fn, (s, residual))


@pytest.mark.parametrize("backend", BACKENDS)
def test_continuous_forward_matches_reference(backend):
    s = f64(6, 3, scale=3.0, grad=False)
    out = et.continuous_era(s, -2.0, residual=0.3, backend=backend)
    np.testing.assert_allclose(out.numpy(), ref.continuous_forward(s.numpy(), -2.0, 0.3), rtol=1e-13, atol=1e-13)


def test_continuous_native_equals_libera_float32():
    s = torch.randn(64, 5) * 4
    s[0, 0] = 30.0  # clipped at log_std_min
    libera = et.continuous_era(s, -20.0, residual=0.1, backend="libera")
    native = et.continuous_era(s, -20.0, residual=0.1, backend="native")
    assert native.dtype == torch.float32
    torch.testing.assert_close(native, libera, rtol=0, atol=0)  # same double math, same upward rounding
    s.requires_grad_(True)
    g = torch.randn(64, 5)
    (grad_libera,) = torch.autograd.grad(et.continuous_era(s, -20.0, backend="libera"), s, g)
    (grad_native,) = torch.autograd.grad(et.continuous_era(s, -20.0, backend="native"), s, g)
    torch.testing.assert_close(grad_native, grad_libera, rtol=1e-5, atol=1e-6)


def test_continuous_errors_are_the_same_on_both_paths():
    for backend in BACKENDS:
        with pytest.raises(era.InfeasibleTargetError):
            et.continuous_era(torch.zeros(2, 3), 10.0, backend=backend)
        with pytest.raises(era.NonFiniteError):
            et.continuous_era(torch.tensor([[0.0, math.nan]]), -3.0, backend=backend)
        with pytest.raises(era.DTypeError):
            et.continuous_era(torch.zeros(2, 3, dtype=torch.int32), -3.0, backend=backend)
        with pytest.raises(era.BadParameterError):
            et.continuous_era(torch.zeros(2, 3), -3.0, residual=-1.0, backend=backend)


# ---------------------------------------------------------------------------------------
# Discrete ERA


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_discrete_gradcheck(backend, mode):
    z = f64(2, 3, 5, scale=2.0)
    assert torch.autograd.gradcheck(lambda z: et.discrete_era(z, 1.0, mode=mode, backend=backend), (z,))


@pytest.mark.parametrize("mode", MODES)
def test_discrete_native_equals_libera(mode):
    z = torch.randn(8, 12, dtype=torch.float64) * 5
    z[0] = torch.tensor([200.0] + [0.0] * 11, dtype=torch.float64)  # near one-hot: some y clamp to tiny
    libera = et.discrete_era(z, 1.5, mode=mode, backend="libera")
    native = et.discrete_era(z, 1.5, mode=mode, backend="native")
    torch.testing.assert_close(native, libera, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(libera.numpy(), ref.discrete_forward(z.numpy(), 1.5, mode=mode), rtol=1e-12)
    z32 = z.float()
    torch.testing.assert_close(et.discrete_era(z32, 1.5, mode=mode, backend="native"),
                               et.discrete_era(z32, 1.5, mode=mode, backend="libera"), rtol=1e-6, atol=1e-6)
    z.requires_grad_(True)
    g = torch.randn(8, 12, dtype=torch.float64)
    (a,) = torch.autograd.grad(et.discrete_era(z, 1.5, mode=mode, backend="libera"), z, g)
    (b,) = torch.autograd.grad(et.discrete_era(z, 1.5, mode=mode, backend="native"), z, g)
    torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_discrete_gradient_finite_at_zero_offset(backend):
    # H0 on EXACT's lower bound 1 + log(up) gives b = 0: dt/dy ~ 1/y overflows for a class
    # whose probability is ~1e-307, though the gradient is bounded; and the top class of a
    # near one-hot row keeps its gradient (minus the sum of the others), not a cancelled 0.
    tau = 8.25
    h0 = 1 + math.log(math.log(tau) / tau)
    z = torch.tensor([[0.0, -706.0, 0.0], [0.0, 0.0, 40.0]], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([[100.0, 100.0, -100.0], [1.3e-4, -0.7e-4, 6.4e-4]], dtype=torch.float64)
    (grad,) = torch.autograd.grad(et.discrete_era(z, h0, tau=tau, backend=backend), z, g)
    want = ref.discrete_backward(z.detach().numpy(), g.numpy(), h0, tau=tau, mode="exact")
    assert torch.isfinite(grad).all()
    error = np.abs(grad.numpy() - want) / np.abs(want).max(axis=-1, keepdims=True)
    assert error.max() <= 1e-12, error
    assert grad[1, 2] != 0


def test_discrete_errors_are_the_same_on_both_paths():
    for backend in BACKENDS:
        with pytest.raises(era.InfeasibleTargetError):
            et.discrete_era(torch.zeros(2, 3), 9.0, backend=backend)
        with pytest.raises(era.BadShapeError):
            et.discrete_era(torch.zeros(2, 1), 0.5, backend=backend)
        with pytest.raises(era.NonFiniteError):
            et.discrete_era(torch.tensor([[0.0, math.inf]]), 0.5, backend=backend)
        with pytest.raises(era.BadParameterError):
            et.discrete_era(torch.zeros(2, 3), 0.5, mode="greedy", backend=backend)


def test_non_contiguous_and_empty_tensors():
    z = torch.randn(6, 4, dtype=torch.float64).t()
    torch.testing.assert_close(et.discrete_era(z, 0.9), et.discrete_era(z.contiguous(), 0.9), rtol=0, atol=0)
    assert et.discrete_era(torch.zeros(0, 4), 0.9).shape == (0, 4)
    assert et.continuous_era(torch.zeros(0, 4), -2.0).shape == (0, 4)


def test_backend_argument():
    with pytest.raises(ValueError, match="backend"):
        et.discrete_era(torch.zeros(2, 3), 0.9, backend="gpu")
    with pytest.raises(era.DTypeError, match="CPU"):
        et.discrete_era(torch.zeros(2, 3, device="meta"), 0.9, backend="libera")


# ---------------------------------------------------------------------------------------
# Entropies (metrics)


@pytest.mark.parametrize("backend", BACKENDS)
def test_entropies_match_reference_and_carry_no_gradient(backend):
    z = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    h = et.softmax_entropy(z, backend=backend)
    assert not h.requires_grad and h.shape == (3, 4)
    np.testing.assert_allclose(h.numpy(), ref.softmax_entropy(z.detach().numpy()), rtol=1e-12)
    g = et.gaussian_entropy(z, backend=backend)
    np.testing.assert_allclose(g.numpy(), ref.gaussian_entropy(z.detach().numpy()), rtol=1e-12)
    masked = torch.randn(5, 7)
    masked[1, :3] = -math.inf
    t = et.token_entropy(masked, backend=backend)
    assert t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), ref.softmax_entropy(masked.numpy()), rtol=2e-6, atol=2e-6)
    tb = et.token_entropy(masked.bfloat16(), backend=backend)
    np.testing.assert_allclose(tb.numpy(), ref.softmax_entropy(masked.bfloat16().float().numpy()), rtol=2e-6,
                               atol=2e-6)


def test_squashed_entropies():
    mean, log_std = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64) * 0.5
    np.testing.assert_allclose(et.tanh_gaussian_entropy(mean, log_std).numpy(),
                               era.tanh_gaussian_entropy(mean.numpy(), log_std.numpy()), rtol=0)
    np.testing.assert_allclose(et.truncated_normal_entropy(mean, log_std, -1.0, 1.0).numpy(),
                               ref.truncated_normal_entropy(mean.numpy(), log_std.numpy(), -1.0, 1.0), rtol=1e-9)


def test_native_entropy_errors():
    with pytest.raises(era.NonFiniteError):
        et.token_entropy(torch.full((2, 3), -math.inf), backend="native")
    with pytest.raises(era.NonFiniteError):
        et.softmax_entropy(torch.tensor([[0.0, math.nan]]), backend="native")


# ---------------------------------------------------------------------------------------
# Modules


def test_era_continuous_module():
    module = et.ERAContinuous(3)
    assert module.target_entropy == -1.5  # SAC-ERA default -0.5 * D
    mean, s = torch.randn(5, 3), torch.randn(5, 3)
    out_mean, log_std = module(mean, s)
    assert out_mean is mean and log_std.shape == (5, 3)
    assert torch.all(ref_gaussian(log_std) >= -1.5 - 1e-5)
    with pytest.raises(era.BadShapeError):
        module(torch.randn(5, 4), torch.randn(5, 4))
    assert "action_dim=3" in repr(module)


def ref_gaussian(log_std):
    return torch.from_numpy(ref.gaussian_entropy(log_std.detach().double().numpy()))


def test_learnable_residual_gradients_and_projection():
    module = et.ERAContinuous(2, -1.0, residual=0.5, learn_residual=True).double()
    assert isinstance(module.residual, torch.nn.Parameter)
    s = torch.randn(4, 2, dtype=torch.float64)
    _, log_std = module(torch.zeros(4, 2, dtype=torch.float64), s)
    log_std.sum().backward()
    # d(sum log_std)/d(delta) = sum over rows of sum_i w_i = rows (nothing clipped)
    assert module.residual.grad.item() == pytest.approx(4.0, rel=1e-12)
    mean = torch.randn(4, 2, dtype=torch.float64)
    module.residual.grad = None
    loss = module.residual_loss(mean, log_std)
    loss.backward()
    squashed = era.tanh_gaussian_entropy(mean.numpy(), log_std.detach().numpy()).mean()
    assert module.residual.grad.item() == pytest.approx(squashed - (-1.0), rel=1e-12)
    trunc = module.residual_loss(mean, log_std, squash="truncated_normal")
    want = era.truncated_normal_entropy(np.tanh(mean.numpy()), log_std.detach().numpy(), -1.0, 1.0).mean() + 1.0
    assert trunc.item() == pytest.approx(0.5 * want, rel=1e-12)
    with torch.no_grad():
        module.residual.fill_(-0.2)
    module(torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
    assert module.residual.item() == 0.0  # projected back to delta >= 0
    # and down to the largest feasible delta: D (0.5 log(2 pi e) + log_std_max) - H0
    # (here 2 * 1.4189385332 + 1), where the floor is the entropy of stds all at exp(0);
    # beyond it the forward would raise InfeasibleTargetError in the middle of training.
    assert module.max_residual == pytest.approx(2 * 0.5 * math.log(2 * math.pi * math.e) + 1.0, rel=1e-15)
    with torch.no_grad():
        module.residual.fill_(50.0)
    _, log_std = module(torch.zeros(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64))
    assert module.residual.item() == pytest.approx(module.max_residual, rel=2e-9)
    torch.testing.assert_close(log_std, torch.zeros_like(log_std), rtol=0, atol=1e-8)


def test_residual_tuning_raises_delta_while_squashed_entropy_is_low():
    # Wide stds squashed by tanh lose entropy: the tuning loss pushes delta up, which raises
    # the Gaussian floor and with it the squashed entropy.
    module = et.ERAContinuous(2, -0.5, learn_residual=True).double()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    s, mean = torch.zeros(16, 2, dtype=torch.float64), torch.zeros(16, 2, dtype=torch.float64)
    first = None
    for _ in range(20):
        _, log_std = module(mean, s)
        entropy = module.squashed_entropy(mean, log_std).mean().item()
        first = entropy if first is None else first
        optimizer.zero_grad()
        module.residual_loss(mean, log_std).backward()
        optimizer.step()
    assert module.residual.item() > 0
    _, log_std = module(mean, s)
    assert abs(module.squashed_entropy(mean, log_std).mean().item() + 0.5) < abs(first + 0.5)


def test_era_discrete_module():
    module = et.ERADiscrete(1.0, mode="tight")
    z = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    out = module(z)
    assert out.shape == z.shape
    assert module.floor(10) == 1.0 and module.infimum(10) == pytest.approx(1.0, abs=1e-9)
    assert torch.autograd.gradcheck(module, (z,))
    assert np.all(ref.softmax_entropy(out.detach().numpy()) >= 1.0 - 1e-9)
    with pytest.raises(era.BadParameterError):
        et.ERADiscrete(1.0, mode="nope")


# ---------------------------------------------------------------------------------------
# CUDA: the native path on the GPU against libera on the CPU


@cuda
def test_cuda_native_matches_libera():
    z = torch.randn(16, 10, dtype=torch.float64)
    for mode in MODES:
        torch.testing.assert_close(et.discrete_era(z.cuda(), 1.0, mode=mode).cpu(),
                                   et.discrete_era(z, 1.0, mode=mode), rtol=1e-12, atol=1e-12)
    s = torch.randn(16, 4)
    torch.testing.assert_close(et.continuous_era(s.cuda(), -2.0, residual=0.2).cpu(),
                               et.continuous_era(s, -2.0, residual=0.2), rtol=0, atol=1e-6)
    torch.testing.assert_close(et.token_entropy(z.float().cuda()).cpu(), et.token_entropy(z.float()),
                               rtol=1e-5, atol=1e-5)
    module = et.ERAContinuous(4, learn_residual=True).cuda()
    _, log_std = module(torch.zeros(2, 4, device="cuda"), torch.randn(2, 4, device="cuda"))
    assert module.residual_loss(torch.zeros(2, 4, device="cuda"), log_std).device.type == "cuda"
