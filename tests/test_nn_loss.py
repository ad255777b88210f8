"""Losses: gradient checks in float64, PyTorch comparisons (value and gradient), bad input."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.testing import assert_close


def _regression(rng, shape=(4, 3)):
    return rng.standard_normal(shape), rng.standard_normal(shape)


def _classification(rng, n=5, c=4):
    return rng.standard_normal((n, c)) * 2, rng.integers(0, c, n)


CASES = {
    "MSELoss": (lambda: nn.MSELoss(), _regression),
    "L1Loss": (lambda: nn.L1Loss(), _regression),
    "HuberLoss": (lambda: nn.HuberLoss(0.7), _regression),
    "BCEWithLogitsLoss": (lambda: nn.BCEWithLogitsLoss(), lambda rng: (rng.standard_normal((4, 3)) * 3,
                                                                       rng.random((4, 3)))),
    "SoftmaxCrossEntropyLoss": (lambda: nn.SoftmaxCrossEntropyLoss(), _classification),
    "MultiClassHingeLoss": (lambda: nn.MultiClassHingeLoss(), _classification),
    "TripletLoss": (lambda: nn.TripletLoss(1.5), lambda rng: tuple(rng.standard_normal((5, 3)) for _ in range(3))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_gradcheck(case, rng):
    make, inputs = CASES[case]
    assert fastnn.gradcheck(make(), inputs(rng))


def _torch_loss(name, torch, pred, target):
    fn = torch.nn.functional
    if name == "MSELoss":
        return fn.mse_loss(pred, target)
    if name == "L1Loss":
        return fn.l1_loss(pred, target)
    if name == "HuberLoss":
        return fn.huber_loss(pred, target, delta=0.7)
    if name == "BCEWithLogitsLoss":
        return fn.binary_cross_entropy_with_logits(pred, target)
    if name == "SoftmaxCrossEntropyLoss":
        return fn.cross_entropy(pred, target)
    # torch's multi_margin_loss divides each row's sum by C; the CS231n loss does not.
    return fn.multi_margin_loss(pred, target) * pred.shape[1]


@pytest.mark.parametrize("case", [c for c in sorted(CASES) if c != "TripletLoss"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_vs_torch(case, dtype, rng):
    torch = pytest.importorskip("torch")
    make, inputs = CASES[case]
    pred, target = inputs(rng)
    pred = pred.astype(dtype)
    if target.dtype.kind == "f":
        target = target.astype(dtype)
    loss_fn = make()
    loss = loss_fn.forward(pred, target)
    dpred = loss_fn.backward()
    assert isinstance(loss, float)
    assert dpred.dtype == dtype and dpred.shape == pred.shape
    pt = torch.tensor(pred, requires_grad=True)
    loss_t = _torch_loss(case, torch, pt, torch.tensor(target))
    loss_t.backward()
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    assert loss == pytest.approx(loss_t.item(), rel=rtol, abs=1e-7)
    assert_close(dpred, pt.grad.numpy(), rtol, 1e-7 if dtype == np.float32 else 1e-12, f"{case} dpred")


def test_bce_with_logits_is_stable_for_large_logits():
    loss_fn = nn.BCEWithLogitsLoss()
    z = np.array([[800.0, -800.0]])
    loss = loss_fn(z, np.array([[0.0, 1.0]]))
    assert loss == pytest.approx(800.0)
    assert np.isfinite(loss_fn.backward()).all()


@pytest.mark.parametrize("bad", [3.0, -2.0, 1.0001, np.nan])
def test_bce_with_logits_refuses_targets_outside_0_1(bad):
    # 3.0 gave a loss of -9.99 (a negative cross-entropy) with no error.
    target = np.array([[0.0, 1.0], [0.5, bad]])
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\], got .* at index \(1, 1\) \(1 such\)"):
        nn.BCEWithLogitsLoss()(np.full((2, 2), 5.0), target)


def test_hinge_loss_by_hand():
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])  # the CS231n example
    loss = nn.MultiClassHingeLoss()(scores, np.array([0, 1, 2]))
    assert loss == pytest.approx((2.9 + 0.0 + 12.9) / 3)


def test_loss_bad_input(rng):
    with pytest.raises(ValueError, match="shape"):
        nn.MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(TypeError):
        nn.MSELoss()(np.zeros((2, 3)), np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError):
        nn.L1Loss()(np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="outside"):
        nn.SoftmaxCrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError):
        nn.MultiClassHingeLoss()(np.zeros((2, 3)), np.array([0, -1]))
    with pytest.raises(TypeError):
        nn.MultiClassHingeLoss()(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError):
        nn.HuberLoss(delta=0)
    with pytest.raises(ValueError, match="shape"):
        nn.TripletLoss()(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.MSELoss().backward()
    with pytest.raises(ValueError, match="empty"):
        nn.MSELoss()(np.zeros((0, 3)), np.zeros((0, 3)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_nan_prediction_is_a_clear_error(case, rng):
    make, inputs = CASES[case]
    args = list(inputs(rng))
    args[0] = args[0].copy()
    args[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN|not finite"):
        make()(*args)
