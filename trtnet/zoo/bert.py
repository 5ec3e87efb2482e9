"""BERT (Hugging Face transformers' `BertModel`): embeddings, post-LayerNorm encoder, tanh pooler.

Hidden states travel in `nn.MultiHeadAttention`'s layout [B, 1, S, H] from the embeddings on; query, key and
value keep their own keys in the weights file (that module fuses them at emission).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtnet import nn, ops
from trtnet.errors import ConfigError
from trtnet.nn.module import Input
from trtnet.tensor import Tensor
from trtnet.zoo.common import SeqLen, seq_range
from trtnet.zoo.hf_config import activation, check_fields, from_hf, integer, positive_float
from trtnet.zoo.registry import Weights, register, with_weights
from trtnet.zoo.sources import transformers_bert_pretrained, transformers_bert_source


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face `BertConfig` that shape the network (defaults: bert-base-uncased), each
    checked against its rule (hf_config): bounds that refuse a nonsense size before anything is allocated."""

    hidden_size: int = integer(1, 2**16, default=768)
    num_hidden_layers: int = integer(1, 1024, default=12)
    num_attention_heads: int = integer(1, 2**12, default=12)
    intermediate_size: int = integer(1, 2**18, default=3072)
    vocab_size: int = integer(1, 2**20, default=30522)
    max_position_embeddings: int = integer(1, 2**17, default=512)
    type_vocab_size: int = integer(1, 2**10, default=2)
    layer_norm_eps: float = positive_float(default=1e-12)
    hidden_act: str = activation(default="gelu")

    @classmethod
    def from_hf(cls, config: str | os.PathLike | Mapping[str, Any]) -> BertConfig:
        """Read a Hugging Face `config.json` (a path or its dict); keys it lacks keep BERT-base's values."""
        return from_hf(cls, config, "BERT", model_type="bert")

    def __post_init__(self) -> None:
        check_fields(self, "BERT")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"BERT config: hidden_size {self.hidden_size} does not split into "
                f"num_attention_heads {self.num_attention_heads}; it must be a multiple of it"
            )


class BertEmbeddings(nn.Module):
    # Index buffers that transformers builds itself; older checkpoints saved them.
    skip_keys = ("position_ids", "token_type_ids")

    def __init__(self, c: BertConfig) -> None:
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, c.layer_norm_eps)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings.first_rows(input_ids)  # positions 0..S-1 in every sequence
        return self.LayerNorm(nn.tokens(x))


class BertSelfAttention(nn.MultiHeadAttention):
    """transformers' `BertSelfAttention`: `query`, `key`, `value`, softmax attention where `keep` is True."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__(c.num_attention_heads)
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        return self.attend(x, mask=keep)


class BertResidualOutput(nn.Module):
    """`BertSelfOutput` and `BertOutput`: dense, then LayerNorm of it plus the residual."""

    def __init__(self, cin: int, c: BertConfig) -> None:
        self.dense = nn.Linear(cin, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, c.layer_norm_eps)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        self.self = BertSelfAttention(c)  # transformers' attribute name, hence the key `attention.self.query`
        self.output = BertResidualOutput(c.hidden_size, c)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        return self.output(self.self(x, keep), x)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self._act = ops.activation_by_name(c.hidden_act, "BERT config: hidden_act")

    def forward(self, x: Tensor) -> Tensor:
        return self._act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertResidualOutput(c.intermediate_size, c)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        x = self.attention(x, keep)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        self.layer = [BertLayer(c) for _ in range(c.num_hidden_layers)]

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        for layer in self.layer:
            x = layer(x, keep)
        return x


class BertPooler(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        first = x[:, :, :1]  # the [CLS] token, [B, 1, 1, H]
        return ops.tanh(self.dense(first)).reshape(x.shape[0], x.shape[-1])


# transformers renames these on load (TensorFlow-era names); so does trtnet.
_LEGACY_NAMES = re.compile(r"(LayerNorm)\.(gamma|beta)$")


class Bert(nn.Module):
    """`transformers.BertModel`: (input_ids, attention_mask, token_type_ids) -> (last_hidden_state, pooler_output)."""

    # Pre-training heads of `BertForPreTraining`-style files: present, not used by the encoder.
    unused_keys = ("cls.*",)

    def __init__(self, config: BertConfig = BertConfig(), seq_len: SeqLen = 128) -> None:
        self._seq = seq_range(seq_len, config.max_position_embeddings, "BERT", "max_position_embeddings")
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)
        self._config = config

    def inputs(self) -> list[Input]:
        s, c = (self._seq,), self._config
        return [
            Input("input_ids", s, "int32", high=c.vocab_size),
            Input("attention_mask", s, "int32", padding_mask=True),
            Input("token_type_ids", s, "int32", high=c.type_vocab_size),
        ]

    def output_names(self, n: int) -> list[str]:
        return ["last_hidden_state", "pooler_output"]

    def adapt_state(self, prefix: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Accept `BertForPreTraining`-style keys (`bert.` prefix) and the old `LayerNorm.gamma/beta` names."""
        prefixed = any(k.startswith("bert.") for k in state)
        out = {}
        for key, value in state.items():
            if prefixed and key.startswith("bert."):
                key = key[len("bert.") :]
            out[_LEGACY_NAMES.sub(lambda m: f"{m[1]}.{'weight' if m[2] == 'gamma' else 'bias'}", key)] = value
        return out

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> tuple[Tensor, Tensor]:
        b, s = input_ids.shape
        x = self.embeddings(input_ids, token_type_ids)
        keep = ops.cast(attention_mask.reshape(b, 1, 1, s), "bool")  # nonzero: attend
        x = self.encoder(x, keep)
        return nn.untokens(x), self.pooler(x)


@register(
    "bert_base_uncased",
    "transformers.BertModel(BertConfig())",
    transformers_bert_source,
    benchmark=True,
    pretrained=transformers_bert_pretrained,
)
def bert_base_uncased(
    weights: Weights = None, config: str | os.PathLike | Mapping[str, Any] | None = None, seq_len: SeqLen = 128
) -> Bert:
    """BERT with transformers' state_dict keys; `config`: a Hugging Face config.json path or dict (default: base).
    `seq_len`: the sequence length, or (min, opt, max) for one engine that takes every length in that range.

    >>> model = bert_base_uncased(weights="model.safetensors", config="config.json")   # doctest: +SKIP
    """
    c = BertConfig() if config is None else BertConfig.from_hf(config)
    return with_weights(Bert(c, seq_len), weights)
