"""Builders of the PyTorch source models the zoo re-expresses. Torch and its libraries are imported lazily,
inside the builders, so that the zoo itself runs without them.

`trtnet.parity` uses these to check trtnet against its sources; the zoo never imports parity.
"""
from __future__ import annotations

from typing import Callable


def he_init(model, gain: float = 2.0**0.5) -> None:
    """Redraw every Conv2d and Linear weight from N(0, gain^2 / fan_in), fan_in = one output's inputs.

    Some sources' own initialisers let the signal die out over depth: torchvision's MobileNetV2 scales its
    depthwise kernels by fan_out (x channels), InceptionV3 with `init_weights=False` and YOLOv5 keep PyTorch's
    default uniform(1/sqrt(3 fan_in)). Their random outputs then hardly depend on the input, and a parity test
    on them proves little. A zoo entry's source builder calls this where that happens (under the seed
    `trtnet.parity.torch_model` set, so the weights stay deterministic).
    """
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, gain / fan_in**0.5)


def torchvision_source(name: str, he: bool = False, **kwargs) -> Callable[[], object]:
    """A builder of `torchvision.models.<name>(weights=None, **kwargs)`.

    `he=True` redraws conv and linear weights with `he_init`, for sources whose own random init lets the
    signal fade so that random outputs barely depend on the input.
    """

    def make():
        import torchvision

        model = getattr(torchvision.models, name)(weights=None, **kwargs)
        if he:
            he_init(model)
        return model

    return make


def timm_source(name: str, he: bool = False) -> Callable[[], object]:
    """A builder of `timm.create_model(name, pretrained=False)`; `he` as in `torchvision_source`."""

    def make():
        import timm

        model = timm.create_model(name, pretrained=False)
        if he:
            he_init(model)
        return model

    return make
