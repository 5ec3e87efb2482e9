"""A decoder's KV cache as engine I/O, and the attention mask that goes with it.

The cache of layer i enters as `past_key_values.i.key|value` [B, kv_heads, P, head_dim] and leaves as
`present.i.key|value` [B, kv_heads, P + S, head_dim]: the new keys and values appended on the sequence axis
(one concatenation). The caller feeds `present` back as the next step's `past`. Grouped-query attention
repeats each kv head for its query heads after the cache, so the cache holds kv_heads heads only.
"""

from __future__ import annotations

import numpy as np

from trtnet.backend import get_trt
from trtnet.ops.attention import _positions
from trtnet.ops.core import constant
from trtnet.ops.elementwise import add, elementwise, equal, less, sub
from trtnet.ops.shape import cast, concat, gather, reshape, shape_of
from trtnet.tensor import Tensor


def append(past: Tensor | None, new: Tensor) -> Tensor:
    """The cache after this step: `new` [B, h, S, d] after `past` [B, h, P, d] (or `new` alone: prefill)."""
    return new if past is None else concat([past, new], axis=2)


def repeat_kv(x: Tensor, groups: int) -> Tensor:
    """transformers' `repeat_kv`: [B, kv, T, d] -> [B, kv * groups, T, d], each kv head `groups` times in a row."""
    if groups == 1:
        return x
    b, kv, t, d = x.shape
    x5 = reshape(x, (b, kv, 1, t, d))
    return reshape(concat([x5] * groups, axis=2), (b, kv * groups, t, d))


def decoder_keep(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """bool [B, 1, S, T]: query i (the (T-S+i)-th token of its row) may attend key j when j <= T-S+i and
    attention_mask[b, j] is nonzero, for S new tokens after T-S cached ones; and always to itself, so that a
    padding query (left padding) has one key and no 0/0 (its output is never read by a real token).
    """
    trt = get_trt()
    b, s = input_ids.shape
    t = attention_mask.shape[1]
    rows = _positions(input_ids, 1, (1, 1, -1, 1))  # i, int32 [1, 1, S, 1]
    cols = _positions(attention_mask, 1, (1, 1, 1, -1))  # j, int32 [1, 1, 1, T]
    axis1 = constant(np.array([1], np.int32), op="axis")
    past = sub(gather(shape_of(attention_mask), axis1, axis=0), gather(shape_of(input_ids), axis1, axis=0))
    past = reshape(cast(past, trt.int32), (1, 1, 1, 1))  # T - S, the cached length
    query_at = add(rows, past)
    causal = less(cols, add(query_at, 1))
    padding = cast(reshape(attention_mask, (b, 1, 1, t)), "bool")
    keep = elementwise(causal, padding, "AND")
    return elementwise(keep, equal(cols, query_at), "OR")
