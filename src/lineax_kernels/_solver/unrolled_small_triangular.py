from typing import Any

import lineax as lx
import lineax.internal as lxi
from jaxtyping import Array, PyTree

from .. import _misc, _native
from .._kernels import small_triangular


class UnrolledSmallTriangular(lx.AbstractLinearSolver[_misc.State]):
    """Forward or back substitution for small triangular operators, specialised to the
    static size of the operator, like [`lineax_kernels.UnrolledSmallLU`][]. For many
    tiny systems under `jax.vmap` this
    is much faster than [`lineax.Triangular`][], which calls `trsv`/`trsm` once per
    matrix.

    The operator must be square and tagged `lx.lower_triangular_tag` or
    `lx.upper_triangular_tag` (optionally with `lx.unit_diagonal_tag`, and then its
    diagonal is never read). Only the triangle is read, as LAPACK's `?trtrs` does.
    A zero on the diagonal gives a non-finite solution, so `lineax.linear_solve`
    reports `RESULTS.singular`.

    There are two kernels, chosen per platform inside one compiled program:

    - On CPU, a native C++ kernel (compiled when the package is installed, called
        through the XLA FFI) that solves a tile of systems at once, one system per
        SIMD lane, reading only the triangle. It has a straight-line instantiation
        for each size up to 8 and a looped one above.
    - On GPU/TPU (and on CPU with `backend="jax"`), pure JAX: straight-line code in
        a batch-innermost layout up to size 8, a `lax.fori_loop` above.

    `init` keeps the operator's matrix; `transpose` and `conj` only flip static
    flags. Under `jax.vmap` over the right-hand side only, the triangle is prepared
    (diagonal inverted) once.

    !!! info

        The default `max_size=16` matches [`lineax_kernels.UnrolledSmallCholesky`][]
        and is where LAPACK's per-matrix overhead stops dominating.
    """

    max_size: int = 16
    backend: _native.Backend = "auto"

    def __check_init__(self):
        if isinstance(self.max_size, int) and self.max_size < 1:
            raise ValueError(
                "`UnrolledSmallTriangular(max_size=...)` must be at least 1."
            )
        _native.check_backend(self.backend)

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        _misc.check_square(
            "UnrolledSmallTriangular",
            operator,
            "`lx.AutoLinearSolver(well_posed=None)`",
        )
        lower = lx.is_lower_triangular(operator)
        if not (lower or lx.is_upper_triangular(operator)):
            raise ValueError(
                "`UnrolledSmallTriangular` may only be used for linear solves with "
                "triangular matrices (tagged `lx.lower_triangular_tag` or "
                "`lx.upper_triangular_tag`). Use `lxk.UnrolledSmallLU()` or "
                "`lx.LU()` instead."
            )
        _misc.check_max_size(
            "UnrolledSmallTriangular",
            operator.in_size(),
            self.max_size,
            "`lx.Triangular()`",
        )
        matrix = operator.as_matrix()
        _misc.check_dtypes("UnrolledSmallTriangular", matrix)
        flags = small_triangular.Flags(
            upper=not lower, unit=lx.has_unit_diagonal(operator)
        )
        return _misc.make_state(matrix, operator, flags)

    def compute(
        self, state: _misc.State, vector: PyTree[Array], options: dict[str, Any]
    ) -> tuple[PyTree[Array], lx.RESULTS, dict[str, Any]]:
        matrix, packed_structures, flags = state
        del state, options
        vector = _misc.ravel_vector(
            "UnrolledSmallTriangular", vector, packed_structures, matrix.dtype
        )
        solution = small_triangular.solve(matrix, vector, flags.value, self.backend)
        solution = lxi.unravel_solution(solution, packed_structures)
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state: _misc.State, options: dict[str, Any]):
        return _misc.transpose_state(state, options)

    def conj(self, state: _misc.State, options: dict[str, Any]):
        return _misc.conj_state(state, options)

    def assume_full_rank(self):
        return True


UnrolledSmallTriangular.__init__.__doc__ = """**Arguments:**

- `max_size`: the largest operator size accepted (default 16). Above it `init`
    raises a `ValueError`; use [`lineax.Triangular`][] there.
- `backend`: `"auto"`, `"native"` or `"jax"`, as for
    [`lineax_kernels.UnrolledSmallLU`][].
"""
