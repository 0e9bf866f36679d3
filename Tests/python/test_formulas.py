"""era._formulas, the one second implementation of ERA, held to libera in every array library
that uses it: numpy (the benchmarks' baseline), torch (the torch device path) and jax.numpy
(the benchmarks' JAX baseline), on the same inputs. One parametrised test per formula."""

import contextlib
import math

import numpy as np
import pytest

import era
from era import _formulas as F

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

LIBRARIES = ["numpy", "torch", "jax"]


class Library:
    """One array library: its namespace, and conversions from and to numpy."""

    def __init__(self, name):
        self.name = name
        self.xp = {"numpy": np, "torch": torch, "jax": jnp}[name]
        self.ops = F.namespace(self.xp)

    def __call__(self, a):
        if self.name == "torch":
            return torch.from_numpy(np.ascontiguousarray(a))
        if self.name == "jax":
            return jnp.asarray(a)
        return np.asarray(a)

    def context(self):
        """float64 in JAX for the length of a test (libera's double precision)."""
        return jax.enable_x64(True) if self.name == "jax" else contextlib.nullcontext()


def back(x):
    return np.asarray(x.detach().numpy() if hasattr(x, "detach") else x)


@pytest.fixture(params=LIBRARIES)
def lib(request):
    library = Library(request.param)
    with library.context():
        yield library


def logits(rng, rows, cols, scale=3.0):
    z = rng.normal(size=(rows, cols)) * scale
    z[0, 0] += 40.0  # a near one-hot row
    if rows > 2:
        z[1, :] = 0.5  # ties
    return z


@pytest.mark.parametrize("mode", ["exact", "tight", "reference"])
@pytest.mark.parametrize("classes, tau", [(2, 4.0), (10, 4.0), (1000, 4.0), (10, 2.75), (50, 1e4)])
def test_discrete(lib, rng, mode, classes, tau):
    z = logits(rng, 6, classes)
    g = rng.normal(size=z.shape)
    # the middle of the mode's feasible range: 1 + log(up) .. 1 + log(D up), or 0 .. log D
    h0 = 1 + math.log(math.log(tau) / tau) + 0.5 * math.log(classes) if mode != "tight" else 0.5 * math.log(classes)
    c = era.discrete_constant(classes, h0, tau=tau, mode=mode)
    a, b = F.discrete_slope_offset(classes, c, tau)
    out = back(F.discrete_forward(lib.ops, lib(z), a, b, tau, mode))
    np.testing.assert_allclose(out, era.discrete_forward(z, h0, tau=tau, mode=mode), rtol=2e-14, atol=0)
    grad = back(F.discrete_backward(lib.ops, lib(z), lib(g), a, b, tau, mode))
    want = era.discrete_backward(z, g, h0, tau=tau, mode=mode)
    scale = np.abs(want).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(grad / scale, want / scale, rtol=0, atol=1e-12)


def test_discrete_inverse_over_its_range(lib):
    # Down to the smallest normal double and up to the branch point's neighbourhood.
    y = np.concatenate([np.geomspace(1e-307, 0.3, 400), np.linspace(0.3, 1 / math.e - 1e-6, 50)])
    t = back(F.log_inverse_entropy(lib.ops, lib(y)))
    residual = t + np.log(-t) - np.log(y)
    assert np.max(np.abs(residual) / np.maximum(1.0, np.abs(t))) < 4e-15
    assert np.all(t <= -1)


@pytest.mark.parametrize("dim, target", [(1, -1.0), (6, -3.0), (61, -30.5)])
def test_continuous(lib, rng, dim, target):
    s = rng.normal(size=(5, dim)) * 3
    s[0, 0] = 60.0  # clipped at log_std_min
    g = rng.normal(size=s.shape)
    k = F.continuous_offset(dim, target + 0.25, 0.0)
    out = back(F.continuous_forward(lib.ops, lib(s), k, -8.0, 0.0))
    np.testing.assert_allclose(out, era.continuous_forward(s, target, residual=0.25), rtol=1e-14, atol=1e-14)
    grad, rows = F.continuous_backward(lib.ops, lib(s), lib(g), k, -8.0, 0.0)
    want = era.continuous_backward(s, g, target, residual=0.25)
    np.testing.assert_allclose(back(grad), want.std_logits, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(back(rows), want.residual, rtol=1e-12, atol=1e-14)
    # float32 storage: libera's float32 kernel computes in double and rounds upwards
    s32 = s.astype(np.float32)
    wide = F.continuous_forward(lib.ops, lib(s32.astype(np.float64)), k, -8.0, 0.0)
    stored = back(F.round_up_to(lib.ops, wide, lib.xp.float32, 0.0))
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, era.continuous_forward(s32, target, residual=0.25))


def test_entropies(lib, rng):
    z = logits(rng, 5, 30)
    np.testing.assert_allclose(back(F.softmax_entropy(lib.ops, lib(z))), era.softmax_entropy(z), rtol=1e-13,
                               atol=1e-15)
    np.testing.assert_allclose(back(F.gaussian_entropy(lib.ops, lib(z))), era.gaussian_entropy(z), rtol=1e-14)


def llm_batch(rng, tokens=7, vocab=300):
    z = (rng.normal(size=(tokens, vocab)) * 2).astype(np.float32)
    z[0, 5:] = -np.inf  # masked tokens
    z[1] *= 30  # confident
    labels = rng.integers(0, 5, size=tokens)
    scale = np.array([1, 2, 0.5, 1, 2, 1, 0.5][:tokens], np.float32)
    return z, labels, scale


def test_llm_passes(lib, rng):
    z, labels, scale = llm_batch(rng)
    g = rng.normal(size=len(labels)).astype(np.float32)
    np.testing.assert_allclose(back(F.token_entropy(lib.ops, lib(z))), era.token_entropy(z), rtol=2e-6, atol=2e-6)
    lp, h = F.logprob_forward(lib.ops, lib(z), lib(labels), lib(scale))
    want = era.llm_logprob_forward(z, labels, scale)
    np.testing.assert_allclose(back(lp), want.logprob, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(back(h), want.entropy, rtol=2e-6, atol=2e-6)
    grad = back(F.logprob_backward(lib.ops, lib(z), lib(labels), lib(scale), lib(g)))
    np.testing.assert_allclose(grad, era.llm_logprob_backward(z, labels, scale, g), rtol=2e-6, atol=2e-7)
    assert np.all(back(F.llm_faults(lib.ops, lib(z), lib(labels), lib(scale))) == 0)


def test_llm_faults_are_libera_statuses(lib, rng):
    z, labels, scale = llm_batch(rng, tokens=6)
    z[2, 1] = np.nan
    labels[3] = 400  # out of range
    labels[4] = 7
    z[4, 7] = -np.inf  # label on a mask
    scale[5] = 0.0
    faults = back(F.llm_faults(lib.ops, lib(z), lib(labels), lib(scale)))
    status = {name: era._era.STATUS[name] for name in ("NON_FINITE", "BAD_INDEX", "BAD_PARAMETER")}
    assert faults.tolist() == [0, 0, status["NON_FINITE"], status["BAD_INDEX"], status["BAD_INDEX"],
                               status["BAD_PARAMETER"]]
    expected = ((2, era.NonFiniteError), (3, era.BadIndexError), (4, era.BadIndexError), (5, era.BadParameterError))
    for row, cls in expected:
        with pytest.raises(cls):  # libera refuses each row with the same status
            era.llm_logprob_forward(z[row:row + 1], labels[row:row + 1], scale[row:row + 1])


def test_response_entropy_and_scales(lib, rng):
    tokens = 40
    h = (rng.random(tokens) * 4).astype(np.float32)
    ids = rng.integers(-1, 5, size=tokens)
    ids[ids == 3] = -1  # response 3 is empty
    got = back(F.response_entropy(lib.ops, lib(h.astype(np.float64)), lib(ids), 5, 0.2)).astype(np.float32)
    want = era.llm_response_entropy(h, ids, 5)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[3])
    resp = np.array([0.2, 1.0, 4.0, 0.1, 0.45], np.float32)  # the last exactly at omega_low: scale 1
    adv = rng.normal(size=tokens).astype(np.float32)
    scale, new = F.scales(lib.ops, lib(resp), lib(ids), lib(adv), 0.45, 3.0, 2.0, True)
    want = era.llm_scales(resp, ids, adv)
    np.testing.assert_array_equal(back(scale), want.logit_scale)
    np.testing.assert_array_equal(back(new), want.advantages)


@pytest.mark.parametrize("top_k", [1, 3, 20, 299, 300])
def test_topk_passes(lib, rng, top_k):
    """The top-k formulas select exactly libera's entries (ties: the lower index) on rows full
    of ties, masks and fewer finite logits than k, and agree with its values."""
    z, labels, scale = llm_batch(rng)
    z[3] = np.round(z[3])  # many ties, also at the k-th value
    z[4, 7:] = -np.inf  # seven finite logits
    labels[4] = 2
    g = rng.normal(size=len(labels)).astype(np.float32)
    lp, h = F.topk_logprob_forward(lib.ops, lib(z), lib(labels), lib(scale), top_k)
    want = era.llm_logprob_forward(z, labels, scale, top_k=top_k)
    np.testing.assert_allclose(back(lp), want.logprob, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(back(h), want.entropy, rtol=2e-6, atol=2e-6)
    grad = back(F.topk_logprob_backward(lib.ops, lib(z), lib(labels), lib(scale), lib(g), top_k))
    libera = era.llm_logprob_backward(z, labels, scale, g, top_k=top_k)
    # the same selection, entry for entry (entries that underflow float32 in one of them aside)
    np.testing.assert_array_equal(np.abs(grad) > 1e-30, np.abs(libera) > 1e-30)
    np.testing.assert_allclose(grad, libera, rtol=2e-6, atol=2e-7)


def test_truncated_normal(lib, rng):
    """The truncated-normal policy's sample, log-density and their gradients, policy-like
    values (loc = tanh(mean) inside [-1, 1], log stds from -6 to 1, uniforms over (0, 1))
    and moderate tails (the device path keeps to 1e-16 * alpha^2, docs/math.md)."""
    n = 200
    loc = np.tanh(rng.normal(size=n) * 1.5)
    log_std = rng.uniform(-6, 1, size=n)
    u = rng.uniform(1e-9, 1 - 1e-9, size=n)
    g = rng.normal(size=n)
    x = era.truncated_normal_sample(loc, log_std, u)
    np.testing.assert_allclose(back(F.truncated_normal_sample(lib.ops, lib(loc), lib(log_std), lib(u), -1.0, 1.0)),
                               x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(back(F.truncated_normal_log_prob(lib.ops, lib(loc), lib(log_std), lib(x), -1.0,
                                                                1.0)),
                               era.truncated_normal_log_prob(loc, log_std, x), rtol=1e-10, atol=1e-10)
    want = era.truncated_normal_log_prob_backward(loc, log_std, x, g)
    got = F.truncated_normal_log_prob_backward(lib.ops, lib(loc), lib(log_std), lib(x), lib(g), -1.0, 1.0)
    for a, b in zip(got, (want.x, want.loc, want.log_std)):
        np.testing.assert_allclose(back(a), b, rtol=1e-8, atol=1e-8)
    want = era.truncated_normal_sample_backward(loc, log_std, x, g)
    got = F.truncated_normal_sample_backward(lib.ops, lib(loc), lib(log_std), lib(x), lib(g), -1.0, 1.0)
    for a, b in zip(got, (want.loc, want.log_std)):
        np.testing.assert_allclose(back(a), b, rtol=1e-8, atol=1e-8)
