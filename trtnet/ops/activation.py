"""Activations: TensorRT's own `IActivationLayer` where one exists, a composition where not."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from trtnet.backend import get_trt
from trtnet.errors import ConfigError
from trtnet.graph import current_graph
from trtnet.ops.core import out
from trtnet.ops.elementwise import mul
from trtnet.tensor import Tensor


def activation(x: Tensor, kind: str, alpha: float | None = None, beta: float | None = None) -> Tensor:
    """Apply `trt.ActivationType.<kind>`; `alpha`/`beta` as TensorRT defines them for that kind."""
    layer = current_graph().network.add_activation(x.itensor, getattr(get_trt().ActivationType, kind))
    if alpha is not None:
        layer.alpha = alpha
    if beta is not None:
        layer.beta = beta
    return out(layer, kind.lower())


relu = partial(activation, kind="RELU")
sigmoid = partial(activation, kind="SIGMOID")
tanh = partial(activation, kind="TANH")
relu6 = partial(activation, kind="CLIP", alpha=0.0, beta=6.0)
gelu = partial(activation, kind="GELU_ERF")  # torch.nn.GELU() / F.gelu default: the exact erf form
gelu_tanh = partial(activation, kind="GELU_TANH")


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return activation(x, "LEAKY_RELU", alpha=negative_slope)


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x): TensorRT has no SiLU activation type; its builder fuses this pair."""
    return mul(x, sigmoid(x))


def hardsigmoid(x: Tensor) -> Tensor:
    """PyTorch's relu6(x + 3) / 6, which is TensorRT's HARD_SIGMOID with alpha 1/6, beta 1/2."""
    return activation(x, "HARD_SIGMOID", alpha=1.0 / 6.0, beta=0.5)


def hardswish(x: Tensor) -> Tensor:
    return mul(x, hardsigmoid(x))


ACTIVATIONS = {
    "relu": relu,
    "relu6": relu6,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "silu": silu,
    "swish": silu,
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "hardswish": hardswish,
    "hardsigmoid": hardsigmoid,
    "leaky_relu": leaky_relu,
}


def activation_by_name(name: str, field: str = "activation") -> Callable[[Tensor], Tensor]:
    """The activation op called `name` (PyTorch's and Hugging Face's names: "gelu", "gelu_new", "silu"...).

    `field` names the setting `name` came from, for the error an unknown name raises.

    >>> act = ops.activation_by_name(config.hidden_act, "hidden_act")
    """
    if name not in ACTIVATIONS:
        raise ConfigError(f"{field} {name!r} is not a known activation; use one of {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]
