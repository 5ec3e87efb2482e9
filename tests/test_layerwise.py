"""`trtnet.parity.layerwise` and `trtnet verify --layerwise`: the first module that departs from the PyTorch
source, named by its state_dict path, in one run."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fault_planting import wrong_activation
from tests.helpers import trtnet_cli
from tests.mobilenet_v3_dsl import LARGE, MobileNetV3
from trtnet import nn
from trtnet.errors import CalibrationError
from trtnet.parity import export_state, layerwise, layerwise_precision, sample_inputs, torch_model
from trtnet.parity.sides import Side, _views, compare
from trtnet.weights import load_weights
from trtnet.zoo import REGISTRY, he_init

torch = pytest.importorskip("torch", reason="the PyTorch sources are what layerwise compares with")


def _source_and_model(name: str, tmp_path, **options):
    source = torch_model(name, seed=0)
    model = REGISTRY[name].fn(weights=export_state(source, tmp_path / f"{name}.safetensors"), **options)
    return source, model


@pytest.fixture(scope="module")
def mobilenet_v3(tmp_path_factory):
    """torchvision's mobilenet_v3_large with the zoo's weight redraw (its own init makes the output independent
    of the input), and its weights as a safetensors file."""
    import torchvision

    torch.manual_seed(0)
    source = torchvision.models.mobilenet_v3_large().eval()
    he_init(source)
    path = export_state(source, tmp_path_factory.mktemp("mnv3") / "mobilenet_v3_large.safetensors")
    return source, path


def test_the_newcomers_wrong_activation_is_named_at_its_module(mobilenet_v3):
    """Issue 24's case: a DSL MobileNetV3 with one wrong activation in its first expanding block, loaded with
    the source's weights: one run names features.2.block.0 (the Conv2dNormActivation whose activation it is),
    where the whole-output check says only that the logits differ."""
    source, path = mobilenet_v3
    x = sample_inputs(MobileNetV3(), 1, seed=0)
    right = MobileNetV3()
    load_weights(right, path)
    assert layerwise(right, source, x).passed, layerwise(right, source, x).text()
    wrong = MobileNetV3(wrong_block=1)  # LARGE[1] expands 16 -> 64 with ReLU: written with Hardswish
    load_weights(wrong, path)
    report = layerwise(wrong, source, x)
    assert not report.passed
    assert report.blamed.path == "features.2.block.0.2" and report.blamed.kind == "Hardswish", report.text()
    text = report.text()
    assert "first departure: features.2.block.0.2 (Hardswish): its output departs while its inputs agree" in text
    assert report.calls[-1].error > 1e-3  # the logits depart too: what verify alone reports
    assert LARGE[1].expanded != LARGE[1].cin  # the row has an expansion to get wrong


def test_a_departure_made_between_modules_is_blamed_on_the_forward_that_made_it(tmp_path):
    """An inherited departure: resnet18's first block applies its ReLUs inline (ops.relu, no module). Written
    wrong, the next module (conv2) receives a departing input; the blame goes to layer1.0, whose forward made it,
    and conv2's own error is shown as inherited."""
    source, model = _source_and_model("resnet18", tmp_path)
    x = sample_inputs(model, 1, seed=0)
    with wrong_activation("layer1.0")(model):
        report = layerwise(model, source, x)
    assert report.blamed.path == "layer1.0", report.text()
    assert "ops of its own forward (between module calls) feed layer1.0.conv2 an input that departs" in report.why
    conv2 = next(c for c in report.calls if c.path == "layer1.0.conv2")
    assert conv2.inputs[0].error > 1e-2 and conv2.error > 1e-2  # departs, but only by what it received


def test_modules_with_no_counterpart_are_said_not_skipped(tmp_path):
    """ViT's final norm runs on the class token alone (a trtnet economy): another size than timm's output,
    from an input of another size, so it is listed as not compared, and the model still passes."""
    source, model = _source_and_model("vit_s_16", tmp_path)
    report = layerwise(model, source, sample_inputs(model, 1, seed=0))
    assert report.passed, report.text()
    norm = next(c for c in report.calls if c.path == "norm")
    assert norm.outputs[0].error is None and "the reference's [1, 197, 384]" in norm.outputs[0].note
    assert "not compared (1):" in report.text() and "  norm (LayerNorm): shape [1, 1, 1, 384]" in report.text()


def test_a_reduced_precision_run_names_where_the_error_grows_most():
    """int8 against fp32 of the same network: the module whose output error grows most over its inputs'."""

    class Tiny(nn.ImageClassifier):
        image_size = 16

        def __init__(self) -> None:
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.head = nn.Linear(8, 4)

        def forward(self, x):
            return self.head(self.conv2(self.conv1(x).relu()).relu().mean((2, 3)))

    import trtnet

    model = Tiny()
    trtnet.init_random(model, seed=1)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((2, 3, 16, 16)).astype(np.float32) for _ in range(3)]
    cal = trtnet.calibrate(model, batches, precision="int8", keep=())
    fp16 = layerwise_precision(model, batches[:1], "fp16")
    int8 = layerwise_precision(model, batches[:1], "int8", calibration=cal)
    assert int8.blamed is not None and int8.blamed.path in ("conv1", "conv2", "head"), int8.text()
    assert "the error grows most here" in int8.why
    # int8 rounds far coarser than fp16: its worst module error is larger
    assert max(c.error for c in int8.calls if c.error is not None) > max(c.error for c in fp16.calls if c.error)
    # A calibration measured on other inputs is refused as build refuses it (verify --layerwise ran it), unless
    # reused on purpose.
    other = [b[:, :, :8, :8] for b in batches[1:]]
    with pytest.raises(CalibrationError, match=r"was measured on input 'x' of per-sample shape \[3, 16, 16\]"):
        layerwise_precision(model, other[:1], "int8", calibration=cal)
    assert layerwise_precision(model, other[:1], "int8", calibration=cal, reuse_calibration=True).calls


@pytest.mark.parametrize(
    "a, b, same",
    [
        ((1, 56, 56, 96), (1, 3136, 96), True),  # Swin's tokens: H and W merged
        ((2, 3, 4), (2, 12), True),
        ((1, 96, 56, 56), (1, 3136, 96), False),  # NCHW against merged NHWC: a transposition, not a view
        ((6, 4), (4, 6), False),
        ((6, 4), (3, 8), False),
        ((2, 1, 3), (2, 3), True),
    ],
)
def test_views_are_compared_and_transpositions_are_not(a, b, same):
    assert _views(a, b) is same
    got = np.arange(np.prod(a), dtype=np.float32).reshape(a)
    side = compare(got, got.reshape(b))
    if same:
        assert side.error == 0.0
    elif sorted(a) == sorted(b):  # a transposition's shape: compared through it, and the reshape departs
        assert side.error > 0.1 and "compared transposed" in side.note
    else:
        assert side.error is None and "laid out as" in side.note


def test_another_axis_order_is_compared_through_its_transposition():
    """ConvNeXt's blocks: trtnet keeps NCHW where timm permutes to NHWC."""
    want = np.random.default_rng(0).standard_normal((1, 5, 5, 8))
    assert compare(want.transpose(0, 3, 1, 2), want).error == 0.0
    assert compare(want.transpose(0, 3, 1, 2) * 1.5, want).error > 0.3


def test_another_size_departs_only_when_the_inputs_agree():
    side = compare(np.zeros((1, 8, 4, 4)), np.zeros((1, 8, 8, 8)))
    assert side == Side((1, 8, 4, 4), None, "shape [1, 8, 4, 4], the reference's [1, 8, 8, 8]", resized=True)


@pytest.mark.slow
def test_verify_layerwise_on_the_command_line(tmp_path):
    """`trtnet verify resnet18 --layerwise`: the table in one run, exit 0 on the faithful model."""
    result = trtnet_cli("verify", "resnet18", "--layerwise", "--batch", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "layerwise: 53 module calls compared with the PyTorch source" in result.stdout
    assert "no module departs" in result.stdout


def test_verify_layerwise_int8_needs_a_calibration_before_any_work(tmp_path):
    result = trtnet_cli("verify", "resnet18", "--layerwise", "--precision", "int8", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert "--precision int8 needs --calibration FILE (from `trtnet calibrate`)" in result.stderr


def test_verify_layerwise_refuses_a_precision_without_it(tmp_path):
    result = trtnet_cli("verify", "resnet18", "--precision", "int8", cwd=tmp_path)
    assert result.returncode == 2
    assert "--precision compares the network in that precision with fp32 module by module: add --layerwise" in (
        result.stderr
    )


@pytest.mark.slow
def test_the_fault_benchmark_names_every_planted_resnet_fault(tmp_path):
    """scripts/fault_bench.py on one architecture: every fault planted, and named first."""
    import importlib.util
    import io
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "fault_bench.py"
    spec = importlib.util.spec_from_file_location("fault_bench", script)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["fault_bench"] = bench  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(bench)
    finally:
        del sys.modules["fault_bench"]
    summary = bench.run(["resnet18"], out=io.StringIO())
    assert summary["faults"] == summary["planted"] >= 8
    assert summary["named_first"] == summary["planted"], [r for r in summary["rows"] if not r["hit"]]


def test_bad_layerwise_arguments_are_parity_errors(mobilenet_v3):
    """float64 inputs reached torch (a dtype RuntimeError), and a missing source, no inputs, two inputs for one,
    a model of None or a tolerance of "a" were AttributeError, IndexError or TypeError from deep inside."""
    from trtnet.errors import NetworkError, ParityError

    source, path = mobilenet_v3
    model = MobileNetV3()
    load_weights(model, path)
    x = sample_inputs(model, 1, seed=0)[0]
    report = layerwise(model, source, [x.astype(np.float64)])  # cast as the interpreter casts it
    assert report.passed
    cases = [
        ((model, None, [x]), {}, r"layerwise's source is the PyTorch model \(a torch.nn.Module\), not NoneType"),
        ((model, source, [x]), {"tolerance": "a"}, r"tolerance must be a number, not 'a'"),
        ((model, source, []), {}, r"takes 1 input"),
        ((model, source, [x, x]), {}, r"takes 1 input"),
    ]
    for args, options, said in cases:
        with pytest.raises(ParityError, match=said):
            layerwise(*args, **options)
    with pytest.raises(NetworkError, match=r"expected a trtnet Module"):
        layerwise(None, source, [x])


class WideHead(nn.Module):
    """A Linear whose sums run over 4096 values to outputs of cancelling terms (as a centred classifier's)."""

    def __init__(self) -> None:
        self.fc = nn.Linear(4096, 4)

    def inputs(self):
        return [nn.Input("x", (4096,))]

    def forward(self, x):
        return self.fc(x)


def test_the_sources_own_fp32_rounding_is_not_blamed_on_trtnet():
    """verify resnet152 --layerwise blamed the centred `fc` for PyTorch's own fp32 sums (PyTorch 3e-4 from float64,
    trtnet 3.4e-5): a departing module is run alone in float64, and blamed only where trtnet is the farther side."""
    torch.manual_seed(0)
    source = torch.nn.Sequential()
    source.fc = torch.nn.Linear(4096, 4)
    model = WideHead()
    load_weights(model, {k: v.numpy() for k, v in source.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 4096)).astype(np.float32)
    torch32 = source(torch.from_numpy(x)).detach().numpy().astype(np.float64)
    exact = torch.nn.Sequential(source.fc.double())(torch.from_numpy(x.astype(np.float64))).detach().numpy()
    source.float()
    scale = np.abs(exact).max()
    pytorch_error = np.abs(torch32 - exact).max() / scale
    tolerance = pytorch_error / 2  # PyTorch fp32 departs from float64 by more; trtnet is within it
    report = layerwise(model, source, [x], tolerance=tolerance)
    assert report.passed, report.text()
    assert [c.name for c in report.calls if c.settled] == ["fc"]
    assert "the source's own fp32 rounding, by its module run in float64: fc" in report.text()
    # a real fault in the same module is still blamed: float64 finds trtnet the farther side
    model.fc.bias.value = model.fc.bias.value + 1.0
    assert layerwise(model, source, [x], tolerance=tolerance).blamed.name == "fc"
