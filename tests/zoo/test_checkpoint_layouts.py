"""Checkpoints in the layouts users hold them, loaded through the Python API. Each foreign layout is made here
from the PyTorch source's own state_dict with the key tables of issue 10 (the architectures are the same), so
parity through the converted load must hold as tightly as for the source's own keys."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from tests.foreign_layouts import microsoft_swin_key, tonylins_key
from trtnet.errors import WeightsError
from trtnet.parity import randomize_norm_stats, rel_error, torch_forward, torch_model
from trtnet.zoo import inception_v3, mobilenet_v2, resnet18, resnet50, swin_t
from trtnet.zoo.sources import he_init

torch = pytest.importorskip("torch", reason="torch runs the PyTorch sources of the zoo")
torchvision = pytest.importorskip("torchvision", reason="torchvision is the source of these entries")


def numpy_state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def test_tonylins_mobilenet_v2_matches_torchvision():
    source = torch_model("mobilenet_v2", seed=3)
    state = {tonylins_key(k): v for k, v in numpy_state(source).items()}
    assert "classifier.weight" in state and "features.1.conv.4.running_var" in state
    assert "features.17.conv.7.weight" in state and not any(".conv.0.0." in k for k in state)
    x = np.random.default_rng(4).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (got,) = trtnet.reference(mobilenet_v2(weights=state), x)
    (want,) = torch_forward(source, x)
    assert rel_error(got, want) <= 1e-4
    assert np.abs(want[0] - want[1]).max() >= 1e-2 * np.abs(want).max()  # the input matters (as test_convnets)


def test_data_parallel_prefix_is_stripped_for_any_entry():
    state = resnet18(weights=None).state_dict()
    model = resnet18(weights={f"module.{k}": v for k, v in state.items()})
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key])


def test_inception_v3_with_aux_logits_and_transform_input_at_299():
    torch.manual_seed(7)
    source = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    he_init(source)
    randomize_norm_stats(source, 7)
    source.eval()
    state = numpy_state(source)
    aux = sum(k.startswith("AuxLogits.") for k in state)
    assert aux > 10
    with pytest.warns(
        UserWarning,
        match=rf"state dict: {aux} keys not used by InceptionV3 were skipped "
        r"\(e\.g\. AuxLogits\.conv0\.bn\.bias\)",
    ):
        net = inception_v3(weights=state, transform_input=True)
    x = np.random.default_rng(8).standard_normal((1, 3, 299, 299)).astype(np.float32)
    (want,) = torch_forward(source, x)
    (got,) = trtnet.reference(net, x)
    assert rel_error(got, want) <= 1e-4
    # Without the re-normalisation the same weights compute something else: the option is not a no-op.
    (plain,) = trtnet.reference(inception_v3(weights={k: v for k, v in state.items() if "AuxLogits" not in k}), x)
    assert rel_error(plain, want) > 1e-2


def test_a_file_for_another_model_says_which():
    state = resnet18(weights=None).state_dict()
    with pytest.raises(WeightsError) as caught:
        resnet50(weights=state)
    lines = str(caught.value).splitlines()
    assert lines[0] == "state dict: weights do not fit ResNet"
    assert lines[1].startswith("  165 missing keys: layer1.0.conv3.weight, ") and lines[1].endswith(" and 155 more")
    assert lines[1].count(", ") == 9
    assert lines[2].startswith(
        "  24 shape mismatches: layer1.0.conv1.weight: expected (64, 64, 1, 1), file has (64, 64, 3, 3); "
    )
    assert lines[3] == "  looks like a resnet18 file, not resnet50: load it into resnet18"
    assert len(lines) == 4


def test_a_microsoft_swin_b_file_given_to_swin_t_names_the_layout_and_the_model():
    timm = pytest.importorskip("timm", reason="timm is the source of Swin")
    with torch.device("meta"):
        source = timm.create_model("swin_base_patch4_window7_224")
    # Shapes are all a mismatch needs: zero-stride arrays stand in for 88M parameters.
    state = {k: np.broadcast_to(np.float32(0), tuple(v.shape)) for k, v in source.state_dict().items()}
    with pytest.raises(WeightsError) as caught:
        swin_t(weights={microsoft_swin_key(k): v for k, v in state.items()})
    lines = str(caught.value).splitlines()
    assert lines[0] == "state dict: weights do not fit SwinTransformer (read as Microsoft Swin-Transformer)"
    assert lines[-1] == (
        "  looks like a swin_b file (Microsoft Swin-Transformer layout), not swin_t: load it into swin_b"
    )
    assert len(lines) <= 5 and all(line.count(", ") <= 9 for line in lines[1:-1] if "missing" in line)


def test_a_near_fit_names_the_model_and_the_shapes_that_differ():
    state = resnet18(weights=None).state_dict()
    state["fc.weight"], state["fc.bias"] = np.zeros((10, 512), np.float32), np.zeros(10, np.float32)
    with pytest.raises(WeightsError) as caught:
        resnet50(weights=state)
    assert str(caught.value).splitlines()[-1] == (
        "  looks like a resnet18 file with 2 tensors of other shapes (e.g. fc.weight), not resnet50"
    )


@pytest.mark.parametrize(
    "name, timm_name",
    [
        ("swin_t", "swin_tiny_patch4_window7_224"),
        ("swin_s", "swin_small_patch4_window7_224"),
        ("swin_b", "swin_base_patch4_window7_224"),
    ],
)
def test_microsoft_swin_keys_become_timms_for_every_variant(name, timm_name):
    timm = pytest.importorskip("timm", reason="timm is the source of Swin")
    from trtnet.layouts import adapt_checkpoint
    from trtnet.zoo import get_entry

    with torch.device("meta"):
        source = timm.create_model(timm_name)
    timm_shapes = {k: tuple(v.shape) for k, v in source.state_dict().items()}
    buffers = {k: tuple(v.shape) for k, v in source.named_buffers() if k.endswith(("_index", "attn_mask"))}
    microsoft = {microsoft_swin_key(k): v for k, v in {**timm_shapes, **buffers}.items()}
    assert "layers.0.downsample.reduction.weight" in microsoft and "head.weight" in microsoft
    adapted, layouts = adapt_checkpoint(get_entry(name).skeleton(), microsoft)
    assert adapted == timm_shapes and layouts == ["Microsoft Swin-Transformer"]
