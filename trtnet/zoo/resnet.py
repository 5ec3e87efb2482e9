"""ResNet (torchvision's `resnet18..152`; timm's `resnet50` has the same keys). Stride on the 3x3 conv (v1.5)."""

from __future__ import annotations

from dataclasses import dataclass

from trtnet import nn, ops
from trtnet.tensor import Tensor
from trtnet.zoo.overrides import same_stages
from trtnet.zoo.registry import torchvision_variant


@dataclass(frozen=True)
class ResNetConfig:
    layers: tuple[int, int, int, int]
    bottleneck: bool
    num_classes: int = 1000


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int) -> None:
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(cin, width, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = ops.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return ops.relu(y + (self.downsample(x) if self.downsample else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = ops.relu(self.bn1(self.conv1(x)))
        y = ops.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return ops.relu(y + (self.downsample(x) if self.downsample else x))


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.ImageClassifier):
    def __init__(self, config: ResNetConfig) -> None:
        same_stages(config, "layers", count=4)
        block = Bottleneck if config.bottleneck else BasicBlock
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin, stages = 64, []
        for i, depth in enumerate(config.layers):
            width = 64 * 2**i
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * block.expansion
            stages.append(blocks)
        # torchvision's attribute names: layer1..layer4 (weight compatibility requires them).
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(cin, config.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = ops.max_pool2d(ops.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        return self.fc(ops.global_avg_pool2d(x).flatten(1))


resnet18 = torchvision_variant("resnet18", ResNet, ResNetConfig((2, 2, 2, 2), bottleneck=False))
resnet34 = torchvision_variant("resnet34", ResNet, ResNetConfig((3, 4, 6, 3), bottleneck=False))
resnet50 = torchvision_variant("resnet50", ResNet, ResNetConfig((3, 4, 6, 3), bottleneck=True), benchmark=True)
resnet101 = torchvision_variant("resnet101", ResNet, ResNetConfig((3, 4, 23, 3), bottleneck=True), centered="fc")
resnet152 = torchvision_variant("resnet152", ResNet, ResNetConfig((3, 8, 36, 3), bottleneck=True), centered="fc")
