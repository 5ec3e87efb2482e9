"""The ONNX route end to end, no GPU: any dynamic dim sized by trtexec's flags, fp16/bf16 of a parsed network
against its fp32, and `trtnet check` as a CPU Polygraphy (shapes, tolerances, the float64 arbiter, saved arrays)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import trtnet
from tests.helpers import error_line, export_onnx, trtnet_cli
from trtnet.interpreter import run_network
from trtnet.onnx.check import check_onnx

torch = pytest.importorskip("torch", reason="the ONNX files are exported from PyTorch modules")
onnx = pytest.importorskip("onnx", reason="torch.onnx.export and onnx.helper write the files")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the other side of check's comparison")
from onnx import TensorProto, helper  # noqa: E402


class Detector(torch.nn.Module):
    """A detector's shape: a strided backbone, an upsampled feature concatenated with a finer one, a sigmoid head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.down = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.head = torch.nn.Conv2d(24, 6, 1)

    def forward(self, images):
        fine = torch.relu(self.stem(images))
        coarse = torch.relu(self.down(fine))
        return torch.sigmoid(self.head(torch.cat([fine, self.up(coarse)], 1)))


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "det.onnx"
    torch.manual_seed(0)
    export_onnx(Detector(), path, (1, 3, 32, 32), {0: "batch", 2: "height", 3: "width"})
    return path


def test_a_detector_builds_at_a_profile_and_its_sidecar_shows_it(detector, tmp_path):
    plan = tmp_path / "det.plan"
    r = trtnet_cli(
        "build", detector, "--precision", "fp16", "-o", plan,
        "--min-shapes", "images:1x3x32x32", "--opt-shapes", "images:2x3x64x64", "--max-shapes", "images:4x3x128x96",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "images:1x3x32x32..2x3x64x64..4x3x128x96" in r.stdout
    spec = json.loads((tmp_path / "det.plan.json").read_text())["inputs"][0]
    assert (spec["name"], spec["shape"], spec["min_shape"], spec["max_shape"]) == (
        "images", [2, 3, 64, 64], [1, 3, 32, 32], [4, 3, 128, 96]
    )  # fmt: skip
    assert (spec["min_batch"], spec["max_batch"]) == (1, 4)


def test_fixed_shapes_size_every_dynamic_dim(detector):
    net = trtnet.parse_onnx(detector, shapes={"images": (2, 3, 48, 64)})
    assert net.inputs[0].shape == (2, 3, 48, 64) and net.outputs[0].shape == (2, 6, 24, 32)
    x = np.random.default_rng(0).standard_normal((2, 3, 48, 64)).astype(np.float32)
    got = run_network(net.network, {"images": x})["out"]
    want = ort.InferenceSession(str(detector), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    assert np.abs(got - want).max() <= 1e-5


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((), r"det.onnx: input 'images' has dynamic dims \[batch, 3, height, width\]: give its shape with "
         r"--shapes images:Nx3xNxN \(build, summary and export-triton take --min-shapes/--opt-shapes/--max-shapes"),
        (("--shapes", "images:1x3x32"), r"input 'images' is declared \[batch, 3, height, width\]; 1x3x32 does not fit"),
        (("--shapes", "images:1x4x32x32"), r"1x4x32x32 does not fit it \(only its dynamic dims can be chosen\)"),
        (("--shapes", "image:1x3x32x32"), r"shapes name \['image'\], which are not inputs; the network's inputs are "
         r"\['images'\]"),
        (("--shapes", "images:1x3xAx32"), r"--shapes 'images:1x3xAx32': expected NAME:DIMS"),
        (("--min-shapes", "images:1x3x32x32"), r"--min-shapes, --opt-shapes and --max-shapes go together"),
        (("--min-shapes", "images:2x3x32x32", "--opt-shapes", "images:1x3x32x32", "--max-shapes", "images:4x3x32x32"),
         r"the shapes must grow dim by dim, min <= opt <= max"),
        (("--shapes", "images:1x3x32x32", "--weights", "w.safetensors"), r"--weights is for trtnet's models"),
        (("--shapes", "images:1x3x32x32", "--precision", "int8"), r"--precision int8 needs --calibration FILE"),
    ],
)  # fmt: skip
def test_bad_shapes_and_options_are_one_line_errors(detector, tmp_path, args, pattern):
    r = trtnet_cli("build", detector, "-o", tmp_path / "x.plan", *args)
    assert r.returncode == 2
    assert re.search(pattern, error_line(r)), error_line(r)
    assert not (tmp_path / "x.plan").exists()


def test_shape_flags_are_refused_for_a_zoo_model():
    r = trtnet_cli("summary", "resnet18", "--shapes", "x:1x3x224x224")
    assert r.returncode == 2 and "--shapes size an ONNX file's inputs; a zoo or DSL model takes --batch" in error_line(
        r
    )


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    torchvision = pytest.importorskip("torchvision")
    path = tmp_path_factory.mktemp("onnx") / "resnet18.onnx"
    torch.manual_seed(0)
    export_onnx(torchvision.models.resnet18(weights=None), path, (2, 3, 64, 64), {0: "batch"})
    return path


def _cosine_rel(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), float(np.abs(a - b).max() / np.abs(b).max())


# Measured on resnet18 (random weights, 2x3x64x64, seed 0): fp16 1-cos 2.6e-7, rel error 6.5e-4; bf16 1-cos 1.7e-5,
# rel error 6.6e-3. The bounds leave about a factor 5-10 for other seeds and numpy versions.
REDUCED_BOUNDS = {"fp16": (0.99999, 5e-3), "bf16": (0.9999, 3e-2)}


def test_fp16_and_bf16_of_an_onnx_classifier_stay_within_measured_bounds_of_fp32(resnet18):
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    fp32 = trtnet.parse_onnx(resnet18, batch_size=2)
    want = run_network(fp32.network, {"images": x})["out"]
    errors = {}
    for precision, (min_cosine, max_rel) in REDUCED_BOUNDS.items():
        net = trtnet.parse_onnx(resnet18, batch_size=2, precision=precision)
        trt = trtnet.backend.get_trt()
        low = trt.float16 if precision == "fp16" else trt.bfloat16
        kinds = {net.network.get_layer(i).type.name: net.network.get_layer(i).get_output(0).dtype
                 for i in range(net.network.num_layers)}  # fmt: skip
        assert kinds["CONVOLUTION"] == low and kinds["MATRIX_MULTIPLY"] == low
        assert [s.dtype for s in net.inputs + net.outputs] == ["float32", "float32"]  # I/O as the file declares
        got = run_network(net.network, {"images": x})["out"]
        assert got.dtype == np.float32
        cosine, rel = _cosine_rel(got, want)
        assert cosine >= min_cosine and 0 < rel <= max_rel, (precision, cosine, rel)
        errors[precision] = rel
    assert errors["bf16"] > errors["fp16"]  # bf16 keeps 8 significant bits to fp16's 11


def test_layer_norm_and_softmax_stay_fp32_under_fp16(tmp_path):
    path = tmp_path / "ln.onnx"
    scale = helper.make_tensor("s", TensorProto.FLOAT, [8], np.linspace(0.5, 1.5, 8, dtype=np.float32))
    bias = helper.make_tensor("b", TensorProto.FLOAT, [8], np.zeros(8, np.float32))
    graph = helper.make_graph(
        [helper.make_node("LayerNormalization", ["x", "s", "b"], ["n"], axis=-1),
         helper.make_node("Softmax", ["n"], ["y"], axis=-1)],
        "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], [scale, bias],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    net = trtnet.parse_onnx(path, precision="fp16")
    trt = trtnet.backend.get_trt()
    types = {net.network.get_layer(i).type.name: net.network.get_layer(i).get_output(0).dtype
             for i in range(net.network.num_layers) if net.network.get_layer(i).type.name != "CAST"}  # fmt: skip
    assert types["NORMALIZATION"] == trt.float32 and types["SOFTMAX"] == trt.float32


def test_check_with_shapes_agrees_with_onnxruntime_on_a_torch_export(detector):
    r = trtnet_cli("check", detector, "--shapes", "images:2x3x40x56", "--layerwise")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "  compute type float32; inputs images[2x3x40x56]" in r.stdout
    assert "0 of 6720 beyond atol 1e-04 + rtol 1e-04*|ref| ok" in r.stdout and r.stdout.endswith("within tolerance\n")


def test_shapes_too_large_for_the_machine_are_bad_input_not_a_bug(tmp_path):
    # 1e5 x 1e5 x 16 random floats (1.3 TB): numpy refuses the allocation. That was "internal error", exit 3.
    _helper_model(
        tmp_path / "relu.onnx",
        [helper.make_node("Relu", ["tokens"], ["y"])],
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "seq", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 16])],
    )
    r = trtnet_cli("check", tmp_path / "relu.onnx", "--shapes", "tokens:100000x100000x16")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert re.search(r"out of memory: Unable to allocate .* \(smaller shapes or batches need less\)", error_line(r))
    r = trtnet_cli("check", tmp_path / "relu.onnx", "--shapes", "tokens:2147483647x2147483647x16")  # past numpy
    assert r.returncode == 2 and "of shape [2147483647, 2147483647, 16] is too large for any machine" in error_line(r)


def test_batch_sizes_an_onnx_file_whose_only_dynamic_dim_is_the_first(tmp_path):
    # --batch was taken and silently ignored for an ONNX file (the input stayed unsized: an error).
    _relu_model(tmp_path / "relu.onnx", ["batch", 8])
    r = trtnet_cli("summary", tmp_path / "relu.onnx", "--batch", "3")
    assert r.returncode == 0 and "inputs x float32[3x8]" in r.stdout, r.stdout + r.stderr
    r = trtnet_cli("build", tmp_path / "relu.onnx", "--batch", "1:2:4", "-o", tmp_path / "relu.plan")
    assert r.returncode == 0, r.stderr
    spec = json.loads((tmp_path / "relu.plan.json").read_text())["inputs"][0]
    assert (spec["min_batch"], spec["shape"], spec["max_batch"]) == (1, [2, 8], 4)
    r = trtnet_cli("summary", tmp_path / "relu.onnx")  # not given: still asked for
    assert r.returncode == 2 and "has dynamic dims" in error_line(r)


def test_no_cache_builds_an_onnx_file_and_stores_nothing(tmp_path):
    """--no-cache was ignored on the ONNX route: the second build was "from the engine cache"."""
    _relu_model(tmp_path / "relu.onnx", [2, 8])
    cache = tmp_path / "cache"
    for _ in range(2):
        r = trtnet_cli(
            "build", tmp_path / "relu.onnx", "--no-cache", "-o", tmp_path / "r.plan", TRTNET_CACHE_DIR=str(cache)
        )
        assert r.returncode == 0 and "built in" in r.stdout and "engine cache" not in r.stdout, r.stdout + r.stderr
    assert not cache.exists() or not any(cache.rglob("*.plan"))


def test_build_makes_the_output_folder_first_or_says_why_it_cannot(tmp_path):
    # As export-weights always has: build -o into a missing folder built the engine, then failed to save it.
    _relu_model(tmp_path / "relu.onnx", [1, 8])
    r = trtnet_cli("build", tmp_path / "relu.onnx", "--precision", "fp32", "-o", tmp_path / "plans" / "relu.plan")
    assert r.returncode == 0 and (tmp_path / "plans" / "relu.plan").is_file(), r.stderr
    (tmp_path / "taken").write_text("a file where the folder would go")
    r = trtnet_cli("build", tmp_path / "relu.onnx", "-o", tmp_path / "taken" / "relu.plan")
    assert r.returncode == 2 and "cannot write the plan: cannot make the folder" in error_line(r), r.stderr


def test_build_refuses_to_write_the_plan_over_its_model(tmp_path):
    # `-o relu.onnx` built the engine and replaced the model with it (exit 0).
    model = tmp_path / "relu.onnx"
    _relu_model(model, [1, 8])
    before = model.read_bytes()
    for out in (model, tmp_path / "sub" / ".." / "relu.onnx"):
        r = trtnet_cli("build", model, "-o", out)
        assert r.returncode == 2 and "cannot write the plan there: it is the model too" in error_line(r), r.stderr
    r = trtnet_cli("build", model, "-o", tmp_path / "relu.onnx.plan")
    assert r.returncode == 0 and model.read_bytes() == before


def test_build_and_calibrate_refuse_to_write_over_the_model_s_external_data(tmp_path):
    """-o data/w.bin replaced the weights stored beside the model with the plan (exit 0), and check then compared
    two runs of the same garbage."""
    from onnx import numpy_helper

    model = tmp_path / "mm.onnx"
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.ones((4, 4), np.float32), "w")],
    )
    (tmp_path / "data").mkdir()
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
        str(model),
        save_as_external_data=True,
        location="data/w.bin",
        size_threshold=0,
    )
    before = (tmp_path / "data" / "w.bin").read_bytes()
    np.savez(tmp_path / "d.npz", x=np.ones((2, 4), np.float32))
    for args in (["build", model], ["calibrate", model, "--data", tmp_path / "d.npz"]):
        r = trtnet_cli(*args, "-o", tmp_path / "data" / "w.bin")
        assert r.returncode == 2 and "it is the model's external data (data/w.bin) too" in error_line(r), r.stderr
    assert (tmp_path / "data" / "w.bin").read_bytes() == before
    # A location that is a link (a Hugging Face cache's blob): neither the link nor the blob may be written over.
    (tmp_path / "store").mkdir()
    (tmp_path / "data" / "w.bin").rename(tmp_path / "store" / "blob")
    (tmp_path / "data" / "w.bin").symlink_to(tmp_path / "store" / "blob")
    for target in (tmp_path / "data" / "w.bin", tmp_path / "store" / "blob"):
        r = trtnet_cli("build", model, "-o", target)
        assert r.returncode == 2 and "it is the model's external data (data/w.bin) too" in error_line(r), r.stderr
    assert (tmp_path / "store" / "blob").read_bytes() == before
    # A name the model's bytes merely hold (its output y) is not its external data: the plan may go there.
    r = trtnet_cli("build", model, "-o", tmp_path / "y")
    assert r.returncode == 0 and (tmp_path / "y").is_file(), r.stderr


def _helper_model(path, nodes, inputs, outputs, inits=(), opset: int = 18) -> None:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))


def _relu_model(path, dims) -> None:
    """y = relu(x), both float32 of `dims` (ints, or names for dynamic dims)."""
    _helper_model(
        path,
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )


def test_check_agrees_with_onnxruntime_on_an_onnx_helper_graph(tmp_path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [16, 4], np.random.default_rng(1).standard_normal(64).tolist())
    _helper_model(
        tmp_path / "mlp.onnx",
        [helper.make_node("MatMul", ["tokens", "w"], ["h"]), helper.make_node("Gelu", ["h"], ["y"])],
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "seq", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])],
        [w],
        opset=20,
    )
    report = check_onnx(tmp_path / "mlp.onnx", shapes={"tokens": (3, 7, 16)}, rtol={"y": 1e-3})
    assert report.ok and report.compared and report.outputs[0].agreement.size == 84
    assert (report.outputs[0].atol, report.outputs[0].rtol) == (1e-4, 1e-3)


def _reduction(tmp_path):
    """A sum where float32 accumulation loses the small terms between two large ones: onnxruntime's float32 kernel
    does; the interpreter accumulates in float64, as onnx.reference's float64 evaluation does."""
    _helper_model(
        tmp_path / "sum.onnx",
        [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4099])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    x = np.ones((1, 4099), np.float32)
    x[0, 0], x[0, -1] = 1e8, -1e8
    np.savez(tmp_path / "in.npz", x=x)
    return tmp_path / "sum.onnx", tmp_path / "in.npz"


def test_the_arbiter_clears_a_network_where_onnxruntime_is_the_less_accurate_side(tmp_path):
    model, inputs = _reduction(tmp_path)
    report = check_onnx(model, inputs)
    o = report.outputs[0]
    assert not o.agreement.ok  # the two disagree beyond tolerance...
    assert o.arbitration.departs == "reference" and o.arbitration.interpreter.ok and not o.arbitration.reference.ok
    assert report.ok  # ...and the check does not fail the network for onnxruntime's rounding
    assert report.lines()[3].endswith("onnxruntime departs")
    unjudged = check_onnx(model, inputs, arbitrate=False)
    assert not unjudged.ok


def test_outputs_saved_elsewhere_are_compared_and_judged(tmp_path):
    model, inputs = _reduction(tmp_path)
    assert trtnet_cli("check", model, "--inputs", inputs, "--save-outputs", tmp_path / "mine.npz").returncode == 0
    saved = np.load(tmp_path / "mine.npz")["y"]
    assert saved == np.float32(4097)
    np.savez(tmp_path / "other.npz", y=np.float32(4097.5))  # another runtime (a GPU engine), off by 0.5
    r = trtnet_cli("check", model, "--inputs", inputs, "--load-outputs", tmp_path / "other.npz")
    # Loaded outputs are on trial too: beyond tolerance fails, and the arbiter says which side departs (it passed,
    # "other.npz departs", so that an engine computing zeros passed the check that was to catch it).
    assert r.returncode == 1 and "against other.npz" in r.stdout and "other.npz departs" in r.stdout
    assert r.stdout.splitlines()[-1] == "NOT within tolerance"
    r = trtnet_cli("check", model, "--inputs", inputs, "--load-outputs", tmp_path / "other.npz", "--atol", "1")
    assert r.returncode == 0 and "0 of 1 beyond atol 1e+00" in r.stdout


def test_fp16_compute_with_float32_io_is_judged_by_fp16_tolerances(tmp_path):
    """A `.half()` model exported with float32 I/O: the tolerance follows the compute type, not the outputs'."""
    w = helper.make_tensor(
        "w",
        TensorProto.FLOAT16,
        [32, 8],
        np.random.default_rng(2).standard_normal(256).astype(np.float16).tobytes(),
        raw=True,
    )  # noqa: E501
    _helper_model(
        tmp_path / "half.onnx",
        [helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16), helper.make_node("MatMul", ["xh", "w"], ["h"]),
         helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])], [w],
    )  # fmt: skip
    report = check_onnx(tmp_path / "half.onnx")
    assert report.compute == "float16" and (report.outputs[0].atol, report.outputs[0].rtol) == (1e-2, 1e-2)
    assert report.ok


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("--rtol", "z:1e-3"), r"--rtol names \['z'\], which are not outputs; the network's outputs are \['y'\]"),
        (("--atol", "-1"), r"--atol '-1': expected a number >= 0"),
        (("--rtol", "1e-3", "1e-2"), r"--rtol gives the default twice"),
        (("--load-outputs", "absent.npz"), r"absent.npz: no such outputs file"),
        (("--shapes", "x:1x4099,q:1"), r"shapes name \['q'\], which are not inputs"),
        (("--shapes", "x:2x4099"), r"--shapes says 2x4099, the inputs hold 1x4099|does not fit"),
    ],
)
def test_bad_check_options_are_one_line_errors(tmp_path, args, pattern):
    model, inputs = _reduction(tmp_path)
    r = trtnet_cli("check", model, "--inputs", inputs, *args, cwd=tmp_path)
    assert r.returncode == 2
    assert re.search(pattern, error_line(r)), error_line(r)


def test_random_integer_inputs_that_break_the_model_ask_for_real_ones(tmp_path):
    table = helper.make_tensor("t", TensorProto.FLOAT, [2, 3], np.arange(6, dtype=np.float32).tolist())
    _helper_model(
        tmp_path / "embed.onnx",
        [helper.make_node("Add", ["ids", "two"], ["i"]), helper.make_node("Gather", ["t", "i"], ["y"])],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
        [table, helper.make_tensor("two", TensorProto.INT64, [1], [2])],
    )
    r = trtnet_cli("check", tmp_path / "embed.onnx")
    assert r.returncode == 2
    assert "the network failed on random integer input(s) ['ids']" in error_line(r)
    assert error_line(r).endswith("give values in the range the model expects with --inputs FILE.npz")


def test_options_that_would_be_ignored_are_refused(tmp_path, capsys):
    """Each was accepted and silently had no effect: --batch beside --shapes for every input (built the shapes'
    batch), --percentile with --method max (wrote a max calibration), --atol ':0.1' (read as every output's), and
    export-triton --name "" (the default name)."""
    from trtnet.cli import main

    model = tmp_path / "relu.onnx"
    _relu_model(model, ["N", 4])
    np.savez(tmp_path / "d.npz", x=np.ones((2, 4), np.float32))
    cases = [
        (["build", model, "--batch", "4", "--shapes", "x:2x4"], "batch_size 4 sizes no input: shapes gives every one"),
        (["calibrate", model, "--data", tmp_path / "d.npz", "--percentile", "50"], "is for --method percentile"),
        (["calibrate", "resnet18", "--data", tmp_path / "d.npz", "--percentile", "50"], "is for --method percentile"),
        (["check", model, "--shapes", "x:2x4", "--atol=:0.1"], "--atol ':0.1': the output's name before ':' is empty"),
        (["export-triton", "--plan", tmp_path / "p.plan", "--repo", tmp_path / "r", "--name", ""], "expected a name"),
    ]
    for args, said in cases:
        assert main([str(a) for a in args]) == 2, args
        assert said in capsys.readouterr().err, args
    assert not (tmp_path / "relu.plan").exists() and not list(tmp_path.glob("*.json")) and not (tmp_path / "r").exists()
    assert main(["build", str(model), "--batch", "4", "-o", str(tmp_path / "relu.plan")]) == 0
