"""Real ONNX files to deployment, no GPU: ultralytics' YOLOv8n (from its yaml, random weights) exported with a
dynamic batch, height and width builds at a profile from the command line, and `export-triton` takes an ONNX file
into a Triton repository whose config Triton's own `ModelConfig` schema parses."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import trtnet
from tests.helpers import allow_rtx, trtnet_cli
from trtnet.interpreter import run_network

torch = pytest.importorskip("torch", reason="the ONNX files are exported from PyTorch modules")
pytest.importorskip("onnx", reason="the exporters write ONNX files")
model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (the test extra) ships Triton's ModelConfig schema"
)
text_format = pytest.importorskip("google.protobuf.text_format", reason="protobuf comes with tritonclient[grpc]")
pytestmark = pytest.mark.filterwarnings("ignore:.*NOT a TensorRT plan:UserWarning")


@pytest.fixture(scope="module")
def yolov8n(tmp_path_factory):
    """YOLOv8n as ultralytics exports it for deployment: dynamic batch, height and width (opset 17)."""
    folder = tmp_path_factory.mktemp("yolo")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder))  # its settings file, which it writes on import
    ultralytics = pytest.importorskip("ultralytics", reason="ultralytics builds YOLOv8n from its yaml")
    cwd = os.getcwd()
    os.chdir(folder)  # ultralytics writes beside the model it was given
    try:
        torch.manual_seed(0)
        path = ultralytics.YOLO("yolov8n.yaml").export(format="onnx", dynamic=True, imgsz=64, opset=17, simplify=False)
    finally:
        os.chdir(cwd)
    return folder / os.path.basename(path)


def test_yolov8n_with_dynamic_batch_height_and_width_builds_at_a_profile(yolov8n, tmp_path):
    plan = tmp_path / "yolov8n.plan"
    r = trtnet_cli(
        "build", yolov8n, "--precision", "fp16", "-o", plan,
        "--min-shapes", "images:1x3x64x64", "--opt-shapes", "images:2x3x128x96", "--max-shapes", "images:4x3x256x320",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "images:1x3x64x64..2x3x128x96..4x3x256x320" in r.stdout
    spec = json.loads((tmp_path / "yolov8n.plan.json").read_text())["inputs"][0]
    assert (spec["shape"], spec["min_shape"], spec["max_shape"]) == ([2, 3, 128, 96], [1, 3, 64, 64], [4, 3, 256, 320])
    # Without sizes the file's own dim names say what to give.
    r = trtnet_cli("build", yolov8n, "-o", tmp_path / "none.plan")
    assert r.returncode == 2 and "input 'images' has dynamic dims [batch, 3, height, width]" in r.stderr


def test_yolov8n_runs_in_the_interpreter_at_two_sizes_as_onnxruntime_does(yolov8n):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(yolov8n), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 96, 64)]:
        x = np.random.default_rng(0).random(shape, np.float32)
        net = trtnet.parse_onnx(yolov8n, shapes={"images": shape})
        got = run_network(net.network, {"images": x})["output0"]
        (want,) = session.run(None, {"images": x})
        anchors = (
            (shape[2] // 8) * (shape[3] // 8)
            + (shape[2] // 16) * (shape[3] // 16)
            + (shape[2] // 32) * (shape[3] // 32)
        )
        assert got.shape == want.shape == (shape[0], 84, anchors)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)  # boxes in pixels, class scores in [0, 1]


class Classifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, images):
        return self.fc(torch.relu(self.conv(images)).mean((2, 3)))


def test_export_triton_takes_an_onnx_file(tmp_path):
    path = tmp_path / "cls.onnx"
    torch.manual_seed(0)
    with torch.no_grad():
        torch.onnx.export(
            Classifier().eval(), (torch.randn(2, 3, 32, 32),), str(path), input_names=["images"],
            output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    repo = tmp_path / "repo"
    r = trtnet_cli(
        "export-triton", path, "--repo", repo, "--precision", "fp16", *allow_rtx(),
        "--min-shapes", "images:1x3x32x32", "--opt-shapes", "images:4x3x32x32", "--max-shapes", "images:8x3x32x32",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    config = text_format.Parse((repo / "cls" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    sidecar = json.loads((repo / "cls" / "1" / "model.plan.json").read_text())
    assert config.name == "cls" and config.platform == "tensorrt_plan" and config.max_batch_size == 8
    assert [(t.name, list(t.dims), t.data_type) for t in config.input] == [
        ("images", [3, 32, 32], model_config_pb2.TYPE_FP32)
    ]
    assert [(t.name, list(t.dims)) for t in config.output] == [("logits", [10])]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert sidecar["precision"] == "fp16" and sidecar["inputs"][0]["max_batch"] == 8
    assert {k: v.string_value for k, v in config.parameters.items()}["trtnet_precision"] == "fp16"
