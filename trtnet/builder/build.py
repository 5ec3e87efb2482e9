"""From a network to a serialized engine: the builder config, the build itself, and the engine cache around it."""

from __future__ import annotations

import numbers
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from trtnet.backend import get_backend, get_trt
from trtnet.builder import cache as engine_cache
from trtnet.builder.emit import BatchSize, Network, _short, emit
from trtnet.builder.progress import Interrupts, Progress, interruptible, progress_monitor
from trtnet.errors import BuildError, NetworkError
from trtnet.graph import Policy, PolicyOptions
from trtnet.nn.module import Module
from trtnet.runtime.engine import Engine, PlanRejected
from trtnet.runtime.sidecar import TensorSpec
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
    reuse_calibration: bool = False,
    keep: Sequence[str] = (),
    min_cosine: float | None = None,
    calibration_data: Iterable[Any] | None = None,
    **options: Unpack[PolicyOptions],
) -> Engine:
    """Build a TensorRT engine for `model` (or a `Network`), or take it from the engine cache when the same
    build was done before. Emission options: `policy`, or Policy's field names as keywords (default batch 1).

    An int8/fp8 calibration measured on other inputs or weights is refused (`CalibrationError` naming what
    differs); `reuse_calibration=True` accepts it, for deliberate reuse. `keep` names more layers to leave in
    fp16 (as `calibrate` takes them). `min_cosine` keeps the fewest more that the int8/fp8 network needs to reach
    that cosine against fp32, measured in the interpreter on `calibration_data` (batches, as `calibrate` takes;
    without `calibration`, the ranges are measured on them too) and printed as a report on stderr
    (`trtnet.quant.sensitivity`).
    `cache=False` always builds; `cache_dir` overrides the folder (`$TRTNET_CACHE_DIR`, default ~/.cache/trtnet).
    A progress bar shows on a terminal (or with `verbose`), then a one-line summary. With a GPU present, a
    cached plan is first loaded on it: one the GPU refuses is rebuilt, with a warning.

    >>> engine = trtnet.build(resnet50(weights=None), batch_size=8, precision="fp16")   # doctest: +SKIP
    >>> engine.save("resnet50.plan")                                                    # doctest: +SKIP
    """
    _optimization_level(optimization_level)  # a bad value is refused before anything is emitted
    for flag, value in (("cache", cache), ("verbose", verbose), ("reuse_calibration", reuse_calibration)):
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
        if keep or min_cosine is not None or calibration_data is not None:
            raise NetworkError("build(Network): keep, min_cosine and calibration_data need a model, not a network")
        net = model
    else:
        if keep or min_cosine is not None or calibration_data is not None:
            options = _chosen_keeps(model, policy, options, keep, min_cosine, calibration_data, reuse_calibration)
        batch = 1 if batch_size is None else batch_size
        net = emit(
            model, batch, policy=policy, input_shapes=input_shapes, reuse_calibration=reuse_calibration, **options
        )
    if not cache:
        return build_network(net, optimization_level=optimization_level, verbose=verbose)
    key_options = {
        "policy": _policy_key(net.policy),
        "optimization_level": _optimization_level(optimization_level),
        "inputs": [(s.name, s.shape, s.dtype, s.min_batch, s.max_batch, s.min_shape, s.max_shape) for s in net.inputs],
    }
    key = engine_cache.engine_key(net.network, net.keepalive, key_options)
    engine = engine_cache.cached(
        key,
        default_cache_dir(cache_dir),
        lambda: build_network(net, optimization_level=optimization_level, verbose=verbose),
        _runs_here,
        verbose=verbose,
        label=net.label,
    )
    engine.outputs = batched_outputs(net)  # a plan cached before outputs recorded their batch gets it too
    return engine


def _chosen_keeps(
    model: Module,
    policy: Policy | None,
    options: dict[str, Any],
    keep: Sequence[str],
    min_cosine: float | None,
    data: Iterable[Any] | None,
    reuse: bool,
) -> dict[str, Any]:
    """`options` with a calibration that also keeps the layers `keep` names and those `min_cosine` needs."""
    from trtnet.errors import CalibrationError
    from trtnet.graph import QUANTIZED
    from trtnet.quant.ranges import as_calibration
    from trtnet.quant.sensitivity import keep_for_cosine, keep_named

    precision = options.get("precision", policy.precision if policy is not None else "fp32")
    cal = as_calibration(options.get("calibration", policy.calibration if policy is not None else None))
    if precision not in QUANTIZED:
        raise CalibrationError(
            f"keep, min_cosine and calibration_data choose which int8/fp8 layers stay in fp16; precision "
            f"{precision!r} quantizes none (use precision='int8' or 'fp8')"
        )
    if min_cosine is None and data is not None:
        raise CalibrationError("calibration_data is for min_cosine (calibrate measures ranges: trtnet.calibrate)")
    if min_cosine is not None and data is None:
        raise CalibrationError(
            f"min_cosine={min_cosine!r} needs sample inputs to measure on: pass calibration_data= (batches, as "
            "trtnet.calibrate takes them; --data FILE.npz on the command line)"
        )
    if cal is None and min_cosine is None:
        raise CalibrationError(f"keep={list(keep)!r} needs calibration= (the ranges of the layers it does not keep)")
    if min_cosine is not None:
        selection = keep_for_cosine(
            model, data, min_cosine, calibration=cal, precision=precision, keep=keep, reuse_calibration=reuse
        )
        cal = selection.calibration
        print(selection.report(), file=sys.stderr)
    else:
        cal = keep_named(model, cal, keep)
    return {**options, "calibration": cal}


def _policy_key(policy: Policy | None) -> dict[str, Any] | None:
    """The policy as the cache key sees it: a calibration by what shapes the plan (its ranges, the layers it
    keeps), never the file it was read from (the same ranges from another path are the same engine)."""
    if policy is None:
        return None
    key = {f.name: getattr(policy, f.name) for f in fields(policy) if f.name != "calibration"}
    cal = policy.calibration
    key["calibration"] = None if cal is None else {"amax": cal.amax, "keep": cal.keep}
    return key


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


_cancelled: set[threading.Thread] = set()  # interrupted builds whose worker TensorRT has not yet let go


def cancelled_builds_running() -> bool:
    """Whether a build interrupted in this process is still winding down in TensorRT (it saves nothing)."""
    _cancelled.intersection_update({t for t in _cancelled if t.is_alive()})
    return bool(_cancelled)


def _serialize(net: Network, config: Any, monitor: Any, interrupts: Interrupts) -> Any:
    """`build_serialized_network` in a worker thread, the plan (None on failure) or None once interrupted.

    TensorRT calls the progress monitor between steps, but some phases run for many seconds without a step
    (TensorRT for RTX compiles its kernels in one: 14 s measured on a 1600-layer network), and a Python signal
    handler runs only when Python code does. So this thread waits in Python, where SIGINT is seen at once, and
    on an interrupt stops waiting: the worker, cancelled at TensorRT's next step, finishes alone and its plan is
    dropped. TensorRT releases the GIL while it builds; the worker holds the network, config and monitor
    alive for as long as TensorRT may use them."""
    result: list[Any] = []

    def work(network=net.network, builder=net.builder, config=config, monitor=monitor) -> None:
        try:
            result.append(builder.build_serialized_network(network, config))
        except BaseException as e:  # noqa: BLE001  handed to the waiting thread, which raises it
            result.append(e)

    # Not a daemon: the interpreter's exit waits for a cancelled build to end, as TensorRT calling back into a
    # finalizing interpreter aborts the process (measured: "FATAL: exception not rethrown", status -6).
    worker = threading.Thread(target=work, name=f"trtnet build {net.label}")
    worker.start()
    while worker.is_alive() and not interrupts:
        worker.join(0.05)
    if interrupts:
        if worker.is_alive():
            _cancelled.add(worker)
        return None
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _refuse_unbuildable_layers(net: Network) -> None:
    """A `BuildError` naming the backend and the first layer it cannot build, before TensorRT tries (its own
    message, "has no runners", names neither the backend nor what to do)."""
    backend = get_backend()
    for i in range(net.network.num_layers):
        layer = net.network.get_layer(i)
        kind = layer.type.name
        if not backend.builds_layer(kind):
            hint = (
                " (trtnet's NMSOptions(layer='layers') builds NMS from layers it does build)" if kind == "NMS" else ""
            )
            raise BuildError(f"{net.label}: {backend} cannot build TensorRT's {kind} layer {layer.name!r}{hint}")


def build_network(net: Network, *, optimization_level: int | None = None, verbose: bool = False) -> Engine:
    """Compile a network into a serialized plan, for this machine's GPU where there is one (`target()`)."""
    label = net.label
    _refuse_unbuildable_layers(net)
    gpu = target()
    config = builder_config(net, _optimization_level(optimization_level), gpu)
    tty = sys.stderr.isatty()
    progress = Progress(label, tty) if (tty or verbose) else None
    t0 = time.perf_counter()
    with interruptible() as interrupts:
        monitor = None
        if hasattr(config, "progress_monitor"):
            monitor = progress_monitor(progress, interrupts)  # always installed: it is how an interrupt cancels
            config.progress_monitor = monitor
        try:
            plan = _serialize(net, config, monitor, interrupts)
        finally:
            if progress is not None:
                progress.close()
    seconds = time.perf_counter() - t0
    # Raised only now, outside TensorRT, which would have caught it: no plan, so nothing is saved or cached.
    interrupts.reraise()
    if plan is None:
        raise BuildError(f"{label}: TensorRT could not build the engine (see its log above)")
    engine = Engine(
        bytes(plan),
        inputs=net.inputs,
        outputs=batched_outputs(net),
        backend=str(get_backend()),
        num_layers=net.num_layers,
        build_seconds=seconds + net.seconds,
        precision=net.precision,
        target=gpu,
    )
    if progress is not None:
        print(engine.summary(label), file=sys.stderr)
    return engine


def batched_outputs(net: Network) -> list[TensorSpec]:
    """The output specs, with `min_batch`/`max_batch` set on each whose dim 0 is the batch: TensorRT's shape
    inference, at the profile's min, opt and max batch (the other dims at opt), gives it exactly that batch. Left
    0 where it does not or cannot (inputs of different batch ranges, a data-dependent size): Triton batches an
    engine only when every output's dim 0 is its batch (`trtnet.export.triton_config`)."""
    ranges = {s.batch_range() for s in net.inputs}
    if len(ranges) != 1 or net.network is None:
        return list(net.outputs)
    (lo, hi), opt = ranges.pop(), net.inputs[0].shape[0]
    network = net.network
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    declared = [tuple(t.shape) for t in inputs]
    follows = [s.shape[:1] == (-1,) for s in net.outputs]
    rest: dict[int, tuple[int, ...]] = {}  # an output's other dims, which must not change with the batch
    try:
        for batch in sorted({lo, opt, hi}):
            for t, spec in zip(inputs, net.inputs):
                t.shape = spec.shape_for(batch)
            for i in range(network.num_outputs):
                shape = tuple(network.get_output(i).shape)
                # [N, N] (a similarity of the batch with itself) has the batch first too, but Triton would hand
                # each request a row computed over other requests' inputs.
                follows[i] = follows[i] and shape[:1] == (batch,) and rest.setdefault(i, shape[1:]) == shape[1:]
    except (RuntimeError, ValueError, TypeError):  # shape inference refused a probe: nothing established
        follows = [False] * len(follows)
    finally:
        for t, shape in zip(inputs, declared):
            t.shape = shape
    return [replace(s, min_batch=lo, max_batch=hi) if f else s for s, f in zip(net.outputs, follows)]
