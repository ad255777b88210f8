"""Inverted dropout."""
import numpy as np

from .. import _backend
from . import _checks
from .module import Module


class Dropout(Module):
    """Inverted dropout: in training y = x * m / (1 - p) with m_i ~ Bernoulli(1 - p), so E[y] = x and
    inference needs no rescaling; in eval mode y = x. Backward: dx = dy * m / (1 - p).

    `seed` makes the masks reproducible (NumPy and CuPy each draw from their own generator).
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p = _checks.hyperparameter("Dropout", "p", p, at_least=0.0, below=1.0)
        self.seed = seed
        self._rng_cpu = np.random.default_rng(seed)
        self._rng_gpu = None

    def _uniform(self, x):
        if _backend.is_cupy_array(x):
            if self._rng_gpu is None:
                self._rng_gpu = _backend.cupy_module().random.RandomState(self.seed)
            return self._rng_gpu.random_sample(x.shape, dtype=x.dtype)
        return self._rng_cpu.random(x.shape, dtype=x.dtype)

    def forward(self, x):
        _checks.float_array("Dropout input", x)
        if not self.training or self.p == 0.0:
            self._push_cache((x.shape, _checks.forward_kind(x), None))
            return x
        scaled_mask = (self._uniform(x) >= self.p) * x.dtype.type(1.0 / (1.0 - self.p))
        self._push_cache((x.shape, _checks.forward_kind(x), scaled_mask))
        return x * scaled_mask

    def backward(self, dout):
        shape, kind, scaled_mask = self._pop_cache()
        _checks.upstream_grad("Dropout", dout, shape, kind)
        return dout if scaled_mask is None else dout * scaled_mask

    def extra_repr(self):
        return f"p={self.p}"
