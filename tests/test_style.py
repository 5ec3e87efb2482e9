"""The project's habits, checked in the suite: ruff's lint and format (configured in pyproject.toml) are clean."""

from __future__ import annotations

import re
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


def test_modules_named_in_backquotes_exist():
    """Docstrings pointed readers to `trtnet.triton_config` and `trtnet.triton`, modules that moved under
    trtnet/export/ long ago: every `trtnet.a.b` named in backquotes in the package must import (or be an
    attribute of what does)."""
    import importlib

    def resolves(ref: str) -> bool:
        parts = ref.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attribute in parts[i:]:
                if not hasattr(obj, attribute):
                    return False
                obj = getattr(obj, attribute)
            return True
        return False

    named = {
        (str(path.relative_to(ROOT)), ref)
        for path in sorted((ROOT / "trtnet").rglob("*.py"))
        for ref in re.findall(r"`(trtnet(?:\.[A-Za-z_]\w*)+)", path.read_text(encoding="utf-8"))
    }
    assert len(named) > 20  # the pattern finds what it should
    assert sorted((path, ref) for path, ref in named if not resolves(ref)) == []
