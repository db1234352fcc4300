from .banded import Banded as Banded
from .block_tridiagonal import BlockTridiagonal as BlockTridiagonal
from .periodic_tridiagonal import PeriodicTridiagonal as PeriodicTridiagonal
from .scan_tridiagonal import ScanTridiagonal as ScanTridiagonal
from .small_auto import SmallAuto as SmallAuto
from .unrolled_small_cholesky import UnrolledSmallCholesky as UnrolledSmallCholesky
from .unrolled_small_lu import UnrolledSmallLU as UnrolledSmallLU
from .unrolled_small_qr import UnrolledSmallQR as UnrolledSmallQR
from .unrolled_small_triangular import (
    UnrolledSmallTriangular as UnrolledSmallTriangular,
)
