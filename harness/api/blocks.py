"""Building blocks shared by unlearning methods: saliency masks, relabelling, distillation, batch pairing.

Everything here is stateless or returns a small callable, so baselines and seed methods compose it with the
one training loop in :mod:`harness.training.loop` (``optimize(grad_hook=..., step_hook=...)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from harness.training.loop import Batch

Mask = dict[str, torch.Tensor]
T = TypeVar("T")
U = TypeVar("U")


# --------------------------------------------------------------------------------------------- saliency
def saliency_scores(model: nn.Module, forget_batches: Iterable[Batch]) -> dict[str, torch.Tensor]:
    """|Σ_batches ∇θ CE(f_θ(x), y)| at the current weights (SalUn, Fan et al. 2024; docs/baselines.md).

    Gradients are batch means summed over one pass; the model is put in eval mode (BN uses running
    statistics, as in the SalUn mask script) and restored to its previous mode afterwards.
    """
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    was_training = model.training
    model.eval()
    try:
        for x, y in forget_batches:
            grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(params.values()), allow_unused=True)
            for (name, _), g in zip(params.items(), grads):
                if g is not None:
                    total[name] += g.detach()
    finally:
        model.train(was_training)
    return {name: g.abs() for name, g in total.items()}


def top_fraction_mask(scores: dict[str, torch.Tensor], ratio: float) -> Mask:
    """Boolean mask selecting exactly ``round(ratio · N)`` entries with the largest scores, ranked globally."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must lie in [0, 1], got {ratio}")
    flat = torch.cat([s.flatten() for s in scores.values()]) if scores else torch.empty(0)
    keep = round(ratio * flat.numel())
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if keep > 0:
        # topk gives an exact count even with ties (a threshold would not)
        chosen[torch.topk(flat, keep, sorted=False).indices] = True
    mask, offset = {}, 0
    for name, s in scores.items():
        mask[name] = chosen[offset : offset + s.numel()].view_as(s)
        offset += s.numel()
    return mask


def saliency_mask(model: nn.Module, forget_batches: Iterable[Batch], ratio: float = 0.5) -> Mask:
    """SalUn weight-saliency mask: True for the top ``ratio`` fraction of |forget gradient|, over all params.

    ``ratio`` is the fraction of weights that will be *updated* (not frozen).
    """
    return top_fraction_mask(saliency_scores(model, forget_batches), ratio)


def mask_gradients(mask: Mask) -> Callable[[nn.Module], None]:
    """A ``grad_hook`` for :func:`harness.training.loop.optimize`: zero the gradients of masked-out weights.

    Gradient masking alone does not freeze weights under SGD momentum/weight decay (legacy SalUn behaviour);
    combine with :func:`freeze_unmasked` for exact freezing.
    """

    def hook(model: nn.Module) -> None:
        for name, p in model.named_parameters():
            m = mask.get(name)
            if m is not None and p.grad is not None:
                p.grad.mul_(m.to(p.grad.dtype))

    return hook


def freeze_unmasked(model: nn.Module, mask: Mask,
                    optimizer: torch.optim.Optimizer | None = None) -> Callable[[nn.Module, int], None]:
    """A ``step_hook``: after every step, restore masked-out weights to their current values (snapshot taken
    now) and zero their optimizer state (momentum buffers, Adam moments), so they stay exactly frozen.
    """
    snapshot = {name: p.detach().clone() for name, p in model.named_parameters() if name in mask}

    @torch.no_grad()
    def hook(model: nn.Module, step: int) -> None:
        del step
        for name, p in model.named_parameters():
            m = mask.get(name)
            if m is None:
                continue
            frozen = ~m.to(p.device)
            p[frozen] = snapshot[name][frozen]
            if optimizer is not None:
                for value in optimizer.state.get(p, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape:
                        value[frozen] = 0

    return hook


# --------------------------------------------------------------------------------------------- labels / losses
def random_wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator,
                        exclude_true: bool = True) -> torch.Tensor:
    """Uniform random labels; with ``exclude_true`` drawn from the C−1 classes other than ``y``.

    Drawn with the (CPU) ``generator`` so runs are reproducible; returned on ``y``'s device.
    """
    n = len(y)
    if exclude_true:
        if num_classes < 2:
            raise ValueError("need at least two classes to draw a wrong label")
        shift = torch.randint(1, num_classes, (n,), generator=generator).to(y.device)
        return (y + shift) % num_classes
    return torch.randint(0, num_classes, (n,), generator=generator).to(y.device)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T² · batch-mean KL(p_T(teacher) ‖ p_T(student)) — the SCRUB/Hinton distillation loss."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


def l1_norm(model: nn.Module) -> torch.Tensor:
    """Σ|θ| over all trainable parameters (differentiable)."""
    return sum(p.abs().sum() for p in model.parameters() if p.requires_grad)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- batch streams
def cycled(make_iter: Callable[[], Iterator[T]]) -> Iterator[T]:
    """Endless stream that re-creates the iterator when exhausted (e.g. a fresh shuffled forget pass)."""
    while True:
        empty = True
        for item in make_iter():
            empty = False
            yield item
        if empty:
            return


def paired(primary: Iterable[T], make_secondary: Callable[[], Iterator[U]]) -> Iterator[tuple[T, U]]:
    """Each primary batch with the next secondary batch, cycling the secondary (NegGrad+: retain × forget)."""
    return zip(primary, cycled(make_secondary))


def chained(*streams: Iterable[T]) -> Iterator[T]:
    """Streams one after another (e.g. a forget pass followed by a retain pass in one epoch)."""
    for stream in streams:
        yield from stream


def relabelled(stream: Iterable[Batch], relabel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Iterator[Batch]:
    """Batches with labels replaced by ``relabel(x, y)``."""
    for x, y in stream:
        yield x, relabel(x, y)
