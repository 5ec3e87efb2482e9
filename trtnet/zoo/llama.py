"""Llama and Qwen2 (Hugging Face transformers' `LlamaForCausalLM`, `Qwen2ForCausalLM`): token embeddings,
pre-RMSNorm blocks of rotary grouped-query self-attention and a SwiGLU MLP, a final RMSNorm and the LM head.

Read it beside transformers' `modeling_llama.py`: the attribute names are its state_dict keys
(`model.layers.0.self_attn.q_proj`). Qwen2 is the same network with biased q/k/v projections. The attention is
`nn.DecoderAttention`, which knows the tricks (RoPE folded into the projection, the KV cache as engine I/O).

One model class, two stages (see `docs/decoders.md`): `past=False` is the prefill network (the prompt in,
logits and the cache out), `past=True` the decode network (new tokens and the cache in, logits and the longer
cache out). Both share the module tree, so both load one weights file.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from trtnet import nn, ops
from trtnet.errors import ConfigError
from trtnet.nn.decoder import CausalLM, DecoderAttention, RMSNorm, tied_head
from trtnet.ops import kv_cache, rotary
from trtnet.ops.rotary import RopeScaling
from trtnet.tensor import Tensor
from trtnet.zoo.hf_config import activation, check_fields, flag, from_hf, integer, positive_float, read_json
from trtnet.zoo.registry import Weights, register, with_weights
from trtnet.zoo.sources import transformers_causal_lm_source

ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class LlamaConfig:
    """The fields of a Hugging Face `LlamaConfig` that shape the network (defaults: Llama 3.2 1B)."""

    vocab_size: int = integer(1, 2**20, default=128256)
    hidden_size: int = integer(1, 2**16, default=2048)
    intermediate_size: int = integer(1, 2**18, default=8192)
    num_hidden_layers: int = integer(1, 1024, default=16)
    num_attention_heads: int = integer(1, 2**12, default=32)
    num_key_value_heads: int | None = integer(1, 2**12, default=8, optional=True)  # None: num_attention_heads
    head_dim: int | None = integer(2, 2**12, default=None, optional=True)  # None: hidden_size / heads
    max_position_embeddings: int = integer(1, 2**21, default=131072)
    rms_norm_eps: float = positive_float(default=1e-5)
    rope_theta: float = positive_float(1e12, default=500000.0)
    hidden_act: str = activation(default="silu")
    attention_bias: bool = flag(default=False)
    mlp_bias: bool = flag(default=False)
    tie_word_embeddings: bool = flag(default=True)
    rope_scaling: RopeScaling = field(default=RopeScaling("llama3", 32.0, 1.0, 4.0, 8192), metadata={"rope": True})

    MODEL: ClassVar[str] = "Llama"
    MODEL_TYPE: ClassVar[str] = "llama"  # as config.json says it
    # What transformers' LlamaConfig takes for a key a config.json lacks (Llama 2 7B's sizes): a file is read as
    # transformers reads it. The dataclass's own defaults (Llama 3.2 1B) are the entry's model with no config; read
    # for a missing key, a Llama 2 file without `rope_theta` ran at 500000 instead of 10000, and one without
    # `tie_word_embeddings` refused its own lm_head.weight.
    HF_DEFAULTS: ClassVar[Mapping[str, Any]] = {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    }

    @classmethod
    def from_hf(cls, config: str | os.PathLike | Mapping[str, Any]):
        """Read a Hugging Face `config.json` (a path or its dict): `rope_theta` and `rope_scaling` as transformers
        4 writes them, or `rope_parameters` as transformers 5 does. Keys it lacks take transformers' defaults
        (`HF_DEFAULTS`); no rope scaling is the default rope."""
        where = config if isinstance(config, (str, os.PathLike)) else None
        if where is not None:
            config = read_json(where, cls.MODEL)
        elif not isinstance(config, Mapping):
            raise ConfigError(f"{cls.MODEL} config must be a config.json path or a dict, not {type(config).__name__}")
        values = dict(config)
        # As transformers reads them: `rope_scaling` before `rope_parameters`, the dict's rope_theta before the
        # top-level one, and a scaled rope's original_max_position_embeddings from the top level first, else the
        # dict, else max_position_embeddings.
        key = "rope_scaling" if values.get("rope_scaling") else "rope_parameters"
        rope = values.pop("rope_scaling", None) or values.pop("rope_parameters", None)
        values.pop("rope_parameters", None)
        if isinstance(rope, Mapping):
            rope = dict(rope)
            if "rope_theta" in rope:
                values["rope_theta"] = rope["rope_theta"]
            if rope.get("rope_type", rope.get("type")) == "llama3":
                top = values.pop("original_max_position_embeddings", None)
                fallback = values.get("max_position_embeddings", cls.HF_DEFAULTS["max_position_embeddings"])
                rope["original_max_position_embeddings"] = (
                    top if top is not None else rope.get("original_max_position_embeddings", fallback)
                )
        scaling = _rope_scaling(rope, f"{cls.MODEL} config: {key}")
        return dataclasses.replace(
            from_hf(cls, values, cls.MODEL, model_type=cls.MODEL_TYPE, where=where, defaults=cls.HF_DEFAULTS),
            rope_scaling=scaling,
        )

    def __post_init__(self) -> None:
        check_fields(self, self.MODEL)
        where = f"{self.MODEL} config"
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"{where}: hidden_size {self.hidden_size} does not split into num_attention_heads "
                f"{self.num_attention_heads}; give head_dim or a multiple"
            )
        ConfigError.check(
            "num_key_value_heads",
            self.kv_heads,
            f"a divisor of num_attention_heads {self.num_attention_heads}",
            lambda v: self.num_attention_heads % v == 0,
            source=where,
        )
        ConfigError.check(
            "head_dim", self.dim_per_head, "an even number (RoPE rotates pairs)", lambda v: v % 2 == 0, source=where
        )
        ConfigError.check("hidden_act", self.hidden_act, "silu (SwiGLU)", lambda v: v == "silu", source=where)

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def qkv_bias(self) -> bool:
        return self.attention_bias

    @property
    def o_bias(self) -> bool:
        return self.attention_bias


@dataclass(frozen=True)
class Qwen2Config(LlamaConfig):
    """A Hugging Face `Qwen2Config` (defaults: Qwen2.5 0.5B): Llama's fields, q/k/v always biased, o_proj not."""

    vocab_size: int = integer(1, 2**20, default=151936)
    hidden_size: int = integer(1, 2**16, default=896)
    intermediate_size: int = integer(1, 2**18, default=4864)
    num_hidden_layers: int = integer(1, 1024, default=24)
    num_attention_heads: int = integer(1, 2**12, default=14)
    num_key_value_heads: int | None = integer(1, 2**12, default=2, optional=True)
    max_position_embeddings: int = integer(1, 2**21, default=32768)
    rms_norm_eps: float = positive_float(default=1e-6)
    rope_theta: float = positive_float(1e12, default=1000000.0)
    use_sliding_window: bool = flag(default=False)
    sliding_window: int | None = integer(1, 2**31 - 1, default=4096, optional=True)
    max_window_layers: int = integer(0, 2**31 - 1, default=28)  # blocks from this one on slide (with the window on)
    layer_types: tuple[str, ...] | None = None  # "full_attention" / "sliding_attention" per block, where given
    rope_scaling: RopeScaling = field(default=RopeScaling(), metadata={"rope": True})

    MODEL: ClassVar[str] = "Qwen2"
    MODEL_TYPE: ClassVar[str] = "qwen2"
    HF_DEFAULTS: ClassVar[Mapping[str, Any]] = {  # transformers' Qwen2Config's, as for Llama
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        kinds = ("full_attention", "sliding_attention")
        if self.layer_types is not None:
            ConfigError.check(
                "layer_types",
                self.layer_types,
                f"a list of {self.num_hidden_layers} of {', '.join(kinds)}",
                lambda v: isinstance(v, (list, tuple)) and len(v) == self.num_hidden_layers and set(v) <= set(kinds),
                source="Qwen2 config",
            )
            object.__setattr__(self, "layer_types", tuple(self.layer_types))
        # As transformers builds it: a block slides where the window is on, a window is given, and the block is
        # marked so (by layer_types, else from max_window_layers on). A config that turns the window on for no
        # block (max_window_layers at or past num_hidden_layers, say) is plain attention.
        marked = self.layer_types or tuple(kinds[i >= self.max_window_layers] for i in range(self.num_hidden_layers))
        sliding = [i for i, kind in enumerate(marked) if kind == kinds[1]]
        if self.use_sliding_window and self.sliding_window is not None and sliding:
            raise ConfigError(
                f"Qwen2 config: use_sliding_window = true makes block {sliding[0]} of {self.num_hidden_layers} "
                f"attend to a window of {self.sliding_window} tokens, which trtnet does not compute (sliding-window "
                "attention is not supported)"
            )

    @property
    def qkv_bias(self) -> bool:
        return True

    @property
    def o_bias(self) -> bool:
        return False


def _rope_scaling(rope: Any, where: str) -> RopeScaling:
    """transformers' rope dict (or None) as a `RopeScaling`; a type trtnet does not compute is a ConfigError."""
    if rope is None:
        return RopeScaling()
    if not isinstance(rope, Mapping):
        raise ConfigError(f"{where} = {rope!r:.80} is not allowed: expected an object or null")
    kind = rope.get("rope_type", rope.get("type", "default"))
    ConfigError.check("rope_type", kind, f"one of {', '.join(ROPE_TYPES)}", lambda v: v in ROPE_TYPES, source=where)
    base = RopeScaling()
    values = {}
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731  not "2", not true
    needs = {"linear": ("factor",), "llama3": ("factor", "low_freq_factor", "high_freq_factor")}.get(kind, ())
    missing = [name for name in needs if name not in rope]
    if missing:  # transformers refuses such a file too: no default stands in for a scaling the file does not give
        raise ConfigError(f"{where}: a {kind} rope needs {', '.join(missing)}, which the config does not give")
    for name in ("factor", "low_freq_factor", "high_freq_factor"):
        value = rope.get(name, getattr(base, name))
        # 1 / factor is taken too: a factor so small its inverse is infinite made NaN rope tables
        ConfigError.check(
            name,
            value,
            "a positive finite number",
            lambda v: number(v) and 0 < v < math.inf and math.isfinite(1.0 / v),
            source=where,
        )
        values[name] = value
    name = "original_max_position_embeddings"
    value = rope.get(name, base.original_max_position_embeddings)
    ConfigError.check(
        name,
        value,
        "a whole number from 1 to 2**31 - 1",
        lambda v: number(v) and v == int(v) and 1 <= v < 2**31,
        source=where,
    )
    values[name] = value
    if kind == "llama3" and values["high_freq_factor"] <= values["low_freq_factor"]:
        raise ConfigError(f"{where}: high_freq_factor must be above low_freq_factor for llama3 rope")
    return RopeScaling(
        kind,
        float(values["factor"]),
        float(values["low_freq_factor"]),
        float(values["high_freq_factor"]),
        int(values["original_max_position_embeddings"]),
    )


class LlamaAttention(DecoderAttention):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__(c.num_attention_heads, c.kv_heads, c.dim_per_head)
        d = c.dim_per_head
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * d, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.kv_heads * d, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.kv_heads * d, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.num_attention_heads * d, c.hidden_size, bias=c.o_bias)

    def forward(self, x: Tensor, rope, keep: Tensor, past) -> tuple[Tensor, Tensor, Tensor]:
        o, k, v = self.attend(x, rope, keep, past)
        return self.o_proj(o), k, v


class LlamaMLP(nn.Module):
    """SwiGLU: down_proj(silu(gate_proj(x)) * up_proj(x))."""

    def __init__(self, c: LlamaConfig) -> None:
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(ops.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    """Pre-RMSNorm: x + attn(input_layernorm(x)), then x + mlp(post_attention_layernorm(x))."""

    def __init__(self, c: LlamaConfig) -> None:
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, x: Tensor, rope, keep: Tensor, past) -> tuple[Tensor, Tensor, Tensor]:
        h, k, v = self.self_attn(self.input_layernorm(x), rope, keep, past)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


class LlamaModel(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = [LlamaDecoderLayer(c) for _ in range(c.num_hidden_layers)]
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class LlamaForCausalLM(CausalLM):
    """`transformers.LlamaForCausalLM` with its KV cache as engine I/O.

    Inputs: `input_ids` [B, S], `attention_mask` [B, P + S] (1: a real token; left padding allowed),
    `position_ids` [B, S] and, when `past`, `past_key_values.{i}.key|value` [B, kv_heads, P, head_dim].
    Outputs: `logits` [B, S, vocab], `present.{i}.key|value` [B, kv_heads, P + S, head_dim].
    `max_context` (default: max_position_embeddings) bounds P + S and sizes the rotary tables.
    """

    def __init__(self, config: LlamaConfig = LlamaConfig(), past: bool = False, max_context: int | None = None) -> None:
        limit = config.max_position_embeddings
        self.max_context = ConfigError.check(
            "max_context",
            limit if max_context is None else max_context,
            f"an integer from 2 to max_position_embeddings {limit}",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= limit,
            source=config.MODEL,
        )
        self.model = LlamaModel(config)
        self.lm_head = (
            None if config.tie_word_embeddings else nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        )
        self.config = config
        self._past = past

    # `config` and `max_context` are not parameters: reflection walks Modules and Parameters only.

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def kv_shape(self) -> tuple[int, int]:
        return self.config.kv_heads, self.config.dim_per_head

    def adapt_state(self, prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A tied LM head is saved twice by `state_dict()` (or only as `lm_head.weight`): keep the embedding."""
        return tied_head(state, "model.embed_tokens.weight") if self.config.tie_word_embeddings else state
        head, embed = state.get("lm_head.weight"), "model.embed_tokens.weight"
        if head is not None and embed not in state:
            state[embed] = state.pop("lm_head.weight")
        elif head is not None and np.array_equal(np.asarray(head), np.asarray(state[embed])):
            del state["lm_head.weight"]
        return state

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, *past: Tensor):
        c = self.config
        x = nn.tokens(self.model.embed_tokens(input_ids))  # [B, 1, S, D]
        cos, sin = rotary.rope_tables(self.max_context, c.dim_per_head, c.rope_theta, c.rope_scaling)
        rope = rotary.position_tables(cos, sin, position_ids, x.dtype)
        keep = kv_cache.decoder_keep(input_ids, attention_mask)
        presents = []
        for i, layer in enumerate(self.model.layers):
            x, k, v = layer(x, rope, keep, (past[2 * i], past[2 * i + 1]) if past else None)
            presents += [k, v]
        x = self.model.norm(x)
        if self.lm_head is not None:
            logits = self.lm_head(x)
        else:
            logits = ops.linear(x, self.model.embed_tokens.weight.data)
        return [nn.untokens(logits), *presents]


def _entry(name: str, base: LlamaConfig, source: str):
    def entry(
        weights: Weights = None,
        config: str | os.PathLike | Mapping[str, Any] | None = None,
        past: bool = False,
        max_context: int | None = None,
    ) -> LlamaForCausalLM:
        c = base if config is None else type(base).from_hf(config)
        return with_weights(LlamaForCausalLM(c, past, max_context), weights)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"{source} with transformers' state_dict keys and its KV cache as engine I/O. `weights`: a safetensors "
        "file or dict, or None (seeded random); `config`: a Hugging Face config.json path or dict (default: "
        f"{type(base).__name__}()); `past`: the decode network (else the prefill one); `max_context`: the "
        "longest prompt plus generated tokens (default: max_position_embeddings)."
    )
    return register(
        name, f"transformers.{source}", transformers_causal_lm_source(source, hf_kwargs(base)), config=base
    )(entry)


# The rope parameters each rope type reads (transformers warns of the others, and ignores them).
_ROPE_KEYS = {"default": (), "linear": ("factor",), "llama3": tuple(f.name for f in dataclasses.fields(RopeScaling))}


def hf_kwargs(c: LlamaConfig) -> dict[str, Any]:
    """`c` as keyword arguments of transformers' config class (its rope as `rope_parameters`). A field that is None
    (head_dim: hidden_size / heads) is left out for transformers' own default: Qwen2's attention took the None as
    its head_dim, and `trtnet verify qwen2` was an internal error."""
    values = {f.name: getattr(c, f.name) for f in dataclasses.fields(c) if f.name != "rope_scaling"}
    values = {k: v for k, v in values.items() if v is not None}
    kind = c.rope_scaling.rope_type
    rope = {k: getattr(c.rope_scaling, k) for k in _ROPE_KEYS[kind] if k != "rope_type"}
    values["rope_parameters"] = {"rope_type": kind, **rope, "rope_theta": values.pop("rope_theta")}
    return values


llama = _entry("llama", LlamaConfig(), "LlamaForCausalLM")
qwen2 = _entry("qwen2", Qwen2Config(), "Qwen2ForCausalLM")
