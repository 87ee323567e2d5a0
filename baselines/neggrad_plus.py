"""NegGrad+: fine-tune on the retain set while ascending the forget loss (Kurmanji et al., NeurIPS 2023).

Each retain batch is paired with the next forget batch (the forget set is cycled; one epoch = one pass over
D_r) and the loss is β·CE(f(x_r), y_r) − (1 − β)·CE(f(x_f), y_f). Implemented as the SCRUB repo's MIA
notebook loop: the model in train mode, no L2 pull towards θ0 (the small-scale notebook's eval-mode variant is
not implemented); SGD with momentum 0.9 and weight decay 5e-4 as in RUM's SalUn-harness port. The forget term
is unbounded: no clipping; NaN weights become an ``invalid`` row.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness import LogUniform, Uniform, UnlearningTask, register_method
from harness.api.blocks import paired
from harness.api.training import fit, sgd


@register_method(
    "neggrad-plus", kind="baseline", needs_retain=True,
    source="Kurmanji et al. 2023 (SCRUB paper, NegGrad+); defaults from RUM / the SCRUB repo (lr 0.01, 5 ep)",
    hparam_sources={"epochs": "RUM README (5 ep)", "lr": "SCRUB repo / RUM", "beta": "SCRUB repo small-scale (0.95)",
                    "momentum": "RUM (SalUn harness)", "weight_decay": "RUM (SalUn harness)",
                    "batch_size": "harness convention", "forget_batch_size": "harness convention"},
    search_space={"lr": LogUniform(1e-5, 0.5), "beta": Uniform(0.1, 0.999, hard=("high",))})
def neggrad_plus(task: UnlearningTask, *, epochs: int = 5, lr: float = 0.01, batch_size: int = 128,
                 forget_batch_size: int = 64, beta: float = 0.95, momentum: float = 0.9,
                 weight_decay: float = 5e-4) -> nn.Module:
    """β·CE on retain batches minus (1−β)·CE on paired forget batches."""
    model = task.model

    def loss_fn(m: nn.Module, pair) -> torch.Tensor:
        (xr, yr), (xf, yf) = pair
        return beta * F.cross_entropy(m(xr), yr) - (1 - beta) * F.cross_entropy(m(xf), yf)

    def stream(_epoch: int):
        return paired(task.retain_loader(batch_size, augment=True),
                      lambda: task.forget_loader(forget_batch_size, augment=True))

    return fit(model, sgd(model, lr, momentum, weight_decay), epochs, stream, loss_fn, progress=task.progress)
