"""Llama and Qwen2 against transformers: small random configs (grouped-query heads, Llama-3 rope scaling, biased
q/k/v, tied and untied heads) loaded from the safetensors transformers saves; prefill logits, prefill + decode
against a full recompute, and greedy generation token for token with every step's logits."""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pytest

import trtnet
from trtnet.errors import ConfigError, WeightsError
from trtnet.parity import export_state, rel_error
from trtnet.zoo import llama, qwen2
from trtnet.zoo.llama import LlamaConfig, Qwen2Config

transformers = pytest.importorskip("transformers", reason="transformers is the PyTorch source of Llama and Qwen2")
torch = pytest.importorskip("torch", reason="transformers runs on torch")

LLAMA3_ROPE = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0)
TINY = dict(hidden_size=64, intermediate_size=96, vocab_size=128, max_position_embeddings=64)


def source(kind: str, layers: int = 2, tied: bool = False, seed: int = 0, **extra):
    """A transformers model with random weights, larger than its init (so that greedy tokens vary), and
    RMSNorm weights and biases away from 1 and 0 (so that parity sees them)."""
    torch.manual_seed(seed)
    config = dict(TINY, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2)
    config.update(tie_word_embeddings=tied, initializer_range=0.15, **extra)
    if kind == "llama":
        rope = dict(LLAMA3_ROPE, original_max_position_embeddings=16, rope_theta=500000.0)
        model = transformers.LlamaForCausalLM(
            transformers.LlamaConfig(attn_implementation="eager", rope_parameters=rope, **config)
        )
    else:
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(attn_implementation="eager", **config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.3)
    return model.eval()


def load(kind: str, model, tmp_path, **options):
    path = export_state(model, tmp_path / f"{kind}.safetensors")
    entry = llama if kind == "llama" else qwen2
    return entry(weights=path, config=model.config.to_dict(), max_context=64, **options)


def prompt(batch: int = 2, length: int = 7, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, TINY["vocab_size"], (batch, length)).astype(np.int32)


def hf_generate(model, ids: np.ndarray, n: int, mask: np.ndarray | None = None):
    mask = np.ones_like(ids) if mask is None else mask
    with torch.no_grad():
        return model.generate(
            torch.from_numpy(ids).long(),
            attention_mask=torch.from_numpy(mask).long(),
            max_new_tokens=n,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
            eos_token_id=None,
        )


def assert_generation_matches(model, ours, ids, n=32, mask=None):
    """Greedy tokens equal, each step's logits within 1e-4 relative; the generated tokens are not one repeated."""
    want = hf_generate(model, ids, n, mask)
    steps = list(trtnet.stream(ours, ids, n, attention_mask=mask))
    got = np.concatenate([ids, np.stack([s.tokens for s in steps], 1)], 1)
    np.testing.assert_array_equal(got, want.sequences.numpy())
    assert len(steps) == len(want.logits) == n
    worst = max(rel_error(s.logits, logits.numpy()) for s, logits in zip(steps, want.logits))
    assert worst <= 1e-4, worst
    assert len(np.unique(got[:, ids.shape[1] :])) >= 6, "a generation this uniform proves little"
    return worst


@pytest.mark.parametrize("kind,tied", [("llama", False), ("qwen2", True)])
def test_greedy_generation_matches_transformers(kind, tied, tmp_path):
    """32 new tokens past Llama-3's original context of 16 (the scaled frequencies matter there)."""
    model = source(kind, tied=tied)
    assert_generation_matches(model, load(kind, model, tmp_path), prompt())


def test_prefill_logits_and_cache_match_transformers(tmp_path):
    model = source("llama")
    ids = prompt(length=12)
    positions = np.tile(np.arange(12, dtype=np.int32), (2, 1))
    logits, *cache = trtnet.reference(load("llama", model, tmp_path), ids, np.ones_like(ids), positions)
    with torch.no_grad():
        out = model(torch.from_numpy(ids).long(), use_cache=True)
    assert rel_error(logits, out.logits.numpy()) <= 1e-4
    want = [t.numpy() for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]
    assert len(cache) == len(want) == 4
    for got, ref in zip(cache, want):
        assert got.shape == ref.shape == (2, 2, 12, 16)
        assert rel_error(got, ref) <= 1e-4


def test_prefill_then_decode_equals_full_recompute(tmp_path):
    """The decode network fed the prefill's cache gives the logits the prefill network gives for the whole
    sequence at once (3 new tokens in one decode step, then 1)."""
    ours = load("llama", source("llama"), tmp_path)
    ids = prompt(length=14)
    pos = np.tile(np.arange(14, dtype=np.int32), (2, 1))
    full, *_ = trtnet.reference(ours, ids, np.ones_like(ids), pos)
    decode = ours.stage(past=True)
    _, *cache = trtnet.reference(ours, ids[:, :10], np.ones_like(ids[:, :10]), pos[:, :10])
    for start, stop in ((10, 13), (13, 14)):
        logits, *cache = trtnet.reference(
            decode, ids[:, start:stop], np.ones_like(ids[:, :stop]), pos[:, start:stop], *cache
        )
        assert rel_error(logits, full[:, start:stop]) <= 1e-5
    assert cache[0].shape == (2, 2, 14, 16)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_four_layers_left_padded_batch_matches_transformers(kind, tmp_path):
    """Four layers, batch 3 with a left-padded row (positions counted from its first real token)."""
    model = source(kind, layers=4, tied=kind == "llama", seed=3)
    ids = prompt(batch=3, length=9, seed=4)
    mask = np.ones_like(ids)
    mask[1, :4] = 0
    assert_generation_matches(model, load(kind, model, tmp_path), ids, mask=mask)


def test_tied_head_loads_from_either_copy(tmp_path):
    """A tied head is saved twice by state_dict; a file with only `lm_head.weight` loads too."""
    model = source("qwen2", tied=True)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    assert np.array_equal(state["lm_head.weight"], state["model.embed_tokens.weight"])
    del state["model.embed_tokens.weight"]
    ours = qwen2(weights=state, config=model.config.to_dict(), max_context=64)
    np.testing.assert_array_equal(ours.model.embed_tokens.weight.data, model.lm_head.weight.detach().numpy())
    untied = source("llama")
    state = {k: v.numpy() for k, v in untied.state_dict().items() if k != "lm_head.weight"}
    with pytest.raises(WeightsError, match="lm_head.weight"):
        llama(weights=state, config=untied.config.to_dict(), max_context=64)
    # an untied checkpoint read with a config that ties the head (the default's): said so, with the fix
    state = {k: v.numpy() for k, v in untied.state_dict().items()}
    tied = dict(untied.config.to_dict(), tie_word_embeddings=True)
    with pytest.raises(
        WeightsError, match=r"differs from model.embed_tokens.weight, .* own config.json \(config=, --config\)"
    ):
        llama(weights=state, config=tied, max_context=64)


def test_rotary_frequencies_of_older_checkpoints_are_skipped():
    """Checkpoints of older transformers carry each layer's `self_attn.rotary_emb.inv_freq`, which transformers
    ignores on loading; they were refused as unexpected keys. Other stray keys still are."""
    model = source("llama")
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    want = llama(weights=state, config=model.config.to_dict(), max_context=64).state_dict()
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.full(8, 3.0, np.float32)
    state["model.rotary_emb.inv_freq"] = np.full(8, 3.0, np.float32)  # where later versions keep it
    got = llama(weights=state, config=model.config.to_dict(), max_context=64).state_dict()
    assert all(np.array_equal(got[k], want[k]) for k in want)
    state["model.layers.0.self_attn.rotary_emb.scale"] = np.ones(1, np.float32)
    with pytest.raises(WeightsError, match="unexpected key: model.layers.0.self_attn.rotary_emb.scale"):
        llama(weights=state, config=model.config.to_dict(), max_context=64)


def test_config_json_of_transformers_4_and_5(tmp_path):
    """rope_theta + rope_scaling (transformers 4's config.json) and rope_parameters (5's) read alike."""
    v4 = dict(TINY, rope_theta=5e5, rope_scaling=dict(LLAMA3_ROPE, original_max_position_embeddings=16))
    v5 = dict(TINY, rope_parameters=dict(LLAMA3_ROPE, original_max_position_embeddings=16, rope_theta=5e5))
    assert LlamaConfig.from_hf(v4) == LlamaConfig.from_hf(v5)
    assert LlamaConfig.from_hf(v4).rope_scaling.factor == 8.0
    assert Qwen2Config.from_hf({}).rope_scaling.rope_type == "default"


LINEAR = dict(rope_type="linear", factor=4.0)


@pytest.mark.parametrize(
    "config",
    [
        dict(rope_scaling=LLAMA3_ROPE),  # no original_max_position_embeddings: max_position_embeddings
        dict(rope_scaling=dict(LLAMA3_ROPE, original_max_position_embeddings=16), original_max_position_embeddings=32),
        dict(rope_scaling=LINEAR, rope_parameters=dict(rope_type="default")),  # rope_scaling first
        dict(rope_parameters=dict(rope_type="default", rope_theta=1e6), rope_theta=100.0),  # the dict's theta first
        dict(rope_scaling=dict(type="linear", factor=2.0)),
        dict(rope_scaling=dict(rope_type="linear", factor=2.0, original_max_position_embeddings=None)),
        dict(rope_scaling=dict(rope_type="default", factor=-1)),  # keys the type does not read are not read
    ],
    ids=[
        "llama3-no-original",
        "original-at-top",
        "scaling-and-parameters",
        "theta-twice",
        "type-key",
        "linear-null",
        "default-factor",
    ],
)
def test_rope_settings_are_read_as_transformers_reads_them(config):
    """Which of two rope settings wins, and what stands in for one left out, as transformers 5 decides: each case
    gave other logits than transformers' (relative error 0.6 to 1.4) on the same weights."""
    ours = LlamaConfig.from_hf(dict(TINY, **config))
    hf = transformers.LlamaConfig.from_dict(copy.deepcopy(dict(TINY, **config)))  # it writes into the rope dict
    hf.standardize_rope_params()  # as the rope layer reads them when it is built (a top-level key applied again)
    theirs = hf.rope_parameters
    assert ours.rope_theta == theirs["rope_theta"] and ours.rope_scaling.rope_type == theirs["rope_type"]
    used = {
        "linear": ["factor"],
        "llama3": ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"],
    }
    for key in used.get(theirs["rope_type"], []):  # the keys its rope type reads
        assert getattr(ours.rope_scaling, key) == theirs[key], key


@pytest.mark.parametrize(
    "window",
    [
        dict(max_window_layers=2),  # the window on, for no block
        dict(sliding_window=None),
        dict(layer_types=["full_attention", "full_attention"], max_window_layers=0),
    ],
)
def test_qwen2_with_the_window_on_for_no_block_is_plain_attention(window, tmp_path):
    """transformers builds such a config with full attention in every block; trtnet refused it."""
    import json

    config = dict(TINY, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True)
    config.update(sliding_window=8, model_type="qwen2")  # were a block to slide, 40 tokens would show it
    config.update(window)
    (tmp_path / "config.json").write_text(json.dumps(config))
    hf = transformers.Qwen2Config.from_pretrained(tmp_path, attn_implementation="eager")
    assert "sliding_attention" not in hf.layer_types or hf.sliding_window is None
    torch.manual_seed(0)
    model = source_from(hf, "qwen2")
    ours = qwen2(weights=export_state(model, tmp_path / "w.safetensors"), config=tmp_path / "config.json")
    ids = np.tile(prompt()[:, :7], (1, 6))[:, :40]  # longer than a window of 8 would see
    with torch.no_grad():
        want = model(torch.from_numpy(ids).long()).logits.numpy()
    got = trtnet.reference(ours, ids, np.ones_like(ids), np.tile(np.arange(ids.shape[1]), (2, 1)))[0]
    assert rel_error(got, want) < 1e-5


@pytest.mark.parametrize(
    "extra",
    [
        dict(num_key_value_heads=None),  # kv heads = heads; left out, transformers' Qwen2 took 32
        dict(num_key_value_heads=2, use_sliding_window=True, sliding_window=None, max_window_layers=0),
        dict(
            num_key_value_heads=2, layer_types=["full_attention", "full_attention"]
        ),  # a tuple refused by transformers
    ],
    ids=["kv-heads-null", "window-null", "layer-types"],
)
def test_hf_kwargs_builds_the_model_the_config_describes(extra, tmp_path):
    """`hf_kwargs` is how a config becomes its PyTorch twin (the zoo's sources): a None it left out was replaced by
    transformers' default, another model."""
    from trtnet.zoo.llama_config import hf_kwargs

    config = dict(TINY, num_hidden_layers=2, num_attention_heads=4, **extra)
    ours = qwen2(config=config)
    torch.manual_seed(0)
    model = source_from(transformers.Qwen2Config(attn_implementation="eager", **hf_kwargs(ours.config)), "qwen2")
    ours = qwen2(weights=export_state(model, tmp_path / "w.safetensors"), config=config)
    ids = np.tile(prompt()[:, :7], (1, 6))[:, :40]
    with torch.no_grad():
        want = model(torch.from_numpy(ids).long()).logits.numpy()
    got = trtnet.reference(ours, ids, np.ones_like(ids), np.tile(np.arange(ids.shape[1]), (2, 1)))[0]
    assert rel_error(got, want) < 1e-5


def test_a_window_as_long_as_the_context_is_full_attention():
    config = dict(TINY, use_sliding_window=True, sliding_window=64, max_window_layers=0, num_hidden_layers=1)
    assert Qwen2Config.from_hf(config).use_sliding_window  # taken: 64 positions at most, all within the window
    with pytest.raises(ConfigError, match="attend to a window of 63 tokens"):
        Qwen2Config.from_hf(dict(config, sliding_window=63))


@pytest.mark.parametrize("low, high", [(2.0, 2.0), (4.0, 1.0)], ids=["no-band", "band-reversed"])
def test_llama3_rope_factors_transformers_takes_are_computed_as_it_computes_them(low, high, tmp_path):
    """Refused before ("high_freq_factor must be above low_freq_factor"); transformers builds both."""
    import json

    rope = dict(LLAMA3_ROPE, low_freq_factor=low, high_freq_factor=high, original_max_position_embeddings=16)
    config = dict(TINY, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, rope_scaling=rope)
    (tmp_path / "config.json").write_text(json.dumps(dict(config, model_type="llama", rope_theta=50.0)))
    torch.manual_seed(0)
    model = source_from(transformers.LlamaConfig.from_pretrained(tmp_path, attn_implementation="eager"), "llama")
    ours = llama(weights=export_state(model, tmp_path / "w.safetensors"), config=tmp_path / "config.json")
    ids = np.tile(prompt()[:, :7], (1, 6))[:, :40]
    with torch.no_grad():
        want = model(torch.from_numpy(ids).long()).logits.numpy()
    got = trtnet.reference(ours, ids, np.ones_like(ids), np.tile(np.arange(ids.shape[1]), (2, 1)))[0]
    assert np.isfinite(got).all() and rel_error(got, want) < 1e-5


@pytest.mark.parametrize("rope", [dict(rope_type="linear"), dict(LLAMA3_ROPE, low_freq_factor=None)])
def test_a_scaled_rope_without_its_settings_is_refused_as_transformers_refuses_it(rope):
    rope = {k: v for k, v in rope.items() if v is not None}
    with pytest.raises(KeyError, match="Missing required keys"):
        transformers.LlamaConfig(**TINY, rope_scaling=dict(rope))
    with pytest.raises(ConfigError, match="rope needs (factor|low_freq_factor), which the config does not give"):
        LlamaConfig.from_hf(dict(TINY, rope_scaling=rope))


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_keys_a_config_json_lacks_take_transformers_defaults(kind, tmp_path):
    """A Llama 2-era config.json has no `rope_theta` and no `tie_word_embeddings`: transformers reads them as
    10000 and False. trtnet read its own model's (Llama 3.2 1B: 500000 and tied), and gave other logits (or
    refused the file's own lm_head.weight) with no error."""
    import json

    cls = transformers.LlamaConfig if kind == "llama" else transformers.Qwen2Config
    config = dict(TINY, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, model_type=kind)
    (tmp_path / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = source_from(cls.from_pretrained(tmp_path, attn_implementation="eager"), kind)
    assert model.config.tie_word_embeddings is False and "lm_head.weight" in model.state_dict()
    ours = (llama if kind == "llama" else qwen2)(
        weights=export_state(model, tmp_path / "w.safetensors"), config=tmp_path / "config.json", max_context=64
    )
    assert ours.config.rope_theta == 10000.0
    ids = prompt()
    with torch.no_grad():
        want = model(torch.from_numpy(ids).long()).logits.numpy()
    got = trtnet.reference(ours, ids, np.ones_like(ids), np.tile(np.arange(ids.shape[1]), (2, 1)))[0]
    assert rel_error(got, want) < 1e-5


def source_from(config, kind: str):
    """A transformers model of `config`, its weights as `source` draws them."""
    base = transformers.LlamaForCausalLM if kind == "llama" else transformers.Qwen2ForCausalLM
    model = base(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.15) if "norm" not in name else p.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize(
    "config,message",
    [
        (dict(rope_scaling={"rope_type": "yarn", "factor": 4.0}), "rope_type = 'yarn' is not allowed"),
        (dict(num_attention_heads=4, num_key_value_heads=3), "num_key_value_heads = 3 is not allowed"),
        (dict(hidden_act="gelu"), "hidden_act = 'gelu' is not allowed: expected silu"),
        (dict(rope_scaling="llama3"), "rope_scaling = 'llama3' is not allowed"),
        # Values that made infinite or NaN rope tables, or an internal error (an infinite int()):
        (dict(rope_scaling=dict(LLAMA3_ROPE, original_max_position_embeddings=float("inf"))), "original_max_pos"),
        (dict(rope_scaling=dict(LLAMA3_ROPE, original_max_position_embeddings=0.5)), "original_max_pos"),
        (dict(rope_scaling={"rope_type": "linear", "factor": 1e-320}), r"factor = 1e-320 is not allowed: expected a"),
        (dict(rope_scaling={"rope_type": "linear", "factor": float("inf")}), "factor = inf is not allowed"),
        (dict(rope_scaling={"rope_type": "linear", "factor": "2"}), "factor = '2' is not allowed"),
    ],
)
def test_bad_config_is_a_config_error(config, message):
    with pytest.raises(ConfigError, match=message):
        LlamaConfig.from_hf(config)


def test_qwen2_sliding_window_and_context_are_refused():
    with pytest.raises(ConfigError, match="use_sliding_window = true makes block 28 of 32 attend to a window of 4096"):
        Qwen2Config.from_hf({"use_sliding_window": True})
    with pytest.raises(ConfigError, match="max_context = 65 is not allowed"):
        llama(config=TINY, max_context=65)
    # a context of one position was said as "an integer from 2 to max_position_embeddings 1"
    with pytest.raises(ConfigError, match="^Llama: max_position_embeddings 1 leaves no position for a new token$"):
        llama(config=dict(TINY, max_position_embeddings=1))
    assert llama(config=TINY, max_context=np.int64(8)).max_context == 8  # a numpy integer was refused


# TensorRT layers of the prefill and decode networks: per decoder block, and the rest (embedding, rotary tables,
# the mask, the final norm and the head). Shape-only layers (the run-time sizes of the dynamic dims) included.
LAYERS_PER_BLOCK = {"prefill": 74, "decode": 76}
LAYERS_REST = {"prefill": 84, "decode": 84}


def test_layer_counts():
    """Of the zoo's Llama (3.2: grouped-query heads, llama3 rope, a tied head) at TINY's sizes."""
    from trtnet.zoo.llama import hf_kwargs

    zoo = hf_kwargs(LlamaConfig())
    for stage, past in (("prefill", False), ("decode", True)):
        counts = [
            trtnet.emit(llama(config={**zoo, **TINY, "num_hidden_layers": n}, max_context=64).stage(past), (1, 1, 4))
            for n in (1, 3)
        ]
        counts = [network.num_layers for network in counts]
        per_block = (counts[1] - counts[0]) // 2
        assert (per_block, counts[0] - per_block) == (LAYERS_PER_BLOCK[stage], LAYERS_REST[stage]), (stage, counts)


def test_both_stages_build_with_dynamic_batch_and_lengths():
    """TensorRT builds the prefill and decode networks (fp16) with no GPU; the plans keep the cache I/O names."""
    model = llama(config=dict(TINY, num_hidden_layers=1), max_context=64)
    for past in (False, True):
        engine = trtnet.build(model.stage(past), batch_size=(1, 2, 4), precision="fp16", cache=False)
        names = [s.name for s in engine.inputs]
        assert names[:3] == ["input_ids", "attention_mask", "position_ids"]
        assert names[3:] == (["past_key_values.0.key", "past_key_values.0.value"] if past else [])
        assert [s.name for s in engine.outputs] == ["logits", "present.0.key", "present.0.value"]
        mask = engine.inputs[1]
        assert (mask.min_shape[1], mask.max_shape[1]) == ((2, 64) if past else (1, 64))


@pytest.mark.parametrize("context", [48, 64, 65, 512])
def test_the_decode_profile_adds_up_at_its_opt_shapes(context):
    """Past + new tokens = mask length at min, opt and max: at contexts past 64 the opt was 64 + 1 = 64, and
    TensorRT logged, building every real decoder, that the mask does not broadcast to 65 keys."""
    model = llama(config=dict(TINY, num_hidden_layers=1, max_position_embeddings=512), max_context=context)
    specs = {i.name: i for i in model.stage(True).inputs()}
    ids, mask = specs["input_ids"].shape[0], specs["attention_mask"].shape[0]  # (min, opt, max) each
    past = specs["past_key_values.0.key"].shape[1]
    assert past[0] + ids[0] == mask[0] and past[1] + ids[1] == mask[1]  # min and opt
    assert past[2] + 1 == mask[2] == context  # the longest past, and one new token


@pytest.mark.parametrize("config", [LlamaConfig(), Qwen2Config()], ids=["llama_3_2", "qwen2"])
def test_rope_tables_are_transformers_at_every_position_of_the_context(config) -> None:
    """At position 130,000 a ulp of inv_freq turns the angle by 0.01: numpy's float32 `power`, a ulp off for a fifth
    of the entries, put Llama-3.2's keys 5e-3 from transformers' there (`trtnet verify llama` failed). inv_freq and
    the angles are now transformers' to the bit, cos and sin within a ulp, at every position of the context."""
    from trtnet.ops.rotary import inverse_frequencies, rope_tables
    from trtnet.zoo.llama import hf_kwargs

    kind = "Llama" if type(config) is LlamaConfig else "Qwen2"
    hf = getattr(transformers, f"{kind}Config")(**hf_kwargs(config))
    modeling = importlib.import_module(f"transformers.models.{kind.lower()}.modeling_{kind.lower()}")
    emb = getattr(modeling, f"{kind}RotaryEmbedding")(hf)
    head_dim = config.dim_per_head
    inv = inverse_frequencies(head_dim, config.rope_theta, config.rope_scaling)
    np.testing.assert_array_equal(inv, emb.inv_freq.numpy())
    positions = np.arange(config.max_position_embeddings)[::97][None]
    cos, sin = emb(torch.zeros(1, 1, head_dim), torch.from_numpy(positions))
    table_cos, table_sin = rope_tables(config.max_position_embeddings, head_dim, config.rope_theta, config.rope_scaling)
    assert np.abs(table_cos[positions[0]] - cos[0].numpy()).max() <= 2**-23
    assert np.abs(table_sin[positions[0]] - sin[0].numpy()).max() <= 2**-23


@pytest.mark.parametrize("config", [LlamaConfig(), Qwen2Config()], ids=["llama_3_2", "qwen2"])
def test_the_sources_config_is_the_entry_s_own(config, caplog) -> None:
    """What verify builds the PyTorch source from: head_dim None was passed as such, and Qwen2's attention took it
    for its head_dim (`trtnet verify qwen2` was an internal error); rope keys its type does not read made
    transformers warn. Both are left out."""
    import dataclasses

    from trtnet.zoo.llama import hf_kwargs

    small = dataclasses.replace(config, num_hidden_layers=1, vocab_size=64)
    kind = "Llama" if type(config) is LlamaConfig else "Qwen2"
    with caplog.at_level("WARNING"):
        hf = getattr(transformers, f"{kind}Config")(attn_implementation="eager", **hf_kwargs(small))
        model = getattr(transformers, f"{kind}ForCausalLM")(hf)
    assert "Unrecognized keys" not in caplog.text
    assert model.model.layers[0].self_attn.head_dim == small.hidden_size // small.num_attention_heads
    assert hf.rope_parameters["rope_theta"] == small.rope_theta
