"""Dynamic sequence length: `seq_len=(min, opt, max)` gives ONE network (and engine) for every length in the
range, as `batch_size=(min, opt, max)` does for the batch. BERT and GPT-2 (small configurations of the real
architectures) run at two lengths from one emitted network in the interpreter, against transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import trtnet
from trtnet.errors import ConfigError, EngineError, NetworkError
from trtnet.export.triton_config import signature
from trtnet.nn.module import Input
from trtnet.parity import rel_error
from trtnet.runtime.bindings import check_call
from trtnet.runtime.sidecar import TensorSpec, check_metadata
from trtnet.zoo import bert_base_uncased, gpt2

transformers = pytest.importorskip("transformers", reason="transformers is the PyTorch source of BERT and GPT-2")
torch = pytest.importorskip("torch", reason="transformers runs on torch")

BERT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=48,
    vocab_size=50,
    max_position_embeddings=40,
)
GPT2 = dict(n_embd=32, n_layer=2, n_head=2, n_positions=40, vocab_size=50)


def token_inputs(seq: int, with_types: bool) -> list[np.ndarray]:
    """Batch 3; the middle row right-padded over its last third."""
    rng = np.random.default_rng(seq)
    ids = rng.integers(0, 50, (3, seq)).astype(np.int32)
    mask = np.ones((3, seq), np.int32)
    mask[1, seq - seq // 3 :] = 0
    types = np.repeat((np.arange(seq) >= seq // 2).astype(np.int32)[None], 3, 0)
    return [ids, mask, types] if with_types else [ids, mask]


def bert_source():
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**BERT)).eval()
    return model, bert_base_uncased, BERT, True


def gpt2_source():
    torch.manual_seed(0)
    model = transformers.GPT2Model(transformers.GPT2Config(attn_implementation="eager", **GPT2)).eval()
    return model, gpt2, GPT2, False


def hf(model, inputs: list[np.ndarray]) -> np.ndarray:
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        out = model(**{n: torch.from_numpy(x).long() for n, x in zip(names, inputs)})
    return out.last_hidden_state.numpy()


@pytest.mark.parametrize("fused", [True, False], ids=["attention_layer", "matmul_softmax"])
@pytest.mark.parametrize("make", [bert_source, gpt2_source], ids=["bert", "gpt2"])
def test_one_network_runs_at_two_lengths(make, fused):
    source, entry, config, with_types = make()
    state = {k: v.numpy() for k, v in source.state_dict().items()}
    net = trtnet.emit(entry(weights=state, config=config, seq_len=(4, 16, 32)), (1, 2, 4), fused_attention=fused)
    assert [(s.shape, s.min_shape, s.max_shape) for s in net.inputs[:2]] == [((2, 16), (1, 4), (4, 32))] * 2
    assert net.outputs[0].shape == (-1, -1, 32)
    for seq in (7, 29):
        inputs = token_inputs(seq, with_types)
        got = trtnet.reference(net, *inputs)[0]
        assert got.shape == (3, seq, 32)
        assert rel_error(got, hf(source, inputs)) <= 1e-4


@pytest.mark.parametrize("entry, config", [(bert_base_uncased, BERT), (gpt2, GPT2)], ids=["bert", "gpt2"])
def test_fp16_engine_for_a_range_of_lengths(entry, config, tmp_path):
    engine = trtnet.build(
        entry(config=config, seq_len=(8, 32, 40)), batch_size=(1, 4, 8), precision="fp16", cache=False
    )
    assert engine.dynamic
    assert engine.inputs[0].allowed() == "[1..8, 8..40]"
    path = engine.save(tmp_path / "e.plan")
    meta = json.loads((tmp_path / "e.plan.json").read_text())
    assert meta["inputs"][0]["min_shape"] == [1, 8] and meta["inputs"][0]["max_shape"] == [8, 40]
    sig = signature(meta)  # Triton: the batcher drives dim 0; the length is -1 (any in the profile)
    assert sig.max_batch_size == 8 and sig.inputs[0] == ("input_ids", "TYPE_INT32", (-1,))
    assert sig.outputs[0] == ("last_hidden_state", "TYPE_FP32", (-1, 32))
    loaded = trtnet.Engine.load(path)
    assert loaded.inputs == engine.inputs
    ok = token_inputs(20, entry is bert_base_uncased)
    loaded.check_inputs(ok)  # any length in range is accepted before any CUDA call
    with pytest.raises(
        EngineError,
        match=r"input 'input_ids': shape \[3, 41\] given, the engine takes \[1\.\.8, "
        r"8\.\.40\]",
    ):
        loaded.check_inputs(token_inputs(41, entry is bert_base_uncased))


def test_static_engines_keep_their_sidecar_format():
    """Only an input with a dynamic non-batch dim writes min_shape/max_shape: other sidecars are as before, and
    sidecars without those fields load as they always did."""
    spec = TensorSpec("x", (2, 3), "float32", 1, 4)
    plan = trtnet.runtime.plan.Plan(b"p", inputs=[spec], outputs=[TensorSpec("y", (-1, 3))])
    meta = plan.metadata()
    assert set(meta["inputs"][0]) == {"name", "shape", "dtype", "min_batch", "max_batch"}
    assert TensorSpec(**check_metadata(meta, "e.plan.json")["inputs"][0]) == spec
    assert spec.allowed() == "[1..4, 3]"
    call = check_call([spec], [], 0, [np.zeros((3, 3), np.float32)])
    assert call.batch == 3


@pytest.mark.parametrize("entry", [bert_base_uncased, gpt2], ids=["bert", "gpt2"])
@pytest.mark.parametrize("bad", [(0, 8, 16), (16, 8, 32), (8, 16, 2000), (8, 16), 0, 2000, "128", True])
def test_bad_seq_len_is_a_config_error(entry, bad):
    limit = "max_position_embeddings 512" if entry is bert_base_uncased else "n_positions 1024"
    with pytest.raises(
        ConfigError,
        match=rf"seq_len .* is out of range; it must be a length from 1 to {limit}, or "
        r"\(min, opt, max\) lengths with 1 <= min <= opt <= max <= \d+",
    ):
        entry(seq_len=bad)


def test_input_dims_are_checked():
    assert Input("ids", ((4, 8, 16), 3)).shape_range() == ((4, 3), (8, 3), (16, 3))
    with pytest.raises(
        NetworkError,
        match=r"input 'ids': dim \(8, 4, 16\) is neither a size >= 1 nor a \(min, "
        r"opt, max\) range with 1 <= min <= opt <= max",
    ):
        Input("ids", ((8, 4, 16),))


@pytest.mark.parametrize(
    "low, high",
    [([1, 8], [8]), ([1, 0], [8, 40]), ([1, 50], [8, 40]), ([2, 8], [8, 40]), ("1,8", [8, 40]), ([1, 8], None)],
)
def test_malformed_length_ranges_in_a_sidecar_are_refused(low, high):
    spec = TensorSpec("ids", (4, 32), "int32", 1, 8, (1, 8), (8, 40))
    meta = trtnet.runtime.plan.Plan(b"p", inputs=[spec], outputs=[TensorSpec("y", (-1, -1, 4))]).metadata()
    assert TensorSpec(**check_metadata(meta, "e.plan.json")["inputs"][0]) == spec
    meta["inputs"][0].update(min_shape=low, max_shape=high)
    with pytest.raises(
        EngineError,
        match=r"e\.plan\.json: malformed metadata: inputs\[0\]\.min_shape/max_shape is "
        r".*, expected lists of 2 whole numbers with min_shape <= shape <= max_shape",
    ):
        check_metadata(meta, "e.plan.json")
