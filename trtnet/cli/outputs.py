"""A command's outputs never land on a file the same command reads: `build net.py:net -o net.py`, `-o` naming the
weights, the calibration, the data or an ONNX model's external data replaced the user's file with a plan (the ONNX
route refused only the model)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trtnet.fileio import refuse_clobbering

# Each option naming a file a command reads, and what to call it.
_READ_OPTIONS = {
    "weights": "the weights",
    "calibration": "the calibration",
    "data": "the data",
    "plan": "the plan",
    "inputs": "the inputs file",
    "config": "the model config",
}


def refuse_overwriting_inputs(args: argparse.Namespace, writes: dict[str, str | os.PathLike | None]) -> None:
    """A `TrtnetError` before any work where an output (`writes`: what it is -> path) is the model's file (an
    .onnx, or the .py of `FILE.py:NAME`), a file an option names, or another output."""
    reads = {what: getattr(args, option, None) for option, what in _READ_OPTIONS.items()}
    model = reads["the model"] = model_file(getattr(args, "model", None) or "")
    if model is not None and model.lower().endswith(".onnx"):  # and the weights it stores outside itself
        from trtnet.onnx.feeds import external_data_files

        reads.update(external_data_files(Path(model), writes))
    refuse_clobbering(writes, reads)


def model_file(spec: str) -> str | None:
    """The file a MODEL argument names: an .onnx, the Python file of `path/to/file.py:NAME`, or that of a
    `package.module:NAME` the command has imported (None: a zoo name, or a module not imported).

    >>> model_file("nets/mine.py:tiny"), model_file("model.onnx"), model_file("resnet50")
    ('nets/mine.py', 'model.onnx', None)
    """
    if spec.lower().endswith(".onnx"):
        return spec
    path, _, name = spec.rpartition(":")
    if name and path.endswith(".py"):
        return path
    module = sys.modules.get(path) if name else None
    return getattr(module, "__file__", None)
