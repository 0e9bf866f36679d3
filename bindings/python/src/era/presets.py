"""The settings of the published ERA runs (the official code, nothingbutbut/era), by name, so
that reproducing one is one line (docs/presets.md has the table "official flag -> era
setting" and where each value comes from):

    era.torch.ERADiscrete(**era.presets.RESNET_ERA.kwargs())
    era.torch.ERAContinuous(action_dim, **era.presets.SAC_ERA.kwargs(action_dim))
    out = era.torch.verl_era(logits, responses, response_mask, advantages, old_log_probs,
                             **era.presets.ERA_LLM_TOPK.kwargs())
    loss = out.policy_loss(**era.presets.ERA_LLM_TOPK.loss_kwargs()).loss

libera's own defaults stay as they are (the paper's rule: the float advantage test,
scale_advantages on, full-vocabulary log-probs, discrete mode "exact"); a preset changes only
what the published run set. The presets are plain frozen dataclasses: print one to see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Union

from ._errors import BadParameterError, python_error

__all__ = [
    "DiscretePreset",
    "ContinuousPreset",
    "LLMPreset",
    "RESNET_ERA",
    "SAC_ERA",
    "SAC_ERA_TRAIN",
    "ERA_LLM_TOPK",
    "ERA_LLM_TOPK_SCALE",
    "PRESETS",
    "get",
]


@dataclass(frozen=True)
class DiscretePreset:
    """Discrete ERA (classification) as a published run set it."""

    name: str
    source: str
    target_entropy: float
    tau: float
    mode: str

    def kwargs(self) -> Dict[str, object]:
        """Keyword arguments of era.torch.ERADiscrete / discrete_era, era.jax.discrete_era and
        era.discrete_forward."""
        return dict(target_entropy=self.target_entropy, tau=self.tau, mode=self.mode)


@dataclass(frozen=True)
class ContinuousPreset:
    """Continuous ERA (control) as a published run set it. The official policy samples a normal
    located at tanh(mean) (clipped to +-(1 - loc_clip)), with scale exp(log_std), truncated to
    [-1, 1], and clips each dimension's log-prob to +-log_prob_clip before summing."""

    name: str
    source: str
    entropy_per_dim: float
    log_std_min: float
    log_std_max: float
    residual: float
    loc_clip: float
    log_prob_clip: float

    def target_entropy(self, action_dim: int) -> float:
        """H0 for `action_dim` action dimensions: entropy_per_dim * action_dim nats."""
        if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
            raise python_error(BadParameterError, f"era.presets.{self.name}",
                               f"action_dim must be an int >= 1, got {action_dim!r}")
        return self.entropy_per_dim * action_dim

    def kwargs(self, action_dim: int) -> Dict[str, float]:
        """Keyword arguments of era.torch.ERAContinuous (after action_dim) / continuous_era and
        era.jax.continuous_era (after the std logits)."""
        return dict(target_entropy=self.target_entropy(action_dim), residual=self.residual,
                    log_std_min=self.log_std_min, log_std_max=self.log_std_max)


@dataclass(frozen=True)
class LLMPreset:
    """LLM ERA (GRPO on verl) as a published run set it, with the policy-loss settings of the
    same script."""

    name: str
    source: str
    omega_low: float
    omega_high: float
    k: float
    top_fraction: float
    scale_advantages: bool
    top_k: Union[int, None]
    clip_ratio_low: float
    clip_ratio_high: float
    clip_ratio_c: float
    loss_agg_mode: str
    temperature: float

    def kwargs(self) -> Dict[str, object]:
        """Keyword arguments of era.torch.llm_era / LLMERA / verl_era and era.jax.llm_era."""
        return dict(omega_low=self.omega_low, omega_high=self.omega_high, k=self.k,
                    top_fraction=self.top_fraction, scale_advantages=self.scale_advantages, top_k=self.top_k)

    def loss_kwargs(self) -> Dict[str, object]:
        """Keyword arguments of era.torch.VerlERAOutput.policy_loss."""
        return dict(clip_ratio_low=self.clip_ratio_low, clip_ratio_high=self.clip_ratio_high,
                    clip_ratio_c=self.clip_ratio_c, loss_agg_mode=self.loss_agg_mode)


# resnet-era: timm's ResNet with ERA(H_tau_min=exp(H_min - 1)), H_min = 0.6 (train.py --H_min),
# tau = 4 and the closed-form approximate inverse (era's mode "reference").
RESNET_ERA = DiscretePreset(
    name="resnet-era", source="resnet-era: timm/models/resnet.py (class ERA), train.py --H_min",
    target_entropy=0.6, tau=4.0, mode="reference")

# sac-era: NormalTanhPolicy with LOG_STD_MIN = -8, LOG_STD_MAX = 0 and no residual; the
# learner's default entropy_per_dim is -0.5, the training script's flag 0.25.
SAC_ERA = ContinuousPreset(
    name="sac-era", source="sac-era: jaxrl/agents/sac/sac_learner.py (entropy_per_dim=-0.5), "
    "jaxrl/networks/policies.py", entropy_per_dim=-0.5, log_std_min=-8.0, log_std_max=0.0, residual=0.0,
    loc_clip=1e-6, log_prob_clip=20.0)
SAC_ERA_TRAIN = ContinuousPreset(
    name="sac-era-train", source="sac-era: train_parallel.py --entropy_per_dim (0.25)",
    entropy_per_dim=0.25, log_std_min=-8.0, log_std_max=0.0, residual=0.0, loc_clip=1e-6, log_prob_clip=20.0)

# ERA-LLM: qwen_7b_era_topk.sh (the README's run) and qwen_7b_era_topk_scale.sh.
_LLM_COMMON = dict(omega_low=0.45, omega_high=3.0, k=2.0, top_fraction=0.2, top_k=20, clip_ratio_low=1.0,
                   clip_ratio_high=1.0, clip_ratio_c=10.0, loss_agg_mode="token-mean", temperature=1.0)
ERA_LLM_TOPK = LLMPreset(name="era-llm-topk", source="ERA-LLM: qwen_7b_era_topk.sh (README)",
                         scale_advantages=False, **_LLM_COMMON)
ERA_LLM_TOPK_SCALE = LLMPreset(name="era-llm-topk-scale", source="ERA-LLM: qwen_7b_era_topk_scale.sh",
                               scale_advantages=True, **_LLM_COMMON)

PRESETS = {p.name: p for p in (RESNET_ERA, SAC_ERA, SAC_ERA_TRAIN, ERA_LLM_TOPK, ERA_LLM_TOPK_SCALE)}


def get(name: str) -> Union[DiscretePreset, ContinuousPreset, LLMPreset]:
    """The preset called `name` (one of PRESETS' keys)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise python_error(BadParameterError, "era.presets.get",
                           f"no preset {name!r}; the presets are {', '.join(PRESETS)}") from None

