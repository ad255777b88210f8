"""fastnn.data: real data sets, mini-batches, splits and augmentation (NumPy; batches can go to the GPU).

    from fastnn import data
    x, y = data.load_mnist("train")                    # float32 (60000, 1, 28, 28) in [0, 1], int64 labels
    loader = data.DataLoader(x, y, batch_size=64, shuffle=True, seed=0,
                             transform=data.RandomShift(2))
    text = data.load_text("shakespeare")
    vocab = data.Vocabulary(text)
    batches = data.BPTTBatches(vocab.encode(text), batch_size=16, seq_len=64)

Modules: idx (the IDX file format), mnist (MNIST, Fashion-MNIST), text (char-level text),
loader (DataLoader, random_split, train_val_test_split, kfold), augment (image augmentation).
"""
from .augment import (
    Compose,
    RandomBrightness,
    RandomHorizontalFlip,
    RandomShift,
    random_brightness,
    random_horizontal_flip,
    random_shift,
)
from .idx import parse_idx, read_idx, write_idx
from .loader import DataLoader, kfold, random_split, train_val_test_split
from .mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist, locate, search_locations
from .text import BPTTBatches, Vocabulary, contiguous_split, list_texts, load_text, read_text_file

__all__ = [
    "BPTTBatches",
    "Compose",
    "DataLoader",
    "FASHION_MNIST_CLASSES",
    "RandomBrightness",
    "RandomHorizontalFlip",
    "RandomShift",
    "Vocabulary",
    "contiguous_split",
    "kfold",
    "list_texts",
    "load_fashion_mnist",
    "load_mnist",
    "load_text",
    "locate",
    "parse_idx",
    "random_brightness",
    "random_horizontal_flip",
    "random_shift",
    "random_split",
    "read_idx",
    "read_text_file",
    "search_locations",
    "train_val_test_split",
    "write_idx",
]
