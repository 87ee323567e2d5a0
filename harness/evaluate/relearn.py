"""Relearning: how fast forget accuracy comes back when a copy of the model is fine-tuned for a small budget.

A model that only suppressed the forget set (a changed head, a moved decision boundary) recovers it after a few
gradient steps; a model retrained without it has to learn it like new data. The evaluator fine-tunes a copy of
the evaluated model with plain SGD for ``steps`` steps and reports, on the *held-out* part of the forget set
(forget examples the fine-tuning never sees):

* ``relearn_forget_acc``: forget accuracy after the budget (%);
* ``relearn_steps`` (class scenarios): the first step at which the held-out forget accuracy reaches
  ``threshold`` x the original's accuracy on the same examples (0: already there; ``steps + 1``: not reached
  within the budget, a censored value). In random scenarios a retrain already classifies most forget examples
  (they are like test images), so every model starts above the threshold and the count cannot vary.

The oracles go through the same procedure (the runner evaluates every oracle with every evaluator), so the gaps
``gap_relearn_*`` compare with what retraining gives under the same budget.

Fine-tuning data (``data``): ``"forget"`` (the default) fine-tunes on a small labelled subset of the forget
set, mixed with as many retain images (see :func:`relearn_subsets`), as relearning attacks do (Golatkar et al.
2020's relearn time fine-tunes on the forget data; ForgetGate's prompt and the relearning attacks on unlearned
language models are trained on forget-set examples): it asks what an adversary holding a few forgotten examples
can recover. ``"retain"`` fine-tunes on retain images only (the same number in all): does ordinary further
training on remaining data bring the forget set back?

Deterministic per (scenario, seed): the subset, the held-out part and the batch order come from generators
seeded by the scenario and seed alone, so every method and every oracle of a (scenario, seed) is fine-tuned on
the same examples in the same order (on the CPU; GPU kernels may differ in the last bits).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.sgd import sgd as functional_sgd

from harness.core.registry import did_you_mean
from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.protocol.splits import Split, stable_seed
from harness.training.loop import accuracy, batches, has_batchnorm, seeded_generator

DATA = ("forget", "retain")
# 5 full-batch steps on 32 forget + 32 retain images. Measured on fmnist-quick class-0, seeds 0-4: after 5 steps
# every oracle is still at 0% on the held-out forget images, the original with the class suppressed in its head
# only (bias - 20) is back at 90-96% and the original at 96-99%; after 10 steps the oracles were anywhere in
# 0-94% (a floor too noisy to detect the original).
DEFAULTS = {"data": "forget", "examples": 32, "steps": 5, "lr": 0.01, "momentum": 0.9, "batch_size": 64,
            "threshold": 0.9}


def relearn_subsets(split: Split, data: str, examples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fine-tuning positions, held-out forget positions). A seeded draw of n = ``examples`` forget positions (at
    most half of the forget set, so something is held out) leaves the forget set; the fine-tuning set is that
    draw plus n retain positions (``data = "forget"``) or 2n retain positions (``"retain"``).

    The retain half is what makes "forget" relearning a test of the features: fine-tuned on forget-class images
    alone, any model learns to answer the class everywhere and "recovers" it (measured on fmnist-quick class-0:
    the oracles reached 100% on held-out class images after 20 steps, as the original did)."""
    rng = np.random.default_rng(stable_seed("relearn", split.scenario.name, split.seed) % 2**32)
    forget, retain = split.forget.numpy(), split.retain.numpy()
    n = min(examples, len(forget) // 2)
    order = rng.permutation(len(forget))
    drawn, held_out = forget[order[:n]], forget[order[n:]]
    retain_drawn = retain[rng.permutation(len(retain))[:2 * n]]
    tune = np.concatenate([drawn, retain_drawn[:n]]) if data == "forget" else retain_drawn
    return torch.as_tensor(np.sort(tune), dtype=torch.int64), torch.as_tensor(np.sort(held_out), dtype=torch.int64)


def sgd_step(params: list[torch.Tensor], buffers: list[torch.Tensor | None], lr: float, momentum: float) -> None:
    """One step of torch's SGD (its functional form, the same update ``torch.optim.SGD.step`` makes). The class
    would import ``torch._dynamo`` on first use, about a second of CPU in every process that evaluates a row
    (bench/plugin_cost.py), for five steps."""
    with_grad = [i for i, p in enumerate(params) if p.grad is not None]
    held = [buffers[i] for i in with_grad]
    with torch.no_grad():
        functional_sgd([params[i] for i in with_grad], [params[i].grad for i in with_grad], held,
                       weight_decay=0.0, momentum=momentum, lr=lr, dampening=0.0, nesterov=False, maximize=False)
    for i, buffer in zip(with_grad, held, strict=True):
        buffers[i] = buffer


def relearn_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eval_x: torch.Tensor, eval_y: torch.Tensor,
                  steps: int, lr: float, momentum: float, batch_size: int, seed: int) -> list[float]:
    """Held-out accuracy before and after each of ``steps`` SGD steps of cross-entropy on ``(x, y)``, fine-tuning
    a copy of ``model`` (the model itself is not touched). Returns ``steps + 1`` accuracies (%)."""
    tuned = copy.deepcopy(model)
    for p in tuned.parameters():
        p.requires_grad_(True)
    device = next(tuned.parameters()).device
    params = list(tuned.parameters())
    buffers: list[torch.Tensor | None] = [None] * len(params)  # momentum, as torch.optim.SGD keeps it
    generator = seeded_generator(seed)
    curve = [accuracy(tuned, eval_x, eval_y)]
    stream = iter(())
    for _ in range(steps):
        batch = next(stream, None)
        if batch is None:  # a new pass over the fine-tuning set, in a seeded order
            stream = batches(x, y, batch_size, generator, fold_single=has_batchnorm(tuned))
            batch = next(stream)
        xb, yb = batch
        tuned.train()
        for p in params:
            p.grad = None
        F.cross_entropy(tuned(xb.to(device)), yb.to(device)).backward()
        sgd_step(params, buffers, lr, momentum)
        curve.append(accuracy(tuned, eval_x, eval_y))
    return curve


def steps_to_reach(curve: list[float], target: float) -> float:
    """The first step whose accuracy reaches ``target``; ``len(curve)`` (= budget + 1) when none does."""
    return float(next((step for step, acc in enumerate(curve) if acc >= target), len(curve)))


def check_options(options: dict[str, Any]) -> None:
    """Validate ``[evaluate.relearn]`` before anything trains."""
    if options.get("data") not in DATA:
        raise ValueError(f"unknown data {options.get('data')!r}{did_you_mean(str(options.get('data')), DATA)}")
    for key in ("examples", "steps", "batch_size"):
        value = options.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    lr, momentum = options.get("lr"), options.get("momentum")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
    threshold = options.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a fraction in (0, 1], got {threshold!r}")


@register_evaluator("relearn", options=DEFAULTS, check=check_options, metrics=[
    MetricInfo("relearn_forget_acc", "accuracy on held-out forget examples after fine-tuning a copy of the model "
               "for a fixed small budget (default: SGD steps on a small labelled forget subset); higher than the "
               "oracles' = the forget set comes back faster than after retraining", privacy=True, axis="privacy"),
    # Random scenarios: the oracles already reach 90% of the original's forget accuracy before any step
    # (fmnist-quick random-10: 92% against 98%), so the count is 0 for every model there.
    MetricInfo("relearn_steps", "class scenarios: SGD steps until the held-out forget accuracy reaches threshold "
               "x the original's (budget + 1: not reached, censored)", unit="steps", privacy=True,
               scenarios=("class",)),
])
def evaluate_relearn(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    opts = ctx.options("relearn")
    data, split = ctx.data, ctx.split
    tune, held_out = relearn_subsets(split, opts["data"], int(opts["examples"]))
    if len(tune) == 0 or len(held_out) == 0:
        return {"relearn_forget_acc": math.nan, "relearn_steps": math.nan}
    eval_x, eval_y = data.train_x[held_out], data.train_y[held_out]
    curve = relearn_curve(model, data.train_x[tune], data.train_y[tune], eval_x, eval_y, int(opts["steps"]),
                          float(opts["lr"]), float(opts["momentum"]), int(opts["batch_size"]),
                          stable_seed("relearn-order", split.scenario.name, split.seed))
    out = {"relearn_forget_acc": curve[-1]}
    if split.scenario.kind == "class" and ctx.original is not None:
        target = float(opts["threshold"]) * accuracy(ctx.original, eval_x, eval_y)
        out["relearn_steps"] = steps_to_reach(curve, target)
    return out
