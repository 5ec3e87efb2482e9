"""A model's own code run while it is emitted (`inputs`, `forward`, `output_names`). What a model of the user's
raises (a typo, an op given the wrong thing, even `SystemExit`) is bad input: a `NetworkError` naming the model,
the method and the line of the user's file it came from, or the trtnet error with that line added. A model of
trtnet's zoo raises as it is: there it is a bug in trtnet."""

from __future__ import annotations

import inspect
import os
import sysconfig
import traceback
from collections.abc import Callable
from typing import Any

from trtnet.errors import NetworkError, TrtnetError

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(model: Any, method: str, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)`, `model`'s `method` (for the messages), with what it raises said as above. An error counts as
    the user's where a line of the user's code is on its way (a zoo model may hold a submodule of theirs)."""
    try:
        return fn(*args)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001  the user's code: whatever it raises is said by name
        where = _their_line(model, e)
        if not where and type(model).__module__.partition(".")[0] == "trtnet":
            raise  # trtnet's own model and code alone: a bug
        if isinstance(e, TrtnetError):  # a trtnet op misused: its message, and where the model called it
            if where:
                e.args = (f"{e}{where}",)
            raise
        raise NetworkError(f"{type(model).__name__}.{method} raised {type(e).__name__}: {_said(e)}{where}") from e


def listed(model: Any, method: str, values: list, kind: type) -> list:
    """`values`, what `method` returned, checked to be a list of `kind` (`str`: non-empty), else a `NetworkError`."""
    for v in values:
        if not isinstance(v, kind) or (kind is str and not v):
            want = "a non-empty string" if kind is str else f"a trtnet.nn.{kind.__name__}"
            raise NetworkError(f"{type(model).__name__}.{method}() gives {_said(v, repr)}: each must be {want}")
    return values


def _said(value: Any, how: Callable[[Any], str] = str) -> str:
    """`how(value)`, or its type where that raises (a user's exception may fail to print itself)."""
    try:
        return how(value)
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__} that cannot be printed>"


def _their_line(model: Any, error: BaseException) -> str:
    """` (at FILE:LINE)`: the innermost frame of the user's code, which is the file that defines the model's class
    (even installed among the libraries) or any file outside trtnet and the installed libraries (a submodule of
    another file of theirs; numpy's own lines say nothing of the model); '' if none."""
    frames = traceback.extract_tb(error.__traceback__)
    try:
        own = os.path.abspath(inspect.getsourcefile(type(model)) or "")
    except TypeError:  # a class defined where no file is
        own = ""
    if own.startswith(_PACKAGE + os.sep):  # a zoo model: the user's line is elsewhere, if anywhere
        own = ""
    libraries = {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")}
    skip = tuple(os.path.abspath(p) + os.sep for p in (_PACKAGE, *libraries))
    mine = [f for f in frames if os.path.abspath(f.filename) == own or not os.path.abspath(f.filename).startswith(skip)]
    return f" (at {mine[-1].filename}:{mine[-1].lineno})" if mine else ""
