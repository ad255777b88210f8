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


def _cached_output(n_floats, seed=0):
    """A native output of n_floats float32 (relu_forward's), freed into the cache; its address."""
    y = C.relu_forward(np.random.default_rng(seed).standard_normal(n_floats).astype(np.float32))
    address = y.ctypes.data
    del y
    gc.collect()
    return address


def test_the_least_recently_freed_go_first_at_the_limit(cache_limit):
    # Sizes a loop stopped asking for must not keep the room the sizes it still asks for need.
    C.set_buffer_cache_limit(7 << 20)
    mib = 1 << 18  # float32 elements in 1 MiB
    for k in (1, 2, 3):  # freed in this order: 6 MiB held
        _cached_output(k * mib)
    assert C.buffer_cache_bytes() == 6 << 20
    newest = _cached_output(4 * mib)  # 10 MiB > 7: the 1 and 2 MiB blocks, the oldest, go
    assert C.buffer_cache_bytes() == 7 << 20
    kept = [C.relu_forward(np.ones(4 * mib, np.float32))]
    assert kept[0].ctypes.data == newest
    kept.append(C.relu_forward(np.ones(3 * mib, np.float32)))
    assert C.buffer_cache_bytes() == 0  # the 3 MiB block was still there
    kept.append(C.relu_forward(np.ones(2 * mib, np.float32)))  # the 2 MiB one was not: fresh memory
    assert C.buffer_cache_bytes() == 0


def test_blocks_idle_too_long_go_back_to_the_os(cache_limit):
    before = C.buffer_cache_idle_seconds()
    try:
        C.set_buffer_cache_idle_seconds(0.05)
        _cached_output(1 << 19)
        assert C.buffer_cache_bytes() == 2 << 20
        import time
        time.sleep(0.1)
        y = C.relu_forward(np.ones(1 << 18, np.float32))  # an allocation of a cached size checks the ages
        assert C.buffer_cache_bytes() == 0
        del y
    finally:
        C.set_buffer_cache_idle_seconds(before)
    assert C.buffer_cache_idle_seconds() == before == 10
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="seconds"):
            C.set_buffer_cache_idle_seconds(bad)


@pytest.mark.parametrize("value, limit_mib, warns", [
    ("64", 64, False),
    ("0", 0, False),
    (str(1 << 30), 1 << 30, False),
    (str((1 << 30) + 1), 1024, True),   # past 1 PiB: the default, not a wrapped << 20
    ("17592186044416", 1024, True),     # 2^44 MiB would wrap to 0 bytes
    ("-1", 1024, True),                 # strtoull read this as 2^64 - 1
    ("1e3", 1024, True),
    ("lots", 1024, True),               # was 0: the cache silently off
])
def test_the_limit_from_the_environment(value, limit_mib, warns):
    import os
    import subprocess
    import sys

    env = dict(os.environ, FASTNN_BUFFER_CACHE_MB=value)
    out = subprocess.run([sys.executable, "-W", "always", "-c",
                          "from fastnn import _C; print(_C.buffer_cache_limit() >> 20)"],
                         env=env, capture_output=True, text=True, cwd=os.path.dirname(__file__), check=True)
    assert out.stdout.strip() == str(limit_mib)
    assert ("is not a whole number of MiB" in out.stderr) == warns, out.stderr
