"""2-D max and average pooling, written as the lecture writes them (NumPy; float64-capable). The oracle.

Shapes: x (N, C, H, W), window (kh, kw), stride (sh, sw), padding (ph, pw);
    Ho = (H + 2 ph - kh) // sh + 1,   Wo = (W + 2 pw - kw) // sw + 1
    window(n, c, i, j) = xpad[n, c, i*sh : i*sh + kh, j*sw : j*sw + kw]

Max pooling pads with -inf (padding never wins); avg pooling pads with zeros, which count in the mean:
    max:  out[n,c,i,j] = max window(n,c,i,j)            dx[argmax] += dout[n,c,i,j]
    avg:  out[n,c,i,j] = sum window(n,c,i,j) / (kh kw)   dx[window] += dout[n,c,i,j] / (kh kw)
The argmax is the first maximum of the window in row-major order (np.argmax's rule).
"""
import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def _geometry(x_shape, kernel_size, stride, padding):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    _, _, h, w = x_shape
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    return (kh, kw), (sh, sw), (ph, pw), (ho, wo)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = _geometry(x.shape, kernel_size, stride, padding)
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    out = np.empty((n, c, ho, wo), dtype=x.dtype)
    argmax = np.empty((n, c, ho, wo), dtype=np.int64)  # flat index into the unpadded (H, W) plane
    for i in range(ho):
        for j in range(wo):
            window = xpad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, c, kh * kw)
            k = window.argmax(axis=2)
            out[:, :, i, j] = np.take_along_axis(window, k[:, :, None], axis=2)[:, :, 0]
            row = i * sh + k // kw - ph
            col = j * sw + k % kw - pw
            argmax[:, :, i, j] = row * w + col
    return out, (x.shape, argmax)


def max_pool2d_backward(dout, cache):
    x_shape, argmax = cache
    n, c, h, w = x_shape
    dx = np.zeros((n, c, h * w), dtype=dout.dtype)
    # np.add.at accumulates when several windows share one argmax (overlapping windows).
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            np.add.at(dx, (nn, cc, argmax[:, :, i, j]), dout[:, :, i, j])
    return dx.reshape(x_shape)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0):
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = _geometry(x.shape, kernel_size, stride, padding)
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.empty((n, c, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = xpad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].sum(axis=(2, 3)) / (kh * kw)
    return out, (x.shape, (kh, kw), (sh, sw), (ph, pw))


def avg_pool2d_backward(dout, cache):
    x_shape, (kh, kw), (sh, sw), (ph, pw) = cache
    n, c, h, w = x_shape
    dxpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dxpad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += dout[:, :, i, j, None, None] / (kh * kw)
    return dxpad[:, :, ph:ph + h, pw:pw + w]
