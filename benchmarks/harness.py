"""The benchmark harness: times several implementations of one case on the same inputs, in one run.

A Case names a piece of work and gives zero-argument callables that each do it once:

    Case(family="softmax_xent", name="fwd+bwd N=8192 C=10",
         impls={"fastnn": ..., "reference": ..., "torch": ...},   # None = peer not available
         bytes=..., flops=...)                                     # minimal traffic / work, or None

Every callable is timed the same way: warm-up calls, then `repeats` timed calls (each one a batch
of calls long enough to be measured), and the median is kept. GPU work is synchronised before each
clock read. Ratios are what to compare across machines: speedup = other's median / fastnn's median.
"""
import dataclasses
import statistics
import time
from typing import Callable, Dict, Optional


@dataclasses.dataclass
class Case:
    family: str
    name: str
    impls: Dict[str, Optional[Callable[[], object]]]
    bytes: Optional[float] = None  # bytes a perfect implementation must move (for GB/s)
    flops: Optional[float] = None  # floating-point operations (for GFLOP/s)
    ceiling: str = "bandwidth"  # which measured ceiling this case is judged against: "bandwidth" or "fma"


@dataclasses.dataclass
class Timing:
    impl: str
    median_s: float
    min_s: float
    repeats: int


def _sync(device):
    if device == "cuda":
        import cupy

        cupy.cuda.get_current_stream().synchronize()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except ImportError:
            pass


def time_callable(fn, device="cpu", repeats=15, warmup=3, min_batch_seconds=0.02):
    """Median and minimum seconds per call of fn over `repeats` batches."""
    for _ in range(warmup):
        fn()
    _sync(device)
    # Calls per batch: enough that one batch lasts min_batch_seconds (clock resolution, launch noise).
    t0 = time.perf_counter()
    fn()
    _sync(device)
    once = max(time.perf_counter() - t0, 1e-7)
    calls = max(1, min(1000, int(min_batch_seconds / once)))
    samples = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        samples.append((time.perf_counter() - t0) / calls)
    return statistics.median(samples), min(samples)


def run_case(case, device="cpu", repeats=15):
    timings = {}
    for impl, fn in case.impls.items():
        if fn is None:
            continue
        median_s, min_s = time_callable(fn, device=device, repeats=repeats)
        timings[impl] = Timing(impl, median_s, min_s, repeats)
    return timings
