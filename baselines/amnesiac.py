"""Amnesiac unlearning, the relabelling variant (Graves, Nagisetty and Ganesh, AAAI 2021).

The paper has two methods. (i) "Amnesiac unlearning" stores, while the original is trained, the parameter
update of every batch that contained data to be deleted, and subtracts those updates at deletion time. It needs
hooks in the original's training run and one stored update per such batch; the harness trains its originals
once, shared by every method, and a method receives only the finished weights, so variant (i) is not available
here. (ii) "Unlearning" by relabelling: every forget sample gets a random *incorrect* label, the relabelled
forget set is mixed with the retain set, and the model is fine-tuned briefly. That is what the unlearning
benchmarks that report "Amnesiac" (the bad-teacher and SSD code bases) run, and it is what this module does.

Per epoch: the forget labels are redrawn uniformly from the C−1 classes other than the true one (in a class
scenario that is every class except the forgotten one), concatenated with the retain set and shuffled; one pass
of Adam on CE. It is :mod:`baselines.random_label` with ``order="mixed"`` and Adam instead of SGD.
Defaults: the bad-teacher and SSD repositories (Adam lr 1e-4, 3 epochs, batch 128).
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.random_label import relabel_epochs
from harness import IntRange, LogUniform, UnlearningTask, register_method


@register_method(
    "amnesiac", kind="baseline", needs_retain=True,
    source="Graves et al., AAAI 2021 (Amnesiac ML), relabelling variant only (stored per-batch updates are not "
           "available); defaults from the bad-teacher / SSD code bases (Adam lr 1e-4, 3 ep, batch 128)",
    hparam_sources={"epochs": "bad-teacher / SSD repositories", "lr": "bad-teacher / SSD repositories (Adam)",
                    "batch_size": "bad-teacher / SSD repositories"},
    # Adam: the lower lr range, as bad-teacher's
    search_space={"lr": LogUniform(1e-6, 0.1), "epochs": IntRange(1, 20, hard=("low",))})
def amnesiac(task: UnlearningTask, *, epochs: int = 3, lr: float = 1e-4, batch_size: int = 128) -> nn.Module:
    """Fine-tune on the retain set mixed with the forget set under random incorrect labels (Adam)."""
    model = task.model
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return relabel_epochs(task, model, optimizer, epochs, batch_size, exclude_true=True, order="mixed")
