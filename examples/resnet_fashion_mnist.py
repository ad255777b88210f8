"""A small ResNet-style CNN with batch norm on Fashion-MNIST.

    stem      conv3x3(1->w) - BN - ReLU                                   w x 28 x 28
    stage 1   residual block(w)                                           w x 28 x 28
    stage 2   conv3x3(w->2w, stride 2) - BN - ReLU, residual block(2w)    2w x 14 x 14
    stage 3   conv3x3(2w->4w, stride 2) - BN - ReLU, residual block(4w)   4w x 7 x 7
    head      global average pool (7x7) - fc 10

    residual block(c):  y = ReLU(x + BN(conv3x3(ReLU(BN(conv3x3(x))))))     (He et al. 2016)

The skip connection lets the gradient reach early layers unchanged (dL/dx = dy + block'(dy)), and
batch norm keeps each layer's inputs at zero mean and unit variance. Training uses random shifts
and horizontal flips (clothes are left-right symmetric, digits are not).

Fashion-MNIST is searched for in --data, $FASTNN_DATA/fashion-mnist, ~/.cache/fastnn/fashion-mnist
and the Debian package's folder /usr/share/datasets/fashion-mnist (apt install
dataset-fashion-mnist); without it the script prints where it looked and how to install it (the
loader's own message) and exits with status 2.

    python examples/resnet_fashion_mnist.py                 # 5k training images, width 8, 2 epochs
    python examples/resnet_fashion_mnist.py --train-size 60000 --width 16 --epochs 10
"""
import argparse
import sys

from fastnn import data, nn, optim
from fastnn.cli import non_negative_int, positive_float, positive_int
from fastnn.training import Trainer, count_parameters, seed_everything


def conv_bn_relu(c_in, c_out, stride=1):
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def residual_block(c):
    return [nn.Residual(nn.Sequential(
        *conv_bn_relu(c, c),
        nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
    )), nn.ReLU()]


def small_resnet(num_classes=10, width=16):
    w1, w2, w3 = width, 2 * width, 4 * width
    return nn.Sequential(
        *conv_bn_relu(1, w1), *residual_block(w1),
        *conv_bn_relu(w1, w2, stride=2), *residual_block(w2),
        *conv_bn_relu(w2, w3, stride=2), *residual_block(w3),
        nn.AvgPool2d(7), nn.Flatten(), nn.Linear(w3, num_classes),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--train-size", type=positive_int, default=5000, help="Fashion-MNIST training images used")
    parser.add_argument("--test-size", type=positive_int, default=2000, help="Fashion-MNIST test images used")
    parser.add_argument("--epochs", type=positive_int, default=2, help="training epochs")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="mini-batch size")
    parser.add_argument("--width", type=positive_int, default=8, help="channels of the first stage")
    parser.add_argument("--lr", type=positive_float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--data", default=None, help="a folder holding the Fashion-MNIST files")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed for the split, the weights and the shuffling")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        x_train, y_train = data.load_fashion_mnist("train", path=args.data)
        x_test, y_test = data.load_fashion_mnist("test", path=args.data)
    except FileNotFoundError as e:
        print(f"Fashion-MNIST not found, so this example cannot run.\n{e}", file=sys.stderr)
        return 2
    seed_everything(args.seed)
    x_train, y_train = x_train[:args.train_size], y_train[:args.train_size]
    x_test, y_test = x_test[:args.test_size], y_test[:args.test_size]
    (x_tr, y_tr), (x_val, y_val), _ = data.train_val_test_split(x_train, y_train, val_fraction=0.1,
                                                                  test_fraction=0.0, seed=args.seed)
    augment = data.Compose([data.RandomShift(2), data.RandomHorizontalFlip()])
    train_loader = data.DataLoader(x_tr, y_tr, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                                   transform=augment)
    val_loader = data.DataLoader(x_val, y_val, batch_size=500)
    test_loader = data.DataLoader(x_test, y_test, batch_size=500)

    model = small_resnet(width=args.width)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    trainer = Trainer(model, nn.SoftmaxCrossEntropyLoss(), optimizer,
                      scheduler=optim.ExponentialLR(optimizer, tau=max(args.epochs, 2)),
                      progress=not args.no_progress, unit="img")
    print(f"small ResNet ({count_parameters(model):,} parameters) on Fashion-MNIST: {len(x_tr)} training, "
          f"{len(x_val)} validation, {len(x_test)} test images")
    trainer.fit(train_loader, val_loader, epochs=args.epochs)
    test = trainer.evaluate(test_loader)
    print(f"test accuracy {100 * test['accuracy']:.2f}% (loss {test['loss']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
