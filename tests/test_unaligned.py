"""Arrays that are C-contiguous but not aligned to their element size.

A NumPy view at an odd byte offset, e.g. np.zeros(9, np.uint8)[1:].view(np.float32), is C-contiguous
yet its float loads would be misaligned: undefined behaviour in the native kernels (UBSan reports it;
on a GPU it is a misaligned-address fault). fastnn's Python layer copies such arrays to an aligned
buffer, and the bindings refuse them, so neither path reads through a misaligned pointer. On the GPU
the copies move bytes (CuPy's own copy would load whole elements and fault); under tools/fake_cupy a
kernel over a misaligned array fails as it would on a GPU, so the cuda-marked tests here check that.
"""
import numpy as np
import pytest

import fastnn._C as C
import fastnn.functional as F
from fastnn import _backend, nn, optim
from fastnn.optim.clip import clip_grad_norm

DTYPES = [np.float32, np.float64]


def unaligned(a):
    """A C-contiguous copy of a whose data starts one byte past an aligned address."""
    a = np.asarray(a)
    raw = np.zeros(a.nbytes + a.itemsize + 1, np.uint8)
    start = (-raw.ctypes.data) % a.itemsize + 1  # one byte past an aligned address
    view = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert view.flags.c_contiguous and not view.flags.aligned
    return view


def rng_arrays(dtype, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def assert_same(got, want):
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, np.ndarray):
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want or (np.isnan(got) and np.isnan(want))


def test_unaligned_helper_really_is_unaligned():
    v = unaligned(np.arange(5, dtype=np.float64))
    assert v.ctypes.data % 8 != 0
    np.testing.assert_array_equal(v, np.arange(5))


def test_c_array_copies_only_what_needs_it():
    a = np.ones((3, 4), np.float32)
    assert _backend.c_array(a) is a
    u = unaligned(a)
    c = _backend.c_array(u)
    assert c is not u and c.flags.aligned and c.flags.c_contiguous
    np.testing.assert_array_equal(c, a)
    assert not _backend.native_float_arrays(u)
    assert not _backend.is_native_layout(u)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_unaligned_inputs(dtype):
    x, w, b = rng_arrays(dtype, (2, 3, 7, 7), (4, 3, 3, 3), (4,))
    out, cache = F.conv2d_forward(x, w, b, 2, 1)
    out_u, cache_u = F.conv2d_forward(unaligned(x), unaligned(w), unaligned(b), 2, 1)
    assert_same(out_u, out)
    dout = rng_arrays(dtype, out.shape, seed=1)[0]
    assert_same(F.conv2d_backward(unaligned(dout), cache_u), F.conv2d_backward(dout, cache))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["max", "avg"])
def test_pooling_unaligned_inputs(dtype, op):
    forward = getattr(F, f"{op}_pool2d_forward")
    backward = getattr(F, f"{op}_pool2d_backward")
    (x,) = rng_arrays(dtype, (2, 3, 7, 6))
    out, cache = forward(x, (3, 2), (2, 2), (1, 0))
    out_u, cache_u = forward(unaligned(x), (3, 2), (2, 2), (1, 0))
    assert_same(out_u, out)
    (dout,) = rng_arrays(dtype, out.shape, seed=1)
    assert_same(backward(unaligned(dout), cache_u), backward(dout, cache))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 5)])
def test_batch_norm_unaligned_inputs_and_running_statistics(dtype, shape):
    x, gamma, beta = rng_arrays(dtype, shape, (3,), (3,))
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
    rm_u, rv_u = unaligned(rm), unaligned(rv)
    out, cache = F.batch_norm_forward(x, gamma, beta, rm, rv, training=True)
    out_u, cache_u = F.batch_norm_forward(unaligned(x), unaligned(gamma), unaligned(beta), rm_u, rv_u, training=True)
    assert_same(out_u, out)
    # the running statistics are updated in place, in the caller's (unaligned) arrays
    assert_same(rm_u, rm)
    assert_same(rv_u, rv)
    assert np.any(rm != 0)
    (dout,) = rng_arrays(dtype, shape, seed=1)
    assert_same(F.batch_norm_backward(unaligned(dout), cache_u), F.batch_norm_backward(dout, cache))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_cell_unaligned_inputs(dtype):
    B, D, H = 3, 5, 4
    x, h, c, Wx, Wh, b = rng_arrays(dtype, (B, D), (B, H), (B, H), (D, 4 * H), (H, 4 * H), (4 * H,))
    h1, c1, cache = F.lstm_cell_forward(x, h, c, Wx, Wh, b)
    h1_u, c1_u, cache_u = F.lstm_cell_forward(*(unaligned(a) for a in (x, h, c, Wx, Wh, b)))
    assert_same((h1_u, c1_u), (h1, c1))
    dh, dc = rng_arrays(dtype, (B, H), (B, H), seed=1)
    assert_same(F.lstm_cell_backward(unaligned(dh), unaligned(dc), cache_u), F.lstm_cell_backward(dh, dc, cache))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_layer_unaligned_inputs(dtype):
    T, B, D, H = 4, 3, 5, 4
    xs, h0, c0, Wx, Wh, b = rng_arrays(dtype, (T, B, D), (B, H), (B, H), (D, 4 * H), (H, 4 * H), (4 * H,))
    hs, h, c, cache = F.lstm_forward(xs, h0, c0, Wx, Wh, b)
    hs_u, h_u, c_u, cache_u = F.lstm_forward(*(unaligned(a) for a in (xs, h0, c0, Wx, Wh, b)))
    assert_same((hs_u, h_u, c_u), (hs, h, c))
    dhs, dh, dc = rng_arrays(dtype, (T, B, H), (B, H), (B, H), seed=1)
    assert_same(F.lstm_backward(unaligned(dhs), unaligned(dh), unaligned(dc), cache_u),
                F.lstm_backward(dhs, dh, dc, cache))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_unaligned_scores_and_labels(dtype):
    (scores,) = rng_arrays(dtype, (6, 5))
    y = np.array([0, 4, 2, 1, 3, 0], np.int64)
    loss, cache = F.softmax_cross_entropy_forward(scores, y)
    loss_u, cache_u = F.softmax_cross_entropy_forward(unaligned(scores), unaligned(y))
    assert_same(loss_u, loss)
    assert_same(F.softmax_cross_entropy_backward(1.0, cache_u), F.softmax_cross_entropy_backward(1.0, cache))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_relu_and_sum_of_squares_unaligned(dtype):
    a, b = rng_arrays(dtype, (5, 7), (7, 3))
    assert_same(_backend.matmul(unaligned(a), unaligned(b)), _backend.matmul(a, b))
    out = unaligned(np.zeros((5, 3), dtype))
    got = _backend.matmul(a, b, out=out)  # an unaligned out goes the NumPy way, still into out
    np.testing.assert_allclose(out, _backend.matmul(a, b), rtol=1e-5)
    assert got is out or np.shares_memory(got, out)
    relu = nn.ReLU()
    y = relu(unaligned(a))
    assert_same(y, np.maximum(a, 0))
    (dout,) = rng_arrays(dtype, a.shape, seed=1)
    assert_same(relu.backward(unaligned(dout)), dout * (a > 0))


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_optimizer_steps_an_unaligned_parameter_in_place(name):
    w, g = rng_arrays(np.float32, (4, 6), (4, 6))
    p, p_u = nn.Parameter(w.copy()), nn.Parameter(unaligned(w))
    p.grad[...] = g
    p_u.grad = unaligned(g)
    for params in ([p], [p_u]):
        opt = getattr(optim, name)(params, lr=0.1)
        norm = clip_grad_norm(params, 1e9)
        opt.step()
        opt.step()
    assert norm == pytest.approx(clip_grad_norm([p], 1e9), rel=1e-12)
    assert not p_u.data.flags.aligned  # still the caller's array, updated where it lies
    np.testing.assert_allclose(p_u.data, p.data, rtol=1e-6, atol=1e-7)
    assert np.any(p.data != w)


def _direct_calls(dtype):
    """Native functions called directly with one unaligned argument each."""
    x, w, b = rng_arrays(dtype, (2, 3, 7, 7), (4, 3, 3, 3), (4,))
    scores = rng_arrays(dtype, (4, 5))[0]
    labels = np.array([0, 1, 2, 3], np.int64)
    vec = rng_arrays(dtype, (12,))[0]
    gates = rng_arrays(dtype, (2, 8), (2, 8), (8,), (2, 2))
    return {
        "conv2d_forward x": lambda: C.conv2d_forward(unaligned(x), w, b, 1, 1, 1, 1),
        "conv2d_forward w": lambda: C.conv2d_forward(x, unaligned(w), b, 1, 1, 1, 1),
        "conv2d_forward b": lambda: C.conv2d_forward(x, w, unaligned(b), 1, 1, 1, 1),
        "max_pool2d_forward": lambda: C.max_pool2d_forward(unaligned(x), (2, 2), (2, 2), (0, 0)),
        "avg_pool2d_forward": lambda: C.avg_pool2d_forward(unaligned(x), (2, 2), (2, 2), (0, 0)),
        "batch_norm_forward running_mean": lambda: C.batch_norm_forward(
            x, np.ones(3, dtype), np.zeros(3, dtype), unaligned(np.zeros(3, dtype)), np.ones(3, dtype), True, 0.1,
            1e-5),
        "softmax_xent_forward scores": lambda: C.softmax_xent_forward(unaligned(scores), labels),
        "softmax_xent_forward labels": lambda: C.softmax_xent_forward(scores, unaligned(labels)),
        "lstm_cell_forward_pointwise": lambda: C.lstm_cell_forward_pointwise(
            unaligned(gates[0]), gates[1], gates[2], gates[3]),
        "gemm": lambda: C.gemm(unaligned(scores), scores, False, True),
        "relu_forward": lambda: C.relu_forward(unaligned(vec)),
        "sum_squares": lambda: C.sum_squares(unaligned(vec)),
        "sgd_update w": lambda: C.sgd_update(unaligned(vec), vec, None, 0.0, 0.0, 1.0, 0.1, 0.0, False),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", sorted(_direct_calls(np.float32)))
def test_bindings_refuse_unaligned_arrays(dtype, call):
    with pytest.raises(ValueError, match="aligned"):
        _direct_calls(dtype)[call]()


def unaligned_cupy(a):
    """A C-contiguous CuPy copy of a whose device data starts one byte past an aligned address. Its
    bytes are written as uint8: a typed write into it would fault on a GPU (misaligned address)."""
    import cupy as cp

    a = np.ascontiguousarray(a)
    raw = cp.zeros(a.nbytes + a.itemsize + 1, cp.uint8)
    start = (-raw.data.ptr) % a.itemsize + 1
    raw[start:start + a.nbytes] = cp.asarray(a.reshape(-1).view(np.uint8))
    view = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    assert view.flags.c_contiguous and view.data.ptr % a.itemsize != 0
    return view


def unaligned_strided_cupy(a):
    """(view, buffer): view is a non-contiguous CuPy view with a's values, every other row of buffer, a
    C-contiguous CuPy array twice as tall whose data starts one byte past an aligned address (read
    buffer to see what was written into view: cupy.asnumpy copies a non-contiguous array on the
    device first, element-wise)."""
    a = np.asarray(a)
    tall = np.zeros((2 * a.shape[0],) + a.shape[1:], a.dtype)
    tall[::2] = a
    buffer = unaligned_cupy(tall)
    view = buffer[::2]
    assert not view.flags.c_contiguous and view.data.ptr % a.itemsize != 0
    return view, buffer


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_ops_copy_unaligned_device_arrays(dtype):
    import cupy as cp

    x, w, b, scores = rng_arrays(dtype, (2, 3, 7, 7), (4, 3, 3, 3), (4,), (6, 5))
    y = np.array([0, 4, 2, 1, 3, 0], np.int64)
    out, _ = F.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), 2, 1)
    out_u, _ = F.conv2d_forward(unaligned_cupy(x), unaligned_cupy(w), unaligned_cupy(b), 2, 1)
    np.testing.assert_array_equal(cp.asnumpy(out_u), cp.asnumpy(out))
    pooled, _ = F.max_pool2d_forward(cp.asarray(x), 2)
    pooled_u, _ = F.max_pool2d_forward(unaligned_cupy(x), 2)
    np.testing.assert_array_equal(cp.asnumpy(pooled_u), cp.asnumpy(pooled))
    loss, _ = F.softmax_cross_entropy_forward(cp.asarray(scores), cp.asarray(y))
    loss_u, _ = F.softmax_cross_entropy_forward(unaligned_cupy(scores), unaligned_cupy(y))
    assert float(loss_u) == float(loss)
    rm = unaligned_cupy(np.zeros(3, dtype))
    F.batch_norm_forward(unaligned_cupy(x), cp.ones(3, dtype), cp.zeros(3, dtype), rm, cp.ones(3, dtype))
    np.testing.assert_allclose(cp.asnumpy(rm), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_cupy_misaligned_arrays_are_copied_as_bytes(dtype):
    import cupy as cp

    a = (np.arange(12) * 2.5 - 7).reshape(4, 3).astype(dtype)
    contiguous = unaligned_cupy(a)
    strided, strided_buffer = unaligned_strided_cupy(a)
    for u in (contiguous, strided):
        assert not _backend.cupy_is_aligned(u)
        c = _backend.c_array(u)
        assert _backend.is_native_layout(c) and c.dtype == dtype and c.shape == a.shape
        np.testing.assert_array_equal(cp.asnumpy(c), a)
        np.testing.assert_array_equal(cp.asnumpy(_backend.c_array(u, dtype=np.float64)), a.astype(np.float64))
    aligned = cp.asarray(a)
    columns = aligned[:, 1:]  # strided, but aligned: passed through as it is
    assert _backend.cupy_aligned(aligned) is aligned and _backend.cupy_aligned(columns) is columns

    # Writing into misaligned arrays, contiguous and strided: the values land, the bytes around stay.
    b = (a * 3 + 1).astype(dtype)
    _backend.cupy_copy_into(contiguous, cp.asarray(b))
    np.testing.assert_array_equal(cp.asnumpy(contiguous), b)
    _backend.cupy_copy_into(strided, cp.asarray(b))
    rows = cp.asnumpy(strided_buffer)
    np.testing.assert_array_equal(rows[::2], b)
    np.testing.assert_array_equal(rows[1::2], 0)
    with pytest.raises(ValueError, match="must match"):
        _backend.cupy_copy_into(contiguous, cp.asarray(b[:2]))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_ops_take_misaligned_strided_arrays(dtype):
    import cupy as cp

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5, 5)).astype(dtype)
    rm, rv = rng.standard_normal(3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)

    # Batch norm in evaluation mode reads the running statistics; in training mode it updates them in
    # place, through a contiguous stand-in written back as bytes.
    gamma, beta = cp.ones(3, dtype), cp.zeros(3, dtype)
    want, _ = F.batch_norm_forward(cp.asarray(x), gamma, beta, cp.asarray(rm), cp.asarray(rv), training=False)
    got, _ = F.batch_norm_forward(unaligned_cupy(x), gamma, beta, unaligned_strided_cupy(rm[:, None])[0][:, 0],
                                  unaligned_cupy(rv), training=False)
    np.testing.assert_array_equal(cp.asnumpy(got), cp.asnumpy(want))
    rm_want, rv_want = cp.asarray(rm), cp.asarray(rv)
    (rm_got, rm_buffer), rv_got = unaligned_strided_cupy(rm[:, None]), unaligned_cupy(rv)
    F.batch_norm_forward(cp.asarray(x), gamma, beta, rm_want, rv_want, training=True)
    F.batch_norm_forward(cp.asarray(x), gamma, beta, rm_got[:, 0], rv_got, training=True)
    np.testing.assert_array_equal(cp.asnumpy(rm_buffer)[::2, 0], cp.asnumpy(rm_want))
    np.testing.assert_array_equal(cp.asnumpy(rv_got), cp.asnumpy(rv_want))
    assert np.any(cp.asnumpy(rm_want) != rm)

    # The LSTM cell's GEMMs (cuBLAS) get aligned stand-ins, kept in the cache for backward.
    B, D, H = 3, 5, 4
    args = rng_arrays(dtype, (B, D), (B, H), (B, H), (D, 4 * H), (H, 4 * H), (4 * H,), seed=4)
    dh, dc = rng_arrays(dtype, (B, H), (B, H), seed=5)
    h, c, cache = F.lstm_cell_forward(*(cp.asarray(a) for a in args))
    h_u, c_u, cache_u = F.lstm_cell_forward(unaligned_strided_cupy(args[0])[0], *(unaligned_cupy(a) for a in args[1:]))
    want = (h, c) + F.lstm_cell_backward(cp.asarray(dh), cp.asarray(dc), cache)
    got = (h_u, c_u) + F.lstm_cell_backward(unaligned_cupy(dh), unaligned_strided_cupy(dc)[0], cache_u)
    for g, w in zip(got, want):
        np.testing.assert_allclose(cp.asnumpy(g), cp.asnumpy(w), rtol=1e-6, atol=1e-7)

    # matmul (nn.Linear's GEMM) and softmax cross-entropy with int32 labels (copied, then converted).
    a, b = rng_arrays(dtype, (5, 7), (7, 3), seed=6)
    np.testing.assert_allclose(cp.asnumpy(_backend.matmul(unaligned_strided_cupy(a)[0], unaligned_cupy(b))),
                               cp.asnumpy(_backend.matmul(cp.asarray(a), cp.asarray(b))), rtol=1e-6, atol=1e-7)
    y = np.array([0, 2, 1, 2, 0], np.int32)
    loss, _ = F.softmax_cross_entropy_forward(cp.asarray(a[:, :3]), cp.asarray(y))
    loss_u, _ = F.softmax_cross_entropy_forward(unaligned_strided_cupy(a[:, :3])[0], unaligned_cupy(y))
    assert float(loss_u) == float(loss)


@pytest.mark.cuda
def test_cuda_bindings_refuse_unaligned_pointers():
    import cupy as cp

    from fastnn import _cuda
    from fastnn.functional.pool_cuda import _shape_tuple

    x = unaligned_cupy(np.ones((1, 1, 4, 4), np.float32))
    out = cp.empty((1, 1, 2, 2), cp.float32)
    argmax = cp.empty((1, 1, 2, 2), cp.int32)
    with pytest.raises(ValueError, match="aligned"):
        _cuda.max_pool2d_forward("float32", x.data.ptr, out.data.ptr, argmax.data.ptr,
                                 _shape_tuple(x.shape, (2, 2), (2, 2), (0, 0), (2, 2)), 0)
    # The batch-norm partials are read and written as double2: a float64 view one element into an
    # allocation is aligned to its element size but not to the 16 bytes the kernels need.
    n, c = 4, 3
    x2, dx2 = cp.ones((n, c), cp.float32), cp.empty((n, c), cp.float32)
    per_channel = [cp.ones(c, cp.float32) for _ in range(5)]  # gamma, mean, invstd, dgamma, dbeta
    partials = cp.empty(2 * c * _cuda.batch_norm_chunks(n, c, 1) + 1, cp.float64)[1:]
    assert partials.data.ptr % 8 == 0 and partials.data.ptr % 16 != 0
    gamma, mean, invstd, dgamma, dbeta = (a.data.ptr for a in per_channel)
    with pytest.raises(ValueError, match="16 bytes"):
        _cuda.batch_norm_backward("float32", x2.data.ptr, x2.data.ptr, gamma, mean, invstd, dx2.data.ptr,
                                  dgamma, dbeta, partials.data.ptr, True, n, c, 1, 0)
