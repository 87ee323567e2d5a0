"""TRW / TREW — Tilted ReWeighting for class unlearning (arXiv 2506.20893; ICML 2026). RECONSTRUCTED.

The paper's full text and code were not accessible. This module implements our reconstruction (docs/seed_methods.md)
from the abstracts and the public reviews; every constant is a hyper-parameter and nothing here should be read
as the authors' exact setting. Idea: a model retrained without class u sends u's inputs to semantically nearby
classes, so instead of pushing forget-class inputs towards a uniform or random label, fine-tune them towards the
original model's own distribution with u removed, tilted towards the classes most similar to u.

Reconstruction choices (all configurable):
  1. class representations ``similarity``: "weights" (default) = rows of the final linear layer of θ_o;
     "logits" = mean logit vector of θ_o over each class's training samples;
  2. PCA of the class representations (centred over classes) to ``pca_dim`` dimensions (capped at C−1);
  3. s_k = cos(PCA(μ_u), PCA(μ_k)) for k ≠ u, sharpened w = softmax(s / ``temperature``) over k ≠ u;
  4. base q₀(·|x) = p_o(·|x) with class u removed and renormalised (the β = 0 case);
  5. tilt q_β(k|x) ∝ q₀(k|x)·exp(β·w_k), q_β(u|x) = 0, ``beta`` = 10 (the one number the sources state);
  6. loss: KL(q_β ‖ p_θ) on forget-class inputs + CE on retain inputs, equal per-sample weights in uniformly
     shuffled mini-batches; targets computed once from θ_o on un-augmented inputs and kept fixed;
  7. optimiser: the AMUN protocol (SGD m 0.9, wd 5e-4, StepLR γ 0.1, 10 epochs) — UNVERIFIED for TRW.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness import LogUniform, UnlearningTask, register_method
from harness.api.training import batches, fit, make_scheduler, predict_logits, sgd

SOURCE = ("RECONSTRUCTED from the abstracts and ICLR-2026 reviews of arXiv 2506.20893 (TRW/TREW); full text and "
          "code not accessible — internals and defaults are ours except beta=10 (docs/seed_methods.md)")
HPARAM_SOURCES = {
    "beta": "reviews (beta = 10)", "similarity": "reconstructed", "pca_dim": "reconstructed",
    "temperature": "reconstructed", "lr": "ours (AMUN protocol)", "lr_step": "ours", "epochs": "ours (AMUN protocol)",
    "batch_size": "ours", "momentum": "AMUN protocol", "weight_decay": "AMUN protocol",
}


def class_similarity_weights(reps: torch.Tensor, forget_class: int, pca_dim: int = 32,
                             temperature: float = 0.1) -> torch.Tensor:
    """Sharpened similarity of every class to ``forget_class``: w (C,), w[u] = 0, Σ_{k≠u} w_k = 1.

    ``reps`` holds one representation per class (C, D); they are centred over classes, projected on their
    top ``min(pca_dim, C−1, D)`` principal directions, compared by cosine, then softmax(s / temperature).
    """
    c = reps.shape[0]
    if c < 2:
        raise ValueError("need at least two classes")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    reps = reps.double()
    centred = reps - reps.mean(0, keepdim=True)
    d = max(1, min(int(pca_dim), c - 1, reps.shape[1]))
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    proj = centred @ vh[:d].T
    sims = F.cosine_similarity(proj[forget_class].unsqueeze(0), proj, dim=1)
    others = torch.arange(c) != forget_class
    w = torch.zeros(c, dtype=torch.float64)
    w[others] = torch.softmax(sims[others] / temperature, dim=0)
    return w.float()


def tilted_target(logits: torch.Tensor, forget_class: int, weights: torch.Tensor, beta: float = 10.0) -> torch.Tensor:
    """q_β(k|x) ∝ p_o(k|x)·exp(β·w_k) over k ≠ u, q_β(u|x) = 0 — rows of (N, C) probabilities.

    Computed in log space from the original logits, so it is exact even when p_o(u|x) ≈ 1 (then q₀ is the
    softmax of the other classes' logits). ``beta = 0`` gives q₀, the renormalised original distribution.
    """
    scores = logits.double() + beta * weights.to(logits.device).double().unsqueeze(0)
    scores[:, forget_class] = float("-inf")
    return torch.softmax(scores, dim=1).to(logits.dtype)


def last_linear(model: nn.Module, num_classes: int) -> nn.Linear:
    """The final linear layer producing the logits (the last ``nn.Linear`` with ``num_classes`` outputs)."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not heads:
        raise ValueError("no nn.Linear logit layer found; use similarity='logits'")
    return heads[-1]


def class_representations(task: UnlearningTask, similarity: str) -> torch.Tensor:
    """(C, D) class representations of θ_o: logit-layer weight rows, or mean logits per class."""
    if similarity == "weights":
        return last_linear(task.model, task.num_classes).weight.detach().cpu()
    if similarity == "logits":
        x = torch.cat([task.retain.x, task.forget.x])  # type: ignore[union-attr]
        y = torch.cat([task.retain.y, task.forget.y]).cpu()  # type: ignore[union-attr]
        logits = predict_logits(task.model, x)
        reps = torch.zeros(task.num_classes, logits.shape[1])
        for k in range(task.num_classes):
            if bool((y == k).any()):
                reps[k] = logits[y == k].mean(0)
        return reps
    raise ValueError(f"similarity must be 'weights' or 'logits', got {similarity!r}")


def soft_cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Batch mean of −Σ_k q_k log p_θ(k|x): CE for one-hot rows, KL(q‖p_θ) + const for soft rows."""
    x, q = batch
    return F.cross_entropy(model(x), q)


@register_method("trw", kind="seed", scenarios=("class",), needs_retain=True, source=SOURCE,
                 reconstructed=True,
                 hparam_sources=HPARAM_SOURCES,
                 # the AMUN protocol's lr range, and the tilt strength (the one constant the sources give)
                 search_space={"lr": LogUniform(1e-5, 0.5), "beta": LogUniform(1e-6, 1000.0)})
def trw(task: UnlearningTask, *, beta: float = 10.0, similarity: str = "weights", pca_dim: int = 32,
        temperature: float = 0.1, epochs: int = 10, lr: float = 0.01, lr_step: int = 5, batch_size: int = 128,
        momentum: float = 0.9, weight_decay: float = 5e-4) -> nn.Module:
    """TRW (reconstructed): forget-class inputs → similarity-tilted original distribution; retain → CE."""
    if task.forget_class is None:
        raise ValueError("trw handles class scenarios only")
    u = int(task.forget_class)
    model = task.model
    weights = class_similarity_weights(class_representations(task, similarity), u, pca_dim, temperature)
    q_forget = tilted_target(predict_logits(model, task.forget.x), u, weights, beta).to(task.device)
    q_retain = F.one_hot(task.retain.y, task.num_classes).float()  # type: ignore[union-attr]
    x = torch.cat([task.retain.x, task.forget.x])  # type: ignore[union-attr]
    q = torch.cat([q_retain, q_forget.float()])
    optimizer = sgd(model, lr, momentum, weight_decay)
    steps_per_epoch = -(-len(q) // batch_size)
    scheduler = make_scheduler(optimizer, "step", epochs, steps_per_epoch, step_size=lr_step, gamma=0.1)
    return fit(model, optimizer, epochs,
               lambda _: batches(x, q, batch_size, task.generator, shuffle=True, augment=task.augment),
               soft_cross_entropy, scheduler, progress=task.progress)
