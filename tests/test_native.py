# The native CPU backend: its switch, its fallback, batching of the FFI call (nested
# vmap, shared operands). Sharding: tests/test_sharding.py.
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk
import numpy as np
import pytest

from .helpers import backends, cases, operator_from


def _solve(solver):
    return lambda m, v: (
        lx.linear_solve(lx.MatrixLinearOperator(m), v, solver, throw=False).value
    )


def _hlo(fn, *args):
    return jax.jit(fn).lower(*args).as_text()


def _run(code: str, **env) -> str:
    """Runs `code` in a fresh Python process (so that XLA flags, environment
    variables and a simulated missing library take effect) and returns stdout."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_native_is_built_and_used_on_cpu():
    # CI builds the extension from a clean clone: it must load, and be used.
    info = lxk.backend_info()
    assert info.startswith("cpu: native (loaded from"), info
    m, v = jnp.eye(3), jnp.ones(3)
    assert "lxk_small_lu_solve" in _hlo(_solve(lxk.UnrolledSmallLU()), m, v)
    assert "lxk_small_lu_solve" in _hlo(
        _solve(lxk.UnrolledSmallLU(backend="native")), m, v
    )
    assert "lxk_small_lu_solve" not in _hlo(
        _solve(lxk.UnrolledSmallLU(backend="jax")), m, v
    )


@pytest.mark.parametrize(
    "case", [c for c in cases if hasattr(c.solver, "backend")], ids=lambda c: c.id
)
def test_backend_picks_the_kernel(case):
    # `backend="native"` (and `"auto"`, on CPU with the library loaded) calls a
    # native kernel (an FFI custom call), `"jax"` does not: so the contract's two
    # paths per solver are two different kernels.
    def solve(m, v):
        operator = operator_from(m, case.tags)
        return lx.linear_solve(operator, v, case.solver, throw=False).value

    hlo = _hlo(solve, jnp.eye(4), jnp.ones(4))
    uses_native = "custom_call @lxk_" in hlo
    assert uses_native is (case.solver.backend != "jax"), hlo[:2000]


def test_backend_validation():
    # A ValueError from `__check_init__`; under the test suite's jaxtyping hook the
    # `Literal` annotation catches it first, as a TypeError.
    with pytest.raises((ValueError, TypeError), match="backend"):
        lxk.UnrolledSmallLU(backend="cuda")  # pyright: ignore[reportArgumentType]
    with pytest.raises((ValueError, TypeError), match="backend"):
        lxk.SmallAuto(backend="fast")  # pyright: ignore[reportArgumentType]


def test_environment_variable_forces_pure_jax():
    out = _run(
        """
        import jax, jax.numpy as jnp, lineax as lx, lineax_kernels as lxk
        solve = lambda m, v: lx.linear_solve(
            lx.MatrixLinearOperator(m), v, lxk.UnrolledSmallLU()).value
        print(lxk.backend_info())
        hlo = jax.jit(solve).lower(jnp.eye(2), jnp.ones(2)).as_text()
        print("lxk_small_lu_solve" in hlo)
        print(solve(jnp.eye(2) * 2.0, jnp.ones(2)).tolist())
        """,
        LINEAX_KERNELS_BACKEND="jax",
    )
    info, uses_native, x = out.splitlines()
    assert "pure JAX (forced by LINEAX_KERNELS_BACKEND=jax)" in info
    assert uses_native == "False"
    assert x == "[0.5, 0.5]"


def test_missing_library_falls_back_with_one_warning():
    out = _run(
        """
        import warnings
        import jax, jax.numpy as jnp, lineax as lx, lineax_kernels as lxk
        from lineax_kernels import _native
        _native._LIBRARY_MODULE = "lineax_kernels._no_such_library"
        solve = lambda m, v: lx.linear_solve(
            lx.MatrixLinearOperator(m), v, lxk.UnrolledSmallLU()).value
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x1 = jax.jit(solve)(jnp.eye(2) * 2.0, jnp.ones(2))
            x2 = jax.jit(jax.vmap(solve))(jnp.eye(2)[None] * 4.0, jnp.ones((1, 2)))
        print(sum(issubclass(w.category, lxk.NativeBackendWarning) for w in caught))
        print(x1.tolist(), x2.tolist())
        print(lxk.backend_info())
        try:
            jax.jit(lambda m, v: lx.linear_solve(lx.MatrixLinearOperator(m), v,
                lxk.UnrolledSmallLU(backend="native")).value)(jnp.eye(2), jnp.ones(2))
        except RuntimeError as e:
            print("RuntimeError", "unavailable" in str(e))
        """
    )
    n_warnings, values, info, error = out.splitlines()
    assert n_warnings == "1"
    assert values == "[0.5, 0.5] [[0.25, 0.25]]"
    assert "pure JAX (native unavailable" in info
    assert error == "RuntimeError True"


@pytest.mark.parametrize("backend", backends)
def test_nested_vmap(backend):
    # Every combination of batched operator and vector, two levels deep, against
    # LAPACK: the FFI call's batching rule broadcasts or keeps shared operands.
    # (Every solver, one pattern each: `test_contract.py`.)
    dtype = np.float64
    rng = np.random.default_rng(0)
    d, n1, n2 = 3, 4, 5
    a = (rng.standard_normal((n1, n2, d, d)) + 3 * np.eye(d)).astype(dtype)
    b = rng.standard_normal((n1, n2, d)).astype(dtype)
    solve = _solve(lxk.UnrolledSmallLU(backend=backend))
    # name: (inner in_axes, outer in_axes, matrices, vectors, the system (i, j))
    cases = {
        "both/both": ((0, 0), (0, 0), a, b, lambda i, j: (a[i, j], b[i, j])),
        "matrix/vector": (
            (None, 0),
            (0, None),
            a[:, 0],
            b[0],
            lambda i, j: (a[i, 0], b[0, j]),
        ),
        "vector/matrix": (
            (0, None),
            (None, 0),
            a[0],
            b[:, 0],
            lambda i, j: (a[0, j], b[i, 0]),
        ),
        "vector/vector": (
            (None, 0),
            (None, 0),
            a[0, 0],
            b,
            lambda i, j: (a[0, 0], b[i, j]),
        ),
        "matrix/both": ((0, None), (0, 0), a, b[:, 0], lambda i, j: (a[i, j], b[i, 0])),
    }
    xs = jax.jit(
        lambda: {
            name: jax.vmap(jax.vmap(solve, in_axes=inner), in_axes=outer)(aa, bb)
            for name, (inner, outer, aa, bb, _) in cases.items()
        }
    )()
    for name, (*_, system) in cases.items():
        expected = np.array(
            [[np.linalg.solve(*system(i, j)) for j in range(n2)] for i in range(n1)]
        )
        np.testing.assert_allclose(xs[name], expected, rtol=1e-11, err_msg=name)


@pytest.mark.parametrize("backend", backends)
def test_one_matrix_many_vectors_is_not_copied(backend):
    # vmap over the vector only: the matrix reaches the kernel once, not as a
    # broadcast copy per right-hand side.
    m = jnp.eye(4) * 2.0 + 0.1
    v = jnp.ones((100, 4))
    solve = jax.vmap(_solve(lxk.UnrolledSmallLU(backend=backend)), in_axes=(None, 0))
    assert "100x4x4" not in _hlo(solve, m, v)
    np.testing.assert_allclose(
        jax.jit(solve)(m, v), np.linalg.solve(m, np.asarray(v).T).T, rtol=1e-12
    )
