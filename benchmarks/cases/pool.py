"""2-D max and average pooling, forward alone and forward + backward, against the NumPy reference
and PyTorch (F.max_pool2d / F.avg_pool2d with autograd).

Both sides do training work: the input requires grad on the PyTorch side, so its forward records
the argmax (int64 indices) as ours does (int32). Minimal traffic per call (itemsize b):
    max forward: read x, write out and argmax          b*|x| + (b + 4)*|out|
    avg forward: read x, write out                     b*|x| + b*|out|
    backward:    read dout (and argmax), write dx      b*|out| (+ 4*|out|) + b*|x|
"""
import numpy as np

import fastnn.functional as F
import fastnn.reference as R
from harness import Case

CPU_SHAPE = (16, 64, 112, 112)
CUDA_SHAPE = (64, 64, 112, 112)
WINDOWS = [(2, 2, 0), (3, 2, 1)]  # (kernel, stride, padding)
OPS = {
    "max": (F.max_pool2d_forward, F.max_pool2d_backward, R.max_pool2d_forward, R.max_pool2d_backward),
    "avg": (F.avg_pool2d_forward, F.avg_pool2d_backward, R.avg_pool2d_forward, R.avg_pool2d_backward),
}


def _torch_fn(kind, x_np, dout_np, k, s, p, device, backward):
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    x = torch.tensor(x_np, device=device, requires_grad=True)
    dout = torch.tensor(dout_np, device=device)
    pool = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d

    def run():
        x.grad = None
        out = pool(x, k, s, p)
        if backward:
            out.backward(dout)
        return out

    return run


def cases(device="cpu", dtype=np.float32):
    shape = CUDA_SHAPE if device == "cuda" else CPU_SHAPE
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(shape).astype(dtype)
    b = np.dtype(dtype).itemsize
    if device == "cuda":
        import cupy as cp

        x = cp.asarray(x_np)
    else:
        x = x_np
    for k, s, p in WINDOWS:
        for kind, (fwd, bwd, ref_fwd, ref_bwd) in OPS.items():
            out, _ = fwd(x, k, s, p)
            dout_np = rng.standard_normal(out.shape).astype(dtype)
            dout = cp.asarray(dout_np) if device == "cuda" else dout_np
            index_bytes = 4 * out.size if kind == "max" else 0
            fwd_bytes = b * x.size + b * out.size + index_bytes
            bwd_bytes = b * out.size + index_bytes + b * x.size
            label = f"{kind} {k}x{k}/{s} pad {p} {'x'.join(map(str, shape))}"

            def fastnn_fwd(fwd=fwd, k=k, s=s, p=p):
                return fwd(x, k, s, p)

            def fastnn_fwd_bwd(fwd=fwd, bwd=bwd, k=k, s=s, p=p, dout=dout):
                out, cache = fwd(x, k, s, p)
                return bwd(dout, cache)

            def reference_fwd_bwd(ref_fwd=ref_fwd, ref_bwd=ref_bwd, k=k, s=s, p=p, dout=dout_np):
                out, cache = ref_fwd(x_np, k, s, p)
                return ref_bwd(dout, cache)

            yield Case(
                family="pool", name=f"fwd {label}",
                impls={"fastnn": fastnn_fwd, "torch": _torch_fn(kind, x_np, dout_np, k, s, p, device, False)},
                bytes=fwd_bytes,
            )
            yield Case(
                family="pool", name=f"fwd+bwd {label}",
                impls={"fastnn": fastnn_fwd_bwd,
                       "reference": reference_fwd_bwd if device == "cpu" else None,
                       "torch": _torch_fn(kind, x_np, dout_np, k, s, p, device, True)},
                bytes=fwd_bytes + bwd_bytes,
            )
