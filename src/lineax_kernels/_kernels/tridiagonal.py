"""Tridiagonal solves with partial pivoting (LAPACK `?gttrf`/`?gtts2`) or without
(the Thomas algorithm): the twin of `csrc/tridiagonal.h`.

The pure-JAX kernel works on one system in "band-major" layout: the band runs along
axis 0 and any further axes (`...`) are independent systems, so that under
`jax.vmap` (through `_misc.batch_innermost`) the scans run along the band and carry
whole vectors of systems. Factors and right-hand side may have different trailing
axes (factors of shape `(n, 1)` with a right-hand side of shape `(n, batch)` reuse
one factorisation for `batch` right-hand sides).

On CPU the batched solves are bound by memory traffic, and above all by page faults
on freshly allocated temporaries (first-touching an 8 MB temporary cost about as
much as a whole scan along the band). So every scan emits its results directly, no
pass runs outside the scans (no post-processing, no concatenations), and the factors
keep A's own bands instead of derived arrays where they can.
"""

import functools as ft
from typing import NamedTuple, TypeAlias

import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Inexact

from .. import _native
from .._misc import abs1, batch_innermost, nonfinite_guard


TARGET = _native.Target("lxk_tridiagonal_solve", core_ndims=(1, 1, 1, 1))


class Flags(NamedTuple):
    """`pivoting`: partial pivoting as `?gttrf` (else the Thomas algorithm); solve
    with `op(A)`, as `_misc.Op`. `op(A)` is factorised as it stands (A^T has A's
    diagonal and its off-diagonals exchanged; conjugation leaves the pivot choice
    alone), so both kernels pivot the same way."""

    pivoting: bool
    trans: bool = False
    conj: bool = False


# The LU factors of one n x n tridiagonal matrix, as computed by LAPACK's `?gttrf`
# (`P A = L U`), stored shifted by one along the band: entry `k` of each band array
# describes elimination step `k - 1` (row `k - 1` of U and column `k - 1` of L), and
# entry 0 is a dummy step (`rpivots = 1`, everything else zero or `False`) that lets
# every scan run over exactly `n` steps and emit its result without concatenations.
# - `rpivots` holds the reciprocals of the main diagonal of U (the pivots);
# - `upper1` is the first superdiagonal of U (without pivoting, A's superdiagonal:
#     `upper1[k] = A[k-1, k]`);
# - `multipliers` is the subdiagonal of the unit lower bidiagonal L; `None` without
#     pivoting, where it is `lower * rpivots` with `lower[k] = A[k, k-1]`, computed on
#     the fly (`lower` is `None` with pivoting);
# - `swaps` says whether rows `k - 1` and `k` were swapped; `None` without pivoting;
# - `upper[k] = A[k, k+1]` (unshifted; `None` without pivoting): the second
#     superdiagonal of U (the fill-in created by row swaps) is
#     `where(swaps, upper, 0)`, computed on the fly;
# - `rpivot_last` is the reciprocal of the last pivot (no band axis).
# Each is one array along the band (no gathers: the permutation is stored as booleans
# and applied with selects). Storing A's own bands instead of derived arrays where
# possible saves memory traffic: the band-major copies of A exist anyway. Under
# `jax.vmap` every leaf of the state gets a leading batch axis; inside the kernels
# below, further axes come after the band axis.
Factors: TypeAlias = tuple[
    Inexact[Array, "n ..."],
    Inexact[Array, "n ..."],
    Inexact[Array, "n ..."] | None,
    Inexact[Array, "n ..."] | None,
    Bool[Array, "n ..."] | None,
    Inexact[Array, "n ..."] | None,
    Inexact[Array, "..."],
]


def _sweep(step, carry, arrays, reverse: bool, unroll: int):
    """A `lax.scan` along the band of each of `arrays`, `k = 0, ..., n - 1` (or back).
    `step(carry, rows)` gets row `k` of each array (`None` for a `None` array: an
    output only) and returns the new carry and one new row per array, or `None` to
    leave that array alone. Returns the final carry and the arrays, with the new
    rows in place of the old ones.

    (Updating the arrays in place, with `lax.fori_loop` and `.at[k].set`, would save
    memory, but XLA:CPU copies the whole array in every step when the same step also
    reads it.)
    """
    written = []

    def body(carry, rows):
        carry, new = step(carry, rows)
        written[:] = [v is not None for v in new]
        return carry, tuple(v for v in new if v is not None)

    carry, ys = lax.scan(body, carry, arrays, reverse=reverse, unroll=unroll)
    ys = iter(ys)
    return carry, tuple(next(ys) if w else a for a, w in zip(arrays, written))


def _pad_band(
    diagonal: Inexact[Array, "n ..."],
    lower_diagonal: Inexact[Array, "n-1 ..."],
    upper_diagonal: Inexact[Array, "n-1 ..."],
    pivoting: bool,
) -> tuple[Inexact[Array, "n ..."], Inexact[Array, "n ..."], Inexact[Array, "n ..."]]:
    # `(lower, diagonal, upper)` with `lower[k] = A[k, k-1]` (`lower[0] = 0`), and
    # `upper[k] = A[k, k+1]` with pivoting, else `upper[k] = A[k-1, k]`.
    zero = jnp.zeros((1,) + diagonal.shape[1:], diagonal.dtype)
    lower = jnp.concatenate([zero, lower_diagonal])
    if pivoting:
        upper = jnp.concatenate([upper_diagonal, zero])
    else:
        upper = jnp.concatenate([zero, upper_diagonal])
    return lower, diagonal, upper


def _factor_kernel(
    lower: Inexact[Array, "n ..."],
    diagonal: Inexact[Array, "n ..."],
    upper: Inexact[Array, "n ..."],
    pivoting: bool,
    unroll: int,
) -> Factors:
    """Gaussian elimination along the band (LAPACK `?gttrf`), on the padded bands of
    `_pad_band`.

    Step `k` holds the active row `k - 1` (entries `a` in column `k - 1` and `b` in
    column `k`; everything left of column `k - 1` has been eliminated) and meets row
    `k` of $A$: `(l, d, u)` in columns `k - 1, k, k + 1`. With pivoting, if
    `|l| > |a|` the two rows are swapped first, which puts `u` into row `k - 1` of U
    (the fill-in). Then row `k` minus `m` times row `k - 1` becomes the next active
    row. Step 0 starts from the dummy active row `(1, 0)` and `l = 0`, so it records
    a dummy step and makes row 0 of $A$ the active row. A zero pivot gives an
    infinite reciprocal (and `m = 0 * inf = NaN`), which propagates to the solution.

    """
    one = jnp.ones(diagonal.shape[1:], diagonal.dtype)
    zero = jnp.zeros(diagonal.shape[1:], diagonal.dtype)
    if pivoting:

        def step(carry, rows):
            a, b = carry
            l, d, u, _, _ = rows
            swap = abs1(l) > abs1(a)
            rpivot = 1 / jnp.where(swap, l, a)
            m = jnp.where(swap, a, l) * rpivot
            u1 = jnp.where(swap, d, b)
            next_a = jnp.where(swap, b, d) - m * u1
            next_b = jnp.where(swap, -m * u, u)
            return (next_a, next_b), (m, rpivot, None, u1, swap)

        arrays = (lower, diagonal, upper, None, None)
        (a, _), (m, rpivots, _, upper1, swaps) = _sweep(
            step, (one, zero), arrays, False, unroll
        )
        return rpivots, upper1, m, None, swaps, upper, 1 / a
    else:
        # Thomas algorithm: no swaps, so U's superdiagonal is A's, and only the
        # pivots need storing. Here `u = A[k-1, k]` is the active row's `b`.

        def step(a, rows):
            l, d, u = rows
            rpivot = 1 / a
            return d - (l * rpivot) * u, (None, rpivot, None)

        a, (_, rpivots, _) = _sweep(step, one, (lower, diagonal, upper), False, unroll)
        return rpivots, upper, None, lower, None, None, 1 / a


def _expand(x: Array, ndim: int) -> Array:
    # Trailing size-1 axes, so that factors and right-hand side broadcast without
    # rank promotion.
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


def _solve_kernel(
    factors: Factors, vector: Inexact[Array, "n ..."], unroll: int
) -> Inexact[Array, "n ..."]:
    """Solves `A x = b` with the factors of `_factor_kernel` (LAPACK `?gtts2`).
    `A = P^T L U`, so `A x = b` is `L y = P b` (forward, the swaps interleaved with
    the elimination steps), then `U x = y` (backward). Each is one scan of `n` steps.
    As the factors are shifted by one (see `_Factors`), the forward scan emits its
    results shifted by one too (row 0 a dummy, the last value left in the carry),
    which is exactly what the backward scan reads; the backward scan emits the
    solution unshifted.
    """
    ndim = max(vector.ndim, factors[0].ndim)
    rpivots, upper1, m, lower, swaps, upper = (
        None if x is None else _expand(x, ndim) for x in factors[:6]
    )
    rpivot_last = _expand(factors[6], ndim - 1)
    # The carries have the shape of one row of the solution.
    row_shape = jnp.broadcast_shapes(rpivots.shape[1:], vector.shape[1:])
    dtype = jnp.result_type(rpivots, vector)
    b = _expand(vector, ndim)
    zero = jnp.zeros(row_shape, dtype)
    pivoting = swaps is not None

    # L y = P b, LAPACK's loop with the running value c = row k - 1 of
    # P_{k-1} ... P_0 b minus what has been eliminated from it so far. Step k
    # writes y_{k-1}.
    if pivoting:

        def forward(c, rows):
            b_k, m_k, swap = rows
            y = jnp.where(swap, b_k, c)
            return jnp.where(swap, c, b_k) - m_k * y, (y, None, None)

        c, (y, _, _) = _sweep(forward, zero, (b, m, swaps), False, unroll)
    else:

        def forward(c, rows):
            b_k, l_k, r = rows
            return b_k - (l_k * r) * c, (c, None, None)

        c, (y, _, _) = _sweep(forward, zero, (b, lower, rpivots), False, unroll)

    # U x = y: step k has x_k and x_{k+1}, writes x_k and computes
    # x_{k-1} = (y_{k-1} - U1_{k-1} x_k - U2_{k-1} x_{k+1}) / U0_{k-1}.
    x_last = c * rpivot_last
    if pivoting:

        def backward(carry, rows):
            x1, x2 = carry
            y_k, r, u1, swap, u = rows
            u2 = jnp.where(swap, u, 0)
            x0 = (y_k - u1 * x1 - u2 * x2) * r
            return (x0, x1), (x1, None, None, None, None)

        arrays = (y, rpivots, upper1, swaps, upper)
        _, (x, *_) = _sweep(backward, (x_last, zero), arrays, True, unroll)
    else:

        def backward(x1, rows):
            y_k, r, u1 = rows
            return (y_k - u1 * x1) * r, (x1, None, None)

        arrays = (y, rpivots, upper1)
        _, (x, _, _) = _sweep(backward, x_last, arrays, True, unroll)
    return x


def _broadcast_bands(*bands: Array) -> list[Array]:
    # Any subset of the bands may carry the batch (trailing) axes.
    batch = jnp.broadcast_shapes(*[x.shape[1:] for x in bands])
    return [jnp.broadcast_to(x, x.shape[:1] + batch) for x in bands]


@ft.cache
def _make_factor(pivoting: bool, unroll: int):
    def factor(diagonal, lower_diagonal, upper_diagonal):
        bands = _broadcast_bands(diagonal, lower_diagonal, upper_diagonal)
        # Materialise the padded band-major copies once (one fused pass each):
        # otherwise XLA may fuse the transposes into the scan, which then reads with
        # a stride of `n`.
        rows = lax.optimization_barrier(_pad_band(*bands, pivoting))
        return _factor_kernel(*rows, pivoting, unroll)

    return batch_innermost(factor)


@ft.cache
def _make_solve(unroll: int):
    def solve(factors, vector):
        return _solve_kernel(factors, lax.optimization_barrier(vector), unroll)

    return batch_innermost(solve)


def pure_solve(diagonal, lower, upper, vector, *, pivoting, trans, conj, unroll=1):
    """Solves `op(A) x = b` for tridiagonal A (bands `diagonal`, `lower[i] =
    A[i+1, i]`, `upper[i] = A[i, i+1]`), in pure JAX."""
    if trans:
        lower, upper = upper, lower
    if conj:
        diagonal, lower, upper = diagonal.conj(), lower.conj(), upper.conj()
    factors = _make_factor(pivoting, unroll)(diagonal, lower, upper)
    x = _make_solve(unroll)(factors, vector)
    # Non-finite input gives non-finite output, even where elimination would not
    # carry it to the solution, as in the native kernel.
    guard = nonfinite_guard(diagonal) + nonfinite_guard(lower) + nonfinite_guard(upper)
    return x + guard


def solve(diagonal, lower, upper, vector, flags: Flags, backend, unroll: int = 1):
    """Solves `op(A) x = b` for tridiagonal A: natively on CPU, in pure JAX
    elsewhere (or everywhere if so asked). `unroll` is the pure-JAX scans'."""
    pure = ft.partial(pure_solve, unroll=unroll)
    return _native.dispatch(
        TARGET, pure, backend, flags, diagonal, lower, upper, vector
    )
