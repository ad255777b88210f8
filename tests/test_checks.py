"""The input checks' fast path (fastnn.functional._checks.numpy_floats): it must accept only what
the full checks would accept, so that an op that skips them on its say-so refuses nothing less."""
import numpy as np
import pytest

import fastnn.functional as F
from fastnn.functional._checks import numpy_floats


class _Sub(np.ndarray):
    pass


def test_numpy_floats_accepts_plain_float_arrays_of_one_dtype():
    for dtype in (np.float32, np.float64):
        a, b = np.zeros((2, 3), dtype), np.ones(3, dtype)
        assert numpy_floats(a, b)
        assert numpy_floats(a[:, ::2], b)  # strides are the ops' business, not the checks'


@pytest.mark.parametrize("other", [
    np.ones(3, np.float64),                      # another dtype
    np.ones(3, np.int32),                        # not a float
    np.ones(3, np.dtype(">f4")),                 # float32 values, byte-swapped
    np.ones(3, np.float32).view(_Sub),           # a subclass
    [1.0, 2.0, 3.0],                             # not an array
])
def test_numpy_floats_declines_everything_else(other):
    assert not numpy_floats(np.zeros(3, np.float32), other)
    assert not numpy_floats(other, np.zeros(3, np.float32))


def test_ops_refuse_what_the_fast_path_declines():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    c = np.ones(3, np.float32)
    # Batch norm: a byte-swapped parameter, a 2-D parameter, a float64 x against float32 parameters.
    with pytest.raises(TypeError, match="float32 or float64"):
        F.batch_norm_forward(x, c.astype(">f4"), c, c * 0, c)
    with pytest.raises(ValueError, match="expected 1 dimensions"):
        F.batch_norm_forward(x, c[None], c, c * 0, c)
    with pytest.raises(TypeError, match="dtype"):
        F.batch_norm_forward(x.astype(np.float64), c, c, c * 0, c)
    _, cache = F.batch_norm_forward(x, c, c, c * 0, c.copy())
    with pytest.raises(TypeError, match="dtype"):
        F.batch_norm_backward(x.astype(np.float64), cache)
    with pytest.raises(ValueError, match="dimensions"):
        F.batch_norm_backward(x[0], cache)
    # Convolution: the same for w, b and dout.
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d_forward(x, w.astype(np.float64))
    with pytest.raises(ValueError, match="dimensions"):
        F.conv2d_forward(x, w, np.ones((2, 1), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        F.conv2d_forward(x, w, np.ones(2, np.dtype(">f4")))
    out, cache = F.conv2d_forward(x, w)
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d_backward(out.astype(np.float64), cache)
    with pytest.raises(ValueError, match="dimensions"):
        F.conv2d_backward(out[0], cache)
    # A subclass still runs (through the full checks) and gives the same numbers.
    ref, _ = F.conv2d_forward(x, w)
    sub, _ = F.conv2d_forward(x.view(_Sub), w)
    np.testing.assert_array_equal(np.asarray(sub), ref)
