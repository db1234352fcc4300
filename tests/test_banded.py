# `lxk.BandedLinearOperator` and `lxk.Banded`, on both kernels: the numerics of the
# banded elimination (pivoting within the band, the fill-in, tiny systems, every
# bandwidth path of the native kernel). The generic solver contract (transpose,
# conj, jvp, grad, vmap) is in test_contract.py.
import functools as ft

import jax
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg

from .helpers import dtypes, tol


_backends = pytest.mark.parametrize("backend", ("native", "jax"))


def _dense(bands, lower, upper):
    size = bands.shape[1]
    matrix = np.zeros((size, size), bands.dtype)
    for i in range(size):
        for j in range(max(0, i - lower), min(size, i + upper + 1)):
            matrix[i, j] = bands[upper + i - j, j]
    return matrix


def _clean(bands, lower, upper):
    # Zeros in the entries of `bands` outside the matrix (scipy ignores them too).
    size = bands.shape[1]
    r, j = np.indices(bands.shape)
    i = j + r - upper
    return np.where((i >= 0) & (i < size), bands, 0)


def _bands(seed, n, lower, upper, dtype, kind):
    """Bands of an `n x n` matrix of the given kind, resampled until its condition
    number is below 1e4 (except "scaled", which is badly scaled on purpose)."""
    rng = np.random.default_rng([seed, n, lower, upper])
    complex_ = np.issubdtype(np.dtype(dtype), np.complexfloating)
    shape = (lower + upper + 1, n)
    for _ in range(1000):
        bands = rng.standard_normal(shape)
        if complex_:
            bands = bands + 1j * rng.standard_normal(shape)
        if kind == "dominant":
            bands[upper] += 2 * (lower + upper + 1)
        elif kind == "zero_diagonal":
            # Every pivot comes from a row below, swapped up across the band.
            bands[upper] = 0
        elif kind == "swap_across_band":
            # The largest entry of each column is (mostly) on the lowest subdiagonal, so
            # most steps swap the row `lower` below into the pivot position.
            if lower:
                bands[upper + lower] *= 10
        bands = _clean(bands, lower, upper)
        if kind == "scaled":
            bands[upper] += 2 * (lower + upper + 1)
            scale = np.logspace(-6, 6, n)[rng.permutation(n)]
            # Row scaling: A[i, j] = bands[upper + i - j, j] -> scale[i] A[i, j].
            r, j = np.indices(shape)
            i = np.clip(j + r - upper, 0, n - 1)
            return (bands * scale[i]).astype(dtype)
        if np.linalg.cond(_dense(bands, lower, upper)) < 1e4:
            return bands.astype(dtype)
    raise AssertionError("no well-conditioned matrix of this kind")


@ft.cache
def _jit_solve(backend):
    def solve(bands, vector, lower, upper):
        operator = lxk.BandedLinearOperator(bands, lower, upper)
        sol = lx.linear_solve(
            operator, vector, lxk.Banded(backend=backend), throw=False
        )
        return sol.value, sol.result

    return jax.jit(solve, static_argnums=(2, 3))


def _backward_error(matrix, x, b):
    matrix, x, b = (np.asarray(v, np.complex128) for v in (matrix, x, b))
    residual = np.linalg.norm(matrix @ x - b, np.inf)
    scale = np.linalg.norm(matrix, np.inf) * np.linalg.norm(x, np.inf)
    return residual / (scale + np.linalg.norm(b, np.inf))


_shapes = [
    # (n, lower, upper): n = 1, 2, 3, n below the bandwidth, one-sided bands, and
    # the native kernel's straight-line (1, 2, 3, 5, 7) and general paths.
    (1, 2, 2),
    (2, 1, 1),
    (3, 2, 2),
    (3, 4, 3),
    (5, 0, 2),
    (6, 3, 0),
    (17, 2, 1),
    (23, 5, 5),
    (30, 6, 4),
]


@_backends
@pytest.mark.parametrize("n, lower, upper", _shapes)
def test_matches_dense_and_scipy(backend, n, lower, upper):
    solve = _jit_solve(backend)
    kinds = ["dominant", "scaled", "swap_across_band"]
    if n >= 2 and (n % 2 == 0 or lower + upper > 1):
        kinds.append("zero_diagonal")
    for seed, kind in enumerate(kinds):
        if kind == "zero_diagonal" and (lower == 0 or upper == 0):
            continue  # triangular with a zero diagonal: singular.
        bands = _bands(seed, n, lower, upper, np.float64, kind)
        matrix = _dense(bands, lower, upper)
        b = np.random.default_rng(seed).standard_normal(n)
        x, result = solve(bands, b, lower, upper)
        assert result == lx.RESULTS.successful, kind
        x_scipy = scipy.linalg.solve_banded((lower, upper), bands, b)
        x_dense = np.linalg.solve(matrix, b)
        # Within 10x of LAPACK ?gbsv's backward error (and tiny in absolute terms).
        err = _backward_error(matrix, x, b)
        err_scipy = _backward_error(matrix, x_scipy, b)
        assert err <= 10 * err_scipy + 1e-15, (kind, err, err_scipy)
        if kind != "scaled":
            np.testing.assert_allclose(x, x_dense, rtol=1e-9, atol=1e-9, err_msg=kind)


@_backends
@pytest.mark.parametrize("dtype", dtypes)
def test_dtypes(backend, dtype):
    n, lower, upper = 9, 2, 1
    bands = _bands(0, n, lower, upper, dtype, "zero_diagonal")
    matrix = _dense(bands, lower, upper)
    x_true = np.arange(1, n + 1).astype(dtype)
    x, result = _jit_solve(backend)(
        bands, (matrix @ x_true).astype(dtype), lower, upper
    )
    assert result == lx.RESULTS.successful
    assert x.dtype == dtype
    np.testing.assert_allclose(x, x_true, rtol=100 * tol(dtype), atol=100 * tol(dtype))


@_backends
@pytest.mark.parametrize("where", (0, 5, 9))
def test_singular(backend, where):
    n, lower, upper = 10, 2, 2
    bands = _bands(0, n, lower, upper, np.float64, "dominant")
    # Column `where` all zero.
    for r in range(lower + upper + 1):
        bands[r, where] = 0
    _, result = _jit_solve(backend)(bands, np.ones(n), lower, upper)
    assert result == lx.RESULTS.singular


@pytest.mark.parametrize(
    "lower, upper, transpose, dtype",
    [
        (2, 2, False, np.float64),
        (7, 7, False, np.float64),
        (9, 4, True, np.complex128),
        (0, 0, True, np.complex128),
    ],
)
def test_native_matches_pure_jax(lower, upper, transpose, dtype):
    # A batch of 11 (one full SIMD tile and a partial one on every ISA), every
    # system pivoting (a zero diagonal); transposed and conjugated solves flip the
    # kernels' flags.
    n, batch = 20, 11
    kind = "zero_diagonal" if lower and upper else "dominant"
    bands = np.stack([_bands(s, n, lower, upper, dtype, kind) for s in range(batch)])
    b = np.random.default_rng(0).standard_normal((batch, n)).astype(dtype)

    def solve(backend):
        def one(bands, b):
            operator = lxk.BandedLinearOperator(bands, lower, upper)
            if transpose:
                operator = lx.conj(operator.T)
            return lx.linear_solve(operator, b, lxk.Banded(backend=backend)).value

        return jax.jit(jax.vmap(one))(bands, b)

    x_native, x_jax = solve("native"), solve("jax")
    np.testing.assert_allclose(x_native, x_jax, rtol=1e-12, atol=1e-12)
    for m, x_m, b_m in zip(bands, x_native, b):
        matrix = _dense(m, lower, upper)
        if transpose:
            matrix = matrix.T.conj()
        np.testing.assert_allclose(matrix @ x_m, b_m, rtol=1e-9, atol=1e-9)


def test_native_one_matrix_many_vectors():
    n, lower, upper = 50, 3, 3
    bands = _bands(0, n, lower, upper, np.float64, "zero_diagonal")
    b = np.random.default_rng(1).standard_normal((13, n))
    operator = lxk.BandedLinearOperator(bands, lower, upper)
    x = jax.vmap(lambda v: lx.linear_solve(operator, v, lxk.Banded()).value)(b)
    expected = np.linalg.solve(_dense(bands, lower, upper), b.T).T
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-10)


def test_native_long_single_system():
    # The single-system path over its whole length (and the general bandwidths).
    for lower, upper in ((2, 2), (4, 1)):
        n = 3000
        rng = np.random.default_rng(1)
        bands = rng.standard_normal((lower + upper + 1, n))
        bands[upper] += 2 * (lower + upper + 1)
        b = rng.standard_normal(n)
        x, _ = _jit_solve("native")(bands, b, lower, upper)
        x_scipy = scipy.linalg.solve_banded((lower, upper), bands, b)
        np.testing.assert_allclose(x, x_scipy, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("n, lower, upper", [(1, 0, 0), (4, 2, 1), (6, 1, 3)])
def test_operator(n, lower, upper):
    bands = _bands(0, n, lower, upper, np.complex128, "dominant")
    operator = lxk.BandedLinearOperator(bands, lower, upper)
    matrix = _dense(bands, lower, upper)
    x = np.arange(1, n + 1).astype(np.complex128)
    np.testing.assert_allclose(operator.as_matrix(), matrix)
    np.testing.assert_allclose(operator.mv(x), matrix @ x)
    np.testing.assert_allclose(operator.T.as_matrix(), matrix.T)
    assert (operator.T.lower, operator.T.upper) == (upper, lower)
    np.testing.assert_allclose(lx.conj(operator).as_matrix(), matrix.conj())
    np.testing.assert_allclose(lx.diagonal(operator), np.diagonal(matrix))
    from_matrix = lxk.BandedLinearOperator.from_matrix(matrix, lower, upper)
    np.testing.assert_allclose(from_matrix.as_matrix(), matrix)
    assert lx.is_lower_triangular(operator) == (upper == 0 or n == 1)
    assert lx.is_upper_triangular(operator) == (lower == 0 or n == 1)
    assert lx.is_tridiagonal(operator) == (max(lower, upper) <= 1 or n <= 2)
    assert not lx.is_symmetric(operator)
    if lx.is_tridiagonal(operator):
        diag, sub, sup = lx.tridiagonal(operator)
        np.testing.assert_allclose(diag, np.diagonal(matrix))
        np.testing.assert_allclose(sub, np.diagonal(matrix, -1))
        np.testing.assert_allclose(sup, np.diagonal(matrix, 1))


def test_from_tridiagonal():
    diag, sub, sup = np.arange(1.0, 6.0), np.arange(6.0, 10.0), np.arange(10.0, 14.0)
    tridiagonal = lx.TridiagonalLinearOperator(diag, sub, sup)
    operator = lxk.BandedLinearOperator.from_tridiagonal(tridiagonal)
    np.testing.assert_array_equal(operator.as_matrix(), tridiagonal.as_matrix())
    # `Banded` accepts tridiagonal operators too.
    b = np.ones(5)
    x = lx.linear_solve(tridiagonal, b, lxk.Banded()).value
    np.testing.assert_allclose(tridiagonal.mv(x), b, rtol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="shape"):
        lxk.BandedLinearOperator(np.ones((3, 4)), 1, 2)
    with pytest.raises(ValueError, match="Banded"):
        lx.linear_solve(lx.MatrixLinearOperator(np.eye(3)), np.ones(3), lxk.Banded())
    with pytest.raises(TypeError, match="dtype"):
        lx.linear_solve(
            lxk.BandedLinearOperator(np.ones((3, 4), np.float16), 1, 1),
            np.ones(4, np.float16),
            lxk.Banded(),
        )


def test_small_auto():
    operator = lxk.BandedLinearOperator(np.ones((5, 4)), 2, 2)
    assert isinstance(lxk.SmallAuto().select_solver(operator), lxk.Banded)
    assert lxk.SmallAuto(backend="jax").select_solver(operator).backend == "jax"
