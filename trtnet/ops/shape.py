"""Shape ops: reshape, permute, slicing, concatenation, padding, resizing, gathering, casting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trtnet.backend import get_trt
from trtnet.dtypes import to_trt
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.ops.core import constant, normalize_axis, out, set_reshape, shared_constant
from trtnet.tensor import Tensor


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Reshape; one dim may be -1. With several dynamic input dims (batch and sequence), each -1 copies one of
    them at run time, in order (see `core.set_reshape`)."""
    shape = tuple(int(d) for d in shape)
    if sum(d < 0 for d in shape) > 1 and sum(d < 0 for d in x.shape) < 2:
        raise NetworkError(f"reshape of {x} to {shape}: at most one dimension may be -1")
    layer = current_graph().network.add_shuffle(x.itensor)
    set_reshape(layer, x, shape)
    return out(layer, "reshape")


def permute(x: Tensor, order: Sequence[int]) -> Tensor:
    """`x.permute(*order)`."""
    order = tuple(normalize_axis(a, x.ndim) for a in order)
    if sorted(order) != list(range(x.ndim)):
        raise NetworkError(f"permute of {x}: {order} is not a permutation of {x.ndim} axes")
    layer = current_graph().network.add_shuffle(x.itensor)
    layer.first_transpose = order
    return out(layer, "permute")


def shuffle(
    x: Tensor,
    first: Sequence[int] | None = None,
    shape: Sequence[int] | None = None,
    second: Sequence[int] | None = None,
) -> Tensor:
    """`x.permute(*first).reshape(*shape).permute(*second)` as the one `IShuffleLayer` TensorRT has for it.

    >>> y = ops.shuffle(o, first=(0, 2, 1, 3), shape=(b, s, h * d))   # merge attention heads: one layer
    """
    layer = current_graph().network.add_shuffle(x.itensor)
    rank = x.ndim
    if first is not None:
        first = tuple(normalize_axis(a, rank) for a in first)
        if sorted(first) != list(range(rank)):
            raise NetworkError(f"shuffle of {x}: {first} is not a permutation of {rank} axes")
        layer.first_transpose = first
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        if sum(d < 0 for d in shape) > 1 and sum(d < 0 for d in x.shape) < 2:
            raise NetworkError(f"shuffle of {x} to {shape}: at most one dimension may be -1")
        set_reshape(layer, x, shape, first)
        rank = len(shape)
    if second is not None:
        second = tuple(normalize_axis(a, rank) for a in second)
        if sorted(second) != list(range(rank)):
            raise NetworkError(f"shuffle of {x}: {second} is not a permutation of {rank} axes")
        layer.second_transpose = second
    return out(layer, "shuffle")


def transpose(x: Tensor, a: int, b: int) -> Tensor:
    order = list(range(x.ndim))
    a, b = normalize_axis(a, x.ndim), normalize_axis(b, x.ndim)
    order[a], order[b] = order[b], order[a]
    return permute(x, order)


def flatten(x: Tensor, start: int = 0, end: int = -1) -> Tensor:
    """`torch.flatten(x, start, end)`; dynamic dims outside the flattened range are kept."""
    start, end = normalize_axis(start, x.ndim), normalize_axis(end, x.ndim)
    dims = x.shape
    merged = dims[start : end + 1]
    if any(d < 0 for d in merged) and sum(d < 0 for d in dims) > 1 and len(merged) > 1:
        raise NetworkError(
            f"flatten of {x} over axes {start}..{end}: merging a dynamic dim is only possible when "
            "it is the only dynamic dim"
        )
    size = -1 if any(d < 0 for d in merged) else int(np.prod(merged))
    return reshape(x, dims[:start] + (size,) + dims[end + 1 :])


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    axis = normalize_axis(axis, x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x: Tensor, axis: int) -> Tensor:
    axis = normalize_axis(axis, x.ndim)
    if x.shape[axis] != 1:
        raise NetworkError(f"squeeze of {x}: axis {axis} has size {x.shape[axis]}, not 1")
    return reshape(x, x.shape[:axis] + x.shape[axis + 1 :])


def concat(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    """`torch.cat(xs, axis)`."""
    layer = current_graph().network.add_concatenation([t.itensor for t in xs])
    layer.axis = normalize_axis(axis, xs[0].ndim)
    return out(layer, "concat")


def narrow_like(x: Tensor, axis: int, like: Tensor, like_axis: int) -> Tensor:
    """The first `like.shape[like_axis]` entries of `x` along `axis` (`x.narrow(axis, 0, n)`), n read at run
    time when that dim is dynamic: rows 0..S-1 of a position table for a sequence of length S.

    >>> pos = ops.narrow_like(ops.constant(table[None]), 1, input_ids, 1)     # [1, S, D]
    """
    axis, like_axis = normalize_axis(axis, x.ndim), normalize_axis(like_axis, like.ndim)
    n = like.shape[like_axis]
    if n >= 0:
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, n)
        return getitem(x, tuple(index))
    if any(d < 0 for d in x.shape):
        raise NetworkError(f"narrow_like of {x}: its own dims must be static")
    graph = current_graph()
    size = list(x.shape)
    size[axis] = 0
    layer = graph.network.add_slice(x.itensor, (0,) * x.ndim, tuple(size), (1,) * x.ndim)
    n_t = gather(shape_of(like), constant(np.array([like_axis], np.int32), op="axis"), axis=0)
    pieces = [n_t if a == axis else constant(np.array([d], np.int64), op="dim") for a, d in enumerate(x.shape)]
    layer.set_input(2, concat(pieces, 0).itensor)
    return out(layer, "narrow")


def shape_of(x: Tensor) -> Tensor:
    """The run-time shape of `x`, an int64 vector."""
    return out(current_graph().network.add_shape(x.itensor), "shape")


def strided_slice(x: Tensor, start: Sequence[int], size: Sequence[int], stride: Sequence[int] | None = None) -> Tensor:
    """`ISliceLayer`. A size of -1 keeps that (dynamic, whole) dimension as it is at run time."""
    stride = tuple(stride) if stride is not None else (1,) * x.ndim
    graph = current_graph()
    static = tuple(max(s, 0) for s in size)
    layer = graph.network.add_slice(x.itensor, tuple(start), static, stride)
    if any(s < 0 for s in size):
        layer.set_input(2, _runtime_size(x, [s < 0 for s in size], static).itensor)
    return out(layer, "slice")


def _runtime_size(x: Tensor, keep: Sequence[bool], fixed: Sequence[int]) -> Tensor:
    """shape(x) * keep + fixed, an int64 shape vector computed at run time for dynamic dims.

    Emitted once per network for each (x, keep, fixed): q, k and v sliced from one tensor share it.
    """
    graph = current_graph()
    key = (x.name, tuple(bool(k) for k in keep), tuple(int(f) for f in fixed))
    if key not in graph.memo.runtime_sizes:
        trt = get_trt()
        keep_t = shared_constant(np.array(key[1], np.int64), trt.int64, op="size_keep")
        fixed_t = shared_constant(np.array(key[2], np.int64), trt.int64, op="size_fixed")
        prod = graph.network.add_elementwise(shape_of(x).itensor, keep_t.itensor, trt.ElementWiseOperation.PROD)
        total = graph.network.add_elementwise(out(prod, "size").itensor, fixed_t.itensor, trt.ElementWiseOperation.SUM)
        graph.memo.runtime_sizes[key] = out(total, "size")
    return graph.memo.runtime_sizes[key]


def getitem(x: Tensor, index) -> Tensor:
    """Basic indexing: ints, slices with steps, `...` and `None`, as numpy does it."""
    index = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in index) > 1:
        raise NetworkError(f"index of {x}: more than one '...'")
    n_real = sum(i is not None and i is not Ellipsis for i in index)
    if n_real > x.ndim:
        raise NetworkError(f"index of {x}: {n_real} indices for rank {x.ndim}")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.ndim - n_real) + index[at + 1 :]
    else:
        index = index + (slice(None),) * (x.ndim - n_real)
    start, size, stride, final, dim = [], [], [], [], 0
    for i in index:
        if i is None:
            final.append(1)
            continue
        n = x.shape[dim]
        if isinstance(i, (int, np.integer)):
            if n >= 0 and not -n <= i < n:
                raise NetworkError(f"index {i} out of range for axis {dim} of {x}")
            start.append(int(i) % n if n >= 0 else int(i))
            size.append(1), stride.append(1)
        elif isinstance(i, slice):
            if n < 0 and i == slice(None):
                start.append(0), size.append(-1), stride.append(1)
                final.append(-1)
            elif n < 0:
                # A dynamic dim takes a slice of known size only: from a start >= 0 to a stop >= it, step 1.
                b, e = i.start or 0, i.stop
                if i.step not in (None, 1) or e is None or b < 0 or e < b:
                    raise NetworkError(
                        f"index of {x}: axis {dim} is dynamic; it takes ':' or a slice a:b with "
                        f"0 <= a <= b and step 1, not {i}"
                    )
                start.append(b), size.append(e - b), stride.append(1)
                final.append(e - b)
            else:
                b, e, s = i.indices(n)
                count = len(range(b, e, s))
                start.append(b), size.append(count), stride.append(s)
                final.append(count)
        else:
            raise NetworkError(f"index of {x}: unsupported index {i!r}")
        dim += 1
    y = strided_slice(x, start, size, stride)
    final_shape = tuple(final)
    return y if final_shape == y.shape else reshape(y, final_shape)


def split(x: Tensor, sizes: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """`torch.split`: chunks of `sizes` (one int: equal chunks of that size) along `axis`."""
    axis = normalize_axis(axis, x.ndim)
    n = x.shape[axis]
    if isinstance(sizes, int):
        sizes = [sizes] * (n // sizes) + ([n % sizes] if n % sizes else [])
    if sum(sizes) != n:
        raise NetworkError(f"split of {x}: sizes {list(sizes)} do not add up to {n}")
    parts, at = [], 0
    for s in sizes:
        index = [slice(None)] * x.ndim
        index[axis] = slice(at, at + s)
        parts.append(getitem(x, tuple(index)))
        at += s
    return parts


def chunk(x: Tensor, chunks: int, axis: int = 0) -> list[Tensor]:
    n = x.shape[normalize_axis(axis, x.ndim)]
    return split(x, -(-n // chunks), axis)


def roll(x: Tensor, shifts: Sequence[int], axes: Sequence[int]) -> Tensor:
    """`torch.roll` over static axes, as two slices and a concatenation per axis."""
    for shift, axis in zip(shifts, axes):
        axis = normalize_axis(axis, x.ndim)
        n = x.shape[axis]
        shift %= n
        if shift:
            head, tail = split(x, [n - shift, shift], axis)
            x = concat([tail, head], axis)
    return x


def pad(x: Tensor, pads: Sequence[int], value: float = 0.0) -> Tensor:
    """`F.pad` with PyTorch's order: (left, right, top, bottom, ...) from the last axis backwards."""
    starts, extra = [0] * x.ndim, [0] * x.ndim
    for i in range(len(pads) // 2):
        axis = x.ndim - 1 - i
        starts[axis] = -pads[2 * i]
        extra[axis] = pads[2 * i] + pads[2 * i + 1]
    sizes = [d + e for d, e in zip(x.shape, extra)]
    graph = current_graph()
    layer = graph.network.add_slice(x.itensor, tuple(starts), tuple(max(d, 0) for d in sizes), (1,) * x.ndim)
    dynamic = [d < 0 for d in x.shape]
    if any(dynamic):  # a dynamic dim (the batch): its padded size is known at run time only
        layer.set_input(
            2, _runtime_size(x, dynamic, [e if dyn else d for e, dyn, d in zip(extra, dynamic, sizes)]).itensor
        )
    layer.mode = get_trt().SampleMode.FILL
    if value != 0.0:
        layer.set_input(4, constant(np.array([value], np.float32), x.dtype, op="pad_value").itensor)
    return out(layer, "pad")


def interpolate_nearest(x: Tensor, scale: int) -> Tensor:
    """`F.interpolate(x, scale_factor=scale, mode="nearest")` for an integer scale (output index // scale)."""
    trt = get_trt()
    layer = current_graph().network.add_resize(x.itensor)
    layer.resize_mode = trt.InterpolationMode.NEAREST
    layer.scales = (1.0, 1.0) + (float(scale),) * (x.ndim - 2)
    layer.coordinate_transformation = trt.ResizeCoordinateTransformation.ASYMMETRIC
    layer.nearest_rounding = trt.ResizeRoundMode.FLOOR
    return out(layer, "upsample")


def gather(table: Tensor, indices: Tensor, axis: int = 0) -> Tensor:
    """`table.index_select`-style gather: out[..., i, ...] = table[indices[i]] along `axis`."""
    layer = current_graph().network.add_gather(table.itensor, indices.itensor, normalize_axis(axis, table.ndim))
    return out(layer, "gather")


def cast(x: Tensor, dtype: str | Any) -> Tensor:
    """Convert `x` to `dtype`, a DSL name ("bool", "float16"...) or TensorRT dtype (a no-op when it already is).

    >>> keep = ops.cast(attention_mask, "bool")
    """
    dtype = to_trt(dtype, "cast dtype")
    if x.dtype == dtype:
        return x
    return out(current_graph().network.add_cast(x.itensor, dtype), "cast")
