"""NumPy reference implementations of every op: plain, lecture-literal, float64-capable.

They share the functional contract's signatures (fastnn.functional) and are what the native
kernels are tested against. They favour clarity over speed.
"""
from .batch_norm import batch_norm_backward, batch_norm_forward
from .conv import conv2d_backward, conv2d_forward
from .lstm import lstm_backward, lstm_cell_backward, lstm_cell_forward, lstm_forward
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .softmax_xent import softmax_cross_entropy_backward, softmax_cross_entropy_forward

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm_backward",
    "batch_norm_forward",
    "conv2d_backward",
    "conv2d_forward",
    "lstm_backward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "lstm_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
]
