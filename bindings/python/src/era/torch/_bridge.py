"""Zero-copy passage between CPU torch tensors and the numpy arrays libera reads and writes."""

from __future__ import annotations

import numpy as np
import torch

from .._errors import DTypeError, python_error

BACKENDS = ("auto", "libera", "native")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor's memory (a contiguous copy first only when the tensor is
    not contiguous). bfloat16 tensors give their raw bits as uint16, which era's bf16
    kernels read."""
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def from_numpy(a: np.ndarray, bfloat16: bool = False) -> torch.Tensor:
    """The tensor sharing `a`'s memory (uint16 bits become a bfloat16 tensor when asked)."""
    if bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def use_libera(t: torch.Tensor, backend: str, where: str) -> bool:
    """Whether a call on `t` goes through libera (CPU tensors, backend "auto" or "libera") or
    through the torch-native implementation (other devices, or backend "native")."""
    if backend not in BACKENDS:
        raise ValueError(f"{where}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "native":
        return False
    if t.device.type == "cpu":
        return True
    if backend == "libera":
        raise python_error(DTypeError, where, f"backend 'libera' runs on CPU tensors; this one is on {t.device}")
    return False
