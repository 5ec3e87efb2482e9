"""The shape flags of the ONNX route in trtexec's spellings (trtnet/onnx/shapes.py): names holding ':' or, in single
quotes, ',' read back as the names the file gives, and the error that asks for a shape spells the name that way."""

from __future__ import annotations

import json

import pytest

import trtnet
from tests.helpers import error_line, trtnet_cli
from trtnet.onnx.shapes import parse_shapes_text, quote_name

onnx = pytest.importorskip("onnx", reason="onnx.helper writes the files")
from onnx import TensorProto, helper  # noqa: E402


@pytest.mark.parametrize(
    ("text", "shapes"),
    [
        ("x:1x3,mask:1x77", {"x": (1, 3), "mask": (1, 77)}),
        ("x:0:2x3", {"x:0": (2, 3)}),  # an unquoted name may hold ':': the last one separates
        ("'a,b':2x3", {"a,b": (2, 3)}),
        ("'a,b':2x3,'c:d,e':4", {"a,b": (2, 3), "c:d,e": (4,)}),
        (" 'a,b' : 2x3 , y:1 ", {"a,b": (2, 3), "y": (1,)}),
        ("'x:0':2x3", {"x:0": (2, 3)}),
        ("'it''s, here':5", {"it's, here": (5,)}),  # '' in the quotes is one quote
        ("it's:5", {"it's": (5,)}),  # a quote inside an unquoted name is the name's
    ],
)
def test_names_quoted_or_not_read_as_written(text, shapes):
    assert parse_shapes_text(text) == shapes


@pytest.mark.parametrize("name", ["a,b", "x:0", "it's", "'quoted'", " padded ", "a,b:c", "images"])
def test_a_quoted_name_reads_back_as_itself(name):
    assert parse_shapes_text(f"{quote_name(name)}:2x3,z:1") == {name: (2, 3), "z": (1,)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b:2x3", "--shapes 'a': expected NAME:DIMS"),  # unquoted, the comma separates two inputs
        ("'a,b:2x3", '--shapes "\'a,b:2x3": the quoted name has no closing quote'),
        ("'a,b'", "--shapes \"'a,b'\": expected NAME:DIMS"),
        ("'a,b'x:2x3", "--shapes \"'a,b'x:2x3\": expected NAME:DIMS"),
        ("'a,b':2x3,'a,b':4x3", "--shapes names input 'a,b' twice"),
    ],
)
def test_malformed_quoting_is_a_network_error_naming_the_piece(text, message):
    with pytest.raises(trtnet.NetworkError) as e:
        parse_shapes_text(text)
    assert str(e.value).startswith(message)


def test_spaces_around_the_dims_are_read_as_before():
    assert parse_shapes_text("x: 2 x 4") == {"x": (2, 4)}


@pytest.mark.parametrize("dims", ["1_0x3", "+1x3", "1x-3", "\u0661x3", "0x3", "2147483648x3"])
def test_dims_are_ascii_digits_from_1_to_the_largest_dim(dims):
    """int() read '1_0' as 10, and '+1', ' 1' and Arabic-Indic digits as numbers; the message gives the range."""
    with pytest.raises(trtnet.NetworkError, match=r"expected NAME:DIMS with DIMS whole numbers from 1 to 2147483647"):
        parse_shapes_text(f"x:{dims}")


def _model(path, name: str) -> None:
    """Relu of one input named `name`, of dims [N, 3] (N dynamic)."""
    x = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("Relu", [name], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_an_input_named_with_a_comma_is_sized_by_its_quoted_name(tmp_path):
    model, plan = tmp_path / "comma.onnx", tmp_path / "c.plan"
    _model(model, "a,b")
    r = trtnet_cli("build", model, "-o", plan)
    assert r.returncode == 2 and "give its shape with --shapes \"'a,b':Nx3\" (build" in error_line(r)
    r = trtnet_cli("build", model, "-o", plan, "--shapes", "'a,b':2x3")  # the shell has taken the double quotes
    assert r.returncode == 0 and "fp16 'a,b':2x3: " in r.stdout, r.stderr  # said as --shapes takes it back
    spec = json.loads((tmp_path / "c.plan.json").read_text())["inputs"][0]
    assert (spec["name"], spec["shape"]) == ("a,b", [2, 3])
    r = trtnet_cli(
        "summary", model, "--min-shapes", "'a,b':1x3", "--opt-shapes", "'a,b':2x3", "--max-shapes", "'a,b':4x3"
    )
    assert r.returncode == 0 and "a,b" in r.stdout, r.stderr


def test_an_input_named_with_a_colon_still_needs_no_quotes(tmp_path):
    model = tmp_path / "colon.onnx"
    _model(model, "x:0")
    r = trtnet_cli("summary", model)
    assert r.returncode == 2 and "give its shape with --shapes x:0:Nx3 (build" in error_line(r)
    for spelling in ("x:0:2x3", "'x:0':2x3"):
        r = trtnet_cli("summary", model, "--shapes", spelling)
        assert r.returncode == 0, r.stderr


def _halving_reshape(path) -> None:
    """x [1, 2, h, 8] reshaped to [1, 2, h // 2, 2, 8]: an odd h makes the reshape impossible."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "two"], ["h"], axis=0),
        helper.make_node("Div", ["h", "two1"], ["half"]),
        helper.make_node("Concat", ["head", "half", "tail"], ["dims"], axis=0),
        helper.make_node("Reshape", ["x", "dims"], ["y"]),
    ]
    consts = [
        helper.make_tensor("two", TensorProto.INT64, [1], [2]),
        helper.make_tensor("two1", TensorProto.INT64, [1], [2]),
        helper.make_tensor("head", TensorProto.INT64, [2], [1, 2]),
        helper.make_tensor("tail", TensorProto.INT64, [2], [2, 8]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "h", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, None, 2, 8])],
        consts,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("command", ["summary", "build"])
def test_shapes_that_make_a_layer_impossible_name_it_in_one_line(tmp_path, command):
    """An odd h: parse_onnx read the outputs' shapes unguarded, a RuntimeError (exit 3) after TensorRT's own
    log lines; now one line naming the file and the layer, and nothing written."""
    path = tmp_path / "half.onnx"
    _halving_reshape(path)
    extra = ["--precision", "fp32", "-o", str(tmp_path / "half.plan")] if command == "build" else []
    result = trtnet_cli(command, path, "--shapes", "x:1x2x9x8", *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [error_line(result)]
    assert error_line(result).startswith(
        f"trtnet: error: {path}: the network, with these input shapes, is not consistent at layer "
    )
    assert "(SHUFFLE)" in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.onnx"]
    ok = trtnet_cli("summary", path, "--shapes", "x:1x2x8x8")
    assert ok.returncode == 0, ok.stderr


def _two_inputs(path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_shapes_flag_given_again_adds_its_inputs(tmp_path):
    """`--shapes a:2x3 --shapes b:2x3` kept the last flag alone: a was dropped and refused as unsized."""
    path = tmp_path / "add.onnx"
    _two_inputs(path)
    result = trtnet_cli("check", path, "--shapes", "a:2x3", "--shapes", "b:2x3")
    assert result.returncode == 0, result.stderr
    assert "inputs a[2x3], b[2x3]" in result.stdout
    twice = trtnet_cli("check", path, "--shapes", "a:2x3", "--shapes", "a:4x3,b:4x3")
    assert twice.returncode == 2 and error_line(twice) == "trtnet: error: --shapes names input 'a' twice"
