"""Our packed SGEMM (fastnn._C.gemm, the engine under conv2d) against NumPy's matmul (OpenBLAS) and
PyTorch's mm, square float32 M = N = K. 2 M N K flops; judged against the measured FMA peak.

CPU only: on the GPU the non-convolution GEMMs are cuBLAS's (see DESIGN.md), so there is nothing
of ours to time.
"""
import numpy as np

from fastnn import _C
from harness import Case

SIZES = [1024, 2048]


def _torch_mm(a, b):
    try:
        import torch
    except ImportError:
        return None
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return lambda: torch.mm(ta, tb)


def cases(device="cpu"):
    if device != "cpu":
        return
    rng = np.random.default_rng(0)
    for size in SIZES:
        a = rng.standard_normal((size, size)).astype(np.float32)
        b = rng.standard_normal((size, size)).astype(np.float32)
        yield Case(
            family="gemm",
            name=f"sgemm M=N=K={size}",
            impls={"fastnn": lambda a=a, b=b: _C.gemm(a, b), "numpy": lambda a=a, b=b: a @ b, "torch": _torch_mm(a, b)},
            flops=2.0 * size**3,
            ceiling="fma",
        )
