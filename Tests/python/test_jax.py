"""era.jax: the activations, metrics and LLM functions under jit, vmap and grad (float64 checks)."""

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import era  # noqa: E402
import era.jax as ej  # noqa: E402
import reference as ref  # noqa: E402

MODES = ["exact", "tight", "reference"]


@pytest.fixture
def key():
    return np.random.default_rng(11)


# ---------------------------------------------------------------------------------------
# Continuous ERA


def test_continuous_values_jit_and_grads(key):
    s = jnp.asarray(key.normal(size=(2, 3, 4)) * 2)
    residual = jnp.asarray(0.3)
    fn = lambda s, r: ej.continuous_era(s, -2.0, r)  # noqa: E731
    out = fn(s, residual)
    np.testing.assert_allclose(out, ref.continuous_forward(np.asarray(s), -2.0, 0.3), rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(jax.jit(fn)(s, residual), out)
    check_grads(fn, (s, residual), order=1, modes=["rev"])
    grad_s, grad_r = jax.grad(lambda s, r: jnp.sum(fn(s, r) ** 2), argnums=(0, 1))(s, residual)
    g = 2 * np.asarray(out)
    want_s, want_r = ref.continuous_backward(np.asarray(s), g, -2.0, 0.3)
    np.testing.assert_allclose(grad_s, want_s, rtol=1e-12, atol=1e-12)
    assert float(grad_r) == pytest.approx(want_r.sum(), rel=1e-12)


def test_continuous_vmap_with_a_batched_residual(key):
    s = jnp.asarray(key.normal(size=(3, 5, 2)))
    residuals = jnp.asarray([0.1, 0.4, 0.4])
    fn = lambda s, r: ej.continuous_era(s, -1.0, r)  # noqa: E731
    batched = jax.vmap(fn)(s, residuals)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], era.continuous_forward(np.asarray(s[i]), -1.0,
                                                                         residual=float(residuals[i])))
    check_grads(jax.vmap(fn), (s, residuals), order=1, modes=["rev"])
    shared = jax.vmap(fn, in_axes=(0, None))(s, jnp.asarray(0.2))
    np.testing.assert_array_equal(shared, era.continuous_forward(np.asarray(s), -1.0, residual=0.2))


# ---------------------------------------------------------------------------------------
# Discrete ERA


@pytest.mark.parametrize("mode", MODES)
def test_discrete_values_and_grads(key, mode):
    z = jnp.asarray(key.normal(size=(2, 3, 6)) * 2)
    fn = lambda z: ej.discrete_era(z, 1.1, mode=mode)  # noqa: E731
    np.testing.assert_allclose(fn(z), ref.discrete_forward(np.asarray(z), 1.1, mode=mode), rtol=1e-12)
    check_grads(fn, (z,), order=1, modes=["rev"])
    check_grads(jax.jit(fn), (z,), order=1, modes=["rev"])


def test_discrete_vmap_and_grad_of_vmap(key):
    z = jnp.asarray(key.normal(size=(4, 3, 5)))
    fn = lambda z: ej.discrete_era(z, 1.0)  # noqa: E731
    np.testing.assert_array_equal(jax.vmap(fn)(z), fn(z))
    np.testing.assert_array_equal(jax.vmap(jax.vmap(fn))(z), fn(z))
    loss = lambda z: jnp.sum(jax.vmap(fn)(z) * jnp.arange(5.0))  # noqa: E731
    g = jax.jit(jax.grad(loss))(z)
    want = era.discrete_backward(np.asarray(z), np.broadcast_to(np.arange(5.0), z.shape), 1.0)
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-14)
    per_example = jax.vmap(jax.grad(lambda row: jnp.sum(fn(row) * jnp.arange(5.0))))(z)
    np.testing.assert_allclose(per_example, want, rtol=1e-12, atol=1e-14)


def test_float32_inputs(key):
    z = jnp.asarray(key.normal(size=(3, 4)), jnp.float32)
    out = ej.discrete_era(z, 1.0)
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(out, era.discrete_forward(np.asarray(z), 1.0))


# ---------------------------------------------------------------------------------------
# Entropies


def test_entropies_and_no_gradient(key):
    z = jnp.asarray(key.normal(size=(3, 5)))
    np.testing.assert_allclose(ej.softmax_entropy(z), ref.softmax_entropy(np.asarray(z)), rtol=1e-12)
    np.testing.assert_allclose(jax.jit(ej.gaussian_entropy)(z), ref.gaussian_entropy(np.asarray(z)), rtol=1e-12)
    mean = jnp.asarray(key.normal(size=(3, 5)))
    np.testing.assert_array_equal(ej.tanh_gaussian_entropy(mean, z * 0.3),
                                  era.tanh_gaussian_entropy(np.asarray(mean), np.asarray(z * 0.3)))
    np.testing.assert_allclose(ej.truncated_normal_entropy(mean, z * 0.3, -1.0, 1.0),
                               ref.truncated_normal_entropy(np.asarray(mean), np.asarray(z * 0.3), -1.0, 1.0),
                               rtol=1e-9)
    assert np.all(jax.grad(lambda z: jnp.sum(ej.softmax_entropy(z)))(z) == 0)  # a metric: stop_gradient
    assert jax.vmap(ej.softmax_entropy)(z[None]).shape == (1, 3)


def test_token_entropy_bfloat16(key):
    z = key.normal(size=(4, 9)).astype(np.float32)
    z[0, :4] = -np.inf
    zb = jnp.asarray(z, jnp.bfloat16)
    out = jax.jit(ej.token_entropy)(zb)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref.softmax_entropy(np.asarray(zb).astype(np.float64)), rtol=2e-6, atol=2e-6)


# ---------------------------------------------------------------------------------------
# LLM ERA


def jnp_logprob(z, labels, scale):
    """A plain jax.numpy reference of logp' (for its autograd gradient)."""
    x = z * scale[:, None]
    return jnp.take_along_axis(x, labels[:, None], axis=-1)[:, 0] - jax.nn.logsumexp(x, axis=-1)


def test_llm_logprob_values_and_gradient(key):
    z = jnp.asarray(key.normal(size=(6, 7)) * 2, jnp.float32)
    labels = jnp.asarray([0, 1, 2, 3, 4, 5])
    scale = jnp.asarray([2.0, 1.0, 0.5, 1.0, 2.0, 1.0], jnp.float32)
    lp, h = jax.jit(ej.llm_logprob)(z, labels, scale)
    want_lp, want_h = ref.logprob(np.asarray(z), np.asarray(labels), np.asarray(scale))
    np.testing.assert_allclose(lp, want_lp, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h, want_h, rtol=1e-6, atol=1e-6)
    weights = jnp.asarray(key.normal(size=6), jnp.float32)
    g = jax.grad(lambda z: jnp.sum(ej.llm_logprob(z, labels, scale)[0] * weights))(z)
    z64 = z.astype(jnp.float64)
    want = jax.grad(lambda z: jnp.sum(jnp_logprob(z, labels, scale.astype(jnp.float64)) * weights))(z64)
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6)
    # The float32 kernel also passes JAX's own numerical check at float32 tolerances.
    check_grads(lambda z: ej.llm_logprob(z, labels, scale)[0], (z,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2)
    lp1, _ = ej.llm_logprob(z, labels)
    np.testing.assert_allclose(lp1, ref.logprob(np.asarray(z), np.asarray(labels))[0], rtol=1e-6, atol=1e-6)


def test_llm_logprob_bfloat16_gradient(key):
    z = jnp.asarray(key.normal(size=(4, 5)), jnp.bfloat16)
    labels = jnp.asarray([0, 1, 2, 3])
    g = jax.grad(lambda z: jnp.sum(ej.llm_logprob(z, labels)[0]))(z)
    assert g.dtype == jnp.bfloat16
    want = ref.logprob_grad(np.asarray(z).astype(np.float64), np.asarray(labels), None, np.ones(4))
    np.testing.assert_array_equal(np.asarray(g), want.astype(np.float32).astype(ml_dtypes.bfloat16))


def numpy_llm_era(z, labels, adv, ids, responses):
    h = ref.softmax_entropy(z)
    resp = ref.response_entropy(h.astype(np.float32), ids, responses)
    scale, new_adv = ref.scales(resp, ids, adv)
    lp, _ = ref.logprob(z, labels, scale)
    return lp, new_adv, scale, resp


def packed_batch(key, scale0=40.0):
    z = key.normal(size=(8, 32)).astype(np.float32)
    z[:3] *= scale0
    z[3:6] *= 0.02
    ids = np.array([0, 0, 0, 1, 1, 1, 2, -1])
    labels = np.argmax(z, axis=-1)
    adv = np.array([1, 1, 1, 0.5, 0.5, 0.5, -1, 0], np.float32)
    return z, labels, adv, ids


def test_llm_era_packed_and_padded(key):
    z, labels, adv, ids = packed_batch(key)
    out = jax.jit(lambda z: ej.llm_era(z, labels, adv, response_ids=ids, num_responses=3))(jnp.asarray(z))
    lp, new_adv, scale, resp = numpy_llm_era(z, labels, adv, ids, 3)
    np.testing.assert_array_equal(out.logit_scale, scale)
    assert set(np.asarray(out.logit_scale)[:6]) == {2.0, 0.5}
    np.testing.assert_allclose(out.advantages, new_adv, rtol=1e-7)
    np.testing.assert_allclose(out.logprobs, lp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.response_entropy, resp, rtol=1e-5)
    padded = ej.llm_era(jnp.asarray(z[:6]).reshape(2, 3, 32), labels[:6].reshape(2, 3), adv[[0, 3]])
    np.testing.assert_array_equal(padded.logit_scale.reshape(-1), out.logit_scale[:6])
    np.testing.assert_allclose(padded.logprobs.reshape(-1), out.logprobs[:6], rtol=1e-6)
    grad = jax.grad(lambda z: jnp.sum(ej.llm_era(z, labels, adv, response_ids=ids, num_responses=3).logprobs
                                      * out.advantages))(jnp.asarray(z))
    want = ref.logprob_grad(z, labels, scale, np.asarray(out.advantages))
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


def test_llm_era_under_vmap_keeps_examples_apart(key):
    z, labels, adv, ids = packed_batch(key)
    batch = jnp.stack([jnp.asarray(z), jnp.asarray(z) * 0.01])
    fn = lambda z: ej.llm_era(z, labels, adv, response_ids=ids, num_responses=3)  # noqa: E731
    out = jax.vmap(fn)(batch)
    for i in range(2):
        single = fn(batch[i])
        for a, b in zip(out, single):
            np.testing.assert_array_equal(np.asarray(a[i]), np.asarray(b))


def test_errors_eager_traced_and_static(key):
    z = jnp.asarray(key.normal(size=(2, 4)))
    with pytest.raises(era.NonFiniteError):
        ej.discrete_era(z.at[0, 0].set(jnp.nan), 1.0)
    with pytest.raises(Exception, match="non-finite input"):
        jax.jit(lambda z: ej.discrete_era(z, 1.0))(z.at[0, 0].set(jnp.nan)).block_until_ready()
    with pytest.raises(era.InfeasibleTargetError):  # static parameters: checked while tracing
        jax.jit(lambda z: ej.discrete_era(z, 9.0))(z)
    with pytest.raises(era.InfeasibleTargetError):
        ej.continuous_era(z, 10.0)
    with pytest.raises(era.DTypeError):
        ej.discrete_era(jnp.ones((2, 3), jnp.int32), 1.0)
    with pytest.raises(era.DTypeError):
        ej.llm_logprob(z, jnp.zeros(2, jnp.int32))  # float64 logits: no libera kernel
    with pytest.raises(era.BadIndexError):
        ej.llm_logprob(z.astype(jnp.float32), jnp.asarray([0, 7]))
    with pytest.raises(era.BadParameterError):
        ej.llm_era(z.astype(jnp.float32), jnp.zeros(2, jnp.int32), jnp.ones(2, jnp.float32),
                   response_ids=jnp.zeros(2, jnp.int32), num_responses=1, k=-1.0)
    assert math.isfinite(float(ej.softmax_entropy(z)[0]))


X32_CHECK = r"""
import jax, jax.numpy as jnp, numpy as np
import era, era.jax as ej
assert not jax.config.jax_enable_x64
z = jnp.asarray(np.random.default_rng(0).normal(size=(6, 9)), jnp.float32)
labels = jnp.argmax(z, -1)                      # int32 without x64
ids = jnp.asarray([0, 0, 0, 1, 1, -1])
out = jax.jit(lambda z: ej.llm_era(z, labels, jnp.ones(6, jnp.float32), response_ids=ids, num_responses=2))(z)
want = era.llm_logprob_forward(np.asarray(z), np.asarray(labels, np.int64), np.asarray(out.logit_scale)).logprob
np.testing.assert_allclose(out.logprobs, want, rtol=1e-6)
g = jax.grad(lambda z: ej.discrete_era(z, 1.0).sum())(z)
assert g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g)))
print("ok")
"""


def test_default_float32_configuration():
    # jax_enable_x64 is process-wide (this module turns it on): check the default in a child.
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", X32_CHECK], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
