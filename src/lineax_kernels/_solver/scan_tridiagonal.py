import lineax as lx


class ScanTridiagonal(lx.AbstractLinearSolver):  # placeholder, being written
    pass
