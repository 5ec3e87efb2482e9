"""Test helpers shared by the test files (which never import each other): DSL ops run through TensorRT's shape
inference and the reference interpreter, the command line run in-process, and whether a CUDA GPU is here."""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.cli import main
from trtnet.dtypes import to_trt
from trtnet.graph import Graph, Policy
from trtnet.interpreter import run_network
from trtnet.tensor import Tensor


def run_ops(fn: Callable, *xs: np.ndarray, **policy) -> list[np.ndarray]:
    """`fn` applied to inputs shaped and typed like `xs` (any shapes: no batch convention), run on `xs`.

    Float inputs enter as float32 and are cast to the policy's precision; float outputs are cast back.
    """
    network, *_keep = _emit_ops(fn, *xs, **policy)
    return list(run_network(network, {f"x{i}": x for i, x in enumerate(xs)}).values())


def emitted_layer_types(fn: Callable, *xs: np.ndarray, **policy) -> list:
    """The `trt.LayerType` of every layer `fn` emits for inputs like `xs`."""
    network, *_keep = _emit_ops(fn, *xs, **policy)
    return [network.get_layer(i).type for i in range(network.num_layers)]


def _emit_ops(fn: Callable, *xs: np.ndarray, **policy):
    trt = get_trt()
    builder = trt.Builder(logger())
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    graph = Graph(network, Policy(**policy))
    with graph:
        args = []
        for i, x in enumerate(xs):
            t = Tensor(network.add_input(f"x{i}", to_trt(x.dtype), x.shape))
            args.append(t.cast(graph.float_dtype) if x.dtype == np.float32 else t)
        results = fn(*args)
        for i, t in enumerate(results if isinstance(results, (list, tuple)) else [results]):
            t = t.cast(trt.float32) if t.dtype in (trt.float16, trt.bfloat16) else t
            t.itensor.name = f"out{i}"
            network.mark_output(t.itensor)
    return network, builder, graph  # the builder owns the network and the graph holds its weights: keep both


def torch_on_gpu(model, *xs: np.ndarray) -> list[np.ndarray]:
    """A copy of the PyTorch `model` run on CUDA with TF32 off (fp32 means fp32), outputs as float32 numpy."""
    import copy

    import torch

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        out = copy.deepcopy(model).cuda()(*[torch.from_numpy(x).cuda() for x in xs])
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [o.float().cpu().numpy() for o in outs]


def assert_engine_matches(got, want: list[np.ndarray], precision: str) -> None:
    """The zoo's GPU bounds: fp32 relative error <= 1e-3, fp16 cosine similarity >= 0.999, per output."""
    from trtnet.parity import cosine, rel_error

    assert len(got) == len(want)
    for g, w in zip(got, want):
        if precision == "fp32":
            assert rel_error(np.asarray(g), w) <= 1e-3
        else:
            assert cosine(np.asarray(g), w) >= 0.999


def build_ops(fn: Callable, *xs: np.ndarray, **policy) -> bytes | None:
    """The serialized engine TensorRT builds (on the CPU) for `fn` on inputs like `xs`, or None if it refuses."""
    network, builder, _graph = _emit_ops(fn, *xs, **policy)
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    return None if plan is None else bytes(plan)


@functools.cache
def cuda_device() -> str | None:
    """A description of the CUDA GPU, or None with no GPU (reason in `no_gpu_reason`)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return None
    err, count = runtime.cudaGetDeviceCount()
    return f"{count} CUDA device(s)" if int(err) == 0 and count > 0 else None


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def trtnet_cli(*args: object, cwd: Path | None = None, **env: str) -> Result:
    """`trtnet ARGS` run by `main`, in `cwd` with `env` added, its exit status and output captured.

    argparse's usage errors leave by SystemExit, as they do from the console script; its code is the status.
    """
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        for key, value in env.items():
            mp.setenv(key, value)
        if cwd is not None:
            mp.chdir(cwd)
        try:
            status = main([str(a) for a in args])
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 1
    return Result(status, out.getvalue(), err.getvalue())


def error_line(result: Result) -> str:
    """The error a command printed: one line starting `trtnet: error:`, with no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("trtnet: error: "), result.stderr
    return lines[-1]


def allow_rtx() -> list[str]:
    """`--allow-rtx` where the backend is TensorRT for RTX, whose plans export-triton refuses by default (Triton's
    tensorrt backend cannot load them); nothing where the backend is data-centre TensorRT."""
    from trtnet.backend import get_backend

    return ["--allow-rtx"] if str(get_backend()).startswith("tensorrt_rtx") else []


def export_onnx(model, path, shape, dynamic: dict) -> None:
    """`model` (a torch module, seeded for the trace) exported to `path` at input `shape`, input "images" and
    output "out", with the `dynamic` axes of the input named as torch.onnx.export takes them."""
    import torch

    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.randn(*shape),),
            str(path),
            input_names=["images"],
            output_names=["out"],
            dynamic_axes={"images": dynamic},
            dynamo=False,
        )
