"""Strict weight loading: every bad input raises a WeightsError naming the key or the file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trtnet
from trtnet import nn
from trtnet.errors import ConfigError, TrtnetError, WeightsError
from trtnet.weights import _MAX_DIMS, _read_into, load_weights, read_safetensors, save_safetensors


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
        "conv.weight",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "head.0.weight",
        "head.0.bias",
    ]


def test_round_trip_through_safetensors(tmp_path):
    state = good_state()
    save_safetensors(state, tmp_path / "w.safetensors")
    model = Tiny()
    load_weights(model, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(model.head[0].weight.data, state["head.0.weight"])


def test_reads_files_written_by_the_safetensors_library(tmp_path):
    torch = pytest.importorskip("torch", reason="the safetensors torch writer needs torch")
    from safetensors.torch import save_file

    tensors = {
        "a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "b": torch.ones(3, dtype=torch.bfloat16) * 1.5,
        "c": torch.tensor([1, 2], dtype=torch.int64),
        "d": torch.zeros(2, dtype=torch.float16),
    }
    save_file(tensors, str(tmp_path / "t.safetensors"))
    got = read_safetensors(tmp_path / "t.safetensors")
    for k, v in tensors.items():
        np.testing.assert_array_equal(got[k], v.float().numpy() if k == "b" else v.numpy())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("bn.running_var"), r"missing key: bn\.running_var"),
        (lambda s: s.update({"fc.weight": np.zeros(2, np.float32)}), r"unexpected key: fc\.weight"),
        (
            lambda s: s.update({"conv.weight": np.zeros((4, 3, 5, 5), np.float32)}),
            r"shape mismatch: conv\.weight: expected \(4, 3, 3, 3\), file has \(4, 3, 5, 5\)",
        ),
    ],
    ids=["missing", "unexpected", "wrong_shape"],
)
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
    header = edit(json.loads(data[8 : 8 + n]))
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])


@pytest.fixture
def torch_file(tmp_path):
    torch = pytest.importorskip("torch", reason="files are written with safetensors.torch, as users write them")
    path = tmp_path / "w.safetensors"
    _torch_file(path, {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4)})
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda h: {**h, "a": {**h["a"], "data_offsets": [0, 10**6]}},
            r"key 'a': data_offsets \[0, 1000000\] lie outside the data \(40 bytes\): the file is truncated or its "
            r"header lies",
        ),
        (lambda h: {**h, "a": {**h["a"], "shape": [3, 3]}}, r"key 'a': 24 bytes for F32 \[3, 3\], which needs 36"),
        (lambda h: {**h, "b": {**h["b"], "data_offsets": [8, 24]}}, r"keys 'a' and 'b' overlap in the data"),
        (
            lambda h: {**h, "a": {**h["a"], "dtype": "F8_E4M3"}},
            r"key 'a': unsupported dtype 'F8_E4M3' \(supported: F64",
        ),
        (lambda h: {**h, "a": {**h["a"], "shape": [2, -3]}}, r"key 'a': bad shape \[2, -3\]"),
        (lambda h: {**h, "a": {**h["a"], "dtype": ["F32"]}}, r"key 'a': unsupported dtype \['F32'\] \(supported: F64"),
        (lambda h: {**h, "a": {**h["a"], "data_offsets": [0]}}, r"key 'a': bad data_offsets \[0\]"),
        (lambda h: {**h, "a": [1, 2]}, r"key 'a': header entry is not an object"),
        (lambda h: {**h, "__metadata__": {"format": 1}}, r"corrupted header: __metadata__ must map strings to strings"),
        (lambda h: [h], r"corrupted header: expected a JSON object"),
        (
            lambda h: {**h, "a": {**h["a"], "shape": [10**300, 10**300]}},
            r"key 'a': shape \[1000000000.*\.\.\. is too large for numpy to represent",
        ),
        # An empty tensor whose other dimensions numpy cannot index: the byte count (0) alone does not catch it.
        (
            lambda h: {**h, "a": {**h["a"], "shape": [0, 2**70], "data_offsets": [0, 0]}},
            r"key 'a': shape \[0, 1180591620717411303424\] is too large for numpy to represent",
        ),
        (
            lambda h: {**h, "a": {**h["a"], "shape": [0, 2**62, 2**62], "data_offsets": [0, 0]}},
            r"key 'a': shape \[0, 4611686018427387904, 4611686018427387904\] is too large for numpy to represent",
        ),
        (
            lambda h: {**h, "a": {**h["a"], "shape": [2**62, 2]}},
            r"key 'a': shape \[4611686018427387904, 2\] is too large",
        ),
        (
            lambda h: {**h, "a": {**h["a"], "shape": [1] * (_MAX_DIMS - 1) + [2, 3]}},
            rf"key 'a': shape has {_MAX_DIMS + 1} dimensions; numpy \S+ allows at most {_MAX_DIMS}",
        ),
        (
            lambda h: {**h, "a": {**h["a"], "shape": [1] * 69 + [2, 3]}},
            rf"key 'a': shape has 71 dimensions; numpy \S+ allows at most {_MAX_DIMS}",
        ),
        (lambda h: {**h, "a": {**h["a"], "shape": [2, 3.0]}}, r"key 'a': bad shape \[2, 3\.0\]"),
        (lambda h: {**h, "a": {**h["a"], "shape": [True, 6]}}, r"key 'a': bad shape \[True, 6\]"),
        (lambda h: {**h, "a": {**h["a"], "shape": ["2", 3]}}, r"key 'a': bad shape \['2', 3\]"),
        (lambda h: {**h, "a": {**h["a"], "shape": 6}}, r"key 'a': bad shape 6"),
    ],
    ids=[
        "offsets_outside",
        "size_lies",
        "overlap",
        "dtype",
        "negative_dim",
        "dtype_list",
        "offsets_form",
        "entry_form",
        "metadata",
        "not_object",
        "huge_shape",
        "empty_but_huge",
        "empty_but_overflowing",
        "bytes_overflow",
        "one_dim_too_many",
        "71_dims",
        "float_dim",
        "bool_dim",
        "string_dim",
        "not_a_list",
    ],
)
def test_a_header_that_lies_is_refused(torch_file, edit, message):
    _header_swap(torch_file, edit)
    with pytest.raises(WeightsError, match=r"w\.safetensors: " + message):
        read_safetensors(torch_file)


@pytest.mark.parametrize(
    "header, message",
    [
        (b"{not json", r"corrupted header: not valid JSON \(Expecting property name"),
        (b"\xff\xfe{}", r"corrupted header: not valid JSON \('utf-8' codec can't decode"),
        (b"[" * 100_000, r"corrupted header: not valid JSON \(maximum recursion depth"),
        (b'{"a": {"shape": [' + b"9" * 5000 + b"]}}", r"corrupted header: not valid JSON \(Exceeds the limit"),
    ],
    ids=["syntax", "not_utf8", "deeply_nested", "huge_integer"],
)
def test_a_corrupted_header_is_refused(tmp_path, header, message):
    path = tmp_path / "w.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(WeightsError, match=r"w\.safetensors: " + message):
        read_safetensors(path)


def test_a_header_longer_than_the_file_is_refused(torch_file):
    data = torch_file.read_bytes()
    torch_file.write_bytes((10**6).to_bytes(8, "little") + data[8:])
    with pytest.raises(
        WeightsError,
        match=r"w\.safetensors: header length 1000000 does not fit in the file "
        r"\(\d+ bytes\): truncated or not a safetensors file",
    ):
        read_safetensors(torch_file)


@pytest.mark.parametrize("first", [0x80, 0x08], ids=["pickle-byte", "protobuf-byte"])
def test_a_file_cut_short_is_called_truncated_whatever_its_header_length_begins_with(tmp_path, first):
    # A header of 0x7080 bytes begins (little-endian) with 0x80, a pickle's magic byte; cut inside the header,
    # such a file was called "a Python pickle" (2 in 256 cut downloads). It is a safetensors file cut short.
    length = 0x7000 + first
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "w.safetensors"
    whole = length.to_bytes(8, "little") + header.ljust(length) + bytes(8)
    for cut in (1000, 8):  # inside the header, and right after its length
        path.write_bytes(whole[:cut])
        with pytest.raises(WeightsError, match=rf"w\.safetensors: header length {length} does not fit .*\({cut} bytes"):
            read_safetensors(path)


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
    with pytest.raises(
        WeightsError,
        match=rf"model\{suffix}: \{suffix} files are pickles, which trtnet never "
        rf"loads; convert it with `trtnet convert MODEL {re.escape(str(path))}`",
    ):
        load_weights(Tiny(), path)


def test_unsigned_dtypes_are_read(tmp_path):
    torch = pytest.importorskip("torch", reason="files are written with safetensors.torch, as users write them")
    _torch_file(
        tmp_path / "u.safetensors",
        {"u16": torch.tensor([0, 1, 2], dtype=torch.uint16), "u32": torch.tensor([0, 1, 2], dtype=torch.uint32)},
    )
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


def test_float64_values_beyond_float32_s_range_are_named(tmp_path):
    """The network holds weights in float32, where a float64 1e300 is inf: --strict built such a file, and the
    model's outputs were all NaN. Said as what it is; 3e38 still fits."""
    state = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in good_state().items()}
    state["head.0.weight"][1, 2] = 3e38
    save_safetensors(state, tmp_path / "fits.safetensors")
    load_weights(Tiny(), tmp_path / "fits.safetensors", check_finite="error")
    state["head.0.weight"][0, 1] = -1e300
    save_safetensors(state, tmp_path / "w.safetensors")
    message = r"w\.safetensors: key 'head\.0\.weight' holds values beyond float32's range \(infinite in the network\)"
    with pytest.raises(WeightsError, match=message):
        load_weights(Tiny(), tmp_path / "w.safetensors", check_finite="error")
    with pytest.warns(UserWarning, match=message):
        load_weights(Tiny(), tmp_path / "w.safetensors")


def test_a_variance_below_minus_eps_is_named_where_the_batch_norm_is_emitted():
    """sqrt of a negative variance made NaN scales, with numpy's warning only, and the build went on."""
    from trtnet.errors import NetworkError
    from trtnet.zoo import resnet18

    model = resnet18(weights=None)
    model.layer1[0].bn2.running_var.value[2] = -0.5
    with pytest.raises(NetworkError, match=r"layer1\.0\.bn2\.running_var: channel 2 is -0\.5: a variance plus eps"):
        trtnet.reference(model, np.zeros((1, 3, 32, 32), np.float32))
    model.layer1[0].bn2.running_var.value[2] = np.nan  # load_weights's finite check says so (warn or refuse)
    trtnet.reference(model, np.zeros((1, 3, 32, 32), np.float32))


@pytest.mark.parametrize("value, shown", [("strict", "'strict'"), (None, "None"), (["warn"], r"\['warn'\]")])
def test_check_finite_must_be_known(value, shown):
    with pytest.raises(
        ConfigError,
        match=rf"^load_weights: check_finite = {shown} is not allowed: expected 'warn', "
        r"'error' or 'off'$",
    ):
        load_weights(Tiny(), good_state(), check_finite=value)


def test_config_error_names_field_value_and_what_is_allowed():
    positive = lambda v: type(v) is int and v > 0  # noqa: E731
    assert ConfigError.check("hidden_size", 768, "a positive integer", positive) == 768
    assert issubclass(ConfigError, TrtnetError)
    with pytest.raises(
        ConfigError,
        match=r"^config\.json: hidden_size = '768' is not allowed: expected a positive "
        r"integer$",
    ):
        ConfigError.check("hidden_size", "768", "a positive integer", positive, source="config.json")
    # A test that itself fails on a value of the wrong type (str > int) counts as "not allowed", not as a crash.
    with pytest.raises(ConfigError, match=r"^eps = 'abc' is not allowed: expected a number above 0$"):
        ConfigError.check("eps", "abc", "a number above 0", lambda v: v > 0)
    with pytest.raises(ConfigError, match=r"^name = 'x{79}\.\.\. is not allowed: expected a short name$"):
        ConfigError.check("name", "x" * 10**6, "a short name", lambda v: len(v) < 10)
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(ConfigError, match=r"^act = <list nested too deep to print> is not allowed"):
        ConfigError.check("act", nested, "a string", lambda v: isinstance(v, str))


def test_a_file_of_another_model_names_file_and_keys(tmp_path):
    state = good_state()
    state["conv.weight"] = np.zeros((4, 3, 5, 5), np.float32)
    del state["head.0.bias"]
    save_safetensors(state, tmp_path / "other.safetensors")
    with pytest.raises(
        WeightsError,
        match=r"other\.safetensors: weights do not fit Tiny\n  missing key: head\.0\.bias"
        r"\n  shape mismatch: conv\.weight: expected \(4, 3, 3, 3\), file has "
        r"\(4, 3, 5, 5\)",
    ):
        load_weights(Tiny(), tmp_path / "other.safetensors")


# -- duplicate keys: the JSON decoder keeps the last one silently; the safetensors library refuses the file --


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, '
            '"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}, '
            '"b": {"dtype": "F32", "shape": [4], "data_offsets": [24, 40]}}',
            r"key 'a' appears twice",
        ),
        (
            '{"a": {"dtype": "F32", "shape": [2, 3], "shape": [6], "data_offsets": [0, 24]}, '
            '"b": {"dtype": "F32", "shape": [4], "data_offsets": [24, 40]}}',
            r"key 'shape' appears twice",
        ),
        (
            '{"__metadata__": {"format": "pt", "format": "np"}, '
            '"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, '
            '"b": {"dtype": "F32", "shape": [4], "data_offsets": [24, 40]}}',
            r"key 'format' appears twice",
        ),
    ],
    ids=["tensor", "field", "metadata"],
)
def test_duplicate_keys_are_refused(torch_file, text, message):
    data = torch_file.read_bytes()
    n = int.from_bytes(data[:8], "little")
    raw = text.encode()
    torch_file.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])
    with pytest.raises(WeightsError, match=r"w\.safetensors: corrupted header: " + message):
        read_safetensors(torch_file)


def test_as_many_dimensions_as_numpy_allows_are_read(torch_file):
    _header_swap(torch_file, lambda h: {**h, "a": {**h["a"], "shape": [1] * (_MAX_DIMS - 2) + [2, 3]}})
    assert read_safetensors(torch_file)["a"].reshape(2, 3).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "w.safetensors")
    # In a child, so that a reader that waits for a writer fails the test instead of hanging it.
    code = (
        "import sys\nfrom trtnet.weights import read_safetensors\nfrom trtnet.errors import WeightsError\n"
        "try:\n    read_safetensors(sys.argv[1])\nexcept WeightsError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "w.safetensors")],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(),
    )
    assert out.stdout.strip() == f"{tmp_path / 'w.safetensors'}: cannot read: not a regular file", out.stderr


def test_a_link_to_a_device_is_refused_unread(tmp_path):
    (tmp_path / "w.safetensors").symlink_to("/dev/zero")  # read without bound, this would fill the memory
    with pytest.raises(WeightsError, match=r"w\.safetensors: cannot read: not a regular file"):
        read_safetensors(tmp_path / "w.safetensors")


# -- a file changed after loading: parameters are the process's own memory, not a view of the file ---------


def _child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}


# Loads (checking for NaN), changes the file in place in one of three ways, then uses every parameter. With
# parameters mapped from the file, "truncate" kills the child with SIGBUS, and the others show the new bytes.
_CHANGE_AFTER_LOAD = """
import os, shutil, sys
import numpy as np
from trtnet import nn
from trtnet.weights import load_weights

path, change, other = sys.argv[1:4]
model = nn.Linear(256, 512)
load_weights(model, path, check_finite="error")
sums = [float(p.value.sum(dtype=np.float64)) for _, p in model.named_parameters()]
n = int.from_bytes(open(path, "rb").read(8), "little")
if change == "truncate":
    os.truncate(path, 8 + n)  # the header stays, every data page is gone
elif change == "cp":
    shutil.copyfile(other, path)  # what `cp other path` does: truncate the same inode, then write
elif change == "nan":
    with open(path, "r+b") as f:  # NaN written over the data after the finite check passed
        f.seek(8 + n)
        f.write(np.full((os.path.getsize(path) - 8 - n) // 4, np.nan, np.float32).tobytes())
print(all(np.isfinite(p.value).all() for _, p in model.named_parameters()),
      [float(p.value.sum(dtype=np.float64)) for _, p in model.named_parameters()] == sums)
"""


@pytest.mark.parametrize("change", ["truncate", "cp", "nan"])
def test_parameters_survive_the_file_changing_after_loading(tmp_path, change):
    torch = pytest.importorskip("torch", reason="files are written with safetensors.torch, as users write them")
    path, other = tmp_path / "w.safetensors", tmp_path / "new.safetensors"
    _torch_file(path, {"weight": torch.randn(512, 256), "bias": torch.randn(512)})  # half a megabyte
    _torch_file(other, {"weight": torch.randn(512, 256) + 100, "bias": torch.randn(512)})
    out = subprocess.run(
        [sys.executable, "-c", _CHANGE_AFTER_LOAD, str(path), change, str(other)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_child_env(),
    )
    assert out.returncode == 0, f"the child died (return code {out.returncode}): {out.stderr[-2000:]}"
    assert out.stdout.split() == ["True", "True"]  # finite, and the values that were loaded and checked


def test_a_file_that_ends_while_it_is_read_is_refused(tmp_path):
    """The reader's own check, for a file cut short between taking its size and reading its data."""
    (tmp_path / "w.safetensors").write_bytes(bytes(10))
    with (
        open(tmp_path / "w.safetensors", "rb", buffering=0) as f,
        pytest.raises(
            WeightsError, match=r"w\.safetensors: the file changed while it was being read \(it ends early\)"
        ),
    ):
        _read_into(tmp_path / "w.safetensors", f, memoryview(bytearray(20)), 4)


def test_arrays_read_are_read_only_and_their_own(torch_file):
    state = read_safetensors(torch_file)
    assert all(not a.flags.writeable and a.flags.owndata and a.flags.aligned for a in state.values())
    assert list(state) == ["a", "b"]


@pytest.mark.parametrize(
    "change, shown",
    [
        (lambda a: a.astype(np.complex64), "complex64"),
        (lambda a: a.astype(str), "<U"),
        (lambda a: a.astype(object), "object"),
    ],
    ids=["complex", "strings", "objects"],
)
def test_a_mapping_of_values_that_are_not_real_numbers_is_refused(change, shown):
    """numpy cast these to float32 at emission, silently: the imaginary part dropped, "0.5" parsed."""
    state = good_state()
    state["head.0.weight"] = change(state["head.0.weight"])
    model = Tiny()
    with pytest.raises(WeightsError, match=re.escape(f"state dict: key 'head.0.weight' ({shown}")) as e:
        load_weights(model, state)
    assert str(e.value).endswith("does not hold real numbers (bool, integer or float)")
    assert model.head[0].weight.value is None  # refused before anything was assigned


@pytest.mark.parametrize(
    "target, reason",
    [("folder.safetensors", " there: it is a directory"), ("missing/w.safetensors", ": No such file or directory")],
)
def test_save_safetensors_names_the_target_not_its_temporary(tmp_path, target, reason):
    """This was an OSError naming `.folder.safetensors.123.tmp`."""
    (tmp_path / "folder.safetensors").mkdir()
    with pytest.raises(WeightsError) as e:
        save_safetensors(good_state(), tmp_path / target)
    assert str(e.value) == f"{tmp_path / target}: cannot write the weights{reason}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.safetensors"]


def test_a_mapping_of_ml_dtypes_bfloat16_is_taken():
    """ml_dtypes' bfloat16 reports numpy kind 'V' but is a real number type: it loads, widened exactly."""
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes gives numpy a bfloat16")
    state = good_state()
    state["head.0.weight"] = state["head.0.weight"].astype(ml_dtypes.bfloat16)
    model = Tiny()
    load_weights(model, state)
    np.testing.assert_array_equal(model.head[0].weight.data, state["head.0.weight"].astype(np.float32))


@pytest.mark.parametrize(
    "key, shown", [(1, "1 is not a string (int)"), (b"conv.weight", "b'conv.weight' is not a string (bytes)")]
)
def test_keys_that_are_not_strings_are_named(key, shown):
    """These were AttributeError / TypeError from the layout check's key.startswith."""
    state = good_state()
    state[key] = state.pop("conv.weight")
    with pytest.raises(WeightsError, match=re.escape(f"state dict: key {shown}")):
        load_weights(Tiny(), state)


@pytest.mark.parametrize("source", [None, 3, [("conv.weight", np.zeros(1))]], ids=["none", "int", "list_of_pairs"])
def test_weights_that_are_neither_path_nor_mapping_are_a_config_error(source):
    with pytest.raises(
        ConfigError,
        match=r"load_weights: weights = .* is not allowed: expected a safetensors file's "
        r"path, or a mapping of key -> array",
    ):
        load_weights(Tiny(), source)


def test_a_torchvision_efficientnet_file_given_to_the_timm_entry_says_what_it_is(tmp_path):
    """Issue 20: the zoo's efficientnet_b0 is timm's; torchvision's state_dict (`features.0.0.weight`, ...) is named."""
    import torchvision

    from trtnet.parity import export_state
    from trtnet.zoo import efficientnet_b0, resnet18

    path = export_state(torchvision.models.efficientnet_b0(weights=None), tmp_path / "tv_effnet.safetensors")
    with pytest.raises(WeightsError) as e:
        efficientnet_b0(weights=path)
    message = str(e.value)
    assert f"{path}: weights do not fit EfficientNet" in message
    assert "looks like a torchvision EfficientNet state_dict (keys features.0.0.weight" in message
    assert "re-express timm's EfficientNet" in message
    with pytest.raises(WeightsError) as e:  # whichever entry it is given to
        resnet18(weights=path)
    assert "looks like a torchvision EfficientNet state_dict" in str(e.value)


@pytest.mark.parametrize(
    "state, metadata, said",
    [
        (
            {"w": np.zeros(2, np.float32)},
            {"epoch": 3},
            r"metadata entry \('epoch', 3\): safetensors takes strings only",
        ),
        ({"__metadata__": np.zeros(2, np.float32)}, None, r"key '__metadata__': the name is the format's own"),
        ({1: np.zeros(2, np.float32), "1": np.ones(2, np.float32)}, None, r"key 1: safetensors takes strings only"),
        ({"w": np.zeros(2, np.float32)}, "ab", r"the state and any metadata are mappings"),  # written as {a: b}
        ([np.zeros(2, np.float32)], None, r"the state and any metadata are mappings"),
    ],
)
def test_what_the_reader_would_refuse_is_not_written(tmp_path, state, metadata, said):
    """Non-string metadata, a tensor named __metadata__ and keys 1 and '1' were written, and then refused by
    read_safetensors (and by the safetensors library): a file no one could load, the old one replaced."""
    path = tmp_path / "w.safetensors"
    save_safetensors({"good": np.ones(3, np.float32)}, path)
    before = path.read_bytes()
    with pytest.raises(WeightsError, match=said):
        save_safetensors(state, path, metadata)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: trtnet.load_weights("x", {}), "load_weights: model = 'x' is not allowed: expected a trtnet model"),
        (lambda m: trtnet.init_random(None), "init_random: model = None is not allowed"),
        (lambda m: trtnet.init_random(m, seed=-1), "init_random: seed = -1 is not allowed: expected a whole number"),
        (lambda m: trtnet.init_random(m, seed="a"), "init_random: seed = 'a' is not allowed"),
        (lambda m: trtnet.read_safetensors(5), "read_safetensors: path = 5 is not allowed: expected a path"),
        (lambda m: trtnet.read_safetensors(None), "read_safetensors: path = None is not allowed"),
    ],
    ids=["load_weights_model", "init_random_model", "negative_seed", "string_seed", "path_5", "path_none"],
)
def test_arguments_of_the_wrong_kind_are_a_config_error_naming_them(call, message):
    """They were AttributeError ('bind'), numpy's ValueError and TypeError from deep inside."""
    from trtnet.zoo import resnet18

    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        call(resnet18(weights=None, num_classes=3))
