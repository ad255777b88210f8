"""One LSTM cell step on CuPy arrays: cuBLAS GEMMs (CuPy matmul) around one fused CUDA kernel per
direction (cuda/lstm.cu). Gate order (i, f, o, g) along the 4H axis.

    a = x Wx + h_prev Wh + b;  i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
    c = f c_prev + i g,  h = o tanh(c)
    backward: dc_total = dc + dh o (1 - tanh(c)^2)
              da = (dc_total g i (1 - i), dc_total c_prev f (1 - f), dh tanh(c) o (1 - o), dc_total i (1 - g^2))
              dc_prev = dc_total f,  dx = da Wx^T,  dh_prev = da Wh^T,
              dWx = x^T da,  dWh = h_prev^T da,  db = sum over the batch of da

The forward kernel adds b, applies the four nonlinearities in place over the GEMM output and writes
c, h and tanh(c); the backward kernel writes da and dc_prev; everything else is cuBLAS. The cache is
fastnn.functional.lstm's LSTMCellCache. Nothing here synchronises the device.
"""
from .. import _backend
from .lstm import LSTMCellCache


def lstm_cell_forward_cuda(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step on the GPU.

    Args:
        x (B, D), h_prev (B, H), c_prev (B, H), Wx (D, 4H), Wh (H, 4H), b (4H,): CuPy arrays of one
        float dtype; any strides.

    Returns:
        (h, c, cache): h and c (B, H); cache an LSTMCellCache with the activated gates and tanh(c).
    """
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    batch, hidden = h_prev.shape
    c_prev = _backend.c_array(c_prev)
    b = _backend.c_array(b)
    # cuBLAS takes any strides but not misaligned data; the cache keeps the aligned operands for backward.
    x, h_prev, Wx, Wh = (_backend.cupy_aligned(a) for a in (x, h_prev, Wx, Wh))
    gates = cp.matmul(x, Wx)  # a fresh C-contiguous (B, 4H) array: the kernel overwrites it in place
    gates += cp.matmul(h_prev, Wh)
    gates = _backend.c_array(gates)
    c = cp.empty_like(c_prev)
    h = cp.empty_like(c_prev)
    tanh_c = cp.empty_like(c_prev)
    native.lstm_cell_forward(
        gates.dtype.name, gates.data.ptr, b.data.ptr, c_prev.data.ptr, c.data.ptr, h.data.ptr,
        tanh_c.data.ptr, batch, hidden, cp.cuda.get_current_stream().ptr,
    )
    return h, c, LSTMCellCache(x, h_prev, c_prev, Wx, Wh, gates, tanh_c)


def lstm_cell_backward_cuda(dh, dc, cache):
    """Gradients of one LSTM step on the GPU.

    Args:
        dh, dc: (B, H) CuPy arrays of the forward dtype, or None for zeros.
        cache: the LSTMCellCache from lstm_cell_forward_cuda (or lstm_cell_forward on CuPy input).

    Returns:
        (dx, dh_prev, dc_prev, dWx, dWh, db) with the shapes of x, h_prev, c_prev, Wx, Wh, b.
    """
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    x, h_prev, c_prev, Wx, Wh, gates, tanh_c = cache
    batch, hidden = c_prev.shape
    c_prev, gates, tanh_c = (_backend.c_array(a) for a in (c_prev, gates, tanh_c))
    dh = None if dh is None else _backend.c_array(dh, dtype=c_prev.dtype)
    dc = None if dc is None else _backend.c_array(dc, dtype=c_prev.dtype)
    for name, v in (("dh", dh), ("dc", dc)):
        if v is not None and v.shape != c_prev.shape:
            raise ValueError(f"lstm_cell_backward_cuda: {name} has shape {tuple(v.shape)}, expected {tuple(c_prev.shape)}")
    dgates = cp.empty_like(gates)
    dc_prev = cp.empty_like(c_prev)
    native.lstm_cell_backward(
        gates.dtype.name, gates.data.ptr, c_prev.data.ptr, tanh_c.data.ptr,
        0 if dh is None else dh.data.ptr, 0 if dc is None else dc.data.ptr,
        dgates.data.ptr, dc_prev.data.ptr, batch, hidden, cp.cuda.get_current_stream().ptr,
    )
    dx = cp.matmul(dgates, Wx.T)
    dh_prev = cp.matmul(dgates, Wh.T)
    dWx = cp.matmul(x.T, dgates)
    dWh = cp.matmul(h_prev.T, dgates)
    db = dgates.sum(axis=0)
    return dx, dh_prev, dc_prev, dWx, dWh, db


def cuda_cell_pointwise():
    """The cell's fused kernels in the form the layer's step loop takes (see lstm._lstm_forward_steps):
    forward(a, b, c_prev) -> (h, c, tanh_c) with the gates written over a; backward(dh, dc, gates,
    c_prev, tanh_c) -> (da, dc_prev). All arguments C-contiguous CuPy arrays of one dtype."""
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()

    def forward(a, b, c_prev):
        batch, hidden = c_prev.shape
        c_prev = _backend.c_array(c_prev)
        c, h, tanh_c = cp.empty_like(c_prev), cp.empty_like(c_prev), cp.empty_like(c_prev)
        native.lstm_cell_forward(a.dtype.name, a.data.ptr, b.data.ptr, c_prev.data.ptr, c.data.ptr, h.data.ptr,
                                 tanh_c.data.ptr, batch, hidden, cp.cuda.get_current_stream().ptr)
        return h, c, tanh_c

    def backward(dh, dc, gates, c_prev, tanh_c):
        batch, hidden = c_prev.shape
        c_prev = _backend.c_array(c_prev)
        da, dc_prev = cp.empty_like(gates), cp.empty_like(c_prev)
        native.lstm_cell_backward(gates.dtype.name, gates.data.ptr, c_prev.data.ptr, tanh_c.data.ptr,
                                  0 if dh is None else dh.data.ptr, 0 if dc is None else dc.data.ptr, da.data.ptr,
                                  dc_prev.data.ptr, batch, hidden, cp.cuda.get_current_stream().ptr)
        return da, dc_prev

    return forward, backward
