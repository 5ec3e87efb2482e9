"""From a network to a serialized engine: the builder config, the build itself, and the engine cache around it."""

from __future__ import annotations

import numbers
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from trtnet.backend import get_backend, get_trt
from trtnet.builder import cache as engine_cache
from trtnet.builder.emit import BatchSize, Network, _short, emit
from trtnet.builder.progress import Progress, progress_monitor
from trtnet.errors import BuildError, NetworkError
from trtnet.graph import Policy, PolicyOptions
from trtnet.nn.module import Module
from trtnet.runtime.engine import Engine, PlanRejected
from trtnet.target import cache_dir as default_cache_dir
from trtnet.target import target

if TYPE_CHECKING:
    # typing.Unpack is Python 3.11; annotations are strings here (`from __future__ import annotations`), so the
    # name is needed by type checkers only, and trtnet still imports on 3.10 without typing_extensions.
    from typing_extensions import Unpack


def _optimization_level(level: Any) -> int | None:
    if level is None:
        return None
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or not 0 <= level <= 5:
        raise NetworkError(
            f"optimization_level {_short(level)}: expected a whole number from 0 to 5 (TensorRT's "
            "builder optimization levels), or None for TensorRT's default (3)"
        )
    return int(level)


def build(
    model: Module | Network,
    batch_size: BatchSize | None = None,
    policy: Policy | None = None,
    *,
    input_shapes: dict[str, Sequence[int]] | None = None,
    optimization_level: int | None = None,
    verbose: bool = False,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    **options: Unpack[PolicyOptions],
) -> Engine:
    """Build a TensorRT engine for `model` (or a `Network`), or take it from the engine cache when the same
    build was done before. Emission options: `policy`, or Policy's field names as keywords (default batch 1).

    `cache=False` always builds; `cache_dir` overrides the folder (`$TRTNET_CACHE_DIR`, default ~/.cache/trtnet).
    A progress bar shows on a terminal (or with `verbose`), then a one-line summary. With a GPU present, a
    cached plan is first loaded on it: one the GPU refuses is rebuilt, with a warning.

    >>> engine = trtnet.build(resnet50(weights=None), batch_size=8, precision="fp16")   # doctest: +SKIP
    >>> engine.save("resnet50.plan")                                                    # doctest: +SKIP
    """
    _optimization_level(optimization_level)  # a bad value is refused before anything is emitted
    for flag, value in (("cache", cache), ("verbose", verbose)):
        if not isinstance(value, (bool, np.bool_)):  # cache="no" would be truthy: the cache used, not skipped
            raise NetworkError(f"{flag} {_short(value)}: expected True or False")
    if cache_dir is not None and (not isinstance(cache_dir, (str, os.PathLike)) or not os.fspath(cache_dir)):
        raise NetworkError(
            f"cache_dir {_short(cache_dir)}: expected a folder path (str or os.PathLike), or None "
            "for $TRTNET_CACHE_DIR (default ~/.cache/trtnet)"
        )
    if isinstance(model, Network):
        if batch_size is not None or policy is not None or options or input_shapes:
            raise NetworkError(
                "build(Network): the network's shapes and types are fixed; batch_size, policy, "
                "input_shapes and emission options belong to emit (or parse_onnx)"
            )
        net = model
    else:
        net = emit(model, 1 if batch_size is None else batch_size, policy=policy, input_shapes=input_shapes, **options)
    if not cache:
        return build_network(net, optimization_level=optimization_level, verbose=verbose)
    key_options = {
        "policy": asdict(net.policy) if net.policy else None,
        "optimization_level": _optimization_level(optimization_level),
        "inputs": [
            (s.name, s.shape, s.dtype, s.min_batch, s.max_batch)
            + ((s.min_shape, s.max_shape) if s.min_shape else ())  # old keys stay valid
            for s in net.inputs
        ],
    }
    key = engine_cache.engine_key(net.network, net.keepalive, key_options)
    return engine_cache.cached(
        key,
        default_cache_dir(cache_dir),
        lambda: build_network(net, optimization_level=optimization_level, verbose=verbose),
        _runs_here,
        verbose=verbose,
        label=net.label,
    )


def _runs_here(engine: Engine) -> bool:
    """Whether this GPU accepts a cached plan, asked before the plan is handed out (the runtime never calls back
    into the builder). A plan built with no GPU ("aot") meets none here to ask: the key names the target."""
    if engine.target == "aot":
        return True
    try:
        engine.loaded()  # deserialized once, here; the engine's first run reuses it
    except PlanRejected as e:
        warnings.warn(
            f"trtnet engine cache: entry {engine.cache_key}.plan does not run on this GPU ({e}); rebuilding it",
            stacklevel=4,
        )
        return False
    return True


def builder_config(net: Network, optimization_level: int | None = None, gpu: str = "aot"):
    """The TensorRT builder config `build_network` uses for `net`: TF32 only for precision="tf32", the
    optimization level, the target GPU (`gpu`, from `target()`), the batch profile."""
    config = net.builder.create_builder_config()
    trt = get_trt()
    if hasattr(trt.BuilderFlag, "TF32"):
        # TensorRT turns TF32 on in every new builder config (measured: get_flag(TF32) is True), so fp32 matrix
        # multiplies and convolutions could round their inputs to 10 mantissa bits. fp32 means fp32 here.
        if net.policy is not None and net.policy.precision == "tf32":
            config.set_flag(trt.BuilderFlag.TF32)
        else:
            config.clear_flag(trt.BuilderFlag.TF32)
    if optimization_level is not None:
        config.builder_optimization_level = optimization_level
    if gpu != "aot" and hasattr(config, "set_compute_capability"):
        # TensorRT for RTX builds portable engines by default (sm_86, sm_89, sm_120); with a GPU present,
        # build for that GPU (Turing needs it, and the cache key names it).
        config.num_compute_capabilities = 1
        config.set_compute_capability(trt.ComputeCapability.CURRENT, 0)
    if any(lo != hi for lo, hi in (s.shape_range() for s in net.inputs)):
        profile = net.builder.create_optimization_profile()
        for s in net.inputs:
            lo, hi = s.shape_range()
            profile.set_shape(s.name, lo, s.shape, hi)
        config.add_optimization_profile(profile)
    return config


def build_network(net: Network, *, optimization_level: int | None = None, verbose: bool = False) -> Engine:
    """Compile a network into a serialized plan, for this machine's GPU where there is one (`target()`)."""
    label = net.label
    gpu = target()
    config = builder_config(net, _optimization_level(optimization_level), gpu)
    tty = sys.stderr.isatty()
    progress = Progress(label, tty) if (tty or verbose) else None
    monitor = None
    if progress is not None and hasattr(config, "progress_monitor"):
        monitor = progress_monitor(progress)  # held here: TensorRT keeps only a pointer to it
        config.progress_monitor = monitor
    t0 = time.perf_counter()
    try:
        plan = net.builder.build_serialized_network(net.network, config)
    finally:
        if progress is not None:
            progress.close()
    seconds = time.perf_counter() - t0
    del monitor
    if plan is None:
        raise BuildError(f"{label}: TensorRT could not build the engine (see its log above)")
    engine = Engine(
        bytes(plan),
        inputs=net.inputs,
        outputs=net.outputs,
        backend=str(get_backend()),
        num_layers=net.num_layers,
        build_seconds=seconds + net.seconds,
        precision=net.precision,
        target=gpu,
    )
    if progress is not None:
        print(engine.summary(label), file=sys.stderr)
    return engine
