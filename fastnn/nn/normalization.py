"""Normalisation layers: BatchNorm1d / BatchNorm2d (over the fused functional op) and LayerNorm."""
import numpy as np

from .. import _backend
from .. import functional as F
from . import _checks
from .module import Module, Parameter


class _BatchNorm(Module):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta, per channel c.

    Training: mu, var are the batch mean and biased variance over every axis but the channel axis,
    and the running statistics move towards them: running = (1 - momentum) running + momentum batch
    (the running variance uses the unbiased batch variance). Eval: mu, var = the running statistics.
    The arithmetic is F.batch_norm_forward / F.batch_norm_backward.
    """

    _buffer_names = ("running_mean", "running_var")
    _input_ndim = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__()
        self.num_features = _checks.int_at_least(type(self).__name__, "num_features", num_features)
        self.momentum = _checks.hyperparameter(type(self).__name__, "momentum", momentum, at_least=0.0, at_most=1.0)
        self.eps = _checks.hyperparameter(type(self).__name__, "eps", eps, above=0.0)
        self.gamma = Parameter(np.ones(num_features, dtype), "gamma")
        self.beta = Parameter(np.zeros(num_features, dtype), "beta")
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)

    def forward(self, x):
        name = type(self).__name__
        _checks.layer_input(name, x, self.gamma.data, ndim=self._input_ndim)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected {self.num_features} channels on axis 1, got shape {tuple(x.shape)}")
        out, cache = F.batch_norm_forward(x, self.gamma.data, self.beta.data, self.running_mean,
                                          self.running_var, training=self.training,
                                          momentum=self.momentum, eps=self.eps)
        self._push_cache(cache)
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = F.batch_norm_backward(dout, self._pop_cache())
        self.gamma.grad += dgamma
        self.beta.grad += dbeta
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of features: x (N, C), statistics over the batch axis."""

    _input_ndim = 2


class BatchNorm2d(_BatchNorm):
    """Spatial batch normalisation: x (N, C, H, W), statistics per channel over N, H and W."""

    _input_ndim = 4


class LayerNorm(Module):
    """Normalises each sample over its last dimension (size D), Ba et al. 2016:

        mu = mean(x), var = mean((x - mu)^2), x_hat = (x - mu) / sqrt(var + eps)
        y = gamma * x_hat + beta
        dx = (1 / D) / sqrt(var + eps) * (D g - sum(g) - x_hat * sum(g * x_hat)),  g = dy * gamma
    """

    def __init__(self, normalized_shape, eps=1e-5, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)) and len(normalized_shape) == 1:
            normalized_shape = normalized_shape[0]  # (D,), as PyTorch writes it: the last axis only
        self.normalized_shape = _checks.int_at_least("LayerNorm", "normalized_shape (the last axis's size)",
                                                     normalized_shape)
        self.eps = _checks.hyperparameter("LayerNorm", "eps", eps, above=0.0)
        self.gamma = Parameter(np.ones(self.normalized_shape, dtype), "gamma")
        self.beta = Parameter(np.zeros(self.normalized_shape, dtype), "beta")

    def forward(self, x):
        _checks.layer_input("LayerNorm", x, self.gamma.data)
        _checks.last_dim("LayerNorm", x, self.normalized_shape)
        xp = _backend.array_module(x)
        mu = x.mean(axis=-1, keepdims=True)
        centered = x - mu
        inv_std = 1.0 / xp.sqrt((centered * centered).mean(axis=-1, keepdims=True) + x.dtype.type(self.eps))
        x_hat = centered * inv_std
        self._push_cache((x_hat, inv_std))
        return x_hat * self.gamma.data + self.beta.data

    def backward(self, dout):
        x_hat, inv_std = self._pop_cache()
        _checks.upstream_grad("LayerNorm", dout, x_hat.shape, x_hat)
        lead = tuple(range(dout.ndim - 1))
        self.gamma.grad += (dout * x_hat).sum(axis=lead)
        self.beta.grad += dout.sum(axis=lead)
        g = dout * self.gamma.data
        d = self.normalized_shape
        return (inv_std / d) * (d * g - g.sum(axis=-1, keepdims=True)
                                - x_hat * (g * x_hat).sum(axis=-1, keepdims=True))

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"
