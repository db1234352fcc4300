"""Runs every script in `examples/` and records its output for the documentation's
Examples pages, as `docs/examples/<name>.txt`.

Run from the repository root: `python docs/_hooks/record_examples.py [NAME ...]`.
The first lines of each file say when, on what and with which versions it ran.
"""

import datetime
import importlib.metadata
import os
import pathlib
import platform
import subprocess
import sys


_ROOT = pathlib.Path(__file__).resolve().parents[2]
_PACKAGES = ("jax", "jaxlib", "lineax", "lineax-kernels", "optimistix", "diffrax")


def _cpu() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record(name: str) -> pathlib.Path:
    script = _ROOT / "examples" / f"{name}.py"
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in _PACKAGES)
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")
    header = (
        f"# `python examples/{name}.py`, {date}, {_cpu()}, "
        f"{os.cpu_count()} CPUs; {versions}\n"
    )
    out = _ROOT / "docs" / "examples" / f"{name}.txt"
    out.write_text(header + result.stdout)
    return out


def main(names: list[str]) -> None:
    if not names:
        names = sorted(p.stem for p in (_ROOT / "examples").glob("*.py"))
    for name in names:
        print(f"wrote {record(name)}")


if __name__ == "__main__":
    main(sys.argv[1:])
