"""The native CPU backend: loading the compiled kernels, calling them through the
XLA FFI, and choosing between them and the pure-JAX kernels.

Everything native goes through this module. A kernel `<k>` is:

- `csrc/<k>.h`: the C++ template kernel (no XLA types), and `csrc/<k>.cc`: its FFI
    handler and typed driver, registered under a target name (`lxk_<k>_solve`) with
    `LXK_REGISTER_TARGET`; the build picks it up, and the loader registers every
    target the library lists;
- `src/lineax_kernels/_kernels/<k>.py`: the pure-JAX twin of the C++ kernel, a
    `Target` naming the FFI target and the per-system rank of each operand, and one
    entry point that calls `dispatch(target, pure_kernel, backend, flags, *arrays)`.

Loading, registration, batching, sharding and the fallback to pure JAX are shared,
here. The kernels are called through a primitive of our own (`lxk_ffi_call`) rather
than `jax.ffi.ffi_call`, for two reasons:

1. Batching: under `jax.vmap` the batch axis becomes a leading axis of the
    operands, which the kernels treat as one more batch dimension. An operand
    shared by the whole batch (one matrix, many right-hand sides) stays unbatched,
    so the kernel sees it once rather than a broadcast copy per system.
2. Sharding: the lowering marks the leading dimensions as batch dimensions for
    XLA's batch partitioner and for Shardy (and the others as replicated). With it
    a solve whose batch is sharded over several devices runs shard-locally, shared
    operands replicated; a plain `ffi_call` all-gathers its operands and runs the
    whole batch on every device.
"""

import ctypes
import functools as ft
import importlib.util
import os
import warnings
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.lax as lax
import numpy as np

from ._ffi_call import ffi_call, ffi_call_p


Backend = Literal["auto", "native", "jax"]
_BACKENDS = ("auto", "native", "jax")
_ENV = "LINEAX_KERNELS_BACKEND"


class Target(NamedTuple):
    """A native kernel: the FFI target's name, and the per-system rank of each of its
    operands (any leading dimensions of an operand are batch dimensions).
    `out_shape(*shapes)` gives the per-system shape of its one result from the
    operands' per-system shapes; by default it is that of the last operand (the
    right-hand side)."""

    name: str
    core_ndims: tuple[int, ...]
    out_shape: Callable[..., tuple[int, ...]] | None = None


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
        # A device of this process (under `jax.distributed`, `jax.devices` lists
        # every process's devices, and another's cannot run the self-test).
        cpu = jax.local_devices(backend="cpu")[0]
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
        # The library lists its targets (csrc/ffi_common.h, LXK_REGISTER_TARGET).
        library.lxk_target_name.argtypes = library.lxk_target_handler.argtypes = (
            ctypes.c_int,
        )
        library.lxk_target_name.restype = ctypes.c_char_p
        library.lxk_target_handler.restype = ctypes.c_void_p
        for i in range(library.lxk_num_targets()):
            target = library.lxk_target_name(i).decode()
            capsule = jax.ffi.pycapsule(library.lxk_target_handler(i))
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
            return ffi_call_p.bind(
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


def dispatch(
    target: Target,
    pure: Callable[..., jax.Array],
    backend: Backend,
    flags: tuple,
    *arrays: jax.Array,
) -> jax.Array:
    """Runs one solve: the native kernel `target` on CPU and `pure` elsewhere,
    chosen by XLA per platform in one program (`lax.platform_dependent`); just
    `pure` if the native kernels are not to be used (see `use_native`).

    **Arguments:**

    - `target`: the native kernel.
    - `pure`: the pure-JAX kernel, called as `pure(*arrays, **flags._asdict())`.
    - `backend`: the solver's `backend` field.
    - `flags`: static flags, a NamedTuple whose fields are the native kernel's
        attributes and `pure`'s keyword arguments.
    - `arrays`: the operands of one system, all of one dtype (checked by the
        solvers, at trace time); batches come from `jax.vmap`.

    **Returns:**

    The solution.
    """
    attrs = flags._asdict()
    pure = ft.partial(pure, **attrs)
    if not use_native(backend):
        return pure(*arrays)

    def native(*arrays):
        _load()  # registers the targets (once).
        return ffi_call(target.name, target.core_ndims, target.out_shape, arrays, attrs)

    return lax.platform_dependent(*arrays, cpu=native, default=pure)
