"""The attention layers (trtnet/interpreter/attention.py) against an independent numpy softmax(QK^T)V."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import RNG, CaseTable, Net, check_case, rand, torch_or_skip, trt

CASES = CaseTable()


# --- attention -------------------------------------------------------------------------------------------


def _sdpa(q, k, v, mask=None, causal_offset=None):
    """Independent numpy attention: softmax(q k^T + mask) v without any scale, GQA by head repetition."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, 1), np.repeat(v, rep, 1)
    s = np.einsum("bhqd,bhkd->bhqk", q, k)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if causal_offset is not None:
        sq, sk = s.shape[-2:]
        s = np.where(np.arange(sk)[None] <= np.arange(sq)[:, None] + causal_offset, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


@CASES.case()
def attention_plain_bool_float_masks():
    n = Net()
    q, k, v = rand(2, 4, 5, 8) * 0.5, rand(2, 4, 7, 8) * 0.5, rand(2, 4, 7, 8)
    bmask = RNG.random((2, 1, 5, 7)) > 0.3
    bmask[..., 0] = True  # every query attends to something
    fmask = rand(1, 4, 5, 7)
    qi, ki, vi = n.input("q", q.shape), n.input("k", k.shape), n.input("v", v.shape)
    plain = n.net.add_attention(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, False)
    with_bool = n.net.add_attention(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, False)
    with_bool.mask = n.input("bm", bmask.shape, trt.bool)
    with_float = n.net.add_attention(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, False)
    with_float.mask = n.input("fm", fmask.shape)
    n.mark(plain.get_output(0), with_bool.get_output(0), with_float.get_output(0))
    got = n.run(q=q, k=k, v=v, bm=bmask, fm=fmask)
    return [(got[0], _sdpa(q, k, v)), (got[1], _sdpa(q, k, v, bmask)), (got[2], _sdpa(q, k, v, fmask))]


@CASES.case()
def attention_gqa_causal_kinds():
    n = Net()
    q, k, v = rand(1, 4, 3, 8) * 0.5, rand(1, 2, 6, 8) * 0.5, rand(1, 2, 6, 8)
    qi, ki, vi = n.input("q", q.shape), n.input("k", k.shape), n.input("v", v.shape)
    upper = n.net.add_attention_v2(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, trt.CausalMaskKind.UPPER_LEFT)
    lower = n.net.add_attention_v2(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, trt.CausalMaskKind.LOWER_RIGHT)
    legacy = n.net.add_attention(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, True)
    padded = n.net.add_attention_v2(qi, ki, vi, trt.AttentionNormalizationOp.SOFTMAX, trt.CausalMaskKind.NONE)
    padded.key_value_lengths = n.input("lengths", (1,), trt.int32)
    n.mark(upper.get_output(0), lower.get_output(0), legacy.get_output(0), padded.get_output(0))
    got = n.run(q=q, k=k, v=v, lengths=np.array([4], np.int32))
    first4 = np.broadcast_to(np.arange(6) < 4, (1, 1, 3, 6))  # keys past the batch's length are padding
    return [
        (got[0], _sdpa(q, k, v, causal_offset=0)),
        (got[1], _sdpa(q, k, v, causal_offset=3)),
        (got[2], _sdpa(q, k, v, causal_offset=0)),
        (got[3], _sdpa(q, k, v, first4)),
    ]


@CASES.case(tol=dict(rtol=2e-2, atol=2e-2))
def attention_fp16_against_torch_sdpa():
    torch = torch_or_skip()
    n = Net()
    q, k, v = rand(2, 2, 6, 16) * 0.25, rand(2, 2, 6, 16), rand(2, 2, 6, 16)
    mask = np.tril(np.ones((6, 6), bool))[None, None]
    att = n.net.add_attention(
        n.input("q", q.shape, trt.float16),
        n.input("k", k.shape, trt.float16),
        n.input("v", v.shape, trt.float16),
        trt.AttentionNormalizationOp.SOFTMAX,
        False,
    )
    att.mask = n.const(mask)
    n.mark(att.get_output(0))
    out = n.run(q=q.astype(np.float16), k=k.astype(np.float16), v=v.astype(np.float16))[0]
    assert out.dtype == np.float16
    h = lambda a: torch.from_numpy(a.astype(np.float16).astype(np.float32))  # noqa: E731
    sdpa = torch.nn.functional.scaled_dot_product_attention
    ref = sdpa(h(q), h(k), h(v), attn_mask=torch.from_numpy(mask), scale=1.0)
    return [(out, ref.numpy())]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)
