"""AMUN's adversarial set D_A: escalating-epsilon L2 PGD, batched over the whole forget set.

Code-faithful to the AMUN repository (docs/seed_methods.md): the attacked model is in eval mode, inputs are not
augmented, there is no random start, the step is ``0.1·eps`` (recomputed whenever eps doubles), gradients
are normalised per sample, every iterate is projected onto the eps-ball around its sample and clipped to
[0, 1]. A sample freezes at the FIRST iterate the model misclassifies, and its adversarial label is the
model's prediction there. Samples still correct after ``steps`` iterations get ``eps ← 2·eps`` and continue
from their current iterate (warm start, as the code does; ``restart_per_eps=True`` restarts from the clean
sample, as the paper's Alg. 1 reads). Samples the model already misclassifies keep a zero perturbation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness.api.training import frozen_copy

ATTACK_VERSION = "1"  # bump when the attack's semantics change: it is part of the artifact-cache key


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample, shaped (n, 1, 1, ...) for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _attack_chunk(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_init: float, steps: int,
                  max_doublings: int, restart_per_eps: bool) -> tuple[torch.Tensor, ...]:
    n = len(y)
    x_adv = x.clone()
    y_adv = y.clone()
    eps_now = torch.full((n,), float(eps_init), device=x.device)
    eps_found = torch.full((n,), float("inf"), device=x.device)  # inf: not flipped within the cap
    active = torch.arange(n, device=x.device)
    for doubling in range(max_doublings + 1):
        if doubling > 0:
            eps_now[active] *= 2.0
            if restart_per_eps:
                x_adv[active] = x[active]
        # Iterates 0..steps are checked; the step is taken only between checks, so iterate `steps` is
        # judged at this eps before doubling (warm start continues from it).
        for t in range(steps + 1):
            xa = x_adv[active].clone().requires_grad_(True)
            logits = model(xa)
            pred = logits.argmax(1)
            flipped = pred != y[active]
            if flipped.any():
                idx = active[flipped]
                y_adv[idx] = pred[flipped]
                eps_found[idx] = eps_now[idx]
            keep = ~flipped
            if t == steps or not keep.any():
                active = active[keep]
                break
            loss = F.cross_entropy(logits[keep], y[active][keep], reduction="sum")
            # In eval mode samples are independent, so the gradient of the sum is the per-sample gradient.
            (grad,) = torch.autograd.grad(loss, xa)
            with torch.no_grad():
                idx = active[keep]
                g = grad[keep]
                g = g / (_per_sample_norm(g) + 1e-10)
                eps_i = eps_now[idx].view(-1, *([1] * (x.dim() - 1)))
                stepped = x_adv[idx] + 0.1 * eps_i * g
                delta = stepped - x[idx]
                delta = delta * torch.clamp(eps_i / (_per_sample_norm(delta) + 1e-12), max=1.0)
                x_adv[idx] = torch.clamp(x[idx] + delta, 0.0, 1.0)
            active = idx
        if len(active) == 0:
            break
    dist = (x_adv - x).flatten(1).norm(dim=1)
    return x_adv.detach(), y_adv, eps_found, dist


def adversarial_set(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps_init: float = 0.04,
                    steps: int = 50, max_doublings: int = 12, restart_per_eps: bool = False,
                    batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest-found misclassified neighbour of every sample: ``(x_adv, y_adv, eps, dist)`` on the CPU.

    ``eps`` is the radius at which the sample first flipped (``eps_init·2^k``); it is ``inf`` (and
    ``y_adv == y``) for a sample not flipped after ``max_doublings`` doublings — callers drop those.
    ``dist = ‖x_adv − x‖₂ ≤ eps``. ``batch_size`` only bounds memory: all samples of a chunk are attacked
    together and leave the active set independently.
    """
    if eps_init <= 0 or steps < 1 or max_doublings < 0:
        raise ValueError("need eps_init > 0, steps >= 1 and max_doublings >= 0")
    attacker = frozen_copy(model)  # eval mode, no parameter gradients; the caller's model is untouched
    device = next(attacker.parameters()).device
    parts = []
    with torch.enable_grad():
        for start in range(0, len(y), batch_size):
            xb = x[start : start + batch_size].to(device).float()
            yb = y[start : start + batch_size].to(device)
            parts.append([t.cpu() for t in _attack_chunk(attacker, xb, yb, eps_init, steps, max_doublings,
                                                          restart_per_eps)])
    if not parts:
        empty = torch.empty(0)
        return x[:0].cpu().float(), y[:0].cpu(), empty, empty
    x_adv, y_adv, eps, dist = (torch.cat(column) for column in zip(*parts))
    return x_adv, y_adv, eps, dist
