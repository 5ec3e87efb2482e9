"""The README as a new user reads it: no leftovers of a merge, and its Python examples run as written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_merge_conflict_markers_in_tracked_text_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    # A conflict opens with `<<<<<<< ` and closes with `>>>>>>> `; a line of seven `=` alone may be a heading rule.
    opening, closing = re.compile(r"^<{7} ", re.M), re.compile(r"^>{7} ", re.M)
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".md", ".py", ".toml", ".sh", ".txt", ".cfg", ".yml", ".yaml", ""} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if closing.search(text):
            found += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}" for m in opening.finditer(text)]
    assert not found, f"merge conflict markers left in: {', '.join(found)}"


def _blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def test_python_blocks_compile_and_name_what_exists():
    """Every ```python block parses, and every trtnet name it imports or reaches (`trtnet.x.y`) exists."""
    import ast
    import importlib

    blocks = _blocks("python")
    assert len(blocks) >= 4
    missing = []
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trtnet"):
                module = importlib.import_module(node.module)
                missing += [f"{node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)]
            elif isinstance(node, ast.Attribute):
                parts, value = [node.attr], node.value
                while isinstance(value, ast.Attribute):
                    parts.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id == "trtnet":
                    obj = importlib.import_module("trtnet")
                    for part in reversed(parts):
                        if not hasattr(obj, part):
                            try:
                                obj = importlib.import_module(f"{obj.__name__}.{part}")
                            except (ImportError, AttributeError):
                                missing.append(f"trtnet.{'.'.join(reversed(parts))}")
                                break
                        else:
                            obj = getattr(obj, part)
    assert not missing, missing


def test_inline_trtnet_names_exist():
    """Names the prose quotes in backticks, `trtnet.x(...)` and `trtnet.x.y`, exist."""
    import importlib

    text = (ROOT / "README.md").read_text()
    missing = []
    for name in sorted(set(re.findall(r"`(trtnet(?:\.\w+)+)", text))):
        obj, parts = importlib.import_module("trtnet"), name.split(".")[1:]
        for i, part in enumerate(parts):
            if hasattr(obj, part):
                obj = getattr(obj, part)
                continue
            try:
                obj = importlib.import_module(".".join(["trtnet", *parts[: i + 1]]))
            except ImportError:
                missing.append(name)
                break
    assert not missing, missing
