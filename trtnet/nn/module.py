"""Modules and parameters. A parameter's name is its attribute path, which is the PyTorch state_dict key.

Parameters and submodules are found by reflection over public attributes, lists and dicts (no registration
calls). Attributes whose names start with `_` are private state and are never walked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from trtnet.dtypes import DTYPES, NO_NUMPY, canonical
from trtnet.errors import NetworkError
from trtnet.graph import current_graph
from trtnet.layouts import Layout
from trtnet.ops.arrays import ConstantArray

Dim = int | tuple[int, int, int]


@dataclass(frozen=True)
class Input:
    """A model input: its name, its per-sample shape (the batch dim comes first, added at build) and dtype.

    A dim of the shape is an int, or a (min, opt, max) range for a dim that varies at run time (a sequence
    length): the engine then takes any size in the range, and is tuned for opt.

    The rest are hints for test inputs (`trtnet.parity.sample_inputs`; the network ignores them): integer
    values are drawn from [low, high), e.g. high = the vocabulary size for token ids; a `padding_mask` is
    ones with some positions zeroed.

    >>> Input("input_ids", ((16, 128, 512),), "int32", high=30522)   # any length from 16 to 512
    """

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"
    low: int = 0
    high: int = 2
    padding_mask: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:  # TensorRT takes only strings, and "" names nothing
            raise NetworkError(f"an Input's name must be a non-empty string, not {self.name!r}")
        # A DSL dtype name ("fp16" spelled out as "float16"): checked here, where the model declares it.
        try:
            object.__setattr__(self, "dtype", canonical(self.dtype, f"input {self.name!r} dtype"))
        except NetworkError:
            fed = [d for d in DTYPES if d not in NO_NUMPY]  # what a numpy array can be fed as
            raise NetworkError(
                f"input {self.name!r} dtype {self.dtype!r}: an input is one of {', '.join(fed)}"
            ) from None
        if self.dtype in NO_NUMPY:
            raise NetworkError(
                f"input {self.name!r}: a {self.dtype} input has no numpy dtype to be fed with; declare it float32 or "
                "float16 (a bf16 or fp8 network casts it at the boundary)"
            )
        object.__setattr__(self, "shape", tuple(_dim(d, self.name) for d in self.shape))

    @property
    def opt_shape(self) -> tuple[int, ...]:
        """The per-sample shape with each range at its opt size."""
        return tuple(d[1] if isinstance(d, tuple) else d for d in self.shape)

    def shape_range(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) per-sample shapes."""
        return tuple(tuple(d[i] if isinstance(d, tuple) else d for d in self.shape) for i in range(3))


def _dim(d: Any, name: str) -> Dim:
    if isinstance(d, (tuple, list)):
        if (
            len(d) == 3
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in d)
            and 1 <= d[0] <= d[1] <= d[2]
        ):
            return tuple(int(v) for v in d)
    elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1:
        return int(d)
    raise NetworkError(
        f"input {name!r}: dim {d!r} is neither a size >= 1 nor a (min, opt, max) range with 1 <= min <= opt <= max"
    )


@dataclass(eq=False)
class Parameter(ConstantArray):
    """A weight of known shape; `value` is a numpy array once weights are loaded or initialised.

    `init` says how `init_random` fills it: "normal" (std `std`), "fan_in" (std 1/sqrt(fan in), over all but the
    first dim), "zeros", "ones", "uniform" (in [low, high]).

    In `forward` it is used as a tensor, as in PyTorch: `x + self.pos`, `x * self.gamma.reshape(1, -1, 1, 1)`
    (one constant layer per network however often it is used; its shape methods cost no layer; a per-channel
    product or sum is one scale layer: see `trtnet.ops.arrays`).
    """

    shape: tuple[int, ...]
    init: str = "normal"
    std: float = 0.02
    low: float = 0.0
    high: float = 1.0
    value: np.ndarray | None = field(default=None, repr=False)
    _path: str = field(default="", init=False, repr=False)  # its state_dict key, once its model is bound (Module.bind)

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)

    def initial(self, rng: np.random.Generator) -> np.ndarray:
        if self.init == "zeros":
            return np.zeros(self.shape, np.float32)
        if self.init == "ones":
            return np.ones(self.shape, np.float32)
        if self.init == "uniform":
            return rng.uniform(self.low, self.high, self.shape).astype(np.float32)
        std = self.std
        if self.init == "fan_in":
            std = math.sqrt(1.0 / max(1, math.prod(self.shape[1:])))
        return (rng.standard_normal(self.shape) * std).astype(np.float32)

    @property
    def constant_name(self) -> str:
        """The op name of its constant layer: its attribute name (`pos_embed`)."""
        return self._path.rpartition(".")[2] or "parameter"

    def array(self) -> np.ndarray:
        return self.data

    @property
    def data(self) -> np.ndarray:
        """The value as float32 (what the emitter reads)."""
        if self.value is None:
            name = (
                f"parameter {self._path!r} (shape {self.shape})" if self._path else f"parameter of shape {self.shape}"
            )
            raise NetworkError(
                f"{name} has no value: load the model's weights with trtnet.load_weights(model, "
                "'weights.safetensors') (or a dict of arrays), or fill it with seeded random values with "
                "trtnet.init_random(model); a zoo entry does either itself: zoo_fn(weights=FILE) or "
                "zoo_fn(weights=None)"
            )
        return np.asarray(self.value, dtype=np.float32)


class Module:
    """Base of every layer and model. Subclasses set attributes in `__init__` and write `forward`.

    Class-level declarations, relative to the module's own path:
    - `skip_keys`: state_dict entries that are not parameters and are skipped on purpose (buffers such as
      BatchNorm's `num_batches_tracked`); glob patterns.
    - `unused_keys`: parameters of the source model this re-expression does not use (a pre-training head);
      skipped with a warning.
    - `layouts`: other checkpoint layouts of the same weights (another repository's key names), recognised by
      a marker key and converted on loading by the default `adapt_state` (see `trtnet.layouts`).
    """

    skip_keys: ClassVar[tuple[str, ...]] = ()
    unused_keys: ClassVar[tuple[str, ...]] = ()
    layouts: ClassVar[tuple[Layout, ...]] = ()
    _path: str = ""

    def forward(self, *args, **kwargs):
        raise NotImplementedError(type(self).__name__)

    def inputs(self) -> list[Input]:
        """The network inputs of a whole model (submodules need not say)."""
        raise NetworkError(f"{type(self).__name__} does not declare its inputs, so it cannot be built on its own")

    def output_names(self, n: int) -> list[str]:
        """Names of the network outputs, given how many `forward` returned."""
        return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]

    def __call__(self, *args, **kwargs):
        graph = current_graph()
        with graph.scope(self._path):
            result = self.forward(*args, **kwargs)
        graph.record_call(self._path, type(self).__name__, args, result)
        return result

    # -- reflection ----------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Any]]:
        """(name, Module | Parameter) for direct children, lists and dicts flattened as `name.i`."""
        for name, value in vars(self).items():
            if not name.startswith("_"):
                yield from _walk(name, value)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self.named_children():
            if isinstance(child, Module):
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for prefix, module in self.named_modules():
            for name, child in module.named_children():
                if isinstance(child, Parameter):
                    yield (f"{prefix}.{name}" if prefix else name), child

    def bind(self, prefix: str = "") -> Module:
        """Record every module's path, the prefix of its layer names. Returns self."""
        for path, module in self.named_modules(prefix):
            module._path = path
            children = [child for _, child in module.named_children()]
            for name, child in module.named_children():
                if isinstance(child, Parameter):
                    child._path = f"{path}.{name}" if path else name
            for child, sibling in zip(children, children[1:]):
                if isinstance(child, Module):
                    child.precedes(sibling)
        return self

    def precedes(self, sibling: Module | Parameter) -> None:
        """Hook: `bind` tells each child module which one is declared right after it (a Conv2d links the
        BatchNorm2d that follows it, to fold it). Default: nothing."""

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: p.data for k, p in self.named_parameters()}

    def adapt_state(self, prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Hook: rewrite a checkpoint's layout for this module before strict matching (default: convert from
        each declared `layouts` entry whose marker key is present; else unchanged)."""
        for layout in self.layouts:
            if layout.matches(prefix, state):
                state = layout.convert(self, prefix, state)
        return state


class ImageClassifier(Module):
    """A whole model taking one float32 NCHW image `x` of `image_size` pixels and returning `logits`."""

    image_size: int = 224

    def inputs(self) -> list[Input]:
        return [Input("x", (3, self.image_size, self.image_size))]

    def output_names(self, n: int) -> list[str]:
        return ["logits"]


def _walk(name: str, value) -> Iterator[tuple[str, Any]]:
    if isinstance(value, (Module, Parameter)):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(f"{name}.{i}", item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(f"{name}.{key}", item)
