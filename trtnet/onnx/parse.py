"""The ONNX route: an ONNX file parsed by the backend's own `OnnxParser` into the same `Network` that
`trtnet.build`, `trtnet.reference` and `trtnet.summary.summarize` take, so an ONNX model is built through the
same path (same GPU targeting, same engine cache) as trtnet's own networks and checked by the same interpreter.

The network is strongly typed, like trtnet's: its types are the ONNX graph's (export an fp16 model for an
fp16 engine). Shapes are the file's; a dynamic batch dimension takes `batch_size` (an int, or min/opt/max).

>>> net = parse_onnx("resnet50.onnx")                    # doctest: +SKIP
>>> engine = trtnet.build(net)                           # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from trtnet.backend import get_trt, logger
from trtnet.builder.emit import BatchSize, Network, batch_range
from trtnet.dtypes import numpy_of
from trtnet.errors import NetworkError
from trtnet.runtime.plan import TensorSpec

__all__ = ["parse_onnx"]


def _dtype_name(t) -> str:
    return numpy_of(t.dtype).name


def parse_onnx(path: str | os.PathLike, batch_size: BatchSize | None = None) -> Network:
    """Parse the ONNX file at `path` into a strongly typed `Network`. A `NetworkError` names the file and
    what TensorRT's parser or the shapes refused."""
    path = Path(path)
    t0 = time.perf_counter()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise NetworkError(f"{path}: cannot read the ONNX file: {e.strerror or e}") from e
    trt = get_trt()
    builder = trt.Builder(logger())
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger())
    # parse() with the file's folder, so that weights stored beside it (external data) are found.
    if not parser.parse(data, str(path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise NetworkError(f"{path}: TensorRT's ONNX parser refused it: {errors or 'no error given'}")
    inputs = [_input_spec(path, network.get_input(i), batch_size) for i in range(network.num_inputs)]
    if not isinstance(batch_size, tuple):  # one batch size: pin a dynamic batch, so the network is static
        for i, spec in enumerate(inputs):
            network.get_input(i).shape = spec.shape
    outputs = [
        TensorSpec(t.name, tuple(t.shape), _dtype_name(t))
        for t in (network.get_output(i) for i in range(network.num_outputs))
    ]
    # The file's bytes, and those of the external weight files it names, stand for its weights in the engine
    # cache's key (TensorRT reports no weight values).
    keep = [np.frombuffer(data, np.uint8)] + _external_data(path, data)
    return Network(
        network,
        builder,
        inputs,
        outputs,
        keep,
        time.perf_counter() - t0,
        policy=None,
        label=f"{path.name} (ONNX)",
        owner=parser,
    )


def _external_data(path: Path, data: bytes) -> list[np.ndarray]:
    """The files beside an ONNX model that it names (its external weights: a tensor's `location` is stored as
    plain UTF-8 in the protobuf), mapped read-only, in name order, each after its name. The folder itself only:
    exporters write the data files beside the model."""
    found: list[np.ndarray] = []
    try:
        names = sorted(e.name for e in os.scandir(path.parent) if e.is_file() and e.name != path.name)
    except OSError:
        return found
    for name in names:
        if name.encode() not in data:
            continue
        p = path.parent / name
        found.append(np.frombuffer(name.encode(), np.uint8))
        found.append(np.memmap(p, np.uint8, mode="r") if p.stat().st_size else np.zeros(0, np.uint8))
    return found


def _input_spec(path: Path, t, batch_size: BatchSize | None) -> TensorSpec:
    shape = tuple(t.shape)
    if any(d < 0 for d in shape[1:]):
        raise NetworkError(
            f"{path}: input {t.name!r} has shape {list(shape)}: only the batch dimension (0) may "
            "be dynamic; export with fixed sizes for the others"
        )
    if shape and shape[0] < 0:
        if batch_size is None:
            raise NetworkError(
                f"{path}: input {t.name!r} has a dynamic batch ({list(shape)}): pass batch_size "
                "(an int, or (min, opt, max))"
            )
        lo, opt, hi = batch_range(batch_size)
        return TensorSpec(t.name, (opt, *shape[1:]), _dtype_name(t), lo, hi)
    if batch_size is not None and batch_range(batch_size) != (shape[0],) * 3:
        raise NetworkError(
            f"{path}: input {t.name!r} has the static shape {list(shape)}; batch_size "
            f"{batch_size} cannot change it (export with a dynamic batch axis)"
        )
    return TensorSpec(t.name, shape, _dtype_name(t), shape[0], shape[0])
