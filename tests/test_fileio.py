"""trtnet.fileio: every public helper, and the readers and writers of the package that go through it."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from trtnet import fileio
from trtnet.errors import CalibrationError, EngineError, NetworkError, TrtnetError, WeightsError
from trtnet.onnx.parse import parse_onnx
from trtnet.quant.ranges import Calibration


@contextlib.contextmanager
def guarded(seconds: int = 10):
    """A reader that blocks (a FIFO) fails after `seconds`; one that reads without bound (/dev/zero) runs out
    of memory after 1 GiB more than the process maps now, instead of filling the machine's."""

    def alarm(*_):
        raise AssertionError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def _special(path: Path, kind: str) -> Path:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    return path


KINDS = {"fifo": "a FIFO", "dev_zero": "a character device", "directory": "a directory"}


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it sets it: put it back at once
    os.umask(mask)
    return mask


UMASK_MODE = 0o666 & ~_umask()  # the mode open() gives a new file


# -- writing ---------------------------------------------------------------------------------------------------


def test_temporary_name_is_hidden_next_to_the_target_and_names_this_process(tmp_path):
    target = tmp_path / ("x" * 250)
    name = fileio.temporary_name(target)
    assert name.parent == tmp_path and name.name.startswith("." + "x" * fileio.NAME_CHARS + ".")
    assert f".{os.getpid()}." in name.name and name.name.endswith(".tmp") and len(name.name) < 255
    assert fileio.temporary_name(target) != name


def test_write_temporary_writes_synced_data_and_leaves_nothing_on_failure(tmp_path):
    tmp = fileio.write_temporary(tmp_path / "out.bin", b"abc")
    assert tmp.read_bytes() == b"abc" and stat.S_IMODE(tmp.stat().st_mode) == UMASK_MODE
    target = tmp_path / "no-folder" / "out.bin"
    with pytest.raises(WeightsError, match=f"^{target}: cannot write the weights: No such file or directory$"):
        fileio.write_temporary(target, b"abc", "the weights", WeightsError)
    assert sorted(p.name for p in tmp_path.iterdir()) == [tmp.name]


def test_replace_renames_and_names_the_target(tmp_path):
    tmp = fileio.write_temporary(tmp_path / "a", b"new")
    (tmp_path / "a").write_bytes(b"old")
    fileio.replace(tmp, tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == b"new" and not tmp.exists()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").touch()
    tmp = fileio.write_temporary(tmp_path / "d", b"x")
    with pytest.raises(EngineError, match=f"^{tmp_path / 'd'}: cannot write the plan there: it is a directory$"):
        fileio.replace(tmp, tmp_path / "d", "the plan")


def _synced(monkeypatch) -> list[int]:
    """The inodes os.fsync is called on from now."""
    inodes: list[int] = []
    real = os.fsync

    def fsync(fd):
        inodes.append(os.fstat(fd).st_ino)
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return inodes


def test_fsync_folder_syncs_the_folder_and_passes_over_one_it_cannot_open(tmp_path, monkeypatch):
    inodes = _synced(monkeypatch)
    fileio.fsync_folder(tmp_path)
    fileio.fsync_folder(tmp_path / "missing")  # Windows cannot open folders: best effort, no error
    assert inodes == [tmp_path.stat().st_ino]


def test_atomic_write_syncs_file_and_folder_with_the_usual_mode(tmp_path, monkeypatch):
    inodes = _synced(monkeypatch)
    path = tmp_path / "out.json"
    path.write_bytes(b"old")
    fileio.atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == UMASK_MODE
    assert path.stat().st_ino in inodes and tmp_path.stat().st_ino in inodes
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_write_keeps_the_old_file_when_it_fails(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    (path / "x").touch()
    with pytest.raises(CalibrationError, match=f"^{path}: cannot write the calibration there: it is a directory$"):
        fileio.atomic_write(path, b"new", "the calibration", CalibrationError)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (path / "x").exists()


def test_replaced_renames_what_the_block_wrote_or_nothing(tmp_path):
    path = tmp_path / "w.safetensors"
    with fileio.replaced(path) as tmp:
        tmp.write_bytes(b"data")
    assert path.read_bytes() == b"data"
    with pytest.raises(RuntimeError), fileio.replaced(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == [path.name]


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_is_stale_by_dead_writer_or_age(tmp_path):
    live = fileio.temporary_name(tmp_path / "a").name
    dead = live.replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    now = time.time()
    assert not fileio.is_stale(live, now) and fileio.is_stale(dead, now)
    assert fileio.is_stale(live, now - fileio.STALE_SECONDS - 1)
    assert not fileio.is_stale(".a.otherhost.1.00000000.tmp", now)  # another host's pid says nothing here


def test_remove_stale_temporaries_removes_dead_writers_of_the_targets_only(tmp_path):
    live = fileio.write_temporary(tmp_path / "a", b"")
    dead = tmp_path / live.name.replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    other = tmp_path / dead.name.replace(".a.", ".b.", 1)
    dead.touch()
    other.touch()
    assert fileio.remove_stale_temporaries(tmp_path, ("a",)) == [dead.name]
    assert live.exists() and other.exists() and not dead.exists()
    assert fileio.remove_stale_temporaries(tmp_path / "missing") == []


# -- locks -----------------------------------------------------------------------------------------------------


def _takes_turns(lock) -> list[str]:
    """Two threads hold `lock()` in turn: the events in order (each open is its own flock)."""
    events: list[str] = []
    held = threading.Event()

    def second():
        held.wait()
        with lock():
            events.append("second in")

    t = threading.Thread(target=second)
    t.start()
    with lock():
        held.set()
        time.sleep(0.3)
        events.append("first out")
    t.join(10)
    return events


def test_folder_lock_makes_writers_take_turns(tmp_path):
    assert _takes_turns(lambda: fileio.folder_lock(tmp_path)) == ["first out", "second in"]
    assert os.listdir(tmp_path) == []  # no lock file left beside the user's files
    with fileio.folder_lock(tmp_path / "missing"):  # cannot be opened: runs unlocked
        pass


def test_file_lock_makes_holders_take_turns_and_heals_a_lock_path_that_is_no_file(tmp_path):
    path = tmp_path / "k.lock"
    _special(path, "directory")
    (path / "inside").touch()
    assert _takes_turns(lambda: fileio.file_lock(path)) == ["first out", "second in"]
    assert path.is_file()
    (tmp_path / "file").touch()
    with pytest.raises(NotADirectoryError), fileio.file_lock(tmp_path / "file" / "k.lock"):
        pass


# -- reading ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_an_output_is_never_renamed_over_what_is_no_regular_file(tmp_path, kind):
    # A rename puts the output in place of whatever is there: as root, `check --save-outputs /dev/null` replaced
    # the system's /dev/null with a file. A device, a FIFO or a folder (after symlinks) is refused, left as it was.
    target = _special(tmp_path / "out.npz", kind)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    for path in (target, link):
        with guarded(), pytest.raises(EngineError, match=f"^{path}: cannot write the file there: it is {KINDS[kind]}$"):
            fileio.atomic_write(path, b"data")
        with pytest.raises(EngineError, match="it is " + KINDS[kind]), fileio.replaced(path) as tmp:
            tmp.write_bytes(b"never written")
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "out.npz"]


def test_a_writer_that_makes_its_file_0600_still_leaves_the_usual_mode(tmp_path):
    # safetensors' save_file makes its file 0600: weights from export-weights and convert were unreadable to a
    # container running as another user, while plans followed the umask.
    path = tmp_path / "w.safetensors"
    with fileio.replaced(path, "the weights") as tmp:
        tmp.write_bytes(b"x")
        os.chmod(tmp, 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == UMASK_MODE


def test_a_calibration_file_has_the_mode_of_every_other_output(tmp_path):
    path = Calibration({"conv/conv": 1.5}).save(tmp_path / "scales.json")
    assert stat.S_IMODE(path.stat().st_mode) == UMASK_MODE  # mkstemp made it 0600
    assert Calibration.load(path).amax == {"conv/conv": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["scales.json"]


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_calibration_load_refuses_special_files_unread(tmp_path, kind):
    path = _special(tmp_path / "scales.json", kind)
    with guarded(), pytest.raises(CalibrationError, match=f"^{path}: the calibration file is {KINDS[kind]}, not a"):
        Calibration.load(path)


def test_calibration_load_bounds_the_size(tmp_path):
    path = tmp_path / "scales.json"
    with open(path, "wb") as f:
        f.truncate(8 << 30)
    with guarded(), pytest.raises(CalibrationError, match=f"^{path}: the calibration file is {8 << 30} bytes, more"):
        Calibration.load(path)


def test_calibration_refuses_a_key_twice(tmp_path):
    path = tmp_path / "scales.json"
    path.write_text('{"format": "trtnet-calibration", "version": 1, "method": "max", "amax": {"a": 1, "a": 9}}')
    with pytest.raises(CalibrationError, match=f"calibration file {path}: not JSON \\(the key 'a' appears twice"):
        Calibration.load(path)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_parse_onnx_refuses_special_files_unread(tmp_path, kind):
    path = _special(tmp_path / "model.onnx", kind)
    with guarded(), pytest.raises(NetworkError, match=f"^{path}: the ONNX file is {KINDS[kind]}, not a regular file"):
        parse_onnx(path)


def test_an_unwritable_output_folder_is_refused_before_the_work(tmp_path, monkeypatch):
    """A read-only folder (access() says so even to root, of a read-only mount) is named before a build of minutes,
    not after it."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(fileio.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    with pytest.raises(TrtnetError, match=r"locked/r.plan: cannot write the plan: the folder .*locked is not writable"):
        fileio.output_folder(locked / "r.plan", "the plan")
    assert fileio.output_folder(tmp_path / "open" / "r.plan", "the plan") == tmp_path / "open" / "r.plan"
