"""The `fastnn` command.

    fastnn info        what this build of fastnn has: version, CPU kernel path, threads, CUDA
"""
import argparse
import sys


def cmd_info(args):
    import numpy as np

    import fastnn
    from fastnn import _C

    print(f"fastnn {fastnn.__version__}")
    print(f"numpy {np.__version__}")
    print(f"CPU kernels: {fastnn.simd()} (CPU has AVX2/FMA: {_C.cpu_supports_avx2_fma()}), "
          f"OpenMP: {_C.openmp_enabled()}, threads: {fastnn.get_num_threads()}")
    print(f"CUDA module built: {fastnn.cuda_module_built()}, GPU available: {fastnn.cuda_available()}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="show what this build of fastnn has")
    info.set_defaults(func=cmd_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
