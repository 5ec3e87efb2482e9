"""What every op family needs: wrapping layer outputs, constants, scalar promotion, rank broadcasting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trtnet.backend import get_trt
from trtnet.dtypes import info, to_trt
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.tensor import Tensor

Scalar = int | float
TensorLike = Tensor | Scalar | np.ndarray


def out(layer, op: str, index: int = 0) -> Tensor:
    """Name `layer` after the current module and op, and wrap its output `index`."""
    graph = current_graph()
    graph.name(layer, op)
    return Tensor(graph.output(layer, op, index))


def constant(value: np.ndarray | Scalar, dtype: str | Any = None, op: str = "constant") -> Tensor:
    """A constant tensor stored in `dtype` (a DSL name or TensorRT dtype; default: the graph's compute dtype
    for float data, else the array's own integer or bool type)."""
    graph = current_graph()
    trt = get_trt()
    arr = np.asarray(value)
    if dtype is not None:
        dtype = to_trt(dtype, "constant dtype")
    else:
        if arr.dtype.kind == "f":
            dtype = graph.float_dtype
        elif arr.dtype == np.bool_:
            dtype = trt.bool
        elif arr.dtype == np.int64:
            dtype = trt.int64
        else:
            dtype = trt.int32
    shape = arr.shape if arr.ndim else (1,)
    layer = graph.network.add_constant(tuple(shape), graph.weights(arr.reshape(shape), dtype))
    return out(layer, op)


def shared_constant(value: np.ndarray, dtype: str | Any, op: str = "constant") -> Tensor:
    """A constant emitted once per network for each distinct content and dtype (unit scales, zero shifts)."""
    graph = current_graph()
    arr = np.ascontiguousarray(value)
    dtype = to_trt(dtype, "constant dtype")
    key = (arr.shape, arr.dtype.str, int(dtype), arr.tobytes())
    if key not in graph.memo.constants:
        graph.memo.constants[key] = constant(arr, dtype, op=op)
    return graph.memo.constants[key]


def as_tensor(value: TensorLike, like: Tensor) -> Tensor:
    """`value` as a Tensor of `like`'s dtype and rank (Python scalars become [1,...,1] constants)."""
    if isinstance(value, Tensor):
        return value
    kind = info(like.dtype)
    # Float scalars are written in float32 and rounded to `like`'s type by `constant`; others are cast to its
    # numpy type as numpy casts arrays (wrapping), since np.asarray(-1, np.uint8) raises under NumPy 2.
    arr = np.asarray(value, np.float32) if kind.is_float else np.asarray(value).astype(kind.numpy)
    if arr.ndim == 0:
        arr = arr.reshape((1,) * like.ndim)
    return constant(arr, like.dtype, op="scalar")


def expand_rank(x: Tensor, ndim: int) -> Tensor:
    """Prepend size-1 dims so that `x` has rank `ndim` (TensorRT broadcasts only between equal ranks)."""
    if x.ndim == ndim:
        return x
    if x.ndim > ndim:
        raise NetworkError(f"cannot lower rank of {x} to {ndim}")
    layer = current_graph().network.add_shuffle(x.itensor)
    set_reshape(layer, x, (1,) * (ndim - x.ndim) + x.shape)
    return out(layer, "broadcast")


def set_reshape(layer, x: Tensor, shape: tuple[int, ...], first: Sequence[int] | None = None) -> None:
    """Give the shuffle `layer` (of `x`, with first transpose `first`) the reshape `shape`.

    One -1 is inferred, as in PyTorch. With several, each -1 is a dynamic dim of the input copied at run time:
    the k-th -1 of `shape` is the k-th dynamic dim of the (transposed) input, so dynamic dims keep their order
    and are neither merged nor split: [B, S] -> [B, 1, 1, S], [B, 1, S, D] -> [B, S, D].
    """
    dims = x.shape if first is None else tuple(x.shape[a] for a in first)
    axes = list(range(x.ndim)) if first is None else list(first)
    wanted = sum(d < 0 for d in shape)
    layer.zero_is_placeholder = False
    if wanted <= 1:
        layer.reshape_dims = shape
        return
    dynamic = [a for a, d in zip(axes, dims) if d < 0]
    if len(dynamic) != wanted:
        raise NetworkError(
            f"reshape of {x} to {shape}: {wanted} dims are -1, but the input has {len(dynamic)} "
            "dynamic dims: with several -1, each must be one of the input's dynamic dims, in order"
        )
    graph = current_graph()
    key = (x.name, tuple(axes), shape)
    if key not in graph.memo.reshape_dims:
        # [shape(x)..., the static sizes...] gathered into the order of `shape`: one concat and one gather.
        static = [d for d in shape if d >= 0]
        table = [graph.network.add_shape(x.itensor).get_output(0)]
        if static:
            table.append(shared_constant(np.array(static, np.int64), "int64", op="dims").itensor)
        joined = out(graph.network.add_concatenation(table), "dims")
        order, k, j = [], 0, x.ndim
        for d in shape:
            order.append(dynamic[k] if d < 0 else j)
            k, j = (k + 1, j) if d < 0 else (k, j + 1)
        index = shared_constant(np.array(order, np.int32), "int32", op="dims_order")
        graph.memo.reshape_dims[key] = out(graph.network.add_gather(joined.itensor, index.itensor, 0), "dims")
    layer.set_input(1, graph.memo.reshape_dims[key].itensor)


def broadcast_pair(a: TensorLike, b: TensorLike) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors of one rank and dtype, scalars promoted to the tensor's dtype."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise NetworkError("an elementwise op needs at least one Tensor operand")
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    if not isinstance(b, Tensor):
        b = as_tensor(b, a)
    rank = max(a.ndim, b.ndim)
    return expand_rank(a, rank), expand_rank(b, rank)


def normalize_axis(axis: int, ndim: int, what: str = "axis") -> int:
    if not -ndim <= axis < ndim:
        raise NetworkError(f"{what} {axis} out of range for rank {ndim}")
    return axis % ndim


def axes_mask(axes: int | Sequence[int], ndim: int) -> int:
    """TensorRT's bitmask of axes."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    mask = 0
    for a in axes:
        mask |= 1 << normalize_axis(a, ndim)
    return mask
