"""Fused softmax cross-entropy: the loss of a classifier's scores against integer labels.

    p_ij   = exp(s_ij) / sum_k exp(s_ik)                    (softmax over the C classes)
    loss   = (1/N) sum_i -log p_{i, y_i}
           = (1/N) sum_i [ log sum_k exp(s_ik) - s_{i, y_i} ]
    dL/ds_ij = dloss * (p_ij - [j == y_i]) / N

Both passes are fused native kernels (fastnn._C on NumPy arrays, fastnn._cuda on CuPy arrays).
On the CPU the forward pass keeps exp(s - max) and the row sums (exp is dearer than a pass over
memory there) and the first backward pass turns them into the gradient in place; on the GPU only the N log-sum-exps are kept and
the backward pass rebuilds p from the scores (memory is dearer there).
"""
import numpy as np

from .. import _backend
from ._checks import NonFiniteError, float_array, int_array, same_device, scalar


class SoftmaxCrossEntropyCache:
    """What softmax_cross_entropy_backward needs from the forward pass.

    scores (N, C): the forward pass's scores (C-contiguous; a reference, not a copy, when they
    already were), labels (N,) int64, logsumexp (N,) = log sum_k exp(s_ik).
    On the CPU the cache also holds e = exp(s - rowmax) and 1 / sum_k e_ik (so p = e / sum e) until
    the first backward pass, which overwrites e with the gradient and returns that array (so
    forward + backward allocate one N x C buffer, not two); any later backward pass on the same
    cache recomputes p from the scores.
    Do not modify the scores in place between the forward and backward passes.
    """

    __slots__ = ("scores", "labels", "logsumexp", "_exps")

    def __init__(self, scores, labels, logsumexp, exps=None):
        self.scores = scores
        self.labels = labels
        self.logsumexp = logsumexp
        self._exps = exps  # (e, 1/sum e) on the CPU until the first backward pass, else None


def softmax_cross_entropy_forward(scores, y):
    """Mean softmax cross-entropy of `scores` (N, C) against integer labels `y` (N,).

    Args:
        scores: float32 or float64 array (N, C), NumPy or CuPy; any strides.
        y: integer array (N,) with values in [0, C), on the same device as scores.

    Returns:
        (loss, cache): loss is a 0-d value of scores' dtype (a NumPy scalar on CPU, a 0-d CuPy
        array on GPU); cache is what softmax_cross_entropy_backward needs.

    Raises:
        TypeError: non-array input, non-float scores, non-integer labels, mixed devices.
        ValueError: shapes that do not match, an empty batch or C = 0, labels outside [0, C)
            (checked on CPU; on GPU a bad label makes the loss NaN, since checking it would
            synchronise the device), and on CPU a non-finite loss (NaN or +inf in the scores, or
            -inf at a target): the message names the first such row. On GPU such rows give NaN.
    """
    float_array("scores", scores, ndim=2)
    int_array("y", y, ndim=1)
    on_gpu = same_device(scores=scores, y=y)
    n, c = scores.shape
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} labels but scores has {n} rows")
    if n == 0:
        raise ValueError("softmax_cross_entropy_forward: empty batch (N = 0); the mean loss is undefined")
    if c == 0:
        raise ValueError("softmax_cross_entropy_forward: scores has no classes (C = 0)")
    if on_gpu:
        return _forward_cuda(scores, y)

    # Checked before the cast to int64, which would wrap uint64 labels of 2^63 and more.
    bad = np.flatnonzero((y < 0) | (y >= c))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"y[{i}] = {int(y[i])} is outside [0, {c}) ({bad.size} label(s) out of range)")
    labels = _backend.c_array(y, dtype=np.int64)
    scores = _backend.c_array(scores)
    loss_sum, exps, inv_sum, lse, first_nonfinite = _backend._C.softmax_xent_forward(scores, labels)
    if first_nonfinite >= 0:
        i = int(first_nonfinite)
        raise NonFiniteError(
            f"softmax_cross_entropy_forward: the loss of row {i} is not finite: the scores contain "
            "NaN or +inf, or the target class's score is -inf"
        )
    loss = scores.dtype.type(loss_sum / n)
    return loss, SoftmaxCrossEntropyCache(scores, labels, lse, (exps, inv_sum))


def softmax_cross_entropy_backward(dloss, cache):
    """Gradient of the mean softmax cross-entropy with respect to the scores.

    Args:
        dloss: upstream gradient of the loss (1.0 when the loss is the objective): a Python or
            NumPy scalar, or a 0-d array (a 0-d CuPy array stays on the GPU).
        cache: the cache returned by softmax_cross_entropy_forward.

    Returns:
        dscores (N, C), same dtype and device as the scores: dloss * (softmax(scores) - onehot(y)) / N.
    """
    if not isinstance(cache, SoftmaxCrossEntropyCache):
        raise TypeError("cache: expected the cache returned by softmax_cross_entropy_forward")
    scalar("dloss", dloss)
    if _backend.is_cupy_array(cache.scores):
        return _backward_cuda(dloss, cache.scores, cache.labels, cache.logsumexp)
    if _backend.is_cupy_array(dloss):
        raise TypeError("dloss is a CuPy array but the forward pass ran on NumPy arrays")
    scale = float(dloss) / cache.scores.shape[0]
    if cache._exps is not None:
        (exps, inv_sum), cache._exps = cache._exps, None
        return _backend._C.softmax_xent_backward_in_place(exps, inv_sum, cache.labels, scale)
    return _backend._C.softmax_xent_backward_recompute(cache.scores, cache.labels, cache.logsumexp, scale)


def _forward_cuda(scores, y):
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    n, c = scores.shape
    scores = _backend.c_array(scores)
    labels = _backend.c_array(y, dtype=cp.int64)
    lse = cp.empty(n, dtype=scores.dtype)
    row_loss = cp.empty(n, dtype=cp.float64)
    loss = cp.empty((), dtype=scores.dtype)
    native.softmax_xent_forward(
        scores.dtype.name, scores.data.ptr, labels.data.ptr, lse.data.ptr, row_loss.data.ptr,
        loss.data.ptr, n, c, cp.cuda.get_current_stream().ptr,
    )
    return loss, SoftmaxCrossEntropyCache(scores, labels, lse)


def _backward_cuda(dloss, scores, labels, lse):
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    n, c = scores.shape
    dloss_ptr, dloss_value = 0, 0.0
    if _backend.is_cupy_array(dloss):
        dloss = _backend.c_array(dloss, dtype=scores.dtype)
        dloss_ptr = dloss.data.ptr
    elif isinstance(dloss, np.ndarray):
        dloss_value = float(dloss)
    else:
        dloss_value = float(dloss)
    dscores = cp.empty_like(scores)
    native.softmax_xent_backward(
        scores.dtype.name, scores.data.ptr, labels.data.ptr, lse.data.ptr, dloss_ptr, dloss_value,
        dscores.data.ptr, n, c, cp.cuda.get_current_stream().ptr,
    )
    return dscores
