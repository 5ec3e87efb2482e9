"""GPT-2 (Hugging Face transformers' `GPT2Model`): token and learned position embeddings, pre-LayerNorm blocks
of causal self-attention and a tanh-GELU MLP, a final LayerNorm.

Read it beside transformers' `modeling_gpt2.py`: the attribute names are its state_dict keys (`h.0.attn.c_attn`).
Its projections are `nn.Conv1D`s, linears whose weight is stored [in, out]; the attention is
`nn.MultiHeadAttention`, which fuses the scale into the query rows and runs TensorRT's causal attention. Hidden
states travel as [B, 1, S, E] (that module's layout) from the embeddings on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtnet import nn, ops
from trtnet.errors import ConfigError
from trtnet.nn.module import Input
from trtnet.tensor import Tensor
from trtnet.zoo.common import SeqLen, seq_range
from trtnet.zoo.hf_config import activation, check_fields, flag, from_hf, integer, positive_float
from trtnet.zoo.registry import Weights, register, with_weights
from trtnet.zoo.sources import transformers_gpt2_pretrained, transformers_gpt2_source


@dataclass(frozen=True)
class GPT2Config:
    """The fields of a Hugging Face `GPT2Config` that shape the network (defaults: GPT-2 small, 124M)."""

    vocab_size: int = integer(1, 2**20, default=50257)
    n_positions: int = integer(1, 2**17, default=1024)
    n_embd: int = integer(1, 2**16, default=768)
    n_layer: int = integer(1, 1024, default=12)
    n_head: int = integer(1, 2**12, default=12)
    n_inner: int | None = integer(1, 2**18, default=None, optional=True)  # None: 4 * n_embd
    activation_function: str = activation(default="gelu_new")
    layer_norm_epsilon: float = positive_float(default=1e-5)
    scale_attn_weights: bool = flag(default=True)
    scale_attn_by_inverse_layer_idx: bool = flag(default=False)
    add_cross_attention: bool = flag(default=False)

    # transformers' `attribute_map`: a config.json may use either name.
    ALIASES = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }

    @classmethod
    def from_hf(cls, config: str | os.PathLike | Mapping[str, Any]) -> GPT2Config:
        """Read a Hugging Face `config.json` (a path or its dict); keys it lacks keep GPT-2 small's values."""
        return from_hf(cls, config, "GPT-2", cls.ALIASES, model_type="gpt2")

    def __post_init__(self) -> None:
        check_fields(self, "GPT-2")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"GPT-2 config: n_embd {self.n_embd} does not split into n_head {self.n_head}; it "
                "must be a multiple of it"
            )
        ConfigError.check(
            "add_cross_attention",
            self.add_cross_attention,
            "false (GPT-2 as the decoder of an encoder-decoder model is not supported)",
            lambda v: not v,
            source="GPT-2 config",
        )

    @property
    def inner_dim(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd


class GPT2Attention(nn.MultiHeadAttention):
    """Causal self-attention: `c_attn` projects to [q; k; v] at once, `c_proj` mixes the heads."""

    # Causal-mask buffers that checkpoints written by older transformers carry; the mask is made here.
    skip_keys = ("bias", "masked_bias")

    def __init__(self, c: GPT2Config, layer_idx: int) -> None:
        super().__init__(c.n_head, is_causal=True)
        self.c_attn = nn.Conv1D(3 * c.n_embd, c.n_embd)
        self.c_proj = nn.Conv1D(c.n_embd, c.n_embd)
        scaling = 1.0 / math.sqrt(c.n_embd // c.n_head) if c.scale_attn_weights else 1.0
        self._scaling = scaling / (layer_idx + 1) if c.scale_attn_by_inverse_layer_idx else scaling

    def qkv_weight(self) -> tuple[np.ndarray, np.ndarray | None]:
        """`c_attn` as the [3E, E] projection `attend` takes (its Conv1D weight is [E, 3E]), with GPT-2's own
        scaling folded into the query rows."""
        weight, bias = self.c_attn.weight.data.T, self.c_attn.bias.data
        e = weight.shape[0] // 3
        row_scale = np.ones(3 * e, np.float32)
        row_scale[:e] = self._scaling
        return weight * row_scale[:, None], bias * row_scale

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        return self.c_proj(self.attend(x, mask=keep))


class GPT2MLP(nn.Module):
    def __init__(self, inner: int, c: GPT2Config) -> None:
        self.c_fc = nn.Conv1D(inner, c.n_embd)
        self.c_proj = nn.Conv1D(c.n_embd, inner)
        self._act = ops.activation_by_name(c.activation_function, "GPT-2 config: activation_function")

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self._act(self.c_fc(x)))


class GPT2Block(nn.Module):
    """Pre-LayerNorm: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, c: GPT2Config, layer_idx: int) -> None:
        self.ln_1 = nn.LayerNorm(c.n_embd, c.layer_norm_epsilon)
        self.attn = GPT2Attention(c, layer_idx)
        self.ln_2 = nn.LayerNorm(c.n_embd, c.layer_norm_epsilon)
        self.mlp = GPT2MLP(c.inner_dim, c)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x), keep)
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    """`transformers.GPT2Model`: (input_ids, attention_mask) -> last_hidden_state [B, S, E].

    Positions are 0..S-1 in every row, as GPT2Model counts them without a cache: pad on the right.
    """

    # The LM head of a `GPT2LMHeadModel` file whose head is not tied to `wte` (tied ones are folded in
    # `adapt_state`): present, not used by GPT2Model.
    unused_keys = ("lm_head.weight",)

    def __init__(self, config: GPT2Config = GPT2Config(), seq_len: SeqLen = 128) -> None:
        self._seq = seq_range(seq_len, config.n_positions, "GPT-2", "n_positions")
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = [GPT2Block(config, i) for i in range(config.n_layer)]
        self.ln_f = nn.LayerNorm(config.n_embd, config.layer_norm_epsilon)
        self._config = config

    def inputs(self) -> list[Input]:
        s = (self._seq,)
        return [
            Input("input_ids", s, "int32", high=self._config.vocab_size),
            Input("attention_mask", s, "int32", padding_mask=True),
        ]

    def output_names(self, n: int) -> list[str]:
        return ["last_hidden_state"]

    def adapt_state(self, prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Accept `GPT2LMHeadModel` files: keys under `transformer.`, and the LM head tied to `wte`, saved as
        either copy (safetensors keeps one of two tied tensors: `lm_head.weight` or `transformer.wte.weight`)."""
        if any(k.startswith("transformer.") for k in state):
            state = {k[len("transformer.") :] if k.startswith("transformer.") else k: v for k, v in state.items()}
        head = state.get("lm_head.weight")
        if head is not None and "wte.weight" not in state:
            state["wte.weight"] = state.pop("lm_head.weight")
        elif head is not None and np.array_equal(np.asarray(head), np.asarray(state["wte.weight"])):
            del state["lm_head.weight"]  # the tied copy: one tensor saved twice
        return state

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        b, s = input_ids.shape  # -1 where the engine takes a range (batch, sequence length)
        x = self.wte(input_ids) + self.wpe.first_rows(input_ids)  # positions 0..S-1 in every row
        keep = ops.cast(attention_mask.reshape(b, 1, 1, s), "bool")  # nonzero: attend
        x = nn.tokens(x)
        for block in self.h:
            x = block(x, keep)
        return nn.untokens(self.ln_f(x))


def _entry(name: str, repo: str, base: GPT2Config):
    """Register the zoo entry `name`: GPT-2 with `base`'s shape (the Hugging Face `repo`'s config)."""
    sizes = {f: getattr(base, f) for f in ("n_embd", "n_layer", "n_head")}
    shown = ", ".join(f"{k}={v}" for k, v in sizes.items() if v != getattr(GPT2Config(), k))

    def entry(
        weights: Weights = None, config: str | os.PathLike | Mapping[str, Any] | None = None, seq_len: SeqLen = 128
    ) -> GPT2Model:
        c = base if config is None else GPT2Config.from_hf(config)
        return with_weights(GPT2Model(c, seq_len), weights)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"GPT-2 ({repo}) with transformers' state_dict keys. `weights`: a `GPT2Model` or "
        "`GPT2LMHeadModel` safetensors file, a dict, or None; `config`: a Hugging Face config.json path "
        f"or dict (default: {repo}'s); `seq_len`: the sequence length, or (min, opt, max) for one engine "
        "that takes every length in that range."
    )
    source = f"transformers.GPT2Model(GPT2Config({shown}))"
    return register(
        name, source, transformers_gpt2_source(**sizes), pretrained=transformers_gpt2_pretrained(repo), config=base
    )(entry)


gpt2 = _entry("gpt2", "openai-community/gpt2", GPT2Config())
gpt2_medium = _entry("gpt2_medium", "openai-community/gpt2-medium", GPT2Config(n_embd=1024, n_layer=24, n_head=16))
gpt2_large = _entry("gpt2_large", "openai-community/gpt2-large", GPT2Config(n_embd=1280, n_layer=36, n_head=20))
gpt2_xl = _entry("gpt2_xl", "openai-community/gpt2-xl", GPT2Config(n_embd=1600, n_layer=48, n_head=25))
