"""SCRUB: teacher–student unlearning with max steps on the forget set and min steps on the retain set
(Kurmanji et al., NeurIPS 2023).

Teacher = frozen original (eval mode); student starts at the original (train mode); one SGD optimizer shared
by both step types. Epoch e (1-based): lr = lr0 · decay^(#milestones < e); if e ≤ ``msteps`` a max pass over
D_f minimising −KL_T(teacher ‖ student); then a min pass over D_r minimising γ·CE + α·KL_T. KL_T is the
T²-scaled batch-mean KL (``harness.api.blocks.kd_loss``). Convention: ``alpha`` weights the KL term and
``gamma`` the CE term (official code). Defaults: the official large-scale CIFAR-10 notebook (SGD lr 5e-4,
3 epochs, msteps 2, T 4, γ 0.99, α 0.001, forget batch 512, retain batch 256). No rewinding (SCRUB+R) and no
clipping of the unbounded max step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness import Choice, LogUniform, UnlearningTask, register_method
from harness.api.blocks import kd_loss
from harness.api.training import Batch, frozen_copy, optimize, sgd


def _milestones(text: str) -> list[int]:
    return [int(t) for t in text.replace(" ", "").split(",") if t]


@register_method(
    "scrub", kind="baseline", needs_retain=True,
    source="Kurmanji et al. 2023; defaults from the official SCRUB large-scale CIFAR-10 notebook",
    hparam_sources={k: "SCRUB large-scale notebook" for k in
                    ("epochs", "msteps", "lr", "temperature", "gamma", "alpha", "momentum", "weight_decay",
                     "forget_batch_size", "batch_size", "lr_milestones", "lr_decay")},
    # msteps: every value up to the 3 epochs (a complete set, so never "at a bound")
    search_space={"lr": LogUniform(1e-5, 0.5), "msteps": Choice(1, 2, 3)})
def scrub(task: UnlearningTask, *, epochs: int = 3, msteps: int = 2, lr: float = 5e-4, temperature: float = 4.0,
          gamma: float = 0.99, alpha: float = 0.001, momentum: float = 0.9, weight_decay: float = 5e-4,
          batch_size: int = 256, forget_batch_size: int = 512, lr_milestones: str = "3,5,9",
          lr_decay: float = 0.1) -> nn.Module:
    """Alternate max-KL passes on the forget set and CE+KL passes on the retain set against the original."""
    student = task.model
    teacher = frozen_copy(student)
    optimizer = sgd(student, lr, momentum, weight_decay)
    milestones = _milestones(lr_milestones)

    def max_loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        x, _ = batch
        with torch.no_grad():
            t = teacher(x)
        return -kd_loss(m(x), t, temperature)

    def min_loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        with torch.no_grad():
            t = teacher(x)
        out = m(x)
        return gamma * F.cross_entropy(out, y) + alpha * kd_loss(out, t, temperature)

    step = 0
    for epoch in range(1, epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_decay ** sum(epoch > m for m in milestones)
        if epoch <= msteps:
            step = optimize(student, optimizer, task.forget_loader(forget_batch_size, augment=True), max_loss,
                            start_step=step)
        step = optimize(student, optimizer, task.retain_loader(batch_size, augment=True), min_loss, start_step=step)
        task.progress(epoch, epochs)
    return student.eval()
