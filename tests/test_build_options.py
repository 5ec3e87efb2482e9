"""Build options: batch_size and the other arguments of build are checked (a NetworkError saying what is
allowed); fp32 means fp32 (TF32 off), precision="tf32" asks for TF32; bf16 rounding keeps NaN a NaN."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import trtnet
import trtnet.backend
import trtnet.builder.build
import trtnet.zoo
from tests.runtime_models import two_inputs
from trtnet.backend import get_trt
from trtnet.builder.cache import network_fingerprint
from trtnet.errors import NetworkError
from trtnet.graph import to_numpy_dtype

ALLOWED = (
    "expected a whole number from 1 to 2**31 - 1 (8), or a (min, opt, max) sequence of such numbers with "
    "min <= opt <= max ((1, 8, 32))"
)


@pytest.mark.parametrize(
    "batch, want",
    [
        (2, (2, 2, 2)),
        (np.int64(2), (2, 2, 2)),
        (np.uint8(3), (3, 3, 3)),
        ((1, 2, 4), (1, 2, 4)),
        ([1, 2, 4], (1, 2, 4)),
        (np.array([1, 2, 4]), (1, 2, 4)),
        ((2, 2, 2), (2, 2, 2)),
    ],
)
def test_batch_sizes_taken(batch, want):
    net = trtnet.emit(two_inputs(), batch)
    (x, _) = net.inputs
    got = (x.min_batch, x.shape[0], x.max_batch)
    assert got == want and all(type(v) is int for v in got)
    json.dumps([s.__dict__ for s in net.inputs])  # plain ints: the sidecar can hold them
    assert (net.network.get_input(0).shape[0] == -1) == (want[0] != want[2])  # (2, 2, 2) is a static batch


@pytest.mark.parametrize(
    "batch",
    [
        (1, 2),
        "8",
        0,
        -3,
        True,
        2.0,
        (1, 2.5, 4),
        (4, 2, 1),
        (0, 1, 2),
        None,
        {"min": 1},
        (1, 2, 3, 4),
        np.float32(2),
        2**31,
        10**20,
        (1, 2, 2**40),
        np.array(2),
    ],
)
def test_bad_batch_sizes_are_network_errors(batch):
    text = repr(batch)
    with pytest.raises(NetworkError, match=re.escape(f"batch_size {text}: {ALLOWED}")):
        trtnet.emit(two_inputs(), batch)


@pytest.mark.parametrize("shape", [(3, -1, 8), "abc", (3, 8), (3, 8.0, 8), (3, 0, 8), None])
def test_bad_input_shapes_are_network_errors(shape):
    with pytest.raises(
        NetworkError,
        match=re.escape(
            f"input_shapes['x'] {shape!r}: expected 3 whole number(s) >= 1, "
            "the per-sample shape of input 'x' (without the batch)"
        ),
    ):
        trtnet.emit(two_inputs(), 2, input_shapes={"x": shape})


def test_a_shape_tensorrt_cannot_infer_is_a_network_error_at_the_op():
    """x made 2**20 x 2**20 while y stays 8 x 8: `relu(conv(x)) + y` cannot broadcast. TensorRT's shape inference
    gives up, and the error comes from the op that did it, with TensorRT's reason (issue 11), not from the output
    (where it looked like a volume beyond TensorRT's limits: with y as large, the network is written)."""
    with pytest.raises(
        NetworkError,
        match=re.escape(
            "the top-level module: TensorRT refused op 'add' (layer 'sum'; inputs relu_output "
            "float32[2147483647, 4, 1048576, 1048576], y float32[2147483647, 4, 8, 8]): ITensor::getDimensions: "
            "Error Code 4: Shape Error (broadcast dimensions must be conformable)"
        ),
    ):
        trtnet.emit(two_inputs(), 2**31 - 1, input_shapes={"x": (3, 2**20, 2**20)})
    trtnet.emit(two_inputs(), 2**31 - 1, input_shapes={"x": (3, 2**20, 2**20), "y": (4, 2**20, 2**20)})


@pytest.mark.parametrize("field", ["norm_fp32", "fold_bn", "fused_attention"])
def test_policy_switches_are_booleans(field):
    with pytest.raises(NetworkError, match=re.escape(f"{field} must be True or False, not str 'no'")):
        trtnet.emit(two_inputs(), 2, **{field: "no"})


def test_build_checks_batch_size_too():
    with pytest.raises(NetworkError, match=re.escape(f"batch_size '8': {ALLOWED}")):
        trtnet.build(two_inputs(), "8", cache=False)


@pytest.mark.parametrize("level", ["3", 7, -1, True, 2.5])
def test_bad_optimization_levels_are_network_errors(level):
    with pytest.raises(
        NetworkError,
        match=re.escape(
            f"optimization_level {level!r}: expected a whole number from 0 "
            "to 5 (TensorRT's builder optimization levels), or None"
        ),
    ):
        trtnet.build(two_inputs(), 2, optimization_level=level, cache=False)


@pytest.mark.parametrize("folder", [5, "", b"/tmp"])
def test_a_cache_dir_that_is_not_a_path_is_a_network_error(folder):
    """("" would be the current folder: refused rather than filling it with plans.)"""
    with pytest.raises(
        NetworkError, match=re.escape(f"cache_dir {folder!r}: expected a folder path (str or os.PathLike)")
    ):
        trtnet.build(two_inputs(), 2, cache_dir=folder)


# -- precision: fp32 is fp32 ---------------------------------------------------------------------------------


def _tf32(precision: str) -> bool:
    net = trtnet.emit(two_inputs(), 2, precision=precision)
    config = trtnet.builder.build.builder_config(net)
    return config.get_flag(get_trt().BuilderFlag.TF32)


def test_tensorrt_turns_tf32_on_by_default_and_fp32_builds_turn_it_off():
    trt = get_trt()
    fresh = trt.Builder(trtnet.backend.logger()).create_builder_config()
    assert fresh.get_flag(trt.BuilderFlag.TF32) is True  # why builder_config must clear it
    assert {p: _tf32(p) for p in ("fp32", "tf32", "fp16", "bf16")} == {
        "fp32": False,
        "tf32": True,
        "fp16": False,
        "bf16": False,
    }


def test_tf32_is_the_fp32_network_with_another_cache_entry(tmp_path):
    fp32, tf32 = (trtnet.emit(two_inputs(), 2, precision=p) for p in ("fp32", "tf32"))
    assert network_fingerprint(fp32.network) == network_fingerprint(tf32.network)
    a = trtnet.build(two_inputs(), 2, precision="fp32", cache_dir=tmp_path)
    b = trtnet.build(two_inputs(), 2, precision="tf32", cache_dir=tmp_path)
    assert (a.precision, b.precision) == ("fp32", "tf32") and a.cache_key != b.cache_key
    assert len(list(tmp_path.glob("*.plan"))) == 2


def test_the_cache_key_reads_a_dynamic_network_without_tensorrt_warnings(capsys):
    # Reading a dynamic slice's `shape` makes TensorRT warn that it "works only for static size": one line a
    # layer, 53 for a BERT build with a sequence range, from the engine cache's key alone.
    trt = get_trt()
    builder = trt.Builder(trtnet.backend.logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    x = net.add_input("x", trt.float32, (-1, 8))
    part = net.add_slice(x, (0, 0), (1, 8), (1, 1))
    part.set_input(2, net.add_shape(x).get_output(0))  # the size follows the input's: dynamic
    net.mark_output(part.get_output(0))
    key = network_fingerprint(net)
    assert len(key) == 64 and "[TRT] [W]" not in capsys.readouterr().err
    _ = part.shape  # the accessor does warn outside the key: the test would see it
    assert "[TRT] [W]" in capsys.readouterr().err


def test_bf16_rounding_matches_torch_and_keeps_nan():
    torch = pytest.importorskip("torch", reason="torch's bfloat16 conversion is the independent reference")
    f32 = np.finfo(np.float32)
    special = np.array(
        [
            np.nan,
            -np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            f32.max,
            -f32.max,
            f32.tiny,
            f32.tiny / 3,
            1.0 + 2**-8,
            1.0 + 3 * 2**-8,
            1.0 + 2**-8 + 2**-20,
            65504.0,
        ],
        np.float32,
    )
    x = np.concatenate([special, np.random.default_rng(0).standard_normal(10_000).astype(np.float32) * 100])
    bits = to_numpy_dtype(x, get_trt().bfloat16)
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(x)
    assert bits.dtype == np.uint16
    assert np.array_equal(bits[~nan], want[~nan])
    back = (bits.astype(np.uint32) << 16).view(np.float32)
    assert np.isnan(back[nan]).all() and nan.sum() == 2  # a NaN weight stays NaN (it was -0.0)


@pytest.mark.parametrize(
    "model, shown",
    [
        ("resnet18", "str 'resnet18' (trtnet.zoo.resnet18(weights=...) makes one)"),
        ("r18.onnx", "str 'r18.onnx' (trtnet.parse_onnx('r18.onnx') reads an ONNX file into a network"),
        (None, "NoneType None"),
        (trtnet.zoo.resnet18, "function <function resnet18 at"),
    ],
    ids=["a_zoo_name", "an_onnx_path", "none", "the_entry_point_uncalled"],
)
@pytest.mark.parametrize(
    "call",
    [
        lambda m: trtnet.build(m, 1, cache=False),
        lambda m: trtnet.emit(m, 1),
        lambda m: trtnet.reference(m, np.zeros((1, 3, 224, 224), np.float32)),
    ],
    ids=["build", "emit", "reference"],
)
def test_something_that_is_not_a_model_is_a_network_error(model, shown, call):
    """A new user's first guess, trtnet.build("resnet18"), was AttributeError: 'str' object has no attribute 'bind'."""
    with pytest.raises(
        NetworkError, match=re.escape(f"expected a trtnet Module (a zoo model) or a trtnet.Network, not {shown}")
    ):
        call(model)


@pytest.mark.parametrize("flag", ["cache", "verbose"])
def test_build_switches_are_booleans(flag):
    """cache="no" was truthy: the engine cache was used when the caller meant to skip it."""
    with pytest.raises(NetworkError, match=f"{flag} 'no': expected True or False"):
        trtnet.build(trtnet.zoo.resnet18(weights=None), 1, **{flag: "no"})
