"""Batch normalization over the channel axis 1 of x (N, C) or (N, C, H, W).

Per channel c, over its M = N (or N*H*W) values:
    training:   mu = mean(x),  var = mean((x - mu)^2)        (biased: the normalizer)
                running_mean = (1 - momentum) running_mean + momentum mu
                running_var  = (1 - momentum) running_var  + momentum var M / (M - 1)   (unbiased)
    evaluation: mu, var = running_mean, running_var          (nothing is updated)
    inv_std = 1 / sqrt(var + eps),  xhat = (x - mu) inv_std,  out = gamma xhat + beta

Backward, in the fused closed form (training):
    dgamma = sum(dout xhat),  dbeta = sum(dout)
    dx = gamma inv_std (dout - mean(dout) - xhat mean(dout xhat))
       = gamma inv_std (dout - dbeta / M - xhat dgamma / M)
and in evaluation mode, where mu and var are constants: dx = gamma inv_std dout.

The cache keeps x, mu and inv_std rather than xhat: the backward pass rebuilds xhat on the fly,
which saves writing (and later reading) a tensor the size of x. On the CPU (fastnn._C) each pass
is fused: forward reads x for the statistics and normalizes it while it is still in cache;
backward reads x and dout for dgamma and dbeta, then writes dx in one multiply-add chain.
"""
import math
from typing import NamedTuple

import numpy as np

from .. import _backend
from ._checks import NonFiniteError, float_array, numpy_floats, same_device, same_dtype, scalar


class BatchNormCache(NamedTuple):
    x: object  # (N, C) or (N, C, H, W), C-contiguous: the forward input
    gamma: object  # (C,)
    mean: object  # (C,) the mu that normalized x (batch mean, or running_mean in evaluation)
    inv_std: object  # (C,) 1 / sqrt(var + eps) for that var
    training: bool  # True: batch statistics (dx has the mean terms); False: running statistics


def batch_norm_forward(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    """Batch normalization: out = gamma (x - mu) / sqrt(var + eps) + beta, per channel (axis 1).

    Args:
        x: float32 or float64 array (N, C) or (N, C, H, W), NumPy or CuPy; any strides.
        gamma, beta: (C,) scale and shift, same dtype and device as x.
        running_mean, running_var: (C,) running statistics, same dtype and device as x. In training
            mode they are updated in place (with the unbiased batch variance); in evaluation mode
            they normalize x and are left alone.
        training: True for batch statistics, False for the running ones.
        momentum: weight of the batch statistics in the running update, in [0, 1].
        eps: positive number added to the variance.

    Returns:
        (out, cache): out has x's shape, dtype and device; cache is a BatchNormCache.

    Raises:
        TypeError: non-arrays, non-float dtypes, mixed dtypes or devices; training not a bool.
        ValueError: x not 2-D or 4-D, empty x, parameter shapes other than (C,); momentum outside
            [0, 1]; eps not positive and finite; in training mode one value per channel (M = 1,
            no variance). On CPU also (these look at the values, which on GPU would synchronise
            the device): NaN or inf in gamma, beta or the running statistics, a negative
            running_var (all refused before any computing); in training mode a non-finite batch
            statistic, i.e. NaN or inf in x (refused before the running statistics are touched);
            in evaluation mode NaN in the output.
    """
    params = {"gamma": gamma, "beta": beta, "running_mean": running_mean, "running_var": running_var}
    if numpy_floats(x, gamma, beta, running_mean, running_var) and x.ndim in (2, 4) and gamma.ndim == beta.ndim == \
            running_mean.ndim == running_var.ndim == 1:
        on_gpu = False  # (the common case: what the checks below would establish)
    else:
        float_array("x", x, ndim=(2, 4))
        for name, v in params.items():
            float_array(name, v, ndim=1)
        on_gpu = same_device(x=x, **params)
        same_dtype(x=x, **params)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training: expected a bool, got {type(training).__name__}")
    training = bool(training)
    scalar("momentum", momentum)
    scalar("eps", eps)
    momentum, eps = float(momentum), float(eps)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm_forward: momentum must be in [0, 1], got {momentum}")
    if not (eps > 0.0 and math.isfinite(eps)):
        raise ValueError(f"batch_norm_forward: eps must be positive and finite, got {eps}")
    c = x.shape[1]
    for name, v in params.items():
        if v.shape != (c,):
            raise ValueError(f"batch_norm_forward: {name} has shape {tuple(v.shape)}, expected ({c},) for x {tuple(x.shape)}")
    if training:
        # Checked here, not only by the native layer: a read-only view (np.broadcast_to, or
        # setflags(write=False)) that is also non-contiguous goes through a copy, and the write-back
        # would fail after the kernel ran, with running_mean already updated.
        read_only = [n for n in ("running_mean", "running_var")
                     if isinstance(params[n], np.ndarray) and not params[n].flags.writeable]
        if read_only:
            raise ValueError(f"batch_norm_forward: {', '.join(read_only)} must be writeable "
                             "(training updates them in place)")
    if x.size == 0:
        raise ValueError(f"batch_norm_forward: x is empty, shape {tuple(x.shape)}")
    m = x.size // c
    if training and m < 2:
        raise ValueError(
            f"batch_norm_forward: training needs more than one value per channel, got x {tuple(x.shape)}"
        )
    if on_gpu:
        from .batch_norm_cuda import batch_norm_forward_cuda

        return batch_norm_forward_cuda(x, gamma, beta, running_mean, running_var, training, momentum, eps)

    # The running statistics are updated in place: the kernel writes into C-contiguous, aligned ones
    # directly, anything else through such a copy that is written back.
    rm = _backend.c_array(running_mean)
    rv = _backend.c_array(running_var)
    x = _backend.c_array(x)
    gamma = _backend.c_array(gamma)
    # The native layer refuses NaN/inf parameters before computing, and non-finite batch statistics
    # (NaN or inf in x) before touching the running statistics: _C.NonFiniteError, passed on as
    # fastnn's NonFiniteError (other refusals, a negative running_var say, stay ValueError).
    try:
        out, mean, inv_std = _backend._C.batch_norm_forward(x, gamma, _backend.c_array(beta), rm, rv, training,
                                                            momentum, eps)
    except _backend._C.NonFiniteError as e:
        raise NonFiniteError(str(e)) from e
    if training and rm is not running_mean:
        running_mean[...] = rm
    if training and rv is not running_var:
        running_var[...] = rv
    return out, BatchNormCache(x, gamma, mean, inv_std, training)


def batch_norm_backward(dout, cache):
    """Gradients of batch normalization, fused: dx = gamma inv_std (dout - mean(dout) - xhat mean(dout xhat)).

    Args:
        dout: upstream gradient, x's shape, dtype and device.
        cache: the BatchNormCache from batch_norm_forward.

    Returns:
        (dx, dgamma, dbeta): dx has x's shape; dgamma = sum(dout xhat) and dbeta = sum(dout) are (C,).
        In evaluation mode dx = gamma inv_std dout (the running statistics are constants).
    """
    if not isinstance(cache, BatchNormCache):
        raise TypeError("cache: expected the BatchNormCache returned by batch_norm_forward")
    if numpy_floats(dout, cache.x) and dout.ndim == cache.x.ndim:
        on_gpu = False  # (the common case: what the checks below would establish)
    else:
        float_array("dout", dout, ndim=cache.x.ndim)
        on_gpu = same_device(dout=dout, x=cache.x)
        same_dtype(dout=dout, x=cache.x)
    if dout.shape != cache.x.shape:
        raise ValueError(f"batch_norm_backward: dout has shape {tuple(dout.shape)}, expected {tuple(cache.x.shape)}")
    if on_gpu:
        from .batch_norm_cuda import batch_norm_backward_cuda

        return batch_norm_backward_cuda(dout, cache)
    x, gamma, mean, inv_std, training = cache
    return _backend._C.batch_norm_backward(x, _backend.c_array(dout), gamma, mean, inv_std, training)
