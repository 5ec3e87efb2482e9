"""From a model to a TensorRT network (`emit`), and that network run in the numpy interpreter (`reference`).

`emit` writes the network (TensorRT infers every shape as layers are added); `trtnet.build` compiles it into a
plan; `reference` runs the same network in the numpy interpreter. One emission path serves all three, so the
network the interpreter checks is the network the engine is built from. A `Network` parsed from an ONNX file
(`trtnet.onnx.parse.parse_onnx`) goes through the same `build` and `reference`.

Emission options travel as one `Policy` (trtnet.graph): `policy=Policy(precision="fp16")`, or its field names as
keywords (`precision="fp16"`), which `resolve_policy` turns into a Policy in one place. The defaults are Policy's.
"""

from __future__ import annotations

import collections
import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trtnet import dtypes
from trtnet.backend import capture_errors, get_trt, logger
from trtnet.builder import users
from trtnet.errors import NetworkError
from trtnet.graph import Graph, Policy, PolicyOptions, resolve_policy
from trtnet.interpreter import run_network
from trtnet.nn.module import Input, Module
from trtnet.ops.core import out
from trtnet.ops.quantize import FORMATS, quant_points
from trtnet.quant.measured import check_calibration
from trtnet.runtime.plan import TensorSpec
from trtnet.tensor import Tensor

if TYPE_CHECKING:
    # typing.Unpack is Python 3.11; annotations are strings here (`from __future__ import annotations`), so the
    # name is needed by type checkers only, and trtnet still imports on 3.10 without typing_extensions.
    from typing_extensions import Unpack

BatchSize = int | tuple[int, int, int]
MAX_BATCH = 2**31 - 1  # TensorRT's dimensions are int32 in its profiles and most kernels


@dataclass
class Network:
    """An `INetworkDefinition`, emitted from a model or parsed from ONNX, with what is needed to build it.

    `keepalive` holds the arrays behind its weights (TensorRT keeps pointers until the engine is built) and is
    what the engine cache hashes for them; `owner` (the DSL's Graph, or the ONNX parser) holds the rest.
    """

    network: Any
    builder: Any
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    keepalive: list[np.ndarray] = field(default_factory=list, repr=False)
    seconds: float = 0.0
    policy: Policy | None = None  # how it was emitted; None for a parsed network (its types are the file's)
    label: str = "network"
    owner: Any = field(default=None, repr=False)

    @property
    def num_layers(self) -> int:
        return self.network.num_layers

    @property
    def precision(self) -> str:
        return self.policy.precision if self.policy is not None else ""


def emit(
    model: Module,
    batch_size: BatchSize = 1,
    *,
    policy: Policy | None = None,
    input_shapes: dict[str, Sequence[int]] | None = None,
    reuse_calibration: bool = False,
    **options: Unpack[PolicyOptions],
) -> Network:
    """Write `model` as a TensorRT network. `batch_size` is an int, or (min, opt, max) for a dynamic batch.

    `input_shapes` overrides the per-sample shape of named inputs (e.g. a 299x299 image). An int8/fp8
    `calibration` measured on other inputs or weights is refused, unless `reuse_calibration` (as `build` says).

    >>> net = trtnet.emit(resnet18(weights=None), 2, precision="fp16")     # doctest: +SKIP
    """
    _check_model(model)
    if not isinstance(reuse_calibration, (bool, np.bool_)):
        raise NetworkError(f"reuse_calibration {reuse_calibration!r:.40}: expected True or False")
    t0 = time.perf_counter()
    trt = get_trt()
    policy = resolve_policy(policy, options)
    builder = trt.Builder(logger())
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    graph = Graph(network, policy)
    model.bind()
    specs = _input_specs(model, batch_size, input_shapes or {})
    with graph:
        args = []
        for spec in specs:
            lo, hi = spec.shape_range()
            shape = tuple(-1 if a != b else d for d, a, b in zip(spec.shape, lo, hi))
            itensor = network.add_input(spec.name, dtypes.to_trt(spec.dtype), shape)
            if itensor is None:  # TensorRT logs why (e.g. a volume beyond its limits) and hands back nothing
                raise NetworkError(
                    f"input {spec.name!r}: TensorRT refused the shape {list(spec.shape)} (allowed "
                    f"{spec.allowed()}; see its log above)"
                )
            t = Tensor(itensor)
            # A float input, float16 too, is cast to the network's compute type at the boundary (a float16 input
            # met float32 weights, and TensorRT refused the first layer).
            args.append(t.cast(graph.float_dtype) if spec.dtype in ("float32", "float16") else t)
        results = users.run(model, "forward", model, *args)
        if policy.precision in FORMATS and policy.calibration is not None:
            policy.calibration.check_layers(quant_points(graph))  # every point is known now: another model's ranges
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        names = _output_names(model, results)
        outputs = []
        kind = type(model).__name__
        inputs = {spec.name for spec in specs}
        taken = inputs & set(names)
        if taken:
            raise NetworkError(
                f"{kind}: output {min(taken)!r} has the name of an input; an engine's tensors need names of their "
                "own (output_names)"
            )
        claimed = set(inputs)  # the inputs', then each output's name as it is given
        for name, t in zip(names, results):
            if t.dtype in (trt.float16, trt.bfloat16):
                t = t.cast(trt.float32)
            if t.itensor.name in claimed:
                # An input returned as it is, or a tensor returned twice: renaming it would rename that input or
                # take the earlier output's name away. The output is a copy of it.
                t = out(graph.network.add_identity(t.itensor), f"output {name}")
            claimed.add(name)
            with capture_errors() as errors:
                t.itensor.name = name
                if t.itensor.name != name:  # TensorRT keeps the old name when another tensor has this one
                    why = "; ".join(errors) or "the name is taken"
                    raise NetworkError(
                        f"{kind}: output {name!r} cannot have that name: another tensor of the network has it; "
                        f"name the outputs otherwise (output_names). TensorRT: {why}"
                    )
            network.mark_output(t.itensor)
            # Tensor.shape turns TensorRT's RuntimeError into a NetworkError with its reason.
            outputs.append(TensorSpec(name, t.shape, dtypes.numpy_of(t.dtype).name))
    if policy.precision in FORMATS and policy.calibration is not None:
        check_calibration(policy.calibration, model, specs, bool(reuse_calibration), policy.precision)
    return Network(
        network,
        builder,
        specs,
        outputs,
        graph.keepalive,
        time.perf_counter() - t0,
        policy=policy,
        label=f"{type(model).__name__} {policy.precision}",
        owner=graph,
    )


def _output_names(model: Module, results: list) -> list[str]:
    """The names of `forward`'s results: one distinct name per Tensor, or a NetworkError saying what differs."""
    kind = type(model).__name__
    for i, t in enumerate(results):
        if not isinstance(t, Tensor):
            raise NetworkError(
                f"{kind}.forward returned {type(t).__name__} as output {i}: every output must be a trtnet Tensor"
            )
    given = users.run(model, "output_names", lambda: list(model.output_names(len(results))))  # a generator too
    names = users.listed(model, "output_names", given, str)
    if len(names) != len(results):
        raise NetworkError(
            f"{kind}.forward returned {len(results)} outputs but {kind}.output_names"
            f"({len(results)}) names {len(names)}: {names}; name each output once (or return fewer)"
        )
    if len(set(names)) != len(names):
        raise NetworkError(f"{kind}.output_names({len(results)}) gives a name twice: {names}")
    return names


def batch_range(batch_size: Any) -> tuple[int, int, int]:
    """(min, opt, max) of `batch_size`: a whole number >= 1 (any integral type but bool), or a sequence of three
    with 1 <= min <= opt <= max; anything else is a `NetworkError` saying what is allowed."""

    def whole(v: Any) -> int | None:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            return None
        return int(v)

    allowed = (
        "a whole number from 1 to 2**31 - 1 (8), or a (min, opt, max) sequence of such numbers with "
        "min <= opt <= max ((1, 8, 32))"
    )
    n = whole(batch_size)
    if n is not None:
        values = [n] * 3
    elif isinstance(batch_size, (tuple, list)) or (isinstance(batch_size, np.ndarray) and batch_size.ndim == 1):
        values = [whole(v) for v in batch_size]
    else:
        values = []
    if len(values) != 3 or None in values or not 1 <= values[0] <= values[1] <= values[2] <= MAX_BATCH:
        raise NetworkError(f"batch_size {_short(batch_size)}: expected {allowed}")
    return values[0], values[1], values[2]


def _sample_shape(name: str, shape: Any, rank: int) -> tuple[int, ...]:
    """An `input_shapes` entry: `rank` whole numbers >= 1 (the per-sample shape, no batch)."""
    dims = list(shape) if isinstance(shape, (tuple, list)) else None
    if (
        dims is None
        or len(dims) != rank
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and 1 <= d <= MAX_BATCH for d in dims)
    ):
        raise NetworkError(
            f"input_shapes[{name!r}] {_short(shape)}: expected {rank} whole number(s) >= 1, the "
            f"per-sample shape of input {name!r} (without the batch)"
        )
    return tuple(int(d) for d in dims)


def _check_model(model: Any) -> Module:
    """`model` if it is a trtnet Module; else a `NetworkError` that says how to make one."""
    if not isinstance(model, Module):
        how = (
            f" (trtnet.parse_onnx({model!r}) reads an ONNX file into a network that build takes)"
            if isinstance(model, str) and model.lower().endswith(".onnx")
            else f" (trtnet.zoo.{model}(weights=...) makes one)"
            if isinstance(model, str)
            else f" (call it to make one: {getattr(model, '__name__', 'model')}(weights=None))"
            if callable(model)
            else ""
        )
        raise NetworkError(
            f"expected a trtnet Module (a zoo model) or a trtnet.Network, not {type(model).__name__} "
            f"{_short(model)}{how}"
        )
    return model


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _input_specs(model: Module, batch_size: BatchSize, overrides: dict[str, Sequence[int]]) -> list[TensorSpec]:
    declared: list[Input] = users.listed(
        model, "inputs", users.run(model, "inputs", lambda: list(model.inputs())), Input
    )
    names = {i.name for i in declared}
    if len(names) != len(declared):
        twice = sorted(n for n, k in collections.Counter(i.name for i in declared).items() if k > 1)
        raise NetworkError(
            f"{type(model).__name__}.inputs() names {twice} more than once: each input needs its own name"
        )
    for name in overrides:
        if name not in names:
            raise NetworkError(f"input_shapes names {name!r}, but {type(model).__name__} has inputs {sorted(names)}")
    lo, opt, hi = batch_range(batch_size)
    specs = []
    for i in declared:
        # An override is one fixed per-sample shape; declared dims may be (min, opt, max) ranges.
        if i.name in overrides:
            low = shape = high = _sample_shape(i.name, overrides[i.name], len(i.shape))
        else:
            low, shape, high = i.shape_range()
        if low == high:  # only the batch varies, if anything: the spec as engines always had it
            specs.append(TensorSpec(i.name, (opt, *shape), i.dtype, min_batch=lo, max_batch=hi))
        else:
            specs.append(
                TensorSpec(
                    i.name,
                    (opt, *shape),
                    i.dtype,
                    min_batch=lo,
                    max_batch=hi,
                    min_shape=(lo, *low),
                    max_shape=(hi, *high),
                )
            )
    return specs


def reference(
    model: Module | Network,
    *inputs: np.ndarray,
    policy: Policy | None = None,
    reuse_calibration: bool = False,
    **options: Unpack[PolicyOptions],
) -> list[np.ndarray]:
    """Run `model` (or a `Network`) in the numpy reference interpreter on `inputs` (arrays in input order, or one
    {input name: array} mapping, as `run_network` takes them); a model's network is emitted for their shapes.
    Emission options as for `build`.

    >>> logits, = trtnet.reference(resnet50(weights=None), np.zeros((2, 3, 224, 224), np.float32))  # doctest: +SKIP
    """
    if isinstance(model, Network):
        if policy is not None or options or reuse_calibration:
            raise NetworkError("reference(Network): the network's types are fixed; emission options belong to emit")
        net, names = model, [s.name for s in model.inputs]
    else:
        names = [i.name for i in _check_model(model).inputs()]
    if len(inputs) == 1 and isinstance(inputs[0], Mapping):  # by name: read as an array it was a dtype object
        by_name = inputs[0]
        if set(by_name) != set(names):
            raise NetworkError(
                f"{_what(model)} takes inputs {names}; the mapping given holds {sorted(map(str, by_name))}"
            )
        inputs = tuple(by_name[n] for n in names)
    if len(inputs) != len(names):
        raise NetworkError(f"{_what(model)} takes {len(names)} inputs ({', '.join(names)}), got {len(inputs)}")
    if not isinstance(model, Network):
        inputs = tuple(checked_inputs(model, inputs))
        batch = {np.shape(x)[0] for x in inputs}
        if len(batch) != 1:
            raise NetworkError(f"inputs disagree on the batch size: {[np.shape(x) for x in inputs]}")
        shapes = {n: tuple(np.shape(x)[1:]) for n, x in zip(names, inputs)}
        net = emit(
            model, batch.pop(), policy=policy, input_shapes=shapes, reuse_calibration=reuse_calibration, **options
        )
    feeds = {n: np.asarray(x) for n, x in zip(names, inputs)}
    return list(run_network(net.network, feeds).values())


def checked_inputs(model: Module, inputs: Sequence[Any], error: type[Exception] = NetworkError) -> list[np.ndarray]:
    """`inputs` for `model`'s declared inputs, checked as an engine call is (`trtnet.runtime.bindings.
    check_inputs`): the dtype, the rank, channels first, one batch size; a uint8 or channels-last image batch is
    refused here, naming what the model takes, not deep in the network. A float array for a float input and an
    integer one for an integer input are cast as the interpreter casts them (an integer only when no value
    changes). Per-sample sizes may differ from the declared ones: the network is emitted for them."""
    from trtnet.runtime.bindings import check_inputs

    _check_model(model)
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise error(
            f"the inputs of {type(model).__name__} are a list of arrays, one per input, not {type(inputs).__name__}"
        )
    arrays = [np.asarray(x) for x in inputs]
    declared = model.inputs()
    if len(arrays) == len(declared):
        for k, (i, a) in enumerate(zip(declared, arrays)):
            want = dtypes.numpy_of(i.dtype)
            floats = np.issubdtype(want, np.floating) and np.issubdtype(a.dtype, np.floating)
            ints = np.issubdtype(want, np.integer) and np.issubdtype(a.dtype, np.integer)
            if a.dtype != want and (floats or (ints and np.array_equal(a.astype(want), a))):
                arrays[k] = a.astype(want)
    batches = [a.shape[0] for a in arrays if a.ndim]
    specs = _input_specs(model, (1, max(batches, default=1), max(batches, default=1)), {})
    check_inputs(specs, arrays, taker=type(model).__name__, error=error, any_size=True)
    return arrays


def _what(model: Module | Network) -> str:
    return f"the network {model.label!r}" if isinstance(model, Network) else type(model).__name__
