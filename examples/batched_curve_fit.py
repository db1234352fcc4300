# Batched nonlinear least squares with Optimistix: `jax.vmap` over many independent
# curve fits (one exponential decay y = a exp(-k t) + c per "pixel"), with the
# Gauss-Newton and Levenberg-Marquardt steps' least-squares solves done by
# `lxk.SmallAuto()` / `lxk.UnrolledSmallQR()` instead of the defaults
# (`lx.AutoLinearSolver(well_posed=None)`, i.e. `lx.QR`, and `lx.QR()`: one LAPACK
# call per system). The one-line change is `linear_solver=...`.
#
# Each fit has m = 50 samples and n = 3 parameters: every step solves a 50 x 3 least
# squares problem (53 x 3 for Levenberg-Marquardt's damped system [J; sqrt(λ) I]).
#
# Run: `python examples/batched_curve_fit.py [n_fits]`. Times are the min of 5 runs
# after a warm-up (compile) call; the inputs are arguments of the jitted function.

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


def model(params, t):
    a, k, c = params[0], params[1], params[2]
    return a * jnp.exp(-k * t) + c


def residual(params, args):
    t, y = args
    return model(params, t) - y


@eqx.filter_jit
def fit_all(solver, t, data, guesses):
    def fit_one(y, y0):
        sol = optx.least_squares(
            residual, solver, y0, args=(t, y), max_steps=256, throw=False
        )
        return sol.value, sol.result == optx.RESULTS.successful

    return jax.vmap(fit_one)(data, guesses)


def make_problem(key, n_fits, m=50):
    ka, kk, kc, knoise, kguess = jr.split(key, 5)
    t = jnp.linspace(0.0, 4.0, m)
    true = jnp.stack(
        [
            jr.uniform(ka, (n_fits,), minval=0.5, maxval=2.0),
            jr.uniform(kk, (n_fits,), minval=0.3, maxval=3.0),
            jr.uniform(kc, (n_fits,), minval=-0.5, maxval=0.5),
        ],
        axis=1,
    )
    data = jax.vmap(model, in_axes=(0, None))(true, t)
    data = data + 0.01 * jr.normal(knoise, data.shape)
    # Initial guesses within 20% of the truth (undamped Gauss-Newton diverges on some
    # fits from one fixed guess far away).
    guesses = true * jr.uniform(kguess, true.shape, minval=0.8, maxval=1.2)
    return t, data, guesses, true


def time_it(fn, *args, repeat=5):
    jax.block_until_ready(fn(*args))  # compile first; time compiles separately
    run = lambda: jax.block_until_ready(fn(*args))
    return min(timeit.repeat(run, number=1, repeat=repeat))


def main(n_fits=1000, repeat=5):
    t, data, guesses, true = make_problem(jr.key(0), n_fits)
    tol = dict(rtol=1e-10, atol=1e-10)
    solvers = {
        "GaussNewton, default lx.AutoLinearSolver(well_posed=None)": (
            optx.GaussNewton(**tol, linear_solver=lx.AutoLinearSolver(well_posed=None))
        ),
        "GaussNewton, lxk.SmallAuto()": optx.GaussNewton(
            **tol, linear_solver=lxk.SmallAuto()
        ),
        "LevenbergMarquardt, default lx.QR()": optx.LevenbergMarquardt(**tol),
        "LevenbergMarquardt, lxk.UnrolledSmallQR()": optx.LevenbergMarquardt(
            **tol, linear_solver=lxk.UnrolledSmallQR()
        ),
    }
    print(f"{n_fits} exponential-decay fits, m = 50, n = 3 (float64)")
    results = {}
    for name, solver in solvers.items():
        params, converged = fit_all(solver, t, data, guesses)
        seconds = time_it(fit_all, solver, t, data, guesses, repeat=repeat)
        results[name] = params, seconds
        error = float(jnp.abs(params - true).max())
        print(
            f"  {name:58s} {seconds * 1e3:8.2f} ms   converged "
            f"{int(converged.sum())}/{n_fits}, max |params - true| {error:.1e}"
        )
    names = list(solvers)
    for default, ours in ((names[0], names[1]), (names[2], names[3])):
        (p_default, t_default), (p_ours, t_ours) = results[default], results[ours]
        difference = float(jnp.abs(p_ours - p_default).max())
        print(
            f"  {ours}: {t_default / t_ours:.1f}x faster than the default; max "
            f"|params - params_default| = {difference:.1e}"
        )
    return results


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
