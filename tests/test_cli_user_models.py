"""The command line on models of your own (issue 11): MODEL may be `path/to/file.py:NAME` or
`package.module:NAME`, NAME following the zoo's contract `NAME(weights=None, **config) -> Module`; `verify` and
`export-weights` find the PyTorch source that the file registers with `trtnet.zoo.register`. Whatever is wrong with
the file is one error line naming the file and NAME, exit status 2. In-process, through `trtnet.cli.main`."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import allow_rtx, error_line, trtnet_cli
from trtnet.weights import read_safetensors
from trtnet.zoo import REGISTRY

pytest.importorskip("torch", reason="the user model's PyTorch source is a torch module")

# A user's file: the PyTorch model, its re-expression in the DSL, the entry point, and its registration.
MODEL_FILE = """
import torch

import trtnet
from trtnet import nn, ops
from trtnet.zoo import register


class TorchTiny(torch.nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, classes)

    def forward(self, x):
        y = self.conv(x).relu().mean((2, 3))
        return self.head(self.norm(y))


class Tiny(nn.Module):
    def __init__(self, classes=5):
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, classes)

    def inputs(self):
        return [nn.Input("x", (3, 16, 16))]

    def output_names(self, n):
        return ["logits"]

    def forward(self, x):
        y = self.conv(x).relu().mean((2, 3))
        return self.head(self.norm(y))


@register("{registered}", source="TorchTiny in tiny.py", torch_model=TorchTiny)
def tiny(weights=None, **config):
    model = Tiny(**config)
    if weights is None:
        trtnet.init_random(model)
    else:
        trtnet.load_weights(model, weights)
    return model


def unregistered(weights=None):
    return tiny(weights)


def not_a_module(weights=None):
    return 42


def raises(weights=None):
    raise ValueError("no config.json beside the weights")


NOT_CALLABLE = 3
"""


def write(folder: Path, text: str = MODEL_FILE, name: str = "tiny.py", registered: str = "user_tiny") -> Path:
    path = folder / name
    path.write_text(MODEL_FILE.replace("{registered}", registered) if text is MODEL_FILE else textwrap.dedent(text))
    return path


@pytest.fixture
def model_file(tmp_path):
    yield write(tmp_path)
    REGISTRY.pop("user_tiny", None)  # the zoo of this test process stays the zoo


def test_build_a_file_model(model_file, tmp_path):
    plan = tmp_path / "tiny.plan"
    result = trtnet_cli("build", f"{model_file}:tiny", "--batch", "2", "--precision", "fp32", "-o", plan)
    assert result.returncode == 0, result.stderr
    assert "no --weights: user_tiny gets the weights user_tiny(weights=None) gives" in result.stdout
    assert "user_tiny fp32 batch 2" in result.stdout and plan.stat().st_size > 1000


def test_summary_a_file_model_and_the_same_file_twice(model_file):
    for _ in range(2):  # named again in the same process, the file is not run again (it would register twice)
        result = trtnet_cli("summary", f"{model_file}:tiny", "--batch", "2")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("user_tiny (TorchTiny in tiny.py), batch 2, fp32; inputs x float32[2x3x16x16]")
        assert "head/matmul" in result.stdout and "conv/conv" in result.stdout


def test_verify_a_file_model_against_its_registered_torch_source(model_file):
    result = trtnet_cli("verify", f"{model_file}:tiny", "--batch", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify user_tiny: TorchTiny in tiny.py (random weights, seed 0) against trtnet, batch 2" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "reference fp32 logits: rel error" in line)
    assert line.endswith("(need <= 0.0001) ok")


def test_export_weights_of_a_file_model(model_file, tmp_path):
    out = tmp_path / "tiny.safetensors"
    result = trtnet_cli("export-weights", f"{model_file}:tiny", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "loads strictly into trtnet's user_tiny" in result.stdout
    assert set(read_safetensors(out)) == {
        "conv.weight",
        "conv.bias",
        "norm.weight",
        "norm.bias",
        "head.weight",
        "head.bias",
    }
    built = trtnet_cli("build", f"{model_file}:tiny", "--weights", out, "--batch", "1", "-o", tmp_path / "t.plan")
    assert built.returncode == 0, built.stderr


def test_a_module_on_the_path(tmp_path, monkeypatch):
    write(tmp_path, name="my_tiny_models.py", registered="user_tiny_module")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        result = trtnet_cli("summary", "my_tiny_models:tiny")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("user_tiny_module (TorchTiny in tiny.py), batch 1")
        unregistered = trtnet_cli("summary", "my_tiny_models:unregistered")
        assert unregistered.returncode == 0, unregistered.stderr
        assert unregistered.stdout.startswith("unregistered (no registered PyTorch source), batch 1")
    finally:
        REGISTRY.pop("user_tiny_module", None)
        sys.modules.pop("my_tiny_models", None)


def test_verify_needs_a_registered_source(model_file):
    result = trtnet_cli("verify", f"{model_file}:unregistered")
    assert result.returncode == 2
    assert error_line(result) == (
        f"trtnet: error: {model_file}:unregistered: `trtnet verify` needs the model's PyTorch source; declare it by "
        "registering unregistered: @trtnet.zoo.register('unregistered', source='...', "
        "torch_model=BUILD_THE_TORCH_MODULE)"
    )


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "missing",
            "{file}:missing: file {file} has no 'missing'; it defines not_a_module, raises, tiny, unregistered",
        ),
        (
            "NOT_CALLABLE",
            "{file}:NOT_CALLABLE: NOT_CALLABLE is int, not a function NAME(weights=None, **config) -> Module",
        ),
        ("Tiny", "{file}:Tiny: Tiny is a Module class, not a function NAME(weights=None, **config) -> Module"),
        ("not_a_module", "{file}:not_a_module: not_a_module(weights=None) returned int, not a trtnet.nn.Module"),
        ("raises", "{file}:raises: raises(weights=None) raised ValueError: no config.json beside the weights"),
    ],
)
def test_what_is_wrong_with_NAME_is_one_line_naming_file_and_name(model_file, name, message):
    result = trtnet_cli("build", f"{model_file}:{name}")
    assert result.returncode == 2
    assert error_line(result) == "trtnet: error: " + message.format(file=model_file)


def test_what_is_wrong_with_the_file_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "nope.py"
    broken = write(tmp_path, "def tiny(weights=None:\n    pass\n", name="broken.py")
    failing = write(tmp_path, "import trtnet_no_such_dependency\n", name="failing.py")
    cases = {
        f"{missing}:tiny": f"{missing}:tiny: {missing}: no such file",
        f"{broken}:tiny": f"{broken}:tiny: syntax error in {broken}, line 1: ",
        f"{failing}:tiny": f"{failing}:tiny: running {failing} raised ModuleNotFoundError: No module named "
        "'trtnet_no_such_dependency'",
        "trtnet_no_such_package.models:tiny": "trtnet_no_such_package.models:tiny: no module named "
        "'trtnet_no_such_package' (is it installed, or on PYTHONPATH?)",
        f"{tmp_path}/x.py": f"{tmp_path}/x.py: name the function that builds the model after a colon: "
        f"{tmp_path}/x.py:NAME",
        f"{tmp_path}/x.py:not-a-name": f"{tmp_path}/x.py:not-a-name: 'not-a-name' after the ':' is not a Python name "
        "(expected FILE.py:NAME or package.module:NAME)",
    }
    cases[":tiny"] = ":tiny: name the file or module before the ':' (FILE.py:tiny or package.module:tiny)"
    for spec, message in cases.items():
        result = trtnet_cli("summary", spec)
        assert result.returncode == 2, (spec, result.stderr)
        assert error_line(result).startswith("trtnet: error: " + message), spec
    # An ONNX file given to a command that takes only trtnet's models: not "name the function after a colon".
    for command in ("verify", "export-weights"):
        result = trtnet_cli(command, tmp_path / "m.onnx")
        assert result.returncode == 2 and error_line(result) == (
            f"trtnet: error: {tmp_path / 'm.onnx'}: this command takes trtnet's models, not ONNX files; `trtnet check "
            f"{tmp_path / 'm.onnx'}` runs an ONNX file against onnxruntime (build, summary, calibrate and export-triton "
            "take one too)"
        ), result.stderr


def test_what_the_model_s_own_code_raises_is_one_line_naming_its_line(tmp_path):
    """A typo in forward, or an input named by a number, was an "internal error" (exit 3) asking for a report."""
    path = write(
        tmp_path,
        """
        import numpy as np

        import trtnet
        from trtnet import nn, ops


        class Typo(nn.Module):
            def inputs(self):
                return [nn.Input("x", (4,))]

            def forward(self, x):
                return x.relu().sofmax(-1)


        class Numbered(Typo):
            def inputs(self):
                return [nn.Input(5, (4,))]


        class Exits(Typo):
            def forward(self, x):
                raise SystemExit(0)


        class Library(Typo):
            def forward(self, x):
                return np.linalg.inv(np.zeros((2, 3)))


        class Names(Typo):
            def forward(self, x):
                return x.relu()

            def output_names(self, n):
                return self.names


        class Unnamed(Names):
            def output_names(self, n):
                return [""]


        class Concat(Typo):
            def forward(self, x):
                return ops.concat([x, x], axis=7)


        def typo(weights=None):
            return Typo()


        def numbered(weights=None):
            return Numbered()


        def exits(weights=None):
            return Exits()


        def library(weights=None):
            return Library()


        def names(weights=None):
            return Names()


        def unnamed(weights=None):
            return Unnamed()


        def concat(weights=None):
            return Concat()
        """,
        name="mine.py",
    )
    line = path.read_text().splitlines().index("        return x.relu().sofmax(-1)") + 1
    result = trtnet_cli("summary", f"{path}:typo")
    assert result.returncode == 2 and error_line(result) == (
        "trtnet: error: Typo.forward raised AttributeError: 'Tensor' object has no attribute 'sofmax' "
        f"(at {path}:{line})"
    ), result.stderr
    result = trtnet_cli("build", f"{path}:numbered", "-o", tmp_path / "m.plan")
    assert result.returncode == 2 and "an Input's name must be a non-empty string, not 5" in error_line(result)
    assert not (tmp_path / "m.plan").exists()
    lines = path.read_text().splitlines()
    expected = {  # each at the model's own line: numpy's, trtnet's and TensorRT's lines say nothing of it
        "exits": ("Exits.forward raised SystemExit: 0", "raise SystemExit(0)"),  # not exit 0 with no plan
        "library": ("Library.forward raised LinAlgError: ", "np.linalg.inv"),
        "names": ("Names.output_names raised AttributeError: 'Names' object has no attribute 'names'", "self.names"),
        "concat": ("axis 7", "ops.concat"),  # trtnet's own message, and where the model called the op
    }
    for name, (said, code) in expected.items():
        line = next(i for i, text in enumerate(lines, 1) if code in text)
        result = trtnet_cli("build", f"{path}:{name}", "-o", tmp_path / "m.plan")
        message = error_line(result)
        assert result.returncode == 2 and said in message and message.endswith(f"(at {path}:{line})"), message
        assert not (tmp_path / "m.plan").exists()
    result = trtnet_cli("build", f"{path}:unnamed", "-o", tmp_path / "m.plan")
    assert result.returncode == 2 and "Unnamed.output_names() gives '': each must be a non-empty string" in (
        error_line(result)
    )


def test_export_triton_and_convert_take_a_file_model(model_file, tmp_path):
    import torch

    result = trtnet_cli(
        "export-triton",
        f"{model_file}:tiny",
        "--repo",
        tmp_path / "models",
        "--batch",
        "1:2:4",
        "--precision",
        "fp32",
        *allow_rtx(),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models" / "user_tiny" / "1" / "model.plan").is_file()

    from trtnet.cli.model_ref import resolve

    torch_tiny = resolve(f"{model_file}:tiny").entry.torch_model  # TorchTiny, from the file the CLI ran
    checkpoint = tmp_path / "trained.pth"
    torch.save({"epoch": 3, "state_dict": torch_tiny().state_dict()}, checkpoint)  # as a training script saves
    converted = trtnet_cli("convert", f"{model_file}:tiny", checkpoint)
    assert converted.returncode == 0, converted.stderr
    assert set(read_safetensors(tmp_path / "trained.safetensors")) == {
        "conv.weight",
        "conv.bias",
        "norm.weight",
        "norm.bias",
        "head.weight",
        "head.bias",
    }


def test_no_output_lands_on_a_file_the_command_reads(model_file, tmp_path, capsys, monkeypatch):
    """`-o` naming the model's own .py, the weights, the data or the calibration replaced that file with the output
    (exit 0); only the ONNX route refused its model. Each is refused before any work, and the file is as it was."""
    from trtnet.cli import main

    spec = f"{model_file}:tiny"
    weights, data, cal = tmp_path / "w.safetensors", tmp_path / "d.npz", tmp_path / "c.json"
    assert main(["export-weights", spec, "-o", str(weights)]) == 0
    np.savez(data, x=np.ones((2, 3, 16, 16), np.float32))
    assert main(["calibrate", spec, "--data", str(data), "-o", str(cal)]) == 0
    cases = [
        (["build", spec, "-o", str(model_file)], "the plan", "the model"),
        (["build", spec, "--weights", str(weights), "-o", str(weights)], "the plan", "the weights"),
        (
            ["build", spec, "--precision", "int8", "--calibration", str(cal), "-o", str(cal)],
            "the plan",
            "the calibration",
        ),
        (
            ["build", spec, "--precision", "int8", "--calibration", str(cal), "-o", str(tmp_path / "c")],
            "the engine metadata",
            "the calibration",
        ),  # the plan c's sidecar is c.json
        (["calibrate", spec, "--data", str(data), "-o", str(data)], "the calibration", "the data"),
        (
            ["calibrate", spec, "--data", str(data), "--weights", str(weights), "-o", str(weights)],
            "the calibration",
            "the weights",
        ),
    ]
    # package.module:NAME: its file as the import found it (it became calibration JSON)
    (tmp_path / "pkg").mkdir()
    module = write(tmp_path / "pkg", name="tiny_module.py", registered="user_tiny_module")
    monkeypatch.syspath_prepend(str(module.parent))
    monkeypatch.setitem(sys.modules, "tiny_module", None)  # imported afresh, and gone after the test
    monkeypatch.delitem(sys.modules, "tiny_module")
    monkeypatch.setitem(REGISTRY, "user_tiny_module", None)  # the import registers it: absent again after the test
    monkeypatch.delitem(REGISTRY, "user_tiny_module")
    args = ["calibrate", "tiny_module:tiny", "--data", str(data), "-o", str(module)]
    cases.append((args, "the calibration", "the model"))
    for args, what, other in cases:
        before = {p: p.read_bytes() for p in (model_file, module, weights, data, cal)}
        capsys.readouterr()
        assert main(args) == 2, args
        assert f"cannot write {what} there: it is {other} too" in capsys.readouterr().err, args
        assert {p: p.read_bytes() for p in before} == before


def test_export_weights_leaves_nothing_when_its_file_would_not_load(tmp_path, capsys):
    """The file is checked before it is renamed into place: a re-expression that does not take it (here a head of 6
    outputs against the source's 5) left the bad file under -o, over the one that was there."""
    from trtnet.cli import main

    path = tmp_path / "tiny.py"
    path.write_text(
        MODEL_FILE.replace("{registered}", "user_tiny").replace(
            "= nn.Linear(8, classes)", "= nn.Linear(8, classes + 1)"
        )
    )
    assert "torch.nn.Linear(8, classes)" in path.read_text() and "nn.Linear(8, classes + 1)" in path.read_text()
    kept = tmp_path / "keep.safetensors"
    kept.write_bytes(b"the user's file")
    try:
        for out in (kept, tmp_path / "new.safetensors"):
            assert main(["export-weights", f"{path}:tiny", "-o", str(out)]) == 2
            assert f"{out}: weights do not fit" in capsys.readouterr().err
        assert kept.read_bytes() == b"the user's file"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.safetensors", "tiny.py"]
    finally:
        REGISTRY.pop("user_tiny", None)


def test_what_a_model_s_methods_give_is_checked_and_a_zoo_model_with_a_user_part_is_the_user_s(tmp_path):
    """inputs()/output_names() returning None, tuples or a generator that raises, an exception that cannot print
    itself, and a user's head on a zoo model were internal errors (exit 3); two inputs of one name were blamed on
    TensorRT's shape check."""
    path = write(
        tmp_path,
        """
        import trtnet
        from trtnet import nn
        from trtnet.zoo import resnet18


        class Base(nn.Module):
            def inputs(self):
                return [nn.Input("x", (4,))]

            def forward(self, x):
                return x.relu()


        class NoInputs(Base):
            def inputs(self):
                return None


        class TupleInputs(Base):
            def inputs(self):
                return [("x", (4,))]


        class Twice(Base):
            def inputs(self):
                return [nn.Input("x", (4,)), nn.Input("x", (4,))]

            def forward(self, x, y):
                return x + y


        class GenNames(Base):
            def output_names(self, n):
                yield "y"
                raise ValueError("gen boom")


        class Unprintable(Exception):
            def __str__(self):
                raise RuntimeError("no")


        class BadStr(Base):
            def forward(self, x):
                raise Unprintable()


        class Head(nn.Module):
            def forward(self, x):
                return x.nonexistent_method()


        def make(cls):
            return lambda weights=None: cls()


        no_inputs, tuple_inputs, twice, gen_names, bad_str = map(make, (NoInputs, TupleInputs, Twice, GenNames, BadStr))


        def headed(weights=None):
            model = resnet18(weights=None)
            model.fc = Head()
            return model
        """,
        name="methods.py",
    )
    lines = path.read_text().splitlines()
    cases = {
        "no_inputs": "NoInputs.inputs raised TypeError: 'NoneType' object is not iterable",
        "tuple_inputs": "TupleInputs.inputs() gives ('x', (4,)): each must be a trtnet.nn.Input",
        "twice": "Twice.inputs() names ['x'] more than once: each input needs its own name",
        "gen_names": "GenNames.output_names raised ValueError: gen boom",
        "bad_str": "BadStr.forward raised Unprintable: <Unprintable that cannot be printed>",
        "headed": "'Tensor' object has no attribute 'nonexistent_method'",
    }
    for name, said in cases.items():
        result = trtnet_cli("summary", f"{path}:{name}")
        assert result.returncode == 2 and said in error_line(result), (name, result.stderr)
    line = next(i for i, text in enumerate(lines, 1) if "x.nonexistent_method()" in text)
    assert error_line(trtnet_cli("summary", f"{path}:headed")).endswith(f"(at {path}:{line})")


def test_an_error_in_a_part_from_another_file_of_the_user_s_is_placed_there(tmp_path, monkeypatch):
    """A submodule defined in a second file of the user's: the error was placed at the call in the model's file."""
    (tmp_path / "user_parts.py").write_text(
        textwrap.dedent(
            """
            from trtnet import nn


            class Part(nn.Module):
                def forward(self, x):
                    return x.no_such_method()
            """
        )
    )
    path = write(
        tmp_path,
        """
        from trtnet import nn
        from user_parts import Part


        class Whole(nn.Module):
            def __init__(self):
                self.part = Part()

            def inputs(self):
                return [nn.Input("x", (4,))]

            def forward(self, x):
                return self.part(x)


        def whole(weights=None):
            return Whole()
        """,
        name="whole.py",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_parts", raising=False)
    result = trtnet_cli("summary", f"{path}:whole")
    line = (tmp_path / "user_parts.py").read_text().splitlines().index("        return x.no_such_method()") + 1
    assert result.returncode == 2 and error_line(result).endswith(f"(at {tmp_path / 'user_parts.py'}:{line})")
    sys.modules.pop("user_parts", None)
