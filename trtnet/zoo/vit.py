"""Vision Transformer (timm's `vit_*_patch16_224`): patch embedding, class token, pre-LayerNorm blocks.

Tokens travel in `nn.MultiHeadAttention`'s layout [B, 1, N, D] from the patch embedding on.
"""

from __future__ import annotations

from dataclasses import dataclass

from trtnet import nn, ops
from trtnet.tensor import Tensor
from trtnet.zoo.registry import timm_variant


@dataclass(frozen=True)
class ViTConfig:
    """timm's `VisionTransformer` arguments that shape the network (class token, token pooling)."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: int = 224
    num_classes: int = 1000
    eps: float = 1e-6  # timm's LayerNorm for ViT


class PatchEmbed(nn.Module):
    def __init__(self, c: ViTConfig) -> None:
        self.proj = nn.Conv2d(3, c.embed_dim, c.patch_size, c.patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return nn.tokens(self.proj(x))  # [B, D, gh, gw] -> [B, 1, N, D]


class Attention(nn.MultiHeadAttention):
    """timm's `Attention`: a fused `qkv` projection, softmax attention over the heads, `proj`."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(num_heads)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.attend(x))


class Block(nn.Module):
    def __init__(self, c: ViTConfig) -> None:
        self.norm1 = nn.LayerNorm(c.embed_dim, c.eps)
        self.attn = Attention(c.embed_dim, c.num_heads)
        self.norm2 = nn.LayerNorm(c.embed_dim, c.eps)
        self.mlp = nn.Mlp(c.embed_dim, int(c.embed_dim * c.mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.ImageClassifier):
    """timm's `VisionTransformer` with a class token and `global_pool="token"`: [B, 3, H, W] -> logits."""

    def __init__(self, c: ViTConfig) -> None:
        tokens = (c.img_size // c.patch_size) ** 2 + 1
        self.cls_token = nn.Parameter((1, 1, c.embed_dim), init="normal", std=1e-6)
        self.pos_embed = nn.Parameter((1, tokens, c.embed_dim), init="normal", std=0.02)
        self.patch_embed = PatchEmbed(c)
        self.blocks = [Block(c) for _ in range(c.depth)]
        self.norm = nn.LayerNorm(c.embed_dim, c.eps)
        self.head = nn.Linear(c.embed_dim, c.num_classes)
        self._config = c
        self.image_size = c.img_size

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        # cat(cls, tokens) + pos_embed, as a zero row padded in front plus one constant: row 0 of the constant
        # is cls + pos[0], so no broadcast of the class token over the batch is needed.
        start = self.pos_embed.data.copy()
        start[:, 0] += self.cls_token.data[:, 0]
        x = ops.pad(x, (0, 0, 1, 0)) + ops.constant(start[None], op="pos_embed")
        for block in self.blocks:
            x = block(x)
        # Only the class token reaches the head, and LayerNorm is per token: normalise that token alone.
        logits = self.head(self.norm(x[:, :, :1]))
        return logits.reshape(x.shape[0], self._config.num_classes)


vit_s_16 = timm_variant(
    "vit_s_16", VisionTransformer, ViTConfig(embed_dim=384, depth=12, num_heads=6), "vit_small_patch16_224"
)
vit_b_16 = timm_variant(
    "vit_b_16",
    VisionTransformer,
    ViTConfig(embed_dim=768, depth=12, num_heads=12),
    "vit_base_patch16_224",
    benchmark=True,
)
vit_l_16 = timm_variant(
    "vit_l_16", VisionTransformer, ViTConfig(embed_dim=1024, depth=24, num_heads=16), "vit_large_patch16_224"
)
