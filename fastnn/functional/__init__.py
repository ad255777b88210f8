"""The functional contract: one forward/backward pair per op, in (out, cache) style.

Each forward validates its inputs, picks the backend from the array type (NumPy -> fastnn._C,
CuPy -> fastnn._cuda) and returns its output with a cache; the matching backward takes the upstream
gradient and that cache. See DESIGN.md for the full list of ops and their shapes.
"""
from .conv import Conv2dCache, conv2d_backward, conv2d_backward_data, conv2d_backward_weight, conv2d_forward
from .softmax_xent import (
    SoftmaxCrossEntropyCache,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)

__all__ = [
    "Conv2dCache", "conv2d_backward", "conv2d_backward_data", "conv2d_backward_weight", "conv2d_forward",
    "SoftmaxCrossEntropyCache",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
]
