"""trtnet.generate / stream: sampling against transformers' logits warpers, seeds, stop tokens, streaming, bad
arguments, the command line; and on a GPU, engines giving the interpreter's tokens."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import trtnet
from trtnet.cli.app import main
from trtnet.errors import ConfigError
from trtnet.generation import Decoder, Sampling
from trtnet.zoo import llama

TINY = dict(
    hidden_size=32,
    intermediate_size=48,
    vocab_size=64,
    max_position_embeddings=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    tie_word_embeddings=False,
)


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    """The tiny Llama's two networks, emitted once for the module's tests, its weights scaled up so that greedy
    tokens vary."""
    model = llama(config=TINY, max_context=48)
    for _, p in model.named_parameters():
        if p.value.ndim == 2:
            p.value = p.value * 6
    return Decoder.from_model(model, max_batch=4)


def prompt(batch: int = 2) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 64, (batch, 5)).astype(np.int32)


@pytest.mark.parametrize(
    "sampling", [Sampling(0.7, 0, 1.0), Sampling(1.0, 5, 1.0), Sampling(1.3, 0, 0.8), Sampling(0.9, 10, 0.6)]
)
def test_distribution_is_transformers_warpers(sampling):
    """The probabilities sampled from equal softmax of transformers' Temperature, TopK and TopP warpers."""
    torch = pytest.importorskip("torch")
    generation = pytest.importorskip("transformers.generation.logits_process")
    logits = np.random.default_rng(0).normal(0, 3, (3, 50)).astype(np.float32)
    scores = torch.from_numpy(logits.astype(np.float64))
    scores = generation.TemperatureLogitsWarper(sampling.temperature)(None, scores)
    if sampling.top_k:
        scores = generation.TopKLogitsWarper(sampling.top_k)(None, scores)
    if sampling.top_p < 1:
        scores = generation.TopPLogitsWarper(sampling.top_p)(None, scores)
    want = torch.softmax(scores, -1).numpy()
    got = sampling.distribution(logits)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert ((got > 0) == (want > 0)).all()


def test_a_temperature_so_small_that_scores_overflow_is_greedy_in_the_limit():
    """logits / 1e-320 overflowed to inf, and the softmax of inf - inf was NaN: the tokens drawn from it were 0. The
    scores are shifted by their maximum first (the same softmax): all the mass on the largest logit."""
    logits = np.array([[1.0, 3.0, 2.0, -np.inf], [0.5, 0.25, 0.5, 0.0], [-3.0, -1.0, -2.0, -4.0]], np.float32)
    probs = Sampling(1e-320).distribution(logits)
    np.testing.assert_array_equal(probs, [[0, 1, 0, 0], [0.5, 0, 0.5, 0], [0, 1, 0, 0]])
    assert Sampling(1e-320).pick(logits[:1], np.random.default_rng(0)).tolist() == [1]


def test_draws_follow_the_distribution():
    """20000 draws from one row: each token's frequency within 4 standard deviations of its probability."""
    sampling = Sampling(1.0, 8, 0.9)
    logits = np.random.default_rng(1).normal(0, 1, (1, 20)).astype(np.float32)
    probs = sampling.distribution(logits)[0]
    rng = np.random.default_rng(2)
    draws = sampling.pick(np.repeat(logits, 20000, 0), rng)
    freq = np.bincount(draws, minlength=20) / 20000
    sigma = np.sqrt(probs * (1 - probs) / 20000)
    assert (np.abs(freq - probs) <= 4 * sigma + 1e-12).all()
    assert (freq[probs == 0] == 0).all()


def test_a_seed_is_what_numpy_seeds_with(decoder):
    """A Generator or a list of integers seeds numpy, and seeded generate as before the seed was checked."""
    ids = prompt()
    by_list = trtnet.generate(decoder, ids, 4, temperature=1.0, seed=[1, 2])
    np.testing.assert_array_equal(by_list, trtnet.generate(decoder, ids, 4, temperature=1.0, seed=[1, 2]))
    trtnet.generate(decoder, ids, 4, temperature=1.0, seed=np.random.default_rng(0))


def test_greedy_is_top_k_one_and_seeds_repeat(decoder):
    ids = prompt()
    greedy = trtnet.generate(decoder, ids, 12)
    np.testing.assert_array_equal(trtnet.generate(decoder, ids, 12, temperature=1.0, top_k=1, seed=5), greedy)
    a = trtnet.generate(decoder, ids, 12, temperature=1.5, seed=11)
    np.testing.assert_array_equal(trtnet.generate(decoder, ids, 12, temperature=1.5, seed=11), a)
    b = trtnet.generate(decoder, ids, 12, temperature=1.5, seed=12)
    assert not np.array_equal(a, b)
    assert len(np.unique(greedy[:, 5:])) >= 4


def test_stream_yields_each_step_and_stop_tokens_pad(decoder):
    ids = prompt()
    free = list(trtnet.stream(decoder, ids, 10))
    stop = int(free[3].tokens[0])  # row 0 meets it at step 3 at the latest
    first = next(i for i, s in enumerate(free) if s.tokens[0] == stop)
    got = trtnet.generate(decoder, ids, 10, stop_tokens=[stop], pad_token_id=63)
    row = got[0, 5:]
    assert row[first] == stop and (row[first + 1 :] == 63).all()
    steps = list(trtnet.stream(decoder, ids[:1], 10, stop_tokens=[stop]))
    assert len(steps) == first + 1 and steps[-1].finished.all()
    assert all(s.logits.shape == (2, 64) for s in free)


def test_left_padding_gives_the_unpadded_tokens(decoder):
    """A left-padded row generates what it generates alone."""
    ids = prompt(1)
    alone = trtnet.generate(decoder, ids, 8)
    padded = np.concatenate([np.zeros((1, 3), np.int32), ids], 1)
    mask = np.concatenate([np.zeros((1, 3), np.int32), np.ones_like(ids)], 1)
    batch = np.concatenate([padded, np.concatenate([ids[:, :3], ids], 1)])
    masks = np.concatenate([mask, np.ones_like(mask)])
    got = trtnet.generate(decoder, batch, 8, attention_mask=masks)
    np.testing.assert_array_equal(got[0, 8:], alone[0, 5:])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(max_new_tokens=44), "max_new_tokens = 44 is not allowed: expected an integer from 1 to 43"),
        (dict(max_new_tokens=4, temperature=-1), "temperature = -1 is not allowed"),
        (dict(max_new_tokens=4, top_p=0), "top_p = 0 is not allowed"),
        (dict(max_new_tokens=4, top_k=1.5), "top_k = 1.5 is not allowed"),
        (dict(max_new_tokens=4, input_ids=np.zeros((5, 5), np.int32)), "batch = 5 is not allowed"),
        (dict(max_new_tokens=4, input_ids=np.zeros((1, 5), np.float32)), "input_ids must be integer token ids"),
        (dict(max_new_tokens=4, attention_mask=np.ones((2, 4))), "attention_mask \\[2, 4\\] must have"),
        # Each was a numpy TypeError or ValueError, or silently wrong (2**32 fed as 0, 1.7 padded as 1):
        (dict(max_new_tokens=4, seed=-1), "seed -1 does not seed numpy's generator"),
        (dict(max_new_tokens=4, seed="a"), "seed 'a' does not seed numpy's generator"),
        (dict(max_new_tokens=4, seed=True), "seed must be None, an integer >= 0 or what else seeds numpy"),
        (dict(max_new_tokens=4, input_ids=np.zeros((0, 3), np.int32)), "input_ids must be integer token ids"),
        (dict(max_new_tokens=4, stop_tokens=2), "stop_tokens must be a sequence of token ids, not 2"),
        (dict(max_new_tokens=4, stop_tokens=[8.5]), "stop_tokens must be token ids, integers from 0"),
        (dict(max_new_tokens=4, stop_tokens=[2**70]), "stop_tokens must be token ids"),
        (dict(max_new_tokens=4, pad_token_id=1.7), "pad_token_id must be token ids"),
        (dict(max_new_tokens=4, input_ids=np.array([[2**32]], np.int64)), "input_ids must be token ids from 0 to"),
        (dict(max_new_tokens=4, input_ids=np.array([[-1]], np.int64)), "input_ids must be token ids from 0 to"),
        (dict(max_new_tokens=4, input_ids=[[1, 2], [3]]), "input_ids and attention_mask must be rectangular"),
        (dict(max_new_tokens=4, attention_mask=np.full((2, 5), 0.5)), "attention_mask must hold 1 .* and 0"),
        (dict(max_new_tokens=4, attention_mask=np.zeros((2, 5), [("a", "i4")])), "attention_mask must hold 1 .* and 0"),
        # A right-padded row went on from its pad token, and a row of padding alone generated tokens, both exit 0:
        (dict(max_new_tokens=4, attention_mask=[[1] * 5, [1, 1, 1, 0, 0]]), "row 1 has padding after a token"),
        (dict(max_new_tokens=4, attention_mask=[[1, 0, 1, 1, 1], [1] * 5]), "row 0 has padding after a token"),
        (dict(max_new_tokens=4, attention_mask=[[1] * 5, [0] * 5]), "row 1 is all padding"),
        (dict(max_new_tokens=4, attention_mask=np.array([[1] * 5, [1, 1, 1, 0, 0]], bool)), "row 1 has padding after"),
        (
            dict(max_new_tokens=4, attention_mask=[1] * 5),
            "attention_mask \\[5\\] must have input_ids' shape \\[2, 5\\]",
        ),
        (dict(max_new_tokens=4, attention_mask=np.array([[1, 1, 0, 0, 0], [1] * 5], np.uint8)), "row 0 has padding"),
        # An id past the vocabulary failed in the embedding's gather, untyped; a stop or pad id past it was taken:
        (
            dict(max_new_tokens=4, input_ids=np.array([[1, 70]])),
            r"input_ids must be token ids from 0 to 63 \(the vocab",
        ),
        (
            dict(max_new_tokens=4, stop_tokens=[99]),
            r"stop_tokens must be token ids from 0 to 63 \(the vocabulary\), not 99",
        ),
        (dict(max_new_tokens=4, pad_token_id=64), r"pad_token_id must be token ids from 0 to 63"),
        (dict(max_new_tokens=4, temperature=float("inf")), "temperature = inf is not allowed: expected a finite"),
    ],
)
def test_bad_arguments_are_config_errors(decoder, kwargs, message):
    ids = kwargs.pop("input_ids", prompt())
    with pytest.raises(ConfigError, match=message):
        trtnet.generate(decoder, ids, **kwargs)


def test_numpy_numbers_are_numbers(decoder):
    """np.float32 temperatures and numpy integer counts were refused; np.float64 and numpy stop ids were not."""
    want = trtnet.generate(decoder, prompt(), 3, temperature=0.5, top_k=3, seed=1)
    got = trtnet.generate(decoder, prompt(), np.int64(3), temperature=np.float32(0.5), top_k=np.int64(3), seed=1)
    assert np.array_equal(got, want)


def test_top_p_keeps_the_tied_token_transformers_keeps():
    """Of three tied logits the nucleus cut keeps the last id, as transformers' TopPLogitsWarper does (an
    adversarial pass read it the other way round; greedy's argmax takes the first)."""
    torch = pytest.importorskip("torch")
    generation = pytest.importorskip("transformers.generation.logits_process")
    logits = np.full((1, 26), -5.0, np.float32)
    logits[0, [5, 12, 25]] = 5
    sampling = Sampling(0.3, 5, 0.1)
    scores = torch.from_numpy(logits.astype(np.float64))
    for warper in (generation.TemperatureLogitsWarper(0.3), generation.TopKLogitsWarper(5)):
        scores = warper(None, scores)
    want = torch.softmax(generation.TopPLogitsWarper(0.1)(None, scores), -1).numpy()
    got = sampling.distribution(logits)
    assert np.flatnonzero(got[0]).tolist() == np.flatnonzero(want[0]).tolist() == [25]


def test_a_mask_numpy_cannot_read_is_a_config_error(decoder):
    torch = pytest.importorskip("torch", reason="a torch bfloat16 tensor is the mask numpy cannot read")
    mask = torch.ones((2, 5), dtype=torch.bfloat16)  # a raw TypeError from np.asarray before
    with pytest.raises(ConfigError, match="input_ids and attention_mask must be integer arrays"):
        trtnet.generate(decoder, prompt(), 4, attention_mask=mask)


def test_a_max_batch_below_one_is_named():
    """Decoder.from_model(m, max_batch=0) was refused as "batch_size (1, 1, 0)", a name the caller never gave."""
    with pytest.raises(ConfigError, match=r"^generate: max_batch = 0 is not allowed: expected an integer >= 1"):
        Decoder.from_model(llama(config=TINY, max_context=48), max_batch=0)


def test_not_a_decoder_is_refused():
    from trtnet.zoo import resnet18

    with pytest.raises(ConfigError, match="ResNet is not a decoder with a KV cache"):
        trtnet.generate(resnet18(weights=None), prompt(), 4)
    model = llama(config=TINY, max_context=48)
    for pair in ((None, None), (model.stage, model.stage)):  # AttributeError / TypeError before
        with pytest.raises(ConfigError, match="a \\(prefill, decode\\) pair is of Networks or Engines"):
            trtnet.generate(pair, prompt(), 4)


def test_command_line_streams_the_greedy_tokens(tmp_path, capsys):
    model = llama(config=TINY, max_context=48)
    path = tmp_path / "w.safetensors"
    trtnet.save_safetensors(model.state_dict(), path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    want = trtnet.generate(model, np.array([[1, 2, 3]]), 6)[0, 3:]
    args = ["generate", "llama", "--config", str(config), "--weights", str(path), "--prompt-ids", "1,2,3"]
    assert main([*args, "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out.split() == [str(t) for t in want]
    assert main([*args, "--max-new-tokens", "60"]) == 2
    assert "max_new_tokens = 60 is not allowed" in capsys.readouterr().err
    # Without --max-new-tokens, a context of 8 holds 5 new tokens, not the default 32 (refused, though not given).
    assert main([*args, "--max-context", "8"]) == 0
    assert len(capsys.readouterr().out.split()) == 5
    assert main([*args, "--max-new-tokens", "2147483648"]) == 2
    assert "expected a whole number from 1 to 2**31 - 1" in capsys.readouterr().err
    assert main(["generate", "llama", "--config", str(config), "--prompt", "hello"]) == 2
    assert "--prompt is text and needs --tokenizer" in capsys.readouterr().err
    for bad, said in (
        (["--max-context", "3"], "the prompt's 3 tokens fill the context of 3: no token can follow them"),
        (["--seed", "-1"], "--seed: '-1': expected a whole number from 0 to 2**63 - 1"),  # was an internal error
        (["--stop-ids", "1," + "9" * 25], "expected token ids from 0 to 2**31 - 1"),  # was an OverflowError
    ):
        assert main([*args, *bad]) == 2, bad
        assert said in capsys.readouterr().err, bad


@pytest.mark.gpu
def test_engines_give_the_interpreters_tokens(decoder):
    """The same loop over a prefill and a decode engine (fp32): tokens equal to the interpreter's; tokens/s."""
    model = llama(config=TINY, max_context=48)
    for _, p in model.named_parameters():
        if p.value.ndim == 2:
            p.value = p.value * 6
    engines = [trtnet.build(model.stage(past), batch_size=(1, 2, 4), precision="fp32") for past in (False, True)]
    ids = prompt()
    want = trtnet.generate(decoder, ids, 32)
    trtnet.generate(engines, ids, 4)  # warm-up
    start = time.perf_counter()
    got = trtnet.generate(engines, ids, 32)
    seconds = time.perf_counter() - start
    np.testing.assert_array_equal(got, want)
    print(f"engine decode: {2 * 32 / seconds:.0f} tokens/s (batch 2, 32 new tokens, tiny config)")


def test_docs_python_blocks_run():
    """docs/decoders.md's Python blocks run as written."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "decoders.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/decoders.md", "exec"), {})


def test_command_line_with_a_tokenizer(tmp_path, capsys):
    """--prompt text through a tokenizer.json (a word-level one made here): the tokens print as text."""
    tokenizers = pytest.importorskip("tokenizers")
    words = [f"w{i}" for i in range(64)]
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="w0"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    model = llama(config=TINY, max_context=48)
    trtnet.save_safetensors(model.state_dict(), tmp_path / "w.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    want = trtnet.generate(model, np.array([[5, 9, 2]]), 4)[0, 3:]
    args = [
        "generate",
        "llama",
        "--config",
        str(tmp_path / "config.json"),
        "--weights",
        str(tmp_path / "w.safetensors"),
    ]
    assert (
        main([*args, "--tokenizer", str(tmp_path / "tokenizer.json"), "--prompt", "w5 w9 w2", "--max-new-tokens", "4"])
        == 0
    )
    assert capsys.readouterr().out.strip() == tokenizer.decode([int(t) for t in want])  # as the tokenizer decodes
    assert main([*args, "--tokenizer", str(tmp_path / "missing.json"), "--prompt", "w5"]) == 2
    assert "missing.json: cannot read the tokenizer: No such file" in capsys.readouterr().err
    (tmp_path / "config.txt").write_text("not json")
    assert main([*args, "--tokenizer", str(tmp_path / "config.txt"), "--prompt", "w5"]) == 2
    assert "config.txt: not a tokenizer.json" in capsys.readouterr().err
    # A prompt the tokenizer cannot encode (no unknown token) was an internal error.
    strict = tokenizers.Tokenizer(tokenizers.models.WordLevel({"a": 0, "b": 1}))
    strict.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    strict.save(str(tmp_path / "strict.json"))
    assert main([*args, "--tokenizer", str(tmp_path / "strict.json"), "--prompt", "zzz"]) == 2
    assert "the tokenizer " + str(tmp_path / "strict.json") + " cannot encode the prompt: " in capsys.readouterr().err
    # A prompt of no tokens was said as ids outside the vocabulary: "got []".
    assert main([*args, "--tokenizer", str(tmp_path / "tokenizer.json"), "--prompt", "  "]) == 2
    assert "makes no tokens of the prompt '  '" in capsys.readouterr().err
    # Read by trtnet, not by tokenizers: a FIFO blocked past Ctrl-C and SIGTERM, /dev/zero filled the memory.
    os.mkfifo(tmp_path / "fifo")
    for special, kind in ((tmp_path / "fifo", "a FIFO"), ("/dev/zero", "a character device")):
        assert main([*args, "--tokenizer", str(special), "--prompt", "w5"]) == 2
        assert f"{special}: the tokenizer is {kind}, not a regular file" in capsys.readouterr().err


def test_the_text_printed_is_the_new_tokens_decoded_together(tmp_path, capsys, monkeypatch):
    """Decoded one token at a time, SentencePiece-style tokens lost their spaces ('w1w2w3') and a character split
    over two byte tokens printed as two replacement characters."""
    import trtnet.generation

    tokenizers = pytest.importorskip("tokenizers")
    pieces = {"\u2581w0": 0, "\u2581w1": 1, "\u2581w2": 2, "\u2581w3": 3}
    meta = tokenizers.Tokenizer(tokenizers.models.WordLevel(pieces, unk_token="\u2581w0"))
    meta.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace()
    meta.decoder = tokenizers.decoders.Metaspace()
    meta.save(str(tmp_path / "meta.json"))
    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())  # one token per byte
    byte = tokenizers.Tokenizer(tokenizers.models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    byte.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    byte.decoder = tokenizers.decoders.ByteLevel()
    byte.save(str(tmp_path / "byte.json"))
    e_acute = byte.encode("\u00e9").ids  # two byte tokens, each a replacement character alone
    assert len(e_acute) == 2 and byte.decode(e_acute[:1]) == "\ufffd"
    (tmp_path / "config.json").write_text(json.dumps(dict(TINY, vocab_size=len(alphabet))))

    def scripted(tokens):  # the decoder's choice, fixed: what is printed of it is the point here
        def stream(model, ids, max_new_tokens, **_):
            for t in tokens[:max_new_tokens]:
                yield trtnet.generation.Token(np.array([t]), np.zeros((1, 1)), np.array([False]))

        return stream

    args = ["generate", "llama", "--config", str(tmp_path / "config.json"), "--prompt-ids", "1"]
    monkeypatch.setattr(trtnet.generation, "stream", scripted([1, 2, 3]))
    assert main([*args, "--tokenizer", str(tmp_path / "meta.json"), "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out == "w1 w2 w3\n"
    monkeypatch.setattr(trtnet.generation, "stream", scripted(e_acute + e_acute))
    assert main([*args, "--tokenizer", str(tmp_path / "byte.json"), "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out == "\u00e9\u00e9\n"
    # A decoder that rewrites text already decoded (WordPiece's cleanup: "a b ." is "a b.") prints the final text.
    words = {"a": 0, "b": 1, ".": 2, "c": 3}
    wordpiece = tokenizers.Tokenizer(tokenizers.models.WordLevel(words, unk_token="a"))
    wordpiece.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    wordpiece.decoder = tokenizers.decoders.WordPiece(cleanup=True)
    wordpiece.save(str(tmp_path / "wordpiece.json"))
    monkeypatch.setattr(trtnet.generation, "stream", scripted([0, 1, 2, 3]))
    assert main([*args, "--tokenizer", str(tmp_path / "wordpiece.json"), "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out == wordpiece.decode([0, 1, 2, 3]) + "\n" == "a b. c\n"


def test_generate_strict_refuses_weights_that_are_not_finite_and_takes_gpt2(tmp_path, capsys):
    """--strict was accepted and ignored (NaN weights generated zeros, exit 0); gpt2_lm, a decoder of the same
    path, was refused as 'not a decoder with a KV cache'."""
    model = llama(config=TINY, max_context=48)
    state = model.state_dict()
    state["model.norm.weight"] = np.full_like(state["model.norm.weight"], np.nan)
    trtnet.save_safetensors(state, tmp_path / "nan.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    args = ["generate", "llama", "--config", str(tmp_path / "config.json"), "--prompt-ids", "1,2"]
    assert main([*args, "--weights", str(tmp_path / "nan.safetensors"), "--strict", "--max-new-tokens", "2"]) == 2
    assert "key 'model.norm.weight' holds NaN or infinite values" in capsys.readouterr().err
    (tmp_path / "gpt2.json").write_text(json.dumps({"n_embd": 16, "n_head": 2, "n_layer": 1, "vocab_size": 32}))
    gpt2 = ["generate", "gpt2_lm", "--config", str(tmp_path / "gpt2.json"), "--prompt-ids", "1,2", "--max-new-tokens"]
    assert main([*gpt2, "3"]) == 0
    assert len(capsys.readouterr().out.split()) == 3
    assert main(["generate", "resnet18", "--config", str(tmp_path / "gpt2.json"), "--prompt-ids", "1"]) == 2
    assert "generate takes gpt2_lm, gpt2_medium_lm, llama, qwen2" in capsys.readouterr().err
