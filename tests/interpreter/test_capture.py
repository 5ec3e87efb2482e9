"""`run_network_capture`: a run's intermediate tensors by name, the hook calibration measures through."""

from __future__ import annotations

import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.errors import InterpreterError
from trtnet.interpreter import run_network, run_network_capture

trt = get_trt()


def network():
    builder = trt.Builder(logger())
    net = builder.create_network(0)
    x = net.add_input("x", trt.float32, (2, 3))
    relu = net.add_activation(x, trt.ActivationType.RELU)
    relu.name = "relu"
    relu.get_output(0).name = "after_relu"
    neg = net.add_unary(relu.get_output(0), trt.UnaryOperation.NEG)
    neg.get_output(0).name = "y"
    net.mark_output(neg.get_output(0))
    return builder, net


def test_named_intermediate_tensors_come_back_with_the_outputs():
    _builder, net = network()
    x = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], np.float32)
    outputs, tensors = run_network_capture(net, {"x": x}, {"after_relu", "x"})
    np.testing.assert_array_equal(tensors["after_relu"], np.maximum(x, 0))
    np.testing.assert_array_equal(tensors["x"], x)  # a network input may be asked for too
    np.testing.assert_array_equal(outputs["y"], run_network(net, {"x": x})["y"])
    assert set(outputs) == {"y"}


def test_an_unknown_tensor_name_is_refused_before_running():
    _builder, net = network()
    with pytest.raises(InterpreterError, match=r"no layer produces tensor\(s\) 'nope'"):
        run_network_capture(net, {"x": np.zeros((2, 3), np.float32)}, ["nope"])
