"""What a run checks: the inputs it is given against the network's declared ones, and every layer's outputs against
the shapes and types TensorRT inferred (read at preparation; any doubt asks TensorRT again, which names the layer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trtnet.backend import get_trt
from trtnet.errors import InterpreterError
from trtnet.interpreter._common import dims, enum_name, is_float, np_dtype, trt_dtype_name
from trtnet.interpreter.prepare import Step


def layer_type_name(layer: Any) -> str:
    """The `LayerType` name of a layer, even once downcast (IActivationLayer and IPoolingLayer reuse `.type`
    for their own enums, so the base class property is read explicitly)."""
    return enum_name(get_trt().ILayer.type.__get__(layer))


def check_step(step: Step, outputs: list[np.ndarray]) -> None:
    """check_layer_outputs, against the inferred shapes and dtypes read at preparation (TensorRT's accessors cost
    tens of microseconds a layer); any doubt re-reads them from TensorRT, which names the layer and the mismatch."""
    expected = step.expected
    if expected is not None and len(expected) == len(outputs):
        for (shape, dtype), value in zip(expected, outputs):
            if not _agrees(shape, dtype, value):
                break
        else:
            return
    check_layer_outputs(step.layer, outputs)  # raises, naming the layer, on a mismatch
    step.expected = [
        (dims(step.layer.get_output(i).shape), np_dtype(step.layer.get_output(i).dtype)) for i in range(len(outputs))
    ]


def check_layer_outputs(layer: Any, outputs: Sequence[np.ndarray]) -> None:
    """Raises `InterpreterError` unless each output has the shape and dtype TensorRT inferred for it.

    Dims TensorRT reports as -1 are dynamic: only the rank and the known dims are compared. (Names and
    messages are only built on a mismatch: this runs for every layer.)
    """
    for i, value in enumerate(outputs):
        tensor = layer.get_output(i)
        try:
            shape = tensor.shape
        except RuntimeError:
            # TensorRT itself rejected the layer (its log says why); the network could never be built.
            raise InterpreterError(
                f"layer {layer.name!r} ({layer_type_name(layer)}): TensorRT cannot infer the shape of output {i}; "
                "the layer is invalid (TensorRT's log says why)"
            ) from None
        if not _fits(shape, tensor.dtype, value):
            check_value(layer.name, layer_type_name(layer), f"output {i} ({tensor.name!r})", shape, tensor.dtype, value)


def _fits(shape: Any, dtype: Any, value: np.ndarray) -> bool:
    return _agrees(dims(shape), np_dtype(dtype), value)


def _agrees(shape: tuple[int, ...], dtype: np.dtype, value: np.ndarray) -> bool:
    """Whether `value` has `dtype` and `shape`, a dim of -1 (dynamic) matching any size."""
    v = value if type(value) is np.ndarray else np.asarray(value)
    if v.dtype != dtype:
        return False
    return v.shape == shape or (v.ndim == len(shape) and all(e < 0 or e == a for e, a in zip(shape, v.shape)))


def check_value(layer_name: str, type_name: str, what: str, shape: Any, dtype: Any, value: np.ndarray) -> None:
    """Compares one computed value with an inferred shape and TensorRT dtype, naming the layer on mismatch."""
    expected_shape = dims(shape)
    actual = tuple(np.shape(value))
    prefix = f"layer {layer_name!r} ({type_name}): {what}"
    if len(actual) != len(expected_shape) or any(e >= 0 and e != a for e, a in zip(expected_shape, actual)):
        raise InterpreterError(f"{prefix} has shape {actual}, TensorRT inferred {expected_shape}")
    expected_dtype = np_dtype(dtype)
    if np.asarray(value).dtype != expected_dtype:
        raise InterpreterError(
            f"{prefix} has dtype {trt_dtype_name(np.asarray(value).dtype)}, TensorRT inferred {enum_name(dtype)}"
        )


def validated_inputs(network: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    declared = [network.get_input(i) for i in range(network.num_inputs)]
    names = [t.name for t in declared]
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    if missing:  # and the names given instead, where a misspelling is the likely cause
        also = f"; given instead {', '.join(repr(n) for n in extra)}" if extra else ""
        raise InterpreterError(f"missing network input(s): {', '.join(repr(n) for n in missing)}{also}")
    if extra:
        raise InterpreterError(
            f"unknown network input(s): {', '.join(repr(n) for n in extra)}; the network takes {names}"
        )
    out: dict[str, np.ndarray] = {}
    for tensor in declared:
        out[tensor.name] = _validated_input(tensor, inputs[tensor.name])
    return out


def _validated_input(tensor: Any, value: Any) -> np.ndarray:
    name = tensor.name
    arr = np.asarray(value)
    shape = tuple(int(d) for d in tensor.shape)
    if arr.ndim != len(shape):
        raise InterpreterError(f"input {name!r}: expected rank {len(shape)} {shape}, got shape {arr.shape}")
    for axis, (want, got) in enumerate(zip(shape, arr.shape)):
        if want >= 0 and want != got:
            raise InterpreterError(f"input {name!r}: dim {axis} is {got}, the network declares {shape}")
    want_dtype = np_dtype(tensor.dtype)
    if arr.dtype == want_dtype:
        return arr
    if is_float(want_dtype) and is_float(arr.dtype):
        # A float array for a float input is cast (rounded) to the declared precision, as a user would.
        return arr.astype(want_dtype)
    if np.issubdtype(want_dtype, np.integer) and np.issubdtype(arr.dtype, np.integer):
        cast = arr.astype(want_dtype)
        if np.array_equal(cast, arr):  # only when no value changes
            return cast
        raise InterpreterError(f"input {name!r}: values do not fit {tensor.dtype.name}")
    raise InterpreterError(f"input {name!r}: dtype {arr.dtype} does not match the declared {tensor.dtype.name}")
