"""era: Entropy Regularizing Activation (Kang, Liao, Xu, Xu, arXiv 2510.08549) over libera.

ERA keeps the sampling entropy of a model's output distribution above a chosen floor by
passing the last-layer outputs through a purpose-built activation. This package binds
libera's C ABI (include/era.h): every function works on numpy arrays (float32 or float64,
any leading batch shape, the last axis is the row), entropies are in nats, and a refused
call raises a subclass of ERAError (a ValueError) named after the library's status.

Frameworks: ``era.torch`` (operators ``torch.ops.era.*`` and nn.Modules) and ``era.jax``
(libera as XLA FFI custom calls on CPU, the same formulas in jax.numpy elsewhere), imported
on demand. For CI: ``era.testing`` and
``python -m era verify``. The mathematics: docs/math.md; the API: docs/python.md.
"""

from . import _era
from ._errors import (
    AllocationError,
    BadIndexError,
    OverlapError,
    BadParameterError,
    BadShapeError,
    DTypeError,
    ERAError,
    InfeasibleTargetError,
    InternalError,
    NonFiniteError,
    NullPointerError,
    PeerInputError,
)
from .check import BoundReport, check_continuous, check_discrete
from .continuous import ContinuousGrads, continuous_backward, continuous_forward
from .discrete import (
    discrete_backward,
    discrete_constant,
    discrete_floor,
    discrete_forward,
    discrete_infimum,
)
from .entropy import gaussian_entropy, softmax_entropy, tanh_gaussian_entropy, truncated_normal_entropy
from .llm import (
    LLMLogprob,
    LLMScales,
    llm_logprob_backward,
    llm_logprob_forward,
    llm_response_entropy,
    llm_scales,
    token_entropy,
)
from .linear import (
    LinearDiscreteCE,
    LinearLogprobGrads,
    linear_discrete_ce,
    llm_linear_logprob_backward,
    llm_linear_logprob_forward,
)
from .library import abi_version, get_num_threads, set_num_threads, version
from .truncnorm import (
    TruncatedNormalLogProbGrads,
    TruncatedNormalSampleGrads,
    truncated_normal_log_prob,
    truncated_normal_log_prob_backward,
    truncated_normal_sample,
    truncated_normal_sample_backward,
)
from .sampled_floor import (
    ContinuousTruncatedGrads,
    TruncatedNormalEntropyGrads,
    check_continuous_truncated,
    continuous_truncated_backward,
    continuous_truncated_forward,
    truncated_normal_entropy_backward,
)
from .sampled_floor import (
    ContinuousTanhGrads,
    TanhGaussianEntropyGrads,
    check_continuous_tanh,
    continuous_tanh_backward,
    continuous_tanh_forward,
    tanh_gaussian_entropy_backward,
)
from . import presets, testing  # numpy only; era.torch and era.jax are imported on demand

if _era.abi_version() != _era.HEADER_ABI_VERSION:
    raise ImportError(
        f"era: the bundled libera has ABI version {_era.abi_version()} but era._era was compiled against "
        f"ABI {_era.HEADER_ABI_VERSION}; reinstall the package"
    )

__version__ = _era.version_string()

__all__ = [
    "ERAError",
    "NullPointerError",
    "BadShapeError",
    "BadParameterError",
    "InfeasibleTargetError",
    "NonFiniteError",
    "AllocationError",
    "InternalError",
    "BadIndexError",
    "OverlapError",
    "DTypeError",
    "PeerInputError",
    "softmax_entropy",
    "gaussian_entropy",
    "tanh_gaussian_entropy",
    "truncated_normal_entropy",
    "continuous_forward",
    "continuous_backward",
    "ContinuousGrads",
    "discrete_forward",
    "discrete_backward",
    "discrete_floor",
    "discrete_infimum",
    "discrete_constant",
    "token_entropy",
    "llm_response_entropy",
    "llm_scales",
    "llm_logprob_forward",
    "llm_logprob_backward",
    "LLMScales",
    "LLMLogprob",
    "llm_linear_logprob_forward",
    "llm_linear_logprob_backward",
    "linear_discrete_ce",
    "LinearLogprobGrads",
    "LinearDiscreteCE",
    "BoundReport",
    "check_discrete",
    "check_continuous",
    "set_num_threads",
    "get_num_threads",
    "version",
    "abi_version",
    "TOPK_OUTSIDE_LOGPROB",
    "truncated_normal_sample",
    "truncated_normal_sample_backward",
    "truncated_normal_log_prob",
    "truncated_normal_log_prob_backward",
    "TruncatedNormalSampleGrads",
    "TruncatedNormalLogProbGrads",
    "truncated_normal_entropy_backward",
    "TruncatedNormalEntropyGrads",
    "continuous_truncated_forward",
    "continuous_truncated_backward",
    "ContinuousTruncatedGrads",
    "check_continuous_truncated",
    "tanh_gaussian_entropy_backward",
    "TanhGaussianEntropyGrads",
    "continuous_tanh_forward",
    "continuous_tanh_backward",
    "ContinuousTanhGrads",
    "check_continuous_tanh",
]

# Top-k log-probabilities (top_k= in the log-prob functions): a label outside the top k.
from .llm import TOPK_OUTSIDE_LOGPROB  # noqa: E402
