from typing import Any, TypeAlias

import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, Inexact, PyTree

from .._misc import materialise
from .unrolled_small_triangular import _scale, _Triangle, make_substitution


# The Cholesky factor L of one d x d matrix, `A = L L^H` (of `-A` for a negative
# definite operator), as a `_Triangle`: its strictly lower entries and the (real)
# reciprocals of its diagonal, each a scalar per system (a length-N vector under
# `jax.vmap`: batch-innermost layout). Then two static flags: the operator is
# negative (semi)definite, so the solution is negated; and solve with `conj(A)`
# rather than `A` (which is also how `transpose` is done: for a Hermitian A,
# `A^T = conj(A)`).
_UnrolledSmallCholeskyState: TypeAlias = tuple[
    _Triangle, lxi.PackedStructures, eqxi.Static, eqxi.Static
]


def _cholesky_factor_entries(a: list[list[Array]]) -> _Triangle:
    """Straight-line Cholesky factorisation `A = L L^H` of one Hermitian positive
    definite matrix, given as a list of rows of entries, of which only the lower
    triangle is read (and only the real part of the diagonal), as LAPACK's `?potrf`
    with `uplo="L"` does. Every entry is an array of the same shape (a scalar for one
    system, a length-N vector for N systems in batch-innermost layout).

    Column by column (the left-looking `?potf2` order): the pivot is
    `a[j][j] - sum_k |L[j][k]|^2`; its square root is the diagonal of L, and the
    column below it is scaled by the reciprocal. A pivot that is negative or NaN
    gives a NaN square root, a zero pivot an infinite reciprocal; either way the
    solution becomes non-finite, and `lx.linear_solve` reports `RESULTS.singular`
    rather than a finite wrong answer. (LAPACK stops at such a pivot and reports
    `info > 0`; jax's `cholesky` then returns NaNs.) Nothing branches on values.

    Every entry of the factor is materialised (`_misc.materialise`) once computed,
    at every size: else XLA recomputes it in each consumer, LLVM contracts each copy
    into FMAs differently, and the factor stops being consistent with itself (the
    same problem, and fix, as in `_triangular_solve_entries`).
    """
    d = len(a)
    strict: dict[tuple[int, int], Array] = {}
    inverse_diagonal = []
    for j in range(d):
        pivot = jnp.real(a[j][j])
        for k in range(j):
            l_jk = strict[j, k]
            if jnp.iscomplexobj(l_jk):
                pivot = pivot - (l_jk.real * l_jk.real + l_jk.imag * l_jk.imag)
            else:
                pivot = pivot - l_jk * l_jk
        inverse = materialise(1 / jnp.sqrt(pivot))
        inverse_diagonal.append(inverse)
        for i in range(j + 1, d):
            acc = a[i][j]
            for k in range(j):
                acc = acc - strict[i, k] * jnp.conj(strict[j, k])
            strict[i, j] = materialise(_scale(acc, inverse))
    strict_entries = tuple(strict[i, j] for i in range(d) for j in range(i))
    return strict_entries, tuple(inverse_diagonal)


def _entries(matrix: Array) -> list[list[Array]]:
    d = matrix.shape[0]
    return [[matrix[i, j] for j in range(d)] for i in range(d)]


@jax.custom_batching.custom_vmap
def _cholesky_factor(matrix: Inexact[Array, "d d"]) -> _Triangle:
    return _cholesky_factor_entries(_entries(matrix))


@_cholesky_factor.def_vmap
def _cholesky_factor_vmap(axis_size, in_batched, matrix):
    del axis_size, in_batched
    # Batch-innermost layout: each matrix entry becomes one contiguous length-N
    # vector, so the straight-line code vectorises along the batch.
    matrix = jnp.moveaxis(matrix, 0, -1)
    factor = _cholesky_factor_entries(_entries(matrix))
    return factor, jax.tree_util.tree_map(lambda _: True, factor)


class UnrolledSmallCholesky(lx.AbstractLinearSolver[_UnrolledSmallCholeskyState]):
    """Cholesky decomposition, generated as straight-line code for the static size of
    the operator: no loops, no LAPACK call. It needs no pivoting and half the
    arithmetic of [`lineax_kernels.UnrolledSmallLU`][]. For many tiny systems under
    `jax.vmap` it is much faster than [`lineax.Cholesky`][], which calls LAPACK once
    per matrix.

    The operator must be square and tagged `lx.positive_semidefinite_tag` or
    `lx.negative_semidefinite_tag` (a negative definite operator is factorised as
    `-A`, as `lineax.Cholesky` does). Only its lower triangle is read (for a complex
    operator: it must be Hermitian). As for `lineax.Cholesky`, the operator must in
    fact be positive (negative) definite: a matrix that is not, semidefinite or
    indefinite, gives a non-finite solution and so `RESULTS.singular`, never a finite
    wrong answer; so does non-finite input.

    Under `jax.vmap` the factorisation and the solve run in a batch-innermost layout
    (each matrix entry one vector along the batch). Under `jax.vmap` over the
    right-hand side only, the operator is factorised once. `transpose` and `conj`
    reuse the factor: for a Hermitian $A = L L^H$ both $A^T$ and $\\bar{A}$ equal
    $\\bar{L} \\bar{L}^H$, so both only flip a static flag that conjugates the
    factor as it is read.

    !!! warning

        The generated program grows like `size**3 / 6` (half the LU's, with no
        pivot selects), and so does XLA's compile time: on a CPU the first call of a
        vmapped solve takes about 1 s at size 4, 2 s at 8, 4 s at 12 and 5 s at 16
        (UnrolledSmallLU: 2 s at 8, 15 s at 16). Run time, pure JAX on a CPU,
        vmapped: about 20x faster than vmapped `lineax.Cholesky` at size 2, 4x at
        4, 2-2.5x from 8 to 16, and 0.2-0.6x the time of `UnrolledSmallLU` from
        size 4 (see `benchmarks/`). `max_size=8` by default, like `UnrolledSmallLU`,
        to keep compile times to a couple of seconds; raising it to 16 works.
    """

    max_size: int = 8

    def __check_init__(self):
        if isinstance(self.max_size, int) and self.max_size < 1:
            raise ValueError(
                "`UnrolledSmallCholesky(max_size=...)` must be at least 1."
            )

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if operator.in_size() != operator.out_size():
            raise ValueError(
                "`UnrolledSmallCholesky` may only be used for linear solves with "
                f"square matrices; got an operator of shape ({operator.out_size()}, "
                f"{operator.in_size()}). Use `lx.AutoLinearSolver(well_posed=None)` "
                "or `lx.QR()` instead."
            )
        is_nsd = lx.is_negative_semidefinite(operator)
        if not (lx.is_positive_semidefinite(operator) or is_nsd):
            raise ValueError(
                "`UnrolledSmallCholesky` may only be used for positive or negative "
                "definite operators (tagged `lx.positive_semidefinite_tag` or "
                "`lx.negative_semidefinite_tag`). Use `lxk.UnrolledSmallLU()` or "
                "`lx.LU()` instead."
            )
        size = operator.in_size()
        if size > self.max_size:
            raise ValueError(
                f"`UnrolledSmallCholesky` got an operator of size {size}, above its "
                f"limit `max_size={self.max_size}` (straight-line code grows as "
                "size**3 and so does its compile time). Use `lx.Cholesky()` instead."
            )
        if size == 0:
            raise ValueError("`UnrolledSmallCholesky` cannot solve a system of size 0.")
        matrix = operator.as_matrix()
        if is_nsd:
            matrix = -matrix
        factor = _cholesky_factor(matrix)
        packed_structures = lxi.pack_structures(operator)
        return factor, packed_structures, eqxi.Static(is_nsd), eqxi.Static(False)

    # The solve is two substitutions with the factor: `L y = b`, then `L^H x = y`.
    # With the `conj` flag set the factor is read conjugated, which solves with
    # `conj(L) conj(L)^H = conj(A)`; so the second substitution always reads it with
    # the opposite conjugation to the first.
    def compute(
        self,
        state: _UnrolledSmallCholeskyState,
        vector: PyTree[Array],
        options: dict[str, Any],
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        factor, packed_structures, is_nsd, conj = state
        del state, options
        vector = lxi.ravel_vector(vector, packed_structures)
        solve = make_substitution(((False, conj.value), (True, not conj.value)))
        solution = solve(factor, vector)
        if is_nsd.value:
            solution = -solution
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _UnrolledSmallCholeskyState, options: dict[str, Any]):
        # A Hermitian: A^T = conj(A). (Keeping the factor as it is, as if A^T = A,
        # would be wrong for complex A: lineax's own `Cholesky.transpose` needed a
        # `conj` for this.)
        factor, packed_structures, is_nsd, conj = state
        transposed_packed_structures = lxi.transpose_packed_structures(
            packed_structures
        )
        transpose_state = (
            factor,
            transposed_packed_structures,
            is_nsd,
            eqxi.Static(not conj.value),
        )
        return transpose_state, options

    def conj(self, state: _UnrolledSmallCholeskyState, options: dict[str, Any]):
        factor, packed_structures, is_nsd, conj = state
        conj_state = (factor, packed_structures, is_nsd, eqxi.Static(not conj.value))
        return conj_state, options

    def assume_full_rank(self):
        return True


UnrolledSmallCholesky.__init__.__doc__ = """**Arguments:**

- `max_size`: the largest operator size accepted (default 8). Above it `init`
    raises a `ValueError`; use [`lineax.Cholesky`][] there. Raising it works, at
    the compile times in `benchmarks/`.
"""
