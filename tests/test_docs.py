"""The Python examples in README.md and docs/api.md run as written.

Each ```python block is executed on its own, as the documented text itself (not a copy kept here),
so that a renamed function, argument or attribute in the package breaks this test rather than a
reader's first try. Many blocks continue an earlier one and use names it defined (`model`, `x`,
`labels`, ...): GIVENS supplies small values for those, chosen by a line of the block. A block that
uses a name neither it nor its givens define fails with a NameError: add its givens here.

Blocks that name the "cuda" device run only where fastnn.cuda_available() (marked `cuda`).
"""
import os
import re

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from fastnn import data, nn, optim

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
DOCS = ("README.md", os.path.join("docs", "api.md"))


def _blocks():
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        for match in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 2  # the block's first code line
            yield doc, line, match.group(1)


def _rng():
    return np.random.default_rng(0)


def _images(n):
    rng = _rng()
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return x, y


def _lstm_givens():
    rng = _rng()
    t, b, d, h = 3, 2, 4, 5
    r = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    return dict(xs=r(t, b, d), h0=r(b, h), c0=r(b, h), Wx=r(d, 4 * h), Wh=r(h, 4 * h), b=r(4 * h),
                dhs=r(t, b, h), dh_last=r(b, h), dc_last=None)


def _scheduler_givens():
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    return dict(opt=opt, epochs=3, train_one_epoch=lambda: None, val_loss=1.0)


def _gradcheck_givens():
    rng = _rng()
    return dict(pred=rng.standard_normal((4, 3)), target=rng.standard_normal((4, 3)),
                x=rng.standard_normal((1, 2, 6, 6)), w=rng.standard_normal((3, 2, 3, 3)),
                b=rng.standard_normal(3))


def _trainer_givens():
    x, y = _images(24)
    loader = lambda a, b: data.DataLoader(x[a:b], y[a:b], batch_size=8)  # noqa: E731
    return dict(train_loader=loader(0, 16), val_loader=loader(16, 24), test_loader=loader(16, 24))


def _cuda_graph_givens():
    from fastnn.training import lenet5

    x, y = _images(8)
    return dict(lenet5=lenet5, loader=data.DataLoader(x, y, batch_size=2, device="cuda"))


def _linear_model_givens():
    rng = _rng()
    return dict(model=nn.Sequential(nn.Linear(784, 10)), x=rng.random((8, 784), dtype=np.float32),
                labels=rng.integers(0, 10, 8))


# A line of the block -> the names it uses from an earlier block.
GIVENS = {
    "F.softmax_cross_entropy_forward(scores, labels)": lambda: dict(
        scores=_rng().standard_normal((8, 10)).astype(np.float32), labels=_rng().integers(0, 10, 8)),
    "za, zb = f(a), f(b)": lambda: dict(
        f=nn.Linear(4, 3), a=_rng().random((2, 4), dtype=np.float32),
        b=_rng().random((2, 4), dtype=np.float32), dza=np.ones((2, 3), np.float32),
        dzb=np.ones((2, 3), np.float32)),
    "loss = loss_fn(model(x), labels)": _linear_model_givens,
    "init.xavier_uniform(layer.weight)": lambda: dict(layer=nn.Linear(4, 3)),
    "for x, y in batches:": lambda: dict(
        model=nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), loss_fn=nn.SoftmaxCrossEntropyLoss(),
        batches=[_images(8), _images(8)]),
    "F.lstm_forward(xs, h0, c0, Wx, Wh, b)": _lstm_givens,
    "sched = optim.StepLR(opt, step_size=10, gamma=0.5)": _scheduler_givens,
    "fastnn.gradcheck(nn.HuberLoss(0.5), (pred, target))": _gradcheck_givens,
    "history = trainer.fit(train_loader, val_loader, epochs=5)": _trainer_givens,
    "step = CudaGraphStep(": _cuda_graph_givens,
}


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _params():
    for doc, line, code in _blocks():
        marks = [pytest.mark.cuda] if '"cuda"' in code else []
        yield pytest.param(code, id=f"{doc}:{line}", marks=marks)


def test_the_docs_have_python_examples():
    counts = {doc: 0 for doc in DOCS}
    for doc, _, _ in _blocks():
        counts[doc] += 1
    assert all(n > 0 for n in counts.values()), counts


@pytest.mark.parametrize("code", list(_params()))
def test_doc_example_runs(code, tmp_path, monkeypatch):
    if '"cuda"' in code and not fastnn.cuda_available():
        pytest.skip("needs a CUDA GPU, CuPy and fastnn._cuda (fastnn.cuda_available() is False)")
    monkeypatch.chdir(tmp_path)  # blocks that write files (checkpoints, history) write here
    namespace = {"np": np, "nn": nn, "optim": optim, "F": F, "fastnn": fastnn, "__name__": "__doc__"}
    for key, givens in GIVENS.items():
        if key in code:
            namespace.update(givens())
    fastnn.init.manual_seed(0)
    compiled = compile(code, "<doc example>", "exec")
    if "history.plot(" in code and not _has_matplotlib():
        # The plot is documented as needing matplotlib: without it, the call says so.
        with pytest.raises(ImportError, match="matplotlib"):
            exec(compiled, namespace)
    else:
        exec(compiled, namespace)
    if "history.save_json(" in code:
        assert (tmp_path / "run" / "history.json").is_file()
