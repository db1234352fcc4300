# `lxk.BlockTridiagonalLinearOperator` and `lxk.BlockTridiagonal`; the generic solver
# contract (transpose, conj, jvp, grad, vmap at k = 2) is in test_contract.py.
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg

from .helpers import backward_error, tol


def _blocks(seed, n, k, dtype, kind):
    """`(diagonal, lower, upper)` of an `n`-block-row matrix with `k x k` blocks, in
    NumPy, of the given kind (resampled until its condition number is below 1e4,
    except "scaled", whose rows are scaled by 1e-6 ... 1e6 on purpose)."""
    assert not (kind == "zero_diagonal" and n % 2), "singular for odd n"
    rng = np.random.default_rng([seed, n, k])
    complex_ = np.issubdtype(np.dtype(dtype), np.complexfloating)
    while True:
        shape = (3 * n - 2, k, k)
        blocks = rng.standard_normal(shape)
        if complex_:
            blocks = blocks + 1j * rng.standard_normal(shape)
        d, l, u = blocks[:n], blocks[n : 2 * n - 1], blocks[2 * n - 1 :]
        if kind == "dominant":
            d = d + 4 * k * np.eye(k)
        elif kind == "zero_diagonal":
            # Zero diagonal blocks: every pivot comes from the block row below or
            # from the fill-in, by row exchanges across block rows.
            d = np.zeros_like(d)
        elif kind == "singular_diagonal":
            # Rank-one diagonal blocks.
            d = d[:, :, :1] * d[:, :1, :]
        matrix = _dense(d, l, u)
        if kind == "scaled":
            d = d + 4 * k * np.eye(k)
            scale = np.logspace(-6, 6, n * k)[rng.permutation(n * k)].reshape(n, k)
            d, l, u = (
                d * scale[:, :, None],
                l * scale[1:, :, None],
                u * scale[:-1, :, None],
            )
            return tuple(x.astype(dtype) for x in (d, l, u))
        if np.linalg.cond(matrix) < 1e4:
            return tuple(x.astype(dtype) for x in (d, l, u))


def _dense(d, l, u):
    n, k, _ = d.shape
    matrix = np.zeros((n, k, n, k), d.dtype)
    for i in range(n):
        matrix[i, :, i] = d[i]
        if i > 0:
            matrix[i, :, i - 1] = l[i - 1]
            matrix[i - 1, :, i] = u[i - 1]
    return matrix.reshape(n * k, n * k)


def _banded(matrix, bandwidth):
    # Storage for `scipy.linalg.solve_banded((bandwidth, bandwidth), ...)`.
    size = matrix.shape[0]
    ab = np.zeros((2 * bandwidth + 1, size), matrix.dtype)
    for offset in range(-bandwidth, bandwidth + 1):
        diag = np.diagonal(matrix, offset)
        if offset >= 0:
            ab[bandwidth - offset, offset:] = diag
        else:
            ab[bandwidth - offset, : size + offset] = diag
    return ab


_kinds = ("dominant", "zero_diagonal", "singular_diagonal", "scaled", "general")


def _check(matrix, b, x, dtype, k):
    # Forward error against the dense solve, and backward error within 10x of the
    # banded LAPACK solve (`?gbsv` with bandwidth 2k - 1).
    matrix64 = np.asarray(matrix, np.complex128)
    expected = np.linalg.solve(matrix64, np.asarray(b, np.complex128))
    cond = np.linalg.cond(matrix64)
    scale = np.max(np.abs(expected))
    assert np.max(np.abs(x - expected)) <= 10 * tol(dtype) * max(cond, 1) * scale
    bandwidth = min(2 * k - 1, matrix.shape[0] - 1)
    banded = scipy.linalg.solve_banded(
        (bandwidth, bandwidth), _banded(np.asarray(matrix), bandwidth), np.asarray(b)
    )
    ours, lapack = backward_error(matrix, x, b), backward_error(matrix, banded, b)
    assert ours <= 10 * max(lapack, 1), (ours, lapack)


_PARAMS = [
    (dtype, n, k)
    for dtype in (jnp.float64, jnp.complex128)
    for n, k in ((1, 1), (1, 3), (2, 2), (3, 2), (6, 3))
] + [(jnp.float32, 3, 2), (jnp.complex64, 3, 2)]


@pytest.mark.parametrize(
    "dtype, n, k", _PARAMS, ids=[f"{np.dtype(t).name}-n{n}-k{k}" for t, n, k in _PARAMS]
)
def test_matches_dense(dtype, n, k):
    # (Zero diagonal blocks are singular for odd n, rank-one ones for n = 1.)
    kinds = [
        kind
        for kind in _kinds
        if not (kind == "zero_diagonal" and n % 2)
        and not (kind == "singular_diagonal" and n == 1 and k > 1)
    ]
    blocks = [_blocks(i, n, k, dtype, kind) for i, kind in enumerate(kinds)]
    rng = np.random.default_rng(n * k)
    vectors = rng.standard_normal((len(kinds), n * k)).astype(dtype)

    def solve(d, l, u, b):
        operator = lxk.BlockTridiagonalLinearOperator(d, l, u)
        return lx.linear_solve(operator, b, lxk.BlockTridiagonal()).value

    stacked = [np.stack(x) for x in zip(*blocks)]
    xs = jax.jit(jax.vmap(solve))(*stacked, vectors)
    for (d, l, u), b, x in zip(blocks, vectors, xs):
        assert x.dtype == dtype
        _check(_dense(d, l, u), b, np.asarray(x), dtype, k)
    if dtype == jnp.float64 and k <= 2:
        # One system, no vmap: k <= 2 runs the straight-line LU of `UnrolledSmallLU`
        # in each step instead of the array-level elimination.
        for (d, l, u), b in zip(blocks, vectors):
            x = jax.jit(solve)(d, l, u, b)
            _check(_dense(d, l, u), b, np.asarray(x), dtype, k)


# (k = 8 works too, but compiles for ~15 s on a loaded 2-core machine.)
@pytest.mark.parametrize("k", (4,))
def test_larger_blocks(k):
    n = 5
    for i, kind in enumerate(("zero_diagonal", "general")):
        d, l, u = _blocks(i, n if kind != "zero_diagonal" else 4, k, jnp.float64, kind)
        b = np.random.default_rng(i).standard_normal(d.shape[0] * k)
        operator = lxk.BlockTridiagonalLinearOperator(d, l, u)
        x = lx.linear_solve(operator, b, lxk.BlockTridiagonal()).value
        _check(_dense(d, l, u), b, np.asarray(x), jnp.float64, k)


def test_transpose_vmap_vector():
    # One factorisation, many right-hand sides, transposed, through vmap.
    d, l, u = _blocks(0, 4, 3, jnp.float64, "zero_diagonal")
    operator = lxk.BlockTridiagonalLinearOperator(d, l, u)
    vectors = np.random.default_rng(0).standard_normal((7, 12))
    solver = lxk.BlockTridiagonal()
    state, options = solver.transpose(solver.init(operator, {}), {})
    xs = jax.vmap(lambda b: solver.compute(state, b, options)[0])(vectors)
    expected = np.linalg.solve(_dense(d, l, u).T, vectors.T).T
    np.testing.assert_allclose(xs, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("where", ("row", "column"))
def test_singular(where):
    d, l, u = _blocks(0, 3, 2, jnp.float64, "dominant")
    if where == "row":  # global row 3: row 1 of block row 1
        d[1, 1], l[0, 1], u[1, 1] = 0, 0, 0
    else:  # global column 3
        d[1, :, 1], l[1, :, 1], u[0, :, 1] = 0, 0, 0
    operator = lxk.BlockTridiagonalLinearOperator(d, l, u)
    b = jnp.ones(6)
    solution = lx.linear_solve(operator, b, lxk.BlockTridiagonal(), throw=False)
    assert solution.result == lx.RESULTS.singular
    with pytest.raises(Exception, match="singular"):
        jax.block_until_ready(
            lx.linear_solve(operator, b, lxk.BlockTridiagonal()).value
        )


def test_operator():
    d, l, u = _blocks(0, 3, 2, jnp.complex128, "general")
    operator = lxk.BlockTridiagonalLinearOperator(d, l, u)
    matrix = _dense(d, l, u)
    x = np.random.default_rng(0).standard_normal(6).astype(np.complex128)
    np.testing.assert_allclose(operator.as_matrix(), matrix)
    np.testing.assert_allclose(operator.mv(x), matrix @ x)
    np.testing.assert_allclose(operator.T.as_matrix(), matrix.T)
    np.testing.assert_allclose(lx.conj(operator).as_matrix(), matrix.conj())
    np.testing.assert_allclose(lx.diagonal(operator), np.diag(matrix))
    assert lx.materialise(operator) is operator
    assert lx.linearise(operator) is operator
    for predicate in (
        lx.is_symmetric,
        lx.is_diagonal,
        lx.is_tridiagonal,
        lx.has_unit_diagonal,
        lx.is_lower_triangular,
        lx.is_upper_triangular,
        lx.is_positive_semidefinite,
        lx.is_negative_semidefinite,
    ):
        assert predicate(operator) is False
    assert operator.in_structure() == jax.ShapeDtypeStruct((6,), jnp.complex128)
    # A PyTree that jit and vmap handle.
    mv = jax.jit(jax.vmap(lambda op, v: op.mv(v), in_axes=(None, 0)))
    np.testing.assert_allclose(mv(operator, x[None]), (matrix @ x)[None])
    # k = 1 is tridiagonal.
    scalar = lxk.BlockTridiagonalLinearOperator(
        d[:, :1, :1], l[:, :1, :1], u[:, :1, :1]
    )
    assert lx.is_tridiagonal(scalar)
    for band, expected in zip(lx.tridiagonal(scalar), (d, l, u)):
        np.testing.assert_allclose(band, expected[:, 0, 0])


def test_errors():
    d = jnp.ones((3, 2, 2))
    # (The jaxtyping import hook of the tests may raise a TypeError first.)
    with pytest.raises((ValueError, TypeError), match="lower_diagonal"):
        lxk.BlockTridiagonalLinearOperator(d, jnp.ones((3, 2, 2)), jnp.ones((2, 2, 2)))
    with pytest.raises((ValueError, TypeError), match="diagonal"):
        lxk.BlockTridiagonalLinearOperator(jnp.ones((3, 2, 3)), d[1:], d[1:])
    with pytest.raises(ValueError, match="`BlockTridiagonal`.*`lx.LU\\(\\)`"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(4)), jnp.ones(4), lxk.BlockTridiagonal()
        )
    with pytest.raises(ValueError, match="unroll"):
        lxk.BlockTridiagonal(unroll=0)


def test_small_auto():
    d, l, u = _blocks(0, 4, 2, jnp.float64, "zero_diagonal")
    operator = lxk.BlockTridiagonalLinearOperator(d, l, u)
    assert isinstance(lxk.SmallAuto().select_solver(operator), lxk.BlockTridiagonal)
    assert not isinstance(
        lxk.SmallAuto(well_posed=False).select_solver(operator), lxk.BlockTridiagonal
    )
    b = jnp.ones(8)
    x = lx.linear_solve(operator, b, lxk.SmallAuto()).value
    np.testing.assert_allclose(x, np.linalg.solve(_dense(d, l, u), b), rtol=1e-10)


def test_vmap_partly_batched_operator():
    # Only the diagonal blocks batched: the unbatched blocks (here empty, n = 1,
    # and nonempty, n = 3) are broadcast along the batch.
    for n in (1, 3):
        ds, ls, us = zip(*[_blocks(i, n, 2, jnp.float64, "dominant") for i in range(3)])
        d, l, u = np.stack(ds), ls[0], us[0]
        b = np.ones(2 * n)
        solve = jax.vmap(
            lambda d: (
                lx.linear_solve(
                    lxk.BlockTridiagonalLinearOperator(d, l, u),
                    b,
                    lxk.BlockTridiagonal(),
                ).value
            )
        )
        xs = jax.jit(solve)(d)
        for di, x in zip(d, xs):
            np.testing.assert_allclose(
                x, np.linalg.solve(_dense(di, l, u), b), rtol=1e-10
            )
