"""Model settings on the command line: `--config`, `--seq-len`, `--image-size`, `--num-classes`,
`--transform-input` and `--set key=value`, turned into the keyword arguments of the model's entry point.

Each setting is checked against what the entry point takes before the model is built: a zoo variant takes the
fields of its config dataclass (`ResNetConfig.num_classes`), BERT and GPT-2 take `config` (a Hugging Face
config.json) and `seq_len`, a user's `NAME(weights=None, **config)` takes whatever it declares. A setting the
model does not take, or a value of another type than the field's default, is a `ConfigError` naming the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
from typing import Any

from trtnet.errors import ConfigError

__all__ = ["add_model_settings", "apply_image_size", "model_options"]

_MAX_DIM = 2**31 - 1


def seq_len(text: str) -> int | tuple[int, int, int]:
    """`128`, or `min:opt:max` for an engine that takes every length in the range."""
    try:
        values = [int(p) for p in text.split(":")]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or not all(1 <= v <= _MAX_DIM for v in values) or values != sorted(values):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a sequence length >= 1 (128) or min:opt:max with 1 <= min <= opt <= max (16:128:512)"
        )
    return values[0] if len(values) == 1 else (values[0], values[1], values[2])


def _key_value(text: str) -> tuple[str, Any]:
    """`key=value`; the value read as JSON where it is JSON (`10`, `true`, `[2, 2]`), else as the string."""
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: expected key=value with a Python name as key (num_classes=10)")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= _MAX_DIM:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1 (at most 2**31 - 1)")
    return value


def add_model_settings(sub: argparse.ArgumentParser, only_seq_len: bool = False) -> None:
    """The model settings options on the subcommand `sub` (`only_seq_len`: the one that leaves weights alone)."""
    group = sub.add_argument_group("model settings (the entry point's keyword arguments)")
    group.add_argument(
        "--seq-len",
        type=seq_len,
        metavar="N|MIN:OPT:MAX",
        help="sequence length of a text model (BERT, GPT-2), or a range one engine takes",
    )
    if only_seq_len:
        return
    group.add_argument("--config", metavar="FILE", help="a Hugging Face config.json (BERT, GPT-2)")
    group.add_argument("--image-size", type=_size, metavar="N", help="the input image's height and width")
    group.add_argument("--num-classes", type=_size, metavar="N", help="classes of the classifier head")
    group.add_argument(
        "--transform-input",
        action="store_true",
        default=None,
        help="InceptionV3: re-normalise the input as torchvision's published weights expect",
    )
    group.add_argument(
        "--set",
        dest="settings",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any keyword argument of the entry point (repeatable); VALUE is read as JSON where it is JSON",
    )


# (option, the entry point's keyword) of the named options; --image-size is `img_size` where the config has it
_NAMED = (("config", "config"), ("seq_len", "seq_len"), ("num_classes", "num_classes"))


def model_options(ref, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments the settings in `args` give the entry point of `ref` (a `ModelRef`), each checked
    against what it takes. `--image-size` of a model whose config has no `img_size` is left to
    `apply_image_size` (a CNN takes any size: its input is an attribute, not a config field)."""
    takes, open_ended = _accepted(ref)
    given: list[tuple[str, str, Any]] = []  # (option as typed, keyword, value)
    for option, key in _NAMED:
        value = getattr(args, option, None)
        if value is not None:
            given.append((f"--{option.replace('_', '-')}", key, value))
    if getattr(args, "transform_input", None):
        given.append(("--transform-input", "transform_input", True))
    size = getattr(args, "image_size", None)
    for key in _IMAGE_SIZE_FIELDS:
        if size is not None and key in takes:
            given.append(("--image-size", key, size))
            break
    for key, value in getattr(args, "settings", None) or []:
        given.append((f"--set {key}", key, value))
    options: dict[str, Any] = {}
    said_by: dict[str, str] = {}  # keyword -> the option that set it
    for option, key, value in given:
        if key not in takes and not open_ended:
            what = ", ".join(sorted(takes)) or "no settings"
            raise ConfigError(f"{ref.spec}: {option}: {ref.name} has no setting {key!r}; it takes {what}")
        value = _checked(ref, key, value, takes.get(key, inspect.Parameter.empty), option)
        if key in options and _plain(options[key]) != _plain(value):  # the later one silently won before
            raise ConfigError(
                f"{ref.spec}: {said_by[key]} and {option} both set {key!r}, to {options[key]!r} and {value!r}: give one"
            )
        options[key], said_by[key] = value, option
    if "img_size" in options:
        _check_image_size(ref, options)
    return options


# The config fields --image-size sets, where a model's config has one: ViT/Swin/ConvNeXt's, YOLOv8/11's.
_IMAGE_SIZE_FIELDS = ("img_size", "image_size")


def _plain(value: Any) -> Any:
    """A setting as compared with another: a list as a tuple (`--seq-len 16:32:64` and `--set seq_len=[16,32,64]`
    say the same)."""
    return tuple(map(_plain, value)) if isinstance(value, (list, tuple)) else value


def apply_image_size(ref, model, args: argparse.Namespace, options: dict[str, Any]) -> None:
    """`--image-size` for a model whose input size is its `image_size` attribute (the zoo's CNNs)."""
    size = getattr(args, "image_size", None)
    if size is None or any(key in options for key in _IMAGE_SIZE_FIELDS):
        return
    if not isinstance(getattr(model, "image_size", None), int):
        raise ConfigError(
            f"{ref.spec}: --image-size: {ref.name} has no image_size to set (its inputs are "
            f"{', '.join(i.name for i in model.inputs())})"
        )
    model.image_size = size  # read by `inputs()` when the network is emitted


def _accepted(ref) -> tuple[dict[str, Any], bool]:
    """The keywords the entry point takes, with their defaults, and whether it takes any keyword (**config)."""
    params = inspect.signature(ref.fn).parameters
    takes = {
        n: p.default
        for n, p in params.items()
        if n != "weights" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in params.values())
    config = ref.entry.config if ref.entry is not None else None
    if var_keyword and dataclasses.is_dataclass(config) and "config" not in takes:
        # a zoo variant: `**overrides` are the fields of its config dataclass
        takes.update({f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
        return takes, False
    return takes, var_keyword


def _checked(ref, key: str, value: Any, default: Any, option: str) -> Any:
    """`value`, of the kind of `default` where there is one (a list for a tuple field becomes a tuple)."""
    if default is inspect.Parameter.empty or default is None or key in ("config", "seq_len"):  # the model checks these
        return value
    return ConfigError.like(key, value, default, source=f"{ref.spec} ({option})")


def _check_image_size(ref, options: dict[str, Any]) -> None:
    """An image size the patch embedding and the stages divide evenly: ViT truncates `img_size // patch_size`
    silently, Swin's windows and ConvNeXt's downsampling need every stage's size whole."""
    config = ref.entry.config
    stages = len(options.get("depths", getattr(config, "depths", ()))) or 1  # --set depths=[2, 2]: two stages
    multiple = options.get("patch_size", getattr(config, "patch_size", 1)) * 2 ** (stages - 1)
    multiple *= options.get("window_size", getattr(config, "window_size", 1))
    size = options["img_size"]
    ConfigError.check(
        "img_size",
        size,
        f"a multiple of {multiple} for {ref.name} (the patch size and the stages must divide it)",
        lambda v: v % multiple == 0,
        source=ref.spec,
    )
