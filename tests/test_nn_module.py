"""The Module contract: parameters, zero_grad, train/eval, to(), state dicts, atomic checkpoints,
shared modules (Siamese) and the containers."""
import os

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.testing import assert_close, numerical_gradient


@pytest.fixture(autouse=True)
def _seed():
    fastnn.init.manual_seed(0)


def _mlp():
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.BatchNorm1d(6), nn.Linear(6, 3))


def test_parameters_names_and_buffers():
    model = _mlp()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.2.gamma", "layers.2.beta",
                     "layers.3.weight", "layers.3.bias"]
    assert [p.name for p in model.parameters()] == ["weight", "bias", "gamma", "beta", "weight", "bias"]
    assert [n for n, _ in model.named_buffers()] == ["layers.2.running_mean", "layers.2.running_var"]
    assert list(model.state_dict()) == names + ["layers.2.running_mean", "layers.2.running_var"]


def test_backward_accumulates_and_zero_grad_resets(rng):
    model = _mlp()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    model.backward(np.ones_like(model(x)))
    first = [p.grad.copy() for p in model.parameters()]
    model.backward(np.ones_like(model(x)))
    for g1, p in zip(first, model.parameters()):
        assert_close(p.grad, 2 * g1, 1e-5, 1e-6, p.name)
    model.zero_grad()
    assert all(not p.grad.any() for p in model.parameters())


def test_train_eval_flags_reach_every_module():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(2)))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_backward_without_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="more times than forward"):
        nn.Linear(2, 2).backward(np.zeros((1, 2), np.float32))


def test_to_float64_and_back(rng):
    model = _mlp()
    model.to(dtype=np.float64)
    assert all(p.data.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    assert model.layers[2].running_var.dtype == np.float64
    assert model(rng.standard_normal((3, 4))).dtype == np.float64
    with pytest.raises(ValueError, match="device"):
        model.to("tpu")
    with pytest.raises(TypeError):
        model.to(dtype=np.int32)


def test_state_dict_round_trip_and_validation(rng):
    a, b = _mlp(), _mlp()
    a(rng.standard_normal((8, 4)).astype(np.float32))  # moves the running statistics
    b.load_state_dict(a.state_dict())
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert_close(y, x, 0, 0, name)
    state = a.state_dict()
    state["layers.0.weight"] = state["layers.0.weight"][:2]
    with pytest.raises(ValueError, match="layers.0.weight"):
        b.load_state_dict(state)
    state = a.state_dict()
    state["layers.3.bias"] = state["layers.3.bias"].astype(np.float64)
    with pytest.raises(TypeError, match="layers.3.bias"):
        b.load_state_dict(state)
    state = a.state_dict()
    del state["layers.2.running_mean"]
    state["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match="running_mean"):
        b.load_state_dict(state)


def test_save_load_npz_atomically(tmp_path, rng):
    a, b = _mlp(), _mlp()
    a(rng.standard_normal((8, 4)).astype(np.float32))
    path = tmp_path / "model.npz"
    a.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left behind
    b.load(path)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    a.eval(), b.eval()
    assert_close(b(x), a(x), 0, 0, "same predictions after load")
    with pytest.raises(ValueError, match="shape"):
        nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.BatchNorm1d(6), nn.Linear(6, 3)).load(path)
    with pytest.raises(KeyError):
        nn.Sequential(nn.Linear(4, 6)).load(path)


def test_save_failure_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model = _mlp()
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_shared_module_siamese_gradients(rng):
    """f is used twice in L = sum(f(a) * f(b)); the backward calls run in reverse order and both add
    into f's parameter gradients, which must equal the numerical gradient of L."""
    f = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(dtype=np.float64)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))

    def loss():
        f.clear_caches()
        return (f(a) * f(b)).sum()

    f.zero_grad()
    za, zb = f(a), f(b)
    db_in = f.backward(za)  # dL/dzb = za, popped first (called last)
    da_in = f.backward(zb)  # dL/dza = zb
    for p in f.parameters():
        assert_close(p.grad, numerical_gradient(loss, p.data), 1e-6, 1e-8, p.name)
    assert_close(da_in, numerical_gradient(loss, a), 1e-6, 1e-8, "dL/da")
    assert_close(db_in, numerical_gradient(loss, b), 1e-6, 1e-8, "dL/db")
    assert [n for n, _ in nn.Sequential(f, f).named_parameters()] == [n for n, _ in
                                                                      nn.Sequential(f).named_parameters()]


def test_shared_module_inside_one_sequential(rng):
    """The same layer twice in one Sequential: its parameters are listed once, gradients add up."""
    shared = nn.Linear(3, 3).to(dtype=np.float64)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    assert len(model.parameters()) == 2
    assert fastnn.gradcheck(model, rng.standard_normal((2, 3)))


class _OwnReLU(nn.ReLU):
    pass


def test_relu_before_max_pool_runs_after_it():
    from fastnn.nn.module import _execution_order

    relu, pool, conv = nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(1, 1, 1)
    assert _execution_order([conv, relu, pool, conv, relu, pool]) == [0, 2, 1, 3, 5, 4]
    assert _execution_order([relu, pool, pool]) == [1, 0, 2]
    assert _execution_order([relu, relu, pool]) == [0, 2, 1]
    assert _execution_order([pool, relu, nn.AvgPool2d(2)]) == [0, 1, 2]
    assert _execution_order([nn.LeakyReLU(), pool, _OwnReLU(), pool]) == [0, 1, 2, 3]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window, stride, padding", [(2, 2, 0), (3, 2, 1), ((2, 3), 1, 0)])
def test_reordered_relu_and_max_pool_give_identical_results(rng, dtype, window, stride, padding):
    """Sequential runs ReLU -> MaxPool2d as MaxPool2d -> ReLU: outputs and every gradient must be
    bit-for-bit those of the layers run one by one in the order written. Inputs with exact zeros,
    ties and windows without a positive value (where the two orders pick different maxima)."""
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=dtype)
    layers = [conv, nn.ReLU(), nn.MaxPool2d(window, stride, padding), nn.Flatten()]
    model = nn.Sequential(*layers)
    x = np.round(rng.standard_normal((3, 2, 7, 9)), 1).astype(dtype)
    x[:, :, :3] = -np.abs(x[:, :, :3])  # a band that is mostly negative after the convolution
    model.zero_grad()
    y = model(x)
    dy = np.round(rng.standard_normal(y.shape), 1).astype(dtype)
    dx = model.backward(dy)
    dw, db = conv.weight.grad.copy(), conv.bias.grad.copy()
    assert (y == 0).any() and (y > 0).any()

    model.zero_grad()
    z = x
    for layer in layers:
        z = layer.forward(z)
    dz = dy
    for layer in reversed(layers):
        dz = layer.backward(dz)
    np.testing.assert_array_equal(y, z)
    np.testing.assert_array_equal(dx, dz)
    np.testing.assert_array_equal(dw, conv.weight.grad)
    np.testing.assert_array_equal(db, conv.bias.grad)


def test_reordered_sequential_called_twice_before_backward(rng):
    """Two forwards, then two backwards in reverse order (a Siamese pair through LeNet-style layers)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, dtype=np.float64), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    a, b = rng.standard_normal((2, 1, 6, 6)), rng.standard_normal((2, 1, 6, 6))

    def loss():
        model.clear_caches()
        return (model(a) * model(b)).sum()

    model.zero_grad()
    za, zb = model(a), model(b)
    db_in = model.backward(za)
    da_in = model.backward(zb)
    for p in model.parameters():
        assert_close(p.grad, numerical_gradient(loss, p.data), 1e-6, 1e-8, p.name)
    assert_close(da_in, numerical_gradient(loss, a), 1e-6, 1e-8, "dL/da")
    assert_close(db_in, numerical_gradient(loss, b), 1e-6, 1e-8, "dL/db")


def test_triplet_network_with_a_shared_embedding(rng):
    torch = pytest.importorskip("torch")
    embed = nn.Linear(4, 3).to(dtype=np.float64)
    loss_fn = nn.TripletLoss(margin=5.0)
    a, p, n = (rng.standard_normal((6, 4)) for _ in range(3))
    loss = loss_fn(embed(a), embed(p), embed(n))
    da, dp, dn = loss_fn.backward()
    embed.backward(dn), embed.backward(dp), embed.backward(da)

    w = torch.tensor(embed.weight.data, requires_grad=True)
    ea, ep, en = (torch.tensor(v) @ w for v in (a, p, n))
    bracket = ((ea - ep) ** 2).sum(1) - ((ea - en) ** 2).sum(1) + 5.0
    loss_t = bracket.clamp(min=0).mean()
    loss_t.backward()
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    assert_close(embed.weight.grad, w.grad.numpy(), 1e-10, 1e-12, "dW")


def test_concat_joins_branches_on_channels(rng):
    model = nn.Concat(nn.Conv2d(2, 3, 1), nn.MaxPool2d(3, stride=1, padding=1))
    y = model(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    assert y.shape == (1, 5, 5, 5)


def test_eval_forwards_do_not_pile_up_caches(rng):
    model = _mlp().eval()
    for _ in range(5):
        model(rng.standard_normal((2, 4)).astype(np.float32))
    assert all(len(m._caches) <= 1 for m in model.modules())
    model.train()
    model(rng.standard_normal((2, 4)).astype(np.float32))
    model.zero_grad()
    assert all(len(m._caches) == 0 for m in model.modules())


def _bad_files(folder, good):
    """name -> path of files that are not readable .npz archives."""
    data = good.read_bytes()
    files = {"empty": b"", "truncated": data[:len(data) // 2], "garbage": b"\x00\x01junk" * 50,
             "text": b"layers.0.weight = 1\n"}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.npz"
        paths[name].write_bytes(content)
    np.save(folder / "array.npy", np.zeros(3))
    paths["npy"] = folder / "array.npy"
    import pickle

    paths["pickle"] = folder / "pickled.npz"
    paths["pickle"].write_bytes(pickle.dumps({"a": 1}))
    paths["folder"] = folder / "a-folder"
    paths["folder"].mkdir()
    return paths


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "text", "npy", "pickle", "folder"])
def test_loading_a_file_that_is_not_an_npz_names_it(tmp_path, kind):
    from fastnn import optim
    from fastnn.training import CheckpointError, Trainer

    good = tmp_path / "good.npz"
    _mlp().save(good)
    path = _bad_files(tmp_path, good)[kind]
    with pytest.raises(CheckpointError, match="not a fastnn checkpoint") as info:
        _mlp().load(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)
    model = _mlp()
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters()), progress=False, log=None)
    with pytest.raises(CheckpointError, match="not a fastnn checkpoint") as info:
        trainer.load_checkpoint(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        _mlp().load(tmp_path / "missing.npz")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc/self/fd")
@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage", "text", "npy", "pickle"])
def test_a_file_that_is_not_an_npz_is_closed_when_refused(tmp_path, kind):
    from fastnn.training import CheckpointError

    good = tmp_path / "good.npz"
    _mlp().save(good)
    path = _bad_files(tmp_path, good)[kind]
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(CheckpointError) as info:
        _mlp().load(path)
    # While `info` holds the traceback, a file np.load left open would still be open here.
    assert len(os.listdir("/proc/self/fd")) == before, str(info.value)


def test_saving_onto_a_folder_says_so(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; give a file path"):
        _mlp().save(tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path, umask):
    from fastnn.training import History

    old = os.umask(umask)
    try:
        _mlp().save(tmp_path / "model.npz")
        History([{"epoch": 1}]).save_json(tmp_path / "history.json")
    finally:
        os.umask(old)
    for name in ("model.npz", "history.json"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask, name


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "model.npz"
    _mlp().save(path)
    os.chmod(path, 0o640)
    _mlp().save(path)  # written anew through a temporary file, then renamed over it
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_an_unreadable_file_is_not_called_corrupt(tmp_path, monkeypatch):
    # (Tested through np.load: permissions do not stop root, who runs CI.)
    from fastnn import _io

    path = tmp_path / "model.npz"
    _mlp().save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_io.np, "load", refuse)
    with pytest.raises(PermissionError):
        _mlp().load(path)


def _all_layers_model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Tanh())),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * 4 * 4, 5))


@pytest.mark.parametrize("training", [False, True])
def test_no_grad_forward_keeps_no_cache_and_gives_the_same_output(rng, training):
    fastnn.init.manual_seed(0)
    model = _all_layers_model().train(training)
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    if training:  # Dropout draws its masks: the same seed for both calls
        model.layers[6]._rng_cpu = np.random.default_rng(5)
    expected = model(x)
    model.clear_caches()
    if training:
        model.layers[6]._rng_cpu = np.random.default_rng(5)
    assert fastnn.is_grad_enabled()
    with fastnn.no_grad():
        assert not fastnn.is_grad_enabled()
        out = model(x)
    assert fastnn.is_grad_enabled()
    np.testing.assert_array_equal(out, expected)
    assert all(not m._caches for m in model.modules())
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(out))


def test_no_grad_keeps_caches_pushed_before_it_and_nests(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = model(x)  # a training forward awaiting its backward
    with fastnn.no_grad():
        with fastnn.no_grad():
            model(rng.standard_normal((2, 3)).astype(np.float32))  # e.g. a target computed with the same network
        assert not fastnn.is_grad_enabled()  # the inner block restored the outer one's state
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape
    ref = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    ref.load_state_dict(model.state_dict())
    ref(x)
    np.testing.assert_allclose(ref.backward(np.ones_like(y)), dx)


def test_no_grad_as_decorator_and_per_thread(rng):
    import threading

    model = nn.Linear(3, 2)

    @fastnn.no_grad()
    def predict(x):
        return model(x)

    predict(rng.standard_normal((4, 3)).astype(np.float32))
    assert not model._caches and fastnn.is_grad_enabled()
    seen = []
    with fastnn.no_grad():  # another thread is not affected
        thread = threading.Thread(target=lambda: seen.append(fastnn.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]
    with pytest.raises(KeyError):  # an exception inside leaves grad mode as it was
        with fastnn.no_grad():
            raise KeyError
    assert fastnn.is_grad_enabled()

