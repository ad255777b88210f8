"""Complete training runs shared by the `fastnn train` command and the examples/ scripts.

    train_lenet5(epochs=5)        LeNet-5 on MNIST: 55,000 training / 5,000 validation images,
                                  Adam (lr 2e-3, x0.1 every 3 epochs: ExponentialLR tau=3), batch 64,
                                  random shifts of up to 1 pixel, standardised pixels;
                                  reports the test accuracy and the training images/second.
    train_charlstm(epochs=3)      character LSTM on Shakespeare (90% / 10% contiguous split),
                                  Adam + gradient clipping; reports validation loss and perplexity
                                  exp(loss) per epoch and samples text with a temperature.

Both write into `out` (when given): checkpoint.npz after every epoch (resume=True continues from
it), history.json, history.png (when matplotlib is installed) and the final weights model.npz. A
folder holding an earlier run's files is refused unless resume=True or overwrite=True, and a
checkpoint records the run's settings (model, optimizer and schedule, batch size, lr, seed and
split, limits), so resuming with other settings is refused (RunError/CheckpointError) rather than
mixing two runs. Options that may change on resume: epochs, threads, device, progress, and the
sampling options. Bit-exact resume needs the same thread count and SIMD path.
"""
import math
import os
import time

import numpy as np

from .. import _backend, data, nn, optim
from .models import CharLSTM, count_parameters, lenet5
from .trainer import Trainer, seed_everything


class RunError(ValueError):
    """A run that cannot start or go on as asked, for a reason its caller can fix: an output folder
    that is a file, a checkpoint that is not this run's, a text too short for the batch shape, a GPU
    that is not there. `fastnn train` prints it as one `fastnn: error:` line."""


class NoGPUError(RunError, RuntimeError):
    """device="cuda" without a usable GPU (also a RuntimeError, as before RunError existed)."""


_OUTPUTS = ("checkpoint.npz", "model.npz", "history.json")


def _setup(device, threads, seed, out, resume, overwrite):
    """Checks what can be checked before any data is loaded (device, output folder), then sets the
    thread count and seeds every generator."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not _backend.cuda_available():
        raise NoGPUError("--device cuda: no usable GPU (needs CuPy and the fastnn._cuda module); "
                         "run `fastnn info` to see what this build has")
    if out is None and resume:
        raise RunError("resume needs an output folder (out) holding checkpoint.npz")
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise RunError(f"--out {out} is a file, not a folder; give a folder for checkpoint.npz, history.json "
                       "and model.npz")
    if out is not None and not resume and not overwrite:
        earlier = [name for name in _OUTPUTS if os.path.exists(os.path.join(out, name))]
        if earlier:
            raise RunError(f"{out} already holds {', '.join(earlier)} of an earlier run: continue it with --resume "
                           "(resume=True), replace it with --overwrite (overwrite=True), or choose another --out")
    if threads is not None:
        _backend.set_num_threads(threads)
    seed_everything(seed)


def _limit(n, limit):
    return n if limit is None else min(n, int(limit))


def _outputs(out, trainer, say):
    """Writes history.json, history.png (when matplotlib is there) and model.npz into `out`."""
    if out is None:
        return
    trainer.history.save_json(os.path.join(out, "history.json"))
    trainer.model.save(os.path.join(out, "model.npz"))
    try:
        trainer.history.plot(os.path.join(out, "history.png"))
        say(f"wrote {out}/history.json, history.png, model.npz, checkpoint.npz")
    except ImportError as e:
        say(f"wrote {out}/history.json, model.npz, checkpoint.npz (no plot: {e})")


def _resume(trainer, out, resume, epochs, say):
    """The checkpoint path in `out` (None without one), after loading it when resuming. Returns
    (path, whether there are epochs left to train)."""
    path = None if out is None else os.path.join(out, "checkpoint.npz")
    if resume:
        if os.path.exists(path):
            trainer.load_checkpoint(path)
            say(f"resumed from {path} after epoch {trainer.epoch}")
        else:
            say(f"no checkpoint at {path}; starting from scratch")
    if trainer.epoch >= epochs:
        say(f"nothing to train: the checkpoint already holds {trainer.epoch} epoch(s) and --epochs is {epochs}; "
            f"raise --epochs to train further. The figures below are of the checkpoint's weights.")
    return path, trainer.epoch < epochs


def _perplexity(loss):
    """exp(loss), inf where that overflows (a diverged language model)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def train_lenet5(epochs=5, batch_size=64, lr=2e-3, device="cpu", threads=None, out=None, seed=0,
                 resume=False, val_size=5000, limit_train=None, limit_eval=None, progress=True, say=print,
                 cuda_graph=False, overwrite=False):
    """Trains LeNet-5 on MNIST and returns {"test_accuracy", "test_loss", "images_per_second", "history"}.

    images_per_second is the training throughput (forward, backward and update) over all epochs;
    limit_train / limit_eval cut the training and the validation/test sets (smoke tests);
    cuda_graph (device "cuda" only) runs each training step as one CUDA-graph launch.
    An `out` folder holding an earlier run's files is refused unless resume (continue it: the
    checkpoint must be of the same settings, see Trainer.load_checkpoint) or overwrite.
    """
    _setup(device, threads, seed, out, resume, overwrite)
    if cuda_graph and device != "cuda":
        raise ValueError("cuda_graph needs device='cuda'")
    x_train, y_train = data.load_mnist("train")
    x_test, y_test = data.load_mnist("test")
    train_idx, val_idx = data.random_split(len(x_train), [1 - val_size / len(x_train), val_size / len(x_train)],
                                           seed=seed)
    train_idx = train_idx[:_limit(len(train_idx), limit_train)]
    val_idx = val_idx[:_limit(len(val_idx), limit_eval)]
    n_test = _limit(len(x_test), limit_eval)
    # Standardise with the training images' pixel mean and standard deviation (about 0.13 and 0.31):
    # inputs centred at 0 with unit spread make the first layer's gradients better scaled.
    mean, std = float(x_train[train_idx].mean()), float(x_train[train_idx].std())
    x_train = (x_train - np.float32(mean)) / np.float32(std)
    x_test = (x_test - np.float32(mean)) / np.float32(std)
    # Each training image moved by up to one pixel in each direction: LeNet-5 fits the 55k images
    # (99.7% training accuracy in 5 epochs) faster than it generalises, and the shifts are new images.
    train_loader = data.DataLoader(x_train[train_idx], y_train[train_idx], batch_size=batch_size, shuffle=True,
                                   seed=seed, transform=data.RandomShift(1, fill=-mean / std), device=device)
    val_loader = data.DataLoader(x_train[val_idx], y_train[val_idx], batch_size=1000, device=device)
    test_loader = data.DataLoader(x_test[:n_test], y_test[:n_test], batch_size=1000, device=device)

    model = lenet5().to(device)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    # lr * 0.1^(epoch / 3): 1.0, 0.46, 0.22, 0.10, 0.05 of lr over five epochs. A large rate first
    # covers ground, the late small steps settle Adam's noise; in a PyTorch check of this recipe
    # that gained about 0.1 point of test accuracy over lr 1e-3 decayed 10x in 4 epochs.
    scheduler = optim.ExponentialLR(optimizer, tau=3)
    run_config = {"model": "lenet5", "batch_size": batch_size, "lr": lr, "seed": seed, "val_size": val_size,
                  "limit_train": limit_train, "limit_eval": limit_eval}
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optimizer, scheduler=scheduler, progress=progress,
                      log=say, unit="img", cuda_graph=cuda_graph, run_config=run_config)
    trainer.checkpoint_path, to_train = _resume(trainer, out, resume, epochs, say)
    say(f"LeNet-5 ({count_parameters(model):,} parameters) on MNIST: {len(train_idx)} training, "
        f"{len(val_idx)} validation, {n_test} test images; {device}{' (CUDA graph steps)' if cuda_graph else ''}, "
        f"batch {batch_size}, Adam lr {lr}")
    trainer.fit(train_loader, val_loader, epochs=epochs)
    test = trainer.evaluate(test_loader)
    throughput = _mean_throughput(trainer.history)
    say(f"test accuracy {100 * test['accuracy']:.2f}% (loss {test['loss']:.4f}), "
        + (f"training {throughput:.0f} images/s" if to_train else "no training in this run"))
    _outputs(out, trainer, say)
    return {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "images_per_second": throughput,
            "history": trainer.history}


def _mean_throughput(history):
    """Samples per second over the epochs run: sum of samples / sum of epoch times."""
    times = history["epoch_time"]
    samples = sum(t * r for t, r in zip(times, history["throughput"]))
    return samples / sum(times)


def _flat_targets(batch):
    x, y = batch
    return x, y.reshape(-1)


def train_charlstm(epochs=3, batch_size=32, seq_len=64, hidden_size=256, embedding_dim=64, lr=2e-3, clip=5.0,
                   temperature=0.8, sample_length=300, prime="HAMLET.\n", text="shakespeare", device="cpu",
                   threads=None, out=None, seed=0, resume=False, limit_chars=None, progress=True, say=print,
                   overwrite=False):
    """Trains a character LSTM and returns {"val_loss", "val_perplexity", "chars_per_second",
    "sample", "history"}. limit_chars cuts the text (smoke tests). `out`, resume and overwrite
    work as in train_lenet5."""
    _setup(device, threads, seed, out, resume, overwrite)
    corpus = data.load_text(text)
    if limit_chars is not None:
        corpus = corpus[:int(limit_chars)]
    vocab = data.Vocabulary(corpus)
    train_ids, val_ids = data.contiguous_split(vocab.encode(corpus), [0.9, 0.1])
    if len(train_ids) < batch_size * seq_len + 1 or len(val_ids) < seq_len + 1:
        raise RunError(f"the text is too short for batch size {batch_size} and sequence length {seq_len}: "
                       f"{len(train_ids):,} training characters (need batch size x sequence length + 1 = "
                       f"{batch_size * seq_len + 1:,}) and {len(val_ids):,} validation characters (need "
                       f"{seq_len + 1:,}); use a smaller --batch-size or --seq-len")
    train_batches = data.BPTTBatches(train_ids, batch_size, seq_len, device=device)
    val_batches = data.BPTTBatches(val_ids, min(batch_size, max(1, (len(val_ids) - 1) // seq_len)), seq_len,
                                   device=device)
    model = CharLSTM(len(vocab), embedding_dim, hidden_size).to(device)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    scheduler = optim.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    run_config = {"model": "charlstm", "text": text, "limit_chars": limit_chars, "batch_size": batch_size,
                  "seq_len": seq_len, "hidden_size": hidden_size, "embedding_dim": embedding_dim, "lr": lr,
                  "seed": seed}  # (the clip is recorded as the trainer's clip_grad_norm)
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optimizer, scheduler=scheduler, clip_grad_norm=clip,
                      accuracy=True, prepare_batch=_flat_targets, progress=progress, log=None, unit="chars",
                      run_config=run_config)
    trainer.checkpoint_path, _ = _resume(trainer, out, resume, epochs, say)
    say(f"char-LSTM ({count_parameters(model):,} parameters, vocabulary {len(vocab)}) on {text!r}: "
        f"{len(train_ids):,} training, {len(val_ids):,} validation characters; {device}, batch {batch_size}, "
        f"seq_len {seq_len}, hidden {hidden_size}, Adam lr {lr}, clip {clip}")
    rng = np.random.default_rng(seed)
    while trainer.epoch < epochs:
        trainer.fit(train_batches, val_batches, epochs=trainer.epoch + 1)
        row = trainer.history.rows[-1]
        say(f"epoch {row['epoch']} | lr {row['lr']:.3g} | train loss {row['train_loss']:.4f} | "
            f"val loss {row['val_loss']:.4f} | val perplexity {_perplexity(row['val_loss']):.2f} | "
            f"{row['throughput']:.0f} chars/s")
    start = time.perf_counter()
    sample = model.sample(vocab, prime=prime, length=sample_length, temperature=temperature, rng=rng)
    say(f"sample (temperature {temperature}, {time.perf_counter() - start:.1f} s):\n{prime}{sample}")
    _outputs(out, trainer, say)
    val_loss = trainer.history["val_loss"][-1]
    return {"val_loss": val_loss, "val_perplexity": _perplexity(val_loss),
            "chars_per_second": _mean_throughput(trainer.history), "sample": sample, "history": trainer.history}
