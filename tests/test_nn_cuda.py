"""The same layers, losses and optimizers on CuPy arrays give what they give on NumPy arrays
(skipped unless fastnn.cuda_available())."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.testing import assert_close

pytestmark = pytest.mark.cuda

# One case per layer (the CPU versions are gradient-checked in test_nn_layers.py).
CASES = {
    "Linear": (lambda: nn.Linear(4, 3), (2, 4)),
    "Maxout": (lambda: nn.Maxout(4, 3, pieces=3), (3, 4)),
    "Flatten": (lambda: nn.Flatten(), (2, 3, 2)),
    "ReLU": (lambda: nn.ReLU(), (3, 5)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), (3, 5)),
    "PReLU": (lambda: nn.PReLU(3), (2, 3, 2, 2)),
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
    "Conv2d": (lambda: nn.Conv2d(3, 2, (3, 2), stride=2, padding=1), (1, 3, 7, 7)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (2, 2, 3, 3)),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 7, 7)),
    "AvgPool2d": (lambda: nn.AvgPool2d((2, 3), stride=(2, 1)), (2, 1, 4, 5)),
    "RNN": (lambda: nn.RNN(3, 4, num_layers=2), (2, 3, 3)),
    "GRU": (lambda: nn.GRU(3, 4), (2, 3, 3)),
    "LSTM": (lambda: nn.LSTM(3, 4, num_layers=2), (2, 3, 3)),
    "MultiHeadAttention_causal": (lambda: nn.MultiHeadAttention(6, 3, causal=True), (1, 4, 6)),
    "PositionalEncoding": (lambda: nn.PositionalEncoding(4), (2, 3, 4)),
    "Concat": (lambda: nn.Concat(nn.Conv2d(2, 3, 1), nn.Sequential(nn.Conv2d(2, 1, 3, padding=1), nn.ReLU())),
               (1, 2, 4, 4)),
}


@pytest.fixture(autouse=True)
def _seed():
    fastnn.init.manual_seed(0)


def _run(layer, x, dout):
    out = layer.forward(x)
    if isinstance(out, tuple):
        dx = layer.backward(dout, None)
        out = out[0]
    else:
        dx = layer.backward(dout)
    return out, dx, [p.grad for p in layer.parameters()]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_on_cupy_matches_numpy(case, dtype, rng):
    cp = pytest.importorskip("cupy")
    make, shape = CASES[case]
    cpu = make().to(dtype=dtype)
    gpu = copy.deepcopy(cpu).to("cuda")
    x = rng.standard_normal(shape).astype(dtype)
    # The output shape comes from a throwaway copy, so that both models see exactly one forward
    # pass (BatchNorm's running statistics would otherwise differ).
    out_shape = copy.deepcopy(cpu).forward(x)
    out_shape = (out_shape[0] if isinstance(out_shape, tuple) else out_shape).shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    out_c, dx_c, grads_c = _run(cpu, x, dout)
    out_g, dx_g, grads_g = _run(gpu, cp.asarray(x), cp.asarray(dout))
    assert isinstance(out_g, cp.ndarray) and out_g.dtype == dtype
    rtol, atol = (1e-9, 1e-11) if dtype == np.float64 else (2e-4, 2e-5)
    assert_close(out_g, out_c, rtol, atol, f"{case} forward")
    assert_close(dx_g, dx_c, rtol, atol, f"{case} dx")
    for gg, gc in zip(grads_g, grads_c):
        assert_close(gg, gc, rtol, atol, f"{case} parameter grad")
    for name, buf in gpu.named_buffers():
        assert_close(buf, dict(cpu.named_buffers())[name], rtol, atol, name)


def test_gradcheck_on_cupy(rng):
    cp = pytest.importorskip("cupy")
    layer = nn.Sequential(nn.Linear(3, 4), nn.Tanh()).to("cuda")
    assert fastnn.gradcheck(layer, cp.asarray(rng.standard_normal((2, 3))))


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.01, l1=0.01),
    lambda ps: optim.Momentum(ps, lr=0.1),
    lambda ps: optim.Nesterov(ps, lr=0.1, max_norm=1.0),
    lambda ps: optim.Adagrad(ps, lr=0.1),
    lambda ps: optim.RMSProp(ps, lr=0.01),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
    lambda ps: optim.AdamW(ps, lr=0.01),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_optimizer_kernels_match_numpy(make, dtype, rng):
    cp = pytest.importorskip("cupy")
    cpu_params = [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in [(5, 4), (4,), (3, 2, 2, 2)]]
    gpu_params = [nn.Parameter(cp.asarray(p.data)) for p in cpu_params]
    opt_c, opt_g = make(cpu_params), make(gpu_params)
    for _ in range(3):
        for pc, pg in zip(cpu_params, gpu_params):
            pc.grad[...] = rng.standard_normal(pc.data.shape)
            pg.grad[...] = cp.asarray(pc.grad)
        opt_c.step()
        opt_g.step()
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    for pc, pg in zip(cpu_params, gpu_params):
        assert_close(pg.data, pc.data, rtol, atol, "parameter after 3 steps")
    state_c, state_g = opt_c.state_dict(), opt_g.state_dict()
    assert list(state_c) == list(state_g)


def test_model_round_trip_between_devices(tmp_path, rng):
    cp = pytest.importorskip("cupy")
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    expected = model.eval()(x)
    model.to("cuda")
    assert all(isinstance(p.data, cp.ndarray) for p in model.parameters())
    assert_close(model(cp.asarray(x)), expected, 1e-4, 1e-5, "on the GPU")
    model.save(tmp_path / "m.npz")
    cpu_model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                              nn.Linear(2 * 4 * 4, 3)).load(tmp_path / "m.npz").eval()
    assert_close(cpu_model(x), expected, 1e-6, 1e-7, "checkpoint written from the GPU")
    model.to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())


def test_losses_on_cupy(rng):
    cp = pytest.importorskip("cupy")
    pred = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    for loss_fn, target in [(nn.MSELoss(), rng.standard_normal((5, 4))), (nn.HuberLoss(), rng.standard_normal((5, 4))),
                            (nn.BCEWithLogitsLoss(), rng.random((5, 4))), (nn.SoftmaxCrossEntropyLoss(), labels),
                            (nn.MultiClassHingeLoss(), labels), (nn.L1Loss(), rng.standard_normal((5, 4)))]:
        loss_c = loss_fn(pred, target)
        grad_c = loss_fn.backward()
        loss_g = loss_fn(cp.asarray(pred), cp.asarray(target))
        assert_close(np.array(loss_g), np.array(loss_c), 1e-10, 1e-12, type(loss_fn).__name__)
        assert_close(loss_fn.backward(), grad_c, 1e-10, 1e-12, type(loss_fn).__name__)
    # Out-of-range BCE targets are not checked on the GPU (that would synchronise): the loss is NaN.
    bce = nn.BCEWithLogitsLoss()
    bad = rng.random((5, 4))
    bad[2, 1] = 1.5
    assert np.isnan(float(bce.forward_array(cp.asarray(pred), cp.asarray(bad))))
    with pytest.raises(ValueError, match="out of range"):
        bce(cp.asarray(pred), cp.asarray(bad))


@pytest.mark.parametrize("name", ["zeros", "constant", "constant_row", "normal", "uniform", "xavier_uniform",
                                  "xavier_normal", "he_normal", "he_uniform", "lecun_normal", "orthogonal"])
@pytest.mark.parametrize("aligned", [True, False])
def test_initialisers_fill_cupy_arrays_as_numpy_ones(name, aligned):
    # A seed gives the same weights on both devices, also into a misaligned CuPy view (which CuPy's
    # own element copy would fault on) and for a constant given as an array that broadcasts.
    cp = pytest.importorskip("cupy")
    from fastnn import init
    fill = {"constant": lambda w: init.constant(w, 0.25),
            "constant_row": lambda w: init.constant(w, np.arange(5.0)),
            "normal": lambda w: init.normal(w, 0.5, 1.0)}.get(name, getattr(init, name, None))
    cpu = np.full((4, 5), 7.0, np.float32)
    if aligned:
        gpu = cp.full((4, 5), 7.0, cp.float32)
    else:
        gpu = cp.zeros(4 * 5 * 4 + 1, cp.uint8)[1:].view(cp.float32).reshape(4, 5)
    init.manual_seed(3)
    fill(cpu)
    init.manual_seed(3)
    assert fill(gpu) is gpu
    assert isinstance(gpu, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(gpu), cpu)
    if name == "constant_row":
        init.constant(gpu, cp.arange(5.0))  # a CuPy value into a CuPy array
        np.testing.assert_array_equal(cp.asnumpy(gpu), cpu)


def test_constant_moves_a_cupy_value_to_a_numpy_weight():
    cp = pytest.importorskip("cupy")
    from fastnn import init
    w = np.zeros((2, 3))
    init.constant(w, cp.asarray([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(w, [[1, 2, 3], [1, 2, 3]])


def test_optimizer_refuses_a_misaligned_cupy_parameter():
    # Its in-place update kernel would fault (a sticky CUDA error); the constructor says why instead.
    cp = pytest.importorskip("cupy")
    data = cp.zeros(4 * 3 + 1, cp.uint8)[1:].view(cp.float32).reshape(3)
    p = nn.Parameter(cp.zeros(3, cp.float32))
    p.data = data
    for make in (lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.Adam(ps)):
        with pytest.raises(ValueError, match="not aligned"):
            make([nn.Parameter(cp.ones(2, cp.float32)), p])


def test_optimizer_state_follows_the_model_to_the_gpu_and_back(rng):
    # Steps on the CPU, then model.to("cuda"), then back: the optimizer made at the start carries its
    # moments along and the run equals one that stayed on the CPU.
    cp = pytest.importorskip("cupy")
    x = rng.standard_normal((4, 3))

    def run(moves):
        fastnn.init.manual_seed(1)
        model = nn.Linear(3, 2, dtype=np.float64)
        opt = optim.Adam(model.parameters(), lr=0.1)
        for step in range(6):
            if step in moves:
                model.to(moves[step])
            xs = cp.asarray(x) if isinstance(model.weight.data, cp.ndarray) else x
            opt.zero_grad()
            y = model(xs)
            model.backward(y - 1)
            opt.step()
        model.to("cpu")
        return [p.data for p in model.parameters()], opt

    moved, opt = run({2: "cuda", 4: "cpu"})
    stayed, _ = run({})
    for a, b in zip(moved, stayed):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert all(isinstance(a, np.ndarray) for state in opt.state for a in state.values())
    state = {k: cp.asarray(v) if k.startswith("state") else v for k, v in opt.state_dict().items()}
    opt.load_state_dict(state)  # CuPy checkpoint arrays into a CPU optimizer
    assert all(isinstance(a, np.ndarray) for s in opt.state for a in s.values())
