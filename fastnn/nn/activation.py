"""Elementwise activations and Softmax. Each backward is dx = dy * f'(x) (Softmax: a Jacobian product)."""
import math

import numpy as np

from .. import _backend
from . import _checks
from .module import Module, Parameter


def _float_input(layer, x):
    return _checks.float_array(f"{layer} input", x)


class ReLU(Module):
    """y = max(x, 0) (NaN stays NaN);  dx = dy * [x > 0]. On the CPU one native pass each way
    (fastnn._C.relu_forward / relu_backward, OpenMP), keeping y as the cache: y > 0 exactly where x > 0."""

    def forward(self, x):
        _float_input("ReLU", x)
        if _backend.native_float_arrays(x):
            y = _backend._C.relu_forward(x.reshape(-1)).reshape(x.shape)
            self._push_cache(y)
            return y
        xp = _backend.array_module(x)
        y = xp.maximum(x, 0)
        self._push_cache(y)
        return y

    def backward(self, dout):
        y = self._pop_cache()
        _checks.upstream_grad("ReLU", dout, y.shape, y)
        if _backend.native_float_arrays(dout, y):
            return _backend._C.relu_backward(dout.reshape(-1), y.reshape(-1)).reshape(dout.shape)
        return dout * (y > 0)


class LeakyReLU(Module):
    """y = x if x > 0 else slope * x;  dx = dy * (1 if x > 0 else slope)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = _checks.hyperparameter("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x):
        _float_input("LeakyReLU", x)
        xp = _backend.array_module(x)
        positive = x > 0
        self._push_cache((positive, _checks.forward_kind(x)))
        return xp.where(positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dout):
        positive, kind = self._pop_cache()
        _checks.upstream_grad("LeakyReLU", dout, positive.shape, kind)
        xp = _backend.array_module(dout)
        return xp.where(positive, dout, dout * dout.dtype.type(self.negative_slope))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """y = x if x > 0 else a * x, with a learned slope a (He et al. 2015).

    num_parameters = 1 shares one slope; num_parameters = C gives one slope per channel (axis 1).
    da = sum over the positions it scales of dy * x * [x <= 0];  dx = dy * (1 if x > 0 else a).
    """

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        self.num_parameters = _checks.int_at_least("PReLU", "num_parameters", num_parameters)
        init = _checks.hyperparameter("PReLU", "init", init)
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=dtype), "weight")

    def _slope(self, x):
        # The slope shaped to broadcast over x: (C,) -> (1, C, 1, ..., 1).
        if self.num_parameters == 1:
            return self.weight.data.reshape((1,) * x.ndim)
        if x.ndim < 2 or x.shape[1] != self.num_parameters:
            raise ValueError(f"PReLU: {self.num_parameters} slopes need input of shape (N, "
                             f"{self.num_parameters}, ...), got {tuple(x.shape)}")
        return self.weight.data.reshape((1, -1) + (1,) * (x.ndim - 2))

    def forward(self, x):
        _checks.layer_input("PReLU", x, self.weight.data)
        xp = _backend.array_module(x)
        a = self._slope(x)
        positive = x > 0
        self._push_cache((x, positive))
        return xp.where(positive, x, a * x)

    def backward(self, dout):
        x, positive = self._pop_cache()
        _checks.upstream_grad("PReLU", dout, x.shape, x)
        xp = _backend.array_module(dout)
        a = self._slope(x)
        contribution = dout * x * ~positive  # dy * x where x <= 0
        if self.num_parameters == 1:
            self.weight.grad += contribution.sum()
        else:
            axes = (0,) + tuple(range(2, x.ndim))
            self.weight.grad += contribution.sum(axis=axes)
        return xp.where(positive, dout, dout * a)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    """y = x if x > 0 else alpha * (exp(x) - 1);  dx = dy * (1 if x > 0 else y + alpha)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = _checks.hyperparameter(type(self).__name__, "alpha", alpha)

    def _elu(self, x):
        xp = _backend.array_module(x)
        positive = x > 0
        # expm1 of min(x, 0) avoids overflow warnings on large positive x that where() would discard.
        negative_part = x.dtype.type(self.alpha) * xp.expm1(xp.minimum(x, 0))
        return xp.where(positive, x, negative_part), positive

    def forward(self, x):
        _float_input(type(self).__name__, x)
        y, positive = self._elu(x)
        self._push_cache((y, positive))
        return y

    def backward(self, dout):
        y, positive = self._pop_cache()
        _checks.upstream_grad(type(self).__name__, dout, y.shape, y)
        xp = _backend.array_module(dout)
        return xp.where(positive, dout, dout * (y + y.dtype.type(self.alpha)))

    def extra_repr(self):
        return f"alpha={self.alpha}"


class SELU(ELU):
    """y = scale * ELU_alpha(x) with the self-normalising constants of Klambauer et al. 2017
    (alpha = 1.6732632423543772, scale = 1.0507009873554805); dx = dy * scale * ELU'(x)."""

    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946

    def __init__(self):
        super().__init__(alpha=self.ALPHA)

    def forward(self, x):
        return super().forward(x) * x.dtype.type(self.SCALE)

    def backward(self, dout):
        return super().backward(dout) * dout.dtype.type(self.SCALE)

    def extra_repr(self):
        return ""


class GELU(Module):
    """GELU with the tanh approximation of Hendrycks & Gimpel (as in GPT-2):

        y  = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)
        dx = dy * [0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)]
    """

    C = math.sqrt(2.0 / math.pi)

    def forward(self, x):
        _float_input("GELU", x)
        xp = _backend.array_module(x)
        t = xp.tanh(self.C * (x + 0.044715 * x ** 3))
        self._push_cache((x, t))
        return (0.5 * x * (1 + t)).astype(x.dtype, copy=False)

    def backward(self, dout):
        x, t = self._pop_cache()
        _checks.upstream_grad("GELU", dout, x.shape, x)
        local = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * self.C * (1 + 3 * 0.044715 * x * x)
        return (dout * local).astype(dout.dtype, copy=False)


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)), computed as (1 + tanh(x/2)) / 2, which never overflows;
    dx = dy * y (1 - y)."""

    def forward(self, x):
        _float_input("Sigmoid", x)
        xp = _backend.array_module(x)
        y = 0.5 * (1 + xp.tanh(0.5 * x))
        self._push_cache(y)
        return y

    def backward(self, dout):
        y = self._pop_cache()
        _checks.upstream_grad("Sigmoid", dout, y.shape, y)
        return dout * y * (1 - y)


class Tanh(Module):
    """y = tanh(x);  dx = dy * (1 - y^2)."""

    def forward(self, x):
        _float_input("Tanh", x)
        y = _backend.array_module(x).tanh(x)
        self._push_cache(y)
        return y

    def backward(self, dout):
        y = self._pop_cache()
        _checks.upstream_grad("Tanh", dout, y.shape, y)
        return dout * (1 - y * y)


class Softmax(Module):
    """y_i = exp(x_i - max x) / sum_j exp(x_j - max x) along `axis`;  dx = y * (dy - sum_j dy_j y_j)."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        _float_input("Softmax", x)
        xp = _backend.array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y = e / e.sum(axis=self.axis, keepdims=True)
        self._push_cache(y)
        return y

    def backward(self, dout):
        y = self._pop_cache()
        _checks.upstream_grad("Softmax", dout, y.shape, y)
        return y * (dout - (dout * y).sum(axis=self.axis, keepdims=True))

    def extra_repr(self):
        return f"axis={self.axis}"
