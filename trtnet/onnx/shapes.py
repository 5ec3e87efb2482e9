"""Input shapes for an ONNX network, in trtexec's spellings: which size each dynamic dim of each input takes.

On the command line, `--shapes x:1x3x640x640,mask:1x77` fixes shapes, and `--min-shapes/--opt-shapes/--max-shapes`
(all three, for the same inputs) give a profile; a name holding ',' goes in single quotes (`'a,b':2x3`). In Python,
`shapes={"x": (1, 3, 640, 640)}` fixes a shape and `shapes={"x": ((1, 3, 320, 320), (4, 3, 640, 640), (8, 3, 1280,
1280))}` gives (min, opt, max). Any dim of any input may be dynamic; a dynamic dim that no shape sizes is an error
naming the input, its dims as the file names them (its `dim_param`s), and the flag to add.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from trtnet.errors import NetworkError

Shape = tuple[int, ...]
Profile = tuple[Shape, Shape, Shape]  # (min, opt, max)
ShapesArg = Mapping[str, Sequence[int] | Sequence[Sequence[int]]]

MAX_DIM = 2**31 - 1  # TensorRT's dims are int32 in its profiles


def _quoted(text: str, i: int, flag: str) -> tuple[str, int]:
    """The name in single quotes that opens at `text[i]`, `''` in it one quote, and the index after its close."""
    name, start = "", i
    while True:
        end = text.find("'", i + 1)
        if end < 0:
            raise NetworkError(f"{flag} {text[start:]!r}: the quoted name has no closing quote")
        name, i = name + text[i + 1 : end], end + 1
        if not text.startswith("'", i):
            return name, i
        name += "'"


def _pieces(text: str, flag: str) -> list[tuple[str, str, str, str]]:
    """`text` cut at its top-level commas into (piece as written, name, ':' or '', dims), a name in single quotes
    (as trtexec takes one) holding any character, ',' and ':' too."""
    out, i = [], 0
    while i <= len(text):
        start = i + len(text[i:]) - len(text[i:].lstrip())
        if text.startswith("'", start):
            name, i = _quoted(text, start, flag)
            end = len(text) if (comma := text.find(",", i)) < 0 else comma
            rest = text[i:end].strip()
            colon, dims = (":", rest[1:].strip()) if rest.startswith(":") else ("", rest)
        else:  # an unquoted name may itself hold ':': the last one separates
            end = len(text) if (comma := text.find(",", start)) < 0 else comma
            name, colon, dims = text[start:end].strip().rpartition(":")
        if text[start:end].strip():
            out.append((text[start:end].strip(), name, colon, dims))
        i = end + 1
    return out


def quote_name(name: str) -> str:
    """An input's name as `--shapes` reads it back: in single quotes (a quote in it doubled) where it holds ','
    or begins with a quote or a space, else as it is.

    >>> quote_name("a,b"), quote_name("x:0")
    ("'a,b'", 'x:0')
    """
    if "," in name or name.startswith("'") or name != name.strip() or not name:
        return "'" + name.replace("'", "''") + "'"
    return name


def parse_shapes_text(text: str, flag: str = "--shapes") -> dict[str, Shape]:
    """`name:1x3x640x640,name2:1x77` -> {"name": (1, 3, 640, 640), "name2": (1, 77)}; a `NetworkError` naming
    `flag` and the piece it cannot read. An input name may itself hold ':' (the last one separates), and any
    character, ',' too, in single quotes: `'a,b':2x3` (trtexec's spelling; `''` in the quotes is one quote)."""
    out: dict[str, Shape] = {}
    for piece, name, colon, dims in _pieces(text, flag):
        # ASCII digits only: int() also reads '1_0', '+1', ' 1' and other scripts' digits.
        parts = [d.strip() for d in dims.split("x")] if dims else []  # "2 x 4" as before
        shape = tuple(int(d) for d in parts) if all(d.isascii() and d.isdigit() for d in parts) else ()
        if not colon or not name or not shape or not all(1 <= d <= MAX_DIM for d in shape):
            raise NetworkError(
                f"{flag} {piece!r}: expected NAME:DIMS with DIMS whole numbers from 1 to {MAX_DIM} joined "
                "by 'x' (x:1x3x640x640), several joined by ',' ('NAME':DIMS for a name holding ',')"
            )
        if name in out:
            raise NetworkError(f"{flag} names input {name!r} twice")
        out[name] = shape
    if not out:
        raise NetworkError(f"{flag} {text!r}: expected NAME:DIMS (x:1x3x640x640), several joined by ','")
    return out


def shapes_from_flags(
    shapes: str | None, min_shapes: str | None, opt_shapes: str | None, max_shapes: str | None
) -> dict[str, Shape | Profile] | None:
    """The command line's four flags as one `shapes` mapping (None when none is given)."""
    fixed = parse_shapes_text(shapes, "--shapes") if shapes else {}
    ranged = [
        parse_shapes_text(t, f) if t else None
        for t, f in ((min_shapes, "--min-shapes"), (opt_shapes, "--opt-shapes"), (max_shapes, "--max-shapes"))
    ]
    given = [r for r in ranged if r is not None]
    if given and len(given) != 3:
        raise NetworkError("--min-shapes, --opt-shapes and --max-shapes go together: give all three")
    out: dict[str, Shape | Profile] = dict(fixed)
    if given:
        lo, opt, hi = given
        if not set(lo) == set(opt) == set(hi):
            raise NetworkError(
                f"--min-shapes, --opt-shapes and --max-shapes must name the same inputs: {sorted(lo)}, "
                f"{sorted(opt)}, {sorted(hi)}"
            )
        for name in lo:
            if name in fixed:
                raise NetworkError(f"input {name!r} is given both by --shapes and by --min/--opt/--max-shapes")
            out[name] = (lo[name], opt[name], hi[name])
    return out or None


def _dims(value: Any) -> Shape | None:
    if not isinstance(value, (tuple, list)):
        return None
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and 1 <= d <= MAX_DIM for d in value):
        return None
    return tuple(int(d) for d in value)


def as_profile(name: str, value: Any) -> Profile:
    """One `shapes` entry (a shape, or (min, opt, max) shapes) as (min, opt, max)."""
    fixed = _dims(value)
    if fixed is not None:
        return fixed, fixed, fixed
    if isinstance(value, (tuple, list)) and len(value) == 3:
        three = [_dims(v) for v in value]
        if all(s is not None for s in three):
            return three[0], three[1], three[2]  # type: ignore[return-value]
    raise NetworkError(
        f"shapes[{name!r}] {value!r}: expected a shape of whole numbers >= 1 ((1, 3, 640, 640)) or three of them, "
        "(min, opt, max)"
    )


def describe_dims(tensor: Any) -> str:
    """`[batch, 3, height, width]`: the input's dims, a dynamic one by the name the file gives it (or `?`)."""
    dims = []
    for i, d in enumerate(tuple(tensor.shape)):
        if d >= 0:
            dims.append(str(d))
        else:
            dims.append(tensor.get_dimension_name(i) or "?")
    return "[" + ", ".join(dims) + "]"


def _example(tensor: Any) -> str:
    """`--shapes NAME:Nx3` as a shell takes it: in double quotes where the name is quoted for `--shapes`."""
    arg = f"{quote_name(tensor.name)}:" + "x".join(str(d) if d >= 0 else "N" for d in tuple(tensor.shape))
    if "'" not in arg and not any(c in arg for c in ' \t"\\$`;&|<>()*?![]{}#~'):
        return arg
    return '"' + "".join("\\" + c if c in '"\\$`' else c for c in arg) + '"'


def resolve_profile(where: str, tensor: Any, value: Any | None) -> Profile:
    """The (min, opt, max) shapes of network input `tensor` from its `shapes` entry (None if not given),
    checked against the dims the file declares; a `NetworkError` beginning with `where` (the file)."""
    declared = tuple(int(d) for d in tensor.shape)
    if value is None:
        if all(d >= 0 for d in declared):
            return declared, declared, declared
        raise NetworkError(
            f"{where}: input {tensor.name!r} has dynamic dims {describe_dims(tensor)}: give its shape with "
            f"--shapes {_example(tensor)} (build, summary and export-triton take --min-shapes/--opt-shapes/--max-shapes "
            f"for a range; in Python "
            f"shapes={{{tensor.name!r}: (...)}})"
        )
    profile = as_profile(tensor.name, value)
    for which, shape in zip(("min", "opt", "max"), profile):
        if len(shape) != len(declared) or any(d >= 0 and d != s for d, s in zip(declared, shape)):
            what = "" if profile[0] == profile[2] else f"the {which} shape "
            raise NetworkError(
                f"{where}: input {tensor.name!r} is declared {describe_dims(tensor)}; {what}"
                f"{'x'.join(map(str, shape))} does not fit it (only its dynamic dims can be chosen)"
            )
    lo, opt, hi = profile
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise NetworkError(
            f"{where}: input {tensor.name!r}: the shapes must grow dim by dim, min <= opt <= max; got "
            f"{'x'.join(map(str, lo))}, {'x'.join(map(str, opt))}, {'x'.join(map(str, hi))}"
        )
    return profile


def check_names(where: str, shapes: Mapping[str, Any] | None, names: Sequence[str]) -> None:
    """Every name in `shapes` is an input of the network."""
    if shapes is not None and not isinstance(shapes, Mapping):
        raise NetworkError(f"shapes must be a mapping of input name to shape, not {type(shapes).__name__}")
    unknown = sorted(set(shapes or {}) - set(names))
    if unknown:
        raise NetworkError(
            f"{where}: shapes name {unknown}, which are not inputs; the network's inputs are {list(names)}"
        )
