"""`trtnet export-triton` against a repository that changes under it or holds odd things: racing exports of one
model, versions at Triton's limit, dangling links where a version or the repository would go. Each bad case is
an `ExportError` naming the path, with the repository left as it was."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

import trtnet
import trtnet.export.triton
from trtnet import Engine, nn
from trtnet.cli import main
from trtnet.errors import ExportError
from trtnet.export.triton import export_engine
from trtnet.export.triton_checks import MAX_VERSION, check_request
from trtnet.weights import init_random

pytestmark = pytest.mark.filterwarnings("ignore:.*NOT a TensorRT plan:UserWarning")


class Tiny(nn.Module):
    def __init__(self) -> None:
        self.fc = nn.Linear(4, 3)

    def inputs(self) -> list[nn.Input]:
        return [nn.Input("x", (4,))]

    def output_names(self, n: int) -> list[str]:
        return ["y"]

    def forward(self, x):
        return self.fc(x)


def tiny() -> Tiny:
    model = Tiny()
    init_random(model)
    return model


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


@pytest.fixture(scope="module")
def batched(cache) -> Engine:
    return trtnet.build(tiny(), (1, 8, 32), precision="fp32", cache_dir=cache)


@pytest.fixture(scope="module")
def fixed(cache) -> Engine:
    return trtnet.build(tiny(), 8, precision="fp32", cache_dir=cache)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder or link): what "as it was" compares."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(root.rglob("*"))
    }


def test_an_export_that_lost_the_race_is_checked_again_before_it_commits(tmp_path, batched, fixed, monkeypatch):
    """Export A (a fixed batch-8 engine, version 2) checks the repository while it is empty and writes its
    staging; export B (a batch 1..32 engine, version 1) then makes the model. A renamed its version in and
    replaced the config without checking B's version again, so the config misdescribed one of them."""
    staged, go = threading.Event(), threading.Event()
    real = trtnet.export.triton.atomic_write
    first = threading.current_thread()

    def paused(*args, **kwargs):
        real(*args, **kwargs)
        if threading.current_thread() is not first:  # export A, staged: let B run to its end first
            staged.set()
            assert go.wait(60)

    monkeypatch.setattr(trtnet.export.triton, "atomic_write", paused)
    got: list[object] = []

    def export_a() -> None:
        try:
            got.append(export_engine(fixed, tmp_path, "m", version=2))
        except ExportError as e:
            got.append(e)

    a = threading.Thread(target=export_a)
    a.start()
    try:
        assert staged.wait(60)
        b = export_engine(batched, tmp_path, "m", version=1)
        before = tree(tmp_path / "m")
    finally:
        go.set()
        a.join()
    assert b.max_batch_size == 32
    assert len(got) == 1 and isinstance(got[0], ExportError), got
    assert (
        f"{tmp_path / 'm'}: version 1's engine (max_batch_size 32 with x TYPE_FP32[4], y TYPE_FP32[3]) does not "
        "fit the new engine's config (max_batch_size 0 with x TYPE_FP32[8, 4], y TYPE_FP32[8, 3])" in str(got[0])
    )
    assert tree(tmp_path / "m") == before  # nothing of A's: no version 2, the config B wrote
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging left


def test_racing_exports_of_engines_that_do_not_fit_one_config_leave_one(tmp_path, batched, fixed):
    """The tester's race, in threads: whichever commits second is refused, never both written."""
    start = threading.Barrier(2)
    got: list[object] = []

    def export(engine: Engine, version: int) -> None:
        start.wait()
        try:
            got.append(export_engine(engine, tmp_path, "m", version=version).version)
        except ExportError as e:
            got.append(str(e))

    threads = [threading.Thread(target=export, args=a) for a in ((batched, 1), (fixed, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert len(versions) == 2 and "config.pbtxt" in versions, (versions, got)
    assert sum(isinstance(g, str) and "does not fit the new engine's config" in g for g in got) == 1, got


def test_no_version_past_tritons_int64(tmp_path, batched):
    """After --version 2**63 - 1, a plain export wrote version 9223372036854775808, which Triton cannot read."""
    export_engine(batched, tmp_path, "m", version=MAX_VERSION)
    before = tree(tmp_path)
    with pytest.raises(
        ExportError,
        match=re.escape(
            f"{tmp_path / 'm'}: holds version {MAX_VERSION}, so the next would be beyond the highest Triton reads "
            "(2**63 - 1, an int64)"
        ),
    ):
        export_engine(batched, tmp_path, "m")
    assert tree(tmp_path) == before
    assert export_engine(batched, tmp_path, "m", version=5).version == 5  # one asked for below it still goes


def test_a_version_that_is_a_link_to_nothing_is_refused_before_the_build(tmp_path):
    """`.exists()` follows the link, so the request passed and the export failed only after the build, saying
    "version 2 appeared while exporting"."""
    (tmp_path / "m").mkdir()
    os.symlink("gone", tmp_path / "m" / "2")
    with pytest.raises(
        ExportError,
        match=re.escape(f"{tmp_path / 'm' / '2'}: version 2 of model 'm' exists (a symbolic link to nothing)"),
    ):
        check_request(tmp_path, "m", version=2, instances=1)


def test_a_repository_that_is_a_link_to_nothing_is_named(tmp_path, batched, capsys):
    """`_make_folders` ran outside the try block: a raw FileExistsError, "dangl: File exists" on the command line."""
    os.symlink("nowhere", tmp_path / "dangl")
    message = (
        f"{tmp_path / 'dangl'}: the model repository must be a folder, but {tmp_path / 'dangl'} is a symbolic link "
        "to 'nowhere', which does not exist"
    )
    with pytest.raises(ExportError, match=re.escape(message)):
        export_engine(batched, tmp_path / "dangl", "m")
    with pytest.raises(ExportError, match=re.escape(message.replace("dangl:", "dangl/sub:", 1))):
        export_engine(batched, tmp_path / "dangl" / "sub", "m")
    plan = tmp_path / "tiny.plan"
    batched.save(plan)
    assert main(["export-triton", "--plan", str(plan), "--repo", str(tmp_path / "dangl"), "--allow-rtx"]) == 2
    assert capsys.readouterr().err.startswith(f"trtnet: error: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangl", "tiny.plan", "tiny.plan.json"]


def test_a_version_of_another_tensorrt_is_not_joined_under_one_config(tmp_path, batched):
    """A tensorrt_rtx plan exported beside a data-centre TensorRT version of the same signature replaced the shared
    config's trtnet_backend: the config then misdescribed version 1, which that Triton could not load anyway."""
    import json

    export_engine(batched, tmp_path, "m", allow_rtx=True)
    sidecar, config = tmp_path / "m" / "1" / "model.plan.json", tmp_path / "m" / "config.pbtxt"
    meta = json.loads(sidecar.read_text())
    meta["backend"] = "tensorrt 10.13.0.35"  # version 1 as a data-centre TensorRT build would have written it
    sidecar.write_text(json.dumps(meta))
    config.write_text(config.read_text().replace(batched.backend, meta["backend"]))
    before = tree(tmp_path)
    with pytest.raises(
        ExportError, match=r"version 1's engine was built by tensorrt 10.13.0.35, the new one built by "
    ):
        export_engine(batched, tmp_path, "m", allow_rtx=True)
    assert tree(tmp_path) == before
    meta["backend"] = batched.backend
    meta["target"] = "sm_86"  # the same TensorRT, another GPU
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ExportError, match=r"version 1's engine was built for sm_86, the new one built for "):
        export_engine(batched, tmp_path, "m", allow_rtx=True)
    meta["target"] = batched.target
    sidecar.write_text(json.dumps(meta))
    export_engine(batched, tmp_path, "m", allow_rtx=True)  # the same backend and GPU: a second version
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.is_dir()) == ["1", "2"]
