"""The ONNX route in the library: an ONNX file exported from a real PyTorch module, parsed by the backend's
OnnxParser into the `Network` that build, reference and summarize take."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
import trtnet.builder.build
from tests.helpers import trtnet_cli
from trtnet.parity import rel_error
from trtnet.summary import summarize
from trtnet.target import target

torch = pytest.importorskip("torch", reason="the ONNX file is exported from a PyTorch module")
pytest.importorskip("onnx", reason="torch.onnx.export writes the file through the onnx package")


class Small(torch.nn.Module):
    """A convolution, BatchNorm, ReLU, pooling and a linear head: layers the parser maps one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))


def _export(path, batch: int = 2, dynamic: bool = False):
    torch.manual_seed(0)
    model = Small().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(batch, 3, 16, 16)
    axes = {"x": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        opset_version=18,
        dynamo=False,
        dynamic_axes=axes,
    )
    return model


def test_parsed_network_runs_in_the_interpreter_like_the_source(tmp_path):
    model = _export(tmp_path / "small.onnx")
    net = trtnet.parse_onnx(tmp_path / "small.onnx")
    assert [(s.name, s.shape, s.dtype) for s in net.inputs] == [("x", (2, 3, 16, 16), "float32")]
    assert [(s.name, s.shape) for s in net.outputs] == [("logits", (2, 5))]
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    (got,) = trtnet.reference(net, x)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert rel_error(got, want) <= 1e-5
    table = summarize(net)
    assert any(r.type == "CONVOLUTION" for r in table.rows) and table.params > 3 * 8 * 9


def test_parsed_network_builds_through_the_same_path(tmp_path, monkeypatch):
    """trtnet.build takes the parsed Network: same build_network (GPU targeting), same engine cache."""
    _export(tmp_path / "small.onnx")
    built: list[str] = []
    real = trtnet.builder.build.build_network
    monkeypatch.setattr(
        trtnet.builder.build, "build_network", lambda net, **kw: built.append(net.label) or real(net, **kw)
    )
    first = trtnet.build(trtnet.parse_onnx(tmp_path / "small.onnx"), cache_dir=tmp_path / "cache")
    again = trtnet.build(trtnet.parse_onnx(tmp_path / "small.onnx"), cache_dir=tmp_path / "cache")
    assert built == ["small.onnx (ONNX)"] and again.plan == first.plan
    assert first.inputs[0].shape == (2, 3, 16, 16) and first.num_layers >= 3 and first.precision == ""
    assert first.target == target()  # built for this machine's GPU where there is one, as trtnet's own engines


def test_other_weights_are_another_cache_entry(tmp_path):
    """The parser reports no weight values: the file's bytes stand for them in the key."""
    _export(tmp_path / "a.onnx")
    torch.manual_seed(5)
    other = Small().eval()
    torch.onnx.export(
        other,
        (torch.randn(2, 3, 16, 16),),
        str(tmp_path / "b.onnx"),
        input_names=["x"],
        output_names=["logits"],
        opset_version=18,
        dynamo=False,
    )
    a = trtnet.build(trtnet.parse_onnx(tmp_path / "a.onnx"), cache_dir=tmp_path / "cache")
    b = trtnet.build(trtnet.parse_onnx(tmp_path / "b.onnx"), cache_dir=tmp_path / "cache")
    assert a.plan != b.plan and len(list((tmp_path / "cache").glob("*.plan"))) == 2


def test_dynamic_batch_takes_batch_size(tmp_path):
    _export(tmp_path / "dyn.onnx", dynamic=True)
    with pytest.raises(
        trtnet.NetworkError,
        match=r"dyn.onnx: input 'x' has dynamic dims \[batch, 3, 16, 16\]: give its shape with "
        r"--shapes x:Nx3x16x16 \(build, summary and export-triton take --min-shapes/--opt-shapes/--max-shapes",
    ):
        trtnet.parse_onnx(tmp_path / "dyn.onnx")
    net = trtnet.parse_onnx(tmp_path / "dyn.onnx", batch_size=(1, 2, 4))
    assert (net.inputs[0].shape, net.inputs[0].min_batch, net.inputs[0].max_batch) == ((2, 3, 16, 16), 1, 4)
    fixed = trtnet.parse_onnx(tmp_path / "dyn.onnx", batch_size=3)
    assert fixed.outputs[0].shape == (3, 5)
    engine = trtnet.build(net, cache=False)
    assert engine.dynamic and engine.inputs[0].allowed() == "[1..4, 3, 16, 16]"


def test_bad_files_are_network_errors_naming_them(tmp_path):
    with pytest.raises(trtnet.NetworkError, match=r"missing.onnx: cannot read the ONNX file"):
        trtnet.parse_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(trtnet.NetworkError, match=r"junk.onnx: TensorRT's ONNX parser refused it: "):
        trtnet.parse_onnx(tmp_path / "junk.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(trtnet.NetworkError, match=r"empty.onnx: the ONNX file is empty$"):
        trtnet.parse_onnx(tmp_path / "empty.onnx")
    # A weights file given the wrong suffix: protobuf reads it as a model of nothing, which the parser accepts
    # (summary printed an empty table and exited 0; build showed TensorRT's own error).
    trtnet.save_safetensors({"w": np.ones(3, np.float32)}, tmp_path / "weights.onnx")
    with pytest.raises(
        trtnet.NetworkError,
        match=r"weights.onnx: TensorRT's ONNX parser found no graph outputs in it: not an ONNX model",
    ):
        trtnet.parse_onnx(tmp_path / "weights.onnx")
    r = trtnet_cli("summary", tmp_path / "weights.onnx")
    assert r.returncode == 2 and "found no graph outputs" in r.stderr and not r.stdout, r.stdout + r.stderr


def test_a_parsed_network_takes_no_emission_options(tmp_path):
    _export(tmp_path / "small.onnx")
    net = trtnet.parse_onnx(tmp_path / "small.onnx")
    with pytest.raises(trtnet.NetworkError, match=r"build\(Network\): the network's shapes and types are fixed"):
        trtnet.build(net, precision="fp16")
    with pytest.raises(trtnet.NetworkError, match=r"the network 'small.onnx \(ONNX\)' takes 1 inputs \(x\), got 2"):
        trtnet.reference(net, np.zeros((2, 3, 16, 16), np.float32), np.zeros(1, np.float32))


def test_parse_onnx_of_no_path_is_a_network_error_naming_it():
    """parse_onnx(5) was a TypeError from pathlib."""
    with pytest.raises(trtnet.NetworkError, match=r"^parse_onnx: path = 5 is not allowed: expected a path"):
        trtnet.parse_onnx(5)
