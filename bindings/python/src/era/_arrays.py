"""Turning caller arrays into what a C entry point reads: rows x row-length, C order, exact dtype.

The rules, the same for every function of the package:
- an array may have any leading batch shape; its last axis is the row (``[..., D]``);
- its dtype must be one the kernel takes: there is no silent cast (a wrong dtype raises
  DTypeError, also a TypeError);
- it is copied only when it is not C-contiguous (or not aligned): a contiguous array is
  handed to libera as it is;
- outputs are fresh arrays, or, where a function takes ``out=``, the caller's own array
  (exactly the shape and dtype, C-contiguous and writable), written only on success.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, Tuple

import numpy as np

from ._errors import BadShapeError, DTypeError, python_error

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INDEX_DTYPE = np.dtype(np.int64)


def is_bfloat16(dtype: np.dtype) -> bool:
    """True for ml_dtypes' bfloat16 (what JAX and ml_dtypes give numpy), without importing it."""
    return dtype.itemsize == 2 and dtype.name == "bfloat16"  # itemsize first: dtype.name is slow


def c_array(x: np.ndarray) -> np.ndarray:
    """x itself when it is C-contiguous and aligned, else a C-ordered copy (same dtype)."""
    if x.flags.c_contiguous and x.flags.aligned:
        return x
    return np.array(x, order="C", copy=True)


def as_numpy(x: Any, where: str, name: str) -> np.ndarray:
    """np.asarray(x) for arrays and array-likes, refusing tensors that live on an accelerator.
    CPU torch tensors and JAX arrays convert without a copy where their framework allows it."""
    if type(x).__module__.startswith("torch"):
        if x.device.type != "cpu":
            raise python_error(DTypeError, where, f"{name} is a {x.device.type} tensor; use era.torch for device tensors")
        x = x.detach()
        if str(x.dtype) == "torch.bfloat16":
            # numpy has no bfloat16: hand over the raw bits (era's bf16 kernels read them).
            import torch

            return x.contiguous().view(torch.int16).numpy().view(np.uint16)
        return x.numpy()
    return np.asarray(x)


@dataclass(frozen=True)
class Rows:
    """An input array as the C ABI sees it: ``array`` (C-contiguous, exact dtype), its
    ``batch_shape`` (all axes but the last), ``rows`` (their product) and ``cols`` (the last
    axis)."""

    array: np.ndarray
    batch_shape: Tuple[int, ...]
    rows: int
    cols: int
    source_dtype: np.dtype

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype


def rows_of(x: Any, where: str, name: str, dtypes: Sequence[np.dtype] = FLOAT_DTYPES, bf16: bool = False) -> Rows:
    """Validates a ``[..., D]`` array of one of `dtypes` (and bfloat16 when `bf16`: an
    ml_dtypes bfloat16 array, a torch bfloat16 CPU tensor, or uint16 raw bits, all handed to
    the kernel as uint16 bits)."""
    array = as_numpy(x, where, name)
    source_dtype = array.dtype
    if bf16 and (is_bfloat16(array.dtype) or array.dtype == np.dtype(np.uint16)):
        array = array.view(np.uint16)
    elif array.dtype not in dtypes:
        allowed = " or ".join(str(d) for d in dtypes) + (" or bfloat16 (or its uint16 bits)" if bf16 else "")
        raise python_error(DTypeError, where, f"{name} has dtype {array.dtype}; this kernel takes {allowed}")
    if array.ndim == 0:
        raise python_error(BadShapeError, where, f"{name} is a scalar; it needs a last axis (the row)")
    batch_shape = tuple(array.shape[:-1])
    return Rows(c_array(array), batch_shape, math.prod(batch_shape), array.shape[-1], source_dtype)


def like(rows: Rows, y: Any, where: str, name: str, ref_name: str) -> np.ndarray:
    """A second input that must have exactly the shape and dtype of `rows` (e.g. a gradient)."""
    array = as_numpy(y, where, name)
    if array.dtype != rows.dtype:
        raise python_error(DTypeError, where, f"{name} has dtype {array.dtype}, {ref_name} has {rows.dtype}")
    shape = rows.batch_shape + (rows.cols,)
    if array.shape != shape:
        raise python_error(BadShapeError, where, f"{name} has shape {array.shape}, {ref_name} has {shape}")
    return c_array(array)


def per_row(x: Any, where: str, name: str, dtype: np.dtype, shape: Tuple[int, ...]) -> np.ndarray:
    """A per-row (or per-token) array of exactly `shape` and `dtype`, flattened in C order."""
    array = as_numpy(x, where, name)
    if array.dtype != dtype:
        raise python_error(DTypeError, where, f"{name} has dtype {array.dtype}; it must be {dtype}")
    if array.shape != tuple(shape):
        raise python_error(BadShapeError, where, f"{name} has shape {array.shape}; it must be {tuple(shape)}")
    return c_array(array).reshape(-1)


def vector(x: Any, where: str, name: str, dtype: np.dtype) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """An array of any shape and exactly `dtype`, flattened (C order), with its shape."""
    array = as_numpy(x, where, name)
    if array.dtype != dtype:
        raise python_error(DTypeError, where, f"{name} has dtype {array.dtype}; it must be {dtype}")
    return c_array(array).reshape(-1), tuple(array.shape)


def output(out: Any, shape: Tuple[int, ...], dtype: np.dtype, where: str, name: str, also: Sequence[np.dtype] = ()):
    """A fresh C-ordered array of `shape` and `dtype`, or the caller's `out` when given: it must
    be a numpy array of exactly that shape and of `dtype` (or one of `also`, viewed as `dtype`),
    C-contiguous and writable."""
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise python_error(DTypeError, where, f"{name} must be a numpy array, got {type(out).__name__}")
    if out.dtype != dtype and out.dtype not in also:
        raise python_error(DTypeError, where, f"{name} has dtype {out.dtype}; it must be {dtype}")
    if out.shape != tuple(shape):
        raise python_error(BadShapeError, where, f"{name} has shape {out.shape}; it must be {tuple(shape)}")
    if not (out.flags.c_contiguous and out.flags.aligned and out.flags.writeable):
        raise python_error(BadShapeError, where, f"{name} must be C-contiguous, aligned and writable")
    return out if out.dtype == dtype else out.view(dtype)
