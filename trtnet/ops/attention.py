"""Scaled dot-product attention."""
from __future__ import annotations

import math

from trtnet.ops.core import TensorLike
from trtnet.ops.elementwise import add, mul
from trtnet.ops.matrix import matmul
from trtnet.ops.normalization import softmax
from trtnet.tensor import Tensor


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, bias: TensorLike | None = None,
                                 scale: float | None = None) -> Tensor:
    """softmax(q @ k^T * scale + bias) @ v over [B, heads, S, D] tensors; `bias` is additive (0 or -inf-like)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = matmul(mul(q, scale), k, transpose_b=True)
    if bias is not None:
        scores = add(scores, bias)
    return matmul(softmax(scores, -1), v)
