"""The README as a new user reads it: no leftovers of a merge, and its Python examples run as written."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_merge_conflict_markers_in_tracked_text_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    marker = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".md", ".py", ".toml", ".sh", ".txt", ".cfg", ".yml", ".yaml", ""} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}" for m in marker.finditer(text)]
    assert not found, f"merge conflict markers left in: {', '.join(found)}"
