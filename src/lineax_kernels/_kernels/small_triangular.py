"""Small triangular solves: the twin of `csrc/small_triangular.h`.

The pure-JAX kernel is straight-line code generated for the static size up to
`_STRAIGHT_LINE_MAX`, in a batch-innermost layout under `jax.vmap`, and a rolled
`lax.fori_loop` above. The substitution on a `Triangle` (`make_substitution`) also
serves the Cholesky kernel.
"""

import functools as ft
from typing import Any, NamedTuple, TypeAlias

import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Inexact

from .. import _native
from .._misc import batch_innermost, compute_once


TARGET = _native.Target("lxk_small_triangular_solve", core_ndims=(2, 1))


class Flags(NamedTuple):
    """`upper`: A is upper (else lower) triangular; `unit`: its diagonal is all ones
    (and never read); solve with `op(A)`, as `_misc.Op`."""

    upper: bool
    unit: bool
    trans: bool = False
    conj: bool = False


# A lower triangular matrix L of size d, kept entry by entry: its strictly lower
# entries, row by row (`L[i, j]` for `j < i` at index `i * (i - 1) // 2 + j`), and the
# reciprocals of its diagonal (an empty tuple when the diagonal is known to be all
# ones). Under `jax.vmap` each leaf is one vector along the batch (batch innermost).
# Upper triangular matrices are kept as their transpose.
Triangle: TypeAlias = tuple[tuple[Inexact[Array, "..."], ...], tuple[Array, ...]]


def _strict_index(i: int, j: int) -> int:
    return i * (i - 1) // 2 + j


def scale(x: Array, inverse: Array) -> Array:
    # `x * inverse`, where `inverse` may be real while `x` is complex (the reciprocal
    # diagonal of a Cholesky factor): then two real products instead of a complex one.
    if jnp.iscomplexobj(x) and not jnp.iscomplexobj(inverse):
        return lax.complex(x.real * inverse, x.imag * inverse)
    return x * inverse


def _triangular_solve_entries(
    triangle: Triangle, b: list[Array], *, transpose: bool, conj: bool
) -> list[Array]:
    """Straight-line substitution with a lower triangular L kept as entries
    (`Triangle`): solves `op(L) x = b`, where `op(L)` is `L`, `L^T`, `conj(L)` or
    `L^H` as the static flags say. `L` is solved by forward substitution, `L^T` (upper
    triangular) by back substitution. Every entry is an array of the same shape (a
    scalar for one system, a length-N vector for N systems in batch-innermost
    layout), so the same code serves both.

    Each diagonal step multiplies by the stored reciprocal instead of dividing, as
    LAPACK's `?potf2` scales a column by `1 / ajj`: a multiplication vectorises
    several times faster than a division. A zero diagonal entry has an infinite
    reciprocal, so the solution becomes non-finite (`RESULTS.singular`).

    Each entry of the solution is materialised (`_misc.compute_once`) as soon as it
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
        x[i] = compute_once(acc if unit else scale(acc, c(inverse_diagonal[i])))
    return x


def _entries(matrix: Array) -> list[list[Array]]:
    d = matrix.shape[0]
    return [[matrix[i, j] for j in range(d)] for i in range(d)]


def _triangle_entries(a: list[list[Array]], *, unit_diagonal: bool) -> Triangle:
    # The lower triangle of `a` (entries above the diagonal are never read).
    d = len(a)
    strict = tuple(a[i][j] for i in range(d) for j in range(i))
    if unit_diagonal:
        return strict, ()
    return strict, tuple(1 / a[i][i] for i in range(d))


@ft.cache
def _make_triangle(unit_diagonal: bool):
    return batch_innermost(
        lambda matrix: _triangle_entries(_entries(matrix), unit_diagonal=unit_diagonal)
    )


@ft.cache
def make_substitution(steps: tuple[tuple[bool, bool], ...]):
    """The (batched) solve with a `Triangle`: one substitution per `(transpose,
    conj)` in `steps`, in order (one for a triangular solve, two for Cholesky). If
    only the right-hand side is batched, the triangle is computed once."""

    def substitute(triangle: Triangle, vector: Inexact[Array, " d ..."]):
        b = [vector[i] for i in range(vector.shape[0])]
        for transpose, conj in steps:
            b = _triangular_solve_entries(triangle, b, transpose=transpose, conj=conj)
        return jnp.stack(jnp.broadcast_arrays(*b))

    return batch_innermost(substitute, shared=compute_once)


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


# Up to this size the pure-JAX kernel is straight-line code; above it, a rolled
# loop (`_triangular_solve_rolled`): `lax.platform_dependent` traces and lowers the
# pure-JAX branch on CPU too, so its straight-line program costs first calls there
# even where the native kernel runs.
_STRAIGHT_LINE_MAX = 8


def pure_solve(matrix, vector, *, upper, unit, trans, conj):
    """Solves `op(A) x = b` for triangular A, in pure JAX."""
    if upper:
        # Kept as lower: op(U) = op'(U^T), with the transpose flag flipped.
        matrix = matrix.T
        trans = not trans
    if matrix.shape[0] <= _STRAIGHT_LINE_MAX:
        triangle = _make_triangle(unit)(matrix)
        return make_substitution(((trans, conj),))(triangle, vector)
    if conj:
        matrix = matrix.conj()
    return _triangular_solve_rolled(matrix, vector, transpose=trans, unit=unit)


def solve(matrix, vector, flags: Flags, backend):
    """Solves `op(A) x = b` for triangular A: natively on CPU, in pure JAX elsewhere
    (or everywhere if so asked)."""
    return _native.dispatch(TARGET, pure_solve, backend, flags, matrix, vector)
