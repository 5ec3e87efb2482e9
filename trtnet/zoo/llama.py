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

import numbers
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from trtnet import nn, ops
from trtnet.errors import ConfigError
from trtnet.nn.decoder import CausalLM, DecoderAttention, RMSNorm, tied_head
from trtnet.ops import kv_cache, rotary
from trtnet.tensor import Tensor
from trtnet.zoo.llama_config import LlamaConfig, Qwen2Config, hf_kwargs
from trtnet.zoo.registry import Weights, register, with_weights
from trtnet.zoo.sources import transformers_causal_lm_source

LLAMA_3_2_1B = LlamaConfig()  # the dataclass's defaults; a config.json is read in `trtnet.zoo.llama_config`


class LlamaAttention(DecoderAttention):
    # The rotary frequencies that checkpoints of older transformers carry (as transformers does, the config's
    # rope_theta and rope_scaling make the tables here, not the buffer).
    skip_keys = ("rotary_emb.inv_freq",)

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
    skip_keys = ("rotary_emb.inv_freq",)  # the model-level rotary buffer, where a checkpoint kept it (see above)

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

    def __init__(self, config: LlamaConfig = LLAMA_3_2_1B, past: bool = False, max_context: int | None = None) -> None:
        limit = config.max_position_embeddings
        if limit < 2:  # else "from 2 to 1": a prompt and one token need two positions
            raise ConfigError(f"{config.MODEL}: max_position_embeddings {limit} leaves no position for a new token")
        self.max_context = int(
            ConfigError.check(
                "max_context",
                limit if max_context is None else max_context,
                f"an integer from 2 to max_position_embeddings {limit}",
                lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and 2 <= v <= limit,
                source=config.MODEL,
            )
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
        if not self.config.tie_word_embeddings:
            return state
        return tied_head(
            state,
            "model.embed_tokens.weight",
            why="the config ties it (tie_word_embeddings): give the checkpoint's own config.json (config=, --config) if it does not",
        )

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


llama = _entry("llama", LLAMA_3_2_1B, "LlamaForCausalLM")
qwen2 = _entry("qwen2", Qwen2Config(), "Qwen2ForCausalLM")
