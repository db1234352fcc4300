# The comparison benchmark suite: `python -m benchmarks [--full] [--only PATTERN]
# [--dtype float32|float64] [--out DIR]`. See benchmarks/README.md.
import argparse
import pathlib
import re
import sys
import time

import jax


jax.config.update("jax_enable_x64", True)  # before any array is made

import numpy as np
import tqdm

from . import (
    _banded,
    _batched_rhs,
    _end_to_end,
    _gradients,
    _periodic_block,
    _report,
    _small_dense,
    _small_psd,
    _small_qr,
    _tridiagonal,
)
from ._harness import PROFILES, run_case


SUITES = [
    _small_dense.SUITE,
    _small_psd.SUITE,
    _small_qr.SUITE,
    _batched_rhs.SUITE,
    _tridiagonal.SUITE,
    _periodic_block.PERIODIC,
    _periodic_block.BLOCK,
    _banded.SUITE,
    _gradients.SUITE,
    _end_to_end.SUITE,
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare lineax-kernels' solvers with the alternatives.",
    )
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument(
        "--full", action="store_true", help="full sizes (long: tens of minutes)"
    )
    profile.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", metavar="PATTERN", help="run the suites whose name matches (regex)"
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path("bench-results")
    )
    args = parser.parse_args(argv)
    profile = PROFILES["full" if args.full else "smoke" if args.smoke else "quick"]
    dtype = np.dtype(args.dtype)
    suites = [s for s in SUITES if args.only is None or re.search(args.only, s.name)]
    if not suites:
        parser.error(
            f"no suite matches {args.only!r}; suites: {[s.name for s in SUITES]}"
        )

    start = time.perf_counter()
    rows = []
    for suite in suites:
        sizes = suite.sizes[profile.name]
        for size in tqdm.tqdm(sizes, desc=suite.name, unit="case", file=sys.stderr):
            rows += run_case(suite.make_case(size, dtype), profile)
    env = _report.environment(profile.name, dtype.name)
    table, paths = _report.write(args.out, env, rows, suites)
    print(table)
    print(f"Wrote {', '.join(str(p) for p in paths)}")
    print(f"Total {time.perf_counter() - start:.0f} s, profile {profile.name}.")
    failed = [r for r in rows if not r.ok]
    for r in failed:
        print(f"FAILED {r.suite} / {r.case} / {r.method}: {r.status}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
