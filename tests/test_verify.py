"""`trtnet verify --weights F`: both sides load F (the user's own weights, in any layout trtnet converts);
comparing F with the source's seeded weights is asked for with --against-seed. Run in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foreign_layouts import tonylins_key
from trtnet.cli import main
from trtnet.parity import randomize_norm_stats, torch_model

torch = pytest.importorskip("torch", reason="verify runs the PyTorch source")
torchvision = pytest.importorskip("torchvision", reason="torchvision is the source of resnet18 and mobilenet_v2")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="users write their files with safetensors")


@pytest.fixture(autouse=True)
def _engine_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRTNET_CACHE_DIR", str(tmp_path / "engine-cache"))  # where a GPU lets verify build engines


def run(capsys, *args) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def forget_after(monkeypatch, entry: str) -> None:
    """A zoo entry a user's file registers when the test imports it: gone from the registry after the test."""
    from trtnet.zoo import REGISTRY

    monkeypatch.setitem(REGISTRY, entry, None)
    monkeypatch.delitem(REGISTRY, entry)


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> Path:
    """A user's own resnet18 weights: not any seed trtnet knows, saved as users save them."""
    torch.manual_seed(123)
    model = torchvision.models.resnet18()
    randomize_norm_stats(model, 123)
    path = tmp_path_factory.mktemp("own") / "mine.safetensors"
    safetensors_torch.save_file(model.state_dict(), str(path))
    return path


def test_verify_passes_on_the_users_own_weights(own, capsys):
    status, out, err = run(capsys, "verify", "resnet18", "--weights", own, "--batch", "1")
    assert status == 0, out + err
    assert f"weights: {own}, loaded by trtnet and by PyTorch" in out.splitlines()
    line = next(line for line in out.splitlines() if "reference fp32 logits: rel error" in line)
    assert line.endswith("(need <= 0.0001) ok") and "resnet18: passed" in out


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory) -> Path:
    """Seed 0 as export-weights writes it, then one tensor changed after the export."""
    folder = tmp_path_factory.mktemp("perturbed")
    exported = folder / "resnet18.safetensors"
    assert main(["export-weights", "resnet18", "-o", str(exported), "--seed", "0"]) == 0
    state = safetensors_torch.load_file(str(exported))
    state["layer2.0.conv1.weight"] += 0.05 * torch.randn(
        state["layer2.0.conv1.weight"].shape, generator=torch.Generator().manual_seed(0)
    )
    path = folder / "perturbed.safetensors"
    safetensors_torch.save_file(state, str(path))
    return path


def test_against_seed_fails_on_weights_perturbed_after_export_and_names_the_tensor(perturbed, capsys):
    status, out, err = run(capsys, "verify", "resnet18", "--weights", perturbed, "--batch", "1", "--against-seed", "0")
    assert status == 1, out + err
    assert f"weights: {perturbed}, compared with the source's random weights, seed 0" in out
    assert "weights: 1 tensor differs from the PyTorch source's: layer2.0.conv1.weight (max |diff|" in out
    assert "(need <= 0.0001) FAILED" in out and "resnet18: FAILED (2 of 3 checks passed)" in out


def test_against_seed_says_when_the_file_was_in_a_converted_layout(tmp_path, capsys):
    """Seed 0 as export-weights writes it, saved again by a DataParallel user: the comparison passes and says
    the file was converted."""
    exported = tmp_path / "resnet18.safetensors"
    assert main(["export-weights", "resnet18", "-o", str(exported), "--seed", "0"]) == 0
    wrapped = tmp_path / "wrapped.safetensors"
    safetensors_torch.save_file(
        {f"module.{k}": v for k, v in safetensors_torch.load_file(str(exported)).items()}, str(wrapped)
    )
    capsys.readouterr()
    status, out, err = run(capsys, "verify", "resnet18", "--weights", wrapped, "--batch", "1", "--against-seed", "0")
    assert status == 0, out + err
    assert (
        f"weights: {wrapped}, converted from DataParallel's `module.` prefix layout, compared with the source's "
        "random weights, seed 0"
    ) in out.splitlines()


def test_by_default_the_perturbed_file_is_the_users_and_passes(perturbed, capsys):
    status, out, err = run(capsys, "verify", "resnet18", "--weights", perturbed, "--batch", "1")
    assert status == 0, out + err


def test_a_converted_layout_is_said_and_loaded_on_both_sides(tmp_path, capsys):
    source = torch_model("mobilenet_v2", seed=6)
    path = tmp_path / "tonylins.safetensors"
    safetensors_torch.save_file({tonylins_key(k): v for k, v in source.state_dict().items()}, str(path))
    status, out, err = run(capsys, "verify", "mobilenet_v2", "--weights", path, "--batch", "1")
    assert status == 0, out + err
    assert (
        f"weights: {path}, converted from tonylins/pytorch-mobilenet-v2 layout, loaded by trtnet and by PyTorch" in out
    )


def test_against_seed_and_against_pretrained_exclude_each_other(capsys):
    status, _, err = run(capsys, "verify", "resnet18", "--against-seed", "1", "--against-pretrained")
    assert status == 2
    assert err.splitlines()[0] == (
        "trtnet: error: argument --against-pretrained/--pretrained: not allowed with argument --against-seed"
    )


# -- issue 20: a pass must be able to fail -----------------------------------------------------------------------


def test_an_input_independent_source_is_refused_and_the_zoo_redraw_fixes_it():
    """torchvision's mobilenet_v3_large with its default random weights: its output ignores the input, so any
    network (a wrong activation too) would match it; the check refuses it, and `he_init` gives it a signal."""
    from trtnet.errors import ParityError
    from trtnet.nn.module import Input
    from trtnet.parity import check_input_dependence, sample_inputs, torch_forward
    from trtnet.zoo import he_init

    torch.manual_seed(0)
    source = torchvision.models.mobilenet_v3_large(weights=None).eval()
    randomize_norm_stats(source, 0)  # as verify's source gets them (trtnet.parity.torch_model)
    spec = [Input("x", (3, 224, 224))]
    a, b = torch_forward(source, *sample_inputs(spec, 2, 0)), torch_forward(source, *sample_inputs(spec, 2, 1))
    with pytest.raises(ParityError, match=r"outputs hardly depend on the input .*trtnet\.zoo\.he_init"):
        check_input_dependence(a, b, 1e-4)
    he_init(source)
    a, b = torch_forward(source, *sample_inputs(spec, 2, 0)), torch_forward(source, *sample_inputs(spec, 2, 1))
    check_input_dependence(a, b, 1e-4)


@pytest.mark.parametrize("name", ["resnet101", "resnet152", "yolov8n", "yolo11s"])
def test_the_zoos_deep_random_sources_depend_on_their_input(name):
    """verify's own guard refused the zoo at its defaults: a deep random ResNet's logits are one offset that no
    input moves (ResNet-101's two inputs differed by 0.4% of the largest logit), and YOLOv8's and YOLO11's boxes
    were the middle bin whatever the input (their DFL's bin numbers had been redrawn by `he_init`, and the box
    logits were flat). Each source, at two seeds, must leave verify's comparison able to fail."""
    from trtnet.cli.verify import REFERENCE_REL_ERROR, _parts
    from trtnet.parity import check_input_dependence, sample_inputs, torch_forward
    from trtnet.zoo.registry import get_entry

    model = get_entry(name).skeleton()
    for seed in (0, 2):
        source = torch_model(name, seed)
        a, b = (torch_forward(source, *sample_inputs(model, 2, s)) for s in (seed, seed + 1))
        split = _parts(model, model.output_names(len(a)))
        check_input_dependence(split(a)[1], split(b)[1], REFERENCE_REL_ERROR)


@pytest.mark.parametrize("name, seed", [("efficientnet_b2", 1), ("efficientnet_b3", 4)])
def test_the_deeper_efficientnets_neither_ignore_nor_amplify(name, seed):
    """Redrawn at sqrt 2, EfficientNet-B2 (seed 1) amplified float32 rounding ten thousand fold: PyTorch fp32 was
    1e-3 from its float64 run, trtnet 5e-3, and `verify efficientnet_b2 --seed 1` failed. Their gains keep the
    outputs input-dependent and PyTorch fp32 near float64, as verify's tolerance needs."""
    from trtnet.cli.verify import REFERENCE_REL_ERROR
    from trtnet.parity import check_input_dependence, rel_error, sample_inputs, torch_forward, torch_forward64
    from trtnet.zoo.registry import get_entry

    model, source = get_entry(name).skeleton(), torch_model(name, seed)
    x, y = sample_inputs(model, 2, seed), sample_inputs(model, 2, seed + 1)
    a = torch_forward(source, *x)
    check_input_dependence(a, torch_forward(source, *y), REFERENCE_REL_ERROR)
    assert rel_error(a[0], torch_forward64(source, *x)[0]) < REFERENCE_REL_ERROR / 10


def test_he_init_keeps_weights_that_do_not_train():
    """YOLOv8's DFL convolution holds the bin numbers 0..15 (requires_grad off): part of the architecture."""
    from trtnet.zoo import he_init

    source = torch_model("yolov8n", 0)
    dfl = source.model[-1].dfl.conv.weight
    assert not dfl.requires_grad and torch.equal(dfl.flatten(), torch.arange(16.0))
    before = source.model[0].conv.weight.clone()
    he_init(source)
    assert torch.equal(dfl.flatten(), torch.arange(16.0)) and not torch.equal(source.model[0].conv.weight, before)


def test_center_outputs_centres_the_named_linear_on_a_probe():
    import numpy as np

    from trtnet.errors import ConfigError
    from trtnet.nn.module import Input
    from trtnet.parity import _PROBE_SEED, center_outputs, sample_inputs, torch_forward

    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
    spec = [Input("x", (8,))]
    probe = sample_inputs(spec, 4, 3 + _PROBE_SEED)
    (before,) = torch_forward(source, *probe)
    assert np.abs(before.mean(0)).min() > 0.01
    center_outputs(source, "2", spec, seed=3)
    (after,) = torch_forward(source, *probe)
    np.testing.assert_allclose(after, before - before.mean(0), atol=1e-6)  # one shift, the probe's mean
    with pytest.raises(ConfigError, match="centered='1' is not a Linear with a bias: ReLU"):
        center_outputs(source, "1", spec)
    with pytest.raises(ConfigError, match="centered='fc' names no module of the source \\(Sequential\\)"):
        center_outputs(source, "fc", spec)


def test_a_user_entry_centred_on_no_linear_is_exit_2(tmp_path, capsys, monkeypatch):
    """An entry's `centered=` naming no module, or not a Linear, was an internal error (exit 3)."""
    (tmp_path / "centred.py").write_text(
        "import torch\n"
        "from trtnet import nn\n"
        "from trtnet.nn.module import Input\n"
        "from trtnet.zoo import register\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        self.fc = nn.Linear(4, 2)\n\n"
        "    def inputs(self):\n"
        "        return [Input('x', (4,))]\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n\n\n"
        "@register('user_centred', 'torch.nn.Sequential', lambda: torch.nn.Sequential(torch.nn.Linear(4, 2)),"
        " centered='fc')\n"
        "def net(weights=None):\n"
        "    return Net()\n"
    )
    forget_after(monkeypatch, "user_centred")
    assert main(["verify", f"{tmp_path / 'centred.py'}:net"]) == 2
    assert "zoo entry 'user_centred': centered='fc' names no module of the source" in capsys.readouterr().err


def test_where_trtnet_and_pytorch_fp32_disagree_the_source_in_float64_says_who_departs(capsys):
    """As check's arbiter: a deep random network amplifies each side's float32 rounding (YOLOv5l: PyTorch fp32 6e-4
    from float64, trtnet 1e-4; `verify yolov5l` failed). Here PyTorch fp32 loses 4,097 ones between +-1e8; an
    answer within tolerance of float64, or closer to it than PyTorch's, passes; one farther away does not."""
    import numpy as np

    from trtnet.cli.verify import _arbitrate, _parts
    from trtnet.parity import torch_forward

    source = torch.nn.Linear(4099, 1, bias=False)
    with torch.no_grad():
        source.weight.fill_(1.0)
    x = np.ones((1, 4099), np.float32)
    x[0, 0], x[0, -1] = 1e8, -1e8
    (want,) = torch_forward(source, x)
    exact = np.array([[4097.0]], np.float32)
    assert abs(float(want[0, 0]) - 4097.0) > 1.0  # PyTorch fp32 is off
    assert _arbitrate(source, [x], _parts(source, ["y"]), [exact], [want], [False]) == [True]
    said = capsys.readouterr().out
    assert "trtnet is 0 from it" in said and "PyTorch fp32 departs: ok" in said
    far = want * 3  # farther from float64 than PyTorch's own answer
    assert _arbitrate(source, [x], _parts(source, ["y"]), [far], [want], [False]) == [False]
    said = capsys.readouterr().out
    assert "trtnet departs: FAILED" in said and "amplifies float32 rounding" not in said  # not rounding: wrong
    near = exact + 1.5 * (want - exact)  # as far off as PyTorch fp32, a little more: rounding on both sides
    assert _arbitrate(source, [x], _parts(source, ["y"]), [near], [want], [False]) == [False]
    assert "amplifies float32 rounding past the tolerance on both sides" in capsys.readouterr().out
    assert _arbitrate(source, [x], _parts(source, ["y"]), [far], [want], [True]) == [
        True
    ]  # a passing output is left as it is


def test_yolo_predictions_are_compared_as_boxes_and_scores_apart():
    """Boxes are pixels near 640 and scores are in [0, 1]: judged as one tensor, scores wrong by 1e-3 were 2e-6 of
    its largest value and passed the 1e-4 tolerance. Each part is judged on its own scale."""
    import numpy as np

    from trtnet.cli.verify import _parts
    from trtnet.parity import rel_error
    from trtnet.zoo import yolov8n

    model = yolov8n(weights=None)
    names, (boxes, scores) = _parts(model, model.output_names(1))(
        [np.concatenate([np.full((1, 4, 6), 636.0), np.full((1, 80, 6), 0.5)], axis=1)]
    )
    assert names == ["predictions[boxes]", "predictions[scores]"] and boxes.shape == (1, 4, 6)
    wrong = scores + 1e-3
    whole = rel_error(np.concatenate([boxes, wrong], 1), np.concatenate([boxes, scores], 1))
    assert whole < 1e-4 < rel_error(wrong, scores)  # hidden as one tensor, seen as a part


def test_a_source_without_a_float64_forward_leaves_the_verdict_as_it_was(capsys):
    """A user's source may refuse float64 with any exception (an assert on its dtype was an internal error)."""
    from trtnet.cli.verify import _arbitrate, _parts

    class Fp32Only(torch.nn.Module):
        def forward(self, x):
            assert x.dtype == torch.float32, "this kernel takes float32 only"
            return x * 2

    import numpy as np

    x = np.ones((1, 4), np.float32)
    assert _arbitrate(Fp32Only(), [x], _parts(Fp32Only(), ["y"]), [x * 3], [x * 2], [False]) == [False]
    assert "no float64 arbiter: the source does not run in float64 (AssertionError" in capsys.readouterr().out


def test_weights_that_make_the_source_nan_are_said_as_the_cause(own, tmp_path, capsys):
    """A NaN in the user's file: both sides' outputs were NaN, and verify said "trtnet departs: FAILED" and that
    the outputs "hardly depend on the input (differ by nan)", suggesting --weights, which was given."""
    state = safetensors_torch.load_file(str(own))
    state["fc.bias"][3] = float("nan")
    path = tmp_path / "nan.safetensors"
    safetensors_torch.save_file(state, str(path))
    status, out, err = run(capsys, "verify", "resnet18", "--weights", path, "--batch", "1")
    assert status == 2, out + err
    assert f"verify resnet18: the PyTorch source's logits holds NaN or inf with weights from {path}" in err
    assert "departs" not in out


def test_a_normalisation_eps_other_than_the_sources_fails_by_path(tmp_path, capsys, monkeypatch):
    """An eps of 1e-3 where the source has 1e-5 shows in the outputs on random weights only as an error of
    unknown cause, if at all: the eps are compared by module path, and the one that differs is named."""
    (tmp_path / "eps.py").write_text(
        "from trtnet.zoo import get_entry, register, resnet18\n\n\n"
        "@register('user_eps', 'torchvision.models.resnet18', get_entry('resnet18').torch_model)\n"
        "def net(weights=None):\n"
        "    model = resnet18(weights=weights)\n"
        "    model.layer4[1].bn2._eps = 1e-3  # torchvision's is 1e-5\n"
        "    return model\n"
    )
    forget_after(monkeypatch, "user_eps")
    status, out, _ = run(capsys, "verify", f"{tmp_path / 'eps.py'}:net")
    assert status == 1
    assert "  normalisation eps: 1 of 20 differ: layer4.1.bn2 0.001 (the source's 1e-05) FAILED" in out
    status, out, _ = run(capsys, "verify", "resnet18")
    assert status == 0 and "  normalisation eps: 20 compared by module path, each equal to the source's ok" in out
