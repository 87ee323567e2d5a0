"""Representations: do the penultimate features still hold what the forget set taught the original?

"Are We Truly Forgetting?" (UUEF, arXiv 2503.06991) shows that many methods change only the classifier head:
the features below it still separate the forget set as the original's did. Two measures on the penultimate
representation (the input of the head each architecture declares, harness/protocol/architectures.py):

* ``cka_forget``, ``cka_test``: linear CKA between the evaluated model's features and each oracle's, on the
  forget set and on the test set, averaged over the oracles of the run. The estimator is the debiased one
  (HSIC by Song et al. 2012's unbiased U-statistic, as Nguyen, Raghu and Kornblith 2021 use it for CKA): the
  plain estimator is biased upward at small n and would call unrelated features similar. The oracles' own value
  (each oracle against the others) is the target: retrains from different initialisations are not identical.
* ``probe_forget_acc``: a linear probe (scikit-learn's multinomial logistic regression on standardised
  frozen features) fitted on a fixed retain subset plus half of the forget set, with their labels, and scored
  on the other half, and the same with the halves swapped (%, over every forget image): how much of the forget
  labels a linear read-out recovers from the features. After class forgetting a retrain's features still carry some of the class (it is visually close
  to others), so the oracles' probe accuracy, not 0, is the target.

Every subset (the CKA caps, the probe's fit and scored halves) comes from a generator seeded by the scenario and
seed alone, so every method and oracle of a (scenario, seed) is measured on the same images.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.protocol.architectures import feature_head
from harness.protocol.splits import Split, stable_seed

DEFAULTS = {"max_examples": 500, "probe_retain": 500, "probe_C": 1.0, "probe_max_iter": 2000}


@torch.no_grad()
def penultimate_features(model: nn.Module, head: str, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """The input of module ``head`` (the declared classifier) for each row of ``x``: [n, d] float64, eval mode."""
    modules = dict(model.named_modules())
    if head not in modules:
        raise ValueError(f"the model has no module {head!r} (the feature layer its architecture declares)"
                         f"; it has {', '.join(n for n in list(modules)[1:8] if n)}...")
    captured: list[torch.Tensor] = []
    hook = modules[head].register_forward_pre_hook(lambda _, args: captured.append(args[0].detach()))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(x), batch_size):
            model(x[start:start + batch_size].to(device))
    finally:
        hook.remove()
        model.train(was_training)
    if not captured:
        return np.zeros((0, 0))
    return torch.cat([c.flatten(1).double().cpu() for c in captured]).numpy()


def unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. (2012)'s unbiased HSIC estimator of two n x n Gram matrices (n >= 4)."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ones_k, ones_l = k.sum(0), l.sum(0)
    trace = float((k * l).sum())
    return (trace + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2)) - 2.0 * float(ones_k @ ones_l) / (n - 2)) \
        / (n * (n - 3))


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Debiased linear CKA of two feature matrices of the same examples ([n, d1], [n, d2]); NaN below 4 examples
    or for a constant representation."""
    if len(a) < 4 or len(a) != len(b):
        return math.nan
    a, b = a - a.mean(0), b - b.mean(0)
    k, l = a @ a.T, b @ b.T
    denom = unbiased_hsic(k, k) * unbiased_hsic(l, l)
    return float(unbiased_hsic(k, l) / math.sqrt(denom)) if denom > 0 else math.nan


def _seeded_subset(positions: torch.Tensor, size: int, *seed_parts: object) -> torch.Tensor:
    if len(positions) <= size:
        return positions
    rng = np.random.default_rng(stable_seed(*seed_parts) % 2**32)
    return positions[torch.as_tensor(np.sort(rng.permutation(len(positions))[:size]))]


def probe_folds(split: Split, probe_retain: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two (fit positions, scored positions) folds: the forget set is cut in two seeded halves; each fold fits on
    a seeded retain subset plus one half and scores the other, so every forget image is scored once, by a probe
    that never saw it."""
    rng = np.random.default_rng(stable_seed("probe", split.scenario.name, split.seed) % 2**32)
    forget = split.forget[torch.as_tensor(rng.permutation(len(split.forget)))]
    halves = forget[: len(forget) // 2], forget[len(forget) // 2:]
    retain = _seeded_subset(split.retain, probe_retain, "probe-retain", split.scenario.name, split.seed)
    return [(torch.cat([retain, halves[0]]), halves[1]), (torch.cat([retain, halves[1]]), halves[0])]


def probe_correct(fit_x: np.ndarray, fit_y: np.ndarray, score_x: np.ndarray, score_y: np.ndarray, C: float = 1.0,
                  max_iter: int = 2000) -> np.ndarray:
    """Per scored example, whether a logistic-regression probe fitted on standardised ``fit_*`` features gets
    its label right."""
    if len(score_y) == 0:
        return np.zeros(0, bool)
    from sklearn.linear_model import LogisticRegression  # here: scikit-learn costs ~1 s to import
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(fit_x)
    # newton-cg: the same (unique, L2-regularised) optimum as the default lbfgs in about half the CPU time on
    # fmnist-quick's 128 features (10 against 115-127 iterations); the probe was most of this evaluator's cost.
    probe = LogisticRegression(C=C, max_iter=max_iter, solver="newton-cg").fit(scaler.transform(fit_x), fit_y)
    return probe.predict(scaler.transform(score_x)) == score_y


def probe_accuracy(model: nn.Module, head: str, x: torch.Tensor, y: torch.Tensor,
                   folds: list[tuple[torch.Tensor, torch.Tensor]], C: float = 1.0, max_iter: int = 2000) -> float:
    """Cross-fitted probe accuracy (%) over every scored position of ``folds``; NaN without any."""
    correct = [probe_correct(penultimate_features(model, head, x[fit]), y[fit].numpy(),
                             penultimate_features(model, head, x[scored]), y[scored].numpy(), C, max_iter)
               for fit, scored in folds if len(scored) and len(np.unique(y[fit].numpy())) > 1]
    hits = np.concatenate(correct) if correct else np.zeros(0, bool)
    return float(100.0 * hits.mean()) if len(hits) else math.nan


def check_options(options: dict[str, Any]) -> None:
    """Validate ``[evaluate.representation]`` before anything trains."""
    for key, low in (("max_examples", 4), ("probe_retain", 1), ("probe_max_iter", 1)):
        value = options.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
    c = options.get("probe_C")
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
        raise ValueError(f"probe_C must be a positive number, got {c!r}")


@register_evaluator("representation", options=DEFAULTS, check=check_options, metrics=[
    MetricInfo("cka_forget", "debiased linear CKA of the penultimate features with the oracles' on the forget set "
               "(mean over the oracles; target: the oracles' CKA to each other)", unit="fraction"),
    MetricInfo("cka_test", "debiased linear CKA of the penultimate features with the oracles' on the test set",
               unit="fraction"),
    MetricInfo("probe_forget_acc", "accuracy of a linear probe on frozen penultimate features, fitted on a retain "
               "subset and half the forget set, scored on the other half, both ways (%); above the oracles' = the features "
               "still separate the forget set", privacy=True, axis="privacy"),
])
def evaluate_representation(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    # One BLAS thread, like the one torch thread a row's worker gets: with a BLAS pool per worker the probe's
    # fit took 2.1 s a row on fmnist-quick (2 workers on 2 busy cores) against 0.07 s on one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        return _representation(model, ctx)


def _representation(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    opts = ctx.options("representation")
    data, split = ctx.data, ctx.split
    head = feature_head(ctx.suite.model)
    cap, where = int(opts["max_examples"]), split.scenario.name
    forget = _seeded_subset(split.forget, cap, "cka-forget", where, split.seed)
    test = _seeded_subset(torch.sort(torch.cat([split.test_retain, split.test_forget])).values, cap,
                          "cka-test", where, split.seed)
    features = lambda m, x: penultimate_features(m, head, x)
    out: dict[str, float] = {}
    for metric, x in (("cka_forget", data.train_x[forget]), ("cka_test", data.test_x[test])):
        mine = features(model, x)
        values = [linear_cka(mine, features(oracle, x)) for oracle in ctx.oracles]
        out[metric] = float(np.mean(values)) if values else math.nan
    out["probe_forget_acc"] = probe_accuracy(model, head, data.train_x, data.train_y,
                                             probe_folds(split, int(opts["probe_retain"])), float(opts["probe_C"]),
                                             int(opts["probe_max_iter"]))
    return out
