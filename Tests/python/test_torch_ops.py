"""era.torch as PyTorch operators (torch.ops.era.*): opcheck, torch.compile with no graph
break, torch.export, torch.func, half precision and autocast, second derivatives, the device
path's checks (no host synchronisation) and memory, strided logits. CUDA tests skip without a
GPU."""

import io
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import era  # noqa: E402
import era.torch as et  # noqa: E402
import reference as ref  # noqa: E402
from era.torch import _checks, _ops, native  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
BACKENDS = ["libera", "native"]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


@pytest.fixture
def deferred():
    _checks.check_device_errors()  # nothing left over from another test
    et.set_device_checks("deferred")
    yield
    et.set_device_checks("auto")
    _checks.check_device_errors()


def opcheck_cases():
    """(name, operator, arguments) over dtypes, shapes and both backends."""
    cases = []
    for dtype in DTYPES:
        for native_path in (False, True):
            tag = f"{str(dtype)[6:]}-{'native' if native_path else 'libera'}"
            for shape in ((3, 5), (2, 2, 4)):
                x = torch.randn(shape, dtype=dtype, requires_grad=True)
                g = torch.randn(shape, dtype=dtype)
                rows = shape[:-1]
                residual = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
                labels = torch.randint(0, shape[-1], rows)
                scale = torch.full(rows, 2.0)
                cases += [
                    (f"continuous_forward-{tag}", _ops.continuous_forward, (x, residual, -3.0, -8.0, 0.0, native_path)),
                    (f"continuous_forward-none-{tag}", _ops.continuous_forward,
                     (x, None, -2.5, -8.0, 0.0, native_path)),
                    (f"continuous_backward-{tag}", _ops.continuous_backward,
                     (x, residual, g, -3.0, -8.0, 0.0, native_path)),
                    (f"discrete_forward-{tag}", _ops.discrete_forward, (x, 1.0, 4.0, "exact", native_path)),
                    (f"discrete_backward-{tag}", _ops.discrete_backward, (x, g, 1.0, 4.0, "tight", native_path)),
                    (f"llm_logprob_forward-{tag}", _ops.llm_logprob_forward, (x, labels, scale, native_path, 0)),
                    (f"llm_logprob_backward-{tag}", _ops.llm_logprob_backward,
                     (x, labels, None, torch.randn(rows), native_path, 0)),
                    # top-k log-probs (top_k = 2 of 4 or 5 logits)
                    (f"llm_logprob_forward-topk-{tag}", _ops.llm_logprob_forward, (x, labels, scale, native_path, 2)),
                    (f"llm_logprob_backward-topk-{tag}", _ops.llm_logprob_backward,
                     (x, labels, None, torch.randn(rows), native_path, 2)),
                    # metrics take no gradient: their inputs are detached by era.torch
                    (f"token_entropy-{tag}", _ops.token_entropy, (x.detach(), native_path)),
                    (f"softmax_entropy-{tag}", _ops.softmax_entropy, (x.detach(), native_path)),
                    (f"gaussian_entropy-{tag}", _ops.gaussian_entropy, (x.detach(), native_path)),
                ]
            hidden = torch.randn(2, 3, 4, dtype=dtype, requires_grad=True)
            weight = torch.randn(7, 4, dtype=dtype, requires_grad=True)
            tokens = torch.randint(0, 7, (2, 3))
            features, classes = torch.randn(5, 4, dtype=dtype, requires_grad=True), torch.randint(0, 7, (5,))
            bias = torch.randn(7, dtype=dtype, requires_grad=True)
            cases += [
                (f"llm_linear_logprob_forward-{tag}", _ops.llm_linear_logprob_forward,
                 (hidden, weight, tokens, torch.full((2, 3), 0.5), native_path, 0)),
                (f"llm_linear_logprob_backward-{tag}", _ops.llm_linear_logprob_backward,
                 (hidden, weight, tokens, None, torch.randn(2, 3), True, True, native_path, 0)),
                (f"llm_linear_logprob_forward-topk-{tag}", _ops.llm_linear_logprob_forward,
                 (hidden, weight, tokens, torch.full((2, 3), 0.5), native_path, 3)),
                (f"llm_linear_logprob_backward-topk-{tag}", _ops.llm_linear_logprob_backward,
                 (hidden, weight, tokens, None, torch.randn(2, 3), True, True, native_path, 3)),
                (f"linear_discrete_ce-{tag}", _ops.linear_discrete_ce,
                 (features, weight, bias, classes, 1.0, 4.0, "exact", True, native_path)),
            ]
            if dtype in (torch.float32, torch.float64):
                ids = torch.tensor([0, 0, 1, -1, 1, 2])
                h = (torch.rand(6) * 4).to(dtype)
                cases += [
                    (f"llm_response_entropy-{tag}", _ops.llm_response_entropy, (h, ids, 3, 0.2, native_path)),
                    (f"llm_scales-{tag}", _ops.llm_scales,
                     (torch.tensor([0.1, 1.0, 5.0]), ids, torch.randn(6, dtype=dtype), 0.45, 3.0, 2.0, True,
                      native_path)),
                ]
    cases += [
        ("tanh_gaussian_entropy", _ops.tanh_gaussian_entropy, (torch.randn(3, 4), torch.randn(3, 4))),
        ("truncated_normal_entropy", _ops.truncated_normal_entropy, (torch.randn(3, 4), torch.randn(3, 4), -1.0, 1.0)),
    ]
    # The sampled floor and the truncated-normal entropy gradient (float64 for gradcheck).
    loc = torch.tanh(torch.randn(3, 4, dtype=torch.float64)).requires_grad_()
    log_std = torch.randn(3, 4, dtype=torch.float64).requires_grad_()
    cases += [
        ("truncated_normal_entropy-grad", _ops.truncated_normal_entropy, (loc, log_std, -1.0, 1.0)),
        ("truncated_normal_entropy_backward", _ops.truncated_normal_entropy_backward,
         (loc.detach(), log_std.detach(), torch.randn(3, dtype=torch.float64), -1.0, 1.0)),
        ("continuous_truncated_forward", _ops.continuous_truncated_forward,
         (log_std, loc, None, -2.0, -1.0, 1.0, -8.0, 0.0, False)),
        ("continuous_truncated_forward-native", _ops.continuous_truncated_forward,
         (log_std, loc, None, -2.0, -1.0, 1.0, -8.0, 0.0, True)),
        ("continuous_truncated_forward-residual", _ops.continuous_truncated_forward,
         (log_std, loc, torch.tensor(0.5, dtype=torch.float64, requires_grad=True), -2.5, -1.0, 1.0, -8.0, 0.0,
          False)),
        ("continuous_truncated_backward", _ops.continuous_truncated_backward,
         (log_std.detach(), loc.detach(), None, torch.randn(3, 4, dtype=torch.float64), -2.0, -1.0, 1.0, -8.0, 0.0,
          False)),
        ("continuous_truncated_backward-native", _ops.continuous_truncated_backward,
         (log_std.detach(), loc.detach(), torch.tensor(0.5, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64),
          -2.5, -1.0, 1.0, -8.0, 0.0, True)),
    ]
    # The tanh sampled floor and the tanh-Gaussian entropy gradient (rows with an offset at H0 = -4).
    gen = torch.Generator().manual_seed(0)
    mean = (0.3 * torch.randn(3, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    std_logits = (0.5 * torch.randn(3, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    cases += [
        ("tanh_gaussian_entropy-grad", _ops.tanh_gaussian_entropy, (mean, log_std)),
        ("tanh_gaussian_entropy_backward", _ops.tanh_gaussian_entropy_backward,
         (mean.detach(), log_std.detach(), torch.randn(3, dtype=torch.float64))),
        ("continuous_tanh_forward", _ops.continuous_tanh_forward, (std_logits, mean, None, -4.0, -20.0, 2.0, False)),
        ("continuous_tanh_forward-native", _ops.continuous_tanh_forward,
         (std_logits, mean, None, -4.0, -20.0, 2.0, True)),
        ("continuous_tanh_forward-residual", _ops.continuous_tanh_forward,
         (std_logits, mean, torch.tensor(0.25, dtype=torch.float64, requires_grad=True), -4.25, -20.0, 2.0, False)),
        ("continuous_tanh_backward", _ops.continuous_tanh_backward,
         (std_logits.detach(), mean.detach(), None, torch.randn(3, 4, dtype=torch.float64), -4.0, -20.0, 2.0,
          False)),
        ("continuous_tanh_backward-native", _ops.continuous_tanh_backward,
         (std_logits.detach(), mean.detach(), torch.tensor(0.25, dtype=torch.float64),
          torch.randn(3, 4, dtype=torch.float64), -4.25, -20.0, 2.0, True)),
    ]
    return cases


OPCHECK = opcheck_cases()


@pytest.mark.parametrize("index", range(len(OPCHECK)), ids=[name for name, _, _ in OPCHECK])
def test_opcheck(index):
    _, op, args = OPCHECK[index]
    torch.library.opcheck(op, args)


def test_every_operator_is_checked():
    names = {name.split("-")[0] for name, _, _ in OPCHECK}
    assert names == {op._name for op in _ops.OPERATORS}


@pytest.mark.parametrize("name", ["discrete", "continuous", "logprob", "llm_era", "token", "softmax", "gaussian"])
def test_functions_are_era_operators_in_a_traced_graph(name):
    x = torch.randn(4, 6, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3])
    call = {
        "discrete": (lambda x: et.discrete_era(x, 1.0), {"discrete_forward", "discrete_backward"}),
        "continuous": (lambda x: et.continuous_era(x, -3.0, residual=torch.tensor(0.1)),
                       {"continuous_forward", "continuous_backward"}),
        "logprob": (lambda x: et.llm_logprob(x, labels)[0], {"llm_logprob_forward", "llm_logprob_backward"}),
        "llm_era": (lambda x: et.llm_era(x, labels, torch.ones(4), response_ids=torch.tensor([0, 0, 1, 1]),
                                         num_responses=2).logprobs,
                    {"token_entropy", "llm_response_entropy", "llm_scales", "llm_logprob_forward",
                     "llm_logprob_backward"}),
        "token": (lambda x: et.token_entropy(x) + x.sum(-1), {"token_entropy"}),
        "softmax": (lambda x: et.softmax_entropy(x) + x.sum(-1), {"softmax_entropy"}),
        "gaussian": (lambda x: et.gaussian_entropy(x) + x.sum(-1), {"gaussian_entropy"}),
    }[name]
    fn, wanted = call

    def step(x):
        (grad,) = torch.autograd.grad(fn(x).sum(), x)
        return grad

    graph = torch.fx.experimental.proxy_tensor.make_fx(step)(x)
    seen = {node.target._opname for node in graph.graph.nodes
            if node.op == "call_function" and getattr(node.target, "namespace", None) == "era"}
    assert seen == wanted


# ---------------------------------------------------------------------------------------
# torch.compile, torch.export, torch.func


class Classifier(torch.nn.Module):
    def __init__(self, features=20, classes=10):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(features, 64), torch.nn.ReLU(), torch.nn.Linear(64, classes))
        self.era = et.ERADiscrete(1.0)

    def forward(self, x):
        return self.era(self.net(x))


class Actor(torch.nn.Module):
    """A SAC actor head: mean and ERA log stds, with a learned residual."""

    def __init__(self, obs=17, dim=6):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(obs, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2 * dim))
        self.era = et.ERAContinuous(dim, residual=0.3, learn_residual=True)

    def forward(self, obs):
        mean, raw = self.body(obs).chunk(2, dim=-1)
        return self.era(mean, raw)


def assert_compiles_like_eager(fn, params, *inputs):
    """fullgraph compilation with no graph break, and the same loss and gradients as eager."""
    explanation = torch._dynamo.explain(fn)(*inputs)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    losses, grads = [], []
    for run in (fn, torch.compile(fn, fullgraph=True)):
        for p in params:
            p.grad = None
        loss = run(*inputs)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in params])
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for compiled, eager in zip(*grads):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-6)


def test_compile_classifier():
    torch._dynamo.reset()
    model = Classifier()
    x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
    assert_compiles_like_eager(lambda x, y: torch.nn.functional.cross_entropy(model(x), y),
                               list(model.parameters()), x, y)


def test_compile_sac_actor_with_a_learned_residual():
    torch._dynamo.reset()
    actor = Actor()
    obs = torch.randn(256, 17)

    def loss(obs):
        mean, log_std = actor(obs)
        return (mean ** 2).mean() - log_std.mean() + actor.era.residual_loss(mean, log_std)

    assert_compiles_like_eager(loss, list(actor.parameters()), obs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compile_llm_era_padded_batch(dtype):
    torch._dynamo.reset()
    batch, length, vocab = 3, 9, 40
    logits = (torch.randn(batch, length + 1, vocab) * 2).to(dtype).requires_grad_(True)
    labels = torch.randint(0, vocab, (batch, length))
    advantages = torch.tensor([1.0, -0.5, 0.25])
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[2, 5:] = False
    module = et.LLMERA()

    def loss(logits):
        out = module(logits[:, :-1], labels, advantages, response_mask=mask)  # verl's shifted slice
        return -(out.advantages * out.logprobs * mask).sum() / mask.sum()

    assert_compiles_like_eager(loss, [logits], logits)


def test_compiled_classifier_step_is_no_slower_than_eager():
    # Not a timing assertion (the machine is noisy): the compiled graph holds exactly the two
    # era operators and nothing runs outside it; bench/run.py reports the step times.
    model = Classifier()
    x = torch.randn(64, 20)
    graph = torch.fx.experimental.proxy_tensor.make_fx(lambda x: model(x))(x)
    era_nodes = [n for n in graph.graph.nodes
                 if n.op == "call_function" and getattr(n.target, "namespace", None) == "era"]
    assert len(era_nodes) == 1


def test_export_classifier_round_trip():
    model = Classifier().eval()
    x = torch.randn(8, 20)
    program = torch.export.export(model, (x,))
    assert "torch.ops.era.discrete_forward.default" in program.graph_module.code
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    torch.testing.assert_close(loaded.module()(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_grad_gives_per_sample_gradients(backend):
    model = Classifier()
    model.era.backend = backend
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = torch.randn(6, 20), torch.randint(0, 10, (6,))

    def loss(params, xi, yi):
        out = torch.func.functional_call(model, params, (xi[None],))
        return torch.nn.functional.cross_entropy(out, yi[None])

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(len(x)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(per_sample[name][i], p.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_jacrev_and_vmap_of_every_function(backend):
    x = torch.randn(3, 5, dtype=torch.float64)
    residual = torch.tensor(0.2, dtype=torch.float64)
    labels = torch.tensor([0, 4, 2])
    functions = [
        lambda x: et.discrete_era(x, 1.0, backend=backend),
        lambda x: et.continuous_era(x, -3.0, residual=residual, backend=backend),
        lambda x: et.llm_logprob(x, labels, backend=backend)[0],
    ]
    for fn in functions:
        jac = torch.func.jacrev(fn)(x)
        want = torch.autograd.functional.jacobian(fn, x)
        torch.testing.assert_close(jac, want, rtol=1e-12, atol=1e-12)
        batched = torch.func.vmap(fn, in_dims=0)(x[None].expand(2, 3, 5))
        torch.testing.assert_close(batched[1], fn(x), rtol=0, atol=0)


def test_forward_mode_is_refused_clearly():
    x = torch.randn(3, 5, dtype=torch.float64)
    with pytest.raises(NotImplementedError, match="jvp"):
        torch.func.jvp(lambda x: et.discrete_era(x, 1.0), (x,), (torch.ones_like(x),))


def test_vmap_over_the_residual_loops():
    s = torch.randn(4, 3, dtype=torch.float64)
    residuals = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    batched = torch.func.vmap(lambda r: et.continuous_era(s, -2.0, residual=r))(residuals)
    for i, r in enumerate(residuals):
        torch.testing.assert_close(batched[i], et.continuous_era(s, -2.0, residual=float(r)), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------
# Second derivatives: exact (against finite differences), the same on both backends


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["exact", "tight", "reference"])
def test_discrete_double_backward(backend, mode):
    z = (torch.randn(3, 5, dtype=torch.float64) * 2).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda z: et.discrete_era(z, 1.0, mode=mode, backend=backend), (z,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_continuous_double_backward(backend):
    s = (torch.randn(3, 4, dtype=torch.float64) * 2).requires_grad_(True)
    residual = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda s, r: et.continuous_era(s, -3.0, residual=r, backend=backend),
                                        (s, residual))
    clipped = torch.randn(3, 4, dtype=torch.float64)
    clipped[0, 0] = 30.0
    clipped.requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda s: et.continuous_era(s, -20.0, backend=backend), (clipped,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_logprob_double_backward(backend):
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    labels, scale = torch.tensor([0, 5, 2]), torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    assert torch.autograd.gradgradcheck(lambda x: et.llm_logprob(x, labels, scale, backend=backend)[0], (x,))


def test_hessian_vector_product_of_a_classifier_against_finite_differences():
    # What second-order optimisers and gradient penalties compute: H v by double backward, the
    # same on both backends and equal to the central difference of gradients.
    model = Classifier(features=5, classes=6).double()
    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 6, (16,))
    params = list(model.parameters())
    v = [torch.randn_like(p) for p in params]

    def gradient(backend):
        model.era.backend = backend
        return torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), params, create_graph=True)

    products = []
    for backend in BACKENDS:
        grads = gradient(backend)
        products.append(torch.autograd.grad(grads, params, v))
    eps = 1e-5
    with torch.no_grad():
        for p, d in zip(params, v):
            p.add_(eps * d)
    plus = [g.detach() for g in gradient("libera")]
    with torch.no_grad():
        for p, d in zip(params, v):
            p.sub_(2 * eps * d)
    minus = [g.detach() for g in gradient("libera")]
    for libera_hv, native_hv, gp, gm in zip(*products, plus, minus):
        difference = (gp - gm) / (2 * eps)
        torch.testing.assert_close(libera_hv, native_hv, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(libera_hv, difference, rtol=1e-5, atol=1e-7)
    era_part = products[0][0].abs().max()
    assert era_part > 0


# ---------------------------------------------------------------------------------------
# Half precision, autocast, dtypes of labels and advantages


def ulps(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference in units of the last place of a's dtype, at b's magnitude."""
    spacing = torch.finfo(a.dtype).eps * b.abs().double().clamp_min(torch.finfo(a.dtype).tiny)
    return float(((a.double() - b.double()).abs() / spacing).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_discrete_half_precision(backend, dtype):
    z = torch.randn(64, 10) * 3
    half = z.to(dtype).requires_grad_(True)
    out = et.discrete_era(half, 1.2, backend=backend)
    assert out.dtype == dtype
    want = et.discrete_era(half.detach().float(), 1.2)  # float32 math on the same values
    assert ulps(out.detach(), want) <= 1.0
    g = torch.randn(64, 10)
    out.backward(g.to(dtype))
    assert half.grad.dtype == dtype
    z32 = half.detach().float().requires_grad_(True)
    et.discrete_era(z32, 1.2).backward(g.to(dtype).float())
    scale = z32.grad.abs().amax(-1, keepdim=True)
    error = ((half.grad.float() - z32.grad) / scale).abs().max()
    assert error <= 2 * torch.finfo(dtype).eps



@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_discrete_half_precision_floor_up_to_the_rounding_of_the_outputs(dtype):
    # The floor holds for the float32 logits ERA computes; storing them in half precision
    # moves each by up to half a step: measured at most 4.5e-3 nats below H0 (docs/python.md).
    worst = 0.0
    for classes, h0 in ((2, 0.2), (10, 0.5), (10, 1.2), (100, 2.0), (1000, 3.0)):
        for scale in (0.1, 1.0, 10.0, 100.0):
            z = (torch.randn(1024, classes) * scale).to(dtype)
            for mode in ("exact", "tight"):
                entropy = ref.softmax_entropy(et.discrete_era(z, h0, mode=mode).double().numpy())
                worst = max(worst, float(np.max(h0 - entropy)))
    assert worst <= 0.01


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_continuous_half_precision_keeps_the_floor(backend, dtype):
    s = (torch.randn(128, 6) * 3).to(dtype).requires_grad_(True)
    log_std = et.continuous_era(s, -3.0, residual=0.25, backend=backend)
    assert log_std.dtype == dtype
    entropy = ref.gaussian_entropy(log_std.detach().double().numpy())
    assert entropy.min() >= -2.75 - 1e-6  # rounded upwards: the floor holds for the stored values
    exact = ref.continuous_forward(s.detach().double().numpy(), -3.0, 0.25)
    assert np.all(log_std.detach().double().numpy() >= exact - 1e-6)
    assert ulps(log_std.detach(), torch.from_numpy(exact)) <= 1.0
    log_std.sum().backward()
    assert s.grad.dtype == dtype and torch.isfinite(s.grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_llm_half_precision_logits(backend, dtype):
    z = (torch.randn(6, 50) * 2).to(dtype).requires_grad_(True)
    labels = torch.randint(0, 50, (6,), dtype=torch.int32)
    logprob, entropy = et.llm_logprob(z, labels, backend=backend)
    assert logprob.dtype == torch.float32 and entropy.dtype == torch.float32
    want_lp, want_h = ref.logprob(z.detach().double().numpy(), labels.long().numpy())
    np.testing.assert_allclose(logprob.detach().numpy(), want_lp, rtol=2e-6, atol=2e-6)
    weights = torch.randn(6)
    (logprob * weights).sum().backward()
    assert z.grad.dtype == dtype
    want = ref.logprob_grad(z.detach().double().numpy(), labels.long().numpy(), None, weights.double().numpy())
    np.testing.assert_allclose(z.grad.double().numpy(), want, rtol=torch.finfo(dtype).eps, atol=1e-6)


def test_llm_era_accepts_float64_advantages_and_int32_labels():
    z = torch.randn(2, 5, 30)
    labels = torch.randint(0, 30, (2, 5))
    advantages = torch.tensor([1e-50, -2.0], dtype=torch.float64)  # positive, though 0 in float32
    for backend in BACKENDS:
        out = et.llm_era(z, labels.int(), advantages, backend=backend, omega_low=10.0, omega_high=20.0)
        assert out.advantages.dtype == torch.float64 and out.logit_scale.dtype == torch.float64
        assert out.logit_scale[0, 0] == 2.0 and out.logit_scale[1, 0] == 1.0  # sharpened: A > 0
        assert out.advantages[0, 0] == 5e-51
        want, _ = et.llm_logprob(z, labels, out.logit_scale.float(), backend=backend)
        torch.testing.assert_close(out.logprobs, want, rtol=0, atol=0)


def test_autocast_follows_softmax():
    model = Classifier()
    x = torch.randn(8, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.net(x)
        out = model(x)
        softmax = torch.softmax(logits, -1)
        logprob, _ = et.llm_logprob(logits, torch.zeros(8, dtype=torch.long))
    assert logits.dtype == torch.bfloat16
    assert out.dtype == softmax.dtype == torch.bfloat16  # CPU autocast leaves softmax alone
    assert logprob.dtype == torch.float32
    policy = torch._C._dispatch_has_kernel_for_dispatch_key
    assert policy("era::discrete_forward", "AutocastCUDA") and not policy("era::llm_logprob_forward", "AutocastCUDA")


def test_dtype_errors_name_torch_dtypes():
    with pytest.raises(era.DTypeError, match="torch.int32"):
        et.discrete_era(torch.zeros(2, 3, dtype=torch.int32), 1.0)
    with pytest.raises(era.DTypeError, match="torch.float32"):
        et.llm_logprob(torch.zeros(2, 3), torch.zeros(2, dtype=torch.float32))


# ---------------------------------------------------------------------------------------
# The device path: no host reads, deferred checks, chunks, strided views, memory


HOST_READS = ("__bool__", "item", "__int__", "__float__", "__index__", "tolist", "numpy")


def test_device_path_never_reads_a_tensor_back(monkeypatch, deferred):
    reads = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def trap(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, trap)
    x = torch.randn(4, 6, requires_grad=True)
    z = torch.randn(2, 5, 7, requires_grad=True)
    w = torch.randn(7, 6, requires_grad=True)
    labels = torch.randint(0, 7, (2, 5))
    calls = [
        lambda: et.discrete_era(x, 1.0, backend="native"),
        lambda: et.continuous_era(x, -3.0, residual=torch.tensor(0.1), backend="native"),
        lambda: et.llm_logprob(x, torch.tensor([0, 1, 2, 3]), torch.tensor([1.0, 2.0, 0.5, 1.0]), backend="native")[0],
        lambda: et.llm_era(z[:, :-1], labels[:, :-1], torch.tensor([1.0, -1.0]), backend="native").logprobs,
        lambda: et.llm_era(z.reshape(10, 7), labels.reshape(10), torch.ones(10), cu_seqlens=torch.tensor([0, 4, 10]),
                           backend="native").logprobs,
        lambda: et.token_entropy(x, backend="native") + et.softmax_entropy(x, backend="native")
        + et.gaussian_entropy(x, backend="native"),
        lambda: et.llm_linear_logprob(x, w, torch.tensor([0, 1, 2, 6]), backend="native")[0],
        lambda: et.llm_linear_era(x.reshape(2, 2, 6), w, torch.tensor([[0, 1], [2, 6]]), torch.tensor([1.0, -1.0]),
                                  response_mask=torch.ones(2, 2, dtype=torch.bool), backend="native").logprobs,
        lambda: et.linear_discrete_ce(x, w, torch.zeros(7), torch.tensor([0, 1, 2, 6]), 1.0, backend="native"),
    ]
    for call in calls:
        out = call()
        if out.requires_grad:
            out.sum().backward()
    assert reads == []


@pytest.mark.parametrize("case", ["discrete", "continuous", "residual", "logprob", "label", "gradient", "advantage"])
def test_deferred_checks_poison_the_row_and_raise_later(case, deferred):
    x = torch.randn(3, 4)
    x_nan = x.clone()
    x_nan[1, 2] = math.nan
    expect = era.NonFiniteError
    if case == "discrete":
        out = et.discrete_era(x_nan, 1.0, backend="native")
    elif case == "continuous":
        out = et.continuous_era(x_nan, -3.0, backend="native")
    elif case == "residual":
        out, expect = et.continuous_era(x, 5.0, residual=torch.tensor(5.0), backend="native"), era.InfeasibleTargetError
    elif case == "logprob":
        out = et.llm_logprob(x_nan, torch.tensor([0, 1, 2]), backend="native")[0]
    elif case == "label":
        out, expect = et.llm_logprob(x, torch.tensor([0, 9, 2]), backend="native")[0], era.BadIndexError
    elif case == "advantage":
        result = et.llm_era(x, torch.tensor([0, 1, 2]), torch.tensor([3e38, 1.0, 1.0]),
                            response_ids=torch.tensor([0, 0, 0]),
                            num_responses=1, omega_low=0.1, omega_high=0.5, backend="native")
        out, expect = result.advantages, era.BadParameterError
    else:
        leaf = x.clone().requires_grad_(True)
        logprob, _ = et.llm_logprob(leaf, torch.tensor([0, 1, 2]), backend="native")
        logprob.backward(torch.tensor([1.0, math.nan, 1.0]))
        out = leaf.grad
    bad_rows = torch.isnan(out.reshape(out.shape[0], -1)).any(-1)
    assert bad_rows.any() and not bad_rows.all() or case in ("residual",)
    with pytest.raises(expect, match="deferred device check"):
        et.check_device_errors()
    et.check_device_errors()  # forgotten once raised


def test_raise_mode_raises_at_the_call():
    et.set_device_checks("raise")
    try:
        with pytest.raises(era.NonFiniteError):
            et.discrete_era(torch.tensor([[0.0, math.nan]]), 0.5, backend="native")
    finally:
        et.set_device_checks("auto")
    with pytest.raises(ValueError, match="mode"):
        et.set_device_checks("sometimes")


def test_parameter_errors_raise_at_once_even_when_deferred(deferred):
    with pytest.raises(era.InfeasibleTargetError):
        et.discrete_era(torch.zeros(2, 3), 9.0, backend="native")
    with pytest.raises(era.BadParameterError):
        et.llm_era(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), torch.ones(3),
                   response_ids=torch.zeros(3, dtype=torch.long), num_responses=1, k=0.0, backend="native")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_device_path_chunks_equal_libera(monkeypatch, dtype):
    monkeypatch.setattr(native, "CHUNK_ELEMENTS", 3 * 37)  # three rows per chunk
    monkeypatch.setattr(native, "MIN_CHUNK_ELEMENTS", 3 * 37)
    full = (torch.randn(4, 8, 37) * 3).to(dtype)
    full[0, 0, 5:] = -math.inf
    logits = full[:, :-1]  # strided: the leading axes do not collapse
    labels = torch.randint(0, 5, (4, 7))
    scale = torch.tensor([2.0, 1.0, 0.5, 1.0]).repeat_interleave(7).reshape(4, 7)
    for name in ("token", "forward", "backward"):
        results = []
        for backend in BACKENDS:
            x = logits.detach().clone().requires_grad_(True) if name == "backward" else logits
            if name == "token":
                results.append(et.token_entropy(x, backend=backend))
            elif name == "forward":
                results.append(torch.stack(et.llm_logprob(x, labels, scale, backend=backend)))
            else:
                lp, _ = et.llm_logprob(x, labels, scale, backend=backend)
                (lp * torch.linspace(-1, 1, 28).reshape(4, 7)).sum().backward()
                results.append(x.grad.float())
        torch.testing.assert_close(results[1], results[0], rtol=2e-5, atol=2e-6 if dtype == torch.float32 else 8e-3)


def test_libera_reads_strided_logits_in_place():
    full = torch.randn(3, 6, 11)
    view = full[:, :-1]
    blocks = list(_ops.row_blocks(view))
    assert len(blocks) == 3
    start, end = full.data_ptr(), full.data_ptr() + full.numel() * full.element_size()
    assert all(start <= block.data_ptr() < end for _, block in blocks)  # views of the caller's memory
    labels = torch.randint(0, 11, (3, 5))
    torch.testing.assert_close(torch.stack(et.llm_logprob(view, labels)),
                               torch.stack(et.llm_logprob(view.contiguous(), labels)), rtol=0, atol=0)


def test_verl_remove_padding_layout_equals_padded():
    z = torch.randn(3, 6, 20)
    labels = torch.randint(0, 20, (3, 6))
    advantages = torch.tensor([1.0, 0.5, -1.0])
    lengths = [6, 4, 5]
    mask = torch.zeros(3, 6, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, 1:n] = True  # token 0 is the prompt
    padded = et.llm_era(z, labels, advantages, response_mask=mask)
    keep = torch.cat([torch.arange(n) + 6 * b for b, n in enumerate(lengths)])
    flat = z.reshape(18, 20)[keep]
    cu_seqlens = torch.tensor([0, 6, 10, 15])
    response = mask.reshape(-1)[keep]
    packed = et.llm_era(flat, labels.reshape(-1)[keep], advantages.repeat_interleave(torch.tensor(lengths)),
                        cu_seqlens=cu_seqlens, response_mask=response)
    torch.testing.assert_close(packed.response_entropy, padded.response_entropy)
    torch.testing.assert_close(packed.logprobs, padded.logprobs.reshape(-1)[keep])
    torch.testing.assert_close(packed.logit_scale, padded.logit_scale.reshape(-1)[keep])


PEAK_SCRIPT = textwrap.dedent("""
    import sys, torch, era.torch as et
    from era.torch import native

    def status(field):  # kB, from /proc/self/status
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

    batch, length, vocab, backend = 4, 128, 65536, sys.argv[1]
    full = torch.randn(batch, length + 1, vocab).to(torch.bfloat16)
    labels = torch.randint(0, vocab, (batch, length))
    weights = torch.randn(batch, length)

    def step():
        logits = full[:, :-1].detach().requires_grad_(True)  # verl's shifted slice
        logprob, _ = et.llm_logprob(logits, labels, backend=backend)
        (logprob * weights).sum().backward()
        return logits.grad

    step()  # one-time allocations
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident set size (VmHWM)
    before = status("VmRSS")
    grad = step()
    print((status("VmHWM") - before) / (full[:, :-1].numel() * 2))
""")


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's clear_refs")
@pytest.mark.parametrize("backend, limit", [("libera", 1.1), ("native", 2.0)])
def test_forward_and_backward_memory(backend, limit):
    # Peak resident memory a forward and backward pass adds on bf16 logits (a strided slice,
    # 4 x 128 x 65536 = 64 MiB), the returned gradient included, in units of the logits:
    # libera adds the gradient alone; the device path the gradient and its chunks'
    # temporaries (chunks of a sixteenth of the logits here).
    # glibc keeps freed blocks below its (adaptive) mmap threshold for reuse, which the resident
    # size would count as held: a fixed threshold returns every large block when it is freed.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, backend], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) <= limit, result.stdout


# ---------------------------------------------------------------------------------------
# CUDA (the device path on a GPU): skipped without one


@cuda
def test_cuda_device_path_matches_libera_without_host_syncs():
    torch.cuda.set_sync_debug_mode("error")
    et.set_device_checks("deferred")
    try:
        z = torch.randn(16, 10, dtype=torch.float64)
        s = torch.randn(16, 6)
        logits = torch.randn(4, 9, 1000).bfloat16()
        labels = torch.randint(0, 1000, (4, 8))
        mask = torch.ones(4, 8, dtype=torch.bool)
        advantages = torch.tensor([1.0, -1.0, 0.5, 2.0])
        zc = z.cuda().requires_grad_(True)
        out = et.discrete_era(zc, 1.0)
        out.sum().backward()
        sc = s.cuda().requires_grad_(True)
        log_std = et.continuous_era(sc, -3.0, residual=torch.tensor(0.2, device="cuda"))
        log_std.sum().backward()
        lc = logits.cuda().requires_grad_(True)
        result = et.llm_era(lc[:, :-1], labels.cuda(), advantages.cuda(), response_mask=mask.cuda())
        result.logprobs.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
        et.set_device_checks("auto")
    et.check_device_errors()
    torch.testing.assert_close(out.cpu(), et.discrete_era(z, 1.0).detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_std.cpu(), et.continuous_era(s, -3.0, residual=0.2).detach(), rtol=0, atol=1e-6)
    cpu = et.llm_era(logits[:, :-1], labels, advantages, response_mask=mask)
    for name in ("logprobs", "token_entropy", "logit_scale", "advantages", "entropy"):
        torch.testing.assert_close(getattr(result, name).detach().cpu(), getattr(cpu, name).detach(), rtol=2e-5,
                                   atol=2e-5)


@cuda
def test_cuda_compile_fullgraph():
    torch._dynamo.reset()
    model = Classifier().cuda()
    x, y = torch.randn(64, 20, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    assert_compiles_like_eager(lambda x, y: torch.nn.functional.cross_entropy(model(x), y),
                               list(model.parameters()), x, y)
