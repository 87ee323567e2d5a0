"""Model architectures by name: small nets for tests and quick suites, ResNet-18 (CIFAR stem) and ViT-Tiny for
papers, and any timm or torchvision architecture as ``timm:<name>`` / ``torchvision:<name>``. A plugin adds one with
``@register_model(name, head=...)`` (a file, or an ``unlearn_bench.models`` entry point).

A suite's ``[model]`` table is the name and, optionally, keyword arguments for the builder; both travel as one
string, the *model spec* (:func:`model_spec`: ``name`` alone, or ``name{json of the arguments}``), which is what
cache keys, rows and the method workers see. A suite without arguments has the bare name, so its keys are as before.
timm and torchvision models get ``num_classes``, ``in_chans`` (timm) and the input size (models with a fixed input
size) from the data; the suite's arguments override them.

Every built-in model declares its *head*: the name (as ``named_modules`` spells it) of the final linear layer
whose input is the model's penultimate representation, the features the ``representation`` evaluator compares
(harness/evaluate/representation.py). It is declared per architecture, never guessed from the module tree: a
"last Linear" heuristic would pick the wrong layer in a model whose classifier is not the last module listed.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from harness.core.registry import Registry

ModelBuilder = Callable[..., nn.Module]  # (input_shape, num_classes, **arguments) -> nn.Module
MODELS: Registry[ModelBuilder] = Registry("model", entry_points="unlearn_bench.models")
# model name -> its head module's name; the head's input is the penultimate representation
FEATURE_HEADS: dict[str, str] = {}
# resolved names whose head is found by building the model once (torchvision: no declared classifier name)
_HEAD_FINDERS: dict[str, Callable[[], str]] = {}


def model_spec(name: str, arguments: dict[str, Any] | None = None) -> str:
    """The one string for a model and its builder's keyword arguments (the bare name without arguments)."""
    if not arguments:
        return name
    return name + json.dumps(arguments, sort_keys=True, separators=(",", ":"))


def split_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """(name, keyword arguments) of a model spec."""
    name, brace, rest = spec.partition("{")
    return name, (json.loads(brace + rest) if brace else {})


def register_model(name: str, head: str | None = None) -> Callable[[ModelBuilder], ModelBuilder]:
    """``@register_model(name, head=...)``: a builder ``(input_shape, num_classes) -> nn.Module`` under ``name``;
    ``head`` names the classifier module whose input is the penultimate representation (None: the model has no
    declared feature layer, and the representation evaluator refuses it)."""
    register = MODELS.decorator(name)

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        register(builder)
        if head is not None:
            FEATURE_HEADS[name] = head
        return builder

    return decorate


def feature_head(spec: str) -> str:
    """The declared head module of model ``spec``: its input is the penultimate representation."""
    name, _ = split_model_spec(spec)
    MODELS[name]  # an unknown model: "unknown model ...; did you mean"
    if name not in FEATURE_HEADS and name in _HEAD_FINDERS:
        FEATURE_HEADS[name] = _HEAD_FINDERS[name]()
    if name not in FEATURE_HEADS:
        raise ValueError(f"model {name!r} declares no feature layer: register it with "
                         f"@register_model({name!r}, head='<name of its classifier module>')")
    return FEATURE_HEADS[name]


def build_model(spec: str, input_shape: tuple[int, int, int], num_classes: int, seed: int | None = None) -> nn.Module:
    """Build a freshly initialised model from its spec (a name, or a name and arguments: :func:`model_spec`); with
    ``seed`` the initialisation is deterministic."""
    name, arguments = split_model_spec(spec)
    builder = MODELS[name]
    if seed is None:
        return builder(tuple(input_shape), num_classes, **arguments)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(tuple(input_shape), num_classes, **arguments)


# ---------------------------------------------------------------- timm and torchvision, by name


def _prefixed(prefix: str, name: str, choices: list[str]) -> str:
    """"; did you mean 'timm:x'?": the closest of a library's names, spelt as a suite writes them."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return "; did you mean " + " or ".join(repr(f"{prefix}:{c}") for c in close) + "?" if close else ""


def _timm_builder(name: str) -> ModelBuilder:
    """``timm:<name>``: any timm architecture, untrained; unknown names get "did you mean" from timm's own list."""
    import timm

    if not timm.is_model(name):
        raise KeyError(f"timm has no model {name!r}{_prefixed('timm', name, timm.list_models())} "
                       "(timm.list_models('*pattern*') lists them)")
    cfg = timm.get_pretrained_cfg(name)
    if cfg is not None and cfg.classifier:
        FEATURE_HEADS[f"timm:{name}"] = cfg.classifier  # timm's own name for the classifier module

    def build(input_shape: tuple[int, int, int], num_classes: int, **arguments: Any) -> nn.Module:
        c, h, w = input_shape
        filled: dict[str, Any] = {"num_classes": num_classes, "in_chans": c}
        if cfg is not None and getattr(cfg, "fixed_input_size", False):
            filled["img_size"] = h if h == w else (h, w)  # a ViT's position embeddings are sized to the input
        return timm.create_model(name, pretrained=False, **{**filled, **arguments})

    return build


def _torchvision_builder(name: str) -> ModelBuilder:
    """``torchvision:<name>``: a torchvision classification architecture, untrained (3-channel inputs)."""
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise KeyError(f"torchvision has no classification model {name!r}{_prefixed('torchvision', name, known)}")

    def build(input_shape: tuple[int, int, int], num_classes: int, **arguments: Any) -> nn.Module:
        c, h, _ = input_shape
        if c != 3 and "in_chans" not in arguments:
            raise ValueError(f"torchvision:{name} takes 3-channel images and the data has {c}; use timm:{name} "
                             "(timm sets in_chans) or register a builder with @register_model")
        filled: dict[str, Any] = {"num_classes": num_classes, "weights": None}
        if name.startswith(("vit_", "swin_", "maxvit")):
            filled["image_size"] = h
        return torchvision.models.get_model(name, **{**filled, **arguments})

    def find_head() -> str:
        # torchvision declares no classifier name: the last Linear producing the logits (it has num_classes
        # outputs, a count no hidden layer of these models has)
        model = build((3, 224, 224), 7)
        heads = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == 7]
        if not heads:
            raise ValueError(f"torchvision:{name} has no Linear classifier to read the representation from")
        return heads[-1]

    _HEAD_FINDERS[f"torchvision:{name}"] = find_head
    return build


MODELS.add_resolver("timm", _timm_builder)
MODELS.add_resolver("torchvision", _torchvision_builder)


@register_model("mlp", head="5")  # Flatten, Linear, ReLU, Linear, ReLU, [5] Linear
def mlp(input_shape: tuple[int, int, int], num_classes: int, hidden: int = 256) -> nn.Module:
    c, h, w = input_shape
    return nn.Sequential(
        nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


@register_model("mlp-128", head="5")
def mlp_128(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The MLP at half width, fmnist-quick's model: half the compute of 256 units on a CPU, and the same
    original-oracle forget-accuracy gap on that suite (docs/scale.md)."""
    return mlp(input_shape, num_classes, hidden=128)


@register_model("cnn-small", head="9")  # conv, relu, pool (x2), flatten, Linear, ReLU, [9] Linear
def cnn_small(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Two conv blocks and a linear head; works for 8x8, 28x28 and 32x32 inputs."""
    c, h, w = input_shape
    pool = 2 if min(h, w) >= 16 else 1  # 8x8 digits keep their resolution
    layers: list[nn.Module] = [
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(pool),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(pool),
        nn.Flatten(),
    ]
    flat = 64 * (h // pool // pool) * (w // pool // pool)
    layers += [nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, num_classes)]
    return nn.Sequential(*layers)


@register_model("resnet18-cifar", head="fc")  # input: the 512 globally pooled features
def resnet18_cifar(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """torchvision ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool), as unlearning papers use."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_model("vit-tiny", head="head")  # input: the normed class token (timm forward_head)
def vit_tiny(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """timm ViT-Tiny (192 wide, 12 blocks) with 4x4 patches, sized for 32x32 inputs."""
    from timm.models.vision_transformer import VisionTransformer

    c, h, _ = input_shape
    return VisionTransformer(
        img_size=h, patch_size=4, in_chans=c, num_classes=num_classes, embed_dim=192, depth=12, num_heads=3,
    )
