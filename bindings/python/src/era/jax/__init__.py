"""era.jax: ERA for JAX, usable under jit, vmap, grad, jvp, jacfwd, hessian, jax.export and
sharded inputs.

On CPU every function lowers to XLA FFI custom calls into libera (C++ handlers built with
the package, registered at import): XLA calls them on its own buffers, with no Python in the
loop. On other platforms (GPU, TPU) the same functions run the shared jax.numpy formulas of
era._formulas. See era/jax/_ffi.py for the backend argument and how errors surface. Static
parameters (target entropy, tau, mode, clip range, LLM thresholds) are Python numbers,
checked by libera when the function is traced; data errors raise the ERAError subclass on
concrete arrays, and JAX's runtime error carrying era's class and message inside jit (on
other platforms, where nothing can raise inside a compiled program, a bad row is NaN).

- continuous_era, discrete_era: differentiable in both modes (custom_jvp, libera's primal).
- llm_logprob: differentiable in reverse mode (custom_vjp, libera's forward and backward).
- softmax_entropy, gaussian_entropy, token_entropy, llm_response_entropy, llm_scales:
  metrics (stop_gradient on their inputs); tanh_gaussian_entropy and
  truncated_normal_entropy are differentiable in reverse mode (custom_vjp).
- continuous_era_truncated, continuous_era_tanh: the sampled floors (custom_vjp).
- llm_era: a GRPO batch to ERA log-probs, entropies, scales and rescaled advantages.
"""

from ._ffi import export_checks
from .functions import (
    continuous_era,
    discrete_era,
    gaussian_entropy,
    llm_logprob,
    softmax_entropy,
    token_entropy,
)
from .llm import LLMERAOutput, llm_era, llm_response_entropy, llm_scales
from .truncnorm import truncated_normal_log_prob, truncated_normal_sample
# the sampled floor; truncated_normal_entropy here is differentiable (custom_vjp)
from .sampled_floor import continuous_era_truncated, truncated_normal_entropy
# the tanh sampled floor; tanh_gaussian_entropy here is differentiable (custom_vjp)
from .tanh_floor import continuous_era_tanh, tanh_gaussian_entropy

__all__ = [
    "export_checks",
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
    "truncated_normal_sample",
    "truncated_normal_log_prob",
    "continuous_era_truncated",
    "continuous_era_tanh",
]
