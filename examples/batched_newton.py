# Batched Newton root-finding with Optimistix: `jax.vmap` over thousands of small
# nonlinear systems, with the Newton step's linear solve done by
# `lxk.UnrolledSmallLU()` or `lxk.SmallAuto()` instead of the default
# `lx.AutoLinearSolver(well_posed=None)` (which uses `lx.LU`, one LAPACK call per
# system). The one-line change is `optx.Newton(..., linear_solver=lxk.SmallAuto())`.
#
# Each system is y**3 + M y = c with M nonsymmetric and y in R^6, so the Jacobian
# diag(3 y**2) + M is dense, nonsymmetric and changes every iteration.
#
# Run: `python examples/batched_newton.py`. Times are the min of 5 runs after a
# warm-up (compile) call; the inputs are arguments of the jitted function.

import sys
import timeit

import equinox as eqx
import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import optimistix as optx


def residual(y, args):
    matrix, target = args
    return y**3 + matrix @ y - target


@eqx.filter_jit
def solve_all(linear_solver, matrices, targets):
    solver = optx.Newton(rtol=1e-10, atol=1e-10, linear_solver=linear_solver)

    def solve_one(matrix, target):
        y0 = jnp.zeros_like(target)
        sol = optx.root_find(
            residual, solver, y0, args=(matrix, target), max_steps=50, throw=False
        )
        return sol.value, sol.result == optx.RESULTS.successful

    return jax.vmap(solve_one)(matrices, targets)


def make_problem(key, n_systems, size):
    kmat, ktarget = jr.split(key)
    # M = 3 I + N / sqrt(size), N standard normal: its symmetric part is positive
    # definite (with high probability), so each system has one root and Newton from
    # y = 0 converges; M itself is nonsymmetric.
    noise = jr.normal(kmat, (n_systems, size, size)) / size**0.5
    matrices = noise + 3 * jnp.eye(size)[None]
    targets = jr.normal(ktarget, (n_systems, size))
    return matrices, targets


def time_it(fn, *args, repeat=5):
    jax.block_until_ready(fn(*args))  # compile first; time compiles separately
    run = lambda: jax.block_until_ready(fn(*args))
    return min(timeit.repeat(run, number=1, repeat=repeat))


def main(n_systems=4096, size=4, repeat=5):
    matrices, targets = make_problem(jr.key(0), n_systems, size)
    solvers = {
        "default lx.AutoLinearSolver(well_posed=None)": lx.AutoLinearSolver(
            well_posed=None
        ),
        "lxk.UnrolledSmallLU()": lxk.UnrolledSmallLU(),
        "lxk.SmallAuto()": lxk.SmallAuto(),
    }
    print(f"Newton on {n_systems} systems of size {size} (float64)")
    results = {}
    for name, linear_solver in solvers.items():
        ys, converged = solve_all(linear_solver, matrices, targets)
        res = jax.vmap(residual)(ys, (matrices, targets))
        seconds = time_it(solve_all, linear_solver, matrices, targets, repeat=repeat)
        results[name] = ys, seconds
        print(
            f"  {name:46s} {seconds * 1e3:8.2f} ms   converged "
            f"{int(converged.sum())}/{n_systems}, max |residual| "
            f"{float(jnp.abs(res).max()):.1e}"
        )
    y_default, t_default = results["default lx.AutoLinearSolver(well_posed=None)"]
    for name in list(solvers)[1:]:
        ys, seconds = results[name]
        print(
            f"  {name}: {t_default / seconds:.1f}x faster than the default; max "
            f"|y - y_default| = {float(jnp.abs(ys - y_default).max()):.1e}"
        )
    return results


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
