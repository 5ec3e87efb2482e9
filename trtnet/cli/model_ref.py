"""What a MODEL argument of the command line names: a zoo entry, or a model of your own.

    resnet50                      a zoo name (`trtnet list`)
    path/to/file.py:NAME          the function NAME of a Python file
    package.module:NAME           the function NAME of an importable module

NAME follows the zoo entries' contract: `NAME(weights=None, **config) -> trtnet.nn.Module` (the command line calls
it with `weights=None` and loads `--weights` into the result strictly). Commands that compare with PyTorch
(`verify`, `export-weights`) need the PyTorch source, which a model declares by registering NAME with
`trtnet.zoo.register(name, source=..., torch_model=...)`, as the zoo's own entries do.

Naming a file runs it, as `python file.py` would: it is your model's code. Its folder is put on `sys.path`
first (so that it can import its neighbours). A file that this process has imported or run already is not run
again (as with `import`): its module is used. Whatever goes wrong
in it (no such file, a syntax error, an exception, no NAME, a NAME that is not a function returning a Module)
is a `TrtnetError` naming the file and NAME.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trtnet.cli.onnx_route import is_onnx
from trtnet.errors import TrtnetError
from trtnet.nn.module import Module
from trtnet.zoo.registry import ZooEntry, entry_of, forget_module, get_entry


@dataclass(frozen=True)
class ModelRef:
    """A resolved MODEL argument: the entry point, a name to show, and the registered entry if there is one."""

    spec: str  # as given
    name: str  # the zoo name, or the registered name, or NAME
    fn: Callable[..., Module]
    entry: ZooEntry | None  # where the PyTorch source is declared

    @property
    def source(self) -> str:
        return self.entry.source if self.entry else "no registered PyTorch source"

    def make(self, **config) -> Module:
        """`fn(weights=None, **config)`, checked to be a trtnet Module."""
        try:
            model = self.fn(weights=None, **config)
        except TrtnetError:
            raise
        except Exception as e:  # noqa: BLE001  the user's code: whatever it raises is bad input, said by name
            raise TrtnetError(f"{self.spec}: {self.name}(weights=None) raised {type(e).__name__}: {e}") from e
        if not isinstance(model, Module):
            raise TrtnetError(
                f"{self.spec}: {self.name}(weights=None) returned {type(model).__name__}, not a trtnet.nn.Module"
            )
        return model

    def require_entry(self, command: str) -> ZooEntry:
        """The registered entry, or an error saying how to declare the PyTorch source `command` needs."""
        if self.entry is None:
            raise TrtnetError(
                f"{self.spec}: `trtnet {command}` needs the model's PyTorch source; declare it by "
                f"registering {self.name}: @trtnet.zoo.register({self.name!r}, source='...', "
                "torch_model=BUILD_THE_TORCH_MODULE)"
            )
        return self.entry


def resolve(spec: str) -> ModelRef:
    """The model that a MODEL argument names (see the module's docstring)."""
    where, colon, attr = spec.rpartition(":")
    if is_onnx(spec):  # the commands that take ONNX files route them before they get here
        raise TrtnetError(
            f"{spec}: this command takes trtnet's models, not ONNX files; `trtnet check {spec}` runs an ONNX file "
            "against onnxruntime (build, summary, calibrate and export-triton take one too)"
        )
    if not colon and (spec.endswith(".py") or "/" in spec or "\\" in spec):
        raise TrtnetError(f"{spec}: name the function that builds the model after a colon: {spec}:NAME")
    if not colon:
        entry = get_entry(spec)
        return ModelRef(spec, entry.name, entry.fn, entry)
    if not where:
        raise TrtnetError(f"{spec}: name the file or module before the ':' (FILE.py:{attr} or package.module:{attr})")
    if not attr.isidentifier():
        raise TrtnetError(
            f"{spec}: {attr!r} after the ':' is not a Python name (expected FILE.py:NAME or package.module:NAME)"
        )
    if where.endswith(".py") or "/" in where or "\\" in where:
        namespace, what = _run_file(Path(where), spec), f"file {where}"
    else:
        namespace, what = _import_module(where, spec), f"module {where}"
    if attr not in namespace:
        names = sorted(
            n
            for n, v in namespace.items()
            if inspect.isfunction(v) and not n.startswith("_") and v.__module__ == namespace.get("__name__")
        )
        raise TrtnetError(f"{spec}: {what} has no {attr!r}" + (f"; it defines {', '.join(names)}" if names else ""))
    fn = namespace[attr]
    if not callable(fn) or inspect.isclass(fn) and issubclass(fn, Module):
        kind = "a Module class" if inspect.isclass(fn) else type(fn).__name__
        raise TrtnetError(f"{spec}: {attr} is {kind}, not a function NAME(weights=None, **config) -> Module")
    entry = entry_of(fn)
    return ModelRef(spec, entry.name if entry else attr, fn, entry)


def _module_name(path: Path) -> str:
    """A module name of its own for each file (two `model.py` in two folders do not meet)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"trtnet_user_{stem}_{digest}"


def _run_file(path: Path, spec: str) -> dict:
    if not path.is_file():
        raise TrtnetError(f"{spec}: {path}: no such file" if not path.exists() else f"{spec}: {path} is not a file")
    path = path.resolve()
    loaded = _loaded(path)
    if loaded is not None:  # imported already in this process (by a script, or an earlier command): as Python would
        return vars(loaded)
    name = _module_name(path)
    forget_module(name)  # a run that failed half-way may have registered some entries
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise TrtnetError(f"{spec}: {path} cannot be loaded as Python source")
    module = importlib.util.module_from_spec(module_spec)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[name] = module  # dataclasses and pickling look their module up while it runs
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        del sys.modules[name]
        raise TrtnetError(f"{spec}: syntax error in {path}, line {e.lineno}: {e.msg}") from e
    except Exception as e:  # noqa: BLE001  the user's code: whatever it raises is bad input, said by name
        del sys.modules[name]
        raise TrtnetError(f"{spec}: running {path} raised {type(e).__name__}: {e}") from e
    return vars(module)


def _loaded(path: Path):
    """The module of this process that was loaded from the file `path`, if any."""
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and file.endswith(path.name):
            try:
                if Path(file).resolve() == path:
                    return module
            except OSError:
                continue
    return None


def _import_module(module: str, spec: str) -> dict:
    try:
        return vars(importlib.import_module(module))
    except ModuleNotFoundError as e:
        raise TrtnetError(f"{spec}: no module named {e.name!r} (is it installed, or on PYTHONPATH?)") from e
    except SyntaxError as e:
        raise TrtnetError(f"{spec}: syntax error in {e.filename}, line {e.lineno}: {e.msg}") from e
    except Exception as e:  # noqa: BLE001  the user's code: whatever it raises is bad input, said by name
        raise TrtnetError(f"{spec}: importing {module} raised {type(e).__name__}: {e}") from e
