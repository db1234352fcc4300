# Smoke test of the benchmark suite (`python -m benchmarks`): runs every suite at tiny
# sizes in a subprocess (so the strict promotion settings and the jaxtyping hook of
# this test session do not apply to it) and checks that the outputs are well-formed.
# It never checks timings.
import json
import math
import pathlib
import subprocess
import sys

import numpy as np


_ROOT = pathlib.Path(__file__).resolve().parent.parent
_ROW_KEYS = {
    "suite",
    "case",
    "method",
    "params",
    "lxk",
    "n_systems",
    "ok",
    "status",
    "max_err",
    "tol",
    "compile_s",
    "time_s",
    "per_system_s",
    "speedup",
    "floor_multiple",
}
_SUITES = {
    "small_dense",
    "small_psd",
    "small_qr",
    "batched_rhs",
    "tridiagonal",
    "periodic",
    "block_tridiagonal",
    "banded",
    "gradients",
    "end_to_end",
}


def test_smoke(tmp_path):
    out = tmp_path / "results"
    process = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", "--smoke", "--out", out],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stdout + process.stderr

    results = json.loads((out / "results.json").read_text())
    env = results["environment"]
    for key in ("date", "platform", "cpu_count", "python", "dtype", "profile"):
        assert env[key], key
    assert env["profile"] == "smoke"
    assert env["dtype"] == "float64"
    for package in ("jax", "jaxlib", "lineax", "numpy"):
        assert env["versions"][package], package
    rows = results["rows"]
    assert {row["suite"] for row in rows} == _SUITES
    for row in rows:
        assert _ROW_KEYS <= row.keys()
        assert row["ok"], row
        assert math.isfinite(row["max_err"]) and row["max_err"] <= row["tol"]
        assert row["time_s"] > 0 and row["per_system_s"] > 0
        assert math.isfinite(row["speedup"])
    assert any(row["lxk"] for row in rows)

    markdown = (out / "results.md").read_text()
    for suite in _SUITES:
        assert f"### {suite}" in markdown
    assert markdown.count("| case | method |") == len(_SUITES)
    assert "| case | method |" in process.stdout

    plots = sorted(out.glob("*.png"))
    assert {p.name for p in plots} == {
        "small_dense_per_system_s_vs_d.png",
        "small_psd_per_system_s_vs_d.png",
        "tridiagonal_speedup_vs_batch.png",
    }
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_pattern(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope", "--out", tmp_path],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode != 0
    assert "no suite matches" in process.stderr


def test_wrong_result_is_not_timed():
    # A method whose result is off is reported as failed (which makes
    # `python -m benchmarks` exit non-zero) and is never timed.
    from benchmarks._harness import Case, Method, PROFILES, run_case

    reference = np.ones((3, 2))
    identity = lambda x: x
    off = lambda x: x + 1e-3
    case = Case(
        suite="suite",
        name="case",
        params={},
        n_systems=3,
        methods=[
            Method("right", identity, (reference,), jax=False),
            Method("wrong", off, (reference,), jax=False),
        ],
        reference=reference,
        tol=1e-10,
    )
    right, wrong = run_case(case, PROFILES["smoke"])
    assert right.ok and right.time_s is not None and right.speedup == 1.0
    assert not wrong.ok and wrong.time_s is None
    assert wrong.status.startswith("wrong: error")
