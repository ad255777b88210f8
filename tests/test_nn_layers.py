"""Every layer: gradient-checked in float64 (fastnn.gradcheck), compared with PyTorch's layer given the
same weights (forward, input gradient and parameter gradients), and fed bad input."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.testing import assert_close


@pytest.fixture(autouse=True)
def _seed():
    fastnn.init.manual_seed(0)


def _x(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ---- gradient checks ---------------------------------------------------------------------------------

GRADCHECK_CASES = {
    "Linear": (lambda: nn.Linear(4, 3), (2, 4)),
    "Linear_3d_input": (lambda: nn.Linear(3, 2, bias=False), (2, 2, 3)),
    "Maxout": (lambda: nn.Maxout(4, 3, pieces=3), (3, 4)),
    "Flatten": (lambda: nn.Flatten(), (2, 3, 2)),
    "ReLU": (lambda: nn.ReLU(), (3, 5)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), (3, 5)),
    "PReLU_shared": (lambda: nn.PReLU(), (3, 5)),
    "PReLU_per_channel": (lambda: nn.PReLU(3), (2, 3, 2, 2)),
    "ELU": (lambda: nn.ELU(0.7), (3, 5)),
    "SELU": (lambda: nn.SELU(), (3, 5)),
    "GELU": (lambda: nn.GELU(), (3, 5)),
    "Sigmoid": (lambda: nn.Sigmoid(), (3, 5)),
    "Tanh": (lambda: nn.Tanh(), (3, 5)),
    "Softmax": (lambda: nn.Softmax(axis=1), (2, 4, 3)),
    "Dropout_eval": (lambda: nn.Dropout(0.5).eval(), (3, 4)),
    "LayerNorm": (lambda: nn.LayerNorm(5), (2, 3, 5)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), (4, 3)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2), (3, 2, 3, 3)),
    "BatchNorm2d_eval": (lambda: nn.BatchNorm2d(2).eval(), (2, 2, 3, 3)),
    "Conv2d": (lambda: nn.Conv2d(3, 2, (3, 2), stride=2, padding=1), (1, 3, 7, 7)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (2, 2, 3, 3)),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 7, 7)),
    "AvgPool2d": (lambda: nn.AvgPool2d((2, 3), stride=(2, 1)), (2, 1, 4, 5)),
    "RNN": (lambda: nn.RNN(3, 4, num_layers=2), (2, 3, 3)),
    "GRU": (lambda: nn.GRU(3, 4), (2, 3, 3)),
    "LSTM": (lambda: nn.LSTM(3, 4, num_layers=2), (2, 3, 3)),
    "MultiHeadAttention": (lambda: nn.MultiHeadAttention(4, 2), (2, 3, 4)),
    "MultiHeadAttention_causal": (lambda: nn.MultiHeadAttention(6, 3, causal=True), (1, 4, 6)),
    "PositionalEncoding": (lambda: nn.PositionalEncoding(4), (2, 3, 4)),
    "Residual": (lambda: nn.Residual(nn.Sequential(nn.Linear(4, 4), nn.Tanh())), (2, 4)),
    "Concat": (lambda: nn.Concat(nn.Conv2d(2, 3, 1), nn.Sequential(nn.Conv2d(2, 1, 3, padding=1), nn.ReLU())),
               (1, 2, 4, 4)),
}


@pytest.mark.parametrize("case", sorted(GRADCHECK_CASES))
def test_layer_gradcheck(case, rng):
    make, shape = GRADCHECK_CASES[case]
    # MaxPool and ReLU kinks: random normal inputs are almost surely a distance >> eps from them.
    assert fastnn.gradcheck(make(), _x(rng, *shape))


def test_embedding_gradcheck_with_repeated_indices():
    idx = np.array([[0, 2, 2], [4, 0, 1]])
    assert fastnn.gradcheck(nn.Embedding(5, 3), (idx,))


# ---- float32 layers run in float32 -------------------------------------------------------------------

@pytest.mark.parametrize("case", ["Linear", "Conv2d", "BatchNorm2d", "LSTM", "MultiHeadAttention", "GELU"])
def test_float32_in_float32_out(case, rng):
    make, shape = GRADCHECK_CASES[case]
    layer = make()
    out = layer(_x(rng, *shape, dtype=np.float32))
    out = out[0] if isinstance(out, tuple) else out
    assert out.dtype == np.float32
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == np.float32
    for p in layer.parameters():
        assert p.grad.dtype == np.float32


# ---- PyTorch comparisons -----------------------------------------------------------------------------

def _torch_check(layer, torch_layer, x, grads, rtol=1e-7, atol=1e-9, rng=None):
    """Runs both layers on x (float64) with the same upstream gradient; compares the output, dx and
    the parameter gradients listed in grads as (fastnn Parameter, torch tensor -> numpy in our layout)."""
    torch = pytest.importorskip("torch")
    rng = rng or np.random.default_rng(5)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    out_t = torch_layer(xt)
    out_t.backward(torch.tensor(dout))
    assert_close(out, out_t.detach().numpy(), rtol, atol, "forward")
    assert_close(dx, xt.grad.numpy(), rtol, atol, "dx")
    for param, to_ours in grads:
        assert_close(param.grad, to_ours(), rtol, atol, f"grad {param.name}")


def _t(a):
    import torch

    return torch.nn.Parameter(torch.tensor(np.ascontiguousarray(a)))


def test_linear_vs_torch(rng):
    torch = pytest.importorskip("torch")
    layer = nn.Linear(5, 3).to(dtype=np.float64)
    tl = torch.nn.Linear(5, 3).double()
    tl.weight, tl.bias = _t(layer.weight.data.T), _t(layer.bias.data + 0.5)
    layer.bias.data += 0.5
    _torch_check(layer, tl, _x(rng, 4, 5), [(layer.weight, lambda: tl.weight.grad.numpy().T),
                                            (layer.bias, lambda: tl.bias.grad.numpy())])


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 0), (3, 2, 1), ((2, 3), (2, 1), (1, 0))])
def test_conv2d_vs_torch(rng, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    layer = nn.Conv2d(3, 4, kernel, stride=stride, padding=padding).to(dtype=np.float64)
    layer.bias.data[...] = rng.standard_normal(4)
    tl = torch.nn.Conv2d(3, 4, kernel, stride=stride, padding=padding).double()
    tl.weight, tl.bias = _t(layer.weight.data), _t(layer.bias.data)
    _torch_check(layer, tl, _x(rng, 2, 3, 7, 7), [(layer.weight, lambda: tl.weight.grad.numpy()),
                                                  (layer.bias, lambda: tl.bias.grad.numpy())])


def test_conv2d_without_input_grad_gives_the_same_weight_grads(rng):
    full = nn.Conv2d(3, 4, 3, padding=1).to(dtype=np.float64)
    first = nn.Conv2d(3, 4, 3, padding=1, needs_input_grad=False).to(dtype=np.float64)
    first.load_state_dict(full.state_dict())
    x, dout = _x(rng, 2, 3, 6, 5), _x(rng, 2, 4, 6, 5)
    for layer in (full, first):
        layer.zero_grad()
        layer.forward(x)
    assert full.backward(dout) is not None and first.backward(dout) is None
    assert_close(first.weight.grad, full.weight.grad, 0, 0, "dW")
    assert_close(first.bias.grad, full.bias.grad, 0, 0, "db")
    assert "needs_input_grad=False" in repr(first)


@pytest.mark.parametrize("stride,padding,output_padding", [(1, 0, 0), (2, 1, 1), (2, 0, 0), (3, 1, 2)])
def test_conv_transpose2d_vs_torch(rng, stride, padding, output_padding):
    torch = pytest.importorskip("torch")
    layer = nn.ConvTranspose2d(3, 2, 3, stride=stride, padding=padding,
                               output_padding=output_padding).to(dtype=np.float64)
    layer.bias.data[...] = rng.standard_normal(2)
    tl = torch.nn.ConvTranspose2d(3, 2, 3, stride=stride, padding=padding, output_padding=output_padding).double()
    tl.weight, tl.bias = _t(layer.weight.data), _t(layer.bias.data)
    _torch_check(layer, tl, _x(rng, 2, 3, 5, 4), [(layer.weight, lambda: tl.weight.grad.numpy()),
                                                  (layer.bias, lambda: tl.bias.grad.numpy())])


def test_conv_transpose2d_upsamples_by_the_stride(rng):
    up = nn.ConvTranspose2d(4, 2, kernel_size=4, stride=2, padding=1)
    assert up(_x(rng, 1, 4, 7, 5, dtype=np.float32)).shape == (1, 2, 14, 10)


@pytest.mark.parametrize("make_ours,make_torch", [
    (lambda: nn.MaxPool2d(3, stride=2, padding=1), "torch.nn.MaxPool2d(3, stride=2, padding=1)"),
    (lambda: nn.MaxPool2d(2), "torch.nn.MaxPool2d(2)"),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1), "torch.nn.AvgPool2d(3, stride=2, padding=1)"),
    (lambda: nn.AvgPool2d((2, 3), stride=(1, 2)), "torch.nn.AvgPool2d((2, 3), stride=(1, 2))"),
])
def test_pooling_vs_torch(rng, make_ours, make_torch):
    torch = pytest.importorskip("torch")
    _torch_check(make_ours(), eval(make_torch, {"torch": torch}), _x(rng, 2, 3, 7, 7), [])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5)])
def test_batch_norm_vs_torch(rng, shape, training):
    torch = pytest.importorskip("torch")
    cls, tcls = (nn.BatchNorm1d, torch.nn.BatchNorm1d) if len(shape) == 2 else (nn.BatchNorm2d, torch.nn.BatchNorm2d)
    layer = cls(3, momentum=0.2).to(dtype=np.float64)
    tl = tcls(3, momentum=0.2).double()
    layer.gamma.data[...] = rng.standard_normal(3)
    layer.beta.data[...] = rng.standard_normal(3)
    layer.running_mean[...] = rng.standard_normal(3)
    layer.running_var[...] = rng.random(3) + 0.5
    tl.weight, tl.bias = _t(layer.gamma.data), _t(layer.beta.data)
    tl.running_mean.copy_(torch.tensor(layer.running_mean))
    tl.running_var.copy_(torch.tensor(layer.running_var))
    layer.train(training)
    tl.train(training)
    _torch_check(layer, tl, _x(rng, *shape), [(layer.gamma, lambda: tl.weight.grad.numpy()),
                                              (layer.beta, lambda: tl.bias.grad.numpy())], rtol=1e-6, atol=1e-8)
    assert_close(layer.running_mean, tl.running_mean.numpy(), 1e-7, 1e-9, "running_mean")
    assert_close(layer.running_var, tl.running_var.numpy(), 1e-7, 1e-9, "running_var")


def test_layer_norm_vs_torch(rng):
    torch = pytest.importorskip("torch")
    layer = nn.LayerNorm(5).to(dtype=np.float64)
    layer.gamma.data[...] = rng.standard_normal(5)
    layer.beta.data[...] = rng.standard_normal(5)
    tl = torch.nn.LayerNorm(5).double()
    tl.weight, tl.bias = _t(layer.gamma.data), _t(layer.beta.data)
    _torch_check(layer, tl, _x(rng, 2, 3, 5), [(layer.gamma, lambda: tl.weight.grad.numpy()),
                                               (layer.beta, lambda: tl.bias.grad.numpy())], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("ours,theirs", [
    (lambda: nn.ReLU(), "torch.nn.ReLU()"),
    (lambda: nn.LeakyReLU(0.2), "torch.nn.LeakyReLU(0.2)"),
    (lambda: nn.ELU(0.7), "torch.nn.ELU(0.7)"),
    (lambda: nn.SELU(), "torch.nn.SELU()"),
    (lambda: nn.GELU(), "torch.nn.GELU(approximate='tanh')"),
    (lambda: nn.Sigmoid(), "torch.nn.Sigmoid()"),
    (lambda: nn.Tanh(), "torch.nn.Tanh()"),
    (lambda: nn.Softmax(axis=1), "torch.nn.Softmax(dim=1)"),
])
def test_activation_vs_torch(rng, ours, theirs):
    torch = pytest.importorskip("torch")
    _torch_check(ours(), eval(theirs, {"torch": torch}), _x(rng, 3, 4, 5) * 3, [])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_native_path_edges(dtype):
    """The CPU kernel: max(x, 0) with NaN kept, -inf to 0, the gradient masked by y > 0; a large
    array (threads), a non-contiguous one (the NumPy path) and a 1-element one agree with NumPy."""
    x = np.array([-np.inf, -2.0, -0.0, 0.0, 1e-30, 3.0, np.inf, np.nan], dtype=dtype)
    layer = nn.ReLU()
    y = layer.forward(x)
    np.testing.assert_array_equal(y, np.array([0, 0, 0, 0, 1e-30, 3, np.inf, np.nan], dtype=dtype))
    dx = layer.backward(np.arange(8, dtype=dtype))
    np.testing.assert_array_equal(dx, np.array([0, 0, 0, 0, 4, 5, 6, 0], dtype=dtype))
    rng = np.random.default_rng(3)
    for a in (rng.standard_normal((3, 70000)).astype(dtype), rng.standard_normal((6, 8)).astype(dtype)[:, ::2],
              np.array([[-1.0]], dtype)):
        d = rng.standard_normal(a.shape).astype(dtype)
        out = layer.forward(a)
        assert out.shape == a.shape and out.dtype == dtype
        np.testing.assert_array_equal(out, np.maximum(a, 0))
        np.testing.assert_array_equal(layer.backward(d), d * (a > 0))


@pytest.mark.parametrize("channels", [1, 3])
def test_prelu_vs_torch(rng, channels):
    torch = pytest.importorskip("torch")
    layer = nn.PReLU(channels).to(dtype=np.float64)
    layer.weight.data[...] = rng.random(channels)
    tl = torch.nn.PReLU(channels).double()
    tl.weight = _t(layer.weight.data)
    _torch_check(layer, tl, _x(rng, 2, 3, 4), [(layer.weight, lambda: tl.weight.grad.numpy())])


def test_embedding_vs_torch(rng):
    torch = pytest.importorskip("torch")
    layer = nn.Embedding(6, 4).to(dtype=np.float64)
    tl = torch.nn.Embedding(6, 4).double()
    tl.weight = _t(layer.weight.data)
    idx = np.array([[1, 5, 1], [0, 1, 3]])
    out = layer(idx)
    dout = rng.standard_normal(out.shape)
    assert layer.backward(dout) is None
    out_t = tl(torch.tensor(idx))
    out_t.backward(torch.tensor(dout))
    assert_close(out, out_t.detach().numpy(), name="forward")
    assert_close(layer.weight.grad, tl.weight.grad.numpy(), name="dW")


def _torch_rnn_weights(layer, tl, reorder=lambda w: w):
    """Copies our per-layer Wx (D, G H), Wh (H, G H) into PyTorch's weight_ih_l{k} (G H, D), ..."""
    for k, ours in enumerate(layer.layers):
        setattr(tl, f"weight_ih_l{k}", _t(reorder(ours.Wx.data).T))
        setattr(tl, f"weight_hh_l{k}", _t(reorder(ours.Wh.data).T))
        if hasattr(ours, "bx"):
            setattr(tl, f"bias_ih_l{k}", _t(ours.bx.data))
            setattr(tl, f"bias_hh_l{k}", _t(ours.bh.data))
        else:
            setattr(tl, f"bias_ih_l{k}", _t(reorder(ours.b.data)))
            setattr(tl, f"bias_hh_l{k}", _t(np.zeros_like(ours.b.data)))


def _ifog_to_ifgo(a):
    i, f, o, g = np.split(a, 4, axis=-1)
    return np.concatenate([i, f, g, o], axis=-1)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_recurrent_vs_torch(rng, kind):
    torch = pytest.importorskip("torch")
    n, t, d, h, layers = 2, 4, 3, 5, 2
    layer = getattr(nn, kind)(d, h, num_layers=layers).to(dtype=np.float64)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.data.shape) * 0.4
    tl = getattr(torch.nn, kind)(d, h, num_layers=layers, batch_first=True).double()
    _torch_rnn_weights(layer, tl, _ifog_to_ifgo if kind == "LSTM" else (lambda w: w))
    x = _x(rng, n, t, d)
    h0 = _x(rng, layers, n, h)
    c0 = _x(rng, layers, n, h)
    state = (h0, c0) if kind == "LSTM" else h0
    hs, final = layer.forward(x, state)
    dhs = rng.standard_normal(hs.shape)
    dfinal = tuple(rng.standard_normal(f.shape) for f in final) if kind == "LSTM" else rng.standard_normal(final.shape)
    dx = layer.backward(dhs, dfinal)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    hs_t, final_t = tl(xt, (h0t, c0t) if kind == "LSTM" else h0t)
    finals_t = final_t if kind == "LSTM" else (final_t,)
    finals = final if kind == "LSTM" else (final,)
    dfinals = dfinal if kind == "LSTM" else (dfinal,)
    torch.autograd.backward([hs_t, *finals_t], [torch.tensor(dhs), *[torch.tensor(d_) for d_ in dfinals]])
    assert_close(hs, hs_t.detach().numpy(), 1e-7, 1e-9, "hs")
    for ours, theirs in zip(finals, finals_t):
        assert_close(ours, theirs.detach().numpy(), 1e-7, 1e-9, "final state")
    assert_close(dx, xt.grad.numpy(), 1e-7, 1e-9, "dx")
    init_grads = layer.initial_state_grad if kind == "LSTM" else (layer.initial_state_grad,)
    assert_close(init_grads[0], h0t.grad.numpy(), 1e-7, 1e-9, "dh0")
    if kind == "LSTM":
        assert_close(init_grads[1], c0t.grad.numpy(), 1e-7, 1e-9, "dc0")
    reorder = _ifog_to_ifgo if kind == "LSTM" else (lambda w: w)
    for k, ours in enumerate(layer.layers):
        assert_close(reorder(ours.Wx.grad).T, getattr(tl, f"weight_ih_l{k}").grad.numpy(), 1e-7, 1e-9, "dWx")
        assert_close(reorder(ours.Wh.grad).T, getattr(tl, f"weight_hh_l{k}").grad.numpy(), 1e-7, 1e-9, "dWh")


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_vs_torch(rng, causal):
    torch = pytest.importorskip("torch")
    e, heads, n, t = 6, 3, 2, 5
    layer = nn.MultiHeadAttention(e, heads, causal=causal).to(dtype=np.float64)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.data.shape) * 0.5
    tl = torch.nn.MultiheadAttention(e, heads, batch_first=True).double()
    tl.in_proj_weight = _t(np.concatenate([layer.q_proj.weight.data.T, layer.k_proj.weight.data.T,
                                           layer.v_proj.weight.data.T]))
    tl.in_proj_bias = _t(np.concatenate([layer.q_proj.bias.data, layer.k_proj.bias.data, layer.v_proj.bias.data]))
    tl.out_proj.weight = _t(layer.out_proj.weight.data.T)
    tl.out_proj.bias = _t(layer.out_proj.bias.data)
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1) if causal else None

    def self_attention(xt):
        return tl(xt, xt, xt, attn_mask=mask, need_weights=False)[0]

    _torch_check(layer, self_attention, _x(rng, n, t, e), [
        (layer.out_proj.weight, lambda: tl.out_proj.weight.grad.numpy().T),
        (layer.q_proj.weight, lambda: tl.in_proj_weight.grad.numpy()[:e].T),
        (layer.v_proj.bias, lambda: tl.in_proj_bias.grad.numpy()[2 * e:]),
    ])


def test_causal_attention_ignores_the_future(rng):
    layer = nn.MultiHeadAttention(4, 2, causal=True).to(dtype=np.float64)
    x = _x(rng, 1, 5, 4)
    y1 = layer(x)
    x[:, 3:] += 10.0
    y2 = layer(x)
    assert_close(y2[:, :3], y1[:, :3], 1e-12, 1e-12, "outputs before the change")


def test_positional_encoding_formula():
    pe = nn.PositionalEncoding(6, max_len=10)
    y = pe(np.zeros((1, 4, 6)))
    pos, i = 3, 2  # dimension 2i = 4 and 2i + 1 = 5
    assert_close(y[0, pos, 2 * i], np.sin(pos / 10000 ** (2 * i / 6)), name="sin")
    assert_close(y[0, pos, 2 * i + 1], np.cos(pos / 10000 ** (2 * i / 6)), name="cos")


def test_maxout_is_the_max_of_its_affine_pieces(rng):
    layer = nn.Maxout(3, 2, pieces=4).to(dtype=np.float64)
    x = _x(rng, 5, 3)
    z = (x @ layer.linear.weight.data + layer.linear.bias.data).reshape(5, 2, 4)
    assert_close(layer(x), z.max(axis=-1), name="maxout")


def test_dropout_is_inverted_and_off_in_eval(rng):
    layer = nn.Dropout(0.25, seed=3)
    x = np.ones((200, 100), dtype=np.float32)
    y = layer(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    assert_close(y[kept], np.full(kept.sum(), 1 / 0.75), name="scale")
    dx = layer.backward(np.ones_like(x))
    assert_close(dx, y, name="backward uses the same mask")
    layer.eval()
    assert layer(x) is x


# ---- bad input ---------------------------------------------------------------------------------------

def test_bad_input_raises(rng):
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="last dimension"):
        lin(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="float64"):
        lin(np.zeros((2, 4)))
    with pytest.raises(TypeError):
        lin(np.zeros((2, 4), np.int32))
    with pytest.raises(TypeError):
        lin([[0.0] * 4])
    with pytest.raises(ValueError):
        nn.Conv2d(3, 2, 3)(np.zeros((1, 3, 5), np.float32))
    with pytest.raises(ValueError, match="channels"):
        nn.BatchNorm2d(3)(np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(ValueError):
        nn.MaxPool2d(3, padding=2)(np.zeros((1, 1, 6, 6), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        nn.Embedding(5, 2)(np.array([0, 5]))
    with pytest.raises(TypeError):
        nn.Embedding(5, 2)(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="multiple"):
        nn.MultiHeadAttention(5, 2)
    with pytest.raises(ValueError, match="state"):
        nn.LSTM(3, 4)(np.zeros((2, 5, 3), np.float32), (np.zeros((1, 3, 4), np.float32),) * 2)
    with pytest.raises(ValueError):
        nn.Dropout(1.0)
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="max_len"):
        nn.PositionalEncoding(4, max_len=3)(np.zeros((1, 4, 4)))
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), "relu")
    with pytest.raises(ValueError, match="block maps"):
        nn.Residual(nn.Linear(4, 3))(np.zeros((2, 4), np.float32))


def test_nan_input_is_refused_by_the_conv_layer():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nn.Conv2d(1, 1, 3)(x)


def test_non_contiguous_input_is_accepted(rng):
    layer = nn.Conv2d(2, 3, 3, padding=1).to(dtype=np.float64)
    x = _x(rng, 2, 5, 5, 2).transpose(0, 3, 1, 2)
    assert not x.flags.c_contiguous
    assert_close(layer(x), layer(np.ascontiguousarray(x)), name="strided input")
