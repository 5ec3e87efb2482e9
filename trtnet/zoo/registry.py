"""The model registry: a dict of entry points that refuses a duplicate name."""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtnet.errors import ConfigError, TrtnetError
from trtnet.layouts import adapt_checkpoint, declared, foreign_source
from trtnet.nn.module import Module
from trtnet.random_init import init_random
from trtnet.weights import load_weights
from trtnet.zoo.overrides import checked_setting
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
        checked = {key: checked_setting(key, value, config, name) for key, value in overrides.items()}
        return with_weights(build(dataclasses.replace(config, **checked)), weights)

    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = build.__module__
    entry.__doc__ = (
        f"{name} with the state_dict keys of {source}. `weights`: a safetensors path, a dict, or None; "
        f"`overrides`: fields of {type(config).__name__} ({', '.join(allowed)})."
    )
    return register(name, source, torch_model, benchmark, config=config, centered=centered)(entry)


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
