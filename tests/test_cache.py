"""The engine cache: hits, misses when anything that shapes the plan changes, damaged entries, concurrent builders."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trtnet
import trtnet.builder.build
from tests.runtime_models import TwoInputs, two_inputs
from trtnet.builder.cache import engine_key
from trtnet.runtime.engine import Engine

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """Counts real TensorRT builds (cache hits do not build)."""
    calls: list[str] = []
    module = trtnet.builder.build
    real = module.build_network

    def counting(net, **kwargs):
        calls.append(net.label)
        return real(net, **kwargs)

    monkeypatch.setattr(module, "build_network", counting)
    return calls


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.plan"))


def test_hit(tmp_path, builds):
    first = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    second = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert len(builds) == 1
    assert second.plan == first.plan and second.inputs == first.inputs and second.outputs == first.outputs
    assert len(entries(tmp_path)) == 1


def test_cache_false_always_builds(tmp_path, builds):
    for _ in range(2):
        trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache=False, cache_dir=tmp_path)
    assert len(builds) == 2 and entries(tmp_path) == []


def test_env_folder(tmp_path, builds, monkeypatch):
    monkeypatch.setenv("TRTNET_CACHE_DIR", str(tmp_path / "env"))
    trtnet.build(two_inputs(), batch_size=2, precision="fp32")
    assert len(entries(tmp_path / "env")) == 1


def test_miss_on_a_changed_weight(tmp_path, builds):
    trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    model = two_inputs()
    value = model.conv.weight.value.copy()
    value[0, 0, 0, 0] += 1e-3
    model.conv.weight.value = value
    trtnet.build(model, batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert len(builds) == 2 and len(entries(tmp_path)) == 2


@pytest.mark.parametrize("change", ["precision", "batch", "profile", "dilation"])
def test_key_covers(change):
    """Every build input that changes the plan changes the key; the same inputs give the same key."""

    def key(model=None, batch=2, precision="fp32"):
        net = trtnet.emit(model or two_inputs(), batch, precision=precision)
        options = {"precision": precision, "batch_size": batch}
        return engine_key(net.network, net.keepalive, options)

    base = key()
    assert key() == base
    other = {
        "precision": lambda: key(precision="fp16"),
        "batch": lambda: key(batch=4),
        "profile": lambda: key(batch=(1, 2, 4)),
        "dilation": lambda: key(model=_dilated()),
    }[change]()
    assert other != base


def _dilated() -> TwoInputs:
    """The same weights and shapes in a network that differs in one layer attribute (the conv's dilation)."""
    model = two_inputs()
    model.conv._config.update(dilation=2, padding=2)
    return model


@pytest.mark.parametrize("damage", ["truncated", "no_sidecar", "bad_sidecar", "other_backend"])
def test_damaged_entry_is_rebuilt_with_a_warning(tmp_path, builds, damage):
    trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    (plan,) = tmp_path.glob("*.plan")
    good = plan.read_bytes()
    if damage == "truncated":
        plan.write_bytes(good[: len(good) // 3])
    elif damage == "no_sidecar":
        Path(f"{plan}.json").unlink()
    elif damage == "other_backend":  # e.g. a cache folder shared with an older TensorRT
        meta_path = Path(f"{plan}.json")
        meta_path.write_text(meta_path.read_text().replace(trtnet.backend.get_backend().version, "0.9.0"))
    else:
        Path(f"{plan}.json").write_text("{")
    with pytest.warns(UserWarning, match=rf"trtnet engine cache: entry {plan.name} is unusable \(.+\); rebuilding it"):
        engine = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert len(builds) == 2
    assert Engine.load(plan).plan == engine.plan  # the entry is whole again


def test_two_processes_building_one_key_leave_one_good_entry(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    script = str(ROOT / "tests" / "runtime_models.py")
    procs = [
        subprocess.Popen(
            [sys.executable, script, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    # Each prints its plan's sha256 and build seconds: equal when the second one waited for the first and
    # reused its entry (two builds would hardly agree to the millisecond).
    results = {o[0].strip().splitlines()[-1] for o in outs}
    (plan,) = tmp_path.glob("*.plan")
    assert len(results) == 1, results
    assert hashlib.sha256(Engine.load(plan).plan).hexdigest() == results.pop().split()[0]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_reference_unaffected_by_cache(tmp_path):
    """Building (and caching) leaves the model usable: the interpreter still runs it."""
    model = two_inputs()
    trtnet.build(model, batch_size=2, precision="fp32", cache_dir=tmp_path)
    x = np.ones((2, 3, 8, 8), np.float32)
    (z,) = trtnet.reference(model, x, np.zeros((2, 4, 8, 8), np.float32))
    assert z.shape == (2, 4, 8, 8) and np.isfinite(z).all()


def test_cached_plan_the_gpu_refuses_is_rebuilt_by_the_builder(tmp_path, builds, monkeypatch):
    """The builder asks the runtime whether this GPU takes a cached plan before handing it out, and rebuilds it
    when the runtime says no (`PlanRejected`): the runtime never calls back into the builder. With no GPU here,
    the entry is made to claim one (its sidecar's target) and the runtime's answer is the GPU's refusal."""
    trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    (plan,) = tmp_path.glob("*.plan")
    sidecar = plan.with_name(plan.name + ".json")
    meta = json.loads(sidecar.read_text())
    meta["target"] = "sm_89"
    sidecar.write_text(json.dumps(meta))
    asked: list[str] = []

    def refuse(engine):
        asked.append(engine.target)
        raise trtnet.PlanRejected("this GPU cannot run the plan: a test's refusal; rebuild it with trtnet.build")

    monkeypatch.setattr(trtnet.Engine, "loaded", refuse)
    with pytest.warns(
        UserWarning,
        match=rf"trtnet engine cache: entry {plan.name} does not run on this GPU "
        r"\(this GPU cannot run the plan: a test's refusal; .+\); rebuilding it",
    ):
        engine = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert asked == ["sm_89"] and len(builds) == 2
    assert engine.target == "aot" and json.loads(sidecar.read_text())["target"] == "aot"
    trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)  # an "aot" plan: not asked
    assert asked == ["sm_89"] and len(builds) == 2


def test_the_key_follows_the_policy_not_how_it_was_spelt(tmp_path, builds):
    """`precision="fp16"` and `policy=Policy(precision="fp16")` are one build; another policy field is another."""
    trtnet.build(two_inputs(), batch_size=2, precision="fp16", cache_dir=tmp_path)
    trtnet.build(two_inputs(), batch_size=2, policy=trtnet.Policy(precision="fp16"), cache_dir=tmp_path)
    assert len(builds) == 1
    trtnet.build(
        two_inputs(), batch_size=2, policy=trtnet.Policy(precision="fp16", norm_fp32=False), cache_dir=tmp_path
    )
    assert len(builds) == 2 and len(entries(tmp_path)) == 2


# -- an entry that is malformed, not a file, or another key's; a folder that cannot be used -------------------


def _entry(tmp_path) -> Path:
    trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    (plan,) = tmp_path.glob("*.plan")
    return plan


def _rebuilt(tmp_path, builds, plan, reason: str) -> None:
    """The next build warns with `reason`, builds, and leaves a whole entry in place."""
    with pytest.warns(UserWarning, match=rf"trtnet engine cache: entry {plan.name} is unusable \({reason}"):
        engine = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert len(builds) == 2
    assert Engine.load(plan).plan == engine.plan and Engine.load(plan).cache_key == plan.stem


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("plan_bytes", "abc", "{side}: malformed metadata: plan_bytes is 'abc'"),
        ("plan_bytes", 1e400, "{side}: malformed metadata: plan_bytes is inf"),
        ("inputs", [[[[[[[[[]]]]]]]]], "{side}: malformed metadata: inputs\\[0\\] is"),
        ("num_layers", "12", "{side}: malformed metadata: num_layers is '12'"),
    ],
)
def test_a_malformed_sidecar_is_rebuilt(tmp_path, builds, field, value, reason):
    plan = _entry(tmp_path)
    side = Path(f"{plan}.json")
    meta = json.loads(side.read_text())
    meta[field] = value
    side.write_text(json.dumps(meta))
    _rebuilt(tmp_path, builds, plan, reason.format(side=re.escape(str(side))))


def test_a_deeply_nested_sidecar_is_rebuilt(tmp_path, builds):
    plan = _entry(tmp_path)
    Path(f"{plan}.json").write_text("[" * 100_000 + "]" * 100_000)
    _rebuilt(tmp_path, builds, plan, re.escape(f"{plan}.json: unreadable metadata (RecursionError"))


@pytest.mark.parametrize("which", ["plan", "sidecar"])
@pytest.mark.parametrize("kind", ["directory", "fifo", "dev_zero"])
def test_an_entry_that_is_not_a_regular_file_is_rebuilt(tmp_path, builds, which, kind):
    plan = _entry(tmp_path)
    target = plan if which == "plan" else Path(f"{plan}.json")
    target.unlink()
    if kind == "directory":
        target.mkdir()
        (target / "inside").write_text("x")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    said = {"directory": "a directory", "fifo": "a FIFO", "dev_zero": "a character device"}[kind]
    what = "plan" if which == "plan" else "metadata"
    signal.alarm(60)  # a FIFO must not hang the build
    try:
        _rebuilt(tmp_path, builds, plan, re.escape(f"{target}: the {what} is {said}, not a regular file"))
    finally:
        signal.alarm(0)
    assert target.is_file() and not target.is_symlink()


def test_an_entry_of_another_key_is_refused(tmp_path, builds):
    """A valid entry of another model copied onto this key is not served: the sidecar records its key."""
    trtnet.build(two_inputs(0), batch_size=2, precision="fp32", cache_dir=tmp_path)
    (a,) = tmp_path.glob("*.plan")
    trtnet.build(two_inputs(1), batch_size=2, precision="fp32", cache_dir=tmp_path)
    (b,) = set(tmp_path.glob("*.plan")) - {a}
    for suffix in ("", ".json"):
        Path(f"{b}{suffix}").write_bytes(Path(f"{a}{suffix}").read_bytes())
    with pytest.warns(
        UserWarning,
        match=rf"entry {b.name} is unusable \(its metadata records key {a.stem}: an "
        r"entry copied from elsewhere\); rebuilding it",
    ):
        engine = trtnet.build(two_inputs(1), batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert len(builds) == 3 and Engine.load(b).cache_key == b.stem and engine.plan != Engine.load(a).plan


@pytest.mark.parametrize("how", ["a_file", "under_a_file"])
def test_a_folder_that_cannot_be_used_warns_and_builds_uncached(tmp_path, builds, how):
    folder = tmp_path / "cache"
    folder.write_text("not a folder")
    if how == "under_a_file":
        folder = folder / "sub"
    why = "not a folder" if how == "a_file" else "Not a directory"
    with pytest.warns(
        UserWarning,
        match=re.escape(f"trtnet engine cache: {folder} cannot be used ({why}); building without the cache"),
    ):
        engine = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=folder)
    assert len(builds) == 1 and engine.plan and engine.cache_key == ""


def test_a_full_cache_folder_warns_and_returns_the_engine(tmp_path, builds, monkeypatch):
    real = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.warns(
        UserWarning,
        match=r"trtnet engine cache: cannot store entry [0-9a-f]{40}\.plan \(.+\.plan: "
        r"cannot write the plan: No space left on device\); the engine is built but "
        r"not cached",
    ):
        engine = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    monkeypatch.setattr(os, "write", real)
    assert len(builds) == 1 and engine.plan and entries(tmp_path) == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_killed_builders_temporaries_are_removed(tmp_path, builds):
    import trtnet.fileio

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = tmp_path / f".{'0' * 40}.plan.{trtnet.fileio._HOST}.{p.pid}.00000000.tmp"
    dead.write_bytes(b"\0" * 1000)
    trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert not dead.exists() and len(entries(tmp_path)) == 1


def test_a_tilde_in_the_cache_folder_is_the_home_folder(monkeypatch, tmp_path):
    """TRTNET_CACHE_DIR='~/x' from an environment file (no shell to expand it), or cache_dir='~/x', made a folder
    named `~` in the current one."""
    from pathlib import Path

    from trtnet.target import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TRTNET_CACHE_DIR", "~/engines")
    assert cache_dir() == tmp_path / "engines"
    assert cache_dir("~/other") == tmp_path / "other"
    assert cache_dir(Path("relative")) == Path("relative")


@pytest.mark.parametrize("make", [lambda p: (p / "inside").mkdir(parents=True), os.mkfifo], ids=["a_folder", "a_fifo"])
def test_a_lock_path_that_is_not_a_file_is_replaced(tmp_path, builds, make):
    """A folder at `<key>.lock` stopped caching that key for good, each build warning that the whole cache
    folder "cannot be used (Is a directory)"; a FIFO the same ("not seekable")."""
    import warnings

    trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    (lock,) = tmp_path.glob("*.lock")
    for entry in tmp_path.glob("*.plan*"):
        entry.unlink()
    lock.unlink()
    make(lock)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot be used" warning
        trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
        trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert len(builds) == 2 and len(entries(tmp_path)) == 1 and lock.is_file()


# -- issue 20: what the key holds, and what a hit says ---------------------------------------------------------


def test_a_hit_says_it_is_one(tmp_path, builds):
    first = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    again = trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert len(builds) == 1
    assert "built in" in first.summary("m") and "engine cache" not in first.summary("m")
    assert "from the engine cache" in again.summary("m"), again.summary("m")


def test_the_same_ranges_from_another_calibration_file_are_a_hit(tmp_path, builds):
    from tests.test_quantization import batches, tiny

    cal = trtnet.calibrate(tiny(), batches(), "max")
    a, b = cal.save(tmp_path / "a.json"), cal.save(tmp_path / "b.json")
    first = trtnet.build(tiny(), 2, precision="int8", calibration=a, cache_dir=tmp_path / "cache")
    again = trtnet.build(tiny(), 2, precision="int8", calibration=b, cache_dir=tmp_path / "cache")
    assert len(builds) == 1 and again.plan == first.plan
    other = type(cal)({k: v * 2 for k, v in cal.amax.items()}, cal.keep, cal.method, cal.meta)
    trtnet.build(tiny(), 2, precision="int8", calibration=other, cache_dir=tmp_path / "cache")
    assert len(builds) == 2  # other ranges: another engine


def test_an_onnx_files_external_weights_are_in_the_key(tmp_path, builds):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    folder = tmp_path / "model"
    folder.mkdir()

    def write() -> Path:
        w = numpy_helper.from_array(np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096, "w")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64])],
            [w],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        path = folder / "m.onnx"
        onnx.save_model(model, str(path), save_as_external_data=True, location="m.weights", size_threshold=0)
        return path

    path = write()
    assert (folder / "m.weights").stat().st_size == 64 * 64 * 4  # the weights are outside the .onnx
    trtnet.build(trtnet.parse_onnx(path), cache_dir=tmp_path / "cache")
    trtnet.build(trtnet.parse_onnx(path), cache_dir=tmp_path / "cache")
    assert len(builds) == 1
    weights = folder / "m.weights"  # the .onnx unchanged, its external weights doubled in place
    weights.write_bytes((np.frombuffer(weights.read_bytes(), np.float32) * 2).tobytes())
    trtnet.build(trtnet.parse_onnx(path), cache_dir=tmp_path / "cache")
    assert len(builds) == 2, "a stale engine was reused for changed external weights"


def test_cli_build_no_cache_stores_nothing(tmp_path):
    from tests.helpers import trtnet_cli

    cache = tmp_path / "cache"
    for _ in range(2):
        result = trtnet_cli(
            "build", "resnet18", "--batch", "1", "--no-cache", "-o", tmp_path / "r.plan", TRTNET_CACHE_DIR=str(cache)
        )
        assert result.returncode == 0, result
        assert "built in" in result.stdout and "engine cache" not in result.stdout, result.stdout
    assert not cache.exists() or entries(cache) == []
