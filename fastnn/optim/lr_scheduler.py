"""Learning-rate schedules. Each sets optimizer.lr; t counts step() calls (0 before the first).

Call step() once per epoch or once per iteration, whichever unit the schedule's constants mean
(tau, step_size and boundaries are in those units). eta0 is the optimizer's lr when the scheduler
is created.

    PowerLR           eta(t) = eta0 / (1 + t / tau)^c
    ExponentialLR     eta(t) = eta0 * 0.1^(t / tau)                (a factor 10 every tau steps)
    PiecewiseConstantLR  eta(t) = values[k] for boundaries[k-1] <= t < boundaries[k]
    StepLR            eta(t) = eta0 * gamma^floor(t / step_size)
    InverseTimeLR     eta(t) = eta0 / (1 + decay * t)
    InverseSqrtLR     eta(t) = eta0 / sqrt(t + 1)                  (eta0 / sqrt(epoch), epochs from 1)
    ReduceLROnPlateau eta <- max(eta * factor, min_lr) at the first evaluation after `patience` in a row
                      without improvement (patience=0 cuts at every one; PyTorch's rule);
                      step(metric) with the validation metric

Arguments are checked when a schedule is made (ValueError, naming the argument and the value): NaN and
+-inf are refused everywhere; tau, c, gamma and decay must be > 0; the values of PiecewiseConstantLR and
min_lr and threshold >= 0 (a negative learning rate is gradient ascent); step_size and the boundaries are
integers >= 1, patience an integer >= 0 (TypeError for a non-integer); factor is in (0, 1).
"""
import math

from ..functional._checks import int_at_least as _int_at_least, real_number


class LRScheduler:
    """Base class: step() advances t and sets optimizer.lr = lr_at(t)."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer with an lr, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.eta0 = _non_negative(type(self).__name__, "the optimizer's lr (eta0)", optimizer.lr)
        self.t = 0

    def lr_at(self, t):
        """The learning rate after t steps; each schedule defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define lr_at(t)")

    def step(self):
        self.t += 1
        self.optimizer.lr = self.lr_at(self.t)
        return self.optimizer.lr

    def state_dict(self):
        return {"t": self.t, "eta0": self.eta0}

    def load_state_dict(self, state):
        """Restores t (an integer >= 0) and eta0 (finite, >= 0), checked before either is set."""
        self.t, self.eta0 = self._check_state_dict(state)
        self.optimizer.lr = self.lr_at(self.t)

    def _check_state_dict(self, state):
        """load_state_dict's checks, changing nothing; returns (t, eta0)."""
        owner = f"{type(self).__name__} load_state_dict"
        return _int_at_least(owner, "t", state["t"], 0), _non_negative(owner, "eta0", state["eta0"])


def _positive(owner, name, value):
    """`value` as a float in (0, inf): ValueError for 0, negatives, NaN and inf."""
    return real_number(owner, name, value, above=0.0)


def _non_negative(owner, name, value):
    """`value` as a float in [0, inf): ValueError for negatives, NaN and inf."""
    return real_number(owner, name, value, at_least=0.0)


class PowerLR(LRScheduler):
    """eta(t) = eta0 / (1 + t / tau)^c (power scheduling)."""

    def __init__(self, optimizer, tau, c=1.0):
        super().__init__(optimizer)
        self.tau, self.c = _positive("PowerLR", "tau", tau), _positive("PowerLR", "c", c)

    def lr_at(self, t):
        return self.eta0 / (1.0 + t / self.tau) ** self.c


class ExponentialLR(LRScheduler):
    """eta(t) = eta0 * 0.1^(t / tau) (exponential scheduling: 10x smaller every tau steps)."""

    def __init__(self, optimizer, tau):
        super().__init__(optimizer)
        self.tau = _positive("ExponentialLR", "tau", tau)

    def lr_at(self, t):
        return self.eta0 * 0.1 ** (t / self.tau)


class PiecewiseConstantLR(LRScheduler):
    """eta(t) = values[0] for t < boundaries[0], values[k] for boundaries[k-1] <= t < boundaries[k],
    values[-1] from boundaries[-1] on; len(values) = len(boundaries) + 1. Sets lr = values[0] at once."""

    def __init__(self, optimizer, boundaries, values):
        super().__init__(optimizer)
        boundaries = [_int_at_least("PiecewiseConstantLR", f"boundaries[{k}]", b, 1) for k, b in enumerate(boundaries)]
        values = [_non_negative("PiecewiseConstantLR", f"values[{k}]", v) for k, v in enumerate(values)]
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantLR: need len(values) = len(boundaries) + 1, got "
                             f"{len(values)} values for {len(boundaries)} boundaries")
        if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantLR: boundaries must be increasing and >= 1, got {boundaries}")
        self.boundaries, self.values = boundaries, values
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t):
        k = sum(1 for b in self.boundaries if t >= b)
        return self.values[k]


class StepLR(LRScheduler):
    """eta(t) = eta0 * gamma^floor(t / step_size) (step decay)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size = _int_at_least("StepLR", "step_size", step_size, 1)
        self.gamma = _positive("StepLR", "gamma", gamma)

    def lr_at(self, t):
        return self.eta0 * self.gamma ** (t // self.step_size)


class InverseTimeLR(LRScheduler):
    """eta(t) = eta0 / (1 + decay * t) (inverse-time decay)."""

    def __init__(self, optimizer, decay):
        super().__init__(optimizer)
        self.decay = _positive("InverseTimeLR", "decay", decay)

    def lr_at(self, t):
        return self.eta0 / (1.0 + self.decay * t)


class InverseSqrtLR(LRScheduler):
    """eta(t) = eta0 / sqrt(t + 1), i.e. eta0 / sqrt(epoch) with epochs counted from 1."""

    def lr_at(self, t):
        return self.eta0 / math.sqrt(t + 1)


class ReduceLROnPlateau:
    """Performance scheduling: step(metric) after each evaluation. `patience` evaluations in a row
    that do not improve on the best seen are tolerated; the next one that does not either cuts
    eta <- max(eta * factor, min_lr) and the count restarts (patience=2: the third bad evaluation in
    a row cuts; patience=0: every bad one does, as in PyTorch). Improvement means metric < best - threshold (mode "min", for a loss) or
    metric > best + threshold (mode "max", for an accuracy)."""

    def __init__(self, optimizer, factor=0.1, patience=10, mode="min", threshold=0.0, min_lr=0.0):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"ReduceLROnPlateau: expected an optimizer with an lr, got {type(optimizer).__name__}")
        owner = "ReduceLROnPlateau"
        factor = real_number(owner, "factor", factor, above=0.0, below=1.0)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        self.optimizer = optimizer
        self.factor, self.patience, self.mode = factor, _int_at_least(owner, "patience", patience, 0), mode
        self.threshold = _non_negative(owner, "threshold", threshold)
        self.min_lr = _non_negative(owner, "min_lr", min_lr)
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_evaluations = 0

    def _improved(self, metric):
        if self.mode == "min":
            return metric < self.best - self.threshold
        return metric > self.best + self.threshold

    def step(self, metric):
        metric = float(metric)
        if math.isnan(metric):
            raise ValueError("ReduceLROnPlateau: the metric is NaN")
        if self._improved(metric):
            self.best, self.bad_evaluations = metric, 0
        else:
            self.bad_evaluations += 1
            if self.bad_evaluations > self.patience:
                self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
                self.bad_evaluations = 0
        return self.optimizer.lr

    def state_dict(self):
        return {"best": self.best, "bad_evaluations": self.bad_evaluations}

    def load_state_dict(self, state):
        """Restores best (a number or +-inf, not NaN) and bad_evaluations (an integer >= 0)."""
        self.best, self.bad_evaluations = self._check_state_dict(state)

    def _check_state_dict(self, state):
        """load_state_dict's checks, changing nothing; returns (best, bad_evaluations)."""
        owner = "ReduceLROnPlateau load_state_dict"
        return (real_number(owner, "best", state["best"], finite=False),
                _int_at_least(owner, "bad_evaluations", state["bad_evaluations"], 0))
