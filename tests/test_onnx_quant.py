"""int8/fp8 for ONNX files, no GPU: calibration of the parsed fp32 network in the interpreter, Q/DQ placed by the
zoo's rules in the parsed network, the quantized network within measured bounds of fp32, the command line's
calibrate -> build flow, and every bad input a one-line error with exit status 2."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

import trtnet
from tests.helpers import error_line, export_onnx, trtnet_cli
from trtnet.errors import CalibrationError, NetworkError
from trtnet.interpreter import run_network
from trtnet.onnx.calibrate import calibrate_onnx

torch = pytest.importorskip("torch", reason="the ONNX files are exported from PyTorch modules")
torchvision = pytest.importorskip("torchvision", reason="resnet18 is torchvision's")
pytest.importorskip("onnx", reason="torch.onnx.export writes the files")


class Small(torch.nn.Module):
    """Another model: a convolution, a residual addition and a linear head, other layer names than resnet18's."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.body = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, images):
        x = torch.relu(self.stem(images))
        x = torch.relu(self.body(x) + x)
        return self.head(x.mean((2, 3)))


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "resnet18.onnx"
    torch.manual_seed(0)
    export_onnx(torchvision.models.resnet18(weights=None), path, (2, 3, 64, 64), {0: "batch"})
    return path


def _export_small(path, seed: int = 0):
    torch.manual_seed(seed)  # the weights' seed
    export_onnx(Small(), path, (2, 3, 16, 16), {0: "batch", 2: "height", 3: "width"})
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return _export_small(tmp_path_factory.mktemp("onnx") / "small.onnx")


def _batches(n: int, shape: tuple[int, ...], seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"images": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)]


def _cosine_rel(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), float(np.abs(a - b).max() / np.abs(b).max())


# Measured on resnet18 (random weights, calibrated by "max" on 3 random 2x3x64x64 batches, judged on another,
# seed 0): int8 1-cos 2.4e-4, rel error 2.3e-2; fp8 1-cos 2.0e-3, rel error 5.9e-2 (fp16 alone: 6.5e-4). The bounds
# leave a factor of about 4-8 for other seeds and numpy versions.
QUANT_BOUNDS = {"int8": (0.998, 0.1), "fp8": (0.985, 0.25)}


def test_int8_and_fp8_of_an_onnx_classifier_stay_within_measured_bounds_of_fp32(resnet18):
    cal = calibrate_onnx(resnet18, _batches(3, (2, 3, 64, 64), seed=1))
    assert cal.keep == {"/fc/Gemm": "last layer"}  # the zoo's default: the last weighted layer stays in fp16
    assert len(cal.amax) == 20 + 8 + 1  # 20 convolutions, 8 residual additions, the linear head
    assert cal.meta["batches"] == 3 and cal.meta["samples"] == 6
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    fp32 = trtnet.parse_onnx(resnet18, batch_size=2)
    want = run_network(fp32.network, {"images": x})["out"]
    for precision, (min_cosine, max_rel) in QUANT_BOUNDS.items():
        net = trtnet.parse_onnx(resnet18, batch_size=2, precision=precision, calibration=cal)
        network = net.network
        producer = {}
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            producer[layer.get_output(0).name] = layer.type.name
        convs = [network.get_layer(i) for i in range(network.num_layers)]
        convs = [c for c in convs if c.type.name == "CONVOLUTION" and not c.name.endswith("/replaced")]
        assert len(convs) == 20
        for conv in convs:  # input and kernel both through a Q/DQ pair
            assert [producer[conv.get_input(j).name] for j in (0, 1)] == ["DEQUANTIZE", "DEQUANTIZE"], conv.name
        fc = next(network.get_layer(i) for i in range(network.num_layers) if network.get_layer(i).name == "/fc/Gemm")
        assert producer[fc.get_input(0).name] != "DEQUANTIZE"  # kept
        assert [s.dtype for s in net.inputs + net.outputs] == ["float32", "float32"]
        got = run_network(network, {"images": x})["out"]
        cosine, rel = _cosine_rel(got, want)
        assert cosine >= min_cosine and 1e-3 < rel <= max_rel, (precision, cosine, rel)  # quantized, and close


def test_weights_are_quantized_per_output_channel(small):
    cal = calibrate_onnx(small, _batches(2, (2, 3, 16, 16), seed=2), keep=())
    net = trtnet.parse_onnx(small, shapes={"images": (2, 3, 16, 16)}, precision="int8", calibration=cal)
    network = net.network
    trt = trtnet.backend.get_trt()
    scales = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type.name == "DEQUANTIZE" and layer.name.endswith("/weight/dequantize"):
            layer.__class__ = trt.IDequantizeLayer
            scales[layer.name] = (layer.axis, tuple(layer.get_input(1).shape))
    assert scales == {
        "/stem/Conv/weight/dequantize": (0, (8,)),
        "/body/Conv/weight/dequantize": (0, (8,)),
        "/head/Gemm/weight/dequantize": (0, (5,)),  # Gemm's B is [out, in], transposed: its output channels lead
    }
    assert set(cal.amax) == {"/stem/Conv", "/body/Conv", "/head/Gemm", "/Add/sum"}


def test_the_command_line_calibrates_then_builds_int8(small, tmp_path):
    data = tmp_path / "samples.npz"
    np.savez(data, images=np.random.default_rng(3).standard_normal((6, 3, 16, 16)).astype(np.float32))
    cal = tmp_path / "small.calibration.json"
    r = trtnet_cli("calibrate", small, "--data", data, "--batch", "4", "-o", cal)
    assert r.returncode == 0, r.stderr
    assert "4 ranges (max) from 6 samples in 2 batches; 1 layers kept in fp16" in r.stdout
    doc = json.loads(cal.read_text())
    assert doc["model"] == "small.onnx" and doc["keep"] == {"/head/Gemm": "last layer"}
    plan = tmp_path / "small.plan"
    r = trtnet_cli(
        "build", small, "--precision", "int8", "--calibration", cal, "-o", plan,
        "--min-shapes", "images:1x3x16x16", "--opt-shapes", "images:2x3x32x32", "--max-shapes", "images:4x3x64x64",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    sidecar = json.loads((tmp_path / "small.plan.json").read_text())
    assert sidecar["precision"] == "int8" and sidecar["inputs"][0]["max_shape"] == [4, 3, 64, 64]


class Pooled(torch.nn.Module):
    """A detector-like stem: its image size is dynamic, and a 1x1 image does not go through its pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3)
        self.conv2 = torch.nn.Conv2d(8, 4, 3)

    def forward(self, images):
        return torch.sigmoid(self.conv2(torch.nn.functional.max_pool2d(torch.relu(self.conv1(images)), 2)))


def test_a_dynamic_image_size_that_downsamples_calibrates_from_the_command_line(tmp_path):
    """The file was first parsed with every dynamic dim 1, only to read its inputs' names: a 1x1 image cannot be
    pooled, and calibrate failed ("not consistent at layer ...") before the data was looked at."""
    path = tmp_path / "pooled.onnx"
    export_onnx(Pooled(), path, (2, 3, 32, 32), {0: "batch", 2: "height", 3: "width"})
    data = tmp_path / "samples.npz"
    np.savez(data, images=np.random.default_rng(3).standard_normal((4, 3, 64, 64)).astype(np.float32))
    cal = tmp_path / "pooled.json"
    r = trtnet_cli("calibrate", path, "--data", data, "-o", cal)
    assert r.returncode == 0, r.stderr
    assert json.loads(cal.read_text())["inputs"] == {"images": {"shapes": [[3, 64, 64]], "dtype": "float32"}}
    r = trtnet_cli(
        "build",
        path,
        "--precision",
        "int8",
        "--calibration",
        cal,
        "--shapes",
        "images:1x3x64x64",
        "-o",
        tmp_path / "p.plan",
    )
    assert r.returncode == 0, r.stderr
    # data that does not fit is said so, not as the parse at 1x1 failing at a layer
    bad = tmp_path / "bad.npz"
    for arrays, said in (
        ({"images": np.zeros((3, 64, 64), np.float32)}, "array 'images' is float32[3, 64, 64]; input 'images' takes"),
        ({"image": np.zeros((1, 3, 64, 64), np.float32), "x": np.zeros(1)}, "the model's inputs are ['images']"),
    ):
        np.savez(bad, **arrays)
        r = trtnet_cli("calibrate", path, "--data", bad, "-o", tmp_path / "bad.json")
        assert r.returncode == 2 and said in error_line(r), r.stderr


def test_a_kept_layer_the_file_names_wrong_is_refused_as_keep_is(small, tmp_path):
    """A "keep" edited by hand to a name the network lacks left the layer it meant quantized, silently."""
    data = tmp_path / "samples.npz"
    np.savez(data, images=np.random.default_rng(3).standard_normal((4, 3, 16, 16)).astype(np.float32))
    cal = tmp_path / "small.calibration.json"
    assert trtnet_cli("calibrate", small, "--data", data, "-o", cal).returncode == 0
    doc = json.loads(cal.read_text())
    doc["keep"] = {"/head/gemm": "hand-edited"}  # the layer is /head/Gemm
    cal.write_text(json.dumps(doc))
    r = trtnet_cli("build", small, "--precision", "int8", "--calibration", cal, "--shapes", "images:1x3x16x16", "-o",
                   tmp_path / "small.plan")  # fmt: skip
    assert r.returncode == 2 and not (tmp_path / "small.plan").exists()
    assert error_line(r) == (
        f"trtnet: error: calibration file {cal}: \"keep\" names '/head/gemm' (did you mean '/head/Gemm'?), which is "
        "not a quantized layer of this network"
    )


@pytest.fixture(scope="module")
def other_calibration(resnet18, tmp_path_factory):
    """resnet18's ranges: a calibration of another model than `small`."""
    path = tmp_path_factory.mktemp("cal") / "resnet18.calibration.json"
    calibrate_onnx(resnet18, _batches(1, (1, 3, 64, 64), seed=4)).save(path)
    return path


def _bad_data(tmp_path, kind: str):
    rng = np.random.default_rng(5)
    arrays = {
        "names": {"pictures": rng.standard_normal((2, 3, 16, 16)).astype(np.float32), "x": np.zeros(1)},
        "channels": {"images": rng.standard_normal((2, 4, 16, 16)).astype(np.float32)},
        "rank": {"images": rng.standard_normal((2, 3, 16)).astype(np.float32)},
        "dtype": {"images": rng.standard_normal((2, 3, 16, 16))},
    }[kind]
    path = tmp_path / f"{kind}.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "kind, pattern",
    [
        ("names", r"has arrays \['pictures', 'x'\]; the model's inputs are \['images'\]"),
        ("channels", r"input 'images' is declared \[batch, 3, height, width\]; 2x4x16x16 does not fit it"),
        ("rank", r"array 'images' is float32\[2, 3, 16\]; input 'images' takes float32 of rank 4"),
        ("dtype", r"array 'images' is float64\[2, 3, 16, 16\]; input 'images' takes float32 of rank 4"),
    ],
)
def test_bad_calibration_data_is_a_one_line_error(small, tmp_path, kind, pattern):
    r = trtnet_cli("calibrate", small, "--data", _bad_data(tmp_path, kind), "-o", tmp_path / "c.json")
    assert r.returncode == 2 and re.search(pattern, error_line(r)), r.stderr
    assert not (tmp_path / "c.json").exists()
    with pytest.raises(CalibrationError, match=pattern):
        calibrate_onnx(small, _bad_data(tmp_path, kind))


def test_bad_build_and_calibrate_options_are_one_line_errors(small, tmp_path, other_calibration):
    fifo = tmp_path / "data.fifo"
    os.mkfifo(fifo)  # refused at once, not waited on for a writer
    cases = [
        (("calibrate", small), "the following arguments are required: --data"),
        (("build", small, "--shapes", "images:1x3x16x16", "--precision", "int8"), r"int8 needs --calibration FILE"),
        (
            ("build", small, "--shapes", "images:1x3x16x16", "--precision", "fp16", "--calibration", other_calibration),
            r"--calibration is for --precision int8 or fp8, not fp16",
        ),
        (
            ("build", small, "--shapes", "images:1x3x16x16", "--precision", "int8", "--calibration", other_calibration),
            r"calibration file .*resnet18.calibration.json has ranges for layers this network does not have "
            r"\('/conv1/Conv', .*measured on another model",
        ),
        (
            ("calibrate", small, "--data", tmp_path / "none.npz", "--shapes", "images:1x3x16x16"),
            r"calibrate takes its shapes from the arrays of --data, not from --shapes",
        ),
        (("calibrate", small, "--data", tmp_path / "none.npz"), r"none.npz: no such calibration data"),
        (("calibrate", small, "--data", fifo), r"data.fifo: the calibration data is a FIFO, not a regular file"),
    ]
    for args, pattern in cases:
        r = trtnet_cli(*args, "-o", tmp_path / "out")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert lines[0].startswith("trtnet: error: ") and re.search(pattern, lines[0]), (args, r.stderr)
        assert not (tmp_path / "out").exists()


def test_parse_onnx_asks_for_a_calibration_by_name(small):
    with pytest.raises(NetworkError, match=r"small.onnx: precision 'int8' needs activation ranges: calibration="):
        trtnet.parse_onnx(small, shapes={"images": (1, 3, 16, 16)}, precision="int8")


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """`small` with other weights (another seed): the same graph and layer names, so only the weights tell."""
    return _export_small(tmp_path_factory.mktemp("onnx") / "small.onnx", seed=1)


def test_an_onnx_calibration_is_tied_to_the_weights_and_shapes_it_measured(small, retrained, tmp_path):
    cal = calibrate_onnx(small, _batches(2, (2, 3, 16, 16), seed=6))
    assert cal.meta["inputs"] == {"images": {"shapes": [[3, 16, 16]], "dtype": "float32"}}
    assert re.fullmatch(r"[0-9a-f]{64}", cal.meta["weights"])
    path = tmp_path / "small.calibration.json"
    cal.save(path)
    # The same weights in a new export, and a profile that holds the measured shape, are accepted.
    copy = _export_small(tmp_path / "again.onnx")
    trtnet.parse_onnx(copy, shapes={"images": ((1, 3, 8, 8), (2, 3, 16, 16), (4, 3, 32, 32))}, precision="int8",
                      calibration=path)  # fmt: skip
    # The same weights under other initializer names (the parser names constants after them): the same weights.
    import onnx

    renamed = onnx.load(str(small))
    names = {init.name: f"renamed_{i}" for i, init in enumerate(renamed.graph.initializer)}
    for init in renamed.graph.initializer:
        init.name = names[init.name]
    for node in renamed.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
    onnx.save(renamed, str(tmp_path / "renamed.onnx"))
    trtnet.parse_onnx(tmp_path / "renamed.onnx", shapes={"images": (2, 3, 16, 16)}, precision="int8", calibration=path)
    with pytest.raises(CalibrationError, match=r"small.calibration.json was measured on other weights than these"):
        trtnet.parse_onnx(retrained, shapes={"images": (2, 3, 16, 16)}, precision="int8", calibration=path)
    with pytest.raises(CalibrationError, match=r"on input 'images' of per-sample shape \[3, 16, 16\]; the network "
                       r"takes \[3, 32, 32\]"):  # fmt: skip
        trtnet.parse_onnx(small, shapes={"images": (2, 3, 32, 32)}, precision="int8", calibration=path)
    for model, shape in ((retrained, (2, 3, 16, 16)), (small, (2, 3, 32, 32))):  # deliberate reuse
        net = trtnet.parse_onnx(
            model, shapes={"images": shape}, precision="int8", calibration=path, reuse_calibration=True
        )
        assert any(net.network.get_layer(i).type.name == "QUANTIZE" for i in range(net.network.num_layers))
    # The command line says the same, and takes --reuse-calibration.
    plan = tmp_path / "retrained.plan"
    build = ("build", retrained, "--shapes", "images:2x3x16x16", "--precision", "int8", "--calibration", path)
    r = trtnet_cli(*build, "-o", plan)
    assert r.returncode == 2 and "measured on other weights than these" in error_line(r), r.stderr
    assert "calibrate this model with these weights" in error_line(r)
    assert "--reuse-calibration" in error_line(r) and not plan.exists()
    r = trtnet_cli("summary", *build[1:], "--reuse-calibration")
    assert r.returncode == 0 and "(ONNX), int8; inputs images float32[2x3x16x16]" in r.stdout, r.stderr


@pytest.mark.parametrize("command", ["build", "summary", "verify"])
def test_reuse_calibration_without_a_calibration_is_refused(small, tmp_path, command):
    model = "resnet18" if command == "verify" else small
    output = ("-o", tmp_path / "out") if command == "build" else ()
    r = trtnet_cli(command, model, "--reuse-calibration", *output)
    said = r.stderr.splitlines()
    assert r.returncode == 2 and said[0] == "trtnet: error: --reuse-calibration needs the --calibration FILE it accepts"
    assert said[1:] == [f"trtnet: see `trtnet {command} --help`"], r.stderr
    assert not (tmp_path / "out").exists()


def test_a_float16_file_is_said_to_have_no_float32_layer_to_quantize(tmp_path):
    """int8/fp8 quantize float32 layers: a float16 file was said to have "no convolution", though it has one."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float16), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)],
        [w],
    )
    path = tmp_path / "half.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(CalibrationError, match=r"no float32 convolution or matrix product by constant weights"):
        calibrate_onnx(path, [{"x": np.ones((1, 3, 8, 8), np.float16)}])


class Tokens(torch.nn.Module):
    """Two Linears over [B, S, H] inputs, as a transformer's: TensorRT's parser broadcasts each weight by a
    shuffle that adds a leading 1 before the matrix multiply."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 32)
        self.fc2 = torch.nn.Linear(32, 8)

    def forward(self, images):
        return self.fc2(torch.relu(self.fc1(images)))


def test_a_linear_over_tokens_is_quantized(tmp_path):
    """Its weight reaches the matrix multiply through the parser's reshape: the placement did not follow it, and
    a transformer file had nothing to quantize ("no convolution or linear layer")."""
    path = tmp_path / "tokens.onnx"
    export_onnx(Tokens(), path, (2, 5, 16), {0: "batch"})
    rng = np.random.default_rng(0)
    cal = calibrate_onnx(
        path, [{"images": rng.standard_normal((4, 5, 16)).astype(np.float32)} for _ in range(2)], keep=()
    )
    assert sorted(cal.amax) == ["/fc1/MatMul", "/fc2/MatMul"]
    x = rng.standard_normal((2, 5, 16)).astype(np.float32)
    want = run_network(trtnet.parse_onnx(path, batch_size=2).network, {"images": x})["out"]
    net = trtnet.parse_onnx(path, batch_size=2, precision="int8", calibration=cal)
    network = net.network
    producer = {
        network.get_layer(i).get_output(0).name: network.get_layer(i).type.name for i in range(network.num_layers)
    }
    for name in ("/fc1/MatMul", "/fc2/MatMul"):  # input and weight both through a Q/DQ pair
        layer = next(network.get_layer(i) for i in range(network.num_layers) if network.get_layer(i).name == name)
        assert [producer[layer.get_input(j).name] for j in (0, 1)] == ["DEQUANTIZE", "DEQUANTIZE"], name
    cosine, rel = _cosine_rel(run_network(network, {"images": x})["out"], want)
    assert cosine >= 0.999 and 1e-4 < rel <= 0.05, (cosine, rel)  # quantized, and close
