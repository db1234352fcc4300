# An ensemble of stiff ODEs (Robertson's chemical kinetics, 3 species) solved with
# Diffrax's implicit `Kvaerno5`, batched with `jax.vmap` over the rate constants, and
# a `jax.grad` of a loss through `diffeqsolve`. The only change from the default is
# the linear solver of the implicit stages' root finder:
#
#     root_finder = diffrax.VeryChord(rtol=..., atol=..., linear_solver=lxk.SmallAuto())
#     solver = diffrax.Kvaerno5(root_finder=root_finder)
#
# The default is `lx.AutoLinearSolver(well_posed=None)`, i.e. `lx.LU` for this
# 3 x 3 Jacobian. `VeryChord` factorises the Jacobian once per step and reuses it, so
# the linear solver is only part of the cost of each step.
#
# Run: `python examples/stiff_ode_ensemble.py`. Times are the min of 3 runs after a
# warm-up (compile) call; the inputs are arguments of the jitted function. (Most of
# the script's run time is compiling the two reverse-mode `diffeqsolve`s.)

import sys
import timeit

import equinox as eqx
import jax


jax.config.update("jax_enable_x64", True)

import diffrax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk


def robertson(t, y, k):
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


def solve_one(linear_solver, k, t1):
    root_finder = diffrax.VeryChord(rtol=1e-8, atol=1e-8, linear_solver=linear_solver)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(robertson),
        diffrax.Kvaerno5(root_finder=root_finder),
        t0=0.0,
        t1=t1,
        dt0=1e-4,
        y0=jnp.array([1.0, 0.0, 0.0]),
        args=k,
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-9),
        max_steps=4096,
    )
    return sol.ys[0], sol.stats["num_steps"]


@eqx.filter_jit
def solve_and_grad(linear_solver, ks, t1):
    # The loss is the ensemble mean of log y_2(t1) (the small, fast species); its
    # gradient is with respect to every trajectory's rate constants. One jitted
    # function does both, so that each solver is compiled once.
    def loss(ks):
        ys, steps = jax.vmap(solve_one, in_axes=(None, 0, None))(linear_solver, ks, t1)
        return jnp.mean(jnp.log(ys[:, 1])), (ys, steps)

    (loss_value, (ys, steps)), grads = jax.value_and_grad(loss, has_aux=True)(ks)
    return ys, steps, loss_value, grads


def time_it(fn, *args, repeat=3):
    jax.block_until_ready(fn(*args))  # compile first; time compiles separately
    run = lambda: jax.block_until_ready(fn(*args))
    return min(timeit.repeat(run, number=1, repeat=repeat))


def main(n_trajectories=128, repeat=3):
    # Rate constants spread around Robertson's (0.04, 3e7, 1e4), down to half.
    nominal = jnp.array([0.04, 3e7, 1e4])
    ks = nominal * jnp.exp(jr.uniform(jr.key(0), (n_trajectories, 3), minval=-0.7))
    t1 = jnp.array(100.0)
    solvers = {
        "default lx.AutoLinearSolver(well_posed=None)": lx.AutoLinearSolver(
            well_posed=None
        ),
        "lxk.SmallAuto()": lxk.SmallAuto(),
    }
    print(
        f"Robertson, Kvaerno5 + VeryChord, {n_trajectories} trajectories to t = "
        f"{float(t1)}, solve + grad of the loss (float64)"
    )
    results = {}
    for name, linear_solver in solvers.items():
        ys, steps, loss, grads = solve_and_grad(linear_solver, ks, t1)
        seconds = time_it(solve_and_grad, linear_solver, ks, t1, repeat=repeat)
        results[name] = ys, grads, seconds
        print(
            f"  {name:46s} {seconds * 1e3:8.1f} ms   mean steps "
            f"{float(steps.mean()):.0f}, loss {float(loss):.10f}, y(t1) of the first "
            f"= {[float(f'{y:.6g}') for y in ys[0]]}"
        )
    ys_def, grads_def, t_def = results["default lx.AutoLinearSolver(well_posed=None)"]
    ys, grads, seconds = results["lxk.SmallAuto()"]
    rel = lambda a, b: float(jnp.max(jnp.abs(a - b) / jnp.abs(b)))
    print(
        f"  lxk.SmallAuto(): {t_def / seconds:.1f}x faster than the default; max "
        f"relative difference: y(t1) {rel(ys, ys_def):.1e}, grad "
        f"{rel(grads, grads_def):.1e}"
    )
    return results


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
