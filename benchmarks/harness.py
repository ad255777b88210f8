"""The benchmark harness: times several implementations of one case on the same inputs, in one run.

A Case names a piece of work and gives zero-argument callables that each do it once:

    Case(family="softmax_xent", name="fwd+bwd N=8192 C=10",
         impls={"fastnn": ..., "reference": ..., "torch": ...},   # None = peer not available
         bytes=..., flops=...)                                     # minimal traffic / work, or None

Every callable is timed the same way: warm-up calls, then `repeats` timed batches of calls (each
batch long enough to be measured), and the median is kept. fastnn and PyTorch batches alternate round
by round; the NumPy peers (OpenBLAS) are timed apart from them (see run_case). GPU work is synchronised before each
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


def _prepare(fn, device, warmup, min_batch_seconds):
    """Warm-up calls, then the number of calls per timed batch: enough that one batch lasts
    min_batch_seconds (clock resolution, launch noise)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    once = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(1000, int(min_batch_seconds / once)))


def _batch(fn, calls, device):
    """Seconds per call over one batch of `calls` calls."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / calls


# Peers that run on NumPy's OpenBLAS. Its idle threads spin for a while after each call and take the
# cores from whatever runs next: with the NumPy reference in the rotation, PyTorch's LSTM cell step
# measured 157 ms instead of 85 ms. These are timed first, on their own, and the machine is given
# time to settle before the interleaved rounds.
NUMPY_PEERS = ("reference", "numpy")
SETTLE_SECONDS = 0.5


def run_case(case, device="cpu", repeats=15, warmup=3, min_batch_seconds=0.02):
    """Times every available implementation. The NumPy peers first, each on its own; then the rest in
    `repeats` rounds, each timing one batch of every implementation in turn (the order rotating from
    round to round), so that a machine whose speed drifts over seconds -- a shared VM -- slows all of
    them alike and the ratios stay fair. Keeps the median and minimum seconds per call of each."""
    impls = [(name, fn) for name, fn in case.impls.items() if fn is not None]
    samples = {name: [] for name, _ in impls}
    solo = [(name, fn) for name, fn in impls if name in NUMPY_PEERS]
    rotation = [(name, fn) for name, fn in impls if name not in NUMPY_PEERS]
    for name, fn in solo:
        calls = _prepare(fn, device, warmup, min_batch_seconds)
        samples[name] = [_batch(fn, calls, device) for _ in range(repeats)]
    if solo and rotation:
        time.sleep(SETTLE_SECONDS)
    calls = {name: _prepare(fn, device, warmup, min_batch_seconds) for name, fn in rotation}
    for round_ in range(repeats if rotation else 0):
        shift = round_ % len(rotation)
        for name, fn in rotation[shift:] + rotation[:shift]:
            samples[name].append(_batch(fn, calls[name], device))
    return {name: Timing(name, statistics.median(samples[name]), min(samples[name]), repeats) for name, _ in impls}
