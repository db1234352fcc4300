import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg


_LOWER = lx.lower_triangular_tag
_UPPER = lx.upper_triangular_tag
_UNIT = lx.unit_diagonal_tag


def _batched_solve(tags, throw=False):
    def solve(matrix, vector):
        operator = lx.MatrixLinearOperator(matrix, tags)
        sol = lx.linear_solve(
            operator, vector, lxk.UnrolledSmallTriangular(), throw=throw
        )
        return sol.value, sol.result._value

    return jax.jit(jax.vmap(solve))


@pytest.mark.parametrize("d", (1, 3, 8, 16))
@pytest.mark.parametrize("lower", (True, False))
@pytest.mark.parametrize("unit", (True, False))
@pytest.mark.parametrize("dtype", (np.float64, np.complex128))
def test_against_lapack(d, lower, unit, dtype):
    # Random and graded (D A D, D spanning 1e+-8) triangles; the other triangle (and
    # the diagonal, if unit) holds NaN, which must never be read.
    rng = np.random.default_rng(d)
    n = 6
    m = rng.standard_normal((n, d, d))
    if dtype == np.complex128:
        m = m + 1j * rng.standard_normal((n, d, d))
    m = m / np.sqrt(d) + 3 * np.eye(d)
    scales = 10.0 ** np.linspace(-8, 8, d)
    m[n // 2 :] *= scales[:, None] * scales[None, :]
    triangle = np.tril(m) if lower else np.triu(m)
    if unit:
        triangle[:, np.arange(d), np.arange(d)] = 1.0
    garbage = np.where(
        np.tril(np.ones((d, d))) if lower else np.triu(np.ones((d, d))),
        triangle,
        np.nan,
    )
    if unit:
        garbage[:, np.arange(d), np.arange(d)] = np.nan
    vectors = rng.standard_normal((n, d)).astype(dtype)
    tags = frozenset([_LOWER if lower else _UPPER] + ([_UNIT] if unit else []))
    x, result = _batched_solve(tags)(garbage.astype(dtype), vectors)
    assert np.all(np.asarray(result) == lx.RESULTS.successful._value)
    eps = np.finfo(dtype).eps
    for a, b, xi in zip(triangle, vectors, np.asarray(x)):
        x_lapack = scipy.linalg.solve_triangular(a, b, lower=lower, unit_diagonal=unit)

        def backward(x):
            bound = np.abs(a) @ np.abs(x) + np.abs(b)
            return np.max(np.abs(a @ x - b) / np.where(bound == 0, 1, bound))

        assert backward(xi) <= max(10 * backward(x_lapack), 4 * d * eps)


def test_zero_diagonal_is_singular():
    matrix = np.tril(np.ones((3, 3)))
    matrix[1, 1] = 0.0
    matrices = np.stack([matrix, np.eye(3)])
    x, result = _batched_solve(frozenset([_LOWER]))(matrices, np.ones((2, 3)))
    assert np.asarray(result)[0] == lx.RESULTS.singular._value
    assert np.asarray(result)[1] == lx.RESULTS.successful._value
    np.testing.assert_allclose(np.asarray(x)[1], np.ones(3))


def test_batched_rhs_reads_triangle_once():
    matrix = jnp.triu(jnp.ones((4, 4))) + jnp.eye(4)
    operator = lx.MatrixLinearOperator(matrix, _UPPER)
    solver = lxk.UnrolledSmallTriangular()
    state = solver.init(operator, {})
    vectors = jax.random.normal(jax.random.key(0), (50, 4))

    def solve(v):
        return lx.linear_solve(operator, v, solver, state=state).value

    x = jax.jit(jax.vmap(solve))(vectors)
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix, vectors.T).T, rtol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="square"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.ones((3, 2))),
            jnp.ones(3),
            lxk.UnrolledSmallTriangular(),
        )
    with pytest.raises(ValueError, match="triangular.*UnrolledSmallLU"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(3)),
            jnp.ones(3),
            lxk.UnrolledSmallTriangular(),
        )
    with pytest.raises(ValueError, match="size 17.*lx.Triangular"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(17), _LOWER),
            jnp.ones(17),
            lxk.UnrolledSmallTriangular(),
        )
    with pytest.raises(ValueError, match="at least 1"):
        lxk.UnrolledSmallTriangular(max_size=0)
