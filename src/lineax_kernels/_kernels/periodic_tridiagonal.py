"""Periodic tridiagonal solves, by folding the ring into a block tridiagonal matrix
with 2 x 2 blocks and factorising that with `block_tridiagonal`'s pivoted
elimination.

This differs from the textbook treatments of periodic tridiagonal systems (the
Sherman-Morrison formula around a tridiagonal solve, or a bordered system with the
last unknown eliminated last) in one way: both of those divide by the pivots of the
tridiagonal part without the corners, which may be singular (or nearly) when the
whole matrix is not, so neither is stable in general. Folding the ring instead
makes the problem a block tridiagonal one, and `BlockTridiagonal`'s partial
pivoting sees every nonzero of each column.
"""

import functools as ft

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Inexact

from . import block_tridiagonal


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
def fold_operator(diagonal, lower_diagonal, upper_diagonal):
    (n,) = diagonal.shape
    sources, *tables = _fold_tables(n)[:4]
    dtype = diagonal.dtype
    source = jnp.concatenate(
        [diagonal, lower_diagonal, upper_diagonal, jnp.array([0, 1], dtype)]
    )
    return tuple(sum(source[t[s]] for s in range(sources)) for t in tables)


@ft.partial(jax.jit, static_argnums=(2, 3))
def solve(
    factors: block_tridiagonal.Factors,
    vector: Inexact[Array, " size"],
    transpose: bool,
    unroll: int,
) -> Inexact[Array, " size"]:
    (n,) = vector.shape
    *_, rhs, position = _fold_tables(n)
    source = jnp.concatenate([vector, jnp.zeros((1,), vector.dtype)])
    folded = block_tridiagonal.solve(factors, source[rhs], transpose, unroll)
    return folded.reshape(-1)[position]


def solve_via_bands(blocks, vector, trans: bool, conj: bool, backend, unroll: int):
    """As `solve`, but from the folded blocks rather than their factors: on CPU the
    native banded kernel solves the folded matrix (bandwidth 3) in one pass (see
    `block_tridiagonal.solve_via_bands`)."""
    (n,) = vector.shape
    *_, rhs, position = _fold_tables(n)
    source = jnp.concatenate([vector, jnp.zeros((1,), vector.dtype)])
    folded = block_tridiagonal.solve_via_bands(
        blocks, source[rhs].reshape(-1), trans, conj, backend, unroll
    )
    return folded[position]
