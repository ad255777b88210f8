"""Batch normalization on CuPy arrays: the fastnn._cuda kernels (cuda/batch_norm.cu).

Per channel c of x (N, C) or (N, C, H, W), over its M = N*H*W values:
    training:   mu = mean(x),  var = mean((x - mu)^2)  (biased),  inv_std = 1 / sqrt(var + eps)
                running_mean = (1 - momentum) running_mean + momentum mu
                running_var  = (1 - momentum) running_var  + momentum var M / (M - 1)   (in place)
    evaluation: mu = running_mean,  inv_std = 1 / sqrt(running_var + eps)
    out = gamma (x - mu) inv_std + beta
    backward:   dbeta = sum dout,  dgamma = sum dout xhat,  xhat = (x - mu) inv_std
                training:   dx = gamma inv_std (dout - dbeta / M - xhat dgamma / M)
                evaluation: dx = gamma inv_std dout

Each pass is two kernels: per-chunk partial sums in double precision, then one streaming kernel
that merges its channel's partials in a fixed order and writes the output (and, once per channel,
the statistics or dgamma/dbeta). No atomics, so the results are bit-reproducible. The caches are
fastnn.functional.batch_norm's BatchNormCache. Nothing here synchronises the device.
"""
from .. import _backend
from .batch_norm import BatchNormCache


def _layout(x):
    n, c = x.shape[:2]
    return n, c, (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)


def _partials(cp, native, n, c, l):
    """Scratch for the per-chunk (sum, sum of squares or products) partials. The caller keeps a reference until the
    kernels are queued: an array freed before the call would hand them released memory."""
    return cp.empty((c, native.batch_norm_chunks(n, c, l), 2), dtype=cp.float64)


def batch_norm_forward_cuda(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    """out = gamma (x - mu) / sqrt(var + eps) + beta per channel (axis 1), on the GPU.

    Args:
        x: CuPy float32/float64 array (N, C) or (N, C, H, W); any strides.
        gamma, beta, running_mean, running_var: (C,) CuPy arrays of x's dtype. In training mode the
            running statistics are updated in place.
        training: batch statistics (True, needs M >= 2) or the running ones (False).
        momentum: weight of the batch statistics in the running update; eps: added to the variance.

    Returns:
        (out, cache): out has x's shape and dtype; cache is a BatchNormCache.
    """
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    x = _backend.c_array(x)
    gamma = _backend.c_array(gamma)
    beta = _backend.c_array(beta)
    n, c, l = _layout(x)
    stream = cp.cuda.get_current_stream().ptr
    out = cp.empty_like(x)
    if not training:
        # Copies (the cache must not follow later updates of the running statistics), made from aligned
        # stand-ins: astype's element loads would fault on a misaligned array.
        mean = _backend.cupy_aligned(running_mean).astype(x.dtype, order="C", copy=True)
        inv_std = (1.0 / cp.sqrt(_backend.cupy_aligned(running_var).astype(cp.float64) + eps)).astype(x.dtype)
        native.batch_norm_forward_eval(
            x.dtype.name, x.data.ptr, gamma.data.ptr, beta.data.ptr, mean.data.ptr, inv_std.data.ptr,
            out.data.ptr, n, c, l, stream,
        )
        return out, BatchNormCache(x, gamma, mean, inv_std, False)

    if n * l < 2:
        raise ValueError(f"batch_norm_forward_cuda: training needs more than one value per channel, got x {tuple(x.shape)}")
    mean = cp.empty(c, dtype=x.dtype)
    inv_std = cp.empty(c, dtype=x.dtype)
    # The kernel updates the running statistics where they lie; a strided or misaligned view gets a
    # contiguous stand-in that is copied back afterwards (as bytes where it is misaligned).
    run_mean = _backend.c_array(running_mean)
    run_var = _backend.c_array(running_var)
    partials = _partials(cp, native, n, c, l)  # held here: the kernels are queued after this line
    native.batch_norm_forward_training(
        x.dtype.name, x.data.ptr, gamma.data.ptr, beta.data.ptr, out.data.ptr, mean.data.ptr,
        inv_std.data.ptr, run_mean.data.ptr, run_var.data.ptr, partials.data.ptr,
        float(momentum), float(eps), n, c, l, stream,
    )
    if run_mean is not running_mean:
        _backend.cupy_copy_into(running_mean, run_mean)
    if run_var is not running_var:
        _backend.cupy_copy_into(running_var, run_var)
    return out, BatchNormCache(x, gamma, mean, inv_std, True)


def batch_norm_backward_cuda(dout, cache):
    """(dx, dgamma, dbeta) of batch_norm_forward_cuda's output on the GPU.

    Args:
        dout: CuPy array of x's shape and dtype; any strides.
        cache: the BatchNormCache from batch_norm_forward_cuda (or batch_norm_forward on CuPy input).

    Returns:
        dx (x's shape), dgamma (C,), dbeta (C,): CuPy arrays of x's dtype.
    """
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    x, gamma, mean, inv_std, training = cache
    dout = _backend.c_array(dout)
    if dout.shape != x.shape or dout.dtype != x.dtype:
        raise ValueError(
            f"batch_norm_backward_cuda: dout {tuple(dout.shape)} {dout.dtype} does not match x {tuple(x.shape)} {x.dtype}"
        )
    gamma, mean, inv_std = (_backend.c_array(a) for a in (gamma, mean, inv_std))
    n, c, l = _layout(x)
    dx = cp.empty_like(x)
    dgamma = cp.empty(c, dtype=x.dtype)
    dbeta = cp.empty(c, dtype=x.dtype)
    partials = _partials(cp, native, n, c, l)
    native.batch_norm_backward(
        x.dtype.name, dout.data.ptr, x.data.ptr, gamma.data.ptr, mean.data.ptr, inv_std.data.ptr,
        dx.data.ptr, dgamma.data.ptr, dbeta.data.ptr, partials.data.ptr,
        bool(training), n, c, l, cp.cuda.get_current_stream().ptr,
    )
    return dx, dgamma, dbeta
