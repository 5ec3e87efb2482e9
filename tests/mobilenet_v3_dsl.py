"""torchvision's MobileNetV3-Large written in trtnet's DSL as a user would write it: the newcomer of issue 24,
whose one wrong activation `verify --layerwise` must find. The attribute paths are torchvision's keys."""

from __future__ import annotations

from dataclasses import dataclass

from trtnet import nn
from trtnet.tensor import Tensor


def _divisible(v: float, divisor: int = 8) -> int:
    """torchvision's `_make_divisible`: round to a multiple of 8, never more than 10% down."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


@dataclass(frozen=True)
class Row:
    cin: int
    kernel: int
    expanded: int
    cout: int
    se: bool
    hardswish: bool
    stride: int


# Table 1 of the MobileNetV3 paper, as torchvision's `_mobilenet_v3_conf("mobilenet_v3_large")` has it.
LARGE = [Row(*r) for r in [
    (16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2), (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2), (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1), (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1), (160, 5, 960, 160, True, True, 1),
]]  # fmt: skip


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act=None) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: keys 0 (conv), 1 (BatchNorm, eps 1e-3), 2 (activation)."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)]
    layers.append(nn.BatchNorm2d(cout, eps=0.001))
    return nn.Sequential(*layers, *([act()] if act else []))


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int) -> None:
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    def __init__(self, row: Row, first_activation=None) -> None:
        act = nn.Hardswish if row.hardswish else nn.ReLU
        layers = []
        if row.expanded != row.cin:
            layers.append(conv_bn_act(row.cin, row.expanded, 1, act=first_activation or act))
        layers.append(conv_bn_act(row.expanded, row.expanded, row.kernel, row.stride, row.expanded, act=act))
        if row.se:
            layers.append(SqueezeExcitation(row.expanded, _divisible(row.expanded // 4)))
        layers.append(conv_bn_act(row.expanded, row.cout, 1))
        self.block = nn.Sequential(*layers)
        self._residual = row.stride == 1 and row.cin == row.cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return y + x if self._residual else y


class MobileNetV3(nn.ImageClassifier):
    """`wrong_block`: the index into LARGE of a block whose expansion activation is the other one (Hardswish
    where the source has ReLU, or ReLU where it has Hardswish: the newcomer's mistake), or None."""

    def __init__(self, wrong_block: int | None = None, num_classes: int = 1000) -> None:
        swap = {True: nn.ReLU, False: nn.Hardswish}
        blocks = [InvertedResidual(r, swap[r.hardswish] if i == wrong_block else None) for i, r in enumerate(LARGE)]
        last = 6 * LARGE[-1].cout
        self.features = nn.Sequential(
            conv_bn_act(3, 16, 3, 2, act=nn.Hardswish), *blocks, conv_bn_act(LARGE[-1].cout, last, 1, act=nn.Hardswish)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last, 1280), nn.Hardswish(), nn.Dropout(), nn.Linear(1280, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))
