"""Shared fixtures: run CPU tests on each kernel path, and skip CUDA tests without a GPU."""
import numpy as np
import pytest

import fastnn
from fastnn.testing import simd_paths, use_simd_path


def pytest_collection_modifyitems(config, items):
    if fastnn.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU, CuPy and fastnn._cuda (fastnn.cuda_available() is False)")
    for item in items:
        # get_closest_marker, not `"cuda" in item.keywords`: keywords also hold the names of the
        # folders above the test, so a checkout in a folder called "cuda" would skip everything.
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(params=simd_paths())
def simd(request):
    """Runs a test once per CPU kernel path: AVX-512 and AVX2/FMA (where the CPU has them) and portable."""
    yield from use_simd_path(request.param)


@pytest.fixture(params=simd_paths())
def simd_path(request):
    """The same as `simd` (the name some test files use)."""
    yield from use_simd_path(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _restore_thread_count():
    """A test that runs `fastnn train --threads 1` (or calls set_num_threads) must not leave every
    later test of the session on one thread."""
    before = fastnn.get_num_threads()
    yield
    if fastnn.get_num_threads() != before:
        fastnn.set_num_threads(before)
