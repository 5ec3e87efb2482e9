"""The metadata against the engine it came with (`trtnet.runtime.sidecar.disagreement`): every check before a run
rests on the sidecar's specs, JSON anyone may edit, so an engine loaded on a GPU must say the same."""

from __future__ import annotations

import dataclasses
import json

import pytest

import trtnet
from tests.runtime_models import two_inputs
from trtnet.errors import EngineError
from trtnet.runtime.engine import Engine
from trtnet.runtime.plan import sidecar_path
from trtnet.runtime.sidecar import EngineTensor, disagreement


@pytest.fixture(scope="module")
def specs():
    network = trtnet.emit(two_inputs(), (1, 2, 4))
    return network.inputs, network.outputs


def declared(**edits) -> list[EngineTensor]:
    """What TensorRT's engine of two_inputs at batch (1, 2, 4) declares, with `edits` (name -> fields)."""
    profile = ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))
    tensors = {
        "x": EngineTensor("x", True, "float32", (-1, 3, 8, 8), profile),
        "y": EngineTensor("y", True, "float32", (-1, 4, 8, 8), tuple((b, 4, 8, 8) for b in (1, 2, 4))),
        "z": EngineTensor("z", False, "float32", (-1, 4, 8, 8)),
    }
    return [dataclasses.replace(t, **edits.get(name, {})) for name, t in tensors.items()]


def test_the_metadata_trtnet_writes_describes_its_engine(specs):
    assert disagreement(*specs, declared()) is None


@pytest.mark.parametrize(
    "edits, message",
    [
        ({"x": {"name": "nope"}}, "the engine has input 'nope', which the metadata does not list"),
        ({"z": {"dtype": "int8"}}, "output 'z' is int8 in the engine, float32 in the metadata"),
        ({"y": {"shape": (-1, 5, 8, 8)}}, "input 'y' has shape [-1, 5, 8, 8] in the engine, [2, 4, 8, 8] in the"),
        ({"z": {"shape": (-1, 4, 8)}}, "output 'z' has shape [-1, 4, 8] in the engine, [-1, 4, 8, 8] in the"),
        (
            {"x": {"profile": ((1, 3, 8, 8), (2, 3, 8, 8), (1000, 3, 8, 8))}},
            "input 'x' takes [1, 3, 8, 8] to [1000, 3, 8, 8] (best at [2, 3, 8, 8]) in the engine, [1, 3, 8, 8] to",
        ),
        ({"z": {"is_input": True, "profile": ((1, 4, 8, 8),) * 3}}, "the engine has input 'z', which the metadata"),
    ],
)
def test_each_difference_is_named(specs, edits, message):
    assert message in disagreement(*specs, declared(**edits))


def test_metadata_edited_by_hand_is_named(specs):
    inputs, outputs = specs
    bigger = [dataclasses.replace(inputs[0], max_batch=1000), inputs[1]]
    assert "input 'x' takes [1, 3, 8, 8] to [4, 3, 8, 8]" in disagreement(bigger, outputs, declared())
    renamed = [dataclasses.replace(outputs[0], name="w")]
    assert disagreement(inputs, renamed, declared()) == "the engine has output 'z', which the metadata does not list"


def test_a_static_input_has_no_profile_to_compare(specs):
    network = trtnet.emit(two_inputs(), 2)
    tensors = [
        EngineTensor("x", True, "float32", (2, 3, 8, 8)),
        EngineTensor("y", True, "float32", (2, 4, 8, 8)),
        EngineTensor("z", False, "float32", (2, 4, 8, 8)),
    ]
    assert disagreement(network.inputs, network.outputs, tensors) is None
    assert "input 'x' has shape [2, 3, 8, 8] in the engine, [4, 3, 8, 8]" in disagreement(
        [dataclasses.replace(network.inputs[0], shape=(4, 3, 8, 8), min_batch=4, max_batch=4), network.inputs[1]],
        network.outputs,
        tensors,
    )


@pytest.mark.gpu
def test_an_engine_refuses_metadata_that_does_not_describe_it(tmp_path):
    import numpy as np

    engine = trtnet.build(two_inputs(), batch_size=(1, 2, 4), precision="fp32", cache=False)
    path = engine.save(tmp_path / "tiny.plan")
    meta = json.loads(sidecar_path(path).read_text())
    assert Engine.load(path)(*(np.zeros((2, *s.shape[1:]), np.float32) for s in engine.inputs))  # as saved: runs
    meta["inputs"][0]["max_batch"] = 1000
    sidecar_path(path).write_text(json.dumps(meta))
    x, y = (np.zeros((2, *s.shape[1:]), np.float32) for s in engine.inputs)
    with pytest.raises(EngineError, match=r"the plan's metadata does not describe it: input 'x' takes"):
        Engine.load(path)(x, y)


def test_the_precisions_a_sidecar_may_say_are_the_ones_a_policy_takes():
    """The sidecar's list is its own (runtime does not import the builder's graph); it must not fall behind."""
    from trtnet.graph import PRECISIONS
    from trtnet.runtime import sidecar

    assert sidecar.PRECISIONS == ("", *PRECISIONS)
