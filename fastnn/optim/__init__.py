"""Optimizers, learning-rate schedules and gradient clipping.

    opt = optim.Adam(model.parameters(), lr=1e-3)
    sched = optim.StepLR(opt, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        for x, y in batches:
            model.zero_grad(); ...forward/backward...; optim.clip_grad_norm(model.parameters(), 5.0); opt.step()
        sched.step()
"""
from .clip import clip_grad_norm, clip_grad_value
from .lr_scheduler import (
    ExponentialLR,
    InverseSqrtLR,
    InverseTimeLR,
    LRScheduler,
    PiecewiseConstantLR,
    PowerLR,
    ReduceLROnPlateau,
    StepLR,
)
from .optimizer import SGD, Adagrad, Adam, AdamW, Momentum, Nesterov, Optimizer, RMSProp

__all__ = [
    "SGD", "Adagrad", "Adam", "AdamW", "ExponentialLR", "InverseSqrtLR", "InverseTimeLR", "LRScheduler",
    "Momentum", "Nesterov", "Optimizer", "PiecewiseConstantLR", "PowerLR", "RMSProp", "ReduceLROnPlateau",
    "StepLR", "clip_grad_norm", "clip_grad_value",
]
