"""Hugging Face config.json values for BERT and GPT-2 (trtnet/zoo/hf_config.py): every bad value is a ConfigError
naming the field, the value and what is allowed, raised before any weight is allocated."""

from __future__ import annotations

import json

import pytest

from trtnet.errors import ConfigError
from trtnet.zoo import bert_base_uncased, gpt2
from trtnet.zoo.bert import BertConfig
from trtnet.zoo.llama import LlamaConfig

DEEP = '{"hidden_size": ' + "[" * 100_000 + "]" * 100_000 + "}"

# (id, file contents as bytes, or a dict given directly; the message, after the file's path where there is one)
BAD_BERT = [
    (
        "not utf-8",
        b'\xff\xfe{"hidden_size": 768}',
        r"the BERT config is not UTF-8 text \(byte 0\); it must be a JSON "
        r"config.json",
    ),
    (
        "not json",
        b'{"hidden_size": 768,',
        r"the BERT config is not valid JSON \(Expecting property name enclosed in "
        r"double quotes at line 1 column 21\)",
    ),
    ("a json list", b"[1, 2]", "the BERT config is a JSON list; it must be a JSON object of fields"),
    ("a json string", b'"bert"', "the BERT config is a JSON string; it must be a JSON object of fields"),
    ("deep nesting", DEEP.encode(), "the BERT config is nested too deeply to be a config.json"),
    (
        "size as a string",
        {"hidden_size": "768"},
        r"BERT config: hidden_size = '768' is not allowed: expected an integer from 1 to 65536",
    ),
    (
        "size as a float",
        {"intermediate_size": 3072.0},
        r"BERT config: intermediate_size = 3072.0 is not allowed: expected an integer from 1 to 262144",
    ),
    (
        "activation as a list",
        {"hidden_act": ["gelu"]},
        r"BERT config: hidden_act = \['gelu'\] is not allowed: expected one of gelu, gelu_new, .*, tanh$",
    ),
    (
        "unknown activation",
        {"hidden_act": "swishy"},
        r"BERT config: hidden_act = 'swishy' is not allowed: expected one of gelu, gelu_new, .*, tanh$",
    ),
    (
        "eps as a string",
        {"layer_norm_eps": "abc"},
        r"BERT config: layer_norm_eps = 'abc' is not allowed: expected a number above 0 and at most 1",
    ),
    (
        "eps NaN",
        b'{"layer_norm_eps": NaN}',
        r"BERT config: layer_norm_eps = nan is not allowed: expected a number above 0 and at most 1",
    ),
    ("eps zero", {"layer_norm_eps": 0}, r"BERT config: layer_norm_eps = 0 is not allowed: expected a number above 0"),
    (
        "negative size",
        {"intermediate_size": -3072},
        "BERT config: intermediate_size = -3072 is not allowed: expected an integer from 1 to 262144",
    ),
    ("hidden_size 0", {"hidden_size": 0}, "BERT config: hidden_size = 0 is not allowed: expected an integer from 1"),
    (
        "no heads",
        {"num_attention_heads": 0},
        "BERT config: num_attention_heads = 0 is not allowed: expected an integer from 1 to 4096",
    ),
    (
        "huge vocabulary",
        {"vocab_size": 10**12},
        "BERT config: vocab_size = 1000000000000 is not allowed: expected an integer from 1 to 1048576",
    ),
    (
        "bool for an int",
        b'{"num_hidden_layers": true}',
        r"BERT config: num_hidden_layers = True is not allowed: expected an integer from 1 to 1024",
    ),
    (
        "null for an int",
        b'{"max_position_embeddings": null}',
        "BERT config: max_position_embeddings = None is not allowed: expected an integer from 1 to 131072",
    ),
    (
        "heads do not split",
        {"hidden_size": 100},
        "BERT config: hidden_size 100 does not split into num_attention_heads 12; it must be a multiple of it",
    ),
]


@pytest.mark.parametrize("config, message", [b[1:] for b in BAD_BERT], ids=[b[0] for b in BAD_BERT])
def test_bad_bert_configs_are_config_errors(config, message, tmp_path):
    if isinstance(config, bytes):
        path = tmp_path / "config.json"
        path.write_bytes(config)
        config, message = path, f"{path}: {message}" if "config:" not in message else message
    with pytest.raises(ConfigError, match=message):
        bert_base_uncased(config=config)


def test_config_paths_that_are_not_files(tmp_path):
    with pytest.raises(ConfigError, match=f"{tmp_path}: the BERT config is a directory, not a regular file"):
        bert_base_uncased(config=tmp_path)
    with pytest.raises(ConfigError, match=f"{tmp_path / 'nope.json'}: cannot read the BERT config: No such file"):
        bert_base_uncased(config=tmp_path / "nope.json")
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"pad": "x" * (1 << 20)}))
    with pytest.raises(ConfigError, match=r"the BERT config is \d+ bytes, more than the 1048576 a BERT config can be"):
        bert_base_uncased(config=big)
    with pytest.raises(ConfigError, match="BERT config must be a config.json path or a dict, not list"):
        BertConfig.from_hf([("hidden_size", 768)])


def test_another_models_config_or_a_json_that_is_none_is_refused(tmp_path):
    # Read as BERT's, GPT-2's config.json built a hybrid (GPT-2's vocabulary, BERT's everything else), exit 0.
    gpt2_json = tmp_path / "gpt2.json"
    gpt2_json.write_text(json.dumps({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768}))
    with pytest.raises(ConfigError, match=f"^{gpt2_json}: the BERT config says model_type 'gpt2': it is another"):
        bert_base_uncased(config=gpt2_json)
    with pytest.raises(ConfigError, match="the GPT-2 config says model_type 'bert'.*GPT-2's says 'gpt2'"):
        gpt2(config={"model_type": "bert", "hidden_size": 768})
    sidecar = tmp_path / "resnet50.plan.json"  # a JSON object, but no config.json
    sidecar.write_text(json.dumps({"format": "trtnet-plan", "inputs": [], "precision": "fp16"}))
    with pytest.raises(ConfigError, match=r"has none of BERT's fields \(it has format, inputs, precision\)"):
        bert_base_uncased(config=sidecar)
    assert BertConfig.from_hf({"model_type": "bert", "hidden_size": 32, "num_attention_heads": 2}).hidden_size == 32
    assert BertConfig.from_hf({}) == BertConfig()  # nothing said: the defaults
    qwen_json = tmp_path / "qwen2.json"
    qwen_json.write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64}))
    with pytest.raises(ConfigError, match=f"^{qwen_json}: the Llama config says model_type 'qwen2'"):
        LlamaConfig.from_hf(qwen_json)  # the file named, as for BERT and GPT-2


def test_python_made_configs_are_checked_too():
    with pytest.raises(ConfigError, match="BERT config: hidden_size = -1 is not allowed"):
        BertConfig(hidden_size=-1)


def test_good_config_ignores_unknown_keys(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "architectures": ["BertForMaskedLM"],
                "hidden_dropout_prob": 0.1,
                "hidden_size": 32,
                "num_attention_heads": 2,
                "num_hidden_layers": 1,
                "intermediate_size": 40,
                "vocab_size": 50,
                "layer_norm_eps": 1e-12,
            }
        )
    )
    assert BertConfig.from_hf(path) == BertConfig(
        hidden_size=32, num_attention_heads=2, num_hidden_layers=1, intermediate_size=40, vocab_size=50
    )


BAD_GPT2 = [
    ("a json list", b"[]", "the GPT-2 config is a JSON list; it must be a JSON object of fields"),
    ("not utf-8", b"\x80", r"the GPT-2 config is not UTF-8 text \(byte 0\)"),
    (
        "size as a string",
        {"n_embd": "768"},
        r"GPT-2 config: n_embd = '768' is not allowed: expected an integer from 1 to 65536",
    ),
    (
        "alias with a bool",
        {"num_hidden_layers": True},
        r"GPT-2 config: n_layer = True is not allowed: expected an integer from 1 to 1024",
    ),
    (
        "n_inner negative",
        {"n_inner": -1},
        "GPT-2 config: n_inner = -1 is not allowed: expected an integer from 1 to 262144 or null",
    ),
    (
        "activation as a list",
        {"activation_function": ["gelu_new"]},
        r"GPT-2 config: activation_function = \['gelu_new'\] is not allowed: expected one of gelu, ",
    ),
    (
        "flag as a string",
        {"scale_attn_weights": "yes"},
        r"GPT-2 config: scale_attn_weights = 'yes' is not allowed: expected true or false",
    ),
    (
        "huge vocabulary",
        {"vocab_size": 10**12},
        "GPT-2 config: vocab_size = 1000000000000 is not allowed: expected an integer from 1 to 1048576",
    ),
    ("no heads", {"n_head": 0}, "GPT-2 config: n_head = 0 is not allowed: expected an integer from 1 to 4096"),
]


@pytest.mark.parametrize("config, message", [b[1:] for b in BAD_GPT2], ids=[b[0] for b in BAD_GPT2])
def test_bad_gpt2_configs_are_config_errors(config, message, tmp_path):
    if isinstance(config, bytes):
        path = tmp_path / "config.json"
        path.write_bytes(config)
        config, message = path, f"{path}: {message}"
    with pytest.raises(ConfigError, match=message):
        gpt2(config=config)
