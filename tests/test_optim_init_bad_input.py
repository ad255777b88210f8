"""Bad hyperparameters and arguments are refused with a ValueError/TypeError naming them, instead of
silently making weights NaN (or a step a no-op): optimizers (constructors, the lr setter and
load_state_dict share one rule table), learning-rate schedules, initialisers, and text names."""
import math

import numpy as np
import pytest

from fastnn import data, init, optim
from fastnn.nn import Parameter

NAN, INF = math.nan, math.inf


def _param():
    p = Parameter(np.ones(3, np.float32))
    p.grad[...] = 1.0
    return p


def _trained(make=lambda ps: optim.Adam(ps, lr=0.1)):
    p = _param()
    opt = make([p])
    opt.step()
    return p, opt


# ---- optimizers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make,name", [
    (lambda ps: optim.RMSProp(ps, rho=1.0), "rho"),           # 1 - rho = 0: the step would be lr g / eps
    (lambda ps: optim.RMSProp(ps, eps=INF), "eps"),
    (lambda ps: optim.Adam(ps, eps=INF), "eps"),               # every step would be 0
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), "beta1"),
    (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), "beta2"),
    (lambda ps: optim.Adagrad(ps, eps=INF), "eps"),
    (lambda ps: optim.SGD(ps, lr=0.1, max_norm=INF), "max_norm"),
])
def test_optimizer_constructors_refuse_out_of_range(make, name):
    with pytest.raises(ValueError, match=name):
        make([_param()])


def test_adamw_weight_decay_is_the_decoupled_one():
    # The documented "every optimizer takes decoupled_weight_decay" was false for AdamW, which failed
    # with Python's "got multiple values for keyword argument".
    with pytest.raises(TypeError, match="AdamW: weight_decay is already the decoupled decay"):
        optim.AdamW([Parameter(np.zeros(3))], decoupled_weight_decay=0.1)


def test_nesterov_names_its_own_argument():
    with pytest.raises(ValueError, match="Nesterov: beta must be > 0"):
        optim.Nesterov([Parameter(np.zeros(3))], lr=0.1, beta=0)
    with pytest.raises(ValueError, match="SGD: Nesterov needs momentum > 0"):
        optim.SGD([Parameter(np.zeros(3))], lr=0.1, nesterov=True)


def test_optimizer_refuses_non_numbers():
    with pytest.raises(TypeError, match="lr must be a real number"):
        optim.SGD([_param()], lr=True)
    with pytest.raises(TypeError, match="beta1"):
        optim.Adam([_param()], betas=("0.9", 0.999))


@pytest.mark.parametrize("bad", [NAN, -1.0, INF])
def test_lr_setter_refuses_bad_lr(bad):
    p = _param()
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        opt.lr = bad
    assert opt.lr == 0.1
    opt.lr = 0.0  # 0 is allowed (a schedule may reach it)
    opt.step()
    assert (p.data == 1.0).all()


@pytest.mark.parametrize("key,value,match", [
    ("lr", np.array(np.nan), "lr must be finite"),
    ("lr", np.array(-0.5), "lr must be finite"),
    ("lr", np.array(np.inf), "lr must be finite"),
    ("step", np.array(-1), "step must be an integer >= 0"),
    ("step", np.array(1.5), "step must be an integer >= 0"),
    ("state.0.m", np.array([0.0, np.nan, 0.0]), "non-finite"),
    ("state.0.s", np.array([0.0, -1.0, 0.0]), "negative"),
])
def test_load_state_dict_checks_before_changing_anything(key, value, match):
    p, opt = _trained()
    sd = opt.state_dict()
    before = (opt.t, opt.lr, {k: v.copy() for k, v in opt.state[0].items()})
    sd[key] = value
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    assert (opt.t, opt.lr) == before[:2]
    for k, v in before[2].items():
        np.testing.assert_array_equal(opt.state[0][k], v)
    opt.step()
    assert np.isfinite(p.data).all()


# ---- learning-rate schedules ---------------------------------------------------------------------

def _opt(lr=0.5):
    return optim.SGD([_param()], lr=lr)


@pytest.mark.parametrize("make,name", [
    (lambda o: optim.PiecewiseConstantLR(o, [1], [0.1, NAN]), r"values\[1\]"),
    (lambda o: optim.PiecewiseConstantLR(o, [1], [0.1, -1.0]), r"values\[1\]"),  # gradient ascent
    (lambda o: optim.PiecewiseConstantLR(o, [1], [INF, 0.1]), r"values\[0\]"),
    (lambda o: optim.ReduceLROnPlateau(o, min_lr=NAN), "min_lr"),
    (lambda o: optim.ReduceLROnPlateau(o, min_lr=INF), "min_lr"),
    (lambda o: optim.ReduceLROnPlateau(o, threshold=NAN), "threshold"),
    (lambda o: optim.PowerLR(o, tau=INF), "tau"),
    (lambda o: optim.PowerLR(o, tau=4.0, c=INF), "c must"),
    (lambda o: optim.ExponentialLR(o, tau=INF), "tau"),
    (lambda o: optim.StepLR(o, step_size=2, gamma=INF), "gamma"),
    (lambda o: optim.InverseTimeLR(o, decay=INF), "decay"),
])
def test_schedules_refuse_bad_values(make, name):
    with pytest.raises(ValueError, match=name):
        make(_opt())


@pytest.mark.parametrize("make,name", [
    (lambda o: optim.StepLR(o, step_size=2.5), "step_size"),
    (lambda o: optim.PiecewiseConstantLR(o, [1.5], [0.1, 0.01]), r"boundaries\[0\]"),
    (lambda o: optim.ReduceLROnPlateau(o, patience=1.5), "patience"),
])
def test_schedules_refuse_non_integer_counts(make, name):
    with pytest.raises(TypeError, match=name):
        make(_opt())


def test_schedule_load_state_dict_checks():
    sched = optim.StepLR(_opt(), step_size=2)
    with pytest.raises(ValueError, match="eta0"):
        sched.load_state_dict({"t": 1, "eta0": NAN})
    with pytest.raises(ValueError, match="t must be >= 0"):
        sched.load_state_dict({"t": -1, "eta0": 0.5})
    assert (sched.t, sched.eta0) == (0, 0.5)
    plateau = optim.ReduceLROnPlateau(_opt(), patience=np.int64(2))
    with pytest.raises(ValueError, match="best"):
        plateau.load_state_dict({"best": NAN, "bad_evaluations": 0})
    plateau.load_state_dict({"best": INF, "bad_evaluations": 1})  # the initial best of mode "min"


# ---- initialisers --------------------------------------------------------------------------------

@pytest.mark.parametrize("fill,name", [
    (lambda w: init.normal(w, std=NAN), "std"),
    (lambda w: init.normal(w, std=INF), "std"),
    (lambda w: init.normal(w, mean=NAN), "mean"),
    (lambda w: init.constant(w, NAN), "value"),
    (lambda w: init.constant(w, -INF), "value"),
    (lambda w: init.constant(w, np.array([1.0, NAN, 2.0])), "non-finite"),
    (lambda w: init.uniform(w, NAN, 1.0), "a must"),
    (lambda w: init.uniform(w, 0.0, INF), "b must"),
    (lambda w: init.xavier_normal(w, gain=NAN), "gain"),
])
def test_init_refuses_non_finite(fill, name):
    w = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=name):
        fill(w)
    assert not w.any()


@pytest.mark.parametrize("fill,shape", [
    (init.he_normal, (0, 3)), (init.he_uniform, (0, 3)), (init.lecun_normal, (0, 3)),  # fan_in = 0
    (init.he_normal, (4, 0, 3, 3)), (init.lecun_normal, (2, 3, 0, 3)),
    (init.xavier_normal, (0, 0)), (init.xavier_uniform, (2, 3, 0, 3)),                   # fan_in + fan_out = 0
])
def test_fan_initialisers_return_empty_weights_unchanged(fill, shape):
    w = np.empty(shape, np.float32)
    assert fill(w) is w
    p = Parameter(np.empty(shape, np.float32))
    assert fill(p) is p and p.data.shape == shape


# ---- text names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../text/carroll-alice", "../../data/text/carroll-alice",
                                  str(data.text.TEXT_DIR / "carroll-alice")],
                         ids=["parent", "grandparent", "absolute"])
def test_load_text_refuses_paths(name):
    with pytest.raises(ValueError, match="a path.*known: austen-emma, carroll-alice"):
        data.load_text(name)
    with pytest.raises(ValueError, match="a path"):
        data.load_text(["carroll-alice", name])


def test_load_text_refuses_non_str_names():
    with pytest.raises(TypeError, match="str"):
        data.load_text(["carroll-alice", 3])
