"""Batch normalization in training mode, forward + backward, against the NumPy reference and
PyTorch (F.batch_norm with autograd, running statistics updated in place on both sides).

Minimal traffic per call (itemsize b, |x| elements): forward reads x and writes out; backward
reads x and dout and writes dx: 5 b |x| (the (C,) vectors are noise).
"""
import numpy as np

import fastnn.functional as F
import fastnn.reference as R
from harness import Case

CPU_SHAPES = [(16, 64, 56, 56), (256, 1024)]
CUDA_SHAPES = [(64, 64, 56, 56), (256, 1024)]


def _torch_fn(x_np, dout_np, device):
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    c = x_np.shape[1]
    x = torch.tensor(x_np, device=device, requires_grad=True)
    gamma = torch.ones(c, device=device, requires_grad=True)
    beta = torch.zeros(c, device=device, requires_grad=True)
    running_mean, running_var = torch.zeros(c, device=device), torch.ones(c, device=device)
    dout = torch.tensor(dout_np, device=device)

    def run():
        x.grad = gamma.grad = beta.grad = None
        out = torch.nn.functional.batch_norm(x, running_mean, running_var, gamma, beta, training=True,
                                             momentum=0.1, eps=1e-5)
        out.backward(dout)

    return run


def cases(device="cpu", dtype=np.float32):
    shapes = CUDA_SHAPES if device == "cuda" else CPU_SHAPES
    rng = np.random.default_rng(0)
    for shape in shapes:
        c = shape[1]
        x_np = rng.standard_normal(shape).astype(dtype)
        dout_np = rng.standard_normal(shape).astype(dtype)
        if device == "cuda":
            import cupy as xp
        else:
            xp = np
        x, dout = xp.asarray(x_np), xp.asarray(dout_np)
        gamma, beta = xp.ones(c, dtype=dtype), xp.zeros(c, dtype=dtype)
        running_mean, running_var = xp.zeros(c, dtype=dtype), xp.ones(c, dtype=dtype)

        def fastnn_run(x=x, dout=dout, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var):
            out, cache = F.batch_norm_forward(x, gamma, beta, running_mean, running_var, training=True)
            return F.batch_norm_backward(dout, cache)

        def reference_run(x=x_np, dout=dout_np, c=c):
            out, cache = R.batch_norm_forward(x, np.ones(c, dtype), np.zeros(c, dtype), np.zeros(c, dtype),
                                              np.ones(c, dtype), True)
            return R.batch_norm_backward(dout, cache)

        yield Case(
            family="batch_norm",
            name=f"train fwd+bwd {'x'.join(map(str, shape))}",
            impls={"fastnn": fastnn_run, "reference": reference_run if device == "cpu" else None,
                   "torch": _torch_fn(x_np, dout_np, device)},
            bytes=5.0 * x_np.size * np.dtype(dtype).itemsize,
        )
