from typing import Any

import jax.lax as lax
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, PyTree

from .. import _misc, _native
from .._kernels import block_tridiagonal
from .._operator import BlockTridiagonalLinearOperator


class BlockTridiagonal(lx.AbstractLinearSolver[_misc.State]):
    """Block banded Gaussian elimination with partial pivoting for
    [`lineax_kernels.BlockTridiagonalLinearOperator`][]s (`n` block rows of dense
    `k x k` blocks), as one `jax.lax.scan` over the block rows.

    `init` factorises the operator ($PA = LU$, $U$ with three block diagonals, the
    third one fill-in from row exchanges); `compute` runs a forward and a backward
    substitution scan. Transposed and conjugated solves (used by autodiff and
    `jax.linear_transpose`) reuse the factors.

    **Pivoting.** Step `i` of the scan factorises the `2k x k` panel of block column
    `i` (the active block row over block row `i + 1`) with the straight-line pivoted
    LU of [`lineax_kernels.UnrolledSmallLU`][], choosing each pivot as the largest
    entry (by $|\\mathrm{Re}| + |\\mathrm{Im}|$, as LAPACK) among all remaining
    nonzeros of its column, across both block rows. This is Gaussian elimination with
    partial pivoting on the whole matrix (LAPACK `?gbtrf` with `kl = ku = 2k - 1`),
    so it is backward stable for any nonsingular block tridiagonal matrix, including
    ones with singular diagonal blocks that need row exchanges between block rows. A
    singular matrix (an exactly zero pivot) gives a non-finite solution, which
    `lineax.linear_solve` reports as `RESULTS.singular`.

    Under `jax.vmap` (over the operator, the right-hand side, or both) the scans carry
    the whole batch, each entry of a block one contiguous vector along the batch.
    Compile time grows with `k**3`: about a second at `k = 4`, several at `k = 8`.

    **On CPU** (with the native kernels, `backend="auto"` or `"native"`) the matrix
    is solved as the banded matrix it is (`2k - 1` sub- and superdiagonals) by the
    native kernel of [`lineax_kernels.Banded`][]: LAPACK `?gbtrf`'s partial pivoting
    on the same matrix, so the same pivots and the same stability; the state then
    holds the blocks, and `compute` factorises and solves in one pass.
    """

    unroll: int = 1
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if isinstance(self.unroll, int) and self.unroll < 1:
            raise ValueError("`BlockTridiagonal(unroll=...)` must be at least 1.")
        _native.check_backend(self.backend)

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if not isinstance(operator, BlockTridiagonalLinearOperator):
            raise ValueError(
                "`BlockTridiagonal` may only be used for linear solves with "
                "`lxk.BlockTridiagonalLinearOperator`s; got "
                f"`{type(operator).__name__}`. Use `lx.Tridiagonal()` or "
                "`lxk.ScanTridiagonal()` for tridiagonal operators, and `lx.LU()` for "
                "dense ones."
            )
        blocks = (
            operator.diagonal,
            operator.lower_diagonal,
            operator.upper_diagonal,
        )
        blocks = _misc.promote("BlockTridiagonal", *blocks)
        if _native.use_native(self.backend):
            # (No autodiff rules for the native kernel: lineax stops gradients
            # through the state anyway.)
            blocks = lax.stop_gradient(blocks)
            flags = block_tridiagonal.Flags(native=True)
            return _misc.make_state(blocks, operator, flags)
        factors = block_tridiagonal.factor(*blocks, self.unroll)
        return _misc.make_state(factors, operator, block_tridiagonal.Flags(False))

    def compute(
        self, state: _misc.State, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        factors, packed_structures, op = state
        del state, options
        vector = _misc.ravel_vector(
            "BlockTridiagonal", vector, packed_structures, factors[0].dtype
        )
        if op.value.native:
            solution = block_tridiagonal.solve_via_bands(
                factors,
                vector,
                op.value.trans,
                op.value.conj,
                self.backend,
                self.unroll,
            )
            solution = lxi.unravel_solution(solution, packed_structures)
            return solution, lx.RESULTS.successful, {}
        if op.value.conj:
            factors = block_tridiagonal.conj_factors(factors)
        n, _, k = factors[0].shape[:3]
        solution = block_tridiagonal.solve(
            factors, vector.reshape(n, k), op.value.trans, self.unroll
        )
        solution = lxi.unravel_solution(solution.reshape(n * k), packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _misc.State, options: dict[str, Any]):
        return _misc.transpose_state(state, options)

    def conj(self, state: _misc.State, options: dict[str, Any]):
        return _misc.conj_state(state, options)

    def assume_full_rank(self):
        return True


BlockTridiagonal.__init__.__doc__ = """**Arguments:**

- `unroll`: number of scan steps to unroll in the pure-JAX kernel; see
    `jax.lax.scan`.
- `backend`: `"auto"` (default: the native banded kernel on CPU if it is
    available, the pure-JAX block kernel elsewhere), `"native"` or `"jax"`; see
    [`lineax_kernels.ScanTridiagonal`][].
"""
