"""SalUn: random labelling restricted to the weights most salient for the forget set (Fan et al., ICLR 2024).

1. Mask (once, on the original, eval mode): |Σ_batches ∇θ CE| over one pass of D_f, ranked globally over all
   parameters; the top ``mask_ratio`` fraction is updated, the rest frozen (``harness.api.blocks.saliency_mask``).
2. RL (:mod:`baselines.random_label`, same label and order choices) with gradients multiplied by the mask.

Freezing choice (docs/baselines.md): by default masked-out weights are frozen *exactly* — after every step
they are restored and their momentum is zeroed (the Feb 2026 "Fix weight decay" semantics of the SalUn repo).
``legacy_mask=True`` only masks gradients, so weight decay and momentum still move frozen weights, which is how
the paper's numbers were produced.
"""

from __future__ import annotations

from torch import nn

from baselines.random_label import relabel_epochs
from harness import LogUniform, Uniform, UnlearningTask, register_method
from harness.api.blocks import freeze_unmasked, mask_gradients, saliency_mask
from harness.api.training import sgd


@register_method(
    "salun", kind="baseline", needs_retain=True,
    source="Fan et al. 2024 (SalUn), OPTML-Group/Unlearn-Saliency README (CIFAR-10 10% random: 10 ep, lr 0.013, "
           "ratio 0.5)",
    hparam_sources={"epochs": "SalUn README", "lr": "SalUn README (10% random CIFAR-10)",
                    "mask_ratio": "SalUn README", "legacy_mask": "choice: exact freeze (repo fix, Feb 2026)",
                    "exclude_true": "as random-label (choice)", "order": "SalUn CIFAR-10 path",
                    "momentum": "SalUn harness", "weight_decay": "SalUn harness",
                    "batch_size": "harness convention (SalUn uses 256)"},
    search_space={"lr": LogUniform(1e-5, 0.5), "mask_ratio": Uniform(0.1, 1.0, hard=("high",))})
def salun(task: UnlearningTask, *, epochs: int = 10, lr: float = 0.013, batch_size: int = 128,
          momentum: float = 0.9, weight_decay: float = 5e-4, mask_ratio: float = 0.5, legacy_mask: bool = False,
          exclude_true: bool = True, order: str = "sequential") -> nn.Module:
    """Random labelling with a weight-saliency gradient mask (exact freezing of the other weights)."""
    model = task.model
    # one pass over D_f with the train augmentation, as in the SalUn mask script
    mask = saliency_mask(model, task.forget_loader(batch_size, shuffle=False, augment=True), mask_ratio)
    optimizer = sgd(model, lr, momentum, weight_decay)
    step_hook = None if legacy_mask else freeze_unmasked(model, mask, optimizer)
    return relabel_epochs(task, model, optimizer, epochs, batch_size, exclude_true, order,
                          grad_hook=mask_gradients(mask), step_hook=step_hook)
