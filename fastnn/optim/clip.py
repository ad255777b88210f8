"""Gradient clipping, in place on p.grad (call between backward and step)."""
import math

from .. import _backend


def _sum_squares(g):
    """sum(g^2) accumulated in float64: natively (one pass, no float64 copy) for C-contiguous float NumPy
    arrays; for CuPy arrays a device scalar, so that summing them waits for the GPU once, not per array."""
    if _backend.native_float_arrays(g):
        return _backend._C.sum_squares(g)
    squares = (g.astype("float64", copy=False) ** 2).sum()
    return squares if _backend.is_cupy_array(g) else float(squares)


def _check_max_norm(owner, max_norm):
    if not max_norm > 0:
        raise ValueError(f"{owner}: max_norm must be positive, got {max_norm}")


def clip_grad_value(params, clip_value):
    """g <- clip(g, -clip_value, clip_value) elementwise (changes the direction of g)."""
    if not clip_value > 0:
        raise ValueError(f"clip_grad_value: clip_value must be positive, got {clip_value}")
    for p in params:
        _backend.array_module(p.grad).clip(p.grad, -clip_value, clip_value, out=p.grad)


def clip_grad_norm_on_device(params, max_norm, eps=1e-6):
    """clip_grad_norm for CuPy gradients with the decision taken on the device: the scale
    max_norm / (||g|| + eps) where ||g|| > max_norm, else 1, multiplies every gradient. No value
    comes back to the host, so a CUDA graph can capture it (fastnn.training.CudaGraphStep)."""
    _check_max_norm("clip_grad_norm_on_device", max_norm)
    params = list(params)
    cp = _backend.cupy_module()
    total = cp.sqrt(sum(_sum_squares(p.grad) for p in params))
    scale = cp.where(total > max_norm, max_norm / (total + eps), 1.0)
    for p in params:
        p.grad *= scale.astype(p.grad.dtype)


def clip_grad_norm(params, max_norm, eps=1e-6):
    """Rescales all gradients together so their global norm ||g|| = sqrt(sum_p ||g_p||^2) is at most
    max_norm: g <- g * max_norm / (||g|| + eps) when ||g|| > max_norm. The direction is kept.
    Returns ||g|| before clipping (a float)."""
    _check_max_norm("clip_grad_norm", max_norm)
    params = list(params)
    total = math.sqrt(float(sum(_sum_squares(p.grad) for p in params)))
    if total > max_norm:
        scale = max_norm / (total + eps)
        for p in params:
            p.grad *= scale
    return total
