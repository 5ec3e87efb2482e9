"""trtnet.parity's randomised normalisations: every BatchNorm, LayerNorm (timm's LayerNorm2d too), GroupNorm and
layer scale of a source gets non-trivial values, the same for the same seed, so that parity tests can see them."""

from __future__ import annotations

import pytest

from trtnet.parity import randomize_norm_stats

torch = pytest.importorskip("torch", reason="the sources are PyTorch modules")
timm_layers = pytest.importorskip("timm.layers", reason="timm's LayerNorm2d and LayerScale are sources")


class Source(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(8)
        self.ln = torch.nn.LayerNorm(8)
        self.ln2d = timm_layers.LayerNorm2d(8)
        self.gn = torch.nn.GroupNorm(2, 8)
        self.ls = timm_layers.LayerScale(8, init_values=1e-6)  # timm's: ls.gamma
        self.gamma = torch.nn.Parameter(torch.full((8,), 1e-6))  # ConvNeXt's block: stages.0.blocks.0.gamma
        self.fc = torch.nn.Linear(8, 8)


def randomized(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = Source()
    randomize_norm_stats(model, seed)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_every_norm_and_layer_scale_is_randomised():
    fresh = {k: v.clone() for k, v in (torch.manual_seed(0), Source())[1].state_dict().items()}
    state = randomized(0)
    changed = {k for k in state if not torch.equal(state[k], fresh[k])}
    assert changed == {
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "ln.weight",
        "ln.bias",
        "ln2d.weight",
        "ln2d.bias",
        "gn.weight",
        "gn.bias",
        "ls.gamma",
        "gamma",
    }  # the Linear keeps its own init
    for key in ("ln.weight", "ln2d.weight", "gn.weight", "ls.gamma", "gamma", "bn.running_var"):
        assert 0.5 <= float(state[key].min()) and float(state[key].max()) <= 1.5, key
        assert float(state[key].std()) > 0.05, key  # not a constant
    for key in ("ln.bias", "ln2d.bias", "bn.running_mean"):
        assert 0 < float(state[key].abs().max()) < 1.0, key


def test_the_same_seed_gives_the_same_values_and_another_seed_others():
    a, b, c = randomized(3), randomized(3), randomized(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["ln.weight"], c["ln.weight"]) and not torch.equal(a["gamma"], c["gamma"])


def test_eps_pairs_up_by_module_path_and_names_what_differs():
    torch = pytest.importorskip("torch", reason="the source side is a PyTorch module")
    from trtnet import nn
    from trtnet.parity.settings import eps_differences, eps_pairs

    class RMSNorm(torch.nn.Module):  # transformers keeps an RMSNorm's eps as variance_epsilon
        def __init__(self):
            super().__init__()
            self.variance_epsilon = 1e-6

    source = torch.nn.Sequential(torch.nn.LayerNorm(4, eps=1e-6), RMSNorm(), torch.nn.BatchNorm2d(4))
    model = nn.Sequential(nn.LayerNorm(4), nn.Identity(), nn.BatchNorm2d(4, eps=1e-5))
    assert eps_pairs(source, model) == [("0", 1e-5, 1e-6), ("2", 1e-5, 1e-5)]  # "1" is on one side only
    assert eps_differences(source, model) == [("0", 1e-5, 1e-6)]
    # An eps that is not a normalisation's (CosineSimilarity's, against a module of trtnet's keeping its own
    # epsilon as _eps) failed verify though the outputs matched.
    cosine, mine = torch.nn.Sequential(torch.nn.CosineSimilarity(eps=1e-8)), nn.Sequential(nn.LayerNorm(4))
    assert eps_pairs(cosine, mine) == []
