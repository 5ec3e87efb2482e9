"""Index-driven layers: GATHER (DEFAULT, ELEMENT, ND), SCATTER (ELEMENT, ND), ONE_HOT, NON_ZERO, REVERSE_SEQUENCE."""

from __future__ import annotations

import math

import numpy as np

from trtnet.interpreter._common import LayerCall, enum_name, normalize_axis, np_dtype, register, scalar_int


def _wrapped(call: LayerCall, idx: np.ndarray, n: int, what: str) -> np.ndarray:
    """Indices with negatives counted from the end; out-of-range ones are an error."""
    if not np.issubdtype(idx.dtype, np.integer):
        raise call.fail(f"{what} must be integers, got {idx.dtype}")
    idx = idx.astype(np.int64)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise call.fail(f"{what} value {int(idx[bad].reshape(-1)[0])} is out of range for a dim of {n}")
    return np.where(idx < 0, idx + n, idx)


def _gather_nd(call: LayerCall, data: np.ndarray, idx: np.ndarray, batch_dims: int) -> np.ndarray:
    q = idx.shape[-1]
    batch = data.shape[:batch_dims]
    if idx.shape[:batch_dims] != batch:
        raise call.fail(f"batch dims of data {data.shape} and indices {idx.shape} differ")
    if batch_dims + q > data.ndim:
        raise call.fail(f"index tuples of length {q} exceed data rank {data.ndim}")
    nb, m = math.prod(batch), math.prod(idx.shape[batch_dims:-1])  # not -1 in reshapes: sizes may hold a 0
    flat_data = data.reshape((nb,) + data.shape[batch_dims:])
    flat_idx = idx.reshape((nb, m, q))
    picked = []
    for i in range(nb):
        coords = tuple(_wrapped(call, flat_idx[i, :, j], data.shape[batch_dims + j], "ND index") for j in range(q))
        # An empty index tuple picks the whole of its batch entry, once per tuple.
        picked.append(flat_data[i][coords] if q else np.broadcast_to(flat_data[i], (m,) + flat_data[i].shape))
    out = np.stack(picked) if picked else np.zeros((0, m) + data.shape[batch_dims + q :], data.dtype)
    return out.reshape(batch + idx.shape[batch_dims:-1] + data.shape[batch_dims + q :])


@register("GATHER", "IGatherLayer")
def gather(call: LayerCall) -> list[np.ndarray]:
    """DEFAULT gathers slices along `axis` (optionally per leading batch dim), ELEMENT gathers single
    elements along `axis`, ND gathers index tuples after num_elementwise_dims batch dims."""
    data, idx = call.input(0), call.input(1)
    mode, ne, given_axis = call.setting(
        "gather", lambda layer: (enum_name(layer.mode), int(layer.num_elementwise_dims), int(layer.axis))
    )
    if mode == "ND":
        return [_gather_nd(call, data, idx, ne)]
    axis = normalize_axis(given_axis, data.ndim)
    idx = _wrapped(call, idx, data.shape[axis], "index")
    if mode == "ELEMENT":
        return [np.take_along_axis(_element_view(call, data, idx, axis), idx, axis=axis)]
    if mode != "DEFAULT":
        raise call.fail(f"unsupported gather mode {mode}")
    if ne == 0:
        return [np.take(data, idx, axis=axis)]
    if ne != 1 or axis < 1 or (data.shape[0] != idx.shape[0] and 1 not in (data.shape[0], idx.shape[0])):
        raise call.fail(f"num_elementwise_dims={ne} with axis {axis}, data {data.shape}, indices {idx.shape}")
    # The leading dim is shared, broadcast where one side has 1: batch b of the output gathers from batch b of
    # data with batch b of indices.
    count = max(data.shape[0], idx.shape[0]) if 0 not in (data.shape[0], idx.shape[0]) else 0
    parts = [
        np.take(data[min(b, data.shape[0] - 1)], idx[min(b, idx.shape[0] - 1)], axis=axis - 1) for b in range(count)
    ]
    shape = (count,) + data.shape[1:axis] + idx.shape[1:] + data.shape[axis + 1 :]
    return [np.stack(parts).reshape(shape) if parts else np.zeros(shape, data.dtype)]


def _element_view(call: LayerCall, data: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """The part of data an ELEMENT gather or scatter reaches: the output has the indices' shape, so on the other
    axes the indices may be shorter than data (ONNX GatherElements), never longer. A view."""
    if idx.ndim != data.ndim or any(i > d for a, (i, d) in enumerate(zip(idx.shape, data.shape)) if a != axis):
        raise call.fail(f"ELEMENT indices {idx.shape} do not fit data {data.shape} off axis {axis}")
    return data[tuple(slice(None) if a == axis else slice(0, i) for a, i in enumerate(idx.shape))]


@register("ONE_HOT", "IOneHotLayer")
def one_hot(call: LayerCall) -> list[np.ndarray]:
    """values[1] where index == position along the new `axis` of size depth, values[0] elsewhere."""
    idx, values, depth_in = call.input(0), call.input(1), call.input(2)
    depth = scalar_int(call, depth_in, "depth")
    if values.size != 2:
        raise call.fail(f"values must hold [off, on], got shape {values.shape}")
    axis = normalize_axis(int(call.layer.axis), idx.ndim + 1)
    if not np.issubdtype(idx.dtype, np.integer):
        raise call.fail(f"indices must be integers, got {idx.dtype}")
    # Negative indices count from the end of the depth; anything still out of range is all "off".
    pos = np.where(idx < 0, idx.astype(np.int64) + depth, idx.astype(np.int64))
    ramp = np.arange(depth).reshape((-1,) + (1,) * (idx.ndim - axis))
    hot = np.expand_dims(pos, axis) == ramp
    off, on = values.reshape(-1)
    return [np.where(hot, on, off).astype(values.dtype)]


@register("SCATTER", "IScatterLayer")
def scatter(call: LayerCall) -> list[np.ndarray]:
    """A copy of data with updates written at indices: ELEMENT along `axis` (ONNX ScatterElements), ND at
    index tuples (ONNX ScatterND). Where indices repeat, the last update wins, as numpy assigns."""
    data, idx, updates = call.input(0), call.input(1), call.input(2)
    if updates.dtype != data.dtype:
        raise call.fail(f"updates dtype {updates.dtype} differs from data dtype {data.dtype}")
    out = data.copy()
    mode = enum_name(call.layer.mode)
    if mode == "ELEMENT":
        axis = normalize_axis(int(call.layer.axis), data.ndim)
        if idx.shape != updates.shape:
            raise call.fail(f"ELEMENT scatter needs indices {idx.shape} and updates {updates.shape} of one shape")
        wrapped = _wrapped(call, idx, data.shape[axis], "index")
        np.put_along_axis(_element_view(call, out, idx, axis), wrapped, updates, axis=axis)  # through the view
        return [out]
    if mode != "ND":
        raise call.fail(f"unsupported scatter mode {mode}")
    q = idx.shape[-1]
    if q > data.ndim or updates.shape != idx.shape[:-1] + data.shape[q:]:
        raise call.fail(f"ND scatter: indices {idx.shape} and updates {updates.shape} do not fit data {data.shape}")
    m = math.prod(idx.shape[:-1])
    flat_idx = idx.reshape(m, q)
    coords = tuple(_wrapped(call, flat_idx[:, j], data.shape[j], "ND index") for j in range(q))
    if q:
        out[coords] = updates.reshape((m,) + data.shape[q:])
    elif m:  # an empty index tuple names the whole of data: the last update wins
        out[...] = updates.reshape((m,) + data.shape)[-1]
    return [out]


@register("NON_ZERO", "INonZeroLayer")
def non_zero(call: LayerCall) -> list[np.ndarray]:
    """The indices of the non-zero elements as [rank, count], in row-major order (ONNX NonZero)."""
    x = call.input(0)
    found = np.stack(np.nonzero(np.atleast_1d(x)))[: x.ndim]  # a 0-D input has no index rows
    return [found.astype(np_dtype(call.layer.indices_type))]


@register("REVERSE_SEQUENCE", "IReverseSequenceLayer")
def reverse_sequence(call: LayerCall) -> list[np.ndarray]:
    """For each batch entry b, its first lengths[b] elements along sequence_axis reversed, the rest kept."""
    x, lengths = call.input(0), call.input(1)
    batch_axis = normalize_axis(int(call.layer.batch_axis), x.ndim)
    seq_axis = normalize_axis(int(call.layer.sequence_axis), x.ndim)
    n_seq = x.shape[seq_axis]
    lengths = np.asarray(lengths).reshape(-1).astype(np.int64)
    if lengths.size != x.shape[batch_axis] or (lengths < 0).any() or (lengths > n_seq).any():
        raise call.fail(f"lengths {lengths.tolist()} do not fit batch {x.shape[batch_axis]} x sequence {n_seq}")
    pos = np.arange(n_seq)
    # source[b, t] = lengths[b] - 1 - t inside the reversed prefix, t after it
    source = np.where(pos[None, :] < lengths[:, None], lengths[:, None] - 1 - pos[None, :], pos[None, :])
    shape = [1] * x.ndim
    shape[batch_axis], shape[seq_axis] = lengths.size, n_seq
    if batch_axis > seq_axis:
        source = source.T
    index = np.broadcast_to(source.reshape(shape), x.shape)
    return [np.take_along_axis(x, index, axis=seq_axis)]
