"""Multi-head self-attention and sinusoidal positional encoding, on batch-first x (N, T, E)."""
import math

import numpy as np

from .. import _backend, init
from . import _checks
from .linear import Linear
from .module import Module


class MultiHeadAttention(Module):
    """Multi-head scaled dot-product self-attention (Vaswani et al. 2017), h heads of size d = E / h:

        Q = x Wq + bq,  K = x Wk + bk,  V = x Wv + bv       split into heads (N, h, T, d)
        A = softmax(Q K^T / sqrt(d) + M)                   M_ij = -inf for j > i when causal, else 0
        O = A V                                            heads joined back to (N, T, E)
        y = O Wo + bo

    Backward: dV = A^T dO, dA = dO V^T, dS = A * (dA - rowsum(dA * A)) / sqrt(d), dQ = dS K,
    dK = dS^T Q, and dx sums what the three projections send back.
    """

    def __init__(self, embed_dim, num_heads, causal=False, dtype=np.float32):
        super().__init__()
        embed_dim = _checks.int_at_least("MultiHeadAttention", "embed_dim", embed_dim)
        num_heads = _checks.int_at_least("MultiHeadAttention", "num_heads", num_heads)
        if embed_dim % num_heads != 0:
            raise ValueError(f"MultiHeadAttention: embed_dim {embed_dim} must be a positive multiple of "
                             f"num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.causal = embed_dim, num_heads, bool(causal)
        self.head_dim = embed_dim // num_heads
        self.q_proj = Linear(embed_dim, embed_dim, dtype=dtype)
        self.k_proj = Linear(embed_dim, embed_dim, dtype=dtype)
        self.v_proj = Linear(embed_dim, embed_dim, dtype=dtype)
        self.out_proj = Linear(embed_dim, embed_dim, dtype=dtype)
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            init.xavier_uniform(proj.weight)

    def _split_heads(self, a):
        n, t, _ = a.shape
        return a.reshape(n, t, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def _join_heads(self, a):
        n, _, t, _ = a.shape
        return a.transpose(0, 2, 1, 3).reshape(n, t, self.embed_dim)

    def forward(self, x):
        _checks.layer_input("MultiHeadAttention", x, self.q_proj.weight.data, ndim=3)
        _checks.last_dim("MultiHeadAttention", x, self.embed_dim)
        if x.shape[1] == 0:
            raise ValueError(f"MultiHeadAttention: the sequence is empty, shape {tuple(x.shape)} (softmax over "
                             "no keys is undefined)")
        xp = _backend.array_module(x)
        q = self._split_heads(self.q_proj.forward(x))
        k = self._split_heads(self.k_proj.forward(x))
        v = self._split_heads(self.v_proj.forward(x))
        scores = (q @ k.transpose(0, 1, 3, 2)) * x.dtype.type(1.0 / math.sqrt(self.head_dim))
        if self.causal:
            t = x.shape[1]
            scores += xp.asarray(np.triu(np.full((t, t), -np.inf), k=1), dtype=x.dtype)  # M_ij = -inf, j > i
        e = xp.exp(scores - scores.max(axis=-1, keepdims=True))
        attn = e / e.sum(axis=-1, keepdims=True)
        out = self._join_heads(attn @ v)
        self._push_cache((q, k, v, attn))
        return self.out_proj.forward(out)

    def backward(self, dout):
        q, k, v, attn = self._pop_cache()
        _checks.upstream_grad("MultiHeadAttention", dout, (q.shape[0], q.shape[2], self.embed_dim), q)
        d_heads = self._split_heads(self.out_proj.backward(dout))
        dv = attn.transpose(0, 1, 3, 2) @ d_heads
        dattn = d_heads @ v.transpose(0, 1, 3, 2)
        dscores = attn * (dattn - (dattn * attn).sum(axis=-1, keepdims=True))
        dscores *= dscores.dtype.type(1.0 / math.sqrt(self.head_dim))
        dq = dscores @ k
        dk = dscores.transpose(0, 1, 3, 2) @ q
        return (self.q_proj.backward(self._join_heads(dq))
                + self.k_proj.backward(self._join_heads(dk))
                + self.v_proj.backward(self._join_heads(dv)))

    def extra_repr(self):
        return f"{self.embed_dim}, num_heads={self.num_heads}, causal={self.causal}"


class PositionalEncoding(Module):
    """Adds the sinusoidal position code of Vaswani et al. 2017 to x (N, T, E):

        PE[pos, 2i] = sin(pos / 10000^(2i / E)),  PE[pos, 2i + 1] = cos(pos / 10000^(2i / E))
        y = x + PE[:T];  dx = dy
    """

    def __init__(self, embed_dim, max_len=5000):
        super().__init__()
        embed_dim = _checks.int_at_least("PositionalEncoding", "embed_dim", embed_dim)
        max_len = _checks.int_at_least("PositionalEncoding", "max_len", max_len)
        self.embed_dim, self.max_len = embed_dim, max_len
        pos = np.arange(max_len, dtype=np.float64)[:, None]
        freq = np.exp(-math.log(10000.0) * np.arange(0, embed_dim, 2, dtype=np.float64) / embed_dim)
        pe = np.zeros((max_len, embed_dim))
        pe[:, 0::2] = np.sin(pos * freq)
        pe[:, 1::2] = np.cos(pos * freq[: embed_dim // 2])
        self._table = {"numpy": pe}

    def _pe(self, x):
        key = "cupy" if _backend.is_cupy_array(x) else "numpy"
        if key not in self._table:
            self._table[key] = _backend.cupy_module().asarray(self._table["numpy"])
        return self._table[key][: x.shape[1]].astype(x.dtype, copy=False)

    def forward(self, x):
        _checks.float_array("PositionalEncoding input", x, ndim=3)
        _checks.last_dim("PositionalEncoding", x, self.embed_dim)
        if x.shape[1] > self.max_len:
            raise ValueError(f"PositionalEncoding: sequence length {x.shape[1]} exceeds max_len {self.max_len}")
        self._push_cache((x.shape, _checks.forward_kind(x)))
        return x + self._pe(x)

    def backward(self, dout):
        return _checks.upstream_grad("PositionalEncoding", dout, *self._pop_cache())

    def extra_repr(self):
        return f"{self.embed_dim}, max_len={self.max_len}"
