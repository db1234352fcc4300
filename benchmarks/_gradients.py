# Reverse mode: jit(grad) of `sum(x**2)`, `x` solving a batch of systems, with respect
# to the operator and the right-hand side. Tridiagonal: lxk.ScanTridiagonal vs the
# lineax default (lx.Tridiagonal, implicit rule), jax.lax.linalg.tridiagonal_solve and
# a naive lax.scan Thomas differentiated straight through. Small dense:
# lxk.UnrolledSmallLU vs lx.LU and jnp.linalg.solve.
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np

from . import _problems as p
from ._harness import Case, jit_once, Method, Suite, tolerance


def _grad(batched_solve, argnums):
    loss = lambda *args: jnp.sum(batched_solve(*args) ** 2)
    return jit_once(jax.grad(loss, argnums=argnums))


def _tridiagonal_reference(diagonal, lower, upper, rhs):
    # x = A^{-1} b, λ = A^{-T} 2x; dL/db = λ, dL/dA = -λ x^T on the band.
    x = p.tridiagonal_reference(diagonal, lower, upper, rhs)
    λ = p.tridiagonal_reference(diagonal, upper, lower, 2 * x)
    return (-λ * x, -λ[:, 1:] * x[:, :-1], -λ[:, :-1] * x[:, 1:], λ)


def _dense_reference(matrices, vectors):
    x = p.dense_reference(matrices, vectors)
    λ = p.dense_reference(np.swapaxes(matrices, -1, -2), 2 * x)
    return (-λ[:, :, None] * x[:, None, :], λ)


def _tridiagonal_case(n, batch, dtype) -> Case:
    generator = p.rng(4, n, batch)
    data, cond = p.tridiagonal_data(generator, n, batch, dtype)
    args = tuple(jnp.asarray(x) for x in data)
    argnums = (0, 1, 2, 3)
    vmapped = lambda solver: _grad(jax.vmap(p.lineax_tridiagonal(solver)), argnums)

    def lax_solve(diagonal, lower, upper, rhs):
        zeros = jnp.zeros_like(lower[:, :1])
        lower_padded = jnp.concatenate([zeros, lower], axis=1)
        upper_padded = jnp.concatenate([upper, zeros], axis=1)
        x = p.lax_tridiagonal(lower_padded, diagonal, upper_padded, rhs[..., None])
        return x[..., 0]

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
        Method(
            "lx default (Tridiagonal)",
            vmapped(lx.AutoLinearSolver(well_posed=True)),
            args,
        ),
        Method("lax.linalg.tridiagonal_solve", _grad(lax_solve, argnums), args),
        Method("naive scan Thomas", _grad(jax.vmap(p.naive_thomas), argnums), args),
    ]
    return Case(
        suite="gradients",
        name=f"tridiagonal n={n} batch={batch}",
        params={"kind": "tridiagonal", "n": n, "batch": batch},
        n_systems=batch,
        methods=methods,
        reference=_tridiagonal_reference(*data),
        tol=tolerance(dtype, cond),
        floor=Method("floor", jit_once(p.tridiagonal_floor), args),
    )


def _dense_case(d, n, dtype) -> Case:
    generator = p.rng(5, d, n)
    matrices, cond = p.dense_matrices(generator, n, d, dtype)
    vectors = generator.standard_normal((n, d)).astype(dtype)
    args = (jnp.asarray(matrices), jnp.asarray(vectors))
    argnums = (0, 1)
    vmapped = lambda solver: _grad(jax.vmap(p.lineax_dense(solver)), argnums)
    methods = [
        Method(
            "lxk.UnrolledSmallLU (native)",
            vmapped(lxk.UnrolledSmallLU(backend="native")),
            args,
            lxk=True,
        ),
        Method(
            "lxk.UnrolledSmallLU (pure JAX)",
            vmapped(lxk.UnrolledSmallLU(backend="jax")),
            args,
            lxk=True,
        ),
        Method("lx default (LU)", vmapped(lx.AutoLinearSolver(well_posed=True)), args),
        Method("jnp.linalg.solve", _grad(p.jnp_dense, argnums), args),
    ]
    return Case(
        suite="gradients",
        name=f"dense d={d} N={n}",
        params={"kind": "dense", "d": d, "N": n},
        n_systems=n,
        methods=methods,
        reference=_dense_reference(matrices, vectors),
        tol=tolerance(dtype, cond),
        floor=Method("floor", jit_once(p.dense_floor), args),
    )


def _make_case(size, dtype) -> Case:
    kind, *shape = size
    if kind == "tridiagonal":
        return _tridiagonal_case(*shape, dtype)
    return _dense_case(*shape, dtype)


SUITE = Suite(
    name="gradients",
    description="jit(grad) of sum(x**2) through batched solves",
    sizes={
        "smoke": [("tridiagonal", 16, 8), ("dense", 3, 100)],
        "quick": [("tridiagonal", 1024, 256), ("dense", 4, 62_500)],
        "full": [
            ("tridiagonal", 4096, 256),
            ("tridiagonal", 32, 32768),
            ("dense", 4, 250_000),
            ("dense", 8, 62_500),
        ],
    },
    make_case=_make_case,
)
