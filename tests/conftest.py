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


@pytest.fixture
def getkey():
    # Imported here so that the jaxtyping import hook instruments the package first.
    import equinox.internal as eqxi

    return eqxi.GetKey()
