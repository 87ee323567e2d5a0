"""Distance between the model's and the oracles' predicted distributions on forget data.

``kl_forget`` = mean over the forget set of KL(p_oracle || p_model) (nats), averaged over the oracles of the
run; ``tv_forget`` = mean total variation ½ Σ_k |p_model - p_oracle|, likewise. The KL direction puts the
oracle first, as the reference distribution: the expectation is taken under what a retrained model predicts,
so a model that is confident where the oracle is unsure pays for the classes the oracle believes in. Class
scenarios add ``tv_forget_test``, the same TV on the test images of the forget class: our reading of the TRW v1
(RWFT) TV metric (TRW v1 §8.4, RECONSTRUCTED). Lower is better; the retrain reference row, scored against the
other oracles, shows what an independent retrain reaches (the noise floor), which is not 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.evaluate.base import ALL_KINDS, CLASS_KINDS, EvalContext, MetricInfo, register_evaluator
from harness.training.loop import predict_logits


def kl_tv(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(mean KL(p_ref || p_model), mean TV) over ``x``; NaN for an empty set."""
    if len(x) == 0:
        return float("nan"), float("nan")
    log_p = torch.log_softmax(predict_logits(model, x).double(), 1)
    log_q = torch.log_softmax(predict_logits(reference, x).double(), 1)
    kl = (log_q.exp() * (log_q - log_p)).sum(1).clamp_min(0).mean()
    tv = 0.5 * (log_p.exp() - log_q.exp()).abs().sum(1).mean()
    return float(kl), float(tv)


def mean_kl_tv(model: nn.Module, references: list[nn.Module], x: torch.Tensor) -> tuple[float, float]:
    """:func:`kl_tv` averaged over several reference models (NaN without references)."""
    if not references:
        return float("nan"), float("nan")
    pairs = [kl_tv(model, ref, x) for ref in references]
    return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))


@register_evaluator("distribution", metrics=[
    MetricInfo("kl_forget", "mean KL(oracle || model) of predicted distributions on the forget set",
               direction="lower", unit="nats", scenarios=ALL_KINDS),
    MetricInfo("tv_forget", "mean total-variation distance to the oracle's predictions on the forget set",
               direction="lower", unit="fraction", scenarios=ALL_KINDS),
    MetricInfo("tv_forget_test", "class scenarios: mean TV to the oracle on forget-class test images "
               "(TRW v1 TV metric, reconstructed)", direction="lower", unit="fraction", reconstructed=True,
               scenarios=CLASS_KINDS),
])
def evaluate_distribution(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    data, split = ctx.data, ctx.split
    kl, tv = mean_kl_tv(model, ctx.oracles, data.train_x[split.forget])
    out = {"kl_forget": kl, "tv_forget": tv}
    if split.scenario.forgets_class:
        out["tv_forget_test"] = mean_kl_tv(model, ctx.oracles, data.test_x[split.test_forget])[1]
    return out
