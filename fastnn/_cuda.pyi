"""Type stubs for fastnn._cuda, the CUDA kernels (built when nvcc was found at build time).

Arguments are raw device pointers (CuPy's `a.data.ptr`) and CuPy's current stream pointer; kernels
launch on that stream and never synchronise. Call them through fastnn.functional, which checks
dtypes, shapes and devices and allocates outputs and scratch with CuPy.
"""

def device_count() -> int: ...
def runtime_version() -> int: ...
def softmax_xent_forward(
    dtype: str, scores: int, labels: int, lse: int, row_loss: int, loss: int, rows: int, classes: int, stream: int
) -> None: ...
def softmax_xent_backward(
    dtype: str, scores: int, labels: int, lse: int, dloss: int, dloss_value: float, dscores: int,
    rows: int, classes: int, stream: int
) -> None: ...
