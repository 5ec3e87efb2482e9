"""Attention: TensorRT's fused attention layer where the backend has one, matmul-softmax-matmul where not.

The fused `IAttention` computes softmax(Q K^T + mask) V with no scale of its own (the scale is folded into Q
beforehand) and takes a BOOL mask (True where a query may attend) or an additive float mask. TensorRT for
RTX has dedicated kernels for it in fp16/bf16; in fp32 it only builds when marked decomposable, which lets
TensorRT lower it to primitive layers itself, so it is always marked so.
"""
from __future__ import annotations

import math

import numpy as np

from trtnet.backend import get_backend, get_trt
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.ops.core import TensorLike, constant
from trtnet.ops.elementwise import add, mul, sub
from trtnet.ops.matrix import matmul
from trtnet.ops.normalization import shift_elements, softmax
from trtnet.ops.shape import cast, shuffle
from trtnet.tensor import Tensor


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, bias: TensorLike | None = None,
                                 scale: float | None = None, mask: Tensor | None = None) -> Tensor:
    """softmax(q @ k^T * scale + bias) @ v over [B, heads, S, D] tensors (`F.scaled_dot_product_attention`).

    `bias` is additive (a float Tensor or array broadcastable to [B, heads, Sq, Sk]); `mask` is a BOOL Tensor,
    True where a query may attend, excluded positions weigh exactly zero (as transformers' additive
    `finfo.min` mask gives in fp32). Pass `scale=1.0` when the scale is already folded into q's weights.

    >>> o = ops.scaled_dot_product_attention(q, k, v, mask=keep)   # keep: bool [B, 1, 1, S]
    """
    if bias is not None and mask is not None:
        raise NetworkError(f"attention at {current_graph().path or 'top level'}: give an additive bias or a "
                           "boolean mask, not both")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if scale != 1.0:
        q = mul(q, scale)
    if isinstance(bias, np.ndarray):
        bias = constant(bias, q.dtype, op="attention_bias")
    elif bias is not None and not isinstance(bias, Tensor):
        raise NetworkError(f"attention bias must be a Tensor or an array, not {type(bias).__name__}")
    graph = current_graph()
    backend = get_backend()
    if graph.policy.fused_attention and (backend.has("add_attention_v2") or backend.has("add_attention")):
        return _fused(q, k, v, mask if mask is not None else (cast(bias, q.dtype) if bias is not None else None))
    return _unfused(q, k, v, bias, mask)


def _fused(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    trt = get_trt()
    network = current_graph().network
    if hasattr(network, "add_attention_v2"):
        att = network.add_attention_v2(q.itensor, k.itensor, v.itensor, trt.AttentionNormalizationOp.SOFTMAX,
                                       trt.CausalMaskKind.NONE)
    else:
        att = network.add_attention(q.itensor, k.itensor, v.itensor, trt.AttentionNormalizationOp.SOFTMAX, False)
    if att is None:
        raise NetworkError(f"attention at {current_graph().path or 'top level'}: TensorRT refused q {q.shape}, "
                           f"k {k.shape}, v {v.shape}")
    att.decomposable = True  # fp32 has no dedicated kernel: let TensorRT lower it rather than fail the build
    if mask is not None:
        att.mask = mask.itensor
    current_graph().name(att, "attention")
    return Tensor(att.get_output(0))


def _unfused(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, mask: Tensor | None) -> Tensor:
    trt = get_trt()
    scores = matmul(q, k, transpose_b=True)
    if bias is not None:
        scores = add(scores, cast(bias, scores.dtype))
    if mask is not None:
        # Added in fp32, where transformers' finfo(float32).min cannot overflow.
        scores = add(cast(scores, trt.float32), _additive(mask))
    return matmul(cast(softmax(scores, -1), v.dtype), v)


def _additive(mask: Tensor) -> Tensor:
    """transformers' additive mask (1 - keep) * finfo(float32).min, emitted once per network for each mask."""
    graph = current_graph()
    key = ("additive_mask", mask.name)
    if key not in graph.memo:
        trt = get_trt()
        graph.memo[key] = mul(sub(1.0, cast(mask, trt.float32)), float(np.finfo(np.float32).min))
    return graph.memo[key]


def split_heads_linear(x: Tensor, weight: np.ndarray, bias: np.ndarray | None, heads: int) -> Tensor:
    """`F.linear(x, weight, bias)` split into `heads` heads: x [B, 1, S, Din] -> [B, heads, S, Dout / heads].

    One batched matmul against the weight seen as [1, heads, D, Din], so no reshape or transpose layer is
    needed between the projection and the attention; the bias is one `IScaleLayer`.
    """
    dout, din = weight.shape
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != din or dout % heads:
        raise NetworkError(f"split_heads_linear at {current_graph().path or 'top level'}: input {x.shape} is not "
                           f"[B, 1, S, {din}], or {dout} outputs do not split into {heads} heads")
    d = dout // heads
    w = constant(weight.reshape(1, heads, d, din), op="weight")
    y = matmul(x, w, transpose_b=True)
    return y if bias is None else shift_elements(y, bias.reshape(heads, 1, d), axis=1)


def merge_heads(o: Tensor) -> Tensor:
    """[B, heads, S, D] -> [B, 1, S, heads * D] (the layout `split_heads_linear` takes), one shuffle layer."""
    b, h, s, d = o.shape
    return shuffle(o, first=(0, 2, 1, 3), shape=(b, 1, s, h * d))

