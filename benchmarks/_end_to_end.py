# End to end: the linear solver inside a user's nonlinear solve.
# 1. optimistix Newton, vmapped over many small nonlinear systems
#    `A y + y**3 / 10 = c` (A with positive definite symmetric part, so one root),
#    with linear_solver=lxk.UnrolledSmallLU() vs optimistix's default
#    lx.AutoLinearSolver(well_posed=None). Reference: NumPy Newton in float64.
# 2. A diffrax ensemble of stiff Robertson problems (rate constants scaled per
#    member), Kvaerno5 with a VeryChord root finder using each linear solver.
#    Reference: scipy's Radau at tight tolerances.
# 3. optimistix BFGS (use_inverse=False, so each step solves with the PSD-tagged
#    Hessian approximation), vmapped over many small convex problems
#    `min 0.5 y^T A y - c^T y + sum(y**4) / 20`, with its default lx.Cholesky vs
#    lxk.SmallAuto (-> UnrolledSmallCholesky). Reference: NumPy Newton in float64.
import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax_kernels as lxk
import numpy as np
import optimistix as optx
import scipy.integrate

from . import _problems as p
from ._harness import Case, jit_once, Method, Suite, tolerance


_LINEAR_SOLVERS = (
    ("lxk.SmallAuto (native)", lxk.SmallAuto(backend="native"), True),
    ("lxk.SmallAuto (pure JAX)", lxk.SmallAuto(backend="jax"), True),
    ("default lx.AutoLinearSolver(well_posed=None)", None, False),
)


def _residual(y, args):
    matrix, c = args
    return matrix @ y + y**3 / 10 - c


def _newton_reference(matrices, c):
    matrices = np.asarray(matrices, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    y = np.zeros_like(c)
    for _ in range(50):
        f = np.einsum("nij,nj->ni", matrices, y) + y**3 / 10 - c
        jacobian = matrices + np.einsum("ni,ij->nij", 3 * y**2 / 10, np.eye(y.shape[1]))
        y = y - np.linalg.solve(jacobian, f[..., None])[..., 0]
    return y


def _newton_case(d, n, dtype) -> Case:
    generator = p.rng(6, d, n)
    noise = generator.standard_normal((n, d, d)) / (2 * np.sqrt(d))
    matrices = (2 * np.eye(d) + noise).astype(dtype)
    c = (2 * generator.standard_normal((n, d))).astype(dtype)
    args = (jnp.asarray(matrices), jnp.asarray(c))
    tol = 1e-10 if np.finfo(dtype).bits == 64 else 1e-5

    def batched_solve(linear_solver):
        kwargs = {} if linear_solver is None else {"linear_solver": linear_solver}
        solver = optx.Newton(rtol=tol, atol=tol, **kwargs)

        def solve(matrix, c):
            y0 = jnp.zeros_like(c)
            sol = optx.root_find(
                _residual, solver, y0, args=(matrix, c), max_steps=64, throw=False
            )
            return sol.value

        return jit_once(jax.vmap(solve))

    methods = [
        Method(name, batched_solve(solver), args, lxk=ours)
        for name, solver, ours in _LINEAR_SOLVERS
    ]
    return Case(
        suite="end_to_end",
        name=f"optx.Newton d={d} N={n}",
        params={"kind": "newton", "d": d, "N": n},
        n_systems=n,
        methods=methods,
        reference=_newton_reference(matrices, c),
        tol=tolerance(dtype, p.dense_cond(matrices)),
        floor=Method("floor", jit_once(p.dense_floor), args),
    )


def _bfgs_objective(y, args):
    matrix, c = args
    return 0.5 * y @ (matrix @ y) - c @ y + jnp.sum(y**4) / 20


def _bfgs_reference(matrices, c):
    # The minimiser solves A y + y**3 / 5 = c (strictly convex: one root).
    matrices = np.asarray(matrices, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    y = np.zeros_like(c)
    for _ in range(50):
        f = np.einsum("nij,nj->ni", matrices, y) + y**3 / 5 - c
        jacobian = matrices + np.einsum("ni,ij->nij", 3 * y**2 / 5, np.eye(y.shape[1]))
        y = y - np.linalg.solve(jacobian, f[..., None])[..., 0]
    return y


def _bfgs_case(d, n, dtype) -> Case:
    generator = p.rng(9, d, n)
    matrices, cond = p.psd_matrices(generator, n, d, dtype)
    c = generator.standard_normal((n, d)).astype(dtype)
    args = (jnp.asarray(matrices), jnp.asarray(c))
    tol = 1e-10 if np.finfo(dtype).bits == 64 else 1e-5

    def batched_solve(linear_solver):
        solver = optx.BFGS(rtol=tol, atol=tol, use_inverse=False)
        if linear_solver is not None:
            descent = optx.NewtonDescent(linear_solver=linear_solver)
            solver = eqx.tree_at(lambda s: s.descent, solver, descent)

        def solve(matrix, c):
            y0 = jnp.zeros_like(c)
            sol = optx.minimise(
                _bfgs_objective,
                solver,
                y0,
                args=(matrix, c),
                max_steps=256,
                throw=False,
            )
            return sol.value

        return jit_once(jax.vmap(solve))

    methods = [
        Method("lxk.SmallAuto", batched_solve(lxk.SmallAuto()), args, lxk=True),
        Method("default lx.Cholesky", batched_solve(None), args),
    ]
    return Case(
        suite="end_to_end",
        name=f"optx.BFGS d={d} N={n}",
        params={"kind": "bfgs", "d": d, "N": n},
        n_systems=n,
        methods=methods,
        reference=_bfgs_reference(matrices, c),
        # BFGS stops on its own step-size criterion: allow 1e3 x its tolerance.
        tol=np.maximum(1e3 * tol, tolerance(dtype, cond)),
        floor=Method("floor", jit_once(p.dense_floor), args),
    )


def _robertson(t, y, k):
    del t
    k1, k2, k3 = k[0], k[1], k[2]
    y1, y2, y3 = y[0], y[1], y[2]
    d1 = -k1 * y1 + k3 * y2 * y3
    d3 = k2 * y2**2
    return jnp.stack([d1, -d1 - d3, d3])


def _robertson_reference(rates, t1):
    def solve(k):
        def f(t, y):
            d1 = -k[0] * y[0] + k[2] * y[1] * y[2]
            d3 = k[1] * y[1] ** 2
            return [d1, -d1 - d3, d3]

        sol = scipy.integrate.solve_ivp(
            f, (0.0, t1), [1.0, 0.0, 0.0], method="Radau", rtol=1e-11, atol=1e-15
        )
        return sol.y[:, -1]

    return np.stack([solve(k) for k in np.asarray(rates, dtype=np.float64)])


def _robertson_case(n, t1, dtype) -> Case:
    generator = p.rng(7, n)
    scale = np.exp(generator.uniform(np.log(0.5), np.log(2.0), (n, 3)))
    rates = (np.array([0.04, 3e7, 1e4]) * scale).astype(dtype)
    args = (jnp.asarray(rates),)
    if np.finfo(dtype).bits == 64:
        rtol, atol = 1e-8, 1e-10
    else:
        rtol, atol = 1e-4, 1e-7

    def batched_solve(linear_solver):
        kwargs = {} if linear_solver is None else {"linear_solver": linear_solver}
        root_finder = diffrax.VeryChord(rtol=rtol, atol=atol, **kwargs)
        solver = diffrax.Kvaerno5(root_finder=root_finder)

        def solve(k):
            y0 = jnp.array([1.0, 0.0, 0.0], dtype=k.dtype)
            sol = diffrax.diffeqsolve(
                diffrax.ODETerm(_robertson),
                solver,
                t0=0.0,
                t1=t1,
                dt0=None,
                y0=y0,
                args=k,
                stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                max_steps=4096,
                throw=False,
            )
            return sol.ys[-1]  # pyright: ignore

        return jit_once(jax.vmap(solve))

    methods = [
        Method(name, batched_solve(solver), args, lxk=ours)
        for name, solver, ours in _LINEAR_SOLVERS
    ]
    # The ODE solution is only as accurate as the step-size control asks for.
    return Case(
        suite="end_to_end",
        name=f"diffrax Robertson Kvaerno5 N={n} t1={t1:g}",
        params={"kind": "robertson", "N": n, "t1": t1},
        n_systems=n,
        methods=methods,
        reference=_robertson_reference(rates, t1),
        tol=np.maximum(100 * rtol, tolerance(dtype, 1.0)),
        floor=Method("floor", jit_once(lambda k: 2 * k), args),
    )


def _make_case(size, dtype) -> Case:
    kind, *shape = size
    if kind == "newton":
        return _newton_case(*shape, dtype)
    if kind == "bfgs":
        return _bfgs_case(*shape, dtype)
    return _robertson_case(*shape, dtype)


SUITE = Suite(
    name="end_to_end",
    description="optimistix Newton and BFGS, diffrax Kvaerno5 ensembles",
    sizes={
        "smoke": [("newton", 3, 16), ("bfgs", 3, 16), ("robertson", 4, 1.0)],
        "quick": [
            ("newton", 6, 1000),
            ("bfgs", 5, 1000),
            ("robertson", 64, 100.0),
        ],
        "full": [
            ("newton", 4, 10_000),
            ("newton", 6, 1000),
            ("newton", 8, 10_000),
            ("bfgs", 5, 1000),
            ("bfgs", 5, 10_000),
            ("robertson", 1000, 1e4),
        ],
    },
    make_case=_make_case,
)
