"""era.jax.truncated_normal_sample / truncated_normal_log_prob: the FFI custom calls (under
jit, grad, vmap) against libera's numpy level, the jax.numpy formulas against libera, and the
reparameterised gradients against finite differences in float64."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import era  # noqa: E402
import era.jax as ej  # noqa: E402

LOC = np.array([0.3, 0.99, -0.99, 1.0, 1.5, -0.2])
LOG_STD = np.array([-1.0, -4.0, -6.9, -2.0, -1.0, 0.5])
KEY = jax.random.PRNGKey(3)


def _uniforms(dtype):
    tiny = float(jnp.finfo(dtype).tiny)
    return np.asarray(jax.random.uniform(KEY, LOC.shape, dtype, minval=tiny, maxval=1.0))


@pytest.mark.parametrize("backend", ["auto", "ffi", "jnp"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_sample_and_log_prob_match_libera(backend, dtype):
    loc, scale = jnp.asarray(LOC, dtype), jnp.exp(jnp.asarray(LOG_STD, dtype))
    sample = jax.jit(lambda k, m, s: ej.truncated_normal_sample(k, m, s, backend=backend))
    x = sample(KEY, loc, scale)
    assert x.dtype == dtype and bool(jnp.all((x >= -1) & (x <= 1)))
    want = era.truncated_normal_sample(np.asarray(loc), np.asarray(jnp.log(scale)), _uniforms(dtype))
    tol = 1e-12 if dtype == jnp.float64 else 2e-6
    np.testing.assert_allclose(np.asarray(x), want, rtol=tol, atol=tol)
    lp = jax.jit(lambda v, m, s: ej.truncated_normal_log_prob(v, m, s, backend=backend))(x, loc, scale)
    want_lp = era.truncated_normal_log_prob(np.asarray(loc), np.asarray(jnp.log(scale)), np.asarray(x))
    np.testing.assert_allclose(np.asarray(lp), want_lp, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("backend", ["ffi", "jnp"])
def test_gradients_against_finite_differences(backend):
    loc, scale = jnp.asarray(LOC), jnp.exp(jnp.asarray(LOG_STD))
    u = _uniforms(jnp.float64)
    grad_loc, grad_scale = jax.jit(jax.grad(
        lambda m, s: ej.truncated_normal_sample(KEY, m, s, backend=backend).sum(), argnums=(0, 1)))(loc, scale)
    s0 = np.asarray(scale)
    h = 1e-6 * s0
    fd_loc = (era.truncated_normal_sample(LOC + h, np.log(s0), u) - era.truncated_normal_sample(LOC - h, np.log(s0), u)) / (2 * h)
    fd_scale = (era.truncated_normal_sample(LOC, np.log(s0 + h), u) -
                era.truncated_normal_sample(LOC, np.log(s0 - h), u)) / (2 * h)
    np.testing.assert_allclose(np.asarray(grad_loc), fd_loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grad_scale), fd_scale, rtol=1e-5, atol=1e-6)

    x = jnp.asarray([0.1, 0.98, -0.999, 0.95, 0.9, 0.3])
    gx, gm, gs = jax.jit(jax.grad(lambda v, m, s: ej.truncated_normal_log_prob(v, m, s, backend=backend).sum(),
                                  argnums=(0, 1, 2)))(x, loc, scale)
    x0 = np.asarray(x)
    h = 1e-7 * s0

    def lp(m, s, v):
        return era.truncated_normal_log_prob(m, np.log(s), v)

    for got, fd in [(gx, (lp(LOC, s0, x0 + h) - lp(LOC, s0, x0 - h)) / (2 * h)),
                    (gm, (lp(LOC + h, s0, x0) - lp(LOC - h, s0, x0)) / (2 * h)),
                    (gs, (lp(LOC, s0 + h, x0) - lp(LOC, s0 - h, x0)) / (2 * h))]:
        np.testing.assert_allclose(np.asarray(got), fd, rtol=1e-5, atol=1e-5)


def test_vmap_shapes_and_broadcasting():
    loc = jnp.asarray(LOC)
    scale = jnp.exp(jnp.asarray(LOG_STD))
    batched = jax.jit(jax.vmap(lambda m: ej.truncated_normal_sample(KEY, m, scale)))(jnp.stack([loc, loc]))
    assert batched.shape == (2, 6)
    np.testing.assert_array_equal(np.asarray(batched[0]), np.asarray(batched[1]))
    assert ej.truncated_normal_sample(KEY, 0.2, 0.5, shape=(3, 4)).shape == (3, 4)
    lp = ej.truncated_normal_log_prob(jnp.asarray([2.0, 0.0]), 0.0, 1.0)
    assert lp[0] == -jnp.inf and jnp.isfinite(lp[1])


def test_errors():
    with pytest.raises(era.BadParameterError):
        ej.truncated_normal_sample(KEY, 0.0, 1.0, 1.0, 1.0)
    with pytest.raises(era.NonFiniteError):
        ej.truncated_normal_log_prob(jnp.asarray([0.0]), jnp.asarray([jnp.nan]), jnp.asarray([1.0]))
    with pytest.raises(Exception, match="NonFiniteError"):
        jax.jit(lambda m: ej.truncated_normal_log_prob(jnp.zeros(1), m, jnp.ones(1), backend="ffi"))(
            jnp.asarray([jnp.nan])).block_until_ready()
