# Numerics of `UnrolledSmallCholesky` on both kernel paths against LAPACK, at the
# sizes where the code path changes: the native kernel's static instantiations
# (d = 1..8) and its run-time-d loop (9, 16 = max_size); the pure-JAX straight-line
# code (d <= 4) and its rolled loops (d >= 5). (jit, vmap, autodiff, transpose,
# conj, dtypes and errors: `test_contract.py`.)
import jax
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg

from .helpers import (
    backends,
    backward_error,
    check_partial_tiles,
    flag_matrices,
    flag_solves,
    flags,
    partial_tile_sizes,
    solve_fn,
)


_MAX = lxk.UnrolledSmallCholesky().max_size
_PSD = frozenset([lx.positive_semidefinite_tag])
_NSD = frozenset([lx.negative_semidefinite_tag])
# The sizes where the code path changes: each static native instantiation (1-8) and
# the native run-time loop (9, max_size); pure JAX: straight-line code up to 4,
# rolled loops from 5.
_SIZES = {
    "native": (1, 2, 3, 4, 5, 6, 7, 8, 9, _MAX),
    "jax": (1, 4, 5, 9),
}
_SIZES_32 = {"native": (2, 5, 9), "jax": (4, 5)}


def pytest_generate_tests(metafunc):
    if "family_params" in metafunc.fixturenames:
        full = metafunc.config.getoption("--full")
        params = []
        for backend in backends:
            for d in range(1, _MAX + 1) if full else _SIZES[backend]:
                dtypes = [np.float64, np.complex128]
                if full or d in _SIZES_32[backend]:
                    dtypes += [np.float32, np.complex64]
                params += [(backend, d, dtype) for dtype in dtypes]
        ids = [f"{b}-d{d}-{np.dtype(t).name}" for b, d, t in params]
        metafunc.parametrize("family_params", params, ids=ids)


def _families(d, rng, complex_, bits):
    """Hermitian positive definite matrices that stress a Cholesky kernel. In 32
    bits the condition numbers and the diagonal's range are cut to what float32
    holds."""
    out = {}
    m = rng.standard_normal((d, d))
    if complex_:
        m = m + 1j * rng.standard_normal((d, d))
    out["random"] = m @ m.conj().T + np.eye(d)
    q, _ = np.linalg.qr(m)
    for cond in (1e4, 1e8, 1e12) if bits > 32 else (1e2, 1e4):
        out[f"cond_{cond:.0e}"] = (q * np.logspace(0, -np.log10(cond), d)) @ q.conj().T
    # Graded: D A D with D spanning 16 orders of magnitude.
    scales = 10.0 ** (np.linspace(-8, 8, d) if bits > 32 else np.linspace(-4, 4, d))
    out["graded"] = scales[:, None] * out["random"] * scales[None, :]
    big = 150.0 if bits > 32 else 15.0
    out["diagonal_1e+-big"] = np.diag(10.0 ** (big * (-1.0) ** np.arange(d)))
    out = {k: (v + v.conj().T) / 2 for k, v in out.items()}  # exactly Hermitian
    return list(out), np.stack(list(out.values()))


def _not_positive_definite(d, complex_):
    """Matrices that must give RESULTS.singular, never a finite answer: pivots
    exactly zero or negative in floating point, or a NaN/inf read by the kernel."""
    out = {"zero": np.zeros((d, d)), "negative_definite": -np.eye(d)}
    last = np.eye(d)
    last[-1, -1] = 0.0
    out["semidefinite_last"] = last
    last = np.eye(d)
    last[-1, -1] = -1e-300
    out["negative_last"] = last
    nan = 2 * np.eye(d)
    nan[-1, -1] = np.nan
    out["nan_diagonal"] = nan
    if d > 1:
        v = np.ones(d)
        v[1] = 2.0
        out["semidefinite_rank1"] = np.outer(v, v)  # pivots 1, 0 exactly
        indefinite = np.eye(d)
        indefinite[0, 1] = indefinite[1, 0] = 2.0
        out["indefinite"] = indefinite
        inf = 2 * np.eye(d)
        inf[-1, 0] = inf[0, -1] = np.inf
        out["inf_off_diagonal"] = inf
        if complex_:
            w = np.zeros(d, complex)
            w[:2] = [1.0, 1j]
            out["semidefinite_complex"] = np.outer(w, w.conj()) + np.diag(
                np.r_[0.0, 0.0, np.ones(d - 2)]
            )
    return list(out), np.stack(list(out.values()))


def test_families_against_lapack(family_params):
    backend, d, dtype = family_params
    complex_ = np.issubdtype(dtype, np.complexfloating)
    bits = np.finfo(dtype).bits
    rng = np.random.default_rng(d)
    names, matrices = _families(d, rng, complex_, bits)
    bad_names, bad = _not_positive_definite(d, complex_)
    matrices, bad = matrices.astype(dtype), bad.astype(dtype)
    x_true = rng.standard_normal((len(names), d)).astype(dtype)
    vectors = np.einsum("bij,bj->bi", matrices, x_true)
    # The kernel reads the lower triangle only, and only the real part of the
    # diagonal (LAPACK ?potrf, uplo="L"): the rest holds garbage.
    garbage = np.tril(matrices) + np.triu(np.full((d, d), np.nan), 1)
    if complex_:
        garbage = garbage + 5j * np.eye(d)
    garbage = garbage.astype(dtype)
    solver = lxk.UnrolledSmallCholesky(backend=backend)

    def solve_all(garbage, vectors, bad):
        psd = jax.vmap(solve_fn(solver, _PSD, throw=False))
        nsd = jax.vmap(solve_fn(solver, _NSD, throw=False))
        ones = np.ones((len(bad), d), dtype)
        # And op(A) x = b for op = transpose, conj, adjoint, through the states.
        operator = lx.MatrixLinearOperator(garbage[0], _PSD)
        flagged = flag_solves(solver, operator, vectors[0])
        return (
            psd(garbage, vectors),
            nsd(-garbage, vectors),
            psd(bad, ones),
            nsd(-bad, ones),
            flagged,
        )

    (x, r), (x_n, r_n), (x_b, r_b), (x_bn, r_bn), flagged = jax.jit(solve_all)(
        garbage, vectors, bad
    )
    for name, x_op, op_matrix in zip(flags, flagged, flag_matrices(matrices[0])):
        assert np.max(backward_error(op_matrix, x_op, vectors[0])) <= 8 * d, name
    assert np.asarray(x).dtype == dtype
    for result, x_bad in ((r_b, x_b), (r_bn, x_bn)):
        assert np.all(np.asarray(result) == lx.RESULTS.singular._value), bad_names
        assert not np.any(np.all(np.isfinite(np.asarray(x_bad)), axis=1)), bad_names
    assert np.all(np.asarray(r) == lx.RESULTS.successful._value)
    assert np.all(np.asarray(r_n) == lx.RESULTS.successful._value)
    # (-A) x = b  <=>  A (-x) = b, with the same arithmetic.
    np.testing.assert_array_equal(-np.asarray(x_n), x)
    eps = float(np.finfo(dtype).eps)
    for name, a, b, xi, xt in zip(names, matrices, vectors, np.asarray(x), x_true):
        x_lapack = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True), b)
        ours = backward_error(a, xi, b)
        theirs = backward_error(a, x_lapack, b)
        assert ours <= max(10 * theirs, 2 * d), (name, ours, theirs)
        # Forward error within the condition-number bound, like LAPACK's own.
        a, xi, xt, x_lapack = (y.astype(np.complex128) for y in (a, xi, xt, x_lapack))
        err = np.max(np.abs(xi - xt))
        err_lapack = np.max(np.abs(x_lapack - xt))
        bound = 10 * d * np.linalg.cond(a) * eps * np.max(np.abs(xt))
        assert err <= max(10 * err_lapack, bound), (name, err, err_lapack, bound)


@pytest.mark.parametrize("backend", backends)
def test_inf_on_the_diagonal_is_the_limit(backend):
    # +inf on the diagonal is a valid (limiting) positive definite matrix: like
    # LAPACK, the factor has an infinite diagonal entry and x[0] = b[0] / inf = 0.
    a = 2 * np.eye(3)
    a[0, 0] = np.inf
    b = np.ones(3)
    x, result = jax.jit(
        solve_fn(lxk.UnrolledSmallCholesky(backend=backend), _PSD, throw=False)
    )(a, b)
    expected = scipy.linalg.cho_solve(
        scipy.linalg.cho_factor(a, check_finite=False), b, check_finite=False
    )
    assert result == lx.RESULTS.successful._value
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("d", (3, 9))
def test_partial_simd_tiles_and_shared_operators(d):
    # Native: batch sizes leaving a partial last SIMD tile; one matrix with many
    # right-hand sides (factorised once); one right-hand side with many matrices.
    rng = np.random.default_rng(d)
    m = [rng.standard_normal((n, d, d)) for n in partial_tile_sizes]
    matrices = [x @ x.transpose(0, 2, 1) + np.eye(d) for x in m]
    vectors = [rng.standard_normal((n, d)) for n in partial_tile_sizes]
    check_partial_tiles(
        lxk.UnrolledSmallCholesky(backend="native"),
        _PSD,
        matrices,
        vectors,
        rtol=1e-10,
        atol=1e-12,
    )


def test_max_size():
    with pytest.raises(ValueError, match=rf"size {_MAX + 1}.*max_size={_MAX}"):
        lx.linear_solve(
            lx.MatrixLinearOperator(np.eye(_MAX + 1), _PSD),
            np.ones(_MAX + 1),
            lxk.UnrolledSmallCholesky(),
        )
    with pytest.raises(ValueError, match="at least 1"):
        lxk.UnrolledSmallCholesky(max_size=0)
    d = _MAX + 1
    x = lx.linear_solve(
        lx.MatrixLinearOperator(2 * np.eye(d), _PSD),
        np.ones(d),
        lxk.UnrolledSmallCholesky(max_size=d),
    ).value
    np.testing.assert_allclose(x, np.full(d, 0.5), rtol=1e-14)
