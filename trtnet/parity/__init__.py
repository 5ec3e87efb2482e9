"""Parity helpers: the PyTorch source of a zoo model, its weights as safetensors, and the error measure.

Torch is imported lazily here: it is needed to check trtnet against its sources, never to build or run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from trtnet.errors import ConfigError, ParityError, WeightsError
from trtnet.fileio import replaced
from trtnet.nn.module import Input, Module
from trtnet.runtime.plan import refuse_plan_files
from trtnet.words import counted
from trtnet.zoo.registry import get_entry


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|: the error measure of every parity check in trtnet."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise ValueError(f"shapes differ: {got.shape} vs {want.shape}")
    scale = np.abs(want).max()
    return float(np.abs(got - want).max() / (scale if scale > 0 else 1.0))


def cosine(got: np.ndarray, want: np.ndarray) -> float:
    a, b = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


# How much more than a comparison's tolerance two inputs' outputs must differ by, for the comparison to be able
# to fail: a model whose output ignores its input matches a wrong re-expression of it just as well.
INPUT_DEPENDENCE_MARGIN = 100.0


def input_dependence(outputs_a: Sequence[np.ndarray], outputs_b: Sequence[np.ndarray]) -> float:
    """How much a model's outputs for two different inputs differ, as `rel_error` does (the least over its
    outputs): a parity check with tolerance `t` proves something only when this is well above `t`."""
    return min(rel_error(b, a) for a, b in zip(outputs_a, outputs_b, strict=True))


def check_input_dependence(outputs_a: Sequence[np.ndarray], outputs_b: Sequence[np.ndarray], tolerance: float) -> None:
    """Raise `ParityError` when outputs for two different inputs differ by less than `INPUT_DEPENDENCE_MARGIN`
    times `tolerance`: a comparison at that tolerance could not fail, whatever the network computes."""
    dep = input_dependence(outputs_a, outputs_b)
    if not dep >= INPUT_DEPENDENCE_MARGIN * tolerance:
        raise ParityError(
            f"the source's outputs hardly depend on the input (two different inputs give outputs that differ by "
            f"{dep:.3g}, need >= {INPUT_DEPENDENCE_MARGIN * tolerance:g}): a comparison at tolerance {tolerance:g} "
            "could not fail. Compare on trained weights (--weights), or redraw the source's random weights so the "
            "signal survives its depth (trtnet.zoo.he_init in the source your file registers)"
        )


def torch_model(name: str, seed: int = 0):
    """The zoo entry's PyTorch source in eval mode, with seeded random weights and randomised normalisations
    (see `randomize_norm_stats`), its outputs centred where the entry says so (`center_outputs`)."""
    import torch

    torch.manual_seed(seed)
    entry = get_entry(name)
    model = entry.torch_model()
    randomize_norm_stats(model, seed)
    model.eval()
    if entry.centered:
        try:
            center_outputs(model, entry.centered, entry.skeleton().inputs(), seed)
        except ConfigError as e:
            raise ConfigError(f"zoo entry {name!r}: {e}") from None
    return model


# The probe batch of `center_outputs` is drawn with the seed moved by this much, apart from every input drawn
# with the seed itself or the next few (verify's and the tests' `sample_inputs`).
_PROBE_SEED = 1 << 32


def center_outputs(model, path: str, inputs: Sequence[Input], seed: int = 0) -> None:
    """Shift the bias of `model`'s Linear `path` by the mean of its outputs on a random probe batch of 4 (from
    the `inputs` hints, as `sample_inputs` draws them), so that they average 0.

    A deep random ResNet's logits are mostly one offset that no input changes (ResNet-101's differ by 0.4% of
    their largest value between two inputs): a comparison measured against that value sees little else, and
    verify's input-dependence check refused it. Centred, they differ by 90% to 200% (seeds 0 to 2).
    """
    import torch

    try:
        layer = model.get_submodule(path)
    except AttributeError:
        raise ConfigError(f"centered={path!r} names no module of the source ({type(model).__name__})") from None
    if not isinstance(layer, torch.nn.Linear) or layer.bias is None:
        raise ConfigError(f"centered={path!r} is not a Linear with a bias: {type(layer).__name__}")
    seen: list = []
    hook = layer.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
    try:
        _outputs(model, sample_inputs(inputs, 4, seed + _PROBE_SEED))
    finally:
        hook.remove()
    with torch.no_grad():
        layer.bias -= seen[0].reshape(-1, seen[0].shape[-1]).mean(0)


# Parameters that scale a residual branch (layer scale): timm's `LayerScale.gamma` and ConvNeXt's block `gamma`,
# transformers' ConvNeXt `layer_scale_parameter`, DINOv2's `lambda1`. Initialised at 1e-6..1e-5, they make each
# branch all but vanish, and a parity test would not see the branch.
LAYER_SCALE_NAMES = ("gamma", "layer_scale_parameter", "lambda1")


def randomize_norm_stats(model, seed: int = 0) -> None:
    """Give every normalisation and layer scale non-trivial values, so that parity tests can see them.

    Freshly built sources leave them trivial: BatchNorm statistics 0/1, LayerNorm and GroupNorm weight 1 and
    bias 0 (an error in their affine part, or on the wrong axis, would go unnoticed), layer scales ~1e-6 (whole
    residual branches hidden). BatchNorm gets running means N(0, 0.1) and variances U(0.5, 1.5); every affine
    weight U(0.5, 1.5) and bias N(0, 0.1); every 1-D layer-scale parameter (`LAYER_SCALE_NAMES`) U(0.5, 1.5).
    """
    import torch

    g = torch.Generator().manual_seed(seed + 1)

    def uniform(t):
        t.copy_(torch.rand(t.shape, generator=g) + 0.5)

    def normal(t):
        t.copy_(torch.randn(t.shape, generator=g) * 0.1)

    norms = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                normal(m.running_mean)
                uniform(m.running_var)
            if isinstance(m, norms):
                if getattr(m, "weight", None) is not None:
                    uniform(m.weight)
                if getattr(m, "bias", None) is not None:
                    normal(m.bias)
        for name, p in model.named_parameters():
            if p.ndim == 1 and name.rpartition(".")[2] in LAYER_SCALE_NAMES:
                uniform(p)


def export_state(model, path: str | os.PathLike, check: Callable[[Path], None] | None = None) -> Path:
    """Write `model.state_dict()` to safetensors exactly as a user would (buffers included), atomically.

    The file is written under a temporary name in the same folder and renamed into place, so an interrupted
    export never leaves a partial file under `path`; nor does a failed `check` (given the temporary's path).
    """
    return save_state(model.state_dict(), path, check=check)


def save_state(
    state: Mapping[str, object],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write a dict of torch tensors with `safetensors.torch.save_file` (dtypes kept), atomically; `check(the
    temporary)` raises to leave `path` as it was."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    tensors, storages = {}, set()
    for key, value in state.items():
        value = value.detach().contiguous()
        storage = value.untyped_storage().data_ptr()
        # save_file refuses tensors that share storage (tied weights, views): those get a copy of their own.
        tensors[key] = value.clone() if storage in storages and value.numel() else value
        storages.add(storage)
    state = tensors
    refuse_plan_files(path, "the weights", WeightsError)
    with replaced(path, "the weights", WeightsError) as tmp:
        try:
            save_file(state, str(tmp), metadata=dict(metadata) if metadata else None)
        except SafetensorError as e:  # its I/O errors (a full disk, a missing folder) come as this, not OSError
            found = re.search(r"I/O error: (.*?)(?: \(os error \d+\)|$)", str(e), re.M)
            raise WeightsError(f"{path}: cannot write the weights: {found[1] if found else e}") from None
        if check is not None:
            check(tmp)
    return path


def load_into_source(source, model: Module, path: str | os.PathLike, source_name: str) -> list[str]:
    """Load a safetensors file into the PyTorch `source`, after the same layout conversion trtnet's loading into
    `model` applies; returns the layouts it was converted from. Every key of the source's state_dict must be
    there; keys trtnet skips (an unused head, recomputed buffers) that the source lacks are left out."""
    import torch

    from trtnet.layouts import adapt_checkpoint
    from trtnet.weights import read_safetensors

    state, layouts = adapt_checkpoint(model, read_safetensors(path))
    wanted = source.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise WeightsError(f"{path}: {source_name} needs {len(missing)} keys the file lacks (e.g. {missing[0]})")
    try:
        source.load_state_dict({k: torch.from_numpy(np.array(state[k])).to(v.dtype) for k, v in wanted.items()})
    except RuntimeError as e:
        raise WeightsError(f"{path}: {source_name} refuses the file: {e}") from None
    return layouts


def weight_differences(source, model: Module) -> str:
    """Which tensors of `model` differ from the PyTorch `source`'s, in one line: a check that fails says where.

    Parameters are matched by key and shape; one that a module re-lays out on loading has no counterpart and is
    counted as not compared (the output check still covers it).
    """
    state = {k: v.detach().float().numpy() for k, v in source.state_dict().items()}
    differ, compared, total = [], 0, 0
    for key, param in model.named_parameters():
        total += 1
        if key in state and state[key].shape == tuple(param.shape):
            compared += 1
            diff = float(np.max(np.abs(param.data - state[key]), initial=0.0))
            if not diff == 0.0:  # NaN counts as a difference
                differ.append((key, diff))
    unmatched = (
        "" if compared == total else f" ({total - compared} of {total} not compared: no tensor of that key and shape)"
    )
    if not differ:
        return f"every tensor equals the PyTorch source's{unmatched}"
    listed = ", ".join(f"{k} (max |diff| {d:.3g})" for k, d in differ[:5])
    return (
        f"{counted(len(differ), 'tensor')} {'differs' if len(differ) == 1 else 'differ'} from the PyTorch source's: "
        f"{listed}" + (" ..." if len(differ) > 5 else "") + unmatched
    )


def sample_inputs(model: Module | Sequence[Input], batch: int, seed: int = 0) -> list[np.ndarray]:
    """Random test inputs for `model` (or its declared `inputs()`), one per input, from the `Input` hints.

    Float inputs are standard normal. Integer inputs are uniform in [low, high) (token ids: high is the
    vocabulary size); a `padding_mask` input is ones with the tail of every other row zeroed, as padding.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in model.inputs() if isinstance(model, Module) else model:
        shape = (batch, *spec.opt_shape)
        if spec.dtype.startswith("float"):
            arrays.append(rng.standard_normal(shape).astype(spec.dtype))
        elif spec.padding_mask:
            mask = np.ones(shape, spec.dtype)
            # The last row, and every other one before it, ends in padding (a quarter of the positions), so
            # that a batch of two holds one padded and one full row. Every row keeps one real token: a row all
            # padding has no defined output (transformers' eager and sdpa attention give different ones).
            padded = min(max(1, shape[-1] // 4), shape[-1] - 1)
            mask[batch - 1 :: -2, ..., shape[-1] - padded :] = 0
            arrays.append(mask)
        else:
            arrays.append(rng.integers(int(spec.low), int(spec.high), shape).astype(spec.dtype))
    return arrays


def torch_forward(model, *inputs: np.ndarray) -> list[np.ndarray]:
    """Run the PyTorch model on the CPU in fp32 and return its outputs as numpy arrays."""
    return [o.float().numpy() for o in _outputs(model, inputs)]


def torch_forward64(model, *inputs: np.ndarray) -> list[np.ndarray]:
    """The PyTorch model run in float64 (a copy: its parameters, buffers and float inputs widened): the answer an
    fp32 run and trtnet are both measured against where they disagree."""
    import copy

    wide = [x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x for x in inputs]
    return [o.double().numpy() for o in _outputs(copy.deepcopy(model).double(), wide)]


def _outputs(model, inputs) -> list:
    """The model's output tensors on `inputs` (numpy arrays), without autograd."""
    import torch

    with torch.no_grad():
        out = model(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    if hasattr(out, "to_tuple"):  # a Hugging Face ModelOutput: its tensors in declaration order
        out = out.to_tuple()
    return [o.detach() for o in (out if isinstance(out, (list, tuple)) else [out])]


# The layer-by-layer comparison: `trtnet.parity.layerwise(model, source, inputs)` names the first module that departs.
from trtnet.parity.blame import Layerwise as Layerwise  # noqa: E402
from trtnet.parity.blame import layerwise as layerwise  # noqa: E402
from trtnet.parity.blame import layerwise_precision as layerwise_precision  # noqa: E402
