"""GPT-2 as a language model (transformers' `GPT2LMHeadModel`) with its KV cache as engine I/O: the generation
path of `trtnet.generate`, as `llama`'s.

The blocks are `trtnet.zoo.gpt2`'s, under the `transformer.` prefix that `GPT2LMHeadModel` saves; the attention
appends this step's keys and values to the cache (`ops.kv_cache`) and masks with `kv_cache.decoder_keep`, and the
LM head is `wte` itself (GPT-2 ties them). Positions come in as `position_ids` (learned position embeddings
gathered), so that left padding and the decode step count positions as transformers' `generate` does.

Inputs and outputs are llama's: `input_ids` [B, S], `attention_mask` [B, P + S], `position_ids` [B, S] and, for
the decode network, `past_key_values.{i}.key|value` [B, n_head, P, head_dim]; out come `logits` [B, S, vocab] and
`present.{i}.key|value` [B, n_head, P + S, head_dim].
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from trtnet import nn, ops
from trtnet.errors import ConfigError
from trtnet.nn.decoder import CausalLM, tied_head
from trtnet.ops import kv_cache
from trtnet.tensor import Tensor
from trtnet.zoo.gpt2 import GPT2Attention, GPT2Block, GPT2Config
from trtnet.zoo.registry import Weights, register, with_weights
from trtnet.zoo.sources import transformers_gpt2_lm_source


class GPT2CachedAttention(GPT2Attention):
    """GPT-2's attention over the cache and this step's tokens; returns the output and the present keys, values."""

    def forward(self, x: Tensor, keep: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
        h = self._heads
        weight, bias = self.qkv_weight()  # GPT-2's scaling folded into the query rows
        qkv = ops.split_heads_linear(x, weight, bias, 3 * h)  # [B, 3h, S, d]
        k = kv_cache.append(None if past is None else past[0], qkv[:, h : 2 * h])
        v = kv_cache.append(None if past is None else past[1], qkv[:, 2 * h :])
        o = ops.scaled_dot_product_attention(qkv[:, :h], k, v, mask=keep, scale=1.0)
        return self.c_proj(ops.merge_heads(o)), k, v


class GPT2CachedBlock(GPT2Block):
    def __init__(self, c: GPT2Config, layer_idx: int) -> None:
        super().__init__(c, layer_idx)
        self.attn = GPT2CachedAttention(c, layer_idx)

    def forward(self, x: Tensor, keep: Tensor, past) -> tuple[Tensor, Tensor, Tensor]:
        a, k, v = self.attn(self.ln_1(x), keep, past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), k, v


class GPT2Transformer(nn.Module):
    """`GPT2LMHeadModel.transformer`: the embeddings, the blocks and the final LayerNorm."""

    def __init__(self, c: GPT2Config) -> None:
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.n_positions, c.n_embd)
        self.h = [GPT2CachedBlock(c, i) for i in range(c.n_layer)]
        self.ln_f = nn.LayerNorm(c.n_embd, c.layer_norm_epsilon)


class GPT2LMHeadModel(CausalLM):
    """`transformers.GPT2LMHeadModel` with its KV cache as engine I/O (see the module docstring).

    `past`: the decode network (else the prefill one); `max_context` (default: n_positions) bounds P + S.
    """

    def __init__(self, config: GPT2Config, past: bool = False, max_context: int | None = None) -> None:
        limit = config.n_positions
        self.max_context = ConfigError.check(
            "max_context",
            limit if max_context is None else max_context,
            f"an integer from 2 to n_positions {limit}",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= limit,
            source="GPT-2",
        )
        self.transformer = GPT2Transformer(config)
        self.config = config
        self._past = past

    @property
    def num_layers(self) -> int:
        return self.config.n_layer

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def kv_shape(self) -> tuple[int, int]:
        return self.config.n_head, self.config.n_embd // self.config.n_head

    def adapt_state(self, prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The head is tied to `wte` (GPT-2 has no untied head): either saved copy loads."""
        return tied_head(state, "transformer.wte.weight", why="GPT-2 ties its LM head to wte and has no other")

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, *past: Tensor):
        t = self.transformer
        x = nn.tokens(t.wte(input_ids) + t.wpe(position_ids))  # [B, 1, S, E]
        keep = kv_cache.decoder_keep(input_ids, attention_mask)
        presents = []
        for i, block in enumerate(t.h):
            x, k, v = block(x, keep, (past[2 * i], past[2 * i + 1]) if past else None)
            presents += [k, v]
        logits = ops.linear(t.ln_f(x), t.wte.weight.data)
        return [nn.untokens(logits), *presents]


def _entry(name: str, repo: str, base: GPT2Config):
    """Register `name`: GPT-2 with `base`'s shape and an LM head, for generation."""

    def entry(
        weights: Weights = None,
        config: str | os.PathLike | Mapping[str, Any] | None = None,
        past: bool = False,
        max_context: int | None = None,
    ) -> GPT2LMHeadModel:
        c = base if config is None else GPT2Config.from_hf(config)
        return with_weights(GPT2LMHeadModel(c, past, max_context), weights)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"GPT-2 ({repo}) with its LM head and KV cache as engine I/O, transformers' `GPT2LMHeadModel` keys. "
        "`weights`: a safetensors file or dict, or None (seeded random); `config`: a Hugging Face config.json path "
        f"or dict (default: {repo}'s); `past`: the decode network (else the prefill one); `max_context`: the "
        "longest prompt plus generated tokens (default: n_positions)."
    )
    sizes = {f: getattr(base, f) for f in ("n_embd", "n_layer", "n_head")}
    shown = ", ".join(f"{k}={v}" for k, v in sizes.items() if v != getattr(GPT2Config(), k))
    source = f"transformers.GPT2LMHeadModel(GPT2Config({shown}))"
    return register(name, source, transformers_gpt2_lm_source(**sizes), config=base)(entry)


gpt2_lm = _entry("gpt2_lm", "openai-community/gpt2", GPT2Config())
gpt2_medium_lm = _entry(
    "gpt2_medium_lm", "openai-community/gpt2-medium", GPT2Config(n_embd=1024, n_layer=24, n_head=16)
)
