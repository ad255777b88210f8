"""Helpers for checking gradients and comparing implementations (used by the tests).

    numerical_gradient(f, x)        central differences of a scalar function f at x (float64)
    assert_close(actual, expected)  |actual - expected| <= atol + rtol * |expected|, elementwise,
                                    with the worst mismatches printed when it fails
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
        lines = [f"  at {tuple(i)}: got {actual[tuple(i)]!r}, expected {expected[tuple(i)]!r}" for i in idx]
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.size} elements differ (rtol={rtol}, atol={atol}); "
            f"max abs err {np.nanmax(err):.3g}\n" + "\n".join(lines)
        )
