"""FastClip-style clipping: exact spectral norms (explicit matrices + SVD) are at most the target afterwards."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.training.clipping import SpectralClipper, clipping_hook, linear_map, power_iteration


def explicit_matrix(layer: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The layer's linear map (no bias) as a matrix: push the identity basis of the input space through it."""
    n = int(torch.tensor(input_shape).prod())
    basis = torch.eye(n, dtype=torch.float64).view(n, *input_shape)
    with torch.no_grad():
        layer = layer.double()
        out = linear_map(layer)(basis)
        layer.float()
    return out.reshape(n, -1).T  # columns = images of the basis vectors


def exact_sigma(layer: nn.Module, input_shape: tuple[int, ...]) -> float:
    return float(torch.linalg.svdvals(explicit_matrix(layer, input_shape))[0])


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(),  # 2x7x7 -> 3x4x4
        nn.Conv2d(3, 4, 2, stride=1, padding=1, padding_mode="circular"), nn.ReLU(),  # -> 4x5x5
        nn.Flatten(), nn.Linear(100, 10),
    )
    with torch.no_grad():
        for m in net:
            if hasattr(m, "weight"):
                m.weight.mul_(5.0)  # well above the target
    return net


SHAPES = {"0": (2, 7, 7), "2": (3, 4, 4), "5": (100,)}


def test_power_iteration_matches_svd():
    net = small_net()
    for name, shape in SHAPES.items():
        layer = net.get_submodule(name)
        sigma, _ = power_iteration(linear_map(layer), torch.randn(1, *shape), iters=500, tol=1e-10)
        assert sigma == pytest.approx(exact_sigma(layer, shape), rel=1e-3)


@pytest.mark.parametrize("target", [1.0, 0.5])
def test_clipping_bounds_every_layer(target):
    net = small_net()
    x = torch.rand(4, 2, 7, 7)
    before = {name: exact_sigma(net.get_submodule(name), shape) for name, shape in SHAPES.items()}
    assert all(s > target * 1.5 for s in before.values())
    hook = clipping_hook(net, target, every=3, example=x)
    hook(net, 1)  # not a clipping step
    assert exact_sigma(net.get_submodule("0"), SHAPES["0"]) == pytest.approx(before["0"])
    hook(net, 3)
    for name, shape in SHAPES.items():
        after = exact_sigma(net.get_submodule(name), shape)
        assert after <= target * (1 + 1e-2), (name, after)
        assert after >= target * 0.9  # rescaled to the target, not far below it
    assert net(x).shape == (4, 10)


def test_linear_layer_alone():
    torch.manual_seed(1)
    layer = nn.Linear(20, 7)
    with torch.no_grad():
        layer.weight.mul_(10)
    clipper = SpectralClipper(layer, 2.0, torch.rand(3, 20))
    clipper.clip()
    assert exact_sigma(layer, (20,)) <= 2.0 * (1 + 1e-2)


def test_layers_below_target_untouched():
    layer = nn.Linear(6, 4)
    with torch.no_grad():
        layer.weight.mul_(1e-3)
    w = layer.weight.detach().clone()
    SpectralClipper(layer, 1.0, torch.rand(1, 6)).clip()
    assert torch.equal(layer.weight, w)


def test_train_model_with_clip(digits_suite):
    """The harness's training loop calls the hook; the trained digits MLP ends clipped at its last clip step."""
    from dataclasses import replace

    from harness.protocol.architectures import build_model
    from harness.training.loop import train_model

    data = digits_suite.load_data()
    x, y = data.train_x[:256], data.train_y[:256]
    recipe = replace(digits_suite.recipe, epochs=2, batch_size=64, clip=1.0, clip_every=4)  # 4 steps/epoch
    model = train_model(build_model("mlp", tuple(x.shape[1:]), 10, seed=0), x, y, recipe, seed=0)
    for layer in [m for m in model if isinstance(m, nn.Linear)]:
        shape = (layer.in_features,)
        assert exact_sigma(layer, shape) <= 1.0 * (1 + 1e-2)
