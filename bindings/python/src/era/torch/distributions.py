"""The truncated normal as a torch.distributions.Distribution (docs/math.md, "Truncated-normal
policy"): the official SAC-ERA policy samples actions from N(tanh(mean), exp(log_std)^2)
truncated to [-1, 1]. Sampling, its reparameterisation gradient and the log-density run in
libera on the CPU and in the formulas of era._formulas elsewhere (or with backend="native")."""

from __future__ import annotations

import math
from numbers import Number
from typing import Optional

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

from .. import _formulas as F
from .._errors import BadParameterError, DTypeError, python_error
from . import _ops, native
from ._bridge import native_path
from .functions import truncated_normal_entropy

__all__ = ["TruncatedNormal"]


def _invoke(function, op, *args):
    """The operator through its autograd.Function when a gradient may be wanted (also under
    torch.func's transforms), else its kernel directly where era.torch's eager shortcut
    allows."""
    if torch.is_grad_enabled():
        return function.apply(*args)
    return _ops.call(op, *args)


class TruncatedNormal(Distribution):
    """N(loc, scale^2) truncated to [low, high], element-wise (event shape ``()``).

    Args:
        loc: locations (float32 or float64 tensor, or a number).
        scale: scales > 0, broadcast with `loc` to the batch shape.
        low, high: the interval, finite numbers, low < high (default [-1, 1]).
        validate_args: as torch.distributions (checks loc, scale and log_prob's values).
        backend: "auto" (libera on the CPU, the device path elsewhere) or "native" (the
            device path everywhere).

    rsample draws u ~ U(0, 1) with torch.rand on the tensors' device and dtype (kept above 0)
    and returns F^-1(u): differentiable with respect to loc and scale (implicit
    reparameterisation). log_prob is per element, -inf outside [low, high], differentiable
    with respect to the value, loc and scale. entropy() is libera's closed form.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True

    def __init__(self, loc, scale, low: float = -1.0, high: float = 1.0, validate_args: Optional[bool] = None, *,
                 backend: str = "auto"):
        self.loc, self.scale = broadcast_all(loc, scale)
        self.low, self.high = float(low), float(high)
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise python_error(BadParameterError, "era.torch.TruncatedNormal",
                               f"need finite low < high, got [{low}, {high}]")
        if self.loc.dtype not in (torch.float32, torch.float64):
            raise python_error(DTypeError, "era.torch.TruncatedNormal",
                               f"loc and scale must be float32 or float64, got {self.loc.dtype}")
        self.backend = backend
        batch_shape = torch.Size() if isinstance(loc, Number) and isinstance(scale, Number) else self.loc.size()
        super().__init__(batch_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(TruncatedNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc, new.scale = self.loc.expand(batch_shape), self.scale.expand(batch_shape)
        new.low, new.high, new.backend = self.low, self.high, self.backend
        super(TruncatedNormal, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _native(self) -> bool:
        return native_path(self.loc, self.backend, "era.torch.TruncatedNormal")

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        u = u.clamp(min=torch.finfo(u.dtype).tiny)  # torch.rand may give 0; libera needs 0 < u < 1
        loc = self.loc.expand(shape).contiguous()
        log_std = self.scale.log().expand(shape).contiguous()
        return _invoke(_ops.TruncatedNormalSampleFunction, _ops.truncated_normal_sample, loc, log_std, u, self.low,
                       self.high, self._native())

    def log_prob(self, value) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        loc, log_std, value = broadcast_all(self.loc, self.scale.log(), value)
        return _invoke(_ops.TruncatedNormalLogProbFunction, _ops.truncated_normal_log_prob, loc.contiguous(),
                       log_std.contiguous(), value.contiguous(), self.low, self.high, self._native())

    def entropy(self) -> torch.Tensor:
        """Per element, in nats (libera's closed form; its value only)."""
        return truncated_normal_entropy(self.loc.unsqueeze(-1), self.scale.log().unsqueeze(-1), self.low, self.high)

    def _moments(self):
        ops = native.OPS
        loc, log_std = self.loc.to(torch.float64), self.scale.log().to(torch.float64)
        mirrored, m, _, _, sg, alpha, beta, _, _, log_z = F._truncated_frame(ops, loc, log_std, self.low, self.high)
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        ratio_a = torch.exp(-0.5 * alpha * alpha - half_log_2pi - log_z)
        ratio_b = torch.exp(-0.5 * beta * beta - half_log_2pi - log_z)
        mean = m + sg * (ratio_a - ratio_b)
        variance = sg * sg * (1 + alpha * ratio_a - beta * ratio_b - (ratio_a - ratio_b) ** 2)
        return torch.where(mirrored, -mean, mean).to(self.loc.dtype), variance.to(self.loc.dtype)

    @property
    def mean(self) -> torch.Tensor:
        return self._moments()[0]

    @property
    def variance(self) -> torch.Tensor:
        return self._moments()[1]
