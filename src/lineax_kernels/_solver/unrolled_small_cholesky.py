from typing import Any, TypeAlias

import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, Inexact, PyTree

from .. import _native
from .._misc import materialise
from .unrolled_small_triangular import _scale, _Triangle, make_substitution


# The state holds the matrix itself, not its factor: `compute` factorises and
# substitutes in one pass (on CPU in one native kernel, which reads the lower
# triangle once and writes only the solution; a factor kept in the state would be
# written and read back, two more passes over memory for a memory-bound kernel), as
# `UnrolledSmallLU` does. One matrix with a batch of right-hand sides is still
# factorised once. Then two static flags: the operator is negative (semi)definite,
# so `-A = L L^H` is factorised and the solution negated; and solve with `conj(A)`
# rather than `A` (which is also how `transpose` is done: for a Hermitian A,
# `A^T = conj(A)`).
_UnrolledSmallCholeskyState: TypeAlias = tuple[
    Inexact[Array, "d d"], lxi.PackedStructures, eqxi.Static, eqxi.Static
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
        factor = jnp.where(in_column, _scale(col, r)[:, None], factor)
        inverse = jnp.where(rows == j, r, inverse)
        return factor, inverse

    factor, inverse = lax.fori_loop(
        0, d, column, (jnp.zeros_like(lower), jnp.zeros_like(diagonal))
    )

    def forward(i, y):
        acc = vector[i] - jnp.sum(factor[i] * y)
        return jnp.where(rows == i, _scale(acc, inverse[i]), y)

    def back(k, x):
        i = d - 1 - k
        acc = y[i] - jnp.sum(jnp.conj(factor[:, i]) * x)
        return jnp.where(rows == i, _scale(acc, inverse[i]), x)

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


def _pure_jax_solve(matrix, vector, *, conj: bool, negate: bool):
    if negate:
        matrix = -matrix
    if matrix.shape[0] <= _STRAIGHT_LINE_MAX:
        # With `conj` the factor is read conjugated, which solves with
        # `conj(L) conj(L)^H = conj(A)`; so the second substitution always reads it
        # with the opposite conjugation to the first.
        solve = make_substitution(((False, conj), (True, not conj)))
        x = solve(_cholesky_factor(matrix), vector)
    else:
        x = _cholesky_solve_rolled(matrix.conj() if conj else matrix, vector)
    return -x if negate else x


def _native_solve(matrix, vector, *, conj: bool, negate: bool):
    (x,) = _native.native_call(
        "lxk_small_cholesky_solve",
        [matrix, vector],
        core_ndims=(2, 1),
        results=[(vector.shape[-1:], vector.dtype)],
        conj=conj,
        negate=negate,
    )
    return x


def _solve(matrix, vector, *, conj: bool, negate: bool, backend):
    """Solves `A x = b` or `conj(A) x = b` (A Hermitian positive definite, or
    negative definite with `negate`): natively on CPU, in pure JAX elsewhere (or
    everywhere if so asked)."""
    return _native.platform_switch(
        backend,
        _native_solve,
        _pure_jax_solve,
        matrix,
        vector,
        conj=conj,
        negate=negate,
    )


class UnrolledSmallCholesky(lx.AbstractLinearSolver[_UnrolledSmallCholeskyState]):
    """Cholesky decomposition for many small systems, specialised to the static size
    of the operator: no LAPACK call, no pivoting, and half the arithmetic of
    [`lineax_kernels.UnrolledSmallLU`][]. For many tiny systems under `jax.vmap` it
    is much faster than [`lineax.Cholesky`][], which calls LAPACK once per matrix.

    The operator must be square and tagged `lx.positive_semidefinite_tag` or
    `lx.negative_semidefinite_tag` (a negative definite operator is factorised as
    `-A`, as `lineax.Cholesky` does). Only its lower triangle is read (for a complex
    operator: it must be Hermitian). As for `lineax.Cholesky`, the operator must in
    fact be positive (negative) definite: a matrix that is not, semidefinite or
    indefinite, gives a non-finite solution and so `RESULTS.singular`, never a finite
    wrong answer; so does non-finite input (except +inf on the diagonal, whose
    limit is finite, as with LAPACK).

    There are two kernels, chosen per platform inside one compiled program:

    - On CPU, a native C++ kernel (compiled when the package is installed, called
        through the XLA FFI) that solves a tile of systems at once, one system per
        SIMD lane, factorisation and substitution fused: it reads each lower
        triangle once and writes only the solution. It has a straight-line
        instantiation for each size up to 8 and a looped one above.
    - On GPU/TPU (and on CPU with `backend="jax"`), pure JAX: straight-line code in
        a batch-innermost layout (each matrix entry one vector along the batch) up
        to size 4, `lax.fori_loop`s above.

    Under `jax.vmap` over the right-hand side only, the operator is factorised
    once. `transpose` and `conj` cost nothing: for a Hermitian $A$ both $A^T$ and
    $\\bar{A}$ are $\\bar{A}$, so both only flip a static flag that conjugates
    the matrix as it is read.
    """

    max_size: int = 16
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if isinstance(self.max_size, int) and self.max_size < 1:
            raise ValueError(
                "`UnrolledSmallCholesky(max_size=...)` must be at least 1."
            )
        _native.check_backend(self.backend)

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
                f"limit `max_size={self.max_size}` (beyond it LAPACK is as fast). Use "
                "`lx.Cholesky()` instead."
            )
        if size == 0:
            raise ValueError("`UnrolledSmallCholesky` cannot solve a system of size 0.")
        packed_structures = lxi.pack_structures(operator)
        return (
            operator.as_matrix(),
            packed_structures,
            eqxi.Static(is_nsd),
            eqxi.Static(False),
        )

    def compute(
        self,
        state: _UnrolledSmallCholeskyState,
        vector: PyTree[Array],
        options: dict[str, Any],
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        matrix, packed_structures, is_nsd, conj = state
        del state, options
        vector = lxi.ravel_vector(vector, packed_structures)
        solution = _solve(
            matrix,
            vector,
            conj=conj.value,
            negate=is_nsd.value,
            backend=self.backend,
        )
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _UnrolledSmallCholeskyState, options: dict[str, Any]):
        # A Hermitian: A^T = conj(A). (Solving with A itself, as if A^T = A, would
        # be wrong for complex A: lineax's own `Cholesky.transpose` needed a `conj`
        # for this.)
        matrix, packed_structures, is_nsd, conj = state
        transposed_packed_structures = lxi.transpose_packed_structures(
            packed_structures
        )
        transpose_state = (
            matrix,
            transposed_packed_structures,
            is_nsd,
            eqxi.Static(not conj.value),
        )
        return transpose_state, options

    def conj(self, state: _UnrolledSmallCholeskyState, options: dict[str, Any]):
        matrix, packed_structures, is_nsd, conj = state
        conj_state = (matrix, packed_structures, is_nsd, eqxi.Static(not conj.value))
        return conj_state, options

    def assume_full_rank(self):
        return True


UnrolledSmallCholesky.__init__.__doc__ = """**Arguments:**

- `max_size`: the largest operator size accepted (default 16). Above it `init`
    raises a `ValueError`; use [`lineax.Cholesky`][] there. Raising it works.
- `backend`: `"auto"`, `"native"` or `"jax"`, as for
    [`lineax_kernels.UnrolledSmallLU`][].
"""
