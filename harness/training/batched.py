"""Train K small models of one architecture together: stacked parameters, ``torch.func`` vmap.

``train_models(models, datasets, recipe, seeds)`` gives the models that K calls of
:func:`harness.training.loop.train_model` give, to float tolerance: the same initial weights, the same recipe
(SGD, momentum, weight decay, per-step schedule) and, per model, the same shuffles and augmentations,
because model k draws from its own generator ``seeded_generator(seeds[k])`` in the order ``batches``
does (one ``randperm`` per epoch, then the augmentation draws of each batch). Only the arithmetic is
batched (one ``bmm`` instead of K ``addmm``), so the weights agree to rounding, not bit for bit.

``mode="auto"`` follows a fixed rule measured with ``bench/ensemble.py`` (docs/scale.md): batched on
CUDA and for conv nets, sequential for MLPs on a CPU (there the work is one matmul per layer either way and
vmap only adds overhead). A fixed rule, not a per-run timing, because batched weights differ from
sequential ones at rounding level and every process must make the same choice for rows to be
reproducible. ``mode="probe"`` times a few batched steps against the same steps one model at a time on
the real shapes and keeps the faster (memoised). Models with buffers (BatchNorm), active dropout, a
FastClip hook or unequal training-set sizes always train sequentially.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from harness.training.loop import (
    Recipe,
    augment_batch,
    make_scheduler,
    optimize,
    resolve_device,
    seeded_generator,
    sgd,
    train_model,
)

log = logging.getLogger(__name__)

MODES = ("auto", "probe", "batched", "sequential")
PROBE_STEPS = 3
_DECISIONS: dict[tuple, str] = {}


class StackedModels(nn.Module):
    """K copies of one architecture as stacked parameters; ``forward(x[K, B, ...]) -> logits[K, B, C]``."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        self.names = [name for name, _ in models[0].named_parameters()]
        per_model = [dict(m.named_parameters()) for m in models]
        self.stacked = nn.ParameterList(
            nn.Parameter(torch.stack([params[name].detach() for params in per_model]).clone())
            for name in self.names)
        # The skeleton holds no weights (meta device) and is kept out of the module tree.
        self._skeleton = (copy.deepcopy(models[0]).to("meta"),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skeleton = self._skeleton[0].train(self.training)

        def one(params: tuple[torch.Tensor, ...], xb: torch.Tensor) -> torch.Tensor:
            return functional_call(skeleton, dict(zip(self.names, params)), (xb,))

        return vmap(one)(tuple(self.stacked), x)

    @torch.no_grad()
    def write_back(self, models: Sequence[nn.Module]) -> None:
        for k, model in enumerate(models):
            params = dict(model.named_parameters())
            for name, stacked in zip(self.names, self.stacked):
                params[name].copy_(stacked[k])


def stacked_loss(model: StackedModels, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Sum over models of each model's mean cross-entropy: model k's gradient is its own loss's gradient."""
    x, y = batch
    logits = model(x)
    k, b = y.shape
    return F.cross_entropy(logits.reshape(k * b, -1), y.reshape(-1), reduction="none").view(k, b).mean(1).sum()


def why_not_batched(models: Sequence[nn.Module], datasets: Sequence[tuple[torch.Tensor, torch.Tensor]],
                    recipe: Recipe) -> str | None:
    """The reason these models cannot train batched, or None when they can."""
    if len(models) < 2:
        return "fewer than two models"
    if len({len(y) for _, y in datasets}) != 1:
        return "unequal training-set sizes"
    if recipe.clip is not None:
        return "FastClip step hook"
    shapes = [[(n, tuple(p.shape)) for n, p in m.named_parameters()] for m in models]
    if any(s != shapes[0] for s in shapes) or len({type(m) for m in models}) != 1:
        return "different architectures"
    if any(True for m in models for _ in m.buffers()):
        return "the model has buffers (BatchNorm running statistics)"
    for m in models:
        for module in m.modules():
            rate = getattr(module, "p", None) if "Dropout" in type(module).__name__ else \
                getattr(module, "drop_prob", None)
            if rate:
                return "the model has active dropout"
    return None


def _stacked_stream(xs: torch.Tensor, ys: torch.Tensor, batch_size: int, gens: list[torch.Generator],
                    augment: str):
    """One epoch of stacked batches; model k's draws follow :func:`harness.training.loop.batches` exactly."""
    k, n = ys.shape
    orders = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(ys.device)
    rows = torch.arange(k, device=ys.device)[:, None]
    for start in range(0, n, batch_size):
        idx = orders[:, start : start + batch_size]
        xb = xs[rows, idx]
        if augment != "none":
            xb = torch.stack([augment_batch(xb[i], augment, gens[i]) for i in range(k)])
        yield xb, ys[rows, idx]


def train_batched(models: Sequence[nn.Module], datasets: Sequence[tuple[torch.Tensor, torch.Tensor]],
                  recipe: Recipe, seeds: Sequence[int], device: torch.device | str = "cpu") -> list[nn.Module]:
    """Train all models at once (see the module docstring)."""
    device = resolve_device(device)
    xs = torch.stack([x for x, _ in datasets]).to(device)
    ys = torch.stack([y for _, y in datasets]).to(device)
    stacked = StackedModels([m.to(device) for m in models])
    gens = [seeded_generator(s) for s in seeds]
    optimizer = sgd(stacked, recipe.lr, recipe.momentum, recipe.weight_decay)
    steps_per_epoch = -(-ys.shape[1] // recipe.batch_size)
    scheduler = make_scheduler(optimizer, recipe.schedule, recipe.epochs, steps_per_epoch, recipe.step_size,
                               recipe.gamma)
    loss_fn = stacked_loss
    if recipe.precision == "bf16":
        def loss_fn(model, batch):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return stacked_loss(model, batch)
    step = 0
    for _ in range(recipe.epochs):
        stream = _stacked_stream(xs, ys, recipe.batch_size, gens, recipe.augment)
        step = optimize(stacked, optimizer, stream, loss_fn, scheduler, start_step=step)
    stacked.write_back(models)
    return [m.eval() for m in models]


def train_sequential(models: Sequence[nn.Module], datasets: Sequence[tuple[torch.Tensor, torch.Tensor]],
                     recipe: Recipe, seeds: Sequence[int], device: torch.device | str = "cpu") -> list[nn.Module]:
    return [train_model(m, x, y, recipe, s, device) for m, (x, y), s in zip(models, datasets, seeds)]


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def probe_mode(models: Sequence[nn.Module], datasets: Sequence[tuple[torch.Tensor, torch.Tensor]], recipe: Recipe,
               device: torch.device, steps: int = PROBE_STEPS) -> tuple[str, float, float]:
    """Time ``steps`` batched steps of all K models vs ``steps`` steps of one model x K, on throwaway copies.

    Returns (faster mode, batched seconds, sequential seconds); each side runs once to warm up first.
    """
    k = len(models)
    short = dataclasses.replace(recipe, epochs=1)
    n = steps * recipe.batch_size  # a dataset of exactly ``steps`` batches
    small = [(x[:n], y[:n]) for x, y in datasets]

    def batched() -> None:
        train_batched([copy.deepcopy(m) for m in models], small, short, range(k), device)

    def sequential() -> None:
        train_model(copy.deepcopy(models[0]), *small[0], short, 0, device)

    batched(), sequential()  # warm-up: allocator, kernels, vmap tracing
    t_batched = _timed(batched, device)
    t_sequential = _timed(sequential, device) * k
    return ("batched" if t_batched < t_sequential else "sequential"), t_batched, t_sequential


def rule_mode(models: Sequence[nn.Module], device: torch.device) -> str:
    """The measured rule: batched on CUDA, and for conv nets on a CPU; sequential for CPU MLPs."""
    if device.type == "cuda" or any(isinstance(m, nn.Conv2d) for m in models[0].modules()):
        return "batched"
    return "sequential"


def choose_mode(models: Sequence[nn.Module], datasets: Sequence[tuple[torch.Tensor, torch.Tensor]], recipe: Recipe,
                device: torch.device | str = "cpu", probe: bool = False) -> str:
    """``batched`` or ``sequential``: by the rule, or (``probe``) by timing both (memoised per shape)."""
    device = resolve_device(device)
    reason = why_not_batched(models, datasets, recipe)
    if reason:
        log.debug("ensemble: sequential (%s)", reason)
        return "sequential"
    if not probe:
        return rule_mode(models, device)
    x0 = datasets[0][0]
    key = (device.type, torch.get_num_threads(), len(models), tuple(x0.shape), recipe.batch_size, recipe.precision,
           tuple((n, tuple(p.shape)) for n, p in models[0].named_parameters()))
    if key not in _DECISIONS:
        mode, t_b, t_s = probe_mode(models, datasets, recipe, device)
        log.info("ensemble probe (K=%d, %s): batched %.3fs vs sequential %.3fs -> %s", len(models), device,
                 t_b, t_s, mode)
        _DECISIONS[key] = mode
    return _DECISIONS[key]


def train_models(models: Sequence[nn.Module], datasets: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 recipe: Recipe, seeds: Sequence[int], device: torch.device | str = "cpu",
                 mode: str = "auto") -> list[nn.Module]:
    """Train each model on its dataset with the recipe and its seed, batched where that is faster.

    Equivalent to ``[train_model(m, x, y, recipe, s, device) ...]`` (to float tolerance when batched).
    """
    if not (len(models) == len(datasets) == len(seeds)):
        raise ValueError("train_models needs one dataset and one seed per model")
    if mode not in MODES:
        raise ValueError(f"unknown ensemble mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode in ("auto", "probe"):
        mode = choose_mode(models, datasets, recipe, device, probe=mode == "probe")
    elif mode == "batched":
        reason = why_not_batched(models, datasets, recipe)
        if reason:
            raise ValueError(f"these models cannot train batched: {reason}")
    if mode == "batched":
        return train_batched(models, datasets, recipe, seeds, device)
    return train_sequential(models, datasets, recipe, seeds, device)
