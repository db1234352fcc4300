# The native CPU backend's first-call time and its use of threads.
#
#   python benchmarks/native_backend.py
#
# 1. First call (trace + lower + compile + one run) of a jitted, vmapped
#    `lx.linear_solve(..., lxk.UnrolledSmallLU())` for every d <= 16, in a fresh
#    process per d (nothing cached), against `lx.LU()`. `lax.platform_dependent`
#    traces and lowers the pure-JAX branch on CPU too, so its cost counts here.
# 2. Time per system of the native kernel with 1 thread
#    (LINEAX_KERNELS_NUM_THREADS=1) and with XLA's CPU thread pool, N d^2 = 4e6.
#
# Measured on the 2-vCPU machine of README.md (2026-11-22): first calls 0.15-0.32 s
# for every d = 1..16 (lx.LU: 0.42-0.76 s); the thread pool against one thread,
# ns per system: d = 2 2.8 vs 8.6 (3.1x), d = 4 17.5 vs 22.6 (1.3x), d = 8 59.7 vs
# 89.3 (1.5x), d = 16 452 vs 551 (1.2x). Numbers are printed, not asserted.
import os
import subprocess
import sys
import textwrap


_FIRST_CALL = """
import time, sys
import jax, jax.numpy as jnp, lineax as lx, lineax_kernels as lxk, numpy as np
jax.config.update("jax_enable_x64", True)
d, which = int(sys.argv[1]), sys.argv[2]
solver = lxk.UnrolledSmallLU() if which == "lxk" else lx.LU()
a = jnp.asarray(np.random.default_rng(0).standard_normal((1000, d, d)))
b = jnp.ones((1000, d))
lxk.backend_info()  # load the library outside the timed region
f = jax.jit(jax.vmap(lambda m, v: lx.linear_solve(
    lx.MatrixLinearOperator(m), v, solver, throw=False).value))
start = time.perf_counter()
jax.block_until_ready(f(a, b))
print(time.perf_counter() - start)
"""

_THREADS = """
import timeit, sys
import jax, jax.numpy as jnp, lineax as lx, lineax_kernels as lxk, numpy as np
jax.config.update("jax_enable_x64", True)
for d in (2, 4, 8, 16):
    n = int(4e6 // d**2)
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, d, d)))
    b = jnp.asarray(rng.standard_normal((n, d)))
    f = jax.jit(jax.vmap(lambda m, v: lx.linear_solve(
        lx.MatrixLinearOperator(m), v, lxk.UnrolledSmallLU(), throw=False).value))
    jax.block_until_ready(f(a, b))
    t = min(timeit.repeat(lambda: jax.block_until_ready(f(a, b)), number=5, repeat=7))
    print(d, t / 5 / n * 1e9)
"""


def _python(code, *args, **env):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    return out.stdout


def main():
    print("First call (trace + lower + compile + run), 1000 systems, seconds:")
    print("| d | lxk.UnrolledSmallLU | lx.LU |")
    print("|---|---|---|")
    for d in range(1, 17):
        ours = float(_python(_FIRST_CALL, d, "lxk"))
        theirs = float(_python(_FIRST_CALL, d, "lx"))
        print(f"| {d} | {ours:.2f} | {theirs:.2f} |", flush=True)
    print("\nNative kernel, ns per system, N d^2 = 4e6:")
    one = _python(_THREADS, LINEAX_KERNELS_NUM_THREADS="1").split("\n")
    pool = _python(_THREADS).split("\n")
    print("| d | 1 thread | thread pool | ratio |")
    print("|---|---|---|---|")
    for line_one, line_pool in zip(one, pool):
        if line_one:
            d, t1 = line_one.split()
            _, tp = line_pool.split()
            print(
                f"| {d} | {float(t1):.1f} | {float(tp):.1f} | "
                f"{float(t1) / float(tp):.2f} |"
            )


if __name__ == "__main__":
    main()
