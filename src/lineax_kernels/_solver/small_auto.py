from typing import Any, TypeAlias

import equinox.internal as eqxi
import lineax as lx
from jaxtyping import Array, PyTree

from .. import _native
from .._operator import (
    BandedLinearOperator,
    BlockTridiagonalLinearOperator,
    PeriodicTridiagonalLinearOperator,
)
from .banded import Banded
from .block_tridiagonal import BlockTridiagonal
from .periodic_tridiagonal import PeriodicTridiagonal
from .scan_tridiagonal import ScanTridiagonal
from .unrolled_small_cholesky import UnrolledSmallCholesky
from .unrolled_small_lu import UnrolledSmallLU
from .unrolled_small_qr import UnrolledSmallQR
from .unrolled_small_triangular import UnrolledSmallTriangular


# Which solver `init` chose, as a static string ("banded", "periodic", "block",
# "tridiagonal", "small_triangular", "small_cholesky", "small_lu", "small_qr" or
# "fallback"), and that solver's own state. As in `lineax.AutoLinearSolver`, the
# state holds a token and not the solver itself: the solver is rebuilt from `self`
# in `compute`, so the state carries no Python objects beyond one hashable string.
_SmallAutoState: TypeAlias = tuple[eqxi.Static, Any]


class SmallAuto(lx.AbstractLinearSolver[_SmallAutoState]):
    """Chooses a solver from the static structure and size of the operator, like
    [`lineax.AutoLinearSolver`][], but with the fast kernels of this library where
    they apply:

    - If `well_posed` is not `False` and the operator is square:
        - If the operator is a
            [`lineax_kernels.PeriodicTridiagonalLinearOperator`][], then use
            [`lineax_kernels.PeriodicTridiagonal`][]; if it is a
            [`lineax_kernels.BlockTridiagonalLinearOperator`][], then use
            [`lineax_kernels.BlockTridiagonal`][] (any size); if it is a
            [`lineax_kernels.BandedLinearOperator`][], then use
            [`lineax_kernels.Banded`][] (any size and bandwidth).
        - If the operator is diagonal, then use `fallback` (by default
            [`lineax.Diagonal`][]).
        - If the operator is tridiagonal, then use
            [`lineax_kernels.ScanTridiagonal`][] (any size).
        - If its size is at most `max_size`:
            - If the operator is triangular, then use
                [`lineax_kernels.UnrolledSmallTriangular`][].
            - If it is positive or negative (semi-)definite, then use
                [`lineax_kernels.UnrolledSmallCholesky`][].
            - Else use [`lineax_kernels.UnrolledSmallLU`][].
        - Else use `fallback` (by default [`lineax.Triangular`][],
            [`lineax.Cholesky`][] or [`lineax.LU`][], by the same tags).
    - If `well_posed=None` and the operator is not square, but its sizes fit the
        limits of [`lineax_kernels.UnrolledSmallQR`][] (its defaults), then use
        that: the least-squares or minimum-norm solution, as `lineax.QR` gives.
    - Else use `fallback`. By default that is `lineax.AutoLinearSolver(well_posed)`,
        which handles non-square operators with [`lineax.QR`][] when
        `well_posed=None`, raises an error for them when `well_posed=True`, and uses
        [`lineax.SVD`][] (or [`lineax.Diagonal`][]) for everything when
        `well_posed=False`.

    So with the default `fallback`, this solver gives the same results as
    `lineax.AutoLinearSolver(well_posed)`, only faster on the small dense systems of a
    batched Newton solve or an implicit ODE step, and it is a drop-in replacement for
    the default `linear_solver=lx.AutoLinearSolver(well_posed=None)` of Optimistix
    and Diffrax.

    The choice depends only on the operator's shape and tags, so it is made once at
    trace time and costs nothing at run time. Use
    [`lineax_kernels.SmallAuto.select_solver`][] to see which solver an operator gets.

    !!! info

        Diagonal operators keep [`lineax.Diagonal`][]: it does no factorisation at
        all. The order of the checks is that of `lineax.AutoLinearSolver`, so an
        operator with several tags gets the same kind of solver from both.
        Tridiagonal operators go to `ScanTridiagonal`: it pivots the same way on
        every backend (`lax.linalg.tridiagonal_solve`, behind `lineax.Tridiagonal`,
        pivots only on CPU), and on a CPU its native kernel is also the fastest
        correct choice. Pivoted, float64, against vmapped `lineax.Tridiagonal` on a
        2-core CPU (`python -m benchmarks --full --only tridiag`): 2.1x at
        (n, batch) = (1e6, 1), 6.2x at (4096, 256), 8.0x at (256, 4096), 6.3x at
        (32, 32768). (The pure-JAX kernel, used on CPU only with `backend="jax"`,
        is 0.35-0.5x the best alternative there.) All of this library's solvers
        need a nonsingular operator, so none is used when `well_posed=False`.
    """

    well_posed: bool | None = None
    max_size: int = 16
    fallback: lx.AbstractLinearSolver | None = None
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if self.well_posed not in (True, False, None):
            raise ValueError(f"Invalid value `well_posed={self.well_posed}`.")
        if isinstance(self.max_size, int) and self.max_size < 1:
            raise ValueError("`SmallAuto(max_size=...)` must be at least 1.")
        _native.check_backend(self.backend)

    def _fallback(self) -> lx.AbstractLinearSolver:
        if self.fallback is None:
            return lx.AutoLinearSolver(well_posed=self.well_posed)
        return self.fallback

    def _lookup(self, token: str) -> lx.AbstractLinearSolver:
        if token == "banded":
            return Banded(backend=self.backend)
        elif token == "periodic":
            return PeriodicTridiagonal(backend=self.backend)
        elif token == "block":
            return BlockTridiagonal(backend=self.backend)
        elif token == "tridiagonal":
            return ScanTridiagonal(backend=self.backend)
        elif token == "small_triangular":
            return UnrolledSmallTriangular(max_size=self.max_size, backend=self.backend)
        elif token == "small_cholesky":
            return UnrolledSmallCholesky(max_size=self.max_size, backend=self.backend)
        elif token == "small_lu":
            return UnrolledSmallLU(max_size=self.max_size, backend=self.backend)
        elif token == "small_qr":
            return UnrolledSmallQR(backend=self.backend)
        else:
            return self._fallback()

    def _select_token(self, operator: lx.AbstractLinearOperator) -> str:
        size = operator.in_size()
        if self.well_posed is False:
            return "fallback"
        if size != operator.out_size():
            if self.well_posed is None:
                qr = UnrolledSmallQR()
                small, large = sorted((size, operator.out_size()))
                if 0 < small <= qr.max_size and large <= qr.max_long_size:
                    return "small_qr"
            return "fallback"
        # By type, not by tag: lineax has no tags for these structures.
        if isinstance(operator, PeriodicTridiagonalLinearOperator):
            return "periodic"
        if isinstance(operator, BlockTridiagonalLinearOperator):
            return "block"
        if isinstance(operator, BandedLinearOperator):
            return "banded"
        if lx.is_diagonal(operator):
            return "fallback"
        if lx.is_tridiagonal(operator):
            return "tridiagonal"
        if not 0 < size <= self.max_size:
            return "fallback"
        if lx.is_lower_triangular(operator) or lx.is_upper_triangular(operator):
            return "small_triangular"
        if lx.is_positive_semidefinite(operator) or lx.is_negative_semidefinite(
            operator
        ):
            return "small_cholesky"
        return "small_lu"

    def select_solver(
        self, operator: lx.AbstractLinearOperator
    ) -> lx.AbstractLinearSolver:
        """Check which solver [`lineax_kernels.SmallAuto`][] will dispatch to.

        **Arguments:**

        - `operator`: a linear operator.

        **Returns:**

        The linear solver that will be used. (For the default `fallback`, this is the
        `lineax.AutoLinearSolver` itself; call its own `select_solver` to see
        further.)
        """
        return self._lookup(self._select_token(operator))

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        token = self._select_token(operator)
        return eqxi.Static(token), self._lookup(token).init(operator, options)

    def compute(
        self, state: _SmallAutoState, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        token, sub_state = state
        del state
        solution, result, _ = self._lookup(token.value).compute(
            sub_state, vector, options
        )
        return solution, result, {}

    def transpose(self, state: _SmallAutoState, options: dict[str, Any]):
        token, sub_state = state
        del state
        sub_state, options = self._lookup(token.value).transpose(sub_state, options)
        return (token, sub_state), options

    def conj(self, state: _SmallAutoState, options: dict[str, Any]):
        token, sub_state = state
        del state
        sub_state, options = self._lookup(token.value).conj(sub_state, options)
        return (token, sub_state), options

    def assume_full_rank(self):
        # All of this library's solvers assume full rank, so this
        # solver does exactly when every operator it might see does: when the
        # fallback does.
        return self._fallback().assume_full_rank()


SmallAuto.__init__.__doc__ = """**Arguments:**

- `well_posed`: as for [`lineax.AutoLinearSolver`][]: `None` (the default, as in
    Optimistix and Diffrax) solves square systems and gives least-squares or
    minimum-norm solutions of non-square ones; `True` raises an error for non-square
    operators; `False` handles rank-deficient operators, and so always uses
    `fallback`.
- `max_size`: the largest square operator sent to
    [`lineax_kernels.UnrolledSmallLU`][],
    [`lineax_kernels.UnrolledSmallCholesky`][] or
    [`lineax_kernels.UnrolledSmallTriangular`][] (default 16: on a CPU their
    native kernels beat LAPACK up to there; see `benchmarks/`).
- `fallback`: the solver for every operator not handled above. Defaults to
    `lineax.AutoLinearSolver(well_posed=well_posed)`.
- `backend`: passed to the solvers of this library that it dispatches to (see
    [`lineax_kernels.UnrolledSmallLU`][]).
"""
