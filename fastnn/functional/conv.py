"""2-D convolution (cross-correlation), NCHW, any kernel size, stride and zero padding.

    x (N, C, H, W)   w (K, C, kh, kw)   b (K,) or None   stride (sh, sw)   padding (ph, pw)
    xp = x zero-padded by ph rows top and bottom and pw columns left and right
    OH = (H + 2 ph - kh) // sh + 1        OW = (W + 2 pw - kw) // sw + 1

    out[n, k, oh, ow] = b[k] + sum_{c, i, j} w[k, c, i, j] * xp[n, c, oh*sh + i, ow*sw + j]

    dx[n, c, y, z]    = sum_{k, i, j, oh, ow : oh*sh + i = y + ph, ow*sw + j = z + pw} dout[n, k, oh, ow] * w[k, c, i, j]
    dw[k, c, i, j]    = sum_{n, oh, ow} dout[n, k, oh, ow] * xp[n, c, oh*sh + i, ow*sw + j]
    db[k]             = sum_{n, oh, ow} dout[n, k, oh, ow]

NumPy arrays run on fastnn._C: one GEMM per image on our packed AVX2/FMA GEMM, the unfolded (im2col)
matrix packed straight from the image a cache-sized panel at a time, or, where the shape suits it,
micro-kernels that read the windows in place from a zero-padded copy of the image (see
csrc/conv2d.h). CuPy arrays run on the CUDA kernels (fastnn.functional.conv_cuda).
"""
from typing import NamedTuple, Optional, Tuple

import numpy as np

from .. import _backend
from ._checks import NonFiniteError, float_array, geometry_in_range, int_pair, numpy_floats, same_device, same_dtype


class Conv2dCache(NamedTuple):
    x: object  # (N, C, H, W), C-contiguous
    w: object  # (K, C, kh, kw), C-contiguous
    has_bias: bool  # whether the forward pass had a bias (then conv2d_backward returns db)
    stride: Tuple[int, int]  # (sh, sw)
    padding: Tuple[int, int]  # (ph, pw)


def conv2d_output_shape(x_shape, w_shape, stride, padding):
    """(N, K, OH, OW) of conv2d_forward for these shapes; stride and padding are pairs."""
    n, _, h, width = x_shape
    k, _, kh, kw = w_shape
    return (n, k, (h + 2 * padding[0] - kh) // stride[0] + 1, (width + 2 * padding[1] - kw) // stride[1] + 1)


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """2-D convolution of a batch of images: out = conv(x, w) + b (see the module docstring).

    Args:
        x: input images (N, C, H, W), float32 or float64, NumPy or CuPy; any strides.
        w: filters (K, C, kh, kw), same dtype and device as x.
        b: bias (K,) or None.
        stride: an int or a pair (sh, sw), each >= 1.
        padding: zero padding, an int or a pair (ph, pw), each >= 0.

    Returns:
        (out, cache): out (N, K, OH, OW) with OH = (H + 2ph - kh) // sh + 1 and
        OW = (W + 2pw - kw) // sw + 1, same dtype and device as x; cache for conv2d_backward.

    Numerics: on CPUs with AVX2, float32 3x3 convolutions with at least 32 channels on each side at
    stride 1 or 2 run as Winograd convolutions (forward and both gradients). They agree with the
    direct sum up to float32 rounding, which their transforms enlarge a little: about 1e-5 of the
    largest output for F(4x4, 3x3) at a few hundred channels, 1e-6 for the others. float64 always
    takes the direct and GEMM paths.

    Raises:
        TypeError: non-array input, non-float or mixed dtypes, mixed devices, non-int stride/padding.
        ValueError: wrong numbers of dimensions, C of w not matching x, b not (K,), an empty
            extent, stride < 1, padding < 0, a kernel larger than the padded input, and on CPU a
            non-finite output (NaN or inf in x, w or b): the message names the culprit. On GPU NaN
            propagates to the output instead (checking would synchronise the device).
    """
    if (numpy_floats(x, w) if b is None else numpy_floats(x, w, b)) and x.ndim == w.ndim == 4 and (
            b is None or b.ndim == 1):
        on_gpu = False  # (the common case: what the checks below would establish)
    else:
        float_array("x", x, ndim=4)
        float_array("w", w, ndim=4)
        arrays = {"x": x, "w": w}
        if b is not None:
            float_array("b", b, ndim=1)
            arrays["b"] = b
        on_gpu = same_device(**arrays)
        same_dtype(**arrays)
    stride = int_pair("stride", stride, 1)
    padding = int_pair("padding", padding, 0)

    n, c, h, width = x.shape
    k, wc, kh, kw = w.shape
    if wc != c:
        raise ValueError(f"w has {wc} input channels (shape {tuple(w.shape)}) but x has {c} (shape {tuple(x.shape)})")
    if b is not None and b.shape != (k,):
        raise ValueError(f"b: expected shape ({k},) for {k} filters, got {tuple(b.shape)}")
    if min(n, c, h, width) == 0 or min(k, kh, kw) == 0:
        raise ValueError(f"conv2d_forward: empty extent in x {tuple(x.shape)} or w {tuple(w.shape)}")
    geometry_in_range("conv2d_forward", h, width, padding, stride)
    if kh > h + 2 * padding[0] or kw > width + 2 * padding[1]:
        raise ValueError(
            f"kernel {kh}x{kw} is larger than the padded input {h + 2 * padding[0]}x{width + 2 * padding[1]} "
            f"(H={h}, W={width}, padding={padding})"
        )

    if on_gpu:
        from .conv_cuda import conv2d_forward_cuda

        return conv2d_forward_cuda(x, w, b, stride, padding)

    x = _backend.c_array(x)
    w = _backend.c_array(w)
    b = None if b is None else _backend.c_array(b)
    out, finite = _backend._C.conv2d_forward(x, w, b, stride[0], stride[1], padding[0], padding[1])
    if not finite:
        raise NonFiniteError(f"conv2d_forward: the output is not finite: {_nonfinite_culprit(x=x, w=w, b=b)}")
    return out, Conv2dCache(x, w, b is not None, stride, padding)


def conv2d_backward(dout, cache):
    """Gradients of conv2d_forward's output with respect to x, w and b (see the module docstring).

    Args:
        dout: upstream gradient (N, K, OH, OW), same dtype and device as the forward input.
        cache: the cache returned by conv2d_forward.

    Returns:
        (dx, dw, db): dx (N, C, H, W), dw (K, C, kh, kw), db (K,) or None when the forward pass
        had no bias; same dtype and device as x.

    Raises:
        TypeError: a cache not from conv2d_forward, non-array or wrong-dtype dout, mixed devices.
        ValueError: dout not of the forward output's shape; on CPU a non-finite dw (NaN or inf in dout).
    """
    dout, on_gpu = _check_backward(dout, cache)
    if on_gpu:
        from .conv_cuda import conv2d_backward_cuda

        return conv2d_backward_cuda(dout, cache)
    dx = _backward_data_cpu(dout, cache)
    dw, db = _backward_weight_cpu(dout, cache)
    return dx, dw, db


def conv2d_backward_data(dout, cache):
    """dx alone (see conv2d_backward; on GPU the fused CUDA backward runs and dw, db are dropped)."""
    dout, on_gpu = _check_backward(dout, cache)
    if on_gpu:
        return conv2d_backward(dout, cache)[0]
    return _backward_data_cpu(dout, cache)


def conv2d_backward_weight(dout, cache):
    """(dw, db) alone (see conv2d_backward; on GPU the fused CUDA backward runs and dx is dropped)."""
    dout, on_gpu = _check_backward(dout, cache)
    if on_gpu:
        return conv2d_backward(dout, cache)[1:]
    return _backward_weight_cpu(dout, cache)


def _check_backward(dout, cache):
    """Validates dout against the cache; returns (dout, on_gpu), dout C-contiguous on CPU."""
    if not isinstance(cache, Conv2dCache):
        raise TypeError("cache: expected the Conv2dCache returned by conv2d_forward")
    if numpy_floats(dout, cache.x) and dout.ndim == 4:
        on_gpu = False
    else:
        float_array("dout", dout, ndim=4)
        on_gpu = same_device(dout=dout, x=cache.x)
        same_dtype(x=cache.x, dout=dout)
    expected = conv2d_output_shape(cache.x.shape, cache.w.shape, cache.stride, cache.padding)
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout: expected shape {expected} (the forward output), got {tuple(dout.shape)}")
    return (dout if on_gpu else _backend.c_array(dout)), on_gpu


def _backward_data_cpu(dout, cache):
    (sh, sw), (ph, pw) = cache.stride, cache.padding
    h, width = cache.x.shape[2], cache.x.shape[3]
    return _backend._C.conv2d_backward_data(dout, cache.w, h, width, sh, sw, ph, pw)


def _backward_weight_cpu(dout, cache):
    (sh, sw), (ph, pw) = cache.stride, cache.padding
    kh, kw = cache.w.shape[2], cache.w.shape[3]
    dw, db, finite = _backend._C.conv2d_backward_weight(dout, cache.x, kh, kw, sh, sw, ph, pw, cache.has_bias)
    if not finite:
        raise NonFiniteError(f"conv2d_backward: dw is not finite: {_nonfinite_culprit(dout=dout, x=cache.x, w=cache.w)}")
    return dw, db


def _nonfinite_culprit(**arrays: Optional[np.ndarray]):
    """Names the first input holding NaN or inf (error path only: it scans the inputs)."""
    for name, a in arrays.items():
        if a is not None and not np.isfinite(a).all():
            what = "NaN" if np.isnan(a).any() else "inf"
            return f"{name} contains {what}"
    return "the inputs are finite but the result overflowed"
