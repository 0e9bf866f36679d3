"""nn.Module wrappers of continuous and discrete ERA (the kernels are in functions.py)."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

from .. import _formulas
from .. import continuous as _continuous
from .. import discrete as _discrete
from .._errors import BadParameterError, BadShapeError, python_error
from .functions import continuous_era, discrete_era, tanh_gaussian_entropy, truncated_normal_entropy
from .._formulas import GAUSSIAN_ENTROPY_PER_DIM

__all__ = ["ERAContinuous", "ERADiscrete"]

SQUASHES = ("tanh", "truncated_normal")


def _spacing(x: float, dtype: torch.dtype) -> float:
    """The distance between the values of `dtype` around x > 0 (finite, below dtype's max)."""
    info = torch.finfo(dtype)
    if x < info.tiny:
        return info.tiny * info.eps
    return math.ldexp(info.eps, math.frexp(x)[1] - 1)


def _round_down(x: float, dtype: torch.dtype) -> float:
    """The largest value of `dtype` at or below x (0 for x <= 0), as a float."""
    info = torch.finfo(dtype)
    if not x > 0:
        return 0.0
    if x >= info.max:
        return float(info.max)
    step = _spacing(x, dtype)
    return math.floor(x / step) * step


class ERAContinuous(nn.Module):
    """Continuous ERA for a Gaussian policy head (docs/math.md section 1).

    ``forward(mean, std_logits) -> (mean, log_std)``: the mean passes through unchanged and
    the log stds keep the Gaussian entropy of every row at or above
    ``target_entropy + residual`` nats, with every std in [exp(log_std_min), exp(log_std_max)].

    Squashing (a = tanh(x), or the official SAC-ERA truncated normal) lowers the entropy; the
    residual compensates it. With ``learn_residual=True`` the residual is an nn.Parameter
    tuned by :meth:`residual_loss` (paper: minimise ``delta * (H_squashed - H0)``), and kept
    in its feasible range by projection before the residual is next used: at least 0, and
    at most :attr:`max_residual` = ``D*(0.5*log(2*pi*e) + log_std_max) - H0``, where the
    floor ``H0 + delta`` is the entropy of every std at exp(log_std_max) (K = 0). Beyond it
    no log std could meet the floor and the activation would refuse the target
    (InfeasibleTargetError): the squashed entropy cannot reach H0 with these bounds.

    Args:
        action_dim: D, the last axis of std_logits.
        target_entropy: H0 in nats; None gives SAC-ERA's default ``-0.5 * action_dim``.
        residual: the initial delta >= 0 (nats).
        learn_residual: make the residual a learnable parameter (else a buffer).
        log_std_min, log_std_max: the clip range of the log std.
        backend: "auto", "libera" or "native" (era.torch.functions).
    """

    def __init__(
        self,
        action_dim: int,
        target_entropy: Optional[float] = None,
        *,
        residual: float = _continuous.RESIDUAL,
        learn_residual: bool = False,
        log_std_min: float = _continuous.LOG_STD_MIN,
        log_std_max: float = _continuous.LOG_STD_MAX,
        backend: str = "auto",
    ):
        super().__init__()
        if action_dim < 1:
            raise python_error(BadShapeError, "era.torch.ERAContinuous", f"action_dim={action_dim} must be >= 1")
        if not residual >= 0:
            raise python_error(BadParameterError, "era.torch.ERAContinuous", f"residual={residual} must be >= 0")
        self.action_dim = int(action_dim)
        self.target_entropy = float(-0.5 * action_dim if target_entropy is None else target_entropy)
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)
        self.backend = backend
        initial = torch.tensor(float(residual))
        if learn_residual:
            self.residual = nn.Parameter(initial)
        else:
            self.register_buffer("residual", initial)

    @property
    def max_residual(self) -> float:
        """The largest feasible delta (nats): the floor H0 + delta then equals the entropy of
        every std at exp(log_std_max). Negative when H0 itself is infeasible."""
        return self.action_dim * (GAUSSIAN_ENTROPY_PER_DIM + self.log_std_max) - self.target_entropy

    def _residual_cap(self, dtype: torch.dtype) -> float:
        """The largest delta of `dtype` that every path accepts: at or below max_residual less
        a relative 1e-9, and feasible under each path's own float64 sum for K (libera's H0 +
        delta - D*c - D*log_std_max, the device path's (H0 - D*c - D*log_std_max) + delta;
        its float32 sum for half-precision rows rounds both terms alike and keeps K <= 0).
        Exact in `dtype`: clamping to it stores it unrounded, where clamping to the float64
        cap would round it to the nearest value of `dtype`, possibly above the cap."""
        dim, target, high = float(self.action_dim), self.target_entropy, self.log_std_max
        top = self.max_residual
        native_top = -_formulas.continuous_offset(self.action_dim, target, high)

        def feasible(delta: float) -> bool:
            return target + delta - dim * GAUSSIAN_ENTROPY_PER_DIM - dim * high <= 0 and delta <= native_top

        cap, gap = _round_down(top - 1e-9 * max(1.0, abs(top)), dtype), 0.0
        while cap > 0 and not feasible(cap):
            # the next value down (nextafter toward 0), then steps doubling in size
            gap = max(2 * gap, cap - _round_down(math.nextafter(cap, 0.0), dtype))
            cap = _round_down(cap - gap, dtype)
        return cap

    def _project_residual(self) -> None:
        """Keeps 0 <= delta <= the largest feasible delta of the residual's dtype (projected
        gradient descent on the residual; 0 and that cap are exact in every dtype)."""
        cap = self._residual_cap(self.residual.dtype)
        with torch.no_grad():
            self.residual.clamp_(min=0.0, max=cap)

    def forward(self, mean: torch.Tensor, std_logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[..., D], [..., D] -> (mean, log_std [..., D])``."""
        if std_logits.shape[-1:] != (self.action_dim,) or mean.shape != std_logits.shape:
            raise python_error(
                BadShapeError,
                "era.torch.ERAContinuous",
                f"mean {tuple(mean.shape)} and std_logits {tuple(std_logits.shape)} must both be [..., {self.action_dim}]",
            )
        self._project_residual()
        log_std = continuous_era(
            std_logits,
            self.target_entropy,
            residual=self.residual,
            log_std_min=self.log_std_min,
            log_std_max=self.log_std_max,
            backend=self.backend,
        )
        return mean, log_std

    def squashed_entropy(self, mean: torch.Tensor, log_std: torch.Tensor, squash: str = "tanh") -> torch.Tensor:
        """Per-row entropy (nats, no gradient) of the policy actually sampled: "tanh" for
        a = tanh(x), x ~ N(mean, std^2); "truncated_normal" for the official SAC-ERA code's
        normal with location tanh(mean) truncated to [-1, 1]."""
        if squash == "tanh":
            return tanh_gaussian_entropy(mean.detach(), log_std.detach())
        if squash == "truncated_normal":
            return truncated_normal_entropy(torch.tanh(mean.detach()), log_std.detach(), -1.0, 1.0)
        raise ValueError(f"squash must be one of {SQUASHES}, got {squash!r}")

    def residual_loss(self, mean: torch.Tensor, log_std: torch.Tensor, squash: str = "tanh") -> torch.Tensor:
        """The residual's tuning loss (docs/math.md section 1, "Residual tuning"):
        ``delta * (mean over rows of H_squashed - H0)``, with the entropy held constant, so
        that a gradient step raises delta while the squashed entropy is below H0 and lowers
        it (down to 0) while it is above."""
        self._project_residual()
        entropy = self.squashed_entropy(mean, log_std, squash).double().mean()
        gap = (entropy - self.target_entropy).to(device=self.residual.device, dtype=self.residual.dtype)
        return self.residual * gap

    def extra_repr(self) -> str:
        return (
            f"action_dim={self.action_dim}, target_entropy={self.target_entropy}, "
            f"log_std_min={self.log_std_min}, log_std_max={self.log_std_max}, "
            f"learn_residual={isinstance(self.residual, nn.Parameter)}"
        )


class ERADiscrete(nn.Module):
    """Discrete ERA for softmax policies and classifiers (docs/math.md section 2).

    ``forward(logits [..., D]) -> logits [..., D]`` whose softmax keeps an entropy of at
    least `target_entropy` nats in modes "exact" and "tight" (none in "reference").

    Args:
        target_entropy: H0 in nats.
        tau: > e (default 4): the top class gets at most 1/tau before normalisation.
        mode: "exact", "tight" or "reference".
        backend: "auto", "libera" or "native".
    """

    def __init__(
        self, target_entropy: float, *, tau: float = _discrete.TAU, mode: str = _discrete.DEFAULT_MODE, backend: str = "auto"
    ):
        super().__init__()
        _discrete.mode_number(mode, "era.torch.ERADiscrete")
        self.target_entropy = float(target_entropy)
        self.tau = float(tau)
        self.mode = mode
        self.backend = backend

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return discrete_era(logits, self.target_entropy, tau=self.tau, mode=self.mode, backend=self.backend)

    def floor(self, num_classes: int) -> float:
        """The entropy these settings guarantee for `num_classes` classes (NaN: none)."""
        return _discrete.discrete_floor(num_classes, self.target_entropy, tau=self.tau, mode=self.mode)

    def infimum(self, num_classes: int) -> float:
        """The infimum of the output entropy for `num_classes` classes (inputs near one-hot)."""
        return _discrete.discrete_infimum(num_classes, self.target_entropy, tau=self.tau, mode=self.mode)

    def extra_repr(self) -> str:
        return f"target_entropy={self.target_entropy}, tau={self.tau}, mode={self.mode!r}"
