"""Shared fixtures: run CPU tests on both kernel paths, and skip CUDA tests without a GPU."""
import numpy as np
import pytest

import fastnn
from fastnn import _C


def pytest_collection_modifyitems(config, items):
    if fastnn.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU, CuPy and fastnn._cuda (fastnn.cuda_available() is False)")
    for item in items:
        # get_closest_marker, not `"cuda" in item.keywords`: keywords also hold the names of the
        # folders above the test, so a checkout in a folder called "cuda" would skip everything.
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


SIMD_PATHS = ["avx2", "portable"] if _C.cpu_supports_avx2_fma() else ["portable"]


@pytest.fixture(params=SIMD_PATHS)
def simd_path(request):
    """Runs a test once per CPU kernel path: AVX2/FMA (where the CPU has it) and portable."""
    _C.set_simd(request.param == "avx2")
    assert fastnn.simd() == request.param
    yield request.param
    _C.set_simd(True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
