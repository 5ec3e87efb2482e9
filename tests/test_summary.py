"""The network summary: weights and FLOPs read back from TensorRT, checked against counts made by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trtnet import nn, ops
from trtnet.backend import get_trt, logger
from trtnet.errors import NetworkError
from trtnet.graph import Graph, Policy, current_graph
from trtnet.nn.module import Input
from trtnet.parity import sample_inputs
from trtnet.summary import summarize
from trtnet.tensor import Tensor


def _network(fn, *shapes):
    trt = get_trt()
    network = trt.Builder(logger()).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    graph = Graph(network, Policy())
    with graph:
        out = fn(*[Tensor(network.add_input(f"x{i}", trt.float32, s)) for i, s in enumerate(shapes)])
        network.mark_output(out.itensor)
    return network, graph


def test_conv_counts_kernel_bias_and_multiply_adds():
    w = np.ones((8, 2, 3, 3), np.float32)  # groups=2: each output sees 4/2 channels x 3x3
    network, _ = _network(
        lambda x: ops.conv2d(x, w, np.ones(8, np.float32), stride=2, padding=1, groups=2), (1, 4, 10, 10)
    )
    (row,) = summarize(network).rows
    assert (row.type, row.shape, row.params) == ("CONVOLUTION", (1, 8, 5, 5), 8 * 2 * 9 + 8)
    assert row.flops == 2 * (8 * 5 * 5) * (2 * 9)


def test_matmul_flops_follow_the_transpose():
    network, _ = _network(lambda x, y: ops.matmul(x, y, transpose_a=True), (3, 5, 7), (3, 5, 6))
    (row,) = summarize(network).rows
    assert row.shape == (3, 7, 6) and row.flops == 2 * 3 * 7 * 6 * 5
    w = np.ones((1, 6, 4), np.float32)  # [out, in] as PyTorch's Linear stores it, used transposed
    network, _ = _network(lambda x: ops.matmul(x, ops.constant(w), transpose_b=True), (2, 3, 4))
    summary = summarize(network)
    assert [r.type for r in summary.rows] == ["CONSTANT", "MATRIX_MULTIPLY"]
    assert summary.params == 6 * 4 and summary.flops == 2 * 2 * 3 * 6 * 4


def test_table_has_a_row_per_layer_and_the_totals():
    network, _ = _network(lambda x: ops.relu(ops.conv2d(x, np.ones((2, 1, 1, 1), np.float32))), (1, 1, 4, 4))
    lines = summarize(network).table().splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "params"]
    assert len(lines) == 2 + 2 + 2  # header and rule, two layers, rule and totals
    assert lines[-1] == (
        "total: 2 layers, 2 parameters, 0.00 GFLOPs (conv, matmul and attention; a multiply-add counted as 2)"
    )


def test_products_of_dynamic_shape_are_said_to_be_uncounted_not_zero():
    """A sequence range made every product's shape dynamic: BERT's summary said 0.00 GFLOPs, as if it computed
    nothing."""
    w = np.ones((1, 6, 4), np.float32)
    network, _ = _network(lambda x: ops.relu(ops.matmul(x, ops.constant(w), transpose_b=True)), (2, -1, 4))
    summary = summarize(network)
    assert [r.flops for r in summary.rows] == [0, None, 0] and (summary.flops, summary.uncounted) == (0, 1)
    assert summary.table().splitlines()[-1].startswith("not counted: 1 product of dynamic shape (")
    # [2, -1] x [-1, 3]: the output's shape is static, the contraction is not (it was counted as negative FLOPs).
    gram, _ = _network(lambda x: ops.matmul(x, x, transpose_b=True), (2, -1))
    assert [r.flops for r in summarize(gram).rows] == [None]
    static, _ = _network(lambda x: ops.relu(ops.matmul(x, ops.constant(w), transpose_b=True)), (2, 3, 4))
    assert summarize(static).uncounted == 0 and "not counted" not in summarize(static).table()


def test_summarize_names_what_it_takes():
    with pytest.raises(NetworkError, match=r"summarize takes a network \(trtnet.emit\(model, batch\) .*not Linear$"):
        summarize(nn.Linear(4, 4))


class _TextModel(nn.Module):
    def inputs(self) -> list[Input]:
        return [
            Input("ids", (16,), "int32", high=30522),
            Input("mask", (16,), "int32", padding_mask=True),
            Input("types", (16,), "int32"),
            Input("image", (3, 4, 4)),
        ]


def test_sample_inputs_follow_the_hints():
    ids, mask, types, image = sample_inputs(_TextModel(), batch=3, seed=0)
    assert ids.dtype == mask.dtype == types.dtype == np.int32 and image.dtype == np.float32
    assert ids.shape == (3, 16) and 0 <= ids.min() and ids.max() < 30522 and ids.max() > 1000
    assert set(np.unique(types)) == {0, 1}
    # The last row and every other one before it end in four padded positions; the others are all ones.
    assert mask[0, -4:].sum() == 0 and mask[1].sum() == 16 and mask[2, -4:].sum() == 0 and mask[:, :12].all()
    assert image.shape == (3, 3, 4, 4) and abs(float(image.mean())) < 0.5
    again = sample_inputs(_TextModel(), batch=3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (ids, mask, types, image)))
    # A sequence of one keeps its token: a row all padding has no defined output (verify gpt2 --seq-len 1 failed).
    one = [Input("mask", (1,), "int32", padding_mask=True), Input("mask2", (2,), "int32", padding_mask=True)]
    short, pair = sample_inputs(one, batch=2, seed=0)
    assert short.tolist() == [[1], [1]] and pair.tolist() == [[1, 1], [1, 0]]


def test_fused_attention_counts_both_products():
    from trtnet.backend import get_backend

    if not get_backend().has("add_attention"):
        pytest.skip(f"{get_backend()} has no fused attention layer")
    trt = get_trt()

    def attention(q, k, v):
        layer = current_graph().network.add_attention(
            q.itensor, k.itensor, v.itensor, trt.AttentionNormalizationOp.SOFTMAX, False
        )
        return Tensor(layer.get_output(0))

    network, _ = _network(attention, (2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 8))  # TensorRT: k and v alike
    rows = {r.type: r for r in summarize(network).rows}
    assert rows["ATTENTION_INPUT"].flops == 2 * (2 * 3) * 5 * 7 * (8 + 8)
    assert rows["ATTENTION_OUTPUT"].flops == 0 and rows["ATTENTION_OUTPUT"].shape == (2, 3, 5, 8)


# -- issue 20: int8/fp8 networks can be summarised ---------------------------------------------------------------


def test_cli_summary_of_an_int8_network_reads_its_calibration(tmp_path, capsys):
    import json

    import trtnet
    from trtnet.cli import main
    from trtnet.weights import init_random, save_safetensors
    from trtnet.zoo import bert_base_uncased

    config = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=50)
    model = bert_base_uncased(config=config, seq_len=8)
    init_random(model, seed=0)
    weights, config_file, cal_file = tmp_path / "w.safetensors", tmp_path / "config.json", tmp_path / "cal.json"
    save_safetensors({k: p.data for k, p in model.named_parameters()}, weights)
    config_file.write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    feeds = [rng.integers(0, 50, (2, 8)).astype(np.int32), np.ones((2, 8), np.int32), np.zeros((2, 8), np.int32)]
    cal = trtnet.calibrate(model, [feeds])
    cal.save(cal_file)
    cli = ["summary", "bert_base_uncased", "--weights", str(weights), "--config", str(config_file), "--seq-len", "8"]
    assert main([*cli, "--precision", "int8", "--calibration", str(cal_file)]) == 0
    out = capsys.readouterr().out
    n, kept = len(cal.amax), len(cal.keep)
    assert f"int8 ({n} ranges from {cal_file}, {kept} layer kept in fp16); inputs" in out
    assert "QUANTIZE" in out  # the Q/DQ pairs are in the table
    assert main([*cli, "--precision", "int8"]) == 2
    assert "--precision int8 needs --calibration FILE" in capsys.readouterr().err
    assert main([*cli, "--precision", "fp16", "--calibration", str(cal_file)]) == 2
    assert "--precision fp16 uses no activation ranges" in capsys.readouterr().err
    other = bert_base_uncased(config=config, seq_len=8)
    init_random(other, seed=1)
    save_safetensors({k: p.data for k, p in other.named_parameters()}, weights)
    assert main([*cli, "--precision", "int8", "--calibration", str(cal_file)]) == 2
    assert "measured on other weights than these" in capsys.readouterr().err
    assert main([*cli, "--precision", "int8", "--calibration", str(cal_file), "--reuse-calibration"]) == 0
