"""Banded solves with partial pivoting as LAPACK `?gbtrf`/`?gbtrs`: the twin of
`csrc/banded.h`.

A matrix with `lower` subdiagonals and `upper` superdiagonals is given by its bands
in `scipy.linalg.solve_banded`'s layout, `bands[upper + i - j, j] = A[i, j]`.
Gaussian elimination with partial pivoting needs only a window of it: at step `j`
the `lower + 1` rows that may hold a nonzero in column `j` (rows `j, ..., j +
lower`, in their current order after the earlier swaps), in the `w = lower + upper
+ 1` columns `j, ..., j + lower + upper` (a row swapped up brings its entries up to
`lower` columns past the `upper` superdiagonals: the fill-in). Step `j` picks the
pivot in column `j` (the first largest `|Re| + |Im|`, as `i?amax`), swaps it into
the first row of the window, which becomes row `j` of U, subtracts multiples of it
from the others, shifts the window one column right and takes in row `j + lower +
1` of A. So the whole factorisation is one `lax.scan` whose carry is the window.

The pure-JAX kernel works in "band-major" layout: the band runs along axis 0 and any
further axes (`...`) are independent systems, so that under `jax.vmap` (through
`_misc.batch_innermost`) each scan step works on whole vectors of systems.
"""

import functools as ft
from typing import Any, NamedTuple, TypeAlias

import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Inexact, Int

from .. import _native
from .._misc import abs1, batch_innermost, nonfinite_guard
from .._operator import transpose_bands


TARGET = _native.Target("lxk_banded_solve", core_ndims=(2, 1))


class Flags(NamedTuple):
    """The numbers of subdiagonals `lower` and superdiagonals `upper` of $A$, and
    which of $A$, $A^T$, $\\bar{A}$, $A^H$ to solve with, as `_misc.Op`. `op(A)` is
    factorised as it stands (its own pivots), on both kernels."""

    lower: int
    upper: int
    trans: bool = False
    conj: bool = False


# The LU factors of one banded matrix (`P A = L U` as `?gbtrf`), one entry per
# elimination step `j` along axis 0:
# - `rpivots[j]`: the reciprocal of U's diagonal entry `U[j, j]`;
# - `urows[j, c]`: `U[j, j + 1 + c]`, `c < lower + upper` (U has `lower + upper`
#     superdiagonals: `upper` from A, `lower` of fill-in);
# - `multipliers[j, r]`: the multiplier that eliminated column `j` from row `r + 1`
#     of the window (after the swap);
# - `pivots[j]`: which row of the window was swapped with its first row.
Factors: TypeAlias = tuple[
    Inexact[Array, "n ..."],
    Inexact[Array, "n w1 ..."],
    Inexact[Array, "n kl ..."],
    Int[Array, "n ..."],
]


@ft.cache
def _row_tables(n: int, lower: int, upper: int):
    """Static gather tables for the rows of A in band form: `rows[i, c] = A[i, i -
    lower + c]` for `i < n + lower + 1` (rows from `n` on are zero: they pad the
    window near the end), as `bands[band[i, c], column[i, c]]` where `valid`.
    And for the first window, `first[r, c] = A[r, c] = rows[r, c + lower - r]`
    (`r <= lower`), as `rows[r, shift[r, c]]` where `first_valid`."""
    w = lower + upper + 1
    i, c = np.indices((n + lower + 1, w))
    column = i - lower + c
    band = upper + lower - c
    valid = (i < n) & (column >= 0) & (column < n)
    r, c = np.indices((lower + 1, w))
    shift = c + lower - r
    first_valid = shift < w
    return (
        band,
        np.clip(column, 0, n - 1),
        valid,
        np.clip(shift, 0, w - 1),
        first_valid,
    )


def _expand(x: Any, ndim: int) -> Any:
    # Trailing size-1 axes (batch axes), so that arrays broadcast without rank
    # promotion.
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


def _factor_kernel(
    bands: Inexact[Array, "w n ..."], lower: int, upper: int, unroll: int
) -> Factors:
    """Banded LU with partial pivoting (`?gbtrf`) as one `lax.scan` over the
    columns; see the module docstring. A zero pivot gives an infinite reciprocal
    (and NaN multipliers), which propagate to the solution."""
    w, n = bands.shape[:2]
    batch = bands.shape[2:]
    band, column, valid, shift, first_valid = _row_tables(n, lower, upper)
    rows = jnp.where(_expand(valid, 2 + len(batch)), bands[band, column], 0)
    window = rows[np.arange(lower + 1)[:, None], shift]
    window = jnp.where(_expand(first_valid, 2 + len(batch)), window, 0)
    zero_column = jnp.zeros((lower, 1) + batch, bands.dtype)

    def step(window, new_row):
        magnitude = abs1(window[:, 0])
        pivot = jnp.argmax(magnitude, axis=0)
        # Swap rows 0 and `pivot` (selects, not gathers).
        pivot_row = window[0]
        for r in range(1, lower + 1):
            pivot_row = jnp.where(pivot[None] == r, window[r], pivot_row)
        rest = [
            jnp.where(pivot[None] == r, window[0], window[r])
            for r in range(1, lower + 1)
        ]
        rpivot = 1 / pivot_row[0]
        if lower:
            rest = jnp.stack(rest)
            multipliers = rest[:, 0] * rpivot[None]
            rest = rest[:, 1:] - multipliers[:, None] * pivot_row[None, 1:]
            rest = jnp.concatenate([rest, zero_column], axis=1)
            window = jnp.concatenate([rest, new_row[None]])
        else:
            multipliers = jnp.zeros((0,) + batch, bands.dtype)
            window = new_row[None]
        return window, (rpivot, pivot_row[1:], multipliers, pivot)

    _, factors = lax.scan(step, window, rows[lower + 1 :], unroll=unroll)
    return factors


def _solve_kernel(
    factors: Factors, vector: Inexact[Array, "n ..."], unroll: int
) -> Inexact[Array, "n ..."]:
    """Solves `A x = b` with the factors of `_factor_kernel` (`?gbtrs`): the swaps
    and eliminations of the factorisation on `b` (one forward scan, carrying the
    window's right-hand sides), then back substitution with U (one backward scan,
    carrying the last `lower + upper` entries of x)."""
    rpivots, urows, multipliers, pivots = factors
    n = vector.shape[0]
    lower = multipliers.shape[1]
    w1 = urows.shape[1]
    batch = jnp.broadcast_shapes(rpivots.shape[1:], vector.shape[1:])
    dtype = jnp.result_type(rpivots, vector)
    nb = len(batch)
    rpivots = _expand(rpivots, 1 + nb)
    urows = _expand(urows, 2 + nb)
    multipliers = _expand(multipliers, 2 + nb)
    pivots = _expand(pivots, 1 + nb)
    b = jnp.broadcast_to(_expand(vector, 1 + nb), (n,) + batch).astype(dtype)
    b = jnp.concatenate([b, jnp.zeros((lower + 1,) + batch, dtype)])

    def forward(c, xs):
        b_new, m, pivot = xs
        y = c[0]
        for r in range(1, lower + 1):
            y = jnp.where(pivot == r, c[r], y)
        if lower:
            rest = jnp.stack(
                [jnp.where(pivot == r, c[0], c[r]) for r in range(1, lower + 1)]
            )
            c = jnp.concatenate([rest - m * y[None], b_new[None]])
        else:
            c = b_new[None]
        return c, y

    _, y = lax.scan(
        forward,
        b[: lower + 1],
        (b[lower + 1 :], multipliers, pivots),
        unroll=unroll,
    )

    def backward(x_next, xs):
        y_j, u, rp = xs
        x = (y_j - jnp.sum(u * x_next, axis=0)) * rp
        if w1 == 0:
            return x_next, x
        return jnp.concatenate([x[None], x_next[:-1]]), x

    x_last = jnp.zeros((w1,) + batch, dtype)
    _, x = lax.scan(backward, x_last, (y, urows, rpivots), reverse=True, unroll=unroll)
    return x


@ft.cache
def _make_factor(lower: int, upper: int, unroll: int):
    def factor(bands):
        if bands.ndim > 2:
            # Materialise the batch-innermost copy once, rather than letting XLA
            # fuse the transpose into the scan.
            bands = lax.optimization_barrier(bands)
        return _factor_kernel(bands, lower, upper, unroll)

    return batch_innermost(factor)


@ft.cache
def _make_solve(unroll: int):
    def solve(factors, vector):
        if vector.ndim > 1:
            vector = lax.optimization_barrier(vector)
        return _solve_kernel(factors, vector, unroll)

    return batch_innermost(solve)


def pure_solve(bands, vector, *, lower, upper, trans, conj, unroll=1):
    """Solves `op(A) x = b` for banded A (`bands` in `scipy.linalg.solve_banded`'s
    layout, `lower` subdiagonals, `upper` superdiagonals), in pure JAX."""
    if trans:
        bands = transpose_bands(bands, lower, upper)
        lower, upper = upper, lower
    if conj:
        bands = bands.conj()
    factors = _make_factor(lower, upper, unroll)(bands)
    # Non-finite input gives non-finite output, as in the native kernel.
    return _make_solve(unroll)(factors, vector) + nonfinite_guard(bands)


def solve(bands, vector, flags: Flags, backend, unroll: int = 1):
    """Solves `op(A) x = b` for banded A: natively on CPU, in pure JAX elsewhere (or
    everywhere if so asked). `unroll` is the pure-JAX scans'."""
    pure = ft.partial(pure_solve, unroll=unroll)
    return _native.dispatch(TARGET, pure, backend, flags, bands, vector)
