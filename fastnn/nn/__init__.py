"""Layers with hand-written forward/backward, containers and losses.

    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    model.zero_grad()
    loss = loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())        # fills p.grad for p in model.parameters()

See fastnn.nn.module for the Module contract and how shared modules accumulate gradients.
"""
from .activation import ELU, GELU, LeakyReLU, PReLU, ReLU, SELU, Sigmoid, Softmax, Tanh
from .attention import MultiHeadAttention, PositionalEncoding
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout
from .embedding import Embedding
from .linear import Flatten, Linear, Maxout
from .loss import (
    BCEWithLogitsLoss,
    HuberLoss,
    L1Loss,
    Loss,
    MSELoss,
    MultiClassHingeLoss,
    SoftmaxCrossEntropyLoss,
    TripletLoss,
)
from .module import Concat, Module, Parameter, Residual, Sequential, is_grad_enabled, no_grad
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .pooling import AvgPool2d, MaxPool2d
from .recurrent import GRU, LSTM, RNN

__all__ = [
    "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Concat", "Conv2d", "ConvTranspose2d",
    "Dropout", "ELU", "Embedding", "Flatten", "GELU", "GRU", "HuberLoss", "L1Loss", "LSTM", "LayerNorm",
    "LeakyReLU", "Linear", "Loss", "MSELoss", "MaxPool2d", "Maxout", "Module", "MultiClassHingeLoss",
    "MultiHeadAttention", "PReLU", "Parameter", "PositionalEncoding", "RNN", "ReLU", "Residual", "SELU",
    "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropyLoss", "Tanh", "TripletLoss", "is_grad_enabled",
    "no_grad",
]
