# Backward-Euler time stepping of the 1-D diffusion-advection equation
#
#     u_t + v u_x = D u_xx  on (0, 1),  u(0) = u(1) = 0,
#
# with central differences, stepped with `jax.lax.scan`: each step solves the
# tridiagonal system (I - dt L) u_{k+1} = u_k. A batch of (D, v) pairs runs under
# `jax.vmap`, and `jax.grad` of a data-misfit loss gives the gradients with respect to
# the physical coefficients D and v. The only change from the default is
# `lx.linear_solve(operator, u, lxk.ScanTridiagonal())` (or `lxk.SmallAuto()`, which
# picks `ScanTridiagonal` for tridiagonal operators); the default for a
# `lx.TridiagonalLinearOperator` is `lx.Tridiagonal` (LAPACK's `gtsv`, once per
# system).
#
# The operator does not change in time, so `solver.init` runs once and its state is
# passed to every step as `state=` (ScanTridiagonal's state is the bands; on CPU its
# native kernel factorises and solves in one fused pass per step, which costs less
# than reading stored factors back). At high cell Péclet number
# (here v h / (2 D) = 2) the matrix is not diagonally dominant, so the solver's
# partial pivoting matters.
#
# Run: `python examples/implicit_diffusion.py`. Times are the min of 5 runs after a
# warm-up (compile) call; the inputs are arguments of the jitted functions. Measured
# (2-core shared CPU, jax 0.10.2, native kernel): lx default 58.5 ms solve / 179 ms
# value_and_grad; lxk.ScanTridiagonal() 26.3 ms / 122 ms, i.e. 2.2x and 1.5x. (Not
# yet profiled: the gradient's extra time is presumably outside the solves, which
# are only 64 systems of 256 unknowns per step.)

import sys
import timeit

import equinox as eqx
import jax


jax.config.update("jax_enable_x64", True)

import jax.lax as lax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk


def make_operator(diffusivity, velocity, n, dt):
    h = 1 / (n + 1)
    diff = dt * diffusivity / h**2
    adv = dt * velocity / (2 * h)
    ones = jnp.ones(n)
    return lx.TridiagonalLinearOperator(
        (1 + 2 * diff) * ones, -(diff + adv) * ones[1:], -(diff - adv) * ones[1:]
    )


def simulate(linear_solver, diffusivity, velocity, u0, n_steps, dt):
    operator = make_operator(diffusivity, velocity, u0.shape[0], dt)
    state = linear_solver.init(operator, {})

    def step(u, _):
        sol = lx.linear_solve(operator, u, linear_solver, state=state)
        return sol.value, None

    u, _ = lax.scan(step, u0, length=n_steps)
    return u


@eqx.filter_jit
def simulate_batch(linear_solver, diffusivities, velocities, u0, n_steps, dt):
    return jax.vmap(simulate, in_axes=(None, 0, 0, None, None, None))(
        linear_solver, diffusivities, velocities, u0, n_steps, dt
    )


@eqx.filter_jit
def loss_and_grad(linear_solver, diffusivities, velocities, u0, target, n_steps, dt):
    def loss(diffusivities, velocities):
        u = simulate_batch(linear_solver, diffusivities, velocities, u0, n_steps, dt)
        return jnp.mean((u - target[None, :]) ** 2)

    return jax.value_and_grad(loss, argnums=(0, 1))(diffusivities, velocities)


def time_it(fn, *args, repeat=5):
    jax.block_until_ready(fn(*args))  # compile first; time compiles separately
    run = lambda: jax.block_until_ready(fn(*args))
    return min(timeit.repeat(run, number=1, repeat=repeat))


def main(n=256, batch=64, n_steps=100, repeat=5):
    dt = 1e-2
    x = jnp.linspace(0, 1, n + 2)[1:-1]
    u0 = jnp.exp(-(((x - 0.3) / 0.05) ** 2))
    # The "measurement": the true coefficients (D, v) = (1e-3, 1.0), with h = 1/257
    # cell Péclet number v h / (2 D) ~ 2. The batch is a sweep of guesses around it.
    true = lxk.ScanTridiagonal()
    target = simulate(true, jnp.array(1e-3), jnp.array(1.0), u0, n_steps, dt)
    diffusivities = jnp.linspace(0.5e-3, 2e-3, batch)
    velocities = jnp.linspace(0.8, 1.2, batch)
    solvers = {
        "default lx.AutoLinearSolver(well_posed=None)": lx.AutoLinearSolver(
            well_posed=None
        ),
        "lxk.ScanTridiagonal()": lxk.ScanTridiagonal(),
    }
    print(
        f"Backward Euler, n = {n}, {n_steps} steps, batch of {batch} (D, v) pairs "
        "(float64)"
    )
    results = {}
    for name, linear_solver in solvers.items():
        args = (linear_solver, diffusivities, velocities, u0)
        u = simulate_batch(*args, n_steps, dt)
        loss, (grad_d, grad_v) = loss_and_grad(*args, target, n_steps, dt)
        seconds = time_it(simulate_batch, *args, n_steps, dt, repeat=repeat)
        grad_seconds = time_it(loss_and_grad, *args, target, n_steps, dt, repeat=repeat)
        results[name] = u, grad_d, grad_v, seconds, grad_seconds
        print(
            f"  {name:46s} solve {seconds * 1e3:7.2f} ms, value_and_grad "
            f"{grad_seconds * 1e3:7.2f} ms   loss {float(loss):.6e}, dloss/dD[0] "
            f"{float(grad_d[0]):.6e}, dloss/dv[0] {float(grad_v[0]):.6e}"
        )
    u_def, gd_def, gv_def, t_def, tg_def = results[
        "default lx.AutoLinearSolver(well_posed=None)"
    ]
    u, gd, gv, seconds, grad_seconds = results["lxk.ScanTridiagonal()"]
    rel = lambda a, b: float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
    print(
        f"  lxk.ScanTridiagonal(): solve {t_def / seconds:.1f}x, value_and_grad "
        f"{tg_def / grad_seconds:.1f}x faster than the default; max relative "
        f"difference: u {rel(u, u_def):.1e}, dloss/dD {rel(gd, gd_def):.1e}, "
        f"dloss/dv {rel(gv, gv_def):.1e}"
    )
    return results


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
