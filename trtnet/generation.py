"""Token generation over a decoder's two networks: a prefill step (the prompt in, logits and the KV cache out) and
a decode step (new tokens and the cache in), run by the interpreter on the CPU or by engines on a GPU with the
same loop. Both take numpy arrays by input name and give numpy arrays by output name.

>>> tokens = trtnet.generate(llama(config=cfg), np.array([[1, 2, 3]]), max_new_tokens=8)   # doctest: +SKIP

Sampling follows transformers' order: temperature, then top-k, then top-p (nucleus), then a draw from a
numpy `Generator` seeded by `seed`; `temperature=0` is greedy (argmax, the first of equal maxima).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtnet.builder.emit import Network, emit
from trtnet.errors import ConfigError
from trtnet.interpreter import Interpreter
from trtnet.runtime.engine import Engine
from trtnet.runtime.sidecar import TensorSpec

Step = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class Decoder:
    """A decoder's prefill and decode steps, each feeds -> outputs by name, and the cache names they share."""

    prefill: Step
    decode: Step
    cache: list[tuple[str, str, str, str]]  # (past key, past value, present key, present value) per layer
    max_context: int
    max_batch: int
    vocab: int = 0  # the logits' last dim: token ids run from 0 to vocab - 1 (0: not known)

    @classmethod
    def from_model(cls, model: Any, max_batch: int = 8, **options: Any) -> Decoder:
        """Emit `model`'s two stages (a zoo decoder: `model.stage(past)`) for batches up to `max_batch` and run
        them in the interpreter. `options`: emission options (`precision`...)."""
        if not hasattr(model, "stage"):
            raise ConfigError(
                f"generate: {type(model).__name__} is not a decoder with a KV cache (a zoo `llama` or `qwen2` model, "
                "a pair of engines or networks, or a Decoder)"
            )
        ConfigError.check("max_batch", max_batch, "an integer >= 1", lambda v: _whole(v) and v >= 1, source="generate")
        batch = (1, 1, int(max_batch))
        nets = [emit(model.stage(past), batch, **options) for past in (False, True)]
        return cls.from_pair(*nets)

    @classmethod
    def from_pair(cls, prefill: Network | Engine, decode: Network | Engine) -> Decoder:
        """Wrap a prefill and a decode network (run by the interpreter) or engine (run on the GPU)."""
        for stage in (prefill, decode):
            if not isinstance(getattr(stage, "inputs", None), (list, tuple)):  # stage(past=...) itself, or None
                raise ConfigError(
                    f"generate: a (prefill, decode) pair is of Networks or Engines (model.stage(past) gives one), "
                    f"not {type(stage).__name__}"
                )
        specs = {s.name: s for s in decode.inputs}
        layers = sum(n.startswith("past_key_values.") for n in specs) // 2
        cache = [
            (f"past_key_values.{i}.key", f"past_key_values.{i}.value", f"present.{i}.key", f"present.{i}.value")
            for i in range(layers)
        ]
        mask = specs.get("attention_mask")
        if mask is None or not layers:
            raise ConfigError("generate: the decode step has no attention_mask or past_key_values.* inputs")
        logits = next((s for s in prefill.outputs if s.name == "logits"), None)
        vocab = int(logits.shape[-1]) if logits is not None and logits.shape and logits.shape[-1] > 0 else 0
        return cls(_step(prefill), _step(decode), cache, _max(mask, 1), _max(mask, 0), vocab)


def _max(spec: TensorSpec, axis: int) -> int:
    return (spec.max_shape or spec.shape)[axis] if axis else spec.batch_range()[1]


def _step(stage: Network | Engine) -> Step:
    if isinstance(stage, Network):
        interpreter = Interpreter(stage.network)
        return lambda feeds: interpreter.run(feeds)
    if isinstance(stage, Engine):
        names, outs = [s.name for s in stage.inputs], [s.name for s in stage.outputs]
        return lambda feeds: dict(zip(outs, (np.asarray(o) for o in stage(*[feeds[n] for n in names]))))
    raise ConfigError(f"generate: a stage must be a Network or an Engine, not {type(stage).__name__}")


@dataclass(frozen=True)
class Sampling:
    """How the next token is picked: greedy when `temperature` is 0, else drawn after top-k and top-p."""

    temperature: float = 0.0
    top_k: int = 0  # 0: no top-k
    top_p: float = 1.0  # 1.0: no nucleus cut

    def __post_init__(self) -> None:
        num = lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))  # noqa: E731
        ConfigError.check(  # inf drew uniformly (every score 0): a large number says that
            "temperature",
            self.temperature,
            "a finite number >= 0",
            lambda v: num(v) and 0 <= v < math.inf,
            source="generate",
        )
        ConfigError.check("top_k", self.top_k, "an integer >= 0", lambda v: _whole(v) and v >= 0, source="generate")
        ConfigError.check("top_p", self.top_p, "a number in (0, 1]", lambda v: num(v) and 0 < v <= 1, source="generate")

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        """The probabilities [B, V] that sampling draws from (temperature, top-k, top-p applied), float64."""
        wide = logits.astype(np.float64)
        # Shifted by the row's maximum first (the same softmax): logits / 1e-320 overflowed to +-inf, and the
        # softmax of inf - inf, or of a row all -inf, was NaN. Shifted, the largest is 0 and the rest go to -inf.
        with np.errstate(over="ignore"):
            scores = (wide - wide.max(-1, keepdims=True)) / self.temperature
        if 0 < self.top_k < scores.shape[-1]:
            kth = np.sort(scores, axis=-1)[:, -self.top_k][:, None]
            scores = np.where(scores < kth, -np.inf, scores)  # ties with the k-th are kept, as transformers does
        if self.top_p < 1.0:
            # transformers' TopPLogitsWarper: drop the low tail whose mass is at most 1 - top_p, keep the top one.
            order = np.argsort(scores, axis=-1, kind="stable")  # of tied tokens the last id stays, as in transformers
            ascending = np.take_along_axis(scores, order, -1)
            cum = np.cumsum(_softmax(ascending), axis=-1)
            drop = cum <= 1 - self.top_p
            drop[:, -1] = False
            np.put_along_axis(scores, order, np.where(drop, -np.inf, ascending), -1)
        return _softmax(scores)

    def pick(self, logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The next token of each row of `logits` [B, V]: argmax when greedy, else one draw from `rng`."""
        if self.temperature == 0:
            return np.argmax(logits, axis=-1)
        cdf = np.cumsum(self.distribution(logits), axis=-1)
        draws = rng.random(len(cdf))[:, None] * cdf[:, -1:]
        return np.minimum((cdf <= draws).sum(-1), cdf.shape[-1] - 1)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@dataclass
class Token:
    """One generation step: the new token of each row, its logits [B, V], and which rows have stopped."""

    tokens: np.ndarray
    logits: np.ndarray
    finished: np.ndarray


def stream(
    model: Any,
    input_ids: np.ndarray,
    max_new_tokens: int,
    *,
    attention_mask: np.ndarray | None = None,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop_tokens: Sequence[int] = (),
    pad_token_id: int | None = None,
) -> Iterator[Token]:
    """Yield each new token as it is made (see `generate`): one prefill, then one decode step per token.
    Rows that met a stop token get `pad_token_id` after it; the stream ends when all rows stopped."""
    decoder = as_decoder(model, len(np.asarray(input_ids)))
    sampling = Sampling(temperature, top_k, top_p)
    ids, mask = _prompt(input_ids, attention_mask)
    b, s = ids.shape
    if s >= decoder.max_context:  # else the range below reads "from 1 to -1", of max_new_tokens
        raise ConfigError(
            f"generate: the prompt's {s} tokens fill the context of {decoder.max_context}: no token can follow them "
            "(a longer max_context, or a shorter prompt)"
        )
    ConfigError.check(
        "max_new_tokens",
        max_new_tokens,
        f"an integer from 1 to {decoder.max_context - s} (the context "
        f"{decoder.max_context} less the prompt's {s} tokens)",
        lambda v: _whole(v) and 1 <= v <= decoder.max_context - s,
        source="generate",
    )
    ConfigError.check(
        "batch", b, f"at most {decoder.max_batch} rows", lambda v: v <= decoder.max_batch, source="generate"
    )
    if isinstance(stop_tokens, (str, bytes)) or not isinstance(stop_tokens, Iterable):
        raise ConfigError(f"generate: stop_tokens must be a sequence of token ids, not {stop_tokens!r:.60}")
    stops = np.asarray([_token_id(t, "stop_tokens") for t in stop_tokens], np.int64)
    pad = _token_id(pad_token_id, "pad_token_id") if pad_token_id is not None else (int(stops[0]) if stops.size else 0)
    if decoder.vocab:  # an id past the vocabulary failed in the embedding's gather (or, on an engine, read past it)
        for what, given in (("input_ids", ids), ("stop_tokens", stops), ("pad_token_id", [pad])):
            if len(given) and int(np.max(given)) >= decoder.vocab:
                raise ConfigError(
                    f"generate: {what} must be token ids from 0 to {decoder.vocab - 1} (the vocabulary), not "
                    f"{int(np.max(given))}"
                )
    if isinstance(seed, bool):  # numpy would take True as 1
        raise ConfigError("generate: seed must be None, an integer >= 0 or what else seeds numpy, not a bool")
    try:  # anything numpy seeds a generator with: None, an integer >= 0, a list of them, a Generator
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"generate: seed {seed!r:.60} does not seed numpy's generator ({e})") from None
    positions = np.where(mask == 0, 1, np.cumsum(mask, axis=1) - 1).astype(np.int32)
    out = decoder.prefill({"input_ids": ids, "attention_mask": mask, "position_ids": positions})
    finished = np.zeros(b, bool)
    last = positions[:, -1:]
    for step in range(max_new_tokens):
        logits = np.asarray(out["logits"])[:, -1, :]
        tokens = np.where(finished, pad, sampling.pick(logits, rng)).astype(np.int32)
        finished = finished | np.isin(tokens, stops)
        yield Token(tokens, logits, finished.copy())
        if finished.all() or step == max_new_tokens - 1:
            return
        mask = np.concatenate([mask, np.ones((b, 1), np.int32)], axis=1)
        last = last + 1
        feeds = {"input_ids": tokens[:, None], "attention_mask": mask, "position_ids": last.astype(np.int32)}
        for pk, pv, nk, nv in decoder.cache:
            feeds[pk], feeds[pv] = out[nk], out[nv]
        out = decoder.decode(feeds)


def generate(model: Any, input_ids: np.ndarray, max_new_tokens: int, **options: Any) -> np.ndarray:
    """The prompt `input_ids` [B, S] followed by up to `max_new_tokens` new tokens, int32 [B, S + n].

    `model`: a zoo decoder (run in the interpreter), a (prefill, decode) pair of Engines (on the GPU) or
    Networks, or a `Decoder`. Options as for `stream`: `attention_mask` (0 on left padding), `temperature`
    (0: greedy), `top_k`, `top_p`, `seed`, `stop_tokens`, `pad_token_id`.
    """
    ids, _ = _prompt(input_ids, options.get("attention_mask"))
    new = [t.tokens for t in stream(model, ids, max_new_tokens, **options)]
    return np.concatenate([ids, np.stack(new, axis=1)], axis=1)


def as_decoder(model: Any, batch: int) -> Decoder:
    """`model` as a Decoder: itself, a (prefill, decode) pair, or a zoo decoder emitted for `batch` rows."""
    if isinstance(model, Decoder):
        return model
    if isinstance(model, (tuple, list)) and len(model) == 2:
        return Decoder.from_pair(*model)
    return Decoder.from_model(model, max_batch=max(1, batch))


def _prompt(input_ids: Any, attention_mask: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        ids = np.asarray(input_ids)
        mask = np.ones(ids.shape, np.int32) if attention_mask is None else np.asarray(attention_mask)
    except ValueError as e:  # a ragged list
        raise ConfigError(f"generate: input_ids and attention_mask must be rectangular arrays ({e})") from None
    except TypeError as e:  # a type numpy does not take (a torch bfloat16 tensor)
        raise ConfigError(f"generate: input_ids and attention_mask must be integer arrays ({e})") from None
    given = list(mask.shape)
    ids, mask = (ids[None] if ids.ndim == 1 else ids), (mask[None] if mask.ndim == 1 else mask)
    if ids.ndim != 2 or 0 in ids.shape or ids.dtype.kind not in "iu":
        raise ConfigError(
            f"generate: input_ids must be integer token ids [batch, length >= 1], not {ids.dtype} {list(ids.shape)}"
        )
    if ids.min() < 0 or ids.max() >= 2**31:  # int32 in the network: 2**32 became 0, -1 the last row
        raise ConfigError(f"generate: input_ids must be token ids from 0 to 2**31 - 1, not {ids.min()}..{ids.max()}")
    if mask.shape != ids.shape:
        raise ConfigError(f"generate: attention_mask {given} must have input_ids' shape {list(ids.shape)}")
    if mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():  # a structured array cannot be compared
        raise ConfigError("generate: attention_mask must hold 1 (a token) and 0 (padding) only")
    # Padding goes on the left: new tokens follow the last column, so a row padded on the right (or in between)
    # would go on from its pad token, and a row of padding alone has nothing to go on from.
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise ConfigError(f"generate: attention_mask row {empty[0]} is all padding: every prompt needs a token")
    late = np.flatnonzero((np.diff(mask.astype(np.int8), axis=1) < 0).any(axis=1))  # bool's diff is XOR, uint8's wraps
    if late.size:
        raise ConfigError(
            f"generate: attention_mask row {late[0]} has padding after a token: pad prompts on the left (0s first), "
            "as new tokens follow the last column"
        )
    return ids.astype(np.int32), mask.astype(np.int32)


def _whole(v: Any) -> bool:
    """An integer, numpy's too, not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _token_id(value: Any, what: str) -> int:
    """A token id given in Python (stop_tokens, pad_token_id): an integer from 0 to 2**31 - 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**31:
        raise ConfigError(f"generate: {what} must be token ids, integers from 0 to 2**31 - 1, not {value!r:.60}")
    return int(value)
