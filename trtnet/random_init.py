"""Random weights for a model: each parameter filled as its `Parameter.init` says, seeded by its name.

What a zoo entry told to take no weights is filled with, and what bench.py times where no PyTorch source is
there to export weights from.
"""

from __future__ import annotations

import numbers
import zlib
from typing import TYPE_CHECKING

import numpy as np

from trtnet.errors import ConfigError

if TYPE_CHECKING:
    from trtnet.nn.module import Module  # a type only: modules are a room above this one

__all__ = ["init_random", "is_module"]


def is_module(v: object) -> bool:
    """A trtnet model, by what loading and filling weights use of one (bind, named_parameters)."""
    return callable(getattr(v, "bind", None)) and callable(getattr(v, "named_parameters", None))


def init_random(model: Module, seed: int = 0) -> None:
    """Fill every parameter with a deterministic random value (each key seeded by its name and `seed`).

    >>> init_random(resnet18(weights=None), seed=3)   # doctest: +SKIP
    """
    ConfigError.check("model", model, "a trtnet model (an nn.Module)", is_module, source="init_random")
    ConfigError.check(
        "seed",
        seed,
        "a whole number from 0 to 2**63 - 1",
        lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v < 2**63,
        source="init_random",
    )
    model.bind()
    for key, param in model.named_parameters():
        param.value = param.initial(np.random.default_rng([zlib.crc32(key.encode()), seed]))
