"""Strict weight loading: every bad input raises a WeightsError naming the key or the file."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from trtnet import nn
from trtnet.errors import WeightsError
from trtnet.weights import load_weights, read_safetensors, save_safetensors


class Tiny(nn.Module):
    def __init__(self) -> None:
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.head = [nn.Linear(4, 2)]


def good_state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    state = {k: rng.standard_normal(p.shape).astype(np.float32) for k, p in Tiny().named_parameters()}
    state["bn.num_batches_tracked"] = np.array(7, np.int64)  # a buffer PyTorch saves; skipped on purpose
    return state


def test_parameter_names_are_attribute_paths():
    assert [k for k, _ in Tiny().named_parameters()] == [
        "conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "head.0.weight", "head.0.bias"]


def test_round_trip_through_safetensors(tmp_path):
    state = good_state()
    save_safetensors(state, tmp_path / "w.safetensors")
    model = Tiny()
    load_weights(model, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(model.head[0].weight.data, state["head.0.weight"])


def test_reads_files_written_by_the_safetensors_library(tmp_path):
    torch = pytest.importorskip("torch", reason="the safetensors torch writer needs torch")
    from safetensors.torch import save_file

    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(3, dtype=torch.bfloat16) * 1.5,
               "c": torch.tensor([1, 2], dtype=torch.int64), "d": torch.zeros(2, dtype=torch.float16)}
    save_file(tensors, str(tmp_path / "t.safetensors"))
    got = read_safetensors(tmp_path / "t.safetensors")
    for k, v in tensors.items():
        np.testing.assert_array_equal(got[k], v.float().numpy() if k == "b" else v.numpy())


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("bn.running_var"), r"missing key: bn\.running_var"),
    (lambda s: s.update({"fc.weight": np.zeros(2, np.float32)}), r"unexpected key: fc\.weight"),
    (lambda s: s.update({"conv.weight": np.zeros((4, 3, 5, 5), np.float32)}),
     r"shape mismatch: conv\.weight: expected \(4, 3, 3, 3\), file has \(4, 3, 5, 5\)"),
], ids=["missing", "unexpected", "wrong_shape"])
def test_strict_loading_names_the_key(change, message):
    state = good_state()
    change(state)
    with pytest.raises(WeightsError, match=message):
        load_weights(Tiny(), state)


def test_every_problem_is_listed_at_once():
    state = good_state()
    state.pop("conv.weight"), state.pop("bn.bias")
    state["extra"] = np.zeros(1, np.float32)
    with pytest.raises(WeightsError) as e:
        load_weights(Tiny(), state)
    assert all(s in str(e.value) for s in ("conv.weight", "bn.bias", "extra"))


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors(good_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(WeightsError, match=r"w\.safetensors.*key '.*': data_offsets .* lie outside the data"):
        read_safetensors(path)
    path.write_bytes(data[:5])
    with pytest.raises(WeightsError, match=r"w\.safetensors: truncated file \(5 bytes\)"):
        read_safetensors(path)


def test_pickle_files_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x04not read")
    with pytest.raises(WeightsError, match="pickles, which trtnet never loads.*export-weights"):
        read_safetensors(path)


# -- bad files: each gives a WeightsError naming the file and, where there is one, the key ---------------

def _torch_file(path, tensors) -> None:
    """Write `tensors` (name -> torch tensor) as users do, with the safetensors library."""
    from safetensors.torch import save_file

    save_file(tensors, str(path))


def _header_swap(path, edit) -> None:
    """Rewrite a file's JSON header through `edit(header) -> header`, keeping its data bytes."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = edit(json.loads(data[8:8 + n]))
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n:])


@pytest.fixture
def torch_file(tmp_path):
    torch = pytest.importorskip("torch", reason="files are written with safetensors.torch, as users write them")
    path = tmp_path / "w.safetensors"
    _torch_file(path, {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4)})
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda h: {**h, "a": {**h["a"], "data_offsets": [0, 10**6]}},
     r"key 'a': data_offsets \[0, 1000000\] lie outside the data \(40 bytes\): the file is truncated or its "
     r"header lies"),
    (lambda h: {**h, "a": {**h["a"], "shape": [3, 3]}}, r"key 'a': 24 bytes for F32 \[3, 3\], which needs 36"),
    (lambda h: {**h, "b": {**h["b"], "data_offsets": [8, 24]}}, r"keys 'a' and 'b' overlap in the data"),
    (lambda h: {**h, "a": {**h["a"], "dtype": "F8_E4M3"}}, r"key 'a': unsupported dtype 'F8_E4M3' \(supported: F64"),
    (lambda h: {**h, "a": {**h["a"], "shape": [2, -3]}}, r"key 'a': bad shape \[2, -3\]"),
    (lambda h: {**h, "a": {**h["a"], "data_offsets": [0]}}, r"key 'a': bad data_offsets \[0\]"),
    (lambda h: {**h, "a": [1, 2]}, r"key 'a': header entry is not an object"),
    (lambda h: {**h, "__metadata__": {"format": 1}}, r"corrupted header: __metadata__ must map strings to strings"),
    (lambda h: [h], r"corrupted header: expected a JSON object"),
    (lambda h: {**h, "a": {**h["a"], "shape": [10**300, 10**300]}},
     r"key 'a': 24 bytes for F32 \[1000000000.*\.\.\., which needs more than any file holds"),
], ids=["offsets_outside", "size_lies", "overlap", "dtype", "negative_dim", "offsets_form", "entry_form",
        "metadata", "not_object", "huge_shape"])
def test_a_header_that_lies_is_refused(torch_file, edit, message):
    _header_swap(torch_file, edit)
    with pytest.raises(WeightsError, match=r"w\.safetensors: " + message):
        read_safetensors(torch_file)


@pytest.mark.parametrize("header, message", [
    (b"{not json", r"corrupted header: not valid JSON \(Expecting property name"),
    (b"\xff\xfe{}", r"corrupted header: not valid JSON \('utf-8' codec can't decode"),
    (b"[" * 100_000, r"corrupted header: not valid JSON \(maximum recursion depth"),
    (b'{"a": {"shape": [' + b"9" * 5000 + b"]}}", r"corrupted header: not valid JSON \(Exceeds the limit"),
], ids=["syntax", "not_utf8", "deeply_nested", "huge_integer"])
def test_a_corrupted_header_is_refused(tmp_path, header, message):
    path = tmp_path / "w.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(WeightsError, match=r"w\.safetensors: " + message):
        read_safetensors(path)


def test_a_header_longer_than_the_file_is_refused(torch_file):
    data = torch_file.read_bytes()
    torch_file.write_bytes((10**6).to_bytes(8, "little") + data[8:])
    with pytest.raises(WeightsError, match=r"w\.safetensors: header length 1000000 does not fit in the file "
                                           r"\(\d+ bytes\): truncated or not a safetensors file"):
        read_safetensors(torch_file)


def test_a_missing_file_and_a_folder_are_refused(tmp_path):
    with pytest.raises(WeightsError, match=r"nothere\.safetensors: cannot read: No such file or directory"):
        read_safetensors(tmp_path / "nothere.safetensors")
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(WeightsError, match=r"dir\.safetensors: cannot read: Is a directory"):
        read_safetensors(tmp_path / "dir.safetensors")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt", ".pkl", ".tar"])
def test_every_pickle_suffix_is_refused_unread(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x80\x04not read")  # the reader must refuse it by name, before opening it
    with pytest.raises(WeightsError, match=rf"model\{suffix}: \{suffix} files are pickles, which trtnet never "
                                           rf"loads; convert it with `trtnet convert MODEL {re.escape(str(path))}`"):
        load_weights(Tiny(), path)


def test_unsigned_dtypes_are_read(tmp_path):
    torch = pytest.importorskip("torch", reason="files are written with safetensors.torch, as users write them")
    _torch_file(tmp_path / "u.safetensors", {"u16": torch.tensor([0, 1, 2], dtype=torch.uint16),
                                             "u32": torch.tensor([0, 1, 2], dtype=torch.uint32)})
    got = read_safetensors(tmp_path / "u.safetensors")
    assert got["u16"].dtype == np.uint16 and got["u32"].dtype == np.uint32
    np.testing.assert_array_equal(got["u32"], [0, 1, 2])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_values_warn_or_are_refused(tmp_path, bad):
    state = good_state()
    state["head.0.bias"][1] = bad
    path = tmp_path / "w.safetensors"
    save_safetensors(state, path)
    message = r"w\.safetensors: key 'head\.0\.bias' holds NaN or infinite values"
    with pytest.warns(UserWarning, match=message):
        load_weights(Tiny(), path)
    model = Tiny()
    with pytest.raises(WeightsError, match=message):
        load_weights(model, path, check_finite="error")
    assert all(p.value is None for _, p in model.named_parameters())  # a refused file changes nothing
    load_weights(Tiny(), path, check_finite="off")  # and the check can be turned off


def test_check_finite_must_be_known():
    with pytest.raises(WeightsError, match=r"check_finite must be 'warn', 'error' or 'off', not 'strict'"):
        load_weights(Tiny(), good_state(), check_finite="strict")


def test_a_file_of_another_model_names_file_and_keys(tmp_path):
    state = good_state()
    state["conv.weight"] = np.zeros((4, 3, 5, 5), np.float32)
    del state["head.0.bias"]
    save_safetensors(state, tmp_path / "other.safetensors")
    with pytest.raises(WeightsError, match=r"other\.safetensors: weights do not fit Tiny\n  missing key: head\.0\.bias"
                                           r"\n  shape mismatch: conv\.weight: expected \(4, 3, 3, 3\), file has "
                                           r"\(4, 3, 5, 5\)"):
        load_weights(Tiny(), tmp_path / "other.safetensors")
