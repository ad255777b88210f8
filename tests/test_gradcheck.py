"""fastnn.gradcheck itself: it passes correct backward passes, and it catches wrong ones."""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from fastnn import nn


class _WrongTanh(nn.Module):
    """tanh with a deliberately wrong derivative (1 - y instead of 1 - y^2)."""

    def forward(self, x):
        y = np.tanh(x)
        self._push_cache(y)
        return y

    def backward(self, dout):
        return dout * (1 - self._pop_cache())


class _ForgetsBias(nn.Linear):
    """Linear whose backward forgets the bias gradient."""

    def backward(self, dout):
        x2, x_shape = self._pop_cache()
        self.weight.grad += x2.T @ dout
        return dout @ self.weight.data.T


def test_catches_a_wrong_input_gradient(rng):
    with pytest.raises(AssertionError, match="input 0"):
        fastnn.gradcheck(_WrongTanh(), rng.standard_normal((2, 3)))


def test_catches_a_missing_parameter_gradient(rng):
    with pytest.raises(AssertionError, match="parameter bias"):
        fastnn.gradcheck(_ForgetsBias(3, 2), rng.standard_normal((4, 3)))


def test_functional_pair(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    assert fastnn.gradcheck((lambda x, w, b: F.conv2d_forward(x, w, b, stride=2, padding=1), F.conv2d_backward),
                            (x, w, b))


def test_does_not_touch_the_callers_module(rng):
    layer = nn.Linear(3, 2)
    before = layer.weight.data.copy()
    fastnn.gradcheck(layer, rng.standard_normal((2, 3)))
    assert layer.weight.data.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, before)
    assert not layer.weight.grad.any()


def test_loss_with_three_inputs(rng):
    assert fastnn.gradcheck(nn.TripletLoss(2.0), tuple(rng.standard_normal((3, 2)) for _ in range(3)))


def test_bad_target():
    with pytest.raises(TypeError):
        fastnn.gradcheck(np.tanh, np.zeros(3))
