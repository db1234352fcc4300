import importlib.metadata

from ._solver import (
    ScanTridiagonal as ScanTridiagonal,
    SmallAuto as SmallAuto,
    UnrolledSmallLU as UnrolledSmallLU,
)


__version__ = importlib.metadata.version("lineax-kernels")
