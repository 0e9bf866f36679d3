"""LLM ERA through era (numpy level) against plain references (docs/math.md section 3)."""

import math

import ml_dtypes
import numpy as np
import pytest

import era
import reference as ref

BF16 = np.dtype(ml_dtypes.bfloat16)


def masked_logits(rng, tokens=6, vocab=9, scale=3.0):
    z = (rng.normal(size=(tokens, vocab)) * scale).astype(np.float32)
    z[1, 3] = -np.inf
    z[4, :5] = -np.inf
    return z


def test_library_defaults_match_python_defaults():
    d = era._era.llm_defaults()
    assert (d["omega_low"], d["omega_high"], d["k"], d["top_fraction"]) == (
        era.llm.OMEGA_LOW, era.llm.OMEGA_HIGH, era.llm.K, era.llm.TOP_FRACTION,
    )
    assert d["scale_advantages"] is True


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-13)])
def test_token_entropy_with_masks(rng, dtype, rtol):
    z = masked_logits(rng).astype(dtype).reshape(2, 3, 9)
    out = era.token_entropy(z)
    assert out.shape == (2, 3) and out.dtype == dtype
    np.testing.assert_allclose(out, ref.softmax_entropy(z), rtol=rtol, atol=rtol)


def test_token_entropy_bfloat16_inputs(rng):
    z = masked_logits(rng).astype(BF16)
    want = ref.softmax_entropy(z.astype(np.float64))
    for given in (z, z.view(np.uint16)):
        out = era.token_entropy(given)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


def test_token_entropy_torch_bfloat16_tensor(rng):
    torch = pytest.importorskip("torch")
    z = masked_logits(rng)
    t = torch.from_numpy(z).to(torch.bfloat16)
    want = ref.softmax_entropy(t.float().numpy())
    np.testing.assert_allclose(era.token_entropy(t), want, rtol=1e-6, atol=1e-6)


def test_response_entropy_interleaved_and_empty():
    h = np.array([0.5, 2.0, 1.0, 3.0, 0.1, 0.7, 0.7, 4.0, 9.0, 1.5], np.float32)
    ids = np.array([0, 1, 0, 1, 0, 0, 0, 1, -1, 3], np.int64)
    out = era.llm_response_entropy(h, ids, 4, top_fraction=0.5)
    want = ref.response_entropy(h, ids, 4, top_fraction=0.5)
    assert out.dtype == np.float32 and out.shape == (4,)
    np.testing.assert_allclose(out, want, rtol=1e-6)
    assert math.isnan(out[2])  # response 2 has no token
    # top_fraction 0.2 of 5 tokens: the single largest
    assert era.llm_response_entropy(h, ids, 4)[0] == pytest.approx(1.0)


def test_response_entropy_random_against_reference(rng):
    h = rng.uniform(0, 5, size=(4, 50)).astype(np.float32)
    ids = rng.integers(-1, 7, size=(4, 50))
    for fraction in (0.05, 0.2, 0.5, 1.0):
        np.testing.assert_allclose(
            era.llm_response_entropy(h, ids, 7, top_fraction=fraction),
            ref.response_entropy(h, ids, 7, top_fraction=fraction), rtol=1e-6,
        )


def test_scales_rule_and_thresholds():
    low, high = np.float32(0.45), np.float32(3.0)
    resp = np.array([0.1, 5.0, 1.0, low, high], np.float32)
    ids = np.array([0, 0, 1, 1, 2, 3, 4, -1], np.int64)
    adv = np.array([2.0, -1.0, 3.0, 0.0, 1.0, 1.0, 1.0, 5.0], np.float32)
    out = era.llm_scales(resp, ids, adv)
    s, new_adv = ref.scales(resp, ids, adv)
    np.testing.assert_array_equal(out.logit_scale, s.astype(np.float32))
    np.testing.assert_array_equal(out.advantages, new_adv.astype(np.float32))
    # sharpened (k) for a confident rewarded response, flattened (1/k) for a diffuse one,
    # untouched at the exact thresholds, for A <= 0, and for tokens of no response
    np.testing.assert_array_equal(out.logit_scale, [2.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(out.advantages, [1.0, -1.0, 6.0, 0.0, 1.0, 1.0, 1.0, 5.0])
    plain = era.llm_scales(resp, ids, adv, scale_advantages=False)
    np.testing.assert_array_equal(plain.advantages, adv)
    other = era.llm_scales(resp, ids, adv, k=4.0, omega_low=0.05, omega_high=4.0)
    np.testing.assert_array_equal(other.logit_scale, [1.0, 1.0, 0.25, 1.0, 1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("with_scale", [False, True])
def test_logprob_forward_and_backward(rng, with_scale):
    z = masked_logits(rng).reshape(2, 3, 9)
    labels = np.argmax(z, axis=-1).astype(np.int64)
    labels[0, 0] = 2
    scale = np.array([[2.0, 1.0, 0.5], [1.0, 2.0, 1.0]], np.float32) if with_scale else None
    result = era.llm_logprob_forward(z, labels, scale)
    lp, h = ref.logprob(z, labels, scale)
    assert result.logprob.shape == (2, 3) and result.logprob.dtype == np.float32
    np.testing.assert_allclose(result.logprob, lp, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.entropy, h, rtol=1e-6, atol=1e-6)
    assert era.llm_logprob_forward(z, labels, scale, with_entropy=False).entropy is None
    g = rng.normal(size=(2, 3)).astype(np.float32)
    grad = era.llm_logprob_backward(z, labels, scale, g)
    want = ref.logprob_grad(z, labels, scale, g)
    assert grad.shape == z.shape and grad.dtype == np.float32
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)
    assert np.all(grad[np.isinf(z)] == 0)  # masked logits get 0


def test_logprob_gradient_by_finite_differences(rng):
    # The float32 kernel against central differences of the float64 reference.
    z = rng.normal(size=(3, 5))
    labels = np.array([0, 4, 2], np.int64)
    scale = np.array([2.0, 1.0, 0.5], np.float32)
    weights, numeric = ref.central_difference(lambda x: ref.logprob(x, labels, scale)[0], z)
    grad = era.llm_logprob_backward(z.astype(np.float32), labels, scale, weights.astype(np.float32))
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-5)


def test_logprob_bfloat16(rng):
    z = masked_logits(rng).astype(BF16)
    labels = np.array([0, 1, 2, 3, 6, 8], np.int64)
    scale = np.full(6, 2.0, np.float32)
    exact = z.astype(np.float32)
    result = era.llm_logprob_forward(z, labels, scale)
    np.testing.assert_allclose(result.logprob, ref.logprob(exact, labels, scale)[0], rtol=1e-6, atol=1e-6)
    g = rng.normal(size=6).astype(np.float32)
    grad = era.llm_logprob_backward(z, labels, scale, g)
    assert grad.dtype == BF16  # bf16 in, bf16 out
    want = ref.logprob_grad(exact, labels, scale, g)
    np.testing.assert_array_equal(grad, want.astype(np.float32).astype(BF16))  # rounded once, to nearest
    bits = era.llm_logprob_backward(z.view(np.uint16), labels, scale, g)
    assert bits.dtype == np.uint16
    np.testing.assert_array_equal(bits, grad.view(np.uint16))


def test_llm_errors(rng):
    z = masked_logits(rng)
    good = np.zeros(6, np.int64)
    with pytest.raises(era.BadIndexError, match="index out of range"):
        era.llm_logprob_forward(z, np.array([0, 0, 0, 0, 0, 9], np.int64))
    with pytest.raises(era.BadIndexError):
        era.llm_logprob_forward(z, np.array([0, 3, 0, 0, 5, 0], np.int64))  # label on a masked logit
    bad = z.copy()
    bad[2, 2] = np.nan
    with pytest.raises(era.NonFiniteError):
        era.token_entropy(bad)
    bad[2, 2] = np.inf
    with pytest.raises(era.NonFiniteError):
        era.llm_logprob_forward(bad, good)
    bad = z.copy()
    bad[0, :] = -np.inf
    with pytest.raises(era.NonFiniteError, match="non-finite"):
        era.token_entropy(bad)
    with pytest.raises(era.BadParameterError):
        era.llm_logprob_forward(z, good, np.array([1, 1, 0, 1, 1, 1], np.float32))
    with pytest.raises(era.NonFiniteError):
        era.llm_logprob_forward(z, good, np.array([1, 1, np.nan, 1, 1, 1], np.float32))
    with pytest.raises(era.BadIndexError):
        era.llm_response_entropy(np.ones(3, np.float32), np.array([0, 2, -2], np.int64), 2)
    with pytest.raises(era.BadIndexError):
        era.llm_scales(np.ones(2, np.float32), np.array([0, 2], np.int64), np.ones(2, np.float32))
    with pytest.raises(era.NonFiniteError):
        era.llm_scales(np.array([1, np.nan], np.float32), np.array([0, 1], np.int64), np.ones(2, np.float32))
    for params in (dict(k=0.0), dict(top_fraction=0.0), dict(top_fraction=1.5), dict(omega_low=4.0, omega_high=3.0),
                   dict(omega_low=math.nan)):
        with pytest.raises(era.BadParameterError):
            era.llm_response_entropy(np.ones(3, np.float32), np.zeros(3, np.int64), 1, **params)
    with pytest.raises(era.BadShapeError):
        era.llm_response_entropy(np.ones(3, np.float32), np.zeros(3, np.int64), -1)
    with pytest.raises(era.DTypeError):
        era.llm_logprob_forward(z.astype(np.float64), good)  # no float64 log-prob kernel
    with pytest.raises(era.DTypeError):
        era.llm_logprob_forward(z, good.astype(np.int32))  # no silent index cast either


def test_entropies_outside_responses_are_not_read():
    # Documented in era.h: entropies of tokens of id -1, and of responses no token belongs
    # to, are never read, so NaN there is fine.
    h = np.array([1.0, np.nan, 2.0], np.float32)
    ids = np.array([0, -1, 0], np.int64)
    np.testing.assert_allclose(era.llm_response_entropy(h, ids, 1, top_fraction=1.0), [1.5])
    resp = np.array([0.1, np.nan], np.float32)
    out = era.llm_scales(resp, np.array([0, 0, -1], np.int64), np.ones(3, np.float32))
    np.testing.assert_array_equal(out.logit_scale, [2.0, 2.0, 1.0])


@pytest.mark.parametrize("k", [1e300, 1e-300])
def test_extreme_k_is_refused(k):
    # k and 1/k must be normal float32 numbers: the scales written are float32.
    resp = np.array([0.1], np.float32)
    with pytest.raises(era.BadParameterError):
        era.llm_scales(resp, np.zeros(2, np.int64), np.ones(2, np.float32), k=k)


def test_out_arrays_are_written_in_place_and_checked():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(3, 7)).astype(np.float32)
    labels = np.array([0, 6, 3])
    out = np.full(3, np.nan, np.float32)
    assert era.token_entropy(z, out=out) is out
    np.testing.assert_array_equal(out, era.token_entropy(z))
    logprob, entropy = np.empty(3, np.float32), np.empty(3, np.float32)
    result = era.llm_logprob_forward(z, labels, out_logprob=logprob, out_entropy=entropy)
    assert result.logprob is logprob and result.entropy is entropy
    np.testing.assert_array_equal(logprob, era.llm_logprob_forward(z, labels).logprob)
    grad = np.empty_like(z)
    assert era.llm_logprob_backward(z, labels, None, np.ones(3, np.float32), out=grad) is grad
    np.testing.assert_array_equal(grad, era.llm_logprob_backward(z, labels, None, np.ones(3, np.float32)))
    bf16 = z.astype(ml_dtypes.bfloat16)
    grad16 = np.empty_like(bf16)
    assert era.llm_logprob_backward(bf16, labels, None, np.ones(3, np.float32), out=grad16) is grad16
    with pytest.raises(era.DTypeError):
        era.token_entropy(z, out=np.empty(3, np.float64))
    with pytest.raises(era.BadShapeError):
        era.token_entropy(z, out=np.empty(4, np.float32))
    with pytest.raises(era.BadShapeError):
        era.llm_logprob_backward(z, labels, None, np.ones(3, np.float32), out=np.empty((7, 3), np.float32).T)
    kept = np.full(3, 5.0, np.float32)
    bad = z.copy()
    bad[1, 1] = np.nan
    with pytest.raises(era.NonFiniteError):
        era.token_entropy(bad, out=kept)
    np.testing.assert_array_equal(kept, 5.0)  # nothing written on error
