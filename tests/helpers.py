"""Test helpers: run a function of DSL ops through TensorRT's shape inference and the reference interpreter."""
from __future__ import annotations

from typing import Callable

import numpy as np

from trtnet.backend import get_trt, logger
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
