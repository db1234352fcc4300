# The lineax solver contract, for every solver on every kernel path in
# `helpers.cases`, checked once for all: solve in every dtype, vmap in every pattern
# (operator, vector, both, nested, batch axis not first, any subset of an operator's
# leaves), jvp, grad, linear transpose, `transpose`/`conj` states, PyTree operators,
# singular and non-finite input (alone and inside a batch), ties in pivot magnitude,
# and the trace-time errors: wrong operators, unsupported dtypes, and mixed dtypes
# where lineax's own solver refuses them.
import dataclasses

import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest

from .helpers import (
    block_tridiagonal_tag,
    cases,
    dtypes,
    gepp_tie_matrix,
    leaf_subsets,
    operator_from,
    operator_leaves,
    periodic_tridiagonal_tag,
    perturb,
    random,
    solve_fn,
    tol,
    unsupported_dtypes,
)


def _size(case):
    # Small, so that compiling the straight-line kernels is quick; even for 2 x 2
    # blocks; at least 3 for the periodic ring (below that its entries coincide).
    return 4 if block_tridiagonal_tag in case.tags else 3


def _cases(predicate=lambda case: True):
    return pytest.mark.parametrize(
        "case", [c for c in cases if predicate(c)], ids=lambda c: c.id
    )


def _ids(x):
    return np.dtype(x).name if isinstance(x, type) else None


def _is_banded(case):
    # Operators with several array leaves (bands or blocks).
    return bool(
        case.tags
        & {lx.tridiagonal_tag, periodic_tridiagonal_tag, block_tridiagonal_tag}
    )


def _is_definite(case):
    return bool(
        case.tags & {lx.positive_semidefinite_tag, lx.negative_semidefinite_tag}
    )


def _is_triangular(case):
    return bool(case.tags & {lx.lower_triangular_tag, lx.upper_triangular_tag})


def _pivots(case):
    # Solvers that choose pivots (by LAPACK's rules); the Thomas algorithm and QR do
    # not.
    return not (
        isinstance(case.solver, lxk.UnrolledSmallQR)
        or _is_definite(case)
        or _is_triangular(case)
        or getattr(case.solver, "pivoting", True) is False
    )


def _problem(getkey, case, dtype):
    matrix = case.matrix(getkey(), _size(case), dtype)
    return matrix, operator_from(matrix, case.tags)


def _dense_solve(matrices, vectors):
    matrices, vectors = np.asarray(matrices), np.asarray(vectors)
    shape = np.broadcast_shapes(matrices.shape[:-2], vectors.shape[:-1])
    matrices = np.broadcast_to(matrices, shape + matrices.shape[-2:])
    vectors = np.broadcast_to(vectors, shape + vectors.shape[-1:])
    return np.linalg.solve(matrices, vectors[..., None])[..., 0]


@_cases()
def test_solve(getkey, case):
    # Every dtype, in one program.
    problems = [_problem(getkey, case, dtype) for dtype in dtypes]
    x_true = [random(getkey(), (_size(case),), dtype) for dtype in dtypes]
    vectors = [m @ x for (m, _), x in zip(problems, x_true)]
    solve = solve_fn(case.solver)
    out = jax.jit(lambda ops, vs: [solve(o, v) for o, v in zip(ops, vs)])(
        [op for _, op in problems], vectors
    )
    for dtype, (x, result), xt in zip(dtypes, out, x_true):
        assert x.dtype == dtype
        assert result == lx.RESULTS.successful._value
        np.testing.assert_allclose(x, xt, rtol=tol(dtype), atol=tol(dtype))


def _on_pure_jax(solver):
    fields = {f.name: getattr(solver, f.name) for f in dataclasses.fields(solver)}
    return type(solver)(**{**fields, "backend": "jax"})


@_cases(lambda case: getattr(case.solver, "backend", None) == "native")
def test_native_matches_pure_jax(getkey, case):
    # The two kernel paths on the same batch (5 systems: a partial SIMD tile),
    # real and complex, in one program: the same pivots, so the same solution to
    # rounding.
    size = _size(case)
    problems = []
    for dtype in (jnp.float64, jnp.complex128):
        near = case.matrix(getkey(), size, dtype)
        matrices = jnp.stack([perturb(getkey(), near, case.tags) for _ in range(5)])
        problems.append((matrices, random(getkey(), (5, size), dtype)))
    native = jax.vmap(solve_fn(case.solver, case.tags))
    pure = jax.vmap(solve_fn(_on_pure_jax(case.solver), case.tags))
    out = jax.jit(lambda ps: [(native(*p), pure(*p)) for p in ps])(problems)
    for (x_native, r_native), (x_pure, r_pure) in out:
        assert np.all(np.asarray(r_native) == lx.RESULTS.successful._value)
        np.testing.assert_array_equal(r_native, r_pure)
        np.testing.assert_allclose(x_native, x_pure, rtol=1e-11, atol=1e-13)


@_cases()
def test_transpose_and_conj(getkey, case):
    # transpose(init(A)) ≡ init(A.T) and conj(init(A)) ≡ init(conj(A)), compared by
    # what they solve; and `jax.linear_transpose` of the solve. One program.
    solver = case.solver
    matrix, operator = _problem(getkey, case, jnp.complex128)
    vector = random(getkey(), (_size(case),), jnp.complex128)
    conj_operator = operator_from(matrix.conj(), case.tags)

    @jax.jit
    def solves(operator, conj_operator, vector):
        state = solver.init(operator, {})
        state_t, options_t = solver.transpose(state, {})
        state_c, options_c = solver.conj(state, {})
        state_tc, options_tc = solver.conj(state_t, options_t)
        state_tt, options_tt = solver.transpose(state_t, options_t)
        states = [
            (state_t, options_t),
            (state_c, options_c),
            (state_tc, options_tc),
            (state_tt, options_tt),
            (solver.init(operator.T, {}), {}),
            (solver.init(conj_operator, {}), {}),
        ]
        solve = lambda v: lx.linear_solve(operator, v, solver).value
        (x_lt,) = jax.linear_transpose(solve, vector)(vector)
        return [solver.compute(s, vector, o)[0] for s, o in states] + [x_lt]

    x_t, x_c, x_tc, x_tt, x_t2, x_c2, x_lt = solves(operator, conj_operator, vector)
    np.testing.assert_allclose(x_t, x_t2, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(x_c, x_c2, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(x_t, _dense_solve(matrix.T, vector), rtol=1e-10)
    np.testing.assert_allclose(x_c, _dense_solve(matrix.conj(), vector), rtol=1e-10)
    np.testing.assert_allclose(x_tc, _dense_solve(matrix.T.conj(), vector), rtol=1e-10)
    # Twice transposed is the original.
    np.testing.assert_allclose(x_tt, _dense_solve(matrix, vector), rtol=1e-10)
    np.testing.assert_allclose(x_lt, _dense_solve(matrix.T, vector), rtol=1e-10)


# (in_axes of (matrices, vectors), their batch shapes) for each pattern.
_VMAP_PATTERNS = {
    "operator": ((0, None), (5,), ()),
    "vector": ((None, 0), (), (5,)),
    "both": ((0, 0), (5,), (5,)),
    "axis_not_first": ((2, 1), (3,), (3,)),
}


@_cases()
def test_vmap(getkey, case):
    # Every pattern in one program: operator only, vector only, both, batch axis
    # not first, and nested (the outer vmap over operator and vector, the inner
    # over the vector only: one operator per outer member).
    solve = solve_fn(case.solver, case.tags)
    size = _size(case)
    near = case.matrix(getkey(), size, jnp.float64)
    inputs, expected = {}, {}
    for name, ((op_axis, vec_axis), op_batch, vec_batch) in _VMAP_PATTERNS.items():
        matrices = jnp.stack(
            [
                perturb(getkey(), near, case.tags)
                for _ in range(max(op_batch, default=1))
            ]
        )
        vectors = random(getkey(), (max(vec_batch, default=1), size), jnp.float64)
        if name == "axis_not_first":
            mats, vecs = jnp.moveaxis(matrices, 0, 2), jnp.moveaxis(vectors, 0, 1)
        else:
            mats = matrices if op_axis == 0 else matrices[0]
            vecs = vectors if vec_axis == 0 else vectors[0]
        inputs[name] = (mats, vecs)
        expected[name] = _dense_solve(
            matrices if op_batch else matrices[0], vectors if vec_batch else vectors[0]
        )
    matrices = jnp.stack([perturb(getkey(), near, case.tags) for _ in range(2)])
    vectors = random(getkey(), (2, 3, size), jnp.float64)
    inputs["nested"] = (matrices, vectors)
    expected["nested"] = _dense_solve(matrices[:, None], vectors)

    @jax.jit
    def solve_all(inputs):
        out = {
            name: jax.vmap(solve, in_axes=_VMAP_PATTERNS[name][0])(*inputs[name])
            for name in _VMAP_PATTERNS
        }
        inner = jax.vmap(solve, in_axes=(None, 0))
        out["nested"] = jax.vmap(inner)(*inputs["nested"])
        return out

    for name, (x, result) in solve_all(inputs).items():
        assert np.all(np.asarray(result) == lx.RESULTS.successful._value), name
        np.testing.assert_allclose(
            x, expected[name], rtol=1e-10, atol=1e-12, err_msg=name
        )


# Batch some of an operator's leaves (bands or blocks), share the others, with the
# right-hand side shared or batched too.
_LEAF_PATTERNS = [(s, False) for s in leaf_subsets(3)] + [
    ((i,), True) for i in range(3)
]


@_cases(_is_banded)
def test_vmap_some_leaves(getkey, case):
    # Every subset of the leaves batched, in one program.
    batch = 5
    near = case.matrix(getkey(), _size(case), jnp.float64)
    shared, rebuild = operator_leaves(near, case.tags)
    assert len(shared) == 3
    members = [
        operator_leaves(perturb(getkey(), near, case.tags), case.tags)[0]
        for _ in range(batch)
    ]
    vectors = random(getkey(), (batch, _size(case)), jnp.float64)

    def solve(leaves, vector):
        sol = lx.linear_solve(rebuild(leaves), vector, case.solver)
        return sol.value, sol.result._value

    def pattern(batched, vector_batched):
        leaves = [
            jnp.stack([m[i] for m in members]) if i in batched else shared[i]
            for i in range(len(shared))
        ]
        vector = vectors if vector_batched else vectors[0]
        in_axes = ([0 if i in batched else None for i in range(len(leaves))],)
        in_axes += (0 if vector_batched else None,)
        return in_axes, leaves, vector

    @jax.jit
    def solve_all():
        out = []
        for batched, vector_batched in _LEAF_PATTERNS:
            in_axes, leaves, vector = pattern(batched, vector_batched)
            out.append(jax.vmap(solve, in_axes=in_axes)(leaves, vector))
        return out

    for (batched, vector_batched), (x, result) in zip(_LEAF_PATTERNS, solve_all()):
        in_axes, leaves, vector = pattern(batched, vector_batched)
        matrices = jax.vmap(lambda l: rebuild(l).as_matrix(), in_axes=in_axes[:1])(
            leaves
        )
        name = f"leaves {batched}, vector batched: {vector_batched}"
        assert np.all(np.asarray(result) == lx.RESULTS.successful._value), name
        np.testing.assert_allclose(
            x, _dense_solve(matrices, vector), rtol=1e-10, atol=1e-12, err_msg=name
        )


@_cases()
def test_jvp_and_grad(getkey, case):
    # Against the formulas: with A x = b, dx = A^{-1} (db - dA x); for the loss
    # |x|^2, grad_b = A^{-T} 2x and grad_A = -grad_b x^T (restricted to the
    # operator's structure, as the operator's leaves carry it). One program.
    size = _size(case)
    matrix = case.matrix(getkey(), size, jnp.float64)
    t_matrix = case.matrix(getkey(), size, jnp.float64)
    vector, t_vector = random(getkey(), (2, size), jnp.float64)
    leaves, rebuild = operator_leaves(matrix, case.tags)
    t_leaves, _ = operator_leaves(t_matrix, case.tags)

    def solve(leaves, v):
        return lx.linear_solve(rebuild(leaves), v, case.solver).value

    def loss(leaves, v):
        return jnp.sum(solve(leaves, v) ** 2)

    @jax.jit
    def derivatives(leaves, vector, t_leaves, t_vector):
        _, tangent = jax.jvp(solve, (leaves, vector), (t_leaves, t_vector))
        return tangent, jax.grad(loss, argnums=(0, 1))(leaves, vector)

    tangent, (grad_leaves, grad_b) = derivatives(leaves, vector, t_leaves, t_vector)
    a, ta = (
        np.asarray(rebuild(leaves).as_matrix()),
        np.asarray(rebuild(t_leaves).as_matrix()),
    )
    x = np.linalg.solve(a, vector)
    np.testing.assert_allclose(
        tangent, np.linalg.solve(a, t_vector - ta @ x), rtol=1e-9, atol=1e-12
    )
    expected_b = np.linalg.solve(a.T, 2 * x)
    np.testing.assert_allclose(grad_b, expected_b, rtol=1e-9, atol=1e-12)
    # d loss along a tangent of the leaves: <grad_leaves, t> = <grad_A, dA>.
    along = sum(jnp.vdot(g, t) for g, t in zip(grad_leaves, t_leaves))
    expected_along = np.sum(-np.outer(expected_b, x) * ta)
    np.testing.assert_allclose(along, expected_along, rtol=1e-9, atol=1e-12)


@_cases(lambda c: lx.unit_diagonal_tag not in c.tags)
def test_singular_throws(case):
    # (A unit triangular matrix is never singular.)
    size = _size(case)
    operator = operator_from(jnp.zeros((size, size), jnp.float64), case.tags)
    with pytest.raises(Exception, match="singular"):
        jax.block_until_ready(
            lx.linear_solve(operator, jnp.ones(size), case.solver).value
        )


def _bad_entry(case):
    # An entry that the solver reads and that is not on the diagonal (an infinite
    # off-diagonal entry becomes a pivot where the solver pivots), and whether the
    # matrix is Hermitian (then its mirror image is set too).
    if lx.upper_triangular_tag in case.tags:
        return (0, 1), False
    return (1, 0), _is_definite(case)


def _spoil(matrix, vector, case, how):
    """`(matrix, vector, expected result)` with a NaN or an inf in the matrix or
    vector, or with a singular (zero) matrix."""
    if how == "zero":
        return jnp.zeros_like(matrix), vector, lx.RESULTS.singular
    bad = {"nan": jnp.nan, "inf": jnp.inf}[how.split("_")[-1]]
    if how.startswith("vector"):
        # (lineax reports non-finite input in the vector by its own code.)
        return matrix, vector.at[1].set(bad), lx.RESULTS.nonfinite_input
    (i, j), hermitian = _bad_entry(case)
    matrix = matrix.at[i, j].set(bad)
    if hermitian:
        matrix = matrix.at[j, i].set(bad)
    return matrix, vector, lx.RESULTS.singular


@_cases()
def test_singular_and_nonfinite_input(getkey, case):
    # A singular matrix, and a NaN or inf in the matrix or vector: each flagged
    # (`throw=False`), never a finite answer. And a singular member (or, for a unit
    # triangular matrix, which is never singular, one with an inf) of a vmapped
    # batch (of a size that leaves a partial SIMD tile) is flagged, while the
    # others are solved exactly as alone. One program.
    size = _size(case)
    hows = ["matrix_nan", "matrix_inf", "vector_nan", "vector_inf"]
    if lx.unit_diagonal_tag not in case.tags:
        hows.append("zero")
    batch, bad = 7, 3
    matrices = jnp.stack(
        [case.matrix(getkey(), size, jnp.float64) for _ in range(batch)]
    )
    vectors = random(getkey(), (batch, size), jnp.float64)
    alone = [_spoil(matrices[bad], vectors[bad], case, how) for how in hows]
    matrix, _, batch_result = alone[-1] if hows[-1] == "zero" else alone[1]
    batch_matrices = matrices.at[bad].set(matrix)
    solve = solve_fn(case.solver, case.tags, throw=False)

    @jax.jit
    def solve_all(alone, batch_matrices):
        return [solve(m, v) for m, v in alone], jax.vmap(solve)(batch_matrices, vectors)

    out, (bx, br) = solve_all([(m, v) for m, v, _ in alone], batch_matrices)
    for how, (_, _, result), (x, r) in zip(hows, alone, out):
        assert r == result._value, how
        assert not np.all(np.isfinite(x)), how
    good = np.arange(batch) != bad
    assert br[bad] == batch_result._value
    assert not np.all(np.isfinite(np.asarray(bx)[bad]))
    assert np.all(np.asarray(br)[good] == lx.RESULTS.successful._value)
    np.testing.assert_allclose(
        np.asarray(bx)[good],
        _dense_solve(matrices[good], vectors[good]),
        rtol=1e-11,
        atol=1e-13,
    )


@_cases(_pivots)
def test_ties_in_pivot_magnitude(case):
    # LAPACK's rule on ties (the first of the largest; no swap in a tridiagonal
    # step) makes one entry of the solution exact; the other pivot does not. With
    # the tie in the first pivot column (real) and in the last (complex); alone and
    # in a batch.
    size = _size(case)
    problems = [
        gepp_tie_matrix(size, False, np.float64),
        gepp_tie_matrix(size, True, np.complex128),
    ]
    solve = solve_fn(case.solver, case.tags)
    batched = jax.vmap(solve)

    @jax.jit
    def solve_all(problems):
        # Alone, and in a batch of 3 copies (the batched kernels).
        stack = lambda x: jnp.stack([x] * 3)
        return [(solve(m, v), batched(stack(m), stack(v))) for m, v in problems]

    out = solve_all([(jnp.asarray(m), v) for m, v, _, _ in problems])
    for (matrix, vector, i, exact), ((x, r), (bx, br)) in zip(problems, out):
        assert r == lx.RESULTS.successful._value
        assert np.all(br == lx.RESULTS.successful._value)
        assert np.asarray(x)[i] == exact, (x, matrix.dtype)
        assert np.all(np.asarray(bx)[:, i] == exact), (bx, matrix.dtype)
        np.testing.assert_allclose(x, np.linalg.solve(matrix, vector), rtol=1e-14)


@_cases(lambda c: not c.tags or _is_definite(c) or _is_triangular(c))
def test_pytree_operator(getkey, case):
    # Input and output structure {"a": (2,), "b": (1, 1)}.
    matrix = case.matrix(getkey(), 3, jnp.float64)
    struct = {
        "a": jax.ShapeDtypeStruct((2,), jnp.float64),
        "b": jax.ShapeDtypeStruct((1, 1), jnp.float64),
    }

    def fn(x):
        y = matrix @ jnp.concatenate([x["a"], x["b"].reshape(1)])
        return {"a": y[:2], "b": y[2:].reshape(1, 1)}

    operator = lx.FunctionLinearOperator(fn, struct, case.tags)
    x_true = {"a": jr.normal(getkey(), (2,)), "b": jr.normal(getkey(), (1, 1))}
    x = lx.linear_solve(operator, fn(x_true), case.solver).value
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10), x, x_true)


@_cases(lambda c: c.wrong is not None)
def test_wrong_operator_raises_at_trace_time(case):
    operator = case.wrong()
    vector = jnp.ones(operator.out_size())
    with pytest.raises(ValueError, match=case.name):
        jax.eval_shape(lambda: lx.linear_solve(operator, vector, case.solver))


def _astype(operator, dtype):
    return jax.tree.map(lambda x: x.astype(dtype), operator)


@_cases()
def test_unsupported_dtypes_raise_at_trace_time(getkey, case):
    matrix, _ = _problem(getkey, case, jnp.float64)
    for dtype in unsupported_dtypes:
        operator = _astype(operator_from(jnp.round(4 * matrix), case.tags), dtype)
        vector = jnp.ones(_size(case), dtype)
        with pytest.raises((TypeError, ValueError)):
            jax.eval_shape(lambda: lx.linear_solve(operator, vector, case.solver).value)
            pytest.fail(f"no error at trace time for {np.dtype(dtype).name}")


# (operator leaf dtypes: one for all, or one per leaf for banded operators; vector
# dtype)
_MIXED = {
    "real_operator-complex_vector": ((jnp.float64,), jnp.complex128),
    "complex_operator-real_vector": ((jnp.complex128,), jnp.float64),
    "float32_operator-float64_vector": ((jnp.float32,), jnp.float64),
}
_MIXED_LEAVES = {
    "real_diagonal-complex_bands": (
        (jnp.float64, jnp.complex128, jnp.complex128),
        jnp.float64,
    ),
    "real_diagonal-complex_bands-complex_vector": (
        (jnp.float64, jnp.complex128, jnp.complex128),
        jnp.complex128,
    ),
    "complex_diagonal-real_bands": (
        (jnp.complex128, jnp.float64, jnp.float64),
        jnp.complex128,
    ),
    "real_lower_band": ((jnp.complex128, jnp.float64, jnp.complex128), jnp.complex128),
}


@_cases()
def test_mixed_dtypes_behave_as_lineax(getkey, case):
    # Under JAX's default (standard) promotion: where lineax's own solver refuses
    # the operator and vector at trace time, ours raises a TypeError or ValueError
    # at trace time too; where lineax solves, ours gives the same solution in the
    # same dtype (never a finite wrong answer, never a dropped imaginary part).
    matrix = case.matrix(getkey(), _size(case), jnp.complex128)
    leaves, rebuild = operator_leaves(matrix, case.tags)
    mixed = {**_MIXED, **(_MIXED_LEAVES if _is_banded(case) else {})}
    problems = {}
    for name, (leaf_dtypes, vector_dtype) in mixed.items():
        if len(leaf_dtypes) == 1:
            leaf_dtypes = leaf_dtypes * len(leaves)
        problem = (
            [
                x if jnp.issubdtype(d, jnp.complexfloating) else x.real.astype(d)
                for x, d in zip(leaves, leaf_dtypes)
            ],
            random(getkey(), (_size(case),), vector_dtype),
        )
        with jax.numpy_dtype_promotion("standard"):
            try:
                jax.eval_shape(_solve_leaves(case.reference, rebuild), *problem)
            except Exception:  # noqa: BLE001 -- lineax refuses: so must we.
                with pytest.raises((TypeError, ValueError)):
                    jax.eval_shape(_solve_leaves(case.solver, rebuild), *problem)
                    pytest.fail(f"{name}: lineax raises at trace time, we do not")
            else:
                problems[name] = problem
    if problems:
        with jax.numpy_dtype_promotion("standard"):
            solve_all = lambda solver: jax.jit(
                lambda ps: {
                    k: _solve_leaves(solver, rebuild)(*p) for k, p in ps.items()
                }
            )(problems)
            expected, out = solve_all(case.reference), solve_all(case.solver)
        for name in problems:
            assert out[name].dtype == expected[name].dtype, name
            np.testing.assert_allclose(
                out[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name
            )


def _solve_leaves(solver, rebuild):
    return lambda leaves, v: lx.linear_solve(rebuild(leaves), v, solver).value
