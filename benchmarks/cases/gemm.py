"""Our packed SGEMM (fastnn._C.gemm, the engine under conv2d) against NumPy's matmul (OpenBLAS) and
PyTorch's mm, square float32 M = N = K, and the LSTM cell's skinny forward product. 2 M N K flops;
judged against the measured FMA peak.

CPU only: on the GPU the non-convolution GEMMs are cuBLAS's (see DESIGN.md), so there is nothing
of ours to time.
"""
import numpy as np

from fastnn import _C
from harness import Case

SIZES = [1024, 2048]
# The LSTM cell benchmark's forward GEMM: x (B=64, D=1024) times Wx (D, 4H=4096). In a training step
# the 16 MB weight comes from memory, so the case rotates over three of them (48 MB, more than the
# last-level caches of the machines in README) instead of timing one that stays cached.
SKINNY = (64, 4096, 1024)  # M, N, K
SKINNY_WEIGHTS = 3


def _torch_mm(a, b):
    try:
        import torch
    except ImportError:
        return None
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return lambda: torch.mm(ta, tb)


def _rotating(product, a, bs):
    """product(a, b) over bs in turn, one per call."""
    state = {"next": 0}

    def call():
        b = bs[state["next"]]
        state["next"] = (state["next"] + 1) % len(bs)
        return product(a, b)

    return call


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
    m, n, k = SKINNY
    a = rng.standard_normal((m, k)).astype(np.float32)
    bs = [rng.standard_normal((k, n)).astype(np.float32) for _ in range(SKINNY_WEIGHTS)]
    try:
        import torch

        tbs = [torch.from_numpy(b) for b in bs]
        torch_impl = _rotating(torch.mm, torch.from_numpy(a), tbs)
    except ImportError:
        torch_impl = None
    yield Case(
        family="gemm",
        name=f"sgemm {m}x{n}x{k}, LSTM cell forward, {SKINNY_WEIGHTS} weights rotated",
        impls={"fastnn": _rotating(_C.gemm, a, bs), "numpy": _rotating(np.matmul, a, bs), "torch": torch_impl},
        flops=2.0 * m * n * k,
        ceiling="fma",
    )
