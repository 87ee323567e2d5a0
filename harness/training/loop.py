"""The one training loop and the shared helpers every method uses (batches, optimisers, evaluation).

Originals, oracles, shadow models and the fine-tuning inside baselines all go through these functions,
so a change to how the harness trains (augmentation, schedule, device handling) happens in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from harness.protocol.recipe import PRECISIONS, SCHEDULES, Recipe
from harness.training.clipping import clipping_hook

TRAINER_VERSION = "1"  # bump when training semantics change: it is part of every cache key

Batch = tuple[torch.Tensor, torch.Tensor]
StepHook = Callable[[nn.Module, int], None]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} asked for, but torch sees no CUDA device")
    return torch.device(device)


def augment_batch(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Random crop (padding 4 for 28/32 px, 1 for 8 px) and, for crop-flip, horizontal flips; vectorised."""
    if mode == "none":
        return x
    n, _, h, w = x.shape
    pad = 4 if h >= 16 else 1
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # n, h
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])  # n, w
    out = padded[torch.arange(n, device=x.device)[:, None, None, None],
                 torch.arange(x.shape[1], device=x.device)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    if mode == "crop-flip":
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None,
            shuffle: bool = True, augment: str = "none", drop_last: bool = False,
            fold_single: bool = False) -> Iterator[Batch]:
    """Mini-batches of in-memory tensors (already on the target device).

    ``fold_single``: a last batch of one example joins the one before (for BatchNorm models, which cannot train on
    a single example once their features are 1x1: a timm ResNet on 8x8 images)."""
    n = len(y)
    if shuffle:
        if generator is None:
            raise ValueError("shuffled batches need a seeded generator")
        order = torch.randperm(n, generator=generator).to(y.device)
    else:
        order = torch.arange(n, device=y.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    fold = fold_single and not drop_last and n > batch_size and n % batch_size == 1
    for start in range(0, stop - 1 if fold else stop, batch_size):
        idx = order[start : start + batch_size + (1 if fold and start + batch_size == n - 1 else 0)]
        xb = x[idx]
        if augment != "none":
            xb = augment_batch(xb, augment, generator)  # type: ignore[arg-type]
        yield xb, y[idx]


def warm_up() -> None:
    """Load what torch imports lazily on a process's first optimizer (``torch._dynamo``: ~1 s of CPU), so it is not
    charged to the first model timed in the process (measured: an oracle's 0.41 s training read 1.68 s)."""
    import torch._dynamo  # noqa: F401


def sgd(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, epochs: int, steps_per_epoch: int,
                   step_size: int = 40, gamma: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step scheduler: cosine over all steps, step decay every ``step_size`` epochs, or constant."""
    total = max(1, epochs * steps_per_epoch)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, step_size * steps_per_epoch), gamma=gamma)
    if schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    if schedule == "onecycle":  # warm up to lr over the first quarter, then anneal: short, fast recipes
        lr = optimizer.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.25)
    raise ValueError(f"unknown schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")


def seeded_generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(seed) % (2**63))
    return gen


def optimize(model: nn.Module, optimizer: torch.optim.Optimizer, batch_stream: Iterable,
             loss_fn: Callable[[nn.Module, object], torch.Tensor],
             scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
             grad_hook: Callable[[nn.Module], None] | None = None,
             step_hook: StepHook | None = None, start_step: int = 0) -> int:
    """One pass of gradient steps: ``loss_fn(model, batch)`` per batch; returns the next step index.

    ``grad_hook`` runs between backward and step (gradient masks); ``step_hook`` after each step (FastClip).
    """
    step = start_step
    model.train()
    for batch in batch_stream:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.backward()
        if grad_hook is not None:
            grad_hook(model)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        if step_hook is not None:
            step_hook(model, step)
    return step


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, epochs: int, make_stream: Callable[[int], Iterable],
        loss_fn: Callable[[nn.Module, object], torch.Tensor],
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        grad_hook: Callable[[nn.Module], None] | None = None,
        progress: Callable[[int, int], None] | None = None) -> nn.Module:
    """``epochs`` passes of :func:`optimize`; ``make_stream(epoch)`` yields that epoch's batches."""
    step = 0
    for epoch in range(epochs):
        step = optimize(model, optimizer, make_stream(epoch), loss_fn, scheduler, grad_hook, start_step=step)
        if progress is not None:
            progress(epoch + 1, epochs)
    model.eval()
    return model


def cross_entropy_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def recipe_loss(recipe: Recipe, device: torch.device) -> Callable[[nn.Module, Batch], torch.Tensor]:
    """Cross-entropy under the recipe's precision and memory format (plain fp32 CE when neither is set)."""
    if recipe.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {recipe.precision!r}: expected one of {', '.join(PRECISIONS)}")
    if recipe.precision == "fp32" and not recipe.channels_last:
        return cross_entropy_loss

    def loss(model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        if recipe.channels_last and x.dim() == 4:  # per batch: augmentation returns default-format tensors
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.precision == "bf16"):
            logits = model(x)
        return F.cross_entropy(logits.float(), y)

    return loss


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, seed: int,
                device: torch.device | str = "cpu", progress: Callable[[int, int], None] | None = None) -> nn.Module:
    """Train ``model`` from its current weights with the recipe; deterministic on CPU for a given seed."""
    device = resolve_device(device)
    model = model.to(device)
    x, y = x.to(device), y.to(device)  # once: small datasets stay on the device as tensors
    if recipe.channels_last and x.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
    gen = seeded_generator(seed)
    optimizer = sgd(model, recipe.lr, recipe.momentum, recipe.weight_decay)
    steps_per_epoch = -(-len(y) // recipe.batch_size)
    scheduler = make_scheduler(optimizer, recipe.schedule, recipe.epochs, steps_per_epoch, recipe.step_size,
                               recipe.gamma)
    step_hook = None
    if recipe.clip is not None:
        step_hook = clipping_hook(model, recipe.clip, recipe.clip_every, x[:1])
    loss_fn = recipe_loss(recipe, device)
    # The compiled module shares the model's parameters: the optimizer and the returned model are the same.
    trained = torch.compile(model) if recipe.compile and device.type == "cuda" else model
    step = 0
    for epoch in range(recipe.epochs):
        stream = batches(x, y, recipe.batch_size, gen, shuffle=True, augment=recipe.augment,
                         fold_single=has_batchnorm(model))
        step = optimize(trained, optimizer, stream, loss_fn, scheduler, step_hook=step_hook, start_step=step)
        if progress is not None:
            progress(epoch + 1, recipe.epochs)
    model.eval()
    return model


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Logits in eval mode, returned on the CPU."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    if not outs:
        return torch.empty(0, 0)
    return torch.cat(outs)


def softmax_outputs(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (float64, CPU) of ``model`` on ``inputs``, in eval mode."""
    return torch.softmax(predict_logits(model, inputs).double(), dim=1)


def mean_tv(p: torch.Tensor, q: torch.Tensor) -> float:
    """Mean over examples of the total-variation distance between two rows of probabilities."""
    return float(0.5 * (p - q).abs().sum(dim=1).mean())


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in percent (NaN for an empty set)."""
    if len(y) == 0:
        return float("nan")
    logits = predict_logits(model, x)
    return float((logits.argmax(1) == y.cpu()).float().mean() * 100.0)


def clone_model(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A detached eval-mode copy (teachers, attack models)."""
    teacher = clone_model(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
