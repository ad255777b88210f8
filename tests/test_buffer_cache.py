"""Large output arrays come from a cache of freed buffers (csrc/buffer_cache.h): a freed buffer is
reused by the next output of the same size, views keep their buffer alive, and a limit of 0 turns
the cache off."""
import gc

import numpy as np
import pytest

from fastnn import _backend

C = _backend._C


@pytest.fixture
def cache_limit():
    before = C.buffer_cache_limit()
    C.set_buffer_cache_limit(256 << 20)
    yield
    C.set_buffer_cache_limit(before)


def test_freed_output_buffer_is_reused(cache_limit):
    x = np.random.default_rng(0).standard_normal(1 << 19).astype(np.float32)  # 2 MiB: cached size
    y = C.relu_forward(x)
    address = y.ctypes.data
    del y
    gc.collect()
    assert C.buffer_cache_bytes() == x.nbytes
    y2 = C.relu_forward(-x)  # same size: the same buffer, fully rewritten
    assert y2.ctypes.data == address and C.buffer_cache_bytes() == 0
    np.testing.assert_array_equal(y2, np.maximum(-x, 0))
    assert y2.flags.writeable and y2.flags.c_contiguous


def test_views_keep_the_buffer(cache_limit):
    x = np.random.default_rng(1).standard_normal(1 << 19).astype(np.float32)
    view = C.relu_forward(x)[::2]
    gc.collect()
    assert C.buffer_cache_bytes() == 0  # the view still holds it
    other = C.relu_forward(-x)  # must not get the viewed buffer
    np.testing.assert_array_equal(view, np.maximum(x, 0)[::2])
    np.testing.assert_array_equal(other, np.maximum(-x, 0))
    del view
    gc.collect()
    assert C.buffer_cache_bytes() == x.nbytes


def test_small_outputs_and_limit_zero(cache_limit):
    small = np.ones(1000, np.float32)
    C.relu_forward(small)
    gc.collect()
    assert C.buffer_cache_bytes() == 0  # below the cached size: NumPy's own memory
    C.set_buffer_cache_limit(0)
    y = C.relu_forward(np.ones(1 << 19, np.float32))
    del y
    gc.collect()
    assert C.buffer_cache_bytes() == 0 and C.buffer_cache_limit() == 0
