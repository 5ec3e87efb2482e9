"""`trtnet generate`: tokens from a zoo decoder (llama, qwen2, gpt2_lm) and its config.json, streamed to stdout as they
are made, in the reference interpreter. Token ids in and out, or text through a `tokenizers` tokenizer.json."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trtnet.cli import values
from trtnet.errors import ConfigError, TrtnetError
from trtnet.fileread import read_regular

EXIT_OK = 0


def add_command(command: Callable[..., argparse.ArgumentParser], weights_options: Callable) -> None:
    """Add `generate` to the command line through app.py's `command` and `weights_options` helpers."""
    sub = command(
        "generate",
        cmd_generate,
        "generate tokens with a decoder (llama, qwen2, gpt2_lm) in the reference interpreter, streamed as they come",
    )
    sub.add_argument("model", help="a zoo decoder: llama, qwen2, gpt2_lm or gpt2_medium_lm")
    sub.add_argument("--config", required=True, metavar="FILE", help="the model's Hugging Face config.json")
    weights_options(sub)
    prompt = sub.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt-ids", type=_ids, metavar="IDS", help="the prompt as token ids: 1,2,3")
    prompt.add_argument("--prompt", metavar="TEXT", help="the prompt as text (needs --tokenizer)")
    sub.add_argument("--tokenizer", metavar="FILE", help="a tokenizer.json (the `tokenizers` library): prints text")
    sub.add_argument(
        "--max-new-tokens", type=_count, help="default 32, or as many as the context leaves room for if fewer"
    )
    sub.add_argument("--max-context", type=_count, help="prompt plus new tokens at most (default: the config's)")
    sub.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy; above 0: sampling")
    sub.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (default 0: all)")
    sub.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0: all)")
    sub.add_argument("--seed", type=values.seed, default=0, help="seed of the sampling (default 0)")
    sub.add_argument("--stop-ids", type=_ids, default=(), metavar="IDS", help="token ids that end generation: 2,3")


def _ids(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 0 or max(values) >= 2**31:  # int32, as the networks take them
        raise argparse.ArgumentTypeError(f"{text!r}: expected token ids from 0 to 2**31 - 1, comma-separated: 1,2,3")
    return values


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 1 to 2**31 - 1")
    return value


def cmd_generate(args: argparse.Namespace) -> int:
    from trtnet.generation import stream
    from trtnet.weights import load_weights
    from trtnet.zoo import REGISTRY, get_entry
    from trtnet.zoo.registry import mismatch_hint

    entry = get_entry(args.model)
    if not _is_decoder(entry):
        decoders = ", ".join(sorted(n for n, e in REGISTRY.items() if _is_decoder(e)))
        raise TrtnetError(f"generate: {args.model} is not a decoder with a KV cache; generate takes {decoders}")
    tokenizer = _tokenizer(args.tokenizer) if args.tokenizer else None
    if args.prompt is not None and tokenizer is None:
        raise TrtnetError("generate: --prompt is text and needs --tokenizer tokenizer.json (or give --prompt-ids)")
    ids = list(args.prompt_ids) if args.prompt_ids else _encode(tokenizer, args.prompt, args.tokenizer)
    if args.weights is None:
        model = entry.fn(weights=None, config=args.config, max_context=args.max_context)
    else:  # loaded here, so that --strict refuses NaN or infinite weights as the other commands do
        model = entry.skeleton(config=args.config, max_context=args.max_context)
        load_weights(model, args.weights, check_finite="error" if args.strict else "warn", hint=mismatch_hint)
    if not ids:  # said as token ids outside the vocabulary: "got []"
        raise ConfigError(f"generate: the tokenizer {args.tokenizer} makes no tokens of the prompt {args.prompt!r:.60}")
    vocab = model.config.vocab_size
    if max(ids) >= vocab:
        raise ConfigError(f"generate: the prompt's token ids must be from 0 to {vocab - 1} (the vocabulary), got {ids}")
    room = model.max_context - len(ids)  # a default the context cannot hold is no reason to refuse the run
    count = args.max_new_tokens if args.max_new_tokens is not None else max(1, min(32, room))
    new: list[int] = []
    shown = ""  # the text printed so far: all the new tokens decoded together, as a tokenizer decodes
    for step in stream(
        model,
        np.array([ids], np.int32),
        count,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop_tokens=args.stop_ids,
    ):
        token = int(step.tokens[0])
        new.append(token)
        if tokenizer is None:
            print(token, end=" ", flush=True)
            continue
        # Decoded one at a time, a SentencePiece token lost its space and a character split over byte tokens
        # printed as two replacement characters: the new tokens are decoded together, and printed up to the
        # last space (a decoder may still rewrite what follows it: "a b" + "." is "a b." once cleaned up).
        text = tokenizer.decode(new)
        ready = "" if text.endswith("\ufffd") else text[: max(text.rfind(" "), 0)]
        if len(ready) > len(shown) and ready.startswith(shown):
            print(ready[len(shown) :], end="", flush=True)
            shown = ready
    if tokenizer is not None:  # the rest; where the decoder rewrote printed text, from where they part
        text = tokenizer.decode(new)
        print(text[len(os.path.commonprefix([text, shown])) :], end="")
    print(file=sys.stdout)
    return EXIT_OK


def _is_decoder(entry) -> bool:
    """A zoo entry that builds a decoder with a KV cache: its function takes `past` and `max_context`."""
    return {"past", "max_context"} <= set(inspect.signature(entry.fn).parameters)


def _encode(tokenizer, prompt: str, path: str) -> list[int]:
    try:
        return list(tokenizer.encode(prompt).ids)
    except Exception as e:  # noqa: BLE001  tokenizers raises its own untyped errors
        raise TrtnetError(f"generate: the tokenizer {path} cannot encode the prompt: {e}") from None


# Llama 3's tokenizer.json is 9 MB; a file over this is not one.
_TOKENIZER_MAX_BYTES = 1 << 28


def _tokenizer(path: str):
    try:
        import tokenizers
    except ImportError:
        raise TrtnetError("generate: --tokenizer needs the `tokenizers` package (pip install tokenizers)") from None
    # Read here, not by tokenizers: a FIFO blocked its read past Ctrl-C and SIGTERM, /dev/zero filled the memory.
    data = read_regular(Path(path), _TOKENIZER_MAX_BYTES, "tokenizer", error=TrtnetError)
    try:
        return tokenizers.Tokenizer.from_str(data.decode("utf-8"))
    except Exception as e:  # noqa: BLE001  tokenizers raises its own untyped errors for a bad file
        raise TrtnetError(f"{path}: not a tokenizer.json the `tokenizers` library reads ({e})") from None
