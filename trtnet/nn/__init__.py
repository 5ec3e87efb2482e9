"""Modules: parameters found by reflection, module paths as layer names and weight keys.

The layers take PyTorch's constructor arguments (`Conv2d(in_channels, out_channels, kernel_size, ...)`), so a
model's `__init__` can be copied from its source; see docs/dsl.md for the list.
"""

from trtnet.nn.activation import GELU, Activation, Hardsigmoid, Hardswish, LeakyReLU, ReLU, ReLU6, Sigmoid, SiLU, Tanh
from trtnet.nn.attention import MultiHeadAttention, tokens, untokens
from trtnet.nn.containers import ModuleList, Sequential
from trtnet.nn.conv import BatchNorm2d, Conv2d, fold_bn
from trtnet.nn.layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv1D,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    LayerNorm2d,
    LayerScale,
    Linear,
    MaxPool2d,
    Mlp,
)
from trtnet.nn.module import ImageClassifier, Input, Module, Parameter

__all__ = [
    "GELU",
    "Activation",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv1D",
    "Conv2d",
    "Dropout",
    "Embedding",
    "Flatten",
    "Hardsigmoid",
    "Hardswish",
    "Identity",
    "ImageClassifier",
    "Input",
    "LayerNorm",
    "LayerNorm2d",
    "LayerScale",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Mlp",
    "Module",
    "ModuleList",
    "MultiHeadAttention",
    "Parameter",
    "ReLU",
    "ReLU6",
    "SiLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "fold_bn",
    "tokens",
    "untokens",
]
