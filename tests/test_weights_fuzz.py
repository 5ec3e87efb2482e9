"""Property-based: mutated and random safetensors files give back arrays as the header says, or a WeightsError.

Never another exception, a hang (each case has a deadline) or a crash. Generated headers include the shapes
numpy cannot represent and keys that appear twice. The cases per test are `EXAMPLES`; the
README says how many CI runs in all.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trtnet import nn
from trtnet.errors import TrtnetError
from trtnet.weights import load_weights, read_safetensors, save_safetensors

EXAMPLES = 150  # per test: 5 tests, 750 cases, about 10 s on 2 cores
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

DTYPES = [
    "F64",
    "F32",
    "F16",
    "BF16",
    "I64",
    "I32",
    "I16",
    "I8",
    "U64",
    "U32",
    "U16",
    "U8",
    "BOOL",
    "F8_E4M3",
    "C64",
    "",
    "f32",
]
# Integers where a lying header does damage: negative, zero, off by one, beyond any file, beyond 64 bits.
INTS = st.one_of(
    st.integers(-3, 64), st.sampled_from([2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64, 10**30]), st.integers()
)
JSON = st.recursive(
    st.none() | st.booleans() | INTS | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
ITEMSIZE = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
}
# Shapes as a lying header holds them: dimensions that overflow numpy's index once multiplied, an empty tensor
# with a huge dimension beside its zero (0 bytes, so the size check passes), more dimensions than numpy allows,
# and dimensions that are not integers.
DIM = st.one_of(st.integers(0, 4), st.sampled_from([2**31, 2**62, 2**63 - 1, 2**63, 2**64, 2**70]), INTS)
SHAPE = st.one_of(
    st.lists(DIM, max_size=4),
    st.lists(DIM, min_size=1, max_size=3).map(lambda dims: [0, *dims]),
    st.integers(62, 72).flatmap(lambda n: st.lists(st.sampled_from([1, 1, 1, 2, 0]), min_size=n, max_size=n)),
    st.lists(DIM | st.sampled_from([True, False, 2.0, 1e300, "2", None, [2]]), max_size=3),
)


class Obj(list):
    """A JSON object as a list of (key, value) pairs, so that a key can appear twice, as in a hostile header."""


def dump(value) -> str:
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value) + "}"
    return json.dumps(value)


@st.composite
def entries(draw) -> Obj:
    """A tensor's header entry. Half the time its offsets fit the size its shape claims, so the checks after
    the byte count are reached too; one in eight has a field twice."""
    dtype, shape = draw(st.sampled_from(DTYPES)), draw(SHAPE | SHAPE | JSON)
    if (
        dtype in ITEMSIZE
        and isinstance(shape, list)
        and all(type(d) is int and d >= 0 for d in shape)
        and draw(st.booleans())
    ):
        begin = draw(st.integers(0, 160))
        offsets = [begin, begin + math.prod(shape) * ITEMSIZE[dtype]]
    else:
        offsets = draw(st.lists(INTS, min_size=0, max_size=3) | JSON)
    fields = Obj([("dtype", dtype), ("shape", shape), ("data_offsets", offsets)])
    if draw(st.integers(0, 7)) == 0:
        fields.insert(
            draw(st.integers(0, 3)), (draw(st.sampled_from(["dtype", "shape", "data_offsets"])), draw(SHAPE | JSON))
        )
    return fields


@st.composite
def headers(draw) -> Obj:
    """Mostly entries under distinct names; one header in six has a `__metadata__`, one in six a name twice."""
    pairs = draw(
        st.lists(
            st.tuples(st.text(max_size=10), entries() | entries() | JSON), max_size=4, unique_by=lambda pair: pair[0]
        )
    )
    if draw(st.integers(0, 5)) == 0:
        meta = draw(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2) | JSON)
        pairs.insert(draw(st.integers(0, len(pairs))), ("__metadata__", meta))
    if pairs and draw(st.integers(0, 5)) == 0:
        key = draw(st.sampled_from([k for k, _ in pairs]))
        pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(entries() | JSON)))
    return Obj(pairs)


class Tiny(nn.Module):
    def __init__(self) -> None:
        self.conv = nn.Conv2d(2, 3, 1)
        self.fc = nn.Linear(3, 2)


def _good_file_bytes() -> bytes:
    rng = np.random.default_rng(0)
    state = {k: rng.standard_normal(p.shape).astype(np.float32) for k, p in Tiny().named_parameters()}
    state["extra_i64"] = np.arange(3, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        save_safetensors(state, Path(tmp) / "good.safetensors")
        return (Path(tmp) / "good.safetensors").read_bytes()


GOOD = _good_file_bytes()
GOOD_HEADER_LEN = int.from_bytes(GOOD[:8], "little")


def _only_trtnet_errors(data: bytes) -> bool:
    """Read `data` as a file and load it into a model: either it works or a TrtnetError comes out. True when
    the reader refused the file."""
    fd, name = tempfile.mkstemp(suffix=".safetensors")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            state = read_safetensors(name)
        except TrtnetError as e:
            assert name in str(e)  # every refusal names the file
            return True
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        for key, arr in state.items():  # what comes back is what the header claims
            assert arr.shape == tuple(header[key]["shape"])
            np.asarray(arr).sum()  # and every byte of it is readable
        try:
            load_weights(Tiny(), state, check_finite="off")
        except TrtnetError:
            pass
        return False
    finally:
        os.unlink(name)


@FUZZ
@given(st.binary(max_size=256))
def test_random_bytes(data):
    _only_trtnet_errors(data)


@FUZZ
@given(st.data())
def test_mutated_good_file(data):
    raw = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        # Mostly within the header and its length prefix, where a flipped byte changes a claim.
        i = data.draw(st.integers(0, min(len(raw), 8 + GOOD_HEADER_LEN + 16) - 1), label="at")
        raw[i] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(raw))), label="truncate at")
    _only_trtnet_errors(bytes(raw if cut is None else raw[:cut]))


@FUZZ
@given(headers(), st.integers(0, 160))
def test_generated_headers(header, data_size):
    twice = any(len({k for k, _ in obj}) < len(obj) for obj in [header, *(v for _, v in header if isinstance(v, Obj))])
    shapes = [dict(v).get("shape") for _, v in header if isinstance(v, Obj)]
    event("a key twice" if twice else "keys unique")
    if any(isinstance(s, list) and len(s) > 64 for s in shapes):
        event("more than 64 dimensions")
    if any(isinstance(s, list) and 0 in s and any(type(d) is int and d >= 2**62 for d in s) for s in shapes):
        event("empty with a huge dimension")
    raw = dump(header).encode()
    refused = _only_trtnet_errors(len(raw).to_bytes(8, "little") + raw + bytes(range(256))[:data_size])
    assert refused or not twice, "a header with a key twice was read (the JSON decoder keeps the last silently)"


# Header text from JSON-ish tokens, some of them hostile: numbers past Python's digit limit, nesting past the
# decoder's recursion limit, values JSON has no business holding.
TOKENS = [
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    '"t"',
    '"dtype"',
    '"F32"',
    '"shape"',
    '"data_offsets"',
    '"__metadata__"',
    "0",
    "4",
    "-1",
    "1e999",
    "NaN",
    "Infinity",
    "true",
    "null",
    "9" * 5000,
    "[" * 3000,
    '{"a":' * 2000,
]


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=24).map("".join), st.integers(0, 64))
def test_header_text(text, data_size):
    raw = text.encode()
    _only_trtnet_errors(len(raw).to_bytes(8, "little") + raw + bytes(data_size))


@FUZZ
@given(st.binary(max_size=64), st.integers(0, 2**64 - 1))
def test_header_length_prefix_lies(tail, length):
    _only_trtnet_errors(length.to_bytes(8, "little") + GOOD[8 : 8 + GOOD_HEADER_LEN] + tail)


def test_the_good_file_is_good():
    """The seed of the mutations loads: a fuzz run that only ever saw refusals would prove little."""
    state = read_safetensors_bytes(GOOD)
    load_weights(Tiny(), {k: v for k, v in state.items() if k != "extra_i64"})
    assert state["extra_i64"].tolist() == [0, 1, 2]


def read_safetensors_bytes(data: bytes) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.safetensors"
        path.write_bytes(data)
        return {k: np.array(v) for k, v in read_safetensors(path).items()}


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
        {"dtype": "U8", "shape": [0], "data_offsets": [8, 8]},
    ],
    ids=["vector", "scalar", "empty"],
)
def test_generated_headers_can_be_valid(entry):
    """The header generator's kind of file can be read, so the property is not vacuous."""
    raw = json.dumps({"t": entry}).encode()
    got = read_safetensors_bytes(len(raw).to_bytes(8, "little") + raw + bytes(8))
    assert got["t"].shape == tuple(entry["shape"])
