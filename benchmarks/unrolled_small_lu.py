# lxk.UnrolledSmallLU (through jax.jit(jax.vmap(lx.linear_solve(..., throw=False))))
# vs jnp.linalg.solve (batched), vmapped lx.LU and numpy.linalg.solve: N random
# standard normal d x d systems (condition number <= 1e4), N * d**2 ~ 4e6, d in
# {1, 2, 3, 4, 6, 8} ({12, 16} with --full), plus d = 4 at N = 65536; one d x d operator
# with 1e5 right-hand sides (vmap over b only vs jnp.linalg.solve(A, B), B (d, 1e5));
# compile (first call) seconds per method. Then the kernel formulations tried for this
# solver, without lineax, at d = 4 and 8: the shipped straight-line kernels, the same
# in lax.map chunks, a fused [A|b] straight-line elimination with and without per-step
# materialisation (x / (x * 0 + 1)), and a per-step array formulation on (m, d, C)
# arrays. Every output is checked against a float64 NumPy reference (per-system error
# <= 1000 eps cond) before anything is timed; times are the min over 5 round-robin
# samples. A "floor" row reads A and b and writes an x-sized result.
#
# Typical output (2 vCPU Intel Xeon, AVX-512, otherwise idle; CPU-only jax 0.10.2,
# lineax 0.1.1, numpy 2.4; float64; ns per system, compile s in brackets; default run
# about 2 minutes), with the shipped kernel materialising each step from d = 5:
#
#  d  N        lxk              jnp.linalg.solve  vmap lx.LU   numpy   floor  speed-up
#  1  3999744     2.6 (0.1 s)   153 (0.8 s)        93 (1.1 s)    52      3.0   19.5x
#  2   999424     8.8 (0.1 s)   191 (0.5 s)       184 (0.5 s)    98      1.8   11.1x
#  3   444416    38.6 (0.2 s)   271 (0.4 s)       272 (0.3 s)   154      3.5    4.0x
#  4   249856   123   (0.4 s)   327 (0.3 s)       336 (0.3 s)   212      6.2    1.7x
#  4    65536    37.5 (0.4 s)   293 (0.2 s)       293 (0.2 s)   215      4.3    5.7x
#  6   110592   395   (1.4 s)   600 (0.3 s)       516 (0.3 s)   400     10.8    1.0x
#  8    63488  1437   (2.9 s)   722 (0.4 s)       757 (0.5 s)   578     20.6    0.40x
#  one operator, 1e5 right-hand sides, ns per right-hand side:
#  4              5.1 (0.5 s)    14.4              14.1          44.9           2.7x
#  8             54.9 (2.6 s)    37.2              33.2          85.2           0.60x
#
#  alternatives (ns/system, compile s)   d = 4, N = 249856   d = 8, N = 63488
#  straight-line (shipped)                  98 (0.4 s)        1436 (2.4 s)
#  shipped, lax.map chunks of 2048         322 (0.6 s)        1000 (2.8 s)
#  fused [A|b] straight-line               147 (0.5 s)        2154 (3.7 s)
#  fused + per-step materialise             79 (0.5 s)        1182 (2.8 s)
#  per-step array (m,d,C)                  327 (0.5 s)        2776 (1.5 s)
#  jnp.linalg.solve                        358 (0.3 s)         841 (0.3 s)
#
# (speed-up: the best of jnp / lx.LU / numpy over lxk. Absolute times drift up to 2x
# between runs on this shared machine, so compare within one run. Errors: all <= 5e-13
# in float64. Before per-step materialisation the shipped kernel took 3.7-7.6 us and
# 7-15 s to compile at d = 8, and 1.2 us per right-hand side in the batched-RHS case,
# where XLA had fused the whole factorisation into the loop over right-hand sides.)
#
# Conclusion: the straight-line solver wins clearly for d <= 4 (4-20x over the best of
# LAPACK via jnp/lx.LU and NumPy, which is itself 1.5-2x faster than jnp here; 2.7x
# for one operator with many right-hand sides at d = 4), as long as the batch fits in
# cache: at d = 4 it is 5.7x at N = 65536 but 1.7x at N = 250k, since its fused loops
# re-read full-batch arrays from memory. At d = 6 it is even with NumPy at N = 110k
# (2.7x at N = 28k in `python -m benchmarks`), and at d = 8 it loses 2.5x at N = 63k
# (wins 1.25x at N = 16k). Of the alternatives, chunking with lax.map helps at d = 8
# (1.4x) but costs 3x at d = 4; through lineax, where init and compute are chunked
# separately, it helped nowhere, so it is not shipped. The per-step array formulation
# compiles fastest at d = 8 and runs slowest. So: straight-line code, materialised
# per step from d = 5, max_size=8, and SmallAuto using it up to d = 6.
#
# Run as `python benchmarks/unrolled_small_lu.py [--full] [--dtype float32|float64|both]
# [--repeat R]`. (A rolled fori_loop formulation was also prototyped but gave wrong
# results and is not included.)
import os


os.environ.setdefault("EQX_ON_ERROR", "nan")  # compare like with like vs plain JAX

import argparse
import functools as ft
import math
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
from lineax_kernels._solver.unrolled_small_lu import (
    _lu_factor_entries,
    _lu_solve_entries,
)


jax.config.update("jax_enable_x64", True)

SIZES = (1, 2, 3, 4, 6, 8)
FULL_SIZES = (12, 16)
ALTERNATIVE_SIZES = (4, 8)
BATCHED_RHS_SIZES = (4, 8)
N_RHS = 100_000
CHUNK = 2048  # systems per `lax.map` step in the chunked alternative
# Also run at N = 65536 (N * d**2 ~ 1e6): the working set then fits in cache.
SMALL_N_SIZES = (4,)
SMALL_N = 65536
_MAX_COND = 1e4
_TOL_FACTOR = 1000
_SAMPLE_S = 0.02  # each timing sample runs the function at least this long


#
# Data, reference, correctness.
#


def _cond(matrices):
    # Frobenius-norm condition numbers (an upper bound on the 2-norm ones).
    m = np.asarray(matrices, np.float64)
    return np.linalg.norm(m, axis=(-2, -1)) * np.linalg.norm(
        np.linalg.inv(m), axis=(-2, -1)
    )


def make_problem(n: int, d: int, dtype, seed: int = 0):
    """`n` standard normal `d x d` matrices (so that pivoting matters; the rare ones
    with condition number above 1e4 resampled) and right-hand sides, in `dtype`;
    with the float64 reference solutions of the rounded data and the condition
    numbers."""
    rng = np.random.default_rng([seed, n, d])
    a = rng.standard_normal((n, d, d))
    while True:
        cond = _cond(a.astype(dtype))
        bad = ~(cond <= _MAX_COND)
        if not bad.any():
            break
        a[bad] = rng.standard_normal((int(bad.sum()), d, d))
    a = a.astype(dtype)
    b = rng.standard_normal((n, d)).astype(dtype)
    ref = np.linalg.solve(a.astype(np.float64), b.astype(np.float64)[..., None])[..., 0]
    return a, b, ref, cond


def check(name: str, x, ref, cond, dtype):
    """Raises unless every system's normwise relative forward error is below
    `1000 * eps(dtype) * cond`. Returns the largest error."""
    x = np.asarray(x, np.float64).reshape(ref.shape)
    err = np.max(np.abs(x - ref), axis=-1) / np.max(np.abs(ref), axis=-1)
    tol = _TOL_FACTOR * np.finfo(dtype).eps * np.maximum(cond, 1.0)
    bad = ~(err <= tol)
    if bad.any():
        raise AssertionError(
            f"{name}: wrong result on {int(bad.sum())} of {bad.size} systems "
            f"(max error {np.nanmax(err):.2e}, tolerance {tol.max():.2e})"
        )
    return float(err.max())


#
# Timing.
#


def first_call(fn: Callable, *args) -> tuple[float, object]:
    """Seconds for the first call (trace, compile and one run), and its output."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def time_round_robin(fns: dict[str, tuple[Callable, tuple]], repeat: int):
    """Min over `repeat` samples of the seconds per call, sampling the functions in
    turn. Each sample runs `number` calls, enough for `_SAMPLE_S` seconds."""
    numbers = {}
    for name, (fn, args) in fns.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        once = time.perf_counter() - start
        numbers[name] = max(1, math.ceil(_SAMPLE_S / max(once, 1e-7)))
    best = {name: math.inf for name in fns}
    for _ in range(repeat):
        for name, (fn, args) in fns.items():
            start = time.perf_counter()
            for _ in range(numbers[name]):
                jax.block_until_ready(fn(*args))
            best[name] = min(best[name], (time.perf_counter() - start) / numbers[name])
    return best


def _jit(fn):
    return jax.jit(eqx.debug.assert_max_traces(fn, max_traces=1))


#
# (1) The solver through lineax, and the alternatives to it.
#


def _lineax_solve(solver):
    def solve(matrix, vector):
        operator = lx.MatrixLinearOperator(matrix)
        return lx.linear_solve(operator, vector, solver, throw=False).value

    return solve


def _jnp_solve(matrix, vector):
    # Batched directly: (N, d, d) and (N, d, 1).
    return jnp.linalg.solve(matrix, vector[..., None])[..., 0]


def _numpy_solve(matrix, vector):
    return np.linalg.solve(matrix, vector[..., None])[..., 0]


def _floor(matrix, vector):
    # Memory-bandwidth floor: reads A and b, writes an x-sized result.
    return vector + sum(matrix[..., k] for k in range(matrix.shape[-1]))


def dense_methods(d: int) -> dict[str, Callable]:
    return {
        "lxk.UnrolledSmallLU": _jit(
            jax.vmap(_lineax_solve(lxk.UnrolledSmallLU(max_size=max(d, 6))))
        ),
        "jnp.linalg.solve": _jit(_jnp_solve),
        "vmap lx.LU": _jit(jax.vmap(_lineax_solve(lx.LU()))),
        "numpy.linalg.solve": _numpy_solve,
        "floor": _jit(_floor),
    }


def batched_rhs_methods(d: int) -> dict[str, Callable]:
    # The operator (d, d) is shared; right-hand sides are (M, d), except for the
    # (d, M) natural layout of `jnp.linalg.solve(A, B)` and `numpy.linalg.solve`.
    return {
        "lxk.UnrolledSmallLU": _jit(
            jax.vmap(
                _lineax_solve(lxk.UnrolledSmallLU(max_size=max(d, 6))),
                in_axes=(None, 0),
            )
        ),
        "jnp.linalg.solve": _jit(jnp.linalg.solve),
        "vmap lx.LU": _jit(jax.vmap(_lineax_solve(lx.LU()), in_axes=(None, 0))),
        "numpy.linalg.solve": np.linalg.solve,
    }


#
# (2) Alternative kernel formulations. Each maps A (N, d, d), b (N, d) to x (N, d)
# and works in the batch-innermost layout: every matrix entry one length-C vector.
#


def _abs1(x):
    return jnp.abs(x.real) + jnp.abs(x.imag) if jnp.iscomplexobj(x) else jnp.abs(x)


def _materialise(x):
    # `x / (x * 0 + 1)` equals x for finite x, but XLA may not simplify it away (it
    # differs for inf/NaN), so the value is computed once and stored rather than
    # recomputed inside every consumer fusion. (`lax.optimization_barrier` has the
    # same effect at step granularity.)
    one = x * 0 + 1
    return x // one if jnp.issubdtype(x.dtype, jnp.integer) else x / one


def _pivot(column: list) -> jax.Array:
    # Offset of the largest |entry|, ties to the first (LAPACK's i?amax).
    best = _abs1(column[0])
    which = jnp.zeros(best.shape, jnp.int32)
    for r in range(1, len(column)):
        mag = _abs1(column[r])
        better = mag > best
        best = jnp.where(better, mag, best)
        which = jnp.where(better, jnp.int32(r), which)
    return which


def _shipped(a, b):
    """The shipped kernels: `_lu_factor_entries` then `_lu_solve_entries`, exactly
    what `UnrolledSmallLU`'s vmap rules run (without lineax around them)."""
    d = a.shape[0]
    factors = _lu_factor_entries([[a[i, j] for j in range(d)] for i in range(d)])
    return jnp.stack(_lu_solve_entries(factors, [b[i] for i in range(d)], False))


def _fused(a, b, materialise: bool):
    """Straight-line elimination on the augmented system [A | b] (no separate
    factors or permutation), then back substitution. With `materialise`, the pivot
    index, the pivot row and the trailing submatrix are materialised at every step,
    so that XLA cannot fuse (and duplicate) the whole program into a few giant
    fusions that recompute earlier steps."""
    d = a.shape[0]
    m = _materialise if materialise else (lambda x: x)
    rows = [[a[i, j] for j in range(d)] + [b[i]] for i in range(d)]
    for k in range(d - 1):
        which = m(_pivot([rows[r][k] for r in range(k, d)]))
        old = rows[k]
        rows[k] = [
            m(lax.select_n(which, *[rows[r][j] for r in range(k, d)]))
            for j in range(d + 1)
        ]
        for r in range(k + 1, d):
            swap = which == r - k
            rows[r] = [jnp.where(swap, old[j], rows[r][j]) for j in range(d + 1)]
        for r in range(k + 1, d):
            factor = rows[r][k] / rows[k][k]
            for j in range(k + 1, d + 1):
                rows[r][j] = m(rows[r][j] - factor * rows[k][j])
    x = [None] * d
    for i in reversed(range(d)):
        acc = rows[i][d]
        for j in range(i + 1, d):
            acc = acc - rows[i][j] * x[j]
        x[i] = acc / rows[i][i]
    return jnp.stack(x)


def _per_step_array(a, b):
    """One array operation per elimination step: the remaining rows of [A | b] are an
    (m, d + 1 - k, C) array; the pivot row is gathered with one `select_n`, the old
    row k swapped in with one masked `where`, and the trailing block updated with one
    broadcast multiply-subtract."""
    d = a.shape[0]
    rows = jnp.concatenate([a, b[:, None]], axis=1)  # (d, d + 1, C)
    pivot_rows = []
    for k in range(d):
        m = d - k
        if m == 1:
            pivot_rows.append(rows[0])
            break
        which = _pivot([rows[r, 0] for r in range(m)])
        prow = lax.select_n(
            jnp.broadcast_to(which, rows.shape[1:]), *[rows[r] for r in range(m)]
        )
        swap = lax.broadcasted_iota(jnp.int32, (m - 1, 1, 1), 0) + 1 == which
        rest = jnp.where(swap, rows[0:1], rows[1:])
        factor = rest[:, 0] / prow[0]
        rows = rest[:, 1:] - factor[:, None] * prow[None, 1:]
        pivot_rows.append(prow)
    # Back substitution on the upper triangle: pivot row k holds U[k, k:] and c[k].
    u = [p[:-1] for p in pivot_rows]
    rhs = jnp.stack([p[-1] for p in pivot_rows])  # (d, C)
    x = [None] * d
    for k in reversed(range(d)):
        x[k] = rhs[k] / u[k][0]
        if k > 0:
            column = jnp.stack([u[i][k - i] for i in range(k)])  # U[:k, k]
            rhs = rhs[:k] - column * x[k]
    return jnp.stack(x)


def _batch_innermost(kernel, chunk: int | None = None):
    def solve(matrix, vector):
        n, d, _ = matrix.shape
        if chunk is None or chunk >= n:
            return kernel(jnp.moveaxis(matrix, 0, -1), vector.T).T
        assert n % chunk == 0
        at = matrix.reshape(n // chunk, chunk, d, d).transpose(0, 2, 3, 1)
        bt = vector.reshape(n // chunk, chunk, d).transpose(0, 2, 1)
        x = lax.map(lambda ab: kernel(*ab), (at, bt))  # (n // chunk, d, chunk)
        return x.transpose(0, 2, 1).reshape(n, d)

    return solve


def alternative_methods() -> dict[str, Callable]:
    return {
        "straight-line (shipped)": _jit(_batch_innermost(_shipped)),
        f"shipped, lax.map chunks of {CHUNK}": _jit(_batch_innermost(_shipped, CHUNK)),
        "fused [A|b] straight-line": _jit(
            _batch_innermost(ft.partial(_fused, materialise=False))
        ),
        "fused + per-step materialise": _jit(
            _batch_innermost(ft.partial(_fused, materialise=True))
        ),
        "per-step array (m,d,C)": _jit(_batch_innermost(_per_step_array)),
        "jnp.linalg.solve": _jit(_jnp_solve),
    }


#
# Driver.
#


def _n_systems(d: int) -> int:
    # N * d**2 ~ 4e6, a multiple of CHUNK.
    return max(CHUNK, round(4e6 / d**2 / CHUNK) * CHUNK)


def _run(title, cases, ref, cond, dtype, n, repeat):
    """`cases` maps a name to (function, arguments, transposed output?). Checks every
    output first (raising on a wrong one), then times them round-robin. Prints one
    line per method (ns per system, first-call seconds for JAX methods, max error)
    and returns the seconds per call."""
    compiles, errors, todo = {}, {}, {}
    for name, (fn, args, transposed) in cases.items():
        seconds, out = first_call(fn, *args)
        out = np.asarray(out).T if transposed else out
        if name != "floor":
            errors[name] = check(f"{title}: {name}", out, ref, cond, dtype)
        if not name.startswith("numpy"):
            compiles[name] = seconds
        todo[name] = (fn, args)
    times = time_round_robin(todo, repeat)
    print(f"\n{title}")
    print(f"  {'method':36s} {'ns/system':>10s} {'compile s':>10s} {'max error':>10s}")
    for name, t in times.items():
        c = f"{compiles[name]:.2f}" if name in compiles else ""
        e = f"{errors[name]:.1e}" if name in errors else ""
        print(f"  {name:36s} {t / n * 1e9:10.1f} {c:>10s} {e:>10s}", flush=True)
    return times


_REFERENCES = ("jnp.linalg.solve", "vmap lx.LU", "numpy.linalg.solve")


def _speedup(times):
    return min(times[k] for k in _REFERENCES) / times["lxk.UnrolledSmallLU"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="also d = 12, 16")
    parser.add_argument(
        "--dtype", choices=("float64", "float32", "both"), default="float64"
    )
    parser.add_argument("--repeat", type=int, default=5)
    cli = parser.parse_args()
    dtypes = ("float64", "float32") if cli.dtype == "both" else (cli.dtype,)
    sizes = SIZES + (FULL_SIZES if cli.full else ())
    print(
        f"jax {jax.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"{jax.devices()[0].device_kind}"
    )
    summary = []
    for dtype_name in dtypes:
        dtype = np.dtype(dtype_name)
        for d, n in [(d, _n_systems(d)) for d in sizes] + [
            (d, SMALL_N) for d in SMALL_N_SIZES
        ]:
            a, b, ref, cond = make_problem(n, d, dtype)
            ja, jb = jnp.asarray(a), jnp.asarray(b)
            cases = {
                k: (f, (a, b) if k.startswith("numpy") else (ja, jb), False)
                for k, f in dense_methods(d).items()
            }
            title = f"N = {n} systems of d = {d}, {dtype_name}"
            times = _run(title, cases, ref, cond, dtype, n, cli.repeat)
            summary.append((dtype_name, f"N = {n}, d = {d}", _speedup(times)))
        for d in BATCHED_RHS_SIZES:
            a, b, _, _ = make_problem(N_RHS, d, dtype, seed=1)
            a = a[0]
            ref = np.linalg.solve(a.astype(np.float64), b.astype(np.float64).T).T
            cond = np.full(N_RHS, _cond(a[None])[0])
            methods = batched_rhs_methods(d)
            bt = np.ascontiguousarray(b.T)  # (d, M): the natural layout of solve(A, B)
            cases = {
                "lxk.UnrolledSmallLU": (
                    methods["lxk.UnrolledSmallLU"],
                    (jnp.asarray(a), jnp.asarray(b)),
                    False,
                ),
                "jnp.linalg.solve": (
                    methods["jnp.linalg.solve"],
                    (jnp.asarray(a), jnp.asarray(bt)),
                    True,
                ),
                "vmap lx.LU": (
                    methods["vmap lx.LU"],
                    (jnp.asarray(a), jnp.asarray(b)),
                    False,
                ),
                "numpy.linalg.solve": (methods["numpy.linalg.solve"], (a, bt), True),
            }
            title = (
                f"one {d}x{d} operator, {N_RHS} right-hand sides, {dtype_name} "
                "(ns per right-hand side)"
            )
            times = _run(title, cases, ref, cond, dtype, N_RHS, cli.repeat)
            summary.append((dtype_name, f"1 op, 1e5 rhs, d = {d}", _speedup(times)))
        for d in ALTERNATIVE_SIZES:
            n = _n_systems(d)
            a, b, ref, cond = make_problem(n, d, dtype)
            args = (jnp.asarray(a), jnp.asarray(b))
            cases = {k: (f, args, False) for k, f in alternative_methods().items()}
            title = f"alternative kernels, N = {n}, d = {d}, {dtype_name}"
            _run(title, cases, ref, cond, dtype, n, cli.repeat)
    print("\nspeed-up of lxk.UnrolledSmallLU over the best of jnp / lx.LU / numpy")
    for dtype_name, case, s in summary:
        print(f"  {dtype_name:8s} {case:24s} {s:6.2f}x")


if __name__ == "__main__":
    main()
