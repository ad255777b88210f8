"""NumPy reference implementations of every op: plain, lecture-literal, float64-capable.

They share the functional contract's signatures (fastnn.functional) and are what the native
kernels are tested against. They favour clarity over speed.
"""
from .conv import conv2d_backward, conv2d_forward
from .softmax_xent import softmax_cross_entropy_backward, softmax_cross_entropy_forward

__all__ = ["conv2d_backward", "conv2d_forward", "softmax_cross_entropy_backward", "softmax_cross_entropy_forward"]
