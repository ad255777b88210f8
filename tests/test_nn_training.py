"""Training-level checks: small models built from fastnn.nn overfit one small batch to 100% training
accuracy, which exercises every forward, backward and optimizer step together."""
import numpy as np
import pytest

import fastnn
from fastnn import data, nn, optim


def _fit(model, loss_fn, opt, x, y, max_steps):
    """Full-batch training until every training example is classified right; returns the step count."""
    for step in range(1, max_steps + 1):
        model.zero_grad()
        out = model(x)
        scores = out[0] if isinstance(out, tuple) else out
        loss_fn(scores, y)
        model.backward(loss_fn.backward())
        opt.step()
        if (scores.argmax(axis=1) == y).all():
            return step
    return None


@pytest.fixture(scope="module")
def mnist_batch():
    x, y = data.load_mnist("train")
    return np.ascontiguousarray(x[:64]), np.ascontiguousarray(y[:64])


def lenet5():
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: 28x28 -> 6@28x28 -> 6@14x14 -> 16@10x10
    -> 16@5x5 -> 120 -> 84 -> 10."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def test_lenet5_overfits_64_mnist_digits(mnist_batch):
    """A batch of 64 real MNIST training digits (the first 64 of the bundled train split)."""
    fastnn.init.manual_seed(0)
    x, y = mnist_batch
    model = lenet5()
    steps = _fit(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters(), lr=2e-3), x, y, 300)
    assert steps is not None, "LeNet-5 did not reach 100% training accuracy in 300 steps"
    model.eval()
    assert (model(x).argmax(axis=1) == y).all()


def test_residual_conv_block_overfits_mnist_digits(mnist_batch):
    """A residual block y = x + F(x) with F = conv-BN-ReLU-conv-BN, on the first 32 of the 64 digits
    (downsampled to 14x14), trained with SGD + Nesterov momentum."""
    fastnn.init.manual_seed(1)
    x, y = mnist_batch[0][:32], mnist_batch[1][:32]
    block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
    model = nn.Sequential(
        nn.AvgPool2d(2), nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Residual(block), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 10))
    opt = optim.Nesterov(model.parameters(), lr=0.05, beta=0.9)
    steps = _fit(model, nn.SoftmaxCrossEntropyLoss(), opt, x, y, 200)
    assert steps is not None, "the residual network did not reach 100% training accuracy in 200 steps"


class _SequenceClassifier(nn.Module):
    """Embedding -> 2-layer LSTM -> Linear on the last hidden state."""

    def __init__(self, vocab, hidden, classes):
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, hidden, num_layers=2)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        hs, _ = self.lstm.forward(self.embed.forward(tokens))
        self._push_cache(hs.shape)
        return self.head.forward(hs[:, -1])

    def backward(self, dscores):
        n, t, h = self._pop_cache()
        dhs = np.zeros((n, t, h), dtype=dscores.dtype)
        dhs[:, -1] = self.head.backward(dscores)
        self.embed.backward(self.lstm.backward(dhs))


def test_lstm_remembers_the_first_token():
    """Synthetic seeded task: 32 random sequences of 10 tokens from a vocabulary of 6; the label is
    the first token, so the LSTM must carry it across 9 steps."""
    fastnn.init.manual_seed(2)
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 6, (32, 10))
    labels = tokens[:, 0].copy()
    model = _SequenceClassifier(6, 16, 6)
    steps = _fit(model, nn.SoftmaxCrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2), tokens, labels, 300)
    assert steps is not None, "the LSTM did not reach 100% training accuracy in 300 steps"


def test_truncated_bptt_carries_the_state():
    """Running a sequence in two chunks, feeding the first chunk's final state to the second, gives
    the same hidden states as one pass over the whole sequence."""
    fastnn.init.manual_seed(3)
    lstm = nn.LSTM(3, 5, num_layers=2).to(dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((2, 8, 3))
    hs_full, (h_full, c_full) = lstm(x)
    hs_a, state = lstm(x[:, :5])
    hs_b, (h_b, c_b) = lstm(x[:, 5:], state)
    np.testing.assert_allclose(np.concatenate([hs_a, hs_b], axis=1), hs_full, rtol=1e-12)
    np.testing.assert_allclose(c_b, c_full, rtol=1e-12)
