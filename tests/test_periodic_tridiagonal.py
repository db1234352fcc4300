# `lxk.PeriodicTridiagonalLinearOperator` and `lxk.PeriodicTridiagonal`; the generic
# solver contract (transpose, conj, jvp, grad, vmap at n = 4) is in test_contract.py.
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest

from .helpers import backward_error, tol


def _dense(d, l, u):
    n = len(d)
    matrix = np.zeros((n, n), np.result_type(d, l, u))
    for i in range(n):
        matrix[i, i] += d[i]
        matrix[i, (i - 1) % n] += l[i]
        matrix[i, (i + 1) % n] += u[i]
    return matrix


def _diagonals(seed, n, dtype, kind):
    """`(diagonal, lower, upper)` in NumPy, of the given kind."""
    rng = np.random.default_rng([seed, n])
    complex_ = np.issubdtype(np.dtype(dtype), np.complexfloating)
    while True:
        d, l, u = rng.standard_normal((3, n))
        if complex_:
            d, l, u = (x + 1j * rng.standard_normal(n) for x in (d, l, u))
        if kind == "dominant":
            d = d + 4 * np.where(np.real(d) >= 0, 1, -1)
        elif kind == "zero_diagonal":
            d = 0 * d
            l, u = l + np.sign(l.real), u + np.sign(u.real)
        elif kind == "singular_inner":
            # Zero diagonal and unit off-diagonals: for odd n the tridiagonal part
            # without the corners is singular (the path graph's adjacency matrix),
            # the periodic matrix is not (the cycle's), so Sherman-Morrison fails.
            d, l, u = 0 * d, 1 + 0 * l, 1 + 0 * u
        elif kind == "scaled":
            d = d + 4 * np.where(np.real(d) >= 0, 1, -1)
            scale = np.logspace(-6, 6, n)[rng.permutation(n)]
            d, l, u = d * scale, l * scale, u * scale
        matrix = _dense(d, l, u)
        if kind in ("scaled", "singular_inner") or np.linalg.cond(matrix) < 1e4:
            return tuple(x.astype(dtype) for x in (d, l, u))


def _check(matrix, b, x, dtype):
    # Forward error against the dense solve, and backward error within 10x of
    # LAPACK's (dense `?gesv`, in the same precision).
    matrix64 = np.asarray(matrix, np.complex128)
    expected = np.linalg.solve(matrix64, np.asarray(b, np.complex128))
    cond = np.linalg.cond(matrix64)
    scale = np.max(np.abs(expected))
    assert np.max(np.abs(x - expected)) <= 10 * tol(dtype) * max(cond, 1) * scale
    lapack = np.linalg.solve(np.asarray(matrix), np.asarray(b))
    ours, theirs = backward_error(matrix, x, b), backward_error(matrix, lapack, b)
    assert ours <= 10 * max(theirs, 1), (ours, theirs)


_kinds = ("dominant", "zero_diagonal", "singular_inner", "scaled", "general")


def _solve(d, l, u, b):
    operator = lxk.PeriodicTridiagonalLinearOperator(d, l, u)
    return lx.linear_solve(operator, b, lxk.PeriodicTridiagonal()).value


_DTYPE_SIZES = [
    (dtype, n) for dtype in (jnp.float64, jnp.complex128) for n in (1, 2, 3, 4, 7)
] + [(jnp.float32, 4), (jnp.complex64, 7)]


@pytest.mark.parametrize(
    "dtype, n", _DTYPE_SIZES, ids=[f"{np.dtype(t).name}-n{n}" for t, n in _DTYPE_SIZES]
)
def test_matches_dense(dtype, n):
    kinds = [
        kind
        for kind in _kinds
        if not (kind == "zero_diagonal" and n % 2)
        and not (kind == "singular_inner" and (n % 2 == 0 or n == 1))
    ]
    diagonals = [_diagonals(i, n, dtype, kind) for i, kind in enumerate(kinds)]
    vectors = np.random.default_rng(n).standard_normal((len(kinds), n)).astype(dtype)
    stacked = [np.stack(x) for x in zip(*diagonals)]
    xs = jax.jit(jax.vmap(_solve))(*stacked, vectors)
    for (d, l, u), b, x in zip(diagonals, vectors, xs):
        assert x.dtype == dtype
        _check(_dense(d, l, u), b, np.asarray(x), dtype)
    if dtype in (jnp.float64, jnp.complex128):
        # One system, no vmap: a different code path in each scan step.
        for (d, l, u), b in zip(diagonals, vectors):
            _check(_dense(d, l, u), b, np.asarray(jax.jit(_solve)(d, l, u, b)), dtype)


def test_large_singular_inner():
    # n = 1001 with the tridiagonal part singular: stable here, unlike
    # Sherman-Morrison around `lx.Tridiagonal`.
    d, l, u = _diagonals(0, 1001, jnp.float64, "singular_inner")
    b = np.random.default_rng(0).standard_normal(1001)
    x = jax.jit(_solve)(d, l, u, b)
    _check(_dense(d, l, u), b, np.asarray(x), jnp.float64)


def test_vmap_vector_and_tridiagonal_operator():
    # `lx.TridiagonalLinearOperator` is accepted (zero corners); vmap over the
    # right-hand side only factorises once.
    d, l, u = _diagonals(0, 6, jnp.float64, "zero_diagonal")
    operator = lx.TridiagonalLinearOperator(d, l[1:], u[:-1])
    vectors = np.random.default_rng(0).standard_normal((5, 6))
    solve = lambda b: lx.linear_solve(operator, b, lxk.PeriodicTridiagonal()).value
    xs = jax.jit(jax.vmap(solve))(vectors)
    expected = np.linalg.solve(np.asarray(operator.as_matrix()), vectors.T).T
    np.testing.assert_allclose(xs, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("where", ("zero", "row", "column"))
def test_singular(where):
    d, l, u = _diagonals(0, 5, jnp.float64, "dominant")
    if where == "zero":
        d, l, u = 0 * d, 0 * l, 0 * u
    elif where == "row":
        d[2], l[2], u[2] = 0, 0, 0
    else:  # column 0
        d[0], l[1], u[4] = 0, 0, 0
    operator = lxk.PeriodicTridiagonalLinearOperator(d, l, u)
    b = jnp.ones(5)
    solution = lx.linear_solve(operator, b, lxk.PeriodicTridiagonal(), throw=False)
    assert solution.result == lx.RESULTS.singular
    with pytest.raises(Exception, match="singular"):
        jax.block_until_ready(_solve(d, l, u, b))


@pytest.mark.parametrize("n", (1, 2, 5))
def test_operator(n):
    d, l, u = _diagonals(0, n, jnp.complex128, "general")
    operator = lxk.PeriodicTridiagonalLinearOperator(d, l, u)
    matrix = _dense(d, l, u)
    x = np.random.default_rng(0).standard_normal(n).astype(np.complex128)
    np.testing.assert_allclose(operator.as_matrix(), matrix)
    np.testing.assert_allclose(operator.mv(x), matrix @ x)
    np.testing.assert_allclose(operator.T.as_matrix(), matrix.T)
    np.testing.assert_allclose(lx.conj(operator).as_matrix(), matrix.conj())
    np.testing.assert_allclose(lx.diagonal(operator), np.diag(matrix))
    assert lx.materialise(operator) is operator
    assert lx.linearise(operator) is operator
    assert lx.is_tridiagonal(operator) is (n <= 2)
    assert lx.is_diagonal(operator) is (n == 1)
    if n <= 2:
        for band, k in zip(lx.tridiagonal(operator), (0, -1, 1)):
            np.testing.assert_allclose(band, np.diagonal(matrix, k))
    for predicate in (
        lx.is_symmetric,
        lx.has_unit_diagonal,
        lx.is_lower_triangular,
        lx.is_upper_triangular,
        lx.is_positive_semidefinite,
        lx.is_negative_semidefinite,
    ):
        assert predicate(operator) is False
    # A PyTree that jit and vmap handle.
    mv = jax.jit(jax.vmap(lambda op, v: op.mv(v), in_axes=(None, 0)))
    np.testing.assert_allclose(mv(operator, x[None]), (matrix @ x)[None])
    # From `lx.TridiagonalLinearOperator`, losslessly.
    tridiagonal = lx.TridiagonalLinearOperator(d, l[1:], u[:-1])
    periodic = lxk.PeriodicTridiagonalLinearOperator.from_tridiagonal(tridiagonal)
    np.testing.assert_array_equal(periodic.as_matrix(), tridiagonal.as_matrix())


def test_errors():
    # (The jaxtyping import hook of the tests may raise a TypeError first.)
    with pytest.raises((ValueError, TypeError), match="lower_diagonal"):
        lxk.PeriodicTridiagonalLinearOperator(jnp.ones(3), jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="`PeriodicTridiagonal`.*`lx.LU\\(\\)`"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(4)), jnp.ones(4), lxk.PeriodicTridiagonal()
        )


def test_small_auto():
    d, l, u = _diagonals(0, 5, jnp.float64, "singular_inner")
    operator = lxk.PeriodicTridiagonalLinearOperator(d, l, u)
    assert isinstance(lxk.SmallAuto().select_solver(operator), lxk.PeriodicTridiagonal)
    b = jnp.ones(5)
    x = lx.linear_solve(operator, b, lxk.SmallAuto()).value
    np.testing.assert_allclose(x, np.linalg.solve(_dense(d, l, u), b), rtol=1e-10)
