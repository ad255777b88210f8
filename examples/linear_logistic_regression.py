"""Linear and logistic regression by gradient descent, checked against the exact solutions.

Linear regression, y = X w + b + noise, least squares L = (1/n) ||X w + b - y||^2:
    closed form (normal equations) on Xb = [X, 1]:  [w; b] = (Xb^T Xb)^-1 Xb^T y
Logistic regression, p = sigmoid(X w + b), cross-entropy on overlapping classes (a finite optimum):
    exact optimum by Newton's method / IRLS:  theta <- theta + (Xb^T S Xb)^-1 Xb^T (y - p),  S = diag(p (1 - p))
fastnn trains a Linear layer with MSELoss and BCEWithLogitsLoss (full-batch Adam) and should land on
both within a small tolerance.

    python examples/linear_logistic_regression.py
"""
import argparse
import sys

import numpy as np

from fastnn import data, nn, optim
from fastnn.cli import non_negative_int, positive_float, positive_int
from fastnn.training import Trainer, seed_everything


def fit_linear_layer(x, y, loss_fn, epochs, lr):
    layer = nn.Linear(x.shape[1], 1, dtype=np.float64)
    loader = data.DataLoader(x, y, batch_size=len(x))
    optimizer = optim.Adam(layer.parameters(), lr=lr)
    trainer = Trainer(layer, loss_fn, optimizer, scheduler=optim.ExponentialLR(optimizer, tau=epochs),
                      progress=False, log=None)
    trainer.fit(loader, epochs=epochs)
    return np.concatenate([layer.weight.data.ravel(), layer.bias.data])


def newton_logistic(xb, y, iterations=25):
    theta = np.zeros(xb.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-xb @ theta))
        hessian = xb.T @ (xb * (p * (1 - p))[:, None])
        theta += np.linalg.solve(hessian, xb.T @ (y - p))
    return theta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--samples", type=positive_int, default=500, help="synthetic samples")
    parser.add_argument("--epochs", type=positive_int, default=2000, help="full-batch gradient steps")
    parser.add_argument("--lr", type=positive_float, default=0.05, help="SGD learning rate")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed for the data and the weights")
    args = parser.parse_args(argv)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)

    x = rng.standard_normal((args.samples, 3))
    true_theta = np.array([1.5, -2.0, 0.5, 0.7])  # w then b
    y = x @ true_theta[:3] + true_theta[3] + 0.1 * rng.standard_normal(args.samples)
    xb = np.hstack([x, np.ones((args.samples, 1))])
    closed_form = np.linalg.solve(xb.T @ xb, xb.T @ y)
    fitted = fit_linear_layer(x, y[:, None], nn.MSELoss(), args.epochs, args.lr)
    linear_gap = float(np.abs(fitted - closed_form).max())
    print("linear regression  [w1 w2 w3 b]")
    print(f"  closed form (X^T X)^-1 X^T y: {np.round(closed_form, 4)}")
    print(f"  fastnn Linear + MSE + Adam:   {np.round(fitted, 4)}   max |difference| {linear_gap:.2e}")

    labels = (rng.random(args.samples) < 1 / (1 + np.exp(-(x @ [2.0, -1.0, 0.0] + 0.3)))).astype(np.float64)
    newton = newton_logistic(xb, labels)
    fitted_logistic = fit_linear_layer(x, labels[:, None], nn.BCEWithLogitsLoss(), args.epochs, args.lr)
    logistic_gap = float(np.abs(fitted_logistic - newton).max())
    print("logistic regression  [w1 w2 w3 b]")
    print(f"  Newton / IRLS optimum:        {np.round(newton, 4)}")
    print(f"  fastnn Linear + BCE + Adam:   {np.round(fitted_logistic, 4)}   max |difference| {logistic_gap:.2e}")
    return 0 if max(linear_gap, logistic_gap) < 1e-2 else 1


if __name__ == "__main__":
    sys.exit(main())
