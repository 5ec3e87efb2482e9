"""`trtnet inspect FILE.plan`: the sidecar's and the plan's facts printed without a GPU; bad input one line, exit 2."""

from __future__ import annotations

import json

import pytest

import trtnet
from tests.helpers import error_line, trtnet_cli


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from tests.runtime_models import two_inputs

    folder = tmp_path_factory.mktemp("inspect")
    engine = trtnet.build(two_inputs(), (1, 2, 4), precision="fp32", cache_dir=folder / "cache")
    return engine.save(folder / "two.plan")


def test_inspect_prints_what_the_sidecar_and_plan_say(saved):
    meta = json.loads(saved.with_name("two.plan.json").read_text())
    result = trtnet_cli("inspect", saved)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    size = saved.stat().st_size
    assert lines[:5] == [
        f"plan {saved}: {size:,} bytes ({size / 2**20:.1f} MiB)",
        f"  backend: {meta['backend']}",
        f"  target: {meta['target']}",
        "  precision: fp32",
        f"  layers: {meta['num_layers']}, built in {meta['build_seconds']:.1f} s",
    ]
    x, y = meta["inputs"]
    assert lines[5:11] == [
        "  inputs (2):",
        f"    x: float32 {x['shape']}",
        f"      profile: min {[1, *x['shape'][1:]]}, opt {x['shape']}, max {[4, *x['shape'][1:]]}",
        f"    y: float32 {y['shape']}",
        f"      profile: min {[1, *y['shape'][1:]]}, opt {y['shape']}, max {[4, *y['shape'][1:]]}",
        "  outputs (1):",
    ]
    assert lines[11:] == [f"    z: float32 {meta['outputs'][0]['shape']}"]


def test_bad_plans_are_one_line_and_exit_2(saved, tmp_path):
    missing = trtnet_cli("inspect", tmp_path / "none.plan")
    assert missing.returncode == 2
    assert (
        error_line(missing)
        == f"trtnet: error: {tmp_path / 'none.plan'}: cannot read the plan: No such file or directory"
    )

    not_a_plan = tmp_path / "notes.plan"
    not_a_plan.write_text("not a plan")
    result = trtnet_cli("inspect", not_a_plan)
    assert result.returncode == 2 and error_line(result).startswith(f"trtnet: error: {not_a_plan}: no metadata at ")

    # a folder, and a sidecar given for its plan: said as such (both were "no metadata at ....json")
    (tmp_path / "plans").mkdir()
    result = trtnet_cli("inspect", tmp_path / "plans")
    assert error_line(result) == f"trtnet: error: {tmp_path / 'plans'}: the plan is a directory, not a regular file"
    sidecar = tmp_path / "x.plan.json"
    sidecar.write_text("{}")
    result = trtnet_cli("inspect", sidecar)
    assert error_line(result) == f"trtnet: error: {sidecar}: this is a plan's sidecar; give the plan, x.plan"

    # the sidecar of another plan: its size and sha256 do not match these bytes
    other = tmp_path / "other.plan"
    other.write_bytes(saved.read_bytes()[:-1] + b"\0")
    other.with_name("other.plan.json").write_bytes(saved.with_name("two.plan.json").read_bytes())
    result = trtnet_cli("inspect", other)
    assert result.returncode == 2 and error_line(result).startswith(f"trtnet: error: {other}")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_sidecar_strings_are_printed_as_escapes_where_a_terminal_would_act_on_them(saved, tmp_path):
    """A sidecar is data: its escape sequences and newlines went to the terminal as they were, and a lone surrogate
    in a name made printing it an internal error (stdout cannot encode it)."""
    import shutil

    plan = tmp_path / "odd.plan"
    shutil.copy(saved, plan)
    meta = json.loads(saved.with_name("two.plan.json").read_text())
    meta["target"] = "\x1b[31mRED\n\nline"
    meta["inputs"][0]["name"] = "x\ud800\x1b[2J"
    plan.with_name("odd.plan.json").write_text(json.dumps(meta))
    result = trtnet_cli("inspect", plan)
    assert result.returncode == 0, result.stderr
    result.stdout.encode("utf-8")  # what a UTF-8 stdout must take
    assert "\x1b" not in result.stdout and "  target: \\x1b[31mRED\\n\\nline" in result.stdout.splitlines()
    assert "    x\\ud800\\x1b[2J: float32 [" in result.stdout
