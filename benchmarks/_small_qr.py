# Many small least-squares problems, float64 by default.
# 1. N tall m x n systems, N m n ~ 4e6: lxk.UnrolledSmallQR (vmapped; its native CPU
#    kernel and its pure-JAX kernel as two rows) vs vmapped lx.QR, jnp.linalg.lstsq
#    (vmapped; SVD-based), NumPy (batched numpy.linalg.qr + a batched triangular
#    solve; numpy.linalg.lstsq in a loop) and the memory floor.
# 2. End to end: optimistix GaussNewton (linear_solver=lxk.SmallAuto() vs its default
#    lx.AutoLinearSolver(well_posed=None), i.e. lx.QR) and LevenbergMarquardt
#    (lxk.UnrolledSmallQR() vs its default lx.QR()), vmapped over N independent
#    exponential-decay fits y = a exp(-k t) + c with m = 50 samples, n = 3 parameters.
#    Reference: the same fits by scipy.optimize.least_squares in float64.
# Typical output (quick profile, float64, a shared 2-core AMD EPYC with AVX-512,
# jax 0.10.2, lineax 0.1.1, NumPy 2.4.6), time per system, native kernel:
#   (20, 3) 321 ns: 16x vmapped lx.QR, 13x NumPy qr + triangular solve, 0.7x floor
#   (50, 4) 632 ns: 12x, 11x, 1.7x floor     (100, 6) 2.52 us: 8.3x, 7.8x, 1.9x
#   (200, 8) 8.75 us: 6.6x, 5.7x, 3.8x floor (64, 16) 6.98 us: 7.3x, 7.1x, 3.2x
#   GaussNewton, 1000 fits: 2.1x the default; LevenbergMarquardt: 1.8x.
# The pure-JAX kernel is 0.2-0.5x the best alternative on CPU (it is for GPU/TPU).
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import optimistix as optx
import scipy.optimize

from . import _problems as p
from ._harness import Case, jit_once, Method, Suite, tolerance


def _tall_matrices(generator, n_systems, m, n, dtype):
    """Standard normal m x n matrices (well conditioned for m well above n), with
    their 2-norm condition numbers."""
    matrices = generator.standard_normal((n_systems, m, n)).astype(dtype)
    s = np.linalg.svd(matrices.astype(np.float64), compute_uv=False)
    return matrices, s[:, 0] / s[:, -1]


def _numpy_qr(matrices, vectors):
    # Batched Householder QR (LAPACK per matrix, in one NumPy call), c = Q^T b, then
    # back substitution vectorised over the batch.
    q, r = np.linalg.qr(matrices)
    c = np.einsum("bij,bi->bj", q, vectors)
    n = r.shape[-1]
    x = np.empty_like(c)
    for i in reversed(range(n)):
        acc = c[:, i] - np.einsum("bj,bj->b", r[:, i, i + 1 :], x[:, i + 1 :])
        x[:, i] = acc / r[:, i, i]
    return x


def _numpy_lstsq(matrices, vectors):
    return np.stack(
        [np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(matrices, vectors)]
    )


def _jnp_lstsq(matrix, vector):
    return jnp.linalg.lstsq(matrix, vector)[0]


def _floor(matrix, vector):
    # Reads all of A and b, writes an x-sized result.
    return jnp.sum(matrix, axis=-2) + jnp.sum(vector, axis=-1, keepdims=True)


def _lstsq_case(m, n, n_systems, dtype) -> Case:
    generator = p.rng(11, m, n, n_systems)
    matrices, cond = _tall_matrices(generator, n_systems, m, n, dtype)
    vectors = generator.standard_normal((n_systems, m)).astype(dtype)
    args = (jnp.asarray(matrices), jnp.asarray(vectors))
    vmapped = lambda solver: jit_once(jax.vmap(p.lineax_dense(solver)))
    limits = dict(max_size=max(n, 16), max_long_size=max(m, 256))
    methods = [
        Method(
            "lxk.UnrolledSmallQR (native)",
            vmapped(lxk.UnrolledSmallQR(**limits, backend="native")),
            args,
            lxk=True,
        ),
        Method(
            "lxk.UnrolledSmallQR (pure JAX)",
            vmapped(lxk.UnrolledSmallQR(**limits, backend="jax")),
            args,
            lxk=True,
        ),
        Method("vmap lx.QR", vmapped(lx.QR()), args),
        Method("vmap jnp.linalg.lstsq", jit_once(jax.vmap(_jnp_lstsq)), args),
        Method(
            "numpy.linalg.qr + triangular solve",
            _numpy_qr,
            (matrices, vectors),
            jax=False,
        ),
        Method("numpy.linalg.lstsq loop", _numpy_lstsq, (matrices, vectors), jax=False),
    ]
    reference = _numpy_qr(matrices.astype(np.float64), vectors.astype(np.float64))
    return Case(
        suite="small_qr",
        name=f"m={m} n={n} N={n_systems}",
        params={"kind": "lstsq", "m": m, "n": n, "N": n_systems},
        n_systems=n_systems,
        methods=methods,
        reference=reference,
        # Least squares: the forward error bound has a cond^2 term (the residual).
        tol=tolerance(dtype, cond**2),
        floor=Method("floor", jit_once(_floor), args),
    )


#
# End to end: exponential-decay fits.
#


_T = np.linspace(0.0, 4.0, 50)


def _decay(params, t):
    a, k, c = params[0], params[1], params[2]
    return a * jnp.exp(-k * t) + c


def _residual(params, args):
    t, y = args
    return _decay(params, t) - y


def _fit_data(generator, n_fits, dtype):
    true = np.stack(
        [
            generator.uniform(0.5, 2.0, n_fits),
            generator.uniform(0.3, 3.0, n_fits),
            generator.uniform(-0.5, 0.5, n_fits),
        ],
        axis=1,
    )
    clean = true[:, 0:1] * np.exp(-true[:, 1:2] * _T) + true[:, 2:3]
    data = clean + 0.01 * generator.standard_normal(clean.shape)
    # Initial guesses within 20% of the truth: undamped Gauss-Newton diverges on
    # some fits from a fixed guess far away.
    y0 = true * generator.uniform(0.8, 1.2, true.shape)
    return data.astype(dtype), y0.astype(dtype)


def _fit_reference(data, y0):
    def fit(y, q0):
        residual = lambda q: q[0] * np.exp(-q[1] * _T) + q[2] - y
        return scipy.optimize.least_squares(
            residual, q0, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15
        ).x

    data, y0 = (np.asarray(x, dtype=np.float64) for x in (data, y0))
    return np.stack([fit(y, q0) for y, q0 in zip(data, y0)])


def _fit_case(kind, n_fits, dtype) -> Case:
    generator = p.rng(12, n_fits)
    data, y0 = _fit_data(generator, n_fits, dtype)
    t = jnp.asarray(_T, dtype)
    args = (jnp.asarray(data), jnp.asarray(y0))
    tol = 1e-10 if np.finfo(dtype).bits == 64 else 1e-5

    def batched_solve(linear_solver):
        kwargs = {} if linear_solver is None else {"linear_solver": linear_solver}
        if kind == "gauss_newton":
            solver = optx.GaussNewton(rtol=tol, atol=tol, **kwargs)
        else:
            solver = optx.LevenbergMarquardt(rtol=tol, atol=tol, **kwargs)

        def solve(y, q0):
            sol = optx.least_squares(
                _residual,
                solver,
                q0,
                args=(t, y),
                max_steps=256,
                throw=False,
            )
            return sol.value

        return jit_once(jax.vmap(solve))

    if kind == "gauss_newton":
        ours = ("lxk.SmallAuto", lxk.SmallAuto())
        default = "default lx.AutoLinearSolver(well_posed=None)"
    else:
        ours = ("lxk.UnrolledSmallQR", lxk.UnrolledSmallQR())
        default = "default lx.QR"
    methods = [
        Method(ours[0], batched_solve(ours[1]), args, lxk=True),
        Method(default, batched_solve(None), args),
    ]
    name = "GaussNewton" if kind == "gauss_newton" else "LevenbergMarquardt"
    return Case(
        suite="small_qr",
        name=f"optx.{name} m=50 n=3 N={n_fits}",
        params={"kind": kind, "m": 50, "n": 3, "N": n_fits},
        n_systems=n_fits,
        methods=methods,
        reference=_fit_reference(data, y0),
        # The solvers stop on their own step-size criteria: allow 1e4 x theirs.
        tol=np.maximum(1e4 * tol, tolerance(dtype, 1.0)),
        floor=Method("floor", jit_once(lambda y, q0: 2 * y), args),
    )


def _make_case(size, dtype) -> Case:
    kind, *shape = size
    if kind == "lstsq":
        return _lstsq_case(*shape, dtype)
    return _fit_case(kind, *shape, dtype)


def _lstsq_sizes(shapes, elements):
    return [("lstsq", m, n, max(1, round(elements / (m * n)))) for m, n in shapes]


_SHAPES = [(20, 3), (50, 4), (100, 6), (200, 8), (64, 16)]

SUITE = Suite(
    name="small_qr",
    description="N small least-squares problems; optimistix GN and LM curve fits",
    sizes={
        "smoke": _lstsq_sizes([(6, 2)], 2e3)
        + [("gauss_newton", 8), ("levenberg_marquardt", 8)],
        "quick": _lstsq_sizes(_SHAPES, 4e6)
        + [("gauss_newton", 1000), ("levenberg_marquardt", 1000)],
        "full": _lstsq_sizes(_SHAPES + [(256, 4), (256, 16), (32, 32)], 4e6)
        + [("gauss_newton", 1000), ("levenberg_marquardt", 1000)],
    },
    make_case=_make_case,
)
