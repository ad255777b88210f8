"""Robust regression: Huber loss vs mean squared error on data with outliers.

    y = 2 x + 1 + noise, and 10% of the points pushed up by +20 (gross outliers)

    MSE:    L = (1/n) sum d^2                                   an outlier's pull grows with d
    Huber:  L = (1/n) sum h(d),  h(d) = d^2/2 (|d| <= delta), delta (|d| - delta/2) beyond
                                                               an outlier's pull is capped at delta
Both fit y = w x + b with full-batch Adam. MSE's line is dragged towards the outliers (its
intercept moves by about 10% of 20 = 2); Huber's stays near the true w = 2, b = 1.

    python examples/huber_vs_mse.py
"""
import argparse
import sys

import numpy as np

from fastnn import data, nn, optim
from fastnn.cli import fraction, non_negative_int, positive_float, positive_int
from fastnn.training import Trainer, seed_everything


def fit_line(x, y, loss_fn, epochs, lr):
    line = nn.Linear(1, 1, dtype=np.float64)
    optimizer = optim.Adam(line.parameters(), lr=lr)
    trainer = Trainer(line, loss_fn, optimizer, scheduler=optim.ExponentialLR(optimizer, tau=epochs),
                      progress=False, log=None)
    trainer.fit(data.DataLoader(x, y, batch_size=len(x)), epochs=epochs)
    return float(line.weight.data[0, 0]), float(line.bias.data[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--samples", type=positive_int, default=200, help="points on the line")
    parser.add_argument("--outlier-fraction", type=fraction, default=0.1,
                        help="fraction of the points made outliers, in [0, 1)")
    parser.add_argument("--epochs", type=positive_int, default=1500, help="full-batch gradient steps")
    parser.add_argument("--lr", type=positive_float, default=0.05, help="SGD learning rate")
    parser.add_argument("--delta", type=positive_float, default=1.0,
                        help="Huber threshold: quadratic below, linear above")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed for the data and the weights")
    args = parser.parse_args(argv)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)

    x = rng.uniform(-3, 3, (args.samples, 1))
    y = 2.0 * x + 1.0 + 0.3 * rng.standard_normal((args.samples, 1))
    outliers = rng.random(args.samples) < args.outlier_fraction
    y[outliers] += 20.0

    mse_w, mse_b = fit_line(x, y, nn.MSELoss(), args.epochs, args.lr)
    huber_w, huber_b = fit_line(x, y, nn.HuberLoss(args.delta), args.epochs, args.lr)
    mse_error = abs(mse_w - 2.0) + abs(mse_b - 1.0)
    huber_error = abs(huber_w - 2.0) + abs(huber_b - 1.0)
    print(f"{outliers.sum()} of {args.samples} points are outliers (+20); true line y = 2.000 x + 1.000")
    print(f"MSE fit:   y = {mse_w:.3f} x + {mse_b:.3f}   (|dw| + |db| = {mse_error:.3f})")
    print(f"Huber fit: y = {huber_w:.3f} x + {huber_b:.3f}   (|dw| + |db| = {huber_error:.3f}, delta {args.delta})")
    return 0 if huber_error < mse_error else 1


if __name__ == "__main__":
    sys.exit(main())
