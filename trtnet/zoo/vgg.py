"""VGG (torchvision's `vgg11/13/16/19` and their `_bn` variants): a table of stages and `make_layers`."""

from __future__ import annotations

from dataclasses import dataclass

from trtnet import nn, ops
from trtnet.tensor import Tensor
from trtnet.zoo.registry import torchvision_variant


@dataclass(frozen=True)
class VGGConfig:
    """`stages`: conv widths per stage; each stage ends in a 2x2 max pool (torchvision's "M")."""

    stages: tuple[tuple[int, ...], ...]
    batch_norm: bool = False
    num_classes: int = 1000


STAGES = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}


def make_layers(config: VGGConfig) -> nn.Sequential:
    """torchvision's flat `features`: the index of each layer in this list is its state_dict key."""
    layers: list[nn.Module] = []
    cin = 3
    for stage in config.stages:
        for width in stage:
            layers.append(nn.Conv2d(cin, width, 3, padding=1))
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(width))  # folded into the conv before it by Sequential
            layers.append(nn.Activation("relu"))
            cin = width
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class VGG(nn.ImageClassifier):
    def __init__(self, config: VGGConfig) -> None:
        self.features = make_layers(config)
        # Indices 2 and 5 are dropouts (identity in eval): kept so that the Linear layers sit at 0, 3 and 6.
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.Activation("relu"),
            nn.Identity(),
            nn.Linear(4096, 4096),
            nn.Activation("relu"),
            nn.Identity(),
            nn.Linear(4096, config.num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = ops.adaptive_avg_pool2d(self.features(x), 7)  # identity at 224x224, where features are 7x7
        return self.classifier(x.flatten(1))


vgg11 = torchvision_variant("vgg11", VGG, VGGConfig(STAGES[11], batch_norm=False))
vgg11_bn = torchvision_variant("vgg11_bn", VGG, VGGConfig(STAGES[11], batch_norm=True))
vgg13 = torchvision_variant("vgg13", VGG, VGGConfig(STAGES[13], batch_norm=False))
vgg13_bn = torchvision_variant("vgg13_bn", VGG, VGGConfig(STAGES[13], batch_norm=True))
vgg16 = torchvision_variant("vgg16", VGG, VGGConfig(STAGES[16], batch_norm=False), benchmark=True)
vgg16_bn = torchvision_variant("vgg16_bn", VGG, VGGConfig(STAGES[16], batch_norm=True))
vgg19 = torchvision_variant("vgg19", VGG, VGGConfig(STAGES[19], batch_norm=False))
vgg19_bn = torchvision_variant("vgg19_bn", VGG, VGGConfig(STAGES[19], batch_norm=True))
