"""A numpy interpreter of TensorRT `INetworkDefinition`s.

It runs, on the CPU, the very network TensorRT would compile: each layer's attributes and weights are read
back from TensorRT, its outputs are computed in numpy, and every output is checked against the shape and
dtype TensorRT inferred. It shares no code with trtnet's network builder, so it can prove that builder right,
and it runs networks trtnet did not build (from `trt.OnnxParser`, say) as far as it knows their layer types;
`unsupported(network)` lists, before anything runs, every layer and attribute form it cannot run. Loops and
conditionals run too (control.py): a conditional's taken branch only, a loop's body once per iteration.

Numerics: every sum, product of matrices, convolution and transcendental function is computed in float64 and
rounded once, to the layer's declared output type, so that the interpreter is the most accurate party in a
comparison with float32 frameworks; operations correctly rounded in float32 anyway stay in the input's type.

    from trtnet.interpreter import run_network
    outputs = run_network(network, {"x": x})
    prepared = Interpreter(network)  # for repeated runs: weights widened to float64 once
    outputs = prepared.run({"x": x})
"""

from __future__ import annotations

from trtnet.interpreter.capture import run_network_capture
from trtnet.interpreter.checks import check_layer_outputs
from trtnet.interpreter.interpreter import Interpreter, layer_types_supported, run_network, unsupported

__all__ = [
    "Interpreter",
    "check_layer_outputs",
    "layer_types_supported",
    "run_network",
    "run_network_capture",
    "unsupported",
]
