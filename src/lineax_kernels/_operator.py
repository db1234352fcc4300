import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike, Inexact, Shaped


def _common_inexact(*xs: ArrayLike) -> tuple[Array, ...]:
    # The arrays of one operator, in one inexact dtype (the promoted one): a real
    # diagonal with complex off-diagonals is a complex matrix, not a real one.
    xs = tuple(_inexact_asarray(x) for x in xs)
    dtype = jnp.result_type(*xs)
    return tuple(x.astype(dtype) for x in xs)


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

        The three arrays are promoted to their common dtype (so a real diagonal with
        complex off-diagonals makes a complex operator).
        """
        self.diagonal, self.lower_diagonal, self.upper_diagonal = _common_inexact(
            diagonal, lower_diagonal, upper_diagonal
        )
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

        The three arrays are promoted to their common dtype.
        """
        self.diagonal, self.lower_diagonal, self.upper_diagonal = _common_inexact(
            diagonal, lower_diagonal, upper_diagonal
        )
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


class BandedLinearOperator(lx.AbstractLinearOperator):
    """A square banded matrix with `lower` subdiagonals and `upper` superdiagonals,
    stored as in `scipy.linalg.solve_banded` (LAPACK's band storage without the extra
    rows for fill-in): `bands[upper + i - j, j]` $= A_{ij}$ for
    $-$`lower` $\\le j - i \\le$ `upper`. Entries of `bands` outside the matrix (the
    top-left corner of the superdiagonal rows and the bottom-right corner of the
    subdiagonal rows) are ignored.

    Solve with [`lineax_kernels.Banded`][] (or [`lineax_kernels.SmallAuto`][], which
    dispatches to it).
    """

    bands: Inexact[Array, "bands size"]
    lower: int = eqx.field(static=True)
    upper: int = eqx.field(static=True)

    def __init__(self, bands: Inexact[ArrayLike, "bands size"], lower: int, upper: int):
        """**Arguments:**

        - `bands`: the diagonals, shape `(lower + upper + 1, n)`: row `upper - d`
            holds diagonal `d` (positive above the main diagonal), aligned by
            column, so `bands[upper + i - j, j]` $= A_{ij}$.
        - `lower`: the number of subdiagonals, a Python int `>= 0`.
        - `upper`: the number of superdiagonals, a Python int `>= 0`.
        """
        if not (isinstance(lower, int) and isinstance(upper, int)):
            raise ValueError("`lower` and `upper` must be Python ints (static).")
        if lower < 0 or upper < 0:
            raise ValueError("`lower` and `upper` must be non-negative.")
        self.bands = _inexact_asarray(bands)
        self.lower = lower
        self.upper = upper
        shape = self.bands.shape
        if len(shape) != 2 or shape[0] != lower + upper + 1 or shape[1] == 0:
            raise ValueError(
                f"`bands` must have shape `(lower + upper + 1, n)` = "
                f"`({lower + upper + 1}, n)` with `n >= 1`; got {shape}."
            )

    @classmethod
    def from_tridiagonal(
        cls, operator: lx.TridiagonalLinearOperator
    ) -> "BandedLinearOperator":
        """The same matrix as a `lineax.TridiagonalLinearOperator` (a lossless
        conversion), with `lower = upper = 1`.
        """
        diagonal, lower, upper = lx.tridiagonal(operator)
        zero = jnp.zeros((1,), diagonal.dtype)
        bands = jnp.stack(
            [
                jnp.concatenate([zero, upper]),
                diagonal,
                jnp.concatenate([lower, zero]),
            ]
        )
        return cls(bands, 1, 1)

    @classmethod
    def from_matrix(
        cls, matrix: Inexact[ArrayLike, "size size"], lower: int, upper: int
    ) -> "BandedLinearOperator":
        """The band of a dense square matrix (entries outside it are dropped)."""
        matrix = _inexact_asarray(matrix)
        size = matrix.shape[0]
        i, j = _band_indices(size, lower, upper)
        valid = (i >= 0) & (i < size)
        bands = jnp.where(valid, matrix[np.clip(i, 0, size - 1), j], 0)
        return cls(bands, lower, upper)

    @property
    def size(self) -> int:
        return self.bands.shape[1]

    def mv(self, vector):
        size = self.size
        out = jnp.zeros(self.out_structure().shape, jnp.result_type(self.bands, vector))
        for row in range(self.lower + self.upper + 1):
            offset = self.upper - row  # diagonal d = j - i
            if abs(offset) >= size:
                continue
            if offset >= 0:
                out = out.at[: size - offset].add(
                    self.bands[row, offset:] * vector[offset:]
                )
            else:
                out = out.at[-offset:].add(
                    self.bands[row, : size + offset] * vector[: size + offset]
                )
        return out

    def as_matrix(self):
        size = self.size
        i, j = _band_indices(size, self.lower, self.upper)
        valid = (i >= 0) & (i < size)
        matrix = jnp.zeros((size, size), self.bands.dtype)
        return matrix.at[np.where(valid, i, size), j].set(self.bands, mode="drop")

    def transpose(self):
        return BandedLinearOperator(
            transpose_bands(self.bands, self.lower, self.upper), self.upper, self.lower
        )

    def in_structure(self):
        return jax.ShapeDtypeStruct((self.size,), self.bands.dtype)

    def out_structure(self):
        return jax.ShapeDtypeStruct((self.size,), self.bands.dtype)


def _band_indices(size: int, lower: int, upper: int):
    # Row and column in A of each entry: `bands[r, j] = A[j + r - upper, j]`.
    r, j = np.indices((lower + upper + 1, size))
    return j + r - upper, j


def transpose_bands(bands: Array, lower: int, upper: int) -> Array:
    """The bands of $A^T$ (`upper` subdiagonals, `lower` superdiagonals) from those
    of $A$: `bands_T[lower + i - j, j] = A[j, i] = bands[upper + j - i, i]`. Any
    trailing axes are carried along."""
    size = bands.shape[1]
    rows = []
    for r in range(lower + upper + 1):
        shift = r - lower  # i - j
        source = bands[lower + upper - r]
        # row r of the result at column j is source[j + shift].
        if shift >= 0:
            pad = jnp.zeros((min(shift, size),) + source.shape[1:], source.dtype)
            rows.append(jnp.concatenate([source[shift:], pad]))
        else:
            pad = jnp.zeros((min(-shift, size),) + source.shape[1:], source.dtype)
            rows.append(jnp.concatenate([pad, source[: max(size + shift, 0)]]))
    return jnp.stack(rows)


#
# lineax's singledispatch functions. Structural predicates look at shapes only (never
# at values, which are tracers under `jit`), and answer `False` when unsure, which is
# always safe.
#

_operators = (
    PeriodicTridiagonalLinearOperator,
    BlockTridiagonalLinearOperator,
    BandedLinearOperator,
)
for _cls in _operators:

    @lx.linearise.register(_cls)
    @lx.materialise.register(_cls)
    def _(operator):
        return operator

    @lx.is_symmetric.register(_cls)
    @lx.has_unit_diagonal.register(_cls)
    @lx.is_positive_semidefinite.register(_cls)
    @lx.is_negative_semidefinite.register(_cls)
    def _(operator):
        return False


for _cls in _operators[:2]:

    @lx.is_lower_triangular.register(_cls)
    @lx.is_upper_triangular.register(_cls)
    def _(operator):
        return False

    @lx.is_diagonal.register(_cls)
    def _(operator):
        return operator.in_size() == 1


@lx.is_lower_triangular.register(BandedLinearOperator)
def _(operator):
    return operator.upper == 0 or operator.size == 1


@lx.is_upper_triangular.register(BandedLinearOperator)
def _(operator):
    return operator.lower == 0 or operator.size == 1


@lx.is_diagonal.register(BandedLinearOperator)
def _(operator):
    return (operator.lower == 0 and operator.upper == 0) or operator.size == 1


@lx.is_tridiagonal.register(BandedLinearOperator)
def _(operator):
    return (operator.lower <= 1 and operator.upper <= 1) or operator.size <= 2


@lx.diagonal.register(BandedLinearOperator)
def _(operator):
    return operator.bands[operator.upper]


@lx.tridiagonal.register(BandedLinearOperator)
def _(operator):
    # The three central bands (any others are not in them), as lineax extracts them
    # from a `MatrixLinearOperator`.
    bands, upper = operator.bands, operator.upper
    zeros = jnp.zeros((operator.size - 1,), bands.dtype)
    lower_diagonal = bands[upper + 1, :-1] if operator.lower >= 1 else zeros
    upper_diagonal = bands[upper - 1, 1:] if upper >= 1 else zeros
    return bands[upper], lower_diagonal, upper_diagonal


@lx.conj.register(BandedLinearOperator)
def _(operator):
    return BandedLinearOperator(operator.bands.conj(), operator.lower, operator.upper)


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
