"""ERA as PyTorch custom operators: ``torch.ops.era.*``.

Each operator has
- a CPU kernel that calls libera on the tensors' own memory (numpy views, no copy for
  contiguous tensors; the library releases the GIL), or the device path when its ``native``
  argument is true;
- a kernel for every other device: the device path (era.torch.native);
- a fake (meta) kernel, so that torch.compile, torch.export and meta tensors see its shapes;
- a vmap rule (row-wise operators fold the vmapped axis into their rows);
- an autograd formula whose backward is itself an era operator, and whose double backward
  differentiates the shared backward formula (era._formulas): second derivatives are exact,
  on both backends.

The era.torch functions call the operators through the autograd.Function classes below (the
same backward code), which also give torch.func (grad, vmap, jacrev) what it needs; the
operators' own register_autograd serves code that calls ``torch.ops.era.*`` directly.

Autocast: continuous and discrete ERA and the entropies of their rows follow softmax under
``torch.autocast``: on CUDA they run in float32 (float32 outputs), on CPU they take the
input's dtype (bfloat16 in, bfloat16 out, computed in float32 inside). The LLM passes take
the logits as they come on every device: they compute in float32 and return float32
anyway, and a float32 copy of the logits would double their memory.

dtypes inside: libera has float32 and float64 kernels (and bfloat16 for the LLM passes);
float16 and bfloat16 rows of continuous and discrete ERA, and float16 logits, go through a
float32 copy on CPU; float64 logits of the log-prob passes, which libera does not take, use
the device path on CPU too.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .. import _formulas as F
from .. import continuous as _continuous
from .. import discrete as _discrete
from .. import entropy as _entropy
from .. import linear as _linear
from .. import llm as _llm
from .. import truncnorm as _truncnorm
from . import _checks, native
from ._bridge import cast as _cast
from ._bridge import from_numpy, row_blocks, to_numpy

HALF = (torch.float16, torch.bfloat16)


# The kernels of each operator by name: what the dispatcher runs, and what an eager call runs
# directly (run): DEVICE_KERNELS for every device but the CPU, CPU_KERNELS for the CPU.
DEVICE_KERNELS: Dict[str, Callable] = {}
CPU_KERNELS: Dict[str, Callable] = {}


def _device_kernel(fn: Callable) -> Callable:
    """Records an operator's default (non-CPU) kernel; applied beneath torch.library.custom_op."""
    DEVICE_KERNELS[fn.__name__] = fn
    return fn


def _cpu_kernel(op) -> Callable[[Callable], Callable]:
    """Registers (and records) an operator's CPU kernel."""

    def register(fn: Callable) -> Callable:
        op.register_kernel("cpu")(fn)
        CPU_KERNELS[op._name] = fn
        return fn

    return register


def eager(*tensors: Optional[Tensor]) -> bool:
    """Whether a call on these tensors may run its kernels directly instead of through the
    dispatcher: plain eager execution of plain tensors, with nothing tracing or transforming
    it (torch.compile, torch.export, make_fx, torch.func, dispatch or function modes), where
    the operators' machinery costs about 100 microseconds a call for nothing."""
    for t in tensors:
        if t is not None and type(t) is not Tensor:
            return False
    return not (torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
                or torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled())


def run(op, *args):
    """The kernel `op` would run for these arguments, run directly (an eager call)."""
    on_cpu = args[0].device.type == "cpu" and op._name in CPU_KERNELS
    return (CPU_KERNELS if on_cpu else DEVICE_KERNELS)[op._name](*args)


def call(op, *args):
    """`op` on these arguments: its kernel directly when eager, else through the dispatcher."""
    return run(op, *args) if eager(*[a for a in args if isinstance(a, Tensor)]) else op(*args)


def _float32_copy(t: Tensor) -> Tensor:
    return t.float() if t.dtype in HALF else t


def _value(residual: Optional[Tensor]) -> float:
    return 0.0 if residual is None else float(residual)


# ---------------------------------------------------------------------------------------
# Continuous ERA


@torch.library.custom_op("era::continuous_forward", mutates_args=())
@_device_kernel
def continuous_forward(std_logits: Tensor, residual: Optional[Tensor], target_entropy: float, log_std_min: float,
                       log_std_max: float, native_path: bool) -> Tensor:
    """Continuous ERA log stds (math 1). `residual` is a 0-d tensor (delta, whose value is
    data), or None when a constant residual is already part of `target_entropy` (H0 + delta)."""
    return native.continuous_forward(std_logits, residual, target_entropy, log_std_min, log_std_max)


@_cpu_kernel(continuous_forward)
def _continuous_forward_cpu(std_logits, residual, target_entropy, log_std_min, log_std_max, native_path):
    if native_path:
        return native.continuous_forward(std_logits, residual, target_entropy, log_std_min, log_std_max)
    out = from_numpy(_continuous.continuous_forward(
        to_numpy(_float32_copy(std_logits)), target_entropy, residual=_value(residual), log_std_min=log_std_min,
        log_std_max=log_std_max))
    if std_logits.dtype in HALF:
        return F.round_up_to(native.OPS, out, std_logits.dtype, log_std_max)
    return out


@continuous_forward.register_fake
def _(std_logits, residual, target_entropy, log_std_min, log_std_max, native_path):
    return torch.empty_like(std_logits, memory_format=torch.contiguous_format)


@torch.library.custom_op("era::continuous_backward", mutates_args=())
@_device_kernel
def continuous_backward(std_logits: Tensor, residual: Optional[Tensor], grad_log_std: Tensor, target_entropy: float,
                        log_std_min: float, log_std_max: float, native_path: bool) -> Tuple[Tensor, Tensor]:
    """(dL/d std_logits, dL/d residual per row in float64) of continuous_forward."""
    return native.continuous_backward(std_logits, residual, grad_log_std, target_entropy, log_std_min, log_std_max)


@_cpu_kernel(continuous_backward)
def _continuous_backward_cpu(std_logits, residual, grad_log_std, target_entropy, log_std_min, log_std_max, native_path):
    if native_path:
        return native.continuous_backward(std_logits, residual, grad_log_std, target_entropy, log_std_min,
                                          log_std_max)
    x = _float32_copy(std_logits)
    grads = _continuous.continuous_backward(
        to_numpy(x), to_numpy(_cast(grad_log_std, x.dtype)), target_entropy, residual=_value(residual),
        log_std_min=log_std_min, log_std_max=log_std_max)
    return _cast(from_numpy(grads.std_logits), std_logits.dtype), from_numpy(grads.residual).to(torch.float64)


@continuous_backward.register_fake
def _(std_logits, residual, grad_log_std, target_entropy, log_std_min, log_std_max, native_path):
    rows = std_logits.new_empty(std_logits.shape[:-1], dtype=torch.float64)
    return torch.empty_like(std_logits, memory_format=torch.contiguous_format), rows


# ---------------------------------------------------------------------------------------
# Discrete ERA


@torch.library.custom_op("era::discrete_forward", mutates_args=())
@_device_kernel
def discrete_forward(logits: Tensor, target_entropy: float, tau: float, mode: str, native_path: bool) -> Tensor:
    """Discrete ERA output logits (math 2)."""
    return native.discrete_forward(logits, target_entropy, tau, mode)


@_cpu_kernel(discrete_forward)
def _discrete_forward_cpu(logits, target_entropy, tau, mode, native_path):
    if native_path:
        return native.discrete_forward(logits, target_entropy, tau, mode)
    out = _discrete.discrete_forward(to_numpy(_float32_copy(logits)), target_entropy, tau=tau, mode=mode)
    return _cast(from_numpy(out), logits.dtype)


@discrete_forward.register_fake
def _(logits, target_entropy, tau, mode, native_path):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


@torch.library.custom_op("era::discrete_backward", mutates_args=())
@_device_kernel
def discrete_backward(logits: Tensor, grad_out: Tensor, target_entropy: float, tau: float, mode: str,
                      native_path: bool) -> Tensor:
    """dL/d logits of discrete_forward."""
    return native.discrete_backward(logits, grad_out, target_entropy, tau, mode)


@_cpu_kernel(discrete_backward)
def _discrete_backward_cpu(logits, grad_out, target_entropy, tau, mode, native_path):
    if native_path:
        return native.discrete_backward(logits, grad_out, target_entropy, tau, mode)
    x = _float32_copy(logits)
    grad = _discrete.discrete_backward(to_numpy(x), to_numpy(_cast(grad_out, x.dtype)), target_entropy, tau=tau,
                                       mode=mode)
    return _cast(from_numpy(grad), logits.dtype)


@discrete_backward.register_fake
def _(logits, grad_out, target_entropy, tau, mode, native_path):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


# ---------------------------------------------------------------------------------------
# Entropies (no gradient)


def _rows_fake(x: Tensor, dtype: Optional[torch.dtype] = None) -> Tensor:
    return x.new_empty(x.shape[:-1], dtype=dtype or x.dtype)


@torch.library.custom_op("era::softmax_entropy", mutates_args=())
@_device_kernel
def softmax_entropy(logits: Tensor, native_path: bool) -> Tensor:
    """Entropy of softmax per row, nats, in the logits' dtype."""
    return native.softmax_entropy(logits)


@_cpu_kernel(softmax_entropy)
def _softmax_entropy_cpu(logits, native_path):
    if native_path:
        return native.softmax_entropy(logits)
    return _cast(from_numpy(_entropy.softmax_entropy(to_numpy(_float32_copy(logits)))), logits.dtype)


@softmax_entropy.register_fake
def _(logits, native_path):
    return _rows_fake(logits)


@torch.library.custom_op("era::gaussian_entropy", mutates_args=())
@_device_kernel
def gaussian_entropy(log_std: Tensor, native_path: bool) -> Tensor:
    """Diagonal-Gaussian entropy per row, nats, in log_std's dtype."""
    return native.gaussian_entropy(log_std)


@_cpu_kernel(gaussian_entropy)
def _gaussian_entropy_cpu(log_std, native_path):
    if native_path:
        return native.gaussian_entropy(log_std)
    return _cast(from_numpy(_entropy.gaussian_entropy(to_numpy(_float32_copy(log_std)))), log_std.dtype)


@gaussian_entropy.register_fake
def _(log_std, native_path):
    return _rows_fake(log_std)


@torch.library.custom_op("era::tanh_gaussian_entropy", mutates_args=())
@_device_kernel
def tanh_gaussian_entropy(mean: Tensor, log_std: Tensor) -> Tensor:
    """Entropy of tanh(N(mean, exp(log_std)^2)) per row by libera's quadrature. Tensors on
    other devices are copied to the CPU for it (a host synchronisation: a per-row metric)."""
    value = _entropy.tanh_gaussian_entropy(to_numpy(_float32_copy(mean.cpu())),
                                           to_numpy(_float32_copy(log_std.cpu())))
    return from_numpy(value).to(device=log_std.device, dtype=log_std.dtype)


@tanh_gaussian_entropy.register_fake
def _(mean, log_std):
    return _rows_fake(log_std)


@torch.library.custom_op("era::truncated_normal_entropy", mutates_args=())
@_device_kernel
def truncated_normal_entropy(loc: Tensor, log_std: Tensor, lo: float, hi: float) -> Tensor:
    """Entropy of N(loc, exp(log_std)^2) truncated to [lo, hi] per row: the device path's
    formulas on other devices, libera on the CPU."""
    return native.truncated_normal_entropy(loc, log_std, lo, hi)


@_cpu_kernel(truncated_normal_entropy)
def _truncated_normal_entropy_cpu(loc, log_std, lo, hi):
    value = _entropy.truncated_normal_entropy(to_numpy(_float32_copy(loc)), to_numpy(_float32_copy(log_std)), lo, hi)
    return from_numpy(value).to(dtype=log_std.dtype)


@truncated_normal_entropy.register_fake
def _(loc, log_std, lo, hi):
    return _rows_fake(log_std)


# ---------------------------------------------------------------------------------------
# LLM ERA


def _llm_float(logits: Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


@torch.library.custom_op("era::token_entropy", mutates_args=())
@_device_kernel
def token_entropy(logits: Tensor, native_path: bool) -> Tensor:
    """Entropy of softmax per token, -inf masked: float32 (float64 for float64 logits)."""
    return native.token_entropy(logits)


@_cpu_kernel(token_entropy)
def _token_entropy_cpu(logits, native_path):
    if native_path:
        return native.token_entropy(logits)
    if logits.dtype == torch.float16:
        logits = logits.float()
    out = torch.empty(logits.shape[:-1], dtype=_llm_float(logits))
    for index, block in row_blocks(logits):
        _llm.token_entropy(to_numpy(block), out=_at(out, index))
    return out


@token_entropy.register_fake
def _(logits, native_path):
    return _rows_fake(logits, _llm_float(logits))


def _sub(t: Tensor, index: Tuple[int, ...]) -> Tensor:
    """t[index] (t itself for the empty index: indexing costs a view)."""
    return t[index] if index else t


def _at(t: Optional[Tensor], index) -> Optional[np.ndarray]:
    """The numpy view of t[index], flat (what libera reads for the rows of one block)."""
    return None if t is None else to_numpy(_sub(t, index)).reshape(-1)


@torch.library.custom_op("era::llm_logprob_forward", mutates_args=())
@_device_kernel
def llm_logprob_forward(logits: Tensor, labels: Tensor, logit_scale: Optional[Tensor],
                        native_path: bool, top_k: int = 0) -> Tuple[Tensor, Tensor]:
    """(logp'_t, entropy of softmax(s_t z_t)) per token (math 3); top_k >= 1: the top-k
    log-prob (0: off)."""
    return native.logprob_forward(logits, labels, logit_scale, top_k)


@_cpu_kernel(llm_logprob_forward)
def _llm_logprob_forward_cpu(logits, labels, logit_scale, native_path, top_k=0):
    if native_path or logits.dtype == torch.float64:
        return native.logprob_forward(logits, labels, logit_scale, top_k)
    if logits.dtype == torch.float16:
        logits = logits.float()
    scale = None if logit_scale is None else _cast(logit_scale, torch.float32)
    logprob = torch.empty(logits.shape[:-1], dtype=torch.float32)
    entropy = torch.empty(logits.shape[:-1], dtype=torch.float32)
    for index, block in row_blocks(logits):
        _llm.llm_logprob_forward(to_numpy(block), _at(labels, index), _at(scale, index),
                                 out_logprob=_at(logprob, index), out_entropy=_at(entropy, index),
                                 top_k=top_k or None)
    return logprob, entropy


@llm_logprob_forward.register_fake
def _(logits, labels, logit_scale, native_path, top_k=0):
    return _rows_fake(logits, _llm_float(logits)), _rows_fake(logits, _llm_float(logits))


@torch.library.custom_op("era::llm_logprob_backward", mutates_args=())
@_device_kernel
def llm_logprob_backward(logits: Tensor, labels: Tensor, logit_scale: Optional[Tensor], grad_logprob: Tensor,
                         native_path: bool, top_k: int = 0) -> Tensor:
    """dL/d logits of ``sum_t grad_logprob[t] * logp'_t`` (s_t constant), the logits' dtype."""
    return native.logprob_backward(logits, labels, logit_scale, grad_logprob, top_k)


@_cpu_kernel(llm_logprob_backward)
def _llm_logprob_backward_cpu(logits, labels, logit_scale, grad_logprob, native_path, top_k=0):
    if native_path or logits.dtype == torch.float64:
        return native.logprob_backward(logits, labels, logit_scale, grad_logprob, top_k)
    source = logits
    if logits.dtype == torch.float16:
        logits = logits.float()
    scale = None if logit_scale is None else _cast(logit_scale, torch.float32)
    grad_logprob = _cast(grad_logprob, torch.float32)
    grad = torch.empty(logits.shape, dtype=logits.dtype)
    for index, block in row_blocks(logits):
        out = to_numpy(_sub(grad, index)).reshape(block.shape)
        _llm.llm_logprob_backward(to_numpy(block), _at(labels, index), _at(scale, index), _at(grad_logprob, index),
                                  out=out, top_k=top_k or None)
    return _cast(grad, source.dtype)


@llm_logprob_backward.register_fake
def _(logits, labels, logit_scale, grad_logprob, native_path, top_k=0):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


@torch.library.custom_op("era::llm_response_entropy", mutates_args=())
@_device_kernel
def llm_response_entropy(token_entropy: Tensor, response_id: Tensor, num_responses: int, top_fraction: float,
                         native_path: bool) -> Tensor:
    """``[R]`` response entropies: the mean of each response's top max(1, floor(f*L_b)) token
    entropies, NaN for a response without tokens."""
    native.check_llm_params(_llm.OMEGA_LOW, _llm.OMEGA_HIGH, _llm.K, top_fraction)
    return native.response_entropy(token_entropy, response_id, num_responses, top_fraction)


@_cpu_kernel(llm_response_entropy)
def _llm_response_entropy_cpu(token_entropy, response_id, num_responses, top_fraction, native_path):
    if native_path or token_entropy.dtype != torch.float32:
        native.check_llm_params(_llm.OMEGA_LOW, _llm.OMEGA_HIGH, _llm.K, top_fraction)
        return native.response_entropy(token_entropy, response_id, num_responses, top_fraction)
    out = _llm.llm_response_entropy(to_numpy(token_entropy), to_numpy(response_id), num_responses,
                                    top_fraction=top_fraction)
    return from_numpy(out)


@llm_response_entropy.register_fake
def _(token_entropy, response_id, num_responses, top_fraction, native_path):
    return token_entropy.new_empty((num_responses,))


@torch.library.custom_op("era::llm_scales", mutates_args=())
@_device_kernel
def llm_scales(response_entropy: Tensor, response_id: Tensor, advantages: Tensor, omega_low: float,
               omega_high: float, k: float, scale_advantages: bool, native_path: bool) -> Tuple[Tensor, Tensor]:
    """(logit scale s_t, advantage A'_t) per token, in the advantages' dtype."""
    native.check_llm_params(omega_low, omega_high, k, _llm.TOP_FRACTION)
    return native.scales(response_entropy, response_id, advantages, omega_low, omega_high, k, scale_advantages)


@_cpu_kernel(llm_scales)
def _llm_scales_cpu(response_entropy, response_id, advantages, omega_low, omega_high, k, scale_advantages, native_path):
    if native_path or advantages.dtype != torch.float32 or response_entropy.dtype != torch.float32:
        native.check_llm_params(omega_low, omega_high, k, _llm.TOP_FRACTION)
        return native.scales(response_entropy, response_id, advantages, omega_low, omega_high, k, scale_advantages)
    result = _llm.llm_scales(to_numpy(response_entropy), to_numpy(response_id), to_numpy(advantages),
                             omega_low=omega_low, omega_high=omega_high, k=k, scale_advantages=scale_advantages)
    return from_numpy(result.logit_scale), from_numpy(result.advantages)


@llm_scales.register_fake
def _(response_entropy, response_id, advantages, omega_low, omega_high, k, scale_advantages, native_path):
    return torch.empty_like(advantages, memory_format=torch.contiguous_format), \
        torch.empty_like(advantages, memory_format=torch.contiguous_format)


# ---------------------------------------------------------------------------------------
# Fused linear heads (docs/linear-heads.md): hidden states and an output weight in place of
# the logits. libera's kernels are float32: other dtypes take float32 copies on CPU
# (float64 takes the device path's chunked formulas, in float64).


def _linear_native(*tensors: Optional[Tensor]) -> bool:
    return any(t is not None and t.dtype == torch.float64 for t in tensors)


def _numpy32(t: Optional[Tensor]) -> Optional[np.ndarray]:
    return None if t is None else to_numpy(_cast(t, torch.float32))


@torch.library.custom_op("era::llm_linear_logprob_forward", mutates_args=())
@_device_kernel
def llm_linear_logprob_forward(hidden: Tensor, weight: Tensor, labels: Tensor, logit_scale: Optional[Tensor],
                               native_path: bool, top_k: int = 0) -> Tuple[Tensor, Tensor]:
    """(logp'_t, entropy of softmax(s_t z_t)) for z = hidden @ weight.T, without the logits;
    top_k >= 1: the top-k log-prob (0: off)."""
    return native.linear_logprob_forward(hidden, weight, labels, logit_scale, top_k)


@_cpu_kernel(llm_linear_logprob_forward)
def _llm_linear_logprob_forward_cpu(hidden, weight, labels, logit_scale, native_path, top_k=0):
    if native_path or _linear_native(hidden, weight):
        return native.linear_logprob_forward(hidden, weight, labels, logit_scale, top_k)
    result = _linear.llm_linear_logprob_forward(_numpy32(hidden), _numpy32(weight), to_numpy(labels),
                                                _numpy32(logit_scale), top_k=top_k or None)
    return from_numpy(result.logprob), from_numpy(result.entropy)


@llm_linear_logprob_forward.register_fake
def _(hidden, weight, labels, logit_scale, native_path, top_k=0):
    return _rows_fake(hidden, _llm_float(hidden)), _rows_fake(hidden, _llm_float(hidden))


@torch.library.custom_op("era::llm_linear_logprob_backward", mutates_args=())
@_device_kernel
def llm_linear_logprob_backward(hidden: Tensor, weight: Tensor, labels: Tensor, logit_scale: Optional[Tensor],
                                grad_logprob: Tensor, grad_hidden: bool, grad_weight: bool,
                                native_path: bool, top_k: int = 0) -> Tuple[Tensor, Tensor]:
    """(dL/d hidden, dL/d weight) of ``sum_t grad_logprob[t] * logp'_t``, each in its input's
    dtype, or an empty tensor where not asked for."""
    return native.linear_logprob_backward(hidden, weight, labels, logit_scale, grad_logprob, grad_hidden, grad_weight,
                                          top_k)


@_cpu_kernel(llm_linear_logprob_backward)
def _llm_linear_logprob_backward_cpu(hidden, weight, labels, logit_scale, grad_logprob, grad_hidden, grad_weight,
                                     native_path, top_k=0):
    if native_path or _linear_native(hidden, weight):
        return native.linear_logprob_backward(hidden, weight, labels, logit_scale, grad_logprob, grad_hidden,
                                              grad_weight, top_k)
    grads = _linear.llm_linear_logprob_backward(_numpy32(hidden), _numpy32(weight), to_numpy(labels),
                                                _numpy32(logit_scale), _numpy32(grad_logprob),
                                                grad_hidden=grad_hidden, grad_weight=grad_weight,
                                                top_k=top_k or None)
    out_h = hidden.new_empty(0) if grads.hidden is None else _cast(from_numpy(grads.hidden), hidden.dtype)
    out_w = weight.new_empty(0) if grads.weight is None else _cast(from_numpy(grads.weight), weight.dtype)
    return out_h, out_w


@llm_linear_logprob_backward.register_fake
def _(hidden, weight, labels, logit_scale, grad_logprob, grad_hidden, grad_weight, native_path, top_k=0):
    return (torch.empty_like(hidden, memory_format=torch.contiguous_format) if grad_hidden else hidden.new_empty(0),
            torch.empty_like(weight, memory_format=torch.contiguous_format) if grad_weight else weight.new_empty(0))


@torch.library.custom_op("era::linear_discrete_ce", mutates_args=())
@_device_kernel
def linear_discrete_ce(features: Tensor, weight: Tensor, bias: Optional[Tensor], labels: Tensor,
                       target_entropy: float, tau: float, mode: str, with_grads: bool,
                       native_path: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(mean cross-entropy of discrete ERA on features @ weight.T + bias, and when
    `with_grads` its gradients for features, weight and bias; empty tensors otherwise)."""
    return native.linear_discrete_ce(features, weight, bias, labels, target_entropy, tau, mode, with_grads)


@_cpu_kernel(linear_discrete_ce)
def _linear_discrete_ce_cpu(features, weight, bias, labels, target_entropy, tau, mode, with_grads, native_path):
    if native_path or _linear_native(features, weight, bias):
        return native.linear_discrete_ce(features, weight, bias, labels, target_entropy, tau, mode, with_grads)
    result = _linear.linear_discrete_ce(_numpy32(features), _numpy32(weight), _numpy32(bias), to_numpy(labels),
                                        target_entropy, tau=tau, mode=mode, grads=with_grads)
    loss = torch.tensor(result.loss, dtype=torch.float32)
    empty = features.new_empty(0)
    if not with_grads:
        return loss, empty, empty, empty
    grad_b = empty if result.bias is None else _cast(from_numpy(result.bias), bias.dtype)
    return (loss, _cast(from_numpy(result.features), features.dtype), _cast(from_numpy(result.weight), weight.dtype),
            grad_b)


@linear_discrete_ce.register_fake
def _(features, weight, bias, labels, target_entropy, tau, mode, with_grads, native_path):
    loss = features.new_empty((), dtype=_llm_float(features))
    empty = features.new_empty(0)
    if not with_grads:
        return loss, empty, empty, empty
    grad_b = empty if bias is None else torch.empty_like(bias, memory_format=torch.contiguous_format)
    return (loss, torch.empty_like(features, memory_format=torch.contiguous_format),
            torch.empty_like(weight, memory_format=torch.contiguous_format), grad_b)


@torch.library.custom_op("era::linear_ce_upstream", mutates_args=())
@_device_kernel
def linear_ce_upstream(grad_loss: Tensor, grad_x: Tensor, grad_w: Tensor, grad_b: Tensor,
                       native_path: bool) -> Tensor:
    """The upstream gradient of linear_discrete_ce's loss, checked before it scales the saved
    gradients (a non-finite one is NON_FINITE, an overflowing product BAD_PARAMETER; the
    device path reports by set_device_checks): a copy, NaN when refused."""
    return native.linear_ce_upstream(grad_loss, (grad_x, grad_w, grad_b))


@_cpu_kernel(linear_ce_upstream)
def _linear_ce_upstream_cpu(grad_loss, grad_x, grad_w, grad_b, native_path):
    return native.linear_ce_upstream(grad_loss, (grad_x, grad_w, grad_b), device_checks=native_path)


@linear_ce_upstream.register_fake
def _(grad_loss, grad_x, grad_w, grad_b, native_path):
    return torch.empty_like(grad_loss)


# ---------------------------------------------------------------------------------------
# vmap: row-wise operators fold the vmapped axis into their rows


def _loop_vmap(op, info, in_dims, args):
    """The operator once per example, stacked: for arguments that cannot be folded into rows
    (a vmapped residual, response ids whose meaning is per example)."""
    results = []
    for b in range(info.batch_size):
        sliced = [a.select(d, b) if d is not None else a for a, d in zip(args, in_dims)]
        results.append(op(*sliced))
    if isinstance(results[0], tuple):
        out = tuple(torch.stack([r[i] for r in results]) for i in range(len(results[0])))
        return out, (0,) * len(out)
    return torch.stack(results), 0


def _register_rowwise_vmap(op, rows: Tuple[int, ...], whole: Tuple[int, ...] = ()):
    """A vmap rule for `op`: the tensor arguments at `rows` share the rows of the first one;
    the vmapped axis moves to the front of each (unbatched ones are expanded) and becomes one
    more leading axis. A vmapped argument at `whole` (one value per call) makes it loop."""

    def rule(info, in_dims, *args):
        if any(in_dims[i] is not None for i in whole):
            return _loop_vmap(op, info, in_dims, args)
        args = list(args)
        for i in rows:
            if args[i] is None:
                continue
            if in_dims[i] is None:
                args[i] = args[i].expand(info.batch_size, *args[i].shape)
            else:
                args[i] = args[i].movedim(in_dims[i], 0)
        out = op(*args)
        return out, ((0,) * len(out) if isinstance(out, tuple) else 0)

    torch.library.register_vmap(op, rule)


def _register_loop_vmap(op):
    torch.library.register_vmap(op, lambda info, in_dims, *args: _loop_vmap(op, info, in_dims, args))


_register_rowwise_vmap(continuous_forward, rows=(0,), whole=(1,))
_register_rowwise_vmap(continuous_backward, rows=(0, 2), whole=(1,))
_register_rowwise_vmap(discrete_forward, rows=(0,))
_register_rowwise_vmap(discrete_backward, rows=(0, 1))
_register_rowwise_vmap(softmax_entropy, rows=(0,))
_register_rowwise_vmap(gaussian_entropy, rows=(0,))
_register_rowwise_vmap(tanh_gaussian_entropy, rows=(0, 1))
_register_rowwise_vmap(truncated_normal_entropy, rows=(0, 1))
_register_rowwise_vmap(token_entropy, rows=(0,))
_register_rowwise_vmap(llm_logprob_forward, rows=(0, 1, 2))
_register_rowwise_vmap(llm_logprob_backward, rows=(0, 1, 2, 3))
for _op in (llm_response_entropy, llm_scales, llm_linear_logprob_forward, llm_linear_logprob_backward,
            linear_discrete_ce, linear_ce_upstream):
    _register_loop_vmap(_op)


# ---------------------------------------------------------------------------------------
# Autograd: backward operators, and double backward through the shared formulas


def _vjp(fn, primals, cotangents):
    """The vector-Jacobian product of a formula, itself differentiable (torch.func.vjp)."""
    _, pullback = torch.func.vjp(fn, *primals)
    return pullback(cotangents)


def _zeros_for(grad: Optional[Tensor], like: Tensor, dtype: Optional[torch.dtype] = None) -> Tensor:
    return grad if grad is not None else torch.zeros(like.shape, dtype=dtype or like.dtype, device=like.device)


# Each ERA function has two autograd.Function classes sharing one backward: XFunction (new
# style, setup_context and generate_vmap_rule: what torch.func, torch.compile and torch.export
# need) calls the operators; EagerX (old style, for eager calls, see `eager`) runs their
# kernels directly. A plain backward runs the backward kernel; with create_graph=True (grad
# mode on in the backward) it goes through the backward operator's Function, whose own
# backward differentiates the shared formula.


def _continuous_vjp(ctx, grad_log_std, std_logits, residual, backward):
    grad, grad_rows = backward(std_logits, residual, grad_log_std, *ctx.params)
    grad_residual = None
    if residual is not None and ctx.needs_input_grad[1]:
        grad_residual = _cast(grad_rows.sum(), residual.dtype)
        if grad_residual.shape != residual.shape:
            grad_residual = grad_residual.reshape(residual.shape)
    return grad if ctx.needs_input_grad[0] else None, grad_residual, None, None, None, None


def _continuous_backward(*args):
    if torch.is_grad_enabled():
        return ContinuousBackwardFunction.apply(*args)
    return call(continuous_backward, *args)


class ContinuousERAFunction(torch.autograd.Function):
    """continuous_forward with its backward operator; the residual's gradient is the sum of
    the per-row gradients, in the residual's dtype and shape."""

    generate_vmap_rule = True

    @staticmethod
    def forward(std_logits, residual, target_entropy, log_std_min, log_std_max, native_path):
        return continuous_forward(std_logits, residual, target_entropy, log_std_min, log_std_max, native_path)

    @staticmethod
    def setup_context(ctx, inputs, output):
        std_logits, residual, *params = inputs
        ctx.save_for_backward(std_logits, residual)
        ctx.params = params

    @staticmethod
    def backward(ctx, grad_log_std):
        std_logits, residual = ctx.saved_tensors
        return _continuous_vjp(ctx, grad_log_std, std_logits, residual, _continuous_backward)


class EagerContinuous(torch.autograd.Function):
    """The eager twin of ContinuousERAFunction. The residual is kept by reference, not saved:
    a module may project its residual parameter in place (ERAContinuous) before the backward
    of an earlier call runs, which would fail a saved tensor's version check; the backward
    reads its value, which such a projection leaves alone inside the feasible range."""

    @staticmethod
    def forward(ctx, std_logits, residual, target_entropy, log_std_min, log_std_max, native_path):
        ctx.save_for_backward(std_logits)
        ctx.residual = residual
        ctx.params = [target_entropy, log_std_min, log_std_max, native_path]
        return run(continuous_forward, std_logits, residual, target_entropy, log_std_min, log_std_max, native_path)

    @staticmethod
    def backward(ctx, grad_log_std):
        (std_logits,) = ctx.saved_tensors
        return _continuous_vjp(ctx, grad_log_std, std_logits, ctx.residual, _continuous_backward)


class ContinuousBackwardFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(std_logits, residual, grad_log_std, target_entropy, log_std_min, log_std_max, native_path):
        return continuous_backward(std_logits, residual, grad_log_std, target_entropy, log_std_min, log_std_max,
                                   native_path)

    @staticmethod
    def setup_context(ctx, inputs, output):
        std_logits, residual, grad_log_std, target_entropy, log_std_min, log_std_max, _ = inputs
        ctx.save_for_backward(std_logits, residual, grad_log_std)
        ctx.params = (target_entropy, log_std_min, log_std_max)

    @staticmethod
    def backward(ctx, v_grad, v_rows):
        std_logits, residual, grad_log_std = ctx.saved_tensors
        target_entropy, log_std_min, log_std_max = ctx.params

        def formula(s, g, r):
            wide = s.to(F.compute_dtype(native.OPS, s))
            k = F.continuous_offset(s.shape[-1], target_entropy, log_std_max)
            if r is not None:
                k = k + r.to(wide)
            grad, rows = F.continuous_backward(native.OPS, wide, g.to(wide.dtype), k, log_std_min, log_std_max)
            return grad.to(s.dtype), rows.to(torch.float64)

        cotangents = (_zeros_for(v_grad, std_logits), _zeros_for(v_rows, std_logits[..., 0], torch.float64))
        if residual is None:
            ds, dg = _vjp(lambda s, g: formula(s, g, None), (std_logits, grad_log_std), cotangents)
            dr = None
        else:
            ds, dg, dr = _vjp(formula, (std_logits, grad_log_std, residual), cotangents)
        return ds, dr, dg, None, None, None, None


def _discrete_backward(*args):
    if torch.is_grad_enabled():
        return DiscreteBackwardFunction.apply(*args)
    return call(discrete_backward, *args)


class DiscreteERAFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(logits, target_entropy, tau, mode, native_path):
        return discrete_forward(logits, target_entropy, tau, mode, native_path)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.params = inputs[1:]

    @staticmethod
    def backward(ctx, grad_out):
        (logits,) = ctx.saved_tensors
        return _discrete_backward(logits, grad_out, *ctx.params), None, None, None, None


class EagerDiscrete(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target_entropy, tau, mode, native_path):
        DiscreteERAFunction.setup_context(ctx, (logits, target_entropy, tau, mode, native_path), None)
        return run(discrete_forward, logits, target_entropy, tau, mode, native_path)

    backward = staticmethod(DiscreteERAFunction.backward)


class DiscreteBackwardFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(logits, grad_out, target_entropy, tau, mode, native_path):
        return discrete_backward(logits, grad_out, target_entropy, tau, mode, native_path)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.params = inputs[2:5]

    @staticmethod
    def backward(ctx, v):
        logits, grad_out = ctx.saved_tensors
        target_entropy, tau, mode = ctx.params
        a, b = native.discrete_slope_offset(int(logits.shape[-1]), target_entropy, tau, mode)

        def formula(z, g):
            wide = z.to(F.compute_dtype(native.OPS, z))
            return F.discrete_backward(native.OPS, wide, g.to(wide.dtype), a, b, tau, mode).to(z.dtype)

        dz, dg = _vjp(formula, (logits, grad_out), v)
        return dz, dg, None, None, None, None


def _logprob_backward(*args):
    if torch.is_grad_enabled():
        return LLMLogprobBackwardFunction.apply(*args)
    return call(llm_logprob_backward, *args)


class LLMLogprobFunction(torch.autograd.Function):
    """llm_logprob_forward: the log-probs are differentiable in the logits (the scales are
    constants), the entropies are not."""

    generate_vmap_rule = True

    @staticmethod
    def forward(logits, labels, logit_scale, native_path, top_k=0):
        return llm_logprob_forward(logits, labels, logit_scale, native_path, top_k)

    @staticmethod
    def setup_context(ctx, inputs, output):
        logits, labels, logit_scale, native_path = inputs[:4]
        ctx.save_for_backward(logits, labels, logit_scale)
        ctx.native_path = native_path
        ctx.top_k = inputs[4] if len(inputs) > 4 else 0
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad_logprob, _grad_entropy):
        logits, labels, logit_scale = ctx.saved_tensors
        grad = _logprob_backward(logits, labels, logit_scale, grad_logprob, ctx.native_path, ctx.top_k)
        return grad, None, None, None, None


class EagerLLMLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, logit_scale, native_path, top_k=0):
        output = run(llm_logprob_forward, logits, labels, logit_scale, native_path, top_k)
        LLMLogprobFunction.setup_context(ctx, (logits, labels, logit_scale, native_path, top_k), output)
        return output

    backward = staticmethod(LLMLogprobFunction.backward)


class LLMLogprobBackwardFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(logits, labels, logit_scale, grad_logprob, native_path, top_k):
        return llm_logprob_backward(logits, labels, logit_scale, grad_logprob, native_path, top_k)

    @staticmethod
    def setup_context(ctx, inputs, output):
        logits, labels, logit_scale, grad_logprob, _, top_k = inputs
        ctx.save_for_backward(logits, labels, logit_scale, grad_logprob)
        ctx.top_k = top_k

    @staticmethod
    def backward(ctx, v):
        logits, labels, logit_scale, grad_logprob = ctx.saved_tensors
        top_k = ctx.top_k

        def formula(x, g):
            wide = x.to(F.compute_dtype(native.OPS, x, llm=True))
            scale = None if logit_scale is None else logit_scale.to(wide.dtype)
            if top_k >= 1:
                return F.topk_logprob_backward(native.OPS, wide, labels, scale, g.to(wide.dtype), top_k).to(x.dtype)
            return F.logprob_backward(native.OPS, wide, labels, scale, g.to(wide.dtype)).to(x.dtype)

        dx, dg = _vjp(formula, (logits, grad_logprob), v)
        return dx, None, None, dg, None, None


def _linear_logprob_backward(*args):
    if torch.is_grad_enabled():
        return LinearLogprobBackwardFunction.apply(*args)
    return call(llm_linear_logprob_backward, *args)


class LinearLogprobFunction(torch.autograd.Function):
    """llm_linear_logprob_forward: the log-probs are differentiable in hidden and weight."""

    generate_vmap_rule = True

    @staticmethod
    def forward(hidden, weight, labels, logit_scale, native_path, top_k=0):
        return llm_linear_logprob_forward(hidden, weight, labels, logit_scale, native_path, top_k)

    @staticmethod
    def setup_context(ctx, inputs, output):
        hidden, weight, labels, logit_scale, native_path = inputs[:5]
        ctx.save_for_backward(hidden, weight, labels, logit_scale)
        ctx.native_path = native_path
        ctx.top_k = inputs[5] if len(inputs) > 5 else 0
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad_logprob, _grad_entropy):
        hidden, weight, labels, logit_scale = ctx.saved_tensors
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h, grad_w = _linear_logprob_backward(hidden, weight, labels, logit_scale, grad_logprob, want_h, want_w,
                                                  ctx.native_path, ctx.top_k)
        return grad_h if want_h else None, grad_w if want_w else None, None, None, None, None


class EagerLinearLogprob(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, logit_scale, native_path, top_k=0):
        output = run(llm_linear_logprob_forward, hidden, weight, labels, logit_scale, native_path, top_k)
        LinearLogprobFunction.setup_context(ctx, (hidden, weight, labels, logit_scale, native_path, top_k), output)
        return output

    backward = staticmethod(LinearLogprobFunction.backward)


class LinearLogprobBackwardFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(hidden, weight, labels, logit_scale, grad_logprob, grad_hidden, grad_weight, native_path, top_k):
        return llm_linear_logprob_backward(hidden, weight, labels, logit_scale, grad_logprob, grad_hidden,
                                           grad_weight, native_path, top_k)

    @staticmethod
    def setup_context(ctx, inputs, output):
        hidden, weight, labels, logit_scale, grad_logprob, grad_hidden, grad_weight, _, top_k = inputs
        ctx.save_for_backward(hidden, weight, labels, logit_scale, grad_logprob)
        ctx.wanted = (grad_hidden, grad_weight)
        ctx.top_k = top_k

    @staticmethod
    def backward(ctx, v_hidden, v_weight):
        hidden, weight, labels, logit_scale, grad_logprob = ctx.saved_tensors
        want_h, want_w = ctx.wanted
        top_k = ctx.top_k

        def formula(h, w, g):
            wide = _llm_float(h)
            x, m = h.reshape(-1, h.shape[-1]).to(wide), w.to(wide)
            scale = None if logit_scale is None else logit_scale.reshape(-1).to(wide)
            if top_k >= 1:
                dz = F.topk_logprob_backward(native.OPS, x @ m.T, labels.reshape(-1), scale, g.reshape(-1).to(wide),
                                             top_k)
            else:
                dz = F.logprob_backward(native.OPS, x @ m.T, labels.reshape(-1), scale, g.reshape(-1).to(wide))
            grads = []
            if want_h:
                grads.append((dz @ m).to(h.dtype).reshape(h.shape))
            if want_w:
                grads.append((dz.T @ x).to(w.dtype))
            return tuple(grads)

        cotangents = tuple(v for v, wanted in ((v_hidden, want_h), (v_weight, want_w)) if wanted)
        dh, dw, dg = _vjp(formula, (hidden, weight, grad_logprob), cotangents)
        return dh, dw, None, None, dg, None, None, None, None


class LinearCEFunction(torch.autograd.Function):
    """linear_discrete_ce: the loss, with the gradients libera computes in the same call
    saved for the backward (non-differentiable outputs)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(features, weight, bias, labels, target_entropy, tau, mode, with_grads, native_path):
        return linear_discrete_ce(features, weight, bias, labels, target_entropy, tau, mode, with_grads, native_path)

    @staticmethod
    def setup_context(ctx, inputs, output):
        features, weight, bias, labels, target_entropy, tau, mode, _, native_path = inputs
        ctx.save_for_backward(features, weight, bias, labels, *output[1:])
        ctx.params = (target_entropy, tau, mode, native_path)
        ctx.mark_non_differentiable(*output[1:])

    @staticmethod
    def backward(ctx, grad_loss, *_):
        features, weight, bias, labels, grad_x, grad_w, grad_b = ctx.saved_tensors
        target_entropy, tau, mode, native_path = ctx.params
        if torch.is_grad_enabled():  # create_graph: the gradients as functions of the inputs
            grad_x, grad_w, grad_b = LinearCEGradFunction.apply(features, weight, bias, labels, target_entropy, tau,
                                                                mode, native_path)
        grad_loss = LinearCEUpstreamFunction.apply(grad_loss, grad_x, grad_w, grad_b, native_path)
        needs = ctx.needs_input_grad
        return (grad_loss * grad_x if needs[0] else None, grad_loss * grad_w if needs[1] else None,
                grad_loss * grad_b if needs[2] else None, None, None, None, None, None, None)


class LinearCEUpstreamFunction(torch.autograd.Function):
    """linear_ce_upstream; its derivative passes the gradient through (a double backward
    differentiates the scaling, grad_loss * saved gradient, not the check)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad_loss, grad_x, grad_w, grad_b, native_path):
        return call(linear_ce_upstream, grad_loss, grad_x, grad_w, grad_b, native_path)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None, None


class EagerLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, weight, bias, labels, target_entropy, tau, mode, with_grads, native_path):
        output = run(linear_discrete_ce, features, weight, bias, labels, target_entropy, tau, mode, with_grads,
                     native_path)
        LinearCEFunction.setup_context(ctx, (features, weight, bias, labels, target_entropy, tau, mode, with_grads,
                                             native_path), output)
        return output

    backward = staticmethod(LinearCEFunction.backward)


class LinearCEGradFunction(torch.autograd.Function):
    """The classification head's gradients as a differentiable function of its inputs (for
    double backward): libera's values, and the backward of the shared formula."""

    generate_vmap_rule = True

    @staticmethod
    def forward(features, weight, bias, labels, target_entropy, tau, mode, native_path):
        _, grad_x, grad_w, grad_b = linear_discrete_ce(features, weight, bias, labels, target_entropy, tau, mode,
                                                       True, native_path)
        return grad_x, grad_w, grad_b

    @staticmethod
    def setup_context(ctx, inputs, output):
        features, weight, bias, labels, target_entropy, tau, mode, _ = inputs
        ctx.save_for_backward(features, weight, bias, labels)
        ctx.params = (target_entropy, tau, mode)

    @staticmethod
    def backward(ctx, v_x, v_w, v_b):
        features, weight, bias, labels = ctx.saved_tensors
        target_entropy, tau, mode = ctx.params
        classes = int(weight.shape[0])
        a, b = native.discrete_slope_offset(classes, target_entropy, tau, mode)

        def loss(x, w, *bias_):
            wide = F.compute_dtype(native.OPS, x)
            z = x.reshape(-1, x.shape[-1]).to(wide) @ w.to(wide).T
            if bias_:
                z = z + bias_[0].to(wide)
            t = F.discrete_forward(native.OPS, z, a, b, tau, mode)
            return (torch.logsumexp(t, -1) - native.OPS.take(t, labels.reshape(-1))).mean()

        primals = (features, weight) if bias is None else (features, weight, bias)
        cotangents = (v_x, v_w) if bias is None else (v_x, v_w, v_b)

        def grads(*inputs):
            values = torch.func.grad(loss, argnums=tuple(range(len(inputs))))(*inputs)
            return tuple(g.to(p.dtype) for g, p in zip(values, inputs))

        result = _vjp(grads, primals, cotangents)
        return result[0], result[1], result[2] if bias is not None else None, None, None, None, None, None


def apply(traced, eager_function, *args):
    """An ERA function's autograd.Function: the eager one when the call is eager."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    return (eager_function if eager(*tensors) else traced).apply(*args)


def _register_autograd(op, function):
    torch.library.register_autograd(op, function.backward, setup_context=function.setup_context)


_register_autograd(linear_ce_upstream, LinearCEUpstreamFunction)
_register_autograd(continuous_forward, ContinuousERAFunction)
_register_autograd(continuous_backward, ContinuousBackwardFunction)
_register_autograd(discrete_forward, DiscreteERAFunction)
_register_autograd(discrete_backward, DiscreteBackwardFunction)
_register_autograd(llm_logprob_forward, LLMLogprobFunction)
_register_autograd(llm_logprob_backward, LLMLogprobBackwardFunction)
_register_autograd(llm_linear_logprob_forward, LinearLogprobFunction)
_register_autograd(llm_linear_logprob_backward, LinearLogprobBackwardFunction)
_register_autograd(linear_discrete_ce, LinearCEFunction)

# Autocast follows softmax: CUDA's autocast runs softmax in float32, CPU's leaves it alone.
for _op in (continuous_forward, discrete_forward, softmax_entropy, gaussian_entropy, tanh_gaussian_entropy,
            truncated_normal_entropy):
    torch.library.register_autocast(_op, "cuda", torch.float32)

OPERATORS = (
    continuous_forward, continuous_backward, discrete_forward, discrete_backward, softmax_entropy,
    gaussian_entropy, tanh_gaussian_entropy, truncated_normal_entropy, token_entropy, llm_logprob_forward,
    llm_logprob_backward, llm_response_entropy, llm_scales, llm_linear_logprob_forward, llm_linear_logprob_backward,
    linear_discrete_ce,
)


# ---------------------------------------------------------------------------------------
# The truncated-normal policy (math 6.2): element-wise operators over tensors of one shape.
# CPU: libera (float32 and float64 kernels; half precision through float32); other devices,
# or native_path: the formulas of era._formulas in float64. The sample's gradient is the
# reparameterisation gradient at the sample itself; the backward operators have no
# derivatives of their own (no double backward).


def _tn_numpy(t: Tensor, dtype: torch.dtype) -> np.ndarray:
    return to_numpy(t.to(dtype).contiguous())


def _tn_compute_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _tn_libera(fn, *tensors: Tensor, lo: float, hi: float):
    """The CPU path of a truncated-normal operator: the era.truncnorm function `fn` on the
    tensors as numpy arrays of one compute dtype; its array (or arrays, in order) back as
    tensors of the first tensor's dtype."""
    dtype = tensors[0].dtype
    dt = _tn_compute_dtype(tensors[0])
    out = fn(*(_tn_numpy(t, dt) for t in tensors), lo, hi)

    def back(a):
        return from_numpy(np.ascontiguousarray(a)).to(dtype)

    return back(out) if isinstance(out, np.ndarray) else tuple(back(a) for a in out)


def _tn_native(fn, *tensors: Tensor, lo: float, hi: float, third: Optional[str] = None):
    """The device path of a truncated-normal operator. The interval is checked on the host by
    libera (on no elements), as every device path checks its parameters; the values on the
    device, without a host read: an element with a non-finite input gets NON_FINITE, a uniform
    outside (0, 1) (third="uniform") or a sample outside [lo, hi] (third="sample")
    BAD_PARAMETER, as libera would answer; their outputs are NaN and the codes go to
    era.torch._checks (raised at once for CPU tensors, deferred on other devices)."""
    where = f"era.torch.native.{fn.__name__}"
    empty = np.zeros(0)
    _truncnorm.truncated_normal_log_prob(empty, empty, empty, lo, hi)  # BadParameterError for the interval
    wide = [t.to(torch.float64) for t in tensors]
    finite = torch.ones_like(wide[0], dtype=torch.bool)
    for t in wide:
        finite = finite & torch.isfinite(t)
    faults = torch.where(finite, 0, F.NON_FINITE).to(torch.int32)
    if third is not None:
        v = wide[2]
        outside = (v <= 0) | (v >= 1) if third == "uniform" else (v < lo) | (v > hi)
        faults = torch.where((faults == 0) & outside, F.BAD_PARAMETER, faults).to(torch.int32)
    _checks.record(faults, where)
    out = fn(native.OPS, *wide, lo, hi)
    dtype = tensors[0].dtype

    def poisoned(o):
        return torch.where(faults != 0, torch.full_like(o, math.nan), o).to(dtype)

    return poisoned(out) if isinstance(out, Tensor) else tuple(poisoned(o) for o in out)


@torch.library.custom_op("era::truncated_normal_sample", mutates_args=())
@_device_kernel
def truncated_normal_sample(loc: Tensor, log_std: Tensor, uniform: Tensor, lo: float, hi: float,
                            native_path: bool) -> Tensor:
    """Samples of N(loc, exp(log_std)^2) truncated to [lo, hi] at the uniforms (0 < u < 1)."""
    return _tn_native(F.truncated_normal_sample, loc, log_std, uniform, lo=lo, hi=hi, third="uniform")


@_cpu_kernel(truncated_normal_sample)
def _truncated_normal_sample_cpu(loc, log_std, uniform, lo, hi, native_path):
    if native_path:
        return _tn_native(F.truncated_normal_sample, loc, log_std, uniform, lo=lo, hi=hi, third="uniform")
    return _tn_libera(_truncnorm.truncated_normal_sample, loc, log_std, uniform, lo=lo, hi=hi)


@truncated_normal_sample.register_fake
def _(loc, log_std, uniform, lo, hi, native_path):
    return torch.empty_like(loc, memory_format=torch.contiguous_format)


@torch.library.custom_op("era::truncated_normal_sample_backward", mutates_args=())
@_device_kernel
def truncated_normal_sample_backward(loc: Tensor, log_std: Tensor, sample: Tensor, grad_sample: Tensor, lo: float,
                                     hi: float, native_path: bool) -> Tuple[Tensor, Tensor]:
    """(dL/dloc, dL/dlog_std) of truncated_normal_sample at its output."""
    return _tn_native(F.truncated_normal_sample_backward, loc, log_std, sample, grad_sample, lo=lo, hi=hi,
                      third="sample")


@_cpu_kernel(truncated_normal_sample_backward)
def _truncated_normal_sample_backward_cpu(loc, log_std, sample, grad_sample, lo, hi, native_path):
    if native_path:
        return _tn_native(F.truncated_normal_sample_backward, loc, log_std, sample, grad_sample, lo=lo, hi=hi,
                      third="sample")
    return _tn_libera(_truncnorm.truncated_normal_sample_backward, loc, log_std, sample, grad_sample, lo=lo, hi=hi)


@truncated_normal_sample_backward.register_fake
def _(loc, log_std, sample, grad_sample, lo, hi, native_path):
    return (torch.empty_like(loc, memory_format=torch.contiguous_format),
            torch.empty_like(loc, memory_format=torch.contiguous_format))


@torch.library.custom_op("era::truncated_normal_log_prob", mutates_args=())
@_device_kernel
def truncated_normal_log_prob(loc: Tensor, log_std: Tensor, x: Tensor, lo: float, hi: float,
                              native_path: bool) -> Tensor:
    """log p(x) per element, -inf outside [lo, hi]."""
    return _tn_native(F.truncated_normal_log_prob, loc, log_std, x, lo=lo, hi=hi)


@_cpu_kernel(truncated_normal_log_prob)
def _truncated_normal_log_prob_cpu(loc, log_std, x, lo, hi, native_path):
    if native_path:
        return _tn_native(F.truncated_normal_log_prob, loc, log_std, x, lo=lo, hi=hi)
    return _tn_libera(_truncnorm.truncated_normal_log_prob, loc, log_std, x, lo=lo, hi=hi)


@truncated_normal_log_prob.register_fake
def _(loc, log_std, x, lo, hi, native_path):
    return torch.empty_like(loc, memory_format=torch.contiguous_format)


@torch.library.custom_op("era::truncated_normal_log_prob_backward", mutates_args=())
@_device_kernel
def truncated_normal_log_prob_backward(loc: Tensor, log_std: Tensor, x: Tensor, grad_log_prob: Tensor, lo: float,
                                       hi: float, native_path: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """(dL/dx, dL/dloc, dL/dlog_std) of truncated_normal_log_prob."""
    return _tn_native(F.truncated_normal_log_prob_backward, loc, log_std, x, grad_log_prob, lo=lo, hi=hi)


@_cpu_kernel(truncated_normal_log_prob_backward)
def _truncated_normal_log_prob_backward_cpu(loc, log_std, x, grad_log_prob, lo, hi, native_path):
    if native_path:
        return _tn_native(F.truncated_normal_log_prob_backward, loc, log_std, x, grad_log_prob, lo=lo, hi=hi)
    return _tn_libera(_truncnorm.truncated_normal_log_prob_backward, loc, log_std, x, grad_log_prob, lo=lo, hi=hi)


@truncated_normal_log_prob_backward.register_fake
def _(loc, log_std, x, grad_log_prob, lo, hi, native_path):
    return tuple(torch.empty_like(loc, memory_format=torch.contiguous_format) for _ in range(3))


def _tn_sample_setup(ctx, inputs, output):
    loc, log_std, _, lo, hi, native_path = inputs
    ctx.save_for_backward(loc, log_std, output)
    ctx.args = (lo, hi, native_path)


def _tn_sample_backward(ctx, grad):
    loc, log_std, sample = ctx.saved_tensors
    grad_loc, grad_log_std = truncated_normal_sample_backward(loc, log_std, sample, grad.contiguous(), *ctx.args)
    return grad_loc, grad_log_std, None, None, None, None


def _tn_log_prob_setup(ctx, inputs, output):
    loc, log_std, x, lo, hi, native_path = inputs
    ctx.save_for_backward(loc, log_std, x)
    ctx.args = (lo, hi, native_path)


def _tn_log_prob_backward(ctx, grad):
    loc, log_std, x = ctx.saved_tensors
    grad_x, grad_loc, grad_log_std = truncated_normal_log_prob_backward(loc, log_std, x, grad.contiguous(), *ctx.args)
    return grad_loc, grad_log_std, grad_x, None, None, None


torch.library.register_autograd(truncated_normal_sample, _tn_sample_backward, setup_context=_tn_sample_setup)
torch.library.register_autograd(truncated_normal_log_prob, _tn_log_prob_backward, setup_context=_tn_log_prob_setup)


class TruncatedNormalSampleFunction(torch.autograd.Function):
    """truncated_normal_sample with the same backward, as era.torch.TruncatedNormal calls it:
    an autograd.Function with setup_context, so that torch.func (grad, vmap, jacrev) works."""

    generate_vmap_rule = True

    @staticmethod
    def forward(loc, log_std, uniform, lo, hi, native_path):
        return truncated_normal_sample(loc, log_std, uniform, lo, hi, native_path)

    setup_context = staticmethod(_tn_sample_setup)
    backward = staticmethod(_tn_sample_backward)


class TruncatedNormalLogProbFunction(torch.autograd.Function):
    """truncated_normal_log_prob with the same backward (see TruncatedNormalSampleFunction)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(loc, log_std, x, lo, hi, native_path):
        return truncated_normal_log_prob(loc, log_std, x, lo, hi, native_path)

    setup_context = staticmethod(_tn_log_prob_setup)
    backward = staticmethod(_tn_log_prob_backward)

TRUNCATED_NORMAL_OPERATORS = (truncated_normal_sample, truncated_normal_sample_backward, truncated_normal_log_prob,
                              truncated_normal_log_prob_backward)
# Element-wise: under vmap every tensor argument takes the vmapped axis in front.
_register_rowwise_vmap(truncated_normal_sample, rows=(0, 1, 2))
_register_rowwise_vmap(truncated_normal_sample_backward, rows=(0, 1, 2, 3))
_register_rowwise_vmap(truncated_normal_log_prob, rows=(0, 1, 2))
_register_rowwise_vmap(truncated_normal_log_prob_backward, rows=(0, 1, 2, 3))

# The truncated-normal entropy gradient and the sampled floor (docs/math.md, "The sampled
# floor"): libera on CPU tensors, the device path (era.torch.native, era._formulas) on other
# devices and with native_path. Their backward operators have no derivative of their own.

from .. import sampled_floor as _sampled  # noqa: E402


@torch.library.custom_op("era::truncated_normal_entropy_backward", mutates_args=())
@_device_kernel
def truncated_normal_entropy_backward(loc: Tensor, log_std: Tensor, grad_entropy: Tensor, lo: float,
                                      hi: float) -> Tuple[Tensor, Tensor]:
    """(dL/d loc, dL/d log_std) of truncated_normal_entropy, in log_std's dtype."""
    return native.truncated_normal_entropy_backward(loc, log_std, grad_entropy, lo, hi)


@_cpu_kernel(truncated_normal_entropy_backward)
def _truncated_normal_entropy_backward_cpu(loc, log_std, grad_entropy, lo, hi):
    x = _float32_copy(log_std)
    grads = _sampled.truncated_normal_entropy_backward(to_numpy(_cast(loc, x.dtype)), to_numpy(x),
                                                       to_numpy(_cast(grad_entropy, x.dtype)), lo, hi)
    return from_numpy(grads.loc).to(dtype=log_std.dtype), from_numpy(grads.log_std).to(dtype=log_std.dtype)


@truncated_normal_entropy_backward.register_fake
def _(loc, log_std, grad_entropy, lo, hi):
    return torch.empty_like(log_std, memory_format=torch.contiguous_format), \
        torch.empty_like(log_std, memory_format=torch.contiguous_format)


def _truncated_entropy_setup(ctx, inputs, output):
    loc, log_std, lo, hi = inputs
    ctx.save_for_backward(loc, log_std)
    ctx.interval = (lo, hi)


def _truncated_entropy_backward(ctx, grad):
    loc, log_std = ctx.saved_tensors
    grad_loc, grad_log_std = truncated_normal_entropy_backward(loc, log_std, grad.contiguous(), *ctx.interval)
    return _cast(grad_loc, loc.dtype), grad_log_std, None, None


torch.library.register_autograd(truncated_normal_entropy, _truncated_entropy_backward,
                                setup_context=_truncated_entropy_setup)


@torch.library.custom_op("era::continuous_truncated_forward", mutates_args=())
@_device_kernel
def continuous_truncated_forward(std_logits: Tensor, loc: Tensor, residual: Optional[Tensor], target_entropy: float,
                                 lo: float, hi: float, log_std_min: float, log_std_max: float,
                                 native_path: bool) -> Tensor:
    """Sampled-floor log stds: the continuous ERA output plus the smallest per-row offset that
    lifts the truncated-normal entropy to target_entropy (+ residual, a 0-d tensor whose value
    is data, or None when a constant residual is part of target_entropy)."""
    return native.continuous_truncated_forward(std_logits, loc, residual, target_entropy, lo, hi, log_std_min,
                                               log_std_max)


@_cpu_kernel(continuous_truncated_forward)
def _continuous_truncated_forward_cpu(std_logits, loc, residual, target_entropy, lo, hi, log_std_min, log_std_max,
                                      native_path):
    if native_path:
        return native.continuous_truncated_forward(std_logits, loc, residual, target_entropy, lo, hi, log_std_min,
                                                   log_std_max)
    x = _float32_copy(std_logits)
    out = _sampled.continuous_truncated_forward(to_numpy(x), to_numpy(_cast(loc, x.dtype)), target_entropy,
                                                residual=_value(residual), lo=lo, hi=hi, log_std_min=log_std_min,
                                                log_std_max=log_std_max)
    if std_logits.dtype in HALF:  # rounded up, so that the floor holds for the stored values
        wide = from_numpy(out).to(torch.float64)
        return F._round_up(native.OPS, wide, std_logits.dtype)
    return from_numpy(out)


@continuous_truncated_forward.register_fake
def _(std_logits, loc, residual, target_entropy, lo, hi, log_std_min, log_std_max, native_path):
    return torch.empty_like(std_logits, memory_format=torch.contiguous_format)


@torch.library.custom_op("era::continuous_truncated_backward", mutates_args=())
@_device_kernel
def continuous_truncated_backward(std_logits: Tensor, loc: Tensor, residual: Optional[Tensor], grad_log_std: Tensor,
                                  target_entropy: float, lo: float, hi: float, log_std_min: float, log_std_max: float,
                                  native_path: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """(dL/d std_logits, dL/d loc, dL/d residual per row in float64) of
    continuous_truncated_forward (implicit function theorem)."""
    return native.continuous_truncated_backward(std_logits, loc, residual, grad_log_std, target_entropy, lo, hi,
                                                log_std_min, log_std_max)


@_cpu_kernel(continuous_truncated_backward)
def _continuous_truncated_backward_cpu(std_logits, loc, residual, grad_log_std, target_entropy, lo, hi, log_std_min,
                                       log_std_max, native_path):
    if native_path:
        return native.continuous_truncated_backward(std_logits, loc, residual, grad_log_std, target_entropy, lo, hi,
                                                    log_std_min, log_std_max)
    x = _float32_copy(std_logits)
    grads = _sampled.continuous_truncated_backward(
        to_numpy(x), to_numpy(_cast(loc, x.dtype)), to_numpy(_cast(grad_log_std, x.dtype)), target_entropy,
        residual=_value(residual), lo=lo, hi=hi, log_std_min=log_std_min, log_std_max=log_std_max)
    back = lambda a: from_numpy(a).to(dtype=std_logits.dtype)  # noqa: E731
    return back(grads.std_logits), back(grads.loc), from_numpy(grads.residual).to(torch.float64)


@continuous_truncated_backward.register_fake
def _(std_logits, loc, residual, grad_log_std, target_entropy, lo, hi, log_std_min, log_std_max, native_path):
    return torch.empty_like(std_logits, memory_format=torch.contiguous_format), \
        torch.empty_like(std_logits, memory_format=torch.contiguous_format), \
        std_logits.new_empty(std_logits.shape[:-1], dtype=torch.float64)


def _continuous_truncated_setup(ctx, inputs, output):
    std_logits, loc, residual, *params = inputs
    ctx.save_for_backward(std_logits, loc, residual)
    ctx.params = params


def _continuous_truncated_vjp(ctx, grad):
    std_logits, loc, residual = ctx.saved_tensors
    grad_s, grad_loc, grad_rows = continuous_truncated_backward(std_logits, loc, residual, grad.contiguous(),
                                                                *ctx.params)
    grad_residual = None
    if residual is not None and ctx.needs_input_grad[2]:
        grad_residual = _cast(grad_rows.sum(), residual.dtype).reshape(residual.shape)
    return grad_s, _cast(grad_loc, loc.dtype), grad_residual, None, None, None, None, None, None


torch.library.register_autograd(continuous_truncated_forward, _continuous_truncated_vjp,
                                setup_context=_continuous_truncated_setup)

OPERATORS = OPERATORS + (truncated_normal_entropy_backward, continuous_truncated_forward,
                         continuous_truncated_backward)

# ---------------------------------------------------------------------------------------
# The tanh-Gaussian entropy gradient and the tanh sampled floor (docs/math.md, "The sampled
# floor, tanh"): libera on CPU tensors, the device path (era.torch.native, era._formulas) on
# other devices and with native_path. Their backward operators have no derivative of their own.


@torch.library.custom_op("era::tanh_gaussian_entropy_backward", mutates_args=())
@_device_kernel
def tanh_gaussian_entropy_backward(mean: Tensor, log_std: Tensor, grad_entropy: Tensor) -> Tuple[Tensor, Tensor]:
    """(dL/d mean, dL/d log_std) of tanh_gaussian_entropy, in log_std's dtype."""
    return native.tanh_gaussian_entropy_backward(mean, log_std, grad_entropy)


@_cpu_kernel(tanh_gaussian_entropy_backward)
def _tanh_gaussian_entropy_backward_cpu(mean, log_std, grad_entropy):
    x = _float32_copy(log_std)
    grads = _sampled.tanh_gaussian_entropy_backward(to_numpy(_cast(mean, x.dtype)), to_numpy(x),
                                                    to_numpy(_cast(grad_entropy, x.dtype)))
    return from_numpy(grads.mean).to(dtype=log_std.dtype), from_numpy(grads.log_std).to(dtype=log_std.dtype)


@tanh_gaussian_entropy_backward.register_fake
def _(mean, log_std, grad_entropy):
    return torch.empty_like(log_std, memory_format=torch.contiguous_format), \
        torch.empty_like(log_std, memory_format=torch.contiguous_format)


def _tanh_entropy_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _tanh_entropy_backward(ctx, grad):
    mean, log_std = ctx.saved_tensors
    grad_mean, grad_log_std = tanh_gaussian_entropy_backward(mean, log_std, grad.contiguous())
    return _cast(grad_mean, mean.dtype), grad_log_std


torch.library.register_autograd(tanh_gaussian_entropy, _tanh_entropy_backward, setup_context=_tanh_entropy_setup)


@torch.library.custom_op("era::continuous_tanh_forward", mutates_args=())
@_device_kernel
def continuous_tanh_forward(std_logits: Tensor, mean: Tensor, residual: Optional[Tensor], target_entropy: float,
                            log_std_min: float, log_std_max: float, native_path: bool) -> Tensor:
    """Tanh sampled-floor log stds: the continuous ERA output for the row's Gaussian target
    moved by the offset nearest 0 that lifts the squashed entropy to target_entropy
    (+ residual, a 0-d tensor whose value is data, or None when a constant residual is part of
    target_entropy)."""
    return native.continuous_tanh_forward(std_logits, mean, residual, target_entropy, log_std_min, log_std_max)


@_cpu_kernel(continuous_tanh_forward)
def _continuous_tanh_forward_cpu(std_logits, mean, residual, target_entropy, log_std_min, log_std_max, native_path):
    if native_path:
        return native.continuous_tanh_forward(std_logits, mean, residual, target_entropy, log_std_min, log_std_max)
    x = _float32_copy(std_logits)
    out = _sampled.continuous_tanh_forward(to_numpy(x), to_numpy(_cast(mean, x.dtype)), target_entropy,
                                           residual=_value(residual), log_std_min=log_std_min,
                                           log_std_max=log_std_max)
    if std_logits.dtype in HALF:  # rounded up, as libera rounds float32
        wide = from_numpy(out).to(torch.float64)
        return F._round_up(native.OPS, wide, std_logits.dtype)
    return from_numpy(out)


@continuous_tanh_forward.register_fake
def _(std_logits, mean, residual, target_entropy, log_std_min, log_std_max, native_path):
    return torch.empty_like(std_logits, memory_format=torch.contiguous_format)


@torch.library.custom_op("era::continuous_tanh_backward", mutates_args=())
@_device_kernel
def continuous_tanh_backward(std_logits: Tensor, mean: Tensor, residual: Optional[Tensor], grad_log_std: Tensor,
                             target_entropy: float, log_std_min: float, log_std_max: float,
                             native_path: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """(dL/d std_logits, dL/d mean, dL/d residual per row in float64) of
    continuous_tanh_forward (implicit function theorem)."""
    return native.continuous_tanh_backward(std_logits, mean, residual, grad_log_std, target_entropy, log_std_min,
                                           log_std_max)


@_cpu_kernel(continuous_tanh_backward)
def _continuous_tanh_backward_cpu(std_logits, mean, residual, grad_log_std, target_entropy, log_std_min, log_std_max,
                                  native_path):
    if native_path:
        return native.continuous_tanh_backward(std_logits, mean, residual, grad_log_std, target_entropy, log_std_min,
                                               log_std_max)
    x = _float32_copy(std_logits)
    grads = _sampled.continuous_tanh_backward(
        to_numpy(x), to_numpy(_cast(mean, x.dtype)), to_numpy(_cast(grad_log_std, x.dtype)), target_entropy,
        residual=_value(residual), log_std_min=log_std_min, log_std_max=log_std_max)
    back = lambda a: from_numpy(a).to(dtype=std_logits.dtype)  # noqa: E731
    return back(grads.std_logits), back(grads.mean), from_numpy(grads.residual).to(torch.float64)


@continuous_tanh_backward.register_fake
def _(std_logits, mean, residual, grad_log_std, target_entropy, log_std_min, log_std_max, native_path):
    return torch.empty_like(std_logits, memory_format=torch.contiguous_format), \
        torch.empty_like(std_logits, memory_format=torch.contiguous_format), \
        std_logits.new_empty(std_logits.shape[:-1], dtype=torch.float64)


def _continuous_tanh_vjp(ctx, grad):
    std_logits, mean, residual = ctx.saved_tensors
    grad_s, grad_mean, grad_rows = continuous_tanh_backward(std_logits, mean, residual, grad.contiguous(),
                                                            *ctx.params)
    grad_residual = None
    if residual is not None and ctx.needs_input_grad[2]:
        grad_residual = _cast(grad_rows.sum(), residual.dtype).reshape(residual.shape)
    return grad_s, _cast(grad_mean, mean.dtype), grad_residual, None, None, None, None


torch.library.register_autograd(continuous_tanh_forward, _continuous_tanh_vjp,
                                setup_context=_continuous_truncated_setup)

OPERATORS = OPERATORS + (tanh_gaussian_entropy_backward, continuous_tanh_forward, continuous_tanh_backward)
