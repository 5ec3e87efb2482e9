"""Multi-head self-attention in the layout TensorRT runs best: the one place that knows it.

A model's attention class subclasses `MultiHeadAttention`, declares its projections under its source's names
(one fused `qkv` Linear as timm, or `query`/`key`/`value` as transformers) and calls `self.attend(x)`. What
the sources leave to the framework lives here:
- the weight transform, `MultiHeadAttention.qkv_weight`: Q, K and V as one projection, with the 1/sqrt(head_dim)
  attention scale folded into the query rows, so that the attention layer carries no scale of its own;
- the layout: tokens travel as [B, 1, S, D] (`tokens`), so that one batched matmul against the weight seen as
  [1, 3 * heads, d, D] lands directly in the attention's [B, heads, S, d] (`ops.split_heads_linear`), with no
  reshape or transpose between projection and attention. Swin's windows [B, windows, N, C] go through one
  shuffle to [B, windows * heads, N, d] instead, so that a mask per window broadcasts over the batch.
"""

from __future__ import annotations

import math

import numpy as np

from trtnet import ops
from trtnet.nn.module import Module
from trtnet.tensor import Tensor


def tokens(x: Tensor) -> Tensor:
    """Tokens into the attention layout [B, 1, S, D], from [B, S, D] or from a feature map [B, D, H, W]
    (timm's `flatten(2).transpose(1, 2)`). One layer either way."""
    if x.ndim == 4:
        b, d, gh, gw = x.shape
        return ops.shuffle(x, shape=(b, 1, d, gh * gw), second=(0, 1, 3, 2))
    b, s, d = x.shape
    return x.reshape(b, 1, s, d)


def untokens(x: Tensor) -> Tensor:
    """[B, 1, S, D] back to [B, S, D]."""
    b, _, s, d = x.shape
    return x.reshape(b, s, d)


class MultiHeadAttention(Module):
    """Base of a model's self-attention: `attend(x)` maps tokens [B, 1, S, D] (or, `windowed`, windows
    [B, W, N, D]) to the attention output in the same layout, before any output projection.

    >>> class Attention(nn.MultiHeadAttention):          # timm's Attention
    ...     def __init__(self, dim, num_heads):
    ...         super().__init__(num_heads)
    ...         self.qkv = nn.Linear(dim, dim * 3)
    ...         self.proj = nn.Linear(dim, dim)
    ...     def forward(self, x):
    ...         return self.proj(self.attend(x))
    """

    def __init__(self, num_heads: int, windowed: bool = False, is_causal: bool = False) -> None:
        self._heads = num_heads
        self._windowed = windowed
        self._causal = is_causal  # a token attends only to itself and earlier tokens (GPT-2)

    def qkv_weight(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The [q; k; v] projection as one (weight [3D, D], bias [3D] or None), the attention scale 1/sqrt(d)
        folded into the query rows. Read from a fused `qkv` Linear, else from `query`, `key` and `value`."""
        fused = getattr(self, "qkv", None)
        parts = [fused] if fused is not None else [self.query, self.key, self.value]
        weight = np.concatenate([p.weight.data for p in parts])
        bias = None if parts[0].bias is None else np.concatenate([p.bias.data for p in parts])
        return self.fold_query_scale(weight, bias)

    def fold_query_scale(self, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """A [q; k; v] projection (weight [3D, D], bias [3D]) with 1/sqrt(head_dim) folded into the query rows:
        what `qkv_weight` returns, for a subclass whose source stores the projection another way."""
        dim = weight.shape[0] // 3
        row_scale = np.ones(3 * dim, np.float32)
        row_scale[:dim] = 1.0 / math.sqrt(dim // self._heads)
        return weight * row_scale[:, None], None if bias is None else bias * row_scale

    def attend(self, x: Tensor, bias: np.ndarray | Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """softmax(q k^T / sqrt(d) + bias) v over the heads; `mask`: bool (True: attend) or an additive float in
        the compute dtype, or an additive `bias`; causal when the module was made with `is_causal=True`."""
        h = self._heads
        weight, b = self.qkv_weight()
        if not self._windowed:
            qkv = ops.split_heads_linear(x, weight, b, 3 * h)  # [B, 3h, S, d]
            q, k, v = qkv[:, :h], qkv[:, h : 2 * h], qkv[:, 2 * h :]
            o = ops.scaled_dot_product_attention(q, k, v, bias=bias, mask=mask, scale=1.0, is_causal=self._causal)
            return ops.merge_heads(o)
        batch, nw, n, c = x.shape
        d = c // h
        qkv = ops.shuffle(ops.linear(x, weight, b), shape=(batch, nw, n, 3 * h, d), second=(0, 1, 3, 2, 4))
        q, k, v = (qkv[:, :, i * h : (i + 1) * h].reshape(batch, nw * h, n, d) for i in range(3))
        o = ops.scaled_dot_product_attention(q, k, v, bias=bias, mask=mask, scale=1.0, is_causal=self._causal)
        return ops.shuffle(o, shape=(batch, nw, h, n, d), second=(0, 1, 3, 2, 4)).reshape(batch, nw, n, c)
