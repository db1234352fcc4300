import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg

from .helpers import dtypes, operator_from, tol


def random(key, shape, dtype):
    # `helpers.random` builds complex arrays as `real + 1j * imag`, which strict dtype
    # promotion rejects for complex64.
    if jnp.issubdtype(dtype, jnp.complexfloating):
        real_dtype = jnp.finfo(dtype).dtype
        kr, ki = jr.split(key)
        real = jr.normal(kr, shape, real_dtype)
        return lax.complex(real, jr.normal(ki, shape, real_dtype)).astype(dtype)
    return jr.normal(key, shape, dtype)


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    # `helpers.tree_allclose` compares `eqx.tree_equal(...) is True`, but with
    # `rtol`/`atol` that returns a JAX boolean array, never `True`.
    return bool(eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol))


_tridiagonal = frozenset([lx.tridiagonal_tag])


def _general(key, n, dtype, max_cond=100.0):
    """A random tridiagonal matrix, not diagonally dominant, with condition number at
    most `max_cond` (resampled, in NumPy, until it is)."""
    rng = np.random.default_rng(np.asarray(jr.key_data(key)))
    while True:
        real, imag = rng.standard_normal((2, n, n))
        matrix = real + 1j * imag
        if not jnp.issubdtype(dtype, jnp.complexfloating):
            matrix = matrix.real
        matrix = np.triu(np.tril(matrix, 1), -1)
        if np.linalg.cond(matrix) <= max_cond:
            return jnp.asarray(matrix.astype(np.dtype(dtype)))


def _operator(diagonal, lower, upper):
    return lx.TridiagonalLinearOperator(diagonal, lower, upper)


def _diagonals(key, n, dtype, kind):
    """The three diagonals of an `n x n` tridiagonal matrix of the given kind."""
    kd, kl, ku, ks = jr.split(key, 4)
    lower = random(kl, (n - 1,), dtype)
    upper = random(ku, (n - 1,), dtype)
    if kind == "dominant":
        diagonal = random(kd, (n,), dtype) + 4
    elif kind == "general":
        return jnp.diag(m := _general(key, n, dtype)), jnp.diag(m, -1), jnp.diag(m, 1)
    elif kind == "zero_diagonal":
        # Nonsingular for even `n` (det = +-prod(lower * upper) over pairs), and
        # impossible without row swaps.
        assert n % 2 == 0
        diagonal = jnp.zeros((n,), dtype)
        lower = lower + jnp.where(jnp.abs(lower) < 0.5, 1, 0).astype(dtype)
        upper = upper + jnp.where(jnp.abs(upper) < 0.5, 1, 0).astype(dtype)
    elif kind == "badly_scaled":
        # Rows scaled by 1e-6 ... 1e6.
        diagonal = random(kd, (n,), dtype) + 4
        scale = jnp.logspace(-6, 6, n, dtype=jnp.finfo(dtype).dtype).astype(dtype)
        scale = jr.permutation(ks, scale)
        return diagonal * scale, lower * scale[1:], upper * scale[:-1]
    else:
        assert False
    return diagonal, lower, upper


def _solve(operator, vector, solver, throw=True):
    return lx.linear_solve(operator, vector, solver, throw=throw)


@pytest.mark.parametrize("backend", ("native", "jax"))
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("n", (1, 2, 3, 10))
@pytest.mark.parametrize("pivoting", (True, False))
def test_matches_dense(getkey, dtype, n, pivoting, backend):
    if not pivoting and dtype in (jnp.float64, jnp.complex64):
        return  # Keep the test file fast: these add nothing to the other two.
    solver = lxk.ScanTridiagonal(pivoting=pivoting, backend=backend)
    solve = jax.jit(_solve, static_argnums=2)
    # Thomas is only safe for diagonally dominant matrices; see
    # `test_zero_diagonal_needs_pivoting`.
    kinds = ["dominant"]
    if pivoting:
        kinds.append("general")
        if n % 2 == 0:
            kinds.append("zero_diagonal")
    for kind in kinds:
        operator = _operator(*_diagonals(getkey(), n, dtype, kind))
        matrix = operator.as_matrix()
        x_true = random(getkey(), (n,), dtype)
        vector = matrix @ x_true
        x = solve(operator, vector, solver).value
        assert x.dtype == dtype
        rtol = atol = tol(dtype)
        assert tree_allclose(x, jnp.linalg.solve(matrix, vector), rtol=rtol, atol=atol)
        assert tree_allclose(x, x_true, rtol=10 * rtol, atol=10 * atol)


@pytest.mark.parametrize("backend", ("native", "jax"))
@pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))
@pytest.mark.parametrize("kind", ("general", "zero_diagonal", "badly_scaled"))
@pytest.mark.parametrize("n", (50, 51))
def test_matches_scipy_solve_banded(getkey, dtype, kind, n, backend):
    if kind == "zero_diagonal" and n % 2:
        return  # Singular.
    diagonal, lower, upper = _diagonals(getkey(), n, dtype, kind)
    vector = random(getkey(), (n,), dtype)
    solver = lxk.ScanTridiagonal(backend=backend)
    x = _solve(_operator(diagonal, lower, upper), vector, solver).value
    bands = np.zeros((3, n), dtype=np.dtype(dtype))
    bands[0, 1:] = np.asarray(upper)
    bands[1] = np.asarray(diagonal)
    bands[2, :-1] = np.asarray(lower)
    expected = scipy.linalg.solve_banded((1, 1), bands, np.asarray(vector))
    # Forward error is bounded by cond(A) times the backward error.
    scale = 1e6 if kind == "badly_scaled" else 1
    assert np.allclose(np.asarray(x), expected, rtol=1e-10 * scale, atol=1e-10 * scale)


@pytest.mark.parametrize("dtype", (jnp.float32, jnp.float64))
def test_zero_diagonal_needs_pivoting(getkey, dtype):
    operator = _operator(*_diagonals(getkey(), 10, dtype, "zero_diagonal"))
    vector = random(getkey(), (10,), dtype)
    expected = jnp.linalg.solve(operator.as_matrix(), vector)
    out = _solve(operator, vector, lxk.ScanTridiagonal())
    assert out.result == lx.RESULTS.successful
    assert tree_allclose(out.value, expected, rtol=tol(dtype), atol=tol(dtype))
    # Thomas breaks down on the zero pivot: non-finite, so reported as singular.
    out = _solve(operator, vector, lxk.ScanTridiagonal(pivoting=False), throw=False)
    assert out.result == lx.RESULTS.singular
    assert not jnp.all(jnp.isfinite(out.value))


@pytest.mark.parametrize("dtype", (jnp.float32, jnp.complex128))
@pytest.mark.parametrize("pivoting", (True, False))
@pytest.mark.parametrize(
    "diagonals",
    (
        # A zero row.
        ([2.0, 0.0, 3.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 2.0]),
        # Two equal rows: only the last pivot is zero.
        ([1.0, 1.0], [1.0], [1.0]),
        ([0.0], [], []),
        # A zero column.
        ([1.0, 0.0, 1.0], [1.0, 0.0], [0.0, 1.0]),
    ),
)
@pytest.mark.parametrize("backend", ("native", "jax"))
def test_singular(dtype, pivoting, diagonals, backend):
    operator = _operator(*(jnp.array(x, dtype) for x in diagonals))
    vector = jnp.ones(operator.in_size(), dtype)
    solver = lxk.ScanTridiagonal(pivoting=pivoting, backend=backend)
    out = jax.jit(_solve, static_argnums=(2, 3))(operator, vector, solver, False)
    assert out.result == lx.RESULTS.singular
    with pytest.raises(Exception, match="non-finite"):
        jax.block_until_ready(_solve(operator, vector, solver, throw=True).value)


@pytest.mark.parametrize(
    "dtype, pivoting, n",
    ((jnp.float64, True, 7), (jnp.complex64, True, 2), (jnp.float32, False, 5)),
)
def test_vmap(getkey, dtype, pivoting, n):
    batch = 5
    kind = "general" if pivoting else "dominant"
    diagonals = [_diagonals(getkey(), n, dtype, kind) for _ in range(batch)]
    operators = eqx.filter_vmap(_operator)(*(jnp.stack(x) for x in zip(*diagonals)))
    matrices = jax.vmap(lambda op: op.as_matrix())(operators)
    vectors = random(getkey(), (batch, n), dtype)
    vector = vectors[0]
    operator = jax.tree.map(lambda x: x[0], operators)
    solver = lxk.ScanTridiagonal(pivoting=pivoting)
    solve = lambda op, v: _solve(op, v, solver).value
    dense = lambda m, v: jnp.linalg.solve(m, v)
    rtol = atol = tol(dtype)

    out = eqx.filter_jit(eqx.filter_vmap(solve, in_axes=(0, 0)))(operators, vectors)
    expected = jax.vmap(dense)(matrices, vectors)
    assert tree_allclose(out, expected, rtol=rtol, atol=atol)

    out = eqx.filter_jit(eqx.filter_vmap(solve, in_axes=(0, None)))(operators, vector)
    expected = jax.vmap(dense, in_axes=(0, None))(matrices, vector)
    assert tree_allclose(out, expected, rtol=rtol, atol=atol)

    out = eqx.filter_jit(eqx.filter_vmap(solve, in_axes=(None, 0)))(operator, vectors)
    expected = jax.vmap(dense, in_axes=(None, 0))(matrices[0], vectors)
    assert tree_allclose(out, expected, rtol=rtol, atol=atol)

    # Nested: an outer vmap over the vector, an inner one over the operator.
    inner = eqx.filter_vmap(solve, in_axes=(0, None))
    out = eqx.filter_vmap(inner, in_axes=(None, 0))(operators, vectors[:3])
    expected = jax.vmap(jax.vmap(dense, in_axes=(0, None)), in_axes=(None, 0))(
        matrices, vectors[:3]
    )
    assert tree_allclose(out, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))
@pytest.mark.parametrize("pivoting", (True, False))
def test_transpose_and_conj_states(getkey, dtype, pivoting):
    # The `AbstractLinearSolver` contract: `transpose` and `conj` of a state solve
    # with A^T and conj(A), as a fresh `init` would.
    kind = "general" if pivoting else "dominant"
    operator = _operator(*_diagonals(getkey(), 9, dtype, kind))
    vector = random(getkey(), (9,), dtype)
    solver = lxk.ScanTridiagonal(pivoting=pivoting)
    init = eqx.filter_jit(lambda op: solver.init(op, {}))
    state = init(operator)
    compute = eqx.filter_jit(lambda s: solver.compute(s, vector, {})[0])
    rtol = atol = tol(dtype)
    transposed, _ = solver.transpose(state, {})
    assert tree_allclose(
        compute(transposed), compute(init(operator.T)), rtol=rtol, atol=atol
    )
    conj_operator = lx.conj(operator)
    conjugated, _ = solver.conj(state, {})
    assert tree_allclose(
        compute(conjugated),
        compute(init(conj_operator)),
        rtol=rtol,
        atol=atol,
    )
    both, _ = solver.conj(transposed, {})
    expected = jnp.linalg.solve(operator.as_matrix().T.conj(), vector)
    assert tree_allclose(compute(both), expected, rtol=rtol, atol=atol)
    # Transposing twice gives back the original solve.
    again, _ = solver.transpose(transposed, {})
    assert tree_allclose(compute(again), compute(state), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))
def test_linear_transpose(getkey, dtype):
    operator = _operator(*_diagonals(getkey(), 8, dtype, "general"))
    assert not jnp.allclose(operator.as_matrix(), operator.as_matrix().T)
    out_vec, in_vec = random(getkey(), (2, 8), dtype)
    solver = lxk.ScanTridiagonal()
    solve = lambda v: _solve(operator, v, solver).value
    (out,) = jax.linear_transpose(solve, out_vec)(in_vec)
    expected = jnp.linalg.solve(operator.as_matrix().T, in_vec)
    assert tree_allclose(out, expected, rtol=tol(dtype), atol=tol(dtype))
    assert tree_allclose(
        out, _solve(operator.T, in_vec, solver).value, rtol=tol(dtype), atol=tol(dtype)
    )


@pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))
def test_jvp(getkey, dtype):
    diagonals = _diagonals(getkey(), 6, dtype, "general")
    vector = random(getkey(), (6,), dtype)
    t_diagonals = tuple(random(getkey(), x.shape, dtype) for x in diagonals)
    t_vector = random(getkey(), (6,), dtype)

    def solve(solver):
        return lambda diagonals, v: _solve(_operator(*diagonals), v, solver).value

    def dense(diagonals, v):
        return jnp.linalg.solve(_operator(*diagonals).as_matrix(), v)

    primals, tangents = (diagonals, vector), (t_diagonals, t_vector)
    out, t_out = jax.jvp(solve(lxk.ScanTridiagonal()), primals, tangents)
    expected, t_expected = jax.jvp(dense, primals, tangents)
    assert tree_allclose(out, expected, rtol=tol(dtype), atol=tol(dtype))
    assert tree_allclose(t_out, t_expected, rtol=tol(dtype), atol=tol(dtype))
    # Under vmap of the jvp, over the operator.
    batched = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), diagonals)
    jvp = lambda s: lambda d: jax.jvp(lambda d: s(d, vector), (d,), (t_diagonals,))
    out = jax.vmap(jvp(solve(lxk.ScanTridiagonal())))(batched)
    expected = jax.vmap(jvp(dense))(batched)
    assert tree_allclose(out, expected, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("pivoting", (True, False))
def test_grad(getkey, pivoting):
    dtype = jnp.float64
    kind = "general" if pivoting else "dominant"
    diagonals = _diagonals(getkey(), 7, dtype, kind)
    vector = random(getkey(), (7,), dtype)
    weights = random(getkey(), (7,), dtype)

    def loss(solver):
        def f(diagonals, v):
            return jnp.sum(weights * _solve(_operator(*diagonals), v, solver).value)

        return f

    grad = jax.jit(jax.grad(loss(lxk.ScanTridiagonal(pivoting=pivoting)), (0, 1)))
    expected = jax.grad(loss(lx.Tridiagonal()), (0, 1))(diagonals, vector)
    out = grad(diagonals, vector)
    assert tree_allclose(out, expected, rtol=1e-10, atol=1e-10)

    # Central finite differences along a random direction.
    direction = jax.tree.map(lambda x: random(getkey(), x.shape, dtype), out)
    eps = 1e-6
    f = loss(lxk.ScanTridiagonal(pivoting=pivoting))
    shift = lambda s: jax.tree.map(
        lambda x, d: x + s * d, (diagonals, vector), direction
    )
    fd = (f(*shift(eps)) - f(*shift(-eps))) / (2 * eps)
    directional = sum(
        jnp.vdot(d, g) for d, g in zip(jax.tree.leaves(direction), jax.tree.leaves(out))
    )
    assert jnp.allclose(fd, directional, rtol=1e-6, atol=1e-6)

    # Under vmap over a batch of operators (and the vector).
    batched = jax.tree.map(lambda x: jnp.stack([x, 1.5 * x, -x]), (diagonals, vector))
    out = jax.vmap(grad)(*batched)
    expected = jax.vmap(jax.grad(loss(lx.Tridiagonal()), (0, 1)))(*batched)
    assert tree_allclose(out, expected, rtol=1e-10, atol=1e-10)


def test_dense_operator_error(getkey):
    matrix = random(getkey(), (4, 4), jnp.float64)
    with pytest.raises(ValueError, match="tridiagonal") as e:
        _solve(lx.MatrixLinearOperator(matrix), matrix[0], lxk.ScanTridiagonal())
    assert "lx.LU()" in str(e.value) and "UnrolledSmallLU" in str(e.value)
    # Tagged dense matrices are fine.
    tridiagonal = _general(getkey(), 4, jnp.float64)
    operator = lx.MatrixLinearOperator(tridiagonal, lx.tridiagonal_tag)
    out = _solve(operator, tridiagonal[0], lxk.ScanTridiagonal()).value
    assert tree_allclose(out, jnp.linalg.solve(tridiagonal, tridiagonal[0]))
    assert tree_allclose(
        out,
        _solve(operator_from(tridiagonal, _tridiagonal), tridiagonal[0], lx.LU()).value,
    )


def test_non_square_error(getkey):
    matrix = random(getkey(), (3, 4), jnp.float64)
    operator = lx.MatrixLinearOperator(matrix, lx.tridiagonal_tag)
    with pytest.raises(ValueError, match="square"):
        lxk.ScanTridiagonal().init(operator, {})


def test_check_init():
    with pytest.raises(ValueError, match="unroll"):
        lxk.ScanTridiagonal(unroll=0)
    # (Under the test suite's beartype hook, the annotation catches this first.)
    with pytest.raises((ValueError, TypeError), match="pivoting"):
        lxk.ScanTridiagonal(pivoting=1)  # pyright: ignore[reportArgumentType]
    assert lxk.ScanTridiagonal(unroll=4).unroll == 4


@pytest.mark.parametrize("unroll", (1, 3))
def test_unroll(getkey, unroll):
    operator = _operator(*_diagonals(getkey(), 10, jnp.float64, "general"))
    vector = random(getkey(), (10,), jnp.float64)
    out = _solve(operator, vector, lxk.ScanTridiagonal(unroll=unroll)).value
    expected = jnp.linalg.solve(operator.as_matrix(), vector)
    assert tree_allclose(out, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("n", (1, 2, 3))
@pytest.mark.parametrize("pivoting", (True, False))
def test_transpose_small(getkey, n, pivoting):
    # The factors are stored shifted by one along the band, with a dummy first step:
    # check the transposed solve at the edges too.
    kind = "general" if pivoting else "dominant"
    operator = _operator(*_diagonals(getkey(), n, jnp.float64, kind))
    vector = random(getkey(), (n,), jnp.float64)
    solver = lxk.ScanTridiagonal(pivoting=pivoting)
    solve = lambda v: _solve(operator, v, solver).value
    (out,) = jax.linear_transpose(solve, vector)(vector)
    expected = jnp.linalg.solve(operator.as_matrix().T, vector)
    assert tree_allclose(out, expected, rtol=tol(jnp.float64), atol=tol(jnp.float64))


# Issue 9: the native CPU kernel against the pure-JAX one, which is the reference.
# Single systems take the native two-ended path (n >= 2), batches the SIMD tiles
# (full and partial), for every dtype and the special matrices.
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize(
    "kind", ("dominant", "general", "zero_diagonal", "badly_scaled")
)
@pytest.mark.parametrize("pivoting", (True, False))
def test_native_matches_pure_jax(getkey, dtype, kind, pivoting):
    if not pivoting and kind != "dominant":
        return  # Thomas is unstable there; see `test_zero_diagonal_needs_pivoting`.
    sizes = (1, 2, 3, 9) if kind != "zero_diagonal" else (2, 4)
    rtol = atol = 10 * tol(dtype) * (1e6 if kind == "badly_scaled" else 1)
    make = lambda backend: lxk.ScanTridiagonal(pivoting=pivoting, backend=backend)

    def solve(backend):
        # A, A^T and A^H in one program.
        def f(diagonals, vector):
            operator = _operator(*diagonals)
            ops = (operator, operator.T, lx.conj(operator.T))
            return [_solve(op, vector, make(backend)).value for op in ops]

        return jax.jit(f)

    native, pure = solve("native"), solve("jax")
    batched_native = jax.jit(jax.vmap(native))
    batched_pure = jax.jit(jax.vmap(pure))
    rhs_native = jax.jit(jax.vmap(native, in_axes=(None, 0)))
    rhs_pure = jax.jit(jax.vmap(pure, in_axes=(None, 0)))
    for n in sizes:
        batch = 19  # Two full tiles and a partial one for every dtype.
        keys = jr.split(getkey(), batch)
        diagonals = [_diagonals(k, n, dtype, kind) for k in keys]
        batched = tuple(jnp.stack(x) for x in zip(*diagonals))
        vectors = random(getkey(), (batch, n), dtype)
        x = native(diagonals[0], vectors[0])
        assert x[0].dtype == dtype
        assert tree_allclose(x, pure(diagonals[0], vectors[0]), rtol=rtol, atol=atol)
        x = batched_native(batched, vectors)
        assert tree_allclose(x, batched_pure(batched, vectors), rtol=rtol, atol=atol)
        # One operator, many right-hand sides.
        x = rhs_native(diagonals[0], vectors)
        assert tree_allclose(x, rhs_pure(diagonals[0], vectors), rtol=rtol, atol=atol)


@pytest.mark.parametrize("pivoting", (True, False))
def test_native_long_single_system(getkey, pivoting):
    # The two chains of the single-system kernel meet in the middle; check a long
    # system of each parity against scipy.
    for n in (1000, 1001):
        kind = "general" if pivoting else "dominant"
        diagonal, lower, upper = _diagonals(getkey(), n, jnp.float64, "dominant")
        if kind == "general":
            diagonal = diagonal - 4  # Not dominant: pivoting happens.
        vector = random(getkey(), (n,), jnp.float64)
        solver = lxk.ScanTridiagonal(pivoting=pivoting, backend="native")
        x = _solve(_operator(diagonal, lower, upper), vector, solver, throw=False)
        bands = np.zeros((3, n))
        bands[0, 1:], bands[1], bands[2, :-1] = upper, diagonal, lower
        expected = scipy.linalg.solve_banded((1, 1), bands, np.asarray(vector))
        cond = np.linalg.cond(np.asarray(_operator(diagonal, lower, upper).as_matrix()))
        err = np.max(np.abs(np.asarray(x.value) - expected)) / np.max(np.abs(expected))
        assert err < 100 * cond * np.finfo(np.float64).eps


@pytest.mark.parametrize("backend", ("native", "jax"))
def test_backend_grad_and_jvp(getkey, backend):
    diagonals = _diagonals(getkey(), 6, jnp.float64, "general")
    vector = random(getkey(), (6,), jnp.float64)
    solver = lxk.ScanTridiagonal(backend=backend)

    def loss(solver):
        return lambda d, v: jnp.sum(_solve(_operator(*d), v, solver).value ** 2)

    out = jax.jit(jax.grad(loss(solver), (0, 1)))(diagonals, vector)
    expected = jax.grad(loss(lx.Tridiagonal()), (0, 1))(diagonals, vector)
    assert tree_allclose(out, expected, rtol=1e-10, atol=1e-10)
    tangents = jax.tree.map(lambda x: random(getkey(), x.shape, x.dtype), diagonals)
    _, t_out = jax.jvp(lambda d: loss(solver)(d, vector), (diagonals,), (tangents,))
    _, t_exp = jax.jvp(
        lambda d: loss(lx.Tridiagonal())(d, vector), (diagonals,), (tangents,)
    )
    assert tree_allclose(t_out, t_exp, rtol=1e-10, atol=1e-10)


def test_check_backend():
    # (Under the test suite's beartype hook, the annotation catches this first.)
    with pytest.raises((ValueError, TypeError), match="backend"):
        lxk.ScanTridiagonal(backend="cuda")  # pyright: ignore[reportArgumentType]
