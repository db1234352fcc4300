import functools as ft
from typing import Any, TypeAlias

import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, Bool, Inexact, PyTree

from .. import _native
from .._misc import abs1


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
_Factors: TypeAlias = tuple[
    Inexact[Array, "n ..."],
    Inexact[Array, "n ..."],
    Inexact[Array, "n ..."] | None,
    Inexact[Array, "n ..."] | None,
    Bool[Array, "n ..."] | None,
    Inexact[Array, "n ..."] | None,
    Inexact[Array, "..."],
]
# The state holds the operator's bands `(diagonal, lower, upper)` (`compute`
# factorises and solves in one pass) and static flags `(transpose, conj)`.
_ScanTridiagonalState: TypeAlias = tuple[
    tuple[Inexact[Array, " n"], Inexact[Array, " n-1"], Inexact[Array, " n-1"]],
    lxi.PackedStructures,
    eqxi.Static,
]


#
# Kernels. Each works on one system in "band-major" layout: the band runs along axis 0
# and any further axes (`...`) are independent systems, so that under `jax.vmap` the
# scans run along the band and carry whole vectors of systems. Factors and right-hand
# side may have different trailing axes (a factor of shape `(n,)` with a right-hand
# side of shape `(n, batch)` reuses one factorisation for `batch` right-hand sides).
#
# On CPU the batched solves are bound by memory traffic, and above all by page faults
# on freshly allocated temporaries (on the machine we measured, first-touching an
# 8 MB temporary cost about as much as a whole scan along the band). So every scan
# emits its results directly, no pass runs outside the scans (no post-processing, no
# concatenations), and the state keeps A's own bands instead of derived arrays where
# it can.
#


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
) -> _Factors:
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
    factors: _Factors, vector: Inexact[Array, "n ..."], unroll: int
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


#
# `custom_vmap` wrappers: under `jax.vmap` the batch axis (leading, as vmap hands it
# over) is moved to the end, the kernels run once on the whole batch, and the batch
# axis is moved back to the front. Both run inside `compute`, so XLA cancels the
# transpose of the factors on the way out of the factorisation against the one on
# the way into the solve.
#


def _band_major(x, batched):
    # (A 1-D batched leaf, `rpivot_last`, is its own band-major form.)
    return None if x is None else (jnp.moveaxis(x, 0, -1) if batched else x)


def _batch_major(x, axis_size):
    if x is None:
        return None
    x = jnp.broadcast_to(x, x.shape[:-1] + (axis_size,))
    return jnp.moveaxis(x, -1, 0)


@ft.cache
def _make_factor(pivoting: bool, unroll: int):
    @jax.custom_batching.custom_vmap
    def factor(diagonal, lower_diagonal, upper_diagonal):
        rows = _pad_band(diagonal, lower_diagonal, upper_diagonal, pivoting)
        return _factor_kernel(*rows, pivoting, unroll)

    @factor.def_vmap
    def factor_vmap(axis_size, in_batched, diagonal, lower_diagonal, upper_diagonal):
        diagonals = [
            jnp.broadcast_to(_band_major(x, b), x.shape[-1:] + (axis_size,))
            for x, b in zip((diagonal, lower_diagonal, upper_diagonal), in_batched)
        ]
        # Materialise the padded band-major copies once (one fused pass each):
        # otherwise XLA may fuse the transposes into the scan, which then reads with
        # a stride of `n`.
        rows = lax.optimization_barrier(_pad_band(*diagonals, pivoting))
        factors = _factor_kernel(*rows, pivoting, unroll)
        factors = tuple(_batch_major(x, axis_size) for x in factors)
        return factors, jax.tree.map(lambda _: True, factors)

    return factor


@ft.cache
def _make_solve(unroll: int):
    @jax.custom_batching.custom_vmap
    def solve(factors, vector):
        return _solve_kernel(factors, vector, unroll)

    @solve.def_vmap
    def solve_vmap(axis_size, in_batched, factors, vector):
        factors_batched, vector_batched = in_batched
        factors = tuple(
            _band_major(x, b)
            for x, b in zip(factors, factors_batched, strict=True)  # pyright: ignore
        )
        vector = lax.optimization_barrier(_band_major(vector, vector_batched))
        solution = _solve_kernel(factors, vector, unroll)  # pyright: ignore
        return _batch_major(solution, axis_size), True

    return solve


def _pure_jax_solve(diagonal, lower, upper, vector, *, pivoting, unroll):
    factors = _make_factor(pivoting, unroll)(diagonal, lower, upper)
    return _make_solve(unroll)(factors, vector)


def _native_solve(diagonal, lower, upper, vector, *, pivoting, unroll):
    del unroll
    (x,) = _native.native_call(
        "lxk_tridiagonal_solve",
        [diagonal, lower, upper, vector],
        core_ndims=(1, 1, 1, 1),
        results=[(vector.shape[-1:], vector.dtype)],
        pivoting=pivoting,
        trans=False,
        conj=False,
    )
    return x


def _solve(bands, vector, *, pivoting, unroll, transpose, conj, backend):
    """Solves `op(A) x = b` with op(A) = A, A^T, conj(A) or A^H: natively on CPU, in
    pure JAX elsewhere (or everywhere if so asked). op(A) is factorised as it stands
    (A^T has A's diagonal and its off-diagonals exchanged; conjugation leaves the
    pivot choice alone), so both kernels pivot the same way."""
    diagonal, lower, upper = bands
    if transpose:
        lower, upper = upper, lower
    if conj:
        diagonal, lower, upper = diagonal.conj(), lower.conj(), upper.conj()
    return _native.platform_switch(
        backend,
        _native_solve,
        _pure_jax_solve,
        diagonal,
        lower,
        upper,
        vector,
        pivoting=pivoting,
        unroll=unroll,
    )


class ScanTridiagonal(lx.AbstractLinearSolver[_ScanTridiagonalState]):
    """Gaussian elimination with partial pivoting for tridiagonal systems, as in
    LAPACK's `?gttrf`/`?gtts2` (pivots chosen by |Re| + |Im|, no
    swap on ties), or without pivoting (the Thomas algorithm).

    There are two kernels, chosen per platform inside one compiled program:

    - On CPU, a native C++ kernel (compiled when the package is installed, called
        through the XLA FFI). A batch is solved a tile of systems at a time, one
        system per SIMD lane, advanced together one row at a time, on XLA's CPU
        thread pool for large batches; factorisation and substitution are fused, so
        the bands are read once and only the solution is written. A single system
        is eliminated from both ends at once (two independent dependency chains,
        meeting in the middle), which is about twice as fast as one sweep.
    - On GPU/TPU (and on CPU with `backend="jax"`), pure JAX: `jax.lax.scan`s along
        the band that, under `jax.vmap`, carry the whole batch.

    Both pivot the same way. The state holds the operator's bands, and `compute`
    factorises and solves in one pass (on CPU that is one pass over memory instead
    of three: factors kept in the state would be written and read back). Under
    `jax.vmap` over the right-hand side only, the pure-JAX kernel factorises once;
    `transpose` and `conj` cost nothing (they flip static flags, and the kernels
    factorise $A^T$ or conj(A) as they stand).

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
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if not isinstance(self.pivoting, bool):
            raise ValueError("`ScanTridiagonal(pivoting=...)` must be a bool.")
        if isinstance(self.unroll, int) and self.unroll < 1:
            raise ValueError("`ScanTridiagonal(unroll=...)` must be at least 1.")
        _native.check_backend(self.backend)

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
        # autodiff away from the kernels, which have no autodiff rules.
        bands = lax.stop_gradient(lx.tridiagonal(operator))
        return bands, packed_structures, eqxi.Static((False, False))

    # This differs from `lx.Tridiagonal` (LAPACK `?gtsv`) in a few ways:
    # 1. The transposed and conjugated solves factorise A^T or conj(A) directly
    #     (static flags in the state), so they pivot as a fresh solve with A^T would.
    # 2. Row swaps are selects, not branches or gathers.
    # 3. A zero pivot is not reported by an `info` code: it gives inf/NaN, which
    #     `lx.linear_solve` turns into `RESULTS.singular`.
    # 4. The reciprocals of the pivots are computed once, and elimination and
    #     substitution multiply by them instead of dividing, so results may differ
    #     from LAPACK's in the last bits. A single system on CPU is eliminated from
    #     both ends (see `csrc/tridiagonal.h`), which also changes the rounding.
    def compute(
        self,
        state: _ScanTridiagonalState,
        vector: PyTree[Array],
        options: dict[str, Any],
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        bands, packed_structures, flags = state
        del state, options
        transpose, conj = flags.value
        vector = lxi.ravel_vector(vector, packed_structures)
        solution = _solve(
            bands,
            vector,
            pivoting=self.pivoting,
            unroll=self.unroll,
            transpose=transpose,
            conj=conj,
            backend=self.backend,
        )
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _ScanTridiagonalState, options: dict[str, Any]):
        bands, packed_structures, flags = state
        transpose, conj = flags.value
        transposed_packed_structures = lxi.transpose_packed_structures(
            packed_structures
        )
        transpose_state = (
            bands,
            transposed_packed_structures,
            eqxi.Static((not transpose, conj)),
        )
        return transpose_state, options

    def conj(self, state: _ScanTridiagonalState, options: dict[str, Any]):
        # conj(op(A)) for op = identity or transpose is op(conj(A)): flip the conj
        # flag, keep the transpose flag.
        bands, packed_structures, flags = state
        transpose, conj = flags.value
        conj_state = (bands, packed_structures, eqxi.Static((transpose, not conj)))
        return conj_state, options

    def assume_full_rank(self):
        return True


ScanTridiagonal.__init__.__doc__ = """**Arguments:**

- `pivoting`: whether to use partial (row) pivoting. Defaults to `True`, which is
    stable for any nonsingular tridiagonal matrix, like [`lineax.Tridiagonal`][].
    `False` gives the Thomas algorithm: faster, but only stable for diagonally
    dominant or symmetric positive definite matrices.
- `unroll`: number of scan steps to unroll in the pure-JAX kernel; see
    `jax.lax.scan`. On CPU `1` (the default) is usually fastest.
- `backend`: `"auto"` (default: the native kernel on CPU if it is available, pure
    JAX elsewhere; the environment variable `LINEAX_KERNELS_BACKEND=jax` or
    `=native` overrides it), `"native"` (as `"auto"`, but an error if the native
    kernel is unavailable) or `"jax"` (pure JAX everywhere). See
    [`lineax_kernels.backend_info`][].
"""
