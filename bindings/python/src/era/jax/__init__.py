"""era.jax: ERA as jax.custom_vjp functions over libera, usable under jit, vmap and grad.

Forward and backward passes call libera through jax.pure_callback (vmap_method
"broadcast_all"), so they run on the host CPU whatever the default device. Static
parameters (target entropy, tau, mode, clip range, LLM thresholds) are Python numbers and are
checked by libera when the function is traced; data errors (NaN, labels out of range) raise
the ERAError subclass on concrete arrays, and JAX's runtime error carrying era's message
inside jit.

- continuous_era, discrete_era, llm_logprob: differentiable (custom_vjp).
- softmax_entropy, gaussian_entropy, tanh_gaussian_entropy, truncated_normal_entropy,
  token_entropy, llm_response_entropy, llm_scales: metrics (stop_gradient on their inputs).
- llm_era: a GRPO batch to ERA log-probs, entropies, scales and rescaled advantages.
"""

from .functions import (
    continuous_era,
    discrete_era,
    gaussian_entropy,
    llm_logprob,
    softmax_entropy,
    tanh_gaussian_entropy,
    token_entropy,
    truncated_normal_entropy,
)
from .llm import LLMERAOutput, llm_era, llm_response_entropy, llm_scales

__all__ = [
    "continuous_era",
    "discrete_era",
    "llm_logprob",
    "softmax_entropy",
    "gaussian_entropy",
    "tanh_gaussian_entropy",
    "truncated_normal_entropy",
    "token_entropy",
    "llm_response_entropy",
    "llm_scales",
    "llm_era",
    "LLMERAOutput",
]
