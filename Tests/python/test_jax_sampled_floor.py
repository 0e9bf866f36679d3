"""era.jax.continuous_era_truncated and the differentiable era.jax.truncated_normal_entropy:
the XLA FFI custom calls (inside jit) against libera's numpy level, gradients against central
differences in float64, the jnp backend (era._formulas) against the custom calls, vmap with a
residual per example, and refusals."""

import math

import numpy as np
import pytest

import era

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import era.jax as ej  # noqa: E402


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def batch(rng, rows=10, d=4):
    s = rng.normal(size=(rows, d)) * 3
    m = np.tanh(rng.normal(size=(rows, d)) * 2)
    return s, m, rng.normal(size=(rows, d))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_inside_jit_match_libera(rng, dtype):
    s, m, _ = batch(rng)
    s, m = s.astype(dtype), m.astype(dtype)
    f = jax.jit(lambda a, b, r: ej.continuous_era_truncated(a, b, -2.0, r, backend="ffi"))
    out = np.asarray(f(jnp.asarray(s), jnp.asarray(m), jnp.asarray(0.25, dtype)))
    np.testing.assert_array_equal(out, era.continuous_truncated_forward(s, m, -2.0, residual=0.25))
    eager = np.asarray(ej.continuous_era_truncated(s, m, -2.0, 0.25))  # concrete: the numpy level
    np.testing.assert_array_equal(eager, out)
    h = jax.jit(lambda a, b: ej.truncated_normal_entropy(a, b, backend="ffi"))(jnp.asarray(m), jnp.asarray(s))
    np.testing.assert_array_equal(np.asarray(h), era.truncated_normal_entropy(m, s))


def test_gradients_against_differences(rng):
    s, m, g = batch(rng)

    def loss(a, b, r):
        return jnp.sum(jnp.asarray(g) * ej.continuous_era_truncated(a, b, -2.5, r, backend="ffi"))

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(jnp.asarray(s), jnp.asarray(m), jnp.asarray(0.5))
    ref = era.continuous_truncated_backward(s, m, g, -2.5, residual=0.5)
    np.testing.assert_allclose(np.asarray(grads[0]), ref.std_logits, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(grads[1]), ref.loc, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(float(grads[2]), ref.residual.sum(), rtol=1e-12)
    value = lambda a, b, r: float(np.sum(g * era.continuous_truncated_forward(a, b, -2.5, residual=r)))  # noqa
    h = 1e-6
    direction_s, direction_m = rng.normal(size=s.shape), rng.normal(size=m.shape)
    fd = (value(s + h * direction_s, m + h * direction_m, 0.5 + h) -
          value(s - h * direction_s, m - h * direction_m, 0.5 - h)) / (2 * h)
    analytic = float(np.sum(grads[0] * direction_s) + np.sum(grads[1] * direction_m) + grads[2])
    assert abs(analytic - fd) <= 1e-6 * (1 + abs(fd))
    # the entropy's gradient
    gl, gs = jax.grad(lambda b, a: jnp.sum(ej.truncated_normal_entropy(b, a)), argnums=(0, 1))(jnp.asarray(m),
                                                                                               jnp.asarray(s))
    e = lambda b, a: float(np.sum(era.truncated_normal_entropy(b, a)))  # noqa: E731
    fd = (e(m + h * direction_m, s + h * direction_s) - e(m - h * direction_m, s - h * direction_s)) / (2 * h)
    analytic = float(np.sum(gl * direction_m) + np.sum(gs * direction_s))
    assert abs(analytic - fd) <= 1e-6 * (1 + abs(fd))


def test_jnp_backend_matches_ffi(rng):
    s, m, g = batch(rng, rows=8, d=3)
    args = (jnp.asarray(s), jnp.asarray(m), jnp.asarray(0.25))
    outs = {}
    for backend in ("ffi", "jnp"):
        def loss(a, b, r, backend=backend):
            out = ej.continuous_era_truncated(a, b, -1.5, r, backend=backend)
            return jnp.sum(jnp.asarray(g) * out), out

        (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(*args)
        outs[backend] = [out, *grads]
    for a, b in zip(outs["ffi"], outs["jnp"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-10)
    h_ffi = jax.grad(lambda b, a: jnp.sum(ej.truncated_normal_entropy(b, a, backend="ffi")), argnums=(0, 1))
    h_jnp = jax.grad(lambda b, a: jnp.sum(ej.truncated_normal_entropy(b, a, backend="jnp")), argnums=(0, 1))
    for a, b in zip(h_ffi(args[1], args[0]), h_jnp(args[1], args[0])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def test_vmap_residual_per_example(rng):
    s, m, _ = batch(rng, rows=6, d=3)
    residuals = jnp.asarray([0.0, 0.5, 1.0])
    f = jax.jit(jax.vmap(lambda a, b, r: ej.continuous_era_truncated(a, b, -2.0, r, backend="ffi"),
                         in_axes=(None, None, 0)))
    out = np.asarray(f(jnp.asarray(s), jnp.asarray(m), residuals))
    for i, r in enumerate([0.0, 0.5, 1.0]):
        np.testing.assert_array_equal(out[i], era.continuous_truncated_forward(s, m, -2.0, residual=r))


def test_refusals(rng):
    s, m, _ = batch(rng, rows=2, d=2)
    with pytest.raises(era.InfeasibleTargetError):  # H0 above 2 log 2: static, refused at the call
        ej.continuous_era_truncated(s, m, 2.0)
    with pytest.raises(era.BadParameterError):
        ej.continuous_era_truncated(s, m, -1.0, lo=1.0, hi=1.0)
    bad = m.copy()
    bad[0, 0] = np.nan
    with pytest.raises(era.NonFiniteError):
        ej.continuous_era_truncated(s, bad, -1.0)
    with pytest.raises(Exception, match="NonFiniteError"):
        jax.jit(lambda a, b: ej.continuous_era_truncated(a, b, -1.0, backend="ffi"))(s, bad).block_until_ready()
    out = jax.jit(lambda a, b: ej.continuous_era_truncated(a, b, -1.0, backend="jnp"))(s, bad)
    assert np.isnan(np.asarray(out)[0]).all() and np.isfinite(np.asarray(out)[1]).all()  # the faulty row poisoned
    assert math.isfinite(float(ej.truncated_normal_entropy(m, s)[0]))
