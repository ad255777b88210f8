"""Batch normalization, written as the lecture writes it (NumPy; float64-capable). The oracle.

x is (N, C) or (N, C, H, W); statistics are per channel c over the M = N (or N*H*W) values of c.
Training:
    mu = mean(x),  var = mean((x - mu)^2)               (biased, used to normalize)
    xhat = (x - mu) / sqrt(var + eps),  out = gamma * xhat + beta
    running_mean = (1 - momentum) running_mean + momentum mu
    running_var  = (1 - momentum) running_var  + momentum var * M / (M - 1)   (unbiased)
Evaluation: the same with mu, var := running_mean, running_var, and nothing updated.
Backward (training), step by step through the graph rather than the closed form, so the native
kernels' closed form is checked against an independent derivation:
    dxhat = dout gamma
    dvar  = sum(dxhat (x - mu)) * (-1/2) (var + eps)^(-3/2)
    dmu   = -sum(dxhat) / sqrt(var + eps) + dvar * (-2/M) sum(x - mu)
    dx    = dxhat / sqrt(var + eps) + dvar 2 (x - mu) / M + dmu / M
    dgamma = sum(dout xhat),  dbeta = sum(dout)
Evaluation backward: dx = dout gamma / sqrt(running_var + eps).
"""
import numpy as np


def _axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm_forward(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    axes = _axes(x)
    if training:
        m = x.size // x.shape[1]
        mu = x.mean(axis=axes)
        var = ((x - _per_channel(mu, x)) ** 2).mean(axis=axes)
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * m / (m - 1)
    else:
        mu, var = running_mean.copy(), running_var.copy()
    xhat = (x - _per_channel(mu, x)) / np.sqrt(_per_channel(var, x) + eps)
    out = _per_channel(gamma, x) * xhat + _per_channel(beta, x)
    return out, (x, xhat, mu, var, gamma, eps, training)


def batch_norm_backward(dout, cache):
    x, xhat, mu, var, gamma, eps, training = cache
    axes = _axes(x)
    m = x.size // x.shape[1]
    dgamma = (dout * xhat).sum(axis=axes)
    dbeta = dout.sum(axis=axes)
    dxhat = dout * _per_channel(gamma, x)
    std = np.sqrt(_per_channel(var, x) + eps)
    if not training:
        return dxhat / std, dgamma, dbeta
    centered = x - _per_channel(mu, x)
    dvar = (dxhat * centered).sum(axis=axes, keepdims=True) * -0.5 * std ** -3
    dmu = -dxhat.sum(axis=axes, keepdims=True) / std + dvar * -2.0 * centered.sum(axis=axes, keepdims=True) / m
    dx = dxhat / std + dvar * 2.0 * centered / m + dmu / m
    return dx, dgamma, dbeta
