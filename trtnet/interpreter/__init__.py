"""A numpy interpreter of TensorRT `INetworkDefinition`s.

It runs, on the CPU, the very network TensorRT would compile: each layer's attributes and weights are read
back from TensorRT, its outputs are computed in numpy, and every output is checked against the shape and
dtype TensorRT inferred. It shares no code with trtnet's network builder, so it can prove that builder right,
and it runs networks trtnet did not build (from `trt.OnnxParser`, say) as far as it knows their layer types.

    from trtnet.interpreter import run_network
    outputs = run_network(network, {"x": x})
"""
from __future__ import annotations

from trtnet.interpreter.capture import run_network_capture
from trtnet.interpreter.interpreter import check_layer_outputs, layer_types_supported, run_network

__all__ = ["check_layer_outputs", "layer_types_supported", "run_network", "run_network_capture"]
