"""An example unlearning method, loaded with ``unlearn-bench run --plugin examples/my_method.py``.

"Retain fine-tuning with a gentle push": each step fine-tunes on a retain batch and subtracts a small
multiple of the cross-entropy on a forget batch (forget batches are cycled), so the model keeps its retain
accuracy while its confidence on the forget set drops. ``forget_weight`` is kept tiny because the forget
term is unbounded (gradient ascent); the harness turns NaN weights into an ``invalid`` row.

Copy this file anywhere, rename the method, and change the loss: the harness only needs a function
``fn(task, *, hyper=default, ...) -> torch.nn.Module`` decorated with ``@register_method``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness import LogUniform, UnlearningTask, register_method
from harness.api.blocks import paired
from harness.api.training import fit, sgd


@register_method("my-method", needs_retain=True, scenarios=("random", "class"),
                 source="examples/my_method.py: retain fine-tuning plus a small forget-ascent term (example)",
                 # what `unlearn-bench tune` may change (docs/tuning.md); the other hyper-parameters stay fixed
                 search_space={"lr": LogUniform(1e-5, 0.5), "forget_weight": LogUniform(1e-3, 0.5)})
def my_method(task: UnlearningTask, *, epochs: int = 5, lr: float = 0.01, forget_weight: float = 0.05,
              batch_size: int = 128) -> nn.Module:
    """Fine-tune on the retain set while ascending the forget loss with a small weight."""
    model = task.model

    def loss_fn(m: nn.Module, pair) -> torch.Tensor:
        (xr, yr), (xf, yf) = pair
        return F.cross_entropy(m(xr), yr) - forget_weight * F.cross_entropy(m(xf), yf)

    def stream(_epoch: int):
        return paired(task.retain_loader(batch_size, augment=True), lambda: task.forget_loader(batch_size))

    return fit(model, sgd(model, lr), epochs, stream, loss_fn, progress=task.progress)
