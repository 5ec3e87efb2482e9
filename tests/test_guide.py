"""The README's "Your own model" guide, run as written: its python blocks (a block after `<!-- file: NAME -->` is
written to NAME, the others run in order in one namespace) and then its `trtnet ...` commands, in-process through
`trtnet.cli.main`, all in one fresh folder. So the guide cannot go stale."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.helpers import trtnet_cli
from trtnet.zoo import REGISTRY

pytest.importorskip("torch", reason="the guide starts from a PyTorch model")
pytest.importorskip("safetensors.torch", reason="the guide saves the PyTorch weights with safetensors.torch")

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(?:<!-- file: (?P<file>[\w.]+) -->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)


def guide_blocks() -> list[tuple[str, str | None, str]]:
    """(language, file name or None, code) of each fenced block of the guide's section, in order."""
    text = README.read_text()
    start = text.index("\n## Your own model\n")
    section = text[start : text.index("\n## ", start + 1)]
    return [(m["lang"], m["file"], m["code"]) for m in BLOCK.finditer(section)]


def commands(code: str) -> list[list[str]]:
    """The `trtnet ...` lines of a shell block as argument lists, trailing comments removed."""
    return [shlex.split(line, comments=True)[1:] for line in code.splitlines() if line.startswith("trtnet ")]


def test_the_guide_has_a_file_a_script_and_commands():
    kinds = [(lang, file is not None) for lang, file, _ in guide_blocks()]
    assert kinds == [("python", True), ("python", False), ("sh", False)]
    shown = [args[:2] for _, _, code in guide_blocks() if code for args in commands(code)]
    assert shown == [
        ["summary", "my_model.py:my_net"],
        ["verify", "my_model.py:my_net"],
        ["build", "my_model.py:my_net"],
    ]


def test_the_guide_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # `from my_model import ...`, as a script beside it does
    try:
        namespace: dict = {"__name__": "__guide__"}
        for lang, file, code in guide_blocks():
            if file:
                (tmp_path / file).write_text(code)
            elif lang == "python":
                exec(compile(code, f"{README}:guide", "exec"), namespace)
        printed = capsys.readouterr().out
        assert re.search(r"^\d+ layers, rel error \d\.\de-\d\d$", printed, re.M), printed
        assert (tmp_path / "my_net.plan").is_file()

        for lang, _, code in guide_blocks():
            for args in commands(code) if lang == "sh" else []:
                result = trtnet_cli(*args)
                assert result.returncode == 0, (args, result.stdout, result.stderr)
                if args[0] == "verify":
                    assert "my_net: passed" in result.stdout, result.stdout
                    assert "reference fp32 logits: rel error" in result.stdout
                if args[0] == "summary":
                    assert result.stdout.startswith("my_net (TorchNet in my_model.py), batch 1, fp32")
    finally:
        REGISTRY.pop("my_net", None)
        sys.modules.pop("my_model", None)
