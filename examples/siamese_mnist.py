"""A triplet (Siamese) embedding of MNIST digits, judged by nearest-neighbour accuracy.

One network f (shared weights) maps an image to a point in R^D. Each training triplet is an anchor
a, a positive p of the same digit and a negative n of another digit; the triplet loss

    L = (1/N) sum_i max(0, ||f(a_i) - f(p_i)||^2 - ||f(a_i) - f(n_i)||^2 + margin)

pulls same-digit images together and pushes other digits at least `margin` further away.

Random negatives are soon too easy (their bracket is negative and they teach nothing), so the
negatives are mined in the batch, as in FaceNet: for anchor i, among the batch's positives p_j of
another digit, the closest one still farther than p_i ("semi-hard"), else the closest one. Then
n = f(p)[j], so the network runs twice (anchors, positives) and the negatives' gradient is added
into the positives' rows before backpropagating: f.backward(dp + scatter(dn)); f.backward(da),
in the reverse order of the two forward calls, both adding into the same p.grad.

Afterwards each test image is labelled with the digit of its nearest training image in embedding
space (1-NN), and the same 1-NN on raw pixels is the baseline.

    python examples/siamese_mnist.py          # about 10k training images, 5 epochs
"""
import argparse
import sys

import numpy as np

import fastnn
from fastnn import data, nn, optim
from fastnn.cli import non_negative_int, positive_float, positive_int
from fastnn.training import seed_everything


def embedding_net(dim):
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, dim))


def semi_hard_negatives(za, zp, labels):
    """For each anchor i, the index j of its negative among the positives zp (labels[j] != labels[i]):
    the closest one with ||za_i - zp_j||^2 > ||za_i - zp_i||^2 (semi-hard), else the closest one."""
    d = (za * za).sum(axis=1)[:, None] - 2.0 * (za @ zp.T) + (zp * zp).sum(axis=1)[None, :]
    d[labels[:, None] == labels[None, :]] = np.inf  # same digit: not a negative
    d_positive = ((za - zp) ** 2).sum(axis=1)
    semi_hard = np.where(d > d_positive[:, None], d, np.inf)
    has_semi_hard = np.isfinite(semi_hard).any(axis=1)
    return np.where(has_semi_hard, semi_hard.argmin(axis=1), d.argmin(axis=1))


def nearest_neighbour_accuracy(gallery, gallery_labels, queries, query_labels, chunk=500):
    """Fraction of queries whose nearest gallery point (squared Euclidean distance) has their label."""
    g2 = (gallery * gallery).sum(axis=1)
    correct = 0
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        # ||q - g||^2 = ||q||^2 - 2 q.g + ||g||^2; ||q||^2 is the same for every g, so it is left out.
        distances = g2[None, :] - 2.0 * (q @ gallery.T)
        correct += int((gallery_labels[distances.argmin(axis=1)] == query_labels[start:start + chunk]).sum())
    return correct / len(queries)


def embed(net, x, batch=1000):
    net.eval()
    with fastnn.no_grad():  # inference only: the layers keep no cache for a backward
        out = np.concatenate([net.forward(x[i:i + batch]) for i in range(0, len(x), batch)])
    net.train()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--train-size", type=positive_int, default=10000, help="MNIST training images used")
    parser.add_argument("--test-size", type=positive_int, default=2000, help="MNIST test images used")
    parser.add_argument("--epochs", type=positive_int, default=5, help="training epochs")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="triplets per mini-batch")
    parser.add_argument("--dim", type=positive_int, default=32, help="embedding dimension")
    parser.add_argument("--margin", type=positive_float, default=1.0, help="triplet loss margin")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed for the data, the triplets and the weights")
    args = parser.parse_args(argv)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)

    x_train, y_train = data.load_mnist("train", flatten=True)
    x_test, y_test = data.load_mnist("test", flatten=True)
    x_train, y_train = x_train[:args.train_size], y_train[:args.train_size]
    x_test, y_test = x_test[:args.test_size], y_test[:args.test_size]
    by_class = [np.flatnonzero(y_train == k) for k in range(10)]

    net = embedding_net(args.dim)
    loss_fn = nn.TripletLoss(args.margin)
    optimizer = optim.Adam(net.parameters(), lr=args.lr)
    anchors = data.DataLoader(np.arange(len(x_train)), batch_size=args.batch_size, shuffle=True, seed=args.seed)
    for epoch in range(1, args.epochs + 1):
        total, batches = 0.0, 0
        for a_idx in anchors:
            labels = y_train[a_idx]
            p_idx = np.array([rng.choice(by_class[k]) for k in labels])
            net.zero_grad()
            za, zp = net.forward(x_train[a_idx]), net.forward(x_train[p_idx])
            neg = semi_hard_negatives(za, zp, labels)
            total += loss_fn.forward(za, zp, zp[neg])
            batches += 1
            d_anchor, d_positive, d_negative = loss_fn.backward()
            np.add.at(d_positive, neg, d_negative)  # zn = zp[neg]: its gradient lands on those rows
            net.backward(d_positive)
            net.backward(d_anchor)
            optimizer.step()
        print(f"epoch {epoch}: triplet loss {total / batches:.4f}")

    embedded_acc = nearest_neighbour_accuracy(embed(net, x_train), y_train, embed(net, x_test), y_test)
    pixel_acc = nearest_neighbour_accuracy(x_train, y_train, x_test, y_test)
    print(f"1-NN test accuracy in the {args.dim}-d triplet embedding: {100 * embedded_acc:.2f}% "
          f"({len(x_train)} gallery, {len(x_test)} test images)")
    print(f"1-NN test accuracy on raw 784-d pixels:           {100 * pixel_acc:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
