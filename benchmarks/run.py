"""fastnn benchmark runner: fastnn vs the NumPy reference vs PyTorch, same inputs, one process.

    python benchmarks/run.py                          # every family on the CPU
    python benchmarks/run.py --device cuda            # on the GPU (CuPy + fastnn._cuda; PyTorch/cuDNN as peer)
    python benchmarks/run.py --family softmax_xent --json benchmarks/results/cpu.json

For each case it prints the median time of every implementation, GB/s (and GFLOP/s where the case
counts flops), speedup = peer median / fastnn median for each peer, and the fraction of the measured
machine ceiling (copy bandwidth or FMA peak) that fastnn reaches. Run it from the repository root
after `pip install .`; it imports the installed fastnn.
"""
import argparse
import importlib
import json
import os
import platform
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import ceilings  # noqa: E402
import harness  # noqa: E402
from cases import FAMILIES  # noqa: E402


def torch_info(device, threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.__version__


def format_row(case, timings, ceiling_value):
    base = timings.get("fastnn")
    cells = []
    for impl, t in timings.items():
        cells.append(f"{impl} {t.median_s * 1e3:9.3f} ms")
    rates = []
    if base is not None and case.bytes:
        rates.append(f"{case.bytes / base.median_s * 1e-9:7.1f} GB/s")
    if base is not None and case.flops:
        rates.append(f"{case.flops / base.median_s * 1e-9:7.1f} GFLOP/s")
    ratios = [f"x{t.median_s / base.median_s:5.2f} vs {impl}" for impl, t in timings.items() if impl != "fastnn" and base]
    frac = ""
    if base is not None and ceiling_value:
        achieved = case.bytes / base.median_s * 1e-9 if case.ceiling == "bandwidth" else case.flops / base.median_s * 1e-9
        frac = f"{achieved / ceiling_value * 100:5.1f}% of {'copy bw' if case.ceiling == 'bandwidth' else 'FMA peak'}"
    return f"{case.family:14s} {case.name:34s} | " + " | ".join(cells + rates + ratios + ([frac] if frac else []))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="only these families (repeatable)")
    parser.add_argument("--repeats", type=int, default=15, help="timed batches per implementation (median kept)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for fastnn and PyTorch (default: all cores)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--no-ceilings", action="store_true", help="skip measuring the machine ceilings")
    args = parser.parse_args(argv)

    import fastnn

    threads = args.threads or os.cpu_count()
    fastnn.set_num_threads(threads)
    torch_version = torch_info(args.device, threads)
    if args.device == "cuda" and not fastnn.cuda_available():
        sys.exit("--device cuda: fastnn's CUDA module, CuPy or a GPU is missing (fastnn.cuda_available() is False)")

    ceil = {}
    if not args.no_ceilings:
        ceil = ceilings.cuda_ceilings() if args.device == "cuda" else ceilings.cpu_ceilings()
    print(f"fastnn {fastnn.__version__} | device {args.device} | simd {fastnn.simd()} | threads {threads} | "
          f"numpy {np.__version__} | torch {torch_version or 'not installed'} | {platform.processor() or platform.machine()}")
    if ceil:
        print("measured ceilings: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in ceil.items()))
    print("speedup = peer median / fastnn median (>1 means fastnn is faster)")

    results = []
    for family in args.family or FAMILIES:
        module = importlib.import_module(f"cases.{family}")
        for case in module.cases(args.device):
            timings = harness.run_case(case, device=args.device, repeats=args.repeats)
            if case.ceiling == "bandwidth":
                ceiling_value = ceil.get("copy_gbs")
            else:
                ceiling_value = ceil.get("fma_gflops") or ceil.get("fp32_gemm_gflops")
            print(format_row(case, timings, ceiling_value), flush=True)
            results.append({
                "family": case.family, "case": case.name, "bytes": case.bytes, "flops": case.flops,
                "ceiling": case.ceiling,
                "median_ms": {k: t.median_s * 1e3 for k, t in timings.items()},
                "min_ms": {k: t.min_s * 1e3 for k, t in timings.items()},
                "speedup": {k: t.median_s / timings["fastnn"].median_s for k, t in timings.items() if k != "fastnn"},
            })

    if args.json:
        meta = {"fastnn": fastnn.__version__, "device": args.device, "simd": fastnn.simd(), "threads": threads,
                "numpy": np.__version__, "torch": torch_version, "machine": platform.machine(),
                "processor": platform.processor(), "date": ceilings.wall_clock(), "ceilings": ceil,
                "repeats": args.repeats}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
