"""EfficientNet (timm's `efficientnet_b0..b3`): stage rows as typed tuples, scaled by width and depth multipliers.

timm's building blocks, with its state_dict keys: `BatchNormAct2d` is a BatchNorm (its keys) followed by an
activation; `SqueezeExcite` is `conv_reduce` -> SiLU -> `conv_expand` -> sigmoid gate. timm pads these models
symmetrically as PyTorch does (k // 2), not TensorFlow's "same".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

from trtnet import nn, ops
from trtnet.tensor import Tensor
from trtnet.zoo.common import make_divisible
from trtnet.zoo.registry import timm_variant


class StageRow(NamedTuple):
    """One stage: block kind ("ds" depthwise-separable, "ir" inverted residual), repeats, kernel, first
    stride, expansion, output channels, squeeze-excitation ratio (of the block's input channels)."""

    kind: Literal["ds", "ir"]
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int
    se_ratio: float = 0.25

    def problem(self) -> str | None:
        """What timm's blocks would not build as written here, if anything (a row set from values)."""
        if self.kernel % 2 == 0:  # timm pads (stride - 1 + kernel - 1) // 2: the size holds for odd kernels only
            return f"kernel {self.kernel}: an odd size is needed"
        if self.stride not in (1, 2):
            return f"stride {self.stride}: 1 or 2"
        if self.kind == "ds" and self.expand != 1:
            return f"a 'ds' block has no expansion (expand {self.expand}: 1)"
        return None


ROWS_B0 = (
    StageRow("ds", 1, 3, 1, 1, 16),
    StageRow("ir", 2, 3, 2, 6, 24),
    StageRow("ir", 2, 5, 2, 6, 40),
    StageRow("ir", 3, 3, 2, 6, 80),
    StageRow("ir", 3, 5, 1, 6, 112),
    StageRow("ir", 4, 5, 2, 6, 192),
    StageRow("ir", 1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class EfficientNetConfig:
    width_mult: float = 1.0
    depth_mult: float = 1.0
    rows: tuple[StageRow, ...] = ROWS_B0
    stem: int = 32
    features: int = 1280
    num_classes: int = 1000

    def channels(self, c: int) -> int:
        """timm's `round_channels`: scaled, then `make_divisible(divisor=8)`."""
        return make_divisible(c * self.width_mult)

    def repeats(self, r: int) -> int:
        """timm's depth scaling of a one-block-kind stage: ceil."""
        return int(math.ceil(r * self.depth_mult))


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's BatchNorm + activation in one module (BatchNorm's keys). Folded into the conv before it, the
    activation stays."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels)
        self._act = act

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        return ops.silu(y) if self._act else y


def conv_bn(
    cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> tuple[nn.Conv2d, BatchNormAct2d]:
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
    return conv, BatchNormAct2d(cout, act)  # declared one after the other, so the BatchNorm folds


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = ops.silu(self.conv_reduce(ops.global_avg_pool2d(x)))
        return x * ops.sigmoid(self.conv_expand(s))


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int, row: StageRow, stride: int) -> None:
        self.conv_dw, self.bn1 = conv_bn(cin, cin, row.kernel, stride, groups=cin)
        self.se = SqueezeExcite(cin, round(cin * row.se_ratio))
        self.conv_pw, self.bn2 = conv_bn(cin, cout, 1, act=False)
        self._skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv_pw(self.se(self.bn1(self.conv_dw(x)))))
        return x + y if self._skip else y


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, row: StageRow, stride: int) -> None:
        mid = make_divisible(cin * row.expand)
        self.conv_pw, self.bn1 = conv_bn(cin, mid, 1)
        self.conv_dw, self.bn2 = conv_bn(mid, mid, row.kernel, stride, groups=mid)
        # timm divides the ratio by the expansion and applies it to the expanded channels, rounding once.
        self.se = SqueezeExcite(mid, round(mid * (row.se_ratio / row.expand)))
        self.conv_pwl, self.bn3 = conv_bn(mid, cout, 1, act=False)
        self._skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(self.se(y)))
        return x + y if self._skip else y


BLOCKS = {"ds": DepthwiseSeparableConv, "ir": InvertedResidual}


class EfficientNet(nn.ImageClassifier):
    def __init__(self, config: EfficientNetConfig) -> None:
        cin = config.channels(config.stem)
        self.conv_stem, self.bn1 = conv_bn(3, cin, 3, 2)
        self.blocks: list[list[nn.Module]] = []
        for row in config.rows:
            cout, stage = config.channels(row.channels), []
            for j in range(config.repeats(row.repeats)):
                stage.append(BLOCKS[row.kind](cin, cout, row, row.stride if j == 0 else 1))
                cin = cout
            self.blocks.append(stage)
        features = config.channels(config.features)
        self.conv_head, self.bn2 = conv_bn(cin, features, 1)
        self.classifier = nn.Linear(features, config.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn1(self.conv_stem(x))
        for stage in self.blocks:
            for block in stage:
                x = block(x)
        x = self.bn2(self.conv_head(x))
        return self.classifier(ops.global_avg_pool2d(x).flatten(1))


# (width, depth) multipliers of timm's `_gen_efficientnet` calls. he: with timm's init, random outputs differ between
# inputs by ~1e-3 of their size. Redrawn, the deeper variants sit on a knife's edge: below a gain of about 1.25 their
# outputs hardly depend on the input, above about 1.37 they amplify float32 rounding ten thousand fold (B2 at sqrt 2,
# seed 1: PyTorch fp32 1e-3 from float64, and verify failed). Each gain here keeps, at seeds 0 to 4, outputs that
# differ by 3% or more between inputs and PyTorch fp32 within 2e-6 of float64.
efficientnet_b0 = timm_variant(
    "efficientnet_b0", EfficientNet, EfficientNetConfig(1.0, 1.0), "efficientnet_b0", he=True, benchmark=True
)
efficientnet_b1 = timm_variant(
    "efficientnet_b1", EfficientNet, EfficientNetConfig(1.0, 1.1), "efficientnet_b1", he=1.35
)
efficientnet_b2 = timm_variant(
    "efficientnet_b2", EfficientNet, EfficientNetConfig(1.1, 1.2), "efficientnet_b2", he=1.32
)
efficientnet_b3 = timm_variant(
    "efficientnet_b3", EfficientNet, EfficientNetConfig(1.2, 1.4), "efficientnet_b3", he=1.32
)
