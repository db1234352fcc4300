from typing import Any

import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, PyTree

from .. import _misc
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
    """

    unroll: int = 1

    def __check_init__(self):
        if isinstance(self.unroll, int) and self.unroll < 1:
            raise ValueError("`PeriodicTridiagonal(unroll=...)` must be at least 1.")

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
        _misc.check_dtypes("PeriodicTridiagonal", *bands)
        blocks = periodic_tridiagonal.fold_operator(*bands)
        factors = block_tridiagonal.factor(*blocks, self.unroll)
        return _misc.make_state(factors, operator, _misc.Op())

    def compute(
        self, state: _misc.State, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        factors, packed_structures, op = state
        del state, options
        vector = _misc.ravel_vector(
            "PeriodicTridiagonal", vector, packed_structures, factors[0].dtype
        )
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

- `unroll`: number of scan steps to unroll; see `jax.lax.scan`.
"""
