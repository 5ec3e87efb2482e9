"""`trtnet convert`: PyTorch checkpoints as their repositories write them -> safetensors trtnet loads, run
in-process through `trtnet.cli.main`. Foreign layouts are made from the sources' own weights (tests/foreign_layouts)."""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import trtnet
from tests.foreign_layouts import microsoft_swin_state
from trtnet.cli import main
from trtnet.parity import rel_error, torch_forward, torch_model
from trtnet.weights import read_safetensors
from trtnet.zoo import get_entry, swin_t

torch = pytest.importorskip("torch", reason="torch writes the checkpoints converted here")


def run(capsys, *args) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_microsoft_swin_t_in_its_model_container(tmp_path, capsys):
    pytest.importorskip("timm", reason="timm is the PyTorch source of swin_t")
    source = torch_model("swin_t", seed=2)
    checkpoint = tmp_path / "swin_tiny_patch4_window7_224.pth"
    torch.save({"model": microsoft_swin_state(source)}, checkpoint)  # as Microsoft publishes it
    status, out, err = run(capsys, "convert", "swin_t", checkpoint)
    assert status == 0, err
    output = tmp_path / "swin_tiny_patch4_window7_224.safetensors"
    assert out.splitlines() == [
        f"read {checkpoint}",
        "  container: 'model'",
        "  layout: Microsoft Swin-Transformer",
        f"wrote {output}: {len(source.state_dict())} tensors ({len(source.state_dict())} float32); loads strictly "
        "into trtnet's swin_t",
    ]
    # The file is timm's layout now: its keys are the source's own (the buffers Microsoft saves are dropped).
    assert set(read_safetensors(output)) == set(source.state_dict())
    x = np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32)
    (got,) = trtnet.reference(swin_t(weights=output), x)
    assert rel_error(got, torch_forward(source, x)[0]) <= 1e-4


@pytest.fixture(scope="module")
def yolov5_pt(tmp_path_factory) -> tuple[object, Path]:
    """yolov5n written the way YOLOv5's train.py and strip_optimizer write a release .pt: the model object itself,
    a half-precision deepcopy, under 'model', beside the training state."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    pytest.importorskip("yolov5.models.yolo", reason="yolov5 is the PyTorch source of yolov5n")
    model = torch_model("yolov5n", seed=4)
    path = tmp_path_factory.mktemp("yolo") / "yolov5n.pt"
    torch.save(
        {
            "epoch": -1,
            "best_fitness": None,
            "model": copy.deepcopy(model).half(),
            "ema": None,
            "updates": None,
            "optimizer": None,
            "opt": {"imgsz": 640},
            "date": "2026-11-29T10:00:00",
        },
        path,
    )
    return model, path


def test_a_pickled_model_is_refused_without_trust_pickle(yolov5_pt, tmp_path, capsys):
    _, path = yolov5_pt
    status, out, err = run(capsys, "convert", "yolov5n", path, "-o", tmp_path / "y.safetensors")
    assert status == 2 and out == ""
    assert err.strip() == (
        f"trtnet: error: {path}: the file pickles objects (yolov5.models.yolo.DetectionModel), not only tensors; "
        "loading it runs code the file names, which can do anything on this machine. If you trust where it came "
        "from, rerun with --trust-pickle (for this file only); else ask its authors for a state_dict or a "
        "safetensors file"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_pickled_model_is_converted_with_trust_pickle(yolov5_pt, tmp_path, capsys):
    model, path = yolov5_pt
    output = tmp_path / "yolov5n.safetensors"
    status, out, err = run(capsys, "convert", "yolov5n", path, "-o", output, "--trust-pickle")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[:3] == [
        f"read {path} (unpickled in full: --trust-pickle)",
        "  container: 'model' (a pickled DetectionModel's state_dict())",
        "  layout: yolov5n's own keys, no conversion",
    ]
    state = read_safetensors(output)
    floats = sum(v.dtype == np.float16 for v in state.values())
    assert floats == sum(v.is_floating_point() for v in model.state_dict().values())  # fp16 kept, not widened
    assert lines[3].startswith(f"wrote {output}: {len(state)} tensors ({floats} float16, ")
    # Parity against the source with the same half-precision weights, computed in fp32 on both sides.
    rounded = copy.deepcopy(model).half().float()
    x = np.random.default_rng(5).standard_normal((1, 3, 640, 640)).astype(np.float32)
    (got,) = trtnet.reference(get_entry("yolov5n").fn(weights=output), x)
    assert rel_error(got, torch_forward(rounded, x)[0]) <= 1e-4


def test_data_parallel_state_dict_in_a_pth_tar(tmp_path, capsys):
    torchvision = pytest.importorskip("torchvision", reason="torchvision is the source of resnet18")
    model = torchvision.models.resnet18()
    wrapped = torch.nn.DataParallel(model)  # its state_dict() is what DataParallel training scripts save
    checkpoint = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": wrapped.state_dict()}, checkpoint)
    status, out, err = run(capsys, "convert", "resnet18", checkpoint)
    assert status == 0, err
    assert "  layout: DataParallel's `module.` prefix" in out.splitlines()
    state = read_safetensors(tmp_path / "checkpoint.safetensors")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key], value.numpy())


@pytest.mark.parametrize(
    "make, message",
    [
        (None, "{path}: no such file"),
        (
            lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"),
            "{path}: truncated or damaged: it begins as torch.save's zip format",
        ),
        (  # a download cut short: it was "not a PyTorch checkpoint ... (OSError: [Errno 22] Invalid argument)"
            lambda p: (torch.save({"w": torch.ones(1000)}, p), p.write_bytes(p.read_bytes()[:2000])),
            "{path}: truncated or damaged: it begins as torch.save's zip format, but the zip's directory",
        ),
        (lambda p: torch.save({}, p), "{path}: the file holds an empty dict: no weights"),
        (
            lambda p: torch.save({"epoch": 3, "arch": "resnet18"}, p),
            "{path}: unknown container: the file holds keys 'epoch', 'arch', neither tensors nor one of model_ema, ema, "
            "state_dict_ema, model, state_dict",
        ),
        (lambda p: torch.save({"state_dict": {}}, p), "{path}: 'state_dict' holds an empty dict: no weights"),
        (  # it read "'model'; also present: 'state_dict' holds keys 'x'", as if the good state_dict held 'x'
            lambda p: torch.save({"state_dict": {"w": torch.ones(1)}, "model": {"x": 1}}, p),
            "{path}: unknown container: 'model' holds keys 'x', neither tensors nor one of model_ema, ema, "
            "state_dict_ema, model, state_dict (the file also has 'state_dict', not tried",
        ),
        (
            lambda p: torch.save({"state_dict": {"w": torch.ones(1)}, "model": {}}, p),
            "{path}: 'model' holds an empty dict: no weights (the file also has 'state_dict', not tried",
        ),
        (  # nested: the path names the inner container, and the other top-level one comes once, at the end
            lambda p: torch.save(
                {
                    "state_dict": {"w": torch.ones(1)},
                    "model": {"state_dict": {"w": torch.ones(1), "v": torch.ones(1), "x": 1}},
                },
                p,
            ),
            "{path}: 'model' -> 'state_dict' holds 2 tensors and 1 other value ('x' (int)): a state_dict holds "
            "tensors only; save one without them (the file also has 'state_dict', not tried",
        ),
    ],
    ids=[
        "missing",
        "not_torch",
        "truncated",
        "empty",
        "unknown_container",
        "empty_state_dict",
        "two_containers",
        "empty_first",
        "nested",
    ],
)
def test_bad_checkpoints_are_one_line_naming_the_file(tmp_path, capsys, make, message):
    path = tmp_path / "in.pth"
    if make:
        make(path)
    good = tmp_path / "out.safetensors"
    good.write_bytes(b"a good file from before")
    status, out, err = run(capsys, "convert", "resnet18", path, "-o", good)
    assert status == 2, out + err
    assert err.startswith("trtnet: error: " + message.format(path=path)) and len(err.strip().splitlines()) == 1
    assert good.read_bytes() == b"a good file from before"  # never clobbered
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"out.safetensors", *(["in.pth"] if make else [])})


def test_a_file_for_another_model_is_refused_before_writing(tmp_path, capsys):
    torchvision = pytest.importorskip("torchvision", reason="torchvision is the source of resnet18")
    checkpoint = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
    status, out, err = run(capsys, "convert", "resnet50", checkpoint)
    assert status == 2
    assert err.startswith(f"trtnet: error: {checkpoint}: weights do not fit ResNet: 165 missing keys: ")
    assert err.strip().endswith("looks like a resnet18 file, not resnet50: load it into resnet18")
    assert not (tmp_path / "r18.safetensors").exists()


@pytest.mark.parametrize("checkpoint", [".", "/", ".."])  # "": tests/test_cli_usage.py
def test_a_folder_or_no_path_is_refused_as_no_checkpoint(capsys, checkpoint):
    """The default output is named after the checkpoint's file name: a path with none crashed with exit 3
    (`PosixPath('.') has an empty name`) before anything was read."""
    status, stdout, err = run(capsys, "convert", "resnet18", checkpoint)
    assert (status, stdout) == (2, ""), err
    assert err.strip().endswith(": not a checkpoint file (a folder or no path at all)"), err


def test_other_suffixes_are_refused(tmp_path, capsys):
    status, _, err = run(capsys, "convert", "resnet18", tmp_path / "w.safetensors")
    assert status == 2
    assert err.strip() == (
        f"trtnet: error: {tmp_path / 'w.safetensors'}: not a PyTorch checkpoint name: expected one "
        "of .pt, .pth, .pth.tar, .ckpt, .bin (a .safetensors file needs no conversion: pass it as "
        "--weights)"
    )


def test_bfloat16_is_kept(tmp_path, capsys):
    torchvision = pytest.importorskip("torchvision", reason="torchvision is the source of resnet18")
    state = {
        k: v.to(torch.bfloat16) if v.is_floating_point() else v
        for k, v in torchvision.models.resnet18().state_dict().items()
    }
    checkpoint = tmp_path / "pytorch_model.bin"
    torch.save(state, checkpoint)
    status, out, err = run(capsys, "convert", "resnet18", checkpoint)
    assert status == 0, err
    floats = sum(v.dtype == torch.bfloat16 for v in state.values())
    assert f"122 tensors ({floats} bfloat16, {122 - floats} int64)" in out
    from safetensors.torch import load_file

    written = load_file(str(tmp_path / "pytorch_model.safetensors"))
    assert all(torch.equal(written[k], v) and written[k].dtype == v.dtype for k, v in state.items())


def test_convert_is_the_only_place_that_unpickles():
    """torch.load, pickle.load(s) and friends appear in trtnet/export/convert.py and nowhere else in the package."""
    import ast

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted((root / "trtnet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr)
                in {
                    ("torch", "load"),
                    ("pickle", "load"),
                    ("pickle", "loads"),
                    ("pickle", "Unpickler"),
                    ("dill", "load"),
                }
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found and all(f.startswith("trtnet/export/convert.py:") for f in found), found


def _resnet18_state() -> dict:
    torchvision = pytest.importorskip("torchvision", reason="torchvision is the source of resnet18")
    return torchvision.models.resnet18().state_dict()


def _quantized(t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's deprecation note on quantized tensors
        return torch.quantize_per_tensor(t, 0.1, 0, torch.qint8)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda v: v.to(torch.float8_e4m3fn),
            "key 'fc.weight' has dtype float8_e4m3fn, which trtnet does not read "
            "(it reads bfloat16, bool, float16, float32, float64, int16, int32, int64, "
            "int8, uint16, uint32, uint64, uint8)",
        ),
        (lambda v: torch.complex(v, v), "key 'fc.weight' has dtype complex64, which trtnet does not read"),
        (lambda v: v.to_sparse(), "key 'fc.weight' is a torch.sparse_coo tensor, not a dense one (tensor.to_dense())"),
        (lambda v: torch.empty_like(v, device="meta"), "key 'fc.weight' is a meta tensor: it holds no values"),
        (_quantized, "key 'fc.weight' is a quantized tensor (dequantize it first)"),
    ],
    ids=["fp8", "complex", "sparse", "meta", "quantized"],
)
def test_tensors_safetensors_or_trtnet_cannot_hold_are_refused_naming_the_key(tmp_path, capsys, change, message):
    """These crashed (exit 3, TypeError from .numpy()), or, for complex, wrote a file trtnet then refused to read."""
    state = _resnet18_state()
    state["fc.weight"] = change(state["fc.weight"])
    checkpoint = tmp_path / "odd.pt"
    torch.save(state, checkpoint)
    good = tmp_path / "out.safetensors"
    good.write_bytes(b"a good file from before")
    status, out, err = run(capsys, "convert", "resnet18", checkpoint, "-o", good)
    assert (status, out) == (2, ""), err
    assert err.startswith(f"trtnet: error: {checkpoint}: {message}")
    assert good.read_bytes() == b"a good file from before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.pt", "out.safetensors"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "{path}: the file is empty (0 bytes)"),
        (
            lambda p: torch.save({**_resnet18_state(), "epoch": 5}, p),
            "{path}: the file holds 122 tensors and 1 other value ('epoch' (int)): a state_dict holds tensors only",
        ),
        (
            lambda p: torch.save({"model": {**_resnet18_state(), "meta": "x", "step": 3}}, p),
            "{path}: 'model' holds 122 tensors and 2 other values ('meta' (str), 'step' (int)): a state_dict holds "
            "tensors only",
        ),
        (
            lambda p: torch.save({"model": None, "ema": None, "epoch": 3}, p),
            "{path}: the file holds 'ema', 'model' set to None: no weights in it",
        ),
        (
            lambda p: torch.save(_holds_itself(), p),
            "{path}: containers nested more than 8 deep ('model' -> ...), or a container that holds itself",
        ),
    ],
    ids=["zero_bytes", "state_dict_with_an_int", "nested_state_dict_with_a_str", "containers_all_none", "a_cycle"],
)
def test_odd_containers_say_what_they_hold(tmp_path, capsys, make, message):
    """These were "EOFError: EOFError", or "unknown container" listing the tensors' keys, or "holds keys 'model'
    ... neither ... nor one of ..., model", or a RecursionError (exit 3)."""
    path = tmp_path / "in.pt"
    make(path)
    status, out, err = run(capsys, "convert", "resnet18", path, "-o", tmp_path / "out.safetensors")
    assert (status, out) == (2, ""), err
    assert err.startswith("trtnet: error: " + message.format(path=path)) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.safetensors").exists()


def _holds_itself() -> dict:
    """A pickle may hold a dict that holds itself (weights_only reads it): unwrapping it was a RecursionError."""
    cycle: dict = {}
    cycle["model"] = cycle
    return cycle


class _CallsAFunction:
    """What a malicious checkpoint pickles: a call of a function of a module torch blocks (here a harmless one)."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_a_pickled_call_of_a_blocked_module_is_refused_as_a_pickle(tmp_path, capsys):
    """torch words this refusal "Trying to load unsupported GLOBAL posix.getcwd whose module posix is blocked";
    it was reported as "not a PyTorch checkpoint torch.load can read", hiding the risk and --trust-pickle."""
    path = tmp_path / "model.pt"
    torch.save({"model": _resnet18_state(), "extra": _CallsAFunction()}, path)
    status, out, err = run(capsys, "convert", "resnet18", path, "-o", tmp_path / "out.safetensors")
    assert (status, out) == (2, "")
    assert err.startswith(
        f"trtnet: error: {path}: the file pickles objects ({os.getcwd.__module__}.getcwd), not "
        "only tensors; loading it runs code the file names"
    )
    assert "--trust-pickle" in err and not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize(
    "output, message",
    [
        ("folder.safetensors", "{out}: cannot write the weights there: it is a directory"),
        ("missing/w.safetensors", "{out}: cannot write the weights: No such file or directory"),
    ],
    ids=["a_folder", "a_missing_folder"],
)
def test_an_output_that_cannot_be_written_is_named(tmp_path, capsys, output, message):
    """These named the hidden temporary (`.folder.safetensors.123.tmp: Is a directory`) or crashed with
    safetensors' own error (exit 3)."""
    (tmp_path / "folder.safetensors").mkdir()
    checkpoint = tmp_path / "r18.pth"
    torch.save(_resnet18_state(), checkpoint)
    out = tmp_path / output
    status, stdout, err = run(capsys, "convert", "resnet18", checkpoint, "-o", out)
    assert (status, stdout) == (2, ""), err
    assert err.strip() == "trtnet: error: " + message.format(out=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.safetensors", "r18.pth"]
    assert list((tmp_path / "folder.safetensors").iterdir()) == []


def test_a_full_disk_keeps_the_previous_output(tmp_path):
    """A real short write (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC) inside safetensors' writer: it came
    out as SafetensorError, exit 3. Now a one-line error naming the target; the good file stays, no temporary."""
    import resource
    import signal
    import subprocess
    import sys

    checkpoint = tmp_path / "r18.pth"
    torch.save(_resnet18_state(), checkpoint)
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"a good file from before")

    def limit() -> None:  # in the child only: files may not grow past 1 MiB, and that is an error, not a signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "trtnet", "convert", "resnet18", str(checkpoint), "-o", str(out)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.strip() == f"trtnet: error: {out}: cannot write the weights: File too large"
    assert out.read_bytes() == b"a good file from before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r18.pth", "w.safetensors"]


def test_a_lightning_checkpoint_loses_its_wrapper_prefix(tmp_path, capsys):
    """PyTorch Lightning's .ckpt holds `state_dict` with the LightningModule's attribute before every key
    (`model.conv1.weight`): it was refused with 102 missing and 122 unexpected keys."""
    state = _resnet18_state()
    checkpoint = tmp_path / "epoch=9-step=100.ckpt"
    torch.save(
        {
            "epoch": 9,
            "global_step": 100,
            "pytorch-lightning_version": "2.4.0",
            "hyper_parameters": {},
            "state_dict": {f"model.{k}": v for k, v in state.items()},
        },
        checkpoint,
    )
    status, out, err = run(capsys, "convert", "resnet18", checkpoint, "-o", tmp_path / "w.safetensors")
    assert status == 0, err
    assert out.splitlines()[1:3] == [
        "  container: 'state_dict'",
        "  layout: a wrapper's `model.` prefix on every key (as PyTorch Lightning saves it)",
    ]
    written = read_safetensors(tmp_path / "w.safetensors")
    assert set(written) == set(state)
    for key, value in state.items():
        np.testing.assert_array_equal(written[key], value.numpy())


def test_a_safetensors_file_named_bin_is_told_so(tmp_path, capsys):
    """Hugging Face names some safetensors files .bin: torch.load's "Unsupported operand" on it was reported as
    a file that pickles objects, advising --trust-pickle for a file that holds no pickle at all."""
    from safetensors.torch import save_file

    path = tmp_path / "pytorch_model.bin"
    save_file(_resnet18_state(), str(path))
    status, out, err = run(capsys, "convert", "resnet18", path, "-o", tmp_path / "w.safetensors")
    assert (status, out) == (2, "")
    assert err.strip() == (
        f"trtnet: error: {path}: a safetensors file, despite its name: it needs no conversion, "
        "pass it as --weights (renamed to .safetensors)"
    )


def test_bytes_that_are_no_pickle_are_not_called_a_pickle(tmp_path, capsys):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes([0x98]) + bytes(range(200)))  # "Unsupported operand 152" to the weights-only unpickler
    status, out, err = run(capsys, "convert", "resnet18", path, "-o", tmp_path / "w.safetensors")
    assert (status, out) == (2, "")
    assert err.startswith(f"trtnet: error: {path}: not a PyTorch checkpoint torch.load can read (")
    assert "--trust-pickle" not in err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"trust_pickle": "no"}, "convert: trust_pickle = 'no' is not allowed: expected True or False"),
        ({"trust_pickle": 1}, "convert: trust_pickle = 1 is not allowed: expected True or False"),
        ({"checkpoint": None}, "convert: checkpoint = None is not allowed: expected a path (str or os.PathLike)"),
        ({"output": 3}, "convert: output = 3 is not allowed: expected a path (str or os.PathLike) or None"),
    ],
    ids=["trust_pickle_no", "trust_pickle_1", "checkpoint_none", "output_int"],
)
def test_convert_from_python_checks_its_arguments(tmp_path, kwargs, message):
    """trust_pickle="no" was truthy, so it allowed the full unpickle it meant to refuse; a path of the wrong type
    was a TypeError from pathlib."""
    from trtnet.errors import ConfigError
    from trtnet.export.convert import convert

    checkpoint = tmp_path / "model.pt"
    torch.save({"model": _resnet18_state(), "hook": _CallsAFunction()}, checkpoint)  # needs a full unpickle
    with pytest.raises(ConfigError, match=re.escape(message)):
        convert(**{"model": "resnet18", "checkpoint": checkpoint, "output": tmp_path / "w.safetensors", **kwargs})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_upper_case_suffixes_are_checkpoints_too(tmp_path, capsys):
    """MODEL.PTH (a file from a case-insensitive file system) was "not a PyTorch checkpoint name", and as --weights
    it was read as a safetensors file ("header length ... does not fit") instead of pointing to convert."""
    from trtnet.errors import WeightsError
    from trtnet.weights import read_safetensors as read

    checkpoint = tmp_path / "MODEL.PTH"
    torch.save(_resnet18_state(), checkpoint)
    status, _, err = run(capsys, "convert", "resnet18", checkpoint)
    assert status == 0, err
    assert (tmp_path / "MODEL.safetensors").is_file()
    with pytest.raises(
        WeightsError, match=re.escape(f"{checkpoint}: .PTH files are pickles, which trtnet never loads")
    ):
        read(checkpoint)


def test_an_ultralytics_training_checkpoint_converts_from_its_ema(tmp_path, capsys):
    """yolov8n as ultralytics' trainer saves it: the EMA model object in half precision under 'ema', beside the
    plain model (other weights) and training state; the EMA weights are the ones converted."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    pytest.importorskip("ultralytics.nn.tasks", reason="ultralytics is the PyTorch source of yolov8n")
    ema, plain = torch_model("yolov8n", seed=6), torch_model("yolov8n", seed=7)
    path = tmp_path / "last.pt"
    torch.save(
        {
            "epoch": 99,
            "best_fitness": 0.5,
            "model": copy.deepcopy(plain).half(),
            "ema": copy.deepcopy(ema).half(),
            "updates": 1000,
            "optimizer": None,
            "train_args": {"imgsz": 640},
            "date": "2026-11-29T10:00:00",
            "version": "8.4.0",
        },
        path,
    )
    output = tmp_path / "yolov8n.safetensors"
    status, out, err = run(capsys, "convert", "yolov8n", path, "-o", output, "--trust-pickle")
    assert status == 0, err
    assert out.splitlines()[1] == "  container: 'ema'; also present: 'model' (a pickled DetectionModel's state_dict())"
    rounded = copy.deepcopy(ema).half().float()
    x = np.random.default_rng(8).standard_normal((1, 3, 160, 160)).astype(np.float32)
    (got,) = trtnet.reference(get_entry("yolov8n").fn(weights=output), x)
    assert rel_error(got, torch_forward(rounded, x)[0]) <= 1e-4


def test_a_decoder_checkpoint_of_its_own_size_converts_with_its_config(tmp_path, capsys):
    """convert had no --config: a llama checkpoint of any size but the default 1B failed with shape mismatches."""
    transformers = pytest.importorskip("transformers")
    config = {
        "hidden_size": 16,
        "intermediate_size": 24,
        "vocab_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 16,
        "tie_word_embeddings": True,
    }
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    torch.manual_seed(0)
    torch.save(transformers.LlamaForCausalLM(transformers.LlamaConfig(**config)).state_dict(), tmp_path / "ck.bin")
    status, out, err = run(capsys, "convert", "llama", tmp_path / "ck.bin")
    assert status == 2 and "shape mismatches" in err
    status, out, err = run(capsys, "convert", "llama", tmp_path / "ck.bin", "--config", tmp_path / "config.json")
    assert status == 0, err
    assert "loads strictly into trtnet's llama" in out
    model = trtnet.zoo.llama(weights=tmp_path / "ck.safetensors", config=tmp_path / "config.json")
    assert model.config.hidden_size == 16
