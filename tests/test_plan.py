"""Plan files: a pair (plan + sidecar) is replaced all-or-nothing whatever fails when; loading reads only
regular files of the stated size; every malformed sidecar is an `EngineError` naming the field."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import trtnet
import trtnet.fileio
from tests.runtime_models import two_inputs
from trtnet.errors import EngineError
from trtnet.runtime.engine import Engine
from trtnet.runtime.plan import sidecar_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def old() -> Engine:
    return trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache=False)


@pytest.fixture(scope="module")
def new() -> Engine:
    return trtnet.build(two_inputs(1), batch_size=(1, 3, 4), precision="fp32", cache=False)


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def which(path: Path, old: Engine, new: Engine) -> str:
    """'old' or 'new': the pair that loads from `path` (with its own specs: never a mixture)."""
    got = Engine.load(path)
    for name, e in (("old", old), ("new", new)):
        if got.plan == e.plan:
            assert (got.inputs, got.outputs) == (e.inputs, e.outputs)
            return name
    raise AssertionError("the plan loaded is neither the old nor the new one")


@contextlib.contextmanager
def fail_at(monkeypatch, module, name: str, n: int, exc: BaseException):
    """`module.name` raises `exc` on its n-th call (1-based); yields the list of calls made."""
    real = getattr(module, name)
    calls: list[int] = []

    def faulty(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, faulty)
    try:
        yield calls
    finally:
        monkeypatch.setattr(module, name, real)


def _count_calls(monkeypatch, tmp_path, engine, name: str) -> int:
    path = tmp_path / "count.plan"
    engine.save(path)
    with fail_at(monkeypatch, os, name, 0, OSError()) as calls:
        engine.save(path)
    return len(calls)


FAULTS = {
    "disk full": lambda: OSError(errno.ENOSPC, "No space left on device"),
    "SIGINT": KeyboardInterrupt,
    "a bug": lambda: RuntimeError("injected"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("call", ["replace", "fsync", "open", "write"])
def test_a_failure_at_any_step_leaves_the_old_pair_or_the_new_one(old, new, tmp_path, monkeypatch, call, fault):
    """Every os.replace/os.fsync/os.open/os.write call of a save fails in turn (a full disk, an interrupt, a
    bug): afterwards the pair loads, and it is the old one or the new one; no temporary is left."""
    n_calls = _count_calls(monkeypatch, tmp_path, new, call)
    assert n_calls >= (3 if call == "replace" else 1)  # replace: sidecar, plan, the sidecar's tidy-up
    outcomes = []
    for n in range(1, n_calls + 1):
        folder = tmp_path / f"{call}{n}"
        folder.mkdir()
        path = old.save(folder / "m.plan")
        with fail_at(monkeypatch, os, call, n, FAULTS[fault]()):
            try:
                new.save(path)
                raised = None
            except BaseException as e:  # noqa: BLE001  what each fault becomes is checked below
                raised = e
        outcome = which(path, old, new)
        outcomes.append(outcome)
        assert temporaries(folder) == []
        if raised is None:  # a save that returns has committed
            assert outcome == "new", n
        elif outcome == "old":
            if fault == "disk full":  # an OS error is an EngineError naming the target, not the temporary
                assert isinstance(raised, EngineError)
                assert re.match(rf"{re.escape(str(folder))}/m\.plan(\.json)?: cannot ", str(raised)), raised
                assert ".tmp" not in str(raised)
            else:
                assert type(raised) is type(FAULTS[fault]())
    # The first call of each kind comes before the plan's rename, the last one after it: both are seen.
    assert outcomes[0] == "old" and outcomes[-1] == "new", outcomes
    if call == "replace":
        assert outcomes == ["old", "old", "new"]


@pytest.mark.parametrize("call", ["replace", "fsync"])
def test_a_failed_save_of_an_interrupted_save_still_loads(old, new, tmp_path, monkeypatch, call):
    """A save stopped after its sidecar step, then another save stopped anywhere: still a whole pair."""
    n_calls = _count_calls(monkeypatch, tmp_path, new, call)
    for n in range(1, n_calls + 1):
        folder = tmp_path / f"{call}{n}"
        folder.mkdir()
        path = old.save(folder / "m.plan")
        with fail_at(monkeypatch, os, "replace", 2, KeyboardInterrupt()), pytest.raises(KeyboardInterrupt):
            new.save(path)  # the sidecar describes both, the plan is still the old one
        assert which(path, old, new) == "old"
        with fail_at(monkeypatch, os, call, n, KeyboardInterrupt()):
            with contextlib.suppress(KeyboardInterrupt):
                old.save(path)
        assert which(path, old, new) in ("old",)  # both plans here are the old one's bytes
        with fail_at(monkeypatch, os, call, n, KeyboardInterrupt()):
            with contextlib.suppress(KeyboardInterrupt):
                new.save(path)
        assert which(path, old, new) in ("old", "new")
        assert temporaries(folder) == []


def test_the_sidecar_is_tidy_after_a_save(old, new, tmp_path):
    path = old.save(tmp_path / "m.plan")
    new.save(path)
    meta = json.loads(sidecar_path(path).read_text())
    assert "previous" not in meta and meta["plan_bytes"] == len(new.plan)


def test_a_plan_is_not_saved_over_another_plan_s_metadata(old, new, tmp_path):
    """`build -o good.plan.json` replaced good.plan's sidecar with plan bytes: good.plan no longer loaded."""
    path = old.save(tmp_path / "good.plan")
    before = sidecar_path(path).read_bytes()
    with pytest.raises(EngineError, match=r"good.plan.json: this is the metadata of the plan good.plan; give"):
        new.save(sidecar_path(path))
    # The mirror: a plan saved as `good` would write its metadata over the plan good.json.
    other = old.save(tmp_path / "good.json")
    with pytest.raises(EngineError, match=r"good.json: this is the plan good.json, its metadata good.json.json"):
        new.save(tmp_path / "good")
    assert Engine.load(other).plan == old.plan and not (tmp_path / "good").exists()
    assert sidecar_path(path).read_bytes() == before and Engine.load(path).plan == old.plan
    assert not (tmp_path / "good.plan.json.json").exists()
    new.save(tmp_path / "notes.json")  # a .json of no plan is only a name
    new.save(tmp_path / "y")  # and a name shorter than ".json" is no sidecar's


@pytest.mark.parametrize("where", ["plan", "sidecar"])
def test_a_directory_at_either_path_is_refused_before_anything_changes(old, new, tmp_path, where):
    path = old.save(tmp_path / "m.plan")
    target = path if where == "plan" else sidecar_path(path)
    keep = path.read_bytes() if where == "sidecar" else sidecar_path(path).read_bytes()
    target.unlink()
    target.mkdir()
    with pytest.raises(EngineError, match=re.escape(f"{target}: cannot write the engine there: it is a directory")):
        new.save(path)
    assert target.is_dir() and temporaries(tmp_path) == []
    assert (sidecar_path(path) if where == "plan" else path).read_bytes() == keep


def test_a_folder_that_cannot_be_written_names_the_target(old, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(EngineError, match=re.escape(f"{tmp_path}/file/m.plan: cannot write the plan: Not a directory")):
        old.save(tmp_path / "file" / "m.plan")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root (or Windows) writes into read-only folders")
def test_a_read_only_folder_names_the_target(old, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(EngineError, match=re.escape(f"{folder}/m.plan: cannot write the plan: Permission denied")):
            old.save(folder / "m.plan")
    finally:
        folder.chmod(0o700)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_dead_writers_are_removed(old, tmp_path):
    host = trtnet.fileio._HOST
    dead = tmp_path / f".m.plan.{host}.{_dead_pid()}.0a1b2c3d.tmp"
    live = tmp_path / f".m.plan.{host}.{os.getpid()}.0a1b2c3d.tmp"  # a writer still at work: kept
    aged = tmp_path / ".m.plan.json.otherhost.12345.0a1b2c3d.tmp"  # another machine's, two hours old
    other = tmp_path / f".n.plan.{host}.{_dead_pid()}.0a1b2c3d.tmp"  # another target's: not this save's business
    for p in (dead, live, aged, other):
        p.write_bytes(b"partial")
    os.utime(aged, (time.time() - 7200, time.time() - 7200))
    old.save(tmp_path / "m.plan")
    assert temporaries(tmp_path) == sorted([live.name, other.name])


def test_a_killed_writer_leaves_whole_files_and_the_next_save_sweeps_its_temporaries(old, new, tmp_path):
    """A real SIGKILL between the sidecar's rename and the plan's: the old pair still loads, the next save in
    the folder removes the dead writer's temporary."""
    path = old.save(tmp_path / "m.plan")
    new.save(tmp_path / "new.plan")
    script = (
        "import os, signal, sys\nfrom trtnet import Engine\n"
        "e = Engine.load(sys.argv[2])\nreal = os.replace\ncalls = []\n"
        "def replace(a, b):\n    calls.append(b)\n    if len(calls) == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real(a, b)\nos.replace = replace\ne.save(sys.argv[1])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "new.plan")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert which(path, old, new) == "old"
    assert len([t for t in temporaries(tmp_path) if t.startswith(".m.plan.")]) == 1  # the plan's, left behind
    new.save(path)
    assert which(path, old, new) == "new" and temporaries(tmp_path) == []


# -- loading: regular files only, bounded reads, every field checked -------------------------------------------


@contextlib.contextmanager
def no_hang(seconds: int = 10):
    def alarm(*_):
        raise AssertionError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("which_file", ["plan", "sidecar"])
@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "directory"])
def test_only_regular_files_are_read(old, tmp_path, which_file, kind):
    path = old.save(tmp_path / "m.plan")
    target = path if which_file == "plan" else sidecar_path(path)
    target.unlink()
    if kind == "dev_zero":
        target.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    what = {"plan": "plan", "sidecar": "metadata"}[which_file]
    said = {"dev_zero": "a character device", "fifo": "a FIFO", "directory": "a directory"}[kind]
    with no_hang(), pytest.raises(EngineError, match=re.escape(f"{target}: the {what} is {said}, not a regular file")):
        Engine.load(path)


def test_the_plan_size_is_checked_before_it_is_read(old, tmp_path, monkeypatch):
    path = old.save(tmp_path / "m.plan")
    with open(path, "ab") as f:
        f.truncate(10 * 2**30)  # a sparse 10 GiB file: reading it would take that much memory
    n = len(old.plan)
    with pytest.raises(
        EngineError, match=re.escape(f"m.plan: truncated or damaged plan: {10 * 2**30} bytes, its metadata says {n}")
    ):
        Engine.load(path)


def test_an_oversized_sidecar_is_not_read(old, tmp_path):
    path = old.save(tmp_path / "m.plan")
    with open(sidecar_path(path), "ab") as f:
        f.truncate(64 * 2**20)
    with pytest.raises(
        EngineError,
        match=re.escape(f"the metadata is {64 * 2**20} bytes, more than the {16 * 2**20} a metadata can be"),
    ):
        Engine.load(path)


def _set(meta: dict, dotted: str, value) -> None:
    *head, last = dotted.split(".")
    for k in head:
        meta = meta[int(k)] if isinstance(meta, list) else meta[k]
    if isinstance(meta, list):
        meta[int(last)] = value
    else:
        meta[last] = value


# (field, value, the message's tail: pinned)
MALFORMED = [
    ("plan_bytes", "abc", "plan_bytes is 'abc', expected a whole number in [1, 4611686018427387904]"),
    ("plan_bytes", 1e400, "plan_bytes is inf, expected a whole number in [1, "),
    ("plan_bytes", -5, "plan_bytes is -5, expected a whole number in [1, "),
    ("plan_bytes", True, "plan_bytes is True, expected a whole number"),
    ("plan_bytes", 2**70, "plan_bytes is 1180591620717411303424, expected a whole number"),
    ("plan_sha256", 5, "plan_sha256 is 5, expected 64 lowercase hex digits"),
    ("num_layers", [1], "num_layers is [1], expected a whole number in [0, "),
    ("build_seconds", float("nan"), "build_seconds is nan, expected a finite number >= 0"),
    ("backend", {"a": 1}, "backend is {'a': 1}, expected a string of at most 4096 characters"),
    ("inputs", "x", "inputs is 'x', expected a list of tensor specs"),
    ("inputs.0", 7, "inputs[0] is 7, expected an object (name, shape, dtype, min_batch, max_batch)"),
    ("inputs.0.name", "", "inputs[0].name is '', expected a non-empty string"),
    ("inputs.0.name", None, "inputs[0].name is None, expected a string of at most 4096 characters"),
    ("inputs.0.shape", [2, -3, 8, 8], "inputs[0].shape is [2, -3, 8, 8], expected a list of up to 8 whole numbers"),
    ("inputs.0.shape", [], "inputs[0].shape is [], expected a list of up to 8 whole numbers >= 0, at least one"),
    ("inputs.0.shape", [1] * 9, "inputs[0].shape is [1, 1, 1, 1, 1, 1, 1, 1, 1], expected a list of up to 8"),
    ("inputs.0.shape", [2.5, 3, 8, 8], "inputs[0].shape is [2.5, 3, 8, 8], expected a list of up to 8"),
    ("inputs.0.dtype", "complex64", "inputs[0].dtype is 'complex64', expected one of float32, float16"),
    (
        "inputs.0.min_batch",
        3,
        "inputs[0].min_batch/max_batch is [3, 2, 2], expected 1 <= min_batch <= shape[0] (opt) <= max_batch",
    ),
    ("inputs.0.max_batch", -1, "inputs[0].max_batch is -1, expected a whole number in [0, "),
    ("outputs.0.shape", [2, -2], "outputs[0].shape is [2, -2], expected a list of up to 8 whole numbers >= -1"),
    ("previous", {"x": 1}, "previous is {'x': 1}, expected a list of at most 2 plan descriptions"),
    ("previous", [{"plan_sha256": "0" * 64}], "previous[0].inputs is None, expected a list of tensor specs"),
    ("cache_key", 12, "cache_key is 12, expected a string of at most 256 characters"),
    # export-triton wrote an edited "int4" into config.pbtxt as the engine's precision
    ("precision", "int4", "precision is 'int4', expected one of '', 'fp32', 'tf32', 'fp16', 'bf16', 'int8', 'fp8'"),
    ("outputs.0.name", "x", "the names of inputs and outputs is ['x', 'y', 'x'], expected names that differ"),
]


@pytest.mark.parametrize("field, value, message", MALFORMED, ids=[f"{m[0]}={m[1]!r}"[:40] for m in MALFORMED])
def test_every_malformed_field_is_an_engine_error(old, tmp_path, field, value, message):
    path = old.save(tmp_path / "m.plan")
    meta = json.loads(sidecar_path(path).read_text())
    _set(meta, field, value)
    sidecar_path(path).write_text(json.dumps(meta))
    with pytest.raises(EngineError, match=re.escape(f"{sidecar_path(path)}: malformed metadata: {message}")):
        Engine.load(path)


# (id, sidecar text, the message's tail: pinned)
UNREADABLE = [
    ("nested", "[" * 200_000 + "]" * 200_000, "unreadable metadata (RecursionError: "),
    ("huge_int", '{"format": "trtnet-engine", "plan_bytes": ' + "9" * 5000 + "}", "unreadable metadata (ValueError: "),
    ("not_utf8", b'{"format": "\xff"}', "unreadable metadata (UnicodeDecodeError: "),
    ("list", "[1, 2]", "not trtnet engine metadata (format None)"),
    (
        "version_text",
        '{"format": "trtnet-engine", "format_version": "1"}',
        "metadata format version '1', this trtnet reads version 1",
    ),
    ("empty", "", "unreadable metadata (JSONDecodeError: "),
    (
        "duplicate_key",
        '{"format": "trtnet-engine", "plan_bytes": 1, "plan_bytes": 2}',
        "unreadable metadata (ValueError: the key 'plan_bytes' appears twice in one object)",
    ),
]


@pytest.mark.parametrize("text, message", [u[1:] for u in UNREADABLE], ids=[u[0] for u in UNREADABLE])
def test_unreadable_sidecars_are_engine_errors(old, tmp_path, text, message):
    path = old.save(tmp_path / "m.plan")
    data = text if isinstance(text, bytes) else text.encode()
    sidecar_path(path).write_bytes(data)
    with pytest.raises(EngineError, match=re.escape(f"{sidecar_path(path)}: {message}")):
        Engine.load(path)


def test_a_missing_plan_says_so(old, tmp_path):
    path = old.save(tmp_path / "m.plan")
    path.unlink()
    with pytest.raises(EngineError, match=re.escape(f"{path}: cannot read the plan: No such file or directory")):
        Engine.load(path)
    sidecar_path(path).unlink()
    with pytest.raises(EngineError, match=re.escape(f"{path}: cannot read the plan: No such file or directory")):
        Engine.load(path)


def test_concurrent_saves_and_loads_of_one_path(old, new, tmp_path):
    """Two writers replace one pair over and over while a reader loads it: every load gives one whole pair
    (writers take turns for the commit; a reader that meets a commit between its two reads reads again)."""
    import threading

    path = old.save(tmp_path / "m.plan")
    errors: list[BaseException] = []
    seen: set[str] = set()
    done = threading.Event()

    def writer(engine: Engine) -> None:
        try:
            for _ in range(25):
                engine.save(path)
        except BaseException as e:  # noqa: BLE001  reported below
            errors.append(e)

    def reader() -> None:
        while not done.is_set():
            try:
                seen.add(which(path, old, new))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                return

    threads = [threading.Thread(target=writer, args=(e,)) for e in (old, new)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    r.join()
    assert errors == [] and seen <= {"old", "new"} and seen
    assert which(path, old, new) in ("old", "new") and temporaries(tmp_path) == []


@pytest.mark.parametrize("path", ["", ".", "/", ".."])
def test_a_path_that_names_no_file_is_refused(old, path):
    with pytest.raises(EngineError, match=re.escape(f"{path!r} names no file: give the plan file's path")):
        old.save(path)
    with pytest.raises(EngineError, match=re.escape(f"{path!r} names no file")):
        Engine.load(path)


def test_a_target_name_near_the_limit_still_saves_and_sweeps(old, tmp_path):
    """A 245-character plan name is legal, but its temporary (`.<name>.<host>.<pid>.<random>.tmp`) was not:
    "File name too long" for a target that could be written. The temporary now cuts the name, and the sweep of dead
    writers' temporaries cuts it the same way."""
    name = "m" * 240 + ".plan"  # its sidecar, name + ".json", is 250 characters: still a legal name
    dead = trtnet.fileio.temporary_name(tmp_path / name).name.replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    (tmp_path / dead).write_bytes(b"partial")
    old.save(tmp_path / name)
    assert Engine.load(tmp_path / name).plan == old.plan
    assert temporaries(tmp_path) == []


def test_other_writers_refuse_a_plan_s_files(old, tmp_path):
    """`trtnet calibrate -o other.plan.json` (or a check's --save-outputs, or weights) wrote over a plan's
    metadata, exit 0: the plan no longer loaded."""
    from trtnet.errors import CalibrationError, CheckError, WeightsError
    from trtnet.onnx.feeds import save_npz_files
    from trtnet.quant.ranges import Calibration
    from trtnet.weights import save_safetensors

    path = old.save(tmp_path / "other.plan")
    before = (path.read_bytes(), sidecar_path(path).read_bytes())
    writers = {
        CalibrationError: lambda p: Calibration({"fc": 1.0}).save(p),
        WeightsError: lambda p: save_safetensors({"w": np.zeros(2, np.float32)}, p),
        CheckError: lambda p: save_npz_files([(p, {"y": np.zeros(2)}, "the outputs")]),
    }
    for error, write in writers.items():
        for target, kind in (
            (sidecar_path(path), "the metadata of the plan other.plan"),
            (path, "the plan other.plan"),
        ):
            with pytest.raises(error, match=re.escape(f"{target}: cannot write the ") + ".* there: it is " + kind):
                write(target)
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before and Engine.load(path).plan == old.plan
    meta = json.loads(before[1])  # metadata of another format version (or a damaged field) is still a plan's
    sidecar_path(path).write_text(json.dumps({**meta, "format_version": 2, "plan_bytes": "?"}))
    with pytest.raises(CalibrationError, match=r"other.plan: cannot write the calibration there: it is the plan"):
        writers[CalibrationError](path)
    assert path.read_bytes() == before[0]
    (tmp_path / "notes.json").write_text("{}")  # JSON beside no plan, and a file whose .json is no sidecar
    (tmp_path / "data").write_text("x")
    (tmp_path / "data.json").write_text('{"format": "something else"}')
    for target in (tmp_path / "notes.json", tmp_path / "data", tmp_path / "data.json"):
        Calibration({"fc": 1.0}).save(target)
