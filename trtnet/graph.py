"""The network being emitted: a TensorRT `INetworkDefinition` plus the state the DSL needs while writing it.

Ops find the current graph through `current_graph()`, so model code reads like PyTorch (`relu(conv(x))`)
with no network argument threaded through. A graph holds:
- the module-path scope, so every layer is named after the module that emitted it (`layer3.2.conv1/conv`);
- the numpy arrays behind every weight, alive until the engine is built (TensorRT keeps only pointers);
- the emission policy (compute dtype, whether LayerNorm and softmax stay in fp32, whether BatchNorm is folded).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypedDict

import ml_dtypes
import numpy as np

from trtnet.backend import capture_errors, get_trt
from trtnet.dtypes import name_of, numpy_of, to_trt
from trtnet.errors import NetworkError
from trtnet.quant.ranges import as_calibration

if TYPE_CHECKING:
    from trtnet.tensor import Tensor

# "tf32" emits the fp32 network and only lets TensorRT use TF32 in matrix multiplies and convolutions (a
# builder flag, which every fp32 build clears): inputs of those rounded to 10 mantissa bits, fp32 accumulation.
# "int8" and "fp8": explicit Q/DQ around the weighted layers, fp16 elsewhere (trtnet.ops.quantize).
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
QUANTIZED = ("int8", "fp8")
UNQUANTIZED = tuple(p for p in PRECISIONS if p not in QUANTIZED)  # no calibration needed


@dataclass(frozen=True)
class Policy:
    """How a network is emitted: the one options object `emit`, `build`, `reference` and the engine cache take.

    The defaults are declared here and nowhere else. The rule: the defaults reproduce the PyTorch source as
    closely as TensorRT can (fp32 compute, BatchNorm folded exactly in float64, TensorRT's fused attention where
    the backend has it); a reduced precision is something the caller names (`precision="fp16"`; the CLI and
    bench.py name it by default, being about speed).

    >>> trtnet.build(model, 8, policy=Policy(precision="fp16", norm_fp32=False))     # doctest: +SKIP
    >>> trtnet.build(model, 8, precision="fp16")   # the same as policy=Policy(precision="fp16")  # doctest: +SKIP
    """

    precision: str = "fp32"  # the compute type of float tensors and weights: one of PRECISIONS
    # Under fp16/bf16, keep LayerNorm and softmax arithmetic in fp32 (a cast on each side). BatchNorm is not
    # concerned: folded into its convolution, or else a scale layer in the compute precision.
    norm_fp32: bool = True
    fold_bn: bool = True  # fold BatchNorm into the preceding convolution where the model declares the pair
    fused_attention: bool = True  # use TensorRT's attention layer where the backend has one
    # int8/fp8: the activation ranges, a trtnet.Calibration (a path to its JSON file is loaded).
    # Not compared: the network's Q/DQ scales carry it into the engine cache key.
    calibration: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise NetworkError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        for f in fields(self)[1:]:  # the switches
            if f.name == "calibration":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, bool):
                raise NetworkError(f"{f.name} must be True or False, not {type(value).__name__} {value!r}")
        if self.precision in QUANTIZED and self.calibration is None:
            raise NetworkError(
                f"precision {self.precision!r} needs activation ranges: pass calibration= (a "
                "trtnet.calibrate() result or its JSON file)"
            )
        object.__setattr__(self, "calibration", as_calibration(self.calibration))

    def with_options(self, **options: Any) -> Policy:
        """This policy with the named fields changed; an unknown name is a `NetworkError` listing the fields."""
        known = [f.name for f in fields(self)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise NetworkError(f"unknown emission option(s) {unknown}: a Policy has {known}")
        return replace(self, **options) if options else self


class PolicyOptions(TypedDict, total=False):
    """Policy's fields as keywords, for the signatures of emit, build and reference (a test keeps the two equal)."""

    precision: str
    norm_fp32: bool
    fold_bn: bool
    fused_attention: bool
    calibration: Any


def resolve_policy(policy: Policy | None, options: dict[str, Any]) -> Policy:
    """The Policy that `policy` (default `Policy()`) and keyword `options` (its field names) make together:
    the one place where `emit`, `build` and `reference` turn their keywords into a Policy."""
    if policy is not None and not isinstance(policy, Policy):
        raise NetworkError(
            f"policy must be a trtnet.graph.Policy, not {type(policy).__name__} {policy!r} "
            "(name the precision as a keyword: precision='fp16')"
        )
    return (policy or Policy()).with_options(**options)


@dataclass
class Memo:
    """What ops emit once per network and reuse, one table per kind, each keyed by what makes two requests the
    same; and what quantization records while the network is written."""

    # ops.core.shared_constant: (shape, numpy dtype, TensorRT dtype, bytes) -> the constant
    constants: dict[tuple, Tensor] = field(default_factory=dict)
    # ops.core.set_reshape: (input, axes, target shape) -> the run-time shape tensor
    reshape_dims: dict[tuple, Tensor] = field(default_factory=dict)
    # ops.shape slicing: (input, which dims are its own, the fixed sizes) -> the run-time size vector
    runtime_sizes: dict[tuple, Tensor] = field(default_factory=dict)
    # ops.attention: (Sq, Sk), or the names of the tensors whose dynamic lengths they are -> bool [1, 1, Sq, Sk]
    causal_keeps: dict[tuple, Tensor] = field(default_factory=dict)
    # ops.attention: (mask, q shape, k shape) -> (bool mask, additive mask) with the causal rule joined in
    causal_joins: dict[tuple, tuple[Tensor | None, Tensor | None]] = field(default_factory=dict)
    # ops.attention: a bool mask's name -> its additive form
    additive_masks: dict[str, Tensor] = field(default_factory=dict)
    # ops.quantize: (tensor, precision, amax) -> its Q/DQ pair's output, shared by the tensor's consumers
    qdq: dict[tuple, Tensor] = field(default_factory=dict)
    # ops.quantize: quantization point key (the consuming layer's name) -> the quantized tensor's name
    quant_points: dict[str, str] = field(default_factory=dict)
    conv_outputs: set[str] = field(default_factory=set)  # ops.quantize: tensors a convolution wrote


@dataclass
class ModuleCall:
    """One call of a module while its network was emitted: the TensorRT tensors it took and returned (their
    names are read after emission, since marking an output renames it)."""

    path: str
    kind: str
    inputs: list[Any]
    outputs: list[Any]


def _itensors(value: Any) -> list[Any]:
    """The ITensors inside a value a module took or returned (Tensors, possibly in tuples, lists or dicts)."""
    folded = getattr(value, "_itensor", None)  # a folded convolution's output guards `itensor` against readers
    if folded is not None:
        return [folded]
    if hasattr(value, "itensor"):
        return [value.itensor]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _itensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _itensors(v)]
    return []


class Graph:
    """One network under construction. Use as a context manager to make it current."""

    def __init__(self, network, policy: Policy = Policy()) -> None:
        self.network = _CheckedNetwork(network, self)  # what ops write through: a refused layer raises at once
        self.policy = policy
        self.keepalive: list[np.ndarray] = []
        self.memo = Memo()
        self._scope: list[str] = []
        self._names: Counter[str] = Counter()
        self._token: contextvars.Token | None = None
        self.calls: list[ModuleCall] = []  # every module call, in the order calls returned (trtnet.parity.blame)

    # -- context -------------------------------------------------------------------------------------
    def __enter__(self) -> Graph:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(self._token)

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Name the layers emitted inside after module path `name` (a full dotted path)."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    @property
    def path(self) -> str:
        return self._scope[-1] if self._scope else ""

    def record_call(self, path: str, kind: str, args: tuple, result: Any) -> None:
        """Note that module `path` (of class `kind`) took the tensors in `args` and returned those in `result`."""
        self.calls.append(ModuleCall(path, kind, _itensors(args), _itensors(result)))

    def name(self, layer, op: str):
        """Give `layer` a unique readable name `<module path>/<op>` and return it."""
        base = f"{self.path}/{op}" if self.path else op
        self._names[base] += 1
        n = self._names[base]
        layer.name = base if n == 1 else f"{base}_{n}"
        return layer

    def peek_name(self, op: str) -> str:
        """The name `name(layer, op)` would give the next layer emitted here (quantization keys use it)."""
        base = f"{self.path}/{op}" if self.path else op
        n = self._names[base] + 1
        return base if n == 1 else f"{base}_{n}"

    def output(self, layer, op: str, index: int = 0):
        """Output `index` of `layer` once TensorRT has inferred its shape; a shape TensorRT cannot infer (a
        mistake in this op) is a `NetworkError` here, not a RuntimeError at whichever op reads it next."""
        itensor = layer.get_output(index)
        with capture_errors() as errors:
            try:
                _ = itensor.shape  # asking is what makes TensorRT report the error
            except RuntimeError:
                inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
                raise self.refused(_calling_op(op), inputs, errors, layer.name) from None
        return itensor

    def refused(self, op: str, inputs: list, errors: list[str], layer: str | None = None) -> NetworkError:
        """The error for op `op` of the current module that TensorRT refused, with its inputs and its reason."""
        where = f"module {self.path!r}" if self.path else "the top-level module"
        shapes = ", ".join(_describe(t) for t in inputs) or "none"
        reason = "; ".join(errors) or "no reason logged"
        named = f"layer {layer!r}; " if layer else ""
        return NetworkError(f"{where}: TensorRT refused op {op!r} ({named}inputs {shapes}): {reason}")

    # -- dtypes --------------------------------------------------------------------------------------
    @property
    def float_dtype(self):
        """The TensorRT dtype float tensors are computed in."""
        trt = get_trt()
        return {
            "fp32": trt.float32,
            "tf32": trt.float32,
            "fp16": trt.float16,
            "bf16": trt.bfloat16,
            "int8": trt.float16,
            "fp8": trt.float16,
        }[self.policy.precision]

    def no_weights(self, dtype=None):
        """TensorRT's empty `Weights` (no bias, no power) of `dtype` (default: the compute dtype)."""
        return get_trt().Weights(self.float_dtype if dtype is None else to_trt(dtype, "weights dtype"))

    def weights(self, array: np.ndarray, dtype=None):
        """Wrap a numpy array as `trt.Weights` in `dtype` (a DSL name or TensorRT dtype; default: the compute
        dtype), kept alive."""
        trt = get_trt()
        dtype = self.float_dtype if dtype is None else to_trt(dtype, "weights dtype")
        arr = np.ascontiguousarray(to_numpy_dtype(array, dtype))
        self.keepalive.append(arr)
        if dtype == trt.bfloat16:  # numpy has no bf16: hand TensorRT the raw bits with the dtype named
            return trt.Weights(trt.bfloat16, arr.ctypes.data, arr.size)
        return trt.Weights(arr)


def to_numpy_dtype(array: np.ndarray, dtype) -> np.ndarray:
    """Round `array` to TensorRT dtype `dtype`. bf16 comes back as uint16 bit patterns: ml_dtypes rounds to
    nearest even and keeps NaN a NaN and infinities infinite (a bit-twiddled rounding carries NaN into -0.0)."""
    trt = get_trt()
    if dtype == trt.bfloat16:
        return np.asarray(array, dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)
    return np.asarray(array, dtype=numpy_of(dtype))


class _CheckedNetwork:
    """The `INetworkDefinition` as ops see it: every `add_*` that TensorRT refuses (it logs why and returns None)
    raises a `NetworkError` naming the module, the op, its inputs and TensorRT's reason, at the op that did it."""

    def __init__(self, network, graph: Graph) -> None:
        self._network = network
        self._graph = graph

    def __getattr__(self, name: str):
        attr = getattr(self._network, name)
        if not name.startswith("add_"):
            return attr

        def add(*args, **kwargs):
            with capture_errors() as errors:
                layer = attr(*args, **kwargs)
                if layer is None:
                    given = [v for a in (*args, *kwargs.values()) for v in (a if isinstance(a, (list, tuple)) else [a])]
                    inputs = [v for v in given if type(v).__name__ == "ITensor"]
                    raise self._graph.refused(_calling_op(name), inputs, errors)
            return layer

        return add


def _calling_op(fallback: str) -> str:
    """The DSL op that a refused layer came from: the outermost trtnet.ops function on the stack, which is what
    the model called (`layer_norm`, `linear`; `elementwise` for `x + y`), else `fallback`."""
    op, frame = fallback, sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("trtnet.ops.") and module != "trtnet.ops.methods":
            op = frame.f_code.co_name
        elif module != "trtnet.ops.methods" and op != fallback:
            break
        frame = frame.f_back
    return op


def _describe(itensor) -> str:
    try:
        shape = "[" + ", ".join(map(str, itensor.shape)) + "]"
    except RuntimeError:
        shape = "[?]"
    try:
        dtype = name_of(itensor.dtype)
    except NetworkError:  # a TensorRT type the DSL has no name for
        dtype = str(itensor.dtype).rpartition(".")[2].lower()
    return f"{itensor.name} {dtype}{shape}"


_CURRENT: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("trtnet_graph", default=None)


def current_path() -> str:
    """Where emission is, for an error: `module 'blocks.1'`, `the top-level module`, or `no network is being built`."""
    graph = _CURRENT.get()
    if graph is None:
        return "no network is being built"
    return f"module {graph.path!r}" if graph.path else "the top-level module"


def current_graph() -> Graph:
    graph = _CURRENT.get()
    if graph is None:
        raise NetworkError("no network is being built: ops run inside trtnet.build/trtnet.reference (a Graph context)")
    return graph
