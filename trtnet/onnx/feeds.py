"""The arrays `trtnet check` runs and compares: random inputs, inputs and outputs read from and written to .npz."""

from __future__ import annotations

import contextlib
import io
import math
import mmap
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trtnet import fileread
from trtnet.errors import CheckError
from trtnet.fileio import (
    fsync_folder,
    refuse_special,
    remove_stale_temporaries,
    replace,
    write_temporary,
)
from trtnet.runtime.plan import refuse_plan_files


def random_inputs(network: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal floats, 0/1 integers (valid token ids and masks alike), random booleans, in the shapes the
    network's inputs have (size its dynamic dims first). Give real inputs with an .npz where the model needs them."""
    from trtnet.interpreter._common import np_dtype

    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(int(v) for v in tensor.shape)
        dtype = np_dtype(tensor.dtype)
        if math.prod(shape) * 8 >= 2**63:  # numpy refuses ("array is too big"), as no machine could hold it
            raise CheckError(f"input {tensor.name!r} of shape {list(shape)} is too large for any machine")
        if dtype == np.bool_:
            feeds[tensor.name] = rng.integers(0, 2, shape).astype(bool)
        elif np.issubdtype(dtype, np.integer):
            feeds[tensor.name] = rng.integers(0, 2, shape).astype(dtype)
        else:
            feeds[tensor.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def file_inputs(path: Path, network: Any) -> list[str] | None:
    """The ONNX graph's input names in order (initializers left out), read with onnx only where the network has
    a loop or a conditional: the parser names a graph input bound to a subgraph's input (a Loop's condition
    `cond`) after that input (`cond_in`). None elsewhere, or where onnx is not installed."""
    kinds = {network.get_layer(i).type.name for i in range(network.num_layers)}
    if not kinds & {"TRIP_LIMIT", "CONDITION", "ITERATOR", "RECURRENCE", "LOOP_OUTPUT"}:
        return None
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001  no onnx, or a file it reads otherwise than the parser: names as they are
        return None
    stored = {t.name for t in graph.initializer}
    return [t.name for t in graph.input if t.name not in stored]


def renamed_inputs(network: Any, file_names: Sequence[str] | None = None) -> dict[str, str]:
    """Network input name -> the ONNX file's, for the inputs TensorRT's parser renamed: an input `x` that is also a
    graph output becomes `__x` (a network's inputs and outputs need names of their own), and the output `x` an
    IDENTITY layer of it. An input the file itself names `__y` is not one (its output `y` is made otherwise).
    With the file's input names (`file_inputs`), an input renamed otherwise is matched by its place."""
    inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    found = {}
    if file_names is not None and len(file_names) == network.num_inputs:
        for i, theirs in enumerate(file_names):
            ours = network.get_input(i).name
            if ours != theirs and ours not in file_names and theirs not in inputs:
                found[ours] = theirs
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type.name != "IDENTITY" or layer.num_inputs != 1 or layer.get_input(0) is None:
            continue
        source, made = layer.get_input(0).name, layer.get_output(0).name
        if source in inputs and made in outputs and source == "__" + made:
            found[source] = made
    return found


def onnx_named(
    network: Any, feeds: Mapping[str, np.ndarray], file_names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The feeds named as the ONNX file names its inputs (onnxruntime's and the arbiter's names; see
    `renamed_inputs`)."""
    renamed = renamed_inputs(network, file_names)
    return {renamed.get(k, k): v for k, v in feeds.items()}


def read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """The arrays of the .npz at `path` (no pickles); a `CheckError` naming it otherwise."""
    return fileread.read_npz(path, f"{what} file", CheckError)


def load_inputs(
    source: Path | Mapping[str, np.ndarray], network: Any, file_names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of an .npz (or a mapping of arrays) named as the network's inputs (or as the ONNX file names the
    ones TensorRT's parser renamed), checked against their declared shapes and types; keyed by the network's."""
    from trtnet.interpreter._common import np_dtype

    if isinstance(source, Mapping):
        path: Path | str = "the inputs given"
        arrays = {str(k): np.asarray(v) for k, v in source.items()}
    else:
        path = source
        arrays = read_npz(source, "inputs")
    renamed = renamed_inputs(network, file_names)
    for ours, theirs in renamed.items():
        if theirs in arrays and ours not in arrays:
            arrays[ours] = arrays.pop(theirs)
    declared = {network.get_input(i).name: network.get_input(i) for i in range(network.num_inputs)}
    missing = [renamed.get(n, n) for n in declared if n not in arrays]  # said by the file's names
    extra = [n for n in arrays if n not in declared]
    if missing or extra:
        said = " and ".join(([f"lacks {missing}"] if missing else []) + ([f"has unknown {extra}"] if extra else []))
        takes = [renamed.get(n, n) for n in declared]
        raise CheckError(f"{path}: the network takes inputs {takes}; the file {said}")
    for name, tensor in declared.items():
        want = tuple(int(d) for d in tensor.shape)
        got = arrays[name].shape
        shown = renamed.get(name, name)
        if len(got) != len(want) or any(w >= 0 and w != g for w, g in zip(want, got)):
            raise CheckError(f"{path}: input {shown!r} has shape {got}, the network declares {want}")
        dtype = np_dtype(tensor.dtype)
        if arrays[name].dtype != dtype:
            raise CheckError(f"{path}: input {shown!r} has dtype {arrays[name].dtype}, the network declares {dtype}")
    return {n: arrays[n] for n in declared}  # in the network's order


def load_outputs(path: Path, results: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Reference outputs from an .npz (another runtime's, a GPU engine's), checked to name and shape every output."""
    arrays = read_npz(path, "outputs")
    missing = [n for n in results if n not in arrays]
    extra = [n for n in arrays if n not in results]  # another model's outputs, or a file of inputs
    if missing or extra:
        said = " and ".join(([f"lacks {missing}"] if missing else []) + ([f"has unknown {extra}"] if extra else []))
        raise CheckError(f"{path}: the network's outputs are {list(results)}; the file {said}")
    for name, value in results.items():
        if arrays[name].shape != value.shape:
            raise CheckError(f"{path}: output {name!r} has shape {arrays[name].shape}, the network gives {value.shape}")
        if arrays[name].dtype.kind not in "biuf":  # strings, complex, dates, records: nothing to compare
            raise CheckError(f"{path}: output {name!r} holds {arrays[name].dtype} values, not numbers")
    return {n: arrays[n] for n in results}


def save_npz_files(files: list[tuple[str | Path, Mapping[str, np.ndarray], str]]) -> None:
    """Write each (path, arrays, what) as an .npz, all or none: every file is written to a temporary first and
    renamed onto its path only once all are written (a full disk or an unwritable folder leaves none of them)."""
    temps: list[tuple[Path, Path, str]] = []
    try:
        for path, arrays, what in files:
            refuse_special(Path(path), what, CheckError)
            refuse_plan_files(path, what, CheckError)
            remove_stale_temporaries(Path(path).parent, (Path(path).name,))
            temps.append((write_temporary(Path(path), _npz_bytes(arrays), what, CheckError), Path(path), what))
        for tmp, path, what in temps:
            replace(tmp, path, what, CheckError)
            fsync_folder(path.parent)
    finally:
        for tmp, _, _ in temps:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def external_data_files(model: Path, saves: Mapping[str, str | os.PathLike | None]) -> dict[str, Path]:
    """The model's external data files (weights stored beside it, which a save there would destroy: a check
    saving its outputs over `model.data` passed, and the model no longer parsed), each under what it is, as their
    locations name them (read with onnx; a link is compared as the file it leads to: a Hugging Face cache's blob);
    without onnx, those of `saves` whose names the model's bytes hold (`external_data_named`)."""
    from trtnet.onnx.refusal import external_data_locations

    locations = external_data_locations(model)
    if locations is None:
        return external_data_named(model, saves)
    return {f"the model's external data ({loc})": model.parent / loc for loc in locations}


def external_data_named(model: Path, saves: Mapping[str, str | os.PathLike | None]) -> dict[str, Path]:
    """The save targets the model's own bytes name, as a path from its folder: where onnx is not installed to
    read the locations, a name that happens to appear in the file is refused too, which costs nothing."""
    found: dict[str, Path] = {}
    if not any(t is not None for t in saves.values()) or not model.is_file():  # a FIFO's open would wait for a writer
        return found
    try:
        with model.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for target in saves.values():
                if target is None:
                    continue
                try:
                    name = os.path.relpath(os.path.realpath(target), os.path.realpath(model.parent))
                except ValueError:  # another drive (Windows)
                    continue
                if not name.startswith("..") and data.find(name.encode()) >= 0:
                    found[f"the model's external data ({name})"] = Path(target)
    except (OSError, ValueError):  # missing or empty: ParsedOnnx says so
        pass
    return found
