"""Pooling layers over x (N, C, H, W), on F.max_pool2d_* and F.avg_pool2d_*."""
from .. import functional as F
from ..functional.pool import pool_window
from . import _checks
from .module import Module


class MaxPool2d(Module):
    """y[n, c, oh, ow] = max over the kh x kw window at (oh*sh - ph, ow*sw - pw) of x (padding never wins);
    dx routes each dy to the position of its window's maximum. stride defaults to the window size."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        pool_window(kernel_size, stride, padding, "MaxPool2d")  # refused here, not at the first forward
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        _checks.float_array("MaxPool2d input", x, ndim=4)
        out, cache = F.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self._push_cache(cache)
        return out

    def backward(self, dout):
        return F.max_pool2d_backward(dout, self._pop_cache())

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """y[n, c, oh, ow] = (1 / (kh kw)) sum over the window of x (zero padding counts in the mean);
    dx spreads each dy / (kh kw) over its window. stride defaults to the window size."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        pool_window(kernel_size, stride, padding, "AvgPool2d")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        _checks.float_array("AvgPool2d input", x, ndim=4)
        out, cache = F.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self._push_cache(cache)
        return out

    def backward(self, dout):
        return F.avg_pool2d_backward(dout, self._pop_cache())

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
