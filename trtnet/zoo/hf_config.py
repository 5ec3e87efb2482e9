"""Hugging Face `config.json` files, read and checked: every bad value is a `ConfigError` naming the field, the
value and what is allowed, before anything is allocated.

A zoo config is a frozen dataclass whose fields declare their rule (`integer(1, 2**16)`, `positive_float()`,
`activation()`, `flag()`); `from_hf` reads a path or dict into it, and `check_fields` (called from the
dataclass's `__post_init__`) holds every value to its rule, so a config made in Python is checked the same way.

>>> @dataclass(frozen=True)
... class TinyConfig:
...     hidden_size: int = integer(1, 2**16, default=768)
...     def __post_init__(self): check_fields(self, "Tiny")
>>> from_hf(TinyConfig, {"hidden_size": 64}, "Tiny")
TinyConfig(hidden_size=64)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from trtnet.errors import ConfigError
from trtnet.fileread import parse_json, read_regular
from trtnet.ops import ACTIVATIONS

__all__ = ["activation", "check_fields", "flag", "from_hf", "integer", "positive_float", "read_json"]

MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB; anything this large is not one
C = TypeVar("C")


@dataclass(frozen=True)
class _Rule:
    kind: str  # "int", "float", "activation", "bool"
    low: float = 0
    high: float = 0
    optional: bool = False  # None allowed (the model derives the value, as GPT-2's n_inner)

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value`, in words, or None when it is allowed."""
        if value is None and self.optional:
            return None
        if self.kind == "int":
            # bool is an int subclass in Python; a JSON `true` for a size is a mistake, not 1.
            if not isinstance(value, int) or isinstance(value, bool) or not self.low <= value <= self.high:
                return f"an integer from {int(self.low)} to {int(self.high)}" + (" or null" if self.optional else "")
        elif self.kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or not self.low < value <= self.high:
                return f"a number above {self.low:g} and at most {self.high:g}"
        elif self.kind == "activation":
            if not isinstance(value, str) or value not in ACTIVATIONS:
                return f"one of {', '.join(sorted(ACTIVATIONS))}"
        elif self.kind == "bool":
            if not isinstance(value, bool):
                return "true or false"
        return None


def integer(low: int, high: int, *, default: int | None, optional: bool = False) -> Any:
    """A dataclass field holding an integer in [low, high] (`optional`: or None)."""
    return field(default=default, metadata={"rule": _Rule("int", low, high, optional)})


def positive_float(high: float = 1.0, *, default: float) -> Any:
    """A dataclass field holding a finite number in (0, high] (an epsilon)."""
    return field(default=default, metadata={"rule": _Rule("float", 0.0, high)})


def activation(*, default: str) -> Any:
    """A dataclass field naming an activation trtnet has (`ops.ACTIVATIONS`)."""
    return field(default=default, metadata={"rule": _Rule("activation")})


def flag(*, default: bool) -> Any:
    """A dataclass field holding true or false."""
    return field(default=default, metadata={"rule": _Rule("bool")})


def check_fields(config: Any, model: str) -> None:
    """Hold every field of the dataclass `config` to its declared rule; the first bad one is a ConfigError."""
    for f in fields(config):
        rule = f.metadata.get("rule")
        if rule is not None:
            value = getattr(config, f.name)
            ConfigError.check(
                f.name,
                value,
                rule.problem(value) or "",
                lambda v, rule=rule: rule.problem(v) is None,
                source=f"{model} config",
            )


def read_json(path: str | os.PathLike, model: str) -> dict[str, Any]:
    """The JSON object in the file at `path`: a regular file of at most 1 MiB, UTF-8, one JSON object."""
    path = Path(path)
    raw = read_regular(path, MAX_CONFIG_BYTES, f"{model} config", error=ConfigError)
    try:
        value = parse_json(raw)
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: the {model} config is not UTF-8 text (byte {e.start}); it must be a JSON config.json"
        ) from None
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{path}: the {model} config is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        ) from None
    except ValueError as e:  # a key twice, an integer longer than Python's digit limit
        raise ConfigError(f"{path}: the {model} config is not valid JSON ({e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: the {model} config is nested too deeply to be a config.json") from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"{path}: the {model} config is a JSON {_json_kind(value)}; it must be a JSON object of fields"
        )
    return value


def from_hf(
    cls: type[C],
    config: str | os.PathLike | Mapping[str, Any],
    model: str,
    aliases: Mapping[str, str] | None = None,
    model_type: str | None = None,
    where: str | os.PathLike | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> C:
    """An instance of the config dataclass `cls` from a Hugging Face config.json path or its dict: the fields it
    names, under their own names or an alias (`{"hidden_size": "n_embd"}`); the others take `defaults` (what
    transformers' config class takes for a key the file lacks, where that is not the dataclass's own default),
    else the dataclass's defaults.
    Keys the dataclass does not know (`architectures`, dropout rates...) are ignored, as transformers does; but
    another model's config (its `model_type` is not `model_type`), or a JSON object none of whose keys is a field
    (a plan's sidecar, say), is a `ConfigError`: read as this model's, it would build a hybrid of the two.
    `where`: the file a dict was read from, for the messages."""
    if isinstance(config, (str, os.PathLike)):
        where = config
    where = f"{where}: " if where is not None else ""
    if isinstance(config, (str, os.PathLike)):
        config = read_json(config, model)
    elif not isinstance(config, Mapping):
        raise ConfigError(f"{model} config must be a config.json path or a dict, not {type(config).__name__}")
    said = config.get("model_type")
    if model_type is not None and said is not None and said != model_type:
        raise ConfigError(
            f"{where}the {model} config says model_type {said!r}: it is another model's config.json "
            f"({model}'s says {model_type!r})"
        )
    names = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in config.items():
        name = (aliases or {}).get(key, key)
        if name in names:
            values[name] = value
    if config and not values and said is None:
        keys = ", ".join(sorted(map(str, config))[:5])
        raise ConfigError(
            f"{where}the {model} config has none of {model}'s fields (it has {keys}"
            f"{', ...' if len(config) > 5 else ''}): is it a Hugging Face config.json?"
        )
    return cls(**{**(defaults or {}), **values})


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
