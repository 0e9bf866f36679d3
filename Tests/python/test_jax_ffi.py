"""era.jax on XLA's FFI: custom calls into libera on CPU (no Python callback in the program),
forward mode (jvp, jacfwd, hessian), the jax.numpy path of other platforms forced on CPU and
held to libera, jax.export, and batch-sharded inputs on two CPU devices."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax import export  # noqa: E402

import era  # noqa: E402
import era.jax as ej  # noqa: E402

MODES = ["exact", "tight", "reference"]


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def logits(rng, rows=4, cols=6, scale=2.0):
    return jnp.asarray(rng.normal(size=(rows, cols)) * scale)


def llm_case(rng, tokens=6, vocab=40, dtype=jnp.float32):
    z = rng.normal(size=(tokens, vocab)) * 2
    z[0, 5:] = -np.inf
    labels = jnp.asarray(rng.integers(0, 5, size=tokens), jnp.int32)
    scale = jnp.asarray(np.array([1, 2, 0.5, 1, 2, 1], np.float32)[:tokens])
    return jnp.asarray(z, dtype), labels, scale


# ---------------------------------------------------------------------------------------
# The program holds era's custom calls, not Python


LOWERED = {
    "discrete": (lambda z, a, s: jnp.sum(ej.discrete_era(z, 1.0) ** 2), "era_discrete_forward"),
    "continuous": (lambda z, a, s: jnp.sum(ej.continuous_era(z, -3.0, 0.1) ** 2), "era_continuous_forward"),
    "logprob": (lambda z, a, s: jnp.sum(ej.llm_logprob(z.astype(jnp.float32), a, s)[0]), "era_llm_logprob_backward"),
    "llm_era": (lambda z, a, s: jnp.sum(ej.llm_era(z.astype(jnp.float32), a, jnp.ones(6, jnp.float32),
                                                   response_ids=jnp.asarray([0, 0, 0, 1, 1, -1]),
                                                   num_responses=2).logprobs),
                "era_llm_scales"),
}


@pytest.mark.parametrize("name", sorted(LOWERED))
def test_jit_grad_lowers_to_era_custom_calls_and_no_callback(name, rng):
    fn, target = LOWERED[name]
    z, a, s = llm_case(rng)
    z = jnp.where(jnp.isinf(z), -30.0, z).astype(jnp.float64)
    text = jax.jit(jax.grad(fn)).lower(z, a, s).as_text()
    assert f"custom_call @{target}" in text
    assert "callback" not in text.lower()
    np.testing.assert_allclose(jax.jit(jax.grad(fn))(z, a, s), jax.grad(fn)(z, a, s), rtol=1e-6, atol=1e-7)


def test_errors_inside_jit_carry_eras_class_and_message(rng):
    z = logits(rng).at[1, 2].set(jnp.nan)
    with pytest.raises(jax.errors.JaxRuntimeError, match="era.NonFiniteError: non-finite input: era.jax.discrete_era"):
        jax.block_until_ready(jax.jit(lambda z: ej.discrete_era(z, 1.0))(z))
    with pytest.raises(era.NonFiniteError):  # concrete arrays: era's class itself
        ej.discrete_era(z, 1.0)


# ---------------------------------------------------------------------------------------
# Forward mode and reverse mode from the same tangent rule


def central(fn, x, v, eps=1e-6):
    return (np.asarray(fn(x + eps * v)) - np.asarray(fn(x - eps * v))) / (2 * eps)


@pytest.mark.parametrize("mode", MODES)
def test_discrete_jvp_jacfwd_hessian_and_grad(mode, rng):
    z, v = logits(rng), jnp.asarray(rng.normal(size=(4, 6)))
    fn = lambda z: ej.discrete_era(z, 1.0, mode=mode)  # noqa: E731
    out, tangent = jax.jvp(fn, (z,), (v,))
    np.testing.assert_array_equal(out, fn(z))
    np.testing.assert_allclose(tangent, central(fn, z, v), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jax.jacfwd(fn)(z), jax.jacrev(fn)(z), rtol=1e-12, atol=1e-14)
    g = np.asarray(rng.normal(size=(4, 6)))
    grad = jax.grad(lambda z: jnp.sum(fn(z) * g))(z)
    want = era.discrete_backward(np.asarray(z), g, 1.0, mode=mode)  # libera's own backward
    scale = np.abs(want).max(axis=-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(grad) / scale, want / scale, rtol=0, atol=1e-12)
    hessian = jax.hessian(lambda z: jnp.sum(fn(z) ** 2))(z[0])
    grad_fn = jax.grad(lambda z: jnp.sum(fn(z) ** 2))
    column = central(grad_fn, z[0], jnp.eye(6)[2])
    np.testing.assert_allclose(hessian[:, 2], column, rtol=1e-5, atol=1e-7)


def test_continuous_jvp_with_the_residual_and_hessian(rng):
    s, r = logits(rng, scale=3.0), jnp.asarray(0.3)
    s = s.at[0, 0].set(60.0)  # a clipped entry
    fn = lambda s, r: ej.continuous_era(s, -3.0, r)  # noqa: E731
    vs, vr = jnp.asarray(rng.normal(size=s.shape)), jnp.asarray(0.7)
    _, tangent = jax.jvp(fn, (s, r), (vs, vr))
    want = (np.asarray(fn(s + 1e-6 * vs, r + 1e-6 * vr)) - np.asarray(fn(s - 1e-6 * vs, r - 1e-6 * vr))) / 2e-6
    np.testing.assert_allclose(tangent, want, rtol=1e-6, atol=1e-8)
    g = np.asarray(rng.normal(size=s.shape))
    grad_s, grad_r = jax.grad(lambda s, r: jnp.sum(fn(s, r) * g), argnums=(0, 1))(s, r)
    want = era.continuous_backward(np.asarray(s), g, -3.0, residual=0.3)
    np.testing.assert_allclose(grad_s, want.std_logits, rtol=1e-12, atol=1e-13)
    assert float(grad_r) == pytest.approx(want.residual.sum(), rel=1e-12)
    hessian = jax.hessian(lambda r: jnp.sum(fn(s, r) ** 2))(r)
    assert float(hessian) == pytest.approx(float(central(jax.grad(lambda r: jnp.sum(fn(s, r) ** 2)), r, 1.0)),
                                           rel=1e-5)


def test_forward_mode_through_the_log_prob_is_refused_clearly():
    z = jnp.ones((2, 4), jnp.float32)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda z: ej.llm_logprob(z, jnp.asarray([0, 1]))[0], (z,), (z,))


def test_vmap_of_jvp_and_grad(rng):
    z = jnp.asarray(rng.normal(size=(3, 4, 6)))
    fn = lambda z: ej.discrete_era(z, 1.0)  # noqa: E731
    per_example = jax.vmap(jax.grad(lambda z: jnp.sum(fn(z) ** 2)))(z)
    for i in range(3):
        np.testing.assert_allclose(per_example[i], jax.grad(lambda z: jnp.sum(fn(z) ** 2))(z[i]), rtol=1e-12)
    tangents = jax.vmap(lambda z: jax.jvp(fn, (z,), (jnp.ones_like(z),))[1])(z)
    assert tangents.shape == z.shape


# ---------------------------------------------------------------------------------------
# The jax.numpy path (every platform but the CPU) forced on CPU, held to libera


JNP_CASES = ["discrete-exact", "discrete-tight", "discrete-reference", "continuous", "token", "softmax", "gaussian",
             "logprob", "logprob-grad", "llm_era"]


@pytest.mark.parametrize("case", JNP_CASES)
def test_jnp_path_equals_libera(case, rng):
    z, a, s = llm_case(rng)

    def run(backend):
        if case.startswith("discrete"):
            return ej.discrete_era(logits(rng, 5, 8), 1.0, mode=case.split("-")[1], backend=backend)
        if case == "continuous":
            return ej.continuous_era(logits(rng, 5, 8), -3.0, 0.2, backend=backend)
        if case == "token":
            return ej.token_entropy(z, backend=backend)
        if case == "softmax":
            return ej.softmax_entropy(logits(rng, 5, 8), backend=backend)
        if case == "gaussian":
            return ej.gaussian_entropy(logits(rng, 5, 8), backend=backend)
        if case == "logprob":
            return jnp.stack(ej.llm_logprob(z, a, s, backend=backend))
        if case == "logprob-grad":
            return jax.grad(lambda z: jnp.sum(ej.llm_logprob(z, a, s, backend=backend)[0] * jnp.arange(6.0)))(z)
        out = ej.llm_era(z, a, jnp.asarray([1.0, -1, 1, 1, -1, 1], jnp.float32), response_ids=jnp.asarray(
            [0, 0, 1, 1, 2, -1]), num_responses=3, omega_low=1.0, backend=backend)
        return jnp.concatenate([out.logprobs, out.advantages, out.logit_scale, out.token_entropy, out.entropy,
                                out.response_entropy])

    seed = rng.bit_generator.state
    want = run("ffi")
    rng.bit_generator.state = seed
    got = run("jnp")
    tol = 1e-12 if got.dtype == jnp.float64 and case != "continuous" else 3e-6
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol)


def test_jnp_path_turns_bad_rows_into_nan(rng):
    z = logits(rng).at[1, 2].set(jnp.nan)
    out = jax.jit(lambda z: ej.discrete_era(z, 1.0, backend="jnp"))(z)
    assert np.all(np.isnan(out[1])) and np.all(np.isfinite(np.delete(np.asarray(out), 1, axis=0)))
    labels = jnp.asarray([0, 99, 1, 2], jnp.int32)  # out of range
    logprob, _ = jax.jit(lambda z: ej.llm_logprob(z.astype(jnp.float32), labels, backend="jnp"))(logits(rng))
    assert np.isnan(logprob[1]) and np.all(np.isfinite(np.asarray(logprob)[[0, 2, 3]]))


def test_auto_backend_keeps_the_formula_for_other_platforms(rng):
    z = logits(rng)
    exported = export.export(jax.jit(lambda z: ej.discrete_era(z, 1.0)), platforms=("cpu", "cuda"),
                             disabled_checks=ej.export_checks())(z)
    text = exported.mlir_module()
    assert "era_discrete_forward" in text and "stablehlo.case" in text  # one branch per platform
    with pytest.raises(era.BadParameterError, match="backend"):
        ej.discrete_era(z, 1.0, backend="gpu")


# ---------------------------------------------------------------------------------------
# jax.export


@pytest.mark.parametrize("backend", ["auto", "jnp"])
def test_export_serialises_and_reloads(backend, rng):
    z = logits(rng)

    def loss(z):
        return jnp.sum(ej.discrete_era(z, 1.0, backend=backend) ** 2) + jnp.sum(ej.continuous_era(z, -3.0, 0.1,
                                                                                                  backend=backend))

    f = jax.jit(jax.grad(loss))
    checks = ej.export_checks() if backend == "auto" else ()
    exported = export.export(f, disabled_checks=checks)(z)
    reloaded = export.deserialize(exported.serialize())
    np.testing.assert_allclose(reloaded.call(z), f(z), rtol=1e-12, atol=1e-14)
    if backend == "auto":
        with pytest.raises(ValueError, match="custom calls"):
            export.export(f)(z)  # era's targets need the checks disabled


# ---------------------------------------------------------------------------------------
# Batch-sharded inputs on two CPU devices (a process of its own: the device count is fixed
# when JAX starts)


SHARDED = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, jax.numpy as jnp, numpy as np, era, era.jax as ej
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("rows",))
    rows, rows1 = NamedSharding(mesh, P("rows", None)), NamedSharding(mesh, P("rows"))
    host = np.random.default_rng(0).normal(size=(8, 40)).astype(np.float32)
    z = jax.device_put(jnp.asarray(host), rows)
    labels = jax.device_put(jnp.arange(8, dtype=jnp.int32), rows1)
    cases = {
        "discrete": (lambda z, a: ej.discrete_era(z, 1.0), rows, era.discrete_forward(host, 1.0)),
        "token_entropy": (lambda z, a: ej.token_entropy(z), rows1, era.token_entropy(host)),
        "logprob": (lambda z, a: ej.llm_logprob(z, a)[0], rows1, era.llm_logprob_forward(host, np.arange(8)).logprob),
        "logprob_grad": (jax.grad(lambda z, a: jnp.sum(ej.llm_logprob(z, a)[0])), rows,
                         era.llm_logprob_backward(host, np.arange(8), None, np.ones(8, np.float32))),
    }
    for name, (fn, out_sharding, want) in cases.items():
        jitted = jax.jit(fn, out_shardings=out_sharding)
        hlo = jitted.lower(z, labels).compile().as_text()
        out = jitted(z, labels)
        assert "all-gather" not in hlo, name
        assert out.sharding.spec == out_sharding.spec, (name, out.sharding)
        np.testing.assert_allclose(np.asarray(out), want, rtol=1e-6, atol=1e-6, err_msg=name)
        print(name, "ok")
""")


def test_batch_sharded_inputs_stay_sharded():
    result = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split().count("ok") == 4
