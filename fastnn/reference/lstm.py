"""One LSTM cell step, written as the lecture writes it (NumPy; float64-capable). The oracle.

x (B, D), h_prev (B, H), c_prev (B, H), Wx (D, 4H), Wh (H, 4H), b (4H,); gate order (i, f, o, g):
    a = x Wx + h_prev Wh + b                    (B, 4H) = [a_i | a_f | a_o | a_g]
    i = sigmoid(a_i), f = sigmoid(a_f), o = sigmoid(a_o), g = tanh(a_g)
    c = f * c_prev + i * g
    h = o * tanh(c)
Backward, given dh and dc (either may be None, meaning zeros):
    dc_total = dc + dh * o * (1 - tanh(c)^2)
    da_i = dc_total * g * i (1 - i)       da_f = dc_total * c_prev * f (1 - f)
    da_o = dh * tanh(c) * o (1 - o)       da_g = dc_total * i * (1 - g^2)
    dc_prev = dc_total * f,  dh_prev = da Wh^T,  dx = da Wx^T
    dWx = x^T da,  dWh = h_prev^T da,  db = sum over the batch of da
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_cell_forward(x, h_prev, c_prev, Wx, Wh, b):
    hidden = h_prev.shape[1]
    a = x @ Wx + h_prev @ Wh + b
    i = sigmoid(a[:, :hidden])
    f = sigmoid(a[:, hidden:2 * hidden])
    o = sigmoid(a[:, 2 * hidden:3 * hidden])
    g = np.tanh(a[:, 3 * hidden:])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, (x, h_prev, c_prev, Wx, Wh, i, f, o, g, c)


def lstm_cell_backward(dh, dc, cache):
    x, h_prev, c_prev, Wx, Wh, i, f, o, g, c = cache
    if dh is None:
        dh = np.zeros_like(c)
    if dc is None:
        dc = np.zeros_like(c)
    tanh_c = np.tanh(c)
    dc_total = dc + dh * o * (1 - tanh_c ** 2)
    da_i = dc_total * g * i * (1 - i)
    da_f = dc_total * c_prev * f * (1 - f)
    da_o = dh * tanh_c * o * (1 - o)
    da_g = dc_total * i * (1 - g ** 2)
    da = np.concatenate([da_i, da_f, da_o, da_g], axis=1)
    dc_prev = dc_total * f
    dx = da @ Wx.T
    dh_prev = da @ Wh.T
    dWx = x.T @ da
    dWh = h_prev.T @ da
    db = da.sum(axis=0)
    return dx, dh_prev, dc_prev, dWx, dWh, db


def lstm_forward(xs, h0, c0, Wx, Wh, b):
    """A layer: the cell applied over time. xs (T, B, D) time-major; h0, c0 (B, H) or None (zeros).
    Returns (hs (T, B, H), h_last, c_last, cache)."""
    hidden = Wh.shape[0]
    zeros = np.zeros((xs.shape[1], hidden), dtype=xs.dtype)
    h = zeros if h0 is None else h0
    c = zeros if c0 is None else c0
    hs, caches = [], []
    for x in xs:
        h, c, cache = lstm_cell_forward(x, h, c, Wx, Wh, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs), h, c, caches


def lstm_backward(dhs, dh_last, dc_last, caches):
    """Backpropagation through time: dhs (T, B, H) or None, dh_last and dc_last (B, H) or None.
    Returns (dxs, dh0, dc0, dWx, dWh, db)."""
    x, _, c_prev, Wx, Wh = caches[0][:5]
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wx.shape[1], dtype=Wx.dtype)
    dxs = np.empty((len(caches),) + x.shape, dtype=x.dtype)
    dh = np.zeros_like(c_prev) if dh_last is None else dh_last
    dc = dc_last
    for t in reversed(range(len(caches))):
        if dhs is not None:
            dh = dh + dhs[t]
        dxs[t], dh, dc, dWx_t, dWh_t, db_t = lstm_cell_backward(dh, dc, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dxs, dh, dc, dWx, dWh, db
