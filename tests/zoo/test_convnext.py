"""ConvNeXt-T end to end: timm weights (randomised LayerNorms and layer scales) as a user saves them, loaded
strictly, parity at batch 2, an fp16 engine built on the CPU, layer count against TensorRT's ONNX import."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from tests.helpers import assert_engine_matches, torch_on_gpu
from trtnet.parity import cosine, export_state, rel_error, torch_forward, torch_model
from trtnet.zoo import convnext, convnext_tiny, get_entry

timm = pytest.importorskip("timm", reason="timm is the PyTorch source of ConvNeXt")
torch = pytest.importorskip("torch", reason="timm runs on torch")

ONNX_LAYERS = 680  # torch.onnx.export (opset 18) of timm convnext_tiny, parsed by TensorRT's ONNX parser


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    model = torch_model("convnext_tiny", seed=0)
    path = export_state(model, tmp_path_factory.mktemp("w") / "convnext_tiny.safetensors")
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    return model, path, x, torch_forward(model, x)[0]


def test_convnext_tiny_matches_timm(source):
    model, path, x, want = source
    # The randomised norms and layer scales are in the file: the parity below sees every one of them.
    assert float(model.stages[2].blocks[4].gamma.detach().min()) >= 0.5
    (got,) = trtnet.reference(convnext_tiny(weights=path), x)
    assert got.shape == (2, 1000)
    assert rel_error(got, want) <= 1e-4


def test_convnext_tiny_fp16_network_keeps_the_fp16_engine_bound(source):
    """The fp16 network (LayerNorms in fp32, the default) run in the interpreter, which rounds each layer's output
    to its type: the cosine bound the GPU tests hold fp16 engines to."""
    _, path, x, want = source
    (got,) = trtnet.reference(convnext_tiny(weights=path), x, precision="fp16")
    assert cosine(got, want) >= 0.999


def test_convnext_tiny_fp16_engine_builds_on_the_cpu(source, tmp_path):
    engine = trtnet.build(convnext_tiny(weights=source[1]), batch_size=2, precision="fp16")
    path = engine.save(tmp_path / "convnext_tiny_fp16.plan")
    assert path.stat().st_size == len(engine.plan) > 1_000_000
    assert [s.name for s in engine.inputs] == ["x"] and [s.name for s in engine.outputs] == ["logits"]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_convnext_tiny_has_under_a_third_of_the_onnx_layers(precision):
    net = trtnet.emit(convnext_tiny(weights=None), 2, precision=precision)
    assert net.num_layers <= ONNX_LAYERS // 3


def test_blocks_have_no_permutes():
    """timm permutes each block to channels-last and back; here the norm and MLP act on NCHW channels."""
    net = trtnet.emit(convnext_tiny(weights=None), 1)
    block = [
        net.network.get_layer(i)
        for i in range(net.num_layers)
        if net.network.get_layer(i).name.startswith("stages.2.blocks.4/")
        or net.network.get_layer(i).name.startswith("stages.2.blocks.4.")
    ]
    assert [str(layer.type).rpartition(".")[2] for layer in block] == [
        "CONVOLUTION",
        "NORMALIZATION",
        "SCALE",
        "CONVOLUTION",
        "ACTIVATION",
        "CONVOLUTION",
        "SCALE",
        "ELEMENTWISE",
    ]


@pytest.mark.parametrize("name", ["convnext_tiny", "convnext_small", "convnext_base"])
def test_variant_has_timm_keys_and_shapes(name):
    with torch.device("meta"):  # the architecture without allocating its weights
        source = get_entry(name).torch_model()
    want = {k: tuple(v.shape) for k, v in source.state_dict().items()}
    got = {k: p.shape for k, p in convnext.ConvNeXt(get_entry(name).config).named_parameters()}
    assert got == want


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_convnext_tiny_engine_matches_timm_on_gpu(source, precision):
    model, path, x, _ = source
    want = torch_on_gpu(model, x)
    engine = trtnet.build(convnext_tiny(weights=path), batch_size=2, precision=precision)
    assert_engine_matches(engine(x), want, precision)
