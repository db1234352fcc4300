from typing import Any

import jax.lax as lax
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, PyTree

from .. import _misc, _native
from .._kernels import tridiagonal


class ScanTridiagonal(lx.AbstractLinearSolver[_misc.State]):
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
        _misc.check_square("ScanTridiagonal", operator, "`lx.AutoLinearSolver()`")
        if not lx.is_tridiagonal(operator):
            raise ValueError(
                "`ScanTridiagonal` may only be used for linear solves with tridiagonal "
                "matrices (operators with `lx.tridiagonal_tag`, such as "
                "`lx.TridiagonalLinearOperator`). For dense operators use `lx.LU()`, "
                "or `lxk.UnrolledSmallLU()` for small ones."
            )
        # lineax stops gradients through the state anyway; doing it here too keeps
        # autodiff away from the kernels, which have no autodiff rules.
        bands = lax.stop_gradient(lx.tridiagonal(operator))
        _misc.check_dtypes("ScanTridiagonal", *bands)
        flags = tridiagonal.Flags(pivoting=self.pivoting)
        return _misc.make_state(bands, operator, flags)

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
        self, state: _misc.State, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        bands, packed_structures, flags = state
        del state, options
        vector = _misc.ravel_vector(
            "ScanTridiagonal", vector, packed_structures, bands[0].dtype
        )
        solution = tridiagonal.solve(
            *bands, vector, flags.value, self.backend, self.unroll
        )
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _misc.State, options: dict[str, Any]):
        return _misc.transpose_state(state, options)

    def conj(self, state: _misc.State, options: dict[str, Any]):
        return _misc.conj_state(state, options)

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
