"""The project's habits, checked in the suite: ruff's lint and format (configured in pyproject.toml) are clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    """The ruff of the environment running the tests (the `test` extra installs it beside the interpreter)."""
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: `pip install -e '.[test]'` installs it (make test does)")
    return [found]


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*_ruff(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_ruff_lint_is_clean():
    result = _run("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _run("format", "--check", "--no-cache", ".")
    assert result.returncode == 0, "run `ruff format .`:\n" + result.stdout + result.stderr


def test_the_checks_see_a_planted_fault(tmp_path):
    """The two checks above read this project's configuration and fail on a file that breaks it."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "bad.py").write_text("import os\nx = {'a':1}\n")
    lint = _run("check", "--no-cache", ".", cwd=tmp_path)
    assert lint.returncode == 1 and "F401" in lint.stdout, lint.stdout + lint.stderr
    fmt = _run("format", "--check", "--no-cache", ".", cwd=tmp_path)
    assert fmt.returncode == 1 and "bad.py" in fmt.stdout, fmt.stdout + fmt.stderr
