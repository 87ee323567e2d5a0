"""BS (Boundary Shrink): relabel each forget sample with its nearest wrong class found by FGSM on the original,
then fine-tune on those labels (Chen et al., CVPR 2023). Forget data only (``needs_retain=False``).

Per forget batch: x_adv = round₂₅₅(clip₀₁(x + ε·sign ∇ₓ CE(f0(x), y))), y_nbr = argmax f0(x_adv); step on
CE(f_θ(x), y_nbr) with the clean x. f0 is a frozen eval-mode copy of the original, fixed for all epochs (SalUn);
``refresh_attack_model=True`` re-copies the current model at the start of every epoch (AMUN). ε = 0.1 acts on
[0, 1] pixels (no normalisation outside the model).

When FGSM does not flip the prediction (y_nbr = y), ``on_no_flip`` decides (our choice, docs/baselines.md):
``"keep"`` (default, the original code: the step reinforces the true label), ``"drop"`` (those samples get no
loss), ``"second"`` (use f0's most likely class other than y on x_adv). Defaults: original code (10 epochs,
SGD lr 1e-5, momentum 0.9, no weight decay).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness import LogUniform, UnlearningTask, register_method
from harness.api.training import Batch, frozen_copy, optimize, sgd

NO_FLIP = ("keep", "drop", "second")


def fgsm_neighbour_labels(attack_model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                          on_no_flip: str = "keep") -> torch.Tensor:
    """Labels of the FGSM-perturbed inputs under ``attack_model``; −1 marks samples to drop."""
    x_req = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(attack_model(x_req), y), x_req)
    x_adv = torch.round((x + eps * grad.sign()).clamp(0, 1) * 255) / 255
    with torch.no_grad():
        logits = attack_model(x_adv)
    labels = logits.argmax(1)
    same = labels == y
    if on_no_flip == "drop":
        labels = torch.where(same, torch.full_like(labels, -1), labels)
    elif on_no_flip == "second":
        other = logits.scatter(1, y[:, None], float("-inf")).argmax(1)
        labels = torch.where(same, other, labels)
    elif on_no_flip != "keep":
        raise ValueError(f"on_no_flip must be one of {NO_FLIP}, got {on_no_flip!r}")
    return labels


@register_method(
    "boundary-shrink", kind="baseline", needs_retain=False,
    source="Chen et al. 2023 (Boundary Unlearning); defaults from the original code (10 ep, SGD lr 1e-5, mom 0.9)",
    hparam_sources={"epochs": "original code", "lr": "original code", "momentum": "original code",
                    "weight_decay": "original code (none)", "eps": "paper (hard-coded 0.1)",
                    "on_no_flip": "original code (keep)", "refresh_attack_model": "SalUn (fixed f0)",
                    "batch_size": "harness convention"},
    search_space={"lr": LogUniform(1e-6, 0.1), "eps": LogUniform(1e-3, 1.0)})
def boundary_shrink(task: UnlearningTask, *, epochs: int = 10, lr: float = 1e-5, batch_size: int = 128,
                    momentum: float = 0.9, weight_decay: float = 0.0, eps: float = 0.1, on_no_flip: str = "keep",
                    refresh_attack_model: bool = False) -> nn.Module:
    """Fine-tune the forget set towards the nearest wrong class found by a one-step attack on the original."""
    if on_no_flip not in NO_FLIP:
        raise ValueError(f"on_no_flip must be one of {NO_FLIP}, got {on_no_flip!r}")
    model = task.model
    optimizer = sgd(model, lr, momentum, weight_decay)
    attack = {"model": frozen_copy(model)}

    def loss_fn(m: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        target = fgsm_neighbour_labels(attack["model"], x, y, eps, on_no_flip)
        keep = target >= 0
        if not keep.any():  # every sample dropped: a zero loss that still has a graph
            return m(x[:1]).sum() * 0.0
        return F.cross_entropy(m(x[keep]), target[keep])

    step = 0
    for epoch in range(epochs):
        if refresh_attack_model and epoch > 0:
            attack["model"] = frozen_copy(model)
        step = optimize(model, optimizer, task.forget_loader(batch_size, augment=True), loss_fn, start_step=step)
        task.progress(epoch + 1, epochs)
    return model.eval()
