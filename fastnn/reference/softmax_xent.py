"""Softmax cross-entropy, written as the lecture writes it (NumPy; float64-capable). The oracle.

    log p_ij = s_ij - max_k s_ik - log sum_k exp(s_ik - max_k s_ik)
    loss     = -(1/N) sum_i log p_{i, y_i}
    dL/ds    = dloss * (p - onehot(y)) / N
"""
import numpy as np


def softmax_cross_entropy_forward(scores, y):
    n = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(n), y].mean()
    return loss, (log_probs, y)


def softmax_cross_entropy_backward(dloss, cache):
    log_probs, y = cache
    n = log_probs.shape[0]
    dscores = np.exp(log_probs)
    dscores[np.arange(n), y] -= 1.0
    return dloss * dscores / n
