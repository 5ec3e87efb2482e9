"""Intermediate tensors of an interpreter run, by tensor name (what calibration measures)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from trtnet.errors import InterpreterError
from trtnet.interpreter.interpreter import Interpreter


def run_network_capture(
    network: Any, inputs: Mapping[str, np.ndarray], tensors: Collection[str], *, check_shapes: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """`run_network`, also returning the named intermediate tensors: (outputs by name, tensors by name).

    `network` may be a prepared `Interpreter` (calibration runs one network over many batches).
    A name the network does not produce (nor take as an input) is an `InterpreterError` naming it.
    """
    runner = network if isinstance(network, Interpreter) else Interpreter(network)
    network = runner.network
    wanted = set(tensors)
    producer: dict[str, list[str]] = {}  # layer name -> the wanted tensors among its outputs
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        names = [layer.get_output(i).name for i in range(layer.num_outputs)]
        if layer.name in producer and any(n in wanted for n in names):
            raise InterpreterError(f"layer name {layer.name!r} is used twice: its tensors cannot be captured")
        producer[layer.name] = names
    given = {n: np.asarray(v) for n, v in inputs.items() if n in wanted}
    produced = {n for names in producer.values() for n in names}
    missing = sorted(wanted - produced - set(given))
    if missing:
        raise InterpreterError(f"no layer produces tensor(s) {', '.join(repr(n) for n in missing)}")
    captured: dict[str, np.ndarray] = dict(given)

    def trace(layer_name: str, _type: str, outputs: list[np.ndarray]) -> None:
        for name, value in zip(producer[layer_name], outputs):
            if name in wanted:
                captured[name] = value

    outputs = runner.run(inputs, check_shapes=check_shapes, trace=trace)
    return outputs, captured
