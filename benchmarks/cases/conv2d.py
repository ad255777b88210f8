"""conv2d forward, backward-data and backward-weight (with the bias gradient), float32, against
PyTorch (CPU: its oneDNN/native convolution with the runner's thread count; GPU: cuDNN) and, for the
small shapes, the NumPy reference.

Each direction is counted as 2 N K C kh kw OH OW flops (the direct convolution's) and judged against
the measured FMA peak. The 3x3 shapes with >= 32 channels each side run fastnn's Winograd paths in
all three directions: F(4x4, 3x3) at stride 1 (4x fewer multiplications; F(2x2, 3x3), 2.25x, where
its 4x4 tiles would overhang the output too much), and a polyphase scheme with 1.44x fewer at
stride 2 (all plus the tiles that overhang the output). Their GFLOP/s are effective rates and can
pass 100% of the peak. The PyTorch peer
for each direction is aten.convolution_backward with only that direction's gradients requested,
so neither side computes more than the case names. On the GPU, fastnn's backward is timed as one
(data + weight) case against PyTorch's full convolution_backward.
"""
import numpy as np

import fastnn.functional as F
import fastnn.reference as R
from harness import Case

# (N, C, H, W, K, k, stride, pad): LeNet-5's two convs, a CIFAR stem, ResNet-style layers.
CPU_SHAPES = [
    (64, 1, 28, 28, 6, 5, 1, 2),
    (64, 6, 14, 14, 16, 5, 1, 0),
    (32, 3, 32, 32, 64, 3, 1, 1),
    (8, 64, 56, 56, 64, 3, 1, 1),
    (8, 128, 28, 28, 256, 3, 2, 1),
    (8, 256, 56, 56, 64, 1, 1, 0),
    (8, 256, 14, 14, 256, 3, 1, 1),
]
# The same layers at GPU batch sizes.
GPU_BATCH = {0: 256, 1: 256, 2: 128}
REFERENCE_MAX_FLOPS = 2e8  # the einsum reference is too slow to time beyond this


def _torch_fns(x, w, b, dout, stride, pad, device):
    try:
        import torch
    except ImportError:
        return None, None, None, None
    if device == "cuda" and not torch.cuda.is_available():
        return None, None, None, None
    tx, tw, tb, tg = (torch.as_tensor(a, device=device) for a in (x, w, b, dout))
    conv = torch.nn.functional.conv2d

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            tg, tx, tw, [tb.shape[0]], [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1, mask
        )

    def forward():
        with torch.no_grad():
            return conv(tx, tw, tb, stride=stride, padding=pad)

    return forward, backward([True, False, False]), backward([False, True, True]), backward([True, True, True])


def cases(device="cpu"):
    rng = np.random.default_rng(0)
    for index, (n, c, h, width, k, ksize, stride, pad) in enumerate(CPU_SHAPES):
        if device == "cuda":
            n = GPU_BATCH.get(index, 64)
        x = rng.standard_normal((n, c, h, width)).astype(np.float32)
        w = (rng.standard_normal((k, c, ksize, ksize)) / np.sqrt(c * ksize * ksize)).astype(np.float32)
        b = rng.standard_normal(k).astype(np.float32)
        oh, ow = (h + 2 * pad - ksize) // stride + 1, (width + 2 * pad - ksize) // stride + 1
        dout = rng.standard_normal((n, k, oh, ow)).astype(np.float32)
        flops = 2.0 * n * k * c * ksize * ksize * oh * ow
        label = f"({n},{c},{h},{width},{k},{ksize},{stride},{pad})"
        torch_fwd, torch_bwd_data, torch_bwd_weight, torch_bwd = _torch_fns(x, w, b, dout, stride, pad, device)

        if device == "cuda":
            import cupy as cp

            xd, wd, bd, gd = (cp.asarray(a) for a in (x, w, b, dout))
        else:
            xd, wd, bd, gd = x, w, b, dout
        _, cache = F.conv2d_forward(xd, wd, bd, stride, pad)
        use_reference = device == "cpu" and flops <= REFERENCE_MAX_FLOPS
        ref_cache = R.conv2d_forward(x, w, b, stride, pad)[1] if use_reference else None

        def reference_bwd_data(ref_cache=ref_cache, dout=dout):
            return R.conv2d_backward(dout, ref_cache)

        yield Case(
            family="conv2d", name=f"fwd {label}",
            impls={
                "fastnn": lambda xd=xd, wd=wd, bd=bd, stride=stride, pad=pad: F.conv2d_forward(xd, wd, bd, stride, pad),
                "reference": (lambda: R.conv2d_forward(x, w, b, stride, pad)) if use_reference else None,
                "torch": torch_fwd,
            },
            flops=flops, ceiling="fma",
        )
        if device == "cuda":
            yield Case(
                family="conv2d", name=f"bwd {label}",
                impls={"fastnn": lambda gd=gd, cache=cache: F.conv2d_backward(gd, cache), "torch": torch_bwd},
                flops=2 * flops, ceiling="fma",
            )
            continue
        # The reference computes dx, dw and db together; it is listed once, with backward-data.
        yield Case(
            family="conv2d", name=f"bwd-data {label}",
            impls={
                "fastnn": lambda gd=gd, cache=cache: F.conv2d_backward_data(gd, cache),
                "reference": reference_bwd_data if use_reference else None,
                "torch": torch_bwd_data,
            },
            flops=flops, ceiling="fma",
        )
        yield Case(
            family="conv2d", name=f"bwd-weight {label}",
            impls={"fastnn": lambda gd=gd, cache=cache: F.conv2d_backward_weight(gd, cache), "torch": torch_bwd_weight},
            flops=flops, ceiling="fma",
        )
