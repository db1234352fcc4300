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

# One list of the solvers; every generic contract test (solve, vmap, jvp, transpose,
# conj, singular) runs over it. Adding a solver takes one line here.
# (solver, tags, reference solver from lineax)
solvers_tags_reference = [
    (lxk.UnrolledSmallLU(), frozenset(), lx.LU()),
    (lxk.SmallAuto(), frozenset(), lx.LU()),
    (lxk.ScanTridiagonal(), frozenset([lx.tridiagonal_tag]), lx.Tridiagonal()),
    (
        lxk.UnrolledSmallCholesky(),
        frozenset([lx.positive_semidefinite_tag]),
        lx.Cholesky(),
    ),
    (
        lxk.UnrolledSmallCholesky(),
        frozenset([lx.negative_semidefinite_tag]),
        lx.Cholesky(),
    ),
    (lxk.SmallAuto(), frozenset([lx.positive_semidefinite_tag]), lx.Cholesky()),
    (
        lxk.UnrolledSmallTriangular(),
        frozenset([lx.lower_triangular_tag]),
        lx.Triangular(),
    ),
    (
        lxk.UnrolledSmallTriangular(),
        frozenset([lx.upper_triangular_tag, lx.unit_diagonal_tag]),
        lx.Triangular(),
    ),
    (lxk.SmallAuto(), frozenset([lx.upper_triangular_tag]), lx.Triangular()),
    (lxk.PeriodicTridiagonal(), frozenset([periodic_tridiagonal_tag]), lx.LU()),
    (
        lxk.PeriodicTridiagonal(backend="jax"),
        frozenset([periodic_tridiagonal_tag]),
        lx.LU(),
    ),
    (lxk.BlockTridiagonal(), frozenset([block_tridiagonal_tag]), lx.LU()),
    (
        lxk.BlockTridiagonal(backend="jax"),
        frozenset([block_tridiagonal_tag]),
        lx.LU(),
    ),
    (lxk.Banded(), frozenset([banded_tag]), lx.LU()),
    (lxk.Banded(backend="jax"), frozenset([banded_tag]), lx.LU()),
]
solvers_tags = [(s, t) for s, t, _ in solvers_tags_reference]
solvers = [s for s, _, _ in solvers_tags_reference]

dtypes = (jnp.float32, jnp.float64, jnp.complex64, jnp.complex128)


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


def make_matrix(key, tags, size, dtype, *, max_cond=100.0):
    """A random matrix with the structure that `tags` promise, with condition number
    at most `max_cond` (resampled until it is). Positive (negative) semidefinite
    means Hermitian positive (negative) definite; triangular matrices get a diagonal
    shifted away from zero (all ones with `unit_diagonal_tag`)."""
    while True:
        key, subkey = jr.split(key)
        matrix = random(subkey, (size, size), dtype)
        if lx.tridiagonal_tag in tags:
            matrix = (
                jnp.diag(jnp.diag(matrix))
                + jnp.diag(jnp.diag(matrix, 1), 1)
                + jnp.diag(jnp.diag(matrix, -1), -1)
            )
        eye = jnp.eye(size, dtype=dtype)
        if lx.positive_semidefinite_tag in tags or lx.negative_semidefinite_tag in tags:
            matrix = matrix @ matrix.T.conj() / size + eye / 2
            if lx.negative_semidefinite_tag in tags:
                matrix = -matrix
        if lx.lower_triangular_tag in tags or lx.upper_triangular_tag in tags:
            matrix = matrix / size**0.5 + 2 * eye
            if lx.unit_diagonal_tag in tags:
                matrix = matrix - jnp.diag(jnp.diag(matrix)) + eye
            if lx.lower_triangular_tag in tags:
                matrix = jnp.tril(matrix)
            else:
                matrix = jnp.triu(matrix)
        if periodic_tridiagonal_tag in tags:
            i, j = np.indices((size, size))
            distance = np.abs(i - j)
            matrix = jnp.where((distance <= 1) | (distance == size - 1), matrix, 0)
        if block_tridiagonal_tag in tags:
            i, j = np.indices((size, size)) // _BLOCK_SIZE
            matrix = jnp.where(np.abs(i - j) <= 1, matrix, 0)
        if banded_tag in tags:
            i, j = np.indices((size, size))
            lower, upper = _BANDS
            matrix = jnp.where((i - j <= lower) & (j - i <= upper), matrix, 0)
        if np.linalg.cond(np.asarray(matrix, dtype=np.complex128)) <= max_cond:
            return matrix


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


def jit_solve(solver, throw=True):
    @jax.jit
    def solve(operator, vector):
        return lx.linear_solve(operator, vector, solver, throw=throw)

    return solve
