"""Numerical gradient checks of hand-written backward passes (central differences, float64).

    gradcheck(module_or_fn, inputs)

For a scalar probe L = sum(out * R) with a fixed random R (so every output element matters),
it compares the analytic gradients dL/d(input) and dL/d(parameter) from backward with

    dL/dz_k ~ (L(z + eps e_k) - L(z - eps e_k)) / (2 eps)      for every element k,

and raises AssertionError naming the first mismatching input or parameter. What it accepts:

    a Module          forward(*inputs) -> array or nested tuple of arrays; backward(*douts) -> dx
                      (or a tuple of input gradients, or None for integer inputs). The module is
                      deep-copied and cast to float64, so the caller's model is untouched; run it in
                      eval mode or without dropout so that forward is deterministic.
    a Loss            forward(*inputs) -> float; backward() -> d(input) (or a tuple of them).
    a pair (forward_fn, backward_fn) in the functional style: forward_fn(*inputs) -> (out, cache),
                      backward_fn(dout, cache) -> gradients aligned with the inputs (None allowed),
                      e.g. (F.conv2d_forward, F.conv2d_backward).

Float inputs are cast to float64 copies; integer inputs (labels, indices) pass through unchecked.
Keep shapes small: every element costs two forward passes.
"""
import copy

import numpy as np

from . import _backend
from .nn.loss import Loss
from .nn.module import Module
from .testing import assert_close


def _flatten(tree):
    """The arrays of a nested tuple/list structure, depth first."""
    if isinstance(tree, (tuple, list)):
        return [a for item in tree for a in _flatten(item)]
    return [tree]


def _like(tree, leaves):
    """`tree`'s structure filled with the arrays from the iterator `leaves`."""
    if isinstance(tree, (tuple, list)):
        return tuple(_like(item, leaves) for item in tree)
    return next(leaves)


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def gradcheck(module_or_fn, inputs, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Checks backward against central differences; returns True or raises AssertionError.

    Args:
        module_or_fn: a Module, a Loss, or a pair (forward_fn, backward_fn) (see the module docstring).
        inputs: one array or a tuple of arrays (NumPy or CuPy); float ones are checked.
        eps: the finite-difference step.
        rtol, atol: |analytic - numeric| <= atol + rtol * |numeric| elementwise.
        seed: seeds the random probe R.
    """
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    inputs = tuple(a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs)
    rng = np.random.default_rng(seed)

    if isinstance(module_or_fn, Module):
        target = copy.deepcopy(module_or_fn).to(dtype=np.float64)
        params = target.parameters()
    elif isinstance(module_or_fn, Loss):
        target, params = copy.deepcopy(module_or_fn), []
    elif isinstance(module_or_fn, tuple) and len(module_or_fn) == 2 and all(map(callable, module_or_fn)):
        target, params = module_or_fn, []
    else:
        raise TypeError("gradcheck: expected a Module, a Loss or a pair (forward_fn, backward_fn), "
                        f"got {type(module_or_fn).__name__}")

    probe = {}

    def run_forward():
        if isinstance(target, Module):
            target.clear_caches()
            return target.forward(*inputs)
        if isinstance(target, Loss):
            return target.forward(*inputs)
        out, cache = target[0](*inputs)
        probe["cache"] = cache
        return out

    def objective():
        out = run_forward()
        if isinstance(target, Loss):
            return float(out)
        return sum(float((o * r).sum()) for o, r in zip(_flatten(out), probe["R"]))

    out = run_forward()
    if not isinstance(target, Loss):
        xp = _backend.array_module(_flatten(out)[0])
        probe["R"] = [xp.asarray(rng.standard_normal(o.shape)) for o in _flatten(out)]

    # Analytic gradients.
    if isinstance(target, Module):
        target.zero_grad()
        out = run_forward()
        dout = _like(out, iter(probe["R"]))
        input_grads = _as_tuple(target.backward(*dout) if isinstance(out, tuple) else target.backward(dout))
    elif isinstance(target, Loss):
        input_grads = _as_tuple(target.backward())
    else:
        dout = _like(out, iter(probe["R"]))
        input_grads = _as_tuple(target[1](dout, probe["cache"]))
    analytic = {}
    for k, a in enumerate(inputs):
        if a.dtype.kind == "f" and k < len(input_grads) and input_grads[k] is not None:
            analytic[f"input {k}"] = (a, input_grads[k])
    for name, p in (target.named_parameters() if isinstance(target, Module) else []):
        analytic[f"parameter {name}"] = (p.data, p.grad.copy())

    if not analytic:
        raise ValueError("gradcheck: nothing to check (no float input with a gradient and no parameters)")
    for name, (array, grad) in analytic.items():
        numeric = _numerical_gradient(objective, array, eps)
        assert_close(grad, numeric, rtol=rtol, atol=atol, name=f"gradcheck {name}")
    return True


def _numerical_gradient(objective, array, eps):
    """Central differences of objective() with respect to `array`, perturbed in place and restored."""
    on_gpu = _backend.is_cupy_array(array)
    grad = np.zeros(array.shape, dtype=np.float64)
    flat = array.reshape(-1)
    for k in range(flat.size):
        old = flat[k].item() if on_gpu else flat[k]
        flat[k] = old + eps
        f_plus = objective()
        flat[k] = old - eps
        f_minus = objective()
        flat[k] = old
        grad.reshape(-1)[k] = (f_plus - f_minus) / (2 * eps)
    return grad
