"""Issue 20: a uint8 or channels-last image batch is refused at the input check, naming the shape and dtype the
model takes, by `trtnet.reference`, `trtnet.calibrate` and an engine call alike (one check:
`trtnet.runtime.bindings.check_inputs`), not deep in the network."""

from __future__ import annotations

import re

import numpy as np
import pytest

import trtnet
from trtnet.errors import CalibrationError, EngineError, NetworkError
from trtnet.runtime.bindings import check_call
from trtnet.runtime.plan import TensorSpec
from trtnet.zoo import bert_base_uncased, resnet18

UINT8 = np.zeros((2, 3, 224, 224), np.uint8)
NHWC = np.zeros((2, 224, 224, 3), np.float32)
CHANNELS_LAST = " (channels last? it takes channels first: x.transpose(0, 3, 1, 2))"


@pytest.fixture(scope="module")
def model():
    return resnet18(num_classes=10)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (UINT8, "input 'x': dtype uint8 given, ResNet takes float32 [1..2, 3, 224, 224]"),
        (NHWC, "input 'x': shape [2, 224, 224, 3] given, ResNet takes [1..2, 3, 224, 224]" + CHANNELS_LAST),
    ],
    ids=["uint8", "nhwc"],
)
def test_reference_and_calibrate_refuse_an_image_batch_the_model_does_not_take(model, x, message):
    with pytest.raises(NetworkError, match=re.escape(message) + "$"):
        trtnet.reference(model, x)
    with pytest.raises(CalibrationError, match=re.escape(message) + "$"):
        trtnet.calibrate(model, [x])


def test_an_engine_call_says_the_same():
    spec = TensorSpec("x", (2, 3, 224, 224), "float32")
    with pytest.raises(EngineError, match=re.escape("dtype uint8 given, the engine takes float32 [2, 3, 224, 224]")):
        check_call([spec], [], 0, [UINT8])
    with pytest.raises(EngineError, match=re.escape("the engine takes [2, 3, 224, 224]" + CHANNELS_LAST)):
        check_call([spec], [], 0, [NHWC])


def test_what_the_interpreter_casts_is_still_accepted():
    """float64 images and int64 token ids are cast to the declared types, as the interpreter always did."""
    model = bert_base_uncased(
        config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=50),
        seq_len=8,
    )
    ids = np.arange(16, dtype=np.int64).reshape(2, 8)
    ones, zeros = np.ones((2, 8), np.int64), np.zeros((2, 8), np.int64)
    want = trtnet.reference(model, ids.astype(np.int32), ones.astype(np.int32), zeros.astype(np.int32))
    got = trtnet.reference(model, ids, ones, zeros)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    with pytest.raises(
        NetworkError, match=re.escape("input 'input_ids': dtype float32 given, Bert takes int32 [1..2, 8]")
    ):
        trtnet.reference(model, ids.astype(np.float32), ones, zeros)


def test_reference_takes_the_inputs_by_name_too():
    """One {name: array} mapping, as run_network and calibrate take it: it was read as an array of dtype object
    ("input 'x': dtype object given") though it held the right array."""
    model = bert_base_uncased(
        config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=50),
        seq_len=8,
    )
    ids = np.arange(16, dtype=np.int32).reshape(2, 8)
    ones, zeros = np.ones((2, 8), np.int32), np.zeros((2, 8), np.int32)
    names = [i.name for i in model.inputs()]
    by_name = {names[0]: ids, names[2]: zeros, names[1]: ones}  # in another order than declared
    want = trtnet.reference(model, ids, ones, zeros)
    for a, b in zip(trtnet.reference(model, by_name), want):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(NetworkError, match=r"takes inputs \[.*\]; the mapping given holds \['ids', 'mask'\]$"):
        trtnet.reference(model, {"ids": ids, "mask": ones})


class HalfIn(trtnet.nn.Module):
    """A Linear fed a float16 input (an engine whose callers hand it half-precision frames)."""

    def __init__(self, dtype: str = "float16") -> None:
        self.fc = trtnet.nn.Linear(8, 4)
        self._dtype = dtype

    def inputs(self):
        return [trtnet.nn.Input("x", (8,), self._dtype)]

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_float16_input_is_cast_to_the_networks_compute_type(precision):
    """A float16 input met float32 weights and TensorRT refused the first layer ("IMatrixMultiplyLayer must have
    same input types"): it is now cast at the boundary, as a float32 input is in an fp16 network."""
    model = HalfIn()
    trtnet.init_random(model)
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float16)
    (got,) = trtnet.reference(model, x, precision=precision)
    w = {k: np.asarray(v, np.float64) for k, v in model.state_dict().items()}
    want = x.astype(np.float64) @ w["fc.weight"].T + w["fc.bias"]
    assert (
        got.dtype == np.float32
        and np.abs(got - want).max() <= (1e-6 if precision == "fp32" else 2e-3) * np.abs(want).max()
    )
    engine = trtnet.build(model, 2, precision=precision, cache=False)
    assert [(s.name, s.dtype) for s in engine.inputs] == [("x", "float16")]


def test_an_input_numpy_cannot_feed_is_refused_where_it_is_declared():
    with pytest.raises(
        NetworkError, match=r"^input 'x': a bfloat16 input has no numpy dtype to be fed with; declare it"
    ):
        trtnet.emit(HalfIn("bfloat16"), 2)
