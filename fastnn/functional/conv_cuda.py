"""2-D convolution on CuPy arrays: the fastnn._cuda implicit-GEMM kernels (cuda/conv2d.cu).

    out[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] x[n, c, p*sh - ph + r, q*sw - pw + s]
    dx[n,c,h,v]  = sum_{k,r,s} w[k,c,r,s] dout[n, k, (h + ph - r)/sh, (v + pw - s)/sw]
                   (over the taps where both divisions are exact and land inside the output)
    dw[k,c,r,s]  = sum_{n,p,q} dout[n,k,p,q] x[n, c, p*sh - ph + r, q*sw - pw + s]
    db[k]        = sum_{n,p,q} dout[n,k,p,q]

fastnn.functional.conv2d_forward / conv2d_backward validate their arguments and call these for
CuPy input; they can also be called directly with arguments that already satisfy the contract.
Taps in the zero padding read as zero. dw is reduced in fixed slices summed in a fixed order (no
atomics), so the same inputs give bit-identical gradients on every run. Nothing here synchronises
the device: everything is queued on CuPy's current stream.
"""
from .. import _backend
from ._checks import int_pair
from .conv import Conv2dCache, conv2d_output_shape


def _shape_tuple(x_shape, w_shape, stride, padding, out_shape):
    n, c, h, w = x_shape
    k, _, r, s = w_shape
    return (n, c, h, w, k, r, s, stride[0], stride[1], padding[0], padding[1], out_shape[2], out_shape[3])


def conv2d_forward_cuda(x, w, b=None, stride=1, padding=0):
    """out = conv2d(x, w) + b on the GPU (see the module docstring).

    Args:
        x: CuPy float32/float64 array (N, C, H, W); w: (K, C, R, S); b: (K,) or None; one dtype.
        stride: an int or a pair (sh, sw) >= 1; padding: an int or a pair (ph, pw) >= 0.

    Returns:
        (out, cache): out (N, K, P, Q) CuPy array of x's dtype; cache a Conv2dCache holding the
        C-contiguous x and w that conv2d_backward_cuda needs.
    """
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    stride = int_pair("stride", stride, 1)
    padding = int_pair("padding", padding, 0)
    x = _backend.c_array(x)
    w = _backend.c_array(w)
    bias_ptr = 0
    if b is not None:
        b = _backend.c_array(b)
        bias_ptr = b.data.ptr
    out_shape = conv2d_output_shape(x.shape, w.shape, stride, padding)
    out = cp.empty(out_shape, dtype=x.dtype)
    native.conv2d_forward(
        x.dtype.name, x.data.ptr, w.data.ptr, bias_ptr, out.data.ptr,
        _shape_tuple(x.shape, w.shape, stride, padding, out_shape), cp.cuda.get_current_stream().ptr,
    )
    return out, Conv2dCache(x, w, b is not None, stride, padding)


def conv2d_backward_cuda(dout, cache):
    """(dx, dw, db) of conv2d_forward_cuda's output on the GPU; db is None when there was no bias.

    Args:
        dout: CuPy array (N, K, P, Q) of the forward input's dtype; any strides.
        cache: the Conv2dCache from conv2d_forward_cuda (or conv2d_forward on CuPy input).

    Returns:
        dx (N, C, H, W), dw (K, C, R, S), db (K,) or None: CuPy arrays of x's dtype.
    """
    cp = _backend.cupy_module()
    native = _backend.require_cuda_module()
    x, w, has_bias, stride, padding = cache
    dout = _backend.c_array(dout)
    out_shape = conv2d_output_shape(x.shape, w.shape, stride, padding)
    if tuple(dout.shape) != out_shape:
        raise ValueError(f"conv2d_backward_cuda: dout has shape {tuple(dout.shape)}, expected {out_shape}")
    shape = _shape_tuple(x.shape, w.shape, stride, padding, out_shape)
    stream = cp.cuda.get_current_stream().ptr
    dtype = x.dtype.name

    dx = cp.empty_like(x)
    native.conv2d_backward_data(dtype, dout.data.ptr, w.data.ptr, dx.data.ptr, shape, stream)

    dw = cp.empty_like(w)
    db = cp.empty(w.shape[0], dtype=x.dtype) if has_bias else None
    # Partial sums of dw's reduction slices and of db's image chunks, added in a fixed order.
    scratch = cp.empty(native.conv2d_backward_weight_scratch(shape), dtype=x.dtype)
    native.conv2d_backward_weight(
        dtype, dout.data.ptr, x.data.ptr, dw.data.ptr, 0 if db is None else db.data.ptr,
        scratch.data.ptr, shape, stream,
    )
    return dx, dw, db
