"""The training loop: learning, exact resume, early stopping, NaN detection, history, bad arguments."""
import json
import os
import sys

import numpy as np
import pytest

from fastnn import data, nn, optim
from fastnn import functional as F
from fastnn.functional import NonFiniteError
from fastnn.training import CheckpointError, History, NonFiniteLossError, Trainer, seed_everything


def blobs(n=240, seed=0):
    """Three Gaussian blobs in 4-D: an easy, deterministic classification problem."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], dtype=np.float32)
    x = centres[y] + 0.7 * rng.standard_normal((n, 4)).astype(np.float32)
    return x.astype(np.float32), y.astype(np.int64)


def mlp(seed, dropout=True):
    seed_everything(seed)
    layers = [nn.Linear(4, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.2, seed=seed))
    layers.append(nn.Linear(16, 3))
    return nn.Sequential(*layers)


def make_trainer(seed, checkpoint_path=None, patience=None, lr=0.03, dropout=True):
    model = mlp(seed, dropout)
    opt = optim.Adam(model.parameters(), lr=lr)
    return Trainer(model, nn.SoftmaxCrossEntropyLoss(), opt, scheduler=optim.StepLR(opt, step_size=1, gamma=0.7),
                   clip_grad_norm=1.0, patience=patience, checkpoint_path=checkpoint_path, progress=False, log=None)


def loaders(seed=0):
    x, y = blobs()
    train = data.DataLoader(x[:200], y[:200], batch_size=32, shuffle=True, seed=seed,
                            transform=lambda b, rng: b + 0.05 * rng.standard_normal(b.shape).astype(b.dtype))
    val = data.DataLoader(x[200:], y[200:], batch_size=64)
    return train, val


def weights(model):
    return {name: a.copy() for name, a in model.state_dict().items()}


def test_fit_lowers_the_loss_and_learns():
    trainer = make_trainer(0)
    train, val = loaders()
    history = trainer.fit(train, val, epochs=4)
    losses = history["train_loss"]
    assert losses[-1] < 0.6 * losses[0]
    assert history["val_accuracy"][-1] > 0.9
    assert history["epoch"] == [1, 2, 3, 4]
    assert history["lr"] == pytest.approx([0.03 * 0.7 ** k for k in range(4)])
    assert trainer.global_step == 4 * len(train)
    assert trainer.evaluate(val)["accuracy"] == pytest.approx(history["val_accuracy"][-1])


def test_resume_matches_an_uninterrupted_run_exactly(tmp_path):
    train, val = loaders()
    full = make_trainer(0, checkpoint_path=tmp_path / "full.npz")
    full.fit(train, val, epochs=3)

    path = tmp_path / "part.npz"
    first = make_trainer(0, checkpoint_path=path)
    first.fit(*loaders(), epochs=2)
    # Everything the third epoch needs must come from the checkpoint: other seeds, fresh loaders,
    # and random generators moved on, as in a new process.
    np.random.seed(123)
    resumed = make_trainer(99, checkpoint_path=path)
    resumed.load_checkpoint(path)
    assert resumed.epoch == 2
    resumed.fit(*loaders(), epochs=3)

    for name, a in weights(full.model).items():
        np.testing.assert_array_equal(weights(resumed.model)[name], a, err_msg=name)
    for key, a in full.optimizer.state_dict().items():
        np.testing.assert_array_equal(resumed.optimizer.state_dict()[key], a, err_msg=key)
    assert resumed.optimizer.lr == full.optimizer.lr
    assert resumed.history["train_loss"] == full.history["train_loss"]
    assert resumed.history["val_loss"] == full.history["val_loss"]
    assert sorted(os.listdir(tmp_path)) == ["full.npz", "part.npz"]  # no temporary files left behind


def test_checkpoint_needs_the_same_architecture(tmp_path):
    trainer = make_trainer(0)
    trainer.save_checkpoint(tmp_path / "c.npz")
    other = Trainer(mlp(0, dropout=False), nn.SoftmaxCrossEntropyLoss(),
                    optim.Adam(mlp(0, dropout=False).parameters()), progress=False, log=None)
    with pytest.raises((KeyError, ValueError)):
        other.load_checkpoint(tmp_path / "c.npz")
    np.savez(tmp_path / "weights.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastnn training checkpoint"):
        trainer.load_checkpoint(tmp_path / "weights.npz")


def test_early_stopping_restores_the_best_weights():
    x, y = blobs()
    # Validation labels rotated by one class: the better the model fits the training data, the
    # worse its validation loss, so epoch 1 is the best and patience 2 stops after epoch 3.
    val = data.DataLoader(x[200:], (y[200:] + 1) % 3, batch_size=64)
    train = data.DataLoader(x[:200], y[:200], batch_size=32, shuffle=True, seed=0)
    trainer = make_trainer(0, patience=2, lr=0.05, dropout=False)
    history = trainer.fit(train, val, epochs=10)
    assert trainer.stopped_early and len(history) == 3
    assert trainer.best_epoch == 1 and history["val_loss"][0] == min(history["val_loss"])

    reference = make_trainer(0, lr=0.05, dropout=False)
    reference.fit(data.DataLoader(x[:200], y[:200], batch_size=32, shuffle=True, seed=0), epochs=1)
    for name, a in weights(reference.model).items():
        np.testing.assert_array_equal(weights(trainer.model)[name], a, err_msg=name)
    assert trainer.evaluate(val)["loss"] == pytest.approx(history["val_loss"][0])


def test_reduce_lr_on_plateau_follows_the_validation_metric():
    x, y = blobs()
    val = data.DataLoader(x[200:], (y[200:] + 1) % 3, batch_size=64)
    model = mlp(0, dropout=False)
    opt = optim.Adam(model.parameters(), lr=0.05)
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), opt, progress=False, log=None,
                      scheduler=optim.ReduceLROnPlateau(opt, factor=0.5, patience=0))
    history = trainer.fit(data.DataLoader(x[:200], y[:200], batch_size=32), val, epochs=3)
    # Epoch 1 sets the best; epoch 2 is worse (patience 0), so epoch 3 runs at half the rate.
    assert history["lr"] == pytest.approx([0.05, 0.05, 0.025])


def test_nan_loss_stops_with_the_step_named():
    x, y = blobs(96)
    x[70, 2] = np.nan  # sample 70 is in batch 3 (batch size 32, no shuffle)
    trainer = make_trainer(0, dropout=False)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, step 3 \(global step 3\)") as info:
        trainer.fit(data.DataLoader(x, y, batch_size=32), epochs=1)
    assert (info.value.epoch, info.value.step, info.value.global_step) == (1, 3, 3)
    assert isinstance(info.value, FloatingPointError)
    assert trainer.global_step == 2  # the bad batch took no optimizer step


def test_other_loss_errors_are_not_reported_as_nan():
    x, y = blobs(64)
    y[5] = 7  # a label outside the 3 classes: a data error, not a diverging loss
    trainer = make_trainer(0, dropout=False)
    with pytest.raises(ValueError) as info:
        trainer.fit(data.DataLoader(x, y, batch_size=32), epochs=1)
    assert not isinstance(info.value, NonFiniteLossError)


def test_inf_loss_is_caught_too():
    trainer = Trainer(nn.Linear(1, 1), nn.MSELoss(), optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
                      progress=False, log=None)
    x = np.array([[1.0], [3e38]], dtype=np.float32)
    with np.errstate(over="ignore"), pytest.raises(NonFiniteLossError, match="loss is inf at epoch 1, step 1"):
        trainer.fit(data.DataLoader(x, x, batch_size=2), epochs=1)


def test_history_json_round_trip(tmp_path):
    trainer = make_trainer(0)
    history = trainer.fit(*loaders(), epochs=2)
    path = tmp_path / "sub" / "history.json"
    history.save_json(path)
    with open(path) as f:
        raw = json.load(f)
    assert [row["epoch"] for row in raw["epochs"]] == [1, 2]
    loaded = History.load_json(path)
    assert loaded.rows == history.rows
    assert set(loaded.columns()) >= {"epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                     "throughput", "epoch_time"}
    with pytest.raises(KeyError, match="no column"):
        loaded["perplexity"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="'epochs' list"):
        History.load_json(tmp_path / "bad.json")
    (tmp_path / "cut.json").write_text('{"epochs": [{"epoch": 1')  # a truncated file
    with pytest.raises(ValueError, match="not a fastnn history \\(not valid JSON"):
        History.load_json(tmp_path / "cut.json")


def test_history_plot(tmp_path, monkeypatch):
    history = History([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_accuracy": 0.5},
                       {"epoch": 2, "train_loss": 0.5, "val_loss": 0.9, "val_accuracy": 0.7}])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"fastnn\[plot\]"):
            history.plot(tmp_path / "h.png")
    else:
        history.plot(tmp_path / "h.png")
        assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were not installed
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[plot\]'"):
        history.plot(tmp_path / "h2.png")


def test_progress_bar_shows_loss_accuracy_and_throughput(capsys):
    pytest.importorskip("tqdm")
    model = mlp(0)
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()), progress=True,
                      unit="img")
    trainer.fit(*loaders(), epochs=1)
    out, err = capsys.readouterr()
    assert "epoch 1 | lr 0.001 | train loss" in out and "img/s" in out
    assert "epoch 1" in err and "loss=" in err and "acc=" in err and "img/s=" in err


def test_seed_everything_makes_runs_reproducible():
    histories = []
    for _ in range(2):
        trainer = make_trainer(5)
        histories.append(trainer.fit(*loaders(), epochs=2)["train_loss"])
    assert histories[0] == histories[1]
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_bad_arguments_are_rejected():
    model = mlp(0, dropout=False)
    opt = optim.Adam(model.parameters())
    loss = nn.SoftmaxCrossEntropyLoss()
    with pytest.raises(TypeError, match="Module"):
        Trainer(lambda x: x, loss, opt)
    with pytest.raises(TypeError, match="Loss"):
        Trainer(model, lambda a, b: 0.0, opt)
    with pytest.raises(TypeError, match="Optimizer"):
        Trainer(model, loss, object())
    for kwargs, message in (({"patience": 0}, "patience"), ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
                            ({"monitor": "train_loss"}, "monitor"), ({"scheduler_unit": "batch"}, "scheduler_unit")):
        with pytest.raises(ValueError, match=message):
            Trainer(model, loss, opt, **kwargs)
    with pytest.raises(ValueError, match="accuracy"):
        Trainer(model, nn.MSELoss(), opt, monitor="val_accuracy")
    train, _ = loaders()
    with pytest.raises(ValueError, match="needs val_loader"):
        Trainer(model, loss, opt, patience=2, progress=False, log=None).fit(train, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        Trainer(model, loss, opt, progress=False, log=None).fit(train, epochs=0)
    with pytest.raises(TypeError, match="pair"):
        Trainer(model, loss, opt, progress=False, log=None).fit([np.zeros((2, 4), np.float32)], epochs=1)


class _NaNGradient(nn.Module):
    """Identity forward; backward sends NaN down (as an overflowing gradient would)."""

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout * np.float32(np.nan)


def _images(n=96, nan_at=None):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    if nan_at is not None:
        x[nan_at, 0, 3, 3] = np.nan
    return x, rng.integers(0, 3, n)


@pytest.mark.parametrize("layers, culprit", [
    (lambda: [nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3)], "conv2d_forward: the output is not finite"),
    (lambda: [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3)], "max_pool2d_forward: x contains NaN"),
    (lambda: [nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(64, 3)], "batch_norm_forward: x contains NaN"),
])
def test_a_layer_meeting_nan_stops_training_like_a_nan_loss(layers, culprit):
    seed_everything(0)
    x, y = _images(nan_at=70)  # batch 3 (batch size 32, no shuffle)
    model = nn.Sequential(*layers())
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()), progress=False,
                      log=None)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, step 3 \(global step 3\)") as info:
        trainer.fit(data.DataLoader(x, y, batch_size=32), epochs=1)
    assert culprit in str(info.value) and culprit in info.value.detail
    assert (info.value.epoch, info.value.step, info.value.global_step) == (1, 3, 3)
    assert trainer.global_step == 2


def test_a_non_finite_weight_gradient_stops_training():
    seed_everything(0)
    x, y = _images()
    model = nn.Sequential(nn.Conv2d(1, 2, 3), _NaNGradient(), nn.Flatten(), nn.Linear(72, 3))
    before = weights(model)
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()), progress=False,
                      log=None)
    with pytest.raises(NonFiniteLossError, match=r"conv2d_backward: dw is not finite.*") as info:
        trainer.fit(data.DataLoader(x, y, batch_size=32), epochs=1)
    assert info.value.step == 1
    for name, a in before.items():  # the optimizer never stepped
        np.testing.assert_array_equal(weights(model)[name], a, err_msg=name)


def test_an_lstm_with_nan_weights_stops_training():
    from fastnn.training import CharLSTM

    ids = np.arange(200) % 5
    model = CharLSTM(5, embedding_dim=4, hidden_size=8)
    model.lstm.layers[0].Wh.data[0, 0] = np.nan
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()),
                      prepare_batch=lambda b: (b[0], b[1].reshape(-1)), progress=False, log=None)
    with pytest.raises(NonFiniteLossError, match="lstm_forward: h or c is NaN"):
        trainer.fit(data.BPTTBatches(ids, 4, 8), epochs=1)


def test_shape_errors_in_a_layer_are_not_reported_as_nan():
    x, y = _images(64)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(72, 3))  # 3 input channels, images have 1
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()), progress=False,
                      log=None)
    with pytest.raises(ValueError, match="input channels") as info:
        trainer.fit(data.DataLoader(x, y, batch_size=32), epochs=1)
    assert not isinstance(info.value, (NonFiniteLossError, NonFiniteError))


def test_the_ops_non_finite_checks_raise_a_value_error_subclass():
    x = np.full((1, 1, 4, 4), np.nan, np.float32)
    for call in (lambda: F.conv2d_forward(x, np.ones((1, 1, 3, 3), np.float32), None),
                 lambda: F.max_pool2d_forward(x, 2),
                 lambda: F.avg_pool2d_forward(x, 2),
                 lambda: F.softmax_cross_entropy_forward(np.full((2, 3), np.nan, np.float32), np.zeros(2, np.int64)),
                 lambda: nn.MSELoss().forward(np.full((2, 1), np.inf, np.float32), np.zeros((2, 1), np.float32))):
        with pytest.raises(NonFiniteError):
            call()
    assert issubclass(NonFiniteError, ValueError)


def test_nan_while_evaluating_is_reported_with_the_batch():
    seed_everything(0)
    x, y = _images(96, nan_at=70)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3))
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()), progress=False,
                      log=None)
    train = data.DataLoader(x[:64], y[:64], batch_size=32)
    message = r"evaluation hit a non-finite value at batch 3 after epoch 1"
    with pytest.raises(NonFiniteLossError, match=message) as info:
        trainer.fit(train, data.DataLoader(x, y, batch_size=32), epochs=2)
    assert info.value.phase == "evaluation" and trainer.epoch == 1
    xf, yf = blobs(64)
    xf[40, 0] = np.inf
    linear = make_trainer(0, dropout=False)
    with pytest.raises(NonFiniteLossError, match="evaluation loss is nan at batch 2 after epoch 0"):
        linear.evaluate(data.DataLoader(xf, yf, batch_size=32))


def _rewrite_meta(path, change):
    """Rewrites a checkpoint's meta entry through change(meta) (as an older or damaged file would be)."""
    with np.load(path) as f:
        files = {name: f[name] for name in f.files}
    meta = json.loads(str(files["meta"]))
    change(meta)
    files["meta"] = np.array(json.dumps(meta))
    np.savez(path, **files)


def _snapshot(trainer):
    return (weights(trainer.model), trainer.optimizer.t, trainer.optimizer.lr, trainer.epoch,
            None if trainer.scheduler is None else dict(trainer.scheduler.state_dict()))


def _assert_unchanged(trainer, snapshot):
    now = _snapshot(trainer)
    for name, a in snapshot[0].items():
        np.testing.assert_array_equal(now[0][name], a, err_msg=name)
    assert now[1:] == snapshot[1:]


def _plateau_trainer(seed=1):
    model = mlp(seed)
    opt = optim.Adam(model.parameters(), lr=0.03)
    return Trainer(model, nn.SoftmaxCrossEntropyLoss(), opt, scheduler=optim.ReduceLROnPlateau(opt), progress=False,
                   log=None)


def test_a_checkpoint_of_another_configuration_is_refused_and_changes_nothing(tmp_path):
    path = tmp_path / "c.npz"
    trainer = make_trainer(0)
    trainer.fit(*loaders(), epochs=1)
    trainer.save_checkpoint(path)
    cases = [
        (_plateau_trainer(), r"scheduler: StepLR in the checkpoint, ReduceLROnPlateau now"),
        (Trainer(mlp(1), nn.SoftmaxCrossEntropyLoss(), optim.Adam(mlp(1).parameters()), progress=False, log=None),
         r"scheduler: \{.*'StepLR'.*\} in the checkpoint, None now"),
    ]
    model = mlp(1)
    opt = optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    cases.append((Trainer(model, nn.SoftmaxCrossEntropyLoss(), opt, scheduler=optim.StepLR(opt, 1, 0.7),
                          progress=False, log=None), "optimizer: Adam in the checkpoint, SGD now"))
    model = mlp(1)
    opt = optim.Adam(model.parameters(), lr=0.03, betas=(0.8, 0.999))
    cases.append((Trainer(model, nn.SoftmaxCrossEntropyLoss(), opt, scheduler=optim.StepLR(opt, 2, 0.7),
                          progress=False, log=None),
                  r"optimizer.b1: 0.9 in the checkpoint, 0.8 now; scheduler.step_size: 1 in the checkpoint, 2 now"))
    for other, message in cases:
        before = _snapshot(other)
        with pytest.raises(CheckpointError, match=message) as info:
            other.load_checkpoint(path)
        assert str(path) in str(info.value) and "another configuration" in str(info.value)
        _assert_unchanged(other, before)


def test_run_config_is_recorded_and_must_match(tmp_path):
    path = tmp_path / "c.npz"
    trainer = make_trainer(0)
    trainer.run_config = {"batch_size": 32, "seed": 0}
    trainer.save_checkpoint(path)
    same = make_trainer(1)
    same.run_config = {"batch_size": 32, "seed": 0}
    same.load_checkpoint(path)
    other = make_trainer(1)
    other.run_config = {"batch_size": 16, "seed": 7}
    message = "batch_size: 32 in the checkpoint, 16 now; seed: 0 in the checkpoint, 7 now"
    with pytest.raises(CheckpointError, match=message):
        other.load_checkpoint(path)


def test_clip_grad_norm_is_recorded_and_patience_may_change(tmp_path):
    path = tmp_path / "c.npz"
    trainer = make_trainer(0)  # clip_grad_norm=1.0
    trainer.save_checkpoint(path)
    other = make_trainer(1)
    other.clip_grad_norm = 5.0  # the updates would differ from the run the checkpoint continues
    with pytest.raises(CheckpointError, match="clip_grad_norm: 1.0 in the checkpoint, 5.0 now"):
        other.load_checkpoint(path)
    patient = make_trainer(1, patience=7)
    patient.load_checkpoint(path)
    assert patient.patience == 7


def test_a_failed_load_changes_nothing(tmp_path):
    """Each part is checked before any is restored: a bad optimizer moment, scheduler state, generator
    state or counter, found after the weights, leaves the weights as they were."""
    path = tmp_path / "c.npz"
    trainer = make_trainer(0)
    trainer.fit(*loaders(), epochs=1)
    trainer.save_checkpoint(path)
    with np.load(path) as f:
        files = {name: f[name] for name in f.files}
    bad_moment = dict(files)
    bad_moment["optimizer.state.0.m"] = np.full_like(files["optimizer.state.0.m"], np.nan)
    np.savez(tmp_path / "moment.npz", **bad_moment)
    damaged = {"moment.npz": "non-finite"}
    for name, change, message in [
        ("scheduler.npz", lambda m: m.update(scheduler={"t": -1, "eta0": 0.03}), "t must be >= 0"),
        ("keys.npz", lambda m: m.update(scheduler={"best": 1.0, "bad_evaluations": 0}), "is not a StepLR's"),
        ("generator.npz", lambda m: m["model_generators"].update({"layers.2._rng_cpu": {"bit_generator": "nope"}}),
         "bit_generator|state"),
        ("counter.npz", lambda m: m.update(epoch=-3), "epoch must be >= 0"),
        ("missing.npz", lambda m: m.pop("numpy_global"), "an entry is missing: 'numpy_global'"),
    ]:
        (tmp_path / name).write_bytes(path.read_bytes())
        _rewrite_meta(tmp_path / name, change)
        damaged[name] = message
    for name, message in damaged.items():
        other = make_trainer(1)
        before = _snapshot(other)
        with pytest.raises(CheckpointError, match=message):
            other.load_checkpoint(tmp_path / name)
        _assert_unchanged(other, before)


def test_an_old_checkpoint_without_a_configuration_loads_with_a_warning(tmp_path):
    path = tmp_path / "c.npz"
    trainer = make_trainer(0)
    trainer.fit(*loaders(), epochs=1)
    trainer.save_checkpoint(path)
    _rewrite_meta(path, lambda m: m.pop("config"))
    resumed = make_trainer(1)
    with pytest.warns(UserWarning, match="before checkpoints recorded their configuration"):
        resumed.load_checkpoint(path)
    assert resumed.epoch == 1
    plateau = _plateau_trainer()  # without the record, the scheduler's state keys still give it away
    before = _snapshot(plateau)
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="is not a ReduceLROnPlateau's"):
        plateau.load_checkpoint(path)
    _assert_unchanged(plateau, before)


def test_run_config_must_be_json_able_before_any_training():
    # An np.int64 in run_config used to fail when the first checkpoint was written, an epoch later.
    model = mlp(0)
    with pytest.raises(TypeError, match="run_config must be JSON-able"):
        Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()), run_config={"batch": np.int64(32)},
                progress=False, log=None)
