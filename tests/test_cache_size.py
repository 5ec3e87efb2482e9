"""The engine cache's size: entries listed by last use, pruned least recently used first (by `trtnet cache`, or
after each build under $TRTNET_CACHE_MAX_SIZE), never an entry a build holds."""

from __future__ import annotations

import doctest
import hashlib
import os
import re
from pathlib import Path

import pytest

import trtnet
from tests.helpers import trtnet_cli
from tests.runtime_models import two_inputs
from tests.test_fileio import guarded
from trtnet.builder import cache
from trtnet.builder.cache import cache_entries, parse_size, prune_cache
from trtnet.fileio import file_lock


def _build(folder: Path, batch: int, precision: str = "fp32") -> str:
    """The key of the entry a build of the two-input network at `batch` stores (or hits) in `folder`."""
    return trtnet.build(two_inputs(), batch_size=batch, precision=precision, cache_dir=folder).cache_key


def _aged(folder: Path, keys: list[str]) -> None:
    """Last uses one minute apart, in the order of `keys` (a build's own time stamps can share a tick)."""
    for i, key in enumerate(keys):
        os.utime(folder / f"{key}.plan", (1.7e9 + 60 * i, 1.7e9 + 60 * i))


def test_sizes_are_read_in_powers_of_1024_and_anything_else_is_refused():
    runner = doctest.DocTestRunner()
    for example in doctest.DocTestFinder().find(parse_size, globs={"parse_size": parse_size}):
        runner.run(example)
    assert (runner.tries, runner.failures) == (1, 0)  # the docstring's example holds
    assert (parse_size("20G"), parse_size("1.5M"), parse_size("4096"), parse_size("512 MiB")) == (
        20 << 30,
        3 << 19,
        4096,
        512 << 20,
    )
    assert parse_size("0") == 0 and parse_size("2kb") == 2048 and parse_size(" 1T ") == 1 << 40
    for bad in ("", "x", "-1", "1e9", "nan", "5iB", "1.2.3", "3 GB extra"):
        with pytest.raises(ValueError, match="is not a size"):
            parse_size(bad)
    with pytest.raises(ValueError, match="more bytes than any disk holds"):
        parse_size("9999999T")


def test_pruning_removes_the_least_recently_used_and_a_hit_counts_as_a_use(tmp_path):
    first, second, third = (_build(tmp_path, b) for b in (2, 3, 4))
    _aged(tmp_path, [first, second, third])
    assert [e.key for e in cache_entries(tmp_path)] == [third, second, first]  # most recently used first
    assert _build(tmp_path, 2) == first  # a hit: now the most recently used
    sizes = {e.key: e.size for e in cache_entries(tmp_path)}
    assert sizes[first] == sum(p.stat().st_size for p in tmp_path.glob(f"{first}.plan*"))  # plan and sidecar
    removed = prune_cache(sizes[first] + sizes[third], tmp_path)
    assert [e.key for e in removed] == [second]  # the oldest use went, and only as much as needed
    assert [e.key for e in cache_entries(tmp_path)] == [first, third]
    assert not list(tmp_path.glob(f"{second}.plan*"))
    assert (tmp_path / f"{second}.lock").exists()  # lock files stay: removing one could let two builders in
    assert prune_cache(0, tmp_path) and cache_entries(tmp_path) == []
    assert prune_cache(0, tmp_path / "absent") == []  # a missing folder holds nothing


def test_an_entry_a_build_holds_is_not_removed(tmp_path):
    old, new = _build(tmp_path, 2), _build(tmp_path, 3)
    _aged(tmp_path, [old, new])
    with file_lock(tmp_path / f"{old}.lock"):  # a build loading or storing it right now
        assert [e.key for e in prune_cache(0, tmp_path)] == [new]
    assert [e.key for e in cache_entries(tmp_path)] == [old]
    assert [e.key for e in prune_cache(0, tmp_path, keep=(old,))] == []


def test_a_pruned_entry_takes_its_runtime_cache_along(tmp_path):
    key = _build(tmp_path, 2)
    digest = hashlib.sha256((tmp_path / f"{key}.plan").read_bytes()).hexdigest()[:32]
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / f"{digest}.rtcache").write_bytes(b"kernels")
    (tmp_path / "runtime" / "other.rtcache").write_bytes(b"another plan's")
    prune_cache(0, tmp_path)
    assert sorted(p.name for p in (tmp_path / "runtime").iterdir()) == ["other.rtcache"]


def test_the_size_variable_prunes_after_each_build_and_a_bad_value_warns(tmp_path, monkeypatch):
    first = _build(tmp_path, 2)
    one = cache_entries(tmp_path)[0].size
    monkeypatch.setenv(cache.SIZE_VARIABLE, str(one + one // 2))  # room for one entry of this size
    second = _build(tmp_path, 3)
    assert [e.key for e in cache_entries(tmp_path)] == [second]  # the new one stays, the older one went
    monkeypatch.setenv(cache.SIZE_VARIABLE, "lots")
    with pytest.warns(UserWarning, match=r"TRTNET_CACHE_MAX_SIZE: 'lots' is not a size.*the cache is not pruned"):
        third = _build(tmp_path, 4)
    assert {e.key for e in cache_entries(tmp_path)} == {second, third} and first not in {second, third}


def test_the_cache_command_lists_prunes_and_clears(tmp_path):
    env = {"TRTNET_CACHE_DIR": str(tmp_path)}
    r = trtnet_cli("cache", **env)
    assert r.returncode == 0 and f"{tmp_path}: 0 entries, 0 B (no size limit" in r.stdout, r.stderr
    old, new = _build(tmp_path, 2), _build(tmp_path, 3, "fp16")
    _aged(tmp_path, [old, new])
    (tmp_path / "stray.plan").write_bytes(b"not an entry")  # not named by a key: left alone, not listed
    r = trtnet_cli("cache", **env, TRTNET_CACHE_MAX_SIZE="1G")
    lines = r.stdout.splitlines()
    assert (
        r.returncode == 0
        and lines[0].startswith(f"{tmp_path}: 2 entries, ")
        and "(pruned to 1.0 GiB after each build" in lines[0]
    )
    assert lines[1].split() == ["last", "used", "size", "precision", "inputs", "key"]
    assert new in lines[2] and " fp16 " in lines[2] and "x float32[3, 3, 8, 8], y float32[3, 4, 8, 8]" in lines[2]
    assert old in lines[3] and " fp32 " in lines[3]
    (tmp_path / f"{old}.plan.json").write_text("{")  # a damaged sidecar is a row that says so, not a failure
    r = trtnet_cli("cache", "--dir", tmp_path)
    assert r.returncode == 0 and "(metadata unreadable: the next build" in r.stdout.splitlines()[3], r.stdout
    r = trtnet_cli("cache", "--dir", tmp_path, "--prune", "1K")
    assert r.returncode == 0 and r.stdout.startswith(f"{tmp_path}: removed 2 entries ("), r.stdout
    assert "0 entries, 0 B left" in r.stdout and cache_entries(tmp_path) == []
    assert (tmp_path / "stray.plan").exists()


@pytest.mark.parametrize(
    "args, pattern",
    [
        (("--prune", "ten"), r"argument --prune: 'ten' is not a size"),
        (("--prune", "1G", "--clear"), r"argument --clear: not allowed with argument --prune"),
        (("--dir", "{file}"), r"f.txt: the cache folder is not a folder"),
    ],
)
def test_bad_cache_arguments_are_one_line_errors(tmp_path, args, pattern):
    _build(tmp_path, 2)
    (tmp_path / "f.txt").write_text("")
    r = trtnet_cli("cache", *(a.format(file=tmp_path / "f.txt") for a in args), TRTNET_CACHE_DIR=str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert re.search(pattern, r.stderr.splitlines()[0]), r.stderr
    assert len(cache_entries(tmp_path)) == 1  # nothing removed


def test_entries_that_are_not_whole_are_removed_unopened(tmp_path):
    """A FIFO for a plan hung pruning (it hashed the plan to find its runtime cache), a link to /dev/zero ran it
    out of memory, a link to another entry's plan took that entry's runtime cache, and entries of 0 bytes or
    sidecars left without their plan were never removed."""
    good = _build(tmp_path, 2)
    plan = tmp_path / f"{good}.plan"
    digest = hashlib.sha256(plan.read_bytes()).hexdigest()[:32]
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / f"{digest}.rtcache").write_bytes(b"kernels")
    fifo, link, orphan, lone, zero = "a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40
    os.mkfifo(tmp_path / f"{fifo}.plan")
    (tmp_path / f"{link}.plan").symlink_to(plan)
    (tmp_path / f"{orphan}.plan.json").write_text("{}")
    (tmp_path / f"{lone}.plan").write_bytes(b"a plan without its sidecar")
    lone_digest = hashlib.sha256(b"a plan without its sidecar").hexdigest()[:32]
    (tmp_path / "runtime" / f"{lone_digest}.rtcache").write_bytes(b"its kernels")  # go with it
    (tmp_path / f"{zero}.plan").write_bytes(b"a plan whose sidecar is a link to a device")
    (tmp_path / f"{zero}.plan.json").symlink_to("/dev/zero")
    entries = {e.key: e for e in cache_entries(tmp_path)}
    assert set(entries) == {good, fifo, link, orphan, lone, zero}
    assert [k for k, e in entries.items() if e.whole] == [good]
    r = trtnet_cli("cache", "--dir", tmp_path)
    assert r.returncode == 0 and r.stdout.count("(not whole: pruning removes it)") == 5, r.stdout
    with guarded(20):  # a regression hangs on the FIFO: fail instead
        removed = prune_cache(1 << 40, tmp_path)  # room for everything: only what is not whole goes
    assert sorted(e.key for e in removed) == sorted([fifo, link, orphan, lone, zero])
    assert [e.key for e in cache_entries(tmp_path)] == [good] and plan.is_file()
    assert (tmp_path / "runtime" / f"{digest}.rtcache").exists()  # the link's removal left good's kernels
    assert not (tmp_path / "runtime" / f"{lone_digest}.rtcache").exists()


def test_a_size_variable_that_is_not_a_size_is_said_so_by_the_listing(tmp_path):
    r = trtnet_cli("cache", "--dir", tmp_path, TRTNET_CACHE_MAX_SIZE="abc")
    assert r.returncode == 0 and "(no size limit: TRTNET_CACHE_MAX_SIZE is not a size)" in r.stdout, r.stdout
