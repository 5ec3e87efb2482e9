"""GPT-2 small end to end: transformers' GPT2Model weights as saved by a user, loaded strictly, parity on a batch
with a right-padded row on both attention paths, GPT2LMHeadModel layouts, an fp16 engine, the layer count."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
import trtnet.parity
import trtnet.zoo
from trtnet.errors import ConfigError
from trtnet.parity import export_state, rel_error
from trtnet.zoo import gpt2

transformers = pytest.importorskip("transformers", reason="transformers is the PyTorch source of GPT-2")
torch = pytest.importorskip("torch", reason="transformers runs on torch")

ONNX_LAYERS = {"fp32": 1006, "fp16": 1006}  # torch.onnx.export (opset 18, eager attention), TensorRT's ONNX parser
SMALL = dict(n_embd=64, n_layer=2, n_head=4, n_positions=40, vocab_size=100)


def source_model(cls=None, **config):
    torch.manual_seed(0)
    cls = cls or transformers.GPT2Model
    model = cls(transformers.GPT2Config(attn_implementation="eager", **config)).eval()
    trtnet.parity.randomize_norm_stats(model)  # LayerNorm weights away from (1, 0), so that parity sees them
    return model


def gpt2_inputs(batch: int = 2, seq: int = 32, vocab: int = 50257, pad_from: int = 20) -> tuple[np.ndarray, ...]:
    """Random ids; the last row right-padded from `pad_from` on."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, vocab, (batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    mask[-1, pad_from:] = 0
    return ids, mask


def hf_forward(model, ids, mask) -> np.ndarray:
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask))
    return out.last_hidden_state.numpy()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The zoo entry's registered source (what `trtnet verify gpt2` runs), its LayerNorms randomised by
    trtnet.parity, called the way the CLI calls it: positionally."""
    model = trtnet.parity.torch_model("gpt2")
    path = export_state(model, tmp_path_factory.mktemp("w") / "gpt2.safetensors")
    inputs = gpt2_inputs()
    (want,) = trtnet.parity.torch_forward(model, *inputs)
    with torch.no_grad():  # the registered source is GPT2Model's own forward, called positionally
        plain = transformers.GPT2Model.forward(
            model, input_ids=torch.from_numpy(inputs[0]).long(), attention_mask=torch.from_numpy(inputs[1])
        )
    np.testing.assert_array_equal(want, plain.last_hidden_state.numpy())
    return model, path, inputs, want


def test_gpt2_small_matches_transformers(source):
    """Every position, the padded ones too (transformers lets them attend to the row's real tokens)."""
    _, path, inputs, want = source
    (got,) = trtnet.reference(gpt2(weights=path, seq_len=32), *inputs)
    assert got.shape == (2, 32, 768)
    assert rel_error(got, want) <= 1e-4


@pytest.mark.parametrize("fused", [True, False], ids=["attention_layer", "matmul_softmax"])
def test_both_attention_paths_match_transformers(fused, tmp_path):
    model = source_model(**SMALL, n_inner=96, activation_function="gelu_new")
    export_state(model, tmp_path / "w.safetensors")
    inputs = gpt2_inputs(seq=12, vocab=100, pad_from=7)
    (got,) = trtnet.reference(
        gpt2(weights=tmp_path / "w.safetensors", config=model.config.to_dict(), seq_len=12),
        *inputs,
        fused_attention=fused,
    )
    assert rel_error(got, hf_forward(model, *inputs)) <= 1e-4


def test_padding_and_future_tokens_do_not_leak():
    """Causal and padded: changing a later token changes nothing before it; padded ids change no real position."""
    model = gpt2(config=SMALL, seq_len=10)
    ids, mask = gpt2_inputs(seq=10, vocab=100, pad_from=6)
    a = trtnet.reference(model, ids, mask)[0]
    later = ids.copy()
    later[0, 7] = (later[0, 7] + 1) % 100
    later[1, 8] = (later[1, 8] + 1) % 100  # under the padding
    b = trtnet.reference(model, later, mask)[0]
    np.testing.assert_array_equal(a[0, :7], b[0, :7])
    assert np.abs(a[0, 7:] - b[0, 7:]).max() > 1e-3
    np.testing.assert_array_equal(a[1, :6], b[1, :6])


@pytest.mark.parametrize("saved", ["lm_head_copy", "wte_copy", "save_model"])
def test_lm_head_model_layouts_load(saved, tmp_path):
    """A GPT2LMHeadModel file: keys under `transformer.`, the tied lm_head/wte pair saved as either copy (or as
    safetensors' save_model picks), and the causal-mask buffers older transformers saved (`attn.bias`)."""
    from safetensors.torch import save_file, save_model

    lm = source_model(transformers.GPT2LMHeadModel, **SMALL)
    assert lm.lm_head.weight.data_ptr() == lm.transformer.wte.weight.data_ptr()  # tied
    path = tmp_path / "model.safetensors"
    if saved == "save_model":
        save_model(lm, str(path))
    else:
        state = {k: v.detach().clone() for k, v in lm.state_dict().items()}
        del state["lm_head.weight" if saved == "wte_copy" else "transformer.wte.weight"]
        state["transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 40, 40, dtype=torch.bool))
        state["transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)
        save_file(state, str(path))
    inputs = gpt2_inputs(seq=12, vocab=100, pad_from=5)
    (got,) = trtnet.reference(gpt2(weights=path, config=SMALL, seq_len=12), *inputs)
    assert rel_error(got, hf_forward(lm.transformer, *inputs)) <= 1e-4


def test_untied_lm_head_is_reported_unused(tmp_path):
    from safetensors.torch import save_file

    lm = source_model(transformers.GPT2LMHeadModel, **SMALL, tie_word_embeddings=False)
    state = {k: v.detach().clone() for k, v in lm.state_dict().items()}
    assert not torch.equal(state["lm_head.weight"], state["transformer.wte.weight"])
    save_file(state, str(tmp_path / "m.safetensors"))
    with pytest.warns(UserWarning, match=r"1 keys not used by GPT2Model were skipped \(e\.g\. lm_head\.weight\)"):
        gpt2(weights=tmp_path / "m.safetensors", config=SMALL, seq_len=8)


def test_config_file_and_bad_values(tmp_path):
    transformers.GPT2Config(**SMALL, n_inner=48).to_json_file(str(tmp_path / "config.json"))
    model = gpt2(config=tmp_path / "config.json", seq_len=8)
    assert model.state_dict()["h.1.mlp.c_fc.weight"].shape == (64, 48)  # Conv1D: [in, out]
    with pytest.raises(
        ConfigError, match="GPT-2 config: n_embd 100 does not split into n_head 12; it must be a multiple of it"
    ):
        gpt2(config={"n_embd": 100})
    with pytest.raises(
        ConfigError,
        match=r"GPT-2 config: n_head = '4' is not allowed: expected an "
        r"integer from 1 to 4096",
    ):
        gpt2(config={"num_attention_heads": "4"})  # under transformers' alias
    with pytest.raises(ConfigError, match="GPT-2 config: add_cross_attention = True is not allowed: expected false"):
        gpt2(config={"add_cross_attention": True})
    with pytest.raises(
        ConfigError, match="GPT-2: seq_len 1025 is out of range; it must be a length from 1 to n_positions 1024, or"
    ):
        gpt2(seq_len=1025)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_gpt2_has_fewer_layers_than_the_onnx_import(precision):
    net = trtnet.emit(gpt2(weights=None), 2, precision=precision)
    assert net.num_layers < ONNX_LAYERS[precision] // 2


def test_gpt2_fp16_engine_builds(source, tmp_path):
    engine = trtnet.build(gpt2(weights=source[1]), batch_size=2, precision="fp16")
    path = engine.save(tmp_path / "gpt2_fp16.plan")
    assert path.stat().st_size == len(engine.plan) > 1_000_000
    assert [(s.name, s.dtype) for s in engine.inputs] == [("input_ids", "int32"), ("attention_mask", "int32")]
    assert [(s.name, s.shape) for s in engine.outputs] == [("last_hidden_state", (2, 128, 768))]


@pytest.mark.parametrize("name", ["gpt2", "gpt2_medium", "gpt2_large", "gpt2_xl"])
def test_variant_loads_its_source_state_dict(name):
    """Each size loads its registered source's state_dict strictly (meta tensors: shapes without memory)."""
    entry = trtnet.zoo.get_entry(name)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in entry.torch_model().state_dict().items()}
    state = {k: np.broadcast_to(np.zeros((), np.float32), s) for k, s in shapes.items()}
    model = entry.fn(weights=state)
    assert {k for k, _ in model.named_parameters()} == set(shapes)
    assert model._config == entry.config


def test_a_file_of_another_size_names_the_entry_it_fits():
    """A GPT-2 small file (GPT2LMHeadModel layout) given to gpt2_medium: refused, and the refusal says which
    entry it fits (read through GPT-2's own layout conversion: `transformer.` prefix, tied head)."""
    state = {f"transformer.{k}": v for k, v in gpt2(config={"n_layer": 12}).state_dict().items()}
    state["lm_head.weight"] = state["transformer.wte.weight"]
    with pytest.raises(trtnet.WeightsError, match="looks like a gpt2 file, not gpt2_medium: load it into gpt2"):
        trtnet.zoo.gpt2_medium(weights=state)
