"""Accuracy on the retain, forget and test sets (class scenarios: test split by remaining/forget class)."""

from __future__ import annotations

from torch import nn

from harness.evaluate.base import (
    ALL_KINDS,
    CLASS_KINDS,
    SEQUENTIAL_KINDS,
    EvalContext,
    MetricInfo,
    register_evaluator,
)
from harness.training.loop import accuracy


@register_evaluator("accuracy", metrics=[
    MetricInfo("forget_acc", "accuracy on the forget set (AMUN's 'Unlearn Acc')", scenarios=ALL_KINDS),
    MetricInfo("retain_acc", "accuracy on the retain set", scenarios=ALL_KINDS),
    MetricInfo("test_acc", "accuracy on the test set (class and sub-class scenarios: the other classes only)",
               scenarios=ALL_KINDS),
    MetricInfo("test_forget_acc", "class and sub-class scenarios: accuracy on test images of the forget class "
               "(sub-class: whether they are still given their coarse label)", scenarios=CLASS_KINDS),
    MetricInfo("first_forget_acc", "sequential scenarios: accuracy on the first request's examples (the forget "
               "set is the union of the requests so far); its gap at the last step against the first step measures "
               "forgetting reversal", scenarios=SEQUENTIAL_KINDS),
])
def evaluate_accuracy(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    data, split = ctx.data, ctx.split
    out = {
        "forget_acc": accuracy(model, data.train_x[split.forget], data.train_y[split.forget]),
        "retain_acc": accuracy(model, data.train_x[split.retain], data.train_y[split.retain]),
        "test_acc": accuracy(model, data.test_x[split.test_retain], data.test_y[split.test_retain]),
    }
    if split.scenario.forgets_class:
        out["test_forget_acc"] = accuracy(model, data.test_x[split.test_forget], data.test_y[split.test_forget])
    if split.first is not None:
        out["first_forget_acc"] = accuracy(model, data.train_x[split.first], data.train_y[split.first])
    return out
