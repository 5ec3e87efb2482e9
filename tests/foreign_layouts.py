"""Checkpoint layouts of other repositories, made from a PyTorch source's own state_dict with the key tables of
issue 10, written here independently of trtnet's conversions (the tests check one against the other)."""

from __future__ import annotations

import re

# tonylins/pytorch-mobilenet-v2 <- torchvision, per block: the t=1 block (features.1) and the others.
TONYLINS_T1 = {"0.0": "0", "0.1": "1", "1": "3", "2": "4"}
TONYLINS = {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}


def tonylins_key(key: str) -> str:
    """torchvision mobilenet_v2 -> tonylins: each block's layers flat, the classifier a bare Linear."""
    if key.startswith("classifier.1."):
        return "classifier." + key.removeprefix("classifier.1.")
    block = re.fullmatch(r"features\.(\d+)\.conv\.(\d+(?:\.\d+)?)\.(\w+)", key)
    if block is None:
        return key  # features.0 and features.18 are the same in both
    i, child, name = block.groups()
    return f"features.{i}.conv.{(TONYLINS_T1 if i == '1' else TONYLINS)[child]}.{name}"


def microsoft_swin_key(key: str) -> str:
    """timm 1.x Swin -> microsoft/Swin-Transformer: patch merging at the end of the stage before; head.fc -> head."""
    merge = re.fullmatch(r"layers\.(\d+)\.downsample\.(.+)", key)
    if merge:
        key = f"layers.{int(merge[1]) - 1}.downsample.{merge[2]}"
    return key.replace("head.fc.", "head.")


def microsoft_swin_state(model) -> dict:
    """A timm Swin's weights as Microsoft's files hold them: with the relative_position_index and attn_mask
    buffers (timm keeps them out of its state_dict)."""
    state = dict(model.state_dict())
    state.update((k, v) for k, v in model.named_buffers() if k.endswith(("relative_position_index", "attn_mask")))
    return {microsoft_swin_key(k): v for k, v in state.items()}
