"""fastnn: a small deep-learning package with hand-written native kernels.

CPU arrays are NumPy arrays and run on fastnn._C (C++, OpenMP, AVX2/FMA chosen at run time);
GPU arrays are CuPy arrays and run on fastnn._cuda (CUDA), built when nvcc was found.

    import fastnn.functional as F
    loss, cache = F.softmax_cross_entropy_forward(scores, labels)
    dscores = F.softmax_cross_entropy_backward(1.0, cache)
"""
from ._backend import (
    cuda_available,
    cuda_module_built,
    get_num_threads,
    set_num_threads,
    simd,
)
from . import data, functional, reference
from . import init, nn, optim
from . import training
from .gradcheck import gradcheck
from .nn import is_grad_enabled, no_grad

__version__ = "0.1.0"

__all__ = [
    "cuda_available",
    "cuda_module_built",
    "functional",
    "get_num_threads",
    "gradcheck",
    "init",
    "is_grad_enabled",
    "nn",
    "no_grad",
    "optim",
    "reference",
    "set_num_threads",
    "simd",
    "training",
]
