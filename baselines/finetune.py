"""FT: fine-tune the original on the retain set only, relying on catastrophic forgetting (Warnecke et al. 2021)."""

from __future__ import annotations

from torch import nn

from harness import IntRange, LogUniform, UnlearningTask, register_method
from harness.api.training import cross_entropy_loss, fit, sgd


@register_method("finetune", kind="baseline", needs_retain=True,
                 source="Warnecke et al. 2021; defaults from the SalUn/Unlearn-Sparse harness (10 ep, lr 0.01)",
                 search_space={"lr": LogUniform(1e-5, 0.5), "epochs": IntRange(1, 20, hard=("low",))})
def finetune(task: UnlearningTask, *, epochs: int = 10, lr: float = 0.01, batch_size: int = 128,
             momentum: float = 0.9, weight_decay: float = 5e-4) -> nn.Module:
    """Cross-entropy fine-tuning on the retain set."""
    model = task.model
    optimizer = sgd(model, lr, momentum, weight_decay)
    return fit(model, optimizer, epochs, lambda _: task.retain_loader(batch_size, augment=True), cross_entropy_loss,
               progress=task.progress)
