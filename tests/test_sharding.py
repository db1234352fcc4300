# Sharding a batch of solves over several devices, and over several processes: every
# solve runs shard-locally (no collective in the compiled program), for every mix of
# batched and shared operands, on both paths. Each scenario group is one subprocess
# (XLA flags and `jax.distributed` take effect only at start-up).
import json
import os
import socket
import subprocess
import sys
import textwrap

import lineax_kernels as lxk

from .helpers import cases


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TWO_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def _python(code: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        cwd=_ROOT,  # so that `tests.helpers` imports.
    )


def _results(process: subprocess.Popen) -> list[dict]:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


# One solver per kernel (the `SmallAuto` entries dispatch to these), each solving a
# batch of 8 systems of size 4 sharded over 2 devices, with the operator and the
# vector batched or shared. Prints one JSON line per case.
_SHARDED = """
import json, re
import jax, jax.numpy as jnp, jax.random as jr, lineax as lx, lineax_kernels as lxk
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from tests.helpers import cases, make_matrix, operator_from

jax.config.update("jax_enable_x64", True)
assert len(jax.devices()) == 2
COLLECTIVE = re.compile(
    r"= \\S+ (all-gather|all-to-all|collective-permute|all-reduce|reduce-scatter)"
    r"(-start)?\\("
)
mesh = jax.make_mesh((2,), ("batch",), axis_types=(AxisType.Auto,))
batched, shared = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
seen = set()
for case in cases:
    solver, tags = case.solver, case.tags
    if type(solver) is lxk.SmallAuto or type(solver) in seen:
        continue
    seen.add(type(solver))
    keys = jr.split(jr.key(0), 9)
    matrices = jnp.stack([make_matrix(k, tags, 4, jnp.float64) for k in keys[:8]])
    vectors = jr.normal(keys[8], (8, 4), jnp.float64)
    for pattern, in_axes in (("both", (0, 0)), ("operator shared", (None, 0)),
                             ("vector shared", (0, None))):
        args = [x if ax == 0 else x[0] for x, ax in zip((matrices, vectors), in_axes)]
        placed = [jax.device_put(x, batched if ax == 0 else shared)
                  for x, ax in zip(args, in_axes)]
        backends = ("native", "jax") if hasattr(solver, "backend") else ("auto",)
        expected = None
        for backend in backends:
            s = type(solver)(backend=backend) if len(backends) > 1 else solver

            def solve(m, v, s=s, tags=tags):
                op = operator_from(m, tags)
                return lx.linear_solve(op, v, s, throw=False).value

            fn = jax.jit(jax.vmap(solve, in_axes=in_axes))
            if expected is None:  # the unsharded solve, on one device
                expected = fn(*[np.asarray(a) for a in args])
            compiled = fn.lower(*placed).compile()
            hlo = compiled.as_text()
            x = compiled(*placed)
            print(json.dumps({
                "solver": type(solver).__name__, "pattern": pattern,
                "backend": backend,
                "collectives": sorted({m[0] for m in COLLECTIVE.findall(hlo)}),
                "native_call": "custom_call_target=\\"lxk_" in hlo,
                "sharded_like_input": x.sharding.is_equivalent_to(batched, 2),
                "max_diff": float(jnp.max(jnp.abs(x - expected))),
            }), flush=True)
"""


def test_sharded_batch_every_solver_and_pattern_is_shard_local():
    results = _results(_python(_SHARDED, _TWO_DEVICES))
    kinds = {type(c.solver) for c in cases if type(c.solver) is not lxk.SmallAuto}
    # Every solver, on both kernel paths, with three batching patterns.
    assert len(results) == len(kinds) * 2 * 3
    for r in results:
        assert r["collectives"] == [], r
        assert r["sharded_like_input"], r
        assert r["max_diff"] <= 1e-12, r
        if r["backend"] == "jax":
            assert not r["native_call"], r
    # The four native kernels run natively, shared operands included.
    native = {r["solver"] for r in results if r["native_call"]}
    assert {
        "UnrolledSmallLU",
        "UnrolledSmallCholesky",
        "UnrolledSmallTriangular",
        "ScanTridiagonal",
    } <= native


# An explicit-axis mesh: lineax 0.1.1 rejects the per-system vector's sharded
# structure, so the documented pattern runs the solve in `jax.sharding.auto_axes`.
_EXPLICIT = """
import json, re
import jax, jax.numpy as jnp, lineax as lx, lineax_kernels as lxk, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

jax.config.update("jax_enable_x64", True)
mesh = jax.make_mesh((2,), ("batch",), axis_types=(AxisType.Explicit,))
rng = np.random.default_rng(0)
a = rng.standard_normal((3, 3)) + 3 * np.eye(3)
b = rng.standard_normal((8, 3))
with jax.set_mesh(mesh):
    b_s = jax.device_put(b, P("batch"))
    solver = lxk.UnrolledSmallLU(backend="native")
    solve = jax.jit(jax.sharding.auto_axes(
        jax.vmap(lambda m, v: lx.linear_solve(
            lx.MatrixLinearOperator(m), v, solver, throw=False).value,
            in_axes=(None, 0)),
        out_sharding=P("batch")))
    hlo = solve.lower(a, b_s).compile().as_text()
    x = solve(a, b_s)
print(json.dumps({
    "gathers": bool(re.search(r"all-gather|all-to-all", hlo)),
    "native_call": "lxk_small_lu_solve" in hlo,
    "sharded": x.sharding.is_equivalent_to(NamedSharding(mesh, P("batch")), 2),
    "max_diff": float(np.max(np.abs(x - np.linalg.solve(a, b.T).T))),
}))
"""


def test_explicit_mesh_with_auto_axes():
    (r,) = _results(_python(_EXPLICIT, _TWO_DEVICES))
    assert r == {**r, "gathers": False, "native_call": True, "sharded": True}
    assert r["max_diff"] < 1e-12, r


# Two processes (one CPU device each) solve one globally sharded batch: each process
# holds and solves only its own half, natively, and the gathered result equals the
# single-process solve.
_PROCESS = """
import json, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_enable_x64", True)
jax.distributed.initialize(
    coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]),
    local_device_ids=[0],
)
import jax.numpy as jnp, lineax as lx, lineax_kernels as lxk, numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

rng = np.random.default_rng(0)
a = rng.standard_normal((3, 3)) + 3 * np.eye(3)  # one operator, shared
b = rng.standard_normal((16, 3))  # every process knows the whole batch here...
mesh = jax.make_mesh((2,), ("batch",), axis_types=(AxisType.Auto,))
sharding = NamedSharding(mesh, P("batch"))
# ...but puts only its own rows on its device.
b_s = jax.make_array_from_callback(b.shape, sharding, lambda index: b[index])
solver = lxk.UnrolledSmallLU()
solve = jax.jit(jax.vmap(lambda m, v: lx.linear_solve(
    lx.MatrixLinearOperator(m), v, solver, throw=False).value, in_axes=(None, 0)))
hlo = solve.lower(a, b_s).compile().as_text()
x = solve(a, b_s)
local = [s.index for s in x.addressable_shards]
gathered = multihost_utils.process_allgather(x, tiled=True)
print(json.dumps({
    "process": jax.process_index(),
    "backend": lxk.backend_info(),
    "native_call": "lxk_small_lu_solve" in hlo,
    "collectives": any(c in hlo for c in ("all-gather", "all-to-all", "all-reduce")),
    "local_rows": [[s[0].start, s[0].stop] for s in local],
    "max_diff": float(np.max(np.abs(gathered - np.linalg.solve(a, b.T).T))),
}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_each_solve_their_own_shard():
    address = f"127.0.0.1:{_free_port()}"
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    code = textwrap.dedent(_PROCESS)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, address, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for i in range(2)
    ]
    results = sorted((_results(p)[0] for p in processes), key=lambda r: r["process"])
    assert [r["local_rows"] for r in results] == [[[0, 8]], [[8, 16]]]
    for r in results:
        assert r["backend"].startswith("cpu: native"), r
        assert r["native_call"], r
        assert not r["collectives"], r
        assert r["max_diff"] < 1e-12, r
