"""`trtnet convert`: PyTorch checkpoints as their repositories write them -> safetensors trtnet loads, run
in-process through `trtnet.cli.main`. Foreign layouts are made from the sources' own weights (tests/foreign_layouts)."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest

from tests.foreign_layouts import microsoft_swin_state
import trtnet
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
        "into trtnet's swin_t"]
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
    torch.save({"epoch": -1, "best_fitness": None, "model": copy.deepcopy(model).half(), "ema": None,
                "updates": None, "optimizer": None, "opt": {"imgsz": 640}, "date": "2026-11-29T10:00:00"}, path)
    return model, path


def test_a_pickled_model_is_refused_without_trust_pickle(yolov5_pt, tmp_path, capsys):
    _, path = yolov5_pt
    status, out, err = run(capsys, "convert", "yolov5n", path, "-o", tmp_path / "y.safetensors")
    assert status == 2 and out == ""
    assert err.strip() == (
        f"trtnet: error: {path}: the file pickles objects (yolov5.models.yolo.DetectionModel), not only tensors; "
        "loading it runs code the file names, which can do anything on this machine. If you trust where it came "
        "from, rerun with --trust-pickle (for this file only); else ask its authors for a state_dict or a "
        "safetensors file")
    assert list(tmp_path.iterdir()) == []


def test_a_pickled_model_is_converted_with_trust_pickle(yolov5_pt, tmp_path, capsys):
    model, path = yolov5_pt
    output = tmp_path / "yolov5n.safetensors"
    status, out, err = run(capsys, "convert", "yolov5n", path, "-o", output, "--trust-pickle")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[:3] == [f"read {path} (unpickled in full: --trust-pickle)",
                         "  container: 'model' (a pickled DetectionModel's state_dict())",
                         "  layout: yolov5n's own keys, no conversion"]
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


@pytest.mark.parametrize("make, message", [
    (None, "{path}: no such file"),
    (lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), "{path}: not a PyTorch checkpoint torch.load can read"),
    (lambda p: torch.save({}, p), "{path}: the file holds an empty dict: no weights"),
    (lambda p: torch.save({"epoch": 3, "arch": "resnet18"}, p),
     "{path}: unknown container: the file holds keys 'epoch', 'arch', neither tensors nor one of model_ema, ema, "
     "state_dict_ema, model, state_dict"),
    (lambda p: torch.save({"state_dict": {}}, p), "{path}: 'state_dict' holds an empty dict: no weights"),
], ids=["missing", "not_torch", "empty", "unknown_container", "empty_state_dict"])
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


def test_other_suffixes_are_refused(tmp_path, capsys):
    status, _, err = run(capsys, "convert", "resnet18", tmp_path / "w.safetensors")
    assert status == 2
    assert err.strip() == (f"trtnet: error: {tmp_path / 'w.safetensors'}: not a PyTorch checkpoint name: expected one "
                           "of .pt, .pth, .pth.tar, .ckpt, .bin (a .safetensors file needs no conversion: pass it as "
                           "--weights)")


def test_bfloat16_is_kept(tmp_path, capsys):
    torchvision = pytest.importorskip("torchvision", reason="torchvision is the source of resnet18")
    state = {k: v.to(torch.bfloat16) if v.is_floating_point() else v
             for k, v in torchvision.models.resnet18().state_dict().items()}
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
    """torch.load, pickle.load(s) and friends appear in trtnet/convert.py and nowhere else in the package."""
    import ast

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted((root / "trtnet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and (node.value.id, node.attr) in {("torch", "load"), ("pickle", "load"), ("pickle", "loads"),
                                                       ("pickle", "Unpickler"), ("dill", "load")}):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found and all(f.startswith("trtnet/convert.py:") for f in found), found
