"""Type stubs for fastnn._C, the CPU kernels (C++ with OpenMP; AVX2/FMA chosen at run time).

Arrays must be C-contiguous NumPy arrays of the stated dtype and shape; the bindings check this and
raise TypeError/ValueError otherwise. Call them through fastnn.functional, which validates and converts.
"""
from typing import Optional, Tuple, overload

import numpy as np
import numpy.typing as npt

_Pair = Tuple[int, int]  # (height, width)

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def openmp_enabled() -> bool: ...
def cpu_supports_avx2_fma() -> bool: ...
def cpu_supports_avx512() -> bool: ...
def simd() -> str: ...
@overload
def set_simd(allow_avx2: bool) -> None: ...
@overload
def set_simd(level: str) -> None: ...
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
def gemm_stream_bytes() -> int:
    """Bytes from which a C written once goes out with streaming stores (just over the last-level cache)."""
def set_gemm_stream_bytes(bytes: int) -> int:
    """Sets that threshold (tests use it to reach the streaming kernels); returns the previous one."""
def last_level_cache_bytes() -> int:
    """Bytes of the largest cache level core 0 reports (sysfs, else sysconf; 8 MiB when neither says)."""
def lstm_cell_forward_pointwise(
    ax: npt.NDArray[np.floating],
    ah: npt.NDArray[np.floating],
    b: npt.NDArray[np.floating],
    c_prev: npt.NDArray[np.floating],
) -> Tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating], int]:
    """Gates and cell update from ax = x Wx and ah = h_prev Wh (B, 4H), gate order i, f, o, g; writes
    the activated gates over ax. (h, c, tanh(c), NaN count of h and c)."""
def lstm_cell_backward_pointwise(
    dh: Optional[npt.NDArray[np.floating]],
    dc: Optional[npt.NDArray[np.floating]],
    gates: npt.NDArray[np.floating],
    c_prev: npt.NDArray[np.floating],
    tanh_c: npt.NDArray[np.floating],
) -> Tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating]]:
    """(da (B, 4H), dc_prev (B, H), db (4H,)); dh or dc None means zeros."""
def lstm_cell_input_grads(
    da: npt.NDArray[np.floating], Wx: npt.NDArray[np.floating], Wh: npt.NDArray[np.floating]
) -> Tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]]:
    """(dx = da Wx^T (B, D), dh_prev = da Wh^T (B, H)) from da (B, 4H), Wx (D, 4H), Wh (H, 4H): one
    product [Wx; Wh] da^T with the weights read in place."""
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
def conv2d_forward(
    x: npt.NDArray[np.floating],
    w: npt.NDArray[np.floating],
    b: Optional[npt.NDArray[np.floating]],
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
) -> Tuple[npt.NDArray[np.floating], bool]:
    """x (N, C, H, W), w (K, C, kh, kw), b (K,) or None, one dtype: (out (N, K, OH, OW), whether out is finite)."""
def conv2d_backward_data(
    dout: npt.NDArray[np.floating], w: npt.NDArray[np.floating], H: int, W: int, stride_h: int, stride_w: int,
    pad_h: int, pad_w: int,
) -> npt.NDArray[np.floating]:
    """dx (N, C, H, W)."""
def conv2d_backward_weight(
    dout: npt.NDArray[np.floating], x: npt.NDArray[np.floating], kh: int, kw: int, stride_h: int, stride_w: int,
    pad_h: int, pad_w: int, with_bias: bool,
) -> Tuple[npt.NDArray[np.floating], Optional[npt.NDArray[np.floating]], bool]:
    """(dw (K, C, kh, kw), db (K,) or None, whether both are finite)."""
def max_pool2d_forward(
    x: npt.NDArray[np.floating], kernel_size: _Pair, stride: _Pair, padding: _Pair
) -> Tuple[npt.NDArray[np.floating], npt.NDArray[np.int32], int]:
    """(out, argmax as an int32 flat index into each input plane, number of NaN outputs)."""
def max_pool2d_backward(
    dout: npt.NDArray[np.floating], argmax: npt.NDArray[np.int32], height: int, width: int,
    kernel_size: _Pair, stride: _Pair, padding: _Pair,
) -> npt.NDArray[np.floating]:
    """dx (N, C, height, width): each gradient routed to its recorded argmax."""
def avg_pool2d_forward(
    x: npt.NDArray[np.floating], kernel_size: _Pair, stride: _Pair, padding: _Pair
) -> Tuple[npt.NDArray[np.floating], int]:
    """(out, number of NaN outputs); zero padding is counted in each window's mean."""
def avg_pool2d_backward(
    dout: npt.NDArray[np.floating], height: int, width: int, kernel_size: _Pair, stride: _Pair, padding: _Pair,
) -> npt.NDArray[np.floating]:
    """dx (N, C, height, width)."""
class NonFiniteError(ValueError):
    """A kernel's own check found NaN or inf (fastnn.functional raises its NonFiniteError from it)."""

def batch_norm_forward(
    x: npt.NDArray[np.floating], gamma: npt.NDArray[np.floating], beta: npt.NDArray[np.floating],
    running_mean: npt.NDArray[np.floating], running_var: npt.NDArray[np.floating], training: bool, momentum: float,
    eps: float,
) -> Tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating]]:
    """(out, mean, inv_std) over axis 1 of x (N, C) or (N, C, H, W); training updates the running
    statistics in place. NonFiniteError for NaN or inf in the parameters or statistics, or NaN
    outputs; ValueError for a negative running_var."""
def batch_norm_backward(
    x: npt.NDArray[np.floating], dout: npt.NDArray[np.floating], gamma: npt.NDArray[np.floating],
    mean: npt.NDArray[np.floating], inv_std: npt.NDArray[np.floating], training: bool,
) -> Tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating]]:
    """(dx, dgamma, dbeta), the fused closed form."""
def relu_forward(x: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """y = max(x, 0) over a 1-D array (NaN stays NaN)."""
def relu_backward(dy: npt.NDArray[np.floating], y: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """dx = dy where y > 0, else 0 (1-D arrays of one dtype and size)."""
def sgd_update(
    w: npt.NDArray[np.floating], g: npt.NDArray[np.floating], v: Optional[npt.NDArray[np.floating]], wd: float,
    l1: float, keep: float, lr: float, mu: float, nesterov: bool,
) -> None:
    """Fused SGD / momentum / Nesterov step on w in place (see csrc/optim.h)."""
def adaptive_update(
    w: npt.NDArray[np.floating], g: npt.NDArray[np.floating], m: Optional[npt.NDArray[np.floating]],
    s: npt.NDArray[np.floating], wd: float, l1: float, keep: float, b1: float, one_minus_b1: float, rho: float,
    c: float, step_size: float, inv_sqrt_bc2: float, eps: float,
) -> None:
    """Fused Adagrad / RMSProp / Adam step on w in place (see csrc/optim.h)."""
def sum_squares(g: npt.NDArray[np.floating]) -> float:
    """Sum of squares, accumulated in double, the same for any thread count."""
def buffer_cache_bytes() -> int:
    """Bytes of freed large output arrays held for reuse."""
def buffer_cache_limit() -> int:
    """The most bytes held (FASTNN_BUFFER_CACHE_MB at import)."""
def set_buffer_cache_limit(bytes: int) -> None:
    """Sets the limit (0: hold none) and clears the cache."""
def clear_buffer_cache() -> None:
    """Returns the held buffers to the OS."""
def set_buffer_cache_idle_seconds(seconds: float) -> None:
    """Blocks idle longer than this go back to the OS at the next allocation or free (default 10)."""
def buffer_cache_idle_seconds() -> float:
    """The idle limit in seconds."""
