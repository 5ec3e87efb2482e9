"""QUANTIZE / DEQUANTIZE in the interpreter against values worked out by hand.

Each case is a tiny strongly typed network (TensorRT requires one for FP8) built with the raw TensorRT API;
the expected numbers are written out from TensorRT's definition: q = clamp(round_half_even(x / s)), INT8 to
[-128, 127], FP8 E4M3 to [-448, 448]; dq = q * s.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.errors import InterpreterError
from trtnet.interpreter import run_network

trt = get_trt()
FP8 = ml_dtypes.float8_e4m3fn


class Net:
    def __init__(self) -> None:
        self.builder = trt.Builder(logger())
        self.net = self.builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        self.keep: list[np.ndarray] = []

    def const(self, arr) -> object:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        self.keep.append(arr)
        return self.net.add_constant(arr.shape, trt.Weights(arr)).get_output(0)

    def qdq(self, x, scale, qtype, axis: int | None = None, out=trt.float32):
        s = self.const(scale)
        q = self.net.add_quantize(x, s, qtype)
        dq = self.net.add_dequantize(q.get_output(0), s, out)
        if axis is not None:
            q.axis = axis
            dq.axis = axis
        return q.get_output(0), dq.get_output(0)

    def run(self, x: np.ndarray, *outputs) -> dict[str, np.ndarray]:
        for i, t in enumerate(outputs):
            t.name = f"out{i}"
            self.net.mark_output(t)
        return run_network(self.net, {"x": x})


def _quantize(x: np.ndarray, scale, qtype, axis=None, out=trt.float32):
    n = Net()
    inp = n.net.add_input("x", trt.float32, x.shape)
    q, dq = n.qdq(inp, scale, qtype, axis, out)
    r = n.run(x, q, dq)
    return r["out0"], r["out1"]


def test_int8_rounds_half_to_even_and_saturates():
    # scale 0.5: x / s = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.25, 63.75, 63.5, 100, -100, -64.25]
    x = np.array([0.25, 0.75, 1.25, -0.25, -0.75, -1.25, 0.125, 31.875, 31.75, 50.0, -50.0, -32.125], np.float32)
    q, dq = _quantize(x, [0.5], trt.int8)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, [0, 2, 2, 0, -2, -2, 0, 64, 64, 100, -100, -64])
    np.testing.assert_array_equal(dq, [0, 1, 1, 0, -1, -1, 0, 32, 32, 50, -50, -32])
    # Saturation: 127 and -128 are the ends, and only they (not -127 symmetric).
    q, dq = _quantize(np.array([63.4, 63.75, 1e6, -64.0, -64.25, -1e6], np.float32), [0.5], trt.int8)
    np.testing.assert_array_equal(q, [127, 127, 127, -128, -128, -128])
    np.testing.assert_array_equal(dq, [63.5, 63.5, 63.5, -64.0, -64.0, -64.0])


def test_int8_per_channel_axis_uses_each_channels_scale():
    x = np.array([[[1.0, 3.0]], [[1.0, 3.0]], [[1.0, 3.0]]], np.float32)  # [3, 1, 2]; channels on axis 0
    q, dq = _quantize(x, [2.0, 1.0, 0.01], trt.int8, axis=0)
    # 1/2 = 0.5 -> 0 (tie to even), 3/2 = 1.5 -> 2; 1, 3; 100, 300 -> 127 (saturated)
    np.testing.assert_array_equal(q[:, 0], [[0, 2], [1, 3], [100, 127]])
    np.testing.assert_allclose(dq[:, 0], [[0, 4], [1, 3], [1.0, 1.27]], rtol=1e-6)
    # The same scales on the last axis of a [2, 3] tensor.
    q, _ = _quantize(np.array([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]], np.float32), [2.0, 1.0, 0.01], trt.int8, axis=1)
    np.testing.assert_array_equal(q, [[0, 1, 100], [2, 3, 127]])


def test_fp8_e4m3_rounds_to_nearest_even_and_saturates_at_448():
    # E4M3 between 1 and 2 steps by 1/8; between 256 and 448 by 32; subnormals step by 2**-9.
    x = np.array([1.0625, 1.1875, 1.0624, 272.0, 304.0, 448.0, 464.0, 1e9, -1e9, 2.0**-10, 3 * 2.0**-10], np.float32)
    q, dq = _quantize(x, [1.0], trt.fp8)
    assert q.dtype == FP8
    expected = [1.0, 1.25, 1.0, 256.0, 320.0, 448.0, 448.0, 448.0, -448.0, 0.0, 2.0**-8]
    np.testing.assert_array_equal(q.astype(np.float32), expected)
    np.testing.assert_array_equal(dq, expected)
    q, dq = _quantize(np.array([3.0, 100.0], np.float32), [0.25], trt.fp8)  # 12 -> 12, 400 -> 384 (step 32)
    np.testing.assert_array_equal(dq, [3.0, 96.0])


def test_dequantize_rounds_to_its_output_type():
    # 3 * 0.1 in float32 is 0.3 (0x3e99999a); in float16 it rounds to 0.2998...
    _, dq = _quantize(np.array([0.3], np.float32), [0.1], trt.int8, out=trt.float16)
    assert dq.dtype == np.float16 and dq[0] == np.float16(np.float32(3) * np.float32(0.1))


def test_quantize_feeds_a_convolution_kernel():
    n = Net()
    x = n.net.add_input("x", trt.float32, (1, 1, 2, 2))
    _, w = n.qdq(n.const(np.array([1.3, -2.6], np.float32).reshape(2, 1, 1, 1)), [1.0, 2.0], trt.int8, axis=0)
    conv = n.net.add_convolution_nd(x, 2, (1, 1), trt.Weights(trt.float32), trt.Weights(trt.float32))
    conv.set_input(1, w)
    y = n.run(np.ones((1, 1, 2, 2), np.float32), conv.get_output(0))["out0"]
    np.testing.assert_array_equal(y[0, :, 0, 0], [1.0, -2.0])  # 1.3 -> 1; -2.6 / 2 = -1.3 -> -1 -> -2


def test_bad_scales_are_refused_naming_the_layer():
    n = Net()
    x = n.net.add_input("x", trt.float32, (2, 3))
    s = n.const([1.0, 2.0])
    q = n.net.add_quantize(x, s, trt.int8)
    q.axis = 1
    q.name = "bad_q"
    with pytest.raises(
        InterpreterError,
        match=r"layer 'bad_q' \(QUANTIZE\): per-channel scale of 2 values does "
        r"not match axis 1 of input shape \(2, 3\)",
    ):
        n.run(np.zeros((2, 3), np.float32), q.get_output(0))
    n = Net()
    x = n.net.add_input("x", trt.float32, (2,))
    q = n.net.add_quantize(x, n.const([0.0]), trt.int8)
    q.name = "zero_scale"
    with pytest.raises(InterpreterError, match="layer 'zero_scale' .*strictly positive"):
        n.run(np.zeros(2, np.float32), q.get_output(0))


def test_block_scales_give_each_block_its_own_scale():
    """A scale of the input's rank: element [i, j] of a [4, 8] input takes scale[i, j // 4] of a [4, 2] one, both
    ways (TensorRT builds it; the interpreter refused it before)."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((4, 8)) * 20).astype(np.float32)
    scale = np.array([[0.5, 2.0], [0.25, 1.0], [4.0, 0.125], [1.0, 3.0]], np.float32)
    q, dq = _quantize(x, scale, trt.int8, axis=1)
    per_element = np.repeat(scale, 4, axis=1)
    want = np.clip(np.rint(x / per_element), -128, 127)
    np.testing.assert_array_equal(q, want.astype(np.int8))
    np.testing.assert_array_equal(dq, want.astype(np.float32) * per_element)
    n = Net()
    bad = n.net.add_quantize(n.net.add_input("x", trt.float32, (4, 8)), n.const(np.ones((4, 3), np.float32)), trt.int8)
    bad.axis = 1
    with pytest.raises(InterpreterError, match=r"scale of shape \(4, 3\) is neither .* whole blocks of input \(4, 8\)"):
        n.run(x, bad.get_output(0))
