"""Errors where they happen (issue 11): a layer TensorRT refuses while the network is written is a NetworkError at
that op, naming the module, the op, its inputs and TensorRT's reason; forward's outputs and output_names agree;
an unloaded parameter names itself and the ways to fill it; a CPU-only machine's CUDA-driver line is not shown."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from trtnet import nn
from trtnet.errors import NetworkError
from trtnet.nn.module import Input


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        self.fc = nn.Linear(dim, dim)

    def forward(self, x, positions):
        return self.fc(x) + positions  # positions longer than x: TensorRT cannot broadcast them


class Model(nn.Module):
    """x [B, 3, 4] plus a position table [B, 5, 4] inside block 1, then a LayerNorm in the next module."""

    def __init__(self) -> None:
        self.blocks = [Block(4), Block(4)]
        self.norm = nn.LayerNorm(4)

    def inputs(self) -> list[Input]:
        return [Input("x", (3, 4)), Input("positions", (5, 4))]

    def forward(self, x, positions):
        x = self.blocks[0](x, positions[:, :3])
        return self.norm(self.blocks[1](x, positions))


def test_a_shape_trt_cannot_infer_is_a_network_error_at_the_op_with_trts_reason(capfd):
    model = Model()
    trtnet.init_random(model)
    with pytest.raises(NetworkError) as caught:
        trtnet.emit(model, 2)
    assert str(caught.value) == (
        "module 'blocks.1': TensorRT refused op 'add' (layer 'blocks.1/sum'; inputs "
        "blocks.1.fc/bias_output float32[2, 3, 4], positions float32[2, 5, 4]): ITensor::getDimensions: Error "
        "Code 4: Shape Error (broadcast dimensions must be conformable) "
        f"(at {__file__}:{Block.forward.__code__.co_firstlineno + 1})"  # the model's own line, where it added
    )
    # Raised inside Block.forward, at the line that adds: the traceback shows the user's line.
    assert any(entry.name == "forward" and "positions" in str(entry.statement) for entry in caught.traceback)
    err = capfd.readouterr().err
    assert "CUDA driver" not in err and "cudaError" not in err  # the CPU-only machine's noise is not shown
    assert "broadcast dimensions" not in err  # the reason travels in the error, not (only) in the log


class ZeroKernel(nn.Module):
    def __init__(self) -> None:
        self.conv = nn.Conv2d(3, 4, (0, 3))

    def inputs(self) -> list[Input]:
        return [Input("x", (3, 8, 8))]

    def forward(self, x):
        return self.conv(x)


def test_a_layer_trt_refuses_to_add_is_a_network_error_naming_the_op_and_its_inputs(capfd):
    model = ZeroKernel()
    trtnet.init_random(model)
    with pytest.raises(
        NetworkError,
        match=(
            r"^module 'conv': TensorRT refused op 'conv2d' \(inputs x float32\[1, 3, 8, 8\]\): "
            r"INetworkDefinition::addConvolutionNd: Error Code 3: API Usage Error \(Parameter check failed, "
            r"condition: allDimsGtEq\(kernelSize, 1\)"
        ),
    ):
        trtnet.emit(model, 1)
    err = capfd.readouterr().err
    assert "CUDA driver" not in err and "addConvolutionNd" not in err


def test_trt_errors_outside_the_dsl_are_still_printed_without_the_driver_line(capfd):
    from trtnet.backend import get_trt, logger

    trt = get_trt()
    network = trt.Builder(logger()).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    assert network.add_concatenation([]) is None
    err = capfd.readouterr().err
    assert "[TRT] [E] INetworkDefinition::addConcatenation: Error Code 3" in err
    assert "CUDA driver" not in err and "cudaError" not in err


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        self.fc = nn.Linear(4, 4)

    def inputs(self) -> list[Input]:
        return [Input("x", (4,))]

    def output_names(self, n: int) -> list[str]:
        return ["y"]

    def forward(self, x):
        y = self.fc(x)
        return y, y.softmax(-1)


def test_more_outputs_than_output_names_is_an_error():
    model = TwoOutputs()
    trtnet.init_random(model)
    with pytest.raises(
        NetworkError,
        match=r"^TwoOutputs.forward returned 2 outputs but TwoOutputs.output_names\(2\) "
        r"names 1: \['y'\]; name each output once \(or return fewer\)$",
    ):
        trtnet.emit(model, 1)


class Returns(nn.Module):
    """forward's results as `pick` chooses them from x and fc(x), named `names`."""

    def __init__(self, pick, names: list[str]) -> None:
        self.fc = nn.Linear(4, 4)
        self.pick, self.names = pick, names

    def inputs(self) -> list[Input]:
        return [Input("x", (4,))]

    def output_names(self, n: int) -> list[str]:
        return self.names

    def forward(self, x):
        return self.pick(x, self.fc(x))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize(
    "pick, names",
    [
        (lambda x, y: (y, y), ["y", "z"]),  # one tensor twice: renaming it took "y" away, one output was left
        (lambda x, y: (x, y), ["same", "y"]),  # the input as it is: renaming it renamed the input
    ],
    ids=["one tensor twice", "the input"],
)
def test_each_output_is_a_tensor_of_its_own_with_its_own_name(pick, names, precision):
    model = Returns(pick, names)
    trtnet.init_random(model)
    net = trtnet.emit(model, 2, precision=precision)
    network = net.network
    assert [network.get_output(i).name for i in range(network.num_outputs)] == names
    assert [network.get_input(i).name for i in range(network.num_inputs)] == ["x"]
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = trtnet.interpreter.run_network(network, {"x": x})
    want = trtnet.reference(model, x)
    tol = 0 if precision == "fp32" else 2e-3  # fp16 rounds every value once or twice
    for name, w in zip(names, want):
        np.testing.assert_allclose(got[name], w, rtol=tol, atol=tol)
    if names[0] == "same":
        np.testing.assert_allclose(got["same"], x, rtol=tol, atol=tol)


def test_an_output_may_not_take_a_name_another_tensor_has():
    model = Returns(lambda x, y: y, ["x"])
    trtnet.init_random(model)
    with pytest.raises(NetworkError, match=r"^Returns: output 'x' has the name of an input"):
        trtnet.emit(model, 1)


def test_an_unloaded_parameter_names_its_key_and_the_ways_to_fill_it():
    model = TwoOutputs()
    with pytest.raises(
        NetworkError,
        match=r"^parameter 'fc.weight' \(shape \(4, 4\)\) has no value: load the "
        r"model's weights with trtnet.load_weights\(model, 'weights.safetensors'\) \(or a dict of "
        r"arrays\), or fill it with seeded random values with trtnet.init_random\(model\); a zoo "
        r"entry does either itself: zoo_fn\(weights=FILE\) or zoo_fn\(weights=None\) \(at .*test_errors.py:\d+\)$",
    ):
        trtnet.reference(model, np.zeros((1, 4), np.float32))


def test_a_tensor_made_outside_the_ops_names_trts_reason_when_its_shape_is_read(capfd):
    """The fallback for a Tensor wrapped around a layer output directly (not through ops.core.out)."""
    from trtnet.backend import get_trt, logger
    from trtnet.graph import Graph
    from trtnet.tensor import Tensor

    trt = get_trt()
    network = trt.Builder(logger()).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    a, b = network.add_input("a", trt.float32, (2, 3)), network.add_input("b", trt.float32, (2, 4))
    layer = network.add_elementwise(a, b, trt.ElementWiseOperation.SUM)
    layer.get_output(0).name = "a_plus_b"
    with Graph(network) as graph, graph.scope("blocks.0.attn"):
        with pytest.raises(
            NetworkError,
            match=r"^module 'blocks.0.attn': tensor 'a_plus_b': TensorRT cannot infer its "
            r"shape: ITensor::getDimensions: Error Code 4: Shape Error \(broadcast dimensions must be "
            r"conformable\)$",
        ):
            _ = Tensor(layer.get_output(0)).shape
    assert "CUDA driver" not in capfd.readouterr().err
