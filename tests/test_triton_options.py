"""export-triton's options and names at their edges: the dynamic batcher's queue delay from Python, build options
given with --plan, and tensor names that need escaping in the config's protobuf text."""

from __future__ import annotations

import re

import pytest

from trtnet.cli import main
from trtnet.errors import ExportError
from trtnet.export.triton_config import Signature, render_config, with_batching

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (the test extra) ships Triton's ModelConfig schema"
)
text_format = pytest.importorskip("google.protobuf.text_format", reason="protobuf comes with tritonclient[grpc]")

BATCHED = Signature(8, (("x", "TYPE_FP32", (4,)),), (("y", "TYPE_FP32", (3,)),), (8,))


@pytest.mark.parametrize("delay", [2**63, 2**70, -1])
def test_a_queue_delay_protobuf_cannot_hold_is_refused(delay):
    """max_queue_delay_us=2**70 wrote a config protobuf cannot parse (the field is a uint64)."""
    with pytest.raises(
        ExportError, match=re.escape(f"model 'm': max_queue_delay_us {delay}: expected microseconds >= 0 and < 2**63")
    ):
        with_batching(BATCHED, max_queue_delay_us=delay, where="model 'm'")


def test_the_longest_queue_delay_parses():
    sig = with_batching(BATCHED, max_queue_delay_us=2**63 - 1)
    text = render_config("m", sig, instances=1, parameters={"trtnet_backend": "b"})
    assert text_format.Parse(text, model_config_pb2.ModelConfig()).dynamic_batching.max_queue_delay_microseconds == (
        2**63 - 1
    )


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--shapes", "x:1x4"], "--shapes"),
        (["--min-shapes", "x:1x4", "--opt-shapes", "x:8x4", "--max-shapes", "x:32x4"], "--min-shapes, --opt-shapes"),
        (["--strict"], "--strict"),
    ],
)
def test_plan_refuses_the_options_that_size_or_load_a_build(tmp_path, capsys, flags, named):
    """`--plan FILE` ignored these silently: the plan was exported at its own shapes."""
    plan = tmp_path / "m.plan"  # never read: the options are refused first
    assert main(["export-triton", "--plan", str(plan), "--repo", str(tmp_path / "repo"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"trtnet: error: --plan {plan}: the plan is exported as it was built; {named}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ['in"put\\é😀', "out put\n2", "\x7f\x00tab\t", "漢字"])
def test_any_tensor_name_reads_back_as_it_was(tmp_path, name):
    """A character past U+FFFF became JSON's surrogate-pair escapes, which protobuf's text format refuses."""
    sig = Signature(0, ((name, "TYPE_FP32", (2, 4)),), (("y", "TYPE_FP32", (2, 3)),))
    text = render_config("m", sig, instances=1, parameters={"trtnet_backend": name})
    assert text.isascii()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert config.input[0].name == name and config.parameters["trtnet_backend"].string_value == name
