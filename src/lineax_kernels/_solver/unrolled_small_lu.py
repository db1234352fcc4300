from typing import Any

import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, PyTree

from .. import _misc, _native
from .._kernels import small_lu


class UnrolledSmallLU(lx.AbstractLinearSolver[_misc.State]):
    """LU decomposition with partial pivoting, as straight-line code generated for
    the static size of the operator: no LAPACK call, and pivots chosen by
    comparisons and selects rather than by branching. For many small systems under
    `jax.vmap` this is many times faster than [`lineax.LU`][] or
    `jnp.linalg.solve`, which call LAPACK once per matrix.

    This solver can only handle square nonsingular operators. A singular operator
    (an exactly zero pivot after pivoting) produces a non-finite solution, so that
    `lineax.linear_solve` reports `RESULTS.singular`; so does non-finite input.
    Pivots are chosen as LAPACK's `?getrf` chooses them: the largest
    |Re| + |Im| in the column (LAPACK's `cabs1`), the first on ties.

    There are two kernels, chosen per platform inside one compiled program:

    - On CPU, a native C++ kernel (compiled when the package is installed, called
        through the XLA FFI) that solves a tile of systems at once, one system per
        SIMD lane, factorisation and substitution fused: its cost approaches reading
        the matrices and right-hand sides once. It has a straight-line
        instantiation for each size up to 8 and a looped one above.
    - On GPU/TPU (and on CPU with `backend="jax"`), pure JAX: straight-line code
        in a batch-innermost layout up to size 4, a `lax.fori_loop` above.

    Under `jax.vmap` over the right-hand side only, the operator is factorised
    once. `transpose` and `conj` reuse the state for free; `lx.linear_solve`'s
    reverse mode (which solves with the transpose) factorises again, which costs
    about as much as reading stored factors would.
    """

    max_size: int = 32
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if isinstance(self.max_size, int) and self.max_size < 1:
            raise ValueError("`UnrolledSmallLU(max_size=...)` must be at least 1.")
        _native.check_backend(self.backend)

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        _misc.check_square(
            "UnrolledSmallLU", operator, "`lx.AutoLinearSolver(well_posed=None)`"
        )
        _misc.check_max_size(
            "UnrolledSmallLU", operator.in_size(), self.max_size, "`lx.LU()`"
        )
        matrix = operator.as_matrix()
        _misc.check_dtypes("UnrolledSmallLU", matrix)
        # The state holds the matrix itself: `compute` factorises and substitutes in
        # one pass (one native kernel on CPU, which reads the matrix once and writes
        # only the solution; factors kept in the state would be written and read
        # back, two more passes over memory, measured 2.1-2.8x slower).
        return _misc.make_state(matrix, operator, _misc.Op())

    def compute(
        self, state: _misc.State, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        matrix, packed_structures, op = state
        del state, options
        vector = _misc.ravel_vector(
            "UnrolledSmallLU", vector, packed_structures, matrix.dtype
        )
        solution = small_lu.solve(matrix, vector, op.value, self.backend)
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _misc.State, options: dict[str, Any]):
        return _misc.transpose_state(state, options)

    def conj(self, state: _misc.State, options: dict[str, Any]):
        return _misc.conj_state(state, options)

    def assume_full_rank(self):
        return True


UnrolledSmallLU.__init__.__doc__ = """**Arguments:**

- `max_size`: the largest operator size accepted (default 32, the largest size
    measured: there the native kernel is still about 4x faster than LAPACK on a
    CPU). Above it `init` raises a `ValueError`; use [`lineax.LU`][] there.
    Raising it works.
- `backend`: `"auto"` (default: the native kernel on CPU if it is available, pure
    JAX elsewhere; the environment variable `LINEAX_KERNELS_BACKEND=jax` or
    `=native` overrides it), `"native"` (as `"auto"`, but an error if the native
    kernel is unavailable) or `"jax"` (pure JAX everywhere). See
    [`lineax_kernels.backend_info`][].
"""
