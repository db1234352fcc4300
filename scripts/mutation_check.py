"""Checks the test suite's power: each mutant below is a deliberate bug in a kernel,
given as a source snippet that occurs exactly once in src/ and csrc/ (found by
content, not by path, so that files may move) and its replacement. Each mutant is
applied to a scratch copy of the working tree (the native library is rebuilt there
only for csrc/ mutants), the named tests run against it, and the mutant is caught if
they fail. Exits non-zero if any mutant is missed (or cannot be applied).

    python scripts/mutation_check.py                 # every mutant
    python scripts/mutation_check.py --python-only   # pure-JAX mutants only (fast)
    python scripts/mutation_check.py --only lu-tie-native --full-suite
    python scripts/mutation_check.py --list

Run it from the repository's virtual environment, with the package installed
(`pip install -e ".[test]"`): the pure-JAX mutants reuse the installed native
library, and the native ones are rebuilt with the same CMake and jaxlib headers.
"""

import argparse
import dataclasses
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time


ROOT = pathlib.Path(__file__).resolve().parent.parent
_CONTRACT = "tests/test_contract.py"


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    snippet: str
    replacement: str
    # The tests that must catch it (pytest arguments, relative to the root).
    tests: tuple[str, ...]


MUTANTS = [
    # ---- Pure JAX ------------------------------------------------------------------
    Mutant(
        "lu-tie-jax-straight",
        "pure-JAX straight-line LU (d <= 4) takes the last of tied pivots",
        "            better = mag > best\n",
        "            better = mag >= best\n",
        (_CONTRACT, "-k", "ties and UnrolledSmallLU-jax"),
    ),
    Mutant(
        "lu-tie-jax-rolled",
        "pure-JAX rolled LU (d >= 5) takes the last of tied pivots",
        "is_pivot = rows == jnp.argmax(magnitude)\n",
        "is_pivot = rows == d - 1 - jnp.argmax(magnitude[::-1])\n",
        ("tests/test_unrolled_small_lu.py", "-k", "families and jax-d5-float64"),
    ),
    Mutant(
        "lu-missed-swap-jax-d3",
        "pure-JAX straight-line LU skips every row swap at d = 3",
        "        if d - k > 1:\n",
        "        if d - k > 1 and d != 3:\n",
        ("tests/test_unrolled_small_lu.py", "-k", "families and jax-d3-float64"),
    ),
    Mutant(
        "lu-dropped-conj-jax",
        "pure-JAX LU ignores the conj flag (conj(A) and A^H solved as A, A^T)",
        "        matrix = matrix.T\n    if conj:\n        matrix = matrix.conj()\n",
        "        matrix = matrix.T\n",
        (_CONTRACT, "-k", "transpose_and_conj and UnrolledSmallLU-jax"),
    ),
    Mutant(
        "lu-dropped-guard-jax",
        "pure-JAX LU without its non-finite guard (nonfinite_guard)",
        "    return x + nonfinite_guard(matrix)\n",
        "    return x\n",
        (_CONTRACT, "-k", "nonfinite and UnrolledSmallLU-jax"),
    ),
    Mutant(
        "lu-singular-success-jax-rolled",
        "pure-JAX rolled LU (d >= 5) turns inf/NaN into finite numbers: singular "
        "reported as success",
        "        x = _lu_solve_rolled(matrix, vector)\n",
        "        x = jnp.nan_to_num(_lu_solve_rolled(matrix, vector))\n",
        ("tests/test_unrolled_small_lu.py", "-k", "families and jax-d5-float64"),
    ),
    Mutant(
        "triangular-off-by-one-jax",
        "pure-JAX forward substitution skips the last column before the diagonal",
        "        others = range(i + 1, d) if transpose else range(i)\n",
        "        others = range(i + 1, d) if transpose else range(max(i - 1, 0))\n",
        (
            "tests/test_unrolled_small_triangular.py",
            "-k",
            "families and jax-d8-float64",
        ),
    ),
    Mutant(
        "tridiagonal-tie-jax",
        "pure-JAX tridiagonal elimination swaps rows on ties (LAPACK does not)",
        "            swap = abs1(l) > abs1(a)\n",
        "            swap = abs1(l) >= abs1(a)\n",
        (_CONTRACT, "-k", "ties and ScanTridiagonal-jax"),
    ),
    Mutant(
        "tridiagonal-swap-wrong-jax",
        "pure-JAX tridiagonal elimination swaps when the subdiagonal is smaller",
        "            swap = abs1(l) > abs1(a)\n",
        "            swap = abs1(l) < abs1(a)\n",
        ("tests/test_scan_tridiagonal.py", "-k", "families and jax-pivoting-float64"),
    ),
    Mutant(
        "cholesky-upper-jax-straight",
        "pure-JAX straight-line Cholesky (d <= 4) reads the upper triangle",
        "            acc = a[i][j]\n",
        "            acc = jnp.conj(a[j][i])\n",
        (
            "tests/test_unrolled_small_cholesky.py",
            "-k",
            "families and jax-d4-complex128",
        ),
    ),
    Mutant(
        "cholesky-upper-jax-rolled",
        "pure-JAX rolled Cholesky (d >= 5) reads the upper triangle",
        "    lower = jnp.where(rows[:, None] > rows[None, :], matrix, 0)\n",
        "    lower = jnp.where(rows[:, None] > rows[None, :], matrix.T.conj(), 0)\n",
        (
            "tests/test_unrolled_small_cholesky.py",
            "-k",
            "families and jax-d5-complex128",
        ),
    ),
    Mutant(
        "cholesky-dropped-conj-jax-rolled",
        "pure-JAX rolled Cholesky (d >= 5) ignores the conj flag",
        "_cholesky_solve_rolled(matrix.conj() if conj else matrix, vector)",
        "_cholesky_solve_rolled(matrix, vector)",
        (
            "tests/test_unrolled_small_cholesky.py",
            "-k",
            "families and jax-d5-complex128",
        ),
    ),
    Mutant(
        "block-tie-jax",
        "block/periodic panel elimination takes the last of tied pivots",
        "which = jnp.argmax(magnitude, axis=0)",
        "which = (magnitude.shape[0] - 1 - jnp.argmax(magnitude[::-1], axis=0))",
        (_CONTRACT, "-k", "ties and (BlockTridiagonal or PeriodicTridiagonal)"),
    ),
    Mutant(
        "tridiagonal-dropped-guard-jax",
        "pure-JAX tridiagonal solve without its non-finite guard",
        "    return x + guard\n",
        "    return x\n",
        ("tests/test_scan_tridiagonal.py", "-k", "nonfinite and jax"),
    ),
    Mutant(
        "banded-dropped-guard-jax",
        "pure-JAX banded solve without its non-finite guard",
        "    return _make_solve(unroll)(factors, vector) + nonfinite_guard(bands)\n",
        "    return _make_solve(unroll)(factors, vector)\n",
        (_CONTRACT, "-k", "nonfinite and Banded-jax"),
    ),
    Mutant(
        "block-dropped-guard-jax",
        "pure-JAX block elimination without its non-finite guard",
        "    return (left + guard, *rest)\n",
        "    return (left, *rest)\n",
        (_CONTRACT, "-k", "nonfinite and BlockTridiagonal-jax"),
    ),
    # ---- Native (csrc/) ------------------------------------------------------------
    Mutant(
        "lu-tie-native",
        "native LU takes the last of tied pivots",
        "    auto better = mag > best;\n",
        "    auto better = mag >= best;\n",
        (_CONTRACT, "-k", "ties and UnrolledSmallLU-native"),
    ),
    Mutant(
        "lu-missed-swap-native-d5",
        "native LU skips every row swap at d = 5",
        "    auto is_r = which == Splat<V>(r);\n",
        "    if (d == 5) break;\n    auto is_r = which == Splat<V>(r);\n",
        ("tests/test_unrolled_small_lu.py", "-k", "families and native-d5-float64"),
    ),
    Mutant(
        "lu-dropped-conj-native",
        "native LU ignores the conj flag in the fused solve",
        "LoadTile(a + s0 * a_stride, a_stride, lanes, d * d, index, conj, 0, at);",
        "LoadTile(a + s0 * a_stride, a_stride, lanes, d * d, index, false, 0, at);",
        (_CONTRACT, "-k", "transpose_and_conj and UnrolledSmallLU-native"),
    ),
    Mutant(
        "partial-tile-native",
        "native tile loads drop the last system of a partial SIMD tile",
        "    LoadTileN<0>(base, stride, lanes, count, index, conj, fill, out);\n",
        "    LoadTileN<0>(base, stride, lanes > 1 ? lanes - 1 : lanes, count, index, "
        "conj, fill, out);\n",
        ("tests/test_unrolled_small_lu.py", "-k", "partial and float32"),
    ),
    Mutant(
        "lu-dropped-guard-native",
        "native LU without its non-finite guard (NonFiniteSum)",
        "    b[i] = AddReal(Mul(acc, inv_diag[i]), guard);\n",
        "    b[i] = Mul(acc, inv_diag[i]);\n",
        (_CONTRACT, "-k", "nonfinite and UnrolledSmallLU-native"),
    ),
    Mutant(
        "lu-singular-success-native",
        "native LU stores 0 for inf/NaN: singular reported as success",
        "    LuSolveTile<D>(d, at, bt, inv);\n",
        "    LuSolveTile<D>(d, at, bt, inv);\n    for (int i = 0; i < d; ++i) {\n"
        "      auto m = Abs1(bt[i]);\n"
        "      bt[i] = Select(m - m == m - m, bt[i], E{});\n    }\n",
        (_CONTRACT, "-k", "nonfinite and UnrolledSmallLU-native"),
    ),
    Mutant(
        "triangular-off-by-one-native",
        "native forward substitution skips the last column before the diagonal",
        "    for (int j = 0; j < i; ++j) acc = SubMul(acc, l[TriIndex(i, j)], b[j]);\n",
        "    for (int j = 0; j + 1 < i; ++j) acc = SubMul(acc, l[TriIndex(i, j)], b[j]);\n",
        (
            "tests/test_unrolled_small_triangular.py",
            "-k",
            "families and native-d3-float64",
        ),
    ),
    Mutant(
        "tridiagonal-tie-native",
        "native tridiagonal elimination swaps rows on ties (LAPACK does not)",
        "    auto swap = Abs1(row.l) > Abs1(act.a);\n",
        "    auto swap = Abs1(row.l) >= Abs1(act.a);\n",
        (_CONTRACT, "-k", "ties and ScanTridiagonal-native"),
    ),
    Mutant(
        "tridiagonal-swap-wrong-native",
        "native tridiagonal elimination swaps when the subdiagonal is smaller",
        "    auto swap = Abs1(row.l) > Abs1(act.a);\n",
        "    auto swap = Abs1(row.l) < Abs1(act.a);\n",
        (
            "tests/test_scan_tridiagonal.py",
            "-k",
            "families and native-pivoting-float64",
        ),
    ),
    Mutant(
        "cholesky-upper-native",
        "native Cholesky reads the upper triangle",
        "  const auto offsets = TriOffsets(d, false);\n  TileBuffer<D, E> at(",
        "  const auto offsets = TriOffsets(d, true);\n  TileBuffer<D, E> at(",
        (
            "tests/test_unrolled_small_cholesky.py",
            "-k",
            "families and native-d3-complex128",
        ),
    ),
    Mutant(
        "tridiagonal-dropped-guard-native-batch",
        "native tridiagonal batch kernel without its non-finite guard",
        "  E x1 = AddReal(Mul(act.c, Recip(act.a)), guard), x2 = zero;\n",
        "  E x1 = Mul(act.c, Recip(act.a)), x2 = zero;\n",
        ("tests/test_scan_tridiagonal.py", "-k", "nonfinite and native"),
    ),
    Mutant(
        "tridiagonal-dropped-guard-native-single",
        "native single-system tridiagonal kernel without its non-finite guard",
        "    guard += NonFinite(out.l) + NonFinite(out.d) + NonFinite(out.u);\n    return out;\n  };\n  TriActive<E> act = TriStart(row(0));\n  for (int64_t k = 1; k < h",
        "    return out;\n  };\n  TriActive<E> act = TriStart(row(0));\n  for (int64_t k = 1; k < h",
        ("tests/test_scan_tridiagonal.py", "-k", "nonfinite and native"),
    ),
    Mutant(
        "tridiagonal-dropped-conj-native-batch",
        "native tridiagonal batch kernel ignores the conj flag",
        "  const bool cj = p.conj;\n  const E zero{};\n",
        "  const bool cj = false;\n  const E zero{};\n",
        (
            _CONTRACT,
            "tests/test_scan_tridiagonal.py",
            "-k",
            "(transpose_and_conj and ScanTridiagonal-native) or (families and native-pivoting)",
        ),
    ),
    Mutant(
        "tridiagonal-dropped-conj-native-single",
        "native single-system tridiagonal kernel ignores the conj flag",
        "  const bool cj = p.conj;\n  auto D = ",
        "  const bool cj = false;\n  auto D = ",
        (
            _CONTRACT,
            "tests/test_scan_tridiagonal.py",
            "-k",
            "(transpose_and_conj and ScanTridiagonal-native) or (families and native-pivoting)",
        ),
    ),
    Mutant(
        "banded-dropped-guard-native",
        "native banded kernel without its non-finite guard",
        "    const E xj = AddReal(Mul(acc, u[0]), guard);\n",
        "    const E xj = Mul(acc, u[0]);\n",
        (_CONTRACT, "-k", "nonfinite and Banded-native"),
    ),
    Mutant(
        "qr-dropped-guard-native",
        "native QR (one operator per right-hand side) without its non-finite guard",
        "    for (int i = 0; i < shape.cols; ++i) bt[i] = AddReal(bt[i], guard);\n    StoreTile",
        "    StoreTile",
        (
            _CONTRACT,
            "tests/test_unrolled_small_qr.py",
            "-k",
            "(nonfinite and UnrolledSmallQR-native) or (nonfinite and native)",
        ),
    ),
]


def _sources(tree: pathlib.Path) -> list[pathlib.Path]:
    files = []
    for top in ("src", "csrc"):
        for path in sorted((tree / top).rglob("*")):
            if path.suffix in (".py", ".h", ".cc") and path.is_file():
                files.append(path)
    return files


def _locate(tree: pathlib.Path, snippet: str) -> pathlib.Path:
    """The one file under src/ or csrc/ that holds `snippet`, exactly once."""
    hits = [
        (path, path.read_text().count(snippet))
        for path in _sources(tree)
        if snippet in path.read_text()
    ]
    total = sum(n for _, n in hits)
    if total != 1:
        where = ", ".join(f"{p.relative_to(tree)} ({n}x)" for p, n in hits) or "nowhere"
        raise LookupError(f"snippet occurs {total} times (must be once): {where}")
    return hits[0][0]


def _copy_tree(dest: pathlib.Path) -> None:
    # The working tree as it is (tracked and untracked, not ignored files).
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


_LIBRARY = "lineax_kernels._lineax_kernels_native"


def _installed_library() -> pathlib.Path:
    spec = importlib.util.find_spec(_LIBRARY)
    if spec is None or spec.origin is None:
        sys.exit(f"{_LIBRARY} is not installed: run `pip install -e .[test]` first.")
    return pathlib.Path(spec.origin)


# Runs pytest with the scratch copy's package first on the path, ahead of the
# installed (editable) one, whose import hooks are removed.
_BOOT = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()
                    and "scikit" not in type(f).__module__.lower()]
sys.path.insert(0, {src!r})
for name in [m for m in sys.modules if m.split(".")[0] == "lineax_kernels"]:
    del sys.modules[name]
import importlib.util
origin = importlib.util.find_spec("lineax_kernels").origin
assert origin.startswith({src!r}), origin
if sys.argv[1:] == ["--where"]:
    import lineax_kernels
    print(lineax_kernels.__file__); print(lineax_kernels.backend_info())
    sys.exit(0)
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


class Scratch:
    def __init__(self, keep: bool):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="lxk-mutants-"))
        self.keep = keep
        self.tree = self.dir / "tree"
        self.build = self.dir / "build"
        self.tree.mkdir()
        _copy_tree(self.tree)
        self.src = self.tree / "src"
        installed = _installed_library()
        self.library = self.src / "lineax_kernels" / installed.name
        shutil.copy2(installed, self.library)
        self.pristine_library = self.dir / installed.name
        shutil.copy2(installed, self.pristine_library)
        self.configured = False

    def python(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        boot = _BOOT.format(src=str(self.src))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("LINEAX_KERNELS_BACKEND", None)
        return subprocess.run(
            [sys.executable, "-c", boot, *args],
            cwd=self.tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def rebuild(self) -> None:
        """Rebuilds the native library from the scratch tree (incrementally after
        the first time) and puts it in the scratch package."""
        if not self.configured:
            subprocess.run(
                [
                    "cmake",
                    "-S",
                    str(self.tree),
                    "-B",
                    str(self.build),
                    "-DCMAKE_BUILD_TYPE=Release",
                    "-DSKBUILD_PROJECT_NAME=lineax_kernels",
                    f"-DPython_EXECUTABLE={sys.executable}",
                    f"-DPython_INCLUDE_DIR={sysconfig.get_paths()['include']}",
                ],
                check=True,
                capture_output=True,
            )
            self.configured = True
        jobs = str(os.cpu_count() or 2)
        subprocess.run(
            [
                "cmake",
                "--build",
                str(self.build),
                "--target",
                "_lineax_kernels_native",
                "-j",
                jobs,
            ],
            check=True,
            capture_output=True,
        )
        (built,) = [
            p
            for p in self.build.rglob("_lineax_kernels_native*")
            if p.suffix == ".so"
            or p.name.endswith(sysconfig.get_config_var("EXT_SUFFIX"))
        ]
        shutil.copy2(built, self.library)

    def restore_library(self) -> None:
        shutil.copy2(self.pristine_library, self.library)

    def close(self) -> None:
        if self.keep:
            print(f"(scratch copy kept in {self.dir})")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def run(
    mutants, *, full_suite: bool, check_baseline: bool, timeout: float, keep: bool
) -> int:
    scratch = Scratch(keep)
    rows = []
    try:
        probe = scratch.python("--where", timeout=600)
        if probe.returncode != 0 or "native (loaded" not in probe.stdout:
            print(probe.stdout, probe.stderr)
            sys.exit("the scratch copy does not import with its native library")
        # Each subset of tests must pass on the unmutated tree, else a failure
        # under a mutant says nothing.
        baseline = {}
        if not full_suite and check_baseline:
            for tests in dict.fromkeys(m.tests for m in mutants):
                args = [*tests, "-q", "-p", "no:cacheprovider", "-W", "ignore"]
                out = scratch.python(*args, timeout=timeout)
                baseline[tests] = out.returncode == 0
                tail = (out.stdout + out.stderr).strip().splitlines()[-1:]
                print(
                    f"baseline {'passes' if baseline[tests] else 'FAILS '} "
                    f"{' '.join(tests)}: {tail}",
                    flush=True,
                )
        for mutant in mutants:
            if baseline.get(mutant.tests, True) is False:
                rows.append((mutant, "ERROR", "its tests fail without the mutant", 0.0))
                continue
            try:
                path = _locate(scratch.tree, mutant.snippet)
            except LookupError as e:
                rows.append((mutant, "ERROR", f"{e}", 0.0))
                continue
            native = path.relative_to(scratch.tree).parts[0] == "csrc"
            original = path.read_text()
            path.write_text(original.replace(mutant.snippet, mutant.replacement))
            start = time.monotonic()
            try:
                if native:
                    try:
                        scratch.rebuild()
                    except subprocess.CalledProcessError as e:
                        rows.append(
                            (mutant, "ERROR", f"build failed: {e.stderr[-300:]}", 0.0)
                        )
                        continue
                tests = ("tests",) if full_suite else mutant.tests
                args = [*tests, "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore"]
                try:
                    out = scratch.python(*args, timeout=timeout)
                    code, tail = out.returncode, (out.stdout + out.stderr).strip()
                except subprocess.TimeoutExpired:
                    code, tail = -1, "timed out"
                elapsed = time.monotonic() - start
                if code == 1:
                    failed = [ln for ln in tail.splitlines() if ln.startswith("FAILED")]
                    rows.append(
                        (mutant, "caught", failed[0] if failed else "", elapsed)
                    )
                elif code == 0:
                    rows.append((mutant, "MISSED", tail.splitlines()[-1], elapsed))
                else:
                    rows.append(
                        (mutant, "ERROR", f"pytest exit {code}: {tail[-300:]}", elapsed)
                    )
            finally:
                path.write_text(original)
                if native:
                    scratch.restore_library()
            print(
                f"{rows[-1][1]:7s} {mutant.name} ({rows[-1][3]:.0f} s) {rows[-1][2][:150]}",
                flush=True,
            )
    finally:
        scratch.close()
    print()
    print("| mutant | what | result | time (s) | first failing test |")
    print("|---|---|---|---|---|")
    for mutant, status, detail, elapsed in rows:
        detail = detail.replace("|", "/")[:120]
        print(
            f"| {mutant.name} | {mutant.description} | {status} | {elapsed:.0f} | {detail} |"
        )
    bad = [m.name for m, status, _, _ in rows if status != "caught"]
    print(
        f"\n{len(rows) - len(bad)}/{len(rows)} caught"
        + (f"; not: {bad}" if bad else "")
    )
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="run only these mutants (by name)")
    parser.add_argument("--python-only", action="store_true", help="skip csrc/ mutants")
    parser.add_argument("--native-only", action="store_true", help="only csrc/ mutants")
    parser.add_argument(
        "--full-suite", action="store_true", help="run all of tests/ for every mutant"
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="do not first check that each mutant's tests pass unmutated",
    )
    parser.add_argument("--timeout", type=float, default=1200, help="per mutant, s")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    parser.add_argument("--list", action="store_true", help="list the mutants")
    args = parser.parse_args()
    mutants = MUTANTS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTANTS}
        if unknown:
            sys.exit(f"unknown mutants: {sorted(unknown)}")
        mutants = [m for m in MUTANTS if m.name in args.only]
    if args.python_only or args.native_only:
        native = {
            m.name: _locate(ROOT, m.snippet).relative_to(ROOT).parts[0] == "csrc"
            for m in mutants
        }
        mutants = [m for m in mutants if native[m.name] == args.native_only]
    if args.list:
        for m in mutants:
            print(f"{m.name:34s} {m.description}")
        return
    sys.exit(
        run(
            mutants,
            full_suite=args.full_suite,
            check_baseline=not args.no_baseline,
            timeout=args.timeout,
            keep=args.keep,
        )
    )


if __name__ == "__main__":
    main()
