"""era.torch's fused linear heads (llm_linear_logprob, llm_linear_era, linear_discrete_ce and
their modules) against the unfused path (the logits formed, then era.torch), on both
backends: values, gradients, double backward, layouts, errors, compile."""

import math

import pytest

torch = pytest.importorskip("torch")

import era  # noqa: E402
import era.torch as et  # noqa: E402
from era.torch import native  # noqa: E402

BACKENDS = ["libera", "native"]


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def llm_head(tokens=37, dim=16, vocab=300, dtype=torch.float32):
    hidden = torch.randn(tokens, dim, dtype=dtype).requires_grad_(True)
    weight = (torch.randn(vocab, dim, dtype=dtype) * 0.3).requires_grad_(True)
    labels = torch.randint(0, vocab, (tokens,))
    scale = torch.rand(tokens) + 0.5
    return hidden, weight, labels, scale


def grads_of(loss, tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.float64, 1e-12)])
def test_llm_linear_logprob_equals_the_unfused_path(backend, dtype, tol, monkeypatch):
    monkeypatch.setattr(native, "MIN_CHUNK_ELEMENTS", 1000)  # several chunks on the device path
    monkeypatch.setattr(native, "CHUNK_ELEMENTS", 1000)
    hidden, weight, labels, scale = llm_head(dtype=dtype)
    weights = torch.randn(len(labels), dtype=dtype)
    fused, fused_h = et.llm_linear_logprob(hidden, weight, labels, scale.to(dtype), backend=backend)
    plain, plain_h = et.llm_logprob((hidden @ weight.T), labels, scale.to(dtype), backend=backend)
    torch.testing.assert_close(fused, plain, rtol=tol, atol=tol)
    torch.testing.assert_close(fused_h, plain_h, rtol=tol, atol=tol)
    got = grads_of((fused * weights).sum(), (hidden, weight))
    want = grads_of((plain * weights).sum(), (hidden, weight))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_llm_linear_logprob_bfloat16(backend):
    hidden, weight, labels, _ = llm_head(dtype=torch.bfloat16)
    logprob, _ = et.llm_linear_logprob(hidden, weight, labels, backend=backend)
    assert logprob.dtype == torch.float32
    logprob.sum().backward()
    assert hidden.grad.dtype == weight.grad.dtype == torch.bfloat16
    # against the float32 math on the same values
    h32, w32 = hidden.detach().float().requires_grad_(True), weight.detach().float().requires_grad_(True)
    want, _ = et.llm_linear_logprob(h32, w32, labels)
    torch.testing.assert_close(logprob, want, rtol=2e-2, atol=2e-2)  # bfloat16 products on the device path
    want.sum().backward()
    torch.testing.assert_close(weight.grad.float(), w32.grad, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", ["exact", "tight", "reference"])
def test_linear_discrete_ce_equals_the_unfused_path(backend, bias, mode):
    features = torch.randn(50, 16, requires_grad=True)
    weight = (torch.randn(10, 16) * 0.5).requires_grad_(True)
    b = torch.randn(10, requires_grad=True) if bias else None
    labels = torch.randint(0, 10, (50,))
    fused = et.linear_discrete_ce(features, weight, b, labels, 1.0, mode=mode, backend=backend)
    logits = features @ weight.T + (b if bias else 0.0)
    plain = torch.nn.functional.cross_entropy(et.discrete_era(logits, 1.0, mode=mode, backend=backend), labels)
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
    params = [t for t in (features, weight, b) if t is not None]
    for g, w in zip(grads_of(fused, params), grads_of(plain, params)):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward_of_the_fused_heads(backend):
    hidden, weight, labels, scale = llm_head(tokens=5, dim=4, vocab=9, dtype=torch.float64)
    assert torch.autograd.gradgradcheck(
        lambda h, w: et.llm_linear_logprob(h, w, labels, scale.double(), backend=backend)[0], (hidden, weight))
    features = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    classes = torch.randint(0, 5, (6,))
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: et.linear_discrete_ce(x, w, b, classes, 1.0, backend=backend), (features, w, b))


@pytest.mark.parametrize("backend", BACKENDS)
def test_llm_linear_era_equals_llm_era_in_both_layouts(backend):
    batch, length, dim, vocab = 3, 6, 8, 50
    hidden = torch.randn(batch, length, dim, requires_grad=True)
    weight = torch.randn(vocab, dim, requires_grad=True)
    labels = torch.randint(0, vocab, (batch, length))
    advantages = torch.tensor([1.0, 0.5, -1.0])
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[2, 4:] = False
    fused = et.llm_linear_era(hidden, weight, labels, advantages, response_mask=mask, omega_low=1.0, backend=backend)
    plain = et.llm_era(hidden @ weight.T, labels, advantages, response_mask=mask, omega_low=1.0, backend=backend)
    for name in fused._fields:
        torch.testing.assert_close(getattr(fused, name), getattr(plain, name), rtol=2e-6, atol=2e-6, equal_nan=True)
    packed = et.llm_linear_era(hidden.reshape(-1, dim), weight, labels.reshape(-1),
                               advantages.repeat_interleave(length),
                               cu_seqlens=torch.tensor([0, 6, 12, 18]), response_mask=mask.reshape(-1), omega_low=1.0,
                               backend=backend)
    torch.testing.assert_close(packed.logprobs, fused.logprobs.reshape(-1))
    torch.testing.assert_close(packed.response_entropy, fused.response_entropy)
    got = grads_of((fused.logprobs * fused.advantages).sum(), (hidden, weight))
    want = grads_of((plain.logprobs * plain.advantages).sum(), (hidden, weight))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_modules():
    lm_head = torch.nn.Linear(8, 40, bias=False)
    head = et.ERALinearLogprob.from_linear(lm_head)
    assert head.weight is lm_head.weight  # shared, not copied
    hidden, labels = torch.randn(2, 5, 8), torch.randint(0, 40, (2, 5))
    logprob, _ = head(hidden, labels)
    torch.testing.assert_close(logprob, et.llm_logprob(lm_head(hidden), labels)[0], rtol=2e-6, atol=2e-6)
    with pytest.raises(era.BadShapeError):
        et.ERALinearLogprob.from_linear(torch.nn.Linear(8, 40))
    classifier = et.ERALinearCrossEntropy(8, 5, 1.0, mode="tight")
    features, classes = torch.randn(16, 8), torch.randint(0, 5, (16,))
    loss = classifier(features, classes)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(classifier.logits(features), classes),
                               rtol=1e-6, atol=1e-6)
    loss.backward()
    assert classifier.linear.weight.grad is not None and classifier.linear.bias.grad is not None


def test_compile_fused_heads_without_graph_breaks():
    torch._dynamo.reset()
    classifier = et.ERALinearCrossEntropy(8, 5, 1.0)
    body = torch.nn.Linear(4, 8)
    features, classes = torch.randn(16, 4), torch.randint(0, 5, (16,))
    lm_head = et.ERALinearLogprob(8, 30)
    tokens = torch.randint(0, 30, (16,))

    def loss(x):
        h = torch.relu(body(x))
        return classifier(h, classes) - lm_head(h, tokens)[0].mean()

    explanation = torch._dynamo.explain(loss)(features)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    params = list(body.parameters()) + list(classifier.parameters()) + list(lm_head.parameters())
    eager = grads_of(loss(features), params)
    compiled = grads_of(torch.compile(loss, fullgraph=True)(features), params)
    for c, e in zip(compiled, eager):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_errors(backend):
    hidden, weight, labels, _ = llm_head()
    bad = labels.clone()
    bad[3] = 300
    with pytest.raises(era.BadIndexError):
        et.llm_linear_logprob(hidden, weight, bad, backend=backend)
    nan = weight.detach().clone()
    nan[5, 2] = math.nan
    with pytest.raises(era.NonFiniteError):
        et.llm_linear_logprob(hidden, nan, labels, backend=backend)
    with pytest.raises(era.BadShapeError):
        et.llm_linear_logprob(hidden, weight[:, :3], labels, backend=backend)
    with pytest.raises(era.BadShapeError):
        et.linear_discrete_ce(torch.zeros(0, 16), weight[:10], None, torch.zeros(0, dtype=torch.long), 1.0,
                              backend=backend)
    with pytest.raises(era.InfeasibleTargetError):
        et.linear_discrete_ce(hidden, weight[:10], None, labels % 10, 9.0, backend=backend)
    with pytest.raises(era.DTypeError):
        et.llm_linear_logprob(hidden, weight, labels.float(), backend=backend)
