"""The quantized layers that stand next to a network's float inputs and outputs: those a calibration's `keep`
rules "first" and "last" leave in fp16."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _layer_index(network: Any) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """The layers consuming each tensor, and the layer producing it, by tensor name."""
    consumers: dict[str, list[Any]] = {}
    producer: dict[str, Any] = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            if t is not None:
                consumers.setdefault(t.name, []).append(layer)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = layer
    return consumers, producer


def edge_layers(network: Any, weighted: Iterable[str]) -> dict[str, str]:
    """The weighted layers (by name) that are first or last: "first" when a float network input reaches them
    through no other weighted layer, "last" when they reach a network output through none. A residual join (an
    addition of two computed tensors) ends the walk back from an output: otherwise every block of a
    transformer, whose residual stream runs to the output, would count as last."""
    weighted = set(weighted)
    consumers, producer = _layer_index(network)
    found: dict[str, str] = {}

    # Tensors made from constants alone (an ONNX bias broadcast by a shuffle is one, like a constant), in network
    # order, which is topological for the networks written and parsed here.
    folded: set[str] = set()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        ins = [layer.get_input(j) for j in range(layer.num_inputs)]
        if type_name(layer) == "CONSTANT" or (ins and all(t is not None and t.name in folded for t in ins)):
            folded.update(layer.get_output(j).name for j in range(layer.num_outputs))

    def computed(t: Any) -> bool:
        return t is not None and t.name in producer and t.name not in folded

    def residual_join(layer: Any) -> bool:
        return (
            type_name(layer) == "ELEMENTWISE"
            and layer.num_inputs == 2
            and all(computed(layer.get_input(j)) for j in range(2))
            and _elementwise_op(layer) == "SUM"
        )

    def walk(starts: list[str], step, label: str) -> None:
        seen, todo = set(), list(starts)
        while todo:
            name = todo.pop()
            for layer in step(name):
                if layer.name in seen:
                    continue
                seen.add(layer.name)
                if layer.name in weighted:
                    found.setdefault(layer.name, label)
                elif label == "first":
                    todo += [layer.get_output(j).name for j in range(layer.num_outputs)]
                elif not residual_join(layer):
                    todo += [layer.get_input(j).name for j in range(layer.num_inputs) if layer.get_input(j) is not None]

    trt_float = {"FLOAT", "HALF", "BF16"}
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    walk([t.name for t in inputs if t.dtype.name in trt_float], lambda n: consumers.get(n, []), "first")
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    walk(outputs, lambda n: [producer[n]] if n in producer else [], "last")
    return found


def type_name(layer: Any) -> str:
    from trtnet.interpreter.checks import layer_type_name

    return layer_type_name(layer)


def _elementwise_op(layer: Any) -> str:
    from trtnet.backend import get_trt

    trt = get_trt()
    layer.__class__ = trt.IElementWiseLayer  # get_layer hands back the base class; downcast as the interpreter does
    return layer.op.name
