"""Top-k log-probabilities (docs/math.md, "Top-k log-probabilities"): libera through every
layer against a float64 reference written plainly here, finite differences, verl's rule
(torch.topk over the scaled logits, log_softmax over those k, -1e4 outside), the torch
device path, torch.compile, and JAX."""

import numpy as np
import pytest
import torch

import era
import era.jax as ej
import era.torch as et
import jax
import jax.numpy as jnp


def reference(z, labels, scale, k, grad=None):
    """float64: K = the k largest finite z of each row (a stable sort: value descending, then
    index ascending), logp = s z_a - logsumexp_K(s z) or -1e4, the full entropy, and the
    gradient g s (onehot - softmax_K) on K (zero rows for labels outside)."""
    z = np.asarray(z, np.float64)
    rows, vocab = z.shape
    scale = np.ones(rows) if scale is None else np.asarray(scale, np.float64)
    logp, entropy, gradient = np.empty(rows), np.empty(rows), np.zeros_like(z)
    for t in range(rows):
        u = scale[t] * z[t]
        order = sorted((i for i in range(vocab) if z[t, i] > -np.inf), key=lambda i: (-z[t, i], i))
        chosen = order[:k]
        m = max(u[chosen])
        lse = m + np.log(sum(np.exp(u[i] - m) for i in chosen))
        finite = u[np.isfinite(u)]
        p = np.exp(finite - finite.max())
        p /= p.sum()
        entropy[t] = -np.sum(p[p > 0] * np.log(p[p > 0]))
        if labels[t] in chosen:
            logp[t] = u[labels[t]] - lse
            if grad is not None:
                for i in chosen:
                    gradient[t, i] = grad[t] * scale[t] * ((i == labels[t]) - np.exp(u[i] - lse))
        else:
            logp[t] = -1e4
    return logp, entropy, gradient


def batch(rng, rows=12, vocab=400, ties=True):
    z = (rng.normal(size=(rows, vocab)) * 2).astype(np.float32)
    if ties:
        z[1] = np.round(z[1])  # ties at the k-th value
        z[2, ::3] = -np.inf  # masks
        z[3, 8:] = -np.inf  # fewer finite logits than k = 20
    order = np.argsort(-z, axis=1, kind="stable")
    labels = np.where(np.arange(rows) % 2 == 0, order[:, 0], order[:, 25]).astype(np.int64)  # inside, outside
    if ties:
        labels[3] = 4
        labels[5] = order[5, 19]  # the 20th: inside for k = 20
    scale = np.array([2, 1, 0.5] * (rows // 3), np.float32)
    return z, labels, scale


@pytest.mark.parametrize("k", [1, 5, 20, 399, 400, 10**30])
def test_numpy_against_float64_reference(k):
    rng = np.random.default_rng(7)
    z, labels, scale = batch(rng)
    g = rng.normal(size=len(labels)).astype(np.float32)
    out = era.llm_logprob_forward(z, labels, scale, top_k=k)
    want_lp, want_h, want_g = reference(z, labels, scale, min(k, z.shape[1]), g)
    outside = want_lp == -1e4
    assert np.array_equal(out.logprob == era.TOPK_OUTSIDE_LOGPROB, outside)
    np.testing.assert_allclose(out.logprob[~outside], want_lp[~outside], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.entropy, want_h, rtol=2e-6, atol=1e-6)
    grad = era.llm_logprob_backward(z, labels, scale, g, top_k=k)
    assert np.array_equal(grad != 0, want_g != 0)
    np.testing.assert_allclose(grad, want_g, rtol=1e-6, atol=1e-7)
    if k >= z.shape[1]:  # the full log-softmax, bit for bit
        full = era.llm_logprob_forward(z, labels, scale)
        assert np.array_equal(out.logprob, full.logprob) and np.array_equal(out.entropy, full.entropy)
        assert np.array_equal(grad, era.llm_logprob_backward(z, labels, scale, g))


def test_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(8)
    z, labels, scale = batch(rng)
    zb = z.astype(ml_dtypes.bfloat16)
    g = rng.normal(size=len(labels)).astype(np.float32)
    out = era.llm_logprob_forward(zb, labels, scale, top_k=20)
    want_lp, _, want_g = reference(zb.astype(np.float32), labels, scale, 20, g)
    outside = want_lp == -1e4
    assert np.array_equal(out.logprob == -1e4, outside)
    np.testing.assert_allclose(out.logprob[~outside], want_lp[~outside], rtol=1e-6, atol=1e-6)
    grad = era.llm_logprob_backward(zb, labels, scale, g, top_k=20).astype(np.float32)
    np.testing.assert_allclose(grad, want_g, rtol=8e-3, atol=1e-30)


def test_gradient_matches_finite_differences():
    """The gradient of the float64 reference by central differences against libera's."""
    rng = np.random.default_rng(9)
    z, labels, scale = batch(rng, rows=3, vocab=40, ties=False)
    labels = np.argsort(-z, axis=1, kind="stable")[:, 2]
    g = np.array([1.0, -0.5, 2.0], np.float32)
    grad = era.llm_logprob_backward(z, labels, scale, g, top_k=5).astype(np.float64)
    zd, h, worst = z.astype(np.float64), 1e-6, 0.0
    for t in range(3):
        for i in range(40):
            up, down = zd.copy(), zd.copy()
            up[t, i] += h
            down[t, i] -= h
            fd = g[t] * (reference(up, labels, scale, 5)[0][t] - reference(down, labels, scale, 5)[0][t]) / (2 * h)
            worst = max(worst, abs(fd - grad[t, i]))
    assert worst < 2e-7, worst


def test_verl_rule_on_tie_free_data():
    """verl's logprobs_from_logits_topk, written plainly: torch.topk over the scaled logits,
    log_softmax over those k, -1e4 where the label is not among them."""
    rng = np.random.default_rng(10)
    z, labels, scale = batch(rng, rows=30, vocab=1000, ties=False)
    u = torch.from_numpy(z).double() * torch.from_numpy(scale).double()[:, None]
    values, indices = torch.topk(u, 20, dim=-1)
    logsoftmax = torch.log_softmax(values, dim=-1)
    hit = indices == torch.from_numpy(labels)[:, None]
    verl = torch.where(hit.any(-1), (logsoftmax * hit).sum(-1), torch.tensor(-1e4, dtype=torch.float64))
    out = era.llm_logprob_forward(z, labels, scale, top_k=20).logprob
    np.testing.assert_allclose(out, verl.numpy(), rtol=1e-6, atol=1e-6)
    assert (out == -1e4).sum() == 15 and (out != -1e4).sum() == 15


@pytest.mark.parametrize("backend", ["libera", "native"])
def test_torch_paths(backend):
    rng = np.random.default_rng(11)
    z, labels, scale = batch(rng)
    x = torch.from_numpy(z).requires_grad_()
    lp, h = et.llm_logprob(x, torch.from_numpy(labels), torch.from_numpy(scale), backend=backend, top_k=20)
    g = torch.from_numpy(rng.normal(size=len(labels)).astype(np.float32))
    (lp * g).sum().backward()
    want_lp, want_h, want_g = reference(z, labels, scale, 20, g.numpy())
    np.testing.assert_allclose(lp.detach().numpy(), want_lp, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h.numpy(), want_h, rtol=2e-6, atol=1e-6)
    assert np.array_equal(x.grad.numpy() != 0, want_g != 0)
    # the device path computes in float32: g s (1 - p) near p = 1 within float32 rounding of 1
    np.testing.assert_allclose(x.grad.numpy(), want_g, rtol=1e-5, atol=1e-6)
    with pytest.raises(era.BadParameterError):
        et.llm_logprob(x, torch.from_numpy(labels), backend=backend, top_k=0)


def test_torch_compile_and_llm_era():
    rng = np.random.default_rng(12)
    z, labels, _ = batch(rng, rows=2 * 6)
    logits = torch.from_numpy(z).reshape(2, 6, -1).requires_grad_()
    tokens = torch.from_numpy(labels).reshape(2, 6)
    advantages = torch.tensor([1.0, -1.0])

    def loss(x):
        out = et.llm_era(x, tokens, advantages, response_mask=torch.ones(2, 6), top_k=20)
        return -(out.advantages * out.logprobs).sum()

    eager = loss(logits)
    (eager_grad,) = torch.autograd.grad(eager, logits)
    compiled = torch.compile(loss, fullgraph=True)(logits)
    (compiled_grad,) = torch.autograd.grad(compiled, logits)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(compiled_grad, eager_grad)
    module = et.LLMERA(top_k=20)
    torch.testing.assert_close(module(logits, tokens, advantages, response_mask=torch.ones(2, 6)).logprobs,
                               et.llm_era(logits, tokens, advantages, response_mask=torch.ones(2, 6), top_k=20).logprobs)


@pytest.mark.parametrize("backend", ["libera", "native"])
def test_linear_head(backend):
    rng = np.random.default_rng(13)
    hidden = rng.normal(size=(9, 8)).astype(np.float32)
    weight = (rng.normal(size=(2500, 8)) * 0.6).astype(np.float32)  # two vocabulary chunks
    z = hidden.astype(np.float64) @ weight.astype(np.float64).T
    labels = np.where(np.arange(9) % 2 == 0, np.argmax(z, 1), 3).astype(np.int64)
    scale = np.array([2, 1, 0.5] * 3, np.float32)
    g = rng.normal(size=9).astype(np.float32)
    want_lp, want_h, want_g = reference(z, labels, scale, 20, g)
    out = era.llm_linear_logprob_forward(hidden, weight, labels, scale, top_k=20)
    np.testing.assert_allclose(out.logprob, want_lp, rtol=1e-5, atol=1e-5)
    grads = era.llm_linear_logprob_backward(hidden, weight, labels, scale, g, top_k=20)
    np.testing.assert_allclose(grads.hidden, want_g @ weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads.weight, want_g.T @ hidden, rtol=1e-5, atol=1e-6)
    h = torch.from_numpy(hidden).requires_grad_()
    w = torch.from_numpy(weight).requires_grad_()
    lp, ent = et.llm_linear_logprob(h, w, torch.from_numpy(labels), torch.from_numpy(scale), backend=backend,
                                    top_k=20)
    (lp * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(lp.detach().numpy(), want_lp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ent.numpy(), want_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h.grad.numpy(), want_g @ weight, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), want_g.T @ hidden, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", ["ffi", "jnp"])
def test_jax(backend):
    rng = np.random.default_rng(14)
    z, labels, scale = batch(rng)
    g = rng.normal(size=len(labels)).astype(np.float32)
    want_lp, want_h, want_g = reference(z, labels, scale, 20, g)

    @jax.jit
    def run(x):
        return ej.llm_logprob(x, labels, scale, backend=backend, top_k=20)

    lp, h = run(jnp.asarray(z))
    np.testing.assert_allclose(np.asarray(lp), want_lp, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(h), want_h, rtol=2e-6, atol=1e-6)
    grad = jax.jit(jax.grad(lambda x: (run(x)[0] * g).sum()))(jnp.asarray(z))
    assert np.array_equal(np.asarray(grad) != 0, want_g != 0)
    np.testing.assert_allclose(np.asarray(grad), want_g, rtol=1e-5, atol=1e-7)
    out = ej.llm_era(z.reshape(3, 4, -1), labels.reshape(3, 4), np.ones(12, np.float32).reshape(3, 4),
                     backend=backend, top_k=20)
    assert out.logprobs.shape == (3, 4)
    with pytest.raises(era.BadParameterError):
        ej.llm_logprob(z, labels, top_k=0)


def test_bad_input():
    z, labels, _ = batch(np.random.default_rng(15))
    for k in (0, -1):
        with pytest.raises(era.BadParameterError):
            era.llm_logprob_forward(z, labels, top_k=k)
        with pytest.raises(era.BadParameterError):
            era.llm_logprob_backward(z, labels, None, np.ones(len(labels), np.float32), top_k=k)
    with pytest.raises(TypeError):
        era.llm_logprob_forward(z, labels, top_k=2.5)
    bad = z.copy()
    bad[4, 9] = np.nan
    with pytest.raises(era.NonFiniteError):
        era.llm_logprob_forward(bad, labels, top_k=20)
    masked = z.copy()
    masked[0, labels[0]] = -np.inf
    with pytest.raises(era.BadIndexError):
        era.llm_logprob_forward(masked, labels, top_k=20)
