"""Small dense Cholesky: the twin of `csrc/small_cholesky.h`.

The pure-JAX kernel is straight-line code generated for the static size up to
`_STRAIGHT_LINE_MAX`, in a batch-innermost layout under `jax.vmap`, and rolled
`lax.fori_loop`s above.
"""

from typing import NamedTuple

import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Inexact

from .. import _native
from .._misc import batch_innermost, compute_once
from .small_triangular import make_substitution, scale, Triangle


TARGET = _native.Target("lxk_small_cholesky_solve", core_ndims=(2, 1))


class Flags(NamedTuple):
    """`negate`: A is negative definite (`-A` is factorised and the solution
    negated); solve with `op(A)`, as `_misc.Op`. For Hermitian A both A^T and
    conj(A) are conj(A), so the kernels see only `conj = trans != conj`."""

    negate: bool
    trans: bool = False
    conj: bool = False


class _Attrs(NamedTuple):
    conj: bool
    negate: bool


def _cholesky_factor_entries(a: list[list[Array]]) -> Triangle:
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

    Every entry of the factor is materialised (`_misc.compute_once`) once computed,
    at every size: else XLA recomputes it in each consumer, LLVM contracts each copy
    into FMAs differently, and the factor stops being consistent with itself (the
    same problem, and fix, as in `small_triangular._triangular_solve_entries`).
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
        inverse = compute_once(1 / jnp.sqrt(pivot))
        inverse_diagonal.append(inverse)
        for i in range(j + 1, d):
            acc = a[i][j]
            for k in range(j):
                acc = acc - strict[i, k] * jnp.conj(strict[j, k])
            strict[i, j] = compute_once(scale(acc, inverse))
    strict_entries = tuple(strict[i, j] for i in range(d) for j in range(i))
    return strict_entries, tuple(inverse_diagonal)


def _entries(matrix: Array) -> list[list[Array]]:
    d = matrix.shape[0]
    return [[matrix[i, j] for j in range(d)] for i in range(d)]


def _entries(matrix: Array) -> list[list[Array]]:
    d = matrix.shape[0]
    return [[matrix[i, j] for j in range(d)] for i in range(d)]


_factor = batch_innermost(lambda matrix: _cholesky_factor_entries(_entries(matrix)))


def _cholesky_solve_rolled(
    matrix: Inexact[Array, "d d"], vector: Inexact[Array, " d"]
) -> Inexact[Array, " d"]:
    """The same Cholesky solve (left-looking factorisation reading only the lower
    triangle and the real part of the diagonal, then `L y = b`, `L^H x = y`, with
    the reciprocal diagonal) as `lax.fori_loop`s over columns and rows: a program
    whose size does not grow with `d`, for sizes where straight-line code takes too
    long to trace and compile. For one system; batches by `jax.vmap`. Only the loop
    counter indexes arrays, so under `jax.vmap` every step is elementwise work and
    small reductions. A pivot that is not positive gives a non-finite solution, as
    in the straight-line kernel.
    """
    d = matrix.shape[0]
    rows = jnp.arange(d)
    lower = jnp.where(rows[:, None] > rows[None, :], matrix, 0)
    diagonal = jnp.real(jnp.diagonal(matrix))

    def column(j, carry):
        factor, inverse = carry  # strictly lower L, filled up to column j - 1
        l_j = factor[j]  # row j of L: zero from column j on
        pivot = diagonal[j] - jnp.sum(jnp.real(l_j * jnp.conj(l_j)))
        r = 1 / jnp.sqrt(pivot)
        col = lower[:, j] - factor @ jnp.conj(l_j)
        in_column = (rows[None, :] == j) & (rows[:, None] > j)
        factor = jnp.where(in_column, scale(col, r)[:, None], factor)
        inverse = jnp.where(rows == j, r, inverse)
        return factor, inverse

    factor, inverse = lax.fori_loop(
        0, d, column, (jnp.zeros_like(lower), jnp.zeros_like(diagonal))
    )

    def forward(i, y):
        acc = vector[i] - jnp.sum(factor[i] * y)
        return jnp.where(rows == i, scale(acc, inverse[i]), y)

    def back(k, x):
        i = d - 1 - k
        acc = y[i] - jnp.sum(jnp.conj(factor[:, i]) * x)
        return jnp.where(rows == i, scale(acc, inverse[i]), x)

    y = lax.fori_loop(0, d, forward, jnp.zeros_like(vector))
    return lax.fori_loop(0, d, back, jnp.zeros_like(vector))


# Up to this size the pure-JAX kernel is straight-line code; above it, rolled loops
# (`_cholesky_solve_rolled`), because the straight-line program's trace and lowering
# time grow like d**3, and `lax.platform_dependent` traces and lowers the pure-JAX
# branch on CPU too, where the native kernel runs: a first vmapped call at d = 8
# took 1.1 s with straight-line code up to 8, against 0.6 s with the rolled loops
# (as for vmapped `lx.Cholesky`). The rolled loops are slower to run (on CPU 7 us
# per system at d = 8, against 0.4 us straight-line): that is the GPU path's and
# `backend="jax"`'s cost of keeping first calls short.
_STRAIGHT_LINE_MAX = 4


def pure_solve(matrix, vector, *, conj: bool, negate: bool):
    if negate:
        matrix = -matrix
    if matrix.shape[0] <= _STRAIGHT_LINE_MAX:
        # With `conj` the factor is read conjugated, which solves with
        # `conj(L) conj(L)^H = conj(A)`; so the second substitution always reads it
        # with the opposite conjugation to the first.
        solve = make_substitution(((False, conj), (True, not conj)))
        x = solve(_factor(matrix), vector)
    else:
        x = _cholesky_solve_rolled(matrix.conj() if conj else matrix, vector)
    return -x if negate else x


def solve(matrix, vector, flags: Flags, backend):
    """Solves `op(A) x = b` for Hermitian definite A: natively on CPU, in pure JAX
    elsewhere (or everywhere if so asked)."""
    attrs = _Attrs(conj=flags.trans != flags.conj, negate=flags.negate)
    return _native.dispatch(TARGET, pure_solve, backend, attrs, matrix, vector)
