"""Fused softmax cross-entropy, forward + backward together, against the NumPy reference and
PyTorch's F.cross_entropy (log_softmax + nll_loss) with autograd.

Minimal traffic per call: read the scores twice (forward, backward) and write dscores once:
3 * N * C * itemsize bytes.
"""
import numpy as np

import fastnn.functional as F
import fastnn.reference as R
from harness import Case

CPU_SHAPES = [(8192, 10), (1024, 1000), (256, 32768)]
CUDA_SHAPES = [(65536, 10), (8192, 1000), (4096, 32768)]


def _torch_fn(scores_np, labels_np, device):
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    scores = torch.tensor(scores_np, device=device, requires_grad=True)
    labels = torch.tensor(labels_np, device=device)

    def run():
        scores.grad = None
        loss = torch.nn.functional.cross_entropy(scores, labels)
        loss.backward()

    return run


def cases(device="cpu", dtype=np.float32):
    shapes = CUDA_SHAPES if device == "cuda" else CPU_SHAPES
    rng = np.random.default_rng(0)
    for n, c in shapes:
        scores_np = rng.standard_normal((n, c)).astype(dtype)
        labels_np = rng.integers(0, c, n).astype(np.int64)
        if device == "cuda":
            import cupy as cp

            scores, labels = cp.asarray(scores_np), cp.asarray(labels_np)
        else:
            scores, labels = scores_np, labels_np

        def fastnn_run(scores=scores, labels=labels):
            loss, cache = F.softmax_cross_entropy_forward(scores, labels)
            return F.softmax_cross_entropy_backward(1.0, cache)

        def reference_run(scores=scores_np, labels=labels_np):
            loss, cache = R.softmax_cross_entropy_forward(scores, labels)
            return R.softmax_cross_entropy_backward(1.0, cache)

        yield Case(
            family="softmax_xent",
            name=f"fwd+bwd N={n} C={c}",
            impls={
                "fastnn": fastnn_run,
                "reference": reference_run if device == "cpu" else None,
                "torch": _torch_fn(scores_np, labels_np, device),
            },
            bytes=3.0 * n * c * np.dtype(dtype).itemsize,
        )
