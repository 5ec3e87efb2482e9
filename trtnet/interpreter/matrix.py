"""Products: MATRIX_MULTIPLY, EINSUM, accumulated in float64 and rounded once to the layer's output type."""

from __future__ import annotations

import math

import numpy as np

from trtnet.interpreter._common import LayerCall, cached_wide, enum_name, register, rounded, transient_wide, wide


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
    op0, op1 = call.setting("ops", lambda layer: (enum_name(layer.op0), enum_name(layer.op1)))
    if a_src.dtype != b_src.dtype:
        raise call.fail(f"inputs have dtypes {a_src.dtype} and {b_src.dtype}")
    # Widened to float64 inside _matmul, a block at a time where one operand is a large weight matrix.
    a = _operand(call, a_src, op0, 0)
    b = _operand(call, b_src, op1, 1)
    if a.shape[-1] != b.shape[-2]:
        raise call.fail(f"contraction dims differ: {a_src.shape} ({op0}) x {b_src.shape} ({op1})")
    try:
        r = _matmul(a, b)
    except ValueError as err:
        raise call.fail(f"batch dims of {a_src.shape} and {b_src.shape} do not broadcast: {err}") from None
    if op1 == "VECTOR":
        r = r[..., 0]
    if op0 == "VECTOR":
        r = r[..., 0, :] if op1 != "VECTOR" else r[..., 0]
    return [rounded(r, a_src.dtype)]


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.matmul`, with stacked products routed to one 2-D BLAS call each.

    numpy's own loop over stacked (and broadcast) matrices is tens of times slower than BLAS: a weight with
    no batch dims meets the whole left operand as one [rows, K] matrix; other stacks go matrix by matrix.
    """
    if a.ndim <= 2 and b.ndim <= 2:
        return _weight_product(wide(a), b) if a.ndim == 2 else np.matmul(wide(a), wide(b))
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if all(d == 1 for d in b.shape[:-2]):
        # Sizes written out, not -1: with an empty contraction (K = 0) numpy cannot infer a dim of a size-0 array.
        flat = wide(np.broadcast_to(a, (*batch, *a.shape[-2:])).reshape(math.prod(batch) * a.shape[-2], a.shape[-1]))
        return _weight_product(flat, b.reshape(b.shape[-2:])).reshape(*batch, a.shape[-2], b.shape[-1])
    if all(d == 1 for d in a.shape[:-2]):
        # One left matrix against a stack (fused Q/K/V weights per head): a single product against the stack laid
        # side by side, [K, batch * N], a view when the stack's memory allows (a weight read transposed does).
        k, n = b.shape[-2:]
        side = np.moveaxis(wide(np.broadcast_to(b, (*batch, k, n))), -2, 0).reshape(k, math.prod(batch) * n)
        r = wide(a.reshape(a.shape[-2:])) @ side
        return np.moveaxis(r.reshape(a.shape[-2], *batch, n), 0, -2)
    a, b = wide(a), wide(b)
    count = math.prod(batch)
    if count > 4096:  # many tiny matrices: numpy's loop is the better one
        return np.matmul(a, b)
    a_full = np.broadcast_to(a, (*batch, *a.shape[-2:])).reshape(count, *a.shape[-2:])
    b_full = np.broadcast_to(b, (*batch, *b.shape[-2:])).reshape(count, *b.shape[-2:])
    out = np.empty((count, a.shape[-2], b.shape[-1]), np.result_type(a, b))
    for i in range(count):
        np.matmul(a_full[i], b_full[i], out=out[i])
    return out.reshape(*batch, a.shape[-2], b.shape[-1])


# Columns of a weight matrix widened to float64 at a time: about 2 MB, so that the widened block is still in
# cache when BLAS reads it (widening all of VGG16's 25088 x 4096 weight first wrote and read 800 MB).
_BLOCK_VALUES = 1 << 18
# Weight matrices up to this many values are widened whole (32 MB in float64): narrower blocks of a matrix with
# many rows make for thin, slower products (ViT's 3072 x 768 went 85 columns at a time).
_WHOLE_VALUES = 1 << 22


def _weight_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (float64, [M, K]) @ b ([K, N], any float type), b widened to float64 a block of columns at a time."""
    cached = cached_wide(b)  # weights a prepared network keeps widened (from its second run)
    if cached is not None:
        return a @ cached
    if b.dtype == np.float64 or b.size <= _WHOLE_VALUES:
        return a @ transient_wide(b)  # widened into the run's scratch, not fresh memory (see WeightCache.scratch)
    out = np.empty((a.shape[0], b.shape[1]), np.float64)
    step = max(1, _BLOCK_VALUES // b.shape[0])
    for j in range(0, b.shape[1], step):
        # Into a fresh array, then copied: numpy leaves BLAS for its own loop when `out=` is a strided slice and
        # the block is column-major (a transposed weight), measured 6x slower.
        out[:, j : j + step] = a @ transient_wide(b[:, j : j + step])
    return out


@register("EINSUM", "IEinsumLayer")
def einsum(call: LayerCall) -> list[np.ndarray]:
    """Einstein summation with the layer's equation."""
    xs = [call.input(i) for i in range(len(call.inputs))]
    equation = str(call.layer.equation)
    try:
        r = np.einsum(equation, *[wide(x) for x in xs], optimize=True)
    except ValueError as err:
        raise call.fail(f"einsum {equation!r} on shapes {[x.shape for x in xs]}: {err}") from None
    return [rounded(r, xs[0].dtype)]
