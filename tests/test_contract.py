# The lineax solver contract, for every solver in `helpers.solvers_tags_reference`,
# checked as lineax checks its own: solve, vmap, jvp, transpose, conj, singular,
# pytrees.
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest

from .helpers import (
    make_matrix,
    operator_from,
    random,
    reference_solve,
    shape_of,
    solvers_tags,
    solvers_tags_reference,
    tol,
)


_SIZE = 4
_params = pytest.mark.parametrize(
    "solver, tags", solvers_tags, ids=lambda x: type(x).__name__
)
_dtypes = pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))


def _problem(getkey, tags, dtype, size=_SIZE):
    matrix = make_matrix(getkey(), tags, size, dtype)
    return matrix, operator_from(matrix, tags)


@_params
@pytest.mark.parametrize(
    "dtype", (jnp.float32, jnp.float64, jnp.complex64, jnp.complex128)
)
def test_solve(getkey, solver, tags, dtype):
    matrix, operator = _problem(getkey, tags, dtype)
    x_true = random(getkey(), (matrix.shape[1],), dtype)
    x = jax.jit(lambda o, v: lx.linear_solve(o, v, solver).value)(
        operator, matrix @ x_true
    )
    assert x.dtype == dtype
    if matrix.shape[0] < matrix.shape[1]:  # the minimum-norm solution
        x_true = reference_solve(matrix, matrix @ x_true)
    np.testing.assert_allclose(x, x_true, rtol=tol(dtype), atol=tol(dtype))


@_params
@_dtypes
def test_transpose_and_conj_states(getkey, solver, tags, dtype):
    # transpose(init(A)) ≡ init(A.T) and conj(init(A)) ≡ init(conj(A)), compared by
    # what they solve.
    matrix, operator = _problem(getkey, tags, dtype)
    m, n = matrix.shape
    vector = random(getkey(), (n,), dtype)
    state = solver.init(operator, {})
    state_t, options_t = solver.transpose(state, {})
    state_c, options_c = solver.conj(state, {})
    x_t, _, _ = solver.compute(state_t, vector, options_t)
    x_t2, _, _ = solver.compute(solver.init(operator.T, {}), vector, {})
    conj_operator = operator_from(matrix.conj(), tags)
    vector_c = random(getkey(), (m,), dtype)
    x_c, _, _ = solver.compute(state_c, vector_c, options_c)
    x_c2, _, _ = solver.compute(solver.init(conj_operator, {}), vector_c, {})
    np.testing.assert_allclose(x_t, x_t2, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(x_c, x_c2, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(x_t, reference_solve(matrix.T, vector), rtol=1e-10)
    np.testing.assert_allclose(
        x_c, reference_solve(matrix.conj(), vector_c), rtol=1e-10
    )
    # Twice transposed is the original.
    state_tt, _ = solver.transpose(state_t, options_t)
    x_tt, _, _ = solver.compute(state_tt, vector_c, {})
    np.testing.assert_allclose(x_tt, reference_solve(matrix, vector_c), rtol=1e-10)


@_params
@_dtypes
def test_linear_transpose(getkey, solver, tags, dtype):
    matrix, operator = _problem(getkey, tags, dtype)
    m, n = matrix.shape
    out_vec = random(getkey(), (m,), dtype)
    in_vec = random(getkey(), (n,), dtype)
    solve = lambda v: lx.linear_solve(operator, v, solver).value
    (out,) = jax.linear_transpose(solve, out_vec)(in_vec)
    # The transpose of b -> A^+ b is (A^+)^T = (A^T)^+.
    np.testing.assert_allclose(out, reference_solve(matrix.T, in_vec), rtol=1e-10)


@_params
@pytest.mark.parametrize("axes", ("operator", "vector", "both"))
def test_vmap(getkey, solver, tags, axes):
    batch = 5
    matrices = jnp.stack(
        [make_matrix(getkey(), tags, _SIZE, jnp.float64) for _ in range(batch)]
    )
    m, n = shape_of(tags, _SIZE)
    vectors = random(getkey(), (batch, m), jnp.float64)
    op_axis = 0 if axes in ("operator", "both") else None
    vec_axis = 0 if axes in ("vector", "both") else None
    mats = matrices if op_axis == 0 else matrices[0]
    vecs = vectors if vec_axis == 0 else vectors[0]

    def solve(m, v):
        return lx.linear_solve(operator_from(m, tags), v, solver).value

    x = jax.jit(jax.vmap(solve, in_axes=(op_axis, vec_axis)))(mats, vecs)
    mats_b = jnp.broadcast_to(mats, (batch, m, n))
    vecs_b = jnp.broadcast_to(vecs, (batch, m))
    expected = jax.vmap(reference_solve)(mats_b, vecs_b)
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "solver, tags, reference",
    solvers_tags_reference,
    ids=lambda x: type(x).__name__,
)
def test_jvp_and_grad(getkey, solver, tags, reference):
    matrix, _ = _problem(getkey, tags, jnp.float64)
    m, _ = matrix.shape
    vector = random(getkey(), (m,), jnp.float64)
    t_matrix = make_matrix(getkey(), tags, _SIZE, jnp.float64)
    t_vector = random(getkey(), (m,), jnp.float64)

    def solve_with(s):
        return lambda m, v: lx.linear_solve(operator_from(m, tags), v, s).value

    primal, tangent = jax.jvp(
        solve_with(solver), (matrix, vector), (t_matrix, t_vector)
    )
    primal_ref, tangent_ref = jax.jvp(
        solve_with(reference), (matrix, vector), (t_matrix, t_vector)
    )
    np.testing.assert_allclose(primal, primal_ref, rtol=1e-10)
    np.testing.assert_allclose(tangent, tangent_ref, rtol=1e-9, atol=1e-12)
    # Against finite differences of the dense solve.
    eps = 1e-6
    dense = lambda t: reference_solve(matrix + t * t_matrix, vector + t * t_vector)
    fd = (dense(eps) - dense(-eps)) / (2 * eps)
    np.testing.assert_allclose(tangent, fd, rtol=1e-5, atol=1e-7)

    def loss(s):
        return lambda m, v: jnp.sum(solve_with(s)(m, v) ** 2)

    grads = jax.jit(jax.grad(loss(solver), argnums=(0, 1)))(matrix, vector)
    grads_ref = jax.grad(loss(reference), argnums=(0, 1))(matrix, vector)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-12)


@_params
def test_singular_throw_and_no_throw(solver, tags):
    if lx.unit_diagonal_tag in tags:
        pytest.skip("a unit triangular matrix is never singular")
    matrix = jnp.zeros(shape_of(tags, _SIZE), jnp.float64)
    operator = operator_from(matrix, tags)
    vector = jnp.ones(matrix.shape[0])
    sol = lx.linear_solve(operator, vector, solver, throw=False)
    assert sol.result == lx.RESULTS.singular
    with pytest.raises(Exception, match="singular"):
        jax.block_until_ready(lx.linear_solve(operator, vector, solver).value)


@_params
def test_pytree_operator(getkey, solver, tags):
    if tags:
        pytest.skip("structured operators are not PyTree-structured")
    # Input structure {"a": (2,), "b": (1, 1)}, output structure ((3,),).
    matrix = make_matrix(getkey(), tags, 3, jnp.float64)
    in_struct = {
        "a": jax.ShapeDtypeStruct((2,), jnp.float64),
        "b": jax.ShapeDtypeStruct((1, 1), jnp.float64),
    }

    def fn(x):
        flat = jnp.concatenate([x["a"], x["b"].reshape(1)])
        return (matrix @ flat,)

    operator = lx.FunctionLinearOperator(fn, in_struct)
    x_true = {"a": jr.normal(getkey(), (2,)), "b": jr.normal(getkey(), (1, 1))}
    vector = fn(x_true)
    x = lx.linear_solve(operator, vector, solver).value
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10), x, x_true)
