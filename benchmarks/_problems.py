# Problem data, float64 references, and the solve functions (for one system; batching
# is `jax.vmap`'s job) that several suites share.
import jax.lax as lax
import jax.numpy as jnp
import jax.scipy as jsp
import lineax as lx
import numpy as np
import scipy.linalg


_MAX_COND = 1e4


def rng(*key: int) -> np.random.Generator:
    # A fixed seed per case, so that every run (and every profile) sees the same data.
    return np.random.default_rng([20240611, *key])


#
# Small dense systems.
#


def dense_cond(matrices: np.ndarray) -> np.ndarray:
    """Frobenius-norm condition numbers of a batch of matrices (an upper bound on the
    2-norm ones, and much cheaper than SVDs)."""
    matrices = np.asarray(matrices, dtype=np.float64)
    inverses = np.linalg.inv(matrices)
    return np.linalg.norm(matrices, axis=(-2, -1)) * np.linalg.norm(
        inverses, axis=(-2, -1)
    )


def dense_matrices(generator: np.random.Generator, n: int, d: int, dtype):
    """`n` standard normal `d x d` matrices (general: pivoting matters), resampling the
    rare ones with condition number above `_MAX_COND`. Returns them in `dtype`, with
    the condition numbers of the rounded matrices."""
    matrices = generator.standard_normal((n, d, d))
    while True:
        cond = dense_cond(matrices.astype(dtype))
        bad = ~(cond <= _MAX_COND)
        if not np.any(bad):
            return matrices.astype(dtype), cond
        matrices[bad] = generator.standard_normal((int(np.sum(bad)), d, d))


def dense_reference(matrices: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    matrices = np.asarray(matrices, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    return np.linalg.solve(matrices, vectors[..., None])[..., 0]


def lineax_dense(solver: lx.AbstractLinearSolver):
    def solve(matrix, vector):
        operator = lx.MatrixLinearOperator(matrix)
        return lx.linear_solve(operator, vector, solver, throw=False).value

    return solve


def jnp_dense(matrix, vector):
    # Batched directly (no vmap): `matrix` (..., d, d), `vector` (..., d).
    return jnp.linalg.solve(matrix, vector[..., None])[..., 0]


def numpy_dense(matrix, vector):
    return np.linalg.solve(matrix, vector[..., None])[..., 0]


def dense_floor(matrix, vector):
    # Reads all of A and b, writes an x-sized result. (A sum of the d columns rather
    # than `jnp.sum(matrix, axis=-1)`: XLA's CPU reduction over a short last axis is
    # 3-4x slower than memory bandwidth at d <= 4.)
    return vector + sum(matrix[..., k] for k in range(matrix.shape[-1]))


#
# Tridiagonal systems, batch-major: diagonal (batch, n), lower and upper
# (batch, n - 1), with `A[i + 1, i] = lower[i]` and `A[i, i + 1] = upper[i]`.
#


def tridiagonal_data(generator: np.random.Generator, n: int, batch: int, dtype):
    """Random row diagonally dominant tridiagonal systems (random signs, so not
    SPD). Returns `(diagonal, lower, upper, rhs)` in `dtype` and an upper bound on
    each system's infinity-norm condition number (Varah's bound on the inverse)."""
    lower = generator.standard_normal((batch, n - 1))
    upper = generator.standard_normal((batch, n - 1))
    off = np.zeros((batch, n))
    off[:, 1:] += np.abs(lower)
    off[:, :-1] += np.abs(upper)
    sign = generator.choice([-1.0, 1.0], size=(batch, n))
    diagonal = sign * (off + 0.5 + np.abs(generator.standard_normal((batch, n))))
    rhs = generator.standard_normal((batch, n))
    diagonal, lower, upper, rhs = (
        x.astype(dtype) for x in (diagonal, lower, upper, rhs)
    )
    off = np.zeros((batch, n))
    off[:, 1:] += np.abs(lower.astype(np.float64))
    off[:, :-1] += np.abs(upper.astype(np.float64))
    abs_diagonal = np.abs(diagonal.astype(np.float64))
    cond = np.max(abs_diagonal + off, axis=1) / np.min(abs_diagonal - off, axis=1)
    return (diagonal, lower, upper, rhs), cond


def tridiagonal_to_banded(diagonal, lower, upper):
    """`(batch, 3, n)` banded storage for `scipy.linalg.solve_banded((1, 1), ...)`."""
    batch, n = diagonal.shape
    banded = np.zeros((batch, 3, n), dtype=diagonal.dtype)
    banded[:, 0, 1:] = upper
    banded[:, 1] = diagonal
    banded[:, 2, :-1] = lower
    return banded


def scipy_banded(banded, rhs):
    return np.stack(
        [
            scipy.linalg.solve_banded((1, 1), ab, b, check_finite=False)
            for ab, b in zip(banded, rhs, strict=True)
        ]
    )


def tridiagonal_reference(diagonal, lower, upper, rhs):
    as64 = lambda x: np.asarray(x, dtype=np.float64)
    banded = tridiagonal_to_banded(as64(diagonal), as64(lower), as64(upper))
    return scipy_banded(banded, as64(rhs))


def lineax_tridiagonal(solver: lx.AbstractLinearSolver):
    def solve(diagonal, lower, upper, vector):
        operator = lx.TridiagonalLinearOperator(diagonal, lower, upper)
        return lx.linear_solve(operator, vector, solver, throw=False).value

    return solve


def lax_tridiagonal(lower_padded, diagonal, upper_padded, rhs):
    # `jax.lax.linalg.tridiagonal_solve`, batched directly: `lower_padded[..., 0]` and
    # `upper_padded[..., -1]` are zero; right-hand sides (..., n, 1).
    return lax.linalg.tridiagonal_solve(lower_padded, diagonal, upper_padded, rhs)


def pad_for_lax(lower, upper):
    zeros = np.zeros(lower.shape[:-1] + (1,), dtype=lower.dtype)
    return np.concatenate([zeros, lower], -1), np.concatenate([upper, zeros], -1)


def naive_thomas(diagonal, lower, upper, vector):
    """The Thomas algorithm for one system as two `lax.scan`s, with no custom autodiff
    rule: what one would write by hand. Notation as in
    https://en.wikipedia.org/wiki/Tridiagonal_matrix_algorithm (`a` lower, `b`
    diagonal, `c` upper, `d` right-hand side; `_p` means "prime")."""
    c = jnp.concatenate([upper, jnp.zeros_like(upper[:1])])
    a = jnp.concatenate([jnp.zeros_like(lower[:1]), lower])

    def forward(carry, x):
        c_p_prev, d_p_prev = carry
        a_i, b_i, c_i, d_i = x
        denominator = b_i - a_i * c_p_prev
        c_p = c_i / denominator
        d_p = (d_i - a_i * d_p_prev) / denominator
        return (c_p, d_p), (c_p, d_p)

    zero = jnp.zeros((), diagonal.dtype)
    _, (c_p, d_p) = lax.scan(forward, (zero, zero), (a, diagonal, c, vector))

    def backward(x_next, x):
        c_p_i, d_p_i = x
        x_i = d_p_i - c_p_i * x_next
        return x_i, x_i

    _, solution = lax.scan(backward, zero, (c_p, d_p), reverse=True)
    return solution


def tridiagonal_floor(diagonal, lower, upper, vector):
    # Reads all four arrays once, writes an x-sized result.
    return (
        vector
        + diagonal
        + jnp.sum(lower, axis=-1, keepdims=True)
        + jnp.sum(upper, axis=-1, keepdims=True)
    )


#
# Small symmetric (Hermitian) positive definite systems.
#


def psd_matrices(generator: np.random.Generator, n: int, d: int, dtype):
    """`n` symmetric positive definite `d x d` matrices `M M^T / d + 0.1 I` with `M`
    standard normal (condition numbers mostly 10-1000), resampling the rare ones with
    condition number above `_MAX_COND`. Returns them in `dtype` (symmetrised after
    rounding), with the condition numbers of the rounded matrices."""

    def sample(count):
        m = generator.standard_normal((count, d, d))
        return m @ m.transpose(0, 2, 1) / d + 0.1 * np.eye(d)

    matrices = sample(n)
    while True:
        cond = dense_cond(matrices.astype(dtype))
        bad = ~(cond <= _MAX_COND)
        if not np.any(bad):
            return matrices.astype(dtype), cond
        matrices[bad] = sample(int(np.sum(bad)))


def lineax_psd(solver: lx.AbstractLinearSolver):
    def solve(matrix, vector):
        operator = lx.MatrixLinearOperator(matrix, lx.positive_semidefinite_tag)
        return lx.linear_solve(operator, vector, solver, throw=False).value

    return solve


def jsp_cho_solve(matrix, vector):
    # Batched directly (no vmap): `matrix` (..., d, d), `vector` (..., d).
    factor = jsp.linalg.cho_factor(matrix, lower=True)
    return jsp.linalg.cho_solve(factor, vector[..., None])[..., 0]
