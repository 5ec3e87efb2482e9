"""The interpreter loop: validate inputs, run every layer in dependency order, check what TensorRT inferred."""
from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from trtnet.backend import get_trt
from trtnet.errors import InterpreterError
from trtnet.interpreter._common import HANDLERS, LayerCall, is_float, np_dtype, trt_dtype_name

# Importing the family modules fills HANDLERS.
from trtnet.interpreter import (  # noqa: F401  (imported for their registrations)
    attention,
    conv,
    elementwise,
    generate,
    indexing,
    matrix,
    norm,
    quantize,
    reduce,
    resize,
    shape,
)

Trace = Callable[[str, str, list[np.ndarray]], None]

# Layer types that are known but deliberately not interpreted, with the reason given to the user.
_NOT_INTERPRETED: dict[str, str] = {
    "TRIP_LIMIT": "loops are not supported",
    "RECURRENCE": "loops are not supported",
    "ITERATOR": "loops are not supported",
    "LOOP_OUTPUT": "loops are not supported",
    "CONDITION": "conditionals are not supported",
    "CONDITIONAL_INPUT": "conditionals are not supported",
    "CONDITIONAL_OUTPUT": "conditionals are not supported",
    "PLUGIN": "plugins are opaque to the interpreter",
    "PLUGIN_V2": "plugins are opaque to the interpreter",
    "PLUGIN_V3": "plugins are opaque to the interpreter",
    "DYNAMIC_QUANTIZE": "dynamic (block) quantization is not modelled",
}


def layer_type_name(layer: Any) -> str:
    """The `LayerType` name of a layer, even once downcast (IActivationLayer and IPoolingLayer reuse `.type`
    for their own enums, so the base class property is read explicitly)."""
    return get_trt().ILayer.type.__get__(layer).name


def layer_types_supported() -> set[str]:
    """The names of the TensorRT `LayerType`s the interpreter can run."""
    return set(HANDLERS)


def run_network(
    network: Any,
    inputs: Mapping[str, np.ndarray],
    *,
    check_shapes: bool = True,
    trace: Trace | None = None,
) -> dict[str, np.ndarray]:
    """Runs a TensorRT `INetworkDefinition` in numpy and returns its outputs by name, in network order.

    With `check_shapes`, every layer output is checked against the shape and dtype TensorRT inferred.
    `trace(layer_name, layer_type_name, outputs)` is called after each layer.
    """
    _refuse_unsupported(network)
    values: dict[str, np.ndarray] = dict(_validated_inputs(network, inputs))
    for index in _execution_order(network):
        layer = network.get_layer(index)
        type_name = layer_type_name(layer)
        entry = HANDLERS[type_name]
        layer.__class__ = getattr(get_trt(), entry.class_name)
        call = LayerCall(layer=layer, inputs=_layer_inputs(layer, type_name, values), type_name=type_name)
        outputs = list(entry.fn(call))
        if len(outputs) != layer.num_outputs:
            raise call.fail(f"the interpreter produced {len(outputs)} outputs, TensorRT declares {layer.num_outputs}")
        if check_shapes:
            check_layer_outputs(layer, outputs)
        for i, value in enumerate(outputs):
            values[layer.get_output(i).name] = value
        if trace is not None:
            trace(layer.name, type_name, outputs)
    result: dict[str, np.ndarray] = {}
    for i in range(network.num_outputs):
        name = network.get_output(i).name
        if name not in values:
            raise InterpreterError(f"network output {name!r} was never computed")
        result[name] = values[name]
    return result


def _refuse_unsupported(network: Any) -> None:
    """Fails before any work on the first layer the interpreter cannot run (loops would also look cyclic)."""
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        type_name = layer_type_name(layer)
        if type_name not in HANDLERS:
            reason = _NOT_INTERPRETED.get(type_name, "no reference implementation")
            raise InterpreterError(f"layer {layer.name!r} ({type_name}): unsupported layer type: {reason}")


def check_layer_outputs(layer: Any, outputs: Sequence[np.ndarray]) -> None:
    """Raises `InterpreterError` unless each output has the shape and dtype TensorRT inferred for it.

    Dims TensorRT reports as -1 are dynamic: only the rank and the known dims are compared.
    """
    type_name = layer_type_name(layer)
    for i, value in enumerate(outputs):
        tensor = layer.get_output(i)
        try:
            shape = tensor.shape
        except RuntimeError:
            # TensorRT itself rejected the layer (its log says why); the network could never be built.
            raise InterpreterError(
                f"layer {layer.name!r} ({type_name}): TensorRT cannot infer the shape of output {i}; "
                "the layer is invalid (TensorRT's log says why)"
            ) from None
        check_value(layer.name, type_name, f"output {i} ({tensor.name!r})", shape, tensor.dtype, value)


def check_value(layer_name: str, type_name: str, what: str, shape: Any, dtype: Any, value: np.ndarray) -> None:
    """Compares one computed value with an inferred shape and TensorRT dtype, naming the layer on mismatch."""
    expected_shape = tuple(int(d) for d in shape)
    actual = tuple(np.shape(value))
    prefix = f"layer {layer_name!r} ({type_name}): {what}"
    if len(actual) != len(expected_shape) or any(e >= 0 and e != a for e, a in zip(expected_shape, actual)):
        raise InterpreterError(f"{prefix} has shape {actual}, TensorRT inferred {expected_shape}")
    expected_dtype = np_dtype(dtype)
    if np.asarray(value).dtype != expected_dtype:
        raise InterpreterError(
            f"{prefix} has dtype {trt_dtype_name(np.asarray(value).dtype)}, TensorRT inferred {dtype.name}"
        )


def _layer_inputs(layer: Any, type_name: str, values: Mapping[str, np.ndarray]) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for i in range(layer.num_inputs):
        tensor = layer.get_input(i)  # an optional input that was never set reads back as None
        if tensor is None:
            out.append(None)
            continue
        if tensor.name not in values:
            raise InterpreterError(f"layer {layer.name!r} ({type_name}): input {i} ({tensor.name!r}) has no value")
        out.append(values[tensor.name])
    return out


def _execution_order(network: Any) -> list[int]:
    """Layer indices in an order where every input is computed first (insertion order where possible).

    Networks are usually built in topological order, but `set_input` can rewire a layer to a tensor made later.
    """
    produced_by: dict[str, int] = {}
    needs: list[set[str]] = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        for o in range(layer.num_outputs):
            name = layer.get_output(o).name
            if name in produced_by:
                raise InterpreterError(
                    f"layer {layer.name!r} ({layer_type_name(layer)}): output name {name!r} is also produced by layer "
                    f"{network.get_layer(produced_by[name]).name!r}; tensor names must be unique"
                )
            produced_by[name] = index
        names = set()
        for i in range(layer.num_inputs):
            tensor = layer.get_input(i)
            if tensor is not None:
                names.add(tensor.name)
        needs.append(names)
    waiting_on: list[set[int]] = [{produced_by[n] for n in names if n in produced_by} for names in needs]
    dependents: dict[int, list[int]] = {}
    for index, deps in enumerate(waiting_on):
        deps.discard(index)
        for dep in deps:
            dependents.setdefault(dep, []).append(index)
    ready = [i for i, deps in enumerate(waiting_on) if not deps]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for nxt in dependents.get(index, ()):
            waiting_on[nxt].discard(index)
            if not waiting_on[nxt]:
                heapq.heappush(ready, nxt)
    if len(order) != network.num_layers:
        stuck = next(i for i in range(network.num_layers) if i not in set(order))
        layer = network.get_layer(stuck)
        raise InterpreterError(f"layer {layer.name!r} ({layer_type_name(layer)}): the network has a cycle through it")
    return order


def _validated_inputs(network: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    declared = [network.get_input(i) for i in range(network.num_inputs)]
    names = [t.name for t in declared]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InterpreterError(f"missing network input(s): {', '.join(repr(n) for n in missing)}")
    extra = [n for n in inputs if n not in names]
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
