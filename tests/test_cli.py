"""The `trtnet` command line end to end on resnet18, in-process through `trtnet.cli.main(argv)` as the console
script calls it, plus one smoke test of the real entry points (`python -m trtnet`, the console script) in
subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import trtnet
from tests.helpers import error_line, trtnet_cli
from trtnet.cli import main
from trtnet.weights import load_weights, read_safetensors
from trtnet.zoo import REGISTRY, resnet18

pytest.importorskip("torchvision", reason="torchvision is the PyTorch source of resnet18")

ROOT = Path(__file__).resolve().parents[1]
# The console script of the environment running the tests (`pip install -e .` puts it beside the interpreter).
SCRIPT = shutil.which("trtnet", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """resnet18's torchvision source, seed 0, exported by the command line."""
    folder = tmp_path_factory.mktemp("cli")
    result = trtnet_cli("export-weights", "resnet18", "-o", folder / "resnet18.safetensors", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "loads strictly into trtnet's resnet18" in result.stdout
    return folder / "resnet18.safetensors"


# -- the real entry points, in subprocesses ------------------------------------------------------------------


def _subprocess(command: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_python_dash_m_runs_and_passes_the_exit_status(tmp_path):
    listed = _subprocess([sys.executable, "-m", "trtnet"], "list", cwd=tmp_path)
    assert listed.returncode == 0 and "resnet18" in listed.stdout, listed.stderr
    refused = _subprocess([sys.executable, "-m", "trtnet"], "build", "nope", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("trtnet: error: no zoo model 'nope'; known: ")


@pytest.mark.skipif(
    SCRIPT is None,
    reason="no `trtnet` console script beside this Python or on PATH: trtnet is "
    "not pip-installed here (pip install -e . installs it)",
)
def test_console_script_runs(tmp_path):
    result = _subprocess([SCRIPT], "list", cwd=tmp_path)
    assert result.returncode == 0 and "resnet18" in result.stdout, result.stderr


# -- each command ---------------------------------------------------------------------------------------


def test_list_shows_every_zoo_entry_with_its_source():
    result = trtnet_cli("list")
    assert result.returncode == 0, result.stderr
    for entry in REGISTRY.values():
        assert any(
            line.split()[0] == entry.name and f" {entry.source} " in f"{line} "  # sources may hold spaces
            for line in result.stdout.splitlines()
        ), entry.name


def test_a_reader_that_stops_early_ends_the_command_quietly():
    # `trtnet list | head -1`: the pipe closes before the listing is written. Unix tools end there quietly with
    # 128 + SIGPIPE; "[Errno 32] Broken pipe" and exit 2 was said before.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from trtnet.cli import main; sys.exit(main(['list']))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # before its first write: the interpreter takes a second to import
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == b"", err


def test_export_weights_writes_the_sources_state_dict_that_loads_strictly(exported):
    from trtnet.parity import torch_model

    state = read_safetensors(exported)
    source = torch_model("resnet18", seed=0).state_dict()
    assert state.keys() == source.keys()  # buffers included, keys unchanged
    for key in ("conv1.weight", "layer3.1.bn2.running_var", "fc.bias"):
        np.testing.assert_array_equal(state[key], source[key].numpy())
    load_weights(resnet18(weights=None), exported, check_finite="error")
    assert [p.name for p in exported.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_export_weights_default_path_and_seed(tmp_path, exported):
    result = trtnet_cli("export-weights", "resnet18", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    other = read_safetensors(tmp_path / "weights" / "resnet18.safetensors")
    assert not np.array_equal(other["conv1.weight"], read_safetensors(exported)["conv1.weight"])


def test_build_writes_a_plan(exported, tmp_path):
    plan = tmp_path / "r18.plan"
    result = trtnet_cli("build", "resnet18", "--weights", exported, "--batch", "2", "--precision", "fp32", "-o", plan)
    assert result.returncode == 0, result.stderr
    assert f"-> {plan}" in result.stdout and "resnet18 fp32 batch 2" in result.stdout
    assert plan.stat().st_size > 10_000_000  # fp32 weights alone are 44 MiB... of which TensorRT keeps the conv's
    names = {p.name for p in tmp_path.iterdir()}  # (the runtime may keep metadata beside the plan)
    assert "r18.plan" in names and not any(n.startswith(".") or n.endswith(".tmp") for n in names)


def test_build_dynamic_batch_without_weights(tmp_path):
    result = trtnet_cli("build", "resnet18", "--batch", "1:2:4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no --weights: resnet18 gets seeded random weights" in result.stdout
    assert "resnet18 fp16 batch 1:2:4" in result.stdout and (tmp_path / "resnet18.plan").is_file()


@pytest.mark.gpu
def test_built_plan_deserializes_on_the_gpu(exported, tmp_path):
    from trtnet.backend import get_trt, logger

    plan = tmp_path / "r18.plan"
    assert trtnet_cli("build", "resnet18", "--weights", exported, "--batch", "2", "-o", plan).returncode == 0
    engine = get_trt().Runtime(logger()).deserialize_cuda_engine(plan.read_bytes())
    assert engine is not None and engine.num_io_tensors == 2


def test_verify_passes_on_the_exported_weights(exported):
    result = trtnet_cli("verify", "resnet18", "--weights", exported, "--batch", "2", "--against-seed", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "weights: every tensor equals the PyTorch source's" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "reference fp32 logits: rel error" in line)
    assert line.endswith("(need <= 0.0001) ok")
    assert "resnet18: passed" in result.stdout


@pytest.fixture(scope="module")
def perturbed(exported) -> Path:
    """The exported file with one weight tensor changed, written as users write files."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(exported))
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"] + 0.05 * torch.randn(
        state["layer2.0.conv1.weight"].shape, generator=torch.Generator().manual_seed(0)
    )
    path = exported.with_name("perturbed.safetensors")
    save_file(state, str(path))
    return path


def test_verify_fails_on_perturbed_weights_and_names_the_tensor(perturbed):
    result = trtnet_cli("verify", "resnet18", "--weights", perturbed, "--batch", "1", "--against-seed", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "weights: 1 tensor differs from the PyTorch source's: layer2.0.conv1.weight (max |diff|" in result.stdout
    assert "(need <= 0.0001) FAILED" in result.stdout and "resnet18: FAILED (2 of 3 checks passed)" in result.stdout


def test_verify_by_default_checks_only_the_re_expression(perturbed):
    result = trtnet_cli("verify", "resnet18", "--weights", perturbed, "--batch", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"weights: {perturbed}, loaded by trtnet and by PyTorch" in result.stdout


def test_summary_shows_layers_parameters_and_flops(exported):
    result = trtnet_cli("summary", "resnet18", "--weights", exported)
    assert result.returncode == 0, result.stderr
    net = trtnet.emit(resnet18(weights=None), 1)
    # Independent counts from the PyTorch source: every BatchNorm is folded into its conv (one bias per
    # channel), FLOPs are 2 x multiply-adds of the convolutions and the classifier.
    import torch

    from trtnet.parity import torch_model

    source = torch_model("resnet18")
    convs = [m for m in source.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in source.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    params = sum(c.weight.numel() for c in convs) + sum(b.num_features for b in bns) + 1000 * 512 + 1000
    flops = []
    hooks = [c.register_forward_hook(lambda m, i, o: flops.append(2 * o.numel() * m.weight[0].numel())) for c in convs]
    with torch.no_grad():
        source(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    gflops = (sum(flops) + 2 * 512 * 1000) / 1e9
    assert f"total: {net.num_layers} layers, {params:,} parameters, {gflops:.2f} GFLOPs" in result.stdout
    assert "layer3.1.conv1/conv  " in result.stdout and "1x256x14x14" in result.stdout


# -- bad usage and bad input: exit 2, one readable line ------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (("build", "nope"), "trtnet: error: no zoo model 'nope'; known: "),
        (
            ("build", "resnet18", "--weights", "missing.safetensors"),
            "trtnet: error: missing.safetensors: cannot read: No such file or directory",
        ),
        (
            ("summary", "resnet18", "--weights", "resnet18.pth"),
            "trtnet: error: resnet18.pth: .pth files are pickles, which trtnet never loads; convert it with "
            "`trtnet convert resnet18 resnet18.pth` and pass the .safetensors file it writes",
        ),
        (
            ("export-weights", "resnet18", "-o", "resnet18.pt"),
            "trtnet: error: resnet18.pt: the output must be a .safetensors file",
        ),
    ],
    ids=["unknown_model", "missing_file", "pickle", "export_suffix"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "resnet18.pth").write_bytes(b"\x80\x04 a pickle, never read")
    result = trtnet_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert error_line(result).startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18.pth"]  # nothing written


def test_output_folder_error_names_the_path(tmp_path):
    # A missing folder is made (as export-weights makes its own); one that cannot be is named, before the build.
    (tmp_path / "no").write_text("a file where a folder would go")
    result = trtnet_cli("build", "resnet18", "-o", "no/such/folder/r.plan", "--batch", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert error_line(result).startswith("trtnet: error: no/such/folder/r.plan: cannot write the plan: cannot make")
    assert [p.name for p in tmp_path.iterdir()] == ["no"]
    result = trtnet_cli("build", "resnet18", "-o", "new/folder/r.plan", "--batch", "1", cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "new" / "folder" / "r.plan").is_file(), result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("build", "resnet18", "--batch", "8:2:1"),
        ("build", "resnet18", "--batch", "x"),
        ("verify", "resnet18", "--batch", "0"),
        ("nonsense",),
        (),
    ],
)
def test_bad_usage_exits_2(args):
    result = trtnet_cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("trtnet")


@pytest.fixture(scope="module")
def damaged(exported) -> dict[str, Path]:
    """Files that are wrong in each way a user meets, written with the safetensors library."""
    import torch
    from safetensors.torch import load_file, save_file

    folder = exported.parent
    good = load_file(str(exported))
    files = {}
    files["truncated"] = folder / "truncated.safetensors"
    files["truncated"].write_bytes(exported.read_bytes()[:1_000_000])
    nan = dict(good)
    nan["fc.bias"] = nan["fc.bias"].clone()
    nan["fc.bias"][3] = float("nan")
    files["nan"] = folder / "nan.safetensors"
    save_file(nan, str(files["nan"]))
    shape = dict(good)
    shape["fc.weight"] = torch.zeros(10, 512)
    del shape["layer4.1.bn2.bias"]
    shape["head.weight"] = torch.zeros(2)
    files["keys"] = folder / "keys.safetensors"
    save_file(shape, str(files["keys"]))
    return files


def test_truncated_weights(damaged):
    result = trtnet_cli("summary", "resnet18", "--weights", damaged["truncated"])
    assert result.returncode == 2
    assert error_line(result).startswith(f"trtnet: error: {damaged['truncated']}: key ")
    header = int.from_bytes(damaged["truncated"].read_bytes()[:8], "little")
    assert error_line(result).endswith(
        f"lie outside the data ({1_000_000 - 8 - header} bytes): the file is truncated or its header lies"
    )


def test_wrong_missing_and_unexpected_keys_in_one_line(damaged):
    result = trtnet_cli("summary", "resnet18", "--weights", damaged["keys"])
    assert result.returncode == 2
    assert error_line(result) == (
        f"trtnet: error: {damaged['keys']}: weights do not fit ResNet: missing key: layer4.1.bn2.bias; "
        "unexpected key: head.weight; shape mismatch: fc.weight: expected (1000, 512), file has (10, 512)"
    )


def test_nan_weights_warn_and_strict_refuses(damaged):
    warned = trtnet_cli("summary", "resnet18", "--weights", damaged["nan"])
    assert warned.returncode == 0, warned.stderr
    assert f"trtnet: warning: {damaged['nan']}: key 'fc.bias' holds NaN or infinite values" in warned.stderr
    refused = trtnet_cli("summary", "resnet18", "--weights", damaged["nan"], "--strict")
    assert refused.returncode == 2
    assert error_line(refused) == f"trtnet: error: {damaged['nan']}: key 'fc.bias' holds NaN or infinite values"


def test_debug_shows_the_traceback(damaged, capsys):
    # With --debug, main prints the traceback before the one-line error; the exit status stays that of the error.
    status = main(["summary", "resnet18", "--weights", str(damaged["truncated"]), "--debug"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and "Traceback (most recent call last):" in err
    assert any(line.startswith("trtnet.errors.WeightsError: ") and "lie outside the data" in line for line in err)
    assert err[-1].startswith("trtnet: error: ") and "lie outside the data" in err[-1]


def test_pretrained_without_network_is_a_clean_error(tmp_path, monkeypatch):
    # A proxy on a closed local port: the download fails at once here, in CI, and on a machine with a network.
    # urllib builds its default opener, proxies included, on first use: drop one an earlier test may have built.
    monkeypatch.setattr(urllib.request, "_opener", None)
    offline = dict(
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        NO_PROXY="",
        no_proxy="",
        TORCH_HOME=str(tmp_path / "torch"),
        HF_HUB_OFFLINE="1",
    )
    result = trtnet_cli("export-weights", "resnet18", "--pretrained", "-o", tmp_path / "r.safetensors", **offline)
    assert result.returncode == 2, result.stderr
    line = error_line(result)
    assert line.startswith(
        "trtnet: error: cannot download the published weights of resnet18 (torchvision.models.resnet18): URLError: "
    )
    assert line.endswith(
        "--pretrained needs network access; elsewhere, run `trtnet export-weights resnet18 "
        "--pretrained` and copy the file here"
    )
    assert not (tmp_path / "r.safetensors").exists()


# -- interrupted writes leave nothing under the target name ------------------------------------------------


def test_interrupted_export_leaves_no_partial_file(tmp_path, monkeypatch):
    import safetensors.torch

    from trtnet.parity import export_state, torch_model

    target = tmp_path / "w.safetensors"
    target.write_bytes(b"the previous file")
    real = safetensors.torch.save_file

    def interrupted(state, filename, metadata=None):
        real(state, filename, metadata)
        Path(filename).write_bytes(Path(filename).read_bytes()[:1000])  # half written...
        raise KeyboardInterrupt  # ...when the user presses Ctrl-C

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_state(torch_model("resnet18"), target)
    assert target.read_bytes() == b"the previous file"  # untouched, and no temporary left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_interrupted_plan_save_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "m.plan"
    target.write_bytes(b"the previous plan")
    engine = trtnet.Engine(plan=b"x" * 4096)

    def interrupted(src, dst):  # Ctrl-C after the bytes are written, before they are published
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        engine.save(target)
    assert target.read_bytes() == b"the previous plan"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.plan"]


def test_one_line_keeps_long_listings_short():
    from trtnet.cli.commands import one_line

    message = "f.safetensors: weights do not fit M\n" + "\n".join(f"  missing key: k{i}" for i in range(10))
    assert one_line(message) == (
        "f.safetensors: weights do not fit M: missing key: k0; missing key: k1; "
        "missing key: k2; missing key: k3; missing key: k4; missing key: k5; and 4 more"
    )
    assert one_line("one line") == "one line"


def _npz(path: Path) -> None:
    with open(path, "wb") as f:  # a path would get .npz appended
        np.savez(f, x=np.zeros(3, np.float32))


def _npy(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros(3, np.float32))


def _onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [x.__class__(name="y")])
    graph.output[0].type.CopyFrom(x.type)
    onnx.save(helper.make_model(graph), path)


@pytest.mark.parametrize(
    "write, what",
    [
        (_npz, "a zip archive (a numpy .npz, or a PyTorch checkpoint written by torch.save)"),
        (_npy, "a numpy .npy array"),
        (_onnx, "a protobuf message (an ONNX model? `trtnet check model.onnx` runs those)"),
    ],
    ids=["npz", "npy", "onnx"],
)
def test_weights_in_another_format_are_named_not_read_as_a_header_length(tmp_path, write, what):
    """An .npz given as weights said "header length 193340853072 does not fit in the file"."""
    path = tmp_path / "w.safetensors"
    write(path)
    result = trtnet_cli("summary", "resnet18", "--weights", path)
    assert error_line(result) == (
        f"trtnet: error: {path}: not a safetensors file: its first bytes are those of {what}; trtnet reads weights "
        "from .safetensors files only (`trtnet export-weights`, or `trtnet convert MODEL FILE` for a PyTorch "
        "checkpoint)"
    )
