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
