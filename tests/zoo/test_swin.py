"""Swin-T end to end: timm weights as a user saves them, loaded strictly, parity, engines, layer count."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from tests.helpers import assert_engine_matches, torch_on_gpu
from trtnet.parity import export_state, rel_error, torch_forward, torch_model
from trtnet.zoo import get_entry, swin, swin_t

timm = pytest.importorskip("timm", reason="timm is the PyTorch source of Swin")
torch = pytest.importorskip("torch", reason="timm runs on torch")

ONNX_LAYERS = 6003  # torch.onnx.export (opset 18) of swin_tiny_patch4_window7_224, parsed by TensorRT's ONNX parser


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    model = torch_model("swin_t", seed=0)
    path = export_state(model, tmp_path_factory.mktemp("w") / "swin_t.safetensors")
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    return model, path, x, torch_forward(model, x)[0]


@pytest.mark.parametrize("fused", [True, False], ids=["attention_layer", "matmul_softmax"])
def test_swin_t_matches_timm(source, fused):
    _, path, x, want = source
    (got,) = trtnet.reference(swin_t(weights=path), x, fused_attention=fused)
    assert got.shape == (2, 1000)
    assert rel_error(got, want) <= 1e-4


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_swin_t_engine_builds_and_serializes(source, precision, tmp_path):
    engine = trtnet.build(swin_t(weights=source[1]), batch_size=2, precision=precision)
    path = engine.save(tmp_path / f"swin_t_{precision}.plan")
    assert path.stat().st_size == len(engine.plan) > 1_000_000
    assert [s.name for s in engine.inputs] == ["x"] and [s.name for s in engine.outputs] == ["logits"]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_swin_t_has_a_third_of_the_onnx_layers(precision):
    net = trtnet.emit(swin_t(weights=None), 2, precision=precision)
    assert net.num_layers <= ONNX_LAYERS // 3


def test_shift_mask_and_bias_follow_timm():
    """The numpy tables against timm's own buffers: relative position index and the shifted-window mask."""
    from timm.models.swin_transformer import SwinTransformerBlock, get_relative_position_index

    np.testing.assert_array_equal(swin.relative_position_index(7), get_relative_position_index(7, 7).numpy())
    block = SwinTransformerBlock(dim=96, input_resolution=(56, 56), num_heads=3, window_size=7, shift_size=3)
    np.testing.assert_array_equal(swin.shift_mask(56, 7, 3), block.attn_mask.numpy())


def test_old_checkpoint_buffers_are_skipped(source, tmp_path):
    """Checkpoints of older timm versions also hold relative_position_index and attn_mask: skipped on purpose."""
    state = dict(trtnet.read_safetensors(source[1]))
    state["layers.0.blocks.0.attn.relative_position_index"] = swin.relative_position_index(7)
    state["layers.0.blocks.1.attn_mask"] = swin.shift_mask(56, 7, 3)
    swin_t(weights=state)


@pytest.mark.parametrize("name", ["swin_t", "swin_s", "swin_b"])
def test_variant_has_timm_keys_and_shapes(name):
    with torch.device("meta"):  # the architecture without allocating its weights
        source = get_entry(name).torch_model()
    want = {k: tuple(v.shape) for k, v in source.state_dict().items()}
    got = {k: p.shape for k, p in swin.SwinTransformer(get_entry(name).config).named_parameters()}
    assert got == want


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_swin_t_engine_matches_timm_on_gpu(source, precision):
    model, path, x, _ = source
    want = torch_on_gpu(model, x)
    engine = trtnet.build(swin_t(weights=path), batch_size=2, precision=precision)
    assert_engine_matches(engine(x), want, precision)
