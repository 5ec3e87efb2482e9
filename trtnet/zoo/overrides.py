"""A zoo config's fields set at the call (`resnet18(num_classes=10)`, `--set rows=[[1,16,1,1]]`), each checked
against the field's default or type: counts positive, per-stage tuples of one length, tables of typed rows, a
dataclass from a JSON object. The one rule keeps a wrong value from building a model its source cannot be."""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any

from trtnet.errors import ConfigError


def checked_setting(key: str, value: Any, config: Any, name: str) -> Any:
    """An override of the config field `key`, checked against the field's default (or, where that is None, its
    type: a dataclass such as NMSOptions is taken as {field: value}, as JSON gives it)."""
    default = getattr(config, key)
    if default is None:
        return _optional(key, value, config, name)
    if isinstance(default, tuple) and default and hasattr(type(default[0]), "_fields"):
        return _records(key, value, default, name)
    return _size_like(key, ConfigError.like(key, value, default, source=name), config, name)


def _optional(key: str, value: Any, config: Any, name: str) -> Any:
    """A field that defaults to None: None, or its dataclass type, given as one or as a mapping of its fields."""
    hint = _field_type(config, key)
    kinds = [k for k in (hint, *typing.get_args(hint)) if isinstance(k, type) and dataclasses.is_dataclass(k)]
    if value is None or not kinds or isinstance(value, kinds[0]):
        return value
    kind = kinds[0]
    defaults = {f.name: f.default for f in dataclasses.fields(kind)}
    what = f"null or an object of {', '.join(defaults)}"
    ConfigError.check(key, value, what, lambda v: isinstance(v, Mapping) and set(v) <= set(defaults), source=name)
    given = {  # a field whose default says nothing of its kind (none, or None) is left to the dataclass
        k: v
        if defaults[k] is None or defaults[k] is dataclasses.MISSING
        else ConfigError.like(f"{key}.{k}", v, defaults[k], source=name)
        for k, v in value.items()
    }
    try:
        return kind(**given)
    except (ConfigError, TypeError) as e:  # its own checks (NMSOptions: max_det from 1 to 3840), a field it needs
        raise ConfigError(f"{name}: {key}: {e}") from None


def _field_type(config: Any, key: str) -> Any:
    """The type of the config field `key`, its annotation evaluated where the config is defined; None where it
    cannot be (a name imported only for type checkers: typing.get_type_hints failed on the whole class)."""
    # typing resolves every annotation, quoted names inside real ones too (Optional["NMSOptions"]); one the class
    # cannot resolve fails them all, so the field's own is resolved alone, in a class holding only it
    annotation = next(f.type for f in dataclasses.fields(config) if f.name == key)
    alone = type("Field", (), {"__annotations__": {key: annotation}, "__module__": type(config).__module__})
    try:
        return typing.get_type_hints(alone).get(key)
    except Exception:  # noqa: BLE001  (whatever the annotation raises, the type is unknown)
        return None


def _records(key: str, value: Any, default: tuple, name: str) -> tuple:
    """A table of rows (NamedTuples: MobileNetV2's and EfficientNet's stage tables) as a non-empty list of rows,
    each a list of the row's fields in order (trailing fields with defaults may be left out): every field of
    the kind of the default table's, counts and ratios positive, a word one the table uses. A table whose rows
    name module classes (YOLO's) is not set from values."""
    kind = type(default[0])
    fields, least = kind._fields, len(kind._fields) - len(kind._field_defaults)
    if not all(isinstance(getattr(r, f), (numbers.Real, str)) for r in default for f in fields):
        raise ConfigError(
            f"{name}: {key} cannot be set from values: its rows name module classes; write the model in Python "
            "with a table of its own"
        )

    def is_table(v: Any) -> bool:  # a list: a generator is read up by the check, a set has no order
        return (
            isinstance(v, (list, tuple))
            and bool(v)
            and all(isinstance(r, (list, tuple)) and least <= len(r) <= len(fields) for r in v)
        )

    ConfigError.check(key, value, f"a non-empty list of rows [{', '.join(fields)}]", is_table, source=name)
    rows = []
    for i, row in enumerate(value):
        given = kind(*row)
        checked = {}
        for f in fields:
            like, field = getattr(default[0], f), f"{key}[{i}].{f}"
            v = ConfigError.like(field, getattr(given, f), like, source=name)
            if isinstance(like, str):
                words = sorted({getattr(r, f) for r in default})
                v = ConfigError.check(field, v, f"one of {words}", words.__contains__, source=name)
            elif _is_count(like):
                v = ConfigError.check(field, v, COUNT, _is_count, source=name)
            elif isinstance(like, float) and like > 0:
                v = ConfigError.check(field, v, "a positive number", lambda x: 0 < x < math.inf, source=name)
            checked[f] = v
        row = kind(**checked)
        problem = row.problem() if hasattr(row, "problem") else None  # what the row's own block cannot build
        if problem:
            raise ConfigError(f"{name}: {key}[{i}] = {list(row)} is not allowed: {problem}")
        rows.append(row)
    return tuple(rows)


def _size_like(key: str, value: Any, config: Any, name: str) -> Any:
    """A count or size (a positive integer default, or a tuple of them: classes, stage depths, widths) must be one
    too, and a positive float (a ratio, an eps) a positive finite float: `layers=[0, 0, 0, 0]` built a ResNet of no
    blocks, `num_classes=-1` failed inside numpy. numpy's integers are taken as Python's. A config with a
    `__post_init__` checks its own fields (the Hugging Face ones: `trtnet.zoo.hf_config`)."""
    default = getattr(config, key)
    if hasattr(type(config), "__post_init__"):
        return value
    if _is_count(default):
        return ConfigError.check(key, value, COUNT, _is_count, source=name)
    if isinstance(default, float) and default > 0:
        return ConfigError.check(key, value, "a positive number", lambda v: 0 < v < math.inf, source=name)
    if isinstance(default, tuple) and _counts(default, default):  # stage depths; VGG's widths by stage
        nested = isinstance(default[0], tuple)
        what = (
            "a non-empty list of " + ("non-empty lists of " if nested else "") + "positive integers (at most 2**31 - 1)"
        )
        ConfigError.check(key, value, what, lambda v: _counts(v, default), source=name)
        return _as_tuples(value)
    return value


COUNT = "a positive integer (at most 2**31 - 1)"  # larger ones failed inside numpy or TensorRT, untyped


def _is_count(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and 1 <= v <= 2**31 - 1


def _counts(value: Any, like: tuple) -> bool:
    """Whether `value` nests as `like` does (lists or tuples, none empty) with counts at the bottom."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    inner = like[0]
    return all(_counts(v, inner) if isinstance(inner, tuple) else _is_count(v) for v in value)


def _as_tuples(value: Any) -> Any:
    return tuple(map(_as_tuples, value)) if isinstance(value, (list, tuple)) else int(value)


def same_stages(config: Any, *fields: str, count: int | None = None) -> None:
    """Per-stage tuples of a config (`depths` and `num_heads`) must have one entry per stage each, `count` of them
    where the architecture fixes it (a ResNet's layer1..layer4): a ConfigError otherwise, where a shorter one was
    cut silently by a zip or failed as an IndexError."""
    lengths = {f: len(getattr(config, f)) for f in fields}
    wanted = count if count is not None else next(iter(lengths.values()))
    if any(n != wanted for n in lengths.values()):
        said = ", ".join(f"{f} = {list(getattr(config, f))}" for f in fields)
        raise ConfigError(f"{type(config).__name__}: {said}: expected {wanted} stages{' in each' * (len(fields) > 1)}")
