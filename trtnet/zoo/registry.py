"""The model registry: a dict of entry points that refuses a duplicate name."""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import functools
import math
import numbers
import os
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtnet.errors import ConfigError, TrtnetError
from trtnet.layouts import adapt_checkpoint, declared, foreign_source
from trtnet.nn.module import Module
from trtnet.random_init import init_random
from trtnet.weights import load_weights
from trtnet.zoo.sources import published_source, timm_source, torchvision_source

Weights = str | os.PathLike | Mapping[str, np.ndarray] | None


@dataclass(frozen=True)
class ZooEntry:
    """A registered model: its entry point, the PyTorch source it re-expresses, and how to build that source."""

    name: str
    fn: Callable[..., Module]
    source: str  # human-readable, e.g. "torchvision.models.resnet50"
    torch_model: Callable[[], object]  # builds the PyTorch source model (imports torch lazily)
    benchmark: bool = False  # one of the nine models of the published benchmark
    pretrained: Callable[[], object] | None = None  # the source with its published weights (downloads them)
    config: Any = None  # the architecture config the entry builds (a frozen dataclass), where it has one
    # Options of `fn` the published weights need (InceptionV3's `transform_input`): what export-weights
    # --pretrained and verify --against-pretrained build trtnet's side with.
    pretrained_options: Mapping[str, Any] = field(default_factory=dict)
    # The source's final Linear (a module path, "fc"), whose bias `trtnet.parity.torch_model` shifts so that the
    # random source's outputs are centred: a deep random classifier's logits are mostly one input-independent
    # offset, under which a comparison measured against their largest value sees little else.
    centered: str | None = None

    def skeleton(self, **options: Any) -> Module:
        """The model with `options` (default: none) and no weights: its parameters' keys and shapes, cheaply."""
        token = _SKELETON.set(True)
        try:
            return self.fn(**options)
        finally:
            _SKELETON.reset(token)

    def pretrained_model(self):
        """The PyTorch source with its published weights (downloads them: needs network access).

        The entry's own `pretrained` builder; else, when `source` names a plain torchvision builder
        (`torchvision.models.resnet50`) or a timm model (`timm vit_base_patch16_224`,
        `timm.create_model('efficientnet_b0')`), that library's published weights.
        """
        if self.pretrained is not None:
            return self.pretrained()
        builder = published_source(self.source)
        if builder is not None:
            return builder()
        raise TrtnetError(
            f"zoo entry {self.name!r}: no known way to download the published weights of "
            f"{self.source} (the entry can register a `pretrained` builder)"
        )


REGISTRY: dict[str, ZooEntry] = {}
_SKELETON = contextvars.ContextVar("trtnet_zoo_skeleton", default=False)


def register(
    name: str,
    source: str,
    torch_model: Callable[[], object],
    benchmark: bool = False,
    pretrained: Callable[[], object] | None = None,
    config: Any = None,
    pretrained_options: Mapping[str, Any] | None = None,
    centered: str | None = None,
):
    """Decorator adding an entry point to the zoo under `name`, with the PyTorch source it re-expresses.

    `torch_model()` builds that source (random weights; import torch inside it); `source` says in words what it
    is. `pretrained` builds the source with its published weights, where `source` alone does not say how (see
    `ZooEntry.pretrained_model`); `config` is the architecture config the entry builds; `pretrained_options` are
    the entry's options the published weights need; `centered` names the source's final Linear, centred on random
    weights (see `ZooEntry.centered`). A family of variants registers through `register_variant`.
    Your own model registers the same way, and then `trtnet verify file.py:NAME` and `trtnet export-weights
    file.py:NAME` find its PyTorch source:

    >>> @register("tiny_mlp", source="my_models.TinyMLP", torch_model=lambda: my_models.TinyMLP())
    ... def tiny_mlp(weights=None, **config) -> Module: ...                            # doctest: +SKIP

    A name registered twice is an error.
    """

    def add(fn: Callable[..., Module]) -> Callable[..., Module]:
        if name in REGISTRY:
            raise TrtnetError(
                f"zoo entry {name!r} is registered twice ({REGISTRY[name].fn.__module__} and {fn.__module__})"
            )
        REGISTRY[name] = ZooEntry(
            name, fn, source, torch_model, benchmark, pretrained, config, dict(pretrained_options or {}), centered
        )
        return fn

    return add


def forget_module(module: str) -> None:
    """Drop the entries registered by module `module` before its file runs (again): a user's model file that
    `trtnet.cli.model_ref` ran before and that failed half-way may have registered some of them."""
    for name in [n for n, e in REGISTRY.items() if e.fn.__module__ == module]:
        del REGISTRY[name]


def entry_of(fn: Callable[..., Module]) -> ZooEntry | None:
    """The registered entry whose entry point is `fn`, if any."""
    return next((entry for entry in REGISTRY.values() if entry.fn is fn), None)


def register_variant(
    name: str,
    build: Callable[[Any], Module],
    config: Any,
    source: str,
    torch_model: Callable[[], object],
    benchmark: bool = False,
    centered: str | None = None,
) -> Callable[..., Module]:
    """Register and return the entry point `name(weights=None, **overrides)` of one variant of a family.

    The entry builds `build(dataclasses.replace(config, **overrides))` (so `num_classes=10` or any other
    field of the config can be changed at the call) and loads `weights` into it strictly.

    >>> vit_b_16 = timm_variant("vit_b_16", VisionTransformer, ViTConfig(768, 12, 12), "vit_base_patch16_224")
    """
    allowed = sorted(f.name for f in dataclasses.fields(config))

    def entry(weights: Weights = None, **overrides: Any) -> Module:
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise ConfigError(
                f"{name}: unknown config field {unknown[0]!r} (value {overrides[unknown[0]]!r}); "
                f"{type(config).__name__} has {', '.join(allowed)}"
            )
        checked = {key: _setting(key, value, config, name) for key, value in overrides.items()}
        return with_weights(build(dataclasses.replace(config, **checked)), weights)

    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = build.__module__
    entry.__doc__ = (
        f"{name} with the state_dict keys of {source}. `weights`: a safetensors path, a dict, or None; "
        f"`overrides`: fields of {type(config).__name__} ({', '.join(allowed)})."
    )
    return register(name, source, torch_model, benchmark, config=config, centered=centered)(entry)


def _setting(key: str, value: Any, config: Any, name: str) -> Any:
    """An override of the config field `key`, checked against the field's default (or, where that is None, its
    type: a dataclass such as NMSOptions is taken as {field: value}, as JSON gives it)."""
    default = getattr(config, key)
    if default is None:
        return _optional(key, value, config, name)
    if isinstance(default, tuple) and default and hasattr(type(default[0]), "_fields"):
        return _records(key, value, default, name)
    return _size_like(key, ConfigError.like(key, value, default, source=name), config, name)


def _optional(key: str, value: Any, config: Any, name: str) -> Any:
    """A field that defaults to None: None, or its dataclass type, given as one or as a mapping of its fields."""
    kinds = [k for k in typing.get_args(_field_type(config, key)) if dataclasses.is_dataclass(k)]
    if value is None or not kinds or isinstance(value, kinds[0]):
        return value
    kind = kinds[0]
    defaults = {f.name: f.default for f in dataclasses.fields(kind)}
    what = f"null or an object of {', '.join(defaults)}"
    ConfigError.check(key, value, what, lambda v: isinstance(v, Mapping) and set(v) <= set(defaults), source=name)
    given = {  # a field whose default says nothing of its kind (none, or None) is left to the dataclass
        k: v
        if defaults[k] is None or defaults[k] is dataclasses.MISSING
        else ConfigError.like(f"{key}.{k}", v, defaults[k], source=name)
        for k, v in value.items()
    }
    try:
        return kind(**given)
    except (ConfigError, TypeError) as e:  # its own checks (NMSOptions: max_det from 1 to 3840), a field it needs
        raise ConfigError(f"{name}: {key}: {e}") from None


def _field_type(config: Any, key: str) -> Any:
    """The type of the config field `key`, its annotation evaluated where the config is defined; None where it
    cannot be (a name imported only for type checkers: typing.get_type_hints failed on the whole class)."""
    annotation = next(f.type for f in dataclasses.fields(config) if f.name == key)
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, vars(sys.modules[type(config).__module__]))  # noqa: S307  (the config's own source)
    except Exception:  # noqa: BLE001  (whatever the annotation raises, the type is unknown)
        return None


def _records(key: str, value: Any, default: tuple, name: str) -> tuple:
    """A table of rows (NamedTuples: MobileNetV2's and EfficientNet's stage tables) as a non-empty list of rows,
    each a list of the row's fields in order (trailing fields with defaults may be left out): every field of
    the kind of the default table's, counts and ratios positive, a word one the table uses. A table whose rows
    name module classes (YOLO's) is not set from values."""
    kind = type(default[0])
    fields, least = kind._fields, len(kind._fields) - len(kind._field_defaults)
    if not all(isinstance(getattr(r, f), (numbers.Real, str)) for r in default for f in fields):
        raise ConfigError(
            f"{name}: {key} cannot be set from values: its rows name module classes; write the model in Python "
            "with a table of its own"
        )

    def is_table(v: Any) -> bool:  # a list: a generator is read up by the check, a set has no order
        return (
            isinstance(v, (list, tuple))
            and bool(v)
            and all(isinstance(r, (list, tuple)) and least <= len(r) <= len(fields) for r in v)
        )

    ConfigError.check(key, value, f"a non-empty list of rows [{', '.join(fields)}]", is_table, source=name)
    rows = []
    for i, row in enumerate(value):
        given = kind(*row)
        checked = {}
        for f in fields:
            like, field = getattr(default[0], f), f"{key}[{i}].{f}"
            v = ConfigError.like(field, getattr(given, f), like, source=name)
            if isinstance(like, str):
                words = sorted({getattr(r, f) for r in default})
                v = ConfigError.check(field, v, f"one of {words}", words.__contains__, source=name)
            elif _is_count(like):
                v = ConfigError.check(field, v, COUNT, _is_count, source=name)
            elif isinstance(like, float) and like > 0:
                v = ConfigError.check(field, v, "a positive number", lambda x: 0 < x < math.inf, source=name)
            checked[f] = v
        row = kind(**checked)
        problem = row.problem() if hasattr(row, "problem") else None  # what the row's own block cannot build
        if problem:
            raise ConfigError(f"{name}: {key}[{i}] = {list(row)} is not allowed: {problem}")
        rows.append(row)
    return tuple(rows)


def _size_like(key: str, value: Any, config: Any, name: str) -> Any:
    """A count or size (a positive integer default, or a tuple of them: classes, stage depths, widths) must be one
    too, and a positive float (a ratio, an eps) a positive finite float: `layers=[0, 0, 0, 0]` built a ResNet of no
    blocks, `num_classes=-1` failed inside numpy. numpy's integers are taken as Python's. A config with a
    `__post_init__` checks its own fields (the Hugging Face ones: `trtnet.zoo.hf_config`)."""
    default = getattr(config, key)
    if hasattr(type(config), "__post_init__"):
        return value
    if _is_count(default):
        return ConfigError.check(key, value, COUNT, _is_count, source=name)
    if isinstance(default, float) and default > 0:
        return ConfigError.check(key, value, "a positive number", lambda v: 0 < v < math.inf, source=name)
    if isinstance(default, tuple) and _counts(default, default):  # stage depths; VGG's widths by stage
        nested = isinstance(default[0], tuple)
        what = (
            "a non-empty list of " + ("non-empty lists of " if nested else "") + "positive integers (at most 2**31 - 1)"
        )
        ConfigError.check(key, value, what, lambda v: _counts(v, default), source=name)
        return _as_tuples(value)
    return value


COUNT = "a positive integer (at most 2**31 - 1)"  # larger ones failed inside numpy or TensorRT, untyped


def _is_count(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and 1 <= v <= 2**31 - 1


def _counts(value: Any, like: tuple) -> bool:
    """Whether `value` nests as `like` does (lists or tuples, none empty) with counts at the bottom."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    inner = like[0]
    return all(_counts(v, inner) if isinstance(inner, tuple) else _is_count(v) for v in value)


def _as_tuples(value: Any) -> Any:
    return tuple(map(_as_tuples, value)) if isinstance(value, (list, tuple)) else int(value)


def same_stages(config: Any, *fields: str, count: int | None = None) -> None:
    """Per-stage tuples of a config (`depths` and `num_heads`) must have one entry per stage each, `count` of them
    where the architecture fixes it (a ResNet's layer1..layer4): a ConfigError otherwise, where a shorter one was
    cut silently by a zip or failed as an IndexError."""
    lengths = {f: len(getattr(config, f)) for f in fields}
    wanted = count if count is not None else next(iter(lengths.values()))
    if any(n != wanted for n in lengths.values()):
        said = ", ".join(f"{f} = {list(getattr(config, f))}" for f in fields)
        raise ConfigError(f"{type(config).__name__}: {said}: expected {wanted} stages{' in each' * (len(fields) > 1)}")


def timm_variant(
    name: str,
    build: Callable[[Any], Module],
    config: Any,
    timm_name: str,
    he: bool | float = False,
    benchmark: bool = False,
) -> Callable[..., Module]:
    """`register_variant` of a timm model `timm_name` (`he` as in `sources.timm_source`)."""
    return register_variant(name, build, config, f"timm {timm_name}", timm_source(timm_name, he), benchmark)


def torchvision_variant(
    name: str,
    build: Callable[[Any], Module],
    config: Any,
    he: bool | float = False,
    benchmark: bool = False,
    centered: str | None = None,
) -> Callable[..., Module]:
    """`register_variant` of `torchvision.models.<name>` (`he` as in `sources.torchvision_source`, `centered` as
    in `ZooEntry.centered`)."""
    source = torchvision_source(name, he)
    return register_variant(name, build, config, f"torchvision.models.{name}", source, benchmark, centered)


def get_entry(name: str) -> ZooEntry:
    if name not in REGISTRY:
        # A misspelt name is the usual case: the nearest names first, then the whole list.
        near = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.6)
        guess = f"did you mean {', '.join(near)}? " if near else ""
        raise TrtnetError(f"no zoo model {name!r}; {guess}known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def with_weights(model: Module, weights: Weights, seed: int = 0) -> Module:
    """Load `weights` into `model` strictly, or initialise it deterministically when `weights` is None."""
    if _SKELETON.get():
        return model
    if weights is None:
        init_random(model, seed)
    else:
        load_weights(model, weights, hint=mismatch_hint)
    return model


# -- what a file that does not fit looks like -------------------------------------------------------------

Shapes = dict[str, tuple[int, ...]]


@functools.cache
def _table(name: str) -> tuple[Module, Shapes]:
    model = get_entry(name).skeleton()
    return model, {k: p.shape for k, p in model.named_parameters()}


def _read_as(model: Module, table: Shapes, shapes: Shapes) -> tuple[list[str], list[str]] | None:
    """When `shapes` has `model`'s keys (after its conversions): the layouts it was read as and the keys whose
    shapes differ; else None."""
    adapted, layouts = adapt_checkpoint(model, shapes)
    skipped = declared(model, adapted, "skip_keys") | declared(model, adapted, "unused_keys")
    kept = {k: v for k, v in adapted.items() if k not in skipped}
    if kept.keys() != table.keys():
        return None
    return layouts, [k for k, v in table.items() if tuple(kept[k]) != tuple(v)]


def mismatch_hint(model: Module, shapes: Shapes) -> str | None:
    """One line saying which zoo entry (and layout) a file that does not fit `model` was made for, if any: one
    whose keys and shapes it has, else one whose keys it has (a variant with another head, say).

    Compares the file's keys and shapes with every entry's parameter table, each built without weights.
    """
    own = {k: p.shape for k, p in model.named_parameters()}
    target = next((n for n in REGISTRY if _table(n)[1] == own), type(model).__name__)
    near = None
    for name in REGISTRY:
        other, table = _table(name)
        if table == own:
            continue
        found = _read_as(other, table, shapes)
        if found is None:
            continue
        layouts, differ = found
        read_as = f" ({', '.join(layouts)} layout)" if layouts else ""
        if not differ:
            return f"looks like a {name} file{read_as}, not {target}: load it into {name}"
        if table.keys() != own.keys():  # a variant of the model's own keys says nothing the listing does not
            near = near or (
                f"looks like a {name} file{read_as} with {len(differ)} tensors of other shapes (e.g. "
                f"{differ[0]}), not {target}"
            )
    return near or foreign_source(shapes)
