"""Learning-rate schedules equal their formulas (and PyTorch's schedulers where one matches)."""
import math

import numpy as np
import pytest

from fastnn import optim
from fastnn.nn import Parameter


def _opt(lr=0.5):
    return optim.SGD([Parameter(np.zeros(2))], lr=lr)


def _lrs(sched, steps):
    out = [sched.optimizer.lr]
    for _ in range(steps):
        out.append(sched.step())
    return out


@pytest.mark.parametrize("make,formula", [
    (lambda o: optim.PowerLR(o, tau=4.0, c=0.5), lambda t: 0.5 / (1 + t / 4.0) ** 0.5),
    (lambda o: optim.ExponentialLR(o, tau=5.0), lambda t: 0.5 * 0.1 ** (t / 5.0)),
    (lambda o: optim.StepLR(o, step_size=3, gamma=0.5), lambda t: 0.5 * 0.5 ** (t // 3)),
    (lambda o: optim.InverseTimeLR(o, decay=0.2), lambda t: 0.5 / (1 + 0.2 * t)),
    (lambda o: optim.InverseSqrtLR(o), lambda t: 0.5 / math.sqrt(t + 1)),
    (lambda o: optim.PiecewiseConstantLR(o, boundaries=[2, 5], values=[0.3, 0.1, 0.01]),
     lambda t: 0.3 if t < 2 else (0.1 if t < 5 else 0.01)),
])
def test_schedule_formula(make, formula):
    sched = make(_opt())
    assert _lrs(sched, 12) == pytest.approx([formula(t) for t in range(13)], rel=1e-12)


def test_step_and_exponential_vs_torch():
    torch = pytest.importorskip("torch")
    for ours, theirs in [
        (lambda o: optim.StepLR(o, step_size=3, gamma=0.3), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.3)),
        (lambda o: optim.ExponentialLR(o, tau=4.0),
         lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.1 ** (1 / 4.0))),
    ]:
        sched = ours(_opt())
        topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.5)
        tsched = theirs(topt)
        for _ in range(10):
            topt.step()
            tsched.step()
            assert sched.step() == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)


def test_reduce_on_plateau_vs_torch():
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.95, 0.92, 0.91, 0.85, 0.86, 0.87, 0.88, 0.80, 0.81, 0.82, 0.83, 0.84]
    for mode, sign in (("min", 1.0), ("max", -1.0)):
        opt = _opt()
        sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, mode=mode)
        topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.5)
        tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, mode=mode, factor=0.5, patience=2,
                                                            threshold=0.0, threshold_mode="abs")
        for m in metrics:
            sched.step(sign * m)
            tsched.step(sign * m)
            assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        assert opt.lr < 0.5


def test_reduce_on_plateau_rules():
    opt = _opt(1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.1, patience=1, threshold=0.01, min_lr=0.05)
    assert sched.step(1.0) == 1.0       # first value: an improvement on +inf
    assert sched.step(0.995) == 1.0     # within the threshold: 1 bad evaluation
    assert sched.step(0.999) == pytest.approx(0.1)  # 2 bad > patience 1: reduce
    assert sched.step(2.0) == pytest.approx(0.1)
    assert sched.step(2.0) == pytest.approx(0.05)   # floored at min_lr
    with pytest.raises(ValueError):
        sched.step(float("nan"))


def test_scheduler_state_dict():
    sched = optim.StepLR(_opt(), step_size=2)
    _lrs(sched, 5)
    opt2 = _opt(lr=9.0)
    sched2 = optim.StepLR(opt2, step_size=2)
    sched2.load_state_dict(sched.state_dict())
    assert opt2.lr == pytest.approx(sched.optimizer.lr)
    assert sched2.step() == pytest.approx(sched.step())


def test_bad_arguments():
    with pytest.raises(ValueError):
        optim.PowerLR(_opt(), tau=0)
    with pytest.raises(ValueError):
        optim.StepLR(_opt(), step_size=0)
    with pytest.raises(ValueError):
        optim.PiecewiseConstantLR(_opt(), boundaries=[3, 2], values=[1, 2, 3])
    with pytest.raises(ValueError):
        optim.PiecewiseConstantLR(_opt(), boundaries=[3], values=[1])
    with pytest.raises(ValueError):
        optim.ReduceLROnPlateau(_opt(), factor=1.5)
    with pytest.raises(ValueError):
        optim.ReduceLROnPlateau(_opt(), mode="up")
    with pytest.raises(TypeError):
        optim.StepLR(object(), step_size=2)
