"""2-D max and average pooling on CuPy arrays: the fastnn._cuda kernels (cuda/pool.cu).

    P = (H + 2 ph - kh) // sh + 1,  Q = (W + 2 pw - kw) // sw + 1,
    window(p, q) = rows p*sh - ph .. p*sh - ph + kh - 1, columns q*sw - pw .. q*sw - pw + kw - 1
    max:  out[n,c,p,q] = max of x[n,c] over the window (padding never wins),
          argmax[n,c,p,q] = h*W + v of the first maximum in row-major window order;
          dx[n,c,h,v] = sum over the windows (p, q) covering (h, v) with argmax = h*W + v of dout
    avg:  out[n,c,p,q] = (1 / (kh kw)) sum of x[n,c] over the window (zero padding counted);
          dx[n,c,h,v] = (1 / (kh kw)) sum over the windows (p, q) covering (h, v) of dout

The backward kernels gather (one thread per input element sums the windows covering it, in a fixed
order), so they are deterministic without atomics. The caches are fastnn.functional.pool's, so
max_pool2d_backward / avg_pool2d_backward accept them. Nothing here synchronises the device.
"""
from .. import _backend
from .pool import AvgPool2dCache, MaxPool2dCache, pool_geometry


def _shape_tuple(x_shape, kernel, stride, padding, out_hw):
    n, c, h, w = x_shape
    return (n, c, h, w, kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1], out_hw[0], out_hw[1])


def max_pool2d_forward_cuda(x, kernel_size, stride=None, padding=0):
    """Max pooling of a CuPy array x (N, C, H, W); kernel_size, stride, padding: ints or pairs.

    Returns:
        (out, cache): out (N, C, P, Q) of x's dtype; cache a MaxPool2dCache whose argmax is an
        int32 CuPy array (N, C, P, Q) of flat indices into each (H, W) plane.
    """
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    kernel, stride, padding, out_hw = pool_geometry(x.shape, kernel_size, stride, padding, "max_pool2d_forward")
    x = _backend.c_array(x)
    out = cp.empty(x.shape[:2] + out_hw, dtype=x.dtype)
    argmax = cp.empty(out.shape, dtype=cp.int32)
    native.max_pool2d_forward(
        x.dtype.name, x.data.ptr, out.data.ptr, argmax.data.ptr,
        _shape_tuple(x.shape, kernel, stride, padding, out_hw), cp.cuda.get_current_stream().ptr,
    )
    return out, MaxPool2dCache(tuple(x.shape), x.dtype, argmax, kernel, stride, padding)


def max_pool2d_backward_cuda(dout, cache):
    """dx (N, C, H, W) of max pooling from dout (N, C, P, Q) and the MaxPool2dCache of the forward pass."""
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    dout = _backend.c_array(dout)
    argmax = _backend.c_array(cache.argmax, dtype=cp.int32)
    if dout.shape != argmax.shape or dout.dtype != cache.dtype:
        raise ValueError(
            f"max_pool2d_backward_cuda: dout {tuple(dout.shape)} {dout.dtype} does not match the forward "
            f"output {tuple(argmax.shape)} {cache.dtype}"
        )
    dx = cp.empty(cache.x_shape, dtype=cache.dtype)
    native.max_pool2d_backward(
        dout.dtype.name, dout.data.ptr, argmax.data.ptr, dx.data.ptr,
        _shape_tuple(cache.x_shape, cache.kernel_size, cache.stride, cache.padding, tuple(argmax.shape[2:])),
        cp.cuda.get_current_stream().ptr,
    )
    return dx


def avg_pool2d_forward_cuda(x, kernel_size, stride=None, padding=0):
    """Average pooling of a CuPy array x (N, C, H, W) (zero padding counts in the mean).

    Returns:
        (out, cache): out (N, C, P, Q) of x's dtype; cache an AvgPool2dCache.
    """
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    kernel, stride, padding, out_hw = pool_geometry(x.shape, kernel_size, stride, padding, "avg_pool2d_forward")
    x = _backend.c_array(x)
    out = cp.empty(x.shape[:2] + out_hw, dtype=x.dtype)
    native.avg_pool2d_forward(
        x.dtype.name, x.data.ptr, out.data.ptr, _shape_tuple(x.shape, kernel, stride, padding, out_hw),
        cp.cuda.get_current_stream().ptr,
    )
    return out, AvgPool2dCache(tuple(x.shape), x.dtype, True, kernel, stride, padding)


def avg_pool2d_backward_cuda(dout, cache):
    """dx (N, C, H, W) of average pooling from dout (N, C, P, Q) and the AvgPool2dCache of the forward pass."""
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    _, _, _, out_hw = pool_geometry(cache.x_shape, cache.kernel_size, cache.stride, cache.padding)
    dout = _backend.c_array(dout)
    if tuple(dout.shape) != tuple(cache.x_shape[:2]) + out_hw or dout.dtype != cache.dtype:
        raise ValueError(
            f"avg_pool2d_backward_cuda: dout {tuple(dout.shape)} {dout.dtype} does not match the forward "
            f"output {tuple(cache.x_shape[:2]) + out_hw} {cache.dtype}"
        )
    dx = cp.empty(cache.x_shape, dtype=cache.dtype)
    native.avg_pool2d_backward(
        dout.dtype.name, dout.data.ptr, dx.data.ptr,
        _shape_tuple(cache.x_shape, cache.kernel_size, cache.stride, cache.padding, out_hw),
        cp.cuda.get_current_stream().ptr,
    )
    return dx
