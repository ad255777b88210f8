"""The LSTM cell, forward + backward: one step at a large batch, and a layer of T steps (forward
through time, then backpropagation through time), against the NumPy reference and PyTorch
(nn.LSTMCell for the step, nn.LSTM for the layer, autograd for backward).

The layer row times F.lstm_forward/F.lstm_backward: the fused cell per step inside one native call,
with the input projection and the weight gradients batched over all steps. Its "cell-loop" peer is
the same layer as a Python loop over F.lstm_cell_forward/backward (what the layer op replaced).

Work counted: the gate GEMMs, 2 B (D + H) 4H flops per step forward and twice that backward
(dx, dh_prev and dWx, dWh): 6 B (D + H) 4H per step. The pointwise math is noise against it.
For the layer there are two PyTorch peers on the CPU: "torch" (its default, oneDNN's fused LSTM)
and "torch-aten" (oneDNN off: ATen's step loop, which like ours calls one cell per step).
"""
import numpy as np

import fastnn.functional as F
import fastnn.reference as R
from fastnn.testing import to_torch_lstm
from harness import Case

# (B, D, H) for the single step; (T, B, D, H) for the layer.
CPU_CELL, CUDA_CELL = (64, 1024, 1024), (256, 1024, 1024)
CPU_LAYER, CUDA_LAYER = (64, 16, 128, 512), (64, 64, 128, 512)


def _weights(rng, d, h, dtype):
    scale = 1.0 / np.sqrt(h)
    return (rng.uniform(-scale, scale, (d, 4 * h)).astype(dtype), rng.uniform(-scale, scale, (h, 4 * h)).astype(dtype),
            rng.uniform(-scale, scale, 4 * h).astype(dtype))


def _torch_cell(x, h0, c0, wx, wh, b, dh, dc, device):
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    cell = torch.nn.LSTMCell(x.shape[1], h0.shape[1]).to(device)
    to_torch_lstm(wx, wh, b, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    xt, ht, ct = (torch.tensor(a, device=device, requires_grad=True) for a in (x, h0, c0))
    dht, dct = torch.tensor(dh, device=device), torch.tensor(dc, device=device)

    def run():
        cell.zero_grad(set_to_none=True)
        xt.grad = ht.grad = ct.grad = None
        h, c = cell(xt, (ht, ct))
        torch.autograd.backward([h, c], [dht, dct])

    return run


def _torch_layer(xs, wx, wh, b, dhs, device, onednn=True):
    """nn.LSTM forward + backward. On the CPU PyTorch runs it through oneDNN's fused RNN (which batches
    the input projections and weight gradients over time); onednn=False runs ATen's own step loop."""
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    lstm = torch.nn.LSTM(xs.shape[2], wh.shape[0]).to(device)
    to_torch_lstm(wx, wh, b, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    xt = torch.tensor(xs, device=device, requires_grad=True)
    dht = torch.tensor(dhs, device=device)

    def run():
        lstm.zero_grad(set_to_none=True)
        xt.grad = None
        with torch.backends.mkldnn.flags(enabled=onednn):
            out, _ = lstm(xt)
            out.backward(dht)

    return run


def _cell_step(ops, x, h0, c0, wx, wh, b, dh, dc):
    h, c, cache = ops.lstm_cell_forward(x, h0, c0, wx, wh, b)
    return ops.lstm_cell_backward(dh, dc, cache)


def _layer(xs, wx, wh, b, dhs):
    """The layer op from zero state: forward through time, then backpropagation through time."""
    *_, cache = F.lstm_forward(xs, None, None, wx, wh, b)
    return F.lstm_backward(dhs, None, None, cache)


def _cell_loop(ops, xp, xs, wx, wh, b, dhs):
    """The same layer as a loop over the cell op; returns dxs and the summed weight gradients."""
    steps, batch, _ = xs.shape
    hidden = wh.shape[0]
    h = xp.zeros((batch, hidden), dtype=xs.dtype)
    c = xp.zeros_like(h)
    caches = []
    for t in range(steps):
        h, c, cache = ops.lstm_cell_forward(xs[t], h, c, wx, wh, b)
        caches.append(cache)
    dwx, dwh, db = xp.zeros_like(wx), xp.zeros_like(wh), xp.zeros_like(b)
    dxs = xp.empty_like(xs)
    dh_next, dc_next = None, None
    for t in reversed(range(steps)):
        dh = dhs[t] if dh_next is None else dhs[t] + dh_next
        dxs[t], dh_next, dc_next, dwx_t, dwh_t, db_t = ops.lstm_cell_backward(dh, dc_next, caches[t])
        dwx += dwx_t
        dwh += dwh_t
        db += db_t
    return dxs, dwx, dwh, db


def cases(device="cpu", dtype=np.float32):
    rng = np.random.default_rng(0)
    if device == "cuda":
        import cupy as xp
    else:
        xp = np

    batch, d, hidden = CUDA_CELL if device == "cuda" else CPU_CELL
    host = [rng.standard_normal((batch, d)), rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden))]
    host = [a.astype(dtype) for a in host] + list(_weights(rng, d, hidden, dtype))
    grads = [rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(2)]
    cell_args = [xp.asarray(a) for a in host + grads]
    yield Case(
        family="lstm",
        name=f"cell fwd+bwd B={batch} D={d} H={hidden}",
        impls={"fastnn": lambda: _cell_step(F, *cell_args),
               "reference": (lambda: _cell_step(R, *host, *grads)) if device == "cpu" else None,
               "torch": _torch_cell(*host, *grads, device)},
        flops=6.0 * batch * (d + hidden) * 4 * hidden,
        ceiling="fma",
    )

    steps, batch, d, hidden = CUDA_LAYER if device == "cuda" else CPU_LAYER
    xs = rng.standard_normal((steps, batch, d)).astype(dtype)
    wx, wh, b = _weights(rng, d, hidden, dtype)
    dhs = rng.standard_normal((steps, batch, hidden)).astype(dtype)
    layer_args = [xp.asarray(a) for a in (xs, wx, wh, b, dhs)]
    yield Case(
        family="lstm",
        name=f"layer fwd+bwd T={steps} B={batch} D={d} H={hidden}",
        impls={"fastnn": lambda: _layer(*layer_args),
               "cell-loop": lambda: _cell_loop(F, xp, *layer_args),
               "reference": (lambda: _cell_loop(R, np, xs, wx, wh, b, dhs)) if device == "cpu" else None,
               "torch": _torch_layer(xs, wx, wh, b, dhs, device),
               "torch-aten": _torch_layer(xs, wx, wh, b, dhs, device, onednn=False) if device == "cpu" else None},
        flops=steps * 6.0 * batch * (d + hidden) * 4 * hidden,
        ceiling="fma",
    )
