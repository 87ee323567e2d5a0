"""ℓ1-sparse: fine-tune on the retain set with an ℓ1 penalty on all weights (Jia et al., NeurIPS 2023).

Loss per retain batch: CE + γ_t·‖θ‖₁ (all trainable parameters, recomputed every step). ``decay="linear"``
(default, Unlearn-Sparse): γ_t = γ·(1 − t/E) for epoch t = 0..E−1. ``decay="amun"``: AMUN's compounding update
γ ← γ·(2 − 2t/E) after every epoch, kept as a flag for like-for-like comparisons. γ = 5e-4 follows AMUN (the
paper's value is UNVERIFIED); the penalty scales with the number of weights, so γ is not portable across models.
"""

from __future__ import annotations

from torch import nn

from harness import LogUniform, UnlearningTask, register_method
from harness.api.blocks import l1_norm
from harness.api.training import cross_entropy_loss, optimize, sgd

DECAYS = ("linear", "amun")


def gamma_schedule(gamma: float, epochs: int, decay: str) -> list[float]:
    """γ for each epoch."""
    if decay == "linear":
        return [gamma * (1 - t / epochs) for t in range(epochs)]
    if decay == "amun":
        out, g = [], gamma
        for t in range(epochs):
            out.append(g)
            g *= 2 - 2 * (t + 1) / epochs
        return out
    raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")


@register_method(
    "l1-sparse", kind="baseline", needs_retain=True,
    source="Jia et al. 2023 (model sparsity for MU); defaults from the Unlearn-Sparse README (10 ep, lr 0.01) "
           "and AMUN (gamma 5e-4)",
    hparam_sources={"epochs": "Unlearn-Sparse README", "lr": "Unlearn-Sparse README", "gamma": "AMUN code",
                    "decay": "Unlearn-Sparse (linear)", "momentum": "SalUn harness", "weight_decay": "SalUn harness",
                    "batch_size": "harness convention (SalUn uses 256)"},
    search_space={"lr": LogUniform(1e-5, 0.5), "gamma": LogUniform(1e-8, 1e-2)})
def l1_sparse(task: UnlearningTask, *, epochs: int = 10, lr: float = 0.01, batch_size: int = 128,
              momentum: float = 0.9, weight_decay: float = 5e-4, gamma: float = 5e-4,
              decay: str = "linear") -> nn.Module:
    """Retain-set fine-tuning with a decaying ℓ1 penalty on the weights."""
    model = task.model
    optimizer = sgd(model, lr, momentum, weight_decay)
    step = 0
    for epoch, g in enumerate(gamma_schedule(gamma, epochs, decay)):
        def loss_fn(m: nn.Module, batch, g: float = g):
            return cross_entropy_loss(m, batch) + g * l1_norm(m)

        step = optimize(model, optimizer, task.retain_loader(batch_size, augment=True), loss_fn, start_step=step)
        task.progress(epoch + 1, epochs)
    return model.eval()
