"""Private helpers shared by the kernels and the solvers."""

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi
import numpy as np
from jaxtyping import Array


# The element types every kernel computes in, on both paths.
SUPPORTED_DTYPES = tuple(
    np.dtype(d) for d in (np.float32, np.float64, np.complex64, np.complex128)
)


def check_dtypes(solver: str, *arrays: Any) -> None:
    """Raises a `TypeError` at trace time unless all `arrays` have one supported
    element type. (Casting would hide a dropped imaginary part or lost precision.)
    """
    dtypes = {np.dtype(jnp.result_type(x)) for x in arrays}
    if len(dtypes) > 1:
        names = ", ".join(sorted(str(d) for d in dtypes))
        raise TypeError(
            f"`{solver}` got an operator whose arrays have different dtypes ({names}). "
            "Cast them to one dtype first (lineax's own solvers do not mix dtypes "
            "either)."
        )
    (dtype,) = dtypes
    if dtype not in SUPPORTED_DTYPES:
        supported = ", ".join(str(d) for d in SUPPORTED_DTYPES)
        raise TypeError(
            f"`{solver}` does not support dtype {dtype}; it supports {supported}. "
            "Cast the operator and vector to one of these."
        )


def promote(solver: str, *arrays: Array) -> tuple[Array, ...]:
    """The arrays of an operator whose dtype is that of `arrays[0]` (its structure's),
    cast to that dtype where that loses nothing (e.g. a float32 coupling in a float64
    operator); a `TypeError` where it would (a complex coupling in a real operator),
    as lineax refuses such an operator too. (The constructors of this library's
    operators promote their arrays; mixed arrays come only from rebuilding one
    leaf by leaf.)"""
    dtype = arrays[0].dtype
    if jnp.result_type(*arrays) != dtype:
        check_dtypes(solver, *arrays)
    check_dtypes(solver, arrays[0])
    return tuple(x.astype(dtype) for x in arrays)


def abs1(x: Array) -> Array:
    """LAPACK's `cabs1`, $|\\mathrm{Re}\\, x| + |\\mathrm{Im}\\, x|$: the cheap
    magnitude that LAPACK's `?getrf` and `?gttrf` choose pivots by."""
    if jnp.iscomplexobj(x):
        return jnp.abs(x.real) + jnp.abs(x.imag)
    return jnp.abs(x)


def nonfinite_guard(x: Array) -> Array:
    """0 if every entry of `x` is finite, else NaN (summing `x - x`). Added to a
    solution, it makes non-finite input give non-finite output."""
    return jnp.sum(x - x)


def compute_once(x: Array) -> Array:
    """Returns `x`, computed once. XLA fuses cheap elementwise operations into each
    of their consumers, so without this every consumer of a value recomputes its
    whole history, and LLVM may contract each copy into FMAs differently (so that
    the copies disagree in the last bits). A division is an operation XLA will not
    duplicate, so dividing by a computed one (exactly 1 for finite `x`; NaN for
    inf/NaN, which keeps non-finite values non-finite) makes it compute `x` once.
    """
    if jnp.issubdtype(x.dtype, jnp.integer):
        # Integer division does not count as expensive to XLA; small integers are
        # exact in float32.
        return compute_once(x.astype(jnp.float32)).astype(x.dtype)
    return x / (x * 0 + 1)


def batch_innermost(
    kernel: Callable[..., Any], shared: Callable[[Array], Array] | None = None
) -> Callable[..., Any]:
    """Wraps `kernel` so that under `jax.vmap` it runs once on the whole batch, with
    the batch as the *last* axis of every array ("batch innermost": one entry of
    every system is one contiguous vector, which straight-line code and scans
    vectorise along).

    `kernel(*args)` must accept arrays (PyTrees of arrays) with any number of
    trailing batch axes and broadcast them against each other; without `jax.vmap`
    it gets the arrays as they are. Under `jax.vmap`, a batched leaf gets its batch
    axis moved last and an unbatched leaf gets a trailing axis of size 1 (so any
    subset of the arguments may be batched); every output leaf gets the batch axis
    moved back to the front.

    `shared`, if given, is applied to every unbatched leaf under `jax.vmap` (e.g.
    `compute_once`, so that factors shared by a batch of right-hand sides are
    computed once rather than fused into the loop over the batch).
    """

    @jax.custom_batching.custom_vmap
    def wrapped(*args):
        return kernel(*args)

    @wrapped.def_vmap
    def rule(axis_size, in_batched, *args):
        def to_end(x, batched):
            if batched:
                return jnp.moveaxis(x, 0, -1)
            return (x if shared is None else shared(x))[..., None]

        args = jax.tree.map(to_end, args, tuple(in_batched))
        out = kernel(*args)

        def to_front(y):
            y = jnp.broadcast_to(y, y.shape[:-1] + (axis_size,))
            return jnp.moveaxis(y, -1, 0)

        out = jax.tree.map(to_front, out)
        return out, jax.tree.map(lambda _: True, out)

    return wrapped


class Op(NamedTuple):
    """Which of $A$, $A^T$, $\\bar{A}$ and $A^H$ a solve uses."""

    trans: bool = False
    conj: bool = False


# Every solver of this library keeps its state as `(data, packed_structures,
# Static(flags))`, where `flags` is a NamedTuple with (at least) the fields `trans`
# and `conj`: so `transpose` and `conj` flip a static flag and never touch the data.
State = tuple[Any, lxi.PackedStructures, eqxi.Static]


def make_state(data: Any, operator: lx.AbstractLinearOperator, flags: tuple) -> State:
    """The state `(data, packed_structures, Static(flags))`; `flags` a NamedTuple."""
    return data, lxi.pack_structures(operator), eqxi.Static(flags)


def transpose_state(state: State, options: dict[str, Any]):
    data, packed_structures, flags = state
    flags = flags.value._replace(trans=not flags.value.trans)
    packed_structures = lxi.transpose_packed_structures(packed_structures)
    return (data, packed_structures, eqxi.Static(flags)), options


def conj_state(state: State, options: dict[str, Any]):
    # conj(op(A)) for op = identity or transpose is op(conj(A)): flip `conj`, keep
    # `trans`.
    data, packed_structures, flags = state
    flags = flags.value._replace(conj=not flags.value.conj)
    return (data, packed_structures, eqxi.Static(flags)), options


def check_square(solver: str, operator: lx.AbstractLinearOperator, instead: str):
    if operator.in_size() != operator.out_size():
        raise ValueError(
            f"`{solver}` may only be used for linear solves with square matrices; got "
            f"an operator of shape ({operator.out_size()}, {operator.in_size()}). Use "
            f"{instead} instead."
        )
    if operator.in_size() == 0:
        raise ValueError(f"`{solver}` cannot solve a system of size 0.")


def check_max_size(solver: str, size: int, max_size: int, instead: str):
    if size > max_size:
        raise ValueError(
            f"`{solver}` got an operator of size {size}, above its limit "
            f"`max_size={max_size}`. Use {instead} instead."
        )


def ravel_vector(
    solver: str, vector: Any, packed_structures: lxi.PackedStructures, dtype: Any
) -> Array:
    """`lineax.internal.ravel_vector`, in the dtype `dtype` of the operator: cast if
    that loses nothing (a PyTree vector of mixed precisions), else a `TypeError`."""
    vector = lxi.ravel_vector(vector, packed_structures)
    if vector.dtype != dtype:
        if jnp.promote_types(vector.dtype, dtype) != dtype:
            raise TypeError(
                f"`{solver}` got a vector of dtype {vector.dtype} for an operator of "
                f"dtype {dtype}; cast one of them."
            )
        vector = vector.astype(dtype)
    return vector
