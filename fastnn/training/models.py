"""The models the `fastnn train` command and the examples train: LeNet-5 and a character-level LSTM.

    LeNet-5 (LeCun et al. 1998, with ReLU and max pooling), on 1x28x28 images:
        conv 5x5, 6 filters, padding 2 -> ReLU -> maxpool 2     6x28x28 -> 6x14x14
        conv 5x5, 16 filters          -> ReLU -> maxpool 2     16x10x10 -> 16x5x5
        flatten 400 -> fc 120 -> ReLU -> fc 84 -> ReLU -> fc 10 (class scores)
        61,706 weights and biases.

    CharLSTM, a language model over characters: for ids x (N, T),
        e_t = E[x_t]                     embedding (V, D)
        h_t, c_t = LSTM(e_t, h_{t-1}, c_{t-1})
        s_t = h_t W + b                  scores over the V characters for the next one
    trained with the softmax cross-entropy of s_t against x_{t+1}.
"""
import numpy as np

from .. import _backend
from .. import nn


def lenet5(num_classes=10, in_channels=1, dtype=np.float32):
    """LeNet-5 as a Sequential; input (N, in_channels, 28, 28), output scores (N, num_classes).
    The first convolution skips the gradient with respect to the images (needs_input_grad=False):
    model.backward returns None."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2, dtype=dtype, needs_input_grad=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120, dtype=dtype), nn.ReLU(),
        nn.Linear(120, 84, dtype=dtype), nn.ReLU(),
        nn.Linear(84, num_classes, dtype=dtype),
    )


def count_parameters(model):
    """Total number of trainable scalars."""
    return sum(int(p.data.size) for p in model.parameters())


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> Linear over the vocabulary (see the module docstring).

    forward(x) takes integer ids (N, T) and returns scores (N*T, V), row n*T + t scoring the
    character after x[n, t], so targets are y.reshape(-1). With carry_state=True (training by
    truncated BPTT) each forward starts from the previous forward's final state, which is a
    constant input: gradients stop at the batch boundary. reset_state() starts a new pass.
    """

    def __init__(self, vocab_size, embedding_dim=64, hidden_size=256, num_layers=1, carry_state=True,
                 dtype=np.float32):
        super().__init__()
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.embed = nn.Embedding(vocab_size, embedding_dim, dtype=dtype)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers=num_layers, dtype=dtype)
        self.head = nn.Linear(hidden_size, vocab_size, dtype=dtype)
        self.carry_state = carry_state
        self.state = None

    def reset_state(self):
        self.state = None

    def _initial_state(self, n):
        if self.state is None or self.state[0].shape[1] != n:
            return None  # a new pass, or a batch of another size: start from zeros
        return self.state

    def forward(self, x):
        if not hasattr(x, "dtype") or x.dtype.kind not in "iu" or x.ndim != 2:
            raise TypeError("CharLSTM: expected integer ids of shape (N, T)")
        n, t_len = x.shape
        e = self.embed.forward(x)
        hs, final = self.lstm.forward(e, self._initial_state(n) if self.carry_state else None)
        self.state = final if self.carry_state else None
        self._push_cache((n, t_len))
        return self.head.forward(hs.reshape(n * t_len, self.hidden_size))

    def backward(self, dscores):
        n, t_len = self._pop_cache()
        dhs = self.head.backward(dscores).reshape(n, t_len, self.hidden_size)
        self.embed.backward(self.lstm.backward(dhs))
        return None  # the input ids have no gradient

    def sample(self, vocab, prime="\n", length=200, temperature=1.0, rng=None):
        """Generates `length` characters after `prime`: each next character is drawn from
        p_k = exp(s_k / temperature) / sum_j exp(s_j / temperature). Lower temperature = safer text."""
        if not temperature > 0:
            raise ValueError(f"sample: temperature must be positive, got {temperature}")
        if not prime:
            raise ValueError("sample: prime must be a non-empty string")
        rng = np.random.default_rng(rng)
        was_training, was_carrying = self.training, self.carry_state
        self.eval()
        self.carry_state = True
        self.reset_state()
        xp = _backend.array_module(self.head.weight.data)
        try:
            with nn.no_grad():  # no backward: the layers keep no caches
                ids = vocab.encode(prime)
                scores = self.forward(xp.asarray(ids[None, :]))
                out = []
                for _ in range(length):
                    logits = _backend_to_numpy(scores[-1]).astype(np.float64) / temperature
                    p = np.exp(logits - logits.max())
                    p /= p.sum()
                    next_id = int(rng.choice(len(p), p=p))
                    out.append(next_id)
                    scores = self.forward(xp.asarray(np.array([[next_id]], dtype=np.int64)))
        finally:
            self.carry_state = was_carrying
            self.reset_state()
            self.train(was_training)
        return vocab.decode(np.array(out, dtype=np.int64))


def _backend_to_numpy(a):
    return a.get() if _backend.is_cupy_array(a) else a
