# Batches of tridiagonal systems (n unknowns, `batch` systems), diagonally dominant
# random data: lxk.ScanTridiagonal (pivoting on and off) vs vmapped lx.Tridiagonal,
# jax.lax.linalg.tridiagonal_solve (batched directly) and a Python loop of
# scipy.linalg.solve_banded. Every method gets the data in its own natural layout,
# converted before timing.
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk

from . import _problems as p
from ._harness import Case, jit_once, Method, Plot, Suite, tolerance


def _make_case(size, dtype) -> Case:
    n, batch = size
    generator = p.rng(3, n, batch)
    (diagonal, lower, upper, rhs), cond = p.tridiagonal_data(generator, n, batch, dtype)
    args = tuple(jnp.asarray(x) for x in (diagonal, lower, upper, rhs))
    lower_padded, upper_padded = p.pad_for_lax(lower, upper)
    lax_args = tuple(
        jnp.asarray(x) for x in (lower_padded, diagonal, upper_padded, rhs[..., None])
    )
    banded = p.tridiagonal_to_banded(diagonal, lower, upper)
    vmapped = lambda solver: jit_once(jax.vmap(p.lineax_tridiagonal(solver)))
    methods = [
        # The native CPU kernel and the pure-JAX one (the GPU/TPU path) side by
        # side.
        *(
            Method(
                f"lxk.ScanTridiagonal(pivoting={pivoting}) ({label})",
                vmapped(lxk.ScanTridiagonal(pivoting=pivoting, backend=backend)),
                args,
                lxk=True,
            )
            for pivoting in (True, False)
            for backend, label in (("native", "native"), ("jax", "pure JAX"))
        ),
        Method("vmap lx.Tridiagonal", vmapped(lx.Tridiagonal()), args),
        Method(
            "lax.linalg.tridiagonal_solve",
            jit_once(p.lax_tridiagonal),
            lax_args,
            to_canonical=lambda x: x[..., 0],
        ),
        Method(
            "scipy solve_banded loop",
            p.scipy_banded,
            (banded, rhs),
            jax=False,
        ),
    ]
    return Case(
        suite="tridiagonal",
        name=f"n={n} batch={batch}",
        params={"n": n, "batch": batch},
        n_systems=batch,
        methods=methods,
        reference=p.tridiagonal_reference(diagonal, lower, upper, rhs),
        tol=tolerance(dtype, cond),
        floor=Method("floor", jit_once(p.tridiagonal_floor), args),
    )


SUITE = Suite(
    name="tridiagonal",
    description="batches of tridiagonal systems (vmap over operator and rhs)",
    sizes={
        "smoke": [(64, 1), (8, 16)],
        "quick": [(2**18, 1), (1024, 256), (256, 1024), (32, 8192)],
        "full": [(10**6, 1), (4096, 256), (256, 4096), (32, 32768)],
    },
    make_case=_make_case,
    plots=(Plot(x="batch", y="speedup", log_x=True, log_y=True),),
)
