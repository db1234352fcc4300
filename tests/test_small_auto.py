import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import pytest

from .helpers import make_matrix, operator_from, random, tol, tree_allclose


def _matrix(key, tags, size, dtype):
    # Random with pivoting needed for small sizes; shifted to keep the condition
    # number small (and the rejection sampling of `make_matrix` short) for large ones.
    if size <= 8:
        return make_matrix(key, tags, size, dtype)
    matrix = random(key, (size, size), dtype)
    if lx.tridiagonal_tag in tags:
        matrix = jnp.triu(jnp.tril(matrix, 1), -1)
    return matrix + 4 * size**0.5 * jnp.eye(size, dtype=dtype)


def _make_operator(key, kind, size, dtype):
    """An operator of one of the kinds `SmallAuto` tells apart, with its tags."""
    if kind == "diagonal":
        diagonal = 1.0 + jnp.abs(random(key, (size,), dtype))
        return lx.DiagonalLinearOperator(diagonal.astype(dtype))
    if kind == "identity":
        return lx.IdentityLinearOperator(jax.ShapeDtypeStruct((size,), dtype))
    if kind == "tridiagonal":
        tags = frozenset({lx.tridiagonal_tag})
        return operator_from(_matrix(key, tags, size, dtype), tags)
    if kind in ("lower", "upper"):
        matrix = random(key, (size, size), dtype) + 4 * size * jnp.eye(
            size, dtype=dtype
        )
        if kind == "lower":
            return lx.MatrixLinearOperator(jnp.tril(matrix), lx.lower_triangular_tag)
        return lx.MatrixLinearOperator(jnp.triu(matrix), lx.upper_triangular_tag)
    if kind in ("psd", "nsd"):
        # Hermitian positive definite; no `symmetric_tag`, which for a complex matrix
        # would claim A^T = A.
        matrix = random(key, (size, size), dtype)
        matrix = matrix @ matrix.T.conj() + jnp.eye(size, dtype=dtype)
        if kind == "psd":
            return lx.MatrixLinearOperator(matrix, lx.positive_semidefinite_tag)
        return lx.MatrixLinearOperator(-matrix, lx.negative_semidefinite_tag)
    if kind == "symmetric":
        # Real symmetric indefinite, eigenvalues of size 1 to 2.
        kq, ke = jr.split(key)
        q, _ = jnp.linalg.qr(jr.normal(kq, (size, size)))
        eigs = jr.uniform(ke, (size,), minval=1, maxval=2) * jnp.where(
            jnp.arange(size) % 2 == 0, 1.0, -1.0
        )
        matrix = (q * eigs[None, :]) @ q.T
        return lx.MatrixLinearOperator(matrix.astype(dtype), lx.symmetric_tag)
    if kind == "dense":
        return lx.MatrixLinearOperator(_matrix(key, frozenset(), size, dtype))
    if kind == "tall":
        return lx.MatrixLinearOperator(random(key, (size + 2, size), dtype))
    if kind == "wide":
        return lx.MatrixLinearOperator(random(key, (size, size + 2), dtype))
    raise ValueError(kind)


# (kind, size, well_posed, max_size, what `select_solver` returns)
_auto = lx.AutoLinearSolver
_dispatch_cases = [
    ("dense", 1, None, 16, _auto),  # lineax counts 1 x 1 operators as diagonal
    ("dense", 2, None, 16, lxk.UnrolledSmallLU),
    ("dense", 5, None, 16, lxk.UnrolledSmallLU),
    ("dense", 5, True, 16, lxk.UnrolledSmallLU),
    ("dense", 5, False, 16, _auto),
    ("symmetric", 5, None, 16, lxk.UnrolledSmallLU),
    ("dense", 16, None, 16, lxk.UnrolledSmallLU),
    ("dense", 17, None, 16, _auto),
    ("dense", 4, None, 4, lxk.UnrolledSmallLU),
    ("dense", 5, None, 4, _auto),
    ("tridiagonal", 5, None, 16, lxk.ScanTridiagonal),
    ("tridiagonal", 5, True, 16, lxk.ScanTridiagonal),
    ("tridiagonal", 40, None, 16, lxk.ScanTridiagonal),
    ("tridiagonal", 5, False, 16, _auto),
    ("diagonal", 5, None, 16, _auto),
    ("identity", 5, None, 16, _auto),
    ("lower", 5, None, 16, lxk.UnrolledSmallTriangular),
    ("upper", 5, True, 16, lxk.UnrolledSmallTriangular),
    ("lower", 17, None, 16, _auto),
    ("upper", 5, False, 16, _auto),
    ("psd", 5, None, 16, lxk.UnrolledSmallCholesky),
    ("nsd", 5, True, 16, lxk.UnrolledSmallCholesky),
    ("psd", 6, None, 6, lxk.UnrolledSmallCholesky),
    ("psd", 7, None, 6, _auto),
    ("psd", 5, False, 16, _auto),
    ("nsd", 17, None, 16, _auto),
    ("tall", 3, None, 16, lxk.UnrolledSmallQR),
    ("wide", 3, None, 16, lxk.UnrolledSmallQR),
    ("tall", 16, None, 4, lxk.UnrolledSmallQR),  # max_size is for square ones
    ("tall", 33, None, 16, _auto),
    ("tall", 3, False, 16, _auto),
]


@pytest.mark.parametrize("kind, size, well_posed, max_size, expected", _dispatch_cases)
def test_dispatch(getkey, kind, size, well_posed, max_size, expected):
    operator = _make_operator(getkey(), kind, size, jnp.float64)
    solver = lxk.SmallAuto(well_posed=well_posed, max_size=max_size)
    chosen = solver.select_solver(operator)
    assert type(chosen) is expected
    if expected is _auto:
        assert chosen == lx.AutoLinearSolver(well_posed=well_posed)
    # The choice is static: no arrays in the token.
    token, _ = solver.init(operator, {})
    assert jax.tree.leaves(token) == []


def test_dispatch_custom_fallback(getkey):
    solver = lxk.SmallAuto(max_size=4, fallback=lx.QR())
    for kind, size in [("dense", 5), ("diagonal", 3), ("psd", 5), ("tall", 33)]:
        operator = _make_operator(getkey(), kind, size, jnp.float64)
        assert solver.select_solver(operator) == lx.QR()
    for kind, expected in [
        ("dense", lxk.UnrolledSmallLU),
        ("psd", lxk.UnrolledSmallCholesky),
        ("lower", lxk.UnrolledSmallTriangular),
        ("tall", lxk.UnrolledSmallQR),
    ]:
        operator = _make_operator(getkey(), kind, 4, jnp.float64)
        assert type(solver.select_solver(operator)) is expected


_square_kinds = (
    "dense",
    "symmetric",
    "tridiagonal",
    "diagonal",
    "identity",
    "lower",
    "upper",
    "psd",
    "nsd",
)


# Where `SmallAuto` picks one of this library's solvers (elsewhere it is
# `lx.AutoLinearSolver` itself): the same solution as `lx.AutoLinearSolver`.
_ours = [
    (kind, size, well_posed)
    for kind, size in [(kind, 3) for kind in _square_kinds] + [("tridiagonal", 20)]
    for well_posed in (None, True)
    if not isinstance(
        lxk.SmallAuto(well_posed=well_posed).select_solver(
            _make_operator(jr.key(0), kind, size, jnp.float64)
        ),
        lx.AutoLinearSolver,
    )
]


@pytest.mark.parametrize("kind, size, well_posed", _ours)
@pytest.mark.parametrize("dtype", (jnp.complex128,))
def test_matches_auto_square(getkey, kind, size, well_posed, dtype):
    operator = _make_operator(getkey(), kind, size, dtype)
    x_true = random(getkey(), (size,), dtype)
    vector = operator.mv(x_true)
    out = lx.linear_solve(operator, vector, lxk.SmallAuto(well_posed=well_posed))
    expected = lx.linear_solve(
        operator, vector, lx.AutoLinearSolver(well_posed=well_posed)
    )
    assert out.result == lx.RESULTS.successful
    t = tol(dtype)
    assert tree_allclose(out.value, x_true, rtol=t, atol=t)
    assert tree_allclose(out.value, expected.value, rtol=t, atol=t)


@pytest.mark.parametrize("kind", ("tall", "wide"))
@pytest.mark.parametrize("well_posed", (None, False))
@pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))
def test_matches_lstsq_nonsquare(getkey, kind, well_posed, dtype):
    operator = _make_operator(getkey(), kind, 4, dtype)
    vector = random(getkey(), (operator.out_size(),), dtype)
    out = lx.linear_solve(operator, vector, lxk.SmallAuto(well_posed=well_posed))
    expected, *_ = jnp.linalg.lstsq(operator.as_matrix(), vector)
    t = tol(dtype)
    assert tree_allclose(out.value, expected, rtol=t, atol=t)


def test_well_posed_true_nonsquare_raises(getkey):
    # Same as `lx.AutoLinearSolver(well_posed=True)`.
    operator = _make_operator(getkey(), "tall", 3, jnp.float64)
    vector = jnp.zeros(operator.out_size())
    with pytest.raises(ValueError, match="non-square"):
        lx.linear_solve(operator, vector, lxk.SmallAuto(well_posed=True))


def test_well_posed_false_singular(getkey):
    # A small, square, singular operator: `UnrolledSmallLU` would give NaNs, so with
    # `well_posed=False` it must not be chosen; the answer is the pseudoinverse one.
    # A zero column gives an exactly zero pivot.
    matrix = random(getkey(), (4, 4), jnp.float64).at[:, 2].set(0)
    operator = lx.MatrixLinearOperator(matrix)
    vector = random(getkey(), (4,), jnp.float64)
    out = lx.linear_solve(operator, vector, lxk.SmallAuto(well_posed=False))
    expected = jnp.linalg.pinv(matrix) @ vector
    assert tree_allclose(out.value, expected, rtol=1e-10, atol=1e-10)
    # ... while the default reports the singular matrix.
    out = lx.linear_solve(operator, vector, lxk.SmallAuto(), throw=False)
    assert out.result == lx.RESULTS.singular


def test_assume_full_rank():
    assert lxk.SmallAuto().assume_full_rank()
    assert lxk.SmallAuto(well_posed=True).assume_full_rank()
    assert not lxk.SmallAuto(well_posed=False).assume_full_rank()
    assert not lxk.SmallAuto(fallback=lx.SVD()).assume_full_rank()
    assert lxk.SmallAuto(fallback=lx.LU()).assume_full_rank()


def test_invalid_max_size():
    with pytest.raises(ValueError, match="max_size"):
        lxk.SmallAuto(max_size=0)


# (`SmallAuto`'s own kernels: `test_contract.py`.)
_delegation_cases = [("dense", 20, None), ("tall", 3, None), ("dense", 4, False)]


def _solve_with_state(solver, state, vector, options):
    solution, result, _ = solver.compute(state, vector, options)
    assert result == lx.RESULTS.successful
    return solution


@pytest.mark.parametrize("kind, size, well_posed", _delegation_cases)
@pytest.mark.parametrize("dtype", (jnp.float64, jnp.complex128))
def test_transpose_conj_delegate(getkey, kind, size, well_posed, dtype):
    operator = _make_operator(getkey(), kind, size, dtype)
    solver = lxk.SmallAuto(well_posed=well_posed)
    chosen = solver.select_solver(operator)
    state = solver.init(operator, {})
    chosen_state = chosen.init(operator, {})
    # Transpose: same as the chosen solver's own transpose.
    vector = random(getkey(), (operator.in_size(),), dtype)
    t_state, t_options = solver.transpose(state, {})
    c_state, c_options = chosen.transpose(chosen_state, {})
    out = _solve_with_state(solver, t_state, vector, t_options)
    assert tree_allclose(out, _solve_with_state(chosen, c_state, vector, c_options))
    # Conj: same as the chosen solver's own conj.
    vector = random(getkey(), (operator.out_size(),), dtype)
    t_state, t_options = solver.conj(state, {})
    c_state, c_options = chosen.conj(chosen_state, {})
    out = _solve_with_state(solver, t_state, vector, t_options)
    assert tree_allclose(out, _solve_with_state(chosen, c_state, vector, c_options))
