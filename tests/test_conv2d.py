"""conv2d: the NumPy reference is gradient-checked; fastnn.functional is compared with the reference
and with PyTorch; bad input gets a clear exception before any kernel runs."""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
import fastnn.reference as R
from fastnn.testing import assert_close, numerical_gradient

# (N, C, H, W, K, kh, kw, stride, padding): odd sizes, batch 1, non-square kernels and strides.
SHAPES = [
    (1, 1, 5, 5, 1, 3, 3, 1, 0),
    (2, 3, 7, 7, 4, 3, 3, 2, 1),
    (1, 2, 6, 5, 3, 2, 3, (2, 1), (0, 1)),
    (3, 1, 9, 9, 6, 5, 5, 1, 2),
    (2, 5, 4, 4, 7, 1, 1, 1, 0),
    (1, 4, 8, 7, 5, 3, 1, (1, 2), (1, 0)),
    (2, 3, 5, 5, 2, 5, 5, 1, 0),
    (2, 40, 12, 11, 100, 3, 3, 1, 1),  # R = 360 > KC and K = 100 > MC: several GEMM blocks
    (1, 3, 11, 11, 8, 3, 3, 3, 2),  # stride larger than the kernel overlap
    # The in-place paths of csrc/conv2d.cpp: gathered forward (>= 16 filters, >= 64 taps) at stride 1
    # and 2, gathered backward-data (>= 16 input channels), padded-width direct paths (few filters).
    (2, 8, 9, 7, 16, 3, 3, 1, 1),
    (1, 8, 10, 9, 32, 3, 3, 2, 1),
    (3, 16, 7, 6, 8, 3, 3, 1, 1),
    (4, 1, 28, 28, 6, 5, 5, 1, 2),  # LeNet-5's first layer (direct forward, direct weight gradient)
    # Row-tiled direct path (tall padding: only the filter rows on real image rows are summed):
    # LeNet-5's second layer backward data (a full convolution of the 10x10 gradient), and a forward
    # with two filter panels, two column tiles per row and rows that see no image at all.
    (4, 6, 14, 14, 16, 5, 5, 1, 0),
    (2, 3, 6, 20, 7, 5, 5, 1, (5, 2)),
    # Winograd F(2x2, 3x3) (float32 on AVX2: 3x3, stride 1, >= 32 channels each side), forward and
    # backward data (the flipped convolution): padding 0/1/2, odd output sizes, a partial last group
    # of tiles, more than 256 input channels (two reduction blocks), filters not a multiple of 6.
    (2, 32, 9, 13, 48, 3, 3, 1, 0),
    (1, 260, 6, 12, 33, 3, 3, 1, 1),
    (3, 32, 13, 14, 40, 3, 3, 1, 2),
    (4, 32, 7, 7, 32, 3, 3, 1, 1),  # 2x2 tiles for a 7x7 output: edge tiles clipped, groups across images
    # Winograd F(4x4, 3x3) (taken instead when >= 8 of its 4x4 tiles per image overhang the output by
    # at most a third), forward and backward data: padding 0/1/2, edge tiles, partial groups, more
    # than 256 channels on either side.
    (2, 32, 18, 17, 38, 3, 3, 1, 1),
    (1, 260, 14, 18, 33, 3, 3, 1, 0),
    (1, 33, 14, 18, 260, 3, 3, 1, 0),
    (2, 40, 10, 11, 32, 3, 3, 1, 2),
    # Stride-2 Winograd (float32 on AVX2: 3x3, stride 2, >= 32 channels each side; every shape below
    # takes it in both directions): padding 0 to 3 (the backward's tiles start up to 3 rows above the
    # image), odd and non-square sizes, groups of tiles across images and a partial last group, more
    # than 256 input channels in the forward (C) and in the backward data (K).
    (1, 40, 21, 25, 35, 3, 3, 2, 0),
    (2, 32, 28, 28, 48, 3, 3, 2, 1),
    (3, 33, 15, 18, 40, 3, 3, 2, 2),
    (1, 32, 21, 21, 32, 3, 3, 2, 3),
    (1, 260, 16, 18, 33, 3, 3, 2, 1),
    (1, 33, 16, 18, 260, 3, 3, 2, 1),
    # Strided backward data by phase classes (>= 16 input channels, >= 64 taps in the smallest class):
    # odd sizes at stride 2; a partial channel panel with non-square strides and a filter narrower
    # than its stride (a class with no taps); a 1x1 stride-2 downsampling; stride 3 with padding 2;
    # padding as large as the filter (outputs that see only padding, dout rows past the image).
    (2, 16, 9, 11, 64, 3, 3, 2, 1),
    (1, 31, 10, 9, 70, 3, 2, (2, 3), (1, 0)),
    (2, 16, 7, 8, 64, 1, 1, 2, 0),
    (1, 16, 11, 10, 64, 5, 5, 3, 2),
    (1, 16, 5, 6, 64, 3, 3, 2, 3),
]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def make_inputs(shape, dtype, bias=True, seed=0):
    n, c, h, w, k, kh, kw, stride, padding = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype) if bias else None
    return x, weight, b, stride, padding


@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("bias", [True, False])
def test_reference_gradient_check(shape, bias):
    x, w, b, stride, padding = make_inputs(shape, np.float64, bias)
    out, cache = R.conv2d_forward(x, w, b, stride, padding)
    g = np.random.default_rng(1).standard_normal(out.shape)  # loss = sum(out * g), so dout = g
    dx, dw, db = R.conv2d_backward(g, cache)

    def loss():
        return (R.conv2d_forward(x, w, b, stride, padding)[0] * g).sum()

    assert_close(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8, name="dx")
    assert_close(dw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-8, name="dw")
    if bias:
        assert_close(db, numerical_gradient(loss, b), rtol=1e-6, atol=1e-8, name="db")
    else:
        assert db is None


def test_reference_matches_direct_sum():
    # out[n,k,oh,ow] = b[k] + sum_{c,i,j} w[k,c,i,j] xp[n,c,oh*sh+i,ow*sw+j], written as loops.
    x, w, b, (sh, sw), (ph, pw) = make_inputs(SHAPES[2], np.float64)
    out, _ = R.conv2d_forward(x, w, b, (sh, sw), (ph, pw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    k, _, kh, kw = w.shape
    expected = np.empty_like(out)
    for n in range(out.shape[0]):
        for kk in range(k):
            for oh in range(out.shape[2]):
                for ow in range(out.shape[3]):
                    window = xp[n, :, oh * sh : oh * sh + kh, ow * sw : ow * sw + kw]
                    expected[n, kk, oh, ow] = b[kk] + (window * w[kk]).sum()
    assert_close(out, expected, rtol=1e-12, atol=1e-12, name="out")


def run_functional(shape, dtype, bias=True, seed=0):
    x, w, b, stride, padding = make_inputs(shape, dtype, bias, seed)
    out, cache = F.conv2d_forward(x, w, b, stride, padding)
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(dout, cache)
    return (x, w, b, stride, padding, dout), (out, dx, dw, db)


def assert_matches_reference(shape, dtype, bias=True, seed=0):
    (x, w, b, stride, padding, dout), (out, dx, dw, db) = run_functional(shape, dtype, bias, seed)
    # The oracle runs in float64 so float32 results are judged against the exact answer.
    ref_out, ref_cache = R.conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                                          None if b is None else b.astype(np.float64), stride, padding)
    ref_dx, ref_dw, ref_db = R.conv2d_backward(dout.astype(np.float64), ref_cache)
    tol = TOL[dtype]
    for name, got, want in [("out", out, ref_out), ("dx", dx, ref_dx), ("dw", dw, ref_dw)]:
        assert got.dtype == dtype, name
        assert got.flags.c_contiguous, name
        # Scale the absolute tolerance by the size of the sums (float32 rounding grows with them).
        assert_close(got, want, rtol=tol["rtol"], atol=tol["atol"] * np.sqrt(np.abs(want).max() + 1), name=name)
    if bias:
        assert db.dtype == dtype
        assert_close(db, ref_db, **tol, name="db")
    else:
        assert db is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_functional_matches_reference(shape, dtype, simd):
    assert fastnn.simd() == simd
    assert_matches_reference(shape, dtype, bias=shape[0] != 3)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("shape", [(3, 5, 9, 8, 7, 3, 3, 1, 1), (2, 16, 6, 6, 20, 1, 1, 1, 0), (5, 2, 8, 8, 3, 3, 2, 2, 1),
                                   (3, 32, 13, 14, 40, 3, 3, 1, 2), (1, 8, 10, 9, 32, 3, 3, 2, 1),
                                   (1, 16, 9, 11, 64, 3, 3, 2, 1), (2, 32, 28, 28, 48, 3, 3, 2, 1)])
def test_functional_matches_reference_any_thread_count(shape, threads):
    # Covers both schedules: whole images per thread, and one image at a time with threaded GEMMs
    # (or, on the gathered and phased paths, one image's filter or channel panels across threads).
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        assert_matches_reference(shape, np.float32, seed=threads)
    finally:
        fastnn.set_num_threads(before)


def test_native_rejects_bad_geometry():
    # The bindings re-check everything that keeps the kernels in bounds, whatever Python passes.
    C = fastnn._backend._C
    x = np.zeros((2, 3, 6, 6), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError):
        C.conv2d_forward(x, w[:, :2], None, 1, 1, 0, 0)
    with pytest.raises(ValueError):
        C.conv2d_forward(x, w, np.zeros(3, np.float32), 1, 1, 0, 0)
    with pytest.raises(ValueError):
        C.conv2d_forward(x[:, :, :2], w, None, 1, 1, 0, 0)
    with pytest.raises(ValueError):
        C.conv2d_forward(x, w, None, 0, 1, 0, 0)
    with pytest.raises(ValueError):
        C.conv2d_forward(x, w, None, 1, 1, -1, 0)
    with pytest.raises(ValueError):
        C.conv2d_forward(np.asfortranarray(x), w, None, 1, 1, 0, 0)
    with pytest.raises(TypeError):
        C.conv2d_forward(x, w.astype(np.float64), None, 1, 1, 0, 0)
    with pytest.raises(ValueError):
        C.conv2d_backward_data(np.zeros((2, 4, 3, 3), np.float32), w, 6, 6, 1, 1, 0, 0)  # OH should be 4
    with pytest.raises(ValueError):
        C.conv2d_backward_weight(np.zeros((2, 4, 4, 4), np.float32), x[:1], 3, 3, 1, 1, 0, 0, True)


def test_functional_accepts_non_contiguous_input():
    x, w, b, stride, padding = make_inputs(SHAPES[1], np.float64)
    x_f = np.asfortranarray(x)
    w_t = np.ascontiguousarray(w.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # same values, permuted strides
    out, cache = F.conv2d_forward(x_f, w_t, b, stride, padding)
    ref, _ = R.conv2d_forward(x, w, b, stride, padding)
    assert_close(out, ref, rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(2).standard_normal(out.shape)[:, :, ::-1]  # negative strides
    dx, dw, db = F.conv2d_backward(dout, cache)
    ref_dx, ref_dw, ref_db = R.conv2d_backward(np.ascontiguousarray(dout), R.conv2d_forward(x, w, b, stride, padding)[1])
    assert_close(dx, ref_dx, rtol=1e-12, atol=1e-12, name="dx")
    assert_close(dw, ref_dw, rtol=1e-12, atol=1e-12, name="dw")


def _torch_conv(x, w, b, stride, padding, dout):
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    out = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), None if b is None else tb.grad.numpy()


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_vs_torch(shape):
    x, w, b, stride, padding = make_inputs(shape, np.float64)
    out, cache = R.conv2d_forward(x, w, b, stride, padding)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    got = (out,) + R.conv2d_backward(dout, cache)
    want = _torch_conv(x, w, b, stride, padding, dout)
    for name, g, t in zip(["out", "dx", "dw", "db"], got, want):
        assert_close(g, t, rtol=1e-10, atol=1e-10, name=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [SHAPES[1], SHAPES[2], (4, 16, 15, 13, 24, 3, 3, 1, 1)])
def test_conv2d_vs_torch(shape, dtype):
    (x, w, b, stride, padding, dout), got = run_functional(shape, dtype)
    want = _torch_conv(x, w, b, stride, padding, dout)
    tol = TOL[dtype]
    for name, g, t in zip(["out", "dx", "dw", "db"], got, want):
        assert_close(g, t, rtol=tol["rtol"], atol=tol["atol"] * np.sqrt(np.abs(t).max() + 1), name=name)


# ------------------------------------------------------------------------------------ bad input
def good_args():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda x, w, b: (x[0], w, b, 1, 0), ValueError, "x: expected 4 dimensions"),
        (lambda x, w, b: (x, w[0], b, 1, 0), ValueError, "w: expected 4 dimensions"),
        (lambda x, w, b: (x, w[:, :2], b, 1, 0), ValueError, "input channels"),
        (lambda x, w, b: (x, w, b[:3], 1, 0), ValueError, r"b: expected shape \(4,\)"),
        (lambda x, w, b: (x, w, b[None], 1, 0), ValueError, "b: expected 1 dimensions"),
        (lambda x, w, b: (x.astype(np.float32), w, b, 1, 0), TypeError, "dtype"),
        (lambda x, w, b: (x.astype(np.int64), w, b, 1, 0), TypeError, "float32 or float64"),
        (lambda x, w, b: (x.tolist(), w, b, 1, 0), TypeError, "NumPy or CuPy array"),
        (lambda x, w, b: (x, w, b, 0, 0), ValueError, "stride"),
        (lambda x, w, b: (x, w, b, (1, -1), 0), ValueError, "stride"),
        (lambda x, w, b: (x, w, b, 1.5, 0), TypeError, "stride"),
        (lambda x, w, b: (x, w, b, (1, 2, 3), 0), ValueError, "stride"),
        (lambda x, w, b: (x, w, b, 1, -1), ValueError, "padding"),
        (lambda x, w, b: (x, w, b, 1, (0, -2)), ValueError, "padding"),
        (lambda x, w, b: (x, w, b, 1, True), TypeError, "padding"),
        (lambda x, w, b: (x[:, :, :2], w, b, 1, 0), ValueError, "larger than the padded input"),
        (lambda x, w, b: (x[:, :, :, :1], w, b, 1, 0), ValueError, "larger than the padded input"),
        (lambda x, w, b: (x[:0], w, b, 1, 0), ValueError, "empty"),
        (lambda x, w, b: (x, w, b, 1, (2**63 - 1, 0)), ValueError, r"under 2\^31"),
        (lambda x, w, b: (x, w, b, 1, (0, 2**31)), ValueError, r"under 2\^31"),
        (lambda x, w, b: (x, w, b, (1, 2**31), 0), ValueError, r"under 2\^31"),
        (lambda x, w, b: (np.where(x > 1.5, np.nan, x), w, b, 1, 0), ValueError, "x contains NaN"),
        (lambda x, w, b: (x, np.where(w > 1.5, np.inf, w), b, 1, 0), ValueError, "w contains inf"),
        (lambda x, w, b: (x, w, np.full_like(b, np.nan), 1, 0), ValueError, "b contains NaN"),
    ],
)
def test_forward_rejects_bad_input(change, error, match):
    x, w, b = good_args()
    with pytest.raises(error, match=match):
        F.conv2d_forward(*change(x, w, b))


def test_native_module_refuses_geometry_that_would_overflow():
    # Padding of 2^63 - 1 once wrapped H + 2 ph around to H - 2 in the binding's own check, and the
    # padded copy of x then wrote past its buffer (heap corruption; found by fuzzing under ASan).
    from fastnn import _C

    x, w, _ = good_args()
    for args in ((1, 1, 2**63 - 1, 0), (1, 1, 0, 2**62), (2**61, 2**61, 2**61, 2**61), (2**31, 1, 0, 0)):
        with pytest.raises(ValueError, match=r"under 2\^31"):
            _C.conv2d_forward(x, w, None, *args)
    dout = np.ones((x.shape[0], w.shape[0], 2, 2), x.dtype)
    with pytest.raises(ValueError, match=r"under 2\^31"):
        _C.conv2d_backward_data(dout, w, 2**62, 4, 1, 1, 0, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padded_image_of_more_than_2_63_bytes(simd, dtype):
    # Each padded extent is under 2^31 (accepted), but C * (H + 2 ph) * (W + 2 pw) * sizeof(T) =
    # 16 * 2^30 * 2^30 * 4 (or 8) = 2^66 (2^67) bytes wrapped around to 0 in int64, so the forward
    # took the gathered in-place path meant for padded images under 2 MB and indexed its "0-byte"
    # padded copy at c * 2^60: a segfault. A huge stride keeps the output 3x3; only the centre window
    # (rows and columns ph .. ph + 1 of the padded image) sees the image.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 16, 2, 2)).astype(dtype)
    w = rng.standard_normal((16, 16, 2, 2)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    ph = 2**29 - 1  # H + 2 ph = 2^30
    out, cache = F.conv2d_forward(x, w, b, stride=ph, padding=ph)
    expected = np.broadcast_to(b[None, :, None, None], (1, 16, 3, 3)).copy()
    expected[0, :, 1, 1] += np.einsum("kcij,cij->k", w, x[0])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(out, expected, rtol=tol, atol=tol)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(dout, cache)
    assert_close(dx, np.einsum("k,kcij->cij", dout[0, :, 1, 1], w)[None], rtol=tol, atol=tol)
    assert_close(dw, np.einsum("k,cij->kcij", dout[0, :, 1, 1], x[0]), rtol=tol, atol=tol)
    assert_close(db, dout.sum(axis=(0, 2, 3)), rtol=tol, atol=tol)


def test_kernel_fitting_only_with_padding_is_accepted():
    x, w, b = good_args()
    out, _ = F.conv2d_forward(x[:, :, :2, :2], w, b, padding=1)
    assert out.shape == (2, 4, 2, 2)


def test_backward_rejects_bad_input():
    x, w, b = good_args()
    out, cache = F.conv2d_forward(x, w, b, stride=1, padding=1)
    dout = np.ones_like(out)
    with pytest.raises(ValueError, match="expected shape"):
        F.conv2d_backward(dout[:, :, :-1], cache)
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d_backward(dout.astype(np.float32), cache)
    with pytest.raises(TypeError, match="Conv2dCache"):
        F.conv2d_backward(dout, (x, w))
    with pytest.raises(ValueError, match="dout contains NaN"):
        F.conv2d_backward(np.where(out > 0, np.nan, dout), cache)
    dx, dw, db = F.conv2d_backward(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    assert_close(F.conv2d_backward_data(dout, cache), dx, rtol=0, atol=0, name="dx alone")
    dw_alone, db_alone = F.conv2d_backward_weight(dout, cache)
    assert_close(dw_alone, dw, rtol=0, atol=0, name="dw alone")
    assert_close(db_alone, db, rtol=0, atol=0, name="db alone")


@pytest.mark.cuda
def test_conv2d_cuda_matches_reference():
    if not fastnn.cuda_available():
        pytest.skip("no CUDA GPU, CuPy or fastnn._cuda")
    import cupy as cp

    for shape in SHAPES[:3]:
        x, w, b, stride, padding = make_inputs(shape, np.float32)
        out, cache = F.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), stride, padding)
        dout = np.random.default_rng(4).standard_normal(out.shape).astype(np.float32)
        dx, dw, db = F.conv2d_backward(cp.asarray(dout), cache)
        ref_out, ref_cache = R.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride, padding)
        ref = (ref_out,) + R.conv2d_backward(dout.astype(np.float64), ref_cache)
        for name, got, want in zip(["out", "dx", "dw", "db"], (out, dx, dw, db), ref):
            assert isinstance(got, cp.ndarray), name
            assert_close(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(np.abs(want).max() + 1), name=name)
