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
