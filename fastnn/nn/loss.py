"""Losses: forward(pred, target) -> float (the mean over the batch), backward() -> dL/dpred.
forward_array(pred, target) is the same mean as a 0-d array on the inputs' device (no host copy; on the
CPU a NumPy scalar of the inputs' dtype).

    loss_fn = SoftmaxCrossEntropyLoss()
    loss = loss_fn.forward(scores, labels)   # a Python float
    dscores = loss_fn.backward()              # same shape, dtype and device as scores

backward() differentiates the most recent forward() (a loss is the end of the graph, so it keeps
one cache, not a stack). TripletLoss takes three inputs and returns three gradients.
"""
import math

import numpy as np

from .. import _backend
from .. import functional as F
from . import _checks


def _finite(loss, value):
    """The loss as a float; a NaN or infinite loss (NaN or inf in the inputs) is a clear error, not a
    silent NaN that poisons every parameter at the next step."""
    value = float(value)
    if not math.isfinite(value):
        raise F.NonFiniteError(f"{loss}: the loss is {value}: the predictions or targets contain NaN or inf"
                               " (or, on the GPU, where they are not checked, targets or labels are out of range)")
    return value


class Loss:
    """Base class: subclasses implement forward_array(pred, target) and backward().

    forward(...) is the loss as a Python float and refuses NaN/inf; forward_array(...) is the same
    value as a 0-d array on the inputs' device, not copied to the host and not checked, which is what
    a captured CUDA graph step needs (fastnn.training.CudaGraphStep).
    """

    def __init__(self):
        self._cache = None

    def __call__(self, *args):
        return self.forward(*args)

    def forward(self, *args):
        return _finite(type(self).__name__, self.forward_array(*args))

    def forward_array(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must implement forward_array")

    def _take_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache


def _pred_and_target(loss, pred, target):
    _checks.float_array(f"{loss} pred", pred)
    _checks.float_array(f"{loss} target", target)
    _checks.same_device(pred=pred, target=target)
    _checks.same_dtype(pred=pred, target=target)
    _checks.same_shape(loss, "pred", pred, "target", target)
    if pred.size == 0:
        raise ValueError(f"{loss}: empty input; the mean is undefined")


class MSELoss(Loss):
    """L = (1/n) sum (pred - target)^2 over all n elements;  dL/dpred = 2 (pred - target) / n."""

    def forward_array(self, pred, target):
        _pred_and_target("MSELoss", pred, target)
        diff = pred - target
        self._cache = diff
        return (diff * diff).mean()

    def backward(self):
        diff = self._take_cache()
        return diff * diff.dtype.type(2.0 / diff.size)


class L1Loss(Loss):
    """L = (1/n) sum |pred - target|;  dL/dpred = sign(pred - target) / n (0 where they are equal)."""

    def forward_array(self, pred, target):
        _pred_and_target("L1Loss", pred, target)
        diff = pred - target
        self._cache = diff
        return abs(diff).mean()

    def backward(self):
        diff = self._take_cache()
        return _backend.array_module(diff).sign(diff) * diff.dtype.type(1.0 / diff.size)


class HuberLoss(Loss):
    """L = (1/n) sum h(pred - target), h(d) = d^2 / 2 for |d| <= delta, delta (|d| - delta / 2) beyond;
    dL/dpred = clip(pred - target, -delta, delta) / n."""

    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = _checks.hyperparameter("HuberLoss", "delta", delta, above=0.0)

    def forward_array(self, pred, target):
        _pred_and_target("HuberLoss", pred, target)
        xp = _backend.array_module(pred)
        diff = pred - target
        self._cache = diff
        a = abs(diff)
        per_element = xp.where(a <= self.delta, 0.5 * diff * diff, self.delta * (a - 0.5 * self.delta))
        return per_element.mean()

    def backward(self):
        diff = self._take_cache()
        xp = _backend.array_module(diff)
        return xp.clip(diff, -self.delta, self.delta) * diff.dtype.type(1.0 / diff.size)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits z with targets t in [0, 1], in the stable form

        L = (1/n) sum [ max(z, 0) - z t + log(1 + exp(-|z|)) ]   (= -t log s(z) - (1 - t) log(1 - s(z)))
        dL/dz = (sigmoid(z) - t) / n

    A target outside [0, 1] (or NaN) is refused with a ValueError on the CPU; on the GPU, where
    checking would synchronise with the host, it makes the loss NaN (as bad labels do in the fused
    softmax cross-entropy), which the training loop stops on.
    """

    def forward_array(self, pred, target):
        _pred_and_target("BCEWithLogitsLoss", pred, target)
        xp = _backend.array_module(pred)
        inside = (target >= 0) & (target <= 1)  # False for NaN
        if xp is np:
            if not inside.all():
                outside = ~inside
                i = np.unravel_index(int(np.argmax(outside)), target.shape)
                raise ValueError(f"BCEWithLogitsLoss: targets must lie in [0, 1], got {target[i]} at index "
                                 f"{tuple(int(k) for k in i)} ({int(outside.sum())} such)")
        else:
            target = xp.where(inside, target, target.dtype.type(np.nan))
        self._cache = (pred, target)
        per_element = xp.maximum(pred, 0) - pred * target + xp.log1p(xp.exp(-abs(pred)))
        return per_element.mean()

    def backward(self):
        z, t = self._take_cache()
        xp = _backend.array_module(z)
        sigmoid = 0.5 * (1 + xp.tanh(0.5 * z))
        return (sigmoid - t) * z.dtype.type(1.0 / z.size)


class SoftmaxCrossEntropyLoss(Loss):
    """Scores s (N, C), integer labels y (N,):  L = (1/N) sum_i [log sum_k exp(s_ik) - s_{i, y_i}],
    dL/ds = (softmax(s) - onehot(y)) / N. Both passes are the fused kernel F.softmax_cross_entropy_*."""

    def forward(self, pred, target):
        return float(self.forward_array(pred, target))

    def forward_array(self, pred, target):
        loss, cache = F.softmax_cross_entropy_forward(pred, target)
        self._cache = cache
        return loss

    def backward(self):
        return F.softmax_cross_entropy_backward(1.0, self._take_cache())


class MultiClassHingeLoss(Loss):
    """Multiclass SVM loss (Weston-Watkins, as in CS231n), margin 1, scores s (N, C), labels y (N,):

        L = (1/N) sum_i sum_{j != y_i} max(0, s_ij - s_{i, y_i} + 1)
        dL/ds_ij = [margin_ij > 0] / N for j != y_i,  dL/ds_{i, y_i} = -(number of j with margin_ij > 0) / N
    """

    def forward_array(self, pred, target):
        _checks.float_array("MultiClassHingeLoss pred", pred, ndim=2)
        if not hasattr(target, "dtype") or target.dtype.kind not in "iu" or target.ndim != 1:
            raise TypeError("MultiClassHingeLoss: target must be a 1-D integer array of labels")
        _checks.same_device(pred=pred, target=target)
        n, c = pred.shape
        if target.shape[0] != n or n == 0:
            raise ValueError(f"MultiClassHingeLoss: {target.shape[0]} labels for {n} rows of scores")
        if int(target.min()) < 0 or int(target.max()) >= c:
            raise ValueError(f"MultiClassHingeLoss: labels must lie in [0, {c})")
        xp = _backend.array_module(pred)
        rows = xp.arange(n)
        correct = pred[rows, target][:, None]
        margins = xp.maximum(0, pred - correct + 1)
        margins[rows, target] = 0
        self._cache = (margins > 0, target, pred.dtype)
        return margins.sum() / n

    def backward(self):
        active, target, dtype = self._take_cache()
        xp = _backend.array_module(active)
        n = active.shape[0]
        dscores = active.astype(dtype)
        dscores[xp.arange(n), target] = -active.sum(axis=1)
        return dscores * dtype.type(1.0 / n)


class TripletLoss(Loss):
    """Triplet loss on embeddings (FaceNet, Schroff et al. 2015) with squared Euclidean distances:

        L = (1/N) sum_i max(0, ||a_i - p_i||^2 - ||a_i - n_i||^2 + margin)
        for active triplets (the bracket > 0): dL/da = 2 (n - p) / N, dL/dp = -2 (a - p) / N,
        dL/dn = 2 (a - n) / N; inactive ones get 0.

    forward(anchor, positive, negative) -> float; backward() -> (d_anchor, d_positive, d_negative).
    With one shared embedding network f, backpropagate the three gradients through f in the reverse
    order of the three forward calls (see fastnn.nn.module on shared modules).
    """

    def __init__(self, margin=1.0):
        super().__init__()
        self.margin = _checks.hyperparameter("TripletLoss", "margin", margin, at_least=0.0)

    def forward_array(self, anchor, positive, negative):
        for name, a in (("anchor", anchor), ("positive", positive), ("negative", negative)):
            _checks.float_array(f"TripletLoss {name}", a, ndim=2)
        _checks.same_device(anchor=anchor, positive=positive, negative=negative)
        _checks.same_dtype(anchor=anchor, positive=positive, negative=negative)
        _checks.same_shape("TripletLoss", "anchor", anchor, "positive", positive)
        _checks.same_shape("TripletLoss", "anchor", anchor, "negative", negative)
        if anchor.shape[0] == 0:
            raise ValueError("TripletLoss: empty batch")
        xp = _backend.array_module(anchor)
        d_pos = anchor - positive
        d_neg = anchor - negative
        bracket = (d_pos * d_pos).sum(axis=1) - (d_neg * d_neg).sum(axis=1) + self.margin
        active = (bracket > 0)[:, None]
        self._cache = (d_pos, d_neg, active)
        return xp.maximum(bracket, 0).mean()

    def backward(self):
        d_pos, d_neg, active = self._take_cache()
        scale = d_pos.dtype.type(2.0 / d_pos.shape[0])
        d_anchor = (d_pos - d_neg) * active * scale
        d_positive = -d_pos * active * scale
        d_negative = d_neg * active * scale
        return d_anchor, d_positive, d_negative
