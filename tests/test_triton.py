"""`trtnet export-triton`: a Triton model repository whose config parses with Triton's own schema (the
`ModelConfig` protobuf tritonclient ships) and agrees with the engine's sidecar; versions added beside each
other; bad requests refused with the repository left byte for byte as it was."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

import pytest

import trtnet
import trtnet.export.triton
from trtnet import Engine
from trtnet.cli import main
from trtnet.errors import ExportError
from trtnet.export.triton import export_engine, export_triton
from trtnet.export.triton_config import Signature, config_parameters, render_config, signature
from trtnet.zoo import resnet18

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (the test extra) ships Triton's ModelConfig schema"
)
text_format = pytest.importorskip("google.protobuf.text_format", reason="protobuf comes with tritonclient[grpc]")

# Every engine built here is a TensorRT for RTX one where that is the backend: the export says so with a warning
# (pinned in test_rtx_plan_is_flagged); elsewhere it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*NOT a TensorRT plan:UserWarning")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


@pytest.fixture(scope="module")
def dynamic(cache) -> Engine:
    return trtnet.build(resnet18(weights=None), (1, 4, 8), precision="fp16", cache_dir=cache)


@pytest.fixture(scope="module")
def fixed(cache) -> Engine:
    return trtnet.build(resnet18(weights=None), 4, precision="fp16", cache_dir=cache)


def parse(path: Path):
    """The config as Triton reads it: strict text format, so a misspelt field or a wrong type fails here."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its kind, mode and bytes: what "left as it was" compares."""
    if not root.exists():
        return {}
    tree = {".": (stat.S_IFMT(root.lstat().st_mode), root.lstat().st_mode, None)}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        tree[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mode, p.read_bytes() if p.is_file() else None)
    return tree


def test_config_parses_with_tritons_schema_and_agrees_with_the_sidecar(tmp_path, dynamic):
    done = export_engine(dynamic, tmp_path, "resnet18", instances=2)
    assert done.plan == tmp_path / "resnet18" / "1" / "model.plan" and done.config_action == "written"
    config = parse(tmp_path / "resnet18" / "config.pbtxt")
    sidecar = json.loads((tmp_path / "resnet18" / "1" / "model.plan.json").read_text())
    assert sidecar == json.loads(json.dumps(dynamic.metadata()))  # tuples read back as lists
    assert done.plan.read_bytes() == dynamic.plan
    assert Engine.load(done.plan).inputs == dynamic.inputs  # trtnet reads the exported version back

    assert config.name == "resnet18" and config.platform == "tensorrt_plan"
    assert config.max_batch_size == sidecar["inputs"][0]["max_batch"] == 8
    types = {"float32": model_config_pb2.TYPE_FP32}
    for got, want in [(config.input, sidecar["inputs"]), (config.output, sidecar["outputs"])]:
        assert [t.name for t in got] == [s["name"] for s in want]
        assert [t.data_type for t in got] == [types[s["dtype"]] for s in want]
        assert [list(t.dims) for t in got] == [s["shape"][1:] for s in want]  # the batch left out
    assert [list(t.dims) for t in config.input] == [[3, 224, 224]] and list(config.output[0].dims) == [1000]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]  # the profile's opt and max
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_GPU)]
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    assert parameters["trtnet_backend"] == sidecar["backend"] and parameters["trtnet_precision"] == "fp16"
    assert parameters["trtnet_version"] == trtnet.__version__


def test_every_input_and_output_is_declared_in_engine_order(tmp_path, cache):
    from tests.runtime_models import two_inputs

    engine = trtnet.build(two_inputs(), (1, 2, 4), precision="fp32", cache_dir=cache)
    config = parse(export_engine(engine, tmp_path, "two").config)
    assert [(t.name, list(t.dims)) for t in config.input] == [("x", [3, 8, 8]), ("y", [4, 8, 8])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("z", [4, 8, 8])]
    assert config.max_batch_size == 4 and list(config.dynamic_batching.preferred_batch_size) == [2, 4]


def test_fixed_batch_engine_has_max_batch_size_0_and_full_dims(tmp_path, fixed):
    export_engine(fixed, tmp_path, "fixed")
    config = parse(tmp_path / "fixed" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [4, 3, 224, 224] and list(config.output[0].dims) == [4, 1000]


def test_dynamic_engine_without_batching_keeps_the_batch_range_as_minus_1(tmp_path, dynamic):
    export_engine(dynamic, tmp_path, "m", dynamic_batching=False)
    config = parse(tmp_path / "m" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [-1, 3, 224, 224] and list(config.output[0].dims) == [-1, 1000]


def test_profile_above_batch_1_is_not_batched_by_default_and_refused_when_asked(dynamic):
    meta = dynamic.metadata()
    for s in meta["inputs"]:
        s["min_batch"] = 2  # the sidecar of a batch_size=(2, 4, 8) build
    assert signature(meta).max_batch_size == 0
    with pytest.raises(
        ExportError,
        match=r"dynamic batching asked for, but the engine's optimization profile "
        r"starts at batch 2, and Triton also sends smaller batches",
    ):
        signature(meta, dynamic_batching=True)


def test_exporting_twice_adds_a_version_beside_the_first(tmp_path, dynamic):
    first = export_engine(dynamic, tmp_path, "resnet18")
    v1 = snapshot(tmp_path / "resnet18" / "1")
    second = export_engine(dynamic, tmp_path, "resnet18")
    assert (first.version, second.version) == (1, 2) and second.config_action == "unchanged"
    assert snapshot(tmp_path / "resnet18" / "1") == v1
    assert sorted(p.name for p in (tmp_path / "resnet18").iterdir()) == ["1", "2", "config.pbtxt"]
    # A config that serves the same engines differently (more instances) replaces the old one.
    third = export_engine(dynamic, tmp_path, "resnet18", version=7, instances=3)
    assert third.config_action == "replaced" and parse(third.config).instance_group[0].count == 3
    assert export_engine(dynamic, tmp_path, "resnet18").version == 8  # after the highest


def test_end_to_end_builds_then_exports(tmp_path, cache):
    done = export_triton(
        resnet18(weights=None), tmp_path / "new" / "repo", "r18", batch_size=(1, 4, 8), cache_dir=cache
    )
    assert parse(done.config).max_batch_size == 8 and done.plan.is_file()


def test_rtx_plan_is_flagged(tmp_path, dynamic):
    if not dynamic.backend.startswith("tensorrt_rtx"):
        params = config_parameters(dynamic.metadata())
        assert params["trtnet_tensorrt_version"] == dynamic.backend.split()[1]
        return
    with pytest.warns(UserWarning, match=r"NOT a TensorRT plan: Triton's tensorrt backend cannot load it"):
        done = export_engine(dynamic, tmp_path, "rtx")
    assert {k: v.string_value for k, v in parse(done.config).parameters.items()}["trtnet_tensorrt_version"] == "none"


def test_data_centre_tensorrt_plan_records_its_version(dynamic):
    meta = dict(dynamic.metadata(), backend="tensorrt 10.13.3.9", target="sm_90")
    params = config_parameters(meta)
    assert params["trtnet_tensorrt_version"] == "10.13.3.9"
    assert "loads in a Triton whose TensorRT is exactly 10.13.3.9" in params["trtnet_compatibility"]


def test_scalar_per_sample_output_is_reshaped(tmp_path):
    sig = Signature(8, (("x", "TYPE_FP32", (3,)),), (("score", "TYPE_FP32", ()),), (8,))
    (tmp_path / "config.pbtxt").write_text(render_config("m", sig, instances=1, parameters={"trtnet_backend": "b"}))
    out = parse(tmp_path / "config.pbtxt").output[0]
    assert list(out.dims) == [1] and out.HasField("reshape") and list(out.reshape.shape) == []


# -- bad requests: a clear error, and the repository as it was ------------------------------------------------


@pytest.fixture
def repo(tmp_path, dynamic) -> Path:
    """A repository holding version 1 of model `resnet18`."""
    export_engine(dynamic, tmp_path / "repo", "resnet18")
    return tmp_path / "repo"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "a/b"}, "model name 'a/b': expected one folder name"),
        ({"name": "../up"}, "model name '../up': expected one folder name"),
        ({"name": ".hidden"}, "model name '.hidden': expected one folder name"),
        ({"name": ""}, "model name '': expected one folder name"),
        ({"instances": 0}, "instances 0: expected a whole number >= 1"),
        ({"instances": 1.5}, "instances 1.5: expected a whole number >= 1"),
        ({"instances": True}, "instances True: expected a whole number >= 1"),
        ({"dynamic_batching": "no"}, r"dynamic_batching 'no': expected True, False, or None"),  # was taken as True
        ({"instances": 2**31}, "instances 2147483648: expected a whole number >= 1 .*Triton's count is an int32"),
        ({"version": 0}, "version 0: expected a whole number >= 1"),
        ({"version": "2"}, "version '2': expected a whole number >= 1"),
        ({"version": 2**63}, r"version 9223372036854775808: expected a whole number >= 1 and <= 2\*\*63 - 1"),
        ({"name": "a" * 256}, "model name a{40}\\.\\.\\. \\(256 characters\\): a folder name holds at most 255"),
        (
            {"version": 1},
            "resnet18/1: version 1 of model 'resnet18' exists; an existing version is never replaced: "
            "export as a new version \\(the next free one is 2\\)",
        ),
    ],
)
def test_bad_request_is_refused_and_the_repository_is_untouched(repo, dynamic, kwargs, message):
    before = snapshot(repo)
    with pytest.raises(ExportError, match=message):
        export_engine(dynamic, repo, **{"name": "resnet18", **kwargs})
    assert snapshot(repo) == before


def test_fixed_batch_engine_asked_for_dynamic_batching(repo, fixed, monkeypatch):
    before = snapshot(repo)
    with pytest.raises(
        ExportError,
        match=r"model 'resnet18': dynamic batching asked for, but the engine takes batch "
        r"4 only \(a fixed-batch build\)",
    ):
        export_engine(fixed, repo, "resnet18", dynamic_batching=True)
    # export_triton refuses before spending a build on it.
    monkeypatch.setattr(
        trtnet.export.triton, "build", lambda *a, **k: pytest.fail("built an engine for a refused export")
    )
    with pytest.raises(ExportError, match=r"batch_size=4 builds a fixed-batch engine"):
        export_triton(resnet18(weights=None), repo, "other", batch_size=4, dynamic_batching=True)
    assert snapshot(repo) == before


def test_engine_that_does_not_fit_the_models_config_goes_under_another_name(repo, fixed):
    before = snapshot(repo)
    with pytest.raises(
        ExportError,
        match=r"version 1's engine \(max_batch_size 8 with x TYPE_FP32\[3, 224, 224\], "
        r"logits TYPE_FP32\[1000\]\) does not fit the new engine's config "
        r"\(max_batch_size 0 with x TYPE_FP32\[4, 3, 224, 224\], logits "
        r"TYPE_FP32\[4, 1000\]\); one config.pbtxt serves every version",
    ):
        export_engine(fixed, repo, "resnet18")
    assert snapshot(repo) == before


def test_version_without_sidecar_blocks_a_config_change(repo, dynamic):
    (repo / "resnet18" / "1" / "model.plan.json").unlink()
    before = snapshot(repo)
    with pytest.raises(ExportError, match=r"resnet18/1/model.plan.json: missing, so version 1 cannot be checked"):
        export_engine(dynamic, repo, "resnet18", instances=2)
    assert snapshot(repo) == before


def test_repository_that_is_a_file(tmp_path, dynamic):
    (tmp_path / "repo").write_text("not a folder")
    for where in (tmp_path / "repo", tmp_path / "repo" / "inside"):
        with pytest.raises(
            ExportError,
            match=f"{where}: the model repository must be a folder, but {tmp_path / 'repo'} is not a folder",
        ):
            export_engine(dynamic, where, "m")
    assert (tmp_path / "repo").read_text() == "not a folder"


def test_model_path_that_is_a_file(repo, dynamic):
    (repo / "notes").write_text("x")
    before = snapshot(repo)
    with pytest.raises(ExportError, match=r"repo/notes: exists and is not a folder"):
        export_engine(dynamic, repo, "notes")
    assert snapshot(repo) == before


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root writes through file permissions, so a read-only folder is "
    "writable to it (test_repository_that_is_a_file covers the root case)",
)
def test_read_only_repository(repo, dynamic):
    before = snapshot(repo)
    repo.chmod(0o555)
    try:
        with pytest.raises(ExportError, match=r"the model repository is not writable"):
            export_engine(dynamic, repo, "resnet18")
    finally:
        repo.chmod(0o755)
    assert snapshot(repo) == before


@pytest.mark.parametrize("where", ["new model", "new version", "new repository"])
def test_failed_write_leaves_nothing_behind(tmp_path, repo, dynamic, monkeypatch, where):
    """A disk that fills up while the plan is written: no staging folder, no half version, no new folders."""

    def full_disk(self, path):
        Path(path).write_bytes(self.plan[:1000])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Engine, "save", full_disk)
    target = tmp_path / "fresh" / "repo" if where == "new repository" else repo
    before, fresh = snapshot(repo), snapshot(tmp_path / "fresh")
    name = "resnet18" if where == "new version" else "other"
    with pytest.raises(ExportError, match=f"{target / name}: cannot write version .*: No space left on device"):
        export_engine(dynamic, target, name, instances=2)
    assert snapshot(repo) == before and snapshot(tmp_path / "fresh") == fresh == {}


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["inputs"][0].update(shape=[]),
        lambda m: m["inputs"][0].update(shape="abc"),
        lambda m: m["inputs"][0].update(min_batch=9),
        lambda m: m.update(inputs=[[1] * 10**5]),
    ],
    ids=["empty_shape", "shape_a_string", "min_over_max", "inputs_not_specs"],
)
def test_a_malformed_sidecar_of_an_existing_version_is_an_export_error(repo, dynamic, edit):
    """These escaped as IndexError, TypeError (exit 3): the version's sidecar is now checked as Engine.load checks it."""
    sidecar = repo / "resnet18" / "1" / "model.plan.json"
    meta = json.loads(sidecar.read_text())
    edit(meta)
    sidecar.write_text(json.dumps(meta))
    before = snapshot(repo)
    with pytest.raises(
        ExportError,
        match=f"version 1 cannot be checked against the new config.pbtxt: {sidecar}: malformed metadata: inputs",
    ):
        export_engine(dynamic, repo, "resnet18", instances=3)  # a config change: every version is checked
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda p: p.write_bytes(b"\xff\xfe"), "'utf-8' codec can't decode"),  # was a UnicodeDecodeError (exit 3)
        (lambda p: os.mkfifo(p), "the config is a FIFO, not a regular file"),  # hung the export
        (lambda p: p.symlink_to("/dev/zero"), "the config is a character device"),  # read until memory ran out
        (lambda p: p.symlink_to(p.with_name("gone")), "No such file or directory"),
    ],
    ids=["not_utf8", "fifo", "dev_zero", "dangling_link"],
)
def test_a_config_that_cannot_be_read_is_an_export_error(repo, dynamic, make, why):
    config = repo / "resnet18" / "config.pbtxt"
    config.unlink()
    make(config)
    before = {k: v for k, v in snapshot(repo).items() if k != "resnet18/config.pbtxt"}
    with pytest.raises(
        ExportError, match=re.escape(f"{config}: the model's config cannot be read (") + ".*" + re.escape(why)
    ):
        export_engine(dynamic, repo, "resnet18")
    assert {k: v for k, v in snapshot(repo).items() if k != "resnet18/config.pbtxt"} == before
    assert os.path.lexists(config)


def test_a_sidecar_link_to_nothing_is_an_export_error(repo, dynamic):
    sidecar = repo / "resnet18" / "1" / "model.plan.json"
    sidecar.unlink()
    sidecar.symlink_to(sidecar.with_name("gone.json"))  # was FileNotFoundError, not a TrtnetError
    with pytest.raises(ExportError, match=f"{sidecar}: a link to a missing file"):
        export_engine(dynamic, repo, "resnet18", instances=2)


def test_a_stray_file_named_like_a_version_is_stepped_over(repo, dynamic):
    """The next version was computed from folders only, so a file `2` made it say "version 2 appeared while
    exporting" on every export."""
    (repo / "resnet18" / "2").write_text("notes")
    assert export_engine(dynamic, repo, "resnet18").version == 3


def test_concurrent_exports_each_add_a_version(tmp_path, dynamic):
    """Exports racing on one new model: all but one failed with "version 1 appeared while exporting"."""
    import threading

    got, start = [], threading.Barrier(4)

    def export() -> None:
        start.wait()
        try:
            got.append(export_engine(dynamic, tmp_path, "resnet18").version)
        except Exception as e:  # noqa: BLE001  collected for the assertion below
            got.append(repr(e))

    threads = [threading.Thread(target=export) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "resnet18").iterdir()) == ["1", "2", "3", "4", "config.pbtxt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18"]  # no staging folder left
    for v in range(1, 5):
        assert Engine.load(tmp_path / "resnet18" / str(v) / "model.plan").plan == dynamic.plan
    parse(tmp_path / "resnet18" / "config.pbtxt")


# -- the command line --------------------------------------------------------------------------------------


def test_command_line_exports_and_refuses(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setenv("TRTNET_CACHE_DIR", str(cache))  # the engine the fixtures built: a cache hit
    args = ["export-triton", "resnet18", "--repo", str(tmp_path), "--batch", "1:4:8", "--instances", "2", "--allow-rtx"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'resnet18' / '1' / 'model.plan'} (version 1)" in out
    assert "max_batch_size 8, dynamic batching" in out
    assert parse(tmp_path / "resnet18" / "config.pbtxt").instance_group[0].count == 2

    before = snapshot(tmp_path)
    for bad, message in [
        (["--name", "a/b"], "model name 'a/b': expected one folder name"),
        (["--version", "1"], "version 1 of model 'resnet18' exists"),
        (["--batch", "4", "--dynamic-batching"], "batch_size=4 builds a fixed-batch engine"),
    ]:
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("trtnet: error: ") and message in err, err
    assert snapshot(tmp_path) == before


def test_staging_folders_of_killed_exports_are_removed(tmp_path, dynamic):
    """A SIGKILLed export left `.trtnet-export-*` in the repository for good (Triton lists it on every poll);
    the next export removes those of dead writers and leaves a live one's alone."""
    import signal
    import subprocess
    import sys

    from trtnet.fileio import temporary_name

    export_engine(dynamic, tmp_path, "resnet18")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # What a writer leaves: its staging folder, named with its pid, half written.
        made = {}
        for who, pid in (("dead", child.pid), ("live", os.getpid())):
            staging = temporary_name(tmp_path / "trtnet-export-resnet18")
            staging = staging.with_name(staging.name.replace(f".{os.getpid()}.", f".{pid}."))
            (staging / "resnet18" / "2").mkdir(parents=True)
            (staging / "resnet18" / "2" / "model.plan").write_bytes(b"half a plan")
            made[who] = staging
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert export_engine(dynamic, tmp_path, "resnet18").version == 2
    finally:
        if child.poll() is None:
            child.kill()
    assert not made["dead"].exists() and made["live"].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([made["live"].name, "resnet18"])


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda repo: export_engine(resnet18(weights=None), repo, "m"),
            re.escape(
                "export_engine takes an engine (trtnet.build(...) or trtnet.Engine.load(...)), not ResNet; "
                "export_triton(model, ...) builds the engine for a model"
            ),
        ),
        (lambda repo: export_engine(None, repo, "m"), "export_engine takes an engine .* not NoneType"),
        (
            lambda repo: export_triton(resnet18(weights=None), None, "m"),
            "repo None: expected the model repository's folder",
        ),
    ],
    ids=["a_model", "none", "repo_none"],
)
def test_python_arguments_of_the_wrong_kind_are_export_errors(tmp_path, call, message):
    """These were AttributeError: 'ResNet' object has no attribute 'metadata', and pathlib's TypeError."""
    with pytest.raises(ExportError, match=message):
        call(tmp_path / "repo")
    assert list(tmp_path.iterdir()) == []


def test_a_real_full_disk_names_the_model_and_leaves_the_repository(tmp_path, dynamic):
    """A real short write (RLIMIT_FSIZE, in a child) inside Engine.save: the error named the hidden staging
    folder's plan (`repo/.trtnet-export-....tmp/resnet18/2/model.plan: cannot write the plan: File too large`)."""
    import resource
    import signal
    import subprocess
    import sys

    export_engine(dynamic, tmp_path, "resnet18")
    dynamic.save(tmp_path.parent / "engine.plan")
    before = snapshot(tmp_path)
    script = (
        "import sys, warnings, trtnet; from trtnet.export.triton import export_engine; warnings.simplefilter('ignore')\n"
        "try: export_engine(trtnet.Engine.load(sys.argv[1]), sys.argv[2], 'resnet18', instances=3)\n"
        "except trtnet.TrtnetError as e: print(type(e).__name__, e)"
    )

    def limit() -> None:  # in the child only: no file may grow past 1 MiB, and that is an error, not a signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path.parent / "engine.plan"), str(tmp_path)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert (
        done.stdout.strip() == f"ExportError {tmp_path / 'resnet18'}: cannot write version 2: cannot write the plan: "
        "File too large"
    ), done.stderr
    assert snapshot(tmp_path) == before


def test_command_line_exports_a_saved_plan_as_it_is(tmp_path, dynamic, capsys):
    """`--plan`: any saved plan (int8 and fp8 ones were reachable only from Python's export_engine)."""
    saved = dynamic.save(tmp_path / "r18.plan")
    repo = tmp_path / "repo"
    args = ["export-triton", "--plan", str(saved), "--repo", str(repo), "--allow-rtx"]
    assert main([*args, "--preferred-batch", "2", "8", "--max-queue-delay-us", "500"]) == 0, capsys.readouterr().err
    assert f"{saved} (fp16, {dynamic.backend}): wrote {repo / 'r18' / '1' / 'model.plan'}" in capsys.readouterr().out
    assert (repo / "r18" / "1" / "model.plan").read_bytes() == dynamic.plan
    config = parse(repo / "r18" / "config.pbtxt")
    assert config.max_batch_size == 8 and [list(t.dims) for t in config.input] == [[3, 224, 224]]
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500

    before = snapshot(repo)
    for bad, message in [
        (["--preferred-batch", "16"], "preferred batch size 16 is not allowed: expected sizes from 1 to the engine's "),
        (["--batch", "4"], "--plan " + str(saved) + ": the plan is exported as it was built; --batch would build"),
        (["--no-dynamic-batching", "--max-queue-delay-us", "9"], "--max-queue-delay-us sets Triton's dynamic batching"),
    ]:
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("trtnet: error: ") and message in err, err
    missing = ["export-triton", "--plan", str(tmp_path / "none.plan"), "--repo", str(repo)]
    assert main(missing) == 2 and "none.plan: cannot read the plan: No such file" in capsys.readouterr().err
    assert snapshot(repo) == before


def as_backend(engine: Engine, backend: str):
    """A copy of `engine`'s plan whose sidecar names `backend`: what another machine's build would have saved."""
    import dataclasses

    from trtnet.runtime.plan import Plan

    return Plan(
        **{f.name: getattr(engine, f.name) for f in dataclasses.fields(Plan) if f.name != "backend"}, backend=backend
    )


def test_a_plan_triton_cannot_load_is_an_error_unless_allowed(tmp_path, dynamic, capsys):
    """Was a warning beside a repository that Triton's tensorrt backend would not load."""
    with pytest.raises(ExportError, match=r"a tensorrt_rtx 1\.2 plan cannot be loaded by Triton's tensorrt backend"):
        export_engine(as_backend(dynamic, "tensorrt_rtx 1.2"), tmp_path, "m", allow_rtx=False)
    assert list(tmp_path.iterdir()) == []
    if not dynamic.backend.startswith("tensorrt_rtx"):
        return
    saved = dynamic.save(tmp_path / "r18.plan")
    repo = tmp_path / "repo"
    assert main(["export-triton", "--plan", str(saved), "--repo", str(repo)]) == 2
    err = capsys.readouterr().err
    assert "cannot be loaded by Triton's tensorrt backend" in err and "--allow-rtx" in err
    assert main(["export-triton", "resnet18", "--repo", str(repo), "--batch", "1:4:8"]) == 2  # refused before the build
    assert "no --weights" not in capsys.readouterr().out and not repo.exists()
