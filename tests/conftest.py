import os

import jax
import pytest


jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="Sweep every size and dtype in the numerics tests (for releases).",
    )


def pytest_configure(config):
    # The suite's time is mostly XLA compiling small programs: its CPU backend
    # (LLVM) at -O0 compiles them in about three quarters of the time (measured on
    # test_small_auto.py and test_block_tridiagonal.py: 43 s -> 33 s). The programs
    # are the same; the native kernels are built by CMake either way. `--full`
    # compiles as users do. Set in the environment, so that the worker processes
    # and the subprocesses that tests start inherit it, before any backend starts.
    flags = os.environ.get("XLA_FLAGS", "")
    if not config.getoption("--full") and "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()


@pytest.fixture
def getkey():
    # Imported here so that the jaxtyping import hook instruments the package first.
    import equinox.internal as eqxi

    return eqxi.GetKey()
