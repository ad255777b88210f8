"""The package itself: imports without a GPU, threads, SIMD selection, ceilings, type stubs."""
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
    for bad in (2.5, "2", True):  # 2.5 was truncated to 2, "a" gave int()'s message
        with pytest.raises(TypeError, match="set_num_threads: expected an int"):
            fastnn.set_num_threads(bad)


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


def test_fastnn_simd_env_unknown_name_warns():
    env = dict(os.environ, FASTNN_SIMD="avx")
    out = subprocess.run([sys.executable, "-W", "always", "-c", "import fastnn; print(fastnn.simd())"],
                         env=env, capture_output=True, text=True, cwd=os.path.dirname(__file__), check=True)
    assert "FASTNN_SIMD='avx' is not one of portable, avx2, avx512; ignored" in out.stderr
    best = "avx512" if _C.cpu_supports_avx512() else "avx2" if _C.cpu_supports_avx2_fma() else "portable"
    assert out.stdout.strip() == best  # the choice the CPU makes with nothing set


def test_simd_selection_follows_the_cpu():
    expected = "avx512" if _C.cpu_supports_avx512() else "avx2" if _C.cpu_supports_avx2_fma() else "portable"
    assert fastnn.simd() == expected
    assert not _C.cpu_supports_avx512() or _C.cpu_supports_avx2_fma()


def test_fastnn_simd_env_caps_at_avx2():
    env = dict(os.environ, FASTNN_SIMD="avx2")
    out = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.simd())"],
                         env=env, capture_output=True, text=True, cwd=os.path.dirname(__file__), check=True)
    assert out.stdout.strip() == ("avx2" if _C.cpu_supports_avx2_fma() else "portable")


def test_set_simd_by_name():
    try:
        for name in ["portable"] + (["avx2"] if _C.cpu_supports_avx2_fma() else []) + \
                (["avx512"] if _C.cpu_supports_avx512() else []):
            _C.set_simd(name)
            assert fastnn.simd() == name
        if not _C.cpu_supports_avx512():
            with pytest.raises(ValueError, match="no avx512 kernels"):
                _C.set_simd("avx512")
        with pytest.raises(ValueError, match="expected 'avx512', 'avx2' or 'portable'"):
            _C.set_simd("sse")
        _C.set_simd(False)
        assert fastnn.simd() == "portable"
    finally:
        _C.set_simd(True)


def test_ceiling_probes_measure_something():
    assert _C.measure_fma_peak_gflops(200_000) > 0.1
    src = np.arange(1 << 16, dtype=np.float32)
    dst = np.zeros_like(src)
    assert _C.copy_bandwidth_gbs(src, dst) > 0
    assert np.array_equal(src, dst)
    with pytest.raises(ValueError):
        _C.copy_bandwidth_gbs(src, np.zeros(3, np.float32))


@pytest.mark.parametrize("module", ["_C", "_cuda"])
def test_type_stubs_name_every_native_function(module):
    # fastnn/_C.pyi and _cuda.pyi are what editors and type checkers see of the native modules: each
    # must list every function (and exception class) its module exports, and nothing it does not.
    import re
    from pathlib import Path

    native = getattr(fastnn._backend, module)
    if native is None:
        pytest.skip("fastnn was built without its CUDA module")
    stubs = (Path(fastnn.__file__).parent / f"{module}.pyi").read_text()
    stubbed = set(re.findall(r"^(?:def|class) (\w+)", stubs, re.MULTILINE))
    exported = {name for name in dir(native) if not name.startswith("_") and callable(getattr(native, name))}
    assert exported - stubbed == set(), f"functions missing from {module}.pyi"
    assert stubbed - exported == set(), f"{module}.pyi names functions the module does not have"


def test_info_says_why_a_built_cuda_module_has_no_gpu(capsys):
    from fastnn import cli

    assert cli.main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"CUDA module built: {fastnn.cuda_module_built()}, GPU available: {fastnn.cuda_available()}" in text
    assert f"last-level cache: {fastnn._backend._C.last_level_cache_bytes() / 2**20:g} MiB" in text
    if fastnn.cuda_module_built() and not fastnn.cuda_available():
        reason = fastnn._backend._cuda.device_count_error()
        assert reason == "" or reason.startswith("cudaError")
        assert "CUDA runtime" in text and (reason or "CuPy") in text
