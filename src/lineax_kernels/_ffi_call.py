"""`lxk_ffi_call`, the primitive through which every native kernel is called: an
FFI call whose leading operand dimensions are batch dimensions. Its batching rule
keeps an operand shared by the whole batch unbatched (the kernel sees it once), and
its lowering marks the batch dimensions for XLA's partitioners (`num_batch_dims`,
and a Shardy rule), so that a sharded batch is solved shard-locally: batched
operands and the result stay sharded along the batch, shared operands replicated.
"""

import functools as ft
import itertools as it
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
from jax.extend.mlir.dialects import stablehlo as hlo
from jax.interpreters import batching, mlir


def ffi_call(
    target: str,
    core_ndims: tuple[int, ...],
    out_shape: Callable[..., tuple[int, ...]] | None,
    operands: Sequence[jax.Array],
    attrs: dict[str, Any],
) -> jax.Array:
    """Calls the FFI target `target` on one system or a batch of them: operand `i`
    has `core_ndims[i]` trailing dimensions per system, and any leading ones are
    batch dimensions (all batched operands have the same); an operand without them is
    shared by every system of the batch. `out_shape(*core_shapes)` is the per-system
    shape of the one result (default: the last operand's); `attrs` are the handler's
    static attributes. Returns the result, with the batch dimensions of the batched
    operands."""
    batch_shape = ()
    cores = []
    for x, c in zip(operands, core_ndims, strict=True):
        shape = x.shape[: x.ndim - c]
        cores.append(x.shape[x.ndim - c :])
        if shape:
            if batch_shape and shape != batch_shape:
                raise ValueError(
                    f"`{target}`: operands have different batch shapes "
                    f"{batch_shape} and {shape}."
                )
            batch_shape = shape
    out_core = cores[-1] if out_shape is None else out_shape(*cores)
    result = (tuple(batch_shape) + tuple(out_core), np.dtype(operands[-1].dtype))
    (x,) = ffi_call_p.bind(
        *operands,
        target=target,
        results=(result,),
        core_ndims=core_ndims,
        result_core_ndims=(len(out_core),),
        attrs=tuple(sorted(attrs.items())),
    )
    return x


ffi_call_p = jex.core.Primitive("lxk_ffi_call")
ffi_call_p.multiple_results = True


@ft.cache
def _jitted_call(**params):
    return jax.jit(lambda *args: ffi_call_p.bind(*args, **params))


@ffi_call_p.def_impl
def _ffi_call_impl(*args, **params):
    return _jitted_call(**params)(*args)


@ffi_call_p.def_abstract_eval
def _ffi_call_abstract_eval(*avals, results, **params):
    del avals, params
    return [jax.core.ShapedArray(shape, dtype) for shape, dtype in results]


def _ffi_call_batch(
    args, dims, *, target, results, core_ndims, result_core_ndims, attrs
):
    # Puts the vmapped axis first in every operand. Operands that had batch
    # dimensions before keep them after the new one; an operand that was shared
    # by the whole batch but is now vmapped is broadcast along the old batch
    # dimensions (all batched operands must have the same batch shape).
    (size,) = {x.shape[d] for x, d in zip(args, dims) if d is not None}
    old_batch = ()
    for x, d, c in zip(args, dims, core_ndims):
        ndim = x.ndim - (d is not None)
        if ndim > c:
            shape = x.shape if d is None else np.delete(x.shape, d)
            old_batch = tuple(shape[: ndim - c])
    new_args = []
    for x, d, c in zip(args, dims, core_ndims):
        if d is None:
            if x.ndim > c:
                x = jnp.broadcast_to(x, (size,) + x.shape)
        else:
            x = jnp.moveaxis(x, d, 0)
            if x.ndim - 1 == c and old_batch:
                core = x.shape[1:]
                x = jnp.broadcast_to(
                    x[(slice(None),) + (None,) * len(old_batch)],
                    (size,) + old_batch + core,
                )
        new_args.append(x)
    new_results = tuple(((size,) + tuple(shape), dtype) for shape, dtype in results)
    out = ffi_call_p.bind(
        *new_args,
        target=target,
        results=new_results,
        core_ndims=core_ndims,
        result_core_ndims=result_core_ndims,
        attrs=attrs,
    )
    return out, [0] * len(out)


batching.primitive_batchers[ffi_call_p] = _ffi_call_batch


def _sharding_rule(avals_in, avals_out, core_ndims, result_core_ndims) -> str:
    """The Shardy rule of one call, as MLIR text: the leading (batch) dimensions of
    every batched operand and of every result are the same factors, which may be
    sharded; every per-system dimension is its own factor, marked as needing
    replication (a system is never split across devices)."""
    # Shardy names factors i, j, ..., z, z_1, z_2, ... in order of first use.
    letters = (chr(ord("i") + k) if k < 18 else f"z_{k - 17}" for k in it.count())
    out_ndim = len(avals_out[0].shape) - result_core_ndims[0]
    batch = [next(letters) for _ in range(out_ndim)]
    sizes = dict(zip(batch, avals_out[0].shape[:out_ndim]))
    replicated = []

    def mapping(aval, core):
        nb = len(aval.shape) - core
        names = batch[:nb] if nb else []
        for size in aval.shape[nb:]:
            name = next(letters)
            sizes[name] = size
            replicated.append(name)
            names.append(name)
        return "[" + ", ".join(names) + "]"

    ins = ", ".join(mapping(a, c) for a, c in zip(avals_in, core_ndims))
    outs = ", ".join(mapping(a, c) for a, c in zip(avals_out, result_core_ndims))
    factor_sizes = ", ".join(f"{k}={v}" for k, v in sizes.items())
    rule = f"#sdy.op_sharding_rule<({ins})->({outs}) {{{factor_sizes}}}"
    if replicated:
        rule += " need_replication={" + ", ".join(replicated) + "}"
    return rule + ", custom>"


def _ffi_call_lowering(
    ctx, *args, target, results, core_ndims, result_core_ndims, attrs
):
    del results
    unpadded_out = ctx.avals_out
    avals_in, avals_out = list(ctx.avals_in), list(ctx.avals_out)
    num_batch = len(avals_out[0].shape) - result_core_ndims[0]
    extra = {}
    pad = 0
    if num_batch:
        # XLA's batch partitioner (`register_ffi_target_as_batch_partitionable`)
        # splits every operand along its leading `num_batch_dims` dimensions, and
        # replicates an operand of lower rank. So that an operand shared by the
        # whole batch (it has only its per-system dimensions) is replicated rather
        # than split, the batched operands and the result get `pad` extra batch
        # dimensions of size 1, making the batch rank exceed every shared operand's
        # rank. (The kernels treat all leading dimensions as one batch, so the
        # size-1 ones change nothing there.)
        shared = [c for a, c in zip(ctx.avals_in, core_ndims) if len(a.shape) == c]
        pad = max([num_batch] + [c + 1 for c in shared]) - num_batch
        args = list(args)
        for i, (a, c) in enumerate(zip(ctx.avals_in, core_ndims)):
            if len(a.shape) > c and pad:
                avals_in[i] = a.update(shape=_pad(a.shape, num_batch, pad))
                args[i] = hlo.reshape(
                    mlir.aval_to_ir_type(ctx.module_context, avals_in[i]), args[i]
                )
        avals_out = [a.update(shape=_pad(a.shape, num_batch, pad)) for a in avals_out]
        extra["mhlo.frontend_attributes"] = mlir.ir.DictAttr.get(
            {"num_batch_dims": mlir.ir.StringAttr.get(str(num_batch + pad))}
        )
    if jax.config.jax_use_shardy_partitioner:
        extra["sdy.sharding_rule"] = mlir.ir.Attribute.parse(
            _sharding_rule(avals_in, avals_out, core_ndims, result_core_ndims)
        )
    rule = jax.ffi.ffi_lowering(target, extra_attributes=extra)
    ctx = ctx.replace(avals_in=avals_in, avals_out=avals_out)
    outs = rule(ctx, *args, **dict(attrs))
    if pad:
        outs = [
            hlo.reshape(mlir.aval_to_ir_type(ctx.module_context, a), x)
            for a, x in zip(unpadded_out, outs)
        ]
    return outs


def _pad(shape: tuple[int, ...], num_batch: int, pad: int) -> tuple[int, ...]:
    return shape[:num_batch] + (1,) * pad + shape[num_batch:]


mlir.register_lowering(ffi_call_p, _ffi_call_lowering, platform="cpu")
