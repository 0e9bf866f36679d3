"""era.torch: ERA as PyTorch custom operators (``torch.ops.era.*``), functions and nn.Modules.

CPU tensors go through libera without copies (contiguous tensors, and strided views of
logits, are handed over as numpy views; the library releases the GIL); tensors on other
devices (CUDA) take the device path, era.torch.native, built on the shared formulas of
era._formulas and held to libera by the tests. Pick explicitly with ``backend="libera"`` or
``backend="native"``. Everything works under torch.compile(fullgraph=True), torch.export,
torch.func and torch.autocast, in float16, bfloat16, float32 and float64, with exact second
derivatives. The device path never synchronises with the host: see set_device_checks and
check_device_errors for how it reports bad input.

- continuous_era / ERAContinuous: bounded Gaussian policies (mean, log std), with a
  learnable residual and its tuning loss.
- discrete_era / ERADiscrete: softmax policies and classifiers (modes exact, tight,
  reference).
- llm_era / LLMERA: a GRPO batch to ERA log-probs, entropies and rescaled advantages, also
  with a response's tokens on several processes (process_group).
- verl_era: the same on the tensors verl's actor holds (padded or remove-padding layout,
  sequence parallelism), with verl's clipped policy loss.
- llm_linear_logprob / ERALinearLogprob, llm_linear_era, linear_discrete_ce /
  ERALinearCrossEntropy: the fused linear heads (the logits never formed).
- softmax_entropy, gaussian_entropy, tanh_gaussian_entropy, truncated_normal_entropy,
  token_entropy: metrics in nats (no gradient).
"""

from . import native
from ._checks import check_device_errors, get_device_checks, set_device_checks
from ._ops import ContinuousERAFunction, DiscreteERAFunction, LLMLogprobFunction
from .functions import (
    continuous_era,
    continuous_era_tanh,
    continuous_era_truncated,
    discrete_era,
    gaussian_entropy,
    llm_logprob,
    softmax_entropy,
    tanh_gaussian_entropy,
    token_entropy,
    truncated_normal_entropy,
)
from .linear import ERALinearCrossEntropy, ERALinearLogprob, linear_discrete_ce, llm_linear_era, llm_linear_logprob
from .llm import LLMERA, LLMERAOutput, llm_era
from .modules import ERAContinuous, ERADiscrete
from .verl import PolicyLoss, VerlERAOutput, verl_era
from .distributions import TruncatedNormal

__all__ = [
    "continuous_era_tanh",
    "continuous_era_truncated",
    "native",
    "set_device_checks",
    "get_device_checks",
    "check_device_errors",
    "ContinuousERAFunction",
    "DiscreteERAFunction",
    "LLMLogprobFunction",
    "continuous_era",
    "discrete_era",
    "llm_logprob",
    "softmax_entropy",
    "gaussian_entropy",
    "tanh_gaussian_entropy",
    "truncated_normal_entropy",
    "token_entropy",
    "ERAContinuous",
    "ERADiscrete",
    "LLMERA",
    "LLMERAOutput",
    "llm_era",
    "verl_era",
    "VerlERAOutput",
    "PolicyLoss",
    "llm_linear_logprob",
    "llm_linear_era",
    "linear_discrete_ce",
    "ERALinearLogprob",
    "ERALinearCrossEntropy",
    "TruncatedNormal",
]
