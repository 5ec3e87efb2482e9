"""Gather in each mode (trtnet/interpreter/indexing.py) against numpy indexing."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import RNG, CaseTable, Net, check_case, rand, trt

CASES = CaseTable()


# --- gather, resize, fill -------------------------------------------------------------------------------


@CASES.case()
def gather_modes():
    n = Net()
    data = rand(3, 4, 5)
    di = n.input("d", data.shape)
    idx = np.array([[0, 3], [-1, 1]], np.int32)
    g_default = n.net.add_gather(di, n.input("i", idx.shape, trt.int32), 1)
    per_batch = np.array([[1, 0], [3, 3], [2, 0]], np.int32)
    g_batch = n.net.add_gather(di, n.input("pb", per_batch.shape, trt.int32), 2)
    g_batch.num_elementwise_dims = 1
    el_idx = RNG.integers(0, 4, size=(3, 2, 5)).astype(np.int32)
    g_el = n.net.add_gather_v2(di, n.input("e", el_idx.shape, trt.int32), trt.GatherMode.ELEMENT)
    g_el.axis = 1
    nd_idx = np.array([[[1, 2], [3, 0]], [[0, 4], [2, 2]], [[3, 3], [1, 1]]], np.int32)  # [3 batch, 2, 2 coords]
    g_nd = n.net.add_gather_v2(di, n.input("nd", nd_idx.shape, trt.int32), trt.GatherMode.ND)
    g_nd.num_elementwise_dims = 1
    nd0 = np.array([[2, 1], [0, 3]], np.int64)
    g_nd0 = n.net.add_gather_v2(di, n.input("nd0", nd0.shape, trt.int64), trt.GatherMode.ND)
    n.mark(*(layer.get_output(0) for layer in (g_default, g_batch, g_el, g_nd, g_nd0)))
    got = n.run(d=data, i=idx, pb=per_batch, e=el_idx, nd=nd_idx, nd0=nd0)
    batch_ref = np.stack([data[b][:, per_batch[b]] for b in range(3)])
    nd_ref = np.stack([np.stack([data[b, c[0], c[1]] for c in nd_idx[b]]) for b in range(3)])
    return [
        (got[0], data[:, [[0, 3], [3, 1]]]),
        (got[1], batch_ref),
        (got[2], np.take_along_axis(data, el_idx, axis=1)),
        (got[3], nd_ref),
        (got[4], np.stack([data[2, 1], data[0, 3]])),
    ]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)


def test_element_gather_and_scatter_take_indices_shorter_than_data() -> None:
    """ONNX's GatherElements and ScatterElements: the output (gather) or the part written (scatter) has the indices'
    shape, which off the axis may be shorter than data's (numpy's along-axis functions raised an untyped
    IndexError; a length of 1 would have broadcast across the whole dim)."""
    n = Net()
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[2, 1], [1, 1]], np.int32)
    row = np.array([[0, 2, 1, 0]], np.int32)
    updates = np.array([[-1.0, -2.0], [-3.0, -4.0]], np.float32)
    di, ii, ri = n.input("d", data.shape), n.input("i", idx.shape, trt.int32), n.input("r", row.shape, trt.int32)
    gathered, by_row, scattered = (
        n.net.add_gather_v2(di, ii, trt.GatherMode.ELEMENT),
        n.net.add_gather_v2(di, ri, trt.GatherMode.ELEMENT),
        n.net.add_scatter(di, ii, n.input("u", updates.shape), trt.ScatterMode.ELEMENT),
    )
    for layer in (gathered, by_row, scattered):
        layer.axis = 0
    n.mark(*(layer.get_output(0) for layer in (gathered, by_row, scattered)))
    got = n.run(d=data, i=idx, r=row, u=updates)
    want_scatter = data.copy()
    for (i, j), v in zip(np.ndindex(idx.shape), updates.reshape(-1)):
        want_scatter[idx[i, j], j] = v
    np.testing.assert_array_equal(
        got[0], [[data[idx[i, j], j] for j in range(2)] for i in range(2)]
    )  # [[8, 5], [4, 5]]
    np.testing.assert_array_equal(got[1], [[0, 9, 6, 3]])
    np.testing.assert_array_equal(got[2], want_scatter)


def test_nd_gather_and_scatter_of_empty_index_tuples_take_whole_entries() -> None:
    """Index tuples of length 0 name the whole of data (per batch entry): a gather repeats it once per tuple, a
    scatter writes its last update over all of it (the reshapes of the empty tuples raised untyped ValueErrors)."""
    n = Net()
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.zeros((2, 0), np.int32)
    updates = np.stack([np.full((3, 4), 7.0, np.float32), np.full((3, 4), 9.0, np.float32)])
    di, ii = n.input("d", data.shape), n.input("i", idx.shape, trt.int32)
    batched = n.net.add_gather_v2(di, n.input("b", (3, 0), trt.int32), trt.GatherMode.ND)
    batched.num_elementwise_dims = 1
    layers = (
        n.net.add_gather_v2(di, ii, trt.GatherMode.ND),
        batched,
        n.net.add_scatter(di, ii, n.input("u", updates.shape), trt.ScatterMode.ND),
    )
    n.mark(*(layer.get_output(0) for layer in layers))
    got = n.run(d=data, i=idx, b=np.zeros((3, 0), np.int32), u=updates)
    np.testing.assert_array_equal(got[0], np.stack([data, data]))
    np.testing.assert_array_equal(got[1], data)
    np.testing.assert_array_equal(got[2], updates[-1])


@pytest.mark.parametrize(("data_shape", "idx_shape", "axis"), [((1, 3, 4), (2, 5), 1), ((2, 3, 4), (1, 5), 2)])
def test_default_gather_broadcasts_its_elementwise_dim(data_shape, idx_shape, axis) -> None:
    """With num_elementwise_dims = 1 the leading dims of data and indices broadcast, as TensorRT infers the output
    (they were refused unless equal)."""
    n = Net()
    data = np.arange(np.prod(data_shape), dtype=np.float32).reshape(data_shape)
    idx = RNG.integers(0, data_shape[axis], idx_shape).astype(np.int32)
    layer = n.net.add_gather(n.input("d", data_shape), n.input("i", idx_shape, trt.int32), axis)
    layer.num_elementwise_dims = 1
    n.mark(layer.get_output(0))
    (got,) = n.run(d=data, i=idx)
    count = max(data_shape[0], idx_shape[0])
    want = np.stack(
        [np.take(data[min(b, data_shape[0] - 1)], idx[min(b, idx_shape[0] - 1)], axis - 1) for b in range(count)]
    )
    assert got.shape == tuple(layer.get_output(0).shape)
    np.testing.assert_array_equal(got, want)
