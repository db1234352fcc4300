from typing import Any

import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, PyTree

from .. import _misc, _native
from .._kernels import small_cholesky


class UnrolledSmallCholesky(lx.AbstractLinearSolver[_misc.State]):
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
        _misc.check_square(
            "UnrolledSmallCholesky", operator, "`lx.AutoLinearSolver(well_posed=None)`"
        )
        is_nsd = lx.is_negative_semidefinite(operator)
        if not (lx.is_positive_semidefinite(operator) or is_nsd):
            raise ValueError(
                "`UnrolledSmallCholesky` may only be used for positive or negative "
                "definite operators (tagged `lx.positive_semidefinite_tag` or "
                "`lx.negative_semidefinite_tag`). Use `lxk.UnrolledSmallLU()` or "
                "`lx.LU()` instead."
            )
        _misc.check_max_size(
            "UnrolledSmallCholesky",
            operator.in_size(),
            self.max_size,
            "`lx.Cholesky()`",
        )
        matrix = operator.as_matrix()
        _misc.check_dtypes("UnrolledSmallCholesky", matrix)
        # The state holds the matrix, not its factor: `compute` factorises and
        # substitutes in one pass, as `UnrolledSmallLU` does.
        flags = small_cholesky.Flags(negate=is_nsd)
        return _misc.make_state(matrix, operator, flags)

    def compute(
        self, state: _misc.State, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        matrix, packed_structures, flags = state
        del state, options
        vector = _misc.ravel_vector(
            "UnrolledSmallCholesky", vector, packed_structures, matrix.dtype
        )
        solution = small_cholesky.solve(matrix, vector, flags.value, self.backend)
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _misc.State, options: dict[str, Any]):
        return _misc.transpose_state(state, options)

    def conj(self, state: _misc.State, options: dict[str, Any]):
        return _misc.conj_state(state, options)

    def assume_full_rank(self):
        return True


UnrolledSmallCholesky.__init__.__doc__ = """**Arguments:**

- `max_size`: the largest operator size accepted (default 16). Above it `init`
    raises a `ValueError`; use [`lineax.Cholesky`][] there. Raising it works.
- `backend`: `"auto"`, `"native"` or `"jax"`, as for
    [`lineax_kernels.UnrolledSmallLU`][].
"""
