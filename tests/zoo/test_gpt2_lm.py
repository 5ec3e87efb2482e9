"""GPT-2 on the generation path (`gpt2_lm`): transformers' `GPT2LMHeadModel` with small random configs, loaded from
the safetensors transformers saves; greedy generation token for token with every step's logits, prefill + decode
against a full recompute, left padding, and both stages building with TensorRT."""

from __future__ import annotations

import numpy as np
import pytest

import trtnet
from trtnet.parity import export_state, rel_error
from trtnet.zoo import gpt2_lm

transformers = pytest.importorskip("transformers", reason="transformers is the PyTorch source of GPT-2")
torch = pytest.importorskip("torch", reason="transformers runs on torch")

TINY = dict(n_embd=64, n_head=4, vocab_size=128, n_positions=64)


def source(layers: int = 2, seed: int = 0):
    """A GPT2LMHeadModel with weights larger than its init (so that greedy tokens vary) and LayerNorms away from
    1 and 0 (so that parity sees them)."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(attn_implementation="eager", n_layer=layers, initializer_range=0.15, **TINY)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.3)
    return model.eval()


def load(model, tmp_path, **options):
    path = export_state(model, tmp_path / "gpt2.safetensors")
    return gpt2_lm(weights=path, config=model.config.to_dict(), max_context=64, **options)


def prompt(batch: int = 2, length: int = 7, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, TINY["vocab_size"], (batch, length)).astype(np.int32)


def test_greedy_generation_matches_transformers(tmp_path):
    """32 greedy tokens equal `generate(do_sample=False)`'s, each step's logits within 1e-4 relative."""
    model = source()
    ids, n = prompt(), 32
    with torch.no_grad():
        want = model.generate(
            torch.from_numpy(ids).long(),
            attention_mask=torch.ones(ids.shape, dtype=torch.long),
            max_new_tokens=n,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
            eos_token_id=None,
        )
    steps = list(trtnet.stream(load(model, tmp_path), ids, n))
    got = np.concatenate([ids, np.stack([s.tokens for s in steps], 1)], 1)
    np.testing.assert_array_equal(got, want.sequences.numpy())
    assert len(steps) == len(want.logits) == n
    worst = max(rel_error(s.logits, logits.numpy()) for s, logits in zip(steps, want.logits))
    assert worst <= 1e-4, worst
    assert len(np.unique(got[:, ids.shape[1] :])) >= 6, "a generation this uniform proves little"
    np.testing.assert_array_equal(trtnet.generate(load(model, tmp_path), ids, n), got)


def test_prefill_then_decode_equals_full_recompute_and_transformers(tmp_path):
    model = source(layers=3, seed=2)
    ours = load(model, tmp_path)
    ids = prompt(length=9, seed=3)
    b, s = ids.shape
    full_mask, positions = np.ones((b, s), np.int32), np.tile(np.arange(s, dtype=np.int32), (b, 1))
    full = trtnet.reference(ours, ids, full_mask, positions)
    with torch.no_grad():
        hf = model(torch.from_numpy(ids).long(), use_cache=True)
    assert rel_error(full[0], hf.logits.numpy()) <= 1e-4
    assert rel_error(full[1], hf.past_key_values.layers[0].keys.numpy()) <= 1e-4
    # The first 6 tokens as the prompt, then 3 decode steps of one token each.
    out = dict(
        zip(
            ["logits", *[n for names in ours.cache_names() for n in names[2:]]],
            trtnet.reference(ours, ids[:, :6], full_mask[:, :6], positions[:, :6]),
        )
    )
    decode = ours.stage(past=True)
    for t in range(6, s):
        feeds = [ids[:, t : t + 1], full_mask[:, : t + 1], positions[:, t : t + 1]]
        for _, _, nk, nv in ours.cache_names():
            feeds += [out[nk], out[nv]]
        got = trtnet.reference(decode, *feeds)
        out = dict(zip(out, got))
        assert rel_error(out["logits"][:, 0], full[0][:, t]) <= 1e-4


def test_left_padded_batch_generates_as_transformers(tmp_path):
    model = source(seed=4)
    ids = prompt(length=8, seed=5)
    mask = np.ones_like(ids)
    mask[0, :3] = 0
    ids[0, :3] = 0
    n = 12
    with torch.no_grad():
        want = model.generate(
            torch.from_numpy(ids).long(),
            attention_mask=torch.from_numpy(mask).long(),
            max_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    got = trtnet.generate(load(model, tmp_path), ids, n, attention_mask=mask)
    np.testing.assert_array_equal(got, want.numpy())


def test_tied_head_loads_from_either_copy_and_a_different_head_is_refused(tmp_path):
    model = source()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    assert "lm_head.weight" in state and "transformer.wte.weight" in state
    config = model.config.to_dict()
    want = trtnet.reference(
        gpt2_lm(weights=dict(state), config=config, max_context=64),
        prompt(),
        np.ones((2, 7), np.int32),
        np.tile(np.arange(7, dtype=np.int32), (2, 1)),
    )[0]
    only_head = {k: v for k, v in state.items() if k != "transformer.wte.weight"}
    got = trtnet.reference(
        gpt2_lm(weights=only_head, config=config, max_context=64),
        prompt(),
        np.ones((2, 7), np.int32),
        np.tile(np.arange(7, dtype=np.int32), (2, 1)),
    )[0]
    np.testing.assert_array_equal(got, want)
    state["lm_head.weight"] = state["lm_head.weight"] + 1  # said only as an "unexpected key" before
    with pytest.raises(
        trtnet.errors.WeightsError,
        match=r"^state dict: lm_head.weight differs from transformer.wte.weight, which is the head here: GPT-2 ties",
    ):
        gpt2_lm(weights=state, config=config, max_context=64)
    nan = dict(state, **{"lm_head.weight": state["transformer.wte.weight"].copy()})
    nan["lm_head.weight"][0, 0] = nan["transformer.wte.weight"][0, 0] = np.nan  # the same copy: not "differs"
    with pytest.warns(UserWarning, match="NaN"):
        gpt2_lm(weights=nan, config=config, max_context=64)
    path = tmp_path / "untied.safetensors"
    trtnet.save_safetensors(state, path)
    with pytest.raises(trtnet.errors.WeightsError, match=rf"^{path}: lm_head.weight differs from transformer.wte"):
        gpt2_lm(weights=path, config=config, max_context=64)


def test_both_stages_build_with_dynamic_batch_and_lengths():
    config = dict(TINY, n_layer=2)
    for past in (False, True):
        engine = trtnet.build(gpt2_lm(config=config, past=past, max_context=32), batch_size=(1, 2, 4), cache=False)
        names = [s.name for s in engine.inputs]
        assert names[:3] == ["input_ids", "attention_mask", "position_ids"]
        assert len(names) == 3 + (4 if past else 0) and len(engine.plan) > 0


@pytest.mark.parametrize("name", ["gpt2_lm", "gpt2_medium_lm"])
def test_entry_loads_its_source_state_dict(name):
    """The registered source's keys and shapes (GPT2LMHeadModel: `transformer.*` and the tied `lm_head.weight`)
    load strictly into the entry at its default size."""
    from trtnet.zoo import get_entry

    entry = get_entry(name)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in entry.torch_model().state_dict().items()}
    assert "lm_head.weight" in shapes and "transformer.h.0.attn.c_attn.weight" in shapes
    state = {k: np.broadcast_to(np.zeros((), np.float32), s) for k, s in shapes.items()}
    model = entry.fn(weights=state)
    assert set(model.state_dict()) == set(shapes) - {"lm_head.weight"}
