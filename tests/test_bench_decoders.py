"""The decoders' benchmark (`trtnet.bench.decoders`): both stages built with their figures, and the generation
timing loop, run here on the interpreter (the GPU runs the same code on engines)."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from trtnet.bench.decoders import Generation, build_stages, main, time_generation
from trtnet.zoo import gpt2_lm

SMALL = {
    "llama": dict(
        hidden_size=32,
        intermediate_size=48,
        vocab_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    ),
    "gpt2_lm": dict(n_embd=32, n_head=4, n_layer=1, vocab_size=64, n_positions=32),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_both_stages_build_with_their_figures(name):
    engines, rows = build_stages(name, SMALL[name])
    assert [r.stage for r in rows] == ["prefill", "decode"]
    for engine, row in zip(engines, rows):
        assert row.model == name and row.layers == engine.num_layers > 20
        assert row.build_s == engine.build_seconds > 0 and row.plan_mib == len(engine.plan) / 2**20 > 0
    assert rows[1].layers > rows[0].layers  # the decode stage concatenates the cache


def test_generation_timing_runs_the_stream_loop():
    model = gpt2_lm(config=SMALL["gpt2_lm"], max_context=32)
    pair = tuple(trtnet.emit(model.stage(past), batch_size=(1, 1, 2)) for past in (False, True))
    prompt = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    g = time_generation(pair, prompt, 5)
    assert isinstance(g, Generation) and g.ttft_ms > 0 and g.decode_tokens_per_s > 0
    # One token only: no decode step, so no rate.
    assert np.isnan(time_generation(pair, prompt, 1).decode_tokens_per_s)


def test_cli_prints_a_row_per_stage(capsys, monkeypatch):
    import trtnet.bench.decoders as bench

    monkeypatch.setattr(bench, "TINY", {"llama": SMALL["llama"]})
    main(["--models", "llama"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | stage | layers | build (s) | plan (MiB) |"
    assert [line.split(" | ")[1] for line in lines[2:]] == ["prefill", "decode"]
