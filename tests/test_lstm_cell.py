"""The fused LSTM cell: the NumPy reference is gradient-checked, fastnn is compared with the
reference (both SIMD paths, float32 and float64, odd sizes) and with PyTorch's LSTMCell (gates
permuted from our i, f, o, g to its i, f, g, o), and bad input is refused."""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
import fastnn.reference as R
from fastnn.testing import assert_close, numerical_gradient, to_torch_lstm

# (B, D, H): batch 1, odd sizes, hidden sizes around the 8-float vector width, and one large enough
# for the kernels to split the hidden units over threads (unevenly, with a tail). The AVX2 path takes
# each row in chunks of 64 hidden units: H = 130 ends in a chunk of 2, H = 1001's thread ranges end
# in chunks that stop mid-vector, and H = 1024 puts the gates 4 KB apart. The input gradients'
# product ([Wx; Wh] da^T, in row blocks of 6 and batch panels of 16, over reduction blocks of up to
# 1024) gets short row blocks (D + H = 20, 364), batches of 2 and 3 panels with a tail (17, 33), and
# 2 and 4 reduction blocks (4H = 1200, 4004).
SIZES = [(1, 3, 4), (2, 5, 7), (3, 1, 8), (5, 6, 9), (4, 16, 17), (7, 33, 24), (3, 10, 130), (9, 20, 1001),
         (6, 10, 1024), (33, 7, 13), (17, 64, 300)]


def _inputs(rng, b, d, h, dtype):
    scale = 1.0 / np.sqrt(d + h)
    return (
        rng.standard_normal((b, d)).astype(dtype),
        rng.standard_normal((b, h)).astype(dtype),
        rng.standard_normal((b, h)).astype(dtype),
        (rng.standard_normal((d, 4 * h)) * 2 * scale).astype(dtype),
        (rng.standard_normal((h, 4 * h)) * 2 * scale).astype(dtype),
        (rng.standard_normal(4 * h) * 0.5).astype(dtype),
    )


def test_reference_gradient():
    rng = np.random.default_rng(20)
    args = _inputs(rng, 2, 3, 4, np.float64)
    wh, wc = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))

    def loss():
        h, c, _ = R.lstm_cell_forward(*args)
        return (h * wh).sum() + (c * wc).sum()

    _, _, cache = R.lstm_cell_forward(*args)
    grads = R.lstm_cell_backward(wh, wc, cache)
    for name, arg, grad in zip(["x", "h_prev", "c_prev", "Wx", "Wh", "b"], args, grads):
        assert_close(grad, numerical_gradient(loss, arg), 1e-6, 1e-8, name=f"d{name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_matches_reference(simd, size, dtype):
    rng = np.random.default_rng(21)
    args = _inputs(rng, *size, dtype)
    h, c, cache = F.lstm_cell_forward(*args)
    ref_h, ref_c, ref_cache = R.lstm_cell_forward(*args)
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)
    assert h.dtype == c.dtype == dtype
    assert_close(h, ref_h, rtol, atol, name="h")
    assert_close(c, ref_c, rtol, atol, name="c")
    dh = rng.standard_normal(h.shape).astype(dtype)
    dc = rng.standard_normal(h.shape).astype(dtype)
    grads = F.lstm_cell_backward(dh, dc, cache)
    ref_grads = R.lstm_cell_backward(dh, dc, ref_cache)
    for name, arg, grad, ref in zip(["x", "h_prev", "c_prev", "Wx", "Wh", "b"], args, grads, ref_grads):
        assert grad.dtype == dtype and grad.shape == arg.shape
        assert_close(grad, ref, rtol, atol * 10, name=f"d{name}")


def test_none_gradients_mean_zeros(simd):
    rng = np.random.default_rng(22)
    args = _inputs(rng, 3, 5, 6, np.float64)
    h, c, cache = F.lstm_cell_forward(*args)
    dh = rng.standard_normal(h.shape)
    zeros = np.zeros_like(h)
    for got, want in [((dh, None), (dh, zeros)), ((None, dh), (zeros, dh)), ((None, None), (zeros, zeros))]:
        for a, b in zip(F.lstm_cell_backward(*got, cache), F.lstm_cell_backward(*want, cache)):
            assert_close(a, b, 0, 0, name="grad")


def test_saturated_gates_stay_finite(simd):
    # Pre-activations of +-60 overflow a naive exp(-a) in float32 on one side; the cell must not.
    rng = np.random.default_rng(23)
    x, h_prev, c_prev, wx, wh, b = _inputs(rng, 2, 3, 8, np.float32)
    b = np.tile(np.float32([60, -60, 60, -60, 60, -60, 60, -60]), 4)
    h, c, cache = F.lstm_cell_forward(x, h_prev, c_prev, wx * 0, wh * 0, b)
    ref_h, ref_c, _ = R.lstm_cell_forward(*(a.astype(np.float64) for a in (x, h_prev, c_prev, wx * 0, wh * 0, b)))
    assert_close(h, ref_h, 1e-5, 1e-6, name="h")
    assert_close(c, ref_c, 1e-5, 1e-6, name="c")
    assert all(np.isfinite(g).all() for g in F.lstm_cell_backward(np.ones_like(h), np.ones_like(c), cache))


def test_tanh_and_sigmoid_accuracy(simd):
    # Pre-activations spread over the range where the vector tanh switches from its series to the
    # exp form (|a| = 1/16), near zero (relative accuracy) and deep in saturation.
    a = np.concatenate([np.linspace(-0.2, 0.2, 801), np.geomspace(1e-6, 30, 400), -np.geomspace(1e-6, 30, 400)])
    hidden = a.size
    b = np.tile(a, 4).astype(np.float32)
    zeros = np.zeros((1, hidden), np.float32)
    h, c, cache = F.lstm_cell_forward(np.zeros((1, 1), np.float32), zeros, zeros + 0.5,
                                      np.zeros((1, 4 * hidden), np.float32), np.zeros((hidden, 4 * hidden), np.float32), b)
    sig, tanh = 1 / (1 + np.exp(-a)), np.tanh(a)
    assert_close(cache.gates[0, :hidden], sig, 1e-6, 1e-7, name="sigmoid")
    assert_close(cache.gates[0, 3 * hidden:], tanh, 1e-6, 1e-7, name="tanh")
    c_ref = sig * 0.5 + sig * tanh
    assert_close(c[0], c_ref, 1e-6, 1e-7, name="c")
    assert_close(h[0], sig * np.tanh(c_ref), 1e-6, 1e-7, name="h")


def test_non_contiguous_input(simd):
    rng = np.random.default_rng(24)
    x, h_prev, c_prev, wx, wh, b = _inputs(rng, 4, 5, 6, np.float64)
    wx_t = np.asfortranarray(wx)
    h_strided = np.repeat(h_prev, 2, axis=1)[:, ::2]
    h, c, cache = F.lstm_cell_forward(x, h_strided, c_prev, wx_t, wh, b)
    ref_h, ref_c, ref_cache = R.lstm_cell_forward(x, h_prev, c_prev, wx, wh, b)
    assert_close(h, ref_h, 1e-12, 1e-12, name="h")
    assert_close(c, ref_c, 1e-12, 1e-12, name="c")
    dh = rng.standard_normal(h.shape)
    for name, grad, ref in zip(["x", "h_prev", "c_prev", "Wx", "Wh", "b"], F.lstm_cell_backward(dh, None, cache),
                               R.lstm_cell_backward(dh, None, ref_cache)):
        assert_close(grad, ref, 1e-11, 1e-12, name=f"d{name}")


@pytest.mark.parametrize("size", [(1, 3, 4), (5, 7, 9)])
def test_lstm_cell_vs_torch(size):
    torch = pytest.importorskip("torch")
    b_, d, hid = size
    rng = np.random.default_rng(25)
    x, h_prev, c_prev, wx, wh, b = _inputs(rng, b_, d, hid, np.float64)
    h, c, cache = F.lstm_cell_forward(x, h_prev, c_prev, wx, wh, b)
    dh, dc = rng.standard_normal(h.shape), rng.standard_normal(h.shape)
    dx, dh_prev, dc_prev, dwx, dwh, db = F.lstm_cell_backward(dh, dc, cache)

    cell = torch.nn.LSTMCell(d, hid, bias=True).double()
    order = to_torch_lstm(wx, wh, b, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    xt = torch.tensor(x, requires_grad=True)
    ht = torch.tensor(h_prev, requires_grad=True)
    ct = torch.tensor(c_prev, requires_grad=True)
    h_t, c_t = cell(xt, (ht, ct))
    ((h_t * torch.tensor(dh)).sum() + (c_t * torch.tensor(dc)).sum()).backward()
    inv = np.argsort(order)  # back from PyTorch's gate order to ours
    tol = dict(rtol=1e-9, atol=1e-11)
    assert_close(h, h_t.detach().numpy(), name="h vs torch", **tol)
    assert_close(c, c_t.detach().numpy(), name="c vs torch", **tol)
    assert_close(dx, xt.grad.numpy(), name="dx vs torch", **tol)
    assert_close(dh_prev, ht.grad.numpy(), name="dh_prev vs torch", **tol)
    assert_close(dc_prev, ct.grad.numpy(), name="dc_prev vs torch", **tol)
    assert_close(dwx, cell.weight_ih.grad.numpy().T[:, inv], name="dWx vs torch", **tol)
    assert_close(dwh, cell.weight_hh.grad.numpy().T[:, inv], name="dWh vs torch", **tol)
    assert_close(db, cell.bias_ih.grad.numpy()[inv], name="db vs torch", **tol)


def test_bad_input():
    rng = np.random.default_rng(26)
    args = list(_inputs(rng, 2, 3, 4, np.float32))
    names = ["x", "h_prev", "c_prev", "Wx", "Wh", "b"]
    for k, name in enumerate(names):
        bad = list(args)
        bad[k] = args[k].astype(np.float64)
        with pytest.raises(TypeError, match="dtype"):
            F.lstm_cell_forward(*bad)
        bad[k] = args[k][..., :-1]
        with pytest.raises(ValueError):
            F.lstm_cell_forward(*bad)
        bad[k] = args[k].tolist()
        with pytest.raises(TypeError):
            F.lstm_cell_forward(*bad)
    bad = list(args)
    bad[0] = args[0][:, :, None]
    with pytest.raises(ValueError, match="dimensions"):
        F.lstm_cell_forward(*bad)
    bad = list(args)
    bad[0] = args[0].astype(np.int32)
    with pytest.raises(TypeError):
        F.lstm_cell_forward(*bad)
    bad = list(args)
    bad[1] = args[1].copy()
    bad[1][1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.lstm_cell_forward(*bad)
    h, c, cache = F.lstm_cell_forward(*args)
    with pytest.raises(ValueError, match="dh"):
        F.lstm_cell_backward(h[:1], c, cache)
    with pytest.raises(TypeError, match="dtype"):
        F.lstm_cell_backward(h, c.astype(np.float64), cache)
    with pytest.raises(TypeError, match="cache"):
        F.lstm_cell_backward(h, c, tuple(cache))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(1, 3, 4), (5, 6, 9), (9, 20, 1001)])
def test_cuda_matches_reference(size, dtype):
    if not fastnn.cuda_available():
        pytest.skip("no CUDA GPU (or CuPy, or fastnn._cuda)")
    import cupy as cp

    rng = np.random.default_rng(27)
    args = _inputs(rng, *size, dtype)
    h, c, cache = F.lstm_cell_forward(*(cp.asarray(a) for a in args))
    ref_h, ref_c, ref_cache = R.lstm_cell_forward(*args)
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)
    assert isinstance(h, cp.ndarray) and isinstance(c, cp.ndarray)
    assert_close(h, ref_h, rtol, atol, name="h")
    assert_close(c, ref_c, rtol, atol, name="c")
    dh = rng.standard_normal(h.shape).astype(dtype)
    dc = rng.standard_normal(h.shape).astype(dtype)
    grads = F.lstm_cell_backward(cp.asarray(dh), cp.asarray(dc), cache)
    for name, got, want in zip(["x", "h_prev", "c_prev", "Wx", "Wh", "b"], grads,
                               R.lstm_cell_backward(dh, dc, ref_cache)):
        assert isinstance(got, cp.ndarray)
        assert_close(got, want, rtol, atol * 10, name=f"d{name}")
