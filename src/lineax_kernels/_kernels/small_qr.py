"""Householder QR least squares for small dense systems: the pure-JAX kernel, twin of
`csrc/small_qr.h`, and the one entry `solve`, which runs the native kernel on CPU
and the pure-JAX one elsewhere."""

import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Inexact

from .. import _native
from .._misc import nonfinite_guard, Op


def _householder_solve(
    t: Inexact[Array, "p q"], b: Inexact[Array, " r"], *, wide: bool
) -> Inexact[Array, " c"]:
    """Solves with a tall `p x q` matrix `T` (`p >= q`), factorised `T = Q R` by
    Householder reflections: if not `wide`, the least-squares solution of `T x = b`
    (`x = R^-1 (Q^H b)[:q]`, `b` of length `p`); if `wide`, the minimum-norm solution
    of `T^H x = b` (`x = Q [R^-H b; 0]`, `b` of length `q`).

    The reflectors are those of `csrc/small_qr.h`: Hermitian, `H = I - s v v^H` with
    `v = x - beta e_1`, `beta = -phase(x_0) ||x||` and `s = 1 / (||x|| (||x|| +
    |x_0|))`. An exactly zero column to reduce (an exactly rank-deficient matrix)
    gives `s = inf` and `beta = 0`, hence a non-finite solution.

    Every loop is a `lax.fori_loop` on whole rows and columns, so the program does
    not grow with the size: straight-line code (a Python loop over the columns)
    took 7 s of CPU time to compile at 64 x 16, this under 1 s. Only the loop
    counter selects rows and columns, through one-hot masks, so that under
    `jax.vmap` every step is elementwise work and small reductions (no gathers or
    scatters). Batches by `jax.vmap`; an unbatched matrix with batched right-hand
    sides is factorised once. After the factorisation `T` holds `R` above its
    diagonal and each `v` below it; `v`'s first entries, `s` and `R`'s diagonal are
    kept in `heads`, `scales` and `betas`.
    """
    p, q = t.shape
    dtype = t.dtype
    rows = jnp.arange(p)
    cols = jnp.arange(q)

    def reflector(k, t, heads):
        # The k-th Householder vector, from column k of the factorised T.
        column = jnp.sum(jnp.where(cols[None, :] == k, t, 0), axis=1)
        head = jnp.sum(jnp.where(cols == k, heads, 0))
        return jnp.where(rows == k, head, jnp.where(rows > k, column, 0))

    def factorise(k, carry):
        t, b, heads, scales, betas = carry
        column = jnp.sum(jnp.where(cols[None, :] == k, t, 0), axis=1)
        x = jnp.where(rows >= k, column, 0)
        alpha = jnp.sum(jnp.where(rows == k, column, 0))
        norm = jnp.sqrt(jnp.sum(jnp.abs(x) ** 2))
        abs_alpha = jnp.abs(alpha)
        if jnp.iscomplexobj(t):
            safe = jnp.where(abs_alpha == 0, 1, abs_alpha).astype(dtype)
            phase = jnp.where(abs_alpha == 0, 1, alpha / safe)
        else:
            phase = jnp.where(alpha < 0, -1, 1).astype(dtype)
        head = phase * (abs_alpha + norm).astype(dtype)
        v = jnp.where(rows == k, head, x)
        s = (1 / (norm * (norm + abs_alpha))).astype(dtype)
        dots = jnp.where(cols > k, s * (v.conj() @ t), 0)
        t = t - v[:, None] * dots[None, :]
        if not wide:
            b = b - v * (s * jnp.vdot(v, b))
        heads = jnp.where(cols == k, head, heads)
        scales = jnp.where(cols == k, s, scales)
        betas = jnp.where(cols == k, -phase * norm.astype(dtype), betas)
        return t, b, heads, scales, betas

    zeros = jnp.zeros(q, dtype)
    t, b, heads, scales, betas = lax.fori_loop(
        0, q, factorise, (t, b, zeros, zeros, zeros)
    )
    # R: T above the diagonal, betas on it.
    r = jnp.where(cols[None, :] > rows[:q, None], t[:q], 0) + jnp.diag(betas)
    if not wide:

        def back(j, y):
            i = q - 1 - j
            is_i = cols == i
            r_i = jnp.sum(jnp.where(is_i[:, None], r, 0), axis=0)
            b_i = jnp.sum(jnp.where(is_i, b[:q], 0))
            return jnp.where(is_i, (b_i - r_i @ y) / (r_i @ is_i.astype(dtype)), y)

        return lax.fori_loop(0, q, back, zeros)
    r_h = r.conj().T

    def forward(i, y):
        is_i = cols == i
        r_i = jnp.sum(jnp.where(is_i[:, None], r_h, 0), axis=0)
        b_i = jnp.sum(jnp.where(is_i, b, 0))
        return jnp.where(is_i, (b_i - r_i @ y) / (r_i @ is_i.astype(dtype)), y)

    y = lax.fori_loop(0, q, forward, zeros)

    def apply_q(j, z):
        k = q - 1 - j
        v = reflector(k, t, heads)
        s = jnp.sum(jnp.where(cols == k, scales, 0))
        return z - v * (s * jnp.vdot(v, z))

    z = jnp.concatenate([y, jnp.zeros(p - q, dtype)])
    return lax.fori_loop(0, q, apply_q, z)


def pure_solve(matrix, vector, *, trans: bool, conj: bool):
    """Solves `op(A) x = b` (least squares, or minimum norm if `op(A)` is wide) in
    pure JAX."""
    op = matrix.T if trans else matrix
    if conj:
        op = op.conj()
    rows, cols = op.shape
    if rows >= cols:
        x = _householder_solve(op, vector, wide=False)
    else:
        x = _householder_solve(op.conj().T, vector, wide=True)
    # Non-finite input gives non-finite output, as in the native kernel.
    return x + nonfinite_guard(matrix) + nonfinite_guard(vector)


def _out_shape(a_shape, b_shape):
    # The native kernel's per-system result: `(n,)`, or `(m,)` with `trans` (which
    # is when b has length n).
    m, n = a_shape
    return (m,) if b_shape == (n,) and m != n else (n,)


TARGET = _native.Target("lxk_small_qr_solve", core_ndims=(2, 1), out_shape=_out_shape)


def solve(
    matrix: Inexact[Array, "m n"], vector: Inexact[Array, " r"], op: Op, backend
) -> Inexact[Array, " c"]:
    """Solves `op(A) x = b` in the least-squares sense (minimum norm if `op(A)` is
    wide), with `op(A)` one of `A`, `A^T`, `conj(A)`, `A^H`: natively on CPU, in pure
    JAX elsewhere (or everywhere if so asked). `b` has length `m` (`n` if
    `op.trans`); `x` length `n` (`m` if `op.trans`)."""
    return _native.dispatch(TARGET, pure_solve, backend, op, matrix, vector)
