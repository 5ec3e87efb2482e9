"""trtnet/fileread.py: only regular files are read, never past the size checked first; JSON without a key twice;
.npz arrays without pickles."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from tests.test_fileio import KINDS, _special, guarded
from trtnet import fileread
from trtnet.errors import EngineError, WeightsError


def test_file_kind_names_what_a_path_is(tmp_path):
    assert fileread.file_kind(os.stat(tmp_path).st_mode) == "a directory"
    assert fileread.file_kind(os.stat("/dev/zero").st_mode) == "a character device"
    assert fileread.file_kind(os.stat(_special(tmp_path / "f", "fifo")).st_mode) == "a FIFO"


@pytest.mark.parametrize("kind", KINDS)
def test_open_regular_refuses_anything_but_a_regular_file_unread(tmp_path, kind):
    path = _special(tmp_path / "x", kind)
    with guarded(), pytest.raises(fileread.NotRegularFile) as e, fileread.open_regular(path):
        pass
    assert e.value.kind == KINDS[kind] and e.value.filename == str(path)
    assert e.value.strerror == ("Is a directory" if kind == "directory" else "not a regular file")
    (tmp_path / "r").write_bytes(b"12345")
    with fileread.open_regular(tmp_path / "r") as (f, st):
        assert (f.read(), st.st_size) == (b"12345", 5)


@pytest.mark.parametrize("kind", KINDS)
def test_read_regular_refuses_special_files(tmp_path, kind):
    path = _special(tmp_path / "x", kind)
    with guarded(), pytest.raises(EngineError, match=f"^{path}: the plan is {KINDS[kind]}, not a regular file$"):
        fileread.read_regular(path, 1 << 20, "plan")


@pytest.mark.parametrize("kind", KINDS)
def test_read_npz_refuses_special_files(tmp_path, kind):
    path = _special(tmp_path / "x", kind)
    with guarded(), pytest.raises(EngineError, match=f"^{path}: the data is {KINDS[kind]}, not a regular file$"):
        fileread.read_npz(path, "data", EngineError)


def test_read_npz_reads_named_arrays_and_names_what_it_cannot(tmp_path):
    good = tmp_path / "a.npz"
    np.savez(good, x=np.arange(3.0), y=np.ones((2, 2), np.int32))
    got = fileread.read_npz(good, "data", EngineError)
    assert sorted(got) == ["x", "y"] and got["x"].tolist() == [0.0, 1.0, 2.0] and got["y"].dtype == np.int32
    lone = tmp_path / "b.npz"
    with lone.open("wb") as f:
        np.save(f, np.arange(3.0))
    with pytest.raises(EngineError, match=f"^{lone}: the data is a .npy array, not an .npz: write it with np.savez"):
        fileread.read_npz(lone, "data", EngineError)
    pickled = tmp_path / "c.npz"
    np.savez(pickled, o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(EngineError, match=f"^{pickled}: the data is not a readable .npz of arrays"):
        fileread.read_npz(pickled, "data", EngineError)  # object arrays would need unpickling: refused
    with pytest.raises(EngineError, match=f"^{tmp_path / 'none.npz'}: no such data$"):
        fileread.read_npz(tmp_path / "none.npz", "data", EngineError)


def test_read_npz_says_a_file_of_another_kind_is_no_npz(tmp_path):
    """numpy calls any file that is neither a zip nor an .npy "pickled (object) data": a JSON file given as
    --inputs was said to need unpickling."""
    cases = {"x.json": b'{"x": [1, 2]}', "e.npz": b""}
    for name, said in (("x.json", "starts with b'{\"x\": '"), ("e.npz", "is empty")):
        path = tmp_path / name
        path.write_bytes(cases[name])
        with pytest.raises(EngineError, match=f"^{path}: the data is not an .npz \\(the file {said}\\): write it"):
            fileread.read_npz(path, "data", EngineError)
    cut = tmp_path / "cut.npz"  # a zip cut short is still said as numpy's reader says it
    np.savez(cut, x=np.arange(100.0))
    cut.write_bytes(cut.read_bytes()[:60])
    with pytest.raises(EngineError, match=f"^{cut}: the data is not a readable .npz of arrays"):
        fileread.read_npz(cut, "data", EngineError)


def test_read_npz_refuses_a_member_that_is_no_array(tmp_path):
    # np.load hands back the bytes of a member that is not an .npy; check and calibrate then failed on bytes with
    # "internal error: AttributeError".
    path = tmp_path / "odd.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", b"hello, not an array")
    with pytest.raises(EngineError, match=f"^{path}: the data holds 'x', which is not a numpy array"):
        fileread.read_npz(path, "data", EngineError)


def test_read_regular_bounds_and_checks_the_size_before_reading(tmp_path):
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(8 << 30)  # sparse: reading it would take 8 GiB
    with guarded(), pytest.raises(EngineError, match=f"^{path}: the config is {8 << 30} bytes, more than the 100 a"):
        fileread.read_regular(path, 100, "config")
    with pytest.raises(EngineError, match=f"^{path}: truncated or damaged plan: {8 << 30} bytes, its metadata says 7"):
        fileread.read_regular(path, 1 << 40, "plan", sizes=(7,))
    (tmp_path / "ok").write_bytes(b"1234567")
    assert fileread.read_regular(tmp_path / "ok", 7, sizes=(7,)) == b"1234567"
    with pytest.raises(WeightsError, match=f"^{tmp_path / 'no'}: cannot read the file: No such file") as e:
        fileread.read_regular(tmp_path / "no", 7, error=WeightsError)
    assert isinstance(e.value.__cause__, FileNotFoundError)  # for callers that tell a missing file apart


def test_parse_json_refuses_a_key_twice():
    assert fileread.parse_json(b'{"a": {"b": 1}}') == {"a": {"b": 1}}
    with pytest.raises(fileread.DuplicateKey, match=r"^the key 'b' appears twice in one object$") as e:
        fileread.parse_json('{"a": {"b": 1, "b": 2}}')
    assert e.value.key == "b" and isinstance(e.value, ValueError)
    with pytest.raises(fileread.DuplicateKey, match=r"^the key 'kkkk.*'\.\.\. appears twice"):
        fileread.parse_json(json.dumps({"k" * 10_000: 1})[:-1] + ", " + json.dumps("k" * 10_000) + ": 2}")
    with pytest.raises(UnicodeDecodeError):
        fileread.parse_json(b'{"a": "\xff"}')


def test_read_json_names_the_file_and_the_fault(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"x": 1}')
    assert fileread.read_json(path, 100, "metadata") == {"x": 1}
    for text, fault in [
        ('{"x": 1, "x": 2}', "ValueError: the key 'x' appears twice in one object"),
        ("{", "JSONDecodeError: "),
        ("[" * 100_000 + "]" * 100_000, "RecursionError: "),
    ]:
        path.write_text(text)
        with pytest.raises(EngineError, match=f"^{path}: unreadable metadata \\({fault}"):
            fileread.read_json(path, 1 << 20, "metadata")


# -- the package's readers and writers -------------------------------------------------------------------------
