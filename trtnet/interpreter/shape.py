"""Layers that move data without arithmetic: SHUFFLE, CONCATENATION, SLICE, PADDING, SHAPE, SQUEEZE, UNSQUEEZE;
and ASSERTION, which checks a shape condition."""

from __future__ import annotations

import itertools
import math

import numpy as np

from trtnet.interpreter._common import (
    LayerCall,
    dims,
    enum_name,
    int_vector,
    normalize_axis,
    pad_trailing,
    register,
)


def _permutation(call: LayerCall, perm: tuple[int, ...], rank: int, what: str) -> tuple[int, ...]:
    # TensorRT reads a Permutation back with all 8 slots filled (identity past the rank): keep `rank` of them.
    perm = perm[:rank]
    if sorted(perm) != list(range(rank)):
        raise call.fail(f"{what} {perm} is not a permutation of {rank} dims")
    return perm


def _reshape_target(call: LayerCall, shape: tuple[int, ...], spec: tuple[int, ...]) -> tuple[int, ...]:
    """Resolves placeholder 0s (when zero_is_placeholder) and one -1 in a reshape spec."""
    placeholder = call.setting("zero_is_placeholder", lambda layer: bool(layer.zero_is_placeholder))
    out = []
    for i, d in enumerate(spec):
        if d == 0 and placeholder:
            if i >= len(shape):
                raise call.fail(f"reshape dim {i} is a 0 placeholder but the input has rank {len(shape)}")
            out.append(shape[i])
        else:
            out.append(d)
    total = math.prod(shape)
    if out.count(-1) > 1:
        raise call.fail(f"reshape dims {spec} have more than one -1")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or total % known:
            raise call.fail(f"cannot reshape {shape} to {spec}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total:
        raise call.fail(f"cannot reshape {shape} ({total} elements) to {tuple(out)}")
    return tuple(out)


@register("SHUFFLE", "IShuffleLayer")
def shuffle(call: LayerCall) -> list[np.ndarray]:
    """first_transpose, then reshape (static dims or a shape tensor on input 1), then second_transpose."""
    x = call.input(0)
    first, second = call.setting(
        "transposes", lambda layer: (dims(layer.first_transpose), dims(layer.second_transpose))
    )
    x = np.transpose(x, _permutation(call, first, x.ndim, "first_transpose"))
    dynamic = call.optional(1)
    if dynamic is not None:
        spec: tuple[int, ...] | None = int_vector(call, dynamic, "reshape shape input")
    else:
        spec = call.setting(
            "reshape_dims", lambda layer: None if layer.reshape_dims is None else dims(layer.reshape_dims)
        )
    if spec is not None:
        x = x.reshape(_reshape_target(call, x.shape, spec))
    x = np.transpose(x, _permutation(call, second, x.ndim, "second_transpose"))
    # A view where numpy can make one (no handler writes into its inputs; run_network copies outputs that are
    # views). Not np.ascontiguousarray: it would turn a 0-D result (a reshape to a scalar) into shape (1,).
    return [x]


@register("CONCATENATION", "IConcatenationLayer")
def concatenation(call: LayerCall) -> list[np.ndarray]:
    """Concatenate all inputs along `axis`."""
    xs = [call.input(i) for i in range(len(call.inputs))]
    if len({x.dtype for x in xs}) != 1:
        raise call.fail(f"inputs have different dtypes {[str(x.dtype) for x in xs]}")
    axis = normalize_axis(call.setting("axis", lambda layer: int(layer.axis)), xs[0].ndim)
    try:
        return [np.concatenate(xs, axis=axis)]
    except ValueError as err:
        raise call.fail(f"cannot concatenate shapes {[x.shape for x in xs]} on axis {axis}: {err}") from None


def _slice_indices(
    call: LayerCall, mode: str, n: int, start: int, size: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Source indices along one axis and a mask of those that are in bounds (for FILL)."""
    idx = start + np.arange(size, dtype=np.int64) * stride
    valid = (idx >= 0) & (idx < n)
    if mode == "STRICT_BOUNDS":
        if not valid.all():
            raise call.fail(f"slice start {start} stride {stride} size {size} leaves an axis of {n} (STRICT_BOUNDS)")
        return idx, valid
    if n == 0:
        if size == 0 or mode == "FILL":  # FILL: every position outside the input, so the fill value
            return np.zeros_like(idx), valid
        raise call.fail(f"cannot sample {size} values from an empty axis in {mode} mode")
    if mode == "WRAP":
        return np.mod(idx, n), np.ones_like(valid)
    if mode == "CLAMP":
        return np.clip(idx, 0, n - 1), np.ones_like(valid)
    if mode == "FILL":
        return np.clip(idx, 0, n - 1), valid
    if mode == "REFLECT":
        if n == 1:
            return np.zeros_like(idx), np.ones_like(valid)
        period = 2 * (n - 1)
        m = np.mod(idx, period)
        return np.where(m < n, m, period - m), np.ones_like(valid)
    raise call.fail(f"unsupported slice mode {mode}")


def _static_axes(layer: object) -> tuple[int, ...]:
    """The slice's `axes` attribute (absent in older TensorRT bindings; None or empty when unset)."""
    axes = getattr(layer, "axes", None)
    return () if axes is None else dims(axes)


def _in_bounds(start: int, size: int, stride: int, n: int) -> bool:
    """Whether every index a slice reads along one axis lies in [0, n)."""
    last = start + (size - 1) * stride
    return size == 0 or (0 <= start < n and 0 <= last < n)


def _basic_slice(start: int, size: int, stride: int) -> slice:
    """The Python slice reading `size` elements from `start` by `stride` (all in bounds)."""
    if size == 0:
        return slice(0, 0)
    last = start + (size - 1) * stride
    if stride > 0:
        return slice(start, last + 1, stride)
    return slice(start, last - 1 if last > 0 else None, stride)


@register("SLICE", "ISliceLayer")
def slice_(call: LayerCall) -> list[np.ndarray]:
    """start/shape/stride from attributes or inputs 1-3, fill value on input 4, optional axes on input 5."""
    x = call.input(0)
    rank = x.ndim

    def param(i: int, attr: str, what: str) -> tuple[int, ...]:
        value = call.optional(i)
        # The attribute is read only when no input overrides it: TensorRT warns on reading a dynamic one.
        if value is not None:
            return int_vector(call, value, what)
        return call.setting(attr, lambda layer: dims(getattr(layer, attr)))

    start = param(1, "start", "start")
    size = param(2, "shape", "size")
    stride = param(3, "stride", "stride")
    axes_in = call.optional(5)
    static_axes = call.setting("axes", _static_axes)
    if axes_in is not None or static_axes:
        # With axes (an input, or the attribute TensorRT's ONNX parser sets), start/size/stride speak only of
        # those axes; the rest are taken whole.
        given = int_vector(call, axes_in, "axes") if axes_in is not None else static_axes
        axes = [normalize_axis(a, rank) for a in given]
        if len(axes) != len(start) or len(set(axes)) != len(axes) or not all(0 <= a < rank for a in axes):
            raise call.fail(f"slice axes {given} do not fit start {start} and input rank {rank}")
        full_start, full_size, full_stride = [0] * rank, list(x.shape), [1] * rank
        for j, a in enumerate(axes):
            full_start[a], full_size[a], full_stride[a] = start[j], size[j], stride[j]
        start, size, stride = tuple(full_start), tuple(full_size), tuple(full_stride)
    if not len(start) == len(size) == len(stride) == rank:
        raise call.fail(f"start {start}, size {size}, stride {stride} do not match input rank {rank}")
    mode = call.setting("mode", lambda layer: enum_name(layer.mode))
    index, masks = [], []
    for a in range(rank):
        idx, valid = _slice_indices(call, mode, x.shape[a], start[a], size[a], stride[a])
        index.append(idx)
        masks.append(valid)
    if rank and 0 not in stride and all(_in_bounds(*abcd) for abcd in zip(start, size, stride, x.shape)):
        # Every index in bounds, so every mode reads the same elements: copied from a strided view, not gathered
        # (Swin's window slices took half a millisecond each through np.ix_).
        return [np.array(x[tuple(_basic_slice(*abc) for abc in zip(start, size, stride))], order="C", copy=True)]
    if mode == "FILL" and x.size == 0:
        out = np.zeros(size, x.dtype)  # nothing to read: every position takes the fill value below
    else:
        out = x[np.ix_(*index)] if rank else x.copy()
    if mode == "FILL":
        keep = np.ones(size, dtype=bool)
        for a, valid in enumerate(masks):
            keep &= valid.reshape((-1,) + (1,) * (rank - a - 1))
        fill = call.optional(4)
        value = np.zeros((), x.dtype) if fill is None else np.asarray(fill).reshape(())
        out = np.where(keep, out, value.astype(x.dtype))
    return [np.array(out, order="C", copy=True)]  # not ascontiguousarray: it makes 0-D arrays 1-D


@register("PADDING", "IPaddingLayer")
def padding(call: LayerCall) -> list[np.ndarray]:
    """Zero padding (negative amounts crop) of the trailing dims named by pre/post_padding_nd."""
    x = call.input(0)
    pre, post = dims(call.layer.pre_padding_nd), dims(call.layer.post_padding_nd)
    if len(pre) != len(post) or len(pre) > x.ndim:
        raise call.fail(f"padding {pre}/{post} does not fit input rank {x.ndim}")
    return [pad_trailing(x, pre, post, 0)]


@register("SHAPE", "IShapeLayer")
def shape(call: LayerCall) -> list[np.ndarray]:
    """The input's shape as a 1-D INT64 tensor."""
    return [np.array(call.input(0).shape, dtype=np.int64)]


@register("SQUEEZE", "ISqueezeLayer")
def squeeze(call: LayerCall) -> list[np.ndarray]:
    """Removes the size-1 axes listed by input 1; without it, the axes TensorRT chose when the layer was made, those
    of static size 1 then (a dynamic axis fixed later to 1 stays): of the size-1 axes, those whose removal leaves
    the output's dims as TensorRT infers them (a size-1 axis removed or another, the values are the same)."""
    x = call.input(0)
    if call.optional(1) is None:
        out = call.setting("squeezed", lambda layer: dims(layer.get_output(0).shape))
        ones = [a for a in range(x.ndim) if x.shape[a] == 1]
        for drop in itertools.combinations(ones, x.ndim - len(out)) if x.ndim >= len(out) else ():
            rest = [d for a, d in enumerate(x.shape) if a not in drop]
            if all(o < 0 or o == d for o, d in zip(out, rest)):
                return [np.squeeze(x, axis=drop)]
        raise call.fail(f"no size-1 axes of shape {x.shape} leave the output TensorRT infers, {out}")
    axes = sorted({normalize_axis(a, x.ndim) for a in int_vector(call, call.input(1), "axes")})
    bad = [a for a in axes if not 0 <= a < x.ndim or x.shape[a] != 1]
    if bad:
        raise call.fail(f"cannot squeeze axes {bad} of shape {x.shape}")
    return [np.squeeze(x, axis=tuple(axes))]


@register("UNSQUEEZE", "IUnsqueezeLayer")
def unsqueeze(call: LayerCall) -> list[np.ndarray]:
    """Inserts size-1 axes at the positions (in the output) listed by input 1."""
    x = call.input(0)
    given = int_vector(call, call.input(1), "axes")
    rank = x.ndim + len(given)
    axes = sorted({normalize_axis(a, rank) for a in given})
    if len(axes) != len(given) or any(not 0 <= a < rank for a in axes):
        raise call.fail(f"bad unsqueeze axes {given} for input rank {x.ndim}")
    return [np.expand_dims(x, axis=tuple(axes))]


@register("ASSERTION", "IAssertionLayer")
def assertion(call: LayerCall) -> list[np.ndarray]:
    """No output; fails, with the layer's message, where any element of its BOOL condition is false."""
    cond = call.input(0)
    if cond.dtype != np.bool_:
        raise call.fail(f"the condition must be BOOL, got {cond.dtype}")
    if not cond.all():
        raise call.fail(f"assertion failed: {call.layer.message}")
    return []
