"""ConvNeXt (timm's `convnext_tiny`, `convnext_small`, `convnext_base`): a patchify stem, four stages of
depthwise 7x7 blocks with a LayerNorm, an MLP and a layer scale, and a pool -> LayerNorm -> linear head.

timm's block permutes to channels-last for its LayerNorm and MLP and permutes back. Here the same LayerNorm and
Linear weights act on the channels of the NCHW tensor (a normalization over axis 1, 1x1 convolutions), which is
the same arithmetic (timm's docstring calls the two forms equivalent) without the two permutes per block.
"""

from __future__ import annotations

from dataclasses import dataclass

from trtnet import nn, ops
from trtnet.tensor import Tensor
from trtnet.zoo.overrides import same_stages
from trtnet.zoo.registry import timm_variant


@dataclass(frozen=True)
class ConvNeXtConfig:
    """timm's `ConvNeXt` arguments that shape the network."""

    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    num_classes: int = 1000
    kernel_size: int = 7
    mlp_ratio: int = 4
    patch_size: int = 4
    layer_scale: bool = True  # timm's ls_init_value is not None: each block has a `gamma`
    eps: float = 1e-6  # timm's LayerNorm and LayerNorm2d
    img_size: int = 224


class ConvNeXtBlock(nn.Module):
    """timm's `ConvNeXtBlock` (conv_mlp=False): dwconv 7x7 -> LayerNorm -> Mlp (GELU) -> layer scale, plus x."""

    def __init__(self, dim: int, c: ConvNeXtConfig) -> None:
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=c.kernel_size, padding=c.kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=c.eps, axis=1)  # timm's channels-last LayerNorm, on the channel axis
        self.mlp = nn.Mlp(dim, hidden_features=c.mlp_ratio * dim, axis=1)
        self.gamma = nn.Parameter((dim,), init="uniform", low=0.5, high=1.5) if c.layer_scale else None

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.mlp(self.norm(self.conv_dw(x)))
        if self.gamma is not None:
            x = x * self.gamma.reshape(1, -1, 1, 1)  # timm's x.mul(self.gamma.reshape(1, -1, 1, 1)): one scale layer
        return x + shortcut


class ConvNeXtStage(nn.Module):
    """timm's `ConvNeXtStage`: a downsample (LayerNorm2d, 2x2 conv stride 2) except in the first, then blocks."""

    def __init__(self, cin: int, cout: int, depth: int, c: ConvNeXtConfig) -> None:
        self.downsample = (
            nn.Sequential(nn.LayerNorm2d(cin, eps=c.eps), nn.Conv2d(cin, cout, kernel_size=2, stride=2))
            if cin != cout
            else nn.Identity()
        )
        self.blocks = nn.Sequential(*[ConvNeXtBlock(cout, c) for _ in range(depth)])

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class NormMlpClassifierHead(nn.Module):
    """timm's head for ConvNeXt: global average pool -> LayerNorm2d -> flatten -> `fc`."""

    def __init__(self, dim: int, num_classes: int, eps: float) -> None:
        self.norm = nn.LayerNorm2d(dim, eps=eps)
        self.fc = nn.Linear(dim, num_classes, axis=1)  # on [N, C, 1, 1]: one 1x1 convolution, bias inside

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.norm(ops.global_avg_pool2d(x))).flatten(1)


class ConvNeXt(nn.ImageClassifier):
    """timm's `ConvNeXt` with the patch stem: [B, 3, H, W] -> logits."""

    def __init__(self, c: ConvNeXtConfig) -> None:
        same_stages(c, "depths", "dims")
        self.stem = nn.Sequential(
            nn.Conv2d(3, c.dims[0], kernel_size=c.patch_size, stride=c.patch_size), nn.LayerNorm2d(c.dims[0], eps=c.eps)
        )
        cins = (c.dims[0], *c.dims[:-1])
        self.stages = nn.Sequential(
            *[ConvNeXtStage(cin, cout, depth, c) for cin, cout, depth in zip(cins, c.dims, c.depths)]
        )
        self.head = NormMlpClassifierHead(c.dims[-1], c.num_classes, c.eps)
        self.image_size = c.img_size

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))


convnext_tiny = timm_variant(
    "convnext_tiny", ConvNeXt, ConvNeXtConfig((3, 3, 9, 3), (96, 192, 384, 768)), "convnext_tiny"
)
convnext_small = timm_variant(
    "convnext_small", ConvNeXt, ConvNeXtConfig((3, 3, 27, 3), (96, 192, 384, 768)), "convnext_small"
)
convnext_base = timm_variant(
    "convnext_base", ConvNeXt, ConvNeXtConfig((3, 3, 27, 3), (128, 256, 512, 1024)), "convnext_base"
)
