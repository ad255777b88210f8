"""Whole training steps, fastnn against PyTorch with the same model, optimizer and batch in one run.

    LeNet-5 step (batch 64 and 256):  zero_grad, forward, softmax cross-entropy, backward, Adam.
        Images/second = batch / median step time.
    On the GPU also LeNet-5 at batch 64 with the whole step captured as a CUDA graph, against PyTorch
        doing the same (torch.cuda.graph, capturable Adam); both copy the batch into the graph's input
        buffers each step, as a training loop must. And the char-LSTM step as a CUDA graph against
        PyTorch's eager step on cuDNN's LSTM (issue 5's GPU target is 1.0x cuDNN's LSTM).
    char-LSTM step (batch 16, T = 64, hidden 512, the Shakespeare vocabulary of 74 characters,
        embedding 64): forward over 64 steps, cross-entropy on every step, backpropagation through
        time, global gradient-norm clipping at 5, Adam. Characters/second = 16 * 64 / median.

There is no NumPy reference column: a step is a composition of ops whose references are timed in
their own families. flops counts the multiply-adds of the forward pass times 3 (forward, data
gradient, weight gradient), so GFLOP/s compares with the FMA ceiling.
"""
import numpy as np

from fastnn import data, nn, optim
from fastnn.training import CharLSTM, CudaGraphStep, lenet5, seed_everything
from harness import Case

LENET_BATCHES = [64, 256]
LENET_GRAPH_BATCH = 64
LSTM_BATCH, LSTM_STEPS, LSTM_HIDDEN, LSTM_EMBEDDING = 16, 64, 512, 64


def lenet5_flops(batch):
    """2 * multiply-adds of the forward pass, times 3 for the backward pass."""
    conv1 = 6 * 1 * 5 * 5 * 28 * 28
    conv2 = 16 * 6 * 5 * 5 * 10 * 10
    fc = 400 * 120 + 120 * 84 + 84 * 10
    return 3 * 2 * batch * (conv1 + conv2 + fc)


def lstm_flops(batch, steps, vocab, embedding, hidden):
    per_step = 4 * hidden * (embedding + hidden) + hidden * vocab
    return 3 * 2 * batch * steps * per_step


def _fastnn_step(model, inputs, targets, clip=None):
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    params = model.parameters()

    def run():
        model.zero_grad()
        loss = loss_fn.forward(model.forward(inputs), targets)
        model.backward(loss_fn.backward())
        if clip is not None:
            optim.clip_grad_norm(params, clip)
        optimizer.step()
        return loss

    return run


def _fastnn_graph_step(model, inputs, targets, clip=None):
    step = CudaGraphStep(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3),
                         clip_grad_norm=clip)
    return lambda: step(inputs, targets)[0]


def _torch_device(device):
    try:
        import torch
    except ImportError:
        return None, None
    if device == "cuda" and not torch.cuda.is_available():
        return None, None
    return torch, torch.device(device)


def _torch_lenet5(torch, dev):
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
        tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10),
    ).to(dev)


def _torch_lenet5_step(x_np, y_np, device):
    torch, dev = _torch_device(device)
    if torch is None:
        return None
    model = _torch_lenet5(torch, dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.tensor(x_np, device=dev), torch.tensor(y_np, device=dev)

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return run


def _torch_lenet5_graph_step(x_np, y_np):
    """PyTorch's recipe for whole-network capture: warm-up steps on a side stream, then capture."""
    torch, dev = _torch_device("cuda")
    if torch is None:
        return None
    model = _torch_lenet5(torch, dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
    x, y = torch.tensor(x_np, device=dev), torch.tensor(y_np, device=dev)
    static_x, static_y = x.clone(), y.clone()

    def step():
        loss = torch.nn.functional.cross_entropy(model(static_x), static_y)
        loss.backward()
        optimizer.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = step()

    def run():
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        return static_loss

    return run


class _TorchCharLSTM:
    """The same char-LSTM in PyTorch: Embedding -> LSTM (cuDNN on the GPU) -> Linear."""

    def __init__(self, torch, dev, vocab):
        tnn = torch.nn
        self.embed = tnn.Embedding(vocab, LSTM_EMBEDDING).to(dev)
        self.lstm = tnn.LSTM(LSTM_EMBEDDING, LSTM_HIDDEN, batch_first=True).to(dev)
        self.head = tnn.Linear(LSTM_HIDDEN, vocab).to(dev)
        self.parameters = [*self.embed.parameters(), *self.lstm.parameters(), *self.head.parameters()]

    def __call__(self, x):
        hs, _ = self.lstm(self.embed(x))
        return self.head(hs.reshape(-1, LSTM_HIDDEN))


def _torch_lstm_step(x_np, y_np, vocab, device):
    torch, dev = _torch_device(device)
    if torch is None:
        return None
    model = _TorchCharLSTM(torch, dev, vocab)
    optimizer = torch.optim.Adam(model.parameters, lr=1e-3)
    x, y = torch.tensor(x_np, device=dev), torch.tensor(y_np.reshape(-1), device=dev)

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters, 5.0)
        optimizer.step()
        return loss

    return run


def _to_device(a, device):
    if device == "cuda":
        import cupy as cp

        return cp.asarray(a)
    return a


def cases(device="cpu"):
    seed_everything(0)
    x_train, y_train = data.load_mnist("test")
    for batch in LENET_BATCHES:
        x_np, y_np = np.ascontiguousarray(x_train[:batch]), y_train[:batch].copy()
        model = lenet5().to(device)
        yield Case(
            family="training",
            name=f"LeNet-5 step batch={batch}",
            impls={
                "fastnn": _fastnn_step(model, _to_device(x_np, device), _to_device(y_np, device)),
                "reference": None,
                "torch": _torch_lenet5_step(x_np, y_np, device),
            },
            flops=lenet5_flops(batch),
            ceiling="fma",
        )

    if device == "cuda":
        x_np, y_np = np.ascontiguousarray(x_train[:LENET_GRAPH_BATCH]), y_train[:LENET_GRAPH_BATCH].copy()
        yield Case(
            family="training",
            name=f"LeNet-5 step batch={LENET_GRAPH_BATCH} CUDA graph",
            impls={
                "fastnn": _fastnn_graph_step(lenet5().to(device), _to_device(x_np, device), _to_device(y_np, device)),
                "reference": None,
                "torch": _torch_lenet5_graph_step(x_np, y_np),
            },
            flops=lenet5_flops(LENET_GRAPH_BATCH),
            ceiling="fma",
        )

    text = data.load_text("shakespeare")
    vocab = data.Vocabulary(text)
    ids = vocab.encode(text[:LSTM_BATCH * LSTM_STEPS * 4 + 1])
    x_np, y_np = next(iter(data.BPTTBatches(ids, LSTM_BATCH, LSTM_STEPS)))
    # carry_state=False: every timed step starts from zeros, as the PyTorch peer does.
    model = CharLSTM(len(vocab), LSTM_EMBEDDING, LSTM_HIDDEN, carry_state=False).to(device)
    yield Case(
        family="training",
        name=f"char-LSTM step B={LSTM_BATCH} T={LSTM_STEPS} H={LSTM_HIDDEN}",
        impls={
            "fastnn": _fastnn_step(model, _to_device(x_np, device), _to_device(y_np.reshape(-1), device), clip=5.0),
            "reference": None,
            "torch": _torch_lstm_step(x_np, y_np, len(vocab), device),
        },
        flops=lstm_flops(LSTM_BATCH, LSTM_STEPS, len(vocab), LSTM_EMBEDDING, LSTM_HIDDEN),
        ceiling="fma",
    )
    if device == "cuda":
        model = CharLSTM(len(vocab), LSTM_EMBEDDING, LSTM_HIDDEN, carry_state=False).to(device)
        yield Case(
            family="training",
            name=f"char-LSTM step B={LSTM_BATCH} T={LSTM_STEPS} H={LSTM_HIDDEN} CUDA graph",
            impls={
                "fastnn": _fastnn_graph_step(model, _to_device(x_np, device), _to_device(y_np.reshape(-1), device),
                                             clip=5.0),
                "reference": None,
                "torch": _torch_lstm_step(x_np, y_np, len(vocab), device),
            },
            flops=lstm_flops(LSTM_BATCH, LSTM_STEPS, len(vocab), LSTM_EMBEDDING, LSTM_HIDDEN),
            ceiling="fma",
        )
