"""`trtnet convert`: a PyTorch checkpoint as users hold it -> a safetensors file a zoo entry loads strictly.

This is the one place in trtnet that calls `torch.load`. It reads with `weights_only=True` (tensors and plain
containers only); a file that pickles objects (YOLOv5's `.pt` holds the model object itself) is refused unless
the user passes `trust_pickle=True` for that file, because unpickling runs whatever code the file names.
Torch is imported lazily: the rest of trtnet never needs it.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.errors import ConfigError, WeightsError
from trtnet.fileio import refuse_special
from trtnet.fileread import NotRegularFile, open_regular
from trtnet.layouts import adapt_checkpoint, declared
from trtnet.weights import load_weights
from trtnet.words import counted
from trtnet.zoo.registry import get_entry, mismatch_hint

SUFFIXES = (".pt", ".pth", ".pth.tar", ".ckpt", ".bin")
# Where training scripts put the weights, in the order taken: EMA weights first (what YOLOv5 and timm evaluate),
# then the plain ones. A None value (YOLOv5's stripped checkpoints have `ema: None`) is passed over.
CONTAINER_KEYS = ("model_ema", "ema", "state_dict_ema", "model", "state_dict")
MAX_NESTING = 8  # containers inside containers: real checkpoints use two or three; a pickle can hold a cycle


@dataclass
class Conversion:
    """What `convert` did, for the user: where the tensors came from and what was written."""

    output: Path
    container: str  # "the file itself", "'model'", "'model' (a pickled DetectionModel's state_dict())"
    layouts: list[str]
    tensors: int
    dtypes: dict[str, int]
    dropped: list[str] = field(default_factory=list)  # keys the entry declares unused (AuxLogits.*)
    unpickled: bool = False

    def summary(self, model: str, checkpoint: Path) -> str:
        layouts = ", ".join(self.layouts) if self.layouts else f"{model}'s own keys, no conversion"
        dtypes = ", ".join(f"{n} {d}" for d, n in sorted(self.dtypes.items()))
        lines = [
            f"read {checkpoint}" + (" (unpickled in full: --trust-pickle)" if self.unpickled else ""),
            f"  container: {self.container}",
            f"  layout: {layouts}",
        ]
        if self.dropped:
            lines.append(f"  dropped {counted(len(self.dropped), 'key')} {model} does not use (e.g. {self.dropped[0]})")
        lines.append(
            f"wrote {self.output}: {counted(self.tensors, 'tensor')} ({dtypes}); loads strictly into trtnet's {model}"
        )
        return "\n".join(lines)


def default_output(checkpoint: str | os.PathLike) -> Path:
    """`swin_tiny.pth` -> `swin_tiny.safetensors`, beside it (`x.pth.tar` -> `x.safetensors`)."""
    path = Path(checkpoint)
    name = path.name
    if not name or name == "..":  # "", ".", "/", "..": no file name to put the output beside
        raise WeightsError(f"{str(checkpoint) or repr('')}: not a checkpoint file (a folder or no path at all)")
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):  # MODEL.PTH from a case-insensitive file system too
            return path.with_name(name[: -len(suffix)] + ".safetensors")
    return path.with_name(name + ".safetensors")


def convert(
    model: str,
    checkpoint: str | os.PathLike,
    output: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    options: Mapping[str, Any] | None = None,
) -> Conversion:
    """Convert `checkpoint` for the zoo entry `model` (built with `options`, its keyword arguments: a decoder's
    `config`); write `output` (default: beside it, .safetensors).

    >>> convert("swin_t", "swin_tiny_patch4_window7_224.pth").output   # doctest: +SKIP
    PosixPath('swin_tiny_patch4_window7_224.safetensors')
    """
    # trust_pickle must be said, not implied: "no" or 1 is not consent to run the file's code.
    ConfigError.check("trust_pickle", trust_pickle, "True or False", lambda v: isinstance(v, bool), source="convert")
    is_path = lambda v: isinstance(v, (str, os.PathLike))  # noqa: E731
    ConfigError.check("checkpoint", checkpoint, "a path (str or os.PathLike)", is_path, source="convert")
    ConfigError.check(
        "output", output, "a path (str or os.PathLike) or None", lambda v: v is None or is_path(v), source="convert"
    )
    entry = get_entry(model)
    checkpoint = Path(checkpoint)
    out = Path(output) if output is not None else default_output(checkpoint)
    if out.suffix != ".safetensors":
        raise WeightsError(f"{out}: the output must be a .safetensors file")
    refuse_special(out, "the weights", WeightsError)  # said now, not after reading and converting a checkpoint
    obj, unpickled = read_checkpoint(checkpoint, trust_pickle)
    state, container = unwrap(obj, checkpoint)
    skeleton = entry.skeleton(**dict(options or {}))
    state, wrapper = _strip_wrapper_prefix(skeleton, state)
    adapted, layouts = adapt_checkpoint(skeleton, state)
    layouts = [wrapper, *layouts] if wrapper else layouts
    unused = declared(skeleton, adapted, "unused_keys")
    kept = {k: v for k, v in adapted.items() if k not in unused}
    for key, value in kept.items():
        _check_tensor(checkpoint, key, value)
    # The strict check: the same loading `build`/`verify` do, on the converted tensors (widened to float32
    # where numpy has no such dtype), before anything is written.
    try:
        load_weights(
            entry.skeleton(**dict(options or {})),
            {k: _numpy(v) for k, v in kept.items()},
            check_finite="warn",
            hint=mismatch_hint,
        )
    except WeightsError as e:  # name the user's file, not the dict it became
        raise WeightsError(f"{checkpoint}: {str(e).removeprefix('state dict: ')}") from None
    from trtnet.parity import save_state

    save_state(kept, out, metadata={"trtnet.converted_from": checkpoint.name, "trtnet.model": entry.name})
    dtypes: dict[str, int] = {}
    for value in kept.values():
        name = str(value.dtype).removeprefix("torch.")
        dtypes[name] = dtypes.get(name, 0) + 1
    return Conversion(out, container, layouts, len(kept), dtypes, sorted(unused), unpickled)


def _strip_wrapper_prefix(skeleton, state: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Keys all under one attribute of a wrapper module (PyTorch Lightning saves `model.conv1.weight` for a
    LightningModule holding the network as `self.model`): stripped, when only the stripped keys give the
    entry every parameter. A model whose own keys share a first name (YOLOv5's `model.N.*`) is left as it is."""
    heads = {k.partition(".")[0] for k in state}
    if len(heads) != 1 or not all("." in k for k in state):
        return state, None
    prefix = heads.pop() + "."
    stripped = {k[len(prefix) :]: v for k, v in state.items()}
    expected = {k for k, _ in skeleton.named_parameters()}
    fits = lambda keys: expected <= set(adapt_checkpoint(skeleton, keys)[0])  # noqa: E731
    if fits(state) or not fits(stripped):
        return state, None
    return stripped, f"a wrapper's `{prefix}` prefix on every key (as PyTorch Lightning saves it)"


def read_checkpoint(path: Path, trust_pickle: bool = False) -> tuple[Any, bool]:
    """`torch.load` of a file the user named: weights only, or in full when they trust it. (object, unpickled)"""
    if not any(path.name.lower().endswith(s) for s in SUFFIXES):
        hint = (
            " (a .safetensors file needs no conversion: pass it as --weights)" if path.suffix == ".safetensors" else ""
        )
        raise WeightsError(f"{path}: not a PyTorch checkpoint name: expected one of {', '.join(SUFFIXES)}{hint}")
    try:  # the first bytes say what the file is; a FIFO or a device is refused unread
        with open_regular(path) as (f, st):
            head = f.read(9)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except NotRegularFile:
        raise WeightsError(f"{path}: not a file") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read: {e.strerror or e}") from None
    if st.st_size == 0:
        raise WeightsError(f"{path}: the file is empty (0 bytes)")
    if _is_safetensors(head, st.st_size):
        raise WeightsError(
            f"{path}: a safetensors file, despite its name: it needs no conversion, pass it as "
            "--weights (renamed to .safetensors)"
        )
    if head[:4] == b"PK\x03\x04" and not zipfile.is_zipfile(path):  # the zip's directory is at its end
        raise WeightsError(
            f"{path}: truncated or damaged: it begins as torch.save's zip format, but the zip's directory at its end "
            "is missing or broken; copy or download it again"
        )
    try:
        import torch
    except ImportError as e:
        raise WeightsError(f"`trtnet convert` needs PyTorch to read {path} (pip install torch): {e}") from None
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols: its refusal below says enough
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True), False
    except pickle.UnpicklingError as e:
        refused, plain = _pickled_global(str(e)), _is_plain_pickle(head)
        # The weights-only unpickler's words for a pickle that builds objects or calls functions (garbage bytes
        # give "Unsupported operand" instead).
        objects = refused is not None or any(
            w in str(e) for w in ("Can only build", "Can only create new object", "Trying to call reduce")
        )
        if not objects and not plain:
            raise WeightsError(f"{path}: not a PyTorch checkpoint torch.load can read ({_first_line(e)})") from None
        if not trust_pickle:
            what = (
                f"objects ({refused})"
                if refused
                else "objects (a plain pickle, not torch.save's format)"
                if plain
                else "objects"
            )
            raise WeightsError(
                f"{path}: the file pickles {what}, not only tensors; loading it runs code the file names, which "
                "can do anything on this machine. If you trust where it came from, rerun with --trust-pickle "
                "(for this file only); else ask its authors for a state_dict or a safetensors file"
            ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, AttributeError) as e:
        raise WeightsError(
            f"{path}: not a PyTorch checkpoint torch.load can read ({type(e).__name__}: {_first_line(e)})"
        ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False), True
    except ModuleNotFoundError as e:
        raise WeightsError(
            f"{path}: the pickled objects need the module {e.name!r}, which is not installed "
            "(install the package that wrote the file)"
        ) from None
    # Unpickling runs the file's own code paths: whatever it raises means the same thing here.
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"{path}: unpickling failed ({type(e).__name__}: {_first_line(e)})") from None


def unwrap(obj: Any, path: Path) -> tuple[dict[str, Any], str]:
    """The state_dict inside a loaded checkpoint, and a description of where it was found. Of several containers
    at the top (`ema` and `model`), the first of CONTAINER_KEYS is the one converted; the others are named last,
    in the description and in an error, where they cannot read as the holders of what the message says."""
    present = [k for k in CONTAINER_KEYS if isinstance(obj, Mapping) and obj.get(k) is not None]
    try:
        state, where = _unwrap(obj, path, "", 0)
    except WeightsError as e:
        if len(present) < 2:
            raise
        others = ", ".join(map(repr, present[1:]))
        raise WeightsError(
            f"{e} (the file also has {others}, not tried: the first container is the one converted)"
        ) from None
    if len(present) > 1:  # "'ema'; also present: 'model' (a pickled ...)"
        head = repr(present[0])
        where = f"{head}; also present: {', '.join(map(repr, present[1:]))}{where[len(head) :]}"
    return state, where


def _unwrap(obj: Any, path: Path, where: str, depth: int) -> tuple[dict[str, Any], str]:
    import torch

    if depth > MAX_NESTING:
        raise WeightsError(
            f"{path}: containers nested more than {MAX_NESTING} deep ({where.split(' -> ')[0]} -> "
            "...), or a container that holds itself: no state_dict found"
        )

    if isinstance(obj, torch.nn.Module):
        desc = f"a pickled {type(obj).__name__}'s state_dict()"
        return _unwrap(obj.state_dict(), path, f"{where} ({desc})" if where else desc, depth + 1)
    what = where or "the file"
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: {what} holds a {type(obj).__name__}, not a state_dict or a dict of them")
    if not obj:
        raise WeightsError(f"{path}: {what} holds an empty dict: no weights")
    tensors = [k for k, v in obj.items() if isinstance(v, torch.Tensor)]
    if len(tensors) == len(obj):
        return {str(k): v for k, v in obj.items()}, where or "the file itself (a bare state_dict)"
    for key in CONTAINER_KEYS:
        if obj.get(key) is not None:
            return _unwrap(obj[key], path, f"{where} -> {key!r}" if where else repr(key), depth + 1)
    if len(tensors) > len(obj) // 2:  # a state_dict with a few other values: name them, not its tensors
        others = [k for k in obj if k not in set(tensors)]
        listed = ", ".join(f"{k!r} ({type(obj[k]).__name__})" for k in others[:5]) + (" ..." if len(others) > 5 else "")
        noun = "value" if len(others) == 1 else "values"
        raise WeightsError(
            f"{path}: {what} holds {len(tensors)} tensors and {len(others)} other {noun} ({listed}): "
            "a state_dict holds tensors only; save one without them"
        )
    nones = [repr(k) for k in CONTAINER_KEYS if k in obj]  # present, and all None (YOLOv5 strips `ema` so)
    if nones:
        raise WeightsError(f"{path}: {what} holds {', '.join(nones)} set to None: no weights in it")
    keys = ", ".join(map(repr, list(obj)[:8])) + (" ..." if len(obj) > 8 else "")
    raise WeightsError(
        f"{path}: unknown container: {what} holds keys {keys}, neither tensors nor one of {', '.join(CONTAINER_KEYS)}"
    )


# What safetensors and trtnet's reader both take (`trtnet.weights`); bfloat16 is widened on reading.
_DTYPES = {
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint64",
    "uint32",
    "uint16",
    "uint8",
    "bool",
}


def _check_tensor(path: Path, key: str, tensor) -> None:
    """A tensor a safetensors file can hold and trtnet can read: dense, with data, of a plain dtype."""
    import torch

    dtype = str(tensor.dtype).removeprefix("torch.")
    why = (
        "is a quantized tensor (dequantize it first)"
        if tensor.is_quantized
        else f"is a {tensor.layout} tensor, not a dense one (tensor.to_dense())"
        if tensor.layout != torch.strided
        else "is a meta tensor: it holds no values"
        if tensor.is_meta
        else f"has dtype {dtype}, which trtnet does not read (it reads {', '.join(sorted(_DTYPES))})"
        if dtype not in _DTYPES
        else None
    )
    if why:
        raise WeightsError(f"{path}: key {key!r} {why}")


def _numpy(tensor) -> np.ndarray:
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:  # numpy has none: float32 holds every bfloat16 exactly
        tensor = tensor.float()
    return tensor.numpy()


def _pickled_global(message: str) -> str | None:
    """The class a weights-only load refused (`Unsupported global: GLOBAL models.yolo.DetectionModel`, or
    `Trying to load unsupported GLOBAL posix.system whose module posix is blocked`)."""
    found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", message)
    return found[1] if found else None


def _is_safetensors(head: bytes, size: int) -> bool:
    """Whether a file of `size` bytes that starts with `head` is safetensors: an 8-byte little-endian header
    length that fits the file, then a JSON object (Hugging Face names some safetensors files .bin)."""
    return len(head) == 9 and head[8:] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size


def _is_plain_pickle(head: bytes) -> bool:
    """Whether a file that starts with `head` is a pickle written by `pickle.dump` rather than torch.save's
    zip: it starts with the PROTO opcode."""
    return head[:1] == b"\x80"


def _first_line(e: BaseException, limit: int = 160) -> str:
    text = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return text if len(text) <= limit else text[:limit] + "..."
