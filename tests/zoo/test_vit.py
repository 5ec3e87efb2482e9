"""ViT-B/16 end to end: timm weights as a user saves them, loaded strictly, parity, engines, layer count."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from tests.helpers import assert_engine_matches, torch_on_gpu
from trtnet.parity import export_state, rel_error, torch_forward, torch_model
from trtnet.zoo import get_entry, vit, vit_b_16

timm = pytest.importorskip("timm", reason="timm is the PyTorch source of ViT")
torch = pytest.importorskip("torch", reason="timm runs on torch")

ONNX_LAYERS = 1327  # torch.onnx.export (opset 18) of vit_base_patch16_224, parsed by TensorRT's ONNX parser


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    model = torch_model("vit_b_16", seed=0)
    path = export_state(model, tmp_path_factory.mktemp("w") / "vit_b_16.safetensors")
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    return model, path, x, torch_forward(model, x)[0]


@pytest.mark.slow
def test_vit_b_16_matches_timm(source):
    _, path, x, want = source
    (got,) = trtnet.reference(vit_b_16(weights=path), x)
    assert got.shape == (2, 1000)
    assert rel_error(got, want) <= 1e-4


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_vit_b_16_engine_builds_and_serializes(source, precision, tmp_path):
    engine = trtnet.build(vit_b_16(weights=source[1]), batch_size=2, precision=precision)
    path = engine.save(tmp_path / f"vit_b_16_{precision}.plan")
    assert path.stat().st_size == len(engine.plan) > 1_000_000
    assert [s.name for s in engine.inputs] == ["x"] and [s.name for s in engine.outputs] == ["logits"]


@pytest.mark.parametrize("precision", ["fp32", pytest.param("fp16", marks=pytest.mark.slow)])
def test_vit_b_16_has_a_third_of_the_onnx_layers(precision):
    net = trtnet.emit(vit_b_16(weights=None), 2, precision=precision)
    assert net.num_layers <= ONNX_LAYERS // 3


@pytest.mark.parametrize("name", ["vit_s_16", "vit_b_16", "vit_l_16"])
def test_variant_has_timm_keys_and_shapes(name):
    with torch.device("meta"):  # the architecture without allocating its weights
        source = get_entry(name).torch_model()
    want = {k: tuple(v.shape) for k, v in source.state_dict().items()}
    got = {k: p.shape for k, p in vit.VisionTransformer(get_entry(name).config).named_parameters()}
    assert got == want


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_vit_b_16_engine_matches_timm_on_gpu(source, precision):
    model, path, x, _ = source
    want = torch_on_gpu(model, x)
    engine = trtnet.build(vit_b_16(weights=path), batch_size=2, precision=precision)
    assert_engine_matches(engine(x), want, precision)
