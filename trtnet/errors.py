"""The exceptions trtnet raises. Every one is a `TrtnetError`, so callers can catch the family."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class TrtnetError(Exception):
    """Base class of every error trtnet raises on purpose."""


class BackendError(TrtnetError):
    """No usable TensorRT backend, or one that lacks a feature that was asked for."""


class WeightsError(TrtnetError):
    """A weights file that cannot be read, or whose keys and shapes do not fit the model."""


class NetworkError(TrtnetError):
    """A network that cannot be built: a bad shape, an op used wrongly."""


class InterpreterError(TrtnetError):
    """The reference interpreter met a layer it cannot run, or a shape TensorRT disagrees with."""


class BuildError(TrtnetError):
    """TensorRT refused to build an engine."""


class EngineError(TrtnetError):
    """An engine that cannot be loaded or run: bad plan, bad input, no GPU."""


class ExportError(TrtnetError):
    """An export that cannot be written as asked: a bad repository, model name or version, or an engine that
    cannot be served the way that was asked (a fixed batch under dynamic batching)."""


class ConfigError(TrtnetError):
    """A configuration value of the wrong type or out of range. The message names the field, the value and what
    is allowed, e.g. `config.json: hidden_size = '768' is not allowed: expected a positive integer`."""

    @classmethod
    def check(cls, field: str, value: T, allowed: str, ok: Callable[[T], object], *, source: object = None) -> T:
        """`value` if `ok(value)` is true, else this error. `ok` failing with TypeError, ValueError,
        ArithmeticError or RecursionError (a string compared with a number, ...) counts as false. `allowed`
        completes "expected ...". `source` (a file, a function) prefixes the message.

        >>> ConfigError.check("num_heads", 0, "a positive integer", lambda v: v > 0, source="config.json")
        Traceback (most recent call last):
        trtnet.errors.ConfigError: config.json: num_heads = 0 is not allowed: expected a positive integer
        """
        try:
            good = bool(ok(value))
        except (TypeError, ValueError, ArithmeticError, RecursionError):
            good = False
        if not good:
            try:
                text = repr(value)
            except RecursionError:  # a value nested deeper than repr goes
                text = f"<{type(value).__name__} nested too deep to print>"
            text = text if len(text) <= 80 else text[:80] + "..."  # a hostile config can hold megabytes
            where = f"{source}: " if source is not None else ""
            raise cls(f"{where}{field} = {text} is not allowed: expected {allowed}")
        return value

    @classmethod
    def like(cls, field: str, value: Any, default: Any, *, source: object = None) -> Any:
        """`value`, which must be of the kind of `default` (an int for an int, true or false for a bool; an int
        is taken for a float and a list for a tuple, and converted), else this error.

        >>> ConfigError.like("num_classes", "ten", 1000, source="resnet18")
        Traceback (most recent call last):
        trtnet.errors.ConfigError: resnet18: num_classes = 'ten' is not allowed: expected an integer like the default 1000
        """
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kind = bool if isinstance(default, bool) else type(default)
        number = numbers.Integral if kind is int else numbers.Real if kind is float else None
        if number is not None and isinstance(value, number) and not isinstance(value, bool):
            value = kind(value)  # numpy's integers and floats, and an int for a float, as Python's own
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", tuple: "a list"}
        return cls.check(
            field,
            value,
            f"{names.get(kind, f'a {kind.__name__}')} like the default {_short(default)}",
            lambda v: isinstance(v, kind) and (kind is bool or not isinstance(v, bool)),
            source=source,
        )


class CalibrationError(TrtnetError):
    """A calibration file that cannot be read, or calibration data that cannot be measured."""


class CheckError(TrtnetError):
    """A model or inputs file that `trtnet check` cannot use: missing, not ONNX, inputs that do not fit."""


class ParityError(TrtnetError):
    """A comparison with a model's source that could not fail (its outputs do not depend on its input)."""


def _short(value: Any) -> str:
    """`repr(value)`, cut to 60 characters: a default table of seven rows said whole buried the message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
