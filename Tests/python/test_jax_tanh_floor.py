"""era.jax.continuous_era_tanh and the differentiable era.jax.tanh_gaussian_entropy: the XLA
FFI custom calls (inside jit) against libera's numpy level, gradients against central
differences in float64, the jnp backend (era._formulas) against the custom calls, vmap with a
residual per example, and refusals (a row whose peak lies below the target included)."""

import numpy as np
import pytest

import era

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import era.jax as ej  # noqa: E402

KW = dict(log_std_min=-20.0, log_std_max=2.0)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def batch(seed, rows=10, d=4, mean_scale=0.5, target=-3.0, kw=KW):
    """Rows with an offset at `target` (rows whose peak lies below it dropped)."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(rows, d)) * 0.5
    m = rng.normal(size=(rows, d)) * mean_scale
    keep = []
    for r in range(rows):
        try:
            era.continuous_tanh_forward(s[r:r + 1], m[r:r + 1], target, residual=0.0, **kw)
            keep.append(r)
        except era.InfeasibleTargetError:
            pass
    assert len(keep) >= 3
    s, m = s[keep], m[keep]
    return s, m, rng.normal(size=s.shape)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_inside_jit_match_libera(dtype):
    s, m, _ = batch(0, target=-3.25)
    s, m = s.astype(dtype), m.astype(dtype)
    f = jax.jit(lambda a, b, r: ej.continuous_era_tanh(a, b, -3.5, r, backend="ffi", **KW))
    out = np.asarray(f(jnp.asarray(s), jnp.asarray(m), jnp.asarray(0.25, dtype)))
    np.testing.assert_array_equal(out, era.continuous_tanh_forward(s, m, -3.5, residual=0.25, **KW))
    eager = np.asarray(ej.continuous_era_tanh(s, m, -3.5, 0.25, **KW))  # concrete: the numpy level
    np.testing.assert_array_equal(eager, out)
    h = jax.jit(lambda a, b: ej.tanh_gaussian_entropy(a, b, backend="ffi"))(jnp.asarray(m), jnp.asarray(s))
    np.testing.assert_array_equal(np.asarray(h), era.tanh_gaussian_entropy(m, s))


def test_gradients_against_differences():
    s, m, g = batch(1, target=-2.5)
    rng = np.random.default_rng(2)

    def loss(a, b, r):
        return jnp.sum(jnp.asarray(g) * ej.continuous_era_tanh(a, b, -3.0, r, backend="ffi", **KW))

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(jnp.asarray(s), jnp.asarray(m), jnp.asarray(0.5))
    ref = era.continuous_tanh_backward(s, m, g, -3.0, residual=0.5, **KW)
    np.testing.assert_allclose(np.asarray(grads[0]), ref.std_logits, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(grads[1]), ref.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(float(grads[2]), ref.residual.sum(), rtol=1e-12)
    value = lambda a, b, r: float(np.sum(g * era.continuous_tanh_forward(a, b, -3.0, residual=r, **KW)))  # noqa
    h = 1e-6
    direction_s, direction_m = rng.normal(size=s.shape), rng.normal(size=m.shape)
    fd = (value(s + h * direction_s, m + h * direction_m, 0.5 + h) -
          value(s - h * direction_s, m - h * direction_m, 0.5 - h)) / (2 * h)
    analytic = float(np.sum(grads[0] * direction_s) + np.sum(grads[1] * direction_m) + grads[2])
    assert abs(analytic - fd) <= 1e-6 * (1 + abs(fd))
    # the entropy's gradient
    gm, gs = jax.grad(lambda b, a: jnp.sum(ej.tanh_gaussian_entropy(b, a)), argnums=(0, 1))(jnp.asarray(m),
                                                                                            jnp.asarray(s))
    e = lambda b, a: float(np.sum(era.tanh_gaussian_entropy(b, a)))  # noqa: E731
    fd = (e(m + h * direction_m, s + h * direction_s) - e(m - h * direction_m, s - h * direction_s)) / (2 * h)
    analytic = float(np.sum(gm * direction_m) + np.sum(gs * direction_s))
    assert abs(analytic - fd) <= 1e-6 * (1 + abs(fd))


@pytest.mark.parametrize("target, log_std_min, mean_scale", [(1.1, -0.1, 0.3)])
def test_jnp_backend_matches_ffi(target, log_std_min, mean_scale):
    """Rows whose stds lie beyond the peak (c < 0) and below it (c > 0); test_formulas.py holds
    the formulas to libera in more cases."""
    kw = dict(log_std_min=log_std_min, log_std_max=2.0)
    s, m, g = batch(3, rows=8, d=3, mean_scale=mean_scale, target=target + 0.25, kw=kw)
    _, c = era.continuous_tanh_forward(s, m, target, residual=0.25, return_offset=True, **kw)
    assert (c != 0).any() and (c < 0).any() == (target > 0)
    args = (jnp.asarray(s), jnp.asarray(m), jnp.asarray(0.25))
    outs = {}
    for backend in ("ffi", "jnp"):
        def loss(a, b, r, backend=backend):
            out = ej.continuous_era_tanh(a, b, target, r, backend=backend, **kw)
            return jnp.sum(jnp.asarray(g) * out), out

        (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(*args)
        outs[backend] = [out, *grads]
    for a, b in zip(outs["ffi"], outs["jnp"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-10)
    h_ffi = jax.grad(lambda b, a: jnp.sum(ej.tanh_gaussian_entropy(b, a, backend="ffi")), argnums=(0, 1))
    h_jnp = jax.grad(lambda b, a: jnp.sum(ej.tanh_gaussian_entropy(b, a, backend="jnp")), argnums=(0, 1))
    for a, b in zip(h_ffi(args[1], args[0]), h_jnp(args[1], args[0])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def test_vmap_residual_per_example():
    s, m, _ = batch(4, rows=6, d=3, target=-2.0)
    residuals = jnp.asarray([0.0, 0.25, 0.5])
    f = jax.jit(jax.vmap(lambda a, b, r: ej.continuous_era_tanh(a, b, -2.5, r, backend="ffi", **KW),
                         in_axes=(None, None, 0)))
    out = np.asarray(f(jnp.asarray(s), jnp.asarray(m), residuals))
    for i, r in enumerate([0.0, 0.25, 0.5]):
        np.testing.assert_array_equal(out[i], era.continuous_tanh_forward(s, m, -2.5, residual=r, **KW))


def test_refusals():
    s, m, _ = batch(5, rows=4, d=2, target=-2.0)
    with pytest.raises(era.InfeasibleTargetError):  # H0 above D * 0.6836: static, refused at the call
        ej.continuous_era_tanh(s, m, 1.4, 0.0, **KW)
    far = m.copy()
    far[0] = 5.0  # the row's peak: 2 * -6.38 nats
    with pytest.raises(era.InfeasibleTargetError):
        ej.continuous_era_tanh(s, far, -2.0, 0.0, **KW)
    with pytest.raises(Exception, match="InfeasibleTargetError"):
        jax.jit(lambda a, b: ej.continuous_era_tanh(a, b, -2.0, 0.0, backend="ffi", **KW))(s, far).block_until_ready()
    out = jax.jit(lambda a, b: ej.continuous_era_tanh(a, b, -2.0, 0.0, backend="jnp", **KW))(s, far)
    assert np.isnan(np.asarray(out)[0]).all() and np.isfinite(np.asarray(out)[1:]).all()  # the row poisoned
    bad = m.copy()
    bad[1, 0] = np.nan
    with pytest.raises(era.NonFiniteError):
        ej.continuous_era_tanh(s, bad, -2.0, 0.0, **KW)
