"""Whole networks (dynamic shapes, fp16/bf16, an ONNX-parsed network) and the interpreter's own checks
(trtnet/interpreter/interpreter.py, checks.py): unsupported layers, bad inputs, the shape checker, tracing."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, add_conv, check_case, rand, t, torch_or_skip, trt
from trtnet.backend import logger
from trtnet.errors import InterpreterError
from trtnet.interpreter import check_layer_outputs, layer_types_supported, run_network

CASES = CaseTable()


# --- dynamic shapes and low precision ------------------------------------------------------------------


@CASES.case()
def dynamic_batch_conv_pool_dense():
    F = torch_or_skip().nn.functional
    n = Net()
    x, w, fc = rand(5, 3, 8, 8), rand(4, 3, 3, 3), rand(4, 2)
    xi = n.input("x", (-1, 3, -1, -1))
    conv = add_conv(n, xi, w, None, padding_nd=(1, 1))
    relu = n.net.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    gap = n.net.add_reduce(relu.get_output(0), trt.ReduceOperation.AVG, 0b1100, False)
    M = trt.MatrixOperation
    dense = n.net.add_matrix_multiply(gap.get_output(0), M.NONE, n.const(fc), M.NONE)
    n.mark(dense.get_output(0))
    assert tuple(dense.get_output(0).shape) == (-1, 2)
    ref = F.relu(F.conv2d(t(x), t(w), padding=1)).mean(dim=(2, 3)).numpy() @ fc
    return [(n.run(x=x)[0], ref)]


@CASES.case(tol=dict(rtol=2e-2, atol=2e-2))
def fp16_network():
    torch = torch_or_skip()
    F = torch.nn.functional
    n = Net()
    x, w, m = rand(2, 3, 6, 6), rand(4, 3, 3, 3) * 0.3, rand(36, 5) * 0.2
    xi = n.input("x", x.shape, trt.float16)
    conv = add_conv(n, xi, w.astype(np.float16), None, padding_nd=(1, 1))
    flat = n.net.add_shuffle(conv.get_output(0))
    flat.reshape_dims = (2, 4, 36)
    mm = n.net.add_matrix_multiply(
        flat.get_output(0), trt.MatrixOperation.NONE, n.const(m.astype(np.float16)[None]), trt.MatrixOperation.NONE
    )
    sm = n.net.add_softmax(mm.get_output(0))
    sm.axes = 1 << 1
    n.mark(sm.get_output(0))
    out = n.run(x=x)[0]
    assert out.dtype == np.float16
    xh = x.astype(np.float16).astype(np.float64)
    wh = w.astype(np.float16).astype(np.float64)
    mh = m.astype(np.float16).astype(np.float64)
    conv_ref = F.conv2d(torch.from_numpy(xh), torch.from_numpy(wh), padding=1).numpy().reshape(2, 4, 36)
    return [(out, torch.softmax(torch.from_numpy(conv_ref @ mh), 1).numpy())]


@CASES.case(tol=dict(rtol=5e-2, atol=5e-2))
def bf16_network():
    n = Net()
    bf = ml_dtypes.bfloat16
    x, w = rand(3, 8), rand(8, 4)
    xi = n.input("x", x.shape, trt.DataType.BF16)
    mm = n.net.add_matrix_multiply(xi, trt.MatrixOperation.NONE, n.const(w.astype(bf)), trt.MatrixOperation.NONE)
    gamma, beta = np.ones((1, 4)), np.zeros((1, 4))
    ln = n.net.add_normalization(mm.get_output(0), n.const(gamma.astype(bf)), n.const(beta.astype(bf)), 1 << 1)
    act = n.net.add_activation(ln.get_output(0), trt.ActivationType.GELU_ERF)
    img, k = rand(1, 2, 5, 5), rand(3, 2, 3, 3)
    conv = add_conv(n, n.input("img", img.shape, trt.DataType.BF16), k.astype(bf), np.ones(3).astype(bf))
    n.mark(act.get_output(0), conv.get_output(0))
    out, conv_out = n.run(x=x.astype(bf), img=img)
    assert out.dtype == bf and conv_out.dtype == bf
    y = x.astype(bf).astype(np.float64) @ w.astype(bf).astype(np.float64)
    y = (y - y.mean(1, keepdims=True)) / np.sqrt(y.var(1, keepdims=True) + 1e-5)
    gelu = 0.5 * y * (1 + np.vectorize(math.erf)(y / math.sqrt(2)))
    # A valid 3x3 convolution as a sum of shifted products, in float64 from the bf16-rounded values.
    i64, k64 = img.astype(bf).astype(np.float64), k.astype(bf).astype(np.float64)
    conv_ref = np.ones((1, 3, 3, 3))
    for dy in range(3):
        for dx in range(3):
            conv_ref += np.einsum("nchw,kc->nkhw", i64[:, :, dy : dy + 3, dx : dx + 3], k64[:, :, dy, dx])
    return [(out, gelu), (conv_out, conv_ref)]


# --- a raw network from TensorRT's ONNX parser -----------------------------------------------------------


@CASES.case()
def onnx_parsed_network():
    pytest.importorskip("onnx", reason="onnx builds the model this row parses and is not installed")
    from onnx import TensorProto, helper, numpy_helper

    F = torch_or_skip().nn.functional
    w, b, fc, fb = rand(4, 3, 3, 3), rand(4), rand(4, 5), rand(5)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("Gemm", ["f", "fc", "fb"], ["y"]),
            helper.make_node("Softmax", ["y"], ["out"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 9])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(a, name) for a, name in ((w, "w"), (b, "b"), (fc, "fc"), (fb, "fb"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    n = Net()
    parser = trt.OnnxParser(n.net, logger())
    assert parser.parse(model.SerializeToString()), [parser.get_error(i).desc() for i in range(parser.num_errors)]
    x = rand(2, 3, 9, 9)
    got = run_network(n.net, {"x": x})["out"]
    z = F.relu(F.conv2d(t(x), t(w), t(b), stride=2, padding=1)).mean(dim=(2, 3)).numpy() @ fc + fb
    return [(got, torch_or_skip().softmax(t(z.astype(np.float32)), 1).numpy())]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)


# ------------------------------------------------------------------------------------------------------
# The interpreter's own checks


def _conv_net() -> tuple[Net, object]:
    n = Net()
    w = rand(2, 1, 3, 3)
    layer = add_conv(n, n.input("image", (-1, 1, 6, 6)), w, None)
    layer.name = "the_conv"
    n.mark(layer.get_output(0))
    return n, layer


def test_unsupported_layer_names_layer_and_type() -> None:
    n = Net()
    lrn = n.net.add_lrn(n.input("x", (1, 4, 3, 3)), 3, 1e-4, 0.75, 1.0)
    lrn.name = "my_lrn"
    n.mark(lrn.get_output(0))
    with pytest.raises(InterpreterError, match=r"my_lrn.*LRN.*unsupported"):
        run_network(n.net, {"x": rand(1, 4, 3, 3)})
    assert "LRN" not in layer_types_supported()


@pytest.mark.parametrize(
    ("inputs", "pattern"),
    [
        ({"image": np.zeros((2, 1, 6, 7), np.float32)}, r"input 'image': dim 3 is 7"),
        ({"image": np.zeros((1, 6, 6), np.float32)}, r"input 'image': expected rank 4"),
        ({}, r"missing network input\(s\): 'image'$"),
        ({"img": np.zeros((1, 1, 6, 6), np.float32)}, r"missing network input\(s\): 'image'; given instead 'img'$"),
        ({"image": np.zeros((1, 1, 6, 6), np.float32), "other": np.zeros(1)}, r"unknown network input\(s\): 'other'"),
        ({"image": np.zeros((1, 1, 6, 6), np.int32)}, r"input 'image': dtype int32"),
    ],
    ids=["wrong-dim", "wrong-rank", "missing", "misspelt", "extra", "wrong-dtype"],
)
def test_bad_inputs_name_the_input(inputs: dict, pattern: str) -> None:
    n, _ = _conv_net()
    with pytest.raises(InterpreterError, match=pattern):
        run_network(n.net, inputs)


def test_float64_input_is_cast_and_batch_is_free() -> None:
    n, _ = _conv_net()
    out = run_network(n.net, {"image": np.ones((3, 1, 6, 6), np.float64)})
    (value,) = out.values()
    assert value.shape == (3, 2, 4, 4) and value.dtype == np.float32


def test_shape_checker_names_layer() -> None:
    n, layer = _conv_net()
    good = np.zeros((7, 2, 4, 4), np.float32)  # batch is dynamic (-1): any size passes
    check_layer_outputs(layer, [good])
    with pytest.raises(InterpreterError, match=r"'the_conv' \(CONVOLUTION\).*shape \(7, 2, 5, 4\).*\(-1, 2, 4, 4\)"):
        check_layer_outputs(layer, [np.zeros((7, 2, 5, 4), np.float32)])
    with pytest.raises(InterpreterError, match=r"'the_conv' \(CONVOLUTION\).*dtype HALF.*FLOAT"):
        check_layer_outputs(layer, [good.astype(np.float16)])
    # A layer object of a subclass whose `.type` is its own enum still reports its LayerType.
    act = n.net.add_activation(layer.get_output(0), trt.ActivationType.RELU)
    act.name = "the_relu"
    with pytest.raises(InterpreterError, match=r"'the_relu' \(ACTIVATION\).*rank|'the_relu' \(ACTIVATION\).*shape"):
        check_layer_outputs(act, [np.zeros((2, 4, 4), np.float32)])


def test_trace_sees_every_layer() -> None:
    n, _ = _conv_net()
    seen = []
    run_network(
        n.net,
        {"image": np.ones((1, 1, 6, 6), np.float32)},
        trace=lambda name, kind, outs: seen.append((name, kind, outs[0].shape)),
    )
    assert seen == [("the_conv", "CONVOLUTION", (1, 2, 4, 4))]


def test_supported_types_cover_the_brief() -> None:
    wanted = {
        "CONVOLUTION",
        "DECONVOLUTION",
        "POOLING",
        "ACTIVATION",
        "ELEMENTWISE",
        "UNARY",
        "SCALE",
        "SHUFFLE",
        "CONCATENATION",
        "SOFTMAX",
        "REDUCE",
        "MATRIX_MULTIPLY",
        "CONSTANT",
        "CAST",
        "IDENTITY",
        "SLICE",
        "GATHER",
        "RESIZE",
        "NORMALIZATION",
        "SELECT",
        "PADDING",
        "SHAPE",
        "SQUEEZE",
        "UNSQUEEZE",
        "FILL",
        "TOPK",
        "EINSUM",
        "PARAMETRIC_RELU",
        "CUMULATIVE",
        "ONE_HOT",
        "ATTENTION_INPUT",
        "ATTENTION_OUTPUT",
    }
    assert wanted <= layer_types_supported()
    assert layer_types_supported() <= set(trt.LayerType.__members__)


def test_something_other_than_a_network_is_refused_naming_what_it_is():
    """run_network(None, {}) was an AttributeError; trtnet's own Network wrapper gets the way to its network."""
    with pytest.raises(InterpreterError, match=r"^the interpreter runs a TensorRT INetworkDefinition, not NoneType$"):
        run_network(None, {})
    n = Net()
    n.mark(n.input("x", (2,)))
    wrapper = type("Network", (), {"network": n.net})()
    with pytest.raises(InterpreterError, match=r"not Network; pass its \.network$"):
        run_network(wrapper, {})
