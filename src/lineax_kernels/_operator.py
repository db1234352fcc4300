import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike, Inexact, Shaped


def _inexact_asarray(x: ArrayLike) -> Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


class PeriodicTridiagonalLinearOperator(lx.AbstractLinearOperator):
    """As [`lineax.TridiagonalLinearOperator`][], but for a periodic (cyclic)
    tridiagonal matrix: a tridiagonal matrix plus the two corner entries $A_{0, n-1}$
    and $A_{n-1, 0}$, as arises from a second-order stencil on a ring.

    Row `i` of the matrix has `lower_diagonal[i]` in column `(i - 1) mod n`,
    `diagonal[i]` in column `i` and `upper_diagonal[i]` in column `(i + 1) mod n`; so
    the corners are `lower_diagonal[0]` $= A_{0, n-1}$ and `upper_diagonal[n - 1]`
    $= A_{n-1, 0}$. For $n \\le 2$ some of these positions coincide, and their
    entries are summed (so `mv` is always
    `diagonal * x + lower_diagonal * roll(x, 1) + upper_diagonal * roll(x, -1)`).

    Solve with [`lineax_kernels.PeriodicTridiagonal`][] (or
    [`lineax_kernels.SmallAuto`][], which dispatches to it).
    """

    diagonal: Inexact[Array, " size"]
    lower_diagonal: Inexact[Array, " size"]
    upper_diagonal: Inexact[Array, " size"]

    def __init__(
        self,
        diagonal: Inexact[ArrayLike, " size"],
        lower_diagonal: Inexact[ArrayLike, " size"],
        upper_diagonal: Inexact[ArrayLike, " size"],
    ):
        """**Arguments:**

        - `diagonal`: the main diagonal, shape `(n,)`.
        - `lower_diagonal`: `lower_diagonal[i]` $= A_{i, (i - 1) \\bmod n}$, shape
            `(n,)`.
        - `upper_diagonal`: `upper_diagonal[i]` $= A_{i, (i + 1) \\bmod n}$, shape
            `(n,)`.
        """
        self.diagonal = _inexact_asarray(diagonal)
        self.lower_diagonal = _inexact_asarray(lower_diagonal)
        self.upper_diagonal = _inexact_asarray(upper_diagonal)
        if self.diagonal.ndim != 1 or self.diagonal.shape[0] == 0:
            raise ValueError("`diagonal` must have shape `(n,)` with `n >= 1`.")
        for name in ("lower_diagonal", "upper_diagonal"):
            if getattr(self, name).shape != self.diagonal.shape:
                raise ValueError(
                    f"`{name}` must have the shape of `diagonal`, "
                    f"{self.diagonal.shape}; got {getattr(self, name).shape}."
                )

    @classmethod
    def from_tridiagonal(
        cls, operator: lx.TridiagonalLinearOperator
    ) -> "PeriodicTridiagonalLinearOperator":
        """The same matrix as a `lineax.TridiagonalLinearOperator`, with zero
        corners (a lossless conversion).
        """
        diagonal, lower, upper = lx.tridiagonal(operator)
        zero = jnp.zeros((1,), lower.dtype)
        return cls(
            diagonal,
            jnp.concatenate([zero, lower]),
            jnp.concatenate([upper, zero]),
        )

    def mv(self, vector):
        return (
            self.diagonal * vector
            + self.lower_diagonal * jnp.roll(vector, 1)
            + self.upper_diagonal * jnp.roll(vector, -1)
        )

    def as_matrix(self):
        (size,) = self.diagonal.shape
        arange = np.arange(size)
        matrix = jnp.zeros((size, size), self.diagonal.dtype)
        matrix = matrix.at[arange, arange].add(self.diagonal)
        matrix = matrix.at[arange, (arange - 1) % size].add(self.lower_diagonal)
        return matrix.at[arange, (arange + 1) % size].add(self.upper_diagonal)

    def transpose(self):
        # A^T[i, i - 1] = A[i - 1, i] = upper[i - 1]; A^T[i, i + 1] = lower[i + 1].
        return PeriodicTridiagonalLinearOperator(
            self.diagonal,
            jnp.roll(self.upper_diagonal, 1),
            jnp.roll(self.lower_diagonal, -1),
        )

    def in_structure(self):
        return jax.ShapeDtypeStruct(self.diagonal.shape, self.diagonal.dtype)

    def out_structure(self):
        return jax.ShapeDtypeStruct(self.diagonal.shape, self.diagonal.dtype)


class BlockTridiagonalLinearOperator(lx.AbstractLinearOperator):
    """A block tridiagonal matrix with `n` block rows of dense `k x k` blocks, acting
    on vectors of shape `(n * k,)` (block `i` is entries `i * k, ..., i * k + k - 1`).

    Block row `i` is `lower_diagonal[i - 1]`, `diagonal[i]`, `upper_diagonal[i]`, in
    block columns `i - 1`, `i`, `i + 1`.

    Solve with [`lineax_kernels.BlockTridiagonal`][] (or
    [`lineax_kernels.SmallAuto`][], which dispatches to it).
    """

    diagonal: Inexact[Array, "n k k"]
    lower_diagonal: Inexact[Array, "n-1 k k"]
    upper_diagonal: Inexact[Array, "n-1 k k"]

    def __init__(
        self,
        diagonal: Inexact[ArrayLike, "n k k"],
        lower_diagonal: Inexact[ArrayLike, "n-1 k k"],
        upper_diagonal: Inexact[ArrayLike, "n-1 k k"],
    ):
        """**Arguments:**

        - `diagonal`: the diagonal blocks, shape `(n, k, k)`: `diagonal[i]` is
            block `(i, i)`.
        - `lower_diagonal`: the blocks below the diagonal, shape `(n - 1, k, k)`:
            `lower_diagonal[i]` is block `(i + 1, i)`.
        - `upper_diagonal`: the blocks above the diagonal, shape `(n - 1, k, k)`:
            `upper_diagonal[i]` is block `(i, i + 1)`.
        """
        self.diagonal = _inexact_asarray(diagonal)
        self.lower_diagonal = _inexact_asarray(lower_diagonal)
        self.upper_diagonal = _inexact_asarray(upper_diagonal)
        shape = self.diagonal.shape
        if len(shape) != 3 or shape[1] != shape[2] or 0 in shape:
            raise ValueError(
                f"`diagonal` must have shape `(n, k, k)` with `n, k >= 1`; got {shape}."
            )
        n, k, _ = shape
        for name in ("lower_diagonal", "upper_diagonal"):
            if getattr(self, name).shape != (n - 1, k, k):
                raise ValueError(
                    f"`{name}` must have shape {(n - 1, k, k)}; got "
                    f"{getattr(self, name).shape}."
                )

    @property
    def num_blocks(self) -> int:
        return self.diagonal.shape[0]

    @property
    def block_size(self) -> int:
        return self.diagonal.shape[1]

    def mv(self, vector):
        n, k = self.num_blocks, self.block_size
        x = vector.reshape(n, k)
        y = jnp.einsum("irc,ic->ir", self.diagonal, x)
        y = y.at[1:].add(jnp.einsum("irc,ic->ir", self.lower_diagonal, x[:-1]))
        y = y.at[:-1].add(jnp.einsum("irc,ic->ir", self.upper_diagonal, x[1:]))
        return y.reshape(n * k)

    def as_matrix(self):
        n, k = self.num_blocks, self.block_size
        arange = np.arange(n)
        matrix = jnp.zeros((n, k, n, k), self.diagonal.dtype)
        matrix = matrix.at[arange, :, arange, :].set(self.diagonal)
        matrix = matrix.at[arange[1:], :, arange[:-1], :].set(self.lower_diagonal)
        matrix = matrix.at[arange[:-1], :, arange[1:], :].set(self.upper_diagonal)
        return matrix.reshape(n * k, n * k)

    def transpose(self):
        t = lambda x: jnp.swapaxes(x, -1, -2)
        return BlockTridiagonalLinearOperator(
            t(self.diagonal), t(self.upper_diagonal), t(self.lower_diagonal)
        )

    def in_structure(self):
        size = self.num_blocks * self.block_size
        return jax.ShapeDtypeStruct((size,), self.diagonal.dtype)

    def out_structure(self):
        size = self.num_blocks * self.block_size
        return jax.ShapeDtypeStruct((size,), self.diagonal.dtype)


#
# lineax's singledispatch functions. Structural predicates look at shapes only (never
# at values, which are tracers under `jit`), and answer `False` when unsure, which is
# always safe.
#

_operators = (PeriodicTridiagonalLinearOperator, BlockTridiagonalLinearOperator)
for _cls in _operators:

    @lx.linearise.register(_cls)
    @lx.materialise.register(_cls)
    def _(operator):
        return operator

    @lx.is_symmetric.register(_cls)
    @lx.has_unit_diagonal.register(_cls)
    @lx.is_lower_triangular.register(_cls)
    @lx.is_upper_triangular.register(_cls)
    @lx.is_positive_semidefinite.register(_cls)
    @lx.is_negative_semidefinite.register(_cls)
    def _(operator):
        return False

    @lx.is_diagonal.register(_cls)
    def _(operator):
        return operator.in_size() == 1


@lx.diagonal.register(PeriodicTridiagonalLinearOperator)
def _(operator):
    if operator.in_size() == 1:
        return operator.diagonal + operator.lower_diagonal + operator.upper_diagonal
    return operator.diagonal


@lx.diagonal.register(BlockTridiagonalLinearOperator)
def _(operator):
    return jnp.diagonal(operator.diagonal, axis1=1, axis2=2).reshape(-1)


@lx.is_tridiagonal.register(PeriodicTridiagonalLinearOperator)
def _(operator):
    # Every 2 x 2 matrix is tridiagonal; from n = 3 on the corners are outside the band.
    return operator.in_size() <= 2


@lx.is_tridiagonal.register(BlockTridiagonalLinearOperator)
def _(operator):
    return operator.block_size == 1 or operator.in_size() <= 2


def _bands(matrix: Shaped[Array, "n n"]):
    return jnp.diagonal(matrix), jnp.diagonal(matrix, -1), jnp.diagonal(matrix, 1)


@lx.tridiagonal.register(PeriodicTridiagonalLinearOperator)
def _(operator):
    # The three bands (the corners are not in them), as lineax extracts them from a
    # `MatrixLinearOperator`.
    if operator.in_size() <= 2:
        return _bands(operator.as_matrix())
    return (
        operator.diagonal,
        operator.lower_diagonal[1:],
        operator.upper_diagonal[:-1],
    )


@lx.tridiagonal.register(BlockTridiagonalLinearOperator)
def _(operator):
    if operator.block_size == 1:
        return (
            operator.diagonal[:, 0, 0],
            operator.lower_diagonal[:, 0, 0],
            operator.upper_diagonal[:, 0, 0],
        )
    return _bands(operator.as_matrix())


@lx.conj.register(PeriodicTridiagonalLinearOperator)
def _(operator):
    return PeriodicTridiagonalLinearOperator(
        operator.diagonal.conj(),
        operator.lower_diagonal.conj(),
        operator.upper_diagonal.conj(),
    )


@lx.conj.register(BlockTridiagonalLinearOperator)
def _(operator):
    return BlockTridiagonalLinearOperator(
        operator.diagonal.conj(),
        operator.lower_diagonal.conj(),
        operator.upper_diagonal.conj(),
    )
