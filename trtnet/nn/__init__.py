"""Modules: parameters found by reflection, module paths as layer names and weight keys."""

from trtnet.nn.attention import MultiHeadAttention, tokens, untokens
from trtnet.nn.layers import (
    Activation,
    BatchNorm2d,
    Conv1D,
    Conv2d,
    Embedding,
    Identity,
    LayerNorm,
    LayerNorm2d,
    LayerScale,
    Linear,
    MaxPool2d,
    Mlp,
    Sequential,
    fold_bn,
)
from trtnet.nn.module import ImageClassifier, Input, Module, Parameter

__all__ = [
    "Activation",
    "BatchNorm2d",
    "Conv1D",
    "Conv2d",
    "Embedding",
    "Identity",
    "ImageClassifier",
    "Input",
    "LayerNorm",
    "LayerNorm2d",
    "LayerScale",
    "Linear",
    "MaxPool2d",
    "Mlp",
    "Module",
    "MultiHeadAttention",
    "Parameter",
    "Sequential",
    "fold_bn",
    "tokens",
    "untokens",
]
