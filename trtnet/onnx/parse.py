"""The ONNX route: an ONNX file parsed by the backend's own `OnnxParser` into the same `Network` that
`trtnet.build`, `trtnet.reference` and `trtnet.summary.summarize` take, so an ONNX model is built through the
same path (same GPU targeting, same engine cache) as trtnet's own networks and checked by the same interpreter.

The network is strongly typed, like trtnet's: its types are the ONNX graph's, or with `precision="fp16"`/`"bf16"`
the reduced network the DSL's policy would make (trtnet.onnx.precision). Any dim of any input may be dynamic:
`shapes` gives each dynamic input a fixed shape or a (min, opt, max) profile (trtnet.onnx.shapes).

>>> net = parse_onnx("yolo.onnx", shapes={"images": ((1, 3, 320, 320), (1, 3, 640, 640), (4, 3, 1280, 1280))})  # doctest: +SKIP
>>> engine = trtnet.build(net)                           # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from trtnet.backend import capture_errors, get_trt, logger, signals_deferred
from trtnet.builder.emit import BatchSize, Network, batch_range
from trtnet.dtypes import name_of, numpy_of
from trtnet.errors import NetworkError
from trtnet.fileread import read_regular
from trtnet.graph import Policy
from trtnet.onnx.precision import REDUCED, check_consistent, reduce_precision
from trtnet.onnx.quantize import FORMATS, find_points, quantize_network, weights_fingerprint
from trtnet.onnx.refusal import parser_refusal, refuse_special_external_data
from trtnet.onnx.shapes import ShapesArg, check_names, resolve_profile
from trtnet.quant.measured import check_measured
from trtnet.quant.ranges import Calibration, as_calibration
from trtnet.runtime.plan import TensorSpec

__all__ = ["MAX_BYTES", "parse_onnx"]

MAX_BYTES = 2 << 30  # protobuf's own limit on one message: larger models keep their weights as external data

ONNX_PRECISIONS = ("fp32", "tf32", *REDUCED, *FORMATS)


def _dtype_name(path: Path, t, role: str) -> str:
    """The numpy name of an input's or output's type; a NetworkError naming the file and the tensor for a type
    trtnet's engines do not take at their boundary (bfloat16, FP8: numpy has no dtype of its own for those)."""
    try:
        return numpy_of(t.dtype).name
    except NetworkError:
        name = name_of(t.dtype)
        raise NetworkError(
            f"{path}: {role} {t.name!r} has data type {name}, which trtnet does not take as a network {role} "
            "(numpy has no dtype of its own for it); cast it to float32 or float16 at the graph's boundary, inside "
            "the graph it may stay"
        ) from None


def parse_onnx(
    path: str | os.PathLike,
    batch_size: BatchSize | None = None,
    *,
    shapes: ShapesArg | None = None,
    precision: str = "fp32",
    calibration: Calibration | str | os.PathLike | None = None,
    reuse_calibration: bool = False,
) -> Network:
    """Parse the ONNX file at `path` into a strongly typed `Network`.

    `shapes` maps an input's name to its shape, or to (min, opt, max) shapes, for any input with dynamic dims;
    `batch_size` (an int, or (min, opt, max)) is the short form for inputs whose only dynamic dim is the first.
    `precision` is "fp32" (the file's types), "tf32", "fp16", "bf16", or "int8"/"fp8" with `calibration` (the
    ranges `trtnet.onnx.calibrate.calibrate_onnx` measured on this file, or its JSON file). A calibration measured
    on other weights, or on inputs of other names, dtypes or per-sample shapes than the network takes, is a
    `CalibrationError` unless `reuse_calibration` (deliberate reuse). A `NetworkError` names the file and what
    TensorRT's parser, the shapes or the precision refused.

    >>> net = parse_onnx("model.onnx", shapes={"x": (1, 3, 224, 224)}, precision="fp16")  # doctest: +SKIP
    """
    if not isinstance(path, (str, os.PathLike)):
        raise NetworkError(f"parse_onnx: path = {path!r} is not allowed: expected a path (str or os.PathLike)")
    path = Path(path)
    if precision not in ONNX_PRECISIONS:
        raise NetworkError(f"{path}: precision {precision!r}: an ONNX network takes one of {ONNX_PRECISIONS}")
    if precision in FORMATS and calibration is None:
        raise NetworkError(
            f"{path}: precision {precision!r} needs activation ranges: calibration= (from calibrate_onnx, or its JSON "
            f"file; on the command line `trtnet calibrate {path.name} --data FILE.npz`)"
        )
    if precision not in FORMATS and calibration is not None:
        raise NetworkError(f"{path}: calibration is for int8/fp8, not precision {precision!r}")
    calibration = as_calibration(calibration)
    t0 = time.perf_counter()
    data = read_regular(path, MAX_BYTES, "ONNX file", error=NetworkError)  # a FIFO or a device: refused unread
    if not data:
        raise NetworkError(f"{path}: the ONNX file is empty")
    refuse_special_external_data(path, NetworkError, data)
    trt = get_trt()
    builder = trt.Builder(logger())
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger())
    # parse() with the file's folder, so that weights stored beside it (external data) are found.
    # TensorRT's own log of a refusal is in the error raised, not printed too; Ctrl-C is delivered after it
    with signals_deferred(), capture_errors():
        if not parser.parse(data, str(path)):
            raise NetworkError(f"{path}: TensorRT's ONNX parser refused it: {parser_refusal(parser, path)}")
    if network.num_outputs == 0:  # protobuf reads most bytes as some message: the parser then finds an empty graph
        raise NetworkError(
            f"{path}: TensorRT's ONNX parser found no graph outputs in it: not an ONNX model, or one that "
            "computes nothing"
        )
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    check_names(str(path), shapes, [t.name for t in tensors])
    if batch_size is not None and shapes and all(t.name in shapes for t in tensors):  # else silently unused
        raise NetworkError(
            f"{path}: batch_size {batch_size} sizes no input: shapes gives every one ({', '.join(shapes)})"
        )
    inputs = [_input_spec(path, t, (shapes or {}).get(t.name), batch_size) for t in tensors]
    for t, spec in zip(tensors, inputs):
        lo, hi = spec.shape_range()
        # Dims the profile fixes become static in the network, so TensorRT infers more of its shapes.
        t.shape = tuple(-1 if a != b else d for d, a, b in zip(spec.shape, lo, hi))
    # The file's bytes, and those of the external weight files it names, stand for its weights in the engine
    # cache's key (TensorRT reports no weight values).
    keep = [np.frombuffer(data, np.uint8)] + _external_data(path, data)
    policy = None
    if precision != "fp32":
        policy = Policy(precision=precision, calibration=calibration)
        if precision in REDUCED:
            keep += reduce_precision(network, precision, str(path))
        elif precision in FORMATS:  # int8/fp8: fp16 between the quantized layers, as Policy has it
            points = find_points(network)  # before reduction: weights are quantized from their float32 values
            measured = "" if reuse_calibration or not calibration.meta.get("weights") else weights_fingerprint(network)
            keep += reduce_precision(network, "fp16", str(path))
            keep += quantize_network(network, points, calibration, precision)  # refuses another model's layers
            check_measured(calibration, inputs, lambda: measured, reuse_calibration, precision)
    outputs = _output_specs(network, path)
    return Network(
        network,
        builder,
        inputs,
        outputs,
        keep,
        time.perf_counter() - t0,
        policy=policy,
        label=f"{path.name} (ONNX{'' if precision == 'fp32' else ' ' + precision})",
        owner=parser,
    )


def _output_specs(network, path: Path) -> list[TensorSpec]:
    """The outputs' specs; a NetworkError naming the first layer whose shape TensorRT cannot infer (input shapes
    that make a reshape impossible), where that is why an output's shape cannot be read."""
    with capture_errors():  # TensorRT's log of it is in the error raised, not printed as well
        try:
            return [
                TensorSpec(t.name, tuple(t.shape), _dtype_name(path, t, "output"))
                for t in (network.get_output(i) for i in range(network.num_outputs))
            ]
        except RuntimeError:
            check_consistent(network, str(path), "the network, with these input shapes,")
            raise NetworkError(f"{path}: TensorRT cannot infer the shapes of the network's outputs") from None


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


def _input_spec(path: Path, t, given, batch_size: BatchSize | None) -> TensorSpec:
    declared = tuple(int(d) for d in t.shape)
    if not declared:  # engines, their sidecars and Triton take dim 0 as the batch; `trtnet check` runs it as it is
        raise NetworkError(
            f"{path}: input {t.name!r} is a scalar (rank 0): an engine's inputs need a batch dim; export it with "
            "shape [1] (`trtnet check` runs the file as it is)"
        )
    if given is None and batch_size is not None:
        if declared and declared[0] < 0 and all(d >= 0 for d in declared[1:]):
            lo, opt, hi = batch_range(batch_size)
            given = ((lo, *declared[1:]), (opt, *declared[1:]), (hi, *declared[1:]))
        elif declared and declared[0] >= 0 and batch_range(batch_size) != (declared[0],) * 3:
            raise NetworkError(
                f"{path}: input {t.name!r} has the static shape {list(declared)}; batch_size "
                f"{batch_size} cannot change it (export with a dynamic batch axis)"
            )
    lo, opt, hi = resolve_profile(str(path), t, given)
    if lo[1:] == hi[1:]:  # only the batch varies, if anything: the spec as engines always had it
        return TensorSpec(t.name, opt, _dtype_name(path, t, "input"), lo[0], hi[0])
    return TensorSpec(t.name, opt, _dtype_name(path, t, "input"), lo[0], hi[0], min_shape=lo, max_shape=hi)
