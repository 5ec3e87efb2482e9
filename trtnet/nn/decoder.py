"""The pieces of a Llama-family decoder that the sources leave to the framework: RMSNorm, and self-attention with
rotary embeddings, grouped-query heads and a KV cache carried as engine I/O.

A model's attention subclasses `DecoderAttention`, declares `q_proj`, `k_proj`, `v_proj` and `o_proj` under
transformers' names and calls `self.attend(...)`. The tricks live here and in `ops.rotary` / `ops.kv_cache`:
- one batched projection yields [q, rotate_half(q), k, rotate_half(k), v] as heads of one [B, heads, S, d]
  tensor (`ops.split_heads_linear`), the 1/sqrt(d) scale folded into the query rows;
- the new keys (after RoPE) and values are appended to the cache, and kv heads repeated for their query groups.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from trtnet import ops
from trtnet.errors import WeightsError
from trtnet.nn.module import Input, Module, Parameter
from trtnet.ops import kv_cache, rotary
from trtnet.tensor import Tensor


class RMSNorm(Module):
    """transformers' `LlamaRMSNorm`: x / sqrt(mean(x^2) + eps) in float32, then times `weight`."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        self.weight = Parameter((dim,), init="ones")
        self._eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x32 = ops.cast(x, "float32")
        variance = ops.mean(ops.mul(x32, x32), -1, keepdim=True)
        normed = ops.cast(ops.mul(x32, ops.rsqrt(ops.add(variance, self._eps))), dtype)
        weight = ops.constant(self.weight.data.reshape((1,) * (x.ndim - 1) + (-1,)), dtype, op="weight")
        return ops.mul(normed, weight)


class DecoderAttention(Module):
    """Base of a decoder's causal self-attention with RoPE, grouped-query heads and a KV cache.

    Subclasses set `q_proj`, `k_proj`, `v_proj` (Linears to heads * head_dim, kv_heads * head_dim) and `o_proj`.
    """

    def __init__(self, heads: int, kv_heads: int, head_dim: int) -> None:
        self._heads, self._kv_heads, self._head_dim = heads, kv_heads, head_dim

    def projection(self) -> tuple[np.ndarray, np.ndarray | None]:
        """[q; rotate_half(q); k; rotate_half(k); v] as one (weight, bias), the query rows scaled by 1/sqrt(d)."""
        d = self._head_dim
        parts = [
            (p.weight.data, None if p.bias is None else p.bias.data) for p in (self.q_proj, self.k_proj, self.v_proj)
        ]
        if any(b is not None for _, b in parts):  # a bias on some projections only: zeros for the others
            parts = [(w, np.zeros(w.shape[0], np.float32) if b is None else b) for w, b in parts]
        scale = np.float32(1.0 / math.sqrt(d))
        (wq, bq), (wk, bk), (wv, bv) = parts
        wq, bq = wq * scale, None if bq is None else bq * scale
        rq, rbq = rotary.rotated_rows(wq, bq, d)
        rk, rbk = rotary.rotated_rows(wk, bk, d)
        weight = np.concatenate([wq, rq, wk, rk, wv])
        bias = None if bq is None else np.concatenate([bq, rbq, bk, rbk, bv])
        return weight, bias

    def attend(
        self, x: Tensor, rope: tuple[Tensor, Tensor], keep: Tensor, past: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Attention of tokens x [B, 1, S, D] over the cache and themselves -> (output [B, 1, S, heads * d]
        before `o_proj`, present keys, present values [B, kv_heads, P + S, d]). `keep`: `ops.kv_cache.decoder_keep`."""
        h, kv = self._heads, self._kv_heads
        weight, bias = self.projection()
        qkv = ops.split_heads_linear(x, weight, bias, 2 * h + 3 * kv)  # [B, 2h + 3kv, S, d]
        cos, sin = rope
        q = rotary.apply_rotary(qkv[:, :h], qkv[:, h : 2 * h], cos, sin)
        k = rotary.apply_rotary(qkv[:, 2 * h : 2 * h + kv], qkv[:, 2 * h + kv : 2 * h + 2 * kv], cos, sin)
        v = qkv[:, 2 * h + 2 * kv :]
        k = kv_cache.append(None if past is None else past[0], k)
        v = kv_cache.append(None if past is None else past[1], v)
        groups = h // kv
        o = ops.scaled_dot_product_attention(
            q, kv_cache.repeat_kv(k, groups), kv_cache.repeat_kv(v, groups), mask=keep, scale=1.0
        )
        return ops.merge_heads(o), k, v


class CausalLM(Module):
    """What every decoder of the generation path shares: a prefill and a decode stage of one model (`stage`),
    the KV cache as engine I/O named as transformers names it, and the inputs that make the stages' profiles.

    A subclass sets `max_context`, `_past`, `num_layers`, `vocab_size` and `kv_shape` (kv heads, head dim).
    """

    max_context: int
    vocab_size: int
    kv_shape: tuple[int, int]
    _past: bool = False

    @property
    def num_layers(self) -> int:
        raise NotImplementedError(type(self).__name__)

    def stage(self, past: bool) -> CausalLM:
        """This model as the prefill (`past=False`) or decode (`past=True`) network, sharing its weights."""
        other = copy.copy(self)
        other._past = past
        return other

    def cache_names(self) -> list[tuple[str, str, str, str]]:
        """(past key, past value, present key, present value) names per layer."""
        return [
            (f"past_key_values.{i}.key", f"past_key_values.{i}.value", f"present.{i}.key", f"present.{i}.value")
            for i in range(self.num_layers)
        ]

    def inputs(self) -> list[Input]:
        n = self.max_context
        if not self._past:  # the prompt: S = T from 1 to the context
            s = t = (1, min(64, n), n)
        else:  # S new tokens after P >= 1 cached ones
            s, t = (1, 1, n - 1), (2, min(64, n), n)
        # P + S = T at the profile's opt too: past 64 at a mask of 64 made TensorRT log that the mask does not
        # broadcast to 65 keys, for every context longer than 64
        p = (1, t[1] - s[1], n - 1)
        specs = [
            Input("input_ids", (s,), "int32", high=self.vocab_size),
            Input("attention_mask", (t,), "int32", low=1),
            Input("position_ids", (s,), "int32", high=n),
        ]
        if self._past:
            heads, dim = self.kv_shape
            for pk, pv, _, _ in self.cache_names():
                specs += [Input(name, (heads, p, dim)) for name in (pk, pv)]
        return specs

    def output_names(self, n: int) -> list[str]:
        return ["logits"] + [name for names in self.cache_names() for name in names[2:]]


def tied_head(
    state: dict[str, np.ndarray], embed: str, head: str = "lm_head.weight", why: str = ""
) -> dict[str, np.ndarray]:
    """A head tied to the embedding `embed`: `state_dict()` saves it twice (or only as `head`), safetensors keeps
    either copy; the embedding stays. A head that differs from the embedding is a WeightsError saying so (`why`
    the model ties them): strict loading named it only as an unexpected key."""
    value = state.get(head)
    if value is not None and embed not in state:
        state[embed] = state.pop(head)
    elif value is not None and np.array_equal(np.asarray(value), np.asarray(state[embed]), equal_nan=True):
        del state[head]
    elif isinstance(value, np.ndarray) and value.shape == np.shape(state[embed]):  # not shapes alone: values
        raise WeightsError(f"{head} differs from {embed}, which is the head here: {why or 'the model ties them'}")
    return state
