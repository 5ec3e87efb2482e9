"""Decoders in the benchmark: each stage (prefill, decode) built ahead of time on the CPU, its layers, build time
and plan size; on a GPU, the time to first token (the prefill step and the first pick) and decode tokens/s of
greedy generation through `trtnet.stream`, the same loop users run.

    python -m trtnet.bench.decoders            # CPU builds of the tiny configs below, as a Markdown table
    python -m trtnet.bench.decoders --gpu      # also TTFT and tokens/s on the GPU's engines
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import trtnet
from trtnet.zoo import REGISTRY

# Small configs (2 blocks) that build in seconds on the CPU; the entries' defaults are 1B-parameter scale.
TINY: dict[str, dict[str, Any]] = {
    "llama": dict(
        hidden_size=256,
        intermediate_size=688,
        vocab_size=32000,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=512,
    ),
    "qwen2": dict(
        hidden_size=256,
        intermediate_size=688,
        vocab_size=32000,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=512,
    ),
    "gpt2_lm": dict(n_embd=256, n_head=8, n_layer=2, vocab_size=32000, n_positions=512),
}
BATCH = (1, 1, 8)  # the stages' batch range


@dataclass
class StageBuild:
    model: str
    stage: str  # "prefill" or "decode"
    layers: int
    build_s: float
    plan_mib: float


def build_stages(
    name: str, config: dict[str, Any] | None = None, **options: Any
) -> tuple[list[trtnet.Engine], list[StageBuild]]:
    """Build `name`'s prefill and decode engines (config: `TINY[name]` by default): the engines and their figures."""
    model = REGISTRY[name].fn(config=TINY[name] if config is None else config, **options)
    engines, rows = [], []
    for past in (False, True):
        engine = trtnet.build(model.stage(past), batch_size=BATCH, cache=False)
        engines.append(engine)
        stage = "decode" if past else "prefill"
        rows.append(StageBuild(name, stage, engine.num_layers, engine.build_seconds, len(engine.plan) / 2**20))
    return engines, rows


@dataclass
class Generation:
    ttft_ms: float  # prompt in to first token out: the prefill step and the first pick
    decode_tokens_per_s: float  # new tokens of the whole batch per second over the decode steps


def time_generation(decoder: Any, prompt: np.ndarray, new_tokens: int) -> Generation:
    """Greedy generation of `new_tokens` after `prompt` [B, S] through `trtnet.stream` on `decoder` (a pair of
    engines on a GPU; a pair of networks runs the same code in the interpreter)."""
    t0 = time.perf_counter()
    times = []
    for _ in trtnet.stream(decoder, prompt, new_tokens):
        times.append(time.perf_counter())
    decode_s = times[-1] - times[0]
    steps = len(times) - 1
    rate = prompt.shape[0] * steps / decode_s if steps and decode_s > 0 else float("nan")
    return Generation((times[0] - t0) * 1e3, rate)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trtnet.bench.decoders", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TINY), help="comma-separated entries (default: %(default)s)")
    parser.add_argument("--gpu", action="store_true", help="also time generation on the GPU's engines")
    parser.add_argument("--prompt", type=int, default=128, help="prompt length for --gpu (default: %(default)s)")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens generated for --gpu (%(default)s)")
    args = parser.parse_args(argv)
    print("| model | stage | layers | build (s) | plan (MiB) |")
    print("|---|---|---|---|---|")
    timed = []
    for name in args.models.split(","):
        engines, rows = build_stages(name)
        for r in rows:
            print(f"| {r.model} | {r.stage} | {r.layers} | {r.build_s:.1f} | {r.plan_mib:.1f} |")
        if args.gpu:
            vocab = TINY[name].get("vocab_size", 32000)
            prompt = np.random.default_rng(0).integers(0, vocab, (1, args.prompt)).astype(np.int32)
            time_generation(tuple(engines), prompt, 4)  # warm-up: first-run allocations and lazy loading
            timed.append((name, time_generation(tuple(engines), prompt, args.new_tokens)))
    if timed:
        print(f"\n| model | TTFT (ms, prompt {args.prompt}) | decode tokens/s (batch 1) |")
        print("|---|---|---|")
        for name, g in timed:
            print(f"| {name} | {g.ttft_ms:.2f} | {g.decode_tokens_per_s:.0f} |")


if __name__ == "__main__":
    main()
