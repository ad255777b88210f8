"""2-D convolution (cross-correlation, as in every deep-learning library), written as the lecture
writes it (NumPy; float64-capable). The oracle the native kernels are tested against.

    x (N, C, H, W)   w (K, C, kh, kw)   b (K,) or None   stride (sh, sw)   padding (ph, pw)
    xp = x zero-padded by ph rows above and below and pw columns left and right
    OH = (H + 2 ph - kh) // sh + 1        OW = (W + 2 pw - kw) // sw + 1

    out[n, k, oh, ow] = b[k] + sum_{c, i, j} w[k, c, i, j] * xp[n, c, oh*sh + i, ow*sw + j]

    dw[k, c, i, j]    = sum_{n, oh, ow} dout[n, k, oh, ow] * xp[n, c, oh*sh + i, ow*sw + j]
    dxp[n, c, oh*sh + i, ow*sw + j] += sum_k dout[n, k, oh, ow] * w[k, c, i, j]     (then crop the padding)
    db[k]             = sum_{n, oh, ow} dout[n, k, oh, ow]

The sums over (c, i, j) are written as one loop over the kh*kw kernel offsets (i, j): for a fixed
offset the window entries xp[:, :, i::sh, j::sw] form an (N, C, OH, OW) block and the sum over c is a
tensor contraction. No input validation here: fastnn.functional.conv2d_forward does that.
"""
import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _window(xp, i, j, oh, ow, sh, sw):
    """The (N, C, OH, OW) block xp[n, c, oh*sh + i, ow*sw + j] for a fixed kernel offset (i, j)."""
    return xp[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    n, c, h, width = x.shape
    k, _, kh, kw = w.shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (width + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, k, oh, ow), dtype=np.result_type(x, w))
    for i in range(kh):
        for j in range(kw):
            # out[n, k, :, :] += sum_c w[k, c, i, j] * xp[n, c, window]
            out += np.einsum("kc,nchw->nkhw", w[:, :, i, j], _window(xp, i, j, oh, ow, sh, sw))
    if b is not None:
        out += b.reshape(1, k, 1, 1)
    return out, (x, w, b is not None, (sh, sw), (ph, pw))


def conv2d_backward(dout, cache):
    x, w, has_bias, (sh, sw), (ph, pw) = cache
    n, c, h, width = x.shape
    k, _, kh, kw = w.shape
    oh, ow = dout.shape[2], dout.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp, dtype=np.result_type(x, dout))
    dw = np.zeros_like(w, dtype=np.result_type(w, dout))
    for i in range(kh):
        for j in range(kw):
            dw[:, :, i, j] = np.einsum("nkhw,nchw->kc", dout, _window(xp, i, j, oh, ow, sh, sw))
            _window(dxp, i, j, oh, ow, sh, sw)[...] += np.einsum("nkhw,kc->nchw", dout, w[:, :, i, j])
    dx = dxp[:, :, ph : ph + h, pw : pw + width]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return np.ascontiguousarray(dx), dw, db
