"""Model architectures by name: small nets for tests and quick suites, ResNet-18 (CIFAR stem) and ViT-Tiny for
papers. A plugin adds one with ``@register_model(name, head=...)``.

Every built-in model declares its *head*: the name (as ``named_modules`` spells it) of the final linear layer
whose input is the model's penultimate representation, the features the ``representation`` evaluator compares
(harness/evaluate/representation.py). It is declared per architecture, never guessed from the module tree: a
"last Linear" heuristic would pick the wrong layer in a model whose classifier is not the last module listed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.core.registry import Registry

ModelBuilder = Callable[[tuple[int, int, int], int], nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
# model name -> its head module's name; the head's input is the penultimate representation
FEATURE_HEADS: dict[str, str] = {}


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


def feature_head(name: str) -> str:
    """The declared head module of model ``name``: its input is the penultimate representation."""
    MODELS[name]  # an unknown model: "unknown model ...; did you mean"
    if name not in FEATURE_HEADS:
        raise ValueError(f"model {name!r} declares no feature layer: register it with "
                         f"@register_model({name!r}, head='<name of its classifier module>')")
    return FEATURE_HEADS[name]


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, seed: int | None = None) -> nn.Module:
    """Build a freshly initialised model; with ``seed`` the initialisation is deterministic."""
    builder = MODELS[name]
    if seed is None:
        return builder(tuple(input_shape), num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(tuple(input_shape), num_classes)


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
