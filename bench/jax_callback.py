"""The previous release's era.jax, for bench/run.py's "era.jax callback" column: libera's
numpy functions through jax.pure_callback (Python on the host in every call), the backward
by jax.custom_vjp. Only what the benchmark times: discrete and continuous ERA, token
entropy, the log-prob."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import era

VMAP = "broadcast_all"


def _callback(fn, spec, *args):
    return jax.pure_callback(lambda *a: fn(*[np.asarray(x) for x in a]), spec, *args, vmap_method=VMAP)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def discrete_era(logits, params):
    spec = jax.ShapeDtypeStruct(logits.shape, logits.dtype)
    return _callback(lambda z: era.discrete_forward(z, **dict(params)), spec, logits)


def _discrete_fwd(logits, params):
    return discrete_era(logits, params), logits


def _discrete_bwd(params, logits, g):
    spec = jax.ShapeDtypeStruct(logits.shape, logits.dtype)
    return (_callback(lambda z, g: era.discrete_backward(z, g, **dict(params)), spec, logits, g),)


discrete_era.defvjp(_discrete_fwd, _discrete_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def continuous_era(std_logits, residual, params):
    spec = jax.ShapeDtypeStruct(std_logits.shape, std_logits.dtype)
    return _callback(lambda s, r: era.continuous_forward(s, residual=float(r), **dict(params)), spec, std_logits,
                     residual)


def _continuous_fwd(std_logits, residual, params):
    return continuous_era(std_logits, residual, params), (std_logits, residual)


def _continuous_bwd(params, saved, g):
    std_logits, residual = saved
    specs = (jax.ShapeDtypeStruct(std_logits.shape, std_logits.dtype),
             jax.ShapeDtypeStruct(std_logits.shape[:-1], std_logits.dtype))

    def host(s, g, r):
        grads = era.continuous_backward(s, g, residual=float(r), **dict(params))
        return grads.std_logits, grads.residual

    grad, rows = _callback(host, specs, std_logits, g, residual)
    return grad, jnp.sum(rows).astype(residual.dtype)


continuous_era.defvjp(_continuous_fwd, _continuous_bwd)


def token_entropy(logits):
    return _callback(era.token_entropy, jax.ShapeDtypeStruct(logits.shape[:-1], jnp.float32), logits)


@jax.custom_vjp
def llm_logprob(logits, labels, scale):
    spec = jax.ShapeDtypeStruct(labels.shape, jnp.float32)
    return _callback(lambda z, a, s: era.llm_logprob_forward(z, a.astype(np.int64), s, with_entropy=False).logprob,
                     spec, logits, labels, scale)


def _logprob_fwd(logits, labels, scale):
    return llm_logprob(logits, labels, scale), (logits, labels, scale)


def _logprob_bwd(saved, g):
    logits, labels, scale = saved
    spec = jax.ShapeDtypeStruct(logits.shape, logits.dtype)
    grad = _callback(lambda z, a, s, g: era.llm_logprob_backward(z, a.astype(np.int64), s, g), spec, logits, labels,
                     scale, g)
    return grad, None, None


llm_logprob.defvjp(_logprob_fwd, _logprob_bwd)
