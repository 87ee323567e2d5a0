"""BE (Boundary Expanding): add a shadow class, fine-tune every forget sample into it, then delete it, so the
forget samples end up scattered over the remaining classes (Chen et al., CVPR 2023, the companion of Boundary
Shrink). Forget data only (``needs_retain=False``).

The task's model has C outputs and must come back with C. The extra logit therefore lives *beside* the model,
never in it: the classifier head (the Linear layer whose output is the model's output, found by
:func:`classifier_head`) gets a forward hook that appends one logit, x_in · w_s + b_s, computed from the head's
input by a shadow row (w_s, b_s) kept outside the module tree. Training minimises CE(f_θ⁺(x), C) (target: the
shadow index) over the forget set with every original weight and the shadow row trainable. Afterwards the hook
is removed and the shadow row dropped: the original method's *prune* step, so the returned model is a C-way
classifier with the original's state_dict keys and shapes. (The SalUn harness keeps the shadow neuron and scores
over C + 1 logits, which flatters forget accuracy; that behaviour is not offered: it changes the architecture.)

Shadow-row initialisation (``shadow_init``): ``"default"`` PyTorch's Linear init for one output (the SalUn
harness), ``"xavier"`` Xavier-normal weights and a zero bias (a later port's choice). The optimizer is built
after the head is expanded, as the source requires. Defaults: original code (10 epochs over D_f, SGD lr 1e-5,
momentum 0.9, no weight decay).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from harness import IntRange, LogUniform, UnlearningTask, register_method
from harness.api.training import Batch, optimize

SHADOW_INITS = ("default", "xavier")


def classifier_head(model: nn.Module, x: torch.Tensor) -> nn.Linear:
    """The ``nn.Linear`` whose output tensor is the model's output on ``x`` (the logits layer).

    Found by running the model once with a hook on every Linear, not by position in the module tree, so it
    works for Sequential MLPs, ResNets (``fc``) and ViTs (``head``) alike.
    """
    outputs: dict[int, nn.Linear] = {}

    def record(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        outputs[id(output)] = module  # type: ignore[assignment]

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    handles = [m.register_forward_hook(record) for m in linears]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(x[:2])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    head = outputs.get(id(out))
    if head is None:
        raise ValueError("cannot find the classifier head: the model's output is not the output of an nn.Linear")
    return head


def shadow_row(head: nn.Linear, init: str, generator: torch.Generator) -> tuple[nn.Parameter, nn.Parameter]:
    """A fresh output row (weight 1 x in, bias 1) for ``head``, initialised as ``init`` says."""
    fan_in = head.in_features
    device, dtype = head.weight.device, head.weight.dtype
    if init == "default":  # nn.Linear.reset_parameters: kaiming-uniform(a=sqrt 5) = U(±1/sqrt(fan_in)), bias alike
        bound = 1.0 / math.sqrt(fan_in)
        weight = (torch.rand(1, fan_in, generator=generator) * 2 - 1) * bound
        bias = (torch.rand(1, generator=generator) * 2 - 1) * bound
    elif init == "xavier":
        std = math.sqrt(2.0 / (fan_in + 1))
        weight = torch.randn(1, fan_in, generator=generator) * std
        bias = torch.zeros(1)
    else:
        raise ValueError(f"shadow_init must be one of {SHADOW_INITS}, got {init!r}")
    return (nn.Parameter(weight.to(device=device, dtype=dtype)),
            nn.Parameter(bias.to(device=device, dtype=dtype)))


@register_method(
    "boundary-expanding", kind="baseline", needs_retain=False,
    source="Chen et al., CVPR 2023 (Boundary Unlearning: Boundary Expanding); defaults from the original code "
           "(10 ep over D_f, SGD lr 1e-5, mom 0.9); shadow logit hooked outside the model and pruned after",
    hparam_sources={"epochs": "original code", "lr": "original code", "momentum": "original code",
                    "weight_decay": "original code (none)", "shadow_init": "SalUn harness (PyTorch default init)",
                    "batch_size": "harness convention"},
    # epochs widened from [1, 20]: the first class study put them at 20
    search_space={"lr": LogUniform(1e-6, 0.1), "epochs": IntRange(1, 50, hard=("low",))})
def boundary_expanding(task: UnlearningTask, *, epochs: int = 10, lr: float = 1e-5, batch_size: int = 128,
                       momentum: float = 0.9, weight_decay: float = 0.0, shadow_init: str = "default") -> nn.Module:
    """Push the forget set into an extra shadow class on the classifier head, then prune that class."""
    if shadow_init not in SHADOW_INITS:
        raise ValueError(f"shadow_init must be one of {SHADOW_INITS}, got {shadow_init!r}")
    model = task.model
    head = classifier_head(model, task.forget.x)
    w_s, b_s = shadow_row(head, shadow_init, task.generator)

    def expand(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.cat([output, F.linear(inputs[0], w_s, b_s)], dim=-1)

    shadow = task.num_classes  # the index of the extra logit
    params = [*model.parameters(), w_s, b_s]  # the optimizer is built after the expansion
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def loss_fn(m: nn.Module, batch: Batch) -> torch.Tensor:
        x, _ = batch
        return F.cross_entropy(m(x), torch.full((len(x),), shadow, dtype=torch.long, device=x.device))

    handle = head.register_forward_hook(expand)
    try:
        step = 0
        for epoch in range(epochs):
            step = optimize(model, optimizer, task.forget_loader(batch_size, augment=True), loss_fn, start_step=step)
            task.progress(epoch + 1, epochs)
    finally:
        handle.remove()  # prune: the shadow row goes, the model is C-way again
    return model.eval()
