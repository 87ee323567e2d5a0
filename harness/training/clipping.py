"""Layer-wise spectral-norm clipping in the spirit of FastClip (Ebrahimpour-Boroojeny et al.; docs/seed_methods.md).

Each affine layer g (Linear, Conv1d/2d/3d) is treated as the linear operator A: v ↦ g(v) − g(0), i.e. the layer
without its bias, applied to inputs of the shape the layer actually sees. Its largest singular value is found by
power iteration on AᵀA, where AᵀA·v is the gradient of ½‖A v‖² obtained by autograd through the layer — so
padding, stride, dilation and groups are handled exactly, with no reshaping of the kernel into a matrix.

Clipping (our implementation of the idea): every ``every`` steps, a layer with σ₁ > target has its weight scaled
by target/σ₁, which makes the operator norm exactly the target (up to the power-iteration accuracy). FastClip
instead takes a few gradient steps that shrink only the top singular direction; rescaling also shrinks the rest of
the spectrum. The top singular vector is kept per layer and warm-starts the next estimate. BatchNorm layers are
not clipped (FastClip's option "keep BN", which gives no global Lipschitz guarantee).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

CLIPPED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def linear_map(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layer's linear part (no bias) as a function of a batch of inputs."""
    if isinstance(layer, nn.Linear):
        return lambda v: F.linear(v, layer.weight)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        # _conv_forward applies the layer's own padding mode (zeros, reflect, circular...), all linear in v.
        return lambda v: layer._conv_forward(v, layer.weight, None)
    raise TypeError(f"no linear map for {type(layer).__name__}")


def _ata(fn: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor) -> torch.Tensor:
    """AᵀA v via autograd: the gradient of ½‖A v‖² with respect to v."""
    v = v.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(0.5 * fn(v).pow(2).sum(), v)
    return g.detach()


def power_iteration(fn: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, iters: int = 100,
                    tol: float = 1e-6) -> tuple[float, torch.Tensor]:
    """Largest singular value of the linear map ``fn`` and its top right-singular vector (unit norm).

    ``v`` (shape (1, *input_shape)) is the warm start. Each iteration costs one forward and one backward
    through the layer; σ = ‖A v‖ = sqrt(vᵀAᵀA v) of the current unit v (a lower bound converging to σ₁).
    Stops early when σ changes by less than ``tol`` (relative).
    """
    v = v / (v.norm() + 1e-30)
    sigma = 0.0
    for _ in range(max(1, iters)):
        g = _ata(fn, v)
        new_sigma = float(torch.sum(v * g).clamp_min(0.0).sqrt())
        norm = g.norm()
        if float(norm) == 0.0:  # A v = 0: the map vanishes on this direction (or entirely)
            return 0.0, v
        v = g / norm
        converged = abs(new_sigma - sigma) <= tol * max(new_sigma, 1e-30)
        sigma = new_sigma
        if converged:
            break
    return sigma, v


@dataclass
class LayerState:
    name: str
    layer: nn.Module
    vector: torch.Tensor  # warm-started top right-singular vector, shape (1, *input_shape)
    sigma: float = float("nan")


def input_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Per-sample input shape of every clippable layer, recorded by one eval-mode forward pass."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, CLIPPED_TYPES):
            def record(mod, args, _name=name):
                shapes.setdefault(_name, tuple(args[0].shape[1:]))
            handles.append(module.register_forward_pre_hook(record))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


class SpectralClipper:
    """Keeps the spectral norm of every Linear/Conv layer of ``model`` at most ``target``."""

    def __init__(self, model: nn.Module, target: float, example: torch.Tensor, init_iters: int = 100,
                 iters: int = 20, tol: float = 1e-6, seed: int = 0):
        if target <= 0:
            raise ValueError(f"clip target must be positive, got {target}")
        self.target, self.iters, self.tol = float(target), int(iters), float(tol)
        gen = torch.Generator().manual_seed(seed)
        shapes = input_shapes(model, example[:1])
        modules = dict(model.named_modules())
        self.layers: list[LayerState] = []
        for name, shape in shapes.items():
            layer = modules[name]
            v = torch.randn((1, *shape), generator=gen).to(layer.weight.device, layer.weight.dtype)
            state = LayerState(name, layer, v)
            state.sigma, state.vector = power_iteration(linear_map(layer), v, init_iters, tol)
            self.layers.append(state)

    @torch.no_grad()
    def clip(self) -> dict[str, float]:
        """Re-estimate each layer's σ₁ (warm start) and rescale the layers above the target; returns σ₁ before."""
        before = {}
        for state in self.layers:
            sigma, state.vector = power_iteration(linear_map(state.layer), state.vector, self.iters, self.tol)
            before[state.name] = sigma
            if sigma > self.target:
                state.layer.weight.mul_(self.target / sigma)
                sigma = self.target
            state.sigma = sigma
        return before


def clipping_hook(model: nn.Module, target: float, every: int, example: torch.Tensor,
                  **options) -> Callable[[nn.Module, int], None]:
    """A ``step_hook(model, step)`` for :func:`harness.training.loop.optimize` that clips every ``every`` steps.

    ``example`` is one input batch (only its shape is used) that fixes each layer's input shape.
    ``options`` go to :class:`SpectralClipper` (``init_iters``, ``iters``, ``tol``, ``seed``).
    """
    if every < 1:
        raise ValueError(f"clip_every must be >= 1, got {every}")
    clipper = SpectralClipper(model, target, example, **options)

    def hook(model_: nn.Module, step: int) -> None:
        del model_  # the clipper holds the layers of the model it was built for
        if step % every == 0:
            clipper.clip()

    hook.clipper = clipper  # type: ignore[attr-defined]
    return hook
