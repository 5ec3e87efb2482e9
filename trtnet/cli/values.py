"""The command line's value types for argparse: each turns one argument's text into a value or says, in one
line, what it expected (argparse prints it as the usage error)."""

from __future__ import annotations

import argparse
from pathlib import Path


def batch(text: str) -> int | tuple[int, int, int]:
    """`8`, or `min:opt:max` for a dynamic batch."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a batch size (8) or min:opt:max (1:8:32)") from None
    if len(values) not in (1, 3) or not all(1 <= v < 2**31 for v in values) or values != sorted(values):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a batch size >= 1, or min:opt:max with 1 <= min <= opt <= max (at most 2**31 - 1)"
        )
    return values[0] if len(values) == 1 else (values[0], values[1], values[2])


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1 (at most 2**31 - 1)")
    return value


def whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 0")
    return value


def seed(text: str) -> int:
    """A seed torch and numpy both take: 0 <= seed < 2**63 (torch refuses more, numpy refuses negatives)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 0 to 2**63 - 1")
    return value


def nonempty(text: str) -> str:
    """A name that is given is not empty (`--name ""` fell back to the default as if it were not given)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a name, not an empty string")
    return text


def output_file(text: str) -> str:
    """-o FILE: an empty one was taken as no -o at all, and the default written."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; leave -o out for the default")
    return text


def path_text(text: str) -> str:
    """A file or folder option's value: an empty one was read as the current folder (`--weights ''`: ". cannot
    read"; `cache --dir ''` listed the current folder) or as no option at all (`--calibration ''`)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return text


class Repeated(argparse.Action):
    """A list option given again adds to what it gave before (`--keep a --keep b` keeps both: argparse's own
    nargs replaced the first list with the last, and `extend` would add to the default instead of replacing it)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        before = getattr(namespace, self.dest, None)
        before = [] if before is None or before is self.default else list(before)
        setattr(namespace, self.dest, before + list(values))


PATH_METAVARS = ("FILE", "DIR", "NPZ", "FILE.npz")


def refuse_empty_paths(parser: argparse.ArgumentParser) -> None:
    """Give every FILE/DIR/NPZ option of `parser` and of its commands `path_text`, one rule for all of them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                refuse_empty_paths(sub)
        elif action.type is None and action.metavar in PATH_METAVARS:
            action.type = path_text


def path_given(text: str) -> Path:
    """`path_text` as a Path (bench.py's options: `--plot ''` was said as `--plot .`)."""
    return Path(path_text(text))


def add_output(sub: argparse.ArgumentParser, help_text: str) -> None:
    """-o/--output FILE, read by `output_file`."""
    sub.add_argument("-o", "--output", type=output_file, metavar="FILE", help=help_text)
