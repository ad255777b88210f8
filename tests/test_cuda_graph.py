"""CudaGraphStep: a training step captured as a CUDA graph must train exactly as eager steps do.

The cuda-marked tests need a GPU (or tools/fake_cupy, which emulates stream capture: it replays the
recorded operations with the arguments baked at capture, so a per-step value that does not reach the
graph -- an lr from a schedule, Adam's bias correction -- shows up as a different result here).
"""
import contextlib

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.training import CudaGraphStep, Trainer

cuda = pytest.mark.cuda


def _batches(n_batches, batch, seed=0, classes=10, side=8):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 1, side, side)).astype(np.float32),
             rng.integers(0, classes, batch).astype(np.int64)) for _ in range(n_batches)]


def _model(seed=3):
    """A small CNN on 8x8 images (LeNet-5's layers, fewer of them): the GPU tests also run under the
    kernel emulator (tools/fake_cupy), where a LeNet-5 step takes seconds."""
    fastnn.init.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 12), nn.ReLU(), nn.Linear(12, 10))


def _eager_step(model, loss_fn, optimizer, x, y, clip=None):
    model.zero_grad()
    loss = loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    if clip is not None:
        optim.clip_grad_norm(model.parameters(), clip)
    optimizer.step()
    return loss


# ---- argument checks (no GPU needed) ---------------------------------------------------------------
def test_refuses_numpy_models():
    model = _model()
    with pytest.raises(ValueError, match="CuPy arrays; call model.to"):
        CudaGraphStep(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(loss_fn=object()), TypeError, "loss_fn must be a fastnn.nn.Loss"),
    (dict(optimizer=object()), TypeError, "optimizer must be a fastnn.optim.Optimizer"),
    (dict(loss_fn=nn.TripletLoss()), TypeError, "three inputs"),
    (dict(clip_grad_norm=0.0), ValueError, "clip_grad_norm must be positive"),
    (dict(warmup=0), ValueError, "warmup must be an int >= 1"),
    (dict(warmup=True), ValueError, "warmup must be an int >= 1"),
])
def test_argument_errors(kwargs, error, match):
    model = _model()
    args = dict(model=model, loss_fn=nn.SoftmaxCrossEntropyLoss(), optimizer=optim.Adam(model.parameters()))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        CudaGraphStep(**args)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="model must be a fastnn.nn.Module"):
        CudaGraphStep(object(), nn.SoftmaxCrossEntropyLoss(), optim.Adam(_model().parameters()))


def test_loss_forward_array_is_forward_without_the_host_copy():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((5, 3)), rng.random((5, 3))  # BCE targets lie in [0, 1]
    for loss_fn in (nn.MSELoss(), nn.L1Loss(), nn.HuberLoss(0.5), nn.BCEWithLogitsLoss()):
        value = loss_fn.forward_array(pred, target)
        assert isinstance(value, np.ndarray) or np.ndim(value) == 0
        assert float(value) == loss_fn.forward(pred, target)
    labels = rng.integers(0, 3, 5)
    for loss_fn in (nn.SoftmaxCrossEntropyLoss(), nn.MultiClassHingeLoss()):
        assert float(loss_fn.forward_array(pred, labels)) == loss_fn.forward(pred, labels)


def test_cli_cuda_graph_needs_cuda_device(capsys):
    from fastnn import cli

    with pytest.raises(SystemExit):
        cli.main(["train", "lenet5", "--cuda-graph"])
    assert "--cuda-graph needs --device cuda" in capsys.readouterr().err


# ---- on the GPU ------------------------------------------------------------------------------------
def _same_gemm_as(step, graph_steps_before):
    """The context for the eager reference of a CudaGraphStep call: the GEMMs that call ran. A graph
    launch runs fastnn's GEMM kernel (CuPy refuses cuBLAS in a capture), an eager call cuBLAS; the
    backend's capturing_cuda_graph() switches matmul to fastnn's kernel without capturing anything.
    So the two sides differ by no rounding of their own, only by what the graph gets wrong."""
    from fastnn import _backend

    return _backend.capturing_cuda_graph() if step.graph_steps > graph_steps_before else contextlib.nullcontext()


def _compare(make_optimizer, steps=6, clip=None, schedule=True, batch=8, model_fn=_model, batches=None):
    """Trains two copies of a model on the same batches, through CudaGraphStep and eagerly (each eager
    step with the GEMM its graph-side step used); returns (eager losses, graph losses, eager weights,
    graph weights, the step object)."""
    import cupy as cp

    batches = [(cp.asarray(x), cp.asarray(y)) for x, y in (batches or _batches(steps, batch))]
    models = [model_fn().to("cuda") for _ in range(2)]
    opts = [make_optimizer(m.parameters()) for m in models]
    scheds = [optim.StepLR(opt, 1, 0.7) if schedule else None for opt in opts]
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    step = CudaGraphStep(models[1], nn.SoftmaxCrossEntropyLoss(), opts[1], clip_grad_norm=clip, accuracy=True)
    eager_losses, graph_losses = [], []
    for x, y in batches:
        before = step.graph_steps
        loss, correct = step(x, y)
        graph_losses.append(float(loss))
        assert 0 <= int(correct) <= len(y)
        with _same_gemm_as(step, before):
            eager_losses.append(_eager_step(models[0], loss_fn, opts[0], x, y, clip))
        for sched in scheds:
            if sched is not None:
                sched.step()  # a new lr every step: the graph must read it at run time
    eager_w, graph_w = ([p.data.get() for p in m.parameters()] for m in models)
    return eager_losses, graph_losses, eager_w, graph_w, step


def _assert_same(eager_losses, graph_losses, eager_w, graph_w):
    np.testing.assert_allclose(graph_losses, eager_losses, rtol=1e-6, atol=1e-7)
    for a, b in zip(graph_w, eager_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@cuda
@pytest.mark.parametrize("make_optimizer", [
    lambda ps: optim.Adam(ps, lr=1e-2),
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: optim.RMSProp(ps, lr=1e-3),
    lambda ps: optim.AdamW(ps, lr=1e-2, max_norm=2.0),
], ids=["adam", "nesterov", "rmsprop", "adamw-maxnorm"])
def test_graph_steps_equal_eager_steps(make_optimizer):
    eager_losses, graph_losses, eager_w, graph_w, step = _compare(make_optimizer)
    _assert_same(eager_losses, graph_losses, eager_w, graph_w)
    assert (step.eager_steps, step.graph_steps, step.captures) == (2, 4, 1)
    assert eager_losses[-1] != eager_losses[0]  # it trained


@cuda
def test_graph_step_with_clipping_equals_eager():
    # A small max norm, so every step is clipped: the scale is decided on the device.
    _assert_same(*_compare(lambda ps: optim.Adam(ps, lr=1e-2), clip=0.05)[:4])


@cuda
def test_graph_step_with_batch_norm_updates_running_statistics():
    def model_fn():
        fastnn.init.manual_seed(5)
        # No conv bias before batch norm: its gradient is rounding noise (the mean is subtracted),
        # which Adam would scale up to full steps that differ between two GEMMs' roundings.
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(4 * 4 * 4, 10))

    eager_losses, graph_losses, eager_w, graph_w, step = _compare(lambda ps: optim.Adam(ps, lr=1e-2),
                                                                  model_fn=model_fn)
    _assert_same(eager_losses, graph_losses, eager_w, graph_w)
    assert step.graph_steps == 4


@cuda
def test_char_lstm_graph_step_equals_eager():
    """The char-LSTM benchmark's step (embedding, the LSTM layer's step loop, the head, clipping):
    the LSTM layer's GEMMs go through fastnn's kernel while capturing."""
    from fastnn.training import CharLSTM

    def model_fn():
        fastnn.init.manual_seed(7)
        return CharLSTM(11, 4, 8, carry_state=False)

    rng = np.random.default_rng(4)
    batches = [(rng.integers(0, 11, (2, 3)), rng.integers(0, 11, 6)) for _ in range(5)]
    eager_losses, graph_losses, eager_w, graph_w, step = _compare(lambda ps: optim.Adam(ps, lr=1e-2), clip=1.0,
                                                                  model_fn=model_fn, batches=batches)
    _assert_same(eager_losses, graph_losses, eager_w, graph_w)
    assert (step.eager_steps, step.graph_steps) == (2, 3)


@cuda
def test_other_shapes_run_eagerly_and_the_graph_resumes():
    import cupy as cp

    model = _model().to("cuda")
    opt = optim.Adam(model.parameters(), lr=1e-2)
    step = CudaGraphStep(model, nn.SoftmaxCrossEntropyLoss(), opt, warmup=1)
    ref = _model().to("cuda")
    ref_opt = optim.Adam(ref.parameters(), lr=1e-2)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    sizes = [8, 8, 8, 5, 8, 8, 5]
    for i, n in enumerate(sizes):
        x, y = _batches(1, n, seed=i)[0]
        before = step.graph_steps
        loss, correct = step(cp.asarray(x), cp.asarray(y))
        assert correct is None
        with _same_gemm_as(step, before):
            want = _eager_step(ref, loss_fn, ref_opt, cp.asarray(x), cp.asarray(y))
        np.testing.assert_allclose(float(loss), want, rtol=1e-6)
    assert (step.eager_steps, step.graph_steps, step.captures) == (3, 4, 1)
    for a, b in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(a.data.get(), b.data.get(), rtol=1e-5, atol=1e-6)


@cuda
def test_replaced_optimizer_state_is_captured_again(monkeypatch):
    import cupy as cp

    model, ref = _model().to("cuda"), _model().to("cuda")
    opt, ref_opt = optim.Adam(model.parameters(), lr=1e-2), optim.Adam(ref.parameters(), lr=1e-2)
    step = CudaGraphStep(model, nn.SoftmaxCrossEntropyLoss(), opt)
    # Dropping the old graph and its private pool must wait for the graph's last launch.
    synchronized_with_graph = []
    sync = step._stream.synchronize
    monkeypatch.setattr(step._stream, "synchronize",
                        lambda: (synchronized_with_graph.append(step._graph is not None), sync())[1])
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    batches = [(cp.asarray(x), cp.asarray(y)) for x, y in _batches(7, 8)]
    for x, y in batches[:4]:
        before = step.graph_steps
        step(x, y)
        with _same_gemm_as(step, before):
            _eager_step(ref, loss_fn, ref_opt, x, y)
    saved = ref_opt.state_dict()
    opt.load_state_dict(saved)  # new moment arrays: the captured graph would update the old ones
    ref_opt.load_state_dict(saved)
    for x, y in batches[4:]:
        before = step.graph_steps
        loss, _ = step(x, y)
        with _same_gemm_as(step, before):
            want = _eager_step(ref, loss_fn, ref_opt, x, y)
        np.testing.assert_allclose(float(loss), want, rtol=1e-6)
    assert step.captures == 2
    assert synchronized_with_graph == [True]
    for a, b in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(a.data.get(), b.data.get(), rtol=1e-5, atol=1e-6)


@cuda
def test_refuses_dropout_and_stateful_models():
    from fastnn.training import CharLSTM

    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10)).to("cuda")
    with pytest.raises(ValueError, match="draws random numbers .*Dropout"):
        CudaGraphStep(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()))
    lstm = CharLSTM(20, 8, 16).to("cuda")
    with pytest.raises(ValueError, match="carries state"):
        CudaGraphStep(lstm, nn.SoftmaxCrossEntropyLoss(), optim.Adam(lstm.parameters()))
    other = _model().to("cuda")
    with pytest.raises(ValueError, match="exactly the model's parameters"):
        CudaGraphStep(other, nn.SoftmaxCrossEntropyLoss(), optim.Adam(other.parameters()[:2]))


@cuda
def test_trainer_with_cuda_graph_matches_eager_trainer():
    from fastnn import data

    x, y = (np.concatenate(parts) for parts in zip(*_batches(5, 6)))
    histories = []
    for use_graph in (False, True):
        model = _model().to("cuda")
        opt = optim.Adam(model.parameters(), lr=5e-3)
        trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), opt, scheduler=optim.StepLR(opt, 1, 0.5),
                          progress=False, log=None, cuda_graph=use_graph)
        loader = data.DataLoader(x, y, batch_size=8, shuffle=True, seed=1, device="cuda")  # 3 full + 1 of 6
        history = trainer.fit(loader, epochs=3)
        histories.append(history)
        if use_graph:
            assert trainer._graph_step.graph_steps > 0 and trainer._graph_step.eager_steps > 0
    for key in ("train_loss", "train_accuracy"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-5)


@cuda
def test_fastnn_gemm_is_launched_once_before_the_capture(monkeypatch):
    """fastnn's GEMM kernel runs only in captured steps (eager ones use cuBLAS). With CUDA's lazy
    loading a kernel is loaded at its first launch, which must not fall inside the capture."""
    import cupy as cp

    from fastnn import _backend

    calls = []
    graph_matmul = _backend._graph_matmul

    def spy(a, *args):
        calls.append((a.dtype, step._stream.is_capturing()))
        return graph_matmul(a, *args)

    monkeypatch.setattr(_backend, "_graph_matmul", spy)
    model = _model().to("cuda")
    step = CudaGraphStep(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()), warmup=1)
    x, y = (cp.asarray(a) for a in _batches(1, 8)[0])
    step(x, y)
    assert calls == []  # the eager warm-up step: cuBLAS
    step(x, y)
    assert step.captures == 1 and calls[0] == (np.float32, False)
    assert calls[1:] and all(capturing for _, capturing in calls[1:])  # the Linear layers' GEMMs


@cuda
def test_a_step_that_synchronises_cannot_be_captured():
    import cupy as cp

    # MultiClassHingeLoss checks the label range on the host: fine eagerly, impossible in a graph.
    model = _model().to("cuda")
    step = CudaGraphStep(model, nn.MultiClassHingeLoss(), optim.Adam(model.parameters()), warmup=1)
    x, y = (cp.asarray(a) for a in _batches(1, 8)[0])
    step(x, y)  # the eager warm-up step
    with pytest.raises(RuntimeError, match="cannot be captured as a CUDA graph"):
        step(x, y)
    assert step._graph is None and step.captures == 0
    # The failed capture's forward left layer caches pointing into the dropped private pool: cleared.
    assert all(not m._caches for m in model.modules())


@cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_capture_gemm_equals_matmul(dtype):
    """fastnn._backend.matmul's CUDA-graph path (fastnn's tiled GEMM: CuPy refuses cuBLAS in a
    capture) against cupy.matmul: transposes, sizes off the 16-tile, out= and accumulate."""
    import cupy as cp

    from fastnn import _backend

    rng = np.random.default_rng(2)
    with _backend.capturing_cuda_graph():
        for m, n, k in [(1, 1, 1), (17, 5, 33), (8, 120, 48)]:
            for ta in (False, True):
                for tb in (False, True):
                    a = cp.asarray(rng.standard_normal((k, m) if ta else (m, k)).astype(dtype))
                    b = cp.asarray(rng.standard_normal((n, k) if tb else (k, n)).astype(dtype))
                    want = (a.T if ta else a).get().astype(np.float64) @ (b.T if tb else b).get().astype(np.float64)
                    got = _backend.matmul(a, b, trans_a=ta, trans_b=tb)
                    rtol = 1e-5 if dtype == np.float32 else 1e-12
                    np.testing.assert_allclose(got.get(), want, rtol=rtol, atol=rtol)
                    start = rng.standard_normal((m, n)).astype(dtype)
                    out = cp.asarray(start)
                    assert _backend.matmul(a, b, ta, tb, out=out, accumulate=True) is out
                    np.testing.assert_allclose(out.get(), start + want, rtol=rtol, atol=rtol)
                    wide = cp.zeros((m, 2 * n), dtype)  # a non-contiguous out: computed, then copied in
                    _backend.matmul(a, b, ta, tb, out=wide[:, ::2])
                    np.testing.assert_allclose(wide[:, ::2].get(), want, rtol=rtol, atol=rtol)
                    assert not wide[:, 1::2].get().any()
        with pytest.raises(ValueError, match="inner dimensions differ"):
            _backend.matmul(cp.zeros((2, 3), dtype), cp.zeros((4, 2), dtype))


@cuda
def test_embedding_in_a_graph_turns_bad_indices_into_nan():
    """Inside a capture the indices cannot be checked on the host: a row for an out-of-range index is
    NaN (so is the loss), the others are the lookup."""
    import cupy as cp

    from fastnn import _backend

    emb = nn.Embedding(5, 3).to("cuda")
    idx = cp.asarray(np.array([[0, 4], [7, -1]]))
    with _backend.capturing_cuda_graph():
        out = emb.forward(idx).get()
    w = emb.weight.data.get()
    np.testing.assert_array_equal(out[0], w[[0, 4]])
    assert np.isnan(out[1]).all()
    with pytest.raises(ValueError, match="indices must lie in"):
        emb.forward(idx)
