"""The native CPU backend: loading the compiled kernels, calling them through the
XLA FFI, and choosing between them and the pure-JAX kernels.

Everything native goes through this module, so that a new kernel adds one C++
source (`csrc/`) and one entry in `_TARGETS`, and calls `native_call` from its
solver; the loading, registration, batching, sharding and fallback are shared.

The kernels are called through a primitive of our own (`lxk_ffi_call`) rather
than `jax.ffi.ffi_call`, for two reasons:

1. Batching: under `jax.vmap` the batch axis becomes a leading axis of the
    operands, which the kernels treat as one more batch dimension. An operand
    shared by the whole batch (one matrix, many right-hand sides) stays unbatched,
    so the kernel sees it once rather than a broadcast copy per system.
2. Sharding: the lowering carries a Shardy sharding rule that says the leading
    dimensions are batch dimensions and the others must be replicated. With it a
    solve whose batch is sharded over several devices runs shard-locally; a plain
    `ffi_call` all-gathers its operands and runs the whole batch on every device.
"""

import ctypes
import functools as ft
import importlib.util
import itertools as it
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.extend as jex
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jax.interpreters import batching, mlir


Backend = Literal["auto", "native", "jax"]
_BACKENDS = ("auto", "native", "jax")
_ENV = "LINEAX_KERNELS_BACKEND"

# FFI target name -> exported handler symbol in the shared library.
_TARGETS = {
    "lxk_small_lu_solve": "LxkSmallLuSolve",
    "lxk_small_cholesky_solve": "LxkSmallCholeskySolve",
    "lxk_small_triangular_solve": "LxkSmallTriangularSolve",
    "lxk_tridiagonal_solve": "LxkTridiagonalSolve",
    "lxk_small_qr_solve": "LxkSmallQrSolve",
}

# The compiled library: an extension module (so that it installs, and is found,
# like any other; Python never calls it), whose FFI handlers ctypes loads.
_LIBRARY_MODULE = "lineax_kernels._lineax_kernels_native"


class NativeBackendWarning(RuntimeWarning):
    """Warned once when the native CPU kernels cannot be used, and the pure-JAX
    kernels run instead."""


@ft.cache
def _load() -> tuple[bool, str]:
    """Loads the shared library, registers its FFI targets and runs one tiny
    solve through it. Returns `(available, description)`; never raises."""
    try:
        cpu = jax.devices("cpu")[0]
    except RuntimeError:
        # No CPU backend (e.g. JAX_PLATFORMS=cuda): nothing would run the native
        # kernels, and the pure-JAX ones are the right ones; no warning.
        return False, "not used (JAX has no CPU backend here)"
    path = None
    try:
        spec = importlib.util.find_spec(_LIBRARY_MODULE)
        if spec is None or spec.origin is None:
            raise ImportError(
                f"{_LIBRARY_MODULE} was not found (the package was installed without "
                "building its native kernels)"
            )
        path = spec.origin
        library = ctypes.CDLL(path)
        for target, symbol in _TARGETS.items():
            capsule = jax.ffi.pycapsule(getattr(library, symbol))
            jax.ffi.register_ffi_target(target, capsule, platform="cpu")
            # With this, XLA's partitioner splits a call along the leading
            # `num_batch_dims` dimensions (set by the lowering below) rather
            # than gathering the whole batch onto every device.
            jax.ffi.register_ffi_target_as_batch_partitionable(target)
        isa = ctypes.c_char_p.in_dll(library, "lxk_isa").value
        isa = isa.decode() if isa is not None else "unknown"

        # An FFI handler built against newer XLA headers than the running jaxlib
        # is rejected only when a program using it is compiled: find out now, by
        # compiling and running one tiny solve (ahead of time, so that this works
        # while some other function is being traced).
        def self_test(a, b):
            return _ffi_call_p.bind(
                a,
                b,
                target="lxk_small_lu_solve",
                results=(((1,), np.dtype(np.float32)),),
                core_ndims=(2, 1),
                result_core_ndims=(1,),
                attrs=(("conj", False), ("trans", False)),
            )[0]

        a = np.array([[2.0]], np.float32)
        b = np.array([3.0], np.float32)
        with jax.default_device(cpu):
            call = jax.jit(self_test).lower(a, b).compile()
        if np.asarray(call(a, b)).tolist() != [1.5]:
            raise RuntimeError("the self-test solve returned a wrong answer")
    except Exception as e:  # noqa: BLE001 -- any failure means: use pure JAX.
        message = (
            "lineax-kernels: the native CPU kernels are unavailable, so the pure-JAX "
            f"kernels run instead (correct, but slower on CPU). Reason: {e!r}"
        )
        warnings.warn(message, NativeBackendWarning, stacklevel=3)
        return False, f"unavailable ({e!r})"
    return True, f"loaded from {path} ({isa})"


def backend_info() -> str:
    """Says in one line which kernels lineax-kernels runs, and why:

    ```python
    >>> lxk.backend_info()
    'cpu: native (loaded from .../liblineax_kernels_native.so (x86-64 AVX-512, ...));
    other platforms: pure JAX; LINEAX_KERNELS_BACKEND=auto'
    ```
    """
    setting = os.environ.get(_ENV, "auto")
    available, description = _load()
    if setting == "jax":
        cpu = "pure JAX (forced by LINEAX_KERNELS_BACKEND=jax)"
    elif available:
        cpu = f"native ({description})"
    else:
        cpu = f"pure JAX (native {description})"
    return f"cpu: {cpu}; other platforms: pure JAX; {_ENV}={setting}"


def check_backend(backend: Backend) -> None:
    """Raises a `ValueError` for an invalid `backend=` setting."""
    if isinstance(backend, str) and backend not in _BACKENDS:
        raise ValueError(f"`backend` must be one of {_BACKENDS}, not {backend!r}.")


def use_native(backend: Backend) -> bool:
    """Whether a solver with `backend=...` uses the native kernels on CPU. Decided at
    trace time. `"auto"` defers to the `LINEAX_KERNELS_BACKEND` environment
    variable (`auto`, `native` or `jax`; default `auto`), then to whether the
    library loaded."""
    check_backend(backend)
    if backend == "auto":
        backend = os.environ.get(_ENV, "auto")  # pyright: ignore[reportAssignmentType]
        if backend not in _BACKENDS:
            raise ValueError(f"{_ENV} must be one of {_BACKENDS}, not {backend!r}.")
    if backend == "jax":
        return False
    available, description = _load()
    if backend == "native" and not available:
        raise RuntimeError(
            f"`backend='native'` was asked for, but the native kernels are "
            f"{description}. Use `backend='auto'` to fall back to pure JAX."
        )
    return available


def platform_switch(
    backend: Backend,
    native: Callable[..., Any],
    pure: Callable[..., Any],
    *arrays: jax.Array,
    **static: Any,
):
    """Runs `native(*arrays, **static)` on CPU and `pure(*arrays, **static)`
    elsewhere, chosen by XLA per platform in one program
    (`lax.platform_dependent`); just the pure-JAX one if the native kernels are not
    to be used. The arrays are first promoted to their common dtype, which is what
    both kernels compute in; `static` holds Python values (flags)."""
    dtype = jnp.result_type(*arrays)
    arrays = tuple(jnp.asarray(x).astype(dtype) for x in arrays)
    native = ft.partial(native, **static)
    pure = ft.partial(pure, **static)
    if use_native(backend):
        return lax.platform_dependent(*arrays, cpu=native, default=pure)
    return pure(*arrays)


def native_call(
    target: str,
    operands: Sequence[jax.Array],
    core_ndims: Sequence[int],
    results: Sequence[tuple[tuple[int, ...], Any]],
    **attrs: Any,
) -> list[jax.Array]:
    """Calls the FFI target `target` on one system or a batch of them.

    **Arguments:**

    - `operands`: the input arrays. Operand `i` has `core_ndims[i]` trailing
        dimensions per system; any leading dimensions are batch dimensions. An
        operand without them is shared by every system of the batch.
    - `core_ndims`: the per-system rank of each operand.
    - `results`: `(core_shape, dtype)` of each output, per system. Outputs get the
        batch dimensions of the batched operands (all batched operands must have
        the same ones).
    - `attrs`: static attributes passed to the handler.

    **Returns:**

    The list of output arrays.
    """
    _load()  # registers the targets (once).
    operands = [jnp.asarray(x) for x in operands]
    batch_shape = ()
    for x, c in zip(operands, core_ndims, strict=True):
        shape = x.shape[: x.ndim - c]
        if shape:
            if batch_shape and shape != batch_shape:
                raise ValueError(
                    f"`{target}`: operands have different batch shapes "
                    f"{batch_shape} and {shape}."
                )
            batch_shape = shape
    results = tuple(
        (tuple(batch_shape) + tuple(shape), np.dtype(dtype)) for shape, dtype in results
    )
    return _ffi_call_p.bind(
        *operands,
        target=target,
        results=results,
        core_ndims=tuple(core_ndims),
        result_core_ndims=tuple(len(s) - len(batch_shape) for s, _ in results),
        attrs=tuple(sorted(attrs.items())),
    )


_ffi_call_p = jex.core.Primitive("lxk_ffi_call")
_ffi_call_p.multiple_results = True


@ft.cache
def _jitted_call(**params):
    return jax.jit(lambda *args: _ffi_call_p.bind(*args, **params))


@_ffi_call_p.def_impl
def _ffi_call_impl(*args, **params):
    return _jitted_call(**params)(*args)


@_ffi_call_p.def_abstract_eval
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
    out = _ffi_call_p.bind(
        *new_args,
        target=target,
        results=new_results,
        core_ndims=core_ndims,
        result_core_ndims=result_core_ndims,
        attrs=attrs,
    )
    return out, [0] * len(out)


batching.primitive_batchers[_ffi_call_p] = _ffi_call_batch


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
    extra = {}
    num_batch = len(ctx.avals_out[0].shape) - result_core_ndims[0]
    if num_batch and all(
        len(a.shape) - c == num_batch for a, c in zip(ctx.avals_in, core_ndims)
    ):
        extra["mhlo.frontend_attributes"] = mlir.ir.DictAttr.get(
            {"num_batch_dims": mlir.ir.StringAttr.get(str(num_batch))}
        )
    if jax.config.jax_use_shardy_partitioner:
        extra["sdy.sharding_rule"] = mlir.ir.Attribute.parse(
            _sharding_rule(ctx.avals_in, ctx.avals_out, core_ndims, result_core_ndims)
        )
    rule = jax.ffi.ffi_lowering(target, extra_attributes=extra)
    return rule(ctx, *args, **dict(attrs))


mlir.register_lowering(_ffi_call_p, _ffi_call_lowering, platform="cpu")
