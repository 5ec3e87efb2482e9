"""The documentation site: it builds with `mkdocs build --strict`, and every Python block of docs/*.md runs.

Blocks run as the README's guide does (tests/test_guide.py): a block after `<!-- file: NAME -->` is written to NAME,
the page's other ```python blocks run in order in one namespace, in a fresh folder with a fresh engine cache. A
block that cannot run here is marked just above it with `<!-- docs-test: skip REASON -->`; it is still compiled,
and only a handful may exist."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(
    r"(?:<!-- (?:file: (?P<file>[\w.]+)|docs-test: skip (?P<skip>[^\n]*?)) -->\n)?^```(?P<lang>\w+)\n(?P<code>.*?)^```",
    re.S | re.M,
)
MAX_SKIPPED = 3  # blocks that need a GPU or a running server: few, each with its reason
PAGES = sorted(DOCS.glob("*.md"))
# Pages other branches of issue 18 write (the DSL, file I/O, the benchmark, ONNX, the command line): the README
# links to them already. Once they are merged this set must be emptied, which the test below enforces.
PENDING_PAGES: set[str] = set()  # pages the README links to that are still being written on other branches


def blocks(page: Path) -> list[tuple[str, str | None, str | None, str]]:
    """(language, file name or None, skip reason or None, code) of each fenced block of `page`, in order."""
    return [(m["lang"], m["file"], m["skip"], m["code"]) for m in BLOCK.finditer(page.read_text())]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )


def test_the_site_builds_strictly(tmp_path):
    result = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    # The API page is generated from the docstrings: a docstring's text must be in it.
    assert "the one options object" in api, "mkdocstrings rendered no docstring of trtnet.Policy"


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The build above can fail: the same site with one link to a page that does not exist is refused."""
    shutil.copytree(DOCS, tmp_path / "docs")
    config = (ROOT / "mkdocs.yml").read_text().replace("paths: [.]", f"paths: [{ROOT}]")
    (tmp_path / "mkdocs.yml").write_text(config)
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr, result.stderr[-4000:]


def test_every_page_is_in_the_nav():
    """A page left out of the nav is built but found by no reader (mkdocs says so only at INFO level)."""
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [page.name for page in PAGES if not re.search(rf":\s*{re.escape(page.name)}\s*$", nav, re.M)]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"


def test_the_readme_links_to_pages_that_exist():
    links = re.findall(r"\]\((docs/[\w./-]+?\.md)(?:#[\w-]*)?\)", (ROOT / "README.md").read_text())
    assert len(links) >= 8, links
    missing = sorted({link for link in links if not (ROOT / link).is_file()} - PENDING_PAGES)
    assert not missing, f"the README links to missing pages: {missing}"


def test_pending_pages_are_still_pending():
    arrived = sorted(page for page in PENDING_PAGES if (ROOT / page).exists())
    assert not arrived, f"{arrived} exist now: remove them from PENDING_PAGES in tests/test_docs.py"


def test_few_blocks_are_skipped_and_each_says_why():
    skipped = [(page.name, reason) for page in PAGES for _, _, reason, _ in blocks(page) if reason is not None]
    assert all(reason.strip() for _, reason in skipped), skipped
    assert len(skipped) <= MAX_SKIPPED, skipped


@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(lang == "python" for lang, *_ in blocks(p))], ids=lambda p: p.name
)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    run_page(page, tmp_path, monkeypatch)


def run_page(page: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run `page`'s blocks in `folder` (see the module docstring); the namespace they ran in."""
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))  # a page's `<!-- file: -->` modules import as a script's would
    monkeypatch.setenv("TRTNET_CACHE_DIR", str(folder / "cache"))  # never the user's cache
    namespace: dict = {"__name__": "__docs__"}
    modules_before = set(sys.modules)
    try:
        for lang, file, skip, code in blocks(page):
            if lang != "python":
                continue
            if file:
                (folder / file).write_text(code)
                continue
            compiled = compile(code, f"{page}:block", "exec")  # skipped blocks must still compile
            if skip is None:
                exec(compiled, namespace)
    finally:
        # Files a page wrote and imported must not leak into the next page's run.
        for name in set(sys.modules) - modules_before:
            if str(folder) in str(getattr(sys.modules[name], "__file__", "") or ""):
                del sys.modules[name]
    return namespace


def test_the_runner_runs_files_and_blocks_skips_what_is_marked_and_fails_on_error(tmp_path, monkeypatch):
    """The page runner can fail: a planted page's failing block raises, a marked block does not run but must
    compile, and a `<!-- file: -->` block is importable by the blocks after it."""
    fence = "`" * 3
    page = tmp_path / "planted.md"
    page.write_text(
        f"<!-- file: planted_helper.py -->\n{fence}python\nVALUE = 41\n{fence}\n\n"
        f"{fence}python\nfrom planted_helper import VALUE\nanswer = VALUE + 1\n{fence}\n\n"
        f"<!-- docs-test: skip it needs a GPU -->\n{fence}python\nraise RuntimeError('ran')\n{fence}\n"
    )
    assert [(f, s) for _, f, s, _ in blocks(page)] == [
        ("planted_helper.py", None),
        (None, None),
        (None, "it needs a GPU"),
    ]
    assert run_page(page, tmp_path / "a", monkeypatch)["answer"] == 42
    page.write_text(page.read_text() + f"\n{fence}python\nassert answer == 41, 'planted'\n{fence}\n")
    with pytest.raises(AssertionError, match="planted"):
        run_page(page, tmp_path / "b", monkeypatch)
    page.write_text(f"<!-- docs-test: skip a reason -->\n{fence}python\ndef broken(:\n{fence}\n")
    with pytest.raises(SyntaxError):
        run_page(page, tmp_path / "c", monkeypatch)


def _missing_name(name: str) -> bool:
    """Whether `trtnet.x.y` names neither an attribute nor a module, walking from `trtnet`."""
    obj, parts = importlib.import_module("trtnet"), name.split(".")[1:]
    for i, part in enumerate(parts):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(["trtnet", *parts[: i + 1]]))
        except ImportError:
            return True
    return False


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_names_and_paths_the_prose_quotes_exist(page):
    """`trtnet.x.y` names exist, and `trtnet/...` or `tests/...` paths are files or folders of the tree: a module
    that moves into another room leaves no stale path in the docs."""
    text = page.read_text()
    missing = [n for n in sorted(set(re.findall(r"`(trtnet(?:\.\w+)+)", text))) if _missing_name(n)]
    paths = set(re.findall(r"`((?:trtnet|tests|scripts)/[\w/.]*?)(?:::\w+)?`", text))
    paths |= set(re.findall(r"\b((?:trtnet|tests|scripts)/[\w/]+\.py)\b", text))
    missing += [p for p in sorted(paths) if not (ROOT / p).exists()]
    assert not missing, f"{page.name} quotes what does not exist: {missing}"
