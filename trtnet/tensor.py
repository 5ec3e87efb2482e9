"""`Tensor`: a TensorRT `ITensor` with Python operators. Every method is a thin call into `trtnet.ops`."""
from __future__ import annotations

from typing import Sequence


class Tensor:
    """A tensor in the network being built. `shape` has -1 for dimensions known only at run time.

    >>> y = (x @ w).softmax(-1).reshape(b, -1)   # inside a model's forward
    """

    __slots__ = ("trt",)

    def __init__(self, itensor) -> None:
        self.trt = itensor

    # -- facts ---------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.trt.shape)

    @property
    def ndim(self) -> int:
        return len(self.trt.shape)

    @property
    def dtype(self):
        return self.trt.dtype

    @property
    def name(self) -> str:
        return self.trt.name

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, shape={self.shape}, dtype={self.dtype})"

    # -- arithmetic ----------------------------------------------------------------------------------
    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().sub(self, other)
    def __rsub__(self, other): return _ops().sub(other, self)
    def __mul__(self, other): return _ops().mul(self, other)
    def __rmul__(self, other): return _ops().mul(other, self)
    def __truediv__(self, other): return _ops().div(self, other)
    def __rtruediv__(self, other): return _ops().div(other, self)
    def __pow__(self, other): return _ops().pow(self, other)
    def __neg__(self): return _ops().neg(self)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __getitem__(self, index): return _ops().getitem(self, index)

    # -- shape ---------------------------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> "Tensor":
        return _ops().reshape(self, _dims(shape))

    def permute(self, *order: int | Sequence[int]) -> "Tensor":
        return _ops().permute(self, _dims(order))

    def transpose(self, a: int, b: int) -> "Tensor":
        return _ops().transpose(self, a, b)

    def flatten(self, start: int = 0, end: int = -1) -> "Tensor":
        return _ops().flatten(self, start, end)

    def unsqueeze(self, axis: int) -> "Tensor":
        return _ops().unsqueeze(self, axis)

    def squeeze(self, axis: int) -> "Tensor":
        return _ops().squeeze(self, axis)

    def cast(self, dtype) -> "Tensor":
        return _ops().cast(self, dtype)

    # -- reductions and friends ----------------------------------------------------------------------
    def mean(self, axis: int | Sequence[int], keepdim: bool = False) -> "Tensor":
        return _ops().mean(self, axis, keepdim)

    def sum(self, axis: int | Sequence[int], keepdim: bool = False) -> "Tensor":
        return _ops().sum(self, axis, keepdim)

    def max(self, axis: int | Sequence[int], keepdim: bool = False) -> "Tensor":
        return _ops().amax(self, axis, keepdim)

    def softmax(self, axis: int = -1) -> "Tensor":
        return _ops().softmax(self, axis)


def _dims(args) -> tuple[int, ...]:
    if len(args) == 1 and not isinstance(args[0], int):
        return tuple(args[0])
    return tuple(args)


def _ops():
    # trtnet.ops imports Tensor; importing it here, at call time, keeps the two modules free of a cycle.
    import trtnet.ops as ops
    return ops
