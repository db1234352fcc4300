import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg

from .helpers import dtypes, make_matrix, random, tol


_MAX = lxk.UnrolledSmallCholesky().max_size
_PSD = lx.positive_semidefinite_tag
_NSD = lx.negative_semidefinite_tag
# Both kernels: native (CPU) and pure JAX, on every test of behaviour.
_backends = pytest.mark.parametrize("backend", ("native", "jax"))


def _random_unitary(rng, d, complex_):
    m = rng.standard_normal((d, d))
    if complex_:
        m = m + 1j * rng.standard_normal((d, d))
    q, _ = np.linalg.qr(m)
    return q


def _special_matrices(d, rng, complex_, bits=64):
    """Hermitian positive definite matrices that stress a Cholesky kernel, as a
    (batch, d, d) numpy array with a name per entry. In 32-bit precision the
    condition numbers and the diagonal's range are cut to what float32 holds."""
    out = {}
    m = rng.standard_normal((d, d))
    if complex_:
        m = m + 1j * rng.standard_normal((d, d))
    out["random"] = m @ m.conj().T + np.eye(d)
    q = _random_unitary(rng, d, complex_)
    for cond in (1e4, 1e8, 1e12) if bits > 32 else (1e2, 1e4):
        eigs = np.logspace(0, -np.log10(cond), d)
        out[f"cond_{cond:.0e}"] = (q * eigs) @ q.conj().T
    # Graded: D A D with D spanning 16 orders of magnitude (Cholesky is invariant to
    # this scaling, and LAPACK's backward error is componentwise small).
    scales = 10.0 ** (np.linspace(-8, 8, d) if bits > 32 else np.linspace(-4, 4, d))
    out["graded"] = scales[:, None] * out["random"] * scales[None, :]
    big = 150.0 if bits > 32 else 15.0
    out["diagonal_1e+-big"] = np.diag(10.0 ** (big * (-1.0) ** np.arange(d)))
    out["identity"] = np.eye(d)
    out = {k: (v + v.conj().T) / 2 for k, v in out.items()}  # exactly Hermitian
    return list(out), np.stack(list(out.values()))


def _batched_solve(solver, tags, throw=False):
    def solve(matrix, vector):
        operator = lx.MatrixLinearOperator(matrix, tags)
        sol = lx.linear_solve(operator, vector, solver, throw=throw)
        return sol.value, sol.result._value

    return jax.jit(jax.vmap(solve))


def _backward_error(a, x, b):
    # Normwise relative backward error (Rigal-Gaches), infinity norms.
    residual = np.max(np.abs(a @ x - b))
    return residual / (
        np.max(np.abs(a).sum(axis=1)) * np.max(np.abs(x)) + np.max(np.abs(b))
    )


@_backends
@pytest.mark.parametrize(
    "d, tag", [(d, "psd") for d in range(1, _MAX + 1)] + [(3, "nsd"), (_MAX, "nsd")]
)
@pytest.mark.parametrize("dtype", dtypes, ids=lambda d: np.dtype(d).name)
def test_special_matrices_against_lapack(d, dtype, tag, backend):
    # Both kernels against LAPACK (in the same precision), every size and dtype.
    complex_ = np.issubdtype(dtype, np.complexfloating)
    bits = np.finfo(dtype).bits
    rng = np.random.default_rng(d)
    names, matrices = _special_matrices(d, rng, complex_, bits)
    matrices = matrices.astype(dtype)
    x_true = rng.standard_normal((len(names), d)).astype(dtype)
    vectors = np.einsum("bij,bj->bi", matrices, x_true)
    if tag == "nsd":
        signed, tags = -matrices, _NSD
    else:
        signed, tags = matrices, _PSD
    solver = lxk.UnrolledSmallCholesky(backend=backend)
    x, result = _batched_solve(solver, tags)(signed, vectors)
    if tag == "nsd":
        x = -x  # (-A) x = b  <=>  A (-x) = b
    x = np.asarray(x)
    assert x.dtype == dtype
    assert np.all(np.asarray(result) == lx.RESULTS.successful._value)
    eps = float(np.finfo(dtype).eps)
    for name, a, b, xi, xt in zip(names, matrices, vectors, x, x_true):
        x_lapack = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True), b)
        # Errors measured in double precision, so that they are the solvers'.
        a, b, xi, xt, x_lapack = (
            y.astype(np.complex128) for y in (a, b, xi, xt, x_lapack)
        )
        ours = _backward_error(a, xi, b)
        theirs = _backward_error(a, x_lapack, b)
        assert ours <= max(10 * theirs, 2 * d * eps), (name, ours, theirs)
        # Forward error within the condition-number bound, like LAPACK's own.
        err = np.max(np.abs(xi - xt))
        err_lapack = np.max(np.abs(x_lapack - xt))
        bound = 10 * d * np.linalg.cond(a) * eps * np.max(np.abs(xt))
        assert err <= max(10 * err_lapack, bound), (name, err, err_lapack, bound)


@pytest.mark.parametrize("dtype", (np.float64, np.complex128))
def test_factor_matches_numpy_cholesky(dtype):
    # The straight-line pure-JAX factorisation gives L (strictly lower entries,
    # reciprocal diagonal) with A = L L^H, the factor `numpy.linalg.cholesky`
    # returns. (The state holds the matrix; this is the GPU path's factor.)
    from lineax_kernels._kernels.small_cholesky import _factor as _cholesky_factor

    rng = np.random.default_rng(0)
    for d in range(1, _MAX + 1):
        _, matrices = _special_matrices(d, rng, dtype == np.complex128)
        a = matrices[0].astype(dtype)
        strict, inverse_diagonal = _cholesky_factor(jnp.asarray(a))
        factor = np.diag(1 / np.asarray(inverse_diagonal)).astype(dtype)
        factor[np.tril_indices(d, -1)] = np.asarray(strict)
        np.testing.assert_allclose(factor, np.linalg.cholesky(a), rtol=1e-13)


@_backends
@pytest.mark.parametrize("d", (1, 2, 3, 5, 9, _MAX))
@pytest.mark.parametrize("dtype", dtypes)
def test_unbatched_random(getkey, d, dtype, backend):
    matrix = make_matrix(getkey(), frozenset([_PSD]), d, dtype)
    x_true = random(getkey(), (d,), dtype)
    vector = matrix @ x_true
    operator = lx.MatrixLinearOperator(matrix, _PSD)
    solver = lxk.UnrolledSmallCholesky(backend=backend)
    x = jax.jit(lambda o, v: lx.linear_solve(o, v, solver).value)(operator, vector)
    assert x.dtype == dtype
    np.testing.assert_allclose(x, x_true, rtol=tol(dtype), atol=tol(dtype))


def _not_positive_definite(complex_):
    # (name, matrix): each must give RESULTS.singular, never a finite answer. Pivots
    # are exactly zero or negative in floating point.
    v = np.array([1.0, 2.0, -1.0])
    cases = [
        ("zero", np.zeros((3, 3))),
        ("semidefinite_rank1", np.outer(v, v)),  # pivots 1, 0 exactly
        ("semidefinite_last", np.diag([2.0, 1.0, 0.0])),
        ("indefinite", np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])),
        ("negative_definite", -np.eye(3)),
        ("negative_last", np.diag([1.0, 1.0, -1e-300])),
    ]
    if complex_:
        w = np.array([1.0, 1j, -1.0])
        cases.append(("semidefinite_complex", np.outer(w, w.conj())))
        cases.append(
            ("indefinite_complex", np.array([[1, 2j, 0], [-2j, 1, 0], [0, 0, 1]]))
        )
    return cases


@_backends
@pytest.mark.parametrize("dtype", (np.float64, np.complex128))
def test_not_positive_definite_is_singular(dtype, backend):
    cases = _not_positive_definite(dtype == np.complex128)
    matrices = np.stack([m for _, m in cases]).astype(dtype)
    vectors = np.ones((len(cases), 3), dtype)
    solver = lxk.UnrolledSmallCholesky(backend=backend)
    x, result = _batched_solve(solver, _PSD)(matrices, vectors)
    for (name, _), xi, r in zip(cases, np.asarray(x), np.asarray(result)):
        assert r == lx.RESULTS.singular._value, name
        assert not np.all(np.isfinite(xi)), name
    # NSD: the same matrices negated.
    x, result = _batched_solve(solver, _NSD)(-matrices, vectors)
    assert np.all(np.asarray(result) == lx.RESULTS.singular._value)
    # One matrix, many right-hand sides (factorised once).
    for m in matrices:
        operator = lx.MatrixLinearOperator(jnp.asarray(m), _PSD)
        solve = jax.vmap(
            lambda v: lx.linear_solve(operator, v, solver, throw=False).result._value
        )
        assert np.all(np.asarray(solve(jnp.ones((20, 3), dtype))) != 0)
    # Larger sizes (the looped kernels): a zero last pivot.
    for d in (9, 16):
        m = np.eye(d, dtype=dtype)
        m[-1, -1] = 0
        operator = lx.MatrixLinearOperator(jnp.asarray(m), _PSD)
        sol = lx.linear_solve(operator, jnp.ones(d, dtype), solver, throw=False)
        assert sol.result == lx.RESULTS.singular
    # Unbatched, and with throw=True.
    operator = lx.MatrixLinearOperator(jnp.asarray(matrices[1]), _PSD)
    with pytest.raises(Exception, match="singular"):
        jax.block_until_ready(lx.linear_solve(operator, jnp.ones(3, dtype), solver))


@_backends
@pytest.mark.parametrize("bad", (np.nan, np.inf, -np.inf))
def test_nonfinite_input(bad, backend):
    matrix = np.eye(3) * 2.0
    matrix[2, 1] = matrix[1, 2] = bad
    diagonal = np.eye(3) * 2.0
    diagonal[0, 0] = bad
    matrices = np.stack([matrix, diagonal, np.eye(3)])
    vectors = np.ones((3, 3))
    solver = lxk.UnrolledSmallCholesky(backend=backend)
    x, result = _batched_solve(solver, _PSD)(matrices, vectors)
    bad_systems = [0] if bad == np.inf else [0, 1]
    assert np.all(np.asarray(result)[bad_systems] == lx.RESULTS.singular._value)
    assert not np.any(np.all(np.isfinite(np.asarray(x)[bad_systems]), axis=1))
    if bad == np.inf:
        # +inf on the diagonal is a valid (limiting) positive definite matrix: like
        # LAPACK, the factor has an infinite diagonal entry and x[0] = b[0] / inf = 0.
        factor = scipy.linalg.cho_factor(diagonal, check_finite=False)
        expected = scipy.linalg.cho_solve(factor, vectors[1], check_finite=False)
        np.testing.assert_array_equal(np.asarray(x)[1], expected)
    # The other system in the batch is unaffected.
    assert np.asarray(result)[2] == lx.RESULTS.successful._value
    np.testing.assert_allclose(np.asarray(x)[2], np.ones(3))


@_backends
def test_reads_lower_triangle_only(backend):
    # As LAPACK's ?potrf(uplo="L"): the strict upper triangle and the imaginary part
    # of the diagonal are never read.
    rng = np.random.default_rng(0)
    m = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    a = m @ m.conj().T + np.eye(4)
    garbage = np.tril(a) + np.triu(np.full((4, 4), np.nan), 1) + 5j * np.eye(4)
    b = rng.standard_normal(4) + 0j
    operator = lx.MatrixLinearOperator(jnp.asarray(garbage), _PSD)
    solver = lxk.UnrolledSmallCholesky(backend=backend)
    x = lx.linear_solve(operator, jnp.asarray(b), solver).value
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-12)
    # Batched, and at a size with the looped kernels.
    for d in (4, 12):
        m = rng.standard_normal((3, d, d)) + 1j * rng.standard_normal((3, d, d))
        a = m @ m.conj().transpose(0, 2, 1) + np.eye(d)
        garbage = np.tril(a) + np.triu(np.full((d, d), np.nan), 1) + 5j * np.eye(d)
        b = rng.standard_normal((3, d)) + 0j
        x, _ = _batched_solve(solver, _PSD)(garbage, b)
        np.testing.assert_allclose(
            x, np.linalg.solve(a, b[..., None])[..., 0], rtol=1e-11
        )


@_backends
def test_float32_against_lapack(backend):
    rng = np.random.default_rng(0)
    m = rng.standard_normal((4096, 4, 4))
    matrices = (m @ m.transpose(0, 2, 1) + 0.1 * np.eye(4)).astype(np.float32)
    x_true = rng.standard_normal((4096, 4)).astype(np.float32)
    vectors = np.einsum("bij,bj->bi", matrices, x_true)
    solver = lxk.UnrolledSmallCholesky(backend=backend)
    x, result = _batched_solve(solver, _PSD)(matrices, vectors)
    assert np.all(np.asarray(result) == lx.RESULTS.successful._value)
    x_lapack = np.stack(
        [
            scipy.linalg.cho_solve(scipy.linalg.cho_factor(a), b)
            for a, b in zip(matrices, vectors)
        ]
    )
    err = np.abs(np.asarray(x) - x_true).max(axis=1)
    err_lapack = np.abs(x_lapack - x_true).max(axis=1)
    assert np.median(err) <= 2 * np.median(err_lapack) + 1e-6
    assert np.max(err) <= 10 * np.max(err_lapack) + 1e-5


@_backends
@pytest.mark.parametrize("d", (4, 12))
def test_batched_rhs_factorises_once(backend, d):
    # vmap over the vector only: the factorisation stays unbatched (done once).
    matrix = make_matrix(jax.random.key(0), frozenset([_PSD]), d, jnp.float64)
    operator = lx.MatrixLinearOperator(matrix, _PSD)
    solver = lxk.UnrolledSmallCholesky(backend=backend)
    state = solver.init(operator, {})
    vectors = jax.random.normal(jax.random.key(1), (100, d))

    def solve(v):
        return lx.linear_solve(operator, v, solver, state=state).value

    x = jax.jit(jax.vmap(solve))(vectors)
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix, vectors.T).T, rtol=1e-11)
    hlo = jax.jit(jax.vmap(solve)).lower(vectors).as_text()
    # The matrix is never broadcast along the batch; in pure JAX, no square root
    # is batched (the native kernel factorises a shared matrix once itself).
    assert f"100x{d}x{d}" not in hlo
    if backend == "jax":
        sqrts = [line for line in hlo.splitlines() if "sqrt" in line]
        assert sqrts and not any("100" in line for line in sqrts), sqrts


@_backends
@pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))
def test_transpose_conj_hermitian(getkey, dtype, backend):
    # For a Hermitian A, A^T = conj(A) != A when A is complex: the transposed state
    # must solve with conj(A) (lineax's own `Cholesky.transpose` needed this fix).
    matrix = make_matrix(getkey(), frozenset([_PSD]), 4, dtype)
    vector = random(getkey(), (4,), dtype)
    solver = lxk.UnrolledSmallCholesky(backend=backend)
    state = solver.init(lx.MatrixLinearOperator(matrix, _PSD), {})
    for transform, expected in (
        (solver.transpose, matrix.T),
        (solver.conj, matrix.conj()),
    ):
        new_state, options = transform(state, {})
        x, _, _ = solver.compute(new_state, vector, options)
        np.testing.assert_allclose(x, jnp.linalg.solve(expected, vector), rtol=1e-10)
    # transpose then conj is A^H = A again.
    state_tc, _ = solver.conj(solver.transpose(state, {})[0], {})
    x, _, _ = solver.compute(state_tc, vector, {})
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix, vector), rtol=1e-10)


def test_errors():
    with pytest.raises(ValueError, match="square"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.ones((3, 2))),
            jnp.ones(3),
            lxk.UnrolledSmallCholesky(),
        )
    with pytest.raises(ValueError, match="positive or negative.*UnrolledSmallLU"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(3)),
            jnp.ones(3),
            lxk.UnrolledSmallCholesky(),
        )
    with pytest.raises(ValueError, match="positive or negative"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(3), lx.symmetric_tag),
            jnp.ones(3),
            lxk.UnrolledSmallCholesky(),
        )
    big = _MAX + 1
    with pytest.raises(ValueError, match=rf"size {big}.*max_size={_MAX}.*lx.Cholesky"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(big), _PSD),
            jnp.ones(big),
            lxk.UnrolledSmallCholesky(),
        )
    with pytest.raises(ValueError, match="at least 1"):
        lxk.UnrolledSmallCholesky(max_size=0)
    with pytest.raises((ValueError, TypeError), match="backend"):
        lxk.UnrolledSmallCholesky(backend="cuda")  # pyright: ignore[reportArgumentType]


def test_max_size_can_be_raised():
    d = _MAX + 2
    matrix = 2 * jnp.eye(d) + 0.5 * (jnp.eye(d, k=1) + jnp.eye(d, k=-1))
    matrix = matrix.at[0, d - 1].set(0.1).at[d - 1, 0].set(0.1)  # not tridiagonal
    solver = lxk.UnrolledSmallCholesky(max_size=d)
    x = lx.linear_solve(lx.MatrixLinearOperator(matrix, _PSD), jnp.ones(d), solver)
    np.testing.assert_allclose(
        x.value, jnp.linalg.solve(matrix, jnp.ones(d)), rtol=1e-12
    )


@pytest.mark.parametrize("tag", (_PSD, _NSD))
def test_pytree_operator(getkey, tag):
    # A PSD/NSD-tagged operator on a PyTree, as optimistix's BFGS builds (there as a
    # `PyTreeLinearOperator`), solved with its gradient.
    matrix = make_matrix(getkey(), frozenset([tag]), 3, jnp.float64)
    in_struct = {
        "a": jax.ShapeDtypeStruct((2,), jnp.float64),
        "b": jax.ShapeDtypeStruct((1, 1), jnp.float64),
    }

    def fn(x):
        flat = jnp.concatenate([x["a"], x["b"].reshape(1)])
        out = matrix @ flat
        return {"a": out[:2], "b": out[2:].reshape(1, 1)}

    operator = lx.FunctionLinearOperator(fn, in_struct, tag)
    x_true = {"a": jr.normal(getkey(), (2,)), "b": jr.normal(getkey(), (1, 1))}
    vector = fn(x_true)
    x = lx.linear_solve(operator, vector, lxk.UnrolledSmallCholesky()).value
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10), x, x_true)
    pytree = lx.PyTreeLinearOperator(operator.as_matrix(), jnp.zeros(3), tag)
    x = lx.linear_solve(pytree, matrix @ jnp.arange(3.0), lxk.UnrolledSmallCholesky())
    np.testing.assert_allclose(x.value, jnp.arange(3.0), rtol=1e-10, atol=1e-12)


@_backends
@pytest.mark.parametrize("tag", (_PSD, _NSD))
@pytest.mark.parametrize("axes", ("operator", "vector", "both"))
@pytest.mark.parametrize("d", (2, 7, 13))
def test_vmap(getkey, backend, tag, axes, d):
    # Batched operator, vector or both, against LAPACK; with a batch that is not a
    # multiple of the SIMD width (a partial last tile).
    batch = 37
    dtype = jnp.complex128
    matrices = jnp.stack(
        [make_matrix(getkey(), frozenset([tag]), d, dtype) for _ in range(batch)]
    )
    vectors = random(getkey(), (batch, d), dtype)
    op_axis = 0 if axes in ("operator", "both") else None
    vec_axis = 0 if axes in ("vector", "both") else None
    mats = matrices if op_axis == 0 else matrices[0]
    vecs = vectors if vec_axis == 0 else vectors[0]
    solver = lxk.UnrolledSmallCholesky(backend=backend)

    def solve(m, v):
        return lx.linear_solve(lx.MatrixLinearOperator(m, tag), v, solver).value

    x = jax.jit(jax.vmap(solve, in_axes=(op_axis, vec_axis)))(mats, vecs)
    mats_b = jnp.broadcast_to(mats, (batch, d, d))
    vecs_b = jnp.broadcast_to(vecs, (batch, d))
    expected = jnp.linalg.solve(mats_b, vecs_b[..., None])[..., 0]
    np.testing.assert_allclose(x, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", dtypes, ids=lambda d: np.dtype(d).name)
def test_native_and_pure_jax_agree(dtype):
    rng = np.random.default_rng(1)
    complex_ = np.issubdtype(dtype, np.complexfloating)
    tol = 1e-4 if np.finfo(dtype).bits <= 32 else 1e-11
    for d in range(1, _MAX + 1):
        m = rng.standard_normal((20, d, d))
        if complex_:
            m = m + 1j * rng.standard_normal((20, d, d))
        a = (m @ m.conj().transpose(0, 2, 1) / d + np.eye(d)).astype(dtype)
        b = rng.standard_normal((20, d)).astype(dtype)
        xs = [
            _batched_solve(lxk.UnrolledSmallCholesky(backend=be), _PSD)(a, b)[0]
            for be in ("native", "jax")
        ]
        np.testing.assert_allclose(xs[0], xs[1], rtol=tol, atol=tol, err_msg=str(d))
