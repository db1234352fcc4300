import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg


_backends = pytest.mark.parametrize("backend", ("native", "jax"))
_MAX = lxk.UnrolledSmallQR().max_size
_MAX_LONG = lxk.UnrolledSmallQR().max_long_size


def _batched_solve(solver, throw=False):
    def solve(matrix, vector):
        operator = lx.MatrixLinearOperator(matrix)
        sol = lx.linear_solve(operator, vector, solver, throw=throw)
        return sol.value, sol.result._value

    return jax.jit(jax.vmap(solve))


def _matrices(family, shape, batch, rng, dtype):
    """A batch of `shape` matrices of one family, as a numpy array of `dtype`."""
    m, n = shape
    k = min(m, n)

    def normal(*s):
        x = rng.standard_normal(s)
        if np.issubdtype(dtype, np.complexfloating):
            x = x + 1j * rng.standard_normal(s)
        return x

    if family == "random":
        a = normal(batch, m, n)
    elif family == "cond_1e8":
        # Singular values from 1 to 1e-8, random singular vectors.
        u, _ = np.linalg.qr(normal(batch, m, k))
        v, _ = np.linalg.qr(normal(batch, n, k))
        s = np.logspace(0, -8, k)
        a = (u * s[None, None, :]) @ v.conj().transpose(0, 2, 1)
    elif family == "graded":
        # Columns (rows, if wide) scaled by 1, 1e-2, 1e-4, ...: badly conditioned,
        # but harmless for Householder QR, which is column-scaling invariant.
        a = normal(batch, m, n)
        scales = 10.0 ** (-2.0 * np.arange(k))
        if m >= n:
            a = a * scales[None, None, :]
        else:
            a = a * scales[None, :, None]
    else:
        raise ValueError(family)
    return a.astype(dtype)


def _backward_errors(a, b, x):
    """Per system: for a tall or square A, the normal-equations residual
    ||A^H (A x - b)|| / (||A||^2 ||x|| + ||A|| ||b||); for a wide A, the residual
    ||A x - b|| / (||A|| ||x|| + ||b||). (That a wide system's x is the minimum-norm
    one is checked by the forward error: any other solution is O(1) away.)"""
    a, b, x = (np.asarray(y, np.complex128) for y in (a, b, x))
    norm_a = np.linalg.norm(a, 2, axis=(1, 2))
    norm_x = np.linalg.norm(x, axis=1)
    norm_b = np.linalg.norm(b, axis=1)
    r = np.einsum("bij,bj->bi", a, x) - b
    m, n = a.shape[1:]
    if m >= n:
        g = np.einsum("bji,bj->bi", a.conj(), r)
        return np.linalg.norm(g, axis=1) / (norm_a**2 * norm_x + norm_a * norm_b)
    return np.linalg.norm(r, axis=1) / (norm_a * norm_x + norm_b)


def _gels(a, b):
    """LAPACK's `?gels` (QR least squares / LQ minimum norm) on one system."""
    (gels,) = scipy.linalg.lapack.get_lapack_funcs(("gels",), (a,))
    m, n = a.shape
    padded = np.zeros(max(m, n), a.dtype)
    padded[:m] = b
    _, x, info = gels(a, padded)
    assert info == 0
    return x[:n]


_families = ("random", "cond_1e8", "graded")
# The sizes where the code paths change: one column or row; tall, wide and square;
# static (min(m, n) <= 8) and run-time sizes; the largest accepted.
_shapes = [(4, 1), (1, 4), (6, 6), (20, 3), (3, 20), (12, 9), (9, 12)]
_shapes += [(_MAX_LONG, 3), (_MAX + 2, _MAX)]


# The pure-JAX kernel is one rolled loop at every size: tall, wide and square, and
# one column or row, are its code paths.
_lapack_params = [
    (shape, dtype, backend)
    for backend in ("native", "jax")
    for shape in (_shapes if backend == "native" else _shapes[:5])
    for dtype in (np.float64, np.complex128)
]


@pytest.mark.parametrize("shape, dtype, backend", _lapack_params, ids=str)
def test_against_lapack(shape, dtype, backend):
    # Backward error within 10x of LAPACK's `?gels` on every family (well
    # conditioned, condition number 1e8, graded columns), and the forward error
    # within what the condition number allows.
    rng = np.random.default_rng(shape)
    batch = 4
    families = [f for f in _families if not (f == "cond_1e8" and min(shape) == 1)]
    a = np.concatenate([_matrices(f, shape, batch, rng, dtype) for f in families])
    b = rng.standard_normal((len(a), shape[0])).astype(dtype)
    x, result = _batched_solve(lxk.UnrolledSmallQR(backend=backend))(a, b)
    x = np.asarray(x)
    assert x.dtype == dtype
    assert np.all(np.asarray(result) == lx.RESULTS.successful._value)
    x_lapack = np.stack([_gels(ai, bi) for ai, bi in zip(a, b)])
    eps = np.finfo(dtype).eps
    ours = _backward_errors(a, b, x)
    lapack = _backward_errors(a, b, x_lapack)
    np.testing.assert_array_less(ours, 10 * np.maximum(lapack, 4 * eps))
    cond = np.linalg.cond(a.astype(np.complex128))
    forward = np.linalg.norm(x - x_lapack, axis=1) / np.linalg.norm(x_lapack, axis=1)
    # Forward error in x is only bounded columnwise for the graded family.
    check = np.repeat([f != "graded" for f in families], batch)
    bound = 100 * max(shape) * eps * cond
    if shape[0] > shape[1]:
        bound = bound * cond  # the residual's term, cond^2 * ||r|| / ||A|| ||x||
    np.testing.assert_array_less(forward[check], bound[check])


_flags = [
    (np.float32, False, False),
    (np.complex64, True, True),
    (np.float64, True, False),
    (np.complex128, False, True),
    (np.complex128, True, True),
]


@pytest.mark.parametrize("dtype, trans, conj", _flags, ids=str)
@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (5, 5), (12, 10)], ids=str)
def test_native_matches_pure_jax(shape, dtype, trans, conj):
    # The two kernels, with the flags (through the solver's transposed and
    # conjugated states), both instantiations (static smaller size <= 8, and
    # run-time above), partial tiles (batch 13).
    rng = np.random.default_rng(0)
    a = _matrices("random", shape, 13, rng, dtype)
    rows = shape[1] if trans else shape[0]
    b = _matrices("random", (13, rows), 1, rng, dtype)[0]

    def solve(backend):
        solver = lxk.UnrolledSmallQR(backend=backend)

        def one(a, b):
            state = solver.init(lx.MatrixLinearOperator(a), {})
            if trans:
                state, _ = solver.transpose(state, {})
            if conj:
                state, _ = solver.conj(state, {})
            return solver.compute(state, b, {})[0]

        return jax.jit(jax.vmap(one))(a, b)

    native, pure = solve("native"), solve("jax")
    t = 1e-4 if dtype in (np.float32, np.complex64) else 1e-11
    np.testing.assert_allclose(native, pure, rtol=t, atol=t)
    op = a.transpose(0, 2, 1) if trans else a
    op = op.conj() if conj else op
    expected = np.stack([np.linalg.lstsq(o, v, rcond=None)[0] for o, v in zip(op, b)])
    np.testing.assert_allclose(native, expected, rtol=t, atol=t)


@_backends
@pytest.mark.parametrize("shape", [(6, 3), (3, 6), (5, 5)], ids=str)
@pytest.mark.parametrize("axes", ("vector", "operator"))
def test_shared_operand(shape, axes, backend):
    # One matrix, many right-hand sides (factorised once natively), and one
    # right-hand side with many matrices; 20 systems, more than one tile.
    rng = np.random.default_rng(1)
    a = _matrices("random", shape, 20, rng, np.float64)
    b = rng.standard_normal((20, shape[0]))
    solver = lxk.UnrolledSmallQR(backend=backend)
    solve = lambda a, b: lx.linear_solve(lx.MatrixLinearOperator(a), b, solver).value
    if axes == "vector":
        x = jax.jit(jax.vmap(solve, in_axes=(None, 0)))(a[0], b)
        a = np.broadcast_to(a[0], a.shape)
    else:
        x = jax.jit(jax.vmap(solve, in_axes=(0, None)))(a, b[0])
        b = np.broadcast_to(b[0], b.shape)
    expected = np.stack(
        [np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(a, b)]
    )
    np.testing.assert_allclose(x, expected, rtol=1e-11, atol=1e-11)


@_backends
@pytest.mark.parametrize("shape", [(6, 3), (3, 6), (4, 4), (12, 10)], ids=str)
def test_rank_deficient_or_nonfinite_is_singular(shape, backend):
    # An exactly rank-deficient matrix (one that gives an exactly zero diagonal
    # entry of R: a zero column of a tall or square matrix, a zero row of a wide
    # one) gives a non-finite solution, never a finite wrong one, so lineax reports
    # RESULTS.singular; so does non-finite input. One system of each per batch.
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, *shape))
    if shape[0] >= shape[1]:
        a[0, :, 1] = 0
    else:
        a[0, 1, :] = 0
    a[1] = 0
    a[2, 0, 0] = np.nan
    a[3, -1, -1] = np.inf
    b = rng.standard_normal((4, shape[0]))
    x, result = _batched_solve(lxk.UnrolledSmallQR(backend=backend))(a, b)
    assert np.all(np.asarray(result) == lx.RESULTS.singular._value)


@_backends
@pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))
def test_levenberg_marquardt_operator(getkey, dtype, backend):
    # The damped operator [J; sqrt(λ) I] of optimistix.LevenbergMarquardt, a PyTree
    # operator (output structure (r, x)) with a PyTree input, against lx.QR.
    rng = np.random.default_rng(3)
    jac = _matrices("random", (10, 3), 1, rng, dtype)[0]
    in_struct = {
        "a": jax.ShapeDtypeStruct((2,), dtype),
        "b": jax.ShapeDtypeStruct((), dtype),
    }

    def fn(x):
        flat = jnp.concatenate([x["a"], x["b"][None]])
        return jac @ flat, 0.5 * flat

    operator = lx.FunctionLinearOperator(fn, in_struct)
    vector = (jnp.asarray(rng.standard_normal(10), dtype), jnp.zeros(3, dtype))
    x = lx.linear_solve(operator, vector, lxk.UnrolledSmallQR(backend=backend)).value
    expected = lx.linear_solve(operator, vector, lx.QR()).value
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-11), x, expected)


def test_errors():
    operator = lx.MatrixLinearOperator(jnp.zeros((_MAX + 1, _MAX + 2)))
    with pytest.raises(ValueError, match=r"`lx.QR\(\)`"):
        lxk.UnrolledSmallQR().init(operator, {})
    operator = lx.MatrixLinearOperator(jnp.zeros((_MAX_LONG + 1, 2)))
    with pytest.raises(ValueError, match="max_long_size"):
        lxk.UnrolledSmallQR().init(operator, {})
    lxk.UnrolledSmallQR(max_long_size=_MAX_LONG + 1).init(operator, {})
    with pytest.raises(ValueError, match="max_size"):
        lxk.UnrolledSmallQR(max_size=0)
    assert lxk.UnrolledSmallQR().assume_full_rank()


@_backends
@pytest.mark.parametrize("shape", [(6, 3), (3, 6)], ids=str)
def test_nonsquare_contract(shape, backend):
    # What test_contract.py checks for square operators, for tall and wide ones,
    # against lx.QR: jvp, grad, jax.linear_transpose, and vmap over the operator.
    rng = np.random.default_rng(3)
    a, t_a = rng.standard_normal((2, *shape))
    b, t_b = rng.standard_normal((2, shape[0]))
    ours = lxk.UnrolledSmallQR(backend=backend)

    def solve(solver):
        return lambda a, b: lx.linear_solve(lx.MatrixLinearOperator(a), b, solver).value

    @jax.jit
    def checks(a, b, t_a, t_b):
        out = {}
        for name, s in (("ours", ours), ("ref", lx.QR())):
            f = solve(s)
            out[name] = (
                jax.jvp(f, (a, b), (t_a, t_b)),
                jax.grad(lambda a, b: jnp.sum(f(a, b) ** 2), argnums=(0, 1))(a, b),
                jax.linear_transpose(lambda v: f(a, v), b)(f(a, b)),
                jax.vmap(f, in_axes=(0, None))(jnp.stack([a, 2 * a]), b),
            )
        return out

    out = checks(a, b, t_a, t_b)
    for x, y in zip(jax.tree.leaves(out["ours"]), jax.tree.leaves(out["ref"])):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
