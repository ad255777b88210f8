"""Recurrent layers over batch-first sequences x (N, T, D): RNN (Elman), GRU and LSTM.

Each is a stack of `num_layers` single-layer recurrences; layer l + 1 reads the hidden states of
layer l. forward(x, state=None) returns (hs, final_state): hs (N, T, H) are the top layer's hidden
states at every step; final_state is h_T (num_layers, N, H), or (h_T, c_T) for the LSTM. `state`
(the same form) is the initial state, zeros when None: pass the last batch's final state to
continue a sequence (truncated BPTT; the state is a constant input, gradients stop there).

backward(dhs, dstate=None) takes dL/dhs (exactly hs's shape) and optionally dL/d(final state)
(the state's form and shape), runs backpropagation through time, accumulates the weight gradients
and returns dL/dx. dL/d(initial state) is left in `initial_state_grad` (same form as the state).

Weights per layer: Wx (D_in, G*H), Wh (H, G*H), biases over G*H, with G gates (RNN 1, GRU 3,
LSTM 4). Init: Wx Xavier-uniform, Wh orthogonal per gate block, biases 0 (the LSTM forget-gate
bias 1, so early training remembers).
"""
import numpy as np

from .. import _backend, init
from .. import functional as F
from . import _checks
from .module import Module, Parameter


# The GEMMs run on fastnn's own kernel and threads on the CPU (see fastnn._backend.matmul).
_matmul = _backend.matmul

def _sigmoid(xp, a):
    return 0.5 * (1 + xp.tanh(0.5 * a))


def _recurrent_weights(layer, input_size, hidden_size, gates, dtype):
    layer.Wx = init.xavier_uniform(Parameter(np.empty((input_size, gates * hidden_size), dtype), "Wx"))
    wh = np.empty((hidden_size, gates * hidden_size), dtype)
    for g in range(gates):
        init.orthogonal(wh[:, g * hidden_size:(g + 1) * hidden_size])
    layer.Wh = Parameter(wh, "Wh")


class _ElmanLayer(Module):
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b)."""

    def __init__(self, input_size, hidden_size, dtype):
        super().__init__()
        self.hidden_size = hidden_size
        _recurrent_weights(self, input_size, hidden_size, 1, dtype)
        self.b = Parameter(np.zeros(hidden_size, dtype), "b")

    def forward(self, x, h):
        xp = _backend.array_module(x)
        n, t_len, d = x.shape
        # The input projections of all steps in one GEMM; only h_{t-1} Wh must wait for the previous step.
        ax = (_matmul(x.reshape(-1, d), self.Wx.data) + self.b.data).reshape(n, t_len, -1)
        hs = xp.empty((n, t_len, self.hidden_size), dtype=x.dtype)
        h_prev = [h]
        for t in range(t_len):
            h = xp.tanh(ax[:, t] + _matmul(h, self.Wh.data))
            hs[:, t] = h
            h_prev.append(h)
        self._push_cache((x, h_prev))
        return hs, h

    def backward(self, dhs, dh):
        x, h_prev = self._pop_cache()
        xp = _backend.array_module(dhs)
        n, t_len, d = x.shape
        da_all = xp.empty((n, t_len, self.hidden_size), dtype=dhs.dtype)
        for t in reversed(range(t_len)):
            h = h_prev[t + 1]
            da = (dhs[:, t] + dh) * (1 - h * h)
            _matmul(h_prev[t], da, trans_a=True, out=self.Wh.grad, accumulate=True)
            dh = _matmul(da, self.Wh.data, trans_b=True)
            da_all[:, t] = da
        da2 = da_all.reshape(-1, self.hidden_size)
        _matmul(x.reshape(-1, d), da2, trans_a=True, out=self.Wx.grad, accumulate=True)
        self.b.grad += da2.sum(axis=0)
        return _matmul(da2, self.Wx.data, trans_b=True).reshape(x.shape), dh


class _GRULayer(Module):
    """Gated recurrent unit (Cho et al. 2014), gate order (r, z, n) along the 3H axis:

        r = sigmoid(x Wx_r + bx_r + h Wh_r + bh_r)        reset gate
        z = sigmoid(x Wx_z + bx_z + h Wh_z + bh_z)        update gate
        n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n))     candidate
        h' = (1 - z) * n + z * h
    """

    def __init__(self, input_size, hidden_size, dtype):
        super().__init__()
        self.hidden_size = hidden_size
        _recurrent_weights(self, input_size, hidden_size, 3, dtype)
        self.bx = Parameter(np.zeros(3 * hidden_size, dtype), "bx")
        self.bh = Parameter(np.zeros(3 * hidden_size, dtype), "bh")

    def forward(self, x, h):
        xp = _backend.array_module(x)
        n_batch, t_len, d = x.shape
        hid = self.hidden_size
        gx_all = (_matmul(x.reshape(-1, d), self.Wx.data) + self.bx.data).reshape(n_batch, t_len, 3 * hid)
        hs = xp.empty((n_batch, t_len, hid), dtype=x.dtype)
        steps = []
        for t in range(t_len):
            gx = gx_all[:, t]
            gh = _matmul(h, self.Wh.data) + self.bh.data
            r = _sigmoid(xp, gx[:, :hid] + gh[:, :hid])
            z = _sigmoid(xp, gx[:, hid:2 * hid] + gh[:, hid:2 * hid])
            gh_n = gh[:, 2 * hid:]
            cand = xp.tanh(gx[:, 2 * hid:] + r * gh_n)
            steps.append((h, r, z, cand, gh_n))
            h = (1 - z) * cand + z * h
            hs[:, t] = h
        self._push_cache((x, steps))
        return hs, h

    def backward(self, dhs, dh):
        x, steps = self._pop_cache()
        xp = _backend.array_module(dhs)
        n_batch, t_len, d = x.shape
        hid = self.hidden_size
        dgx_all = xp.empty((n_batch, t_len, 3 * hid), dtype=dhs.dtype)
        for t in reversed(range(t_len)):
            h_prev, r, z, cand, gh_n = steps[t]
            dh_next = dhs[:, t] + dh
            dcand = dh_next * (1 - z)
            dz = dh_next * (h_prev - cand)
            da_n = dcand * (1 - cand * cand)
            da_r = da_n * gh_n * r * (1 - r)
            da_z = dz * z * (1 - z)
            dgx = xp.concatenate([da_r, da_z, da_n], axis=1)
            dgh = xp.concatenate([da_r, da_z, da_n * r], axis=1)
            _matmul(h_prev, dgh, trans_a=True, out=self.Wh.grad, accumulate=True)
            self.bh.grad += dgh.sum(axis=0)
            dh = dh_next * z + _matmul(dgh, self.Wh.data, trans_b=True)
            dgx_all[:, t] = dgx
        dgx2 = dgx_all.reshape(-1, 3 * hid)
        _matmul(x.reshape(-1, d), dgx2, trans_a=True, out=self.Wx.grad, accumulate=True)
        self.bx.grad += dgx2.sum(axis=0)
        return _matmul(dgx2, self.Wx.data, trans_b=True).reshape(x.shape), dh


class _LSTMLayer(Module):
    """One LSTM layer, gates (i, f, o, g) along 4H, computed by the layer op F.lstm_forward (one
    input-projection GEMM for all steps, the fused cell per step, weight gradients over all steps):

        i, f, o = sigmoid(x Wx + h Wh + b)[i, f, o],  g = tanh(...)[g]
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    """

    def __init__(self, input_size, hidden_size, dtype):
        super().__init__()
        self.hidden_size = hidden_size
        _recurrent_weights(self, input_size, hidden_size, 4, dtype)
        b = np.zeros(4 * hidden_size, dtype)
        b[hidden_size:2 * hidden_size] = 1.0  # forget gate
        self.b = Parameter(b, "b")

    def forward(self, x, state):
        xp = _backend.array_module(x)
        h, c = state
        # (N, T, D) batch-first in, time-major for the op, batch-first out.
        hs, h, c, cache = F.lstm_forward(x.transpose(1, 0, 2), h, c, self.Wx.data, self.Wh.data, self.b.data)
        self._push_cache(cache)
        return xp.ascontiguousarray(hs.transpose(1, 0, 2)), (h, c)

    def backward(self, dhs, dstate):
        xp = _backend.array_module(dhs)
        cache = self._pop_cache()
        dh, dc = dstate
        dxs, dh, dc, dWx, dWh, db = F.lstm_backward(dhs.transpose(1, 0, 2), dh, dc, cache)
        self.Wx.grad += dWx
        self.Wh.grad += dWh
        self.b.grad += db
        return xp.ascontiguousarray(dxs.transpose(1, 0, 2)), (dh, dc)


class _Recurrent(Module):
    _layer_class = None
    _state_parts = 1  # arrays in a state: 1 (h) or 2 (h, c)

    def __init__(self, input_size, hidden_size, num_layers=1, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        input_size = _checks.int_at_least(name, "input_size", input_size)
        hidden_size = _checks.int_at_least(name, "hidden_size", hidden_size)
        num_layers = _checks.int_at_least(name, "num_layers", num_layers)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.layers = [self._layer_class(input_size if l == 0 else hidden_size, hidden_size, dtype)
                       for l in range(num_layers)]
        self.initial_state_grad = None

    def _parts(self, state):
        return (state,) if self._state_parts == 1 else tuple(state)

    def _join(self, parts):
        return parts[0] if self._state_parts == 1 else tuple(parts)

    def _check_state(self, name, state, n, like):
        want = (self.num_layers, n, self.hidden_size)
        parts = self._parts(state)
        if len(parts) != self._state_parts:
            raise ValueError(f"{type(self).__name__}: {name} must be (h, c)")
        for part in parts:
            _checks.layer_input(f"{type(self).__name__} {name}", part, like, ndim=3)
            if tuple(part.shape) != want:
                raise ValueError(f"{type(self).__name__}: {name} must have shape {want}, got {tuple(part.shape)}")
        return parts

    def forward(self, x, state=None):
        name = type(self).__name__
        weight = self.layers[0].Wx.data
        _checks.layer_input(name, x, weight, ndim=3)
        _checks.last_dim(name, x, self.input_size)
        xp = _backend.array_module(x)
        n = x.shape[0]
        if state is None:
            zeros = xp.zeros((self.num_layers, n, self.hidden_size), dtype=x.dtype)
            parts = (zeros,) * self._state_parts
        else:
            parts = self._check_state("state", state, n, weight)
        finals = [[] for _ in range(self._state_parts)]
        hs = x
        for l, layer in enumerate(self.layers):
            layer_state = self._join([p[l] for p in parts])
            hs, final = layer.forward(hs, layer_state)
            for k, part in enumerate(self._parts(final)):
                finals[k].append(part)
        self._push_cache(hs.shape)
        return hs, self._join([xp.stack(f) for f in finals])

    def backward(self, dhs, dstate=None):
        _checks.upstream_grad(type(self).__name__, dhs, self._pop_cache(), self.layers[0].Wx.data, name="dhs")
        xp = _backend.array_module(dhs)
        n = dhs.shape[0]
        if dstate is None:
            zeros = xp.zeros((self.num_layers, n, self.hidden_size), dtype=dhs.dtype)
            dparts = (zeros,) * self._state_parts
        else:
            dparts = self._check_state("dstate", dstate, n, dhs)
        initial = [[None] * self.num_layers for _ in range(self._state_parts)]
        for l in reversed(range(self.num_layers)):
            dhs, dstate0 = self.layers[l].backward(dhs, self._join([p[l] for p in dparts]))
            for k, part in enumerate(self._parts(dstate0)):
                initial[k][l] = part
        self.initial_state_grad = self._join([xp.stack(parts) for parts in initial])
        return dhs

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"


class RNN(_Recurrent):
    """Elman RNN: h_t = tanh(x_t Wx + h_{t-1} Wh + b) per layer (see the module docstring)."""

    _layer_class = _ElmanLayer


class GRU(_Recurrent):
    """GRU, gates (r, z, n): r, z = sigmoid(x Wx + bx + h Wh + bh)[r, z],
    n = tanh((x Wx + bx)[n] + r * (h Wh + bh)[n]), h' = (1 - z) n + z h (see the module docstring)."""

    _layer_class = _GRULayer


class LSTM(_Recurrent):
    """LSTM over the fused cell, gates (i, f, o, g): c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
    State and final state are (h, c), each (num_layers, N, H) (see the module docstring)."""

    _layer_class = _LSTMLayer
    _state_parts = 2
