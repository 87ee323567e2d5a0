"""``forget-to-uniform``: make the forget set's predictions uniform while keeping retain predictions correct.

Loss per step: CE on a retain batch + ``weight`` · KL(uniform ‖ p(forget batch)). Unlike gradient ascent the
forget term is bounded below (it is 0 at the uniform distribution), so it cannot blow up.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from harness import UnlearningTask, register_method
from harness.api.blocks import paired
from harness.api.training import fit, sgd


@register_method("forget-to-uniform", needs_retain=True,
                 source="examples/plugin_package: uniform-output target on the forget set (example plugin)")
def forget_to_uniform(task: UnlearningTask, *, epochs: int = 5, lr: float = 0.01, weight: float = 1.0,
                      batch_size: int = 128) -> nn.Module:
    """Retain cross-entropy plus a pull of forget-set predictions towards the uniform distribution."""
    model = task.model

    def loss_fn(m: nn.Module, pair) -> torch.Tensor:
        (xr, yr), (xf, _) = pair
        log_p = F.log_softmax(m(xf), dim=1)
        to_uniform = -log_p.mean(dim=1).mean() - math.log(task.num_classes)  # KL(uniform || p)
        return F.cross_entropy(m(xr), yr) + weight * to_uniform

    def stream(_epoch: int):
        return paired(task.retain_loader(batch_size, augment=True), lambda: task.forget_loader(batch_size))

    return fit(model, sgd(model, lr), epochs, stream, loss_fn, progress=task.progress)
