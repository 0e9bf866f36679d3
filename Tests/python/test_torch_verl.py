"""era.torch.verl_era on synthetic micro-batches in verl's two layouts, against a plain
reference of the rule (docs/math.md 3) and of verl's clipped policy loss written here."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import era  # noqa: E402
import era.torch as et  # noqa: E402

VOCAB = 48


def verl_batch(seed=0, batch=5, prompt=9, length=14):
    """input_ids [B, S] = left-padded prompts then right-padded responses, attention_mask,
    response_mask [B, Lr], advantages [B, Lr] (one value per response, as GRPO's), old
    log-probs, and the model's logits for every position [B, S, V] (sharpness varies by row so
    that ERA sharpens some responses and flattens others)."""
    g = torch.Generator().manual_seed(seed)
    seqlen = prompt + length
    input_ids = torch.randint(0, VOCAB, (batch, seqlen), generator=g)
    attention_mask = torch.zeros(batch, seqlen, dtype=torch.int64)
    response_mask = torch.zeros(batch, length, dtype=torch.int64)
    for b in range(batch):
        p = int(torch.randint(1, prompt + 1, (), generator=g))
        r = [1, length, 5, 0, 9][b % 5]  # response lengths, one empty
        attention_mask[b, prompt - p:prompt + r] = 1
        response_mask[b, :r] = 1
    sharp = torch.tensor([30.0, 0.05, 2.0, 1.0, 0.02])[:batch]
    logits = torch.randn(batch, seqlen, VOCAB, generator=g) * sharp.view(-1, 1, 1)
    advantages = torch.tensor([1.0, 0.7, -0.5, 0.3, 2.0])[:batch].unsqueeze(1).expand(batch, length).contiguous()
    old = -torch.rand(batch, length, generator=g) * 3
    return dict(input_ids=input_ids, attention_mask=attention_mask, response_mask=response_mask,
                responses=input_ids[:, prompt:], advantages=advantages, old_log_probs=old, logits=logits,
                length=length)


def reference(b, k=2.0, low=0.45, high=3.0, scale_adv=True, top_k=None):
    """The rule of docs/math.md 3 in float64, plainly: token entropies, the mean of each
    response's top max(1, floor(0.2 L)) entropies, the scales (float advantages test), and the
    log-softmax of the scaled logits at the sampled token; with top_k, verl's
    logprobs_from_logits_topk rule: log-softmax over the k largest scaled logits, -1e4 for a
    label outside them."""
    length = b["length"]
    z = b["logits"][:, -length - 1:-1].double()
    mask = b["response_mask"].bool()
    logp = torch.log_softmax(z, -1)
    h = -(logp.exp() * logp).sum(-1)
    resp_h = []
    for row in range(z.shape[0]):
        values = h[row][mask[row]]
        if values.numel() == 0:
            resp_h.append(math.nan)
            continue
        n = max(1, math.floor(0.2 * values.numel()))
        resp_h.append(values.sort(descending=True).values[:n].mean().item())
    resp_h = torch.tensor(resp_h, dtype=torch.float64)
    adv = b["advantages"].double()
    rh = resp_h.unsqueeze(1).expand_as(adv)
    s = torch.ones_like(adv)
    s = torch.where((rh < low) & (adv > 0), torch.full_like(s, k), s)
    s = torch.where((rh > high) & (adv > 0), torch.full_like(s, 1 / k), s)
    u = s.unsqueeze(-1) * z
    if top_k is None:
        lp = torch.log_softmax(u, -1).gather(-1, b["responses"].unsqueeze(-1)).squeeze(-1)
    else:
        values, index = torch.topk(u, top_k, dim=-1)
        inside = index == b["responses"].unsqueeze(-1)
        picked = (torch.log_softmax(values, -1) * inside).sum(-1)
        lp = torch.where(inside.any(-1), picked, torch.full_like(picked, -1e4))
    new_adv = adv / s if scale_adv else adv
    return lp, new_adv, s, resp_h, mask


def reference_loss(lp, old, adv, mask, low=0.2, high=0.2, c=3.0, mode="token-mean"):
    ratio = torch.exp(torch.clamp(lp - old, -20, 20))
    l1, l2 = -adv * ratio, -adv * torch.clamp(ratio, 1 - low, 1 + high)
    clipped = torch.maximum(l1, l2)
    losses = torch.where(adv < 0, torch.minimum(-adv * c, clipped), clipped)
    m = mask.double()
    if mode == "token-mean":
        return (losses * m).sum() / m.sum()
    per = (losses * m).sum(-1)
    if mode == "seq-mean-token-mean":
        per = per / m.sum(-1).clamp(min=1)
    present = m.sum(-1) > 0
    return per[present].mean()


def run(b, layout, **kw):
    length = b["length"]
    if layout == "padded":
        logits = b["logits"][:, -length - 1:-1]  # a strided view, as verl slices it
        return et.verl_era(logits, b["responses"], b["response_mask"], b["advantages"], b["old_log_probs"], **kw)
    logits = b["logits"][b["attention_mask"].bool()]
    return et.verl_era(logits, b["responses"], b["response_mask"], b["advantages"], b["old_log_probs"],
                       input_ids=b["input_ids"], attention_mask=b["attention_mask"], **kw)


@pytest.mark.parametrize("layout", ["padded", "remove-padding"])
@pytest.mark.parametrize("scale_adv,top_k", [(True, None), (False, None), (True, 5)])
def test_matches_reference(layout, scale_adv, top_k):
    b = verl_batch()
    out = run(b, layout, scale_advantages=scale_adv, top_k=top_k)
    lp, adv, s, resp_h, mask = reference(b, scale_adv=scale_adv, top_k=top_k)
    if top_k is not None:  # labels outside the top k occur, and get -1e4
        assert (lp[mask] == -1e4).any() and (lp[mask] > -1e4).any()
    assert torch.equal(out.local_mask, mask)
    torch.testing.assert_close(out.response_entropy.double(), resp_h, rtol=2e-6, atol=1e-6, equal_nan=True)
    assert torch.equal(out.logit_scale[mask].double(), s[mask])
    assert {2.0, 0.5} <= set(out.logit_scale[mask].tolist())  # both branches of the rule occur
    torch.testing.assert_close(out.log_probs[mask].double(), lp[mask], rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(out.advantages[mask].double(), adv[mask], rtol=1e-6, atol=0)
    assert (out.log_probs[~mask] == 0).all()


def test_layouts_agree_and_gradients_flow():
    b = verl_batch(seed=1)
    length = b["length"]
    full = b["logits"].clone().requires_grad_(True)
    padded = et.verl_era(full[:, -length - 1:-1], b["responses"], b["response_mask"], b["advantages"],
                         b["old_log_probs"])
    g_padded = torch.autograd.grad(padded.policy_loss().loss, full)[0]
    full2 = b["logits"].clone().requires_grad_(True)
    real = b["attention_mask"].bool()
    packed = et.verl_era(full2[real], b["responses"], b["response_mask"], b["advantages"], b["old_log_probs"],
                         input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    g_packed = torch.autograd.grad(packed.policy_loss().loss, full2)[0]
    for name in ("log_probs", "advantages", "logit_scale", "entropy", "token_entropy"):
        a, c = getattr(padded, name), getattr(packed, name)
        torch.testing.assert_close(a[padded.local_mask], c[packed.local_mask], rtol=1e-6, atol=1e-6, msg=name)
    torch.testing.assert_close(padded.response_entropy, packed.response_entropy, equal_nan=True)
    torch.testing.assert_close(g_padded, g_packed, rtol=1e-6, atol=1e-7)
    assert g_padded.abs().sum() > 0


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_policy_loss_matches_reference(mode):
    b = verl_batch(seed=2)
    # Old log-probs near the new ones, with some ratios outside the clip range on both sides.
    lp, adv, _, _, mask = reference(b)
    g = torch.Generator().manual_seed(5)
    b["old_log_probs"] = (lp + 0.4 * torch.randn(lp.shape, generator=g, dtype=torch.float64)).float()
    b["advantages"] = b["advantages"] * torch.where(torch.rand(b["advantages"].shape, generator=g) < 0.5, -1.0, 1.0)
    lp, adv, _, _, mask = reference(b)
    out = run(b, "remove-padding")
    got = out.policy_loss(0.2, 0.28, 3.0, mode)
    want = reference_loss(lp, b["old_log_probs"].double(), adv, mask, 0.2, 0.28, 3.0, mode)
    torch.testing.assert_close(got.loss.double(), want, rtol=2e-5, atol=1e-6)
    assert 0 < got.clipfrac < 1 and got.clipfrac_lower >= 0


def test_bad_input():
    b = verl_batch()
    length = b["length"]
    with pytest.raises(era.BadShapeError, match="attention_mask"):
        et.verl_era(b["logits"][b["attention_mask"].bool()], b["responses"], b["response_mask"], b["advantages"],
                    input_ids=b["input_ids"], attention_mask=b["attention_mask"][:, 1:])
    with pytest.raises(era.BadShapeError, match="real tokens"):
        et.verl_era(b["logits"][b["attention_mask"].bool()][1:], b["responses"], b["response_mask"],
                    b["advantages"], input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    with pytest.raises(era.BadShapeError, match="advantages"):
        et.verl_era(b["logits"][:, -length - 1:-1], b["responses"], b["response_mask"], b["advantages"][:, :3])
    with pytest.raises(era.DTypeError):
        et.verl_era(b["logits"][:, -length - 1:-1], b["responses"].float(), b["response_mask"], b["advantages"])
    out = run(b, "padded")
    with pytest.raises(era.BadParameterError, match="loss_agg_mode"):
        out.policy_loss(loss_agg_mode="seq-sum")
    no_old = et.verl_era(b["logits"][:, -length - 1:-1], b["responses"], b["response_mask"], b["advantages"])
    with pytest.raises(era.BadParameterError, match="old_log_probs"):
        no_old.policy_loss()
