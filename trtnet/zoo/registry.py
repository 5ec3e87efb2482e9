"""The model registry: a dict of entry points that refuses a duplicate name."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from trtnet.errors import TrtnetError
from trtnet.nn.module import Module
from trtnet.weights import init_random, load_weights

Weights = str | os.PathLike | Mapping[str, np.ndarray] | None


@dataclass(frozen=True)
class ZooEntry:
    """A registered model: its entry point, the PyTorch source it re-expresses, and how to build that source."""

    name: str
    fn: Callable[..., Module]
    source: str  # human-readable, e.g. "torchvision.models.resnet50"
    torch_model: Callable[[], object]  # builds the PyTorch source model (imports torch lazily)
    benchmark: bool = False  # one of the nine models of the published benchmark


REGISTRY: dict[str, ZooEntry] = {}


def register(name: str, source: str, torch_model: Callable[[], object], benchmark: bool = False):
    """Decorator adding an entry point to the zoo under `name`."""

    def add(fn: Callable[..., Module]) -> Callable[..., Module]:
        if name in REGISTRY:
            raise TrtnetError(f"zoo entry {name!r} is registered twice ({REGISTRY[name].fn.__module__} and "
                              f"{fn.__module__})")
        REGISTRY[name] = ZooEntry(name, fn, source, torch_model, benchmark)
        return fn

    return add


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
