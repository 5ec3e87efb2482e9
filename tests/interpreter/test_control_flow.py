"""Loops and conditionals (trtnet/interpreter/control.py, regions.py): hand-built TensorRT networks checked
against numpy written here, and ONNX If/Loop/Scan/LSTM/GRU models checked against onnxruntime."""

from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest

import trtnet
from tests.interpreter.cases import F32_TOL, Net, rand, trt
from trtnet.cli import main
from trtnet.errors import InterpreterError
from trtnet.interpreter import layer_types_supported, run_network, unsupported
from trtnet.interpreter.checks import layer_type_name
from trtnet.onnx.check import check_onnx

E = trt.ElementWiseOperation
CONTROL = {
    "TRIP_LIMIT",
    "RECURRENCE",
    "ITERATOR",
    "LOOP_OUTPUT",
    "CONDITION",
    "CONDITIONAL_INPUT",
    "CONDITIONAL_OUTPUT",
}


def _close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, **F32_TOL)


def _builds(n: Net) -> None:
    """TensorRT itself accepts the network (TensorRT for RTX builds without a GPU): the test's network is one
    TensorRT would run, not only one the interpreter does."""
    config = Net.builder.create_builder_config()
    assert Net.builder.build_serialized_network(n.net, config) is not None


def _elementwise(n: Net, a, b, op) -> object:
    return n.net.add_elementwise(a, b, op).get_output(0)


def test_every_control_flow_layer_type_is_supported() -> None:
    assert CONTROL <= layer_types_supported()


# --- loops ----------------------------------------------------------------------------------------------


def _scan_loop(n: Net, x, h0, trips: int, length: int):
    """h <- 0.5 h + x[t] over the rows of x; returns (loop, recurrence, next value, trip count tensor)."""
    loop = n.net.add_loop()
    count = n.const(np.array(trips, np.int32))
    loop.add_trip_limit(count, trt.TripLimit.COUNT)
    rec = loop.add_recurrence(h0)
    row = loop.add_iterator(x, 0, False).get_output(0)
    half = n.const(np.full((3,), 0.5, np.float32))
    step = n.net.add_elementwise(_elementwise(n, rec.get_output(0), half, E.PROD), row, E.SUM)
    step.name = "next_h"
    nxt = step.get_output(0)
    rec.set_input(1, nxt)
    return loop, rec, nxt, n.const(np.array(length, np.int32))


def test_count_loop_with_each_output_kind() -> None:
    n = Net()
    x, h0 = rand(4, 3), rand(3)
    loop, rec, nxt, length = _scan_loop(n, n.input("x", x.shape), n.input("h0", h0.shape), 4, 4)
    last = loop.add_loop_output(rec.get_output(0), trt.LoopOutput.LAST_VALUE)
    cat = loop.add_loop_output(nxt, trt.LoopOutput.CONCATENATE, 0)
    cat.set_input(1, length)
    rev = loop.add_loop_output(nxt, trt.LoopOutput.REVERSE, 1)
    rev.set_input(1, length)
    seen = loop.add_loop_output(rec.get_output(0), trt.LoopOutput.CONCATENATE, 1)  # the state each turn begins with
    seen.set_input(1, length)
    n.mark(last.get_output(0), cat.get_output(0), rev.get_output(0), seen.get_output(0))
    _builds(n)
    assert unsupported(n.net) == []
    got = n.run(x=x, h0=h0)
    h, after, before = h0.astype(np.float64), [], []
    for t in range(4):
        before.append(h)
        h = 0.5 * h + x[t]
        after.append(h)
    _close(got[0], h)
    _close(got[1], np.stack(after, 0))
    _close(got[2], np.stack(after[::-1], 1))
    _close(got[3], np.stack(before, 1))


def test_reverse_iterator_on_a_later_axis_and_a_longer_output() -> None:
    n = Net()
    y = rand(2, 5)
    loop = n.net.add_loop()
    loop.add_trip_limit(n.const(np.array(5, np.int32)), trt.TripLimit.COUNT)
    column = loop.add_iterator(n.input("y", y.shape), 1, True).get_output(0)  # columns 4, 3, ..., 0
    doubled = _elementwise(n, column, column, E.SUM)
    out = loop.add_loop_output(doubled, trt.LoopOutput.CONCATENATE, 1)
    out.set_input(1, n.const(np.array(7, np.int32)))  # longer than the trip count: TensorRT leaves the rest undefined
    n.mark(out.get_output(0))
    (got,) = n.run(y=y)
    assert got.shape == (2, 7)
    _close(got[:, :5], 2.0 * y[:, ::-1].astype(np.float64))


def test_a_negative_output_length_is_said_so() -> None:
    """An int64 ONNX trip count past int32's range reaches the loop output's length wrapped below 0; the run said
    "the loop ran 0 iterations, more than the output's length -1"."""
    n = Net()
    loop = n.net.add_loop()
    loop.add_trip_limit(n.input("trips", (), trt.int32), trt.TripLimit.COUNT)
    x = n.input("x", (3,))
    out = loop.add_loop_output(_elementwise(n, x, x, E.SUM), trt.LoopOutput.CONCATENATE, 0)
    out.set_input(1, n.input("length", (), trt.int32))
    n.mark(out.get_output(0))
    with pytest.raises(InterpreterError, match=r"the output's length is -1, below 0 \(an int64 count beyond"):
        n.run(trips=np.array(0, np.int32), x=rand(3), length=np.array(-1, np.int32))


def _while_loop(n: Net, x, limit):
    """i <- i + 1, acc <- 2 acc while i < limit; returns the loop outputs (i, acc) after the last turn."""
    loop = n.net.add_loop()
    i = loop.add_recurrence(n.const(np.array(0, np.int32)))
    acc = loop.add_recurrence(x)
    loop.add_trip_limit(_elementwise(n, i.get_output(0), limit, E.LESS), trt.TripLimit.WHILE)
    i.set_input(1, _elementwise(n, i.get_output(0), n.const(np.array(1, np.int32)), E.SUM))
    acc.set_input(1, _elementwise(n, acc.get_output(0), acc.get_output(0), E.SUM))
    return [loop.add_loop_output(r.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0) for r in (i, acc)]


@pytest.mark.parametrize("limit", [0, 1, 5])
def test_while_loop_runs_until_its_condition_fails(limit: int) -> None:
    n = Net()
    x = rand(3)
    n.mark(*_while_loop(n, n.input("x", x.shape), n.input("limit", (), trt.int32)))
    got = n.run(x=x, limit=np.array(limit, np.int32))
    assert got[0].dtype == np.int32 and int(got[0]) == limit  # the state after the last turn, not before it
    _close(got[1], x.astype(np.float64) * 2.0**limit)


def test_loop_nested_in_a_loop() -> None:
    n = Net()
    x = rand(3, 4)
    outer = n.net.add_loop()
    outer.add_trip_limit(n.const(np.array(3, np.int32)), trt.TripLimit.COUNT)
    row = outer.add_iterator(n.input("x", x.shape), 0, False).get_output(0)  # (4,)
    inner = n.net.add_loop()
    inner.add_trip_limit(n.const(np.array(4, np.int32)), trt.TripLimit.COUNT)
    total = inner.add_recurrence(n.const(np.zeros((), np.float32)))
    item = inner.add_iterator(row, 0, False).get_output(0)
    total.set_input(1, _elementwise(n, total.get_output(0), _elementwise(n, item, item, E.PROD), E.SUM))
    squares = inner.add_loop_output(total.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0)
    out = outer.add_loop_output(squares, trt.LoopOutput.CONCATENATE, 0)
    out.set_input(1, n.const(np.array(3, np.int32)))
    n.mark(out.get_output(0))
    _builds(n)
    (got,) = n.run(x=x)
    _close(got, (x.astype(np.float64) ** 2).sum(axis=1))


def test_an_iterator_past_its_end_is_an_error() -> None:
    n = Net()
    x = rand(2, 3)
    loop = n.net.add_loop()
    loop.add_trip_limit(n.const(np.array(3, np.int32)), trt.TripLimit.COUNT)
    it = loop.add_iterator(n.input("x", x.shape), 0, False)
    it.name = "rows"
    out = loop.add_loop_output(it.get_output(0), trt.LoopOutput.CONCATENATE, 0)
    out.set_input(1, n.const(np.array(3, np.int32)))
    n.mark(out.get_output(0))
    with pytest.raises(InterpreterError, match=r"layer 'rows' \(ITERATOR\): iteration 2 runs past the end"):
        n.run(x=x)


def test_more_iterations_than_the_output_length_is_an_error() -> None:
    n = Net()
    x, h0 = rand(4, 3), rand(3)
    loop, _rec, nxt, length = _scan_loop(n, n.input("x", x.shape), n.input("h0", h0.shape), 4, 2)
    out = loop.add_loop_output(nxt, trt.LoopOutput.CONCATENATE, 0)
    out.set_input(1, length)
    out.name = "stacked"
    n.mark(out.get_output(0))
    with pytest.raises(InterpreterError, match=r"'stacked' \(LOOP_OUTPUT\): the loop ran 4 iterations, more than"):
        n.run(x=x, h0=h0)


def test_a_body_value_read_outside_its_loop_is_named() -> None:
    """Only loop outputs carry values out (TensorRT refuses the rest too); the interpreter says which layer."""
    n = Net()
    x, h0 = rand(4, 3), rand(3)
    loop, rec, nxt, _ = _scan_loop(n, n.input("x", x.shape), n.input("h0", h0.shape), 4, 4)
    n.mark(loop.add_loop_output(rec.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0), nxt)
    with pytest.raises(
        InterpreterError, match=r"'next_h' \(ELEMENTWISE\) is inside loop .*, but the network's outputs read"
    ):
        n.run(x=x, h0=h0)


# --- conditionals ---------------------------------------------------------------------------------------


def _conditional(n: Net, cond, x):
    """exp(x) when cond, else 3 x (a constant only the false branch reads)."""
    branch = n.net.add_if_conditional()
    branch.set_condition(cond)
    inside = branch.add_input(x).get_output(0)
    exp = n.net.add_unary(inside, trt.UnaryOperation.EXP)
    exp.name = "then_exp"
    three = n.net.add_constant((1, 1), n.weights(np.array([[3.0]], np.float32)))
    three.name = "else_three"
    scaled = n.net.add_elementwise(inside, three.get_output(0), E.PROD)
    scaled.name = "else_scale"
    return branch.add_output(exp.get_output(0), scaled.get_output(0)).get_output(0)


@pytest.mark.parametrize("taken", [True, False])
def test_conditional_runs_only_the_branch_taken(taken: bool) -> None:
    n = Net()
    x = rand(2, 3)
    n.mark(_conditional(n, n.input("c", (), trt.bool), n.input("x", x.shape)))
    _builds(n)
    ran: list[str] = []
    got = run_network(n.net, {"c": np.array(taken), "x": x}, trace=lambda name, *_: ran.append(name))
    expected = np.exp(x.astype(np.float64)) if taken else 3.0 * x.astype(np.float64)
    _close(got[n.net.get_output(0).name], expected)
    branch_layers = {"then_exp", "else_three", "else_scale"}
    assert branch_layers & set(ran) == ({"then_exp"} if taken else {"else_three", "else_scale"})


def test_loop_inside_a_conditional_and_a_conditional_inside_a_loop() -> None:
    n = Net()
    x = rand(4, 3)
    xi, c = n.input("x", x.shape), n.input("c", (), trt.bool)
    branch = n.net.add_if_conditional()
    branch.set_condition(c)
    rows = branch.add_input(xi).get_output(0)
    loop = n.net.add_loop()
    loop.add_trip_limit(n.const(np.array(4, np.int32)), trt.TripLimit.COUNT)
    row = loop.add_iterator(rows, 0, False).get_output(0)
    # In each turn, a conditional on whether the row sums above zero: keep it, or negate it.
    positive = _elementwise(
        n,
        n.net.add_reduce(row, trt.ReduceOperation.SUM, 1, False).get_output(0),
        n.const(np.zeros((), np.float32)),
        E.GREATER,
    )
    inner = n.net.add_if_conditional()
    inner.set_condition(positive)
    kept = inner.add_input(row).get_output(0)
    flipped = n.net.add_unary(kept, trt.UnaryOperation.NEG).get_output(0)
    signed = inner.add_output(kept, flipped).get_output(0)
    stacked = loop.add_loop_output(signed, trt.LoopOutput.CONCATENATE, 0)
    stacked.set_input(1, n.const(np.array(4, np.int32)))
    n.mark(branch.add_output(stacked.get_output(0), rows).get_output(0))
    _builds(n)
    for taken in (True, False):
        (got,) = n.run(x=x, c=np.array(taken))
        expected = np.where(x.sum(axis=1, keepdims=True) > 0, x, -x) if taken else x
        _close(got, expected.astype(np.float64))


# --- ONNX control flow, parsed by TensorRT's ONNX parser, against onnxruntime ----------------------------


def _onnx():
    onnx = pytest.importorskip("onnx", reason="onnx writes the models with control flow")
    pytest.importorskip("onnxruntime", reason="onnxruntime is the other side of the comparison")
    return onnx


def _value_info(name: str, elem: int, shape: list[int]):
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, shape)


def _const(name: str, value: np.ndarray):
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value)))


def _if_model():
    """y = exp(x) if sum(x) > 0 else 3 x; the branches read x from the outer graph, as exporters write them."""
    from onnx import TensorProto as T
    from onnx import helper

    then = helper.make_graph([helper.make_node("Exp", ["x"], ["t"])], "then", [], [_value_info("t", T.FLOAT, [2, 3])])
    other = helper.make_graph(
        [_const("k", np.float32(3)), helper.make_node("Mul", ["x", "k"], ["e"])],
        "else",
        [],
        [_value_info("e", T.FLOAT, [2, 3])],
    )
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        _const("zero", np.float32(0)),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
    ]
    graph = helper.make_graph(nodes, "if", [_value_info("x", T.FLOAT, [2, 3])], [_value_info("y", T.FLOAT, [2, 3])])
    x = rand(2, 3)
    return graph, [{"x": np.abs(x)}, {"x": -np.abs(x)}]


def _loop_model():
    """A counted Loop: v <- 0.5 v + x four times; the final v and every turn's v (a scan output)."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    body = helper.make_graph(
        [
            _const("h", np.float32(0.5)),
            helper.make_node("Mul", ["v", "h"], ["vh"]),
            helper.make_node("Add", ["vh", "x"], ["v2"]),
            helper.make_node("Identity", ["cond"], ["cond2"]),
            helper.make_node("Identity", ["v2"], ["each"]),
        ],
        "body",
        [_value_info("i", T.INT64, []), _value_info("cond", T.BOOL, []), _value_info("v", T.FLOAT, [3])],
        [_value_info("cond2", T.BOOL, []), _value_info("v2", T.FLOAT, [3]), _value_info("each", T.FLOAT, [3])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "go", "v0"], ["v_final", "turns"], body=body)],
        "loop",
        [_value_info("x", T.FLOAT, [3]), _value_info("v0", T.FLOAT, [3])],
        [_value_info("v_final", T.FLOAT, [3]), _value_info("turns", T.FLOAT, [4, 3])],
        [numpy_helper.from_array(np.array(4, np.int64), "M"), numpy_helper.from_array(np.array(True), "go")],
    )
    return graph, [{"x": rand(3), "v0": rand(3)}]


def _while_model():
    """A Loop ended by its condition: v <- 2 v while sum(v) < 50 (at most 100 turns)."""
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    body = helper.make_graph(
        [
            helper.make_node("Add", ["v", "v"], ["v2"]),
            helper.make_node("ReduceSum", ["v2"], ["s"], keepdims=0),
            _const("limit", np.float32(50)),
            helper.make_node("Less", ["s", "limit"], ["cond2"]),
        ],
        "body",
        [_value_info("i", T.INT64, []), _value_info("cond", T.BOOL, []), _value_info("v", T.FLOAT, [3])],
        [_value_info("cond2", T.BOOL, []), _value_info("v2", T.FLOAT, [3])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "go", "v0"], ["v_final"], body=body)],
        "while",
        [_value_info("v0", T.FLOAT, [3])],
        [_value_info("v_final", T.FLOAT, [3])],
        [numpy_helper.from_array(np.array(100, np.int64), "M"), numpy_helper.from_array(np.array(True), "go")],
    )
    return graph, [{"v0": np.abs(rand(3)) + 0.1}, {"v0": np.full(3, 40, np.float32)}]


def _scan_model():
    """Scan: s <- s + a_t over A forwards, o_t = s * b_t with B read backwards, O written backwards."""
    from onnx import TensorProto as T
    from onnx import helper

    body = helper.make_graph(
        [helper.make_node("Add", ["s", "a"], ["s2"]), helper.make_node("Mul", ["s2", "b"], ["o"])],
        "body",
        [_value_info("s", T.FLOAT, [3]), _value_info("a", T.FLOAT, [3]), _value_info("b", T.FLOAT, [3])],
        [_value_info("s2", T.FLOAT, [3]), _value_info("o", T.FLOAT, [3])],
    )
    scan = helper.make_node(
        "Scan",
        ["s0", "A", "B"],
        ["s_final", "O"],
        body=body,
        num_scan_inputs=2,
        scan_input_directions=[0, 1],
        scan_output_directions=[1],
    )
    graph = helper.make_graph(
        [scan],
        "scan",
        [_value_info("s0", T.FLOAT, [3]), _value_info("A", T.FLOAT, [5, 3]), _value_info("B", T.FLOAT, [5, 3])],
        [_value_info("s_final", T.FLOAT, [3]), _value_info("O", T.FLOAT, [5, 3])],
    )
    return graph, [{"s0": rand(3), "A": rand(5, 3), "B": rand(5, 3)}]


def _onnxruntime_outputs(path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


@pytest.mark.parametrize(
    ("make", "kinds"),
    [
        (_if_model, {"CONDITION", "CONDITIONAL_INPUT", "CONDITIONAL_OUTPUT"}),
        (_loop_model, {"TRIP_LIMIT", "RECURRENCE", "LOOP_OUTPUT"}),
        (_while_model, {"TRIP_LIMIT", "RECURRENCE", "LOOP_OUTPUT"}),
        (_scan_model, {"TRIP_LIMIT", "RECURRENCE", "ITERATOR", "LOOP_OUTPUT"}),
    ],
    ids=["If", "Loop", "Loop-while", "Scan"],
)
def test_onnx_control_flow_runs_like_onnxruntime(make, kinds, tmp_path) -> None:
    onnx = _onnx()
    graph, feeds_list = make()
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    path = tmp_path / f"{graph.name}.onnx"
    onnx.save(model, str(path))
    network = trtnet.parse_onnx(path).network
    # The parser made TensorRT control flow of it (not a constant-folded or unrolled graph).
    assert kinds <= {layer_type_name(network.get_layer(i)) for i in range(network.num_layers)}
    assert unsupported(network) == []
    for feeds in feeds_list:
        got = run_network(network, feeds)
        expected = _onnxruntime_outputs(path, feeds)
        assert list(got) == list(expected)
        for name, value in got.items():
            _close(value, expected[name].astype(np.float64))


def _recurrent(kind: str, **kwargs):
    """A torch.nn recurrent layer (LSTM, GRU or RNN) returning its sequence and its last hidden state."""
    torch = pytest.importorskip("torch", reason="the recurrent models are exported from torch.nn")

    class Recurrent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(4, 5, **kwargs)

        def forward(self, x):
            sequence, state = self.rnn(x)
            return sequence, state[0] if isinstance(state, tuple) else state

    torch.manual_seed(0)
    return Recurrent().eval(), torch.randn(6, 2, 4)


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [("LSTM", {"num_layers": 2, "bidirectional": True}), ("GRU", {"bidirectional": True}), ("RNN", {})],
    ids=["LSTM-2-layer-bidirectional", "GRU-bidirectional", "RNN"],
)
def test_torch_recurrent_layers_check_against_onnxruntime(kind, kwargs, tmp_path) -> None:
    """torch.nn.LSTM/GRU/RNN exported to ONNX, which TensorRT's parser turns into loops (a reverse iterator and
    a REVERSE output for the backward direction), checked end to end by `check_onnx` against onnxruntime."""
    _onnx()
    model, x = _recurrent(kind, **kwargs)
    torch = pytest.importorskip("torch")
    path = tmp_path / f"{kind}.onnx"
    torch.onnx.export(
        model, (x,), str(path), input_names=["x"], output_names=["y", "h"], opset_version=17, dynamo=False
    )
    report = check_onnx(path)
    assert report.compared and [o.name for o in report.outputs] == ["y", "h"]
    assert all(o.agreement.ok for o in report.outputs), report.lines()
    # And the interpreter agrees with the PyTorch source itself.
    got = run_network(trtnet.parse_onnx(path).network, {"x": x.numpy()})
    with torch.no_grad():
        reference = model(x)
    for value, expected in zip(got.values(), reference):
        _close(value, expected.numpy().astype(np.float64))


def test_trtnet_check_runs_a_model_with_a_loop_from_the_command_line(tmp_path, capsys) -> None:
    onnx = _onnx()
    graph, _ = _scan_model()
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(tmp_path / "s.onnx"))
    assert main(["check", str(tmp_path / "s.onnx")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("all supported by the interpreter")
    assert out[-1] == "within tolerance"


def test_conditionals_nested_past_the_recursion_limit_are_refused_with_a_typed_error() -> None:
    """150 conditionals, each inside the last, with the recursion limit 100 frames above the caller's: the run says
    what is too deep and what limits it (a bare RecursionError did, from 600 deep at the default limit)."""
    n = Net()
    value, condition = n.input("x", (2,)), n.input("c", (), trt.bool)
    opened = []
    for _ in range(150):
        conditional = n.net.add_if_conditional()
        conditional.set_condition(condition)
        value = conditional.add_input(value).get_output(0)
        opened.append((conditional, value))
    value = n.net.add_unary(value, trt.UnaryOperation.NEG).get_output(0)
    for conditional, entered in reversed(opened):
        other = n.net.add_unary(entered, trt.UnaryOperation.ABS).get_output(0)
        value = conditional.add_output(value, other).get_output(0)
    n.mark(value)
    feeds = {"x": np.array([-1.0, 2.0], np.float32), "c": np.array(True)}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        with pytest.raises(InterpreterError, match=r"nested deeper .* recursion limit"):
            run_network(n.net, feeds)
    finally:
        sys.setrecursionlimit(limit)
    (got,) = run_network(n.net, feeds).values()  # at the default limit it runs
    np.testing.assert_array_equal(got, [1.0, -2.0])
