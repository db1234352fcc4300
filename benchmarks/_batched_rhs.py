# One d x d operator, M = 1e5 right-hand sides: lxk.UnrolledSmallLU (native and pure
# JAX) vmapped over the right-hand side only (factorises once) vs
# jnp.linalg.solve(A, B) with B (d, M), vmapped lx.LU and numpy.linalg.solve(A, B).
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np

from . import _problems as p
from ._harness import Case, jit_once, Method, Suite, tolerance


def _floor(matrix, vectors):
    return vectors + jnp.sum(matrix)


def _make_case(size, dtype) -> Case:
    d, m = size
    generator = p.rng(2, d, m)
    matrices, cond = p.dense_matrices(generator, 1, d, dtype)
    matrix = matrices[0]
    vectors = generator.standard_normal((m, d)).astype(dtype)
    columns = np.ascontiguousarray(vectors.T)  # B as (d, M), as jnp/numpy want it
    args = (jnp.asarray(matrix), jnp.asarray(vectors))
    columns_args = (jnp.asarray(matrix), jnp.asarray(columns))
    vmapped = lambda solver: jit_once(
        jax.vmap(p.lineax_dense(solver), in_axes=(None, 0))
    )
    transpose = lambda x: x.T
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
        Method(
            "jnp.linalg.solve(A, B)",
            jit_once(jnp.linalg.solve),
            columns_args,
            to_canonical=transpose,
        ),
        Method("vmap lx.LU", vmapped(lx.LU()), args),
        Method(
            "numpy.linalg.solve(A, B)",
            np.linalg.solve,
            (matrix, columns),
            jax=False,
            to_canonical=transpose,
        ),
    ]
    reference = np.linalg.solve(matrix.astype(np.float64), columns.astype(np.float64))
    return Case(
        suite="batched_rhs",
        name=f"d={d} M={m}",
        params={"d": d, "M": m},
        n_systems=m,
        methods=methods,
        reference=reference.T,
        tol=tolerance(dtype, cond[0]),
        floor=Method("floor", jit_once(_floor), args),
    )


SUITE = Suite(
    name="batched_rhs",
    description="one d x d operator, M right-hand sides (vmap over rhs only)",
    sizes={
        "smoke": [(4, 1000)],
        "quick": [(4, 100_000), (8, 100_000)],
        "full": [(4, 100_000), (8, 100_000)],
    },
    make_case=_make_case,
)
