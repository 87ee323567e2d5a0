"""Distance between the model's and the oracle's predicted distributions on forget data.

``kl_forget`` = mean over the forget set of KL(p_oracle || p_model) (nats); ``tv_forget`` = mean total
variation ½ Σ_k |p_model - p_oracle|. Class scenarios add ``tv_forget_test``, the same TV on the test images
of the forget class: our reading of the TRW v1 (RWFT) TV metric (seed spec §8.4, RECONSTRUCTED), with the
oracle as the retrained reference. All are 0 for the oracle itself; lower is better.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.evaluate.base import EvalContext, MetricInfo, register_evaluator
from harness.train import predict_logits


def kl_tv(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(mean KL(p_ref || p_model), mean TV) over ``x``; NaN for an empty set."""
    if len(x) == 0:
        return float("nan"), float("nan")
    log_p = torch.log_softmax(predict_logits(model, x).double(), 1)
    log_q = torch.log_softmax(predict_logits(reference, x).double(), 1)
    kl = (log_q.exp() * (log_q - log_p)).sum(1).clamp_min(0).mean()
    tv = 0.5 * (log_p.exp() - log_q.exp()).abs().sum(1).mean()
    return float(kl), float(tv)


@register_evaluator("distribution", metrics=[
    MetricInfo("kl_forget", "mean KL(oracle || model) of predicted distributions on the forget set",
               direction="lower", unit="nats"),
    MetricInfo("tv_forget", "mean total-variation distance to the oracle's predictions on the forget set",
               direction="lower", unit="fraction"),
    MetricInfo("tv_forget_test", "class scenarios: mean TV to the oracle on forget-class test images "
               "(TRW v1 TV metric, reconstructed)", direction="lower", unit="fraction", reconstructed=True),
])
def evaluate_distribution(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    data, split = ctx.data, ctx.split
    kl, tv = kl_tv(model, ctx.oracle, data.train_x[split.forget])
    out = {"kl_forget": kl, "tv_forget": tv}
    if split.scenario.kind == "class":
        out["tv_forget_test"] = kl_tv(model, ctx.oracle, data.test_x[split.test_forget])[1]
    return out
