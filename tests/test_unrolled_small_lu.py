# Numerics of `UnrolledSmallLU` on both kernel paths against LAPACK, at the sizes
# where the code path changes: the native kernel's static instantiations (d = 1..8)
# and its run-time-d loop (9, 16, 32 = max_size); the pure-JAX straight-line code
# (d <= 4) and its rolled loop (d >= 5). (jit, vmap, autodiff, transpose, conj,
# dtypes and errors: `test_contract.py`.)
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest

from .helpers import (
    backends,
    backward_error,
    check_partial_tiles,
    flag_matrices,
    flag_solves,
    flags,
    gepp_tie_matrix,
    partial_tile_sizes,
    solve_fn,
)


_MAX = lxk.UnrolledSmallLU().max_size
# The sizes where the code path changes: each static native instantiation (1-8) and
# the native run-time loop (9, 16, max_size); the pure-JAX straight-line code (the
# same generator at every size up to 4) and its rolled loop (5 and up).
_SIZES = {
    "native": (1, 2, 3, 4, 5, 6, 7, 8, 9, 16, _MAX),
    "jax": (1, 2, 3, 4, 5, 9, _MAX),
}
_SIZES_32 = (2, 5, 9)


def _params(full: bool):
    for backend in backends:
        for d in range(1, _MAX + 1) if full else _SIZES[backend]:
            for dtype in (np.float64, np.complex128):
                yield backend, d, dtype
            if full or d in _SIZES_32:
                for dtype in (np.float32, np.complex64):
                    yield backend, d, dtype


def pytest_generate_tests(metafunc):
    if "family_params" in metafunc.fixturenames:
        full = metafunc.config.getoption("--full")
        params = list(_params(full))
        ids = [f"{b}-d{d}-{np.dtype(t).name}" for b, d, t in params]
        metafunc.parametrize("family_params", params, ids=ids)


def _families(d, rng, dtype):
    """Nonsingular matrices that break naive kernels, as `(names, (batch, d, d))`."""
    out = {}
    big = 150.0 if np.finfo(dtype).bits > 32 else 15.0
    out["random"] = rng.standard_normal((d, d))
    out["permutation"] = np.eye(d)[rng.permutation(d)]
    zero_lead = rng.standard_normal((d, d))
    zero_lead[0, 0] = 0.0 if d > 1 else 2.0  # needs a row swap at step 0
    out["zero_leading_pivot"] = zero_lead
    # Every leading principal minor is zero: unpivoted LU divides by zero at once.
    out["anti_diagonal"] = np.fliplr(np.eye(d)) * (1.0 + np.arange(d))
    scaled = rng.standard_normal((d, d)) + d * np.eye(d)
    scales = 10.0 ** (big * np.where(np.arange(d) % 2 == 0, 1.0, -1.0))
    out["rows_1e+-big"] = scales[:, None] * scaled
    u, s, vt = np.linalg.svd(rng.standard_normal((d, d)))
    s[-1] = s[0] * (1e-10 if np.finfo(dtype).bits > 32 else 1e-4)
    out["nearly_singular"] = (u * s) @ vt
    matrices = np.stack(list(out.values()))
    if np.issubdtype(dtype, np.complexfloating):
        # A random phase per entry keeps the structure (zeros, scales) of each.
        matrices = matrices * np.exp(2j * np.pi * rng.random(matrices.shape))
    return list(out), matrices.astype(dtype)


def _singular(d, rng, dtype):
    """Exactly singular matrices, and matrices with a NaN or an inf: an infinite
    entry where it becomes the first pivot, which elimination alone would not carry
    to the solution (it only zeroes multipliers)."""
    out = {"zero": np.zeros((d, d))}
    if d > 1:
        # (Exactly singular in floating point: the zeros stay exact zeros.)
        zero_row = rng.standard_normal((d, d)) + d * np.eye(d)
        zero_row[d // 2] = 0.0
        out["zero_row"] = zero_row
        zero_column = rng.standard_normal((d, d)) + d * np.eye(d)
        zero_column[:, d // 2] = 0.0
        out["zero_column"] = zero_column
    for name, bad in (("inf_pivot", np.inf), ("nan", np.nan)):
        m = np.eye(d) + 0.1 * rng.standard_normal((d, d))
        m[min(1, d - 1), 0] = bad
        out[name] = m
    return list(out), np.stack(list(out.values())).astype(dtype)


def test_families_against_lapack(family_params):
    backend, d, dtype = family_params
    rng = np.random.default_rng(d)
    names, matrices = _families(d, rng, dtype)
    bad_names, bad = _singular(d, rng, dtype)
    ties = (
        [gepp_tie_matrix(d, at_end, dtype) for at_end in (False, True)] if d > 1 else []
    )
    x_true = rng.standard_normal((len(names), d)).astype(dtype)
    vectors = np.einsum("bij,bj->bi", matrices, x_true)
    all_matrices = np.concatenate([matrices, bad] + [t[0][None] for t in ties])
    all_vectors = np.concatenate(
        [vectors, np.ones((len(bad_names), d), dtype)] + [t[1][None] for t in ties]
    )
    solver = lxk.UnrolledSmallLU(backend=backend)

    @jax.jit
    def solve_all(matrices, vectors):
        solve = jax.vmap(solve_fn(solver, frozenset(), throw=False))
        # And op(A) x = b for op = transpose, conj, adjoint, through the states.
        operator = lx.MatrixLinearOperator(matrices[0])
        return solve(matrices, vectors), flag_solves(solver, operator, vectors[0])

    (x, result), flagged = solve_all(all_matrices, all_vectors)
    x, result = np.asarray(x), np.asarray(result)
    for name, x_op, op_matrix in zip(flags, flagged, flag_matrices(matrices[0])):
        assert np.max(backward_error(op_matrix, x_op, vectors[0])) <= 8 * d, name
    assert x.dtype == dtype
    good, nbad = len(names), len(bad_names)
    # Singular and non-finite matrices: flagged, never a finite answer.
    assert np.all(result[good : good + nbad] == lx.RESULTS.singular._value), bad_names
    assert not np.any(np.all(np.isfinite(x[good : good + nbad]), axis=1))
    # Ties in pivot magnitude: LAPACK's first-max rule makes one entry exact.
    for (matrix, vector, i, exact), xi in zip(ties, x[good + nbad :]):
        assert xi[i] == exact
        assert np.max(backward_error(matrix, xi, vector)) <= 8 * d
    assert np.all(result[:good] == lx.RESULTS.successful._value)
    x = x[:good]
    eps = np.finfo(dtype).eps
    x_lapack = np.linalg.solve(matrices, vectors[..., None])[..., 0]
    # Normwise backward error: a small multiple of d * eps with partial pivoting.
    normwise = backward_error(matrices, x, vectors)
    assert np.all(normwise <= 8 * d), dict(zip(names, normwise))
    a, b, xc, xl = (y.astype(np.complex128) for y in (matrices, vectors, x, x_lapack))
    for k, name in enumerate(names):
        # Componentwise it can be larger (rows scaled by 1e+-150); there it must match
        # LAPACK's own. (In 32 bits LAPACK's is far below what partial pivoting
        # guarantees on the row-scaled family; the normwise and forward errors are
        # checked there instead.)
        def componentwise(y):
            bound = np.abs(a[k]) @ np.abs(y) + np.abs(b[k])
            return np.max(np.abs(a[k] @ y - b[k]) / np.where(bound == 0, 1, bound))

        if np.finfo(dtype).bits > 32 or name != "rows_1e+-big":
            assert componentwise(xc[k]) <= max(8 * d * eps, 4 * componentwise(xl[k])), (
                name
            )
        # Forward error: within the condition-number bound, like LAPACK's own.
        err = np.max(np.abs(xc[k] - x_true[k]))
        err_lapack = np.max(np.abs(xl[k] - x_true[k]))
        bound = 10 * d * np.linalg.cond(a[k]) * eps * np.max(np.abs(xc[k]))
        assert err <= max(10 * err_lapack, bound), (name, err, err_lapack, bound)


@pytest.mark.parametrize("d", (3, 9))
@pytest.mark.parametrize(
    "dtype", (np.float32, np.complex128), ids=lambda t: np.dtype(t).name
)
def test_partial_simd_tiles_and_shared_operators(d, dtype):
    # Native: batch sizes that leave a partial last SIMD tile (for 2 to 16 lanes),
    # and the two shared patterns: one matrix with many right-hand sides (factorised
    # once), one right-hand side with many matrices. Against LAPACK.
    rng = np.random.default_rng(d)
    matrices = [
        (rng.standard_normal((n, d, d)) + d * np.eye(d)).astype(dtype)
        for n in partial_tile_sizes
    ]
    vectors = [rng.standard_normal((n, d)).astype(dtype) for n in partial_tile_sizes]
    rtol = 1e-4 if np.finfo(dtype).bits <= 32 else 1e-11
    check_partial_tiles(
        lxk.UnrolledSmallLU(backend="native"),
        frozenset(),
        matrices,
        vectors,
        rtol=rtol,
        atol=rtol,
    )


def test_float32_forward_error_needs_pivoting():
    # Unpivoted elimination on random float32 matrices gives forward errors of order
    # 0.1; partial pivoting keeps them near LAPACK's.
    rng = np.random.default_rng(0)
    matrices = rng.standard_normal((4096, 3, 3)).astype(np.float32)
    x_true = rng.standard_normal((4096, 3)).astype(np.float32)
    vectors = np.einsum("bij,bj->bi", matrices, x_true)
    for backend in backends:
        solve = solve_fn(lxk.UnrolledSmallLU(backend=backend), frozenset(), throw=False)
        x, _ = jax.jit(jax.vmap(solve))(matrices, vectors)
        x_lapack = np.linalg.solve(matrices, vectors[..., None])[..., 0]
        err = np.abs(np.asarray(x) - x_true).max(axis=1)
        err_lapack = np.abs(x_lapack - x_true).max(axis=1)
        assert np.median(err) <= 2 * np.median(err_lapack) + 1e-6, backend
        assert np.max(err) <= 10 * np.max(err_lapack) + 1e-5, backend


def test_batched_rhs_factorises_once():
    # vmap over the vector only: no factorisation (no pivot search) inside the
    # batched pure-JAX computation.
    matrix = jnp.eye(4) * 4 + 0.1
    operator = lx.MatrixLinearOperator(matrix)
    solver = lxk.UnrolledSmallLU(backend="jax")
    state = solver.init(operator, {})
    solve = lambda v: lx.linear_solve(operator, v, solver, state=state).value
    assert "abs" not in str(jax.make_jaxpr(jax.vmap(solve))(jnp.ones((100, 4))))


def test_max_size():
    big = _MAX + 1
    with pytest.raises(ValueError, match=rf"size {big}.*max_size={_MAX}.*lx.LU"):
        lx.linear_solve(
            lx.MatrixLinearOperator(jnp.eye(big)), jnp.ones(big), lxk.UnrolledSmallLU()
        )
    with pytest.raises(ValueError, match="at least 1"):
        lxk.UnrolledSmallLU(max_size=0)
    matrix = jnp.eye(big) * 2.0 + jnp.diag(jnp.ones(big - 1), 1)
    x = lx.linear_solve(
        lx.MatrixLinearOperator(matrix),
        jnp.ones(big),
        lxk.UnrolledSmallLU(max_size=big),
    ).value
    np.testing.assert_allclose(x, jnp.linalg.solve(matrix, jnp.ones(big)), rtol=1e-12)
