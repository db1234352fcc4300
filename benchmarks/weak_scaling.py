# Weak scaling of a sharded batch of solves: `python -m benchmarks.weak_scaling
# [--devices 1,2,4,8] [--per-device N] [--out DIR]`.
#
# For each device count `d` one subprocess runs with `d` host devices
# (`--xla_force_host_platform_device_count=d`) and solves `d * N` systems, sharded
# over a 1-D mesh, for every case (dense both batched, dense shared operator,
# tridiagonal) and path (native, pure JAX). Weak scaling is perfect when the wall
# time stays that of one device; on a machine with fewer cores than devices it
# cannot (the devices share the cores), so the cores are reported alongside. The
# bytes moved by collectives are read from the compiled HLO (0 when every device
# solves its own shard). The column `serial/` is the time of the same systems on one
# device over the time on `d` devices: the speed-up the sharding achieved (at most
# min(d, free cores); below 1 means the partitioned program costs more than it gives).
# Writes `weak_scaling.json` and `weak_scaling.png`.
import argparse
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time


_CHILD = """
import json, re, sys, time
import jax, jax.numpy as jnp, lineax as lx, lineax_kernels as lxk, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

jax.config.update("jax_enable_x64", True)
per_device, repeat = int(sys.argv[1]), int(sys.argv[2])
d = len(jax.devices())
mesh = jax.make_mesh((d,), ("batch",), axis_types=(AxisType.Auto,))
batched, shared = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
rng = np.random.default_rng(0)
COLLECTIVE = re.compile(
    r"= (\\S+) (all-gather|all-to-all|collective-permute|all-reduce|reduce-scatter)"
)
BYTES = {"f64": 8, "f32": 4, "s32": 4, "pred": 1, "c128": 16, "c64": 8, "s64": 8}


def collective_bytes(hlo):
    total = 0
    for shape, _ in COLLECTIVE.findall(hlo):
        for dtype, dims in re.findall(r"(\\w+)\\[([\\d,]*)\\]", shape):
            total += BYTES.get(dtype, 8) * int(np.prod([int(x) for x in dims.split(",") if x]))
    return total


def dense(m, v, solver):
    return lx.linear_solve(lx.MatrixLinearOperator(m), v, solver, throw=False).value


def tridiagonal(dl, dd, du, v, solver):
    op = lx.TridiagonalLinearOperator(dd, dl, du)
    return lx.linear_solve(op, v, solver, throw=False).value


def best_time(f, args):
    f(*args).block_until_ready()
    best = float("inf")
    for _ in range(repeat):
        number = 0
        start = time.perf_counter()
        while True:
            f(*args).block_until_ready()
            number += 1
            elapsed = time.perf_counter() - start
            if elapsed > 0.05:
                break
        best = min(best, elapsed / number)
    return best


n_total = d * per_device
size, tri_size = 4, 64
a = rng.standard_normal((n_total, size, size)) + 4 * np.eye(size)
b = rng.standard_normal((n_total, size))
t = [rng.standard_normal((n_total // 8, tri_size - 1)) for _ in range(2)]
td = rng.standard_normal((n_total // 8, tri_size)) + 4
tb = rng.standard_normal((n_total // 8, tri_size))
cases = {
    # name: (function of (args, solver), args, in_axes, systems, solver class)
    "dense, both batched": (dense, (a, b), (0, 0), n_total, lxk.UnrolledSmallLU),
    "dense, operator shared": (dense, (a[0], b), (None, 0), n_total, lxk.UnrolledSmallLU),
    "tridiagonal (n=64), both batched": (
        lambda dd, dl, du, v, s: tridiagonal(dl, dd, du, v, s),
        (td, t[0], t[1], tb), (0, 0, 0, 0), n_total // 8, lxk.ScanTridiagonal,
    ),
}
for name, (fn, args, in_axes, systems, cls) in cases.items():
    placed = [jax.device_put(x, batched if ax == 0 else shared)
              for x, ax in zip(args, in_axes)]
    one = [jax.device_put(x, jax.devices()[0]) for x in args]
    for backend in ("native", "jax"):
        solver = cls(backend=backend)
        f = jax.jit(jax.vmap(lambda *xs: fn(*xs, solver), in_axes=in_axes))
        hlo = f.lower(*placed).compile().as_text()
        row = {"case": name, "backend": backend, "devices": d, "systems": systems,
               "seconds": best_time(f, placed), "collective_bytes": collective_bytes(hlo)}
        # The same systems on one device: the time the devices would take if they
        # ran one after another, with no partitioning cost.
        row["seconds_one_device"] = best_time(f, one) if d > 1 else row["seconds"]
        print(json.dumps(row), flush=True)
"""


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        (line,) = [x for x in out.splitlines() if x.startswith("Model name")]
        return line.split(":", 1)[1].strip()
    except Exception:  # noqa: BLE001 -- only a label.
        return platform.processor() or "unknown"


def _plot(rows, cpu, cores, load, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for case in dict.fromkeys(r["case"] for r in rows):
        for backend, style in (("native", "-o"), ("jax", "--s")):
            rs = [r for r in rows if r["case"] == case and r["backend"] == backend]
            base = rs[0]["seconds"]
            ax.plot(
                [r["devices"] for r in rs],
                [r["seconds"] / base for r in rs],
                style,
                label=f"{case} ({backend})",
            )
    ax.axvline(cores, color="grey", lw=0.8, ls=":")
    ax.text(cores, ax.get_ylim()[1], f" {cores} cores", va="top", color="grey")
    ax.axhline(1.2, color="red", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("host devices (systems grow with them)")
    ax.set_ylabel("wall time / wall time on 1 device")
    ax.set_title(
        "Weak scaling of a sharded batch of solves (1 = perfect)\n"
        f"{cpu}, {cores} cores, load average {load}",
        fontsize=10,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", default="1,2,4,8")
    parser.add_argument("--per-device", type=int, default=1 << 14)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default="docs")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw the plot from the JSON"
    )
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        saved = json.loads((out / "weak_scaling.json").read_text())
        _plot(
            saved["rows"],
            saved["cpu"],
            saved["cores"],
            saved["load"],
            out / "weak_scaling.png",
        )
        return
    cores = os.cpu_count() or 1
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"CPU: {_cpu_model()}, {cores} cores, load average {load}")
    rows = []
    for d in [int(x) for x in args.devices.split(",")]:
        flags = os.environ.get("XLA_FLAGS", "")
        flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", flags)
        env = {
            **os.environ,
            "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={d}",
        }
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(args.per_device), str(args.repeat)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode:
            sys.exit(proc.stderr)
        rows += [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        print(f"{d} devices: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(
        f"\n{'case':34} {'path':6} {'dev':>3} {'systems':>8} {'time':>9} "
        f"{'/1 dev':>6} {'serial/':>7} {'coll. bytes':>11}"
    )
    base = {}
    for r in rows:
        key = (r["case"], r["backend"])
        base.setdefault(key, r["seconds"])
        print(
            f"{r['case']:34} {r['backend']:6} {r['devices']:>3} {r['systems']:>8} "
            f"{r['seconds'] * 1e3:>7.2f}ms {r['seconds'] / base[key]:>6.2f} "
            f"{r['seconds_one_device'] / r['seconds']:>7.2f} "
            f"{r['collective_bytes']:>11}"
        )
    cpu = _cpu_model()
    (out / "weak_scaling.json").write_text(
        json.dumps({"cpu": cpu, "cores": cores, "load": load, "rows": rows}, indent=1)
    )
    _plot(rows, cpu, cores, load, out / "weak_scaling.png")


if __name__ == "__main__":
    main()
