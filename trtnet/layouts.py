"""Checkpoint layouts: the key names other sources give the same weights, converted at the edge on loading.

A module declares the foreign layouts it accepts as `layouts = (Layout(...),)`, next to its own code: a name
said to the user, a marker key (relative to the module) that only that layout has, and a small conversion
(child renames, dropped buffers). Loading recognises a layout by its marker, so no flag is needed, and the
model's attribute paths stay the source's keys. Conversions only rename and drop keys, so they work on any
mapping: numpy arrays, torch tensors, or the shapes alone (what the mismatch hints compare).

This module imports nothing of the DSL: the model is walked through its own `named_modules()`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

V = TypeVar("V")
DATA_PARALLEL_PREFIX = "module."


def join(prefix: str, key: str) -> str:
    """A key relative to a module at `prefix`, made absolute."""
    return f"{prefix}.{key}" if prefix else key


def rename(state: Mapping[str, V], prefix: str, table: Mapping[str, str]) -> dict[str, V]:
    """Keys of the module at `prefix` renamed by `table` (old child path -> new), each key at most once.

    A table entry names a whole key (`head.weight`) or a child (`conv.3`: every key under `conv.3.`).
    """
    full = {join(prefix, old): join(prefix, new) for old, new in table.items()}
    out: dict[str, V] = {}
    for key, value in state.items():
        for old, new in full.items():
            if key == old or key.startswith(old + "."):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


@dataclass(frozen=True)
class Layout:
    """A checkpoint layout a module accepts besides its own (see the module docstring).

    `renames(module)` gives the child renames (a function of the module, whose shape may decide them);
    `drop` are glob patterns, relative to the module, of keys the conversion removes (buffers recomputed here).
    """

    name: str
    marker: str
    renames: Callable[[Any], Mapping[str, str]] = lambda module: {}
    drop: tuple[str, ...] = ()

    def matches(self, prefix: str, state: Mapping[str, Any]) -> bool:
        return join(prefix, self.marker) in state

    def convert(self, module: Any, prefix: str, state: Mapping[str, V]) -> dict[str, V]:
        dropped = [join(prefix, pattern) for pattern in self.drop]
        kept = {k: v for k, v in state.items() if not any(fnmatch.fnmatchcase(k, p) for p in dropped)}
        return rename(kept, prefix, self.renames(module))


def adapt_checkpoint(model: Any, state: Mapping[str, V]) -> tuple[dict[str, V], list[str]]:
    """`state` in `model`'s own layout, and the names of the layouts it was converted from (none: [] ).

    DataParallel's `module.` prefix is stripped for every model here (when every key has it); then each
    module's `adapt_state` hook runs, outermost first, which applies the module's declared `layouts`.
    """
    state, notes = dict(state), []
    if state and all(k.startswith(DATA_PARALLEL_PREFIX) for k in state):
        state = {k[len(DATA_PARALLEL_PREFIX) :]: v for k, v in state.items()}
        notes.append("DataParallel's `module.` prefix")
    model.bind()
    for prefix, module in model.named_modules():
        for layout in module.layouts:
            if layout.matches(prefix, state) and layout.name not in notes:
                notes.append(layout.name)
        state = module.adapt_state(prefix, state)
    return state, notes


def declared(model: Any, state: Mapping[str, Any], attribute: str) -> set[str]:
    """Keys of `state` matched by the glob patterns modules declare in `attribute` (`skip_keys`, `unused_keys`)."""
    found: set[str] = set()
    for prefix, module in model.named_modules():
        for pattern in getattr(module, attribute):
            full = join(prefix, pattern)
            found.update(k for k in state if fnmatch.fnmatchcase(k, full))
    return found


# -- checkpoints of sources no zoo entry reads ---------------------------------------------------------------


@dataclass(frozen=True)
class ForeignSource:
    """A family of checkpoints that looks like a zoo model's but comes from another source, whose keys no layout
    converts: recognised by keys only it has, so that the loading error can say what the file is."""

    name: str
    markers: tuple[str, ...]  # glob patterns; the file has a key matching each
    advice: str

    def matches(self, keys: Any) -> bool:
        return all(any(fnmatch.fnmatchcase(k, m) for k in keys) for m in self.markers)


FOREIGN_SOURCES = (
    ForeignSource(
        "torchvision EfficientNet",
        ("features.0.0.weight", "features.1.0.block.*"),
        "the zoo's efficientnet_* entries re-express timm's EfficientNet (keys conv_stem, blocks.N.M, conv_head), "
        "whose blocks torchvision names and orders differently: no conversion is offered; load a timm "
        "efficientnet state_dict (timm.create_model(name).state_dict(), or its published weights)",
    ),
)


def foreign_source(keys: Mapping[str, Any]) -> str | None:
    """One line naming the source a checkpoint with these keys comes from, when it is a `FOREIGN_SOURCES` one."""
    for source in FOREIGN_SOURCES:
        if source.matches(keys):
            shown = ", ".join(source.markers)
            return f"looks like a {source.name} state_dict (keys {shown}): {source.advice}"
    return None
