"""Our packed GEMM (fastnn._C.gemm, the engine under conv2d) against NumPy's matmul, on sizes that
cross every blocking boundary (MR/NR edge tiles, MC, KC and NC blocks), both SIMD paths, both dtypes."""
import numpy as np
import pytest

import fastnn
from fastnn.testing import assert_close

C = fastnn._backend._C

# The streaming-store threshold is just over the machine's last-level cache (8 MiB at least); the
# sizes below that mean to write a C of 8.5 MB with streaming stores set it to 8 MiB, as it is on an
# 8 MiB-L3 machine, so that they reach those kernels wherever the tests run.
STREAM_BYTES_FOR_TESTS = 8 << 20


@pytest.fixture
def set_stream_bytes():
    """C.set_gemm_stream_bytes for one test: the threshold is restored after it."""
    before = C.gemm_stream_bytes()
    yield C.set_gemm_stream_bytes
    C.set_gemm_stream_bytes(before)


@pytest.fixture
def stream_at_8mib(set_stream_bytes):
    set_stream_bytes(STREAM_BYTES_FOR_TESTS)

# (M, N, K): single elements, edge tiles, and blocks larger than MC = 96, KC = 256 (float) or
# 128 (double), NC = 2048. M % 6 takes every value (the last row panel of 1..5 rows has its own
# kernels); (64, 1000, 300) is the one-A-block path with several B blocks per thread and two
# reduction blocks (the next block's source is prefetched while one computes).
# The AVX-512 kernels take panels together: (31, 49, 37) has two 12 x 32 blocks, a 6 x 32 block and a
# 1-row remainder against a B-panel pair, then a lone whole B panel (24 x 16 block) and a 1-column
# one; (100, 48, 300) is the skinny path with 24 x 16 and 12 x 16 blocks; (1030, 2048, 20) writes a
# C larger than 8 MB once (streaming stores).
SIZES = [(1, 1, 1), (5, 15, 3), (6, 16, 8), (7, 17, 33), (97, 100, 257), (13, 2050, 40), (200, 70, 600), (50, 9, 700),
         (33, 40, 20), (23, 64, 10), (64, 1000, 300), (31, 49, 37), (100, 48, 300), (1030, 2048, 20)]


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, n, k", SIZES)
def test_gemm_matches_numpy(m, n, k, dtype, trans_a, trans_b, simd, stream_at_8mib):
    rng = np.random.default_rng(m * 1000 + n + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = C.gemm(a, b, trans_a, trans_b)
    expected = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    assert c.dtype == dtype and c.shape == (m, n)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(c, expected, rtol=tol, atol=tol * np.sqrt(k), name="C")


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True)])
def test_gemm_large_output_written_once(trans_a, trans_b, stream_at_8mib):
    # C of 8.5 MB from one reduction block (K <= KC): written with streaming stores; 1030 = 171 x 6 + 4
    # rows, so the last row panel goes through the partial-rows kernel beside them.
    m, n, k = 1030, 2064, 40
    rng = np.random.default_rng(11)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    expected = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    assert_close(C.gemm(a, b, trans_a, trans_b), expected, rtol=1e-5, atol=1e-5 * np.sqrt(k), name="C")


def test_gemm_stream_threshold_follows_the_last_level_cache(set_stream_bytes):
    llc = C.last_level_cache_bytes()
    assert llc > 0
    assert C.gemm_stream_bytes() == max(8 << 20, llc + 1)
    assert set_stream_bytes(1 << 20) == max(8 << 20, llc + 1) and C.gemm_stream_bytes() == 1 << 20
    # Streamed (C of 1.3 MB >= 1 MiB) and not: the same product.
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 300)).astype(np.float32)
    b = rng.standard_normal((40, 1200)).astype(np.float32)
    streamed = C.gemm(a, b, True, False)
    set_stream_bytes(1 << 40)
    assert_close(streamed, C.gemm(a, b, True, False), rtol=1e-6, atol=1e-6, name="C")
    assert_close(streamed, a.T.astype(np.float64) @ b, rtol=1e-5, atol=1e-4, name="C")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gemm_any_thread_count(threads):
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        rng = np.random.default_rng(threads)
        a = rng.standard_normal((300, 520)).astype(np.float32)
        b = rng.standard_normal((520, 250)).astype(np.float32)
        assert_close(C.gemm(a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4, name="C")
    finally:
        fastnn.set_num_threads(before)


def test_gemm_empty_inner_dimension_gives_zeros():
    c = C.gemm(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32))
    assert c.shape == (3, 4) and not c.any()


def test_gemm_rejects_bad_input():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="inner dimensions"):
        C.gemm(a, np.ones((5, 2), np.float32))
    with pytest.raises(TypeError):
        C.gemm(a, np.ones((4, 2), np.float64))
    with pytest.raises(TypeError):
        C.gemm(a.astype(np.int32), np.ones((4, 2), np.int32))
    with pytest.raises(ValueError, match="C-contiguous"):
        C.gemm(np.asfortranarray(np.ones((3, 4), np.float32)), np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        C.gemm(np.ones(4, np.float32), np.ones((4, 2), np.float32))
    out = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="out"):
        C.gemm(a, np.ones((4, 2), np.float32), out=np.zeros((2, 3), np.float32))
    buffer = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        C.gemm(buffer[:4].reshape(2, 2), np.ones((2, 2), np.float32), out=buffer[2:6].reshape(2, 2))
    with pytest.raises(ValueError, match="accumulate needs out"):
        C.gemm(a, np.ones((4, 2), np.float32), accumulate=True)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        C.gemm(a, np.ones((4, 2), np.float32), out=out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_into_out_and_accumulate(dtype, simd):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((37, 20)).astype(dtype), rng.standard_normal((37, 45)).astype(dtype)
    start = rng.standard_normal((20, 45)).astype(dtype)
    out = start.copy()
    assert C.gemm(a, b, True, False, out=out, accumulate=True) is out
    tol = (1e-5, 1e-5) if dtype == np.float32 else (1e-12, 1e-12)
    assert_close(out, start + a.T @ b, *tol, name="accumulate")
    C.gemm(a, b, True, False, out=out)
    assert_close(out, a.T @ b, *tol, name="overwrite")


def test_backend_matmul_falls_back_for_other_inputs():
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    # Our GEMM for float arrays (any strides), NumPy for the rest (integers, mixed dtypes).
    assert_close(fastnn._backend.matmul(a, b[:, ::-1][:, ::-1], trans_b=True), a @ b.T, 1e-12, 1e-12, name="f64")
    ints = fastnn._backend.matmul(np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2))
    assert (ints == np.arange(6).reshape(2, 3) @ np.arange(6).reshape(3, 2)).all()
    out = np.ones((5, 4), np.float32)
    fastnn._backend.matmul(a, b, trans_b=True, out=out, accumulate=True)  # float64 operands, float32 out
    assert_close(out, 1 + a @ b.T, 1e-5, 1e-5, name="mixed out")
