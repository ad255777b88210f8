"""Max and average pooling: the NumPy reference is gradient-checked, fastnn is compared with the
reference (both SIMD paths, float32 and float64, odd shapes) and with PyTorch, and bad input is refused."""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
import fastnn.reference as R
from fastnn.testing import assert_close, numerical_gradient, simd_paths, use_simd_path

POOLS = {
    "max": (F.max_pool2d_forward, F.max_pool2d_backward, R.max_pool2d_forward, R.max_pool2d_backward),
    "avg": (F.avg_pool2d_forward, F.avg_pool2d_backward, R.avg_pool2d_forward, R.avg_pool2d_backward),
}

# (x shape, kernel_size, stride, padding): odd sizes, N=1, C=3, non-square windows, overlapping
# windows (stride < kernel), gaps (stride > kernel), edges left over, and the benchmark geometries.
GEOMETRIES = [
    ((2, 3, 7, 7), 3, 2, 1),
    ((1, 3, 7, 7), 2, None, 0),
    ((2, 2, 9, 6), (3, 2), (2, 1), (1, 0)),
    ((1, 4, 8, 11), (2, 3), (1, 2), (1, 1)),
    ((2, 3, 10, 10), 2, 3, 0),
    ((1, 1, 5, 5), 5, 1, 2),
    ((2, 5, 16, 17), 3, 2, 1),
    ((1, 2, 1, 9), (1, 3), (1, 2), (0, 1)),
    ((3, 16, 10, 10), 2, None, 0),  # LeNet-5's second pooling: narrow unpadded planes (AVX2 gathers)
]


@pytest.fixture(params=simd_paths(widest=False))
def simd(request):
    """conftest's `simd` without the AVX-512 path: pooling has no AVX-512 kernels, so it would rerun AVX2."""
    yield from use_simd_path(request.param)


def _tolerances(dtype):
    return (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("geometry", [((1, 2, 5, 5), 3, 2, 1), ((2, 1, 4, 4), 2, None, 0),
                                      ((1, 1, 4, 5), (2, 3), (1, 2), (1, 1)), ((1, 2, 5, 4), (3, 2), (2, 1), (1, 0))])
def test_reference_gradient(kind, geometry):
    shape, k, s, p = geometry
    _, _, ref_fwd, ref_bwd = POOLS[kind]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    out, cache = ref_fwd(x, k, s, p)
    weights = rng.standard_normal(out.shape)
    dx = ref_bwd(weights, cache)
    num = numerical_gradient(lambda: (ref_fwd(x, k, s, p)[0] * weights).sum(), x)
    assert_close(dx, num, rtol=1e-6, atol=1e-8, name=f"{kind} pool dx")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_matches_reference(simd, kind, geometry, dtype):
    shape, k, s, p = geometry
    fwd, bwd, ref_fwd, ref_bwd = POOLS[kind]
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = fwd(x, k, s, p)
    ref_out, ref_cache = ref_fwd(x, k, s, p)
    assert out.dtype == dtype and out.shape == ref_out.shape
    rtol, atol = _tolerances(dtype)
    assert_close(out, ref_out, rtol, atol, name="out")
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = bwd(dout, cache)
    assert dx.dtype == dtype and dx.shape == x.shape
    assert_close(dx, ref_bwd(dout, ref_cache), rtol, atol, name="dx")


def test_max_pool_argmax_is_first_maximum_on_ties(simd):
    # Every window of a constant plane ties; the gradient must go to each window's top-left element.
    for size in (4, 10):  # 10: outputs narrower than a vector, eight at a time across rows
        x = np.ones((1, 2, size, size), dtype=np.float32)
        out, cache = F.max_pool2d_forward(x, 2)
        dx = F.max_pool2d_backward(np.ones_like(out), cache)
        expected = np.zeros((size, size), dtype=np.float32)
        expected[::2, ::2] = 1.0
        assert_close(dx[0, 1], expected, 0, 0, name="dx")
    # A tie at the last column of one row and the first of the next: row-major order decides.
    x = np.zeros((1, 1, 2, 2), dtype=np.float64)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 5.0
    out, cache = F.max_pool2d_forward(x, 2)
    assert int(cache.argmax[0, 0, 0, 0]) == 1


def test_outputs_larger_than_the_cache(simd):
    # Outputs of 8 MB and more are built plane by plane in a scratch plane and copied out with
    # streaming stores: check every value (and argmax) of such a call against sliding windows.
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.random.default_rng(7).standard_normal((1, 8, 514, 514)).astype(np.float32)
    out, cache = F.max_pool2d_forward(x, 2, 1, 0)  # (1, 8, 513, 513): 8.4 MB
    assert out.nbytes >= 8 << 20
    assert_close(out, sliding_window_view(x, (2, 2), axis=(2, 3)).max(axis=(-2, -1)), 0, 0, name="max out")
    flat = x.reshape(8, -1)
    picked = np.take_along_axis(flat, np.asarray(cache.argmax).reshape(8, -1).astype(np.int64), axis=1)
    assert_close(picked.reshape(out.shape), out, 0, 0, name="x at argmax")
    out, _ = F.avg_pool2d_forward(x, 3, 1, 1)  # (1, 8, 514, 514), zero padding counted
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))).astype(np.float64)
    want = sliding_window_view(padded, (3, 3), axis=(2, 3)).sum(axis=(-2, -1)) / 9
    assert_close(out, want, 1e-5, 1e-6, name="avg out")


def test_max_pool_padding_never_wins(simd):
    x = -np.arange(1, 50, dtype=np.float32).reshape(1, 1, 7, 7)  # all negative: a padded 0 would win
    out, _ = F.max_pool2d_forward(x, 3, 2, 1)
    assert (out < 0).all()
    assert_close(out, R.max_pool2d_forward(x, 3, 2, 1)[0], 0, 0, name="out")


def test_non_contiguous_input(simd):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2, 9, 3, 14)).astype(np.float32)
    x = base.transpose(0, 2, 1, 3)[:, :, :, ::2]  # (2, 3, 9, 7), neither C- nor F-contiguous
    for kind, (fwd, bwd, ref_fwd, ref_bwd) in POOLS.items():
        out, cache = fwd(x, 3, 2, 1)
        ref_out, ref_cache = ref_fwd(np.ascontiguousarray(x), 3, 2, 1)
        assert_close(out, ref_out, 1e-5, 1e-6, name=f"{kind} out")
        dout = rng.standard_normal(out.shape).astype(np.float32)[:, :, :, ::-1]
        assert_close(bwd(dout, cache), ref_bwd(np.ascontiguousarray(dout), ref_cache), 1e-5, 1e-6, name=f"{kind} dx")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("geometry", [((2, 3, 7, 7), 3, 2, 1), ((1, 4, 9, 8), (2, 3), (2, 1), (1, 1)),
                                      ((2, 8, 32, 32), 2, 2, 0)])
def test_pool_vs_torch(kind, geometry):
    torch = pytest.importorskip("torch")
    shape, k, s, p = geometry
    fwd, bwd, _, _ = POOLS[kind]
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    out, cache = fwd(x, k, s, p)
    dout = rng.standard_normal(out.shape)
    dx = bwd(dout, cache)
    xt = torch.tensor(x, requires_grad=True)
    stride = k if s is None else s
    if kind == "max":
        out_t = torch.nn.functional.max_pool2d(xt, k, stride, p)
    else:
        out_t = torch.nn.functional.avg_pool2d(xt, k, stride, p, count_include_pad=True)
    out_t.backward(torch.tensor(dout))
    assert_close(out, out_t.detach().numpy(), 1e-12, 1e-12, name="out vs torch")
    assert_close(dx, xt.grad.numpy(), 1e-12, 1e-12, name="dx vs torch")


@pytest.mark.parametrize("fwd", [F.max_pool2d_forward, F.avg_pool2d_forward])
def test_bad_input(fwd):
    x = np.zeros((1, 2, 6, 6), dtype=np.float32)
    with pytest.raises(TypeError):
        fwd(x.tolist(), 2)
    with pytest.raises(TypeError):
        fwd(x.astype(np.int32), 2)
    with pytest.raises(TypeError):
        fwd(x.astype(np.float16), 2)
    with pytest.raises(ValueError, match="dimensions"):
        fwd(x[0], 2)
    with pytest.raises(TypeError):
        fwd(x, 2.0)
    with pytest.raises(TypeError):
        fwd(x, True)
    with pytest.raises(ValueError):
        fwd(x, (2, 2, 2))
    with pytest.raises(ValueError, match="kernel_size"):
        fwd(x, 0)
    with pytest.raises(ValueError, match="stride"):
        fwd(x, 2, stride=(1, 0))
    with pytest.raises(ValueError, match="padding: every value must be at least 0"):
        fwd(x, 3, padding=-1)
    with pytest.raises(ValueError, match="half"):
        fwd(x, 3, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        fwd(x, (7, 2))
    with pytest.raises(ValueError, match="empty"):
        fwd(np.zeros((0, 2, 6, 6), dtype=np.float32), 2)
    bad = x.copy()
    bad[0, 1, 3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fwd(bad, 2)


def test_geometry_that_would_overflow_is_refused_at_both_layers():
    # Windows of 2^32 (mostly padding) over a 4x4 image once wrapped the int64 window area (to 0:
    # outputs inf; or negative: the sign flipped), and a height of 2^62 passed to a backward wrapped
    # H * W past the int32 check. Padded extents, kernels and strides of 2^31 and more are refused
    # by fastnn.functional and by the native module itself, before any arithmetic.
    from fastnn import _C

    x = np.ones((1, 1, 4, 4), np.float32)
    for kernel, padding in (((2**32, 2**32), (2**31, 2**31)), ((2**32, 2**31), (2**31, 2**30))):
        for fwd, native in ((F.avg_pool2d_forward, _C.avg_pool2d_forward), (F.max_pool2d_forward, _C.max_pool2d_forward)):
            with pytest.raises(ValueError, match="under 2\\^31"):
                fwd(x, kernel, stride=1, padding=padding)
            with pytest.raises(ValueError, match="under 2\\^31"):
                native(x, kernel, (1, 1), padding)
    with pytest.raises(ValueError, match="under 2\\^31"):
        F.max_pool2d_forward(x, 2, stride=2**31)
    dout = np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="under 2\\^31"):
        _C.max_pool2d_backward(dout, np.zeros((2, 3, 3, 3), np.int32), 2**62, 6, (2, 2), (2, 2), (0, 0))
    with pytest.raises(ValueError, match="under 2\\^31"):
        _C.avg_pool2d_backward(np.ones((2, 3, 6, 6), np.float32), 2**62, 6, (3, 3), (1, 1), (1, 1))


_WIDE_WINDOW_CHILD = """
import os, resource, sys
import numpy as np
if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # (AddressSanitizer's shadow memory needs more)
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import fastnn.functional as F
from fastnn import _C
k = 2**30 + 1  # windows 2^30 + 1 wide (padding 2^29 each side) over a 3-wide image: output 3x3
x = np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3)
for simd in ("portable", True):
    _C.set_simd(simd)
    for stride in (1, 2):
        out, cache = F.avg_pool2d_forward(x, (1, k), stride=(1, stride), padding=(0, 2**29))
        wo = 3 if stride == 1 else 2
        assert out.shape == (2, 1, 3, wo), out.shape
        np.testing.assert_allclose(out, np.repeat(x.sum(axis=3, keepdims=True) / k, wo, axis=3), rtol=1e-6)
        dx = F.avg_pool2d_backward(np.ones_like(out), cache)  # every window holds the whole row
        np.testing.assert_allclose(dx, np.full(x.shape, wo / k, np.float32), rtol=1e-6)
print("ok")
"""


def test_avg_backward_cost_does_not_grow_with_a_window_wider_than_the_plane(tmp_path):
    # The average-pooling backward kept two int64 tables of kernel_w entries and looped over every
    # window column: a window of 2^30 + 1 over a 3-wide image (legal: padding 2^29) took 16 GB and
    # minutes. Now only the window columns that can land in the plane (at most 2W + 1) are visited.
    # Run in a child limited to 4 GB of address space, so that the old behaviour fails (MemoryError)
    # instead of exhausting the machine.
    import subprocess
    import sys

    # (cwd: not the repository root, whose unbuilt fastnn/ would shadow the installed package)
    result = subprocess.run([sys.executable, "-c", _WIDE_WINDOW_CHILD], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_bad_backward_input(kind):
    fwd, bwd, _, _ = POOLS[kind]
    x = np.zeros((1, 2, 6, 6), dtype=np.float32)
    out, cache = fwd(x, 2)
    with pytest.raises(ValueError, match="shape"):
        bwd(np.zeros((1, 2, 3, 4), dtype=np.float32), cache)
    with pytest.raises(TypeError, match="dtype"):
        bwd(out.astype(np.float64), cache)
    with pytest.raises(TypeError, match="cache"):
        bwd(out, tuple(cache))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("geometry", [GEOMETRIES[0], GEOMETRIES[2], GEOMETRIES[4], GEOMETRIES[6]])
def test_cuda_matches_reference(kind, geometry, dtype):
    if not fastnn.cuda_available():
        pytest.skip("no CUDA GPU (or CuPy, or fastnn._cuda)")
    import cupy as cp

    shape, k, s, p = geometry
    fwd, bwd, ref_fwd, ref_bwd = POOLS[kind]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = fwd(cp.asarray(x), k, s, p)
    ref_out, ref_cache = ref_fwd(x, k, s, p)
    assert isinstance(out, cp.ndarray) and out.dtype == dtype
    rtol, atol = _tolerances(dtype)
    assert_close(out, ref_out, rtol, atol, name="out")
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = bwd(cp.asarray(dout), cache)
    assert isinstance(dx, cp.ndarray) and dx.dtype == dtype
    assert_close(dx, ref_bwd(dout, ref_cache), rtol, atol, name="dx")
