"""The transformers with a dynamic batch dimension: emitted once for batches 1..4, run in the interpreter at
batch 3, equal to the network emitted for batch 3 alone (small configurations of the real architectures)."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from trtnet.interpreter import run_network
from trtnet.weights import init_random
from trtnet.zoo import bert, swin, vit


def small_bert():
    model = bert.Bert(
        bert.BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, vocab_size=50
        ),
        seq_len=8,
    )
    rng = np.random.default_rng(0)
    mask = np.ones((3, 8), np.int32)
    mask[1, 5:] = 0
    types = np.repeat((np.arange(8) >= 4).astype(np.int32)[None], 3, 0)
    return model, [rng.integers(0, 50, (3, 8)).astype(np.int32), mask, types]


def small_vit():
    model = vit.VisionTransformer(vit.ViTConfig(embed_dim=32, depth=2, num_heads=2, img_size=32, num_classes=10))
    return model, [np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)]


def small_swin():
    model = swin.SwinTransformer(
        swin.SwinConfig(embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4, img_size=32, num_classes=10)
    )
    return model, [np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)]


@pytest.mark.parametrize("make", [small_bert, small_vit, small_swin], ids=["bert", "vit", "swin"])
def test_dynamic_batch_equals_static(make):
    model, inputs = make()
    init_random(model)
    want = trtnet.reference(model, *inputs)
    net = trtnet.emit(model, (1, 2, 4))
    assert net.network.get_input(0).shape[0] == -1
    got = list(run_network(net.network, {s.name: x for s, x in zip(net.inputs, inputs)}).values())
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
