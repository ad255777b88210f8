"""Convolution layers: Conv2d, and ConvTranspose2d built on the convolution's data gradient."""

import numpy as np

from .. import _backend, init
from .. import functional as F
from . import _checks
from .module import Module, Parameter


class Conv2d(Module):
    """2-D convolution (cross-correlation) over x (N, C, H, W) with K filters W (K, C, kh, kw):

        y[n, k, oh, ow] = b[k] + sum_{c, i, j} W[k, c, i, j] * x_pad[n, c, oh*sh + i, ow*sw + j]

    Forward and backward are F.conv2d_forward / F.conv2d_backward. Default init: W He-normal
    (variance 2 / (C kh kw), for ReLU networks), b = 0.

    needs_input_grad=False (for a network's first layer, whose input is data) skips the gradient
    with respect to x: backward then computes dW and db only and returns None, the work PyTorch
    skips for inputs that do not require grad. For LeNet-5 that is a third of the first layer's cost.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, dtype=np.float32,
                 needs_input_grad=True):
        super().__init__()
        self.needs_input_grad = bool(needs_input_grad)
        in_channels = _checks.int_at_least("Conv2d", "in_channels", in_channels)
        out_channels = _checks.int_at_least("Conv2d", "out_channels", out_channels)
        kh, kw = _checks.int_pair("Conv2d: kernel_size", kernel_size, 1)
        self.stride = _checks.int_pair("Conv2d: stride", stride, 1)
        self.padding = _checks.int_pair("Conv2d: padding", padding, 0)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.weight = init.he_normal(Parameter(np.empty((out_channels, in_channels, kh, kw), dtype), "weight"))
        self.bias = Parameter(np.zeros(out_channels, dtype), "bias") if bias else None

    def forward(self, x):
        _checks.layer_input("Conv2d", x, self.weight.data, ndim=4)
        b = None if self.bias is None else self.bias.data
        out, cache = F.conv2d_forward(x, self.weight.data, b, self.stride, self.padding)
        self._push_cache(cache)
        return out

    def backward(self, dout):
        cache = self._pop_cache()
        if self.needs_input_grad:
            dx, dw, db = F.conv2d_backward(dout, cache)
        else:
            dx = None
            dw, db = F.conv2d_backward_weight(dout, cache)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}"
                + ("" if self.needs_input_grad else ", needs_input_grad=False"))


class ConvTranspose2d(Module):
    """Transposed convolution (learned upsampling): the map whose matrix is the transpose of a
    convolution's. With W (C_in, C_out, kh, kw), y is the gradient that a convolution
    z (N, C_out, H_out, W_out) -> x (N, C_in, H, W) with filters W would send back to its input:

        y[n, o, y_pad + i, x_pad + j] += W[c, o, i, j] * x[n, c, h, w]   at y_pad = h*sh, x_pad = w*sw
        (then the padding is cropped), y += b[o]
        H_out = (H - 1) sh - 2 ph + kh + output_padding_h     (likewise W_out)

    So forward is conv2d's backward-data path and backward is a plain convolution:
        dx = conv2d(dy, W)   and   dW = the convolution's weight gradient with input dy and upstream x.
    Each direction asks for the one gradient it needs (F.conv2d_backward_data / _weight; on the GPU
    these run the fused CUDA backward and drop the other gradient).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 bias=True, dtype=np.float32):
        super().__init__()
        in_channels = _checks.int_at_least("ConvTranspose2d", "in_channels", in_channels)
        out_channels = _checks.int_at_least("ConvTranspose2d", "out_channels", out_channels)
        kh, kw = _checks.int_pair("ConvTranspose2d: kernel_size", kernel_size, 1)
        self.stride = _checks.int_pair("ConvTranspose2d: stride", stride, 1)
        self.padding = _checks.int_pair("ConvTranspose2d: padding", padding, 0)
        self.output_padding = _checks.int_pair("ConvTranspose2d: output_padding", output_padding, 0)
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than "
                             f"stride {self.stride}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        weight = np.empty((in_channels, out_channels, kh, kw), dtype)
        # Each output pixel sums over C_in * kh * kw / (sh * sw) inputs on average; He init with
        # fan_in = C_in * kh * kw (axis 0 of this layout) keeps the scale like Conv2d's.
        init.normal(weight, np.sqrt(2.0 / (in_channels * kh * kw)))
        self.weight = Parameter(weight, "weight")
        self.bias = Parameter(np.zeros(out_channels, dtype), "bias") if bias else None

    def output_shape(self, x_shape):
        n, _, h, w = x_shape
        (kh, kw), (sh, sw), (ph, pw), (oph, opw) = self.kernel_size, self.stride, self.padding, self.output_padding
        return n, self.out_channels, (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw

    def forward(self, x):
        _checks.layer_input("ConvTranspose2d", x, self.weight.data, ndim=4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"ConvTranspose2d: expected {self.in_channels} channels, got shape {tuple(x.shape)}")
        out_shape = self.output_shape(x.shape)
        if min(out_shape[2:]) < 1:
            raise ValueError(f"ConvTranspose2d: input {tuple(x.shape)} gives an empty output {out_shape}")
        xp = _backend.array_module(x)
        # The convolution z -> x whose data gradient is this layer's output; z's values never
        # enter dz, only its shape does.
        conv_cache = F.Conv2dCache(xp.zeros(out_shape, dtype=x.dtype), _backend.c_array(self.weight.data),
                                   False, self.stride, self.padding)
        y = F.conv2d_backward_data(_backend.c_array(x), conv_cache)
        if self.bias is not None:
            y += self.bias.data.reshape(1, -1, 1, 1)
        self._push_cache(x)
        return y

    def backward(self, dout):
        x = self._pop_cache()
        _checks.upstream_grad("ConvTranspose2d", dout, self.output_shape(x.shape), x)
        dx, conv_cache = F.conv2d_forward(dout, self.weight.data, None, self.stride, self.padding)
        dw, _ = F.conv2d_backward_weight(x, conv_cache)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += dout.sum(axis=(0, 2, 3))
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, output_padding={self.output_padding}")
