"""The training loop: fit / evaluate, with validation, early stopping, schedules, clipping and
checkpoints that resume exactly.

One training step on a batch (x, y) is the chain rule written out:

    model.zero_grad()
    scores = model.forward(x)
    loss   = loss_fn.forward(scores, y)                  L = mean over the batch
    model.backward(loss_fn.backward())                   p.grad = dL/dp for every parameter
    clip_grad_norm(params, max_norm)                     g <- g * max_norm / ||g||  when ||g|| > max_norm
    optimizer.step()                                     p <- update(p, p.grad)

An epoch runs that over every training batch, then evaluates the validation batches with the model
in eval mode, updates the learning-rate schedule, keeps the best weights for early stopping and
writes a checkpoint. A checkpoint holds everything the next epoch depends on (weights, optimizer
moments, schedule, the epoch counter, the random generators, the history and the early-stopping
record), so a resumed run produces bit-identical weights to an uninterrupted one on the CPU, given
the same thread count and SIMD path (float32 reductions are split across threads). A run stopped
in the middle of an epoch resumes from the start of that epoch. The checkpoint also records the
configuration (optimizer and scheduler settings, run_config); loading one written with another
configuration is refused.

    opt = optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), opt, scheduler=optim.StepLR(opt, 2, 0.5),
                      clip_grad_norm=5.0, checkpoint_path="run/checkpoint.npz", patience=3)
    history = trainer.fit(train_loader, val_loader, epochs=10)
    trainer.evaluate(test_loader)        # {"loss": ..., "accuracy": ...}
"""
import json
import math
import random
import re
import time
import warnings
from collections import OrderedDict

import numpy as np

from .. import _backend, init
from .._io import CheckpointError, atomic_savez, read_npz
from .. import nn, optim
from ..functional import NonFiniteError
from ..functional._checks import int_at_least
from .history import History


class NonFiniteLossError(FloatingPointError):
    """Training met NaN or inf: the loss, or a layer's own check (fastnn.functional.NonFiniteError:
    a convolution's output or weight gradient, pooling, an LSTM state, batch statistics) in the step
    named in the message, or a non-finite loss or layer output while evaluating (phase
    "evaluation": step is then the batch, epoch the epochs completed). `detail` is the layer's
    message, None for a non-finite loss."""

    def __init__(self, loss, epoch, step, global_step, detail=None, phase="training"):
        self.loss, self.epoch, self.step, self.global_step = loss, epoch, step, global_step
        self.detail, self.phase = detail, phase
        if phase == "training":
            where = f"at epoch {epoch}, step {step} (global step {global_step})"
            advice = "Try a smaller learning rate, gradient clipping, or check the inputs for NaN/inf."
        else:
            where = f"at batch {step} after epoch {epoch} (global step {global_step})"
            advice = "Check the evaluation inputs and the weights for NaN/inf."
        what = f"{phase} loss is {loss}" if detail is None else f"{phase} hit a non-finite value"
        super().__init__(f"{what} {where}{'' if detail is None else f' ({detail})'}; stopping. {advice}")


def seed_everything(seed):
    """Seeds every generator a CPU run draws from: fastnn.init (weights), NumPy's global generator
    and Python's `random`. DataLoader and Dropout take their own seeds.

    Seeding makes a run bit-exactly reproducible for the same number of threads
    (fastnn.set_num_threads) and the same CPU kernel path (fastnn.simd()): float32 reductions are
    split across threads, so another thread count or SIMD path rounds differently."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    init.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def classification_accuracy(scores, targets):
    """Fraction of rows whose largest score is at the label: mean_i [argmax_k s_ik == y_i]."""
    xp = _backend.array_module(scores)
    return float((xp.argmax(scores, axis=1) == targets).mean())


_LOSS_VALUE = re.compile(r"loss is (-?inf|nan)\b|loss of row \d+ is not finite", re.IGNORECASE)


class _NonFiniteLoss(NonFiniteError):
    """A non-finite loss (value: the loss, NaN when the loss's error names none)."""

    def __init__(self, value):
        super().__init__(f"the loss is {value}")
        self.value = value


def _non_finite_loss_value(error, predictions):
    """The non-finite loss value a loss's ValueError reports (nan when it names none), or None when
    the error is about something else (shapes, labels) and the predictions are finite."""
    match = _LOSS_VALUE.search(str(error))
    if match:
        return float(match.group(1)) if match.group(1) else math.nan
    if not bool(_backend.array_module(predictions).isfinite(predictions).all()):
        return math.nan
    return None


def _split_xy(batch):
    """Default prepare_batch: a loader batch (x, y) as (inputs, targets)."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError("Trainer: each batch must be a pair (x, y); pass prepare_batch for other layouts")
    return batch[0], batch[1]


def _to_cpu(a):
    return a.get() if _backend.is_cupy_array(a) else np.asarray(a)


def _generators(model):
    """(name, numpy Generator) for every generator a module owns (Dropout's masks), in a fixed order."""
    found = []
    for prefix, module in model._named_modules():
        for attr, value in sorted(vars(module).items()):
            if isinstance(value, np.random.Generator):
                found.append((prefix + attr, value))
    return found


class Trainer:
    """Fits a Module with a Loss and an Optimizer; see the module docstring for one step.

    Args:
        model: a fastnn.nn.Module (forward(x) -> predictions, backward(dpred)).
        loss_fn: a fastnn.nn.Loss (forward(pred, target) -> float, backward() -> dpred).
        optimizer: a fastnn.optim optimizer over model.parameters().
        scheduler: None, a per-epoch (or per-step) LRScheduler, or ReduceLROnPlateau, which is
            stepped with the monitored validation metric once per epoch.
        scheduler_unit: "epoch" or "step": when scheduler.step() is called.
        clip_grad_norm: None or the max global gradient norm.
        accuracy: whether to report accuracy (argmax of the predictions vs integer targets);
            None means yes for SoftmaxCrossEntropyLoss and MultiClassHingeLoss.
        patience: None, or stop after this many epochs without improvement of `monitor`
            (needs validation data); the best weights are restored when fit returns.
        monitor: "val_loss" (lower is better) or "val_accuracy" (higher is better).
        checkpoint_path: None or an .npz path written (atomically) after every epoch.
        prepare_batch: maps a loader batch to (inputs, targets); default: the batch is (x, y).
        progress: show a tqdm progress bar per epoch.
        log: callable for the per-epoch summary lines (print by default; None for silence).
        unit: what one target counts as in the throughput figure ("samples", "images", "chars").
        cuda_graph: on CuPy batches, run each training step as one launch of a captured CUDA graph
            (fastnn.training.CudaGraphStep: same arithmetic, far fewer launches for small models).
            The step whose loss is NaN/inf has then already been applied when NonFiniteLossError
            is raised. Ignored for NumPy batches.
        run_config: None or a JSON-able dict of what else defines the run (batch size, data split
            seed, ...): recorded in checkpoints with the optimizer's and scheduler's settings
            (config()), and load_checkpoint refuses a checkpoint whose record differs.

    Reproducibility: with the same seeds, a run is bit-exactly repeatable, and a resumed run matches
    an uninterrupted one, on the same number of threads and the same CPU kernel path
    (fastnn.simd()): float32 reductions are split across threads, so another thread count (or
    another SIMD path) rounds differently.
    """

    def __init__(self, model, loss_fn, optimizer, scheduler=None, scheduler_unit="epoch", clip_grad_norm=None,
                 accuracy=None, patience=None, monitor="val_loss", checkpoint_path=None, prepare_batch=None,
                 progress=True, log=print, unit="samples", cuda_graph=False, run_config=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"Trainer: model must be a fastnn.nn.Module, got {type(model).__name__}")
        if not isinstance(loss_fn, nn.Loss):
            raise TypeError(f"Trainer: loss_fn must be a fastnn.nn.Loss, got {type(loss_fn).__name__}")
        if not isinstance(optimizer, optim.Optimizer):
            raise TypeError(f"Trainer: optimizer must be a fastnn.optim.Optimizer, got {type(optimizer).__name__}")
        if scheduler_unit not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_unit must be 'epoch' or 'step', got {scheduler_unit!r}")
        if isinstance(scheduler, optim.ReduceLROnPlateau) and scheduler_unit != "epoch":
            raise ValueError("Trainer: ReduceLROnPlateau is stepped with the validation metric, once per epoch")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"Trainer: clip_grad_norm must be positive or None, got {clip_grad_norm}")
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise ValueError(f"Trainer: patience must be a positive int or None, got {patience!r}")
        if monitor not in ("val_loss", "val_accuracy"):
            raise ValueError(f"Trainer: monitor must be 'val_loss' or 'val_accuracy', got {monitor!r}")
        if accuracy is None:
            accuracy = isinstance(loss_fn, (nn.SoftmaxCrossEntropyLoss, nn.MultiClassHingeLoss))
        if monitor == "val_accuracy" and not accuracy:
            raise ValueError("Trainer: monitor='val_accuracy' needs accuracy=True")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.scheduler, self.scheduler_unit = scheduler, scheduler_unit
        self.clip_grad_norm = clip_grad_norm
        self.accuracy = bool(accuracy)
        self.patience, self.monitor = patience, monitor
        self.checkpoint_path = checkpoint_path
        self.prepare_batch = prepare_batch or _split_xy
        self.progress, self.log, self.unit = progress, log, unit
        self.cuda_graph = bool(cuda_graph)
        self.run_config = run_config
        try:  # refused now, not when the first checkpoint is written after an epoch of work
            json.dumps(run_config)
        except (TypeError, ValueError) as e:
            raise TypeError(f"Trainer: run_config must be JSON-able (str, int, float, bool, None, lists and "
                            f"dicts of them), got {run_config!r}: {e}") from None
        self._graph_step = None
        self.params = model.parameters()
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps taken
        self.history = History()
        self.best_metric = None
        self.best_epoch = None
        self.best_state = None
        self.bad_epochs = 0
        self.stopped_early = False

    # ---- one step, one pass ----------------------------------------------------------------------
    def _reset_model_state(self):
        # Recurrent language models carry their state across batches of one pass; a pass starts fresh.
        reset = getattr(self.model, "reset_state", None)
        if callable(reset):
            reset()

    def train_step(self, inputs, targets, step_in_epoch=0):
        """One optimizer step on one batch; returns (loss, accuracy or None)."""
        if self.cuda_graph and _backend.is_cupy_array(inputs):
            loss, acc = self._graph_train_step(inputs, targets, step_in_epoch)
        else:
            loss, acc = self._eager_train_step(inputs, targets, step_in_epoch)
        self.global_step += 1
        if self.scheduler is not None and self.scheduler_unit == "step":
            self.scheduler.step()
        return loss, acc

    def _non_finite(self, error, step_in_epoch):
        """NonFiniteLossError for a NonFiniteError (or a non-finite loss value) in a training step."""
        if isinstance(error, NonFiniteError) and not isinstance(error, _NonFiniteLoss):
            return NonFiniteLossError(math.nan, self.epoch + 1, step_in_epoch + 1, self.global_step + 1,
                                      detail=str(error))
        loss = error.value if isinstance(error, _NonFiniteLoss) else error
        return NonFiniteLossError(loss, self.epoch + 1, step_in_epoch + 1, self.global_step + 1)

    def _loss(self, predictions, targets):
        """loss_fn.forward as a float; a NaN/inf loss raises _NonFiniteLoss."""
        try:
            loss = self.loss_fn.forward(predictions, targets)
        except ValueError as e:
            # fastnn's losses refuse a NaN/inf loss themselves (a ValueError); for training that is
            # the event this loop reports. Other ValueErrors (shapes, labels) pass through unchanged.
            value = _non_finite_loss_value(e, predictions)
            if value is None:
                if not isinstance(e, NonFiniteError):
                    raise
                value = math.nan
            raise _NonFiniteLoss(value) from e
        if not math.isfinite(loss):
            raise _NonFiniteLoss(loss)
        return loss

    def _eager_train_step(self, inputs, targets, step_in_epoch):
        self.model.zero_grad()
        # A layer's own NaN/inf check (NonFiniteError, a ValueError subclass) anywhere in the step
        # is the same event as a NaN loss: it becomes NonFiniteLossError naming the step. The
        # optimizer has not stepped then, so the weights are those before this batch.
        try:
            predictions = self.model.forward(inputs)
            loss = self._loss(predictions, targets)
            self.model.backward(self.loss_fn.backward())
            if self.clip_grad_norm is not None:
                optim.clip_grad_norm(self.params, self.clip_grad_norm)
            self.optimizer.step()
        except NonFiniteError as e:
            raise self._non_finite(e, step_in_epoch) from e
        return loss, classification_accuracy(predictions, targets) if self.accuracy else None

    def _graph_train_step(self, inputs, targets, step_in_epoch):
        """The step as one CUDA-graph launch (CudaGraphStep); the loss is read back once per step."""
        if self._graph_step is None:
            from .cuda_graph import CudaGraphStep

            self._graph_step = CudaGraphStep(self.model, self.loss_fn, self.optimizer,
                                             clip_grad_norm=self.clip_grad_norm, accuracy=self.accuracy)
        loss, correct = self._graph_step(inputs, targets)
        loss = float(loss)
        if not math.isfinite(loss):
            raise self._non_finite(loss, step_in_epoch)
        return loss, (float(correct) / len(targets) if self.accuracy else None)

    def _bar(self, loader, description):
        """A tqdm bar advanced by hand (so its final figures can be drawn before it closes), or None."""
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        total = len(loader) if hasattr(loader, "__len__") else None
        return tqdm(total=total, desc=description, leave=False, dynamic_ncols=True)

    def train_epoch(self, loader):
        """One pass over the training batches; returns {"loss", "accuracy", "throughput", "time"}.
        Loss and accuracy are means over samples (batches weighted by their size)."""
        self.model.train()
        self._reset_model_state()
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(self.epoch)  # the epoch's shuffle and augmentation, also after a resume
        total_loss = total_correct = 0.0
        count = 0
        start = time.perf_counter()
        bar = self._bar(loader, f"epoch {self.epoch + 1}")
        postfix = OrderedDict()
        try:
            for step, batch in enumerate(loader):
                inputs, targets = self.prepare_batch(batch)
                loss, acc = self.train_step(inputs, targets, step)
                n = len(targets)
                count += n
                total_loss += loss * n
                if acc is not None:
                    total_correct += acc * n
                if bar is not None:
                    postfix["loss"] = f"{total_loss / count:.4f}"
                    if self.accuracy:
                        postfix["acc"] = f"{total_correct / count:.4f}"
                    postfix[f"{self.unit}/s"] = f"{count / (time.perf_counter() - start):.0f}"
                    bar.set_postfix(postfix, refresh=False)
                    bar.update(1)
            if bar is not None:
                bar.set_postfix(postfix)  # draws the epoch's final figures before the bar is cleared
        finally:
            if bar is not None:
                bar.close()  # also when a step raises (NonFiniteLossError), so the terminal is left clean
        if count == 0:
            raise ValueError("Trainer: the training loader yielded no batches")
        elapsed = time.perf_counter() - start
        return {"loss": total_loss / count, "accuracy": total_correct / count if self.accuracy else None,
                "throughput": count / elapsed, "time": elapsed}

    def evaluate(self, loader):
        """Mean loss (and accuracy) over a loader with the model in eval mode; no parameter changes.
        Returns {"loss", "accuracy" (None when not reported), "throughput"}.

        Raises NonFiniteLossError (phase "evaluation", naming the batch) when the loss or a layer's
        own check meets NaN/inf."""
        was_training = self.model.training
        self.model.eval()
        self._reset_model_state()
        total_loss = total_correct = 0.0
        count = 0
        start = time.perf_counter()
        try:
            for index, batch in enumerate(loader):
                inputs, targets = self.prepare_batch(batch)
                try:
                    with nn.no_grad():  # no backward here: layers keep no caches
                        predictions = self.model.forward(inputs)
                    loss = self._loss(predictions, targets)
                except NonFiniteError as e:
                    value = e.value if isinstance(e, _NonFiniteLoss) else math.nan
                    detail = None if isinstance(e, _NonFiniteLoss) else str(e)
                    raise NonFiniteLossError(value, self.epoch, index + 1, self.global_step, detail=detail,
                                             phase="evaluation") from e
                n = len(targets)
                total_loss += loss * n
                if self.accuracy:
                    total_correct += classification_accuracy(predictions, targets) * n
                count += n
        finally:
            self.model.train(was_training)
        if count == 0:
            raise ValueError("Trainer: the evaluation loader yielded no batches")
        return {"loss": total_loss / count, "accuracy": total_correct / count if self.accuracy else None,
                "throughput": count / (time.perf_counter() - start)}

    # ---- the epoch loop --------------------------------------------------------------------------
    def _improved(self, metric):
        if self.best_metric is None:
            return True
        if self.monitor == "val_loss":
            return metric < self.best_metric
        return metric > self.best_metric

    def fit(self, train_loader, val_loader=None, epochs=1):
        """Trains until `epochs` epochs are complete in total (a resumed trainer continues from its
        epoch counter), or until early stopping. Returns the History."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
        if self.patience is not None and val_loader is None:
            raise ValueError("fit: early stopping (patience) needs val_loader")
        if isinstance(self.scheduler, optim.ReduceLROnPlateau) and val_loader is None:
            raise ValueError("fit: ReduceLROnPlateau needs val_loader (it follows the validation metric)")
        while self.epoch < epochs and not self.stopped_early:
            lr = self.optimizer.lr
            train = self.train_epoch(train_loader)
            self.epoch += 1
            row = OrderedDict(epoch=self.epoch, lr=lr, train_loss=train["loss"])
            if self.accuracy:
                row["train_accuracy"] = train["accuracy"]
            row["throughput"], row["epoch_time"] = train["throughput"], train["time"]
            if val_loader is not None:
                val = self.evaluate(val_loader)
                row["val_loss"] = val["loss"]
                if self.accuracy:
                    row["val_accuracy"] = val["accuracy"]
                metric = row[self.monitor]
                if self._improved(metric):
                    self.best_metric, self.best_epoch, self.bad_epochs = metric, self.epoch, 0
                    self.best_state = self.model.state_dict()
                else:
                    self.bad_epochs += 1
                if self.patience is not None and self.bad_epochs >= self.patience:
                    self.stopped_early = True
            if self.scheduler is not None and self.scheduler_unit == "epoch":
                if isinstance(self.scheduler, optim.ReduceLROnPlateau):
                    self.scheduler.step(row[self.monitor])
                else:
                    self.scheduler.step()
            self.history.append(row)
            if self.log is not None:
                self.log(self._summary(row))
            if self.checkpoint_path is not None:
                self.save_checkpoint(self.checkpoint_path)
        if self.stopped_early and self.log is not None:
            self.log(f"early stopping: no improvement of {self.monitor} for {self.patience} epochs; "
                     f"restoring the weights of epoch {self.best_epoch} ({self.monitor} {self.best_metric:.4f})")
        if self.patience is not None and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history

    def _summary(self, row):
        parts = [f"epoch {row['epoch']}", f"lr {row['lr']:.3g}", f"train loss {row['train_loss']:.4f}"]
        if "train_accuracy" in row:
            parts.append(f"acc {row['train_accuracy']:.4f}")
        if "val_loss" in row:
            parts.append(f"val loss {row['val_loss']:.4f}")
        if "val_accuracy" in row:
            parts.append(f"val acc {row['val_accuracy']:.4f}")
        parts.append(f"{row['throughput']:.0f} {self.unit}/s")
        return " | ".join(parts)

    # ---- checkpoints -----------------------------------------------------------------------------
    def _meta(self):
        """The JSON-able part of a checkpoint: counters, history, schedule and generator states."""
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history.rows,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "config": self.config(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "optimizer_lr": self.optimizer.lr,
            "model_generators": {name: g.bit_generator.state for name, g in _generators(self.model)},
            "init_generator": init.default_rng().bit_generator.state,
            "numpy_global": _legacy_state_to_json(np.random.get_state()),
            "python_random": _python_state_to_json(random.getstate()),
        }

    def save_checkpoint(self, path):
        """Writes model, optimizer, best weights and _meta() to one .npz, atomically."""
        arrays = OrderedDict()
        for name, a in self.model.state_dict().items():
            arrays[f"model.{name}"] = _to_cpu(a)
        for name, a in self.optimizer.state_dict().items():
            arrays[f"optimizer.{name}"] = _to_cpu(a)
        if self.best_state is not None:
            for name, a in self.best_state.items():
                arrays[f"best.{name}"] = _to_cpu(a)
        arrays["meta"] = np.array(json.dumps(self._meta()))
        atomic_savez(path, arrays)

    def config(self):
        """What a checkpoint records of how this trainer trains, and load_checkpoint requires to match:
        the optimizer's and the scheduler's class and hyperparameters (not their state: step counts,
        the current learning rate, eta0, the plateau record), the scheduler unit, clip_grad_norm (it
        changes the updates) and run_config. Early stopping's patience and monitor may change."""
        config = {"optimizer": _settings(self.optimizer),
                  "scheduler": None if self.scheduler is None else _settings(self.scheduler),
                  "scheduler_unit": self.scheduler_unit, "clip_grad_norm": self.clip_grad_norm,
                  "run": self.run_config}
        return json.loads(json.dumps(config))  # as a checkpoint gives it back: tuples as lists

    def load_checkpoint(self, path):
        """Restores everything save_checkpoint wrote; the next fit() continues with the next epoch.

        Everything is checked before anything changes (as Module.load_state_dict does): the
        configuration (config(): optimizer and scheduler classes and hyperparameters, run_config),
        the model's and the best weights' names, shapes and dtypes, the optimizer's state, the
        scheduler's presence, type and state, the random generators' states and the counters. A
        checkpoint written before checkpoints recorded the configuration is loaded with a
        UserWarning that the configuration could not be checked.

        Raises:
            FileNotFoundError: no file at `path`.
            CheckpointError (a ValueError): not a readable .npz, not a training checkpoint, or one
                that does not fit this trainer (the message lists what differs); the trainer,
                model, optimizer and scheduler are then unchanged.
        """
        files = read_npz(path)
        if "meta" not in files:
            raise CheckpointError(f"{path} is not a fastnn training checkpoint (no 'meta' entry)")
        try:
            meta = json.loads(str(files.pop("meta")))
        except ValueError as e:
            raise CheckpointError(f"{path} is not a fastnn training checkpoint (its 'meta' entry is not JSON)") from e
        try:
            restore = self._check_checkpoint(files, meta, path)
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            if isinstance(e, KeyError) and not str(message).startswith(("load_state_dict", "optimizer")):
                message = f"an entry is missing: {message!r}"
            raise CheckpointError(f"{path} does not fit this trainer: {message}") from e
        restore()
        return self

    def _check_checkpoint(self, files, meta, path):
        """load_checkpoint's checks, changing nothing; returns the function that restores the checkpoint."""
        if not isinstance(meta, dict):
            raise ValueError("its 'meta' entry is not a JSON object")
        if "config" not in meta:
            warnings.warn(f"{path} was written before checkpoints recorded their configuration: the optimizer, "
                          "schedule and run settings cannot be checked against this run's; they must be the same",
                          UserWarning, stacklevel=3)
        else:
            differences = _differences(meta["config"], self.config())
            if differences:
                raise ValueError("it was written with another configuration: " + "; ".join(differences)
                                 + ". Resume with the settings it was written with, or start a new run")

        def group(prefix):
            return OrderedDict((k[len(prefix):], v) for k, v in files.items() if k.startswith(prefix))

        model_state, optimizer_state, best = group("model."), group("optimizer."), group("best.")
        self.model._check_state_dict(model_state)
        if best:
            self.model._check_state_dict(best)
        self.optimizer._check_state_dict(optimizer_state)
        scheduler_state = meta["scheduler"]
        if (scheduler_state is None) != (self.scheduler is None):
            raise ValueError(f"the checkpoint {'has no' if scheduler_state is None else 'has a'} scheduler, this "
                             f"trainer {'has' if self.scheduler is not None else 'has none'}")
        if self.scheduler is not None:
            expected = sorted(self.scheduler.state_dict())
            if not isinstance(scheduler_state, dict) or sorted(scheduler_state) != expected:
                raise ValueError(f"the checkpoint's scheduler state {scheduler_state!r} is not a "
                                 f"{type(self.scheduler).__name__}'s (keys {expected})")
            self.scheduler._check_state_dict(scheduler_state)
        optimizer_lr = optim.optimizer.check_hyperparameters("checkpoint", lr=meta["optimizer_lr"])[0]
        generators = dict(_generators(self.model))
        if set(generators) != set(meta["model_generators"]):
            raise ValueError(f"the model's random generators {sorted(generators)} differ from the checkpoint's "
                             f"{sorted(meta['model_generators'])}")
        for name, state in meta["model_generators"].items():  # each state tried on a spare generator
            type(generators[name].bit_generator)().state = state
        type(init.default_rng().bit_generator)().state = meta["init_generator"]
        numpy_global = _legacy_state_from_json(meta["numpy_global"])
        np.random.RandomState().set_state(numpy_global)
        python_random = _python_state_from_json(meta["python_random"])
        random.Random().setstate(python_random)
        epoch = int_at_least("checkpoint", "epoch", meta["epoch"], 0)
        global_step = int_at_least("checkpoint", "global_step", meta["global_step"], 0)
        bad_epochs = int_at_least("checkpoint", "bad_epochs", meta["bad_epochs"], 0)
        stopped_early = bool(meta["stopped_early"])
        history = History(meta["history"])
        best_metric, best_epoch = meta["best_metric"], meta["best_epoch"]

        def restore():
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(optimizer_state)
            if best:
                xp = _backend.array_module(self.params[0].data)
                self.best_state = OrderedDict((k, xp.asarray(v)) for k, v in best.items())
            else:
                self.best_state = None
            if self.scheduler is not None:
                self.scheduler.load_state_dict(scheduler_state)
            self.optimizer.lr = optimizer_lr
            for name, state in meta["model_generators"].items():
                generators[name].bit_generator.state = state
            init.default_rng().bit_generator.state = meta["init_generator"]
            np.random.set_state(numpy_global)
            random.setstate(python_random)
            self.epoch, self.global_step = epoch, global_step
            self.history = history
            self.best_metric, self.best_epoch = best_metric, best_epoch
            self.bad_epochs, self.stopped_early = bad_epochs, stopped_early

        return restore


# Attributes of optimizers and schedulers that are state (restored from a checkpoint), not settings.
_STATE_ATTRIBUTES = frozenset({"t", "lr", "eta0", "best", "bad_evaluations"})


def _is_setting(value):
    if isinstance(value, (list, tuple)):
        return all(_is_setting(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _settings(obj):
    """{"class": name, setting: value}: an optimizer's or a scheduler's public plain-valued attributes."""
    settings = {"class": type(obj).__name__}
    for name, value in sorted(vars(obj).items()):
        if not name.startswith("_") and name not in _STATE_ATTRIBUTES and _is_setting(value):
            settings[name] = value
    return settings


def _differences(saved, current, name=""):
    """'name: X in the checkpoint, Y now' for every setting that differs (nested dicts flattened;
    run_config's keys are shown as they are, the others with their path, e.g. optimizer.eps)."""
    if isinstance(saved, dict) and isinstance(current, dict):
        if saved.get("class") != current.get("class"):  # another optimizer or schedule: its settings differ too
            return [f"{name}: {saved.get('class')} in the checkpoint, {current.get('class')} now"]
        found = []
        for key in sorted(set(saved) | set(current), key=str):
            found += _differences(saved.get(key), current.get(key), key if name in ("", "run") else f"{name}.{key}")
        return found
    return [] if saved == current else [f"{name}: {saved!r} in the checkpoint, {current!r} now"]


def _legacy_state_to_json(state):
    name, keys, pos, has_gauss, cached = state
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _legacy_state_from_json(state):
    name, keys, pos, has_gauss, cached = state
    return name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached


def _python_state_to_json(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_json(state):
    version, internal, gauss = state
    return version, tuple(internal), gauss
