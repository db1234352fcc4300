"""MkDocs hooks for the lineax-kernels documentation (`hooks:` in `mkdocs.yml`).

1. Cross-references to Lineax objects (`` [`lineax.LU`][] `` in docstrings and pages)
    resolve to Lineax's own documentation without downloading its `objects.inv`: the
    URLs are made from the installed `lineax`'s public names, by the API page each
    kind of object is on. The build needs no network.
2. Each script in `examples/` becomes a page `examples/<name>.md`: its leading
    comment as text, its code, and the output recorded in `docs/examples/<name>.txt`
    (by `python docs/_hooks/record_examples.py`).
3. On the Benchmarks page, the line `<!-- lxk: benchmark tables -->` is replaced by
    the environment and the tables of `docs/benchmarks/results.json` (written by
    `python -m benchmarks`), followed by the plots of the same run.
"""

import inspect
import json
import math
import pathlib
from typing import Any

from mkdocs.structure.files import File, Files


_ROOT = pathlib.Path(__file__).resolve().parents[2]
_DOCS = _ROOT / "docs"
_BENCH = _DOCS / "benchmarks"
BENCHMARK_MARKER = "<!-- lxk: benchmark tables -->"

#
# 1. Lineax cross-references.
#

LINEAX_DOCS = "https://docs.kidger.site/lineax/api/"


def _lineax_page(name: str, obj: Any) -> str | None:
    import lineax as lx

    if name == "linear_solve":
        return "linear_solve"
    if name in ("RESULTS", "Solution"):
        return "solution"
    if name.endswith("_tag"):
        return "tags"
    if inspect.isclass(obj):
        if issubclass(obj, lx.AbstractLinearSolver):
            return "solvers"
        if issubclass(obj, lx.AbstractLinearOperator):
            return "operators"
        return None
    if callable(obj):
        return "functions"
    return None


def lineax_urls() -> dict[str, str]:
    """`{"lineax.LU": "https://docs.kidger.site/lineax/api/solvers/#lineax.LU", ...}`
    for every public name of the installed `lineax` that its documentation has."""
    import lineax as lx

    urls = {}
    for name in dir(lx):
        if name.startswith("_"):
            continue
        page = _lineax_page(name, getattr(lx, name))
        if page is not None:
            urls[f"lineax.{name}"] = f"{LINEAX_DOCS}{page}/#lineax.{name}"
    return urls


def on_env(env, config, files):
    # Before autorefs resolves the cross-references (its `on_env` has priority -50).
    autorefs = config.plugins["autorefs"]
    for identifier, url in lineax_urls().items():
        autorefs.register_url(identifier, url)
    return env


#
# 2. Example pages.
#

EXAMPLE_TITLES = {
    "batched_newton": "Batched Newton (Optimistix)",
    "stiff_ode_ensemble": "Stiff ODE ensemble (Diffrax)",
    "implicit_diffusion": "Implicit diffusion (tridiagonal)",
    "reaction_diffusion": "Reaction-diffusion (block tridiagonal)",
}


def example_names() -> list[str]:
    return sorted(p.stem for p in (_ROOT / "examples").glob("*.py"))


def example_page(name: str) -> str:
    """The Markdown of the page for `examples/<name>.py`."""
    lines = (_ROOT / "examples" / f"{name}.py").read_text().splitlines()
    comment = []
    while lines and lines[0].startswith("#"):
        comment.append(lines.pop(0)[2:])
    code = "\n".join(lines).strip("\n")
    title = EXAMPLE_TITLES.get(name, name.replace("_", " ").capitalize())
    output_path = _DOCS / "examples" / f"{name}.txt"
    if output_path.exists():
        header, _, output = output_path.read_text().partition("\n")
        output_text = (
            f"Recorded by {header.removeprefix('# ')}:\n\n"
            f"```text\n{output.rstrip()}\n```\n"
        )
    else:
        output_text = (
            "No output recorded yet: run "
            f"`python docs/_hooks/record_examples.py {name}`.\n"
        )
    return (
        f"# {title}\n\n"
        + "\n".join(comment).strip()
        + f"\n\n## Code\n\n`examples/{name}.py`:\n\n```python\n{code}\n```\n\n"
        + f"## Output\n\n{output_text}"
    )


def on_files(files: Files, config) -> Files:
    for name in example_names():
        files.append(
            File.generated(config, f"examples/{name}.md", content=example_page(name))
        )
    return files


#
# 3. Benchmark tables.
#

SUITE_TITLES = {
    "small_dense": "Small dense systems (vmap over operator and right-hand side)",
    "small_psd": "Small symmetric positive definite systems",
    "batched_rhs": "One operator, many right-hand sides (vmap over the vector only)",
    "tridiagonal": "Batches of tridiagonal systems",
    "periodic": "Batches of periodic tridiagonal systems",
    "block_tridiagonal": "Batches of block tridiagonal systems",
    "gradients": "`jit(grad)` through batched solves",
    "end_to_end": "End to end: Optimistix Newton and BFGS, Diffrax Kvaerno5",
}


def _seconds(x: float | None) -> str:
    if x is None:
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if x >= scale or unit == "ns":
            return f"{x / scale:.3g} {unit}"
    raise AssertionError


def _number(x: float | None, fmt: str) -> str:
    return "–" if x is None or not math.isfinite(x) else format(x, fmt)


def benchmark_markdown(path: pathlib.Path = _BENCH / "results.json") -> str:
    """The environment, one table per suite and the plots of a `results.json`."""
    results = json.loads(path.read_text())
    env = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    command = " ".join(["python -m benchmarks", *env.get("argv", [])])
    out = [
        f"Run `{command}`: {env['date']}, profile `{env['profile']}`, "
        f"{env['dtype']}, {env['platform']}, {env['cpu_count']} CPUs, JAX backend "
        f"`{env['jax_backend']}`, Python {env['python']}; {versions}.",
        "",
    ]
    suites = list(dict.fromkeys(row["suite"] for row in results["rows"]))
    for suite in suites:
        out += [
            f"### {SUITE_TITLES.get(suite, suite)}",
            "",
            "| case | method | time / system | speed-up | × floor | compile | "
            "max error | status |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in results["rows"]:
            if row["suite"] != suite:
                continue
            method = f"**{row['method']}**" if row["lxk"] else row["method"]
            out.append(
                f"| {row['case']} | {method} | {_seconds(row['per_system_s'])} | "
                f"{_number(row['speedup'], '.2f')} | "
                f"{_number(row['floor_multiple'], '.1f')} | "
                f"{_seconds(row['compile_s'])} | {_number(row['max_err'], '.1e')} | "
                f"{row['status']} |"
            )
        out.append("")
        for plot in sorted(path.parent.glob(f"{suite}_*.png")):
            out += [f"![{plot.stem}]({plot.name})", ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if BENCHMARK_MARKER in markdown:
        markdown = markdown.replace(BENCHMARK_MARKER, benchmark_markdown())
    return markdown
