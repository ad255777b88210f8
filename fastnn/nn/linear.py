"""Affine layers: Linear, Maxout, and the reshaping layer Flatten."""
import numpy as np

from .. import _backend, init
from . import _checks
from .module import Module, Parameter


class Linear(Module):
    """y = x W + b, with W (in_features, out_features) and b (out_features,).

    x may have any leading dimensions (..., in_features); they are treated as a batch.
    Backward:  dW += x^T dy,  db += sum_rows dy,  dx = dy W^T.
    Default init: W ~ He normal (variance 2 / in_features, for ReLU networks), b = 0.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        in_features = _checks.int_at_least("Linear", "in_features", in_features)
        out_features = _checks.int_at_least("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.he_normal(Parameter(np.empty((in_features, out_features), dtype), "weight"))
        self.bias = Parameter(np.zeros(out_features, dtype), "bias") if bias else None

    def forward(self, x):
        _checks.layer_input("Linear", x, self.weight.data)
        _checks.last_dim("Linear", x, self.in_features)
        x2 = x.reshape(-1, self.in_features)
        y = _backend.matmul(x2, self.weight.data)
        if self.bias is not None:
            y += self.bias.data
        self._push_cache((x2, x.shape))
        return y.reshape(*x.shape[:-1], self.out_features)

    def backward(self, dout):
        x2, x_shape = self._pop_cache()
        _checks.upstream_grad("Linear", dout, x_shape[:-1] + (self.out_features,), x2)
        d2 = dout.reshape(-1, self.out_features)
        _backend.matmul(x2, d2, trans_a=True, out=self.weight.grad, accumulate=True)
        if self.bias is not None:
            self.bias.grad += d2.sum(axis=0)
        return _backend.matmul(d2, self.weight.data, trans_b=True).reshape(x_shape)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Maxout(Module):
    """Maxout unit (Goodfellow et al. 2013): z_jk = (x W + b)_{j,k}, y_j = max_k z_jk over `pieces`
    affine pieces per output. The gradient flows only to the winning piece of each output.

    W is (in_features, out_features * pieces), laid out so output j's pieces are columns
    j*pieces ... j*pieces + pieces - 1.
    """

    def __init__(self, in_features, out_features, pieces=2, dtype=np.float32):
        super().__init__()
        pieces = _checks.int_at_least("Maxout", "pieces", pieces)
        out_features = _checks.int_at_least("Maxout", "out_features", out_features)
        self.out_features, self.pieces = out_features, pieces
        self.linear = Linear(in_features, out_features * pieces, dtype=dtype)
        init.xavier_uniform(self.linear.weight)

    def forward(self, x):
        z = self.linear.forward(x)
        z = z.reshape(*z.shape[:-1], self.out_features, self.pieces)
        xp = _backend.array_module(z)
        winner = z.argmax(axis=-1)
        self._push_cache((winner, z.shape))
        return xp.take_along_axis(z, winner[..., None], axis=-1)[..., 0]

    def backward(self, dout):
        winner, z_shape = self._pop_cache()
        _checks.upstream_grad("Maxout", dout, winner.shape, self.linear.weight.data)
        xp = _backend.array_module(dout)
        is_winner = xp.arange(self.pieces) == winner[..., None]
        dz = is_winner * dout[..., None]
        return self.linear.backward(dz.reshape(*z_shape[:-2], -1))

    def extra_repr(self):
        return f"{self.linear.in_features}, {self.out_features}, pieces={self.pieces}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...); backward reshapes the gradient back."""

    def forward(self, x):
        if not _checks._is_array(x):
            raise TypeError(f"Flatten: expected a NumPy or CuPy array, got {type(x).__name__}")
        if x.ndim == 0:
            raise ValueError("Flatten: expected at least 1 dimension (the batch), got a 0-d array")
        y = x.reshape(x.shape[0], -1)
        self._push_cache((x.shape, y.shape, _checks.forward_kind(x)))
        return y

    def backward(self, dout):
        x_shape, y_shape, kind = self._pop_cache()
        return _checks.upstream_grad("Flatten", dout, y_shape, kind).reshape(x_shape)
