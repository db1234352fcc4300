# Numerics of `ScanTridiagonal` on both kernel paths, pivoted (LAPACK `?gttrf`) and
# Thomas, against LAPACK (`scipy.linalg.solve_banded`): n = 1, 2, 3 (the edges of
# the elimination), 10 and 51, one system at a time (the native two-ended path) and
# in batches (SIMD tiles, full and partial), and one long system. (jit, vmap of any
# subset of the bands, autodiff, transpose, conj, ties, dtypes and errors:
# `test_contract.py`.)
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest
import scipy.linalg

from .helpers import backends, backward_error, flag_matrices, flag_solves, flags


_SIZES = (1, 2, 3, 10, 51)
_BATCH = 19  # Two full tiles and a partial one, for every dtype and ISA.


def _bands_to_matrix(diagonal, lower, upper):
    return np.diag(diagonal) + np.diag(lower, -1) + np.diag(upper, 1)


def _families(n, rng, dtype, pivoting):
    """`(names, [(diagonal, lower, upper)])` of nonsingular tridiagonal matrices; the
    Thomas algorithm gets only diagonally dominant ones."""

    def rand(*shape):
        x = rng.standard_normal(shape)
        if np.issubdtype(dtype, np.complexfloating):
            x = x + 1j * rng.standard_normal(shape)
        return x

    out = {"dominant": (rand(n) + 4, rand(n - 1), rand(n - 1))}
    if pivoting:
        while True:
            general = (rand(n), rand(n - 1), rand(n - 1))
            if np.linalg.cond(_bands_to_matrix(*general)) < 1e3:
                break
        out["general"] = general
        if n % 2 == 0:
            # Nonsingular (det = +-prod(lower * upper) over pairs), and impossible
            # without row swaps.
            lower, upper = rand(n - 1), rand(n - 1)
            out["zero_diagonal"] = (
                np.zeros(n),
                lower + np.sign(lower.real),
                upper + np.sign(upper.real),
            )
        # Rows scaled by 1e-6 ... 1e6.
        d, lo, up = rand(n) + 4, rand(n - 1), rand(n - 1)
        scale = rng.permutation(np.logspace(-6, 6, n))
        out["badly_scaled"] = (d * scale, lo * scale[1:], up * scale[:-1])
    names = list(out)
    return names, [tuple(np.asarray(x, dtype) for x in out[k]) for k in names]


def _nonfinite(n, dtype):
    """Bands with a NaN, or an inf in the lower band (where it becomes a pivot, and
    zeroes a multiplier rather than spreading)."""
    out = []
    for bad in (np.nan, np.inf):
        d, lo, up = 2 + np.arange(n, dtype=float), np.ones(n - 1), np.ones(n - 1)
        if n > 1:
            lo[0] = bad
        else:
            d[0] = np.nan  # (n = 1: x = b / inf = 0 is the limit)
        out.append((d, lo, up))
    return [tuple(np.asarray(x, dtype) for x in bands) for bands in out]


_PARAMS = [
    (backend, pivoting, dtype)
    for backend in backends
    for pivoting, dtype in [
        (True, np.float64),
        (True, np.complex128),
        (False, np.float64),
        (False, np.complex128),
        (True, np.float32),
        (True, np.complex64),
    ]
]


@pytest.mark.parametrize(
    "backend, pivoting, dtype",
    _PARAMS,
    ids=[
        f"{b}-{'pivoting' if p else 'thomas'}-{np.dtype(t).name}" for b, p, t in _PARAMS
    ],
)
def test_families_against_lapack(backend, pivoting, dtype):
    rng = np.random.default_rng(0)
    solver = lxk.ScanTridiagonal(pivoting=pivoting, backend=backend)

    def solve(bands, vector):
        sol = lx.linear_solve(
            lx.TridiagonalLinearOperator(*bands), vector, solver, throw=False
        )
        return sol.value, sol.result._value

    problems = {}
    for n in _SIZES:
        names, families = _families(n, rng, dtype, pivoting)
        singular = [tuple(np.zeros(m, dtype) for m in (n, n - 1, n - 1))]
        vectors = rng.standard_normal((len(families), n)).astype(dtype)
        # A batch of the families, each broadcast over the batch with its own
        # right-hand sides, to reach a partial SIMD tile.
        batch_vectors = rng.standard_normal((len(families), _BATCH, n)).astype(dtype)
        problems[n] = (names, families, singular, vectors, batch_vectors)

    def solve_all(problems):
        out = {}
        for n, (_, families, singular, vectors, batch_vectors) in problems.items():
            one = [solve(f, v) for f, v in zip(families, vectors)]
            batched = [
                jax.vmap(solve)(
                    tuple(jnp.broadcast_to(x, (_BATCH,) + x.shape) for x in f), v
                )
                for f, v in zip(families, batch_vectors)
            ]
            bad = [solve(s, jnp.ones(n, dtype)) for s in singular]
            # And op(A) x = b for op = transpose, conj, adjoint, through the states
            # (on the family that needs pivoting most: the last).
            operator = lx.TridiagonalLinearOperator(*families[-1])
            flagged = flag_solves(solver, operator, vectors[-1])
            out[n] = (one, batched, bad, flagged)
        return out

    out = jax.jit(lambda: solve_all(problems))()
    eps = np.finfo(dtype).eps
    for n, (names, families, singular, vectors, batch_vectors) in problems.items():
        one, batched, bad, flagged = out[n]
        for name, x_op, op_matrix in zip(
            flags, flagged, flag_matrices(_bands_to_matrix(*families[-1]))
        ):
            assert backward_error(op_matrix, x_op, vectors[-1]) <= 10 * n, (n, name)
        for x, result in bad:
            assert result == lx.RESULTS.singular._value, n
            assert not np.all(np.isfinite(x)), n
        for name, bands, v, bv, (x, r), (bx, br) in zip(
            names, families, vectors, batch_vectors, one, batched
        ):
            assert np.asarray(x).dtype == dtype
            assert r == lx.RESULTS.successful._value and np.all(br == r), (n, name)
            matrix = _bands_to_matrix(*bands)
            packed = np.zeros((3, n), dtype)
            packed[0, 1:], packed[1], packed[2, :-1] = bands[2], bands[0], bands[1]
            expected = scipy.linalg.solve_banded((1, 1), packed, v)
            # Backward stable (pivoted; the Thomas algorithm on dominant matrices),
            # so forward error within cond(A) times a few eps of LAPACK's solution.
            assert backward_error(matrix, x, v) <= 10 * n, (n, name)
            assert np.all(backward_error(matrix[None], bx, bv) <= 10 * n), (n, name)
            cond = np.linalg.cond(matrix.astype(np.complex128))
            err = np.max(np.abs(np.asarray(x) - expected)) / np.max(np.abs(expected))
            assert err <= 100 * n * cond * eps, (n, name, err)


@pytest.mark.parametrize("backend", backends)
def test_nonfinite_input_is_singular(backend):
    # Never a finite answer from non-finite input, at every size, pivoted or not,
    # alone and in a batch.
    def solve(bands, vector, pivoting):
        solver = lxk.ScanTridiagonal(pivoting=pivoting, backend=backend)
        operator = lx.TridiagonalLinearOperator(*bands)
        sol = lx.linear_solve(operator, vector, solver, throw=False)
        return sol.value, sol.result._value

    problems = [
        (n, pivoting, bands)
        for n in _SIZES
        for pivoting in (True, False)
        for bands in _nonfinite(n, np.float64)
    ]

    @jax.jit
    def solve_all():
        out = []
        for n, pivoting, bands in problems:
            bands = tuple(jnp.asarray(x) for x in bands)
            batched = tuple(jnp.stack([x] * 3) for x in bands)
            one = solve(bands, jnp.ones(n), pivoting)
            many = jax.vmap(lambda b: solve(b, jnp.ones(n), pivoting))(batched)
            out.append((one, many))
        return out

    for (n, pivoting, _), ((x, r), (bx, br)) in zip(problems, solve_all()):
        assert r == lx.RESULTS.singular._value, (n, pivoting)
        assert np.all(br == lx.RESULTS.singular._value), (n, pivoting)
        assert not np.all(np.isfinite(x)) and not np.any(
            np.all(np.isfinite(bx), axis=1)
        )


@pytest.mark.parametrize("pivoting", (True, False))
def test_long_single_system(pivoting):
    # The native single-system kernel eliminates from both ends, meeting in the
    # middle: one long system of each parity, against LAPACK and pure JAX.
    rng = np.random.default_rng(1)
    for n in (1000, 1001):
        diagonal = rng.standard_normal(n) + (0 if pivoting else 4)
        lower, upper = rng.standard_normal((2, n - 1))
        vector = rng.standard_normal(n)
        operator = lx.TridiagonalLinearOperator(diagonal, lower, upper)
        xs = [
            lx.linear_solve(
                operator,
                vector,
                lxk.ScanTridiagonal(pivoting=pivoting, backend=b),
                throw=False,
            ).value
            for b in backends
        ]
        packed = np.zeros((3, n))
        packed[0, 1:], packed[1], packed[2, :-1] = upper, diagonal, lower
        expected = scipy.linalg.solve_banded((1, 1), packed, vector)
        cond = np.linalg.cond(np.asarray(operator.as_matrix()))
        for x in xs:
            err = np.max(np.abs(np.asarray(x) - expected)) / np.max(np.abs(expected))
            assert err < 100 * cond * np.finfo(np.float64).eps


def test_zero_diagonal_needs_pivoting():
    # The Thomas algorithm meets a zero pivot at once: RESULTS.singular, never a
    # finite wrong answer; with pivoting the same matrix is solved.
    n = 6
    operator = lx.TridiagonalLinearOperator(
        jnp.zeros(n), jnp.ones(n - 1), jnp.ones(n - 1)
    )
    vector = jnp.arange(1.0, n + 1)
    for backend in backends:
        sol = lx.linear_solve(
            operator,
            vector,
            lxk.ScanTridiagonal(pivoting=False, backend=backend),
            throw=False,
        )
        assert sol.result == lx.RESULTS.singular
        x = lx.linear_solve(
            operator, vector, lxk.ScanTridiagonal(backend=backend)
        ).value
        np.testing.assert_allclose(
            x, np.linalg.solve(operator.as_matrix(), vector), rtol=1e-13
        )


def test_options():
    with pytest.raises((ValueError, TypeError), match="pivoting"):
        lxk.ScanTridiagonal(pivoting=1)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="unroll"):
        lxk.ScanTridiagonal(unroll=0)
    n = 9
    operator = lx.TridiagonalLinearOperator(
        jnp.full(n, 4.0), jnp.ones(n - 1), jnp.ones(n - 1)
    )
    vector = jnp.arange(1.0, n + 1)
    x = lx.linear_solve(
        operator, vector, lxk.ScanTridiagonal(unroll=3, backend="jax")
    ).value
    np.testing.assert_allclose(
        x, np.linalg.solve(operator.as_matrix(), vector), rtol=1e-13
    )
