"""Attention: TensorRT's fused attention layer where the backend has one, matmul-softmax-matmul where not.

The fused `IAttention` computes softmax(Q K^T + mask) V with no scale of its own (the scale is folded into Q
beforehand) and takes a BOOL mask (True where a query may attend) or an additive float mask, or a causal
mode, but not a mask and the causal mode together. TensorRT for RTX has dedicated kernels for it in
fp16/bf16; in fp32 it only builds when marked decomposable, which lets TensorRT lower it to primitive layers
itself, so it is always marked so.

Both paths give a mask one meaning: a bool mask keeps the positions where it is True (the others weigh exactly
zero), a float mask in the query's dtype is added to the scores, and `is_causal` keeps key j for query i when
j <= i (PyTorch's `is_causal=True`, TensorRT's UPPER_LEFT). A mask and `is_causal` together apply both.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from trtnet.backend import get_backend, get_trt
from trtnet.dtypes import name_of
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.ops.core import TensorLike, broadcast_pair, constant, out
from trtnet.ops.elementwise import add, elementwise, less, mul, sub
from trtnet.ops.matrix import matmul
from trtnet.ops.normalization import shift_elements, softmax
from trtnet.ops.quantize import weighted_inputs
from trtnet.ops.shape import cast, concat, gather, shape_of, shuffle
from trtnet.tensor import Tensor


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: TensorLike | None = None,
    scale: float | None = None,
    mask: Tensor | None = None,
    is_causal: bool = False,
) -> Tensor:
    """softmax(q @ k^T * scale + bias) @ v over [B, heads, S, D] tensors (`F.scaled_dot_product_attention`).

    `mask` is a rank-4 Tensor broadcastable to [B, heads, Sq, Sk]: BOOL, True where a query may attend
    (excluded positions weigh exactly zero, as transformers' additive `finfo.min` mask gives in fp32), or a
    float in q's dtype that is added to the scores. `bias` is additive too (a float Tensor or array); give a
    bias or a mask, not both. `is_causal=True` keeps key j for query i only when j <= i, on top of any mask.
    Pass `scale=1.0` when the scale is already folded into q's weights.

    >>> o = ops.scaled_dot_product_attention(q, k, v, mask=keep)   # keep: bool [B, 1, 1, S]
    >>> o = ops.scaled_dot_product_attention(q, k, v, is_causal=True)
    """
    where = f"attention at {current_graph().path or 'top level'}"
    if bias is not None and mask is not None:
        raise NetworkError(f"{where}: give an additive bias or a mask, not both")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if scale != 1.0:
        q = mul(q, scale)
    if isinstance(bias, np.ndarray):
        bias = constant(bias, q.dtype, op="attention_bias")
    elif bias is not None and not isinstance(bias, Tensor):
        raise NetworkError(f"{where}: bias must be a Tensor or an array, not {type(bias).__name__}")
    keep, additive = None, None
    if mask is not None:
        _check_mask(mask, q, k, where)
        keep, additive = (mask, None) if mask.dtype == get_trt().bool else (None, mask)
    elif bias is not None:
        additive = cast(bias, q.dtype)
    graph = current_graph()
    backend = get_backend()
    if graph.policy.fused_attention and (backend.has("add_attention_v2") or backend.has("add_attention")):
        if is_causal and (keep is not None or additive is not None):
            # TensorRT takes a mask or its causal mode, not both: the causal part joins the mask.
            keep, additive = _with_causal(keep, additive, q, k)
            is_causal = False
        return _fused(q, k, v, keep if keep is not None else additive, is_causal)
    return _unfused(q, k, v, keep, additive, is_causal)


def _check_mask(mask: Tensor, q: Tensor, k: Tensor, where: str) -> None:
    """A mask must be bool or q's float dtype, of rank 4, each dim 1 or the scores' own (where known)."""
    trt = get_trt()
    if not isinstance(mask, Tensor):
        raise NetworkError(f"{where}: the mask must be a Tensor, not {type(mask).__name__} (an array is a `bias`)")
    if mask.dtype != trt.bool and mask.dtype != q.dtype:
        raise NetworkError(
            f"{where}: mask dtype {name_of(mask.dtype)} is not allowed: give a bool mask (True: "
            f"attend) or an additive float mask in the query's dtype {name_of(q.dtype)}"
        )
    scores = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if mask.ndim != 4 or any(m not in (1, s) and m >= 0 and s >= 0 for m, s in zip(mask.shape, scores)):
        raise NetworkError(
            f"{where}: mask of shape {mask.shape} does not broadcast to the scores [B, heads, Sq, "
            f"Sk] = {scores}: it must be rank 4 with each dim 1 or the scores' own"
        )


def _causal_keep(q: Tensor, k: Tensor) -> Tensor:
    """bool [1, 1, Sq, Sk], True where key j <= query i; a constant, or made at run time for dynamic lengths.

    Emitted once per network for each pair of lengths (static) or pair of length sources (dynamic)."""
    graph = current_graph()
    sq, sk = q.shape[2], k.shape[2]
    memo = graph.memo.causal_keeps
    key = (sq, sk) if sq >= 0 and sk >= 0 else (q.name, k.name)
    if key not in memo:
        if sq >= 0 and sk >= 0:
            memo[key] = constant(np.tril(np.ones((sq, sk), bool))[None, None], op="causal_mask")
        else:
            rows = _positions(q, 2, (1, 1, -1, 1))
            cols = _positions(k, 2, (1, 1, 1, -1))
            memo[key] = less(cols, add(rows, 1))  # j < i + 1
    return memo[key]


def _positions(x: Tensor, axis: int, layout: tuple[int, ...]) -> Tensor:
    """0, 1, ... n-1 along `axis` of x's run-time shape, as an int32 tensor of rank len(layout), n where -1."""
    trt = get_trt()
    graph = current_graph()
    n = gather(shape_of(x), constant(np.array([axis], np.int32), op="axis"), axis=0)
    ones = constant(np.ones(1, np.int64), op="one")
    dims = concat([n if d == -1 else ones for d in layout], axis=0)
    fill = graph.network.add_fill((0,) * len(layout), trt.FillOperation.LINSPACE, trt.int32)
    fill.set_input(0, dims.itensor)
    start = graph.network.add_constant((), graph.weights(np.zeros((), np.int32), trt.int32))  # a 0-d scalar
    graph.name(start, "start")
    fill.set_input(1, start.get_output(0))
    fill.set_input(2, constant(np.array([1 if d == -1 else 0 for d in layout], np.int32), op="step").itensor)
    graph.name(fill, "positions")
    return Tensor(fill.get_output(0))


def _with_causal(
    keep: Tensor | None, additive: Tensor | None, q: Tensor, k: Tensor
) -> tuple[Tensor | None, Tensor | None]:
    """The mask with the causal rule joined in: AND for a bool mask, finfo.min added for a float one.

    Emitted once per network for each mask (and q/k shape pattern): every layer of a model shares it. The mask
    fixes the lengths it is used with (a padding mask [B, 1, 1, S] fixes S), so the join is the same for all.
    """
    graph = current_graph()
    memo = graph.memo.causal_joins
    key = ((keep if keep is not None else additive).name, q.shape, k.shape)
    if key not in memo:
        causal = _causal_keep(q, k)
        if keep is not None:
            memo[key] = elementwise(keep, causal, "AND"), None
        else:
            # Future keys get the dtype's lowest finite value instead of the mask's own: a select, not an add,
            # so that a large negative mask value cannot overflow to -inf in fp16.
            floor = float(ml_dtypes.finfo(np.dtype(name_of(additive.dtype))).min)
            a, b = broadcast_pair(additive, causal)
            select = graph.network.add_select(
                b.itensor,
                a.itensor,
                constant(np.full((1,) * a.ndim, floor, np.float32), additive.dtype, op="floor").itensor,
            )
            memo[key] = None, out(select, "causal_mask")
    return memo[key]


def _fused(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool) -> Tensor:
    trt = get_trt()
    network = current_graph().network  # checked: a refused layer is a NetworkError with TensorRT's reason
    if hasattr(network, "add_attention_v2"):
        kind = trt.CausalMaskKind.UPPER_LEFT if causal else trt.CausalMaskKind.NONE
        att = network.add_attention_v2(q.itensor, k.itensor, v.itensor, trt.AttentionNormalizationOp.SOFTMAX, kind)
    else:
        att = network.add_attention(q.itensor, k.itensor, v.itensor, trt.AttentionNormalizationOp.SOFTMAX, causal)
    att.decomposable = True  # fp32 has no dedicated kernel: let TensorRT lower it rather than fail the build
    if mask is not None:
        att.mask = mask.itensor
    current_graph().name(att, "attention")
    return Tensor(att.get_output(0))


def _unfused(q: Tensor, k: Tensor, v: Tensor, keep: Tensor | None, additive: Tensor | None, causal: bool) -> Tensor:
    trt = get_trt()
    scores = matmul(q, k, transpose_b=True)
    if additive is not None:
        scores = add(scores, cast(additive, scores.dtype))
    if causal:
        keep = _causal_keep(q, k) if keep is None else _with_causal(keep, None, q, k)[0]
    if keep is not None:
        # Added in fp32, where transformers' finfo(float32).min cannot overflow.
        scores = add(cast(scores, trt.float32), _additive(keep))
    return matmul(cast(softmax(scores, -1), v.dtype), v)


def _additive(mask: Tensor) -> Tensor:
    """transformers' additive mask (1 - keep) * finfo(float32).min, emitted once per network for each mask."""
    graph = current_graph()
    memo = graph.memo.additive_masks
    if mask.name not in memo:
        trt = get_trt()
        memo[mask.name] = mul(sub(1.0, cast(mask, trt.float32)), float(np.finfo(np.float32).min))
    return memo[mask.name]


def split_heads_linear(x: Tensor, weight: np.ndarray, bias: np.ndarray | None, heads: int) -> Tensor:
    """`F.linear(x, weight, bias)` split into `heads` heads: x [B, 1, S, Din] -> [B, heads, S, Dout / heads].

    One batched matmul against the weight seen as [1, heads, D, Din], so no reshape or transpose layer is
    needed between the projection and the attention; the bias is one `IScaleLayer`.
    """
    dout, din = weight.shape
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != din or dout % heads:
        raise NetworkError(
            f"split_heads_linear at {current_graph().path or 'top level'}: input {x.shape} is not "
            f"[B, 1, S, {din}], or {dout} outputs do not split into {heads} heads"
        )
    d = dout // heads
    x, w = weighted_inputs(x, weight, "matmul", (1, heads, d, din))  # int8/fp8: Q/DQ, per output row
    if w is None:
        w = constant(weight.reshape(1, heads, d, din), op="weight")
    y = matmul(x, w, transpose_b=True)
    if bias is None:
        return y
    if y.shape[2] < 0:  # a dynamic sequence length: IScaleLayer's weights cannot span it, so a broadcast add
        return add(y, constant(bias.reshape(1, heads, 1, d), op="bias"))
    return shift_elements(y, bias.reshape(heads, 1, d), axis=1)


def merge_heads(o: Tensor) -> Tensor:
    """[B, heads, S, D] -> [B, 1, S, heads * D] (the layout `split_heads_linear` takes), one shuffle layer."""
    b, h, s, d = o.shape
    return shuffle(o, first=(0, 2, 1, 3), shape=(b, 1, s, h * d))
