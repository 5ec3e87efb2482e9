"""The model registry: a dict of entry points that refuses a duplicate name."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from trtnet.errors import ConfigError, TrtnetError
from trtnet.nn.module import Module
from trtnet.weights import init_random, load_weights
from trtnet.zoo.sources import published_source, timm_source, torchvision_source

Weights = str | os.PathLike | Mapping[str, np.ndarray] | None


@dataclass(frozen=True)
class ZooEntry:
    """A registered model: its entry point, the PyTorch source it re-expresses, and how to build that source."""

    name: str
    fn: Callable[..., Module]
    source: str  # human-readable, e.g. "torchvision.models.resnet50"
    torch_model: Callable[[], object]  # builds the PyTorch source model (imports torch lazily)
    benchmark: bool = False  # one of the nine models of the published benchmark
    pretrained: Callable[[], object] | None = None  # the source with its published weights (downloads them)
    config: Any = None  # the architecture config the entry builds (a frozen dataclass), where it has one

    def pretrained_model(self):
        """The PyTorch source with its published weights (downloads them: needs network access).

        The entry's own `pretrained` builder; else, when `source` names a plain torchvision builder
        (`torchvision.models.resnet50`) or a timm model (`timm vit_base_patch16_224`,
        `timm.create_model('efficientnet_b0')`), that library's published weights.
        """
        if self.pretrained is not None:
            return self.pretrained()
        builder = published_source(self.source)
        if builder is not None:
            return builder()
        raise TrtnetError(f"zoo entry {self.name!r}: no known way to download the published weights of "
                          f"{self.source} (the entry can register a `pretrained` builder)")


REGISTRY: dict[str, ZooEntry] = {}


def register(name: str, source: str, torch_model: Callable[[], object], benchmark: bool = False,
             pretrained: Callable[[], object] | None = None, config: Any = None):
    """Decorator adding an entry point to the zoo under `name`, with the PyTorch source it re-expresses.

    `torch_model()` builds that source (random weights; import torch inside it); `source` says in words what it
    is. `pretrained` builds the source with its published weights, where `source` alone does not say how (see
    `ZooEntry.pretrained_model`); `config` is the architecture config the entry builds. A family of variants
    registers through `register_variant`. Your own model registers the same way, and then `trtnet verify
    file.py:NAME` and `trtnet export-weights file.py:NAME` find its PyTorch source:

    >>> @register("tiny_mlp", source="my_models.TinyMLP", torch_model=lambda: my_models.TinyMLP())
    ... def tiny_mlp(weights=None, **config) -> Module: ...                            # doctest: +SKIP

    A name registered twice is an error.
    """

    def add(fn: Callable[..., Module]) -> Callable[..., Module]:
        if name in REGISTRY:
            raise TrtnetError(f"zoo entry {name!r} is registered twice ({REGISTRY[name].fn.__module__} and "
                              f"{fn.__module__})")
        REGISTRY[name] = ZooEntry(name, fn, source, torch_model, benchmark, pretrained, config)
        return fn

    return add


def forget_module(module: str) -> None:
    """Drop the entries registered by module `module`, before its file is run again (`trtnet.models` runs a
    user's model file each time the command line names it, and the file registers its entries anew)."""
    for name in [n for n, e in REGISTRY.items() if e.fn.__module__ == module]:
        del REGISTRY[name]


def entry_of(fn: Callable[..., Module]) -> ZooEntry | None:
    """The registered entry whose entry point is `fn`, if any."""
    return next((entry for entry in REGISTRY.values() if entry.fn is fn), None)


def register_variant(name: str, build: Callable[[Any], Module], config: Any, source: str,
                     torch_model: Callable[[], object], benchmark: bool = False) -> Callable[..., Module]:
    """Register and return the entry point `name(weights=None, **overrides)` of one variant of a family.

    The entry builds `build(dataclasses.replace(config, **overrides))` (so `num_classes=10` or any other
    field of the config can be changed at the call) and loads `weights` into it strictly.

    >>> vit_b_16 = timm_variant("vit_b_16", VisionTransformer, ViTConfig(768, 12, 12), "vit_base_patch16_224")
    """
    allowed = sorted(f.name for f in dataclasses.fields(config))

    def entry(weights: Weights = None, **overrides: Any) -> Module:
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise ConfigError(f"{name}: unknown config field {unknown[0]!r} (value {overrides[unknown[0]]!r}); "
                              f"{type(config).__name__} has {', '.join(allowed)}")
        return with_weights(build(dataclasses.replace(config, **overrides)), weights)

    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = build.__module__
    entry.__doc__ = (f"{name} with the state_dict keys of {source}. `weights`: a safetensors path, a dict, or None; "
                     f"`overrides`: fields of {type(config).__name__} ({', '.join(allowed)}).")
    return register(name, source, torch_model, benchmark, config=config)(entry)


def timm_variant(name: str, build: Callable[[Any], Module], config: Any, timm_name: str, he: bool = False,
                 benchmark: bool = False) -> Callable[..., Module]:
    """`register_variant` of a timm model `timm_name` (`he` as in `sources.timm_source`)."""
    return register_variant(name, build, config, f"timm {timm_name}", timm_source(timm_name, he), benchmark)


def torchvision_variant(name: str, build: Callable[[Any], Module], config: Any, he: bool = False,
                        benchmark: bool = False) -> Callable[..., Module]:
    """`register_variant` of `torchvision.models.<name>` (`he` as in `sources.torchvision_source`)."""
    return register_variant(name, build, config, f"torchvision.models.{name}", torchvision_source(name, he),
                            benchmark)


def get_entry(name: str) -> ZooEntry:
    if name not in REGISTRY:
        raise TrtnetError(f"no zoo model {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def with_weights(model: Module, weights: Weights, seed: int = 0) -> Module:
    """Load `weights` into `model` strictly, or initialise it deterministically when `weights` is None."""
    if weights is None:
        init_random(model, seed)
    else:
        load_weights(model, weights)
    return model
