"""Policy: the one emission options object, with one set of defaults, taken by emit, build and reference."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest

import trtnet
from tests.runtime_models import two_inputs
from trtnet.graph import Policy, PolicyOptions


def test_the_keywords_are_policys_fields():
    assert list(typing.get_type_hints(PolicyOptions)) == [f.name for f in dataclasses.fields(Policy)]


def test_keywords_and_policy_make_the_same_network():
    by_keyword = trtnet.emit(two_inputs(), 2, precision="fp16", norm_fp32=False)
    by_policy = trtnet.emit(two_inputs(), 2, policy=Policy(precision="fp16", norm_fp32=False))
    assert by_keyword.policy == by_policy.policy == Policy("fp16", norm_fp32=False)
    mixed = trtnet.emit(two_inputs(), 2, policy=Policy(precision="fp16"), fold_bn=False)
    assert mixed.policy == Policy("fp16", fold_bn=False)


def test_one_set_of_defaults():
    """emit, build and reference all start from Policy(): fp32, which is what the engine records too."""
    assert trtnet.emit(two_inputs(), 2).policy == Policy() and Policy().precision == "fp32"
    assert trtnet.build(two_inputs(), 2, cache=False).precision == "fp32"
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3, 8, 8), np.float32), rng.standard_normal((2, 4, 8, 8), np.float32)
    (default,), (fp32,), (fp16,) = (
        trtnet.reference(two_inputs(), x, y, **kw) for kw in ({}, {"precision": "fp32"}, {"precision": "fp16"})
    )
    assert np.array_equal(default, fp32) and not np.array_equal(default, fp16)


def test_bad_options_are_network_errors():
    with pytest.raises(
        trtnet.NetworkError,
        match=r"unknown emission option\(s\) \['fp16_norms'\]: a Policy has "
        r"\['precision', 'norm_fp32', 'fold_bn', 'fused_attention', 'calibration'\]",
    ):
        trtnet.emit(two_inputs(), 2, fp16_norms=True)
    with pytest.raises(
        trtnet.NetworkError,
        match=r"precision must be one of \('fp32', 'tf32', 'fp16', 'bf16', "
        r"'int8', 'fp8'\), not 'fp4'",
    ):
        trtnet.emit(two_inputs(), 2, precision="fp4")
    with pytest.raises(trtnet.NetworkError, match=r"precision 'fp8' needs activation ranges: pass calibration="):
        trtnet.emit(two_inputs(), 2, precision="fp8")
    with pytest.raises(
        trtnet.NetworkError,
        match=r"policy must be a trtnet.graph.Policy, not str 'fp16' \(name the "
        r"precision as a keyword: precision='fp16'\)",
    ):
        trtnet.build(two_inputs(), 2, "fp16", cache=False)
