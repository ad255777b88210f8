"""Type stubs for fastnn._C, the CPU kernels (C++ with OpenMP; AVX2/FMA chosen at run time).

Arrays must be C-contiguous NumPy arrays of the stated dtype and shape; the bindings check this and
raise TypeError/ValueError otherwise. Call them through fastnn.functional, which validates and converts.
"""
from typing import Optional, Tuple

import numpy as np
import numpy.typing as npt

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def openmp_enabled() -> bool: ...
def cpu_supports_avx2_fma() -> bool: ...
def simd() -> str: ...
def set_simd(allow_avx2: bool) -> None: ...
def measure_fma_peak_gflops(iterations: int = 20000000) -> float: ...
def copy_bandwidth_gbs(src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32]) -> float: ...
def softmax_xent_forward(
    scores: npt.NDArray[np.floating], labels: npt.NDArray[np.int64]
) -> Tuple[float, npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating], int]:
    """(sum of row losses, exp(s - rowmax) (N, C), 1 / row sums of those (N,), logsumexp (N,),
    first row with a non-finite loss or -1)."""
def softmax_xent_backward_in_place(
    exps: npt.NDArray[np.floating], inv_sum: npt.NDArray[np.floating], labels: npt.NDArray[np.int64], scale: float
) -> npt.NDArray[np.floating]:
    """Overwrites exps (N, C) with scale * (exps * inv_sum[:, None] - onehot(labels)) and returns it."""
def softmax_xent_backward_recompute(
    scores: npt.NDArray[np.floating],
    labels: npt.NDArray[np.int64],
    lse: npt.NDArray[np.floating],
    scale: float,
) -> npt.NDArray[np.floating]:
    """scale * (exp(scores - lse) - onehot(labels)), a new (N, C) array."""
def gemm(
    a: npt.NDArray[np.floating],
    b: npt.NDArray[np.floating],
    trans_a: bool = False,
    trans_b: bool = False,
    out: Optional[npt.NDArray[np.floating]] = None,
    accumulate: bool = False,
) -> npt.NDArray[np.floating]:
    """op(a) @ op(b) by our packed GEMM (op = transpose where trans_* is set), into a new array or into
    out (out += ... with accumulate); out must not overlap a or b."""
def lstm_layer_forward(
    xs: npt.NDArray[np.floating],
    h0: npt.NDArray[np.floating],
    c0: npt.NDArray[np.floating],
    Wx: npt.NDArray[np.floating],
    Wh: npt.NDArray[np.floating],
    b: npt.NDArray[np.floating],
) -> Tuple[npt.NDArray[np.floating], ...]:
    """(hs (T, B, H), c_last (B, H), gates (T, 4H, B), c_all (T, H, B), tanh_c_all (T, H, B), NaN count)."""
def lstm_layer_backward(
    dhs: Optional[npt.NDArray[np.floating]],
    dh_last: Optional[npt.NDArray[np.floating]],
    dc_last: Optional[npt.NDArray[np.floating]],
    xs: npt.NDArray[np.floating],
    h0: npt.NDArray[np.floating],
    c0: npt.NDArray[np.floating],
    Wx: npt.NDArray[np.floating],
    Wh: npt.NDArray[np.floating],
    gates: npt.NDArray[np.floating],
    c_all: npt.NDArray[np.floating],
    tanh_c_all: npt.NDArray[np.floating],
    hs: npt.NDArray[np.floating],
) -> Tuple[npt.NDArray[np.floating], ...]:
    """(dxs, dh0, dc0, dWx, dWh, db) from lstm_layer_forward's cache."""
