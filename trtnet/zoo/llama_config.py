"""The configs of the zoo's Llama and Qwen2 (`trtnet.zoo.llama`): Hugging Face `config.json` files read as transformers
reads them (its defaults for the keys a file lacks, its precedence between rope settings given twice), every field
checked, and the same config back as transformers' keyword arguments (`hf_kwargs`) to build the PyTorch source.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from trtnet.errors import ConfigError
from trtnet.ops.rotary import RopeScaling
from trtnet.zoo.hf_config import activation, check_fields, flag, from_hf, integer, positive_float, read_json

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
    # Read only to find whether any block slides (transformers drops the window when use_sliding_window is off):
    # any whole number is taken, as transformers takes it.
    sliding_window: int | None = integer(-(2**63), 2**63 - 1, default=4096, optional=True)
    max_window_layers: int = integer(-(2**63), 2**63 - 1, default=28)  # blocks from this one on slide
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
        # A window as long as the longest context sees every earlier token: full attention.
        window = self.sliding_window is not None and self.sliding_window < self.max_position_embeddings
        if self.use_sliding_window and window and sliding:
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
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731  not "2", not true
    needs = {"linear": ("factor",), "llama3": ("factor", "low_freq_factor", "high_freq_factor")}.get(kind, ())
    missing = [name for name in needs if name not in rope]
    if missing:  # transformers refuses such a file too: no default stands in for a scaling the file does not give
        raise ConfigError(f"{where}: a {kind} rope needs {', '.join(missing)}, which the config does not give")
    # Only the keys the type reads are checked, and kept; transformers ignores the others (a linear rope's
    # original_max_position_embeddings: null, a default rope's factor).
    values = {name: rope[name] for name in needs}
    for name, value in values.items():
        # 1 / factor is taken too: a factor so small its inverse is infinite made NaN rope tables
        ConfigError.check(
            name,
            value,
            "a positive finite number",
            lambda v: number(v) and 0 < v < math.inf and math.isfinite(1.0 / v),
            source=where,
        )
    if kind == "llama3":
        name = "original_max_position_embeddings"
        values[name] = rope.get(name, base.original_max_position_embeddings)
        ConfigError.check(
            name,
            values[name],
            "a whole number from 1 to 2**31 - 1",
            lambda v: number(v) and v == int(v) and 1 <= v < 2**31,
            source=where,
        )
    return dataclasses.replace(base, rope_type=kind, **{k: type(getattr(base, k))(v) for k, v in values.items()})


# The rope parameters each rope type reads (transformers warns of the others, and ignores them).
_ROPE_KEYS = {"default": (), "linear": ("factor",), "llama3": tuple(f.name for f in dataclasses.fields(RopeScaling))}


def hf_kwargs(c: LlamaConfig) -> dict[str, Any]:
    """`c` as keyword arguments of transformers' config class (its rope as `rope_parameters`), building the model `c`
    describes. A head_dim of None (hidden_size / heads) is left out for transformers' own default: Qwen2's attention
    took the None as its head_dim, and `trtnet verify qwen2` was an internal error. Every other None is passed as
    None: left out, transformers' default stood in (Qwen2's 32 kv heads, a sliding window of 4096)."""
    values = {f.name: getattr(c, f.name) for f in dataclasses.fields(c) if f.name != "rope_scaling"}
    if values["head_dim"] is None:
        del values["head_dim"]
    if values.get("layer_types") is not None:
        values["layer_types"] = list(values["layer_types"])  # transformers' dataclass takes a list only
    kind = c.rope_scaling.rope_type
    rope = {k: getattr(c.rope_scaling, k) for k in _ROPE_KEYS[kind] if k != "rope_type"}
    values["rope_parameters"] = {"rope_type": kind, **rope, "rope_theta": values.pop("rope_theta")}
    return values
