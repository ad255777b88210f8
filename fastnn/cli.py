"""The `fastnn` command.

    fastnn info                 what this build of fastnn has: version, CPU kernel path, threads, CUDA
    fastnn train lenet5         LeNet-5 on MNIST (5 epochs: >= 99% test accuracy), prints images/second
    fastnn train charlstm       character LSTM on Shakespeare: validation perplexity and sampled text

`fastnn train MODEL --help` lists the options (epochs, batch size, learning rate, device, threads,
output folder, resume, overwrite). Mistakes a user can fix (a bad option, an --out folder holding
another run, a checkpoint of other settings, a diverging run) print one `fastnn: error:` line.
"""
import argparse
import math
import os
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
          f"(FASTNN_BUFFER_CACHE_MB), each freed after {_C.buffer_cache_idle_seconds():g} s unused")
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


# ---- argparse types: numbers checked where they are parsed, so a bad value gets the usage of the
# (sub)command it was given to. The examples use them too.
def _number(text, convert, kind):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None


def positive_int(text):
    """argparse type: an int >= 1."""
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def non_negative_int(text):
    """argparse type: an int >= 0 (seeds)."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text):
    """argparse type: a finite float > 0 (learning rates, norms, temperatures)."""
    value = _number(text, float, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
    return value


def fraction(text):
    """argparse type: a float in [0, 1)."""
    value = _number(text, float, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


_REPRODUCIBILITY = ("A run is bit-exactly reproducible, and a resumed run matches an uninterrupted one, for the "
                    "same --threads and the same CPU kernel path (fastnn info): float32 sums are split across "
                    "threads, so another thread count rounds differently.")


def _common_options(p, epochs, batch_size, lr):
    p.add_argument("--epochs", type=positive_int, default=epochs,
                   help=f"epochs in total, counting those a resumed checkpoint holds (default {epochs})")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"mini-batch size (default {batch_size})")
    p.add_argument("--lr", type=positive_float, default=lr, help=f"Adam learning rate (default {lr})")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for fastnn's kernels")
    p.add_argument("--out", default=None,
                   help="folder for checkpoint.npz (every epoch), history.json/.png and model.npz")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz if it exists; the options that define the run (lr, "
                        "batch size, seed, model size, limits) must be those it was written with, while --epochs "
                        "(the total), --threads, --device and --no-progress may change")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out folder that holds an earlier run, replacing its files")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed for weights, shuffling and sampling (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (per-epoch lines only)")


def _warning_line(message, category, filename, lineno, file=None, line=None):
    print(f"fastnn: warning: {message}", file=sys.stderr if file is None else file)


def cmd_train(args):
    import time
    import warnings

    from fastnn import training

    common = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device,
                  threads=args.threads, out=args.out, seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                  progress=not args.no_progress)
    started = time.time()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line  # e.g. an old checkpoint's: one line, no source line
            if args.model == "lenet5":
                training.train_lenet5(limit_train=args.limit_train, limit_eval=args.limit_eval,
                                      cuda_graph=args.cuda_graph, **common)
            else:
                training.train_charlstm(seq_len=args.seq_len, hidden_size=args.hidden, clip=args.clip,
                                        temperature=args.temperature, sample_length=args.sample_length,
                                        limit_chars=args.limit_chars, **common)
    except (training.NonFiniteLossError, training.RunError, training.CheckpointError) as e:
        # What the user can fix (options, the output folder, a diverging run) is one line; anything
        # else is a bug and keeps its traceback.
        print(f"fastnn: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nfastnn: interrupted{_resume_hint(args, started)}", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it
    return 0


def _resume_hint(args, started):
    """What an interrupted run left in --out: a checkpoint this run wrote (or the one it resumed
    from) can be continued; an earlier run's, left by --overwrite before an epoch ended, cannot."""
    if args.out is None:
        return ""
    checkpoint = os.path.join(args.out, "checkpoint.npz")
    if os.path.exists(checkpoint) and (args.resume or os.path.getmtime(checkpoint) >= int(started)):
        return f"; {checkpoint} holds the last completed epoch: run again with --resume to continue"
    return "; no epoch of this run completed, so there is nothing to resume"


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="show what this build of fastnn has")
    info.set_defaults(func=cmd_info)

    train = sub.add_parser("train", help="train a model on real data (lenet5, charlstm)",
                           description="Train a model on real data. " + _REPRODUCIBILITY)
    models = train.add_subparsers(dest="model", required=True)
    for name, (title, add_options) in MODELS.items():
        add_options(models.add_parser(name, help=title, description=f"{title}. {_REPRODUCIBILITY}"), name)
    return parser


def _lenet5_options(p, model):
    _common_options(p, epochs=5, batch_size=64, lr=2e-3)
    # Smoke-test options: train and evaluate on the first N images only.
    p.add_argument("--limit-train", type=positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit-eval", type=positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--cuda-graph", action="store_true",
                   help="with --device cuda: run each training step as one CUDA-graph launch")
    p.set_defaults(func=cmd_train, subparser=p, model=model)


def _charlstm_options(p, model):
    _common_options(p, epochs=3, batch_size=32, lr=2e-3)
    p.add_argument("--seq-len", type=positive_int, default=64, help="BPTT truncation length (default 64)")
    p.add_argument("--hidden", type=positive_int, default=256, help="LSTM hidden size (default 256)")
    p.add_argument("--clip", type=positive_float, default=5.0, help="max gradient norm (default 5)")
    p.add_argument("--temperature", type=positive_float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--sample-length", type=positive_int, default=300, help="characters to sample (default 300)")
    p.add_argument("--limit-chars", type=positive_int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train, subparser=p, model=model)


MODELS = {"lenet5": ("LeNet-5 on MNIST", _lenet5_options),
          "charlstm": ("Character LSTM language model on Shakespeare", _charlstm_options)}


def _run(parser, argv):
    args = parser.parse_args(argv)
    subparser = getattr(args, "subparser", parser)  # errors print the usage of the command given them
    if getattr(args, "cuda_graph", False) and args.device != "cuda":
        subparser.error("--cuda-graph needs --device cuda")
    if getattr(args, "resume", False) and args.out is None:
        subparser.error("--resume needs --out (the folder holding checkpoint.npz)")
    return args.func(args)


def main(argv=None):
    return _run(build_parser(), argv)


def train_script(model, argv=None, prog=None, description=None):
    """`fastnn train MODEL` as a script of its own (examples/lenet5_mnist.py, char_lstm.py): the same
    options and run, with the script's name in --help and errors."""
    title, add_options = MODELS[model]
    parser = argparse.ArgumentParser(prog=prog, description=f"{description or title}. {_REPRODUCIBILITY}")
    add_options(parser, model)
    return _run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
