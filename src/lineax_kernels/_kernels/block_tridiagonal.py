"""Block tridiagonal LU with partial pivoting (block banded Gaussian elimination in
LAPACK `?gbtrf`'s pivot order), in pure JAX: one `lax.scan` step per block row.
Also serves the periodic tridiagonal solver, which folds its ring into 2 x 2 blocks
(`periodic_tridiagonal.py`).
"""

import functools as ft
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Inexact, Int

from .. import _native
from .._misc import abs1, batch_innermost, nonfinite_guard
from . import banded
from .small_lu import lu_factor_entries, select


class Flags(NamedTuple):
    """`native`: whether the state holds the blocks (for `solve_via_bands`: the
    native banded kernel on CPU) rather than the factors of `factor`; solve with
    `op(A)`, as `_misc.Op`."""

    native: bool
    trans: bool = False
    conj: bool = False


# The LU factors of one block tridiagonal matrix with `n` block rows of `k x k`
# blocks, as computed by block banded Gaussian elimination with partial pivoting
# (LAPACK `?gbtrf`'s pivot order). Step `i` eliminates block column `i` from the
# `2k x 3k` panel `[[D~_i, U~_i, 0], [L_i, D_{i+1}, U_{i+1}]]` (the active block row
# `i`, already reduced by the previous steps, over the untouched block row `i + 1`):
# - `left[i]` (`2k x k`): the panel's first block column after elimination: U's
#     diagonal block `U_ii` on and above the diagonal of its top half, and the
#     multipliers of the unit lower trapezoid below;
# - `upper1[i]`, `upper2[i]` (`k x k`): U's blocks `(i, i + 1)` and `(i, i + 2)` (the
#     latter is the fill-in from rows of block row `i + 1` swapped up);
# - `perm[i]`, `iperm[i]` (`2k`): the row permutation of the panel (`perm[r]` is the
#     panel row that ends up in row `r`) and its inverse.
# The bottom half of the eliminated panel is the next active block row. A dummy
# block row `n` (identity diagonal block, zero coupling) makes the last step a panel
# step like the others, so the scan emits every result directly. Arrays are band
# major: block row first, then the block's axes, then any batch axes (`...`).
Factors: TypeAlias = tuple[
    Inexact[Array, "n k2 k ..."],
    Inexact[Array, "n k k ..."],
    Inexact[Array, "n k k ..."],
    Int[Array, "n k2 ..."],
    Int[Array, "n k2 ..."],
]


def _entries(x: Array, *shape: int) -> Any:
    # The nested list of the entries of the leading `shape` axes of `x`.
    if not shape:
        return x  # pyright: ignore
    return [_entries(x[i], *shape[1:]) for i in range(shape[0])]


def _stack(entries: Any, batch: tuple[int, ...]) -> Array:
    # Inverse of `_entries`, broadcasting every entry to the batch shape.
    if not isinstance(entries, list):
        return jnp.broadcast_to(entries, batch)
    return jnp.stack([_stack(e, batch) for e in entries])


# For one system (no batch axes) with blocks up to this size, each step runs the
# straight-line LU of `small_lu` on the panel (scalar code). Otherwise it runs
# an array-level version of the same elimination (`_panel_factor_arrays`): the
# straight-line code grows like `k**3` and XLA compiles it slowly inside a scan body
# (2 s at k = 2, 8-11 s at k = 4, minutes at k = 8), and with batch axes it is also
# slower (measured, 64 systems of 2000 blocks: 2x at k = 2, 3x at k = 4).
_UNROLLED_MAX = 2


def _panel_factor_arrays(panel: Array, steps: int) -> tuple[Array, Array, Array]:
    """The elimination of `lu_factor_entries(panel, steps)`, on a `m x p` panel
    array (batch axes after the first two), as whole-array operations: the same
    pivots (the first largest `|Re| + |Im|`), the same row swaps and the same
    arithmetic. Returns the eliminated panel, `perm` and `iperm`, shape `(m, ...)`.
    """
    m, p = panel.shape[:2]
    batch = panel.shape[2:]
    # Fixed-shape masked updates rather than slices and concatenations, so that XLA
    # fuses each step into a few loops over the whole panel.
    rows = jnp.arange(m, dtype=jnp.int32).reshape((m,) + (1,) * len(batch))
    columns = jnp.arange(p, dtype=jnp.int32).reshape((1, p) + (1,) * len(batch))
    perm = jnp.broadcast_to(rows, (m,) + batch)
    for k in range(steps):
        magnitude = jnp.where(rows >= k, abs1(panel[:, k]), -1)
        which = jnp.argmax(magnitude, axis=0).astype(jnp.int32)[None]  # (1, ...)
        is_pivot = rows == which
        pivot_row = jnp.sum(jnp.where(is_pivot[:, None], panel, 0), axis=0)
        pivot_perm = jnp.sum(jnp.where(is_pivot, perm, 0), axis=0, dtype=jnp.int32)
        # Swap rows k and `which`, then eliminate below row k.
        is_k = rows == k
        panel = jnp.where(
            is_k[:, None],
            pivot_row[None],
            jnp.where(is_pivot[:, None], panel[k][None], panel),
        )
        perm = jnp.where(
            is_k, pivot_perm[None], jnp.where(is_pivot, perm[k][None], perm)
        )
        multipliers = jnp.where(rows > k, panel[:, k] / pivot_row[k][None], 0)
        update = jnp.where(columns > k, pivot_row[None], 0)
        panel = panel - multipliers[:, None] * update
        panel = jnp.where(
            (rows[:, None] > k) & (columns == k), multipliers[:, None], panel
        )
    is_row = perm[:, None] == rows[None]
    iperm = jnp.sum(jnp.where(is_row, rows[:, None], 0), axis=0, dtype=jnp.int32)
    return panel, perm, iperm


def _factor_kernel(
    diagonal: Inexact[Array, "n k k ..."],
    lower_diagonal: Inexact[Array, "n-1 k k ..."],
    upper_diagonal: Inexact[Array, "n-1 k k ..."],
    unroll: int = 1,
) -> Factors:
    """Factorises a block tridiagonal matrix by block banded Gaussian elimination
    with partial pivoting, one `lax.scan` step per block row, each step the
    straight-line pivoted LU of `UnrolledSmallLU` on a `2k x 3k` panel (see
    `Factors`).

    Within a step the pivot of each column is the largest (by `|Re| + |Im|`) of all
    the entries of that column not yet eliminated, in both block rows: those are all
    the nonzeros of the column of the whole matrix, so this is exactly Gaussian
    elimination with partial pivoting on the full matrix, with its backward
    stability. A zero pivot gives inf/NaN, which propagates to every solution.

    Batch axes (`...`, after the block axes) are independent systems.
    """
    n, k = diagonal.shape[:2]
    batch = diagonal.shape[3:]
    dtype = diagonal.dtype
    eye = jnp.broadcast_to(
        jnp.eye(k, dtype=dtype).reshape((1, k, k) + (1,) * len(batch)),
        (1, k, k) + batch,
    )
    zeros = lambda m: jnp.zeros((m, k, k) + batch, dtype)
    lower = jnp.concatenate([lower_diagonal, zeros(1)])
    diagonal_next = jnp.concatenate([diagonal[1:], eye])
    upper_next = jnp.concatenate([upper_diagonal[1:], zeros(n - max(n - 2, 0))])
    first_upper = upper_diagonal[0] if n > 1 else zeros(1)[0]

    def step_arrays(carry, rows):
        active_diagonal, active_upper = carry
        l, d, u = rows
        top = jnp.concatenate(
            [active_diagonal, active_upper, jnp.zeros_like(active_upper)], axis=1
        )
        panel = jnp.concatenate([top, jnp.concatenate([l, d, u], axis=1)])
        panel, perm, iperm = _panel_factor_arrays(panel, k)
        carry = (panel[k:, k : 2 * k], panel[k:, 2 * k :])
        out = (panel[:, :k], panel[:k, k : 2 * k], panel[:k, 2 * k :], perm, iperm)
        return carry, out

    def step(carry, rows):
        active_diagonal, active_upper = carry
        l, d, u = rows
        ad, au = _entries(active_diagonal, k, k), _entries(active_upper, k, k)
        l, d, u = _entries(l, k, k), _entries(d, k, k), _entries(u, k, k)
        panel = [ad[r] + au[r] + [0] * k for r in range(k)]
        panel += [l[r] + d[r] + u[r] for r in range(k)]
        panel = [[jnp.asarray(e, dtype) for e in row] for row in panel]
        lu, perm, iperm = lu_factor_entries(panel, steps=k)
        a = [list(lu[r * 3 * k : (r + 1) * 3 * k]) for r in range(2 * k)]
        left = [row[:k] for row in a]
        upper1 = [row[k : 2 * k] for row in a[:k]]
        upper2 = [row[2 * k :] for row in a[:k]]
        next_diagonal = [row[k : 2 * k] for row in a[k:]]
        next_upper = [row[2 * k :] for row in a[k:]]
        carry = (_stack(next_diagonal, batch), _stack(next_upper, batch))
        out = (
            _stack(left, batch),
            _stack(upper1, batch),
            _stack(upper2, batch),
            _stack(list(perm), batch),
            _stack(list(iperm), batch),
        )
        return carry, out

    _, factors = lax.scan(
        step if k <= _UNROLLED_MAX and not batch else step_arrays,
        (diagonal[0], first_upper),
        (lower, diagonal_next, upper_next),
        unroll=unroll,
    )
    return factors


def _solve_kernel(
    factors: Factors,
    vector: Inexact[Array, "n k ..."],
    transpose: bool,
    unroll: int = 1,
) -> Inexact[Array, "n k ..."]:
    """Solves `A x = b` (or `A^T x = b` if `transpose`) with the factors of
    `_factor_kernel`, one forward and one backward `lax.scan` over the block
    rows (LAPACK `?gbtrs`). The factors and `vector` may have different batch axes
    (`...`), which broadcast: factors without batch axes and a batched `vector` reuse
    one factorisation for every right-hand side.
    """
    left, upper1, upper2, perm, iperm = factors
    n, k = vector.shape[:2]
    batch = jnp.broadcast_shapes(left.shape[3:], vector.shape[2:])
    dtype = jnp.result_type(left, vector)
    # Trailing size-1 axes, so that factors and vector broadcast without rank
    # promotion.
    ndim = len(batch)
    expand = lambda x, m: x.reshape(x.shape + (1,) * (m + ndim - x.ndim))
    left, upper1, upper2 = (expand(x, 3) for x in (left, upper1, upper2))
    perm, iperm = expand(perm, 2), expand(iperm, 2)
    vector = expand(vector, 2).astype(dtype)
    zero = jnp.zeros((k,) + batch, dtype)
    stack = lambda xs: _stack(xs, batch)

    if not transpose:
        # P_i then the unit lower trapezoid of step `i`, on the right-hand side of
        # the active block row `c` and of block row `i + 1`.
        def forward(c, rows):
            b_next, left_i, perm_i = rows
            m = _entries(left_i, 2 * k, k)
            v = _entries(c, k) + _entries(b_next, k)
            pv = [select(perm_i[r], *v) for r in range(2 * k)]
            y = []
            for j in range(k):
                y.append(pv[j] - sum((m[j][i] * y[i] for i in range(j)), zero[0]))
            next_c = [
                pv[k + r] - sum((m[k + r][i] * y[i] for i in range(k)), zero[0])
                for r in range(k)
            ]
            return stack(next_c), stack(y)

        b_next = jnp.concatenate([vector[1:], jnp.zeros_like(vector[:1])])
        c0 = jnp.broadcast_to(vector[0], (k,) + batch)
        _, y = lax.scan(forward, c0, (b_next, left, perm), unroll=unroll)

        # Block back substitution with U's three block diagonals.
        def backward(carry, rows):
            x1, x2 = _entries(carry[0], k), _entries(carry[1], k)
            y_i, left_i, u1, u2 = rows
            m, u1, u2 = _entries(left_i, k, k), _entries(u1, k, k), _entries(u2, k, k)
            x: list[Any] = [None] * k
            for j in reversed(range(k)):
                acc = _entries(y_i, k)[j]
                for c in range(j + 1, k):
                    acc = acc - m[j][c] * x[c]
                for c in range(k):
                    acc = acc - u1[j][c] * x1[c] - u2[j][c] * x2[c]
                x[j] = acc / m[j][j]
            x = stack(x)
            return (x, carry[0]), x

        _, x = lax.scan(
            backward,
            (zero, zero),
            (y, left, upper1, upper2),
            reverse=True,
            unroll=unroll,
        )
        return x
    else:
        # U^T z = b, block column by block column: `s1`, `s2` are the contributions
        # of the solved blocks to block rows `i` and `i + 1`.
        def forward(carry, rows):
            s1, s2 = carry
            b_i, left_i, u1, u2 = rows
            m, u1, u2 = _entries(left_i, k, k), _entries(u1, k, k), _entries(u2, k, k)
            rhs = _entries(b_i - s1, k)
            z = []
            for j in range(k):
                acc = rhs[j]
                for i in range(j):
                    acc = acc - m[i][j] * z[i]
                z.append(acc / m[j][j])
            s2 = _entries(s2, k)
            next_s1 = [s2[c] + sum(u1[r][c] * z[r] for r in range(k)) for c in range(k)]
            next_s2 = [sum(u2[r][c] * z[r] for r in range(k)) for c in range(k)]
            return (stack(next_s1), stack(next_s2)), stack(z)

        _, z = lax.scan(
            forward, (zero, zero), (vector, left, upper1, upper2), unroll=unroll
        )

        # Then the steps' transposed eliminations (and permutations), last to first:
        # `w` is the current value of block `i + 1`, final once step `i` is undone.
        def backward(w, rows):
            z_i, left_i, iperm_i = rows
            m = _entries(left_i, 2 * k, k)
            w = _entries(w, k)
            t = [
                z_i[j] - sum((m[k + r][j] * w[r] for r in range(k)), zero[0])
                for j in range(k)
            ]
            u: list[Any] = [None] * k
            for j in reversed(range(k)):
                acc = t[j]
                for i in range(j + 1, k):
                    acc = acc - m[i][j] * u[i]
                u[j] = acc
            u = u + w
            xw = [select(iperm_i[j], *u) for j in range(2 * k)]
            return stack(xw[:k]), stack(xw[k:])

        x0, x_next = lax.scan(
            backward, zero, (z, left, iperm), reverse=True, unroll=unroll
        )
        return jnp.concatenate([x0[None], x_next[:-1]])


def _broadcast_blocks(*blocks: Array) -> list[Array]:
    # Any subset of the blocks may carry the batch (trailing) axes.
    batch = jnp.broadcast_shapes(*[x.shape[3:] for x in blocks])
    return [jnp.broadcast_to(x, x.shape[:3] + batch) for x in blocks]


@ft.cache
def _make_factor(unroll: int):
    def factor(*blocks):
        blocks = _broadcast_blocks(*blocks)
        if blocks[0].ndim > 3:
            # Materialise the batch-innermost copies once, rather than letting XLA
            # fuse the transposes into the scan.
            blocks = lax.optimization_barrier(blocks)
        return _factor_kernel(*blocks, unroll)

    return batch_innermost(factor)


@ft.cache
def _make_solve(transpose: bool, unroll: int):
    def solve(factors, vector):
        if vector.ndim > 2:
            vector = lax.optimization_barrier(vector)
        return _solve_kernel(factors, vector, transpose, unroll)

    return batch_innermost(solve)


# (Jitted, so that calling `init` and `compute` outside `jax.jit` compiles the scans
# once instead of dispatching their operations one by one.)
@ft.partial(jax.jit, static_argnums=3)
def factor(diagonal, lower_diagonal, upper_diagonal, unroll: int) -> Factors:
    # lineax stops gradients through the state anyway; doing it here too keeps
    # autodiff away from `custom_vmap`, which has no reverse-mode rule.
    blocks = lax.stop_gradient((diagonal, lower_diagonal, upper_diagonal))
    left, *rest = _make_factor(unroll)(*blocks)
    # Non-finite input gives non-finite factors (so non-finite solutions), even
    # where elimination would not carry it there.
    guard = sum(nonfinite_guard(x) for x in blocks)
    return (left + guard, *rest)


@ft.partial(jax.jit, static_argnums=(2, 3))
def solve(factors: Factors, vector, transpose: bool, unroll: int):
    return _make_solve(transpose, unroll)(factors, vector)


@jax.jit
def conj_factors(factors: Factors) -> Factors:
    # P A = L U  =>  P conj(A) = conj(L) conj(U), and the pivots are chosen by
    # |Re| + |Im|, which conjugation leaves alone.
    left, upper1, upper2, perm, iperm = factors
    return left.conj(), upper1.conj(), upper2.conj(), perm, iperm


@ft.cache
def _band_table(n: int, k: int) -> np.ndarray:
    """Static gather table for the band storage of a block tridiagonal matrix (`n`
    block rows of `k x k` blocks) as a banded one with `2k - 1` sub- and
    superdiagonals: `bands[r, j] = source[table[r, j]]`, where `source` is the
    concatenation of the flattened diagonal, lower and upper blocks and a zero."""
    kl = 2 * k - 1
    size = n * k
    r, j = np.indices((2 * kl + 1, size))
    i = j + r - kl
    bi, bj, ri, cj = i // k, j // k, i % k, j % k
    entry = ri * k + cj
    zero = (3 * n - 2) * k * k
    table = np.full(r.shape, zero)
    inside = (i >= 0) & (i < size)
    table = np.where(inside & (bi == bj), bi * k * k + entry, table)
    table = np.where(inside & (bi == bj + 1), n * k * k + bj * k * k + entry, table)
    table = np.where(
        inside & (bi + 1 == bj), (2 * n - 1) * k * k + bi * k * k + entry, table
    )
    return table


def to_bands(
    diagonal: Inexact[Array, "n k k"],
    lower_diagonal: Inexact[Array, "n-1 k k"],
    upper_diagonal: Inexact[Array, "n-1 k k"],
) -> Inexact[Array, "w nk"]:
    """The block tridiagonal matrix as a banded one with `2k - 1` sub- and
    superdiagonals, in `scipy.linalg.solve_banded`'s layout (for the native banded
    kernel)."""
    n, k = diagonal.shape[:2]
    source = jnp.concatenate(
        [
            diagonal.reshape(-1),
            lower_diagonal.reshape(-1),
            upper_diagonal.reshape(-1),
            jnp.zeros((1,), diagonal.dtype),
        ]
    )
    return source[_band_table(n, k)]


@ft.cache
def _block_tables(n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `_band_table`: where each entry of the diagonal, lower and upper
    blocks sits in the flattened band storage."""
    kl = 2 * k - 1
    size = n * k
    b, r, c = np.indices((n, k, k))

    def flat(block_row, block_column):
        i, j = (
            block_row * k + r[: len(block_row)],
            block_column * k + c[: len(block_row)],
        )
        return (kl + i - j) * size + j

    rows = np.arange(n)[:, None, None]
    return (
        flat(rows, rows),
        flat(rows[1:], rows[:-1]),
        flat(rows[:-1], rows[1:]),
    )


def from_bands(bands: Inexact[Array, "w nk"], n: int, k: int):
    """The blocks of a block tridiagonal matrix from its band storage (`to_bands`)."""
    flat = bands.reshape(-1)
    return tuple(flat[t] for t in _block_tables(n, k))


def solve_via_bands(blocks, vector, trans: bool, conj: bool, backend, unroll: int):
    """Solves `op(A) x = b` for block tridiagonal A (`blocks`, `vector` of shape
    `(n k,)`): on CPU with the native banded kernel on A's band storage (`2k - 1`
    sub- and superdiagonals: ?gbtrf's partial pivoting, the same pivots as the block
    elimination of `_factor_kernel`), elsewhere with the block kernels above."""
    n, k = blocks[0].shape[:2]
    bands = to_bands(*blocks)
    flags = banded.Flags(lower=2 * k - 1, upper=2 * k - 1, trans=trans, conj=conj)

    def pure(bands, vector, *, lower, upper, trans, conj):
        del lower, upper
        factors = factor(*from_bands(bands, n, k), unroll)
        if conj:
            factors = conj_factors(factors)
        return solve(factors, vector.reshape(n, k), trans, unroll).reshape(n * k)

    return _native.dispatch(banded.TARGET, pure, backend, flags, bands, vector)
