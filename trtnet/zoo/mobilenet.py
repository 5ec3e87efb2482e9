"""MobileNetV2 (torchvision's `mobilenet_v2`): a table of inverted-residual rows and a loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from trtnet import nn, ops
from trtnet.layouts import Layout
from trtnet.tensor import Tensor
from trtnet.zoo.common import make_divisible
from trtnet.zoo.registry import torchvision_variant


class IRRow(NamedTuple):
    """One row of the MobileNetV2 paper's table 2: expansion t, output channels c, repeats n, first stride s."""

    expand: int
    channels: int
    repeats: int
    stride: int

    def problem(self) -> str | None:
        """What torchvision's InvertedResidual refuses, if anything (a row set from values)."""
        return None if self.stride in (1, 2) else f"stride {self.stride}: 1 or 2"


ROWS = (
    IRRow(1, 16, 1, 1),
    IRRow(6, 24, 2, 2),
    IRRow(6, 32, 3, 2),
    IRRow(6, 64, 4, 2),
    IRRow(6, 96, 3, 1),
    IRRow(6, 160, 3, 2),
    IRRow(6, 320, 1, 1),
)


@dataclass(frozen=True)
class MobileNetV2Config:
    rows: tuple[IRRow, ...] = ROWS
    width_mult: float = 1.0
    num_classes: int = 1000


def conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's `Conv2dNormActivation` with ReLU6: keys `0.weight` (conv) and `1.*` (BatchNorm)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.Activation("relu6"),
    )


# github.com/tonylins/pytorch-mobilenet-v2 (the benchmark's named source) writes each block's layers as one flat
# Sequential (conv, BN, ReLU6, ...) where torchvision nests conv+BN+ReLU6 into Conv2dNormActivation.
TONYLINS = "tonylins/pytorch-mobilenet-v2"
_TONYLINS_BLOCK = {
    "conv.0": "conv.0.0",
    "conv.1": "conv.0.1",
    "conv.3": "conv.1.0",
    "conv.4": "conv.1.1",
    "conv.6": "conv.2",
    "conv.7": "conv.3",
}
_TONYLINS_T1_BLOCK = {"conv.0": "conv.0.0", "conv.1": "conv.0.1", "conv.3": "conv.1", "conv.4": "conv.2"}


class InvertedResidual(nn.Module):
    layouts = (
        Layout(
            TONYLINS,
            marker="conv.0.weight",
            renames=lambda block: _TONYLINS_BLOCK if block._expand != 1 else _TONYLINS_T1_BLOCK,
        ),
    )

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        self._expand = expand
        hidden = int(round(cin * expand))
        layers: list[nn.Module] = [conv_bn_relu6(cin, hidden, 1)] if expand != 1 else []
        layers += [
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]  # linear bottleneck
        self.conv = nn.Sequential(*layers)
        self._residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self._residual else self.conv(x)


class MobileNetV2(nn.ImageClassifier):
    layouts = (Layout(TONYLINS, marker="classifier.weight", renames=lambda model: {"classifier": "classifier.1"}),)

    def __init__(self, config: MobileNetV2Config) -> None:
        cin = make_divisible(32 * config.width_mult)
        last = make_divisible(1280 * max(1.0, config.width_mult))
        features: list[nn.Module] = [conv_bn_relu6(3, cin, 3, 2)]
        for row in config.rows:
            cout = make_divisible(row.channels * config.width_mult)
            for i in range(row.repeats):
                features.append(InvertedResidual(cin, cout, row.stride if i == 0 else 1, row.expand))
                cin = cout
        features.append(conv_bn_relu6(cin, last, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Identity(), nn.Linear(last, config.num_classes))  # 0 is a dropout

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(ops.global_avg_pool2d(self.features(x)).flatten(1))


# he=True: torchvision scales depthwise kernels by fan_out, so random outputs would ignore the input.
mobilenet_v2 = torchvision_variant("mobilenet_v2", MobileNetV2, MobileNetV2Config(), he=True, benchmark=True)
