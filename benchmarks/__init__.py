"""The lineax-kernels comparison benchmarks: run `python -m benchmarks --help`."""
