# A 1-D reaction-diffusion system of two coupled fields (a reversible reaction
# A <-> B with Fisher-KPP growth of A),
#
#     a_t = D_a a_xx - k_f a + k_b b + r a (1 - a)
#     b_t = D_b b_xx + k_f a - k_b b              on (0, 1), zero-flux boundaries,
#
# stepped with an IMEX scheme: diffusion and the linear reaction implicitly
# (backward Euler), the growth term explicitly. Ordering the unknowns cell by cell,
# `(a_0, b_0, a_1, b_1, ...)`, each step solves one block tridiagonal system with
# 2 x 2 blocks, `lxk.BlockTridiagonalLinearOperator`, with `lxk.BlockTridiagonal()`.
# The operator does not change in time, so it is factorised once (`solver.init`) and
# every step passes the factorisation as `state=`.
#
# `jax.grad` of a data-misfit loss then gives the gradients with respect to the four
# coefficients (D_a, D_b, k_f, k_b), checked here against central finite differences.
#
# Run: `python examples/reaction_diffusion.py` (a few seconds, most of it compiling).

import jax


jax.config.update("jax_enable_x64", True)

import jax.lax as lax
import jax.numpy as jnp
import lineax as lx
import lineax_kernels as lxk


N_CELLS = 200
N_STEPS = 200
DT = 1e-3
GROWTH = 5.0


def make_operator(params):
    """`I - dt (diffusion + linear reaction)`, in 2 x 2 blocks per cell."""
    diffusion_a, diffusion_b, forward, backward = params
    h = 1 / N_CELLS
    diffusion = jnp.stack([diffusion_a, diffusion_b]) * DT / h**2
    reaction = DT * jnp.array([[forward, -backward], [-forward, backward]])
    # Zero flux: the end cells have one neighbour.
    neighbours = jnp.full(N_CELLS, 2.0).at[0].set(1).at[-1].set(1)
    eye = jnp.eye(2)
    diagonal = eye + reaction + neighbours[:, None, None] * jnp.diag(diffusion)
    coupling = jnp.broadcast_to(-jnp.diag(diffusion), (N_CELLS - 1, 2, 2))
    return lxk.BlockTridiagonalLinearOperator(diagonal, coupling, coupling)


def simulate(params, y0):
    operator = make_operator(params)
    solver = lxk.BlockTridiagonal()
    state = solver.init(operator, {})

    def step(y, _):
        a = y[0::2]
        rhs = y.at[0::2].add(DT * GROWTH * a * (1 - a))
        return lx.linear_solve(operator, rhs, solver, state=state).value, None

    y, _ = lax.scan(step, y0, length=N_STEPS)
    return y


def initial_condition():
    x = (jnp.arange(N_CELLS) + 0.5) / N_CELLS
    a = jnp.exp(-100 * (x - 0.3) ** 2)
    b = 0.5 * jnp.exp(-100 * (x - 0.7) ** 2)
    return jnp.stack([a, b], axis=-1).reshape(-1)


@jax.jit
def loss(params, y0, target):
    return jnp.mean((simulate(params, y0) - target) ** 2)


def main():
    y0 = initial_condition()
    true_params = jnp.array([1e-2, 5e-3, 2.0, 1.0])
    target = jax.jit(simulate)(true_params, y0)
    params = jnp.array([2e-2, 2e-3, 1.5, 1.5])

    value, grad = jax.jit(jax.value_and_grad(loss))(params, y0, target)
    print(f"loss {value:.4e}")
    print("gradient (D_a, D_b, k_f, k_b):", grad)

    # Central finite differences of the loss, one coefficient at a time.
    steps = 1e-6 * jnp.abs(params)
    fd = jnp.stack(
        [
            (
                loss(params.at[i].add(s), y0, target)
                - loss(params.at[i].add(-s), y0, target)
            )
            / (2 * s)
            for i, s in enumerate(steps)
        ]
    )
    print("finite differences:            ", fd)
    assert jnp.allclose(grad, fd, rtol=1e-4), (grad, fd)
    # Mass of A + B is conserved by diffusion and the reaction; only growth adds.
    y = jax.jit(simulate)(params, y0)
    print(f"total mass: {jnp.sum(y0) / N_CELLS:.4f} -> {jnp.sum(y) / N_CELLS:.4f}")


if __name__ == "__main__":
    main()
