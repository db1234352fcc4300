# Numerics of `UnrolledSmallTriangular` on both kernel paths against LAPACK, at the
# sizes where the code path changes: the native kernel's static instantiations
# (d = 1..8) and its run-time-d loop (9, 16 = max_size); the pure-JAX straight-line
# code (d <= 8) and its rolled loop (d >= 9). (jit, vmap, autodiff, transpose, conj,
# dtypes and errors: `test_contract.py`.)
import itertools as it

import jax
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg

from .helpers import (
    backends,
    backward_error,
    check_partial_tiles,
    flag_matrices,
    flag_solves,
    flags,
    partial_tile_sizes,
    solve_fn,
)


_MAX = lxk.UnrolledSmallTriangular().max_size
# The sizes where the code path changes: each static native instantiation (1-8) and
# the native run-time loop (9, max_size); pure JAX: straight-line code up to 8 (one
# generator at every size), a rolled loop from 9. 32 bits at a few of them.
_SIZES = {
    "native": (1, 2, 3, 4, 5, 6, 7, 8, 9, _MAX),
    "jax": (1, 8, 9),
}
_SIZES_32 = {"native": (2, 8, 9), "jax": (1, 9)}
_KINDS = list(it.product((True, False), (True, False)))  # (lower, unit)


def _tags(lower, unit):
    return frozenset(
        [lx.lower_triangular_tag if lower else lx.upper_triangular_tag]
        + ([lx.unit_diagonal_tag] if unit else [])
    )


def pytest_generate_tests(metafunc):
    if "family_params" in metafunc.fixturenames:
        full = metafunc.config.getoption("--full")
        params = []
        for backend in backends:
            for d in range(1, _MAX + 1) if full else _SIZES[backend]:
                dtypes = [np.float64, np.complex128]
                if full or d in _SIZES_32[backend]:
                    dtypes += [np.float32, np.complex64]
                params += [(backend, d, dtype) for dtype in dtypes]
        ids = [f"{b}-d{d}-{np.dtype(t).name}" for b, d, t in params]
        metafunc.parametrize("family_params", params, ids=ids)


def _problems(d, dtype, lower, unit, rng):
    """Random and graded (D A D, D spanning 1e+-8; 1e+-2 in 32 bits) triangles, with
    NaN in the other triangle (and on the diagonal, if unit) that must never be
    read; then `(matrices, vectors)` that must give RESULTS.singular: a NaN in the
    vector, a zero on the diagonal, a NaN or an inf in the triangle."""
    n = 6
    m = rng.standard_normal((n, d, d))
    if np.issubdtype(dtype, np.complexfloating):
        m = m + 1j * rng.standard_normal((n, d, d))
    m = m / np.sqrt(d) + 3 * np.eye(d)
    grade = 8 if np.finfo(dtype).bits > 32 else 2
    scales = 10.0 ** np.linspace(-grade, grade, d)
    m[n // 2 :] *= scales[:, None] * scales[None, :]
    inside = np.tril(np.ones((d, d), bool)) if lower else np.triu(np.ones((d, d), bool))
    if unit:
        m[:, np.arange(d), np.arange(d)] = 1.0
        inside = inside & ~np.eye(d, dtype=bool)
    triangle = np.where(inside | np.eye(d, dtype=bool), m, 0)
    garbage = np.where(inside, m, np.nan)
    if unit:
        garbage[:, np.arange(d), np.arange(d)] = np.nan
    # A NaN in the right-hand side, then in the matrix.
    bad = [garbage[0]]
    if not unit:
        zero = garbage[0].copy()
        zero[d // 2, d // 2] = 0.0
        bad.append(zero)
    for value in (np.nan, np.inf):
        spoiled = garbage[0].copy()
        # The last entry that the solve reads (the pivot, if not unit).
        i, j = (d - 1, 0) if lower else (0, d - 1)
        if d == 1:
            # Only the diagonal is read, and +inf there has the finite limit x = 0
            # (as LAPACK's ?trtrs gives, and as for UnrolledSmallCholesky).
            if unit or value == np.inf:
                continue
            i, j = 0, 0
        spoiled[i, j] = value
        bad.append(spoiled)
    bad_vectors = np.ones((len(bad), d))
    bad_vectors[0, -1] = np.nan
    bad = (np.stack(bad).astype(dtype), bad_vectors.astype(dtype))
    return triangle.astype(dtype), garbage.astype(dtype), bad


def test_families_against_lapack(family_params):
    backend, d, dtype = family_params
    rng = np.random.default_rng(d)
    problems = [_problems(d, dtype, lower, unit, rng) for lower, unit in _KINDS]
    vectors = rng.standard_normal((6, d)).astype(dtype)
    solver = lxk.UnrolledSmallTriangular(backend=backend)

    def solve_all(problems, vectors):
        out = []
        for (lower, unit), (_, garbage, bad) in zip(_KINDS, problems):
            solve = jax.vmap(solve_fn(solver, _tags(lower, unit), throw=False))
            # And op(A) x = b for op = transpose, conj, adjoint, through the states.
            operator = lx.MatrixLinearOperator(garbage[0], _tags(lower, unit))
            flagged = flag_solves(solver, operator, vectors[0])
            out.append((solve(garbage, vectors), solve(*bad), flagged))
        return out

    out = jax.jit(solve_all)(problems, vectors)
    eps = float(np.finfo(dtype).eps)
    for (lower, unit), (triangle, _, _), ((x, r), (x_bad, r_bad), flagged) in zip(
        _KINDS, problems, out
    ):
        for name, x_op, op_matrix in zip(flags, flagged, flag_matrices(triangle[0])):
            assert np.max(backward_error(op_matrix, x_op, vectors[0])) <= 8 * d, name
        assert np.asarray(x).dtype == dtype
        assert np.all(np.asarray(r) == lx.RESULTS.successful._value)
        # (lineax reports non-finite input in the vector by its own code.)
        assert r_bad[0] == lx.RESULTS.nonfinite_input._value, (lower, unit)
        assert np.all(np.asarray(r_bad)[1:] == lx.RESULTS.singular._value), (
            lower,
            unit,
        )
        assert not np.any(np.all(np.isfinite(np.asarray(x_bad)), axis=1))
        for a, b, xi in zip(triangle, vectors, np.asarray(x)):
            x_lapack = scipy.linalg.solve_triangular(
                a, b, lower=lower, unit_diagonal=unit
            )
            a, b, xi, x_lapack = (y.astype(np.complex128) for y in (a, b, xi, x_lapack))

            def componentwise(x):
                bound = np.abs(a) @ np.abs(x) + np.abs(b)
                return np.max(np.abs(a @ x - b) / np.where(bound == 0, 1, bound))

            assert componentwise(xi) <= max(
                10 * componentwise(x_lapack), 4 * d * eps
            ), (
                lower,
                unit,
            )


@pytest.mark.parametrize("d", (3, 12))
def test_partial_simd_tiles_and_shared_operators(d):
    # Native: batch sizes leaving a partial last SIMD tile; one matrix with many
    # right-hand sides; one right-hand side with many matrices; upper triangular.
    rng = np.random.default_rng(d)
    matrices = [
        np.triu(rng.standard_normal((n, d, d))) + 3 * np.eye(d)
        for n in partial_tile_sizes
    ]
    vectors = [rng.standard_normal((n, d)) for n in partial_tile_sizes]
    check_partial_tiles(
        lxk.UnrolledSmallTriangular(backend="native"),
        _tags(False, False),
        matrices,
        vectors,
        rtol=1e-10,
        atol=1e-12,
    )


def test_max_size():
    tags = _tags(True, False)
    with pytest.raises(ValueError, match=rf"size {_MAX + 1}.*max_size={_MAX}"):
        lx.linear_solve(
            lx.MatrixLinearOperator(np.eye(_MAX + 1), tags),
            np.ones(_MAX + 1),
            lxk.UnrolledSmallTriangular(),
        )
    with pytest.raises(ValueError, match="at least 1"):
        lxk.UnrolledSmallTriangular(max_size=0)
