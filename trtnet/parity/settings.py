"""Module settings compared by path, trtnet's against the PyTorch source's. A comparison of outputs on random
weights sees a normalisation's eps only through what it does to them, about eps / (2 variance) with the
variances near 1 that `randomize_norm_stats` draws: it may miss one (1e-3 for 1e-5 throughout a network moved
its logits by 8.6e-5 in one draw, under the 1e-4 tolerance), and where it sees one it names no module. The path
is the one name (a module's path is its state_dict prefix on both sides), so each eps is compared, and named,
where it is set."""

from __future__ import annotations

import math
import numbers
from typing import Any

from trtnet.nn.module import Module

# Where PyTorch's normalisations keep eps: torch.nn's (BatchNorm, LayerNorm, GroupNorm), transformers' RMSNorms.
_SOURCE_EPS = ("eps", "variance_epsilon")


def eps_pairs(source: Any, model: Module) -> list[tuple[str, float, float]]:
    """(path, trtnet's eps, the source's) for every normalisation of `source` (a module whose class name says
    Norm: torch.nn's, transformers' RMSNorms) with an eps whose path in `model` is a module with one (trtnet's
    normalisations keep it as `_eps`); a module found on one side only is left out, and so is an eps that is not
    a normalisation's (CosineSimilarity's)."""
    ours = dict(model.named_modules())
    pairs = []
    for path, module in source.named_modules():
        if "Norm" not in type(module).__name__:
            continue
        theirs = next((getattr(module, n) for n in _SOURCE_EPS if _number(getattr(module, n, None))), None)
        mine = getattr(ours.get(path), "_eps", None)
        if theirs is not None and _number(mine):
            pairs.append((path, float(mine), float(theirs)))
    return pairs


def eps_differences(source: Any, model: Module) -> list[tuple[str, float, float]]:
    """The pairs of `eps_pairs` that differ (beyond the rounding of a float32 config value)."""
    return [p for p in eps_pairs(source, model) if not math.isclose(p[1], p[2], rel_tol=1e-6)]


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
