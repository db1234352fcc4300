import functools as ft
from typing import Any, TypeAlias

import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, Bool, Inexact, PyTree


# The LU factors of one n x n tridiagonal matrix, as computed by LAPACK's `?gttrf`:
# `P A = L U` where
# - `pivots` is the main diagonal of U (the pivots), shape (n,);
# - `upper1` is the first superdiagonal of U, shape (n-1,);
# - `upper2` is the second superdiagonal of U (the fill-in created by row swaps),
#     padded with a trailing zero to shape (n-1,); `None` without pivoting;
# - `multipliers` is the subdiagonal of the unit lower bidiagonal L, shape (n-1,);
# - `swaps[i]` says whether rows i and i+1 were swapped at step i; `None` without
#     pivoting.
# Each is one array along the band (no gathers: the permutation is stored as booleans
# and applied with selects). Under `jax.vmap` every leaf of the state gets a leading
# batch axis; inside the kernels below, further axes come after the band axis.
_Factors: TypeAlias = tuple[
    Inexact[Array, "n ..."],
    Inexact[Array, "n-1 ..."],
    Inexact[Array, "n-1 ..."] | None,
    Inexact[Array, "n-1 ..."],
    Bool[Array, "n-1 ..."] | None,
]
_ScanTridiagonalState: TypeAlias = tuple[_Factors, lxi.PackedStructures, eqxi.Static]


def _abs1(x: Array) -> Array:
    # LAPACK's `cabs1`: |Re x| + |Im x|, the cheap magnitude `?gttrf` pivots on.
    if jnp.iscomplexobj(x):
        return jnp.abs(x.real) + jnp.abs(x.imag)
    return jnp.abs(x)


#
# Kernels. Each works on one system in "band-major" layout: the band runs along axis 0
# and any further axes (`...`) are independent systems, so that under `jax.vmap` the
# scans run along the band and carry whole vectors of systems. Factors and right-hand
# side may have different trailing axes (a factor of shape `(n,)` with a right-hand
# side of shape `(n, batch)` reuses one factorisation for `batch` right-hand sides).
#


def _factor_kernel(
    diagonal: Inexact[Array, "n ..."],
    lower_diagonal: Inexact[Array, "n-1 ..."],
    upper_diagonal: Inexact[Array, "n-1 ..."],
    pivoting: bool,
    unroll: int,
) -> _Factors:
    """Gaussian elimination along the band (LAPACK `?gttrf`).

    Step `i` holds the active row `i` (entries `a` in column `i` and `b` in column
    `i+1`; everything left of column `i` has been eliminated) and meets row `i+1` of
    $A$: `(l, d, u)` in columns `i, i+1, i+2`. With pivoting, if `|l| > |a|` the two
    rows are swapped first, which puts `u` into row `i` of U (the fill-in `upper2`).
    Then row `i+1` minus `m` times row `i` becomes the next active row. A zero pivot
    gives `m = 0/0 = NaN` (or a zero final pivot, and a division by zero when
    solving), which propagates to the solution.

    Only the active rows form a recurrence, so the `lax.scan` carries and records just
    those; everything else (swaps, multipliers, rows of U) is then computed for all
    steps at once, with the same operations on the same values as inside the scan.
    """
    n = diagonal.shape[0]
    if n == 1:
        empty = lower_diagonal
        if pivoting:
            return diagonal, empty, empty, empty, jnp.zeros(empty.shape, jnp.bool_)
        return diagonal, empty, None, empty, None
    d_next = diagonal[1:]
    if pivoting:
        # The entry in column i+2 of row i+1, zero-padded at the bottom.
        u_next = jnp.concatenate(
            [upper_diagonal[1:], jnp.zeros_like(upper_diagonal[:1])]
        )

        def step(carry, x):
            a, b = carry[0], carry[1]
            l, d, u = x
            swap = _abs1(l) > _abs1(a)
            m = jnp.where(swap, a, l) / jnp.where(swap, l, a)
            next_a = jnp.where(swap, b - m * d, d - m * b)
            next_b = jnp.where(swap, -m * u, u)
            carry = jnp.stack([next_a, next_b])
            return carry, carry

        init = jnp.stack([diagonal[0], upper_diagonal[0]])
        xs = (lower_diagonal, d_next, u_next)
        _, rows = lax.scan(step, init, xs, unroll=unroll)
        a = jnp.concatenate([diagonal[:1], rows[:-1, 0]])
        b = jnp.concatenate([upper_diagonal[:1], rows[:-1, 1]])
        last = rows[-1:, 0]
        swaps = _abs1(lower_diagonal) > _abs1(a)
        pivots = jnp.where(swaps, lower_diagonal, a)
        m = jnp.where(swaps, a, lower_diagonal) / pivots
        upper1 = jnp.where(swaps, d_next, b)
        upper2 = jnp.where(swaps, u_next, 0)
        return jnp.concatenate([pivots, last]), upper1, upper2, m, swaps
    else:
        # Thomas algorithm: no swaps, so U's superdiagonal is A's.

        def step(a, x):
            l, d, b = x
            next_a = d - (l / a) * b
            return next_a, next_a

        xs = (lower_diagonal, d_next, upper_diagonal)
        _, a = lax.scan(step, diagonal[0], xs, unroll=unroll)
        pivots = jnp.concatenate([diagonal[:1], a])
        m = lower_diagonal / pivots[:-1]
        return pivots, upper_diagonal, None, m, None


def _expand(x: Array, ndim: int) -> Array:
    # Trailing size-1 axes, so that factors and right-hand side broadcast without
    # rank promotion.
    return x.reshape(x.shape + (1,) * (ndim - x.ndim))


def _solve_kernel(
    factors: _Factors, vector: Inexact[Array, "n ..."], transpose: bool, unroll: int
) -> Inexact[Array, "n ..."]:
    """Solves `A x = b` (or `A^T x = b` if `transpose`) with the factors of
    `_factor_kernel` (LAPACK `?gtts2`). `A = P^T L U`, so `A x = b` is `L y = P b`
    (forward, the swaps interleaved with the elimination steps), then `U x = y`
    (backward); and `A^T x = b` is `U^T z = b` (forward), then `L^T P x = z`
    (backward). Each is one `lax.scan`; as in `_factor_kernel`, the `L` scans carry
    and record only the running value and the rest is done afterwards for all steps
    at once.
    """
    n = vector.shape[0]
    ndim = max(vector.ndim, factors[0].ndim)
    pivots, upper1, upper2, m, swaps = (
        None if x is None else _expand(x, ndim) for x in factors
    )
    b = _expand(vector, ndim)
    # The carry has the shape of one row of the solution.
    row_shape = jnp.broadcast_shapes(pivots.shape[1:], b.shape[1:])
    row = lambda x: jnp.broadcast_to(x, row_shape)
    if n == 1:
        return row(b[0] / pivots[0])[None]

    if not transpose:
        # L y = P b. The running value c_i is row i of P_i ... P_1 b minus what has
        # been eliminated from it so far.
        if swaps is None:

            def forward(c, x):
                b_i, m_i = x
                c = b_i - m_i * c
                return c, c

            _, c = lax.scan(forward, row(b[0]), (b[1:], m), unroll=unroll)
            y = jnp.concatenate([row(b[0])[None], c])
        else:

            def forward(c, x):
                b_i, m_i, swap = x
                c = jnp.where(swap, c - m_i * b_i, b_i - m_i * c)
                return c, c

            _, c = lax.scan(forward, row(b[0]), (b[1:], m, swaps), unroll=unroll)
            c = jnp.concatenate([row(b[0])[None], c])
            y = jnp.concatenate([jnp.where(swaps, b[1:], c[:-1]), c[-1:]])

        # U x = y: x_i = (y_i - U1_i x_{i+1} - U2_i x_{i+2}) / U0_i.
        x_last = y[-1] / pivots[-1]
        xs = (y[:-1], pivots[:-1], upper1)
        if upper2 is None:

            def backward(x1, x):
                y_i, u0, u1 = x
                x_i = (y_i - u1 * x1) / u0
                return x_i, x_i

            _, x = lax.scan(backward, x_last, xs, reverse=True, unroll=unroll)
        else:

            def backward(carry, x):
                x1, x2 = carry
                y_i, u0, u1, u2 = x
                x_i = (y_i - u1 * x1 - u2 * x2) / u0
                return (x_i, x1), x_i

            init = (x_last, jnp.zeros_like(x_last))
            xs = xs + (upper2,)
            _, x = lax.scan(backward, init, xs, reverse=True, unroll=unroll)
        return jnp.concatenate([x, x_last[None]])
    else:
        # U^T z = b: z_i = (b_i - U1_{i-1} z_{i-1} - U2_{i-2} z_{i-2}) / U0_i.
        z_first = row(b[0] / pivots[0])
        xs = (b[1:], pivots[1:], upper1)
        if upper2 is None:

            def forward(z1, x):
                b_i, u0, u1 = x
                z_i = (b_i - u1 * z1) / u0
                return z_i, z_i

            _, z = lax.scan(forward, z_first, xs, unroll=unroll)
        else:

            def forward(carry, x):
                z1, z2 = carry
                b_i, u0, u1, u2 = x
                z_i = (b_i - u1 * z1 - u2 * z2) / u0
                return (z_i, z1), z_i

            upper2_shifted = jnp.concatenate([jnp.zeros_like(upper2[:1]), upper2[:-1]])
            init = (z_first, jnp.zeros_like(z_first))
            xs = xs + (upper2_shifted,)
            _, z = lax.scan(forward, init, xs, unroll=unroll)
        z = jnp.concatenate([z_first[None], z])

        # L^T P x = z: undo the elimination steps (and swaps) last to first. The
        # running value c is the current value at position i+1, final once step i
        # is done.
        if swaps is None:

            def backward(c, x):
                z_i, m_i = x
                c = z_i - m_i * c
                return c, c

            _, x = lax.scan(backward, z[-1], (z[:-1], m), reverse=True, unroll=unroll)
            return jnp.concatenate([x, z[-1:]])
        else:

            def backward(c, x):
                z_i, m_i, swap = x
                c = jnp.where(swap, c, z_i - m_i * c)
                return c, c

            xs = (z[:-1], m, swaps)
            _, c = lax.scan(backward, z[-1], xs, reverse=True, unroll=unroll)
            # c[i] is the running value after step i, so before step i it is c[i+1].
            c_before = jnp.concatenate([c[1:], z[-1:]])
            x = jnp.where(swaps, z[:-1] - m * c_before, c_before)
            return jnp.concatenate([c[:1], x])


#
# `custom_vmap` wrappers: under `jax.vmap` the batch axis (leading, as vmap hands it
# over) is moved to the end, the kernels run once on the whole batch, and the batch
# axis is moved back to the front. Within one `jit`, XLA cancels the transpose of the
# factors on the way out of `init` against the one on the way into `compute`.
#


def _band_major(x, batched):
    return None if x is None else (jnp.moveaxis(x, 0, -1) if batched else x)


def _batch_major(x, axis_size):
    if x is None:
        return None
    x = jnp.broadcast_to(x, x.shape[:1] + (axis_size,))
    return jnp.moveaxis(x, -1, 0)


@ft.cache
def _make_factor(pivoting: bool, unroll: int):
    @jax.custom_batching.custom_vmap
    def factor(diagonal, lower_diagonal, upper_diagonal):
        return _factor_kernel(
            diagonal, lower_diagonal, upper_diagonal, pivoting, unroll
        )

    @factor.def_vmap
    def factor_vmap(axis_size, in_batched, diagonal, lower_diagonal, upper_diagonal):
        diagonals = [
            jnp.broadcast_to(_band_major(x, b), x.shape[-1:] + (axis_size,))
            for x, b in zip((diagonal, lower_diagonal, upper_diagonal), in_batched)
        ]
        # Materialise the band-major copies once: otherwise XLA fuses the transposes
        # into every consumer, each then reading with a stride of `n`.
        diagonals = lax.optimization_barrier(diagonals)
        factors = _factor_kernel(*diagonals, pivoting, unroll)
        factors = tuple(_batch_major(x, axis_size) for x in factors)
        return factors, jax.tree.map(lambda _: True, factors)

    return factor


@ft.cache
def _make_solve(transpose: bool, unroll: int):
    @jax.custom_batching.custom_vmap
    def solve(factors, vector):
        return _solve_kernel(factors, vector, transpose, unroll)

    @solve.def_vmap
    def solve_vmap(axis_size, in_batched, factors, vector):
        factors_batched, vector_batched = in_batched
        factors = tuple(
            _band_major(x, b)
            for x, b in zip(factors, factors_batched, strict=True)  # pyright: ignore
        )
        vector = lax.optimization_barrier(_band_major(vector, vector_batched))
        solution = _solve_kernel(factors, vector, transpose, unroll)  # pyright: ignore
        return _batch_major(solution, axis_size), True

    return solve


class ScanTridiagonal(lx.AbstractLinearSolver[_ScanTridiagonalState]):
    """Gaussian elimination with partial pivoting for tridiagonal systems, written as
    `jax.lax.scan`s along the band, as in LAPACK's `?gttrf`/`?gttrs`.

    `init` factorises the operator once ($PA = LU$, with $U$ having two
    superdiagonals); `compute` runs a forward and a backward substitution scan. So
    `jax.vmap` over the right-hand side only reuses one factorisation, and the
    transposed and conjugated solves (used by reverse-mode autodiff and
    `jax.linear_transpose`) reuse the same factors.

    Under `jax.vmap` (over the operator, the right-hand side, or both) the scans run
    along the band and carry the whole batch, each step updating one vector across all
    systems. This is several times faster on CPU than [`lineax.Tridiagonal`][], which
    calls LAPACK once per system. A single large system (no `vmap`) is a scan with a
    scalar carry, bound by per-step latency.

    This solver can only handle square nonsingular tridiagonal operators. An exactly
    zero pivot (after pivoting) produces a non-finite solution, so that
    `lineax.linear_solve` reports `RESULTS.singular`.

    !!! warning

        With `pivoting=False` this is the Thomas algorithm, which is stable for
        diagonally dominant or symmetric positive definite matrices only. On other
        matrices (for example a zero on the main diagonal) it may return
        `RESULTS.singular` or an inaccurate solution.
    """

    pivoting: bool = True
    unroll: int = 1

    def __check_init__(self):
        if not isinstance(self.pivoting, bool):
            raise ValueError("`ScanTridiagonal(pivoting=...)` must be a bool.")
        if isinstance(self.unroll, int) and self.unroll < 1:
            raise ValueError("`ScanTridiagonal(unroll=...)` must be at least 1.")

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if operator.in_size() != operator.out_size():
            raise ValueError(
                "`ScanTridiagonal` may only be used for linear solves with square "
                f"matrices; got an operator of shape ({operator.out_size()}, "
                f"{operator.in_size()})."
            )
        if not lx.is_tridiagonal(operator):
            raise ValueError(
                "`ScanTridiagonal` may only be used for linear solves with tridiagonal "
                "matrices (operators with `lx.tridiagonal_tag`, such as "
                "`lx.TridiagonalLinearOperator`). For dense operators use `lx.LU()`, "
                "or `lxk.UnrolledSmallLU()` for small ones."
            )
        if operator.in_size() == 0:
            raise ValueError("`ScanTridiagonal` cannot solve a system of size 0.")
        packed_structures = lxi.pack_structures(operator)
        # lineax stops gradients through the state anyway; doing it here too keeps
        # autodiff away from `custom_vmap`, which has no reverse-mode rule.
        diagonals = lax.stop_gradient(lx.tridiagonal(operator))
        factors = _make_factor(self.pivoting, self.unroll)(*diagonals)
        return factors, packed_structures, eqxi.Static(False)

    # This differs from `lx.Tridiagonal` (LAPACK `?gtsv`, which factorises and solves
    # in one call) in a few ways:
    # 1. The factorisation is kept in the state, so `compute` only substitutes.
    # 2. The transposed solve uses the same factors (LAPACK `?gttrs` with
    #     `trans='T'`), selected by a static flag in the state.
    # 3. Row swaps are stored as booleans and applied with selects, not gathers.
    # 4. A zero pivot is not reported by an `info` code: it gives inf/NaN, which
    #     `lx.linear_solve` turns into `RESULTS.singular`.
    def compute(
        self,
        state: _ScanTridiagonalState,
        vector: PyTree[Array],
        options: dict[str, Any],
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        factors, packed_structures, transpose = state
        del state, options
        vector = lxi.ravel_vector(vector, packed_structures)
        solution = _make_solve(transpose.value, self.unroll)(factors, vector)
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _ScanTridiagonalState, options: dict[str, Any]):
        factors, packed_structures, transpose = state
        transposed_packed_structures = lxi.transpose_packed_structures(
            packed_structures
        )
        transpose_state = (
            factors,
            transposed_packed_structures,
            eqxi.Static(not transpose.value),
        )
        return transpose_state, options

    def conj(self, state: _ScanTridiagonalState, options: dict[str, Any]):
        # P A = L U  =>  P conj(A) = conj(L) conj(U), and `?gttrf` pivots on
        # |Re| + |Im|, which conjugation leaves alone: conjugate the factors, keep the
        # swaps and the transpose flag.
        (pivots, upper1, upper2, m, swaps), packed_structures, transpose = state
        conj_factors = (
            pivots.conj(),
            upper1.conj(),
            None if upper2 is None else upper2.conj(),
            m.conj(),
            swaps,
        )
        return (conj_factors, packed_structures, transpose), options

    def assume_full_rank(self):
        return True


ScanTridiagonal.__init__.__doc__ = """**Arguments:**

- `pivoting`: whether to use partial (row) pivoting. Defaults to `True`, which is
    stable for any nonsingular tridiagonal matrix, like [`lineax.Tridiagonal`][].
    `False` gives the Thomas algorithm: faster, but only stable for diagonally
    dominant or symmetric positive definite matrices.
- `unroll`: number of scan steps to unroll; see `jax.lax.scan`. On CPU `1` (the
    default) is usually fastest.
"""
