"""Containers with PyTorch's key names: `Sequential` (children `0, 1, ...`, called in order) and `ModuleList`.

A plain list or dict attribute is walked as well (`self.blocks = [Block() for _ in range(4)]`: keys `blocks.0.*`);
these are for code copied from a PyTorch source that names them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from trtnet.nn.module import Module, _walk


class Sequential(Module):
    """`torch.nn.Sequential`: children named `0, 1, ...` (or by the keys of `named`, as PyTorch's OrderedDict
    form), called in order. A Conv2d followed by a BatchNorm2d folds (see `trtnet.nn.conv`)."""

    def __init__(self, *layers: Module | Callable, named: Mapping[str, Module] | None = None) -> None:
        self._items: dict[str, Module | Callable] = dict(named) if named else {str(i): m for i, m in enumerate(layers)}

    def named_children(self) -> Iterator[tuple[str, Any]]:
        for name, value in self._items.items():
            yield from _walk(name, value)

    def __getitem__(self, index: int | str):
        return list(self._items.values())[index] if isinstance(index, int) else self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items.values())

    def forward(self, x):
        for layer in self._items.values():
            x = layer(x)
        return x


class ModuleList(Module):
    """`torch.nn.ModuleList`: children named `0, 1, ...`, indexed and iterated; `forward` loops over it."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        self._items: list[Module] = list(modules)

    def named_children(self) -> Iterator[tuple[str, Any]]:
        for i, value in enumerate(self._items):
            yield from _walk(str(i), value)

    def append(self, module: Module) -> ModuleList:
        self._items.append(module)
        return self

    def __getitem__(self, index: int):
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items)
