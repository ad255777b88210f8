"""2-D max and average pooling over the (H, W) planes of x (N, C, H, W).

    Ho = (H + 2 ph - kh) // sh + 1,   Wo = (W + 2 pw - kw) // sw + 1
    window(n, c, i, j) = rows i*sh - ph .. i*sh - ph + kh - 1, columns j*sw - pw .. j*sw - pw + kw - 1

    max:  out[n,c,i,j] = max over the window of x (padding never wins)
          dx[n,c,argmax[n,c,i,j]] += dout[n,c,i,j]     (argmax = first maximum, row-major in the window)
    avg:  out[n,c,i,j] = (1 / (kh kw)) sum over the window of x (padding counts as zeros in the mean)
          dx[n,c,p,q] = (1 / (kh kw)) sum over the windows (i, j) that contain (p, q) of dout[n,c,i,j]

On the CPU (fastnn._C) one thread owns whole (H, W) planes, so both backward passes add into their
plane of dx in output order: deterministic, no atomics. Padding is at most half the window (as in PyTorch), so
every window holds at least one real element.
"""
from typing import NamedTuple, Tuple

from .. import _backend
from ._checks import NonFiniteError, float_array, geometry_in_range, int_pair, same_device


class MaxPool2dCache(NamedTuple):
    x_shape: Tuple[int, int, int, int]  # (N, C, H, W) of the forward input
    dtype: object  # numpy dtype of the forward input (and of dx)
    argmax: object  # (N, C, Ho, Wo) int32: flat index h * W + w of each window's maximum in its plane
    kernel_size: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]


class AvgPool2dCache(NamedTuple):
    x_shape: Tuple[int, int, int, int]  # (N, C, H, W) of the forward input
    dtype: object  # numpy dtype of the forward input (and of dx)
    on_gpu: bool  # whether the forward input was a CuPy array
    kernel_size: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]


def pool_window(kernel_size, stride, padding, op="pool2d"):
    """Checks the window parameters on their own (what a layer can check when it is built);
    returns (kernel, stride, padding) as pairs."""
    kernel = int_pair(f"{op}: kernel_size", kernel_size, 1)
    stride = kernel if stride is None else int_pair(f"{op}: stride", stride, 1)
    padding = int_pair(f"{op}: padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half of kernel_size {kernel}")
    return kernel, stride, padding


def pool_geometry(x_shape, kernel_size, stride, padding, op="pool2d"):
    """Checks the window parameters against x's (N, C, H, W); returns (kernel, stride, padding, (Ho, Wo))."""
    kernel, stride, padding = pool_window(kernel_size, stride, padding, op)
    n, c, h, w = x_shape
    if min(n, c, h, w) < 1:
        raise ValueError(f"{op}: x must not be empty, got shape {tuple(x_shape)}")
    geometry_in_range(op, h, w, padding, stride)
    if h + 2 * padding[0] < kernel[0] or w + 2 * padding[1] < kernel[1]:
        raise ValueError(
            f"{op}: kernel_size {kernel} is larger than the padded input "
            f"({h + 2 * padding[0]}, {w + 2 * padding[1]})"
        )
    out_hw = ((h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)
    return kernel, stride, padding, out_hw


def _check_not_nan(op, nan_count):
    # The kernels count NaN outputs as they write them. NaN in a window reaches its output (the max
    # and the mean both propagate it), so this finds NaN wherever it matters; inputs that no window
    # reads cannot matter.
    if nan_count:
        raise NonFiniteError(f"{op}: x contains NaN ({nan_count} output(s) are NaN)")


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Max pooling: out[n,c,i,j] = max of x over window (i, j) of its (H, W) plane.

    Args:
        x: float32 or float64 array (N, C, H, W), NumPy or CuPy; any strides.
        kernel_size: window (kh, kw), an int or a pair.
        stride: step (sh, sw), an int or a pair; None means kernel_size.
        padding: implicit -inf border (ph, pw), an int or a pair, at most half the window.

    Returns:
        (out, cache): out (N, C, Ho, Wo) with Ho = (H + 2 ph - kh) // sh + 1 (and Wo alike), same
        dtype and device as x; cache is a MaxPool2dCache (it records each window's argmax, the
        first maximum in row-major order).

    Raises:
        TypeError: x not a float32/float64 NumPy or CuPy array; non-integer window parameters.
        ValueError: x not 4-D or empty; kernel_size or stride < 1; negative padding; padding over
            half the window; a window larger than the padded input; NaN in x (CPU only: the GPU
            path does not synchronise to look).
    """
    float_array("x", x, ndim=4)
    kernel, stride, padding, out_hw = pool_geometry(x.shape, kernel_size, stride, padding, "max_pool2d_forward")
    if same_device(x=x):
        from .pool_cuda import max_pool2d_forward_cuda

        return max_pool2d_forward_cuda(x, kernel, stride, padding)
    x = _backend.c_array(x)
    out, argmax, nan_count = _backend._C.max_pool2d_forward(x, kernel, stride, padding)
    _check_not_nan("max_pool2d_forward", nan_count)
    return out, MaxPool2dCache(x.shape, x.dtype, argmax, kernel, stride, padding)


def max_pool2d_backward(dout, cache):
    """Gradient of max pooling: each dout[n,c,i,j] goes to x[n,c] at its window's argmax.

    Args:
        dout: (N, C, Ho, Wo) upstream gradient, same dtype as the forward input and on its device.
        cache: the MaxPool2dCache from max_pool2d_forward.

    Returns:
        dx (N, C, H, W): dx[n,c,p] = sum over windows (i, j) with argmax[n,c,i,j] = p of dout[n,c,i,j].
    """
    if not isinstance(cache, MaxPool2dCache):
        raise TypeError("cache: expected the MaxPool2dCache returned by max_pool2d_forward")
    float_array("dout", dout, ndim=4)
    same_device(dout=dout, argmax=cache.argmax)
    if dout.dtype != cache.dtype:
        raise TypeError(f"dout has dtype {dout.dtype} but the forward input had {cache.dtype}")
    n, c = cache.x_shape[:2]
    expected = (n, c) + tuple(cache.argmax.shape[2:])
    if tuple(dout.shape) != expected:
        raise ValueError(f"max_pool2d_backward: dout has shape {tuple(dout.shape)}, expected {expected}")
    if _backend.is_cupy_array(dout):
        from .pool_cuda import max_pool2d_backward_cuda

        return max_pool2d_backward_cuda(dout, cache)
    h, w = cache.x_shape[2:]
    return _backend._C.max_pool2d_backward(_backend.c_array(dout), cache.argmax, h, w, cache.kernel_size,
                                           cache.stride, cache.padding)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Average pooling: out[n,c,i,j] = (1 / (kh kw)) sum of x over window (i, j), zero padding counted.

    Args:
        x: float32 or float64 array (N, C, H, W), NumPy or CuPy; any strides.
        kernel_size: window (kh, kw), an int or a pair.
        stride: step (sh, sw), an int or a pair; None means kernel_size.
        padding: implicit zero border (ph, pw), an int or a pair, at most half the window; the
            padded zeros count in the mean (the divisor is always kh * kw).

    Returns:
        (out, cache): out (N, C, Ho, Wo), same dtype and device as x; cache is an AvgPool2dCache.

    Raises:
        TypeError, ValueError: as max_pool2d_forward.
    """
    float_array("x", x, ndim=4)
    kernel, stride, padding, out_hw = pool_geometry(x.shape, kernel_size, stride, padding, "avg_pool2d_forward")
    if same_device(x=x):
        from .pool_cuda import avg_pool2d_forward_cuda

        return avg_pool2d_forward_cuda(x, kernel, stride, padding)
    x = _backend.c_array(x)
    out, nan_count = _backend._C.avg_pool2d_forward(x, kernel, stride, padding)
    _check_not_nan("avg_pool2d_forward", nan_count)
    return out, AvgPool2dCache(x.shape, x.dtype, False, kernel, stride, padding)


def avg_pool2d_backward(dout, cache):
    """Gradient of average pooling: dx[n,c,p,q] = (1 / (kh kw)) sum of dout over the windows holding (p, q).

    Args:
        dout: (N, C, Ho, Wo) upstream gradient, same dtype as the forward input and on its device.
        cache: the AvgPool2dCache from avg_pool2d_forward.

    Returns:
        dx (N, C, H, W), same dtype and device as dout.
    """
    if not isinstance(cache, AvgPool2dCache):
        raise TypeError("cache: expected the AvgPool2dCache returned by avg_pool2d_forward")
    float_array("dout", dout, ndim=4)
    if same_device(dout=dout) != cache.on_gpu:
        raise TypeError(
            f"dout is a {'CuPy' if _backend.is_cupy_array(dout) else 'NumPy'} array but the forward pass ran on "
            f"{'CuPy' if cache.on_gpu else 'NumPy'} arrays"
        )
    if dout.dtype != cache.dtype:
        raise TypeError(f"dout has dtype {dout.dtype} but the forward input had {cache.dtype}")
    _, _, _, out_hw = pool_geometry(cache.x_shape, cache.kernel_size, cache.stride, cache.padding)
    expected = tuple(cache.x_shape[:2]) + out_hw
    if tuple(dout.shape) != expected:
        raise ValueError(f"avg_pool2d_backward: dout has shape {tuple(dout.shape)}, expected {expected}")
    if cache.on_gpu:
        from .pool_cuda import avg_pool2d_backward_cuda

        return avg_pool2d_backward_cuda(dout, cache)
    h, w = cache.x_shape[2:]
    return _backend._C.avg_pool2d_backward(_backend.c_array(dout), h, w, cache.kernel_size, cache.stride,
                                           cache.padding)
