from typing import Any

import jax.lax as lax
import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, PyTree

from .. import _misc, _native
from .._kernels import banded
from .._operator import BandedLinearOperator


class Banded(lx.AbstractLinearSolver[_misc.State]):
    """Gaussian elimination with partial pivoting for banded systems
    ([`lineax_kernels.BandedLinearOperator`][]), as LAPACK's `?gbtrf`/`?gbtrs` (and
    `scipy.linalg.solve_banded`): row interchanges within the band, pivots chosen
    by $|\\mathrm{Re}| + |\\mathrm{Im}|$ (the first largest on ties), and `lower`
    extra superdiagonals of U for the fill-in. This is backward stable for any
    nonsingular banded matrix, with the growth bound of partial pivoting.

    There are two kernels, chosen per platform inside one compiled program:

    - On CPU, a native C++ kernel (compiled when the package is installed, called
        through the XLA FFI). A batch is solved a tile of systems at a time, one
        system per SIMD lane, on XLA's CPU thread pool for large batches; a single
        system runs a scalar loop whose window of the band stays in registers for
        small bandwidths. Factorisation and substitution are fused: the band is read
        once and only the solution is written.
    - On GPU/TPU (and on CPU with `backend="jax"`), pure JAX: one `jax.lax.scan`
        along the band for the factorisation and two for the substitution, which
        under `jax.vmap` carry the whole batch.

    Both pivot the same way. The state holds the operator's bands; `compute`
    factorises and solves. `transpose` and `conj` cost nothing: they flip static
    flags, and the kernels factorise $A^T$ or conj(A) as they stand (so a
    transposed solve pivots as a fresh solve with $A^T$ would).

    This solver can only handle square nonsingular banded operators. An exactly
    zero pivot (after pivoting) produces a non-finite solution, so that
    `lineax.linear_solve` reports `RESULTS.singular`.
    """

    unroll: int = 1
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if isinstance(self.unroll, int) and self.unroll < 1:
            raise ValueError("`Banded(unroll=...)` must be at least 1.")
        _native.check_backend(self.backend)

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if isinstance(operator, lx.TridiagonalLinearOperator):
            operator = BandedLinearOperator.from_tridiagonal(operator)
        if not isinstance(operator, BandedLinearOperator):
            raise ValueError(
                "`Banded` may only be used for linear solves with "
                "`lxk.BandedLinearOperator`s (or `lx.TridiagonalLinearOperator`s); "
                f"got `{type(operator).__name__}`. Use `lx.LU()` for dense operators."
            )
        # lineax stops gradients through the state anyway; doing it here too keeps
        # autodiff away from the kernels, which have no autodiff rules.
        bands = lax.stop_gradient(operator.bands)
        _misc.check_dtypes("Banded", bands)
        flags = banded.Flags(lower=operator.lower, upper=operator.upper)
        return _misc.make_state(bands, operator, flags)

    def compute(
        self, state: _misc.State, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        bands, packed_structures, flags = state
        del state, options
        vector = _misc.ravel_vector("Banded", vector, packed_structures, bands.dtype)
        solution = banded.solve(bands, vector, flags.value, self.backend, self.unroll)
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _misc.State, options: dict[str, Any]):
        return _misc.transpose_state(state, options)

    def conj(self, state: _misc.State, options: dict[str, Any]):
        return _misc.conj_state(state, options)

    def assume_full_rank(self):
        return True


Banded.__init__.__doc__ = """**Arguments:**

- `unroll`: number of scan steps to unroll in the pure-JAX kernel; see
    `jax.lax.scan`.
- `backend`: `"auto"` (default: the native kernel on CPU if it is available, pure
    JAX elsewhere; the environment variable `LINEAX_KERNELS_BACKEND=jax` or
    `=native` overrides it), `"native"` (as `"auto"`, but an error if the native
    kernel is unavailable) or `"jax"` (pure JAX everywhere). See
    [`lineax_kernels.backend_info`][].
"""
