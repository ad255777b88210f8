"""The functional contract: one forward/backward pair per op, in (out, cache) style.

Each forward validates its inputs, picks the backend from the array type (NumPy -> fastnn._C,
CuPy -> fastnn._cuda) and returns its output with a cache; the matching backward takes the upstream
gradient and that cache. See DESIGN.md for the full list of ops and their shapes.
"""
from ._checks import NonFiniteError
from .batch_norm import BatchNormCache, batch_norm_backward, batch_norm_forward
from .conv import (
    Conv2dCache,
    conv2d_backward,
    conv2d_backward_data,
    conv2d_backward_weight,
    conv2d_forward,
)
from .lstm import (
    LSTMCache,
    LSTMCellCache,
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
)
from .pool import (
    AvgPool2dCache,
    MaxPool2dCache,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .softmax_xent import (
    SoftmaxCrossEntropyCache,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)

__all__ = [
    "AvgPool2dCache",
    "BatchNormCache",
    "Conv2dCache",
    "LSTMCache",
    "LSTMCellCache",
    "MaxPool2dCache",
    "NonFiniteError",
    "SoftmaxCrossEntropyCache",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm_backward",
    "batch_norm_forward",
    "conv2d_backward",
    "conv2d_backward_data",
    "conv2d_backward_weight",
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
