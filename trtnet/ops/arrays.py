"""Constant arrays that behave like tensors: `trtnet.nn.Parameter` and the views taken of it in `forward`.

A model writes `x + self.pos` or `x * self.gamma.reshape(1, -1, 1, 1)` as in PyTorch. The parameter becomes one
constant layer per network however often it is used (cached per graph); its shape methods (`reshape`, `permute`,
`x[...]`, `expand`...) act on the numpy array and add no layer at all. A product or sum with a constant that
varies along one axis of the tensor only (a layer scale, a per-channel shift) is one `IScaleLayer` holding the
values, as `ops.layer_scale` emits, rather than a constant layer and an elementwise layer.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trtnet.errors import NetworkError
from trtnet.graph import Graph, current_graph
from trtnet.ops.core import constant, normalize_axis
from trtnet.ops.normalization import scale_channels
from trtnet.tensor import Tensor

# graph -> {(id of the source array, view steps, dtype): (source, Tensor)}; weak, so a finished graph goes away.
_EMITTED: weakref.WeakKeyDictionary[Graph, dict] = weakref.WeakKeyDictionary()


class ConstantArray:
    """A numpy-backed value usable wherever a Tensor is, inside `forward`. Subclasses give `shape`,
    `array()` (the float32 values) and `constant_name` (the op name of its constant layer)."""

    shape: tuple[int, ...]
    constant_name: str = "constant"

    def array(self) -> np.ndarray:
        raise NotImplementedError(type(self).__name__)

    def _source(self) -> tuple[ConstantArray, tuple]:
        """The array this one derives from and the view steps taken since (the cache key)."""
        return self, ()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def tensor(self, dtype: Any = None, rank: int | None = None) -> Tensor:
        """This array as a constant Tensor of the current network in `dtype` (default: the compute dtype), with
        size-1 dims in front up to `rank` (so that broadcasting needs no layer), emitted once per network."""
        graph = current_graph()
        dtype = graph.float_dtype if dtype is None else dtype
        rank = max(self.ndim, rank or 0)
        source, steps = self._source()
        emitted = _EMITTED.setdefault(graph, {})
        key = (id(source), steps, int(dtype), rank)
        if key not in emitted:
            value = self.array().reshape((1,) * (rank - self.ndim) + tuple(self.shape))
            emitted[key] = (source, constant(value, dtype, op=self.constant_name))  # keeps id(source) valid
        return emitted[key][1]

    # -- views: numpy does them, no layer --------------------------------------------------------------------
    def _view(self, step: tuple, fn: Callable[[np.ndarray], np.ndarray]) -> ArrayView:
        shape = np.empty(self.shape, dtype=np.bool_)  # the step on a dummy, so a bad one fails here, at its line
        try:
            shape = fn(shape).shape
        except (ValueError, IndexError, TypeError) as e:
            raise NetworkError(f"{self.constant_name} {tuple(self.shape)}: {step[0]}{step[1:]}: {e}") from None
        source, steps = self._source()
        return ArrayView(source, (*steps, step), fn, self, shape)

    def reshape(self, *shape: int | Sequence[int]) -> ArrayView:
        dims = _dims(shape)
        return self._view(("reshape", dims), lambda a: a.reshape(dims))

    view = reshape

    def permute(self, *order: int | Sequence[int]) -> ArrayView:
        dims = _dims(order)
        return self._view(("permute", dims), lambda a: a.transpose(dims))

    def transpose(self, a: int, b: int) -> ArrayView:
        return self._view(("transpose", a, b), lambda x: np.swapaxes(x, a, b))

    def unsqueeze(self, axis: int) -> ArrayView:
        return self._view(("unsqueeze", axis), lambda a: np.expand_dims(a, normalize_axis(axis, a.ndim + 1)))

    def squeeze(self, axis: int) -> ArrayView:
        return self._view(("squeeze", axis), lambda a: np.squeeze(a, axis))

    def flatten(self, start: int = 0, end: int = -1) -> ArrayView:
        def fn(a: np.ndarray) -> np.ndarray:
            s, e = normalize_axis(start, a.ndim), normalize_axis(end, a.ndim)
            return a.reshape(a.shape[:s] + (math.prod(a.shape[s : e + 1]),) + a.shape[e + 1 :])

        return self._view(("flatten", start, end), fn)

    def expand(self, *sizes: int | Sequence[int]) -> ArrayView:
        """`torch.Tensor.expand` to static sizes (-1 keeps a dim); a broadcast within the network needs none:
        `x + p` broadcasts `p` by PyTorch's rules."""
        dims = _dims(sizes)

        def fn(a: np.ndarray) -> np.ndarray:
            lead = len(dims) - a.ndim
            if lead < 0 or any(d < -1 for d in dims) or any(d == -1 for d in dims[:lead]):
                raise ValueError(f"cannot expand shape {a.shape} to {dims}")
            return np.broadcast_to(a, tuple(a.shape[i - lead] if d == -1 else d for i, d in enumerate(dims)))

        return self._view(("expand", dims), fn)

    def __getitem__(self, index) -> ArrayView:
        key = index if isinstance(index, tuple) else (index,)
        hashable = tuple((i.start, i.stop, i.step) if isinstance(i, slice) else i for i in key)
        return self._view(("getitem", hashable), lambda a: a[index])


class ArrayView(ConstantArray):
    """A view (reshape, permute, index...) of a constant array, computed in numpy when the network needs it."""

    def __init__(self, source: ConstantArray, steps: tuple, fn: Callable, parent: ConstantArray, shape) -> None:
        self._root, self._steps, self._fn, self._parent = source, steps, fn, parent
        self.shape = tuple(int(d) for d in shape)
        self.constant_name = source.constant_name

    def _source(self) -> tuple[ConstantArray, tuple]:
        return self._root, self._steps

    def array(self) -> np.ndarray:
        return np.ascontiguousarray(self._fn(self._parent.array()))


def _dims(args: tuple) -> tuple[int, ...]:
    return tuple(args[0]) if len(args) == 1 and not isinstance(args[0], int) else tuple(int(d) for d in args)


def as_operand(value: Any, like: Any = None) -> Any:
    """`value` as an elementwise operand: a ConstantArray becomes its constant Tensor in the dtype of `like` (a
    Tensor operand, if any, and of its rank at least); anything else is returned as it is."""
    if isinstance(value, ConstantArray):
        return value.tensor(like.dtype, like.ndim) if isinstance(like, Tensor) else value.tensor()
    return value


def scale_by_constant(a: Any, b: Any, op: str) -> Tensor | None:
    """`a * b` or `a + b` (`op` "PROD" or "SUM") as one `IScaleLayer` when one operand is a float Tensor of rank
    >= 3 and the other a ConstantArray that, broadcast by PyTorch's rules, varies along one static axis of the
    tensor only; else None (the caller emits a constant and an elementwise layer)."""
    if op not in ("PROD", "SUM"):
        return None
    x, c = (a, b) if isinstance(a, Tensor) else (b, a)
    if not (isinstance(x, Tensor) and isinstance(c, ConstantArray)) or c.ndim > x.ndim or x.ndim < 3:
        return None
    if x.dtype != current_graph().float_dtype:
        return None
    shape = (1,) * (x.ndim - c.ndim) + tuple(c.shape)
    varying = [i for i, d in enumerate(shape) if d != 1]
    if len(varying) > 1:
        return None
    axis = varying[0] if varying else x.ndim - 1
    if x.shape[axis] < 0 or shape[axis] not in (1, x.shape[axis]):
        return None
    values = np.broadcast_to(c.array().reshape(-1), (x.shape[axis],)).astype(np.float32)
    return scale_channels(x, values, None, axis) if op == "PROD" else scale_channels(x, None, values, axis)
