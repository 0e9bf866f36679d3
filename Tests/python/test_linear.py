"""The fused linear heads through era (numpy level) against the unfused path and plain
float64 references (docs/linear-heads.md; era.h, "Fused linear heads").

Two comparisons for each head:
- the float64 reference: the logits ``z = hidden @ weight.T`` (+ bias) formed in float64 from
  the float32 inputs, then reference.py (log-softmax and its gradient; discrete ERA and its
  VJP) and a numpy cross-entropy, all in float64;
- the unfused path: the same float64 logits rounded to float32, then era.llm_logprob_* or
  era.discrete_forward/backward with a numpy cross-entropy, the products in float64.
The fused heads form the logits with float32 products (OpenBLAS sgemm): with the row
kernels' float32 lanes, the only difference from the reference.

Tolerances: about 2.5 to 3 times the worst errors measured over these shapes with 41 data seeds
(seed 0 is the one tested; 2-core AVX2 machine, default OpenBLAS threads):

    LLM head, |err| / (1 + |ref|):    logp' 1.0e-6, entropy 2.4e-6
    LLM head, gradients, entrywise:   hidden 3.4e-6, weight 8.7e-6, against the sum over the
                                      products of |g s| (onehot + p) |w| (or |h|)
    classification head (13 seeds):   loss |err| / (1 + |ref|) 2.3e-7; gradients 3.6e-6 of the
                                      largest sum over the products of |G| |w| (|x|, 1)
    central differences of the float64 references: 1.3e-7 entrywise
"""

import itertools
import math
from typing import NamedTuple

import ml_dtypes
import numpy as np
import pytest

import era
import reference as ref

# Per-token values: |err| <= TOL * (1 + |ref|). Gradients: see assert_grad.
LOGPROB_TOL = 3e-6
ENTROPY_TOL = 6e-6
LLM_GRAD_TOL = 2.5e-5
LOSS_TOL = 6e-7
CE_GRAD_TOL = 1e-5
# The float64 references' gradients against their own central differences.
FD_TOL = 1e-6

TOKENS = [0, 1, 7, 300]
DIMS = [1, 16, 64]
VOCABS = [2, 1000, 5000]
MODES = ["exact", "tight", "reference"]


def f64(x):
    return np.asarray(x, np.float64)


def assert_per_token(got, want, tol, what):
    """|got - want| <= tol * (1 + |want|) for per-token values (nats)."""
    got = f64(got)
    assert got.shape == want.shape, what
    err = np.abs(got - want) / (1 + np.abs(want))
    assert np.all(err <= tol), f"{what}: worst |err|/(1+|ref|) {err.max():.3g} > {tol}"


class Grad(NamedTuple):
    """A float64 reference gradient and the scale of each entry: the sum of the magnitudes
    of the terms it adds up (so that cancellation makes the comparison neither looser nor
    impossible)."""

    value: np.ndarray
    scale: np.ndarray


def linear_grads(g, inputs, weight, magnitude=None):
    """The gradients of a linear layer ``inputs @ weight.T (+ bias)`` from the float64
    gradient g ``[N, V]`` of its outputs: (inputs: g @ W, weight: g.T @ X, bias: sum_r g_r).
    `magnitude` (default |g|) is what the scales sum in place of |g|: for g = a - b, |a| + |b|."""
    x, w = f64(inputs).reshape(len(g), np.shape(weight)[1]), f64(weight)
    a = np.abs(g) if magnitude is None else magnitude
    return (Grad(g @ w, a @ np.abs(w)), Grad(g.T @ x, a.T @ np.abs(x)), Grad(g.sum(axis=0), a.sum(axis=0)))


def grad_error(got, want, entrywise=True):
    """max |got - want| / scale, entrywise (0 where both are exactly 0) or against the
    largest scale."""
    err = np.abs(f64(got) - want.value)
    if err.size == 0:
        return 0.0
    if not entrywise:
        return float(err.max() / max(want.scale.max(), 1e-300))
    return float(np.max(np.where(err == 0, 0.0, err / np.maximum(want.scale, 1e-300))))


def assert_grad(got, want, tol, what, entrywise=True):
    """|got - want| <= tol * scale for each entry, plus 1e-12 of the largest scale (the
    kernels flush entries below 2^-127 |g s| to 0); or, not entrywise, <= tol * the largest
    scale, for kernels whose error is absolute within a row (discrete ERA's backward)."""
    got = f64(got)
    assert got.shape == want.value.shape, what
    if got.size == 0:
        return
    largest = want.scale.max()
    bound = tol * want.scale + 1e-12 * largest if entrywise else tol * largest
    worst = grad_error(got, want, entrywise)
    assert np.all(np.abs(got - want.value) <= bound), f"{what}: worst |err|/scale {worst:.3g} > {tol}"


# ---------------------------------------------------------------------------------------
# LLM ERA through the output layer


def llm_case(tokens, dim, vocab, scaled, seed=0):
    """float32 hidden [T, d] ~ N(0, 1), weight [V, d] ~ N(0, 4/d) (logits of std about 2),
    int64 labels, float32 scales in {0.5, 1, 2} or None, float32 grad_logprob ~ N(0, 1)."""
    rng = np.random.default_rng([tokens, dim, vocab, int(scaled), seed])
    hidden = rng.normal(size=(tokens, dim)).astype(np.float32)
    weight = (rng.normal(size=(vocab, dim)) * 2 / math.sqrt(dim)).astype(np.float32)
    labels = rng.integers(0, vocab, size=tokens).astype(np.int64)
    scale = rng.choice(np.array([0.5, 1.0, 2.0], np.float32), size=tokens) if scaled else None
    grad = rng.normal(size=tokens).astype(np.float32)
    return hidden, weight, labels, scale, grad


def llm_reference(hidden, weight, labels, scale, grad):
    """float64 (logp', entropy, dL/dz) from the float64 logits of the float32 inputs."""
    z = f64(hidden) @ f64(weight).T
    lp, ent = ref.logprob(z, labels, scale)
    return lp, ent, ref.logprob_grad(z, labels, scale, grad)


def llm_magnitude(hidden, weight, labels, scale, grad):
    """|g_t s_t| (onehot(a_t) + softmax(s_t z_t)): the magnitude of the two terms of dL/dz,
    the scale of its error (the label's entry cancels as its probability nears 1)."""
    z = f64(hidden) @ f64(weight).T
    s = np.ones(len(z)) if scale is None else f64(scale)
    onehot = np.zeros_like(z)
    onehot[np.arange(len(z)), labels] = 1.0
    return np.abs(f64(grad) * s)[:, None] * (onehot + ref.softmax(z * s[:, None]))


def llm_unfused(hidden, weight, labels, scale, grad):
    """The same from era's unfused passes on the float64 logits rounded to float32."""
    z32 = (f64(hidden) @ f64(weight).T).astype(np.float32)
    out = era.llm_logprob_forward(z32, labels, scale)
    return f64(out.logprob), f64(out.entropy), f64(era.llm_logprob_backward(z32, labels, scale, grad))


@pytest.mark.parametrize("tokens, dim, vocab, scaled", list(itertools.product(TOKENS, DIMS, VOCABS, [False, True])))
def test_llm_linear_against_reference_and_unfused(tokens, dim, vocab, scaled):
    hidden, weight, labels, scale, grad = llm_case(tokens, dim, vocab, scaled)
    out = era.llm_linear_logprob_forward(hidden, weight, labels, scale)
    assert out.logprob.shape == (tokens,) and out.logprob.dtype == np.float32
    assert out.entropy.shape == (tokens,) and out.entropy.dtype == np.float32
    grads = era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad)
    assert grads.hidden.shape == (tokens, dim) and grads.hidden.dtype == np.float32
    assert grads.weight.shape == (vocab, dim) and grads.weight.dtype == np.float32
    magnitude = llm_magnitude(hidden, weight, labels, scale, grad)
    for name, (lp, ent, dz) in (("reference", llm_reference(hidden, weight, labels, scale, grad)),
                                ("unfused", llm_unfused(hidden, weight, labels, scale, grad))):
        want_hidden, want_weight, _ = linear_grads(dz, hidden, weight, magnitude)
        assert_per_token(out.logprob, lp, LOGPROB_TOL, f"logprob vs {name}")
        assert_per_token(out.entropy, ent, ENTROPY_TOL, f"entropy vs {name}")
        assert_grad(grads.hidden, want_hidden, LLM_GRAD_TOL, f"grad hidden vs {name}")
        assert_grad(grads.weight, want_weight, LLM_GRAD_TOL, f"grad weight vs {name}")
    assert np.all(out.logprob <= 0)
    assert np.all(out.entropy >= 0) and np.all(out.entropy <= math.log(vocab) + 1e-5)
    if tokens == 0:
        assert np.all(grads.weight == 0)  # a sum over no tokens


def test_llm_linear_without_entropy_and_one_gradient():
    hidden, weight, labels, scale, grad = llm_case(300, 16, 5000, True)
    full = era.llm_linear_logprob_forward(hidden, weight, labels, scale)
    lean = era.llm_linear_logprob_forward(hidden, weight, labels, scale, with_entropy=False)
    assert lean.entropy is None
    np.testing.assert_array_equal(lean.logprob, full.logprob)
    both = era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad)
    only_hidden = era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad, grad_weight=False)
    only_weight = era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad, grad_hidden=False)
    assert only_hidden.weight is None and only_weight.hidden is None
    # Each gradient is computed the same way whether or not the other one is.
    np.testing.assert_array_equal(only_hidden.hidden, both.hidden)
    np.testing.assert_array_equal(only_weight.weight, both.weight)
    assert era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad, grad_hidden=False,
                                           grad_weight=False) == (None, None)


def test_llm_linear_batch_shapes_and_layouts():
    hidden, weight, labels, scale, grad = llm_case(6, 16, 1000, True)
    flat_out = era.llm_linear_logprob_forward(hidden, weight, labels, scale)
    flat_grads = era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad)
    # Leading axes are tokens: [2, 3, d] is the same 6 tokens.
    out = era.llm_linear_logprob_forward(hidden.reshape(2, 3, 16), weight, labels.reshape(2, 3), scale.reshape(2, 3))
    assert out.logprob.shape == (2, 3) and out.entropy.shape == (2, 3)
    np.testing.assert_array_equal(out.logprob.reshape(-1), flat_out.logprob)
    grads = era.llm_linear_logprob_backward(hidden.reshape(2, 3, 16), weight, labels.reshape(2, 3),
                                            scale.reshape(2, 3), grad.reshape(2, 3))
    assert grads.hidden.shape == (2, 3, 16)
    np.testing.assert_array_equal(grads.hidden.reshape(6, 16), flat_grads.hidden)
    np.testing.assert_array_equal(grads.weight, flat_grads.weight)
    # One token as a 1-D hidden state: 0-d results.
    one = era.llm_linear_logprob_forward(hidden[0], weight, labels[0], scale[0])
    assert one.logprob.shape == () and one.logprob == flat_out.logprob[0]
    # Non-contiguous inputs (copied) give the same bits.
    weight_f = np.asfortranarray(weight)
    hidden_s = np.zeros((6, 32), np.float32)
    hidden_s[:, ::2] = hidden
    out = era.llm_linear_logprob_forward(hidden_s[:, ::2], weight_f, labels, scale)
    np.testing.assert_array_equal(out.logprob, flat_out.logprob)
    np.testing.assert_array_equal(out.entropy, flat_out.entropy)
    grads = era.llm_linear_logprob_backward(hidden_s[:, ::2], weight_f, labels, scale, grad)
    np.testing.assert_array_equal(grads.hidden, flat_grads.hidden)
    np.testing.assert_array_equal(grads.weight, flat_grads.weight)
    assert grads.hidden.flags.c_contiguous and grads.weight.flags.c_contiguous


def test_llm_linear_results_do_not_depend_on_the_thread_setting():
    hidden, weight, labels, scale, grad = llm_case(300, 64, 5000, True)
    before = era.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 0):
            era.set_num_threads(n)
            out = era.llm_linear_logprob_forward(hidden, weight, labels, scale)
            grads = era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad)
            results.append((out.logprob, out.entropy, grads.hidden, grads.weight))
    finally:
        era.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_llm_linear_gradient_by_finite_differences():
    # The float64 reference's gradient against central differences of its objective
    # sum_t g_t logp'_t (this checks the reference), then the fused gradient against it.
    hidden, weight, labels, scale, grad = llm_case(3, 4, 5, True)

    def objective(h, w):
        return ref.logprob(f64(h) @ f64(w).T, labels, scale)[0]

    # central_difference draws the g_t of its objective itself.
    g_h, numeric_h = ref.central_difference(lambda h: objective(h, weight), f64(hidden))
    g_w, numeric_w = ref.central_difference(lambda w: objective(hidden, w), f64(weight))
    want_h = linear_grads(llm_reference(hidden, weight, labels, scale, g_h)[2], hidden, weight)[0]
    want_w = linear_grads(llm_reference(hidden, weight, labels, scale, g_w)[2], hidden, weight)[1]
    assert_grad(numeric_h, want_h, FD_TOL, "reference grad hidden vs central differences")
    assert_grad(numeric_w, want_w, FD_TOL, "reference grad weight vs central differences")
    want_h, want_w, _ = linear_grads(llm_reference(hidden, weight, labels, scale, grad)[2], hidden, weight,
                                     llm_magnitude(hidden, weight, labels, scale, grad))
    grads = era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad)
    assert_grad(grads.hidden, want_h, LLM_GRAD_TOL, "grad hidden")
    assert_grad(grads.weight, want_w, LLM_GRAD_TOL, "grad weight")


# ---------------------------------------------------------------------------------------
# Linear + discrete ERA + cross-entropy


def feasible_target(classes, mode, tau=4.0, fraction=0.5):
    """A target inside the mode's feasible range (discrete ERA, math 2)."""
    up = math.log(tau) / tau
    lo, hi = (0.0, math.log(classes)) if mode == "tight" else (1 + math.log(up), 1 + math.log(classes * up))
    return lo + fraction * (hi - lo)


def ce_case(rows, dim, classes, with_bias, seed=0):
    """float32 features [N, d] ~ N(0, 1), weight [K, d] ~ N(0, 4/d), bias [K] ~ N(0, 1) or
    None, int64 labels."""
    rng = np.random.default_rng([rows, dim, classes, int(with_bias), seed])
    features = rng.normal(size=(rows, dim)).astype(np.float32)
    weight = (rng.normal(size=(classes, dim)) * 2 / math.sqrt(dim)).astype(np.float32)
    bias = rng.normal(size=classes).astype(np.float32) if with_bias else None
    labels = rng.integers(0, classes, size=rows).astype(np.int64)
    return features, weight, bias, labels


def logits64(features, weight, bias):
    z = f64(features) @ f64(weight).T
    return z if bias is None else z + f64(bias)


def cross_entropy(zp, labels):
    """Mean cross-entropy of float64 logits and its gradient (softmax - onehot) / N."""
    n = zp.shape[0]
    m = zp.max(axis=-1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(zp - m).sum(axis=-1))
    loss = float(np.mean(lse - zp[np.arange(n), labels]))
    g = ref.softmax(zp)
    g[np.arange(n), labels] -= 1
    return loss, g / n


def ce_reference(features, weight, bias, labels, target, mode, tau=4.0):
    """float64 (loss, dL/dlogits) through reference.py's discrete ERA."""
    z = logits64(features, weight, bias)
    loss, gp = cross_entropy(ref.discrete_forward(z, target, tau, mode), labels)
    # reference.discrete_backward holds classes x classes per row: one row at a time.
    g = np.concatenate([ref.discrete_backward(z[r:r + 1], gp[r:r + 1], target, tau, mode) for r in range(len(z))])
    return loss, g


def ce_unfused(features, weight, bias, labels, target, mode, tau=4.0):
    """The same through era.discrete_forward/backward on the float64 logits rounded to float32."""
    z32 = logits64(features, weight, bias).astype(np.float32)
    loss, gp = cross_entropy(f64(era.discrete_forward(z32, target, tau=tau, mode=mode)), labels)
    return loss, f64(era.discrete_backward(z32, gp.astype(np.float32), target, tau=tau, mode=mode))


def assert_ce(out, want, features, weight, what, with_bias):
    loss, g = want
    assert isinstance(out.loss, float)
    assert abs(out.loss - loss) <= LOSS_TOL * (1 + abs(loss)), f"loss vs {what}: {out.loss} against {loss}"
    want_features, want_weight, want_bias = linear_grads(g, features, weight)
    assert_grad(out.features, want_features, CE_GRAD_TOL, f"grad features vs {what}", entrywise=False)
    assert_grad(out.weight, want_weight, CE_GRAD_TOL, f"grad weight vs {what}", entrywise=False)
    if with_bias:
        assert out.bias.dtype == np.float32
        assert_grad(out.bias, want_bias, CE_GRAD_TOL, f"grad bias vs {what}", entrywise=False)
    else:
        assert out.bias is None


@pytest.mark.parametrize("rows, dim, classes, with_bias, mode",
                         list(itertools.product([1, 7, 300], DIMS, [2, 10, 1000], [False, True], MODES)))
def test_linear_discrete_ce_against_unfused(rows, dim, classes, with_bias, mode):
    features, weight, bias, labels = ce_case(rows, dim, classes, with_bias)
    target = feasible_target(classes, mode)
    out = era.linear_discrete_ce(features, weight, bias, labels, target, mode=mode)
    assert out.features.shape == (rows, dim) and out.features.dtype == np.float32
    assert out.weight.shape == (classes, dim) and out.weight.dtype == np.float32
    want = ce_unfused(features, weight, bias, labels, target, mode)
    assert_ce(out, want, features, weight, "unfused", with_bias)


# The reference's discrete ERA backward is slow for many classes: fewer cases there.
@pytest.mark.parametrize("rows, dim, classes, with_bias, mode",
                         list(itertools.product([1, 7, 300], [1, 64], [2, 10], [False, True], MODES))
                         + [(7, 16, 1000, True, mode) for mode in MODES])
def test_linear_discrete_ce_against_reference(rows, dim, classes, with_bias, mode):
    features, weight, bias, labels = ce_case(rows, dim, classes, with_bias)
    target = feasible_target(classes, mode)
    out = era.linear_discrete_ce(features, weight, bias, labels, target, mode=mode)
    want = ce_reference(features, weight, bias, labels, target, mode)
    assert_ce(out, want, features, weight, "reference", with_bias)


@pytest.mark.parametrize("mode", MODES)
def test_linear_discrete_ce_gradient_by_finite_differences(mode):
    # The float64 reference's gradients against central differences of its loss (this checks
    # the reference), then the fused float32 gradients against the reference.
    features, weight, bias, labels = ce_case(3, 4, 5, True, seed=1)
    target = feasible_target(5, mode, fraction=0.3)

    def loss(f, w, b):
        return cross_entropy(ref.discrete_forward(logits64(f, w, b), target, 4.0, mode), labels)[0]

    want = ce_reference(features, weight, bias, labels, target, mode)
    analytic = linear_grads(want[1], features, weight)  # features, weight, bias
    args = [f64(features), f64(weight), f64(bias)]
    for index, name in enumerate(("features", "weight", "bias")):

        def f(v, index=index):
            return loss(*(v if i == index else a for i, a in enumerate(args)))

        g, numeric = ref.central_difference(f, args[index])  # d(g * loss)/dx for a drawn scalar g
        scaled = Grad(float(g) * analytic[index].value, abs(float(g)) * analytic[index].scale)
        assert_grad(numeric, scaled, FD_TOL, f"reference grad {name} vs central differences")
    out = era.linear_discrete_ce(features, weight, bias, labels, target, mode=mode)
    assert_ce(out, want, features, weight, "reference", True)


def test_linear_discrete_ce_options_shapes_and_layouts():
    features, weight, bias, labels = ce_case(6, 16, 10, True)
    full = era.linear_discrete_ce(features, weight, bias, labels, 1.0)
    lean = era.linear_discrete_ce(features, weight, bias, labels, 1.0, grads=False)
    assert lean.features is None and lean.weight is None and lean.bias is None
    assert lean.loss == full.loss
    # Leading axes are rows: [2, 3, d] is the same 6 rows, the mean over all of them.
    batched = era.linear_discrete_ce(features.reshape(2, 3, 16), weight, bias, labels.reshape(2, 3), 1.0)
    assert batched.loss == full.loss and batched.features.shape == (2, 3, 16)
    np.testing.assert_array_equal(batched.features.reshape(6, 16), full.features)
    # tau and mode are passed through.
    other = era.linear_discrete_ce(features, weight, bias, labels, 1.0, tau=10.0, mode="tight")
    want = ce_reference(features, weight, bias, labels, 1.0, "tight", tau=10.0)
    assert_ce(other, want, features, weight, "reference", True)
    # Non-contiguous inputs give the same bits.
    strided = era.linear_discrete_ce(np.asfortranarray(features), np.asfortranarray(weight),
                                     np.repeat(bias, 2)[::2], labels, 1.0)
    assert strided.loss == full.loss
    for a, b in zip(strided[1:], full[1:]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------
# Errors


def good_llm():
    return llm_case(4, 8, 10, True)


def llm_forward(hidden, weight, labels, scale, grad):
    return era.llm_linear_logprob_forward(hidden, weight, labels, scale)


def llm_backward(hidden, weight, labels, scale, grad):
    return era.llm_linear_logprob_backward(hidden, weight, labels, scale, grad)


LLM_CALLS = [llm_forward, llm_backward]
ARGS = ("hidden", "weight", "labels", "scale", "grad")


def with_arg(args, name, value):
    out = list(args)
    out[ARGS.index(name)] = value
    return out


@pytest.mark.parametrize("call", LLM_CALLS)
@pytest.mark.parametrize("name, dtype", [("hidden", np.float64), ("hidden", np.float16), ("hidden", ml_dtypes.bfloat16),
                                         ("weight", np.float64), ("weight", np.int64), ("labels", np.int32),
                                         ("labels", np.uint64), ("scale", np.float64), ("grad", np.float64)])
def test_llm_linear_wrong_dtype(call, name, dtype):
    if name == "grad" and call is llm_forward:
        return
    args = good_llm()
    bad = with_arg(args, name, args[ARGS.index(name)].astype(dtype))
    with pytest.raises(era.DTypeError):
        call(*bad)


@pytest.mark.parametrize("call", LLM_CALLS)
@pytest.mark.parametrize("label", [-1, 10, 2**62])
def test_llm_linear_label_out_of_range(call, label):
    hidden, weight, labels, scale, grad = good_llm()
    labels = labels.copy()
    labels[2] = label
    with pytest.raises(era.BadIndexError, match="index out of range"):
        call(hidden, weight, labels, scale, grad)


@pytest.mark.parametrize("call", LLM_CALLS)
@pytest.mark.parametrize("name", ["hidden", "weight", "scale", "grad"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_llm_linear_non_finite(call, name, value):
    if name == "grad" and call is llm_forward:
        return
    args = good_llm()
    bad = args[ARGS.index(name)].copy()
    bad.reshape(-1)[-1] = value
    with pytest.raises(era.NonFiniteError):
        call(*with_arg(args, name, bad))


@pytest.mark.parametrize("call", LLM_CALLS)
def test_llm_linear_nan_weight_without_tokens(call):
    # The weight is scanned even when there are no tokens.
    _, weight, _, _, _ = good_llm()
    weight = weight.copy()
    weight[3, 5] = np.nan
    with pytest.raises(era.NonFiniteError):
        call(np.zeros((0, 8), np.float32), weight, np.zeros(0, np.int64), None, np.zeros(0, np.float32))


@pytest.mark.parametrize("call", LLM_CALLS)
def test_llm_linear_overflowing_logit(call):
    # Finite inputs whose product overflows float32: there are no masks here.
    hidden, weight, labels, scale, grad = good_llm()
    hidden, weight = hidden.copy(), weight.copy()
    hidden[1] = 1e20
    weight[:] = 1e20
    with pytest.raises(era.NonFiniteError):
        call(hidden, weight, labels, scale, grad)


@pytest.mark.parametrize("call", LLM_CALLS)
@pytest.mark.parametrize("name, value", [
    ("weight", "1-D"), ("weight", "3-D"), ("weight", "longer rows"), ("weight", "shorter rows"), ("weight", "no rows"),
    ("hidden", "empty rows"), ("hidden", "scalar"), ("labels", "fewer"), ("labels", "flat"), ("labels", "2-D"),
    ("scale", "fewer"), ("scale", "2-D"), ("grad", "fewer"), ("grad", "2-D"),
])
def test_llm_linear_bad_shapes(call, name, value):
    if name == "grad" and call is llm_forward:
        return
    args = good_llm()
    hidden, weight = args[0], args[1]
    a = args[ARGS.index(name)]
    bad = {
        "1-D": lambda: weight[0],
        "3-D": lambda: weight[None],
        "longer rows": lambda: np.concatenate([weight, weight], axis=1),
        "shorter rows": lambda: weight[:, :-1],
        "no rows": lambda: weight[:0],
        "empty rows": lambda: hidden[:, :0],
        "scalar": lambda: np.array(hidden[0, 0]),
        "fewer": lambda: a[:-1],
        "flat": lambda: a.reshape(2, 2),
        "2-D": lambda: a[:, None],
    }[value]()
    new = with_arg(args, name, bad)
    if value == "empty rows":
        new = with_arg(new, "weight", weight[:, :0])  # d = 0 everywhere: refused by libera
    with pytest.raises(era.BadShapeError):
        call(*new)


@pytest.mark.parametrize("scale", [0.0, -0.0, -1.0])
@pytest.mark.parametrize("call", LLM_CALLS)
def test_llm_linear_bad_scale(call, scale):
    hidden, weight, labels, scales, grad = good_llm()
    scales = scales.copy()
    scales[0] = scale
    with pytest.raises(era.BadParameterError):
        call(hidden, weight, labels, scales, grad)


def test_llm_linear_overflows_refused():
    # A log-probability float32 cannot hold: s * z = -1e40.
    hidden = np.array([[1e15]], np.float32)
    weight = np.array([[1e15], [-1e15]], np.float32)
    labels = np.array([1], np.int64)
    with pytest.raises(era.BadParameterError):
        era.llm_linear_logprob_forward(hidden, weight, labels, np.array([1e10], np.float32))
    # g * s overflowing float32.
    with pytest.raises(era.BadParameterError):
        era.llm_linear_logprob_backward(hidden, weight, labels, np.array([2.0], np.float32),
                                        np.array([3e38], np.float32))
    # A weight gradient that could overflow (sum_t |g_t s_t| max|h_t| = 2e38 > FLT_MAX / 4) is
    # refused only when it is asked for.
    hidden = np.full((2, 4), 1e36, np.float32)
    weight = np.full((3, 4), 1e-3, np.float32)
    labels = np.array([0, 2], np.int64)
    grad = np.full(2, 100.0, np.float32)
    with pytest.raises(era.BadParameterError):
        era.llm_linear_logprob_backward(hidden, weight, labels, None, grad)
    grads = era.llm_linear_logprob_backward(hidden, weight, labels, None, grad, grad_weight=False)
    assert np.all(np.isfinite(grads.hidden))


def good_ce():
    return ce_case(5, 8, 6, True)


def test_linear_discrete_ce_errors():
    features, weight, bias, labels = good_ce()
    call = era.linear_discrete_ce
    for bad in (dict(features=features.astype(np.float64)), dict(weight=weight.astype(np.float64)),
                dict(bias=bias.astype(np.float64)), dict(labels=labels.astype(np.int32)),
                dict(features=features.astype(ml_dtypes.bfloat16))):
        args = dict(features=features, weight=weight, bias=bias, labels=labels) | bad
        with pytest.raises(era.DTypeError):
            call(args["features"], args["weight"], args["bias"], args["labels"], 1.0)
    for label in (-1, 6, 2**62):
        bad = labels.copy()
        bad[4] = label
        with pytest.raises(era.BadIndexError):
            call(features, weight, bias, bad, 1.0)
    for name in ("features", "weight", "bias"):
        for value in (np.nan, np.inf, -np.inf):
            args = dict(features=features.copy(), weight=weight.copy(), bias=bias.copy())
            args[name].reshape(-1)[-1] = value
            with pytest.raises(era.NonFiniteError):
                call(args["features"], args["weight"], args["bias"], labels, 1.0)
    with pytest.raises(era.NonFiniteError):  # a logit overflowing float32
        call(np.full_like(features, 1e20), np.full_like(weight, 1e20), None, labels, 1.0)
    # No rows: the mean over no rows is undefined.
    with pytest.raises(era.BadShapeError):
        call(features[:0], weight, bias, labels[:0], 1.0)
    with pytest.raises(era.BadShapeError):
        call(features[:0], weight, bias, labels[:0], 1.0, grads=False)
    for bad in (dict(weight=weight[:, :-1]), dict(weight=weight[0]), dict(weight=weight[None]),
                dict(bias=bias[:-1]), dict(bias=bias[None]), dict(labels=labels[:-1]), dict(labels=labels[:, None]),
                dict(features=features[:, :0], weight=weight[:, :0]),  # d = 0
                dict(weight=weight[:1], bias=bias[:1], labels=np.zeros(5, np.int64))):  # one class
        args = dict(features=features, weight=weight, bias=bias, labels=labels) | bad
        with pytest.raises(era.BadShapeError):
            call(args["features"], args["weight"], args["bias"], args["labels"], 1.0)
    with pytest.raises(era.InfeasibleTargetError):
        call(features, weight, bias, labels, 10.0)
    for params in (dict(mode="greedy"), dict(tau=2.0), dict(tau=math.nan)):
        with pytest.raises(era.BadParameterError):
            call(features, weight, bias, labels, 1.0, **params)
    with pytest.raises(era.BadParameterError):
        call(features, weight, bias, labels, math.nan)
