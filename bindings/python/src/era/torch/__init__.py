"""era.torch: ERA as PyTorch autograd Functions and nn.Modules.

CPU tensors go through libera without copies (contiguous tensors are handed over as numpy
views); tensors on other devices (CUDA) use era.torch.native, a torch implementation of the
same formulas that the tests hold to libera. Pick explicitly with ``backend="libera"`` or
``backend="native"``.

- continuous_era / ERAContinuous: bounded Gaussian policies (mean, log std), with a
  learnable residual and its tuning loss.
- discrete_era / ERADiscrete: softmax policies and classifiers (modes exact, tight,
  reference).
- llm_era / LLMERA: a GRPO batch to ERA log-probs, entropies and rescaled advantages.
- softmax_entropy, gaussian_entropy, tanh_gaussian_entropy, truncated_normal_entropy,
  token_entropy: metrics in nats (no gradient).
"""

from . import native
from .functions import (
    ContinuousERAFunction,
    DiscreteERAFunction,
    LLMLogprobFunction,
    continuous_era,
    discrete_era,
    gaussian_entropy,
    llm_logprob,
    softmax_entropy,
    tanh_gaussian_entropy,
    token_entropy,
    truncated_normal_entropy,
)
from .llm import LLMERA, LLMERAOutput, llm_era
from .modules import ERAContinuous, ERADiscrete

__all__ = [
    "native",
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
]
