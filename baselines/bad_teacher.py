"""Bad Teacher: distil from an incompetent (random) teacher on the forget set and from the original on a
retain subset (Chundawat et al., AAAI 2023).

Training set = D_f (tag 1) ∪ a random ``retain_fraction`` of D_r (tag 0), shuffled. Target per sample:
p_T(random teacher) for tag 1, p_T(original) for tag 0; loss = batch-mean KL(target ‖ p_T(student)). The
reference uses PyTorch's default KL reduction (mean over batch × classes, i.e. /C); with Adam that rescaling
of the loss leaves the update unchanged, so batch-mean keeps the same lr. The student is set to train mode
explicitly. Teacher outputs are computed once (eval mode, no augmentation). Defaults: official repo (Adam 1e-4,
1 epoch, batch 256, T 1, retain fraction 0.3).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness import IntRange, LogUniform, UnlearningTask, register_method
from harness.api.training import Batch, batches, fit, predict_logits


@register_method(
    "bad-teacher", kind="baseline", needs_retain=True,
    source="Chundawat et al. 2023 (incompetent teacher); defaults from the official repo",
    hparam_sources={k: "official bad-teaching repo" for k in
                    ("epochs", "lr", "batch_size", "temperature", "retain_fraction")},
    # Adam: a lower lr range than the SGD methods'
    search_space={"lr": LogUniform(1e-6, 0.1), "epochs": IntRange(1, 10, hard=("low",))})
def bad_teacher(task: UnlearningTask, *, epochs: int = 1, lr: float = 1e-4, batch_size: int = 256,
                temperature: float = 1.0, retain_fraction: float = 0.3) -> nn.Module:
    """KL distillation from a random teacher on the forget set and from the original on a retain subset."""
    student = task.model
    n_keep = round(retain_fraction * len(task.retain))
    keep = torch.randperm(len(task.retain), generator=task.generator)[:n_keep].to(task.retain.y.device)
    x = torch.cat([task.forget.x, task.retain.x[keep]])
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=task.generator))
    bad = task.fresh_model(seed)
    n_f = len(task.forget)
    device = task.device
    targets = torch.cat([predict_logits(bad, x[:n_f], device=device), predict_logits(student, x[n_f:], device=device)])
    targets = F.softmax(targets / temperature, dim=1).to(device)
    index = torch.arange(len(x), device=x.device)

    def loss_fn(m: nn.Module, batch: Batch) -> torch.Tensor:
        xb, ib = batch
        log_p = F.log_softmax(m(xb) / temperature, dim=1)
        return F.kl_div(log_p, targets[ib], reduction="batchmean")

    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    return fit(student, optimizer, epochs, lambda _: batches(x, index, batch_size, task.generator), loss_fn,
               progress=task.progress)
