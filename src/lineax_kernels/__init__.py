import importlib.metadata

from ._native import (
    backend_info as backend_info,
    NativeBackendWarning as NativeBackendWarning,
)
from ._solver import (
    ScanTridiagonal as ScanTridiagonal,
    SmallAuto as SmallAuto,
    UnrolledSmallLU as UnrolledSmallLU,
)


__version__ = importlib.metadata.version("lineax-kernels")
