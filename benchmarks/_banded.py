# General banded systems (issue 16): batches of `batch` systems of size `n` with
# `lower` subdiagonals and `upper` superdiagonals, row diagonally dominant with random
# signs. vmapped lxk.Banded (native kernel and pure JAX) vs a Python loop of
# scipy.linalg.solve_banded (LAPACK ?gbsv, the only ready-made banded solver) and,
# where it fits, vmapped lx.LU on the dense matrices. Block tridiagonal systems
# (k x k blocks, bandwidth 2k - 1) are in the `block_tridiagonal` suite, periodic
# ones in `periodic`; this suite adds the banded form of block tridiagonal systems
# (`lower = upper = 2k - 1`) for the comparison with lxk.BlockTridiagonal.
#
# Typical output (AMD EPYC, 2 cores shared with other jobs: load ~15, so only the
# larger ratios are meaningful; float64, jax 0.10, min of 5 calls), native kernel
# against the scipy loop: pentadiagonal n = 1e6 one system 2.1x, 256 x 4096 2.0x;
# bandwidth 3/5/7 (block k = 2, 3, 4), one system of 65 536: 10.7x / 8.9x / 2.3x,
# 256 systems of 1024: 21x / 2.4x / 1.9x; bandwidth 15 (k = 8): 1.6x. The general
# (non-straight-line) window, bandwidths other than 1, 2, 3, 5, 7, is ~3x slower.
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import scipy.linalg

from . import _problems as p
from ._harness import Case, jit_once, Method, Suite, tolerance


# vmapped lx.LU on the dense matrices runs where batch * n**2 <= this (32 MB in
# float64).
_DENSE_MAX_ENTRIES = 2**22


def _data(generator, n, lower, upper, batch, dtype):
    """Bands `(batch, lower + upper + 1, n)` of row diagonally dominant matrices,
    right-hand sides `(batch, n)`, and Varah's bound on the condition numbers."""
    w = lower + upper + 1
    bands = generator.standard_normal((batch, w, n))
    r, j = np.indices((w, n))
    i = j + r - upper
    bands = np.where((i >= 0) & (i < n), bands, 0)
    # Row sums of |off-diagonal| entries: row i of A holds bands[upper + i - j, j].
    off = np.zeros((batch, n))
    for row in range(w):
        if row == upper:
            continue
        rows_i = i[row]
        valid = (rows_i >= 0) & (rows_i < n)
        np.add.at(off, (slice(None), rows_i[valid]), np.abs(bands[:, row, valid]))
    sign = generator.choice([-1.0, 1.0], size=(batch, n))
    bands[:, upper] = sign * (off + 0.5 + np.abs(generator.standard_normal((batch, n))))
    rhs = generator.standard_normal((batch, n))
    bands, rhs = bands.astype(dtype), rhs.astype(dtype)
    abs_diagonal = np.abs(bands[:, upper].astype(np.float64))
    cond = np.max(abs_diagonal + off, axis=1) / np.min(abs_diagonal - off, axis=1)
    return (bands, rhs), cond


def _scipy_loop(lower, upper):
    def solve(bands, rhs):
        return np.stack(
            [
                scipy.linalg.solve_banded((lower, upper), ab, b, check_finite=False)
                for ab, b in zip(bands, rhs, strict=True)
            ]
        )

    return solve


def _lxk(lower, upper, backend):
    def solve(bands, vector):
        operator = lxk.BandedLinearOperator(bands, lower, upper)
        solver = lxk.Banded(backend=backend)
        return lx.linear_solve(operator, vector, solver, throw=False).value

    return solve


def _lu(lower, upper):
    def solve(bands, vector):
        matrix = lxk.BandedLinearOperator(bands, lower, upper).as_matrix()
        operator = lx.MatrixLinearOperator(matrix)
        return lx.linear_solve(operator, vector, lx.LU(), throw=False).value

    return solve


def _floor(bands, vector):
    # Reads the bands and the right-hand side once, writes an x-sized result.
    return vector + jnp.sum(bands, axis=-2)


def _make_case(size, dtype) -> Case:
    n, lower, upper, batch = size
    generator = p.rng(16, n, lower, upper, batch)
    (bands, rhs), cond = _data(generator, n, lower, upper, batch, dtype)
    args = (jnp.asarray(bands), jnp.asarray(rhs))
    reference = _scipy_loop(lower, upper)(
        bands.astype(np.float64), rhs.astype(np.float64)
    )
    methods = [
        Method(
            "lxk.Banded (native)",
            jit_once(jax.vmap(_lxk(lower, upper, "native"))),
            args,
            lxk=True,
        ),
        Method(
            "lxk.Banded (pure JAX)",
            jit_once(jax.vmap(_lxk(lower, upper, "jax"))),
            args,
            lxk=True,
        ),
        Method(
            "scipy solve_banded loop",
            _scipy_loop(lower, upper),
            (bands, rhs),
            jax=False,
        ),
    ]
    if batch * n**2 <= _DENSE_MAX_ENTRIES:
        methods.append(
            Method("vmap lx.LU (dense)", jit_once(jax.vmap(_lu(lower, upper))), args)
        )
    return Case(
        suite="banded",
        name=f"n={n} lower={lower} upper={upper} batch={batch}",
        params={"n": n, "lower": lower, "upper": upper, "batch": batch},
        n_systems=batch,
        methods=methods,
        reference=reference,
        tol=tolerance(dtype, cond),
        floor=Method("floor", jit_once(_floor), args),
    )


SUITE = Suite(
    name="banded",
    description="batches of banded systems (vmap over operator and rhs)",
    sizes={
        # (n, lower, upper, batch)
        "smoke": [(16, 2, 2, 4)],
        "quick": [
            (10**5, 2, 2, 1),
            (4096, 2, 2, 64),
            (1024, 3, 3, 64),
            (256, 2, 2, 16),
        ],
        "full": [
            (10**6, 2, 2, 1),
            (4096, 2, 2, 256),
            (65536, 3, 3, 1),
            (65536, 5, 5, 1),
            (65536, 7, 7, 1),
            (65536, 15, 15, 1),
            (1024, 3, 3, 256),
            (1024, 5, 5, 256),
            (1024, 7, 7, 256),
            (256, 2, 2, 64),
        ],
    },
    make_case=_make_case,
)
