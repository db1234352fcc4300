# The one reporting path: JSON (environment + every row), a Markdown table per suite
# (also printed as the summary), and PNG line plots.
import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import sys
from collections.abc import Sequence
from typing import Any

import jax
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ._harness import Row, Suite


_PACKAGES = (
    "jax",
    "jaxlib",
    "lineax",
    "lineax-kernels",
    "equinox",
    "optimistix",
    "diffrax",
    "numpy",
    "scipy",
)


def environment(profile: str, dtype: str) -> dict[str, Any]:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "profile": profile,
        "dtype": dtype,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "python": sys.version.split()[0],
        "versions": versions,
        "argv": sys.argv[1:],
    }


def _seconds(x: float | None) -> str:
    if x is None:
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if x >= scale or unit == "ns":
            return f"{x / scale:.3g} {unit}"
    raise AssertionError


def _number(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def markdown(rows: Sequence[Row], suites: Sequence[Suite]) -> str:
    lines = []
    for suite in suites:
        suite_rows = [r for r in rows if r.suite == suite.name]
        if not suite_rows:
            continue
        lines += [
            f"### {suite.name}: {suite.description}",
            "",
            "| case | method | time / system | speed-up | × floor | compile | "
            "max error | status |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in suite_rows:
            method = f"**{r.method}**" if r.lxk else r.method
            lines.append(
                f"| {r.case} | {method} | {_seconds(r.per_system_s)} | "
                f"{_number(r.speedup, '.2f')} | {_number(r.floor_multiple, '.1f')} | "
                f"{_seconds(r.compile_s)} | {_number(r.max_err, '.1e')} | "
                f"{r.status} |"
            )
        lines.append("")
    return "\n".join(lines)


_LABELS = {
    "per_system_s": "time per system (s)",
    "speedup": "speed-up over the best non-lxk method",
}


def _plot(
    suite: Suite, rows: Sequence[Row], out: pathlib.Path, subtitle: str
) -> list[pathlib.Path]:
    paths = []
    for spec in suite.plots:
        rows_ = [
            r
            for r in rows
            if r.suite == suite.name and r.ok and getattr(r, spec.y) is not None
        ]
        if not rows_:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for method in dict.fromkeys(r.method for r in rows_):
            points = sorted(
                (r.params[spec.x], getattr(r, spec.y))
                for r in rows_
                if r.method == method
            )
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=method)
        if spec.log_x:
            ax.set_xscale("log")
        if spec.log_y:
            ax.set_yscale("log")
        if spec.y == "speedup":
            ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel(spec.x)
        ax.set_ylabel(_LABELS.get(spec.y, spec.y))
        ax.set_title(f"{suite.name} ({subtitle})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"{suite.name}_{spec.y}_vs_{spec.x}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write(
    out: pathlib.Path,
    env: dict[str, Any],
    rows: Sequence[Row],
    suites: Sequence[Suite],
) -> tuple[str, list[pathlib.Path]]:
    """Writes `results.json`, `results.md` and the plots into `out`. Returns the
    Markdown and the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, suites)
    # JSON has no inf/NaN: a non-finite error (the row's status says why) is null.
    finite = lambda x: None if isinstance(x, float) and not math.isfinite(x) else x
    rows_json = [{k: finite(v) for k, v in dataclasses.asdict(r).items()} for r in rows]
    results = {"environment": env, "rows": rows_json}
    json_path = out / "results.json"
    json_path.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    header = (
        f"# lineax-kernels benchmarks\n\n{env['date']}, profile `{env['profile']}`, "
        f"{env['dtype']}, {env['platform']}, {env['cpu_count']} CPUs, "
        f"{env['jax_backend']}; {versions}.\n\nTime per system is the min over "
        "round-robin repeats; speed-up is the best non-lxk time divided by the row's "
        "time; × floor is the row's time over a trivial kernel reading the same "
        "inputs; max error is relative to a float64 NumPy/SciPy reference.\n\n"
    )
    md_path = out / "results.md"
    md_path.write_text(header + table)
    paths = [json_path, md_path]
    for suite in suites:
        subtitle = f"{env['dtype']}, profile {env['profile']}"
        paths += _plot(suite, rows, out, subtitle)
    return table, paths
