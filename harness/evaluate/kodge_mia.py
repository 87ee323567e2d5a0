"""Kodge et al.'s class-forgetting MIA: paper-comparable, never part of a verdict (docs/evaluators.md).

The definition is the one the project's research notes read from Kodge et al.'s public code (TMLR 2024, "Deep
Unlearning"); that the class-unlearning paper behind TRW reports it among its "prior metrics" is inferred.
Class scenarios only, forget class u:

* feature: the evaluated model's softmax probability of the true label;
* an RBF SVC (``C`` = 3, ``gamma`` = "auto") is fitted on the run's retain set (train images of the other
  classes, label 1) against its forget set (the train images of u, label 0);
* it is applied to the test images of u; ``kodge_mia`` = % of them predicted 0 ("looks like the forgotten
  class's training data"). A retrained model scores about 100 (it gives u near-zero probability on train and
  test alike), the original about 0. The runner's gap to the oracles is the comparison, as for every metric.
  It saturates wherever a method stops predicting the class: on fmnist-quick class-0 every method with zero
  forget accuracy scored 98.75-100, like the oracles, so there it mostly repeats forget-class accuracy.

Class imbalance is kept, not corrected: the retain side is (C - 1) times larger than the forget side, as in the
source, which fits both sets whole. That prior is what makes an unchanged model score about 0: where retain and
forget images get the same confidence the SVC answers with the majority label 1. Balancing the two sides would
leave that region to chance and change the metric. Subsampling is only a cost cap: when the two sides together
exceed ``max_fit`` examples, each side keeps its share of ``max_fit`` (the ratio is kept), drawn without
replacement by a generator seeded from the scenario and seed alone, so every method and oracle of a
(scenario, seed) is fitted on the same images. fmnist-quick and digits stay below the default cap.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.core.registry import did_you_mean
from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.evaluate.salun_mia import true_label_confidence
from harness.protocol.splits import stable_seed

DEFAULTS = {"C": 3.0, "gamma": "auto", "max_fit": 10000}
GAMMAS = ("auto", "scale")


def class_mia(retain_conf: np.ndarray, forget_conf: np.ndarray, target_conf: np.ndarray, C: float = 3.0,
              gamma: str | float = "auto") -> float:
    """Percent of ``target_conf`` that an SVC fitted on retain (label 1) vs forget (label 0) calls 0."""
    if not len(retain_conf) or not len(forget_conf) or not len(target_conf):
        return math.nan
    x = np.concatenate([retain_conf, forget_conf]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(retain_conf)), np.zeros(len(forget_conf))])
    from sklearn.svm import SVC  # here: scikit-learn costs ~1 s to import, and most commands never fit one

    clf = SVC(C=C, gamma=gamma, kernel="rbf").fit(x, y)
    return float(100.0 * (clf.predict(target_conf.reshape(-1, 1)) == 0).mean())


def capped(retain: torch.Tensor, forget: torch.Tensor, max_fit: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both fit sets, or, above ``max_fit`` examples in all, a seeded subset of each keeping their ratio."""
    total = len(retain) + len(forget)
    if total <= max_fit:
        return retain, forget
    rng = np.random.default_rng(seed)
    n_forget = max(1, round(max_fit * len(forget) / total))
    pick = lambda idx, k: idx[torch.as_tensor(np.sort(rng.permutation(len(idx))[:k]))]
    return pick(retain, max_fit - n_forget), pick(forget, n_forget)


def check_options(options: dict[str, Any]) -> None:
    """Validate ``[evaluate.kodge_mia]`` before anything trains."""
    C, gamma, max_fit = options.get("C"), options.get("gamma"), options.get("max_fit")
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
        raise ValueError(f"C must be a positive number, got {C!r}")
    if isinstance(gamma, str):
        if gamma not in GAMMAS:
            raise ValueError(f"unknown gamma {gamma!r} (a positive number or a name){did_you_mean(gamma, GAMMAS)}")
    elif isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise ValueError(f"gamma must be a positive number or one of {', '.join(GAMMAS)}, got {gamma!r}")
    if isinstance(max_fit, bool) or not isinstance(max_fit, int) or max_fit < 2:
        raise ValueError(f"max_fit must be an integer >= 2, got {max_fit!r}")


@register_evaluator("kodge_mia", options=DEFAULTS, check=check_options, metrics=[
    MetricInfo("kodge_mia", "Kodge et al.'s class MIA (paper-comparable, in no verdict): % of forget-class test "
               "images an SVC on true-label confidence, fitted retain-train (1) vs forget-train (0), calls 0",
               scenarios=("class",), paper_comparable=True),
])
def evaluate_kodge_mia(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    opts = ctx.options("kodge_mia")
    data, split = ctx.data, ctx.split
    retain, forget = capped(split.retain, split.forget, int(opts["max_fit"]),
                            stable_seed("kodge-mia", split.scenario.name, split.seed) % 2**31)
    conf = lambda x, y, idx: true_label_confidence(model, x[idx], y[idx])
    value = class_mia(conf(data.train_x, data.train_y, retain), conf(data.train_x, data.train_y, forget),
                      conf(data.test_x, data.test_y, split.test_forget), float(opts["C"]), opts["gamma"])
    return {"kodge_mia": value}
