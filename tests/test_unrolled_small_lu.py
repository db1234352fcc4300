import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest

from .helpers import dtypes, make_matrix, random, tol


_MAX = lxk.UnrolledSmallLU().max_size


def _special_matrices(d, rng, dtype=np.float64):
    """Matrices that break naive kernels, as a (batch, d, d) numpy array of `dtype`,
    with a name per entry. All are nonsingular."""
    out = {}
    big = 150.0 if np.finfo(dtype).bits > 32 else 15.0
    out["random"] = rng.standard_normal((d, d))
    out["permutation"] = np.eye(d)[rng.permutation(d)]
    zero_lead = rng.standard_normal((d, d))
    zero_lead[0, 0] = 0.0  # needs pivoting at step 0 (for d = 1 it would be singular)
    if d == 1:
        zero_lead[0, 0] = 2.0
    out["zero_leading_pivot"] = zero_lead
    # Every leading principal minor is zero: an unpivoted LU divides by zero at once.
    out["anti_diagonal"] = np.fliplr(np.eye(d)) * (1.0 + np.arange(d))
    scaled = rng.standard_normal((d, d)) + d * np.eye(d)
    scales = 10.0 ** (big * np.where(np.arange(d) % 2 == 0, 1.0, -1.0))
    out["rows_1e+-big"] = scales[:, None] * scaled
    near = rng.standard_normal((d, d))
    u, s, vt = np.linalg.svd(near)
    s[-1] = s[0] * 1e-10
    s[-1] = s[0] * (1e-10 if np.finfo(dtype).bits > 32 else 1e-4)
    out["nearly_singular"] = (u * s) @ vt
    matrices = np.stack(list(out.values()))
    if np.issubdtype(dtype, np.complexfloating):
        # A random phase per entry keeps the structure (zeros, scales) of each.
        matrices = matrices * np.exp(2j * np.pi * rng.random(matrices.shape))
    return list(out), matrices.astype(dtype)


def _batched_solve(solver, throw=False):
    def solve(matrix, vector):
        operator = lx.MatrixLinearOperator(matrix)
        sol = lx.linear_solve(operator, vector, solver, throw=throw)
        return sol.value, sol.result._value

    return jax.jit(jax.vmap(solve))


_backends = pytest.mark.parametrize("backend", ("native", "jax"))


@_backends
@pytest.mark.parametrize("dtype", dtypes, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("d", sorted({*range(1, 17), 24, _MAX}))
def test_special_matrices_against_lapack(d, dtype, backend):
    # Both kernels (native CPU and pure JAX) against LAPACK, every size and dtype.
    rng = np.random.default_rng(d)
    names, matrices = _special_matrices(d, rng, dtype)
    x_true = rng.standard_normal((len(names), d)).astype(dtype)
    vectors = np.einsum("bij,bj->bi", matrices, x_true)
    solver = lxk.UnrolledSmallLU(backend=backend)
    x, result = _batched_solve(solver)(matrices, vectors)
    x = np.asarray(x)
    assert x.dtype == dtype
    assert np.all(np.asarray(result) == lx.RESULTS.successful._value)
    eps = np.finfo(dtype).eps
    # LAPACK in the same precision; then everything in complex128, so that the
    # residuals below measure the solvers' errors, not those of the residual.
    x_lapack = np.linalg.solve(matrices, vectors[..., None])[..., 0]
    matrices, vectors, x, x_true, x_lapack = (
        y.astype(np.complex128) for y in (matrices, vectors, x, x_true, x_lapack)
    )
    for name, a, b, xi, xl in zip(names, matrices, vectors, x, x_lapack):
        # Backward error, relative to machine epsilon. Normwise, partial pivoting
        # keeps it at a small multiple of d * eps; componentwise it can be larger
        # (rows scaled by 1e+-150), so there it must match LAPACK's own.
        residual = np.abs(a @ xi - b)
        normwise = np.max(residual) / (
            np.max(np.abs(a).sum(axis=1)) * np.max(np.abs(xi)) + np.max(np.abs(b))
        )
        assert normwise <= 8 * d * eps, (name, normwise)

        def componentwise(x):
            bound = np.abs(a) @ np.abs(x) + np.abs(b)
            return np.max(np.abs(a @ x - b) / np.where(bound == 0, 1, bound))

        # (In 32-bit precision, LAPACK's componentwise error on the row-scaled
        # family is far below what partial pivoting guarantees (0.1 eps, against
        # 50-400 eps for both our kernels at d = 8); the normwise and forward
        # errors are checked there instead.)
        if np.finfo(dtype).bits > 32 or name != "rows_1e+-big":
            assert componentwise(xi) <= max(8 * d * eps, 4 * componentwise(xl)), name
        # Forward error: within the condition-number bound, like LAPACK's own.
        err = np.max(np.abs(xi - x_true[names.index(name)]))
        err_lapack = np.max(np.abs(xl - x_true[names.index(name)]))
        bound = 10 * d * np.linalg.cond(a) * eps * np.max(np.abs(xi))
        assert err <= max(10 * err_lapack, bound), (name, err, err_lapack, bound)


@pytest.mark.parametrize("d", (1, 2, 3, _MAX))
@pytest.mark.parametrize("dtype", dtypes)
def test_unbatched_random(getkey, d, dtype):
    matrix = make_matrix(getkey(), frozenset(), d, dtype)
    x_true = random(getkey(), (d,), dtype)
    vector = matrix @ x_true
    operator = lx.MatrixLinearOperator(matrix)
    x = jax.jit(lambda o, v: lx.linear_solve(o, v, lxk.UnrolledSmallLU()).value)(
        operator, vector
    )
    assert x.dtype == dtype
    np.testing.assert_allclose(x, x_true, rtol=tol(dtype), atol=tol(dtype))


def test_float32_forward_error_needs_pivoting():
    # Unpivoted elimination on random float32 matrices gives forward errors of order
    # 0.1 (see the issue); partial pivoting keeps them near LAPACK's.
    rng = np.random.default_rng(0)
    matrices = rng.standard_normal((4096, 3, 3)).astype(np.float32)
    x_true = rng.standard_normal((4096, 3)).astype(np.float32)
    vectors = np.einsum("bij,bj->bi", matrices, x_true)
    x, _ = _batched_solve(lxk.UnrolledSmallLU())(matrices, vectors)
    x_lapack = np.linalg.solve(matrices, vectors[..., None])[..., 0]
    err = np.abs(np.asarray(x) - x_true).max(axis=1)
    err_lapack = np.abs(x_lapack - x_true).max(axis=1)
    assert np.median(err) <= 2 * np.median(err_lapack) + 1e-6
    assert np.max(err) <= 10 * np.max(err_lapack) + 1e-5


@pytest.mark.parametrize("d", (1, 2, 4))
def test_exactly_singular(d):
    rng = np.random.default_rng(0)
    singular = rng.standard_normal((d, d))
    singular[-1] = 0.0 if d == 1 else singular[0] * 2.0  # a repeated row
    zeros = np.zeros((d, d))
    if d > 1:
        zero_column = rng.standard_normal((d, d))
        zero_column[:, d // 2] = 0.0
        cases = [singular, zeros, zero_column]
    else:
        cases = [zeros]
    matrices = np.stack(cases)
    vectors = rng.standard_normal((len(cases), d))
    x, result = _batched_solve(lxk.UnrolledSmallLU())(matrices, vectors)
    assert np.all(np.asarray(result) == lx.RESULTS.singular._value)
    assert not np.any(np.all(np.isfinite(np.asarray(x)), axis=1))
    operator = lx.MatrixLinearOperator(jnp.asarray(cases[0]))
    with pytest.raises(Exception, match="singular"):
        jax.block_until_ready(
            lx.linear_solve(operator, jnp.asarray(vectors[0]), lxk.UnrolledSmallLU())
        )


@pytest.mark.parametrize("bad", (np.nan, np.inf))
def test_nonfinite_input(bad):
    matrix = np.eye(3) * 2.0
    matrix[1, 2] = bad
    matrices = np.stack([matrix, np.eye(3)])
    vectors = np.ones((2, 3))
    x, result = _batched_solve(lxk.UnrolledSmallLU())(matrices, vectors)
    assert np.asarray(result)[0] != lx.RESULTS.successful._value
    assert not np.all(np.isfinite(np.asarray(x)[0]))
    # The other system in the batch is unaffected.
    assert np.asarray(result)[1] == lx.RESULTS.successful._value
    np.testing.assert_allclose(np.asarray(x)[1], np.ones(3))


def test_batched_rhs_factorises_once():
    # vmap over the vector only: the factors stay unbatched (one factorisation).
    matrix = jr.normal(jr.key(0), (4, 4)) + 4 * jnp.eye(4)
    operator = lx.MatrixLinearOperator(matrix)
    solver = lxk.UnrolledSmallLU()
    state = solver.init(operator, {})
    vectors = jr.normal(jr.key(1), (100, 4))

    def solve(v):
        return lx.linear_solve(operator, v, solver, state=state).value

    x = jax.jit(jax.vmap(solve))(vectors)
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix, vectors.T).T, rtol=1e-12)
    jaxpr = jax.make_jaxpr(jax.vmap(solve))(vectors)
    # No factorisation (no pivot search) inside the batched computation.
    assert "abs" not in str(jaxpr)


@pytest.mark.parametrize(
    "make_operator",
    (
        lambda m: lx.JacobianLinearOperator(
            lambda x, _: m @ x, jnp.zeros(m.shape[0], m.dtype)
        ),
        lambda m: lx.FunctionLinearOperator(
            lambda x: m @ x, jax.ShapeDtypeStruct((m.shape[0],), m.dtype)
        ),
    ),
    ids=("jacobian", "function"),
)
def test_other_operators(getkey, make_operator):
    matrix = make_matrix(getkey(), frozenset(), 3, jnp.float64)
    vector = random(getkey(), (3,), jnp.float64)
    x = lx.linear_solve(make_operator(matrix), vector, lxk.UnrolledSmallLU()).value
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix, vector), rtol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="square"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.ones((3, 2))),
            jnp.ones(3),
            lxk.UnrolledSmallLU(),
        )
    big = _MAX + 1
    with pytest.raises(ValueError, match=rf"size {big}.*max_size={_MAX}.*lx.LU"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(big)), jnp.ones(big), lxk.UnrolledSmallLU()
        )
    with pytest.raises(ValueError, match="at least 1"):
        lxk.UnrolledSmallLU(max_size=0)


def test_max_size_can_be_raised():
    d = _MAX + 1
    matrix = jnp.eye(d) * 2.0 + jnp.diag(jnp.ones(d - 1), 1)
    x = lx.linear_solve(
        lx.MatrixLinearOperator(matrix), jnp.ones(d), lxk.UnrolledSmallLU(max_size=d)
    ).value
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix, jnp.ones(d)), rtol=1e-12)


def test_conj_state_is_conj_of_matrix_not_adjoint(getkey):
    # lineax 0.1.1's `LU.conj` solves with A^H instead of conj(A); ours must not.
    matrix = make_matrix(getkey(), frozenset(), 3, jnp.complex128)
    vector = random(getkey(), (3,), jnp.complex128)
    solver = lxk.UnrolledSmallLU()
    state, _ = solver.conj(solver.init(lx.MatrixLinearOperator(matrix), {}), {})
    x, _, _ = solver.compute(state, vector, {})
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix.conj(), vector), rtol=1e-12)


@pytest.mark.parametrize("axes", ("both", "vector"))
def test_materialised_sizes(axes):
    # From size 5 on, each elimination step is materialised (`_materialise`).
    d, n = 5, 300
    rng = np.random.default_rng(0)
    matrices = rng.standard_normal((n, d, d)) + d * np.eye(d)
    vectors = rng.standard_normal((n, d))
    if axes == "vector":
        matrices = matrices[0]
    solve = lambda m, v: (
        lx.linear_solve(lx.MatrixLinearOperator(m), v, lxk.UnrolledSmallLU()).value
    )
    in_axes = (0 if axes == "both" else None, 0)
    x = jax.jit(jax.vmap(solve, in_axes=in_axes))(matrices, vectors)
    expected = np.linalg.solve(
        np.broadcast_to(matrices, (n, d, d)), vectors[..., None]
    )[..., 0]
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12)
