# Two suites for the structures lineax has no operator for.
#
# `periodic`: batches of periodic (cyclic) tridiagonal systems, row diagonally
# dominant with random signs: vmapped lxk.PeriodicTridiagonal vs the Sherman-Morrison
# composition of two vmapped lx.Tridiagonal solves (what one writes without it; not
# stable in general, fine on this dominant data) and the dense solve where it fits.
# Cases with zero corners ("corners=no") add vmapped lxk.ScanTridiagonal and
# lx.Tridiagonal on the same matrices, for the cost of the corners.
#
# `block_tridiagonal`: batches of block tridiagonal systems with k x k blocks, row
# diagonally dominant with random signs: vmapped lxk.BlockTridiagonal vs a loop of
# scipy.linalg.solve_banded with bandwidth 2k - 1 (LAPACK ?gbsv) and, where it fits,
# the dense jnp.linalg.solve.
import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import scipy.linalg

from . import _problems as p
from ._harness import Case, jit_once, Method, Suite, tolerance


# The dense solve runs where batch * size**2 <= this (32 MB in float64), and for
# single systems up to size 4096.
_DENSE_MAX_ENTRIES = 2**22


def _dense_fits(batch, size):
    return batch * size**2 <= _DENSE_MAX_ENTRIES or (batch == 1 and size <= 4096)


#
# Periodic tridiagonal.
#


def _periodic_data(generator, n, batch, dtype, corners):
    lower, upper = generator.standard_normal((2, batch, n))
    if not corners:
        lower[:, 0] = 0
        upper[:, -1] = 0
    sign = generator.choice([-1.0, 1.0], size=(batch, n))
    off = np.abs(lower) + np.abs(upper)
    diagonal = sign * (off + 0.5 + np.abs(generator.standard_normal((batch, n))))
    rhs = generator.standard_normal((batch, n))
    diagonal, lower, upper, rhs = (
        x.astype(dtype) for x in (diagonal, lower, upper, rhs)
    )
    as64 = lambda x: np.asarray(x, np.float64)
    off = np.abs(as64(lower)) + np.abs(as64(upper))
    abs_diagonal = np.abs(as64(diagonal))
    # Varah's bound on the infinity-norm condition number.
    cond = np.max(abs_diagonal + off, axis=1) / np.min(abs_diagonal - off, axis=1)
    return (diagonal, lower, upper, rhs), cond


def _periodic_reference(diagonal, lower, upper, rhs):
    # Sherman-Morrison around scipy's banded solve, in float64 (stable on this
    # diagonally dominant data).
    as64 = lambda x: np.asarray(x, np.float64)
    diagonal, lower, upper, rhs = map(as64, (diagonal, lower, upper, rhs))
    out = []
    for d, l, u, b in zip(diagonal, lower, upper, rhs, strict=True):
        d, s, v = _sherman_morrison_parts(np, d, l, u)
        banded = np.zeros((3, len(d)))
        banded[0, 1:], banded[1], banded[2, :-1] = u[:-1], d, l[1:]
        y, z = scipy.linalg.solve_banded((1, 1), banded, np.stack([b, s], -1)).T
        out.append(y - (v @ y) / (1 + v @ z) * z)
    return np.stack(out)


def _sherman_morrison_parts(xnp, diagonal, lower, upper):
    """`A = T + s v^T`, with `T` tridiagonal (diagonal returned), for the corners
    `A[0, n-1] = lower[0]` and `A[n-1, 0] = upper[n-1]`: the textbook choice
    `gamma = -diagonal[0]`."""
    n = diagonal.shape[0]
    gamma = -diagonal[0]
    alpha, beta = upper[n - 1], lower[0]  # A[n-1, 0], A[0, n-1]
    diagonal_t = diagonal.at[0].add(-gamma) if xnp is jnp else diagonal.copy()
    if xnp is jnp:
        diagonal_t = diagonal_t.at[n - 1].add(-alpha * beta / gamma)
    else:
        diagonal_t[0] -= gamma
        diagonal_t[n - 1] -= alpha * beta / gamma
    e0 = (xnp.arange(n) == 0).astype(diagonal.dtype)
    e_last = (xnp.arange(n) == n - 1).astype(diagonal.dtype)
    s = gamma * e0 + alpha * e_last
    v = e0 + (beta / gamma) * e_last
    return diagonal_t, s, v


def _sherman_morrison_lineax(diagonal, lower, upper, vector):
    diagonal_t, s, v = _sherman_morrison_parts(jnp, diagonal, lower, upper)
    operator = lx.TridiagonalLinearOperator(diagonal_t, lower[1:], upper[:-1])
    solve = lambda b: lx.linear_solve(operator, b, lx.Tridiagonal(), throw=False).value
    y, z = solve(vector), solve(s)
    return y - (v @ y) / (1 + v @ z) * z


def _periodic_lxk(backend):
    def solve(diagonal, lower, upper, vector):
        operator = lxk.PeriodicTridiagonalLinearOperator(diagonal, lower, upper)
        solver = lxk.PeriodicTridiagonal(backend=backend)
        return lx.linear_solve(operator, vector, solver, throw=False).value

    return solve


def _periodic_dense(diagonal, lower, upper, vector):
    matrix = jax.vmap(
        lambda d, l, u: lxk.PeriodicTridiagonalLinearOperator(d, l, u).as_matrix()
    )(diagonal, lower, upper)
    return jnp.linalg.solve(matrix, vector[..., None])[..., 0]


def _periodic_case(size, dtype) -> Case:
    n, batch, corners = size
    generator = p.rng(7, n, batch, corners)
    data, cond = _periodic_data(generator, n, batch, dtype, corners)
    args = tuple(jnp.asarray(x) for x in data)
    methods = [
        *(
            Method(
                f"lxk.PeriodicTridiagonal ({label})",
                jit_once(jax.vmap(_periodic_lxk(backend))),
                args,
                lxk=True,
            )
            for backend, label in (("native", "native"), ("jax", "pure JAX"))
        ),
        Method(
            "Sherman-Morrison, 2x vmap lx.Tridiagonal",
            jit_once(jax.vmap(_sherman_morrison_lineax)),
            args,
        ),
    ]
    if not corners:
        diagonal, lower, upper, rhs = data
        tri_args = tuple(
            jnp.asarray(x) for x in (diagonal, lower[:, 1:], upper[:, :-1], rhs)
        )
        vmapped = lambda solver: jit_once(jax.vmap(p.lineax_tridiagonal(solver)))
        methods += [
            Method(
                "lxk.ScanTridiagonal (no corners)",
                vmapped(lxk.ScanTridiagonal()),
                tri_args,
                lxk=True,
            ),
            Method(
                "vmap lx.Tridiagonal (no corners)", vmapped(lx.Tridiagonal()), tri_args
            ),
        ]
    if _dense_fits(batch, n):
        methods.append(
            Method("jnp.linalg.solve (dense)", jit_once(_periodic_dense), args)
        )
    return Case(
        suite="periodic",
        name=f"n={n} batch={batch} corners={'yes' if corners else 'no'}",
        params={"n": n, "batch": batch, "corners": corners},
        n_systems=batch,
        methods=methods,
        reference=_periodic_reference(*data),
        tol=tolerance(dtype, cond),
    )


PERIODIC = Suite(
    name="periodic",
    description="batches of periodic tridiagonal systems (vmap over operator and rhs)",
    sizes={
        "smoke": [(16, 4, True), (16, 4, False)],
        "quick": [
            (256, 256, True),
            (256, 256, False),
            (4096, 32, True),
            (4096, 32, False),
            (2**16, 2, True),
        ],
        "full": [
            (256, 4096, True),
            (256, 4096, False),
            (4096, 256, True),
            (4096, 256, False),
            (10**6, 4, True),
            (10**6, 4, False),
        ],
    },
    make_case=_periodic_case,
)


#
# Block tridiagonal.
#


def _block_data(generator, n, k, batch, dtype):
    d = generator.standard_normal((batch, n, k, k))
    l, u = generator.standard_normal((2, batch, n - 1, k, k))
    off = np.sum(np.abs(d), -1) - np.abs(np.diagonal(d, 0, -2, -1))
    off[:, 1:] += np.sum(np.abs(l), -1)
    off[:, :-1] += np.sum(np.abs(u), -1)
    sign = generator.choice([-1.0, 1.0], size=(batch, n, k))
    idx = np.arange(k)
    d[..., idx, idx] = sign * (
        off + 0.5 + np.abs(generator.standard_normal((batch, n, k)))
    )
    rhs = generator.standard_normal((batch, n * k))
    d, l, u, rhs = (x.astype(dtype) for x in (d, l, u, rhs))
    # Varah's bound, on the rounded data.
    as64 = lambda x: np.abs(np.asarray(x, np.float64))
    total = np.sum(as64(d), -1)
    total[:, 1:] += np.sum(as64(l), -1)
    total[:, :-1] += np.sum(as64(u), -1)
    diag = as64(np.diagonal(d, 0, -2, -1))
    margin = 2 * diag - total
    cond = np.max(total, axis=(1, 2)) / np.min(margin, axis=(1, 2))
    return (d, l, u, rhs), cond


def _block_banded(d, l, u):
    """`(batch, 4k - 1, n k)` storage for `solve_banded((2k - 1, 2k - 1), ...)`."""
    batch, n, k, _ = d.shape
    w = 2 * k - 1
    size = n * k
    ab = np.zeros((batch, 2 * w + 1, size), d.dtype)
    blocks = [(0, d), (-1, l), (1, u)]
    for offset_block, arr in blocks:
        for bi in range(arr.shape[1]):
            row0 = (bi + (1 if offset_block == -1 else 0)) * k
            col0 = (bi + (1 if offset_block == 1 else 0)) * k
            for r in range(k):
                for c in range(k):
                    row, col = row0 + r, col0 + c
                    ab[:, w + row - col, col] = arr[:, bi, r, c]
    return ab


def _scipy_block(k):
    w = 2 * k - 1

    def solve(banded, rhs):
        return np.stack(
            [
                scipy.linalg.solve_banded((w, w), ab, b, check_finite=False)
                for ab, b in zip(banded, rhs, strict=True)
            ]
        )

    return solve


def _block_lxk(backend):
    def solve(d, l, u, vector):
        operator = lxk.BlockTridiagonalLinearOperator(d, l, u)
        solver = lxk.BlockTridiagonal(backend=backend)
        return lx.linear_solve(operator, vector, solver, throw=False).value

    return solve


def _block_dense(d, l, u, vector):
    matrix = jax.vmap(
        lambda d, l, u: lxk.BlockTridiagonalLinearOperator(d, l, u).as_matrix()
    )(d, l, u)
    return jnp.linalg.solve(matrix, vector[..., None])[..., 0]


def _block_case(size, dtype) -> Case:
    k, n, batch = size
    generator = p.rng(8, k, n, batch)
    data, cond = _block_data(generator, n, k, batch, dtype)
    args = tuple(jnp.asarray(x) for x in data)
    banded = _block_banded(*data[:3])
    reference = _scipy_block(k)(
        np.asarray(banded, np.float64), data[3].astype(np.float64)
    )
    methods = [
        *(
            Method(
                f"lxk.BlockTridiagonal ({label})",
                jit_once(jax.vmap(_block_lxk(backend))),
                args,
                lxk=True,
            )
            for backend, label in (("native", "native"), ("jax", "pure JAX"))
        ),
        Method(
            f"scipy solve_banded loop (bandwidth {2 * k - 1})",
            _scipy_block(k),
            (banded, data[3]),
            jax=False,
        ),
    ]
    if _dense_fits(batch, n * k):
        methods.append(Method("jnp.linalg.solve (dense)", jit_once(_block_dense), args))
    return Case(
        suite="block_tridiagonal",
        name=f"k={k} n={n} batch={batch}",
        params={"k": k, "n": n, "batch": batch},
        n_systems=batch,
        methods=methods,
        reference=reference,
        tol=tolerance(dtype, cond),
    )


BLOCK = Suite(
    name="block_tridiagonal",
    description="batches of block tridiagonal systems, k x k blocks",
    sizes={
        "smoke": [(2, 8, 2)],
        # (k, n blocks, batch): n k batch ~ 1e5 quick, 1e6 full; n k = 4096 with
        # batch 1 has the dense solve (a few seconds per call). k = 8 compiles in
        # ~15 s: full only.
        "quick": [(4, 1024, 1), (2, 512, 64), (3, 256, 128), (4, 256, 128)],
        "full": [
            (2, 2048, 1),
            (4, 1024, 1),
            (8, 512, 1),
            (2, 4096, 128),
            (3, 2731, 128),
            (4, 2048, 128),
            (8, 1024, 128),
        ],
    },
    make_case=_block_case,
)
