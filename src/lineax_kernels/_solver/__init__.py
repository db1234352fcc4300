from .scan_tridiagonal import ScanTridiagonal as ScanTridiagonal
from .unrolled_small_lu import UnrolledSmallLU as UnrolledSmallLU
