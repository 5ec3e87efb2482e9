"""ops.scaled_dot_product_attention: causal mode and masks mean the same on TensorRT's fused attention layer and
on the matmul-softmax-matmul fallback, both against torch's F.scaled_dot_product_attention."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import build_ops, emitted_layer_types, run_ops
from trtnet import ops
from trtnet.backend import get_trt
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.parity import cosine, rel_error

torch = pytest.importorskip("torch", reason="torch is the oracle of the op tests")
F = torch.nn.functional
T = torch.from_numpy
rng = np.random.default_rng(1)
PATHS = pytest.mark.parametrize("fused", [True, False], ids=["fused_attention_layer", "matmul_softmax_matmul"])


def x(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def padding_keep(b: int, s: int) -> np.ndarray:
    keep = np.ones((b, 1, 1, s), bool)
    keep[1, ..., s - 2 :] = False  # the second sample's last two keys are padding (right padding)
    return keep


def torch_sdpa(q, k, v, mask=None, causal=False) -> np.ndarray:
    """torch's attention; torch refuses a mask with is_causal, so a causal mask is joined in by hand there."""
    m = None if mask is None else T(mask)
    if causal and m is not None:
        tril = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        m = m & tril if m.dtype == torch.bool else m + torch.zeros(tril.shape).masked_fill(~tril, float("-inf"))
        causal = False
    with torch.no_grad():
        return F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=m, is_causal=causal).numpy()


@PATHS
@pytest.mark.parametrize("sq, sk", [(6, 6), (5, 7)], ids=["self", "cross_upper_left"])
def test_causal_matches_torch(fused, sq, sk):
    q, k, v = x(2, 3, sq, 4), x(2, 3, sk, 4), x(2, 3, sk, 4)
    (got,) = run_ops(
        lambda a, b, c: ops.scaled_dot_product_attention(a, b, c, is_causal=True), q, k, v, fused_attention=fused
    )
    assert rel_error(got, torch_sdpa(q, k, v, causal=True)) <= 1e-5


def test_causal_without_mask_is_tensorrt_causal_mode():
    """On the fused path the causal rule is the attention layer's own UPPER_LEFT mode, not a mask."""
    trt = get_trt()
    kinds = []

    def fn(a):
        o = ops.scaled_dot_product_attention(a, a, a, is_causal=True)
        net = current_graph().network
        layer = next(
            net.get_layer(i) for i in range(net.num_layers) if net.get_layer(i).type == trt.LayerType.ATTENTION_INPUT
        )
        layer.__class__ = trt.IAttentionInputLayer  # the network hands out plain ILayers
        kinds.append((layer.attention.causal_kind, layer.attention.mask))
        return o

    run_ops(fn, x(1, 2, 4, 8))
    assert kinds == [(trt.CausalMaskKind.UPPER_LEFT, None)]


@PATHS
@pytest.mark.parametrize("mask_kind", ["bool", "float_additive", "float_zero_one"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_masks_mean_the_same_on_both_paths(fused, mask_kind, causal):
    """A bool mask keeps where True; any float mask is added (a float 0/1 mask is NOT read as boolean)."""
    q, k, v = x(2, 3, 6, 4), x(2, 3, 6, 4), x(2, 3, 6, 4)
    keep = padding_keep(2, 6)
    mask = {"bool": keep, "float_additive": x(2, 3, 6, 6), "float_zero_one": keep.astype(np.float32)}[mask_kind]
    if mask_kind == "bool":
        fn = lambda a, b, c, m: ops.scaled_dot_product_attention(a, b, c, mask=ops.cast(m, "bool"), is_causal=causal)
        feed = mask.astype(np.int32)
    else:
        fn = lambda a, b, c, m: ops.scaled_dot_product_attention(a, b, c, mask=m, is_causal=causal)
        feed = mask
    (got,) = run_ops(fn, q, k, v, feed, fused_attention=fused)
    assert rel_error(got, torch_sdpa(q, k, v, mask, causal)) <= 1e-5


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_reduced_precision_paths_agree_with_torch(precision, mask_kind):
    q, k, v = x(2, 2, 6, 8), x(2, 2, 6, 8), x(2, 2, 6, 8)
    keep = padding_keep(2, 6)
    additive = np.where(keep, 0.0, -1e4).astype(np.float32)

    def fn(a, b, c, m):
        mask = {"none": None, "bool": ops.cast(m, "bool"), "float": m}[mask_kind]
        return ops.scaled_dot_product_attention(a, b, c, mask=mask, is_causal=True)

    feed = keep.astype(np.int32) if mask_kind == "bool" else additive
    want = torch_sdpa(q, k, v, {"none": None, "bool": keep, "float": additive}[mask_kind], causal=True)
    for fused in (True, False):
        (got,) = run_ops(fn, q, k, v, feed, precision=precision, fused_attention=fused)
        assert cosine(got, want) >= 0.9999, (fused, cosine(got, want))


def test_a_bool_mask_with_causal_is_joined_once_per_network():
    """Every layer of a model shares one combined mask: the causal AND is emitted once, not per attention."""
    trt = get_trt()

    def fn(a, m):
        keep = ops.cast(m, "bool")
        for _ in range(3):
            a = ops.scaled_dot_product_attention(a, a, a, mask=keep, is_causal=True, scale=1.0)
        return a

    for fused in (True, False):
        types = emitted_layer_types(fn, x(2, 2, 5, 4), padding_keep(2, 5).astype(np.int32), fused_attention=fused)
        # fused: one AND; fallback: the AND, the additive mask made of it (sub, mul), one add per attention
        assert sum(t == trt.LayerType.ELEMENTWISE for t in types) == (1 if fused else 1 + 2 + 3)


ERRORS = [
    (
        "int mask",
        lambda a, m: ops.scaled_dot_product_attention(a, a, a, mask=m),
        np.ones((1, 1, 1, 5), np.int32),
        {},
        r"attention at h\.3\.attn: mask dtype int32 is not allowed: give a bool mask \(True: attend\) or an "
        r"additive float mask in the query's dtype float32",
    ),
    (
        "float mask of another dtype",
        lambda a, m: ops.scaled_dot_product_attention(a, a, a, mask=ops.cast(m, "float32")),
        np.zeros((1, 1, 1, 5), np.float32),
        {"precision": "fp16"},
        r"attention at h\.3\.attn: mask dtype float32 is not allowed: .* in the query's dtype float16",
    ),
    (
        "rank 2 mask",
        lambda a, m: ops.scaled_dot_product_attention(a, a, a, mask=ops.cast(m, "bool")),
        np.ones((5, 5), np.int32),
        {},
        r"attention at h\.3\.attn: mask of shape \(5, 5\) does not broadcast to the scores \[B, heads, Sq, Sk\] = "
        r"\(1, 2, 5, 5\): it must be rank 4",
    ),
    (
        "mask of the wrong length",
        lambda a, m: ops.scaled_dot_product_attention(a, a, a, mask=ops.cast(m, "bool")),
        np.ones((1, 1, 1, 4), np.int32),
        {},
        r"mask of shape \(1, 1, 1, 4\) does not broadcast",
    ),
    (
        "bias and mask",
        lambda a, m: ops.scaled_dot_product_attention(a, a, a, bias=np.zeros((1, 1, 5, 5)), mask=ops.cast(m, "bool")),
        np.ones((1, 1, 1, 5), np.int32),
        {},
        r"attention at h\.3\.attn: give an additive bias or a mask, not both",
    ),
]


@PATHS
@pytest.mark.parametrize("fn, mask, policy, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_masks_are_refused_naming_the_module(fused, fn, mask, policy, message):
    def scoped(a, m):
        with current_graph().scope("h.3.attn"):
            return fn(a, m)

    with pytest.raises(NetworkError, match=message):
        run_ops(scoped, x(1, 2, 5, 4), mask, fused_attention=fused, **policy)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_fused_causal_attention_builds_an_engine(precision, mask_kind):
    """TensorRT accepts what the fused path emits: its causal mode alone, or a causal rule joined into a mask."""

    def fn(a, m):
        mask = {"none": None, "bool": ops.cast(m, "bool"), "float": ops.cast(m, a.dtype)}[mask_kind]
        return ops.scaled_dot_product_attention(a, a, a, mask=mask, is_causal=True)

    assert build_ops(fn, x(2, 2, 8, 16), np.ones((2, 1, 1, 8), np.int32), precision=precision) is not None
