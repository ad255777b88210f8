"""CUDA kernels for conv2d, pooling, batch norm and the LSTM cell (fastnn._cuda).

Each op runs through the public functional API on CuPy arrays and is compared with the NumPy
reference (fastnn.reference) computed in float64 from the same values, on random and odd shapes,
in float32 and float64; with PyTorch on CUDA (TF32 off) where installed; and twice, to check that
the results are bit-identical. The tests marked `cuda` skip without a GPU (tests/conftest.py).
The launcher shape checks at the end need only the compiled module, not a GPU.
"""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
import fastnn.reference as R
from fastnn.testing import assert_close

cuda = pytest.mark.cuda
DTYPES = [np.float32, np.float64]


@pytest.fixture
def cp():
    import cupy

    return cupy


@pytest.fixture
def torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    # Compare fp32 with fp32: no TF32 in cuDNN convolutions or cuBLAS matmuls.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


def tolerance(dtype, reduction_length=1):
    """(rtol, atol) for a result that sums `reduction_length` products of O(1) values."""
    if dtype == np.float32:
        return 1e-4, 1e-5 * np.sqrt(reduction_length) + 1e-6
    return 1e-10, 1e-12 * reduction_length + 1e-13


def to64(*arrays):
    return tuple(None if a is None else np.asarray(a, dtype=np.float64) for a in arrays)


def assert_bit_identical(a, b, name):
    a, b = np.asarray(a.get()), np.asarray(b.get())
    assert a.tobytes() == b.tobytes(), f"{name}: two runs on the same inputs differ"


# ------------------------------------------------------------------------------------------- conv2d

# (x shape, w shape, stride, padding, bias): odd sizes, N=1, C=3, non-square kernels and strides,
# output widths that select each tile shape (<= 16, <= 32, > 64 channels), a reduction long enough
# that backward-weight splits it, and the LeNet first layer.
CONV_CASES = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, True),
    ((1, 1, 12, 12), (6, 1, 5, 5), 1, 0, True),
    ((2, 5, 9, 6), (7, 5, 2, 3), (2, 1), (1, 0), False),
    ((1, 2, 8, 11), (33, 2, 3, 1), (1, 2), (0, 1), True),
    ((3, 16, 6, 6), (17, 16, 3, 3), 1, 1, True),
    ((8, 8, 16, 16), (16, 8, 3, 3), 1, 1, True),
    ((2, 3, 10, 9), (70, 3, 1, 1), 3, 0, True),
    ((1, 4, 5, 5), (3, 4, 5, 5), 1, 2, False),
]


def conv_inputs(case, dtype, seed=0):
    x_shape, w_shape, stride, padding, bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b, stride, padding


def conv_on_gpu(cp, x, w, b, stride, padding, dout=None, seed=1):
    out, cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), None if b is None else cp.asarray(b), stride, padding)
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    dx, dw, db = F.conv2d_backward(cp.asarray(dout), cache)
    return out, dx, dw, db, dout


@cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_reference(cp, case, dtype):
    x, w, b, stride, padding = conv_inputs(case, dtype)
    out, dx, dw, db, dout = conv_on_gpu(cp, x, w, b, stride, padding)
    ref_out, ref_cache = R.conv2d_forward(*to64(x, w, b), stride, padding)
    ref_dx, ref_dw, ref_db = R.conv2d_backward(to64(dout)[0], ref_cache)
    k, c, kh, kw = w.shape
    n_pix = out.shape[0] * out.shape[2] * out.shape[3]
    for name, got, want, length in (("out", out, ref_out, c * kh * kw), ("dx", dx, ref_dx, k * kh * kw),
                                    ("dw", dw, ref_dw, n_pix), ("db", db, ref_db, n_pix)):
        if want is None:
            assert got is None, f"{name}: expected None without a bias"
            continue
        assert isinstance(got, cp.ndarray) and got.dtype == dtype and got.shape == want.shape, name
        assert_close(got, want, *tolerance(dtype, length), name=f"conv2d {name}")


@cuda
def test_conv2d_accepts_non_contiguous_input(cp):
    x, w, b, stride, padding = conv_inputs(CONV_CASES[0], np.float32)
    x_t = cp.asarray(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(0, 1, 3, 2)  # same values, strided
    assert not x_t.flags.c_contiguous
    out, _ = F.conv2d_forward(x_t, cp.asarray(w), cp.asarray(b), stride, padding)
    ref_out, _ = R.conv2d_forward(*to64(x, w, b), stride, padding)
    assert_close(out, ref_out, *tolerance(np.float32, 27), name="conv2d out (strided x)")


@cuda
def test_conv2d_backward_is_deterministic(cp):
    # A long reduction (N*P*Q = 8*16*16): backward-weight runs as several slices summed in order.
    assert fastnn._backend._cuda.conv2d_backward_weight_splits((8, 8, 16, 16, 16, 3, 3, 1, 1, 1, 1, 16, 16)) > 1
    x, w, b, stride, padding = conv_inputs(CONV_CASES[5], np.float32)
    first = conv_on_gpu(cp, x, w, b, stride, padding)
    second = conv_on_gpu(cp, x, w, b, stride, padding, dout=first[4])
    for name, a, b_ in zip(["out", "dx", "dw", "db"], first[:4], second[:4]):
        assert_bit_identical(a, b_, f"conv2d {name}")


@cuda
@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[3], CONV_CASES[5]])
def test_conv2d_vs_torch(cp, torch_cuda, case):
    torch = torch_cuda
    x, w, b, stride, padding = conv_inputs(case, np.float32)
    out, dx, dw, db, dout = conv_on_gpu(cp, x, w, b, stride, padding)
    tx, tw = (torch.tensor(a, device="cuda", requires_grad=True) for a in (x, w))
    tb = None if b is None else torch.tensor(b, device="cuda", requires_grad=True)
    t_out = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    t_out.backward(torch.tensor(dout, device="cuda"))
    k, c, kh, kw = w.shape
    n_pix = out.shape[0] * out.shape[2] * out.shape[3]
    checks = [("out", out, t_out, c * kh * kw), ("dx", dx, tx.grad, k * kh * kw), ("dw", dw, tw.grad, n_pix)]
    if b is not None:
        checks.append(("db", db, tb.grad, n_pix))
    for name, got, want, length in checks:
        assert_close(got, want.detach().cpu().numpy(), *tolerance(np.float32, length), name=f"conv2d {name} vs torch")


# ------------------------------------------------------------------------------------------ pooling

# (x shape, kernel_size, stride, padding): odd sizes, N=1, non-square windows, overlapping windows,
# gaps between windows, edges left over, and one plane wider than a warp.
POOL_CASES = [
    ((2, 3, 7, 7), 3, 2, 1),
    ((1, 3, 7, 7), 2, None, 0),
    ((2, 2, 9, 6), (3, 2), (2, 1), (1, 0)),
    ((1, 4, 8, 11), (2, 3), (1, 2), (1, 1)),
    ((2, 3, 10, 10), 2, 3, 0),
    ((1, 1, 5, 5), 5, 1, 2),
    ((2, 5, 33, 40), 3, 1, 1),
]
POOLS = {
    "max": (F.max_pool2d_forward, F.max_pool2d_backward, R.max_pool2d_forward, R.max_pool2d_backward),
    "avg": (F.avg_pool2d_forward, F.avg_pool2d_backward, R.avg_pool2d_forward, R.avg_pool2d_backward),
}


@cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_matches_reference(cp, kind, case, dtype):
    shape, k, s, p = case
    fwd, bwd, ref_fwd, ref_bwd = POOLS[kind]
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = fwd(cp.asarray(x), k, s, p)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = bwd(cp.asarray(dout), cache)
    ref_out, ref_cache = ref_fwd(x.astype(np.float64), k, s, p)
    ref_dx = ref_bwd(dout.astype(np.float64), ref_cache)
    assert isinstance(out, cp.ndarray) and out.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape
    rtol, atol = tolerance(dtype, 9)
    assert_close(out, ref_out, rtol, atol, name=f"{kind} pool out")
    assert_close(dx, ref_dx, rtol, atol, name=f"{kind} pool dx")
    if kind == "max":
        np.testing.assert_array_equal(cache.argmax.get(), ref_cache[1], err_msg="max pool argmax")


@cuda
def test_max_pool_ties_go_to_the_first_maximum_and_nan_propagates(cp):
    x = cp.ones((1, 1, 4, 4), dtype=cp.float32)
    out, cache = F.max_pool2d_forward(x, 3, 1, 0)
    dx = F.max_pool2d_backward(cp.ones_like(out), cache)
    expected = np.zeros((1, 1, 4, 4), np.float32)
    expected[0, 0, :2, :2] = 1.0  # each of the 2x2 windows' top-left element
    np.testing.assert_array_equal(dx.get(), expected)
    x[0, 0, 1, 1] = cp.nan
    out, _ = F.max_pool2d_forward(x, 2, 2, 0)
    assert np.isnan(out.get()[0, 0, 0, 0]) and not np.isnan(out.get()[0, 0, 1, 1])


@cuda
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_backward_is_deterministic(cp, kind):
    fwd, bwd, _, _ = POOLS[kind]
    x = cp.asarray(np.random.default_rng(3).standard_normal((4, 8, 31, 29)).astype(np.float32))
    out, cache = fwd(x, 3, 1, 1)  # overlapping windows: most inputs collect several gradients
    dout = cp.asarray(np.random.default_rng(4).standard_normal(out.shape).astype(np.float32))
    assert_bit_identical(bwd(dout, cache), bwd(dout, cache), f"{kind} pool dx")


@cuda
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", [POOL_CASES[0], POOL_CASES[3]])
def test_pool_vs_torch(cp, torch_cuda, kind, case):
    torch = torch_cuda
    shape, k, s, p = case
    fwd, bwd, _, _ = POOLS[kind]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    out, cache = fwd(cp.asarray(x), k, s, p)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = bwd(cp.asarray(dout), cache)
    tx = torch.tensor(x, device="cuda", requires_grad=True)
    stride = k if s is None else s
    if kind == "max":
        t_out = torch.nn.functional.max_pool2d(tx, k, stride, p)
    else:
        t_out = torch.nn.functional.avg_pool2d(tx, k, stride, p, count_include_pad=True)
    t_out.backward(torch.tensor(dout, device="cuda"))
    assert_close(out, t_out.detach().cpu().numpy(), 1e-5, 1e-6, name=f"{kind} pool out vs torch")
    assert_close(dx, tx.grad.cpu().numpy(), 1e-5, 1e-6, name=f"{kind} pool dx vs torch")


# --------------------------------------------------------------------------------------- batch norm

# (N, C) inputs walk columns (more than 32 channels: several channel groups; many rows: several
# chunks); (N, C, H, W) inputs walk planes (many images: one chunk per image; a plane longer than
# one block's span).
BN_SHAPES = [(7, 5), (300, 37), (1000, 3), (2, 3, 7, 7), (1, 4, 5, 5), (64, 3, 4, 4), (3, 2, 45, 50)]


def bn_inputs(shape, dtype, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (offset + 2.0 * rng.standard_normal(shape) + 0.5).astype(dtype)
    gamma = rng.standard_normal(c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    running_mean = rng.standard_normal(c).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, c).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, running_mean, running_var, dout


def bn_on_gpu(cp, x, gamma, beta, running_mean, running_var, dout, training, momentum=0.1, eps=1e-5):
    rm, rv = cp.asarray(running_mean), cp.asarray(running_var)
    out, cache = F.batch_norm_forward(cp.asarray(x), cp.asarray(gamma), cp.asarray(beta), rm, rv, training, momentum, eps)
    dx, dgamma, dbeta = F.batch_norm_backward(cp.asarray(dout), cache)
    return out, rm, rv, dx, dgamma, dbeta


@cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_matches_reference(cp, shape, training, dtype):
    x, gamma, beta, running_mean, running_var, dout = bn_inputs(shape, dtype)
    got = bn_on_gpu(cp, x, gamma, beta, running_mean, running_var, dout, training, momentum=0.3)
    ref_rm, ref_rv = to64(running_mean, running_var)
    ref_out, ref_cache = R.batch_norm_forward(*to64(x, gamma, beta), ref_rm, ref_rv, training, 0.3, 1e-5)
    ref_dx, ref_dgamma, ref_dbeta = R.batch_norm_backward(to64(dout)[0], ref_cache)
    m = x.size // shape[1]
    for name, g, want, length in zip(["out", "running_mean", "running_var", "dx", "dgamma", "dbeta"], got,
                                     (ref_out, ref_rm, ref_rv, ref_dx, ref_dgamma, ref_dbeta), (1, 1, 1, m, m, m)):
        assert g.dtype == dtype and g.shape == want.shape, name
        assert_close(g, want, *tolerance(dtype, length), name=f"batch norm {name}")


@cuda
def test_batch_norm_variance_survives_a_large_mean(cp):
    # |mean| / std = 5000: sum(x^2) - M mean^2 would cancel to nothing in float32.
    x, gamma, beta, running_mean, running_var, dout = bn_inputs((16, 4, 9, 9), np.float32, offset=1e4)
    out, rm, rv, dx, _, _ = bn_on_gpu(cp, x, gamma, beta, running_mean, running_var, dout, True)
    ref_rm, ref_rv = to64(running_mean, running_var)
    ref_out, ref_cache = R.batch_norm_forward(*to64(x, gamma, beta), ref_rm, ref_rv, True, 0.1, 1e-5)
    assert_close(rv, ref_rv, 1e-4, 1e-5, name="running_var (large mean)")
    assert_close(out, ref_out, 1e-3, 1e-3, name="out (large mean)")  # x itself carries 1e-3 rounding


@cuda
@pytest.mark.parametrize("shape", [(300, 37), (64, 3, 4, 4)])
def test_batch_norm_is_deterministic(cp, shape):
    inputs = bn_inputs(shape, np.float32)
    first = bn_on_gpu(cp, *inputs, True)
    second = bn_on_gpu(cp, *inputs, True)
    for name, a, b in zip(["out", "running_mean", "running_var", "dx", "dgamma", "dbeta"], first, second):
        assert_bit_identical(a, b, f"batch norm {name}")


@cuda
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(300, 37), (2, 3, 7, 7)])
def test_batch_norm_vs_torch(cp, torch_cuda, shape, training):
    torch = torch_cuda
    x, gamma, beta, running_mean, running_var, dout = bn_inputs(shape, np.float32)
    out, rm, rv, dx, dgamma, dbeta = bn_on_gpu(cp, x, gamma, beta, running_mean, running_var, dout, training)
    tx, tg, tb = (torch.tensor(a, device="cuda", requires_grad=True) for a in (x, gamma, beta))
    trm, trv = (torch.tensor(a, device="cuda") for a in (running_mean, running_var))
    t_out = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=training, momentum=0.1, eps=1e-5)
    t_out.backward(torch.tensor(dout, device="cuda"))
    m = x.size // shape[1]
    for name, got, want, length in (("out", out, t_out, 1), ("running_mean", rm, trm, 1), ("running_var", rv, trv, 1),
                                    ("dx", dx, tx.grad, m), ("dgamma", dgamma, tg.grad, m), ("dbeta", dbeta, tb.grad, m)):
        assert_close(got, want.detach().cpu().numpy(), *tolerance(np.float32, length), name=f"batch norm {name} vs torch")


# ---------------------------------------------------------------------------------------- LSTM cell

LSTM_SHAPES = [(1, 1, 1), (3, 5, 7), (4, 33, 65)]  # (B, D, H)


def lstm_inputs(shape, dtype, seed=0):
    batch, d, hidden = shape
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in ((batch, d), (batch, hidden), (batch, hidden))]
    arrays += [rng.standard_normal(s) / np.sqrt(d + hidden) for s in ((d, 4 * hidden), (hidden, 4 * hidden), (4 * hidden,))]
    dh, dc = rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden))
    return [a.astype(dtype) for a in arrays], dh.astype(dtype), dc.astype(dtype)


def lstm_on_gpu(cp, inputs, dh, dc):
    h, c, cache = F.lstm_cell_forward(*(cp.asarray(a) for a in inputs))
    grads = F.lstm_cell_backward(None if dh is None else cp.asarray(dh), None if dc is None else cp.asarray(dc), cache)
    return (h, c) + tuple(grads)


LSTM_NAMES = ["h", "c", "dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"]


@cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("upstream", ["dh+dc", "dh only", "dc only"])
@pytest.mark.parametrize("shape", LSTM_SHAPES)
def test_lstm_cell_matches_reference(cp, shape, upstream, dtype):
    inputs, dh, dc = lstm_inputs(shape, dtype)
    dh = None if upstream == "dc only" else dh
    dc = None if upstream == "dh only" else dc
    got = lstm_on_gpu(cp, inputs, dh, dc)
    h, c, ref_cache = R.lstm_cell_forward(*to64(*inputs))
    want = (h, c) + tuple(R.lstm_cell_backward(*to64(dh, dc), ref_cache))
    batch, d, hidden = shape
    lengths = (d + hidden, d + hidden, 4 * hidden, 4 * hidden, 1, batch, batch, batch)
    for name, g, w, length in zip(LSTM_NAMES, got, want, lengths):
        assert isinstance(g, cp.ndarray) and g.dtype == dtype and g.shape == w.shape, name
        assert_close(g, w, *tolerance(dtype, length), name=f"lstm {name}")


@cuda
def test_lstm_cell_is_deterministic(cp):
    inputs, dh, dc = lstm_inputs((64, 48, 96), np.float32)
    for name, a, b in zip(LSTM_NAMES, lstm_on_gpu(cp, inputs, dh, dc), lstm_on_gpu(cp, inputs, dh, dc)):
        assert_bit_identical(a, b, f"lstm {name}")


@cuda
def test_lstm_cell_vs_torch(cp, torch_cuda):
    torch = torch_cuda
    batch, d, hidden = 4, 33, 65
    (x, h_prev, c_prev, Wx, Wh, b), dh, dc = lstm_inputs((batch, d, hidden), np.float32)
    got = lstm_on_gpu(cp, (x, h_prev, c_prev, Wx, Wh, b), dh, dc)
    # PyTorch's gate order is (i, f, g, o) and its weights are (4H, in): permute and transpose ours.
    order = np.concatenate([np.arange(0, 2 * hidden), np.arange(3 * hidden, 4 * hidden), np.arange(2 * hidden, 3 * hidden)])
    cell = torch.nn.LSTMCell(d, hidden).cuda()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor(Wx[:, order].T))
        cell.weight_hh.copy_(torch.tensor(Wh[:, order].T))
        cell.bias_ih.copy_(torch.tensor(b[order]))
        cell.bias_hh.zero_()
    tx, th, tc = (torch.tensor(a, device="cuda", requires_grad=True) for a in (x, h_prev, c_prev))
    h, c = cell(tx, (th, tc))
    torch.autograd.backward([h, c], [torch.tensor(dh, device="cuda"), torch.tensor(dc, device="cuda")])
    inverse = np.argsort(order)
    numpy = {name: t.detach().cpu().numpy() for name, t in (("h", h), ("c", c), ("dx", tx.grad), ("dh_prev", th.grad),
             ("dc_prev", tc.grad), ("dW_ih", cell.weight_ih.grad), ("dW_hh", cell.weight_hh.grad), ("db_ih", cell.bias_ih.grad))}
    numpy["dWx"] = numpy.pop("dW_ih").T[:, inverse]
    numpy["dWh"] = numpy.pop("dW_hh").T[:, inverse]
    numpy["db"] = numpy.pop("db_ih")[inverse]
    for name, g in zip(LSTM_NAMES, got):
        assert_close(g, numpy[name], *tolerance(np.float32, 4 * hidden), name=f"lstm {name} vs torch")


# ---------------------------------------------------------------------------------------- bad input

@cuda
def test_mixed_devices_raise_before_any_kernel(cp):
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(TypeError):
        F.conv2d_forward(cp.asarray(x), np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(TypeError):
        F.batch_norm_forward(cp.asarray(x), *(np.ones(1, np.float32) for _ in range(4)))
    out, cache = F.max_pool2d_forward(cp.asarray(x), 2)
    with pytest.raises(TypeError):
        F.max_pool2d_backward(np.zeros((1, 1, 2, 2), np.float32), cache)
    with pytest.raises(TypeError):
        F.lstm_cell_forward(cp.zeros((1, 2), cp.float32), *(np.zeros(s, np.float32) for s in ((1, 1), (1, 1), (2, 4), (1, 4), (4,))))


needs_cuda_module = pytest.mark.skipif(not fastnn.cuda_module_built(), reason="fastnn was built without fastnn._cuda")


@needs_cuda_module
def test_cuda_launchers_refuse_inconsistent_shapes():
    # The launchers check the sizes they are given before touching any pointer, so these calls
    # (with null pointers) must raise, on machines with or without a GPU.
    native = fastnn._backend._cuda
    good = (1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 3, 3)
    assert native.conv2d_backward_weight_splits(good) >= 1
    for bad in [(1, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 4, 3),   # output height does not match
                (1, 1, 5, 5, 1, 7, 3, 1, 1, 0, 0, 0, 3),   # kernel larger than the padded input
                (1, 1, 5, 5, 1, 3, 3, 0, 1, 0, 0, 3, 3),   # zero stride
                (0, 1, 5, 5, 1, 3, 3, 1, 1, 0, 0, 3, 3),   # empty batch
                (1 << 20, 1 << 12, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1)]:  # 2^32 elements
        with pytest.raises(ValueError):
            native.conv2d_forward("float32", 0, 0, 0, 0, bad, 0)
    with pytest.raises(ValueError):
        native.conv2d_forward("float32", 0, 0, 0, 0, good[:-1], 0)
    with pytest.raises(TypeError):
        native.conv2d_forward("float16", 0, 0, 0, 0, good, 0)
    with pytest.raises(ValueError):  # padding over half the window
        native.max_pool2d_forward("float32", 0, 0, 0, (1, 1, 5, 5, 2, 2, 1, 1, 2, 0, 6, 4), 0)
    with pytest.raises(ValueError):  # output width does not match
        native.avg_pool2d_backward("float64", 0, 0, (1, 1, 5, 5, 2, 2, 2, 2, 0, 0, 2, 3), 0)
    with pytest.raises(ValueError):
        native.batch_norm_chunks(0, 3, 1)
    with pytest.raises(ValueError):  # training needs two values per channel
        native.batch_norm_forward_training("float32", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.1, 1e-5, 1, 3, 1, 0)
    with pytest.raises(ValueError):
        native.lstm_cell_forward("float32", 0, 0, 0, 0, 0, 0, 0, 4, 0)
