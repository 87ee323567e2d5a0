"""SSD (Selective Synaptic Dampening): shrink the parameters far more important to the forget set than to the
whole training set, by diagonal Fisher importance — no gradient steps (Foster et al., AAAI 2024).

Model in eval mode. I_f = mean over D_f batches of (batch-mean ∇θ CE)²; I_D the same over D = D_f ∪ D_r (so the
method needs the retain data, ``needs_retain=True``). Parameters with I_f > α·I_D are multiplied by
min(λ·I_D / I_f, 1). Importances depend on the batch size, so α/λ are not portable across batch sizes.
Defaults: official repo for ResNet-18/CIFAR (α 10, λ 1, batch 128 for random forgetting).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from harness import LogUniform, UnlearningTask, register_method
from harness.api.training import Batch, batches


def fisher_diagonal(model: nn.Module, stream: Iterable[Batch]) -> dict[str, torch.Tensor]:
    """Mean over batches of squared batch-mean CE gradients, per parameter (model in eval mode)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    model.eval()
    for x, y in stream:
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(params.values()), allow_unused=True)
        for name, g in zip(params, grads):
            if g is not None:
                total[name] += g.detach() ** 2
        count += 1
    return {n: t / max(count, 1) for n, t in total.items()}


@register_method(
    "ssd", kind="baseline", needs_retain=True,
    source="Foster et al. 2024 (SSD); defaults from the official repo (alpha 10, lambda 1, batch 128)",
    hparam_sources={"alpha": "official SSD repo", "dampening": "official SSD repo (lambda)",
                    "batch_size": "official SSD repo (random forgetting)"},
    # no gradient steps: its two knobs are the selection threshold alpha and the dampening lambda
    search_space={"alpha": LogUniform(1.0, 1e4), "dampening": LogUniform(0.1, 100.0)})
def ssd(task: UnlearningTask, *, alpha: float = 10.0, dampening: float = 1.0, batch_size: int = 128) -> nn.Module:
    """Dampen parameters whose forget-set Fisher importance exceeds alpha times the full-set importance."""
    model = task.model
    imp_f = fisher_diagonal(model, task.forget_loader(batch_size, shuffle=False))
    full_x = torch.cat([task.forget.x, task.retain.x])
    full_y = torch.cat([task.forget.y, task.retain.y])
    imp_d = fisher_diagonal(model, batches(full_x, full_y, batch_size, task.generator, shuffle=True))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in imp_f:
                continue
            selected = imp_f[name] > alpha * imp_d[name]
            factor = (dampening * imp_d[name] / imp_f[name].clamp_min(1e-30)).clamp(max=1.0)
            p.mul_(torch.where(selected, factor, torch.ones_like(factor)))
    task.progress(1, 1)
    return model.eval()
