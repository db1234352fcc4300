# The one timing helper, the one case/row type and the correctness check shared by
# every suite. Methodology (STYLE.md section 11): correctness is checked on the
# warm-up (compiling) call, before anything is timed; the timed callable blocks on its
# result; inputs are jit arguments; every sample times `number` calls, with `number`
# chosen so that one sample lasts at least `min_sample_s`; methods are called
# round-robin and the minimum over samples is reported.
import dataclasses
import math
import time
import timeit
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np


# Forward error allowed per system: `_TOL_FACTOR * eps(dtype) * cond`. Pivoted LU and
# Gaussian elimination have error bounds of the form `c(d) * eps * cond` with a small
# `c(d)`; 1000 leaves plenty of room and still catches real bugs (a wrong solve gives
# errors of order 1).
_TOL_FACTOR = 1e3


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    repeat: int  # samples per method (round-robin)
    min_sample_s: float  # each sample times enough calls to last at least this long
    max_number: int = 1000


PROFILES = {
    "smoke": Profile("smoke", repeat=1, min_sample_s=0.0),
    "quick": Profile("quick", repeat=5, min_sample_s=0.02),
    "full": Profile("full", repeat=10, min_sample_s=0.05),
}


@dataclasses.dataclass(frozen=True)
class Method:
    """One way of solving the problem of a case.

    - `fn(*args)` is called as is (JAX methods are built with `jit_once`).
    - `lxk`: whether this is one of ours (speed-ups are against the best non-`lxk`).
    - `jax`: whether `fn` compiles on its first call (then compile time is reported).
    - `to_canonical`: maps the output (as NumPy) to the reference's layout; runs
        outside the timed region.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    lxk: bool = False
    jax: bool = True
    to_canonical: Callable[[Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Case:
    """One problem, solved by several methods on the same data.

    `reference` is a float64 pytree of NumPy arrays whose leaves all have a leading
    axis of length `n_systems`; `tol` is the allowed relative (normwise, per system)
    forward error, a scalar or one value per system. `floor` is a trivial kernel
    reading the same inputs and writing an output-sized result: the memory-bandwidth
    floor each method is compared with.
    """

    suite: str
    name: str
    params: dict[str, Any]
    n_systems: int
    methods: Sequence[Method]
    reference: Any
    tol: Any
    floor: Method | None = None


@dataclasses.dataclass
class Row:
    suite: str
    case: str
    method: str
    params: dict[str, Any]
    lxk: bool
    n_systems: int
    ok: bool
    status: str  # "ok", or why not
    max_err: float | None = None
    tol: float | None = None  # the tolerance at the worst system
    compile_s: float | None = None
    time_s: float | None = None  # per call, all systems
    per_system_s: float | None = None
    number: int | None = None  # calls per sample
    speedup: float | None = None  # best non-lxk time / this time
    floor_multiple: float | None = None  # this time / bandwidth-floor time


@dataclasses.dataclass(frozen=True)
class Plot:
    """A line plot of `y` (a `Row` field) against the case parameter `x`, one line
    per method."""

    x: str
    y: str
    log_x: bool = False
    log_y: bool = True


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named list of cases; `sizes[profile]` are the arguments of `make_case`,
    which builds the data (in `dtype`) and the methods of one case."""

    name: str
    description: str
    sizes: dict[str, list[Any]]
    make_case: Callable[[Any, Any], Case]
    plots: tuple[Plot, ...] = ()


def jit_once(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`jax.jit`, failing if `fn` is ever traced twice (so no retracing sneaks into
    the timings). Every call makes a fresh wrapper, so that each case compiles anew
    and its compile time is its own."""
    return jax.jit(eqx.debug.assert_max_traces(fn, max_traces=1))


def tolerance(dtype: Any, cond: Any) -> np.ndarray:
    """The per-system forward-error tolerance for a dtype and condition numbers."""
    eps = np.finfo(dtype).eps
    return _TOL_FACTOR * eps * np.maximum(np.asarray(cond, dtype=np.float64), 1.0)


def relative_errors(out: Any, reference: Any, n_systems: int) -> np.ndarray:
    """Per-system normwise relative error, `max |out - ref| / max |ref|`, worst over
    the leaves of the pytrees."""
    out_leaves = jax.tree.leaves(out)
    ref_leaves = jax.tree.leaves(reference)
    if len(out_leaves) != len(ref_leaves):
        raise ValueError("output and reference have different structures")
    errs = np.zeros(n_systems)
    for o, r in zip(out_leaves, ref_leaves, strict=True):
        o = np.asarray(o, dtype=np.float64).reshape(n_systems, -1)
        r = np.asarray(r, dtype=np.float64).reshape(n_systems, -1)
        scale = np.max(np.abs(r), axis=1)
        scale = np.where(scale > 0, scale, 1.0)
        err = np.max(np.abs(o - r), axis=1) / scale
        errs = np.maximum(errs, np.where(np.isnan(err), np.inf, err))
    return errs


def _call(method: Method) -> Callable[[], Any]:
    fn, args = method.fn, method.args
    return lambda: jax.block_until_ready(fn(*args))


def run_case(case: Case, profile: Profile) -> list[Row]:
    """Checks every method of `case` against the reference, then times the correct
    ones (and the floor) round-robin. Returns one row per method."""
    rows = []
    timed: list[tuple[Method, Row | None]] = []
    first_call_s: dict[str, float] = {}
    for method in case.methods:
        row = Row(
            suite=case.suite,
            case=case.name,
            method=method.name,
            params=dict(case.params),
            lxk=method.lxk,
            n_systems=case.n_systems,
            ok=False,
            status="",
        )
        rows.append(row)
        # Warm-up call: compiles, and gives the output checked for correctness.
        start = time.perf_counter()
        try:
            out = _call(method)()
        except Exception as e:  # reported in the row; fails the run at the end
            row.status = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            continue
        first_call_s[method.name] = time.perf_counter() - start
        out = jax.tree.map(np.asarray, out)
        if method.to_canonical is not None:
            out = method.to_canonical(out)
        errs = relative_errors(out, case.reference, case.n_systems)
        tol = np.broadcast_to(np.asarray(case.tol, dtype=np.float64), errs.shape)
        worst = int(np.argmax(errs / tol))
        row.max_err = float(np.max(errs))
        row.tol = float(tol[worst])
        if not np.all(errs <= tol):
            row.status = (
                f"wrong: error {errs[worst]:.3g} > tolerance {tol[worst]:.3g} "
                f"(system {worst})"
            )
            continue
        row.ok = True
        row.status = "ok"
        timed.append((method, row))
    if case.floor is not None:
        _call(case.floor)()  # compile
        timed.append((case.floor, None))

    # Calls per sample, from one more (warm) call.
    calls = []
    for method, _ in timed:
        call = _call(method)
        start = time.perf_counter()
        call()
        estimate = max(time.perf_counter() - start, 1e-9)
        number = min(
            max(1, math.ceil(profile.min_sample_s / estimate)), profile.max_number
        )
        calls.append((call, number))
    best = [math.inf] * len(timed)
    for _ in range(profile.repeat):
        for i, (call, number) in enumerate(calls):
            best[i] = min(best[i], timeit.timeit(call, number=number) / number)

    floor_s = best[-1] if case.floor is not None else None
    for (method, row), time_s, (_, number) in zip(timed, best, calls, strict=True):
        if row is None:
            continue
        row.time_s = time_s
        row.per_system_s = time_s / case.n_systems
        row.number = number
        if method.jax:
            # The first call traced, compiled and ran once.
            row.compile_s = max(first_call_s[method.name] - time_s, 0.0)
        if floor_s is not None:
            row.floor_multiple = time_s / floor_s
    alternatives = [r.time_s for r in rows if r.ok and not r.lxk]
    if alternatives:
        best_alternative = min(alternatives)  # pyright: ignore
        for row in rows:
            if row.ok:
                row.speedup = best_alternative / row.time_s  # pyright: ignore
    return rows
