# Many small dense systems: N operators d x d, N d^2 ~ 4e6, float64 by default.
# lxk.UnrolledSmallLU (vmapped; its native CPU kernel and its pure-JAX kernel as two
# rows) vs jnp.linalg.solve (batched), vmapped lx.LU and numpy.linalg.solve.
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk

from . import _problems as p
from ._harness import Case, jit_once, Method, Plot, Suite, tolerance


def _make_case(size, dtype) -> Case:
    d, n = size
    generator = p.rng(1, d, n)
    matrices, cond = p.dense_matrices(generator, n, d, dtype)
    vectors = generator.standard_normal((n, d)).astype(dtype)
    args = (jnp.asarray(matrices), jnp.asarray(vectors))
    vmapped = lambda solver: jit_once(jax.vmap(p.lineax_dense(solver)))
    methods = [
        Method(
            "lxk.UnrolledSmallLU (native)",
            vmapped(lxk.UnrolledSmallLU(max_size=max(d, 16), backend="native")),
            args,
            lxk=True,
        ),
        Method(
            "lxk.UnrolledSmallLU (pure JAX)",
            vmapped(lxk.UnrolledSmallLU(max_size=max(d, 16), backend="jax")),
            args,
            lxk=True,
        ),
        Method("jnp.linalg.solve", jit_once(p.jnp_dense), args),
        Method("vmap lx.LU", vmapped(lx.LU()), args),
        Method("numpy.linalg.solve", p.numpy_dense, (matrices, vectors), jax=False),
    ]
    return Case(
        suite="small_dense",
        name=f"d={d} N={n}",
        params={"d": d, "N": n},
        n_systems=n,
        methods=methods,
        reference=p.dense_reference(matrices, vectors),
        tol=tolerance(dtype, cond),
        floor=Method("floor", jit_once(p.dense_floor), args),
    )


def _sizes(ds, elements):
    return [(d, max(1, round(elements / d**2))) for d in ds]


SUITE = Suite(
    name="small_dense",
    description="N small dense d x d systems (vmap over operator and rhs)",
    sizes={
        "smoke": _sizes((3,), 2e3),
        "quick": _sizes((2, 4, 8, 16), 4e6),
        "full": _sizes((1, 2, 3, 4, 6, 8, 12, 16, 24, 32), 4e6),
    },
    make_case=_make_case,
    plots=(Plot(x="d", y="per_system_s"),),
)
