import functools as ft
from typing import Any, TypeAlias

import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, Inexact, PyTree

from .. import _native
from .._misc import materialise


# A lower triangular matrix L of size d, kept entry by entry: its strictly lower
# entries, row by row (`L[i, j]` for `j < i` at index `i * (i - 1) // 2 + j`), and the
# reciprocals of its diagonal (an empty tuple when the diagonal is known to be all
# ones). Under `jax.vmap` each leaf is one length-N vector: the batch-innermost
# ("structure of arrays") layout the straight-line kernels want, as for
# `UnrolledSmallLU`. Upper triangular matrices are kept as their transpose.
_Triangle: TypeAlias = tuple[tuple[Inexact[Array, "..."], ...], tuple[Array, ...]]
# The state holds the matrix itself (only its triangle is ever read), not a
# `_Triangle`: on CPU the native kernel reads the triangle straight from it, once,
# and the pure-JAX kernel extracts the triangle in `compute` (a few selects, which
# XLA fuses). Then the packed structures and static flags: the matrix is
# `(lower, unit_diagonal)`, and solve with `(transpose, conj)` of it, so that
# `transpose` and `conj` cost nothing.
_UnrolledSmallTriangularState: TypeAlias = tuple[
    Inexact[Array, "d d"], lxi.PackedStructures, eqxi.Static, eqxi.Static
]


def _strict_index(i: int, j: int) -> int:
    return i * (i - 1) // 2 + j


def _scale(x: Array, inverse: Array) -> Array:
    # `x * inverse`, where `inverse` may be real while `x` is complex (the reciprocal
    # diagonal of a Cholesky factor): then two real products instead of a complex one.
    if jnp.iscomplexobj(x) and not jnp.iscomplexobj(inverse):
        return lax.complex(x.real * inverse, x.imag * inverse)
    return x * inverse


def _triangular_solve_entries(
    triangle: _Triangle, b: list[Array], *, transpose: bool, conj: bool
) -> list[Array]:
    """Straight-line substitution with a lower triangular L kept as entries
    (`_Triangle`): solves `op(L) x = b`, where `op(L)` is `L`, `L^T`, `conj(L)` or
    `L^H` as the static flags say. `L` is solved by forward substitution, `L^T` (upper
    triangular) by back substitution. Every entry is an array of the same shape (a
    scalar for one system, a length-N vector for N systems in batch-innermost
    layout), so the same code serves both.

    Each diagonal step multiplies by the stored reciprocal instead of dividing, as
    LAPACK's `?potf2` scales a column by `1 / ajj`: a multiplication vectorises
    several times faster than a division. A zero diagonal entry has an infinite
    reciprocal, so the solution becomes non-finite (`RESULTS.singular`).

    Each entry of the solution is materialised (`_misc.materialise`) as soon as it
    is computed. Otherwise XLA duplicates it into each of its consumers, and LLVM
    contracts each copy into FMAs differently, so that later entries are computed
    from slightly different values than the ones returned: a solution that is no
    longer backward stable (residuals 1e6 times LAPACK's on a complex matrix with
    condition number 1e8).
    """
    strict, inverse_diagonal = triangle
    d = len(b)
    c = jnp.conj if conj else (lambda x: x)
    unit = len(inverse_diagonal) == 0
    x: list[Any] = [None] * d
    order = reversed(range(d)) if transpose else range(d)
    for i in order:
        acc = b[i]
        others = range(i + 1, d) if transpose else range(i)
        for j in others:
            entry = strict[_strict_index(j, i) if transpose else _strict_index(i, j)]
            acc = acc - c(entry) * x[j]
        x[i] = materialise(acc if unit else _scale(acc, c(inverse_diagonal[i])))
    return x


def _entries(matrix: Array) -> list[list[Array]]:
    d = matrix.shape[0]
    return [[matrix[i, j] for j in range(d)] for i in range(d)]


def _triangle_entries(a: list[list[Array]], *, unit_diagonal: bool) -> _Triangle:
    # The lower triangle of `a` (entries above the diagonal are never read).
    d = len(a)
    strict = tuple(a[i][j] for i in range(d) for j in range(i))
    if unit_diagonal:
        return strict, ()
    return strict, tuple(1 / a[i][i] for i in range(d))


@ft.cache
def _make_triangle(unit_diagonal: bool):
    @jax.custom_batching.custom_vmap
    def triangle(matrix: Inexact[Array, "d d"]) -> _Triangle:
        return _triangle_entries(_entries(matrix), unit_diagonal=unit_diagonal)

    @triangle.def_vmap
    def triangle_vmap(axis_size, in_batched, matrix):
        del axis_size, in_batched
        # Batch-innermost layout: each entry becomes one contiguous length-N vector.
        matrix = jnp.moveaxis(matrix, 0, -1)
        out = _triangle_entries(_entries(matrix), unit_diagonal=unit_diagonal)
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return triangle


@ft.cache
def make_substitution(steps: tuple[tuple[bool, bool], ...]):
    """The batched solve with a `_Triangle`: one substitution per `(transpose,
    conj)` in `steps`, in order (one for a triangular solve, two for Cholesky).

    Under `jax.vmap` the right-hand side is moved batch-innermost. If only the
    right-hand side is batched, the triangle is computed once (materialised) rather
    than fused into the loop over right-hand sides.
    """

    def solve_entries(triangle, b):
        for transpose, conj in steps:
            b = _triangular_solve_entries(triangle, b, transpose=transpose, conj=conj)
        return b

    @jax.custom_batching.custom_vmap
    def substitute(triangle: _Triangle, vector: Inexact[Array, " d"]):
        d = vector.shape[0]
        return jnp.stack(solve_entries(triangle, [vector[i] for i in range(d)]))

    @substitute.def_vmap
    def substitute_vmap(axis_size, in_batched, triangle, vector):
        triangle_batched, vector_batched = in_batched
        d = vector.shape[-1]
        if not any(jax.tree_util.tree_leaves(triangle_batched)):
            triangle = jax.tree_util.tree_map(materialise, triangle)
        if vector_batched:
            vector = jnp.moveaxis(vector, 0, -1)
        x = solve_entries(triangle, [vector[i] for i in range(d)])
        x = [jnp.broadcast_to(xi, (axis_size,)) for xi in x]
        return jnp.stack(x, axis=-1), True

    return substitute


def _triangular_solve_rolled(
    matrix: Inexact[Array, "d d"],
    vector: Inexact[Array, " d"],
    *,
    transpose: bool,
    unit: bool,
) -> Inexact[Array, " d"]:
    """The same substitution with a lower triangular `matrix` (only its lower
    triangle read; not its diagonal if `unit`) as a `lax.fori_loop` over the rows:
    a program whose size does not grow with `d`, for sizes where straight-line code
    takes too long to trace and compile. Solves `L x = b`, or `L^T x = b` if
    `transpose`, for one system; batches by `jax.vmap`. Only the loop counter
    indexes arrays, so under `jax.vmap` every step is elementwise work and small
    reductions.
    """
    d = matrix.shape[0]
    rows = jnp.arange(d)
    # Strictly lower triangle (as rows of op(L): the transpose for back
    # substitution), and the reciprocal diagonal.
    strict = jnp.where(rows[:, None] > rows[None, :], matrix, 0)
    if transpose:
        strict = strict.T
    inverse = jnp.ones_like(vector) if unit else 1 / jnp.diagonal(matrix)

    def step(k, x):
        i = d - 1 - k if transpose else k
        acc = vector[i] - jnp.sum(strict[i] * x)
        return jnp.where(rows == i, acc * inverse[i], x)

    return lax.fori_loop(0, d, step, jnp.zeros_like(vector))


# Up to this size the pure-JAX kernel is straight-line code; above it, a rolled
# loop (`_triangular_solve_rolled`): `lax.platform_dependent` traces and lowers the
# pure-JAX branch on CPU too, so its straight-line program costs first calls there
# even where the native kernel runs.
_STRAIGHT_LINE_MAX = 8


def _pure_jax_solve(matrix, vector, *, lower, unit, transpose, conj):
    if not lower:
        # Kept as lower: op(U) = op'(U^T), with the transpose flag flipped.
        matrix = matrix.T
        transpose = not transpose
    if matrix.shape[0] <= _STRAIGHT_LINE_MAX:
        triangle = _make_triangle(unit)(matrix)
        return make_substitution(((transpose, conj),))(triangle, vector)
    if conj:
        matrix = matrix.conj()
    return _triangular_solve_rolled(matrix, vector, transpose=transpose, unit=unit)


def _native_solve(matrix, vector, *, lower, unit, transpose, conj):
    (x,) = _native.native_call(
        "lxk_small_triangular_solve",
        [matrix, vector],
        core_ndims=(2, 1),
        results=[(vector.shape[-1:], vector.dtype)],
        upper=not lower,
        unit=unit,
        trans=transpose,
        conj=conj,
    )
    return x


def _solve(matrix, vector, *, backend, **flags):
    """Solves `op(A) x = b` for triangular A: natively on CPU, in pure JAX elsewhere
    (or everywhere if so asked)."""
    return _native.platform_switch(
        backend, _native_solve, _pure_jax_solve, matrix, vector, **flags
    )


class UnrolledSmallTriangular(lx.AbstractLinearSolver[_UnrolledSmallTriangularState]):
    """Forward or back substitution for small triangular operators, specialised to the
    static size of the operator, like [`lineax_kernels.UnrolledSmallLU`][]. For many
    tiny systems under `jax.vmap` this
    is much faster than [`lineax.Triangular`][], which calls `trsv`/`trsm` once per
    matrix.

    The operator must be square and tagged `lx.lower_triangular_tag` or
    `lx.upper_triangular_tag` (optionally with `lx.unit_diagonal_tag`, and then its
    diagonal is never read). Only the triangle is read, as LAPACK's `?trtrs` does.
    A zero on the diagonal gives a non-finite solution, so `lineax.linear_solve`
    reports `RESULTS.singular`.

    There are two kernels, chosen per platform inside one compiled program:

    - On CPU, a native C++ kernel (compiled when the package is installed, called
        through the XLA FFI) that solves a tile of systems at once, one system per
        SIMD lane, reading only the triangle. It has a straight-line instantiation
        for each size up to 8 and a looped one above.
    - On GPU/TPU (and on CPU with `backend="jax"`), pure JAX: straight-line code in
        a batch-innermost layout up to size 8, a `lax.fori_loop` above.

    `init` keeps the operator's matrix; `transpose` and `conj` only flip static
    flags. Under `jax.vmap` over the right-hand side only, the triangle is prepared
    (diagonal inverted) once.

    !!! info

        The default `max_size=16` matches [`lineax_kernels.UnrolledSmallCholesky`][]
        and is where LAPACK's per-matrix overhead stops dominating.
    """

    max_size: int = 16
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if isinstance(self.max_size, int) and self.max_size < 1:
            raise ValueError(
                "`UnrolledSmallTriangular(max_size=...)` must be at least 1."
            )
        _native.check_backend(self.backend)

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if operator.in_size() != operator.out_size():
            raise ValueError(
                "`UnrolledSmallTriangular` may only be used for linear solves with "
                f"square matrices; got an operator of shape ({operator.out_size()}, "
                f"{operator.in_size()}). Use `lx.AutoLinearSolver(well_posed=None)` "
                "or `lx.QR()` instead."
            )
        lower = lx.is_lower_triangular(operator)
        if not (lower or lx.is_upper_triangular(operator)):
            raise ValueError(
                "`UnrolledSmallTriangular` may only be used for linear solves with "
                "triangular matrices (tagged `lx.lower_triangular_tag` or "
                "`lx.upper_triangular_tag`). Use `lxk.UnrolledSmallLU()` or "
                "`lx.LU()` instead."
            )
        size = operator.in_size()
        if size > self.max_size:
            raise ValueError(
                f"`UnrolledSmallTriangular` got an operator of size {size}, above its "
                f"limit `max_size={self.max_size}`. Use `lx.Triangular()` instead."
            )
        if size == 0:
            raise ValueError(
                "`UnrolledSmallTriangular` cannot solve a system of size 0."
            )
        packed_structures = lxi.pack_structures(operator)
        kind = eqxi.Static((lower, lx.has_unit_diagonal(operator)))
        return (
            operator.as_matrix(),
            packed_structures,
            kind,
            eqxi.Static((False, False)),
        )

    def compute(
        self,
        state: _UnrolledSmallTriangularState,
        vector: PyTree[Array],
        options: dict[str, Any],
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        matrix, packed_structures, kind, flags = state
        del state, options
        lower, unit = kind.value
        transpose, conj = flags.value
        vector = lxi.ravel_vector(vector, packed_structures)
        solution = _solve(
            matrix,
            vector,
            lower=lower,
            unit=unit,
            transpose=transpose,
            conj=conj,
            backend=self.backend,
        )
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _UnrolledSmallTriangularState, options: dict[str, Any]):
        matrix, packed_structures, kind, flags = state
        transpose, conj = flags.value
        transposed_packed_structures = lxi.transpose_packed_structures(
            packed_structures
        )
        transpose_state = (
            matrix,
            transposed_packed_structures,
            kind,
            eqxi.Static((not transpose, conj)),
        )
        return transpose_state, options

    def conj(self, state: _UnrolledSmallTriangularState, options: dict[str, Any]):
        matrix, packed_structures, kind, flags = state
        transpose, conj = flags.value
        conj_state = (
            matrix,
            packed_structures,
            kind,
            eqxi.Static((transpose, not conj)),
        )
        return conj_state, options

    def assume_full_rank(self):
        return True


UnrolledSmallTriangular.__init__.__doc__ = """**Arguments:**

- `max_size`: the largest operator size accepted (default 16). Above it `init`
    raises a `ValueError`; use [`lineax.Triangular`][] there.
- `backend`: `"auto"`, `"native"` or `"jax"`, as for
    [`lineax_kernels.UnrolledSmallLU`][].
"""
