"""Inception v3 (torchvision's `inception_v3`), without the auxiliary head (a training-time output: its
`AuxLogits.*` keys in a checkpoint are skipped with a warning), with torchvision's `transform_input` as an option.

Every spatial size follows the input: the network is built for 299x299 as published and for the 224x224 of the
benchmark alike (`trtnet.build(..., input_shapes={"x": (3, 299, 299)})`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trtnet import nn, ops
from trtnet.tensor import Tensor
from trtnet.zoo.registry import Weights, register, with_weights
from trtnet.zoo.sources import published_source, torchvision_source

Size = int | tuple[int, int]


class BasicConv2d(nn.Module):
    """conv (no bias) + BatchNorm (eps 1e-3) + ReLU, with torchvision's `conv`/`bn` names."""

    def __init__(self, cin: int, cout: int, kernel: Size, stride: int = 1, padding: Size = 0) -> None:
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(self.bn(self.conv(x)))


def _chain(convs: Sequence[BasicConv2d], x: Tensor) -> Tensor:
    for conv in convs:
        x = conv(x)
    return x


def _pool_branch(x: Tensor) -> Tensor:
    """The 3x3 stride-1 average pool before the pool branch's 1x1 conv (padding counted, as in PyTorch)."""
    return ops.avg_pool2d(x, 3, 1, 1, count_include_pad=True)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return ops.concat(
            [
                self.branch1x1(x),
                _chain([self.branch5x5_1, self.branch5x5_2], x),
                _chain([self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3], x),
                self.branch_pool(_pool_branch(x)),
            ],
            1,
        )


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (at 299x299)."""

    def __init__(self, cin: int) -> None:
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return ops.concat(
            [
                self.branch3x3(x),
                _chain([self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3], x),
                ops.max_pool2d(x, 3, 2),
            ],
            1,
        )


class InceptionC(nn.Module):
    """17x17 blocks with factorised 7x7 convolutions, `c7` channels inside."""

    def __init__(self, cin: int, c7: int) -> None:
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        return ops.concat(
            [
                self.branch1x1(x),
                _chain([self.branch7x7_1, self.branch7x7_2, self.branch7x7_3], x),
                _chain(
                    [
                        self.branch7x7dbl_1,
                        self.branch7x7dbl_2,
                        self.branch7x7dbl_3,
                        self.branch7x7dbl_4,
                        self.branch7x7dbl_5,
                    ],
                    x,
                ),
                self.branch_pool(_pool_branch(x)),
            ],
            1,
        )


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (at 299x299)."""

    def __init__(self, cin: int) -> None:
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return ops.concat(
            [
                _chain([self.branch3x3_1, self.branch3x3_2], x),
                _chain([self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4], x),
                ops.max_pool2d(x, 3, 2),
            ],
            1,
        )


class InceptionE(nn.Module):
    """8x8 blocks whose 3x3 branches split into parallel 1x3 and 3x1 convolutions."""

    def __init__(self, cin: int) -> None:
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return ops.concat(
            [
                self.branch1x1(x),
                ops.concat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1),
                ops.concat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1),
                self.branch_pool(_pool_branch(x)),
            ],
            1,
        )


@dataclass(frozen=True)
class InceptionV3Config:
    num_classes: int = 1000
    # torchvision's published weights come from TensorFlow, which fed images scaled to [-1, 1]; the model built
    # with them maps ImageNet-normalised inputs to that scale first.
    transform_input: bool = False


# Per channel: x * std / 0.5 + (mean - 0.5) / 0.5, torchvision's `_transform_input`.
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRANSFORM_SCALE = np.array([s / 0.5 for s in _IMAGENET_STD], np.float32)
TRANSFORM_SHIFT = np.array([(m - 0.5) / 0.5 for m in _IMAGENET_MEAN], np.float32)


class InceptionV3(nn.ImageClassifier):
    # The auxiliary classifier of training (torchvision's aux_logits=True, in its published weights).
    unused_keys = ("AuxLogits.*",)

    def __init__(self, config: InceptionV3Config) -> None:
        self._transform_input = config.transform_input
        # torchvision's attribute names (`Conv2d_1a_3x3`, `Mixed_5b`...) are the weight keys.
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, 2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, 2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.fc = nn.Linear(2048, config.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self._transform_input:
            x = ops.scale_channels(x, TRANSFORM_SCALE, TRANSFORM_SHIFT)
        for name in (
            "Conv2d_1a_3x3",
            "Conv2d_2a_3x3",
            "Conv2d_2b_3x3",
            "maxpool1",
            "Conv2d_3b_1x1",
            "Conv2d_4a_3x3",
            "maxpool2",
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
        ):
            x = getattr(self, name)(x)
        return self.fc(ops.global_avg_pool2d(x).flatten(1))  # the dropout before fc is identity in eval


# init_weights=False: torchvision's own init would need scipy's truncnorm on older versions, and is slow; then
# he=True, as PyTorch's default init fades the signal over 90 convs and outputs would ignore the input.
_SOURCE = torchvision_source("inception_v3", he=True, aux_logits=False, init_weights=False, transform_input=False)


# torchvision's published weights build the model with aux_logits=True and transform_input=True.
@register(
    "inception_v3",
    "torchvision.models.inception_v3 (aux_logits=False, transform_input=False)",
    _SOURCE,
    benchmark=True,
    pretrained=published_source("torchvision.models.inception_v3"),
    pretrained_options={"transform_input": True},
)
def inception_v3(weights: Weights = None, num_classes: int = 1000, transform_input: bool = False) -> InceptionV3:
    """inception_v3 with torchvision's state_dict keys (`AuxLogits.*` skipped). `weights`: safetensors path, dict,
    or None. `transform_input=True` re-normalises the input as torchvision's published weights expect."""
    return with_weights(InceptionV3(InceptionV3Config(num_classes, transform_input)), weights)
