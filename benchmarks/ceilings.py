"""Measured machine ceilings: what the fastest possible kernel could reach on this machine.

CPU: peak FMA throughput (fastnn._C's register-resident FMA loop on all threads) and memory copy
bandwidth (a 256 MiB buffer copied by all threads; read + write bytes per second).
GPU: device-to-device copy bandwidth (CuPy copy of a 1 GiB buffer) and fp32 GEMM rate (CuPy matmul,
8192^3, TF32 off).
"""
import statistics
import time

import numpy as np


def cpu_ceilings(repeats=7):
    from fastnn import _C

    fma = max(_C.measure_fma_peak_gflops(20_000_000) for _ in range(3))
    n = 64 * 1024 * 1024  # 256 MiB of float32: far beyond any cache
    src = np.ones(n, dtype=np.float32)
    dst = np.empty_like(src)
    _C.copy_bandwidth_gbs(src, dst)  # touch the pages first
    bw = statistics.median(_C.copy_bandwidth_gbs(src, dst) for _ in range(repeats))
    return {"fma_gflops": fma, "copy_gbs": bw}


def cuda_ceilings(repeats=10):
    import cupy as cp

    n = 256 * 1024 * 1024  # 1 GiB of float32
    src = cp.ones(n, dtype=cp.float32)
    dst = cp.empty_like(src)
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        cp.copyto(dst, src)
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) * 1e-3)
    copy_gbs = 2 * n * 4 / statistics.median(times) * 1e-9
    del src, dst

    m = 8192
    a = cp.random.standard_normal((m, m), dtype=cp.float32)
    b = cp.random.standard_normal((m, m), dtype=cp.float32)
    prev_mode = cp.cuda.cublas.getMathMode(cp.cuda.device.get_cublas_handle())
    cp.cuda.cublas.setMathMode(cp.cuda.device.get_cublas_handle(), cp.cuda.cublas.CUBLAS_DEFAULT_MATH)
    cp.matmul(a, b)
    times = []
    for _ in range(5):
        start.record()
        cp.matmul(a, b)
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) * 1e-3)
    cp.cuda.cublas.setMathMode(cp.cuda.device.get_cublas_handle(), prev_mode)
    gemm_gflops = 2 * m**3 / statistics.median(times) * 1e-9
    return {"copy_gbs": copy_gbs, "fp32_gemm_gflops": gemm_gflops, "device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode()}


def wall_clock():
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
