from typing import Any

import jax.lax as lax
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, PyTree

from .. import _misc, _native
from .._kernels import block_tridiagonal, periodic_tridiagonal
from .._operator import PeriodicTridiagonalLinearOperator


class PeriodicTridiagonal(lx.AbstractLinearSolver[_misc.State]):
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

    **On CPU** (with the native kernels, `backend="auto"` or `"native"`) the folded
    matrix is solved as the banded matrix it is (3 sub- and superdiagonals) by the
    native kernel of [`lineax_kernels.Banded`][]: LAPACK `?gbtrf`'s partial
    pivoting on the same folded matrix, with the same guarantee; the state then
    holds the folded blocks, and `compute` factorises and solves in one pass.
    """

    unroll: int = 1
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if isinstance(self.unroll, int) and self.unroll < 1:
            raise ValueError("`PeriodicTridiagonal(unroll=...)` must be at least 1.")
        _native.check_backend(self.backend)

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
        bands = (operator.diagonal, operator.lower_diagonal, operator.upper_diagonal)
        bands = _misc.promote("PeriodicTridiagonal", *bands)
        blocks = periodic_tridiagonal.fold_operator(*bands)
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
            "PeriodicTridiagonal", vector, packed_structures, factors[0].dtype
        )
        if op.value.native:
            solution = periodic_tridiagonal.solve_via_bands(
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
        # Q A^T Q^T = (Q A Q^T)^T: the transposed solve is the transposed folded one.
        solution = periodic_tridiagonal.solve(
            factors, vector, op.value.trans, self.unroll
        )
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _misc.State, options: dict[str, Any]):
        return _misc.transpose_state(state, options)

    def conj(self, state: _misc.State, options: dict[str, Any]):
        return _misc.conj_state(state, options)

    def assume_full_rank(self):
        return True


PeriodicTridiagonal.__init__.__doc__ = """**Arguments:**

- `unroll`: number of scan steps to unroll in the pure-JAX kernel; see
    `jax.lax.scan`.
- `backend`: `"auto"` (default: the native banded kernel on CPU if it is
    available, the pure-JAX block kernel elsewhere), `"native"` or `"jax"`; see
    [`lineax_kernels.ScanTridiagonal`][].
"""
