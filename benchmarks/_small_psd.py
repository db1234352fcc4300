# Many small symmetric positive definite systems: N operators d x d tagged
# `lx.positive_semidefinite_tag`, N d^2 ~ 4e6 (1e6 quick), float64 by default.
# lxk.UnrolledSmallCholesky (vmapped) on both backends side by side, "lxk (native)"
# (the C++ kernel) and "lxk (pure JAX)" (`backend="jax"`, the GPU path), vs vmapped
# lx.Cholesky, batched jax.scipy.linalg.cho_factor/cho_solve and numpy.linalg.solve;
# the native UnrolledSmallLU on the same matrices as a row of its own (also lxk, so
# not counted as an alternative).
# Typical output (2 shared CPU cores with AVX-512, load average ~4, jax 0.10.2,
# lineax 0.1.1, float64, N d^2 = 4e6), per system at d = 4 / 8 / 16: native
# 26 ns / 108 ns / 344 ns; pure JAX 111-128 ns / 7.2 us / 23 us; native
# UnrolledSmallLU 27-34 ns / 261 ns / 586 ns; vmapped lx.Cholesky 664-823 ns /
# 2.0 us / 6.4 us. Conclusion: the native kernel is 26x, 19x and 19x faster than
# vmapped lx.Cholesky, and 0.41x / 0.59x the time of the native LU at d = 8 / 16;
# at d = 4 both native kernels run at 1.3x the memory-bandwidth floor (the lower
# triangle of a row-major 4 x 4 matrix spans every cache line of it), so there
# they tie. The pure-JAX kernel is straight-line code only up to d = 4 (first
# calls); above, its `lax.fori_loop`s are slower than LAPACK on CPU.
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk

from . import _problems as p
from ._harness import Case, jit_once, Method, Plot, Suite, tolerance


def _make_case(size, dtype) -> Case:
    d, n = size
    generator = p.rng(8, d, n)
    matrices, cond = p.psd_matrices(generator, n, d, dtype)
    vectors = generator.standard_normal((n, d)).astype(dtype)
    args = (jnp.asarray(matrices), jnp.asarray(vectors))
    vmapped = lambda solve: jit_once(jax.vmap(solve))
    psd = lambda backend: lxk.UnrolledSmallCholesky(max_size=d, backend=backend)
    methods = [
        Method("lxk (native)", vmapped(p.lineax_psd(psd("native"))), args, lxk=True),
        Method("lxk (pure JAX)", vmapped(p.lineax_psd(psd("jax"))), args, lxk=True),
        Method(
            "lxk.UnrolledSmallLU (native)",
            vmapped(p.lineax_dense(lxk.UnrolledSmallLU(max_size=max(d, 16)))),
            args,
            lxk=True,
        ),
        Method("vmap lx.Cholesky", vmapped(p.lineax_psd(lx.Cholesky())), args),
        Method("jax.scipy cho_solve", jit_once(p.jsp_cho_solve), args),
        Method("numpy.linalg.solve", p.numpy_dense, (matrices, vectors), jax=False),
    ]
    return Case(
        suite="small_psd",
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
    name="small_psd",
    description="N small SPD d x d systems (vmap over operator and rhs)",
    sizes={
        "smoke": _sizes((3,), 2e3),
        "quick": _sizes((2, 4, 8, 16), 1e6),
        "full": _sizes((2, 3, 4, 6, 8, 12, 16), 4e6),
    },
    make_case=_make_case,
    plots=(Plot(x="d", y="per_system_s"),),
)
