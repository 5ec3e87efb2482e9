"""TensorRT's fused attention (`INetworkDefinition.add_attention` / `add_attention_v2`).

An `IAttention` is not a layer itself: the network lists two boundary layers. ATTENTION_INPUT takes query,
key and value as inputs 0-2, the mask as input 3, and the other optional tensors (quantize scale, lengths) in
later slots, unset ones reading back as None; its single output already has the attention's output shape.
ATTENTION_OUTPUT takes that tensor and produces the attention's output. The optional tensors are found
through the `IAttention` (`layer.attention.mask`, `.key_value_lengths`) by name. The interpreter therefore computes the whole attention at the
input boundary and passes it through at the output boundary.

The math is softmax(Q K^T + mask) V per head, with no 1/sqrt(d) factor: TensorRT requires the caller to
fold the scale into Q or K beforehand. A BOOL mask is True where a query may attend; a float mask is added
to the scores. Key/value heads are shared by consecutive groups of query heads (GQA/MQA).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtnet.interpreter._common import LayerCall, enum_name, register, rounded, wide


def _named_inputs(call: LayerCall) -> dict[str, np.ndarray]:
    out = {}
    for i in range(call.layer.num_inputs):
        tensor = call.layer.get_input(i)
        if tensor is not None and call.inputs[i] is not None:
            out[tensor.name] = call.inputs[i]
    return out


def _value_of(call: LayerCall, named: dict[str, np.ndarray], tensor: Any, what: str) -> np.ndarray | None:
    if tensor is None:
        return None
    if tensor.name not in named:
        raise call.fail(f"the attention's {what} tensor {tensor.name!r} is not an input of its boundary layer")
    return named[tensor.name]


def attention_reference(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    causal: str = "NONE",
    kv_lengths: np.ndarray | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """float64 attention of [B, H, S, D] tensors; masked-out scores are excluded (weight 0)."""
    q32, k32, v32 = wide(q), wide(k), wide(v)
    heads_q, heads_kv = q32.shape[1], k32.shape[1]
    if heads_kv != heads_q:
        k32 = np.repeat(k32, heads_q // heads_kv, axis=1)
        v32 = np.repeat(v32, heads_q // heads_kv, axis=1)
    scores = _stacked_matmul(q32, np.swapaxes(k32, -1, -2))
    s_q, s_kv = scores.shape[-2], scores.shape[-1]
    if causal == "NONE" and kv_lengths is None and normalize and (mask is None or mask.dtype != np.bool_):
        # Every key allowed (an additive mask only shifts scores): the softmax in place, without the masking
        # passes. A row whose scores are all -inf has all-zero exponentials and stays zeros, as below.
        if mask is not None:
            scores = scores + wide(mask)
        peak = np.max(scores, axis=-1, keepdims=True)
        scores -= np.where(np.isfinite(peak), peak, 0.0)
        np.exp(scores, out=scores)
        total = np.sum(scores, axis=-1, keepdims=True)
        np.divide(scores, total, out=scores, where=total > 0)
        return _stacked_matmul(scores, v32)
    allowed = np.ones(scores.shape, dtype=bool)
    if mask is not None:
        if mask.dtype == np.bool_:
            allowed = allowed & mask
        else:
            scores = scores + wide(mask)
    if causal != "NONE":
        # UPPER_LEFT: query i sees keys j <= i; LOWER_RIGHT aligns the diagonal to the last key.
        shift = 0 if causal == "UPPER_LEFT" else s_kv - s_q
        allowed = allowed & (np.arange(s_kv)[None, :] <= np.arange(s_q)[:, None] + shift)
    if kv_lengths is not None:
        lengths = np.asarray(kv_lengths).reshape(-1, 1, 1, 1)
        allowed = allowed & (np.arange(s_kv) < lengths)
    if normalize:
        masked = np.where(allowed, scores, -np.inf)
        peak = np.max(masked, axis=-1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0.0)
        e = np.where(allowed, np.exp(masked - peak), 0.0)
        total = np.sum(e, axis=-1, keepdims=True)
        # A row with nothing to attend to yields zeros rather than 0/0.
        probs = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    else:
        probs = np.where(allowed, scores, 0.0)
    return _stacked_matmul(probs, v32)


def _stacked_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul of float64 stacks [..., M, K] @ [..., K, N] of equal batch dims, one BLAS call per matrix (numpy's
    own loop over a stack is slower, and transposed views of the stack may miss BLAS altogether)."""
    if a.shape[:-2] != b.shape[:-2]:
        return np.matmul(a, b)
    out = np.empty(a.shape[:-1] + b.shape[-1:], np.float64)
    flat_out = out.reshape(-1, *out.shape[-2:])
    flat_a = a.reshape(-1, *a.shape[-2:])
    flat_b = b.reshape(-1, *b.shape[-2:])
    for i in range(flat_out.shape[0]):
        np.matmul(flat_a[i], flat_b[i], out=flat_out[i])
    return out


@register("ATTENTION_INPUT", "IAttentionInputLayer")
def attention_input(call: LayerCall) -> list[np.ndarray]:
    """Runs the whole attention (see the module docstring)."""
    att = call.layer.attention
    named = _named_inputs(call)
    q, k, v = call.input(0), call.input(1), call.input(2)
    if enum_name(att.query_form) != "PADDED_BHND" or enum_name(att.key_value_form) != "PADDED_BHND":
        forms = f"{enum_name(att.query_form)}/{enum_name(att.key_value_form)}"
        raise call.fail(f"attention forms {forms}: only PADDED_BHND is supported")
    if att.normalization_quantize_scale is not None:
        raise call.fail("quantized attention normalization is not modelled")
    if q.ndim != 4 or k.shape != v.shape or k.ndim != 4:
        raise call.fail(f"query {q.shape}, key {k.shape}, value {v.shape} are not [B, H, S, D] with key == value")
    if q.shape[1] % k.shape[1]:
        raise call.fail(f"{q.shape[1]} query heads are not a multiple of {k.shape[1]} key/value heads")
    mask = _value_of(call, named, att.mask, "mask")
    kv_lengths = _value_of(call, named, att.key_value_lengths, "key/value lengths")
    norm = enum_name(att.norm_op)
    if norm not in ("SOFTMAX", "NONE"):
        raise call.fail(f"unsupported attention normalization {norm}")
    out = attention_reference(
        q, k, v, mask=mask, causal=enum_name(att.causal_kind), kv_lengths=kv_lengths, normalize=norm == "SOFTMAX"
    )
    return [rounded(out, q.dtype)]


@register("ATTENTION_OUTPUT", "IAttentionOutputLayer")
def attention_output(call: LayerCall) -> list[np.ndarray]:
    """The attention result computed at the input boundary, passed through."""
    return [call.input(0)]
