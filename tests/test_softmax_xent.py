"""Fused softmax cross-entropy: reference gradient check, native vs reference, vs PyTorch, bad input."""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
import fastnn.reference as R
from fastnn.testing import assert_close, numerical_gradient

TOL = {np.float32: dict(rtol=1e-4, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-13)}


def random_problem(rng, n, c, dtype, scale=3.0):
    scores = (rng.standard_normal((n, c)) * scale).astype(dtype)
    labels = rng.integers(0, c, n)
    return scores, labels


def test_reference_gradient_matches_central_differences(rng):
    scores, labels = random_problem(rng, 5, 7, np.float64)
    _, cache = R.softmax_cross_entropy_forward(scores, labels)
    analytic = R.softmax_cross_entropy_backward(1.0, cache)
    numeric = numerical_gradient(lambda: R.softmax_cross_entropy_forward(scores, labels)[0], scores)
    assert_close(analytic, numeric, rtol=1e-6, atol=1e-9, name="dscores")


def test_reference_gradient_scales_with_dloss(rng):
    scores, labels = random_problem(rng, 4, 3, np.float64)
    _, cache = R.softmax_cross_entropy_forward(scores, labels)
    assert_close(R.softmax_cross_entropy_backward(2.5, cache), 2.5 * R.softmax_cross_entropy_backward(1.0, cache))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n,c",
    [(1, 1), (1, 2), (3, 10), (37, 10), (8, 7), (9, 17), (4096, 10), (129, 1000), (3, 33000), (1, 100003)],
)
def test_native_matches_reference(simd_path, rng, dtype, n, c):
    scores, labels = random_problem(rng, n, c, dtype)
    loss, cache = F.softmax_cross_entropy_forward(scores, labels)
    dscores = F.softmax_cross_entropy_backward(1.0, cache)
    ref_loss, ref_cache = R.softmax_cross_entropy_forward(scores.astype(np.float64), labels)
    ref_dscores = R.softmax_cross_entropy_backward(1.0, ref_cache)
    assert isinstance(loss, dtype) and dscores.dtype == dtype and dscores.shape == (n, c)
    assert_close(loss, ref_loss, **TOL[dtype], name="loss")
    # Gradient entries are O(1/N); compare with an absolute floor scaled to that size.
    assert_close(dscores, ref_dscores, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] / n, name="dscores")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_stay_finite(simd_path, rng, dtype):
    n, c = 64, 50
    scores = rng.choice(np.array([-1e4, 1e4, 0.0, 9999.0]), size=(n, c)).astype(dtype)
    labels = rng.integers(0, c, n)
    loss, cache = F.softmax_cross_entropy_forward(scores, labels)
    dscores = F.softmax_cross_entropy_backward(1.0, cache)
    ref_loss, ref_cache = R.softmax_cross_entropy_forward(scores.astype(np.float64), labels)
    assert np.isfinite(loss) and np.all(np.isfinite(dscores))
    assert_close(loss, ref_loss, rtol=1e-5, atol=1e-3, name="loss")
    assert_close(dscores, R.softmax_cross_entropy_backward(1.0, ref_cache), rtol=1e-4, atol=1e-6, name="dscores")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(5, 3), (300, 10), (7, 1000)])
def test_repeated_backward_on_one_cache_recomputes(simd_path, rng, dtype, n, c):
    """The first backward reuses the probabilities' buffer; later ones recompute and agree."""
    scores, labels = random_problem(rng, n, c, dtype)
    _, cache = F.softmax_cross_entropy_forward(scores, labels)
    first = F.softmax_cross_entropy_backward(1.0, cache)
    kept = first.copy()
    second = F.softmax_cross_entropy_backward(1.0, cache)
    third = F.softmax_cross_entropy_backward(-2.0, cache)
    assert second is not first and third is not second
    assert_close(second, kept, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] / n)
    assert_close(third, -2.0 * kept, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["rtol"] / n)
    second *= 0.0  # the caller owns each returned gradient: changing one leaves the others alone
    assert_close(first, kept, rtol=0, atol=0)


def test_gradient_rows_sum_to_zero(simd_path, rng):
    scores, labels = random_problem(rng, 50, 1000, np.float32)
    _, cache = F.softmax_cross_entropy_forward(scores, labels)
    d = F.softmax_cross_entropy_backward(1.0, cache).astype(np.float64)
    assert np.abs(d.sum(axis=1)).max() < 1e-6


def test_one_class_has_zero_loss_and_gradient(simd_path):
    loss, cache = F.softmax_cross_entropy_forward(np.array([[3.0], [-2.0]]), np.array([0, 0]))
    assert loss == 0.0
    assert np.all(F.softmax_cross_entropy_backward(1.0, cache) == 0.0)


def test_dloss_scales_gradient_and_accepts_arrays(rng):
    scores, labels = random_problem(rng, 6, 5, np.float64)
    _, cache = F.softmax_cross_entropy_forward(scores, labels)
    base = F.softmax_cross_entropy_backward(1.0, cache)
    assert_close(F.softmax_cross_entropy_backward(np.float32(-3.0), cache), -3.0 * base)
    assert_close(F.softmax_cross_entropy_backward(np.array(0.5), cache), 0.5 * base)


def test_non_contiguous_and_other_integer_labels(rng):
    scores, labels = random_problem(rng, 20, 12, np.float32)
    strided = np.asfortranarray(scores)
    view = np.repeat(scores, 2, axis=1)[:, ::2]
    for s in (strided, view):
        loss, cache = F.softmax_cross_entropy_forward(s, labels.astype(np.uint8))
        ref, _ = F.softmax_cross_entropy_forward(scores, labels)
        assert loss == ref


def test_threads_do_not_change_the_result(rng):
    scores, labels = random_problem(rng, 3000, 40, np.float32)
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        one, c1 = F.softmax_cross_entropy_forward(scores, labels)
        d1 = F.softmax_cross_entropy_backward(1.0, c1)
        fastnn.set_num_threads(2)
        two, c2 = F.softmax_cross_entropy_forward(scores, labels)
        d2 = F.softmax_cross_entropy_backward(1.0, c2)
    finally:
        fastnn.set_num_threads(before)
    assert one == two and np.array_equal(d1, d2)


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "scores,labels,error,match",
    [
        (np.zeros((3, 4), np.float32), np.array([0, 1, 4]), ValueError, r"y\[2\] = 4 is outside \[0, 4\)"),
        (np.zeros((3, 4), np.float32), np.array([0, -1, 1]), ValueError, r"y\[1\] = -1"),
        (np.zeros((2, 4), np.float32), np.array([1, 2**63], np.uint64), ValueError, r"y\[1\] = 9223372036854775808 is"),
        (np.zeros((3, 4), np.float32), np.array([0.0, 1.0, 2.0]), TypeError, "integer dtype"),
        (np.zeros((3, 4), np.float32), np.array([True, False, True]), TypeError, "integer dtype"),
        (np.zeros((3, 4), np.float32), np.array([0, 1]), ValueError, "2 labels but scores has 3 rows"),
        (np.zeros((3, 4), np.float32), np.array([[0, 1, 2]]), ValueError, "dimension"),
        (np.zeros((3, 4), np.int32), np.array([0, 1, 2]), TypeError, "float32 or float64"),
        (np.zeros((3, 4), np.float16), np.array([0, 1, 2]), TypeError, "float32 or float64"),
        (np.zeros(4, np.float32), np.array([0]), ValueError, "dimensions"),
        (np.zeros((0, 4), np.float32), np.zeros(0, np.int64), ValueError, "empty batch"),
        (np.zeros((2, 0), np.float32), np.zeros(2, np.int64), ValueError, "C = 0"),
        ([[0.0, 1.0]], np.array([0]), TypeError, "NumPy or CuPy array"),
        (np.zeros((1, 2)), [0], TypeError, "array of integers"),
    ],
)
def test_bad_input_raises_clearly(scores, labels, error, match):
    with pytest.raises(error, match=match):
        F.softmax_cross_entropy_forward(scores, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_or_inf_scores_name_the_row(simd_path, bad, dtype):
    scores = np.zeros((4, 9), dtype)
    scores[2, 5] = bad
    with pytest.raises(ValueError, match="row 2 is not finite"):
        F.softmax_cross_entropy_forward(scores, np.array([0, 1, 2, 3]))


def test_minus_inf_is_allowed_except_at_the_target(simd_path):
    scores = np.array([[0.0, -np.inf, 1.0], [0.0, 2.0, -np.inf]], np.float32)
    loss, cache = F.softmax_cross_entropy_forward(scores, np.array([0, 1]))
    ref, _ = R.softmax_cross_entropy_forward(scores.astype(np.float64), np.array([0, 1]))
    assert_close(loss, ref, rtol=1e-6)
    assert np.all(np.isfinite(F.softmax_cross_entropy_backward(1.0, cache)))
    with pytest.raises(ValueError, match="row 1 is not finite"):
        F.softmax_cross_entropy_forward(scores, np.array([0, 2]))


def test_backward_rejects_a_foreign_cache_and_bad_dloss(rng):
    scores, labels = random_problem(rng, 3, 4, np.float32)
    _, cache = F.softmax_cross_entropy_forward(scores, labels)
    with pytest.raises(TypeError, match="cache"):
        F.softmax_cross_entropy_backward(1.0, (scores, labels, None, None))
    with pytest.raises(TypeError, match="dloss"):
        F.softmax_cross_entropy_backward("1.0", cache)
    with pytest.raises(TypeError, match="dloss"):
        F.softmax_cross_entropy_backward(np.ones(3), cache)


def test_native_module_backstops_bad_arrays():
    """The binding itself refuses arrays a kernel could overrun, whatever the Python layer does."""
    from fastnn import _C

    scores = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="labels"):
        _C.softmax_xent_forward(scores, np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="labels"):
        _C.softmax_xent_forward(scores, np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="outside"):
        _C.softmax_xent_forward(scores, np.array([0, 1, 7], np.int64))
    with pytest.raises(ValueError, match="contiguous"):
        _C.softmax_xent_forward(np.zeros((4, 3), np.float32).T, np.zeros(3, np.int64))
    inv_sum = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="labels"):
        _C.softmax_xent_backward_in_place(scores, inv_sum, np.zeros(2, np.int64), 1.0)
    with pytest.raises(ValueError, match="inv_sum"):
        _C.softmax_xent_backward_in_place(scores, inv_sum[:2], np.zeros(3, np.int64), 1.0)
    with pytest.raises(TypeError, match="exps"):
        _C.softmax_xent_backward_in_place(scores.astype(np.float16), inv_sum, np.zeros(3, np.int64), 1.0)
    frozen = scores.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _C.softmax_xent_backward_in_place(frozen, inv_sum, np.zeros(3, np.int64), 1.0)
    with pytest.raises(ValueError, match="lse"):
        _C.softmax_xent_backward_recompute(scores, np.zeros(3, np.int64), np.zeros(2, np.float32), 1.0)
    with pytest.raises(TypeError, match="lse"):
        _C.softmax_xent_backward_recompute(scores, np.zeros(3, np.int64), np.zeros(3, np.float64), 1.0)
    # No classes (or no rows): refused, where the row blocking once divided by C = 0 (SIGFPE).
    for rows, classes in ((5, 0), (0, 4)):
        with pytest.raises(ValueError, match="at least 1"):
            _C.softmax_xent_backward_in_place(np.zeros((rows, classes), np.float32), np.ones(rows, np.float32),
                                              np.zeros(rows, np.int64), 1.0)
        with pytest.raises(ValueError, match="at least 1"):
            _C.softmax_xent_backward_recompute(np.zeros((rows, classes), np.float32), np.zeros(rows, np.int64),
                                               np.zeros(rows, np.float32), 1.0)


# ------------------------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(1, 2), (33, 10), (17, 1000), (2, 33000)])
def test_matches_torch_cross_entropy_vs_torch(rng, dtype, n, c):
    torch = pytest.importorskip("torch")
    scores, labels = random_problem(rng, n, c, dtype)
    loss, cache = F.softmax_cross_entropy_forward(scores, labels)
    dscores = F.softmax_cross_entropy_backward(1.0, cache)
    t_scores = torch.tensor(scores, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(t_scores, torch.tensor(labels))
    t_loss.backward()
    tol = TOL[dtype]["rtol"] * 10
    assert_close(loss, t_loss.item(), rtol=tol, atol=tol, name="loss")
    assert_close(dscores, t_scores.grad.numpy(), rtol=tol, atol=tol / n, name="dscores")


# ---------------------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(1, 1), (3, 10), (1000, 10), (65, 1000), (7, 1025), (4, 33000), (2, 100003)])
def test_cuda_matches_reference(rng, dtype, n, c):
    import cupy as cp

    scores, labels = random_problem(rng, n, c, dtype)
    loss, cache = F.softmax_cross_entropy_forward(cp.asarray(scores), cp.asarray(labels))
    dscores = F.softmax_cross_entropy_backward(1.0, cache)
    assert isinstance(loss, cp.ndarray) and loss.shape == () and isinstance(dscores, cp.ndarray)
    ref_loss, ref_cache = R.softmax_cross_entropy_forward(scores.astype(np.float64), labels)
    assert_close(loss, ref_loss, **TOL[dtype], name="loss")
    assert_close(dscores, R.softmax_cross_entropy_backward(1.0, ref_cache), rtol=TOL[dtype]["rtol"],
                 atol=TOL[dtype]["rtol"] / n, name="dscores")


@pytest.mark.cuda
def test_cuda_extreme_logits_dloss_on_device_and_determinism(rng):
    import cupy as cp

    n, c = 300, 2000
    scores = rng.choice(np.array([-1e4, 1e4, 0.0]), size=(n, c)).astype(np.float32)
    labels = rng.integers(0, c, n)
    s, y = cp.asarray(scores), cp.asarray(labels)
    loss1, cache1 = F.softmax_cross_entropy_forward(s, y)
    loss2, cache2 = F.softmax_cross_entropy_forward(s, y)
    d1 = F.softmax_cross_entropy_backward(cp.asarray(2.0, dtype=cp.float32), cache1)
    d2 = F.softmax_cross_entropy_backward(2.0, cache2)
    assert bool(loss1 == loss2) and bool(cp.all(d1 == d2))
    ref_loss, ref_cache = R.softmax_cross_entropy_forward(scores.astype(np.float64), labels)
    assert_close(loss1, ref_loss, rtol=1e-5, atol=1e-3)
    assert_close(d1, R.softmax_cross_entropy_backward(2.0, ref_cache), rtol=1e-4, atol=1e-6)


@pytest.mark.cuda
def test_cuda_bad_labels_give_nan_not_a_crash():
    import cupy as cp

    loss, _ = F.softmax_cross_entropy_forward(cp.zeros((3, 4), cp.float32), cp.asarray([0, 9, 1]))
    assert bool(cp.isnan(loss))


@pytest.mark.cuda
@pytest.mark.parametrize("c", [2, 33, 1025])  # one element per lane, several, and the block kernel
def test_cuda_nan_score_anywhere_makes_the_loss_nan(c):
    # A NaN away from the target once vanished in the (max, sum) merge of a lane that had seen
    # nothing else, leaving a finite, wrong loss that a training loop's isfinite check would miss.
    import cupy as cp

    scores = np.zeros((3, c), np.float32)
    scores[0, c - 1] = np.nan
    scores[1, :] = -np.inf
    scores[1, 0] = 0.0
    scores[1, c // 2 + 1 if c > 2 else 1] = np.nan
    loss, _ = F.softmax_cross_entropy_forward(cp.asarray(scores[:1]), cp.zeros(1, cp.int64))
    assert bool(cp.isnan(loss))
    loss, _ = F.softmax_cross_entropy_forward(cp.asarray(scores[1:2]), cp.zeros(1, cp.int64))
    assert bool(cp.isnan(loss))
    loss, _ = F.softmax_cross_entropy_forward(cp.asarray(scores[2:]), cp.zeros(1, cp.int64))
    assert not bool(cp.isnan(loss))


@pytest.mark.cuda
def test_cuda_mixed_devices_raise():
    import cupy as cp

    with pytest.raises(TypeError, match="all be NumPy or all CuPy"):
        F.softmax_cross_entropy_forward(cp.zeros((3, 4), cp.float32), np.zeros(3, np.int64))


@pytest.mark.cuda
@pytest.mark.parametrize("n,c", [(64, 10), (16, 5000)])
def test_cuda_vs_torch(rng, n, c):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    import cupy as cp

    scores, labels = random_problem(rng, n, c, np.float32)
    loss, cache = F.softmax_cross_entropy_forward(cp.asarray(scores), cp.asarray(labels))
    dscores = F.softmax_cross_entropy_backward(1.0, cache)
    t = torch.tensor(scores, device="cuda", requires_grad=True)
    tl = torch.nn.functional.cross_entropy(t, torch.tensor(labels, device="cuda"))
    tl.backward()
    assert_close(loss, tl.item(), rtol=1e-4, atol=1e-5)
    assert_close(dscores, t.grad.cpu().numpy(), rtol=1e-4, atol=1e-4 / n)
