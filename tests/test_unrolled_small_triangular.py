import itertools as it

import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg

from .helpers import dtypes


_LOWER = lx.lower_triangular_tag
_UPPER = lx.upper_triangular_tag
_UNIT = lx.unit_diagonal_tag
# Both kernels: native (CPU) and pure JAX, on every test of behaviour.
_backends = pytest.mark.parametrize("backend", ("native", "jax"))


def _batched_solve(tags, throw=False, backend="auto", in_axes=0):
    solver = lxk.UnrolledSmallTriangular(backend=backend)

    def solve(matrix, vector):
        operator = lx.MatrixLinearOperator(matrix, tags)
        sol = lx.linear_solve(operator, vector, solver, throw=throw)
        return sol.value, sol.result._value

    return jax.jit(jax.vmap(solve, in_axes=in_axes))


@_backends
@pytest.mark.parametrize("d", range(1, 17))
@pytest.mark.parametrize("dtype", dtypes, ids=lambda d: np.dtype(d).name)
def test_against_lapack(d, dtype, backend):
    # Random and graded (D A D, D spanning 1e+-8, 1e+-2 in 32-bit precision)
    # triangles, lower and upper, with and without a unit diagonal; the other
    # triangle (and the diagonal, if unit) holds NaN, which must never be read.
    for lower, unit in it.product((True, False), (True, False)):
        _check_against_lapack(d, dtype, backend, lower, unit)


def _check_against_lapack(d, dtype, backend, lower, unit):
    rng = np.random.default_rng(d)
    n = 6
    m = rng.standard_normal((n, d, d))
    if np.issubdtype(dtype, np.complexfloating):
        m = m + 1j * rng.standard_normal((n, d, d))
    m = m / np.sqrt(d) + 3 * np.eye(d)
    grade = 8 if np.finfo(dtype).bits > 32 else 2
    scales = 10.0 ** np.linspace(-grade, grade, d)
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
    x, result = _batched_solve(tags, backend=backend)(garbage.astype(dtype), vectors)
    assert np.asarray(x).dtype == dtype
    assert np.all(np.asarray(result) == lx.RESULTS.successful._value)
    eps = float(np.finfo(dtype).eps)
    for a, b, xi in zip(triangle.astype(dtype), vectors, np.asarray(x)):
        x_lapack = scipy.linalg.solve_triangular(a, b, lower=lower, unit_diagonal=unit)
        # Errors measured in double precision, so that they are the solvers'.
        a, b, xi, x_lapack = (y.astype(np.complex128) for y in (a, b, xi, x_lapack))

        def backward(x):
            bound = np.abs(a) @ np.abs(x) + np.abs(b)
            return np.max(np.abs(a @ x - b) / np.where(bound == 0, 1, bound))

        assert backward(xi) <= max(10 * backward(x_lapack), 4 * d * eps)


@_backends
@pytest.mark.parametrize("d", (3, 12))
@pytest.mark.parametrize("tag", (_LOWER, _UPPER))
def test_zero_diagonal_is_singular(backend, d, tag):
    matrix = np.tril(np.ones((d, d))) if tag is _LOWER else np.triu(np.ones((d, d)))
    matrix[1, 1] = 0.0
    matrices = np.stack([matrix, np.eye(d)])
    x, result = _batched_solve(frozenset([tag]), backend=backend)(
        matrices, np.ones((2, d))
    )
    assert np.asarray(result)[0] == lx.RESULTS.singular._value
    assert np.asarray(result)[1] == lx.RESULTS.successful._value
    np.testing.assert_allclose(np.asarray(x)[1], np.ones(d))
    # One matrix, many right-hand sides.
    x, result = _batched_solve(frozenset([tag]), backend=backend, in_axes=(None, 0))(
        matrix, np.ones((20, d))
    )
    assert np.all(np.asarray(result) == lx.RESULTS.singular._value)
    # NaN in the triangle gives a non-finite solution.
    nan = np.eye(d)
    nan[-1, -1] = np.nan
    _, result = _batched_solve(frozenset([tag]), backend=backend)(
        nan[None], np.ones((1, d))
    )
    assert np.asarray(result)[0] == lx.RESULTS.singular._value


@_backends
@pytest.mark.parametrize("d", (4, 12))
@pytest.mark.parametrize("unit", (False, True))
@pytest.mark.parametrize("axes", ("operator", "vector", "both"))
def test_vmap(backend, d, unit, axes):
    # Batched operator, vector or both (a batch that is not a multiple of the SIMD
    # width), transposed and conjugated, against LAPACK.
    rng = np.random.default_rng(0)
    batch = 37
    m = rng.standard_normal((batch, d, d)) + 1j * rng.standard_normal((batch, d, d))
    m = np.triu(m / np.sqrt(d) + 3 * np.eye(d))
    if unit:
        m[:, np.arange(d), np.arange(d)] = 1.0
    v = rng.standard_normal((batch, d)) + 1j * rng.standard_normal((batch, d))
    tags = frozenset([_UPPER] + ([_UNIT] if unit else []))
    solver = lxk.UnrolledSmallTriangular(backend=backend)
    op_axis = 0 if axes in ("operator", "both") else None
    vec_axis = 0 if axes in ("vector", "both") else None
    mats = m if op_axis == 0 else m[0]
    vecs = v if vec_axis == 0 else v[0]
    mats_b = np.broadcast_to(mats, (batch, d, d))
    vecs_b = np.broadcast_to(vecs, (batch, d))
    for name, transform in (
        ("identity", lambda o: o),
        ("transpose", lambda o: o.T),
        ("conj", lambda o: lx.conj(o)),
        ("adjoint", lambda o: lx.conj(o.T)),
    ):

        def solve(a, b):
            operator = transform(lx.MatrixLinearOperator(a, tags))
            return lx.linear_solve(operator, b, solver).value

        x = jax.jit(jax.vmap(solve, in_axes=(op_axis, vec_axis)))(mats, vecs)
        dense = np.stack(
            [
                np.asarray(transform(lx.MatrixLinearOperator(a)).as_matrix())
                for a in mats_b
            ]
        )
        expected = np.linalg.solve(dense, vecs_b[..., None])[..., 0]
        np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", dtypes, ids=lambda d: np.dtype(d).name)
def test_native_and_pure_jax_agree(dtype):
    rng = np.random.default_rng(1)
    tol = 1e-4 if np.finfo(dtype).bits <= 32 else 1e-11
    for d in range(1, 17):
        m = rng.standard_normal((20, d, d)) / np.sqrt(d) + 3 * np.eye(d)
        if np.issubdtype(dtype, np.complexfloating):
            m = m + 1j * rng.standard_normal((20, d, d)) / np.sqrt(d)
        a = np.tril(m).astype(dtype)
        b = rng.standard_normal((20, d)).astype(dtype)
        xs = [
            _batched_solve(frozenset([_LOWER]), backend=be)(a, b)[0]
            for be in ("native", "jax")
        ]
        np.testing.assert_allclose(xs[0], xs[1], rtol=tol, atol=tol, err_msg=str(d))


@_backends
@pytest.mark.parametrize("d", (4, 12))
def test_batched_rhs_reads_triangle_once(backend, d):
    matrix = jnp.triu(jnp.ones((d, d))) + jnp.eye(d)
    operator = lx.MatrixLinearOperator(matrix, _UPPER)
    solver = lxk.UnrolledSmallTriangular(backend=backend)
    state = solver.init(operator, {})
    vectors = jax.random.normal(jax.random.key(0), (50, d))

    def solve(v):
        return lx.linear_solve(operator, v, solver, state=state).value

    x = jax.jit(jax.vmap(solve))(vectors)
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix, vectors.T).T, rtol=1e-12)
    # The matrix is never broadcast along the batch.
    assert f"50x{d}x{d}" not in jax.jit(jax.vmap(solve)).lower(vectors).as_text()


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
    with pytest.raises((ValueError, TypeError), match="backend"):
        lxk.UnrolledSmallTriangular(backend="cuda")  # pyright: ignore[reportArgumentType]
