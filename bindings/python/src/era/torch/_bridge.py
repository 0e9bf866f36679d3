"""CPU tensors as libera reads them (numpy views of their memory), and the backend rule."""

from __future__ import annotations

from typing import Iterator, Tuple

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


def from_numpy(a: np.ndarray) -> torch.Tensor:
    """The tensor sharing `a`'s memory (0-d results stay 0-d)."""
    a = np.asarray(a)
    return torch.from_numpy(a if a.flags.c_contiguous else np.ascontiguousarray(a))


def cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """t in `dtype` (t itself when it already is: a no-op .to() still costs a call into torch)."""
    return t if t.dtype == dtype else t.to(dtype)


def row_blocks(t: torch.Tensor) -> Iterator[Tuple[Tuple[int, ...], torch.Tensor]]:
    """(leading index, 2-D ``[rows, V]`` block) pairs covering `t` ``[..., V]``, each block's
    rows contiguous in memory, as libera reads them: the whole tensor when it is contiguous;
    for a strided view such as ``logits[:, :-1]`` one block per leading index (views, no
    copy); a copy only when the rows themselves are not contiguous (a slice of the last
    axis, a transposed tensor)."""
    vocab = t.shape[-1]
    if t.is_contiguous():
        yield (), t.view(-1, vocab)
    elif t.dim() > 2 and t.shape[0] > 0:
        for i in range(t.shape[0]):
            for index, block in row_blocks(t[i]):
                yield (i,) + index, block
    else:
        yield (), t.contiguous().view(-1, vocab)


def native_path(t: torch.Tensor, backend: str, where: str) -> bool:
    """Whether a call on `t` takes the device path (era.torch.native): tensors on devices
    other than the CPU under "auto", every tensor under "native"; "libera" insists on
    libera, which reads CPU tensors only."""
    if backend not in BACKENDS:
        raise ValueError(f"{where}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "native":
        return True
    if t.device.type == "cpu":
        return False
    if backend == "libera":
        raise python_error(DTypeError, where, f"backend 'libera' runs on CPU tensors; this one is on {t.device}")
    return True
