"""Swin Transformer (timm 1.x's `swin_*_patch4_window7_224`): NHWC tokens, shifted window attention.

timm 1.x layout: stage i > 0 starts with its PatchMerging (`layers.i.downsample`), tokens stay [B, H, W, C],
the classifier is `head.fc`. The relative position bias is gathered from the checkpoint's table in numpy at
emission and added to the shift mask there too, so the attention receives one constant additive mask.

Windows are laid out [B, windows * heads, N, d] for the attention, so that mask is [1, windows * heads, N, N]:
it broadcasts over the batch instead of being tiled for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trtnet import nn, ops
from trtnet.layouts import Layout
from trtnet.tensor import Tensor
from trtnet.zoo.overrides import same_stages
from trtnet.zoo.registry import timm_variant

SHIFT_MASK = -100.0  # timm's value for pairs of tokens from different regions of a shifted window


@dataclass(frozen=True)
class SwinConfig:
    """timm's `SwinTransformer` arguments that shape the network, with timm's defaults (Swin-T)."""

    img_size: int = 224
    patch_size: int = 4
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    eps: float = 1e-5


def relative_position_index(ws: int) -> np.ndarray:
    """[N, N] index into the (2ws-1)^2 bias table for each pair of tokens of a ws x ws window (timm's)."""
    coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


def shift_mask(resolution: int, ws: int, shift: int) -> np.ndarray:
    """[windows, N, N]: 0 within a region of the cyclically shifted image, SHIFT_MASK across regions."""
    region = np.zeros((resolution, resolution), np.float32)
    bounds = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, (rows, cols) in enumerate((h, w) for h in bounds for w in bounds):
        region[rows, cols] = i
    n = resolution // ws
    windows = region.reshape(n, ws, n, ws).transpose(0, 2, 1, 3).reshape(n * n, ws * ws)
    return np.where(windows[:, None, :] != windows[:, :, None], SHIFT_MASK, 0.0).astype(np.float32)


class WindowAttention(nn.MultiHeadAttention):
    """timm's `WindowAttention`: fused `qkv`, attention within each window plus a relative position bias, `proj`."""

    # Index buffer recomputed here; older checkpoints saved it.
    skip_keys = ("relative_position_index",)

    def __init__(self, dim: int, num_heads: int, ws: int) -> None:
        super().__init__(num_heads, windowed=True)
        self.relative_position_bias_table = nn.Parameter(((2 * ws - 1) ** 2, num_heads), init="normal", std=0.02)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self._ws = ws

    def bias(self, mask: np.ndarray | None, windows: int) -> np.ndarray:
        """The additive attention mask [1, windows * heads, N, N]: relative position bias plus shift mask."""
        n = self._ws**2
        table = self.relative_position_bias_table.data
        rel = table[relative_position_index(self._ws).reshape(-1)].reshape(n, n, -1).transpose(2, 0, 1)
        total = np.broadcast_to(rel[None], (windows, *rel.shape))
        if mask is not None:
            total = total + mask[:, None]
        return np.ascontiguousarray(total, np.float32).reshape(1, windows * self._heads, n, n)

    def forward(self, x: Tensor, mask: np.ndarray | None) -> Tensor:
        """x: windows [B, nW, N, C] -> [B, nW, N, C]."""
        return self.proj(self.attend(x, bias=self.bias(mask, x.shape[1])))


class SwinBlock(nn.Module):
    skip_keys = ("attn_mask",)  # a buffer of older checkpoints; recomputed in numpy

    def __init__(self, dim: int, heads: int, resolution: int, ws: int, shifted: bool, c: SwinConfig) -> None:
        # timm's rule: a window never exceeds the feature map, and a map that fits one window is not shifted.
        self._ws = min(ws, resolution)
        self._shift = ws // 2 if shifted and resolution > ws else 0
        self._resolution = resolution
        self.norm1 = nn.LayerNorm(dim, c.eps)
        self.attn = WindowAttention(dim, heads, self._ws)
        self.norm2 = nn.LayerNorm(dim, c.eps)
        self.mlp = nn.Mlp(dim, int(dim * c.mlp_ratio))

    def _windows(self, x: Tensor) -> Tensor:
        b, hh, ww, c = x.shape
        ws = self._ws
        x = ops.shuffle(x, shape=(b, hh // ws, ws, ww // ws, ws, c), second=(0, 1, 3, 2, 4, 5))
        return x.reshape(b, (hh // ws) * (ww // ws), ws * ws, c)

    def _unwindows(self, x: Tensor, hh: int, ww: int) -> Tensor:
        b, _, _, c = x.shape
        ws = self._ws
        x = ops.shuffle(x, shape=(b, hh // ws, ww // ws, ws, ws, c), second=(0, 1, 3, 2, 4, 5))
        return x.reshape(b, hh, ww, c)

    def forward(self, x: Tensor) -> Tensor:
        _, hh, ww, _ = x.shape
        s = self._shift
        y = self.norm1(x)
        if s:
            y = ops.roll(y, (-s, -s), (1, 2))
        mask = shift_mask(self._resolution, self._ws, s) if s else None
        y = self._unwindows(self.attn(self._windows(y), mask), hh, ww)
        if s:
            y = ops.roll(y, (s, s), (1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated in timm's order (row offset fastest), LayerNorm, linear without bias."""

    def __init__(self, dim: int, c: SwinConfig) -> None:
        self.norm = nn.LayerNorm(4 * dim, c.eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, hh, ww, c = x.shape
        x = ops.shuffle(x, shape=(b, hh // 2, 2, ww // 2, 2, c), second=(0, 1, 3, 4, 2, 5))
        return self.reduction(self.norm(x.reshape(b, hh // 2, ww // 2, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, index: int, c: SwinConfig) -> None:
        dim = c.embed_dim * 2**index
        resolution = c.img_size // c.patch_size // 2**index
        self.downsample = PatchMerging(dim // 2, c) if index > 0 else None
        self.blocks = [
            SwinBlock(dim, c.num_heads[index], resolution, c.window_size, j % 2 == 1, c) for j in range(c.depths[index])
        ]

    def forward(self, x: Tensor) -> Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        for block in self.blocks:
            x = block(x)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, c: SwinConfig) -> None:
        self.proj = nn.Conv2d(3, c.embed_dim, c.patch_size, c.patch_size)
        self.norm = nn.LayerNorm(c.embed_dim, c.eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))  # NHWC from here on


class ClassifierHead(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean((1, 2)))


def _from_microsoft(model: SwinTransformer) -> dict[str, str]:
    """github.com/microsoft/Swin-Transformer (the benchmark's named source; its published .pth files): patch
    merging ends stage i where timm 1.x starts stage i + 1 with it, and the head is a bare Linear. The qkv row
    order, the bias tables and the 2x2 merge order are the same."""
    stages = len(model.layers)
    return {
        **{f"layers.{i}.downsample": f"layers.{i + 1}.downsample" for i in range(stages - 1)},
        "head.weight": "head.fc.weight",
        "head.bias": "head.fc.bias",
    }


class SwinTransformer(nn.ImageClassifier):
    """timm's `SwinTransformer`: [B, 3, H, W] -> logits."""

    # Microsoft's files also hold the index and shift-mask buffers, recomputed here.
    layouts = (
        Layout(
            "Microsoft Swin-Transformer",
            marker="layers.0.downsample.reduction.weight",
            renames=_from_microsoft,
            drop=("layers.*.blocks.*.attn.relative_position_index", "layers.*.blocks.*.attn_mask"),
        ),
    )

    def __init__(self, c: SwinConfig) -> None:
        same_stages(c, "depths", "num_heads")
        self.patch_embed = PatchEmbed(c)
        self.layers = [SwinStage(i, c) for i in range(len(c.depths))]
        self.norm = nn.LayerNorm(c.embed_dim * 2 ** (len(c.depths) - 1), c.eps)
        self.head = ClassifierHead(c.embed_dim * 2 ** (len(c.depths) - 1), c.num_classes)
        self._config = c
        self.image_size = c.img_size

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        return self.head(self.norm(x))


swin_t = timm_variant("swin_t", SwinTransformer, SwinConfig(), "swin_tiny_patch4_window7_224", benchmark=True)
swin_s = timm_variant("swin_s", SwinTransformer, SwinConfig(depths=(2, 2, 18, 2)), "swin_small_patch4_window7_224")
swin_b = timm_variant(
    "swin_b",
    SwinTransformer,
    SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    "swin_base_patch4_window7_224",
)
