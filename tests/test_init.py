"""Initialisers: the fans of each weight layout, the variances the formulas promise (measured on
large samples), orthogonality, reproducibility with a seed, and the layers' defaults."""
import numpy as np
import pytest

from fastnn import init, nn
from fastnn.nn import Parameter
from fastnn.testing import assert_close


def test_fans():
    assert init.fans((300, 200)) == (300, 200)  # Linear W (in, out)
    assert init.fans((16, 6, 5, 5)) == (150, 400)  # conv W (out, in, kh, kw)
    with pytest.raises(ValueError):
        init.fans((10,))


@pytest.mark.parametrize("fill,shape,variance", [
    (lambda w: init.he_normal(w), (400, 300), 2 / 400),
    (lambda w: init.he_uniform(w), (400, 300), 2 / 400),
    (lambda w: init.lecun_normal(w), (400, 300), 1 / 400),
    (lambda w: init.xavier_normal(w), (400, 300), 2 / 700),
    (lambda w: init.xavier_uniform(w), (400, 300), 2 / 700),
    (lambda w: init.he_normal(w), (64, 32, 3, 3), 2 / (32 * 9)),
    (lambda w: init.normal(w, std=0.3), (300, 300), 0.09),
    (lambda w: init.uniform(w, -0.5, 0.5), (300, 300), 1 / 12),
])
def test_variance(fill, shape, variance):
    init.manual_seed(0)
    w = fill(np.empty(shape, np.float32))
    assert abs(w.mean()) < 0.05 * np.sqrt(variance)
    assert w.var() == pytest.approx(variance, rel=0.03)


def test_uniform_bounds():
    init.manual_seed(1)
    w = init.xavier_uniform(np.empty((50, 70)))
    bound = np.sqrt(6 / 120)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    w = init.he_uniform(np.empty((50, 70)))
    assert np.abs(w).max() <= np.sqrt(6 / 50)


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4), (3, 2, 2, 2)])
def test_orthogonal(shape):
    init.manual_seed(2)
    w = init.orthogonal(np.empty(shape), gain=2.0).reshape(shape[0], -1)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    assert_close(gram, 4.0 * np.eye(min(rows, cols)), 1e-12, 1e-12, "W W^T = gain^2 I")


def test_constant_zeros_and_parameters():
    p = Parameter(np.ones((2, 3), np.float32))
    assert init.zeros(p) is p and not p.data.any()
    init.constant(p, 0.5)
    assert (p.data == 0.5).all()
    with pytest.raises(TypeError):
        init.normal(np.zeros(3, np.int32))
    with pytest.raises(TypeError):
        init.normal([1.0, 2.0])


def test_seed_makes_layers_reproducible():
    init.manual_seed(7)
    a = nn.Linear(5, 4)
    init.manual_seed(7)
    b = nn.Linear(5, 4)
    assert_close(a.weight.data, b.weight.data, 0, 0, "same weights")
    rng = np.random.default_rng(3)
    w1 = init.normal(np.empty(4), rng=rng)
    w2 = init.normal(np.empty(4), rng=np.random.default_rng(3))
    assert_close(w1, w2, 0, 0, "explicit rng")


def test_layer_defaults():
    init.manual_seed(4)
    lin = nn.Linear(500, 400)
    assert lin.weight.data.var() == pytest.approx(2 / 500, rel=0.03)  # He for ReLU networks
    assert not lin.bias.data.any()
    conv = nn.Conv2d(32, 64, 3)
    assert conv.weight.data.var() == pytest.approx(2 / (32 * 9), rel=0.05)
    lstm = nn.LSTM(3, 4)
    assert (lstm.layers[0].b.data[4:8] == 1.0).all() and not lstm.layers[0].b.data[:4].any()
