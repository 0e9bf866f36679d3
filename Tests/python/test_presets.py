"""era.presets: each published configuration, applied in one line, computes what the official
code computes with those settings (its formulas written plainly here)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import era
from era import presets


def test_names_and_errors():
    assert set(presets.PRESETS) == {"resnet-era", "sac-era", "sac-era-train", "era-llm-topk", "era-llm-topk-scale"}
    for name, preset in presets.PRESETS.items():
        assert presets.get(name) is preset and preset.name == name and preset.source
    with pytest.raises(era.BadParameterError, match="no preset 'sac'"):
        presets.get("sac")
    with pytest.raises(era.BadParameterError, match="action_dim"):
        presets.SAC_ERA.kwargs(0)
    assert presets.ERA_LLM_TOPK.scale_advantages is False and presets.ERA_LLM_TOPK_SCALE.scale_advantages is True
    assert era.llm.SCALE_ADVANTAGES is True  # libera's default is the paper's, not a preset's


def official_resnet_era(z, h_min=0.6, tau=4.0):
    """resnet-era's ERA (closed-form inverse) on rows of logits, float64, as log-probs."""
    z = np.asarray(z, np.float64)
    d = z.shape[-1]
    c = math.exp(h_min - 1)
    up = math.log(tau) / tau
    a, b = (d * up - c) / (d - 1), (c - up) / (d - 1)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    y = np.maximum(a * p + b, 0)
    with np.errstate(divide="ignore"):
        u = -1 - np.log(y)
    t = -1 - np.sqrt(2 * u) - 0.75 * u
    return t - np.log(np.exp(t - t.max(-1, keepdims=True)).sum(-1, keepdims=True)) - t.max(-1, keepdims=True)


def official_sac_era(s, entropy_per_dim, log_std_min=-8.0, log_std_max=0.0):
    """sac-era's NormalTanhPolicy log stds, float64."""
    s = np.asarray(s, np.float64)
    d = s.shape[-1]
    k = -d * (log_std_max - entropy_per_dim + math.log(math.sqrt(2 * math.pi * math.e)))
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    return np.clip(k * w + log_std_max, log_std_min, log_std_max)


def log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def test_resnet_era_numpy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 10)) * 3
    out = era.discrete_forward(z, **presets.RESNET_ERA.kwargs())
    np.testing.assert_allclose(log_softmax(out), official_resnet_era(z), rtol=0, atol=1e-12)


@pytest.mark.parametrize("preset", [presets.SAC_ERA, presets.SAC_ERA_TRAIN])
def test_sac_era_numpy(preset):
    rng = np.random.default_rng(1)
    s = rng.normal(size=(32, 6)) * 2
    kw = preset.kwargs(6)
    out = era.continuous_forward(s, kw["target_entropy"], residual=kw["residual"], log_std_min=kw["log_std_min"],
                                 log_std_max=kw["log_std_max"])
    np.testing.assert_allclose(out, official_sac_era(s, preset.entropy_per_dim), rtol=0, atol=1e-12)


def test_torch_modules_in_one_line():
    torch = pytest.importorskip("torch")
    import era.torch as et

    rng = np.random.default_rng(2)
    z = rng.normal(size=(16, 10))
    got = et.ERADiscrete(**presets.RESNET_ERA.kwargs())(torch.tensor(z))
    np.testing.assert_allclose(log_softmax(got.numpy()), official_resnet_era(z), atol=1e-12)
    s = rng.normal(size=(16, 17))
    module = et.ERAContinuous(17, **presets.SAC_ERA.kwargs(17))
    _, log_std = module(torch.zeros(16, 17, dtype=torch.float64), torch.tensor(s))
    np.testing.assert_allclose(log_std.numpy(), official_sac_era(s, -0.5), atol=1e-12)


def test_jax_in_one_line():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import era.jax as ej

    rng = np.random.default_rng(3)
    s = rng.normal(size=(8, 6))
    got = ej.continuous_era(jax.numpy.asarray(s), **presets.SAC_ERA_TRAIN.kwargs(6))
    np.testing.assert_allclose(np.asarray(got), official_sac_era(s, 0.25), atol=1e-12)
    z = rng.normal(size=(8, 10))
    got = ej.discrete_era(jax.numpy.asarray(z), **presets.RESNET_ERA.kwargs())
    np.testing.assert_allclose(log_softmax(np.asarray(got)), official_resnet_era(z), atol=1e-12)


@pytest.mark.parametrize("preset", [presets.ERA_LLM_TOPK, presets.ERA_LLM_TOPK_SCALE])
def test_era_llm_in_one_line(preset):
    """verl_era with an ERA-LLM preset and its policy loss match the official rule with the
    script's settings (top-20 log-probs, adv_scale, clip ratios 1.0 / 1.0 / 10.0, token-mean)."""
    torch = pytest.importorskip("torch")
    import era.torch as et
    from test_torch_verl import reference, reference_loss, verl_batch

    b = verl_batch(seed=4, length=14)
    b["logits"] = b["logits"] * 0.5  # several tokens' labels inside and outside the top 20 of 48
    lp, adv, _, _, mask = reference(b, scale_adv=preset.scale_advantages, top_k=preset.top_k)
    assert (lp[mask] == -1e4).any() and (lp[mask] > -1e4).any()
    b["old_log_probs"] = (lp + 0.3).float().clamp(min=-30)
    out = et.verl_era(b["logits"][:, -15:-1], b["responses"], b["response_mask"], b["advantages"],
                      b["old_log_probs"], **preset.kwargs())
    torch.testing.assert_close(out.log_probs[mask].double(), lp[mask], rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(out.advantages[mask].double(), adv[mask], rtol=1e-6, atol=0)
    loss = out.policy_loss(**preset.loss_kwargs()).loss
    want = reference_loss(lp, b["old_log_probs"].double(), adv, mask, 1.0, 1.0, 10.0, "token-mean")
    torch.testing.assert_close(loss.double(), want, rtol=2e-5, atol=1e-6)
