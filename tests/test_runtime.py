"""The runtime: every bad call is refused before any CUDA call; plans round-trip; GPU runs match PyTorch."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

import trtnet
import trtnet.runtime.cudart
from tests.helpers import cuda_device
from tests.runtime_models import two_inputs
from trtnet.errors import EngineError
from trtnet.runtime.engine import Engine
from trtnet.runtime.plan import sidecar_path


@pytest.fixture(scope="module")
def static_engine() -> Engine:
    return trtnet.build(two_inputs(), batch_size=2, precision="fp32", cache=False)


@pytest.fixture(scope="module")
def dynamic_engine() -> Engine:
    return trtnet.build(two_inputs(), batch_size=(1, 2, 4), precision="fp32", cache=False)


class FakeCudaArray:
    """An object speaking `__cuda_array_interface__` (what cupy and numba hand over); never dereferenced here."""

    def __init__(self, shape, dtype="float32", device: int = 0, strides=None) -> None:
        self.shape = tuple(shape)
        self.device = SimpleNamespace(index=device)
        self.__cuda_array_interface__ = {
            "shape": self.shape,
            "typestr": np.dtype(dtype).str,
            "version": 3,
            "data": (0x7F0000000000, False),
            "strides": strides,
        }


def f32(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


# (id, engine fixture, inputs, out, the error message: pinned)
BAD_CALLS = [
    ("count", "static", lambda: [f32(2, 3, 8, 8)], None, "the engine takes 2 input(s) (x, y), got 1"),
    (
        "dtype",
        "static",
        lambda: [np.zeros((2, 3, 8, 8)), f32(2, 4, 8, 8)],
        None,
        "input 'x': dtype float64 given, the engine takes float32 [2, 3, 8, 8]",
    ),
    (
        "shape",
        "static",
        lambda: [f32(2, 3, 9, 8), f32(2, 4, 8, 8)],
        None,
        "input 'x': shape [2, 3, 9, 8] given, the engine takes [2, 3, 8, 8]",
    ),
    (
        "rank",
        "static",
        lambda: [f32(2, 3, 8, 8), f32(2, 4, 64)],
        None,
        "input 'y': shape [2, 4, 64] given, the engine takes [2, 4, 8, 8]",
    ),
    (
        "static_batch",
        "static",
        lambda: [f32(3, 3, 8, 8), f32(3, 4, 8, 8)],
        None,
        "input 'x': batch 3 given (shape [3, 3, 8, 8]), it was built for batch 2 "
        "(build with batch_size=(min, opt, max) for a range)",
    ),
    (
        "profile",
        "dynamic",
        lambda: [f32(5, 3, 8, 8), f32(5, 4, 8, 8)],
        None,
        "input 'x': batch 5 given (shape [5, 3, 8, 8]), its optimization profile allows batch 1..4",
    ),
    (
        "profile_allowed",
        "dynamic",
        lambda: [f32(2, 3, 7, 8), f32(2, 4, 8, 8)],
        None,
        "input 'x': shape [2, 3, 7, 8] given, the engine takes [1..4, 3, 8, 8]",
    ),
    (
        "batches_differ",
        "dynamic",
        lambda: [f32(2, 3, 8, 8), f32(1, 4, 8, 8)],
        None,
        "input 'y': batch 1, but input 'x' has batch 2: all inputs share the batch size",
    ),
    (
        "mixed_devices",
        "static",
        lambda: [f32(2, 3, 8, 8), FakeCudaArray((2, 4, 8, 8))],
        None,
        "input 'y' is on cuda:0 ({fake}), but input 'x' is on the host (numpy.ndarray): "
        "pass all inputs on the host or all on the same GPU",
    ),
    (
        "other_gpu",
        "static",
        lambda: [FakeCudaArray((2, 3, 8, 8), device=1), FakeCudaArray((2, 4, 8, 8), device=1)],
        None,
        "input 'x' is on cuda:1 ({fake}), but the engine runs on cuda:0",
    ),
    (
        "device_dtype",
        "static",
        lambda: [FakeCudaArray((2, 3, 8, 8), "float16"), FakeCudaArray((2, 4, 8, 8))],
        None,
        "input 'x': dtype float16 given, the engine takes float32 [2, 3, 8, 8]",
    ),
    (
        "strided",
        "static",
        lambda: [FakeCudaArray((2, 3, 8, 8), strides=(4, 8 * 8 * 2 * 4, 8 * 4, 4)), FakeCudaArray((2, 4, 8, 8))],
        None,
        "input 'x': not contiguous (strides (4, 512, 32, 4)); pass a contiguous tensor (e.g. .contiguous()): "
        "device inputs are used in place, without a copy",
    ),
    (
        "not_an_array",
        "static",
        lambda: [[[0.0]], f32(2, 4, 8, 8)],
        None,
        "input 'x': expected a numpy array or a CUDA tensor (torch, __cuda_array_interface__, __dlpack__), got "
        "builtins.list",
    ),
    (
        "out_for_host",
        "static",
        lambda: [f32(2, 3, 8, 8), f32(2, 4, 8, 8)],
        [f32(2, 4, 8, 8)],
        "out= takes GPU tensors, for GPU inputs; host inputs return new numpy arrays",
    ),
    (
        "out_shape",
        "static",
        lambda: [FakeCudaArray((2, 3, 8, 8)), FakeCudaArray((2, 4, 8, 8))],
        [FakeCudaArray((2, 4, 8, 9))],
        "output 'z': out= tensor has shape [2, 4, 8, 9], the engine writes [2, 4, 8, 8] at batch 2",
    ),
    (
        "out_count",
        "static",
        lambda: [FakeCudaArray((2, 3, 8, 8)), FakeCudaArray((2, 4, 8, 8))],
        [],
        "out= needs 1 tensor(s) (z), got 0",
    ),
]


@pytest.fixture
def no_cuda_calls(monkeypatch):
    """Make any use of cuda-python fail the test: the checks must come first."""

    def forbidden():
        raise AssertionError("a CUDA call was made before the inputs were checked")

    monkeypatch.setattr(trtnet.runtime.cudart, "cudart", forbidden)
    trtnet.runtime.cudart.device_problem.cache_clear()
    yield
    trtnet.runtime.cudart.device_problem.cache_clear()


@pytest.mark.parametrize("kind, inputs, out, message", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_calls_are_refused_before_any_cuda_call(
    static_engine, dynamic_engine, no_cuda_calls, kind, inputs, out, message
):
    engine = static_engine if kind == "static" else dynamic_engine
    fake = f"{FakeCudaArray.__module__.split('.')[0]}.FakeCudaArray"  # how the message names the caller's type
    with pytest.raises(EngineError, match=re.escape(message.replace("{fake}", fake)) + "$"):
        engine(*inputs(), out=out)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"streams": 0}, "throughput: streams 0: expected a whole number >= 1"),  # was ZeroDivisionError
        ({"streams": "2"}, "throughput: streams '2': expected a whole number >= 1"),  # was TypeError from range()
        ({"requests": -1}, "throughput: requests -1: expected a whole number >= 1"),
    ],
    ids=["no_streams", "streams_a_string", "negative_requests"],
)
def test_bad_throughput_arguments_are_refused_before_any_cuda_call(static_engine, no_cuda_calls, kwargs, message):
    x = np.zeros(static_engine.inputs[0].shape, np.float32)
    with pytest.raises(EngineError, match=re.escape(message)):
        static_engine.throughput(x, **kwargs)


def test_torch_cpu_tensors_are_host_inputs(static_engine, no_cuda_calls):
    torch = pytest.importorskip("torch", reason="checks how CPU torch tensors are described")
    call = static_engine.check_inputs([torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 8, 8)])
    assert not call.on_device and call.batch == 2
    with pytest.raises(EngineError, match=re.escape("input 'y': dtype float64 given, the engine takes float32")):
        static_engine(torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 8, 8, dtype=torch.float64))


@pytest.mark.skipif(cuda_device() is not None, reason="checks the message given where there is no GPU")
def test_good_call_without_gpu_says_so(dynamic_engine):
    with pytest.raises(EngineError, match=r"^cannot run the engine: no CUDA GPU.*running one needs a CUDA GPU$"):
        dynamic_engine(f32(3, 3, 8, 8), f32(3, 4, 8, 8))


# -- plan files ----------------------------------------------------------------------------------------------


def test_save_load_round_trip(static_engine, tmp_path):
    path = static_engine.save(tmp_path / "tiny.plan")
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["plan_bytes"] == len(static_engine.plan) == path.stat().st_size
    loaded = Engine.load(path)
    assert loaded.plan == static_engine.plan
    assert loaded.inputs == static_engine.inputs and loaded.outputs == static_engine.outputs
    assert (loaded.num_layers, loaded.backend, loaded.precision) == (
        static_engine.num_layers,
        static_engine.backend,
        "fp32",
    )
    assert [s.shape for s in loaded.outputs] == [(2, 4, 8, 8)]


def _saved(engine: Engine, tmp_path):
    path = engine.save(tmp_path / "tiny.plan")
    return path, sidecar_path(path)


def test_truncated_plan(static_engine, tmp_path):
    path, _ = _saved(static_engine, tmp_path)
    n = len(static_engine.plan)
    path.write_bytes(static_engine.plan[: n // 2])
    with pytest.raises(
        EngineError, match=re.escape(f"tiny.plan: truncated or damaged plan: {n // 2} bytes, its metadata says {n}")
    ):
        Engine.load(path)


def test_modified_plan(static_engine, tmp_path):
    path, _ = _saved(static_engine, tmp_path)
    data = bytearray(static_engine.plan)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="the plan does not match its metadata \\(sha256 differs\\)"):
        Engine.load(path)


def test_plan_from_another_backend(static_engine, tmp_path):
    path, meta_path = _saved(static_engine, tmp_path)
    meta = json.loads(meta_path.read_text())
    meta["backend"] = "tensorrt 10.3.0"
    meta_path.write_text(json.dumps(meta))
    here = str(trtnet.backend.get_backend())
    with pytest.raises(EngineError, match=re.escape(f"built with tensorrt 10.3.0, but this process uses {here}")):
        Engine.load(path)
    assert Engine.load(path, check_backend=False).backend == "tensorrt 10.3.0"


def test_plan_without_metadata(static_engine, tmp_path):
    path = tmp_path / "raw.plan"
    path.write_bytes(static_engine.plan)
    with pytest.raises(EngineError, match=re.escape("raw.plan: no metadata at raw.plan.json")):
        Engine.load(path)


def test_foreign_metadata(static_engine, tmp_path):
    path, meta_path = _saved(static_engine, tmp_path)
    meta_path.write_text('{"format": "something-else"}')
    with pytest.raises(EngineError, match="not trtnet engine metadata \\(format 'something-else'\\)"):
        Engine.load(path)
    meta_path.write_text("{not json")
    with pytest.raises(EngineError, match="unreadable metadata"):
        Engine.load(path)


# -- on a GPU ------------------------------------------------------------------------------------------------


def _want(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return trtnet.reference(model, x, y)[0]


def _inputs(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((batch, 3, 8, 8)).astype(np.float32),
        rng.standard_normal((batch, 4, 8, 8)).astype(np.float32),
    )


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plain", "cuda_graph"])
def test_numpy_inputs_match_the_interpreter(static_engine, cuda_graph):
    model = two_inputs()
    runner = static_engine.runner(cuda_graph=cuda_graph)
    try:
        for seed in range(3):  # the graph is captured after the first run, then replayed on new data
            x, y = _inputs(2, seed)
            (got,) = runner(x, y)
            np.testing.assert_allclose(got, _want(model, x, y), rtol=1e-3, atol=1e-3)
    finally:
        runner.close()


@pytest.mark.gpu
def test_dynamic_batch(dynamic_engine):
    model = two_inputs()
    for batch in (1, 3, 4, 2):
        x, y = _inputs(batch, batch)
        (got,) = dynamic_engine(x, y)
        assert got.shape == (batch, 4, 8, 8)
        np.testing.assert_allclose(got, _want(model, x, y), rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_two_streams_at_once(dynamic_engine):
    model = two_inputs()
    runners = [dynamic_engine.runner(), dynamic_engine.runner()]
    assert runners[0].context is not runners[1].context
    try:
        calls = [_inputs(4, 10), _inputs(3, 11)]
        for runner, (x, y) in zip(runners, calls):
            runner.submit(dynamic_engine.check_inputs([x, y]))
        for runner, (x, y) in zip(runners, calls):
            (got,) = runner.wait()
            np.testing.assert_allclose(got, _want(model, x, y), rtol=1e-3, atol=1e-3)
    finally:
        for runner in runners:
            runner.close()
    stats = dynamic_engine.throughput(*_inputs(4, 0), streams=2, requests=20)
    assert stats["inferences_per_second"] > 0


@pytest.mark.gpu
def test_torch_cuda_tensors_in_place(static_engine):
    torch = pytest.importorskip("torch", reason="torch CUDA tensors are the device inputs here")
    model = two_inputs()
    x, y = _inputs(2, 5)
    want = _want(model, x, y)
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    (got,) = static_engine(tx, ty)
    assert isinstance(got, torch.Tensor) and got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-3, atol=1e-3)
    out = torch.full((2, 4, 8, 8), float("nan"), device="cuda")
    (same,) = static_engine(tx, ty, out=[out])
    assert same is out
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_cuda_array_interface_inputs(static_engine):
    torch = pytest.importorskip("torch", reason="allocates the device memory behind the interface")

    class Wrapped:  # only the interface: not recognisably torch
        def __init__(self, t):
            self.t = t
            self.__cuda_array_interface__ = t.__cuda_array_interface__

    x, y = _inputs(2, 6)
    (got,) = static_engine(Wrapped(torch.from_numpy(x).cuda()), Wrapped(torch.from_numpy(y).cuda()))
    assert isinstance(got, trtnet.runtime.cudart.DeviceArray)
    np.testing.assert_allclose(got.numpy(), _want(two_inputs(), x, y), rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_resnet18_engine_matches_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="the PyTorch source is the oracle")
    from trtnet.parity import export_state, rel_error, torch_model
    from trtnet.zoo import resnet18

    source = torch_model("resnet18", seed=0)
    path = export_state(source, tmp_path / "resnet18.safetensors")
    engine = trtnet.build(resnet18(weights=path), batch_size=(1, 2, 4), precision="fp32", cache=False)
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        want = source.cuda()(torch.from_numpy(x).cuda()).cpu().numpy()
    (got,) = engine(x)
    assert rel_error(got, want) <= 1e-3


@pytest.mark.gpu
def test_cached_plan_the_gpu_refuses_is_rebuilt(tmp_path):
    """A cached entry whose plan passes the CPU checks (its sidecar was rewritten to match) but that TensorRT
    refuses: the builder loads it before handing it out, warns and builds again; the result runs."""
    model = two_inputs()
    good = trtnet.build(model, batch_size=2, precision="fp32", cache_dir=tmp_path)
    (plan,) = tmp_path.glob("*.plan")
    damaged = Engine(
        good.plan[: len(good.plan) * 3 // 4],
        inputs=good.inputs,
        outputs=good.outputs,
        backend=good.backend,
        num_layers=good.num_layers,
        precision="fp32",
        target=good.target,
    )
    damaged.save(plan)
    assert Engine.load(plan).plan == damaged.plan  # the CPU checks cannot tell
    with pytest.warns(
        UserWarning,
        match=rf"trtnet engine cache: entry {plan.name} does not run on this GPU "
        r"\(this GPU cannot run the plan: .+\); rebuilding it",
    ):
        engine = trtnet.build(model, batch_size=2, precision="fp32", cache_dir=tmp_path)
    assert engine.plan != damaged.plan
    x, y = _inputs(2, 7)
    (got,) = engine(x, y)
    np.testing.assert_allclose(got, _want(model, x, y), rtol=1e-3, atol=1e-3)
    assert Engine.load(plan).plan == engine.plan


# -- CUDA graphs and stream order: the decisions (no CUDA), then the real thing on a GPU -----------------------


def _device_call(engine: Engine, ptr: int = 0x7F0000000000, stream=None, out=None) -> trtnet.runtime.bindings.Call:
    x, y = FakeCudaArray((2, 3, 8, 8)), FakeCudaArray((2, 4, 8, 8))
    for a in (x, y):
        a.__cuda_array_interface__ = {**a.__cuda_array_interface__, "data": (ptr, False), "stream": stream}
        ptr += 1 << 20
    return engine.check_inputs([x, y], out)


def test_graph_runs_without_out_write_their_own_buffers(static_engine, no_cuda_calls):
    """A CUDA graph runner given device inputs and no out= writes its own output buffers (copied into new
    tensors after the replay): the graph's key then holds no fresh address, so a steady stream of calls with
    the same inputs replays one graph. Without a graph, new tensors are written in place (no copy)."""
    from trtnet.runtime.bindings import graph_key, output_binding

    call = _device_call(static_engine)
    assert output_binding(call, cuda_graph=True) == "own"
    assert output_binding(call, cuda_graph=False) == "new"
    assert output_binding(_device_call(static_engine, out=[FakeCudaArray((2, 4, 8, 8))]), cuda_graph=True) == "out"
    host = static_engine.check_inputs([f32(2, 3, 8, 8), f32(2, 4, 8, 8)])
    assert output_binding(host, cuda_graph=False) == output_binding(host, cuda_graph=True) == "own"
    own = [0x7E0000000000]  # the runner's output buffer: allocated once, the same address call after call
    keys = {graph_key(c, [a.ptr for a in c.arrays], own) for c in (_device_call(static_engine) for _ in range(5))}
    assert len(keys) == 1
    a, b = _device_call(static_engine), _device_call(static_engine)
    b.arrays[0].shape = (2, 3, 8, 9)  # another length at the same batch (an engine with a range of lengths)
    assert graph_key(a, [1, 2], [3]) != graph_key(a, [1, 2], [4]) != graph_key(b, [1, 2], [4])
    assert graph_key(a, [1, 2], [4]) != graph_key(b, [1, 2], [4])


@pytest.mark.parametrize(
    "stream, torch_stream, want",
    [
        (None, None, [2]),  # v2 interface / no stream named: the legacy stream orders itself; per-thread is waited on
        (1, None, [2]),  # the legacy default stream: our blocking stream is ordered after it already
        (0, None, [2]),  # 0 is forbidden by the protocol: read as the legacy stream
        (2, None, [2]),  # the per-thread default stream
        (0x5555, None, [0x5555, 2]),  # a producer's own stream
    ],
)
def test_the_streams_a_runner_waits_on(static_engine, no_cuda_calls, stream, torch_stream, want):
    from trtnet.runtime.bindings import producer_streams

    call = _device_call(static_engine, stream=stream)
    assert producer_streams(call.arrays, torch_stream) == want


def test_torch_inputs_wait_on_the_callers_current_stream(static_engine, no_cuda_calls):
    from trtnet.runtime.bindings import producer_streams

    call = _device_call(static_engine)
    for a in call.arrays:
        a.kind = "torch.Tensor"
    assert producer_streams(call.arrays, torch_stream=0x4242) == [0x4242, 2]
    assert producer_streams(call.arrays, torch_stream=0) == [2]  # torch's default stream is the legacy one
    host = static_engine.check_inputs([f32(2, 3, 8, 8), f32(2, 4, 8, 8)])
    assert producer_streams(host.arrays) == []  # host inputs are copied on the runner's own stream


@pytest.mark.gpu
def test_a_graph_runner_replays_one_graph_for_device_inputs_without_out(static_engine):
    torch = pytest.importorskip("torch", reason="torch CUDA tensors are the device inputs here")
    runner = static_engine.runner(cuda_graph=True)
    try:
        tx, ty = torch.empty((2, 3, 8, 8), device="cuda"), torch.empty((2, 4, 8, 8), device="cuda")
        results = []
        for seed in range(5):
            x, y = _inputs(2, seed)
            tx.copy_(torch.from_numpy(x))
            ty.copy_(torch.from_numpy(y))
            (got,) = runner(tx, ty)
            results.append((got, _want(two_inputs(), x, y)))
        assert len(runner.graphs) == 1
        assert len({got.data_ptr() for got, _ in results}) == 5  # each call's result is its own tensor
        for got, want in results:  # ... and later replays did not overwrite earlier results
            np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-3, atol=1e-3)
    finally:
        runner.close()


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plain", "cuda_graph"])
def test_work_on_the_callers_torch_stream_comes_first(static_engine, cuda_graph):
    """Inputs written on a side stream (after a long sleep) are read only once written."""
    torch = pytest.importorskip("torch", reason="torch streams are the caller's streams here")
    runner = static_engine.runner(cuda_graph=cuda_graph)
    try:
        x, y = _inputs(2, 9)
        tx, ty = torch.zeros((2, 3, 8, 8), device="cuda"), torch.zeros((2, 4, 8, 8), device="cuda")
        side = torch.cuda.Stream()
        for _ in range(2):  # the second call replays the graph
            torch.cuda.synchronize()
            tx.zero_()
            ty.zero_()
            torch.cuda.synchronize()
            with torch.cuda.stream(side):
                torch.cuda._sleep(100_000_000)  # ~50 ms of GPU time before the inputs are written
                tx.copy_(torch.from_numpy(x).cuda(non_blocking=False))
                ty.copy_(torch.from_numpy(y).cuda(non_blocking=False))
                (got,) = runner(tx, ty)
            np.testing.assert_allclose(got.cpu().numpy(), _want(two_inputs(), x, y), rtol=1e-3, atol=1e-3)
    finally:
        runner.close()


@pytest.mark.gpu
def test_work_on_the_per_thread_default_stream_comes_first(static_engine):
    """An input written by a copy queued on the per-thread default stream is read only once written."""
    from trtnet.runtime.cudart import DeviceArray, check, cudart

    rt = cudart()
    x, y = _inputs(2, 12)
    dx, dy = DeviceArray(x.shape, "float32"), DeviceArray(y.shape, "float32")
    for d, h in ((dx, x), (dy, y)):
        check(
            rt.cudaMemcpyAsync(d.ptr, h.ctypes.data, h.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, 2),
            "cudaMemcpyAsync",
        )
    (got,) = static_engine(dx, dy)
    np.testing.assert_allclose(got.numpy(), _want(two_inputs(), x, y), rtol=1e-3, atol=1e-3)
