"""Strict weight loading: every bad input raises a WeightsError naming the key or the file."""
from __future__ import annotations

import numpy as np
import pytest

from trtnet import nn
from trtnet.errors import WeightsError
from trtnet.weights import load_weights, read_safetensors, save_safetensors


class Tiny(nn.Module):
    def __init__(self) -> None:
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.head = [nn.Linear(4, 2)]


def good_state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    state = {k: rng.standard_normal(p.shape).astype(np.float32) for k, p in Tiny().named_parameters()}
    state["bn.num_batches_tracked"] = np.array(7, np.int64)  # a buffer PyTorch saves; skipped on purpose
    return state


def test_parameter_names_are_attribute_paths():
    assert [k for k, _ in Tiny().named_parameters()] == [
        "conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "head.0.weight", "head.0.bias"]


def test_round_trip_through_safetensors(tmp_path):
    state = good_state()
    save_safetensors(state, tmp_path / "w.safetensors")
    model = Tiny()
    load_weights(model, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(model.head[0].weight.data, state["head.0.weight"])


def test_reads_files_written_by_the_safetensors_library(tmp_path):
    torch = pytest.importorskip("torch", reason="the safetensors torch writer needs torch")
    from safetensors.torch import save_file

    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(3, dtype=torch.bfloat16) * 1.5,
               "c": torch.tensor([1, 2], dtype=torch.int64), "d": torch.zeros(2, dtype=torch.float16)}
    save_file(tensors, str(tmp_path / "t.safetensors"))
    got = read_safetensors(tmp_path / "t.safetensors")
    for k, v in tensors.items():
        np.testing.assert_array_equal(got[k], v.float().numpy() if k == "b" else v.numpy())


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("bn.running_var"), r"missing key: bn\.running_var"),
    (lambda s: s.update({"fc.weight": np.zeros(2, np.float32)}), r"unexpected key: fc\.weight"),
    (lambda s: s.update({"conv.weight": np.zeros((4, 3, 5, 5), np.float32)}),
     r"shape mismatch: conv\.weight: expected \(4, 3, 3, 3\), file has \(4, 3, 5, 5\)"),
], ids=["missing", "unexpected", "wrong_shape"])
def test_strict_loading_names_the_key(change, message):
    state = good_state()
    change(state)
    with pytest.raises(WeightsError, match=message):
        load_weights(Tiny(), state)


def test_every_problem_is_listed_at_once():
    state = good_state()
    state.pop("conv.weight"), state.pop("bn.bias")
    state["extra"] = np.zeros(1, np.float32)
    with pytest.raises(WeightsError) as e:
        load_weights(Tiny(), state)
    assert all(s in str(e.value) for s in ("conv.weight", "bn.bias", "extra"))


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors(good_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(WeightsError, match=r"w\.safetensors.*key '.*': data_offsets .* lie outside the data"):
        read_safetensors(path)
    path.write_bytes(data[:5])
    with pytest.raises(WeightsError, match=r"w\.safetensors: truncated file \(5 bytes\)"):
        read_safetensors(path)


def test_pickle_files_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x04not read")
    with pytest.raises(WeightsError, match="pickles, which trtnet never loads.*export-weights"):
        read_safetensors(path)
