"""Builders of the PyTorch source models the zoo re-expresses: the only zoo module that reaches torch,
torchvision, timm, transformers or yolov5, each imported lazily inside a builder, so that the zoo itself runs
without them.

`trtnet.parity` uses these to check trtnet against its sources; the zoo never imports parity.
"""

from __future__ import annotations

import re
from collections.abc import Callable


def he_init(model, gain: float = 2.0**0.5) -> None:
    """Redraw every Conv2d and Linear weight from N(0, gain^2 / fan_in), fan_in = one output's inputs.

    Some sources' own initialisers let the signal die out over depth: torchvision's MobileNetV2 scales its
    depthwise kernels by fan_out (x channels), InceptionV3 with `init_weights=False` and YOLOv5 keep PyTorch's
    default uniform(1/sqrt(3 fan_in)). Their random outputs then hardly depend on the input, and a parity test
    on them proves little. A zoo entry's source builder calls this where that happens (under the seed
    `trtnet.parity.torch_model` set, so the weights stay deterministic).

    A weight that does not train (`requires_grad` off) is part of the architecture, not a parameter to draw, and
    is kept: YOLOv8's DFL convolution holds the bin numbers 0..15 that turn a distribution into its mean.
    """
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight.requires_grad:
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, gain / fan_in**0.5)


def torchvision_source(name: str, he: bool | float = False, **kwargs) -> Callable[[], object]:
    """A builder of `torchvision.models.<name>(weights=None, **kwargs)`.

    `he=True` redraws conv and linear weights with `he_init`, for sources whose own random init lets the
    signal fade so that random outputs barely depend on the input; a number is the gain to draw them with.
    """

    def make():
        import torchvision

        model = getattr(torchvision.models, name)(weights=None, **kwargs)
        _redraw(model, he)
        return model

    return make


def timm_source(name: str, he: bool | float = False) -> Callable[[], object]:
    """A builder of `timm.create_model(name, pretrained=False)`; `he` as in `torchvision_source`."""

    def make():
        import timm

        model = timm.create_model(name, pretrained=False)
        _redraw(model, he)
        return model

    return make


def _redraw(model, he: bool | float) -> None:
    if he is True:
        he_init(model)
    elif he:
        he_init(model, gain=float(he))


def published_source(source: str) -> Callable[[], object] | None:
    """A builder of the published-weights model that `source` names, when it names a plain torchvision builder
    (`torchvision.models.resnet50`) or a timm model (`timm vit_base_patch16_224`,
    `timm.create_model('efficientnet_b0')`); None otherwise (never a guess)."""
    torchvision_fn = re.fullmatch(r"torchvision\.models\.(\w+)", source)
    timm_name = re.fullmatch(r"timm(?:\.create_model\(['\"]|[ .:])(\w+)(?:['\"]\))?", source)
    if torchvision_fn:

        def make():
            import torchvision

            return getattr(torchvision.models, torchvision_fn[1])(weights="DEFAULT")

        return make
    if timm_name:

        def make():
            import timm

            return timm.create_model(timm_name[1], pretrained=True)

        return make
    return None


def transformers_bert_source():
    """`transformers.BertModel(BertConfig())`: BERT-base with random weights."""
    import transformers

    return transformers.BertModel(transformers.BertConfig())


def transformers_bert_pretrained():
    """bert-base-uncased with its published weights (downloads them)."""
    import transformers

    return transformers.BertModel.from_pretrained("google-bert/bert-base-uncased")


def _positional_gpt2():
    """`GPT2Model` called as the zoo entry is, `(input_ids, attention_mask) -> last_hidden_state` (its own second
    positional parameter is the KV cache), without a cache. A subclass, so its state_dict keys are GPT2Model's."""
    import transformers

    class GPT2Model(transformers.GPT2Model):
        def forward(self, input_ids, attention_mask=None):
            out = super().forward(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            return out.last_hidden_state

    return GPT2Model


def transformers_gpt2_source(**config) -> Callable[[], object]:
    """A builder of `transformers.GPT2Model(GPT2Config(**config))` with random weights (default: GPT-2 small),
    eager attention (the plain matmul-softmax-matmul that ONNX export writes out), called as
    `(input_ids, attention_mask)`."""

    def make():
        import transformers

        return _positional_gpt2()(transformers.GPT2Config(attn_implementation="eager", **config))

    return make


def transformers_gpt2_pretrained(repo: str) -> Callable[[], object]:
    """A builder of the GPT-2 published as Hugging Face `repo` (downloads it), called as `(input_ids,
    attention_mask)`."""

    def make():
        return _positional_gpt2().from_pretrained(repo)

    return make


def yolov5_source(name: str) -> Callable[[], object]:
    """A builder of `yolov5.models.yolo.Model('<name>.yaml')` (the yolov5 pip package, v7.0) in export mode."""

    def make():
        import os
        from pathlib import Path

        # ultralytics (imported by yolov5's utils) probes DNS at import unless told it is offline.
        os.environ.setdefault("YOLO_OFFLINE", "1")
        import yolov5
        from yolov5.models.yolo import Model

        model = Model(str(Path(yolov5.__file__).parent / "models" / f"{name}.yaml"))
        model.model[-1].export = True  # eval output is then `(predictions,)`, without the raw per-level maps
        # PyTorch's default init fades the signal (outputs would ignore the input); gain sqrt(2) overshoots
        # and saturates most sigmoid outputs. 1.3 keeps both the boxes and the confidences input-dependent.
        he_init(model, gain=1.3)
        return model

    return make


def ultralytics_source(name: str) -> Callable[[], object]:
    """A builder of `ultralytics.nn.tasks.DetectionModel('<name>.yaml')` (yolov8n, yolo11s...) in export mode:
    its eval output is then the decoded `[B, 4 + nc, anchors]` alone."""

    def make():
        import os

        os.environ.setdefault("YOLO_OFFLINE", "1")  # no DNS probe at import
        from ultralytics.nn.tasks import DetectionModel

        model = DetectionModel(f"{name}.yaml", verbose=False)
        model.model[-1].export = True
        # As for YOLOv5: PyTorch's default init fades the signal; 1.3 keeps boxes and scores input-dependent.
        he_init(model, gain=1.3)
        # `bias_init` starts the class logits near -10 (1% objects over a 640 image): with random weights the scores
        # would be ~1e-5 and hardly depend on the input. Zero class biases keep them comparable.
        for branch in model.model[-1].cv3:
            branch[-1].bias.data.zero_()
        # The box logits (16 bins a side) come out within +-0.2 of each other: the DFL's softmax of them is flat, and
        # its mean, a box side, is the middle bin whatever the input (boxes of two inputs differed by 0.02% to 0.5%
        # of their largest value). Trained ones are peaked: 8 times sharper, the boxes differ by 3% to 20%.
        for branch in model.model[-1].cv2:
            branch[-1].weight.data.mul_(8.0)
        return model

    return make


def transformers_causal_lm_source(cls_name: str, config: dict | None = None) -> Callable[[], object]:
    """A builder of `transformers.<cls_name>` (LlamaForCausalLM, Qwen2ForCausalLM) from the config kwargs
    `config` with random weights and eager attention, called as the zoo's prefill network is:
    `(input_ids, attention_mask, position_ids) -> (logits, present.0.key, present.0.value, ...)`."""

    def make():
        import transformers

        base = getattr(transformers, cls_name)
        config_cls = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))

        class Positional(base):
            def forward(self, input_ids, attention_mask=None, position_ids=None):
                out = super().forward(
                    input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True
                )
                cache = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
                return (out.logits, *[t for kv in cache for t in kv])

        Positional.__name__ = cls_name
        return Positional(config_cls(attn_implementation="eager", **(config or {})))

    return make


def transformers_gpt2_lm_source(**config) -> Callable[[], object]:
    """A builder of `transformers.GPT2LMHeadModel(GPT2Config(**config))` with random weights and eager attention,
    called as the zoo's `gpt2_lm` prefill network is: `(input_ids, attention_mask, position_ids) -> (logits,
    present.0.key, present.0.value, ...)`."""

    def make():
        import transformers

        class Positional(transformers.GPT2LMHeadModel):
            def forward(self, input_ids, attention_mask=None, position_ids=None):
                out = super().forward(
                    input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True
                )
                cache = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
                return (out.logits, *[t for kv in cache for t in kv])

        Positional.__name__ = "GPT2LMHeadModel"
        return Positional(transformers.GPT2Config(attn_implementation="eager", **config))

    return make
