"""XOR: what a single perceptron cannot learn and a two-layer MLP can.

    x = (0,0) (0,1) (1,0) (1,1)       y = x1 XOR x2 = 0 1 1 0

A single layer predicts sigmoid(x w + b): its decision boundary x w + b = 0 is a straight line, and
no line puts (0,1), (1,0) on one side and (0,0), (1,1) on the other, so at most 3 of 4 points are
right. An MLP  sigmoid(tanh(x W1 + b1) W2 + b2)  bends the boundary and gets all 4.
Both are trained with binary cross-entropy on logits, full-batch Adam.

    python examples/xor_mlp.py            # prints both models' accuracy and the MLP's outputs
"""
import argparse
import sys

import numpy as np

from fastnn import data, nn, optim
from fastnn.cli import non_negative_int, positive_float, positive_int
from fastnn.training import Trainer, seed_everything

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def train(model, epochs, lr):
    loader = data.DataLoader(X, Y, batch_size=4)
    trainer = Trainer(model, nn.BCEWithLogitsLoss(), optim.Adam(model.parameters(), lr=lr), progress=False, log=None)
    trainer.fit(loader, epochs=epochs)
    model.eval()
    probabilities = 1 / (1 + np.exp(-model.forward(X)))
    accuracy = float(((probabilities > 0.5) == (Y > 0.5)).mean())
    return accuracy, probabilities.ravel(), trainer.history["train_loss"][-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=positive_int, default=500, help="full-batch gradient steps")
    parser.add_argument("--hidden", type=positive_int, default=8, help="hidden units of the MLP")
    parser.add_argument("--lr", type=positive_float, default=0.05, help="learning rate")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed for the weights")
    args = parser.parse_args(argv)

    seed_everything(args.seed)
    perceptron = nn.Linear(2, 1)
    p_acc, _, p_loss = train(perceptron, args.epochs, args.lr)
    mlp = nn.Sequential(nn.Linear(2, args.hidden), nn.Tanh(), nn.Linear(args.hidden, 1))
    m_acc, m_prob, m_loss = train(mlp, args.epochs, args.lr)

    print(f"single perceptron: accuracy {100 * p_acc:.0f}% (loss {p_loss:.3f}) -- no line separates XOR")
    print(f"MLP 2-{args.hidden}-1:   accuracy {100 * m_acc:.0f}% (loss {m_loss:.4f})")
    for x, y, p in zip(X, Y.ravel(), m_prob):
        print(f"  x = {x.astype(int).tolist()}  y = {int(y)}  MLP p(y=1) = {p:.3f}")
    return 0 if m_acc == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
