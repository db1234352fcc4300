# lxk.ScanTridiagonal (pivoted and `pivoting=False`) vs vmapped lx.Tridiagonal and
# jax.lax.linalg.tridiagonal_solve (batched directly), float64, on (n, batch) workloads;
# plus jit(grad) of a loss through lx.linear_solve vs the forward solve and vs
# differentiating straight through a naive scan Thomas; plus compile times.
#
# `lxk.ScanTridiagonal()` runs its native CPU kernel (SIMD tiles of
# systems; a single system eliminated from both ends). Typical ratios (2 vCPU Intel
# Xeon with AVX-512, shared and loaded, jax 0.10.2, lineax 0.1.1, float64), from the
# suite (`python -m benchmarks --full --only 'tridiag|grad'`), which also has the
# pure-JAX rows:
#
# (n, batch)     pivoted vs best of lx.Tridiagonal/lax   pivoting=False   × floor
# (1000000, 1)   2.0x                                     2.5x             4.6
# (4096, 256)    5.9x                                     4.8x             1.0
# (256, 4096)    7.0x                                     4.9x             2.8
# (32, 32768)    4.9x                                     6.3x             1.8
# jit(grad) through lxk.ScanTridiagonal: 2.6-3.3x its forward, 4.6x lx's default
# and 7.7-8.7x a naive scan Thomas differentiated directly.
#
# Conclusion: the native kernel is 2-7x faster than LAPACK gtsv (vmapped
# lx.Tridiagonal) on this CPU; batched it runs at 1-3x the memory floor. The
# pure-JAX kernel (`backend="jax"`, the GPU/TPU path) stays 0.35-0.8x LAPACK on CPU:
# XLA:CPU runs each scan step as several small kernels. This machine is noisy:
# single runs of this script have shown the pivoted ratio anywhere from 1.2x to 7x
# at (256, 4096); compare within a run and take the suite's round-robin minimum.
#
# Run as `python benchmarks/scan_tridiagonal.py [--repeat R] [--workloads N,B ...]`.
# The functions `make_problem`, `make_solves`, `make_grads`, `time_it`,
# `compile_time` and `run_workload` are reusable by a benchmark suite.
import os


os.environ.setdefault("EQX_ON_ERROR", "nan")  # compare like with like vs plain JAX

import argparse
import time
import timeit
from collections.abc import Callable

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import lineax_kernels as lxk
import numpy as np


jax.config.update("jax_enable_x64", True)

WORKLOADS = ((1_000_000, 1), (4096, 256), (256, 4096), (32, 32768))


def make_problem(key, n: int, batch: int, dtype=jnp.float64):
    """Random diagonally dominant tridiagonal systems, so that every method (including
    the unpivoted ones) is accurate. Arrays have shape `(batch, n)` (`(n,)` if
    `batch == 1`, solved without `vmap`); the off-diagonals are zero-padded to length
    `n` so that every argument has the same shape."""
    shape = (n,) if batch == 1 else (batch, n)
    kd, kl, ku, kb = jr.split(key, 4)
    lower = jr.uniform(kl, shape, dtype, -1, 1)
    upper = jr.uniform(ku, shape, dtype, -1, 1)
    diag = 2.5 + jr.uniform(kd, shape, dtype)
    lower = lower.at[..., 0].set(0)  # lower[..., i] is A[i, i-1]
    upper = upper.at[..., -1].set(0)  # upper[..., i] is A[i, i+1]
    rhs = jr.normal(kb, shape, dtype)
    return diag, lower, upper, rhs


def _lx_solve(solver):
    def solve(diag, lower, upper, rhs):
        operator = lx.TridiagonalLinearOperator(diag, lower[1:], upper[:-1])
        return lx.linear_solve(operator, rhs, solver).value

    return solve


def _lax_solve(diag, lower, upper, rhs):
    # Batched directly: (..., n) diagonals, (..., n, 1) right-hand side.
    return lax.linalg.tridiagonal_solve(lower, diag, upper, rhs[..., None])[..., 0]


def _naive_thomas(diag, lower, upper, rhs):
    # A plain Thomas algorithm (https://en.wikipedia.org/wiki/Tridiagonal_matrix_algorithm;
    # `_p` means "prime") with the batch in the carry, to be differentiated straight
    # through by JAX.
    a, b, c, d = (jnp.moveaxis(x, -1, 0) for x in (lower, diag, upper, rhs))

    def forward(carry, x):
        c_p, d_p = carry
        a_i, b_i, c_i, d_i = x
        denom = b_i - a_i * c_p
        new = (c_i / denom, (d_i - a_i * d_p) / denom)
        return new, new

    zero = jnp.zeros_like(b[0])
    _, (c_p, d_p) = lax.scan(forward, (zero, zero), (a, b, c, d))

    def backward(x_next, x):
        c_p_i, d_p_i = x
        x_i = d_p_i - c_p_i * x_next
        return x_i, x_i

    _, x = lax.scan(backward, zero, (c_p, d_p), reverse=True)
    return jnp.moveaxis(x, 0, -1)


def _batched(fn, batch):
    return fn if batch == 1 else jax.vmap(fn)


def make_solves(batch: int, pivoting: bool | None = None) -> dict[str, Callable]:
    """Jitted forward solves `f(diag, lower, upper, rhs) -> x`, keyed by name.
    `pivoting=None` gives both ScanTridiagonal settings."""
    solves = {}
    for p in (True, False) if pivoting is None else (pivoting,):
        name = "lxk.ScanTridiagonal" + ("" if p else "(pivoting=False)")
        solves[name] = _batched(_lx_solve(lxk.ScanTridiagonal(pivoting=p)), batch)
    solves["vmap lx.Tridiagonal"] = _batched(_lx_solve(lx.Tridiagonal()), batch)
    solves["lax.linalg.tridiagonal_solve"] = _lax_solve
    return {
        k: jax.jit(eqx.debug.assert_max_traces(v, max_traces=1))
        for k, v in solves.items()
    }


def make_grads(batch: int) -> dict[str, Callable]:
    """Jitted gradients of `sum(x**2)` with respect to all four inputs."""

    def loss(solve):
        solve = _batched(solve, batch)
        return lambda *args: jnp.sum(solve(*args) ** 2)

    fns = {
        "grad lxk.ScanTridiagonal": loss(_lx_solve(lxk.ScanTridiagonal())),
        "grad vmap lx.Tridiagonal": loss(_lx_solve(lx.Tridiagonal())),
        "grad naive scan Thomas": lambda *a: jnp.sum(_naive_thomas(*a) ** 2),
    }
    return {
        k: jax.jit(
            eqx.debug.assert_max_traces(jax.grad(v, argnums=(0, 1, 2, 3)), max_traces=1)
        )
        for k, v in fns.items()
    }


def time_it(fns: dict[str, Callable], *args, repeat: int = 10) -> dict[str, float]:
    """Min over `repeat` single calls, in seconds, alternating between the functions.
    Each must already be compiled for `args`."""
    times = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            run = lambda: jax.block_until_ready(fn(*args))
            times[k] = min(times[k], min(timeit.repeat(run, number=1, repeat=1)))
    return times


def compile_time(fn: Callable, *args) -> float:
    """Seconds to trace, lower and compile `fn` for `args`."""
    start = time.perf_counter()
    fn.lower(*args).compile()  # pyright: ignore[reportFunctionMemberAccess]
    return time.perf_counter() - start


def run_workload(n: int, batch: int, repeat: int = 10, dtype=jnp.float64):
    """Checks every method against the true solution, then times them. Returns a dict
    of seconds: forward solves, gradients, and `compile ...` entries."""
    args = make_problem(jr.key(0), n, batch, dtype)
    diag, lower, upper, rhs = args
    solves = make_solves(batch)
    grads = make_grads(batch)
    results = {}
    for name, fn in solves.items():
        results["compile " + name] = compile_time(fn, *args)
    for name, fn in grads.items():
        results["compile " + name] = compile_time(fn, *args)
    # Correctness: the residual A x - b, and gradients agreeing with each other.
    for name, fn in solves.items():
        x = fn(*args)
        residual = diag * x - rhs
        residual = residual.at[..., 1:].add(lower[..., 1:] * x[..., :-1])
        residual = residual.at[..., :-1].add(upper[..., :-1] * x[..., 1:])
        err = float(jnp.max(jnp.abs(residual)))
        assert err < 1e-10, (name, err)
    reference = None
    for name, fn in grads.items():
        g = fn(*args)
        if reference is None:
            reference = g
        for a, b in zip(g, reference):
            assert np.allclose(a, b, rtol=1e-8, atol=1e-8), name
    results.update(time_it(solves | grads, *args, repeat=repeat))
    return results


def _main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--workloads", nargs="*", default=None, help="e.g. 4096,256")
    cli = parser.parse_args()
    workloads = (
        WORKLOADS
        if cli.workloads is None
        else [tuple(int(x) for x in w.split(",")) for w in cli.workloads]
    )
    for n, batch in workloads:
        results = run_workload(n, batch, cli.repeat)
        base = results["vmap lx.Tridiagonal"]
        forward = results["lxk.ScanTridiagonal"]
        print(f"(n, batch) = ({n}, {batch})")
        for name, t in results.items():
            if name.startswith("compile"):
                continue
            extra = ""
            if not name.startswith("grad"):
                extra = f"  {base / t:4.1f}x vs vmap lx.Tridiagonal"
            elif name == "grad lxk.ScanTridiagonal":
                extra = f"  {t / forward:4.1f}x its forward"
            else:
                extra = f"  {t / results['grad lxk.ScanTridiagonal']:4.1f}x grad lxk"
            print(f"  {name:36s} {t * 1e3:7.2f} ms{extra}")
        compiles = [
            f"{k.removeprefix('compile ')} {v:.2f}s"
            for k, v in results.items()
            if k.startswith("compile lxk") or k == "compile grad lxk.ScanTridiagonal"
        ]
        print("  compile: " + ", ".join(compiles))


if __name__ == "__main__":
    _main()
