"""Shuffle, concatenation, padding, squeeze/unsqueeze and slices (trtnet/interpreter/shape.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, check_case, rand, trt

CASES = CaseTable()


# --- shape manipulation -----------------------------------------------------------------------------


@CASES.case()
def shuffle_transpose_reshape_transpose():
    n = Net()
    x = rand(2, 3, 4, 5)
    layer = n.net.add_shuffle(n.input("x", x.shape))
    layer.first_transpose = (0, 2, 1, 3)
    layer.reshape_dims = (0, 0, -1)
    layer.second_transpose = (2, 0, 1)
    n.mark(layer.get_output(0))
    ref = np.transpose(np.transpose(x, (0, 2, 1, 3)).reshape(2, 4, 15), (2, 0, 1))
    return [(n.run(x=x)[0], ref)]


@CASES.case()
def shuffle_dynamic_reshape_and_batch():
    n = Net()
    x = rand(3, 4, 6)
    xi = n.input("x", (-1, 4, 6))
    shape = n.net.add_shape(xi).get_output(0)  # [B, 4, 6] as INT64
    head = n.net.add_slice(shape, (0,), (1,), (1,)).get_output(0)
    target = n.net.add_concatenation([head, n.const(np.array([2, 12], np.int64))]).get_output(0)
    layer = n.net.add_shuffle(xi)
    layer.set_input(1, target)
    flat = n.net.add_shuffle(xi)
    flat.reshape_dims = (-1,)
    n.mark(layer.get_output(0), shape, flat.get_output(0))
    got = n.run(x=x)
    assert tuple(n.net.get_output(0).shape) == (-1, 2, 12)
    return [(got[0], x.reshape(3, 2, 12)), (got[1], np.array([3, 4, 6], np.int64)), (got[2], x.reshape(-1))]


@CASES.case()
def concat_pad_squeeze_unsqueeze():
    n = Net()
    a, b = rand(2, 3, 4), rand(2, 1, 4)
    ai, bi = n.input("a", a.shape), n.input("b", b.shape)
    cat = n.net.add_concatenation([ai, bi, ai])
    cat.axis = 1
    a4 = rand(1, 2, 3, 4)
    pad = n.net.add_padding_nd(n.input("a4", a4.shape), (1, -1), (2, 1))
    sq = n.net.add_squeeze(bi, n.const(np.array([1], np.int64)))
    unsq = n.net.add_unsqueeze(ai, n.const(np.array([0, -1], np.int64)))
    n.mark(cat.get_output(0), pad.get_output(0), sq.get_output(0), unsq.get_output(0))
    got = n.run(a=a, b=b, a4=a4)
    padded = np.pad(a4, ((0, 0), (0, 0), (1, 2), (0, 1)))[..., 1:]
    return [
        (got[0], np.concatenate([a, b, a], axis=1)),
        (got[1], padded),
        (got[2], b[:, 0]),
        (got[3], a[None, ..., None]),
    ]


@CASES.case()
def slice_static_and_modes():
    n = Net()
    x = rand(4, 5)
    xi = n.input("x", x.shape)
    outs = [n.net.add_slice(xi, (1, 0), (2, 3), (2, 2)), n.net.add_slice(xi, (3, 4), (3, 2), (-1, -2))]
    for mode, start in (
        (trt.SampleMode.WRAP, (-2, 3)),
        (trt.SampleMode.CLAMP, (-2, 3)),
        (trt.SampleMode.FILL, (-2, 3)),
        (trt.SampleMode.REFLECT, (-2, 3)),
    ):
        layer = n.net.add_slice(xi, start, (7, 6), (1, 1))
        layer.mode = mode
        outs.append(layer)
    fill = n.net.add_slice(xi, (-1, -1), (6, 7), (1, 1))
    fill.mode = trt.SampleMode.FILL
    fill.set_input(4, n.const(np.array(9.0, np.float32)))
    outs.append(fill)
    n.mark(*(layer.get_output(0) for layer in outs))
    got = n.run(x=x)
    rows, cols = np.arange(-2, 5), np.arange(3, 9)

    def reflect(i, size):
        period = 2 * (size - 1)
        m = np.mod(i, period)
        return np.where(m < size, m, period - m)

    in_rows, in_cols = (rows >= 0) & (rows < 4), (cols >= 0) & (cols < 5)
    filled = np.where(in_rows[:, None] & in_cols[None], x[np.ix_(np.clip(rows, 0, 3), np.clip(cols, 0, 4))], 0)
    padded9 = np.pad(x, ((1, 1), (1, 1)), constant_values=9.0)
    expected = [
        x[1:4:2, 0:5:2],
        x[3:0:-1, 4:0:-2],
        x[np.ix_(np.mod(rows, 4), np.mod(cols, 5))],
        x[np.ix_(np.clip(rows, 0, 3), np.clip(cols, 0, 4))],
        filled,
        x[np.ix_(reflect(rows, 4), reflect(cols, 5))],
        padded9,
    ]
    return list(zip(got, expected))


@CASES.case()
def slice_dynamic_inputs_and_axes():
    n = Net()
    x = rand(3, 6, 8)
    xi = n.input("x", x.shape)
    layer = n.net.add_slice(xi, (0, 0, 0), (1, 1, 1), (1, 1, 1))
    layer.set_input(1, n.const(np.array([1, 1, 7], np.int64)))
    layer.set_input(2, n.const(np.array([2, 2, 3], np.int64)))
    layer.set_input(3, n.const(np.array([1, 3, -2], np.int64)))
    by_axes = n.net.add_slice(xi, (0,), (1,), (1,))
    by_axes.set_input(1, n.const(np.array([2], np.int64)))
    by_axes.set_input(2, n.const(np.array([3], np.int64)))
    by_axes.set_input(3, n.const(np.array([2], np.int64)))
    by_axes.set_input(5, n.const(np.array([-1], np.int64)))
    n.mark(layer.get_output(0), by_axes.get_output(0))
    got = n.run(x=x)
    return [(got[0], x[1:3, 1:5:3, 7:1:-2]), (got[1], x[:, :, 2:7:2])]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)


def test_a_fill_slice_of_an_empty_axis_is_all_fill_value() -> None:
    """FILL reads the input where an index is in bounds and takes the fill value elsewhere; on an axis of size 0
    nothing is in bounds (it was refused as a sample from an empty axis)."""
    n = Net()
    layer = n.net.add_slice(n.input("x", (0, 3)), (-1, 0), (2, 3), (1, 1))
    layer.mode = trt.SampleMode.FILL
    layer.set_input(4, n.const(np.array(5.0, np.float32)))
    n.mark(layer.get_output(0))
    (got,) = n.run(x=np.zeros((0, 3), np.float32))
    np.testing.assert_array_equal(got, np.full((2, 3), 5.0, np.float32))


def test_a_squeeze_without_axes_removes_the_axes_of_static_size_1_when_it_was_made() -> None:
    """TensorRT's meaning (add_squeeze with no axes; what ONNX's Squeeze without axes parses to): the axes of static
    size 1 when the layer is made go; a dynamic one stays, even once a shape fixes it to 1 (check's --shapes x:1x...
    made the interpreter remove it too, against TensorRT's inferred output). The layer was refused before."""
    x = rand(2, 1, 3, 1)
    n = Net()
    n.mark(n.net.add_squeeze(n.input("x", x.shape)).get_output(0))
    (got,) = n.run(x=x)
    np.testing.assert_array_equal(got, x.reshape(2, 3))
    n = Net()
    layer = n.net.add_squeeze(n.input("x", (1, -1, 3)))
    n.mark(layer.get_output(0))
    for size in (4, 1):
        x = rand(1, size, 3)
        (got,) = n.run(x=x)
        np.testing.assert_array_equal(got, x.reshape(size, 3))
    n = Net()
    tensor = n.input("x", (-1, 3, 1, 2))
    n.mark(n.net.add_squeeze(tensor).get_output(0))
    tensor.shape = (1, 3, 1, 2)  # fixed after the layer was made: TensorRT infers (1, 3, 2)
    x = rand(1, 3, 1, 2)
    (got,) = n.run(x=x)
    np.testing.assert_array_equal(got, x.reshape(1, 3, 2))
