"""Activation modules by PyTorch's names (`nn.ReLU()`, `nn.GELU(approximate="tanh")`...), for the slots of a
Sequential and for attributes copied from a PyTorch `__init__`. They have no parameters; `inplace` is accepted
and means nothing in a network."""

from __future__ import annotations

from collections.abc import Callable

from trtnet import ops
from trtnet.errors import ConfigError
from trtnet.nn.module import Module
from trtnet.tensor import Tensor


class Activation(Module):
    """A parameterless activation by name (`"relu"`, `"silu"`, `"gelu"`...: `ops.ACTIVATIONS`)."""

    def __init__(self, name: str) -> None:
        self._fn: Callable[[Tensor], Tensor] = ops.activation_by_name(name, "Activation name")

    def forward(self, x: Tensor) -> Tensor:
        return self._fn(x)


class ReLU(Activation):
    """`torch.nn.ReLU`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__("relu")


class ReLU6(Activation):
    """`torch.nn.ReLU6`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__("relu6")


class SiLU(Activation):
    """`torch.nn.SiLU` (x * sigmoid(x))."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__("silu")


class GELU(Activation):
    """`torch.nn.GELU(approximate="none" | "tanh")`."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ConfigError(f"GELU approximate {approximate!r} is neither 'none' nor 'tanh' (PyTorch's two)")
        super().__init__("gelu" if approximate == "none" else "gelu_tanh")


class Sigmoid(Activation):
    """`torch.nn.Sigmoid`."""

    def __init__(self) -> None:
        super().__init__("sigmoid")


class Tanh(Activation):
    """`torch.nn.Tanh`."""

    def __init__(self) -> None:
        super().__init__("tanh")


class Hardswish(Activation):
    """`torch.nn.Hardswish`: x * relu6(x + 3) / 6."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__("hardswish")


class Hardsigmoid(Activation):
    """`torch.nn.Hardsigmoid`: relu6(x + 3) / 6."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__("hardsigmoid")


class LeakyReLU(Module):
    """`torch.nn.LeakyReLU(negative_slope)`."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        self._slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return ops.leaky_relu(x, self._slope)
