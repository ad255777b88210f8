"""Batch normalization: the NumPy reference is gradient-checked, fastnn is compared with the
reference (both SIMD paths, float32 and float64, (N, C) and (N, C, H, W)) and with PyTorch, and bad
input is refused without touching the running statistics."""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
import fastnn.reference as R
from fastnn.testing import assert_close, numerical_gradient

# Odd sizes, N=1, H=W=1, and four above the kernels' parallel threshold: (64, 600) one block of rows,
# (1003, 45) eight blocks of 128 rows, the last one short and not a multiple of the kernels' group of 4,
# (600, 1000) more than 1 MB of rows per thread, which the elementwise pass walks back to front.
SHAPES = [(5, 3), (1, 3, 7, 7), (2, 3, 5, 4), (7, 20), (4, 9, 3, 3), (3, 2, 1, 1), (2, 17, 11, 13), (64, 600),
          (1003, 45), (600, 1000), (4, 9, 33, 31)]


def _params(rng, c, dtype):
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    running_mean = rng.standard_normal(c).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, c).astype(dtype)
    return gamma, beta, running_mean, running_var


@pytest.mark.parametrize("shape", [(1003, 45), (4, 9, 33, 31)])
def test_same_result_for_any_thread_count(simd, shape):
    # The sums have a fixed order whatever the thread count (channel owners for (N, C, H, W); row blocks
    # that depend only on N for (N, C)): results are bitwise equal.
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    dout = rng.standard_normal(shape).astype(np.float32)
    gamma, beta, _, _ = _params(rng, shape[1], np.float32)
    before = fastnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            fastnn.set_num_threads(threads)
            rm, rv = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
            out, cache = F.batch_norm_forward(x, gamma, beta, rm, rv, training=True)
            results.append((out, rm, rv) + tuple(F.batch_norm_backward(dout, cache)))
    finally:
        fastnn.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 3, 2)])
def test_reference_gradient(shape, training):
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta, rm, rv = _params(rng, shape[1], np.float64)
    weights = rng.standard_normal(shape)

    def loss():
        out, _ = R.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training, 0.1, 1e-5)
        return (out * weights).sum()

    _, cache = R.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training, 0.1, 1e-5)
    dx, dgamma, dbeta = R.batch_norm_backward(weights, cache)
    assert_close(dx, numerical_gradient(loss, x), 1e-6, 1e-8, name="dx")
    assert_close(dgamma, numerical_gradient(loss, gamma), 1e-6, 1e-8, name="dgamma")
    assert_close(dbeta, numerical_gradient(loss, beta), 1e-6, 1e-8, name="dbeta")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference(simd, shape, training, dtype):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    gamma, beta, rm, rv = _params(rng, shape[1], dtype)
    ref_rm, ref_rv = rm.copy(), rv.copy()
    out, cache = F.batch_norm_forward(x, gamma, beta, rm, rv, training, 0.2, 1e-3)
    ref_out, ref_cache = R.batch_norm_forward(x, gamma, beta, ref_rm, ref_rv, training, 0.2, 1e-3)
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)
    assert out.dtype == dtype and out.shape == shape
    assert_close(out, ref_out, rtol, atol, name="out")
    assert_close(rm, ref_rm, rtol, atol, name="running_mean")
    assert_close(rv, ref_rv, rtol, atol, name="running_var")
    dout = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = F.batch_norm_backward(dout, cache)
    ref_dx, ref_dgamma, ref_dbeta = R.batch_norm_backward(dout, ref_cache)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    assert_close(dx, ref_dx, rtol, atol, name="dx")
    assert_close(dgamma, ref_dgamma, rtol, atol * 10, name="dgamma")
    assert_close(dbeta, ref_dbeta, rtol, atol * 10, name="dbeta")


def test_large_mean_small_spread_float32(simd):
    # var = E[(x - mu)^2] must not be computed as E[x^2] - mu^2 in float32: with mean 1000 and
    # spread 0.1 that cancels to noise.
    rng = np.random.default_rng(12)
    x = (1000 + 0.1 * rng.standard_normal((8, 4, 16, 16))).astype(np.float32)
    gamma, beta, rm, rv = _params(rng, 4, np.float32)
    out, _ = F.batch_norm_forward(x, gamma, beta, rm, rv)
    ref_out, _ = R.batch_norm_forward(x.astype(np.float64), gamma.astype(np.float64), beta.astype(np.float64),
                                      rm.astype(np.float64), rv.astype(np.float64))
    assert_close(out, ref_out, 2e-3, 2e-3, name="out")


def test_non_contiguous_input(simd):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((6, 3, 8, 5)).transpose(0, 1, 3, 2)[:, :, ::2]  # (6, 3, 3, 8), strided
    gamma, beta, rm, rv = _params(rng, 3, np.float64)
    ref_out, ref_cache = R.batch_norm_forward(np.ascontiguousarray(x), gamma, beta, rm.copy(), rv.copy())
    out, cache = F.batch_norm_forward(x, gamma, beta, rm, rv)
    assert_close(out, ref_out, 1e-10, 1e-12, name="out")
    dout = np.asfortranarray(rng.standard_normal(x.shape))
    dx, _, _ = F.batch_norm_backward(dout, cache)
    assert_close(dx, R.batch_norm_backward(np.ascontiguousarray(dout), ref_cache)[0], 1e-10, 1e-12, name="dx")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 7)])
def test_batch_norm_vs_torch(shape, training):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    x = rng.standard_normal(shape) * 2 - 1
    gamma, beta, rm, rv = _params(rng, shape[1], np.float64)
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    out, cache = F.batch_norm_forward(x, gamma, beta, rm, rv, training, 0.3, 1e-4)
    dout = rng.standard_normal(shape)
    dx, dgamma, dbeta = F.batch_norm_backward(dout, cache)
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(gamma, requires_grad=True)
    bt = torch.tensor(beta, requires_grad=True)
    out_t = torch.nn.functional.batch_norm(xt, rm_t, rv_t, gt, bt, training=training, momentum=0.3, eps=1e-4)
    out_t.backward(torch.tensor(dout))
    assert_close(out, out_t.detach().numpy(), 1e-10, 1e-12, name="out vs torch")
    assert_close(rm, rm_t.numpy(), 1e-10, 1e-12, name="running_mean vs torch")
    assert_close(rv, rv_t.numpy(), 1e-10, 1e-12, name="running_var vs torch")
    assert_close(dx, xt.grad.numpy(), 1e-9, 1e-11, name="dx vs torch")
    assert_close(dgamma, gt.grad.numpy(), 1e-9, 1e-11, name="dgamma vs torch")
    assert_close(dbeta, bt.grad.numpy(), 1e-9, 1e-11, name="dbeta vs torch")


def test_bad_input():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    gamma, beta, rm, rv = _params(rng, 3, np.float32)
    fwd = F.batch_norm_forward
    with pytest.raises(ValueError, match="dimensions"):
        fwd(x[0], gamma, beta, rm, rv)
    with pytest.raises(TypeError):
        fwd(x.astype(np.int64), gamma, beta, rm, rv)
    with pytest.raises(TypeError, match="dtype"):
        fwd(x, gamma.astype(np.float64), beta, rm, rv)
    with pytest.raises(TypeError):
        fwd(x, list(gamma), beta, rm, rv)
    with pytest.raises(ValueError, match="gamma"):
        fwd(x, gamma[:2], beta, rm, rv)
    with pytest.raises(ValueError, match="running_var"):
        fwd(x, gamma, beta, rm, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="momentum"):
        fwd(x, gamma, beta, rm, rv, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        fwd(x, gamma, beta, rm, rv, eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        fwd(x, gamma, beta, rm, rv, eps=float("nan"))
    with pytest.raises(TypeError, match="training"):
        fwd(x, gamma, beta, rm, rv, training="yes")
    with pytest.raises(ValueError, match="more than one value"):
        fwd(x[:1, :, :1, :1], gamma, beta, rm, rv)
    with pytest.raises(ValueError, match="empty"):
        fwd(x[:0], gamma, beta, rm, rv, training=False)
    # A negative running_var is a bad parameter, NaN/inf a non-finite value (F.NonFiniteError, which
    # the Trainer reports with the step), told apart by the native layer's exception type.
    with pytest.raises(ValueError, match="negative") as refused:
        fwd(x, gamma, beta, rm, -rv, training=False)
    assert not isinstance(refused.value, F.NonFiniteError)
    with pytest.raises(F.NonFiniteError, match="gamma"):
        fwd(x, np.full(3, np.nan, np.float32), beta, rm, rv)
    with pytest.raises(F.NonFiniteError, match="running_mean"):
        fwd(x, gamma, beta, np.full(3, np.inf, np.float32), rv, training=False)
    # NaN in x: refused, and the running statistics are left as they were.
    bad = x.copy()
    bad[2, 1, 0, 1] = np.nan
    rm_before, rv_before = rm.copy(), rv.copy()
    with pytest.raises(F.NonFiniteError, match="NaN"):
        fwd(bad, gamma, beta, rm, rv, training=True)
    assert np.array_equal(rm, rm_before) and np.array_equal(rv, rv_before)
    with pytest.raises(F.NonFiniteError, match="NaN"):
        fwd(bad, gamma, beta, rm, rv, training=False)
    # The native function's own exception is a ValueError subclass too.
    assert issubclass(fastnn._C.NonFiniteError, ValueError)
    with pytest.raises(fastnn._C.NonFiniteError, match="NaN"):
        fastnn._C.batch_norm_forward(bad, gamma, beta, rm.copy(), rv.copy(), True, 0.1, 1e-5)


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_read_only_running_statistics(strided):
    # Refused before computing, and running_mean untouched: a strided read-only running_var goes
    # through a copy whose write-back came after the kernel had updated running_mean.
    rng = np.random.default_rng(16)
    x = rng.standard_normal((4, 3)).astype(np.float64)
    gamma, beta = np.ones(3), np.zeros(3)
    rm = np.zeros(6)[::2] if strided else np.zeros(3)
    rv = np.ones(6)[::2] if strided else np.ones(3)
    rv.setflags(write=False)
    with pytest.raises(ValueError, match="running_var must be writeable"):
        F.batch_norm_forward(x, gamma, beta, rm, rv, training=True)
    assert not rm.any()
    with pytest.raises(ValueError, match="running_mean must be writeable"):
        F.batch_norm_forward(x, gamma, beta, np.broadcast_to(np.zeros(1), (3,)), np.ones(3), training=True)
    out, _ = F.batch_norm_forward(x, gamma, beta, rm, rv, training=False)  # evaluation only reads them
    np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-5))


def test_bad_backward_input():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    gamma, beta, rm, rv = _params(rng, 3, np.float32)
    out, cache = F.batch_norm_forward(x, gamma, beta, rm, rv)
    with pytest.raises(ValueError, match="shape"):
        F.batch_norm_backward(out[:2], cache)
    with pytest.raises(TypeError, match="dtype"):
        F.batch_norm_backward(out.astype(np.float64), cache)
    with pytest.raises(TypeError, match="cache"):
        F.batch_norm_backward(out, tuple(cache))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (1, 3, 7, 7), (2, 17, 11, 13), (64, 600)])
def test_cuda_matches_reference(shape, training, dtype):
    if not fastnn.cuda_available():
        pytest.skip("no CUDA GPU (or CuPy, or fastnn._cuda)")
    import cupy as cp

    rng = np.random.default_rng(17)
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    gamma, beta, rm, rv = _params(rng, shape[1], dtype)
    ref_rm, ref_rv = rm.copy(), rv.copy()
    rm_gpu, rv_gpu = cp.asarray(rm), cp.asarray(rv)
    out, cache = F.batch_norm_forward(cp.asarray(x), cp.asarray(gamma), cp.asarray(beta), rm_gpu, rv_gpu,
                                      training, 0.2, 1e-3)
    ref_out, ref_cache = R.batch_norm_forward(x, gamma, beta, ref_rm, ref_rv, training, 0.2, 1e-3)
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)
    assert isinstance(out, cp.ndarray)
    assert_close(out, ref_out, rtol, atol, name="out")
    assert_close(rm_gpu, ref_rm, rtol, atol, name="running_mean")
    assert_close(rv_gpu, ref_rv, rtol, atol, name="running_var")
    dout = rng.standard_normal(shape).astype(dtype)
    grads = F.batch_norm_backward(cp.asarray(dout), cache)
    for name, got, want in zip(["dx", "dgamma", "dbeta"], grads, R.batch_norm_backward(dout, ref_cache)):
        assert isinstance(got, cp.ndarray)
        assert_close(got, want, rtol, atol * 10, name=name)
