import importlib.metadata

from ._operator import (
    BlockTridiagonalLinearOperator as BlockTridiagonalLinearOperator,
    PeriodicTridiagonalLinearOperator as PeriodicTridiagonalLinearOperator,
)
from ._solver import (
    BlockTridiagonal as BlockTridiagonal,
    PeriodicTridiagonal as PeriodicTridiagonal,
    ScanTridiagonal as ScanTridiagonal,
    SmallAuto as SmallAuto,
    UnrolledSmallLU as UnrolledSmallLU,
)


__version__ = importlib.metadata.version("lineax-kernels")
