"""ResNet50 end to end: torchvision weights as a user saves them, loaded strictly, parity, engines built."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from tests.helpers import assert_engine_matches, torch_on_gpu
from trtnet.parity import export_state, rel_error, torch_forward, torch_model
from trtnet.zoo import resnet50

pytest.importorskip("torchvision", reason="torchvision is the PyTorch source of ResNet50")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    model = torch_model("resnet50", seed=0)
    path = export_state(model, tmp_path_factory.mktemp("w") / "resnet50.safetensors")
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    return model, path, x, torch_forward(model, x)[0]


@pytest.mark.parametrize("fold_bn", [True, False], ids=["bn_folded", "bn_apart"])
def test_resnet50_matches_torchvision(source, fold_bn):
    _, path, x, want = source
    (got,) = trtnet.reference(resnet50(weights=path), x, fold_bn=fold_bn)
    assert got.shape == (2, 1000)
    assert rel_error(got, want) <= 1e-4


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resnet50_engine_builds_and_serializes(source, precision, tmp_path):
    engine = trtnet.build(resnet50(weights=source[1]), batch_size=2, precision=precision)
    path = engine.save(tmp_path / f"resnet50_{precision}.plan")
    assert path.stat().st_size == len(engine.plan) > 1_000_000
    assert engine.num_layers > 100
    assert [s.name for s in engine.inputs] == ["x"] and [s.name for s in engine.outputs] == ["logits"]


def test_layer_names_are_module_paths():
    net = trtnet.emit(resnet50(weights=None), 1)
    names = [net.network.get_layer(i).name for i in range(net.num_layers)]
    assert "layer3.2.conv1/conv" in names
    assert "layer1.0.downsample.0/conv" in names
    weight_prefixes = {k.rsplit(".", 1)[0] for k, _ in resnet50(weights=None).named_parameters()}
    conv_layers = {n.split("/")[0] for n in names if n.endswith("/conv")}
    assert conv_layers <= weight_prefixes


def test_random_init_is_deterministic_and_sane():
    a, b = resnet50(weights=None).state_dict(), resnet50(weights=None).state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert all((a[k] > 0).all() for k in a if k.endswith("running_var"))
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    (logits,) = trtnet.reference(resnet50(weights=None), x)
    assert np.isfinite(logits).all() and 1e-3 < np.abs(logits).max() < 1e4


@pytest.mark.gpu
def test_resnet50_engine_matches_torch_on_gpu(source):
    model, path, x, _ = source
    engine = trtnet.build(resnet50(weights=path), batch_size=2, precision="fp32")
    assert_engine_matches(engine(x), torch_on_gpu(model, x), "fp32")
