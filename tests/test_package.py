"""The package itself: imports without a GPU, threads, SIMD selection, ceilings."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _C


def test_import_reports_cuda_without_crashing():
    assert isinstance(fastnn.cuda_available(), bool)
    assert isinstance(fastnn.cuda_module_built(), bool)
    if not fastnn.cuda_module_built():
        assert fastnn.cuda_available() is False


def test_set_num_threads_round_trips():
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        if _C.openmp_enabled():
            fastnn.set_num_threads(3)
            assert fastnn.get_num_threads() == 3
    finally:
        fastnn.set_num_threads(before)
    with pytest.raises(ValueError):
        fastnn.set_num_threads(0)


def test_omp_num_threads_is_followed():
    if not _C.openmp_enabled():
        pytest.skip("built without OpenMP")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.get_num_threads())"],
                         env=env, capture_output=True, text=True, cwd=os.path.dirname(__file__), check=True)
    assert out.stdout.strip() == "1"


def test_fastnn_simd_env_forces_portable_kernels():
    env = dict(os.environ, FASTNN_SIMD="portable")
    out = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.simd())"],
                         env=env, capture_output=True, text=True, cwd=os.path.dirname(__file__), check=True)
    assert out.stdout.strip() == "portable"


def test_simd_selection_follows_the_cpu():
    assert fastnn.simd() in ("avx2", "portable")
    if not _C.cpu_supports_avx2_fma():
        assert fastnn.simd() == "portable"


def test_ceiling_probes_measure_something():
    assert _C.measure_fma_peak_gflops(200_000) > 0.1
    src = np.arange(1 << 16, dtype=np.float32)
    dst = np.zeros_like(src)
    assert _C.copy_bandwidth_gbs(src, dst) > 0
    assert np.array_equal(src, dst)
    with pytest.raises(ValueError):
        _C.copy_bandwidth_gbs(src, np.zeros(3, np.float32))
