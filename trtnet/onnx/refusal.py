"""What to tell a user whose ONNX file TensorRT's parser refused: each error with the node it is about, and the
external data file at fault where a weight's could not be read."""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trtnet.fileread import file_kind


def refuse_special_external_data(path: Path, error: type[Exception], data: bytes | None = None) -> None:
    """An `error` before TensorRT's parser opens it, where a file the model names as external data is there but
    not a regular file: the parser blocked on a FIFO, past Ctrl-C and SIGTERM, and would read /dev/zero without end.
    The locations are the model's own where onnx reads them (`data`: the model's bytes, if the caller has them);
    without onnx, files beside the model whose names its bytes hold. A missing file is the parser's to say."""
    locations = external_data_locations(path, data)
    if locations is None:  # no onnx: the names of the files beside the model that its bytes hold
        with _model_bytes(path, data) as model:
            locations = [name for name in _special_neighbours(path) if model.find(name.encode()) >= 0]
    for location in locations:
        try:
            mode = os.stat(path.parent / location).st_mode  # through a link: what the parser would open
        except (OSError, ValueError):
            continue
        if not stat.S_ISREG(mode):
            raise error(f"{path}: its external data {location!r} is {file_kind(mode)}, not a regular file")


@contextlib.contextmanager
def _model_bytes(path: Path, data: bytes | None) -> Iterator[bytes | mmap.mmap]:
    if data is not None:
        yield data
        return
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as model:
        yield model


def _external_data(path: Path) -> list[tuple[str, Any]] | None:
    """(initializer name, its `ExternalDataInfo`: location, offset, length) for each initializer stored outside the
    model; None where onnx is not installed, [] where it does not read the file (the parser will say why)."""
    try:
        import onnx
        from onnx.external_data_helper import ExternalDataInfo, uses_external_data
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  not a model onnx reads
        return []
    return [(t.name, ExternalDataInfo(t)) for t in model.graph.initializer if uses_external_data(t)]


def external_data_locations(path: Path, data: bytes | None = None) -> list[str] | None:
    """The locations (relative to the model's folder) of the model's external data (`data`: the model's bytes, if
    the caller has them); None where onnx is not installed, [] for a file without any or one onnx does not read."""
    if data is None and (not path.is_file() or path.stat().st_size == 0):
        return []
    with _model_bytes(path, data) as model:
        if model.find(b"location") < 0:  # the key every external-data entry has: onnx need not parse (VGG16: 1 s)
            return []
    stored = _external_data(path)
    return None if stored is None else [info.location for _, info in stored]


def _special_neighbours(path: Path) -> list[str]:
    """The names of the files beside `path` that are there but neither regular files nor folders."""
    found = []
    try:
        with os.scandir(path.parent) as entries:
            for entry in entries:
                try:
                    mode = os.stat(entry.path).st_mode
                except OSError:
                    continue
                if entry.name != path.name and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
                    found.append(entry.name)
    except OSError:
        pass
    return found


def parser_refusal(parser: Any, path: Path) -> str:
    """The parser's errors, each after the node it names (`node 'name' (OpType)`, or its index in its own graph
    where the node has no name), and before them the external data files the model names that are missing or too short: the parser
    says only which initializer it could not import.

    >>> parser_refusal(type("P", (), {"num_errors": 0})(), Path("model.onnx"))
    'no error given'
    """
    found = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        desc = str(e.desc())
        operator, name, index = str(e.node_operator()), str(e.node_name()), int(e.node())
        if operator:
            # The parser's index counts within the node's own graph: a Loop's or If's body has its own node 0.
            where = f"node {name!r}" if name else f"unnamed node {index} of the graph or of a subgraph"
            desc = f"{where} ({operator}): {desc}"
        found.append(desc)
    return "; ".join(_external_data_faults(path) + found) or "no error given"


def _external_data_faults(path: Path) -> list[str]:
    """Each initializer whose external data file is missing, not a regular file, or shorter than the bytes the
    model says it holds; nothing where onnx is not installed or the file does not load as a model."""
    faults = []
    for name, info in _external_data(path) or []:
        target = path.parent / info.location
        what = f"initializer {name!r}: its external data {info.location!r}"
        if not target.exists():
            faults.append(f"{what} is missing (looked for {target})")
        elif not target.is_file():
            faults.append(f"{what} is not a regular file")
        elif info.length and target.stat().st_size < (info.offset or 0) + info.length:
            need = (info.offset or 0) + info.length
            faults.append(f"{what} holds {target.stat().st_size} bytes, the model reads up to byte {need}")
    return faults
