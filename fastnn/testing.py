"""Helpers for checking gradients and comparing implementations (used by the tests).

    numerical_gradient(f, x)        central differences of a scalar function f at x (float64)
    assert_close(actual, expected)  |actual - expected| <= atol + rtol * |expected|, elementwise,
                                    with the worst mismatches printed when it fails
    to_torch_lstm(Wx, Wh, b, ...)   our LSTM weights copied into PyTorch's parameters
"""
import numpy as np


def numerical_gradient(f, x, eps=1e-6):
    """d f / d x by central differences: (f(x + eps e_k) - f(x - eps e_k)) / (2 eps) for every k.

    f takes no arguments and reads x, which is perturbed in place and restored.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat_x = x.reshape(-1)
    flat_g = grad.reshape(-1)
    for k in range(flat_x.size):
        old = flat_x[k]
        flat_x[k] = old + eps
        f_plus = float(f())
        flat_x[k] = old - eps
        f_minus = float(f())
        flat_x[k] = old
        flat_g[k] = (f_plus - f_minus) / (2 * eps)
    return grad


def to_numpy(a):
    if type(a).__module__.split(".", 1)[0] == "cupy":
        return a.get()
    return np.asarray(a)


def assert_close(actual, expected, rtol=1e-5, atol=1e-6, name="value"):
    """Elementwise |actual - expected| <= atol + rtol * |expected|; prints the first mismatches."""
    actual = to_numpy(actual).astype(np.float64)
    expected = to_numpy(expected).astype(np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} != expected {expected.shape}")
    err = np.abs(actual - expected)
    bound = atol + rtol * np.abs(expected)
    bad = ~(err <= bound)
    if bad.any():
        idx = np.argwhere(bad)[:5]
        lines = [f"  at {tuple(int(k) for k in i)}: got {float(actual[tuple(i)])!r}, "
                 f"expected {float(expected[tuple(i)])!r}" for i in idx]  # plain numbers, not np.float64(...)
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.size} elements differ (rtol={rtol}, atol={atol}); "
            f"max abs err {np.nanmax(err):.3g}\n" + "\n".join(lines)
        )


def torch_gate_order(hidden):
    """Indices taking PyTorch's (i, f, g, o) 4H axis from ours (i, f, o, g): theirs = ours[..., order];
    np.argsort(order) goes back."""
    return np.concatenate([np.arange(0, 2 * hidden), np.arange(3 * hidden, 4 * hidden), np.arange(2 * hidden, 3 * hidden)])


def to_torch_lstm(Wx, Wh, b, weight_ih, weight_hh, bias_ih, bias_hh):
    """Copies our Wx (D, 4H), Wh (H, 4H), b (4H,) into PyTorch LSTM/LSTMCell parameters: gates
    reordered, weights transposed to its (4H, in) layout, b into bias_ih and bias_hh zeroed.
    Returns the gate order (see torch_gate_order) for mapping its gradients back."""
    import torch

    order = torch_gate_order(Wh.shape[0])
    with torch.no_grad():
        for param, value in ((weight_ih, Wx[:, order].T), (weight_hh, Wh[:, order].T), (bias_ih, b[order])):
            param.copy_(torch.tensor(np.ascontiguousarray(to_numpy(value)), dtype=param.dtype, device=param.device))
        bias_hh.zero_()
    return order


def simd_paths(widest=True):
    """The CPU kernel paths this machine can run, for tests that run once per path: 'avx512' (with
    widest=True, where the CPU has it: the AVX-512 GEMM micro-kernel), 'avx2' and 'portable'. Pass
    each to fastnn._C.set_simd(name); set_simd(True) restores the default (the widest)."""
    from . import _C

    paths = ["portable"]
    if _C.cpu_supports_avx2_fma():
        paths.insert(0, "avx2")
    if widest and _C.cpu_supports_avx512():
        paths.insert(0, "avx512")
    return paths


def use_simd_path(name):
    """Body of a pytest fixture over simd_paths(): yields with the CPU kernel path `name` chosen,
    then goes back to the default (the widest)."""
    import fastnn

    from . import _C

    _C.set_simd(name)
    assert fastnn.simd() == name
    yield name
    _C.set_simd(True)
