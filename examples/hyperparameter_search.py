"""Grid search and random search for the learning rate and width of a small MLP on MNIST.

Each candidate trains on a training subset and is scored on a held-out validation subset; only the
winner is evaluated on the test set (choosing on test data would make the test figure optimistic).

    grid:    every (lr, hidden) in {1e-3, 3e-3, 1e-2} x {64, 256}
    random:  lr ~ log-uniform [1e-4, 3e-2], hidden ~ uniform over {32, 64, 128, 256, 512},
             weight decay ~ log-uniform [1e-6, 1e-3]  (Bergstra & Bengio 2012: random search covers
             the parameters that matter better than a grid of the same size)

    python examples/hyperparameter_search.py
"""
import argparse
import itertools
import sys

import numpy as np

from fastnn import data, nn, optim
from fastnn.cli import non_negative_int, positive_int
from fastnn.training import Trainer, seed_everything


def mlp(hidden):
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def train_candidate(config, loaders, epochs, seed):
    seed_everything(seed)  # every candidate starts from the same random state: only the config differs
    model = mlp(config["hidden"])
    optimizer = optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config.get("weight_decay", 0.0))
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optimizer, progress=False, log=None)
    trainer.fit(loaders["train"], loaders["val"], epochs=epochs)
    return trainer, trainer.history["val_accuracy"][-1]


def search(name, configs, loaders, epochs, seed):
    print(f"{name} search ({len(configs)} candidates):")
    results = []
    for config in configs:
        trainer, val_acc = train_candidate(config, loaders, epochs, seed)
        shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in config.items())
        print(f"  {shown:45s} val accuracy {100 * val_acc:.2f}%")
        results.append((val_acc, config, trainer))
    return max(results, key=lambda r: r[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--train-size", type=positive_int, default=5000, help="MNIST training images used")
    parser.add_argument("--val-size", type=positive_int, default=1000,
                        help="validation images the candidates are ranked on")
    parser.add_argument("--epochs", type=positive_int, default=2, help="epochs per candidate")
    parser.add_argument("--random-trials", type=positive_int, default=4, help="candidates drawn by random search")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed for the split, the weights and the search")
    args = parser.parse_args(argv)

    x, y = data.load_mnist("train", flatten=True)
    x_test, y_test = data.load_mnist("test", flatten=True)
    train_idx, val_idx, _ = _subsets(len(x), args.train_size, args.val_size, args.seed)
    loaders = {"train": data.DataLoader(x[train_idx], y[train_idx], batch_size=64, shuffle=True, seed=args.seed),
               "val": data.DataLoader(x[val_idx], y[val_idx], batch_size=1000)}

    grid = [{"lr": lr, "hidden": h} for lr, h in itertools.product([1e-3, 3e-3, 1e-2], [64, 256])]
    rng = np.random.default_rng(args.seed)
    random_configs = [{"lr": float(10 ** rng.uniform(-4, np.log10(3e-2))),
                       "hidden": int(rng.choice([32, 64, 128, 256, 512])),
                       "weight_decay": float(10 ** rng.uniform(-6, -3))} for _ in range(args.random_trials)]

    best = None
    for name, configs in (("grid", grid), ("random", random_configs)):
        winner = search(name, configs, loaders, args.epochs, args.seed)
        print(f"  best of {name}: {winner[1]} (val accuracy {100 * winner[0]:.2f}%)")
        if best is None or winner[0] > best[0]:
            best = winner
    val_acc, config, trainer = best
    test = trainer.evaluate(data.DataLoader(x_test, y_test, batch_size=1000))
    print(f"overall best {config}: val accuracy {100 * val_acc:.2f}%, test accuracy {100 * test['accuracy']:.2f}%")
    return 0


def _subsets(n, train_size, val_size, seed):
    """Disjoint random training and validation indices (the rest of the images is left unused)."""
    order = np.random.default_rng(seed).permutation(n)
    return order[:train_size], order[train_size:train_size + val_size], order[train_size + val_size:]


if __name__ == "__main__":
    sys.exit(main())
