"""LeNet-5 on MNIST: the README's main job, the same run as `fastnn train lenet5`.

    python examples/lenet5_mnist.py                     # 5 epochs on the CPU: >= 99.0% test accuracy
    python examples/lenet5_mnist.py --epochs 1 --out runs/lenet5 --device cuda

Prints per-epoch training loss/accuracy and validation loss/accuracy, then the test accuracy and the
training throughput in images/second. All options: --help (they are the command's).
"""
import sys

from fastnn.cli import train_script

if __name__ == "__main__":
    sys.exit(train_script("lenet5", sys.argv[1:], description="LeNet-5 on MNIST, as `fastnn train lenet5`"))
