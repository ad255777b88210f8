"""The `fastnn` command.

    fastnn info                 what this build of fastnn has: version, CPU kernel path, threads, CUDA
    fastnn train lenet5         LeNet-5 on MNIST (5 epochs: >= 99% test accuracy), prints images/second
    fastnn train charlstm       character LSTM on Shakespeare: validation perplexity and sampled text

`fastnn train MODEL --help` lists the options (epochs, batch size, learning rate, device, threads,
output folder, resume).
"""
import argparse
import sys


def cmd_info(args):
    import numpy as np

    import fastnn
    from fastnn import _C

    print(f"fastnn {fastnn.__version__}")
    print(f"numpy {np.__version__}")
    print(f"CPU kernels: {fastnn.simd()} (CPU has AVX2/FMA: {_C.cpu_supports_avx2_fma()}, "
          f"AVX-512: {_C.cpu_supports_avx512()}), "
          f"OpenMP: {_C.openmp_enabled()}, threads: {fastnn.get_num_threads()}")
    print(f"output buffer cache: up to {_C.buffer_cache_limit() >> 20} MiB of freed large outputs reused "
          f"(FASTNN_BUFFER_CACHE_MB)")
    print(f"last-level cache: {_C.last_level_cache_bytes() / 2**20:g} MiB (GEMM outputs written once go out with "
          f"streaming stores from {_C.gemm_stream_bytes() / 2**20:.0f} MiB)")
    print(f"CUDA module built: {fastnn.cuda_module_built()}, GPU available: {fastnn.cuda_available()}")
    if fastnn.cuda_module_built() and not fastnn.cuda_available():
        from fastnn import _backend

        reason = _backend._cuda.device_count_error()
        version = _backend._cuda.runtime_version()
        print(f"  CUDA runtime {version // 1000}.{version % 1000 // 10}: "
              f"{reason or 'devices found, but CuPy cannot use them (is a cupy-cuda package installed?)'}")
        if "InsufficientDriver" in reason:
            print("  (no NVIDIA driver is installed, or it is older than this CUDA runtime needs)")
    return 0


def _common_options(p, epochs, batch_size, lr):
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs to train (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"mini-batch size (default {batch_size})")
    p.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr})")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for fastnn's kernels")
    p.add_argument("--out", default=None,
                   help="folder for checkpoint.npz (every epoch), history.json/.png and model.npz")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz if it exists")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, shuffling and sampling (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (per-epoch lines only)")


def _check_positive(parser, args, names):
    for name in names:
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")


def cmd_train(args):
    from fastnn import training

    if args.model == "lenet5":
        training.train_lenet5(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device,
                              threads=args.threads, out=args.out, seed=args.seed, resume=args.resume,
                              limit_train=args.limit_train, limit_eval=args.limit_eval,
                              progress=not args.no_progress, cuda_graph=args.cuda_graph)
    else:
        training.train_charlstm(epochs=args.epochs, batch_size=args.batch_size, seq_len=args.seq_len,
                                hidden_size=args.hidden, lr=args.lr, clip=args.clip, temperature=args.temperature,
                                sample_length=args.sample_length, device=args.device, threads=args.threads,
                                out=args.out, seed=args.seed, resume=args.resume, limit_chars=args.limit_chars,
                                progress=not args.no_progress)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="show what this build of fastnn has")
    info.set_defaults(func=cmd_info)

    train = sub.add_parser("train", help="train a model on real data (lenet5, charlstm)")
    models = train.add_subparsers(dest="model", required=True)
    lenet = models.add_parser("lenet5", help="LeNet-5 on MNIST")
    _common_options(lenet, epochs=5, batch_size=64, lr=2e-3)
    # Smoke-test options: train and evaluate on the first N images only.
    lenet.add_argument("--limit-train", type=int, default=None, help=argparse.SUPPRESS)
    lenet.add_argument("--limit-eval", type=int, default=None, help=argparse.SUPPRESS)
    lenet.add_argument("--cuda-graph", action="store_true",
                       help="with --device cuda: run each training step as one CUDA-graph launch")
    lenet.set_defaults(func=cmd_train, positive=("epochs", "batch_size", "lr", "threads", "limit_train",
                                                 "limit_eval"))

    lstm = models.add_parser("charlstm", help="character LSTM language model on Shakespeare")
    _common_options(lstm, epochs=3, batch_size=32, lr=2e-3)
    lstm.add_argument("--seq-len", type=int, default=64, help="BPTT truncation length (default 64)")
    lstm.add_argument("--hidden", type=int, default=256, help="LSTM hidden size (default 256)")
    lstm.add_argument("--clip", type=float, default=5.0, help="max gradient norm (default 5)")
    lstm.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    lstm.add_argument("--sample-length", type=int, default=300, help="characters to sample (default 300)")
    lstm.add_argument("--limit-chars", type=int, default=None, help=argparse.SUPPRESS)
    lstm.set_defaults(func=cmd_train, positive=("epochs", "batch_size", "lr", "threads", "seq_len", "hidden",
                                                "clip", "temperature", "sample_length", "limit_chars"))
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_positive(parser, args, getattr(args, "positive", ()))
    if getattr(args, "cuda_graph", False) and args.device != "cuda":
        parser.error("--cuda-graph needs --device cuda")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
