import dataclasses
import itertools as it
from typing import Any

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import numpy as np


# Marker tags (not lineax tags) for the structures that have no lineax tag: a matrix
# made with one of them has that sparsity pattern, and `operator_from` builds the
# matching `lxk` operator.
periodic_tridiagonal_tag = "lxk.periodic_tridiagonal"
block_tridiagonal_tag = "lxk.block_tridiagonal(k=2)"
_BLOCK_SIZE = 2
banded_tag = "lxk.banded(lower=2, upper=1)"
_BANDS = (2, 1)

# The kernel paths of a solver with a `backend` field.
backends = ("native", "jax")

dtypes = (jnp.float32, jnp.float64, jnp.complex64, jnp.complex128)
# Element types that no solver supports: each must raise at trace time.
unsupported_dtypes = (jnp.float16, jnp.bfloat16, jnp.int32)


@dataclasses.dataclass(frozen=True)
class Case:
    """One solver on one kernel path, for the operators that `tags` describe, and the
    lineax solver whose behaviour it must reproduce."""

    solver: lx.AbstractLinearSolver
    tags: frozenset
    reference: lx.AbstractLinearSolver
    # A wrongly structured operator of size 3, which `init` must reject with a
    # `ValueError` naming the solver; `None` where every operator is accepted.
    wrong: Any = None

    @property
    def id(self) -> str:
        # E.g. "ScanTridiagonal.pivoting_False-native-tridiagonal" (characters
        # that `pytest -k` accepts).
        name = type(self.solver).__name__
        for f in dataclasses.fields(self.solver):
            value = getattr(self.solver, f.name)
            if f.name != "backend" and value != f.default:
                name += f".{f.name}_{value}"
        backend = getattr(self.solver, "backend", None)
        tags = "+".join(
            sorted(str(t).split("_tag")[0].split(".")[-1] for t in self.tags)
        )
        return "-".join(x for x in (name, backend, tags) if x)

    @property
    def name(self) -> str:
        return type(self.solver).__name__

    def matrix(self, key, size, dtype):
        """A random well-conditioned matrix for this case (diagonally dominant for
        the Thomas algorithm, which is only stable there)."""
        dominant = getattr(self.solver, "pivoting", True) is False
        return make_matrix(key, self.tags, size, dtype, dominant=dominant)


def _on_each_backend(cls, **kwargs) -> list:
    """`cls(**kwargs)` on every kernel path: once per backend if `cls` has a `backend`
    field, else once. (So a solver that gains `backend=` is tested on both paths with
    no change here.) `SmallAuto` runs on its default path only: it hands `backend` to
    the solvers it picks, whose rows cover both paths."""
    if "backend" not in kwargs and "backend" in {
        f.name for f in dataclasses.fields(cls)
    }:
        return [cls(**kwargs, backend=b) for b in backends]
    return [cls(**kwargs)]


_AUTO = {"backend": "auto"}
_dense = lambda: lx.MatrixLinearOperator(jnp.eye(3))
_nonsquare = lambda: lx.MatrixLinearOperator(jnp.ones((3, 2)))

# Every solver of the library, on every kernel path: `test_contract.py` runs the
# lineax solver contract over this list. Adding a solver takes one line here.
# (solver class, keyword arguments, tags, reference solver from lineax, wrong operator)
_SOLVERS = [
    (lxk.UnrolledSmallLU, {}, frozenset(), lx.LU(), _nonsquare),
    (lxk.SmallAuto, _AUTO, frozenset(), lx.LU(), None),
    (
        lxk.ScanTridiagonal,
        {},
        frozenset([lx.tridiagonal_tag]),
        lx.Tridiagonal(),
        _dense,
    ),
    (
        lxk.ScanTridiagonal,
        {"pivoting": False},
        frozenset([lx.tridiagonal_tag]),
        lx.Tridiagonal(),
        _dense,
    ),
    (lxk.SmallAuto, _AUTO, frozenset([lx.tridiagonal_tag]), lx.Tridiagonal(), None),
    (
        lxk.UnrolledSmallCholesky,
        {},
        frozenset([lx.positive_semidefinite_tag]),
        lx.Cholesky(),
        _dense,
    ),
    (
        lxk.UnrolledSmallCholesky,
        {},
        frozenset([lx.negative_semidefinite_tag]),
        lx.Cholesky(),
        _dense,
    ),
    (
        lxk.SmallAuto,
        _AUTO,
        frozenset([lx.positive_semidefinite_tag]),
        lx.Cholesky(),
        None,
    ),
    (
        lxk.UnrolledSmallTriangular,
        {},
        frozenset([lx.lower_triangular_tag]),
        lx.Triangular(),
        _dense,
    ),
    (
        lxk.UnrolledSmallTriangular,
        {},
        frozenset([lx.upper_triangular_tag, lx.unit_diagonal_tag]),
        lx.Triangular(),
        _dense,
    ),
    (lxk.SmallAuto, _AUTO, frozenset([lx.upper_triangular_tag]), lx.Triangular(), None),
    (
        lxk.PeriodicTridiagonal,
        {},
        frozenset([periodic_tridiagonal_tag]),
        lx.LU(),
        _dense,
    ),
    (lxk.BlockTridiagonal, {}, frozenset([block_tridiagonal_tag]), lx.LU(), _dense),
    (lxk.Banded, {}, frozenset([banded_tag]), lx.LU(), _dense),
    # Square operators here; tall and wide ones in test_unrolled_small_qr.py.
    (lxk.UnrolledSmallQR, {}, frozenset(), lx.QR(), None),
]
cases = [
    Case(solver, tags, reference, wrong)
    for cls, kwargs, tags, reference, wrong in _SOLVERS
    for solver in _on_each_backend(cls, **kwargs)
]


def tol(dtype):
    """A forward-error tolerance for well-conditioned (cond <= ~100) problems."""
    return 1e-4 if jnp.finfo(dtype).bits <= 32 else 1e-11


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    # With tolerances `eqx.tree_equal` returns a JAX bool, not `True`.
    return bool(eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol))


def random(key, shape, dtype):
    if jnp.issubdtype(dtype, jnp.complexfloating):
        kr, ki = jr.split(key)
        real = jr.normal(kr, shape, dtype=jnp.finfo(dtype).dtype)
        imag = jr.normal(ki, shape, dtype=jnp.finfo(dtype).dtype)
        return lax.complex(real, imag).astype(dtype)
    return jr.normal(key, shape, dtype=dtype)


def structure_mask(tags, size):
    """The entries that a matrix with the structure of `tags` may have nonzero (the
    diagonal excluded under `lx.unit_diagonal_tag`), as a boolean NumPy array."""
    i, j = np.indices((size, size))
    mask = np.ones((size, size), bool)
    if lx.tridiagonal_tag in tags:
        mask &= np.abs(i - j) <= 1
    if lx.lower_triangular_tag in tags:
        mask &= i >= j
    if lx.upper_triangular_tag in tags:
        mask &= i <= j
    if lx.unit_diagonal_tag in tags:
        mask &= i != j
    if periodic_tridiagonal_tag in tags:
        mask &= (np.abs(i - j) <= 1) | (np.abs(i - j) == size - 1)
    if block_tridiagonal_tag in tags:
        mask &= np.abs(i // _BLOCK_SIZE - j // _BLOCK_SIZE) <= 1
    if banded_tag in tags:
        lower, upper = _BANDS
        mask &= (i - j <= lower) & (j - i <= upper)
    return mask


def make_matrix(key, tags, size, dtype, *, max_cond=100.0, dominant=False):
    """A random matrix with the structure that `tags` promise, with condition number
    at most `max_cond` (resampled until it is). Positive (negative) semidefinite
    means Hermitian positive (negative) definite; triangular matrices get a diagonal
    shifted away from zero (all ones with `unit_diagonal_tag`); `dominant` makes it
    diagonally dominant."""
    while True:
        key, subkey = jr.split(key)
        matrix = random(subkey, (size, size), dtype)
        eye = jnp.eye(size, dtype=dtype)
        if lx.positive_semidefinite_tag in tags or lx.negative_semidefinite_tag in tags:
            matrix = matrix @ matrix.T.conj() / size + eye / 2
            if lx.negative_semidefinite_tag in tags:
                matrix = -matrix
        if lx.lower_triangular_tag in tags or lx.upper_triangular_tag in tags:
            matrix = matrix / size**0.5 + 2 * eye
        if dominant:
            matrix = matrix + 4 * eye
        matrix = jnp.where(structure_mask(tags, size), matrix, 0)
        if lx.unit_diagonal_tag in tags:
            matrix = matrix + eye
        if np.linalg.cond(np.asarray(matrix, dtype=np.complex128)) <= max_cond:
            return matrix


def perturb(key, matrix, tags, scale=0.01):
    """`matrix` plus a small random perturbation with the same structure (Hermitian
    for definite matrices): a nearby matrix that keeps every property `tags`
    promise, so that leaves of nearby operators may be mixed."""
    size = matrix.shape[0]
    delta = scale * random(key, matrix.shape, matrix.dtype)
    delta = jnp.where(structure_mask(tags, size), delta, 0)
    if lx.positive_semidefinite_tag in tags or lx.negative_semidefinite_tag in tags:
        delta = (delta + delta.T.conj()) / 2
    return matrix + delta


def operator_from(matrix, tags):
    if periodic_tridiagonal_tag in tags:
        # Exact for size >= 3 (below that, entries of the ring coincide).
        size = matrix.shape[0]
        i = np.arange(size)
        return lxk.PeriodicTridiagonalLinearOperator(
            jnp.diag(matrix), matrix[i, (i - 1) % size], matrix[i, (i + 1) % size]
        )
    if block_tridiagonal_tag in tags:
        k = _BLOCK_SIZE
        n = matrix.shape[0] // k
        blocks = matrix.reshape(n, k, n, k)
        i = np.arange(n)
        return lxk.BlockTridiagonalLinearOperator(
            blocks[i, :, i, :], blocks[i[1:], :, i[:-1], :], blocks[i[:-1], :, i[1:], :]
        )
    if banded_tag in tags:
        return lxk.BandedLinearOperator.from_matrix(matrix, *_BANDS)
    if lx.tridiagonal_tag in tags:
        return lx.TridiagonalLinearOperator(
            jnp.diag(matrix), jnp.diag(matrix, -1), jnp.diag(matrix, 1)
        )
    return lx.MatrixLinearOperator(matrix, tags)


def operator_leaves(matrix, tags):
    """The array leaves of `operator_from(matrix, tags)` and a function rebuilding the
    operator from (possibly batched) leaves."""
    leaves, treedef = jax.tree.flatten(operator_from(matrix, tags))
    return leaves, lambda new: jax.tree.unflatten(treedef, new)


def leaf_subsets(num_leaves):
    """Every nonempty subset of `range(num_leaves)`, as tuples."""
    return [
        s
        for r in range(1, num_leaves + 1)
        for s in it.combinations(range(num_leaves), r)
    ]


def solve_fn(solver, tags=None, *, throw=True):
    """`(operator or matrix, vector) -> (value, result)`; with `tags`, the first
    argument is a matrix, made into an operator inside (so that it may be vmapped)."""

    def solve(a, vector):
        operator = a if tags is None else operator_from(a, tags)
        sol = lx.linear_solve(operator, vector, solver, throw=throw)
        return sol.value, sol.result._value

    return solve


def backward_error(matrix, x, b):
    """Normwise backward error of `x` for `A x = b`, relative to machine epsilon of
    `x`'s dtype, computed in complex128. Batched over leading axes."""
    eps = np.finfo(np.asarray(x).dtype).eps
    a, x, b = (np.asarray(y).astype(np.complex128) for y in (matrix, x, b))
    residual = np.abs(np.einsum("...ij,...j->...i", a, x) - b).max(axis=-1)
    scale = np.abs(a).sum(axis=-1).max(axis=-1) * np.abs(x).max(axis=-1) + np.abs(
        b
    ).max(axis=-1)
    return residual / np.where(scale == 0, 1, scale) / eps


def gepp_tie_matrix(d, at_end, dtype):
    """A `d x d` matrix whose first pivot column holds a tie in magnitude (1 and -1),
    and the right-hand side, such that LAPACK's rule (the first of the largest, in
    `?getrf`; no swap on ties, in `?gttrf`) makes one entry of the solution come out
    exact in any rounding (division or reciprocal, with or without FMA), and the
    other pivot does not: the 2 x 2 block `[[1, 0], [-1, 3]]` (tie in its first
    column), placed at the top left (`at_end=False`) or bottom right of an identity.
    With pivot 1 the solution's entry is `x0 = r0 / 1 = r0` exactly; with pivot -1 it
    is `(r1 - 3 * x1) / -1`, which rounds differently (see `test_ties`). Returns
    `(matrix, vector, index of the exact entry, its exact value)`."""
    a = np.eye(d)
    i = d - 2 if at_end else 0
    a[i : i + 2, i : i + 2] = [[1.0, 0.0], [-1.0, 3.0]]
    b = np.arange(1.0, d + 1.0)
    b[i : i + 2] = [0.1, 0.7]
    return a.astype(dtype), b.astype(dtype), i, np.asarray(0.1, dtype)


# The solves of `flag_solves`, in order.
flags = ("transpose", "conj", "adjoint")


def flag_solves(solver, operator, vector):
    """Solves with `op(A)` for op in `flags` (transpose, conj and both), through the
    solver's own `transpose` and `conj` states (as autodiff and
    `jax.linear_transpose` use them). Returns the solutions, in the order of
    `flags`; compare with `flag_matrices`."""
    vector = jnp.asarray(vector)
    state = solver.init(operator, {})
    state_t, options_t = solver.transpose(state, {})
    state_c, options_c = solver.conj(state, {})
    state_h, options_h = solver.conj(state_t, options_t)
    states = ((state_t, options_t), (state_c, options_c), (state_h, options_h))
    return [solver.compute(s, vector, o)[0] for s, o in states]


def flag_matrices(matrix):
    """`op(matrix)` for op in `flags`."""
    matrix = np.asarray(matrix)
    return matrix.T, matrix.conj(), matrix.T.conj()


# Batch sizes that leave a partial last SIMD tile for 2 to 16 lanes.
partial_tile_sizes = (1, 7, 9, 17, 33)


def check_partial_tiles(solver, tags, matrices, vectors, *, rtol, atol):
    """Solves each batch of `matrices` and `vectors` (one per size in
    `partial_tile_sizes`) three ways in one program, both batched, one matrix with
    many right-hand sides, one right-hand side with many matrices, and compares
    with LAPACK."""
    solve = solve_fn(solver, tags)

    @jax.jit
    def solve_all(matrices, vectors):
        pairs = list(zip(matrices, vectors))
        return (
            [jax.vmap(solve)(a, v)[0] for a, v in pairs],
            [jax.vmap(solve, (None, 0))(a[0], v)[0] for a, v in pairs],
            [jax.vmap(solve, (0, None))(a, v[0])[0] for a, v in pairs],
        )

    pairs = list(zip(matrices, vectors))
    expected = (
        [np.linalg.solve(a, v[..., None])[..., 0] for a, v in pairs],
        [np.linalg.solve(a[0], v.T).T for a, v in pairs],
        [np.linalg.solve(a, v[0]) for a, v in pairs],
    )
    x = solve_all(matrices, vectors)
    for xi, ei in zip(jax.tree.leaves(x), jax.tree.leaves(expected)):
        np.testing.assert_allclose(xi, ei, rtol=rtol, atol=atol)
