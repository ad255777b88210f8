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
    ReduceLROnPlateau eta <- max(eta * factor, min_lr) after `patience` evaluations without improvement;
                      step(metric) with the validation metric
"""
import math


class LRScheduler:
    """Base class: step() advances t and sets optimizer.lr = lr_at(t)."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer with an lr, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.eta0 = float(optimizer.lr)
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
        self.t, self.eta0 = int(state["t"]), float(state["eta0"])
        self.optimizer.lr = self.lr_at(self.t)


def _positive(owner, name, value):
    if not value > 0:
        raise ValueError(f"{owner}: {name} must be positive, got {value}")
    return float(value)


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
        boundaries, values = [int(b) for b in boundaries], [float(v) for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantLR: need len(values) = len(boundaries) + 1, got "
                             f"{len(values)} values for {len(boundaries)} boundaries")
        if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])) or (boundaries and boundaries[0] < 1):
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
        if int(step_size) < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), _positive("StepLR", "gamma", gamma)

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
    """Performance scheduling: step(metric) after each evaluation; when the metric has not improved
    on the best seen for `patience` evaluations in a row, eta <- max(eta * factor, min_lr) and the
    count restarts. Improvement means metric < best - threshold (mode "min", for a loss) or
    metric > best + threshold (mode "max", for an accuracy)."""

    def __init__(self, optimizer, factor=0.1, patience=10, mode="min", threshold=0.0, min_lr=0.0):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"ReduceLROnPlateau: expected an optimizer with an lr, got {type(optimizer).__name__}")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if int(patience) < 0 or threshold < 0 or min_lr < 0:
            raise ValueError("ReduceLROnPlateau: patience, threshold and min_lr must be >= 0")
        self.optimizer = optimizer
        self.factor, self.patience, self.mode = float(factor), int(patience), mode
        self.threshold, self.min_lr = float(threshold), float(min_lr)
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
        self.best, self.bad_evaluations = float(state["best"]), int(state["bad_evaluations"])
