"""Products: MATRIX_MULTIPLY, EINSUM (float32 accumulation, like TensorRT's tensor-core paths)."""
from __future__ import annotations

import numpy as np

from trtnet.reference._common import LayerCall, compute, register, rounded


def _operand(call: LayerCall, x: np.ndarray, op: str, which: int) -> np.ndarray:
    """The operand as a stack of matrices: TRANSPOSE swaps the last two dims; VECTOR adds the missing one."""
    if op == "NONE":
        if x.ndim < 2:
            raise call.fail(f"input {which} of rank {x.ndim} needs op VECTOR")
        return x
    if op == "TRANSPOSE":
        if x.ndim < 2:
            raise call.fail(f"input {which} of rank {x.ndim} cannot be transposed")
        return np.swapaxes(x, -1, -2)
    if op == "VECTOR":
        # A vector on the left is a row [1, K]; on the right a column [K, 1].
        return x[..., None, :] if which == 0 else x[..., :, None]
    raise call.fail(f"unsupported matrix operation {op}")


@register("MATRIX_MULTIPLY", "IMatrixMultiplyLayer")
def matrix_multiply(call: LayerCall) -> list[np.ndarray]:
    """Batched matmul with op0/op1 (NONE, TRANSPOSE, VECTOR) and broadcasting of size-1 batch dims."""
    a_src, b_src = call.input(0), call.input(1)
    op0, op1 = call.layer.op0.name, call.layer.op1.name
    if a_src.dtype != b_src.dtype:
        raise call.fail(f"inputs have dtypes {a_src.dtype} and {b_src.dtype}")
    a = _operand(call, compute(a_src), op0, 0)
    b = _operand(call, compute(b_src), op1, 1)
    if a.shape[-1] != b.shape[-2]:
        raise call.fail(f"contraction dims differ: {a_src.shape} ({op0}) x {b_src.shape} ({op1})")
    try:
        r = np.matmul(a, b)
    except ValueError as err:
        raise call.fail(f"batch dims of {a_src.shape} and {b_src.shape} do not broadcast: {err}") from None
    if op1 == "VECTOR":
        r = r[..., 0]
    if op0 == "VECTOR":
        r = r[..., 0, :] if op1 != "VECTOR" else r[..., 0]
    return [rounded(r, a_src.dtype)]


@register("EINSUM", "IEinsumLayer")
def einsum(call: LayerCall) -> list[np.ndarray]:
    """Einstein summation with the layer's equation."""
    xs = [call.input(i) for i in range(len(call.inputs))]
    equation = str(call.layer.equation)
    try:
        r = np.einsum(equation, *[compute(x) for x in xs])
    except ValueError as err:
        raise call.fail(f"einsum {equation!r} on shapes {[x.shape for x in xs]}: {err}") from None
    return [rounded(r, xs[0].dtype)]
