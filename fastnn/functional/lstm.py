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
from ._checks import NonFiniteError, float_array, same_device, same_dtype


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

    # The GEMMs copy strided operands to C order; the fused kernel reads c_prev and b as contiguous rows.
    c_prev = _backend.c_array(c_prev)
    a_x = _backend.matmul(x, Wx)  # (B, 4H), fresh and C-contiguous: the kernel writes the gates over it
    a_h = _backend.matmul(h_prev, Wh)
    h, c, tanh_c, nan_count = _backend._C.lstm_cell_forward_pointwise(a_x, a_h, _backend.c_array(b), c_prev)
    if nan_count:
        raise NonFiniteError("lstm_cell_forward: h or c is NaN (NaN or inf in the inputs or weights)")
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
        None if dh is None else _backend.c_array(dh), None if dc is None else _backend.c_array(dc),
        gates, c_prev, tanh_c)
    # dx = da Wx^T and dh_prev = da Wh^T, as one product that reads the weights in place.
    dx, dh_prev = _backend._C.lstm_cell_input_grads(da, _backend.c_array(Wx), _backend.c_array(Wh))
    # [dWx; dWh] = [x, h_prev]^T da as one GEMM (K = B is small, so one call of D + H rows beats
    # two); dWx and dWh are contiguous row blocks of its result.
    in_features = x.shape[1]
    dW = _backend.matmul(np.concatenate([x, h_prev], axis=1), da, trans_a=True)
    return dx, dh_prev, dc_prev, dW[:in_features], dW[in_features:], db


# ----------------------------------------------------------------------------------- the layer
class LSTMCache(NamedTuple):
    """What lstm_backward needs from lstm_forward. `layout` says how the per-step arrays are laid out:
    "native" (the CPU kernel: gates (T, 4H, B), c_all and tanh_c_all (T, H, B)) or "steps" (the
    step-by-step path: gates (T, B, 4H), c_all and tanh_c_all (T, B, H))."""
    xs: object  # (T, B, D), C-contiguous
    h0: object  # (B, H)
    c0: object  # (B, H)
    Wx: object
    Wh: object
    gates: object  # activated gates
    c_all: object  # every c_t
    tanh_c_all: object  # every tanh(c_t)
    hs: object  # (T, B, H), the cache's own copy of every h_t
    layout: str


def lstm_forward(xs, h0, c0, Wx, Wh, b):
    """A whole LSTM layer: lstm_cell_forward over T time steps, computed as a layer.

        for t in 0..T-1:  h_t, c_t = cell(xs[t], h_{t-1}, c_{t-1});   h_{-1} = h0, c_{-1} = c0

    The input projection xs[t] Wx + b of every step is computed before the loop (the steps are
    independent, so they split across threads); each step then adds h_{t-1} Wh (the recurrent
    weights packed once for all steps) and runs the fused pointwise pass. lstm_backward likewise
    computes dxs for all steps after the loop, and dWx, dWh (one GEMM over all T*B columns) and db.
    Same numbers as looping lstm_cell_forward, less work per step.

    Args:
        xs: (T, B, D) inputs, time-major (nn.LSTM takes batch-first input and transposes).
        h0, c0: (B, H) initial state, or None for zeros.
        Wx (D, 4H), Wh (H, 4H), b (4H,): weights, gate order i, f, o, g along 4H.
        All float32 or float64 (one dtype), all NumPy or all CuPy; any strides (copied to C order).

    Returns:
        (hs, h_last, c_last, cache): hs (T, B, H) every hidden state, h_last and c_last (B, H) the
        final state; cache an LSTMCache for lstm_backward.

    Raises:
        TypeError: non-arrays, non-float dtypes, mixed dtypes or devices.
        ValueError: wrong dimensions or shapes, empty dimensions, and on CPU NaN in any h or c (NaN
            or inf in the inputs or weights).
    """
    float_array("xs", xs, ndim=3)
    float_array("Wh", Wh, ndim=2)
    steps, batch, in_features = xs.shape
    hidden = Wh.shape[0]
    arrays = {"xs": xs, "Wx": Wx, "Wh": Wh, "b": b}
    expected = {"Wx": (in_features, 4 * hidden), "Wh": (hidden, 4 * hidden), "b": (4 * hidden,)}
    for name, v in (("h0", h0), ("c0", c0)):
        if v is not None:
            arrays[name] = v
            expected[name] = (batch, hidden)
    for name, v in arrays.items():
        float_array(name, v, ndim=3 if name == "xs" else 1 if name == "b" else 2)
    on_gpu = same_device(**arrays)
    same_dtype(**arrays)
    for name, shape in expected.items():
        if tuple(arrays[name].shape) != shape:
            raise ValueError(
                f"lstm_forward: {name} has shape {tuple(arrays[name].shape)}, expected {shape} "
                f"(T={steps}, B={batch}, D={in_features} from xs, H={hidden} from Wh)"
            )
    if min(steps, batch, in_features, hidden) < 1:
        raise ValueError(f"lstm_forward: empty dimension (T={steps}, B={batch}, D={in_features}, H={hidden})")
    xp = _backend.array_module(xs)
    xs, Wx, Wh, b = (_backend.c_array(a) for a in (xs, Wx, Wh, b))
    h0 = xp.zeros((batch, hidden), xs.dtype) if h0 is None else _backend.c_array(h0)
    c0 = xp.zeros((batch, hidden), xs.dtype) if c0 is None else _backend.c_array(c0)
    if on_gpu:
        from .lstm_cuda import cuda_cell_pointwise

        return _lstm_forward_steps(xp, xs, h0, c0, Wx, Wh, b, cuda_cell_pointwise()[0])
    hs, c_last, gates, c_all, tanh_c_all, nan_count = _backend._C.lstm_layer_forward(xs, h0, c0, Wx, Wh, b)
    if nan_count:
        raise NonFiniteError("lstm_forward: h or c is NaN (NaN or inf in the inputs or weights)")
    cache = LSTMCache(xs, h0, c0, Wx, Wh, gates, c_all, tanh_c_all, hs, "native")
    return hs.copy(), hs[-1].copy(), c_last, cache


def lstm_backward(dhs, dh_last, dc_last, cache):
    """Backpropagation through time for lstm_forward.

    Args:
        dhs: (T, B, H) gradient of the loss with respect to hs, or None for zeros.
        dh_last, dc_last: (B, H) gradients with respect to the final state (from the next truncated
            BPTT window, for instance), or None for zeros.
        cache: the LSTMCache from lstm_forward. It is not consumed: backward may run again.

    Returns:
        (dxs, dh0, dc0, dWx, dWh, db) with the shapes of xs, h0, c0, Wx, Wh, b (dWx, dWh and db
        summed over all steps).
    """
    if not isinstance(cache, LSTMCache):
        raise TypeError("cache: expected the LSTMCache returned by lstm_forward")
    xp = _backend.array_module(cache.xs)
    steps, batch, _ = cache.xs.shape
    hidden = cache.Wh.shape[0]
    grads = {}
    for name, v, shape in (("dhs", dhs, (steps, batch, hidden)), ("dh_last", dh_last, (batch, hidden)),
                           ("dc_last", dc_last, (batch, hidden))):
        if v is None:
            continue
        float_array(name, v, ndim=len(shape))
        same_device(**{name: v, "xs": cache.xs})
        same_dtype(**{name: v, "xs": cache.xs})
        if tuple(v.shape) != shape:
            raise ValueError(f"lstm_backward: {name} has shape {tuple(v.shape)}, expected {shape}")
        grads[name] = _backend.c_array(v)
    dhs, dh_last, dc_last = (grads.get(n) for n in ("dhs", "dh_last", "dc_last"))
    if cache.layout == "steps":
        if _backend.is_cupy_array(cache.xs):
            from .lstm_cuda import cuda_cell_pointwise

            backward_pointwise = cuda_cell_pointwise()[1]
        else:
            backward_pointwise = _cpu_cell_pointwise[1]
        return _lstm_backward_steps(xp, dhs, dh_last, dc_last, cache, backward_pointwise)
    return _backend._C.lstm_layer_backward(dhs, dh_last, dc_last, cache.xs, cache.h0, cache.c0, cache.Wx, cache.Wh,
                                           cache.gates, cache.c_all, cache.tanh_c_all, cache.hs)


# The step-by-step formulation of the layer for array libraries without a layer kernel (CuPy): the
# same batching (one input-projection GEMM before the loop, the weight gradients after it) around the
# cell's fused pointwise kernels, given as
#   forward(a, b, c_prev) -> (h, c, tanh_c), writing the activated gates over a (B, 4H) in place;
#   backward(dh, dc, gates, c_prev, tanh_c) -> (da, dc_prev).
# On the CPU the tests run it with the cell's kernels (_cpu_cell_pointwise) against the layer kernel.
# Its GEMMs go through _backend.matmul with transpose flags (on CuPy: cuBLAS, or fastnn's GEMM kernel
# while a CUDA graph is captured, where CuPy refuses cuBLAS), so no transposed copy is made per step.
def _lstm_forward_steps(xp, xs, h0, c0, Wx, Wh, b, forward_pointwise):
    steps, batch, in_features = xs.shape
    hidden = Wh.shape[0]
    matmul = _backend.matmul
    gates = matmul(xs.reshape(steps * batch, in_features), Wx).reshape(steps, batch, 4 * hidden)
    c_all = xp.empty((steps, batch, hidden), xs.dtype)
    tanh_c_all = xp.empty_like(c_all)
    hs = xp.empty_like(c_all)
    h, c = h0, c0
    for t in range(steps):
        matmul(h, Wh, out=gates[t], accumulate=True)
        h, c, tanh_c = forward_pointwise(gates[t], b, c)
        hs[t], c_all[t], tanh_c_all[t] = h, c, tanh_c
    cache = LSTMCache(xs, h0, c0, Wx, Wh, gates, c_all, tanh_c_all, hs, "steps")
    return hs.copy(), h, c, cache


def _lstm_backward_steps(xp, dhs, dh_last, dc_last, cache, backward_pointwise):
    xs, h0, c0, Wx, Wh, gates, c_all, tanh_c_all, hs, _ = cache
    steps, batch, in_features = xs.shape
    hidden = Wh.shape[0]
    matmul = _backend.matmul
    dgates = xp.empty_like(gates)
    dh = xp.zeros((batch, hidden), xs.dtype) if dh_last is None else dh_last
    dc = dc_last
    for t in reversed(range(steps)):
        if dhs is not None:
            dh = dh + dhs[t]
        c_prev = c0 if t == 0 else c_all[t - 1]
        dgates[t], dc = backward_pointwise(dh, dc, gates[t], c_prev, tanh_c_all[t])
        dh = matmul(dgates[t], Wh, trans_b=True)
    dg = dgates.reshape(steps * batch, 4 * hidden)
    dWx = matmul(xs.reshape(steps * batch, in_features), dg, trans_a=True)
    h_prev = xp.concatenate([h0[None], hs[:-1]]).reshape(steps * batch, hidden)
    dWh = matmul(h_prev, dg, trans_a=True)
    dxs = matmul(dg, Wx, trans_b=True).reshape(xs.shape)
    return dxs, dh, dc, dWx, dWh, dg.sum(axis=0)


def _cpu_forward_pointwise(a, b, c_prev):
    h, c, tanh_c, nan_count = _backend._C.lstm_cell_forward_pointwise(a, np.zeros_like(a), b, c_prev)
    if nan_count:
        raise NonFiniteError("lstm_forward: h or c is NaN (NaN or inf in the inputs or weights)")
    return h, c, tanh_c


def _cpu_backward_pointwise(dh, dc, gates, c_prev, tanh_c):
    da, dc_prev, _ = _backend._C.lstm_cell_backward_pointwise(dh, dc, gates, _backend.c_array(c_prev), tanh_c)
    return da, dc_prev


_cpu_cell_pointwise = (_cpu_forward_pointwise, _cpu_backward_pointwise)
