"""AMUN (Ebrahimpour-Boroojeny et al., ICML 2025): fine-tune on the forget samples' nearest adversarial examples.

Each forget sample x gets its closest-found misclassified neighbour x_adv, labelled with the (wrong) class the
original model predicts there (:mod:`methods.adversarial`). Fine-tuning on these examples lowers the model's
confidence on D_F locally, without the catastrophic forgetting that random relabelling causes
(docs/seed_methods.md).

Variants (registered from one definition with :func:`harness.protocol.methods.register_variant`):
  * ``amun``          D_R ∪ D_F ∪ D_A (the paper's "with D_R" setting);
  * ``amun-noretain`` D_F ∪ D_A (no access to D_R);
  * ``amun-advonly``  D_R ∪ D_A (the paper's variant for very large forget sets);
  * ``amun-salun``    AMUN with SalUn's weight-saliency mask on the gradients.

Real samples get the suite's augmentation, adversarial ones none (as in the authors' code). The adversarial set
is computed once per (original, forget set, attack settings) and shared by all variants via ``task.cached``.

Defaults and their provenance: lr 0.01, StepLR step 1 epoch (γ 0.1), 10 epochs, batch 128, SGD momentum 0.9,
weight decay 5e-4, PGD-50 with ε_init 0.04 — the authors' CIFAR-10/ResNet-18 10%-forget setting (README command
and paper §5). ``max_doublings`` (a cap so the attack terminates) and ``mask_ratio`` 0.5 (SalUn's default) are
ours / SalUn's. Suites override these per dataset in ``<suite>.hparams.toml``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import torch
from torch import nn

from harness import Choice, LogUniform, UnlearningTask, register_variant
from harness.api.training import Batch, augment_batch, cross_entropy_loss, make_scheduler, optimize, sgd
from methods.adversarial import ATTACK_VERSION, adversarial_set

log = logging.getLogger(__name__)

SOURCE = ("Ebrahimpour-Boroojeny et al., ICML 2025 (AMUN), paper + official code; defaults = authors' CIFAR-10 "
          "ResNet-18 setting (lr 0.01, StepLR 1, 10 ep, PGD-50, eps_init 0.04)")
HPARAM_SOURCES = {
    "lr": "authors (CIFAR-10, 10% forget, with D_R)", "lr_step": "authors (CIFAR-10, 10% forget, with D_R)",
    "epochs": "authors", "batch_size": "authors (CIFAR-10)", "momentum": "authors", "weight_decay": "authors",
    "eps_init": "authors (CIFAR-10 ResNet-18)", "attack_steps": "authors (CIFAR-10)",
    "restart_per_eps": "authors' code (warm start)", "max_doublings": "ours (termination cap)",
}
# The authors' search (docs/seed_methods.md): lr over a log grid spanning 1e-5..1e-1 and the StepLR step in {1, 5, 10}
# epochs. Our lr range reaches 0.5 because on small suites the best lr sat at their grid's top (0.1).
SEARCH_SPACE = {"lr": LogUniform(1e-5, 0.5), "lr_step": Choice(1, 5, 10)}


def build_adversarial(task: UnlearningTask, eps_init: float, attack_steps: int, max_doublings: int,
                      restart_per_eps: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """D_A for the task's forget set on the ORIGINAL model (call before any weight changes), via the cache."""
    params = {"eps_init": float(eps_init), "steps": int(attack_steps), "max_doublings": int(max_doublings),
              "restart_per_eps": bool(restart_per_eps), "version": ATTACK_VERSION}

    def compute() -> dict[str, torch.Tensor]:
        x_adv, y_adv, eps, dist = adversarial_set(task.model, task.forget.x, task.forget.y, eps_init=eps_init,
                                                  steps=attack_steps, max_doublings=max_doublings,
                                                  restart_per_eps=restart_per_eps)
        return {"x_adv": x_adv, "y_adv": y_adv, "eps": eps, "dist": dist}

    out = task.cached("amun-adversarial", params, compute)
    return out["x_adv"], out["y_adv"], out["eps"], out["dist"]  # type: ignore[index]


def mixed_batches(real_x: torch.Tensor, real_y: torch.Tensor, adv_x: torch.Tensor, adv_y: torch.Tensor,
                  batch_size: int, generator: torch.Generator, augment: str) -> Iterator[Batch]:
    """Uniformly shuffled mini-batches over real ∪ adversarial samples; only the real ones are augmented."""
    x = torch.cat([real_x, adv_x])
    y = torch.cat([real_y, adv_y])
    is_real = torch.cat([torch.ones(len(real_y), dtype=torch.bool), torch.zeros(len(adv_y), dtype=torch.bool)])
    order = torch.randperm(len(y), generator=generator)
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        real = is_real[idx].to(x.device)
        xb = x[idx.to(x.device)]
        if augment != "none" and bool(real.any()):
            xb = xb.clone()
            xb[real] = augment_batch(xb[real], augment, generator)
        yield xb, y[idx.to(y.device)]


def _train(model: nn.Module, task: UnlearningTask, make_stream: Callable[[], Iterator[Batch]], steps_per_epoch: int,
           *, epochs: int, lr: float, lr_step: int, momentum: float, weight_decay: float,
           grad_hook: Callable[[nn.Module], None] | None = None,
           step_hook_factory: Callable[[torch.optim.Optimizer], Callable[[nn.Module, int], None]] | None = None
           ) -> nn.Module:
    """SGD + StepLR(``lr_step`` epochs, γ 0.1) for ``epochs`` passes of :func:`harness.training.loop.optimize`."""
    optimizer = sgd(model, lr, momentum, weight_decay)
    scheduler = make_scheduler(optimizer, "step", epochs, steps_per_epoch, step_size=lr_step, gamma=0.1)
    step_hook = step_hook_factory(optimizer) if step_hook_factory is not None else None
    step = 0
    for epoch in range(epochs):
        step = optimize(model, optimizer, make_stream(), cross_entropy_loss, scheduler, grad_hook, step_hook, step)
        task.progress(epoch + 1, epochs)
    model.eval()
    return model


def run_amun(task: UnlearningTask, *, use_retain: bool, use_forget: bool, mask_ratio: float | None = None,
             exact_freeze: bool = False, epochs: int, lr: float, lr_step: int, batch_size: int, momentum: float,
             weight_decay: float, eps_init: float, attack_steps: int, max_doublings: int,
             restart_per_eps: bool) -> nn.Module:
    """Shared body of the AMUN variants: build D_A on θ_o, then fine-tune on the chosen union."""
    model = task.model
    x_adv, y_adv, eps, _ = build_adversarial(task, eps_init, attack_steps, max_doublings, restart_per_eps)
    found = torch.isfinite(eps)
    if not bool(found.all()):
        log.warning("AMUN: %d of %d forget samples not flipped within %d doublings; left out of D_A",
                    int((~found).sum()), len(found), max_doublings)
    x_adv, y_adv = x_adv[found].to(task.device), y_adv[found].to(task.device)

    grad_hook = step_hook_factory = None
    if mask_ratio is not None:
        from harness.api.blocks import freeze_unmasked, mask_gradients, saliency_mask

        # Mask on θ_o from the clean forget set (as SalUn does), before any update.
        mask = saliency_mask(model, task.forget_loader(batch_size, shuffle=False), mask_ratio)
        grad_hook = mask_gradients(mask)
        if exact_freeze:
            step_hook_factory = lambda opt: freeze_unmasked(model, mask, opt)

    parts_x, parts_y = [], []
    if use_retain:
        parts_x.append(task.retain.x)  # type: ignore[union-attr]
        parts_y.append(task.retain.y)  # type: ignore[union-attr]
    if use_forget:
        parts_x.append(task.forget.x)
        parts_y.append(task.forget.y)
    real_x = torch.cat(parts_x) if parts_x else x_adv[:0]
    real_y = torch.cat(parts_y) if parts_y else y_adv[:0]
    total = len(real_y) + len(y_adv)
    if total == 0:
        return model
    steps_per_epoch = -(-total // batch_size)

    def stream() -> Iterator[Batch]:
        return mixed_batches(real_x, real_y, x_adv, y_adv, batch_size, task.generator, task.augment)

    return _train(model, task, stream, steps_per_epoch, epochs=epochs, lr=lr, lr_step=lr_step, momentum=momentum,
                  weight_decay=weight_decay, grad_hook=grad_hook, step_hook_factory=step_hook_factory)


# The four variants differ only in which sets they fine-tune on (and SalUn's mask): one definition, run_amun.
AMUN_HPARAMS = {"epochs": 10, "lr": 0.01, "lr_step": 1, "batch_size": 128, "momentum": 0.9, "weight_decay": 5e-4,
                "eps_init": 0.04, "attack_steps": 50, "max_doublings": 12, "restart_per_eps": False}
VARIANTS = {
    "amun": ({"use_retain": True, "use_forget": True}, True,
             "AMUN with D_R: fine-tune on D_R ∪ D_F ∪ D_A (adversarial examples labelled with the model's prediction)."),
    "amun-noretain": ({"use_retain": False, "use_forget": True}, False,
                      "AMUN without D_R: fine-tune on D_F ∪ D_A only."),
    "amun-advonly": ({"use_retain": True, "use_forget": False}, True,
                     ("AMUN for large forget sets: fine-tune on D_R ∪ D_A (D_F itself left out; paper §4, code "
                      "'advonly').")),
}
for _name, (_fixed, _retain, _summary) in VARIANTS.items():
    register_variant(_name, run_amun, fixed=_fixed, hparams=AMUN_HPARAMS, summary=_summary, kind="seed",
                     scenarios=("random",), needs_retain=_retain, source=SOURCE, hparam_sources=HPARAM_SOURCES,
                     search_space=SEARCH_SPACE)

# As in the authors' code, SGD's weight decay and momentum still move masked weights (exact_freeze=True keeps
# them exactly fixed instead).
register_variant("amun-salun", run_amun, fixed={"use_retain": True, "use_forget": True},
                 hparams={**AMUN_HPARAMS, "mask_ratio": 0.5, "exact_freeze": False},
                 summary="AMUN_SalUn: AMUN with D_R whose gradients are masked to the top-mask_ratio salient weights.",
                 kind="seed", scenarios=("random",), needs_retain=True,
                 source=SOURCE + "; saliency mask from SalUn (Fan et al. 2024), ratio 0.5",
                 hparam_sources={**HPARAM_SOURCES, "mask_ratio": "SalUn default",
                                 "exact_freeze": "ours (False reproduces the authors' decay-on-masked quirk)"},
                 search_space=SEARCH_SPACE)
