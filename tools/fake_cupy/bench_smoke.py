"""Runs benchmarks/run.py --device cuda end to end with every case shrunk to a tiny shape: a smoke
test of the CUDA benchmark code (case set-up, the harness's device synchronisation, the Event-timed
ceilings, result formatting and JSON) on the emulated GPU. The timings mean nothing.

    bash tools/fake_cupy/run.sh python tools/fake_cupy/bench_smoke.py [--json PATH]
"""
import os
import sys

benchmarks = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks")
sys.path.insert(0, benchmarks)

import ceilings  # noqa: E402
import run  # noqa: E402
from cases import batch_norm, conv2d, gemm, lstm, pool, softmax_xent, training  # noqa: E402

batch_norm.CUDA_SHAPES = [(2, 3, 4, 4), (8, 16)]
conv2d.CPU_SHAPES = [(2, 1, 9, 9, 2, 5, 1, 2), (2, 3, 6, 6, 4, 3, 2, 1), (1, 4, 5, 5, 3, 1, 1, 0)]
conv2d.GPU_BATCH = {0: 3}
gemm.SIZES = [24]
lstm.CUDA_CELL, lstm.CUDA_LAYER = (4, 8, 8), (3, 2, 4, 8)
pool.CUDA_SHAPE = (2, 3, 8, 8)
softmax_xent.CUDA_SHAPES = [(16, 10), (4, 33)]
training.LENET_BATCHES, training.LENET_GRAPH_BATCH = [2], 2
training.LSTM_BATCH, training.LSTM_STEPS, training.LSTM_HIDDEN, training.LSTM_EMBEDDING = 2, 3, 8, 4
_cuda_ceilings = ceilings.cuda_ceilings


def small_ceilings(repeats=2):
    import cupy

    real = cupy.ones
    cupy.ones = lambda n, dtype=None: real(min(n, 1 << 16), dtype=dtype)  # not 1 GiB
    try:
        return _cuda_ceilings(repeats)
    finally:
        cupy.ones = real


ceilings.cuda_ceilings = small_ceilings
run.main(["--device", "cuda", "--repeats", "1"] + sys.argv[1:])
