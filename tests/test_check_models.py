"""`trtnet check` on the less tidy models users bring: random layers, an input that is also an output, weights in
external data files that are missing or short, operators no layer implements."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest

from trtnet.cli import main
from trtnet.errors import CheckError, NetworkError
from trtnet.onnx.check import check_onnx
from trtnet.onnx.parse import parse_onnx

onnx = pytest.importorskip("onnx", reason="onnx writes the models these tests check")
pytest.importorskip("onnxruntime", reason="onnxruntime is the other side of the comparison")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _save(path, nodes, outputs, initializers=(), domains=(), **save) -> str:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in outputs],
        list(initializers),
    )
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path), **save)
    return str(path)


def _random_model(tmp_path, op: str = "RandomNormalLike") -> str:
    """y = x + noise (random), z = relu(x), s = shape(noise): only y depends on the draw."""
    return _save(
        tmp_path / "noise.onnx",
        [
            helper.make_node(op, ["x"], ["noise"]),
            helper.make_node("Add", ["x", "noise"], ["y"]),
            helper.make_node("Relu", ["x"], ["z"]),
            helper.make_node("Shape", ["noise"], ["s"]),
        ],
        [("y", TensorProto.FLOAT, [1, 4]), ("z", TensorProto.FLOAT, [1, 4]), ("s", TensorProto.INT64, [2])],
    )


@pytest.mark.parametrize("op", ["RandomNormalLike", "RandomUniformLike"])
def test_outputs_of_random_layers_are_not_compared_and_the_others_are(tmp_path, op, capsys) -> None:
    """Draws cannot match onnxruntime's: an output made from one is named as not compared (it used to be compared,
    and passed only because the arbiter's own draws put onnxruntime farther away). A draw's shape is compared."""
    path = _random_model(tmp_path, op)
    for layerwise in (False, True):
        report = check_onnx(path, layerwise=layerwise)
        by_name = {o.name: o for o in report.outputs}
        assert by_name["y"].agreement is None and by_name["y"].random_from
        assert by_name["z"].agreement is not None and by_name["z"].agreement.ok
        assert by_name["s"].agreement is not None and by_name["s"].agreement.ok
        assert report.ok and report.departure is None
    assert main(["check", path, "--layerwise"]) == 0
    out = capsys.readouterr().out
    assert "output 'y' float32[1, 4]: not compared, it depends on the random layer" in out
    assert "within tolerance (1 of 3 outputs not compared)" in out


def test_a_model_whose_outputs_are_all_random_has_nothing_to_compare(tmp_path, capsys) -> None:
    path = _save(
        tmp_path / "noise.onnx",
        [helper.make_node("RandomNormalLike", ["x"], ["noise"]), helper.make_node("Add", ["x", "noise"], ["y"])],
        [("y", TensorProto.FLOAT, [1, 4])],
    )
    with pytest.raises(CheckError, match=r"noise.onnx: every output depends on random values \(layer\(s\) \['"):
        check_onnx(path)
    assert main(["check", path, "--save-outputs", str(tmp_path / "o.npz")]) == 2
    assert "nothing to compare" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_an_input_that_is_also_an_output_reaches_onnxruntime_by_its_own_name(tmp_path) -> None:
    """TensorRT's parser renames such an input `x` to `__x`; onnxruntime and the arbiter know it as `x` (they were
    given `__x`, and onnxruntime refused the model as missing an input)."""
    path = _save(
        tmp_path / "through.onnx",
        [helper.make_node("Sigmoid", ["x"], ["y"])],
        [("y", TensorProto.FLOAT, [1, 4]), ("x", TensorProto.FLOAT, [1, 4])],
    )
    report = check_onnx(path, layerwise=True)
    assert report.ok and [o.name for o in report.outputs] == ["y", "x"]
    assert all(o.agreement is not None and o.agreement.ok for o in report.outputs)
    assert list(report.inputs) == ["__x"]
    # The file's own name is taken too, in given arrays and shapes; saved inputs carry it (onnxruntime's name).
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    for given in ({"x": x}, {"__x": x}):
        assert check_onnx(path, given, shapes={"x": (1, 4)}, save_inputs=tmp_path / "in.npz").ok
        assert list(np.load(tmp_path / "in.npz")) == ["x"]
        (tmp_path / "in.npz").unlink()
    # An input the file itself names __y, beside an output y made otherwise, is not a rename (it was taken for one).
    own = _save(
        tmp_path / "own.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        [("y", TensorProto.FLOAT, [1, 4])],
    )
    renamed = onnx.load(own)
    renamed.graph.input[0].name = "__y"
    renamed.graph.node[0].input[0] = "__y"
    onnx.save(renamed, own)
    report = check_onnx(own)
    assert report.ok and list(report.inputs) == ["__y"] and report.outputs[0].agreement.ok


def _external_model(tmp_path, location: str = "ext.bin") -> str:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "w")
    return _save(
        tmp_path / "ext.onnx",
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [("y", TensorProto.FLOAT, [1, 4])],
        [w],
        save_as_external_data=True,
        location=location,
        size_threshold=0,
    )


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda p: p.unlink(), r"initializer 'w': its external data 'ext.bin' is missing \(looked for .*ext.bin\)"),
        (lambda p: p.write_bytes(p.read_bytes()[:10]), r"'ext.bin' holds 10 bytes, the model reads up to byte 64"),
        (lambda p: (p.unlink(), p.mkdir()), r"its external data 'ext.bin' is a directory, not a regular file"),
    ],
)
def test_external_data_that_cannot_be_read_is_named(tmp_path, damage, said) -> None:
    """The parser says only which initializer it could not import; the file at fault is named before that."""
    path = _external_model(tmp_path)
    assert check_onnx(path).ok
    damage(tmp_path / "ext.bin")
    with pytest.raises(CheckError, match=said):
        check_onnx(path)
    with pytest.raises(NetworkError, match=said):
        parse_onnx(path)


@pytest.mark.parametrize(
    "name, said",
    [("", r"unnamed node 1 of the graph or of a subgraph \(MyOp\): "), ("mine", r"node 'mine' \(MyOp\): ")],
)
def test_an_operator_nothing_implements_is_named_with_its_node(tmp_path, name, said) -> None:
    """An unnamed node is named by the parser's index, which counts within the node's own graph (a Loop's body
    has its own node 0: it was said as the main graph's node 0, the Loop)."""
    path = _save(
        tmp_path / "custom.onnx",
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MyOp", ["r"], ["y"], name=name, domain="my.ops")],
        [("y", TensorProto.FLOAT, [1, 4])],
        domains=["my.ops"],
    )
    with pytest.raises(CheckError, match=r"custom.onnx: TensorRT's ONNX parser refused it: " + said):
        check_onnx(path)
    with pytest.raises(NetworkError, match=said):
        parse_onnx(path)


def test_a_scalar_input_is_checked_and_is_refused_for_an_engine_by_name(tmp_path) -> None:
    """Rank-0 inputs (a threshold, a Range limit) are legal ONNX: check runs them, from given arrays too (refused
    as a bad --shapes before); an engine takes dim 0 as its batch, so parse_onnx says so (an IndexError before)."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    path = tmp_path / "scalar.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    given = {"x": np.array([1, 2, 3], np.float32), "s": np.array(2.5, np.float32)}
    for inputs in (given, None):
        report = check_onnx(path, inputs)
        assert report.ok and report.outputs[0].agreement.ok and report.inputs["s"] == ()
    with pytest.raises(NetworkError, match=r"scalar.onnx: input 's' is a scalar \(rank 0\)"):
        parse_onnx(path)


@pytest.mark.parametrize("role", ["input", "output"])
def test_a_bfloat16_input_or_output_is_refused_naming_the_file_and_the_tensor(tmp_path, role) -> None:
    """numpy has no bfloat16 of its own, so an engine's specs cannot hold one: the refusal names the file and the
    tensor (it was 'no numpy dtype for bfloat16'), and says how to export it instead."""
    x_type, y_type = (
        (TensorProto.BFLOAT16, TensorProto.FLOAT) if role == "input" else (TensorProto.FLOAT, TensorProto.BFLOAT16)
    )
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=y_type)],
        "g",
        [helper.make_tensor_value_info("x", x_type, [2, 3])],
        [helper.make_tensor_value_info("y", y_type, [2, 3])],
    )
    path = tmp_path / "bf16.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    name = "x" if role == "input" else "y"
    with pytest.raises(
        NetworkError, match=rf"bf16.onnx: {role} '{name}' has data type bfloat16, .* cast it to float32"
    ):
        parse_onnx(path)


@contextlib.contextmanager
def _unblocked(fifo):
    """Should the parser open `fifo` after all, a writer comes every 20 s and closes it: the test then fails
    rather than hangs."""
    done = threading.Event()

    def unblock() -> None:
        while not done.wait(20):
            with open(fifo, "wb"):
                pass

    threading.Thread(target=unblock, daemon=True).start()
    try:
        yield
    finally:
        done.set()


def test_external_data_that_is_a_fifo_is_refused_before_the_parser_opens_it(tmp_path) -> None:
    """TensorRT's parser blocked on a FIFO named as external data, past Ctrl-C and SIGTERM. (Should it open one
    again, a writer comes every 20 s and closes it, so that this test fails rather than hangs.)"""
    import os

    path = _external_model(tmp_path)
    (tmp_path / "ext.bin").unlink()
    os.mkfifo(tmp_path / "ext.bin")
    with _unblocked(tmp_path / "ext.bin"):
        with pytest.raises(CheckError, match=r"ext.onnx: its external data 'ext.bin' is a FIFO, not a regular file"):
            check_onnx(path)
        with pytest.raises(NetworkError, match=r"its external data 'ext.bin' is a FIFO, not a regular file"):
            parse_onnx(path)


def test_a_fifo_in_a_subfolder_is_refused_and_one_beside_a_model_without_external_data_is_not(tmp_path) -> None:
    """The locations are the model's own: a FIFO named `sub/w.bin` hung the parser (only files beside the model were
    looked at), and a FIFO named `y` beside a model with no external data at all was taken for its weights."""
    import os

    (tmp_path / "sub").mkdir()
    path = _external_model(tmp_path, "sub/w.bin")
    (tmp_path / "sub" / "w.bin").unlink()
    os.mkfifo(tmp_path / "sub" / "w.bin")
    with _unblocked(tmp_path / "sub" / "w.bin"):
        with pytest.raises(CheckError, match=r"its external data 'sub/w.bin' is a FIFO, not a regular file"):
            check_onnx(path)
        with pytest.raises(NetworkError, match=r"its external data 'sub/w.bin' is a FIFO, not a regular file"):
            parse_onnx(path)
    (tmp_path / "plain").mkdir()
    plain = _save(
        tmp_path / "plain" / "relu.onnx", [helper.make_node("Relu", ["x"], ["y"])], [("y", TensorProto.FLOAT, [1, 4])]
    )
    os.mkfifo(tmp_path / "plain" / "y")
    assert check_onnx(plain).ok
