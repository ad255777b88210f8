"""The LSTM layer op (F.lstm_forward / F.lstm_backward): a whole sequence at once, batched GEMMs
around the fused cell. Checked against the reference (the reference cell looped over time, itself
gradient-checked here), on both SIMD paths, float32 and float64, odd sizes; against the step-by-step
path that CuPy runs (here with the CPU cell kernels); against PyTorch's nn.LSTM; and bad input."""
import numpy as np
import pytest

import fastnn.functional as F
import fastnn.reference as R
from fastnn.functional import lstm as lstm_module
from fastnn.testing import assert_close, numerical_gradient, to_torch_lstm

# (T, B, D, H): one step, batch 1, sizes around the 8-float vector and 16-column GEMM panel widths,
# batches that are not multiples of either, and a hidden size big enough to split over threads.
# Then two with per-step arrays of at least 1 MB (allocated 64-byte aligned) with B one GEMM panel
# wide (16 floats, 8 doubles), so the per-step blocks are read in place as packed panels; and a single
# step whose input-projection and dx GEMMs are big enough to run on the whole team.
SIZES = [(1, 1, 1, 1), (3, 5, 3, 7), (4, 17, 9, 13), (2, 16, 20, 33), (5, 33, 7, 24), (3, 2, 5, 300), (2, 64, 16, 80),
         (64, 16, 8, 256), (64, 8, 8, 256), (1, 64, 128, 96)]
NAMES = ["dxs", "dh0", "dc0", "dWx", "dWh", "db"]


def _inputs(rng, steps, batch, d, hidden, dtype):
    scale = 2.0 / np.sqrt(d + hidden)
    arrays = [rng.standard_normal((steps, batch, d)), rng.standard_normal((batch, hidden)),
              rng.standard_normal((batch, hidden)), rng.standard_normal((d, 4 * hidden)) * scale,
              rng.standard_normal((hidden, 4 * hidden)) * scale, rng.standard_normal(4 * hidden) * 0.5]
    return [a.astype(dtype) for a in arrays]


def _upstream(rng, steps, batch, hidden, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in ((steps, batch, hidden), (batch, hidden), (batch, hidden))]


def test_reference_layer_gradient():
    rng = np.random.default_rng(30)
    args = _inputs(rng, 3, 2, 3, 4, np.float64)
    dhs, dh_last, dc_last = _upstream(rng, 3, 2, 4, np.float64)

    def loss():
        hs, h, c, _ = R.lstm_forward(*args)
        return (hs * dhs).sum() + (h * dh_last).sum() + (c * dc_last).sum()

    *_, cache = R.lstm_forward(*args)
    grads = R.lstm_backward(dhs, dh_last, dc_last, cache)
    for name, arg, grad in zip(NAMES, args, grads):
        assert_close(grad, numerical_gradient(loss, arg), 1e-6, 1e-8, name=name)


@pytest.mark.parametrize("zero_h0", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_matches_reference(simd_path, size, dtype, zero_h0):
    # zero_h0: the kernel skips step 0's recurrent GEMM and h0's share of dWh (all of it when T = 1).
    rng = np.random.default_rng(31)
    args = _inputs(rng, *size, dtype)
    if zero_h0:
        args[1] = np.zeros_like(args[1])
    hs, h, c, cache = F.lstm_forward(*args)
    ref_hs, ref_h, ref_c, ref_cache = R.lstm_forward(*(a.astype(np.float64) for a in args))
    rtol, atol = (2e-4, 2e-5) if dtype == np.float32 else (1e-10, 1e-12)
    for name, got, want in (("hs", hs, ref_hs), ("h_last", h, ref_h), ("c_last", c, ref_c)):
        assert got.dtype == dtype and got.shape == want.shape, name
        assert_close(got, want, rtol, atol, name=name)
    upstream = _upstream(rng, size[0], size[1], size[3], dtype)
    grads = F.lstm_backward(*upstream, cache)
    ref_grads = R.lstm_backward(*(u.astype(np.float64) for u in upstream), ref_cache)
    for name, arg, got, want in zip(NAMES, args, grads, ref_grads):
        assert got.dtype == dtype and got.shape == arg.shape, name
        assert_close(got, want, rtol, atol * 10 * size[0], name=name)


@pytest.mark.parametrize("size", [(1, 1, 1, 1), (4, 17, 9, 13), (3, 16, 5, 40)])
def test_step_path_matches_layer_kernel(size):
    """The step-by-step formulation (what CuPy arrays run) gives the layer kernel's numbers."""
    rng = np.random.default_rng(32)
    args = _inputs(rng, *size, np.float64)
    forward_pointwise, backward_pointwise = lstm_module._cpu_cell_pointwise
    got = lstm_module._lstm_forward_steps(np, *args, forward_pointwise)
    want = F.lstm_forward(*args)
    for name, g, w in zip(["hs", "h_last", "c_last"], got[:3], want[:3]):
        assert_close(g, w, 1e-12, 1e-13, name=name)
    assert got[3].layout == "steps"
    upstream = _upstream(rng, size[0], size[1], size[3], np.float64)
    for dhs, dh_last, dc_last in [upstream, (upstream[0], None, None), (None, upstream[1], None), (None, None, None)]:
        for name, g, w in zip(NAMES, F.lstm_backward(dhs, dh_last, dc_last, got[3]),
                              F.lstm_backward(dhs, dh_last, dc_last, want[3])):
            assert_close(g, w, 1e-11, 1e-12, name=name)


def test_none_means_zeros(simd_path):
    rng = np.random.default_rng(33)
    xs, h0, c0, wx, wh, b = _inputs(rng, 4, 3, 5, 6, np.float64)
    zeros = np.zeros_like(h0)
    for a, w in zip(F.lstm_forward(xs, None, None, wx, wh, b)[:3], F.lstm_forward(xs, zeros, zeros, wx, wh, b)[:3]):
        assert_close(a, w, 0, 0, name="forward")
    *_, cache = F.lstm_forward(xs, h0, c0, wx, wh, b)
    dhs, dh_last, dc_last = _upstream(rng, 4, 3, 6, np.float64)
    cases = [((None, dh_last, dc_last), (np.zeros_like(dhs), dh_last, dc_last)),
             ((dhs, None, dc_last), (dhs, zeros, dc_last)),
             ((dhs, dh_last, None), (dhs, dh_last, zeros)),
             ((None, None, None), (np.zeros_like(dhs), zeros, zeros))]
    for got, want in cases:
        for name, a, w in zip(NAMES, F.lstm_backward(*got, cache), F.lstm_backward(*want, cache)):
            assert_close(a, w, 0, 0, name=name)


def test_backward_twice_and_outputs_are_the_callers(simd_path):
    rng = np.random.default_rng(34)
    args = _inputs(rng, 5, 4, 3, 8, np.float32)
    hs, h, c, cache = F.lstm_forward(*args)
    upstream = _upstream(rng, 5, 4, 8, np.float32)
    first = F.lstm_backward(*upstream, cache)
    hs[:] = 1e6  # the caller's hs is not the cache's
    h[:] = -1e6
    second = F.lstm_backward(*upstream, cache)
    for name, a, w in zip(NAMES, first, second):
        assert_close(a, w, 0, 0, name=name)


def test_non_contiguous_input(simd_path):
    rng = np.random.default_rng(35)
    xs, h0, c0, wx, wh, b = _inputs(rng, 3, 4, 5, 6, np.float64)
    xs_batch_first = np.ascontiguousarray(xs.transpose(1, 0, 2))
    got = F.lstm_forward(xs_batch_first.transpose(1, 0, 2), np.asfortranarray(h0), c0, np.asfortranarray(wx),
                         wh[:, ::-1][:, ::-1], b)
    want = R.lstm_forward(xs, h0, c0, wx, wh, b)
    for name, g, w in zip(["hs", "h_last", "c_last"], got[:3], want[:3]):
        assert_close(g, w, 1e-12, 1e-12, name=name)


# (T, B, D, H): steps split across threads; and one or two steps (fewer than the threads), where each
# per-step GEMM is large enough to use the whole team.
@pytest.mark.parametrize("size", [(6, 16, 12, 100), (1, 64, 128, 96), (2, 40, 100, 64)])
def test_thread_count_does_not_change_results(size):
    import fastnn

    steps, batch, d, hidden = size
    rng = np.random.default_rng(36)
    args = _inputs(rng, steps, batch, d, hidden, np.float32)
    upstream = _upstream(rng, steps, batch, hidden, np.float32)
    before = fastnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            fastnn.set_num_threads(threads)
            hs, h, c, cache = F.lstm_forward(*args)
            results.append((hs, h, c) + tuple(F.lstm_backward(*upstream, cache)))
    finally:
        fastnn.set_num_threads(before)
    for other in results[1:]:
        for a, w in zip(results[0], other):
            assert_close(a, w, 0, 0, name="threads")


@pytest.mark.parametrize("size", [(1, 1, 2, 3), (6, 5, 7, 9)])
def test_lstm_layer_vs_torch(size):
    torch = pytest.importorskip("torch")
    steps, batch, d, hid = size
    rng = np.random.default_rng(37)
    xs, h0, c0, wx, wh, b = _inputs(rng, *size, np.float64)
    dhs, dh_last, dc_last = _upstream(rng, steps, batch, hid, np.float64)
    hs, h, c, cache = F.lstm_forward(xs, h0, c0, wx, wh, b)
    grads = F.lstm_backward(dhs, dh_last, dc_last, cache)

    lstm = torch.nn.LSTM(d, hid).double()
    order = to_torch_lstm(wx, wh, b, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    xt, ht, ct = (torch.tensor(a, requires_grad=True) for a in (xs, h0[None], c0[None]))
    out, (h_t, c_t) = lstm(xt, (ht, ct))
    ((out * torch.tensor(dhs)).sum() + (h_t[0] * torch.tensor(dh_last)).sum()
     + (c_t[0] * torch.tensor(dc_last)).sum()).backward()
    inv = np.argsort(order)
    tol = dict(rtol=1e-9, atol=1e-11)
    assert_close(hs, out.detach().numpy(), name="hs vs torch", **tol)
    assert_close(h, h_t[0].detach().numpy(), name="h_last vs torch", **tol)
    assert_close(c, c_t[0].detach().numpy(), name="c_last vs torch", **tol)
    want = (xt.grad.numpy(), ht.grad.numpy()[0], ct.grad.numpy()[0], lstm.weight_ih_l0.grad.numpy().T[:, inv],
            lstm.weight_hh_l0.grad.numpy().T[:, inv], lstm.bias_ih_l0.grad.numpy()[inv])
    for name, g, w in zip(NAMES, grads, want):
        assert_close(g, w, name=f"{name} vs torch", **tol)


def test_bad_input():
    rng = np.random.default_rng(38)
    args = _inputs(rng, 3, 2, 3, 4, np.float32)
    for k in range(6):
        bad = list(args)
        bad[k] = args[k].astype(np.float64)
        with pytest.raises(TypeError, match="dtype"):
            F.lstm_forward(*bad)
        bad[k] = args[k][..., :-1]
        with pytest.raises(ValueError):
            F.lstm_forward(*bad)
        bad[k] = args[k].tolist()
        with pytest.raises(TypeError):
            F.lstm_forward(*bad)
    with pytest.raises(ValueError, match="dimensions"):
        F.lstm_forward(args[0][0], *args[1:])
    with pytest.raises(ValueError, match="empty"):
        F.lstm_forward(args[0][:0], *args[1:])
    with pytest.raises(TypeError):
        F.lstm_forward(args[0].astype(np.int32), *args[1:])
    bad = list(args)
    bad[0] = args[0].copy()
    bad[0][2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.lstm_forward(*bad)
    bad = list(args)
    bad[4] = args[4].copy()
    bad[4][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        F.lstm_forward(*bad)
    hs, h, c, cache = F.lstm_forward(*args)
    with pytest.raises(ValueError, match="dhs"):
        F.lstm_backward(hs[:2], None, None, cache)
    with pytest.raises(ValueError, match="dh_last"):
        F.lstm_backward(None, h[:1], None, cache)
    with pytest.raises(TypeError, match="dtype"):
        F.lstm_backward(None, None, c.astype(np.float64), cache)
    with pytest.raises(TypeError, match="cache"):
        F.lstm_backward(hs, h, c, tuple(cache))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(1, 1, 1, 1), (5, 3, 4, 7), (6, 17, 9, 33)])
def test_cuda_layer_matches_reference(size, dtype):
    """On CuPy arrays the layer runs the step loop around the cell's CUDA kernels."""
    import cupy as cp

    rng = np.random.default_rng(39)
    args = _inputs(rng, *size, dtype)
    hs, h, c, cache = F.lstm_forward(*(cp.asarray(a) for a in args))
    assert cache.layout == "steps" and all(isinstance(a, cp.ndarray) for a in (hs, h, c))
    ref_hs, ref_h, ref_c, ref_cache = R.lstm_forward(*(a.astype(np.float64) for a in args))
    rtol, atol = (2e-4, 2e-5) if dtype == np.float32 else (1e-10, 1e-12)
    for name, got, want in (("hs", hs, ref_hs), ("h_last", h, ref_h), ("c_last", c, ref_c)):
        assert got.dtype == dtype
        assert_close(got, want, rtol, atol, name=name)
    upstream = _upstream(rng, size[0], size[1], size[3], dtype)
    for dhs, dh_last, dc_last in [upstream, (upstream[0], None, None), (None, None, upstream[2])]:
        grads = F.lstm_backward(*(None if u is None else cp.asarray(u) for u in (dhs, dh_last, dc_last)), cache)
        ref_grads = R.lstm_backward(*(None if u is None else u.astype(np.float64) for u in (dhs, dh_last, dc_last)),
                                    ref_cache)
        for name, got, want in zip(NAMES, grads, ref_grads):
            assert isinstance(got, cp.ndarray) and got.dtype == dtype, name
            assert_close(got, want, rtol, atol * 10 * size[0], name=name)
