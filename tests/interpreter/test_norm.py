"""Layer, instance and group normalization (trtnet/interpreter/norm.py) against torch.nn.functional."""

from __future__ import annotations

import numpy as np
import pytest

from tests.interpreter.cases import CaseTable, Net, check_case, rand, t, torch_or_skip

CASES = CaseTable()


# --- normalization -------------------------------------------------------------------------------------


@CASES.case()
def normalization_layer_instance_group():
    F = torch_or_skip().nn.functional
    n = Net()
    x = rand(2, 4, 3, 5)
    xi = n.input("x", x.shape)
    g_last, b_last = rand(1, 1, 1, 5), rand(1, 1, 1, 5)
    ln = n.net.add_normalization(xi, n.const(g_last), n.const(b_last), 1 << 3)
    ln.epsilon = 1e-3
    g_c, b_c = rand(1, 4, 1, 1), rand(1, 4, 1, 1)
    inorm = n.net.add_normalization(xi, n.const(g_c), n.const(b_c), 0b1100)
    gn = n.net.add_normalization_v2(xi, n.const(g_c), n.const(b_c), 0b1100)
    gn.num_groups = 2
    g_g, b_g = rand(1, 2, 1, 1), rand(1, 2, 1, 1)
    gn1 = n.net.add_normalization(xi, n.const(g_g), n.const(b_g), 0b1100)
    gn1.num_groups = 2
    n.mark(ln.get_output(0), inorm.get_output(0), gn.get_output(0), gn1.get_output(0))
    got = n.run(x=x)
    tx = t(x)
    ref_ln = F.layer_norm(tx, (5,), t(g_last.reshape(5)), t(b_last.reshape(5)), eps=1e-3).numpy()
    ref_in = F.instance_norm(tx, weight=t(g_c.reshape(4)), bias=t(b_c.reshape(4)), eps=1e-5).numpy()
    ref_gn = F.group_norm(tx, 2, t(g_c.reshape(4)), t(b_c.reshape(4)), eps=1e-5).numpy()
    # Legacy add_normalization takes one scale/bias value per group for GroupNorm.
    ref_gn1 = F.group_norm(tx, 2, t(np.repeat(g_g.reshape(2), 2)), t(np.repeat(b_g.reshape(2), 2)), eps=1e-5).numpy()
    return [(got[0], ref_ln), (got[1], ref_in), (got[2], ref_gn), (got[3], ref_gn1)]


@pytest.mark.parametrize("c", CASES, ids=CASES.ids())
def test_layer_against_oracle(c) -> None:
    check_case(c)
