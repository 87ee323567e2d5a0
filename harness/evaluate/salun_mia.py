"""SalUn's MIA-Efficacy ("MIS" in AMUN), exact predictor (checked against SalUn's code).

An RBF SVM (C = 3, gamma = 'auto') is fitted on the softmax probability of the true label, with shadow
members = a |test|-sized subset of the retain set (label 1) and shadow non-members = the test set
(label 0); MIA-Efficacy = 100 x the fraction of the forget set predicted non-member. Where the retain set is smaller than
the test set (pool = "half"), the non-members are a seeded random subset of the test set of the retain set's
size, so the SVM still fits on balanced classes. The target is the
retrained model's value, not 100. Random scenarios only: after class forgetting the retrained model gives the
forget class near-zero confidence, so the attack calls all of it non-member for every model that no longer
predicts the class (measured on fmnist-quick class-0: 100 for the oracle and 9 of 11 methods) -- it repeats
forget accuracy there. Suite options (``[evaluate.salun_mia]``):

* ``members = "random"`` (AMUN code: a seeded random subset of the retain set) or ``"first"`` (SalUn code:
  the first |test| retain samples);
* ``nonmembers = "test_retain"`` (default: the test images of the remaining classes; all of them for random
  forgetting) or ``"test_all"``;
* ``C`` and ``gamma``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.evaluate.base import SAMPLE_KINDS, SEQUENTIAL_KINDS, EvalContext, MetricInfo, register_evaluator
from harness.protocol.splits import stable_seed
from harness.training.loop import predict_logits

DEFAULTS = {"members": "random", "nonmembers": "test_retain", "C": 3.0, "gamma": "auto"}


def true_label_confidence(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    probs = torch.softmax(predict_logits(model, x), dim=1)
    return probs.gather(1, y.view(-1, 1).cpu()).squeeze(1).numpy().astype(np.float64)


def mia_efficacy(member_conf: np.ndarray, nonmember_conf: np.ndarray, target_conf: np.ndarray, C: float = 3.0,
                 gamma: str | float = "auto") -> float:
    """Percent of ``target_conf`` the SVM (members 1, non-members 0) predicts as non-members."""
    x = np.concatenate([member_conf, nonmember_conf]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member_conf)), np.zeros(len(nonmember_conf))])
    from sklearn.svm import SVC  # here: scikit-learn costs ~1 s to import, and most commands never fit one

    clf = SVC(C=C, gamma=gamma, kernel="rbf").fit(x, y)
    return float(100.0 * (clf.predict(target_conf.reshape(-1, 1)) == 0).mean())


def shadow_members(retain: torch.Tensor, size: int, mode: str, seed: int) -> torch.Tensor:
    if mode == "first":
        return retain[:size]
    if mode != "random":
        raise ValueError(f"salun_mia members must be 'random' or 'first', got {mode!r}")
    rng = np.random.default_rng(seed)
    return retain[torch.as_tensor(np.sort(rng.permutation(len(retain))[:size]))]


@register_evaluator("salun_mia", options=DEFAULTS, metrics=[
    MetricInfo("salun_mia", "SalUn MIA-Efficacy / AMUN's MIS: % of the forget set an SVM on true-label confidence "
               "calls non-member", scenarios=SAMPLE_KINDS, privacy=True, axis="privacy"),
    MetricInfo("first_salun_mia", "sequential scenarios: SalUn's MIA-Efficacy on the first request's examples alone "
               "(the same SVM); its gap at the last step against the first step is the forgetting-reversal measure",
               scenarios=SEQUENTIAL_KINDS, privacy=True),
])
def evaluate_salun_mia(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    opts = ctx.options("salun_mia")
    data, split = ctx.data, ctx.split
    if opts["nonmembers"] == "test_all":
        test = torch.arange(len(data.test_y))
    elif opts["nonmembers"] == "test_retain":
        test = split.test_retain
    else:
        raise ValueError(f"salun_mia nonmembers must be 'test_retain' or 'test_all', got {opts['nonmembers']!r}")
    # SalUn fits on |test| retain members against the test set, which presumes the retain set is the larger. When it
    # is not (pool = "half": 1,125 retain images against 2,000 test images), an SVM on 1,125 vs 2,000 calls every
    # forget example a non-member for every model (measured: 100.0 for all 16 entries), so the test side is cut
    # to a seeded random subset of the retain set's size and the two classes stay balanced as in SalUn.
    size = min(len(test), len(split.retain))
    if size < len(test):
        rng = np.random.default_rng(stable_seed("salun-mia-nonmembers", split.scenario.name, split.seed))
        test = test[torch.as_tensor(np.sort(rng.permutation(len(test))[:size]))]
    members = shadow_members(split.retain, size, opts["members"],
                             stable_seed("salun-mia", split.scenario.name, split.seed))
    shadow = true_label_confidence(model, data.train_x[members], data.train_y[members])
    nonmember = true_label_confidence(model, data.test_x[test], data.test_y[test])
    sets = {"salun_mia": split.forget, **({} if split.first is None else {"first_salun_mia": split.first})}
    return {name: mia_efficacy(shadow, nonmember, true_label_confidence(model, data.train_x[f], data.train_y[f]),
                               float(opts["C"]), opts["gamma"]) for name, f in sets.items()}
