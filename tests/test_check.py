"""`trtnet check MODEL.onnx`: pass, fail, unsupported layers and bad input, through the library and the CLI.

The models are small ONNX graphs written with onnx.helper; onnxruntime runs them as the other side.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from trtnet.backend import get_trt
from trtnet.cli import main
from trtnet.errors import CheckError, InterpreterError
from trtnet.onnx import check as check_module
from trtnet.onnx.check import ParsedOnnx, check_onnx

onnx = pytest.importorskip("onnx", reason="onnx writes the models these tests check")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

trt = get_trt()
RNG = np.random.default_rng(0)


def _save(tmp_path, nodes, initializers, name="model.onnx", out_shape=(1, 5)) -> str:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(a, n) for n, a in initializers],
    )
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return str(path)


@pytest.fixture
def small_model(tmp_path) -> str:
    """conv -> relu -> global average pool -> flatten -> gemm: five named intermediate tensors."""
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    fc = RNG.standard_normal((4, 5)).astype(np.float32)
    return _save(
        tmp_path,
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("MatMul", ["f", "fc"], ["y"]),
        ],
        [("w", w), ("fc", fc)],
    )


def _ort():
    return pytest.importorskip("onnxruntime", reason="onnxruntime is the other side of the comparison")


def test_a_faithful_network_passes(small_model, capsys) -> None:
    _ort()
    assert main(["check", small_model, "--layerwise"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("model.onnx: 6 TensorRT layers, all supported by the interpreter")
    assert out[1] == "  compute type float32; inputs x[1x3x8x8]"
    assert out[2].startswith("  output 'y' float32[1, 5]: max abs ")
    assert out[2].endswith("against onnxruntime; 0 of 5 beyond atol 1e-04 + rtol 1e-04*|ref| ok")
    assert out[3].startswith("  layerwise: ") and out[3].endswith("shared intermediate tensors, all within tolerance")
    assert out[-1] == "within tolerance"


def test_an_altered_network_fails_and_the_first_departing_layer_is_named(small_model) -> None:
    _ort()
    parsed = ParsedOnnx(Path(small_model))
    net = parsed.network
    relu = next(net.get_layer(i) for i in range(net.num_layers) if net.get_layer(i).type == trt.LayerType.ACTIVATION)
    relu.__class__ = trt.IActivationLayer
    relu.type = trt.ActivationType.SIGMOID  # what a parser bug would do: the file says Relu
    report = check_onnx(small_model, layerwise=True, parsed=parsed)
    assert not report.ok
    assert report.outputs[0].error > 1e-2
    # The float64 arbiter (onnx.reference) sides with onnxruntime: the interpreter is the one that departs.
    judged = report.outputs[0].arbitration
    assert judged is not None and judged.departs == "interpreter"
    assert judged.reference.ok and not judged.interpreter.ok
    assert "interpreter departs" in report.lines()[3]
    d = report.departure
    assert d is not None and d.layer == relu.name and d.layer_type == "ACTIVATION" and d.tensor == "r"
    assert d.input_shapes == ((1, 4, 8, 8),)
    line = report.lines()[-2]
    # The ONNX node that wrote the tensor is named too: the exporter's graph is where a user looks next.
    node = next(n for n in onnx.load(small_model).graph.node if "r" in n.output)
    assert d.onnx_node == f"{node.name or '(unnamed)'} (Relu)"
    assert line.startswith(
        f"  layerwise: first departure at layer {relu.name!r} (ACTIVATION) from ONNX node {d.onnx_node}, tensor 'r': "
    )
    assert line.endswith("> 1e-04; its inputs' shapes [1, 4, 8, 8]")
    assert report.lines()[-1] == "NOT within tolerance"


def test_beyond_tolerance_exits_1(small_model, monkeypatch, capsys) -> None:
    _ort()
    monkeypatch.setitem(check_module.DEFAULT_TOLERANCES, "float32", (0.0, 0.0))  # no rounding difference allowed
    assert main(["check", small_model, "--no-arbiter"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[2].endswith("beyond atol 0e+00 + rtol 0e+00*|ref| FAILS") and out[-1] == "NOT within tolerance"


def test_unsupported_layers_are_refused_before_running(tmp_path, capsys) -> None:
    path = _save(
        tmp_path,
        [helper.make_node("LRN", ["x"], ["l"], size=3), helper.make_node("Flatten", ["l"], ["y"])],
        [],
        out_shape=(1, 192),
    )
    with pytest.raises(
        InterpreterError,
        match=r"model.onnx: the interpreter cannot run 1 layer form\(s\):\n  layer "
        r"'.*' \(LRN\): unsupported layer type: no reference implementation",
    ):
        check_onnx(path)
    assert main(["check", path]) == 2
    err = capsys.readouterr().err
    assert "(LRN): unsupported layer type" in err


def test_given_inputs_are_used(small_model, tmp_path, capsys) -> None:
    _ort()
    npz = tmp_path / "in.npz"
    np.savez(npz, x=np.ones((1, 3, 8, 8), np.float32))
    assert main(["check", small_model, "--inputs", str(npz)]) == 0


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda d: d / "absent.onnx", r"absent.onnx: no such file"),
        (
            lambda d: (d / "text.onnx").write_text("not a model") and d / "text.onnx",
            r"text.onnx: TensorRT's ONNX parser refused it",
        ),
        (lambda d: (d / "folder.onnx").mkdir() or d / "folder.onnx", r"folder.onnx: the ONNX file is a directory"),
        (lambda d: os.mkfifo(d / "pipe.onnx") or d / "pipe.onnx", r"pipe.onnx: the ONNX file is a FIFO, not a regular"),
    ],
    ids=["missing", "not-onnx", "folder", "fifo"],
)
def test_bad_model_files_exit_2(tmp_path, make, pattern, capsys) -> None:
    path = make(tmp_path)
    with pytest.raises(CheckError, match=pattern):
        check_onnx(path)
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err.startswith("trtnet: error: ")


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        (
            {"image": np.zeros((1, 3, 8, 8), np.float32)},
            r"in.npz: the network takes inputs \['x'\]; the file lacks \['x'\] and has unknown \['image'\]",
        ),
        (  # one array too many: said without an empty "lacks []"
            {"x": np.zeros((1, 3, 8, 8), np.float32), "z": np.zeros(1, np.float32)},
            r"in.npz: the network takes inputs \['x'\]; the file has unknown \['z'\]$",
        ),
        (
            {"x": np.zeros((1, 3, 8, 9), np.float32)},
            r"in.npz: input 'x' has shape \(1, 3, 8, 9\), the network declares \(1, 3, 8, 8\)",
        ),
        (
            {"x": np.zeros((1, 3, 8, 8), np.float64)},
            r"in.npz: input 'x' has dtype float64, the network declares float32",
        ),
        (None, r"in.npz: the inputs file is not an .npz \(the file starts with b'not a '\): write it with np.savez"),
        ("absent", r"in.npz: no such inputs file"),
        ("npy", r"in.npz: the inputs file is a .npy array, not an .npz: write it with np.savez, named after the input"),
        ("fifo", r"in.npz: the inputs file is a FIFO, not a regular file"),  # refused at once, not waited on
        ("folder", r"in.npz: the inputs file is a directory, not a regular file"),
    ],
    ids=["wrong-name", "extra", "wrong-shape", "wrong-dtype", "not-npz", "missing", "npy", "fifo", "folder"],
)
def test_bad_inputs_exit_2(small_model, tmp_path, arrays, pattern, capsys) -> None:
    npz = tmp_path / "in.npz"
    if arrays is None:
        npz.write_bytes(b"not a zip")
    elif arrays == "npy":
        with npz.open("wb") as f:
            np.save(f, np.zeros((1, 3, 8, 8), np.float32))
    elif arrays == "fifo":
        os.mkfifo(npz)
    elif arrays == "folder":
        npz.mkdir()
    elif arrays != "absent":
        np.savez(npz, **arrays)
    with pytest.raises(CheckError, match=pattern):
        check_onnx(small_model, npz)
    assert main(["check", small_model, "--inputs", str(npz)]) == 2


def test_without_onnxruntime_it_only_runs(small_model, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it now raises ImportError
    assert main(["check", small_model]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "onnxruntime is not installed: the network was only run, not compared (pip install onnxruntime)"
    assert out[3] == "  output 'y' float32[1, 5]"
    assert out[-1] == "ran (not compared)"


def test_a_model_onnxruntime_refuses_exits_2(tmp_path, capsys) -> None:
    _ort()
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 99  # TensorRT's parser reads it; onnxruntime refuses an IR version it does not know
    path = tmp_path / "future.onnx"
    onnx.save(model, str(path))
    with pytest.raises(
        CheckError,
        match=r"future.onnx: onnxruntime cannot run it, so there is nothing to compare "
        r"with: .*IR version: 99",
    ):
        check_onnx(path)
    assert main(["check", str(path)]) == 2


def test_a_saved_file_that_would_land_on_one_the_check_reads_is_refused_before_anything_runs(
    small_model, tmp_path, capsys
) -> None:
    """Saving over the model, the inputs file or the loaded outputs (or both saves on one path) destroyed the
    user's file, and saving over the loaded outputs made the check compare the interpreter with itself and pass."""
    _ort()
    inputs, theirs = tmp_path / "in.npz", tmp_path / "theirs.npz"
    np.savez(inputs, x=np.ones((1, 3, 8, 8), np.float32))
    np.savez(theirs, y=np.full((1, 5), 7.0, np.float32))
    before = {p: p.read_bytes() for p in (Path(small_model), inputs, theirs)}
    cases = [
        (["--save-outputs", small_model], "the model"),
        (["--save-inputs", str(inputs)], "the inputs file"),
        (["--load-outputs", str(theirs), "--save-outputs", str(theirs)], "the outputs file"),
        (
            [
                "--save-inputs",
                str(tmp_path / "same.npz"),
                "--save-outputs",
                str(tmp_path / ".." / tmp_path.name / "same.npz"),
            ],
            "the inputs",
        ),
    ]
    for args, other in cases:
        assert main(["check", small_model, "--inputs", str(inputs), *args]) == 2
        err = capsys.readouterr().err
        assert f"it is {other} too" in err, err
    assert {p: p.read_bytes() for p in before} == before and not (tmp_path / "same.npz").exists()


def test_saved_files_are_written_once_the_check_has_run_and_together(
    small_model, tmp_path, monkeypatch, capsys
) -> None:
    """An interrupted or failed check leaves neither file (the inputs were written before the run), and both are
    written when it completes, within tolerance or not."""
    _ort()
    saves = ["--save-inputs", str(tmp_path / "i.npz"), "--save-outputs", str(tmp_path / "o.npz")]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(check_module, "run_onnxruntime", interrupted)
    with pytest.raises(KeyboardInterrupt):
        check_onnx(small_model, save_inputs=tmp_path / "i.npz", save_outputs=tmp_path / "o.npz")
    assert not (tmp_path / "i.npz").exists() and not (tmp_path / "o.npz").exists()
    monkeypatch.undo()
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "o.npz").mkdir()  # an output that cannot be written: the other is not written either
    assert (
        main(
            [
                "check",
                small_model,
                "--save-inputs",
                str(tmp_path / "i.npz"),
                "--save-outputs",
                str(tmp_path / "ro" / "o.npz"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "i.npz").exists()
    assert main(["check", small_model, *saves]) == 0
    assert np.load(tmp_path / "i.npz")["x"].shape == (1, 3, 8, 8) and np.load(tmp_path / "o.npz")["y"].shape == (1, 5)


@pytest.mark.parametrize(
    ("reference", "why"),
    [(np.full((1, 5), np.nan, np.float32), "nan"), (np.full((1, 5), np.inf, np.float32), "inf")],
)
def test_a_nan_or_infinite_reference_is_beyond_any_tolerance(small_model, tmp_path, reference, why, capsys) -> None:
    """A NaN reference made |a - b| <= atol + rtol * |b| false and an infinite one made its right side infinite:
    both counted as within tolerance, so an engine writing NaN or inf passed."""
    np.savez(tmp_path / f"{why}.npz", y=reference)
    args = ["check", small_model, "--load-outputs", str(tmp_path / f"{why}.npz"), "--no-arbiter"]
    assert main(args) == 1
    assert "5 of 5 beyond" in capsys.readouterr().out


def test_shapes_that_differ_are_beyond_tolerance_even_when_both_are_empty() -> None:
    """A loop run 0 times: the interpreter's scan output [0, 2] against onnxruntime's [0, 0] passed as 0 of 0."""
    from trtnet.onnx.check import CheckReport, OutputResult
    from trtnet.onnx.compare import agreement

    a = agreement(np.zeros((0, 2), np.float32), np.zeros((0, 0), np.float32), 1e-4, 1e-4)
    assert a.beyond == 1 and a.max_abs == float("inf") and not a.ok and a.reference_shape == (0, 0)
    report = CheckReport(Path("m.onnx"), 3, "float32", {})
    report.outputs.append(OutputResult("scan", (0, 2), "float32", a, 1e-4, 1e-4))
    assert "  output 'scan' float32[0, 2]: the shape differs from onnxruntime's [0, 0] FAILS" in report.lines()


def test_a_zero_reference_gives_an_infinite_relative_error_not_float64_s_largest() -> None:
    """|a - b| / |b| of b = 0 is infinite; nan_to_num turned it into 1.8e308, which the report printed."""
    from trtnet.onnx.compare import agreement

    a = agreement(np.array([0.5, 0.0]), np.array([0.0, 0.0]), 1e-4, 1e-4)
    assert a.max_rel == float("inf") and a.beyond == 1


def test_empty_and_graphless_files_are_not_models(tmp_path) -> None:
    """Protobuf reads most bytes as some message: an empty file or text parsed as an empty graph, which the check
    then passed ("0 TensorRT layers ... within tolerance") against any outputs file."""
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "text.onnx").write_text("hello world")
    with pytest.raises(CheckError, match=r"empty.onnx: the ONNX file is empty"):
        check_onnx(tmp_path / "empty.onnx")
    with pytest.raises(CheckError, match=r"text.onnx: TensorRT's ONNX parser (found no graph outputs|refused it)"):
        check_onnx(tmp_path / "text.onnx")


def test_inputs_may_be_arrays_and_bad_options_are_refused(small_model, capsys) -> None:
    _ort()
    x = np.ones((1, 3, 8, 8), np.float32)
    assert check_onnx(small_model, {"x": x}).ok
    with pytest.raises(CheckError, match=r"the inputs given: input 'x' has dtype float64"):
        check_onnx(small_model, {"x": x.astype(np.float64)})
    with pytest.raises(CheckError, match=r"seed -5: expected an integer >= 0"):
        check_onnx(small_model, seed=-5)
    assert check_onnx(small_model, seed=np.int64(3)).ok  # numpy's integers are integers
    with pytest.raises(CheckError, match=r"layerwise compares intermediates with onnxruntime's"):
        check_onnx(small_model, layerwise=True, load_outputs_from="o.npz")
    assert main(["check", small_model, "--seed", "-5"]) == 2
    assert "--seed" in capsys.readouterr().err


def test_a_seed_with_given_inputs_is_refused_not_ignored(small_model, tmp_path, capsys) -> None:
    np.savez(tmp_path / "in.npz", x=np.ones((1, 3, 8, 8), np.float32))
    assert main(["check", small_model, "--inputs", str(tmp_path / "in.npz"), "--seed", "3"]) == 2
    assert "--seed draws random inputs and --inputs" in capsys.readouterr().err
    assert main(["check", small_model, "--seed", "3"]) == 0  # alone, it draws
    assert main(["check", small_model, "--inputs", str(tmp_path / "in.npz")]) == 0


def test_saves_are_refused_before_the_run_where_they_could_not_be_made_or_would_destroy_the_model(
    tmp_path, monkeypatch, capsys
) -> None:
    """Over the model's external data (its weights beside it: the check passed and the model no longer parsed), and
    into a missing folder (found only after the whole run, the verdict never printed): both refused up front."""
    _ort()
    w = RNG.standard_normal((8, 8)).astype(np.float32)
    model = Path(_save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"])], [("w", w)], "m.onnx", (1, 3, 8, 8)))
    onnx.save_model(onnx.load(str(model)), str(model), save_as_external_data=True, location="m.data", size_threshold=0)
    weights = (tmp_path / "m.data").read_bytes()
    import trtnet.interpreter

    def no_run(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(trtnet.interpreter, "run_network", no_run)
    with pytest.raises(CheckError, match=r"cannot write the outputs there: it is the model's external data \(m.data\)"):
        check_onnx(model, save_outputs=tmp_path / "m.data")
    with pytest.raises(CheckError, match=r"nodir/o.npz: cannot write the outputs: no folder"):
        check_onnx(model, save_outputs=tmp_path / "nodir" / "o.npz")
    monkeypatch.undo()
    assert (tmp_path / "m.data").read_bytes() == weights
    assert main(["check", str(model), "--save-outputs", str(tmp_path / "o.npz")]) == 0  # beside it, another name
    # A name the model's bytes hold without being its external data ("m.dat" in "m.data") is no reason to refuse.
    check_onnx(model, save_outputs=tmp_path / "m.dat", save_inputs=tmp_path / "m")
    assert set(np.load(tmp_path / "m.dat", allow_pickle=False)) == {"y"}


def test_loaded_outputs_that_are_not_numbers_are_bad_input(small_model, tmp_path, capsys) -> None:
    """Strings reached the float64 arbiter's cast: an internal error (exit 3) instead of bad input."""
    np.savez(tmp_path / "str.npz", y=np.full((1, 5), "a"))
    assert main(["check", small_model, "--load-outputs", str(tmp_path / "str.npz")]) == 2
    assert "str.npz: output 'y' holds <U1 values, not numbers" in capsys.readouterr().err


def test_loaded_outputs_with_arrays_the_network_does_not_make_are_bad_input(small_model, tmp_path, capsys) -> None:
    """Another model's outputs that shared a name with this one's were compared on that name alone, the rest
    ignored: a file of the wrong model passed."""
    np.savez(tmp_path / "more.npz", y=np.zeros((1, 5), np.float32), logits=np.zeros((1, 9), np.float32))
    assert main(["check", small_model, "--load-outputs", str(tmp_path / "more.npz")]) == 2
    assert "more.npz: the network's outputs are ['y']; the file has unknown ['logits']" in capsys.readouterr().err


def test_a_tie_before_the_arbiter_is_the_interpreter_s() -> None:
    """Both sides infinitely far from float64 (a NaN each, in different places): the tie passed the network."""
    from trtnet.onnx.check import Arbitration
    from trtnet.onnx.compare import Agreement

    inf = float("inf")
    assert Arbitration(Agreement(inf, inf, 8, 8), Agreement(inf, inf, 1, 8)).departs == "interpreter"
    assert Arbitration(Agreement(0.1, 0.1, 1, 8), Agreement(0.2, 0.2, 3, 8)).departs == "reference"
    assert Arbitration(Agreement(0.0, 0.0, 0, 8), Agreement(0.0, 0.0, 0, 8)).departs == "reference"  # within: ok


def test_a_reference_within_tolerance_is_never_blamed_for_the_interpreter_s_errors(tmp_path) -> None:
    """onnxruntime's float32 sum of a 1e8 and 4096 ones is 512 off, within its 1e-4 of the element; the
    interpreter's Trilu (the parser's lower triangle, a documented departure) is off on 12 small elements. The
    arbiter compared the largest errors, 512 against 15, and passed the network."""
    _ort()
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["v"], ["s"], keepdims=1),
            helper.make_node("Trilu", ["m"], ["t"]),
            helper.make_node("Reshape", ["t", "flat"], ["tf"]),
            helper.make_node("Concat", ["s", "tf"], ["y"], axis=1),
        ],
        "g",
        [
            helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 4097]),
            helper.make_tensor_value_info("m", TensorProto.FLOAT, [4, 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 17])],
        [numpy_helper.from_array(np.array([1, 16], np.int64), "flat")],
    )
    path = tmp_path / "arb.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    v = np.ones((1, 4097), np.float32)
    v[0, 0] = 1e8
    report = check_onnx(path, {"v": v, "m": np.arange(1, 17, dtype=np.float32).reshape(4, 4)})
    judged = report.outputs[0].arbitration
    assert judged is not None and judged.reference.ok and not judged.interpreter.ok
    assert judged.interpreter.max_abs < judged.reference.max_abs  # what the old rule went by
    assert judged.departs == "interpreter" and not report.ok


def test_a_static_input_with_a_zero_dim_takes_its_own_saved_inputs(tmp_path, capsys) -> None:
    """A file's inputs of fixed shape [3, 0] and [0, 2] ran with random inputs, but the arrays of --save-inputs
    fed back with --inputs were refused, by a check of shapes the user never gave (--shapes)."""
    _ort()
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in (("a", [3, 0]), ("b", [0, 2]))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])],
    )
    model = tmp_path / "empty.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(model))
    assert main(["check", str(model), "--save-inputs", str(tmp_path / "in.npz")]) == 0
    assert main(["check", str(model), "--inputs", str(tmp_path / "in.npz")]) == 0
    assert "output 'y' float32[3, 2]" in capsys.readouterr().out


def test_a_several_line_error_whose_head_ends_in_a_colon_has_one_colon() -> None:
    from trtnet.cli.commands import one_line

    assert one_line("cannot run 2 layer form(s):\n  a (LRN)\n  b (X)") == "cannot run 2 layer form(s): a (LRN); b (X)"


def test_a_loop_condition_input_the_parser_renames_is_fed_under_the_file_s_name(tmp_path, capsys) -> None:
    """TensorRT's parser names the graph input `cond` bound to a Loop's condition after the body's input
    (`cond_in`): check refused inputs named as the file names them, and fed onnxruntime no `cond` at all."""
    _ort()
    vi = helper.make_tensor_value_info
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["y_in", "one"], ["y_out"]),
            helper.make_node("Identity", ["y_out"], ["scan_out"]),
        ],
        "body",
        [
            vi("iter_count", TensorProto.INT64, []),
            vi("cond_in", TensorProto.BOOL, []),
            vi("y_in", TensorProto.FLOAT, [1]),
        ],
        [
            vi("cond_out", TensorProto.BOOL, []),
            vi("y_out", TensorProto.FLOAT, [1]),
            vi("scan_out", TensorProto.FLOAT, [1]),
        ],
        [numpy_helper.from_array(np.array([1.0], np.float32), "one")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip_count", "cond", "y"], ["res_y", "res_scan"], body=body)],
        "g",
        [vi("trip_count", TensorProto.INT64, []), vi("cond", TensorProto.BOOL, []), vi("y", TensorProto.FLOAT, [1])],
        [vi("res_y", TensorProto.FLOAT, [1]), vi("res_scan", TensorProto.FLOAT, [5, 1])],
    )
    model = tmp_path / "loop.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(model))
    np.savez(tmp_path / "in.npz", trip_count=np.array(5, np.int64), cond=np.array(True), y=np.array([-2.0], np.float32))
    assert main(["check", str(model), "--inputs", str(tmp_path / "in.npz")]) == 0
    assert "output 'res_scan' float32[5, 1]: max abs 0.00e+00" in capsys.readouterr().out
    assert main(["check", str(model)]) == 0  # random inputs reach onnxruntime as `cond`
    capsys.readouterr()
    np.savez(tmp_path / "bad.npz", trip_count=np.array(5, np.int64), y=np.array([-2.0], np.float32))
    assert main(["check", str(model), "--inputs", str(tmp_path / "bad.npz")]) == 2
    assert "the network takes inputs ['trip_count', 'cond', 'y']; the file lacks ['cond']" in capsys.readouterr().err


def test_inputs_with_an_empty_open_dim_are_named_as_the_inputs_not_as_shapes(tmp_path) -> None:
    """A (0, 4) array for x[N, 4] was refused as "shapes['x'] (0, 4): expected a shape of whole numbers >= 1", a
    --shapes the user never gave."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(CheckError, match=r"relu.onnx: input 'x': the inputs hold 0x4; a dim the file leaves open"):
        check_onnx(path, {"x": np.zeros((0, 4), np.float32)})
