"""Matrix products and einsum (trtnet/interpreter/matrix.py) against numpy in float64."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, check_case, rand, trt

CASES = CaseTable()


# --- products -------------------------------------------------------------------------------------------


@CASES.case()
def matmul_transposes_broadcast_vectors():
    n = Net()
    M = trt.MatrixOperation
    a, b = rand(2, 1, 3, 4), rand(1, 5, 4, 6)
    ai, bi = n.input("a", a.shape), n.input("b", b.shape)
    plain = n.net.add_matrix_multiply(ai, M.NONE, bi, M.NONE)
    at, bt = rand(2, 4, 3), rand(2, 6, 4)
    tt = n.net.add_matrix_multiply(n.input("at", at.shape), M.TRANSPOSE, n.input("bt", bt.shape), M.TRANSPOSE)
    v, mat = rand(2, 4), rand(2, 4, 3)
    vm = n.net.add_matrix_multiply(n.input("v", v.shape), M.VECTOR, n.input("m", mat.shape), M.NONE)
    mv = n.net.add_matrix_multiply(n.input("m2", (2, 3, 4)), M.NONE, n.input("v2", v.shape), M.VECTOR)
    m2 = rand(2, 3, 4)
    vv = n.net.add_matrix_multiply(n.input("v3", v.shape), M.VECTOR, n.input("v4", v.shape), M.VECTOR)
    e1, e2 = rand(2, 3, 4), rand(4, 5)
    ein = n.net.add_einsum([n.input("e1", e1.shape), n.input("e2", e2.shape)], "bij,jk->bki")
    n.mark(*(layer.get_output(0) for layer in (plain, tt, vm, mv, vv, ein)))
    got = n.run(a=a, b=b, at=at, bt=bt, v=v, m=mat, m2=m2, v2=v, v3=v, v4=v, e1=e1, e2=e2)
    f64 = lambda z: z.astype(np.float64)  # noqa: E731
    return [
        (got[0], f64(a) @ f64(b)),
        (got[1], np.swapaxes(f64(at), 1, 2) @ np.swapaxes(f64(bt), 1, 2)),
        (got[2], np.einsum("bk,bkn->bn", f64(v), f64(mat))),
        (got[3], np.einsum("bmk,bk->bm", f64(m2), f64(v))),
        (got[4], np.sum(f64(v) * f64(v), axis=1)),
        (got[5], np.einsum("bij,jk->bki", f64(e1), f64(e2))),
    ]


@CASES.case()
def matmul_one_matrix_against_a_stack():
    # The product against the stack laid side by side (fused per-head weights), plain and transposed.
    n = Net()
    M = trt.MatrixOperation
    a, b, bt = rand(1, 1, 5, 4), rand(2, 3, 4, 6), rand(1, 3, 6, 4)
    plain = n.net.add_matrix_multiply(n.input("a", a.shape), M.NONE, n.input("b", b.shape), M.NONE)
    tr = n.net.add_matrix_multiply(n.input("a2", a.shape), M.NONE, n.input("bt", bt.shape), M.TRANSPOSE)
    n.mark(plain.get_output(0), tr.get_output(0))
    got = n.run(a=a, b=b, a2=a, bt=bt)
    f64 = lambda z: z.astype(np.float64)  # noqa: E731
    return [(got[0], f64(a) @ f64(b)), (got[1], f64(a) @ np.swapaxes(f64(bt), -1, -2))]


@CASES.case()
def matmul_empty_contraction_broadcast():
    # K = 0: every output is an empty sum, 0, on each of _matmul's routes (a weight against a stack, one matrix
    # against a stack, stack against stack); numpy cannot infer a dim of -1 in a size-0 array, so none may ask it to.
    n = Net()
    M = trt.MatrixOperation
    pairs = [((2, 3, 0), (1, 0, 4)), ((1, 3, 0), (2, 0, 4)), ((2, 3, 0), (2, 0, 4)), ((3, 0), (0, 4))]
    feeds, layers = {}, []
    for i, (sa, sb) in enumerate(pairs):
        feeds[f"a{i}"], feeds[f"b{i}"] = rand(*sa), rand(*sb)
        layers.append(n.net.add_matrix_multiply(n.input(f"a{i}", sa), M.NONE, n.input(f"b{i}", sb), M.NONE))
    n.mark(*(layer.get_output(0) for layer in layers))
    got = n.run(**feeds)
    return [(g, feeds[f"a{i}"].astype(np.float64) @ feeds[f"b{i}"].astype(np.float64)) for i, g in enumerate(got)]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)
