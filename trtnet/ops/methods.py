"""Tensor's operators and methods, attached to `trtnet.tensor.Tensor` from the ops side.

`tensor.py` never imports the ops: this module, imported by `trtnet.ops`, gives the data class its Python
operators, each a one-line call into the functional op of the same meaning.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from trtnet.ops.activation import gelu, gelu_tanh, hardsigmoid, hardswish, leaky_relu, relu, relu6, sigmoid, silu, tanh
from trtnet.ops.arrays import ConstantArray, as_operand
from trtnet.ops.elementwise import add, div, mul, pow, sub
from trtnet.ops.matrix import matmul
from trtnet.ops.normalization import softmax
from trtnet.ops.reduction import amax, mean, sum
from trtnet.ops.shape import cast, flatten, getitem, permute, reshape, squeeze, transpose, unsqueeze
from trtnet.ops.unary import neg
from trtnet.tensor import Tensor


def _dims(args: tuple) -> tuple[int, ...]:
    """`x.reshape(2, 3)` and `x.reshape((2, 3))` alike."""
    if len(args) == 1 and not isinstance(args[0], int):
        return tuple(args[0])
    return tuple(args)


def _reshape(self: Tensor, *shape: int | Sequence[int]) -> Tensor:
    return reshape(self, _dims(shape))


def _permute(self: Tensor, *order: int | Sequence[int]) -> Tensor:
    return permute(self, _dims(order))


def _flatten(self: Tensor, start: int = 0, end: int = -1) -> Tensor:
    return flatten(self, start, end)


def _reduction(fn):
    def method(self: Tensor, axis: int | Sequence[int], keepdim: bool = False) -> Tensor:
        return fn(self, axis, keepdim)

    return method


def _softmax(self: Tensor, axis: int = -1) -> Tensor:
    return softmax(self, axis)


METHODS = {
    "__add__": add,
    "__radd__": lambda a, b: add(b, a),
    "__sub__": sub,
    "__rsub__": lambda a, b: sub(b, a),
    "__mul__": mul,
    "__rmul__": lambda a, b: mul(b, a),
    "__truediv__": div,
    "__rtruediv__": lambda a, b: div(b, a),
    "__pow__": pow,
    "__neg__": neg,
    "__matmul__": matmul,
    "__rmatmul__": lambda a, b: matmul(b, a),
    "__getitem__": getitem,
    "reshape": _reshape,
    "permute": _permute,
    "transpose": transpose,
    "flatten": _flatten,
    "unsqueeze": unsqueeze,
    "squeeze": squeeze,
    "cast": cast,
    "mean": _reduction(mean),
    "sum": _reduction(sum),
    "max": _reduction(amax),
    "softmax": _softmax,
    # The common activations, as torch.Tensor has them: x.gelu(), x.relu(), x.silu()...
    "relu": relu,
    "relu6": relu6,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "silu": silu,
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "hardswish": hardswish,
    "hardsigmoid": hardsigmoid,
    "leaky_relu": leaky_relu,
}


# The binary elementwise operators take a ConstantArray as it is (it may become a scale layer, see ops.arrays).
_ELEMENTWISE = ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__")


def _method(fn, name: str):
    # A plain function, so that it binds as a method (a functools.partial op would not receive `self`).
    if name in _ELEMENTWISE:

        def method(self: Tensor, *args, **kwargs):
            return fn(self, *args, **kwargs)

    else:  # `x @ self.weight`: a Parameter operand becomes its constant

        def method(self: Tensor, *args, **kwargs):
            return fn(self, *(as_operand(a, self) for a in args), **kwargs)

    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = getattr(fn, "__doc__", None) if not isinstance(fn, functools.partial) else fn.func.__doc__
    return method


def _constant_method(fn, name: str):
    """The Tensor method `name` for a ConstantArray (a Parameter in `forward`): on its constant Tensor."""

    def method(self: ConstantArray, *args, **kwargs):
        other = next((a for a in args if isinstance(a, Tensor)), None)
        return fn(self.tensor(other.dtype if other is not None else None), *map(as_operand, args), **kwargs)

    method.__name__ = name
    method.__qualname__ = f"ConstantArray.{name}"
    return method


for _name, _fn in METHODS.items():
    setattr(Tensor, _name, _method(_fn, _name))
    if _name in _ELEMENTWISE:
        setattr(ConstantArray, _name, _method(_fn, _name))
    elif _name not in vars(ConstantArray):  # its shape methods are numpy views, defined there
        setattr(ConstantArray, _name, _constant_method(_fn, _name))
