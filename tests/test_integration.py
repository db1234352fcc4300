# The solvers of this library as `linear_solver=` in Optimistix and Diffrax: results
# and gradients match those with the default `lx.AutoLinearSolver(well_posed=None)`.
# Small problems, so that the whole file runs in about a minute.
import importlib.util
import pathlib

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import optimistix as optx
import pytest

from .helpers import tree_allclose


_default = lx.AutoLinearSolver(well_posed=None)
_rtol = _atol = 1e-10


def _residual(y, args):
    # Nonsymmetric Jacobian diag(3 y**2) + M + (coupling through sin).
    matrix, target = args
    return y**3 + matrix @ y + 0.1 * jnp.sin(jnp.roll(y, 1)) - target


def _problem(getkey, size=4):
    matrix = jr.normal(getkey(), (size, size)) / size**0.5 + 3 * jnp.eye(size)
    # Small enough that `Chord`, which keeps the Jacobian at y = 0, converges too.
    target = 0.3 * jr.normal(getkey(), (size,))
    return matrix, target


@eqx.filter_jit
def _root_value_and_grad(root_solver, linear_solver, matrix, target):
    # Reverse mode through `ImplicitAdjoint` solves with the transposed Jacobian.
    adjoint = optx.ImplicitAdjoint(linear_solver=linear_solver)

    def loss(matrix, target):
        y0 = jnp.zeros_like(target)
        sol = optx.root_find(
            _residual, root_solver, y0, (matrix, target), adjoint=adjoint
        )
        return jnp.sum(jnp.cos(sol.value)), sol.value

    return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(matrix, target)


@pytest.mark.parametrize(
    "root_solver, linear_solver",
    [(optx.Newton, lxk.SmallAuto()), (optx.Chord, lxk.UnrolledSmallLU())],
    ids=("newton-small_auto", "chord-unrolled_small_lu"),
)
def test_optimistix_root_find(getkey, root_solver, linear_solver):
    matrix, target = _problem(getkey)
    out = _root_value_and_grad(
        root_solver(rtol=1e-12, atol=1e-12, linear_solver=linear_solver),
        linear_solver,
        matrix,
        target,
    )
    expected = _root_value_and_grad(
        root_solver(rtol=1e-12, atol=1e-12), _default, matrix, target
    )
    (_, y), _ = out
    assert tree_allclose(_residual(y, (matrix, target)), jnp.zeros(4), atol=1e-12)
    assert tree_allclose(out, expected, rtol=_rtol, atol=_atol)


def test_optimistix_batched_newton(getkey):
    matrices = jr.normal(getkey(), (16, 4, 4)) / 2 + 3 * jnp.eye(4)[None]
    targets = jr.normal(getkey(), (16, 4))

    @eqx.filter_jit
    def solve(linear_solver, matrices, targets):
        solver = optx.Newton(rtol=1e-12, atol=1e-12, linear_solver=linear_solver)
        root = lambda m, t: optx.root_find(_residual, solver, jnp.zeros(4), (m, t))
        return jax.vmap(root)(matrices, targets).value

    out = solve(lxk.SmallAuto(), matrices, targets)
    assert tree_allclose(
        out, solve(_default, matrices, targets), rtol=_rtol, atol=_atol
    )


def _least_squares_residual(params, args):
    # 6 residuals, 3 parameters: a non-square Jacobian.
    ts, data = args
    a, b, c = params
    return a * jnp.exp(-b * ts) + c * ts - data


@eqx.filter_jit
def _least_squares_value_and_grad(linear_solver, adjoint_solver, ts, data):
    solver = optx.GaussNewton(rtol=1e-12, atol=1e-12, linear_solver=linear_solver)
    adjoint = optx.ImplicitAdjoint(linear_solver=adjoint_solver)

    def loss(data):
        sol = optx.least_squares(
            _least_squares_residual,
            solver,
            jnp.array([1.0, 1.0, 0.0]),
            (ts, data),
            adjoint=adjoint,
        )
        return jnp.sum(sol.value**2), sol.value

    return jax.value_and_grad(loss, has_aux=True)(data)


def test_optimistix_gauss_newton_nonsquare(getkey):
    ts = jnp.linspace(0, 2, 6)
    data = 2 * jnp.exp(-0.7 * ts) + 0.3 * ts + 0.01 * jr.normal(getkey(), (6,))
    # The 6 x 3 Jacobian goes to `UnrolledSmallQR`; the adjoint's 3 x 3 system
    # goes to `UnrolledSmallLU`.
    solver = lxk.SmallAuto()
    jac = lx.JacobianLinearOperator(_least_squares_residual, jnp.zeros(3), (ts, data))
    assert solver.select_solver(jac) == lxk.UnrolledSmallQR()
    out = _least_squares_value_and_grad(solver, solver, ts, data)
    expected = _least_squares_value_and_grad(_default, _default, ts, data)
    assert tree_allclose(out, expected, rtol=_rtol, atol=_atol)


def _robertson(t, y, k):
    del t
    k1, k2, k3 = k
    y1, y2, y3 = y
    return jnp.stack(
        [
            -k1 * y1 + k3 * y2 * y3,
            k1 * y1 - k2 * y2**2 - k3 * y2 * y3,
            k2 * y2**2,
        ]
    )


@eqx.filter_jit
def _ode_value_and_grad(linear_solver, k):
    root_finder = diffrax.VeryChord(rtol=1e-10, atol=1e-10, linear_solver=linear_solver)

    def loss(k):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_robertson),
            diffrax.Kvaerno5(root_finder=root_finder),
            t0=0.0,
            t1=1.0,
            dt0=1e-4,
            y0=jnp.array([1.0, 0.0, 0.0]),
            args=k,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
        )
        return jnp.log(sol.ys[0, 1]), sol.ys[0]

    return jax.value_and_grad(loss, has_aux=True)(k)


def test_diffrax_kvaerno5():
    k = jnp.array([0.04, 3e7, 1e4])
    out = _ode_value_and_grad(lxk.SmallAuto(), k)
    expected = _ode_value_and_grad(_default, k)
    # The 3 x 3 Jacobian of the stages differs from LAPACK's LU only in rounding,
    # which the adaptive steps amplify a little.
    assert tree_allclose(out, expected, rtol=1e-9, atol=0)


def _load_example(name):
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_batched_newton():
    results = _load_example("batched_newton").main(n_systems=32, size=3, repeat=1)
    (y_default, _), *others = results.values()
    for ys, _ in others:
        assert tree_allclose(ys, y_default, rtol=_rtol, atol=_atol)


def test_example_batched_curve_fit():
    results = _load_example("batched_curve_fit").main(n_fits=16, repeat=1)
    (gn_default, _), (gn_ours, _), (lm_default, _), (lm_ours, _) = results.values()
    assert tree_allclose(gn_ours, gn_default, rtol=_rtol, atol=_atol)
    # Levenberg-Marquardt stops on a tolerance of 1e-10 on the step, so rounding
    # differences can end it one step apart.
    assert tree_allclose(lm_ours, lm_default, rtol=1e-8, atol=1e-8)


def test_example_implicit_diffusion():
    results = _load_example("implicit_diffusion").main(
        n=16, batch=4, n_steps=5, repeat=1
    )
    (expected, *_), (out, *_) = results.values()
    assert tree_allclose(out, expected, rtol=_rtol, atol=_atol)
