"""Optimizers: several steps of each equal torch.optim's with the same hyperparameters, one step
equals the hand formula, the regularisers do what they say, state_dict round-trips, clipping."""
import numpy as np
import pytest

from fastnn import optim
from fastnn.nn import Parameter
from fastnn.testing import assert_close


def _params(rng, dtype=np.float64):
    shapes = [(4, 3), (3,), (2, 3, 2, 2)]
    return [Parameter(rng.standard_normal(s).astype(dtype), f"p{i}") for i, s in enumerate(shapes)]


def _grads(rng, params, steps):
    return [[rng.standard_normal(p.data.shape).astype(p.data.dtype) for p in params] for _ in range(steps)]


TORCH_PAIRS = {
    "SGD": (lambda ps: optim.SGD(ps, lr=0.1), "SGD(ps, lr=0.1)"),
    "SGD_weight_decay": (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.01), "SGD(ps, lr=0.1, weight_decay=0.01)"),
    "Momentum": (lambda ps: optim.Momentum(ps, lr=0.1, beta=0.9), "SGD(ps, lr=0.1, momentum=0.9)"),
    "Nesterov": (lambda ps: optim.Nesterov(ps, lr=0.1, beta=0.8), "SGD(ps, lr=0.1, momentum=0.8, nesterov=True)"),
    "Adagrad": (lambda ps: optim.Adagrad(ps, lr=0.1), "Adagrad(ps, lr=0.1)"),
    "RMSProp": (lambda ps: optim.RMSProp(ps, lr=0.01, rho=0.9), "RMSprop(ps, lr=0.01, alpha=0.9)"),
    "Adam": (lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.99)), "Adam(ps, lr=0.01, betas=(0.8, 0.99))"),
    "Adam_weight_decay": (lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1), "Adam(ps, lr=0.01, weight_decay=0.1)"),
    "AdamW": (lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1), "AdamW(ps, lr=0.01, weight_decay=0.1)"),
}


@pytest.mark.parametrize("case", sorted(TORCH_PAIRS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimizer_vs_torch(case, dtype, rng):
    """Three steps with the same gradients (the first is the 'one step' check; later ones check the state)."""
    torch = pytest.importorskip("torch")
    ours_factory, theirs = TORCH_PAIRS[case]
    params = _params(rng, dtype)
    tparams = [torch.nn.Parameter(torch.tensor(p.data.copy())) for p in params]
    opt = ours_factory(params)
    topt = eval("torch.optim." + theirs, {"torch": torch, "ps": tparams})
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    for step, grads in enumerate(_grads(rng, params, 3)):
        for p, tp, g in zip(params, tparams, grads):
            p.grad[...] = g
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        for p, tp in zip(params, tparams):
            assert_close(p.data, tp.detach().numpy(), rtol, atol, f"{case} step {step + 1} {p.name}")


NATIVE_CASES = {
    "SGD": lambda ps: optim.SGD(ps, lr=0.1),
    "SGD_l1_wd_decoupled": lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.01, l1=0.003, decoupled_weight_decay=0.2),
    "Momentum": lambda ps: optim.Momentum(ps, lr=0.1, beta=0.9, l1=0.01),
    "Nesterov": lambda ps: optim.Nesterov(ps, lr=0.1, beta=0.8, weight_decay=0.05),
    "Adagrad": lambda ps: optim.Adagrad(ps, lr=0.1, l1=0.02),
    "RMSProp": lambda ps: optim.RMSProp(ps, lr=0.01, rho=0.9, weight_decay=0.01),
    "Adam": lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.99)),
    "AdamW_l1": lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1, l1=0.001),
}


@pytest.mark.parametrize("case", sorted(NATIVE_CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_native_update_is_bit_identical_to_numpy(case, dtype, rng, monkeypatch):
    """The fused CPU update does the NumPy path's arithmetic in the same order: equal bit for bit, on
    small parameters and on one large enough to be split over threads."""
    from fastnn.optim import optimizer as optimizer_module

    shapes = [(4, 3), (3,), (70001,)]
    runs = []
    for native in (True, False):
        monkeypatch.setattr(optimizer_module, "_NATIVE_CPU_UPDATE", native)
        local = np.random.default_rng(5)
        params = [Parameter(local.standard_normal(s).astype(dtype), f"p{i}") for i, s in enumerate(shapes)]
        params[0].data[0, 0] = 0.0  # sign(0) in the L1 term
        opt = NATIVE_CASES[case](params)
        for _ in range(3):
            for p in params:
                p.grad[...] = local.standard_normal(p.data.shape).astype(dtype)
            opt.step()
        runs.append([p.data.copy() for p in params] + [a.copy() for st in opt.state for a in st.values()])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_fused_update_leaves_non_contiguous_parameters_to_numpy(rng):
    base = rng.standard_normal((6, 4))
    strided = Parameter(base.copy(), "w")
    strided.data = base.copy()[:, ::2]  # not C-contiguous: the NumPy path updates it in place
    strided.grad = np.ones_like(strided.data)
    before = strided.data.copy()
    optim.Adam([strided], lr=0.1).step()
    assert_close(strided.data, before - 0.1, 1e-6, 1e-6, "strided Adam step")


def test_one_step_hand_formulas():
    w0, g = np.array([1.0, -2.0, 0.5]), np.array([0.5, 0.25, -1.0])

    def one_step(opt_class, **kw):
        p = Parameter(w0.copy())
        p.grad[...] = g
        opt = opt_class([p], **kw)
        opt.step()
        return p.data

    assert_close(one_step(optim.SGD, lr=0.1), w0 - 0.1 * g, 1e-12, 1e-14, "SGD")
    assert_close(one_step(optim.Momentum, lr=0.1, beta=0.9), w0 - 0.1 * g, 1e-12, 1e-14, "Momentum v = lr g")
    assert_close(one_step(optim.Nesterov, lr=0.1, beta=0.9), w0 - (0.9 * 0.1 * g + 0.1 * g), 1e-12, 1e-14, "Nesterov")
    assert_close(one_step(optim.Adagrad, lr=0.1), w0 - 0.1 * g / (np.abs(g) + 1e-10), 1e-12, 1e-14, "Adagrad")
    s = 0.01 * g * g
    assert_close(one_step(optim.RMSProp, lr=0.1, rho=0.99), w0 - 0.1 * g / (np.sqrt(s) + 1e-8), 1e-12, 1e-14, "RMSProp")
    # Adam's first bias-corrected step is lr * g / (|g| + eps): the sign of g, scaled by lr.
    assert_close(one_step(optim.Adam, lr=0.1), w0 - 0.1 * g / (np.abs(g) + 1e-8), 1e-12, 0, "Adam")
    assert_close(one_step(optim.AdamW, lr=0.1, weight_decay=0.5),
                 w0 * (1 - 0.05) - 0.1 * g / (np.abs(g) + 1e-8), 1e-12, 0, "AdamW")
    assert_close(one_step(optim.SGD, lr=0.1, l1=0.2), w0 - 0.1 * (g + 0.2 * np.sign(w0)), 1e-12, 1e-14, "L1")


def test_momentum_velocity_follows_the_lecture_form():
    p = Parameter(np.zeros(2))
    opt = optim.Momentum([p], lr=0.5, beta=0.9)
    v = np.zeros(2)
    for g in ([1.0, 2.0], [0.5, -1.0], [2.0, 0.0]):
        p.grad[...] = g
        opt.step()
        v = 0.9 * v + 0.5 * np.array(g)
        assert_close(opt.state[0]["velocity"], v, 1e-15, 0, "v")
    assert_close(p.data, -(0.5 * np.array([1, 2]) * (1 + 0.9 + 0.81) + 0.5 * np.array([0.5, -1]) * 1.9
                           + 0.5 * np.array([2, 0])), 1e-14, 1e-15, "w = -sum of v")


def test_updates_are_in_place_and_leave_grad_alone(rng):
    params = _params(rng)
    data_ids = [id(p.data) for p in params]
    grads = [rng.standard_normal(p.data.shape) for p in params]
    for p, g in zip(params, grads):
        p.grad[...] = g
    opt = optim.Adam(params, lr=0.1, weight_decay=0.1, l1=0.1)
    opt.step()
    assert [id(p.data) for p in params] == data_ids
    for p, g in zip(params, grads):
        assert_close(p.grad, g, 0, 0, "grad untouched")


def test_max_norm_constraint():
    w = Parameter(np.array([[3.0, 0.1], [4.0, 0.1]]))  # columns (units) of norm 5 and 0.14
    b = Parameter(np.array([10.0, 10.0]))
    opt = optim.SGD([w, b], lr=0.0, max_norm=2.0)
    opt.step()
    assert_close(np.linalg.norm(w.data, axis=0), [2.0, np.sqrt(0.02)], 1e-12, 0, "column norms")
    assert_close(b.data, [10.0, 10.0], 0, 0, "biases are not constrained")
    conv = Parameter(np.ones((3, 2, 2, 2)))  # each filter has norm sqrt(8)
    optim.SGD([conv], lr=0.0, max_norm=1.0).step()
    assert_close(np.sqrt((conv.data ** 2).sum(axis=(1, 2, 3))), np.ones(3), 1e-12, 0, "filter norms")


def test_state_dict_round_trip(rng, tmp_path):
    params = _params(rng)
    grads = _grads(rng, params, 4)
    opt = optim.Adam(params, lr=0.01)
    for g in grads[:2]:
        for p, gi in zip(params, g):
            p.grad[...] = gi
        opt.step()
    path = tmp_path / "opt.npz"
    np.savez(path, **opt.state_dict())
    params2 = [Parameter(p.data.copy()) for p in params]
    opt2 = optim.Adam(params2, lr=0.5)
    with np.load(path) as saved:
        opt2.load_state_dict(dict(saved))
    assert opt2.t == 2 and opt2.lr == 0.01
    for g in grads[2:]:
        for p, p2, gi in zip(params, params2, g):
            p.grad[...] = gi
            p2.grad[...] = gi
        opt.step()
        opt2.step()
    for p, p2 in zip(params, params2):
        assert_close(p2.data, p.data, 0, 0, "resumed training matches")
    bad = opt.state_dict()
    bad["state.0.m"] = bad["state.0.m"][:1]
    with pytest.raises(ValueError, match="shape"):
        opt2.load_state_dict(bad)
    with pytest.raises(KeyError):
        optim.SGD(params, lr=0.1, momentum=0.9).load_state_dict(opt.state_dict())


def test_lr_is_settable(rng):
    p = Parameter(np.ones(3))
    p.grad[...] = 1.0
    opt = optim.SGD([p], lr=1.0)
    opt.lr = 0.25
    opt.step()
    assert_close(p.data, np.full(3, 0.75), 0, 0, "uses the new lr")


def test_zero_grad():
    p = Parameter(np.ones(3))
    p.grad[...] = 2.0
    optim.SGD([p], lr=0.1).zero_grad()
    assert not p.grad.any()


def test_bad_arguments():
    p = Parameter(np.ones(3))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=float("nan"))
    with pytest.raises(ValueError):
        optim.SGD([p], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam([p], betas=(0.9, 1.5))
    with pytest.raises(ValueError):
        optim.SGD([p], lr=0.1, max_norm=0)
    with pytest.raises(TypeError):
        optim.SGD([np.ones(3)], lr=0.1)


# ---- clipping ----------------------------------------------------------------------------------------

def test_clip_grad_value():
    p = Parameter(np.zeros(4))
    p.grad[...] = [-3.0, -0.5, 0.5, 3.0]
    optim.clip_grad_value([p], 1.0)
    assert_close(p.grad, [-1.0, -0.5, 0.5, 1.0], 0, 0, "clipped")


def test_clip_grad_norm_keeps_the_direction(rng):
    params = _params(rng)
    for p in params:
        p.grad[...] = rng.standard_normal(p.data.shape)
    before = np.concatenate([p.grad.ravel() for p in params])
    total = optim.clip_grad_norm(params, 1.0)
    after = np.concatenate([p.grad.ravel() for p in params])
    assert total == pytest.approx(np.linalg.norm(before))
    assert np.linalg.norm(after) == pytest.approx(1.0, rel=1e-5)
    assert_close(after * total, before, 1e-5, 1e-12, "same direction")
    unchanged = optim.clip_grad_norm(params, 10.0)
    assert unchanged == pytest.approx(np.linalg.norm(after))
    assert_close(np.concatenate([p.grad.ravel() for p in params]), after, 0, 0, "below the limit: untouched")


def test_clip_grad_norm_vs_torch(rng):
    torch = pytest.importorskip("torch")
    params = _params(rng)
    tparams = [torch.nn.Parameter(torch.tensor(p.data)) for p in params]
    for p, tp in zip(params, tparams):
        p.grad[...] = rng.standard_normal(p.data.shape)
        tp.grad = torch.tensor(p.grad.copy())
    total = optim.clip_grad_norm(params, 0.5)
    total_t = torch.nn.utils.clip_grad_norm_(tparams, 0.5)
    assert total == pytest.approx(total_t.item(), rel=1e-12)
    for p, tp in zip(params, tparams):
        assert_close(p.grad, tp.grad.numpy(), 1e-12, 1e-14, "clipped grads")


def test_sum_of_squares_is_exact_in_float64_and_thread_independent(rng):
    import fastnn

    g = rng.standard_normal(300001).astype(np.float32)
    want = float((g.astype(np.float64) ** 2).sum())
    before = fastnn.get_num_threads()
    try:
        sums = []
        for threads in (1, 2, 3):
            fastnn.set_num_threads(threads)
            sums.append(fastnn._backend._C.sum_squares(g))
    finally:
        fastnn.set_num_threads(before)
    assert sums[0] == sums[1] == sums[2]
    assert sums[0] == pytest.approx(want, rel=1e-12)
    strided = Parameter(np.ones((4, 6))[:, ::2], "w")  # non-contiguous: the NumPy path
    strided.grad = np.full((4, 3), 2.0)[:, :]
    assert optim.clip_grad_norm([strided], 100.0) == pytest.approx(np.sqrt(48.0))


def test_state_follows_a_model_cast_after_earlier_steps(rng):
    # model.to(dtype=...) after some steps: the optimizer's moments are cast at its next step, and
    # the run continues as if they had been float64 all along (up to the float32 rounding they had).
    from fastnn import nn

    def run(cast_at):
        model = nn.Linear(3, 2)
        model.load_state_dict({"weight": np.full((3, 2), 0.5, np.float32), "bias": np.zeros(2, np.float32)})
        opt = optim.Adam(model.parameters(), lr=0.1)
        x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
        for step in range(4):
            if step == cast_at:
                model.to(dtype=np.float64)
                x = x.astype(np.float64)
            opt.zero_grad()
            y = model(x)
            model.backward(y - 1)
            opt.step()
        return model, opt

    model, opt = run(cast_at=2)
    assert all(a.dtype == np.float64 for state in opt.state for a in state.values())
    reference, _ = run(cast_at=0)
    for p, q in zip(model.parameters(), reference.parameters()):
        assert p.data.dtype == np.float64
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-6)


def test_state_of_a_replaced_parameter_of_another_shape_is_refused(rng):
    p = Parameter(np.zeros((2, 3)))
    opt = optim.Adam([p], lr=0.1)
    p.grad[...] = 1
    opt.step()
    p.data, p.grad = np.zeros((3, 3)), np.ones((3, 3))
    with pytest.raises(ValueError, match="another shape"):
        opt.step()
