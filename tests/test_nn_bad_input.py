"""Bad input to the layers must fail loudly: a backward pass takes only a dout of exactly the shape
its forward returned (TypeError for a non-array, ValueError for any other shape, before any gradient
is touched), and constructors refuse NaN, inf and out-of-range hyperparameters."""
import math

import numpy as np
import pytest

import fastnn.nn as nn


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# name -> (make the layer, make its input on the array module xp)
LAYERS = {
    "Linear": (lambda: nn.Linear(4, 3), lambda r: _f32(r, 5, 4)),
    "Linear3d": (lambda: nn.Linear(4, 3), lambda r: _f32(r, 2, 5, 4)),
    "Maxout": (lambda: nn.Maxout(4, 3), lambda r: _f32(r, 5, 4)),
    "Flatten": (nn.Flatten, lambda r: _f32(r, 2, 3, 4)),
    "ReLU": (nn.ReLU, lambda r: _f32(r, 3, 4)),
    "LeakyReLU": (nn.LeakyReLU, lambda r: _f32(r, 3, 4)),
    "PReLU": (lambda: nn.PReLU(3), lambda r: _f32(r, 2, 3, 4)),
    "ELU": (nn.ELU, lambda r: _f32(r, 3, 4)),
    "SELU": (nn.SELU, lambda r: _f32(r, 3, 4)),
    "GELU": (nn.GELU, lambda r: _f32(r, 3, 4)),
    "Sigmoid": (nn.Sigmoid, lambda r: _f32(r, 3, 4)),
    "Tanh": (nn.Tanh, lambda r: _f32(r, 3, 4)),
    "Softmax": (nn.Softmax, lambda r: _f32(r, 3, 4)),
    "Dropout": (lambda: nn.Dropout(0.5, seed=0), lambda r: _f32(r, 3, 4)),
    "Dropout0": (lambda: nn.Dropout(0.0), lambda r: _f32(r, 3, 4)),
    "LayerNorm": (lambda: nn.LayerNorm(4), lambda r: _f32(r, 3, 4)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4), lambda r: _f32(r, 3, 4)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2), lambda r: _f32(r, 2, 2, 4, 3)),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3), lambda r: _f32(r, 2, 2, 5, 6)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), lambda r: _f32(r, 2, 2, 3, 4)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), lambda r: _f32(r, 2, 3, 4, 6)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), lambda r: _f32(r, 2, 3, 4, 6)),
    "Embedding": (lambda: nn.Embedding(10, 4), lambda r: np.array([[1, 2, 3], [4, 4, 0]])),
    "MultiHeadAttention": (lambda: nn.MultiHeadAttention(8, 2), lambda r: _f32(r, 2, 5, 8)),
    "PositionalEncoding": (lambda: nn.PositionalEncoding(8), lambda r: _f32(r, 2, 5, 8)),
    "Sequential": (lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU()), lambda r: _f32(r, 5, 4)),
    "SequentialCNN": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                            nn.Flatten(), nn.Linear(32, 3)), lambda r: _f32(r, 2, 1, 8, 8)),
    "Residual": (lambda: nn.Residual(nn.Tanh()), lambda r: _f32(r, 3, 4)),
    "Concat": (lambda: nn.Concat(nn.Tanh(), nn.Linear(4, 2), axis=-1), lambda r: _f32(r, 3, 4)),
    "RNN": (lambda: nn.RNN(4, 5), lambda r: _f32(r, 2, 3, 4)),
    "GRU": (lambda: nn.GRU(4, 5), lambda r: _f32(r, 2, 3, 4)),
    "LSTM": (lambda: nn.LSTM(4, 5), lambda r: _f32(r, 2, 3, 4)),
    "RNN2": (lambda: nn.RNN(4, 5, num_layers=2), lambda r: _f32(r, 2, 3, 4)),
}


def _wrong_shapes(shape):
    """Shapes a careless caller might pass: same element count, broadcastable, or truncatable."""
    size = math.prod(shape)
    yield (size,)                                   # flattened
    yield shape[::-1] if len(set(shape)) > 1 else shape + (1,)   # transposed
    yield (1,) + shape[1:]                          # broadcast over the batch
    yield shape[:-1] + (1,)                         # broadcast over the last axis
    yield shape[:-1] + (shape[-1] + 2,)             # too long: would be truncated
    yield shape[:1] + (shape[1] + 4,) + shape[2:]   # more steps / rows on axis 1
    yield shape + (1,)                              # an extra axis


def _forward(name, rng):
    make, make_x = LAYERS[name]
    layer = make()
    y = layer.forward(make_x(rng))
    return layer, (y[0] if isinstance(y, tuple) else y)


def _grads(layer):
    return [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_backward_refuses_dout_of_another_shape(name, rng):
    for bad in _wrong_shapes(_forward(name, rng)[1].shape):
        layer, y = _forward(name, rng)
        before = _grads(layer)
        with pytest.raises(ValueError, match="shape"):
            layer.backward(np.ones(bad, np.float32))
        for g0, g in zip(before, _grads(layer)):
            np.testing.assert_array_equal(g, g0)  # refused before any gradient accumulated
    layer, y = _forward(name, rng)
    layer.backward(np.asfortranarray(np.ones_like(y)))  # the exact shape, any strides, still works


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("bad", [None, [[1.0]], 1.0], ids=["None", "list", "float"])
def test_backward_refuses_non_array_dout(name, bad, rng):
    layer, _ = _forward(name, rng)
    with pytest.raises(TypeError):
        layer.backward(bad)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.bool_, np.complex64])
def test_backward_refuses_dout_of_another_dtype(name, dtype, rng):
    # A float64 dout (np.ones(y.shape) is one) must not turn a float32 model's gradients float64
    # layer by layer, nor fail halfway through a Sequential after the last layers accumulated.
    layer, y = _forward(name, rng)
    before = _grads(layer)
    with pytest.raises(TypeError, match="float32"):
        layer.backward(np.ones(y.shape, dtype))
    for g0, g in zip(before, _grads(layer)):
        np.testing.assert_array_equal(g, g0)


def test_backward_dtype_message_names_the_layer(rng):
    layer, y = _forward("Linear", rng)
    with pytest.raises(TypeError, match=r"Linear.backward: dout is float64 but the forward output was float32"):
        layer.backward(np.ones(y.shape))


def test_linear_transposed_dout_is_not_used(rng):
    # The fuzzed case: a (3, 5) dout for a (5, 3) output was reshaped and gave a wrong weight.grad.
    layer, y = _forward("Linear", rng)
    with pytest.raises(ValueError, match=r"Linear.backward: dout must have the shape of the forward output "
                                         r"\(5, 3\), got \(3, 5\)"):
        layer.backward(np.ones(y.shape[::-1], np.float32))


@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
def test_recurrent_dhs_must_match_hs(cls):
    layer = cls(4, 5)
    for bad in [(2, 7, 5), (1, 3, 5), (2, 3, 1), (30,)]:
        layer.forward(np.ones((2, 3, 4), np.float32))
        with pytest.raises(ValueError, match=rf"{cls.__name__}.backward: dhs .*\(2, 3, 5\)"):
            layer.backward(np.ones(bad, np.float32))


def test_backward_before_forward_is_a_clear_error():
    for layer in (nn.PositionalEncoding(8), nn.Flatten(), nn.RNN(4, 5), nn.Concat(nn.Tanh())):
        with pytest.raises(RuntimeError, match="backward called more times than forward"):
            layer.backward(np.ones((2, 5, 8), np.float32))


@pytest.mark.parametrize("idx_shape", [(0,), (2, 0), (0, 3)])
def test_embedding_empty_batch(idx_shape):
    layer = nn.Embedding(10, 4)
    y = layer.forward(np.zeros(idx_shape, np.int64))
    assert y.shape == idx_shape + (4,)
    assert layer.backward(np.ones_like(y)) is None
    assert not layer.weight.grad.any()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("make", [
    lambda: nn.LayerNorm(8, eps=-1), lambda: nn.LayerNorm(8, eps=0), lambda: nn.LayerNorm(8, eps=NAN),
    lambda: nn.LayerNorm(8, eps=INF), lambda: nn.LeakyReLU(NAN), lambda: nn.LeakyReLU(-INF),
    lambda: nn.ELU(alpha=NAN), lambda: nn.ELU(alpha=INF), lambda: nn.PReLU(init=NAN),
    lambda: nn.PReLU(init=INF), lambda: nn.PReLU(num_parameters=0), lambda: nn.BatchNorm1d(4, eps=NAN),
    lambda: nn.BatchNorm2d(4, eps=INF), lambda: nn.HuberLoss(delta=NAN), lambda: nn.HuberLoss(delta=INF),
    lambda: nn.TripletLoss(margin=NAN), lambda: nn.TripletLoss(margin=INF),
], ids=["LayerNorm-eps-neg", "LayerNorm-eps-0", "LayerNorm-eps-nan", "LayerNorm-eps-inf", "LeakyReLU-nan",
        "LeakyReLU-inf", "ELU-nan", "ELU-inf", "PReLU-nan", "PReLU-inf", "PReLU-0-params", "BatchNorm1d-eps-nan",
        "BatchNorm2d-eps-inf", "Huber-nan", "Huber-inf", "Triplet-nan", "Triplet-inf"])
def test_constructor_refuses_bad_hyperparameter(make):
    with pytest.raises(ValueError, match="must be"):
        make()


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.Linear("4", 3), TypeError, "Linear: in_features must be an int, got str"),
    (lambda: nn.Linear(4, 3.5), TypeError, "Linear: out_features must be an int, got float 3.5"),
    (lambda: nn.Linear(True, 3), TypeError, "Linear: in_features must be an int, got bool"),
    (lambda: nn.Linear(0, 3), ValueError, "Linear: in_features must be >= 1, got 0"),
    (lambda: nn.BatchNorm2d(3.5), TypeError, "BatchNorm2d: num_features must be an int"),
    (lambda: nn.LayerNorm(4.7), TypeError, "LayerNorm: normalized_shape .* must be an int"),
    (lambda: nn.PReLU(2.7), TypeError, "PReLU: num_parameters must be an int"),
    (lambda: nn.Embedding(10, 0), ValueError, "Embedding: embedding_dim must be >= 1"),
    (lambda: nn.MultiHeadAttention(8.0, 2), TypeError, "MultiHeadAttention: embed_dim must be an int"),
    (lambda: nn.GRU(4, 5, num_layers=1.5), TypeError, "GRU: num_layers must be an int"),
    (lambda: nn.Maxout(4, 3, pieces=0), ValueError, "Maxout: pieces must be >= 1"),
    (lambda: nn.Conv2d(1, 2, 3, padding=-1), ValueError, r"Conv2d: padding: every value must be at least 0"),
    (lambda: nn.Conv2d(1, 2, 3, stride=(1, 0)), ValueError, r"Conv2d: stride: every value must be at least 1"),
    (lambda: nn.Conv2d(1, 2, {3, 2}), TypeError, r"Conv2d: kernel_size: expected an int or a pair"),
    (lambda: nn.ConvTranspose2d(1, 2, 3, output_padding=-1), ValueError, "output_padding: every value"),
    (lambda: nn.MaxPool2d(0), ValueError, "MaxPool2d: kernel_size: every value must be at least 1"),
    (lambda: nn.AvgPool2d(2, padding=2), ValueError, "AvgPool2d: padding .* at most half"),
    (lambda: nn.MaxPool2d({3, 2}), TypeError, "MaxPool2d: kernel_size: expected an int or a pair"),
    (lambda: nn.MaxPool2d(np.array([2, 3])), TypeError, "kernel_size: expected an int or a pair"),
])
def test_constructor_refuses_bad_sizes(make, error, match):
    # Each of these used to construct (truncating 4.7 to 4, accepting a set whose order is arbitrary)
    # or fail with a message from NumPy or Python that named no argument.
    with pytest.raises(error, match=match):
        make()


def test_sizes_accept_numpy_integers_and_pytorch_spellings():
    assert nn.Linear(np.int64(4), 3).weight.shape == (4, 3)
    assert nn.LayerNorm((4,)).normalized_shape == 4
    assert nn.MaxPool2d([2, 3]).forward(np.ones((1, 1, 4, 6), np.float32)).shape == (1, 1, 2, 2)


@pytest.mark.parametrize("layer, x", [
    (lambda: nn.Linear(4, 3), np.ones((), np.float32)),
    (lambda: nn.LayerNorm(4), np.ones((), np.float32)),
    (nn.Flatten, np.ones((), np.float32)),
    (nn.Flatten, [[1.0]]),
    (lambda: nn.MultiHeadAttention(4, 2), np.zeros((2, 0, 4), np.float32)),
])
def test_degenerate_inputs_are_clear_errors(layer, x):
    with pytest.raises((ValueError, TypeError), match=r"^(Linear|LayerNorm|Flatten|MultiHeadAttention): "):
        layer().forward(x)


def test_hyperparameter_message_names_argument_and_value():
    with pytest.raises(ValueError, match=r"LayerNorm: eps must be finite and > 0, got -1"):
        nn.LayerNorm(8, eps=-1)
    with pytest.raises(TypeError, match="LeakyReLU: negative_slope must be a real number, got str"):
        nn.LeakyReLU("0.1")


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["Linear", "ReLU", "Embedding", "GRU", "Dropout", "LayerNorm", "Flatten", "LeakyReLU",
                                  "PositionalEncoding", "Concat"])
def test_backward_checks_cupy_dout(name, rng):
    cp = pytest.importorskip("cupy")
    make, make_x = LAYERS[name]
    layer = make().to("cuda")
    y = layer.forward(cp.asarray(make_x(rng)))
    y = y[0] if isinstance(y, tuple) else y
    with pytest.raises(ValueError, match="shape"):
        layer.backward(cp.ones((1,) + y.shape[1:], y.dtype))
    y = layer.forward(cp.asarray(make_x(rng)))
    y = y[0] if isinstance(y, tuple) else y
    with pytest.raises(TypeError, match="NumPy or all CuPy"):
        layer.backward(np.ones(y.shape, y.dtype))
    y = layer.forward(cp.asarray(make_x(rng)))
    y = y[0] if isinstance(y, tuple) else y
    layer.backward(cp.ones_like(y))


def test_to_cuda_without_cupy_says_how_to_get_it():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with pytest.raises(RuntimeError, match=r"to\('cuda'\) needs CuPy: pip install 'fastnn\[cuda\]'"):
        model.to("cuda")
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())


def test_concat_branches_of_other_shapes():
    concat = nn.Concat(nn.MaxPool2d(2), nn.Conv2d(2, 3, 1))  # 2x3 against 4x6 spatially
    with pytest.raises(ValueError, match=r"Concat: branch 1 returned shape \(1, 3, 4, 6\) and branch 0 "
                                         r"\(1, 2, 2, 3\); they may differ only on axis 1"):
        concat.forward(np.ones((1, 2, 4, 6), np.float32))
