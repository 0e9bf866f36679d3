"""era.torch.llm_era: a GRPO batch through libera (CPU) and through the torch-native path,
against a plain numpy reference, with gradients w.r.t. the logits."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import era  # noqa: E402
import era.torch as et  # noqa: E402
import reference as ref  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def padded_batch(dtype=torch.float32, vocab=32):
    """Three responses of five tokens: a confident rewarded one (sharpened), a diffuse
    rewarded one (flattened), and a penalised one with padding (left alone)."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(3, 5, vocab, generator=g, dtype=torch.float64)
    z[0] *= 40.0
    z[1] *= 0.05
    z[2, 1, 4] = -math.inf
    labels = z.argmax(-1)
    labels[1] = torch.tensor([1, 2, 3, 4, 5])
    advantages = torch.tensor([1.0, 0.5, -1.0], dtype=torch.float32 if dtype != torch.float64 else torch.float64)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 3:] = False
    return z.to(dtype), labels, advantages, mask


def reference_outputs(z, labels, advantages, mask, **params):
    z = z.double().numpy()
    ids = np.where(mask.numpy(), np.arange(z.shape[0])[:, None], -1)
    h = ref.softmax_entropy(z)
    resp = ref.response_entropy(h.astype(np.float32), ids, z.shape[0], params.get("top_fraction", 0.2))
    adv = np.broadcast_to(advantages.numpy()[:, None], ids.shape)
    scale, new_adv = ref.scales(resp, ids, adv, **{k: v for k, v in params.items() if k != "top_fraction"})
    lp, ent = ref.logprob(z, labels.numpy(), scale.reshape(ids.shape))
    return dict(logprobs=lp, advantages=new_adv.reshape(ids.shape), logit_scale=scale.reshape(ids.shape),
                token_entropy=h, response_entropy=resp, entropy=ent)


@pytest.mark.parametrize("backend", ["libera", "native"])
def test_padded_batch_against_reference(backend):
    z, labels, adv, mask = padded_batch()
    out = et.llm_era(z, labels, adv, response_mask=mask, backend=backend)
    want = reference_outputs(z, labels, adv, mask)
    np.testing.assert_array_equal(out.logit_scale.numpy(), want["logit_scale"])
    np.testing.assert_array_equal(out.logit_scale[:, 0].numpy(), [2.0, 0.5, 1.0])  # the three cases
    np.testing.assert_allclose(out.advantages.numpy(), want["advantages"], rtol=1e-7)
    for name in ("logprobs", "token_entropy", "response_entropy", "entropy"):
        np.testing.assert_allclose(getattr(out, name).numpy(), want[name], rtol=2e-5, atol=2e-5, err_msg=name)
    assert out.logprobs.shape == (3, 5) and out.response_entropy.shape == (3,)


def test_libera_and_native_agree_with_gradients():
    z, labels, adv, mask = padded_batch()
    results, grads = [], []
    for backend in ("libera", "native"):
        x = z.clone().requires_grad_(True)
        out = et.llm_era(x, labels, adv, response_mask=mask, backend=backend)
        loss = -(out.advantages * out.logprobs * mask).sum() / mask.sum()
        loss.backward()
        results.append(out)
        grads.append(x.grad)
    for a, b in zip(*results):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-5, equal_nan=True)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    assert torch.all(grads[0][2, 1, 4] == 0)  # the masked logit


def test_native_float64_gradcheck():
    # libera's log-prob kernel is float32/bfloat16 only: the float64 check is of the native path.
    z, labels, adv, mask = padded_batch(torch.float64, vocab=6)
    z.requires_grad_(True)

    def logprobs(z):
        return et.llm_era(z, labels, adv, response_mask=mask, backend="native").logprobs

    assert torch.autograd.gradcheck(logprobs, (z,))


def test_libera_gradient_equals_float64_autograd_of_the_native_implementation():
    z, labels, adv, mask = padded_batch()
    x32 = z.clone().requires_grad_(True)
    out = et.llm_era(x32, labels, adv, response_mask=mask, backend="libera")
    weights = torch.randn(3, 5, generator=torch.Generator().manual_seed(9))
    (out.logprobs * weights).sum().backward()
    x64 = z.double().requires_grad_(True)
    lp64, _ = et.llm_logprob(x64, labels, out.logit_scale.double(), backend="native")
    (lp64 * weights.double()).sum().backward()
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-5, atol=1e-6)


def test_bfloat16_logits():
    z, labels, adv, mask = padded_batch(torch.bfloat16)
    x = z.clone().requires_grad_(True)
    out = et.llm_era(x, labels, adv, response_mask=mask)
    (-(out.advantages * out.logprobs).sum()).backward()
    assert x.grad.dtype == torch.bfloat16 and out.logprobs.dtype == torch.float32
    x32 = z.float().requires_grad_(True)  # the same values in float32
    out32 = et.llm_era(x32, labels, adv, response_mask=mask)
    (-(out32.advantages * out32.logprobs).sum()).backward()
    torch.testing.assert_close(out.logprobs, out32.logprobs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad.float(), x32.grad.bfloat16().float(), rtol=0, atol=0)
    native = et.llm_era(z, labels, adv, response_mask=mask, backend="native")
    torch.testing.assert_close(native.logprobs, out.logprobs, rtol=1e-5, atol=1e-5)


def test_packed_layout_equals_padded():
    z, labels, adv, mask = padded_batch()
    padded = et.llm_era(z, labels, adv, response_mask=mask)
    keep = mask.reshape(-1)
    ids = torch.arange(3).repeat_interleave(5)
    ids = torch.where(keep, ids, torch.full_like(ids, -1))
    packed = et.llm_era(z.reshape(15, -1), labels.reshape(-1), adv.repeat_interleave(5), response_ids=ids)
    torch.testing.assert_close(packed.logprobs, padded.logprobs.reshape(-1))
    torch.testing.assert_close(packed.response_entropy, padded.response_entropy)
    # num_responses beyond the last id: the extra responses are empty (NaN)
    more = et.llm_era(z.reshape(15, -1), labels.reshape(-1), adv.repeat_interleave(5), response_ids=ids,
                      num_responses=5)
    assert torch.isnan(more.response_entropy[3:]).all()
    module = et.LLMERA(k=3.0)
    torch.testing.assert_close(module(z, labels, adv, response_mask=mask).logprobs,
                               et.llm_era(z, labels, adv, response_mask=mask, k=3.0).logprobs)
    assert "k=3.0" in repr(module)


@pytest.mark.parametrize("backend", ["libera", "native"])
def test_llm_errors(backend):
    z, labels, adv, mask = padded_batch()
    bad = labels.clone()
    bad[2, 4] = -100  # an ignore index: not a token
    with pytest.raises(era.BadIndexError):
        et.llm_era(z, bad, adv, response_mask=mask, backend=backend)
    bad = labels.clone()
    bad[2, 1] = 4  # a label on the masked logit
    with pytest.raises(era.BadIndexError):
        et.llm_era(z, bad, adv, response_mask=mask, backend=backend)
    nan = z.clone()
    nan[0, 0, 0] = math.nan
    with pytest.raises(era.NonFiniteError):
        et.llm_era(nan, labels, adv, response_mask=mask, backend=backend)
    with pytest.raises(era.BadParameterError):
        et.llm_era(z, labels, adv, response_mask=mask, top_fraction=0.0, backend=backend)
    with pytest.raises(era.DTypeError):
        et.llm_era(z, labels.float(), adv, response_mask=mask, backend=backend)
    with pytest.raises(era.BadShapeError):
        et.llm_era(z, labels, adv[:2], response_mask=mask, backend=backend)
    with pytest.raises(era.BadShapeError):
        et.llm_era(z[0, 0], labels[0, 0], adv[:1], backend=backend)


@cuda
def test_cuda_llm_matches_libera():
    z, labels, adv, mask = padded_batch()
    cpu = et.llm_era(z, labels, adv, response_mask=mask)
    gpu = et.llm_era(z.cuda(), labels.cuda(), adv.cuda(), response_mask=mask.cuda())
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("backend", ["libera", "native"])
def test_llm_logprob_without_scale(backend):
    z = torch.randn(4, 6, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    labels = torch.tensor([0, 5, 2, 3])
    logprob, entropy = et.llm_logprob(z, labels, backend=backend)
    want_lp, want_h = ref.logprob(z.detach().numpy(), labels.numpy())
    np.testing.assert_allclose(logprob.detach().numpy(), want_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(entropy.numpy(), want_h, rtol=1e-5, atol=1e-6)
    assert not entropy.requires_grad
    logprob.sum().backward()
    want = ref.logprob_grad(z.detach().numpy(), labels.numpy(), None, np.ones(4))
    np.testing.assert_allclose(z.grad.numpy(), want, rtol=1e-5, atol=1e-6)
