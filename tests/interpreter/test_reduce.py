"""Softmax, reductions, top-k and cumulative sums (trtnet/interpreter/reduce.py), with one-hot."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, check_case, rand, t, torch_or_skip, trt

CASES = CaseTable()


# --- reductions, softmax, topk, cumulative ------------------------------------------------------------


@CASES.case()
def softmax_reduce():
    torch = torch_or_skip()
    n = Net()
    x = rand(2, 3, 4, 5)
    xi = n.input("x", x.shape)
    sm1 = n.net.add_softmax(xi)
    sm1.axes = 1 << 1
    sm3 = n.net.add_softmax(xi)
    sm3.axes = 1 << 3
    R = trt.ReduceOperation
    reds = [
        n.net.add_reduce(xi, R.SUM, 0b1010, True),
        n.net.add_reduce(xi, R.AVG, 0b0110, False),
        n.net.add_reduce(xi, R.MAX, 0b1000, False),
        n.net.add_reduce(xi, R.MIN, 0b0001, True),
        n.net.add_reduce(xi, R.PROD, 0b0100, False),
    ]
    ints = np.arange(12, dtype=np.int32).reshape(3, 4)
    isum = n.net.add_reduce(n.input("i", ints.shape, trt.int32), R.SUM, 0b10, False)
    n.mark(sm1.get_output(0), sm3.get_output(0), *(r.get_output(0) for r in reds), isum.get_output(0))
    got = n.run(x=x, i=ints)
    tx = t(x)
    expected = [
        torch.softmax(tx, 1).numpy(),
        torch.softmax(tx, 3).numpy(),
        x.sum(axis=(1, 3), keepdims=True),
        x.mean(axis=(1, 2)),
        x.max(axis=3),
        x.min(axis=0, keepdims=True),
        x.prod(axis=2),
        ints.sum(axis=1).astype(np.int32),
    ]
    assert got[-1].dtype == np.int32
    return list(zip(got, expected))


@CASES.case()
def topk_cumulative_onehot():
    n = Net()
    x = np.array([[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]], np.float32)
    xi = n.input("x", x.shape)
    top = n.net.add_topk(xi, trt.TopKOperation.MAX, 3, 1 << 1)
    low = n.net.add_topk(xi, trt.TopKOperation.MIN, 2, 1 << 1)
    axis = n.const(np.array(1, np.int32))
    cum = n.net.add_cumulative(xi, axis, trt.CumulativeOperation.SUM, True, True)
    plain = n.net.add_cumulative(xi, axis, trt.CumulativeOperation.SUM, False, False)
    idx = np.array([[0, 2], [-1, 5]], np.int32)
    oh = n.net.add_one_hot(
        n.input("idx", idx.shape, trt.int32),
        n.const(np.array([0.5, 2.0], np.float32)),
        n.const(np.array(4, np.int32)),
        1,
    )
    n.mark(
        *(top.get_output(i) for i in range(2)),
        *(low.get_output(i) for i in range(2)),
        cum.get_output(0),
        plain.get_output(0),
        oh.get_output(0),
    )
    got = n.run(x=x, idx=idx)
    rev_excl = np.flip(np.cumsum(np.flip(x, 1), 1), 1) - x
    hot = np.full((2, 4, 2), 0.5, np.float32)
    hot[0, 0, 0] = hot[0, 2, 1] = hot[1, 3, 0] = 2.0  # -1 is depth-1; 5 is out of range: all off
    return [
        (got[0], np.array([[9, 6, 5]], np.float32)),
        (got[1], np.array([[5, 7, 4]], np.int32)),
        (got[2], np.array([[1, 1]], np.float32)),
        (got[3], np.array([[1, 3]], np.int32)),
        (got[4], rev_excl),
        (got[5], np.cumsum(x, 1)),
        (got[6], hot),
    ]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)


def test_softmax_shifts_large_scores_by_their_maximum() -> None:
    """Scores past 709 (where float64's exp overflows) in float32 and float16: each row is shifted by its own maximum
    first, so the result is the float64 softmax rounded once, with no inf or NaN."""
    rng = np.random.default_rng(6)
    for dtype, trt_type in ((np.float32, trt.float32), (np.float16, trt.float16)):
        x = (rng.standard_normal((3, 5, 8)) * 4 + np.array([0.0, 800.0, -800.0])[:, None, None]).astype(dtype)
        n = Net()
        layer = n.net.add_softmax(n.input("x", x.shape, trt_type))
        layer.axes = 1 << 2
        n.mark(layer.get_output(0))
        (got,) = n.run(x=x)
        wide = x.astype(np.float64)
        e = np.exp(wide - wide.max(axis=-1, keepdims=True))
        np.testing.assert_array_equal(got, (e / e.sum(axis=-1, keepdims=True)).astype(dtype))


def test_a_masked_softmax_is_the_float64_softmax_rounded_once() -> None:
    """A causal mask of float32's least value (as ONNX decoders export it) underflows exp for half the scores; those
    exps are 0.0 whichever way they are made, and the rest are the float64 softmax rounded once."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32) * 4
    x[..., np.triu(np.ones((16, 16), bool), 1)] = np.finfo(np.float32).min
    x[0, 0, 3, 0] = -np.inf
    n = Net()
    layer = n.net.add_softmax(n.input("x", x.shape))
    layer.axes = 1 << 3
    n.mark(layer.get_output(0))
    (got,) = n.run(x=x)
    wide = x.astype(np.float64)
    e = np.exp(wide - wide.max(axis=-1, keepdims=True))
    expected = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(got, expected)
    assert (got[..., np.triu(np.ones((16, 16), bool), 1)] == 0).all()


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_softmax_of_an_empty_tensor_is_empty(axis: int) -> None:
    """Shape (3, 0, 5), over each axis: an empty output of the same shape and type, as TensorRT infers (over the empty
    axis numpy's maximum refused with a ValueError that named no layer)."""
    n = Net()
    layer = n.net.add_softmax(n.input("x", (3, 0, 5)))
    layer.axes = 1 << axis
    n.mark(layer.get_output(0))
    (got,) = n.run(x=np.zeros((3, 0, 5), np.float32))
    assert got.shape == (3, 0, 5) and got.dtype == np.float32


@pytest.mark.parametrize("reverse", [False, True])
def test_an_exclusive_cumulative_sum_is_the_sum_of_the_elements_before_each(reverse: bool) -> None:
    """Each output is the float64 sum of the elements before it, rounded once: an inf, a NaN or a huge element does
    not reach back into its own position (it did when the sum was taken as the inclusive one minus x: NaN at the inf,
    0 for the ones before 1e30)."""
    x = np.array([[1.0, 2.0, 3.0, 1e30, 1.0], [1.0, np.inf, 2.0, 3.0, 4.0], [5.0, 6.0, np.nan, 1.0, 2.0]], np.float32)
    n = Net()
    layer = n.net.add_cumulative(
        n.input("x", x.shape), n.const(np.array(1, np.int32)), trt.CumulativeOperation.SUM, True, reverse
    )
    n.mark(layer.get_output(0))
    (got,) = n.run(x=x)
    wide = np.flip(x, 1).astype(np.float64) if reverse else x.astype(np.float64)
    before = np.zeros_like(wide)
    for j in range(1, wide.shape[1]):
        before[:, j] = before[:, j - 1] + wide[:, j - 1]
    np.testing.assert_array_equal(got, (np.flip(before, 1) if reverse else before).astype(np.float32))


@pytest.mark.parametrize("dtype, trt_type", [(np.int64, "int64"), (np.int32, "int32")])
def test_top_k_ranks_integers_as_themselves(dtype, trt_type) -> None:
    """int64 values past 2^53 that differ in their low bits are all distinct (ranked through float64 they tied and
    came out in index order); the type's least value is ranked too, and ties keep index order either way."""
    info = np.iinfo(dtype)
    big = 2**60 if dtype == np.int64 else 2**30
    x = np.array([[big + 1, big, big + 3, 5, info.min, -big, big + 1, info.max]], dtype)
    n = Net()
    xi = n.input("x", x.shape, getattr(trt, trt_type))
    top = n.net.add_topk(xi, trt.TopKOperation.MAX, 8, 1 << 1)
    low = n.net.add_topk(xi, trt.TopKOperation.MIN, 8, 1 << 1)
    n.mark(*(top.get_output(i) for i in range(2)), *(low.get_output(i) for i in range(2)))
    got = n.run(x=x)
    values = [int(v) for v in x[0]]
    down = sorted(range(8), key=lambda i: (-values[i], i))
    up = sorted(range(8), key=lambda i: (values[i], i))
    assert got[1][0].tolist() == down and got[0][0].tolist() == [values[i] for i in down]
    assert got[3][0].tolist() == up and got[2][0].tolist() == [values[i] for i in up]
