"""`Interpreter`: a network prepared once, run repeatedly with its weights widened to float64 only once."""

from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager

import numpy as np
import pytest

from trtnet.backend import get_trt, logger
from trtnet.errors import InterpreterError
from trtnet.interpreter import Interpreter, _common, run_network

trt = get_trt()


def network(kernel: np.ndarray, matrix: np.ndarray):
    """conv (kernel weights) -> flatten -> product with a constant matrix, plus the transposed product."""
    builder = trt.Builder(logger())
    net = builder.create_network(0)
    x = net.add_input("x", trt.float32, (1, 2, 5, 5))
    conv = net.add_convolution_nd(x, 3, (3, 3), kernel, trt.Weights())
    conv.name = "conv"
    flat = net.add_shuffle(conv.get_output(0))
    flat.reshape_dims = (1, 27)
    const = net.add_constant(matrix.shape, matrix)
    prod = net.add_matrix_multiply(
        flat.get_output(0), trt.MatrixOperation.NONE, const.get_output(0), trt.MatrixOperation.NONE
    )
    prod.get_output(0).name = "y"
    net.mark_output(prod.get_output(0))
    return builder, net, conv


def expected(x: np.ndarray, kernel: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The same computation in float64, by direct summation."""
    k = kernel.astype(np.float64).reshape(3, 2, 3, 3)
    conv = np.zeros((3, 3, 3))
    for i in range(3):
        for j in range(3):
            conv[:, i, j] = np.einsum("ckl,ockl->o", x[0, :, i : i + 3, j : j + 3].astype(np.float64), k)
    return (conv.reshape(1, 27) @ matrix.astype(np.float64)).astype(np.float32)


def test_prepared_runs_match_run_network_and_see_weights_set_anew():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal(3 * 2 * 9).astype(np.float32)
    # Over 1M values: the product's block-widening path, which a prepared network replaces by its cached copy.
    matrix = rng.standard_normal((27, 40000)).astype(np.float32)
    builder, net, conv = network(kernel, matrix)
    prepared = Interpreter(net)
    for seed in (1, 2):  # the second run reads the weights widened by the first
        x = np.random.default_rng(seed).standard_normal((1, 2, 5, 5)).astype(np.float32)
        got = prepared.run({"x": x})["y"]
        np.testing.assert_array_equal(got, run_network(net, {"x": x})["y"])
        np.testing.assert_allclose(got, expected(x, kernel, matrix), rtol=1e-6, atol=1e-5)
    # Weights set anew on a layer are a new buffer: the next run sees them.
    other = rng.standard_normal(3 * 2 * 9).astype(np.float32)
    conv.kernel = other
    got = prepared.run({"x": x})["y"]
    np.testing.assert_allclose(got, expected(x, other, matrix), rtol=1e-6, atol=1e-5)
    # Weights written into their old buffer in place are not (the documented rule); run_network sees them.
    other *= 2
    np.testing.assert_array_equal(prepared.run({"x": x})["y"], got)
    np.testing.assert_allclose(run_network(net, {"x": x})["y"], expected(x, other, matrix), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(Interpreter(net).run({"x": x})["y"], expected(x, other, matrix), rtol=1e-6, atol=1e-5)


def test_a_prepared_network_keeps_the_settings_its_first_run_read():
    """A layer's settings are read from TensorRT once, by its first run (the documented rule): an operation changed
    afterwards is seen by a network prepared anew, not by the one already run."""
    net = trt.Builder(logger()).create_network(0)
    x = net.add_input("x", trt.float32, (2, 3))
    layer = net.add_elementwise(x, x, trt.ElementWiseOperation.SUM)
    net.mark_output(layer.get_output(0))
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    prepared = Interpreter(net)
    (first,) = prepared.run({"x": value}).values()
    layer.op = trt.ElementWiseOperation.PROD
    (kept,) = prepared.run({"x": value}).values()
    (fresh,) = Interpreter(net).run({"x": value}).values()
    np.testing.assert_array_equal(first, value + value)
    np.testing.assert_array_equal(kept, value + value)
    np.testing.assert_array_equal(fresh, value * value)


def test_a_layer_s_failed_run_keeps_none_of_the_settings_it_read():
    """A slice whose first run fails on its axes input, after reading start, size and stride but before its mode:
    the settings it read are not kept, so the next run reads them all, and a start and a mode changed together
    in between are both seen (a mix of the old start and the new mode gave [2, 3, 0])."""
    net = trt.Builder(logger()).create_network(0)
    x = net.add_input("x", trt.float32, (4,))
    layer = net.add_slice(x, (2,), (3,), (1,))
    layer.set_input(5, net.add_input("axes", trt.int32, (1,)))
    net.mark_output(layer.get_output(0))
    prepared = Interpreter(net)
    value = np.arange(4, dtype=np.float32)
    with pytest.raises(InterpreterError, match="slice axes"):
        prepared.run({"x": value, "axes": np.array([5], np.int32)})
    layer.start, layer.mode = (1,), trt.SampleMode.WRAP
    (got,) = prepared.run({"x": value, "axes": np.array([0], np.int32)}).values()
    np.testing.assert_array_equal(got, [1, 2, 3])


def test_widened_weights_are_read_only_and_leave_the_caller_s_arrays_alone():
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal(3 * 2 * 9).astype(np.float32)
    matrix = rng.standard_normal((27, 4)).astype(np.float32)
    keep_k, keep_m = kernel.copy(), matrix.copy()
    _builder, net, _conv = network(kernel, matrix)
    prepared = Interpreter(net)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    first = prepared.run({"x": x})["y"]
    second = prepared.run({"x": x})["y"]
    np.testing.assert_array_equal(first, second)
    assert first.flags.writeable and first.base is None  # outputs are the caller's own arrays
    np.testing.assert_array_equal(kernel, keep_k)
    np.testing.assert_array_equal(matrix, keep_m)


def _relu_network(shape: tuple[int, ...]):
    """x -> a RELU named "the_relu" -> output; the builder is returned too, as the network needs it alive."""
    builder = trt.Builder(logger())
    net = builder.create_network(0)
    relu = net.add_activation(net.add_input("x", trt.float32, shape), trt.ActivationType.RELU)
    relu.name = "the_relu"
    net.mark_output(relu.get_output(0))
    return builder, net


@contextmanager
def _activation_handler(fn):
    """The interpreter's ACTIVATION handler replaced by fn (called with the original's LayerCall) for the block."""
    entry = _common.HANDLERS["ACTIVATION"]
    _common.HANDLERS["ACTIVATION"] = _common.Entry(fn, entry.class_name)
    try:
        yield
    finally:
        _common.HANDLERS["ACTIVATION"] = entry


def test_a_prepared_network_still_checks_every_output_against_tensorrt():
    # The second run checks against the shapes kept from the first; a layer whose output changes shape between
    # runs (here its input: a dynamic batch) is still checked, and a wrong shape still names the layer.
    builder, net = _relu_network((-1, 3))
    prepared = Interpreter(net)
    for batch in (2, 5):
        out = prepared.run({"x": np.full((batch, 3), -1.0, np.float32)})
        np.testing.assert_array_equal(next(iter(out.values())), np.zeros((batch, 3), np.float32))
    with _activation_handler(lambda call: [np.zeros((2, 4), np.float32)]):
        with pytest.raises(InterpreterError, match=r"layer 'the_relu' \(ACTIVATION\): output 0 .* has shape \(2, 4\)"):
            prepared.run({"x": np.zeros((2, 3), np.float32)})


def test_the_first_run_checks_against_the_shapes_read_at_preparation():
    # A first run does not ask TensorRT again for what preparation read; a wrong shape still names the layer.
    builder, net = _relu_network((2, 3))
    prepared = Interpreter(net)
    with _activation_handler(lambda call: [np.zeros((2, 3), np.float16)]):
        with pytest.raises(
            InterpreterError,
            match=r"layer 'the_relu' \(ACTIVATION\): output 0 .* has dtype HALF, TensorRT inferred FLOAT",
        ):
            prepared.run({"x": np.zeros((2, 3), np.float32)})


def test_an_input_declared_anew_after_preparing_is_refused_not_run_on_the_old_shape():
    """The shape of x is folded at preparation's first run (static dims); declaring x anew as (2, 12) on the
    network used the folded (2, 16) and its inferred shapes: a wrong answer with no error. Now refused, and a
    fresh run_network gives the new shape's answer."""
    builder = trt.Builder(logger())
    net = builder.create_network(0)
    x = net.add_input("x", trt.float32, (2, 16))
    net.mark_output(net.add_shape(x).get_output(0))
    prepared = Interpreter(net)
    for _ in range(2):
        np.testing.assert_array_equal(next(iter(prepared.run({"x": np.zeros((2, 16), np.float32)}).values())), [2, 16])
    x.shape = (2, 12)
    with pytest.raises(
        InterpreterError,
        match=r"inputs changed since it was prepared \(\('x', \(2, 16\), 'FLOAT'\) -> \('x', \(2, 12\), 'FLOAT'\)\)",
    ):
        prepared.run({"x": np.zeros((2, 12), np.float32)})
    fresh = run_network(net, {"x": np.zeros((2, 12), np.float32)})
    np.testing.assert_array_equal(next(iter(fresh.values())), [2, 12])
    # An output marked after preparing was left out of the prepared network's results.
    x.shape = (2, 16)
    doubled = net.add_elementwise(x, x, trt.ElementWiseOperation.SUM).get_output(0)
    prepared = Interpreter(net)
    prepared.run({"x": np.zeros((2, 16), np.float32)})
    net.mark_output(doubled)
    with pytest.raises(InterpreterError, match=r"outputs changed since it was prepared"):
        prepared.run({"x": np.zeros((2, 16), np.float32)})


def test_the_garbage_collector_is_paused_only_while_preparing_or_running():
    builder, net = _relu_network((2, 3))
    seen = []
    original = _common.HANDLERS["ACTIVATION"].fn
    with _activation_handler(lambda call: seen.append(gc.isenabled()) or original(call)):
        assert gc.isenabled()
        prepared = Interpreter(net)
        assert gc.isenabled()
        prepared.run({"x": np.ones((2, 3), np.float32)})
        assert seen == [False] and gc.isenabled()
        with pytest.raises(InterpreterError, match="missing network input"):
            prepared.run({})
        assert gc.isenabled()  # back on after a failed run too
        gc.disable()
        try:
            prepared.run({"x": np.ones((2, 3), np.float32)})
            assert not gc.isenabled()  # left off when the caller had it off
        finally:
            gc.enable()


def test_runs_from_several_threads_at_once_match_single_threaded_ones():
    """Eight threads run one prepared network of many small weights (widened as runs look them up), switching as
    often as Python lets them: every output equals a run of its own, and no run trips over another's bookkeeping
    (with one account for all runs: `dictionary changed size during iteration` in one run's start, a KeyError in
    another's lookup)."""
    keep = []  # TensorRT holds pointers to these

    def weights(values: np.ndarray):
        keep.append(np.ascontiguousarray(values, np.float32))
        return trt.Weights(keep[-1])

    net = trt.Builder(logger()).create_network(0)
    h = net.add_input("x", trt.float32, (4, 32))
    rng = np.random.default_rng(0)
    for _ in range(40):
        w = net.add_constant((32, 32), weights(rng.standard_normal((32, 32)) * 0.2)).get_output(0)
        h = net.add_matrix_multiply(h, trt.MatrixOperation.NONE, w, trt.MatrixOperation.NONE).get_output(0)
        b = net.add_constant((1, 32), weights(rng.standard_normal((1, 32)))).get_output(0)
        h = net.add_elementwise(h, b, trt.ElementWiseOperation.SUM).get_output(0)
        h = net.add_activation(h, trt.ActivationType.TANH).get_output(0)
    net.mark_output(h)
    feeds = [rng.standard_normal((4, 32)).astype(np.float32) for _ in range(8)]
    alone = [next(iter(run_network(net, {"x": f}).values())) for f in feeds]
    failures: list[str] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(3):
            prepared = Interpreter(net)

            def work(prepared: Interpreter, i: int) -> None:
                for _ in range(10):
                    try:
                        got = next(iter(prepared.run({"x": feeds[i]}).values()))
                    except Exception as err:  # noqa: BLE001 - a race shows as any exception: collect, then fail
                        failures.append(f"{type(err).__name__}: {err}")
                    else:
                        if got.tobytes() != alone[i].tobytes():
                            failures.append(f"thread {i}: a different output")

            threads = [threading.Thread(target=work, args=(prepared, i)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert not failures, failures[:3]


def test_runs_nested_in_traces_on_two_threads_do_not_wait_on_each_other():
    """Thread 1 runs network A, whose trace runs B; thread 2 runs B, whose trace runs A. Runs hold no lock, so
    both finish (a lock per prepared network deadlocked them, each holding one and waiting for the other)."""

    def relu_network():
        net = trt.Builder(logger()).create_network(0)
        layer = net.add_activation(net.add_input("x", trt.float32, (2, 3)), trt.ActivationType.RELU)
        net.mark_output(layer.get_output(0))
        return net

    a, b = Interpreter(relu_network()), Interpreter(relu_network())
    feeds = {"x": np.array([[-1, 0, 1], [2, -3, 4]], np.float32)}
    both_inside = threading.Barrier(2)
    finished: list[str] = []

    def work(first: Interpreter, second: Interpreter, tag: str) -> None:
        def trace(name: str, type_name: str, outputs: list) -> None:
            both_inside.wait(timeout=10)  # both outer runs are under way
            (inner,) = second.run(feeds).values()
            np.testing.assert_array_equal(inner, np.maximum(feeds["x"], 0))

        first.run(feeds, trace=trace)
        finished.append(tag)

    threads = [
        threading.Thread(target=work, args=(a, b, "a then b"), daemon=True),
        threading.Thread(target=work, args=(b, a, "b then a"), daemon=True),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(finished) == ["a then b", "b then a"]


def test_a_value_is_let_go_once_its_last_reader_has_run():
    """A chain of five ReLUs, relu1's output also a network output: each intermediate is dropped after the
    layer that reads it last (holding all to the end of the run made every layer write memory long out of
    cache), in the first run and in the runs after, while an output that later layers read is kept."""
    import weakref

    builder = trt.Builder(logger())
    net = builder.create_network(0)
    x = net.add_input("x", trt.float32, (64,))
    tensors = [x]
    for i in range(5):
        layer = net.add_activation(tensors[-1], trt.ActivationType.RELU)
        layer.name = f"relu{i}"
        tensors.append(layer.get_output(0))
    net.mark_output(tensors[2])
    net.mark_output(tensors[-1])
    prepared = Interpreter(net)
    feed = {"x": np.linspace(-1, 1, 64, dtype=np.float32)}
    for _ in range(3):
        made: list[weakref.ref] = []
        alive_at: list[list[bool]] = []

        def trace(name, _type, outputs, made=made, alive_at=alive_at):
            alive_at.append([ref() is not None for ref in made])
            made.append(weakref.ref(outputs[0]))

        out = prepared.run(feed, trace=trace)
        # When relu4 has run: relu0's output (read last by relu1) and relu2's (by relu3) are gone; relu1's, a network
        # output, stays, and relu3's is dropped only once relu4, its reader, is done.
        assert alive_at[4] == [False, True, False, True]
        np.testing.assert_array_equal(out[tensors[2].name], np.maximum(feed["x"], 0))
        np.testing.assert_array_equal(out[tensors[-1].name], np.maximum(feed["x"], 0))
