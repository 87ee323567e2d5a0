"""GA (a.k.a. NegGrad): gradient ascent on the forget-set cross-entropy, no retain data (Thudi et al. 2022).

Implemented as in the SalUn/Unlearn-Sparse harness: minimise −CE(f(x), y) over D_f batches with SGD
(momentum 0.9, weight decay 5e-4), constant lr. The objective is unbounded: there is no clipping and no early
stop, so a too-large lr or too many epochs collapse the model (or give NaN weights, which the harness
records as an ``invalid`` row). AMUN's variant with a retain pass per epoch is not this method: GA here never
sees D_r (``needs_retain=False``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness import IntRange, LogUniform, UnlearningTask, register_method
from harness.api.training import Batch, fit, sgd


def _ascent_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    x, y = batch
    return -F.cross_entropy(model(x), y)


@register_method(
    "gradient-ascent", kind="baseline", needs_retain=False,
    source="Thudi et al. 2022 (GA/NegGrad); defaults from the Unlearn-Sparse README (5 ep, lr 1e-4)",
    hparam_sources={"epochs": "Unlearn-Sparse README", "lr": "Unlearn-Sparse README (class-wise default)",
                    "momentum": "SalUn harness", "weight_decay": "SalUn harness",
                    "batch_size": "harness convention (SalUn uses 256)"},
    search_space={"lr": LogUniform(1e-6, 0.1), "epochs": IntRange(1, 20, hard=("low",))})
def gradient_ascent(task: UnlearningTask, *, epochs: int = 5, lr: float = 1e-4, batch_size: int = 128,
                    momentum: float = 0.9, weight_decay: float = 5e-4) -> nn.Module:
    """Gradient ascent on the forget set's cross-entropy (forget data only)."""
    model = task.model
    optimizer = sgd(model, lr, momentum, weight_decay)
    return fit(model, optimizer, epochs, lambda _: task.forget_loader(batch_size, augment=True), _ascent_loss,
               progress=task.progress)
