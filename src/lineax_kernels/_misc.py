import jax.numpy as jnp
from jaxtyping import Array


def abs1(x: Array) -> Array:
    """LAPACK's `cabs1`, $|\\mathrm{Re}\\, x| + |\\mathrm{Im}\\, x|$: the cheap
    magnitude that LAPACK's `?getrf` and `?gttrf` choose pivots by."""
    if jnp.iscomplexobj(x):
        return jnp.abs(x.real) + jnp.abs(x.imag)
    return jnp.abs(x)


def nonfinite_guard(x: Array) -> Array:
    """0 if every entry of `x` is finite, else NaN (summing `x - x`). Added to a
    solution, it makes non-finite input give non-finite output."""
    return jnp.sum(x - x)


def materialise(x: Array) -> Array:
    """Returns `x`, computed once. XLA fuses cheap elementwise operations into each
    of their consumers, so without this every fused kernel that reads an entry of
    the partly eliminated matrix recomputes that entry's whole history of selects
    and updates: at d = 8 the compiled program does ~8x the work of the source, and
    compile time explodes. A division is an operation XLA will not duplicate, so
    dividing by a computed one (exactly 1 for finite `x`; NaN for inf/NaN, which
    keeps non-finite values non-finite) makes it compute `x` once and read it back.
    """
    if jnp.issubdtype(x.dtype, jnp.integer):
        # Integer division does not count as expensive to XLA; small integers are
        # exact in float32.
        return materialise(x.astype(jnp.float32)).astype(x.dtype)
    return x / (x * 0 + 1)
