"""The exceptions trtnet raises. Every one is a `TrtnetError`, so callers can catch the family."""
from __future__ import annotations


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


class CheckError(TrtnetError):
    """A model or inputs file that `trtnet check` cannot use: missing, not ONNX, inputs that do not fit."""
