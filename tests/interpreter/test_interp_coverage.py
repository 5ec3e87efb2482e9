"""Layer forms that TensorRT's ONNX parser produces and trtnet's own emitter does not: slices with axes,
scatters; and the up-front refusal of what the interpreter cannot run, all of it named at once.

Oracles: numpy indexing and onnxruntime-free ONNX semantics written out in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.errors import InterpreterError
from trtnet.interpreter import run_network, unsupported

trt = get_trt()
onnx = pytest.importorskip("onnx", reason="onnx writes the graphs these tests parse")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _parse(nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(net, logger())
    assert parser.parse(model.SerializeToString()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return builder, parser, net


def _layer_types(net) -> set[str]:
    return {net.get_layer(i).type.name for i in range(net.num_layers)}


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"),
    [([1], [3], [1], [1]), ([0, 5], [2, 0], [-1, 2], [1, -2]), ([1], [100], [0], [2])],
    ids=["one-axis", "negative-axis-reverse-step", "past-the-end"],
)
def test_onnx_slice_with_axes(starts, ends, axes, steps) -> None:
    x = np.arange(3 * 4 * 6 * 5, dtype=np.float32).reshape(3, 4, 6, 5)
    const = [
        ("s", np.array(starts, np.int64)),
        ("e", np.array(ends, np.int64)),
        ("a", np.array(axes, np.int64)),
        ("p", np.array(steps, np.int64)),
    ]
    _b, _p, net = _parse(
        [helper.make_node("Slice", ["x", "s", "e", "a", "p"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        const,
    )
    assert "SLICE" in _layer_types(net)
    index = [slice(None)] * 4
    for s, e, a, p in zip(starts, ends, axes, steps):
        index[a] = slice(s, e, p)
    (got,) = run_network(net, {"x": x}).values()
    np.testing.assert_array_equal(got, x[tuple(index)])


def test_onnx_scatter_nd_and_elements() -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    nd_idx = np.array([[1, 2], [0, 0]], np.int64)
    nd_upd = -np.arange(8, dtype=np.float32).reshape(2, 4) - 1
    el_idx = np.array([[[3, 0, 1, 2]] * 3] * 2, np.int64)
    el_upd = np.full((2, 3, 4), 100, np.float32) + np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    _b, _p, net = _parse(
        [
            helper.make_node("ScatterND", ["x", "i", "u"], ["nd"]),
            helper.make_node("ScatterElements", ["x", "j", "v"], ["el"], axis=2),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [
            helper.make_tensor_value_info("nd", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("el", TensorProto.FLOAT, None),
        ],
        [("i", nd_idx), ("u", nd_upd), ("j", el_idx), ("v", el_upd)],
    )
    assert "SCATTER" in _layer_types(net)
    got = run_network(net, {"x": data})
    want_nd = data.copy()
    want_nd[1, 2], want_nd[0, 0] = nd_upd[0], nd_upd[1]
    want_el = data.copy()
    for b in range(2):
        for r in range(3):
            for k in range(4):
                want_el[b, r, el_idx[b, r, k]] = el_upd[b, r, k]
    np.testing.assert_array_equal(got["nd"], want_nd)
    np.testing.assert_array_equal(got["el"], want_el)


def test_scatter_index_out_of_range_names_the_layer() -> None:
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    data = net.add_input("data", trt.float32, (4,))
    idx = net.add_input("idx", trt.int32, (1, 1))
    upd = net.add_input("upd", trt.float32, (1,))
    layer = net.add_scatter(data, idx, upd, trt.ScatterMode.ND)
    layer.name = "the_scatter"
    net.mark_output(layer.get_output(0))
    with pytest.raises(InterpreterError, match=r"'the_scatter' \(SCATTER\): ND index value 7 is out of range"):
        run_network(
            net, {"data": np.zeros(4, np.float32), "idx": np.array([[7]], np.int32), "upd": np.ones(1, np.float32)}
        )


def test_every_unsupported_layer_is_named_before_any_runs() -> None:
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    x = net.add_input("x", trt.float32, (1, 4, 3, 3))
    lrn = net.add_lrn(x, 3, 1e-4, 0.75, 1.0)
    lrn.name = "first_lrn"
    fp4 = net.add_cast(lrn.get_output(0), trt.DataType.FP4)
    fp4.name = "to_fp4"
    back = net.add_cast(fp4.get_output(0), trt.float32)
    grid = net.add_grid_sample(x, net.add_input("grid", trt.float32, (1, 3, 3, 2)))
    grid.interpolation_mode = trt.InterpolationMode.CUBIC
    grid.name = "the_grid"
    net.mark_output(back.get_output(0))
    net.mark_output(grid.get_output(0))
    assert unsupported(net) == [
        "layer 'first_lrn' (LRN): unsupported layer type: no reference implementation",
        "layer 'to_fp4' (CAST): output 0 has data type FP4, which the interpreter does not model",
        "layer 'the_grid' (GRID_SAMPLE): CUBIC grid sampling is not modelled",
    ]
    with pytest.raises(InterpreterError, match=r"cannot run 3 layer forms of this network:\n  layer 'first_lrn'"):
        run_network(net, {"x": np.zeros((1, 4, 3, 3), np.float32), "grid": np.zeros((1, 3, 3, 2), np.float32)})


@pytest.mark.parametrize("align", [False, True], ids=["half-pixel", "align-corners"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_onnx_grid_sample_matches_torch(mode, padding, align) -> None:
    torch = pytest.importorskip("torch", reason="torch.nn.functional.grid_sample is the oracle")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    grid = (rng.uniform(-1.4, 1.4, (2, 4, 6, 2))).astype(np.float32)  # some samples fall outside
    onnx_mode = {"bilinear": "linear", "nearest": "nearest"}[mode]
    _b, _p, net = _parse(
        [
            helper.make_node(
                "GridSample", ["x", "g"], ["y"], mode=onnx_mode, padding_mode=padding, align_corners=int(align)
            )
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape)),
            helper.make_tensor_value_info("g", TensorProto.FLOAT, list(grid.shape)),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [],
    )
    assert "GRID_SAMPLE" in _layer_types(net)
    (got,) = run_network(net, {"x": x, "g": grid}).values()
    want = torch.nn.functional.grid_sample(
        torch.from_numpy(x).double(),
        torch.from_numpy(grid).double(),
        mode=mode,
        padding_mode=padding,
        align_corners=align,
    ).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_onnx_reverse_sequence() -> None:
    seq = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)  # batch 2 (axis 0), time 5 (axis 1)
    _b, _p, net = _parse(
        [helper.make_node("ReverseSequence", ["s", "lens"], ["rev"], batch_axis=0, time_axis=1)],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 5, 3])],
        [helper.make_tensor_value_info("rev", TensorProto.FLOAT, None)],
        [("lens", np.array([3, 5], np.int64))],
    )
    assert "REVERSE_SEQUENCE" in _layer_types(net)
    (got,) = run_network(net, {"s": seq}).values()
    want = seq.copy()
    want[0, :3] = seq[0, 2::-1]
    want[1] = seq[1, ::-1]
    np.testing.assert_array_equal(got, want)


def test_non_zero() -> None:
    # This backend's ONNX parser maps NonZero to a plugin, so the layer is made with the network API.
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    layer = net.add_non_zero(net.add_input("x", trt.float32, (2, 3)))
    net.mark_output(layer.get_output(0))
    x = np.array([[0, 2, 0], [3, 0, 4]], np.float32)
    (got,) = run_network(net, {"x": x}).values()
    np.testing.assert_array_equal(got, np.array(np.nonzero(x)))


def test_a_failing_assertion_names_its_message() -> None:
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    flag = net.add_input("flag", trt.bool, (2,))
    check = net.add_assertion(flag, "both flags must hold")
    check.name = "the_check"
    net.mark_output(net.add_identity(net.add_input("x", trt.float32, (1,))).get_output(0))
    ok = {"flag": np.array([True, True]), "x": np.ones(1, np.float32)}
    assert list(run_network(net, ok).values())[0].tolist() == [1.0]
    with pytest.raises(InterpreterError, match=r"'the_check' \(ASSERTION\): assertion failed: both flags must hold"):
        run_network(net, {**ok, "flag": np.array([True, False])})


def test_reshape_to_a_scalar_stays_0d_and_outputs_are_the_callers() -> None:
    builder = trt.Builder(logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    x = net.add_input("x", trt.float32, (1,))
    scalar = net.add_shuffle(x)
    scalar.reshape_dims = ()
    moved = net.add_shuffle(net.add_input("m", trt.float32, (2, 3)))
    moved.first_transpose = (1, 0)
    net.mark_output(scalar.get_output(0))
    net.mark_output(moved.get_output(0))
    m = np.arange(6, dtype=np.float32).reshape(2, 3)
    got_scalar, got_moved = run_network(net, {"x": np.array([4.0], np.float32), "m": m}).values()
    assert got_scalar.shape == () and float(got_scalar) == 4.0
    np.testing.assert_array_equal(got_moved, m.T)
    got_moved[0, 0] = 99.0  # an output is the caller's own array, not a view of the input
    assert m[0, 0] == 0.0
