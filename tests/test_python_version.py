"""The oldest Python the package claims (pyproject.toml's requires-python), checked statically with vermin.

A test session runs one interpreter, usually a newer one, so an import that exists only from 3.11 on (`typing.Unpack`,
`typing.Self`) passes every other test and still breaks `import trtnet` on Ubuntu 22.04's Python 3.10. vermin reads
the source instead: every module, function and member it uses, against the version each appeared in.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _minimum() -> str:
    """The version requires-python names (`>=3.10` -> `3.10`)."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r'^requires-python\s*=\s*">=\s*(\d+\.\d+)"', text, re.MULTILINE)
    assert found, 'pyproject.toml: no requires-python = ">=X.Y" line'
    return found.group(1)


def _vermin(*paths: Path) -> subprocess.CompletedProcess[str]:
    # -t=X.Y- : nothing may need more than X.Y. --violations: list only what does. --eval-annotations: count
    # annotations as code, since get_type_hints (dataclasses, TypedDict checks) evaluates some of them.
    # vermin has no __main__: its console script's two lines, run by this interpreter (the venv's vermin).
    run = "import sys; from vermin import main; sys.exit(main())"
    command = [sys.executable, "-c", run, f"-t={_minimum()}-", "--no-tips", "--violations", "--eval-annotations"]
    return subprocess.run([*command, *map(str, paths)], capture_output=True, text=True, timeout=300)


def test_the_package_needs_no_newer_python_than_it_claims() -> None:
    result = _vermin(ROOT / "trtnet")
    assert result.returncode == 0, f"vermin finds code needing Python > {_minimum()}:\n{result.stdout}{result.stderr}"
    assert "Target versions not met" not in result.stdout


def test_the_check_reports_a_311_import_even_when_only_type_checkers_need_it(tmp_path: Path) -> None:
    # The very shape that broke trtnet on 3.10: annotations are strings, yet the import itself runs. vermin also
    # reports it under `if TYPE_CHECKING:` (it cannot tell), which is why trtnet takes Unpack from typing_extensions.
    planted = tmp_path / "planted.py"
    planted.write_text(
        "from __future__ import annotations\n"
        "from typing import Any, Unpack\n\n\n"
        "def build(**options: Unpack[Any]) -> None: ...\n"
    )
    result = _vermin(planted)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'typing.Unpack' member requires !2, 3.11" in result.stdout
    assert "Target versions not met" in result.stdout


def test_the_check_reports_a_311_member_used_by_attribute(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("import typing\n\n\nclass Node:\n    def copy(self) -> typing.Self: ...\n")
    result = _vermin(planted)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'typing.Self' member requires !2, 3.11" in result.stdout
