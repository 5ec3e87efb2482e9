"""Calibration of an ONNX file: its fp32 network, as TensorRT's parser makes it, run in the interpreter over sample
batches, the tensors that an int8/fp8 network of it quantizes (trtnet.onnx.quantize) measured and their ranges
chosen by trtnet.quant.calibrate's methods ("max", "percentile", "entropy", "mse"), with the same rules for the
layers kept in fp16 ("first", "last", names).

>>> cal = calibrate_onnx("resnet18.onnx", "samples.npz", batch=8, method="percentile")  # doctest: +SKIP
>>> net = parse_onnx("resnet18.onnx", batch_size=8, precision="int8", calibration=cal)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.errors import CalibrationError, NetworkError
from trtnet.fileread import read_npz
from trtnet.quant.calibrate import Histogram, RangeStats, check_method
from trtnet.quant.ranges import Calibration

Batch = Mapping[str, np.ndarray]


def read_data(
    arrays: dict[str, np.ndarray], path: str | os.PathLike, network: Any, batch: int
) -> list[dict[str, np.ndarray]]:
    """The `arrays` read from the .npz at `path` cut into batches of `batch` samples along their first dim, named
    as the network's inputs (a file of one array may leave it unnamed for a one-input network). A
    `CalibrationError` names the file and the array that does not fit."""
    from trtnet.interpreter._common import np_dtype

    inputs = {network.get_input(i).name: network.get_input(i) for i in range(network.num_inputs)}
    arrays = _named(arrays, list(inputs), path)
    for name, tensor in inputs.items():
        a, want = arrays[name], np_dtype(tensor.dtype)
        if a.dtype != want or a.ndim != len(tensor.shape) or a.ndim == 0:
            raise CalibrationError(
                f"calibration data {path}: array {name!r} is {a.dtype}{list(a.shape)}; input {name!r} takes "
                f"{np.dtype(want).name} of rank {len(tensor.shape)}"
            )
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise CalibrationError(
            f"calibration data {path}: the arrays must hold the same number (>= 1) of samples along their first dim; "
            f"they hold { {n: len(a) for n, a in arrays.items()} }"
        )
    n = counts.pop()
    return [{k: a[i : i + batch] for k, a in arrays.items()} for i in range(0, n, batch)]


def calibrate_onnx(
    path: str | os.PathLike,
    data: str | os.PathLike | Iterable[Batch],
    *,
    batch: int = 8,
    method: str = "max",
    percentile: float = 99.99,
    precision: str = "int8",
    keep: Sequence[str] = ("last",),
    bins: int = 2048,
) -> Calibration:
    """Measure the ranges of the tensors an int8/fp8 network of the ONNX file at `path` quantizes.

    `data` is an .npz file (arrays named after the inputs, cut into batches of `batch` samples) or an iterable of
    batches ({input name: array}). Each distinct batch shape sizes the file's dynamic dims; an input's static dims
    must match. The options are `trtnet.calibrate`'s. The result's keys are the parsed network's layer names.
    """
    from trtnet.interpreter import Interpreter, run_network_capture
    from trtnet.onnx.parse import parse_onnx
    from trtnet.onnx.quantize import find_points, weights_fingerprint

    path = Path(path)
    check_method(method, precision, percentile)
    nets: dict[tuple, Any] = {}
    stats: dict[str, Histogram] = {}
    points: dict[str, str] = {}
    inputs: dict[str, dict[str, Any]] = {}  # name -> the per-sample shapes and dtype fed, as `measure` records
    count = samples = 0
    first = None
    if isinstance(data, (str, os.PathLike)):
        arrays = read_npz(Path(data), "calibration data", CalibrationError)
        probe = parse_onnx(path, shapes=_probe_shapes(path, arrays, data))  # for the inputs' names, ranks and types
        batches: Iterable[Batch] = read_data(arrays, data, probe.network, batch)
    else:
        batches = data
    for feeds in batches:
        feeds = {k: np.asarray(v) for k, v in feeds.items()}
        key = tuple(sorted((k, v.shape) for k, v in feeds.items()))
        if key not in nets:
            try:
                net = parse_onnx(path, shapes={k: v.shape for k, v in feeds.items()})
            except NetworkError as e:
                raise CalibrationError(f"calibration batch {count}: {e}") from None
            nets[key] = (net, Interpreter(net.network), {p.key: p.tensor for p in find_points(net.network)})
            first = first or nets[key]
        net, runner, points = nets[key]
        _, tensors = run_network_capture(runner, feeds, set(points.values()))
        for name, value in tensors.items():
            stats.setdefault(name, Histogram(bins, with_hist=method != "max"))
            try:
                stats[name].add(value)
            except CalibrationError as e:
                raise CalibrationError(f"calibration batch {count}: tensor {name!r}: {e}") from None
        count += 1
        samples += len(next(iter(feeds.values())))
        for n, a in feeds.items():
            seen = inputs.setdefault(n, {"shapes": [], "dtype": a.dtype.name})
            if list(a.shape[1:]) not in seen["shapes"]:
                seen["shapes"].append(list(a.shape[1:]))
    if first is None:
        raise CalibrationError(f"{path}: no calibration batches were given")
    if not points:
        raise CalibrationError(  # a float16 file has convolutions, none of them float32
            f"{path}: the network has no float32 convolution or matrix product by constant weights to quantize "
            "(int8/fp8 quantize float32 layers: export the file in float32)"
        )
    network = first[0].network
    found = RangeStats(path.name, network, points, stats, count, samples, inputs, weights_fingerprint(network))
    return found.calibration(method, percentile=percentile, precision=precision, keep=keep)


def _named(arrays: dict[str, np.ndarray], names: list[str], data: str | os.PathLike) -> dict[str, np.ndarray]:
    """The data's arrays by input name (a file of one array may leave it unnamed for a one-input model), or a
    `CalibrationError` where they do not name the inputs."""
    if len(arrays) == 1 and len(names) == 1:
        return {names[0]: next(iter(arrays.values()))}
    if sorted(arrays) != sorted(names):
        raise CalibrationError(
            f"calibration data {data}: has arrays {sorted(arrays)}; the model's inputs are {names} (name the arrays "
            "after them)"
        )
    return arrays


def _probe_shapes(path: Path, arrays: dict[str, np.ndarray], data: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Shapes for reading the file's input names and types: each dynamic dim sized as the data's array of that
    input has it. Every dynamic dim sized 1 made a detector with a dynamic image size impossible to parse (a 1x1
    image does not go through its downsampling), before any data was looked at; data that does not name or
    shape the inputs as the file does is refused here, saying so, for the same reason."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    named = _named(arrays, [i.name for i in graph_inputs], data)
    shapes = {}
    for i in graph_inputs:
        dims, given = i.type.tensor_type.shape.dim, named[i.name]
        if given.ndim != len(dims):  # read_data's words
            kind = onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name
            raise CalibrationError(
                f"calibration data {data}: array {i.name!r} is {given.dtype}{list(given.shape)}; input {i.name!r} "
                f"takes {kind} of rank {len(dims)}"
            )
        shapes[i.name] = tuple(d.dim_value if d.HasField("dim_value") else max(1, s) for d, s in zip(dims, given.shape))
    return shapes
