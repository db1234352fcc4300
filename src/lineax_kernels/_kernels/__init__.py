"""The kernels, one module per kernel, each the twin of `csrc/<kernel>.h`: the
pure-JAX kernel (the portable reference, and the GPU/TPU path) and one entry point
that dispatches between it and the native CPU kernel (`.._native.dispatch`). The
solvers in `.._solver` are thin lineax adapters around these entry points."""
