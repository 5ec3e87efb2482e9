"""Which engines Triton may batch: every input's dim 0 takes the same batch 1..MAX and every output's dim 0 is
that batch (TensorRT's shape inference at build says so). Any other engine gets max_batch_size 0 and full dims,
no input reshaped."""

from __future__ import annotations

from pathlib import Path

import pytest

import trtnet
from trtnet import nn
from trtnet.errors import ExportError
from trtnet.export.triton import export_engine
from trtnet.weights import init_random

onnx = pytest.importorskip("onnx")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")

pytestmark = pytest.mark.filterwarnings("ignore:.*NOT a TensorRT plan:UserWarning")


def config_of(engine, repo: Path, **kwargs):
    done = export_engine(engine, repo, "m", **kwargs)
    config = text_format.Parse(done.config.read_text(), model_config_pb2.ModelConfig())
    tensors = [
        (t.name, list(t.dims), list(t.reshape.shape) if t.HasField("reshape") else None)
        for t in [*config.input, *config.output]
    ]
    return config.max_batch_size, tensors


def add_onnx(path: Path, y_shape: list[int]) -> Path:
    """x[N, 4] + y[y_shape]: y has no batch."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["out"])], "g", [x, y], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("y_shape", [[4], [1, 4]])
def test_an_input_without_the_batch_keeps_the_engine_unbatched(tmp_path, y_shape):
    """y[4] became dims [1] reshaped to a scalar with max_batch_size 32, and y[1, 4] became [4]: every input's
    dim 0 was taken for the batch. --no-dynamic-batching gave y dims [-1]."""
    from trtnet.onnx.parse import parse_onnx

    shapes = {"x": ((1, 4), (8, 4), (32, 4))}
    engine = trtnet.build(parse_onnx(add_onnx(tmp_path / "add.onnx", y_shape), shapes=shapes), cache=False)
    want = [("x", [-1, 4], None), ("y", y_shape, None), ("out", [-1, 4], None)]
    assert config_of(engine, tmp_path / "a") == (0, want)
    assert config_of(engine, tmp_path / "b", dynamic_batching=False) == (0, want)
    with pytest.raises(ExportError, match=r"dynamic batching asked for, but input 'y' \(shape \[.*\], dim 0 [14]\) "):
        export_engine(engine, tmp_path / "c", "m", dynamic_batching=True)


class TimeMajor(nn.Module):
    """ids [B, S] -> [S, B, 4]: dim 0 of the output is the sequence, not the batch."""

    def __init__(self) -> None:
        self.emb = nn.Embedding(10, 4)

    def inputs(self) -> list[nn.Input]:
        return [nn.Input("ids", ((2, 8, 16),), "int32", high=10)]

    def output_names(self, n: int) -> list[str]:
        return ["out"]

    def forward(self, ids):
        return self.emb(ids).transpose(0, 1)


class BatchMajor(TimeMajor):
    def forward(self, ids):
        return self.emb(ids)


class Similarity(TimeMajor):
    """[B, S] -> [B, B]: the batch first, but each row mixes every sample of the batch (CLIP's logits)."""

    def forward(self, ids):
        pooled = self.emb(ids).mean(1)
        return pooled @ pooled.transpose(0, 1)


@pytest.mark.parametrize("cls, batched", [(TimeMajor, False), (BatchMajor, True), (Similarity, False)])
def test_an_output_batches_only_when_its_dim_0_is_the_batch(tmp_path, cls, batched):
    """A time-major output [S, B, 4] was batched with dims [-1, 4]: any dynamic dim 0 passed for the batch."""
    model = cls()
    init_random(model)
    engine = trtnet.build(model, (1, 2, 4), precision="fp32", cache=False)
    if batched:
        assert config_of(engine, tmp_path) == (4, [("ids", [-1], None), ("out", [-1, 4], None)])
    else:
        out = [-1, -1] if cls is Similarity else [-1, -1, 4]
        assert config_of(engine, tmp_path) == (0, [("ids", [-1, -1], None), ("out", out, None)])
        with pytest.raises(
            ExportError, match=rf"output 'out' \(shape \{out}\) is not known to have the batch".replace(" ", " ")
        ):
            export_engine(engine, tmp_path / "c", "m", dynamic_batching=True)


def test_a_plan_cached_before_outputs_recorded_their_batch_still_batches(tmp_path):
    """A cache hit returned the old sidecar's outputs (no batch record), so a cached resnet exported unbatched."""
    import json

    model = BatchMajor()
    init_random(model)
    trtnet.build(model, (1, 2, 4), precision="fp32", cache_dir=tmp_path / "cache")
    sidecars = [p for p in (tmp_path / "cache").rglob("*.json") if '"outputs"' in p.read_text()]
    assert sidecars
    for p in sidecars:  # as builds before this record wrote them
        meta = json.loads(p.read_text())
        meta["outputs"] = [dict(o, min_batch=0, max_batch=0) for o in meta["outputs"]]
        p.write_text(json.dumps(meta))
    engine = trtnet.build(model, (1, 2, 4), precision="fp32", cache_dir=tmp_path / "cache")
    assert config_of(engine, tmp_path / "repo")[0] == 4
