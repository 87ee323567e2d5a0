"""RL: random labelling of the forget set followed by fine-tuning on the retain set (Golatkar et al. 2020).

Choices (docs/baselines.md):
- Labels are drawn uniformly from the C−1 classes other than the true one (``exclude_true=True``, as in AMUN
  and the "amnesiac" baselines); ``exclude_true=False`` gives the SalUn CIFAR-10 behaviour (any of C classes).
  In class scenarios excluding the true label means the forgotten class never receives mass.
- ``order="sequential"`` (default, SalUn CIFAR-10 path): each epoch one pass over D_f with fresh random labels
  per batch, then one pass over D_r. ``order="mixed"`` (AMUN): relabelled D_f and D_r in one shuffled pass,
  labels redrawn every epoch.
SalUn reuses :func:`relabel_epochs` with a gradient mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from harness import IntRange, LogUniform, UnlearningTask, register_method
from harness.api.blocks import chained, random_wrong_labels, relabelled
from harness.api.training import Batch, batches, cross_entropy_loss, optimize, sgd

ORDERS = ("sequential", "mixed")


def relabelled_epoch(task: UnlearningTask, batch_size: int, exclude_true: bool, order: str) -> Iterator[Batch]:
    """One epoch of RL batches (see module docstring for the two orders)."""
    gen = task.generator

    def relabel(_x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return random_wrong_labels(y, task.num_classes, gen, exclude_true)

    if order == "sequential":
        return chained(relabelled(task.forget_loader(batch_size, augment=True), relabel),
                       task.retain_loader(batch_size, augment=True))
    if order == "mixed":
        x = torch.cat([task.forget.x, task.retain.x])
        y = torch.cat([relabel(task.forget.x, task.forget.y), task.retain.y])
        return batches(x, y, batch_size, gen, shuffle=True, augment=task.augment)
    raise ValueError(f"order must be one of {ORDERS}, got {order!r}")


def relabel_epochs(task: UnlearningTask, model: nn.Module, optimizer: torch.optim.Optimizer, epochs: int,
                   batch_size: int, exclude_true: bool, order: str,
                   grad_hook: Callable[[nn.Module], None] | None = None,
                   step_hook: Callable[[nn.Module, int], None] | None = None) -> nn.Module:
    """``epochs`` RL epochs through :func:`harness.training.loop.optimize` (optional gradient mask / freeze hooks)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    step = 0
    for epoch in range(epochs):
        step = optimize(model, optimizer, relabelled_epoch(task, batch_size, exclude_true, order),
                        cross_entropy_loss, grad_hook=grad_hook, step_hook=step_hook, start_step=step)
        task.progress(epoch + 1, epochs)
    return model.eval()


@register_method(
    "random-label", kind="baseline", needs_retain=True,
    source="Golatkar et al. 2020 (RL) as run in the SalUn harness; defaults: SalUn harness (10 ep, lr 0.01)",
    hparam_sources={"epochs": "SalUn harness", "lr": "SalUn harness default unlearn_lr (paper value UNVERIFIED)",
                    "exclude_true": "AMUN code (choice; SalUn CIFAR-10 path includes the true label)",
                    "order": "SalUn CIFAR-10 path (forget pass, then retain pass)",
                    "momentum": "SalUn harness", "weight_decay": "SalUn harness",
                    "batch_size": "harness convention (SalUn uses 256)"},
    search_space={"lr": LogUniform(1e-5, 0.5), "epochs": IntRange(1, 20, hard=("low",))})
def random_label(task: UnlearningTask, *, epochs: int = 10, lr: float = 0.01, batch_size: int = 128,
                 momentum: float = 0.9, weight_decay: float = 5e-4, exclude_true: bool = True,
                 order: str = "sequential") -> nn.Module:
    """Fine-tune on the forget set with random wrong labels and on the retain set with true labels."""
    model = task.model
    return relabel_epochs(task, model, sgd(model, lr, momentum, weight_decay), epochs, batch_size, exclude_true, order)
