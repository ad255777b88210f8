"""One step of an LSTM cell, gate order (i, f, o, g) along the 4H axis.

x (B, D), h_prev (B, H), c_prev (B, H), Wx (D, 4H), Wh (H, 4H), b (4H,):
    a = [x, h_prev] [Wx; Wh] + b = x Wx + h_prev Wh + b      (B, 4H) = [a_i | a_f | a_o | a_g]
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o),  g = tanh(a_g)
    c = f * c_prev + i * g,   h = o * tanh(c)
Backward, from dh and dc (None means zeros, e.g. dc at the last step of a sequence):
    dc_total = dc + dh * o * (1 - tanh(c)^2)
    da_i = dc_total g i (1 - i),  da_f = dc_total c_prev f (1 - f)
    da_o = dh tanh(c) o (1 - o),  da_g = dc_total i (1 - g^2)
    dc_prev = dc_total f,  [dx, dh_prev] = da [Wx; Wh]^T,  [dWx; dWh] = [x, h_prev]^T da,  db = sum_b da

The gate projection is one GEMM over K = D + H, issued as two GEMM calls on Wx and Wh (stacking
the weights would copy (D + H) x 4H values every step, more than the stacking could save); the
bias, the nonlinearities and the cell update are one fused pass over the (B, 4H) pre-activations.
The cache keeps the activated gates and tanh(c), so backward recomputes no GEMM and no
transcendental: one fused pointwise pass gives da, dc_prev and db, then GEMMs give the rest
(dx, dh_prev, and dWx and dWh together as [x, h_prev]^T da).
"""
from typing import NamedTuple

import numpy as np

from .. import _backend
from ._checks import float_array, same_device, same_dtype


class LSTMCellCache(NamedTuple):
    x: object  # (B, D)
    h_prev: object  # (B, H)
    c_prev: object  # (B, H)
    Wx: object  # (D, 4H)
    Wh: object  # (H, 4H)
    gates: object  # (B, 4H) activated gates [i | f | o | g]
    tanh_c: object  # (B, H) tanh of the new cell state


def lstm_cell_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step: (h, c) from x, h_prev, c_prev with gates (i, f, o, g) = act(x Wx + h_prev Wh + b).

    Args:
        x: (B, D) input; h_prev, c_prev: (B, H) previous hidden and cell state.
        Wx: (D, 4H) input weights, Wh: (H, 4H) recurrent weights, b: (4H,) bias; the 4H axis holds
            the gates in the order i, f, o, g (PyTorch's LSTMCell uses i, f, g, o).
        All float32 or float64 (one dtype), all NumPy or all CuPy; any strides.

    Returns:
        (h, c, cache): h = o * tanh(c) and c = f * c_prev + i * g, both (B, H); cache is an
        LSTMCellCache for lstm_cell_backward.

    Raises:
        TypeError: non-arrays, non-float dtypes, mixed dtypes or devices.
        ValueError: wrong dimensions or shapes that do not fit together, empty dimensions, and on
            CPU NaN in h or c (NaN or inf in the inputs or weights; the GPU path does not
            synchronise to look).
    """
    arrays = {"x": x, "h_prev": h_prev, "c_prev": c_prev, "Wx": Wx, "Wh": Wh, "b": b}
    for name, v in arrays.items():
        float_array(name, v, ndim=1 if name == "b" else 2)
    on_gpu = same_device(**arrays)
    same_dtype(**arrays)
    batch, in_features = x.shape
    hidden = h_prev.shape[1]
    expected = {"x": (batch, in_features), "h_prev": (batch, hidden), "c_prev": (batch, hidden),
                "Wx": (in_features, 4 * hidden), "Wh": (hidden, 4 * hidden), "b": (4 * hidden,)}
    for name, shape in expected.items():
        if tuple(arrays[name].shape) != shape:
            raise ValueError(
                f"lstm_cell_forward: {name} has shape {tuple(arrays[name].shape)}, expected {shape} "
                f"(B={batch}, D={in_features}, H={hidden} from x and h_prev)"
            )
    if min(batch, in_features, hidden) < 1:
        raise ValueError(f"lstm_cell_forward: empty dimension (B={batch}, D={in_features}, H={hidden})")
    if on_gpu:
        from .lstm_cuda import lstm_cell_forward_cuda

        return lstm_cell_forward_cuda(x, h_prev, c_prev, Wx, Wh, b)

    # The GEMMs take any strides (NumPy hands BLAS transposed views as they are); the fused kernel
    # reads c_prev and b as contiguous rows.
    c_prev = np.ascontiguousarray(c_prev)
    a_x = np.matmul(x, Wx)  # (B, 4H), fresh and C-contiguous: the kernel writes the gates over it
    a_h = np.matmul(h_prev, Wh)
    h, c, tanh_c, nan_count = _backend._C.lstm_cell_forward_pointwise(a_x, a_h, np.ascontiguousarray(b), c_prev)
    if nan_count:
        raise ValueError("lstm_cell_forward: h or c is NaN (NaN or inf in the inputs or weights)")
    return h, c, LSTMCellCache(x, h_prev, c_prev, Wx, Wh, a_x, tanh_c)


def lstm_cell_backward(dh, dc, cache):
    """Gradients of one LSTM step.

    Args:
        dh: (B, H) gradient of the loss with respect to h, or None for zeros.
        dc: (B, H) gradient with respect to c from the next step, or None for zeros.
        cache: the LSTMCellCache from lstm_cell_forward.
        dh and dc have the forward pass's dtype and device.

    Returns:
        (dx, dh_prev, dc_prev, dWx, dWh, db) with the shapes of x, h_prev, c_prev, Wx, Wh, b.
    """
    if not isinstance(cache, LSTMCellCache):
        raise TypeError("cache: expected the LSTMCellCache returned by lstm_cell_forward")
    shape = tuple(cache.c_prev.shape)
    for name, v in (("dh", dh), ("dc", dc)):
        if v is None:
            continue
        float_array(name, v, ndim=2)
        same_device(**{name: v, "c_prev": cache.c_prev})
        same_dtype(**{name: v, "c_prev": cache.c_prev})
        if tuple(v.shape) != shape:
            raise ValueError(f"lstm_cell_backward: {name} has shape {tuple(v.shape)}, expected {shape}")
    if _backend.is_cupy_array(cache.c_prev):
        from .lstm_cuda import lstm_cell_backward_cuda

        return lstm_cell_backward_cuda(dh, dc, cache)

    x, h_prev, c_prev, Wx, Wh, gates, tanh_c = cache
    da, dc_prev, db = _backend._C.lstm_cell_backward_pointwise(
        None if dh is None else np.ascontiguousarray(dh), None if dc is None else np.ascontiguousarray(dc),
        gates, c_prev, tanh_c)
    dx = np.matmul(da, Wx.T)
    dh_prev = np.matmul(da, Wh.T)
    # [dWx; dWh] = [x, h_prev]^T da as one GEMM (K = B is small, so one call of D + H rows beats
    # two); dWx and dWh are contiguous row blocks of its result.
    in_features = x.shape[1]
    dW = np.matmul(np.concatenate([x, h_prev], axis=1).T, da)
    return dx, dh_prev, dc_prev, dW[:in_features], dW[in_features:], db
