"""What both modes of the benchmark share: a zoo model's inputs and weights, its PyTorch source, and the ONNX route
(`torch.onnx.export` of that source, parsed by TensorRT's ONNX parser). torch is imported inside the functions
that need it only: building and timing trtnet's own engines never does."""

from __future__ import annotations

import functools
import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np

from trtnet.builder.build import build
from trtnet.builder.emit import BatchSize
from trtnet.onnx.parse import parse_onnx
from trtnet.runtime.engine import Engine
from trtnet.zoo import REGISTRY

# The PyTorch dtype each precision is compared against: a quantized engine's baseline is PyTorch in fp16.
TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}
TORCH_DTYPES |= {"int8": "float16", "fp8": "float16"}


def have(module: str) -> bool:
    """Whether `module` can be imported here (asked without importing it)."""
    return importlib.util.find_spec(module) is not None


@functools.cache
def declared_inputs(name: str) -> tuple:
    """The zoo model's `inputs()` (name, per-sample shape, dtype of each), read once per process."""
    return tuple(REGISTRY[name].fn(weights=None).inputs())


def make_inputs(name: str, batch: int, seed: int = 0) -> list[np.ndarray]:
    """Inputs for zoo model `name` at `batch`, from its declared `inputs()` and their hints (token ids below
    the vocabulary size, an attention mask with padding): the same inputs `trtnet verify` uses."""
    from trtnet.parity import sample_inputs  # torch-free: only the source-model helpers there import torch

    return sample_inputs(declared_inputs(name), batch, seed)


def weights_for(name: str, weights_dir: Path, scratch: Path) -> tuple[Path | None, str]:
    """The safetensors file both sides load, and how it was chosen (in words)."""
    path = weights_dir / f"{name}.safetensors"
    if path.exists():  # absolute: the builds run in child processes from the package's folder
        return path.resolve(), f"weights from {path}"
    if not have("torch"):
        return None, "seeded random weights (trtnet.init_random, seed 0; no torch to compare with)"
    from trtnet.parity import export_state, torch_model

    try:
        source = torch_model(name, seed=0)
    except ImportError as e:  # the source's own package (timm, transformers...) is missing
        return None, f"seeded random weights (trtnet.init_random, seed 0; PyTorch source unavailable: {e})"
    path = export_state(source, scratch / f"{name}.safetensors")
    return path, f"seeded random weights (the PyTorch source's, seed 0; no {weights_dir / (name + '.safetensors')})"


def load_torch(name: str, weights: Path | None) -> Any:
    """The PyTorch source of `name` in eval mode with the weights of `weights` (safetensors)."""
    from safetensors.torch import load_file

    from trtnet.parity import torch_model

    model = torch_model(name, seed=0)
    if weights is not None:
        model.load_state_dict(load_file(str(weights)), strict=True)
    return model.eval()


def as_list(out: Any) -> list:
    """A PyTorch model's outputs as a list (a tensor, a tuple, or a Hugging Face ModelOutput)."""
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return list(out) if isinstance(out, (list, tuple)) else [out]


def export_onnx(
    name: str, weights: Path | None, batch: int, precision: str, path: Path, dynamic: bool = False
) -> float:
    """`torch.onnx.export` (opset 18) of the PyTorch source at `batch` (with a dynamic batch axis if `dynamic`);
    returns the seconds of the eager warm-up pass before the export, which the CPU report leaves out.

    TensorRT networks are strongly typed in trtnet, and a strongly typed network parsed from ONNX takes its
    types from the ONNX graph: so for fp16/bf16 the PyTorch model is converted before export, inside a wrapper
    that casts the float32 inputs in and the outputs back, like trtnet's own engines.
    """
    import torch

    model = load_torch(name, weights)
    if hasattr(getattr(model, "config", None), "_attn_implementation"):
        # Hugging Face models default to SDPA, whose TorchScript export leaves a float32 tensor in an fp16
        # graph (TensorRT's parser then refuses BERT's first LayerNorm); the eager attention exports cleanly.
        model.config._attn_implementation = "eager"
    dtype = getattr(torch, TORCH_DTYPES[precision])
    names = [i.name for i in declared_inputs(name)]

    class Fp32IO(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner.to(dtype)

        def forward(self, *xs):
            xs = [x.to(dtype) if x.is_floating_point() else x for x in xs]
            return tuple(o.float() for o in as_list(self.inner(*xs)))

    wrapped = Fp32IO(model).eval()
    args = tuple(torch.from_numpy(x) for x in make_inputs(name, batch))
    with torch.no_grad():
        # One eager pass first: models that cache shape-dependent constants (YOLOv5's Detect grids) then trace
        # them as constants; traced in fp16, their torch.arange fails to export. It also names the outputs.
        t_warm = time.perf_counter()
        n_out = len(wrapped(*args))
        warmup_s = time.perf_counter() - t_warm
        outputs = [f"output{i}" for i in range(n_out)]
        axes = {n: {0: "batch"} for n in (*names, *outputs)} if dynamic else None
        # The TorchScript exporter: the dynamo one needs onnxscript, which trtnet does not require.
        torch.onnx.export(
            wrapped,
            args,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=18,
            dynamo=False,
            do_constant_folding=True,
        )
    return warmup_s


def build_onnx(path: Path, batch_size: BatchSize | None = None) -> Engine:
    """The ONNX route's engine: TensorRT's ONNX parser (`trtnet.parse_onnx`) and the same build path, GPU
    targeting and backend as trtnet's own engines (not cached: each route is timed from the file)."""
    return build(parse_onnx(path, batch_size), cache=False)
