import importlib.metadata

from ._native import (
    backend_info as backend_info,
    NativeBackendWarning as NativeBackendWarning,
)
from ._operator import (
    BandedLinearOperator as BandedLinearOperator,
    BlockTridiagonalLinearOperator as BlockTridiagonalLinearOperator,
    PeriodicTridiagonalLinearOperator as PeriodicTridiagonalLinearOperator,
)
from ._solver import (
    Banded as Banded,
    BlockTridiagonal as BlockTridiagonal,
    PeriodicTridiagonal as PeriodicTridiagonal,
    ScanTridiagonal as ScanTridiagonal,
    SmallAuto as SmallAuto,
    UnrolledSmallCholesky as UnrolledSmallCholesky,
    UnrolledSmallLU as UnrolledSmallLU,
    UnrolledSmallQR as UnrolledSmallQR,
    UnrolledSmallTriangular as UnrolledSmallTriangular,
)


__all__ = [
    "backend_info",
    "Banded",
    "BandedLinearOperator",
    "BlockTridiagonal",
    "BlockTridiagonalLinearOperator",
    "NativeBackendWarning",
    "PeriodicTridiagonal",
    "PeriodicTridiagonalLinearOperator",
    "ScanTridiagonal",
    "SmallAuto",
    "UnrolledSmallCholesky",
    "UnrolledSmallLU",
    "UnrolledSmallQR",
    "UnrolledSmallTriangular",
]
__version__ = importlib.metadata.version("lineax-kernels")
