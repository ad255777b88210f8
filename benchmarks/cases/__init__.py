"""One module per kernel family; each has cases(device) yielding harness.Case objects.

FAMILIES lists the modules the runner knows; a family joins by adding its module here.
"""
FAMILIES = ["softmax_xent", "gemm", "conv2d", "pool", "batch_norm", "lstm", "training"]
