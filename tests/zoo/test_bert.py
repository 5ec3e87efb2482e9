"""BERT-base end to end: transformers' BertModel weights as saved by a user, loaded strictly, parity on a
padded batch with mixed token types, engines built, layer count, and checkpoints as downloaded."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from tests.helpers import assert_engine_matches
from trtnet.errors import ConfigError
from trtnet.parity import export_state, rel_error
from trtnet.zoo import bert_base_uncased

transformers = pytest.importorskip("transformers", reason="transformers is the PyTorch source of BERT")
torch = pytest.importorskip("torch", reason="transformers runs on torch")

ONNX_LAYERS = 987  # torch.onnx.export (opset 18) of BertModel, parsed by TensorRT's ONNX parser


def bert_inputs(batch: int = 2, seq: int = 128, vocab: int = 30522) -> tuple[np.ndarray, ...]:
    """Random ids; the last sample padded after 90 tokens; token type 1 from the middle on."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, vocab, (batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    mask[-1, 90:] = 0
    types = np.zeros((batch, seq), np.int32)
    types[:, seq // 2 :] = 1
    return ids, mask, types


def hf_forward(model, ids, mask, types, device: str = "cpu") -> list[np.ndarray]:
    t = [torch.from_numpy(a).to(device) for a in (ids, mask, types)]
    with torch.no_grad():
        out = model.to(device)(input_ids=t[0], attention_mask=t[1], token_type_ids=t[2])
    return [out.last_hidden_state.float().cpu().numpy(), out.pooler_output.float().cpu().numpy()]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig()).eval()
    path = export_state(model, tmp_path_factory.mktemp("w") / "bert.safetensors")
    inputs = bert_inputs()
    return model, path, inputs, hf_forward(model, *inputs)


def test_bert_matches_transformers(source):
    _, path, inputs, want = source
    got = trtnet.reference(bert_base_uncased(weights=path), *inputs)
    assert [g.shape for g in got] == [(2, 128, 768), (2, 768)]
    for g, w in zip(got, want):
        assert rel_error(g, w) <= 1e-4


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("fused", [True, False], ids=["attention_layer", "matmul_softmax"])
def test_padding_does_not_leak(fused, precision):
    """Changing the ids under the mask changes nothing else: padded keys weigh exactly zero, in fp16 too,
    where an additive finfo(float32).min mask would overflow (two layers)."""
    model = bert_base_uncased(config={"num_hidden_layers": 2})
    ids, mask, types = bert_inputs()
    other = ids.copy()
    other[-1, 90:] = (other[-1, 90:] + 7) % 30522
    a = trtnet.reference(model, ids, mask, types, fused_attention=fused, precision=precision)[0]
    b = trtnet.reference(model, other, mask, types, fused_attention=fused, precision=precision)[0]
    assert np.isfinite(a).all() and np.isfinite(b).all()
    np.testing.assert_array_equal(a[-1, :90], b[-1, :90])
    assert np.abs(a[-1, 90:] - b[-1, 90:]).max() > 1e-2  # the padded positions themselves do change


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_bert_engine_builds_and_serializes(source, precision, tmp_path):
    engine = trtnet.build(bert_base_uncased(weights=source[1]), batch_size=2, precision=precision)
    path = engine.save(tmp_path / f"bert_{precision}.plan")
    assert path.stat().st_size == len(engine.plan) > 1_000_000
    assert [s.name for s in engine.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [s.dtype for s in engine.inputs] == ["int32"] * 3
    assert [s.name for s in engine.outputs] == ["last_hidden_state", "pooler_output"]


@pytest.mark.parametrize("precision, norm_fp32", [("fp32", True), ("fp16", False)])
def test_bert_has_a_third_of_the_onnx_layers(precision, norm_fp32):
    # fp16 with LayerNorm kept in fp32 (the default) adds a cast on each side of the 25 LayerNorms.
    net = trtnet.emit(bert_base_uncased(weights=None), 2, precision=precision, norm_fp32=norm_fp32)
    assert net.num_layers <= ONNX_LAYERS // 3


def test_pretraining_checkpoint_with_config_file_loads(tmp_path):
    """A `BertForPreTraining` file as downloaded: `bert.` prefix, a `cls.*` head, the position_ids buffer,
    TensorFlow-era LayerNorm names; the architecture comes from its config.json."""
    from safetensors.torch import save_file

    config = transformers.BertConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        vocab_size=100,
        max_position_embeddings=40,
        type_vocab_size=3,
        layer_norm_eps=1e-6,
        hidden_act="gelu_new",
    )
    torch.manual_seed(0)
    full = transformers.BertForPreTraining(config).eval()
    state = {k: v.detach().clone() for k, v in full.state_dict().items()}  # clone: the head ties to embeddings
    state["bert.embeddings.position_ids"] = torch.arange(40)[None]
    state["bert.encoder.layer.1.output.LayerNorm.gamma"] = state.pop("bert.encoder.layer.1.output.LayerNorm.weight")
    state["bert.encoder.layer.1.output.LayerNorm.beta"] = state.pop("bert.encoder.layer.1.output.LayerNorm.bias")
    save_file(state, str(tmp_path / "model.safetensors"))
    config.to_json_file(str(tmp_path / "config.json"))
    with pytest.warns(UserWarning, match=r"keys not used by Bert were skipped \(e\.g\. cls\."):
        model = bert_base_uncased(weights=tmp_path / "model.safetensors", config=tmp_path / "config.json", seq_len=16)
    inputs = bert_inputs(2, 16, vocab=100)
    inputs[2][0, 3:] = 2  # a third token type
    got = trtnet.reference(model, *inputs)
    want = hf_forward(full.bert, *inputs)
    for g, w in zip(got, want):
        assert rel_error(g, w) <= 1e-4


def test_config_dict_and_bad_config():
    model = bert_base_uncased(
        config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 48,
            "vocab_size": 50,
        },
        seq_len=8,
    )
    assert model.state_dict()["encoder.layer.0.intermediate.dense.weight"].shape == (48, 32)
    with pytest.raises(
        ConfigError,
        match=r"BERT config: hidden_act = 'swishy' is not allowed: expected "
        r"one of gelu, gelu_new, .*, tanh$",
    ):
        bert_base_uncased(config={"hidden_act": "swishy"})
    with pytest.raises(
        ConfigError,
        match="BERT config: hidden_size 100 does not split into num_attention_heads 12; it must be a multiple of it",
    ):
        bert_base_uncased(config={"hidden_size": 100})
    for bad in (0, 513):
        with pytest.raises(
            ConfigError,
            match=f"BERT: seq_len {bad} is out of range; it must be a length from 1 to max_position_embeddings 512, or",
        ):
            bert_base_uncased(seq_len=bad)
    with pytest.raises(trtnet.WeightsError, match="missing key: encoder.layer.11.output.dense.weight"):
        state = bert_base_uncased(weights=None).state_dict()
        del state["encoder.layer.11.output.dense.weight"]
        bert_base_uncased(weights=state)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_bert_engine_matches_transformers_on_gpu(source, precision):
    model, path, inputs, _ = source
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    want = hf_forward(model, *inputs, device="cuda")
    engine = trtnet.build(bert_base_uncased(weights=path), batch_size=2, precision=precision)
    assert_engine_matches(engine(*inputs), want, precision)
