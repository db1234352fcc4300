import functools as ft
from typing import Any, TypeAlias

import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi
import numpy as np
from jaxtyping import Array, Inexact, PyTree

from .._operator import PeriodicTridiagonalLinearOperator
from .block_tridiagonal import _conj_factors, _factor, _Factors, _solve


# The factors of the folded 2 x 2 block tridiagonal matrix (see `_fold_tables`).
_PeriodicTridiagonalState: TypeAlias = tuple[
    _Factors, lxi.PackedStructures, eqxi.Static
]


@ft.cache
def _fold_tables(n: int):
    """Static index tables for the "folding" of a periodic tridiagonal matrix of size
    `n` into a block tridiagonal one with `h = ceil(n / 2)` blocks of size 2.

    Unknown `i` goes to block `min(i, n - 1 - i)`, slot 0 if `i <= n - 1 - i` else 1:
    the blocks are `(0, n - 1), (1, n - 2), ...`, and for odd `n` the middle unknown
    is paired with a dummy unknown (identity row and column). Neighbours on the ring,
    `i` and `i +- 1 mod n`, then always lie in the same or in adjacent blocks, so
    `Q A Q^T` (with `Q` this symmetric permutation, plus the dummy) is block
    tridiagonal.

    Returns `(sources, diagonal, lower, upper, rhs, solution)`: the entries of the
    folded blocks are `sum(source[t] for t in table)` over the `sources` columns of
    each table, where `source = concatenate([diagonal, lower, upper, [0, 1]])`
    (several entries of A coincide for n <= 2, and are summed); `rhs` gathers the
    folded right-hand side from `concatenate([b, [0]])`, and `solution` the unfolded
    solution from the flattened folded one.
    """
    h = (n + 1) // 2
    i = np.arange(n)
    block = np.minimum(i, n - 1 - i)
    slot = (i > n - 1 - i).astype(np.int64)
    zero_source, one_source = 3 * n, 3 * n + 1
    # Flat positions in the concatenation of the folded D (h, 2, 2), L and U
    # (h - 1, 2, 2 each).
    size = 4 * h + 8 * (h - 1)
    flats, srcs = [], []
    for offset, col in ((0, i), (n, (i - 1) % n), (2 * n, (i + 1) % n)):
        rel = block[col] - block
        assert np.all(np.abs(rel) <= 1)
        entry = 2 * slot + slot[col]
        flats.append(
            np.where(
                rel == 0,
                4 * block + entry,
                np.where(
                    rel == -1,
                    4 * h + 4 * block[col] + entry,
                    4 * h + 4 * (h - 1) + 4 * block + entry,
                ),
            )
        )
        srcs.append(offset + i)
    flat, src = np.concatenate(flats), np.concatenate(srcs)
    if n % 2 == 1:
        flat = np.append(flat, 4 * (h - 1) + 3)
        src = np.append(src, one_source)
    # Entries landing on the same position (n <= 2) go to successive table rows.
    order = np.argsort(flat, kind="stable")
    flat, src = flat[order], src[order]
    first = np.searchsorted(flat, flat, side="left")
    rank = np.arange(len(flat)) - first
    sources = int(rank.max()) + 1
    table = np.full((sources, size), zero_source, np.int32)
    table[rank, flat] = src
    diagonal = table[:, : 4 * h].reshape(sources, h, 2, 2)
    lower = table[:, 4 * h : 4 * h + 4 * (h - 1)].reshape(sources, h - 1, 2, 2)
    upper = table[:, 4 * h + 4 * (h - 1) :].reshape(sources, h - 1, 2, 2)
    position = 2 * block + slot
    rhs = np.full(2 * h, n, np.int32)
    rhs[position] = i
    return sources, diagonal, lower, upper, rhs.reshape(h, 2), position.astype(np.int32)


@jax.jit
def _fold_operator(diagonal, lower_diagonal, upper_diagonal):
    (n,) = diagonal.shape
    sources, *tables = _fold_tables(n)[:4]
    dtype = diagonal.dtype
    source = jnp.concatenate(
        [diagonal, lower_diagonal, upper_diagonal, jnp.array([0, 1], dtype)]
    )
    return tuple(sum(source[t[s]] for s in range(sources)) for t in tables)


# This differs from the textbook treatments of periodic tridiagonal systems (the
# Sherman-Morrison formula around a tridiagonal solve, or a bordered system with the
# last unknown eliminated last) in one way: both of those divide by the pivots of the
# tridiagonal part without the corners, which may be singular (or nearly) when the
# whole matrix is not, so neither is stable in general. Folding the ring instead
# makes the problem a block tridiagonal one, and `BlockTridiagonal`'s partial
# pivoting sees every nonzero of each column.
class PeriodicTridiagonal(lx.AbstractLinearSolver[_PeriodicTridiagonalState]):
    """Gaussian elimination with partial pivoting for
    [`lineax_kernels.PeriodicTridiagonalLinearOperator`][]s (tridiagonal plus the two
    corners).

    The ring of unknowns is folded in half, pairing unknown `i` with unknown
    `n - 1 - i` (and the middle one of an odd `n` with a dummy): in that order the
    matrix is block tridiagonal with `2 x 2` blocks, and it is factorised by the
    pivoted block elimination of [`lineax_kernels.BlockTridiagonal`][], one
    `jax.lax.scan` step per pair. `init` factorises; `compute` substitutes; the
    transposed and conjugated solves reuse the factors.

    **Pivoting.** Partial (row) pivoting over every nonzero of each column of the
    folded matrix, which is a symmetric permutation of the original one: this is
    Gaussian elimination with partial pivoting on $A$ (in a different elimination
    order), backward stable for any nonsingular periodic tridiagonal matrix,
    including those whose tridiagonal part without the corners is singular (where the
    Sherman-Morrison formula fails). A singular matrix (an exactly zero pivot) gives a
    non-finite solution, which `lineax.linear_solve` reports as `RESULTS.singular`.
    """

    unroll: int = 1

    def __check_init__(self):
        if isinstance(self.unroll, int) and self.unroll < 1:
            raise ValueError("`PeriodicTridiagonal(unroll=...)` must be at least 1.")

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if isinstance(operator, lx.TridiagonalLinearOperator):
            operator = PeriodicTridiagonalLinearOperator.from_tridiagonal(operator)
        if not isinstance(operator, PeriodicTridiagonalLinearOperator):
            raise ValueError(
                "`PeriodicTridiagonal` may only be used for linear solves with "
                "`lxk.PeriodicTridiagonalLinearOperator`s (or "
                "`lx.TridiagonalLinearOperator`s); got "
                f"`{type(operator).__name__}`. Use `lxk.ScanTridiagonal()` for "
                "tridiagonal operators, and `lx.LU()` for dense ones."
            )
        blocks = _fold_operator(
            operator.diagonal, operator.lower_diagonal, operator.upper_diagonal
        )
        factors = _factor(*blocks, self.unroll)
        return factors, lxi.pack_structures(operator), eqxi.Static(False)

    def compute(
        self,
        state: _PeriodicTridiagonalState,
        vector: PyTree[Array],
        options: dict[str, Any],
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        factors, packed_structures, transpose = state
        del state, options
        vector = lxi.ravel_vector(vector, packed_structures)
        solution = _periodic_solve(factors, vector, transpose.value, self.unroll)
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _PeriodicTridiagonalState, options: dict[str, Any]):
        # Q A^T Q^T = (Q A Q^T)^T: the transposed folded solve.
        factors, packed_structures, transpose = state
        transposed = lxi.transpose_packed_structures(packed_structures)
        return (factors, transposed, eqxi.Static(not transpose.value)), options

    def conj(self, state: _PeriodicTridiagonalState, options: dict[str, Any]):
        factors, packed_structures, transpose = state
        return (_conj_factors(factors), packed_structures, transpose), options

    def assume_full_rank(self):
        return True


@ft.partial(jax.jit, static_argnums=(2, 3))
def _periodic_solve(
    factors: _Factors, vector: Inexact[Array, " size"], transpose: bool, unroll: int
) -> Inexact[Array, " size"]:
    (n,) = vector.shape
    *_, rhs, position = _fold_tables(n)
    source = jnp.concatenate([vector, jnp.zeros((1,), vector.dtype)])
    folded = _solve(factors, source[rhs], transpose, unroll)
    return folded.reshape(-1)[position]


PeriodicTridiagonal.__init__.__doc__ = """**Arguments:**

- `unroll`: number of scan steps to unroll; see `jax.lax.scan`.
"""
